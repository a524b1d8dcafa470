-- spec/exerciser_spec.lua: lua/examples/passthrough.lua over a tmpfs
-- directory, and lua/examples/memfs.lua, under tools that no one here
-- wrote: stress-ng's filesystem stressors, verifying what they read back,
-- and an rsync round trip through the passthrough mount. Any failure,
-- error line or unverified stressor fails the test.
local H = require "spec.helpers"

local testing, sys = H.testing, H.sys
local q = H.quote

local PASSTHROUGH = H.example("passthrough.lua")

local function sh(cmd)
  local code, out = H.shell(cmd)
  assert(code == 0, "failed (" .. code .. "): " .. cmd .. "\n" .. out)
  return out
end

-- Runs stress-ng with the stressors (name -> extra options) in dir;
-- checks that it succeeded, that no line reports a failure, and that
-- every stressor did some work. Returns its output.
local function stress(dir, stressors, options)
  local words = { "stress-ng", "--temp-path", q(dir), "--verify", "--metrics-brief",
    "--oom-avoid", options }
  local names = {}
  for name, extra in pairs(stressors) do
    names[#names + 1] = name
    words[#words + 1] = "--" .. name .. " " .. extra
  end
  local cmd = "cd " .. q(dir) .. " && timeout -k 5 100 " .. table.concat(words, " ")
  local code, out = H.shell(cmd)
  assert(code == 0, "stress-ng exited with " .. code .. ":\n" .. out)
  for line in out:gmatch("[^\n]+") do
    assert(not line:match("^stress%-ng: fail") and not line:match("^stress%-ng: error")
      and not line:lower():match("skipp"), line .. "\n" .. out)
  end
  assert.truthy(out:match("successful run completed"), out)
  for _, name in ipairs(names) do
    local ops = out:match("metrc: %[%d+%] " .. name:gsub("%-", "%%-") .. "%s+(%d+)")
    assert(ops, "no metrics for " .. name .. "\n" .. out)
    assert(tonumber(ops) > 0, name .. " did no work\n" .. out)
  end
  return out
end

describe("stress-ng in passthrough.lua", function()
  local fs = testing.mounted(PASSTHROUGH, { once = true, scratch = true, args = { "{scratch}" } })

  it("passes the filesystem stressors, all at once, with verification", function()
    local dir = fs:path("stress")
    H.check(sys.mkdir(dir))
    -- Stressors that only use --temp-path (getdent reads /proc, /sys and
    -- /tmp, where other mounts may hang it). lockf's two processes share
    -- one open file and wait for each other's record locks: its handle is
    -- portable, so the holder's unlock never waits for the waiter's state.
    -- filename uses POSIX's portable characters: probing which characters
    -- the filesystem takes can outlast the run on a slow (sanitized) host,
    -- which then does no work.
    stress(dir, {
      hdd = "2 --hdd-bytes 4m", seek = "1 --seek-size 16m", dir = "1", dirdeep = "1",
      rename = "1", link = "1", symlink = "1", fallocate = "1 --fallocate-bytes 8m",
      flock = "1", lockf = "1", lockofd = "1", dentry = "1", chmod = "1", utime = "1",
      filename = "1 --filename-opts posix", mknod = "1", fstat = "1 --fstat-dir " .. q(dir),
      ["copy-file"] = "1", ["sync-file"] = "1 --sync-file-bytes 8m",
    }, "--timeout 6s")
    assert.is_nil(fs:log():match("[Ee]rror"), fs:log())
  end)

  it("passes the slow stressors, bounded by operations", function()
    local dir = fs:path("slow")
    H.check(sys.mkdir(dir))
    stress(dir, {
      xattr = "1 --xattr-ops 2", readahead = "1 --readahead-ops 2 --readahead-bytes 4m",
    }, "--timeout 60s")
    assert.is_nil(fs:log():match("[Ee]rror"), fs:log())
  end)
end)

-- The same stressors in memfs, each bounded by a count of operations
-- rather than by time. Several of them (hdd, seek, fallocate, readahead)
-- fstat, lseek or chmod a file that they unlinked while it was open.
describe("stress-ng in memfs.lua", function()
  local fs = testing.mounted(H.example("memfs.lua"), { once = true })

  it("passes the file stressors, bounded by operations, with verification", function()
    local dir = fs:path("stress")
    H.check(sys.mkdir(dir))
    local out = stress(dir, {
      hdd = "2 --hdd-ops 2000 --hdd-bytes 4m", seek = "1 --seek-ops 100 --seek-size 16m",
      dir = "1 --dir-ops 200", dirdeep = "1 --dirdeep-ops 100", rename = "1 --rename-ops 500",
      link = "1 --link-ops 1", symlink = "1 --symlink-ops 1",
      fallocate = "1 --fallocate-ops 20 --fallocate-bytes 8m", flock = "1 --flock-ops 10000",
      lockf = "1 --lockf-ops 5000", lockofd = "1 --lockofd-ops 10000", dentry = "1 --dentry-ops 500",
      chmod = "1 --chmod-ops 20", utime = "1 --utime-ops 500",
      filename = "1 --filename-ops 50 --filename-opts posix", mknod = "1 --mknod-ops 300",
      fstat = "1 --fstat-ops 30 --fstat-dir " .. q(dir), ["copy-file"] = "1 --copy-file-ops 20",
      ["sync-file"] = "1 --sync-file-ops 100 --sync-file-bytes 8m",
      xattr = "1 --xattr-ops 2", readahead = "1 --readahead-ops 2 --readahead-bytes 4m",
    }, "--timeout 90s")
    assert.are.equal("2000", out:match("metrc: %[%d+%] hdd%s+(%d+)"), out)
    assert.is_nil(fs:log():match("[Ee]rror"), fs:log())
  end)
end)

describe("rsync through passthrough.lua", function()
  local fs = testing.mounted(PASSTHROUGH, { once = true, scratch = true, args = { "{scratch}" } })
  local src, back

  setup(function()
    src, back = H.shm_dir(), H.shm_dir()
  end)
  teardown(function()
    if src then H.remove(src) end
    if back then H.remove(back) end
  end)

  -- A tree with what rsync -aHX keeps: modes, times, links, xattrs, holes.
  local function make_tree(dir)
    sh("mkdir -p " .. q(dir .. "/a/b/c") .. " " .. q(dir .. "/empty"))
    H.write(dir .. "/a/bin", H.bytes(3 * 1024 * 1024, 12) .. "\0\0end")
    H.write(dir .. "/a/b/text", "some text\n")
    H.write(dir .. "/a/b/c/deep", "deep\n")
    sh("cd " .. q(dir) .. " && ln -s a/b/text link && ln -s nowhere dangling && ln a/bin hard"
      .. " && chmod 640 a/b/text && chmod 4755 a/b/c/deep && chmod 700 a/b"
      .. " && truncate -s 100M sparse && printf tail >> sparse"
      .. " && mkfifo a/fifo"
      -- rsync sets the time of a new name that is not a regular file only
      -- when it differs from the one the name got by whole seconds
      .. " && find . -exec touch -h -d '2010-06-07 08:09:10.123456789' {} +"
      .. " && touch -h -d '2001-02-03 04:05:06.789' link"
      .. " && touch -d '1999-12-31 23:59:59.5' a/b/c/deep")
    assert(sys.lsetxattr(dir .. "/a/b/text", "user.rsync", "kept\0binary"))
    assert(sys.lsetxattr(dir .. "/a", "user.dir", "on a directory"))
  end

  -- Everything that should survive, one line per name, sorted.
  local function inventory(dir)
    return sh("cd " .. q(dir) .. " && find . -printf '%p %y %M %s %n %T@ %l\\n' | sort"
      .. " && getfattr --absolute-names -R -h -d -m user. -e hex . | grep -v '^#' | sort")
  end

  it("copies a tree in and out unchanged, with -aHX and --sparse", function()
    make_tree(src)
    local rsync = "rsync -aHX --sparse "
    sh(rsync .. q(src .. "/") .. " " .. q(fs:path("tree")))
    sh(rsync .. q(fs:path("tree") .. "/") .. " " .. q(back))
    assert.are.equal(inventory(src), inventory(fs:path("tree")))
    assert.are.equal(inventory(src), inventory(back))
    sh("diff -r --no-dereference -x fifo " .. q(src) .. " " .. q(back))
    -- the same bytes behind the mount
    assert.are.equal(inventory(src), inventory(fs.scratch .. "/tree"))
    -- sparse stays sparse
    assert.is_true(sys.lstat(fs.scratch .. "/tree/sparse").blocks < 1024)
    -- nothing left to do, by checksum
    assert.are.equal("", sh(rsync .. "-c -n -i " .. q(src .. "/") .. " " .. q(fs:path("tree"))))
  end)

  it("updates files in place with the delta algorithm", function()
    local file = src .. "/a/bin"
    local fd = assert(sys.open(file, H.luafs.O_RDWR))
    assert(sys.pwrite(fd, "CHANGED IN THE MIDDLE", 1500000))
    assert(sys.pwrite(fd, "and at the end", sys.fstat(fd).size))
    sys.close(fd)
    local out = sh("rsync -aHX --inplace --no-whole-file --stats " .. q(src .. "/") .. " "
      .. q(fs:path("tree")))
    -- most of the file matched: far less than its 3 MiB was sent
    local literal = tonumber((out:match("Literal data: ([%d,]+)") or ""):gsub(",", "") .. "")
    assert(literal and literal < 1024 * 1024, out)
    H.assert_same_bytes(H.read(file), H.read(fs:path("tree/a/bin")), "a/bin after the update")
    assert.are.equal(inventory(src), inventory(fs:path("tree")))
    -- and deletions
    assert(sys.unlink(src .. "/a/b/text"))
    sh("touch -d '2011-01-01 00:00:00.5' " .. q(src .. "/a/b")) -- see make_tree
    sh("rsync -aHX --delete " .. q(src .. "/") .. " " .. q(fs:path("tree")))
    assert.are.equal("ENOENT", H.err(sys.lstat, fs:path("tree/a/b/text")))
    assert.are.equal(inventory(src), inventory(fs:path("tree")))
  end)
end)
