-- spec/host_spec.lua: the luafs command: bad input, --help and --version,
-- script arguments, -d, detaching from the terminal, refusing a mountpoint
-- in use, and scripts/check-docs.
--
-- Every host run here gets a fresh mountpoint; after each run the spec
-- checks that nothing is mounted there and that no host for it is left.
local H = require "spec.helpers"

local testing, luafs, sys = H.testing, H.luafs, H.sys
local q = H.quote

local HELLO = H.example("hello.lua")
local MEMFS = H.example("memfs.lua")

local function run(argv, opts) return testing.run(argv, opts) end

-- A fresh empty directory to mount on; forget(dir) undoes whatever a host
-- run left there and removes it.
local dirs = {}
local function fresh_dir()
  local d = H.temp_dir()
  dirs[#dirs + 1] = d
  return d
end
local function forget(dir)
  H.cleanup_mountpoint(dir)
  H.remove(dir)
end

-- Nothing of ours on dir: no mount and no host process.
local function assert_clean(dir)
  assert.are.equal(0, testing.mounted_at(dir), "a mount was left on " .. dir)
  assert.are.same({}, H.pids_with_arg(dir), "a host for " .. dir .. " is still running")
end

local function one_line(text)
  local lines = H.lines(text)
  assert.are.equal(1, #lines, "expected one message line, got:\n" .. text)
  return lines[1]
end

describe("luafs", function()
  after_each(function()
    for _, d in ipairs(dirs) do forget(d) end
    dirs = {}
  end)

  describe("refuses bad input with one line, its exit status, and no mount", function()
    local file_path

    setup(function()
      file_path = H.temp_dir() .. "/a-file"
      H.write(file_path, "not a directory\n")
    end)
    teardown(function() H.remove(file_path:match("^(.*)/")) end)

    -- Each case: the arguments (MNT stands for a fresh mountpoint, FILE for
    -- a regular file), the exit status, and a text the message must contain.
    local cases = {
      { "a missing script", { "/nonexistent/luafs-none.lua", "MNT" }, 2,
        "script /nonexistent/luafs-none.lua: No such file or directory" },
      { "a script that is a directory", { "/tmp", "MNT" }, 2, "/tmp: Is a directory" },
      { "a syntax error", { H.fixture("syntax_error.lua"), "MNT" }, 2,
        "syntax_error.lua:4: unexpected symbol near '='" },
      { "a script that raises while loading", { H.fixture("raises_on_load.lua"), "MNT" }, 2,
        "raises_on_load.lua:2: load-time-failure-marker" },
      { "a script that returns a number", { H.fixture("returns_number.lua"), "MNT" }, 2,
        "the script returned number, not a table of operations" },
      { "no arguments", {}, 1, "luafs: no script given; usage: luafs SCRIPT MOUNTPOINT" },
      { "no mountpoint", { HELLO }, 1, "luafs: no mountpoint given; usage: luafs SCRIPT MOUNTPOINT" },
      { "a missing mountpoint", { HELLO, "MNT/nope" }, 3, "/nope: No such file or directory" },
      { "a missing mountpoint directory", { HELLO, "MNT/no/such" }, 3, "/no/such: No such file or directory" },
      { "a mountpoint that is a file", { HELLO, "FILE" }, 3, "is not a directory" },
      { "an unknown option", { HELLO, "MNT", "--bogus" }, 1, "luafs: unknown option '--bogus'" },
      { "an unknown short option", { HELLO, "MNT", "-x" }, 1, "luafs: unknown option '-x'" },
      { "an unknown -o option", { HELLO, "MNT", "-o", "bogus" }, 1, "unknown option(s): `-o bogus'" },
      { "-o without a value", { HELLO, "MNT", "-o" }, 1, "missing argument after `-o'" },
      { "an argument too many", { HELLO, "MNT", "extra" }, 1,
        "luafs: unexpected argument 'extra' (script arguments go after --)" },
      { "states=0", { HELLO, "MNT", "-o", "states=0" }, 1,
        "luafs: -o states=0: expected a number of Lua states from 1 to 1024" },
      { "states=-1", { HELLO, "MNT", "-o", "states=-1" }, 1, "luafs: -o states=-1: expected" },
      { "states=1025", { HELLO, "MNT", "-o", "states=1025" }, 1, "luafs: -o states=1025: expected" },
      { "a huge states", { HELLO, "MNT", "-o", "states=99999999999999999999" }, 1,
        "luafs: -o states=99999999999999999999: expected" },
      { "states=two", { HELLO, "MNT", "-o", "states=two" }, 1, "luafs: -o states=two: expected" },
      { "call_timeout=abc", { HELLO, "MNT", "-o", "call_timeout=abc" }, 1,
        "luafs: -o call_timeout=abc: expected a positive number of seconds" },
      { "call_timeout=0", { HELLO, "MNT", "-o", "call_timeout=0" }, 1, "-o call_timeout=0: expected" },
      { "call_timeout=-1", { HELLO, "MNT", "-o", "call_timeout=-1" }, 1, "-o call_timeout=-1: expected" },
      { "lua_memory=xyz", { HELLO, "MNT", "-o", "lua_memory=xyz" }, 1,
        "luafs: -o lua_memory=xyz: expected a number of bytes from 1024 to 1T" },
      { "lua_memory=10", { HELLO, "MNT", "-o", "lua_memory=10" }, 1, "-o lua_memory=10: expected" },
      { "lua_memory=2t", { HELLO, "MNT", "-o", "lua_memory=2t" }, 1, "-o lua_memory=2t: expected" },
    }

    for _, case in ipairs(cases) do
      local what, argv, status, text = case[1], case[2], case[3], case[4]
      it(what .. " (exit " .. status .. ")", function()
        local mnt = fresh_dir()
        local args = {}
        for i, a in ipairs(argv) do
          args[i] = a:gsub("^MNT", function() return mnt end)
            :gsub("^FILE$", function() return file_path end)
        end
        local code, all, out = run(args)
        assert.are.equal(status, code, all)
        assert.are.equal("", out, "messages belong on standard error")
        assert.truthy(one_line(all):find(text, 1, true), "expected " .. text .. " in:\n" .. all)
        assert_clean(mnt)
      end)
    end

    it("an init that raises fails the mount (exit 4), in the foreground", function()
      local mnt = fresh_dir()
      local code, all = run({ H.fixture("init_raises.lua"), mnt, "-f" })
      assert.are.equal(4, code, all)
      local lines = H.lines(all)
      assert.are.equal(2, #lines, all)
      assert.truthy(lines[1]:find("init: " .. H.fixture("init_raises.lua") .. ":4: init-failure-marker", 1, true), all)
      assert.are.equal("luafs: init failed (Input/output error): unmounting", lines[2])
      assert_clean(mnt)
    end)

    it("an init that raises fails the mount (exit 4) on the terminal, when detaching", function()
      local mnt = fresh_dir()
      local code, all, out = run({ H.fixture("init_raises.lua"), mnt })
      assert.are.equal(4, code, all)
      assert.are.equal("", out)
      assert.truthy(all:find("init-failure-marker", 1, true), all)
      assert.truthy(all:find("luafs: init failed (Input/output error): unmounting", 1, true), all)
      assert_clean(mnt)
    end)

    it("a key that is not an operation gets a warning naming it", function()
      local mnt = fresh_dir()
      local code, all = run({ H.fixture("typo.lua"), mnt })
      assert.are.equal(0, code, all)
      assert.are.equal("luafs: warning: " .. H.fixture("typo.lua")
        .. ": 'getatr' is not a luafs operation (ignored)", one_line(all))
      assert.are.equal(1, testing.mounted_at(mnt))
      -- The rest of the table serves.
      assert.truthy(sys.stat(mnt))
      assert.are.equal("ENOENT", H.err(sys.stat, mnt .. "/x"))
    end)
  end)

  describe("refuses a mountpoint that is in use", function()
    local fs = testing.mounted(HELLO)

    it("when another luafs is mounted there (exit 3), and that one keeps serving", function()
      local code, all = run({ MEMFS, fs.mountpoint })
      assert.are.equal(3, code, all)
      assert.are.equal(string.format("luafs: %s is already mounted by another luafs (%s); "
        .. "unmount it first: fusermount3 -u %s", fs.mountpoint, HELLO, fs.mountpoint), one_line(all))
      assert.are.equal(1, testing.mounted_at(fs.mountpoint))
      assert.are.equal("hello\n", H.read(fs:path("hello")))
      assert.truthy(fs:alive())
    end)

    it("when reached through a symbolic link", function()
      local link = fresh_dir() .. "/link"
      assert(sys.symlink(fs.mountpoint, link))
      local code, all = run({ MEMFS, link })
      assert.are.equal(3, code, all)
      assert.truthy(one_line(all):find("luafs: " .. fs.mountpoint
        .. " is already mounted by another luafs", 1, true), all)
      assert.are.equal(1, testing.mounted_at(fs.mountpoint))
    end)

    it("when another filesystem is mounted there", function()
      assert.are.equal(0, sys.geteuid(), "this test mounts a tmpfs and needs root")
      local mnt = fresh_dir()
      local c0, o0 = H.shell("mount -t tmpfs -o size=1m luafs-spec-tmpfs " .. q(mnt))
      assert.are.equal(0, c0, o0)
      local code, all = run({ HELLO, mnt })
      H.shell("umount " .. q(mnt))
      assert.are.equal(3, code, all)
      assert.are.equal(string.format("luafs: %s is already a mountpoint (tmpfs luafs-spec-tmpfs); "
        .. "unmount it first: umount %s", mnt, mnt), one_line(all))
    end)
  end)

  describe("--help and --version", function()
    it("-h and --help print the same usage on standard output and exit 0", function()
      local c1, _, out1, err1 = run({ "-h" })
      local c2, _, out2 = run({ "--help" })
      local c3, _, out3 = run({ HELLO, "/nonexistent", "--help" })
      assert.are.equal(0, c1)
      assert.are.equal(0, c2)
      assert.are.equal(0, c3)
      assert.are.equal("", err1)
      assert.are.equal(out1, out2)
      assert.are.equal(out1, out3)
      assert.are.equal("usage: luafs SCRIPT MOUNTPOINT [options] [-- script arguments]", H.lines(out1)[1])
      for line in out1:gmatch("[^\n]+") do
        assert(#line <= 79, "a help line is wider than 79 columns: " .. line)
      end
    end)

    it("--help matches luafs(1) OPTIONS, libfuse's operations are bound and documented,"
      .. " and so is the Lua API", function()
      local code, out = H.shell(q(H.root .. "/scripts/check-docs") .. " --luafs " .. q(H.host))
      assert.are.equal(0, code, out)
      assert.truthy(out:find("^check%-docs: %d+ options, 42 operations and %d+ names of the Lua API"
        .. " documented\n$"), out)
    end)

    it("-V and --version print the luafs, Lua and libfuse versions", function()
      local code, _, out, err = run({ "-V" })
      local code2, _, out2 = run({ "--version" })
      assert.are.equal(0, code)
      assert.are.equal(0, code2)
      assert.are.equal("", err)
      assert.are.equal(out, out2)
      local lines = H.lines(out)
      assert.are.equal(3, #lines, out)
      local _, pc = H.shell("pkg-config --modversion fuse3")
      local _, lv = H.shell("lua5.4 -v")
      local v = luafs.version()
      assert.are.equal("luafs " .. v.luafs, lines[1])
      assert.truthy(lines[1]:match("^luafs %d+%.%d+%.%d+$"), lines[1])
      assert.are.equal(lv:match("^(Lua 5%.4%.%d+)"), lines[2])
      assert.are.equal(v.lua, lines[2])
      assert.are.equal(pc:match("^(%S+)"), v.fuse)
      assert.truthy(lines[3]:match("^libfuse " .. v.fuse:gsub("%.", "%%.") .. " %(FUSE_USE_VERSION 3%d+%)$"),
        lines[3])
    end)
  end)

  describe("script arguments after --", function()
    local ARGS = { "plain", "with space", "", "-o", "ro", "--", "tab\tand\nnewline", "\195\188ml\195\164ut" }
    local fs = testing.mounted(H.fixture("host_args.lua"), { once = true, args = ARGS })

    it("reach the chunk as ..., byte for byte, even when they look like options", function()
      assert.are.equal(tostring(#ARGS), H.read(fs:path("count")))
      for i, a in ipairs(ARGS) do
        assert.are.equal(a, H.read(fs:path(tostring(i))), "argument " .. i)
      end
      -- "-o ro" after -- went to the script, not to the mount.
      local info = H.read("/proc/self/mountinfo")
      local opts
      for line in info:gmatch("[^\n]+") do
        local mp, o = line:match("^%S+ %S+ %S+ %S+ (%S+) (%S+)")
        if mp == fs.mountpoint then opts = o end
      end
      assert.truthy(opts and opts:match("^rw,"), opts)
    end)
  end)

  describe("the -d trace", function()
    local fs = testing.mounted(HELLO, { options = { "-d" } })

    it("logs a luafs line per call with operation, path, result and microseconds", function()
      assert.are.equal("hello\n", H.read(fs:path("hello")))
      assert.are.equal("ENOENT", H.err(sys.stat, fs:path("missing")))
      local read_line = H.log_line(fs, "luafs: read /hello -> 6 (")
      assert.truthy(read_line, fs:log())
      assert.truthy(read_line:match("^luafs: read /hello %-> 6 %(%d+ us%)$"), read_line)
      local miss = H.log_line(fs, "luafs: getattr /missing -> -2 (")
      assert.truthy(miss and miss:match("^luafs: getattr /missing %-> %-2 %(%d+ us%)$"), fs:log())
      -- libfuse's own trace is there too.
      assert.truthy(fs:log():find("unique: %d+, opcode: LOOKUP"), fs:log())
    end)
  end)

  describe("without -f", function()
    it("returns once the mount is live and init has run, detached from the terminal", function()
      local mnt, marks = fresh_dir(), fresh_dir()
      local code, all = run({ H.fixture("host_markers.lua"), mnt, "--", marks, "0.5" })
      assert.are.equal(0, code, all)
      assert.are.equal("", all)
      -- No waiting: the mount is there and init has run when luafs returns.
      assert.are.equal(1, testing.mounted_at(mnt))
      assert.are.equal("init ran\n", H.read(marks .. "/init"))
      assert.are.equal("hello\n", H.read(mnt .. "/hello"))
      local pids = H.pids_with_arg(mnt)
      assert.are.equal(1, #pids)
      local pid = pids[1]
      for fd = 0, 2 do
        assert.are.equal("/dev/null", sys.readlink("/proc/" .. pid .. "/fd/" .. fd), "fd " .. fd)
      end
      assert.are.equal("/", sys.readlink("/proc/" .. pid .. "/cwd"))
      local stat = H.read("/proc/" .. pid .. "/stat")
      local session = tonumber(stat:match("%)%s+%S+%s+%d+%s+%d+%s+(%d+)"))
      assert.are.equal(pid, session, "the host leads a session of its own")
      -- fusermount3 -u ends it, and destroy runs.
      local c2, o2 = H.shell("fusermount3 -u " .. q(mnt))
      assert.are.equal(0, c2, o2)
      assert.truthy(H.wait_until(function() return not testing.alive(pid) end, 10))
      assert.are.equal("destroy ran\n", H.read(marks .. "/destroy"))
      assert_clean(mnt)
    end)

    it("reports a script error on the terminal, with its exit status", function()
      local mnt = fresh_dir()
      local code, all = run({ H.fixture("raises_on_load.lua"), mnt })
      assert.are.equal(2, code, all)
      assert.truthy(one_line(all):find("load-time-failure-marker", 1, true), all)
      assert_clean(mnt)
    end)
  end)

  describe("scripts/check-docs", function()
    local work

    before_each(function() work = H.temp_dir() end)
    after_each(function() H.remove(work) end)

    -- Runs check-docs with one of its inputs replaced by `text`.
    local function check_with(which, text)
      local path = work .. "/" .. which
      H.write(path, text)
      return H.shell(q(H.root .. "/scripts/check-docs") .. " --luafs " .. q(H.host)
        .. " --" .. which .. " " .. q(path))
    end

    local man1 = H.read(H.root .. "/man/luafs.1")
    local man3 = H.read(H.root .. "/man/luafs.3")
    local header = H.read(H.root .. "/src/luafs.h")
    local fuse_h = H.read("/usr/include/fuse3/fuse.h")
    local fileinfo_c = H.read(H.root .. "/src/fileinfo.c")

    it("fails when an option of --help is missing from luafs(1)", function()
      local text, n = man1:gsub("%.TP\n%.B noreload\n.-\n(%.TP\n)", "%1")
      assert.are.equal(1, n)
      local code, out = check_with("man1", text)
      assert.are.equal(1, code, out)
      assert.are.equal("check-docs: luafs(1) OPTIONS has no entry for \"noreload\" (from luafs --help)\n", out)
    end)

    it("fails when luafs(1) documents an option that --help does not list", function()
      local text, n = man1:gsub("%.TP\n%.B clone_fd\n",
        ".TP\n.B nosuchopt\nan option that is not there\n.TP\n.B clone_fd\n")
      assert.are.equal(1, n)
      local code, out = check_with("man1", text)
      assert.are.equal(1, code, out)
      assert.are.equal("check-docs: luafs(1) OPTIONS has \"nosuchopt\", which luafs --help does not list\n", out)
    end)

    it("fails when an option's text differs between --help and luafs(1)", function()
      local text, n = man1:gsub("\nmount read%-only\n", "\nmount it read-only\n")
      assert.are.equal(1, n)
      local code, out = check_with("man1", text)
      assert.are.equal(1, code, out)
      assert.truthy(out:find("OPTIONS \"ro\" says \"mount it read-only\"; "
        .. "luafs --help says \"mount read-only\"", 1, true), out)
    end)

    it("fails when an operation of fuse_operations is not in LUAFS_OPS", function()
      local text, n = header:gsub(" X%(bmap%)", "")
      assert.are.equal(1, n)
      local code, out = check_with("luafs-h", text)
      assert.are.equal(1, code, out)
      assert.truthy(out:find("fuse_operations.bmap is not in LUAFS_OPS", 1, true), out)
    end)

    it("fails when libfuse has an operation that luafs does not know", function()
      local text, n = fuse_h:gsub("(struct fuse_operations%s*{)", "%1\n\tint (*frobnicate) (const char *);")
      assert.are.equal(1, n)
      local code, out = check_with("header", text)
      assert.are.equal(1, code, out)
      assert.truthy(out:find("fuse_operations.frobnicate is not in LUAFS_OPS", 1, true), out)
    end)

    it("fails when an operation is not documented in luafs(3)", function()
      local text, n = man3:gsub('%.BI "fsyncdir%(', '.BI "fsync_dir(')
      assert.are.equal(1, n)
      local code, out = check_with("man3", text)
      assert.are.equal(1, code, out)
      assert.truthy(out:find("operation fsyncdir is not documented in luafs(3) OPERATIONS", 1, true), out)
    end)

    it("fails when a function of luafs.sys has no entry in luafs(3), or an entry names none", function()
      local text, n = man3:gsub('"%), fdopendir%(" fd %)', '"), fd_opendir(" fd )')
      assert.are.equal(1, n)
      local code, out = check_with("man3", text)
      assert.are.equal(1, code, out)
      assert.are.equal("check-docs: luafs(3) LUAFS.SYS has an entry for luafs.sys.fd_opendir, which luafs"
        .. " does not have\ncheck-docs: luafs.sys.fdopendir has no entry in luafs(3) LUAFS.SYS\n", out)
    end)

    it("fails when a function of the luafs module or a method has no entry in luafs(3)", function()
      local text, n = man3:gsub("\n%.TP\n%.B luafs%.generation%(%)\n", "\n.TP\n.B luafs.generations()\n")
      assert.are.equal(1, n)
      local n2
      text, n2 = text:gsub("\n%.TP\n%.B ph:destroy%(%)\n", "\n.TP\n.B ph.destroy()\n")
      assert.are.equal(1, n2)
      local code, out = check_with("man3", text)
      assert.are.equal(1, code, out)
      assert.truthy(out:find("luafs.generation has no entry in luafs(3) THE LUAFS MODULE\n", 1, true), out)
      assert.truthy(out:find("luafs.PollHandle method destroy has no entry in luafs(3) POLL HANDLES\n",
        1, true), out)
    end)

    it("fails when a field of FileInfo has no entry in luafs(3)", function()
      local text, n = fileinfo_c:gsub('"poll_events", NULL', '"poll_events", "backing_id", NULL')
      assert.are.equal(1, n)
      local code, out = check_with("fileinfo-c", text)
      assert.are.equal(1, code, out)
      assert.are.equal("check-docs: luafs.FileInfo field backing_id has no entry in luafs(3) FILE INFO\n", out)
    end)
  end)
end)
