/*
 * dir.c: luafs.Dir, a directory stream that luafs.sys.opendir and
 * fdopendir return, for a passthrough's readdir.  It reads the directory
 * a kernel buffer at a time, so a directory of any size lists in constant
 * memory; readdir (ops.c) pages through one with luafs_test_dir.
 *
 * A stream is closed by close(), by leaving the scope of a <close>
 * variable, or by the garbage collector, whichever comes first; using it
 * afterwards raises an error.
 */
#include "luafs.h"

#include <errno.h>

#define DIR_MT "luafs.Dir"

static const struct luafs_type dir_type = { DIR_MT, LUAFS_T_DIR };

struct ldir {
	DIR *dir;	/* NULL once closed */
};

static DIR *checkdir(lua_State *L)
{
	struct ldir *d = luafs_checkudata(L, 1, &dir_type);

	if (!d->dir)
		luaL_error(L, "closed " DIR_MT);
	return d->dir;
}

DIR *luafs_test_dir(lua_State *L, int idx)
{
	struct ldir *d = luafs_testudata(L, idx, &dir_type);

	if (d && !d->dir)
		luaL_error(L, "closed " DIR_MT);
	return d ? d->dir : NULL;
}

/* The one place a stream is closed, for close(), __close and __gc alike;
 * clearing the pointer first makes every later call a no-op. */
static int dir_release(struct ldir *d)
{
	DIR *dir = d->dir;

	d->dir = NULL;
	return dir ? closedir(dir) : 0;
}

/* The userdata exists before the stream does, so a memory error while
 * creating it cannot leak an open DIR. */
DIR **luafs_dir_new(lua_State *L)
{
	struct ldir *d = lua_newuserdatauv(L, sizeof *d, 0);

	d->dir = NULL;
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
	struct ldir *d = luafs_checkudata(L, 1, &dir_type);

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
