/*
 * state.c: Lua states that have loaded the script, and the pool that hands
 * them to requests.
 *
 * Every state is made the same way: standard libraries, require "luafs",
 * the script run with its arguments, and the operations table it returned
 * resolved once into registry references.  A request checks a state out and
 * returns it; a state is never entered by two threads at once.
 */
#include "luafs.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *const luafs_op_names[OP_COUNT] = {
#define LUAFS_OP_NAME(name) #name,
	LUAFS_OPS(LUAFS_OP_NAME)
#undef LUAFS_OP_NAME
};

/*
 * Keys of the returned table that are not operations: "states" asks for a
 * pool size, "check" is a self-test run before the code serves, and
 * "reload(old)" receives the previous table when the code is reloaded.
 * "portable_handles" says integer handles may be served by any state.
 * Keys that start with '_' are the script's own data, for reload(old).
 */
static int config_key(lua_State *L, struct luafs_state *s, const char *name,
		      int *portable)
{
	lua_Integer n;
	int isint;

	if (name[0] == '_')
		return 1;
	if (strcmp(name, "portable_handles") == 0) {
		if (!lua_isboolean(L, -1))
			luaL_error(L, "%s: 'portable_handles' must be a "
				   "boolean, got %s", luafs_host.script,
				   luaL_typename(L, -1));
		*portable = lua_toboolean(L, -1);
		return 1;
	}

	if (strcmp(name, "check") == 0 || strcmp(name, "reload") == 0) {
		if (!lua_isfunction(L, -1))
			luaL_error(L, "%s: '%s' must be a function, got %s",
				   luafs_host.script, name,
				   luaL_typename(L, -1));
		return 1;
	}
	if (strcmp(name, "states") != 0)
		return 0;
	n = lua_tointegerx(L, -1, &isint);
	if (!isint || n < 1 || n > LUAFS_MAX_STATES)
		luaL_error(L, "%s: 'states' must be an integer from 1 to %d",
			   luafs_host.script, LUAFS_MAX_STATES);
	s->wanted_states = (int)n;
	return 1;
}

static int op_index(const char *name)
{
	int i;

	for (i = 0; i < OP_COUNT; i++)
		if (strcmp(luafs_op_names[i], name) == 0)
			return i;
	return -1;
}

/*
 * Registry keys: the set of modules that require found in the script's
 * directory (name -> true), and while a reload runs, what it took out of
 * package.loaded, to put back if the new code fails.
 */
static const char script_modules_key = 'm';
static const char dropped_modules_key = 'd';

/*
 * Wraps package.searchers[2], the Lua file searcher, to note the modules
 * it finds in the script's directory (upvalue 2, with a trailing slash):
 * a reload must load those again, and only those.
 */
static int script_searcher(lua_State *L)
{
	size_t plen;
	const char *dir = lua_tolstring(L, lua_upvalueindex(2), &plen);
	const char *file;

	lua_settop(L, 1);
	lua_pushvalue(L, lua_upvalueindex(1));
	lua_pushvalue(L, 1);
	lua_call(L, 1, 2);
	file = lua_tostring(L, -1);
	if (lua_isfunction(L, -2) && file && strncmp(file, dir, plen) == 0) {
		lua_rawgetp(L, LUA_REGISTRYINDEX, &script_modules_key);
		lua_pushvalue(L, 1);
		lua_pushboolean(L, 1);
		lua_rawset(L, -3);
		lua_pop(L, 1);
	}
	return 2;
}

/* Lets the script require modules that sit beside it. */
static void add_script_dir(lua_State *L, const char *script)
{
	char *copy = strdup(script);
	const char *dir;

	if (copy == NULL)
		luaL_error(L, "out of memory");
	dir = dirname(copy);
	lua_getglobal(L, "package");
	lua_pushfstring(L, "%s/?.lua;%s/?/init.lua;", dir, dir);
	lua_getfield(L, -2, "path");
	lua_concat(L, 2);
	lua_setfield(L, -2, "path");
	lua_newtable(L);
	lua_rawsetp(L, LUA_REGISTRYINDEX, &script_modules_key);
	lua_getfield(L, -1, "searchers");
	lua_rawgeti(L, -1, 2);
	lua_pushfstring(L, "%s/", dir);
	free(copy);
	lua_pushcclosure(L, script_searcher, 2);
	lua_rawseti(L, -2, 2);
	lua_pop(L, 2);
}

/*
 * Before a reload runs the new chunk: takes the modules loaded from the
 * script's directory out of package.loaded, so that its require loads
 * their current files, and keeps them aside.
 */
static void drop_script_modules(lua_State *L)
{
	lua_getglobal(L, "package");
	lua_getfield(L, -1, "loaded");
	lua_newtable(L);				/* what is dropped */
	lua_rawgetp(L, LUA_REGISTRYINDEX, &script_modules_key);
	lua_pushnil(L);
	while (lua_next(L, -2) != 0) {
		lua_pop(L, 1);
		lua_pushvalue(L, -1);
		lua_pushvalue(L, -1);
		lua_rawget(L, -6);			/* package.loaded[name] */
		lua_rawset(L, -5);
		lua_pushvalue(L, -1);
		lua_pushnil(L);
		lua_rawset(L, -6);
	}
	lua_pop(L, 1);
	lua_rawsetp(L, LUA_REGISTRYINDEX, &dropped_modules_key);
	lua_newtable(L);
	lua_rawsetp(L, LUA_REGISTRYINDEX, &script_modules_key);
	lua_pop(L, 2);
}

/*
 * After a failed reload: forgets what the failed chunk loaded from the
 * script's directory and puts the old modules back, so that the old code
 * keeps finding its own modules.
 */
static int restore_script_modules(lua_State *L)
{
	if (lua_rawgetp(L, LUA_REGISTRYINDEX, &dropped_modules_key) !=
	    LUA_TTABLE)
		return 0;
	lua_getglobal(L, "package");
	lua_getfield(L, -1, "loaded");
	lua_rawgetp(L, LUA_REGISTRYINDEX, &script_modules_key);
	lua_pushnil(L);
	while (lua_next(L, -2) != 0) {
		lua_pop(L, 1);
		lua_pushvalue(L, -1);
		lua_pushnil(L);
		lua_rawset(L, -5);
	}
	lua_pop(L, 1);
	lua_pushvalue(L, 1);				/* what was dropped */
	lua_newtable(L);				/* the old set of names */
	lua_pushnil(L);
	while (lua_next(L, -3) != 0) {
		lua_pushvalue(L, -2);
		lua_insert(L, -2);
		lua_rawset(L, -6);
		lua_pushvalue(L, -1);
		lua_pushboolean(L, 1);
		lua_rawset(L, -4);
	}
	lua_rawsetp(L, LUA_REGISTRYINDEX, &script_modules_key);
	lua_pushnil(L);
	lua_rawsetp(L, LUA_REGISTRYINDEX, &dropped_modules_key);
	return 0;
}

/* Checks the table the script returned and resolves its functions. */
static void resolve_ops(lua_State *L, struct luafs_state *s, int t, int *ops)
{
	int *portable = ops == s->code.ops ? &s->code.portable :
			&s->next.portable;
	/* Once per load: by the first state at mount, by the scratch state
	 * that checks a reload (index -1) before the pool loads it. */
	int warn = ops == s->code.ops && s->index <= 0;
	const char *name;
	int op;

	*portable = 0;
	lua_pushnil(L);
	while (lua_next(L, t) != 0) {
		if (lua_type(L, -2) != LUA_TSTRING) {
			if (warn)
				luafs_log(LOG_WARNING, "%s: ignoring a %s key in "
					  "the operations table",
					  luafs_host.script,
					  luaL_typename(L, -2));
			lua_pop(L, 1);
			continue;
		}
		name = lua_tostring(L, -2);
		op = op_index(name);
		if (op < 0 && config_key(L, s, name, portable)) {
			lua_pop(L, 1);
			continue;
		}
		if (op < 0) {
			if (warn)
				luafs_log(LOG_WARNING, "%s: '%s' is not a luafs "
					  "operation (ignored)",
					  luafs_host.script, name);
			lua_pop(L, 1);
			continue;
		}
		if (!lua_isfunction(L, -1))
			luaL_error(L, "%s: operation '%s' must be a function, "
				   "got %s", luafs_host.script, name,
				   luaL_typename(L, -1));
		ops[op] = luaL_ref(L, LUA_REGISTRYINDEX);
	}
}

/* luafs.states() -> how many states serve, and which one this is. */
static int l_states(lua_State *L)
{
	lua_pushinteger(L, luafs_host.nstates);
	lua_pushvalue(L, lua_upvalueindex(1));
	return 2;
}

/*
 * luafs.generation() -> which load of the script the calling code is: 1 at
 * mount, one more per reload that took over.  Each state keeps its own
 * number (in the registry, since the state's struct moves at start-up),
 * so a request that started before a reload and still runs the old code
 * sees the old number.
 */
static const char generation_key = 'g';

static void set_generation(lua_State *L, int generation)
{
	lua_pushinteger(L, generation);
	lua_rawsetp(L, LUA_REGISTRYINDEX, &generation_key);
}

static int l_generation(lua_State *L)
{
	lua_rawgetp(L, LUA_REGISTRYINDEX, &generation_key);
	return 1;
}

/*
 * The script's text, read once for the pool at mount and once per reload,
 * so that every state (and the scratch state that checks a reload) runs
 * the same bytes, even while an editor is still writing the file.
 */
static struct {
	char *text;
	size_t len;
} source;

static void source_free(void)
{
	free(source.text);
	source.text = NULL;
	source.len = 0;
}

static int source_read(char **err)
{
	size_t cap = 8192;
	ssize_t n;
	int fd, e;

	source_free();
	fd = open(luafs_host.script, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		goto fail;
	source.text = malloc(cap);
	while (source.text != NULL) {
		if (source.len == cap) {
			char *bigger = realloc(source.text, cap *= 2);

			if (bigger == NULL)
				break;
			source.text = bigger;
		}
		n = read(fd, source.text + source.len, cap - source.len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			e = errno;
			close(fd);
			if (n == 0)
				return 0;
			errno = e;
			goto fail;
		}
		source.len += (size_t)n;
	}
	close(fd);
	errno = ENOMEM;
fail:
	e = errno;
	source_free();
	if (asprintf(err, "cannot read %s: %s", luafs_host.script,
		     strerror(e)) < 0)
		*err = NULL;
	return -1;
}

/*
 * Loads the script's text as luaL_loadfilex loads a file: a UTF-8 byte
 * order mark and a first line starting with '#' are skipped, the newline
 * kept so that line numbers stay right.
 */
static int load_source(lua_State *L)
{
	const char *text = source.text;
	size_t len = source.len;
	int res;

	if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0) {
		text += 3;
		len -= 3;
	}
	if (len > 0 && text[0] == '#')
		while (len > 0 && *text != '\n') {
			text++;
			len--;
		}
	lua_pushfstring(L, "@%s", luafs_host.script);
	res = luaL_loadbufferx(L, text, len, lua_tostring(L, -1), "bt");
	lua_remove(L, -2);
	return res;
}

/*
 * Runs the script's chunk and resolves the table it returns into ops,
 * running its self-check if it has one; leaves the table on the stack.
 */
static void run_script(lua_State *L, struct luafs_state *s, int *ops)
{
	int i;

	for (i = 0; i < OP_COUNT; i++)
		ops[i] = LUA_NOREF;
	if (load_source(L) != LUA_OK)
		lua_error(L);
	luaL_checkstack(L, luafs_host.script_argc, "too many script arguments");
	for (i = 0; i < luafs_host.script_argc; i++)
		lua_pushstring(L, luafs_host.script_argv[i]);
	lua_call(L, luafs_host.script_argc, 1);
	if (!lua_istable(L, -1))
		luaL_error(L, "%s: the script returned %s, not a table of "
			   "operations", luafs_host.script,
			   luaL_typename(L, -1));
	resolve_ops(L, s, lua_gettop(L), ops);
	if (lua_getfield(L, -1, "check") == LUA_TNIL) {
		lua_pop(L, 1);
		return;
	}
	lua_call(L, 0, 2);
	if (!lua_toboolean(L, -2))
		luaL_error(L, "%s: check() failed: %s", luafs_host.script,
			   lua_isnil(L, -1) ? "it returned false" :
			   luaL_tolstring(L, -1, NULL));
	lua_pop(L, 2);
}

static int load_script(lua_State *L)
{
	struct luafs_state *s = lua_touserdata(L, 1);
	int i;

	luaL_openlibs(L);
	luafs_stdlibs_open(L);
	luaL_requiref(L, "luafs", luaopen_luafs, 0);
	luafs_bufvec_open(L);
	lua_setfield(L, -2, "BufVec");
	luafs_invalidate_open(L, lua_gettop(L));
	luafs_timers_open(L, lua_gettop(L), s->index);
	luafs_shared_open(L);
	lua_pushvalue(L, -1);
	lua_setfield(L, -3, "shared");
	/* Argument errors then name luafs.shared.get, not '?'. */
	luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
	lua_insert(L, -2);
	lua_setfield(L, -2, "luafs.shared");
	lua_pop(L, 1);
	lua_pushinteger(L, s->index + 1);
	lua_pushcclosure(L, l_states, 1);
	lua_setfield(L, -2, "states");
	set_generation(L, s->code.generation);
	lua_pushcfunction(L, l_generation);
	lua_setfield(L, -2, "generation");
	lua_newtable(L);
	lua_setfield(L, -2, "stash");
	lua_pop(L, 1);
	luafs_fileinfo_open(L);
	luafs_pollhandle_open(L);
	lua_newtable(L);
	s->handles = luaL_ref(L, LUA_REGISTRYINDEX);
	for (i = 0; i < LUAFS_MAX_LENT; i++) {
		lua_pushboolean(L, 0);
		s->lent[i] = luaL_ref(L, LUA_REGISTRYINDEX);
	}
	add_script_dir(L, luafs_host.script);
	run_script(L, s, s->code.ops);
	s->code.table = luaL_ref(L, LUA_REGISTRYINDEX);
	return 0;
}

/*
 * Reload, in a live state: the new code runs beside the old, whose
 * references stay until the reload is published and the state's next
 * checkout switches.  The modules the old code loaded from the script's
 * directory are loaded again.  The script's reload(old) hook sees the
 * old table.
 */
static int reload_script(lua_State *L)
{
	struct luafs_state *s = lua_touserdata(L, 1);

	set_generation(L, s->next.generation);
	drop_script_modules(L);
	run_script(L, s, s->next.ops);
	if (lua_getfield(L, -1, "reload") != LUA_TNIL) {
		lua_rawgeti(L, LUA_REGISTRYINDEX, s->code.table);
		lua_call(L, 1, 0);
	} else {
		lua_pop(L, 1);
	}
	s->next.table = luaL_ref(L, LUA_REGISTRYINDEX);
	return 0;
}

/* Drops code's references; clearing references never allocates. */
static void unref_code(lua_State *L, struct luafs_code *code)
{
	int i;

	for (i = 0; i < OP_COUNT; i++) {
		luaL_unref(L, LUA_REGISTRYINDEX, code->ops[i]);
		code->ops[i] = LUA_NOREF;
	}
	luaL_unref(L, LUA_REGISTRYINDEX, code->table);
	code->table = LUA_NOREF;
	code->generation = 0;
}

static char *error_text(lua_State *L)
{
	const char *msg = lua_tostring(L, -1);

	return strdup(msg ? msg : "error object is not a string");
}

/*
 * Loads the reloaded code (luafs_state_check read it) beside the old, in
 * a state the caller checked out; on failure *err says why.
 */
int luafs_state_prepare(struct luafs_state *s, lua_Hook hook, char **err)
{
	lua_State *L = s->L;
	int top = lua_gettop(L), res;

	s->next.generation = luafs_host.generation + 1;
	lua_sethook(L, hook, LUA_MASKCOUNT, 10000);
	lua_pushcfunction(L, reload_script);
	lua_pushlightuserdata(L, s);
	res = lua_pcall(L, 1, 0, 0);
	lua_sethook(L, NULL, 0, 0);
	/* The key exists: setting it cannot raise a memory error. */
	set_generation(L, s->code.generation);
	if (res == LUA_OK)
		return 0;
	*err = error_text(L);
	lua_settop(L, top);
	luafs_state_discard(s);
	return -1;
}

/* Drops prepared code that will not serve, and puts the old modules back. */
void luafs_state_discard(struct luafs_state *s)
{
	int top = lua_gettop(s->L);

	lua_pushcfunction(s->L, restore_script_modules);
	if (lua_pcall(s->L, 0, 0, 0) != LUA_OK)
		luafs_log(LOG_WARNING, "reload: cannot restore the modules "
			  "of state %d: %s", s->index + 1,
			  lua_tostring(s->L, -1));
	lua_settop(s->L, top);
	unref_code(s->L, &s->next);
}

/*
 * Makes the published code the state's code.  Its owner does it at
 * checkout, so a request in flight finishes on the code it started with.
 * Clearing references never allocates, so this is safe unprotected.
 */
static void switch_code(struct luafs_state *s)
{
	int i;

	unref_code(s->L, &s->code);
	s->code = s->next;
	for (i = 0; i < OP_COUNT; i++)
		s->next.ops[i] = LUA_NOREF;
	s->next.table = LUA_NOREF;
	s->next.generation = 0;
	set_generation(s->L, s->code.generation);
	lua_pushnil(s->L);
	lua_rawsetp(s->L, LUA_REGISTRYINDEX, &dropped_modules_key);
}

/*
 * Ends a reload.  When every state has prepared the new code (ok): from
 * now on each checkout switches its state first, so every request that
 * starts sees the new code, in all states at once.
 */
void luafs_pool_publish(int ok)
{
	if (ok) {
		__atomic_add_fetch(&luafs_host.generation, 1,
				   __ATOMIC_RELEASE);
	}
	luafs_timers_reloaded(ok);
	source_free();
}

/* Only reached by a bug of the host: every use of a state is protected. */
static int state_panic(lua_State *L)
{
	luafs_log(LOG_CRIT, "unprotected Lua error: %s", lua_tostring(L, -1));
	abort();
}

static void state_close(struct luafs_state *s)
{
	if (s->L != NULL)
		lua_close(s->L);
	luafs_heap_free(s->heap);
	s->L = NULL;
	s->heap = NULL;
}

/*
 * Makes *s, zeroed by the caller, a state that has run the script; on
 * failure *err says why.
 */
static int state_load(struct luafs_state *s, int index, int generation,
		      lua_Hook hook, char **err)
{
	int i;

	s->index = index;
	for (i = 0; i < OP_COUNT; i++)
		s->code.ops[i] = s->next.ops[i] = LUA_NOREF;
	s->code.table = s->next.table = LUA_NOREF;
	s->code.generation = generation;
	s->next.generation = 0;
	luafs_host_alloc = luafs_heap_alloc;
	luafs_host_metatables = luafs_heap_metatables;
	s->heap = luafs_heap_new();
	s->L = s->heap ? lua_newstate(luafs_heap_alloc, s->heap) : NULL;
	if (s->L == NULL) {
		luafs_heap_free(s->heap);
		s->heap = NULL;
		*err = strdup("cannot create a Lua state: out of memory");
		return -1;
	}
	lua_atpanic(s->L, state_panic);
	if (hook != NULL)
		lua_sethook(s->L, hook, LUA_MASKCOUNT, 10000);
	lua_pushcfunction(s->L, load_script);
	lua_pushlightuserdata(s->L, s);
	if (lua_pcall(s->L, 1, 0, 0) == LUA_OK) {
		/* The cap applies to requests, not to loading the script. */
		luafs_heap_limit(s->heap, luafs_host.lua_memory);
		lua_sethook(s->L, NULL, 0, 0);
		return 0;
	}
	*err = error_text(s->L);
	state_close(s);
	return -1;
}

/*
 * Reads the script again and runs it in a state of its own, to check it
 * before a reload touches the pool.  Lua code in it calls hook now and
 * then, so that a chunk stuck in a loop can be given up.
 */
int luafs_state_check(lua_Hook hook, char **err)
{
	struct luafs_state s;

	if (source_read(err) != 0)
		return -1;
	memset(&s, 0, sizeof(s));
	if (state_load(&s, -1, luafs_host.generation + 1, hook, err) != 0) {
		source_free();
		return -1;
	}
	state_close(&s);
	return 0;
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
	if (source_read(&err) != 0 ||
	    state_load(first, 0, luafs_host.generation, NULL, &err) != 0)
		goto fail;
	if (n == 0 && first->wanted_states > 0)
		n = first->wanted_states;
	if (n == 0)
		n = 1;
	luafs_host.states = calloc((size_t)n, sizeof(*luafs_host.states));
	if (luafs_host.states == NULL) {
		state_close(first);
		goto oom;
	}
	luafs_host.states[0] = *first;
	free(first);
	first = NULL;
	luafs_host.nstates = n;
	for (i = 1; i < n; i++) {
		if (state_load(&luafs_host.states[i], i,
			       luafs_host.generation, NULL, &err) != 0) {
			luafs_host.nstates = i;
			luafs_pool_close();
			goto fail;
		}
	}
	source_free();
	for (op = 0; op < OP_COUNT; op++)
		if (luafs_host.states[0].code.ops[op] != LUA_NOREF)
			luafs_host.present |= UINT64_C(1) << op;
	return 0;
oom:
	err = NULL;
fail:
	source_free();
	luafs_log(LOG_ERR, "%s", err ? err : "out of memory");
	free(err);
	free(first);
	return -1;
}

void luafs_pool_close(void)
{
	int i;

	for (i = 0; i < luafs_host.nstates; i++)
		state_close(&luafs_host.states[i]);
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
		switch_code(s);
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
