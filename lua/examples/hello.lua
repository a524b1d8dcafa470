-- hello.lua: the smallest luafs filesystem, one read-only file.
--
--   luafs hello.lua /mnt/hello -f        then: cat /mnt/hello/hello
--
-- A script returns a table of functions, one per operation it answers; the
-- others answer ENOSYS, writes included (with -o ro the kernel says EROFS).
local luafs = require "luafs"

local text = "hello\n"
local fs = {}

-- getattr: what stat(2) sees. A failure is a negative errno.
function fs.getattr(path)
  if path == "/" then return { mode = luafs.S_IFDIR | tonumber("755", 8), nlink = 2 } end
  if path == "/hello" then return { mode = luafs.S_IFREG | tonumber("444", 8), nlink = 1, size = #text } end
  return -luafs.ENOENT
end

-- readdir: the names in a directory; "/" is the only one here.
function fs.readdir() return { ".", "..", "hello" } end

-- read: up to size bytes from offset (0-based); "" means end of file.
function fs.read(_path, size, offset) return text:sub(offset + 1, offset + size) end

return fs
