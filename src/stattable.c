/*
 * stattable.c: struct stat, struct statvfs and struct flock as Lua tables,
 * and luafs.Stat, a struct stat in a userdata that reads and writes like a
 * stat table.
 *
 * Field names are the C member names without their st_/f_/l_ prefix.  One
 * descriptor per field drives both directions, so a name cannot be spelled
 * one way when pushing and another when checking.  Member sizes differ
 * between architectures (nlink_t and blksize_t are 32 bits on aarch64), so
 * the descriptors record size and signedness instead of assuming a type.
 *
 * luafs_check_stat runs on every getattr.  Its success path builds no
 * strings and allocates nothing: it looks the fields up by keys kept in a
 * per-state table, so each lookup is an array read and a hash probe.
 * Still, sixteen lookups each way are much of a request's work; a
 * luafs.Stat is a memcpy, which is why the sys functions can fill one and
 * getattr takes one.
 */
#include "luafs.h"

#include <stddef.h>
#include <stdio.h>
#include <fcntl.h>
#include <string.h>
#include <sys/statvfs.h>

#define NSEC_PER_SEC 1000000000

enum kind {
	PLAIN,		/* an integer */
	SEC,		/* seconds; its nanoseconds are 3 descriptors later */
	NSEC,		/* read together with its SEC */
};

struct field {
	const char *name;
	unsigned short off;
	unsigned char size;
	unsigned char issigned;
	unsigned char kind;
	unsigned char required;
};

#define MEMBER_SIZE(type, m) sizeof(((type *)0)->m)
#define FIELD(type, name, m, sgn, kind, req) \
	{ #name, offsetof(type, m), MEMBER_SIZE(type, m), sgn, kind, req }
#define S_U(name) FIELD(struct stat, name, st_##name, 0, PLAIN, 0)
#define S_S(name) FIELD(struct stat, name, st_##name, 1, PLAIN, 0)
#define V_U(name) FIELD(struct statvfs, name, f_##name, 0, PLAIN, 0)
#define L_S(name) FIELD(struct flock, name, l_##name, 1, PLAIN, 0)

/* load() and store() know 2-, 4- and 8-byte integers; fail the build on
 * anything else rather than misread a member. */
#define SIZE_OK(t) _Static_assert(sizeof(t) == 2 || sizeof(t) == 4 || \
				  sizeof(t) == 8, #t)
SIZE_OK(dev_t); SIZE_OK(ino_t); SIZE_OK(mode_t); SIZE_OK(nlink_t);
SIZE_OK(uid_t); SIZE_OK(gid_t); SIZE_OK(off_t); SIZE_OK(blksize_t);
SIZE_OK(blkcnt_t); SIZE_OK(time_t); SIZE_OK(long);
SIZE_OK(unsigned long); SIZE_OK(fsblkcnt_t); SIZE_OK(fsfilcnt_t);
SIZE_OK(short); SIZE_OK(pid_t);

static const struct field stat_fields[] = {
	S_U(dev), S_U(ino),
	FIELD(struct stat, mode, st_mode, 0, PLAIN, 1),
	S_U(nlink), S_U(uid), S_U(gid), S_U(rdev),
	S_S(size), S_S(blksize), S_S(blocks),
	FIELD(struct stat, atime, st_atim.tv_sec, 1, SEC, 0),
	FIELD(struct stat, mtime, st_mtim.tv_sec, 1, SEC, 0),
	FIELD(struct stat, ctime, st_ctim.tv_sec, 1, SEC, 0),
	FIELD(struct stat, atime_nsec, st_atim.tv_nsec, 1, NSEC, 0),
	FIELD(struct stat, mtime_nsec, st_mtim.tv_nsec, 1, NSEC, 0),
	FIELD(struct stat, ctime_nsec, st_ctim.tv_nsec, 1, NSEC, 0),
};
#define NSTAT (sizeof stat_fields / sizeof stat_fields[0])

static const struct field statvfs_fields[] = {
	V_U(bsize), V_U(frsize), V_U(blocks), V_U(bfree), V_U(bavail),
	V_U(files), V_U(ffree), V_U(favail), V_U(fsid), V_U(flag),
	V_U(namemax),
};
#define NSTATVFS (sizeof statvfs_fields / sizeof statvfs_fields[0])

/* Absent fields are 0: F_RDLCK, SEEK_SET, a lock to the end of the file. */
static const struct field flock_fields[] = {
	L_S(type), L_S(whence), L_S(start), L_S(len), L_S(pid),
};
#define NFLOCK (sizeof flock_fields / sizeof flock_fields[0])

/* Registry keys of the preset key tables: only their addresses matter. */
static const char stat_keys;
static const char statvfs_keys;
static const char flock_keys;

struct layout {
	const char *what;	/* for error messages */
	const struct field *fields;
	int n;
	const char *keyskey;
};

static const struct layout stat_layout =
	{ "stat", stat_fields, NSTAT, &stat_keys };
static const struct layout statvfs_layout =
	{ "statvfs", statvfs_fields, NSTATVFS, &statvfs_keys };
static const struct layout flock_layout =
	{ "lock", flock_fields, NFLOCK, &flock_keys };

static lua_Integer load(const void *base, const struct field *f)
{
	const char *p = (const char *)base + f->off;

	if (f->size == 8) {
		int64_t v;
		memcpy(&v, p, 8);
		return v;
	}
	if (f->size == 2) {	/* struct flock's shorts, all signed */
		int16_t v;
		memcpy(&v, p, 2);
		return v;
	}
	if (f->issigned) {
		int32_t v;
		memcpy(&v, p, 4);
		return v;
	} else {
		uint32_t v;
		memcpy(&v, p, 4);
		return v;
	}
}

/*
 * 64-bit members take any Lua integer, so unsigned values of 2^63 and more
 * survive a round trip as the negative integers load() made of them.
 * Returns 0 when v does not fit a 32-bit member.
 */
static int store(void *base, const struct field *f, lua_Integer v)
{
	char *p = (char *)base + f->off;

	if (f->size == 8) {
		int64_t x = v;
		memcpy(p, &x, 8);
	} else if (f->size == 2) {
		int16_t x = (int16_t)v;
		if (x != v)
			return 0;
		memcpy(p, &x, 2);
	} else if (f->issigned) {
		int32_t x = (int32_t)v;
		if (x != v)
			return 0;
		memcpy(p, &x, 4);
	} else {
		uint32_t x = (uint32_t)v;
		if (v < 0 || x != v)
			return 0;
		memcpy(p, &x, 4);
	}
	return 1;
}

static int pushkeys(lua_State *L, const struct layout *lay);

/*
 * Pushes a new table of the fields, or fills the table at into (0: none)
 * and pushes it.  Every field is written, so a table reused from an
 * earlier call keeps nothing of it.
 */
static void push_fields(lua_State *L, const struct layout *lay,
			const void *base, int into)
{
	int i, keys = pushkeys(L, lay);

	if (into)
		lua_pushvalue(L, into);
	else
		lua_createtable(L, 0, lay->n);
	for (i = 0; i < lay->n; i++) {
		lua_rawgeti(L, keys, i + 1);
		lua_pushinteger(L, load(base, &lay->fields[i]));
		lua_rawset(L, -3);
	}
	lua_remove(L, keys);
}

static int badfield(lua_State *L, const struct layout *lay,
		    const struct field *f)
{
	const char *got = luaL_typename(L, -1);

	if (lua_type(L, -1) == LUA_TNUMBER)
		got = lua_pushfstring(L, "%f", lua_tonumber(L, -1));
	return luaL_error(L, "%s field '%s' must be an integer, got %s",
			  lay->what, f->name, got);
}

static int rangefield(lua_State *L, const struct layout *lay,
		      const struct field *f)
{
	return luaL_error(L, "%s field '%s' out of range", lay->what,
			  f->name);
}

/* The value on top as an integer; floats only when they are integral. */
static lua_Integer checkvalue(lua_State *L, const struct layout *lay,
			      const struct field *f)
{
	int isnum;
	lua_Integer v;

	/* lua_tointegerx alone would also take the string "12". */
	if (lua_type(L, -1) == LUA_TNUMBER) {
		v = lua_tointegerx(L, -1, &isnum);
		if (isnum)
			return v;
	}
	return badfield(L, lay, f);
}

static void storechecked(lua_State *L, const struct layout *lay,
			 const struct field *f, void *base, lua_Integer v)
{
	if (!store(base, f, v))
		rangefield(L, lay, f);
}

/*
 * Split a float time into seconds and nanoseconds.  The fraction n - s is
 * exact for any float that has one (|n| < 2^52), so rounding happens once,
 * in the multiplication.  Truncating and correcting spares a libm floor().
 */
static int splittime(lua_Number n, lua_Integer *sec, lua_Integer *nsec)
{
	lua_Integer s, ns;

	if (!lua_numbertointeger(n, &s))
		return 0;
	if (n < (lua_Number)s)
		s--;
	ns = (lua_Integer)((n - (lua_Number)s) * NSEC_PER_SEC + 0.5);
	if (ns >= NSEC_PER_SEC) {
		s++;
		ns -= NSEC_PER_SEC;
	}
	*sec = s;
	*nsec = ns;
	return 1;
}

/*
 * Seconds and nanoseconds, with the table at idx and the key table at
 * keys.  A fractional float for the seconds only makes sense without its
 * own nanoseconds field; with one, the pair must be exact.
 */
static void checktime(lua_State *L, const struct layout *lay, int idx,
		      int keys, int i, void *base)
{
	const struct field *fs = &lay->fields[i], *fn = &lay->fields[i + 3];
	lua_Integer s = 0, ns = 0;
	int hasnsec;

	lua_rawgeti(L, keys, i + 4);
	lua_gettable(L, idx);
	hasnsec = !lua_isnil(L, -1);
	if (hasnsec) {
		ns = checkvalue(L, lay, fn);
		if (ns < 0 || ns >= NSEC_PER_SEC)
			rangefield(L, lay, fn);
	}
	lua_rawgeti(L, keys, i + 1);
	switch (lua_gettable(L, idx)) {
	case LUA_TNIL:
		break;
	case LUA_TNUMBER:
		if (!hasnsec && !lua_isinteger(L, -1)) {
			if (!splittime(lua_tonumber(L, -1), &s, &ns))
				badfield(L, lay, fs);
			break;
		}
		/* fall through */
	default:
		s = checkvalue(L, lay, fs);
	}
	storechecked(L, lay, fs, base, s);
	storechecked(L, lay, fn, base, ns);
	lua_pop(L, 2);
}

/*
 * Push the table of interned field names, keys[i + 1] = fields[i].name,
 * created on a state's first use.  Looking a field up with it costs an
 * array read where lua_getfield would look the C string up first.
 */
static int pushkeys(lua_State *L, const struct layout *lay)
{
	int i;

	if (lua_rawgetp(L, LUA_REGISTRYINDEX, lay->keyskey) == LUA_TTABLE)
		return lua_gettop(L);
	lua_pop(L, 1);
	lua_createtable(L, lay->n, 0);
	for (i = 0; i < lay->n; i++) {
		lua_pushstring(L, lay->fields[i].name);
		lua_rawseti(L, -2, i + 1);
	}
	lua_pushvalue(L, -1);
	lua_rawsetp(L, LUA_REGISTRYINDEX, lay->keyskey);
	return lua_gettop(L);
}

/* Fields are read with lua_gettable, so a table with an __index
 * metamethod (defaults, a proxy) works as a stat table too. */
static void check_fields(lua_State *L, const struct layout *lay, int idx,
			 void *base, size_t size)
{
	int i, keys;

	memset(base, 0, size);
	idx = lua_absindex(L, idx);
	luaL_checkstack(L, 6, NULL);	/* the deepest error path */
	if (!lua_istable(L, idx))
		luaL_error(L, "%s table expected, got %s", lay->what,
			   luaL_typename(L, idx));
	keys = pushkeys(L, lay);
	for (i = 0; i < lay->n; i++) {
		const struct field *f = &lay->fields[i];

		if (f->kind == SEC) {
			checktime(L, lay, idx, keys, i, base);
			continue;
		}
		if (f->kind == NSEC)
			continue;
		lua_rawgeti(L, keys, i + 1);
		if (lua_gettable(L, idx) != LUA_TNIL)
			storechecked(L, lay, f, base, checkvalue(L, lay, f));
		else if (f->required)
			luaL_error(L, "%s table has no '%s'", lay->what,
				   f->name);
		lua_pop(L, 1);
	}
	lua_pop(L, 1);	/* keys */
}

/* luafs.Stat */

#define STAT_MT "luafs.Stat"

static const struct luafs_type stat_type = { STAT_MT, LUAFS_T_STAT };

/* Registry key of the table from names to fields. */
static const char stat_index_key;

struct stat *luafs_test_stat(lua_State *L, int idx)
{
	return luafs_testudata(L, idx, &stat_type);
}

/* The metamethods' first argument, which a script may get wrong. */
static struct stat *check_stat_arg(lua_State *L)
{
	return luafs_checkudata(L, 1, &stat_type);
}

/* The field that the key at idx names, or -1. */
static int stat_field(lua_State *L, int idx)
{
	lua_Integer i;

	if (lua_type(L, idx) != LUA_TSTRING)
		return -1;
	lua_rawgetp(L, LUA_REGISTRYINDEX, &stat_index_key);
	lua_pushvalue(L, idx);
	lua_rawget(L, -2);
	i = lua_tointeger(L, -1);
	lua_pop(L, 2);
	return (int)i - 1;
}

static int stat_index(lua_State *L)
{
	struct stat *st = check_stat_arg(L);
	int i = stat_field(L, 2);

	if (i < 0)
		lua_pushnil(L);
	else
		lua_pushinteger(L, load(st, &stat_fields[i]));
	return 1;
}

/*
 * A float for seconds sets their nanoseconds too; an integer leaves them,
 * so st.mtime, st.mtime_nsec = s, ns works in either order.  nil is 0.
 */
static int stat_newindex(lua_State *L)
{
	struct stat *st = check_stat_arg(L);
	int i = stat_field(L, 2);
	const struct field *f;
	lua_Integer v = 0, ns = 0;

	if (i < 0)
		return luaL_error(L, STAT_MT " has no field '%s'",
				  luaL_tolstring(L, 2, NULL));
	f = &stat_fields[i];
	lua_settop(L, 3);
	if (f->kind == SEC && lua_type(L, 3) == LUA_TNUMBER &&
	    !lua_isinteger(L, 3)) {
		if (!splittime(lua_tonumber(L, 3), &v, &ns))
			badfield(L, &stat_layout, f);
		storechecked(L, &stat_layout, f, st, v);
		storechecked(L, &stat_layout, &stat_fields[i + 3], st, ns);
		return 0;
	}
	if (!lua_isnil(L, 3))
		v = checkvalue(L, &stat_layout, f);
	if (f->kind == NSEC && (v < 0 || v >= NSEC_PER_SEC))
		rangefield(L, &stat_layout, f);
	storechecked(L, &stat_layout, f, st, v);
	return 0;
}

/* The iterator of pairs(st): the fields in struct stat's order. */
static int stat_next(lua_State *L)
{
	struct stat *st = check_stat_arg(L);
	int i = lua_isnil(L, 2) ? 0 : stat_field(L, 2) + 1;

	if (i <= 0 && !lua_isnil(L, 2))
		return 0;
	if (i >= (int)NSTAT)
		return 0;
	lua_pushstring(L, stat_fields[i].name);
	lua_pushinteger(L, load(st, &stat_fields[i]));
	return 2;
}

static int stat_pairs(lua_State *L)
{
	check_stat_arg(L);
	lua_pushcfunction(L, stat_next);
	lua_pushvalue(L, 1);
	lua_pushnil(L);
	return 3;
}

static int stat_tostring(lua_State *L)
{
	struct stat *st = check_stat_arg(L);
	char buf[80];

	snprintf(buf, sizeof(buf), STAT_MT " (mode 0%o, size %lld)",
		 (unsigned)st->st_mode, (long long)st->st_size);
	lua_pushstring(L, buf);
	return 1;
}

/* luafs.Stat([from]): zeroed, or a copy of a stat table or luafs.Stat. */
static int stat_new(lua_State *L)
{
	struct stat *from = luafs_test_stat(L, 1), *st;

	if (!lua_isnoneornil(L, 1) && from == NULL)
		luaL_checktype(L, 1, LUA_TTABLE);
	st = lua_newuserdatauv(L, sizeof(*st), 0);
	if (from)
		*st = *from;
	else if (lua_istable(L, 1))
		check_fields(L, &stat_layout, 1, st, sizeof(*st));
	else
		memset(st, 0, sizeof(*st));
	luafs_setmetatable(L, &stat_type);
	return 1;
}

void luafs_stat_open(lua_State *L)
{
	static const luaL_Reg meta[] = {
		{"__index", stat_index},
		{"__newindex", stat_newindex},
		{"__pairs", stat_pairs},
		{"__tostring", stat_tostring},
		{NULL, NULL}
	};
	unsigned i;

	luafs_newmetatable(L, &stat_type);
	luaL_setfuncs(L, meta, 0);
	lua_pop(L, 1);
	lua_createtable(L, 0, NSTAT);
	for (i = 0; i < NSTAT; i++) {
		lua_pushinteger(L, i + 1);
		lua_setfield(L, -2, stat_fields[i].name);
	}
	lua_rawsetp(L, LUA_REGISTRYINDEX, &stat_index_key);
	lua_pushcfunction(L, stat_new);
}

/* Stat tables */

void luafs_push_stat(lua_State *L, const struct stat *st, int into)
{
	struct stat *dst;

	if (into == 0) {
		push_fields(L, &stat_layout, st, 0);
		return;
	}
	if ((dst = luafs_test_stat(L, into)) != NULL) {
		*dst = *st;
		lua_pushvalue(L, into);
		return;
	}
	luaL_argexpected(L, lua_istable(L, into), into,
			 "stat table or " STAT_MT);
	push_fields(L, &stat_layout, st, into);
}

void luafs_check_stat(lua_State *L, int idx, struct stat *st)
{
	const struct stat *from = luafs_test_stat(L, idx);

	if (from)
		*st = *from;
	else
		check_fields(L, &stat_layout, idx, st, sizeof *st);
}

void luafs_push_statvfs(lua_State *L, const struct statvfs *sv)
{
	push_fields(L, &statvfs_layout, sv, 0);
}

void luafs_check_statvfs(lua_State *L, int idx, struct statvfs *sv)
{
	check_fields(L, &statvfs_layout, idx, sv, sizeof *sv);
}

void luafs_push_flock(lua_State *L, const struct flock *fl, int into)
{
	push_fields(L, &flock_layout, fl, into);
}

void luafs_check_flock(lua_State *L, int idx, struct flock *fl)
{
	check_fields(L, &flock_layout, idx, fl, sizeof *fl);
}
