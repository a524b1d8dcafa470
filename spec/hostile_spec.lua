-- spec/hostile_spec.lua: a seeded random test aimed at the host rather
-- than at a filesystem. spec/fixtures/hostile.lua misbehaves at random in
-- every callback (garbage of every type, raises of every kind, the whole
-- luafs API with random arguments, objects kept past their call, yields,
-- endless loops, memory exhaustion, os.exit, os.execute, reloads of
-- itself) while spec/fixtures/hostile_driver.lua drives the mount with
-- ordinary system calls and programs. It holds when the host never dies
-- or hangs, every request gets an answer, each misbehaviour that must be
-- logged is, the host's memory stays bounded, and /ok still reads "ok" at
-- the end.
--
-- Each round mounts afresh with the seed LUAFS_HOSTILE_SEED + its index
-- (the seed is in the test's name); a failing round replays alone with
--
--   LUAFS_HOSTILE_SEED=<seed> LUAFS_HOSTILE_ROUNDS=1 scripts/test --quick spec/hostile_spec.lua
--
-- LUAFS_HOSTILE_SEED   first seed (default: the clock)
-- LUAFS_HOSTILE_ROUNDS mounts (default 2)
-- LUAFS_HOSTILE_OPS    driver operations per mount (default 120)
-- LUAFS_HOSTILE_SKIP   behaviours and API probes the fixture leaves out, a
--                      comma-separated list of names or prefixes (see the
--                      fixture), e.g. "exit,meta.luafs.Config" (default
--                      "self_mount"; "" for none)
local H = require "spec.helpers"

local testing = H.testing

local SEED = math.tointeger(tonumber(os.getenv("LUAFS_HOSTILE_SEED") or "")) or os.time()
local ROUNDS = math.tointeger(tonumber(os.getenv("LUAFS_HOSTILE_ROUNDS") or "")) or 2
local OPS = math.tointeger(tonumber(os.getenv("LUAFS_HOSTILE_OPS") or "")) or 120
-- self_mount is left out by default: a callback that uses its own mount
-- hangs with the kernel's locks or with -s, as luafs(1) says under BUGS.
local SKIP = os.getenv("LUAFS_HOSTILE_SKIP") or "self_mount"
if SKIP == "" then SKIP = "-" end

-- An operation whose answer takes longer hung: each request is bounded by
-- call_timeout, and an operation makes a handful of them.
local HANG = 30
local CALL_TIMEOUT = "0.5"
local LUA_MEMORY = "32m"
-- The host's resident size: a few states of 32 MiB each, BufVecs and
-- libfuse's buffers; AddressSanitizer's shadow and quarantine on top.
local RSS_KIB, RSS_SAN_KIB = 400 * 1024, 1536 * 1024

local function rss_kib(pid)
  local text = H.read("/proc/" .. pid .. "/status")
  return text and tonumber(text:match("VmRSS:%s*(%d+)"))
end

local function tail(text, n)
  local lines = H.lines(text)
  return table.concat(lines, "\n", math.max(1, #lines - n + 1))
end

-- What the mount and its host look like for a seed.
local function setup_for(seed)
  local rng = seed
  local function pick(n)
    rng = (rng * 1103515245 + 12345) & 0x7fffffff
    return rng % n + 1
  end
  local options = { "-o", "call_timeout=" .. CALL_TIMEOUT .. ",lua_memory=" .. LUA_MEMORY }
  local states = ({ 1, 1, 2, 3 })[pick(4)]
  options[#options + 1] = "-o"
  options[#options + 1] = "states=" .. states
  if states == 1 and pick(3) == 1 then options[#options + 1] = "-s" end
  local mode = {}
  if pick(2) == 1 then mode[#mode + 1] = "buf" end
  if pick(3) == 1 then mode[#mode + 1] = "portable" end
  return options, #mode > 0 and table.concat(mode, ",") or "-"
end

-- The journal's calls that must have a log line: by operation, and the
-- numbers of those that raised a string naming them.
local function journal_demands(journal)
  local by_op, ids = {}, {}
  for line in journal:gmatch("[^\n]+") do
    local n, op, behaviour, must = line:match("^C (%-?%d+) (%S+) .- (%S+) (%S+)$")
    if must == "log" then
      by_op[op] = (by_op[op] or 0) + 1
      if behaviour == "raise_string" then ids[#ids + 1] = n end
    end
  end
  return by_op, ids
end

local function log_lines_by_op(log)
  local count = {}
  for line in log:gmatch("[^\n]+") do
    local op = line:match("^luafs: ([%l_]+)[ :]")
    if op then count[op] = (count[op] or 0) + 1 end
  end
  return count
end

local BAD_LOG = { "AddressSanitizer", "LeakSanitizer", "runtime error:", "unprotected Lua error",
                  "Segmentation fault", "Aborted" }

describe("a hostile script (first seed " .. SEED .. ", " .. ROUNDS .. " rounds, " .. OPS .. " ops)", function()
  local mount, unmount_all = H.mount_tracker()
  local dirs, driver_pid = {}, nil

  after_each(function()
    if driver_pid and testing.alive(driver_pid) then os.execute("kill -KILL " .. driver_pid .. " 2>/dev/null") end
    driver_pid = nil
    unmount_all()
    for _, d in ipairs(dirs) do H.remove(d) end
    dirs = {}
  end)

  for round = 0, ROUNDS - 1 do
    local seed = SEED + round
    local options, mode = setup_for(seed)
    it("seed " .. seed .. " (" .. table.concat(options, " ", 3) .. ", mode " .. mode .. ")", function()
      local work, sandbox = H.temp_dir(), H.shm_dir()
      dirs[#dirs + 1] = work
      dirs[#dirs + 1] = sandbox
      -- A copy, since the script rewrites itself to reload.
      local script = work .. "/hostile.lua"
      H.write(script, assert(H.read(H.fixture("hostile.lua"))))
      local journal = work .. "/journal"
      local ok, m = pcall(mount, script, {
        options = options,
        args = function(mnt) return { tostring(seed), journal, sandbox, mnt.mountpoint, SKIP, mode } end,
        exit_timeout = 10,
      })
      assert(ok, "seed " .. seed .. ": " .. tostring(m) .. "\n--- journal (last lines) ---\n"
        .. tail(H.read(journal) or "", 10))
      local function context()
        return "\n--- journal (last lines) ---\n" .. tail(H.read(journal) or "", 25)
          .. "\n--- host log (last lines) ---\n" .. tail(m:log(), 40)
      end

      -- Drive the mount; watch the driver, the host and its memory.
      local out = work .. "/driver.out"
      local _, pid = H.shell(string.format("lua5.4 %s %s %d %d >%s 2>&1 & echo $!",
        H.quote(H.fixture("hostile_driver.lua")), H.quote(m.mountpoint), seed, OPS, H.quote(out)))
      driver_pid = assert(tonumber(pid:match("%d+")))
      local sanitized = H.sanitized(m.pid)
      local rss_max, began = 0, {}
      local verdict
      while not verdict do
        local text = H.read(out) or ""
        local now = os.time()
        for i in text:gmatch("B (%d+) ") do began[i] = began[i] or now end
        local last_b, what = text:match(".*B (%d+) (%S+)\n")
        local done = text:find("DONE\n", 1, true)
        local rss = rss_kib(m.pid)
        if rss and rss > rss_max then rss_max = rss end
        if done then
          verdict = "done"
        elseif not m:alive() then
          verdict = "the host died (status " .. tostring(m:status()) .. ")"
        elseif not testing.alive(driver_pid) then
          verdict = H.read(out):find("DONE\n", 1, true) and "done"
            or "the driver ended without finishing:\n" .. tail(H.read(out) or "", 5)
        elseif last_b and not text:find("\nE " .. last_b .. " ", 1, true)
            and now - began[last_b] > HANG then
          verdict = "operation " .. last_b .. " (" .. what .. ") got no answer within " .. HANG .. " s"
        else
          testing.sleep(0.05)
        end
      end
      if testing.alive(driver_pid) then os.execute("kill -KILL " .. driver_pid .. " 2>/dev/null") end
      assert(verdict == "done", "seed " .. seed .. ": " .. verdict .. context())
      assert(m:alive(), "seed " .. seed .. ": the host died" .. context())

      local code, ok_text = H.shell("timeout -k 2 " .. HANG .. " cat " .. H.quote(m:path("ok")))
      assert(code == 0 and ok_text == "ok\n", "seed " .. seed .. ": /ok read as " .. string.format("%q", ok_text)
        .. " (exit " .. tostring(code) .. ")" .. context())
      local bound = sanitized and RSS_SAN_KIB or RSS_KIB
      assert(rss_max < bound, string.format("seed %d: the host's RSS reached %d KiB (bound %d KiB)%s",
        seed, rss_max, bound, context()))

      -- The log is whole once the host has exited: releases come late.
      local clean, problem = m:unmount { strict = false }
      local log = m:log()
      for _, bad in ipairs(BAD_LOG) do
        local at = log:find(bad, 1, true)
        if at then
          local from = (log:sub(1, at):match(".*()\n") or 0) + 1
          error("seed " .. seed .. ": the host's log has\n" .. log:sub(from, from + 600) .. context())
        end
      end
      assert(clean, "seed " .. seed .. ": " .. tostring(problem))
      local demands, ids = journal_demands(H.read(journal) or "")
      local lines = log_lines_by_op(log)
      for op, n in pairs(demands) do
        if (lines[op] or 0) < n then
          local calls, logged = {}, {}
          for line in (H.read(journal) or ""):gmatch("[^\n]+") do
            if line:match("^C %-?%d+ " .. op .. " .* log$") then calls[#calls + 1] = line end
          end
          for line in log:gmatch("[^\n]+") do
            if line:find("luafs: " .. op, 1, true) == 1 then logged[#logged + 1] = line:sub(1, 200) end
          end
          error(string.format("seed %d: %d calls of %s had to log a line, the log has %d\n%s\n--- their lines ---\n%s",
            seed, n, op, lines[op] or 0, table.concat(calls, "\n"), table.concat(logged, "\n")))
        end
      end
      for _, n in ipairs(ids) do
        assert(log:find("hostile#" .. n .. " raised", 1, true),
          "seed " .. seed .. ": call " .. n .. " raised a string that the log does not show" .. context())
      end
    end)
  end
end)
