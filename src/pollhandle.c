/*
 * pollhandle.c: luafs.PollHandle, the struct fuse_pollhandle that poll
 * receives.  fuse.h makes the callee responsible for destroying it, so the
 * userdata owns it: :destroy() and __close release it, and a released
 * handle raises on use instead of crashing.
 *
 * luafs.shared can hand the handle to other states (shared.c), so the
 * handle lives in a small shared object that each userdata references:
 * its lock keeps two states from using it at once, and it is destroyed
 * once, by :destroy() or when the last reference is collected.
 */
#include "luafs.h"

#include <errno.h>
#include <stdlib.h>

#define POLLHANDLE_MT "luafs.PollHandle"

static const struct luafs_type pollhandle_type = { POLLHANDLE_MT, LUAFS_T_POLLHANDLE };

struct luafs_poll {
	pthread_mutex_t lock;
	struct fuse_pollhandle *ph;	/* NULL once released */
	int refs;
};

struct pollhandle {
	struct luafs_poll *p;
};

void luafs_poll_hold(struct luafs_poll *p)
{
	__atomic_add_fetch(&p->refs, 1, __ATOMIC_RELAXED);
}

void luafs_poll_unref(struct luafs_poll *p)
{
	if (__atomic_sub_fetch(&p->refs, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	if (p->ph != NULL)
		fuse_pollhandle_destroy(p->ph);
	pthread_mutex_destroy(&p->lock);
	free(p);
}

/* The shared object of the PollHandle at idx, or NULL if it is not one. */
struct luafs_poll *luafs_poll_check(lua_State *L, int idx)
{
	struct pollhandle *u = luafs_testudata(L, idx, &pollhandle_type);

	return u ? u->p : NULL;
}

/* A new userdata for p, which takes over one reference the caller held. */
void luafs_poll_push(lua_State *L, struct luafs_poll *p)
{
	struct pollhandle *u = lua_newuserdatauv(L, sizeof(*u), 0);

	u->p = p;
	luafs_setmetatable(L, &pollhandle_type);
}

/* The shared object of argument 1, NULL only if making it failed. */
static struct luafs_poll *check_poll(lua_State *L)
{
	return ((struct pollhandle *)luafs_checkudata(L, 1, &pollhandle_type))->p;
}

/* ph:notify() wakes the poller; the handle stays usable. */
static int l_notify(lua_State *L)
{
	struct luafs_poll *p = check_poll(L);
	int res = 1;

	if (p != NULL) {
		pthread_mutex_lock(&p->lock);
		if (p->ph != NULL)
			res = fuse_notify_poll(p->ph);
		pthread_mutex_unlock(&p->lock);
	}
	if (res == 1)
		return luaL_error(L, "released luafs.PollHandle");
	if (res < 0) {
		errno = -res;
		return luaL_fileresult(L, 0, "luafs.PollHandle:notify");
	}
	lua_pushboolean(L, 1);
	return 1;
}

static int l_destroy(lua_State *L)
{
	struct luafs_poll *p = check_poll(L);

	if (p == NULL)
		return 0;
	pthread_mutex_lock(&p->lock);
	if (p->ph != NULL) {
		fuse_pollhandle_destroy(p->ph);
		p->ph = NULL;
	}
	pthread_mutex_unlock(&p->lock);
	return 0;
}

static int l_gc(lua_State *L)
{
	struct pollhandle *u = luafs_checkudata(L, 1, &pollhandle_type);

	if (u->p != NULL)
		luafs_poll_unref(u->p);
	u->p = NULL;
	return 0;
}

static int l_tostring(lua_State *L)
{
	struct luafs_poll *p = check_poll(L);
	int live = 0;

	if (p != NULL) {
		pthread_mutex_lock(&p->lock);
		live = p->ph != NULL;
		pthread_mutex_unlock(&p->lock);
	}
	lua_pushstring(L, live ? "luafs.PollHandle" :
		       "luafs.PollHandle (released)");
	return 1;
}

void luafs_pollhandle_open(lua_State *L)
{
	static const luaL_Reg methods[] = {
		{"notify", l_notify},
		{"destroy", l_destroy},
		{NULL, NULL}
	};
	static const luaL_Reg meta[] = {
		{"__gc", l_gc},
		{"__close", l_destroy},
		{"__tostring", l_tostring},
		{NULL, NULL}
	};

	luafs_newmetatable(L, &pollhandle_type);
	luaL_setfuncs(L, meta, 0);
	luaL_newlib(L, methods);
	lua_setfield(L, -2, "__index");
	lua_pop(L, 1);
}

/*
 * Takes ownership of ph.  The userdata and the shared object are made
 * before they hold ph, so a memory error here leaves ph with the caller to
 * destroy.
 */
void luafs_pollhandle_push(lua_State *L, struct fuse_pollhandle *ph)
{
	struct pollhandle *u;
	struct luafs_poll *p;

	if (ph == NULL) {
		lua_pushnil(L);
		return;
	}
	u = lua_newuserdatauv(L, sizeof(*u), 0);
	u->p = NULL;
	luafs_setmetatable(L, &pollhandle_type);
	p = calloc(1, sizeof(*p));
	if (p == NULL)
		luaL_error(L, "out of memory");
	pthread_mutex_init(&p->lock, NULL);
	p->refs = 1;
	p->ph = ph;
	u->p = p;
}
