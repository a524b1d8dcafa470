/*
 * timers.c: luafs.after, luafs.every and luafs.watch, the code that a
 * script runs between requests.
 *
 * A job is a function that a state registered, to run after a delay,
 * every interval, or whenever a descriptor is ready.  It stays in that
 * state (the registry holds its handle, whose user value is the function)
 * and runs there, so that what it closes over, open handles included, is
 * where it was.  One thread of the host waits for the next due time and
 * for the descriptors (epoll, one-shot, armed again after each run) and
 * runs the jobs one at a time, each as a request runs: luafs_call in the
 * job's state, under call_timeout and lua_memory, its errors logged.
 *
 * A job belongs to the load of the script that registered it: a
 * published reload cancels the older ones, a failed reload its own, and
 * one that a reload registers waits until that reload is published.  A
 * job cancelled from outside its state (by a reload) keeps its reference
 * until the thread can check that state out and free it.
 *
 * The thread starts with the first job, and not before the host has
 * daemonized; a request never looks at jobs.  The jobs are a list that
 * each wake-up scans: scripts keep a few.
 */
#include "luafs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

/* How long unmounting waits for a job that runs before stopping it. */
#define STOP_GRACE_S 2

static const struct luafs_type timer_type = { "luafs.Timer", LUAFS_T_TIMER };
static const struct luafs_type watch_type = { "luafs.Watch", LUAFS_T_WATCH };

struct job {
	struct job *next;
	uint64_t id;		/* never 0, never reused */
	int state;		/* index of the state that registered it */
	int generation;		/* of the code that registered it */
	int ref;		/* its handle in the state's registry */
	int dead;		/* cancelled, or an after that ran */
	int running;
	double due;		/* a timer's next run */
	double interval;	/* every's period; 0 for after and watches */
	int fd;			/* a watch's own duplicate, else -1 */
	uint32_t events;	/* a watch's EPOLLIN and EPOLLOUT */
	uint32_t ready;		/* what epoll reported, not yet run */
	char what[128];		/* the log's name for it */
};

/* The userdata a script holds; 0 once it can no longer run. */
struct handle {
	uint64_t id;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct job *jobs;
static uint64_t last_id;
static int epfd = -1, wakefd = -1;
static pthread_t thread;
static int allowed, running, stopping;
static int busy_state = -1;	/* where a job runs now, for stop */

static int published(void)
{
	return __atomic_load_n(&luafs_host.generation, __ATOMIC_ACQUIRE);
}

static struct job *find(uint64_t id)
{
	struct job *j;

	for (j = jobs; j != NULL && j->id != id; j = j->next)
		;
	return j;
}

static void wake(void)
{
	uint64_t one = 1;

	if (wakefd >= 0 && write(wakefd, &one, sizeof(one)) < 0 &&
	    errno != EAGAIN)
		luafs_log(LOG_WARNING, "timers: cannot wake: %m");
}

/* A watch waits in the epoll set for one event at a time. */
static void arm(struct job *j, int op)
{
	struct epoll_event ev = {
		.events = j->events | EPOLLONESHOT, .data.u64 = j->id,
	};

	/* A reload's publication may arm what its new code armed already. */
	if (j->fd >= 0 && epoll_ctl(epfd, op, j->fd, &ev) != 0 &&
	    errno != EEXIST)
		luafs_log(LOG_ERR, "%s: cannot watch: %m", j->what);
}

/* Under the lock; the reference waits for the job's state. */
static void kill_job(struct job *j)
{
	j->dead = 1;
	j->ready = 0;
	if (j->fd >= 0) {
		epoll_ctl(epfd, EPOLL_CTL_DEL, j->fd, NULL);
		close(j->fd);
		j->fd = -1;
	}
}

/* Frees the jobs that are dead, not running and hold no reference. */
static void reap(void)
{
	struct job **p = &jobs, *j;

	while ((j = *p) != NULL) {
		if (j->dead && !j->running && j->ref == LUA_NOREF) {
			*p = j->next;
			free(j);
		} else {
			p = &j->next;
		}
	}
}

/*
 * In state index, which the caller holds: frees the references of its
 * dead jobs.  luaL_unref never allocates, so it cannot raise.
 */
static void unref_dead(lua_State *L, int index)
{
	struct job *j;

	for (j = jobs; j != NULL; j = j->next)
		if (j->dead && j->state == index && j->ref != LUA_NOREF) {
			luaL_unref(L, LUA_REGISTRYINDEX, j->ref);
			j->ref = LUA_NOREF;
		}
}

struct run_args {
	uint64_t id;		/* the job, or 0 to free references only */
	uint32_t ready;
};

/* The events a watch's function receives: "r", "w" or "rw". */
static void push_ready(lua_State *L, const struct job *j, uint32_t ready)
{
	int r = (j->events & EPOLLIN) &&
		(ready & (EPOLLIN | EPOLLHUP | EPOLLERR | EPOLLRDHUP));
	int w = (j->events & EPOLLOUT) && (ready & (EPOLLOUT | EPOLLERR));

	lua_pushstring(L, r && w ? "rw" : r ? "r" : "w");
}

/*
 * The body of a job's call.  The job is looked up again, in its state:
 * a cancel or a reload may have come between the thread's choice and
 * now, and then its reference may already name something else.
 */
static int run_body(lua_State *L)
{
	struct luafs_call *c = luafs_current;
	struct run_args *a = c->args;
	struct job *j;
	int ref = LUA_NOREF, once = 0, nargs = 1, watch = 0;

	pthread_mutex_lock(&lock);
	unref_dead(L, c->st->index);
	j = a->id ? find(a->id) : NULL;
	if (j != NULL && !j->dead && j->generation == published()) {
		ref = j->ref;
		watch = j->fd >= 0;
		once = !watch && j->interval == 0;
		if (once) {
			j->dead = 1;
			j->ref = LUA_NOREF;
		}
	}
	pthread_mutex_unlock(&lock);
	if (ref == LUA_NOREF)
		return 0;
	lua_rawgeti(L, LUA_REGISTRYINDEX, ref);		/* the handle */
	if (once)
		luaL_unref(L, LUA_REGISTRYINDEX, ref);
	lua_getiuservalue(L, -1, 1);			/* its function */
	lua_insert(L, -2);
	if (watch) {
		push_ready(L, j, a->ready);
		nargs++;
	}
	lua_call(L, nargs, 0);
	return 0;
}

/* Runs job j (or frees the references of state, with j NULL), unlocked. */
static void run(struct job *j, int state)
{
	char message[LUAFS_MESSAGE_MAX] = "", what[sizeof(j->what)] = "";
	struct run_args a = { 0, 0 };
	struct luafs_call c = {
		.op = OP_COUNT, .pin = state + 1, .args = &a,
		.message = message,
	};
	double now;

	if (j != NULL) {
		a.id = j->id;
		a.ready = j->ready;
		j->ready = 0;
		j->running = 1;
		memcpy(what, j->what, sizeof(what));
		c.path = what;
		if (j->interval > 0) {
			now = luafs_now();
			j->due += j->interval;
			if (j->due <= now)	/* late: no burst to catch up */
				j->due = now + j->interval;
		}
	}
	busy_state = state;
	pthread_mutex_unlock(&lock);
	/* A raised luafs.error leaves its message, and no log line. */
	if (luafs_call(&c, run_body) < 0 && *message)
		luafs_log(LOG_ERR, "background %s: %s", what, message);
	pthread_mutex_lock(&lock);
	busy_state = -1;
	if (j == NULL)
		return;
	j->running = 0;
	if (!j->dead && j->fd >= 0)
		arm(j, EPOLL_CTL_MOD);
}

/*
 * The next thing to do, under the lock: a dead job's reference to free
 * first, then a ready watch or a due timer, else NULL with *timeout set
 * to the milliseconds until the next timer (-1: none).
 */
static struct job *next_job(int *free_refs, int *timeout)
{
	int g = published();
	double now = luafs_now(), first = 0, ms;
	struct job *j, *due = NULL;

	*free_refs = 0;
	for (j = jobs; j != NULL; j = j->next) {
		if (j->dead) {
			if (j->ref != LUA_NOREF && !j->running) {
				*free_refs = 1;
				return j;
			}
			continue;
		}
		if (j->generation != g)
			continue;
		if (j->ready)
			return j;
		if (j->fd < 0 && (due == NULL || j->due < first)) {
			first = j->due;
			due = j;
		}
	}
	if (due != NULL && first <= now)
		return due;
	/* Rounded up, so that no timer runs early; at most a day. */
	ms = (first - now) * 1e3;
	*timeout = due == NULL ? -1 : ms >= 86400e3 ? 86400000 :
		   (int)ms + ((int)ms < ms);
	return NULL;
}

static void *runner(void *arg)
{
	struct epoll_event evs[16];
	struct job *j;
	uint64_t count;
	int n, i, timeout, free_refs;

	(void)arg;
	pthread_mutex_lock(&lock);
	while (!stopping) {
		j = next_job(&free_refs, &timeout);
		if (j != NULL) {
			run(free_refs ? NULL : j, j->state);
			reap();
			continue;
		}
		pthread_mutex_unlock(&lock);
		n = epoll_wait(epfd, evs, 16, timeout);
		pthread_mutex_lock(&lock);
		for (i = 0; i < n; i++) {
			if (evs[i].data.u64 == 0) {
				if (read(wakefd, &count, sizeof(count)) < 0 &&
				    errno != EAGAIN)
					luafs_log(LOG_WARNING, "timers: %m");
			} else if ((j = find(evs[i].data.u64)) != NULL &&
				   !j->dead) {
				j->ready |= evs[i].events;
			}
		}
	}
	pthread_mutex_unlock(&lock);
	return NULL;
}

/* Under the lock: the descriptors, at the first job. */
static int open_fds(void)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = 0 };

	if (epfd >= 0)
		return 0;
	epfd = epoll_create1(EPOLL_CLOEXEC);
	wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (epfd >= 0 && wakefd >= 0 &&
	    epoll_ctl(epfd, EPOLL_CTL_ADD, wakefd, &ev) == 0)
		return 0;
	if (epfd >= 0)
		close(epfd);
	if (wakefd >= 0)
		close(wakefd);
	epfd = wakefd = -1;
	return -1;
}

/* Under the lock. */
static void start_thread(void)
{
	if (running || !allowed || stopping || jobs == NULL)
		return;
	if (pthread_create(&thread, NULL, runner, NULL) != 0) {
		luafs_log(LOG_ERR, "timers: cannot start their thread: %m");
		return;
	}
	pthread_setname_np(thread, "luafs-timers");
	running = 1;
}

/*
 * The generation of the code that calls: a callback's, or while the
 * chunk runs, the load's (a reload's while it prepares the state).
 */
static int caller_generation(int index)
{
	if (luafs_current != NULL)
		return luafs_current->st->code.generation;
	if (luafs_host.states != NULL &&
	    luafs_host.states[index].next.generation != 0)
		return luafs_host.states[index].next.generation;
	return published();
}

static int l_cancel(lua_State *L);
static int l_tostring(lua_State *L);

/* The handles' metatable, made at the state's first job of its kind. */
static void open_type(lua_State *L, const struct luafs_type *t)
{
	static const luaL_Reg methods[] = {
		{"cancel", l_cancel},
		{NULL, NULL}
	};

	if (luafs_newmetatable(L, t)) {
		lua_pushcfunction(L, l_tostring);
		lua_setfield(L, -2, "__tostring");
		lua_pushcfunction(L, l_cancel);
		lua_setfield(L, -2, "__close");
		luaL_newlib(L, methods);
		lua_setfield(L, -2, "__index");
	}
	lua_pop(L, 1);
}

/*
 * Makes the handle for function fn, and the job behind it unless the
 * state is the scratch state that checks a reload, whose jobs would never
 * run.  fd >= 0: a watch.  Returns 1 (the handle) or a failure.
 */
static int add(lua_State *L, int fn, const char *kind, double delay,
	       double interval, int fd, uint32_t events)
{
	int index = luafs_pool_index(L);
	struct handle *h;
	struct job *j;
	lua_Debug ar;
	int ref, e;

	luaL_checktype(L, fn, LUA_TFUNCTION);
	open_type(L, fd >= 0 ? &watch_type : &timer_type);
	h = lua_newuserdatauv(L, sizeof(*h), 1);
	h->id = 0;
	luafs_setmetatable(L, fd >= 0 ? &watch_type : &timer_type);
	lua_pushvalue(L, fn);
	lua_setiuservalue(L, -2, 1);
	if (index < 0)
		return 1;
	lua_pushvalue(L, fn);
	lua_getinfo(L, ">S", &ar);
	lua_pushvalue(L, -1);
	ref = luaL_ref(L, LUA_REGISTRYINDEX);
	j = calloc(1, sizeof(*j));
	if (j == NULL) {
		luaL_unref(L, LUA_REGISTRYINDEX, ref);
		return luaL_error(L, "out of memory");
	}
	j->ref = ref;
	j->state = index;
	j->generation = caller_generation(index);
	j->interval = interval;
	j->due = luafs_now() + delay;
	j->events = events;
	j->fd = -1;
	if (fd >= 0)
		snprintf(j->what, sizeof(j->what), "luafs.%s(%d, %s:%d)", kind,
			 fd, ar.short_src, ar.linedefined);
	else
		snprintf(j->what, sizeof(j->what), "luafs.%s(%g, %s:%d)", kind,
			 interval > 0 ? interval : delay, ar.short_src,
			 ar.linedefined);
	pthread_mutex_lock(&lock);
	if (open_fds() != 0 ||
	    (fd >= 0 && (j->fd = fcntl(fd, F_DUPFD_CLOEXEC, 3)) < 0)) {
		e = errno;
		pthread_mutex_unlock(&lock);
		luaL_unref(L, LUA_REGISTRYINDEX, ref);
		free(j);
		lua_pushnil(L);
		lua_pushfstring(L, "luafs.%s: %s", kind, strerror(e));
		lua_pushinteger(L, e);
		return 3;
	}
	j->id = ++last_id;
	j->next = jobs;
	jobs = j;
	if (j->fd >= 0 && j->generation == published())
		arm(j, EPOLL_CTL_ADD);
	start_thread();
	wake();
	h->id = j->id;
	pthread_mutex_unlock(&lock);
	return 1;
}

static double check_seconds(lua_State *L, int arg)
{
	double s = luaL_checknumber(L, arg);

	luaL_argcheck(L, s >= 0 && s < 1e9, arg,
		      "seconds from 0 to 1e9 expected");
	return s;
}

/* luafs.after(seconds, f) -> a luafs.Timer that calls f(timer) once. */
int luafs_timers_after(lua_State *L)
{
	return add(L, 2, "after", check_seconds(L, 1), 0, -1, 0);
}

/* luafs.every(seconds, f) -> a luafs.Timer that calls f(timer) each period. */
int luafs_timers_every(lua_State *L)
{
	double s = check_seconds(L, 1);

	luaL_argcheck(L, s > 0, 1, "a period above 0 expected");
	return add(L, 2, "every", s, s, -1, 0);
}

/* luafs.watch(fd, "r"|"w"|"rw", f) -> a luafs.Watch: f(watch, ready). */
int luafs_timers_watch(lua_State *L)
{
	lua_Integer fd = luaL_checkinteger(L, 1);
	const char *how = luaL_checkstring(L, 2);
	uint32_t events = 0;

	luaL_argcheck(L, fd >= 0 && fd <= INT32_MAX, 1, "not a descriptor");
	if (strcmp(how, "r") == 0 || strcmp(how, "rw") == 0)
		events |= EPOLLIN;
	if (strcmp(how, "w") == 0 || strcmp(how, "rw") == 0)
		events |= EPOLLOUT;
	luaL_argcheck(L, events != 0, 2, "\"r\", \"w\" or \"rw\" expected");
	return add(L, 3, "watch", 0, 0, (int)fd, events);
}

static struct handle *check_handle(lua_State *L)
{
	struct handle *h = luafs_testudata(L, 1, &timer_type);

	return h ? h : luafs_checkudata(L, 1, &watch_type);
}

/*
 * t:cancel(): the job never runs again (one that runs now finishes).  A
 * handle lives only in its own state, which runs this: the reference can
 * go at once.
 */
static int l_cancel(lua_State *L)
{
	struct handle *h = check_handle(L);
	int index = luafs_pool_index(L);
	struct job *j;

	pthread_mutex_lock(&lock);
	if ((j = find(h->id)) != NULL) {
		if (!j->dead)
			kill_job(j);
		if (j->state == index)
			unref_dead(L, index);
		reap();
	}
	h->id = 0;
	pthread_mutex_unlock(&lock);
	return 0;
}

static int l_tostring(lua_State *L)
{
	struct handle *h = check_handle(L);
	const char *name = luafs_testudata(L, 1, &timer_type) ?
			   timer_type.name : watch_type.name;
	struct job *j;
	int live;

	pthread_mutex_lock(&lock);
	j = find(h->id);
	live = j != NULL && !j->dead;
	pthread_mutex_unlock(&lock);
	lua_pushfstring(L, "%s (%s)", name, live ? "active" : "done");
	return 1;
}

/* After daemonizing: jobs may run from now on. */
void luafs_timers_start(void)
{
	pthread_mutex_lock(&lock);
	allowed = 1;
	start_thread();
	pthread_mutex_unlock(&lock);
}

/*
 * After a reload: ok, the published code's jobs run and the older ones
 * are cancelled; failed, the jobs that the reload registered are.
 */
void luafs_timers_reloaded(int ok)
{
	int g = published();
	struct job *j;

	pthread_mutex_lock(&lock);
	for (j = jobs; j != NULL; j = j->next) {
		if (j->dead)
			continue;
		if (ok ? j->generation < g : j->generation > g)
			kill_job(j);
		else if (ok && j->generation == g && j->fd >= 0)
			arm(j, EPOLL_CTL_ADD);
	}
	wake();
	pthread_mutex_unlock(&lock);
}

static void stop_hook(lua_State *L, lua_Debug *ar)
{
	(void)ar;
	luafs_hook_error(L, "interrupted: luafs is unmounting");
}

/*
 * Before destroy: no job starts any more, the one that runs gets a grace
 * period, then its Lua code is stopped as a request's is on unmount.
 */
void luafs_timers_stop(void)
{
	struct timespec until;
	struct job *j;
	int was_running, state;

	pthread_mutex_lock(&lock);
	stopping = 1;
	was_running = running;
	wake();
	pthread_mutex_unlock(&lock);
	if (was_running) {
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += STOP_GRACE_S;
		if (pthread_timedjoin_np(thread, NULL, &until) != 0) {
			pthread_mutex_lock(&lock);
			state = busy_state;
			if (state >= 0)
				lua_sethook(luafs_host.states[state].L,
					    stop_hook, LUA_MASKCALL |
					    LUA_MASKRET | LUA_MASKCOUNT, 1);
			pthread_mutex_unlock(&lock);
			pthread_join(thread, NULL);
			if (state >= 0)
				lua_sethook(luafs_host.states[state].L, NULL,
					    0, 0);
		}
	}
	pthread_mutex_lock(&lock);
	running = 0;
	while ((j = jobs) != NULL) {
		jobs = j->next;
		if (j->fd >= 0)
			close(j->fd);
		free(j);
	}
	if (epfd >= 0)
		close(epfd);
	if (wakefd >= 0)
		close(wakefd);
	epfd = wakefd = -1;
	pthread_mutex_unlock(&lock);
}
