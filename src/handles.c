/*
 * handles.c: a file handle is whatever Lua value open, create or opendir
 * returned (or stored in fi.fh), kept until release.
 *
 * Most values live in their state's handle table under a luaL_ref
 * reference, which fi->fh carries to later calls together with the state's
 * pool index, so the same state serves the handle (handle affinity) and
 * the value never crosses states.  A script that declares
 * portable_handles has its integer handles (file descriptors, keys of
 * luafs.shared) kept in fi->fh itself: any state may serve them, so a call
 * that blocks in one state never holds up the others' calls on the same
 * file.
 *
 *   fh == 0                  no handle
 *   fh & 1                   the integer fh >> 1 (arithmetic shift)
 *   otherwise                reference fh >> 17, state (fh >> 1) & 0xffff
 */
#include "luafs.h"

#define INDEX_BITS 16
#define INDEX_MASK ((1u << INDEX_BITS) - 1)
#define INLINE_MIN (-((lua_Integer)1 << 62))
#define INLINE_MAX (((lua_Integer)1 << 62) - 1)

static int is_inline(uint64_t fh)
{
	return fh & 1;
}

static int handle_ref(uint64_t fh)
{
	return (int)(fh >> (INDEX_BITS + 1));
}

/* The pool index of the state that holds fi's handle, -1 for any state. */
int luafs_handle_state(const struct fuse_file_info *fi)
{
	if (fi == NULL || fi->fh == 0 || is_inline(fi->fh))
		return -1;
	return (int)(fi->fh >> 1 & INDEX_MASK);
}

/*
 * Stores the value at idx as fi's handle.  In open, create and opendir
 * (at_open) fi->fh goes back to libfuse, so the value may take any form.
 * Later calls get the fh that open returned, whatever they write into
 * theirs: only the value behind a reference can change then, and an
 * integer kept in fh itself cannot change at all.
 */
void luafs_handle_set(lua_State *L, struct luafs_state *s,
		      struct fuse_file_info *fi, int idx, int at_open)
{
	lua_Integer v;

	idx = lua_absindex(L, idx);
	if (!at_open && fi->fh != 0 && !lua_isnil(L, idx)) {
		if (is_inline(fi->fh))
			luaL_error(L, "fi.fh cannot be replaced after open: "
				   "this file's handle is the integer %I, "
				   "which libfuse keeps (portable_handles)",
				   (lua_Integer)((int64_t)fi->fh >> 1));
		lua_rawgeti(L, LUA_REGISTRYINDEX, s->handles);
		lua_pushvalue(L, idx);
		lua_rawseti(L, -2, handle_ref(fi->fh));
		lua_pop(L, 1);
		return;
	}
	if (s->code.portable && lua_isinteger(L, idx) &&
	    (v = lua_tointeger(L, idx)) >= INLINE_MIN && v <= INLINE_MAX) {
		luafs_handle_drop(L, s, fi);
		fi->fh = (uint64_t)v << 1 | 1;
		return;
	}
	if (lua_isnil(L, idx) || (fi->fh != 0 && is_inline(fi->fh))) {
		luafs_handle_drop(L, s, fi);
		if (lua_isnil(L, idx))
			return;
	}
	lua_rawgeti(L, LUA_REGISTRYINDEX, s->handles);
	lua_pushvalue(L, idx);
	if (fi->fh != 0) {
		lua_rawseti(L, -2, handle_ref(fi->fh));
	} else {
		fi->fh = (uint64_t)luaL_ref(L, -2) << (INDEX_BITS + 1) |
			 (uint64_t)s->index << 1;
		__atomic_add_fetch(&s->pool.nhandles, 1, __ATOMIC_RELAXED);
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
	if (is_inline(fi->fh)) {
		lua_pushinteger(L, (lua_Integer)((int64_t)fi->fh >> 1));
		return;
	}
	if (luafs_handle_state(fi) != s->index)
		luaL_error(L, "this handle belongs to another Lua state");
	lua_rawgeti(L, LUA_REGISTRYINDEX, s->handles);
	lua_rawgeti(L, -1, handle_ref(fi->fh));
	lua_remove(L, -2);
}

void luafs_handle_drop(lua_State *L, struct luafs_state *s,
		       struct fuse_file_info *fi)
{
	if (fi == NULL || fi->fh == 0)
		return;
	if (!is_inline(fi->fh)) {
		lua_rawgeti(L, LUA_REGISTRYINDEX, s->handles);
		luaL_unref(L, -1, handle_ref(fi->fh));
		lua_pop(L, 1);
		__atomic_sub_fetch(&s->pool.nhandles, 1, __ATOMIC_RELAXED);
	}
	fi->fh = 0;
}
