--[[
cachemode.lua: runs a luafs script with the benchmark's cache settings.

    luafs scripts/bench/cachemode.lua MNT [options] -- SCRIPT MODE [args...]

Loads SCRIPT (passthrough.lua or memfs.lua) with the arguments after MODE,
and wraps its init: the script's own init runs first, untouched, then MODE
sets the kernel cache fields, exactly as ref_passthrough.c's init does:
  nocache: entry_timeout = attr_timeout = negative_timeout = 0, kernel_cache off
  cache:   entry_timeout = attr_timeout = negative_timeout = 60, kernel_cache on
  script:  nothing: the script's own settings
Every other operation is the script's own function, called directly (the
table the script returned is handed to luafs as it is).
]]
local luafs = require "luafs"

local script, mode = ...
assert(script and (mode == "nocache" or mode == "cache" or mode == "script"),
  "usage: cachemode.lua ... -- SCRIPT nocache|cache|script [args]")

local fs = assert(loadfile(script))(select(3, ...))
assert(type(fs) == "table", script .. " did not return an operations table")

local inner = fs.init
function fs.init(conn, cfg)
  local r = table.pack(true)
  if inner then r = table.pack(inner(conn, cfg)) end
  if mode == "nocache" then
    cfg.entry_timeout, cfg.attr_timeout, cfg.negative_timeout = 0, 0, 0
    cfg.kernel_cache = false
  elseif mode == "cache" then
    cfg.entry_timeout, cfg.attr_timeout, cfg.negative_timeout = 60, 60, 60
    cfg.kernel_cache = true
  end
  if inner then return table.unpack(r, 1, r.n) end
end

return fs
