--[[
memfs.lua: an in-memory filesystem, the reference example of luafs.

    luafs memfs.lua /mnt/mem -f
    luafs memfs.lua /mnt/mem -o allow_other,default_permissions

It behaves like tmpfs: regular files (sparse, binary, up to 2^63 - 1
bytes, with SEEK_DATA, SEEK_HOLE and fallocate), directories, symbolic
links, hard links, FIFOs, sockets and device nodes, rename with
RENAME_NOREPLACE, RENAME_EXCHANGE and RENAME_WHITEOUT, modes, owners and
groups (set-group-ID directories, the sticky bit), POSIX permission
checks for every caller, nanosecond timestamps and extended attributes
(user., trusted. and security.). The specs compare it with tmpfs through
real mounts, system call by system call.

The tree survives a hot reload (SIGUSR1, or an edit of this file): it
lives in luafs.stash, which the new code finds again, and fs.reload
refuses code whose idea of the tree's layout differs (FORMAT below), so
that the old code keeps serving then instead of losing the files.

Limits:
  * Everything lives in the tables of one Lua state and is lost at
    unmount. In a pool of states each state would serve a tree of its
    own, so memfs refuses to load when luafs runs more than one state
    (-o states=N with N > 1): luafs exits with status 2 and the message.
  * Permissions are checked by memfs for every caller, as the kernel
    checks them on tmpfs, with the caller's uid, gid and supplementary
    groups: search permission on every directory of a path, write
    permission on the directories that create, unlink and rename change,
    the sticky bit, fs.protected_hardlinks, and the rules of chmod, chown
    and utimens. Root (uid 0) has the powers of CAP_DAC_OVERRIDE,
    CAP_FOWNER and CAP_CHOWN; capabilities themselves are not seen.
    Without -o allow_other only the user who mounted may enter the mount
    at all; with it, add default_permissions to have the kernel check
    as well.
  * Opening a FIFO sends memfs no request (the kernel opens it itself),
    so without -o default_permissions a user whom its mode denies opens
    another user's FIFO all the same, where tmpfs answers EACCES. No
    script can refuse it; default_permissions closes it.
  * One relaxation: a caller who may write a file may clear its
    set-user-ID and set-group-ID bits with chmod, since that is how the
    kernel clears them when such a user writes to or truncates the file.
  * When a chown (or a write by another user) clears set-user-ID or
    set-group-ID, the kernel's FUSE module sends a mode without the
    sticky bit too, so a file with the sticky bit and one of those loses
    all three where tmpfs keeps the sticky bit.
  * The kernel caches no attributes (attr_timeout = 0, set in init): with
    libfuse's high-level API each name of a hard-linked file is a kernel
    inode of its own, and a cached nlink, size or mode of one name would
    not see a change made through another.
  * A file that is open when its last name goes (unlink, or a rename
    over it) works through its descriptors as on tmpfs: fstat says
    st_nlink 0, fchmod, fchown, futimens, the f*xattr calls, lseek and
    fstatfs work, /proc/self/fd/N opens it again. libfuse keeps such a
    file under a hidden name, ".fuse_hidden" and 16 hex digits, in the
    same directory until the last close (HIDDEN below). readdir does not
    show that name, but a process that names it reaches the file, and a
    rename onto a new name of that form hides the file as unlink does.
    Once the directory that held the file is removed too, libfuse has no
    path for it: fstat, fchmod, fchown, futimens, the f*xattr calls,
    lseek with SEEK_DATA or SEEK_HOLE and fstatfs on it fail with ESTALE
    (reads, writes, ftruncate, fallocate and fsync still work).
  * statfs reports a fixed size of 16 GiB and 1 Mi inodes, counted like
    tmpfs counts them (a page per 4 KiB page of data or long symlink, an
    inode per directory and per name of anything else). Only fallocate
    keeps to it (ENOSPC); writes, creates and links do not.
  * Access times always follow relatime, whatever the mount options say:
    a read, readdir or readlink sets atime only when it is not newer than
    mtime or ctime, or is more than a day old. A read that starts at or
    past the end of the file never reaches memfs (the kernel answers it),
    so it sets no atime, where tmpfs sets one.
  * The kernel answers SEEK_DATA and SEEK_HOLE on a directory itself.
  * Device nodes are stored, but FUSE mounts are nodev unless root mounts
    with -o dev, so opening one fails with EACCES where tmpfs opens it.
  * No POSIX ACLs (the kernel answers EOPNOTSUPP for system.posix_acl_*),
    no limit on the total size of extended attributes, no locks beyond
    the kernel's local ones.
  * Cost: file data sits in Lua strings of 64 KiB, so a small write into
    the middle of a file copies the 64 KiB around it; a path is walked
    from the root at every call (root's calls start from the directory
    they reached last), so calls cost time in proportion to the depth.
]]

local luafs = require "luafs"

local sys = luafs.sys

local S_IFMT, S_IFDIR, S_IFREG, S_IFLNK, S_IFCHR =
  luafs.S_IFMT, luafs.S_IFDIR, luafs.S_IFREG, luafs.S_IFLNK, luafs.S_IFCHR
local S_ISUID, S_ISGID, S_ISVTX = luafs.S_ISUID, luafs.S_ISGID, luafs.S_ISVTX
local R_OK, W_OK, X_OK = luafs.R_OK, luafs.W_OK, luafs.X_OK
local RENAME_NOREPLACE, RENAME_EXCHANGE = luafs.RENAME_NOREPLACE, luafs.RENAME_EXCHANGE
local RENAME_WHITEOUT = luafs.RENAME_WHITEOUT
local PERMS = tonumber("7777", 8)   -- permission, setuid, setgid and sticky bits
local ANY_X = tonumber("111", 8)    -- the three execute bits

local CHUNK = 64 * 1024             -- file contents are stored in chunks of this size
local PAGE = 4096                   -- st_blksize, and the unit of st_blocks accounting
local SECTORS = PAGE // 512         -- st_blocks of one page
local DIRENT = 20                   -- tmpfs counts 20 bytes of st_size per directory entry
local NAME_MAX = 255
local SHORT_SYMLINK = 128           -- tmpfs keeps shorter targets in the inode, longer in a page
local TOTAL_PAGES = 4 * 1024 * 1024 -- statfs: 16 GiB
local TOTAL_INODES = 1024 * 1024
local ZEROS = string.rep("\0", CHUNK)

-- What node.pages[p] says about page p of a file (absent: a hole).
local DATA = 1                      -- written: data, for SEEK_DATA
local ALLOCATED = 2                 -- reserved by fallocate: counts in st_blocks, reads as a hole

-- The version of the tree's layout in memory; a reload checks it.
local FORMAT = 1

do
  local n = luafs.states and luafs.states() or 1
  if n > 1 then
    error(string.format("memfs.lua keeps its files in one Lua state, so %d states "
      .. "would serve %d different trees; mount it without -o states=%d", n, n, n), 0)
  end
end

--[[ The store: the whole filesystem. It sits in luafs.stash, so that the
code of a reload finds the tree the old code built and goes on serving
it. Its fields: root (the root directory's node), next_ino, and what
statfs reports: inodes and pages in use. ]]
local store = luafs.stash and luafs.stash.memfs
local fresh = store == nil
if fresh then
  store = { format = FORMAT, next_ino = 1, inodes = 0, pages = 0 }
  if luafs.stash then luafs.stash.memfs = store end
end

--[[ Time: the time of day to the nanosecond. ]]
local now = sys.clock_gettime

local function is_dir(node) return node.mode & S_IFMT == S_IFDIR end
local function is_reg(node) return node.mode & S_IFMT == S_IFREG end

-- A change to the inode itself (mode, owner, links, xattrs): ctime.
local function changed(node)
  node.ctime, node.ctime_nsec = now()
end

-- A change to the contents (data, directory entries): mtime and ctime.
local function modified(node)
  local sec, nsec = now()
  node.mtime, node.mtime_nsec = sec, nsec
  node.ctime, node.ctime_nsec = sec, nsec
end

local function not_after(s1, ns1, s2, ns2)
  return s1 < s2 or (s1 == s2 and ns1 <= ns2)
end

-- A read of the contents: atime, relatime style (see the header).
local function accessed(node)
  local sec, nsec = now()
  if not_after(node.atime, node.atime_nsec, node.mtime, node.mtime_nsec)
      or not_after(node.atime, node.atime_nsec, node.ctime, node.ctime_nsec)
      or sec - node.atime >= 24 * 3600 then
    node.atime, node.atime_nsec = sec, nsec
  end
end

--[[ Nodes. A node is one inode: a table with the struct stat fields it
needs under their luafs names, plus
  entries, parent   for a directory (name -> node, and the parent node),
  hidden            for a directory, the files open after their name in it
                    went (libfuse's hidden name -> node; see HIDDEN below),
  chunks, pages     for a regular file (chunk index -> string, and page
                    index -> DATA or ALLOCATED, which st_blocks counts),
  target            for a symbolic link,
  xattrs            name -> value,
  opens             how many open handles refer to it. ]]
local function new_node(mode, uid, gid)
  local sec, nsec = now()
  local node = {
    ino = store.next_ino, mode = mode, nlink = 1, uid = uid, gid = gid, rdev = 0,
    size = 0, blocks = 0,
    atime = sec, atime_nsec = nsec, mtime = sec, mtime_nsec = nsec,
    ctime = sec, ctime_nsec = nsec,
    xattrs = {}, opens = 0,
  }
  store.next_ino = store.next_ino + 1
  store.inodes = store.inodes + 1
  if is_dir(node) then
    node.entries, node.nlink, node.size = {}, 2, 2 * DIRENT
  elseif is_reg(node) then
    node.chunks, node.pages = {}, {}
  end
  return node
end

local function add_blocks(node, pages)
  node.blocks = node.blocks + pages * SECTORS
  store.pages = store.pages + pages
end

-- A node dies when no name and no open handle refers to it any more.
local function maybe_free(node)
  if node.nlink == 0 and node.opens == 0 and not node.freed then
    node.freed = true
    add_blocks(node, -(node.blocks // SECTORS))
    store.inodes = store.inodes - 1
    node.chunks, node.pages, node.xattrs = nil, nil, nil
  end
end

-- One name of node is gone. Like tmpfs, each name of a file other than
-- the last one holds an inode of statfs's count too.
local function drop_link(node)
  if is_dir(node) then
    node.nlink = 0
  else
    if node.nlink > 1 then store.inodes = store.inodes - 1 end
    node.nlink = node.nlink - 1
  end
  changed(node)
  maybe_free(node)
end

-- The two changes to a directory; they keep st_size and st_nlink like tmpfs.
local function add_entry(dir, name, node)
  dir.entries[name] = node
  dir.size = dir.size + DIRENT
  if is_dir(node) then
    node.parent = dir
    dir.nlink = dir.nlink + 1
  end
end

local function del_entry(dir, name)
  local node = dir.entries[name]
  dir.entries[name] = nil
  dir.size = dir.size - DIRENT
  if is_dir(node) then dir.nlink = dir.nlink - 1 end
end

-- Whether directory a is dir itself or one of dir's ancestors.
local function is_ancestor(a, dir)
  while true do
    if dir == a then return true end
    if dir == dir.parent then return false end
    dir = dir.parent
  end
end

--[[ Permissions, as the kernel's generic_permission checks them. ctx is
luafs.context() of the caller. Root may read and write anything, search
any directory and execute any file with an execute bit; others get the
owner's, the group's or everyone's bits. R_OK, W_OK and X_OK are 4, 2
and 1, the same as the rwx bits. ]]
local function in_group(gid, ctx)
  if gid == ctx.gid then return true end
  local groups = ctx.groups
  if groups == nil then
    groups = luafs.groups() or {}
    ctx.groups = groups
  end
  for _, g in ipairs(groups) do
    if g == gid then return true end
  end
  return false
end

local function permitted(node, mask, ctx)
  if ctx.uid == 0 then
    return mask & X_OK == 0 or is_dir(node) or node.mode & ANY_X ~= 0
  end
  local bits
  if ctx.uid == node.uid then
    bits = node.mode >> 6
  elseif in_group(node.gid, ctx) then
    bits = node.mode >> 3
  else
    bits = node.mode
  end
  return bits & mask == mask
end

local function check_access(node, mask, ctx)
  if not permitted(node, mask, ctx) then luafs.error(luafs.EACCES) end
end

local function is_owner(node, ctx)
  return ctx.uid == 0 or ctx.uid == node.uid
end

-- Creating or removing a name in dir needs write and search permission.
local function check_dir_write(dir, ctx)
  if ctx.uid ~= 0 then check_access(dir, W_OK | X_OK, ctx) end
end

-- In a sticky directory only the owner of a name (or of the directory)
-- may remove or replace it.
local function check_sticky(dir, node, ctx)
  if dir.mode & S_ISVTX ~= 0 and not is_owner(node, ctx) and ctx.uid ~= dir.uid then
    luafs.error(luafs.EPERM)
  end
end

--[[ Paths. libfuse hands over absolute paths with symlinks already
resolved by the kernel; each directory on the way needs search
permission. These helpers raise luafs.error(errno), which the host
answers as -errno without logging anything.

Walking a path costs time in proportion to its depth, and the calls that
work in one directory come in runs, so the last directory that root's
calls reached is remembered with its path, and a path below it is walked
from there (one above it, up its parents). Only rename and rmdir can move
or remove a directory; they forget it when it may be the one remembered.
Other callers always walk from the root, checking each directory on the
way. ]]
local cached_path, cached_dir

local function forget_cached()
  cached_path, cached_dir = nil, nil
end

local function lookup(path, ctx)
  if path == nil then luafs.error(luafs.ENOENT) end
  local node, rest = store.root, path
  local search = ctx.uid ~= 0
  if not search and cached_path then
    local n, m = #cached_path, #path
    if path == cached_path then return cached_dir end
    if m > n and path:byte(n + 1) == 47 and path:sub(1, n) == cached_path then
      node, rest = cached_dir, path:sub(n + 2)  -- below the remembered directory
    elseif m > 1 and m < n and cached_path:byte(m + 1) == 47 and cached_path:sub(1, m) == path then
      node = cached_dir                         -- above it: go up
      for _ in cached_path:sub(m + 2):gmatch("[^/]+") do node = node.parent end
      return node
    end
  end
  for name in rest:gmatch("[^/]+") do
    if not is_dir(node) then luafs.error(luafs.ENOTDIR) end
    if search then check_access(node, X_OK, ctx) end
    local child = node.entries[name]
    if child == nil and node.hidden then child = node.hidden[name] end
    if child == nil then
      luafs.error(#name > NAME_MAX and luafs.ENAMETOOLONG or luafs.ENOENT)
    end
    node = child
  end
  if not search and node ~= store.root and is_dir(node) then
    cached_path, cached_dir = path, node
  end
  return node
end

-- The directory that holds path's last component, and that component.
local function lookup_parent(path, ctx)
  local dirpath, name = path:match("^(.*)/([^/]+)$")
  if name == nil then luafs.error(luafs.EINVAL) end
  local dir = lookup(dirpath, ctx)
  if not is_dir(dir) then luafs.error(luafs.ENOTDIR) end
  if ctx.uid ~= 0 then check_access(dir, X_OK, ctx) end
  if #name > NAME_MAX then luafs.error(luafs.ENAMETOOLONG) end
  return dir, name
end

-- The node of an open file (its handle) or else of the path.
local function node_of(path, fi, ctx)
  local node = fi and fi.fh
  if node then return node end
  return lookup(path, ctx)
end

--[[ File contents. chunks[i] holds the bytes from i * CHUNK on; it may be
shorter than CHUNK or missing (a hole), and every byte below size that
no chunk holds is zero; no chunk holds bytes at or past size. A write
replaces only the chunks it touches, so writing a large file costs time
in proportion to its size. Apart from the chunks, node.pages records
which pages hold data or were allocated, for st_blocks and SEEK_DATA.
The kernel keeps offset + length below 2^63, which Lua's integers hold;
sums that could pass it are avoided. ]]
local function set_chunk(node, i, s)
  if s == "" then s = nil end
  node.chunks[i] = s
end

local function set_page(node, p, state)
  local old = node.pages[p]
  if old == state then return end
  node.pages[p] = state
  if old == nil then
    add_blocks(node, 1)
  elseif state == nil then
    add_blocks(node, -1)
  end
end

local function zeros(n)
  if n == CHUNK then return ZEROS end
  return ZEROS:sub(1, n)
end

local function read_data(node, size, offset)
  if offset >= node.size then return "" end
  local stop = node.size
  if size < stop - offset then stop = offset + size end
  local parts = {}
  local pos = offset
  while pos < stop do
    local i = pos // CHUNK
    local base = i * CHUNK
    local from, to = pos - base, math.min(stop - base, CHUNK) -- [from, to) in the chunk
    local chunk = node.chunks[i] or ""
    local piece = chunk
    if from > 0 or to < #chunk then piece = chunk:sub(from + 1, to) end -- sub copies
    if #piece < to - from then piece = piece .. zeros(to - from - #piece) end
    parts[#parts + 1] = piece
    pos = base + to
  end
  if #parts == 1 then return parts[1] end
  return table.concat(parts)
end

-- Puts data at offset into the chunks; the pages it covers are the
-- caller's business.
local function put_data(node, data, offset)
  local len = #data
  local done = 0
  while done < len do
    local pos = offset + done
    local i = pos // CHUNK
    local from = pos - i * CHUNK
    local n = math.min(CHUNK - from, len - done)
    local piece = n == len and data or data:sub(done + 1, done + n)
    local old = node.chunks[i]
    if from == 0 and (old == nil or n >= #old) then
      set_chunk(node, i, piece)
    else
      old = old or ""
      if #old < from then old = old .. zeros(from - #old) end
      set_chunk(node, i, old:sub(1, from) .. piece .. old:sub(from + n + 1))
    end
    done = done + n
  end
end

local function write_data(node, data, offset)
  local len = #data
  if len == 0 then return end
  put_data(node, data, offset)
  for p = offset // PAGE, (offset + len - 1) // PAGE do set_page(node, p, DATA) end
  if offset + len > node.size then node.size = offset + len end
end

-- Drops every chunk byte and page from `size` on.
local function cut(node, size)
  local last = size // CHUNK   -- the chunk that holds byte `size`
  local keep = size - last * CHUNK
  for i in pairs(node.chunks) do
    if i > last or (i == last and keep == 0) then set_chunk(node, i, nil) end
  end
  local chunk = node.chunks[last]
  if keep > 0 and chunk and #chunk > keep then set_chunk(node, last, chunk:sub(1, keep)) end
  local first_gone = size // PAGE + (size % PAGE > 0 and 1 or 0)
  for p in pairs(node.pages) do
    if p >= first_gone then set_page(node, p, nil) end
  end
end

-- Like tmpfs, a truncation that does not grow the file also frees what
-- fallocate reserved past its end.
local function resize(node, size)
  if size <= node.size then cut(node, size) end
  node.size = size
end

-- Zeroes the bytes [offset, offset + len) below size, and frees the pages
-- that lie wholly inside the range, as tmpfs's hole punching does.
local function punch(node, offset, len)
  local stop = offset + len
  local first = offset // PAGE + (offset % PAGE > 0 and 1 or 0)
  local last = stop // PAGE - 1
  for p in pairs(node.pages) do
    if p >= first and p <= last then set_page(node, p, nil) end
  end
  for i, chunk in pairs(node.chunks) do
    local base = i * CHUNK
    local from, to = math.max(offset - base, 0), math.min(stop - base, #chunk)
    if from == 0 and to >= #chunk then
      set_chunk(node, i, nil)
    elseif from < to then
      set_chunk(node, i, chunk:sub(1, from) .. zeros(to - from) .. chunk:sub(to + 1))
    end
  end
end

--[[ The stat table. getattr and readdir both build it here. ]]
local function stat(node)
  return {
    ino = node.ino, mode = node.mode, nlink = node.nlink,
    uid = node.uid, gid = node.gid, rdev = node.rdev,
    size = node.size, blksize = PAGE, blocks = node.blocks,
    atime = node.atime, atime_nsec = node.atime_nsec,
    mtime = node.mtime, mtime_nsec = node.mtime_nsec,
    ctime = node.ctime, ctime_nsec = node.ctime_nsec,
  }
end

--[[ Creating a name: the common part of mknod, create, mkdir, symlink.
The kernel has already applied the caller's umask to mode. Like tmpfs, a
new node in a setgid directory takes the directory's group, and a new
directory there is setgid too. ]]
local function add_node(dir, name, mode, ctx)
  local gid = ctx.gid
  if dir.mode & S_ISGID ~= 0 then
    gid = dir.gid
    if mode & S_IFMT == S_IFDIR then mode = mode | S_ISGID end
  end
  local node = new_node(mode, ctx.uid, gid)
  add_entry(dir, name, node)
  modified(dir)
  return node
end

local function make(path, mode, ctx)
  local dir, name = lookup_parent(path, ctx)
  if dir.entries[name] then luafs.error(luafs.EEXIST) end
  check_dir_write(dir, ctx)
  return add_node(dir, name, mode, ctx)
end

-- The operations.
local fs = {}

function fs.init(_conn, cfg)
  cfg.use_ino = true      -- st_ino is ours, so hard links share it
  cfg.hard_remove = false -- libfuse keeps a path for open unlinked files (HIDDEN)
  -- libfuse's high-level API gives each name of a hard-linked file its own
  -- kernel inode, so attributes cached for one name would miss a write,
  -- chmod or link made through another. Have the kernel ask every time.
  cfg.attr_timeout = 0
  -- The root belongs to whoever mounts the filesystem: the host's user
  -- (init has no caller; luafs.context() says uid 0 there).
  store.root.uid, store.root.gid = sys.getuid(), sys.getgid()
end

-- A reload keeps the tree (see the header): the new chunk found it in
-- luafs.stash already; here it makes sure it can read it.
function fs.reload(_old)
  if store.format ~= FORMAT then
    error(string.format("memfs.lua: the files in memory have layout %s, this code "
      .. "knows layout %d; unmount and mount again to change layouts",
      tostring(store.format), FORMAT), 0)
  end
  luafs.log(string.format("memfs.lua: the new code serves the same %d inodes", store.inodes))
end

local last_hide -- what the last hide() did, for unhide() (see HIDDEN below)

-- libfuse takes one from the link count of a file that it hid, as if the
-- hidden name were a link; memfs stopped counting it when it hid the file.
function fs.getattr(path, fi)
  last_hide = nil
  local ctx = luafs.context()
  local st = stat(node_of(path, fi, ctx))
  if path and path:find("/.fuse_hidden", 1, true) then
    local dir, name = lookup_parent(path, ctx)
    if dir.entries[name] == nil and dir.hidden and dir.hidden[name] then st.nlink = st.nlink + 1 end
  end
  return st
end

function fs.access(path, mask)
  local ctx = luafs.context()
  local node = lookup(path, ctx)
  if mask ~= luafs.F_OK then check_access(node, mask, ctx) end
end

function fs.readlink(path)
  local node = lookup(path, luafs.context())
  if node.target == nil then luafs.error(luafs.EINVAL) end
  accessed(node)
  return node.target
end

function fs.mknod(path, mode, rdev)
  if mode & S_IFMT == 0 then mode = mode | S_IFREG end
  local node = make(path, mode & (S_IFMT | PERMS), luafs.context())
  node.rdev = rdev
end

function fs.mkdir(path, mode)
  make(path, S_IFDIR | (mode & PERMS), luafs.context())
end

function fs.symlink(target, path)
  local node = make(path, S_IFLNK | tonumber("777", 8), luafs.context())
  node.target, node.size = target, #target
  if #target >= SHORT_SYMLINK then add_blocks(node, 1) end
end

-- The checks of removing name from dir, in the kernel's order.
local function check_remove(dir, node, ctx, want_dir)
  check_dir_write(dir, ctx)
  check_sticky(dir, node, ctx)
  if want_dir and not is_dir(node) then luafs.error(luafs.ENOTDIR) end
  if not want_dir and is_dir(node) then luafs.error(luafs.EISDIR) end
end

-- unlink(2) of name in dir; returns the node it named.
local function remove_file(dir, name, ctx)
  local node = dir.entries[name]
  if node == nil then luafs.error(luafs.ENOENT) end
  check_remove(dir, node, ctx, false)
  del_entry(dir, name)
  modified(dir)
  drop_link(node)
  return node
end

--[[ Files open after their name is gone. The kernel sends fstat, fchmod,
fchown, futimens, the f*xattr calls, fstatfs and an open of
/proc/self/fd/N with the inode alone, and libfuse's high-level API
answers ESTALE for an inode that has no path, before memfs sees the call.
So memfs leaves hard_remove off (init): libfuse then renames a file that
is open when its name is unlinked, or replaced by a rename, to a hidden
name in the same directory, uses that name as the file's path, and
unlinks it after the last close. memfs takes that rename for the unlink
that it stands for (link count, times, statfs) and keeps the hidden name
in dir.hidden, where lookups find it and readdir, rmdir and statfs do
not. ]]
local HIDDEN = "^%.fuse_hidden" .. string.rep("%x", 16) .. "$"

--[[ For a rename onto an open file, libfuse hides the target before it
passes the rename on, and leaves it hidden when memfs refuses the rename.
So the last hide is kept for the call that follows it: when that is a
rename by the same process onto the name that was hidden, and it fails,
the name comes back (unhide). A getattr forgets it: the kernel looks up
a name that was unlinked before it renames onto it (unless the mount's
negative_timeout lets it remember that the name is missing), and that
lookup is a getattr. ]]
local function hide(dir, name, hidden_name, ctx, path)
  local node = dir.entries[name]
  if node == nil then luafs.error(luafs.ENOENT) end
  local u = {
    dir = dir, name = name, node = node, path = path, pid = ctx.pid,
    dir_times = { dir.mtime, dir.mtime_nsec, dir.ctime, dir.ctime_nsec },
    ctime = { node.ctime, node.ctime_nsec },
  }
  remove_file(dir, name, ctx)
  dir.hidden = dir.hidden or {}
  dir.hidden[hidden_name] = node
  last_hide = u
end

-- Undoes hide(); the hidden name stays, as libfuse keeps using it.
local function unhide(u)
  add_entry(u.dir, u.name, u.node)
  u.node.nlink = u.node.nlink + 1
  if u.node.nlink > 1 then store.inodes = store.inodes + 1 end
  u.dir.mtime, u.dir.mtime_nsec, u.dir.ctime, u.dir.ctime_nsec = table.unpack(u.dir_times)
  u.node.ctime, u.node.ctime_nsec = u.ctime[1], u.ctime[2]
end

function fs.unlink(path)
  local ctx = luafs.context()
  local dir, name = lookup_parent(path, ctx)
  if dir.entries[name] == nil and dir.hidden and dir.hidden[name] then
    dir.hidden[name] = nil -- libfuse's unlink after the last close
    return
  end
  remove_file(dir, name, ctx)
end

function fs.rmdir(path)
  local ctx = luafs.context()
  local dir, name = lookup_parent(path, ctx)
  local node = dir.entries[name]
  if node == nil then luafs.error(luafs.ENOENT) end
  check_remove(dir, node, ctx, true)
  if next(node.entries) ~= nil then luafs.error(luafs.ENOTEMPTY) end
  if cached_dir == node then forget_cached() end -- (it is empty: nothing below it is cached)
  del_entry(dir, name)
  modified(dir)
  drop_link(node)
end

--[[ With the kernel's fs.protected_hardlinks on (read once, at load),
only the owner may link to a file that they could not read and write,
or that is not a plain regular file; the kernel leaves that check to
memfs unless the mount has default_permissions. ]]
local protected_hardlinks
do
  local f = io.open("/proc/sys/fs/protected_hardlinks")
  protected_hardlinks = f ~= nil and f:read("n") == 1
  if f then f:close() end
end

local function check_hardlink(node, ctx)
  if not protected_hardlinks or is_owner(node, ctx) then return end
  if not is_reg(node) or node.mode & S_ISUID ~= 0
      or node.mode & (S_ISGID | tonumber("10", 8)) == S_ISGID | tonumber("10", 8)
      or not permitted(node, R_OK | W_OK, ctx) then
    luafs.error(luafs.EPERM)
  end
end

function fs.link(oldpath, newpath)
  local ctx = luafs.context()
  local node = lookup(oldpath, ctx)
  local dir, name = lookup_parent(newpath, ctx)
  if dir.entries[name] then luafs.error(luafs.EEXIST) end
  check_hardlink(node, ctx)
  check_dir_write(dir, ctx)
  if is_dir(node) then luafs.error(luafs.EPERM) end
  add_entry(dir, name, node)
  node.nlink = node.nlink + 1
  store.inodes = store.inodes + 1
  changed(node)
  modified(dir)
end

--[[ rename(from, to, flags), with tmpfs's errors: EEXIST for
RENAME_NOREPLACE onto an existing name, EINVAL for moving a directory
into itself, ENOTDIR, EISDIR and ENOTEMPTY for a target of the wrong
kind; permissions as the kernel's may_delete and may_create check them.
Renaming a name onto another name of the same inode does nothing.
RENAME_WHITEOUT leaves a whiteout (a character device 0:0) behind. ]]
local KNOWN_FLAGS = RENAME_NOREPLACE | RENAME_EXCHANGE | RENAME_WHITEOUT

local function rename(from, to, flags, ctx)
  local noreplace = flags & RENAME_NOREPLACE ~= 0
  local exchange = flags & RENAME_EXCHANGE ~= 0
  local whiteout = flags & RENAME_WHITEOUT ~= 0
  if flags & ~KNOWN_FLAGS ~= 0 or (exchange and (noreplace or whiteout)) then
    luafs.error(luafs.EINVAL)
  end
  local fdir, fname = lookup_parent(from, ctx)
  local node = fdir.entries[fname]
  if node == nil then luafs.error(luafs.ENOENT) end
  local tdir, tname = lookup_parent(to, ctx)
  forget_cached()
  local target = tdir.entries[tname]
  if flags == 0 and tdir == fdir and target == nil and tname:match(HIDDEN) then
    return hide(fdir, fname, tname, ctx, from)
  end
  if target and noreplace then luafs.error(luafs.EEXIST) end
  if exchange and target == nil then luafs.error(luafs.ENOENT) end
  if (is_dir(node) and is_ancestor(node, tdir)) or
      (exchange and is_dir(target) and is_ancestor(target, fdir)) then
    luafs.error(luafs.EINVAL)
  end
  if target == node then return end

  check_remove(fdir, node, ctx, is_dir(node))
  if target then
    check_remove(tdir, target, ctx, is_dir(exchange and target or node))
  else
    check_dir_write(tdir, ctx)
  end
  if fdir ~= tdir and ctx.uid ~= 0 then
    -- a directory that moves changes its ".." entry
    if is_dir(node) then check_access(node, W_OK, ctx) end
    if exchange and is_dir(target) then check_access(target, W_OK, ctx) end
  end

  if exchange then
    del_entry(fdir, fname)
    del_entry(tdir, tname)
    add_entry(fdir, fname, target)
    add_entry(tdir, tname, node)
    changed(node)
    changed(target)
    modified(fdir)
    modified(tdir)
    return
  end

  if target then
    if is_dir(target) and next(target.entries) ~= nil then luafs.error(luafs.ENOTEMPTY) end
    del_entry(tdir, tname)
    drop_link(target)
  end
  del_entry(fdir, fname)
  add_entry(tdir, tname, node)
  if whiteout then
    add_node(fdir, fname, S_IFCHR, ctx)
  end
  changed(node)
  modified(fdir)
  modified(tdir)
end

function fs.rename(from, to, flags)
  local ctx = luafs.context()
  local u = last_hide
  last_hide = nil
  local ok, err = pcall(rename, from, to, flags, ctx)
  if not ok then
    if u and u.path == to and u.pid == ctx.pid and u.dir.entries[u.name] == nil then unhide(u) end
    error(err, 0)
  end
end

--[[ chmod: the owner or root. Like Linux, a caller outside the file's
group cannot set setgid; the bit is dropped, not refused. Anyone who may
write the file may clear its setuid and setgid bits (see the header). ]]
function fs.chmod(path, mode, fi)
  local ctx = luafs.context()
  local node = node_of(path, fi, ctx)
  mode = mode & PERMS
  if not is_owner(node, ctx) then
    local old = node.mode & PERMS
    local cleared = old & ~mode
    if mode & ~old ~= 0 or cleared == 0 or cleared & ~(S_ISUID | S_ISGID) ~= 0
        or not permitted(node, W_OK, ctx) then
      luafs.error(luafs.EPERM)
    end
  elseif ctx.uid ~= 0 and not in_group(node.gid, ctx) then
    mode = mode & ~S_ISGID
  end
  node.mode = (node.mode & S_IFMT) | mode
  changed(node)
end

--[[ chown: -1 leaves a field unchanged. Only root gives a file away; its
owner may change its group to one of their own groups. The kernel
clears setuid and setgid itself, with a chmod, when it has to. ]]
function fs.chown(path, uid, gid, fi)
  local ctx = luafs.context()
  local node = node_of(path, fi, ctx)
  if ctx.uid ~= 0 then
    local owner = ctx.uid == node.uid
    if uid ~= -1 and not (owner and uid == node.uid) then luafs.error(luafs.EPERM) end
    if gid ~= -1 and not (owner and (gid == node.gid or in_group(gid, ctx))) then
      luafs.error(luafs.EPERM)
    end
  end
  if uid ~= -1 then node.uid = uid end
  if gid ~= -1 then node.gid = gid end
  changed(node)
end

--[[ truncate: by name it needs write permission (an ftruncate has it
from the open). Like tmpfs, it sets mtime and ctime even when the size
stays the same. ]]
function fs.truncate(path, size, fi)
  local ctx = luafs.context()
  local node = node_of(path, fi, ctx)
  if is_dir(node) then luafs.error(luafs.EISDIR) end
  if not is_reg(node) then luafs.error(luafs.EINVAL) end
  if fi == nil and ctx.uid ~= 0 then check_access(node, W_OK, ctx) end
  resize(node, size)
  modified(node)
end

-- utimens: explicit times need the owner or root; UTIME_NOW alone needs
-- write permission too. Each time may be UTIME_NOW or UTIME_OMIT.
function fs.utimens(path, atime, atime_nsec, mtime, mtime_nsec, fi)
  local ctx = luafs.context()
  local node = node_of(path, fi, ctx)
  local NOW, OMIT = luafs.UTIME_NOW, luafs.UTIME_OMIT
  if atime_nsec == OMIT and mtime_nsec == OMIT then return end
  if not is_owner(node, ctx) then
    if (atime_nsec ~= NOW and atime_nsec ~= OMIT) or (mtime_nsec ~= NOW and mtime_nsec ~= OMIT) then
      luafs.error(luafs.EPERM)
    end
    check_access(node, W_OK, ctx)
  end
  local sec, nsec = now()
  if atime_nsec == NOW then
    node.atime, node.atime_nsec = sec, nsec
  elseif atime_nsec ~= OMIT then
    node.atime, node.atime_nsec = atime, atime_nsec
  end
  if mtime_nsec == NOW then
    node.mtime, node.mtime_nsec = sec, nsec
  elseif mtime_nsec ~= OMIT then
    node.mtime, node.mtime_nsec = mtime, mtime_nsec
  end
  node.ctime, node.ctime_nsec = sec, nsec
end

--[[ Open files. The handle is the node itself, so reads and writes on a
file that was unlinked while open still reach its data through fi.fh.
libfuse passes O_TRUNC to open (atomic_o_trunc is on by default), so open
truncates; tmpfs sets the times on O_TRUNC even when the file was empty. ]]
local function open_mask(flags)
  local acc = flags & luafs.O_ACCMODE
  local mask = 0
  if acc == luafs.O_RDONLY or acc == luafs.O_RDWR then mask = mask | R_OK end
  if acc == luafs.O_WRONLY or acc == luafs.O_RDWR or flags & luafs.O_TRUNC ~= 0 then mask = mask | W_OK end
  return mask
end

local function opened(node, flags)
  if flags & luafs.O_TRUNC ~= 0 and is_reg(node) then
    resize(node, 0)
    modified(node)
  end
  node.opens = node.opens + 1
  return node
end

function fs.open(path, fi)
  local ctx = luafs.context()
  local node = lookup(path, ctx)
  check_access(node, open_mask(fi.flags), ctx)
  return opened(node, fi.flags)
end

-- The kernel calls create after a lookup found no such name; if another
-- process made it meanwhile, create behaves as open(2) with O_CREAT does.
function fs.create(path, mode, fi)
  local ctx = luafs.context()
  local dir, name = lookup_parent(path, ctx)
  if dir.entries[name] then
    if fi.flags & luafs.O_EXCL ~= 0 then luafs.error(luafs.EEXIST) end
    return fs.open(path, fi)
  end
  check_dir_write(dir, ctx)
  local node = add_node(dir, name, S_IFREG | (mode & PERMS), ctx)
  node.opens = node.opens + 1
  return node
end

function fs.read(path, size, offset, fi)
  local node = node_of(path, fi, luafs.context())
  if is_dir(node) then luafs.error(luafs.EISDIR) end
  accessed(node)
  return read_data(node, size, offset)
end

-- With O_APPEND every write goes to the end, as Linux does even for
-- pwrite. Write-back of mmap'ed pages (fi.writepage) keeps its offset.
function fs.write(path, data, offset, fi)
  local node = node_of(path, fi, luafs.context())
  if fi and fi.flags & luafs.O_APPEND ~= 0 and not fi.writepage then offset = node.size end
  write_data(node, data, offset)
  modified(node)
  return #data
end

--[[ fallocate: tmpfs's modes. Plain and FALLOC_FL_KEEP_SIZE reserve
pages (st_blocks grows, the range still reads as zeros and counts as a
hole for SEEK_DATA), and answer ENOSPC when the range has more pages
than statfs says are free; FALLOC_FL_PUNCH_HOLE (with KEEP_SIZE, which
the kernel insists on) zeroes the range and frees its whole pages. ]]
function fs.fallocate(path, mode, offset, len, fi)
  local node = node_of(path, fi, luafs.context())
  if not is_reg(node) then luafs.error(luafs.ENODEV) end
  local keep = mode & luafs.FALLOC_FL_KEEP_SIZE ~= 0
  if mode & luafs.FALLOC_FL_PUNCH_HOLE ~= 0 then
    if mode ~= luafs.FALLOC_FL_PUNCH_HOLE | luafs.FALLOC_FL_KEEP_SIZE then
      luafs.error(luafs.EOPNOTSUPP)
    end
    punch(node, offset, len)
    modified(node)
    return
  end
  if mode & ~luafs.FALLOC_FL_KEEP_SIZE ~= 0 then luafs.error(luafs.EOPNOTSUPP) end
  local first, last = offset // PAGE, (offset + len - 1) // PAGE
  if last - first >= TOTAL_PAGES - store.pages then luafs.error(luafs.ENOSPC) end
  for p = first, last do
    if node.pages[p] == nil then set_page(node, p, ALLOCATED) end
  end
  if not keep and offset + len > node.size then
    node.size = offset + len
    modified(node)
  elseif not keep then
    changed(node)
  end
end

--[[ lseek: only SEEK_DATA and SEEK_HOLE reach the filesystem. Data is
what was written, in whole pages, as tmpfs finds it in its page cache;
pages that fallocate reserved count as holes. ]]
function fs.lseek(path, offset, whence, fi)
  local node = node_of(path, fi, luafs.context())
  if offset < 0 or offset >= node.size then luafs.error(luafs.ENXIO) end
  local first = offset // PAGE
  if whence == luafs.SEEK_DATA then
    local best
    for p, state in pairs(node.pages) do
      if state == DATA and p >= first and (best == nil or p < best) then best = p end
    end
    if best == nil or best * PAGE >= node.size then luafs.error(luafs.ENXIO) end
    return math.max(offset, best * PAGE)
  elseif whence == luafs.SEEK_HOLE then
    local p, last = first, (node.size - 1) // PAGE
    while p <= last and node.pages[p] == DATA do p = p + 1 end
    if p > last then return node.size end
    return math.max(offset, p * PAGE)
  end
  luafs.error(luafs.EINVAL)
end

function fs.release(_path, fi)
  local node = fi.fh
  node.opens = node.opens - 1
  maybe_free(node)
end

function fs.fsync() end

function fs.opendir(path)
  local ctx = luafs.context()
  local node = lookup(path, ctx)
  if not is_dir(node) then luafs.error(luafs.ENOTDIR) end
  check_access(node, R_OK, ctx)
  node.opens = node.opens + 1
  return node
end

-- readdir returns the whole listing, sorted by name, with a stat table
-- per entry so that readdirplus needs no further getattr.
function fs.readdir(path, _offset, fi)
  local dir = node_of(path, fi, luafs.context())
  local names = {}
  for name in pairs(dir.entries) do names[#names + 1] = name end
  table.sort(names)
  local list = { { name = ".", stat = stat(dir) }, { name = "..", stat = stat(dir.parent) } }
  for _, name in ipairs(names) do
    list[#list + 1] = { name = name, stat = stat(dir.entries[name]) }
  end
  accessed(dir)
  return list
end

fs.releasedir = fs.release

function fs.fsyncdir() end

function fs.statfs()
  local bfree, ffree = TOTAL_PAGES - store.pages, TOTAL_INODES - store.inodes
  return {
    bsize = PAGE, frsize = PAGE,
    blocks = TOTAL_PAGES, bfree = bfree, bavail = bfree,
    files = TOTAL_INODES, ffree = ffree, favail = ffree,
    namemax = NAME_MAX,
  }
end

--[[ Extended attributes. Like tmpfs, memfs knows the user., trusted.
and security. namespaces. The kernel decides who may use trusted. and
security., and which kinds of files may have user. attributes; those
need read or write permission on the file. ]]
local function check_xattr(node, name, mask, ctx)
  local namespace, rest = name:match("^([^.]*)%.(.*)$")
  if namespace ~= "user" and namespace ~= "trusted" and namespace ~= "security" then
    luafs.error(luafs.EOPNOTSUPP)
  end
  if rest == "" then luafs.error(luafs.EINVAL) end
  if namespace == "user" and ctx.uid ~= 0 then check_access(node, mask, ctx) end
end

function fs.setxattr(path, name, value, flags)
  local ctx = luafs.context()
  local node = lookup(path, ctx)
  check_xattr(node, name, W_OK, ctx)
  local exists = node.xattrs[name] ~= nil
  if flags & luafs.XATTR_CREATE ~= 0 and exists then luafs.error(luafs.EEXIST) end
  if flags & luafs.XATTR_REPLACE ~= 0 and not exists then luafs.error(luafs.ENODATA) end
  node.xattrs[name] = value
  changed(node)
end

function fs.getxattr(path, name)
  local ctx = luafs.context()
  local node = lookup(path, ctx)
  check_xattr(node, name, R_OK, ctx)
  local value = node.xattrs[name]
  if value == nil then luafs.error(luafs.ENODATA) end
  return value
end

function fs.listxattr(path)
  local node = lookup(path, luafs.context())
  local names = {}
  for name in pairs(node.xattrs) do names[#names + 1] = name end
  table.sort(names)
  return names
end

function fs.removexattr(path, name)
  local ctx = luafs.context()
  local node = lookup(path, ctx)
  check_xattr(node, name, W_OK, ctx)
  if node.xattrs[name] == nil then luafs.error(luafs.ENODATA) end
  node.xattrs[name] = nil
  changed(node)
end

if fresh then
  store.root = new_node(S_IFDIR | tonumber("755", 8), 0, 0)
  store.root.parent = store.root
end

return fs
