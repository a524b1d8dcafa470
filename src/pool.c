/*
 * pool.c: the Lua states that serve requests, and the pool that hands them
 * out.  A request checks a state out and returns it; a state is never
 * entered by two threads at once.  A handle's calls wait for the state
 * that holds it; other calls take the free state with the fewest handles.
 */
#include "luafs.h"

#include <assert.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Only reached by a bug of the host: every use of a state is protected. */
static int state_panic(lua_State *L)
{
	luafs_log(LOG_CRIT, "unprotected Lua error: %s", lua_tostring(L, -1));
	abort();
}

void luafs_state_close(struct luafs_state *s)
{
	if (s->L != NULL)
		lua_close(s->L);
	luafs_heap_free(s->heap);
	free(s->extra);
	s->L = NULL;
	s->heap = NULL;
	s->extra = NULL;
}

/*
 * Makes *s, zeroed by the caller, a state that has run the script; on
 * failure *err says why.
 */
int luafs_state_load(struct luafs_state *s, int index, int generation,
		     lua_Hook hook, char **err)
{
	int i;

	s->index = index;
	for (i = 0; i < OP_COUNT; i++)
		s->code.ops[i] = s->next.ops[i] = LUA_NOREF;
	s->code.table = s->next.table = LUA_NOREF;
	s->code.generation = generation;
	s->next.generation = 0;
	luafs_in_host = 1;
	s->heap = luafs_heap_new();
	s->extra = calloc(1, sizeof(*s->extra));
	s->L = s->heap && s->extra ?
	       lua_newstate(luafs_heap_alloc, s->heap) : NULL;
	if (s->L == NULL) {
		luafs_state_close(s);
		*err = strdup("cannot create a Lua state: out of memory");
		return -1;
	}
	s->extra->number = index + 1;
	*(struct luafs_extra **)lua_getextraspace(s->L) = s->extra;
	lua_atpanic(s->L, state_panic);
	if (hook != NULL)
		lua_sethook(s->L, hook, LUA_MASKCOUNT, 10000);
	lua_pushcfunction(s->L, luafs_script_load);
	lua_pushlightuserdata(s->L, s);
	if (lua_pcall(s->L, 1, 0, 0) == LUA_OK) {
		/* The cap applies to requests, not to loading the script. */
		luafs_heap_limit(s->heap, luafs_host.lua_memory);
		lua_sethook(s->L, NULL, 0, 0);
		return 0;
	}
	*err = luafs_error_text(s->L);
	luafs_state_close(s);
	return -1;
}

/*
 * luafs.states() -> how many states serve, and which one this is (its
 * struct luafs_extra's number, which any coroutine reaches).
 */
int luafs_pool_states(lua_State *L)
{
	lua_pushinteger(L, luafs_host.nstates);
	lua_pushinteger(L, luafs_pool_index(L) + 1);
	return 2;
}

/* The pool index of L's state, -1 for the scratch state. */
int luafs_pool_index(lua_State *L)
{
	return luafs_extra(L)->number - 1;
}

/*
 * Loads the script in the first state, then in as many more as the command
 * line (n > 0) or else the script's "states" field asks for.
 */
int luafs_pool_open(int n)
{
	struct luafs_state *first;
	char *err = NULL;
	int i, op;

	first = calloc(1, sizeof(*first));
	if (first == NULL)
		goto oom;
	pthread_mutex_init(&luafs_host.pool_lock, NULL);
	pthread_cond_init(&luafs_host.pool_free, NULL);
	luafs_host.nstates = n > 0 ? n : 1;
	if (luafs_script_read(&err) != 0 ||
	    luafs_state_load(first, 0, luafs_host.generation, NULL, &err) != 0)
		goto fail;
	if (n == 0 && first->wanted_states > 0)
		n = first->wanted_states;
	if (n == 0)
		n = 1;
	luafs_host.states = calloc((size_t)n, sizeof(*luafs_host.states));
	if (luafs_host.states == NULL) {
		luafs_state_close(first);
		goto oom;
	}
	luafs_host.states[0] = *first;
	free(first);
	first = NULL;
	luafs_host.nstates = n;
	for (i = 1; i < n; i++) {
		if (luafs_state_load(&luafs_host.states[i], i,
			       luafs_host.generation, NULL, &err) != 0) {
			luafs_host.nstates = i;
			luafs_pool_close();
			goto fail;
		}
	}
	luafs_script_free();
	for (op = 0; op < OP_COUNT; op++)
		if (luafs_host.states[0].code.ops[op] != LUA_NOREF)
			luafs_host.present |= UINT64_C(1) << op;
	return 0;
oom:
	err = NULL;
fail:
	luafs_script_free();
	luafs_log(LOG_ERR, "%s", err ? err : "out of memory");
	free(err);
	free(first);
	return -1;
}

void luafs_pool_close(void)
{
	int i;

	for (i = 0; i < luafs_host.nstates; i++)
		luafs_state_close(&luafs_host.states[i]);
	free(luafs_host.states);
	luafs_host.states = NULL;
	luafs_host.nstates = 0;
}

/* The state whose callback runs on thread tid, if any. */
static struct luafs_state *state_of_thread(pid_t tid)
{
	struct luafs_state *all = luafs_host.states;
	int i;

	for (i = 0; tid != 0 && i < luafs_host.nstates; i++)
		if (__atomic_load_n(&all[i].pool.busy, __ATOMIC_RELAXED) &&
		    __atomic_load_n(&all[i].pool.owner, __ATOMIC_RELAXED) == tid)
			return &all[i];
	return NULL;
}

/*
 * The free state holding the fewest handles, so that files opened together
 * are served by different states.
 */
static struct luafs_state *least_loaded_free(void)
{
	struct luafs_state *s = NULL, *all = luafs_host.states;
	int i, load, best = INT_MAX;

	for (i = 0; i < luafs_host.nstates; i++) {
		if (__atomic_load_n(&all[i].pool.busy, __ATOMIC_RELAXED))
			continue;
		load = __atomic_load_n(&all[i].pool.nhandles, __ATOMIC_RELAXED);
		if (load < best) {
			best = load;
			s = &all[i];
			if (load == 0)
				break;
		}
	}
	return s;
}

/* The calling thread's id, asked of the kernel once per thread. */
pid_t luafs_tid(void)
{
	static __thread pid_t tid;

	if (tid == 0)
		tid = gettid();
	return tid;
}

/* The kernel reports the calling thread's id as the request's pid. */
static pid_t caller_tid(void)
{
	struct fuse_context *ctx = fuse_get_context();

	return ctx ? ctx->pid : 0;
}

static int try_claim(struct luafs_state *s)
{
	int free_ = 0;

	return __atomic_compare_exchange_n(&s->pool.busy, &free_, 1, 0,
					   __ATOMIC_SEQ_CST, __ATOMIC_RELAXED);
}

/* Claims the state wanted (index, or the least loaded one) if it is free. */
static struct luafs_state *try_acquire(int index)
{
	struct luafs_state *s, *all = luafs_host.states;

	if (index >= 0 && index < luafs_host.nstates)
		return try_claim(&all[index]) ? &all[index] : NULL;
	while ((s = least_loaded_free()) != NULL && !try_claim(s))
		;
	return s;
}

/*
 * A free state, or NULL when a request made by a callback of this process
 * to its own mount finds none (it must not wait for a state that only that
 * callback can give back).  Waiters count themselves before they look, and
 * a release clears busy before it reads the count, so a release either
 * lets a waiter's claim succeed or wakes it.
 */
static struct luafs_state *acquire_waiting(int index, int from_request)
{
	struct luafs_state *s;
	int reentrant;

	pthread_mutex_lock(&luafs_host.pool_lock);
	__atomic_add_fetch(&luafs_host.waiters, 1, __ATOMIC_SEQ_CST);
	reentrant = from_request && state_of_thread(caller_tid()) != NULL;
	for (;;) {
		s = try_acquire(index);
		if (s != NULL || reentrant)
			break;
		pthread_cond_wait(&luafs_host.pool_free, &luafs_host.pool_lock);
	}
	__atomic_sub_fetch(&luafs_host.waiters, 1, __ATOMIC_SEQ_CST);
	pthread_mutex_unlock(&luafs_host.pool_lock);
	return s;
}

/*
 * Checks out a state: index -1 takes any free one, and a handle's calls
 * wait for their own state.  When the state wanted is free (the handle's
 * own, or the least loaded one), checking it out is one compare-and-swap.
 * A state that a published reload prepared switches to the new code first.
 */
struct luafs_state *luafs_state_acquire(int index, int from_request)
{
	struct luafs_state *s = try_acquire(index);

	if (s == NULL && (s = acquire_waiting(index, from_request)) == NULL)
		return NULL;
	assert(s->pool.owner == 0);
	__atomic_store_n(&s->pool.owner, luafs_tid(), __ATOMIC_RELAXED);
	if (s->next.generation != 0 && s->next.generation <=
	    __atomic_load_n(&luafs_host.generation, __ATOMIC_ACQUIRE))
		luafs_reload_switch(s);
	return s;
}

void luafs_state_release(struct luafs_state *s)
{
	assert(s->pool.busy && s->pool.owner == luafs_tid());
	__atomic_store_n(&s->pool.owner, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&s->pool.busy, 0, __ATOMIC_SEQ_CST);
	if (__atomic_load_n(&luafs_host.waiters, __ATOMIC_SEQ_CST) > 0) {
		pthread_mutex_lock(&luafs_host.pool_lock);
		pthread_cond_broadcast(&luafs_host.pool_free);
		pthread_mutex_unlock(&luafs_host.pool_lock);
	}
}

/*
 * Raises an error in whatever Lua code runs next, so that a callback stuck
 * in a loop gives up its thread when the host is told to unmount.  Only
 * lua_sethook, which is safe in a signal handler (lua.c does the same).
 * The hook stays until luafs_pool_uninterrupt, so that a loop that catches
 * errors with pcall cannot keep its thread either.
 */
static void stop_hook(lua_State *L, lua_Debug *ar)
{
	(void)ar;
	luafs_hook_error(L, "interrupted: luafs is unmounting");
}

void luafs_pool_interrupt(void)
{
	int i;

	for (i = 0; i < luafs_host.nstates; i++)
		lua_sethook(luafs_host.states[i].L, stop_hook,
			    LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT, 1);
}

void luafs_pool_uninterrupt(void)
{
	int i;

	for (i = 0; i < luafs_host.nstates; i++)
		lua_sethook(luafs_host.states[i].L, NULL, 0, 0);
}
