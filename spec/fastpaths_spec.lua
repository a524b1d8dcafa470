-- spec/fastpaths_spec.lua: the answers that spare Lua tables, through real
-- mounts of spec/fixtures/cb_fastpaths.lua: luafs.Stat (a struct stat in
-- a userdata that reads and writes like a stat table, filled by the
-- luafs.sys stat calls and taken by getattr and readdir), and readdir
-- returning a luafs.Dir, which the host lists itself.
local H = require "spec.helpers"

local testing, luafs, sys = H.testing, H.luafs, H.sys

local STAT_KEYS = { "dev", "ino", "mode", "nlink", "uid", "gid", "rdev", "size", "blksize", "blocks",
  "atime", "mtime", "ctime", "atime_nsec", "mtime_nsec", "ctime_nsec" }

describe("luafs.Stat", function()
  local d
  before_each(function() d = H.shm_dir() end)
  after_each(function() H.remove(d) end)

  it("reads and writes like a stat table, and pairs over every field", function()
    H.write(d .. "/f", "12345")
    local t = assert(sys.lstat(d .. "/f"))
    local st = luafs.Stat()
    assert.are.equal(st, sys.lstat(d .. "/f", st))
    for _, k in ipairs(STAT_KEYS) do assert.are.equal(t[k], st[k], k) end
    local seen = {}
    for k, v in pairs(st) do seen[#seen + 1] = k; assert.are.equal(t[k], v, k) end
    assert.are.same(STAT_KEYS, seen)
    assert.is_nil(st.nonsense)
    st.size, st.mode = 99, luafs.S_IFDIR | tonumber("700", 8)
    assert.are.equal(99, st.size)
    assert.are.equal(luafs.S_IFDIR | tonumber("700", 8), st.mode)
    st.mtime = 1.25
    assert.are.same({ 1, 250000000 }, { st.mtime, st.mtime_nsec })
    st.mtime = 7
    assert.are.same({ 7, 250000000 }, { st.mtime, st.mtime_nsec })
    st.size = nil
    assert.are.equal(0, st.size)
    assert.matches("luafs.Stat %(mode 040700, size 0%)", tostring(st))
  end)

  it("copies stat tables and other luafs.Stat, and starts zeroed", function()
    H.write(d .. "/f", "abc")
    local t = assert(sys.lstat(d .. "/f"))
    local a = luafs.Stat(t)
    for _, k in ipairs(STAT_KEYS) do assert.are.equal(t[k], a[k], k) end
    local b = luafs.Stat(a)
    b.size = 1
    assert.are.same({ 3, 1 }, { a.size, b.size })
    for _, v in pairs(luafs.Stat()) do assert.are.equal(0, v) end
  end)

  it("refuses what a stat table refuses", function()
    local st = luafs.Stat()
    local function err(f) local ok, e = pcall(f); assert.is_false(ok); return tostring(e) end
    assert.matches("has no field 'bogus'", err(function() st.bogus = 1 end))
    assert.matches("'size' must be an integer", err(function() st.size = "12" end))
    assert.matches("'size' must be an integer", err(function() st.size = 1.5 end))
    assert.matches("'mtime_nsec' out of range", err(function() st.mtime_nsec = 1000000000 end))
    assert.matches("'uid' out of range", err(function() st.uid = -1 end))
    assert.matches("table expected", err(function() luafs.Stat(5) end))
    assert.matches("'mode' must be an integer", err(function() luafs.Stat { mode = "x" } end))
    assert.matches("luafs.Stat expected", err(function() getmetatable(st).__index(5, "size") end))
  end)

  it("fills a table or a luafs.Stat passed to lstat, stat, fstat and fstatat", function()
    H.write(d .. "/f", "hello")
    local want = assert(sys.lstat(d .. "/f"))
    local fd = assert(sys.open(d .. "/f", luafs.O_RDONLY))
    local calls = {
      function(into) return sys.lstat(d .. "/f", into) end,
      function(into) return sys.stat(d .. "/f", into) end,
      function(into) return sys.fstat(fd, into) end,
      function(into) return sys.fstatat(luafs.AT_FDCWD, d .. "/f", 0, into) end,
    }
    for i, call in ipairs(calls) do
      local t = { stale = true, size = -1 }
      assert.are.equal(t, call(t))
      assert.is_true(t.stale, "a field that is no stat field stays")
      local st = luafs.Stat()
      assert.are.equal(st, call(st))
      for _, k in ipairs(STAT_KEYS) do
        if k ~= "atime" and k ~= "atime_nsec" then
          assert.are.equal(want[k], t[k], i .. " " .. k)
          assert.are.equal(want[k], st[k], i .. " " .. k)
        end
      end
      local ok = pcall(call, 5)
      assert.is_false(ok)
    end
    sys.close(fd)
    local st = luafs.Stat()
    local r = table.pack(sys.lstat(d .. "/missing", st))
    assert.are.same({ n = 3, nil, r[2], luafs.ENOENT }, r)
  end)
end)

describe("readdirplus of a luafs.Dir, with attributes cached", function()
  local fs = testing.mounted(H.fixture("cb_fastpaths.lua"), { once = true, scratch = true,
    args = { "{scratch}", "cache" } })

  it("gives the kernel every entry's attributes, so ls -l asks for none", function()
    local dir = fs.scratch .. "/plus"
    assert(sys.mkdir(dir))
    for i = 1, 50 do H.write(dir .. "/f" .. i, string.rep("z", i)) end
    local code, out = H.shell("ls -l " .. H.quote(fs:path("plus")))
    assert(code == 0, out)
    for i = 1, 50 do
      assert.truthy(out:find(" " .. i .. " [^\n]* f" .. i .. "\n"), out)
    end
    -- the root, /plus and /count: nothing for the 50 names
    local calls = assert(sys.lstat(fs:path("count"))).size
    assert.is_true(calls <= 3, calls .. " getattr calls before /count")
  end)
end)

describe("getattr and readdir with luafs.Stat and luafs.Dir", function()
  local fs = testing.mounted(H.fixture("cb_fastpaths.lua"), { once = true, scratch = true,
    args = { "{scratch}" } })

  local function same_stat(a, b, what)
    for _, k in ipairs { "ino", "mode", "nlink", "uid", "gid", "size", "blocks", "mtime", "mtime_nsec",
                         "ctime", "ctime_nsec" } do
      assert.are.equal(a[k], b[k], what .. ": " .. k)
    end
  end

  it("answers getattr with a luafs.Stat as with a stat table", function()
    H.write(fs.scratch .. "/f", string.rep("x", 12345))
    H.write(fs.scratch .. "/t_f", "abc")
    assert(sys.symlink("f", fs.scratch .. "/link"))
    for _, name in ipairs { "f", "t_f", "link" } do
      same_stat(assert(sys.lstat(fs.scratch .. "/" .. name)), assert(sys.lstat(fs:path(name))), name)
    end
    assert.are.equal("ENOENT", H.err(sys.lstat, fs:path("missing")))
  end)

  it("answers EIO, with a log line, for a luafs.Stat without a file type", function()
    assert.are.equal("EIO", H.err(sys.lstat, fs:path("bad_mode")))
    assert(H.log_line(fs, "getattr /bad_mode"), fs:log())
  end)

  it("lists a returned luafs.Dir completely, with inode numbers and types, in pages", function()
    local dir = fs.scratch .. "/big"
    assert(sys.mkdir(dir))
    local N = 20000
    local code, out = H.shell("cd " .. H.quote(dir) .. " && seq -f 'n%06g' 1 " .. N
      .. " | xargs touch && mkdir sub && ln -s n000001 sym")
    assert(code == 0, out)
    local want = {}
    for name in H.lfs.dir(dir) do want[name] = assert(sys.lstat(dir .. "/" .. name)).ino end
    local got, count = {}, 0
    local stream = assert(sys.opendir(fs:path("big")))
    while true do
      local name, ino, dtype = stream:read()
      if not name then break end
      assert.is_nil(got[name], "listed twice: " .. name)
      got[name], count = ino, count + 1
      if name == "sub" then assert.are.equal(luafs.DT_DIR, dtype) end
      if name == "sym" then assert.are.equal(luafs.DT_LNK, dtype) end
      if name:match("^n") then assert.are.equal(luafs.DT_REG, dtype) end
    end
    stream:close()
    assert.are.equal(N + 4, count)
    for name, ino in pairs(want) do
      if name ~= "." and name ~= ".." then assert.are.equal(ino, got[name], name) end
    end
    -- going back to an offset seen before lists the same entries again
    stream = assert(sys.opendir(fs:path("big")))
    local first = {}
    for i = 1, 5 do first[i] = stream:read() end
    local pos = stream:tell()
    local after = stream:read()
    stream:seek(pos)
    assert.are.equal(after, stream:read())
    stream:seek(0)
    assert.are.equal(first[1], stream:read())
    stream:close()
  end)

  it("takes luafs.Stat in readdir entries", function()
    local names = {}
    local stream = assert(sys.opendir(fs:path("plain")))
    while true do
      local name, ino = stream:read()
      if not name then break end
      names[#names + 1] = name .. "=" .. ino
    end
    stream:close()
    table.sort(names)
    assert.are.same({ "..=102", ".=101", "x=101", "y=101" }, names)
  end)

  it("answers EIO, with a log line, for a closed luafs.Dir", function()
    local r = table.pack(sys.opendir(fs:path("closed")))
    local stream = r[1]
    local ok
    if stream then
      ok = stream:read()
      stream:close()
    end
    assert.is_nil(ok)
    assert(H.log_line(fs, "closed luafs.Dir"), fs:log())
  end)
end)
