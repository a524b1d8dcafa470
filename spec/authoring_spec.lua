-- spec/authoring_spec.lua: the author's loop through real mounts: the trace
-- of the script's calls (-o trace, luafs --trace on|off), the live view
-- (luafs --stats, --stats-reset) and who may ask for it, and a reload
-- that reacts to the script and its modules, not to other files beside it.
local H = require "spec.helpers"

local testing, luafs, sys = H.testing, H.luafs, H.sys
local q = H.quote

local mount, unmount_all = H.mount_tracker()
local dirs = {}

local function script(text, name, dir)
  if not dir then
    dir = H.temp_dir()
    dirs[#dirs + 1] = dir
  end
  local path = dir .. "/" .. (name or "fs.lua")
  H.write(path, text)
  return path, dir
end

after_each(function()
  unmount_all()
  for _, d in ipairs(dirs) do H.remove(d) end
  dirs = {}
end)

-- A small filesystem: /f holds "hello\n", everything else is missing.
local FS = [[
local luafs = require "luafs"
local fs = {}
function fs.getattr(path)
  if path == "/" then return { mode = luafs.S_IFDIR | tonumber("755", 8), nlink = 2 } end
  if path == "/f" then return { mode = luafs.S_IFREG | tonumber("644", 8), nlink = 1, size = 6 } end
  return -luafs.ENOENT
end
function fs.open(_, fi) fi.direct_io = true end
function fs.read(_, size, offset) return ("hello\n"):sub(offset + 1, offset + size) end
return fs
]]

local function luafs_cmd(...)
  local words = { q(H.host) }
  for _, w in ipairs { ... } do words[#words + 1] = q(w) end
  return testing.shell(table.concat(words, " ") .. " 2>&1")
end

local lines_with = H.log_lines

describe("-o trace", function()
  it("logs one line per call with its arguments, result and time, and turns off and on", function()
    local m = mount(script(FS), { options = { "-o", "trace,states=2" } })
    assert.are.equal("ENOENT", H.err(sys.lstat, m:path("missing")))
    local fd = assert(sys.open(m:path("f"), luafs.O_RDONLY))
    assert.are.equal("hello\n", sys.pread(fd, 100, 0))
    sys.close(fd)
    assert.truthy(H.wait_until(function() return #lines_with(m, "trace: read /f") > 0 end, 5), m:log())
    local miss = lines_with(m, "trace: getattr /missing")[1]
    assert.truthy(miss:match("^luafs: trace: getattr /missing %-> ENOENT %(%d+ us, state [12]%)$"), miss)
    local open = lines_with(m, "trace: open /f")[1]
    assert.truthy(open:match("^luafs: trace: open /f flags=O_RDONLY[|%w_]* %-> 0 %(%d+ us, state [12]%)$"), open)
    local read = lines_with(m, "trace: read /f")[1]
    assert.truthy(read:match("^luafs: trace: read /f size=%d+ offset=0 %-> 6 %(%d+ us, state [12]%)$"), read)

    local code, out = luafs_cmd("--trace", "off", m.mountpoint)
    assert.are.equal(0, code, out)
    assert.are.equal("trace off\n", out)
    local before = #lines_with(m, "trace: getattr /gone")
    assert.are.equal("ENOENT", H.err(sys.lstat, m:path("gone")))
    code, out = luafs_cmd("--trace", "on", m.mountpoint)
    assert.are.equal(0, code, out)
    assert.are.equal("ENOENT", H.err(sys.lstat, m:path("back")))
    assert.truthy(H.wait_until(function() return #lines_with(m, "trace: getattr /back") > 0 end, 5))
    assert.are.equal(before, #lines_with(m, "trace: getattr /gone"))
  end)
end)

describe("luafs --stats", function()
  it("counts the calls of a known load, by operation and errno, and starts again on request", function()
    local m = mount(script(FS))
    for i = 1, 25 do assert.are.equal("ENOENT", H.err(sys.lstat, m:path("no" .. i))) end
    for _ = 1, 10 do
      local fd = assert(sys.open(m:path("f"), luafs.O_RDONLY))
      assert.are.equal("hello\n", sys.pread(fd, 100, 0))
      sys.close(fd)
    end
    local code, out = luafs_cmd("--stats", m.mountpoint)
    assert.are.equal(0, code, out)
    assert.truthy(out:find("on " .. m.mountpoint, 1, true), out)
    local calls, failed, p50, p99, max, errs =
      out:match("\ngetattr +(%d+) +(%d+) +([%d.]+) +([%d.]+) +([%d.]+) +([^\n]*)")
    assert.truthy(calls, out)
    -- each missing name is looked up at least once; the kernel may ask again
    assert.truthy(tonumber(failed) >= 25, out)
    assert.truthy(errs:find("ENOENT " .. failed, 1, true), out)
    assert.truthy(tonumber(p50) <= tonumber(p99) and tonumber(p99) <= tonumber(max), out)
    local opens = out:match("\nopen +(%d+) +0 ")
    assert.are.equal("10", opens, out)
    local reads = tonumber(out:match("\nread +(%d+) +0 "))
    assert.truthy(reads and reads >= 10, out)
    assert.truthy(out:match("\n1 +%d+ +%a+ +1\n"), out)   -- state 1, generation 1
    assert.truthy(out:match("reloads 0 done and 0 failed, RSS %d+ KiB"), out)

    code, out = luafs_cmd("--stats-reset", m.mountpoint)
    assert.are.equal(0, code, out)
    code, out = luafs_cmd("--stats", m.mountpoint)
    assert.are.equal(0, code, out)
    assert.falsy(out:find("\nopen ", 1, true), out)
  end)

  it("answers only the user the host runs as and root, and says when nothing serves", function()
    local m = mount(script(FS))
    -- The host closes a refused connection at once, often before the ask
    -- is written: each of many asks must still exit 1 and say why.
    local asks = 50
    local code, out = testing.shell("for i in $(seq " .. asks .. "); do setpriv --reuid=4321"
      .. " --regid=4321 --clear-groups " .. q(H.host) .. " --stats " .. q(m.mountpoint)
      .. " 2>&1; echo \"exit $?\"; done")
    assert.are.equal(0, code, out)
    local _, refused = out:gsub("only the user it runs as, and root, may ask", "")
    local _, failed = out:gsub("exit 1\n", "")
    assert.are.same({ asks, asks }, { refused, failed }, out)
    local empty = H.temp_dir()
    dirs[#dirs + 1] = empty
    code, out = luafs_cmd("--stats", empty)
    assert.are.equal(1, code)
    assert.truthy(out:find("no luafs serves " .. empty, 1, true), out)
  end)
end)

describe("hot reload", function()
  it("reacts to the script and its modules, not to other files beside them", function()
    local dir = H.temp_dir()
    dirs[#dirs + 1] = dir
    script('return "one"\n', "word.lua", dir)
    local path = script([[
local luafs = require "luafs"
local word = require "word"
return {
  getattr = function(path)
    if path == "/" then return { mode = luafs.S_IFDIR | tonumber("755", 8), nlink = 2 } end
    return { mode = luafs.S_IFREG | tonumber("444", 8), nlink = 1, size = #word + 1 }
  end,
  open = function(_, fi) fi.direct_io = true end,
  read = function(_, size, offset) return (word .. "\n"):sub(offset + 1, offset + size) end,
}
]], "fs.lua", dir)
    local m = mount(path, { options = { "-o", "trace" } })
    local function read() return H.read(m:path("w")) end
    assert.are.equal("one\n", read())
    -- a spec and a scratch file beside the script: seen, and no reload
    script("-- a spec being edited\n", "fs_spec.lua", dir)
    script("scratch\n", "notes.lua", dir)
    assert.truthy(H.log_line(m, "trace: reload ignores fs_spec.lua", 10), m:log())
    assert.truthy(H.log_line(m, "trace: reload ignores notes.lua", 10), m:log())
    -- the module: a reload, and only one
    script('return "two"\n', "word.lua", dir)
    assert.truthy(H.wait_until(function() return read() == "two\n" end, 10), read())
    assert.truthy(H.log_line(m, "generation 2", 5))
    assert.are.equal(0, #lines_with(m, "generation 3"))
    -- the script itself: the next one
    H.write(path, H.read(path) .. "-- edited\n")
    assert.truthy(H.log_line(m, "generation 3", 10), m:log())
    assert.are.equal(0, #lines_with(m, "generation 4"))
    assert.are.equal(1, #lines_with(m, "generation 2"))
  end)
end)
