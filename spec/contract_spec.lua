-- spec/contract_spec.lua: the host's contract at its edges, through real
-- mounts: file handles replaced after open, userdata methods called with
-- the wrong object, os.exit and the programs a callback starts, a restart
-- right after SIGTERM, a signal that lands on the reload thread, memory
-- after an out-of-memory answer, and the messages of refused answers.
local H = require "spec.helpers"

local testing, luafs, sys = H.testing, H.luafs, H.sys
local q = H.quote

local mount, unmount_all = H.mount_tracker()
local dirs = {}

-- A script in a fresh directory of its own; returns its path.
local function script(text, name)
  local dir = H.temp_dir()
  dirs[#dirs + 1] = dir
  local path = dir .. "/" .. (name or "fs.lua")
  H.write(path, text)
  return path, dir
end

-- The start of an inline script: luafs and fs, a root directory in which
-- every other name is an empty read-only file, opened for direct I/O so
-- that each read(2) reaches the fs.read that the rest of the script adds.
local READER = [[
local luafs = require "luafs"
local fs = {}
function fs.getattr(path)
  if path == "/" then return { mode = luafs.S_IFDIR | tonumber("755", 8), nlink = 2 } end
  return { mode = luafs.S_IFREG | tonumber("444", 8), nlink = 1, size = 0 }
end
function fs.open(_, fi) fi.direct_io = true end
]]

-- A script with a root directory and nothing in it.
local ROOT_ONLY = [[
local luafs = require "luafs"
return { getattr = function(path)
  if path == "/" then return { mode = luafs.S_IFDIR | tonumber("755", 8), nlink = 2 } end
  return -luafs.ENOENT
end }
]]

-- A fresh directory for a host that a test runs itself.
local mnts = {}
local function mountpoint()
  local mnt = H.temp_dir()
  mnts[#mnts + 1] = mnt
  return mnt
end

after_each(function()
  unmount_all()
  for _, mnt in ipairs(mnts) do H.cleanup_mountpoint(mnt) end
  for _, d in ipairs(dirs) do H.remove(d) end
  dirs, mnts = {}, {}
end)

-- The errno name of a luafs.sys call's failure, or its first result.
local function try(f, ...)
  local v, _, e = f(...)
  if v == nil then return H.errname(e) end
  return v
end

local function read_file(m, rel)
  local fd, msg, e = sys.open(m:path(rel), luafs.O_RDONLY)
  if not fd then return H.errname(e), msg end
  local data, _, e2 = sys.pread(fd, 65536, 0)
  sys.close(fd)
  if not data then return H.errname(e2) end
  return data
end

local function count_lines(m, text) return #H.log_lines(m, text) end

describe("file handles replaced after open", function()
  -- /t* opens with a table handle, /i<N> with the integer N; writing
  -- "int N" or "tab NAME" assigns fi.fh; a read answers what fi.fh is.
  local HANDLES = [[
local luafs = require "luafs"
local fs = { portable_handles = (...) == "portable" }
local function desc(h)
  if type(h) == "table" then return "t" .. h.name end
  return "i" .. tostring(h)
end
function fs.getattr(path)
  if path == "/" then return { mode = luafs.S_IFDIR | tonumber("755", 8), nlink = 2 } end
  return { mode = luafs.S_IFREG | tonumber("666", 8), nlink = 1, size = 0 }
end
function fs.open(path, fi)
  fi.direct_io = true
  local n = path:match("^/i(%d+)$")
  if n then return tonumber(n) end
  return { name = path }
end
function fs.read(_, size, offset, fi)
  return desc(fi.fh):sub(offset + 1, offset + size)
end
function fs.write(_, data, _, fi)
  local kind, v = data:match("^(%a+) (%w+)$")
  if kind == "int" then fi.fh = tonumber(v) else fi.fh = { name = v } end
  return #data
end
function fs.release(path, fi) luafs.log("release " .. path .. " " .. desc(fi.fh)) end
return fs
]]

  local function pread(fd)
    local data, _, e = sys.pread(fd, 100, 0)
    return data or H.errname(e)
  end

  local function pwrite(fd, s)
    local n, _, e = sys.pwrite(fd, s, 0)
    return n or H.errname(e)
  end

  for _, portable in ipairs { "portable", "affine" } do
    for _, states in ipairs { 1, 2 } do
      local label = string.format("%s handles, %d state(s)", portable, states)

      it("keeps a replaced table handle to its own file: " .. label, function()
        local m = mount(script(HANDLES), { args = { portable },
          options = { "-o", "states=" .. states } })
        local fd1 = assert(sys.open(m:path("t1"), luafs.O_RDWR))
        assert.are.equal(6, pwrite(fd1, "int 42"))
        assert.are.equal("i42", pread(fd1))
        local fd2 = assert(sys.open(m:path("ta"), luafs.O_RDWR))
        assert.are.equal("i42", pread(fd1))
        assert.are.equal("t/ta", pread(fd2))
        assert.are.equal(5, pwrite(fd1, "tab x"))
        assert.are.equal("tx", pread(fd1))
        assert.are.equal("t/ta", pread(fd2))
        sys.close(fd1)
        assert.truthy(H.log_line(m, "release /t1 tx"))
        assert.are.equal("t/ta", pread(fd2))
        sys.close(fd2)
        assert.truthy(H.log_line(m, "release /ta t/ta"))
      end)

      it("replaces an integer handle, or refuses where libfuse keeps it: " .. label, function()
        local m = mount(script(HANDLES), { args = { portable },
          options = { "-o", "states=" .. states } })
        local fd1 = assert(sys.open(m:path("i7"), luafs.O_RDWR))
        local fd2 = assert(sys.open(m:path("i8"), luafs.O_RDWR))
        if portable == "portable" then
          assert.are.equal("EIO", pwrite(fd1, "int 9"))
          assert.truthy(H.log_line(m, "fi.fh cannot be replaced after open"))
          assert.are.equal("EIO", pwrite(fd1, "tab x"))
          assert.are.equal("i7", pread(fd1))
        else
          assert.are.equal(5, pwrite(fd1, "int 9"))
          assert.are.equal("i9", pread(fd1))
          assert.are.equal(5, pwrite(fd1, "tab x"))
          assert.are.equal("tx", pread(fd1))
        end
        assert.are.equal("i8", pread(fd2))
        sys.close(fd1)
        assert.are.equal("i8", pread(fd2))
        sys.close(fd2)
        assert.truthy(H.log_line(m, "release /i8 i8"))
      end)
    end
  end
end)

describe("userdata methods", function()
  it("refuse an object of the wrong type, for every type and method", function()
    local path = script(READER .. [[
local report = {}
local kept = {}
local function pokes(name, obj, others)
  local mt = getmetatable(obj)
  if type(mt) ~= "table" then report[#report + 1] = name .. ": no metatable"; return end
  local fns = {}
  for k, v in pairs(mt) do if type(v) == "function" then fns[#fns + 1] = { k, v } end end
  if type(mt.__index) == "table" then
    for k, v in pairs(mt.__index) do if type(v) == "function" then fns[#fns + 1] = { k, v } end end
  end
  table.sort(fns, function(a, b) return a[1] < b[1] end)
  local bad = { n = 7, nil, 1, "x", {}, io.stdout, print, coroutine.create(print) }
  for _, o in ipairs(others) do if o ~= obj then bad.n = bad.n + 1; bad[bad.n] = o end end
  for _, kv in ipairs(fns) do
    for i = 1, bad.n do
      local ok, err = pcall(kv[2], bad[i], "x", 1)
      if ok and kv[1] ~= "__tostring" then
        report[#report + 1] = name .. "." .. kv[1] .. " took " .. tostring(bad[i])
      end
      if not ok and type(err) == "string" and err:find("expected", 1, true) then
        report.refused = (report.refused or 0) + 1
      end
    end
  end
end
function fs.init(conn, cfg)
  kept.conn, kept.cfg = conn, cfg
  local ok, err = pcall(getmetatable(cfg).__index, nil, "x")
  report.init = tostring(ok) .. " " .. tostring(err)
  pokes("conn", conn, { cfg })
  pokes("cfg", cfg, { conn })
end
function fs.read(_, size, offset, fi)
  if offset > 0 then return "" end
  local st = luafs.Stat()
  local dir = assert(luafs.sys.opendir("/"))
  local bv = luafs.BufVec.mem("abc")
  local _, e = pcall(luafs.error, luafs.ENOENT)
  local all = { fi, st, dir, bv, e, kept.conn, kept.cfg }
  pokes("FileInfo", fi, all)
  pokes("Stat", st, all)
  pokes("Dir", dir, all)
  pokes("BufVec", bv, all)
  pokes("Error", e, all)
  pokes("ConnInfo later", kept.conn, all)
  -- the right objects still work after all that
  report[#report + 1] = "fh=" .. tostring(fi.fh) .. " size=" .. bv:size()
  dir:close()
  report[#report + 1] = "init: " .. report.init
  report[#report + 1] = "refused: " .. tostring(report.refused)
  return table.concat(report, "\n"):sub(1, size)
end
return fs
]])
    local m = mount(path)
    local out = read_file(m, "probe")
    assert.truthy(out:find("init: false ", 1, true), out)
    assert.truthy(out:find("luafs.ConnInfo or luafs.Config expected, got nil", 1, true), out)
    assert.truthy(out:find("fh=nil size=3", 1, true), out)
    assert.falsy(out:find(" took ", 1, true), out)
    assert.truthy(tonumber(out:match("refused: (%d+)")) > 100, out)
    assert.is_true(m:alive())
    assert.are.equal("fh=nil", read_file(m, "again"):match("fh=nil"))
  end)
end)

describe("os.exit", function()
  local EXITS = [[
local luafs = require "luafs"
local where = ...
if where == "chunk" then os.exit(3) end
local fs = {}
function fs.init() if where == "init" then os.exit(3) end end
function fs.getattr(path)
  if path == "/" then return { mode = luafs.S_IFDIR | tonumber("755", 8), nlink = 2 } end
  if path == "/exit" then os.exit(0) end
  return { mode = luafs.S_IFREG | tonumber("444", 8), nlink = 1, size = 3 }
end
function fs.read() return "ok\n" end
return fs
]]

  it("in a callback answers EIO with a log line, and the mount serves on", function()
    local m = mount(script(EXITS), { args = { "callback" } })
    assert.are.equal("EIO", try(sys.stat, m:path("exit")))
    assert.truthy(H.log_line(m, "os.exit: a luafs script cannot end the host"))
    assert.is_true(m:alive())
    assert.are.equal("ok\n", read_file(m, "plain"))
  end)

  it("in init stops the mount with init's exit status, leaving no mount", function()
    local path = script(EXITS)
    local mnt = mountpoint()
    local code, out = testing.run({ path, mnt, "-f", "--", "init" })
    assert.are.equal(4, code, out)
    assert.truthy(out:find("os.exit: a luafs script cannot end the host", 1, true), out)
    assert.truthy(out:find("init failed", 1, true), out)
    assert.are.equal(0, testing.mounted_at(mnt))
  end)

  it("in the chunk is a script that did not load", function()
    local path = script(EXITS)
    local mnt = mountpoint()
    local code, out = testing.run({ path, mnt, "-f", "--", "chunk" })
    assert.are.equal(2, code, out)
    assert.truthy(out:find("os.exit: a luafs script cannot end the host", 1, true), out)
    assert.are.equal(0, testing.mounted_at(mnt))
  end)
end)

describe("programs a callback starts", function()
  it("start with an empty signal mask and no signal ignored", function()
    local dir = H.temp_dir()
    dirs[#dirs + 1] = dir
    local path = script(READER .. [[
local out = ...
function fs.read(_, _, offset)
  if offset > 0 then return "" end
  local ok, how, code = os.execute("grep -E '^Sig(Blk|Ign):' /proc/self/status > " .. out)
  local p = assert(io.popen("grep -E '^Sig(Blk|Ign):' /proc/self/status"))
  local piped = p:read("a")
  local pok, phow, pcode = p:close()
  local w = assert(io.popen("cat > " .. out .. ".w", "w"))
  w:write("written\n")
  local wok = w:close()
  return table.concat({ tostring(ok), how, tostring(code), tostring(pok), phow,
    tostring(pcode), tostring(wok), tostring(os.execute()), piped }, "\n")
end
return fs
]])
    local m = mount(path, { args = { dir .. "/status" } })
    local out = read_file(m, "x")
    local lines = H.lines(out)
    assert.same({ "true", "exit", "0", "true", "exit", "0", "true", "true" },
      { table.unpack(lines, 1, 8) }, out)
    local piped = table.concat(lines, "\n", 9)
    for _, text in ipairs { H.read(dir .. "/status"), piped } do
      assert.truthy(text:find("SigBlk:%s+0+\n"), text)
      -- glibc's posix_spawn ignores its own two internal signals, 32 and 33
      local ignored = tonumber(text:match("SigIgn:%s+(%x+)"), 16)
      assert.are.equal(0, ignored & 0x7fffffff, text)
    end
    assert.are.equal("written\n", H.read(dir .. "/status.w"))
  end)

  it("can be stopped with SIGTERM", function()
    local dir = H.temp_dir()
    dirs[#dirs + 1] = dir
    local path = script(READER .. [[
local dir = ...
function fs.read(_, _, offset)
  if offset > 0 then return "" end
  local ok, how, code = os.execute("echo $$ > " .. dir .. "/pid; exec sleep 60")
  return tostring(ok) .. " " .. how .. " " .. tostring(code)
end
return fs
]])
    local m = mount(path, { args = { dir } })
    local reader = io.popen("cat " .. q(m:path("x")) .. " 2>&1")
    local pid = H.wait_until(function()
      local s = H.read(dir .. "/pid")
      return s and tonumber(s:match("%d+"))
    end, 10)
    assert.truthy(pid)
    os.execute("kill -TERM " .. pid)
    local out = reader:read("a")
    reader:close()
    assert.are.equal("nil signal 15", out)
  end)
end)

describe("a restart right after SIGTERM", function()
  it("mounts again on the same mountpoint, every time", function()
    local path = script(ROOT_ONLY)
    local mnt = mountpoint()
    local ready = mnt .. ".ready"
    local ok, err = pcall(function()
      for round = 1, 6 do
        os.remove(ready)
        local code, out = testing.shell(string.format(
          "LUAFS_READY_FILE=%s %s %s %s 2>&1", q(ready), q(H.host), q(path), q(mnt)))
        assert(code == 0, "round " .. round .. ": exit " .. code .. ": " .. out)
        local pid = tonumber(H.read(ready):match("%d+"))
        os.execute("kill -TERM " .. pid)
        if round == 6 then
          assert(H.wait_until(function() return not testing.alive(pid) end, 10), "still running")
        end
      end
    end)
    os.remove(ready)
    assert(ok, err)
  end)
end)

describe("SIGTERM delivered to the reload thread", function()
  it("unmounts at once, not after the grace period", function()
    local path = script(ROOT_ONLY)
    local m = mount(path)
    local tid
    local _, tasks = H.shell("ls /proc/" .. m.pid .. "/task")
    for t in tasks:gmatch("%d+") do
      if (H.read("/proc/" .. m.pid .. "/task/" .. t .. "/comm") or ""):match("^luafs%-reload") then
        tid = tonumber(t)
      end
    end
    assert.truthy(tid, "no luafs-reload thread")
    local code, out = H.shell(string.format(
      "python3 -c 'import ctypes,sys; sys.exit(ctypes.CDLL(None).syscall(234, %d, %d, 15))'",
      m.pid, tid))
    assert.are.equal(0, code, out)
    -- The grace period is 2 s: an exit after it means the signal waited for
    -- the alarm instead of waking the main thread.
    local exited = H.wait_until(function() return not m:is_mounted() and not testing.alive(m.pid) end, 1.5)
    assert.truthy(exited, "still mounted 1.5 s after SIGTERM")
    m._expect_exit = true
  end)
end)

describe("-o lua_memory", function()
  it("gives the memory of a call that ran out back to the next call", function()
    local path = script(READER .. [[
function fs.read(path, _, offset)
  if offset > 0 then return "" end
  if path == "/fill" then
    local t = {}
    for i = 1, 1e9 do t[i] = ("x"):rep(1000) .. i end
  end
  return tostring(#string.rep("y", 1 << 20))
end
return fs
]])
    local m = mount(path, { options = { "-o", "lua_memory=16m" } })
    assert.are.equal("1048576", read_file(m, "mb"))
    for _ = 1, 3 do
      assert.are.equal("ENOMEM", read_file(m, "fill"))
      assert.are.equal("1048576", read_file(m, "mb"))
    end
    assert.truthy(H.log_line(m, "out of Lua memory"))
  end)
end)

describe("odd answers", function()
  it("are refused with a log line, or taken as the manual says", function()
    local path = script([[
local luafs = require "luafs"
local fs = {}
local D, R = luafs.S_IFDIR | tonumber("755", 8), luafs.S_IFREG | tonumber("644", 8)
local made = {}
function fs.init() return 2.5 end
function fs.getattr(path)
  if path == "/" or made[path] then return { mode = D, nlink = 2 } end
  if path == "/minint" then return math.mininteger end
  if path == "/forged" then
    local _, e = pcall(luafs.error, luafs.EPERM)
    e.errno = "2"
    error(e)
  end
  if path == "/x" then return { mode = R, nlink = 1, size = 0 } end
  return -luafs.ENOENT
end
function fs.mkdir(path)
  made[path] = true
  return 2.5
end
function fs.open(_, fi) fi.direct_io = true end
function fs.read(_, _, offset)
  if offset > 0 then return "" end
  local fd = assert(luafs.sys.open("/proc/self/stat", luafs.O_RDONLY))
  local data = luafs.sys.read(fd, math.maxinteger)
  luafs.sys.close(fd)
  local ok, err = pcall(luafs.BufVec.mem, math.maxinteger)
  return tostring(luafs.context().private) .. " " .. tostring(#data > 0) .. " " .. tostring(ok)
    .. " " .. tostring(err)
end
return fs
]])
    local m = mount(path)
    assert.are.equal("EIO", try(sys.stat, m:path("minint")))
    assert.truthy(H.log_line(m, "getattr /minint: " .. path .. ":6: getattr returned -9223372036854775808, "
      .. "which is no errno"), m:log())
    assert.are.equal("EIO", try(sys.stat, m:path("forged")))
    assert.truthy(H.log_line(m, "getattr /forged:"))
    assert.are.equal(true, try(sys.mkdir, m:path("d"), tonumber("755", 8)))
    local out = read_file(m, "x")
    assert.truthy(out:find("^2%.5 true false .*size out of range"), out)
  end)
end)

describe("messages", function()
  local ANSWERS = [[
local luafs = require "luafs"
local fs = {}
local D, R = luafs.S_IFDIR | tonumber("755", 8), luafs.S_IFREG | tonumber("644", 8)
local stats = {
  ["/notype"] = { mode = tonumber("644", 8) },
  ["/negsize"] = { mode = R, size = -1 },
  ["/biglink"] = { mode = R, nlink = 1 << 40 },
}
local reads = { ["/half"] = 2.5, ["/huge"] = 2^63, ["/int"] = 12345, ["/neg"] = -99999 }
function fs.getattr(path)
  if path == "/" or path == "/dir" then return { mode = D, nlink = 2 } end
  if stats[path] then return stats[path] end
  if path == "/errno" then return nil, "custom", 9999 end
  if path == "/noerrno" then return nil, "custom" end
  return { mode = R, nlink = 1, size = 0 }
end
function fs.open(_, fi) fi.direct_io = true end
function fs.read(path, size, offset, fi)
  if path == "/fi" then return tostring(fi):sub(offset + 1, offset + size) end
  if path == "/field" then return fi.nosuch end
  if path == "/sys" then error(select(2, pcall(luafs.sys.stat, "a\0b"))) end
  if path == "/shared" then error(select(2, pcall(luafs.shared.set, "t", {}))) end
  if path == "/loop" then
    while true do end
  end
  if offset > 0 then return "" end
  return reads[path]
end
function fs.readdir()
  return { { name = "." , offset = 1 }, { name = "..", offset = 2 }, { name = "x" } }
end
function fs.getatr() end
return fs
]]

  it("name the field, the value and what was expected", function()
    local path = script(ANSWERS)
    local m = mount(path, { options = { "-o", "call_timeout=0.3" } })
    -- A refused value is logged with the place of the callback that
    -- returned it: "OP PATH: FILE:LINE: message".
    local function fails(rel, errname, text)
      local got = try(sys.stat, m:path(rel))
      if type(got) ~= "string" then got = read_file(m, rel) end
      assert.are.equal(errname, got, rel)
      local op, rest = text:match("^(%a+ /%a+): (.*)$")
      local found = H.wait_until(function()
        for line in m:log():gmatch("[^\n]+") do
          if line:find(text, 1, true) then return true end
          if op and line:find("luafs: " .. op .. ": " .. path .. ":", 1, true)
              and line:find(rest, 1, true) then
            return true
          end
        end
      end, 3)
      assert.truthy(found, "no log line with: " .. text .. "\n" .. m:log())
    end
    fails("notype", "EIO", "getattr /notype: stat field 'mode' (0644) has no file type")
    fails("negsize", "EIO", "getattr /negsize: stat field 'size' is -1; the kernel takes an integer of 0 or more")
    fails("biglink", "EIO", "getattr /biglink: stat field 'nlink' is 1099511627776; the kernel takes")
    fails("errno", "EIO", "getattr /errno: getattr failed with \"custom\" and errno 9999, which is no errno")
    fails("noerrno", "EIO", "getattr /noerrno: getattr failed with \"custom\" but no errno")
    fails("half", "EIO", "read /half: read must return a string, got number 2.5")
    fails("huge", "EIO", "read /huge: read must return a string, got number 9.2233720368548e+18")
    fails("int", "EIO", "read /int: read must return a string, got number 12345")
    fails("neg", "EIO", "read /neg: read returned -99999, which is no errno")
    fails("field", "EIO", "luafs.FileInfo has no field 'nosuch'")
    fails("sys", "EIO", "bad argument #1 to 'luafs.sys.stat'")
    fails("shared", "EIO", "bad argument #2 to 'luafs.shared.set'")
    local line = 0
    for l in (ANSWERS .. "\n"):gmatch("([^\n]*)\n") do
      line = line + 1
      if l:find("while true do end", 1, true) then break end
    end
    fails("loop", "ETIMEDOUT", "fs.lua:" .. line .. ": timed out")
    assert.truthy(read_file(m, "fi"):match("^luafs%.FileInfo %(flags 0%d*%)$"))
    -- getdents fails; lfs.dir takes that for the end of the listing
    pcall(H.listing, m:path("dir"))
    assert.truthy(H.log_line(m, "entry 3 ('x') has no offset, unlike the first"))
  end)

  it("warn of a misspelt operation once per load", function()
    local path = script(ANSWERS)
    local m = mount(path)
    local warning = "'getatr' is not a luafs operation"
    assert.truthy(H.log_line(m, warning))
    assert.are.equal(1, count_lines(m, warning))
    m:kill("USR1")
    assert.truthy(H.log_line(m, "generation 2"))
    assert.are.equal(2, count_lines(m, warning))
  end)

  it("of a reload stopped in the script's code say where it was", function()
    local path, dir = script([[
local luafs = require "luafs"
local marker = ...
local generation = luafs.generation()
if generation > 1 then
  io.open(marker, "w"):close()
  while true do end
end
return { getattr = function() return -luafs.ENOENT end }
]])
    local marker = dir .. "/loading"
    local m = mount(path, { args = { marker }, options = { "-o", "noreload" } })
    m:kill("USR1")
    assert.truthy(H.wait_until(function() return H.read(marker) end, 10))
    m:unmount()
    assert.truthy(m:log():find("reload failed, the old code keeps serving: " .. path
      .. ":6: luafs is unmounting", 1, true), m:log())
  end)

  it("of a failed init give the script's own message", function()
    local mnt = mountpoint()
    for _, case in ipairs {
      { "return nil, 'no database here', luafs.ENOENT",
        "init failed: no database here (No such file or directory): unmounting" },
      { "luafs.error(luafs.EACCES, 'locked by another host')",
        "init failed: locked by another host (Permission denied): unmounting" },
      { "return -luafs.EIO", "init failed (Input/output error): unmounting" },
    } do
      local path = script([[
local luafs = require "luafs"
return {
  init = function() ]] .. case[1] .. [[ end,
  getattr = function() return -luafs.ENOENT end,
}
]])
      local code, out = testing.run({ path, mnt, "-f" })
      assert.are.equal(4, code, out)
      assert.truthy(out:find(case[2], 1, true), out)
      assert.are.equal(0, testing.mounted_at(mnt))
    end
  end)
end)
