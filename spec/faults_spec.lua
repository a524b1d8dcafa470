-- spec/faults_spec.lua: fault injection. lua/examples/memfs.lua and
-- lua/examples/passthrough.lua run inside spec/fixtures/fault_inject.lua,
-- which makes a seeded fraction of their calls (every operation) raise,
-- answer garbage of the wrong type, a huge string to a read, a negative
-- number that is no errno, or nothing where a value is needed.
--
-- A workload of random operations runs on the mount and, side by side, on
-- a tmpfs directory. After each operation the spec reads which calls were
-- made to fail. When none was, the mount must have answered exactly as
-- tmpfs did; when some were, it must have answered the same, or EIO at the
-- first step where the two differ (the kernel itself retries some calls,
-- such as a lookup, and ignores what release answers). After a faulty
-- operation the tmpfs directory is made a copy of the mount again, since a
-- failed operation may have done part of its work. Each fault must have
-- one log line naming its operation and path; the host must stay up, and
-- its memory flat from one round of the workload to the next.
local H = require "spec.helpers"

local testing, luafs, sys = H.testing, H.luafs, H.sys
local octal = H.octal

local O_RDONLY, O_WRONLY, O_RDWR, O_CREAT, O_TRUNC = luafs.O_RDONLY, luafs.O_WRONLY, luafs.O_RDWR,
  luafs.O_CREAT, luafs.O_TRUNC
local S_IFMT, S_IFDIR, S_IFLNK = luafs.S_IFMT, luafs.S_IFDIR, luafs.S_IFLNK

local ROUND = tonumber(os.getenv("LUAFS_FAULT_OPS") or "") or 5000 -- operations per round; two rounds
local RATE = tonumber(os.getenv("LUAFS_FAULT_RATE") or "") or 0.02  -- fraction of calls made to fail

local function rss_kib(pid)
  local f = assert(io.open("/proc/" .. pid .. "/status"))
  local text = f:read("a")
  f:close()
  return tonumber(text:match("VmRSS:%s*(%d+)"))
end

local function result(v, _, e)
  if v == nil then return H.errname(e) end
  if v == true then return "OK" end
  return v
end

-- The parts of a stat that a tmpfs directory and the mount agree on.
local function stat_of(path)
  local st, _, e = sys.lstat(path)
  if not st then return H.errname(e) end
  local t = { type = st.mode & S_IFMT, perm = st.mode & octal "7777" }
  if t.type ~= S_IFDIR then
    t.size, t.nlink = st.size, st.nlink
  end
  return t
end

local function sorted(list, msg, e)
  if not list then return result(list, msg, e) end
  table.sort(list)
  return list
end

local function listing(path)
  local dir, _, e = sys.opendir(path)
  if not dir then return H.errname(e) end
  local names = {}
  while true do
    local name, _, e2 = dir:read()
    if not name then
      if e2 then
        dir:close()
        return H.errname(e2)
      end
      break
    end
    names[#names + 1] = name
  end
  dir:close()
  table.sort(names)
  return names
end

-- Runs f(fd) on path opened with flags; the results of open, f and close.
local function with_fd(path, flags, mode, f)
  local fd, _, e = sys.open(path, flags, mode)
  if not fd then return { H.errname(e) } end
  local r = { "OK", f(fd) }
  r[#r + 1] = result(sys.close(fd))
  return r
end

local NAMES = { "f0", "f1", "f2", "d0", "d1", "d0/f0", "d0/f1", "d0/d2", "d1/f0", "d1/f1", "d0/d2/f0" }

-- One random operation: a table with a label, the names it touches, and
-- run(dir) returning what the system calls answered.
local function operation(rng, seq)
  local function name() return NAMES[rng(#NAMES)] end
  local a, b = name(), name()
  local data = string.rep(string.char(65 + seq % 26), rng(0, 3) * rng(0, 20000)) .. tostring(seq)
  -- every random choice is made here, so that both runs make the same
  local off, n, mode, size = rng(0, 40000), rng(0, 65536), octal "600" + rng(0, 0x3f), rng(0, 50000)
  local ops = {
    function() return "write " .. a, function(d)
      return with_fd(d .. "/" .. a, O_WRONLY | O_CREAT | O_TRUNC, octal "644", function(fd)
        return result(sys.pwrite(fd, data, 0))
      end)
    end end,
    function() return "pwrite " .. a, function(d)
      return with_fd(d .. "/" .. a, O_WRONLY, nil, function(fd)
        return result(sys.pwrite(fd, data, off))
      end)
    end end,
    function() return "read " .. a, function(d)
      return with_fd(d .. "/" .. a, O_RDONLY, nil, function(fd) return result(sys.pread(fd, n, off)) end)
    end end,
    function() return "stat " .. a, function(d) return { stat_of(d .. "/" .. a) } end end,
    function() return "mkdir " .. a, function(d) return { result(sys.mkdir(d .. "/" .. a, octal "755")) } end end,
    function() return "rmdir " .. a, function(d) return { result(sys.rmdir(d .. "/" .. a)) } end end,
    function() return "unlink " .. a, function(d) return { result(sys.unlink(d .. "/" .. a)) } end end,
    function() return "rename " .. a .. " " .. b, function(d)
      return { result(sys.rename(d .. "/" .. a, d .. "/" .. b)) }
    end end,
    function() return "link " .. a .. " " .. b, function(d)
      return { result(sys.link(d .. "/" .. a, d .. "/" .. b)) }
    end end,
    function() return "symlink " .. a, function(d)
      local r = { result(sys.symlink("target-" .. seq, d .. "/" .. a)) }
      r[2] = result(sys.readlink(d .. "/" .. a))
      return r
    end end,
    function() return "chmod " .. a, function(d)
      return { result(sys.chmod(d .. "/" .. a, mode)), stat_of(d .. "/" .. a) }
    end end,
    function() return "truncate " .. a, function(d)
      local r = { result(sys.truncate(d .. "/" .. a, size)) }
      r[2] = stat_of(d .. "/" .. a)
      return r
    end end,
    function() return "utimens " .. a, function(d)
      local r = { result(sys.utimensat(luafs.AT_FDCWD, d .. "/" .. a, seq, 1, seq * 7, 999999999, 0)) }
      local st, _, e = sys.stat(d .. "/" .. a) -- utimensat follows a symbolic link
      if r[1] == "OK" then
        r[2] = st and (st.atime .. "." .. st.atime_nsec .. " " .. st.mtime .. "." .. st.mtime_nsec)
          or H.errname(e)
      end
      return r
    end end,
    function() return "list " .. a, function(d) return { listing(d .. "/" .. a) } end end,
    function() return "xattr " .. a, function(d)
      local p = d .. "/" .. a
      return { result(sys.lsetxattr(p, "user.k" .. seq % 3, data:sub(1, 100))),
        result(sys.lgetxattr(p, "user.k" .. (seq + 1) % 3)), sorted(sys.llistxattr(p)),
        result(sys.lremovexattr(p, "user.k" .. (seq + 2) % 3)) }
    end end,
    function() return "statfs " .. a, function(d)
      local ok, _, e = sys.statvfs(d .. "/" .. a)
      return { ok and "OK" or H.errname(e) }
    end end,
    function() return "access " .. a, function(d) return { result(sys.access(d .. "/" .. a, luafs.R_OK)) } end end,
    function() return "fsync " .. a, function(d)
      return with_fd(d .. "/" .. a, O_RDWR, nil, function(fd)
        return result(sys.fsync(fd)), result(sys.ftruncate(fd, #data))
      end)
    end end,
  }
  return ops[rng(#ops)]()
end

-- A result as a string that two equal results share.
local function show(v)
  if type(v) ~= "table" then return tostring(v) end
  local parts = {}
  for k, x in pairs(v) do parts[#parts + 1] = tostring(k) .. "=" .. show(x) end
  table.sort(parts)
  return "{" .. table.concat(parts, ",") .. "}"
end

local function short(v)
  local s = show(v)
  if #s > 80 then s = s:sub(1, 60) .. "...(" .. #s .. " bytes)" end
  return s
end

-- The first step where the results a and b differ, or nil.
local function first_difference(a, b)
  for i = 1, math.max(#a, #b) do
    if show(a[i]) ~= show(b[i]) then return i end
  end
  return nil
end

-- Makes dst a copy of the tree at src: contents, modes, links, xattrs.
local function copy_tree(src, dst)
  local inodes = {}
  local function copy(s, d)
    for _, name in ipairs(listing(s)) do
      if name ~= "." and name ~= ".." then
        local sp, dp = s .. "/" .. name, d .. "/" .. name
        local st = H.check(sys.lstat(sp))
        local kind = st.mode & S_IFMT
        if kind == S_IFDIR then
          H.check(sys.mkdir(dp, octal "700"))
          copy(sp, dp)
        elseif inodes[st.ino] then
          H.check(sys.link(inodes[st.ino], dp))
        elseif kind == S_IFLNK then
          inodes[st.ino] = dp
          H.check(sys.symlink(H.check(sys.readlink(sp)), dp))
        else
          inodes[st.ino] = dp
          H.write(dp, H.read(sp))
        end
        if kind ~= S_IFLNK then
          H.check(sys.chmod(dp, st.mode & octal "7777"))
          for _, attr in ipairs(H.check(sys.llistxattr(sp))) do
            H.check(sys.lsetxattr(dp, attr, H.check(sys.lgetxattr(sp, attr))))
          end
        end
      end
    end
  end
  copy(src, dst)
end

local function clear(dir)
  local code, out = H.shell("find " .. H.quote(dir) .. " -mindepth 1 -delete")
  assert(code == 0, out)
end

-- The host's log lines, counted by "op path" (or "op" alone when the call
-- had no path) for the lines that pattern matches; pattern captures the
-- operation and the rest of the line.
local function count_lines(log, pattern, path_of)
  local counts = {}
  for line in log:gmatch("[^\n]+") do
    local op, rest = line:match(pattern)
    if op then
      local path = path_of(rest)
      if path ~= false then
        local key = op .. (path and " " .. path or "")
        counts[key] = (counts[key] or 0) + 1
      end
    end
  end
  return counts
end

-- Whether two tables of counts hold the same keys and counts.
local function same_counts(a, b)
  for k, v in pairs(a) do
    if b[k] ~= v then return false end
  end
  for k in pairs(b) do
    if a[k] == nil then return false end
  end
  return true
end

-- debug: run a shorter workload under -d, whose trace shows what each
-- call answered.
local function fault_suite(base, debug)
  describe(base .. " with faults" .. (debug and ", traced with -d" or ""), function()
    local seed = tonumber(os.getenv("LUAFS_FAULT_SEED") or "") or os.time()
    local ref = H.shm_dir()
    local ctl
    -- before the kit's teardown, which cannot unmount while ctl is open
    teardown(function()
      if ctl then sys.close(ctl) end
      H.remove(ref)
    end)
    local fs = testing.mounted(H.fixture("fault_inject.lua"), { once = true, scratch = base == "passthrough",
      options = debug and { "-d" } or nil,
      args = function(m) return { base, tostring(seed), tostring(RATE), m.scratch } end })

    local total = { faults = 0, visible = 0, windows = 0, records = {} }

    local function faults_now()
      local text = H.check(sys.pread(ctl, 65536, 0))
      local recs = {}
      for op, path, shape in text:gmatch("([%w_]+)\t([^\t]*)\t(%w+)\n") do
        recs[#recs + 1] = { op = op, path = path, shape = shape }
        local key = op .. (path ~= "nil" and " " .. path or "")
        total.records[key] = (total.records[key] or 0) + 1
      end
      return recs, tonumber(text:match("kbytes=(%d+)")), tonumber(text:match("handles=(%d+)"))
    end

    local function control(word) H.check(sys.pwrite(ctl, word, 0)) end

    local function resync()
      control("pause")
      faults_now()
      clear(ref)
      copy_tree(fs.mountpoint, ref)
      control("resume")
    end

    local history = {}
    local function round(rng, first, n)
      for seq = first, first + n - 1 do
        local label, run = operation(rng, seq)
        history[seq % 8] = seq .. " " .. label
        local got = run(fs.mountpoint)
        local recs = faults_now()
        local want = run(ref)
        local counted = {}
        for _, r in ipairs(recs) do
          if r.op ~= "release" and r.op ~= "releasedir" then counted[#counted + 1] = r end
        end
        local i = first_difference(got, want)
        if #counted == 0 then
          if i then
            local last = {}
            for k = seq - 7, seq - 1 do last[#last + 1] = history[k % 8] end
            error(string.format("seed %d, operation %d (%s), no fault: step %d answered %s, tmpfs %s "
              .. "(after: %s)", seed, seq, label, i, short(got[i]), short(want[i]), table.concat(last, "; ")), 0)
          end
        else
          total.faults, total.windows = total.faults + #counted, total.windows + 1
          if i then
            if got[i] ~= "EIO" then
              local what = {}
              for _, r in ipairs(counted) do what[#what + 1] = r.op .. " " .. r.path .. " " .. r.shape end
              error(string.format("seed %d, operation %d (%s), faults %s: step %d answered %s, not EIO "
                .. "(tmpfs: %s)", seed, seq, label, table.concat(what, ", "), i, short(got[i]),
                short(want[i])), 0)
            end
            total.visible = total.visible + 1
          end
        end
        if #recs > 0 then resync() end
      end
    end

    setup(function()
      ctl = H.check(sys.open(fs:path(".faults"), O_RDWR))
      for _, d in ipairs { "d0", "d1", "d0/d2" } do
        control("pause")
        H.check(sys.mkdir(fs:path(d), octal "755"))
        H.check(sys.mkdir(ref .. "/" .. d, octal "755"))
        control("resume")
      end
    end)

    -- The faults still pending are read: a release comes after its close
    -- returned, so this waits until every handle is released.
    local function drain()
      control("pause")
      local open
      H.wait_until(function()
        open = select(3, faults_now())
        return open == 0
      end, 10)
      assert(open == 0, open .. " handles not released after 10 s")
    end

    -- The host logs a call's line after the call returned: waits until the
    -- lines that count() finds match the faults recorded (10 s at most),
    -- then returns both.
    local function logged(count)
      local lines
      H.wait_until(function()
        lines = count()
        return same_counts(lines, total.records)
      end, 10)
      return lines, total.records
    end

    if debug then
      it("answers EIO to the kernel for each faulty call, and only for those", function()
        math.randomseed(seed)
        round(math.random, 1, 300)
        drain()
        assert(total.faults > 0, "faults were made")
        local answered, records = logged(function()
          return count_lines(fs:log(), "^luafs: ([%a_]+) (.*)$", function(rest)
            local path = rest:match("^(%S+) %-> %-5 %(")
            if not path then return false end
            return path ~= "-" and path or nil
          end)
        end)
        assert.same(records, answered)
      end)
      return
    end

    it("stays up, answers each faulty call with EIO and every other call correctly, "
        .. "and keeps its memory flat", function()
      local rng = math.random
      math.randomseed(seed)
      round(rng, 1, ROUND)
      control("gc")
      local rss1, kb1 = rss_kib(fs.pid), select(2, faults_now())
      round(rng, ROUND + 1, ROUND)
      control("gc")
      local rss2, kb2 = rss_kib(fs.pid), select(2, faults_now())
      assert(fs.m:alive(), "the host is up")
      io.stderr:write(string.format("# %s seed %d: %d operations, %d faults in %d operations, "
        .. "%d answered EIO; RSS %d -> %d KiB, Lua %d -> %d KiB\n", base, seed, 2 * ROUND, total.faults,
        total.windows, total.visible, rss1, rss2, kb1, kb2))
      assert(total.visible > 0, "some faults reached the caller")
      -- leaks show in the Lua memory below, and LeakSanitizer's report
      local slack = H.sanitized(fs.pid) and 8192 or 4096
      assert(rss2 - rss1 < slack, string.format("RSS grew from %d to %d KiB", rss1, rss2))
      -- memfs keeps what was written: at most some 100 KiB per name
      assert(kb2 - kb1 < 2048, string.format("Lua memory grew from %d to %d KiB", kb1, kb2))
    end)

    it("logs one line for each fault, naming the operation and the path", function()
      drain()
      local lines, records = logged(function()
        return count_lines(fs:log(), "^luafs: ([%a_]+)(.*)$", function(rest)
          -- a script's error has its traceback; a refused value the callback's place
          if not (rest:find("stack traceback:", 1, true) or rest:match("^[^:]*: [^:]+%.lua:%d+: ")) then
            return false
          end
          return rest:match("^ (/[^:]*): ")
        end)
      end)
      assert.same(records, lines)
    end)
  end)
end

fault_suite("memfs")
fault_suite("passthrough")
fault_suite("memfs", true)
fault_suite("passthrough", true)
