-- spec/conformance_spec.lua: luafs.conformance fails on a filesystem that
-- differs from tmpfs, and its message names the system call, the path and
-- both results.
--
-- The kit runs as a user runs it: spec/fixtures/conformance_wrong.lua is
-- a spec of a few lines, run by a busted of its own, on a copy of memfs
-- whose getattr reports a file's size from before its last truncate.
local H = require "spec.helpers"

describe("luafs.conformance", function()
  it("fails on a stale size after truncate, naming the call, the path and both results", function()
    local code, out = H.shell("LUAFS_WRONG_SCRIPT=" .. H.quote(H.fixture("memfs_stale_size.lua"))
      .. " lua5.4 /usr/bin/busted -o TAP -p conformance_wrong " .. H.quote(H.fixture("conformance_wrong.lua")))
    assert.are_not.equal(0, code, out)
    assert.truthy(out:find("not ok %d+ %- a stale size conformance files truncates up and down"), out)
    assert.truthy(out:find('lstat("/f") -> after_down[2].size: mount 20000, tmpfs 5000 [after_down]',
      1, true), out)
    -- the case that truncates nothing passes
    assert.truthy(out:find("\nok %d+ %- a stale size conformance names makes and removes directories"), out)
    -- the teardown unmounted, and nothing else failed
    assert.truthy(out:find("\n1%.%.2%s*$"), out)
    local mountpoint = out:match("mounted on (%S+)")
    assert.truthy(mountpoint, out)
    assert.are.equal(0, H.testing.mounted_at(mountpoint))
  end)
end)
