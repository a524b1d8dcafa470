/*
 * initconf.c: the two objects init(conn, cfg) receives, luafs.ConnInfo and
 * luafs.Config: views of libfuse's struct fuse_conn_info and struct
 * fuse_config whose fields the script reads and sets by name.  Both structs
 * outlive init, but setting them later has no effect, so the views refuse
 * use once the filesystem has started.
 */
#include "luafs.h"

#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

enum kind { K_UINT, K_INT, K_BOOL, K_DOUBLE, K_STRING };

struct field {
	const char *name;
	size_t offset;
	enum kind kind;
	int writable;
};

#define CONN(f, w) { #f, offsetof(struct fuse_conn_info, f), K_UINT, w }
static const struct field conn_fields[] = {
	CONN(proto_major, 0), CONN(proto_minor, 0), CONN(max_write, 1),
	/* libfuse ends the session (EPROTO) when init changes max_read. */
	CONN(max_read, 0), CONN(max_readahead, 1), CONN(capable, 0),
	CONN(want, 1), CONN(max_background, 1), CONN(congestion_threshold, 1),
	CONN(time_gran, 1), { NULL, 0, 0, 0 }
};

#define CFG(f, k) { #f, offsetof(struct fuse_config, f), k, 1 }
static const struct field config_fields[] = {
	CFG(set_gid, K_BOOL), CFG(gid, K_UINT), CFG(set_uid, K_BOOL),
	CFG(uid, K_UINT), CFG(set_mode, K_BOOL), CFG(umask, K_UINT),
	CFG(entry_timeout, K_DOUBLE), CFG(negative_timeout, K_DOUBLE),
	CFG(attr_timeout, K_DOUBLE), CFG(intr, K_BOOL),
	CFG(intr_signal, K_INT),
	CFG(hard_remove, K_BOOL), CFG(use_ino, K_BOOL),
	CFG(readdir_ino, K_BOOL), CFG(direct_io, K_BOOL),
	CFG(kernel_cache, K_BOOL), CFG(auto_cache, K_BOOL),
	CFG(no_rofd_flush, K_BOOL), CFG(ac_attr_timeout_set, K_BOOL),
	CFG(ac_attr_timeout, K_DOUBLE), CFG(nullpath_ok, K_BOOL),
	CFG(debug, K_BOOL),
	/*
	 * Consumed before init: while libfuse parsed the options, and for
	 * remember, by fuse_new, which sized its node cache by it (setting
	 * it later crashes libfuse).
	 */
	{ "remember", offsetof(struct fuse_config, remember), K_INT, 0 },
	{ "show_help", offsetof(struct fuse_config, show_help), K_BOOL, 0 },
	{ "modules", offsetof(struct fuse_config, modules), K_STRING, 0 },
	{ NULL, 0, 0, 0 }
};

struct view {
	char *base;
	const struct field *fields;
	const char *type;
};

#define CONN_MT "luafs.ConnInfo"
#define CONFIG_MT "luafs.Config"

static const struct luafs_type conn_type = { CONN_MT, LUAFS_T_CONN };
static const struct luafs_type config_type = { CONFIG_MT, LUAFS_T_CONFIG };

/* The view at index 1, of either type: the metamethods serve both. */
static struct view *check_view(lua_State *L)
{
	struct view *v = luafs_testudata(L, 1, &conn_type);

	if (v == NULL)
		v = luafs_testudata(L, 1, &config_type);
	if (v == NULL)
		luaL_typeerror(L, 1, CONN_MT " or " CONFIG_MT);
	return v;
}

static const struct field *check_field(lua_State *L, struct view **vp)
{
	struct view *v = check_view(L);
	const char *name = luaL_checkstring(L, 2);
	const struct field *f;

	if (luafs_host.started)
		luaL_error(L, "%s used after init returned", v->type);
	for (f = v->fields; f->name; f++)
		if (strcmp(f->name, name) == 0) {
			*vp = v;
			return f;
		}
	luaL_error(L, "%s has no field '%s'", v->type, name);
	return NULL;
}

static int view_index(lua_State *L)
{
	struct view *v;
	const struct field *f = check_field(L, &v);
	char *p = v->base + f->offset;

	switch (f->kind) {
	case K_UINT:
		lua_pushinteger(L, *(unsigned *)p);
		break;
	case K_INT:
		lua_pushinteger(L, *(int *)p);
		break;
	case K_BOOL:
		lua_pushboolean(L, *(int *)p);
		break;
	case K_DOUBLE:
		lua_pushnumber(L, *(double *)p);
		break;
	case K_STRING:
		lua_pushstring(L, *(const char **)p);
		break;
	}
	return 1;
}

/*
 * libfuse aborts the session (EPROTO) when want has a bit the kernel is
 * not capable of; refuse that here, where the script sees why.
 */
static void check_want(lua_State *L, struct view *v, unsigned want)
{
	unsigned capable = ((struct fuse_conn_info *)v->base)->capable;
	char bits[32];

	if (want & ~capable) {
		snprintf(bits, sizeof(bits), "0x%x", want & ~capable);
		luaL_error(L, "%s field 'want': %s is not in capable", v->type,
			   bits);
	}
}

static int view_newindex(lua_State *L)
{
	struct view *v;
	const struct field *f = check_field(L, &v);
	char *p = v->base + f->offset;
	lua_Integer n;

	if (!f->writable)
		return luaL_error(L, "%s field '%s' is read-only", v->type,
				  f->name);
	switch (f->kind) {
	case K_UINT:
		n = luaL_checkinteger(L, 3);
		luaL_argcheck(L, n >= 0 && n <= UINT_MAX, 3, "out of range");
		if (v->fields == conn_fields &&
		    f->offset == offsetof(struct fuse_conn_info, want))
			check_want(L, v, (unsigned)n);
		/*
		 * libfuse sizes its read buffer from max_write; the kernel
		 * refuses one under two pages, and one past what libfuse can
		 * allocate ends the session (EINVAL) at its first read.
		 */
		if (v->fields == conn_fields &&
		    f->offset == offsetof(struct fuse_conn_info, max_write))
			luaL_argcheck(L, n >= 4096 && n <= 1048576, 3,
				      "max_write must be from 4096 to 1048576");
		*(unsigned *)p = (unsigned)n;
		break;
	case K_INT:
		n = luaL_checkinteger(L, 3);
		luaL_argcheck(L, n >= INT_MIN && n <= INT_MAX, 3,
			      "out of range");
		*(int *)p = (int)n;
		break;
	case K_BOOL:
		*(int *)p = lua_toboolean(L, 3);
		break;
	case K_DOUBLE:
		*(double *)p = luaL_checknumber(L, 3);
		break;
	case K_STRING:	/* no string field is writable */
		break;
	}
	return 0;
}

static void push_view(lua_State *L, void *base, const struct field *fields,
		      const struct luafs_type *type)
{
	struct view *v = lua_newuserdatauv(L, sizeof(*v), 0);

	v->base = base;
	v->fields = fields;
	v->type = type->name;
	if (luafs_newmetatable(L, type)) {
		lua_pushcfunction(L, view_index);
		lua_setfield(L, -2, "__index");
		lua_pushcfunction(L, view_newindex);
		lua_setfield(L, -2, "__newindex");
	}
	lua_setmetatable(L, -2);
}

void luafs_conn_push(lua_State *L, struct fuse_conn_info *conn)
{
	push_view(L, conn, conn_fields, &conn_type);
}

void luafs_config_push(lua_State *L, struct fuse_config *cfg)
{
	push_view(L, cfg, config_fields, &config_type);
}
