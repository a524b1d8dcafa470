-- spec/sys_spec.lua: luafs.sys, called directly from lua5.4 through the
-- plain module (build/luafs.so), against fresh directories on tmpfs:
-- results checked against what the system reports by other means (lfs,
-- stat(1), coreutils), failures in the shape nil, message, errno, bad
-- arguments raising; and a mount whose getattr is only
-- `return sys.lstat(root .. path)`, to show that a stat table is a
-- complete getattr answer.
local H = require "spec.helpers"

local testing, luafs, sys, lfs = H.testing, H.luafs, H.sys, H.lfs
local q, octal = H.quote, H.octal

local O_RDONLY, O_WRONLY, O_RDWR = luafs.O_RDONLY, luafs.O_WRONLY, luafs.O_RDWR
local O_CREAT, O_EXCL, O_TRUNC, O_DIRECTORY = luafs.O_CREAT, luafs.O_EXCL, luafs.O_TRUNC, luafs.O_DIRECTORY
local AT_FDCWD, AT_SYMLINK_NOFOLLOW, AT_REMOVEDIR = luafs.AT_FDCWD, luafs.AT_SYMLINK_NOFOLLOW, luafs.AT_REMOVEDIR
local SEEK_SET, SEEK_CUR, SEEK_END = luafs.SEEK_SET, luafs.SEEK_CUR, luafs.SEEK_END

local STAT_KEYS = { "dev", "ino", "mode", "nlink", "uid", "gid", "rdev", "size", "blksize", "blocks",
  "atime", "mtime", "ctime", "atime_nsec", "mtime_nsec", "ctime_nsec" }

local function sh(cmd)
  local code, out = H.shell(cmd)
  assert(code == 0, cmd .. ": " .. out)
  return (out:gsub("\n$", ""))
end

-- Asserts that the call failed with errno `name`, in the shape
-- nil, "CALL...: message", errno; returns the message.
local function fails(name, call, f, ...)
  local r = table.pack(f(...))
  assert.are.equal(3, r.n, call .. ": " .. r.n .. " results")
  assert.is_nil(r[1], call .. " succeeded")
  assert.are.equal("string", type(r[2]))
  assert.are.equal(call, r[2]:match("^([%w_]+):"), r[2])
  assert.are.equal(H.errname(assert(luafs[name], name)), H.errname(r[3]), r[2])
  assert.truthy(r[2]:find(sys.strerror(r[3]), 1, true), r[2])
  return r[2]
end

-- Asserts that the call raised an argument error.
local function raises(f, ...)
  local ok, err = pcall(f, ...)
  assert.is_false(ok, "no error")
  assert.matches("bad argument", tostring(err), 1, true)
end

describe("luafs.sys", function()
  local d

  before_each(function() d = H.shm_dir() end)
  after_each(function() H.remove(d) end)

  describe("file status", function()
    it("fails with the call, the path and the system's text, however long the path", function()
      local short = d .. "/nope"
      assert.same({ nil, "lstat: " .. short .. ": No such file or directory", luafs.ENOENT },
        { sys.lstat(short) })
      -- over any buffer kept on the C stack, and still within PATH_MAX
      local long = short .. string.rep("/x", 1900)
      assert.same({ nil, "lstat: " .. long .. ": No such file or directory", luafs.ENOENT },
        { sys.lstat(long) })
      assert.same({ nil, "rename: " .. long .. " -> " .. long .. "y: No such file or directory", luafs.ENOENT },
        { sys.rename(long, long .. "y") })
    end)

    it("returns stat tables with exactly getattr's fields, as the system sees them", function()
      H.write(d .. "/f", "12345")
      local st = assert(sys.lstat(d .. "/f"))
      local keys = {}
      for k in pairs(st) do keys[#keys + 1] = k end
      table.sort(keys)
      local want = { table.unpack(STAT_KEYS) }
      table.sort(want)
      assert.same(want, keys)
      for _, k in ipairs(STAT_KEYS) do assert.are.equal("integer", math.type(st[k]), k) end
      local a = lfs.symlinkattributes(d .. "/f")
      assert.same({ a.dev, a.ino, a.nlink, a.uid, a.gid, a.size, a.blksize, a.blocks },
        { st.dev, st.ino, st.nlink, st.uid, st.gid, st.size, st.blksize, st.blocks })
      assert.are.equal(luafs.S_IFREG, st.mode & luafs.S_IFMT)
      -- nanoseconds, as stat(1) shows them
      local times = sh("stat -c '%X %x %Y %y' " .. q(d .. "/f"))
      local ns = times:match("^%d+ %S+ %d+:%d+:%d+%.(%d+)")
      assert.are.equal(tonumber(times:match("^(%d+)")), st.atime)
      assert.are.equal(tonumber(ns), st.atime_nsec)
      assert.are.equal(tonumber(sh("stat -c %Y " .. q(d .. "/f"))), st.mtime)
    end)

    it("has stat, lstat, fstat and fstatat agree, and tell links from targets", function()
      H.write(d .. "/f", "x")
      assert(sys.symlink("f", d .. "/s"))
      local fd = assert(sys.open(d .. "/f", O_RDONLY))
      local dfd = assert(sys.open(d, O_RDONLY | O_DIRECTORY))
      local f = sys.lstat(d .. "/f")
      assert.same(f, sys.stat(d .. "/s"))
      assert.same(f, sys.fstat(fd))
      assert.same(f, sys.fstatat(dfd, "f"))
      assert.same(f, sys.fstatat(dfd, "s"))
      assert.same(sys.lstat(d .. "/s"), sys.fstatat(dfd, "s", AT_SYMLINK_NOFOLLOW))
      assert.same(sys.lstat(d .. "/f"), sys.fstatat(AT_FDCWD, d .. "/f"))
      assert.are.equal(luafs.S_IFLNK, sys.lstat(d .. "/s").mode & luafs.S_IFMT)
      assert.are.equal(1, sys.lstat(d .. "/s").size)
      assert.same(sys.fstat(dfd), sys.fstatat(dfd, "", luafs.AT_EMPTY_PATH))
      fails("ENOENT", "lstat", sys.lstat, d .. "/nope")
      fails("ENOENT", "stat", sys.stat, d .. "/nope")
      fails("ENOTDIR", "lstat", sys.lstat, d .. "/f/x")
      fails("EBADF", "fstat", sys.fstat, 9999)
      fails("ENOENT", "fstatat", sys.fstatat, dfd, "nope")
      fails("ENOTDIR", "fstatat", sys.fstatat, fd, "x")
      sys.close(fd)
      sys.close(dfd)
      assert.truthy(fails("ENOENT", "lstat", sys.lstat, d .. "/nope"):find(d .. "/nope", 1, true))
    end)

    it("reports filesystem statistics like df", function()
      local v = assert(sys.statvfs(d))
      for _, k in ipairs { "bsize", "frsize", "blocks", "bfree", "bavail", "files", "ffree",
                           "favail", "fsid", "flag", "namemax" } do
        assert.are.equal("integer", math.type(v[k]), k)
      end
      local fd = assert(sys.open(d, O_RDONLY))
      local fv = assert(sys.fstatvfs(fd))
      sys.close(fd)
      assert.same({ v.bsize, v.blocks, v.namemax }, { fv.bsize, fv.blocks, fv.namemax })
      assert.are.equal(tonumber(sh("stat -f -c %S " .. q(d))), v.bsize)
      assert.are.equal(tonumber(sh("stat -f -c %b " .. q(d))), v.blocks)
      assert.are.equal(255, v.namemax)
      fails("ENOENT", "statvfs", sys.statvfs, d .. "/nope")
      fails("EBADF", "fstatvfs", sys.fstatvfs, -1)
    end)
  end)

  describe("reading and writing", function()
    it("opens, writes, reads and seeks, keeping every byte", function()
      local data = "a\0b\0\255" .. H.bytes(200000, 2)
      local fd = assert(sys.open(d .. "/f", O_RDWR | O_CREAT | O_EXCL, octal "600"))
      assert.are.equal("integer", math.type(fd))
      assert.are.equal(#data, sys.write(fd, data))
      assert.are.equal(#data, sys.lseek(fd, 0, SEEK_CUR))
      assert.are.equal(0, sys.lseek(fd, 0, SEEK_SET))
      assert.are.equal(data:sub(1, 1000), sys.read(fd, 1000))
      assert.are.equal(data:sub(1001), sys.read(fd, #data))
      assert.are.equal("", sys.read(fd, 10)) -- end of file
      assert.are.equal(5, sys.pwrite(fd, "XXXXX", 2))
      assert.are.equal("a\0XXXXX", sys.pread(fd, 7, 0))
      assert.are.equal("", sys.pread(fd, 10, #data + 100))
      assert.are.equal(#data, sys.lseek(fd, 0, SEEK_END))
      assert(sys.close(fd))
      fails("EBADF", "close", sys.close, fd)
      H.assert_same_bytes(data:sub(1, 2) .. "XXXXX" .. data:sub(8), H.read(d .. "/f"), "the file")
      assert.are.equal(octal "100600", sys.lstat(d .. "/f").mode)

      fails("EEXIST", "open", sys.open, d .. "/f", O_RDWR | O_CREAT | O_EXCL)
      fails("ENOENT", "open", sys.open, d .. "/nope", O_RDONLY)
      fails("EISDIR", "open", sys.open, d, O_WRONLY)
      fails("EBADF", "read", sys.read, 9999, 1)
      fails("EBADF", "pread", sys.pread, 9999, 1, 0)
      fails("EBADF", "write", sys.write, 9999, "x")
      fails("EBADF", "pwrite", sys.pwrite, 9999, "x", 0)
      local ro = assert(sys.open(d .. "/f", O_RDONLY))
      fails("EBADF", "write", sys.write, ro, "x")
      fails("EINVAL", "pread", sys.pread, ro, 1, -1)
      fails("EINVAL", "lseek", sys.lseek, ro, -1, SEEK_SET)
      sys.close(ro)
    end)

    it("opens relative to a directory descriptor with openat", function()
      assert(sys.mkdir(d .. "/sub"))
      local dfd = assert(sys.open(d .. "/sub", O_RDONLY | O_DIRECTORY))
      local fd = assert(sys.openat(dfd, "f", O_WRONLY | O_CREAT | O_TRUNC, octal "640"))
      assert.are.equal(3, sys.write(fd, "abc"))
      sys.close(fd)
      assert.are.equal("abc", H.read(d .. "/sub/f"))
      assert.are.equal(octal "100640" & ~sys.umask(sys.umask(0)), sys.lstat(d .. "/sub/f").mode)
      fails("ENOENT", "openat", sys.openat, dfd, "nope", O_RDONLY)
      fails("ENOTDIR", "openat", sys.openat, dfd, "f/x", O_RDONLY)
      sys.close(dfd)
      fd = assert(sys.openat(AT_FDCWD, d .. "/sub/f", O_RDONLY))
      assert.are.equal("abc", sys.read(fd, 10))
      sys.close(fd)
    end)

    it("truncates, allocates, copies ranges and finds holes", function()
      local fd = assert(sys.open(d .. "/f", O_RDWR | O_CREAT, octal "644"))
      assert(sys.ftruncate(fd, 3 * 4096))
      assert.are.equal(3 * 4096, sys.fstat(fd).size)
      assert(sys.truncate(d .. "/f", 10))
      assert.are.equal(10, sys.fstat(fd).size)
      fails("ENOENT", "truncate", sys.truncate, d .. "/nope", 1)
      fails("EINVAL", "ftruncate", sys.ftruncate, fd, -1)
      -- fallocate: allocation, a hole, and what tmpfs refuses
      assert(sys.fallocate(fd, 0, 0, 8 * 4096))
      assert.are.equal(8 * 4096, sys.fstat(fd).size)
      assert(sys.fallocate(fd, luafs.FALLOC_FL_KEEP_SIZE, 8 * 4096, 4096))
      assert.are.equal(8 * 4096, sys.fstat(fd).size)
      assert(sys.fallocate(fd, luafs.FALLOC_FL_PUNCH_HOLE | luafs.FALLOC_FL_KEEP_SIZE, 0, 4096))
      fails("EOPNOTSUPP", "fallocate", sys.fallocate, fd, luafs.FALLOC_FL_ZERO_RANGE, 0, 4096)
      fails("EINVAL", "fallocate", sys.fallocate, fd, 0, 0, 0)
      fails("ENOSPC", "fallocate", sys.fallocate, fd, 0, 0, 1 << 50)
      fails("EBADF", "fallocate", sys.fallocate, 9999, 0, 0, 1)
      -- SEEK_DATA, SEEK_HOLE
      assert.are.equal(10, sys.pwrite(fd, "0123456789", 4 * 4096))
      assert(sys.fallocate(fd, luafs.FALLOC_FL_PUNCH_HOLE | luafs.FALLOC_FL_KEEP_SIZE, 0, 4 * 4096))
      assert.are.equal(4 * 4096, sys.lseek(fd, 0, luafs.SEEK_DATA))
      assert.are.equal(0, sys.lseek(fd, 0, luafs.SEEK_HOLE))
      fails("ENXIO", "lseek", sys.lseek, fd, 100 * 4096, luafs.SEEK_DATA)
      -- copy_file_range: explicit offsets, and the file offsets (nil)
      local out = assert(sys.open(d .. "/g", O_RDWR | O_CREAT, octal "644"))
      assert.are.equal(4, sys.copy_file_range(fd, 4 * 4096 + 2, out, 1, 4))
      assert.are.equal("\0" .. "2345", sys.pread(out, 10, 0))
      assert(sys.lseek(fd, 4 * 4096 + 6, SEEK_SET))
      assert(sys.lseek(out, 5, SEEK_SET))
      assert.are.equal(4, sys.copy_file_range(fd, nil, out, nil, 4))
      assert.are.equal("\0" .. "23456789", sys.pread(out, 20, 0))
      assert.are.equal(4 * 4096 + 10, sys.lseek(fd, 0, SEEK_CUR))
      assert.are.equal(0, sys.copy_file_range(fd, 8 * 4096, out, 0, 10)) -- at the end
      local ro = assert(sys.open(d .. "/g", O_RDONLY))
      fails("EBADF", "copy_file_range", sys.copy_file_range, fd, 0, ro, 0, 1)
      sys.close(ro)
      -- fsync, fdatasync
      assert.is_true(sys.fsync(fd))
      assert.is_true(sys.fdatasync(fd))
      fails("EBADF", "fsync", sys.fsync, 9999)
      fails("EBADF", "fdatasync", sys.fdatasync, 9999)
      sys.close(fd)
      sys.close(out)
    end)
  end)

  describe("names and links", function()
    it("makes and reads symlinks, also relative to directory descriptors", function()
      local dfd = assert(sys.open(d, O_RDONLY | O_DIRECTORY))
      assert.is_true(sys.symlink("target/with\tspace", d .. "/s"))
      assert.are.equal("target/with\tspace", sys.readlink(d .. "/s"))
      assert.is_true(sys.symlinkat("t2", dfd, "s2"))
      assert.are.equal("t2", sys.readlinkat(dfd, "s2"))
      assert.are.equal(sh("readlink " .. q(d .. "/s2")), sys.readlink(d .. "/s2"))
      local long = string.rep("x/", 2000)
      assert(sys.symlink(long, d .. "/long"))
      assert.are.equal(long, sys.readlink(d .. "/long"))
      fails("EEXIST", "symlink", sys.symlink, "x", d .. "/s")
      fails("EEXIST", "symlinkat", sys.symlinkat, "x", dfd, "s")
      H.write(d .. "/f", "x")
      fails("EINVAL", "readlink", sys.readlink, d .. "/f")
      fails("ENOENT", "readlinkat", sys.readlinkat, dfd, "nope")
      sys.close(dfd)
    end)

    it("makes hard links with link and linkat", function()
      H.write(d .. "/f", "x")
      assert(sys.symlink("f", d .. "/s"))
      local dfd = assert(sys.open(d, O_RDONLY | O_DIRECTORY))
      assert.is_true(sys.link(d .. "/f", d .. "/h"))
      assert.is_true(sys.linkat(dfd, "f", dfd, "h2"))
      assert.are.equal(3, sys.lstat(d .. "/f").nlink)
      assert.are.equal(sys.lstat(d .. "/f").ino, sys.lstat(d .. "/h2").ino)
      -- linkat links the symlink itself unless told to follow it
      assert(sys.linkat(dfd, "s", dfd, "sl"))
      assert.are.equal(luafs.S_IFLNK, sys.lstat(d .. "/sl").mode & luafs.S_IFMT)
      assert(sys.linkat(dfd, "s", dfd, "sf", luafs.AT_SYMLINK_FOLLOW))
      assert.are.equal(luafs.S_IFREG, sys.lstat(d .. "/sf").mode & luafs.S_IFMT)
      local msg = fails("EEXIST", "link", sys.link, d .. "/f", d .. "/h")
      assert.truthy(msg:find(d .. "/f -> " .. d .. "/h", 1, true), msg)
      fails("EPERM", "link", sys.link, d, d .. "/dirlink")
      fails("ENOENT", "linkat", sys.linkat, dfd, "nope", dfd, "x")
      sys.close(dfd)
    end)

    it("makes and removes directories and names", function()
      local dfd = assert(sys.open(d, O_RDONLY | O_DIRECTORY))
      local old = sys.umask(0)
      assert.is_true(sys.mkdir(d .. "/a", octal "750"))
      assert.is_true(sys.mkdirat(dfd, "b", octal "700"))
      assert.is_true(sys.mkdir(d .. "/c"))
      sys.umask(old)
      assert.are.equal(octal "40750", sys.lstat(d .. "/a").mode)
      assert.are.equal(octal "40700", sys.lstat(d .. "/b").mode)
      assert.are.equal(octal "40777", sys.lstat(d .. "/c").mode)
      fails("EEXIST", "mkdir", sys.mkdir, d .. "/a")
      fails("EEXIST", "mkdirat", sys.mkdirat, dfd, "b")
      H.write(d .. "/a/f", "x")
      fails("ENOTEMPTY", "rmdir", sys.rmdir, d .. "/a")
      fails("EISDIR", "unlink", sys.unlink, d .. "/a")
      fails("ENOTDIR", "rmdir", sys.rmdir, d .. "/a/f")
      assert.is_true(sys.unlink(d .. "/a/f"))
      fails("ENOENT", "unlink", sys.unlink, d .. "/a/f")
      assert.is_true(sys.rmdir(d .. "/a"))
      assert.is_true(sys.unlinkat(dfd, "b", AT_REMOVEDIR))
      H.write(d .. "/g", "x")
      assert.is_true(sys.unlinkat(dfd, "g"))
      fails("ENOENT", "unlinkat", sys.unlinkat, dfd, "g", 0)
      fails("EISDIR", "unlinkat", sys.unlinkat, dfd, "c", 0)
      sys.close(dfd)
      assert.same({ ".", "..", "c" }, H.listing(d))
    end)

    it("renames, with RENAME_NOREPLACE and RENAME_EXCHANGE, also with renameat2", function()
      H.write(d .. "/a", "A")
      H.write(d .. "/b", "B")
      local dfd = assert(sys.open(d, O_RDONLY | O_DIRECTORY))
      fails("EEXIST", "rename", sys.rename, d .. "/a", d .. "/b", luafs.RENAME_NOREPLACE)
      assert.is_true(sys.rename(d .. "/a", d .. "/b", luafs.RENAME_EXCHANGE))
      assert.same({ "B", "A" }, { H.read(d .. "/a"), H.read(d .. "/b") })
      assert.is_true(sys.renameat2(dfd, "a", dfd, "c", luafs.RENAME_NOREPLACE))
      assert.is_true(sys.renameat2(dfd, "c", dfd, "b"))
      assert.are.equal("B", H.read(d .. "/b"))
      assert.is_true(sys.rename(d .. "/b", d .. "/z"))
      local msg = fails("ENOENT", "rename", sys.rename, d .. "/b", d .. "/y")
      assert.truthy(msg:find(d .. "/b -> " .. d .. "/y", 1, true), msg)
      fails("ENOENT", "renameat2", sys.renameat2, dfd, "z", dfd, "y", luafs.RENAME_EXCHANGE)
      fails("EINVAL", "renameat2", sys.renameat2, dfd, "z", dfd, "y",
        luafs.RENAME_EXCHANGE | luafs.RENAME_NOREPLACE)
      sys.close(dfd)
      assert.same({ ".", "..", "z" }, H.listing(d))
    end)

    it("makes fifos and nodes with mknod, mknodat and mkfifo", function()
      local dfd = assert(sys.open(d, O_RDONLY | O_DIRECTORY))
      assert.is_true(sys.mkfifo(d .. "/p", octal "600"))
      assert.are.equal(luafs.S_IFIFO, sys.lstat(d .. "/p").mode & luafs.S_IFMT)
      assert.is_true(sys.mknod(d .. "/p2", luafs.S_IFIFO | octal "600"))
      assert.is_true(sys.mknodat(dfd, "r", luafs.S_IFREG | octal "600", 0))
      assert.are.equal(luafs.S_IFREG, sys.lstat(d .. "/r").mode & luafs.S_IFMT)
      if sys.geteuid() == 0 then
        assert.is_true(sys.mknod(d .. "/null", luafs.S_IFCHR | octal "666", (1 << 8) | 3))
        assert.are.equal((1 << 8) | 3, sys.lstat(d .. "/null").rdev)
        assert.are.equal("1,3", sh("stat -c %Hr,%Lr " .. q(d .. "/null")))
      end
      fails("EEXIST", "mkfifo", sys.mkfifo, d .. "/p")
      fails("EEXIST", "mknodat", sys.mknodat, dfd, "p", luafs.S_IFIFO | octal "600", 0)
      fails("ENOENT", "mknod", sys.mknod, d .. "/no/p", luafs.S_IFIFO | octal "600")
      sys.close(dfd)
    end)
  end)

  describe("permissions, owners, times", function()
    it("changes modes with chmod, fchmod and fchmodat", function()
      H.write(d .. "/f", "x")
      assert(sys.symlink("f", d .. "/s"))
      local dfd = assert(sys.open(d, O_RDONLY | O_DIRECTORY))
      assert.is_true(sys.chmod(d .. "/f", octal "4751"))
      assert.are.equal(octal "104751", sys.lstat(d .. "/f").mode)
      local fd = assert(sys.open(d .. "/f", O_RDONLY))
      assert.is_true(sys.fchmod(fd, octal "600"))
      assert.is_true(sys.fchmodat(dfd, "f", octal "640"))
      assert.are.equal(octal "640", tonumber(sh("stat -c %a " .. q(d .. "/f")), 8))
      fails("EOPNOTSUPP", "fchmodat", sys.fchmodat, dfd, "s", octal "600", AT_SYMLINK_NOFOLLOW)
      fails("ENOENT", "chmod", sys.chmod, d .. "/nope", octal "600")
      fails("EBADF", "fchmod", sys.fchmod, 9999, octal "600")
      sys.close(fd)
      sys.close(dfd)
    end)

    it("changes owners with chown, lchown, fchown and fchownat (-1 leaves one alone)", function()
      if sys.geteuid() ~= 0 then
        pending("needs root")
        return
      end
      H.write(d .. "/f", "x")
      assert(sys.symlink("f", d .. "/s"))
      local dfd = assert(sys.open(d, O_RDONLY | O_DIRECTORY))
      assert.is_true(sys.chown(d .. "/f", 1234, 5678))
      assert.are.equal("1234:5678", sh("stat -c %u:%g " .. q(d .. "/f")))
      assert.is_true(sys.chown(d .. "/f", -1, 42))
      assert.are.equal("1234:42", sh("stat -c %u:%g " .. q(d .. "/f")))
      assert.is_true(sys.lchown(d .. "/s", 7, 8))
      assert.are.equal("7:8", sh("stat -c %u:%g " .. q(d .. "/s")))
      assert.are.equal("1234:42", sh("stat -c %u:%g " .. q(d .. "/f")))
      local fd = assert(sys.open(d .. "/f", O_RDONLY))
      assert.is_true(sys.fchown(fd, 5, -1))
      assert.is_true(sys.fchownat(dfd, "s", 9, 10, AT_SYMLINK_NOFOLLOW))
      assert.are.equal("5:42 9:10", sh("stat -c %u:%g " .. q(d .. "/f")) .. " "
        .. sh("stat -c %u:%g " .. q(d .. "/s")))
      fails("ENOENT", "chown", sys.chown, d .. "/nope", 1, 1)
      fails("ENOENT", "lchown", sys.lchown, d .. "/nope", 1, 1)
      fails("EBADF", "fchown", sys.fchown, 9999, 1, 1)
      fails("ENOENT", "fchownat", sys.fchownat, dfd, "nope", 1, 1)
      sys.close(fd)
      sys.close(dfd)
    end)

    it("sets times to the nanosecond with utimensat and futimens", function()
      H.write(d .. "/f", "x")
      assert(sys.symlink("f", d .. "/s"))
      assert.is_true(sys.utimensat(AT_FDCWD, d .. "/f", 1000000000, 123456789, 2000000000, 987654321))
      local st = sys.lstat(d .. "/f")
      assert.same({ 1000000000, 123456789, 2000000000, 987654321 },
        { st.atime, st.atime_nsec, st.mtime, st.mtime_nsec })
      assert.are.equal("2000000000.987654321", sh("stat -c %.9Y " .. q(d .. "/f")))
      assert(sys.utimensat(AT_FDCWD, d .. "/f", 0, luafs.UTIME_OMIT, 5, 6))
      st = sys.lstat(d .. "/f")
      assert.same({ 1000000000, 123456789, 5, 6 }, { st.atime, st.atime_nsec, st.mtime, st.mtime_nsec })
      local before = os.time()
      assert(sys.utimensat(AT_FDCWD, d .. "/f", 0, luafs.UTIME_NOW, 0, luafs.UTIME_OMIT))
      st = sys.lstat(d .. "/f")
      assert.is_true(st.atime >= before - 1 and st.atime <= os.time() + 1)
      assert(sys.utimensat(AT_FDCWD, d .. "/s", 7, 8, 9, 10, AT_SYMLINK_NOFOLLOW))
      assert.same({ 9, 10 }, { sys.lstat(d .. "/s").mtime, sys.lstat(d .. "/s").mtime_nsec })
      assert.are.equal(5, sys.lstat(d .. "/f").mtime)
      local fd = assert(sys.open(d .. "/f", O_WRONLY))
      assert.is_true(sys.futimens(fd, 11, 12, -13, 14))
      st = sys.fstat(fd)
      assert.same({ 11, 12, -13, 14 }, { st.atime, st.atime_nsec, st.mtime, st.mtime_nsec })
      fails("EINVAL", "futimens", sys.futimens, fd, 0, 1000000000, 0, 0)
      sys.close(fd)
      fails("ENOENT", "utimensat", sys.utimensat, AT_FDCWD, d .. "/nope", 0, 0, 0, 0)
      fails("EBADF", "futimens", sys.futimens, 9999, 0, 0, 0, 0)
    end)

    it("checks access with access and faccessat", function()
      H.write(d .. "/f", "x")
      assert(sys.chmod(d .. "/f", octal "644"))
      local dfd = assert(sys.open(d, O_RDONLY | O_DIRECTORY))
      assert.is_true(sys.access(d .. "/f", luafs.R_OK | luafs.W_OK))
      assert.is_true(sys.faccessat(dfd, "f", luafs.F_OK))
      if sys.geteuid() ~= 0 then
        fails("EACCES", "access", sys.access, d .. "/f", luafs.X_OK)
      else
        -- root may execute only what someone may execute
        fails("EACCES", "faccessat", sys.faccessat, dfd, "f", luafs.X_OK)
      end
      fails("ENOENT", "access", sys.access, d .. "/nope", luafs.F_OK)
      fails("ENOENT", "faccessat", sys.faccessat, dfd, "nope", luafs.F_OK)
      sys.close(dfd)
    end)

    it("sets the umask and tells the process's ids", function()
      local old = sys.umask(octal "027")
      assert.are.equal(octal "027", sys.umask(old))
      assert.are.equal(tonumber(sh("id -ru")), sys.getuid())
      assert.are.equal(tonumber(sh("id -u")), sys.geteuid())
      assert.are.equal(tonumber(sh("id -rg")), sys.getgid())
      assert.are.equal(tonumber(sh("id -g")), sys.getegid())
      local stat = assert(H.read("/proc/self/stat"))
      assert.are.equal(tonumber(stat:match("^(%d+)")), sys.getpid())
      assert.are.equal("No such file or directory", sys.strerror(luafs.ENOENT))
      local t0 = require("system").monotime()
      assert.is_true(sys.sleep(0.05))
      assert.is_true(require("system").monotime() - t0 >= 0.04)
    end)

    it("changes the working directory with chdir and fchdir", function()
      local home = H.check(sys.open(".", luafs.O_PATH | O_DIRECTORY))
      local function cwd() return sys.readlink("/proc/self/cwd") end
      local ok, err = pcall(function()
        assert(sys.mkdir(d .. "/sub"))
        H.write(d .. "/sub/f", "here")
        assert.is_true(sys.chdir(d))
        assert.are.equal(d, cwd())
        assert.is_true(sys.chdir("sub"))
        assert.are.equal("here", H.read("f"))
        local top = H.check(sys.open(d, luafs.O_PATH | O_DIRECTORY))
        assert.is_true(sys.fchdir(top))
        sys.close(top)
        assert.are.equal(d, cwd())
        fails("ENOENT", "chdir", sys.chdir, "nope")
        fails("ENOTDIR", "chdir", sys.chdir, "sub/f")
        local file = H.check(sys.open("sub/f", O_RDONLY))
        fails("ENOTDIR", "fchdir", sys.fchdir, file)
        sys.close(file)
        fails("EBADF", "fchdir", sys.fchdir, file)
        assert.are.equal(d, cwd())
        raises(sys.chdir, "a\0b")
        raises(sys.fchdir, "x")
      end)
      assert(sys.fchdir(home))
      sys.close(home)
      assert(ok, err)
    end)
  end)

  describe("directories", function()
    it("streams a directory with opendir, fdopendir, tell and seek", function()
      for i = 1, 300 do H.write(d .. "/f" .. i, "") end
      assert(sys.mkdir(d .. "/sub"))
      assert(sys.symlink("x", d .. "/link"))
      local dir = assert(sys.opendir(d))
      local seen, types, inos = {}, {}, {}
      local mid
      local n = 0
      while true do
        local name, ino, dtype = dir:read()
        if not name then break end
        n = n + 1
        if n == 100 then mid = dir:tell() end
        seen[#seen + 1] = name
        types[name], inos[name] = dtype, ino
      end
      assert.are.equal(304, #seen)
      table.sort(seen)
      assert.same(H.listing(d), seen)
      assert.are.equal(luafs.DT_DIR, types.sub)
      assert.are.equal(luafs.DT_LNK, types.link)
      assert.are.equal(luafs.DT_REG, types.f1)
      assert.are.equal(sys.lstat(d .. "/f7").ino, inos.f7)
      -- back to a position: the same entries follow
      assert(dir:seek(mid))
      local rest = 0
      while dir:read() do rest = rest + 1 end
      assert.are.equal(304 - 100, rest)
      assert(dir:seek(0))
      assert.is_string((dir:read()))
      assert.is_true(dir:close())
      assert.is_false((pcall(dir.read, dir)))
      assert.matches("Dir %(closed%)", tostring(dir))
      -- fdopendir owns the descriptor it takes
      local fd = assert(sys.open(d .. "/sub", O_RDONLY | O_DIRECTORY))
      do
        local sub <close> = assert(sys.fdopendir(fd))
        local names = {}
        for name in sub.read, sub do names[#names + 1] = name end
        table.sort(names)
        assert.same({ ".", ".." }, names)
      end
      fails("EBADF", "fstat", sys.fstat, fd)
      fails("ENOENT", "opendir", sys.opendir, d .. "/nope")
      fails("ENOTDIR", "opendir", sys.opendir, d .. "/f1")
      local ffd = assert(sys.open(d .. "/f1", O_RDONLY))
      fails("ENOTDIR", "fdopendir", sys.fdopendir, ffd)
      sys.close(ffd)
    end)
  end)

  describe("extended attributes", function()
    it("sets, gets, lists and removes, on paths and descriptors", function()
      H.write(d .. "/f", "x")
      assert(sys.symlink("f", d .. "/s"))
      local big = H.bytes(10000, 3)
      assert.is_true(sys.lsetxattr(d .. "/f", "user.a", "one"))
      assert.is_true(sys.lsetxattr(d .. "/f", "user.bin", "\0\1\2\0"))
      assert.is_true(sys.lsetxattr(d .. "/f", "user.big", big))
      assert.are.equal("one", sys.lgetxattr(d .. "/f", "user.a"))
      assert.are.equal("\0\1\2\0", sys.lgetxattr(d .. "/f", "user.bin"))
      assert.are.equal(big, sys.lgetxattr(d .. "/f", "user.big"))
      assert.are.equal("one", sh("getfattr --absolute-names --only-values -n user.a " .. q(d .. "/f")))
      local names = assert(sys.llistxattr(d .. "/f"))
      table.sort(names)
      assert.same({ "user.a", "user.big", "user.bin" }, names)
      fails("EEXIST", "lsetxattr", sys.lsetxattr, d .. "/f", "user.a", "x", luafs.XATTR_CREATE)
      fails("ENODATA", "lsetxattr", sys.lsetxattr, d .. "/f", "user.no", "x", luafs.XATTR_REPLACE)
      fails("ENODATA", "lgetxattr", sys.lgetxattr, d .. "/f", "user.no")
      fails("EOPNOTSUPP", "lsetxattr", sys.lsetxattr, d .. "/f", "bogus.x", "x")
      -- on the link itself: tmpfs refuses user. attributes on symlinks
      fails("EPERM", "lsetxattr", sys.lsetxattr, d .. "/s", "user.x", "x")
      assert.same({}, sys.llistxattr(d .. "/s"))
      local fd = assert(sys.open(d .. "/f", O_RDONLY))
      assert.is_true(sys.fsetxattr(fd, "user.fd", "by fd", luafs.XATTR_CREATE))
      assert.are.equal("by fd", sys.fgetxattr(fd, "user.fd"))
      assert.are.equal(4, #sys.flistxattr(fd))
      assert.is_true(sys.fremovexattr(fd, "user.fd"))
      fails("ENODATA", "fremovexattr", sys.fremovexattr, fd, "user.fd")
      fails("ENODATA", "fgetxattr", sys.fgetxattr, fd, "user.fd")
      sys.close(fd)
      assert.is_true(sys.lremovexattr(d .. "/f", "user.a"))
      fails("ENODATA", "lremovexattr", sys.lremovexattr, d .. "/f", "user.a")
      fails("ENOENT", "llistxattr", sys.llistxattr, d .. "/nope")
      fails("EBADF", "flistxattr", sys.flistxattr, 9999)
      fails("EBADF", "fsetxattr", sys.fsetxattr, 9999, "user.a", "x")
    end)
  end)

  describe("locks", function()
    it("takes flock locks per open file, with LOCK_NB", function()
      H.write(d .. "/f", "x")
      local a = assert(sys.open(d .. "/f", O_RDONLY))
      local b = assert(sys.open(d .. "/f", O_RDONLY))
      assert.is_true(sys.flock(a, luafs.LOCK_EX | luafs.LOCK_NB))
      fails("EWOULDBLOCK", "flock", sys.flock, b, luafs.LOCK_SH | luafs.LOCK_NB)
      -- another process sees it too
      assert.are.equal(1, (H.shell("flock -n " .. q(d .. "/f") .. " true")))
      assert.is_true(sys.flock(a, luafs.LOCK_UN))
      assert.is_true(sys.flock(b, luafs.LOCK_SH | luafs.LOCK_NB))
      assert.is_true(sys.flock(a, luafs.LOCK_SH | luafs.LOCK_NB))
      fails("EBADF", "flock", sys.flock, 9999, luafs.LOCK_SH)
      sys.close(a)
      sys.close(b)
    end)

    it("tests and takes record locks with fcntl_lock, OFD locks included", function()
      H.write(d .. "/f", string.rep("x", 100))
      local a = assert(sys.open(d .. "/f", O_RDWR))
      local b = assert(sys.open(d .. "/f", O_RDWR))
      local F_OFD_GETLK, F_OFD_SETLK = luafs.F_OFD_GETLK, luafs.F_OFD_SETLK
      local lk = { type = luafs.F_WRLCK, whence = SEEK_SET, start = 10, len = 5 }
      assert.are.equal(lk, sys.fcntl_lock(a, F_OFD_SETLK, lk)) -- the same table back
      local t = assert(sys.fcntl_lock(b, F_OFD_GETLK, { type = luafs.F_RDLCK, start = 0, len = 0 }))
      assert.same({ luafs.F_WRLCK, 10, 5, -1 }, { t.type, t.start, t.len, t.pid })
      fails("EAGAIN", "fcntl", sys.fcntl_lock, b, F_OFD_SETLK, { type = luafs.F_RDLCK, start = 12, len = 1 })
      assert(sys.fcntl_lock(b, F_OFD_SETLK, { type = luafs.F_RDLCK, start = 20, len = 1 }))
      t = assert(sys.fcntl_lock(b, F_OFD_GETLK, { type = luafs.F_WRLCK, start = 50, len = 10 }))
      assert.are.equal(luafs.F_UNLCK, t.type)
      -- classic POSIX locks: the holder is this process
      local c = assert(sys.open(d .. "/g", O_RDWR | O_CREAT, octal "644"))
      assert(sys.fcntl_lock(c, luafs.F_SETLK, { type = luafs.F_WRLCK, start = 0, len = 1 }))
      local code, out = H.shell("flock -n " .. q(d .. "/g") .. " true; " .. "python3 -c "
        .. q("import fcntl, struct, sys\nf = open(sys.argv[1], 'r+')\n"
          .. "r = fcntl.fcntl(f, fcntl.F_GETLK, struct.pack('hhqqi', fcntl.F_WRLCK, 0, 0, 1, 0))\n"
          .. "print(struct.unpack('hhqqi', r)[4])") .. " " .. q(d .. "/g"))
      assert.are.equal(0, code, out)
      assert.are.equal(tostring(sys.getpid()), out:match("(%d+)%s*$"))
      raises(sys.fcntl_lock, a, 12345, lk)
      raises(sys.fcntl_lock, a, luafs.F_SETLK, { start = 0 })
      fails("EBADF", "fcntl", sys.fcntl_lock, 9999, luafs.F_SETLK, { type = luafs.F_RDLCK })
      sys.close(a)
      sys.close(b)
      sys.close(c)
    end)
  end)

  describe("arguments", function()
    it("raises for wrong types, values out of range and paths with zero bytes", function()
      raises(sys.lstat, nil)
      raises(sys.lstat, d .. "/f\0x")
      raises(sys.open, d .. "/f", "rw")
      raises(sys.open, d .. "/f", O_RDONLY, -1)
      raises(sys.pread, 0, -1, 0)
      raises(sys.pread, 0, 1, 0.5)
      raises(sys.close, 1 << 40)
      raises(sys.chown, d, -2, 0)
      raises(sys.lsetxattr, d, "user.a\0b", "v")
      raises(sys.sleep, -1)
      raises(sys.sleep, 0 / 0)
      raises(sys.utimensat, AT_FDCWD, d, "now", 0, 0, 0)
    end)

    it("names the argument and what is wrong with it, as the Lua library does", function()
      local function message(f, ...)
        local ok, err = pcall(f, ...)
        assert.is_false(ok, "no error")
        return tostring(err)
      end
      -- pcall calls the function, so Lua finds its name in package.loaded.
      local function bad(n, why)
        return "^bad argument #" .. n .. " to 'luafs%.sys%.[%w_]+' %(" .. why .. "%)$"
      end
      assert.matches(bad(1, "number expected, got no value"), message(sys.fstat))
      assert.matches(bad(1, "number has no integer representation"), message(sys.fstat, 0.5))
      assert.matches(bad(1, "number expected, got table"), message(sys.fstat, {}))
      assert.matches(bad(1, "out of range"), message(sys.fstat, 1 << 40))
      assert.matches(bad(3, "number expected, got string"), message(sys.fstatat, AT_FDCWD, d, "x"))
      assert.matches(bad(3, "number expected, got boolean"), message(sys.fstatat, AT_FDCWD, d, false))
      assert.matches(bad(3, "out of range"), message(sys.fstatat, AT_FDCWD, d, -(1 << 40)))
      assert.matches(bad(2, "string expected, got nil"), message(sys.fstatat, AT_FDCWD, nil))
      assert.matches(bad(2, "contains a zero byte"), message(sys.fstatat, AT_FDCWD, "a\0b"))
      assert.matches(bad(2, "number expected, got string"), message(sys.mkdir, d .. "/m", "rwx"))
    end)

    it("takes what the Lua library converts: numeric strings, numbers as paths, nil for a default", function()
      H.write(d .. "/7", "seven")
      local fd = assert(sys.open(d .. "/7", O_RDONLY))
      assert.are.equal(5, sys.fstat(tostring(fd)).size)
      assert.are.equal(5, sys.fstatat(AT_FDCWD, d .. "/7", nil).size)
      assert.are.equal(5, sys.fstatat(AT_FDCWD, d .. "/7", "0").size)
      local dirfd = assert(sys.open(d, O_RDONLY))
      assert.are.equal(5, sys.fstatat(dirfd, 7).size)
      local into = luafs.Stat()
      assert.are.equal(into, sys.fstatat(dirfd, 7, 0, into))
      assert.are.equal(5, into.size)
      local t = {}
      assert.are.equal(t, sys.fstat(fd, t))
      assert.are.equal(5, t.size)
      assert(sys.mkdir(d .. "/m", nil))
      assert.are.equal("string", type(select(2, sys.fstatat(dirfd, 8))))
      sys.close(dirfd)
      sys.close(fd)
    end)
  end)
end)

describe("a getattr that is only sys.lstat", function()
  local fs = testing.mounted(H.fixture("ops_statmirror.lua"), { once = true, scratch = true,
    args = { "{scratch}" } })

  it("gives stat(2) through the mount every field of the mirrored file", function()
    local src = fs.scratch
    H.write(src .. "/f", "12345")
    assert(sys.utimensat(AT_FDCWD, src .. "/f", 1234567890, 111, 1234567891, 222))
    assert(sys.mkdir(src .. "/dir"))
    assert(sys.symlink("f", src .. "/s"))
    assert(sys.mkfifo(src .. "/p", octal "640"))
    if sys.geteuid() == 0 then assert(sys.chown(src .. "/f", 123, 456)) end
    for _, name in ipairs { "f", "dir", "s", "p" } do
      local want, got = sys.lstat(src .. "/" .. name), sys.lstat(fs:path(name))
      for _, k in ipairs(STAT_KEYS) do
        if k ~= "dev" then
          assert.are.equal(want[k], got[k], name .. ": " .. k)
        end
      end
    end
    assert.are.equal("f", sys.readlink(fs:path("s")))
  end)
end)

-- inotify and timerfd: the descriptors that scripts watch for background
-- work.  inotify queues an event inside the system call that causes it,
-- so a non-blocking read right after the call sees it; timers are waited
-- for with a blocking read of another timer, never by sleeping.

-- The flags of an open descriptor of this process, as the kernel shows
-- them (O_CLOEXEC included), and the rest of what it shows.
local function fdinfo(fd)
  local text = assert(H.read("/proc/self/fdinfo/" .. fd))
  return tonumber(text:match("flags:%s*(%d+)"), 8), text
end

-- The error a call raises, when it is called by name (not through pcall,
-- which hides the name).
local function raised(f)
  local ok, err = pcall(f)
  assert.is_false(ok, "no error")
  return tostring(err)
end

describe("luafs.sys inotify", function()
  local IN = setmetatable({}, { __index = function(_, k) return assert(luafs["IN_" .. k], k) end })
  -- Every bit that an event can carry, in the order of their values.
  local BITS = { "IN_ACCESS", "IN_MODIFY", "IN_ATTRIB", "IN_CLOSE_WRITE", "IN_CLOSE_NOWRITE",
    "IN_OPEN", "IN_MOVED_FROM", "IN_MOVED_TO", "IN_CREATE", "IN_DELETE", "IN_DELETE_SELF",
    "IN_MOVE_SELF", "IN_UNMOUNT", "IN_Q_OVERFLOW", "IN_IGNORED", "IN_ISDIR" }
  local d, fd

  before_each(function()
    d = H.shm_dir()
    fd = assert(sys.inotify_init1(IN.NONBLOCK | IN.CLOEXEC))
  end)
  after_each(function()
    if fd then sys.close(fd) end
    H.remove(d)
  end)

  -- "IN_CREATE|IN_ISDIR name" for an event, after checking that its table
  -- has only the fields it should and that the bits by name are the mask.
  local function summary(ev)
    local names = {}
    for _, bit in ipairs(BITS) do
      assert.are.equal(ev.mask & luafs[bit] ~= 0 or nil, ev[bit], bit)
      if ev[bit] then names[#names + 1] = bit end
    end
    for k in pairs(ev) do
      assert.truthy(k == "wd" or k == "mask" or k == "cookie" or k == "name" or ev.mask & luafs[k] ~= 0, k)
    end
    assert.are.equal("integer", math.type(ev.wd))
    assert.are.equal("integer", math.type(ev.cookie))
    return table.concat(names, "|") .. " " .. (ev.name or "-")
  end

  local function summaries(events)
    local t = {}
    for i, ev in ipairs(events) do t[i] = summary(ev) end
    return t
  end

  it("reads what happens in a directory as event tables, the mask's bits by name", function()
    local wd = assert(sys.inotify_add_watch(fd, d, IN.ALL_EVENTS))
    assert.are.equal("integer", math.type(wd))
    local f = assert(sys.open(d .. "/f", luafs.O_WRONLY | luafs.O_CREAT | luafs.O_EXCL, octal "644"))
    assert(sys.write(f, "data"))
    assert(sys.close(f))
    assert(sys.rename(d .. "/f", d .. "/g"))
    assert(sys.unlink(d .. "/g"))
    assert(sys.mkdir(d .. "/sub"))
    assert(sys.rmdir(d .. "/sub"))
    local events = assert(sys.inotify_read(fd))
    assert.same({ "IN_CREATE f", "IN_OPEN f", "IN_MODIFY f", "IN_CLOSE_WRITE f",
      "IN_MOVED_FROM f", "IN_MOVED_TO g", "IN_DELETE g",
      "IN_CREATE|IN_ISDIR sub", "IN_DELETE|IN_ISDIR sub" }, summaries(events))
    for i, ev in ipairs(events) do
      assert.are.equal(wd, ev.wd, i)
      if i ~= 5 and i ~= 6 then assert.are.equal(0, ev.cookie, i) end
    end
    -- the two halves of the rename share a cookie that no other rename has
    assert.are_not.equal(0, events[5].cookie)
    assert.are.equal(events[5].cookie, events[6].cookie)
    assert(sys.mkdir(d .. "/a"))
    assert(sys.rename(d .. "/a", d .. "/b"))
    local again = assert(sys.inotify_read(fd))
    assert.same({ "IN_CREATE|IN_ISDIR a", "IN_MOVED_FROM|IN_ISDIR a", "IN_MOVED_TO|IN_ISDIR b" },
      summaries(again))
    assert.are.equal(again[2].cookie, again[3].cookie)
    assert.are_not.equal(events[5].cookie, again[2].cookie)
    fails("EAGAIN", "read", sys.inotify_read, fd)
  end)

  it("pairs the halves of a move between two watched directories by their cookie", function()
    assert(sys.mkdir(d .. "/a"))
    assert(sys.mkdir(d .. "/b"))
    local wa = assert(sys.inotify_add_watch(fd, d .. "/a", IN.MOVE))
    local wb = assert(sys.inotify_add_watch(fd, d .. "/b", IN.MOVE))
    assert.are_not.equal(wa, wb)
    H.write(d .. "/a/x", "x")
    assert(sys.rename(d .. "/a/x", d .. "/b/y"))
    local events = assert(sys.inotify_read(fd))
    assert.same({ "IN_MOVED_FROM x", "IN_MOVED_TO y" }, summaries(events))
    assert.same({ wa, wb }, { events[1].wd, events[2].wd })
    assert.are_not.equal(0, events[1].cookie)
    assert.are.equal(events[1].cookie, events[2].cookie)
  end)

  it("watches a file itself, changes a watch's mask, and ends it with IN_IGNORED", function()
    H.write(d .. "/f", "x")
    local wd = assert(sys.inotify_add_watch(fd, d .. "/f", IN.ATTRIB))
    assert.are.equal(wd, sys.inotify_add_watch(fd, d .. "/f", IN.DELETE_SELF | IN.MASK_ADD))
    assert.truthy(select(2, fdinfo(fd)):find("inotify wd:" .. wd .. " ", 1, true))
    assert(sys.chmod(d .. "/f", octal "600"))
    assert.same({ "IN_ATTRIB -" }, summaries(assert(sys.inotify_read(fd))))
    assert(sys.inotify_rm_watch(fd, wd))
    local events = assert(sys.inotify_read(fd))
    assert.same({ "IN_IGNORED -" }, summaries(events))
    assert.are.equal(wd, events[1].wd)
    fails("EINVAL", "inotify_rm_watch", sys.inotify_rm_watch, fd, wd)
    -- the kernel ends a watch itself when its file goes
    wd = assert(sys.inotify_add_watch(fd, d .. "/f", IN.DELETE_SELF | IN.ONESHOT))
    assert(sys.unlink(d .. "/f"))
    events = assert(sys.inotify_read(fd))
    assert.same({ "IN_DELETE_SELF -", "IN_IGNORED -" }, summaries(events))
    assert.same({ wd, wd }, { events[1].wd, events[2].wd })
  end)

  it("reports an overflowing queue as one event with wd -1 and IN_Q_OVERFLOW", function()
    local max = tonumber(assert(H.read("/proc/sys/fs/inotify/max_queued_events")))
    H.write(d .. "/f", "x")
    local wd = assert(sys.inotify_add_watch(fd, d .. "/f", IN.OPEN | IN.CLOSE_NOWRITE))
    -- opens and closes alternate, so that no event merges with the one before
    for _ = 1, max // 2 + 1 do
      assert(sys.close(assert(sys.open(d .. "/f", luafs.O_RDONLY))))
    end
    local events, reads = {}, 0
    while true do
      local batch, _, err = sys.inotify_read(fd)
      if not batch then
        assert.are.equal(luafs.EAGAIN, err)
        break
      end
      reads = reads + 1
      table.move(batch, 1, #batch, #events + 1, events)
    end
    assert.is_true(reads > 1, "one read took the whole queue")
    assert.are.equal(max + 1, #events)
    assert.same({ "IN_OPEN -", "IN_CLOSE_NOWRITE -" }, summaries { events[1], events[2] })
    local odd = {}
    for i = 1, max do
      local ev = events[i]
      local mask = i % 2 == 1 and IN.OPEN or IN.CLOSE_NOWRITE
      if ev.wd ~= wd or ev.mask ~= mask or ev.cookie ~= 0 or ev.name then odd[#odd + 1] = i end
    end
    assert.same({}, odd)
    local last = events[max + 1]
    assert.same({ wd = -1, mask = IN.Q_OVERFLOW, cookie = 0, IN_Q_OVERFLOW = true }, last)
  end)

  it("closes on exec by default, and takes IN_NONBLOCK and IN_CLOEXEC as given", function()
    local plain = assert(sys.inotify_init1())
    local flags = fdinfo(plain)
    assert.are.equal(luafs.O_CLOEXEC, flags & (luafs.O_CLOEXEC | luafs.O_NONBLOCK))
    sys.close(plain)
    local nb = assert(sys.inotify_init1(IN.NONBLOCK))
    flags = fdinfo(nb)
    assert.are.equal(luafs.O_NONBLOCK, flags & (luafs.O_CLOEXEC | luafs.O_NONBLOCK))
    fails("EAGAIN", "read", sys.inotify_read, nb)
    sys.close(nb)
    assert.are.equal(luafs.O_NONBLOCK | luafs.O_CLOEXEC, fdinfo(fd) & (luafs.O_CLOEXEC | luafs.O_NONBLOCK))
    -- IN_MOVE and IN_CLOSE are the pairs; IN_ALL_EVENTS has every event
    assert.are.equal(IN.MOVED_FROM | IN.MOVED_TO, IN.MOVE)
    assert.are.equal(IN.CLOSE_WRITE | IN.CLOSE_NOWRITE, IN.CLOSE)
    for i = 1, 12 do assert.are.equal(luafs[BITS[i]], IN.ALL_EVENTS & luafs[BITS[i]], BITS[i]) end
    for _, k in ipairs { "ONLYDIR", "DONT_FOLLOW", "EXCL_UNLINK", "MASK_ADD", "ONESHOT" } do
      assert.are.equal("integer", math.type(IN[k]), k)
    end
  end)

  it("fails in the shape nil, message, errno", function()
    local msg = fails("ENOENT", "inotify_add_watch", sys.inotify_add_watch, fd, d .. "/nope", IN.CREATE)
    assert.truthy(msg:find(d .. "/nope", 1, true), msg)
    H.write(d .. "/f", "x")
    fails("ENOTDIR", "inotify_add_watch", sys.inotify_add_watch, fd, d .. "/f", IN.CREATE | IN.ONLYDIR)
    fails("EINVAL", "inotify_add_watch", sys.inotify_add_watch, fd, d, 0)
    fails("EINVAL", "inotify_rm_watch", sys.inotify_rm_watch, fd, 12345)
    fails("EINVAL", "inotify_init1", sys.inotify_init1, luafs.O_RDWR)
    fails("EBADF", "read", sys.inotify_read, 9999)
    -- bytes that are not inotify events are refused, never parsed
    H.write(d .. "/junk", string.rep("\255", 40))
    local junk = assert(sys.open(d .. "/junk", luafs.O_RDONLY))
    fails("EINVAL", "read", sys.inotify_read, junk)
    fails("EINVAL", "read", sys.inotify_read, junk) -- at the end: nothing read
    sys.close(junk)
  end)

  it("raises for bad arguments, naming the function", function()
    assert.matches("bad argument #1 to 'inotify_init1' %(number expected, got string%)",
      raised(function() local r = sys.inotify_init1("x"); return r end))
    assert.matches("bad argument #2 to 'inotify_add_watch' %(contains a zero byte%)",
      raised(function() local r = sys.inotify_add_watch(fd, d .. "\0x", IN.CREATE); return r end))
    assert.matches("bad argument #3 to 'inotify_add_watch' %(out of range%)",
      raised(function() local r = sys.inotify_add_watch(fd, d, -1); return r end))
    assert.matches("bad argument #3 to 'inotify_add_watch' %(number expected, got no value%)",
      raised(function() local r = sys.inotify_add_watch(fd, d); return r end))
    assert.matches("bad argument #2 to 'inotify_rm_watch' %(number expected, got nil%)",
      raised(function() local r = sys.inotify_rm_watch(fd, nil); return r end))
    assert.matches("bad argument #1 to 'inotify_read' %(number expected, got table%)",
      raised(function() local r = sys.inotify_read({}); return r end))
  end)
end)

describe("luafs.sys timerfd", function()
  local fds

  before_each(function() fds = {} end)
  after_each(function()
    for _, fd in ipairs(fds) do sys.close(fd) end
  end)

  local function timer(...)
    local fd = assert(sys.timerfd_create(...))
    fds[#fds + 1] = fd
    return fd
  end

  it("counts the expirations of a periodic timer, waiting on a one-shot one", function()
    local tick = timer(luafs.CLOCK_MONOTONIC, luafs.TFD_NONBLOCK)
    local alarm = timer()
    fails("EAGAIN", "read", sys.timerfd_read, tick) -- not armed
    assert(sys.timerfd_settime(tick, 0.001, 0.001))
    assert(sys.timerfd_settime(alarm, 0.05, 0))
    -- armed, so that the blocking read below cannot wait forever
    local left, interval = sys.timerfd_gettime(alarm)
    assert.is_true(left > 0 and left <= 0.05, left)
    assert.are.equal(0, interval)
    assert.are.equal(1, sys.timerfd_read(alarm))
    -- tick was armed first and fires every millisecond: 50 of them at least
    local n = assert(sys.timerfd_read(tick))
    assert.are.equal("integer", math.type(n))
    assert.is_true(n >= 50, n)
    -- a one-shot timer that fired is disarmed
    assert.same({ 0, 0 }, { sys.timerfd_gettime(alarm) })
  end)

  it("arms with fractions of a second, disarms with 0, and takes absolute times", function()
    local fd = timer(luafs.CLOCK_REALTIME, luafs.TFD_NONBLOCK | luafs.TFD_CLOEXEC)
    -- 2.3 is a hair under 2.3 as a double: rounded to the nanosecond, not cut
    assert(sys.timerfd_settime(fd, 1000.5, 2.3))
    local left, interval = sys.timerfd_gettime(fd)
    assert.is_true(left > 999 and left <= 1000.5, left)
    assert.are.equal(2.3, interval)
    fails("EAGAIN", "read", sys.timerfd_read, fd)
    assert(sys.timerfd_settime(fd, 0, 0))
    assert.same({ 0, 0 }, { sys.timerfd_gettime(fd) })
    -- absolute: a time of day 1000 s ahead is 1000 s away
    local s, ns = sys.clock_gettime()
    assert(sys.timerfd_settime(fd, s + ns / 1e9 + 1000, 0, luafs.TFD_TIMER_ABSTIME))
    left = sys.timerfd_gettime(fd)
    assert.is_true(left > 999 and left <= 1000, left)
    -- and one in the past has expired already (a blocking read waits for
    -- the kernel's timer interrupt to count it)
    local blocking = timer(luafs.CLOCK_REALTIME)
    assert(sys.timerfd_settime(blocking, s - 1, 0, luafs.TFD_TIMER_ABSTIME))
    assert.are.equal(1, sys.timerfd_read(blocking))
    -- whole seconds stay whole, up to the kernel's limit of 292 years
    assert(sys.timerfd_settime(fd, 1 << 33, 0))
    left = sys.timerfd_gettime(fd)
    assert.is_true(left > (1 << 33) - 2 and left <= 1 << 33, left)
  end)

  it("closes on exec and runs on CLOCK_MONOTONIC by default", function()
    local fd = timer()
    local flags, text = fdinfo(fd)
    assert.are.equal(luafs.O_CLOEXEC, flags & (luafs.O_CLOEXEC | luafs.O_NONBLOCK))
    assert.are.equal(luafs.CLOCK_MONOTONIC, tonumber(text:match("clockid:%s*(%d+)")))
    local rt = timer(luafs.CLOCK_REALTIME, 0)
    flags, text = fdinfo(rt)
    assert.are.equal(0, flags & (luafs.O_CLOEXEC | luafs.O_NONBLOCK))
    assert.are.equal(luafs.CLOCK_REALTIME, tonumber(text:match("clockid:%s*(%d+)")))
  end)

  it("fails in the shape nil, message, errno", function()
    fails("EINVAL", "timerfd_create", sys.timerfd_create, 12345)
    fails("EINVAL", "timerfd_create", sys.timerfd_create, luafs.CLOCK_MONOTONIC, luafs.O_RDWR)
    fails("EBADF", "timerfd_settime", sys.timerfd_settime, 9999, 1, 0)
    fails("EBADF", "timerfd_gettime", sys.timerfd_gettime, 9999)
    fails("EBADF", "read", sys.timerfd_read, 9999)
    fails("EINVAL", "timerfd_settime", sys.timerfd_settime, timer(), 1, 0, 12345)
    -- a descriptor that is not a timer: its bytes are not a count
    local null = assert(sys.open("/dev/null", luafs.O_RDONLY))
    fds[#fds + 1] = null
    fails("EINVAL", "read", sys.timerfd_read, null)
  end)

  it("raises for bad arguments, naming the function", function()
    local fd = timer()
    assert.matches("bad argument #1 to 'timerfd_create' %(number expected, got string%)",
      raised(function() local r = sys.timerfd_create("monotonic"); return r end))
    for _, bad in ipairs { -1, 0 / 0, math.huge, 1e300 } do
      assert.matches("bad argument #2 to 'timerfd_settime' %(out of range%)",
        raised(function() local r = sys.timerfd_settime(fd, bad, 0); return r end))
      assert.matches("bad argument #3 to 'timerfd_settime' %(out of range%)",
        raised(function() local r = sys.timerfd_settime(fd, 1, bad); return r end))
    end
    assert.matches("bad argument #3 to 'timerfd_settime' %(number expected, got no value%)",
      raised(function() local r = sys.timerfd_settime(fd, 1); return r end))
    assert.matches("bad argument #1 to 'timerfd_read' %(number expected, got nil%)",
      raised(function() local r = sys.timerfd_read(nil); return r end))
  end)
end)
