/*
 * handles.c: a file handle is whatever Lua value open, create or opendir
 * returned (or stored in fi.fh).  The value lives in its state's handle
 * table under a luaL_ref reference, which fi->fh carries to later calls
 * together with the state's pool index, so the same state serves the handle
 * (handle affinity) and the value never crosses states.
 */
#include "luafs.h"

static int handle_ref(const struct fuse_file_info *fi)
{
	return (int)(fi->fh >> LUAFS_FH_INDEX_BITS);
}

void luafs_handle_set(lua_State *L, struct luafs_state *s,
		      struct fuse_file_info *fi, int idx)
{
	idx = lua_absindex(L, idx);
	if (lua_isnil(L, idx)) {
		luafs_handle_drop(L, s, fi);
		return;
	}
	lua_rawgeti(L, LUA_REGISTRYINDEX, s->handles);
	if (fi->fh != 0) {
		lua_pushvalue(L, idx);
		lua_rawseti(L, -2, handle_ref(fi));
	} else {
		lua_pushvalue(L, idx);
		fi->fh = (uint64_t)luaL_ref(L, -2) << LUAFS_FH_INDEX_BITS |
			 (uint64_t)s->index;
		__atomic_add_fetch(&s->nhandles, 1, __ATOMIC_RELAXED);
	}
	lua_pop(L, 1);
}

void luafs_handle_push(lua_State *L, struct luafs_state *s,
		       const struct fuse_file_info *fi)
{
	if (fi == NULL || fi->fh == 0) {
		lua_pushnil(L);
		return;
	}
	if ((int)(fi->fh & LUAFS_FH_INDEX_MASK) != s->index)
		luaL_error(L, "this handle belongs to another Lua state");
	lua_rawgeti(L, LUA_REGISTRYINDEX, s->handles);
	lua_rawgeti(L, -1, handle_ref(fi));
	lua_remove(L, -2);
}

void luafs_handle_drop(lua_State *L, struct luafs_state *s,
		       struct fuse_file_info *fi)
{
	if (fi == NULL || fi->fh == 0)
		return;
	lua_rawgeti(L, LUA_REGISTRYINDEX, s->handles);
	luaL_unref(L, -1, handle_ref(fi));
	lua_pop(L, 1);
	fi->fh = 0;
	__atomic_sub_fetch(&s->nhandles, 1, __ATOMIC_RELAXED);
}
