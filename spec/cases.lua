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

-- Writes data into a new file at path; returns "OK" or the errno's name.
local function put(path, data)
  local fd, _, e = sys.open(path, luafs.O_WRONLY | luafs.O_CREAT | luafs.O_EXCL, octal "644")
  if not fd then return H.errname(e) end
  local _, _, we = sys.write(fd, data)
  sys.close(fd)
  return H.errname(we)
end

-- The sorted names in the directory at path, or the errno's name.
local function names(path)
  local dir, _, e = sys.opendir(path)
  if not dir then return H.errname(e) end
  local t = {}
  for name in dir.read, dir do t[#t + 1] = name end
  dir:close()
  table.sort(t)
  return t
end

-- Runs f() with the working directory at dir, and comes back even when f
-- raises (a mount cannot be unmounted while the process works inside it).
local function in_dir(dir, f)
  local home = H.check(sys.open(".", luafs.O_PATH | luafs.O_DIRECTORY))
  local ok, err = sys.chdir(dir)
  local r = ok and table.pack(pcall(f))
  assert(sys.fchdir(home))
  sys.close(home)
  assert(ok, err)
  assert(r[1], r[2])
  return table.unpack(r, 2, r.n)
end

-- Every call that takes a path, with relative paths of up to PATH_MAX - 1
-- (4095) bytes from a working directory `levels` times 3840 bytes and 20
-- more below d's parent (the root of the mount): see long_relative below.
local function long_relative(d, src, levels)
  local sub = string.rep("s", 20 - #d:match("[^/]*$") - 1)
  local dirs = {}
  for i = 1, 15 do dirs[i] = string.format("%02d", i) .. string.rep("d", 253) end
  local D = table.concat(dirs, "/")
  -- a name of n bytes in D, and its length from the root of the mount
  local function in_D(c, n) return D .. "/" .. string.rep(c, n) end
  local F, G, K = in_D("f", 255), in_D("g", 255), in_D("k", 245)
  local S, P, X = in_D("s", 253), in_D("p", 252), in_D("x", 240)
  assert(#F == 4095 and 20 + 1 + #X > 4096, "the names must be long from the root")
  local uid, gid = -1, -1
  if sys.geteuid() == 0 then uid, gid = 4321, 4322 end
  local o = {}
  H.check(sys.mkdir(d .. "/" .. sub))
  local function mkdirs() for i = 1, #dirs do H.check(sys.mkdir(table.concat(dirs, "/", 1, i))) end end
  in_dir(d .. "/" .. sub, function()
    for _ = 1, levels do
      mkdirs()
      H.check(sys.chdir(D))
    end
    mkdirs()

    -- files: create, open, read, write, stat, access, attributes
    local fd, _, e = sys.open(F, luafs.O_RDWR | luafs.O_CREAT | luafs.O_EXCL, octal "640")
    o.create = H.errname(e)
    if fd then
      o.write = sys.pwrite(fd, "long way down", 0)
      sys.close(fd)
    end
    o.create_again = E(sys.open, F, luafs.O_RDWR | luafs.O_CREAT | luafs.O_EXCL, octal "640")
    o.read = H.read(F)
    fd, _, e = sys.open(F, luafs.O_WRONLY | luafs.O_APPEND)
    o.open = H.errname(e)
    if fd then
      o.append = sys.write(fd, "!")
      sys.close(fd)
    end
    o.stat = times_of(F, { "mode", "nlink", "size", "uid", "gid" })
    o.access_rw = E(sys.access, F, luafs.R_OK | luafs.W_OK)
    o.access_x = E(sys.access, F, luafs.X_OK)
    o.chmod = E(sys.chmod, F, octal "604")
    o.chown = E(sys.lchown, F, uid, gid)
    o.after_chmod_chown = times_of(F, { "mode", "uid", "gid" })
    o.truncate = E(sys.truncate, F, 9)
    o.truncated = H.read(F)
    o.utimens = E(sys.utimensat, AT_FDCWD, F, 1000000000, 1, 2000000000, 2, NOFOLLOW)
    o.times = times_of(F, { "atime", "atime_nsec", "mtime", "mtime_nsec" })
    o.setxattr = E(sys.lsetxattr, F, "user.long", "value")
    o.getxattr = sys.lgetxattr(F, "user.long")
    o.listxattr = sys.llistxattr(F)
    o.removexattr = E(sys.lremovexattr, F, "user.long")
    o.getxattr_gone = E(sys.lgetxattr, F, "user.long")
    local st = sys.statvfs(F)
    o.statvfs = st and st.namemax

    -- names: links, renames with their flags, nodes, directories
    o.link = E(sys.link, F, G)
    o.nlink = times_of(F, { "nlink" })
    o.link_exists = E(sys.link, F, G)
    o.rename_noreplace_onto = E(sys.rename, G, F, luafs.RENAME_NOREPLACE)
    o.rename_noreplace = E(sys.rename, G, K, luafs.RENAME_NOREPLACE)
    o.symlink = E(sys.symlink, "a target", S)
    o.readlink = sys.readlink(S)
    o.rename_exchange = E(sys.rename, S, K, luafs.RENAME_EXCHANGE)
    o.exchanged = { sys.readlink(K), times_of(S, { "mode", "size" }) }
    o.rename_replace = E(sys.rename, S, K)
    o.mknod = E(sys.mknod, P, luafs.S_IFIFO | octal "640")
    o.fifo = times_of(P, { "mode" })
    o.mkdir = E(sys.mkdir, X, octal "750")
    o.dir = times_of(X, { "mode", "nlink" })
    o.write_inside = put(X .. "/inside", "in")
    o.listing = names(X)
    o.rmdir_nonempty = E(sys.rmdir, X)
    o.unlink_dir = E(sys.unlink, X)
    o.unlink_inside = E(sys.unlink, X .. "/inside")
    o.rmdir = E(sys.rmdir, X)
    -- a file unlinked while open, its directory removed right after the close
    o.rmdir_after_close = {}
    for i = 1, 5 do
      local r = { E(sys.mkdir, X) }
      fd, _, e = sys.open(X .. "/open", luafs.O_RDWR | luafs.O_CREAT, octal "644")
      r[2] = H.errname(e)
      if fd then
        r[3], r[4] = E(sys.unlink, X .. "/open"), sys.pwrite(fd, "x", 0)
        sys.close(fd)
      end
      r[5] = E(sys.rmdir, X)
      o.rmdir_after_close[i] = r
    end

    -- errors: a missing component, last or not; a file as a component; a
    -- component over NAME_MAX, under a directory whose name from the root
    -- is long already (here the whole path is 4085 bytes)
    local missing = in_D("m", 240)
    o.missing = { E(sys.lstat, missing), E(sys.open, missing, luafs.O_RDONLY), E(sys.unlink, missing),
      E(sys.rmdir, missing), E(sys.chmod, missing, octal "600"), E(sys.truncate, missing, 0),
      E(sys.lgetxattr, missing, "user.x"), E(sys.rename, missing, G), E(sys.link, missing, G) }
    o.missing_parent = { E(sys.lstat, missing .. "/x"), E(sys.mkdir, missing .. "/x"),
      E(sys.open, missing .. "/x", luafs.O_WRONLY | luafs.O_CREAT, octal "644"),
      E(sys.symlink, "t", missing .. "/x"), E(sys.rename, F, missing .. "/x") }
    o.under_file = { E(sys.lstat, K .. "/x"), E(sys.lstat, K .. "/x/y"), E(sys.lstat, P .. "/x"),
      E(sys.mkdir, K .. "/x"), E(sys.open, K .. "/x", luafs.O_WRONLY | luafs.O_CREAT, octal "644") }
    local E200 = table.concat(dirs, "/", 1, 14) .. "/" .. string.rep("e", 200)
    H.check(sys.mkdir(E200))
    local over = E200 .. "/" .. string.rep("n", 300)
    assert(20 + 1 + #over > 4096 and #over < 4096)
    o.over_name_max = { E(sys.lstat, over), E(sys.mkdir, over),
      E(sys.open, over, luafs.O_WRONLY | luafs.O_CREAT, octal "644"), E(sys.lstat, over:sub(1, -6) .. "/x"),
      E(sys.symlink, "t", over), E(sys.rename, F, over) }
    o.over_path_max = E(sys.lstat, F .. "x")

    o.unlink = { E(sys.unlink, K), E(sys.unlink, P), E(sys.unlink, K) }
    o.listing_D = names(D)
  end)
  if src then
    in_dir(src .. "/" .. sub, function()
      for _ = 1, levels do H.check(sys.chdir(D)) end
      o.in_src = H.read(F)
    end)
  end
  return o
end

--- Every call that takes a path, with relative paths of up to PATH_MAX - 1
-- (4095) bytes from a working directory 20 bytes below d's parent (the
-- root of the mount): from that root the names reach 4116 bytes, more than
-- one system call takes. Errors included: a missing component, a file as a
-- component, a component over NAME_MAX. src, when given, is d as the
-- filesystem's backing store sees it; the data written is read back there.
function cases.long_relative(d, src) return long_relative(d, src, 0) end

--- The same from a working directory 7700 bytes below the root, so that
-- the names from there reach 11796 bytes, more than twice PATH_MAX.
function cases.deep_relative(d, src) return long_relative(d, src, 2) end

return cases
