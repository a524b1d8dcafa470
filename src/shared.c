/*
 * shared.c: luafs.shared, a store of strings, numbers and booleans that
 * every Lua state of the pool sees, safe under concurrency, and that
 * outlives reloads because it lives in C.  One mutex guards a chained hash
 * table; values are copied in and out, so no Lua object crosses states.
 * A luafs.PollHandle is the one exception: the store keeps a reference to
 * the C object behind it, and get gives each state a userdata of its own.
 */
#include "luafs.h"

#include <stdlib.h>
#include <string.h>

enum vtype { V_INT, V_FLOAT, V_BOOL, V_STRING, V_POLL };

struct entry {
	struct entry *next;
	enum vtype type;
	union {
		lua_Integer i;
		lua_Number f;
		int b;
		struct { char *p; size_t len; } s;
		struct luafs_poll *poll;
	} v;
	size_t keylen;
	char key[];
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct entry **buckets;
static size_t nbuckets, count;

static size_t hash(const char *k, size_t len)
{
	size_t h = 14695981039346656037u;

	while (len--)
		h = (h ^ (unsigned char)*k++) * 1099511628211u;
	return h;
}

/* The slot holding key, or the empty slot at the end of its chain. */
static struct entry **find(const char *k, size_t len)
{
	struct entry **e;

	if (nbuckets == 0)
		return NULL;
	for (e = &buckets[hash(k, len) % nbuckets]; *e; e = &(*e)->next)
		if ((*e)->keylen == len && memcmp((*e)->key, k, len) == 0)
			break;
	return e;
}

static int grow(void)
{
	size_t n = nbuckets ? nbuckets * 2 : 64, i;
	struct entry **b = calloc(n, sizeof(*b)), *e, *next;

	if (b == NULL)
		return -1;
	for (i = 0; i < nbuckets; i++)
		for (e = buckets[i]; e; e = next) {
			next = e->next;
			e->next = b[hash(e->key, e->keylen) % n];
			b[hash(e->key, e->keylen) % n] = e;
		}
	free(buckets);
	buckets = b;
	nbuckets = n;
	return 0;
}

static void free_value(struct entry *e)
{
	if (e->type == V_STRING)
		free(e->v.s.p);
	else if (e->type == V_POLL)
		luafs_poll_unref(e->v.poll);
}

/* A value from the Lua stack, checked before the lock is taken. */
struct value {
	enum vtype type;
	lua_Integer i;
	lua_Number f;
	const char *s;
	size_t len;
	struct luafs_poll *poll;
};

static void check_value(lua_State *L, int idx, struct value *v)
{
	switch (lua_type(L, idx)) {
	case LUA_TNUMBER:
		if (lua_isinteger(L, idx)) {
			v->type = V_INT;
			v->i = lua_tointeger(L, idx);
		} else {
			v->type = V_FLOAT;
			v->f = lua_tonumber(L, idx);
		}
		break;
	case LUA_TBOOLEAN:
		v->type = V_BOOL;
		v->i = lua_toboolean(L, idx);
		break;
	case LUA_TSTRING:
		v->type = V_STRING;
		v->s = lua_tolstring(L, idx, &v->len);
		break;
	default:
		v->type = V_POLL;
		v->poll = luafs_poll_check(L, idx);
		if (v->poll == NULL)
			luaL_typeerror(L, idx, "string, number, boolean or "
				       "luafs.PollHandle");
	}
}

/* Stores v under the lock; returns -1 when out of memory. */
static int store(const char *k, size_t klen, const struct value *v)
{
	struct entry **slot, *e;
	char *copy = NULL;

	if (v->type == V_STRING) {
		copy = malloc(v->len + 1);
		if (copy == NULL)
			return -1;
		memcpy(copy, v->s, v->len);
		copy[v->len] = '\0';
	}
	if (count >= nbuckets && grow() != 0) {
		free(copy);
		return -1;
	}
	slot = find(k, klen);
	e = *slot;
	if (e == NULL) {
		e = malloc(sizeof(*e) + klen + 1);
		if (e == NULL) {
			free(copy);
			return -1;
		}
		e->next = NULL;
		e->keylen = klen;
		memcpy(e->key, k, klen);
		e->key[klen] = '\0';
		*slot = e;
		count++;
	} else {
		free_value(e);
	}
	e->type = v->type;
	switch (v->type) {
	case V_INT: e->v.i = v->i; break;
	case V_FLOAT: e->v.f = v->f; break;
	case V_BOOL: e->v.b = (int)v->i; break;
	case V_STRING: e->v.s.p = copy; e->v.s.len = v->len; break;
	case V_POLL: e->v.poll = v->poll; luafs_poll_hold(v->poll); break;
	}
	return 0;
}

static void remove_key(const char *k, size_t klen)
{
	struct entry **slot = find(k, klen), *e;

	if (slot == NULL || (e = *slot) == NULL)
		return;
	*slot = e->next;
	free_value(e);
	free(e);
	count--;
}

/*
 * Pushes e's value; a string is copied to a buffer first, and a poll
 * handle gets a reference, to be pushed after the lock is let go.
 */
static void push_entry(lua_State *L, struct entry *e, char **spill,
		       size_t *spill_len, struct luafs_poll **poll)
{
	switch (e->type) {
	case V_INT: lua_pushinteger(L, e->v.i); break;
	case V_FLOAT: lua_pushnumber(L, e->v.f); break;
	case V_BOOL: lua_pushboolean(L, e->v.b); break;
	case V_STRING:
		*spill = malloc(e->v.s.len + 1);
		if (*spill)
			memcpy(*spill, e->v.s.p, e->v.s.len);
		*spill_len = e->v.s.len;
		break;
	case V_POLL:
		luafs_poll_hold(e->v.poll);
		*poll = e->v.poll;
		break;
	}
}

/*
 * Reading copies the value out under the lock and pushes it after, since
 * pushing a string may raise a memory error, which must not happen while
 * the lock is held.
 */
static int l_get(lua_State *L)
{
	size_t klen, slen = 0;
	const char *k = luaL_checklstring(L, 1, &klen);
	struct entry **slot, *e;
	struct luafs_poll *poll = NULL;
	char *spill = NULL;
	int found = 0, isstring = 0;

	lua_settop(L, 1);
	luaL_checkstack(L, 2, NULL);
	pthread_mutex_lock(&lock);
	slot = find(k, klen);
	if (slot && (e = *slot) != NULL) {
		found = 1;
		isstring = e->type == V_STRING;
		push_entry(L, e, &spill, &slen, &poll);
	}
	pthread_mutex_unlock(&lock);
	if (poll != NULL)
		luafs_poll_push(L, poll);
	else if (!found)
		lua_pushnil(L);
	else if (isstring) {
		if (spill == NULL)
			return luaL_error(L, "out of memory");
		lua_pushlstring(L, spill, slen);
		free(spill);
	}
	return 1;
}

/* shared.set(key, value): nil deletes. */
static int l_set(lua_State *L)
{
	size_t klen;
	const char *k = luaL_checklstring(L, 1, &klen);
	struct value v;
	int res = 0;

	if (lua_isnoneornil(L, 2)) {
		pthread_mutex_lock(&lock);
		remove_key(k, klen);
		pthread_mutex_unlock(&lock);
		return 0;
	}
	check_value(L, 2, &v);
	pthread_mutex_lock(&lock);
	res = store(k, klen, &v);
	pthread_mutex_unlock(&lock);
	if (res != 0)
		return luaL_error(L, "out of memory");
	return 0;
}

static int l_delete(lua_State *L)
{
	size_t klen;
	const char *k = luaL_checklstring(L, 1, &klen);

	pthread_mutex_lock(&lock);
	remove_key(k, klen);
	pthread_mutex_unlock(&lock);
	return 0;
}

/* shared.incr(key [, delta]) -> the new value; a missing key counts as 0. */
static int l_incr(lua_State *L)
{
	size_t klen;
	const char *k = luaL_checklstring(L, 1, &klen);
	lua_Integer delta = luaL_optinteger(L, 2, 1);
	struct value v = { .type = V_INT };
	struct entry **slot;
	int bad = 0, res = 0;

	pthread_mutex_lock(&lock);
	slot = find(k, klen);
	if (slot && *slot) {
		if ((*slot)->type == V_INT)
			(*slot)->v.i = v.i = (lua_Integer)((lua_Unsigned)(*slot)->v.i +
							   (lua_Unsigned)delta);
		else
			bad = 1;
	} else {
		v.i = delta;
		res = store(k, klen, &v);
	}
	pthread_mutex_unlock(&lock);
	if (bad)
		return luaL_error(L, "luafs.shared.incr: '%s' is not an "
				  "integer", k);
	if (res != 0)
		return luaL_error(L, "out of memory");
	lua_pushinteger(L, v.i);
	return 1;
}

static int equal(const struct entry *e, const struct value *v)
{
	if (e->type != v->type)
		return 0;
	switch (e->type) {
	case V_INT: return e->v.i == v->i;
	case V_FLOAT: return e->v.f == v->f;
	case V_BOOL: return e->v.b == (int)v->i;
	case V_STRING: return e->v.s.len == v->len &&
			      memcmp(e->v.s.p, v->s, v->len) == 0;
	case V_POLL: return e->v.poll == v->poll;
	}
	return 0;
}

/*
 * shared.cas(key, expected, new) -> true when the key held expected (nil:
 * was absent) and now holds new (nil: is deleted); false otherwise.
 */
static int l_cas(lua_State *L)
{
	size_t klen;
	const char *k = luaL_checklstring(L, 1, &klen);
	struct value expect, v;
	struct entry **slot, *e;
	int want_absent = lua_isnoneornil(L, 2);
	int del = lua_isnoneornil(L, 3), ok, res = 0;

	if (!want_absent)
		check_value(L, 2, &expect);
	if (!del)
		check_value(L, 3, &v);
	pthread_mutex_lock(&lock);
	slot = find(k, klen);
	e = slot ? *slot : NULL;
	ok = want_absent ? e == NULL : e != NULL && equal(e, &expect);
	if (ok) {
		if (del)
			remove_key(k, klen);
		else
			res = store(k, klen, &v);
	}
	pthread_mutex_unlock(&lock);
	if (res != 0)
		return luaL_error(L, "out of memory");
	lua_pushboolean(L, ok);
	return 1;
}

/* shared.keys([prefix]) -> an array of the keys, a snapshot. */
static int l_keys(lua_State *L)
{
	size_t plen = 0, i, n = 0, cap;
	const char *prefix = luaL_optlstring(L, 1, "", &plen);
	struct entry *e;
	char **names;
	size_t *lens;

	for (;;) {
		pthread_mutex_lock(&lock);
		cap = count;
		pthread_mutex_unlock(&lock);
		names = calloc(cap + 1, sizeof(*names));
		lens = calloc(cap + 1, sizeof(*lens));
		if (names == NULL || lens == NULL) {
			free(names);
			free(lens);
			return luaL_error(L, "out of memory");
		}
		pthread_mutex_lock(&lock);
		if (count <= cap)
			break;
		pthread_mutex_unlock(&lock);
		free(names);
		free(lens);
	}
	for (i = 0; i < nbuckets; i++)
		for (e = buckets[i]; e; e = e->next)
			if (e->keylen >= plen &&
			    memcmp(e->key, prefix, plen) == 0) {
				names[n] = malloc(e->keylen + 1);
				if (names[n] == NULL)
					continue;
				memcpy(names[n], e->key, e->keylen);
				lens[n++] = e->keylen;
			}
	pthread_mutex_unlock(&lock);
	lua_createtable(L, (int)n, 0);
	for (i = 0; i < n; i++) {
		lua_pushlstring(L, names[i], lens[i]);
		lua_rawseti(L, -2, (lua_Integer)i + 1);
	}
	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
	free(lens);
	return 1;
}

void luafs_shared_open(lua_State *L)
{
	static const luaL_Reg funcs[] = {
		{"get", l_get},
		{"set", l_set},
		{"delete", l_delete},
		{"incr", l_incr},
		{"cas", l_cas},
		{"keys", l_keys},
		{NULL, NULL}
	};

	luaL_newlib(L, funcs);
}
