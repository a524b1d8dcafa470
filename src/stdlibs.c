/*
 * stdlibs.c: what luafs changes in Lua's standard libraries.
 *
 * os.exit would end the host in the middle of a request, with the mount
 * left behind (its device closed, every later access failing with
 * ENOTCONN): here it raises an error instead, which the request answers
 * with EIO and a log line, like any other error of the script.
 *
 * os.execute and io.popen start their programs with posix_spawn, as
 * glibc's do, but with an empty signal mask and every signal at its
 * default disposition: the thread that runs a callback blocks the signals
 * that unmount (libfuse's workers do) and the host ignores SIGPIPE, and a
 * program started with those would ignore kill -TERM and never see a
 * broken pipe.  (glibc's posix_spawn still leaves its two internal
 * signals ignored, which no program can use.)  The results are those of
 * Lua's own functions.
 */
#include "luafs.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

static int os_exit(lua_State *L)
{
	return luaL_error(L, "os.exit: a luafs script cannot end the host; "
			  "raise an error instead (in init, it stops the "
			  "mount), or unmount the filesystem "
			  "(fusermount3 -u MOUNTPOINT)");
}

/* Starts /bin/sh -c cmd; stdio_fd, if not -1, becomes its fd target. */
static int spawn_shell(const char *cmd, int stdio_fd, int target,
		       pid_t *pid)
{
	char *argv[] = { "sh", "-c", (char *)cmd, NULL };
	posix_spawn_file_actions_t actions;
	posix_spawnattr_t attr;
	sigset_t set;
	int res;

	posix_spawnattr_init(&attr);
	posix_spawn_file_actions_init(&actions);
	sigemptyset(&set);
	posix_spawnattr_setsigmask(&attr, &set);
	sigfillset(&set);
	posix_spawnattr_setsigdefault(&attr, &set);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK |
				 POSIX_SPAWN_SETSIGDEF);
	if (stdio_fd >= 0)
		posix_spawn_file_actions_adddup2(&actions, stdio_fd, target);
	res = posix_spawn(pid, "/bin/sh", &actions, &attr, argv, environ);
	posix_spawn_file_actions_destroy(&actions);
	posix_spawnattr_destroy(&attr);
	return res;
}

/* The child's status, with errno 0 as luaL_execresult wants it. */
static int wait_child(pid_t pid)
{
	int status;

	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -1;
	errno = 0;
	return status;
}

/* os.execute([command]), as Lua's. */
static int os_execute(lua_State *L)
{
	const char *cmd = luaL_optstring(L, 1, NULL);
	pid_t pid;
	int res;

	if (cmd == NULL) {
		lua_pushboolean(L, access("/bin/sh", X_OK) == 0);
		return 1;
	}
	res = spawn_shell(cmd, -1, -1, &pid);
	if (res != 0) {
		errno = res;
		return luaL_execresult(L, -1);
	}
	return luaL_execresult(L, wait_child(pid));
}

/* A stream of io.popen: Lua's file handle, and the program's pid. */
struct pipe_stream {
	luaL_Stream stream;	/* first: the io library reads it as its own */
	pid_t pid;
};

static int pipe_close(lua_State *L)
{
	struct pipe_stream *p = luaL_checkudata(L, 1, LUA_FILEHANDLE);

	fclose(p->stream.f);
	return luaL_execresult(L, wait_child(p->pid));
}

/* io.popen(command [, mode]), as Lua's: mode "r" or "w". */
static int io_popen(lua_State *L)
{
	const char *cmd = luaL_checkstring(L, 1);
	const char *mode = luaL_optstring(L, 2, "r");
	struct pipe_stream *p;
	int fds[2], mine, res;

	luaL_argcheck(L, (mode[0] == 'r' || mode[0] == 'w') && mode[1] == '\0',
		      2, "invalid mode");
	p = lua_newuserdatauv(L, sizeof(*p), 0);
	p->stream.closef = NULL;	/* a closed file until it is open */
	luaL_setmetatable(L, LUA_FILEHANDLE);
	if (pipe2(fds, O_CLOEXEC) != 0)
		return luaL_fileresult(L, 0, cmd);
	mine = mode[0] == 'r' ? 0 : 1;
	res = spawn_shell(cmd, fds[1 - mine], mine == 0 ? 1 : 0, &p->pid);
	close(fds[1 - mine]);
	if (res != 0) {
		close(fds[mine]);
		errno = res;
		return luaL_fileresult(L, 0, cmd);
	}
	p->stream.f = fdopen(fds[mine], mode);
	if (p->stream.f == NULL) {
		res = errno;
		close(fds[mine]);
		wait_child(p->pid);
		errno = res;
		return luaL_fileresult(L, 0, cmd);
	}
	p->stream.closef = pipe_close;
	return 1;
}

/* Replaces the functions above in a state whose libraries are open. */
void luafs_stdlibs_open(lua_State *L)
{
	lua_getglobal(L, "os");
	lua_pushcfunction(L, os_exit);
	lua_setfield(L, -2, "exit");
	lua_pushcfunction(L, os_execute);
	lua_setfield(L, -2, "execute");
	lua_getglobal(L, "io");
	lua_pushcfunction(L, io_popen);
	lua_setfield(L, -2, "popen");
	lua_pop(L, 2);
}
