/*
 * pollhandle.c: luafs.PollHandle, the struct fuse_pollhandle that poll
 * receives.  fuse.h makes the callee responsible for destroying it, so the
 * userdata owns it: :destroy(), __close and __gc share one idempotent
 * release, and a released handle raises on use instead of crashing.
 */
#include "luafs.h"

#include <errno.h>

#define POLLHANDLE_MT "luafs.PollHandle"

struct pollhandle {
	struct fuse_pollhandle *ph;
};

static struct pollhandle *check_pollhandle(lua_State *L)
{
	struct pollhandle *u = luaL_checkudata(L, 1, POLLHANDLE_MT);

	if (u->ph == NULL)
		luaL_error(L, "released luafs.PollHandle");
	return u;
}

/* ph:notify() wakes the poller; the handle stays usable. */
static int l_notify(lua_State *L)
{
	int res = fuse_notify_poll(check_pollhandle(L)->ph);

	if (res < 0) {
		errno = -res;
		return luaL_fileresult(L, 0, "luafs.PollHandle:notify");
	}
	lua_pushboolean(L, 1);
	return 1;
}

static int l_destroy(lua_State *L)
{
	struct pollhandle *u = luaL_checkudata(L, 1, POLLHANDLE_MT);

	if (u->ph != NULL) {
		fuse_pollhandle_destroy(u->ph);
		u->ph = NULL;
	}
	return 0;
}

static int l_tostring(lua_State *L)
{
	struct pollhandle *u = luaL_checkudata(L, 1, POLLHANDLE_MT);

	lua_pushstring(L, u->ph ? "luafs.PollHandle" :
		       "luafs.PollHandle (released)");
	return 1;
}

void luafs_pollhandle_open(lua_State *L)
{
	static const luaL_Reg methods[] = {
		{"notify", l_notify},
		{"destroy", l_destroy},
		{NULL, NULL}
	};
	static const luaL_Reg meta[] = {
		{"__gc", l_destroy},
		{"__close", l_destroy},
		{"__tostring", l_tostring},
		{NULL, NULL}
	};

	luaL_newmetatable(L, POLLHANDLE_MT);
	luaL_setfuncs(L, meta, 0);
	luaL_newlib(L, methods);
	lua_setfield(L, -2, "__index");
	lua_pop(L, 1);
}

/*
 * Takes ownership of ph.  The userdata is made before it holds ph, so a
 * memory error here leaves ph with the caller to destroy.
 */
void luafs_pollhandle_push(lua_State *L, struct fuse_pollhandle *ph)
{
	struct pollhandle *u;

	if (ph == NULL) {
		lua_pushnil(L);
		return;
	}
	u = lua_newuserdatauv(L, sizeof(*u), 0);
	u->ph = NULL;
	luaL_setmetatable(L, POLLHANDLE_MT);
	u->ph = ph;
}
