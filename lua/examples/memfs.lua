--[[
memfs.lua: an in-memory filesystem, the reference example of luafs.

    luafs memfs.lua /mnt/mem -f

It aims to behave like tmpfs: regular files (sparse, binary, large),
directories, symbolic links, hard links, FIFOs and device nodes, rename
with RENAME_NOREPLACE and RENAME_EXCHANGE, modes, owners, nanosecond
timestamps and extended attributes (user., trusted. and security.).

Limits:
  * Everything lives in ordinary Lua tables of one Lua state, and is lost
    at unmount. It does not work in a pool of states: each state would
    load its own empty tree. A pooled version would keep the tree in
    luafs.shared.
  * Without -o default_permissions the kernel leaves permission checks to
    the filesystem. memfs checks them in access, open, opendir, chmod,
    chown, utimens and for user. xattrs, but not search permission on
    the directories of a path, nor write permission on the directories
    that create, unlink or rename change. To share it between users,
    mount with -o allow_other,default_permissions: the kernel then checks
    everything, as on tmpfs.
  * The kernel caches no attributes (attr_timeout = 0, set in init): with
    libfuse's high-level API each name of a hard-linked file is a kernel
    inode of its own, and a cached nlink, size or mode of one name would
    not see a change made through another. The price: fstat() of a file
    that was unlinked while open fails with ESTALE, because libfuse sends
    such a getattr without the file handle and no longer has a path.
  * statfs reports a fixed size, which writes do not enforce (no ENOSPC).
  * st_blocks counts the 4 KiB pages that writes touched, as on tmpfs.
  * Access times follow relatime: a read or readdir sets atime only when
    it is older than mtime or ctime, or more than a day old.
  * No POSIX ACLs (system.posix_acl_* answers EOPNOTSUPP), no locks beyond
    the kernel's local ones, no mmap-specific handling.
]]

local luafs = require "luafs"

local S_IFMT, S_IFDIR, S_IFREG, S_IFLNK = luafs.S_IFMT, luafs.S_IFDIR, luafs.S_IFREG, luafs.S_IFLNK
local S_ISGID = luafs.S_ISGID
local PERMS = tonumber("7777", 8)   -- permission, setuid, setgid and sticky bits
local ANY_X = tonumber("111", 8)    -- the three execute bits

local CHUNK = 64 * 1024             -- file contents are stored in chunks of this size
local PAGE = 4096                   -- st_blksize, and the unit of st_blocks accounting
local DIRENT = 20                   -- tmpfs counts 20 bytes of st_size per directory entry
local NAME_MAX = 255
local TOTAL_PAGES = 4 * 1024 * 1024 -- statfs: 16 GiB
local TOTAL_INODES = 1024 * 1024
local ZEROS = string.rep("\0", CHUNK)

-- Module state: the root, the inode counter, and what statfs reports.
local root
local next_ino = 1
local live_inodes = 0
local used_pages = 0

--[[ Time. now() returns seconds and nanoseconds; it is the one place to
change if the clock source changes. luafs.sys.clock_gettime gives
nanoseconds; without it, whole seconds from os.time(). ]]
local clock_gettime = luafs.sys and luafs.sys.clock_gettime
local function now()
  if clock_gettime then
    local sec, nsec = clock_gettime()
    if type(sec) == "table" then return sec.sec, sec.nsec end
    return sec, nsec
  end
  return os.time(), 0
end

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

local function before_or_same(s1, ns1, s2, ns2)
  return s1 < s2 or (s1 == s2 and ns1 <= ns2)
end

-- A read of the contents: atime, relatime style (see the header).
local function accessed(node)
  local sec, nsec = now()
  if before_or_same(node.atime, node.atime_nsec, node.mtime, node.mtime_nsec)
      or before_or_same(node.atime, node.atime_nsec, node.ctime, node.ctime_nsec)
      or sec - node.atime >= 24 * 3600 then
    node.atime, node.atime_nsec = sec, nsec
  end
end

--[[ Nodes. A node is one inode: a table with the struct stat fields it
needs under their luafs names, plus
  entries, parent   for a directory (name -> node, and the parent node),
  chunks, pages     for a regular file (chunk index -> string, and the
                    set of 4 KiB pages written, which st_blocks counts),
  target            for a symbolic link,
  xattrs            name -> value,
  opens             how many open handles refer to it. ]]
local function new_node(mode, uid, gid)
  local sec, nsec = now()
  local node = {
    ino = next_ino, mode = mode, nlink = 1, uid = uid, gid = gid, rdev = 0,
    size = 0, blocks = 0,
    atime = sec, atime_nsec = nsec, mtime = sec, mtime_nsec = nsec,
    ctime = sec, ctime_nsec = nsec,
    xattrs = {}, opens = 0,
  }
  next_ino = next_ino + 1
  live_inodes = live_inodes + 1
  if is_dir(node) then
    node.entries, node.nlink, node.size = {}, 2, 2 * DIRENT
  elseif is_reg(node) then
    node.chunks, node.pages = {}, {}
  end
  return node
end

-- A node dies when no name and no open handle refers to it any more.
local function maybe_free(node)
  if node.nlink == 0 and node.opens == 0 then
    used_pages = used_pages - node.blocks // (PAGE // 512)
    live_inodes = live_inodes - 1
    node.chunks, node.pages, node.xattrs = {}, {}, {}
  end
end

local function drop_link(node)
  if is_dir(node) then node.nlink = 0 else node.nlink = node.nlink - 1 end
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

--[[ Paths. libfuse hands over absolute paths with symlinks already
resolved by the kernel. These helpers raise luafs.error(errno), which the
host answers as -errno without logging anything. ]]
local function lookup(path)
  if path == nil then luafs.error(luafs.ENOENT) end
  local node = root
  for name in path:gmatch("[^/]+") do
    if not is_dir(node) then luafs.error(luafs.ENOTDIR) end
    local child = node.entries[name]
    if child == nil then
      luafs.error(#name > NAME_MAX and luafs.ENAMETOOLONG or luafs.ENOENT)
    end
    node = child
  end
  return node
end

-- The directory that holds path's last component, and that component.
local function lookup_parent(path)
  local dirpath, name = path:match("^(.*)/([^/]+)$")
  if name == nil then luafs.error(luafs.EINVAL) end
  if #name > NAME_MAX then luafs.error(luafs.ENAMETOOLONG) end
  local dir = lookup(dirpath)
  if not is_dir(dir) then luafs.error(luafs.ENOTDIR) end
  return dir, name
end

-- The node of an open file (its handle) or else of the path.
local function node_of(path, fi)
  local node = fi and fi.fh
  if node then return node end
  return lookup(path)
end

--[[ Permissions, as the kernel's generic_permission checks them: root
may read and write anything and execute anything with an execute bit;
others get the owner's, the group's or everyone's bits. R_OK, W_OK and
X_OK are 4, 2 and 1, the same as the rwx bits. ]]
local function in_group(gid, ctx)
  if gid == ctx.gid then return true end
  for _, g in ipairs(luafs.groups() or {}) do
    if g == gid then return true end
  end
  return false
end

local function permitted(node, mask, ctx)
  if ctx.uid == 0 then
    return mask & luafs.X_OK == 0 or is_dir(node) or node.mode & ANY_X ~= 0
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

local function check_access(node, mask)
  if not permitted(node, mask, luafs.context()) then luafs.error(luafs.EACCES) end
end

local function is_owner(node, ctx)
  return ctx.uid == 0 or ctx.uid == node.uid
end

--[[ File contents. chunks[i] holds the bytes from i * CHUNK on; it may be
shorter than CHUNK or missing (a hole), and every byte below size that
no chunk holds is zero. A write replaces only the chunks it touches, so
writing a large file costs time in proportion to its size. Apart from the
chunks, node.pages records which pages were written, for st_blocks. ]]
local function set_chunk(node, i, s)
  if s == "" then s = nil end
  node.chunks[i] = s
end

local function set_page(node, p, present)
  if (node.pages[p] ~= nil) ~= present then
    node.pages[p] = present or nil
    local delta = present and 1 or -1
    node.blocks = node.blocks + delta * (PAGE // 512)
    used_pages = used_pages + delta
  end
end

local function zeros(n)
  if n == CHUNK then return ZEROS end
  return ZEROS:sub(1, n)
end

local function read_data(node, size, offset)
  local stop = math.min(offset + size, node.size)
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

local function write_data(node, data, offset)
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
  for p = offset // PAGE, (offset + len - 1) // PAGE do set_page(node, p, true) end
  if offset + len > node.size then node.size = offset + len end
end

local function resize(node, size)
  if size < node.size then
    local last = size // CHUNK   -- the chunk that holds byte `size`
    local keep = size - last * CHUNK
    for i in pairs(node.chunks) do
      if i > last or (i == last and keep == 0) then set_chunk(node, i, nil) end
    end
    local chunk = node.chunks[last]
    if keep > 0 and chunk and #chunk > keep then set_chunk(node, last, chunk:sub(1, keep)) end
    local first_gone = (size + PAGE - 1) // PAGE
    for p in pairs(node.pages) do
      if p >= first_gone then set_page(node, p, false) end
    end
  end
  node.size = size
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
local function make(path, mode)
  local dir, name = lookup_parent(path)
  if dir.entries[name] then luafs.error(luafs.EEXIST) end
  local ctx = luafs.context()
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

-- The operations.
local fs = {}

function fs.init(_conn, cfg)
  cfg.use_ino = true      -- st_ino is ours, so hard links share it
  cfg.hard_remove = true  -- unlink for real; open handles keep the node alive
  -- libfuse's high-level API gives each name of a hard-linked file its own
  -- kernel inode, so attributes cached for one name would miss a write,
  -- chmod or link made through another. Have the kernel ask every time.
  cfg.attr_timeout = 0
  -- The root belongs to whoever mounts the filesystem: the host's user
  -- (init has no caller; luafs.context() says uid 0 there).
  root.uid, root.gid = luafs.sys.getuid(), luafs.sys.getgid()
end

function fs.getattr(path, fi)
  return stat(node_of(path, fi))
end

function fs.access(path, mask)
  local node = lookup(path)
  if mask ~= luafs.F_OK then check_access(node, mask) end
end

function fs.readlink(path)
  local node = lookup(path)
  if node.target == nil then luafs.error(luafs.EINVAL) end
  accessed(node)
  return node.target
end

function fs.mknod(path, mode, rdev)
  if mode & S_IFMT == 0 then mode = mode | S_IFREG end
  local node = make(path, mode & (S_IFMT | PERMS))
  node.rdev = rdev
end

function fs.mkdir(path, mode)
  make(path, S_IFDIR | (mode & PERMS))
end

function fs.symlink(target, path)
  local node = make(path, S_IFLNK | tonumber("777", 8))
  node.target, node.size = target, #target
end

function fs.unlink(path)
  local dir, name = lookup_parent(path)
  local node = dir.entries[name]
  if node == nil then luafs.error(luafs.ENOENT) end
  if is_dir(node) then luafs.error(luafs.EISDIR) end
  del_entry(dir, name)
  modified(dir)
  drop_link(node)
end

function fs.rmdir(path)
  local dir, name = lookup_parent(path)
  local node = dir.entries[name]
  if node == nil then luafs.error(luafs.ENOENT) end
  if not is_dir(node) then luafs.error(luafs.ENOTDIR) end
  if next(node.entries) ~= nil then luafs.error(luafs.ENOTEMPTY) end
  del_entry(dir, name)
  modified(dir)
  drop_link(node)
end

function fs.link(oldpath, newpath)
  local node = lookup(oldpath)
  if is_dir(node) then luafs.error(luafs.EPERM) end
  local dir, name = lookup_parent(newpath)
  if dir.entries[name] then luafs.error(luafs.EEXIST) end
  add_entry(dir, name, node)
  node.nlink = node.nlink + 1
  changed(node)
  modified(dir)
end

--[[ rename(from, to, flags), with tmpfs's errors: EEXIST for
RENAME_NOREPLACE onto an existing name, EINVAL for moving a directory
into itself, ENOTDIR, EISDIR and ENOTEMPTY for a target of the wrong
kind. Renaming a name onto another name of the same inode does nothing. ]]
function fs.rename(from, to, flags)
  local noreplace = flags & luafs.RENAME_NOREPLACE ~= 0
  local exchange = flags & luafs.RENAME_EXCHANGE ~= 0
  if noreplace and exchange then luafs.error(luafs.EINVAL) end
  local fdir, fname = lookup_parent(from)
  local node = fdir.entries[fname]
  if node == nil then luafs.error(luafs.ENOENT) end
  local tdir, tname = lookup_parent(to)
  local target = tdir.entries[tname]
  if target and noreplace then luafs.error(luafs.EEXIST) end
  if target == node then return end

  if exchange then
    if target == nil then luafs.error(luafs.ENOENT) end
    if (is_dir(node) and is_ancestor(node, tdir)) or (is_dir(target) and is_ancestor(target, fdir)) then
      luafs.error(luafs.EINVAL)
    end
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

  if is_dir(node) then
    if is_ancestor(node, tdir) then luafs.error(luafs.EINVAL) end
    if target and not is_dir(target) then luafs.error(luafs.ENOTDIR) end
    if target and next(target.entries) ~= nil then luafs.error(luafs.ENOTEMPTY) end
  elseif target and is_dir(target) then
    luafs.error(luafs.EISDIR)
  end
  if target then
    del_entry(tdir, tname)
    drop_link(target)
  end
  del_entry(fdir, fname)
  add_entry(tdir, tname, node)
  changed(node)
  modified(fdir)
  modified(tdir)
end

-- chmod: the owner or root. Like Linux, a caller outside the file's group
-- cannot set setgid; the bit is dropped, not refused.
function fs.chmod(path, mode, fi)
  local node = node_of(path, fi)
  local ctx = luafs.context()
  if not is_owner(node, ctx) then luafs.error(luafs.EPERM) end
  mode = mode & PERMS
  if ctx.uid ~= 0 and not in_group(node.gid, ctx) then mode = mode & ~S_ISGID end
  node.mode = (node.mode & S_IFMT) | mode
  changed(node)
end

-- chown: -1 leaves a field unchanged. Only root gives a file away; its
-- owner may change its group to one of their own groups. The kernel
-- clears setuid and setgid itself, with a chmod, when it has to.
function fs.chown(path, uid, gid, fi)
  local node = node_of(path, fi)
  local ctx = luafs.context()
  if uid == -1 then uid = node.uid end
  if gid == -1 then gid = node.gid end
  if ctx.uid ~= 0 then
    if uid ~= node.uid or ctx.uid ~= node.uid then luafs.error(luafs.EPERM) end
    if gid ~= node.gid and not in_group(gid, ctx) then luafs.error(luafs.EPERM) end
  end
  node.uid, node.gid = uid, gid
  changed(node)
end

-- truncate: like tmpfs, the times change only when the size does.
function fs.truncate(path, size, fi)
  local node = node_of(path, fi)
  if is_dir(node) then luafs.error(luafs.EISDIR) end
  if not is_reg(node) then luafs.error(luafs.EINVAL) end
  if size ~= node.size then
    resize(node, size)
    modified(node)
  end
end

-- utimens: explicit times need the owner or root; UTIME_NOW alone needs
-- write permission too. Each time may be UTIME_NOW or UTIME_OMIT.
function fs.utimens(path, atime, atime_nsec, mtime, mtime_nsec, fi)
  local node = node_of(path, fi)
  local NOW, OMIT = luafs.UTIME_NOW, luafs.UTIME_OMIT
  if atime_nsec == OMIT and mtime_nsec == OMIT then return end
  local ctx = luafs.context()
  if not is_owner(node, ctx) then
    if (atime_nsec ~= NOW and atime_nsec ~= OMIT) or (mtime_nsec ~= NOW and mtime_nsec ~= OMIT) then
      luafs.error(luafs.EPERM)
    end
    if not permitted(node, luafs.W_OK, ctx) then luafs.error(luafs.EACCES) end
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
  if acc == luafs.O_RDONLY or acc == luafs.O_RDWR then mask = mask | luafs.R_OK end
  if acc == luafs.O_WRONLY or acc == luafs.O_RDWR or flags & luafs.O_TRUNC ~= 0 then mask = mask | luafs.W_OK end
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
  local node = lookup(path)
  check_access(node, open_mask(fi.flags))
  return opened(node, fi.flags)
end

-- The kernel calls create after a lookup found no such name; if another
-- process made it meanwhile, create behaves as open(2) with O_CREAT does.
function fs.create(path, mode, fi)
  local dir, name = lookup_parent(path)
  if dir.entries[name] then
    if fi.flags & luafs.O_EXCL ~= 0 then luafs.error(luafs.EEXIST) end
    return fs.open(path, fi)
  end
  local node = make(path, S_IFREG | (mode & PERMS))
  node.opens = node.opens + 1
  return node
end

function fs.read(path, size, offset, fi)
  local node = node_of(path, fi)
  if is_dir(node) then luafs.error(luafs.EISDIR) end
  accessed(node)
  return read_data(node, size, offset)
end

-- With O_APPEND every write goes to the end, as Linux does even for
-- pwrite. Write-back of mmap'ed pages (fi.writepage) keeps its offset.
function fs.write(path, data, offset, fi)
  local node = node_of(path, fi)
  if fi and fi.flags & luafs.O_APPEND ~= 0 and not fi.writepage then offset = node.size end
  write_data(node, data, offset)
  modified(node)
  return #data
end

function fs.release(_path, fi)
  local node = fi.fh
  node.opens = node.opens - 1
  maybe_free(node)
end

function fs.fsync() end

function fs.opendir(path)
  local node = lookup(path)
  if not is_dir(node) then luafs.error(luafs.ENOTDIR) end
  check_access(node, luafs.R_OK)
  node.opens = node.opens + 1
  return node
end

-- readdir returns the whole listing, sorted by name, with a stat table
-- per entry so that readdirplus needs no further getattr.
function fs.readdir(path, _offset, fi)
  local dir = node_of(path, fi)
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
  return {
    bsize = PAGE, frsize = PAGE,
    blocks = TOTAL_PAGES, bfree = TOTAL_PAGES - used_pages, bavail = TOTAL_PAGES - used_pages,
    files = TOTAL_INODES, ffree = TOTAL_INODES - live_inodes, favail = TOTAL_INODES - live_inodes,
    namemax = NAME_MAX,
  }
end

--[[ Extended attributes. Like tmpfs, memfs knows the user., trusted.
and security. namespaces. The kernel decides who may use trusted. and
security.; user. attributes need read or write permission on the file. ]]
local function check_xattr(node, name, mask)
  if name:find("^user%.") then
    check_access(node, mask)
  elseif not (name:find("^trusted%.") or name:find("^security%.")) then
    luafs.error(luafs.EOPNOTSUPP)
  end
end

function fs.setxattr(path, name, value, flags)
  local node = lookup(path)
  check_xattr(node, name, luafs.W_OK)
  local exists = node.xattrs[name] ~= nil
  if flags & luafs.XATTR_CREATE ~= 0 and exists then luafs.error(luafs.EEXIST) end
  if flags & luafs.XATTR_REPLACE ~= 0 and not exists then luafs.error(luafs.ENODATA) end
  node.xattrs[name] = value
  changed(node)
end

function fs.getxattr(path, name)
  local node = lookup(path)
  check_xattr(node, name, luafs.R_OK)
  local value = node.xattrs[name]
  if value == nil then luafs.error(luafs.ENODATA) end
  return value
end

function fs.listxattr(path)
  local node = lookup(path)
  local names = {}
  for name in pairs(node.xattrs) do names[#names + 1] = name end
  table.sort(names)
  return names
end

function fs.removexattr(path, name)
  local node = lookup(path)
  check_xattr(node, name, luafs.W_OK)
  if node.xattrs[name] == nil then luafs.error(luafs.ENODATA) end
  node.xattrs[name] = nil
  changed(node)
end

root = new_node(S_IFDIR | tonumber("755", 8), 0, 0)
root.parent = root

return fs
