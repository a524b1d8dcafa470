-- spec/memory_spec.lua: the host gives memory back once requests stop.
--
-- memfs.lua keeps file data in Lua strings. After the files are deleted,
-- those strings are garbage that nothing drives Lua to collect, and what
-- is freed stays in the C library's arenas; the host's janitor
-- (src/janitor.c) collects and trims when the mount has been quiet for a
-- while. Through real mounts, with one thread (-s) and with libfuse's
-- multithreaded loop: write files, see the RSS rise, delete them, and
-- wait until the RSS is back within a bound of its first reading.
local H = require "spec.helpers"

local testing = H.testing
local q = H.quote

local MEMFS = H.example("memfs.lua")
local MiB = 1024 -- in KiB, as /proc reports RSS
local FILES, FILE_MIB = 20, 10 -- what each round writes
local ROUNDS = 2
local BOUND = 64 * MiB -- how far above its first reading the RSS may stay
-- The janitor waits for a quiet tick; this leaves room for a slow host.
local GIVEN_BACK_WITHIN = 15

local function rss_kib(pid)
  local s = assert(H.read("/proc/" .. pid .. "/status"))
  return assert(tonumber(s:match("VmRSS:%s*(%d+)")))
end

local function run(cmd)
  local code, out = H.shell(cmd)
  assert(code == 0, "failed (" .. code .. "): " .. cmd .. "\n" .. out)
  return out
end

for _, mode in ipairs { { name = "-s", options = { "-s" } },
                        { name = "the multithreaded loop", options = {} } } do
  describe("memfs.lua with " .. mode.name, function()
    local fs = testing.mounted(MEMFS, { options = mode.options })

    it("gives the memory of deleted files back", function()
      -- AddressSanitizer keeps freed memory in its own allocator, which
      -- malloc_trim does not reach, and adds its shadow memory on top.
      if H.sanitized(fs.pid) then
        print("# skipped under AddressSanitizer: its allocator, not the C "
          .. "library's, holds the freed memory")
        return
      end
      local before = rss_kib(fs.pid)
      local readings = {}
      for round = 1, ROUNDS do
        run(("for i in $(seq %d); do dd if=/dev/zero of=%s/f$i bs=1M count=%d status=none || exit 1; done")
          :format(FILES, q(fs.mountpoint), FILE_MIB))
        local peak = rss_kib(fs.pid)
        assert(peak - before > FILES * FILE_MIB * MiB // 2, ("round %d: RSS %d KiB before, %d KiB with"
          .. " %d MiB in files: the data is not in the host's memory"):format(round, before, peak,
          FILES * FILE_MIB))
        run("rm " .. q(fs.mountpoint) .. "/f*")
        local after = H.wait_until(function()
          local rss = rss_kib(fs.pid)
          if rss - before <= BOUND then return rss end
        end, GIVEN_BACK_WITHIN)
        readings[#readings + 1] = ("round %d: peak %d KiB, after %s KiB"):format(round, peak,
          after or rss_kib(fs.pid))
        assert(after, ("RSS %d KiB before; %s; not back within %d KiB after %d s"):format(before,
          table.concat(readings, "; "), BOUND, GIVEN_BACK_WITHIN))
      end
      print(("# RSS %d KiB before; %s"):format(before, table.concat(readings, "; ")))
    end)
  end)
end
