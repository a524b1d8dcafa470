-- spec/callbacks_spec.lua: the calling convention of luafs(3), end to end
-- through real mounts: the failure shapes of every kind of operation,
-- stat tables and times, FileInfo, file handles, luafs.context() and the
-- readdir modes.
--
-- Tests tagged #slow are left out of the valgrind pass of scripts/test.
local H = require "spec.helpers"
local W = require "spec.fixtures.fault_wrap"

local testing, luafs, sys = H.testing, H.luafs, H.sys
local octal, E = H.octal, H.err

local O_RDONLY, O_WRONLY, O_RDWR, O_CREAT, O_EXCL = luafs.O_RDONLY, luafs.O_WRONLY,
  luafs.O_RDWR, luafs.O_CREAT, luafs.O_EXCL
local O_DIRECTORY = luafs.O_DIRECTORY

-- The "name=N name=N ..." that a fixture's file reads as, as a table.
local function counters(path)
  local t = {}
  for k, v in H.read(path):gmatch("([%w_]+)=(%d+)") do t[k] = tonumber(v) end
  return t
end

-- Hosts may run under valgrind (scripts/test): give them time to exit.
local function patient(fs)
  local m = rawget(fs, "m")
  if m then m.exit_timeout = 60 end
end

-- The host's log lines after the first `from` bytes of its log.
local function log_since(m, from)
  return H.lines(m:log():sub(from + 1))
end

-- Runs f(fd) on a descriptor of path opened with flags; closes it.
local function with_fd(path, flags, f)
  local fd, _, e = sys.open(path, flags)
  if not fd then return H.errname(e) end
  local r = f(fd)
  sys.close(fd)
  return r
end

-- ioctl(2) and poll(2), which luafs.sys lacks, from python3: prints the
-- errno name or OK, and for poll POLLERR when the kernel reported that.
local PY_SYSCALL = [[
import errno, fcntl, os, select, sys
what, path = sys.argv[1], sys.argv[2]
fd = os.open(path, os.O_RDWR)
if what == "ioctl":
    cmd = (2 << 30) | (4 << 16) | (ord("L") << 8) | 1  # _IOR('L', 1, int)
    try:
        fcntl.ioctl(fd, cmd, bytes(4))
        print("OK")
    except OSError as e:
        print(errno.errorcode[e.errno])
else:
    p = select.poll()
    p.register(fd, select.POLLIN)
    ev = p.poll(5000)
    print("POLLERR" if ev and ev[0][1] & select.POLLERR else "OK")
]]
local PYTHON = io.open("/usr/bin/python3", "rb") and "/usr/bin/python3" or "python3"
local function py_syscall(what, path)
  local code, out = H.shell(PYTHON .. " -c " .. H.quote(PY_SYSCALL) .. " " .. what .. " " .. H.quote(path))
  assert(code == 0, out)
  return out:match("^(%S+)")
end

local function file(d, name, data)
  H.write(d .. "/" .. (name or "f"), data or "0123456789")
end

describe("callbacks", function()
  describe("failure shapes", function()
    -- One case per operation: what to prepare (with no rule active), the
    -- name whose calls fail, and the syscall that makes the call.
    local CASES = {
      { op = "getattr", setup = file, run = function(d) return E(sys.lstat, d .. "/f") end },
      { op = "readlink", target = "l",
        setup = function(d) H.check(sys.symlink("f", d .. "/l")) end,
        run = function(d) return E(sys.readlink, d .. "/l") end },
      { op = "mknod", target = "p", run = function(d) return E(sys.mkfifo, d .. "/p", octal "644") end },
      { op = "mkdir", target = "n", run = function(d) return E(sys.mkdir, d .. "/n", octal "755") end },
      { op = "unlink", setup = file, run = function(d) return E(sys.unlink, d .. "/f") end },
      { op = "rmdir", target = "s", setup = function(d) H.check(sys.mkdir(d .. "/s")) end,
        run = function(d) return E(sys.rmdir, d .. "/s") end },
      { op = "symlink", target = "l", run = function(d) return E(sys.symlink, "f", d .. "/l") end },
      { op = "rename", setup = file, run = function(d) return E(sys.rename, d .. "/f", d .. "/g") end },
      { op = "link", setup = file, run = function(d) return E(sys.link, d .. "/f", d .. "/g") end },
      { op = "chmod", setup = file, run = function(d) return E(sys.chmod, d .. "/f", octal "600") end },
      { op = "chown", setup = file, run = function(d) return E(sys.chown, d .. "/f", 0, 0) end },
      { op = "truncate", setup = file, run = function(d) return E(sys.truncate, d .. "/f", 2) end },
      { op = "open", setup = file, run = function(d)
        return with_fd(d .. "/f", O_RDONLY, function() return "OK" end)
      end },
      { op = "read", setup = file, run = function(d)
        return with_fd(d .. "/f", O_RDONLY, function(fd) return E(sys.pread, fd, 10, 0) end)
      end },
      { op = "write", setup = file, run = function(d)
        return with_fd(d .. "/f", O_WRONLY, function(fd) return E(sys.pwrite, fd, "abc", 0) end)
      end },
      { op = "statfs", setup = file, run = function(d) return E(sys.statvfs, d .. "/f") end },
      { op = "flush", setup = file, run = function(d)
        local fd = H.check(sys.open(d .. "/f", O_RDONLY))
        return E(sys.close, fd)
      end },
      -- the kernel sends a close's release after close returns: a setup
      -- that wrote the file could have its release land under the rule
      { op = "release", absorbed = true,
        setup = function(d) H.check(sys.mknod(d .. "/f", luafs.S_IFREG | octal "644")) end,
        run = function(d)
          local fd = H.check(sys.open(d .. "/f", O_RDONLY))
          return E(sys.close, fd)
        end },
      { op = "fsync", setup = file, run = function(d)
        return with_fd(d .. "/f", O_WRONLY, function(fd) return E(sys.fsync, fd) end)
      end },
      { op = "setxattr", setup = file, run = function(d) return E(sys.lsetxattr, d .. "/f", "user.a", "v") end },
      { op = "getxattr", setup = function(d)
        file(d)
        H.check(sys.lsetxattr(d .. "/f", "user.a", "value"))
      end, run = function(d) return E(sys.lgetxattr, d .. "/f", "user.a") end },
      { op = "listxattr", setup = function(d)
        file(d)
        H.check(sys.lsetxattr(d .. "/f", "user.a", "value"))
      end, run = function(d) return E(sys.llistxattr, d .. "/f") end },
      { op = "removexattr", setup = function(d)
        file(d)
        H.check(sys.lsetxattr(d .. "/f", "user.a", "value"))
      end, run = function(d) return E(sys.lremovexattr, d .. "/f", "user.a") end },
      { op = "opendir", target = "s", setup = function(d) H.check(sys.mkdir(d .. "/s")) end,
        run = function(d)
          local dir, _, e = sys.opendir(d .. "/s")
          if not dir then return H.errname(e) end
          dir:close()
          return "OK"
        end },
      -- glibc's readdir takes ENOENT for the end of the directory
      { op = "readdir", target = "s", want = { sys = "OK" }, setup = function(d) H.check(sys.mkdir(d .. "/s")) end,
        run = function(d)
          local dir = H.check(sys.opendir(d .. "/s"))
          local r = E(dir.read, dir)
          dir:close()
          return r
        end },
      { op = "releasedir", absorbed = true, target = "s",
        setup = function(d) H.check(sys.mkdir(d .. "/s")) end,
        run = function(d)
          local fd = H.check(sys.open(d .. "/s", O_RDONLY | O_DIRECTORY))
          return E(sys.close, fd)
        end },
      { op = "fsyncdir", target = "s", setup = function(d) H.check(sys.mkdir(d .. "/s")) end,
        run = function(d)
          return with_fd(d .. "/s", O_RDONLY | O_DIRECTORY, function(fd) return E(sys.fsync, fd) end)
        end },
      { op = "access", setup = file, run = function(d) return E(sys.access, d .. "/f", luafs.R_OK) end },
      { op = "create", target = "c", run = function(d)
        return with_fd(d .. "/c", O_WRONLY | O_CREAT | O_EXCL, function() return "OK" end)
      end },
      { op = "utimens", setup = file, run = function(d)
        return E(sys.utimensat, luafs.AT_FDCWD, d .. "/f", 1, 2, 3, 4)
      end },
      -- libfuse unlocks through lock again when the file is closed
      { op = "lock", log_lines = 2, setup = file, run = function(d)
        return with_fd(d .. "/f", O_RDWR, function(fd)
          return E(sys.fcntl_lock, fd, luafs.F_SETLK, { type = luafs.F_WRLCK })
        end)
      end },
      { op = "flock", setup = file, run = function(d)
        return with_fd(d .. "/f", O_RDWR, function(fd) return E(sys.flock, fd, luafs.LOCK_EX) end)
      end },
      { op = "fallocate", setup = file, run = function(d)
        return with_fd(d .. "/f", O_RDWR, function(fd) return E(sys.fallocate, fd, 0, 0, 100) end)
      end },
      { op = "lseek", setup = file, run = function(d)
        return with_fd(d .. "/f", O_RDONLY, function(fd) return E(sys.lseek, fd, 0, luafs.SEEK_DATA) end)
      end },
      { op = "ioctl", setup = file, run = function(d) return py_syscall("ioctl", d .. "/f") end },
      -- the kernel reports a failed poll as POLLERR, whatever the errno
      { op = "poll", setup = file, run = function(d) return py_syscall("poll", d .. "/f") end,
        want = { neg = "POLLERR", nilmsg = "POLLERR", falsemsg = "POLLERR", raise = "POLLERR",
                 deep = "POLLERR", sys = "POLLERR" }, bad = "POLLERR" },
      { op = "copy_file_range", setup = function(d)
        file(d)
        file(d, "g")
      end, run = function(d)
        return with_fd(d .. "/g", O_RDWR, function(out)
          return with_fd(d .. "/f", O_RDONLY, function(fd)
            return E(sys.copy_file_range, fd, 0, out, 0, 5)
          end)
        end)
      end },
    }
    local BUF_CASES = {}
    for _, c in ipairs(CASES) do
      if c.op == "read" or c.op == "write" then
        local b = setmetatable({ op = c.op .. "_buf" }, { __index = c })
        BUF_CASES[#BUF_CASES + 1] = b
      end
    end

    local function check_case(fs, c, seq)
      local d = fs:path(c.op .. seq)
      H.check(sys.mkdir(d))
      if c.setup then c.setup(d) end
      local target = "/" .. c.op .. seq .. "/" .. (c.target or "f")
      local ctl = fs:path(".ctl")
      assert.are.equal("OK", c.run(d), c.op .. " works before any rule")
      local problems = {}
      local function try(shape, want, nlines)
        -- a fresh copy of the directory for each shape: a failure must not
        -- depend on what the shapes before it left behind
        seq = seq + 1
        local dir = fs:path(c.op .. seq)
        H.check(sys.mkdir(dir))
        if c.setup then c.setup(dir) end
        target = "/" .. c.op .. seq .. "/" .. (c.target or "f")
        local before = #fs:log()
        H.write(ctl, c.op .. " " .. shape .. " " .. target .. "\n")
        local got = c.run(dir)
        local lines
        if nlines > 0 then
          H.log_line(fs.m, c.op .. " " .. target .. ":", c.absorbed and 3 or 0.3)
        else
          H.sleep(c.absorbed and 0.05 or 0)
        end
        lines = log_since(fs.m, before)
        H.write(ctl, "clear\n")
        if got ~= want then
          problems[#problems + 1] = string.format("%s %s: got %s, want %s", c.op, shape, got, want)
        end
        if #lines ~= nlines then
          problems[#problems + 1] = string.format("%s %s: %d log lines, want %d:\n  %s", c.op, shape,
            #lines, nlines, table.concat(lines, "\n  "))
        else
          for _, line in ipairs(lines) do
            local prefix = "luafs: " .. c.op .. " " .. target .. ": "
            -- a script's error has its traceback; a value the host
            -- refused names the callback that returned it
            if line:sub(1, #prefix) ~= prefix or not (line:find("stack traceback:", 1, true)
                or line:sub(#prefix + 1):match("^[^:]+%.lua:%d+: ")) then
              problems[#problems + 1] = string.format("%s %s: log line without operation, path "
                .. "and traceback: %s", c.op, shape, line)
            end
          end
        end
      end
      for _, shape in ipairs(W.GOOD) do
        try(shape, c.absorbed and "OK" or (c.want or {})[shape] or W.GOOD_ERRNO[shape], 0)
      end
      for _, shape in ipairs(W.bad_shapes(c.op)) do
        try(shape, c.absorbed and "OK" or c.bad or "EIO", c.log_lines or 1)
      end
      assert(#problems == 0, table.concat(problems, "\n"))
      return seq
    end

    for _, variant in ipairs { { name = "read and write", cases = CASES },
                               { name = "read_buf and write_buf", cases = BUF_CASES, args = { "buf" } } } do
      describe("with " .. variant.name, function()
        local fs = testing.mounted(H.fixture("cb_shapes.lua"), { once = true, args = variant.args })
        setup(function() patient(fs) end)
        local seq = 0
        for _, c in ipairs(variant.cases) do
          it(c.op .. ": each failure shape answers its errno silently, anything else EIO and one log line",
            function() seq = check_case(fs, c, seq + 1) + 1 end)
        end
      end)
    end
  end)

  describe("stat tables", function()
    local fs = testing.mounted(H.fixture("cb_stat.lua"), { once = true })
    setup(function() patient(fs) end)

    local TIMES = { "atime", "atime_nsec", "mtime", "mtime_nsec", "ctime", "ctime_nsec" }
    local function times(st)
      local t = {}
      for _, k in ipairs(TIMES) do t[k] = st[k] end
      return t
    end

    it("carry nanoseconds, seconds beyond 2^32 and times before 1970 exactly", function()
      local st = H.check(sys.lstat(fs:path("s/ns")))
      assert.same({ atime = 1700000000, atime_nsec = 123456789, mtime = 1700000001,
        mtime_nsec = 999999999, ctime = 1700000002, ctime_nsec = 1 }, times(st))
      st = H.check(sys.lstat(fs:path("s/big")))
      assert.same({ atime = (1 << 33) + 7, atime_nsec = 5, mtime = 1 << 40, mtime_nsec = 0,
        ctime = 4102444800, ctime_nsec = 999999998 }, times(st))
      st = H.check(sys.lstat(fs:path("s/neg")))
      assert.same({ atime = -1, atime_nsec = 999999999, mtime = -946684800, mtime_nsec = 500,
        ctime = -(1 << 31) - 10, ctime_nsec = 1 }, times(st))
    end)

    it("split float seconds into seconds and nanoseconds", function()
      local st = H.check(sys.lstat(fs:path("s/float")))
      assert.same({ atime = 1700000000, atime_nsec = 250000000, mtime = -2, mtime_nsec = 500000000,
        ctime = 2, ctime_nsec = 0 }, times(st))
    end)

    it("pass every field to stat(2), and take defaults from __index", function()
      local st = H.check(sys.lstat(fs:path("s/fields")))
      assert.same({ ino = 424242, mode = luafs.S_IFCHR | octal "640", nlink = 3, uid = 1234,
        gid = 4294967294, rdev = 259, size = (1 << 40) + 1, blksize = 8192, blocks = 12345 },
        { ino = st.ino, mode = st.mode, nlink = st.nlink, uid = st.uid, gid = st.gid, rdev = st.rdev,
          size = st.size, blksize = st.blksize, blocks = st.blocks })
      st = H.check(sys.lstat(fs:path("s/defaults")))
      assert.same({ luafs.S_IFREG | octal "644", 1, 77, 5, 0 },
        { st.mode, st.nlink, st.size, st.mtime, st.uid })
    end)

    it("answer EIO, with a log line naming the field, for values that do not fit", function()
      for name, field in pairs { uid_big = "uid", uid_neg = "uid", nsec_big = "mtime_nsec",
                                 nsec_neg = "mtime_nsec", nsec_float = "mtime_nsec",
                                 size_float = "size", size_string = "size", time_huge = "mtime" } do
        local before = #fs:log()
        assert.are.equal("EIO", E(sys.lstat, fs:path("s/" .. name)), name)
        local lines = log_since(fs.m, before)
        assert.are.equal(1, #lines, name)
        assert.truthy(lines[1]:find("getattr /s/" .. name .. ": ", 1, true), lines[1])
        assert.truthy(lines[1]:find("'" .. field .. "'", 1, true), lines[1])
      end
    end)

    it("reach utimens as exact pairs, with UTIME_NOW and UTIME_OMIT as such", function()
      local NOW, OMIT = luafs.UTIME_NOW, luafs.UTIME_OMIT
      local cases = {
        { 1700000000, 123456789, 1700000001, 987654321 },
        { (1 << 33) + 3, 7, 1 << 40, 999999999 },
        { -1, 999999999, -(1 << 31) - 10, 1 },
      }
      for i, c in ipairs(cases) do
        local p = fs:path("f/t" .. i)
        H.check(sys.utimensat(luafs.AT_FDCWD, p, c[1], c[2], c[3], c[4]))
        local st = H.check(sys.lstat(p))
        assert.same(c, { st.atime, st.atime_nsec, st.mtime, st.mtime_nsec })
      end
      H.check(sys.utimensat(luafs.AT_FDCWD, fs:path("f/t1"), 0, NOW, 0, OMIT))
      H.check(sys.utimensat(luafs.AT_FDCWD, fs:path("f/t2"), 0, OMIT, 0, NOW))
      local st = H.check(sys.lstat(fs:path("f/t1")))
      assert.same({ 1700000001, 987654321 }, { st.mtime, st.mtime_nsec }, "UTIME_OMIT left mtime")
      assert.are_not.equal(1700000000, st.atime, "UTIME_NOW set atime")
      local log = H.lines(H.read(fs:path("utimens.log")))
      assert.same({
        "/f/t1 integer 1700000000 123456789 1700000001 987654321 nofi integer",
        "/f/t2 integer 8589934595 7 1099511627776 999999999 nofi integer",
        "/f/t3 integer -1 999999999 -2147483658 1 nofi integer",
        "/f/t1 integer 0 NOW 0 OMIT nofi integer",
        "/f/t2 integer 0 OMIT 0 NOW nofi integer",
      }, log)
    end)

    it("give chown -1 for an owner or group that stays", function()
      H.check(sys.chown(fs:path("f/c"), -1, 5))
      H.check(sys.chown(fs:path("f/c"), 7, -1))
      assert.same({ "/f/c -1 5 nofi", "/f/c 7 -1 nofi" }, H.lines(H.read(fs:path("chown.log"))))
    end)
  end)

  describe("luafs.FileInfo", function()
    local fs = testing.mounted(H.fixture("cb_fileinfo.lua"), { once = true })
    setup(function() patient(fs) end)

    local function report() return H.lines(H.read(fs:path("report"))) end
    local function counts() return counters(fs:path("counts")) end
    local function lines_of(op, path)
      local t = {}
      for _, line in ipairs(report()) do
        if line:find("^" .. op .. " " .. path:gsub("%p", "%%%0") .. " ") then t[#t + 1] = line end
      end
      return t
    end

    it("has every field, of its type, in every callback that gets one", function()
      local p = fs:path("fields")
      local fd = H.check(sys.open(p, O_RDWR))
      H.check(sys.pread(fd, 4, 0))
      H.check(sys.pwrite(fd, "x", 0))
      H.check(sys.fstat(fd))
      H.check(sys.ftruncate(fd, 3))
      H.check(sys.fsync(fd))
      H.check(sys.flock(fd, luafs.LOCK_SH))
      H.check(sys.fcntl_lock(fd, luafs.F_GETLK, { type = luafs.F_RDLCK }))
      H.check(sys.close(fd))
      fd = H.check(sys.open(fs:path("newfile"), O_WRONLY | O_CREAT | O_EXCL, octal "600"))
      H.check(sys.close(fd))
      fd = H.check(sys.open(fs:path("d/x"), O_RDONLY | O_DIRECTORY))
      local dir = H.check(sys.fdopendir(fd))
      H.check(dir:read())
      dir:close()
      local rest = "flags=integer:0%d+ direct_io=%a+ keep_cache=%a+ nonseekable=%a+ cache_readdir=%a+ "
        .. "noflush=%a+ flush=%a+ writepage=%a+ flock_release=%a+ lock_owner=integer poll_events=integer$"
      for _, op in ipairs { "open", "read", "write", "getattr", "truncate", "fsync", "flock", "lock",
                            "flush", "release", "create", "opendir", "readdir", "releasedir" } do
        local path = (op == "create" and "/newfile") or (op:match("dir") and "/d/x") or "/fields"
        local ok = H.wait_until(function() return #lines_of(op, path) > 0 end, 3)
        assert(ok, "no " .. op .. " call seen")
        for _, line in ipairs(lines_of(op, path)) do
          assert.truthy(line:match("^%a+ %S+ fh=nil " .. rest), line)
          assert.falsy(line:find("=nil", line:find("fh=nil") + 6, true), line)
        end
      end
      assert.truthy(lines_of("open", "/fields")[1]:find("flags=integer:02 ", 1, true))
      assert.truthy(lines_of("create", "/newfile")[1]:find("flags=integer:01 ", 1, true))
    end)

    it("shows the open flags", function()
      H.check(sys.close(H.check(sys.open(fs:path("appending"), O_WRONLY | luafs.O_APPEND))))
      local line = lines_of("open", "/appending")[1]
      assert.truthy(line:find(string.format("flags=integer:0%o ", O_WRONLY | luafs.O_APPEND), 1, true), line)
    end)

    it("lets open set direct_io: every read reaches the script", function()
      for _, name in ipairs { "direct", "plain" } do
        local before = counts().read
        with_fd(fs:path(name), O_RDONLY, function(fd)
          assert.are.equal("0123", sys.pread(fd, 4, 0))
          assert.are.equal("0123", sys.pread(fd, 4, 0))
        end)
        assert.are.equal(name == "direct" and 2 or 1, counts().read - before, name)
      end
    end)

    it("lets open set keep_cache: the data cached by an earlier open stays", function()
      for _, name in ipairs { "keep", "plain2" } do
        local before = counts().read
        for _ = 1, 2 do
          with_fd(fs:path(name), O_RDONLY, function(fd) assert.are.equal("0123", sys.pread(fd, 4, 0)) end)
        end
        assert.are.equal(name == "keep" and 1 or 2, counts().read - before, name)
      end
    end)

    it("lets open set nonseekable: the file refuses seeks", function()
      with_fd(fs:path("nonseek"), O_RDONLY, function(fd)
        assert.are.equal("ESPIPE", E(sys.lseek, fd, 5, luafs.SEEK_SET))
        assert.are.equal("ESPIPE", E(sys.pread, fd, 4, 0))
        assert.are.equal("0123", sys.read(fd, 4))
      end)
      with_fd(fs:path("plain3"), O_RDONLY, function(fd)
        assert.are.equal(5, sys.lseek(fd, 5, luafs.SEEK_SET))
      end)
    end)

    it("lets open set noflush: close sends no flush", function()
      for _, name in ipairs { "noflush", "plain4" } do
        local before = counts().flush
        H.check(sys.close(H.check(sys.open(fs:path(name), O_RDONLY))))
        assert.are.equal(name == "noflush" and 0 or 1, counts().flush - before, name)
      end
    end)

    -- libfuse's high-level opendir does not pass them on to the kernel
    it("lets opendir set cache_readdir and keep_cache", function()
      assert.same({ ".", "..", "x" }, H.listing(fs:path("d/cached")))
      local found
      for _, line in ipairs(report()) do
        if line:find("^opendir set ") then found = line end
      end
      assert.are.equal("opendir set cache_readdir=true keep_cache=true", found)
    end)

    it("refuses to change what is read-only, and unknown fields", function()
      H.read(fs:path("misuse"))
      local msgs = {}
      for _, line in ipairs(report()) do
        local what, msg = line:match("^misuse (.-): (.*)$")
        if what then msgs[what] = msg end
      end
      for _, what in ipairs { "set flags in open", "set lock_owner in open", "set direct_io in read",
                              "set keep_cache in read" } do
        assert.truthy(msgs[what] and msgs[what]:find("is read-only here", 1, true),
          what .. ": " .. tostring(msgs[what]))
      end
      assert.truthy(msgs["unknown field"]:find("luafs.FileInfo has no field 'no_such_field'", 1, true),
        msgs["unknown field"])
      assert.truthy(msgs["field that starts like fh"]:find("luafs.FileInfo has no field 'fhx'", 1, true),
        msgs["field that starts like fh"])
      assert.truthy(msgs["number as a field"]:find("luafs.FileInfo has no field '1'", 1, true),
        msgs["number as a field"])
      for _, what in ipairs { "give a new handle in read", "drop the handle in read" } do
        assert.truthy(msgs[what]:find("fi.fh can only be replaced here", 1, true), what .. ": " .. msgs[what])
      end
    end)

    it("kept after its callback, raises 'expired' and touches no freed memory", function()
      H.check(sys.close(H.check(sys.open(fs:path("keepfi"), O_RDONLY))))
      H.read(fs:path("kept"))
      local msgs = {}
      for _, line in ipairs(report()) do
        local what, msg = line:match("^misuse (.-) of a kept FileInfo: (.*)$")
        if what then msgs[what] = msg end
      end
      for _, what in ipairs { "read flags", "read fh", "set fh", "set direct_io", "read flags in a coroutine" } do
        assert.truthy(msgs[what] and msgs[what]:find("expired luafs.FileInfo (used after its callback returned)",
          1, true), what .. ": " .. tostring(msgs[what]))
      end
      assert.are.equal("luafs.FileInfo (expired)", msgs.tostring)
      assert.are.equal("userdata", msgs.type)
      assert.are.equal("false", msgs["compare with this call's"])
      local other = {}
      for _, line in ipairs(report()) do
        local what, msg = line:match("^misuse (.-) another light userdata: (.*)$")
        if what then other[what] = msg end
      end
      assert.truthy(other.index and other.index:find("attempt to index a userdata value", 1, true),
        tostring(other.index))
      assert.truthy(other["take"] and other["take"]:find("luafs.FileInfo expected, got light userdata", 1, true),
        tostring(other["take"]))
      assert.matches("^userdata: 0x%x+$", other.tostring)
      local before = #fs:log()
      assert.are.equal("EIO", with_fd(fs:path("kept_raw"), O_RDONLY, function(fd) return E(sys.pread, fd, 10, 0) end))
      local lines = log_since(fs.m, before)
      assert.are.equal(1, #lines)
      assert.truthy(lines[1]:find("read /kept_raw: ", 1, true), lines[1])
      assert.truthy(lines[1]:find("expired luafs.FileInfo", 1, true), lines[1])
    end)
  end)

  -- A mount of its own: no lock may have been asked for before this test.
  describe("the unlock that libfuse sends at every close", function()
    local fs = testing.mounted(H.fixture("cb_fileinfo.lua"), { once = true })
    setup(function() patient(fs) end)

    local function calls() return counters(fs:path("counts")) end
    local function open_close(lock)
      local fd = H.check(sys.open(fs:path("plain"), O_RDWR))
      if lock then H.check(sys.fcntl_lock(fd, lock, { type = luafs.F_WRLCK })) end
      H.check(sys.close(fd))
    end

    it("reaches lock only once a lock has been asked for", function()
      open_close()
      assert.same({ read = 0, flush = 1, readdir = 0, lock = 0 }, calls())
      -- a test asks for no lock: its close still needs no unlock
      open_close(luafs.F_GETLK)
      assert.same({ read = 0, flush = 2, readdir = 0, lock = 1 }, calls())
      open_close(luafs.F_SETLK)
      assert.same({ read = 0, flush = 3, readdir = 0, lock = 3 }, calls())
      open_close()
      assert.same({ read = 0, flush = 4, readdir = 0, lock = 4 }, calls())
    end)
  end)

  -- portable: integer handles are kept in fi->fh and served by any state
  for _, mode in ipairs { "bound", "portable" } do
  describe("file handles (" .. mode .. ")", function()
    local fs = testing.mounted(H.fixture("cb_handles.lua"), { once = true, args = { mode } })
    setup(function() patient(fs) end)

    local function stats()
      local t = {}
      for k, v in H.read(fs:path("stats")):gmatch("(%w+)=(%d+)") do t[k] = tonumber(v) end
      return t
    end

    -- The calls seen for the handle of rel, once its release has come.
    local function seen(rel, last)
      local text
      H.wait_until(function()
        text = H.read(fs:path("seen/" .. rel))
        return text:find(last, 1, true)
      end, 5)
      local set = {}
      for op in text:gmatch("%S+") do set[op] = true end
      return set, text
    end

    local FILE_OPS = { "read", "write", "getattr", "truncate", "fsync", "flock", "lock", "fallocate",
      "lseek", "copy_file_range", "flush", "release" }

    for _, kind in ipairs { "table", "closure", "int", "zero", "string", "false", "float", "assigned",
                            "both", "replaced", "dropped", "bigint", "negint" } do
      it("come back identical in every later call: " .. kind, function()
        local rel = "h/" .. kind .. "/1"
        local fd = H.check(sys.open(fs:path(rel), O_RDWR))
        local other = H.check(sys.open(fs:path("h/table/other-" .. kind), O_RDWR))
        H.check(sys.pread(fd, 10, 0))
        H.check(sys.pwrite(fd, "x", 0))
        H.check(sys.fstat(fd))
        H.check(sys.ftruncate(fd, 0))
        H.check(sys.fsync(fd))
        H.check(sys.flock(fd, luafs.LOCK_EX))
        H.check(sys.flock(fd, luafs.LOCK_UN))
        H.check(sys.fcntl_lock(fd, luafs.F_SETLK, { type = luafs.F_WRLCK }))
        H.check(sys.fcntl_lock(fd, luafs.F_SETLK, { type = luafs.F_UNLCK }))
        H.check(sys.fallocate(fd, 0, 0, 10))
        H.check(sys.lseek(fd, 0, luafs.SEEK_DATA))
        H.check(sys.copy_file_range(fd, 0, other, 0, 10))
        H.check(sys.close(fd))
        H.check(sys.close(other))
        local set, text = seen(rel, "release")
        for _, op in ipairs(FILE_OPS) do assert(set[op], op .. " missing from: " .. text) end
        assert.falsy(text:find("!", 1, true), "a call got another value as fi.fh: " .. text)
        set, text = seen("h/table/other-" .. kind, "release")
        assert(set.copy_file_range_out, text)
        assert.falsy(text:find("!", 1, true), text)
      end)

      it("of directories come back identical too: " .. kind, function()
        local rel = "hd/" .. kind .. "/1"
        local fd = H.check(sys.open(fs:path(rel), O_RDONLY | O_DIRECTORY))
        H.check(sys.fsync(fd))
        local dir = H.check(sys.fdopendir(fd))
        assert.are.equal(".", dir:read())
        dir:close()
        local set, text = seen(rel, "releasedir")
        for _, op in ipairs { "fsyncdir", "readdir", "releasedir" } do
          assert(set[op], op .. " missing from: " .. text)
        end
        assert.falsy(text:find("!", 1, true), "a call got another value as fi.fh: " .. text)
      end)
    end

    -- n open/close cycles of every kind, and opens that fail after storing a
    -- handle: afterwards no handle may be alive.
    local function cycles(n)
      local before = stats()
      for i = 1, n do
        for _, kind in ipairs { "table", "closure", "both", "dropped" } do
          H.check(sys.close(H.check(sys.open(fs:path("h/" .. kind .. "/c"), O_RDONLY))))
        end
        local fd = H.check(sys.open(fs:path("h/replaced/c"), O_RDONLY))
        H.check(sys.pread(fd, 1, 0))
        H.check(sys.close(fd))
        local dir = H.check(sys.opendir(fs:path("hd/table/c")))
        dir:close()
        if i % 10 == 0 then
          local answers = { neg = "EACCES", nilmsg = "EACCES", raise = "EACCES", error = "EIO", index = "EIO" }
          for how, want in pairs(answers) do
            assert.are.equal(want, E(sys.open, fs:path("fail/" .. how .. "/" .. i), O_RDONLY))
            assert.are.equal(want, E(sys.open, fs:path("cfail/" .. how .. "/" .. i), O_WRONLY | O_CREAT, octal "644"))
          end
          assert.are.equal("ENOENT", E(sys.open, fs:path("lookupfail/" .. i), O_WRONLY | O_CREAT, octal "644"))
        end
      end
      local after
      H.wait_until(function()
        after = stats()
        return after.live == 0
      end, 5)
      assert.are.equal(0, after.live, "handles still alive")
      assert(after.opened - before.opened >= 7 * n, "handles were made")
      assert(after.collected - before.collected >= 6 * n, "their finalizers ran")
    end

    it("are dropped at release, and when an open fails after storing one", function() cycles(100) end)
    it("do not leak over 10 000 open and close cycles #slow", function() cycles(10000 // 7) end)
  end)
  end

  describe("luafs.context()", function()
    local outdir = H.temp_dir()
    local fs = testing.mounted(H.fixture("cb_context.lua"), { once = true,
      options = { "-o", "allow_other" }, args = { outdir .. "/destroy.txt" } })
    teardown(function() H.remove(outdir) end)
    setup(function()
      patient(fs)
      -- let other users reach the mountpoint
      H.check(sys.chmod(fs.mountpoint:match("^(.*)/[^/]+$"), octal "755"))
    end)

    local function fields(text)
      local t = {}
      for k, v in text:gmatch("(%w+)=(%S*)") do t[k] = v end
      return t
    end

    -- Runs sh -c script as another user with supplementary groups; returns
    -- the output lines.
    local function as_user(script)
      local code, out = H.shell("setpriv --reuid=1234 --regid=5678 --groups=300,100,200 sh -c "
        .. H.quote(script))
      assert.are.equal(0, code, out)
      return H.lines(out)
    end

    it("describes the caller: uid, gid, pid, groups, and init's private value", function()
      local me = fields(H.read(fs:path("context")))
      assert.same({ uid = tostring(sys.getuid()), gid = tostring(sys.getgid()), pid = tostring(sys.getpid()),
        interrupted = "false", keys = "gid,pid,private,uid,umask", private = "private" },
        { uid = me.uid, gid = me.gid, pid = me.pid, interrupted = me.interrupted, keys = me.keys,
          private = me.private })
      local out = as_user("echo $$; exec cat " .. H.quote(fs:path("context")))
      local other = fields(out[2])
      assert.same({ uid = "1234", gid = "5678", pid = out[1], groups = "100,200,300", interrupted = "false" },
        { uid = other.uid, gid = other.gid, pid = other.pid, groups = other.groups,
          interrupted = other.interrupted })
      assert.truthy(out[2]:find("private=private value from init", 1, true), out[2])
    end)

    it("fills the table it is given, and leaves the table's other fields", function()
      local lines = H.lines(H.read(fs:path("into")))
      local me = fields(lines[1])
      assert.same({ same = "true", uid = tostring(sys.getuid()), gid = tostring(sys.getgid()),
        pid = tostring(sys.getpid()), keys = "extra,gid,pid,private,uid,umask", private = "private", extra = "kept" },
        { same = me.same, uid = me.uid, gid = me.gid, pid = me.pid, keys = me.keys, private = me.private,
          extra = me.extra })
      assert.are.equal("bad: bad argument #1 to 'luafs.context' (table expected, got number)", lines[2])
      local out = as_user("echo $$; exec cat " .. H.quote(fs:path("into")))
      local other = fields(out[2])
      assert.same({ same = "true", uid = "1234", gid = "5678", pid = out[1], extra = "kept" },
        { same = other.same, uid = other.uid, gid = other.gid, pid = other.pid, extra = other.extra })
      -- init has no private value yet: the one left in the table goes.
      local init = fields(H.lines(H.read(fs:path("init_into")))[1])
      assert.same({ same = "true", uid = "0", gid = "0", pid = "0", keys = "extra,gid,pid,uid,umask",
        private = "nil", extra = "kept" },
        { same = init.same, uid = init.uid, gid = init.gid, pid = init.pid, keys = init.keys,
          private = init.private, extra = init.extra })
    end)

    it("gives the caller's umask to mkdir, mknod and create", function()
      as_user("umask 027 && mkdir " .. H.quote(fs:path("d1")))
      local last = fields(H.read(fs:path("last_create")))
      assert.same({ "027", "1234" }, { last.umask, last.uid })
      H.shell("umask 002 && : > " .. H.quote(fs:path("f1")))
      assert.are.equal("02", fields(H.read(fs:path("last_create"))).umask)
      H.shell("umask 077 && mkfifo " .. H.quote(fs:path("p1")))
      assert.are.equal("077", fields(H.read(fs:path("last_create"))).umask)
    end)

    it("works inside a coroutine of a callback", function()
      local c = fields(H.read(fs:path("coroutine")))
      assert.same({ tostring(sys.getpid()), "false" }, { c.pid, c.interrupted })
    end)

    it("raises a clear error outside a callback, and has no caller in init", function()
      assert.same({
        "context: luafs.context: not inside a luafs callback",
        "groups: luafs.groups: not inside a luafs callback",
        "interrupted: luafs.interrupted: not inside a luafs callback",
      }, H.lines(H.read(fs:path("outside"))))
      for _, name in ipairs { "context", "groups", "interrupted" } do
        local ok, err = pcall(luafs[name])
        assert.falsy(ok)
        assert.truthy(tostring(err):find("luafs." .. name .. ": not inside a luafs callback", 1, true), err)
      end
      assert.are.equal("uid=0 gid=0 pid=0 umask=00 groups= interrupted=false keys=gid,pid,uid,umask private=nil",
        H.read(fs:path("init")):match("^[^\n]*"))
    end)

    it("hands destroy the value that init returned", function()
      local out = outdir .. "/destroy.txt"
      local m = fs.m
      m:unmount()
      assert.are.equal("destroy private value from init\n", H.read(out))
    end)
  end)

  describe("readdir", function()
    local fs = testing.mounted(H.fixture("cb_readdir.lua"), { once = true, args = { "50" } })
    setup(function() patient(fs) end)

    local function probe() return counters(fs:path("probe")) end

    -- name -> type (a luafs.DT_* value) of every entry, in order of arrival
    local function entries(rel)
      local dir = H.check(sys.opendir(fs:path(rel)))
      local names, types = {}, {}
      while true do
        local name, _, dtype = dir:read()
        if not name then break end
        names[#names + 1] = name
        types[name] = dtype
      end
      dir:close()
      return names, types
    end

    it("lists a whole listing of names", function()
      assert.same({ ".", "..", "a", "b", "c" }, (entries("names")))
    end)

    it("lists entry tables, with the file type from their stat", function()
      local names, types = entries("entries")
      assert.same({ ".", "..", "file", "sub", "link", "fifo" }, names)
      assert.same({ luafs.DT_REG, luafs.DT_DIR, luafs.DT_LNK, luafs.DT_FIFO },
        { types.file, types.sub, types.link, types.fifo })
    end)

    it("lists from an iterator", function()
      assert.same({ ".", "..", "x", "y", "z" }, (entries("iter")))
    end)

    it("pages with offsets, and hands readdirplus the stat of each entry", function()
      local before = probe()
      local names = entries("paged")
      assert.are.equal(52, #names)
      for i = 3, 52 do assert.are.equal(string.format("e%07d", i - 2), names[i]) end
      for i = 3, 52 do
        local st = H.check(sys.lstat(fs:path("paged/" .. names[i])))
        assert.same({ i, 1000 + i }, { st.size, st.ino })
      end
      local after = probe()
      assert.are.equal(0, after.getattr - before.getattr, "getattr calls for entries readdirplus described")
    end)

    -- Lists rel, which must hold e0000001 ... and n of them (after "." and
    -- ".." when dots); returns how many it found, and the first that was
    -- out of order.
    local function list_all(rel, dots)
      local dir = H.check(sys.opendir(fs:path(rel)))
      local n, bad = 0, nil
      if dots then
        assert.are.equal(".", dir:read())
        assert.are.equal("..", dir:read())
      end
      while true do
        local name = dir:read()
        if not name then break end
        n = n + 1
        if not bad and name ~= string.format("e%07d", n) then bad = n .. ": " .. name end
      end
      dir:close()
      return n, bad
    end

    it("lists 1 000 000 paged entries, a page per call, in little Lua memory #slow", function()
      local before = probe()
      local n, bad = list_all("bigpaged", true)
      assert.are.equal(1000000, n)
      assert.falsy(bad, "entry out of order")
      local p = probe()
      assert(p.calls - before.calls > 100, "one readdir call per page: " .. p.calls - before.calls)
      assert(p.max_per_call < 10000, "entries made in one call: " .. p.max_per_call)
      -- a table of a million entries alone would take tens of MiB
      assert(p.peak_kb < 8 * 1024, "peak Lua memory " .. p.peak_kb .. " KiB")
    end)

    -- libfuse keeps a whole listing in a list that it walks from the start
    -- for every page, so that mode costs time quadratic in the size
    it("lists 100 000 entries from an iterator in little Lua memory", function()
      local n, bad = list_all("big")
      assert.are.equal(100000, n)
      assert.falsy(bad, "entry out of order")
      assert(probe().peak_kb < 8 * 1024, "peak Lua memory " .. probe().peak_kb .. " KiB")
    end)
  end)
end)
