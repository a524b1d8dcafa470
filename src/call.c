/*
 * call.c: running one script function for one request.
 *
 * The script's function runs in lua_pcall, with a message handler that
 * adds the traceback.  The host's own work around it (pushing the
 * arguments, reading plain answers) runs outside, at the base of the
 * state, guarded by a recovery point: an error the host raises there, or
 * an allocation that fails, reaches the state's panic function, which
 * jumps back here (luafs_call_recover) instead of aborting.  Lua has
 * unwound the state by then; no Lua function was running, so nothing else
 * is left to undo.  Answers that could run the script's code again (a
 * metamethod, a readdir iterator) are read in a second lua_pcall instead.
 * Either way an error becomes an answer (-errno, or -EIO with a log
 * line), never a longjmp through libfuse's frames and never a crash.
 */
#include "luafs.h"

#include <assert.h>
#include <errno.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* The message handler: a traceback for errors, errno objects unchanged. */
static int msghandler(lua_State *L)
{
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
	luaL_traceback(L, L, msg, 1);
	return 1;
}

/*
 * The three ways a callback fails: a negative errno, "nil, message, errno",
 * or a raised luafs.error (handled by the caller of lua_pcall).  Returns 1
 * when the results at first..first+n-1 are a failure, with c->result set,
 * 0 when they are not, and -1 when they fail in a way that is no errno
 * (a negative number out of range, a failure without an errno), which
 * failure() raises for.  Positive numbers that are no count (2.5, 2^63)
 * are left to the operation's own check.  It never raises itself, so the
 * host can read answers with it unprotected.
 */
static int failure_shape(lua_State *L, struct luafs_call *c, int first,
			 int n)
{
	lua_Integer e;
	int isint;

	if (n == 0)
		return 0;
	if (lua_type(L, first) == LUA_TNUMBER) {
		if (!(lua_tonumber(L, first) < 0))
			return 0;
		e = lua_tointegerx(L, first, &isint);
		if (!isint || e < -511 || !luafs_valid_errno(-e))
			return -1;
		c->result = (int)e;
		return 1;
	}
	if (lua_toboolean(L, first) || n < 2 || lua_isnil(L, first + 1))
		return 0;
	/* lua_tointegerx alone would also take the string "13". */
	isint = 0;
	e = n >= 3 && lua_type(L, first + 2) == LUA_TNUMBER ?
	    lua_tointegerx(L, first + 2, &isint) : 0;
	if (!isint || !luafs_valid_errno(e))
		return -1;
	c->result = (int)-e;
	if (c->message != NULL && lua_type(L, first + 1) == LUA_TSTRING)
		snprintf(c->message, LUAFS_MESSAGE_MAX, "%s",
			 lua_tostring(L, first + 1));
	return 1;
}

/* failure_shape, raising for the failures that carry no errno. */
static int failure(lua_State *L, struct luafs_call *c, int first, int n)
{
	int f = failure_shape(L, c, first, n);
	const char *msg;

	if (f >= 0)
		return f;
	if (lua_type(L, first) == LUA_TNUMBER)
		return luaL_error(L, "%s returned %s, which is no errno: a "
				  "failure is -1 to -511 (-luafs.ENOENT)",
				  luafs_op_names[c->op],
				  luaL_tolstring(L, first, NULL));
	msg = luaL_tolstring(L, first + 1, NULL);
	if (n >= 3 && !lua_isnil(L, first + 2))
		return luaL_error(L, "%s failed with \"%s\" and errno %s, "
				  "which is no errno (1 to 511)",
				  luafs_op_names[c->op], msg,
				  luaL_tolstring(L, first + 2, NULL));
	return luaL_error(L, "%s failed with \"%s\" but no errno: return "
			  "nil, message, errno", luafs_op_names[c->op], msg);
}

/* The script's results, read in protected mode: failure() and take. */
static int protected_take(lua_State *L)
{
	struct luafs_call *c = lua_touserdata(L, 1);
	int n = lua_gettop(L) - 1;

	if (!failure(L, c, 2, n))
		c->result = c->take ? c->take(L, c, 2, n) : 0;
	return 0;
}

/*
 * Runs the script's function for c, the message handler at top + 1.
 * Raises only at the base of the state (see luafs_call_recover).
 */
static int run(lua_State *L, struct luafs_call *c, int top)
{
	int ref = c->st->ops[c->op], base, n, status;

	/* A reload may have removed an operation libfuse still calls. */
	if (ref == LUA_NOREF) {
		c->result = -ENOSYS;
		return LUA_OK;
	}
	c->anchor = top + 2;
	if (c->borrows)
		lua_pushnil(L);
	lua_rawgeti(L, LUA_REGISTRYINDEX, ref);
	n = c->push(L, c);
	base = lua_gettop(L) - n;
	status = lua_pcall(L, n, LUA_MULTRET, top + 1);
	if (status != LUA_OK)
		return status;
	n = lua_gettop(L) - base + 1;
	if (c->quick && c->quick(L, c, base, n))
		return LUA_OK;
	switch (failure_shape(L, c, base, n)) {
	case 1:
		return LUA_OK;
	case 0:
		if (c->take == NULL) {
			c->result = 0;
			return LUA_OK;
		}
		if (c->bare && c->bare(L, base, n)) {
			c->result = c->take(L, c, base, n);
			return LUA_OK;
		}
		break;
	}
	/* A function may return more values than the stack had room for. */
	if (!lua_checkstack(L, 2))
		return LUA_ERRMEM;
	lua_pushcfunction(L, protected_take);
	lua_insert(L, base);
	lua_pushlightuserdata(L, c);
	lua_insert(L, base + 1);
	return lua_pcall(L, n + 1, 0, top + 1);
}

/* Where a host error at the base of this thread's state lands. */
static __thread jmp_buf *recovery;

/* An error the host raised at the base of the state: run() did not finish. */
#define HOST_ERROR (-1)

void luafs_call_recover(lua_State *L)
{
	(void)L;
	if (recovery != NULL)
		longjmp(*recovery, 1);
}

static int guarded_run(lua_State *L, struct luafs_call *c, int top)
{
	jmp_buf here;
	jmp_buf *outer = recovery;
	int status;

	if (setjmp(here) != 0) {
		recovery = outer;
		return HOST_ERROR;
	}
	recovery = &here;
	status = run(L, c, top);
	recovery = outer;
	return status;
}

/*
 * A BufVec that borrows libfuse's memory for one call (write_buf's) starts
 * with that pointer.  A copy of it sits on the state's stack, in a slot
 * below the script's function where the script cannot drop it, so the
 * collector cannot free it while the call runs; when the call is over,
 * before anything allocates again, the host clears the pointer, and a copy
 * the script kept raises instead of reading freed memory.
 */
void luafs_borrow(lua_State *L, int idx)
{
	struct luafs_call *c = luafs_current;

	if (!c->borrows || c->borrowed != NULL)
		luaL_error(L, "no anchor left for a borrowed object");
	lua_copy(L, idx, c->anchor);
	c->borrowed = lua_touserdata(L, c->anchor);
}

/* Runs outside protected mode, and allocates nothing. */
static void expire_borrowed(struct luafs_call *c)
{
	if (c->st->nfi != 0)
		luafs_fileinfo_end(c->st);
	if (c->borrowed != NULL)
		*(void **)c->borrowed = NULL;
	c->borrowed = NULL;
}

/* Logs an error with its traceback on one line. */
static void log_error(struct luafs_call *c, const char *msg)
{
	char line[3072];
	size_t o = 0;

	for (; *msg && o < sizeof(line) - 8; msg++) {
		if (*msg == '\n') {
			line[o++] = ' ';
			line[o++] = '|';
			line[o++] = ' ';
			while (msg[1] == '\t' || msg[1] == ' ')
				msg++;
		} else {
			line[o++] = *msg;
		}
	}
	line[o] = '\0';
	luafs_log(LOG_ERR, "%s%s%s: %s", luafs_op_names[c->op],
		  c->path ? " " : "", c->path ? c->path : "", line);
}

/*
 * A handle ends with release or releasedir, whatever they answer, and with
 * an open that failed after it stored one: libfuse never releases those.
 * Clearing a reference never allocates, so this is safe unprotected.
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

static long long now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
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
static __thread long long deadline_us;

static void deadline_hook(lua_State *L, lua_Debug *ar)
{
	char msg[64];

	(void)ar;
	/* A coroutine kept from a callback may run when no call does. */
	if (luafs_current == NULL)
		return;
	if (!luafs_current->timed_out) {
		if (now_us() < deadline_us)
			return;
		luafs_current->timed_out = 1;
	}
	lua_sethook(L, deadline_hook, LUA_MASKCOUNT, 1);
	snprintf(msg, sizeof(msg), "timed out after %g s (-o call_timeout)",
		 luafs_host.call_timeout);
	luafs_hook_error(L, msg);
}

int luafs_call(struct luafs_call *c)
{
	long long start = luafs_host.debug || luafs_host.call_timeout > 0 ?
			  now_us() : 0;
	struct luafs_call *outer = luafs_current;
	lua_State *L;
	int top, status, e;

	if (c->pin == 0)
		c->pin = 1 + luafs_handle_state(c->fi);
	c->st = luafs_state_acquire(c->pin - 1, 1);
	if (c->st == NULL) {
		luafs_log(LOG_ERR, "%s %s: a callback accessed its own mount "
			  "and no other Lua state is free: EDEADLK",
			  luafs_op_names[c->op], c->path ? c->path : "");
		return c->result = -EDEADLK;
	}
	L = c->st->L;
	/* No state is ever entered by two threads at once. */
	assert(c->st->owner == luafs_tid());
	top = lua_gettop(L);
	/* Between calls the stack is empty: a host error unwinds it all. */
	assert(top == 0);
	c->borrowed = NULL;
	c->timed_out = 0;
	luafs_current = c;
	if (luafs_host.call_timeout > 0) {
		deadline_us = start + (long long)(luafs_host.call_timeout * 1e6);
		lua_sethook(L, deadline_hook, LUA_MASKCOUNT, 4096);
	}
	lua_pushcfunction(L, msghandler);
	status = guarded_run(L, c, top);
	expire_borrowed(c);
	if (status == HOST_ERROR) {
		/* What Lua left after unwinding: the error object alone. */
		const char *msg = lua_tostring(L, -1);

		status = msg && strcmp(msg, "not enough memory") == 0 ?
			 LUA_ERRMEM : LUA_ERRRUN;
		if (status == LUA_ERRRUN) {
			char line[2048];

			snprintf(line, sizeof(line),
				 "%s\nstack traceback:\n\t[C]: in ?",
				 msg ? msg : "(no error message)");
			log_error(c, line);
			c->result = -EIO;
			status = LUA_OK;
		}
	}
	if (luafs_host.call_timeout > 0)
		lua_sethook(L, NULL, 0, 0);
	if (c->timed_out) {
		/* The hook's message says where the script was. */
		const char *msg = status != LUA_OK &&
				  lua_type(L, -1) == LUA_TSTRING ?
				  lua_tostring(L, -1) : "timed out";

		luafs_log(LOG_ERR, "%s %s: %.*s", luafs_op_names[c->op],
			  c->path ? c->path : "", (int)strcspn(msg, "\n"), msg);
		c->result = -ETIMEDOUT;
	} else if (status == LUA_ERRMEM) {
		luafs_log(LOG_ERR, "%s %s: out of Lua memory",
			  luafs_op_names[c->op], c->path ? c->path : "");
		c->result = -ENOMEM;
	} else if (status != LUA_OK) {
		if (luafs_is_error(L, -1, &e)) {
			c->result = -e;
			/* The key is interned: the object has the field. */
			if (c->message != NULL &&
			    lua_getfield(L, -1, "message") == LUA_TSTRING)
				snprintf(c->message, LUAFS_MESSAGE_MAX, "%s",
					 lua_tostring(L, -1));
		} else {
			log_error(c, lua_type(L, -1) == LUA_TSTRING ?
				  lua_tostring(L, -1) : "(no error message)");
			c->result = -EIO;
		}
	}
	lua_settop(L, top);
	/*
	 * Lua collects before it gives up on most allocations, but not on a
	 * luaL_Buffer's (string.rep, table.concat): without a collection
	 * here, the garbage of the call that failed would fail the next.
	 */
	if (status == LUA_ERRMEM)
		lua_gc(L, LUA_GCCOLLECT);
	drop_handle(L, c);
	luafs_current = outer;
	luafs_state_release(c->st);
	if (luafs_host.debug)
		luafs_log(LOG_DEBUG, "%s %s -> %d (%lld us)",
			  luafs_op_names[c->op], c->path ? c->path : "-",
			  c->result, now_us() - start);
	return c->result;
}
