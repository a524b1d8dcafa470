-- spec/shared_spec.lua: luafs.shared, the store that every Lua state of a
-- pool sees, through a mount of spec/fixtures/pool_shared.lua with four
-- states: its operations and types, contention from eight threads, and
-- its survival across a reload.
local H = require "spec.helpers"

local testing = H.testing
local q = H.quote

-- Runs a chunk in some state of the mount; returns its result lines.
local function eval(m, code)
  local f = assert(io.open(m:path("eval"), "r+b"))
  assert(f:write(code))
  assert(f:flush())
  assert(f:seek("set", 0))
  local out = f:read("a")
  f:close()
  return H.lines(out)
end

describe("luafs.shared", function()
  local fs = testing.mounted(H.fixture("pool_shared.lua"), { once = true, options = { "-o", "states=4" } })

  it("stores strings, integers, floats and booleans, and gives copies back", function()
    assert.same({}, eval(fs, [[
      local s = luafs.shared
      s.set("str", "a\0b\255")
      s.set("int", 42)
      s.set("neg", math.mininteger)
      s.set("flt", 0.5)
      s.set("t", true)
      s.set("f", false)
      s.set("", "empty key")
    ]]))
    -- read back in other states too: each eval opens a new handle
    for _ = 1, 4 do
      assert.same({ 'string:"a\\0b\255"', "integer:42", "integer:" .. math.mininteger, "float:0.5",
        "boolean:true", "boolean:false", 'string:"empty key"', "nil" },
        eval(fs, [[
          local g = luafs.shared.get
          return g("str"), g("int"), g("neg"), g("flt"), g("t"), g("f"), g(""), g("missing")
        ]]))
    end
  end)

  it("deletes with delete and with set(key, nil)", function()
    assert.same({ "nil", "nil", 'string:"kept"' }, eval(fs, [[
      local s = luafs.shared
      s.set("d1", 1); s.set("d2", 2); s.set("d3", "kept")
      s.delete("d1"); s.set("d2", nil); s.delete("never there")
      return s.get("d1"), s.get("d2"), s.get("d3")
    ]]))
  end)

  it("increments atomically, a missing key counting as 0, and refuses a non-integer", function()
    assert.same({ "integer:1", "integer:11", "integer:6" }, eval(fs, [[
      local s = luafs.shared
      return s.incr("i"), s.incr("i", 10), s.incr("i", -5)
    ]]))
    local r = eval(fs, [[luafs.shared.set("x", "text"); return luafs.shared.incr("x")]])
    assert.truthy(r[1]:match("^error:.*'x' is not an integer"), r[1])
    r = eval(fs, [[luafs.shared.set("x", 1.5); return luafs.shared.incr("x")]])
    assert.truthy(r[1]:match("^error:.*'x' is not an integer"), r[1])
  end)

  it("compares and sets", function()
    assert.same({ "boolean:true", "boolean:false", "boolean:true", "integer:2", "boolean:false",
      "boolean:true", "nil", "boolean:true", 'string:"v"', "boolean:false" }, eval(fs, [[
      local s = luafs.shared
      local a = s.cas("c", nil, 1)        -- absent: set
      local b = s.cas("c", nil, 5)        -- present: no
      local c = s.cas("c", 1, 2)          -- 1 -> 2
      local d = s.get("c")
      local e = s.cas("c", 1.0, 3)        -- 2 is not 1.0
      local f = s.cas("c", 2, nil)        -- delete
      local g = s.get("c")
      local h = s.cas("c2", nil, "v")
      local i = s.get("c2")
      local j = s.cas("c2", "w", "x")
      return a, b, c, d, e, f, g, h, i, j
    ]]))
  end)

  it("lists keys, all or by prefix, as a snapshot", function()
    local r = eval(fs, [[
      local s = luafs.shared
      for i = 1, 100 do s.set("k/" .. i, i) end
      s.set("other", 1)
      local all, some = s.keys(), s.keys("k/")
      local n = 0
      for _, k in ipairs(all) do if k == "other" then n = n + 1 end end
      table.sort(some, function(a, b) return tonumber(a:sub(3)) < tonumber(b:sub(3)) end)
      return #some, some[1], some[100], n, #s.keys("no such prefix")
    ]])
    assert.same({ "integer:100", 'string:"k/1"', 'string:"k/100"', "integer:1", "integer:0" }, r)
  end)

  it("refuses tables, functions and other values with a clear error", function()
    for _, v in ipairs { "{}", "print", "coroutine.create(print)", "io.stdout" } do
      local r = eval(fs, "luafs.shared.set('bad', " .. v .. ")")
      assert.truthy(r[1]:match("^error:.*bad argument #2 to 'set' "
        .. "%(string, number, boolean or luafs.PollHandle expected, got [%w*]+%)"), r[1])
    end
    local r = eval(fs, "return luafs.shared.cas('bad', nil, {})")
    assert.truthy(r[1]:match("^error:.*string, number, boolean or luafs.PollHandle expected, got table"), r[1])
    r = eval(fs, "return luafs.shared.get({})")
    assert.truthy(r[1]:match("^error:.*bad argument #1 to 'get' %(string expected, got table%)"), r[1])
    assert.same({ "nil" }, eval(fs, "return luafs.shared.get('bad')"))
  end)

  it("counts exactly 80 000 increments from 8 writers over 4 states", function()
    local bin = H.temp_dir()
    local client = bin .. "/pool_client"
    local code, out = H.shell("cc -O2 -Wall -Wextra -Werror -pthread -o " .. q(client) .. " "
      .. q(H.fixture("pool_client.c")))
    assert(code == 0, out)
    local before = tonumber(H.read(fs:path("counter")))
    code, out = H.shell(q(client) .. " write " .. q(fs:path("incr")) .. " 8 10000")
    H.remove(bin)
    assert(code == 0, out)
    assert.are.equal("writes 80000 errors 0\n", out)
    assert.are.equal(tostring(before + 80000) .. "\n", H.read(fs:path("counter")))
  end)

  it("survives a reload", function()
    eval(fs, [[luafs.shared.set("keep", "across"); luafs.shared.set("n", 7)]])
    local gen = tonumber(eval(fs, "return luafs.generation()")[1]:match("%d+"))
    assert.is_true(os.execute("kill -USR1 " .. fs.pid))
    assert.truthy(H.wait_until(function()
      return eval(fs, "return luafs.generation()")[1] == "integer:" .. (gen + 1)
    end, 5))
    assert.same({ 'string:"across"', "integer:7" },
      eval(fs, [[return luafs.shared.get("keep"), luafs.shared.get("n")]]))
  end)
end)
