-- spec/invalidate_spec.lua: luafs.invalidate_path through
-- spec/fixtures/ops_invalidate.lua, whose files the kernel may cache for
-- an hour: a change behind the kernel's back stays hidden until the
-- script invalidates the path, then shows; calling it from inside a
-- callback, even on the file being read, does not deadlock.
local H = require "spec.helpers"

local testing, sys = H.testing, H.sys

local FIXTURE = H.fixture("ops_invalidate.lua")

local function runner(m)
  return function(code)
    local f = assert(io.open(m:path("eval"), "r+b"))
    assert(f:write(code))
    assert(f:flush())
    assert(f:seek("set", 0))
    local out = f:read("a")
    f:close()
    local r = assert(load(out, "=eval result", "t", {}))()
    assert(r[1], "the code raised: " .. tostring(r[2]))
    return table.unpack(r, 2, r.n)
  end
end

for _, mode in ipairs { "multi-threaded", "single-threaded" } do
  describe("luafs.invalidate_path (" .. mode .. ")", function()
    local fs = testing.mounted(FIXTURE, { options = mode == "single-threaded" and { "-s" } or {} })
    local run
    before_each(function() run = runner(fs) end)

    it("makes the kernel drop cached data, which stays until then", function()
      assert.are.equal("old content\n", H.read(fs:path("data")))
      -- same size (and mtime): the kernel's checks see no change
      run("S.data = 'NEW CONTENT\\n'")
      for _ = 1, 3 do
        assert.are.equal("old content\n", H.read(fs:path("data")))
      end
      assert.is_true(run("return luafs.invalidate_path('/data')"))
      local got = H.wait_until(function()
        local s = H.read(fs:path("data"))
        return s ~= "old content\n" and s
      end, 5)
      assert.are.equal("NEW CONTENT\n", got)
    end)

    it("makes the kernel drop cached attributes", function()
      assert.are.equal(12, sys.stat(fs:path("data")).size)
      run("S.data = 'new, longer content\\n'")
      for _ = 1, 3 do assert.are.equal(12, sys.stat(fs:path("data")).size) end
      run("luafs.invalidate_path('/data')")
      assert.are.equal(20, H.wait_until(function()
        local size = sys.stat(fs:path("data")).size
        return size ~= 12 and size
      end, 5))
      assert.are.equal("new, longer content\n", H.read(fs:path("data")))
    end)

    it("can be called from a callback on the very file being read", function()
      local function reads()
        return tonumber(assert(H.read(fs:path("self"))):match("^read (%d+)\n"))
      end
      local last = reads()
      for _ = 1, 4 do
        -- the invalidation is sent after the read answered; once it lands,
        -- a read asks the script again, where the cache would answer for
        -- an hour
        local n = H.wait_until(function()
          local now = reads()
          return now ~= last and now
        end, 10)
        assert.is_truthy(n, "read " .. last .. " stayed cached")
        assert.is_true(n > last, "read " .. n .. " after read " .. last)
        last = n
      end
      assert.is_true(fs:is_mounted())
    end)

    it("accepts paths the kernel never saw, and many requests at once", function()
      assert.is_true(run([[
        for i = 1, 2000 do luafs.invalidate_path("/nowhere/" .. i) end
        for _ = 1, 100 do luafs.invalidate_path("/data") end
        return luafs.invalidate_path("/")
      ]]))
      assert.are.equal(H.read(fs:path("data")), H.read(fs:path("data")))
    end)

    it("raises for an argument that is no path", function()
      local f = assert(io.open(fs:path("eval"), "r+b"))
      assert(f:write("return luafs.invalidate_path({})"))
      assert(f:flush())
      assert(f:seek("set", 0))
      local r = assert(load(f:read("a"), "=eval result", "t", {}))()
      f:close()
      assert.is_false(r[1])
      assert.matches("bad argument #1 to 'invalidate_path'", r[2], 1, true)
    end)
  end)
end

describe("luafs.invalidate_path at load", function()
  it("raises: there is no mount yet", function()
    local dir = H.temp_dir()
    local code, out = testing.run({ FIXTURE, dir, "-f", "--", "atload" }, { timeout = 20 })
    H.cleanup_mountpoint(dir)
    assert.are_not.equal(0, code)
    assert.truthy(out:find("luafs.invalidate_path: not mounted", 1, true), out)
  end)
end)
