--- luafs.testing: mount a luafs script inside a test and always unmount it.
--
-- A busted spec for a luafs filesystem needs a live mount on a fresh
-- directory, a way to wait until the kernel has it, the host's log when
-- something goes wrong, and an unmount that happens even when the test
-- failed. This module gives exactly that. It is pure Lua 5.4 and needs
-- only a POSIX shell, `mktemp`, `fusermount3` and `/proc/self/mountinfo`.
--
--    local testing = require "luafs.testing"
--
--    describe("myfs", function()
--      local fs = testing.mounted("myfs.lua", { once = true, scratch = true,
--                                              args = { "{scratch}" } })
--      it("serves hello", function()
--        local f = assert(io.open(fs:path("hello")))
--        assert.are.equal("hello\n", f:read("a"))
--        f:close()
--      end)
--    end)
--
-- The host binary is `opts.host`, else the environment variable `LUAFS`,
-- else `luafs` on the `PATH`. It runs in the foreground (`-f`), in the
-- background of the test process, with its standard output and standard
-- error (where a foreground host writes its log) in a log file.
--
-- A mount is live when it is in `/proc/self/mountinfo` and the host has
-- written the file named by `LUAFS_READY_FILE` (which luafs does once the
-- script's init has run); the kit polls for both every 10 ms, up to a
-- deadline. The mountpoint's directory has mode 0711, so that other users
-- can reach a mount made with `-o allow_other`.
--
-- Limits: it only works on Linux (`/proc/self/mountinfo`); it never
-- unmounts anything it did not mount.
--
-- @module luafs.testing

local testing = {}

---------------------------------------------------------------------------
-- Small tools: quoting, clocks, files, processes.
---------------------------------------------------------------------------

--- Quote one word for /bin/sh.
-- @tparam string s
-- @treturn string `s` in single quotes, safe to paste into a command line
local function quote(s)
  s = tostring(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end
testing.quote = quote

local ok_system, system = pcall(require, "system") -- luasystem, a busted dependency

local ok_luafs, luafs = pcall(require, "luafs")
local sys = ok_luafs and type(luafs) == "table" and luafs.sys or nil

--- Seconds on a clock that only goes forward (fractional where possible).
local function now()
  if ok_system and system.monotime then return system.monotime() end
  return os.time()
end

--- Sleep for `s` seconds (fractions allowed). The kit's polling loops
-- call `testing.sleep` between two looks, so a spec may wrap it to watch
-- them.
local function sleep(s)
  if ok_system and system.sleep then return system.sleep(s) end
  if sys and sys.sleep then return sys.sleep(s) end
  os.execute("sleep " .. string.format("%.3f", s))
end
testing.sleep = sleep

local function read_all(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

--- Run a shell command, return its exit code and its output (stdout and
-- stderr together).
local function shell(cmd)
  local f = assert(io.popen("exec 2>&1; " .. cmd, "r"))
  local out = f:read("a")
  local _, how, code = f:close()
  if how == "signal" then code = 128 + code end
  return code, out
end
testing.shell = shell

local function mktemp_dir(template, base)
  local cmd = base and ("mktemp -d " .. quote(base .. "/" .. template))
    or ("mktemp -d -t " .. quote(template))
  local code, out = shell(cmd)
  local dir = out:match("^([^\n]+)")
  if code ~= 0 or not dir then
    error("luafs.testing: cannot make a temporary directory: " .. out, 3)
  end
  -- The kernel reports mountpoints with symlinks resolved.
  local c2, real = shell("realpath -e " .. quote(dir))
  if c2 == 0 and real:match("^/") then dir = real:match("^([^\n]+)") end
  return dir
end

--- Whether process `pid` exists and has not exited (a zombie counts as
-- exited).
local function alive(pid)
  if not pid then return false end
  local stat = read_all("/proc/" .. pid .. "/stat")
  if not stat then return false end
  local state = stat:match("%)%s+(%S)")
  return state ~= nil and state ~= "Z" and state ~= "X"
end
testing.alive = alive

--- Whether `env --default-signal` works here (it undoes the SIG_IGN for
-- SIGINT that /bin/sh gives to background jobs, so that the host keeps
-- libfuse's SIGINT handler).
local env_prefix
local function signal_prefix()
  if env_prefix == nil then
    local code = shell("env --default-signal=INT,QUIT true")
    env_prefix = code == 0 and "env --default-signal=INT,QUIT " or ""
  end
  return env_prefix
end

local function unescape_mountinfo(s)
  return (s:gsub("\\(%d%d%d)", function(o) return string.char(tonumber(o, 8)) end))
end

--- The live FUSE mounts of this mount namespace.
-- @treturn table a set: mountpoint -> number of FUSE mounts stacked on it
function testing.mounts()
  local set = {}
  local text = read_all("/proc/self/mountinfo") or ""
  for line in text:gmatch("[^\n]+") do
    local left, right = line:match("^(.-) %- (.*)$")
    if left then
      local mp = left:match("^%S+ %S+ %S+ %S+ (%S+)")
      local fstype = right:match("^(%S+)")
      if mp and fstype and (fstype == "fuse" or fstype == "fuseblk"
                            or fstype:match("^fuse%.")) then
        mp = unescape_mountinfo(mp)
        set[mp] = (set[mp] or 0) + 1
      end
    end
  end
  return set
end

--- How many FUSE mounts are stacked on `path` (0 when none).
function testing.mounted_at(path)
  return testing.mounts()[path] or 0
end

--- Poll `pred` every `interval` seconds until it returns a true value or
-- `timeout` seconds have passed.
-- @treturn any what `pred` returned last
function testing.wait_until(pred, timeout, interval)
  local deadline = now() + (timeout or 5)
  while true do
    local v = pred()
    if v or now() >= deadline then return v end
    testing.sleep(interval or 0.01)
  end
end

local function host_binary(host)
  return host or os.getenv("LUAFS") or "luafs"
end

local function tail(s, max)
  max = max or 16384
  if #s > max then return "[...]" .. s:sub(-max) end
  return s
end

local function with_log(msg, log)
  log = log or ""
  if log == "" then return msg .. "\n(the host's log is empty)" end
  return msg .. "\n--- luafs host log ---\n" .. tail(log) .. "\n--- end of log ---"
end

---------------------------------------------------------------------------
-- Running the host synchronously.
---------------------------------------------------------------------------

--- Run the host with `argv` and wait for it to finish (for bad-input tests
-- and for the daemonizing mode, which returns once the mount is live).
-- @tparam {string,...} argv arguments after the binary
-- @tparam[opt] table opts `host` (binary), `timeout` (seconds, default 30:
--   a host still running then is killed and 124 returned)
-- @treturn integer exit code (128 + n when killed by signal n)
-- @treturn string output: standard output followed by standard error
-- @treturn string standard output alone
-- @treturn string standard error alone
function testing.run(argv, opts)
  opts = opts or {}
  local words = { quote(host_binary(opts.host)) }
  for i = 1, #argv do words[#words + 1] = quote(argv[i]) end
  local out_path, err_path = os.tmpname(), os.tmpname()
  local cmd = string.format("%stimeout -k 3 %d %s </dev/null >%s 2>%s",
    signal_prefix(), opts.timeout or 30, table.concat(words, " "),
    quote(out_path), quote(err_path))
  local _, how, code = os.execute(cmd)
  if how == "signal" then code = 128 + code end
  local out, err = read_all(out_path) or "", read_all(err_path) or ""
  os.remove(out_path)
  os.remove(err_path)
  return code, out .. err, out, err
end

---------------------------------------------------------------------------
-- Mount objects.
---------------------------------------------------------------------------

local Mount = {}
Mount.__index = Mount

--- `mountpoint .. "/" .. rel`.
function Mount:path(rel)
  if rel == nil or rel == "" then return self.mountpoint end
  return self.mountpoint .. "/" .. tostring(rel):gsub("^/+", "")
end

--- The host's log so far (after unmount: the log as it was then).
function Mount:log()
  if self._log then return self._log end
  return read_all(self.log_path) or ""
end

--- Whether the host process is still running.
function Mount:alive()
  return alive(self.pid)
end

--- The host's exit status, or nil while it runs.
function Mount:status()
  local path = self._dir .. "/status"
  local s = read_all(path)
  if s then return tonumber(s:match("%d+")) end
  if not alive(self.pid) and not alive(self._wrapper) then
    -- the wrapper may have written the status and exited since the read
    s = read_all(path)
    if s then return tonumber(s:match("%d+")) end
    return -1 -- exited, status unknown
  end
  return nil
end

--- Wait up to `timeout` seconds (default 5) for the host to exit.
-- Marks the exit as expected (see `unmount`).
-- @treturn integer|nil its exit status, or nil if it is still running
function Mount:wait(timeout)
  self._expect_exit = true
  return testing.wait_until(function() return self:status() end, timeout or 5)
end

--- Send signal `sig` (a name such as "TERM", default "TERM") to the host
-- process (and only to it). Marks its exit as expected.
function Mount:kill(sig)
  self._expect_exit = true
  if self:status() then return false end
  return os.execute("kill -s " .. (sig or "TERM") .. " " .. self.pid .. " 2>/dev/null") == true
end

--- Whether the mountpoint is still a live FUSE mount.
function Mount:is_mounted()
  return testing.mounted_at(self.mountpoint) > 0
end

--- Unmount and clean up; idempotent.
-- A full garbage collection (see below), `fusermount3 -u`, then wait (with
-- a deadline) for the host to exit; if the mount is still there, `umount
-- -l` as a last resort; if the host is still alive, SIGTERM and then
-- SIGKILL to that pid only. Then the temporary directories are removed
-- (the log is kept in memory for `m:log()`).
-- @tparam[opt] table opts `strict` (default true): raise an error (with the
--   log) when the host did not exit cleanly by itself: it had died before
--   the unmount without `m:kill`/`m:wait`, exited non-zero after the
--   unmount, or had to be killed.
-- @treturn boolean true when all went cleanly
-- @treturn string what went wrong otherwise
function Mount:unmount(opts)
  if self._unmounted then return self._clean, self._problem end
  self._unmounted = true
  local strict = not (opts and opts.strict == false)
  local problems = {}
  local died_before = self:status()
  if not died_before and not alive(self.pid) then
    -- Dead, and the wrapper is about to record how it ended.
    died_before = testing.wait_until(function() return self:status() end, 2) or -1
  end
  if died_before and not self._expect_exit then
    problems[#problems + 1] = "the host exited during the test (status "
      .. tostring(died_before) .. ")"
  end
  if self:is_mounted() then
    -- A file that a failed test left open in the mount keeps it busy; once
    -- the test's function is gone nothing reaches that file, and a full
    -- collection closes it.
    collectgarbage()
    local code, out = shell("fusermount3 -u " .. quote(self.mountpoint))
    if code ~= 0 and self:is_mounted() then
      problems[#problems + 1] = "fusermount3 -u failed: " .. out:gsub("\n$", "")
    end
  end
  local status = testing.wait_until(function() return self:status() end,
    self.exit_timeout or 5)
  if self:is_mounted() then
    shell("umount -l " .. quote(self.mountpoint))
    if self:is_mounted() then shell("fusermount3 -u -z " .. quote(self.mountpoint)) end
    problems[#problems + 1] = "the mount was still there; used umount -l"
  end
  if not status then
    problems[#problems + 1] = "the host did not exit within "
      .. (self.exit_timeout or 5) .. " s after the unmount; killed it"
    if alive(self.pid) then os.execute("kill -TERM " .. self.pid .. " 2>/dev/null") end
    status = testing.wait_until(function() return self:status() end, 2)
    if not status and alive(self.pid) then
      os.execute("kill -KILL " .. self.pid .. " 2>/dev/null")
      status = testing.wait_until(function() return self:status() end, 2)
    end
  elseif not died_before and status ~= 0 and not self._expect_exit then
    problems[#problems + 1] = "the host exited with status " .. tostring(status)
      .. " after the unmount"
  end
  self.exit_status = status
  self._log = read_all(self.log_path) or ""
  if testing.mounted_at(self.mountpoint) == 0 then
    os.remove(self.mountpoint) -- rmdir: never recursive on a mountpoint
  end
  if self.scratch and self.scratch:match("^/dev/shm/luafs%-scratch%.")
      and testing.mounted_at(self.scratch) == 0 then
    shell("rm -rf " .. quote(self.scratch))
  end
  if testing.mounted_at(self.mountpoint) == 0 then
    shell("rm -rf " .. quote(self._dir))
  end
  if #problems > 0 then
    self._clean = false
    self._problem = with_log("luafs.testing: unmounting " .. self.mountpoint
      .. ": " .. table.concat(problems, "; "), self._log)
    if strict then error(self._problem, 2) end
    return false, self._problem
  end
  self._clean = true
  return true
end

local function substitute(v, m)
  if type(v) == "string" and m.scratch then
    return (v:gsub("{scratch}", function() return m.scratch end))
  end
  return v
end

local function expand(list, m)
  if type(list) == "function" then list = list(m) end
  local out = {}
  for i = 1, #(list or {}) do out[i] = substitute(list[i], m) end
  return out
end

--- Mount `script` on a fresh temporary directory and wait until it is live.
-- @tparam string script path of the Lua script
-- @tparam[opt] table opts
--   `args`: array of script arguments (after `--`), or a function(m)
--   returning one; the string "{scratch}" in them becomes `m.scratch`;
--   `options`: array of extra host arguments, e.g. {"-s", "-o", "ro"};
--   `scratch`: true to make a fresh tmpfs-backed directory under /dev/shm;
--   `timeout`: seconds to wait for the mount (default 10);
--   `exit_timeout`: seconds to wait for the host to exit after the
--   unmount before it is killed (default 5);
--   `host`: the host binary (default `$LUAFS`, else `luafs`).
-- @treturn table a mount object `m`: `m.mountpoint`, `m.scratch`, `m.pid`,
--   `m.log_path`, `m:log()`, `m:path(rel)`, `m:unmount()`, `m:alive()`,
--   `m:status()`, `m:wait(timeout)`, `m:kill(sig)`, `m:is_mounted()`.
-- @raise an error that includes the host's log when the mount fails (the
--   host exited, or the mount did not appear in time); nothing is left
--   behind then.
function testing.mount(script, opts)
  opts = opts or {}
  local m = setmetatable({ script = script, exit_timeout = opts.exit_timeout }, Mount)
  m._dir = mktemp_dir("luafs-test.XXXXXX")
  -- Other users may pass through to the mountpoint (for allow_other).
  shell("chmod 711 " .. quote(m._dir))
  m.mountpoint = m._dir .. "/mnt"
  assert(os.execute("mkdir " .. quote(m.mountpoint)), "mkdir mountpoint")
  m.log_path = m._dir .. "/log"
  if opts.scratch then
    m.scratch = mktemp_dir("luafs-scratch.XXXXXX", "/dev/shm")
  end
  local words = { quote(host_binary(opts.host)), quote(script), quote(m.mountpoint), "-f" }
  for _, o in ipairs(expand(opts.options, m)) do words[#words + 1] = quote(o) end
  local args = expand(opts.args, m)
  if #args > 0 then
    words[#words + 1] = "--"
    for _, a in ipairs(args) do words[#words + 1] = quote(a) end
  end
  m.command = table.concat(words, " ")
  local d = quote(m._dir)
  local ready = m._dir .. "/ready"
  -- A subshell starts the host, records its pid, waits for it and records
  -- its exit status; the host's pid is that of the process we kill. The
  -- host writes the ready file once init has run.
  local cmd = string.format(
    "( LUAFS_READY_FILE=%s %s%s </dev/null >%s 2>&1 & echo $! >%s/pid.tmp && mv %s/pid.tmp %s/pid; "
      .. "wait $!; echo $? >%s/status.tmp && mv %s/status.tmp %s/status ) "
      .. "</dev/null >/dev/null 2>&1 & echo $!",
    quote(ready), signal_prefix(), m.command, quote(m.log_path), d, d, d, d, d, d)
  local _, wrapper = shell(cmd)
  m._wrapper = tonumber(wrapper:match("%d+"))
  local pid_text = testing.wait_until(function() return read_all(m._dir .. "/pid") end, 5)
  m.pid = pid_text and tonumber(pid_text:match("%d+"))
  if not m.pid then
    m:unmount { strict = false }
    error(with_log("luafs.testing: could not start " .. m.command, m:log()), 2)
  end
  local deadline = now() + (opts.timeout or 10)
  while not (m:is_mounted() and read_all(ready)) do
    local status = m:status()
    if status then
      m._expect_exit = true
      m:unmount { strict = false }
      error(with_log(string.format("luafs.testing: %s exited with status %d "
        .. "before the mount was live", m.command, status), m:log()), 2)
    end
    if now() >= deadline then
      m:unmount { strict = false }
      error(with_log(string.format("luafs.testing: %s: the mount on %s was not live after %g s",
        m.command, m.mountpoint, opts.timeout or 10), m:log()), 2)
    end
    testing.sleep(0.01)
  end
  return m
end

---------------------------------------------------------------------------
-- busted convenience.
---------------------------------------------------------------------------

--- Mount `script` around the tests of the enclosing `describe` block.
-- Call it in a describe block. It registers `before_each`/`after_each`
-- (one mount per test) or, with `opts.once`, `setup`/`teardown` (one mount
-- for the block). The teardown always unmounts, also when a test failed;
-- when a test failed, the host's log is printed to standard error. A host
-- that crashed during the tests, or that does not exit cleanly on unmount,
-- fails the teardown with its log.
-- @tparam string script
-- @tparam[opt] table opts as for `mount`, plus `once`
-- @treturn table an accessor: while mounted, its fields and methods are
--   those of the mount object (`fs.mountpoint`, `fs:path("x")`,
--   `fs:log()`, ...); `fs.m` is the mount object itself.
function testing.mounted(script, opts)
  opts = opts or {}
  local busted = require "busted"
  local acc = {}
  local failed, sub = false, nil
  setmetatable(acc, {
    __index = function(_, k)
      local m = rawget(acc, "m")
      if not m then error("luafs.testing: " .. script .. " is not mounted now", 2) end
      local v = m[k]
      if type(v) == "function" then
        return function(self, ...)
          if self == acc then self = m end
          return v(self, ...)
        end
      end
      return v
    end,
  })
  local function up()
    failed = false
    sub = busted.subscribe({ "test", "end" }, function(_, _, status)
      if status ~= "success" and status ~= "pending" then failed = true end
      return nil, true
    end, { priority = 1 })
    rawset(acc, "m", testing.mount(script, opts))
  end
  local function down()
    if sub then
      busted.unsubscribe(sub.id, { "test", "end" })
      sub = nil
    end
    local m = rawget(acc, "m")
    if not m then return end
    rawset(acc, "m", nil)
    local clean, problem = m:unmount { strict = false }
    if failed and clean then
      io.stderr:write(with_log("\nluafs.testing: a test failed with " .. script
        .. " mounted on " .. m.mountpoint, m:log()), "\n")
    end
    if not clean then error(problem, 0) end
  end
  if opts.once then
    busted.setup(up)
    busted.teardown(down)
  else
    busted.before_each(up)
    busted.after_each(down)
  end
  return acc
end

return testing
