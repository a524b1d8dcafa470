--[[
sqlitefs.lua: a filesystem kept in one SQLite database, that survives
unmounts, remounts and crashes of the host.

    luafs sqlitefs.lua /mnt/notes -o default_permissions -- /var/lib/notes.db
    luafs sqlitefs.lua /mnt/notes -o default_permissions,states=4 -- notes.db 2000

Script arguments: the database (made on first mount; a relative path is
taken from $PWD), and how long a request waits for another connection's
write lock, in milliseconds (default 5000). It needs Debian's
lua-sql-sqlite3 (LuaSQL, luasql.sqlite3).

It keeps regular files (sparse, binary, with SEEK_DATA and SEEK_HOLE),
directories, symbolic links, hard links, FIFOs, sockets and device nodes,
rename with RENAME_NOREPLACE and RENAME_EXCHANGE, modes, owners, groups
(set-group-ID directories), nanosecond timestamps (relatime, as memfs.lua
keeps them) and extended attributes (user., trusted. and security.).

The schema (FORMAT below is its version, kept in the table meta):
  inodes(ino, mode, nlink, uid, gid, rdev, size, blocks, atime, atime_nsec,
         mtime, mtime_nsec, ctime, ctime_nsec, parent, target)
         one row per inode; blocks counts the file's rows in blocks (the
         4 KiB pages that st_blocks reports); parent is a directory's "..";
         target a symbolic link's target.
  dirents(parent, name, ino)   one row per name.
  blocks(ino, idx, data)       a file's bytes from idx * 4096 on, at most
         4096 of them. A block that has no row is a hole and reads as
         zeros, so sparse files stay sparse, and a write changes only the
         blocks it touches: a 4 KiB write costs a 4 KiB row, whatever the
         size of the file.
  xattrs(ino, name, value)
Names, targets, xattrs and data are BLOBs: LuaSQL has no parameter
binding, so every byte string goes into the SQL text as an X'hex'
literal, and every number through %d. Nothing else enters the SQL.

Transactions and crashes. The database is in WAL mode with
synchronous=NORMAL, and each request that changes anything runs in one
transaction (BEGIN IMMEDIATE ... COMMIT) that commits before the request
answers. So a request is all there or not there at all: a kill -9 of the
host loses nothing that was answered, and leaves a database that
PRAGMA integrity_check finds sound. fsync and fsyncdir commit with
synchronous=FULL, which fsyncs the write-ahead log, so what was fsynced
also survives a power failure; what was not may be lost then, but the
database is never corrupt.

Concurrency. With -o states=N each Lua state opens its own connection to
the database. Readers do not wait (WAL); writers take SQLite's write lock
one at a time. A request that cannot get the lock within the busy
timeout (the second argument) answers EBUSY and changes nothing; so does
one that another program (sqlite3, a backup) holds the lock against.
Reads, readdir and readlink answer then all the same, without moving
atime.

Reload. A hot reload (SIGUSR1, or an edit of this file) loses nothing:
the files are in the database. The new code opens a connection of its
own in its reload hook, where it refuses a database of another FORMAT
(the old code keeps serving then). Once it has, it closes the old
code's connection and hands its own to the old code, which may serve a
few more requests in that state before the switch: each state keeps one
connection.

Unlinked open files. A file unlinked while open keeps its inode (nlink 0)
and its data until its last handle is released; the count of handles is
in luafs.shared, so that every state sees it. After a crash such inodes
are left over: the first state's init deletes every inode with no name.

Limits:
  * In a pool of states, an open or opendir that races with the unlink
    of the same file's last name may be told that the file exists and then find it
    gone: reads and writes through that handle answer ENOENT. (One state
    serves one request at a time and has no such race.)
  * One mount per database: a second host on the same database would
    delete, at its mount, the files that the first has unlinked but open.
  * Permissions are the kernel's: mount with -o default_permissions (and
    allow_other for other users), which the specs do. Without it
    sqlitefs checks nothing, and only the mounting user gets in.
  * No fallocate (EOPNOTSUPP), no RENAME_WHITEOUT (EINVAL), no POSIX ACLs,
    no locks beyond the kernel's local ones.
  * The kernel caches no attributes (attr_timeout = 0, as memfs.lua and
    for the same reason: hard links); fstat() and lseek() with SEEK_DATA
    or SEEK_HOLE on a file that was unlinked while open answer ESTALE.
  * statfs gives the free space of the filesystem that holds the
    database, and counts inodes out of a fixed 2^32.
  * Cost: every byte string goes through hex; a path is walked with one
    query per component; readdir builds the whole listing; a write is
    a transaction, and an fsync a fsync of the log.
]]

local luafs = require "luafs"
local luasql = require "luasql.sqlite3"

local sys = luafs.sys
local shared = luafs.shared

local S_IFMT, S_IFDIR, S_IFREG, S_IFLNK = luafs.S_IFMT, luafs.S_IFDIR, luafs.S_IFREG, luafs.S_IFLNK
local S_ISGID = luafs.S_ISGID
local PERMS = tonumber("7777", 8)

local FORMAT = 1
local ROOT = 1
local BLOCK = 4096
local SECTORS = BLOCK // 512
local DIRENT = 20          -- tmpfs counts 20 bytes of st_size per directory entry
local NAME_MAX = 255
local SHORT_SYMLINK = 128  -- tmpfs keeps shorter targets in the inode, longer in a page
local TOTAL_INODES = 1 << 32
local ZEROS = string.rep("\0", BLOCK)

local db_path, busy_ms = ...
if db_path == nil or db_path == "" then
  error("sqlitefs.lua: usage: luafs sqlitefs.lua MOUNTPOINT [OPTIONS] -- DATABASE [BUSY_MS]", 0)
end
if db_path:sub(1, 1) ~= "/" then
  local pwd = os.getenv("PWD")
  if pwd == nil then error("sqlitefs.lua: " .. db_path .. " is relative and $PWD is not set", 0) end
  db_path = pwd .. "/" .. db_path
end
busy_ms = math.tointeger(tonumber(busy_ms or "5000"))
if busy_ms == nil or busy_ms < 0 then
  error("sqlitefs.lua: BUSY_MS must be a count of milliseconds", 0)
end

--[[ The connection: db.conn is this state's, opened at the first call
that needs it, or by the reload hook. ]]
local env = assert(luasql.sqlite3())
local db = {}

local HEX = {}
for i = 0, 255 do HEX[string.char(i)] = string.format("%02X", i) end

-- A byte string as an SQL literal.
local function blob(s)
  return "X'" .. s:gsub(".", HEX) .. "'"
end

local function sql_error(msg)
  if msg:find("database is locked", 1, true) or msg:find("database is busy", 1, true) then
    luafs.error(luafs.EBUSY)
  end
  error("sqlitefs.lua: " .. msg, 2)
end

local open_db

local function conn()
  return db.conn or open_db()
end

-- Runs a statement; returns the number of rows it changed.
local function exec(sql, ...)
  if select("#", ...) > 0 then sql = sql:format(...) end
  local r, msg = conn():execute(sql)
  if r == nil then sql_error(msg) end
  if type(r) ~= "number" then
    r:close()
    return 0
  end
  return math.tointeger(r)
end

-- The first row of a query, as values (nothing when there is none).
-- The cursor is closed at once: an open one would keep its statement,
-- and with it a read transaction, alive.
local function row(sql, ...)
  if select("#", ...) > 0 then sql = sql:format(...) end
  local cur, msg = conn():execute(sql)
  if cur == nil then sql_error(msg) end
  local r = table.pack(cur:fetch())
  cur:close()
  return table.unpack(r, 1, r.n)
end

-- Every row of a query, as arrays.
local function rows(sql, ...)
  if select("#", ...) > 0 then sql = sql:format(...) end
  local cur, msg = conn():execute(sql)
  if cur == nil then sql_error(msg) end
  local t = {}
  while true do
    local r = cur:fetch({}, "n")
    if r == nil then break end
    t[#t + 1] = r
  end
  cur:close()
  return t
end

--[[ One write transaction around f: it commits when f returns and rolls
back when f raises (luafs.error included), so a request changes all it
means to or nothing. ]]
local function write(f, ...)
  exec("BEGIN IMMEDIATE")
  local r = table.pack(pcall(f, ...))
  if not r[1] then
    conn():execute("ROLLBACK")
    error(r[2], 0)
  end
  local ok, msg = conn():execute("COMMIT")
  if not ok then
    conn():execute("ROLLBACK")
    sql_error(msg)
  end
  return table.unpack(r, 2, r.n)
end

local SCHEMA = {
  "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value)",
  "CREATE TABLE IF NOT EXISTS inodes(ino INTEGER PRIMARY KEY AUTOINCREMENT, mode INTEGER NOT NULL,"
    .. " nlink INTEGER NOT NULL, uid INTEGER NOT NULL, gid INTEGER NOT NULL, rdev INTEGER NOT NULL,"
    .. " size INTEGER NOT NULL, blocks INTEGER NOT NULL, atime INTEGER NOT NULL,"
    .. " atime_nsec INTEGER NOT NULL, mtime INTEGER NOT NULL, mtime_nsec INTEGER NOT NULL,"
    .. " ctime INTEGER NOT NULL, ctime_nsec INTEGER NOT NULL, parent INTEGER, target BLOB)",
  "CREATE TABLE IF NOT EXISTS dirents(parent INTEGER NOT NULL, name BLOB NOT NULL,"
    .. " ino INTEGER NOT NULL, PRIMARY KEY(parent, name)) WITHOUT ROWID",
  "CREATE TABLE IF NOT EXISTS blocks(ino INTEGER NOT NULL, idx INTEGER NOT NULL,"
    .. " data BLOB NOT NULL, PRIMARY KEY(ino, idx)) WITHOUT ROWID",
  "CREATE TABLE IF NOT EXISTS xattrs(ino INTEGER NOT NULL, name BLOB NOT NULL,"
    .. " value BLOB NOT NULL, PRIMARY KEY(ino, name)) WITHOUT ROWID",
}

local function now() return sys.clock_gettime() end

--[[ Opens this code's connection, makes the schema in a new database and
refuses one of another FORMAT. ]]
function open_db()
  local c, msg = env:connect(db_path, busy_ms)
  if c == nil then error("sqlitefs.lua: cannot open " .. db_path .. ": " .. tostring(msg), 0) end
  db.conn = c
  local ok, err = pcall(function()
    local mode = row("PRAGMA journal_mode=WAL")
    if mode ~= "wal" then error("sqlitefs.lua: " .. db_path .. " cannot use WAL mode", 0) end
    exec("PRAGMA synchronous=NORMAL")
    write(function()
      for _, sql in ipairs(SCHEMA) do exec(sql) end
      local format = row("SELECT value FROM meta WHERE key = 'format'")
      if format == nil then
        local sec, nsec = now()
        exec("INSERT INTO meta VALUES('format', %d)", FORMAT)
        exec("INSERT INTO inodes VALUES(%d, %d, 2, %d, %d, 0, %d, 0, %d, %d, %d, %d, %d, %d, %d, NULL)",
          ROOT, S_IFDIR | tonumber("755", 8), sys.getuid(), sys.getgid(), 2 * DIRENT,
          sec, nsec, sec, nsec, sec, nsec, ROOT)
      elseif format ~= FORMAT then
        error(string.format("sqlitefs.lua: %s has layout %s, this code knows layout %d",
          db_path, tostring(format), FORMAT), 0)
      end
    end)
  end)
  if not ok then
    c:close()
    db.conn = nil
    error(err, 0)
  end
  return c
end

--[[ Inodes. A node is a table of one row of inodes. ]]
local COLUMNS = { "ino", "mode", "nlink", "uid", "gid", "rdev", "size", "blocks",
  "atime", "atime_nsec", "mtime", "mtime_nsec", "ctime", "ctime_nsec", "parent" }
local SELECT_NODE = "SELECT " .. table.concat(COLUMNS, ", ") .. " FROM inodes WHERE ino = %d"

local function get(ino)
  local r = table.pack(row(SELECT_NODE, ino))
  if r[1] == nil then luafs.error(luafs.ENOENT) end
  local node = {}
  for i, k in ipairs(COLUMNS) do node[k] = r[i] end
  return node
end

-- Stores the fields of node named in the list.
local function save(node, ...)
  local sets = {}
  for i = 1, select("#", ...) do
    local k = select(i, ...)
    sets[i] = string.format("%s = %d", k, node[k])
  end
  exec("UPDATE inodes SET %s WHERE ino = %d", table.concat(sets, ", "), node.ino)
end

local function is_dir(node) return node.mode & S_IFMT == S_IFDIR end
local function is_reg(node) return node.mode & S_IFMT == S_IFREG end

local function changed(node)
  node.ctime, node.ctime_nsec = now()
  save(node, "ctime", "ctime_nsec")
end

local function modified(node)
  local sec, nsec = now()
  node.mtime, node.mtime_nsec, node.ctime, node.ctime_nsec = sec, nsec, sec, nsec
  save(node, "size", "blocks", "mtime", "mtime_nsec", "ctime", "ctime_nsec")
end

local function not_after(s1, ns1, s2, ns2)
  return s1 < s2 or (s1 == s2 and ns1 <= ns2)
end

-- A read of the contents: atime, relatime style. Most reads change
-- nothing and so need no write transaction; one that cannot get the
-- write lock in time still answers, without its atime.
local function accessed(node)
  local sec, nsec = now()
  if not_after(node.atime, node.atime_nsec, node.mtime, node.mtime_nsec)
      or not_after(node.atime, node.atime_nsec, node.ctime, node.ctime_nsec)
      or sec - node.atime >= 24 * 3600 then
    local ok, err = pcall(write, exec, "UPDATE inodes SET atime = %d, atime_nsec = %d WHERE ino = %d",
      sec, nsec, node.ino)
    if not ok and not (type(err) == "table" and err.errno == luafs.EBUSY) then error(err, 0) end
  end
end

local function stat(node)
  return {
    ino = node.ino, mode = node.mode, nlink = node.nlink,
    uid = node.uid, gid = node.gid, rdev = node.rdev,
    size = node.size, blksize = BLOCK, blocks = node.blocks * SECTORS,
    atime = node.atime, atime_nsec = node.atime_nsec,
    mtime = node.mtime, mtime_nsec = node.mtime_nsec,
    ctime = node.ctime, ctime_nsec = node.ctime_nsec,
  }
end

--[[ Open handles, counted in luafs.shared per inode so that an unlink in
one state sees the handles of the others. The counts change inside write
transactions, which SQLite runs one at a time, so an unlink and the last
release cannot both miss the moment to free the inode. ]]
local function opens_key(ino) return "sqlitefs.opens." .. ino end

local function opens(ino) return shared.get(opens_key(ino)) or 0 end

local function free(ino)
  exec("DELETE FROM blocks WHERE ino = %d", ino)
  exec("DELETE FROM xattrs WHERE ino = %d", ino)
  exec("DELETE FROM inodes WHERE ino = %d", ino)
end

-- One handle of inode ino is gone. The count drops first, so that an
-- unlink that comes after it frees the inode; the check after it waits
-- for an unlink that came before. If the write lock does not come in
-- time, an inode without a name stays until the next mount.
local function release(ino)
  local key = opens_key(ino)
  if shared.incr(key, -1) == 0 then shared.cas(key, 0, nil) end
  write(function()
    local nlink = row("SELECT nlink FROM inodes WHERE ino = %d", ino)
    if nlink == 0 and opens(ino) == 0 then free(ino) end
  end)
end

local function maybe_free(node)
  if node.nlink == 0 and opens(node.ino) == 0 then free(node.ino) end
end

local function drop_link(node)
  node.nlink = is_dir(node) and 0 or node.nlink - 1
  node.ctime, node.ctime_nsec = now()
  save(node, "nlink", "ctime", "ctime_nsec")
  maybe_free(node)
end

--[[ Paths: walked from the root, one query per name. ]]
local function child(dir_ino, name)
  return (row("SELECT ino FROM dirents WHERE parent = %d AND name = %s", dir_ino, blob(name)))
end

local function lookup_ino(path)
  if path == nil then luafs.error(luafs.ENOENT) end
  local ino = ROOT
  for name in path:gmatch("[^/]+") do
    local c = child(ino, name)
    if c == nil then luafs.error(#name > NAME_MAX and luafs.ENAMETOOLONG or luafs.ENOENT) end
    ino = c
  end
  return ino
end

local function lookup(path) return get(lookup_ino(path)) end

local function lookup_parent(path)
  local dirpath, name = path:match("^(.*)/([^/]+)$")
  if name == nil then luafs.error(luafs.EINVAL) end
  local dir = lookup(dirpath)
  if not is_dir(dir) then luafs.error(luafs.ENOTDIR) end
  if #name > NAME_MAX then luafs.error(luafs.ENAMETOOLONG) end
  return dir, name
end

local function node_of(path, fi)
  local fh = fi and fi.fh
  if fh then return get(fh.ino) end
  return lookup(path)
end

--[[ Directory entries; st_size and st_nlink as tmpfs keeps them. ]]
local function add_entry(dir, name, node)
  exec("INSERT INTO dirents VALUES(%d, %s, %d)", dir.ino, blob(name), node.ino)
  dir.size = dir.size + DIRENT
  if is_dir(node) then
    node.parent = dir.ino
    save(node, "parent")
    dir.nlink = dir.nlink + 1
  end
  save(dir, "size", "nlink")
end

local function del_entry(dir, name, node)
  exec("DELETE FROM dirents WHERE parent = %d AND name = %s", dir.ino, blob(name))
  dir.size = dir.size - DIRENT
  if is_dir(node) then dir.nlink = dir.nlink - 1 end
  save(dir, "size", "nlink")
end

local function is_empty(dir)
  return row("SELECT 1 FROM dirents WHERE parent = %d LIMIT 1", dir.ino) == nil
end

-- Whether directory a is dir itself or one of its ancestors.
local function is_ancestor(a, dir_ino)
  while true do
    if dir_ino == a.ino then return true end
    if dir_ino == ROOT then return false end
    dir_ino = row("SELECT parent FROM inodes WHERE ino = %d", dir_ino)
  end
end

--[[ Making a node: mknod, create, mkdir, symlink. Like tmpfs, a node in a
set-group-ID directory takes its group, and a directory there is
set-group-ID too. ]]
local function add_node(dir, name, mode, rdev, target)
  local ctx = luafs.context()
  local gid = ctx.gid
  if dir.mode & S_ISGID ~= 0 then
    gid = dir.gid
    if mode & S_IFMT == S_IFDIR then mode = mode | S_ISGID end
  end
  local sec, nsec = now()
  local dirlike = mode & S_IFMT == S_IFDIR
  local size, blocks = 0, 0
  if dirlike then size = 2 * DIRENT end
  if target then size, blocks = #target, #target >= SHORT_SYMLINK and 1 or 0 end
  exec("INSERT INTO inodes VALUES(NULL, %d, %d, %d, %d, %d, %d, %d, %d, %d, %d, %d, %d, %d, NULL, %s)",
    mode, dirlike and 2 or 1, ctx.uid, gid, rdev, size, blocks, sec, nsec, sec, nsec, sec, nsec,
    target and blob(target) or "NULL")
  local node = get(row("SELECT last_insert_rowid()"))
  add_entry(dir, name, node)
  modified(dir)
  return node
end

local function make(path, mode, rdev, target)
  local dir, name = lookup_parent(path)
  if child(dir.ino, name) then luafs.error(luafs.EEXIST) end
  return add_node(dir, name, mode, rdev, target)
end

--[[ File contents, in blocks (see the header). Block idx holds bytes
from idx * BLOCK on; it may be shorter than BLOCK, and no block holds
bytes at or past the size. ]]
local function put_block(ino, idx, data)
  if exec("UPDATE blocks SET data = %s WHERE ino = %d AND idx = %d", blob(data), ino, idx) == 0 then
    exec("INSERT INTO blocks VALUES(%d, %d, %s)", ino, idx, blob(data))
    return 1
  end
  return 0
end

local function read_data(node, size, offset)
  if offset >= node.size or size <= 0 then return "" end
  local stop = node.size
  if size < stop - offset then stop = offset + size end
  local first, last = offset // BLOCK, (stop - 1) // BLOCK
  local have = {}
  for _, r in ipairs(rows("SELECT idx, data FROM blocks WHERE ino = %d AND idx BETWEEN %d AND %d",
      node.ino, first, last)) do
    have[r[1]] = r[2]
  end
  local parts = {}
  for i = first, last do
    local data = have[i] or ""
    if i < last and #data < BLOCK then data = data .. ZEROS:sub(1, BLOCK - #data) end
    parts[#parts + 1] = data
  end
  local s = table.concat(parts)
  local from, to = offset - first * BLOCK + 1, stop - first * BLOCK
  if #s < to then s = s .. ZEROS:sub(1, to - #s) end
  return s:sub(from, to)
end

local function write_data(node, data, offset)
  local len, done = #data, 0
  while done < len do
    local pos = offset + done
    local idx = pos // BLOCK
    local from = pos - idx * BLOCK
    local n = math.min(BLOCK - from, len - done)
    local piece = data:sub(done + 1, done + n)
    if from > 0 or n < BLOCK then
      local old = row("SELECT data FROM blocks WHERE ino = %d AND idx = %d", node.ino, idx) or ""
      if #old < from then old = old .. ZEROS:sub(1, from - #old) end
      piece = old:sub(1, from) .. piece .. old:sub(from + n + 1)
    end
    node.blocks = node.blocks + put_block(node.ino, idx, piece)
    done = done + n
  end
  if offset + len > node.size then node.size = offset + len end
end

local function resize(node, size)
  if size < node.size then
    local keep = (size + BLOCK - 1) // BLOCK
    node.blocks = node.blocks - exec("DELETE FROM blocks WHERE ino = %d AND idx >= %d", node.ino, keep)
    if size % BLOCK ~= 0 then
      exec("UPDATE blocks SET data = substr(data, 1, %d) WHERE ino = %d AND idx = %d AND length(data) > %d",
        size % BLOCK, node.ino, size // BLOCK, size % BLOCK)
    end
  end
  node.size = size
end

-- The operations.
local fs = { _db = db }

function fs.init(_conn, cfg)
  cfg.use_ino = true      -- st_ino is ours, so hard links share it
  cfg.hard_remove = true  -- unlink for real; open handles keep the inode
  -- libfuse's high-level API gives each name of a hard-linked file its own
  -- kernel inode, so attributes cached for one name would miss a change
  -- made through another. Have the kernel ask every time.
  cfg.attr_timeout = 0
  conn()
  local _, index = luafs.states()
  if index == 1 then
    -- Inodes without a name were open when the last host died.
    write(function()
      exec("DELETE FROM blocks WHERE ino IN (SELECT ino FROM inodes WHERE nlink = 0)")
      exec("DELETE FROM xattrs WHERE ino IN (SELECT ino FROM inodes WHERE nlink = 0)")
      exec("DELETE FROM inodes WHERE nlink = 0")
    end)
  end
end

function fs.destroy()
  if db.conn then db.conn:close() end
  db.conn = nil
end

function fs.reload(old)
  open_db()
  local theirs = old._db
  if theirs.conn then theirs.conn:close() end
  theirs.conn = db.conn
  luafs.log("sqlitefs.lua: the new code opened " .. db_path)
end

function fs.getattr(path, fi)
  return stat(node_of(path, fi))
end

function fs.readlink(path)
  local node = lookup(path)
  local target = row("SELECT target FROM inodes WHERE ino = %d", node.ino)
  if target == nil then luafs.error(luafs.EINVAL) end
  accessed(node)
  return target
end

function fs.mknod(path, mode, rdev)
  if mode & S_IFMT == 0 then mode = mode | S_IFREG end
  write(make, path, mode & (S_IFMT | PERMS), rdev)
end

function fs.mkdir(path, mode)
  write(make, path, S_IFDIR | (mode & PERMS), 0)
end

function fs.symlink(target, path)
  write(make, path, S_IFLNK | tonumber("777", 8), 0, target)
end

local function remove(path, want_dir)
  local dir, name = lookup_parent(path)
  local ino = child(dir.ino, name)
  if ino == nil then luafs.error(luafs.ENOENT) end
  local node = get(ino)
  if want_dir and not is_dir(node) then luafs.error(luafs.ENOTDIR) end
  if not want_dir and is_dir(node) then luafs.error(luafs.EISDIR) end
  if want_dir and not is_empty(node) then luafs.error(luafs.ENOTEMPTY) end
  del_entry(dir, name, node)
  modified(dir)
  drop_link(node)
end

function fs.unlink(path) write(remove, path, false) end
function fs.rmdir(path) write(remove, path, true) end

function fs.link(oldpath, newpath)
  write(function()
    local node = lookup(oldpath)
    local dir, name = lookup_parent(newpath)
    if child(dir.ino, name) then luafs.error(luafs.EEXIST) end
    if is_dir(node) then luafs.error(luafs.EPERM) end
    add_entry(dir, name, node)
    node.nlink = node.nlink + 1
    save(node, "nlink")
    changed(node)
    modified(dir)
  end)
end

--[[ rename, with tmpfs's errors: EEXIST for RENAME_NOREPLACE onto a
name, EINVAL for a directory into itself, ENOTDIR, EISDIR and ENOTEMPTY
for a target of the wrong kind. A name onto another name of the same
inode changes nothing. ]]
local function rename(from, to, flags)
  local noreplace = flags & luafs.RENAME_NOREPLACE ~= 0
  local exchange = flags & luafs.RENAME_EXCHANGE ~= 0
  if flags & ~(luafs.RENAME_NOREPLACE | luafs.RENAME_EXCHANGE) ~= 0 or (exchange and noreplace) then
    luafs.error(luafs.EINVAL)
  end
  local fdir, fname = lookup_parent(from)
  local ino = child(fdir.ino, fname)
  if ino == nil then luafs.error(luafs.ENOENT) end
  local node = get(ino)
  local tdir, tname = lookup_parent(to)
  -- one directory, one table: each change to it must see the others
  if tdir.ino == fdir.ino then tdir = fdir end
  local tino = child(tdir.ino, tname)
  local target = tino and get(tino)
  if target and noreplace then luafs.error(luafs.EEXIST) end
  if exchange and target == nil then luafs.error(luafs.ENOENT) end
  if (is_dir(node) and is_ancestor(node, tdir.ino))
      or (exchange and is_dir(target) and is_ancestor(target, fdir.ino)) then
    luafs.error(luafs.EINVAL)
  end
  if tino == ino then return end
  if target and not exchange then
    if is_dir(node) and not is_dir(target) then luafs.error(luafs.ENOTDIR) end
    if not is_dir(node) and is_dir(target) then luafs.error(luafs.EISDIR) end
    if is_dir(target) and not is_empty(target) then luafs.error(luafs.ENOTEMPTY) end
  end
  if exchange then
    del_entry(fdir, fname, node)
    del_entry(tdir, tname, target)
    add_entry(fdir, fname, target)
    add_entry(tdir, tname, node)
    changed(node)
    changed(target)
    modified(fdir)
    if tdir ~= fdir then modified(tdir) end
    return
  end
  if target then
    del_entry(tdir, tname, target)
    drop_link(target)
  end
  del_entry(fdir, fname, node)
  add_entry(tdir, tname, node)
  changed(node)
  modified(fdir)
  if tdir ~= fdir then modified(tdir) end
end

function fs.rename(from, to, flags) write(rename, from, to, flags) end

function fs.chmod(path, mode, fi)
  write(function()
    local node = node_of(path, fi)
    node.mode = (node.mode & S_IFMT) | (mode & PERMS)
    save(node, "mode")
    changed(node)
  end)
end

function fs.chown(path, uid, gid, fi)
  write(function()
    local node = node_of(path, fi)
    if uid ~= -1 then node.uid = uid end
    if gid ~= -1 then node.gid = gid end
    save(node, "uid", "gid")
    changed(node)
  end)
end

function fs.truncate(path, size, fi)
  write(function()
    local node = node_of(path, fi)
    if is_dir(node) then luafs.error(luafs.EISDIR) end
    if not is_reg(node) then luafs.error(luafs.EINVAL) end
    resize(node, size)
    modified(node)
  end)
end

function fs.utimens(path, atime, atime_nsec, mtime, mtime_nsec, fi)
  local NOW, OMIT = luafs.UTIME_NOW, luafs.UTIME_OMIT
  if atime_nsec == OMIT and mtime_nsec == OMIT then return end
  write(function()
    local node = node_of(path, fi)
    local sec, nsec = now()
    if atime_nsec == NOW then
      node.atime, node.atime_nsec = sec, nsec
    elseif atime_nsec ~= OMIT then
      node.atime, node.atime_nsec = atime, atime_nsec
    end
    if mtime_nsec == NOW then
      node.mtime, node.mtime_nsec = sec, nsec
    elseif mtime_nsec ~= OMIT then
      node.mtime, node.mtime_nsec = mtime, mtime_nsec
    end
    node.ctime, node.ctime_nsec = sec, nsec
    save(node, "atime", "atime_nsec", "mtime", "mtime_nsec", "ctime", "ctime_nsec")
  end)
end

--[[ Open files. The handle is a table with the inode number, so reads
and writes on a file unlinked while open still find its data. libfuse
passes O_TRUNC to open; like tmpfs, it sets the times even when the
file was empty. ]]
local function opened(node, flags)
  if flags & luafs.O_TRUNC ~= 0 and is_reg(node) then
    resize(node, 0)
    modified(node)
  end
  shared.incr(opens_key(node.ino))
  return { ino = node.ino }
end

--[[ An open without O_TRUNC changes nothing in the database, so it takes
no write lock (readers never wait): it counts the handle, then checks
that the inode is still there, for an unlink may have freed it in
between (see the header). ]]
function fs.open(path, fi)
  if fi.flags & luafs.O_TRUNC ~= 0 then
    return write(function() return opened(lookup(path), fi.flags) end)
  end
  local ino = lookup_ino(path)
  shared.incr(opens_key(ino))
  if row("SELECT nlink FROM inodes WHERE ino = %d", ino) == nil then
    release(ino)
    luafs.error(luafs.ENOENT)
  end
  return { ino = ino }
end

-- The kernel calls create after a lookup found no such name; if another
-- process made it meanwhile, create behaves as open(2) with O_CREAT does.
function fs.create(path, mode, fi)
  return write(function()
    local dir, name = lookup_parent(path)
    local ino = child(dir.ino, name)
    if ino then
      if fi.flags & luafs.O_EXCL ~= 0 then luafs.error(luafs.EEXIST) end
      return opened(get(ino), fi.flags)
    end
    local node = add_node(dir, name, S_IFREG | (mode & PERMS), 0)
    shared.incr(opens_key(node.ino))
    return { ino = node.ino }
  end)
end

function fs.read(path, size, offset, fi)
  local node = node_of(path, fi)
  if is_dir(node) then luafs.error(luafs.EISDIR) end
  local data = read_data(node, size, offset)
  accessed(node)
  return data
end

-- With O_APPEND every write goes to the end, as Linux does even for
-- pwrite. Write-back of mmap'ed pages (fi.writepage) keeps its offset.
function fs.write(path, data, offset, fi)
  return write(function()
    local node = node_of(path, fi)
    if fi and fi.flags & luafs.O_APPEND ~= 0 and not fi.writepage then offset = node.size end
    if #data > 0 then write_data(node, data, offset) end
    modified(node)
    return #data
  end)
end

function fs.lseek(path, offset, whence, fi)
  local node = node_of(path, fi)
  if offset < 0 or offset >= node.size then luafs.error(luafs.ENXIO) end
  local first = offset // BLOCK
  if whence == luafs.SEEK_DATA then
    local idx = row("SELECT min(idx) FROM blocks WHERE ino = %d AND idx >= %d", node.ino, first)
    if idx == nil or idx * BLOCK >= node.size then luafs.error(luafs.ENXIO) end
    return math.max(offset, idx * BLOCK)
  elseif whence == luafs.SEEK_HOLE then
    local hole = first
    if row("SELECT 1 FROM blocks WHERE ino = %d AND idx = %d", node.ino, first) then
      hole = row("SELECT b.idx + 1 FROM blocks b WHERE b.ino = %d AND b.idx >= %d AND NOT EXISTS"
        .. " (SELECT 1 FROM blocks c WHERE c.ino = b.ino AND c.idx = b.idx + 1) ORDER BY b.idx LIMIT 1",
        node.ino, first)
    end
    return math.min(node.size, math.max(offset, hole * BLOCK))
  end
  luafs.error(luafs.EINVAL)
end

function fs.release(_path, fi) release(fi.fh.ino) end

--[[ fsync: a commit with synchronous=FULL fsyncs the write-ahead log, and
with it every transaction committed before, of every connection. ]]
local function sync()
  exec("PRAGMA synchronous=FULL")
  local ok, err = pcall(write, exec, "INSERT OR REPLACE INTO meta VALUES('synced', %d)", (now()))
  exec("PRAGMA synchronous=NORMAL")
  if not ok then error(err, 0) end
end

function fs.fsync() sync() end
function fs.fsyncdir() sync() end

-- Like open, opendir takes no write lock.
function fs.opendir(path)
  local node = lookup(path)
  if not is_dir(node) then luafs.error(luafs.ENOTDIR) end
  shared.incr(opens_key(node.ino))
  if row("SELECT nlink FROM inodes WHERE ino = %d", node.ino) == nil then
    release(node.ino)
    luafs.error(luafs.ENOENT)
  end
  return { ino = node.ino }
end

-- readdir returns the whole listing, sorted by name, with a stat table
-- per entry so that readdirplus needs no further getattr.
function fs.readdir(path, _offset, fi)
  local dir = node_of(path, fi)
  local list = { { name = ".", stat = stat(dir) }, { name = "..", stat = stat(get(dir.parent)) } }
  local sql = "SELECT d.name, " .. table.concat(COLUMNS, ", i."):gsub("^", "i.")
    .. " FROM dirents d JOIN inodes i ON i.ino = d.ino WHERE d.parent = %d ORDER BY d.name"
  for _, r in ipairs(rows(sql, dir.ino)) do
    local node = {}
    for i, k in ipairs(COLUMNS) do node[k] = r[i + 1] end
    list[#list + 1] = { name = r[1], stat = stat(node) }
  end
  accessed(dir)
  return list
end

fs.releasedir = fs.release

function fs.statfs()
  local st = sys.statvfs(db_path:match("^(.*)/[^/]*$") .. "/")
  local inodes = row("SELECT count(*) FROM inodes")
  local ffree = TOTAL_INODES - inodes
  local scale = st and st.frsize // BLOCK or 1
  return {
    bsize = BLOCK, frsize = BLOCK,
    blocks = st and st.blocks * scale or 0, bfree = st and st.bfree * scale or 0,
    bavail = st and st.bavail * scale or 0,
    files = TOTAL_INODES, ffree = ffree, favail = ffree,
    namemax = NAME_MAX,
  }
end

--[[ Extended attributes: the user., trusted. and security. namespaces,
as tmpfs has them. The kernel decides who may use them. ]]
local function check_xattr(name)
  local namespace, rest = name:match("^([^.]*)%.(.*)$")
  if namespace ~= "user" and namespace ~= "trusted" and namespace ~= "security" then
    luafs.error(luafs.EOPNOTSUPP)
  end
  if rest == "" then luafs.error(luafs.EINVAL) end
end

local function xattr(ino, name)
  return (row("SELECT value FROM xattrs WHERE ino = %d AND name = %s", ino, blob(name)))
end

function fs.setxattr(path, name, value, flags)
  write(function()
    local node = lookup(path)
    check_xattr(name)
    local exists = xattr(node.ino, name) ~= nil
    if flags & luafs.XATTR_CREATE ~= 0 and exists then luafs.error(luafs.EEXIST) end
    if flags & luafs.XATTR_REPLACE ~= 0 and not exists then luafs.error(luafs.ENODATA) end
    exec("INSERT OR REPLACE INTO xattrs VALUES(%d, %s, %s)", node.ino, blob(name), blob(value))
    changed(node)
  end)
end

function fs.getxattr(path, name)
  local ino = lookup_ino(path)
  check_xattr(name)
  local value = xattr(ino, name)
  if value == nil then luafs.error(luafs.ENODATA) end
  return value
end

function fs.listxattr(path)
  local names = {}
  for _, r in ipairs(rows("SELECT name FROM xattrs WHERE ino = %d ORDER BY name", lookup_ino(path))) do
    names[#names + 1] = r[1]
  end
  return names
end

function fs.removexattr(path, name)
  write(function()
    local node = lookup(path)
    check_xattr(name)
    if exec("DELETE FROM xattrs WHERE ino = %d AND name = %s", node.ino, blob(name)) == 0 then
      luafs.error(luafs.ENODATA)
    end
    changed(node)
  end)
end

return fs
