-- listops.lua: prints, comma-separated, the operations a luafs script
-- defines (the functions in the table it returns), for ref_passthrough's
-- OPS argument.  Run with lua5.4 and LUA_CPATH pointing at build/luafs.so:
--   lua5.4 scripts/bench/listops.lua SCRIPT [script args...]
local script = ...
local fs = assert(loadfile(script))(select(2, ...))
local names = {}
for k, v in pairs(fs) do
  if type(k) == "string" and type(v) == "function" then names[#names + 1] = k end
end
table.sort(names)
io.write(table.concat(names, ","), "\n")
