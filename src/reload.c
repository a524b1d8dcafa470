/*
 * reload.c: hot reload.  A thread of its own watches the script's
 * directory with inotify (editors replace files by rename, so the
 * directory, not the file) for changes of the script and of the modules
 * it required from there, and waits for the reload signal.  A burst of
 * events is coalesced: the reload runs once the directory has been quiet
 * for RELOAD_QUIET_MS and no watched file that was written is still open
 * for writing (up to RELOAD_WRITER_MS, for a writer that never closes).
 *
 * The script is read once; its text first runs in a scratch state, off
 * the request path, so a script that fails there never holds up a
 * request.  Then the reload thread checks the states out one at a time
 * (each waits for its request in flight, which finishes on the old code)
 * and loads the new code beside the old.  Only when every state has it is
 * the reload published, in one step: each state switches at its next
 * checkout, so every request that starts from then on runs the new code,
 * in all states, and no request sees a mix.  Holding one state at a time
 * means a callback that waits for another request (a blocking lock that
 * another file's release frees) never deadlocks a reload.
 */
#include "luafs.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <time.h>
#include <unistd.h>

#define RELOAD_QUIET_MS 100
#define RELOAD_WRITER_MS 2000
#define RELOAD_LOAD_S 10	/* the longest a reload may run Lua code */
#define RELOAD_WRITERS 8	/* .lua files tracked as open for writing */

static int wake_fds[2] = { -1, -1 };
static int inotify_fd = -1;
static pthread_t thread;
static int running;
static volatile int stopping;
static double load_deadline;

static double now_ms(void)
{
	return luafs_now() * 1e3;
}

/*
 * Runs now and then in the Lua code that a reload loads: gives up a chunk
 * that loops, or that is still loading when the host unmounts.
 */
static void load_hook(lua_State *L, lua_Debug *ar)
{
	(void)ar;
	if (stopping)
		luafs_hook_error(L, "luafs is unmounting");
	if (now_ms() > load_deadline)
		luafs_hook_error(L, "still loading after "
				 LUAFS_STR(RELOAD_LOAD_S) " s");
}

/* Operations the reload adds or drops, against the code serving now. */
static void log_changed_ops(const struct luafs_state *s)
{
	int op, before, after;

	for (op = 0; op < OP_COUNT; op++) {
		before = s->code.ops[op] != LUA_NOREF;
		after = s->next.ops[op] != LUA_NOREF;
		if (before == after || op == OP_init)
			continue;
		if (after && !(luafs_host.present >> op & 1))
			luafs_log(LOG_WARNING, "reload: '%s' was not defined "
				  "at mount, so libfuse does not call it; "
				  "remount to add it", luafs_op_names[op]);
		else if (!after)
			luafs_log(LOG_WARNING, "reload: '%s' is gone; it "
				  "answers ENOSYS now", luafs_op_names[op]);
	}
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

	luafs_set_generation(L, s->next.generation);
	luafs_script_drop_modules(L);
	luafs_script_run(L, s, s->next.ops);
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

/* Drops prepared code that will not serve, and puts the old modules back. */
static void discard(struct luafs_state *s)
{
	int top = lua_gettop(s->L);

	lua_pushcfunction(s->L, luafs_script_restore_modules);
	if (lua_pcall(s->L, 0, 0, 0) != LUA_OK)
		luafs_log(LOG_WARNING, "reload: cannot restore the modules "
			  "of state %d: %s", s->index + 1,
			  lua_tostring(s->L, -1));
	lua_settop(s->L, top);
	unref_code(s->L, &s->next);
}

/*
 * Loads the reloaded code (check_script read it) beside the old, in
 * a state the caller checked out; on failure *err says why.
 */
static int prepare(struct luafs_state *s, lua_Hook hook, char **err)
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
	luafs_set_generation(L, s->code.generation);
	if (res == LUA_OK)
		return 0;
	*err = luafs_error_text(L);
	lua_settop(L, top);
	discard(s);
	return -1;
}

/*
 * Makes the published code the state's code.  Its owner does it at
 * checkout, so a request in flight finishes on the code it started with.
 * Clearing references never allocates, so this is safe unprotected.
 */
void luafs_reload_switch(struct luafs_state *s)
{
	int i;

	unref_code(s->L, &s->code);
	s->code = s->next;
	for (i = 0; i < OP_COUNT; i++)
		s->next.ops[i] = LUA_NOREF;
	s->next.table = LUA_NOREF;
	s->next.generation = 0;
	luafs_set_generation(s->L, s->code.generation);
	luafs_script_keep_modules(s->L);
}

/*
 * Ends a reload.  When every state has prepared the new code (ok): from
 * now on each checkout switches its state first, so every request that
 * starts sees the new code, in all states at once.
 */
static void publish(int ok)
{
	if (ok) {
		__atomic_add_fetch(&luafs_host.generation, 1,
				   __ATOMIC_RELEASE);
	}
	luafs_timers_reloaded(ok);
	luafs_script_free();
}

/*
 * Reads the script again and runs it in a state of its own, to check it
 * before a reload touches the pool.  Lua code in it calls hook now and
 * then, so that a chunk stuck in a loop can be given up.
 */
static int check_script(lua_Hook hook, char **err)
{
	struct luafs_state s;

	if (luafs_script_read(err) != 0)
		return -1;
	memset(&s, 0, sizeof(s));
	if (luafs_state_load(&s, -1, luafs_host.generation + 1, hook,
			     err) != 0) {
		luafs_script_free();
		return -1;
	}
	luafs_state_close(&s);
	return 0;
}

/* Logs why, on one line: require's messages span several. */
static void reload_failed(char *err)
{
	char line[3072];

	luafs_flatten(line, sizeof(line), err ? err : "out of memory", " ");
	luafs_log(LOG_ERR, "reload failed, the old code keeps serving: %s",
		  line);
	free(err);
}

static void reload(void)
{
	struct luafs_state *s;
	double start = now_ms(), swap;
	char *err = NULL;
	int i, n = luafs_host.nstates, res = 0;

	load_deadline = start + RELOAD_LOAD_S * 1e3;
	if (check_script(load_hook, &err) != 0) {
		luafs_stats_reload(0);
		reload_failed(err);
		return;
	}
	swap = now_ms();
	for (i = 0; i < n && res == 0; i++) {
		s = luafs_state_acquire(i, 0);
		res = prepare(s, load_hook, &err);
		if (res == 0 && i == 0)
			log_changed_ops(s);
		luafs_state_release(s);
	}
	if (res != 0) {
		while (--i > 0) {
			s = luafs_state_acquire(i - 1, 0);
			discard(s);
			luafs_state_release(s);
		}
		publish(0);
		luafs_stats_reload(0);
		reload_failed(err);
		return;
	}
	publish(1);
	luafs_stats_reload(1);
	luafs_log(LOG_NOTICE, "reloaded %s: generation %d, checked in %.1f ms, "
		  "swapped in %.1f ms", luafs_host.script,
		  luafs_host.generation, swap - start, now_ms() - swap);
}

/*
 * The .lua files written to and not yet closed: a reload waits for them,
 * so that it reads what the writer meant, not half of it.
 */
static char writers[RELOAD_WRITERS][NAME_MAX + 1];

static void writer_mark(const char *name, int open)
{
	int i, empty = -1;

	for (i = 0; i < RELOAD_WRITERS; i++) {
		if (strcmp(writers[i], name) == 0) {
			if (!open)
				writers[i][0] = '\0';
			return;
		}
		if (writers[i][0] == '\0' && empty < 0)
			empty = i;
	}
	if (open && empty >= 0)
		strcpy(writers[empty], name);
}

static int writers_open(void)
{
	int i;

	for (i = 0; i < RELOAD_WRITERS; i++)
		if (writers[i][0] != '\0')
			return 1;
	return 0;
}

static void writers_forget(void)
{
	memset(writers, 0, sizeof(writers));
}

/*
 * The files whose change reloads: the script and the modules that
 * require found beside it (luafs_reload_watch_file), by name in the
 * script's directory.  Other files there (a spec, a scratch file) do not.
 */
#define RELOAD_FILES 64
static pthread_mutex_t files_lock = PTHREAD_MUTEX_INITIALIZER;
static char files[RELOAD_FILES][NAME_MAX + 1];
static int nfiles;

void luafs_reload_watch_file(const char *path)
{
	const char *name = strrchr(path, '/');
	int i;

	name = name ? name + 1 : path;
	if (strlen(name) > NAME_MAX)
		return;
	pthread_mutex_lock(&files_lock);
	for (i = 0; i < nfiles && strcmp(files[i], name) != 0; i++)
		;
	if (i == nfiles && nfiles < RELOAD_FILES)
		strcpy(files[nfiles++], name);
	pthread_mutex_unlock(&files_lock);
}

static int watched(const char *name)
{
	int i, found = 0;

	pthread_mutex_lock(&files_lock);
	for (i = 0; i < nfiles && !found; i++)
		found = strcmp(files[i], name) == 0;
	pthread_mutex_unlock(&files_lock);
	return found;
}

/* Whether the inotify events waiting name the script or one of its modules. */
static int lua_file_changed(void)
{
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	const struct inotify_event *ev;
	ssize_t len;
	size_t nl;
	int changed = 0;
	char *p;

	while ((len = read(inotify_fd, buf, sizeof(buf))) > 0)
		for (p = buf; p < buf + len; p += sizeof(*ev) + ev->len) {
			ev = (const struct inotify_event *)p;
			nl = ev->len ? strlen(ev->name) : 0;
			if (nl == 0 || nl > NAME_MAX)
				continue;
			if (!watched(ev->name)) {
				if (__atomic_load_n(&luafs_host.trace,
						    __ATOMIC_RELAXED) &&
				    (ev->mask & (IN_CLOSE_WRITE | IN_MOVED_TO)))
					luafs_log(LOG_INFO, "trace: reload "
						  "ignores %s, which is not "
						  "the script nor one of its "
						  "modules", ev->name);
				continue;
			}
			changed = 1;
			if (ev->mask & IN_MODIFY)
				writer_mark(ev->name, 1);
			if (ev->mask & (IN_CLOSE_WRITE | IN_MOVED_TO))
				writer_mark(ev->name, 0);
		}
	return changed;
}

static void *watcher(void *arg)
{
	struct pollfd fds[2] = {
		{ .fd = wake_fds[0], .events = POLLIN },
		{ .fd = inotify_fd, .events = POLLIN },
	};
	double first = 0;
	int pending = 0, n;
	char c;

	(void)arg;
	for (;;) {
		n = poll(fds, inotify_fd >= 0 ? 2 : 1,
			 pending ? RELOAD_QUIET_MS : -1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n == 0 && pending) {
			if (writers_open() &&
			    now_ms() - first < RELOAD_WRITER_MS)
				continue;
			pending = 0;
			writers_forget();
			reload();
			continue;
		}
		if (fds[0].revents & POLLIN) {
			while (read(wake_fds[0], &c, 1) == 1) {
				if (c == 'q')
					return NULL;
				pending = 0;
				reload();
			}
		}
		if (inotify_fd >= 0 && (fds[1].revents & POLLIN) &&
		    lua_file_changed() && !pending) {
			pending = 1;
			first = now_ms();
		}
	}
}

/* Async-signal-safe: the reload signal's handler calls it. */
void luafs_reload_request(void)
{
	int saved = errno;

	if (wake_fds[1] >= 0 && write(wake_fds[1], "r", 1) < 0)
		errno = saved;
	errno = saved;
}

int luafs_reload_start(int watch)
{
	char *copy;

	if (pipe2(wake_fds, O_NONBLOCK | O_CLOEXEC) != 0) {
		luafs_log(LOG_ERR, "reload: %s", strerror(errno));
		return -1;
	}
	luafs_reload_watch_file(luafs_host.script);
	if (watch) {
		copy = strdup(luafs_host.script);
		inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
		if (copy == NULL || inotify_fd < 0 ||
		    inotify_add_watch(inotify_fd, dirname(copy),
				      IN_CLOSE_WRITE | IN_MOVED_TO |
				      IN_MODIFY | IN_CREATE) < 0) {
			luafs_log(LOG_WARNING, "reload: cannot watch the "
				  "script's directory (%s); reload with "
				  "SIGUSR1", strerror(errno));
			if (inotify_fd >= 0)
				close(inotify_fd);
			inotify_fd = -1;
		}
		free(copy);
	}
	if (pthread_create(&thread, NULL, watcher, NULL) != 0) {
		luafs_log(LOG_ERR, "reload: cannot start its thread");
		return -1;
	}
	pthread_setname_np(thread, "luafs-reload");
	running = 1;
	return 0;
}

void luafs_reload_stop(void)
{
	if (!running)
		return;
	stopping = 1;
	if (write(wake_fds[1], "q", 1) != 1)
		pthread_cancel(thread);
	pthread_join(thread, NULL);
	running = 0;
	close(wake_fds[0]);
	close(wake_fds[1]);
	wake_fds[0] = wake_fds[1] = -1;
	if (inotify_fd >= 0)
		close(inotify_fd);
	inotify_fd = -1;
}
