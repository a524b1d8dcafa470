-- spec/poll_spec.lua: lua/examples/poll.lua, with poll(2) in a C client
-- (spec/fixtures/poll_client.c, compiled into a temporary directory): /out
-- is not readable while nothing is queued, a poll that waits on it wakes up
-- when /feed is written, and the data arrives.  A test writes only once the
-- client sleeps in poll(2) (H.in_poll): by then the kernel has asked the
-- filesystem's poll and handed over the handle that the write notifies.
local H = require "spec.helpers"

local testing, luafs, sys = H.testing, H.luafs, H.sys
local q = H.quote

-- poll(2) reports only the events asked for (and errors): POLLIN, POLLOUT
local POLLIN, POLLOUT = luafs.POLLIN, luafs.POLLOUT

-- "ready revents=0x41 after 12 ms" -> "ready", 0x41, 12
local function parse(line)
  assert(line, "the client printed nothing more")
  local what, rest = line:match("^(%a+) (.*)$")
  if what == "ready" then
    local ev, ms = rest:match("^revents=0x(%x+) after (%d+) ms$")
    return what, tonumber(ev, 16), tonumber(ms)
  end
  if what == "timeout" then return what, nil, tonumber(rest:match("^after (%d+) ms$")) end
  error("unexpected line from the client: " .. line)
end

-- Reads the client's next report, which must be a wake-up with POLLIN
-- before its timeout, and closes the client; returns the data line after
-- the report when with_data.
local function expect_wakeup(p, with_data)
  local what, ev, ms = parse(p:read("l"))
  local data = with_data and p:read("l")
  p:close()
  assert.are.equal("ready", what)
  assert.are.equal(POLLIN, ev)
  assert.is_true(ms < 9000, "returned after " .. ms .. " ms: no wake-up, only the timeout")
  return data
end

describe("poll.lua", function()
  local fs = testing.mounted(H.example("poll.lua"), { once = true })
  local bin, client

  setup(function()
    bin = H.temp_dir()
    client = bin .. "/poll_client"
    local code, out = H.shell("cc -O2 -Wall -Wextra -Werror -o " .. q(client) .. " "
      .. q(H.fixture("poll_client.c")))
    assert(code == 0, "cannot compile poll_client.c: " .. out)
  end)
  teardown(function() if bin then H.remove(bin) end end)

  -- Starts the client; returns a pipe to read its lines from, and its pid.
  local function start(...)
    local words = { q(client) }
    for _, w in ipairs { ... } do words[#words + 1] = q(w) end
    return H.spawn(table.concat(words, " ") .. " 2>&1")
  end

  local function feed(data)
    H.write(fs:path("feed"), data)
  end

  -- Reads what is queued, so that each test starts with an empty /out.
  local function drain()
    local fd = H.check(sys.open(fs:path("out"), luafs.O_RDONLY | luafs.O_NONBLOCK))
    while sys.read(fd, 65536) do end
    sys.close(fd)
  end
  before_each(function() drain() end)

  it("has /feed and /out", function()
    assert.same({ ".", "..", "feed", "out" }, H.listing(fs.mountpoint))
  end)

  it("does not report /out readable while nothing is queued", function()
    local p = start(fs:path("out"), "300")
    local what, _, ms = parse(p:read("l"))
    p:close()
    assert.are.equal("timeout", what)
    assert.is_true(ms >= 250, "returned after " .. ms .. " ms")
  end)

  it("wakes a waiting poll when /feed is written", function()
    local p, pid = start(fs:path("out"), "300", "10000")
    -- the first poll times out: /out was not readable before the write
    local what, _, ms = parse(p:read("l"))
    assert.are.equal("timeout", what)
    assert.is_true(ms >= 250, "returned after " .. ms .. " ms")
    assert.is_true(H.wait_until(function() return H.in_poll(pid) end, 10), "the second poll never waited")
    feed("hello")
    assert.are.equal("data=hello", expect_wakeup(p, true))
  end)

  it("reports data queued before the poll at once, and not after it was read", function()
    feed("abc")
    local p = start(fs:path("out"), "3000", "300")
    local what, ev, ms = parse(p:read("l"))
    local data = p:read("l")
    local what2 = parse(p:read("l"))
    p:close()
    assert.are.equal("ready", what)
    assert.are.equal(POLLIN, ev)
    assert.is_true(ms < 1000, "took " .. ms .. " ms")
    assert.are.equal("data=abc", data)
    assert.are.equal("timeout", what2)
  end)

  it("wakes every poller", function()
    local p1, pid1 = start("-n", fs:path("out"), "200", "10000")
    local p2, pid2 = start("-n", fs:path("out"), "200", "10000")
    assert.are.equal("timeout", (parse(p1:read("l"))))
    assert.are.equal("timeout", (parse(p2:read("l"))))
    assert.is_true(H.wait_until(function() return H.in_poll(pid1) and H.in_poll(pid2) end, 10),
      "the second polls never both waited")
    feed("x")
    local w1, e1, ms1 = parse(p1:read("l"))
    local w2, e2, ms2 = parse(p2:read("l"))
    p1:close()
    p2:close()
    assert.same({ "ready", POLLIN, "ready", POLLIN }, { w1, e1, w2, e2 })
    assert.is_true(ms1 < 9000 and ms2 < 9000, "after " .. ms1 .. " and " .. ms2 .. " ms")
  end)

  it("keeps bytes in order across writes and partial reads", function()
    feed("one ")
    feed("two ")
    feed("three")
    local fd = H.check(sys.open(fs:path("out"), luafs.O_RDONLY))
    assert.are.equal("one t", sys.read(fd, 5))
    assert.are.equal("wo three", sys.read(fd, 100))
    sys.close(fd)
  end)

  it("answers a read of an empty /out at once: EAGAIN, or end of file", function()
    local fd = H.check(sys.open(fs:path("out"), luafs.O_RDONLY | luafs.O_NONBLOCK))
    assert.are.equal(H.errname(luafs.EAGAIN), H.err(sys.read, fd, 10))
    sys.close(fd)
    fd = H.check(sys.open(fs:path("out"), luafs.O_RDONLY))
    assert.are.equal("", sys.read(fd, 10))
    sys.close(fd)
  end)

  it("reports /feed always writable", function()
    local p = start("-w", fs:path("feed"), "2000")
    local what, ev, ms = parse(p:read("l"))
    p:close()
    assert.are.equal("ready", what)
    assert.are.equal(POLLOUT, ev)
    assert.is_true(ms < 1000, "took " .. ms .. " ms")
  end)

  it("refuses the wrong direction", function()
    assert.are.equal("EACCES", H.err(sys.open, fs:path("out"), luafs.O_WRONLY))
    assert.are.equal("EACCES", H.err(sys.open, fs:path("feed"), luafs.O_RDONLY))
  end)

  it("forgets the poll handle of a poller that went away", function()
    local out = bin .. "/gone.out"
    local code, text = H.shell("exec " .. q(client) .. " " .. q(fs:path("out")) .. " 10000 >"
      .. q(out) .. " 2>&1 & echo $!")
    assert(code == 0, text)
    local pid = assert(tonumber(text:match("%d+")))
    assert.is_true(H.wait_until(function() return H.in_poll(pid) end, 10), "the client never waited in poll")
    os.execute("kill -TERM " .. pid)
    assert.is_true(H.wait_until(function() return not testing.alive(pid) end, 5), "the client did not exit")
    feed("after")
    local p = start(fs:path("out"), "2000")
    local what = parse(p:read("l"))
    local data = p:read("l")
    p:close()
    assert.are.equal("ready", what)
    assert.are.equal("data=after", data)
    assert.is_nil(fs:log():match("[Ee]rror"), fs:log())
  end)
end)

describe("poll.lua with a FIFO", function()
  local dir
  -- The FIFO exists before the script opens it at mount.
  local fs = testing.mounted(H.example("poll.lua"), { once = true, args = function()
    dir = H.temp_dir()
    assert(sys.mkfifo(dir .. "/fifo", H.octal("600")))
    return { dir .. "/fifo" }
  end })
  local client

  setup(function()
    client = dir .. "/poll_client"
    local code, out = H.shell("cc -O2 -Wall -Wextra -Werror -o " .. q(client) .. " "
      .. q(H.fixture("poll_client.c")))
    assert(code == 0, "cannot compile poll_client.c: " .. out)
  end)
  teardown(function() if dir then H.remove(dir) end end)

  it("wakes a waiting poll when the FIFO is written, through a luafs.watch", function()
    local p, pid = H.spawn(q(client) .. " " .. q(fs:path("out")) .. " 300 10000 2>&1")
    local what, _, ms = parse(p:read("l"))
    assert.are.equal("timeout", what)
    assert.is_true(ms >= 250, "returned after " .. ms .. " ms")
    assert.is_true(H.wait_until(function() return H.in_poll(pid) end, 10), "the second poll never waited")
    -- the script holds the FIFO open for reading: this open does not block
    local fd = H.check(sys.open(dir .. "/fifo", luafs.O_WRONLY))
    assert(sys.write(fd, "from the fifo"))
    sys.close(fd)
    assert.are.equal("data=from the fifo", expect_wakeup(p, true))
  end)
end)

describe("luafs.PollHandle", function()
  local fs = testing.mounted(H.fixture("ops_pollhandle.lua"), { once = true })
  local bin, client

  setup(function()
    bin = H.temp_dir()
    client = bin .. "/poll_client"
    local code, out = H.shell("cc -O2 -Wall -Wextra -Werror -o " .. q(client) .. " "
      .. q(H.fixture("poll_client.c")))
    assert(code == 0, "cannot compile poll_client.c: " .. out)
  end)
  teardown(function() if bin then H.remove(bin) end end)

  -- Runs code in the host (see spec/fixtures/ops_eval.lua); returns its
  -- results, raising if it raised.
  local function run(code)
    local f = assert(io.open(fs:path("eval"), "r+b"))
    assert(f:write(code))
    assert(f:flush())
    assert(f:seek("set", 0))
    local out = f:read("a")
    f:close()
    local r = assert(load(out, "=eval result", "t", {}))()
    assert(r[1], "the code raised: " .. tostring(r[2]))
    return table.unpack(r, 2, r.n)
  end

  local function start(...)
    local words = { q(client), "-n" }
    for _, w in ipairs { ... } do words[#words + 1] = q(w) end
    return H.spawn(table.concat(words, " ") .. " 2>&1")
  end

  before_each(function()
    run("S.mode, S.ready, S.after, S.name = 'keep', false, nil, nil; "
      .. "for _, ph in ipairs(S.kept) do ph:destroy() end; S.kept = {}")
  end)

  it("wakes the poller when a later callback notifies the kept handle", function()
    local p, pid = start(fs:path("p"), "300", "10000")
    assert.are.equal("timeout", (parse(p:read("l"))))
    -- the second poll waits now, with a new handle
    assert.is_true(H.wait_until(function() return H.in_poll(pid) end, 10), "the second poll never waited")
    local kept = run("return #S.kept")
    assert.is_true(kept >= 2, "handles kept: " .. kept)
    assert.is_true(run("S.ready = true; return S.kept[#S.kept]:notify()"))
    expect_wakeup(p)
  end)

  for _, mode in ipairs { "destroy", "close", "gc" } do
    it("is released by " .. (mode == "destroy" and ":destroy()" or "__" .. mode)
        .. ", once, and raises when used after", function()
      run("S.mode = " .. string.format("%q", mode))
      local p = start(fs:path("p"), "200")
      local what = parse(p:read("l"))
      p:close()
      assert.are.equal("timeout", what)
      local after, name, handles = run("return S.after, S.name, S.handles")
      assert.is_true(handles > 0)
      assert.is_false(after[1])
      assert.matches("released luafs.PollHandle", after[2])
      assert.are.equal("luafs.PollHandle (released)", name)
      -- what the collector does later to the released handles changes nothing
      run("collectgarbage() collectgarbage()")
      assert.is_true(fs:is_mounted())
    end)
  end

  it("is released by the collector when the script drops it", function()
    run("S.mode = 'drop'")
    local p = start(fs:path("p"), "200", "200")
    assert.are.equal("timeout", (parse(p:read("l"))))
    assert.are.equal("timeout", (parse(p:read("l"))))
    p:close()
    run("collectgarbage() collectgarbage()")
    -- and polling goes on working
    run("S.mode = 'keep'; S.ready = true")
    p = start(fs:path("p"), "2000")
    local what, ev = parse(p:read("l"))
    p:close()
    assert.same({ "ready", POLLIN }, { what, ev })
  end)

  it("raises on notify after :destroy(), and may be notified after its poller left", function()
    local p = start(fs:path("p"), "200")
    assert.are.equal("timeout", (parse(p:read("l"))))
    p:close()
    -- the poller is gone: the kernel forgets the handle, notify still answers
    local r = { run("local ph = S.kept[1]; return ph:notify()") }
    assert.is_true(r[1] == true or (r[1] == nil and type(r[3]) == "number"), tostring(r[2]))
    local ok, err = run([[
      local ph = S.kept[1]
      ph:destroy()
      return pcall(ph.notify, ph)
    ]])
    assert.is_false(ok)
    assert.matches("released luafs.PollHandle", err)
    assert.is_nil(fs:log():match("[Ee]rror"), fs:log())
  end)
end)
