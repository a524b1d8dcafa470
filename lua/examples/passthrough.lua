--[[
passthrough.lua: mirror a directory, like libfuse's passthrough_fh.c.

    luafs passthrough.lua /mnt/mirror -f -- /srv/data [MODE]

Every operation on /mnt/mirror is done on the same name under /srv/data
(ROOT, the first script argument; a MODE may follow, cached-coherent or
no-auto-inval-data, below), with the *at system calls relative to a
directory descriptor opened on ROOT once, at load. A name is the request's
path without its leading "/" ("." for the root itself), so ROOT's own path
may be as long as it likes. The name may be longer than a system call takes
(PATH_MAX, 4096 bytes with its NUL): a process whose working directory is
deep inside the mount uses shorter paths relative to it, which the kernel
walks a component at a time, but the request still names the file from the
mount's root. Such a name is reached from its parent directory, opened from
ROOT a piece at a time (see open_parent); a missing component, a component
that is not a directory or one over NAME_MAX fail there as they would in
ROOT. Shorter names, nearly all of them, take one system call.

Open files are system file descriptors: open and create return the
descriptor (an integer) as the handle, and every later call on that handle
works on the descriptor, whatever happened to the name.

Data never passes through Lua: read_buf answers with luafs.BufVec.fd, a "this
many bytes of this descriptor at this offset" that libfuse reads (or splices)
itself, and write_buf copies the request's buffer into the descriptor with
BufVec:copy_to. There is deliberately no read or write operation: libfuse
prefers read_buf and write_buf, and a plain read would copy every byte into
a Lua string.

Cached-coherent mode (`-- ROOT cached-coherent`): the kernel keeps names,
attributes and file data for an hour (entry_timeout, attr_timeout,
kernel_cache; libfuse's auto_inval_data stays on, and costs nothing here:
the kernel asks for attributes only when they expired or were
invalidated), and the script watches, with inotify, each directory of ROOT
that the kernel looks into (a getattr by name watches the name's
directory, an opendir the directory), as it looks. A job (luafs.watch)
reads the events and invalidates (luafs.invalidate_path) what changed
behind the mount: the name, its directory when names come or go, the
other names of a hard-linked file, and after a directory's rename the
names below it; a lost event (IN_Q_OVERFLOW) invalidates every watched
directory and every name in them. A stat of an unchanged file is then
answered by the kernel alone. Its limits:
  * inotify does not see what another machine changes in a network
    filesystem under ROOT, nor changes in a filesystem mounted under ROOT
    after its directory was watched, nor in a directory moved out of ROOT;
  * a change shows through the mount once the invalidation has run,
    milliseconds after the system call that made it returned, also for
    the other names of a hard-linked file after a link, unlink or write
    through one of them (each name is an inode of its own in the kernel);
  * each watched directory takes one of the user's inotify watches
    (/proc/sys/fs/inotify/max_user_watches; the log says when they run
    out); a directory beyond that, or whose path is near PATH_MAX, is not
    watched, and changes in it show when the cache expires;
  * before Linux 4.18 (no IN_MASK_CREATE), after a directory's rename in
    ROOT the names below it that the kernel knows show their new state
    only when the cache expires;
  * the high-level API can make the kernel forget attributes and data but
    not a name: a name that ROOT replaces by one of another type (a file by
    a directory) answers EIO until its entry expires, and one replaced by
    another file keeps its old inode number until then;
  * our own changes through the mount come back as events and invalidate
    what the kernel had just learnt: a workload that writes pays for it;
  * the host keeps, for each watched directory, its path, and for each
    file the kernel has looked up, its path twice (to find a file's other
    names when one gains a link), until the name goes: a walk of millions
    of files costs hundreds of megabytes.

No-auto-inval-data mode (`-- ROOT no-auto-inval-data`, after libfuse's
option of that name): init clears FUSE_CAP_AUTO_INVAL_DATA, which libfuse 3
wants by default and libfuse 2 did not. With it, and attributes never
cached (attr_timeout = 0), the kernel asks for a file's attributes (a
getattr) before every read(2) and pread(2), O_DIRECT ones too, to drop its
cached pages of the file when the size or modification time changed;
without it a 4 KiB read is one request instead of two, as with libfuse 2.
What a reader sees then:
  * a process that keeps a file open through the mount while something
    changes the file directly in ROOT, behind the mount, may go on reading
    the kernel's cached pages of it (the old data) until the file is next
    opened through the mount, by it or by any other process (there is no
    kernel_cache, so an open drops the pages), or until the kernel learns
    of a new size (from a stat through the mount, say, or a read past the
    size it knows); a new modification time alone drops nothing;
  * a read that goes past the size the kernel knows (a sequential reader's
    last read, which asks for more than is left) still asks for the
    attributes first;
  * O_DIRECT reads always reach the filesystem and return what ROOT holds,
    but leave the cached pages that buffered reads get as they were;
  * changes made through the mount show to every reader at once, as
    before: the kernel writes them into its pages.
It does not combine with cached-coherent, and the script refuses the pair:
there attributes stay valid for an hour, so reads ask for nothing anyway,
and auto_inval_data is what drops the data of a change that inotify
missed once the attributes expire (an open keeps the pages there); without
it a reader could see the old data for as long as the kernel keeps the
pages, unless the file's size changed.

What init sets (edit it to trade coherence for speed):
  * use_ino: inode numbers are ROOT's, so `ls -i`, `find -inum`, tar and
    git see stable, real inode numbers.
  * entry_timeout, attr_timeout, negative_timeout = 0: the kernel asks again
    on every lookup and stat, so changes made in ROOT behind the mount's back
    show at once, and the link count of a hard-linked file stays right (the
    high-level API gives each name of a file a kernel inode of its own). The
    price is two requests per stat(2); mounts that alone change ROOT can set
    1 second or more.
  * conn.want keeps libfuse's FUSE_CAP_AUTO_INVAL_DATA: with attr_timeout
    0 every read(2) costs a getattr first, and a change made in ROOT
    shows at the next read of a descriptor opened before it.
    no-auto-inval-data clears it (above).
  * nullpath_ok: operations on an open handle get no path (they do not need
    it), which spares libfuse computing it.
  * conn.want gets FUSE_CAP_SPLICE_WRITE, SPLICE_MOVE and SPLICE_READ when
    the kernel offers them, so that file data moves between ROOT and
    /dev/fuse through pipes, without a copy in user space.
    libfuse splices a write request into a pipe only when the pipe holds
    max_write and 4 KiB more; without CAP_SYS_RESOURCE pipes stop at
    /proc/sys/fs/pipe-max-size (1 MiB by default), less than libfuse's
    default max_write of 1 MiB needs, so writes then arrive in memory
    (copy_to still writes them without a Lua string; conn.max_write =
    512 * 1024 would have them spliced).
  * The process umask is set to 0 at load: the kernel has applied the
    caller's umask to the modes it sends already.

Owners: when the host runs as root, whatever is created through the mount
(files, directories, nodes, symlinks) is given to the calling user and group
(luafs.context()), as a local filesystem would; in a set-group-ID directory
the group is inherited instead. Otherwise everything belongs to the host's
user.

Locks:
  * flock(2) locks are taken on the handle's descriptor: each open through
    the mount is its own open file description in ROOT, as flock wants.
  * POSIX record locks (fcntl F_SETLK, F_SETLKW, F_GETLK) belong to a process
    (the kernel's lock_owner), not to a descriptor. Each owner gets its own
    re-opened descriptor of the file, kept in luafs.shared, and its locks are
    open-file-description locks (F_OFD_SETLK) on that descriptor: two owners
    conflict, one owner's locks merge and split as POSIX says, and closing
    any of the owner's descriptors of the file releases them all (libfuse
    unlocks on flush). F_GETLK answers with the conflicting lock; one held
    through the mount shows its holder's pid (libfuse keeps that table), one
    held directly in ROOT by an OFD lock shows pid -1.
  * A blocking lock (F_SETLKW, flock without LOCK_NB) polls, from 1 ms up to
    every 50 ms, and gives up with EINTR when the caller is interrupted. It
    holds its Lua state meanwhile, so the script asks for a pool of STATES
    states (below); with -s, or with -o states=1, a waiter blocks every
    other request, the holder's unlock included, until it is interrupted.
    File handles are descriptors, which mean the same in every state, so
    the script sets portable_handles: any free state serves any call on an
    open file, and a waiter holds up nobody but itself, also when processes
    share one open file (a parent and its child after fork(2)). With more
    waiters than STATES - 1, the rest of the requests wait for one of them
    to be granted or interrupted. A directory handle is a table (a stream),
    so the state that opened a directory serves its readdir calls.

Limits:
  * Permissions are those of the host: access(2) and opens are checked with
    the host's credentials. Mount with -o default_permissions (and
    allow_other to share the mount) to have the kernel check the caller's
    against the mode bits, as it does for a local filesystem.
  * A file unlinked while it is open is renamed by libfuse to
    .fuse_hiddenNNN in its directory until it is released (libfuse's
    default without -o hard_remove), so its fd stays fully usable, but its
    link count still says 1. The kernel sends the release after close(2)
    has returned, so an rmdir right after may still find the hidden name:
    rmdir removes such names itself when they are all that is left (their
    files stay open through their descriptors), and then an fstat(2) of
    such a file that is still open fails.
  * No POSIX ACLs through the mount (system.posix_acl_* answers EOPNOTSUPP,
    the kernel's default for FUSE), no ioctl, no poll (regular files are
    always ready), no bmap.
  * Extended attributes are read and written through
    /proc/self/fd/<root>/<name> (the *at family has no xattr calls), so they
    need /proc.
  * statfs describes the filesystem holding ROOT, also for names on other
    filesystems mounted inside ROOT.
  * On a reload the new code opens ROOT again; the old descriptor is closed
    when the old code is collected. Open handles, directory streams and
    record locks survive a reload.
]]

local luafs = require "luafs"

local sys = luafs.sys
local BufVec = luafs.BufVec
local shared = luafs.shared

local O_PATH, O_DIRECTORY, O_CLOEXEC = luafs.O_PATH, luafs.O_DIRECTORY, luafs.O_CLOEXEC
local O_RDONLY, O_WRONLY, O_RDWR = luafs.O_RDONLY, luafs.O_WRONLY, luafs.O_RDWR
local O_CREAT, O_NONBLOCK, O_NOCTTY = luafs.O_CREAT, luafs.O_NONBLOCK, luafs.O_NOCTTY
local AT_SYMLINK_NOFOLLOW, AT_REMOVEDIR = luafs.AT_SYMLINK_NOFOLLOW, luafs.AT_REMOVEDIR
local S_ISGID, S_IFMT, S_IFDIR = luafs.S_ISGID, luafs.S_IFMT, luafs.S_IFDIR
local F_GETLK, F_SETLK, F_SETLKW, F_UNLCK = luafs.F_GETLK, luafs.F_SETLK, luafs.F_SETLKW, luafs.F_UNLCK
local F_OFD_GETLK, F_OFD_SETLK = luafs.F_OFD_GETLK, luafs.F_OFD_SETLK
local LOCK_NB, LOCK_UN = luafs.LOCK_NB, luafs.LOCK_UN
local EAGAIN, EACCES, EINTR, EISDIR = luafs.EAGAIN, luafs.EACCES, luafs.EINTR, luafs.EISDIR
local ENOTEMPTY = luafs.ENOTEMPTY
-- The longest path a system call takes, its NUL included.
local PATH_MAX = 4096
local FUSE_BUF_SPLICE_NONBLOCK = luafs.FUSE_BUF_SPLICE_NONBLOCK

-- Lua states in the pool: blocking locks hold one each while they wait.
local STATES = 4

local ROOT = ...
if type(ROOT) ~= "string" or ROOT == "" then
  error("usage: luafs passthrough.lua MOUNTPOINT [options] -- ROOT"
    .. " [cached-coherent | no-auto-inval-data]", 0)
end
-- The modes after ROOT (see the header).
local COHERENT, NO_AUTO_INVAL = false, false
for i = 2, select("#", ...) do
  local mode = select(i, ...)
  if mode == "cached-coherent" then
    COHERENT = true
  elseif mode == "no-auto-inval-data" then
    NO_AUTO_INVAL = true
  else
    error("passthrough.lua: unknown mode " .. mode .. " (cached-coherent, no-auto-inval-data)", 0)
  end
end
if COHERENT and NO_AUTO_INVAL then
  error("passthrough.lua: cached-coherent and no-auto-inval-data do not combine"
    .. " (see the header)", 0)
end

sys.umask(0)

-- The directory descriptor everything is relative to. A collectable guard
-- closes it when this code is gone (a reload, or the load-time self-check).
local rootfd = assert(sys.open(ROOT, O_PATH | O_DIRECTORY | O_CLOEXEC))
local guard = setmetatable({}, { __gc = function() sys.close(rootfd) end })

local AS_ROOT = sys.geteuid() == 0

--[[ rel[path]: the name of path relative to the root, "/a/b" -> "a/b",
"/" -> "."; nil when it is too long for a system call, and the operation
takes the long way (far). A table that remembers what it worked out rather
than a function, because the same paths come back request after request (a
stat(2) is a lookup and a getattr, an ls -l one of each per name): a table
lookup is cheaper than a call that makes the string again, a difference a
stat-heavy user sees too. It starts afresh once the paths it holds add up
to MEMO_BYTES (each path is kept twice, as the key and as the name), so it
stays small however long the paths are. ]]
local MEMO_BYTES = 256 * 1024
local rel, held = {}, 0
setmetatable(rel, {
  __index = function(t, path)
    if #path > PATH_MAX then return nil end
    local n = path == "/" and "." or path:sub(2)
    if held + #path > MEMO_BYTES then
      for k in next, t do t[k] = nil end
      held = 0
    end
    held = held + #path
    t[path] = n
    return n
  end,
})

--[[ The long way to a name of PATH_MAX bytes or more: its parent directory
is opened from the root a piece at a time, each piece shorter than PATH_MAX
and ending where a component does, so that every component is looked up as
the caller's own walk looked it up, with its errors (ENOENT, ENOTDIR,
ENAMETOOLONG for a component over NAME_MAX, EACCES, ELOOP). A component is
never longer than the kernel's limit for FUSE (1024 bytes), so such a name
always has a parent. Returns the parent's descriptor, which the caller
closes, and the last component; or nil, message, errno. ]]
local function open_parent(name)
  local parent, base = name:match("^(.*)/([^/]*)$")
  local dirfd, at = rootfd, 1
  while at <= #parent do
    local piece = parent:sub(at)
    if #piece >= PATH_MAX then
      -- up to the last "/" among its first PATH_MAX bytes; a component
      -- that long by itself goes whole, and fails with ENAMETOOLONG
      local cut = piece:sub(1, PATH_MAX):match(".*()/")
      piece = cut and piece:sub(1, cut - 1) or piece:match("^[^/]*")
    end
    local fd, msg, err = sys.openat(dirfd, piece, O_PATH | O_DIRECTORY | O_CLOEXEC)
    if dirfd ~= rootfd then sys.close(dirfd) end
    if not fd then return nil, msg, err end
    dirfd, at = fd, at + #piece + 1
  end
  return dirfd, base
end

-- Closes dirfd unless it is the root's, and returns the rest.
local function closing(dirfd, ...)
  if dirfd ~= rootfd then sys.close(dirfd) end
  return ...
end

-- f(dirfd, name, ...) for a path whose name is too long for one system
-- call: dirfd is the parent directory, name the last component.
local function far(path, f, ...)
  local dirfd, name, err = open_parent(path:sub(2))
  if not dirfd then return nil, name, err end
  return closing(dirfd, f(dirfd, name, ...))
end

-- The directory descriptor and the name that reach path: the root's and
-- rel[path], or for a long name its parent's (close it with closing).
local function reach(path)
  local name = rel[path]
  if name then return rootfd, name end
  return open_parent(path:sub(2))
end

-- f(fromfd, fromname, tofd, toname, ...) for two paths, either of them long.
local function far2(from, to, f, ...)
  local fromfd, fromname, err = reach(from)
  if not fromfd then return nil, fromname, err end
  local tofd, toname, err2 = reach(to)
  if not tofd then return closing(fromfd, nil, toname, err2) end
  return closing(fromfd, closing(tofd, f(fromfd, fromname, tofd, toname, ...)))
end

-- The descriptor behind a handle: a file's, or a directory stream's.
local function fd_of(fi)
  local h = fi and fi.fh
  if type(h) == "table" then return h.fd end
  return h
end

--[[ Ownership of new files: when the host runs as root, files created for
another user would otherwise belong to root. Returns the uid and gid to give
name in dirfd (-1 keeps one as it is), or nothing when there is nothing to
change. ]]
local function new_owner(dirfd, name)
  if not AS_ROOT then return end
  local ctx = luafs.context()
  local uid, gid = ctx.uid, ctx.gid
  if uid == 0 and gid == 0 then return end
  -- In a set-group-ID directory the new file has the directory's group.
  local parent = name:match("^(.*)/[^/]*$") or "."
  local pst = sys.fstatat(dirfd, parent, AT_SYMLINK_NOFOLLOW)
  if pst and pst.mode & S_ISGID ~= 0 then gid = -1 end
  return uid, gid
end

-- After name was created in dirfd (ok, msg, err: how that went), gives it
-- to the caller, removing it again (unlinkat with undo_flags) when that
-- fails.
local function created(dirfd, name, undo_flags, ok, msg, err)
  if not ok then return nil, msg, err end
  local uid, gid = new_owner(dirfd, name)
  if uid then
    ok, msg, err = sys.fchownat(dirfd, name, uid, gid, AT_SYMLINK_NOFOLLOW)
    if not ok then
      sys.unlinkat(dirfd, name, undo_flags)
      return nil, msg, err
    end
  end
  return true
end

--[[ Extended attributes have no *at calls. A name is reached through the
root descriptor's /proc link instead; a name too long for that is reached
through its parent directory, opened for the occasion. ]]
local PROC_MAX = 4000
local PROC_ROOT = "/proc/self/fd/" .. rootfd .. "/"
local function with_proc(path, f, ...)
  local name = rel[path]
  if name and #name < PROC_MAX then
    return f(PROC_ROOT .. name, ...)
  end
  local dirfd, base, err = open_parent(path:sub(2))
  if not dirfd then return nil, base, err end
  return closing(dirfd, f("/proc/self/fd/" .. dirfd .. "/" .. base, ...))
end

-- Descriptors as handles: any state may serve any open file.
local fs = { states = STATES, portable_handles = true }

-- How long the kernel keeps names and attributes in cached-coherent mode.
local CACHE_SECONDS = 3600

function fs.init(conn, cfg)
  cfg.use_ino = true
  cfg.nullpath_ok = true
  cfg.entry_timeout = COHERENT and CACHE_SECONDS or 0
  cfg.attr_timeout = COHERENT and CACHE_SECONDS or 0
  -- there is no way to make the kernel forget that a name was missing
  cfg.negative_timeout = 0
  cfg.kernel_cache = COHERENT
  local splice = luafs.FUSE_CAP_SPLICE_WRITE | luafs.FUSE_CAP_SPLICE_MOVE
    | luafs.FUSE_CAP_SPLICE_READ
  conn.want = conn.want | (conn.capable & splice)
  if NO_AUTO_INVAL then
    conn.want = conn.want & ~luafs.FUSE_CAP_AUTO_INVAL_DATA
  end
end

-- Attributes ---------------------------------------------------------------

-- getattr is the most frequent request, and the host copies what it
-- returns at once: so one luafs.Stat, which the stat calls fill in place,
-- serves every call of this state instead of a new table of sixteen
-- fields each time (see luafs(3), STAT TABLES).
local st_buf = luafs.Stat()

function fs.getattr(path, fi)
  if fi then return sys.fstat(fd_of(fi), st_buf) end
  local name = rel[path]
  if name then return sys.fstatat(rootfd, name, AT_SYMLINK_NOFOLLOW, st_buf) end
  return far(path, sys.fstatat, AT_SYMLINK_NOFOLLOW, st_buf)
end

function fs.access(path, mask)
  local name = rel[path]
  if name then return sys.faccessat(rootfd, name, mask) end
  return far(path, sys.faccessat, mask)
end

function fs.readlink(path)
  local name = rel[path]
  if name then return sys.readlinkat(rootfd, name) end
  return far(path, sys.readlinkat)
end

function fs.chmod(path, mode, fi)
  local fd = fd_of(fi)
  if fd then return sys.fchmod(fd, mode) end
  local name = rel[path]
  if name then return sys.fchmodat(rootfd, name, mode) end
  return far(path, sys.fchmodat, mode)
end

function fs.chown(path, uid, gid, fi)
  local fd = fd_of(fi)
  if fd then return sys.fchown(fd, uid, gid) end
  local name = rel[path]
  if name then return sys.fchownat(rootfd, name, uid, gid, AT_SYMLINK_NOFOLLOW) end
  return far(path, sys.fchownat, uid, gid, AT_SYMLINK_NOFOLLOW)
end

local function truncate_at(dirfd, name, size)
  local fd, msg, err = sys.openat(dirfd, name, O_WRONLY | O_NONBLOCK | O_CLOEXEC)
  if not fd then return nil, msg, err end
  local ok
  ok, msg, err = sys.ftruncate(fd, size)
  sys.close(fd)
  return ok, msg, err
end

function fs.truncate(path, size, fi)
  local fd = fd_of(fi)
  if fd then return sys.ftruncate(fd, size) end
  local name = rel[path]
  if name then return truncate_at(rootfd, name, size) end
  return far(path, truncate_at, size)
end

function fs.utimens(path, atime, atime_nsec, mtime, mtime_nsec, fi)
  local fd = fd_of(fi)
  if fd then return sys.futimens(fd, atime, atime_nsec, mtime, mtime_nsec) end
  local name = rel[path]
  if name then
    return sys.utimensat(rootfd, name, atime, atime_nsec, mtime, mtime_nsec,
      AT_SYMLINK_NOFOLLOW)
  end
  return far(path, sys.utimensat, atime, atime_nsec, mtime, mtime_nsec, AT_SYMLINK_NOFOLLOW)
end

function fs.statfs()
  return sys.fstatvfs(rootfd)
end

-- Names --------------------------------------------------------------------

local function mknod_at(dirfd, name, mode, rdev)
  return created(dirfd, name, 0, sys.mknodat(dirfd, name, mode, rdev))
end

function fs.mknod(path, mode, rdev)
  local name = rel[path]
  if name then return mknod_at(rootfd, name, mode, rdev) end
  return far(path, mknod_at, mode, rdev)
end

local function mkdir_at(dirfd, name, mode)
  return created(dirfd, name, AT_REMOVEDIR, sys.mkdirat(dirfd, name, mode))
end

function fs.mkdir(path, mode)
  local name = rel[path]
  if name then return mkdir_at(rootfd, name, mode) end
  return far(path, mkdir_at, mode)
end

local function symlink_at(dirfd, name, target)
  return created(dirfd, name, 0, sys.symlinkat(target, dirfd, name))
end

function fs.symlink(target, linkpath)
  local name = rel[linkpath]
  if name then return symlink_at(rootfd, name, target) end
  return far(linkpath, symlink_at, target)
end

function fs.unlink(path)
  local name = rel[path]
  if name then return sys.unlinkat(rootfd, name, 0) end
  return far(path, sys.unlinkat, 0)
end

-- If the directory name in dirfd holds nothing but libfuse's hidden names
-- of files unlinked while open, removes them and answers true.
local function drop_hidden(dirfd, name)
  local fd = sys.openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
  if not fd then return false end
  local dir = sys.fdopendir(fd)
  if not dir then
    sys.close(fd)
    return false
  end
  local hidden = {}
  for entry in dir.read, dir do
    if entry ~= "." and entry ~= ".." then
      if not entry:match("^%.fuse_hidden%x+$") then
        dir:close()
        return false
      end
      hidden[#hidden + 1] = entry
    end
  end
  -- relative to the directory itself: its name may be long already
  for _, entry in ipairs(hidden) do sys.unlinkat(fd, entry, 0) end
  dir:close()
  return true
end

--[[ An rmdir right after a close(2) may find the .fuse_hidden name of a
file unlinked while open, which libfuse removes only when the kernel's
release arrives, later (see the header). Those names go, as with
hard_remove; libfuse's own unlink at the release then finds nothing. ]]
local function rmdir_at(dirfd, name)
  local ok, msg, err = sys.unlinkat(dirfd, name, AT_REMOVEDIR)
  if ok or err ~= ENOTEMPTY then return ok, msg, err end
  if not drop_hidden(dirfd, name) then return nil, msg, err end
  return sys.unlinkat(dirfd, name, AT_REMOVEDIR)
end

function fs.rmdir(path)
  local name = rel[path]
  if name then return rmdir_at(rootfd, name) end
  return far(path, rmdir_at)
end

function fs.rename(from, to, flags)
  local a, b = rel[from], rel[to]
  if a and b then return sys.renameat2(rootfd, a, rootfd, b, flags) end
  return far2(from, to, sys.renameat2, flags)
end

function fs.link(from, to)
  local a, b = rel[from], rel[to]
  if a and b then return sys.linkat(rootfd, a, rootfd, b, 0) end
  return far2(from, to, sys.linkat, 0)
end

-- Open files ---------------------------------------------------------------

function fs.open(path, fi)
  local name = rel[path]
  if name then return sys.openat(rootfd, name, fi.flags | O_CLOEXEC) end
  return far(path, sys.openat, fi.flags | O_CLOEXEC)
end

local function create_at(dirfd, name, mode, flags)
  local fd, msg, err = sys.openat(dirfd, name, flags | O_CREAT | O_CLOEXEC, mode)
  if not fd then return nil, msg, err end
  local uid, gid = new_owner(dirfd, name)
  if uid then
    local ok
    ok, msg, err = sys.fchown(fd, uid, gid)
    if not ok then
      sys.close(fd)
      sys.unlinkat(dirfd, name, 0)
      return nil, msg, err
    end
  end
  return fd
end

function fs.create(path, mode, fi)
  local name = rel[path]
  if name then return create_at(rootfd, name, mode, fi.flags) end
  return far(path, create_at, mode, fi.flags)
end

-- Zero copy: libfuse reads size bytes at offset from the descriptor itself.
function fs.read_buf(_, size, offset, fi)
  return BufVec.fd(fi.fh, size, offset)
end

function fs.write_buf(_, buf, offset, fi)
  return buf:copy_to(fi.fh, offset, FUSE_BUF_SPLICE_NONBLOCK)
end

-- Every close(2) of a descriptor of the file; release comes after the last.
function fs.flush() end

function fs.release(_, fi)
  return sys.close(fi.fh)
end

function fs.fsync(_, datasync, fi)
  if datasync ~= 0 then return sys.fdatasync(fi.fh) end
  return sys.fsync(fi.fh)
end

function fs.fallocate(_, mode, offset, len, fi)
  return sys.fallocate(fi.fh, mode, offset, len)
end

function fs.copy_file_range(_, fi_in, off_in, _, fi_out, off_out, len, flags)
  return sys.copy_file_range(fi_in.fh, off_in, fi_out.fh, off_out, len, flags)
end

-- Only SEEK_DATA and SEEK_HOLE reach the filesystem.
function fs.lseek(_, offset, whence, fi)
  return sys.lseek(fi.fh, offset, whence)
end

-- Locks --------------------------------------------------------------------

-- Retries try() until it stops answering "busy", or the caller gives up.
local function wait_for(try)
  local delay = 0.001
  while true do
    local ok, msg, err = try()
    if ok or (err ~= EAGAIN and err ~= EACCES) then return ok, msg, err end
    if luafs.interrupted() then return -EINTR end
    sys.sleep(delay)
    delay = math.min(delay * 2, 0.05)
  end
end

function fs.flock(_, fi, op)
  local fd = fi.fh
  if op & (LOCK_NB | LOCK_UN) ~= 0 then return sys.flock(fd, op) end
  return wait_for(function() return sys.flock(fd, op | LOCK_NB) end)
end

--[[ POSIX record locks: one open file description per (file, lock owner),
re-opened from the handle's descriptor and shared by every state through
luafs.shared, with OFD locks on it (see the header). ]]
local OWNERS = "passthrough.lockowners"     -- how many owner descriptors are open

local function owner_key(fd, owner)
  local st, msg, err = sys.fstat(fd)
  if not st then return nil, msg, err end
  return string.format("passthrough.lock:%d:%d:%d", st.dev, st.ino, owner)
end

local function reopen(fd)
  local proc = "/proc/self/fd/" .. fd
  local base = O_NONBLOCK | O_NOCTTY | O_CLOEXEC
  local ofd, msg, err = sys.open(proc, O_RDWR | base)
  if ofd or (err ~= EACCES and err ~= EISDIR and err ~= luafs.EROFS
             and err ~= luafs.ETXTBSY) then
    return ofd, msg, err
  end
  ofd, msg, err = sys.open(proc, O_RDONLY | base)
  if ofd or err ~= EACCES then return ofd, msg, err end
  return sys.open(proc, O_WRONLY | base)
end

-- The owner's descriptor for this file, made on demand.
local function owner_fd(key, fd, make)
  local ofd = shared.get(key)
  if ofd or not make then return ofd end
  local msg, err
  ofd, msg, err = reopen(fd)
  if not ofd then return nil, msg, err end
  if not shared.cas(key, nil, ofd) then  -- another state was quicker
    sys.close(ofd)
    return shared.get(key)
  end
  shared.incr(OWNERS)
  return ofd
end

local function drop_owner(key, ofd)
  if shared.cas(key, ofd, nil) then
    sys.close(ofd)
    shared.incr(OWNERS, -1)
  end
end

function fs.lock(_, fi, cmd, lk)
  local unlock = lk.type == F_UNLCK
  -- flush unlocks for every close: nothing to do if no owner holds anything
  if unlock and (shared.get(OWNERS) or 0) <= 0 then return end
  local fd, owner = fi.fh, fi.lock_owner
  local key, msg, err = owner_key(fd, owner)
  if not key then return nil, msg, err end
  local t = { type = lk.type, whence = lk.whence, start = lk.start, len = lk.len }
  if cmd == F_GETLK then
    -- the owner's own locks never conflict with it; the handle holds none
    local ofd = owner_fd(key, fd, false) or fd
    return sys.fcntl_lock(ofd, F_OFD_GETLK, t)
  end
  local ofd
  ofd, msg, err = owner_fd(key, fd, not unlock)
  if not ofd then
    if unlock then return end
    return nil, msg, err
  end
  if unlock and lk.start == 0 and lk.len == 0 then
    drop_owner(key, ofd)            -- closing it releases all its locks
    return
  end
  if cmd == F_SETLK or unlock then
    return sys.fcntl_lock(ofd, F_OFD_SETLK, t)
  end
  assert(cmd == F_SETLKW, "unknown lock command")
  return wait_for(function() return sys.fcntl_lock(ofd, F_OFD_SETLK, t) end)
end

-- Extended attributes ------------------------------------------------------

function fs.setxattr(path, name, value, flags)
  return with_proc(path, sys.lsetxattr, name, value, flags)
end

function fs.getxattr(path, name)
  return with_proc(path, sys.lgetxattr, name)
end

function fs.listxattr(path)
  return with_proc(path, sys.llistxattr)
end

function fs.removexattr(path, name)
  return with_proc(path, sys.lremovexattr, name)
end

-- Directories --------------------------------------------------------------

local function opendir_at(dirfd, name)
  local fd, msg, err = sys.openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
  if not fd then return nil, msg, err end
  local dir
  dir, msg, err = sys.fdopendir(fd)
  if not dir then
    sys.close(fd)
    return nil, msg, err
  end
  return { dir = dir, fd = fd }
end

function fs.opendir(path)
  local name = rel[path]
  if name then return opendir_at(rootfd, name) end
  return far(path, opendir_at)
end

-- The host lists the stream itself, from the offset the kernel asks for,
-- with each entry's inode and type (and with readdirplus its fstatat in the
-- directory), so no entry becomes a Lua value.
function fs.readdir(_, _, fi)
  return fi.fh.dir
end

function fs.releasedir(_, fi)
  return fi.fh.dir:close()
end

function fs.fsyncdir(_, datasync, fi)
  local fd = fi.fh.fd
  if datasync ~= 0 then return sys.fdatasync(fd) end
  return sys.fsync(fd)
end

-- Cached-coherent mode ------------------------------------------------------

--[[ The kernel keeps names, attributes and file data (see init), and one
inotify descriptor watches every directory of ROOT that the kernel has
looked into: a getattr by name watches the name's directory before it
looks (so that no change between the two is missed), an opendir the
directory itself, for the names a readdirplus hands the kernel. Each
change that a watch reports makes the kernel drop what it cached of the
name and, for names that come and go, of its directory: a job of state 1
(luafs.watch) reads the events and calls luafs.invalidate_path. The
descriptor and the map of watches (watch descriptor -> directory) live
in luafs.shared, so every state adds watches to the one descriptor, and
both survive a reload. The map is the only place a watched directory's
path is kept: it is in the host's memory once per watch, and whether a
directory is watched is asked of inotify itself (see invalidate_tree). ]]
local INOTIFY = "passthrough.inotify"      -- the descriptor
local WD = "passthrough.wd:"               -- .. wd -> the directory's path
local WATCH_MASK = luafs.IN_ATTRIB | luafs.IN_MODIFY | luafs.IN_CREATE | luafs.IN_DELETE
  | luafs.IN_MOVED_FROM | luafs.IN_MOVED_TO | luafs.IN_ONLYDIR | luafs.IN_DONT_FOLLOW
local IN_MASK_CREATE, EEXIST = luafs.IN_MASK_CREATE, luafs.EEXIST
local DT_DIR, DT_UNKNOWN = luafs.DT_DIR, luafs.DT_UNKNOWN
local INO = "passthrough.ino:"             -- .. path -> "dev:ino" of its file
local NAMES = "passthrough.names:"         -- .. "dev:ino" -> its names, NUL-separated
local invalidate = luafs.invalidate_path

--[[ Each name of a hard-linked file is an inode of its own in the kernel
(the high-level API's way), and a link, unlink or change through one name
tells inotify nothing of the others: so the names that the kernel looked up
are kept per file, and a change of any is a change of all. ]]
local function remember_name(path, st)
  local key = st.dev .. ":" .. st.ino
  if shared.get(INO .. path) == key then return end
  shared.set(INO .. path, key)
  repeat
    local names = shared.get(NAMES .. key)
    local more = names and names .. "\0" .. path or path
  until shared.cas(NAMES .. key, names, more)
end

local function forget_name(path, key)
  shared.delete(INO .. path)
  repeat
    local names = shared.get(NAMES .. key)
    if not names then return end
    local rest = {}
    for name in names:gmatch("[^%z]+") do
      if name ~= path then rest[#rest + 1] = name end
    end
    local left = #rest > 0 and table.concat(rest, "\0") or nil
  until shared.cas(NAMES .. key, names, left)
end

-- Invalidates path and the other names of its file that the kernel knows.
local function invalidate_file(path, is_new, is_gone)
  invalidate(path)
  local key = shared.get(INO .. path)
  if not key and is_new then
    local st = sys.fstatat(rootfd, rel[path] or ".", AT_SYMLINK_NOFOLLOW)
    if st and st.nlink > 1 then key = st.dev .. ":" .. st.ino end
  end
  if not key then return end
  for name in (shared.get(NAMES .. key) or ""):gmatch("[^%z]+") do
    if name ~= path then invalidate(name) end
  end
  if is_gone then forget_name(path, key) end
end

local function join(dir, name)
  return dir == "/" and "/" .. name or dir .. "/" .. name
end

-- Watches directory dir (a request's path) on the shared descriptor. The
-- first time the user's watches run out, the log says so, once per mount.
local FULL = "passthrough.watches-full"
local function watch_dir(dir)
  local ifd, name = shared.get(INOTIFY), rel[dir]
  if not ifd or not name or #name >= PROC_MAX then return end
  local wd, _, err = sys.inotify_add_watch(ifd, PROC_ROOT .. name, WATCH_MASK)
  if wd and shared.get(WD .. wd) ~= dir then shared.set(WD .. wd, dir) end
  if err == luafs.ENOSPC and shared.cas(FULL, nil, true) then
    luafs.log("passthrough.lua: no inotify watch left for " .. dir
      .. " (/proc/sys/fs/inotify/max_user_watches): changes made in ROOT in"
      .. " directories not watched show through the mount when the kernel's"
      .. " cache of them expires, within " .. CACHE_SECONDS .. " s")
  end
end

--[[ Invalidates old/NAME for each NAME now in ROOT in the directory new
(the same directory, or where a rename in ROOT took it); with deep, also
below, in each subdirectory that is watched, which is where the kernel
may know names. inotify knows which are, by inode (whatever path their
watch was made under): asked to make a watch only where there is none
(IN_MASK_CREATE, Linux 4.18), it fails with EEXIST there. A subdirectory
that it watches afresh is kept, under its new path, rather than removed,
which could remove the watch that a state just added for a lookup in it. ]]
local function invalidate_tree(old, new, deep)
  local dirfd, name = reach(new)
  if not dirfd then return end
  local fd = sys.openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
  closing(dirfd)
  if not fd then return end
  local dir = sys.fdopendir(fd)
  if not dir then
    sys.close(fd)
    return
  end
  local ifd = deep and shared.get(INOTIFY)
  local at = "/proc/self/fd/" .. fd .. "/"
  local names, watched = {}, {}
  for entry, _, type in dir.read, dir do
    if entry ~= "." and entry ~= ".." then
      names[#names + 1] = entry
      if ifd and (type == DT_DIR or type == DT_UNKNOWN) then
        local wd, _, err = sys.inotify_add_watch(ifd, at .. entry, WATCH_MASK | IN_MASK_CREATE)
        if wd then
          shared.set(WD .. wd, join(new, entry))
        elseif err == EEXIST then
          watched[entry] = true
        end
      end
    end
  end
  dir:close()
  for _, entry in ipairs(names) do
    invalidate(join(old, entry))
    if watched[entry] then invalidate_tree(join(old, entry), join(new, entry), true) end
  end
end

-- After a lost event: every watched directory and every name in it (the
-- watched directories below each are in the map themselves).
local function invalidate_all()
  for _, key in ipairs(shared.keys(WD)) do
    local dir = shared.get(key)
    if dir then
      invalidate(dir)
      invalidate_tree(dir, dir)
    end
  end
end

local function on_events(ifd)
  local events = sys.inotify_read(ifd)
  local moved = {}                         -- cookie -> the old path of a directory
  for _, ev in ipairs(events or {}) do
    local dir = shared.get(WD .. ev.wd)
    if ev.IN_Q_OVERFLOW then
      invalidate_all()
    elseif ev.IN_IGNORED then              -- the directory is gone
      shared.delete(WD .. ev.wd)
    elseif dir and ev.name then
      local path = join(dir, ev.name)
      if ev.IN_ISDIR then
        invalidate(path)
      else
        invalidate_file(path, ev.IN_CREATE or ev.IN_MOVED_TO, ev.IN_DELETE or ev.IN_MOVED_FROM)
      end
      if not (ev.IN_ATTRIB or ev.IN_MODIFY) then invalidate(dir) end
      if ev.IN_ISDIR and ev.IN_MOVED_FROM then moved[ev.cookie] = path end
      if ev.IN_ISDIR and ev.IN_MOVED_TO and moved[ev.cookie] then
        invalidate_tree(moved[ev.cookie], path, true)
      end
    elseif dir then                        -- the watched directory itself
      invalidate(dir)
    end
  end
end

if COHERENT then
  -- State 1 makes the descriptor (the pool loads it first) and reads it;
  -- index 0 is the scratch state that checks a reload, which keeps nothing.
  local _, index = luafs.states()
  if index == 1 then
    local ifd = shared.get(INOTIFY)
    if not ifd then
      ifd = assert(sys.inotify_init1(luafs.IN_NONBLOCK | luafs.IN_CLOEXEC))
      shared.set(INOTIFY, ifd)
    end
    luafs.watch(ifd, "r", function() on_events(ifd) end)
  end
  local getattr, opendir = fs.getattr, fs.opendir
  function fs.getattr(path, fi)
    if fi then return getattr(path, fi) end
    local dir = path:match("^(.*)/[^/]*$")
    watch_dir(dir == "" and "/" or dir)
    local st, msg, err = getattr(path, fi)
    if st and st.mode & S_IFMT ~= S_IFDIR then remember_name(path, st) end
    return st, msg, err
  end
  function fs.opendir(path, fi)
    watch_dir(path)
    return opendir(path, fi)
  end
end

-- Keeps the root descriptor's guard alive as long as these functions are.
function fs.destroy()
  return guard and nil
end

return fs
