/*
 * reload.c: hot reload.  A thread of its own watches the script's
 * directory with inotify (editors replace files by rename, so the
 * directory, not the file) and waits for the reload signal.  A burst of
 * events is coalesced: the reload runs once the directory has been quiet
 * for RELOAD_QUIET_MS.
 *
 * The new code first runs in a scratch state, off the request path; a
 * script that fails there never holds up a request.  Then the reload
 * thread checks every state out (requests in flight finish first, on the
 * old code), loads the new code beside the old in each, and only when all
 * succeeded swaps them all before giving the states back, so no request
 * sees a mix of old and new.
 */
#include "luafs.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <time.h>
#include <unistd.h>

#define RELOAD_QUIET_MS 100

static int wake_fds[2] = { -1, -1 };
static int inotify_fd = -1;
static pthread_t thread;
static int running;

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Operations a reload adds or drops, against those registered at mount. */
static void log_changed_ops(const struct luafs_state *s)
{
	int op, before, after;

	for (op = 0; op < OP_COUNT; op++) {
		before = luafs_host.present >> op & 1;
		after = s->next_ops[op] != LUA_NOREF;
		if (after && !before)
			luafs_log(LOG_WARNING, "reload: '%s' was not defined "
				  "at mount, so libfuse does not call it; "
				  "remount to add it", luafs_op_names[op]);
		else if (before && !after && op != OP_init)
			luafs_log(LOG_WARNING, "reload: '%s' is gone; it "
				  "answers ENOSYS now", luafs_op_names[op]);
	}
}

static void reload(void)
{
	struct luafs_state **held;
	double start = now_ms(), swap;
	char *err = NULL;
	int i, n = luafs_host.nstates, ok = 1;

	if (luafs_state_check(&err) != 0) {
		luafs_log(LOG_ERR, "reload failed, the old code keeps serving: "
			  "%s", err ? err : "out of memory");
		free(err);
		return;
	}
	held = calloc((size_t)n, sizeof(*held));
	if (held == NULL) {
		luafs_log(LOG_ERR, "reload failed: out of memory");
		return;
	}
	swap = now_ms();
	for (i = 0; i < n; i++)
		held[i] = luafs_state_acquire(i, 0);
	for (i = 0; i < n && ok; i++)
		ok = luafs_state_prepare(held[i], &err) == 0;
	if (ok) {
		log_changed_ops(held[0]);
		for (i = 0; i < n; i++)
			luafs_state_swap(held[i]);
		__atomic_add_fetch(&luafs_host.generation, 1, __ATOMIC_RELAXED);
	} else {
		for (i = 0; i < n; i++)
			luafs_state_discard(held[i]);
	}
	for (i = 0; i < n; i++)
		luafs_state_release(held[i]);
	free(held);
	if (!ok) {
		luafs_log(LOG_ERR, "reload failed, the old code keeps serving: "
			  "%s", err ? err : "out of memory");
		free(err);
		return;
	}
	luafs_log(LOG_NOTICE, "reloaded %s: generation %d, checked in %.1f ms, "
		  "swapped in %.1f ms", luafs_host.script,
		  luafs_host.generation, swap - start, now_ms() - swap);
}

/* Whether the inotify events waiting name a Lua file. */
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
			if (nl > 4 && strcmp(ev->name + nl - 4, ".lua") == 0)
				changed = 1;
		}
	return changed;
}

static void *watcher(void *arg)
{
	struct pollfd fds[2] = {
		{ .fd = wake_fds[0], .events = POLLIN },
		{ .fd = inotify_fd, .events = POLLIN },
	};
	int pending = 0, n;
	char c;

	(void)arg;
	for (;;) {
		n = poll(fds, inotify_fd >= 0 ? 2 : 1,
			 pending ? RELOAD_QUIET_MS : -1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n == 0 && pending) {
			pending = 0;
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
		    lua_file_changed())
			pending = 1;
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
	running = 1;
	return 0;
}

void luafs_reload_stop(void)
{
	if (!running)
		return;
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
