-- spec/background_spec.lua: luafs.after, luafs.every and luafs.watch, the
-- jobs a script runs between requests (spec/fixtures/bg_jobs.lua, which
-- takes commands on /ctl and logs what each job does).  A spec waits for
-- log lines; that something did not run is shown by a later job that did,
-- registered after it and due after it would have been.
local H = require "spec.helpers"

local testing, sys = H.testing, H.sys

local FIXTURE = H.fixture("bg_jobs.lua")

-- The log's lines, in order.
local function log_lines(m)
  return H.lines(m:log())
end

-- Waits for a log line containing `text`; returns it and its index.
local function wait_line(m, text, timeout)
  local found, at
  H.wait_until(function()
    for i, line in ipairs(log_lines(m)) do
      if line:find(text, 1, true) then
        found, at = line, i
        return true
      end
    end
  end, timeout or 5)
  assert(found, "no log line with '" .. text .. "' in:\n" .. m:log())
  return found, at
end

-- The log lines after line `from` that contain `text`.
local function lines_after(m, from, text)
  local out = {}
  for i, line in ipairs(log_lines(m)) do
    if i > from and line:find(text, 1, true) then out[#out + 1] = line end
  end
  return out
end

local function ctl(m, ...)
  H.write(m:path("ctl"), table.concat({ ... }, "\n") .. "\n")
end

describe("luafs.after and luafs.every", function()
  local fs = testing.mounted(FIXTURE)

  it("runs an after once, not before its delay, in the state that registered it", function()
    ctl(fs, "after a 0.3")
    local line = wait_line(fs, "fired a ")
    local after = tonumber(line:match("after=(%S+)"))
    assert.is_true(after >= 0.3, line)
    assert.truthy(line:find("state=1 self=true", 1, true), line)
    -- an every due later shows that the after did not run again
    ctl(fs, "every marker 0.1")
    wait_line(fs, "tick marker 4 ")
    assert.are.equal(1, #lines_after(fs, 0, "fired a "))
  end)

  it("runs an every each period, never early, until it is cancelled", function()
    ctl(fs, "every e 0.05")
    wait_line(fs, "tick e 5 ")
    for _, line in ipairs(lines_after(fs, 0, "tick e ")) do
      local k, at = line:match("tick e (%d+) at=(%S+)")
      assert.is_true(tonumber(at) >= tonumber(k) * 0.05 - 1e-3, line)
    end
    ctl(fs, "cancel e")
    local _, at = wait_line(fs, "cancelled e")
    ctl(fs, "every marker 0.05")
    wait_line(fs, "tick marker 3 ")
    assert.same({}, lines_after(fs, at, "tick e "))
  end)

  it("lets a job cancel itself while it runs", function()
    ctl(fs, "selfcancel s 0.02")
    wait_line(fs, "tick s 3")
    ctl(fs, "every marker 0.02")
    wait_line(fs, "tick marker 4 ")
    assert.same({}, lines_after(fs, 0, "tick s 4"))
  end)

  it("logs an error in a job with its traceback and keeps running jobs", function()
    ctl(fs, "raise r", "errno q")
    local line = wait_line(fs, "boom r")
    assert.truthy(line:find("background luafs.after(0, ", 1, true), line)
    assert.truthy(line:find("stack traceback", 1, true), line)
    line = wait_line(fs, "denied q")
    assert.truthy(line:find("background luafs.after(0, ", 1, true), line)
    ctl(fs, "after a 0")
    wait_line(fs, "fired a ")
    assert.is_true(fs:is_mounted())
  end)

  it("rejects bad arguments in the request that passes them", function()
    local f = assert(io.open(fs:path("ctl"), "w"))
    f:setvbuf("no")
    -- every 0 has no period; the write fails with EIO and a log line
    assert.is_nil((f:write("every bad 0\n")))
    f:close()
    wait_line(fs, "a period above 0 expected")
  end)
end)

describe("luafs.watch", function()
  local fs = testing.mounted(FIXTURE)
  local dir

  before_each(function()
    dir = H.temp_dir()
    assert(sys.mkfifo(dir .. "/fifo", H.octal("600")))
  end)
  after_each(function() H.remove(dir) end)

  -- The script holds the FIFO open for reading: opening it to write does
  -- not block.
  local function feed(data)
    local fd = H.check(sys.open(dir .. "/fifo", H.luafs.O_WRONLY))
    assert(sys.write(fd, data))
    sys.close(fd)
  end

  it("runs when its descriptor is readable, each time, until cancelled", function()
    ctl(fs, "watch w " .. dir .. "/fifo")
    feed("hello")
    local line = wait_line(fs, "got w r hello")
    assert.truthy(line:find("self=true", 1, true), line)
    feed("again")
    wait_line(fs, "got w r again")
    ctl(fs, "cancel w")
    local _, at = wait_line(fs, "cancelled w")
    feed("more")
    ctl(fs, "every marker 0.02")
    wait_line(fs, "tick marker 3 ")
    assert.same({}, lines_after(fs, at, "got w"))
  end)
end)

describe("jobs under -o call_timeout and -o lua_memory", function()
  local fs = testing.mounted(FIXTURE, { options = { "-o", "call_timeout=0.2,lua_memory=4M" } })

  it("stops a job that runs too long, and the state serves on", function()
    ctl(fs, "loop l")
    local line = wait_line(fs, "timed out after 0.2 s (-o call_timeout)")
    assert.truthy(line:find("background luafs.after(0, ", 1, true), line)
    ctl(fs, "after a 0")
    wait_line(fs, "fired a ")
  end)

  it("stops a job that allocates too much, and the state serves on", function()
    ctl(fs, "hog h")
    local line = wait_line(fs, "out of Lua memory")
    assert.truthy(line:find("background luafs.after(0, ", 1, true), line)
    ctl(fs, "after a 0")
    wait_line(fs, "fired a ")
  end)
end)

describe("jobs and a reload", function()
  local dir, m

  before_each(function()
    dir = H.temp_dir()
    assert(os.execute("cp " .. H.quote(FIXTURE) .. " " .. H.quote(dir .. "/bg_jobs.lua")))
    m = testing.mount(dir .. "/bg_jobs.lua", { args = { "chunk" }, options = { "-o", "noreload" } })
  end)
  after_each(function()
    if m then m:unmount { strict = false } end
    H.remove(dir)
  end)

  it("cancels the old code's jobs; the new code's run", function()
    wait_line(m, "chunk tick gen=1")
    ctl(m, "every e 0.02")
    wait_line(m, "tick e 2 ")
    assert(os.execute("kill -USR1 " .. m.pid))
    local _, at = wait_line(m, "reloaded ")
    -- a job that had started before the reload finishes on the old code
    wait_line(m, "chunk tick gen=2")
    local settled = #log_lines(m)
    H.wait_until(function() return #lines_after(m, settled, "chunk tick gen=2") >= 3 end, 5)
    assert.is_true(#lines_after(m, settled, "chunk tick gen=2") >= 3)
    assert.same({}, lines_after(m, settled, "gen=1"))
    assert.same({}, lines_after(m, settled, "tick e "))
    assert.is_true(#lines_after(m, at, "chunk tick gen=2") >= 3)
  end)

  it("drops the jobs of a reload that failed in a state of the pool", function()
    m:unmount()
    local marker = dir .. "/fail"
    m = testing.mount(dir .. "/bg_jobs.lua", { args = { "chunk", "failprepare=" .. marker },
                                              options = { "-o", "noreload" } })
    wait_line(m, "chunk tick gen=1")
    H.write(marker, "")
    assert(os.execute("kill -USR1 " .. m.pid))
    wait_line(m, "failing on purpose in state 1")
    os.remove(marker)
    assert(os.execute("kill -USR1 " .. m.pid))
    wait_line(m, "reloaded ")
    local settled = #log_lines(m)
    H.wait_until(function() return #lines_after(m, settled, "chunk tick gen=2") >= 3 end, 5)
    assert.is_true(#lines_after(m, settled, "chunk tick gen=2") >= 3)
    assert.same({}, lines_after(m, 0, "stale tick"))
  end)

  it("keeps the old code's jobs when a reload fails", function()
    wait_line(m, "chunk tick gen=1")
    H.write(dir .. "/bg_jobs.lua", "oops(\n", "ab")
    assert(os.execute("kill -USR1 " .. m.pid))
    local _, at = wait_line(m, "reload failed")
    H.wait_until(function() return #lines_after(m, at, "chunk tick gen=1") >= 3 end, 5)
    assert.is_true(#lines_after(m, at, "chunk tick gen=1") >= 3)
  end)
end)

describe("jobs and unmounting", function()
  local fs = testing.mounted(FIXTURE)

  it("waits for the job that runs, and runs none after destroy", function()
    ctl(fs, "every e 0.01", "slow s 0.3")
    wait_line(fs, "slow start s")
    assert(fs.m:unmount())
    local lines = log_lines(fs.m)
    local ended, destroyed
    for i, line in ipairs(lines) do
      if line:find("slow end s", 1, true) then ended = i end
      if line:find("destroy state=1", 1, true) then destroyed = i end
    end
    assert.truthy(ended, fs.m:log())
    assert.truthy(destroyed, fs.m:log())
    assert.is_true(ended < destroyed)
    assert.same({}, lines_after(fs.m, destroyed, "tick"))
  end)

  it("stops a job stuck in a loop, and unmounts cleanly", function()
    ctl(fs, "loop l")
    wait_line(fs, "looping l")
    assert(fs.m:unmount())
    local _, at = wait_line(fs.m, "interrupted: luafs is unmounting")
    local _, destroyed = wait_line(fs.m, "destroy state=1")
    assert.is_true(at < destroyed)
  end)
end)

describe("jobs with a pool of states", function()
  local fs = testing.mounted(FIXTURE, { args = { "chunk" }, options = { "-o", "states=3" } })

  it("runs each job in the state that registered it", function()
    for s = 1, 3 do wait_line(fs, "chunk tick gen=1 state=" .. s) end
    for i = 1, 6 do ctl(fs, "where w" .. i) end
    for i = 1, 6 do
      local line = wait_line(fs, "where w" .. i .. " ")
      local registered, ran = line:match("registered=(%d+) ran=(%d+)")
      assert.are.equal(registered, ran, line)
    end
  end)
end)
