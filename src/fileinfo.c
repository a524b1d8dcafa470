/*
 * fileinfo.c: luafs.FileInfo, a view of libfuse's struct fuse_file_info.
 *
 * The struct belongs to libfuse and lives only while its callback runs.  A
 * FileInfo is a light userdata that holds no pointer: it names a slot of
 * its state's current call (luafs_state's fi[]) and that call's key, and
 * reads the struct through the slot only while the key is the state's.
 * Between calls the state has no key, and each call gets a new one, so a
 * FileInfo kept beyond its callback raises "expired" instead of touching
 * freed memory.  Being no object, it costs the call no allocation and the
 * collector nothing; in a random read (a getattr and a read_buf, each with
 * a FileInfo) that was a tenth of the host's instructions.
 *
 * Lua gives all light userdata of a state one metatable, so this file's
 * metamethods also see other light userdata, which they refuse.
 */
#include "luafs.h"

#include <stdio.h>
#include <string.h>

#define FILEINFO_MT "luafs.FileInfo"

/*
 * The value: KEY_MARK in the top byte (not an address of user space, so
 * no pointer another library makes into a light userdata is taken for a
 * FileInfo), the call's serial, the slot, and bit 0 set.
 */
#define KEY_SHIFT 2
#define KEY_MARK ((uintptr_t)0xf1 << (sizeof(uintptr_t) * 8 - 8))
#define SERIAL_MASK (((uintptr_t)1 << (sizeof(uintptr_t) * 8 - 8 - \
					KEY_SHIFT)) - 1)
#define SLOT_BIT ((uintptr_t)2)

/* After a call that pushed a FileInfo: its key is no longer the state's. */
void luafs_fileinfo_end(struct luafs_state *s)
{
	s->fi_key = 0;
	s->nfi = 0;
}

/*
 * A state's extra space holds 1 + its index in the pool (0 for the state
 * a reload checks a script in), not its address: the first state is loaded
 * before the pool exists and moved into it, and every coroutine gets a
 * copy of the extra space when it is made.
 */
static struct luafs_state *state_of(lua_State *L)
{
	intptr_t n = *(intptr_t *)lua_getextraspace(L);

	return n > 0 && n <= luafs_host.nstates && luafs_host.states != NULL ?
	       &luafs_host.states[n - 1] : NULL;
}

static int is_fileinfo(uintptr_t v)
{
	return (v & ~(SERIAL_MASK << KEY_SHIFT | SLOT_BIT)) == (KEY_MARK | 1);
}

/* The state whose current call v is a FileInfo of, or NULL: expired. */
static struct luafs_state *live_state(lua_State *L, uintptr_t v)
{
	struct luafs_state *s = state_of(L);

	/* v has the mark, so it never equals the 0 of a state between calls. */
	return s != NULL && (v & ~SLOT_BIT) == s->fi_key ? s : NULL;
}

/* The state of the FileInfo at index 1, and its slot there. */
static struct luafs_state *check_fileinfo(lua_State *L, unsigned *slot)
{
	uintptr_t v = (uintptr_t)lua_touserdata(L, 1);
	struct luafs_state *s;

	if (!is_fileinfo(v)) {
		if (lua_islightuserdata(L, 1))
			luaL_error(L, "a light userdata that is not a "
				   FILEINFO_MT " has no fields");
		luaL_typeerror(L, 1, FILEINFO_MT);
	}
	if ((s = live_state(L, v)) == NULL)
		luaL_error(L, "expired luafs.FileInfo "
			   "(used after its callback returned)");
	*slot = (unsigned)(v >> 1 & 1);
	return s;
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
	unsigned slot;
	struct luafs_state *s = check_fileinfo(L, &slot);
	struct fuse_file_info *fi = s->fi[slot];

	switch (field_of(L)) {
	case F_FH:
		luafs_handle_push(L, s, fi);
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
	unsigned slot;
	struct luafs_state *s = check_fileinfo(L, &slot);
	struct fuse_file_info *fi = s->fi[slot];
	int writable = s->fi_writable >> slot & 1;
	int field = field_of(L);
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
		if (!writable && op != OP_release && op != OP_releasedir &&
		    (fi->fh == 0 || lua_isnoneornil(L, 3)))
			return luaL_error(L, "luafs.FileInfo: fi.fh can only be "
					  "replaced here, by a value that is "
					  "not nil; a file gets its handle in "
					  "open, create or opendir");
		luafs_handle_set(L, s, fi, 3, writable);
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

/* Other light userdata print as they would without this metatable. */
static int fileinfo_tostring(lua_State *L)
{
	uintptr_t v = (uintptr_t)lua_touserdata(L, 1);
	struct luafs_state *s;

	if (!is_fileinfo(v))
		lua_pushfstring(L, "userdata: %p", (void *)v);
	else if ((s = live_state(L, v)) == NULL)
		lua_pushliteral(L, "luafs.FileInfo (expired)");
	else {
		char flags[16];

		snprintf(flags, sizeof(flags), "%#o",
			 (unsigned)s->fi[v >> 1 & 1]->flags);
		lua_pushfstring(L, "luafs.FileInfo (flags %s)", flags);
	}
	return 1;
}

/* Installs the metatable of the state's light userdata. */
void luafs_fileinfo_open(lua_State *L, struct luafs_state *s)
{
	static const luaL_Reg meta[] = {
		{"__index", fileinfo_index},
		{"__newindex", fileinfo_newindex},
		{"__tostring", fileinfo_tostring},
		{NULL, NULL}
	};

	*(intptr_t *)lua_getextraspace(L) = s->index >= 0 ? s->index + 1 : 0;
	lua_pushlightuserdata(L, NULL);
	luaL_newmetatable(L, FILEINFO_MT);
	luaL_setfuncs(L, meta, 0);
	lua_setmetatable(L, -2);
	lua_pop(L, 1);
}

void luafs_fileinfo_push(lua_State *L, struct fuse_file_info *fi,
			 int writable)
{
	struct luafs_state *s;
	unsigned slot;

	if (fi == NULL) {
		lua_pushnil(L);
		return;
	}
	s = luafs_current->st;
	slot = s->nfi;
	if (slot >= LUAFS_MAX_FILEINFO)
		luaL_error(L, "no slot left for a luafs.FileInfo");
	if (slot == 0)
		s->fi_key = KEY_MARK |
			    (++s->fi_calls & SERIAL_MASK) << KEY_SHIFT | 1;
	s->nfi++;
	s->fi[slot] = fi;
	s->fi_writable = (s->fi_writable & ~(1u << slot)) |
			 (unsigned)(writable != 0) << slot;
	lua_pushlightuserdata(L, (void *)(s->fi_key | (uintptr_t)slot << 1));
}
