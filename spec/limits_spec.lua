-- spec/limits_spec.lua: callbacks that run too long, take too much memory
-- or wait to be interrupted, through real mounts of
-- spec/fixtures/fault_limits.lua (and fault_full.lua): -o call_timeout
-- answers ETIMEDOUT, -o lua_memory ENOMEM (also when the host's own
-- allocation is the one that fails), an interrupted request what the
-- script answers (EINTR here), and SIGTERM stops an endless loop without
-- either limit.
local H = require "spec.helpers"

local testing, luafs, sys = H.testing, H.luafs, H.sys
local E = H.err

local FIXTURE = H.fixture("fault_limits.lua")
local PYTHON = io.open("/usr/bin/python3", "rb") and "/usr/bin/python3" or "python3"

-- pread of up to 100 bytes of rel in mount fs: the data, or the errno name.
local function read(fs, rel)
  local fd, _, e = sys.open(fs:path(rel), luafs.O_RDONLY)
  if not fd then return H.errname(e) end
  local data, _, e2 = sys.pread(fd, 100, 0)
  sys.close(fd)
  return data or H.errname(e2)
end

local function lines_with(fs, from, text)
  local t = {}
  for _, line in ipairs(H.lines(fs:log():sub(from + 1))) do
    if line:find(text, 1, true) then t[#t + 1] = line end
  end
  return t
end

local function stats(fs)
  local t = {}
  for k, v in read(fs, "stats"):gmatch("(%w+)=(%d+)") do t[k] = tonumber(v) end
  return t
end

-- Starts `cat` on a file of the mount in the background; returns its pid.
local function background_cat(path)
  local _, out = H.shell("cat " .. H.quote(path) .. " >/dev/null 2>&1 & echo $!")
  return tonumber(out:match("%d+"))
end

describe("-o call_timeout", function()
  local fs = testing.mounted(FIXTURE, { once = true, options = { "-o", "call_timeout=0.5" } })

  it("stops a callback in an endless loop with ETIMEDOUT, and the next call works", function()
    for _ = 1, 3 do
      local before = #fs:log()
      assert.are.equal("ETIMEDOUT", read(fs, "spin"))
      local lines = lines_with(fs, before, "timed out")
      assert.are.equal(1, #lines)
      assert.truthy(lines[1]:match("^luafs: read /spin: .*fault_limits%.lua:%d+: timed out after 0%.5 s "
        .. "%(%-o call_timeout%)$"), lines[1])
      assert.are.equal("ok\n", read(fs, "ok"))
    end
  end)

  it("stops a loop that catches the error with pcall", function()
    for _ = 1, 2 do
      assert.are.equal("ETIMEDOUT", read(fs, "spin_pcall"))
      assert.are.equal("ok\n", read(fs, "ok"))
    end
  end)

  it("stops a loop inside a coroutine", function()
    assert.are.equal("ETIMEDOUT", read(fs, "spin_co"))
    assert.are.equal("ok\n", read(fs, "ok"))
  end)

  it("stops any operation, getattr too", function()
    local before = #fs:log()
    assert.are.equal("ETIMEDOUT", E(sys.lstat, fs:path("spin_attr")))
    local lines = lines_with(fs, before, "timed out")
    assert.are.equal(1, #lines)
    assert.truthy(lines[1]:match("^luafs: getattr /spin_attr: .*fault_limits%.lua:%d+: timed out after 0%.5 s"),
      lines[1])
    assert.are.equal("ok\n", read(fs, "ok"))
  end)

  it("cannot cut a blocking system call short: its callback answers when it returns", function()
    assert.are.equal("slept\n", read(fs, "sleep"))
  end)

  it("leaves the state's memory as it was", function()
    local before = stats(fs).kbytes
    for _ = 1, 5 do assert.are.equal("ETIMEDOUT", read(fs, "spin_pcall")) end
    assert(stats(fs).kbytes < before + 256, "Lua memory grew from " .. before .. " KiB")
  end)
end)

describe("-o lua_memory", function()
  local fs = testing.mounted(FIXTURE, { once = true, options = { "-o", "lua_memory=32m" } })

  it("answers ENOMEM for a callback that builds an enormous table, and serves the next call", function()
    for _ = 1, 3 do
      local before = #fs:log()
      assert.are.equal("ENOMEM", read(fs, "grow"))
      assert.same({ "luafs: read /grow: out of Lua memory" }, lines_with(fs, before, "memory"))
      assert.are.equal("ok\n", read(fs, "ok"))
    end
    assert(stats(fs).kbytes < 1024, "the enormous table was collected")
  end)

  it("lets a script catch the memory error itself", function()
    assert.are.equal("caught: not enough memory\n", read(fs, "grow_pcall"))
    assert.are.equal("ok\n", read(fs, "ok"))
  end)
end)

describe("-o lua_memory, a state filled to the last bytes", function()
  -- The script fills its state until no string fits; the host's own next
  -- allocation, the path of a name it has not seen, then fails outside any
  -- Lua function, where only the state's panic function sees it.
  local fs = testing.mounted(H.fixture("fault_full.lua"),
    { once = true, options = { "-s", "-o", "lua_memory=4m" } })

  local function stat_err(rel)
    local st, _, e = sys.stat(fs:path(rel))
    if st then return st.mode & luafs.S_IFMT end
    return H.errname(e)
  end

  it("answers ENOMEM when pushing a request's path fails, and serves the next calls", function()
    for round = 1, 3 do
      local name = "never-seen-before-" .. round .. string.rep("x", 60)
      assert.are.equal("ENOENT", stat_err("fill"))
      local before = #fs:log()
      assert.are.equal("ENOMEM", stat_err(name))
      assert.same({ "luafs: getattr /" .. name .. ": out of Lua memory" },
        lines_with(fs, before, "memory"))
      -- The script's strings came through: release found them.
      assert.are.equal("ENOENT", stat_err("release"))
      assert.are.equal(luafs.S_IFREG, stat_err("file"))
      assert.are.equal("ENOENT", stat_err(name .. "-again"))
    end
  end)
end)

describe("interrupted requests", function()
  -- The reader is killed while the callback polls luafs.interrupted(): the
  -- kernel tells libfuse, the callback sees it, answers EINTR, and the
  -- killed reader, which the kernel held until then, goes away.
  local function killed_reader(fs, sig)
    local before = stats(fs).interrupted
    local from = #fs:log()
    local pid = background_cat(fs:path("poll"))
    assert(H.wait_until(function() return #lines_with(fs, from, "entered /poll") > 0 end, 5),
      "the callback started")
    os.execute("kill -" .. sig .. " " .. pid)
    assert(H.wait_until(function() return not testing.alive(pid) end, 10), "the reader went away")
    assert(H.wait_until(function() return stats(fs).interrupted == before + 1 end, 5),
      "the callback saw luafs.interrupted()")
    assert.are.equal("ok\n", read(fs, "ok"))
  end

  describe("by default", function()
    local fs = testing.mounted(FIXTURE, { once = true })
    it("reach luafs.interrupted() when the reader is killed", function()
      killed_reader(fs, "KILL")
      killed_reader(fs, "TERM")
    end)
  end)

  describe("with cfg.intr", function()
    local fs = testing.mounted(FIXTURE, { once = true, args = { "intr" } })

    it("reach luafs.interrupted(), and do not reload the script", function()
      killed_reader(fs, "KILL")
      killed_reader(fs, "TERM")
      assert.same({}, lines_with(fs, 0, "reload"))
    end)

    it("answer a reader that survives the signal with what the callback returned", function()
      local script = [[
import ctypes, errno, os, signal, sys
libc = ctypes.CDLL(None, use_errno=True)
signal.signal(signal.SIGINT, lambda *a: None)
fd = os.open(sys.argv[1], os.O_RDONLY)
buf = ctypes.create_string_buffer(100)
print("ready", flush=True)
n = libc.read(fd, buf, 100)
print(n, errno.errorcode.get(ctypes.get_errno(), "none"), flush=True)
]]
      local dir = H.temp_dir()
      H.write(dir .. "/reader.py", script)
      local from = #fs:log()
      local out = dir .. "/out"
      local _, pidtext = H.shell(PYTHON .. " " .. H.quote(dir .. "/reader.py") .. " " .. H.quote(fs:path("poll"))
        .. " >" .. H.quote(out) .. " 2>&1 & echo $!")
      local pid = tonumber(pidtext:match("%d+"))
      assert(H.wait_until(function() return #lines_with(fs, from, "entered /poll") > 0 end, 5))
      os.execute("kill -INT " .. pid)
      assert(H.wait_until(function() return not testing.alive(pid) end, 10), "the reader finished")
      local text = H.read(out)
      H.remove(dir)
      assert.are.equal("ready\n-1 EINTR\n", text)
    end)
  end)
end)

describe("an endless loop without -o call_timeout", function()
  -- The request never answers, and with one Lua state nothing else is
  -- served either; SIGTERM (or SIGINT) still stops the loop and unmounts.
  for _, name in ipairs { "spin", "spin_pcall" } do
    it("gives way to SIGTERM: " .. name, function()
      local m = testing.mount(FIXTURE)
      local ok, err = pcall(function()
        m.exit_timeout = 30
        local pid = background_cat(m:path(name))
        assert(H.log_line(m, "entered /" .. name, 5), "the callback started")
        m:kill("TERM")
        assert(m:wait(10), "the host exited")
        assert.are.equal(0, testing.mounted_at(m.mountpoint), "the mount is gone")
        assert(H.wait_until(function() return not testing.alive(pid) end, 5), "the reader finished")
        local line = H.log_line(m, "read /" .. name .. ": ", 1)
        assert(line and line:find("interrupted: luafs is unmounting", 1, true), m:log())
      end)
      m:unmount { strict = false }
      assert(ok, err)
    end)
  end
end)
