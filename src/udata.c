/*
 * udata.c: the one way luafs makes and checks its userdata.
 *
 * As luaL_checkudata does, a userdata is of a type when its metatable is
 * that type's, made by luaL_newmetatable under the type's name.  A host
 * state keeps the addresses of its metatables in its struct luafs_extra,
 * so that a check compares two addresses instead of looking the metatable
 * up in the registry (and a reference, to push it without a hash lookup):
 * the checks run several times per request.  Elsewhere (the plain Lua
 * module) the registry is asked, under the type's address.
 */
#include "luafs.h"

int luafs_in_host;

static struct luafs_extra *extra(lua_State *L)
{
	return luafs_in_host ? luafs_extra(L) : NULL;
}

/* Leaves the type's metatable on the stack; 1 if it was made now. */
int luafs_newmetatable(lua_State *L, const struct luafs_type *t)
{
	struct luafs_extra *m;

	if (!luaL_newmetatable(L, t->name))
		return 0;
	lua_pushvalue(L, -1);
	lua_rawsetp(L, LUA_REGISTRYINDEX, t);
	if ((m = extra(L)) != NULL) {
		m->mt[t->id] = lua_topointer(L, -1);
		lua_pushvalue(L, -1);
		m->ref[t->id] = luaL_ref(L, LUA_REGISTRYINDEX);
	}
	return 1;
}

/* Sets the metatable of type t on the userdata on top of the stack. */
void luafs_setmetatable(lua_State *L, const struct luafs_type *t)
{
	struct luafs_extra *m = extra(L);

	if (m != NULL)
		lua_rawgeti(L, LUA_REGISTRYINDEX, m->ref[t->id]);
	else
		lua_rawgetp(L, LUA_REGISTRYINDEX, t);
	lua_setmetatable(L, -2);
}

/* The userdata at idx if it is of type t, else NULL. */
void *luafs_testudata(lua_State *L, int idx, const struct luafs_type *t)
{
	void *p = lua_touserdata(L, idx);
	struct luafs_extra *m = extra(L);
	int same;

	if (p == NULL || !lua_getmetatable(L, idx))
		return NULL;
	if (m != NULL) {
		same = lua_topointer(L, -1) == m->mt[t->id];
		lua_pop(L, 1);
	} else {
		lua_rawgetp(L, LUA_REGISTRYINDEX, t);
		same = lua_rawequal(L, -1, -2);
		lua_pop(L, 2);
	}
	return same ? p : NULL;
}

/* The userdata at idx, which must be of type t. */
void *luafs_checkudata(lua_State *L, int idx, const struct luafs_type *t)
{
	void *p = luafs_testudata(L, idx, t);

	if (p == NULL)
		luaL_typeerror(L, idx, t->name);
	return p;
}
