-- spec/hello_spec.lua: lua/examples/hello.lua, the smallest filesystem:
-- one directory, one read-only file, and nothing else.
local H = require "spec.helpers"

local testing, luafs, sys = H.testing, H.luafs, H.sys
local octal = H.octal
local E = H.err
local O_RDONLY, O_WRONLY, O_RDWR, O_CREAT = luafs.O_RDONLY, luafs.O_WRONLY, luafs.O_RDWR, luafs.O_CREAT

local HELLO = H.example("hello.lua")

-- "OK" or the errno name of open(path, flags, mode); closes what it opened.
local function EO(path, flags, mode)
  local fd, _, e = sys.open(path, flags, mode)
  if not fd then return H.errname(e) end
  sys.close(fd)
  return "OK"
end

-- Everything that would change the filesystem, each as an errno name.
local function changes(fs)
  local f = fs:path("hello")
  return {
    open_w = EO(f, O_WRONLY),
    open_rw = EO(f, O_RDWR),
    create = EO(fs:path("new"), O_WRONLY | O_CREAT, octal "644"),
    mkdir = E(sys.mkdir, fs:path("dir")),
    mknod = E(sys.mkfifo, fs:path("fifo"), octal "644"),
    symlink = E(sys.symlink, "hello", fs:path("link")),
    link = E(sys.link, f, fs:path("hard")),
    unlink = E(sys.unlink, f),
    rmdir = E(sys.rmdir, fs:path("hello")),
    rename = E(sys.rename, f, fs:path("moved")),
    chmod = E(sys.chmod, f, octal "666"),
    chown = E(sys.chown, f, 1, 1),
    truncate = E(sys.truncate, f, 0),
    utimens = E(sys.utimensat, luafs.AT_FDCWD, f, 1, 0, 1, 0),
    setxattr = E(sys.lsetxattr, f, "user.x", "v"),
    removexattr = E(sys.lremovexattr, f, "user.x"),
  }
end

local function same_everywhere(t, want)
  local expected = {}
  for k in pairs(t) do expected[k] = want end
  return expected
end

describe("hello.lua", function()
  local fs = testing.mounted(HELLO, { once = true })

  it("lists one file", function()
    assert.same({ ".", "..", "hello" }, H.listing(fs.mountpoint))
    local code, out = H.shell("ls -la " .. H.quote(fs.mountpoint))
    assert.are.equal(0, code)
    assert.truthy(out:match("\n%-r%-%-r%-%-r%-%- +1 %S+ +%S+ +6 [^\n]+ hello\n"), out)
  end)

  it("serves its contents, from any offset", function()
    assert.are.equal("hello\n", H.read(fs:path("hello")))
    local fd = H.check(sys.open(fs:path("hello"), O_RDONLY))
    local reads = {}
    for off = 0, 7 do reads[#reads + 1] = sys.pread(fd, 3, off) end
    reads[#reads + 1] = sys.pread(fd, 100, 100)
    reads[#reads + 1] = sys.pread(fd, 0, 0)
    sys.close(fd)
    assert.same({ "hel", "ell", "llo", "lo\n", "o\n", "\n", "", "", "", "" }, reads)
    local code, out = H.shell("cat " .. H.quote(fs:path("hello")))
    assert.are.equal(0, code)
    assert.are.equal("hello\n", out)
  end)

  it("describes its two entries", function()
    local root = assert(sys.lstat(fs.mountpoint))
    assert.same({ luafs.S_IFDIR | octal "755", 2 }, { root.mode, root.nlink })
    local st = assert(sys.lstat(fs:path("hello")))
    assert.same({ luafs.S_IFREG | octal "444", 1, 6 }, { st.mode, st.nlink, st.size })
  end)

  it("answers ENOENT for anything else, and ENOTDIR under the file", function()
    assert.are.equal("ENOENT", E(sys.lstat, fs:path("nope")))
    assert.are.equal("ENOENT", EO(fs:path("nope"), O_RDONLY))
    assert.are.equal("ENOENT", E(sys.lstat, fs:path("Hello")))
    assert.are.equal("ENOENT", E(sys.lstat, fs:path("nope/hello")))
    assert.are.equal("ENOTDIR", E(sys.lstat, fs:path("hello/x")))
    assert.are.equal("ENOTDIR", E(sys.opendir, fs:path("hello")))
    assert.are.equal("EINVAL", E(sys.readlink, fs:path("hello")))
  end)

  it("answers ENOSYS for every change, since it defines no such operation", function()
    local got = changes(fs)
    local want = same_everywhere(got, "ENOSYS")
    -- an open without an open operation succeeds; the write then fails
    want.open_w, want.open_rw = "OK", "OK"
    -- the kernel turns a missing xattr operation into EOPNOTSUPP, and a
    -- missing link into EPERM; it knows that hello is no directory
    want.setxattr, want.removexattr = "ENOTSUP/EOPNOTSUPP", "ENOTSUP/EOPNOTSUPP"
    want.link, want.rmdir = "EPERM", "ENOTDIR"
    assert.same(want, got)
    local fd = H.check(sys.open(fs:path("hello"), O_WRONLY))
    assert.are.equal("ENOSYS", E(sys.pwrite, fd, "x", 0))
    sys.close(fd)
    assert.are.equal("hello\n", H.read(fs:path("hello")))
    -- none of this is a script error: nothing is logged as one
    assert.is_nil(fs:log():find("traceback", 1, true), fs:log())
  end)
end)

describe("hello.lua mounted with -o ro", function()
  local fs = testing.mounted(HELLO, { once = true, options = { "-o", "ro" } })

  it("answers EROFS for every change", function()
    local got = changes(fs)
    assert.same(same_everywhere(got, "EROFS"), got)
    assert.are.equal("hello\n", H.read(fs:path("hello")))
  end)
end)
