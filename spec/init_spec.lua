-- spec/init_spec.lua: init(conn, cfg) through spec/fixtures/ops_init.lua:
-- every field of struct fuse_conn_info and struct fuse_config is readable,
-- the assignable ones take what init sets, and the settings change what
-- the kernel does (calls counted in the fixture). Also readdir with
-- FUSE_READDIR_PLUS: entries carrying a stat table spare the kernel's
-- lookups.
local H = require "spec.helpers"

local testing, luafs, sys, lfs = H.testing, H.luafs, H.sys, H.lfs
local q = H.quote

local FIXTURE = H.fixture("ops_init.lua")
local FDATA = "0123456789abcdef\n"
local PYTHON = io.open("/usr/bin/python3", "rb") and "/usr/bin/python3" or "python3"

-- Mounts the fixture with settings (see ops_init.lua) for one test.
local function mount(settings, options)
  return testing.mount(FIXTURE, { args = settings, options = options })
end

-- Runs code in the host of m; returns its results, raising if it raised.
local function run(m, code)
  local f = assert(io.open(m:path("eval"), "r+b"))
  assert(f:write(code))
  assert(f:flush())
  assert(f:seek("set", 0))
  local out = f:read("a")
  f:close()
  local r = assert(load(out, "=eval result", "t", { math = math }))()
  assert(r[1], "the code raised: " .. tostring(r[2]))
  return table.unpack(r, 2, r.n)
end

-- with(settings, f): f(m) with the fixture mounted, unmounted after.
local function with(settings, f, options)
  local m = mount(settings, options)
  local ok, err = pcall(f, m)
  local clean, problem = m:unmount { strict = false }
  if not ok then error(tostring(err) .. "\n--- host log ---\n" .. m:log(), 0) end
  assert(clean, problem)
end

local function getattrs(m, path) return run(m, "return S.getattr[" .. string.format("%q", path) .. "] or 0") end

describe("init(conn, cfg)", function()
  it("sees every field of conn and cfg, and reads back what it set", function()
    local settings = {
      "cfg.entry_timeout=2.5", "cfg.attr_timeout=3.25", "cfg.negative_timeout=4",
      "cfg.ac_attr_timeout=0.5", "cfg.ac_attr_timeout_set=true",
      "cfg.set_uid=true", "cfg.uid=1234", "cfg.set_gid=true", "cfg.gid=4321",
      "cfg.set_mode=true", "cfg.umask=18", "cfg.intr=true", "cfg.intr_signal=12",
      "cfg.hard_remove=true", "cfg.use_ino=true", "cfg.readdir_ino=true",
      "cfg.direct_io=true", "cfg.kernel_cache=true", "cfg.auto_cache=true",
      "cfg.no_rofd_flush=true", "cfg.nullpath_ok=true", "cfg.debug=false",
      "conn.max_write=65536", "conn.max_readahead=65536", "conn.max_background=20",
      "conn.congestion_threshold=15", "conn.time_gran=1000",
      "conn.want-=ASYNC_READ",
    }
    with(settings, function(m)
      local t = run(m, "return { before = S.before, after = S.after, fields = { S.CONN_FIELDS, S.CFG_FIELDS } }")
      local conn_fields, cfg_fields = t.fields[1], t.fields[2]
      -- every field was there (nil would have raised, as unknown fields do)
      for _, k in ipairs(conn_fields) do assert.is_not_nil(t.before.conn[k], "conn." .. k) end
      for _, k in ipairs(cfg_fields) do
        if k ~= "modules" then assert.is_not_nil(t.before.cfg[k], "cfg." .. k) end
      end
      -- what libfuse starts with
      local b = t.before
      assert.are.equal(7, b.conn.proto_major)
      assert.is_true(b.conn.proto_minor >= 31)
      assert.are.equal(1.0, b.cfg.entry_timeout)
      assert.are.equal(1.0, b.cfg.attr_timeout)
      assert.are.equal(0.0, b.cfg.negative_timeout)
      assert.is_false(b.cfg.use_ino)
      assert.is_false(b.cfg.hard_remove)
      assert.is_false(b.cfg.show_help)
      assert.are.equal(0, b.conn.want & ~b.conn.capable)
      -- what init set
      local a = t.after
      assert.same({ 2.5, 3.25, 4.0, 0.5, true }, { a.cfg.entry_timeout, a.cfg.attr_timeout,
        a.cfg.negative_timeout, a.cfg.ac_attr_timeout, a.cfg.ac_attr_timeout_set })
      assert.same({ true, 1234, true, 4321, true, 18 }, { a.cfg.set_uid, a.cfg.uid, a.cfg.set_gid,
        a.cfg.gid, a.cfg.set_mode, a.cfg.umask })
      assert.same({ true, 12, 0 }, { a.cfg.intr, a.cfg.intr_signal, a.cfg.remember })
      for _, k in ipairs { "hard_remove", "use_ino", "readdir_ino", "direct_io", "kernel_cache",
                           "auto_cache", "no_rofd_flush", "nullpath_ok" } do
        assert.is_true(a.cfg[k], "cfg." .. k)
      end
      assert.is_false(a.cfg.debug)
      assert.same({ 65536, 65536, 20, 15, 1000 }, { a.conn.max_write, a.conn.max_readahead,
        a.conn.max_background, a.conn.congestion_threshold, a.conn.time_gran })
      assert.are.equal(b.conn.want & ~luafs.FUSE_CAP_ASYNC_READ, a.conn.want)
      assert.are.equal(b.conn.capable, a.conn.capable)
    end)
  end)

  it("sees each FUSE_CAP_* flag in capable, and may set and clear each capable one in want", function()
    with({}, function(m)
      local caps = run(m, "return S.caps")
      local n = 0
      for name, c in pairs(caps) do
        n = n + 1
        assert.are.equal(luafs[name], c.bit)
        if c.want then assert.is_true(c.capable, name .. " wanted but not capable") end
      end
      assert.is_true(n >= 20, n .. " FUSE_CAP_* constants")
      assert.is_true(caps.FUSE_CAP_READDIRPLUS.capable)
    end)
    -- flip every capable bit in want, one mount each way
    with({}, function(m)
      local caps = run(m, "return S.caps")
      local set, clear = {}, {}
      for name, c in pairs(caps) do
        if c.capable then
          local short = name:gsub("^FUSE_CAP_", "")
          set[#set + 1] = "conn.want+=" .. short
          clear[#clear + 1] = short
        end
      end
      -- writeback cache and the rest, all at once: the mount still works
      with(set, function(m2)
        local a = run(m2, "return S.after.conn")
        assert.are.equal(a.capable, a.want, "every capable bit wanted")
        assert.are.equal(FDATA, H.read(m2:path("f")))
      end)
      local unset = {}
      for _, short in ipairs(clear) do unset[#unset + 1] = "conn.want-=" .. short end
      with(unset, function(m2)
        local a = run(m2, "return S.after.conn")
        assert.are.equal(0, a.want, "nothing wanted")
        assert.are.equal(FDATA, H.read(m2:path("f")))
      end)
    end)
  end)

  it("refuses read-only fields, unknown fields, want beyond capable, and use after init", function()
    with({}, function(m)
      local r = run(m, [[
        local t = {}
        -- init has returned: conn and cfg refuse everything
        t.conn_late = { pcall(function() return S.conn.want end) }
        t.cfg_late = { pcall(function() S.cfg.attr_timeout = 5 end) }
        return t
      ]])
      assert.is_false(r.conn_late[1])
      assert.matches("luafs.ConnInfo used after init returned", r.conn_late[2])
      assert.is_false(r.cfg_late[1])
      assert.matches("luafs.Config used after init returned", r.cfg_late[2])
    end)
    -- in init, a bad setting fails the mount with a clear message
    for setting, message in pairs {
      ["conn.capable=0"] = "luafs.ConnInfo field 'capable' is read-only",
      ["conn.proto_major=8"] = "luafs.ConnInfo field 'proto_major' is read-only",
      ["cfg.show_help=true"] = "luafs.Config field 'show_help' is read-only",
      ["cfg.remember=-1"] = "luafs.Config field 'remember' is read-only",
      ["conn.max_read=99999"] = "luafs.ConnInfo field 'max_read' is read-only",
      ["cfg.nosuch=1"] = "luafs.Config has no field 'nosuch'",
      ["conn.want=4294967295"] = "luafs.ConnInfo field 'want': 0x",
      ["conn.max_write=-1"] = "out of range",
      ["conn.max_write=100"] = "max_write must be from 4096 to 1048576",
      ["cfg.intr_signal=4294967296"] = "out of range",
    } do
      local dir = H.temp_dir()
      local code, out = testing.run({ FIXTURE, dir, "-f", "--", setting }, { timeout = 20 })
      H.cleanup_mountpoint(dir)
      assert.are_not.equal(0, code, setting)
      assert.truthy(out:find(message, 1, true), setting .. ": " .. out)
    end
  end)
end)

describe("cfg settings take effect", function()
  it("attr_timeout and entry_timeout: cached attributes spare getattr calls", function()
    with({ "cfg.entry_timeout=60", "cfg.attr_timeout=60" }, function(m)
      for _ = 1, 5 do assert(sys.stat(m:path("f"))) end
      assert.are.equal(1, getattrs(m, "/f"))
    end)
    with({ "cfg.entry_timeout=60", "cfg.attr_timeout=0" }, function(m)
      for _ = 1, 5 do assert(sys.stat(m:path("f"))) end
      assert.is_true(getattrs(m, "/f") >= 5)
    end)
  end)

  it("negative_timeout: a missing name is asked for once", function()
    with({ "cfg.negative_timeout=60" }, function(m)
      for _ = 1, 4 do assert.are.equal("ENOENT", H.err(sys.stat, m:path("missing"))) end
      assert.are.equal(1, getattrs(m, "/missing"))
    end)
    with({ "cfg.negative_timeout=0" }, function(m)
      for _ = 1, 4 do assert.are.equal("ENOENT", H.err(sys.stat, m:path("missing"))) end
      assert.are.equal(4, getattrs(m, "/missing"))
    end)
  end)

  it("use_ino: stat shows the script's inode numbers", function()
    with({ "cfg.use_ino=true" }, function(m)
      assert.are.equal(1001, sys.stat(m:path("f")).ino)
      assert.are.equal(1002, sys.stat(m:path("z")).ino)
    end)
    with({ "cfg.use_ino=false" }, function(m)
      local ino = sys.stat(m:path("f")).ino
      assert.are_not.equal(1001, ino)
    end)
  end)

  it("readdir_ino: directory entries carry the inode numbers stat shows", function()
    -- libfuse knows an entry's inode number once the name was looked up:
    -- stat every entry first, then compare the directory's d_ino
    local script = "import os, sys\nd = sys.argv[1]\n"
      .. "ino = {n: os.lstat(os.path.join(d, n)).st_ino for n in os.listdir(d)}\n"
      .. "for e in os.scandir(d):\n"
      .. "    print(e.name, e.inode(), ino[e.name])\n"
    local function pairs_of(m)
      local code, out = H.shell(PYTHON .. " -c " .. q(script) .. " " .. q(m:path("plain")))
      assert(code == 0, out)
      local same, n = 0, 0
      for _, d, s in out:gmatch("(%S+) (%d+) (%d+)") do
        n = n + 1
        if d == s then same = same + 1 end
      end
      return same, n
    end
    with({ "cfg.readdir_ino=true", "conn.want-=READDIRPLUS" }, function(m)
      local same, n = pairs_of(m)
      assert.are.equal(20, n)
      assert.are.equal(20, same)
    end)
    with({ "cfg.readdir_ino=false", "conn.want-=READDIRPLUS" }, function(m)
      local same, n = pairs_of(m)
      assert.are.equal(20, n)
      assert.are.equal(0, same)
    end)
  end)

  it("direct_io: every read reaches the script, whatever the size says", function()
    with({ "cfg.direct_io=true" }, function(m)
      assert.are.equal(FDATA, H.read(m:path("z"))) -- size 0 in getattr
      local before = run(m, "return S.reads")
      for _ = 1, 3 do assert.are.equal(FDATA, H.read(m:path("f"))) end
      assert.is_true(run(m, "return S.reads") - before >= 3)
    end)
    with({ "cfg.direct_io=false" }, function(m)
      assert.are.equal("", H.read(m:path("z")))
    end)
  end)

  it("kernel_cache: data cached by one open serves the next", function()
    local settings = { "cfg.attr_timeout=60", "cfg.entry_timeout=60" }
    with({ settings[1], settings[2], "cfg.kernel_cache=true" }, function(m)
      assert.are.equal(FDATA, H.read(m:path("f")))
      local before = run(m, "return S.reads")
      for _ = 1, 3 do assert.are.equal(FDATA, H.read(m:path("f"))) end
      assert.are.equal(before, run(m, "return S.reads"))
    end)
    with({ settings[1], settings[2], "cfg.kernel_cache=false" }, function(m)
      assert.are.equal(FDATA, H.read(m:path("f")))
      local before = run(m, "return S.reads")
      for _ = 1, 3 do assert.are.equal(FDATA, H.read(m:path("f"))) end
      assert.is_true(run(m, "return S.reads") - before >= 3)
    end)
  end)

  it("hard_remove: unlinking an open file unlinks it, instead of hiding it", function()
    local function scenario(m)
      H.write(m:path("u"), "x")
      local f = assert(io.open(m:path("u"), "rb"))
      assert(sys.unlink(m:path("u")))
      f:close()
      return H.wait_until(function()
        local calls = run(m, "return S.calls")
        if #calls >= 1 and (calls[1]:match("^unlink") or #calls >= 2) then return calls end
      end, 3) or run(m, "return S.calls")
    end
    with({ "cfg.hard_remove=true" }, function(m)
      assert.same({ "unlink /u" }, scenario(m))
    end)
    with({ "cfg.hard_remove=false" }, function(m)
      local calls = scenario(m)
      assert.are.equal(2, #calls, table.concat(calls, "; "))
      local hidden = calls[1]:match("^rename /u (/%.fuse_hidden%x+)$")
      assert.truthy(hidden, calls[1])
      assert.are.equal("unlink " .. hidden, calls[2])
    end)
  end)

  it("set_uid, set_gid, set_mode: owners and modes as the settings say", function()
    with({ "cfg.set_uid=true", "cfg.uid=1234", "cfg.set_gid=true", "cfg.gid=4321",
           "cfg.set_mode=true", "cfg.umask=" .. tonumber("027", 8) }, function(m)
      -- set_mode: the permissions are 0777 less the umask, whatever getattr said
      local st = sys.stat(m:path("f"))
      assert.same({ 1234, 4321, luafs.S_IFREG | tonumber("750", 8) }, { st.uid, st.gid, st.mode })
    end)
  end)

  it("nullpath_ok: operations on open files get no path", function()
    with({ "cfg.nullpath_ok=true" }, function(m)
      assert.are.equal(FDATA, H.read(m:path("f")))
      assert.same({ "nil" }, run(m, "return S.read_paths"))
    end)
    with({ "cfg.nullpath_ok=false" }, function(m)
      assert.are.equal(FDATA, H.read(m:path("f")))
      assert.same({ "/f" }, run(m, "return S.read_paths"))
    end)
  end)

  it("no_rofd_flush: no flush for descriptors opened read-only", function()
    with({ "cfg.no_rofd_flush=true" }, function(m)
      for _ = 1, 3 do H.read(m:path("f")) end
      assert.are.equal(0, run(m, "return S.flushes"))
      H.write(m:path("f"), "w")
      assert.are.equal(1, run(m, "return S.flushes"))
    end)
    with({ "cfg.no_rofd_flush=false" }, function(m)
      for _ = 1, 3 do H.read(m:path("f")) end
      assert.are.equal(3, run(m, "return S.flushes"))
    end)
  end)

  it("debug: libfuse logs the lookups", function()
    with({ "cfg.debug=true" }, function(m)
      assert(sys.stat(m:path("f")))
      assert.truthy(H.log_line(m, "LOOKUP /f"), m:log())
    end)
  end)
end)

describe("conn settings take effect", function()
  it("max_write: writes arrive in pieces of at most that size", function()
    with({ "conn.max_write=4096" }, function(m)
      H.write(m:path("f"), string.rep("w", 65536))
      assert.are.equal(4096, run(m, "return S.max_write"))
      assert.are.equal(65536, sys.stat(m:path("f")).size)
    end)
    with({}, function(m)
      H.write(m:path("f"), string.rep("w", 65536))
      assert.are.equal(65536, run(m, "return S.max_write"))
    end)
  end)

  it("FUSE_CAP_ATOMIC_O_TRUNC: O_TRUNC reaches open, or a truncate", function()
    with({ "conn.want+=ATOMIC_O_TRUNC" }, function(m)
      H.write(m:path("f"), "new")
      local flags, truncates = run(m, "return S.open_flags[#S.open_flags], S.truncates")
      assert.are_not.equal(0, flags & luafs.O_TRUNC)
      assert.are.equal(0, truncates)
      assert.are.equal("new", H.read(m:path("f")))
    end)
    with({ "conn.want-=ATOMIC_O_TRUNC" }, function(m)
      H.write(m:path("f"), "new")
      local flags, truncates = run(m, "return S.open_flags[#S.open_flags], S.truncates")
      assert.are.equal(0, flags & luafs.O_TRUNC)
      assert.are.equal(1, truncates)
      assert.are.equal("new", H.read(m:path("f")))
    end)
  end)
end)

describe("readdir with FUSE_READDIR_PLUS", function()
  local TIMEOUTS = { "cfg.entry_timeout=60", "cfg.attr_timeout=60", "cfg.use_ino=true" }

  -- Lists dir, then stats each entry; returns the stats by name and how
  -- many getattr calls the entries cost.
  local function list_and_stat(m, dir)
    local names = {}
    for name in lfs.dir(m:path(dir)) do
      if name ~= "." and name ~= ".." then names[#names + 1] = name end
    end
    local stats = {}
    for _, name in ipairs(names) do stats[name] = assert(sys.lstat(m:path(dir .. "/" .. name))) end
    local calls = run(m, [[
      local n = 0
      for path, c in pairs(S.getattr) do
        if path:match("^/%a+/a%d+$") then n = n + c end
      end
      return n
    ]])
    return stats, calls, #names
  end

  it("fills entries that carry a stat table with FUSE_FILL_DIR_PLUS: no getattr follows", function()
    with(TIMEOUTS, function(m)
      local stats, calls, n = list_and_stat(m, "plus")
      assert.are.equal(20, n)
      assert.are.equal(0, calls, "getattr calls for entries that came with their stat")
      for i = 1, 20 do
        local st = stats["a" .. i]
        assert.same({ 2000 + i, 10 * i, 4000 + i, 5000 + i, 1000000 + i },
          { st.ino, st.size, st.uid, st.gid, st.mtime }, "a" .. i)
      end
      -- the first call, at offset 0 (the kernel may page on without plus)
      local flags = run(m, "return S.readdir_flags[1]")
      assert.are.equal(luafs.FUSE_READDIR_PLUS, flags & luafs.FUSE_READDIR_PLUS)
    end)
  end)

  it("lists a whole listing with stat tables, whose attributes libfuse 3.14 drops", function()
    with(TIMEOUTS, function(m)
      local stats, _, n = list_and_stat(m, "whole")
      assert.are.equal(20, n)
      assert.are.equal(2001, stats.a1.ino)
      assert.are.equal(200, stats.a20.size)
    end)
  end)

  it("leaves entries without a stat table to lookups", function()
    with(TIMEOUTS, function(m)
      local _, calls, n = list_and_stat(m, "plain")
      assert.are.equal(20, n)
      assert.are.equal(20, calls)
    end)
  end)

  it("is not asked for when init clears FUSE_CAP_READDIRPLUS", function()
    with({ TIMEOUTS[1], TIMEOUTS[2], TIMEOUTS[3], "conn.want-=READDIRPLUS" }, function(m)
      local stats, calls = list_and_stat(m, "plus")
      assert.are.equal(20, calls)
      assert.are.equal(2001, stats.a1.ino)
      local all = run(m, "return S.readdir_flags")
      assert.is_true(#all > 0)
      for _, flags in ipairs(all) do
        assert.are.equal(0, flags & luafs.FUSE_READDIR_PLUS)
      end
    end)
  end)
end)
