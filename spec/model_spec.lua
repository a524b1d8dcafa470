-- spec/model_spec.lua: random operation sequences, applied to memfs.lua
-- through its mount and to a tmpfs directory side by side; every result,
-- every errno and the tree left at the end of each sequence must be the
-- same.
--
-- Each sequence has a seed of its own: LUAFS_MODEL_SEED + its index. A
-- failure prints the seed of the sequence that failed and the operations
-- that led there; replay it alone with
--
--   LUAFS_MODEL_SEED=<seed> LUAFS_MODEL_RUNS=1 scripts/test --quick spec/model_spec.lua
--
-- LUAFS_MODEL_RUNS (default 3000) is the number of sequences.
local H = require "spec.helpers"

local testing, luafs, sys = H.testing, H.luafs, H.sys
local octal = H.octal

local O_RDONLY, O_WRONLY, O_RDWR = luafs.O_RDONLY, luafs.O_WRONLY, luafs.O_RDWR
local O_CREAT, O_EXCL, O_TRUNC, O_APPEND = luafs.O_CREAT, luafs.O_EXCL, luafs.O_TRUNC, luafs.O_APPEND
-- every open is non-blocking, so that one of a FIFO cannot wait for ever
local O_NONBLOCK = luafs.O_NONBLOCK
local AT_FDCWD, NOFOLLOW = luafs.AT_FDCWD, luafs.AT_SYMLINK_NOFOLLOW
local S_IFMT, S_IFDIR, S_IFREG, S_IFLNK = luafs.S_IFMT, luafs.S_IFDIR, luafs.S_IFREG, luafs.S_IFLNK

local SEED = tonumber(os.getenv("LUAFS_MODEL_SEED") or "") or 20261201
local RUNS = tonumber(os.getenv("LUAFS_MODEL_RUNS") or "") or 3000

-- A generator of integers from 1 to n (splitmix64), the same everywhere.
local function generator(seed)
  local x = seed
  return function(n)
    x = x + 0x9E3779B97F4A7C15
    local z = x
    z = (z ~ (z >> 30)) * 0xBF58476D1CE4E5B9
    z = (z ~ (z >> 27)) * 0x94D049BB133111EB
    z = z ~ (z >> 31)
    return z % n + 1
  end
end

local NOISE = H.bytes(1 << 17, 99)

-- The names a sequence works with: few, so that operations collide.
local PATHS = { "a", "b", "c", "a", "b", "a", "a/x", "b/x", "a/y", "a/x", "a/x/z", "c/c", "b/x/z",
                "a b", "\1\255" }
-- (relative, and never above the sequence's directory: operations follow
-- symlinks, and one to "/x" would create files outside the test)
local TARGETS = { "a", "b", "x", "x/../b", "a/x", "dangling", "c/c", "" }
local XATTRS = { "user.a", "user.b", "user.", "trusted.t", "security.s", "other.o", "user.a\255" }
-- (no mode with the sticky bit and set-user-ID or set-group-ID: see the
-- header of memfs.lua for what the kernel does to those on chown)
local MODES = { "644", "600", "755", "000", "4755", "2750", "1777", "444", "311", "6775" }

-- The result of a luafs.sys call as a string: "OK", the value, or the
-- errno's name.
local function show(v, _, e)
  if v == nil then return H.errname(e) end
  if v == true then return "OK" end
  if type(v) == "string" then return string.format("%q", v) end
  if type(v) == "table" then return table.concat(v, ",") end
  return tostring(v)
end

local function stat_string(st)
  return string.format("mode=%o nlink=%d size=%d blocks=%d uid=%d gid=%d rdev=%d",
    st.mode, st.nlink, st.size, st.blocks, st.uid, st.gid, st.rdev)
end

-- The operations. Each takes the sequence's state (a directory and its
-- open descriptors) and the arguments drawn for it, and returns a string.
local OPS = {}

local function path(st, rel) return st.dir .. "/" .. rel end

function OPS.create(st, rel, flags, mode, data)
  local fd, msg, e = sys.open(path(st, rel), O_WRONLY | O_CREAT | O_NONBLOCK | flags, octal(mode))
  if not fd then return show(fd, msg, e) end
  local r = show(sys.pwrite(fd, data, 0))
  sys.close(fd)
  return "OK " .. r
end

function OPS.open(st, slot, rel, flags)
  if st.fds[slot] then sys.close(st.fds[slot]) end
  local fd, msg, e = sys.open(path(st, rel), flags | O_NONBLOCK, octal "644")
  st.fds[slot] = fd
  return show(fd and true, msg, e)
end

function OPS.close(st, slot)
  local fd = st.fds[slot]
  if not fd then return "none" end
  st.fds[slot] = nil
  return show(sys.close(fd))
end

local function with_fd(st, slot, f)
  local fd = st.fds[slot]
  if not fd then return "none" end
  return f(fd)
end

function OPS.pwrite(st, slot, data, offset)
  return with_fd(st, slot, function(fd) return show(sys.pwrite(fd, data, offset)) end)
end

function OPS.pread(st, slot, size, offset)
  return with_fd(st, slot, function(fd) return show(sys.pread(fd, size, offset)) end)
end

function OPS.ftruncate(st, slot, size)
  return with_fd(st, slot, function(fd) return show(sys.ftruncate(fd, size)) end)
end

function OPS.fallocate(st, slot, mode, offset, len)
  return with_fd(st, slot, function(fd) return show(sys.fallocate(fd, mode, offset, len)) end)
end

function OPS.lseek(st, slot, offset, whence)
  return with_fd(st, slot, function(fd) return show(sys.lseek(fd, offset, whence)) end)
end

function OPS.write(st, rel, data, offset)
  local fd, msg, e = sys.open(path(st, rel), O_WRONLY | O_NONBLOCK)
  if not fd then return show(fd, msg, e) end
  local r = show(sys.pwrite(fd, data, offset))
  sys.close(fd)
  return r
end

function OPS.read(st, rel, size, offset)
  local fd, msg, e = sys.open(path(st, rel), O_RDONLY | O_NONBLOCK)
  if not fd then return show(fd, msg, e) end
  local r = show(sys.pread(fd, size, offset))
  sys.close(fd)
  return r
end

function OPS.truncate(st, rel, size) return show(sys.truncate(path(st, rel), size)) end
function OPS.mkdir(st, rel, mode) return show(sys.mkdir(path(st, rel), octal(mode))) end
function OPS.rmdir(st, rel) return show(sys.rmdir(path(st, rel))) end
function OPS.unlink(st, rel) return show(sys.unlink(path(st, rel))) end
function OPS.rename(st, a, b, flags) return show(sys.rename(path(st, a), path(st, b), flags)) end
function OPS.link(st, a, b) return show(sys.link(path(st, a), path(st, b))) end
function OPS.symlink(st, target, rel) return show(sys.symlink(target, path(st, rel))) end
function OPS.readlink(st, rel) return show(sys.readlink(path(st, rel))) end
function OPS.chmod(st, rel, mode) return show(sys.chmod(path(st, rel), octal(mode))) end
function OPS.chown(st, rel, uid, gid) return show(sys.lchown(path(st, rel), uid, gid)) end
function OPS.mkfifo(st, rel, mode) return show(sys.mkfifo(path(st, rel), octal(mode))) end
function OPS.access(st, rel, mask) return show(sys.access(path(st, rel), mask)) end

function OPS.setxattr(st, rel, name, value, flags)
  return show(sys.lsetxattr(path(st, rel), name, value, flags))
end
function OPS.getxattr(st, rel, name) return show(sys.lgetxattr(path(st, rel), name)) end
function OPS.removexattr(st, rel, name) return show(sys.lremovexattr(path(st, rel), name)) end

function OPS.listxattr(st, rel)
  local list, msg, e = sys.llistxattr(path(st, rel))
  if not list then return show(list, msg, e) end
  table.sort(list)
  return show(list)
end

function OPS.lstat(st, rel)
  local s, msg, e = sys.lstat(path(st, rel))
  if not s then return show(s, msg, e) end
  return stat_string(s)
end

function OPS.listing(st, rel)
  local dir, msg, e = sys.opendir(path(st, rel))
  if not dir then return show(dir, msg, e) end
  local names = {}
  for name in dir.read, dir do names[#names + 1] = name end
  dir:close()
  table.sort(names)
  return show(names)
end

-- Explicit times, then what lstat says of them (reads cannot move them).
function OPS.utimens(st, rel, at, mt)
  local r = show(sys.utimensat(AT_FDCWD, path(st, rel), at, 0, mt, 7, NOFOLLOW))
  local s = sys.lstat(path(st, rel))
  if s then r = r .. " " .. s.mtime .. "." .. s.mtime_nsec end
  return r
end

-- Draws one operation: its name and its arguments.
local function draw(rand)
  local function pick(t) return t[rand(#t)] end
  local function offset()
    local k = rand(20)
    if k == 1 then return (1 << 32) + rand(100000) end
    if k == 2 then return 0 end
    return rand(70000) - 1
  end
  local function data()
    local len = ({ 0, 1, 100, 4096, 5000, 70000 })[rand(6)]
    if len > 1 then len = rand(len) end
    local at = rand(#NOISE - len)
    return NOISE:sub(at, at + len - 1)
  end
  local flagsets = { 0, O_EXCL, O_TRUNC, O_APPEND, O_EXCL | O_TRUNC }
  local opens = { O_RDONLY, O_WRONLY, O_RDWR, O_RDWR | O_CREAT, O_WRONLY | O_TRUNC,
                  O_RDWR | O_APPEND, O_WRONLY | O_CREAT | O_EXCL, O_RDONLY | O_TRUNC }
  local renames = { 0, 0, 0, luafs.RENAME_NOREPLACE, luafs.RENAME_EXCHANGE, luafs.RENAME_WHITEOUT,
                    luafs.RENAME_EXCHANGE | luafs.RENAME_NOREPLACE }
  local falloc = { 0, luafs.FALLOC_FL_KEEP_SIZE, luafs.FALLOC_FL_PUNCH_HOLE | luafs.FALLOC_FL_KEEP_SIZE,
                   luafs.FALLOC_FL_PUNCH_HOLE }
  local k = rand(100)
  local slot = rand(3)
  if k <= 10 then return "create", pick(PATHS), pick(flagsets), pick(MODES), data() end
  if k <= 16 then return "open", slot, pick(PATHS), pick(opens) end
  if k <= 19 then return "close", slot end
  if k <= 26 then return "pwrite", slot, data(), offset() end
  if k <= 31 then return "pread", slot, rand(9000) - 1, offset() end
  if k <= 34 then return "ftruncate", slot, offset() end
  if k <= 36 then return "fallocate", slot, pick(falloc), offset(), rand(20000) end
  if k <= 38 then return "lseek", slot, offset(), pick { luafs.SEEK_DATA, luafs.SEEK_HOLE } end
  if k <= 42 then return "write", pick(PATHS), data(), offset() end
  if k <= 46 then return "read", pick(PATHS), rand(9000) - 1, offset() end
  if k <= 49 then return "truncate", pick(PATHS), offset() end
  if k <= 55 then return "mkdir", pick(PATHS), pick(MODES) end
  if k <= 58 then return "rmdir", pick(PATHS) end
  if k <= 62 then return "unlink", pick(PATHS) end
  if k <= 69 then return "rename", pick(PATHS), pick(PATHS), pick(renames) end
  if k <= 72 then return "link", pick(PATHS), pick(PATHS) end
  if k <= 75 then return "symlink", pick(TARGETS), pick(PATHS) end
  if k <= 76 then return "readlink", pick(PATHS) end
  if k <= 79 then return "chmod", pick(PATHS), pick(MODES) end
  if k <= 80 then return "chown", pick(PATHS), pick { -1, 0, 1, 4321 }, pick { -1, 0, 2, 4322 } end
  if k <= 81 then return "mkfifo", pick(PATHS), pick(MODES) end
  if k <= 82 then return "access", pick(PATHS), rand(8) - 1 end
  if k <= 85 then
    return "setxattr", pick(PATHS), pick(XATTRS), data():sub(1, 300),
      pick { 0, 0, luafs.XATTR_CREATE, luafs.XATTR_REPLACE }
  end
  if k <= 87 then return "getxattr", pick(PATHS), pick(XATTRS) end
  if k <= 88 then return "removexattr", pick(PATHS), pick(XATTRS) end
  if k <= 89 then return "listxattr", pick(PATHS) end
  if k <= 95 then return "lstat", pick(PATHS) end
  if k <= 98 then return "listing", pick { ".", "a", "b", "a/x", "c" } end
  return "utimens", pick(PATHS), rand(2000000000), rand(2000000000)
end

local function describe_op(op)
  local words = { op[1] }
  for i = 2, op.n do
    local v = op[i]
    if type(v) == "string" and #v > 24 then
      v = string.format("<%d bytes>", #v)
    elseif type(v) == "string" then
      v = string.format("%q", v)
    end
    words[#words + 1] = tostring(v)
  end
  return table.concat(words, " ")
end

-- What a directory holds, as text: names, kinds, contents, xattrs.
local function tree(dir)
  local out = {}
  local function walk(rel)
    local p = rel == "" and dir or dir .. "/" .. rel
    local names = {}
    local d = assert(sys.opendir(p))
    for name in d.read, d do
      if name ~= "." and name ~= ".." then names[#names + 1] = name end
    end
    d:close()
    table.sort(names)
    for _, name in ipairs(names) do
      local r = rel == "" and name or rel .. "/" .. name
      local q = dir .. "/" .. r
      local st = assert(sys.lstat(q))
      local line = string.format("%q %s", r, stat_string(st))
      local list = sys.llistxattr(q)
      if list then
        table.sort(list)
        for _, x in ipairs(list) do line = line .. string.format(" %q=%q", x, sys.lgetxattr(q, x)) end
      end
      local kind = st.mode & S_IFMT
      if kind == S_IFLNK then
        line = line .. " -> " .. sys.readlink(q)
      elseif kind == S_IFREG and st.mode & octal "444" ~= 0 then
        local fd = assert(sys.open(q, O_RDONLY))
        local head = sys.pread(fd, 70000, 0)
        local tail = st.size > 70000 and sys.pread(fd, 100, st.size - 100) or ""
        sys.close(fd)
        line = line .. string.format(" %q %q", head, tail)
      end
      out[#out + 1] = line
      if kind == S_IFDIR then walk(r) end
    end
  end
  walk("")
  return table.concat(out, "\n")
end

-- Removes everything under dir (which stays), whatever its modes.
local function empty(dir)
  local d = assert(sys.opendir(dir))
  local names = {}
  for name in d.read, d do
    if name ~= "." and name ~= ".." then names[#names + 1] = name end
  end
  d:close()
  for _, name in ipairs(names) do
    local p = dir .. "/" .. name
    local st = assert(sys.lstat(p))
    if st.mode & S_IFMT == S_IFDIR then
      empty(p)
      assert(sys.rmdir(p))
    else
      assert(sys.unlink(p))
    end
  end
end

--[[ Where the answers may differ, as memfs.lua's header says: libfuse has
no path for a file that is open after its name and its directory were
removed, and answers ESTALE to an lseek on it (here the file on tmpfs
has no name any more); and the kernel answers
SEEK_DATA and SEEK_HOLE on a directory of a FUSE mount itself, not as
tmpfs's directories do (EINVAL), without asking memfs. ]]
local function documented(op, got, ref)
  if op[1] == "lseek" then
    local st = sys.fstat(ref.fds[op[2]])
    if st and st.mode & S_IFMT == S_IFDIR then return true end
    return got == "ESTALE" and st ~= nil and st.nlink == 0
  end
  return false
end

describe("memfs.lua against tmpfs, operation by operation", function()
  -- dev: whiteouts are device nodes, which the model opens as tmpfs does
  local fs = testing.mounted(H.example("memfs.lua"), { once = true, options = { "-o", "dev" } })
  local ref

  setup(function() ref = H.shm_dir() end)
  teardown(function() if ref then H.remove(ref) end end)

  it(string.format("agrees on %d random sequences (seeds from %d)", RUNS, SEED), function()
    if sys.geteuid() ~= 0 then
      pending("needs root: the sequences chown, and make whiteouts")
      return
    end
    local mdir, rdir = fs:path("model"), ref .. "/model"
    H.check(sys.mkdir(mdir))
    H.check(sys.mkdir(rdir))
    local total = 0
    for run = 0, RUNS - 1 do
      local seed = SEED + run
      local rand = generator(seed)
      local m = { dir = mdir, fds = {} }
      local r = { dir = rdir, fds = {} }
      local done = {}
      local function close_all()
        for _, st in ipairs { m, r } do
          for slot, fd in pairs(st.fds) do
            sys.close(fd)
            st.fds[slot] = nil
          end
        end
      end
      local function fail(what)
        close_all()
        error(string.format("%s\nsequence seed %d (replay: LUAFS_MODEL_SEED=%d LUAFS_MODEL_RUNS=1)\n%s",
          what, seed, seed, table.concat(done, "\n")), 0)
      end
      if rand(2) == 1 then -- half of the sequences start with directories
        for _, d in ipairs { "a", "a/x", "b" } do
          assert(sys.mkdir(mdir .. "/" .. d) and sys.mkdir(rdir .. "/" .. d))
        end
      end
      for _ = 1, 10 + rand(30) do
        local op = table.pack(draw(rand))
        local f = OPS[op[1]]
        local want = f(r, table.unpack(op, 2, op.n))
        local got = f(m, table.unpack(op, 2, op.n))
        done[#done + 1] = describe_op(op) .. "  ->  " .. want:sub(1, 80)
        if got ~= want and not documented(op, got, r) then
          fail(string.format("%s: tmpfs says %s\n                memfs says %s",
            describe_op(op), want:sub(1, 200), got:sub(1, 200)))
        end
        total = total + 1
      end
      close_all()
      local want, got = tree(rdir), tree(mdir)
      if want ~= got then
        fail("the trees differ:\n--- tmpfs\n" .. want .. "\n--- memfs\n" .. got)
      end
      empty(mdir)
      empty(rdir)
    end
    assert(fs:alive(), fs:log())
    assert.is_nil(fs:log():find("traceback", 1, true), fs:log())
    assert.is_true(total > RUNS * 8)
  end)
end)
