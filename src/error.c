/*
 * error.c: luafs.Error, the error object that luafs.error raises: a
 * callback that lets it escape answers its errno, without a log line.
 *
 * Unlike the userdata types, an error object is a plain table with a
 * protected metatable, so that a script can read its errno and message
 * as fields; only luafs.error makes one.
 */
#include "luafs.h"

#include <string.h>

#define ERROR_MT "luafs.Error"

/* The kernel accepts errors from 1 to 511 (ERESTARTSYS is 512). */
int luafs_valid_errno(lua_Integer e)
{
	return e > 0 && e < 512;
}

/*
 * Whether the value at idx is a luafs.error object with a valid errno.
 * Its fields are a plain table's, so a script could have changed errno;
 * one that is no errno any more makes it an ordinary error (EIO).
 */
int luafs_is_error(lua_State *L, int idx, int *err)
{
	lua_Integer e;
	int is;

	if (!lua_istable(L, idx) || !lua_getmetatable(L, idx))
		return 0;
	luaL_getmetatable(L, ERROR_MT);
	is = lua_rawequal(L, -1, -2);
	lua_pop(L, 2);
	if (!is)
		return 0;
	/* A number: "2" would pass lua_tointegerx. */
	lua_getfield(L, idx, "errno");
	is = 0;
	e = lua_type(L, -1) == LUA_TNUMBER ? lua_tointegerx(L, -1, &is) : 0;
	lua_pop(L, 1);
	if (!is || !luafs_valid_errno(e))
		return 0;
	*err = (int)e;
	return 1;
}

/*
 * luafs.error(errno [, message]) raises an error object that carries the
 * errno; a callback that lets it escape answers -errno, without a log line.
 */
static int l_error(lua_State *L)
{
	lua_Integer e = luaL_checkinteger(L, 1);
	const char *msg = luaL_optstring(L, 2, NULL);

	luaL_argcheck(L, luafs_valid_errno(e), 1, "not an errno value");
	lua_createtable(L, 0, 2);
	lua_pushinteger(L, e);
	lua_setfield(L, -2, "errno");
	if (msg)
		lua_pushstring(L, msg);
	else
		lua_pushstring(L, strerror((int)e));
	lua_setfield(L, -2, "message");
	luaL_setmetatable(L, ERROR_MT);
	return lua_error(L);
}

static int error_tostring(lua_State *L)
{
	const char *msg, *e;

	luaL_checktype(L, 1, LUA_TTABLE);
	lua_getfield(L, 1, "message");
	lua_getfield(L, 1, "errno");
	msg = luaL_tolstring(L, 2, NULL);
	e = luaL_tolstring(L, 3, NULL);
	lua_pushfstring(L, "%s (errno %s)", msg, e);
	return 1;
}

/* Registers luafs.Error and pushes luafs.error. */
void luafs_error_open(lua_State *L)
{
	if (luaL_newmetatable(L, ERROR_MT)) {
		lua_pushcfunction(L, error_tostring);
		lua_setfield(L, -2, "__tostring");
		/* Nobody else may make error objects: they skip the log. */
		lua_pushliteral(L, ERROR_MT);
		lua_setfield(L, -2, "__metatable");
	}
	lua_pop(L, 1);
	lua_pushcfunction(L, l_error);
}
