/*
 * load.c: the script, loaded into a Lua state.
 *
 * The script's text is read once for the pool at mount and once per
 * reload.  Every state is made the same way: standard libraries, require
 * "luafs", the script run with its arguments, and the operations table it
 * returned resolved once into registry references.  The modules that the
 * script requires from its own directory are noted, so that a reload
 * loads those again, and only those.
 */
#include "luafs.h"

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
		/* Only the directory itself is watched, not below it. */
		if (strchr(file + plen, '/') == NULL)
			luafs_reload_watch_file(file);
		lua_rawgetp(L, LUA_REGISTRYINDEX, &script_modules_key);
		lua_pushvalue(L, 1);
		lua_pushboolean(L, 1);
		lua_rawset(L, -3);
		lua_pop(L, 1);
	}
	return 2;
}

/* Lets the script require modules that sit beside it. */
/*
 * Wraps loadfile and dofile (upvalue 1) to note the files they load from
 * the script's directory (upvalue 2, with a trailing slash), which a
 * change then reloads, as it does for required modules.
 */
static int script_loader(lua_State *L)
{
	size_t plen;
	const char *dir = lua_tolstring(L, lua_upvalueindex(2), &plen);
	const char *file = lua_tostring(L, 1);
	char real[PATH_MAX];

	if (file != NULL && realpath(file, real) != NULL &&
	    strncmp(real, dir, plen) == 0 && strchr(real + plen, '/') == NULL)
		luafs_reload_watch_file(real);
	lua_pushvalue(L, lua_upvalueindex(1));
	lua_insert(L, 1);
	lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
	return lua_gettop(L);
}

static void wrap_loader(lua_State *L, const char *name, const char *dir)
{
	lua_getglobal(L, name);
	lua_pushfstring(L, "%s/", dir);
	lua_pushcclosure(L, script_loader, 2);
	lua_setglobal(L, name);
}

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
	lua_pushcclosure(L, script_searcher, 2);
	lua_rawseti(L, -2, 2);
	lua_pop(L, 2);
	wrap_loader(L, "loadfile", dir);
	wrap_loader(L, "dofile", dir);
	free(copy);
}

/*
 * Before a reload runs the new chunk: takes the modules loaded from the
 * script's directory out of package.loaded, so that its require loads
 * their current files, and keeps them aside.
 */
void luafs_script_drop_modules(lua_State *L)
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
int luafs_script_restore_modules(lua_State *L)
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

/* After a reload took over: the old code's modules are gone for good. */
void luafs_script_keep_modules(lua_State *L)
{
	lua_pushnil(L);
	lua_rawsetp(L, LUA_REGISTRYINDEX, &dropped_modules_key);
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

/*
 * The script's text, read once for the pool at mount and once per reload,
 * so that every state (and the scratch state that checks a reload) runs
 * the same bytes, even while an editor is still writing the file.
 */
static struct {
	char *text;
	size_t len;
} source;

void luafs_script_free(void)
{
	free(source.text);
	source.text = NULL;
	source.len = 0;
}

int luafs_script_read(char **err)
{
	size_t cap = 8192;
	ssize_t n;
	int fd, e;

	luafs_script_free();
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
	luafs_script_free();
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
void luafs_script_run(lua_State *L, struct luafs_state *s, int *ops)
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

int luafs_script_load(lua_State *L)
{
	struct luafs_state *s = lua_touserdata(L, 1);
	int i;

	luaL_openlibs(L);
	luafs_stdlibs_open(L);
	luafs_set_generation(L, s->code.generation);
	luaL_requiref(L, "luafs", luaopen_luafs, 0);
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
	luafs_script_run(L, s, s->code.ops);
	s->code.table = luaL_ref(L, LUA_REGISTRYINDEX);
	return 0;
}

char *luafs_error_text(lua_State *L)
{
	const char *msg = lua_tostring(L, -1);

	return strdup(msg ? msg : "error object is not a string");
}
