/*
 * dir.c: luafs.Dir, a directory stream that luafs.sys.opendir and
 * fdopendir return, for a passthrough's readdir.  It reads the directory
 * a kernel buffer at a time, so a directory of any size lists in constant
 * memory; readdir (ops.c) answers from one with luafs_dir_fill.
 *
 * A stream is closed by close(), by leaving the scope of a <close>
 * variable, or by the garbage collector, whichever comes first; using it
 * afterwards raises an error.
 */
#include "luafs.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>

#define DIR_MT "luafs.Dir"

static const struct luafs_type dir_type = { DIR_MT, LUAFS_T_DIR };

struct luafs_dir {
	DIR *dir;	/* NULL once closed */
	/*
	 * The entry that did not fit in the kernel's last readdir buffer, and
	 * the stream position before it, where the next request starts.  It
	 * points into the stream's own buffer, valid until the stream is read,
	 * sought or closed.  Holding it spares seeking back, which would make
	 * the C library discard its buffer and read the directory again from
	 * there: for a kernel that asks a page at a time, many times over.
	 */
	struct dirent *held;
	long held_pos;
};

/* Gives the held entry back to the stream, so that it reads as if every
 * entry read had been delivered. */
static void unhold(struct luafs_dir *d)
{
	if (d->held) {
		d->held = NULL;
		seekdir(d->dir, d->held_pos);
	}
}

static DIR *checkdir(lua_State *L)
{
	struct luafs_dir *d = luafs_checkudata(L, 1, &dir_type);

	if (!d->dir)
		luaL_error(L, "closed " DIR_MT);
	unhold(d);
	return d->dir;
}

struct luafs_dir *luafs_test_dir(lua_State *L, int idx)
{
	struct luafs_dir *d = luafs_testudata(L, idx, &dir_type);

	if (d && !d->dir)
		luaL_error(L, "closed " DIR_MT);
	return d;
}

/*
 * Lists the stream from offset into a readdir buffer, so the entries never
 * become Lua values: each carries its d_ino and d_type, or with
 * FUSE_READDIR_PLUS an fstatat in the stream's directory (an entry gone by
 * then is skipped), and the stream position after it.  Returns 0 or -errno.
 */
int luafs_dir_fill(struct luafs_dir *d, void *buf, fuse_fill_dir_t filler,
		   off_t offset, enum fuse_readdir_flags flags)
{
	int plus = flags & FUSE_READDIR_PLUS;
	long pos = (long)offset, next;
	struct dirent *e;
	struct stat st;

	/* Asked for elsewhere: the held entry is dropped, and the seek below
	 * goes there unless the stream already stands there. */
	if (d->held && d->held_pos != pos)
		d->held = NULL;
	if (!d->held && telldir(d->dir) != pos)
		seekdir(d->dir, pos);
	for (;; pos = next) {
		e = d->held;
		d->held = NULL;
		if (!e) {
			errno = 0;
			e = readdir(d->dir);
			if (e == NULL)
				return errno ? -errno : 0;
		}
		next = telldir(d->dir);
		if (plus) {
			if (fstatat(dirfd(d->dir), e->d_name, &st,
				    AT_SYMLINK_NOFOLLOW) == -1)
				continue;
		} else {
			memset(&st, 0, sizeof(st));
			st.st_ino = e->d_ino;
			st.st_mode = DTTOIF(e->d_type);
		}
		if (filler(buf, e->d_name, &st, next,
			   plus ? FUSE_FILL_DIR_PLUS : 0)) {
			d->held = e;
			d->held_pos = pos;
			return 0;
		}
	}
}

/* The one place a stream is closed, for close(), __close and __gc alike;
 * clearing the pointer first makes every later call a no-op. */
static int dir_release(struct luafs_dir *d)
{
	DIR *dir = d->dir;

	d->dir = NULL;
	d->held = NULL;
	return dir ? closedir(dir) : 0;
}

/* The userdata exists before the stream does, so a memory error while
 * creating it cannot leak an open DIR. */
DIR **luafs_dir_new(lua_State *L)
{
	struct luafs_dir *d = lua_newuserdatauv(L, sizeof *d, 0);

	d->dir = NULL;
	d->held = NULL;
	luafs_setmetatable(L, &dir_type);
	return &d->dir;
}

static int dir_read(lua_State *L)
{
	DIR *dir = checkdir(L);
	struct dirent *e;
	lua_Integer ino;
	int type;

	/* NULL is both the end and an error; only errno tells them apart. */
	errno = 0;
	e = readdir(dir);
	if (!e) {
		if (errno)
			return luafs_sys_fail(L, errno, "readdir");
		luaL_pushfail(L);
		return 1;
	}
	/* Taken first: a finalizer run by the push below may close dir and
	 * free e. */
	ino = (lua_Integer)e->d_ino;
	type = e->d_type;
	lua_pushstring(L, e->d_name);
	lua_pushinteger(L, ino);
	lua_pushinteger(L, type);
	return 3;
}

/* The offset of the next entry, as a FUSE readdir offset is. */
static int dir_tell(lua_State *L)
{
	long pos = telldir(checkdir(L));

	if (pos == -1)
		return luafs_sys_fail(L, errno, "telldir");
	lua_pushinteger(L, pos);
	return 1;
}

static int dir_seek(lua_State *L)
{
	DIR *dir = checkdir(L);

	seekdir(dir, (long)luaL_checkinteger(L, 2));
	lua_pushboolean(L, 1);
	return 1;
}

static int dir_close(lua_State *L)
{
	checkdir(L);
	if (dir_release(lua_touserdata(L, 1)) == -1)
		return luafs_sys_fail(L, errno, "closedir");
	lua_pushboolean(L, 1);
	return 1;
}

static int dir_gc(lua_State *L)
{
	dir_release(luafs_checkudata(L, 1, &dir_type));
	return 0;
}

static int dir_tostring(lua_State *L)
{
	struct luafs_dir *d = luafs_checkudata(L, 1, &dir_type);

	if (d->dir)
		lua_pushfstring(L, DIR_MT " (%p)", (void *)d->dir);
	else
		lua_pushliteral(L, DIR_MT " (closed)");
	return 1;
}

void luafs_dir_open(lua_State *L)
{
	static const luaL_Reg methods[] = {
		{ "read", dir_read },
		{ "tell", dir_tell },
		{ "seek", dir_seek },
		{ "close", dir_close },
		{ NULL, NULL }
	};
	static const luaL_Reg meta[] = {
		{ "__gc", dir_gc },
		{ "__close", dir_gc },
		{ "__tostring", dir_tostring },
		{ NULL, NULL }
	};

	if (luafs_newmetatable(L, &dir_type)) {
		luaL_setfuncs(L, meta, 0);
		luaL_newlib(L, methods);
		lua_setfield(L, -2, "__index");
	}
	lua_pop(L, 1);
}
