-- spec/sqlitefs_spec.lua: lua/examples/sqlitefs.lua must behave like
-- tmpfs, and keep its files across remounts, reloads and a kill -9.
--
-- luafs.conformance runs its battery on it, but for what sqlitefs does
-- not do (fallocate, whiteouts, calls on a file open after its last name
-- is gone). sqlitefs leaves permission checks to the kernel, so every
-- mount here has -o default_permissions. The rest
-- remounts, kills the host, reloads, holds SQLite's write lock from
-- outside, and replays seeded random operations with a remount in the
-- middle.
local H = require "spec.helpers"
local conformance = require "luafs.conformance"
local luasql = require "luasql.sqlite3"

local testing, luafs, sys, lfs = H.testing, H.luafs, H.sys, H.lfs
local octal = H.octal

local O_RDONLY, O_WRONLY, O_RDWR = luafs.O_RDONLY, luafs.O_WRONLY, luafs.O_RDWR
local O_CREAT, O_EXCL, O_TRUNC, O_APPEND = luafs.O_CREAT, luafs.O_EXCL, luafs.O_TRUNC, luafs.O_APPEND
local O_NONBLOCK = luafs.O_NONBLOCK
local SEEK_DATA, SEEK_HOLE = luafs.SEEK_DATA, luafs.SEEK_HOLE
local GiB, MiB = 1 << 30, 1 << 20

local SQLITEFS = H.example("sqlitefs.lua")
local OPTIONS = { "-o", "default_permissions" }
local E = H.err
local q = H.quote

local function sh(cmd) return H.shell(cmd) end

local function run(cmd)
  local code, out = sh(cmd)
  assert(code == 0, "failed (" .. code .. "): " .. cmd .. "\n" .. out)
  return out
end

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
  conformance.run(SQLITEFS, { options = OPTIONS, args = { "{scratch}/fs.db" }, scratch = true,
    skip = { "fallocate", "whiteout", "unlinked_open" } })
end)

describe("sqlitefs.lua on its own", function()
  local fs = testing.mounted(SQLITEFS, { once = true, scratch = true, options = OPTIONS,
                                         args = { "{scratch}/fs.db" } })

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
    -- the kernel sends the write's release after close(2) returns, and the
    -- transaction it runs may still hold the lock: wait for it as sqlitefs does
    local c = assert(env:connect(db, 5000))
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
