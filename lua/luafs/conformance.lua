--- luafs.conformance: a luafs filesystem against tmpfs, call by call.
--
-- A battery of cases, each a function that makes system calls in a fresh
-- directory and returns what it observed (results, errno names, stat
-- fields, bytes, which timestamps moved). Every case runs twice: in a
-- directory of the user's mount and in one on tmpfs, and the two
-- observations must be the same. A difference names the system call,
-- its path (from the case's directory) and both results:
--
--    rename("/a", "/b", RENAME_NOREPLACE): mount OK, tmpfs EEXIST [noreplace_existing]
--
-- A spec of a few lines runs it:
--
--    describe("myfs", function()
--      require("luafs.conformance").run("myfs.lua", { skip = { "xattrs" } })
--    end)
--
-- Each case is one busted test. What a filesystem does not claim to do
-- (hard links, xattrs, ...) is a feature name in `opts.skip`; luafs(3),
-- THE TEST KIT, lists them. The script is mounted once for the block,
-- through luafs.testing, on a fresh directory; the tmpfs twin is a fresh
-- directory under /dev/shm.
--
-- Limits: Linux only (tmpfs, /proc); the comparison is as strict as
-- tmpfs, so a filesystem that differs on purpose skips the cases (or the
-- features) where it does, or checks the difference with `opts.expect`.
--
-- @module luafs.conformance

local testing = require "luafs.testing"
local luafs = require "luafs"
local raw = luafs.sys

local conformance = {}

local function octal(s) return tonumber(s, 8) end

local O_RDONLY, O_WRONLY, O_RDWR = luafs.O_RDONLY, luafs.O_WRONLY, luafs.O_RDWR
local O_CREAT, O_EXCL, O_TRUNC, O_APPEND = luafs.O_CREAT, luafs.O_EXCL, luafs.O_TRUNC, luafs.O_APPEND
local O_NONBLOCK = luafs.O_NONBLOCK
local SEEK_DATA, SEEK_HOLE = luafs.SEEK_DATA, luafs.SEEK_HOLE
local AT_FDCWD, NOFOLLOW = luafs.AT_FDCWD, luafs.AT_SYMLINK_NOFOLLOW
local GiB, MiB = 1 << 30, 1 << 20

---------------------------------------------------------------------------
-- Names: errno values, flags and modes as a reader of a difference wants
-- them.
---------------------------------------------------------------------------

local errnames = {}
for k, v in pairs(luafs) do
  if type(k) == "string" and k:match("^E[A-Z0-9]+$") and math.type(v) == "integer" then
    errnames[v] = errnames[v] or {}
    table.insert(errnames[v], k)
  end
end
for v, names in pairs(errnames) do
  table.sort(names)
  errnames[v] = table.concat(names, "/")
end

--- The name of errno value e ("ENOENT"), "OK" for 0 or nil.
local function errname(e)
  if e == nil or e == 0 then return "OK" end
  return errnames[e] or ("errno " .. tostring(e))
end
conformance.errname = errname

-- The bits of each kind of flag argument that luafs knows, in the order
-- they are shown.
local function bits(prefix, names)
  local t = {}
  for _, n in ipairs(names) do
    if luafs[prefix .. n] then t[#t + 1] = { prefix .. n, luafs[prefix .. n] } end
  end
  return t
end
local FLAGS = {
  oflags = bits("O_", { "CREAT", "EXCL", "TRUNC", "APPEND", "NONBLOCK", "DIRECTORY", "NOFOLLOW",
                        "PATH", "CLOEXEC", "SYNC", "DSYNC", "NOATIME", "TMPFILE" }),
  rename = bits("RENAME_", { "NOREPLACE", "EXCHANGE", "WHITEOUT" }),
  xattr = bits("XATTR_", { "CREATE", "REPLACE" }),
  falloc = bits("FALLOC_FL_", { "KEEP_SIZE", "PUNCH_HOLE", "ZERO_RANGE", "COLLAPSE_RANGE", "INSERT_RANGE" }),
  at = bits("AT_", { "SYMLINK_NOFOLLOW", "SYMLINK_FOLLOW", "REMOVEDIR", "EMPTY_PATH" }),
}
local WHENCE = {}
for _, n in ipairs { "SET", "CUR", "END", "DATA", "HOLE" } do
  if luafs["SEEK_" .. n] then WHENCE[luafs["SEEK_" .. n]] = "SEEK_" .. n end
end

local function show_flags(kind, v)
  if math.type(v) ~= "integer" then return tostring(v) end
  local words = {}
  if kind == "oflags" then
    local acc = v & 3
    words[1] = acc == O_WRONLY and "O_WRONLY" or acc == O_RDWR and "O_RDWR" or "O_RDONLY"
    v = v & ~3
  end
  for _, b in ipairs(FLAGS[kind]) do
    if v & b[2] ~= 0 then
      words[#words + 1] = b[1]
      v = v & ~b[2]
    end
  end
  if v ~= 0 or #words == 0 then words[#words + 1] = tostring(v) end
  return table.concat(words, "|")
end

-- Which arguments of each luafs.sys function are descriptors, flags or
-- modes (by position).
local ARGS = {
  open = { [2] = "oflags", [3] = "mode" }, openat = { "atfd", [3] = "oflags", [4] = "mode" },
  mkdir = { [2] = "mode" }, chmod = { [2] = "mode" }, mknod = { [2] = "mode" },
  mkfifo = { [2] = "mode" }, fchmod = { "fd", "mode" }, fchmodat = { "atfd", [3] = "mode", [4] = "at" },
  rename = { [3] = "rename" }, lsetxattr = { [4] = "xattr" }, fsetxattr = { "fd", [4] = "xattr" },
  fallocate = { "fd", "falloc" }, lseek = { "fd", [3] = "whence" },
  copy_file_range = { "fd", [3] = "fd" }, utimensat = { "atfd", [7] = "at" },
  linkat = { "atfd", [3] = "atfd", [5] = "at" },
}
for _, name in ipairs { "pread", "pwrite", "read", "write", "fsync", "fdatasync", "ftruncate", "fstat",
                        "fstatvfs", "fchown", "futimens", "fgetxattr", "flistxattr", "fremovexattr",
                        "flock", "fcntl_lock", "close", "fdopendir", "fchdir" } do
  ARGS[name] = { "fd" }
end

-- Calls whose results differ between any two runs: not noted.
local UNNOTED = { clock_gettime = true, sleep = true, getpid = true, getuid = true, geteuid = true,
                  getgid = true, getegid = true, strerror = true, umask = true }

---------------------------------------------------------------------------
-- A run: one case in one directory, and the journal of its calls.
---------------------------------------------------------------------------

local current -- the run in progress

local function show_string(s)
  local dir = current and current.dir
  if dir and s:sub(1, #dir) == dir and (#s == #dir or s:sub(#dir + 1, #dir + 1) == "/") then
    s = s:sub(#dir + 1)
    if s == "" then s = "/" end
  end
  local shown = #s > 60 and (s:sub(1, 24) .. "..." .. s:sub(-24)) or s
  shown = string.format("%q", shown):gsub("\\\n", "\\n"):gsub("[\128-\255]", function(c) return "\\" .. c:byte() end)
  if #s > 60 then shown = shown .. " (" .. #s .. " bytes)" end
  return shown
end

local function show_value(v, depth)
  depth = depth or 0
  if type(v) == "string" then return show_string(v) end
  if type(v) ~= "table" then return tostring(v) end
  if depth > 2 then return "{...}" end
  local keys = {}
  for k in pairs(v) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b)
    if type(a) == type(b) and (type(a) == "number" or type(a) == "string") then return a < b end
    return type(a) == "number"
  end)
  local parts = {}
  for _, k in ipairs(keys) do
    local item = show_value(v[k], depth + 1)
    if math.type(k) ~= "integer" then item = tostring(k) .. "=" .. item end
    parts[#parts + 1] = item
  end
  local s = "{" .. table.concat(parts, ", ") .. "}"
  if #s > 200 then s = s:sub(1, 196) .. "...}" end
  return s
end

local function show_arg(kind, v)
  if kind == "fd" and current and current.fds[v] then return "fd " .. current.fds[v] end
  if kind == "atfd" and v == AT_FDCWD then return "AT_FDCWD" end
  if kind == "mode" and math.type(v) == "integer" then return string.format("0%o", v) end
  if kind == "whence" then return WHENCE[v] or tostring(v) end
  if FLAGS[kind] then return show_flags(kind, v) end
  if type(v) == "string" then return show_string(v) end
  return tostring(v)
end

local function show_result(r)
  if r[1] == nil and r.n >= 3 then return errname(r[3]) end
  local v = r[1]
  if type(v) == "table" then
    if #v > 0 and type(v[1]) == "string" then
      local copy = table.move(v, 1, #v, 1, {})
      table.sort(copy)
      return show_value(copy)
    end
    return "OK"
  end
  if v == true or type(v) == "userdata" then return "OK" end
  return show_value(v)
end

--- Note a call of the case in progress: its label and its result.
local function note(label, result)
  if current then current.journal[#current.journal + 1] = { label = label, result = result } end
end

local function label_of(name, args)
  local kinds = ARGS[name] or {}
  local shown = {}
  for i = 1, args.n do shown[i] = show_arg(kinds[i], args[i]) end
  return name .. "(" .. table.concat(shown, ", ") .. ")"
end

--[[ The luafs.sys that cases call: the same functions, each noting its
call in the journal of the run in progress. ]]
local sys = setmetatable({}, {
  __index = function(t, name)
    local f = raw[name]
    if type(f) ~= "function" or UNNOTED[name] then return f end
    local function noted(...)
      local args = table.pack(...)
      local r = table.pack(f(...))
      if current then
        local label = label_of(name, args)
        note(label, show_result(r))
        if (name == "open" or name == "openat") and r[1] then
          current.fds[r[1]] = show_arg(nil, args[name == "open" and 1 or 2])
        elseif name == "close" then
          current.fds[args[1]] = nil
        end
      end
      return table.unpack(r, 1, r.n)
    end
    rawset(t, name, noted)
    return noted
  end,
})

--- A table for what a case observes: each field remembers which calls of
-- the journal led to it, so that a difference can name them.
local function observe(init)
  local run = current
  local store = {}
  local proxy = setmetatable({}, {
    __index = store,
    __len = function() return #store end,
    __newindex = function(_, k, v)
      store[k] = v
      run.spans[k] = { run.mark, #run.journal }
      run.mark = #run.journal + 1
      run.order[#run.order + 1] = k
    end,
  })
  run.observed = store
  for k, v in pairs(init or {}) do proxy[k] = v end
  return proxy
end

--- Values that a case keeps for `opts.expect` without comparing them.
local function aside(k, v) current.aside[k] = v end

--- Whether the filesystem under test claims feature `name`.
local function has(name) return not current.skip[name] end

---------------------------------------------------------------------------
-- Helpers for the cases; each notes one entry in the journal.
---------------------------------------------------------------------------

--- "OK" or the errno name of a luafs.sys-style call.
local function E(f, ...)
  local r = table.pack(pcall(f, ...))
  if not r[1] then error(r[2], 2) end
  if r[2] == nil then return errname(r[4]) end
  return "OK"
end

--- Like assert() for luafs.sys results: the first value, or an error that
-- names the errno.
local function check(v, msg, e, ...)
  if v == nil then error((msg or "failed") .. " (" .. errname(e) .. ")", 2) end
  return v, msg, e, ...
end

--- "OK" or the errno name of open(path, flags, mode); closes what it opened.
local function EO(path, flags, mode)
  local fd, _, e = sys.open(path, flags, mode)
  if not fd then return errname(e) end
  sys.close(fd)
  return "OK"
end

local function read(path)
  local f, err = io.open(path, "rb")
  local s, rerr
  if f then
    s, rerr = f:read("a")
    f:close()
  end
  note("read(" .. show_string(path) .. ")", s and show_value(s) or tostring(err or rerr))
  return s, err or rerr
end

local function write(path, data, mode)
  local f = assert(io.open(path, mode or "wb"))
  assert(f:write(data))
  assert(f:close())
  note("write(" .. show_string(path) .. ", " .. show_string(data) .. ")", "OK")
end

--- Sorted names in a directory, "." and ".." included.
local function listing(path)
  local dir, _, e = raw.opendir(path)
  local names = {}
  if dir then
    for name in dir.read, dir do names[#names + 1] = name end
    dir:close()
    table.sort(names)
  end
  note("readdir(" .. show_string(path) .. ")", dir and show_value(names) or errname(e))
  if not dir then error("opendir " .. path .. " failed (" .. errname(e) .. ")", 2) end
  return names
end

-- The fields of a stat table that a luafs filesystem and tmpfs agree on.
local STAT_FIELDS = { "mode", "nlink", "size", "uid", "gid", "rdev", "blocks", "blksize" }

local function fields_of(st, e, fields)
  if not st then return errname(e) end
  local t = {}
  for _, k in ipairs(fields or STAT_FIELDS) do t[k] = st[k] end
  return t
end
local function stat_of(path, fields)
  local st, _, e = sys.lstat(path)
  return fields_of(st, e, fields)
end
local function fstat_of(fd, fields)
  local st, _, e = sys.fstat(fd)
  return fields_of(st, e, fields)
end

--- The kind of file at path, as lstat says: "file", "directory", "link", ...
local function kind(path)
  local st = raw.lstat(path)
  if not st then return nil end
  local names = { [luafs.S_IFREG] = "file", [luafs.S_IFDIR] = "directory", [luafs.S_IFLNK] = "link",
    [luafs.S_IFIFO] = "named pipe", [luafs.S_IFSOCK] = "socket", [luafs.S_IFCHR] = "char device",
    [luafs.S_IFBLK] = "block device" }
  return names[st.mode & luafs.S_IFMT]
end

--- A deterministic pseudo-random string of n bytes (all 256 values occur,
-- and the pattern does not repeat every 4 KiB).
local function bytes(n, seed)
  local x = seed or 12345
  local block = {}
  for i = 1, 4096 do
    x = (x * 1103515245 + 12345) & 0x7fffffff
    block[i] = string.char((x >> 16) & 0xff)
  end
  local b = table.concat(block)
  local parts = {}
  local k = 0
  while k * #b < n do
    k = k + 1
    local r = (k * 7) % #b
    parts[k] = b:sub(r + 1) .. b:sub(1, r)
  end
  return table.concat(parts):sub(1, n)
end
conformance.bytes = bytes

-- tmpfs takes its timestamps from a clock that ticks every few ms: wait
-- longer than that between steps whose times are compared.
local function tick() testing.sleep(0.02) end

--- Run a shell command in dir; note and return its exit code and output.
local function shell(dir, cmd)
  local code, out = testing.shell("cd " .. testing.quote(dir) .. " && " .. cmd)
  note("sh(" .. show_string(cmd) .. ")", code .. " " .. show_string(out))
  return code, out
end

local function must(cmd)
  local code, out = testing.shell(cmd)
  assert(code == 0, "failed (" .. code .. "): " .. cmd .. "\n" .. out)
  note("sh(" .. show_string(cmd) .. ")", "0")
  return out
end

--- For the cases that assert themselves: want and got must be equal.
local function equal(want, got, what)
  if want ~= got then
    error(string.format("%swanted %s, got %s", what and (what .. ": ") or "", show_value(want), show_value(got)), 2)
  end
end

---------------------------------------------------------------------------
-- The cases.
---------------------------------------------------------------------------

local cases = {}
conformance.cases = cases

-- case(name, group, title, needs, f): f(d, src) runs in directory d (src:
-- d in the filesystem's backing store, when the spec names one) and
-- returns what it observed. pair(...): f(m, t) gets both directories at
-- once and asserts itself.
local function case(name, group, title, needs, f)
  cases[#cases + 1] = { name = name, group = group, title = title, needs = needs, f = f }
end
local function pair(name, group, title, needs, f)
  cases[#cases + 1] = { name = name, group = group, title = title, needs = needs, pair = f }
end

case("files.basic", "files", "creates, writes, appends and reads, with tmpfs's errors", {}, function(d, src)
  local o = observe()
  write(d .. "/f", "hello")
  o.read = read(d .. "/f")
  write(d .. "/f", " world", "ab")
  write(d .. "/f", "!", "ab")
  o.appended = read(d .. "/f")
  o.in_src = src and read(src .. "/f")
  local fd = check(sys.open(d .. "/f", O_WRONLY | O_APPEND))
  o.pwrite_append = sys.pwrite(fd, "<tail>", 0)
  o.read_wronly = E(sys.pread, fd, 1, 0)
  sys.close(fd)
  o.after = read(d .. "/f")
  o.excl = EO(d .. "/f", O_WRONLY | O_CREAT | O_EXCL, octal "644")
  o.missing = EO(d .. "/nope", O_RDONLY)
  o.in_missing_dir = EO(d .. "/nope/f", O_WRONLY | O_CREAT, octal "644")
  o.under_file = EO(d .. "/f/x", O_RDONLY)
  o.create_under_file = EO(d .. "/f/x", O_WRONLY | O_CREAT, octal "644")
  o.dir_for_write = EO(d, O_WRONLY)
  o.dir_create = EO(d, O_WRONLY | O_CREAT, octal "644")
  o.too_long = EO(d .. "/" .. string.rep("n", 256), O_WRONLY | O_CREAT, octal "644")
  o.longest = EO(d .. "/" .. string.rep("n", 255), O_WRONLY | O_CREAT, octal "644")
  fd = check(sys.open(d .. "/f", O_RDWR | O_TRUNC))
  o.truncated = sys.fstat(fd).size
  o.write_read = { sys.pwrite(fd, "abc", 0), sys.pread(fd, 10, 0), sys.pread(fd, 10, 3) }
  sys.close(fd)
  o.new_mode = EO(d .. "/m", O_WRONLY | O_CREAT | O_EXCL, octal "4750")
  o.stat = stat_of(d .. "/f")
  o.m = stat_of(d .. "/m")
  o.listing = listing(d)
  return o
end)

local binary -- made once, when the case first runs
case("files.binary", "files", "keeps binary data with NUL bytes, and files over 1 MiB, intact", {}, function(d, src)
  binary = binary or (bytes(3 * MiB + 123, 7) .. "\0\0tail\0")
  local data = binary
  write(d .. "/bin", data)
  local o = observe()
  o.back = read(d .. "/bin") == data
  o.in_src = src and read(src .. "/bin") == data
  local fd = check(sys.open(d .. "/bin", O_RDWR))
  o.mid = sys.pread(fd, 10, 2 * MiB + 5)
  o.write = sys.pwrite(fd, "\0x\0y\0", MiB - 2)
  o.around = sys.pread(fd, 9, MiB - 4)
  o.across_chunks = sys.pread(fd, 200000, 65536 - 7) == data:sub(65536 - 6, 65536 - 7 + 200000)
  o.past_end = sys.pread(fd, 10, 10 * MiB)
  o.at_end = sys.pread(fd, 10, #data - 3)
  o.size = sys.fstat(fd).size
  o.blocks = sys.fstat(fd).blocks
  sys.close(fd)
  local back = read(d .. "/bin")
  o.whole = back == data:sub(1, MiB - 2) .. "\0x\0y\0" .. data:sub(MiB + 4)
  return o
end)

case("files.sparse", "files", "writes sparsely, past 4 GiB, and finds data and holes", { "holes" }, function(d)
  local fd = check(sys.open(d .. "/sparse", O_RDWR | O_CREAT, octal "644"))
  local o = observe()
  o.w1 = sys.pwrite(fd, "x", 5 * GiB)
  o.w2 = sys.pwrite(fd, "yy", MiB + 4095)
  o.w3 = sys.pwrite(fd, "y", 3 * MiB)
  local st = sys.fstat(fd)
  o.size, o.blocks = st.size, st.blocks
  o.seeks = {}
  local offsets = { 0, 4096, MiB, MiB + 100, MiB + 4096, MiB + 5000, MiB + 8192, 3 * MiB, 3 * MiB + 4096,
    5 * GiB - 1, 5 * GiB, 5 * GiB + 1 }
  for _, off in ipairs(offsets) do
    local data, _, e1 = sys.lseek(fd, off, SEEK_DATA)
    local hole, _, e2 = sys.lseek(fd, off, SEEK_HOLE)
    o.seeks[#o.seeks + 1] = { off, data or errname(e1), hole or errname(e2) }
  end
  o.far = sys.pread(fd, 3, 5 * GiB - 1)
  o.hole = sys.pread(fd, 4, 4 * GiB)
  o.mid = sys.pread(fd, 4, MiB + 4094)
  sys.close(fd)
  fd = check(sys.open(d .. "/empty", O_RDWR | O_CREAT, octal "644"))
  o.empty_data = E(sys.lseek, fd, 0, SEEK_DATA)
  o.empty_hole = E(sys.lseek, fd, 0, SEEK_HOLE)
  sys.close(fd)
  return o
end)

case("files.truncate", "files", "truncates up and down, by name and by descriptor", {}, function(d)
  write(d .. "/f", bytes(20000, 3))
  local o = observe()
  o.down = E(sys.truncate, d .. "/f", 5000)
  o.after_down = { read(d .. "/f"), stat_of(d .. "/f") }
  o.up = E(sys.truncate, d .. "/f", 3 * 4096 + 1)
  o.after_up = { read(d .. "/f"), stat_of(d .. "/f") }
  local fd = check(sys.open(d .. "/f", O_RDWR))
  o.by_fd = E(sys.ftruncate, fd, 8)
  o.write_past = sys.pwrite(fd, "Z", 100)
  o.fd_read = sys.pread(fd, 200, 0)
  o.zero = E(sys.ftruncate, fd, 0)
  o.zero_stat = { sys.fstat(fd).size, sys.fstat(fd).blocks }
  o.negative = E(sys.ftruncate, fd, -1)
  sys.close(fd)
  fd = check(sys.open(d .. "/f", O_RDONLY))
  o.readonly_fd = E(sys.ftruncate, fd, 1)
  sys.close(fd)
  o.missing = E(sys.truncate, d .. "/nope", 1)
  o.dir = E(sys.truncate, d, 1)
  return o
end)

case("files.fallocate", "files", "allocates with fallocate, and refuses the modes tmpfs refuses", { "fallocate" },
function(d)
  local fd = check(sys.open(d .. "/f", O_RDWR | O_CREAT, octal "644"))
  check(sys.pwrite(fd, string.rep("a", 3 * 4096), 0))
  local o = observe()
  local function st() local s = sys.fstat(fd) return { s.size, s.blocks } end
  o.plain = E(sys.fallocate, fd, 0, 0, 8 * 4096)
  o.after_plain = st()
  o.keep = E(sys.fallocate, fd, luafs.FALLOC_FL_KEEP_SIZE, 8 * 4096, 8 * 4096)
  o.after_keep = st()
  o.allocated_is_hole = { sys.lseek(fd, 3 * 4096, SEEK_DATA) or "ENXIO", sys.lseek(fd, 0, SEEK_HOLE) }
  -- a truncation to the same size frees what lies past the end
  o.past_end = E(sys.fallocate, fd, luafs.FALLOC_FL_KEEP_SIZE, 20 * 4096, 4096)
  o.after_past_end = st()
  o.same_size = E(sys.ftruncate, fd, 8 * 4096)
  o.after_same_size = st()
  o.punch = E(sys.fallocate, fd, luafs.FALLOC_FL_PUNCH_HOLE | luafs.FALLOC_FL_KEEP_SIZE, 4096, 4096)
  o.punch_part = E(sys.fallocate, fd, luafs.FALLOC_FL_PUNCH_HOLE | luafs.FALLOC_FL_KEEP_SIZE, 2 * 4096 + 10, 20)
  o.after_punch = st()
  o.punched = sys.pread(fd, 4096, 4096) == string.rep("\0", 4096)
  o.part = sys.pread(fd, 40, 2 * 4096)
  o.kept = sys.pread(fd, 4096, 0) == string.rep("a", 4096)
  o.hole_at = sys.lseek(fd, 0, SEEK_HOLE)
  o.punch_without_keep = E(sys.fallocate, fd, luafs.FALLOC_FL_PUNCH_HOLE, 0, 4096)
  o.zero_range = E(sys.fallocate, fd, luafs.FALLOC_FL_ZERO_RANGE, 0, 4096)
  o.collapse = E(sys.fallocate, fd, luafs.FALLOC_FL_COLLAPSE_RANGE, 0, 4096)
  o.bad_len = E(sys.fallocate, fd, 0, 0, 0)
  o.contents = sys.pread(fd, 11 * 4096, 0):gsub("a+", "a"):gsub("%z+", "0")
  -- more than the filesystem holds (tmpfs says so before allocating)
  o.no_space = E(sys.fallocate, fd, 0, 0, 1 << 50)
  o.after_no_space = st()
  sys.close(fd)
  return o
end)

case("files.unlinked", "files", "keeps a file unlinked while open readable and writable through its fd", {},
function(d)
  local f = assert(io.open(d .. "/gone", "w+b"))
  assert(f:write("still here"))
  assert(f:flush())
  local o = observe()
  o.unlink = E(sys.unlink, d .. "/gone")
  o.name = E(sys.lstat, d .. "/gone")
  assert(f:seek("set", 0))
  o.read = f:read("a")
  assert(f:write(" and more"))
  assert(f:seek("set", 0))
  o.reread = f:read("a")
  o.size = f:seek("end")
  -- without hard_remove, libfuse keeps the file as .fuse_hidden* until
  -- the kernel releases it, a moment after the last close
  if has "unlinked_open" then o.listing_open = listing(d) end
  f:close()
  o.listing = testing.wait_until(function()
    local names = listing(d)
    return #names == 2 and names
  end, 3) or listing(d)
  o.rmdir = E(sys.rmdir, d)
  check(sys.mkdir(d))
  return o
end)

case("files.sync", "files", "syncs files and directories", {}, function(d)
  local fd = check(sys.open(d .. "/f", O_RDWR | O_CREAT, octal "644"))
  sys.pwrite(fd, "data", 0)
  local o = observe()
  o.fsync = E(sys.fsync, fd)
  o.fdatasync = E(sys.fdatasync, fd)
  sys.close(fd)
  local dfd = check(sys.open(d, O_RDONLY | luafs.O_DIRECTORY))
  o.dir = E(sys.fsync, dfd)
  sys.close(dfd)
  return o
end)

case("files.access", "files", "checks access like tmpfs", {}, function(d)
  write(d .. "/f", "x")
  write(d .. "/x", "x")
  assert(sys.chmod(d .. "/f", octal "644"))
  assert(sys.chmod(d .. "/x", octal "755"))
  check(sys.mkdir(d .. "/locked", octal "000"))
  local o = observe()
  o.f_ok = E(sys.access, d .. "/f", luafs.F_OK)
  o.rw = E(sys.access, d .. "/f", luafs.R_OK | luafs.W_OK)
  o.x = E(sys.access, d .. "/f", luafs.X_OK)
  o.x_ok = E(sys.access, d .. "/x", luafs.X_OK)
  o.missing = E(sys.access, d .. "/nope", luafs.F_OK)
  o.under_file = E(sys.access, d .. "/f/x", luafs.F_OK)
  o.locked_dir = E(sys.access, d .. "/locked", luafs.X_OK)
  return o
end)

case("files.copy_file_range", "files", "copies ranges with copy_file_range", {}, function(d)
  local data = bytes(300000, 3)
  write(d .. "/a", data)
  local a = check(sys.open(d .. "/a", O_RDONLY))
  local b = check(sys.open(d .. "/b", O_RDWR | O_CREAT, octal "644"))
  local o = observe()
  o.first = sys.copy_file_range(a, 1000, b, 0, 100000)
  o.second = sys.copy_file_range(a, 250000, b, 200000, 100000) -- short: end of a
  o.at_end = sys.copy_file_range(a, 300000, b, 0, 10)
  o.size = sys.fstat(b).size
  o.same1 = sys.pread(b, 100000, 0) == data:sub(1001, 101000)
  o.gap = sys.pread(b, 100000, 100000) == string.rep("\0", 100000)
  o.same2 = sys.pread(b, 50000, 200000) == data:sub(250001, 300000)
  o.bad_fd = E(sys.copy_file_range, b, 0, a, 0, 10) -- a is read-only
  sys.close(a)
  sys.close(b)
  return o
end)

case("files.rmdir_after_close", "files",
  "removes a directory right after closing a file unlinked in it, and while it is open", {}, function(d)
  local o = observe()
  o.races = 0
  -- the kernel's release of the file comes after close(2) returns
  for i = 1, 30 do
    local sub = d .. "/r" .. i
    check(sys.mkdir(sub))
    local fd = check(sys.open(sub .. "/f", O_RDWR | O_CREAT, octal "644"))
    check(sys.unlink(sub .. "/f"))
    sys.close(fd)
    if E(sys.rmdir, sub) ~= "OK" then o.races = o.races + 1 end
  end
  -- and with the file still open: its descriptor goes on working
  check(sys.mkdir(d .. "/open"))
  local fd = check(sys.open(d .. "/open/f", O_RDWR | O_CREAT, octal "644"))
  sys.write(fd, "kept")
  check(sys.unlink(d .. "/open/f"))
  o.rmdir_open = E(sys.rmdir, d .. "/open")
  o.read = sys.pread(fd, 10, 0)
  o.write = sys.pwrite(fd, "!", 4)
  o.reread = sys.pread(fd, 10, 0)
  sys.close(fd)
  o.listing = listing(d)
  return o
end)

--[[ A file that is open after its last name is gone: every call on the
descriptor works as on tmpfs, st_nlink 0 included, and the file leaves
no trace in its directory. ]]
local UNLINKED = "files open after their name is gone"
local TIMES = { "atime", "atime_nsec", "mtime", "mtime_nsec" }

case("unlinked.calls", UNLINKED, "answers fstat, fchmod, fchown, futimens, xattrs, lseek and fstatvfs",
  { "unlinked_open", "xattrs", "fallocate" }, function(d)
  local fd = check(sys.open(d .. "/gone", O_RDWR | O_CREAT, octal "640"))
  check(sys.pwrite(fd, bytes(3 * 4096 + 5, 4), 8192))
  check(sys.fsetxattr(fd, "user.before", "set while named"))
  local o = observe()
  o.unlink = E(sys.unlink, d .. "/gone")
  o.stat = fstat_of(fd)
  o.chmod = E(sys.fchmod, fd, octal "4711")
  o.chown = E(sys.fchown, fd, 1234, 5678)
  o.owner = fstat_of(fd, { "uid", "gid", "mode", "nlink" })
  o.utimens = E(sys.futimens, fd, 1000000000, 123456789, 2000000000, 987654321)
  o.times = fstat_of(fd, TIMES)
  o.now = E(sys.futimens, fd, 0, luafs.UTIME_OMIT, 0, luafs.UTIME_NOW)
  local st = sys.fstat(fd)
  o.now_is_now = st ~= nil and st.mtime >= sys.clock_gettime() - 5 and st.atime == 1000000000
  o.get = sys.fgetxattr(fd, "user.before")
  o.set = E(sys.fsetxattr, fd, "user.after", "set while nameless")
  o.create_existing = E(sys.fsetxattr, fd, "user.after", "again", luafs.XATTR_CREATE)
  local names = sys.flistxattr(fd)
  if names then table.sort(names) end
  o.list = names
  o.remove = E(sys.fremovexattr, fd, "user.before")
  o.removed = E(sys.fgetxattr, fd, "user.before")
  o.data = { sys.lseek(fd, 0, SEEK_DATA) or "fail", sys.lseek(fd, 8192, SEEK_HOLE) or "fail" }
  o.past_end = E(sys.lseek, fd, 1 << 20, SEEK_DATA)
  o.statvfs = E(sys.fstatvfs, fd)
  o.truncate = E(sys.ftruncate, fd, 100)
  o.allocate = E(sys.fallocate, fd, 0, 0, 5 * 4096)
  o.after = fstat_of(fd)
  o.write = sys.pwrite(fd, "tail", 5 * 4096)
  o.read = sys.pread(fd, 10, 5 * 4096 - 3)
  o.sync = { E(sys.fsync, fd), E(sys.fdatasync, fd) }
  o.listing = listing(d)
  sys.close(fd)
  o.rmdir = E(sys.rmdir, d)
  check(sys.mkdir(d))
  return o
end)

-- Which of atime (a), mtime (m) and ctime (c) differ between two stat
-- tables, "-" for none.
local function times(st)
  if not st then return nil end
  return { a = { st.atime, st.atime_nsec }, m = { st.mtime, st.mtime_nsec }, c = { st.ctime, st.ctime_nsec } }
end
local function moved(before, after)
  if not before or not after then return "gone" end
  local s = ""
  for _, k in ipairs { "a", "m", "c" } do
    if before[k][1] ~= after[k][1] or before[k][2] ~= after[k][2] then s = s .. k end
  end
  return s == "" and "-" or s
end

case("unlinked.times", UNLINKED, "moves the times of the file and of its directory as tmpfs does",
  { "unlinked_open", "xattrs", "timestamps" }, function(d)
  local fd = check(sys.open(d .. "/f", O_RDWR | O_CREAT, octal "600"))
  check(sys.pwrite(fd, "data", 0))
  local o = observe()
  local function step(name, f)
    local file, dir = times(check(sys.fstat(fd))), times(check(sys.lstat(d)))
    tick()
    f()
    o[#o + 1] = name .. " file:" .. moved(file, times(check(sys.fstat(fd))))
      .. " dir:" .. moved(dir, times(check(sys.lstat(d))))
  end
  step("unlink", function() check(sys.unlink(d .. "/f")) end)
  step("pwrite", function() check(sys.pwrite(fd, "more", 4)) end)
  step("fchmod", function() check(sys.fchmod(fd, octal "640")) end)
  step("fsetxattr", function() check(sys.fsetxattr(fd, "user.k", "v")) end)
  step("ftruncate", function() check(sys.ftruncate(fd, 2)) end)
  sys.close(fd)
  return o
end)

case("unlinked.proc", UNLINKED, "reopens through /proc/self/fd but cannot be linked back", { "unlinked_open" },
function(d)
  local fd = check(sys.open(d .. "/gone", O_RDWR | O_CREAT, octal "600"))
  check(sys.pwrite(fd, "contents", 0))
  check(sys.unlink(d .. "/gone"))
  local proc = "/proc/self/fd/" .. fd
  local again, _, e = sys.open(proc, O_RDONLY)
  local o = observe()
  o.reopen = again and "OK" or errname(e)
  if again then
    o.reread = sys.pread(again, 100, 0)
    o.stat = fstat_of(again)
    sys.close(again)
  end
  o.link = E(sys.linkat, AT_FDCWD, proc, AT_FDCWD, d .. "/back", luafs.AT_SYMLINK_FOLLOW)
  o.listing = listing(d)
  sys.close(fd)
  return o
end)

--[[ Once the directory is gone too, libfuse has no path for the file:
the calls that it makes only by path may fail there (with ESTALE, say),
so their results are set aside as "by_path" for the spec's own
expectations. ]]
case("unlinked.dir_removed", UNLINKED, "lets the directory that held it be removed", { "unlinked_open" },
function(d)
  check(sys.mkdir(d .. "/sub"))
  local fd = check(sys.open(d .. "/sub/gone", O_RDWR | O_CREAT, octal "600"))
  check(sys.pwrite(fd, "kept", 0))
  local o = observe()
  o.unlink = E(sys.unlink, d .. "/sub/gone")
  o.sub = stat_of(d .. "/sub")
  o.rmdir = E(sys.rmdir, d .. "/sub")
  o.read = sys.pread(fd, 10, 0)
  o.write = sys.pwrite(fd, "more", 4)
  o.reread = sys.pread(fd, 10, 0)
  o.truncate = E(sys.ftruncate, fd, 2)
  o.listing = listing(d)
  aside("by_path", { E(sys.fstat, fd), E(sys.fchmod, fd, octal "644"), E(sys.lseek, fd, 0, SEEK_DATA),
    E(sys.fsetxattr, fd, "user.x", "y"), E(sys.fstatvfs, fd), E(sys.fallocate, fd, 0, 0, 4096), E(sys.fsync, fd) })
  sys.close(fd)
  return o
end)

case("unlinked.links", UNLINKED, "keeps count of the links of an open file that loses one name",
  { "unlinked_open", "hardlinks" }, function(d)
  write(d .. "/a", "linked")
  check(sys.link(d .. "/a", d .. "/b"))
  local fa = check(sys.open(d .. "/a", O_RDWR))
  local fb = check(sys.open(d .. "/b", O_RDONLY))
  local o = observe()
  o.unlink_a = E(sys.unlink, d .. "/a")
  o.by_a = fstat_of(fa)
  o.by_b = fstat_of(fb)
  o.b = stat_of(d .. "/b")
  o.chmod = E(sys.fchmod, fa, octal "604")
  o.b_mode = stat_of(d .. "/b").mode
  check(sys.pwrite(fa, "LINKED", 0))
  o.b_data = read(d .. "/b")
  o.link = E(sys.link, d .. "/b", d .. "/c")
  o.by_a_again = fstat_of(fa)
  o.unlink_b = E(sys.unlink, d .. "/b")
  o.unlink_c = E(sys.unlink, d .. "/c")
  o.last = { fstat_of(fa), fstat_of(fb) }
  o.listing = listing(d)
  sys.close(fa)
  sys.close(fb)
  return o
end)

case("unlinked.replaced", UNLINKED, "keeps the file that a rename replaced open", { "unlinked_open" }, function(d)
  write(d .. "/old", "the old file")
  write(d .. "/new", "the new one")
  local fd = check(sys.open(d .. "/old", O_RDWR))
  local o = observe()
  o.rename = E(sys.rename, d .. "/new", d .. "/old")
  o.stat = fstat_of(fd)
  o.read = sys.pread(fd, 100, 0)
  o.chmod = E(sys.fchmod, fd, octal "600")
  o.name = { read(d .. "/old"), stat_of(d .. "/old") }
  o.listing = listing(d)
  o.dir = stat_of(d)
  sys.close(fd)
  return o
end)

case("names.dirs", "names", "makes and removes directories with the sizes, link counts and errors of tmpfs", {},
function(d)
  local o = observe()
  o.mkdir = E(sys.mkdir, d .. "/sub", octal "750")
  o.sticky = E(sys.mkdir, d .. "/sticky", octal "1777")
  o.sub = stat_of(d .. "/sub")
  o.sticky_stat = stat_of(d .. "/sticky")
  o.parent = stat_of(d)
  o.again = E(sys.mkdir, d .. "/sub")
  write(d .. "/file", "x")
  o.over_file = E(sys.mkdir, d .. "/file")
  o.under_file = E(sys.mkdir, d .. "/file/x")
  o.missing_parent = E(sys.mkdir, d .. "/nope/x")
  o.too_long = E(sys.mkdir, d .. "/" .. string.rep("d", 256))
  write(d .. "/sub/f", "x")
  check(sys.mkdir(d .. "/sub/inner"))
  o.full = stat_of(d .. "/sub")
  o.nonempty = E(sys.rmdir, d .. "/sub")
  o.unlink_dir = E(sys.unlink, d .. "/sub")
  o.rmdir_file = E(sys.rmdir, d .. "/sub/f")
  o.rmdir_dot = E(sys.rmdir, d .. "/sub/.")
  o.rmdir_dotdot = E(sys.rmdir, d .. "/sub/inner/..")
  o.unlink = E(sys.unlink, d .. "/sub/f")
  o.rmdir_inner = E(sys.rmdir, d .. "/sub/inner")
  o.emptied = stat_of(d .. "/sub")
  o.rmdir = E(sys.rmdir, d .. "/sub")
  o.missing = E(sys.rmdir, d .. "/sub")
  o.parent_after = stat_of(d)
  o.listing = listing(d)
  return o
end)

case("names.listing", "names", "lists directories, empty ones included, with the types of their entries", {},
function(d)
  write(d .. "/file", "x")
  check(sys.mkdir(d .. "/dir"))
  check(sys.mkdir(d .. "/empty"))
  if has "symlinks" then check(sys.symlink("file", d .. "/link")) end
  if has "special_files" then check(sys.mknod(d .. "/fifo", luafs.S_IFIFO | octal "644", 0)) end
  local o = observe()
  o.names = listing(d)
  o.empty = listing(d .. "/empty")
  local kinds = {}
  for _, n in ipairs(o.names) do kinds[n] = kind(d .. "/" .. n) end
  o.kinds = kinds
  o.not_dir = E(sys.opendir, d .. "/file")
  return o
end)

case("names.hardlinks", "names", "makes hard links with the right link counts", { "hardlinks" }, function(d)
  write(d .. "/f", "data")
  local o = observe()
  o.link = E(sys.link, d .. "/f", d .. "/h")
  check(sys.mkdir(d .. "/sub"))
  o.link2 = E(sys.link, d .. "/h", d .. "/sub/h2")
  o.nlinks = { stat_of(d .. "/f").nlink, stat_of(d .. "/h").nlink, stat_of(d .. "/sub/h2").nlink }
  o.same_ino = sys.lstat(d .. "/f").ino == sys.lstat(d .. "/sub/h2").ino
  write(d .. "/h", "changed through h")
  o.f = read(d .. "/f")
  o.f_stat = stat_of(d .. "/f")
  assert(sys.chmod(d .. "/sub/h2", octal "600"))
  o.mode_via_f = stat_of(d .. "/f").mode
  o.link_exists = E(sys.link, d .. "/f", d .. "/h")
  o.link_dir = E(sys.link, d .. "/sub", d .. "/dlink")
  o.link_self_dir = E(sys.link, d, d .. "/dlink")
  o.link_missing = E(sys.link, d .. "/nope", d .. "/x")
  o.link_into_missing = E(sys.link, d .. "/f", d .. "/nope/x")
  o.link_too_long = E(sys.link, d .. "/f", d .. "/" .. string.rep("l", 256))
  if has "symlinks" then
    check(sys.symlink("f", d .. "/s"))
    o.link_symlink = E(sys.linkat, AT_FDCWD, d .. "/s", AT_FDCWD, d .. "/s2", 0)
    o.s2 = { stat_of(d .. "/s2"), sys.readlink(d .. "/s2") }
  end
  o.unlink = E(sys.unlink, d .. "/h")
  o.after_unlink = { stat_of(d .. "/f").nlink, stat_of(d .. "/sub/h2").nlink }
  o.unlink2 = E(sys.unlink, d .. "/f")
  o.last = { stat_of(d .. "/sub/h2"), read(d .. "/sub/h2") }
  return o
end)

local long_target = string.rep("t/", 1500) .. "end"
case("names.symlinks", "names", "makes symlinks, short and long, and reads them", { "symlinks" }, function(d)
  write(d .. "/f", "data")
  local o = observe()
  o.symlink = E(sys.symlink, "f", d .. "/s")
  o.readlink = sys.readlink(d .. "/s")
  o.through = read(d .. "/s")
  o.s = stat_of(d .. "/s")
  o.s127 = E(sys.symlink, string.rep("x", 127), d .. "/s127")
  o.s128 = E(sys.symlink, string.rep("x", 128), d .. "/s128")
  o.sizes = { stat_of(d .. "/s127"), stat_of(d .. "/s128") }
  o.long = E(sys.symlink, long_target, d .. "/long")
  o.long_back = sys.readlink(d .. "/long") == long_target
  o.too_long = E(sys.symlink, string.rep("x", 4096), d .. "/huge")
  o.dangling = E(sys.symlink, "nowhere", d .. "/dangle")
  o.dangling_read = EO(d .. "/dangle", O_RDONLY)
  o.create_through = EO(d .. "/dangle", O_WRONLY | O_CREAT, octal "600")
  o.created = read(d .. "/nowhere")
  o.readlink_file = E(sys.readlink, d .. "/f")
  o.symlink_exists = E(sys.symlink, "x", d .. "/f")
  o.loop = E(sys.symlink, "loop", d .. "/loop")
  o.loop_open = EO(d .. "/loop", O_RDONLY)
  o.nofollow = EO(d .. "/s", O_RDONLY | luafs.O_NOFOLLOW)
  o.to_dir = E(sys.symlink, ".", d .. "/self")
  o.via_dir = read(d .. "/self/self/f")
  return o
end)

case("names.special", "names", "makes FIFOs, sockets and device nodes", { "special_files" }, function(d)
  local o = observe()
  o.fifo = E(sys.mknod, d .. "/fifo", luafs.S_IFIFO | octal "640", 0)
  o.fifo_stat = stat_of(d .. "/fifo")
  local fd = check(sys.open(d .. "/fifo", O_RDWR | O_NONBLOCK))
  o.write = sys.write(fd, "through the pipe")
  o.read = sys.read(fd, 100)
  o.empty = E(sys.read, fd, 100)
  sys.close(fd)
  o.mkfifo = E(sys.mkfifo, d .. "/fifo2", octal "600")
  o.chr = E(sys.mknod, d .. "/null", luafs.S_IFCHR | octal "666", (1 << 8) | 3)
  o.chr_stat = stat_of(d .. "/null")
  o.blk = E(sys.mknod, d .. "/blk", luafs.S_IFBLK | octal "600", (7 << 8) | 200)
  o.blk_stat = stat_of(d .. "/blk")
  o.sock = E(sys.mknod, d .. "/sock", luafs.S_IFSOCK | octal "600", 0)
  o.sock_stat = stat_of(d .. "/sock")
  o.reg = E(sys.mknod, d .. "/reg", luafs.S_IFREG | octal "600", 0)
  o.reg_stat = stat_of(d .. "/reg")
  o.exists = E(sys.mknod, d .. "/reg", luafs.S_IFIFO | octal "600", 0)
  o.truncate_fifo = E(sys.truncate, d .. "/fifo", 0)
  return o
end)

case("names.rename", "names", "renames files and directories in all their forms", {}, function(d)
  local function R(a, b, fl) return E(sys.rename, d .. "/" .. a, d .. "/" .. b, fl) end
  write(d .. "/a", "A")
  write(d .. "/b", "B")
  check(sys.mkdir(d .. "/dir"))
  write(d .. "/dir/inside", "I")
  check(sys.mkdir(d .. "/empty"))
  check(sys.mkdir(d .. "/full"))
  write(d .. "/full/x", "X")
  check(sys.mkdir(d .. "/other"))
  local o = observe()
  o.over_file = R("a", "b")
  o.b = read(d .. "/b")
  o.a = E(sys.lstat, d .. "/a")
  o.to_new = R("b", "c")
  o.into_dir = R("c", "other/c")
  o.back = R("other/c", "c")
  o.dir_over_empty = R("dir", "empty")
  o.moved_inside = read(d .. "/empty/inside")
  o.dir_over_full = R("empty", "full")
  o.dir_over_file = R("empty", "c")
  o.file_over_dir = R("c", "full")
  o.into_itself = R("empty", "empty/sub")
  check(sys.mkdir(d .. "/empty/deeper"))
  o.into_subtree = R("empty", "empty/deeper/x")
  o.parent_into_child = R("empty/deeper", "empty/deeper/y")
  o.onto_itself = R("c", "c")
  o.dir_onto_itself = R("full", "full")
  o.onto_ancestor = R("empty/deeper", "empty")
  o.missing = R("nope", "x")
  o.into_missing = R("c", "nope/x")
  o.under_file = R("c", "c/x")
  o.too_long = R("c", string.rep("r", 256))
  if has "hardlinks" then
    check(sys.link(d .. "/c", d .. "/c_link"))
    o.onto_own_link = R("c", "c_link")
    o.links_stay = { E(sys.lstat, d .. "/c"), stat_of(d .. "/c_link").nlink }
  end
  o.dir_across = R("empty", "other/moved")
  o.nlinks = { stat_of(d).nlink, stat_of(d .. "/other").nlink, stat_of(d .. "/other/moved").nlink }
  o.dot = R("other/.", "x")
  o.listing = { listing(d), listing(d .. "/other"), listing(d .. "/other/moved") }
  o.stats = { stat_of(d), stat_of(d .. "/other"), stat_of(d .. "/full") }
  return o
end)

case("names.rename_flags", "names", "renames with RENAME_NOREPLACE and RENAME_EXCHANGE (and RENAME_WHITEOUT)",
  { "rename_flags" }, function(d)
  local NOREPLACE, EXCHANGE, WHITEOUT = luafs.RENAME_NOREPLACE, luafs.RENAME_EXCHANGE, luafs.RENAME_WHITEOUT
  local function R(a, b, fl) return E(sys.rename, d .. "/" .. a, d .. "/" .. b, fl) end
  write(d .. "/a", "A")
  write(d .. "/b", "B")
  check(sys.mkdir(d .. "/dir"))
  write(d .. "/dir/inside", "I")
  check(sys.mkdir(d .. "/dir2"))
  check(sys.mkdir(d .. "/dir2/sub"))
  local o = observe()
  o.noreplace_existing = R("a", "b", NOREPLACE)
  o.noreplace_dir = R("dir", "dir2", NOREPLACE)
  o.noreplace_new = R("a", "c", NOREPLACE)
  o.exchange = R("c", "b", EXCHANGE)
  o.c, o.b = read(d .. "/c"), read(d .. "/b")
  o.exchange_missing = R("c", "nope", EXCHANGE)
  o.exchange_file_dir = R("c", "dir", EXCHANGE)
  o.c_is_dir = read(d .. "/c/inside")
  o.dir_is_file = read(d .. "/dir")
  -- a file and a directory change parents: both link counts move
  o.exchange_across = R("dir", "dir2/sub", EXCHANGE)
  o.nlinks = { stat_of(d).nlink, stat_of(d .. "/dir2").nlink, stat_of(d .. "/dir").nlink }
  o.kinds = { stat_of(d .. "/dir").mode, stat_of(d .. "/dir2/sub").mode }
  o.exchange_into_itself = R("dir", "dir/x", EXCHANGE)
  o.exchange_with_child = R("dir2", "dir2/sub", EXCHANGE)
  o.both_flags = R("b", "dir", NOREPLACE | EXCHANGE)
  o.exchange_whiteout = R("b", "dir", EXCHANGE | WHITEOUT)
  o.bad_flag = R("b", "z", 1 << 7)
  if has "whiteout" then
    o.whiteout = R("b", "w", WHITEOUT)
    o.whiteout_left = stat_of(d .. "/b")
    o.w = read(d .. "/w")
    o.whiteout_over = R("w", "c", WHITEOUT)
  end
  o.listing = listing(d)
  o.sizes = { stat_of(d).size, stat_of(d .. "/dir2").size }
  return o
end)

pair("names.exdev", "names", "refuses to rename or link across filesystems with EXDEV", {}, function(m, t)
  write(m .. "/xdev", "x")
  write(t .. "/xdev", "x")
  equal("EXDEV", E(raw.rename, m .. "/xdev", t .. "/moved"))
  equal("EXDEV", E(raw.rename, t .. "/xdev", m .. "/moved"))
  equal("EXDEV", E(raw.link, m .. "/xdev", t .. "/linked"))
  equal("EXDEV", E(raw.link, t .. "/xdev", m .. "/linked"))
  equal("x", read(m .. "/xdev"))
  -- mv copies instead
  must("mv " .. testing.quote(m .. "/xdev") .. " " .. testing.quote(t .. "/moved"))
  equal("x", read(t .. "/moved"))
  equal("ENOENT", E(raw.lstat, m .. "/xdev"))
end)

case("attributes.owners", "attributes", "changes modes and owners", {}, function(d)
  write(d .. "/f", "x")
  if has "symlinks" then check(sys.symlink("f", d .. "/s")) end
  check(sys.mkdir(d .. "/dir"))
  local o = observe()
  o.chmod = E(sys.chmod, d .. "/f", octal "4751")
  o.mode = stat_of(d .. "/f").mode
  o.chmod_high = E(sys.chmod, d .. "/f", octal "177777")
  o.mode_high = stat_of(d .. "/f").mode
  o.chmod_dir = E(sys.chmod, d .. "/dir", octal "3700")
  o.dir_mode = stat_of(d .. "/dir").mode
  -- (the kernel's FUSE module drops the sticky bit too when chown clears
  -- set-user-ID and set-group-ID: memfs.lua's header says more)
  o.chmod_s = E(sys.chmod, d .. "/f", octal "6755")
  o.chown = E(sys.chown, d .. "/f", 1234, 5678)
  o.owner = stat_of(d .. "/f", { "uid", "gid", "mode" })
  o.only_gid = E(sys.chown, d .. "/f", -1, 42)
  o.owner2 = stat_of(d .. "/f", { "uid", "gid" })
  if has "symlinks" then
    o.lchown = E(sys.lchown, d .. "/s", 777, 888)
    o.link_owner = stat_of(d .. "/s", { "uid", "gid" })
    o.target_owner = stat_of(d .. "/f", { "uid", "gid" })
    o.lchmod = E(sys.fchmodat, AT_FDCWD, d .. "/s", octal "600", NOFOLLOW)
  end
  local fd = check(sys.open(d .. "/f", O_RDONLY))
  o.fchmod = E(sys.fchmod, fd, octal "600")
  o.fchown = E(sys.fchown, fd, 5, 6)
  sys.close(fd)
  o.final = stat_of(d .. "/f", { "uid", "gid", "mode" })
  o.missing = E(sys.chmod, d .. "/nope", octal "600")
  -- a new directory in a set-group-ID directory inherits both
  o.sgid_chown = E(sys.chown, d .. "/dir", 0, 4242)
  o.sgid_chmod = E(sys.chmod, d .. "/dir", octal "2775")
  write(d .. "/dir/f", "x")
  check(sys.mkdir(d .. "/dir/sub", octal "755"))
  o.inherit = { stat_of(d .. "/dir/f"), stat_of(d .. "/dir/sub") }
  return o
end)

case("attributes.times", "attributes", "sets times to the nanosecond, with UTIME_NOW and UTIME_OMIT", {},
function(d)
  local T = TIMES
  write(d .. "/f", "x")
  if has "symlinks" then check(sys.symlink("f", d .. "/s")) end
  local o = observe()
  o.set = E(sys.utimensat, AT_FDCWD, d .. "/f", 1000000000, 123456789, 2000000000, 987654321)
  o.times = stat_of(d .. "/f", T)
  o.omit = E(sys.utimensat, AT_FDCWD, d .. "/f", 5, luafs.UTIME_OMIT, 1500000000, 1)
  o.after_omit = stat_of(d .. "/f", T)
  local before = sys.clock_gettime()
  o.now = E(sys.utimensat, AT_FDCWD, d .. "/f", 0, luafs.UTIME_OMIT, 0, luafs.UTIME_NOW)
  local st = sys.lstat(d .. "/f")
  o.now_is_now = st.mtime >= before - 1 and st.mtime <= sys.clock_gettime() + 1
  o.atime_kept = { st.atime, st.atime_nsec }
  if has "symlinks" then
    o.link = E(sys.utimensat, AT_FDCWD, d .. "/s", 7, 8, 9, 10, NOFOLLOW)
    o.link_times = stat_of(d .. "/s", T)
    o.target_times = stat_of(d .. "/f", { "atime", "atime_nsec" })
  end
  local fd = check(sys.open(d .. "/f", O_WRONLY))
  o.futimens = E(sys.futimens, fd, 11, 12, 13, 14)
  sys.close(fd)
  o.by_fd = stat_of(d .. "/f", T)
  o.before_epoch = E(sys.utimensat, AT_FDCWD, d .. "/f", -1, 5, -100, 999999999)
  o.negative = stat_of(d .. "/f", T)
  o.bad_nsec = E(sys.utimensat, AT_FDCWD, d .. "/f", 1, 1000000000, 1, 0)
  return o
end)

--[[ Which timestamps an operation moves. Each step runs after a tick,
then records, for every path it names, which of atime, mtime and ctime
changed. ]]
case("attributes.timestamps", "attributes", "moves atime, mtime and ctime as POSIX and relatime say",
  { "timestamps" }, function(d)
  local function times_at(p) return times(raw.lstat(p)) end
  local o = observe()
  local paths = { ".", "f", "g", "dir", "s" }
  -- moves: where the file of a path before the step is after it
  local function step(name, f, moves)
    local before = {}
    for _, p in ipairs(paths) do before[p] = times_at(d .. "/" .. p) end
    tick()
    f()
    local r = {}
    for _, p in ipairs(paths) do
      local b = before[p]
      local a = times_at(d .. "/" .. (moves and moves[p] or p))
      if b or a then r[#r + 1] = p .. ":" .. moved(b, a) end
    end
    o[#o + 1] = name .. " " .. table.concat(r, " ")
  end
  local fd
  step("create", function() write(d .. "/f", "data") end)
  step("read", function() read(d .. "/f") end)
  step("read again", function() read(d .. "/f") end)
  step("write", function() write(d .. "/f", "more", "ab") end)
  step("read after write", function() read(d .. "/f") end)
  step("stat", function() sys.lstat(d .. "/f") end)
  step("chmod", function() assert(sys.chmod(d .. "/f", octal "640")) end)
  step("chown", function() assert(sys.chown(d .. "/f", 1, 1)) end)
  step("read after chmod", function() read(d .. "/f") end)
  if has "hardlinks" then
    step("link", function() assert(sys.link(d .. "/f", d .. "/g")) end)
    step("unlink g", function() assert(sys.unlink(d .. "/g")) end)
  end
  step("mkdir", function() assert(sys.mkdir(d .. "/dir")) end)
  step("create in dir", function() write(d .. "/dir/x", "") end)
  step("readdir", function() listing(d .. "/dir") end)
  step("readdir again", function() listing(d .. "/dir") end)
  step("rename", function() assert(sys.rename(d .. "/f", d .. "/g")) end, { f = "g" })
  step("rename back", function() assert(sys.rename(d .. "/g", d .. "/f")) end, { g = "f" })
  step("rename into dir", function() assert(sys.rename(d .. "/f", d .. "/dir/f")) end)
  step("rename out", function() assert(sys.rename(d .. "/dir/f", d .. "/f")) end)
  if has "symlinks" then
    step("symlink", function() assert(sys.symlink("f", d .. "/s")) end)
    step("readlink", function() sys.readlink(d .. "/s") end)
    step("readlink again", function() sys.readlink(d .. "/s") end)
  end
  if has "xattrs" then
    step("setxattr", function() assert(sys.lsetxattr(d .. "/f", "user.k", "v")) end)
    step("getxattr", function() sys.lgetxattr(d .. "/f", "user.k") end)
    step("removexattr", function() assert(sys.lremovexattr(d .. "/f", "user.k")) end)
  end
  step("truncate same size", function() assert(sys.truncate(d .. "/f", 8)) end)
  step("truncate", function() assert(sys.truncate(d .. "/f", 3)) end)
  step("open", function() fd = assert(sys.open(d .. "/f", O_RDWR)) end)
  step("ftruncate same size", function() assert(sys.ftruncate(fd, 3)) end)
  step("pwrite nothing", function() assert(sys.pwrite(fd, "", 0)) end)
  step("close", function() sys.close(fd) end)
  step("open O_TRUNC", function() sys.close(assert(sys.open(d .. "/f", O_WRONLY | O_TRUNC))) end)
  step("open O_TRUNC empty", function() sys.close(assert(sys.open(d .. "/f", O_WRONLY | O_TRUNC))) end)
  step("write again", function() write(d .. "/f", "data") end)
  step("utimens", function() assert(sys.utimensat(AT_FDCWD, d .. "/f", 10, 0, 20, 0)) end)
  step("read old atime", function() read(d .. "/f") end)
  step("touch", function() assert(sys.utimensat(AT_FDCWD, d .. "/f", 0, luafs.UTIME_NOW, 0, luafs.UTIME_NOW)) end)
  step("utimens omit", function()
    assert(sys.utimensat(AT_FDCWD, d .. "/f", 0, luafs.UTIME_OMIT, 0, luafs.UTIME_OMIT))
  end)
  step("utimens future", function()
    local t = sys.clock_gettime()
    assert(sys.utimensat(AT_FDCWD, d .. "/f", t + 1000, 0, t + 2000, 0))
  end)
  step("read future atime", function() read(d .. "/f") end)
  if has "special_files" and has "rename_flags" then
    step("mknod", function() assert(sys.mknod(d .. "/g", luafs.S_IFIFO | octal "600", 0)) end)
    local swap = { f = "g", g = "f" }
    step("exchange", function() assert(sys.rename(d .. "/f", d .. "/g", luafs.RENAME_EXCHANGE)) end, swap)
    step("exchange back", function() assert(sys.rename(d .. "/f", d .. "/g", luafs.RENAME_EXCHANGE)) end, swap)
  else
    write(d .. "/g", "")
  end
  step("rename over", function() assert(sys.rename(d .. "/f", d .. "/g")) end)
  step("rmdir", function()
    assert(sys.unlink(d .. "/dir/x"))
    assert(sys.rmdir(d .. "/dir"))
  end)
  return o
end)

local xattr_big = bytes(65536, 9)
case("attributes.xattrs", "attributes", "keeps extended attributes, binary values included, with tmpfs's errors",
  { "xattrs" }, function(d)
  local XC, XR = luafs.XATTR_CREATE, luafs.XATTR_REPLACE
  local big = xattr_big
  write(d .. "/f", "x")
  check(sys.mkdir(d .. "/dir"))
  if has "symlinks" then check(sys.symlink("f", d .. "/s")) end
  if has "special_files" then check(sys.mkfifo(d .. "/fifo", octal "644")) end
  local o = observe()
  o.set = E(sys.lsetxattr, d .. "/f", "user.plain", "value")
  o.bin = E(sys.lsetxattr, d .. "/f", "user.bin", "a\0b\0\255")
  o.big = E(sys.lsetxattr, d .. "/f", "user.big", big)
  o.too_big = E(sys.lsetxattr, d .. "/f", "user.huge", big .. "x")
  o.empty = E(sys.lsetxattr, d .. "/f", "user.empty", "")
  o.odd_name = E(sys.lsetxattr, d .. "/f", "user.a b\1\255=", "odd")
  o.long_name = E(sys.lsetxattr, d .. "/f", "user." .. string.rep("n", 250), "v")
  o.too_long_name = E(sys.lsetxattr, d .. "/f", "user." .. string.rep("n", 251), "v")
  o.get = sys.lgetxattr(d .. "/f", "user.plain")
  o.get_bin = sys.lgetxattr(d .. "/f", "user.bin")
  o.get_big = sys.lgetxattr(d .. "/f", "user.big") == big
  o.get_empty = sys.lgetxattr(d .. "/f", "user.empty")
  o.get_odd = sys.lgetxattr(d .. "/f", "user.a b\1\255=")
  local names = assert(sys.llistxattr(d .. "/f"))
  table.sort(names)
  o.list = names
  o.create_existing = E(sys.lsetxattr, d .. "/f", "user.plain", "v2", XC)
  o.create_new = E(sys.lsetxattr, d .. "/f", "user.new", "n", XC)
  o.replace_missing = E(sys.lsetxattr, d .. "/f", "user.none", "v2", XR)
  o.both_missing = E(sys.lsetxattr, d .. "/f", "user.none", "v2", XR | XC)
  o.both_existing = E(sys.lsetxattr, d .. "/f", "user.plain", "v2", XR | XC)
  o.replace = E(sys.lsetxattr, d .. "/f", "user.plain", "v2", XR)
  o.replaced = sys.lgetxattr(d .. "/f", "user.plain")
  o.remove = E(sys.lremovexattr, d .. "/f", "user.plain")
  o.removed = E(sys.lgetxattr, d .. "/f", "user.plain")
  o.remove_missing = E(sys.lremovexattr, d .. "/f", "user.plain")
  o.bad_namespace = E(sys.lsetxattr, d .. "/f", "bogus.x", "v")
  o.no_namespace = E(sys.lsetxattr, d .. "/f", "plain", "v")
  o.empty_user = E(sys.lsetxattr, d .. "/f", "user.", "v")
  o.get_bad_namespace = E(sys.lgetxattr, d .. "/f", "bogus.x")
  o.system = E(sys.lsetxattr, d .. "/f", "system.whatever", "v")
  o.trusted = E(sys.lsetxattr, d .. "/f", "trusted.t", "root only")
  o.trusted_get = sys.lgetxattr(d .. "/f", "trusted.t")
  o.security = E(sys.lsetxattr, d .. "/f", "security.luafs", "s")
  o.dir = E(sys.lsetxattr, d .. "/dir", "user.d", "on a dir")
  o.dir_get = sys.lgetxattr(d .. "/dir", "user.d")
  if has "symlinks" then
    o.symlink = E(sys.lsetxattr, d .. "/s", "user.s", "on a link")
    o.symlink_get = E(sys.lgetxattr, d .. "/s", "user.s")
    o.symlink_trusted = E(sys.lsetxattr, d .. "/s", "trusted.s", "on a link")
    o.symlink_list = sys.llistxattr(d .. "/s")
  end
  if has "special_files" then o.fifo = E(sys.lsetxattr, d .. "/fifo", "user.f", "v") end
  o.missing_file = E(sys.lgetxattr, d .. "/nope", "user.x")
  local fd = check(sys.open(d .. "/f", O_RDONLY))
  o.fget = sys.fgetxattr(fd, "user.bin")
  o.fset = E(sys.fsetxattr, fd, "user.byfd", "fd")
  o.fremove = E(sys.fremovexattr, fd, "user.bin")
  sys.close(fd)
  names = assert(sys.llistxattr(d .. "/f"))
  table.sort(names)
  o.list_after = names
  o.empty_list = #sys.llistxattr(d .. "/dir/..")
  return o
end)

--[[ Real tools: the same shell commands in both directories, their
outputs and exit codes compared. ]]
local TREE = "mkdir -p a/b/c empty && head -c 300000 /dev/urandom > a/bin"
  .. " && printf 'some text\\n' > a/b/text && printf 'deep\\n' > a/b/c/deep"
  .. " && ln -s a/b/text link && ln a/bin hard && chmod 640 a/b/text"
  .. " && truncate -s 64M a/sparse && printf x | dd of=a/sparse bs=1 seek=100000 conv=notrunc status=none"
  .. " && touch -d '2001-02-03 04:05:06.789' a/b/c/deep && touch -h -d '@1000000000.5' link"
local TOOLS = { "hardlinks", "symlinks", "special_files", "holes" }

case("tools.ls", "real tools", "ls -l, cat, ln -s, touch -d, mv, rm -r", TOOLS, function(d)
  local o = observe()
  o.run = { shell(d, TREE .. " && mkfifo a/fifo && ls -lnR --time-style=+ . && ls -ln --full-time a/b/c"
    .. " && cat a/b/text link a/b/c/deep && cmp a/bin hard"
    -- a/sparse was written just now: its time would tell the runs apart
    .. " && stat -c '%n %s %b %h %f' a/sparse && stat -c '%n %s %b %h %f %Y' a/b/c/deep link"
    .. " && mv a/b/text a/moved && mv a/b a/c2 && mv link a/c2/ && ls -lnR --time-style=+"
    .. " && rm -r a/c2 && ls -ln --time-style=+ a && rm -r a empty hard && ls -la | wc -l"
    .. " && mkdir x && rmdir x && ! rm nope 2>/dev/null && ! rmdir . 2>/dev/null; echo $?") }
  return o
end)

case("tools.cp", "real tools", "cp -a keeps everything that diff -r and find compare", TOOLS, function(d)
  local o = observe()
  -- cp -a keeps times: the copy lists as the original, times included
  o.run = { shell(d, TREE .. " && cp -a a copy && diff -r a copy && echo same"
    .. " && find . -printf '%p %M %s %n %u %g %l\\n' | sort"
    .. " && (cd a && find . -printf '%p %M %s %n %T@\\n' | sort) > a.list"
    .. " && (cd copy && find . -printf '%p %M %s %n %T@\\n' | sort) > copy.list"
    .. " && cmp a.list copy.list && rm a.list copy.list") }
  return o
end)

--[[ Through tar, from the mount to tmpfs and to the mount, keeping hard
links, sparse files, nanoseconds and xattrs; and with cp -a from the
mount to tmpfs. ]]
pair("tools.tar", "real tools", "tar and cp -a carry a tree between the mount and tmpfs",
  { "hardlinks", "symlinks", "holes", "xattrs" }, function(m, t)
  local q = testing.quote
  must("cd " .. q(m) .. " && " .. TREE)
  assert(raw.lsetxattr(m .. "/a/b/text", "user.tar", "kept\0binary"))
  local tarball = t .. ".tar"
  local items = " a hard link"
  must("tar --format=posix --sparse --xattrs -C " .. q(m) .. " -cf " .. q(tarball) .. items)
  must("mkdir " .. q(m .. "/untar") .. " " .. q(t .. "/untar"))
  must("tar --xattrs --xattrs-include='user.*' -C " .. q(m .. "/untar") .. " -xpf " .. q(tarball))
  must("tar --xattrs --xattrs-include='user.*' -C " .. q(t .. "/untar") .. " -xpf " .. q(tarball))
  must("diff -r " .. q(m .. "/a") .. " " .. q(m .. "/untar/a"))
  local list = "cd %s && find" .. items .. " -printf '%%p %%M %%s %%n %%u %%g %%T@ %%l\\n' | sort"
  local original = must(list:format(q(m)))
  equal(original, must(list:format(q(m .. "/untar"))))
  equal(original, must(list:format(q(t .. "/untar"))))
  equal("kept\0binary", raw.lgetxattr(m .. "/untar/a/b/text", "user.tar"))
  must("cp -a " .. q(m .. "/untar") .. " " .. q(t .. "/back") .. " && diff -r "
    .. q(m .. "/untar") .. " " .. q(t .. "/back"))
  equal(original, must(list:format(q(t .. "/back"))))
  equal("kept\0binary", raw.lgetxattr(t .. "/back/a/b/text", "user.tar"))
  for _, dir in ipairs { m .. "/untar", t .. "/untar", t .. "/back" } do
    equal(raw.lstat(m .. "/a/sparse").blocks, raw.lstat(dir .. "/a/sparse").blocks, dir)
  end
end)

case("tools.xattrs", "real tools", "setfattr and getfattr", { "xattrs" }, function(d)
  local o = observe()
  o.run = { shell(d, "touch f && mkdir d && setfattr -n user.one -v 1 f && setfattr -n user.bin -v 0x00ff00 f"
    .. " && setfattr -n user.b64 -v 0sAAECAwQ= d && setfattr -n trusted.t -v tt f"
    .. " && getfattr -d -m - --absolute-names f d | sort && getfattr -n user.bin -e hex f"
    .. " && setfattr -x user.one f && getfattr -d f; ! getfattr -n user.one f 2>&1;"
    .. " ! setfattr -x user.one f 2>&1; echo end") }
  return o
end)

-- Writes data into a new file at path; returns "OK" or the errno's name.
local function put(path, data)
  local fd, _, e = sys.open(path, O_WRONLY | O_CREAT | O_EXCL, octal "644")
  if not fd then return errname(e) end
  local _, _, we = sys.write(fd, data)
  sys.close(fd)
  return errname(we)
end

-- The sorted names in the directory at path, or the errno's name.
local function names(path)
  local dir, _, e = sys.opendir(path)
  if not dir then return errname(e) end
  local t = {}
  for name in dir.read, dir do t[#t + 1] = name end
  dir:close()
  table.sort(t)
  return t
end

-- Runs f() with the working directory at dir, and comes back even when f
-- raises (a mount cannot be unmounted while the process works inside it).
local function in_dir(dir, f)
  local home = check(sys.open(".", luafs.O_PATH | luafs.O_DIRECTORY))
  local ok, err = sys.chdir(dir)
  local r = ok and table.pack(pcall(f))
  assert(sys.fchdir(home))
  sys.close(home)
  assert(ok, err)
  assert(r[1], r[2])
  return table.unpack(r, 2, r.n)
end

-- Every call that takes a path, with relative paths of up to PATH_MAX - 1
-- (4095) bytes from a working directory `levels` times 3840 bytes and 20
-- more below d's parent (the root of the mount): see long_relative below.
local function long_relative(d, src, levels)
  local sub = string.rep("s", 20 - #d:match("[^/]*$") - 1)
  local dirs = {}
  for i = 1, 15 do dirs[i] = string.format("%02d", i) .. string.rep("d", 253) end
  local D = table.concat(dirs, "/")
  -- a name of n bytes in D, and its length from the root of the mount
  local function in_D(c, n) return D .. "/" .. string.rep(c, n) end
  local F, G, K = in_D("f", 255), in_D("g", 255), in_D("k", 245)
  local S, P, X = in_D("s", 253), in_D("p", 252), in_D("x", 240)
  assert(#F == 4095 and 20 + 1 + #X > 4096, "the names must be long from the root")
  local uid, gid = -1, -1
  if sys.geteuid() == 0 then uid, gid = 4321, 4322 end
  local o = observe()
  check(sys.mkdir(d .. "/" .. sub))
  local function mkdirs() for i = 1, #dirs do check(sys.mkdir(table.concat(dirs, "/", 1, i))) end end
  in_dir(d .. "/" .. sub, function()
    for _ = 1, levels do
      mkdirs()
      check(sys.chdir(D))
    end
    mkdirs()

    -- files: create, open, read, write, stat, access, attributes
    local fd, _, e = sys.open(F, O_RDWR | O_CREAT | O_EXCL, octal "640")
    o.create = errname(e)
    if fd then
      o.write = sys.pwrite(fd, "long way down", 0)
      sys.close(fd)
    end
    o.create_again = E(sys.open, F, O_RDWR | O_CREAT | O_EXCL, octal "640")
    o.read = read(F)
    fd, _, e = sys.open(F, O_WRONLY | O_APPEND)
    o.open = errname(e)
    if fd then
      o.append = sys.write(fd, "!")
      sys.close(fd)
    end
    o.stat = stat_of(F, { "mode", "nlink", "size", "uid", "gid" })
    o.access_rw = E(sys.access, F, luafs.R_OK | luafs.W_OK)
    o.access_x = E(sys.access, F, luafs.X_OK)
    o.chmod = E(sys.chmod, F, octal "604")
    o.chown = E(sys.lchown, F, uid, gid)
    o.after_chmod_chown = stat_of(F, { "mode", "uid", "gid" })
    o.truncate = E(sys.truncate, F, 9)
    o.truncated = read(F)
    o.utimens = E(sys.utimensat, AT_FDCWD, F, 1000000000, 1, 2000000000, 2, NOFOLLOW)
    o.times = stat_of(F, { "atime", "atime_nsec", "mtime", "mtime_nsec" })
    o.setxattr = E(sys.lsetxattr, F, "user.long", "value")
    o.getxattr = sys.lgetxattr(F, "user.long")
    o.listxattr = sys.llistxattr(F)
    o.removexattr = E(sys.lremovexattr, F, "user.long")
    o.getxattr_gone = E(sys.lgetxattr, F, "user.long")
    local st = sys.statvfs(F)
    o.statvfs = st and st.namemax

    -- names: links, renames with their flags, nodes, directories
    o.link = E(sys.link, F, G)
    o.nlink = stat_of(F, { "nlink" })
    o.link_exists = E(sys.link, F, G)
    o.rename_noreplace_onto = E(sys.rename, G, F, luafs.RENAME_NOREPLACE)
    o.rename_noreplace = E(sys.rename, G, K, luafs.RENAME_NOREPLACE)
    o.symlink = E(sys.symlink, "a target", S)
    o.readlink = sys.readlink(S)
    o.rename_exchange = E(sys.rename, S, K, luafs.RENAME_EXCHANGE)
    o.exchanged = { sys.readlink(K), stat_of(S, { "mode", "size" }) }
    o.rename_replace = E(sys.rename, S, K)
    o.mknod = E(sys.mknod, P, luafs.S_IFIFO | octal "640")
    o.fifo = stat_of(P, { "mode" })
    o.mkdir = E(sys.mkdir, X, octal "750")
    o.dir = stat_of(X, { "mode", "nlink" })
    o.write_inside = put(X .. "/inside", "in")
    o.listing = names(X)
    o.rmdir_nonempty = E(sys.rmdir, X)
    o.unlink_dir = E(sys.unlink, X)
    o.unlink_inside = E(sys.unlink, X .. "/inside")
    o.rmdir = E(sys.rmdir, X)
    -- a file unlinked while open, its directory removed right after the close
    o.rmdir_after_close = {}
    for i = 1, 5 do
      local r = { E(sys.mkdir, X) }
      fd, _, e = sys.open(X .. "/open", O_RDWR | O_CREAT, octal "644")
      r[2] = errname(e)
      if fd then
        r[3], r[4] = E(sys.unlink, X .. "/open"), sys.pwrite(fd, "x", 0)
        sys.close(fd)
      end
      r[5] = E(sys.rmdir, X)
      o.rmdir_after_close[i] = r
    end

    -- errors: a missing component, last or not; a file as a component; a
    -- component over NAME_MAX, under a directory whose name from the root
    -- is long already (here the whole path is 4085 bytes)
    local missing = in_D("m", 240)
    o.missing = { E(sys.lstat, missing), E(sys.open, missing, O_RDONLY), E(sys.unlink, missing),
      E(sys.rmdir, missing), E(sys.chmod, missing, octal "600"), E(sys.truncate, missing, 0),
      E(sys.lgetxattr, missing, "user.x"), E(sys.rename, missing, G), E(sys.link, missing, G) }
    o.missing_parent = { E(sys.lstat, missing .. "/x"), E(sys.mkdir, missing .. "/x"),
      E(sys.open, missing .. "/x", O_WRONLY | O_CREAT, octal "644"),
      E(sys.symlink, "t", missing .. "/x"), E(sys.rename, F, missing .. "/x") }
    o.under_file = { E(sys.lstat, K .. "/x"), E(sys.lstat, K .. "/x/y"), E(sys.lstat, P .. "/x"),
      E(sys.mkdir, K .. "/x"), E(sys.open, K .. "/x", O_WRONLY | O_CREAT, octal "644") }
    local E200 = table.concat(dirs, "/", 1, 14) .. "/" .. string.rep("e", 200)
    check(sys.mkdir(E200))
    local over = E200 .. "/" .. string.rep("n", 300)
    assert(20 + 1 + #over > 4096 and #over < 4096)
    o.over_name_max = { E(sys.lstat, over), E(sys.mkdir, over),
      E(sys.open, over, O_WRONLY | O_CREAT, octal "644"), E(sys.lstat, over:sub(1, -6) .. "/x"),
      E(sys.symlink, "t", over), E(sys.rename, F, over) }
    o.over_path_max = E(sys.lstat, F .. "x")

    o.unlink = { E(sys.unlink, K), E(sys.unlink, P), E(sys.unlink, K) }
    o.listing_D = names(D)
  end)
  if src then
    in_dir(src .. "/" .. sub, function()
      for _ = 1, levels do check(sys.chdir(D)) end
      o.in_src = read(F)
    end)
  end
  return o
end

--[[ Every call that takes a path, with relative paths of up to PATH_MAX - 1
(4095) bytes from a working directory 20 bytes below d's parent (the root
of the mount): from that root the names reach 4116 bytes, more than one
system call takes. Errors included: a missing component, a file as a
component, a component over NAME_MAX. With a source, the data written is
read back there. ]]
case("long.relative", "long paths", "serves every call that takes a path, with tmpfs's errors",
  { "long_paths", "hardlinks", "symlinks", "special_files", "rename_flags", "xattrs" },
  function(d, src) return long_relative(d, src, 0) end)

-- The same from a working directory 7700 bytes below the root, so that
-- the names from there reach 11796 bytes, more than twice PATH_MAX.
case("long.deep", "long paths", "does so from a working directory more than PATH_MAX below the root",
  { "long_paths", "hardlinks", "symlinks", "special_files", "rename_flags", "xattrs" },
  function(d, src) return long_relative(d, src, 2) end)

---------------------------------------------------------------------------
-- Running the cases and comparing.
---------------------------------------------------------------------------

local function deep_equal(a, b)
  if a == b then return true end
  if type(a) ~= "table" or type(b) ~= "table" then return false end
  for k, v in pairs(a) do if not deep_equal(v, b[k]) then return false end end
  for k in pairs(b) do if a[k] == nil then return false end end
  return true
end

-- The first place where a and b differ: a path of keys, and both values.
local function first_leaf(a, b, path)
  if type(a) ~= "table" or type(b) ~= "table" then return path, a, b end
  local keys = {}
  for k in pairs(a) do keys[#keys + 1] = k end
  for k in pairs(b) do if a[k] == nil then keys[#keys + 1] = k end end
  table.sort(keys, function(x, y) return tostring(x) < tostring(y) end)
  for _, k in ipairs(keys) do
    if not deep_equal(a[k], b[k]) then
      local step = math.type(k) == "integer" and ("[" .. k .. "]") or ("." .. tostring(k))
      return first_leaf(a[k], b[k], path .. step)
    end
  end
  return path, a, b
end

--[[ One line per observed field that differs. The field's calls are
compared pairwise: the first whose result differs is named; when they all
agree (the difference lies in what the case made of them, a stat field
say), the line names the field's last call and the two values. ]]
local function differences(m, t)
  local lines = {}
  local keys, seen = {}, {}
  for _, list in ipairs { m.order, t.order } do
    for _, k in ipairs(list) do
      if not seen[k] then
        seen[k] = true
        keys[#keys + 1] = k
      end
    end
  end
  for k in pairs(m.result) do if not seen[k] then keys[#keys + 1] = k; seen[k] = true end end
  for k in pairs(t.result) do if not seen[k] then keys[#keys + 1] = k; seen[k] = true end end
  for _, k in ipairs(keys) do
    local a, b = m.result[k], t.result[k]
    if not deep_equal(a, b) then
      local sm, st = m.spans[k] or { 1, 0 }, t.spans[k] or { 1, 0 }
      local line
      for i = 0, math.min(sm[2] - sm[1], st[2] - st[1]) do
        local x, y = m.journal[sm[1] + i], t.journal[st[1] + i]
        if x.result ~= y.result then
          line = string.format("%s: mount %s, tmpfs %s", x.label, x.result, y.result)
          break
        end
      end
      if not line then
        local path, va, vb = first_leaf(a, b, tostring(k))
        local last = m.journal[sm[2]]
        line = string.format("%s%s: mount %s, tmpfs %s", last and (last.label .. " -> ") or "",
          path, show_value(va), show_value(vb))
      end
      lines[#lines + 1] = line .. " [" .. tostring(k) .. "]"
    end
  end
  return lines
end

local function run_once(c, dir, src, skip)
  local run = { dir = dir, journal = {}, fds = {}, spans = {}, order = {}, mark = 1, aside = {}, skip = skip }
  current = run
  local ok, r = xpcall(c.f, debug.traceback, dir, src)
  current = nil
  -- a case that failed half-way leaves descriptors open, and an open file
  -- keeps the mount busy
  for fd in pairs(run.fds) do raw.close(fd) end
  if not ok then error(r, 0) end
  run.result = run.observed or r
  return run
end

--- Run case `c` in mdir (on the mount) and tdir (on tmpfs) and compare.
-- @tparam table c a case of `conformance.cases`
-- @tparam string mdir a fresh directory on the mount
-- @tparam string tdir a fresh directory on tmpfs
-- @tparam[opt] string msrc mdir as the filesystem's backing store holds it
-- @tparam[opt] table skip a set of the features the filesystem lacks
-- @treturn table the mount's run: `result` (what it observed), `aside`
-- @treturn table the tmpfs run, likewise
-- @treturn {string,...} the differences, one line each (empty: none)
function conformance.compare(c, mdir, tdir, msrc, skip)
  skip = skip or {}
  local ok, m = pcall(run_once, c, mdir, msrc, skip)
  if not ok then error("on the mount: " .. tostring(m), 0) end
  local t
  ok, t = pcall(run_once, c, tdir, msrc and tdir, skip)
  if not ok then error("on tmpfs: " .. tostring(t), 0) end
  return m, t, differences(m, t)
end

local function set_of(list)
  local s = {}
  for _, v in ipairs(list or {}) do s[v] = true end
  return s
end

--- Register the battery in the enclosing busted `describe` block: one
-- test per case, in a block of its own, with `script` mounted once
-- around it and a tmpfs directory beside it.
-- @tparam string script the filesystem's script
-- @tparam[opt] table opts
--   `args`, `options`, `scratch`, `host`, `timeout`: as for
--   luafs.testing.mount;
--   `source`: where the script keeps the mount's files, if it mirrors a
--   directory ("{scratch}" is replaced): cases then read back there what
--   they wrote through the mount;
--   `skip`: feature names (luafs(3), THE TEST KIT) and case names to leave
--   out; `only`: case names to run, and no others;
--   `expect`: case name -> function(got, want, got_aside, want_aside)
--   with the spec's own assertions on that case's observations;
--   `name`: the block's name (default "conformance").
-- @treturn table the accessor of luafs.testing.mounted
function conformance.run(script, opts)
  opts = opts or {}
  local busted = require "busted"
  local skip, only, expect = set_of(opts.skip), opts.only and set_of(opts.only), opts.expect or {}
  local fs
  busted.describe(opts.name or "conformance", function()
    local source = opts.source
    fs = testing.mounted(script, { once = true, args = opts.args, options = opts.options, host = opts.host,
      timeout = opts.timeout,
      scratch = opts.scratch or (type(source) == "string" and source:find("{scratch}", 1, true) ~= nil) })
    local ref
    local seq = 0
    busted.setup(function()
      local code, out = testing.shell("mktemp -d /dev/shm/luafs-conformance.XXXXXX")
      assert(code == 0, out)
      ref = out:match("^([^\n]+)")
      assert(raw.chmod(ref, octal "755"))
    end)
    busted.teardown(function()
      if ref and testing.mounted_at(ref) == 0 then testing.shell("rm -rf " .. testing.quote(ref)) end
    end)
    local groups, order = {}, {}
    for _, c in ipairs(cases) do
      local wanted = (not only or only[c.name]) and not skip[c.name]
      for _, need in ipairs(c.needs) do wanted = wanted and not skip[need] end
      if wanted then
        if not groups[c.group] then
          groups[c.group] = {}
          order[#order + 1] = c.group
        end
        table.insert(groups[c.group], c)
      end
    end
    for _, g in ipairs(order) do
      busted.describe(g, function()
        for _, c in ipairs(groups[g]) do
          busted.it(c.title, function()
            seq = seq + 1
            local name = c.name:gsub("%W", "-") .. "." .. seq
            local mdir, tdir = fs:path(name), ref .. "/" .. name
            assert(raw.mkdir(mdir))
            assert(raw.mkdir(tdir))
            if c.pair then return c.pair(mdir, tdir) end
            local msrc = source and (source:gsub("{scratch}", function() return fs.scratch end) .. "/" .. name)
            local m, t, diffs = conformance.compare(c, mdir, tdir, msrc, skip)
            if #diffs > 0 then
              error(string.format("%s: %d difference%s between the mount and tmpfs:\n  %s", c.name, #diffs,
                #diffs == 1 and "" or "s", table.concat(diffs, "\n  ")), 0)
            end
            if expect[c.name] then expect[c.name](m.result, t.result, m.aside, t.aside) end
          end)
        end
      end)
    end
  end)
  return fs
end

return conformance
