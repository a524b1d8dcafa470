-- spec/ioctl_spec.lua: lua/examples/ioctl.lua, driven by ioctl(2) from a C
-- client (spec/fixtures/ioctl_client.c), compiled once as a 64-bit and
-- once as a 32-bit program: sizes set and read back through ioctls,
-- arguments in and out of the sizes that the commands' _IOC bits say,
-- the integer argument and result, ENOTTY for commands the file does not
-- know, and the flags (FUSE_IOCTL_COMPAT, FUSE_IOCTL_DIR) the script sees.
local H = require "spec.helpers"

local testing, luafs, sys = H.testing, H.luafs, H.sys
local q = H.quote

local FUSE_IOCTL_COMPAT, FUSE_IOCTL_DIR = luafs.FUSE_IOCTL_COMPAT, luafs.FUSE_IOCTL_DIR
local FUSE_IOCTL_32BIT = 8 -- the kernel's flag beside COMPAT for ia32 callers

local function IOC(dir, nr, size) return dir << 30 | size << 16 | ("E"):byte() << 8 | nr end
local IOC_WRITE, IOC_READ = 1, 2

describe("ioctl.lua", function()
  local fs = testing.mounted(H.example("ioctl.lua"), { once = true })
  local bin, clients = nil, {}

  setup(function()
    bin = H.temp_dir()
    for _, kind in ipairs { "64", "32" } do
      local out = bin .. "/ioctl_client" .. kind
      local code, text = H.shell("cc -m" .. kind .. " -O2 -Wall -Wextra -Werror -o " .. q(out)
        .. " " .. q(H.fixture("ioctl_client.c")))
      assert(code == 0, "cannot compile ioctl_client.c with -m" .. kind
        .. " (scripts/setup installs gcc-multilib for -m32): " .. text)
      clients[kind] = out
    end
  end)
  teardown(function() if bin then H.remove(bin) end end)

  -- Runs a client (kind "64" or "32") on the mount's file; returns its
  -- exit code and output.
  local function client(kind, file, ...)
    local words = { q(clients[kind]), q(fs:path(file)) }
    for _, w in ipairs { ... } do words[#words + 1] = q(tostring(w)) end
    return H.shell(table.concat(words, " "))
  end
  local function ok(kind, file, ...)
    local code, out = client(kind, file, ...)
    assert(code == 0, "ioctl_client " .. table.concat({ file, ... }, " ") .. ": " .. out)
    return out
  end
  local function errno_of(kind, file, ...)
    local code, out = client(kind, file, ...)
    assert.are.equal(2, code, out)
    return H.errname(tonumber(out:match("^errno=(%d+)")))
  end

  before_each(function() assert(sys.truncate(fs:path("fioc"), 0)) end)

  it("sets the size and reads it back, through ioctls and stat alike", function()
    assert.are.equal("size=0\n", ok("64", "fioc", "get"))
    assert.are.equal("ok\n", ok("64", "fioc", "set", 100))
    assert.are.equal("size=100\n", ok("64", "fioc", "get"))
    assert.are.equal(100, sys.stat(fs:path("fioc")).size)
    assert.are.equal(string.rep("\0", 100), H.read(fs:path("fioc")))
    -- a size the file got from write shows in the ioctl
    H.write(fs:path("fioc"), "hello, world")
    assert.are.equal("size=12\n", ok("64", "fioc", "get"))
    -- shrinking cuts the data
    ok("64", "fioc", "set", 5)
    assert.are.equal("hello", H.read(fs:path("fioc")))
    -- sizes beyond 32 bits travel intact, and the script refuses them
    assert.are.equal("EINVAL", errno_of("64", "fioc", "set", (1 << 40) + 7))
    assert.are.equal("size=5\n", ok("64", "fioc", "get"))
  end)

  it("hands data in and out in the sizes of the command's _IOC bits", function()
    local content = H.bytes(20000, 11)
    H.write(fs:path("fioc"), content)
    for _, n in ipairs { 8, 9, 100, 4096, 16383 } do
      for _, off in ipairs { 0, 777, 19990 } do
        local out = ok("64", "fioc", "read", off, n)
        assert.are.equal(n, #out, "bytes out for a command of size " .. n)
        -- the reply is the file's bytes at off, with zeros past its end
        local want = content:sub(off + 1, off + n)
        want = want .. string.rep("\0", n - #want)
        H.assert_same_bytes(want, out, "FIOC_READ(" .. n .. ") at " .. off)
      end
    end
    -- in: n - 8 bytes of data after the offset
    for _, n in ipairs { 9, 4096, 16383 } do
      local piece = H.bytes(n - 8, n)
      local path = bin .. "/piece"
      H.write(path, piece)
      local code, out = H.shell(q(clients["64"]) .. " " .. q(fs:path("fioc")) .. " write 1000 "
        .. n .. " < " .. q(path))
      assert(code == 0, out)
      assert.are.equal("result=" .. (n - 8) .. "\n", out)
      content = content:sub(1, 1000) .. piece .. content:sub(1000 + #piece + 1)
      H.assert_same_bytes(content, H.read(fs:path("fioc")), "after FIOC_WRITE(" .. n .. ")")
    end
  end)

  it("passes the integer argument and returns the integer result", function()
    H.write(fs:path("fioc"), "0123456789")
    assert.are.equal("result=10\n", ok("64", "fioc", "truncate", 4))
    assert.are.equal("0123", H.read(fs:path("fioc")))
    assert.are.equal("result=4\n", ok("64", "fioc", "truncate", 300000))
    assert.are.equal(300000, sys.stat(fs:path("fioc")).size)
  end)

  it("answers ENOTTY for commands the file does not know", function()
    local unknown = {
      IOC(IOC_READ, 9, 8),              -- an unknown number
      IOC(IOC_WRITE, 0, 8),             -- FIOC_GET_SIZE's number, the wrong way
      IOC(IOC_READ, 3, 64),             -- FIOC_READ without its input
      IOC(IOC_READ | IOC_WRITE, 3, 4),  -- FIOC_READ too small for an offset
      IOC(IOC_READ, 0, 8) ~ (1 << 8),   -- another magic letter
      0x5401,                           -- TCGETS: no terminal here
    }
    for _, cmd in ipairs(unknown) do
      assert.are.equal("ENOTTY", errno_of("64", "fioc", "raw", string.format("0x%x", cmd)),
        string.format("command 0x%x", cmd))
    end
    -- the root directory knows only FIOC_INFO
    assert.are.equal("ENOTTY", errno_of("64", "", "get"))
    -- and the file still works
    assert.are.equal("size=0\n", ok("64", "fioc", "get"))
  end)

  it("shows the flags: none for a 64-bit caller, COMPAT for a 32-bit one, DIR on a directory", function()
    H.write(fs:path("fioc"), "abc")
    local function info(kind, file)
      local f, cmd, size = ok(kind, file, "info"):match("^flags=0x(%x+) cmd=0x(%x+) size=(%d+)\n$")
      return tonumber(f, 16), tonumber(cmd, 16), tonumber(size)
    end
    local flags, cmd, size = info("64", "fioc")
    assert.are.equal(0, flags)
    assert.are.equal(IOC(IOC_READ, 2, 16), cmd)
    assert.are.equal(3, size)

    flags, cmd, size = info("32", "fioc")
    assert.are.equal(FUSE_IOCTL_COMPAT | FUSE_IOCTL_32BIT, flags)
    assert.are.equal(IOC(IOC_READ, 2, 16), cmd)
    assert.are.equal(3, size)

    flags = info("64", "")
    assert.are.equal(FUSE_IOCTL_DIR, flags)
    flags = info("32", "")
    assert.are.equal(FUSE_IOCTL_DIR | FUSE_IOCTL_COMPAT | FUSE_IOCTL_32BIT, flags)
  end)

  it("works the same for a 32-bit caller", function()
    ok("32", "fioc", "set", 4321)
    assert.are.equal("size=4321\n", ok("32", "fioc", "get"))
    assert.are.equal("size=4321\n", ok("64", "fioc", "get"))
    H.write(fs:path("fioc"), "compat data")
    assert.are.equal("compat d", ok("32", "fioc", "read", 0, 8))
    assert.are.equal("result=11\n", ok("32", "fioc", "truncate", 6))
    assert.are.equal("compat", H.read(fs:path("fioc")))
    assert.are.equal("ENOTTY", errno_of("32", "fioc", "raw", string.format("0x%x", IOC(IOC_READ, 9, 8))))
    assert.is_nil(fs:log():match("[Ee]rror"), fs:log())
  end)
end)

describe("ioctl results", function()
  -- single-threaded, so that one heap serves consecutive requests
  local fs = testing.mounted(H.fixture("ops_ioctl.lua"), { once = true, options = { "-s" } })
  local bin, client

  setup(function()
    bin = H.temp_dir()
    client = bin .. "/ioctl_client"
    local code, text = H.shell("cc -O2 -Wall -Wextra -Werror -o " .. q(client) .. " "
      .. q(H.fixture("ioctl_client.c")))
    assert(code == 0, "cannot compile ioctl_client.c: " .. text)
  end)
  teardown(function() if bin then H.remove(bin) end end)

  local function T(dir, nr, size) return dir << 30 | size << 16 | ("T"):byte() << 8 | nr end
  -- "result=R data=HEX" -> R, HEX; or nil, the errno's name
  local function raw(cmd)
    local code, out = H.shell(q(client) .. " " .. q(fs:path("f")) .. " raw " .. string.format("0x%x", cmd))
    if code == 2 then return nil, H.errname(tonumber(out:match("^errno=(%d+)"))) end
    assert(code == 0, out)
    local r, data = out:match("^result=(%-?%d+) data=(%x*)\n$")
    if not r then r = out:match("^result=(%-?%d+)\n$") end
    return tonumber(r), data
  end
  local A5 = "a5"

  it("zero-fills what a read command's answer leaves out", function()
    -- a read-write command of the same size first, so that the host's
    -- heap has a block of a5 bytes ready for the next answer
    raw(T(IOC_READ | IOC_WRITE, 9, 300))
    local r, data = raw(T(IOC_READ, 1, 300))
    assert.are.equal(0, r)
    assert.are.equal("6162" .. string.rep("00", 298), data)
  end)

  it("keeps the input where a read-write command answers less, or nothing", function()
    local r, data = raw(T(IOC_READ | IOC_WRITE, 2, 8))
    assert.are.equal(7, r)
    assert.are.equal(string.rep(A5, 8), data)
    r, data = raw(T(IOC_READ | IOC_WRITE, 3, 8))
    assert.are.equal(0, r)
    assert.are.equal("78797a" .. string.rep(A5, 5), data)
  end)

  it("hands the input of the command's size, and takes output as long", function()
    assert.are.equal(16, (raw(T(IOC_WRITE, 8, 16))))
    assert.are.equal(16383, (raw(T(IOC_WRITE, 8, 16383))))
    local r, data = raw(T(IOC_READ | IOC_WRITE, 9, 300))
    assert.are.equal(0, r)
    assert.are.equal(string.rep(A5, 300), data)
  end)

  it("fails the ways a callback fails", function()
    assert.same({ nil, "EPERM" }, { raw(T(IOC_WRITE, 6, 8)) })
    assert.same({ nil, "EROFS" }, { raw(T(IOC_WRITE, 7, 8)) })
    assert.same({ nil, "ENOTTY" }, { raw(T(IOC_WRITE, 99, 8)) })
  end)

  it("answers EIO, with a log line, for output too long or not a string", function()
    assert.same({ nil, "EIO" }, { raw(T(IOC_READ, 4, 4)) })
    assert.truthy(H.log_line(fs.m, "ioctl returned 12 bytes of data"), fs:log())
    assert.same({ nil, "EIO" }, { raw(T(IOC_READ, 5, 8)) })
    assert.truthy(H.log_line(fs.m, "must return a string, got table"), fs:log())
    assert.is_true(fs:is_mounted())
  end)
end)
