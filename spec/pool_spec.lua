-- spec/pool_spec.lua: a pool of Lua states (-o states=N), through real
-- mounts of spec/fixtures/pool_fs.lua, with the threads of a small C client
-- (spec/fixtures/pool_client.c, compiled into a temporary directory).
--
-- The slow reads pass spec/fixtures/pool_gate.lua: the spec holds them in
-- their states, counts the states busy from outside the mount, and lets
-- them go, so that what runs at once is seen, not timed.  How much faster
-- a pool serves blocking calls is for scripts/bench/bench to measure.
local H = require "spec.helpers"

local testing, luafs = H.testing, H.luafs
local q = H.quote

local bin, client

local function compile()
  bin = H.temp_dir()
  client = bin .. "/pool_client"
  local code, out = H.shell("cc -O2 -Wall -Wextra -Werror -pthread -o " .. q(client) .. " "
    .. q(H.fixture("pool_client.c")))
  assert(code == 0, "cannot compile pool_client.c: " .. out)
end

local function command(args)
  local words = { q(client) }
  for _, w in ipairs(args) do words[#words + 1] = q(w) end
  return table.concat(words, " ")
end

-- Runs the client to the end; returns its output lines.
local function run(...)
  local code, out = H.shell(command { ... })
  assert(code == 0, "pool_client failed (" .. code .. "): " .. out)
  return H.lines(out)
end

-- Starts the client in the background; .pid is its pid, :finish()
-- returns its lines.
local function start(...)
  local p, pid = H.spawn(command { ... } .. " 2>&1")
  return {
    pid = pid,
    finish = function()
      local out = p:read("a")
      p:close()
      return H.lines(out)
    end,
  }
end

-- "reader I MS RESULT" lines -> results by reader
local function readers(lines)
  local results = {}
  for _, line in ipairs(lines) do
    local i, result = line:match("^reader (%d+) %d+ (.*)$")
    if i then results[tonumber(i)] = { result = result } end
  end
  return results
end

-- Holds the calls through pool_gate.lua with marks in dir (on), or lets
-- them go (off).
local function hold(dir, on)
  if on then H.write(dir .. "/hold", "") else os.remove(dir .. "/hold") end
end

-- How many states are inside pool_gate.lua now, by their marks in dir.
local function busy(dir)
  local n = 0
  for name in H.lfs.dir(dir) do
    if name:match("^busy%-%d+$") then n = n + 1 end
  end
  return n
end

-- Waits until pred() holds (10 s at most), or raises with what.
local function expect(pred, what)
  assert(H.wait_until(pred, 10), what)
end

local function stats(m)
  local s = assert(H.read(m:path("stats")))
  local t = {}
  for k, v in s:gmatch("(%a+)=(%d+)") do t[k] = tonumber(v) end
  return t
end

local function rss_kib(pid)
  local s = assert(H.read("/proc/" .. pid .. "/status"))
  return tonumber(s:match("VmRSS:%s*(%d+)")), tonumber(s:match("Threads:%s*(%d+)"))
end

-- Mounts pool_fs.lua with these host options; notes is where destroy
-- writes.  Returns the mount; the caller unmounts.
local function mount(notes, options, want)
  return testing.mount(H.fixture("pool_fs.lua"), {
    options = options,
    args = function(m) return { m.mountpoint, notes, want } end,
  })
end

describe("a pool of states", function()
  local notes, m

  setup(compile)
  teardown(function() if bin then H.remove(bin) end end)
  before_each(function() notes = H.shm_dir() end)
  after_each(function()
    hold(notes, false)
    if m then
      local clean, problem = m:unmount { strict = false }
      if not clean then io.stderr:write(problem, "\n") end
      m = nil
    end
    H.remove(notes)
  end)

  local function slow(n)
    local paths = {}
    for i = 1, n do paths[i] = m:path("slow" .. ((i - 1) % 8 + 1)) end
    return paths
  end

  -- Starts the readers of paths with the gate held; once ready(bg) holds,
  -- lets them go and returns their results.
  local function held_readers(paths, ready, what)
    hold(notes, true)
    local bg = start("readers", table.unpack(paths))
    local ok, err = pcall(expect, function() return ready(bg) end, what)
    hold(notes, false)
    local r = readers(bg.finish())
    assert(ok, err)
    return r
  end

  it("serves four blocking reads in parallel with four states, one at a time with one", function()
    m = mount(notes, { "-o", "states=4" })
    local r4 = held_readers(slow(4), function() return busy(notes) == 4 end, "four states never busy at once")
    local seen = {}
    for i = 1, 4 do
      local state = r4[i].result:match("^state=(%d) private=%d$")
      assert(state, "reader " .. i .. ": " .. r4[i].result)
      seen[state] = true
    end
    local distinct = 0
    for _ in pairs(seen) do distinct = distinct + 1 end
    assert.are.equal(4, distinct)
    assert.are.equal(4, stats(m).most)
    m:unmount()

    -- one state: one read inside while the other three wait for it
    m = mount(notes, { "-o", "states=1" })
    local r1 = held_readers(slow(4), function(bg)
      return busy(notes) == 1 and H.blocked(bg.pid) == 4
    end, "never one read served while three waited")
    for i = 1, 4 do assert.are.equal("state=1 private=1", r1[i].result) end
    local s = stats(m)
    assert.are.equal(1, s.most)
    assert.are.equal(0, s.overlaps)
  end)

  it("keeps a handle's Lua table across 1000 reads from 8 threads", function()
    m = mount(notes, { "-o", "states=4" })
    local lines = run("shared-fd", m:path("affine"), "8", "1000")
    assert.are.equal("errors 0", lines[#lines])
    local counts, state, id = {}, nil, nil
    for i = 1, #lines - 1 do
      local s, n, h = lines[i]:match("^state=(%d) n=(%d+) id=(%d+)$")
      assert(s, "read " .. i .. ": " .. lines[i])
      state, id = state or s, id or h
      assert.are.equal(state, s)
      assert.are.equal(id, h)
      n = tonumber(n)
      assert.is_nil(counts[n], "count " .. n .. " twice")
      counts[n] = true
    end
    for n = 1, 1000 do assert(counts[n], "count " .. n .. " missing") end
    -- release ran in the same state, with the same table
    assert.are.equal(id .. " 1000\n", H.read(m:path("released")))
    assert.are.equal(0, stats(m).overlaps)
  end)

  -- One descriptor, four threads reading it at once, held until ready(bg).
  local function shared_reads(mode, ready, what)
    m = testing.mount(H.fixture("pool_portable.lua"), { args = { mode, notes } })
    hold(notes, true)
    local bg = start("shared-fd", m:path("slow"), "4", "4")
    local ok, err = pcall(expect, function() return ready(bg) end, what)
    hold(notes, false)
    local lines = bg.finish()
    assert(ok, err)
    assert.are.equal("errors 0", lines[#lines])
    local states, handles = {}, {}
    for i = 1, #lines - 1 do
      local st, fh = lines[i]:match("^state=(%d) fh=(%d+)$")
      assert(st, "read " .. i .. ": " .. lines[i])
      states[st], handles[fh] = true, true
    end
    local most = tonumber(H.read(m:path("most")))
    local released = H.read(m:path("ids"))
    m:unmount()
    m = nil
    local n = 0
    for _ in pairs(states) do n = n + 1 end
    local fh = next(handles)
    assert.is_nil(next(handles, fh), "more than one handle value")
    return n, most, fh, released
  end

  it("serves a portable integer handle from any state, a bound one from its own", function()
    local n, most, fh, released = shared_reads("portable", function() return busy(notes) == 4 end,
      "four states never read the portable handle at once")
    assert.are.equal(4, n)
    assert.are.equal(4, most)
    assert.are.equal(fh .. "\n", released)
    -- the three other states stay idle while the reads wait for the one
    n, most, fh, released = shared_reads("bound", function(bg)
      return busy(notes) == 1 and H.blocked(bg.pid) == 4
    end, "never one read of the bound handle served while three waited")
    assert.are.equal(1, n)
    assert.are.equal(1, most)
    assert.are.equal(fh .. "\n", released)
  end)

  it("spreads files opened together over the states, each served by its own", function()
    m = mount(notes, { "-o", "states=4" })
    local fds, seen = {}, {}
    local ok, err = pcall(function()
      for i = 1, 4 do fds[i] = H.check(H.sys.open(m:path("affine"), luafs.O_RDONLY)) end
      for round = 1, 3 do
        for i = 1, 4 do
          local line = H.check(H.sys.pread(fds[i], 100, 0))
          local s, n = line:match("^state=(%d) n=(%d+)")
          assert(s, line)
          assert.are.equal(round, tonumber(n))
          if round == 1 then seen[s] = i else assert.are.equal(i, seen[s]) end
        end
      end
    end)
    for i = 1, #fds do H.sys.close(fds[i]) end
    assert(ok, err)
    local distinct = 0
    for _ in pairs(seen) do distinct = distinct + 1 end
    assert.are.equal(4, distinct)
  end)

  it("queues requests when every state is busy, without deadlock", function()
    m = mount(notes, { "-o", "states=2" })
    -- two reads in the two states, ten waiting
    local r = held_readers(slow(12), function(bg)
      return busy(notes) == 2 and H.blocked(bg.pid) == 12
    end, "never two reads served while ten waited")
    for i = 1, 12 do
      assert.truthy(r[i].result:match("^state=%d private=%d$"), "reader " .. i .. ": " .. r[i].result)
    end
    local s = stats(m)
    assert.are.equal(2, s.most)
    assert.are.equal(0, s.overlaps)
  end)

  it("answers a callback that stats its own mountpoint: another state, or EDEADLK at once", function()
    m = mount(notes, { "-o", "states=1" })
    local st = assert(H.lfs.attributes(m:path("self")))
    assert.are.equal(luafs.EDEADLK, st.size)
    assert.truthy(H.log_line(m, "EDEADLK"))
    m:unmount()

    m = mount(notes, { "-o", "states=2" })
    st = assert(H.lfs.attributes(m:path("self")))
    assert.are.equal(0, st.size)

    -- with both states busy, the request waits for one, then its inner
    -- stat finds the other free or gets EDEADLK; nothing hangs
    hold(notes, true)
    local bg = start("readers", table.unpack(slow(4)))
    local p, pid
    local ok, err = pcall(function()
      expect(function() return busy(notes) == 2 end, "the two states never both busy")
      p, pid = H.spawn("stat -c %s " .. q(m:path("self")))
      expect(function() return H.wchan(pid) == "request_wait_answer" end, "the stat never waited")
    end)
    hold(notes, false)
    local size = p and p:read("a")
    if p then p:close() end
    local r = readers(bg.finish())
    assert(ok, err)
    size = tonumber(size)
    assert.truthy(size == 0 or size == luafs.EDEADLK, "size " .. tostring(size))
    for i = 1, 4 do assert.truthy(r[i].result:match("^state="), r[i].result) end
  end)

  it("unmounts on SIGTERM with requests in flight, and they end", function()
    m = mount(notes, { "-o", "states=2" })
    hold(notes, true)
    local bg = start("readers", table.unpack(slow(6)))
    local ok, err = pcall(function()
      expect(function() return busy(notes) == 2 end, "no reads in flight")
      assert.is_true(m:kill("TERM"))
    end)
    hold(notes, false)
    assert(ok, err)
    assert.are.equal(0, m:wait(10), m:log())
    local r = readers(bg.finish())
    for i = 1, 6 do
      -- a read served before the exit, or one that the exit cut off
      assert.truthy(r[i].result:match("^state=%d") or r[i].result:match("^errno=%d+$"), r[i].result)
    end
  end)

  it("finishes the requests in flight at a lazy unmount, then exits", function()
    m = mount(notes, { "-o", "states=2" })
    -- two reads in flight, and the other two readers held in the mount
    hold(notes, true)
    local bg = start("readers", table.unpack(slow(4)))
    local ok, err = pcall(function()
      expect(function() return busy(notes) == 2 and H.blocked(bg.pid) == 4 end, "no reads in flight")
      local code, out = H.shell("fusermount3 -u -z " .. q(m.mountpoint))
      assert(code == 0, out)
    end)
    hold(notes, false)
    assert(ok, err)
    local r = readers(bg.finish())
    for i = 1, 4 do assert.truthy(r[i].result:match("^state=%d private=%d$"), r[i].result) end
    assert.are.equal(0, m:wait(10), m:log())
  end)

  it("keeps the number of states and the memory flat while libfuse churns threads", function()
    m = mount(notes, { "-o", "states=4,max_idle_threads=1" })
    run("stat", m:path("whoami"), "8", "5000", tostring(m.pid))
    local before = stats(m)
    local rss0 = rss_kib(m.pid)
    local lines = run("stat", m:path("whoami"), "8", "100000", tostring(m.pid))
    local n, errors, distinct, most = lines[1]:match(
      "^stats (%d+) errors (%d+) distinct%-threads (%d+) most%-threads (%d+)$")
    assert(n, lines[1])
    local rss1, threads = rss_kib(m.pid)
    local after = stats(m)
    print(("# 100000 stats, max_idle_threads=1: %s host threads seen, at most %s at once, %d now;"
      .. " RSS %d KiB before, %d KiB after"):format(distinct, most, threads, rss0, rss1))
    assert.are.equal("0", errors)
    assert.is_true(after.getattr - before.getattr >= 100000)
    -- libfuse retired and created threads; states stayed four
    assert.is_true(tonumber(distinct) > tonumber(most), lines[1])
    assert.are.equal(4, after.states)
    assert.are.equal(4, after.inits)
    assert.are.equal(0, after.overlaps)
    -- AddressSanitizer keeps a little bookkeeping for every thread ever
    -- started (under 1 KiB each here); the host itself stays flat.
    local slack = 4096
    if H.sanitized(m.pid) then
      slack = slack + 2 * tonumber(distinct)
    end
    assert.is_true(rss1 < rss0 * 1.25 + slack, ("RSS %d KiB -> %d KiB"):format(rss0, rss1))
  end)

  it("keeps the other states serving when a callback raises in one", function()
    m = mount(notes, { "-o", "states=4" })
    local r = readers(run("readers", m:path("boom"), m:path("slow1"), m:path("slow2"), m:path("slow3")))
    assert.are.equal("errno=" .. luafs.EIO, r[1].result)
    for i = 2, 4 do assert.truthy(r[i].result:match("^state=%d private=%d$"), r[i].result) end
    assert.truthy(H.log_line(m, "boom in state"))
    -- every state still serves, the one that raised included
    local rr = held_readers(slow(4), function() return busy(notes) == 4 end, "four states never busy at once")
    local seen = {}
    for i = 1, 4 do seen[rr[i].result:match("^state=(%d)")] = true end
    for s = 1, 4 do assert(seen[tostring(s)], "state " .. s .. " did not serve") end
  end)

  it("runs init in every state, each with its own private value, and destroy in every state", function()
    m = mount(notes, { "-o", "states=4" })
    assert.are.equal(4, stats(m).inits)
    -- four reads held at once, one in each state
    local r = held_readers(slow(4), function() return busy(notes) == 4 end, "four states never busy at once")
    local seen = {}
    for i = 1, 4 do
      local s, p = r[i].result:match("^state=(%d) private=(%d)$")
      assert(s, r[i].result)
      assert.are.equal(s, p)
      seen[s] = true
    end
    for s = 1, 4 do assert(seen[tostring(s)], "state " .. s .. " did not serve") end
    m:unmount()
    m = nil
    for s = 1, 4 do
      assert.are.equal(("state=%d private=init of state %d\n"):format(s, s),
        H.read(notes .. "/destroy-" .. s))
    end
  end)

  it("lets every state call luafs.invalidate_path", function()
    m = mount(notes, { "-o", "states=4" })
    -- files opened one after the other go to the four states in turn
    local fds, seen = {}, {}
    local ok, err = pcall(function()
      for i = 1, 4 do fds[i] = H.check(H.sys.open(m:path("inval"), luafs.O_RDONLY)) end
      for i = 1, 4 do
        local line = H.check(H.sys.pread(fds[i], 100, 0))
        local s = line:match("^state=(%d) invalidated=true\n$")
        assert(s, line)
        seen[s] = true
      end
    end)
    for i = 1, #fds do H.sys.close(fds[i]) end
    assert(ok, err)
    for s = 1, 4 do assert(seen[tostring(s)], "state " .. s .. " did not serve") end
    assert.is_nil(m:log():match("invalidate"))
  end)

  it("wakes a poller through a PollHandle kept in a state other than the first, from another thread", function()
    m = mount(notes, { "-o", "states=4" })
    local a = m:path("affine")
    local lines = run("poll", m:path("pollme"), "-", a, a, a)
    assert.are.equal("state=4 ready=false", lines[1])
    local ev, ms = (lines[2] or ""):match("^ready revents=0x(%x+) after (%d+) ms$")
    assert(ev, table.concat(lines, "\n"))
    assert.is_true(tonumber(ev, 16) & luafs.POLLIN ~= 0)
    assert.is_true(tonumber(ms) < 9000, lines[2])
    assert.are.equal("state=4 ready=true", lines[3])
    assert.are.equal(0, stats(m).overlaps)
  end)

  it("wakes a poller from another state, through a PollHandle kept in luafs.shared", function()
    m = mount(notes, { "-o", "states=4" })
    local a = m:path("affine")
    -- /pollx opens in state 4; /kick, opened later, in state 1
    local lines = run("poll", m:path("pollx"), m:path("kick"), a, a, a)
    assert.are.equal("state=4 kicked by=nil", lines[1])
    local ev, ms = (lines[2] or ""):match("^ready revents=0x(%x+) after (%d+) ms$")
    assert(ev, table.concat(lines, "\n"))
    assert.is_true(tonumber(ev, 16) & luafs.POLLIN ~= 0)
    assert.is_true(tonumber(ms) < 9000, lines[2])
    assert.are.equal("state=4 kicked by=1", lines[3])
  end)

  it("takes the number of states from the script, and the command line over it", function()
    m = mount(notes, {}, "3")
    assert.are.equal(3, stats(m).states)
    assert.are.equal(3, stats(m).inits)
    m:unmount()
    m = mount(notes, { "-o", "states=2" }, "3")
    assert.are.equal(2, stats(m).states)
    assert.are.equal(2, stats(m).inits)
  end)

  it("refuses a bad number of states", function()
    for _, bad in ipairs { "0", "1025", "two", "" } do
      local code, out = testing.run({ H.fixture("pool_fs.lua"), notes, "-f", "-o", "states=" .. bad })
      assert.are.equal(1, code)
      assert.truthy(out:find("states=" .. bad .. ": expected a number of Lua states from 1 to 1024", 1, true), out)
    end
  end)
end)
