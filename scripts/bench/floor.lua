--[[
floor.lua: the least a getattr can do, for `scripts/bench/bench --instructions`.

    luafs scripts/bench/cachemode.lua MNT -f -s -- scripts/bench/floor.lua nocache

Every path but "/" is a regular file, answered with a luafs.Stat made at
load: no system call, no allocation, no string work. Its instructions per
getattr are what calling into Lua costs the host (the state, the protected
call, the path pushed, the answer read back), the part of passthrough.lua's
figure that no script can save.
]]
local luafs = require "luafs"

local dir = luafs.Stat()
dir.mode, dir.nlink = luafs.S_IFDIR | tonumber("755", 8), 2
local file = luafs.Stat()
file.mode, file.nlink = luafs.S_IFREG | tonumber("644", 8), 1

local fs = {}

function fs.getattr(path)
  if path == "/" then return dir end
  return file
end

return fs
