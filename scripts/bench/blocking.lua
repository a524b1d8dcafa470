--[[
blocking.lua: a file whose reads block, for the pool measurement of
`scripts/bench/bench`: a disk or a network that answers slowly, where the
calls of several Lua states overlap and one state serves them in turn.

    luafs scripts/bench/blocking.lua MNT -f -o states=N -- [MS]

/blocking.dat is 64 MiB of zeros; each read first sleeps MS milliseconds
(default 2) in luafs.sys.sleep, a system call that holds the Lua state
as a blocking pread would.
]]
local luafs = require "luafs"

local ms = tonumber((...)) or 2
local SIZE = 64 * 1024 * 1024
local zeros = string.rep("\0", 4096) -- grown to the largest read

local fs = {}

function fs.init(_, cfg)
  -- only the reads reach the script, not a getattr before each
  cfg.attr_timeout, cfg.entry_timeout = 60, 60
end

function fs.getattr(path)
  if path == "/" then return { mode = luafs.S_IFDIR | tonumber("755", 8), nlink = 2 } end
  if path == "/blocking.dat" then
    return { mode = luafs.S_IFREG | tonumber("444", 8), nlink = 1, size = SIZE }
  end
  return -luafs.ENOENT
end

function fs.read(_, size, offset)
  luafs.sys.sleep(ms / 1000)
  if size > #zeros then zeros = string.rep("\0", size) end
  return zeros:sub(1, math.max(0, math.min(size, SIZE - offset)))
end

return fs
