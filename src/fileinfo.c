/*
 * fileinfo.c: luafs.FileInfo, a view of libfuse's struct fuse_file_info.
 *
 * The struct belongs to libfuse and lives only while its callback runs, so
 * the userdata borrows it: the host clears the pointer when the callback
 * returns, and a FileInfo kept beyond that raises "expired" instead of
 * touching freed memory (see luafs_borrow).
 */
#include "luafs.h"

#include <string.h>

#define FILEINFO_MT "luafs.FileInfo"

/*
 * A FileInfo is told from other userdata by its size and a tag, a fraction
 * of what luaL_checkudata costs on each field a callback reads; only C code
 * makes userdata, and none but this file makes one with the tag.
 */
#define FILEINFO_TAG UINT64_C(0x6c75616673466949)	/* "luafsFiI" */

struct fileinfo {
	struct fuse_file_info *fi;	/* first: cleared by luafs_borrow */
	uint64_t tag;
	int writable;		/* open, create, opendir may set the flags */
};

static struct fileinfo *check_fileinfo(lua_State *L)
{
	struct fileinfo *u = lua_touserdata(L, 1);

	if (u == NULL || lua_rawlen(L, 1) != sizeof(*u) ||
	    u->tag != FILEINFO_TAG)
		luaL_typeerror(L, 1, FILEINFO_MT);
	if (u->fi == NULL)
		luaL_error(L, "expired luafs.FileInfo "
			   "(used after its callback returned)");
	return u;
}

enum field {
	F_FH, F_FLAGS, F_DIRECT_IO, F_KEEP_CACHE, F_NONSEEKABLE,
	F_CACHE_READDIR, F_NOFLUSH, F_FLUSH, F_WRITEPAGE, F_FLOCK_RELEASE,
	F_LOCK_OWNER, F_POLL_EVENTS
};

static const char *const field_names[] = {
	"fh", "flags", "direct_io", "keep_cache", "nonseekable",
	"cache_readdir", "noflush", "flush", "writepage", "flock_release",
	"lock_owner", "poll_events", NULL
};

static int fileinfo_index(lua_State *L)
{
	struct fileinfo *u = check_fileinfo(L);
	struct fuse_file_info *fi = u->fi;

	switch (luaL_checkoption(L, 2, NULL, field_names)) {
	case F_FH:
		luafs_handle_push(L, luafs_current->st, fi);
		break;
	case F_FLAGS:
		lua_pushinteger(L, fi->flags);
		break;
	case F_DIRECT_IO:
		lua_pushboolean(L, fi->direct_io);
		break;
	case F_KEEP_CACHE:
		lua_pushboolean(L, fi->keep_cache);
		break;
	case F_NONSEEKABLE:
		lua_pushboolean(L, fi->nonseekable);
		break;
	case F_CACHE_READDIR:
		lua_pushboolean(L, fi->cache_readdir);
		break;
	case F_NOFLUSH:
		lua_pushboolean(L, fi->noflush);
		break;
	case F_FLUSH:
		lua_pushboolean(L, fi->flush);
		break;
	case F_WRITEPAGE:
		lua_pushboolean(L, fi->writepage);
		break;
	case F_FLOCK_RELEASE:
		lua_pushboolean(L, fi->flock_release);
		break;
	case F_LOCK_OWNER:
		lua_pushinteger(L, (lua_Integer)fi->lock_owner);
		break;
	case F_POLL_EVENTS:
		lua_pushinteger(L, fi->poll_events);
		break;
	}
	return 1;
}

static int fileinfo_newindex(lua_State *L)
{
	struct fileinfo *u = check_fileinfo(L);
	struct fuse_file_info *fi = u->fi;
	int field = luaL_checkoption(L, 2, NULL, field_names);
	unsigned int on = lua_toboolean(L, 3);

	if (field == F_FH) {
		enum luafs_op op = luafs_current->op;

		/*
		 * Later calls get the fh that the kernel keeps from open,
		 * create or opendir.  Elsewhere a new handle would never come
		 * back, and dropping one would leave the kernel holding a
		 * reference that a later handle reuses; release drops it
		 * anyway.
		 */
		if (!u->writable && op != OP_release && op != OP_releasedir &&
		    (fi->fh == 0 || lua_isnoneornil(L, 3)))
			return luaL_error(L, "luafs.FileInfo: fi.fh can only be "
					  "replaced here, by a value that is "
					  "not nil; a file gets its handle in "
					  "open, create or opendir");
		luafs_handle_set(L, luafs_current->st, fi, 3);
		return 0;
	}
	if (!u->writable || field > F_NOFLUSH || field == F_FLAGS)
		return luaL_error(L, "luafs.FileInfo field '%s' is read-only "
				  "here", field_names[field]);
	switch (field) {
	case F_DIRECT_IO:
		fi->direct_io = on;
		break;
	case F_KEEP_CACHE:
		fi->keep_cache = on;
		break;
	case F_NONSEEKABLE:
		fi->nonseekable = on;
		break;
	case F_CACHE_READDIR:
		fi->cache_readdir = on;
		break;
	case F_NOFLUSH:
		fi->noflush = on;
		break;
	}
	return 0;
}

static int fileinfo_tostring(lua_State *L)
{
	struct fileinfo *u = luaL_checkudata(L, 1, FILEINFO_MT);

	if (u->fi == NULL)
		lua_pushliteral(L, "luafs.FileInfo (expired)");
	else
		lua_pushfstring(L, "luafs.FileInfo (flags 0x%x)",
				(unsigned)u->fi->flags);
	return 1;
}

int luafs_fileinfo_open(lua_State *L)
{
	static const luaL_Reg meta[] = {
		{"__index", fileinfo_index},
		{"__newindex", fileinfo_newindex},
		{"__tostring", fileinfo_tostring},
		{NULL, NULL}
	};

	luaL_newmetatable(L, FILEINFO_MT);
	luaL_setfuncs(L, meta, 0);
	return luaL_ref(L, LUA_REGISTRYINDEX);
}

void luafs_fileinfo_push(lua_State *L, struct fuse_file_info *fi,
			 int writable)
{
	struct fileinfo *u;

	if (fi == NULL) {
		lua_pushnil(L);
		return;
	}
	u = lua_newuserdatauv(L, sizeof(*u), 0);
	u->fi = fi;
	u->tag = FILEINFO_TAG;
	u->writable = writable;
	lua_rawgeti(L, LUA_REGISTRYINDEX, luafs_current->st->fileinfo_mt);
	lua_setmetatable(L, -2);
	luafs_borrow(L, -1);
}
