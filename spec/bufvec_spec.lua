-- spec/bufvec_spec.lua: luafs.BufVec, through spec/fixtures/ops_bufvec.lua:
-- read_buf answering with strings, memory buffers and file-descriptor
-- buffers (at a position, at the descriptor's offset, retried), write_buf
-- copying its buffer straight into a file, and the BufVec methods run
-- inside the host through /eval (spec/fixtures/ops_eval.lua).
local H = require "spec.helpers"

local testing, luafs, sys = H.testing, H.luafs, H.sys
local q = H.quote
local MiB = 1 << 20

local FIXTURE = H.fixture("ops_bufvec.lua")
local CONTENT = "string answer\0with a NUL byte and more text after it\n"

-- Runs code in the host of mount fs; returns table.pack(pcall(code)).
local function evaluator(fs)
  return function(code)
    local f = assert(io.open(fs:path("eval"), "r+b"))
    assert(f:write(code))
    assert(f:flush())
    assert(f:seek("set", 0))
    local out = f:read("a")
    f:close()
    return assert(load(out, "=eval result", "t", { math = math }))()
  end
end

-- Like evaluator, but raises unless the code ran without error, and
-- returns its results.
local function runner(eval)
  return function(code)
    local r = eval(code)
    assert(r[1], "the code raised: " .. tostring(r[2]))
    return table.unpack(r, 2, r.n)
  end
end

-- pread(2) of a file of the mount at offset, through luafs.sys.
local function pread(path, size, offset)
  local fd = H.check(sys.open(path, luafs.O_RDONLY))
  local s, msg, e = sys.pread(fd, size, offset)
  sys.close(fd)
  return s, msg, e
end

describe("luafs.BufVec", function()
  local fs = testing.mounted(FIXTURE, { once = true, scratch = true, args = { "{scratch}" },
    options = { "-o", "states=1" } })
  local eval, run, src

  setup(function()
    eval = evaluator(fs)
    run = runner(eval)
    src = H.bytes(300000, 21) .. "\0end\0"
    H.write(fs.scratch .. "/src", src)
    for _, fifo in ipairs { "fifo_r", "fifo_n" } do
      H.check(sys.mkfifo(fs.scratch .. "/" .. fifo, tonumber("600", 8)))
    end
  end)

  describe("in read_buf answers", function()
    it("takes a plain string, NUL bytes and offsets included", function()
      assert.are.equal(CONTENT, H.read(fs:path("str")))
      assert.are.equal(CONTENT:sub(8, 20), pread(fs:path("str"), 13, 7))
      assert.are.equal("", pread(fs:path("str"), 10, #CONTENT))
    end)

    it("takes a memory buffer", function()
      assert.are.equal(CONTENT, H.read(fs:path("mem")))
      assert.are.equal(CONTENT:sub(15, 16), pread(fs:path("mem"), 2, 14))
    end)

    it("takes a file-descriptor buffer at a position (FUSE_BUF_FD_SEEK)", function()
      H.assert_same_bytes(src, H.read(fs:path("fd")), "read through /fd")
      for _, at in ipairs { 0, 1, 4095, 4096, 123457, #src - 3 } do
        assert.are.equal(src:sub(at + 1, at + 1000), pread(fs:path("fd"), 1000, at), "at " .. at)
      end
      assert.are.equal("", pread(fs:path("fd"), 10, #src + 10))
    end)

    it("takes a file-descriptor buffer at the descriptor's offset (no FUSE_BUF_FD_SEEK)", function()
      local fd = H.check(sys.open(fs:path("fdcur"), luafs.O_RDONLY))
      -- every read continues where the host's descriptor stands,
      -- whatever offset the caller asked for
      local a = sys.pread(fd, 10, 0)
      local b = sys.pread(fd, 10, 0)
      local c = sys.pread(fd, 5, 200000)
      sys.close(fd)
      assert.are.equal(src:sub(1, 10), a)
      assert.are.equal(src:sub(11, 20), b)
      assert.are.equal(src:sub(21, 25), c)
    end)

    it("cuts a buffer longer than the read to its size", function()
      assert.are.equal(src:sub(101, 150), pread(fs:path("long"), 50, 100))
      H.assert_same_bytes(src, H.read(fs:path("long")), "read through /long")
    end)

    it("retries a file-descriptor buffer with FUSE_BUF_FD_RETRY until it is full", function()
      local dir = fs.scratch
      -- a writer that sends "abc", then "def" once told to
      local function writer(fifo, go)
        return assert(io.popen("exec sh -c " .. q("printf abc; while [ ! -e " .. q(go)
          .. " ]; do sleep 0.01; done; printf def") .. " > " .. q(dir .. "/" .. fifo), "r"))
      end
      -- without the flag, the read answers with what the pipe had
      local w = writer("fifo_n", dir .. "/go_n")
      assert.are.equal("abc", pread(fs:path("noretry"), 6, 0))
      H.write(dir .. "/go_n", "")
      assert.are.equal("def", pread(fs:path("noretry"), 6, 0))
      w:close()

      -- with it, libfuse reads on until it has all 6 bytes
      w = writer("fifo_r", dir .. "/go_r")
      local out = H.temp_dir()
      local reader = assert(io.popen("dd bs=6 count=1 if=" .. q(fs:path("retry")) .. " of="
        .. q(out .. "/got") .. " 2>/dev/null; echo done", "r"))
      H.sleep(0.3)
      -- "abc" has arrived, and the read still waits for the rest
      assert.are.equal("", H.read(out .. "/got") or "")
      H.write(dir .. "/go_r", "")
      assert.are.equal("done", reader:read("l"))
      reader:close()
      w:close()
      local got = H.read(out .. "/got")
      H.remove(out)
      assert.are.equal("abcdef", got)
    end)

    it("answers EIO, with a log line, for a value that is no buffer or a released one", function()
      assert.are.equal("EIO", H.err(pread, fs:path("bad"), 10, 0))
      assert.truthy(H.log_line(fs.m, "read_buf must return a string or a luafs.BufVec, got table"),
        fs:log())
      assert.are.equal("EIO", H.err(pread, fs:path("notbuf"), 10, 0))
      assert.truthy(H.log_line(fs.m, "read_buf must return a string or a luafs.BufVec, got userdata"),
        fs:log())
      assert.are.equal("EIO", H.err(pread, fs:path("released"), 10, 0))
      assert.truthy(H.log_line(fs.m, "expired or released luafs.BufVec"), fs:log())
    end)
  end)

  describe("in write_buf", function()
    it("copies the request's buffer into a file at the offset, byte for byte", function()
      local data = H.bytes(3 * MiB + 17, 4) .. "\0\0"
      H.write(fs:path("sink"), data)
      H.assert_same_bytes(data, H.read(fs.scratch .. "/sink"), "the file behind /sink")
      local fd = H.check(sys.open(fs:path("sink"), luafs.O_WRONLY))
      assert.are.equal(5, sys.pwrite(fd, "\0ab\0c", MiB + 1))
      assert.are.equal(3, sys.pwrite(fd, "end", #data + 10))
      sys.close(fd)
      data = data:sub(1, MiB + 1) .. "\0ab\0c" .. data:sub(MiB + 7) .. string.rep("\0", 10) .. "end"
      H.assert_same_bytes(data, H.read(fs.scratch .. "/sink"), "after pwrite")
      H.assert_same_bytes(data, H.read(fs:path("sink")), "read back through /sink")
    end)

    it("is used up by reading it: a second read finds nothing", function()
      local data = H.bytes(300000, 6)
      H.write(fs:path("twice"), data)
      H.assert_same_bytes(data, H.read(fs.scratch .. "/twice"), "the file behind /twice")
      local t = run("return S.twice")
      assert.same({ t[1], 0, "" }, t)
      assert.is_true(t[1] > 0)
    end)

    it("is expired once its callback returned", function()
      H.write(fs:path("sink"), "x")
      local r = eval([[
        local kept = S.kept
        local ok, err = pcall(kept.size, kept)
        local ok2, err2 = pcall(kept.copy_to, kept, 1, 0)
        kept:release() -- not the script's: does nothing, raises nothing
        return tostring(kept), ok, err, ok2, err2
      ]])
      assert.is_true(r[1], r[2])
      assert.are.equal("luafs.BufVec (expired)", r[2])
      assert.is_false(r[3])
      assert.matches("expired or released luafs.BufVec", r[4])
      assert.is_false(r[5])
      assert.matches("expired or released luafs.BufVec", r[6])
    end)
  end)

  describe("methods", function()
    it("makes memory buffers and tells their size and buffers", function()
      local a, b, c, d, e, f, g = run([[
        local m = BufVec.mem("hello\0world")
        local z = BufVec.mem(5)
        local size, flags = m:buffer(1)
        return m:size(), #m, m:count(), size, flags, z:tostring(), tostring(m)
      ]])
      assert.same({ 11, 11, 1, 11, 0, "\0\0\0\0\0", "luafs.BufVec (1 buffers, 11 bytes)" },
        { a, b, c, d, e, f, g })
      local r = eval("return BufVec.mem(-1)")
      assert.is_false(r[1])
      assert.matches("size out of range", r[2])
      r = eval("local m = BufVec.mem('x'); return m:buffer(2)")
      assert.is_false(r[1])
      assert.matches("no such buffer", r[2])
      r = eval("local m = BufVec.mem('x'); return m.size(luafs.Stat())")
      assert.is_false(r[1])
      assert.matches("luafs.BufVec expected, got luafs.Stat", r[2], 1, true)
    end)

    it("makes file-descriptor buffers with FUSE_BUF_IS_FD, FUSE_BUF_FD_SEEK and FUSE_BUF_FD_RETRY", function()
      local t = run([[
        local fd = assert(sys.open(scratch .. "/src", luafs.O_RDONLY))
        local function info(b) return { b:buffer(1) } end
        local t = {
          at = info(BufVec.fd(fd, 100, 7)),
          here = info(BufVec.fd(fd, 100)),
          retry = info(BufVec.fd(fd, 100, nil, luafs.FUSE_BUF_FD_RETRY)),
          both = info(BufVec.fd(fd, 100, 5, luafs.FUSE_BUF_FD_RETRY)),
          size = BufVec.fd(fd, 100, 7):size(),
          fd = fd,
        }
        sys.close(fd)
        return t
      ]])
      local IS_FD, SEEK, RETRY = luafs.FUSE_BUF_IS_FD, luafs.FUSE_BUF_FD_SEEK, luafs.FUSE_BUF_FD_RETRY
      assert.same({ 100, IS_FD | SEEK, t.fd, 7 }, t.at)
      assert.same({ 100, IS_FD, t.fd, 0 }, t.here)
      assert.same({ 100, IS_FD | RETRY, t.fd, 0 }, t.retry)
      assert.same({ 100, IS_FD | SEEK | RETRY, t.fd, 5 }, t.both)
      assert.are.equal(100, t.size)
    end)

    it("turns buffers into strings, reading file buffers from their descriptors", function()
      local a, b, c, d = run([[
        local fd = assert(sys.open(scratch .. "/src", luafs.O_RDONLY))
        local at = BufVec.fd(fd, 6, #sys.pread(fd, 1 << 20, 0) - 6):tostring()
        local here1 = BufVec.fd(fd, 4):tostring()
        local here2 = BufVec.fd(fd, 4):tostring()
        sys.close(fd)
        return at, here1, here2, BufVec.mem("x\0y"):tostring()
      ]])
      assert.are.equal(src:sub(-6), a)
      assert.are.equal(src:sub(1, 4), b)
      assert.are.equal(src:sub(5, 8), c)
      assert.are.equal("x\0y", d)
    end)

    it("copies to and from descriptors and other BufVecs (fuse_buf_copy)", function()
      local t = run([[
        local path = scratch .. "/copy"
        local fd = assert(sys.open(path, luafs.O_RDWR | luafs.O_CREAT | luafs.O_TRUNC, 420))
        local t = {}
        local m = BufVec.mem("hello\0world")
        t.to_fd = m:copy_to(fd, 3)                  -- at a position
        t.again = m:copy_to(fd, 20)                 -- reading does not use it up
        t.file = sys.pread(fd, 100, 0)
        local back = BufVec.mem(5)
        t.from_fd = back:copy_from(fd, 9)
        t.back = back:tostring()
        local big = BufVec.mem(100)
        t.from_fd_short = big:copy_from(fd, 25)     -- end of file: short
        -- between BufVecs
        local dst = BufVec.mem(11)
        t.mem_to_mem = m:copy_to(dst)
        t.dst = dst:tostring()
        local part = BufVec.mem(4)
        t.mem_from_mem = part:copy_from(m)
        t.part = part:tostring()
        -- file buffers on both sides: a copy between descriptors
        local fd2 = assert(sys.open(scratch .. "/copy2", luafs.O_RDWR | luafs.O_CREAT | luafs.O_TRUNC, 420))
        t.fd_to_fd = BufVec.fd(fd, 11, 3):copy_to(BufVec.fd(fd2, 11, 100))
        t.file2 = sys.pread(fd2, 200, 0)
        -- at the descriptor's file offset: pos nil
        assert(sys.lseek(fd2, 0, luafs.SEEK_SET))
        t.at_offset1 = BufVec.mem("AB"):copy_to(fd2, nil)
        t.at_offset2 = BufVec.mem("CD"):copy_to(fd2)
        t.head = sys.pread(fd2, 4, 0)
        -- splicing between two regular files is not possible
        t.force = { BufVec.fd(fd, 4, 0):copy_to(fd2, 0, luafs.FUSE_BUF_FORCE_SPLICE) }
        t.no_splice = BufVec.fd(fd, 4, 3):copy_to(fd2, 0, luafs.FUSE_BUF_NO_SPLICE)
        t.head2 = sys.pread(fd2, 4, 0)
        sys.close(fd)
        sys.close(fd2)
        -- failures: nil, message, errno
        t.closed = { m:copy_to(fd, 0) }
        local ro = assert(sys.open(scratch .. "/src", luafs.O_RDONLY))
        t.readonly = { m:copy_to(ro, 0) }
        sys.close(ro)
        return t
      ]])
      assert.are.equal(11, t.to_fd)
      assert.are.equal(11, t.again)
      assert.are.equal("\0\0\0hello\0world\0\0\0\0\0\0hello\0world", t.file)
      assert.are.equal(5, t.from_fd)
      assert.are.equal("world", t.back)
      assert.are.equal(6, t.from_fd_short)
      assert.are.equal(11, t.mem_to_mem)
      assert.are.equal("hello\0world", t.dst)
      assert.are.equal(4, t.mem_from_mem)
      assert.are.equal("hell", t.part)
      assert.are.equal(11, t.fd_to_fd)
      assert.are.equal(string.rep("\0", 100) .. "hello\0world", t.file2)
      assert.same({ 2, 2, "ABCD" }, { t.at_offset1, t.at_offset2, t.head })
      assert.matches("luafs.BufVec copy", t.force[2])
      assert.is_nil(t.force[1])
      assert.are.equal(H.errname(luafs.EINVAL), H.errname(t.force[3]))
      assert.are.equal(4, t.no_splice)
      assert.are.equal("hell", t.head2)
      assert.is_nil(t.closed[1])
      assert.matches("luafs.BufVec copy", t.closed[2])
      assert.are.equal("EBADF", H.errname(t.closed[3]))
      assert.is_nil(t.readonly[1])
      assert.are.equal("EBADF", H.errname(t.readonly[3]))
    end)

    it("releases once, by :release() or __close, and raises when used after", function()
      local t = run([[
        local t = {}
        local a = BufVec.mem("abc")
        a:release()
        a:release()                               -- idempotent
        t.after_release = { pcall(a.size, a) }
        t.name = tostring(a)
        local b
        do
          local c <close> = BufVec.mem(1000)
          b = c
        end                                       -- __close
        t.after_close = { pcall(b.tostring, b) }
        b:release()                               -- and once more by hand
        t.no_gc = getmetatable(BufVec.mem(1)).__gc == nil  -- the collector frees it all
        for _ = 1, 1000 do BufVec.mem(65536) end  -- left to the collector
        collectgarbage()
        collectgarbage()
        return t
      ]])
      assert.is_false(t.after_release[1])
      assert.matches("expired or released luafs.BufVec", t.after_release[2])
      assert.are.equal("luafs.BufVec (expired)", t.name)
      assert.is_false(t.after_close[1])
      assert.matches("expired or released", t.after_close[2])
      assert.is_true(t.no_gc)
      assert.is_true(fs:is_mounted())
    end)

    it("raises for bad arguments", function()
      for _, code in ipairs {
        "return BufVec.fd('x', 1)",
        "return BufVec.fd(0, -1)",
        "return BufVec.mem({})",
        "local m = BufVec.mem(1); return m:copy_to('nope')",
        "local m = BufVec.mem(1); return m.size({})",
      } do
        local r = eval(code)
        assert.is_false(r[1], code)
        assert.matches("bad argument", r[2], 1, true)
      end
    end)
  end)
end)

describe("luafs.BufVec with splicing", function()
  local fs = testing.mounted(FIXTURE, { once = true, scratch = true, args = { "{scratch}", "splice" },
    options = { "-o", "states=1" } })

  it("hands large writes to write_buf as pipe buffers, copied into the file without Lua strings", function()
    local run = runner(evaluator(fs))
    local capable = run("return S.splice_capable")
    assert.are.equal(luafs.FUSE_CAP_SPLICE_READ, capable & luafs.FUSE_CAP_SPLICE_READ,
      "the kernel offers no FUSE_CAP_SPLICE_READ")
    -- with the collector stopped, the count only grows: by every byte the
    -- state allocates meanwhile
    local before = run("collectgarbage() collectgarbage('stop') return collectgarbage('count')")
    local data = H.bytes(16 * MiB, 8)
    local f = assert(io.open(fs:path("sink"), "wb"))
    for i = 1, #data, MiB do assert(f:write(data:sub(i, i + MiB - 1))) end
    assert(f:close())
    H.assert_same_bytes(data, H.read(fs.scratch .. "/sink"), "the file behind /sink")
    local kbytes, fd_writes, writes = run([[
      local n = collectgarbage('count')
      collectgarbage('restart')
      return n, S.fd_writes, S.writes
    ]])
    assert.is_true(fd_writes >= 16, fd_writes .. " of " .. writes .. " writes came as fd buffers")
    assert.is_true(kbytes - before < 2048, "the Lua state grew by " .. (kbytes - before) .. " kB")
    H.assert_same_bytes(data, H.read(fs:path("sink")), "read back through /sink")
  end)

  it("drains a pipe buffer once: a second read of it finds nothing, and does not block", function()
    local run = runner(evaluator(fs))
    local data = H.bytes(4 * MiB, 9)
    local f = assert(io.open(fs:path("twice"), "wb"))
    for i = 1, #data, MiB do assert(f:write(data:sub(i, i + MiB - 1))) end
    assert(f:close())
    H.assert_same_bytes(data, H.read(fs.scratch .. "/twice"), "the file behind /twice")
    local t, fd_writes = run("return S.twice, S.fd_writes")
    assert.is_true(fd_writes > 0)
    assert.same({ t[1], 0, "" }, t)
    assert.is_true(t[1] > 0)
  end)
end)
