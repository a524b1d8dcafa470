-- spec/passthrough_spec.lua: lua/examples/passthrough.lua, mounted over a
-- fresh tmpfs directory, must behave like tmpfs itself.
--
-- Most tests are "twins": the same function runs once in a directory of the
-- mount and once in a directory of another tmpfs (a reference), and what it
-- observes (results, errno names, stat fields, bytes) must be the same. The
-- rest check what a twin cannot see: the data in the mirrored directory,
-- memory use of the host, very long paths, owners of files created by
-- another user, and real tools at work inside the mount.
local H = require "spec.helpers"
local cases = require "spec.cases"
local system = require "system"

local testing, luafs, sys, lfs = H.testing, H.luafs, H.sys, H.lfs
local octal = H.octal

local O_RDONLY, O_WRONLY, O_RDWR = luafs.O_RDONLY, luafs.O_WRONLY, luafs.O_RDWR
local O_CREAT, O_EXCL, O_TRUNC, O_APPEND = luafs.O_CREAT, luafs.O_EXCL, luafs.O_TRUNC, luafs.O_APPEND
local O_NONBLOCK = luafs.O_NONBLOCK
local F_GETLK, F_SETLK, F_SETLKW = luafs.F_GETLK, luafs.F_SETLK, luafs.F_SETLKW
local F_RDLCK, F_WRLCK, F_UNLCK = luafs.F_RDLCK, luafs.F_WRLCK, luafs.F_UNLCK
local SEEK_SET, SEEK_DATA, SEEK_HOLE = luafs.SEEK_SET, luafs.SEEK_DATA, luafs.SEEK_HOLE
local GiB, MiB = 1 << 30, 1 << 20

local PASSTHROUGH = H.example("passthrough.lua")
local PYTHON = io.open("/usr/bin/python3", "rb") and "/usr/bin/python3" or "python3"

local function now() return system.monotime() end

-- The fields of lstat(path) that two tmpfs directories agree on.
local STAT_FIELDS = { "mode", "nlink", "size", "uid", "gid", "rdev", "blocks" }
local function stat_of(path, fields)
  local st, _, e = sys.lstat(path)
  if not st then return H.errname(e) end
  local t = {}
  for _, k in ipairs(fields or STAT_FIELDS) do t[k] = st[k] end
  return t
end

-- Runs a shell command; returns its exit code and output.
local function sh(cmd) return H.shell(cmd) end

-- A fresh reference directory on tmpfs, readable by anyone (some tests run
-- commands as another user in it).
local function reference_dir()
  local dir = H.shm_dir()
  assert(sys.chmod(dir, octal "777"))
  return dir
end

-- The errno name of a luafs.sys-style result, or "OK".
local E = H.err

describe("passthrough.lua", function()
  local fs = testing.mounted(PASSTHROUGH, { once = true, scratch = true, args = { "{scratch}" } })
  local ref
  local seq = 0

  setup(function() ref = reference_dir() end)
  teardown(function() if ref then H.remove(ref) end end)

  -- twin(f): f(dir, src) runs in a fresh directory of the mount (src: the
  -- same directory in the mirrored tree) and in a fresh reference directory
  -- (src: the directory itself); both runs must return the same value.
  local function twin(f)
    seq = seq + 1
    local name = "t" .. seq
    local mdir, rdir = fs:path(name), ref .. "/" .. name
    H.check(sys.mkdir(mdir))
    H.check(sys.mkdir(rdir))
    local got = f(mdir, fs.scratch .. "/" .. name)
    local want = f(rdir, rdir)
    assert.same(want, got)
    return got
  end

  describe("files", function()
    it("creates, writes, appends and reads like tmpfs", function()
      twin(function(d, src)
        local o = {}
        H.write(d .. "/f", "hello")
        o.read = H.read(d .. "/f")
        H.write(d .. "/f", " world", "ab")
        H.write(d .. "/f", "!", "ab")
        o.appended = H.read(d .. "/f")
        o.in_src = H.read(src .. "/f")
        -- O_APPEND writes at the end whatever the offset says
        local fd = H.check(sys.open(d .. "/f", O_WRONLY | O_APPEND))
        o.pwrite = sys.pwrite(fd, "<tail>", 0)
        sys.close(fd)
        o.after_pwrite = H.read(d .. "/f")
        o.excl = E(sys.open, d .. "/f", O_WRONLY | O_CREAT | O_EXCL, octal "644")
        o.missing = E(sys.open, d .. "/nope", O_RDONLY)
        o.in_missing_dir = E(sys.open, d .. "/nope/f", O_WRONLY | O_CREAT, octal "644")
        o.under_file = E(sys.open, d .. "/f/x", O_RDONLY)
        o.dir_for_write = E(sys.open, d, O_WRONLY)
        o.too_long = E(sys.open, d .. "/" .. string.rep("n", 256), O_WRONLY | O_CREAT, octal "644")
        fd = H.check(sys.open(d .. "/f", O_RDWR | O_TRUNC))
        o.truncated = sys.fstat(fd).size
        sys.close(fd)
        o.stat = stat_of(d .. "/f")
        return o
      end)
    end)

    it("keeps binary data with NUL bytes, and files over 1 MiB, intact", function()
      local data = H.bytes(3 * MiB + 123, 7) .. "\0\0tail\0"
      twin(function(d, src)
        H.write(d .. "/bin", data)
        local back = H.read(d .. "/bin")
        H.assert_same_bytes(data, back, "read back through " .. d)
        H.assert_same_bytes(data, H.read(src .. "/bin"), "in the mirrored file")
        -- unaligned reads and writes in the middle
        local fd = H.check(sys.open(d .. "/bin", O_RDWR))
        local o = {
          mid = sys.pread(fd, 10, 2 * MiB + 5),
          write = sys.pwrite(fd, "\0x\0y\0", MiB - 2),
          around = sys.pread(fd, 9, MiB - 4),
          past_end = sys.pread(fd, 10, 10 * MiB),
          size = sys.fstat(fd).size,
        }
        sys.close(fd)
        return o
      end)
    end)

    it("truncates by name and by descriptor", function()
      twin(function(d)
        H.write(d .. "/f", "0123456789")
        local o = {}
        o.by_name = E(sys.truncate, d .. "/f", 4)
        o.after_name = H.read(d .. "/f")
        local fd = H.check(sys.open(d .. "/f", O_RDWR))
        o.by_fd = E(sys.ftruncate, fd, 8)
        sys.close(fd)
        o.after_fd = H.read(d .. "/f")
        o.missing = E(sys.truncate, d .. "/nope", 1)
        o.dir = E(sys.truncate, d, 1)
        return o
      end)
    end)

    it("stores sparse files past 4 GiB and finds their data and holes", function()
      twin(function(d)
        local fd = H.check(sys.open(d .. "/sparse", O_RDWR | O_CREAT, octal "644"))
        local o = { w1 = sys.pwrite(fd, "x", 5 * GiB), w2 = sys.pwrite(fd, "y", MiB) }
        local st = sys.fstat(fd)
        o.size, o.blocks = st.size, st.blocks
        o.seeks = {}
        for _, off in ipairs { 0, 4096, MiB, MiB + 4096, 5 * GiB - 1, 5 * GiB, 5 * GiB + 1 } do
          local data, _, e1 = sys.lseek(fd, off, SEEK_DATA)
          local hole, _, e2 = sys.lseek(fd, off, SEEK_HOLE)
          o.seeks[#o.seeks + 1] = { off, data or H.errname(e1), hole or H.errname(e2) }
        end
        o.far = sys.pread(fd, 3, 5 * GiB - 1)
        o.hole = sys.pread(fd, 4, 4 * GiB)
        sys.close(fd)
        return o
      end)
    end)

    it("allocates with fallocate, and refuses the modes tmpfs refuses", function()
      local got = twin(function(d)
        local fd = H.check(sys.open(d .. "/f", O_RDWR | O_CREAT, octal "644"))
        H.check(sys.pwrite(fd, string.rep("a", 3 * 4096), 0))
        local o = {}
        local function st() local s = sys.fstat(fd) return { s.size, s.blocks } end
        o.plain = E(sys.fallocate, fd, 0, 0, 8 * 4096)
        o.after_plain = st()
        o.keep = E(sys.fallocate, fd, luafs.FALLOC_FL_KEEP_SIZE, 8 * 4096, 8 * 4096)
        o.after_keep = st()
        o.punch = E(sys.fallocate, fd, luafs.FALLOC_FL_PUNCH_HOLE | luafs.FALLOC_FL_KEEP_SIZE, 4096, 4096)
        o.after_punch = st()
        o.punched = sys.pread(fd, 4096, 4096) == string.rep("\0", 4096)
        o.kept = sys.pread(fd, 4096, 0) == string.rep("a", 4096)
        o.punch_without_keep = E(sys.fallocate, fd, luafs.FALLOC_FL_PUNCH_HOLE, 0, 4096)
        o.zero_range = E(sys.fallocate, fd, luafs.FALLOC_FL_ZERO_RANGE, 0, 4096)
        o.collapse = E(sys.fallocate, fd, luafs.FALLOC_FL_COLLAPSE_RANGE, 0, 4096)
        o.bad_len = E(sys.fallocate, fd, 0, 0, 0)
        -- more than the filesystem holds (tmpfs says so before allocating)
        o.no_space = E(sys.fallocate, fd, 0, 0, 1 << 50)
        o.after_no_space = st()
        sys.close(fd)
        return o
      end)
      -- tmpfs refuses ZERO_RANGE: the mount must pass that refusal on
      assert.are.equal(H.errname(luafs.EOPNOTSUPP), got.zero_range)
      assert.are.equal(H.errname(luafs.ENOSPC), got.no_space)
    end)

    it("copies ranges with copy_file_range", function()
      twin(function(d)
        local data = H.bytes(300000, 3)
        H.write(d .. "/a", data)
        local a = H.check(sys.open(d .. "/a", O_RDONLY))
        local b = H.check(sys.open(d .. "/b", O_RDWR | O_CREAT, octal "644"))
        local o = {}
        o.first = sys.copy_file_range(a, 1000, b, 0, 100000)
        o.second = sys.copy_file_range(a, 250000, b, 200000, 100000) -- short: end of a
        o.at_end = sys.copy_file_range(a, 300000, b, 0, 10)
        o.size = sys.fstat(b).size
        o.same1 = sys.pread(b, 100000, 0) == data:sub(1001, 101000)
        o.gap = sys.pread(b, 100000, 100000) == string.rep("\0", 100000)
        o.same2 = sys.pread(b, 50000, 200000) == data:sub(250001, 300000)
        o.bad_fd = E(sys.copy_file_range, b, 0, a, 0, 10) -- a is read-only
        sys.close(a)
        sys.close(b)
        return o
      end)
    end)

    it("syncs files and directories", function() twin(cases.sync) end)

    it("keeps a file unlinked while open readable and writable through its fd", function()
      twin(function(d, src)
        local f = assert(io.open(d .. "/gone", "w+b"))
        assert(f:write("still here"))
        assert(f:flush())
        local o = { unlink = E(sys.unlink, d .. "/gone") }
        o.name = E(sys.lstat, d .. "/gone")
        assert(f:seek("set", 0))
        o.read = f:read("a")
        assert(f:write(" and more"))
        assert(f:seek("set", 0))
        o.reread = f:read("a")
        o.size = f:seek("end")
        f:close()
        -- libfuse hides it as .fuse_hidden* until the last close
        o.left = H.wait_until(function()
          local names = H.listing(src)
          return #names == 2 and table.concat(names, " ")
        end, 3) or table.concat(H.listing(src), " ")
        return o
      end)
    end)

    it("checks access like tmpfs", function()
      twin(function(d)
        H.write(d .. "/f", "x")
        H.write(d .. "/x", "x")
        assert(sys.chmod(d .. "/f", octal "644"))
        assert(sys.chmod(d .. "/x", octal "755"))
        H.check(sys.mkdir(d .. "/locked", octal "000"))
        return {
          f_ok = E(sys.access, d .. "/f", luafs.F_OK),
          rw = E(sys.access, d .. "/f", luafs.R_OK | luafs.W_OK),
          x = E(sys.access, d .. "/f", luafs.X_OK),
          x_ok = E(sys.access, d .. "/x", luafs.X_OK),
          missing = E(sys.access, d .. "/nope", luafs.F_OK),
          under_file = E(sys.access, d .. "/f/x", luafs.F_OK),
          locked_dir = E(sys.access, d .. "/locked", luafs.X_OK),
        }
      end)
    end)

    it("removes a directory right after closing a file unlinked in it, and while it is open", function()
      twin(function(d)
        local o = { races = 0 }
        -- the kernel's release of the file comes after close(2) returns
        for i = 1, 30 do
          local sub = d .. "/r" .. i
          H.check(sys.mkdir(sub))
          local fd = H.check(sys.open(sub .. "/f", O_RDWR | O_CREAT, octal "644"))
          H.check(sys.unlink(sub .. "/f"))
          sys.close(fd)
          if E(sys.rmdir, sub) ~= "OK" then o.races = o.races + 1 end
        end
        -- and with the file still open: its descriptor goes on working
        H.check(sys.mkdir(d .. "/open"))
        local fd = H.check(sys.open(d .. "/open/f", O_RDWR | O_CREAT, octal "644"))
        sys.write(fd, "kept")
        H.check(sys.unlink(d .. "/open/f"))
        o.rmdir_open = E(sys.rmdir, d .. "/open")
        o.read = sys.pread(fd, 10, 0)
        o.write = sys.pwrite(fd, "!", 4)
        o.reread = sys.pread(fd, 10, 0)
        sys.close(fd)
        o.listing = H.listing(d)
        return o
      end)
    end)

    it("reports the mirrored filesystem's statfs", function()
      local m = assert(sys.statvfs(fs.mountpoint))
      local s = assert(sys.statvfs(fs.scratch))
      for _, k in ipairs { "bsize", "frsize", "blocks", "files", "namemax" } do
        assert.are.equal(s[k], m[k], k)
      end
      assert.is_true(math.abs(s.bfree - m.bfree) < 1024, "bfree")
    end)
  end)

  describe("names", function()
    it("renames with RENAME_NOREPLACE and RENAME_EXCHANGE", function()
      twin(function(d)
        H.write(d .. "/a", "A")
        H.write(d .. "/b", "B")
        H.check(sys.mkdir(d .. "/dir"))
        H.write(d .. "/dir/inside", "I")
        H.check(sys.mkdir(d .. "/full"))
        H.write(d .. "/full/x", "X")
        local R = function(a, b, fl) return E(sys.rename, d .. "/" .. a, d .. "/" .. b, fl) end
        local o = {}
        o.noreplace_existing = R("a", "b", luafs.RENAME_NOREPLACE)
        o.noreplace_new = R("a", "c", luafs.RENAME_NOREPLACE)
        o.exchange = R("c", "b", luafs.RENAME_EXCHANGE)
        o.c, o.b = H.read(d .. "/c"), H.read(d .. "/b")
        o.exchange_missing = R("c", "nope", luafs.RENAME_EXCHANGE)
        o.exchange_dir = R("c", "dir", luafs.RENAME_EXCHANGE)
        o.c_is_dir = H.read(d .. "/c/inside")
        o.dir_is_file = H.read(d .. "/dir")
        o.both_flags = R("b", "dir", luafs.RENAME_NOREPLACE | luafs.RENAME_EXCHANGE)
        o.replace = R("b", "dir")
        o.onto_full_dir = R("c", "full")
        o.dir_onto_file = R("c", "dir")
        o.into_itself = R("c", "c/sub")
        o.missing = R("nope", "x")
        o.listing = H.listing(d)
        return o
      end)
    end)

    it("makes hard links and symlinks, and reads links", function()
      local long = string.rep("t/", 1500) .. "end"
      twin(function(d)
        H.write(d .. "/f", "data")
        local o = {}
        o.link = E(sys.link, d .. "/f", d .. "/h")
        o.nlink = stat_of(d .. "/f").nlink
        o.h = H.read(d .. "/h")
        o.link_exists = E(sys.link, d .. "/f", d .. "/h")
        o.link_dir = E(sys.link, d, d .. "/dlink")
        o.link_missing = E(sys.link, d .. "/nope", d .. "/x")
        o.symlink = E(sys.symlink, "f", d .. "/s")
        o.readlink = sys.readlink(d .. "/s")
        o.through = H.read(d .. "/s")
        o.s_stat = stat_of(d .. "/s", { "mode", "size", "nlink" })
        o.long = E(sys.symlink, long, d .. "/long")
        o.long_back = sys.readlink(d .. "/long") == long
        o.dangling = E(sys.symlink, "nowhere", d .. "/dangle")
        o.dangling_read = E(sys.open, d .. "/dangle", O_RDONLY)
        o.readlink_file = E(sys.readlink, d .. "/f")
        o.symlink_exists = E(sys.symlink, "x", d .. "/f")
        o.unlink = E(sys.unlink, d .. "/h")
        o.nlink_after = stat_of(d .. "/f").nlink
        return o
      end)
    end)

    it("makes and removes directories with the errors tmpfs gives", function()
      twin(function(d)
        local o = {}
        o.mkdir = E(sys.mkdir, d .. "/sub", octal "750")
        o.mode = stat_of(d .. "/sub", { "mode", "nlink" })
        o.parent = stat_of(d, { "nlink" })
        o.again = E(sys.mkdir, d .. "/sub")
        H.write(d .. "/sub/f", "x")
        o.nonempty = E(sys.rmdir, d .. "/sub")
        o.unlink_dir = E(sys.unlink, d .. "/sub")
        o.rmdir_file = E(sys.rmdir, d .. "/sub/f")
        o.unlink = E(sys.unlink, d .. "/sub/f")
        o.rmdir = E(sys.rmdir, d .. "/sub")
        o.missing = E(sys.rmdir, d .. "/sub")
        o.listing = H.listing(d)
        return o
      end)
    end)

    it("lists directories, with types and inode numbers of the mirrored tree", function()
      twin(function(d)
        H.write(d .. "/file", "x")
        H.check(sys.mkdir(d .. "/dir"))
        H.check(sys.symlink("file", d .. "/link"))
        H.check(sys.mknod(d .. "/fifo", luafs.S_IFIFO | octal "644", 0))
        local o = { names = H.listing(d), modes = {} }
        for _, n in ipairs(o.names) do
          if n ~= "." and n ~= ".." then
            o.modes[n] = lfs.symlinkattributes(d .. "/" .. n, "mode")
          end
        end
        return o
      end)
      -- inode numbers pass through (use_ino)
      H.write(fs:path("ino"), "x")
      assert.are.equal(sys.lstat(fs.scratch .. "/ino").ino, sys.lstat(fs:path("ino")).ino)
    end)

    it("makes fifos and device nodes", function()
      twin(function(d)
        local o = {}
        o.fifo = E(sys.mknod, d .. "/fifo", luafs.S_IFIFO | octal "640", 0)
        o.fifo_stat = stat_of(d .. "/fifo")
        local fd = H.check(sys.open(d .. "/fifo", O_RDWR | O_NONBLOCK))
        o.write = sys.write(fd, "through the pipe")
        o.read = sys.read(fd, 100)
        o.empty = E(sys.read, fd, 100)
        sys.close(fd)
        o.chr = E(sys.mknod, d .. "/null", luafs.S_IFCHR | octal "666", (1 << 8) | 3)
        o.chr_stat = stat_of(d .. "/null")
        o.sock = E(sys.mknod, d .. "/sock", luafs.S_IFSOCK | octal "600", 0)
        o.sock_stat = stat_of(d .. "/sock")
        o.reg = E(sys.mknod, d .. "/reg", luafs.S_IFREG | octal "600", 0)
        o.reg_stat = stat_of(d .. "/reg")
        o.exists = E(sys.mknod, d .. "/reg", luafs.S_IFIFO | octal "600", 0)
        return o
      end)
    end)
  end)

  describe("attributes", function()
    it("changes modes and owners", function()
      twin(function(d)
        H.write(d .. "/f", "x")
        H.check(sys.symlink("f", d .. "/s"))
        local o = {}
        o.chmod = E(sys.chmod, d .. "/f", octal "4751")
        o.mode = stat_of(d .. "/f").mode
        o.chown = E(sys.chown, d .. "/f", 1234, 5678)
        o.owner = stat_of(d .. "/f", { "uid", "gid", "mode" })
        o.only_gid = E(sys.chown, d .. "/f", -1, 42)
        o.owner2 = stat_of(d .. "/f", { "uid", "gid" })
        o.lchown = E(sys.lchown, d .. "/s", 777, 888)
        o.link_owner = stat_of(d .. "/s", { "uid", "gid" })
        o.target_owner = stat_of(d .. "/f", { "uid", "gid" })
        local fd = H.check(sys.open(d .. "/f", O_RDONLY))
        o.fchmod = E(sys.fchmod, fd, octal "600")
        o.fchown = E(sys.fchown, fd, 5, 6)
        sys.close(fd)
        o.final = stat_of(d .. "/f", { "uid", "gid", "mode" })
        o.missing = E(sys.chmod, d .. "/nope", octal "600")
        return o
      end)
    end)

    it("sets times to the nanosecond, with UTIME_NOW and UTIME_OMIT", function() twin(cases.times) end)

    it("keeps extended attributes, binary values included", function()
      local XC, XR = luafs.XATTR_CREATE, luafs.XATTR_REPLACE
      local big = H.bytes(4000, 9)
      local got = twin(function(d)
        H.write(d .. "/f", "x")
        H.check(sys.mkdir(d .. "/dir"))
        H.check(sys.symlink("f", d .. "/s"))
        local o = {}
        o.set = E(sys.lsetxattr, d .. "/f", "user.plain", "value")
        o.bin = E(sys.lsetxattr, d .. "/f", "user.bin", "a\0b\0\255")
        o.big = E(sys.lsetxattr, d .. "/f", "user.big", big)
        o.empty = E(sys.lsetxattr, d .. "/f", "user.empty", "")
        o.get = sys.lgetxattr(d .. "/f", "user.plain")
        o.get_bin = sys.lgetxattr(d .. "/f", "user.bin")
        o.get_big = sys.lgetxattr(d .. "/f", "user.big") == big
        o.get_empty = sys.lgetxattr(d .. "/f", "user.empty")
        local names = assert(sys.llistxattr(d .. "/f"))
        table.sort(names)
        o.list = names
        o.create_existing = E(sys.lsetxattr, d .. "/f", "user.plain", "v2", XC)
        o.replace_missing = E(sys.lsetxattr, d .. "/f", "user.none", "v2", XR)
        o.replace = E(sys.lsetxattr, d .. "/f", "user.plain", "v2", XR)
        o.replaced = sys.lgetxattr(d .. "/f", "user.plain")
        o.remove = E(sys.lremovexattr, d .. "/f", "user.plain")
        o.removed = E(sys.lgetxattr, d .. "/f", "user.plain")
        o.remove_missing = E(sys.lremovexattr, d .. "/f", "user.plain")
        o.bad_namespace = E(sys.lsetxattr, d .. "/f", "bogus.x", "v")
        o.dir = E(sys.lsetxattr, d .. "/dir", "user.d", "on a dir")
        o.dir_get = sys.lgetxattr(d .. "/dir", "user.d")
        o.symlink = E(sys.lsetxattr, d .. "/s", "user.s", "on a link")
        o.missing_file = E(sys.lgetxattr, d .. "/nope", "user.x")
        local fd = H.check(sys.open(d .. "/f", O_RDONLY))
        o.fget = sys.fgetxattr(fd, "user.bin")
        sys.close(fd)
        return o
      end)
      assert.are.equal("OK", got.set)
      -- on the mount's root too (its name in the mirrored tree is ".")
      assert(sys.lsetxattr(fs.mountpoint, "user.root", "r"))
      assert.are.equal("r", sys.lgetxattr(fs.scratch, "user.root"))
      assert(sys.lremovexattr(fs.mountpoint, "user.root"))
    end)
  end)

  describe("locks", function()
    -- Starts pt_lock.py; for "hold", waits until it holds the lock.
    local function lock_helper(...)
      local words = { PYTHON, H.fixture("pt_lock.py") }
      for _, w in ipairs { ... } do words[#words + 1] = H.quote(w) end
      local p = assert(io.popen("exec " .. table.concat(words, " ") .. " 2>&1", "r"))
      local line = p:read("l") or ""
      return { pid = tonumber(line:match("^locked (%d+)")), line = line, pipe = p }
    end
    local function try_lock(path, kind, start, len)
      local h = lock_helper("try", path, kind, tostring(start), tostring(len))
      h.pipe:close()
      return h.line
    end

    it("makes two processes contend for fcntl locks; F_GETLK names the holder", function()
      twin(function(d)
        local f = d .. "/lk"
        H.write(f, string.rep("x", 100))
        local holder = lock_helper("hold", f, "w", "0", "10", d .. "/release")
        assert(holder.pid, "the lock helper said: " .. holder.line)
        local fd = H.check(sys.open(f, O_RDWR))
        local o = {}
        local lk = H.check(sys.fcntl_lock(fd, F_GETLK, { type = F_RDLCK, whence = SEEK_SET, start = 5, len = 1 }))
        o.getlk = { type = lk.type, start = lk.start, len = lk.len, holder = lk.pid == holder.pid }
        o.setlk_w = E(sys.fcntl_lock, fd, F_SETLK, { type = F_WRLCK, start = 5, len = 10 })
        o.setlk_r = E(sys.fcntl_lock, fd, F_SETLK, { type = F_RDLCK, start = 9, len = 1 })
        o.elsewhere = E(sys.fcntl_lock, fd, F_SETLK, { type = F_WRLCK, start = 20, len = 10 })
        -- the owner's own lock is no conflict for it
        o.own = H.check(sys.fcntl_lock(fd, F_GETLK, { type = F_WRLCK, start = 20, len = 10 })).type
        o.free = H.check(sys.fcntl_lock(fd, F_GETLK, { type = F_WRLCK, start = 10, len = 10 })).type
        -- the helper sees ours
        o.helper_sees = try_lock(f, "r", 25, 1)
        H.write(d .. "/release", "")
        holder.pipe:close()
        o.after = E(sys.fcntl_lock, fd, F_SETLK, { type = F_WRLCK, start = 0, len = 10 })
        o.unlock = E(sys.fcntl_lock, fd, F_SETLK, { type = F_UNLCK, start = 0, len = 0 })
        o.helper_after = try_lock(f, "w", 0, 100)
        sys.close(fd)
        return o
      end)
    end)

    it("lets F_SETLKW wait for the holder", function()
      twin(function(d)
        local f = d .. "/lk"
        H.write(f, "x")
        local holder = lock_helper("hold", f, "w", "0", "0", "0.4")
        assert(holder.pid, "the lock helper said: " .. holder.line)
        local fd = H.check(sys.open(f, O_RDWR))
        local t0 = now()
        local o = { setlkw = E(sys.fcntl_lock, fd, F_SETLKW, { type = F_WRLCK, start = 0, len = 0 }) }
        o.waited = now() - t0 >= 0.2
        holder.pipe:close()
        o.helper = try_lock(f, "r", 0, 1)
        sys.close(fd)
        return o
      end)
    end)

    it("releases all of a process's locks on a file at any close of it", function()
      twin(function(d)
        local f = d .. "/lk"
        H.write(f, string.rep("x", 100))
        local fd1 = H.check(sys.open(f, O_RDWR))
        local fd2 = H.check(sys.open(f, O_RDONLY))
        local o = {}
        o.w = E(sys.fcntl_lock, fd1, F_SETLK, { type = F_WRLCK, start = 0, len = 10 })
        o.r = E(sys.fcntl_lock, fd2, F_SETLK, { type = F_RDLCK, start = 50, len = 10 })
        o.w_on_readonly = E(sys.fcntl_lock, fd2, F_SETLK, { type = F_WRLCK, start = 70, len = 1 })
        -- one owner: its locks merge, and its two descriptors never conflict
        o.upgrade = E(sys.fcntl_lock, fd1, F_SETLK, { type = F_WRLCK, start = 55, len = 1 })
        o.held1 = try_lock(f, "r", 5, 1)
        o.held2 = try_lock(f, "w", 52, 1)
        sys.close(fd2)
        o.released1 = try_lock(f, "w", 5, 1)
        o.released2 = try_lock(f, "w", 55, 1)
        sys.close(fd1)
        return o
      end)
    end)

    it("shares record locks and flock locks with processes using ROOT directly", function()
      -- the kernel's own lock tables (what a filesystem without lock and
      -- flock gets) would not see these
      local name = "shared-lock"
      H.write(fs:path(name), "x")
      local src = fs.scratch .. "/" .. name
      local holder = lock_helper("hold", src, "w", "0", "10", src .. ".release")
      assert(holder.pid, "the lock helper said: " .. holder.line)
      local fd = H.check(sys.open(fs:path(name), O_RDWR))
      local ok, err = pcall(function()
        assert.are.equal(H.errname(luafs.EAGAIN),
          E(sys.fcntl_lock, fd, F_SETLK, { type = F_RDLCK, start = 0, len = 1 }))
        local lk = H.check(sys.fcntl_lock(fd, F_GETLK, { type = F_RDLCK, start = 0, len = 1 }))
        assert.same({ F_WRLCK, 0, 10, holder.pid }, { lk.type, lk.start, lk.len, lk.pid })
      end)
      H.write(src .. ".release", "")
      holder.pipe:close()
      assert(ok, err)
      assert.are.equal("OK", E(sys.fcntl_lock, fd, F_SETLK, { type = F_RDLCK, start = 0, len = 1 }))
      sys.close(fd)

      local flocker = assert(io.popen("exec flock " .. H.quote(src) .. " sh -c 'echo locked; while [ ! -e "
        .. H.quote(src .. ".release2") .. " ]; do sleep 0.01; done'", "r"))
      assert.are.equal("locked", flocker:read("l"))
      local code = sh("flock -n " .. H.quote(fs:path(name)) .. " true")
      H.write(src .. ".release2", "")
      flocker:close()
      assert.are.equal(1, code)
      assert.are.equal(0, (sh("flock -n " .. H.quote(fs:path(name)) .. " true")))
    end)

    it("takes flock locks, with LOCK_NB and waiting", function()
      twin(function(d)
        local f = d .. "/fl"
        H.write(f, "x")
        local q = H.quote
        local o = {}
        local holder = assert(io.popen("exec flock " .. q(f) .. " sh -c 'echo locked; while [ ! -e "
          .. q(d .. "/release") .. " ]; do sleep 0.01; done'", "r"))
        o.holder = holder:read("l")
        o.nb_ex = sh("flock -n " .. q(f) .. " true")
        o.nb_sh = sh("flock -n -s " .. q(f) .. " true")
        H.write(d .. "/release", "")
        holder:close()
        o.nb_after = sh("flock -n " .. q(f) .. " true")
        -- flock locks belong to the open file: a second open conflicts
        local a = H.check(sys.open(f, O_RDONLY))
        local b = H.check(sys.open(f, O_RDONLY))
        o.a_ex = E(sys.flock, a, luafs.LOCK_EX | luafs.LOCK_NB)
        o.b_ex = E(sys.flock, b, luafs.LOCK_EX | luafs.LOCK_NB)
        o.b_sh = E(sys.flock, b, luafs.LOCK_SH | luafs.LOCK_NB)
        o.a_down = E(sys.flock, a, luafs.LOCK_SH)
        o.b_sh2 = E(sys.flock, b, luafs.LOCK_SH | luafs.LOCK_NB)
        sys.close(a)
        sys.close(b)
        -- a blocking flock waits for the holder
        holder = assert(io.popen("exec flock " .. q(f) .. " sh -c 'echo locked; sleep 0.4'", "r"))
        o.holder2 = holder:read("l")
        local t0 = now()
        o.blocking = sh("flock " .. q(f) .. " true")
        o.waited = now() - t0 >= 0.2
        holder:close()
        return o
      end)
    end)
  end)

  describe("paths long only from the mount's root", function()
    -- The kernel walks a path relative to the working directory one
    -- component at a time, but the script gets the name from the root.
    it("serves every call that takes a path, with tmpfs's errors", function()
      local got = twin(cases.long_relative)
      assert.are.equal("long way ", got.in_src)
      assert.are.equal("OK", got.rename_exchange)
      assert.same({ "ENOENT", "ENOENT", "ENOENT" }, { got.missing[1], got.missing_parent[1], got.missing_parent[2] })
      assert.same({ "ENOTDIR", "ENOTDIR" }, { got.under_file[1], got.under_file[4] })
      assert.same({ "ENAMETOOLONG", "ENAMETOOLONG" }, { got.over_name_max[1], got.over_name_max[4] })
    end)

    it("does so from a working directory more than PATH_MAX below the root", function()
      local got = twin(cases.deep_relative)
      assert.are.equal("long way ", got.in_src)
      assert.same({ "ENOENT", "ENOTDIR", "ENAMETOOLONG" }, { got.missing[1], got.under_file[1], got.over_name_max[1] })
    end)
  end)

  describe("a directory of 100 000 entries", function()
    local N = 100000
    it("lists completely, without duplicates, in bounded host memory", function()
      local dir = fs.scratch .. "/many"
      local code, out = sh(PYTHON .. " -c " .. H.quote(string.format("import os\nos.mkdir(%q)\n"
        .. "for i in range(%d): os.close(os.open('%s/f%%06d' %% i, os.O_CREAT | os.O_WRONLY, 0o644))",
        dir, N, dir)))
      assert(code == 0, out)
      local function status(key)
        local s = assert(H.read("/proc/" .. fs.pid .. "/status"))
        return tonumber(s:match(key .. ":%s*(%d+) kB"))
      end
      -- reset VmHWM to VmRSS, so that it measures the listing alone
      H.write("/proc/" .. fs.pid .. "/clear_refs", "5")
      local rss0 = status("VmRSS")
      local seen, count, dups = {}, 0, 0
      for name in lfs.dir(fs:path("many")) do
        if seen[name] then dups = dups + 1 end
        seen[name] = true
        count = count + 1
      end
      assert.are.equal(0, dups)
      assert.are.equal(N + 2, count)
      for i = 0, N - 1, 997 do assert.is_true(seen[string.format("f%06d", i)]) end
      assert.is_true(seen["."] and seen[".."])
      local grown = status("VmHWM") - rss0
      assert.is_true(grown < 16 * 1024, "the host grew by " .. grown .. " kB")
    end)
  end)

  describe("real tools inside the mount", function()
    local q = H.quote

    local function run(cmd)
      local code, out = sh(cmd)
      assert(code == 0, "failed (" .. code .. "): " .. cmd .. "\n" .. out)
      return out
    end

    -- A small tree with the kinds of things tools care about.
    local function make_tree(dir)
      run("mkdir -p " .. q(dir .. "/a/b/c") .. " " .. q(dir .. "/empty"))
      H.write(dir .. "/a/bin", H.bytes(200000, 5))
      H.write(dir .. "/a/b/text", "some text\n")
      H.write(dir .. "/a/b/c/deep", "deep\n")
      run("cd " .. q(dir) .. " && ln -s a/b/text link && ln a/bin hard && chmod 640 a/b/text"
        .. " && touch -d '2001-02-03 04:05:06.789' a/b/c/deep")
    end

    it("round-trips a tree through tar", function()
      local tree, out = fs:path("tartree"), fs:path("untar")
      make_tree(tree)
      local tarball = ref .. "/tree.tar"
      assert(sys.lsetxattr(tree .. "/a/b/text", "user.tar", "kept"))
      -- the pax format keeps nanoseconds, --xattrs the extended attributes
      run("tar --format=posix --xattrs -C " .. q(tree) .. " -cf " .. q(tarball) .. " .")
      run("mkdir " .. q(out) .. " && tar --xattrs --xattrs-include='user.*' -C " .. q(out)
        .. " -xpf " .. q(tarball))
      run("diff -r " .. q(tree) .. " " .. q(out))
      local find = " && find . -printf '%p %M %s %n %u %g %T@ %l\\n' | sort"
      assert.are.equal(run("cd " .. q(tree) .. find), run("cd " .. q(out) .. find))
      assert.are.equal(2, sys.lstat(out .. "/hard").nlink)
      assert.are.equal("a/b/text", sys.readlink(out .. "/link"))
      assert.are.equal(789000000, sys.lstat(out .. "/a/b/c/deep").mtime_nsec)
      assert.are.equal("kept", sys.lgetxattr(out .. "/a/b/text", "user.tar"))
    end)

    it("copies a tree with cp -a that diff -r finds equal", function()
      local tree, copy = fs:path("cptree"), fs:path("cpcopy")
      make_tree(tree)
      run("cp -a " .. q(tree) .. " " .. q(copy))
      run("diff -r " .. q(tree) .. " " .. q(copy))
      for _, p in ipairs { "/a/b/text", "/a/b/c/deep", "/link", "/hard" } do
        assert.same(stat_of(tree .. p, { "mode", "size", "nlink", "mtime", "mtime_nsec" }),
          stat_of(copy .. p, { "mode", "size", "nlink", "mtime", "mtime_nsec" }), p)
      end
      -- and the same from the mount to plain tmpfs and back
      run("cp -a " .. q(tree) .. " " .. q(ref .. "/cpcopy") .. " && diff -r " .. q(tree) .. " " .. q(ref .. "/cpcopy"))
    end)

    it("runs git init, add, commit and fsck", function()
      local repo = fs:path("repo")
      make_tree(repo)
      local git = "cd " .. q(repo) .. " && GIT_CONFIG_NOSYSTEM=1 HOME=" .. q(ref)
        .. " git -c user.name=luafs -c user.email=luafs@example.com -c init.defaultBranch=main "
      run(git .. "init -q")
      run(git .. "add -A")
      run(git .. "commit -q -m first")
      H.write(repo .. "/a/b/text", "changed\n")
      run(git .. "commit -q -am second")
      assert.are.equal("2\n", run(git .. "rev-list --count HEAD"))
      assert.are.equal("", run(git .. "status --porcelain"))
      run(git .. "fsck --strict --no-progress")
      run(git .. "gc -q")
      assert.are.equal("some text\n", run(git .. "show HEAD~1:a/b/text"))
    end)

    it("builds with make, and knows when it is up to date", function()
      local dir = fs:path("make")
      H.check(sys.mkdir(dir))
      H.write(dir .. "/in.txt", "abc\n")
      H.write(dir .. "/Makefile", "out.txt: in.txt\n\ttr a-z A-Z < in.txt > out.txt\n")
      run("make -s -C " .. q(dir))
      assert.are.equal("ABC\n", H.read(dir .. "/out.txt"))
      run("make -q -C " .. q(dir)) -- exit 0: up to date
      assert(sys.utimensat(luafs.AT_FDCWD, dir .. "/in.txt", 0, luafs.UTIME_NOW, 0, luafs.UTIME_NOW))
      assert(sys.utimensat(luafs.AT_FDCWD, dir .. "/out.txt", 1, 0, 1, 0))
      assert.are_not.equal(0, (sh("make -q -C " .. q(dir))))
    end)

    it("runs sqlite3 with its locking and journal", function()
      local code = sh("command -v sqlite3")
      if code ~= 0 then
        io.stderr:write("\npassthrough_spec: sqlite3 is not installed: skipping its test\n")
        pending("sqlite3 is not installed")
        return
      end
      local db = fs:path("test.db")
      local out = run("sqlite3 " .. q(db) .. " " .. q([[
        PRAGMA journal_mode=DELETE;
        CREATE TABLE t(x INTEGER, y TEXT);
        BEGIN; WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5000)
          INSERT INTO t SELECT i, hex(randomblob(20)) FROM n; COMMIT;
        SELECT count(*), sum(x) FROM t;
        PRAGMA integrity_check;]]))
      assert.are.equal("delete\n5000|12502500\nok\n", out)
      out = run("sqlite3 " .. q(db) .. " " .. q("PRAGMA journal_mode=WAL; DELETE FROM t WHERE x > 10; "
        .. "SELECT count(*) FROM t; PRAGMA integrity_check;"))
      assert.are.equal("wal\n10\nok\n", out)
    end)
  end)
end)

describe("passthrough.lua with a long ROOT", function()
  -- ROOT's own path is long, so names near PATH_MAX in the mount are too
  -- long to reach from / in the mirrored tree: only *at calls relative to
  -- ROOT's descriptor reach them.
  local long_root
  local fs = testing.mounted(PASSTHROUGH, { once = true, scratch = true, args = function(m)
    long_root = m.scratch .. "/" .. string.rep("r", 250)
    assert(sys.mkdir(long_root))
    return { long_root }
  end })

  it("serves paths near PATH_MAX", function()
    local PATH_MAX = 4096
    -- directories of up to 250 bytes, then a name that brings the path to
    -- PATH_MAX - 2 bytes (the longest a system call takes, with its NUL)
    local rel = ""
    while PATH_MAX - 2 - #fs.mountpoint - #rel > 256 do
      local left = PATH_MAX - 2 - #fs.mountpoint - #rel
      rel = rel .. "/" .. string.rep("d", math.max(1, math.min(250, left - 257)))
      H.check(sys.mkdir(fs.mountpoint .. rel))
    end
    local name = string.rep("f", PATH_MAX - 2 - #fs.mountpoint - #rel - 1)
    local path = fs.mountpoint .. rel .. "/" .. name
    assert.is_true(#path >= PATH_MAX - 2 and #path < PATH_MAX, "length " .. #path)
    local source = long_root .. rel .. "/" .. name
    assert.are.equal("ENAMETOOLONG", E(sys.lstat, source))

    H.write(path, "deep data")
    assert.are.equal("deep data", H.read(path))
    assert.are.equal(9, sys.lstat(path).size)
    assert(sys.lsetxattr(path, "user.deep", "x"))
    assert.are.equal("x", sys.lgetxattr(path, "user.deep"))
    assert.same({ "user.deep" }, sys.llistxattr(path))
    assert(sys.chmod(path, octal "600"))
    assert.are.equal(octal "100600", sys.lstat(path).mode)
    local dir = fs.mountpoint .. rel
    assert.same({ ".", "..", name }, H.listing(dir))
    local other = dir .. "/" .. name:sub(1, -2) .. "g"
    assert(sys.rename(path, other))
    assert(sys.symlink("target", path))
    assert.are.equal("target", sys.readlink(path))
    assert(sys.unlink(path))
    assert(sys.unlink(other))
    while rel ~= "" do
      assert(sys.rmdir(fs.mountpoint .. rel))
      rel = rel:match("^(.*)/[^/]*$")
    end
  end)
end)

describe("passthrough.lua read_buf", function()
  local SIZE = 64 * MiB
  local PROBE = H.fixture("pt_probe.lua")

  -- Reads the file at `path` through the mount m in 1 MiB pieces, checking
  -- them against the file `source`; returns the probe before and after.
  local function read_through(m, source)
    local function probe()
      local s = assert(H.read(m:path(".probe")))
      return { kbytes = tonumber(s:match("kbytes=(%d+)")), reads = tonumber(s:match("reads=(%d+)")) }
    end
    local before = probe()
    local f, src = assert(io.open(m:path("big"), "rb")), assert(io.open(source, "rb"))
    local total = 0
    while true do
      local a, b = f:read(MiB), src:read(MiB)
      assert(a == b, "data differs at " .. total)
      if not a then break end
      total = total + #a
    end
    f:close()
    src:close()
    assert.are.equal(SIZE, total)
    return before, probe()
  end

  local function make_big(dir)
    local code, out = sh("head -c " .. SIZE .. " /dev/urandom > " .. H.quote(dir .. "/big"))
    assert(code == 0, out)
  end

  describe("answering with file descriptors", function()
    local fs = testing.mounted(PROBE, { once = true, scratch = true, args = { "{scratch}" } })
    it("moves 64 MiB without the Lua state's memory growing by it", function()
      make_big(fs.scratch)
      local before, after = read_through(fs, fs.scratch .. "/big")
      assert.is_true(after.reads - before.reads >= SIZE // MiB, "read_buf calls")
      local grown = after.kbytes - before.kbytes
      assert.is_true(grown < 8 * 1024, "the Lua state allocated " .. grown .. " kB")
    end)
  end)

  describe("answering with strings (the control)", function()
    local fs = testing.mounted(PROBE, { once = true, scratch = true, args = { "{scratch}", "strings" } })
    it("shows the whole file in the Lua state's allocations", function()
      make_big(fs.scratch)
      local before, after = read_through(fs, fs.scratch .. "/big")
      assert.is_true(after.kbytes - before.kbytes >= SIZE // 1024, "strings were counted")
    end)
  end)
end)

describe("passthrough.lua readdirplus", function()
  -- With names and attributes cached, entries that readdir delivered with
  -- their attributes (FUSE_FILL_DIR_PLUS) need no lookup afterwards.
  local fs = testing.mounted(H.fixture("pt_counting.lua"), { once = true, scratch = true,
    args = { "{scratch}" } })

  it("hands the kernel each entry's attributes with its name", function()
    local dir = fs.scratch .. "/d"
    H.check(sys.mkdir(dir))
    for i = 1, 50 do H.write(dir .. "/e" .. i, string.rep("x", i)) end
    H.check(sys.symlink("e1", dir .. "/link"))
    local names = H.listing(fs:path("d"))
    assert.are.equal(53, #names)
    for _, name in ipairs(names) do
      if name ~= "." and name ~= ".." then
        local got, want = sys.lstat(fs:path("d/" .. name)), sys.lstat(dir .. "/" .. name)
        assert.same({ want.ino, want.mode, want.size, want.mtime_nsec },
          { got.ino, got.mode, got.size, got.mtime_nsec }, name)
      end
    end
    local report = assert(H.read(fs:path(".counts")))
    local asked = {}
    for n, path in report:gmatch("(%d+) (%S+)") do
      if path:match("^/d/") then asked[#asked + 1] = path .. " (" .. n .. ")" end
    end
    assert.same({}, asked)
  end)
end)

describe("passthrough.lua run by root for other users", function()
  -- allow_other lets other users in; default_permissions has the kernel
  -- check their permissions, as a local filesystem does.
  local fs = testing.mounted(PASSTHROUGH, { once = true, scratch = true,
    options = { "-o", "allow_other,default_permissions" }, args = { "{scratch}" } })

  local function as_user(dir, script)
    return sh("cd " .. H.quote(dir) .. " && setpriv --reuid=4321 --regid=4322 --clear-groups sh -c "
      .. H.quote("umask 022; " .. script) .. " 2>&1")
  end

  it("gives what they create to them, and inherits set-group-ID groups", function()
    if sys.geteuid() ~= 0 then
      io.stderr:write("\npassthrough_spec: not root: skipping the owner test\n")
      pending("needs root")
      return
    end
    assert(sys.chmod(fs.m._dir, octal "755")) -- the kit's directory above the mountpoint
    assert(sys.chmod(fs.scratch, octal "777"))
    local ref = reference_dir()
    local function scenario(d)
      assert(sys.mkdir(d .. "/sg", octal "777"))
      assert(sys.chown(d .. "/sg", 0, 777))
      assert(sys.chmod(d .. "/sg", octal "2777"))
      H.write(d .. "/rootfile", "r")
      local o = {}
      o.code, o.out = as_user(d, "touch f && mkdir dir && ln -s f link && mkfifo fifo && "
        .. "cd sg && touch f && mkdir d; echo > ../rootfile")
      for _, n in ipairs { "f", "dir", "link", "fifo", "sg/f", "sg/d", "rootfile" } do
        o[n] = stat_of(d .. "/" .. n, { "uid", "gid", "mode" })
      end
      return o
    end
    local ok, err = pcall(function()
      local want, got = scenario(ref), scenario(fs.mountpoint)
      assert.same(want, got)
      assert.are.equal(4321, got.f.uid)
      assert.are.equal(777, got["sg/d"].gid)
      assert.truthy(got.out:match("Permission denied"))
    end)
    H.remove(ref)
    assert(ok, err)
  end)

  it("does so for names PATH_MAX bytes or more from the root", function()
    if sys.geteuid() ~= 0 then
      io.stderr:write("\npassthrough_spec: not root: skipping the long owner test\n")
      pending("needs root")
      return
    end
    assert(sys.chmod(fs.m._dir, octal "755"))
    assert(sys.chmod(fs.scratch, octal "777"))
    -- working directories 20 and 23 bytes below the root, then 3840 bytes
    -- of directories, then names of 240 to 250 bytes
    local dirs = {}
    for i = 1, 15 do dirs[i] = string.format("%02d", i) .. string.rep("d", 253) end
    local D = string.rep("s", 17) .. "/" .. table.concat(dirs, "/")
    local F, X, L, P = ("f"):rep(250), ("x"):rep(240), ("l"):rep(245), ("p"):rep(246)
    local ref = reference_dir()
    local function scenario(top)
      local q = H.quote
      local code, out = sh("cd " .. q(top) .. " && mkdir -m 777 lo && cd lo && mkdir -p " .. D
        .. " && chmod 777 " .. D .. " && mkdir sg && chown 0:777 sg && chmod 2777 sg"
        .. " && mkdir -p sg/" .. D .. " && chmod 2777 sg/" .. D .. " 2>&1")
      assert(code == 0, out)
      local list = " && stat -c '%u %g %a %F' "
      local o = {}
      o.code, o.out = as_user(top .. "/lo", "(cd " .. D .. " && touch " .. F .. " && mkdir " .. X
        .. " && ln -s f " .. L .. " && mkfifo " .. P .. list .. table.concat({ F, X, L, P }, " ")
        .. ") && (cd sg/" .. D .. " && touch " .. F .. " && mkdir " .. X .. list .. F .. " " .. X .. ")")
      return o
    end
    local ok, err = pcall(function()
      local want, got = scenario(ref), scenario(fs.mountpoint)
      assert.same(want, got)
      assert.same({ "4321 4322 644 regular empty file", "4321 4322 755 directory",
        "4321 4322 777 symbolic link", "4321 4322 644 fifo", "4321 777 644 regular empty file",
        "4321 777 2755 directory" }, H.lines(got.out))
    end)
    H.remove(ref)
    assert(ok, err)
  end)
end)
