-- spec/passthrough_spec.lua: lua/examples/passthrough.lua, mounted over a
-- fresh tmpfs directory, must behave like tmpfs itself.
--
-- luafs.conformance runs its battery on it (but for the calls on a file
-- open after its last name is gone: passthrough.lua keeps such a file as
-- libfuse's .fuse_hidden* name), reading back in the mirrored directory
-- what it wrote through the mount. Here: the locks, as "twins" (the same
-- function runs in a directory of the mount and in one of another tmpfs,
-- and what it observes must be the same), and what a twin cannot see: the
-- mirrored directory, memory use of the host, very long paths, owners of
-- files created by another user, and real tools at work inside the mount;
-- and what the no-auto-inval-data mode changes: the getattr requests
-- before reads, and what a reader of a file changed in ROOT sees.
local H = require "spec.helpers"
local conformance = require "luafs.conformance"
local system = require "system"

local testing, luafs, sys, lfs = H.testing, H.luafs, H.sys, H.lfs
local octal = H.octal

local O_RDONLY, O_RDWR = luafs.O_RDONLY, luafs.O_RDWR
local F_GETLK, F_SETLK, F_SETLKW = luafs.F_GETLK, luafs.F_SETLK, luafs.F_SETLKW
local F_RDLCK, F_WRLCK, F_UNLCK = luafs.F_RDLCK, luafs.F_WRLCK, luafs.F_UNLCK
local SEEK_SET = luafs.SEEK_SET
local MiB = 1 << 20

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

-- The battery's options for passthrough.lua with the script arguments args,
-- skipping the cases in skip too.
local function battery(args, skip)
  return { args = args, source = "{scratch}", skip = { "unlinked_open", table.unpack(skip or {}) },
    expect = {
      -- tmpfs refuses ZERO_RANGE: the mount must pass that refusal on
      ["files.fallocate"] = function(got)
        assert.are.equal(H.errname(luafs.EOPNOTSUPP), got.zero_range)
        assert.are.equal(H.errname(luafs.ENOSPC), got.no_space)
      end,
      ["attributes.xattrs"] = function(got) assert.are.equal("OK", got.set) end,
      -- The kernel walks a path relative to the working directory one
      -- component at a time, but the script gets the name from the root.
      ["long.relative"] = function(got)
        assert.are.equal("long way ", got.in_src)
        assert.are.equal("OK", got.rename_exchange)
        assert.same({ "ENOENT", "ENOENT", "ENOENT" }, { got.missing[1], got.missing_parent[1], got.missing_parent[2] })
        assert.same({ "ENOTDIR", "ENOTDIR" }, { got.under_file[1], got.under_file[4] })
        assert.same({ "ENAMETOOLONG", "ENAMETOOLONG" }, { got.over_name_max[1], got.over_name_max[4] })
      end,
      ["long.deep"] = function(got)
        assert.are.equal("long way ", got.in_src)
        assert.same({ "ENOENT", "ENOTDIR", "ENAMETOOLONG" },
          { got.missing[1], got.under_file[1], got.over_name_max[1] })
      end,
    },
  }
end

describe("passthrough.lua", function()
  conformance.run(PASSTHROUGH, battery { "{scratch}" })
end)

describe("passthrough.lua cached-coherent", function()
  -- A change through one name of a hard-linked file (a chmod, and the
  -- ctime that a link or unlink moves) shows through its other names once
  -- the invalidation has run, not when the call returns (see the example's
  -- header): those two cases would race with it; "with changes made in
  -- ROOT" waits for it.
  conformance.run(PASSTHROUGH, battery({ "{scratch}", "cached-coherent" },
    { "names.hardlinks", "attributes.timestamps" }))
end)

describe("passthrough.lua cached-coherent, with changes made in ROOT", function()
  -- The kernel caches for an hour here: what shows through the mount after
  -- a change in ROOT came from an invalidation.  Each test first has the
  -- kernel cache the names it changes (stat, read, readdir through the
  -- mount), then changes ROOT directly and waits for the mount to agree.
  local fs = testing.mounted(PASSTHROUGH, { once = true, scratch = true,
    args = { "{scratch}", "cached-coherent" } })
  local DEADLINE = 10
  local n = 0
  local base, dir           -- the test's directory, in ROOT and through the mount

  before_each(function()
    n = n + 1
    base = fs.scratch .. "/t" .. n
    dir = fs:path("t" .. n)
    H.check(sys.mkdir(base))
    H.write(base .. "/f", "old contents")
    -- the kernel looks everything up once, and caches it
    assert.are.equal("old contents", H.read(dir .. "/f"))
    assert.same({ ".", "..", "f" }, H.listing(dir))
    assert(sys.lstat(dir))
  end)

  -- Waits until f() returns a true value; fails with what it last saw.
  local function shows(what, f)
    local last
    local ok = H.wait_until(function()
      local v, seen = f()
      last = seen
      return v
    end, DEADLINE)
    assert(ok, what .. " did not show through the mount; last seen: " .. tostring(last))
  end

  local function field(path, k)
    local st, _, e = sys.lstat(path)
    if not st then return H.errname(e) end
    return st[k]
  end

  it("shows a write and a truncate", function()
    H.write(base .. "/f", "new and longer contents")
    shows("the write", function()
      local got = H.read(dir .. "/f")
      return got == "new and longer contents", got
    end)
    H.check(sys.truncate(base .. "/f", 3))
    shows("the truncate", function()
      local got = H.read(dir .. "/f")
      return got == "new" and field(dir .. "/f", "size") == 3, got
    end)
  end)

  it("shows chmod, chown and utime", function()
    H.check(sys.chmod(base .. "/f", octal "604"))
    shows("the chmod", function()
      local mode = field(dir .. "/f", "mode")
      return mode == luafs.S_IFREG | octal "604", mode
    end)
    H.check(sys.lchown(base .. "/f", 1234, 5678))
    shows("the chown", function()
      return field(dir .. "/f", "uid") == 1234 and field(dir .. "/f", "gid") == 5678,
        field(dir .. "/f", "uid")
    end)
    H.check(sys.utimensat(luafs.AT_FDCWD, base .. "/f", 1000, 5, 2000, 7, 0))
    shows("the utime", function()
      return field(dir .. "/f", "mtime") == 2000 and field(dir .. "/f", "mtime_nsec") == 7,
        field(dir .. "/f", "mtime")
    end)
  end)

  it("shows a rename, a link and an unlink", function()
    H.check(sys.rename(base .. "/f", base .. "/g"))
    shows("the rename", function()
      local names = table.concat(H.listing(dir), " ")
      return field(dir .. "/f", "size") == "ENOENT" and H.read(dir .. "/g") == "old contents"
        and names == ". .. g", names
    end)
    H.check(sys.link(base .. "/g", base .. "/h"))
    shows("the link", function()
      return field(dir .. "/g", "nlink") == 2 and field(dir .. "/h", "nlink") == 2,
        field(dir .. "/g", "nlink")
    end)
    H.check(sys.unlink(base .. "/h"))
    shows("the unlink", function()
      return field(dir .. "/h", "size") == "ENOENT" and field(dir .. "/g", "nlink") == 1,
        field(dir .. "/g", "nlink")
    end)
  end)

  it("shows a link and an unlink made through the mount in the file's other names", function()
    H.check(sys.link(dir .. "/f", dir .. "/g"))
    shows("the link", function() return field(dir .. "/f", "nlink") == 2, field(dir .. "/f", "nlink") end)
    H.check(sys.unlink(dir .. "/g"))
    shows("the unlink", function() return field(dir .. "/f", "nlink") == 1, field(dir .. "/f", "nlink") end)
  end)

  it("shows a mkdir, an rmdir and a renamed directory's contents", function()
    local nlink = field(dir, "nlink")
    H.check(sys.mkdir(base .. "/d"))
    H.write(base .. "/d/inner", "inside")
    shows("the mkdir", function()
      return field(dir, "nlink") == nlink + 1 and H.read(dir .. "/d/inner") == "inside",
        field(dir, "nlink")
    end)
    H.check(sys.rename(base .. "/d", base .. "/e"))
    shows("the directory's rename", function()
      return field(dir .. "/d/inner", "size") == "ENOENT" and H.read(dir .. "/e/inner") == "inside",
        field(dir .. "/d/inner", "size")
    end)
    H.check(sys.unlink(base .. "/e/inner"))
    H.check(sys.rmdir(base .. "/e"))
    shows("the rmdir", function()
      return field(dir .. "/e", "mode") == "ENOENT" and field(dir, "nlink") == nlink,
        field(dir, "nlink")
    end)
  end)

  it("shows a renamed directory's contents in the directories below it", function()
    H.check(sys.mkdir(base .. "/d"))
    H.check(sys.mkdir(base .. "/d/sub"))
    H.check(sys.mkdir(base .. "/d/sub/deeper"))
    H.write(base .. "/d/sub/deeper/inner", "inside")
    -- a stat, not a read: a read would make the kernel ask for the atime again
    shows("the new directories", function()
      local size = field(dir .. "/d/sub/deeper/inner", "size")
      return size == 6, size
    end)
    H.check(sys.rename(base .. "/d", base .. "/e"))
    shows("the directory's rename", function()
      local size = field(dir .. "/d/sub/deeper/inner", "size")
      return size == "ENOENT" and field(dir .. "/e/sub/deeper/inner", "size") == 6, size
    end)
  end)

  it("shows a change that inotify lost, in a directory below, after its queue overflowed", function()
    local max = tonumber(H.read("/proc/sys/fs/inotify/max_queued_events"))
    if max > 1000000 then
      pending("max_queued_events is " .. max .. ": too many changes to make")
      return
    end
    H.check(sys.mkdir(base .. "/d"))
    H.write(base .. "/d/inner", "inside")
    H.check(sys.chmod(base .. "/d/inner", octal "644"))
    shows("the new directory", function()
      local mode = field(dir .. "/d/inner", "mode")
      return mode == luafs.S_IFREG | octal "644", mode
    end)
    H.write(base .. "/g", "")
    -- the host reads no event while it is stopped; changes to two names in
    -- turn, which inotify cannot merge, fill its queue, so the chmod is lost
    assert.is_true(fs:kill("STOP"))
    local ok, err = pcall(function()
      for _ = 1, max // 2 + 100 do
        H.check(sys.chmod(base .. "/f", octal "644"))
        H.check(sys.chmod(base .. "/g", octal "644"))
      end
      H.check(sys.chmod(base .. "/d/inner", octal "600"))
    end)
    assert.is_true(fs:kill("CONT"))
    assert(ok, err)
    shows("the chmod", function()
      local mode = field(dir .. "/d/inner", "mode")
      return mode == luafs.S_IFREG | octal "600", mode
    end)
  end)
end)

describe("passthrough.lua cached-coherent, requests", function()
  local fs = testing.mounted(H.fixture("pt_counting.lua"), { once = true, scratch = true,
    args = { "{scratch}", "cached-coherent" } })

  local function getattrs(path)
    local report = assert(H.read(fs:path(".counts")))
    for count, p in report:gmatch("(%d+) (%S+)") do
      if p == path then return tonumber(count) end
    end
    return 0
  end

  it("answers repeated stats from the kernel's cache until ROOT changes", function()
    H.write(fs.scratch .. "/f", "x")
    for _ = 1, 5 do assert(sys.lstat(fs:path("f"))) end
    assert.are.equal(1, getattrs("/f"))
    H.check(sys.chmod(fs.scratch .. "/f", octal "600"))
    assert.is_true(H.wait_until(function()
      return sys.lstat(fs:path("f")).mode == luafs.S_IFREG | octal "600"
    end, 10))
    assert.are.equal(2, getattrs("/f"))
  end)
end)

describe("passthrough.lua no-auto-inval-data", function()
  conformance.run(PASSTHROUGH, battery { "{scratch}", "no-auto-inval-data" })
end)

describe("passthrough.lua no-auto-inval-data against the default mode", function()
  -- The two modes side by side, over directories of their own.  `luafs
  -- --stats` counts the getattr requests that reads cause; a file changed
  -- directly in ROOT while a descriptor of it is open through the mount
  -- shows what a reader of that descriptor sees (the example's header).
  local mounts = {
    default = testing.mounted(PASSTHROUGH, { once = true, scratch = true, args = { "{scratch}" } }),
    noinval = testing.mounted(PASSTHROUGH, { once = true, scratch = true,
      args = { "{scratch}", "no-auto-inval-data" } }),
  }
  local N = 50
  local KiB4 = 4096
  local seq = 0

  -- A fresh file of `data` in mode's ROOT; returns its path in ROOT and
  -- through the mount.
  local function file(mode, data)
    seq = seq + 1
    local m = mounts[mode]
    local name = "f" .. seq
    H.write(m.scratch .. "/" .. name, data)
    return m.scratch .. "/" .. name, m:path(name)
  end

  local function luafs_cmd(...)
    local words = { H.quote(H.host) }
    for _, w in ipairs { ... } do words[#words + 1] = H.quote(w) end
    local code, out = sh(table.concat(words, " ") .. " 2>&1")
    assert(code == 0, out)
    return out
  end

  -- The getattr and read_buf calls that f() caused in mode's host.
  local function requests(mode, f)
    local m = mounts[mode]
    luafs_cmd("--stats-reset", m.mountpoint)
    f()
    local out = luafs_cmd("--stats", m.mountpoint)
    return tonumber(out:match("\ngetattr +(%d+) ")) or 0, tonumber(out:match("\nread_buf +(%d+) ")) or 0
  end

  -- N preads of KiB4 bytes of fd at offsets from offset_of(i), checked
  -- against data.
  local function preads(fd, data, offset_of, size)
    size = size or KiB4
    for i = 1, N do
      local at = offset_of(i)
      local got = H.check(sys.pread(fd, size, at))
      if got ~= data:sub(at + 1, at + size) then error("wrong data at " .. at, 2) end
    end
  end

  it("reads with O_DIRECT without asking for attributes first", function()
    local data = H.bytes(MiB, 7)
    for _, mode in ipairs { "default", "noinval" } do
      local _, path = file(mode, data)
      local fd = H.check(sys.open(path, O_RDONLY | luafs.O_DIRECT))
      H.check(sys.pread(fd, KiB4, 0))
      local getattrs, reads = requests(mode, function()
        preads(fd, data, function(i) return (i * 37 % 256) * KiB4 end)
      end)
      sys.close(fd)
      assert.is_true(reads >= N, mode .. ": read_buf calls " .. reads)
      if mode == "default" then
        assert.is_true(getattrs >= N, "default: getattr calls " .. getattrs)
      else
        assert.are.equal(0, getattrs, "no-auto-inval-data: getattr calls")
      end
    end
  end)

  it("reads a file kept open from the kernel's pages without asking, except past the size it knows", function()
    local data = H.bytes(10000, 3)
    for _, mode in ipairs { "default", "noinval" } do
      local _, path = file(mode, data)
      local fd = H.check(sys.open(path, O_RDONLY))
      H.check(sys.pread(fd, KiB4, 0))
      local inside = requests(mode, function() preads(fd, data, function() return 0 end) end)
      -- up to the end exactly is inside; one byte more is past it
      local to_end = requests(mode, function() preads(fd, data, function() return 8192 end, 1808) end)
      local past = requests(mode, function() preads(fd, data, function() return 8192 end, 1809) end)
      sys.close(fd)
      if mode == "default" then
        assert.is_true(inside >= N and to_end >= N, "default: getattr calls " .. inside .. ", " .. to_end)
      else
        assert.same({ 0, 0 }, { inside, to_end }, "no-auto-inval-data: getattr calls")
      end
      assert.is_true(past >= N, mode .. ": getattr calls for reads past the end " .. past)
    end
  end)

  -- What reads through a descriptor opened before a same-size change in
  -- ROOT return; every read stays within the size the kernel knows.
  local function reader(mode)
    local src, path = file(mode, "old contents")
    local o = {}
    local direct = H.check(sys.open(path, O_RDONLY | luafs.O_DIRECT))
    local fd = H.check(sys.open(path, O_RDONLY))
    o.before = sys.pread(fd, 12, 0)
    H.write(src, "new contents")
    o.same_fd = sys.pread(fd, 12, 0)
    o.direct = sys.pread(direct, 12, 0)
    o.same_fd_after_direct = sys.pread(fd, 12, 0)
    local again = H.check(sys.open(path, O_RDONLY))
    o.reopened = sys.pread(again, 12, 0)
    o.same_fd_after_reopen = sys.pread(fd, 12, 0)
    sys.close(again)
    -- a change of size shows once the kernel learns the size
    H.write(src, "newest contents")
    o.grown_same_fd = sys.pread(fd, 12, 0)
    o.grown_size = sys.lstat(path).size
    o.grown_after_stat = sys.pread(fd, 15, 0)
    sys.close(fd)
    sys.close(direct)
    return o
  end

  it("shows a change made in ROOT to a reader at its next read in the default mode", function()
    assert.same({ before = "old contents", same_fd = "new contents", direct = "new contents",
      same_fd_after_direct = "new contents", reopened = "new contents", same_fd_after_reopen = "new contents",
      grown_same_fd = "newest conte", grown_size = 15, grown_after_stat = "newest contents" },
      reader("default"))
  end)

  it("keeps the kernel's pages for an open file until an open or a new size drops them", function()
    assert.same({ before = "old contents", same_fd = "old contents", direct = "new contents",
      same_fd_after_direct = "old contents", reopened = "new contents", same_fd_after_reopen = "new contents",
      grown_same_fd = "new contents", grown_size = 15, grown_after_stat = "newest contents" },
      reader("noinval"))
  end)

  it("refuses cached-coherent with it", function()
    local ok, err = pcall(testing.mount, PASSTHROUGH, { scratch = true,
      args = { "{scratch}", "cached-coherent", "no-auto-inval-data" } })
    assert.is_false(ok)
    assert.truthy(tostring(err):find("cached-coherent and no-auto-inval-data do not combine", 1, true), err)
  end)
end)

describe("passthrough.lua on its own", function()
  local fs = testing.mounted(PASSTHROUGH, { once = true, scratch = true, args = { "{scratch}" } })
  local ref
  local seq = 0

  setup(function() ref = reference_dir() end)
  teardown(function() if ref then H.remove(ref) end end)

  -- twin(f): f(dir) runs in a fresh directory of the mount and in a fresh
  -- reference directory; both runs must return the same value.
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

  describe("the mirror", function()
    it("reports the mirrored filesystem's statfs", function()
      local m = assert(sys.statvfs(fs.mountpoint))
      local s = assert(sys.statvfs(fs.scratch))
      for _, k in ipairs { "bsize", "frsize", "blocks", "files", "namemax" } do
        assert.are.equal(s[k], m[k], k)
      end
      assert.is_true(math.abs(s.bfree - m.bfree) < 1024, "bfree")
    end)

    it("passes inode numbers through (use_ino)", function()
      H.write(fs:path("ino"), "x")
      assert.are.equal(sys.lstat(fs.scratch .. "/ino").ino, sys.lstat(fs:path("ino")).ino)
    end)

    it("keeps extended attributes of the mount's root (its name in the mirrored tree is \".\")", function()
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

describe("passthrough.lua listing a large directory", function()
  -- The kernel asks for a directory a buffer at a time; the entry that did
  -- not fit one buffer starts the next, and a seek anywhere else restarts
  -- the stream there: every entry comes once, as on tmpfs.
  local COUNT = 3000

  local function fill(dir)
    H.check(sys.mkdir(dir))
    for i = 1, COUNT do
      -- names of every length from 1 to 200 bytes, so that the buffers
      -- end at varying places
      local name = ("%d-"):format(i) .. string.rep("n", i % 200)
      H.write(dir .. "/" .. name, "")
    end
  end

  -- The entries of the directory at path, in the order read, and as a
  -- map of name to inode; through a luafs.Dir of the spec's own process.
  local function entries(path)
    local dir = H.check(sys.opendir(path))
    local names, inos = {}, {}
    while true do
      local name, ino = dir:read()
      if not name then break end
      assert.is_nil(inos[name], "listed twice: " .. name)
      names[#names + 1], inos[name] = name, ino
    end
    dir:close()
    return names, inos
  end

  for _, case in ipairs({
    { name = "passthrough.lua", script = PASSTHROUGH },
    { name = "a script that also reads its streams", script = H.fixture("dir_tell.lua") },
  }) do
    describe(case.name, function()
      local fs = testing.mounted(case.script, { once = true, scratch = true, args = { "{scratch}" } })

      local filled = {}
      local function made(name)
        if not filled[name] then
          fill(fs.scratch .. "/" .. name)
          filled[name] = true
        end
        return name
      end

      it("lists every entry once, with its inode", function()
        made("strict")
        local _, want = entries(fs.scratch .. "/strict")
        local names, got = entries(fs:path("strict"))
        assert.are.equal(COUNT + 2, #names)
        assert.same(want, got)
      end)

      it("goes on from a position told, after reading past it", function()
        local dir = H.check(sys.opendir(fs:path(made("big"))))
        local first = {}
        for i = 1, 1000 do first[i] = dir:read() end
        local pos = H.check(dir:tell())
        local after = {}
        for i = 1, 700 do after[i] = dir:read() end
        H.check(dir:seek(pos))
        for i = 1, 700 do assert.are.equal(after[i], (dir:read())) end
        H.check(dir:seek(0))
        for i = 1, 1000 do assert.are.equal(first[i], (dir:read())) end
        dir:close()
      end)

      it("lists each remaining entry once when entries go during the listing", function()
        local path = fs.scratch .. "/" .. made("shrinking")
        local dir = H.check(sys.opendir(fs:path("shrinking")))
        local seen = {}
        for _ = 1, 1500 do seen[assert(dir:read())] = true end
        local gone = {}
        for name in pairs(select(2, entries(path))) do
          if not seen[name] and #gone < 500 then
            gone[#gone + 1] = name
            H.check(sys.unlink(path .. "/" .. name))
          end
        end
        while true do
          local name = dir:read()
          if not name then break end
          assert.is_nil(seen[name], "listed twice: " .. name)
          seen[name] = true
        end
        dir:close()
        for name in pairs(select(2, entries(path))) do assert.is_true(seen[name], name) end
      end)
    end)
  end
end)

describe("passthrough.lua cached-coherent, out of inotify watches", function()
  -- In a user namespace of its own (and a mount namespace, which ends
  -- with it, mount and all) the user's watches are capped at 8: looking
  -- into 12 directories runs out, and the log says so once.
  it("logs once that changes in directories not watched show late", function()
    local code = H.shell("unshare -Urm true")
    if code ~= 0 then
      io.stderr:write("\npassthrough_spec: no user namespaces here: skipping the watch limit test\n")
      return
    end
    local dir = H.shm_dir()
    local ok, err = pcall(function()
      H.check(sys.mkdir(dir .. "/src"))
      for i = 1, 12 do H.check(sys.mkdir(dir .. "/src/d" .. i)) end
      H.check(sys.mkdir(dir .. "/mnt"))
      local q = H.quote
      local script = table.concat({
        "echo 8 > /proc/sys/user/max_inotify_watches || exit 1",
        ("LUAFS_READY_FILE=%s %s %s %s -f -- %s cached-coherent 2>%s &"):format(q(dir .. "/ready"),
          q(H.host), q(PASSTHROUGH), q(dir .. "/mnt"), q(dir .. "/src"), q(dir .. "/log")),
        "host=$!",
        ("until [ -s %s ]; do kill -0 $host || exit 2; sleep 0.05; done"):format(q(dir .. "/ready")),
        ("for i in $(seq 12); do ls %s/d$i || exit 3; done"):format(q(dir .. "/mnt")),
        ("umount %s"):format(q(dir .. "/mnt")),
        "wait $host",
      }, "\n")
      local rc, out = H.shell("unshare -Urm sh -c " .. q(script))
      assert.are.equal(0, rc, out)
      local log = assert(H.read(dir .. "/log"))
      local lines = {}
      for line in log:gmatch("[^\n]*no inotify watch left[^\n]*") do lines[#lines + 1] = line end
      assert.are.equal(1, #lines, log)
      assert.truthy(lines[1]:find("max_user_watches", 1, true), log)
    end)
    H.remove(dir)
    assert(ok, err)
  end)
end)

describe("passthrough.lua's memo of names", function()
  -- rel, the table of names worked out from paths, starts afresh once its
  -- paths add up to a bound, so a walk of long paths leaves the state
  -- small: 800 names of about 2 800 bytes each would hold 4.5 MB.
  local fs = testing.mounted(PASSTHROUGH, { once = true, scratch = true,
    options = { "-o", "states=1" }, args = { "{scratch}" } })

  it("keeps the Lua state small through a walk of long paths", function()
    local deep = {}
    for i = 1, 10 do deep[i] = ("%02d"):format(i) .. string.rep("d", 248) end
    local rel_dir = table.concat(deep, "/")
    local q = H.quote
    local code, out = sh("mkdir -p " .. q(fs.scratch .. "/" .. rel_dir) .. " && cd " .. q(fs.scratch
      .. "/" .. rel_dir) .. " && for i in $(seq 800); do : > f$i-" .. string.rep("n", 200) .. "; done")
    assert(code == 0, out)
    -- one stat through the mount per name, each a lookup and a getattr
    code, out = sh("cd " .. q(fs:path(rel_dir)) .. " && for f in f*; do stat -c %s \"$f\"; done | sort -u")
    assert(code == 0, out)
    assert.are.equal("0\n", out)
    local _, stats = sh(q(H.host) .. " --stats " .. q(fs.mountpoint) .. " 2>&1")
    local kib = assert(tonumber(stats:match("\n1%s+(%d+)")), stats)
    assert.is_true(kib < 2048, "Lua memory of the state: " .. kib .. " KiB\n" .. stats)
  end)
end)
