-- spec/users_spec.lua: luafs run by ordinary users, and allow_other.
--
-- Needs root (CI runs as root): it creates two users of its own, lets one
-- mount through fusermount3 and the other try to get in, and restores what
-- it changes: the users are deleted, /etc/fuse.conf gets its old text back
-- and /dev/fuse its old mode (ordinary users need it readable and writable,
-- mode 0666, as Debian's udev rules make it). A lock file keeps two runs of
-- this spec from changing those at the same time.
local H = require "spec.helpers"

local testing, sys, lfs = H.testing, H.sys, H.lfs
local q, octal = H.quote, H.octal

local MEMFS = H.example("memfs.lua")
local PASSTHROUGH = H.example("passthrough.lua")
local FUSE_CONF = "/etc/fuse.conf"
local LOCK = "/tmp/luafs-users-spec.lock"

local WARNING = "luafs: warning: allow_other without default_permissions: the kernel checks "
  .. "no permissions, so other users can do whatever the script allows; check "
  .. "luafs.context() in the script or add -o default_permissions"

-- Runs the shell command line cmd as user u; returns its status and output.
local function as(u, cmd)
  return H.shell(string.format("setpriv --reuid=%d --regid=%d --init-groups -- /bin/sh -c %s",
    u.uid, u.gid, q(cmd)))
end

local function must(code, out, what)
  assert(code == 0, (what or "command") .. " failed: " .. tostring(out))
  return out
end

-- The fields of the mountinfo line of mountpoint mnt.
local function mountinfo(mnt)
  for line in H.read("/proc/self/mountinfo"):gmatch("[^\n]+") do
    local left, right = line:match("^(.-) %- (.*)$")
    local mp = left and left:match("^%S+ %S+ %S+ %S+ (%S+)")
    if mp == mnt then
      local fstype, source, super = right:match("^(%S+) (%S+) (%S+)")
      return { fstype = fstype, source = source, super = super }
    end
  end
end

local function uid_of_process(pid)
  local status = H.read("/proc/" .. pid .. "/status")
  return tonumber(status:match("\nUid:%s+(%d+)"))
end


-- testing.mount, with an unmount after the test even when it failed.
local mount, unmount_all = H.mount_tracker()

describe("ordinary users", function()
  local users = {}
  local a, b
  local lock_file, saved_conf, saved_mode
  local dirs = {}

  local function fresh_dir(owner)
    local d = H.temp_dir()
    dirs[#dirs + 1] = d
    assert(sys.chmod(d, octal "755"))
    if owner then assert(sys.chown(d, owner.uid, owner.gid)) end
    return d
  end

  local function make_user(tag)
    local name = string.format("luafs-spec-%s-%d", tag, sys.getpid())
    local code = H.shell("id -u " .. name)
    if code ~= 0 then
      must(H.shell("useradd --system --no-create-home --user-group --shell /usr/sbin/nologin "
        .. name), "useradd " .. name)
    end
    users[#users + 1] = name
    local _, uid = H.shell("id -u " .. name)
    local _, gid = H.shell("id -g " .. name)
    return { name = name, uid = tonumber(uid), gid = tonumber(gid) }
  end

  local function set_fuse_conf(user_allow_other)
    local text = (saved_conf or ""):gsub("\n[ \t]*user_allow_other[^\n]*", "\n")
      :gsub("^[ \t]*user_allow_other[^\n]*", "")
    if user_allow_other then text = text .. "\nuser_allow_other\n" end
    H.write(FUSE_CONF, text)
  end

  setup(function()
    assert.are.equal(0, sys.geteuid(), "users_spec needs root, to create its users")
    lock_file = assert(io.open(LOCK, "a"))
    assert(H.wait_until(function() return lfs.lock(lock_file, "w") end, 300, 0.2),
      "another run of users_spec holds " .. LOCK)
    a = make_user("a")
    b = make_user("b")
    saved_conf = H.read(FUSE_CONF)
    local st = assert(sys.stat("/dev/fuse"))
    saved_mode = st.mode & octal "7777"
    if saved_mode & octal "666" ~= octal "666" then
      assert(sys.chmod("/dev/fuse", saved_mode | octal "666"))
    end
  end)

  teardown(function()
    if saved_conf then H.write(FUSE_CONF, saved_conf) else os.remove(FUSE_CONF) end
    if saved_mode then sys.chmod("/dev/fuse", saved_mode) end
    for _, name in ipairs(users) do H.shell("userdel " .. name) end
    if lock_file then
      lfs.unlock(lock_file)
      lock_file:close()
    end
  end)

  after_each(function()
    unmount_all()
    for _, d in ipairs(dirs) do
      H.cleanup_mountpoint(d)
      H.remove(d)
    end
    dirs = {}
  end)

  it("mounts memfs through fusermount3, reads, writes and unmounts it", function()
    set_fuse_conf(false)
    local mnt = fresh_dir(a)
    local code, out = as(a, q(H.host) .. " " .. q(MEMFS) .. " " .. q(mnt))
    assert.are.equal(0, code, out)
    assert.are.equal("", out)
    local info = mountinfo(mnt)
    assert.are.equal("fuse.luafs", info.fstype)
    assert.truthy(info.super:find("user_id=" .. a.uid .. ",", 1, true), info.super)
    local pids = H.pids_with_arg(mnt)
    assert.are.equal(1, #pids)
    assert.are.equal(a.uid, uid_of_process(pids[1]), "the host runs as the user")

    must(as(a, "printf 'by a\\0user\\n' > " .. q(mnt .. "/f")))
    assert.are.equal("by a\0user\n", must(as(a, "cat " .. q(mnt .. "/f"))))
    must(as(a, "mkdir " .. q(mnt .. "/d") .. " && mv " .. q(mnt .. "/f") .. " " .. q(mnt .. "/d/g")))
    assert.are.equal(string.format("%d %d 644\n", a.uid, a.gid),
      must(as(a, "stat -c '%u %g %a' " .. q(mnt .. "/d/g"))))
    -- Without allow_other nobody else gets in, not even root.
    assert.are.equal("EACCES", H.err(sys.stat, mnt .. "/d"))
    local cb, ob = as(b, "cat " .. q(mnt .. "/d/g"))
    assert.are_not.equal(0, cb)
    assert.truthy(ob:find("Permission denied", 1, true), ob)

    must(as(a, "fusermount3 -u " .. q(mnt)), "fusermount3 -u as the user")
    assert.are.equal(0, testing.mounted_at(mnt))
    assert.truthy(H.wait_until(function() return not testing.alive(pids[1]) end, 10))
  end)

  it("needs user_allow_other in /etc/fuse.conf for allow_other", function()
    set_fuse_conf(false)
    local mnt = fresh_dir(a)
    local code, out = as(a, q(H.host) .. " " .. q(MEMFS) .. " " .. q(mnt)
      .. " -o allow_other,default_permissions")
    assert.are.equal(3, code, out)
    assert.truthy(out:find("option allow_other only allowed if 'user_allow_other' is set in /etc/fuse.conf",
      1, true), out)
    assert.are.equal(0, testing.mounted_at(mnt))
    assert.are.same({}, H.pids_with_arg(mnt))
  end)

  it("shares a mount with allow_other,default_permissions once user_allow_other is set", function()
    set_fuse_conf(true)
    local mnt = fresh_dir(a)
    local code, out = as(a, q(H.host) .. " " .. q(MEMFS) .. " " .. q(mnt)
      .. " -o allow_other,default_permissions")
    assert.are.equal(0, code, out)
    assert.are.equal("", out, "no warning with default_permissions")
    local secret, public = q(mnt .. "/secret"), q(mnt .. "/public")
    must(as(a, "echo 'for a' > " .. secret .. " && chmod 600 " .. secret
      .. " && echo 'for all' > " .. public))
    assert.are.equal("for all\n", must(as(b, "cat " .. public)))
    for _, cmd in ipairs { "cat " .. secret, "echo x >> " .. public, "touch " .. q(mnt .. "/b-file"),
                           "rm -f " .. public } do
      local cb, ob = as(b, cmd)
      assert.are_not.equal(0, cb, cmd)
      assert.truthy(ob:find("Permission denied", 1, true), cmd .. ": " .. ob)
    end
    assert.are.equal("for a\n", must(as(a, "cat " .. secret)))
    assert.are.equal("for a\n", H.read(mnt .. "/secret"), "root may read it")
    must(as(a, "fusermount3 -u " .. q(mnt)))
    assert.are.equal(0, testing.mounted_at(mnt))
  end)

  it("are told when /dev/fuse is closed to them", function()
    set_fuse_conf(false)
    local mnt = fresh_dir(a)
    assert(sys.chmod("/dev/fuse", octal "600"))
    local code, out = as(a, q(H.host) .. " " .. q(MEMFS) .. " " .. q(mnt))
    assert(sys.chmod("/dev/fuse", octal "666"))
    assert.are.equal(3, code, out)
    assert.are.equal("fuse: failed to open /dev/fuse: Permission denied\n"
      .. "luafs: /dev/fuse: Permission denied; users other than root need it readable "
      .. "and writable (mode 0666)\n", out)
    assert.are.equal(0, testing.mounted_at(mnt))
  end)

  -- Mounts memfs as user u on a fresh directory of theirs, with extra
  -- options, and kills the host with SIGKILL: the mount is stale.
  local function stale_mount_of(u, options)
    local mnt = fresh_dir(u)
    must(as(u, q(H.host) .. " " .. q(MEMFS) .. " " .. q(mnt) .. " " .. (options or "")))
    local pids = H.pids_with_arg(mnt)
    assert.are.equal(1, #pids)
    assert(os.execute("kill -KILL " .. pids[1]))
    assert.truthy(H.wait_until(function() return not testing.alive(pids[1]) end, 10))
    assert.are.equal(1, testing.mounted_at(mnt))
    return mnt
  end

  it("recover their own stale mount, through fusermount3", function()
    set_fuse_conf(false)
    local mnt = stale_mount_of(a)
    local code, out = as(a, q(H.host) .. " " .. q(MEMFS) .. " " .. q(mnt))
    assert.are.equal(0, code, out)
    assert.are.equal(string.format("luafs: warning: %s: unmounted a stale mount of %s, "
      .. "left by a luafs process that died\n", mnt, MEMFS), out)
    assert.are.equal(1, testing.mounted_at(mnt))
    must(as(a, "echo again > " .. q(mnt .. "/f")))
    assert.are.equal("again\n", must(as(a, "cat " .. q(mnt .. "/f"))))
    must(as(a, "fusermount3 -u " .. q(mnt)))
    assert.are.equal(0, testing.mounted_at(mnt))
  end)

  it("cannot remove another user's stale mount, and are told what to run", function()
    set_fuse_conf(true)
    local mnt = stale_mount_of(b, "-o allow_other,default_permissions")
    local code, out = as(a, q(H.host) .. " " .. q(MEMFS) .. " " .. q(mnt))
    assert.are.equal(3, code, out)
    local lines = H.lines(out)
    assert.are.equal(string.format("luafs: %s is a stale luafs mount that cannot be unmounted "
      .. "(Operation not permitted); run: fusermount3 -u -z %s", mnt, mnt), lines[#lines])
    assert.are.equal(1, testing.mounted_at(mnt))
    must(as(b, "fusermount3 -u -z " .. q(mnt)), "what luafs said to run, as the owner")
    assert.are.equal(0, testing.mounted_at(mnt))
  end)

  describe("passthrough.lua, mounted by root with allow_other", function()
    -- The mirrored directory: /secret (a's, 0600), /public (a's, 0644),
    -- /adir (a's, 0755) and /shared (1777, with a's file /shared/a-file).
    local function populate(root)
      assert(sys.chmod(root, octal "755"))
      H.write(root .. "/secret", "secret of a\n")
      H.write(root .. "/public", "public\n")
      H.write(root .. "/shared-a-file", "in shared\n")
      assert(sys.mkdir(root .. "/adir", octal "755"))
      assert(sys.mkdir(root .. "/shared", octal "777"))
      assert(sys.chmod(root .. "/shared", octal "1777"))
      assert(sys.rename(root .. "/shared-a-file", root .. "/shared/a-file"))
      for _, p in ipairs { "secret", "public", "adir", "shared/a-file" } do
        assert(sys.chown(root .. "/" .. p, a.uid, a.gid))
      end
      assert(sys.chmod(root .. "/secret", octal "600"))
    end

    -- What user b gets for a series of commands in directory dir: the exit
    -- status and output of each.
    local function as_b_in(dir)
      local t = {}
      for _, cmd in ipairs {
        "cat secret", "cat public", "echo x >> public", "touch adir/b-file",
        "rm -f shared/a-file", "ls adir", "cat shared/a-file",
      } do
        local code, out = as(b, "cd " .. q(dir) .. " && " .. cmd)
        t[#t + 1] = { cmd = cmd, code = code, out = out }
      end
      return t
    end

    it("without default_permissions, warns, and other users bypass the permissions", function()
      local fs = mount(PASSTHROUGH, { scratch = true, args = { "{scratch}" },
                                      options = { "-o", "allow_other" } })
      assert.truthy(H.log_line(fs, WARNING), fs:log())
      populate(fs.scratch)
      -- The kernel checks nothing and the script, running as root, opens
      -- whatever it is asked to: b reads a's secret.
      assert.are.equal("secret of a\n", must(as(b, "cat " .. q(fs:path("secret")))))
      assert(fs:unmount())
    end)

    it("with default_permissions, enforces the mirrored directory's permissions", function()
      local fs = mount(PASSTHROUGH, { scratch = true, args = { "{scratch}" },
                                      options = { "-o", "allow_other,default_permissions" } })
      assert.is_nil(fs:log():find("warning", 1, true), fs:log())
      populate(fs.scratch)
      -- b sees the same through the mount as in the directory itself.
      local through = as_b_in(fs.mountpoint)
      local direct = as_b_in(fs.scratch)
      assert.are.same(direct, through)
      assert.are_not.equal(0, through[1].code, "b read a's 0600 file")
      assert.are.equal("cat: secret: Permission denied\n", through[1].out)
      assert.are.equal("public\n", through[2].out)
      assert.are_not.equal(0, through[3].code, "b wrote a's 0644 file")
      -- a, the owner, may read and write the secret.
      assert.are.equal("secret of a\n", must(as(a, "cat " .. q(fs:path("secret")))))
      must(as(a, "echo more >> " .. q(fs:path("secret"))))
      assert.are.equal("secret of a\nmore\n", H.read(fs.scratch .. "/secret"))
      -- What b creates through the mount belongs to b.
      must(as(b, "echo mine > " .. q(fs:path("shared/b-file"))))
      local st = assert(sys.lstat(fs.scratch .. "/shared/b-file"))
      assert.are.same({ b.uid, b.gid }, { st.uid, st.gid })
      assert(fs:unmount())
    end)
  end)
end)
