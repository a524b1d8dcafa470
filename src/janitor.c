/*
 * janitor.c: gives memory back to the system once requests stop.
 *
 * Lua collects garbage only as far as allocations drive it, so the
 * strings of files that a script dropped stay allocated until the next
 * requests allocate enough; and the C library keeps what is freed, in the
 * arena of the thread that freed it, for the next malloc.  After a burst
 * of writes and deletes the host would keep its peak size for good.  So a
 * thread of its own wakes every JANITOR_TICK seconds and, once a whole
 * tick has passed without a request, collects the garbage of every state
 * in full and then has the C library release the free memory of all its
 * arenas (malloc_trim).  It does that once per quiet spell, not at every
 * tick: a full collection walks every live object, which is no cost to
 * pay again while nothing changes.
 *
 * It takes only the states that it can check out without waiting, as a
 * request does (one compare-and-swap on busy), and gives each back as a
 * request does; a state that a long callback holds is taken at a later
 * tick.  A request that arrives meanwhile takes another free state, or
 * waits for the one collection.
 * Requests pay one relaxed load of luafs_requested (luafs_note_request),
 * and a store only for the first request after each tick.
 */
#include "luafs.h"

#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#define JANITOR_TICK 1	/* seconds */

int luafs_requested;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake;
static pthread_t thread;
static int running, stopping;
static unsigned char *collected;	/* per state, in this quiet spell */

/*
 * Runs under lua_pcall, like a request: finalizers that the collection
 * calls are the script's code (their errors become warnings).
 */
static int collect_body(lua_State *L)
{
	lua_gc(L, LUA_GCCOLLECT);
	return 0;
}

/* Collects state s, checked out by the caller; logs what it freed. */
static void collect(struct luafs_state *s)
{
	lua_State *L = s->L;
	size_t before = luafs_heap_used(s->heap);

	lua_pushcfunction(L, collect_body);
	if (lua_pcall(L, 0, 0, 0) != LUA_OK)
		luafs_log(LOG_WARNING, "state %d: collecting garbage failed: "
			  "%s", s->index + 1, lua_tostring(L, -1));
	lua_settop(L, 0);
	if (luafs_host.debug)
		luafs_log(LOG_DEBUG, "idle: state %d holds %zu KiB, was %zu KiB",
			  s->index + 1, luafs_heap_used(s->heap) / 1024,
			  before / 1024);
}

/*
 * One pass over the pool: collects each state not yet collected in this
 * quiet spell, if it is free, then trims the C library's arenas.  Returns
 * 1 when every state has been collected.
 */
static int give_back(void)
{
	struct luafs_state *s;
	int i, done = 0, all = 1, free_ = 0;

	for (i = 0; i < luafs_host.nstates; i++) {
		if (collected[i])
			continue;
		s = &luafs_host.states[i];
		free_ = 0;
		if (!__atomic_compare_exchange_n(&s->pool.busy, &free_, 1, 0,
						 __ATOMIC_SEQ_CST,
						 __ATOMIC_RELAXED)) {
			all = 0;
			continue;
		}
		__atomic_store_n(&s->pool.owner, luafs_tid(),
				 __ATOMIC_RELAXED);
		collect(s);
		luafs_state_release(s);
		collected[i] = 1;
		done++;
	}
	if (done > 0)
		malloc_trim(0);
	return all;
}

static void *janitor(void *arg)
{
	struct timespec until;
	int pending = 0;

	(void)arg;
	pthread_mutex_lock(&lock);
	while (!stopping) {
		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_sec += JANITOR_TICK;
		while (!stopping &&
		       pthread_cond_timedwait(&wake, &lock, &until) != ETIMEDOUT)
			;
		if (stopping)
			break;
		/* A request ends the quiet spell: every state may hold new garbage. */
		if (__atomic_exchange_n(&luafs_requested, 0,
					__ATOMIC_RELAXED)) {
			memset(collected, 0, (size_t)luafs_host.nstates);
			pending = 1;
			continue;
		}
		if (!pending)
			continue;
		pthread_mutex_unlock(&lock);
		pending = !give_back();
		pthread_mutex_lock(&lock);
	}
	pthread_mutex_unlock(&lock);
	return NULL;
}

/*
 * Starts the thread, after the host has daemonized.  Without it the
 * filesystem works all the same, only its memory is not given back.
 */
void luafs_janitor_start(void)
{
	pthread_condattr_t attr;
	sigset_t all, old;
	int res;

	collected = calloc((size_t)luafs_host.nstates, 1);
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&wake, &attr);
	pthread_condattr_destroy(&attr);
	/* The thread inherits a mask that leaves signals to the others. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	res = collected ? pthread_create(&thread, NULL, janitor, NULL) : ENOMEM;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (res != 0) {
		luafs_log(LOG_WARNING, "cannot start the thread that gives "
			  "memory back when idle: %s", strerror(res));
		free(collected);
		collected = NULL;
		return;
	}
	pthread_setname_np(thread, "luafs-janitor");
	running = 1;
}

/* Ends the thread, before the pool closes. */
void luafs_janitor_stop(void)
{
	if (!running)
		return;
	pthread_mutex_lock(&lock);
	stopping = 1;
	pthread_cond_signal(&wake);
	pthread_mutex_unlock(&lock);
	pthread_join(thread, NULL);
	running = 0;
	pthread_cond_destroy(&wake);
	free(collected);
	collected = NULL;
}
