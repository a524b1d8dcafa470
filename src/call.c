/*
 * call.c: one request, from libfuse to the script and back.
 *
 * Follow a read_buf.  libfuse calls op_read_buf (ops.c) with the request's
 * arguments; the shim puts them in its struct read_args and calls
 * luafs_call with read_buf_body.  luafs_call checks a Lua state out of the
 * pool (pool.c): the one that holds the file's handle, or any free one.
 * It then runs the body under one lua_pcall, with msghandler as the
 * message handler, as lua.c runs pmain: the body, which finds the request
 * in luafs_current, pushes the arguments (the path, the size, the offset,
 * a luafs.FileInfo) above the script's function, luafs_invoke calls the
 * script's read_buf and tells a failure (-errno, or nil, message, errno)
 * from an answer, and the body turns the answer (a string or a
 * luafs.BufVec) into the struct fuse_bufvec that libfuse sends.  An error
 * anywhere in there, the script's or the host's (a value it refuses, an
 * allocation that fails), ends the pcall: a luafs.error object becomes its
 * errno, a memory error ENOMEM, anything else EIO and one log line.  Then
 * the objects lent to the script for the call (the FileInfo) expire, the
 * state goes back to the pool, and the shim returns c.result to libfuse.
 *
 * Nothing touches a state outside that pcall but code that cannot raise:
 * reading the error object, clearing references and the lent objects.
 */
#include "luafs.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

/* What the log calls the call: its operation, or a job of timers.c. */
static const char *call_name(const struct luafs_call *c)
{
	return c->op < OP_COUNT ? luafs_op_names[c->op] : "background";
}

/*
 * The message handler: a traceback for the script's errors, errno objects
 * unchanged.  A value that the host refused after the script returned
 * (raised by the body, the bottom frame of the state) gets no traceback:
 * it would show only the host's C code; luafs_call names the callback
 * instead.
 */
static int msghandler(lua_State *L)
{
	struct luafs_call *c = luafs_current;
	lua_Debug ar;
	const char *msg;
	int e;

	if (luafs_is_error(L, 1, &e))
		return 1;
	msg = lua_tostring(L, 1);
	if (msg == NULL) {
		if (luaL_callmeta(L, 1, "__tostring") && lua_isstring(L, -1))
			msg = lua_tostring(L, -1);
		else
			msg = lua_pushfstring(L, "(error object is a %s value)",
					      luaL_typename(L, 1));
	}
	if (c != NULL && c->answered && !lua_getstack(L, 2, &ar)) {
		c->refused = 1;
		lua_pushstring(L, msg);
		return 1;
	}
	luaL_traceback(L, L, msg, 1);
	return 1;
}

/*
 * The three ways a callback fails: a negative errno, "nil, message, errno",
 * or a raised luafs.error (which msghandler passes on).  Returns 1 when
 * the results at first, first + 1 and first + 2 are a failure, with
 * c->result set, and 0 when they are not; raises for a failure that
 * carries no errno (a negative number out of range, nil and a message
 * alone).  Positive numbers that are no count (2.5, 2^63) are left to the
 * body's checks.
 */
static int failure(lua_State *L, struct luafs_call *c, int first)
{
	lua_Integer e;
	int isint = 0, type = lua_type(L, first);

	/* Only a number, nil or a boolean may begin a failure. */
	if (type != LUA_TNUMBER && type != LUA_TNIL && type != LUA_TBOOLEAN)
		return 0;
	if (type == LUA_TNUMBER) {
		if (!(lua_tonumber(L, first) < 0))
			return 0;
		e = lua_tointegerx(L, first, &isint);
		if (!isint || e < -511 || !luafs_valid_errno(-e))
			return luaL_error(L, "%s returned %s, which is no errno:"
					  " a failure is -1 to -511 "
					  "(-luafs.ENOENT)",
					  call_name(c),
					  luaL_tolstring(L, first, NULL));
		c->result = (int)e;
		return 1;
	}
	if (lua_toboolean(L, first) || lua_isnil(L, first + 1))
		return 0;
	/* lua_tointegerx alone would also take the string "13". */
	e = lua_type(L, first + 2) == LUA_TNUMBER ?
	    lua_tointegerx(L, first + 2, &isint) : 0;
	if (!isint || !luafs_valid_errno(e)) {
		const char *msg = luaL_tolstring(L, first + 1, NULL);

		if (!lua_isnil(L, first + 2))
			return luaL_error(L, "%s failed with \"%s\" and errno "
					  "%s, which is no errno (1 to 511)",
					  call_name(c), msg,
					  luaL_tolstring(L, first + 2, NULL));
		return luaL_error(L, "%s failed with \"%s\" but no errno: "
				  "return nil, message, errno",
				  call_name(c), msg);
	}
	c->result = (int)-e;
	if (c->message != NULL && lua_type(L, first + 1) == LUA_TSTRING)
		snprintf(c->message, LUAFS_MESSAGE_MAX, "%s",
			 lua_tostring(L, first + 1));
	return 1;
}

/*
 * In a body, with the script's function at index 1 and the arguments the
 * body pushed above it: calls the function, and leaves its first three
 * results (a failure's three values, more than any answer has) from
 * LUAFS_FIRST_RESULT on, nil for those it did not return.  Returns 0, or
 * -1 when they are a failure, with c->result set.
 */
int luafs_invoke(lua_State *L, struct luafs_call *c)
{
	lua_call(L, lua_gettop(L) - 1, 3);
	c->answered = 1;
	return failure(L, c, LUAFS_FIRST_RESULT) ? -1 : 0;
}

/*
 * Lends the userdata on top of the stack to the script for this call:
 * *slot, a pointer inside it, is cleared when the call ends, so that a
 * copy the script kept raises instead of reaching memory that is gone.
 * Until then a slot of the registry that the state keeps for it holds the
 * object, so the collector cannot free it before the host clears the
 * pointer.
 */
void luafs_lend(lua_State *L, struct luafs_call *c, void **slot)
{
	if (c->nlent == LUAFS_MAX_LENT)
		luaL_error(L, "no room left to lend an object");
	lua_pushvalue(L, -1);
	lua_rawseti(L, LUA_REGISTRYINDEX, c->st->lent[c->nlent]);
	c->lent[c->nlent++] = slot;
}

/* The slots exist: setting them allocates nothing. */
static void expire_lent(lua_State *L, struct luafs_call *c)
{
	while (c->nlent > 0) {
		c->nlent--;
		*c->lent[c->nlent] = NULL;
		lua_pushboolean(L, 0);
		lua_rawseti(L, LUA_REGISTRYINDEX, c->st->lent[c->nlent]);
	}
}

/* Logs an error of the call on one line. */
static void log_error(lua_State *L, struct luafs_call *c, const char *msg)
{
	char line[3072], where[LUA_IDSIZE + 24] = "";
	lua_Debug ar;

	/* A refused value: where the callback that returned it is. */
	if (c->refused && c->op < OP_COUNT &&
	    lua_rawgeti(L, LUA_REGISTRYINDEX, c->st->code.ops[c->op]) ==
	    LUA_TFUNCTION && lua_getinfo(L, ">S", &ar) &&
	    ar.linedefined > 0)
		snprintf(where, sizeof(where), "%s:%d: ", ar.short_src,
			 ar.linedefined);
	luafs_flatten(line, sizeof(line), msg, " | ");
	luafs_log(LOG_ERR, "%s%s%s: %s%s", call_name(c),
		  c->path ? " " : "", c->path ? c->path : "", where, line);
}

/*
 * A handle ends with release or releasedir, whatever they answer, and with
 * an open that failed after it stored one: libfuse never releases those.
 * Clearing a reference never allocates.
 */
static void drop_handle(lua_State *L, struct luafs_call *c)
{
	switch (c->op) {
	case OP_open:
	case OP_create:
	case OP_opendir:
		if (c->result >= 0)
			return;
		/* fall through */
	case OP_release:
	case OP_releasedir:
		luafs_handle_drop(L, c->st, c->fi);
		break;
	default:
		break;
	}
}

/*
 * Raises msg from a hook, where the code that runs is the function the
 * hook interrupted (level 0), not its caller (luaL_error's level 1).
 */
int luafs_hook_error(lua_State *L, const char *msg)
{
	lua_Debug ar;

	if (lua_getstack(L, 0, &ar) && lua_getinfo(L, "Sl", &ar) &&
	    ar.currentline > 0)
		lua_pushfstring(L, "%s:%d: %s", ar.short_src, ar.currentline,
				msg);
	else
		lua_pushstring(L, msg);
	return lua_error(L);
}

/*
 * -o call_timeout: a count hook checks the deadline every few thousand
 * instructions, cheap enough to leave on, and stops a callback that runs
 * too long; the request answers ETIMEDOUT and the state stays usable.
 * Past the deadline the hook fires at every instruction of whichever
 * thread of the state runs (coroutines inherit it), so a pcall that
 * catches the error returns to code that raises it again at once, and the
 * error leaves the callback.  It cannot stop a blocking system call, only
 * Lua code.
 */
static __thread double deadline;

static void deadline_hook(lua_State *L, lua_Debug *ar)
{
	char msg[64];

	(void)ar;
	/* A coroutine kept from a callback may run when no call does. */
	if (luafs_current == NULL)
		return;
	if (!luafs_current->timed_out) {
		if (luafs_now() < deadline)
			return;
		luafs_current->timed_out = 1;
	}
	lua_sethook(L, deadline_hook, LUA_MASKCOUNT, 1);
	snprintf(msg, sizeof(msg), "timed out after %g s (-o call_timeout)",
		 luafs_host.call_timeout);
	luafs_hook_error(L, msg);
}

/* What an error that ended the call answers, with its log line. */
static void answer_error(lua_State *L, struct luafs_call *c, int status)
{
	const char *msg = status != LUA_OK && lua_type(L, -1) == LUA_TSTRING ?
			  lua_tostring(L, -1) : "(no error message)";
	int e;

	if (c->timed_out) {
		/* Caught by the script, which answered all the same. */
		if (status == LUA_OK)
			msg = "timed out (-o call_timeout)";
		/* The hook's message says where the script was. */
		luafs_log(LOG_ERR, "%s %s: %.*s", call_name(c),
			  c->path ? c->path : "", (int)strcspn(msg, "\n"),
			  msg);
		c->result = -ETIMEDOUT;
	} else if (status == LUA_ERRMEM) {
		luafs_log(LOG_ERR, "%s %s: out of Lua memory",
			  call_name(c), c->path ? c->path : "");
		c->result = -ENOMEM;
	} else if (luafs_is_error(L, -1, &e)) {
		c->result = -e;
		/* The key is interned: the object has the field. */
		if (c->message != NULL &&
		    lua_getfield(L, -1, "message") == LUA_TSTRING)
			snprintf(c->message, LUAFS_MESSAGE_MAX, "%s",
				 lua_tostring(L, -1));
	} else {
		log_error(L, c, msg);
		c->result = -EIO;
	}
}

/* -o trace: one line per call, with the arguments that matter by name. */
static void trace(const struct luafs_call *c, double us)
{
	char args[256] = "", result[32], where[24] = "";
	const char *name;

	if (c->describe != NULL) {
		c->describe(c, args + 1, sizeof(args) - 1);
		args[0] = args[1] ? ' ' : '\0';
	}
	if (c->result >= 0)
		snprintf(result, sizeof(result), "%d", c->result);
	else if ((name = luafs_errno_name(-c->result)) != NULL)
		snprintf(result, sizeof(result), "%s", name);
	else
		snprintf(result, sizeof(result), "errno %d", -c->result);
	if (luafs_host.nstates > 1)
		snprintf(where, sizeof(where), ", state %d", c->st->index + 1);
	luafs_log(LOG_INFO, "trace: %s%s%s%s -> %s (%.0f us%s)",
		  call_name(c), c->path ? " " : "",
		  c->path ? c->path : "", args, result, us, where);
}

int luafs_call(struct luafs_call *c, lua_CFunction body)
{
	int tracing = __atomic_load_n(&luafs_host.trace, __ATOMIC_RELAXED);
	double start = luafs_host.debug || luafs_host.call_timeout > 0 ||
		       tracing ? luafs_now() : 0;
	struct luafs_call *outer = luafs_current;
	uint64_t ticks;
	lua_State *L;
	int status, ref;

	/* Background jobs do not keep the janitor from its quiet spells. */
	if (c->op < OP_COUNT)
		luafs_note_request();
	if (c->pin == 0)
		c->pin = 1 + luafs_handle_state(c->fi);
	c->st = luafs_state_acquire(c->pin - 1, 1);
	if (c->st == NULL) {
		luafs_log(LOG_ERR, "%s %s: a callback accessed its own mount "
			  "and no other Lua state is free: EDEADLK",
			  call_name(c), c->path ? c->path : "");
		return c->result = -EDEADLK;
	}
	L = c->st->L;
	/* No state is ever entered by two threads at once. */
	assert(c->st->pool.owner == luafs_tid());
	/* Between calls the stack is empty. */
	assert(lua_gettop(L) == 0);
	ref = c->op < OP_COUNT ? c->st->code.ops[c->op] : LUA_REFNIL;
	c->result = 0;
	luafs_current = c;
	if (luafs_host.call_timeout > 0) {
		deadline = start + luafs_host.call_timeout;
		lua_sethook(L, deadline_hook, LUA_MASKCOUNT, 4096);
	}
	ticks = luafs_stats_ticks();
	/* A reload may have removed an operation libfuse still calls. */
	if (ref == LUA_NOREF) {
		c->result = -ENOSYS;
		status = LUA_OK;
	} else {
		lua_pushcfunction(L, msghandler);
		lua_pushcfunction(L, body);
		lua_rawgeti(L, LUA_REGISTRYINDEX, ref);
		status = lua_pcall(L, 1, 0, 1);
	}
	expire_lent(L, c);
	if (luafs_host.call_timeout > 0)
		lua_sethook(L, NULL, 0, 0);
	if (status != LUA_OK || c->timed_out)
		answer_error(L, c, status);
	lua_settop(L, 0);
	/*
	 * Lua collects before it gives up on most allocations, but not on a
	 * luaL_Buffer's (string.rep, table.concat): without a collection
	 * here, the garbage of the call that failed would fail the next.
	 */
	if (status == LUA_ERRMEM)
		lua_gc(L, LUA_GCCOLLECT);
	drop_handle(L, c);
	luafs_stats_call(c->op, c->result, luafs_stats_ticks() - ticks);
	if (tracing)
		trace(c, (luafs_now() - start) * 1e6);
	luafs_current = outer;
	luafs_state_release(c->st);
	if (luafs_host.debug)
		luafs_log(LOG_DEBUG, "%s %s -> %d (%.0f us)",
			  call_name(c), c->path ? c->path : "-",
			  c->result, (luafs_now() - start) * 1e6);
	return c->result;
}
