--[[
poll.lua: a file that becomes readable when something is written to
another one, like libfuse's example/poll.c with its poll_client.c.

    luafs poll.lua /mnt/poll -f
    poll_client /mnt/poll/out 5000 &       (spec/fixtures/poll_client.c)
    echo hello > /mnt/poll/feed

    luafs poll.lua /mnt/poll -f -- /tmp/fifo    (made with mkfifo)
    echo hello > /tmp/fifo

/feed takes writes and queues their bytes (and so does the FIFO named by
the script argument, which a luafs.watch reads between requests); /out gives them back, oldest
first, and forgets what it gave (like a pipe: neither file is seekable, and
both bypass the page cache). poll(2), select(2) and epoll on /out report
POLLIN while bytes are queued; /feed is always writable.

How poll works in FUSE: the kernel asks the filesystem's poll once; when
the caller is going to wait, it also hands over a luafs.PollHandle. The
filesystem answers with the events that are ready now and keeps the handle;
when something changes later it calls handle:notify(), and the kernel asks
poll again. fuse.h makes the filesystem responsible for destroying the
handle: here a handle is destroyed once it was notified, when a newer one
replaces it, or when its file is closed (and by the collector, should one
ever be dropped).

Limits:
  * A read of /out with nothing queued answers at once: EAGAIN when the
    file was opened with O_NONBLOCK, end of file otherwise. A read that
    waited would hold the Lua state, and with it every other request,
    including the write it waits for; poll first.
  * The queue lives in the one Lua state (the default); with -o states=N
    each state would have a queue of its own. It holds at most 1 MiB:
    writes beyond that answer EAGAIN (or take what fits), and bytes
    from the FIFO that do not fit are dropped.
  * Nothing is kept across unmounts.
]]

local luafs = require "luafs"

local S_IFDIR, S_IFREG = luafs.S_IFDIR, luafs.S_IFREG
local O_ACCMODE, O_RDONLY, O_WRONLY, O_NONBLOCK = luafs.O_ACCMODE, luafs.O_RDONLY, luafs.O_WRONLY, luafs.O_NONBLOCK
local POLLIN, POLLRDNORM, POLLOUT, POLLWRNORM = luafs.POLLIN, luafs.POLLRDNORM, luafs.POLLOUT, luafs.POLLWRNORM

local MAX_QUEUED = 1024 * 1024

local queue = ""          -- bytes written to /feed and not yet read from /out
local waiting = {}        -- open /out handles holding a PollHandle -> true
local started = os.time() -- the files' times
local fifo = ...          -- a FIFO whose bytes are queued too, or nil

local fs = {}

local function stat(mode, size)
  return { mode = mode, nlink = 1, size = size or 0, uid = luafs.sys.getuid(),
           gid = luafs.sys.getgid(), atime = started, mtime = started, ctime = started }
end

-- Wakes every poller of /out: each handle is told once, then destroyed.
local function notify_all()
  for h in pairs(waiting) do
    h.ph:notify()
    h.ph:destroy()
    h.ph = nil
  end
  waiting = {}
end

-- Queues data, as much as fits; returns how much did.
local function enqueue(data)
  local room = MAX_QUEUED - #queue
  if #data > room then data = data:sub(1, room) end
  queue = queue .. data
  if #data > 0 then notify_all() end
  return #data
end

function fs.init(_, cfg)
  cfg.attr_timeout = 0 -- /out's size changes behind the kernel's back
end

-- Opened for reading and writing, the FIFO never reports end of file
-- when a writer closes it, so the watch runs only when bytes arrive; it
-- reads them all, so that it does not run again for the same bytes.
if fifo then
  local sys = luafs.sys
  local fd = assert(sys.open(fifo, luafs.O_RDWR | O_NONBLOCK))
  luafs.watch(fd, "r", function()
    local data = sys.read(fd, 65536)
    if data then enqueue(data) end
  end)
end

function fs.getattr(path)
  if path == "/" then
    local st = stat(S_IFDIR | tonumber("755", 8))
    st.nlink = 2
    return st
  end
  if path == "/feed" then return stat(S_IFREG | tonumber("222", 8)) end
  if path == "/out" then return stat(S_IFREG | tonumber("444", 8), #queue) end
  return -luafs.ENOENT
end

function fs.readdir(path)
  if path ~= "/" then return -luafs.ENOTDIR end
  return { ".", "..", "feed", "out" }
end

function fs.open(path, fi)
  local mode = fi.flags & O_ACCMODE
  if path == "/feed" then
    if mode ~= O_WRONLY then return -luafs.EACCES end
  elseif path == "/out" then
    if mode ~= O_RDONLY then return -luafs.EACCES end
  else
    return -luafs.ENOENT
  end
  fi.direct_io = true   -- every read and write reaches us, at any size
  fi.nonseekable = true
  return { path = path } -- the handle; /out's keeps its PollHandle in .ph
end

-- `echo x > feed` truncates first: there is nothing to truncate.
function fs.truncate(path)
  if path == "/feed" then return end
  return -luafs.EACCES
end

function fs.write(path, data)
  if path ~= "/feed" then return -luafs.EBADF end
  if #queue >= MAX_QUEUED then return -luafs.EAGAIN end
  return enqueue(data)
end

function fs.read(path, size, _, fi)
  if path ~= "/out" then return -luafs.EBADF end
  if queue == "" then
    if fi.flags & O_NONBLOCK ~= 0 then return -luafs.EAGAIN end
    return ""
  end
  local chunk = queue:sub(1, size)
  queue = queue:sub(size + 1)
  return chunk
end

function fs.poll(path, fi, ph)
  local h = fi.fh
  if path == "/feed" or h.path == "/feed" then
    if ph then ph:destroy() end -- never anything to wait for
    return POLLOUT | POLLWRNORM
  end
  if ph then
    if h.ph then h.ph:destroy() end
    h.ph = ph
    waiting[h] = true
  end
  if queue ~= "" then return POLLIN | POLLRDNORM end
  return 0
end

function fs.release(_, fi)
  local h = fi.fh
  if h.ph then
    h.ph:destroy()
    h.ph = nil
    waiting[h] = nil
  end
end

return fs
