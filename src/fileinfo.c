/*
 * fileinfo.c: luafs.FileInfo, a view of libfuse's struct fuse_file_info.
 *
 * The struct belongs to libfuse and lives only while its callback runs.
 * A FileInfo is a userdata made for one call and lent to the script for
 * it (luafs_lend): when the call ends its pointer is cleared, so a
 * FileInfo kept beyond its callback raises "expired" instead of touching
 * freed memory.
 */
#include "luafs.h"

#include <stdio.h>
#include <string.h>

#define FILEINFO_MT "luafs.FileInfo"

static const struct luafs_type fileinfo_type = { FILEINFO_MT, LUAFS_T_FILEINFO };

struct fileinfo {
	struct fuse_file_info *fi;	/* first: cleared when lent out ends */
	struct luafs_call *call;	/* the call it belongs to */
	int writable;			/* open, create or opendir's */
};

static struct fileinfo *check_fileinfo(lua_State *L)
{
	struct fileinfo *u = luafs_checkudata(L, 1, &fileinfo_type);

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

/*
 * The field that key 2 names.  fi.fh, which nearly every call on an open
 * file reads, is told before the list is searched.
 */
static int field_of(lua_State *L)
{
	size_t len;
	const char *k = lua_tolstring(L, 2, &len);

	int i;

	if (k != NULL && len == 2 && memcmp(k, "fh", 2) == 0)
		return F_FH;
	for (i = 0; k != NULL && field_names[i] != NULL; i++)
		if (strcmp(field_names[i], k) == 0)
			return i;
	return luaL_error(L, FILEINFO_MT " has no field '%s'",
			  luaL_tolstring(L, 2, NULL));
}

static int fileinfo_index(lua_State *L)
{
	struct fileinfo *u = check_fileinfo(L);
	struct fuse_file_info *fi = u->fi;

	switch (field_of(L)) {
	case F_FH:
		luafs_handle_push(L, u->call->st, fi);
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
	int writable = u->writable;
	int field = field_of(L);
	unsigned int on = lua_toboolean(L, 3);

	if (field == F_FH) {
		enum luafs_op op = u->call->op;

		/*
		 * Later calls get the fh that the kernel keeps from open,
		 * create or opendir.  Elsewhere a new handle would never come
		 * back, and dropping one would leave the kernel holding a
		 * reference that a later handle reuses; release drops it
		 * anyway.
		 */
		if (!writable && op != OP_release && op != OP_releasedir &&
		    (fi->fh == 0 || lua_isnoneornil(L, 3)))
			return luaL_error(L, "luafs.FileInfo: fi.fh can only be "
					  "replaced here, by a value that is "
					  "not nil; a file gets its handle in "
					  "open, create or opendir");
		luafs_handle_set(L, u->call->st, fi, 3, writable);
		return 0;
	}
	if (!writable || field > F_NOFLUSH || field == F_FLAGS)
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
	struct fileinfo *u = luafs_checkudata(L, 1, &fileinfo_type);
	char flags[16];

	if (u->fi == NULL) {
		lua_pushliteral(L, "luafs.FileInfo (expired)");
		return 1;
	}
	snprintf(flags, sizeof(flags), "%#o", (unsigned)u->fi->flags);
	lua_pushfstring(L, "luafs.FileInfo (flags %s)", flags);
	return 1;
}

void luafs_fileinfo_open(lua_State *L)
{
	static const luaL_Reg meta[] = {
		{"__index", fileinfo_index},
		{"__newindex", fileinfo_newindex},
		{"__tostring", fileinfo_tostring},
		{NULL, NULL}
	};

	luafs_newmetatable(L, &fileinfo_type);
	luaL_setfuncs(L, meta, 0);
	lua_pop(L, 1);
}

/* Pushes a FileInfo of fi for call c, or nil for no fi. */
void luafs_fileinfo_push(lua_State *L, struct luafs_call *c,
			 struct fuse_file_info *fi, int writable)
{
	struct fileinfo *u;

	if (fi == NULL) {
		lua_pushnil(L);
		return;
	}
	u = lua_newuserdatauv(L, sizeof(*u), 0);
	u->fi = fi;
	u->call = c;
	u->writable = writable;
	luafs_setmetatable(L, &fileinfo_type);
	luafs_lend(L, c, (void **)&u->fi);
}
