-- spec/reload_spec.lua: hot reload.  Each test copies
-- spec/fixtures/reload_fs.lua (with reload_mod.lua beside it) into a
-- directory of its own, mounts it, and rewrites it while mounted, the way
-- editors save files, or sends SIGUSR1.
local H = require "spec.helpers"

local testing, luafs, sys = H.testing, H.luafs, H.sys
local q = H.quote

local template = assert(H.read(H.fixture("reload_fs.lua")))
local module_text = assert(H.read(H.fixture("reload_mod.lua")))

-- The template with VERSION set to v, then each {pattern, replacement}.
local function version(v, ...)
  local text = template:gsub('local VERSION = "one"', 'local VERSION = "' .. v .. '"', 1)
  for _, edit in ipairs { ... } do
    local n
    text, n = text:gsub(edit[1], edit[2], 1)
    assert(n == 1, "the template has no " .. edit[1])
  end
  return text
end

local EXTRA = "%-%- EXTRA"
local broken = {
  syntax = { "\nreturn fs\n$", "\nreturn fs fs(\n" },
  raises = { EXTRA, 'error("raised at load")' },
  number = { "\nreturn fs\n$", "\nreturn 42\n" },
  check = { EXTRA, 'function fs.check() return false, "check says no" end' },
}

-- The line of text in the template after the edit, for messages.
local function line_of(text, needle)
  local n = 1
  for line in text:gmatch("([^\n]*)\n?") do
    if line:find(needle, 1, true) then return n end
    n = n + 1
  end
end

describe("hot reload", function()
  local dir, script, m

  local function mount(options, name)
    m = testing.mount(script, { options = options })
    return m, name
  end

  before_each(function()
    dir = H.shm_dir()
    script = dir .. "/fs.lua"
    H.write(script, template)
    H.write(dir .. "/reload_mod.lua", module_text)
  end)
  after_each(function()
    if m then
      local clean, problem = m:unmount { strict = false }
      m = nil
      if not clean then error(problem, 0) end
    end
    H.remove(dir)
  end)

  -- Saves text as a new file renamed over the old one (vim, sed -i).
  local function save(text, path)
    path = path or script
    H.write(dir .. "/.saving", text)
    assert(os.rename(dir .. "/.saving", path))
  end

  local function read(name) return H.read(m:path(name)) end
  local function gen() return tonumber(read("gen")) end

  -- The lines of the log with text in them.
  local function log_lines(text) return H.log_lines(m, text) end

  local function wait_lines(text, n, timeout)
    return H.wait_until(function() return #log_lines(text) >= n end, timeout or 10)
  end

  -- Holds reads of /slow in their states (on), or lets them answer (off).
  local function hold(on) H.write(m:path("hold"), on and "on" or "off", "r+b") end

  -- How many reads of /slow are running: each marks its state in dir.
  local function slow_reads()
    local n = 0
    for name in H.lfs.dir(dir) do
      if name:match("^slow%-in%-state%-%d+$") then n = n + 1 end
    end
    return n
  end

  -- The inotify instances the host holds: the watch on the script's
  -- directory.
  local function watches()
    local n = 0
    for fd in H.lfs.dir("/proc/" .. m.pid .. "/fd") do
      if sys.readlink("/proc/" .. m.pid .. "/fd/" .. fd) == "anon_inode:inotify" then n = n + 1 end
    end
    return n
  end

  it("serves the new code at the next read, within a second of an edit", function()
    mount()
    assert.are.equal(1, watches())
    assert.are.equal("one\n", read("version"))
    assert.are.equal(1, gen())
    save(version("two"))
    assert.truthy(H.wait_until(function() return read("version") == "two\n" end, 1),
      "still " .. read("version"))
    assert.are.equal(2, gen())
    local line = H.log_line(m, "reloaded " .. script)
    assert.truthy(line:match("generation 2, checked in [%d.]+ ms, swapped in [%d.]+ ms"), line)
    -- the hook saw the old table
    assert.are.equal("one\n", read("from"))
  end)

  for _, case in ipairs {
    { "a syntax error", broken.syntax, "fs.lua:" .. line_of(version("x", broken.syntax), "return fs fs(")
      .. ": <eof> expected near 'fs'" },
    { "a chunk that raises at load", broken.raises, "fs.lua:" .. line_of(version("x", broken.raises),
      'error("raised at load")') .. ": raised at load" },
    { "a chunk that returns a non-table", broken.number,
      "fs.lua: the script returned number, not a table of operations" },
    { "a failing check()", broken.check, "fs.lua: check() failed: check says no" },
  } do
    local what, edit, message = case[1], case[2], case[3]
    it("keeps the old code serving after " .. what .. ", logs why in one line, and takes the fix", function()
      mount()
      save(version("two", edit))
      assert.truthy(wait_lines("reload failed", 1), m:log())
      local failed = log_lines("reload failed")
      assert.are.equal(1, #failed)
      assert.truthy(failed[1]:find("reload failed, the old code keeps serving: " .. dir .. "/" .. message, 1, true),
        failed[1] .. "\nexpected: " .. message)
      assert.are.equal("one\n", read("version"))
      assert.are.equal(1, gen())
      save(version("three"))
      assert.truthy(H.wait_until(function() return read("version") == "three\n" end, 10))
      assert.are.equal(2, gen())
      assert.are.equal(1, #log_lines("reload failed"))
    end)
  end

  it("finishes a request in flight on the old code; later ones see the new", function()
    mount { "-o", "states=2" }
    hold(true)
    local p = assert(io.popen("cat " .. q(m:path("slow")), "r"))
    local ok, err = pcall(function()
      assert.truthy(H.wait_until(function() return slow_reads() == 1 end, 10), "the read never started")
      save(version("two"))
      -- the reload has begun (its check ran the new chunk), and waits for
      -- the state that the read holds
      assert.truthy(H.wait_until(function() return read("loaded") == "two\n" end, 10), "no reload began")
      assert.are.equal(1, gen())
    end)
    hold(false)
    local out = p:read("a")
    p:close()
    assert(ok, err)
    assert.are.equal("one gen=1\n", out)
    assert.truthy(wait_lines("generation 2", 1))
    assert.are.equal("two gen=2\n", read("slow"))
  end)

  it("switches every state of a pool", function()
    mount { "-o", "states=4" }
    save(version("two"))
    assert.truthy(wait_lines("generation 2", 1))
    -- four reads held at once are in four states
    hold(true)
    local ps = {}
    for i = 1, 4 do ps[i] = assert(io.popen("cat " .. q(m:path("slow")), "r")) end
    local four = H.wait_until(function() return slow_reads() == 4 end, 10)
    hold(false)
    local outs = {}
    for i = 1, 4 do
      outs[i] = ps[i]:read("a")
      ps[i]:close()
    end
    assert.truthy(four, "never four reads at once")
    assert.same({ "two gen=2\n", "two gen=2\n", "two gen=2\n", "two gen=2\n" }, outs)
  end)

  it("reloads a module the script required from its directory", function()
    mount()
    assert.are.equal("mod one\n", read("mod"))
    save('return { text = "mod two" }\n', dir .. "/reload_mod.lua")
    assert.truthy(H.wait_until(function() return read("mod") == "mod two\n" end, 10))
    assert.are.equal(2, gen())
    -- a broken module keeps the old code, and its module, serving
    save('return { text = "mod three" \n', dir .. "/reload_mod.lua")
    assert.truthy(wait_lines("reload failed", 1))
    local failed = log_lines("reload failed")
    assert.are.equal(1, #failed)
    assert.truthy(failed[1]:find("error loading module 'reload_mod' from file '" .. dir .. "/reload_mod.lua': "
      .. dir .. "/reload_mod.lua:2: '}' expected", 1, true), m:log())
    assert.are.equal("mod two\n", read("mod"))
    save('return { text = "mod four" }\n', dir .. "/reload_mod.lua")
    assert.truthy(H.wait_until(function() return read("mod") == "mod four\n" end, 10))
    assert.are.equal(3, gen())
  end)

  it("keeps a file open across a reload: same handle, data written before and after", function()
    mount()
    local fd = H.check(sys.open(m:path("data"), luafs.O_RDWR))
    local ok, err = pcall(function()
      assert.are.equal(7, H.check(sys.pwrite(fd, "before|", 0)))
      save(version("two"))
      assert.truthy(H.wait_until(function() return gen() == 2 end, 10))
      assert.are.equal(5, H.check(sys.pwrite(fd, "after", 7)))
      assert.are.equal("before|after", H.check(sys.pread(fd, 100, 0)))
    end)
    sys.close(fd)
    assert(ok, err)
    assert.are.equal("before|after", read("data"))
    -- the same handle (id 1) served by generation 1, then 2
    local log = read("handles")
    assert.truthy(log:find("write 1 1\nwrite 1 2\nread 1 2\n", 1, true), log)
  end)

  it("reloads on SIGUSR1, also with -o noreload, which ignores edits", function()
    mount { "-o", "noreload" }
    -- nothing watches the directory (the default mount's watch is counted
    -- in the first test)
    assert.are.equal(0, watches())
    save(version("two"))
    assert.are.equal("one\n", read("version"))
    assert.is_true(os.execute("kill -USR1 " .. m.pid))
    assert.truthy(H.wait_until(function() return read("version") == "two\n" end, 10))
    assert.are.equal(2, gen())
    -- a signal with nothing changed reloads all the same
    assert.is_true(os.execute("kill -USR1 " .. m.pid))
    assert.truthy(H.wait_until(function() return gen() == 3 end, 10))
    assert.are.equal(2, #log_lines("reloaded "), m:log())
  end)

  it("does not register an operation added by a reload, answers ENOSYS for a removed one, and logs both", function()
    mount()
    assert.are.equal("EPERM", H.err(sys.unlink, m:path("version")))
    assert.are.equal("ENOSYS", H.err(sys.mkdir, m:path("new"), H.octal("755")))
    save(version("two", { EXTRA, "function fs.mkdir() return 0 end" },
      { "function fs%.unlink%(%)", "local function unlink_removed()" }))
    assert.truthy(wait_lines("generation 2", 1))
    assert.truthy(H.log_line(m,
      "reload: 'mkdir' was not defined at mount, so libfuse does not call it; remount to add it"))
    assert.truthy(H.log_line(m, "reload: 'unlink' is gone; it answers ENOSYS now"))
    assert.are.equal("ENOSYS", H.err(sys.unlink, m:path("version")))
    assert.are.equal("ENOSYS", H.err(sys.mkdir, m:path("new"), H.octal("755")))
    -- a reload that changes neither logs neither again
    save(version("three", { EXTRA, "function fs.mkdir() return 0 end" },
      { "function fs%.unlink%(%)", "local function unlink_removed()" }))
    assert.truthy(wait_lines("generation 3", 1))
    assert.are.equal(1, #log_lines("'mkdir' was not defined"))
    assert.are.equal(1, #log_lines("'unlink' is gone"))
  end)

  describe("as editors save", function()
    -- After the edit: one reload, of the complete new content.  Then a
    -- save whose reload must come next: a second reload that the edit
    -- made (of part of it, or again) would be a generation too many.
    local function one_reload_of(v)
      assert.truthy(wait_lines("reload", 1), "no reload")
      assert.are.same({}, log_lines("reload failed"))
      assert.are.equal(v .. "\n", read("version"))
      assert.are.equal(2, gen())
      save(version("next"))
      assert.truthy(H.wait_until(function() return read("version") == "next\n" end, 10), m:log())
      assert.are.same({}, log_lines("reload failed"))
      assert.are.equal(3, gen(), m:log())
      assert.are.equal(2, #log_lines("reloaded "), m:log())
    end

    local function inode(path) return H.check(sys.stat(path)).ino end

    it("sed -i (a new file renamed over the script)", function()
      mount()
      local before = inode(script)
      local code, out = H.shell("sed -i 's/\"one\"/\"sed\"/' " .. q(script))
      assert(code == 0, out)
      assert.are_not.equal(before, inode(script))
      one_reload_of("sed")
    end)

    it("vim, renaming (backupcopy=no)", function()
      mount()
      local before = inode(script)
      local code, out = H.shell("vim -u NONE -i NONE -N -n -es -c 'set backupcopy=no' "
        .. "-c '%s/\"one\"/\"vim\"/' -c 'wq' " .. q(script) .. " </dev/null")
      assert(code == 0, out)
      assert.are_not.equal(before, inode(script))
      one_reload_of("vim")
    end)

    it("vim, writing in place (backupcopy=yes)", function()
      mount()
      local before = inode(script)
      local code, out = H.shell("vim -u NONE -i NONE -N -n -es -c 'set backupcopy=yes' "
        .. "-c '%s/\"one\"/\"vim\"/' -c 'wq' " .. q(script) .. " </dev/null")
      assert(code == 0, out)
      assert.are.equal(before, inode(script))
      one_reload_of("vim")
    end)

    it("truncate and write in pieces, pausing longer than the quiet time (nano)", function()
      mount()
      local text = version("nano")
      local f = assert(io.open(script, "wb"))
      f:setvbuf("no")
      local cut = #text // 2
      assert(f:write(text:sub(1, cut)))
      -- the editor's pause, which is what this tests: longer than the
      -- quiet time, while the file is still open
      H.sleep(0.4)
      assert(f:write(text:sub(cut + 1)))
      f:close()
      one_reload_of("nano")
    end)

    it("a burst of saves", function()
      mount()
      for i = 1, 5 do H.write(script, version("burst" .. i)) end
      one_reload_of("burst5")
    end)
  end)

  it("under load: no request fails, no byte is lost or torn, while 50 saves alternate good and broken", function()
    local bin = H.temp_dir()
    local client = bin .. "/pool_client"
    local code, out = H.shell("cc -O2 -Wall -Wextra -Werror -pthread -o " .. q(client) .. " "
      .. q(H.fixture("pool_client.c")))
    if code ~= 0 then H.remove(bin) end
    assert(code == 0, out)
    local load_text = assert(H.read(H.fixture("reload_load.lua")))
    H.write(script, load_text)
    mount { "-o", "states=2" }
    local p = assert(io.popen("exec " .. q(client) .. " load " .. q(m.mountpoint) .. " 10 2>&1", "r"))
    local kinds = { "\nreturn fs fs(\n", "\nerror('raised at load')\nreturn fs\n", "\nreturn 'not a table'\n" }
    local good, results = 0, 0
    local ok, err = pcall(function()
      for i = 1, 50 do
        local text
        if i % 2 == 1 then
          good = good + 1
          text = load_text:gsub('local VERSION = "1"', 'local VERSION = "' .. (good + 1) .. '"', 1)
        else
          text = load_text:gsub("\nreturn fs\n$", kinds[(i // 2) % 3 + 1], 1)
        end
        save(text)
        results = results + 1
        assert(H.wait_until(function()
          return #log_lines("reloaded ") + #log_lines("reload failed") >= results
        end, 5), "no reload after save " .. i)
      end
    end)
    local lines = H.lines(p:read("a"))
    p:close()
    H.remove(bin)
    assert(ok, err)
    local last = lines[#lines] or ""
    local written, nread, versions, errors = last:match("^written (%d+) read (%d+) versions (%d+) errors (%d+)$")
    assert(written, table.concat(lines, "\n"))
    print(("# under load: %s records written and read back, %s reads of /version, 50 saves"):format(written, versions))
    assert.are.equal("0", errors, table.concat(lines, "\n"))
    assert.are.equal(written, nread)
    assert.is_true(tonumber(written) > 100)
    assert.are.equal(25, #log_lines("reloaded "))
    assert.are.equal(25, #log_lines("reload failed"))
    assert.are.equal(26, gen())
    assert.are.equal("good 26\n", read("version"))
    -- the file holds every record, in order
    local data = assert(read("data"))
    assert.are.equal(tonumber(written) * 64, #data)
  end)
end)
