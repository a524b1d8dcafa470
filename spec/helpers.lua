-- spec/helpers.lua: what the luafs specs share.
--
--   local H = require "spec.helpers"
--
-- The specs run from the repository root with LUAFS set to the host binary,
-- LUA_PATH covering lua/ and LUA_CPATH covering build/ (for luafs.so).
local testing = require "luafs.testing"
local conformance = require "luafs.conformance"
local luafs = require "luafs"
local lfs = require "lfs"

local H = { testing = testing, luafs = luafs, sys = luafs.sys, lfs = lfs }
local sys = luafs.sys

H.quote = testing.quote
H.sleep = testing.sleep
H.wait_until = testing.wait_until
H.shell = testing.shell

local function first_line(s) return (s:match("^([^\n]*)")) end

-- The repository root: where the specs run from.
do
  local _, out = testing.shell("pwd -P")
  H.root = first_line(out)
end

function H.fixture(name) return H.root .. "/spec/fixtures/" .. name end
function H.example(name) return H.root .. "/lua/examples/" .. name end
H.host = os.getenv("LUAFS") or "luafs"

function H.octal(s) return tonumber(s, 8) end

--- The name of errno value e ("ENOENT"), "OK" for 0 or nil, "errno N" if unknown.
H.errname = conformance.errname

--- Call a luafs.sys-style function (failure: nil, msg, errno) and return
-- "OK" or the name of the errno it failed with.
function H.err(f, ...)
  local r = table.pack(pcall(f, ...))
  if not r[1] then error(r[2], 2) end
  if r[2] == nil then return H.errname(r[4]) end
  return "OK"
end

--- Like assert(), for luafs.sys results: returns the first value or raises
-- with the message and errno name.
function H.check(v, msg, e, ...)
  if v == nil then error((msg or "failed") .. " (" .. H.errname(e) .. ")", 2) end
  return v, msg, e, ...
end

function H.read(path)
  local f, err = io.open(path, "rb")
  if not f then return nil, err end
  local s, rerr = f:read("a")
  f:close()
  return s, rerr
end

function H.write(path, data, mode)
  local f = assert(io.open(path, mode or "wb"))
  assert(f:write(data))
  assert(f:close())
end

--- Sorted names in a directory (with "." and ".."), through lfs.dir.
function H.listing(path)
  local names = {}
  for name in lfs.dir(path) do names[#names + 1] = name end
  table.sort(names)
  return names
end

function H.lines(s)
  local t = {}
  for line in (s or ""):gmatch("[^\n]+") do t[#t + 1] = line end
  return t
end

--- The first byte offset where a and b differ, or nil when they are equal;
-- for comparing large contents without printing them.
function H.diff_at(a, b)
  if a == b then return nil end
  if a == nil or b == nil then return 0 end
  local n = math.min(#a, #b)
  local step = 4096
  for i = 1, n, step do
    local j = math.min(i + step - 1, n)
    if a:sub(i, j) ~= b:sub(i, j) then
      for k = i, j do
        if a:byte(k) ~= b:byte(k) then return k - 1 end
      end
    end
  end
  return n
end

function H.assert_same_bytes(expected, got, what)
  local at = H.diff_at(expected, got)
  assert(at == nil, string.format("%s: contents differ at byte %s (sizes %s and %s)",
    what or "data", tostring(at), expected and #expected or "nil", got and #got or "nil"))
end

--- A deterministic pseudo-random string of n bytes (all 256 values occur).
H.bytes = conformance.bytes

--- A fresh directory under /dev/shm (tmpfs); H.remove(dir) when done.
function H.shm_dir()
  local code, out = testing.shell("mktemp -d /dev/shm/luafs-spec.XXXXXX")
  assert(code == 0, out)
  return first_line(out)
end

--- A fresh empty directory under /tmp (for mountpoints of host runs).
function H.temp_dir()
  local code, out = testing.shell("mktemp -d -t luafs-spec.XXXXXX")
  assert(code == 0, out)
  return first_line(out)
end

--- rm -rf, only for the spec's own temporary directories, never a mount.
function H.remove(dir)
  assert(dir:match("^/dev/shm/luafs%-spec%.") or dir:match("^/tmp/luafs%-spec%."),
    "H.remove refuses " .. dir)
  if testing.mounted_at(dir) == 0 then testing.shell("rm -rf " .. H.quote(dir)) end
end

--- Pids of processes whose command line has `arg` as one of its words
-- (hosts this spec started for a mountpoint).
function H.pids_with_arg(arg)
  local pids = {}
  local code, out = testing.shell("ls /proc")
  assert(code == 0)
  for pid in out:gmatch("%d+") do
    local f = io.open("/proc/" .. pid .. "/cmdline", "rb")
    if f then
      local cmd = f:read("a") or ""
      f:close()
      for word in cmd:gmatch("[^%z]+") do
        if word == arg and tonumber(pid) ~= (sys.getpid and sys.getpid()) then
          pids[#pids + 1] = tonumber(pid)
          break
        end
      end
    end
  end
  return pids
end

--- Undo whatever a host run left on `mountpoint`: unmount every FUSE mount
-- there, stop the hosts we started for it, remove the directory.
function H.cleanup_mountpoint(mountpoint)
  for _ = 1, 5 do
    if testing.mounted_at(mountpoint) == 0 then break end
    testing.shell("fusermount3 -u " .. H.quote(mountpoint)
      .. " || umount -l " .. H.quote(mountpoint))
  end
  for _, pid in ipairs(H.pids_with_arg(mountpoint)) do
    if not H.wait_until(function() return not testing.alive(pid) end, 3) then
      os.execute("kill -KILL " .. pid .. " 2>/dev/null")
    end
  end
  if testing.mounted_at(mountpoint) == 0 then os.remove(mountpoint) end
end

--- The live FUSE mountpoints, as a sorted array (for comparisons).
function H.mount_list()
  local t = {}
  for mp in pairs(testing.mounts()) do t[#t + 1] = mp end
  table.sort(t)
  return t
end

--- The lines of `text` that are neither empty nor a "--help" hint.
function H.message_lines(text)
  local t = {}
  for line in text:gmatch("[^\n]+") do
    if line:match("%S") and not line:find("--help", 1, true) then t[#t + 1] = line end
  end
  return t
end

--- The lines of the log of mount m that contain `text` (plain text).
function H.log_lines(m, text)
  local t = {}
  for line in m:log():gmatch("[^\n]+") do
    if line:find(text, 1, true) then t[#t + 1] = line end
  end
  return t
end

--- Wait until the log of mount m has a line matching `pattern` (plain
-- text); returns that line or nil.
function H.log_line(m, text, timeout)
  return H.wait_until(function()
    for line in m:log():gmatch("[^\n]+") do
      if line:find(text, 1, true) then return line end
    end
  end, timeout or 3)
end

--- Whether process pid runs with AddressSanitizer, whose quarantine of
-- freed memory (4 MiB in scripts/test) and per-thread bookkeeping make its
-- RSS a looser measure.
function H.sanitized(pid)
  return (H.read("/proc/" .. pid .. "/maps") or ""):find("libasan", 1, true) ~= nil
end

--- For specs that mount inside their tests: mount(script, opts) is
-- testing.mount and remembers the mount; unmount_all() (for after_each)
-- unmounts every one, also after a test that failed.
function H.mount_tracker()
  local mounts = {}
  local function mount(script, opts)
    local m = testing.mount(script, opts)
    mounts[#mounts + 1] = m
    return m
  end
  local function unmount_all()
    for _, m in ipairs(mounts) do m:unmount { strict = false } end
    mounts = {}
  end
  return mount, unmount_all
end

--- Starts shell command cmd with its output on a pipe; returns the pipe
-- and the command's pid (the shell execs it, so the pid is the command's).
function H.spawn(cmd)
  local p = assert(io.popen("echo $$; exec " .. cmd, "r"))
  return p, assert(tonumber(p:read("l")), "no pid")
end

--- Where the kernel has process or thread pid (a "PID/task/TID" string
-- names a thread) asleep: /proc/PID/wchan, e.g. "request_wait_answer";
-- nil while it runs or once it is gone.
function H.wchan(pid)
  local w = H.read("/proc/" .. pid .. "/wchan")
  if w == nil or w == "" or w == "0" then return nil end
  return w
end

--- Whether pid sleeps in poll(2) or select(2): the kernel asked each FUSE
-- file's poll and holds its handle, so the next notify wakes pid.
function H.in_poll(pid)
  return (H.wchan(pid) or ""):find("poll_schedule_timeout", 1, true) ~= nil
end

--- How many threads of process pid sleep in the kernel other than on a
-- futex (a lock or a join of their own): for a client whose threads only
-- make system calls on a mount, those the mount holds, waiting for an
-- answer or for another thread's lookup of the same directory or name.
-- 0 once pid is gone.
function H.blocked(pid)
  local n = 0
  local ok, iter, dir = pcall(lfs.dir, "/proc/" .. pid .. "/task")
  if not ok then return 0 end
  for tid in iter, dir do
    local w = tid:match("^%d+$") and H.wchan(pid .. "/task/" .. tid)
    if w and not w:find("futex", 1, true) then n = n + 1 end
  end
  return n
end

return H
