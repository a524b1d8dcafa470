-- spec/memfs_spec.lua: lua/examples/memfs.lua must behave like tmpfs.
--
-- luafs.conformance runs its whole battery on memfs: every case runs in a
-- fresh directory of the mount and in one under /dev/shm (tmpfs), and
-- what they observe must be the same. The rest check what that cannot:
-- statfs against a private tmpfs of the same size, files made by another
-- user, hot reload and the pool.
local H = require "spec.helpers"
local conformance = require "luafs.conformance"

local testing, luafs, sys = H.testing, H.luafs, H.sys
local octal = H.octal

local O_RDONLY, O_RDWR, O_CREAT = luafs.O_RDONLY, luafs.O_RDWR, luafs.O_CREAT
local SEEK_DATA = luafs.SEEK_DATA
local GiB, MiB = 1 << 30, 1 << 20

local MEMFS = H.example("memfs.lua")
local q = H.quote

local function sh(cmd) return H.shell(cmd) end

local function run(cmd)
  local code, out = sh(cmd)
  assert(code == 0, "failed (" .. code .. "): " .. cmd .. "\n" .. out)
  return out
end

describe("memfs.lua", function()
  conformance.run(MEMFS, {
    expect = {
      -- Once the directory is gone too, libfuse has no path for the file,
      -- and the calls that it makes only by path fail (memfs.lua's header
      -- says so).
      ["unlinked.dir_removed"] = function(_, _, got, want)
        assert.same({ "OK", "OK", "OK", "OK", "OK", "OK", "OK" }, want.by_path)
        assert.same({ "ESTALE", "ESTALE", "ESTALE", "ESTALE", "ESTALE", "OK", "OK" }, got.by_path)
      end,
    },
  })
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
