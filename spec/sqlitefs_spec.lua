-- spec/sqlitefs_spec.lua: lua/examples/sqlitefs.lua must behave like
-- tmpfs, and keep its files across remounts, reloads and a kill -9.
--
-- The "twins" are memfs_spec.lua's: the same function runs in a fresh
-- directory of the mount and in one under /dev/shm (tmpfs), and what it
-- observes must be the same. sqlitefs leaves permission checks to the
-- kernel, so every mount here has -o default_permissions. The rest
-- remounts, kills the host, reloads, holds SQLite's write lock from
-- outside, and replays seeded random operations with a remount in the
-- middle.
local H = require "spec.helpers"
local cases = require "spec.cases"
local luasql = require "luasql.sqlite3"

local testing, luafs, sys, lfs = H.testing, H.luafs, H.sys, H.lfs
local octal = H.octal

local O_RDONLY, O_WRONLY, O_RDWR = luafs.O_RDONLY, luafs.O_WRONLY, luafs.O_RDWR
local O_CREAT, O_EXCL, O_TRUNC, O_APPEND = luafs.O_CREAT, luafs.O_EXCL, luafs.O_TRUNC, luafs.O_APPEND
local O_NONBLOCK = luafs.O_NONBLOCK
local SEEK_DATA, SEEK_HOLE = luafs.SEEK_DATA, luafs.SEEK_HOLE
local AT_FDCWD, NOFOLLOW = luafs.AT_FDCWD, luafs.AT_SYMLINK_NOFOLLOW
local GiB, MiB = 1 << 30, 1 << 20

local SQLITEFS = H.example("sqlitefs.lua")
local OPTIONS = { "-o", "default_permissions" }
local E = H.err
local q = H.quote

local STAT_FIELDS = { "mode", "nlink", "size", "uid", "gid", "rdev", "blocks", "blksize" }
local function stat_of(path, fields)
  local st, _, e = sys.lstat(path)
  if not st then return H.errname(e) end
  local t = {}
  for _, k in ipairs(fields or STAT_FIELDS) do t[k] = st[k] end
  return t
end

local function sh(cmd) return H.shell(cmd) end

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

-- Mounts sqlitefs on database db (and more host options).
local function mount(db, options, busy_ms)
  local opts = { table.unpack(OPTIONS) }
  for _, o in ipairs(options or {}) do opts[#opts + 1] = o end
  return testing.mount(SQLITEFS, { options = opts, args = { db, busy_ms } })
end

-- What PRAGMA integrity_check says of db, through the sqlite3 command.
local function integrity(db)
  local _, out = sh("sqlite3 " .. q(db) .. " 'PRAGMA integrity_check'")
  return (out:gsub("\n$", ""))
end

--[[ Everything a remount must keep of the tree under root: names, kinds,
contents, xattrs, and every stat field but atime (which reads move). ]]
local function snapshot(root)
  local t = {}
  local function walk(rel)
    local p = root .. rel
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
      local fd = assert(sys.open(p, O_RDONLY))
      local at = sys.lseek(fd, 0, SEEK_DATA)
      e.data = { at, at and sys.pread(fd, 8192, at), sys.lseek(fd, at or 0, SEEK_HOLE) }
      sys.close(fd)
    elseif kind == luafs.S_IFLNK then
      e.target = sys.readlink(p)
    elseif kind == luafs.S_IFDIR then
      for _, name in ipairs(H.listing(p)) do
        if name ~= "." and name ~= ".." then walk(rel .. "/" .. name) end
      end
    end
    t[rel == "" and "/" or rel] = e
  end
  walk("")
  return t
end

describe("sqlitefs.lua", function()
  local fs = testing.mounted(SQLITEFS, { once = true, scratch = true, options = OPTIONS,
                                         args = { "{scratch}/fs.db" } })
  local ref
  local seq = 0

  setup(function()
    ref = H.shm_dir()
    assert(sys.chmod(ref, octal "755"))
  end)
  teardown(function() if ref then H.remove(ref) end end)

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

    it("renames with RENAME_NOREPLACE and RENAME_EXCHANGE", function()
      local NOREPLACE, EXCHANGE = luafs.RENAME_NOREPLACE, luafs.RENAME_EXCHANGE
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
        o.bad_flag = R("b", "z", 1 << 7)
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
  end)

  describe("what it does not do", function()
    it("answers EOPNOTSUPP to fallocate and EINVAL to RENAME_WHITEOUT, changing nothing", function()
      H.write(fs:path("nofalloc"), "abc")
      local fd = H.check(sys.open(fs:path("nofalloc"), O_RDWR))
      local falloc = E(sys.fallocate, fd, 0, 0, 8192)
      sys.close(fd)
      assert.are.equal("ENOTSUP/EOPNOTSUPP", falloc)
      assert.are.equal("EINVAL", E(sys.rename, fs:path("nofalloc"), fs:path("w"), luafs.RENAME_WHITEOUT))
      assert.same({ "abc", 3, "ENOENT" },
        { H.read(fs:path("nofalloc")), sys.lstat(fs:path("nofalloc")).size, E(sys.lstat, fs:path("w")) })
    end)
  end)

  it("df reports the space of the filesystem that holds the database", function()
    local st = assert(sys.statvfs(fs.mountpoint))
    local under = assert(sys.statvfs(fs.m.scratch))
    assert.are.equal(4096, st.bsize)
    assert.are.equal(255, st.namemax)
    assert.are.equal(under.blocks * under.frsize // 4096, st.blocks)
    assert.are.equal(1 << 32, st.files)
    local line = H.lines(run("df -B4096 --output=size,itotal " .. q(fs.mountpoint)))[2]
    assert.are.equal(string.format("%d %d", st.blocks, st.files), line:gsub("^%s+", ""):gsub("%s+", " "))
  end)
end)

describe("sqlitefs.lua across unmounts", function()
  local dir, m
  before_each(function() dir = H.temp_dir() end)
  after_each(function()
    local ok, err = true, nil
    if m then ok, err = m:unmount { strict = false } end
    m = nil
    H.remove(dir)
    assert(ok, err)
  end)

  it("keeps every name, byte, mode, owner, nanosecond time and xattr", function()
    local db = dir .. "/fs.db"
    m = mount(db)
    run("cd " .. q(m.mountpoint) .. " && mkdir -p a/b && printf 'text\\n' > a/b/t && ln a/b/t hard"
      .. " && ln -s a/b/t link && ln -s " .. string.rep("long/", 40) .. " longlink && mkfifo fifo"
      .. " && head -c 3000000 /dev/urandom > big && truncate -s 5G sparse && printf x >> sparse"
      .. " && printf y | dd of=sparse bs=1 seek=1000000 conv=notrunc status=none"
      .. " && setfattr -n user.k -v 0x00ff01 a/b/t && setfattr -n trusted.t -v t a && chmod 1750 a"
      .. " && chown 1234:5678 a/b/t && chmod 4640 a/b/t && mknod dev c 1 3"
      .. " && touch -h -d '@1000000000.123456789' link && touch -d '1999-12-31 23:59:59.987654321' big")
    H.write(m:path("a/\1\255 odd name"), H.bytes(70000, 5))
    assert(sys.lsetxattr(m:path("a/\1\255 odd name"), "user.\255", "\0value\0"))
    local before = snapshot(m.mountpoint)
    assert(m:unmount())
    assert.are.equal("ok", integrity(db))
    m = mount(db)
    assert.same(before, snapshot(m.mountpoint))
    -- and it goes on working on what it found
    H.write(m:path("a/b/t"), "more\n", "ab")
    assert.are.equal("text\nmore\n", H.read(m:path("hard")))
    assert(m:unmount())
    m = mount(db)
    assert.are.equal("text\nmore\n", H.read(m:path("a/b/t")))
  end)

  it("frees at the next mount a file that was unlinked while open when the host died", function()
    local db = dir .. "/fs.db"
    m = mount(db)
    local f = assert(io.open(m:path("gone"), "w+b"))
    assert(f:write(H.bytes(50000, 3)))
    assert(f:flush())
    assert(sys.unlink(m:path("gone")))
    local function count(sql)
      local _, out = sh("sqlite3 " .. q(db) .. " " .. q(sql))
      return tonumber(out:match("%d+"))
    end
    assert.are.equal(1, count("SELECT count(*) FROM inodes WHERE nlink = 0"))
    m:kill("KILL")
    m:wait(10)
    f:close()
    assert(m:unmount { strict = false })
    assert.are.equal("ok", integrity(db))
    assert.are.equal(1, count("SELECT count(*) FROM inodes WHERE nlink = 0"))
    m = mount(db)
    assert.are.equal(0, count("SELECT count(*) FROM inodes WHERE nlink = 0"))
    assert.are.equal(0, count("SELECT count(*) FROM blocks"))
    assert.same({ ".", ".." }, H.listing(m.mountpoint))
  end)

  it("writes a 4 KiB block into a large file as about 4 KiB, and keeps holes out of the database", function()
    local db = dir .. "/fs.db"
    m = mount(db)
    local fd = H.check(sys.open(m:path("big"), O_RDWR | O_CREAT, octal "644"))
    H.check(sys.ftruncate(fd, GiB))
    local data = H.bytes(8 * MiB, 11)
    for off = 0, #data - 1, MiB do H.check(sys.pwrite(fd, data:sub(off + 1, off + MiB), 256 * MiB + off)) end
    H.check(sys.fsync(fd))
    assert.are.equal(8 * MiB // 512, sys.fstat(fd).blocks)
    -- move the log into the database, so that the log holds only what comes next
    local env = assert(luasql.sqlite3())
    local c = assert(env:connect(db, 5000))
    local cur = assert(c:execute("PRAGMA wal_checkpoint(TRUNCATE)"))
    local busy = cur:fetch()
    cur:close()
    c:close()
    env:close()
    assert.are.equal(0, busy)
    assert.are.equal(0, lfs.attributes(db .. "-wal", "size"))
    local page = H.bytes(4096, 12)
    H.check(sys.pwrite(fd, page, 256 * MiB + 3 * MiB + 4096))
    local wal = lfs.attributes(db .. "-wal", "size")
    sys.close(fd)
    assert.is_true(wal > 4096 and wal < 64 * 1024, "the log grew by " .. wal .. " bytes")
    assert.is_true(lfs.attributes(db, "size") < 2 * #data, "the database has " .. lfs.attributes(db, "size"))
    fd = H.check(sys.open(m:path("big"), O_RDONLY))
    assert.are.equal(page, sys.pread(fd, 4096, 256 * MiB + 3 * MiB + 4096))
    assert.are.equal(string.rep("\0", 4096), sys.pread(fd, 4096, 512 * MiB))
    assert.are.equal(256 * MiB, sys.lseek(fd, 0, SEEK_DATA))
    assert.are.equal(264 * MiB, sys.lseek(fd, 256 * MiB, SEEK_HOLE))
    sys.close(fd)
  end)
end)

describe("sqlitefs.lua killed during a write load", function()
  local dir, m, loader
  before_each(function() dir = H.temp_dir() end)
  after_each(function()
    if loader and testing.alive(loader) then os.execute("kill -KILL " .. loader .. " 2>/dev/null") end
    local ok, err = true, nil
    if m then ok, err = m:unmount { strict = false } end
    m = nil
    H.remove(dir)
    assert(ok, err)
  end)

  it("keeps every file that was fsynced, byte for byte, in a sound database", function()
    local db, log = dir .. "/fs.db", dir .. "/synced"
    m = mount(db, { "-o", "states=2" })
    -- the load writes files f1, f2, ... and lists each one once it is fsynced
    local _, out = sh(string.format("cd %s && lua5.4 %s %s %s 3000 >%s 2>&1 & echo $!",
      q(H.root), q(H.fixture("sqlitefs_load.lua")), q(m.mountpoint), q(log), q(dir .. "/load.out")))
    loader = tonumber(out:match("%d+"))
    local function synced() return H.lines(H.read(log)) end
    assert(H.wait_until(function() return #synced() >= 40 end, 60), "the load did not get going:\n"
      .. (H.read(dir .. "/load.out") or ""))
    m:kill("KILL")
    assert(m:wait(10))
    H.wait_until(function() return not testing.alive(loader) end, 10)
    local names = synced()
    assert(m:unmount { strict = false })
    assert.are.equal("ok", integrity(db))
    m = mount(db)
    for _, line in ipairs(names) do
      local name, size, seed = line:match("^(%S+) (%d+) (%d+)$")
      H.assert_same_bytes(H.bytes(tonumber(size), tonumber(seed)), H.read(m:path(name)), name)
    end
    -- and the files that were being written when it died are whole or absent
    for _, name in ipairs(H.listing(m.mountpoint)) do
      if name ~= "." and name ~= ".." then assert(H.read(m:path(name)), name) end
    end
  end)
end)

describe("sqlitefs.lua in a pool of states", function()
  local dir, m
  before_each(function() dir = H.temp_dir() end)
  after_each(function()
    local ok, err = true, nil
    if m then ok, err = m:unmount { strict = false } end
    m = nil
    H.remove(dir)
    assert(ok, err)
  end)

  it("serves concurrent writers, each state with its own connection", function()
    m = mount(dir .. "/fs.db", { "-o", "states=4" })
    run("cd " .. q(m.mountpoint) .. " && for j in 1 2 3 4; do (mkdir d$j && for i in $(seq 1 25); do"
      .. " head -c $((j * 1000 + i)) /dev/zero | tr '\\0' $j > d$j/f$i; done) & done; wait")
    for j = 1, 4 do
      for i = 1, 25 do
        assert.are.equal(string.rep(tostring(j), j * 1000 + i), H.read(m:path("d" .. j .. "/f" .. i)))
      end
    end
    -- four connections: the database open in each state, and no more
    local _, out = sh("ls -l /proc/" .. m.pid .. "/fd | grep -c " .. q(dir .. "/fs.db$"))
    assert.are.equal(4, tonumber(out:match("%d+")))
  end)

  it("answers EBUSY when another connection holds the write lock past the busy timeout", function()
    local db = dir .. "/fs.db"
    m = mount(db, { "-o", "states=2" }, "200")
    H.write(m:path("f"), "before")
    local env = assert(luasql.sqlite3())
    local c = assert(env:connect(db))
    assert(c:execute("BEGIN IMMEDIATE"))
    local ok, err = pcall(function()
      assert.are.equal("EBUSY", E(sys.mkdir, m:path("d")))
      local fd = H.check(sys.open(m:path("f"), O_RDONLY))
      local data = sys.pread(fd, 100, 0)
      sys.close(fd)
      assert.are.equal("before", data) -- readers do not wait
      assert.same({ ".", "..", "f" }, H.listing(m.mountpoint))
      assert.are.equal("EBUSY", E(sys.truncate, m:path("f"), 1))
    end)
    c:execute("ROLLBACK")
    c:close()
    env:close()
    assert(ok, err)
    assert.are.equal("OK", E(sys.mkdir, m:path("d")))
    assert.are.equal("before", H.read(m:path("f")))
    assert.are.equal("ENOENT", E(sys.lstat, m:path("nope")))
  end)
end)

describe("sqlitefs.lua across a hot reload", function()
  local dir, m
  before_each(function()
    dir = H.temp_dir()
    run("cp " .. q(SQLITEFS) .. " " .. q(dir))
  end)
  after_each(function()
    local ok, err = true, nil
    if m then ok, err = m:unmount { strict = false } end
    m = nil
    H.remove(dir)
    assert(ok, err)
  end)

  local function edit(f)
    local path = dir .. "/sqlitefs.lua"
    local text = assert(H.read(path))
    H.write(path .. ".new", f(text))
    assert(os.rename(path .. ".new", path))
  end

  local function db_fds()
    local _, out = sh("ls -l /proc/" .. m.pid .. "/fd | grep -c " .. q(dir .. "/fs.db$"))
    return tonumber(out:match("%d+"))
  end

  it("keeps the files and open handles, reopens its connections, and refuses another layout", function()
    m = testing.mount(dir .. "/sqlitefs.lua", { options = { "-o", "default_permissions,states=2" },
                                                args = { dir .. "/fs.db" } })
    run("cd " .. q(m.mountpoint) .. " && mkdir -p a/b && printf 'text\\n' > a/b/t && ln -s a/b/t link"
      .. " && setfattr -n user.k -v v a/b/t")
    local open = assert(io.open(m:path("a/b/t"), "r+b"))
    local before = snapshot(m.mountpoint)
    assert.are.equal(2, db_fds())
    -- SQLite keeps a closed connection's descriptor while other connections
    -- of the process hold locks on the file, and reuses it at the next
    -- open: leaked connections would add two descriptors per reload.
    for g = 2, 6 do
      assert(os.execute("kill -USR1 " .. m.pid))
      assert(H.log_line(m, "generation " .. g, 10), m:log())
      assert.same(before, snapshot(m.mountpoint))
    end
    assert.is_true(db_fds() <= 4, db_fds() .. " descriptors of the database")
    assert(open:seek("set", 0))
    assert.are.equal("text\n", open:read("a"))
    assert(open:write("more\n"))
    assert(open:flush())
    assert.are.equal("text\nmore\n", H.read(m:path("link")))
    before = snapshot(m.mountpoint)
    -- code of another layout: its reload hook refuses the database
    edit(function(text) return (text:gsub("local FORMAT = 1", "local FORMAT = 2")) end)
    assert(H.log_line(m, "this code knows layout 2", 10), m:log())
    assert.truthy(m:log():find("reload failed", 1, true), m:log())
    assert.same(before, snapshot(m.mountpoint))
    edit(function(text) return (text:gsub("local FORMAT = 2", "local FORMAT = 1")) end)
    assert(H.log_line(m, "generation 7", 10), m:log())
    H.write(m:path("new"), "written by generation 7")
    assert.are.equal("written by generation 7", H.read(m:path("new")))
    assert.is_true(db_fds() <= 4, db_fds() .. " descriptors of the database")
    open:close()
  end)
end)

--[[ Seeded random operations on sqlitefs and on tmpfs side by side:
every result and errno, and the tree after each sequence (names, modes,
sizes, st_blocks, xattrs, targets and every byte), must be the same;
every few sequences sqlitefs is unmounted and mounted again, and the tree
must still be the same. A failure prints the seed; replay it with

  LUAFS_SQLITEFS_SEED=<seed> LUAFS_SQLITEFS_RUNS=1 scripts/test --quick spec/sqlitefs_spec.lua ]]
describe("sqlitefs.lua against tmpfs, operation by operation", function()
  local SEED = tonumber(os.getenv("LUAFS_SQLITEFS_SEED") or "") or 20261207
  local RUNS = tonumber(os.getenv("LUAFS_SQLITEFS_RUNS") or "") or 60
  local PATHS = { "a", "b", "c", "a/x", "b/x", "a/y", "a/x/z", "\1\255 n" }
  local NOISE = H.bytes(1 << 17, 77)
  local dir, ref, m

  before_each(function()
    dir = H.temp_dir()
    ref = H.shm_dir()
  end)
  after_each(function()
    local ok, err = true, nil
    if m then ok, err = m:unmount { strict = false } end
    m = nil
    H.remove(dir)
    H.remove(ref)
    assert(ok, err)
  end)

  local function generator(seed)
    local x = seed
    return function(n)
      x = x + 0x9E3779B97F4A7C15
      local z = x
      z = (z ~ (z >> 30)) * 0xBF58476D1CE4E5B9
      z = (z ~ (z >> 27)) * 0x94D049BB133111EB
      z = z ~ (z >> 31)
      return z % n + 1
    end
  end

  local function show(v, _, e)
    if v == nil then return H.errname(e) end
    if type(v) == "string" then return string.format("%q", v) end
    return tostring(v)
  end

  local OPS = {}
  function OPS.write(d, rel, data, offset, flags)
    local fd, msg, e = sys.open(d .. "/" .. rel, O_WRONLY | O_CREAT | O_NONBLOCK | flags, octal "644")
    if not fd then return show(fd, msg, e) end
    local r = show(sys.pwrite(fd, data, offset))
    sys.close(fd)
    return r
  end
  function OPS.read(d, rel, size, offset)
    local fd, msg, e = sys.open(d .. "/" .. rel, O_RDONLY | O_NONBLOCK)
    if not fd then return show(fd, msg, e) end
    local r = show(sys.pread(fd, size, offset))
    sys.close(fd)
    return r
  end
  function OPS.truncate(d, rel, size) return show(sys.truncate(d .. "/" .. rel, size)) end
  function OPS.mkdir(d, rel) return show(sys.mkdir(d .. "/" .. rel, octal "755")) end
  function OPS.rmdir(d, rel) return show(sys.rmdir(d .. "/" .. rel)) end
  function OPS.unlink(d, rel) return show(sys.unlink(d .. "/" .. rel)) end
  function OPS.rename(d, a, b, flags) return show(sys.rename(d .. "/" .. a, d .. "/" .. b, flags)) end
  function OPS.link(d, a, b) return show(sys.link(d .. "/" .. a, d .. "/" .. b)) end
  function OPS.symlink(d, target, rel) return show(sys.symlink(target, d .. "/" .. rel)) end
  function OPS.chmod(d, rel, mode) return show(sys.chmod(d .. "/" .. rel, octal(mode))) end
  function OPS.setxattr(d, rel, name, value) return show(sys.lsetxattr(d .. "/" .. rel, name, value)) end
  function OPS.removexattr(d, rel, name) return show(sys.lremovexattr(d .. "/" .. rel, name)) end

  local function draw(rand)
    local function pick(t) return t[rand(#t)] end
    local function offset()
      local k = rand(20)
      if k == 1 then return (1 << 32) + rand(100000) end
      return rand(140000) - 1
    end
    local function data()
      local len = ({ 0, 1, 100, 4096, 5000, 70000 })[rand(6)]
      if len > 1 then len = rand(len) end
      local at = rand(#NOISE - len)
      return NOISE:sub(at, at + len - 1)
    end
    local k = rand(100)
    if k <= 30 then return "write", pick(PATHS), data(), offset(), pick { 0, 0, O_TRUNC, O_APPEND, O_EXCL } end
    if k <= 40 then return "read", pick(PATHS), rand(9000), offset() end
    if k <= 50 then return "truncate", pick(PATHS), offset() end
    if k <= 58 then return "mkdir", pick(PATHS) end
    if k <= 62 then return "rmdir", pick(PATHS) end
    if k <= 68 then return "unlink", pick(PATHS) end
    if k <= 78 then
      return "rename", pick(PATHS), pick(PATHS), pick { 0, 0, luafs.RENAME_NOREPLACE, luafs.RENAME_EXCHANGE }
    end
    if k <= 83 then return "link", pick(PATHS), pick(PATHS) end
    if k <= 86 then return "symlink", pick { "a", "x/../b", "dangling" }, pick(PATHS) end
    if k <= 90 then return "chmod", pick(PATHS), pick { "644", "600", "755", "4755", "2750" } end
    if k <= 97 then return "setxattr", pick(PATHS), pick { "user.a", "user.b\255", "trusted.t" }, data():sub(1, 300) end
    return "removexattr", pick(PATHS), pick { "user.a", "user.b\255", "trusted.t" }
  end

  local function tree(root)
    local out = {}
    local function walk(rel)
      local p = rel == "" and root or root .. "/" .. rel
      local names = H.listing(p)
      for _, name in ipairs(names) do
        if name ~= "." and name ~= ".." then
          local r = rel == "" and name or rel .. "/" .. name
          local q2 = root .. "/" .. r
          local st = assert(sys.lstat(q2))
          local line = string.format("%q mode=%o nlink=%d size=%d blocks=%d", r, st.mode, st.nlink,
            st.size, st.blocks)
          local list = assert(sys.llistxattr(q2))
          table.sort(list)
          for _, x in ipairs(list) do line = line .. string.format(" %q=%q", x, sys.lgetxattr(q2, x)) end
          local kind = st.mode & luafs.S_IFMT
          if kind == luafs.S_IFLNK then
            line = line .. " -> " .. sys.readlink(q2)
          elseif kind == luafs.S_IFREG then
            local fd = assert(sys.open(q2, O_RDONLY))
            local chunks, at = {}, 0
            while at < st.size do
              local data = assert(sys.lseek(fd, at, SEEK_DATA) or st.size)
              if data >= st.size then break end
              local hole = assert(sys.lseek(fd, data, SEEK_HOLE))
              chunks[#chunks + 1] = string.format("@%d:%q", data, sys.pread(fd, hole - data, data))
              at = hole
            end
            sys.close(fd)
            line = line .. " " .. table.concat(chunks, " ")
          end
          out[#out + 1] = line
          if kind == luafs.S_IFDIR then walk(r) end
        end
      end
    end
    walk("")
    return table.concat(out, "\n")
  end

  it(string.format("agrees on %d random sequences (seeds from %d), across remounts", RUNS, SEED), function()
    local db = dir .. "/fs.db"
    m = mount(db)
    local total = 0
    for run_ = 0, RUNS - 1 do
      local seed = SEED + run_
      local rand = generator(seed)
      local mdir, rdir = m:path("s" .. seed), ref .. "/s" .. seed
      H.check(sys.mkdir(mdir))
      H.check(sys.mkdir(rdir))
      local done = {}
      local function fail(what)
        error(string.format("%s\nsequence seed %d (replay: LUAFS_SQLITEFS_SEED=%d LUAFS_SQLITEFS_RUNS=1)\n%s",
          what, seed, seed, table.concat(done, "\n")), 0)
      end
      for _ = 1, 10 + rand(30) do
        local op = table.pack(draw(rand))
        local want = OPS[op[1]](rdir, table.unpack(op, 2, op.n))
        local got = OPS[op[1]](mdir, table.unpack(op, 2, op.n))
        done[#done + 1] = op[1] .. " " .. tostring(op[2]) .. "  ->  " .. want:sub(1, 60)
        if got ~= want then
          fail(string.format("%s: tmpfs says %s\n   sqlitefs says %s", op[1], want:sub(1, 200), got:sub(1, 200)))
        end
        total = total + 1
      end
      local want = tree(rdir)
      if tree(mdir) ~= want then fail("the trees differ:\n--- tmpfs\n" .. want .. "\n--- sqlitefs\n" .. tree(mdir)) end
      if run_ % 10 == 9 then
        assert(m:unmount())
        assert.are.equal("ok", integrity(db))
        m = mount(db)
        mdir = m:path("s" .. seed)
        if tree(mdir) ~= want then
          fail("after a remount:\n--- tmpfs\n" .. want .. "\n--- sqlitefs\n" .. tree(mdir))
        end
      end
      run("rm -rf " .. q(mdir) .. " " .. q(rdir))
    end
    assert.is_nil(m:log():find("traceback", 1, true), m:log())
    assert.is_true(total > RUNS * 10)
  end)
end)
