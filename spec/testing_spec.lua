-- spec/testing_spec.lua: the test kit luafs.testing itself: a mount that
-- fails puts the host's log in the error and leaves nothing behind; the
-- teardown unmounts even when a test failed or the host died; waiting is
-- polling with a deadline.
local H = require "spec.helpers"
local system = require "system"

local testing, sys, lfs = H.testing, H.sys, H.lfs
local q = H.quote

local HELLO = H.example("hello.lua")

-- The temporary directory of the mount that an error message names.
local function dir_in(message)
  return message:match("(/[^%s']*/luafs%-test%.[%w]+)/mnt")
end

-- The mount failed, its error carries the host's log, and nothing of it
-- is left: no mount, no host, no directory.
local function assert_failed_cleanly(ok, err, ...)
  assert.is_false(ok)
  assert.are.equal("string", type(err))
  for _, text in ipairs { ... } do
    assert.truthy(err:find(text, 1, true), "expected " .. text .. " in:\n" .. err)
  end
  local dir = dir_in(err)
  assert.truthy(dir, err)
  assert.are.equal(0, testing.mounted_at(dir .. "/mnt"))
  assert.are.same({}, H.pids_with_arg(dir .. "/mnt"))
  assert.is_nil(lfs.attributes(dir), dir .. " was left behind")
end


-- testing.mount, with an unmount after the test even when it failed.
local mount, unmount_all = H.mount_tracker()

describe("luafs.testing", function()
  after_each(unmount_all)

  describe("a mount that fails", function()
    it("raises an error with the host's log when the script does not load", function()
      -- A long deadline: these hosts exit at once, a slow machine must
      -- not turn that into a timeout.
      local ok, err = pcall(testing.mount, H.fixture("raises_on_load.lua"), { timeout = 60 })
      assert_failed_cleanly(ok, err, "exited with status 2 before the mount was live",
        "\n--- luafs host log ---\n", "raises_on_load.lua:2: load-time-failure-marker",
        "\n--- end of log ---")
    end)

    it("raises an error with the host's log when init fails", function()
      local ok, err = pcall(testing.mount, H.fixture("init_raises.lua"), { timeout = 60 })
      assert_failed_cleanly(ok, err, "exited with status 4 before the mount was live",
        "init-failure-marker", "luafs: init failed (Input/output error): unmounting")
    end)

    it("gives up at the deadline when the mount does not appear, and stops the host", function()
      local start = system.monotime()
      local ok, err = pcall(testing.mount, H.fixture("host_slow_load.lua"),
        { args = { "60" }, timeout = 1, exit_timeout = 1 })
      assert_failed_cleanly(ok, err, ": the mount on ", " was not live after 1 s", "slow-load-marker")
      assert.truthy(system.monotime() - start < 30, "the kit did not keep to its deadline")
    end)

    it("raises an error with the shell's message when the host cannot run", function()
      local ok, err = pcall(testing.mount, HELLO, { host = "/nonexistent/luafs", timeout = 60 })
      assert_failed_cleanly(ok, err, "exited with status 127", "/nonexistent/luafs")
    end)
  end)

  describe("waiting", function()
    local real_sleep = testing.sleep
    after_each(function() testing.sleep = real_sleep end)

    it("polls the mount table in short steps until the mount is live", function()
      local naps = {}
      testing.sleep = function(s)
        naps[#naps + 1] = s
        return real_sleep(s)
      end
      -- The script takes a second to load, so the mount appears late.
      local m = mount(H.fixture("host_slow_load.lua"), { args = { "1" }, timeout = 30 })
      testing.sleep = real_sleep
      assert.truthy(m:is_mounted(), "mount returned before the mount was live")
      assert.are.equal(1, testing.mounted_at(m.mountpoint))
      local st, parent = assert(sys.stat(m.mountpoint)), assert(sys.stat(m._dir))
      assert.are_not.equal(parent.dev, st.dev)
      assert.are.equal("hello\n", H.read(m:path("hello")))
      assert.truthy(#naps >= 10, "only " .. #naps .. " looks at the mount table")
      for _, s in ipairs(naps) do assert.truthy(s <= 0.05, "a sleep of " .. s .. " s") end
      assert(m:unmount())
    end)

    it("wait_until returns the first true value of the predicate", function()
      local calls = 0
      local v = testing.wait_until(function()
        calls = calls + 1
        return calls == 3 and "third"
      end, 30)
      assert.are.equal("third", v)
      assert.are.equal(3, calls)
    end)

    it("wait_until gives up after its deadline", function()
      local calls = 0
      local start = system.monotime()
      local v = testing.wait_until(function() calls = calls + 1 return false end, 0.3, 0.01)
      local took = system.monotime() - start
      assert.is_false(v)
      assert.truthy(took >= 0.3, "gave up after " .. took .. " s")
      assert.truthy(took < 10, "took " .. took .. " s")
      assert.truthy(calls > 2, "looked only " .. calls .. " times")
    end)
  end)

  describe("a mount", function()
    it("lives on a fresh directory, with a tmpfs scratch directory, both removed at unmount", function()
      local m = mount(HELLO, { scratch = true })
      local dir, scratch = m._dir, m.scratch
      assert.truthy(scratch:match("^/dev/shm/luafs%-scratch%."), scratch)
      local _, fstype = H.shell("stat -f -c %T " .. q(scratch))
      assert.are.equal("tmpfs\n", fstype)
      -- Other users may reach the mountpoint (for allow_other).
      assert.are.equal("rwx--x--x", lfs.attributes(dir, "permissions"))
      assert.truthy(m:alive())
      assert.is_nil(m:status())
      assert.are.equal(m.mountpoint .. "/a/b", m:path("/a/b"))
      assert(m:unmount())
      assert(m:unmount(), "unmount is idempotent")
      assert.are.equal(0, m.exit_status)
      assert.is_false(m:is_mounted())
      assert.is_nil(lfs.attributes(dir))
      assert.is_nil(lfs.attributes(scratch))
      assert.is_false(testing.alive(m.pid))
    end)

    it("reports a host that died during the test, and still cleans up its stale mount", function()
      local m = mount(HELLO)
      assert(os.execute("kill -KILL " .. m.pid))
      assert.truthy(H.wait_until(function() return not m:alive() end, 10))
      assert.are.equal(1, testing.mounted_at(m.mountpoint), "a stale mount is there")
      local ok, problem = m:unmount { strict = false }
      assert.is_false(ok)
      assert.truthy(problem:find("the host exited during the test (status 137)", 1, true), problem)
      assert.truthy(problem:find("--- luafs host log ---", 1, true) or problem:find("log is empty", 1, true),
        problem)
      assert.are.equal(0, testing.mounted_at(m.mountpoint))
      assert.is_nil(lfs.attributes(m._dir))
    end)

    it("testing.run returns the status and the two outputs apart", function()
      local code, all, out, err = testing.run({ "--version" })
      assert.are.equal(0, code)
      assert.truthy(out:match("^luafs "), out)
      assert.are.equal("", err)
      assert.are.equal(out, all)
      local code2, _, out2, err2 = testing.run({ HELLO })
      assert.are.equal(1, code2)
      assert.are.equal("", out2)
      assert.truthy(err2:find("no mountpoint given", 1, true), err2)
    end)
  end)

  describe("in a busted spec", function()
    local work

    before_each(function() work = H.temp_dir() end)
    after_each(function() H.remove(work) end)

    local INNER = [[
local testing = require "luafs.testing"
local record, hello = assert(os.getenv("RECORD")), assert(os.getenv("HELLO"))
local function note(fs, what)
  local f = assert(io.open(record, "a"))
  f:write(what, " ", fs.pid, " ", fs.mountpoint, "\n")
  f:close()
end

describe("per test", function()
  local fs = testing.mounted(hello)
  it("fails on purpose", function()
    note(fs, "failing")
    assert(testing.mounted_at(fs.mountpoint) == 1)
    error("inner-failure-marker")
  end)
  it("passes", function()
    note(fs, "passing")
    local f = assert(io.open(fs:path("hello")))
    assert.are.equal("hello\n", f:read("a"))
    f:close()
  end)
end)

describe("once per block", function()
  local fs = testing.mounted(hello, { once = true })
  it("fails too", function()
    note(fs, "once")
    error("second-failure-marker")
  end)
end)

describe("a host that dies", function()
  local fs = testing.mounted(hello)
  it("is killed by the test", function()
    note(fs, "dying")
    os.execute("kill -KILL " .. fs.pid)
    testing.wait_until(function() return not fs:alive() end, 10)
  end)
end)
]]

    it("the teardown unmounts even when the test failed, and shows the host's log", function()
      local spec, record = work .. "/inner_spec.lua", work .. "/record"
      H.write(spec, INNER)
      local code, out = H.shell(string.format(
        "cd %s && RECORD=%s HELLO=%s LUAFS=%s lua5.4 %s -o TAP %s",
        q(work), q(record), q(HELLO), q(H.host), q("/usr/bin/busted"), q(spec)))
      assert.are_not.equal(0, code, out)
      assert.truthy(out:find("not ok %d+ %- per test fails on purpose"), out)
      assert.truthy(out:find("inner-failure-marker", 1, true), out)
      assert.truthy(out:find("\nok %d+ %- per test passes"), out)
      assert.truthy(out:find("not ok %d+ %- once per block fails too"), out)
      assert.truthy(out:find("luafs.testing: a test failed with " .. HELLO .. " mounted on ", 1, true), out)
      assert.truthy(out:find("the host exited during the test (status 137)", 1, true), out)
      -- Every mount the inner spec made is gone, with its host and its
      -- directory.
      local seen = {}
      for what, pid, mnt in H.read(record):gmatch("(%S+) (%d+) (%S+)\n") do
        seen[#seen + 1] = what
        assert.are.equal(0, testing.mounted_at(mnt), what .. ": " .. mnt .. " is still mounted")
        assert.is_false(testing.alive(tonumber(pid)), what .. ": host " .. pid .. " still runs")
        assert.is_nil(lfs.attributes(mnt), what .. ": " .. mnt .. " was left behind")
      end
      assert.are.same({ "failing", "passing", "once", "dying" }, seen)
    end)

    it("unmounts after a test that failed with a file of the mount still open", function()
      local spec = work .. "/open_spec.lua"
      H.write(spec, string.format([[
local testing = require "luafs.testing"
describe("a test", function()
  local fs = testing.mounted(%q)
  it("fails with hello open", function()
    local f = assert(io.open(fs:path("hello")))
    assert(f:read("a") == "goodbye\n", "open-file-failure-marker")
    f:close()
  end)
end)
]], HELLO))
      local code, out = H.shell(string.format("cd %s && LUAFS=%s lua5.4 %s -o TAP %s",
        q(work), q(H.host), q("/usr/bin/busted"), q(spec)))
      assert.are_not.equal(0, code, out)
      assert.truthy(out:find("not ok 1 - a test fails with hello open", 1, true), out)
      assert.truthy(out:find("open-file-failure-marker", 1, true), out)
      assert.truthy(out:find("luafs.testing: a test failed with", 1, true), out)
      assert.falsy(out:find("not ok 2", 1, true), out)
      assert.falsy(out:find("fusermount3 -u failed", 1, true), out)
      local mountpoint = out:match("mounted on (%S+)")
      assert.truthy(mountpoint, out)
      assert.are.equal(0, testing.mounted_at(mountpoint))
    end)
  end)
end)
