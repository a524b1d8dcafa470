-- spec/cases.lua: the bodies of "twin" tests that every filesystem spec
-- runs the same way: each takes a fresh directory d (in a mount, or on
-- tmpfs for the reference) and returns what it observed, for the spec to
-- compare.
--
--   local cases = require "spec.cases"
--   it("syncs files and directories", function() twin(cases.sync) end)
local H = require "spec.helpers"

local luafs, sys = H.luafs, H.sys
local E, octal = H.err, H.octal
local AT_FDCWD, NOFOLLOW = luafs.AT_FDCWD, luafs.AT_SYMLINK_NOFOLLOW

local cases = {}

local function times_of(path, fields)
  local st, _, e = sys.lstat(path)
  if not st then return H.errname(e) end
  local t = {}
  for _, k in ipairs(fields) do t[k] = st[k] end
  return t
end

--- fsync and fdatasync of a file, fsync of a directory.
function cases.sync(d)
  local fd = H.check(sys.open(d .. "/f", luafs.O_RDWR | luafs.O_CREAT, octal "644"))
  sys.pwrite(fd, "data", 0)
  local o = { fsync = E(sys.fsync, fd), fdatasync = E(sys.fdatasync, fd) }
  sys.close(fd)
  local dfd = H.check(sys.open(d, luafs.O_RDONLY | luafs.O_DIRECTORY))
  o.dir = E(sys.fsync, dfd)
  sys.close(dfd)
  return o
end

--- utimensat and futimens to the nanosecond, UTIME_NOW and UTIME_OMIT,
-- symlinks, times before 1970 and a nanosecond count out of range.
function cases.times(d)
  local T = { "atime", "atime_nsec", "mtime", "mtime_nsec" }
  H.write(d .. "/f", "x")
  H.check(sys.symlink("f", d .. "/s"))
  local o = {}
  o.set = E(sys.utimensat, AT_FDCWD, d .. "/f", 1000000000, 123456789, 2000000000, 987654321)
  o.times = times_of(d .. "/f", T)
  o.omit = E(sys.utimensat, AT_FDCWD, d .. "/f", 5, luafs.UTIME_OMIT, 1500000000, 1)
  o.after_omit = times_of(d .. "/f", T)
  local before = sys.clock_gettime()
  o.now = E(sys.utimensat, AT_FDCWD, d .. "/f", 0, luafs.UTIME_OMIT, 0, luafs.UTIME_NOW)
  local st = sys.lstat(d .. "/f")
  o.now_is_now = st.mtime >= before - 1 and st.mtime <= sys.clock_gettime() + 1
  o.atime_kept = { st.atime, st.atime_nsec }
  o.link = E(sys.utimensat, AT_FDCWD, d .. "/s", 7, 8, 9, 10, NOFOLLOW)
  o.link_times = times_of(d .. "/s", T)
  o.target_times = times_of(d .. "/f", { "atime", "atime_nsec" })
  local fd = H.check(sys.open(d .. "/f", luafs.O_WRONLY))
  o.futimens = E(sys.futimens, fd, 11, 12, 13, 14)
  sys.close(fd)
  o.by_fd = times_of(d .. "/f", T)
  o.before_epoch = E(sys.utimensat, AT_FDCWD, d .. "/f", -1, 5, -100, 999999999)
  o.negative = times_of(d .. "/f", T)
  o.bad_nsec = E(sys.utimensat, AT_FDCWD, d .. "/f", 1, 1000000000, 1, 0)
  return o
end

return cases
