-- spec/memfs_spec.lua: lua/examples/memfs.lua must behave like tmpfs.
--
-- Most tests are "twins": the same function runs once in a fresh directory
-- of the memfs mount and once in a fresh directory under /dev/shm (tmpfs),
-- with the same system calls, and what it observes (results, errno names,
-- stat fields, bytes, which timestamps moved) must be the same. The rest
-- check what a twin cannot: statfs against a private tmpfs of the same
-- size, files made by another user, real tools, hot reload and the pool.
local H = require "spec.helpers"
local cases = require "spec.cases"

local testing, luafs, sys, lfs = H.testing, H.luafs, H.sys, H.lfs
local octal = H.octal

local O_RDONLY, O_WRONLY, O_RDWR = luafs.O_RDONLY, luafs.O_WRONLY, luafs.O_RDWR
local O_CREAT, O_EXCL, O_TRUNC, O_APPEND = luafs.O_CREAT, luafs.O_EXCL, luafs.O_TRUNC, luafs.O_APPEND
local O_NONBLOCK = luafs.O_NONBLOCK
local SEEK_DATA, SEEK_HOLE = luafs.SEEK_DATA, luafs.SEEK_HOLE
local AT_FDCWD, NOFOLLOW = luafs.AT_FDCWD, luafs.AT_SYMLINK_NOFOLLOW
local GiB, MiB = 1 << 30, 1 << 20

local MEMFS = H.example("memfs.lua")
local E = H.err
local q = H.quote

-- The fields of lstat(path) that memfs and tmpfs agree on.
local STAT_FIELDS = { "mode", "nlink", "size", "uid", "gid", "rdev", "blocks", "blksize" }
local function stat_of(path, fields)
  local st, _, e = sys.lstat(path)
  if not st then return H.errname(e) end
  local t = {}
  for _, k in ipairs(fields or STAT_FIELDS) do t[k] = st[k] end
  return t
end

local function sh(cmd) return H.shell(cmd) end

-- "OK" or the errno name of open(path, flags, mode); closes what it opened.
local function EO(path, flags, mode)
  local fd, _, e = sys.open(path, flags, mode)
  if not fd then return H.errname(e) end
  sys.close(fd)
  return "OK"
end

local function run(cmd)
  local code, out = sh(cmd)
  assert(code == 0, "failed (" .. code .. "): " .. cmd .. "\n" .. out)
  return out
end

-- tmpfs takes its timestamps from a clock that ticks every few ms: wait
-- longer than that between steps whose times are compared.
local function tick() H.sleep(0.02) end

describe("memfs.lua", function()
  local fs = testing.mounted(MEMFS, { once = true })
  local ref
  local seq = 0

  setup(function()
    ref = H.shm_dir()
    assert(sys.chmod(ref, octal "755"))
  end)
  teardown(function() if ref then H.remove(ref) end end)

  -- twin(f): f(dir) runs in a fresh directory of the mount and in a fresh
  -- directory of tmpfs; both runs must return the same value.
  local function twin(f)
    seq = seq + 1
    local name = "t" .. seq
    local mdir, rdir = fs:path(name), ref .. "/" .. name
    H.check(sys.mkdir(mdir))
    H.check(sys.mkdir(rdir))
    local got = f(mdir)
    local want = f(rdir)
    assert.same(want, got)
    return got
  end

  describe("regular files", function()
    it("creates, writes, appends and reads, with tmpfs's errors", function()
      twin(function(d)
        local o = {}
        H.write(d .. "/f", "hello")
        o.read = H.read(d .. "/f")
        H.write(d .. "/f", " world", "ab")
        o.appended = H.read(d .. "/f")
        local fd = H.check(sys.open(d .. "/f", O_WRONLY | O_APPEND))
        o.pwrite_append = sys.pwrite(fd, "<tail>", 0)
        o.read_wronly = E(sys.pread, fd, 1, 0)
        sys.close(fd)
        o.after = H.read(d .. "/f")
        o.excl = EO(d .. "/f", O_WRONLY | O_CREAT | O_EXCL, octal "644")
        o.missing = EO(d .. "/nope", O_RDONLY)
        o.in_missing_dir = EO(d .. "/nope/f", O_WRONLY | O_CREAT, octal "644")
        o.under_file = EO(d .. "/f/x", O_RDONLY)
        o.create_under_file = EO(d .. "/f/x", O_WRONLY | O_CREAT, octal "644")
        o.dir_for_write = EO(d, O_WRONLY)
        o.dir_create = EO(d, O_WRONLY | O_CREAT, octal "644")
        o.too_long = EO(d .. "/" .. string.rep("n", 256), O_WRONLY | O_CREAT, octal "644")
        o.longest = EO(d .. "/" .. string.rep("n", 255), O_WRONLY | O_CREAT, octal "644")
        fd = H.check(sys.open(d .. "/f", O_RDWR | O_TRUNC))
        o.truncated = sys.fstat(fd).size
        o.write_read = { sys.pwrite(fd, "abc", 0), sys.pread(fd, 10, 0), sys.pread(fd, 10, 3) }
        sys.close(fd)
        o.new_mode = EO(d .. "/m", O_WRONLY | O_CREAT | O_EXCL, octal "4750")
        o.stat = stat_of(d .. "/f")
        o.m = stat_of(d .. "/m")
        o.listing = H.listing(d)
        return o
      end)
    end)

    it("keeps binary data with NUL bytes, and files over 1 MiB, intact", function()
      local data = H.bytes(3 * MiB + 123, 7) .. "\0\0tail\0"
      twin(function(d)
        H.write(d .. "/bin", data)
        H.assert_same_bytes(data, H.read(d .. "/bin"), "read back in " .. d)
        local fd = H.check(sys.open(d .. "/bin", O_RDWR))
        local o = {
          mid = sys.pread(fd, 10, 2 * MiB + 5),
          write = sys.pwrite(fd, "\0x\0y\0", MiB - 2),
          around = sys.pread(fd, 9, MiB - 4),
          across_chunks = sys.pread(fd, 200000, 65536 - 7) == data:sub(65536 - 6, 65536 - 7 + 200000),
          past_end = sys.pread(fd, 10, 10 * MiB),
          at_end = sys.pread(fd, 10, #data - 3),
          size = sys.fstat(fd).size,
          blocks = sys.fstat(fd).blocks,
        }
        sys.close(fd)
        local back = H.read(d .. "/bin")
        o.whole = back == data:sub(1, MiB - 2) .. "\0x\0y\0" .. data:sub(MiB + 4)
        return o
      end)
    end)

    it("writes sparsely, past 4 GiB, and finds data and holes", function()
      twin(function(d)
        local fd = H.check(sys.open(d .. "/sparse", O_RDWR | O_CREAT, octal "644"))
        local o = { w1 = sys.pwrite(fd, "x", 5 * GiB), w2 = sys.pwrite(fd, "yy", MiB + 4095) }
        local st = sys.fstat(fd)
        o.size, o.blocks = st.size, st.blocks
        o.seeks = {}
        local offsets = { 0, 4096, MiB, MiB + 100, MiB + 4096, MiB + 5000, MiB + 8192,
          5 * GiB - 1, 5 * GiB, 5 * GiB + 1 }
        for _, off in ipairs(offsets) do
          local data, _, e1 = sys.lseek(fd, off, SEEK_DATA)
          local hole, _, e2 = sys.lseek(fd, off, SEEK_HOLE)
          o.seeks[#o.seeks + 1] = { off, data or H.errname(e1), hole or H.errname(e2) }
        end
        o.far = sys.pread(fd, 3, 5 * GiB - 1)
        o.hole = sys.pread(fd, 4, 4 * GiB)
        o.mid = sys.pread(fd, 4, MiB + 4094)
        sys.close(fd)
        fd = H.check(sys.open(d .. "/empty", O_RDWR | O_CREAT, octal "644"))
        o.empty_data = E(sys.lseek, fd, 0, SEEK_DATA)
        o.empty_hole = E(sys.lseek, fd, 0, SEEK_HOLE)
        sys.close(fd)
        return o
      end)
    end)

    it("truncates up and down, by name and by descriptor", function()
      twin(function(d)
        H.write(d .. "/f", H.bytes(20000, 3))
        local o = {}
        o.down = E(sys.truncate, d .. "/f", 5000)
        o.after_down = { H.read(d .. "/f"), stat_of(d .. "/f") }
        o.up = E(sys.truncate, d .. "/f", 3 * 4096 + 1)
        o.after_up = { H.read(d .. "/f"), stat_of(d .. "/f") }
        local fd = H.check(sys.open(d .. "/f", O_RDWR))
        o.by_fd = E(sys.ftruncate, fd, 8)
        o.write_past = sys.pwrite(fd, "Z", 100)
        o.fd_read = sys.pread(fd, 200, 0)
        o.zero = E(sys.ftruncate, fd, 0)
        o.zero_stat = { sys.fstat(fd).size, sys.fstat(fd).blocks }
        o.negative = E(sys.ftruncate, fd, -1)
        sys.close(fd)
        fd = H.check(sys.open(d .. "/f", O_RDONLY))
        o.readonly_fd = E(sys.ftruncate, fd, 1)
        sys.close(fd)
        o.missing = E(sys.truncate, d .. "/nope", 1)
        o.dir = E(sys.truncate, d, 1)
        return o
      end)
    end)

    it("allocates with fallocate, and refuses the modes tmpfs refuses", function()
      twin(function(d)
        local fd = H.check(sys.open(d .. "/f", O_RDWR | O_CREAT, octal "644"))
        H.check(sys.pwrite(fd, string.rep("a", 3 * 4096), 0))
        local o = {}
        local function st() local s = sys.fstat(fd) return { s.size, s.blocks } end
        o.plain = E(sys.fallocate, fd, 0, 0, 8 * 4096)
        o.after_plain = st()
        o.keep = E(sys.fallocate, fd, luafs.FALLOC_FL_KEEP_SIZE, 8 * 4096, 8 * 4096)
        o.after_keep = st()
        o.allocated_is_hole = { sys.lseek(fd, 3 * 4096, SEEK_DATA) or "ENXIO", sys.lseek(fd, 0, SEEK_HOLE) }
        -- a truncation to the same size frees what lies past the end
        o.past_end = E(sys.fallocate, fd, luafs.FALLOC_FL_KEEP_SIZE, 20 * 4096, 4096)
        o.after_past_end = st()
        o.same_size = E(sys.ftruncate, fd, 8 * 4096)
        o.after_same_size = st()
        o.punch = E(sys.fallocate, fd, luafs.FALLOC_FL_PUNCH_HOLE | luafs.FALLOC_FL_KEEP_SIZE, 4096, 4096)
        o.punch_part = E(sys.fallocate, fd, luafs.FALLOC_FL_PUNCH_HOLE | luafs.FALLOC_FL_KEEP_SIZE, 2 * 4096 + 10, 20)
        o.after_punch = st()
        o.punched = sys.pread(fd, 4096, 4096) == string.rep("\0", 4096)
        o.part = sys.pread(fd, 40, 2 * 4096)
        o.kept = sys.pread(fd, 4096, 0) == string.rep("a", 4096)
        o.hole_at = sys.lseek(fd, 0, SEEK_HOLE)
        o.punch_without_keep = E(sys.fallocate, fd, luafs.FALLOC_FL_PUNCH_HOLE, 0, 4096)
        o.zero_range = E(sys.fallocate, fd, luafs.FALLOC_FL_ZERO_RANGE, 0, 4096)
        o.collapse = E(sys.fallocate, fd, luafs.FALLOC_FL_COLLAPSE_RANGE, 0, 4096)
        o.bad_len = E(sys.fallocate, fd, 0, 0, 0)
        o.contents = sys.pread(fd, 11 * 4096, 0):gsub("a+", "a"):gsub("%z+", "0")
        sys.close(fd)
        return o
      end)
    end)

    it("keeps a file unlinked while open readable and writable through its fd", function()
      twin(function(d)
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
        o.listing_open = H.listing(d)
        f:close()
        o.listing = H.listing(d)
        o.rmdir = E(sys.rmdir, d)
        H.check(sys.mkdir(d))
        return o
      end)
    end)

    it("syncs files and directories", function() twin(cases.sync) end)
  end)

  --[[ A file that is open after its last name is gone: every call on the
  descriptor works as on tmpfs, st_nlink 0 included, and the file leaves
  no trace in its directory. ]]
  describe("files open after their name is gone", function()
    -- The fields of fstat(fd) that memfs and tmpfs agree on.
    local function fstat_of(fd, fields)
      local st, _, e = sys.fstat(fd)
      if not st then return H.errname(e) end
      local t = {}
      for _, k in ipairs(fields or STAT_FIELDS) do t[k] = st[k] end
      return t
    end
    local TIMES = { "atime", "atime_nsec", "mtime", "mtime_nsec" }

    it("answers fstat, fchmod, fchown, futimens, xattrs, lseek and fstatvfs", function()
      twin(function(d)
        local fd = H.check(sys.open(d .. "/gone", O_RDWR | O_CREAT, octal "640"))
        H.check(sys.pwrite(fd, H.bytes(3 * 4096 + 5, 4), 8192))
        H.check(sys.fsetxattr(fd, "user.before", "set while named"))
        local o = { unlink = E(sys.unlink, d .. "/gone") }
        o.stat = fstat_of(fd)
        o.chmod = E(sys.fchmod, fd, octal "4711")
        o.chown = E(sys.fchown, fd, 1234, 5678)
        o.owner = fstat_of(fd, { "uid", "gid", "mode", "nlink" })
        o.utimens = E(sys.futimens, fd, 1000000000, 123456789, 2000000000, 987654321)
        o.times = fstat_of(fd, TIMES)
        o.now = E(sys.futimens, fd, 0, luafs.UTIME_OMIT, 0, luafs.UTIME_NOW)
        local st = sys.fstat(fd)
        o.now_is_now = st ~= nil and st.mtime >= sys.clock_gettime() - 5 and st.atime == 1000000000
        o.get = sys.fgetxattr(fd, "user.before")
        o.set = E(sys.fsetxattr, fd, "user.after", "set while nameless")
        o.create_existing = E(sys.fsetxattr, fd, "user.after", "again", luafs.XATTR_CREATE)
        local names = sys.flistxattr(fd)
        if names then table.sort(names) end
        o.list = names
        o.remove = E(sys.fremovexattr, fd, "user.before")
        o.removed = E(sys.fgetxattr, fd, "user.before")
        o.data = { sys.lseek(fd, 0, SEEK_DATA) or "fail", sys.lseek(fd, 8192, SEEK_HOLE) or "fail" }
        o.past_end = E(sys.lseek, fd, 1 << 20, SEEK_DATA)
        o.statvfs = E(sys.fstatvfs, fd)
        o.truncate = E(sys.ftruncate, fd, 100)
        o.allocate = E(sys.fallocate, fd, 0, 0, 5 * 4096)
        o.after = fstat_of(fd)
        o.write = sys.pwrite(fd, "tail", 5 * 4096)
        o.read = sys.pread(fd, 10, 5 * 4096 - 3)
        o.sync = { E(sys.fsync, fd), E(sys.fdatasync, fd) }
        o.listing = H.listing(d)
        sys.close(fd)
        o.rmdir = E(sys.rmdir, d)
        H.check(sys.mkdir(d))
        return o
      end)
    end)

    it("moves the times of the file and of its directory as tmpfs does", function()
      local function times(st)
        return { a = { st.atime, st.atime_nsec }, m = { st.mtime, st.mtime_nsec }, c = { st.ctime, st.ctime_nsec } }
      end
      local function moved(before, after)
        local s = ""
        for _, k in ipairs { "a", "m", "c" } do
          if before[k][1] ~= after[k][1] or before[k][2] ~= after[k][2] then s = s .. k end
        end
        return s == "" and "-" or s
      end
      twin(function(d)
        local fd = H.check(sys.open(d .. "/f", O_RDWR | O_CREAT, octal "600"))
        H.check(sys.pwrite(fd, "data", 0))
        local o = {}
        local function step(name, f)
          local file, dir = times(H.check(sys.fstat(fd))), times(H.check(sys.lstat(d)))
          tick()
          f()
          o[#o + 1] = name .. " file:" .. moved(file, times(H.check(sys.fstat(fd))))
            .. " dir:" .. moved(dir, times(H.check(sys.lstat(d))))
        end
        step("unlink", function() H.check(sys.unlink(d .. "/f")) end)
        step("pwrite", function() H.check(sys.pwrite(fd, "more", 4)) end)
        step("fchmod", function() H.check(sys.fchmod(fd, octal "640")) end)
        step("fsetxattr", function() H.check(sys.fsetxattr(fd, "user.k", "v")) end)
        step("ftruncate", function() H.check(sys.ftruncate(fd, 2)) end)
        sys.close(fd)
        return o
      end)
    end)

    it("reopens through /proc/self/fd but cannot be linked back", function()
      twin(function(d)
        local fd = H.check(sys.open(d .. "/gone", O_RDWR | O_CREAT, octal "600"))
        H.check(sys.pwrite(fd, "contents", 0))
        H.check(sys.unlink(d .. "/gone"))
        local proc = "/proc/self/fd/" .. fd
        local again, _, e = sys.open(proc, O_RDONLY)
        local o = { reopen = again and "OK" or H.errname(e) }
        if again then
          o.reread = sys.pread(again, 100, 0)
          o.stat = fstat_of(again)
          sys.close(again)
        end
        o.link = E(sys.linkat, AT_FDCWD, proc, AT_FDCWD, d .. "/back", luafs.AT_SYMLINK_FOLLOW)
        o.listing = H.listing(d)
        sys.close(fd)
        return o
      end)
    end)

    -- Once the directory is gone too, libfuse has no path for the file,
    -- and the calls that it makes only by path fail: fstat, fchmod,
    -- lseek, the xattr calls, fstatvfs (memfs.lua's header says so).
    it("lets the directory that held it be removed", function()
      local by_path = {}
      twin(function(d)
        H.check(sys.mkdir(d .. "/sub"))
        local fd = H.check(sys.open(d .. "/sub/gone", O_RDWR | O_CREAT, octal "600"))
        H.check(sys.pwrite(fd, "kept", 0))
        local o = { unlink = E(sys.unlink, d .. "/sub/gone") }
        o.sub = stat_of(d .. "/sub")
        o.rmdir = E(sys.rmdir, d .. "/sub")
        o.read = sys.pread(fd, 10, 0)
        o.write = sys.pwrite(fd, "more", 4)
        o.reread = sys.pread(fd, 10, 0)
        o.truncate = E(sys.ftruncate, fd, 2)
        o.listing = H.listing(d)
        by_path[d:sub(1, #ref) == ref and "tmpfs" or "memfs"] = { E(sys.fstat, fd), E(sys.fchmod, fd, octal "644"),
          E(sys.lseek, fd, 0, SEEK_DATA), E(sys.fsetxattr, fd, "user.x", "y"), E(sys.fstatvfs, fd),
          E(sys.fallocate, fd, 0, 0, 4096), E(sys.fsync, fd) }
        sys.close(fd)
        return o
      end)
      assert.same({ tmpfs = { "OK", "OK", "OK", "OK", "OK", "OK", "OK" },
        memfs = { "ESTALE", "ESTALE", "ESTALE", "ESTALE", "ESTALE", "OK", "OK" } }, by_path)
    end)

    it("keeps count of the links of an open file that loses one name", function()
      twin(function(d)
        H.write(d .. "/a", "linked")
        H.check(sys.link(d .. "/a", d .. "/b"))
        local fa = H.check(sys.open(d .. "/a", O_RDWR))
        local fb = H.check(sys.open(d .. "/b", O_RDONLY))
        local o = { unlink_a = E(sys.unlink, d .. "/a") }
        o.by_a = fstat_of(fa)
        o.by_b = fstat_of(fb)
        o.b = stat_of(d .. "/b")
        o.chmod = E(sys.fchmod, fa, octal "604")
        o.b_mode = stat_of(d .. "/b").mode
        H.check(sys.pwrite(fa, "LINKED", 0))
        o.b_data = H.read(d .. "/b")
        o.link = E(sys.link, d .. "/b", d .. "/c")
        o.by_a_again = fstat_of(fa)
        o.unlink_b = E(sys.unlink, d .. "/b")
        o.unlink_c = E(sys.unlink, d .. "/c")
        o.last = { fstat_of(fa), fstat_of(fb) }
        o.listing = H.listing(d)
        sys.close(fa)
        sys.close(fb)
        return o
      end)
    end)

    it("keeps the file that a rename replaced open", function()
      twin(function(d)
        H.write(d .. "/old", "the old file")
        H.write(d .. "/new", "the new one")
        local fd = H.check(sys.open(d .. "/old", O_RDWR))
        local o = { rename = E(sys.rename, d .. "/new", d .. "/old") }
        o.stat = fstat_of(fd)
        o.read = sys.pread(fd, 100, 0)
        o.chmod = E(sys.fchmod, fd, octal "600")
        o.name = { H.read(d .. "/old"), stat_of(d .. "/old") }
        o.listing = H.listing(d)
        o.dir = stat_of(d)
        sys.close(fd)
        return o
      end)
    end)
  end)

  describe("names", function()
    it("makes and removes directories with the sizes, link counts and errors of tmpfs", function()
      twin(function(d)
        local o = {}
        o.mkdir = E(sys.mkdir, d .. "/sub", octal "750")
        o.sticky = E(sys.mkdir, d .. "/sticky", octal "1777")
        o.sub = stat_of(d .. "/sub")
        o.sticky_stat = stat_of(d .. "/sticky")
        o.parent = stat_of(d)
        o.again = E(sys.mkdir, d .. "/sub")
        o.over_file = (H.write(d .. "/file", "x")) or E(sys.mkdir, d .. "/file")
        o.under_file = E(sys.mkdir, d .. "/file/x")
        o.missing_parent = E(sys.mkdir, d .. "/nope/x")
        o.too_long = E(sys.mkdir, d .. "/" .. string.rep("d", 256))
        H.write(d .. "/sub/f", "x")
        H.check(sys.mkdir(d .. "/sub/inner"))
        o.full = stat_of(d .. "/sub")
        o.nonempty = E(sys.rmdir, d .. "/sub")
        o.unlink_dir = E(sys.unlink, d .. "/sub")
        o.rmdir_file = E(sys.rmdir, d .. "/sub/f")
        o.rmdir_dot = E(sys.rmdir, d .. "/sub/.")
        o.rmdir_dotdot = E(sys.rmdir, d .. "/sub/inner/..")
        o.unlink = E(sys.unlink, d .. "/sub/f")
        o.rmdir_inner = E(sys.rmdir, d .. "/sub/inner")
        o.emptied = stat_of(d .. "/sub")
        o.rmdir = E(sys.rmdir, d .. "/sub")
        o.missing = E(sys.rmdir, d .. "/sub")
        o.parent_after = stat_of(d)
        o.listing = H.listing(d)
        return o
      end)
    end)

    it("lists directories, empty ones included, with the types of their entries", function()
      twin(function(d)
        H.write(d .. "/file", "x")
        H.check(sys.mkdir(d .. "/dir"))
        H.check(sys.mkdir(d .. "/empty"))
        H.check(sys.symlink("file", d .. "/link"))
        H.check(sys.mknod(d .. "/fifo", luafs.S_IFIFO | octal "644", 0))
        local o = { names = H.listing(d), modes = {}, empty = H.listing(d .. "/empty") }
        for _, n in ipairs(o.names) do
          o.modes[n] = lfs.symlinkattributes(d .. "/" .. n, "mode")
        end
        local dir = H.check(sys.opendir(d .. "/empty"))
        local names = {}
        for name in dir.read, dir do names[#names + 1] = name end
        dir:close()
        table.sort(names)
        o.raw_empty = names
        o.not_dir = E(sys.opendir, d .. "/file")
        return o
      end)
    end)

    it("makes hard links with the right link counts", function()
      twin(function(d)
        H.write(d .. "/f", "data")
        local o = {}
        o.link = E(sys.link, d .. "/f", d .. "/h")
        H.check(sys.mkdir(d .. "/sub"))
        o.link2 = E(sys.link, d .. "/h", d .. "/sub/h2")
        o.nlinks = { stat_of(d .. "/f").nlink, stat_of(d .. "/h").nlink, stat_of(d .. "/sub/h2").nlink }
        o.same_ino = sys.lstat(d .. "/f").ino == sys.lstat(d .. "/sub/h2").ino
        H.write(d .. "/h", "changed through h")
        o.f = H.read(d .. "/f")
        o.f_stat = stat_of(d .. "/f")
        assert(sys.chmod(d .. "/sub/h2", octal "600"))
        o.mode_via_f = stat_of(d .. "/f").mode
        o.link_exists = E(sys.link, d .. "/f", d .. "/h")
        o.link_dir = E(sys.link, d .. "/sub", d .. "/dlink")
        o.link_missing = E(sys.link, d .. "/nope", d .. "/x")
        o.link_into_missing = E(sys.link, d .. "/f", d .. "/nope/x")
        o.link_too_long = E(sys.link, d .. "/f", d .. "/" .. string.rep("l", 256))
        H.check(sys.symlink("f", d .. "/s"))
        o.link_symlink = E(sys.linkat, AT_FDCWD, d .. "/s", AT_FDCWD, d .. "/s2", 0)
        o.s2 = { stat_of(d .. "/s2"), sys.readlink(d .. "/s2") }
        o.unlink = E(sys.unlink, d .. "/h")
        o.after_unlink = { stat_of(d .. "/f").nlink, stat_of(d .. "/sub/h2").nlink }
        o.unlink2 = E(sys.unlink, d .. "/f")
        o.last = { stat_of(d .. "/sub/h2"), H.read(d .. "/sub/h2") }
        return o
      end)
    end)

    it("makes symlinks, short and long, and reads them", function()
      local long = string.rep("t/", 1500) .. "end"
      twin(function(d)
        H.write(d .. "/f", "data")
        local o = {}
        o.symlink = E(sys.symlink, "f", d .. "/s")
        o.readlink = sys.readlink(d .. "/s")
        o.through = H.read(d .. "/s")
        o.s = stat_of(d .. "/s")
        o.s127 = E(sys.symlink, string.rep("x", 127), d .. "/s127")
        o.s128 = E(sys.symlink, string.rep("x", 128), d .. "/s128")
        o.sizes = { stat_of(d .. "/s127"), stat_of(d .. "/s128") }
        o.long = E(sys.symlink, long, d .. "/long")
        o.long_back = sys.readlink(d .. "/long") == long
        o.too_long = E(sys.symlink, string.rep("x", 4096), d .. "/huge")
        o.dangling = E(sys.symlink, "nowhere", d .. "/dangle")
        o.dangling_read = EO(d .. "/dangle", O_RDONLY)
        o.create_through = EO(d .. "/dangle", O_WRONLY | O_CREAT, octal "600")
        o.created = H.read(d .. "/nowhere")
        o.readlink_file = E(sys.readlink, d .. "/f")
        o.symlink_exists = E(sys.symlink, "x", d .. "/f")
        o.loop = E(sys.symlink, "loop", d .. "/loop")
        o.loop_open = EO(d .. "/loop", O_RDONLY)
        o.nofollow = EO(d .. "/s", O_RDONLY | luafs.O_NOFOLLOW)
        o.to_dir = E(sys.symlink, ".", d .. "/self")
        o.via_dir = H.read(d .. "/self/self/f")
        return o
      end)
    end)

    it("makes FIFOs, sockets and device nodes", function()
      twin(function(d)
        local o = {}
        o.fifo = E(sys.mknod, d .. "/fifo", luafs.S_IFIFO | octal "640", 0)
        o.fifo_stat = stat_of(d .. "/fifo")
        local fd = H.check(sys.open(d .. "/fifo", O_RDWR | O_NONBLOCK))
        o.write = sys.write(fd, "through the pipe")
        o.read = sys.read(fd, 100)
        o.empty = E(sys.read, fd, 100)
        sys.close(fd)
        o.mkfifo = E(sys.mkfifo, d .. "/fifo2", octal "600")
        o.chr = E(sys.mknod, d .. "/null", luafs.S_IFCHR | octal "666", (1 << 8) | 3)
        o.chr_stat = stat_of(d .. "/null")
        o.blk = E(sys.mknod, d .. "/blk", luafs.S_IFBLK | octal "600", (7 << 8) | 200)
        o.blk_stat = stat_of(d .. "/blk")
        o.sock = E(sys.mknod, d .. "/sock", luafs.S_IFSOCK | octal "600", 0)
        o.sock_stat = stat_of(d .. "/sock")
        o.reg = E(sys.mknod, d .. "/reg", luafs.S_IFREG | octal "600", 0)
        o.reg_stat = stat_of(d .. "/reg")
        o.exists = E(sys.mknod, d .. "/reg", luafs.S_IFIFO | octal "600", 0)
        o.truncate_fifo = E(sys.truncate, d .. "/fifo", 0)
        return o
      end)
    end)

    it("renames files and directories in all their forms", function()
      twin(function(d)
        local function R(a, b, fl) return E(sys.rename, d .. "/" .. a, d .. "/" .. b, fl) end
        H.write(d .. "/a", "A")
        H.write(d .. "/b", "B")
        H.check(sys.mkdir(d .. "/dir"))
        H.write(d .. "/dir/inside", "I")
        H.check(sys.mkdir(d .. "/empty"))
        H.check(sys.mkdir(d .. "/full"))
        H.write(d .. "/full/x", "X")
        H.check(sys.mkdir(d .. "/other"))
        local o = {}
        o.over_file = R("a", "b")
        o.b = H.read(d .. "/b")
        o.a = E(sys.lstat, d .. "/a")
        o.to_new = R("b", "c")
        o.into_dir = R("c", "other/c")
        o.back = R("other/c", "c")
        o.dir_over_empty = R("dir", "empty")
        o.moved_inside = H.read(d .. "/empty/inside")
        o.dir_over_full = R("empty", "full")
        o.dir_over_file = R("empty", "c")
        o.file_over_dir = R("c", "full")
        o.into_itself = R("empty", "empty/sub")
        o.into_subtree = (H.check(sys.mkdir(d .. "/empty/deeper"))) and R("empty", "empty/deeper/x")
        o.parent_into_child = R("empty/deeper", "empty/deeper/y")
        o.onto_itself = R("c", "c")
        o.dir_onto_itself = R("full", "full")
        o.onto_ancestor = R("empty/deeper", "empty")
        o.missing = R("nope", "x")
        o.into_missing = R("c", "nope/x")
        o.under_file = R("c", "c/x")
        o.too_long = R("c", string.rep("r", 256))
        H.check(sys.link(d .. "/c", d .. "/c_link"))
        o.onto_own_link = R("c", "c_link")
        o.links_stay = { E(sys.lstat, d .. "/c"), stat_of(d .. "/c_link").nlink }
        o.dir_across = R("empty", "other/moved")
        o.nlinks = { stat_of(d).nlink, stat_of(d .. "/other").nlink, stat_of(d .. "/other/moved").nlink }
        o.dot = R("other/.", "x")
        o.listing = { H.listing(d), H.listing(d .. "/other"), H.listing(d .. "/other/moved") }
        o.stats = { stat_of(d), stat_of(d .. "/other"), stat_of(d .. "/full") }
        return o
      end)
    end)

    it("renames with RENAME_NOREPLACE, RENAME_EXCHANGE and RENAME_WHITEOUT", function()
      local NOREPLACE, EXCHANGE, WHITEOUT = luafs.RENAME_NOREPLACE, luafs.RENAME_EXCHANGE, luafs.RENAME_WHITEOUT
      twin(function(d)
        local function R(a, b, fl) return E(sys.rename, d .. "/" .. a, d .. "/" .. b, fl) end
        H.write(d .. "/a", "A")
        H.write(d .. "/b", "B")
        H.check(sys.mkdir(d .. "/dir"))
        H.write(d .. "/dir/inside", "I")
        H.check(sys.mkdir(d .. "/dir2"))
        H.check(sys.mkdir(d .. "/dir2/sub"))
        local o = {}
        o.noreplace_existing = R("a", "b", NOREPLACE)
        o.noreplace_dir = R("dir", "dir2", NOREPLACE)
        o.noreplace_new = R("a", "c", NOREPLACE)
        o.exchange = R("c", "b", EXCHANGE)
        o.c, o.b = H.read(d .. "/c"), H.read(d .. "/b")
        o.exchange_missing = R("c", "nope", EXCHANGE)
        o.exchange_file_dir = R("c", "dir", EXCHANGE)
        o.c_is_dir = H.read(d .. "/c/inside")
        o.dir_is_file = H.read(d .. "/dir")
        -- a file and a directory change parents: both link counts move
        o.exchange_across = R("dir", "dir2/sub", EXCHANGE)
        o.nlinks = { stat_of(d).nlink, stat_of(d .. "/dir2").nlink, stat_of(d .. "/dir").nlink }
        o.kinds = { stat_of(d .. "/dir").mode, stat_of(d .. "/dir2/sub").mode }
        o.exchange_into_itself = R("dir", "dir/x", EXCHANGE)
        o.exchange_with_child = R("dir2", "dir2/sub", EXCHANGE)
        o.both_flags = R("b", "dir", NOREPLACE | EXCHANGE)
        o.exchange_whiteout = R("b", "dir", EXCHANGE | WHITEOUT)
        o.bad_flag = R("b", "z", 1 << 7)
        o.whiteout = R("b", "w", WHITEOUT)
        o.whiteout_left = stat_of(d .. "/b")
        o.w = H.read(d .. "/w")
        o.whiteout_over = R("w", "c", WHITEOUT)
        o.listing = H.listing(d)
        o.sizes = { stat_of(d).size, stat_of(d .. "/dir2").size }
        return o
      end)
    end)

    it("refuses to rename or link across filesystems with EXDEV", function()
      H.write(fs:path("xdev"), "x")
      H.write(ref .. "/xdev", "x")
      assert.are.equal("EXDEV", E(sys.rename, fs:path("xdev"), ref .. "/moved"))
      assert.are.equal("EXDEV", E(sys.rename, ref .. "/xdev", fs:path("moved")))
      assert.are.equal("EXDEV", E(sys.link, fs:path("xdev"), ref .. "/linked"))
      assert.are.equal("EXDEV", E(sys.link, ref .. "/xdev", fs:path("linked")))
      assert.are.equal("x", H.read(fs:path("xdev")))
      -- mv copies instead
      run("mv " .. q(fs:path("xdev")) .. " " .. q(ref .. "/moved"))
      assert.are.equal("x", H.read(ref .. "/moved"))
      assert.are.equal("ENOENT", E(sys.lstat, fs:path("xdev")))
    end)
  end)

  describe("attributes", function()
    it("changes modes and owners", function()
      twin(function(d)
        H.write(d .. "/f", "x")
        H.check(sys.symlink("f", d .. "/s"))
        H.check(sys.mkdir(d .. "/dir"))
        local o = {}
        o.chmod = E(sys.chmod, d .. "/f", octal "4751")
        o.mode = stat_of(d .. "/f").mode
        o.chmod_high = E(sys.chmod, d .. "/f", octal "177777")
        o.mode_high = stat_of(d .. "/f").mode
        o.chmod_dir = E(sys.chmod, d .. "/dir", octal "3700")
        o.dir_mode = stat_of(d .. "/dir").mode
        -- (the kernel's FUSE module drops the sticky bit too when chown
        -- clears set-user-ID and set-group-ID: see memfs.lua's header)
        o.chmod_s = E(sys.chmod, d .. "/f", octal "6755")
        o.chown = E(sys.chown, d .. "/f", 1234, 5678)
        o.owner = stat_of(d .. "/f", { "uid", "gid", "mode" })
        o.only_gid = E(sys.chown, d .. "/f", -1, 42)
        o.owner2 = stat_of(d .. "/f", { "uid", "gid" })
        o.lchown = E(sys.lchown, d .. "/s", 777, 888)
        o.link_owner = stat_of(d .. "/s", { "uid", "gid" })
        o.target_owner = stat_of(d .. "/f", { "uid", "gid" })
        o.lchmod = E(sys.fchmodat, AT_FDCWD, d .. "/s", octal "600", NOFOLLOW)
        local fd = H.check(sys.open(d .. "/f", O_RDONLY))
        o.fchmod = E(sys.fchmod, fd, octal "600")
        o.fchown = E(sys.fchown, fd, 5, 6)
        sys.close(fd)
        o.final = stat_of(d .. "/f", { "uid", "gid", "mode" })
        o.missing = E(sys.chmod, d .. "/nope", octal "600")
        -- a new directory in a set-group-ID directory inherits both
        assert(sys.chown(d .. "/dir", 0, 4242))
        assert(sys.chmod(d .. "/dir", octal "2775"))
        H.write(d .. "/dir/f", "x")
        H.check(sys.mkdir(d .. "/dir/sub", octal "755"))
        o.inherit = { stat_of(d .. "/dir/f"), stat_of(d .. "/dir/sub") }
        return o
      end)
    end)

    it("sets times to the nanosecond, with UTIME_NOW and UTIME_OMIT", function() twin(cases.times) end)

    --[[ Which timestamps an operation moves. Each step runs after a tick,
    then records, for every path it names, which of atime, mtime and ctime
    changed. ]]
    it("moves atime, mtime and ctime as POSIX and relatime say", function()
      local function times(p)
        local st = sys.lstat(p)
        if not st then return nil end
        return { a = { st.atime, st.atime_nsec }, m = { st.mtime, st.mtime_nsec }, c = { st.ctime, st.ctime_nsec } }
      end
      local function moved(before, after)
        if not before or not after then return "gone" end
        local s = ""
        for _, k in ipairs { "a", "m", "c" } do
          if before[k][1] ~= after[k][1] or before[k][2] ~= after[k][2] then s = s .. k end
        end
        return s == "" and "-" or s
      end
      twin(function(d)
        local o = {}
        local paths = { ".", "f", "g", "dir", "s" }
        -- moves: where the file of a path before the step is after it
        local function step(name, f, moves)
          local before = {}
          for _, p in ipairs(paths) do before[p] = times(d .. "/" .. p) end
          tick()
          f()
          local r = {}
          for _, p in ipairs(paths) do
            local b = before[p]
            local a = times(d .. "/" .. (moves and moves[p] or p))
            if b or a then r[#r + 1] = p .. ":" .. moved(b, a) end
          end
          o[#o + 1] = name .. " " .. table.concat(r, " ")
        end
        local fd
        step("create", function() H.write(d .. "/f", "data") end)
        step("read", function() H.read(d .. "/f") end)
        step("read again", function() H.read(d .. "/f") end)
        step("write", function() H.write(d .. "/f", "more", "ab") end)
        step("read after write", function() H.read(d .. "/f") end)
        step("stat", function() sys.lstat(d .. "/f") end)
        step("chmod", function() assert(sys.chmod(d .. "/f", octal "640")) end)
        step("chown", function() assert(sys.chown(d .. "/f", 1, 1)) end)
        step("read after chmod", function() H.read(d .. "/f") end)
        step("link", function() assert(sys.link(d .. "/f", d .. "/g")) end)
        step("unlink g", function() assert(sys.unlink(d .. "/g")) end)
        step("mkdir", function() assert(sys.mkdir(d .. "/dir")) end)
        step("create in dir", function() H.write(d .. "/dir/x", "") end)
        step("readdir", function() H.listing(d .. "/dir") end)
        step("readdir again", function() H.listing(d .. "/dir") end)
        step("rename", function() assert(sys.rename(d .. "/f", d .. "/g")) end, { f = "g" })
        step("rename back", function() assert(sys.rename(d .. "/g", d .. "/f")) end, { g = "f" })
        step("rename into dir", function() assert(sys.rename(d .. "/f", d .. "/dir/f")) end)
        step("rename out", function() assert(sys.rename(d .. "/dir/f", d .. "/f")) end)
        step("symlink", function() assert(sys.symlink("f", d .. "/s")) end)
        step("readlink", function() sys.readlink(d .. "/s") end)
        step("readlink again", function() sys.readlink(d .. "/s") end)
        step("setxattr", function() assert(sys.lsetxattr(d .. "/f", "user.k", "v")) end)
        step("getxattr", function() sys.lgetxattr(d .. "/f", "user.k") end)
        step("removexattr", function() assert(sys.lremovexattr(d .. "/f", "user.k")) end)
        step("truncate same size", function() assert(sys.truncate(d .. "/f", 8)) end)
        step("truncate", function() assert(sys.truncate(d .. "/f", 3)) end)
        step("open", function() fd = assert(sys.open(d .. "/f", O_RDWR)) end)
        step("ftruncate same size", function() assert(sys.ftruncate(fd, 3)) end)
        step("pwrite nothing", function() assert(sys.pwrite(fd, "", 0)) end)
        step("close", function() sys.close(fd) end)
        step("open O_TRUNC", function() sys.close(assert(sys.open(d .. "/f", O_WRONLY | O_TRUNC))) end)
        step("open O_TRUNC empty", function() sys.close(assert(sys.open(d .. "/f", O_WRONLY | O_TRUNC))) end)
        step("write again", function() H.write(d .. "/f", "data") end)
        step("utimens", function() assert(sys.utimensat(AT_FDCWD, d .. "/f", 10, 0, 20, 0)) end)
        step("read old atime", function() H.read(d .. "/f") end)
        step("touch", function() assert(sys.utimensat(AT_FDCWD, d .. "/f", 0, luafs.UTIME_NOW, 0, luafs.UTIME_NOW)) end)
        step("utimens omit", function()
          assert(sys.utimensat(AT_FDCWD, d .. "/f", 0, luafs.UTIME_OMIT, 0, luafs.UTIME_OMIT))
        end)
        step("utimens future", function()
          local now = sys.clock_gettime()
          assert(sys.utimensat(AT_FDCWD, d .. "/f", now + 1000, 0, now + 2000, 0))
        end)
        step("read future atime", function() H.read(d .. "/f") end)
        step("mknod", function() assert(sys.mknod(d .. "/g", luafs.S_IFIFO | octal "600", 0)) end)
        local swap = { f = "g", g = "f" }
        step("exchange", function() assert(sys.rename(d .. "/f", d .. "/g", luafs.RENAME_EXCHANGE)) end, swap)
        step("exchange back", function() assert(sys.rename(d .. "/f", d .. "/g", luafs.RENAME_EXCHANGE)) end, swap)
        step("rename over", function() assert(sys.rename(d .. "/f", d .. "/g")) end)
        step("rmdir", function()
          assert(sys.unlink(d .. "/dir/x"))
          assert(sys.rmdir(d .. "/dir"))
        end)
        return o
      end)
    end)

    it("keeps extended attributes, binary values included, with tmpfs's errors", function()
      local XC, XR = luafs.XATTR_CREATE, luafs.XATTR_REPLACE
      local big = H.bytes(65536, 9)
      twin(function(d)
        H.write(d .. "/f", "x")
        H.check(sys.mkdir(d .. "/dir"))
        H.check(sys.symlink("f", d .. "/s"))
        H.check(sys.mkfifo(d .. "/fifo", octal "644"))
        local o = {}
        o.set = E(sys.lsetxattr, d .. "/f", "user.plain", "value")
        o.bin = E(sys.lsetxattr, d .. "/f", "user.bin", "a\0b\0\255")
        o.big = E(sys.lsetxattr, d .. "/f", "user.big", big)
        o.too_big = E(sys.lsetxattr, d .. "/f", "user.huge", big .. "x")
        o.empty = E(sys.lsetxattr, d .. "/f", "user.empty", "")
        o.odd_name = E(sys.lsetxattr, d .. "/f", "user.a b\1\255=", "odd")
        o.long_name = E(sys.lsetxattr, d .. "/f", "user." .. string.rep("n", 250), "v")
        o.too_long_name = E(sys.lsetxattr, d .. "/f", "user." .. string.rep("n", 251), "v")
        o.get = sys.lgetxattr(d .. "/f", "user.plain")
        o.get_bin = sys.lgetxattr(d .. "/f", "user.bin")
        o.get_big = sys.lgetxattr(d .. "/f", "user.big") == big
        o.get_empty = sys.lgetxattr(d .. "/f", "user.empty")
        o.get_odd = sys.lgetxattr(d .. "/f", "user.a b\1\255=")
        local names = assert(sys.llistxattr(d .. "/f"))
        table.sort(names)
        o.list = names
        o.create_existing = E(sys.lsetxattr, d .. "/f", "user.plain", "v2", XC)
        o.create_new = E(sys.lsetxattr, d .. "/f", "user.new", "n", XC)
        o.replace_missing = E(sys.lsetxattr, d .. "/f", "user.none", "v2", XR)
        o.both_missing = E(sys.lsetxattr, d .. "/f", "user.none", "v2", XR | XC)
        o.both_existing = E(sys.lsetxattr, d .. "/f", "user.plain", "v2", XR | XC)
        o.replace = E(sys.lsetxattr, d .. "/f", "user.plain", "v2", XR)
        o.replaced = sys.lgetxattr(d .. "/f", "user.plain")
        o.remove = E(sys.lremovexattr, d .. "/f", "user.plain")
        o.removed = E(sys.lgetxattr, d .. "/f", "user.plain")
        o.remove_missing = E(sys.lremovexattr, d .. "/f", "user.plain")
        o.bad_namespace = E(sys.lsetxattr, d .. "/f", "bogus.x", "v")
        o.no_namespace = E(sys.lsetxattr, d .. "/f", "plain", "v")
        o.empty_user = E(sys.lsetxattr, d .. "/f", "user.", "v")
        o.get_bad_namespace = E(sys.lgetxattr, d .. "/f", "bogus.x")
        o.system = E(sys.lsetxattr, d .. "/f", "system.whatever", "v")
        o.trusted = E(sys.lsetxattr, d .. "/f", "trusted.t", "root only")
        o.trusted_get = sys.lgetxattr(d .. "/f", "trusted.t")
        o.security = E(sys.lsetxattr, d .. "/f", "security.luafs", "s")
        o.dir = E(sys.lsetxattr, d .. "/dir", "user.d", "on a dir")
        o.dir_get = sys.lgetxattr(d .. "/dir", "user.d")
        o.symlink = E(sys.lsetxattr, d .. "/s", "user.s", "on a link")
        o.symlink_get = E(sys.lgetxattr, d .. "/s", "user.s")
        o.symlink_trusted = E(sys.lsetxattr, d .. "/s", "trusted.s", "on a link")
        o.symlink_list = sys.llistxattr(d .. "/s")
        o.fifo = E(sys.lsetxattr, d .. "/fifo", "user.f", "v")
        o.missing_file = E(sys.lgetxattr, d .. "/nope", "user.x")
        local fd = H.check(sys.open(d .. "/f", O_RDONLY))
        o.fget = sys.fgetxattr(fd, "user.bin")
        o.fset = E(sys.fsetxattr, fd, "user.byfd", "fd")
        o.fremove = E(sys.fremovexattr, fd, "user.bin")
        sys.close(fd)
        names = assert(sys.llistxattr(d .. "/f"))
        table.sort(names)
        o.list_after = names
        o.empty_list = sys.llistxattr(d .. "/dir/..") and #sys.llistxattr(d .. "/s")
        return o
      end)
    end)
  end)

  describe("real tools", function()
    -- The same shell commands in both directories; outputs compared.
    local function both(script)
      seq = seq + 1
      local name = "sh" .. seq
      local mdir, rdir = fs:path(name), ref .. "/" .. name
      H.check(sys.mkdir(mdir))
      H.check(sys.mkdir(rdir))
      local cm, om = sh("cd " .. q(mdir) .. " && " .. script)
      local cr, orf = sh("cd " .. q(rdir) .. " && " .. script)
      assert.are.equal(orf, om)
      assert.are.equal(cr, cm)
      return mdir, rdir, om
    end

    local TREE = "mkdir -p a/b/c empty && head -c 300000 /dev/urandom > a/bin"
      .. " && printf 'some text\\n' > a/b/text && printf 'deep\\n' > a/b/c/deep"
      .. " && ln -s a/b/text link && ln a/bin hard && chmod 640 a/b/text"
      .. " && truncate -s 64M a/sparse && printf x | dd of=a/sparse bs=1 seek=100000 conv=notrunc status=none"
      .. " && touch -d '2001-02-03 04:05:06.789' a/b/c/deep && touch -h -d '@1000000000.5' link"

    it("ls -l, cat, ln -s, touch -d, mv, rm -r", function()
      both(TREE .. " && mkfifo a/fifo && ls -lnR --time-style=+ . && ls -ln --full-time a/b/c"
        .. " && cat a/b/text link a/b/c/deep && cmp a/bin hard"
        -- a/sparse was written just now: its time would tell the runs apart
        .. " && stat -c '%n %s %b %h %f' a/sparse && stat -c '%n %s %b %h %f %Y' a/b/c/deep link"
        .. " && mv a/b/text a/moved && mv a/b a/c2 && mv link a/c2/ && ls -lnR --time-style=+"
        .. " && rm -r a/c2 && ls -ln --time-style=+ a && rm -r a empty hard && ls -la | wc -l"
        .. " && mkdir x && rmdir x && ! rm nope 2>/dev/null && ! rmdir . 2>/dev/null; echo $?")
    end)

    it("cp -a and tar keep everything that diff -r and find compare", function()
      -- cp -a keeps times: the copy lists as the original, times included
      local mdir, rdir = both(TREE .. " && cp -a a copy && diff -r a copy && echo same"
        .. " && find . -printf '%p %M %s %n %u %g %l\\n' | sort"
        .. " && (cd a && find . -printf '%p %M %s %n %T@\\n' | sort) > a.list"
        .. " && (cd copy && find . -printf '%p %M %s %n %T@\\n' | sort) > copy.list"
        .. " && cmp a.list copy.list && rm a.list copy.list")
      -- through tar, from the mount to tmpfs and to the mount, keeping
      -- hard links, sparse files, nanoseconds and xattrs
      assert(sys.lsetxattr(mdir .. "/a/b/text", "user.tar", "kept\0binary"))
      local tarball = ref .. "/tree" .. seq .. ".tar"
      local items = " a hard link"
      run("tar --format=posix --sparse --xattrs -C " .. q(mdir) .. " -cf " .. q(tarball) .. items)
      run("mkdir " .. q(mdir .. "/untar") .. " " .. q(rdir .. "/untar"))
      run("tar --xattrs --xattrs-include='user.*' -C " .. q(mdir .. "/untar") .. " -xpf " .. q(tarball))
      run("tar --xattrs --xattrs-include='user.*' -C " .. q(rdir .. "/untar") .. " -xpf " .. q(tarball))
      run("diff -r " .. q(mdir .. "/a") .. " " .. q(mdir .. "/untar/a"))
      local list = "cd %s && find" .. items .. " -printf '%%p %%M %%s %%n %%u %%g %%T@ %%l\\n' | sort"
      local original = run(list:format(q(mdir)))
      assert.are.equal(original, run(list:format(q(mdir .. "/untar"))))
      assert.are.equal(original, run(list:format(q(rdir .. "/untar"))))
      assert.are.equal("kept\0binary", sys.lgetxattr(mdir .. "/untar/a/b/text", "user.tar"))
      -- and with cp -a from the mount to tmpfs
      run("cp -a " .. q(mdir .. "/untar") .. " " .. q(rdir .. "/back") .. " && diff -r "
        .. q(mdir .. "/untar") .. " " .. q(rdir .. "/back"))
      assert.are.equal(original, run(list:format(q(rdir .. "/back"))))
      assert.are.equal("kept\0binary", sys.lgetxattr(rdir .. "/back/a/b/text", "user.tar"))
      for _, dir in ipairs { mdir .. "/untar", rdir .. "/untar", rdir .. "/back" } do
        assert.are.equal(sys.lstat(mdir .. "/a/sparse").blocks, sys.lstat(dir .. "/a/sparse").blocks, dir)
      end
    end)

    it("setfattr and getfattr", function()
      both("touch f && mkdir d && setfattr -n user.one -v 1 f && setfattr -n user.bin -v 0x00ff00 f"
        .. " && setfattr -n user.b64 -v 0sAAECAwQ= d && setfattr -n trusted.t -v tt f"
        .. " && getfattr -d -m - --absolute-names f d | sort && getfattr -n user.bin -e hex f"
        .. " && setfattr -x user.one f && getfattr -d f; ! getfattr -n user.one f 2>&1;"
        .. " ! setfattr -x user.one f 2>&1; echo end")
    end)

    it("df reports what statfs says", function()
      -- Files closed by earlier tests are released in the background: let
      -- the counts settle so that df and statvfs read the same state.
      local function bfree() return sys.statvfs(fs.mountpoint).bfree end
      H.wait_until(function()
        local before = bfree()
        H.sleep(0.05)
        return bfree() == before
      end, 5)
      local out = run("df -B4096 --output=size,used,avail,itotal,iused,target " .. q(fs.mountpoint))
      local line = H.lines(out)[2]
      local size, used, avail, itotal, iused = line:match("(%d+)%s+(%d+)%s+(%d+)%s+(%d+)%s+(%d+)")
      local st = assert(sys.statvfs(fs.mountpoint))
      assert.are.equal(st.blocks, tonumber(size))
      assert.are.equal(st.blocks - st.bfree, tonumber(used))
      assert.are.equal(st.bavail, tonumber(avail))
      assert.are.equal(st.files, tonumber(itotal))
      assert.are.equal(st.files - st.ffree, tonumber(iused))
      assert.are.equal(4 * 1024 * 1024, st.blocks)
      assert.truthy(line:find(fs.mountpoint, 1, true))
    end)
  end)
end)

describe("memfs.lua statfs", function()
  -- A private tmpfs of the same size as memfs claims, so that free blocks
  -- and inodes can be compared exactly (/dev/shm is shared with others).
  local fs = testing.mounted(MEMFS, { once = true })
  local ref

  setup(function()
    if sys.geteuid() ~= 0 then return end
    ref = H.temp_dir()
    run("mount -t tmpfs -o size=16g,nr_inodes=1048576,mode=755 luafs-spec " .. q(ref))
  end)
  teardown(function()
    if ref then
      sh("umount " .. q(ref))
      H.remove(ref)
    end
  end)

  it("counts blocks and inodes as tmpfs does", function()
    if not ref then
      pending("needs root to mount a tmpfs")
      return
    end
    local function statfs(dir)
      local st = assert(sys.statvfs(dir))
      return { st.bsize, st.frsize, st.blocks, st.bfree, st.bavail, st.files, st.ffree, st.favail, st.namemax }
    end
    local function scenario(d)
      local o = { statfs(d) }
      H.write(d .. "/f", H.bytes(MiB + 1, 1))
      H.check(sys.mkdir(d .. "/dir"))
      o[#o + 1] = statfs(d)
      H.check(sys.link(d .. "/f", d .. "/dir/g"))
      H.check(sys.symlink("short", d .. "/s1"))
      H.check(sys.symlink(string.rep("l", 200), d .. "/s2"))
      H.check(sys.mkfifo(d .. "/fifo", octal "600"))
      o[#o + 1] = statfs(d)
      local fd = H.check(sys.open(d .. "/sparse", O_RDWR | O_CREAT, octal "600"))
      H.check(sys.pwrite(fd, "x", 3 * GiB))
      H.check(sys.fallocate(fd, 0, 0, 10 * 4096))
      o[#o + 1] = statfs(d)
      H.check(sys.unlink(d .. "/sparse"))
      o[#o + 1] = statfs(d) -- still open
      sys.close(fd)
      -- The kernel sends RELEASE in the background after close returns, so
      -- a FUSE filesystem frees an unlinked file a moment later: wait until
      -- the counts are back to those before the file (tmpfs: at once).
      H.wait_until(function() return table.concat(statfs(d), " ") == table.concat(o[3], " ") end, 5)
      o[#o + 1] = statfs(d)
      H.check(sys.truncate(d .. "/f", 4097))
      H.check(sys.unlink(d .. "/dir/g"))
      H.check(sys.unlink(d .. "/s2"))
      o[#o + 1] = statfs(d)
      run("rm -r " .. q(d) .. "/*")
      o[#o + 1] = statfs(d)
      return o
    end
    assert.same(scenario(ref), scenario(fs.mountpoint))
  end)
end)

describe("memfs.lua and other users", function()
  -- What spec/fixtures/memfs_user_probe.lua may do as uid 4321 (gid 4322,
  -- supplementary group 4323) in a directory prepared by root, on memfs
  -- and on tmpfs. memfs checks permissions itself (allow_other alone),
  -- and agrees with the kernel's checks (default_permissions as well).
  local PROBE = H.fixture("memfs_user_probe.lua")
  local UID, GID, GROUP = 4321, 4322, 4323

  local function prepare(d)
    local function mk(path, mode)
      H.check(sys.mkdir(d .. "/" .. path))
      H.check(sys.chmod(d .. "/" .. path, octal(mode)))
    end
    local function file(path, mode, data)
      H.write(d .. "/" .. path, data or "r")
      H.check(sys.chmod(d .. "/" .. path, octal(mode)))
    end
    mk("open", "777")
    mk("rootdir", "755")
    file("rootdir/f", "644")
    file("rootfile", "644", "root's")
    mk("private", "700")
    file("private/secret", "644")
    mk("listonly", "744")
    file("listonly/f", "644")
    mk("searchonly", "711")
    file("searchonly/f", "644", "found")
    mk("sticky", "1777")
    file("sticky/theirs", "644")
    file("sticky/writable", "666")
    mk("sg", "777")
    H.check(sys.chown(d .. "/sg", 0, 777))
    H.check(sys.chmod(d .. "/sg", octal "2777"))
    file("groupfile", "664", "group")
    H.check(sys.chown(d .. "/groupfile", 0, GROUP))
    file("script", "755", "#!/bin/sh\nexit 0\n")
    file("open/shared", "666")
    file("open/suid", "4777")
    file("open/rootowned", "644")
    file("open/unlinked", "666")
    file("open/target_open", "644")
    mk("open/rootsub", "755")
  end

  local function probe(d)
    local code, out = sh("setpriv --reuid=" .. UID .. " --regid=" .. GID .. " --groups=" .. GROUP
      .. " lua5.4 " .. q(PROBE) .. " " .. q(d))
    assert(code == 0, out)
    return out
  end

  local function compare(fs)
    if sys.geteuid() ~= 0 then
      pending("needs root to act as other users")
      return
    end
    assert(sys.chmod(fs.m._dir, octal "755")) -- the kit's directory above the mountpoint
    local ref = H.shm_dir()
    local ok, err = pcall(function()
      assert(sys.chmod(ref, octal "755"))
      prepare(ref)
      prepare(fs.mountpoint)
      local want, got = probe(ref), probe(fs.mountpoint)
      assert.are.equal(want, got)
      -- and the results are what they must be, not merely the same
      local r = {}
      for line in got:gmatch("[^\n]+") do
        local k, v = line:match("^(%S+) (.*)$")
        r[k] = v
      end
      assert.are.equal(UID .. " " .. GID .. " 100644", r["create.owner"])
      assert.are.equal(UID .. " 777 42755", r["sg.mkdir.owner"])
      assert.are.equal("EACCES", r["rootdir.create"])
      assert.are.equal("EPERM", r["sticky.unlink_theirs"])
      assert.are.equal("EACCES", r["private.stat"])
      assert.are.equal("0 0 100777", r["suid.mode"])
      assert.are.equal("OK", r["group.write"])
      assert.are.equal("EPERM", r["unlinked.fchmod"])
      assert.are.equal("0 0 100666 0", r["unlinked.fstat"])
      assert.are.equal("1 1", r["unlinked.target_nlink"])
    end)
    H.remove(ref)
    assert(ok, err)
  end

  --[[ What opening root's FIFO of mode 0600 answers uid UID, on the mount
  and on tmpfs. Opening a FIFO sends the filesystem no request, so memfs
  cannot refuse it: only the kernel's default_permissions checks do. ]]
  local function fifo_open(fs)
    if sys.geteuid() ~= 0 then
      pending("needs root to act as other users")
      return
    end
    assert(sys.chmod(fs.m._dir, octal "755"))
    local ref = H.shm_dir()
    local ok, r = pcall(function()
      assert(sys.chmod(ref, octal "755"))
      local r = {}
      for _, d in ipairs { fs.mountpoint, ref } do
        H.check(sys.mkfifo(d .. "/fifo", octal "600"))
        local code, out = sh("setpriv --reuid=" .. UID .. " --regid=" .. GID .. " --clear-groups"
          .. " sh -c 'exec 3<>\"$1\"' sh " .. q(d .. "/fifo"))
        r[#r + 1] = code == 0 and "opened" or out:match("Permission denied") and "EACCES" or out
        H.check(sys.unlink(d .. "/fifo"))
      end
      return r
    end)
    H.remove(ref)
    assert(ok, r)
    return { memfs = r[1], tmpfs = r[2] }
  end

  describe("with allow_other", function()
    local fs = testing.mounted(MEMFS, { once = true, options = { "-o", "allow_other" } })
    it("gives them what they create and refuses what tmpfs refuses", function() compare(fs) end)
    it("lets them open a FIFO that its mode closes to them (memfs.lua's header)", function()
      local r = fifo_open(fs)
      if r then assert.same({ memfs = "opened", tmpfs = "EACCES" }, r) end
    end)
  end)

  describe("with allow_other,default_permissions", function()
    local fs = testing.mounted(MEMFS, { once = true, options = { "-o", "allow_other,default_permissions" } })
    it("agrees with the kernel's checks", function() compare(fs) end)
    it("refuses them a FIFO that its mode closes to them, as tmpfs does", function()
      local r = fifo_open(fs)
      if r then assert.same({ memfs = "EACCES", tmpfs = "EACCES" }, r) end
    end)
  end)
end)

describe("memfs.lua across a hot reload", function()
  local dir, m

  -- Everything a reload must keep: names, kinds, contents, xattrs, and
  -- every stat field but atime (which the reads here move).
  local function snapshot()
    local t = {}
    local function walk(rel)
      local p = m:path(rel)
      local st = assert(sys.lstat(p))
      local e = {}
      for _, k in ipairs { "ino", "mode", "nlink", "uid", "gid", "rdev", "size", "blocks",
                           "mtime", "mtime_nsec", "ctime", "ctime_nsec" } do
        e[k] = st[k]
      end
      local xattrs = {}
      for _, name in ipairs(assert(sys.llistxattr(p))) do xattrs[name] = sys.lgetxattr(p, name) end
      e.xattrs = xattrs
      local kind = st.mode & luafs.S_IFMT
      if kind == luafs.S_IFREG and st.size <= 4 * MiB then
        e.data = assert(H.read(p))
      elseif kind == luafs.S_IFREG then
        -- a large sparse file: where its data starts, and what is there
        local fd = assert(sys.open(p, O_RDONLY))
        local at = sys.lseek(fd, 0, SEEK_DATA)
        e.data = { at, at and sys.pread(fd, 4096, at) }
        sys.close(fd)
      elseif kind == luafs.S_IFLNK then
        e.target = sys.readlink(p)
      elseif kind == luafs.S_IFDIR then
        for _, name in ipairs(H.listing(p)) do
          if name ~= "." and name ~= ".." then walk(rel .. "/" .. name) end
        end
      end
      t[rel] = e
    end
    walk("")
    return t
  end

  local function generation()
    return sys.lgetxattr(m.mountpoint, "user.luafs.generation")
  end

  local function wait_generation(g)
    return H.wait_until(function() return generation() == g end, 10)
  end

  local function edit(f)
    local path = dir .. "/memfs.lua"
    local text = assert(H.read(path))
    -- written to a new file and renamed over the old, as editors do
    H.write(path .. ".new", f(text))
    assert(os.rename(path .. ".new", path))
  end

  before_each(function()
    dir = H.temp_dir()
    run("cp " .. q(MEMFS) .. " " .. q(H.fixture("memfs_generation.lua")) .. " " .. q(dir))
    m = testing.mount(dir .. "/memfs_generation.lua")
  end)
  after_each(function()
    local ok, err = true, nil
    if m then ok, err = m:unmount { strict = false } end
    H.remove(dir)
    assert(ok, err)
  end)

  it("keeps every file on SIGUSR1 and when the script is edited", function()
    run("cd " .. q(m.mountpoint) .. " && mkdir -p a/b && printf 'text\\n' > a/b/t && ln a/b/t hard"
      .. " && ln -s a/b/t link && mkfifo fifo && head -c 2000000 /dev/urandom > big"
      .. " && truncate -s 5G sparse && printf x >> sparse && setfattr -n user.k -v 0x00ff01 a/b/t && chmod 1750 a")
    assert(sys.link(m:path("big"), m:path("a/big2")))
    local open = assert(io.open(m:path("a/b/t"), "r+b"))
    local gone = assert(io.open(m:path("gone"), "w+b"))
    assert(gone:write("unlinked but open"))
    assert(gone:flush())
    assert(sys.unlink(m:path("gone")))
    local before = snapshot()
    assert.are.equal("1", generation())

    assert(os.execute("kill -USR1 " .. m.pid))
    assert(wait_generation("2"), "no reload after SIGUSR1:\n" .. m:log())
    assert.same(before, snapshot())
    assert.truthy(m:log():find("memfs.lua: the new code serves the same", 1, true), m:log())
    -- handles opened by the old code keep working
    assert(open:seek("set", 0))
    assert.are.equal("text\n", open:read("a"))
    assert(open:write("more\n"))
    assert(open:flush())
    assert.are.equal("text\nmore\n", H.read(m:path("hard")))
    assert(gone:seek("set", 0))
    assert.are.equal("unlinked but open", gone:read("a"))
    before = snapshot()

    edit(function(text) return text .. "\n-- edited\n" end)
    assert(wait_generation("3"), "no reload after the edit:\n" .. m:log())
    assert.same(before, snapshot())
    H.write(m:path("new"), "written by generation 3")
    assert.are.equal("written by generation 3", H.read(m:path("new")))
    open:close()
    gone:close()
  end)

  it("keeps the old code serving when the new code does not load or refuses the tree", function()
    H.write(m:path("f"), "data")
    local before = snapshot()
    local fails = 0
    local function failed()
      local n = 0
      for _ in m:log():gmatch("reload failed") do n = n + 1 end
      return n > fails and n
    end
    edit(function(text) return text .. "\nthis is not Lua\n" end)
    fails = assert(H.wait_until(failed, 10), "no failed reload:\n" .. m:log())
    assert.are.equal("1", generation())
    assert.same(before, snapshot())
    -- a layout this tree does not have: fs.reload refuses it
    edit(function(text)
      return (text:gsub("\nthis is not Lua\n", ""):gsub("local FORMAT = 1", "local FORMAT = 2"))
    end)
    fails = assert(H.wait_until(failed, 10), "no refused reload:\n" .. m:log())
    assert.truthy(m:log():find("this code knows layout 2", 1, true), m:log())
    assert.are.equal("1", generation())
    assert.same(before, snapshot())
    edit(function(text) return (text:gsub("local FORMAT = 2", "local FORMAT = 1")) end)
    assert(wait_generation("2"), "no reload after the fix:\n" .. m:log())
    assert.same(before, snapshot())
  end)
end)

describe("memfs.lua in a pool of states", function()
  it("refuses to load, with a message, and leaves no mount", function()
    local mnt = H.temp_dir()
    local code, out = testing.run({ MEMFS, mnt, "-f", "-o", "states=4" }, { timeout = 20 })
    local mounted = testing.mounted_at(mnt)
    H.cleanup_mountpoint(mnt)
    assert.are.equal(0, mounted)
    assert.are.equal(2, code, out)
    assert.truthy(out:find("memfs.lua keeps its files in one Lua state, so 4 states would serve 4 "
      .. "different trees; mount it without -o states=4", 1, true), out)
  end)

  describe("of one state", function()
    local fs = testing.mounted(MEMFS, { once = true, options = { "-o", "states=1" } })
    it("serves as usual", function()
      H.write(fs:path("f"), "one state")
      assert.are.equal("one state", H.read(fs:path("f")))
    end)
  end)
end)
