/*
 * module.c: require "luafs", the table a script gets, built from one list
 * of its fields: constants, luafs.sys, luafs.error, the functions that
 * describe the request in progress, and the host's own fields.
 *
 * This file is compiled twice: into the host, with LUAFS_HOST, and as a
 * plain Lua C module (luafs.so), so that specs and users' tests running
 * under lua5.4 have the constants and luafs.sys too; there the host's
 * fields are left out, and outside a request the functions that need one
 * raise an error.
 */
#include "luafs.h"

#include <errno.h>

struct luafs_host luafs_host;

/* The request this thread is serving, NULL outside a callback. */
__thread struct luafs_call *luafs_current;

static const char private_key = 'p';

static struct fuse_context *check_context(lua_State *L, const char *fn)
{
	struct fuse_context *ctx;

	if (luafs_current == NULL || (ctx = fuse_get_context()) == NULL)
		luaL_error(L, "luafs.%s: not inside a luafs callback", fn);
	return ctx;
}

/*
 * init and destroy answer no request: libfuse has no caller to ask about
 * then, and its fuse_getgroups and fuse_interrupted would dereference a
 * NULL request.
 */
static int has_request(void)
{
	return luafs_current->op != OP_init && luafs_current->op != OP_destroy;
}

void luafs_set_private(lua_State *L, int idx)
{
	lua_pushvalue(L, idx);
	lua_rawsetp(L, LUA_REGISTRYINDEX, &private_key);
}

void luafs_push_private(lua_State *L)
{
	lua_rawgetp(L, LUA_REGISTRYINDEX, &private_key);
}

/*
 * luafs.context([t]) -> { uid, gid, pid, umask, private } of the caller,
 * in t when given: a script that keeps one table for it spares a table,
 * and the collector's work on it, in every call that asks.  The field
 * names are upvalues, in that order: lua_setfield would look each name up
 * as a C string first, on every call.
 */
static int l_context(lua_State *L)
{
	struct fuse_context *ctx = check_context(L, "context");
	lua_Integer v[4] = { ctx->uid, ctx->gid, ctx->pid, ctx->umask };
	int i;

	if (lua_isnoneornil(L, 1)) {
		lua_createtable(L, 0, 5);
	} else {
		luaL_checktype(L, 1, LUA_TTABLE);
		lua_settop(L, 1);
	}
	for (i = 0; i < 4; i++) {
		lua_pushvalue(L, lua_upvalueindex(i + 1));
		lua_pushinteger(L, v[i]);
		lua_rawset(L, -3);
	}
	lua_pushvalue(L, lua_upvalueindex(5));
	luafs_push_private(L);
	lua_rawset(L, -3);
	return 1;
}

/* luafs.groups() -> the caller's supplementary groups. */
static int l_groups(lua_State *L)
{
	gid_t groups[256];
	int n, i;

	check_context(L, "groups");
	if (!has_request()) {
		lua_newtable(L);
		return 1;
	}
	n = fuse_getgroups(256, groups);
	if (n < 0) {
		errno = -n;
		return luaL_fileresult(L, 0, "luafs.groups");
	}
	if (n > 256)
		n = 256;
	lua_createtable(L, n, 0);
	for (i = 0; i < n; i++) {
		lua_pushinteger(L, groups[i]);
		lua_rawseti(L, -2, i + 1);
	}
	return 1;
}

/* luafs.interrupted() -> whether the kernel interrupted this request. */
static int l_interrupted(lua_State *L)
{
	check_context(L, "interrupted");
	lua_pushboolean(L, has_request() && fuse_interrupted());
	return 1;
}

static int l_version(lua_State *L)
{
	lua_createtable(L, 0, 3);
	lua_pushliteral(L, PACKAGE_VERSION);
	lua_setfield(L, -2, "luafs");
	lua_pushstring(L, fuse_pkgversion());
	lua_setfield(L, -2, "fuse");
	lua_pushliteral(L, LUA_RELEASE);
	lua_setfield(L, -2, "lua");
	return 1;
}

/* luafs.log(message): one line in the host's log. */
static int l_log(lua_State *L)
{
	luafs_log(LOG_NOTICE, "%s", luaL_checkstring(L, 1));
	return 0;
}

/*
 * luafs.generation() -> which load of the script the calling code is: 1 at
 * mount, one more per reload that took over; 0 in the plain module, which
 * loads no script.  Each state keeps its own number (in the registry, since
 * the state's struct moves at start-up), so a request that started before
 * a reload and still runs the old code sees the old number.
 */
static const char generation_key = 'g';

void luafs_set_generation(lua_State *L, int generation)
{
	lua_pushinteger(L, generation);
	lua_rawsetp(L, LUA_REGISTRYINDEX, &generation_key);
}

static int l_generation(lua_State *L)
{
	lua_rawgetp(L, LUA_REGISTRYINDEX, &generation_key);
	lua_pushinteger(L, lua_tointeger(L, -1));
	return 1;
}

/* The field names are upvalues of luafs.context, in its order. */
static void push_context(lua_State *L)
{
	lua_pushliteral(L, "uid");
	lua_pushliteral(L, "gid");
	lua_pushliteral(L, "pid");
	lua_pushliteral(L, "umask");
	lua_pushliteral(L, "private");
	lua_pushcclosure(L, l_context, 5);
}

#ifdef LUAFS_HOST
static void push_stash(lua_State *L)
{
	lua_newtable(L);
}
#endif

struct field {
	const char *name;
	lua_CFunction func;		/* the field is this function, */
	void (*push)(lua_State *L);	/* or the value this pushes */
	int loaded;	/* also package.loaded["luafs.<name>"], so that
			 * argument errors name luafs.sys.stat, not '?' */
};

/*
 * Every field of luafs but the constants (constants.c), which are one
 * field each.  HOST marks the fields that only the host has (luafs(3)
 * says so): they need its pool of states and its FUSE session, and the
 * plain module, built without LUAFS_HOST, leaves them out.
 */
#ifdef LUAFS_HOST
#define HOST(...) { __VA_ARGS__ },
#else
#define HOST(...)
#endif
static const struct field fields[] = {
	{ "error", NULL, luafs_error_open, 0 },		/* error.c */
	{ "context", NULL, push_context, 0 },
	{ "groups", l_groups, NULL, 0 },
	{ "interrupted", l_interrupted, NULL, 0 },
	{ "version", l_version, NULL, 0 },
	{ "log", l_log, NULL, 0 },
	{ "generation", l_generation, NULL, 0 },
	{ "sys", NULL, luafs_open_sys, 1 },		/* sys.c */
	{ "Stat", NULL, luafs_stat_open, 0 },		/* stattable.c */
	HOST("BufVec", NULL, luafs_bufvec_open, 0)	/* bufvec.c */
	HOST("invalidate_path", luafs_invalidate_path, NULL, 0)
	HOST("shared", NULL, luafs_shared_open, 1)	/* shared.c */
	HOST("states", luafs_pool_states, NULL, 0)	/* pool.c */
	HOST("stash", NULL, push_stash, 0)
	HOST("after", luafs_timers_after, NULL, 0)	/* timers.c */
	HOST("every", luafs_timers_every, NULL, 0)
	HOST("watch", luafs_timers_watch, NULL, 0)
};
#undef HOST

int luaopen_luafs(lua_State *L)
{
	size_t i;

	lua_createtable(L, 0, sizeof(fields) / sizeof(fields[0]));
	for (i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		if (fields[i].func)
			lua_pushcfunction(L, fields[i].func);
		else
			fields[i].push(L);
		if (fields[i].loaded) {
			luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
			lua_pushfstring(L, "luafs.%s", fields[i].name);
			lua_pushvalue(L, -3);
			lua_settable(L, -3);
			lua_pop(L, 1);
		}
		lua_setfield(L, -2, fields[i].name);
	}
	luafs_set_constants(L, -1);
	return 1;
}
