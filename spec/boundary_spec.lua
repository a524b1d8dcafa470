-- spec/boundary_spec.lua: input at the edges of what the kernel passes on,
-- through memfs.lua and through passthrough.lua (over a tmpfs directory),
-- each compared with tmpfs itself: names with every byte value, names of
-- 255 and 256 bytes, trees 4 096 levels deep, offsets near 2^63, reads and
-- writes of nothing, extended attributes of 64 KiB, empty directories and
-- renames onto themselves. The results must be tmpfs's, or the errno that
-- the filesystem documents; the host must neither crash nor hang.
local H = require "spec.helpers"

local testing, luafs, sys = H.testing, H.luafs, H.sys
local octal = H.octal
local E = H.err

local O_RDONLY, O_WRONLY, O_RDWR = luafs.O_RDONLY, luafs.O_WRONLY, luafs.O_RDWR
local O_CREAT, O_APPEND, O_DIRECTORY = luafs.O_CREAT, luafs.O_APPEND, luafs.O_DIRECTORY
local AT_REMOVEDIR = luafs.AT_REMOVEDIR
local MAX = math.maxinteger -- 2^63 - 1, the largest file offset

-- The result of a luafs.sys call: its value, or the name of its errno.
local function R(f, ...)
  local v, _, e = f(...)
  if v == nil then return H.errname(e) end
  return v
end

-- "OK" or the errno name of open(path, flags, mode); closes what it opened.
local function EO(path, flags, mode)
  local fd, _, e = sys.open(path, flags, mode)
  if not fd then return H.errname(e) end
  sys.close(fd)
  return "OK"
end

local function stat_of(path)
  local st, _, e = sys.lstat(path)
  if not st then return H.errname(e) end
  return { mode = st.mode, nlink = st.nlink, size = st.size, blocks = st.blocks }
end

local function times(path)
  local st = assert(sys.lstat(path))
  return { st.mtime, st.mtime_nsec, st.ctime, st.ctime_nsec }
end

-- tmpfs's clock ticks every few ms: wait longer between compared times.
local function tick() H.sleep(0.02) end

-- One suite per filesystem. adjust(test, want, name) turns what tmpfs did
-- into what this filesystem documents, where the two differ; log lines
-- that match a pattern of allowed_log are expected.
local function suite(label, script, opts, adjust, allowed_log)
  describe(label, function()
    local fs = testing.mounted(script, opts)
    local ref
    local seq = 0
    local logged

    setup(function() ref = H.shm_dir() end)
    teardown(function() if ref then H.remove(ref) end end)

    -- No input here may crash the host or make it log a script error.
    before_each(function() logged = #fs:log() end)
    after_each(function()
      assert(fs:alive(), "the host died:\n" .. fs:log())
      for line in fs:log():sub(logged + 1):gmatch("[^\n]+") do
        local expected = false
        for _, pattern in ipairs(allowed_log or {}) do
          if line:find(pattern) then expected = true end
        end
        assert(expected or not line:find("traceback", 1, true), "the host logged: " .. line)
      end
    end)

    local function twin(test, f)
      seq = seq + 1
      local name = "t" .. seq
      local mdir, rdir = fs:path(name), ref .. "/" .. name
      H.check(sys.mkdir(mdir))
      H.check(sys.mkdir(rdir))
      local got = f(mdir, name)
      local want = f(rdir, name)
      if adjust then want = adjust(test, want, name) end
      assert.same(want, got)
      return got
    end

    it("takes names with every byte value but NUL and '/'", function()
      local names = {}
      for b = 1, 255 do
        if b ~= 46 and b ~= 47 then names[#names + 1] = string.char(b) end
      end
      local every = {}
      for b = 1, 255 do if b ~= 47 then every[#every + 1] = string.char(b) end end
      names[#names + 1] = table.concat(every) -- 254 bytes, each value once
      names[#names + 1] = "..."
      names[#names + 1] = ".\n."
      names[#names + 1] = "\255\254\128"   -- not UTF-8
      twin("bytes", function(d)
        local bad = {}
        local function check(what, v, want)
          if v ~= want then bad[#bad + 1] = what .. ": " .. tostring(v) end
        end
        for i, n in ipairs(names) do
          local p = d .. "/" .. n
          local fd, _, e = sys.open(p, O_WRONLY | O_CREAT, octal "644")
          check("create " .. i, fd and "OK" or H.errname(e), "OK")
          if fd then
            sys.pwrite(fd, n, 0)
            sys.close(fd)
          end
          check("read " .. i, H.read(p), n)
          check("xattr " .. i, E(sys.lsetxattr, p, "user." .. n, n), "OK")
          check("xattr get " .. i, sys.lgetxattr(p, "user." .. n), n)
        end
        local listing = H.listing(d)
        -- ("user." and the name of 254 bytes pass XATTR_NAME_MAX: ERANGE)
        local o = { count = #listing, bad = bad }
        o.same_names = true
        local want = { ".", ".." }
        for _, n in ipairs(names) do want[#want + 1] = n end
        table.sort(want)
        for i = 1, math.max(#want, #listing) do
          if want[i] ~= listing[i] then o.same_names = false end
        end
        -- directories, symlinks and renames with such names too
        for i, n in ipairs(names) do
          local p = d .. "/" .. n
          check("rename " .. i, E(sys.rename, p, p .. "\1"), "OK")
          check("mkdir " .. i, E(sys.mkdir, p), "OK")
          check("symlink " .. i, E(sys.symlink, n, p .. "/l"), "OK")
          check("readlink " .. i, sys.readlink(p .. "/l"), n)
          check("unlink " .. i, E(sys.unlink, p .. "/l"), "OK")
          check("rmdir " .. i, E(sys.rmdir, p), "OK")
          check("unlink2 " .. i, E(sys.unlink, p .. "\1"), "OK")
        end
        o.after = H.listing(d)
        return o
      end)
    end)

    it("takes names of 255 bytes and answers ENAMETOOLONG from 256 on", function()
      local n255, n256 = string.rep("a", 255), string.rep("b", 256)
      local wide = string.rep("\195\169", 127) .. "e" -- 255 bytes of UTF-8
      twin("long names", function(d)
        local o = {}
        for _, n in ipairs { n255, wide, n256, string.rep("c", 1024), string.rep("c", 1025), string.rep("e", 4000) } do
          local p = d .. "/" .. n
          local r = {}
          r.create = EO(p, O_WRONLY | O_CREAT, octal "644")
          r.stat = stat_of(p)
          r.mkdir = E(sys.mkdir, p .. "x")
          r.mkdir_under = E(sys.mkdir, p .. "/x")
          r.symlink = E(sys.symlink, "target", p .. "s")
          r.symlink_to = E(sys.symlink, n, d .. "/to" .. #n)
          r.readlink = R(sys.readlink, d .. "/to" .. #n)
          r.link = E(sys.link, p, p .. "h")
          r.mknod = E(sys.mkfifo, p .. "f", octal "644")
          r.rename = E(sys.rename, p, p .. "r")
          r.setxattr = E(sys.lsetxattr, p, "user.x", "v")
          r.unlink = E(sys.unlink, p)
          r.rmdir = E(sys.rmdir, p .. "x")
          o[#o + 1] = r
        end
        o.rename_to_long = (H.write(d .. "/short", "s")) or E(sys.rename, d .. "/short", d .. "/" .. n256)
        o.link_to_long = E(sys.link, d .. "/short", d .. "/" .. n256)
        o.rename_to_255 = E(sys.rename, d .. "/short", d .. "/" .. n255)
        o.listing = H.listing(d)
        return o
      end)
    end)

    it("creates a tree 4 096 levels deep, works at its bottom, and removes it", function()
      local LEVELS = 4096
      twin("deep", function(d)
        local o = {}
        local fd = H.check(sys.open(d, O_RDONLY | O_DIRECTORY))
        local made = 0
        for i = 1, LEVELS do
          local ok, _, e = sys.mkdirat(fd, "d", octal "755")
          if not ok then
            o.mkdir_failed = H.errname(e)
            break
          end
          local nfd = H.check(sys.openat(fd, "d", O_RDONLY | O_DIRECTORY))
          sys.close(fd)
          fd, made = nfd, i
        end
        o.made = made
        o.bottom = R(sys.fstatat, fd, ".", luafs.AT_SYMLINK_NOFOLLOW)
        o.bottom = type(o.bottom) == "table" and { o.bottom.mode, o.bottom.nlink } or o.bottom
        local ffd, _, e = sys.openat(fd, "f", O_RDWR | O_CREAT, octal "644")
        o.create = ffd and "OK" or H.errname(e)
        if ffd then
          o.write = R(sys.pwrite, ffd, "at the bottom", 0)
          o.read = R(sys.pread, ffd, 100, 0)
          sys.close(ffd)
          o.stat = R(sys.fstatat, fd, "f", luafs.AT_SYMLINK_NOFOLLOW).size
          o.unlink = E(sys.unlinkat, fd, "f", 0)
        end
        o.top_not_empty = E(sys.rmdir, d .. "/d")
        o.removed = 0
        for _ = made, 1, -1 do
          local pfd = H.check(sys.openat(fd, "..", O_RDONLY | O_DIRECTORY))
          sys.close(fd)
          fd = pfd
          if sys.unlinkat(fd, "d", AT_REMOVEDIR) then o.removed = o.removed + 1 end
        end
        sys.close(fd)
        o.listing = H.listing(d)
        return o
      end)
    end)

    it("reads and writes at offsets near 2^63", function()
      twin("offsets", function(d)
        local fd = H.check(sys.open(d .. "/f", O_RDWR | O_CREAT, octal "644"))
        local o = {}
        o.write_at_max = R(sys.pwrite, fd, "x", MAX)
        o.write_last_byte = R(sys.pwrite, fd, "L", MAX - 1)
        o.size = sys.fstat(fd).size
        o.read_last = R(sys.pread, fd, 1, MAX - 1)
        o.read_past_max = R(sys.pread, fd, 10, MAX - 1)
        o.read_at_max = R(sys.pread, fd, 10, MAX)
        o.write_across = R(sys.pwrite, fd, string.rep("y", 200), MAX - 100)
        o.write_page = R(sys.pwrite, fd, string.rep("p", 4096), MAX - 8192)
        local tail = sys.pread(fd, 16384, MAX - 10000)
        if type(tail) == "string" then tail = { #tail, (tail:gsub("%z+", "0"):gsub("p+", "p")) } end
        o.read_tail = tail
        o.blocks = sys.fstat(fd).blocks
        o.negative_read = R(sys.pread, fd, 1, -1)
        o.negative_write = R(sys.pwrite, fd, "n", -1)
        o.seek_data = R(sys.lseek, fd, 0, luafs.SEEK_DATA)
        o.seek_hole = R(sys.lseek, fd, MAX - 8192, luafs.SEEK_HOLE)
        o.seek_hole_in_hole = R(sys.lseek, fd, MAX - 20000, luafs.SEEK_HOLE)
        o.seek_data_last_page = R(sys.lseek, fd, MAX - 4000, luafs.SEEK_DATA)
        o.seek_data_end = R(sys.lseek, fd, MAX - 1, luafs.SEEK_DATA)
        o.seek_end = R(sys.lseek, fd, 0, luafs.SEEK_END)
        o.fallocate_past = E(sys.fallocate, fd, 0, MAX, 1)
        o.fallocate_huge = E(sys.fallocate, fd, luafs.FALLOC_FL_KEEP_SIZE, 1 << 40, 1 << 40)
        o.punch_huge = E(sys.fallocate, fd, luafs.FALLOC_FL_PUNCH_HOLE | luafs.FALLOC_FL_KEEP_SIZE,
          1 << 40, MAX - (1 << 41))
        o.truncate_max = E(sys.ftruncate, fd, MAX)
        o.truncate_down = E(sys.ftruncate, fd, MAX - 4096)
        o.after_down = { sys.fstat(fd).size, sys.fstat(fd).blocks, R(sys.pread, fd, 10, MAX - 4100) }
        o.truncate_negative = E(sys.ftruncate, fd, -1)
        o.truncate_small = E(sys.ftruncate, fd, 3)
        o.small = { sys.fstat(fd).size, sys.fstat(fd).blocks, R(sys.pread, fd, 10, 0) }
        sys.close(fd)
        o.path_truncate = E(sys.truncate, d .. "/f", MAX)
        o.path_size = sys.lstat(d .. "/f").size
        fd = H.check(sys.open(d .. "/f", O_RDWR | O_APPEND))
        o.append_at_max = R(sys.write, fd, "a")
        sys.close(fd)
        return o
      end)
    end)

    it("reads and writes nothing without changing anything", function()
      twin("zero", function(d)
        local fd = H.check(sys.open(d .. "/f", O_RDWR | O_CREAT, octal "644"))
        H.check(sys.pwrite(fd, "abc", 0))
        local before = times(d .. "/f")
        tick()
        local o = {}
        o.pwrite0 = R(sys.pwrite, fd, "", 0)
        o.pwrite0_far = R(sys.pwrite, fd, "", 1 << 40)
        o.write0 = R(sys.write, fd, "")
        o.pread0 = R(sys.pread, fd, 0, 0)
        o.pread0_far = R(sys.pread, fd, 0, 1 << 40)
        o.read0 = R(sys.read, fd, 0)
        o.at_eof = R(sys.pread, fd, 10, 3)
        o.past_eof = R(sys.pread, fd, 10, 1 << 40)
        o.size = sys.fstat(fd).size
        o.unchanged = times(d .. "/f")
        sys.close(fd)
        fd = H.check(sys.open(d .. "/f", O_WRONLY | O_APPEND))
        o.append0 = R(sys.write, fd, "")
        sys.close(fd)
        o.final = { H.read(d .. "/f"), stat_of(d .. "/f") }
        o.times_kept = H.read(d .. "/f") and (table.concat(times(d .. "/f"), " ") == table.concat(before, " "))
        o.unchanged = table.concat(o.unchanged, " ") == table.concat(before, " ")
        return o
      end)
    end)

    it("keeps extended attribute values of 64 KiB", function()
      local v64 = H.bytes(65536, 5)
      twin("xattrs", function(d)
        H.write(d .. "/f", "x")
        H.check(sys.mkdir(d .. "/dir"))
        local o = {}
        o.set = E(sys.lsetxattr, d .. "/f", "user.big", v64)
        o.get = sys.lgetxattr(d .. "/f", "user.big") == v64
        o.zeros = E(sys.lsetxattr, d .. "/f", "user.zeros", string.rep("\0", 65536))
        o.get_zeros = sys.lgetxattr(d .. "/f", "user.zeros") == string.rep("\0", 65536)
        o.over = E(sys.lsetxattr, d .. "/f", "user.over", v64 .. "!")
        o.replace = E(sys.lsetxattr, d .. "/f", "user.big", v64:reverse(), luafs.XATTR_REPLACE)
        o.replaced = sys.lgetxattr(d .. "/f", "user.big") == v64:reverse()
        o.dir = E(sys.lsetxattr, d .. "/dir", "user.big", v64)
        o.dir_get = sys.lgetxattr(d .. "/dir", "user.big") == v64
        o.shrink = E(sys.lsetxattr, d .. "/f", "user.big", "")
        o.shrunk = sys.lgetxattr(d .. "/f", "user.big")
        -- names whose list passes 64 KiB: listxattr cannot answer
        local many = 0
        for i = 1, 300 do
          if sys.lsetxattr(d .. "/dir", string.format("user.%03d%s", i, string.rep("n", 240)), "") then
            many = many + 1
          end
        end
        o.many = many
        o.list_many = R(sys.llistxattr, d .. "/dir")
        o.list_many = type(o.list_many) == "table" and #o.list_many or o.list_many
        o.get_one = sys.lgetxattr(d .. "/dir", "user.001" .. string.rep("n", 240))
        local list = assert(sys.llistxattr(d .. "/f"))
        table.sort(list)
        o.list = list
        return o
      end)
    end)

    it("lists empty directories", function()
      twin("empty dirs", function(d)
        local o = {}
        H.check(sys.mkdir(d .. "/e"))
        o.fresh = H.listing(d .. "/e")
        o.fresh_stat = stat_of(d .. "/e")
        H.write(d .. "/e/x", "x")
        H.check(sys.unlink(d .. "/e/x"))
        o.emptied = H.listing(d .. "/e")
        o.emptied_stat = stat_of(d .. "/e")
        local dir = H.check(sys.opendir(d .. "/e"))
        local first, again = {}, {}
        for name in dir.read, dir do first[#first + 1] = name end
        o.at_end = dir:read() == nil
        dir:seek(0)
        for name in dir.read, dir do again[#again + 1] = name end
        dir:close()
        table.sort(first)
        table.sort(again)
        o.raw, o.rewound = first, again
        local code, out = H.shell("ls -A " .. H.quote(d .. "/e") .. " | wc -l")
        o.ls = { code, out }
        o.rmdir = E(sys.rmdir, d .. "/e")
        return o
      end)
    end)

    it("renames names onto themselves", function()
      local NOREPLACE, EXCHANGE = luafs.RENAME_NOREPLACE, luafs.RENAME_EXCHANGE
      twin("self rename", function(d)
        H.write(d .. "/f", "file")
        H.check(sys.mkdir(d .. "/dir"))
        H.write(d .. "/dir/in", "in")
        H.check(sys.symlink("f", d .. "/s"))
        H.check(sys.mkfifo(d .. "/p", octal "600"))
        H.check(sys.link(d .. "/f", d .. "/h"))
        local before = {}
        for _, n in ipairs { "f", "dir", "s", "p", "h", "." } do before[n] = times(d .. "/" .. n) end
        tick()
        local o = {}
        for _, n in ipairs { "f", "dir", "s", "p" } do
          local p = d .. "/" .. n
          o[n] = { E(sys.rename, p, p), E(sys.rename, p, p, NOREPLACE), E(sys.rename, p, p, EXCHANGE) }
        end
        o.dir_dot = E(sys.rename, d .. "/dir", d .. "/dir/.")
        o.hard = { E(sys.rename, d .. "/f", d .. "/h"), E(sys.rename, d .. "/h", d .. "/f", NOREPLACE),
                   E(sys.rename, d .. "/h", d .. "/f", EXCHANGE) }
        o.listing = H.listing(d)
        o.contents = { H.read(d .. "/f"), H.read(d .. "/h"), H.read(d .. "/dir/in"), sys.readlink(d .. "/s") }
        o.stats = { stat_of(d .. "/f"), stat_of(d .. "/h"), stat_of(d .. "/dir"), stat_of(d) }
        o.unchanged = {}
        for _, n in ipairs { "f", "dir", "s", "p", "." } do
          o.unchanged[n] = table.concat(times(d .. "/" .. n), " ") == table.concat(before[n], " ")
        end
        return o
      end)
    end)
  end)
end

--[[ tmpfs (Linux 6.18) gets SEEK_DATA and SEEK_HOLE wrong in the last page
below 2^63: SEEK_DATA finds no data there (ENXIO) and SEEK_HOLE answers
-2^63. memfs answers what lseek(2) says: the data where it is, and the
hole at the end of the file. ]]
local function last_page_seeks(test, want)
  if test == "offsets" then
    want.seek_hole = MAX
    want.seek_data_last_page = MAX - 4000
    want.seek_data_end = MAX - 1
  end
  return want
end

suite("memfs.lua at the boundaries", H.example("memfs.lua"), { once = true }, last_page_seeks)

--[[ passthrough.lua hands on tmpfs's answers to lseek, so the -2^63 of
SEEK_HOLE (above) reaches luafs, which answers EIO and logs it, as
luafs(3) says it does for a negative number that is no errno. A tree
deeper than PATH_MAX bytes works as on tmpfs: passthrough.lua opens the
parents of such names in pieces. ]]
suite("passthrough.lua at the boundaries", H.example("passthrough.lua"),
  { once = true, scratch = true, args = { "{scratch}" } },
  function(test, want)
    if test == "offsets" then want.seek_hole = "EIO" end
    return want
  end,
  { "lseek /t%d+/f: lseek returned %-9223372036854775808, which is no errno" })
