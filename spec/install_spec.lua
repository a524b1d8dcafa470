-- spec/install_spec.lua: what `meson install` gives a user who tests a
-- filesystem.  The source tree is installed into a temporary prefix; in a
-- directory of their own, with no environment but PATH and HOME, the
-- README's spec runs with the README's command against the installed host
-- and modules, and a test that fails shows the host's log.
local H = require "spec.helpers"

local testing, lfs = H.testing, H.lfs
local q = H.quote

-- The spec and the command that README.md's "Testing your filesystem"
-- shows, so that what users read is what runs here.
local function readme_example()
  local readme = assert(H.read(H.root .. "/README.md"))
  local section = readme:match("\n## Testing your filesystem\n(.-)\n## ")
  assert(section, "README.md has no section \"Testing your filesystem\"")
  local spec = section:match("```lua\n(.-)```")
  assert(spec, "the README's section has no Lua block")
  local command = section:match("\n    (luafs%-busted [^\n]*)\n")
  assert(command, "the README's section has no luafs-busted command")
  return spec, command
end

describe("an installed luafs", function()
  local tmp, prefix, home
  local spec, command = readme_example()
  local users = 0

  setup(function()
    tmp = H.temp_dir()
    prefix = tmp .. "/prefix"
    home = tmp .. "/home"
    local build = tmp .. "/build"
    local code, out = H.shell(string.format(
      "meson setup %s %s --prefix=%s && meson install --quiet -C %s && mkdir %s",
      q(build), q(H.root), q(prefix), q(build), q(home)))
    assert(code == 0, out)
  end)
  teardown(function()
    if tmp then H.remove(tmp) end
  end)

  -- A fresh directory of the user's own, outside the source tree, with
  -- the installed hello.lua (changed by `edit` when given) and the
  -- README's spec.
  local function user_dir(edit)
    users = users + 1
    local dir = tmp .. "/user" .. users
    assert(lfs.mkdir(dir))
    local script = assert(H.read(prefix .. "/share/luafs/examples/hello.lua"))
    H.write(dir .. "/hello.lua", edit and edit(script) or script)
    H.write(dir .. "/hello_spec.lua", spec)
    return dir
  end

  -- Runs `cmd` in `dir` with nothing in the environment but PATH and HOME.
  local function run(dir, path, cmd)
    return H.shell(string.format("cd %s && env -i PATH=%s HOME=%s %s",
      q(dir), q(path), q(home), cmd))
  end

  local function assert_passed(code, out)
    assert.are.equal(0, code, out)
    local n = out:match("(%d+) successe?s? / 0 failures / 0 errors")
    assert.truthy(n and tonumber(n) >= 1, out)
  end

  it("installs luafs-busted beside luafs, and nothing outside the prefix", function()
    local log = assert(H.read(tmp .. "/build/meson-logs/install-log.txt"))
    local files = {}
    for line in log:gmatch("[^\n]+") do
      if not line:match("^#") then
        assert.truthy(line == prefix or line:sub(1, #prefix + 1) == prefix .. "/",
          "installed outside the prefix: " .. line)
        files[line] = true
      end
    end
    assert.truthy(files[prefix .. "/bin/luafs"], log)
    assert.truthy(files[prefix .. "/bin/luafs-busted"], log)
    assert.are.equal("rwxr-xr-x", lfs.attributes(prefix .. "/bin/luafs-busted", "permissions"))
  end)

  it("runs the README's spec with the README's command", function()
    assert_passed(run(user_dir(), prefix .. "/bin:/usr/bin:/bin", command))
  end)

  it("mounts with the installed host when luafs is not on the PATH", function()
    local path = "/usr/bin:/bin"
    local found = run(tmp, path, "sh -c 'command -v luafs'")
    assert.are_not.equal(0, found, "a luafs on " .. path .. " would hide the installed one")
    assert_passed(run(user_dir(), path, q(prefix .. "/bin/") .. command))
  end)

  it("fails a failing test, with the host's log in the output", function()
    local dir = user_dir(function(script)
      local broken, n = script:gsub("\nfunction fs%.read%(.-\n",
        "\nfunction fs.read() error(\"read-failure-marker\") end\n")
      assert.are.equal(1, n, "hello.lua has no one-line fs.read")
      return broken
    end)
    local code, out = run(dir, prefix .. "/bin:/usr/bin:/bin", command)
    assert.are_not.equal(0, code, out)
    assert.truthy(out:match("0 successes / 1 failure / 0 errors"), out)
    assert.truthy(out:find("\n--- luafs host log ---\n", 1, true), out)
    assert.truthy(out:find("read-failure-marker", 1, true), out)
    local mountpoint = out:match("mounted on (%S+)")
    assert.truthy(mountpoint, out)
    assert.are.equal(0, testing.mounted_at(mountpoint))
    assert.is_nil(lfs.attributes(mountpoint), mountpoint .. " was left behind")
  end)

  it("says what is missing when busted is not on the PATH", function()
    local code, out = run(user_dir(), prefix .. "/bin", command)
    assert.are.equal(127, code, out)
    assert.truthy(out:find("luafs-busted: busted is not on the PATH", 1, true), out)
  end)
end)
