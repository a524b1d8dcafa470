--[[
ioctl.lua: one file, /fioc, whose size is read and set through ioctl(2),
like libfuse's example/ioctl.c with its ioctl_client.c.

    luafs ioctl.lua /mnt/fioc -f
    ioctl_client /mnt/fioc/fioc set 100      (spec/fixtures/ioctl_client.c)
    ioctl_client /mnt/fioc/fioc get

The file holds bytes like any other (read, write, truncate); the ioctl
commands below work on the same bytes. They use the magic letter 'E' and
fixed-width arguments, so a 32-bit caller uses the same command numbers
as a 64-bit one:

  FIOC_GET_SIZE  _IOR('E', 0, uint64_t)   the size, out
  FIOC_SET_SIZE  _IOW('E', 1, uint64_t)   a new size, in: cut, or zero-filled
  FIOC_INFO      _IOR('E', 2, 16 bytes)   what the call looked like: the
                 flags (uint32_t), the command (uint32_t) and the size of
                 the file (uint64_t), all little-endian
  FIOC_READ(n)   _IOWR('E', 3, n bytes)   in: an offset (uint64_t) and
                 padding; out: the n bytes of the file there (zeros past
                 the end); n from 8 to 16383, any size the bits can say
  FIOC_WRITE(n)  _IOW('E', 4, n bytes)    in: an offset (uint64_t) and
                 n - 8 bytes to write there; the result is n - 8
  FIOC_TRUNCATE  _IO('E', 5)              the argument itself (not a
                 pointer) is the new size; the result is the old one

How ioctl works in FUSE: the kernel passes only "restricted" ioctls to a
filesystem of the high-level API. The command's _IOC bits say how many
bytes the caller's argument points to and in which direction they go;
luafs hands the script those bytes in as a string (_IOC_WRITE), and copies
the string it returns out to the caller (_IOC_READ). The ioctl's result
is the integer the script returns.

Any other command answers ENOTTY, which is what ioctl(2) answers for a
command the file does not know. FIOC_INFO also works on the directory
(flags then has FUSE_IOCTL_DIR); a 32-bit caller on a 64-bit kernel shows
FUSE_IOCTL_COMPAT (and the kernel's FUSE_IOCTL_32BIT, 8) in the flags.

Limits:
  * The contents live in one Lua string of the one Lua state, at most
    MAX_SIZE bytes, and are lost at unmount.
  * Commands whose argument holds pointers to more data (libfuse's
    FIOC_READ and FIOC_WRITE do that) need "unrestricted" ioctls, which
    only CUSE and the low-level API get; the high-level API refuses them.
]]

local luafs = require "luafs"

local S_IFDIR, S_IFREG = luafs.S_IFDIR, luafs.S_IFREG
local FUSE_IOCTL_DIR = luafs.FUSE_IOCTL_DIR

local MAX_SIZE = 64 * 1024 * 1024

-- The Linux encoding of ioctl commands (asm-generic/ioctl.h).
local IOC_NONE, IOC_WRITE, IOC_READ = 0, 1, 2
local function IOC(dir, type, nr, size)
  return dir << 30 | size << 16 | type:byte() << 8 | nr
end
local function IOC_DIR(cmd) return cmd >> 30 & 3 end
local function IOC_TYPE(cmd) return cmd >> 8 & 0xff end
local function IOC_NR(cmd) return cmd & 0xff end
local function IOC_SIZE(cmd) return cmd >> 16 & 0x3fff end

local FIOC_GET_SIZE = IOC(IOC_READ, "E", 0, 8)
local FIOC_SET_SIZE = IOC(IOC_WRITE, "E", 1, 8)
local FIOC_INFO = IOC(IOC_READ, "E", 2, 16)
local FIOC_READ_NR, FIOC_WRITE_NR = 3, 4
local FIOC_TRUNCATE = IOC(IOC_NONE, "E", 5, 0)

local data = ""
local started = os.time()

local function resize(size)
  if size < 0 or size > MAX_SIZE then return -luafs.EINVAL end
  if size < #data then
    data = data:sub(1, size)
  else
    data = data .. string.rep("\0", size - #data)
  end
  return 0
end

-- The bytes of the file at offset, n of them, zeros past the end.
local function bytes_at(offset, n)
  local s = data:sub(offset + 1, offset + n)
  return s .. string.rep("\0", n - #s)
end

local function write_at(offset, s)
  if offset < 0 or offset + #s > MAX_SIZE then return -luafs.EFBIG end
  if offset > #data then resize(offset) end
  data = data:sub(1, offset) .. s .. data:sub(offset + #s + 1)
  return #s
end

local fs = {}

function fs.init(_, cfg)
  cfg.attr_timeout = 0 -- ioctls change the size behind the kernel's back
  cfg.entry_timeout = 0
end

function fs.getattr(path)
  local uid, gid = luafs.sys.getuid(), luafs.sys.getgid()
  if path == "/" then
    return { mode = S_IFDIR | tonumber("755", 8), nlink = 2, uid = uid, gid = gid,
             atime = started, mtime = started, ctime = started }
  end
  if path == "/fioc" then
    return { mode = S_IFREG | tonumber("666", 8), nlink = 1, size = #data, uid = uid,
             gid = gid, atime = started, mtime = started, ctime = started }
  end
  return -luafs.ENOENT
end

function fs.readdir(path)
  if path ~= "/" then return -luafs.ENOTDIR end
  return { ".", "..", "fioc" }
end

function fs.open(path, fi)
  if path ~= "/fioc" then return -luafs.ENOENT end
  fi.direct_io = true -- ioctls change the data behind the page cache
  -- libfuse wants FUSE_CAP_ATOMIC_O_TRUNC: O_TRUNC comes here, not to truncate
  if fi.flags & luafs.O_TRUNC ~= 0 then resize(0) end
end

function fs.truncate(path, size)
  if path ~= "/fioc" then return -luafs.EACCES end
  return resize(size)
end

function fs.read(_, size, offset)
  return data:sub(offset + 1, offset + size)
end

function fs.write(_, s, offset)
  return write_at(offset, s)
end

--[[ Returns the result, and for commands that read, the bytes for the
caller: at most IOC_SIZE(cmd) of them. ]]
function fs.ioctl(path, cmd, arg, _, flags, input)
  if cmd == FIOC_INFO then
    return 0, string.pack("<I4I4I8", flags, cmd, #data)
  end
  if path ~= "/fioc" or flags & FUSE_IOCTL_DIR ~= 0 then return -luafs.ENOTTY end
  if cmd == FIOC_GET_SIZE then
    return 0, string.pack("<I8", #data)
  elseif cmd == FIOC_SET_SIZE then
    return resize(string.unpack("<i8", input))
  elseif cmd == FIOC_TRUNCATE then
    local old = #data
    local res = resize(arg)
    if res < 0 then return res end
    return old
  end
  local size = IOC_SIZE(cmd)
  if IOC_TYPE(cmd) ~= ("E"):byte() or size < 8 then return -luafs.ENOTTY end
  if IOC_NR(cmd) == FIOC_READ_NR and IOC_DIR(cmd) == IOC_READ | IOC_WRITE then
    local offset = string.unpack("<i8", input)
    if offset < 0 then return -luafs.EINVAL end
    return 0, bytes_at(offset, size)
  elseif IOC_NR(cmd) == FIOC_WRITE_NR and IOC_DIR(cmd) == IOC_WRITE then
    return write_at(string.unpack("<i8", input), input:sub(9))
  end
  return -luafs.ENOTTY
end

return fs
