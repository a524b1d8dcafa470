-- spec/signals_spec.lua: SIGINT, SIGTERM and SIGHUP unmount cleanly (also
-- with requests in flight and with a callback in an endless loop); a host
-- killed with SIGKILL leaves a stale mount that the next luafs recovers;
-- -o auto_unmount leaves none.
local H = require "spec.helpers"

local testing, sys = H.testing, H.sys
local q = H.quote

local HELLO = H.example("hello.lua")
local MEMFS = H.example("memfs.lua")
local SLOW = H.fixture("host_slow_read.lua")

local dirs = {}
local function fresh_dir()
  local d = H.temp_dir()
  dirs[#dirs + 1] = d
  return d
end

-- Starts `cmd` in the background with its output in dir/NAME.out, its
-- standard error in dir/NAME.err and its exit status in dir/NAME.rc.
local function background(dir, name, cmd)
  local p = q(dir .. "/" .. name)
  local code, out = H.shell(string.format("( %s >%s.out 2>%s.err; echo $? >%s.rc.tmp; "
    .. "mv %s.rc.tmp %s.rc ) </dev/null >/dev/null 2>&1 &", cmd, p, p, p, p, p))
  assert.are.equal(0, code, out)
end

-- The exit status of a background command, waiting up to `timeout` s.
local function finished(dir, name, timeout)
  local rc = H.wait_until(function() return H.read(dir .. "/" .. name .. ".rc") end, timeout or 10)
  return rc and tonumber(rc:match("%d+"))
end

local function count_lines(text, pattern)
  local n = 0
  for line in text:gmatch("[^\n]+") do
    if line:find(pattern, 1, true) then n = n + 1 end
  end
  return n
end

-- The single host process serving mountpoint mnt.
local function host_pid(mnt)
  local pids = H.pids_with_arg(mnt)
  assert.are.equal(1, #pids, "hosts for " .. mnt)
  return pids[1]
end


-- testing.mount, with an unmount after the test even when it failed.
local mount, unmount_all = H.mount_tracker()

describe("signals", function()
  after_each(function()
    unmount_all()
    for _, d in ipairs(dirs) do
      H.cleanup_mountpoint(d)
      H.remove(d)
    end
    dirs = {}
  end)

  for _, sig in ipairs { "INT", "TERM", "HUP" } do
    it("SIG" .. sig .. " unmounts, runs destroy and exits 0", function()
      local marks = fresh_dir()
      local m = mount(H.fixture("host_markers.lua"), { args = { marks } })
      assert.are.equal("hello\n", H.read(m:path("hello")))
      assert.are.equal("init ran\n", H.read(marks .. "/init"))
      assert.truthy(m:kill(sig))
      assert.are.equal(0, m:wait(10), m:log())
      assert.is_false(m:is_mounted())
      assert.are.equal("destroy ran\n", H.read(marks .. "/destroy"))
      assert(m:unmount())
    end)
  end

  it("SIGTERM lets requests in flight finish, then unmounts", function()
    local out = fresh_dir()
    local m = mount(SLOW, { options = { "-o", "states=4" }, args = { "0.1" } })
    for i = 1, 6 do
      background(out, "r" .. i, "cat " .. q(m:path("slow")))
    end
    assert.truthy(H.wait_until(function()
      return count_lines(m:log(), "slow read entered") >= 4
    end, 10), m:log())
    local entered = count_lines(m:log(), "slow read entered")
    assert.truthy(m:kill("TERM"))
    assert.are.equal(0, m:wait(10), m:log())
    assert.is_false(m:is_mounted())
    -- Every reader is done; each got all the data or an error, and at
    -- least those whose read had started got the data.
    local complete = 0
    for i = 1, 6 do
      local rc = finished(out, "r" .. i)
      assert.truthy(rc, "reader " .. i .. " still hangs")
      local data = H.read(out .. "/r" .. i .. ".out")
      if data == "slow data\n" then
        complete = complete + 1
      else
        assert.are.equal("", data, "reader " .. i .. " got part of the data")
        assert.are_not.equal(0, rc)
      end
    end
    assert.truthy(complete >= entered, string.format("%d reads had started, %d completed\n%s",
      entered, complete, m:log()))
    assert.are.equal(0, count_lines(m:log(), "interrupted"), m:log())
    assert(m:unmount())
  end)

  it("SIGTERM interrupts a callback still running after the grace period", function()
    local out = fresh_dir()
    -- The read would take 30 s; the grace period is 2 s.
    local m = mount(SLOW, { args = { "30" } })
    background(out, "r", "cat " .. q(m:path("slow")))
    assert.truthy(H.log_line(m, "slow read entered", 10), m:log())
    assert.truthy(m:kill("TERM"))
    assert.are.equal(0, m:wait(20), m:log())
    assert.is_false(m:is_mounted())
    assert.are_not.equal(0, finished(out, "r"))
    assert.are.equal("", H.read(out .. "/r.out"))
    local line = H.log_line(m, "interrupted: luafs is unmounting")
    assert.truthy(line and line:find("^luafs: read /slow: "), m:log())
    assert(m:unmount())
  end)

  for _, sig in ipairs { "TERM", "INT" } do
    it("SIG" .. sig .. " unmounts while a callback is in an endless Lua loop", function()
      local out = fresh_dir()
      local m = mount(H.fixture("loop_read.lua"))
      background(out, "r", "cat " .. q(m:path("loop")))
      assert.truthy(H.log_line(m, "loop_read: read entered", 10), m:log())
      assert.truthy(m:kill(sig))
      assert.are.equal(0, m:wait(20), m:log())
      assert.is_false(m:is_mounted())
      local rc = finished(out, "r")
      assert.truthy(rc, "the reader still hangs")
      assert.are_not.equal(0, rc)
      assert.truthy(H.read(out .. "/r.err"):find("Input/output error", 1, true))
      local line = H.log_line(m, "interrupted: luafs is unmounting")
      assert.truthy(line and line:find("^luafs: read /loop: "), m:log())
      assert(m:unmount())
    end)
  end

  it("signals that keep coming do not postpone the interrupt of an endless loop", function()
    local out = fresh_dir()
    local m = mount(H.fixture("loop_read.lua"))
    background(out, "r", "cat " .. q(m:path("loop")))
    assert.truthy(H.log_line(m, "loop_read: read entered", 10), m:log())
    -- A signal every 100 ms, far more often than the grace period.
    local status = H.wait_until(function()
      m:kill("TERM")
      return m:status()
    end, 30, 0.1)
    assert.are.equal(0, status, m:log())
    assert.is_false(m:is_mounted())
    assert.truthy(finished(out, "r"), "the reader still hangs")
    assert(m:unmount())
  end)

  describe("after SIGKILL", function()
    -- Mounts script on a fresh directory (detached), kills the host with
    -- SIGKILL and returns the directory, now a stale mount.
    local function stale(script, options)
      local mnt = fresh_dir()
      local argv = { script, mnt }
      for _, o in ipairs(options or {}) do argv[#argv + 1] = o end
      local code, all = testing.run(argv)
      assert.are.equal(0, code, all)
      local pid = host_pid(mnt)
      assert(os.execute("kill -KILL " .. pid))
      assert.truthy(H.wait_until(function() return not testing.alive(pid) end, 10))
      assert.are.equal(1, testing.mounted_at(mnt))
      -- A dead connection answers ENOTCONN or ECONNABORTED.
      for _, f in ipairs { sys.statvfs, sys.opendir } do
        local e = H.err(f, mnt)
        assert(e == "ENOTCONN" or e == "ECONNABORTED", e)
      end
      return mnt
    end

    it("luafs recovers the stale mount it left and mounts again", function()
      local mnt = stale(HELLO)
      local code, all, out, err = testing.run({ MEMFS, mnt })
      assert.are.equal(0, code, all)
      assert.are.equal("", out)
      assert.are.equal(string.format("luafs: warning: %s: unmounted a stale mount of %s, "
        .. "left by a luafs process that died\n", mnt, HELLO), err)
      assert.are.equal(1, testing.mounted_at(mnt))
      H.write(mnt .. "/f", "after the crash\n")
      assert.are.equal("after the crash\n", H.read(mnt .. "/f"))
      assert.are.equal("ENOENT", H.err(sys.stat, mnt .. "/hello"))
    end)

    it("luafs in the foreground recovers it too", function()
      local mnt = stale(HELLO)
      local log = mnt .. ".log"
      local code, all = H.shell(string.format("%s %s %s -f >%s 2>&1 & echo $!",
        q(H.host), q(MEMFS), q(mnt), q(log)))
      assert.are.equal(0, code, all)
      local pid = tonumber(all:match("%d+"))
      assert.truthy(H.wait_until(function()
        return testing.mounted_at(mnt) == 1 and sys.statvfs(mnt)
      end, 10), H.read(log))
      H.write(mnt .. "/f", "x")
      assert.are.equal("x", H.read(mnt .. "/f"))
      assert.truthy(H.read(log):find("unmounted a stale mount of " .. HELLO, 1, true))
      assert(os.execute("kill -TERM " .. pid))
      assert.truthy(H.wait_until(function() return not testing.alive(pid) end, 10))
      assert.are.equal(0, testing.mounted_at(mnt))
      os.remove(log)
    end)

    it("a stale mount of another FUSE type is left alone, with the command to run", function()
      local mnt = stale(HELLO, { "-o", "subtype=other" })
      local code, all, out, err = testing.run({ MEMFS, mnt })
      assert.are.equal(3, code, all)
      assert.are.equal("", out)
      assert.are.equal(string.format("luafs: %s is a stale FUSE mount (fuse.other %s) whose filesystem "
        .. "process died; run: fusermount3 -u -z %s\n", mnt, HELLO, mnt), err)
      assert.are.equal(1, testing.mounted_at(mnt))
      -- What it says to run works.
      local c2, o2 = H.shell("fusermount3 -u -z " .. mnt)
      assert.are.equal(0, c2, o2)
      assert.are.equal(0, testing.mounted_at(mnt))
      local c3, a3 = testing.run({ HELLO, mnt })
      assert.are.equal(0, c3, a3)
      assert.are.equal("hello\n", H.read(mnt .. "/hello"))
    end)

    it("-o auto_unmount leaves no stale mount", function()
      local m = mount(HELLO, { options = { "-o", "auto_unmount" } })
      assert.are.equal("hello\n", H.read(m:path("hello")))
      assert.truthy(m:kill("KILL"))
      assert.truthy(H.wait_until(function() return not m:is_mounted() end, 10),
        "the mount outlived its host")
      assert.are.equal(137, m:wait(10))
      assert.are.equal("ENOENT", H.err(sys.stat, m:path("hello")))
      assert(m:unmount())
    end)
  end)

  it("a FUSE mount that does not answer is refused, not waited for", function()
    local m = mount(H.fixture("host_hang_statfs.lua"))
    local code, all = testing.run({ HELLO, m.mountpoint }, { timeout = 60 })
    assert.are.equal(3, code, all)
    assert.are.equal(string.format("luafs: %s is a FUSE mount (fuse.luafs %s) that does not answer; "
      .. "unmount it first: fusermount3 -u -z %s\n", m.mountpoint, H.fixture("host_hang_statfs.lua"),
      m.mountpoint), all)
    assert.truthy(H.log_line(m, "statfs entered"), m:log())
    assert.are.equal(1, testing.mounted_at(m.mountpoint))
    -- The stuck statfs keeps its state busy; SIGTERM still stops it.
    assert.truthy(m:kill("TERM"))
    assert.are.equal(0, m:wait(20), m:log())
    assert.is_false(m:is_mounted())
    assert(m:unmount())
  end)
end)
