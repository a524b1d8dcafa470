/*
 * luafs.h: the one internal header of the luafs host.
 *
 * The host answers every FUSE request by calling a function from a Lua
 * script.  A request checks a Lua state out of the pool (pool.c), runs the
 * script's function under lua_pcall (call.c) through a thin shim per
 * operation (ops.c), and turns what the script returned into the reply.
 */
#ifndef LUAFS_H
#define LUAFS_H

#include "config.h"

#include <dirent.h>
#include <fuse.h>
#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>

/* Every operation a script may define, in the order of fuse_operations. */
#define LUAFS_OPS(X) \
	X(getattr) X(readlink) X(mknod) X(mkdir) X(unlink) X(rmdir) \
	X(symlink) X(rename) X(link) X(chmod) X(chown) X(truncate) \
	X(open) X(read) X(write) X(statfs) X(flush) X(release) X(fsync) \
	X(setxattr) X(getxattr) X(listxattr) X(removexattr) X(opendir) \
	X(readdir) X(releasedir) X(fsyncdir) X(init) X(destroy) X(access) \
	X(create) X(lock) X(utimens) X(bmap) X(ioctl) X(poll) X(write_buf) \
	X(read_buf) X(flock) X(fallocate) X(copy_file_range) X(lseek)

#define LUAFS_OP_ENUM(name) OP_##name,
enum luafs_op { LUAFS_OPS(LUAFS_OP_ENUM) OP_COUNT };
#undef LUAFS_OP_ENUM

extern const char *const luafs_op_names[OP_COUNT];

/* What one load of the script resolved: the code a state runs. */
struct luafs_code {
	int ops[OP_COUNT];	/* registry refs of the script's functions */
	int table;		/* registry ref of the table they came from */
	int generation;		/* 1 at mount, +1 per reload; 0: no code */
	int portable;		/* integer handles are kept in fh itself */
};

/* One Lua state that has loaded the script. */
struct luafs_state {
	lua_State *L;
	struct luafs_heap *heap;	/* its memory (heap.c) */
	struct luafs_extra *extra;	/* what its extra space points to */
	int index;		/* position in the pool, -1: a scratch state */
	struct luafs_code code;	/* what requests run */
	struct luafs_code next;	/* a reload's, until it takes over */
	int handles;		/* registry ref of the open-handle table */
	int lent[3];		/* registry refs that hold a call's lent objects */
	int wanted_states;	/* the script's "states" field, or 0 */
	struct {		/* the pool's bookkeeping (pool.c) */
		int busy;	/* checked out by a request */
		pid_t owner;	/* thread that checked it out, or 0 */
		int nhandles;	/* open handles, to spread new ones */
	} pool;
};

/* What the command line and the script decided; one per process. */
struct luafs_host {
	const char *script;	/* absolute path of the script */
	const char *mountpoint;	/* absolute path of the mountpoint */
	int script_argc;	/* arguments after "--" */
	char **script_argv;
	int foreground;
	int debug;
	int trace;		/* a log line per call (-o trace, --trace) */
	uint64_t present;	/* bit per operation the script defines */
	struct fuse *fuse;
	int nstates;
	struct luafs_state *states;
	pthread_mutex_t pool_lock;
	pthread_cond_t pool_free;
	int waiters;		/* threads waiting for a state */
	int init_failed;	/* init raised or returned a failure */
	volatile int started;	/* init has run: the filesystem serves */
	int generation;		/* 1 at mount, +1 per published reload */
	double call_timeout;	/* seconds a callback may run, 0: no limit */
	size_t lua_memory;	/* bytes each state may allocate, 0: no limit */
	int notify_fd;		/* start-up pipe to the waiting parent, or -1 */
};

extern struct luafs_host luafs_host;

/* log.c: one line per message, to stderr until daemonized, then syslog. */
void luafs_log(int priority, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void luafs_log_use_syslog(void);
void luafs_flatten(char *out, size_t size, const char *msg,
		   const char *sep);

/* The host's one clock: seconds on CLOCK_MONOTONIC. */
static inline double luafs_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* heap.c: the memory of one Lua state, a lua_Alloc and its account. */
struct luafs_heap *luafs_heap_new(void);
void *luafs_heap_alloc(void *ud, void *ptr, size_t osize, size_t nsize);
void luafs_heap_limit(struct luafs_heap *h, size_t limit);
size_t luafs_heap_used(const struct luafs_heap *h);
void luafs_heap_free(struct luafs_heap *h);

/* load.c: the script's text, loaded into a state; the modules beside it. */
int luafs_script_read(char **err);
void luafs_script_free(void);
int luafs_script_load(lua_State *L);
void luafs_script_run(lua_State *L, struct luafs_state *s, int *ops);
void luafs_script_drop_modules(lua_State *L);
int luafs_script_restore_modules(lua_State *L);
void luafs_script_keep_modules(lua_State *L);
char *luafs_error_text(lua_State *L);

/* pool.c: the states that serve, checked out per request. */
#define LUAFS_MAX_STATES 1024
int luafs_pool_open(int n);
void luafs_pool_close(void);
int luafs_state_load(struct luafs_state *s, int index, int generation,
		     lua_Hook hook, char **err);
void luafs_state_close(struct luafs_state *s);
struct luafs_state *luafs_state_acquire(int index, int from_request);
void luafs_state_release(struct luafs_state *s);
pid_t luafs_tid(void);
int luafs_pool_states(lua_State *L);
int luafs_pool_index(lua_State *L);
void luafs_pool_interrupt(void);
void luafs_pool_uninterrupt(void);

/* call.c: one request, from libfuse to the script and back. */
#define LUAFS_MAX_LENT 3	/* copy_file_range's two FileInfos, a BufVec */
_Static_assert(LUAFS_MAX_LENT == sizeof(((struct luafs_state *)0)->lent) /
	       sizeof(int), "a registry slot for each lent object");
#define LUAFS_MESSAGE_MAX 256
struct luafs_call {
	enum luafs_op op;	/* OP_COUNT: no request; the body finds its
				 * function, and path names it (timers.c) */
	const char *path;
	struct fuse_file_info *fi;	/* the request's, or NULL */
	void *args;		/* the operation's own (ops.c) */
	int pin;		/* 1 + index of the state to run in, or 0 */
	char *message;		/* if not NULL, gets a failure's message */
	/* For the trace: the arguments that matter, as text (ops.c). */
	void (*describe)(const struct luafs_call *c, char *out, size_t size);
	/* Set by luafs_call: */
	struct luafs_state *st;	/* the state it runs in */
	int result;		/* >= 0 success, < 0 -errno */
	int answered;		/* the script returned; the host reads */
	int refused;		/* the host refused what it returned */
	int timed_out;		/* the call_timeout hook stopped the call */
	int nlent;
	void **lent[LUAFS_MAX_LENT];	/* cleared when the call ends */
};
/* Where a body finds the first value that the script returned. */
#define LUAFS_FIRST_RESULT 1
int luafs_call(struct luafs_call *c, lua_CFunction body);
int luafs_invoke(lua_State *L, struct luafs_call *c);
void luafs_lend(lua_State *L, struct luafs_call *c, void **slot);
int luafs_hook_error(lua_State *L, const char *msg);
#define LUAFS_XSTR(x) #x
#define LUAFS_STR(x) LUAFS_XSTR(x)

/* ops.c: the fuse_operations table, NULL where the script has no function. */
void luafs_ops_fill(struct fuse_operations *ops, uint64_t present);

/* initconf.c: the conn and cfg objects that init receives. */
void luafs_conn_push(lua_State *L, struct fuse_conn_info *conn);
void luafs_config_push(lua_State *L, struct fuse_config *cfg);

/* stats.c: counters for `luafs --stats`, always on. */
uint64_t luafs_stats_ticks(void);
void luafs_stats_call(enum luafs_op op, int result, uint64_t ticks);
void luafs_stats_reload(int ok);
void luafs_stats_start(void);
void luafs_stats_reset(void);
size_t luafs_stats_report(char *buf, size_t size);

/* control.c: the socket that `luafs --stats` and `--trace` talk to. */
void luafs_control_start(void);
void luafs_control_stop(void);
int luafs_control_client(const char *mountpoint, const char *cmd);

/* signals.c: unmount on SIGINT, SIGTERM, SIGHUP; reload on SIGUSR1. */
void luafs_signals_set(void);
void luafs_signals_serving(void);
void luafs_signals_default(void);
void luafs_signals_block(void);

/* main.c: tells a waiting parent that start-up is over. */
void luafs_host_started(void);

/* mountpoint.c: the mountpoint's absolute path; stale mounts recovered. */
int luafs_mountpoint_check(const char *mnt, char *resolved);

/* fileinfo.c: luafs.FileInfo, valid for the duration of one call. */
void luafs_fileinfo_open(lua_State *L);
void luafs_fileinfo_push(lua_State *L, struct luafs_call *c,
			 struct fuse_file_info *fi, int writable);

/* reload.c: hot reload on a change of the script or on SIGUSR1. */
int luafs_reload_start(int watch);
void luafs_reload_stop(void);
void luafs_reload_request(void);
void luafs_reload_watch_file(const char *path);
void luafs_reload_switch(struct luafs_state *s);

/*
 * janitor.c: once requests stop, collects every state's garbage and trims
 * the C library's arenas.  Each request marks the current tick busy.
 */
extern int luafs_requested;
static inline void luafs_note_request(void)
{
	if (!__atomic_load_n(&luafs_requested, __ATOMIC_RELAXED))
		__atomic_store_n(&luafs_requested, 1, __ATOMIC_RELAXED);
}
void luafs_janitor_start(void);
void luafs_janitor_stop(void);

/* timers.c: luafs.after, luafs.every, luafs.watch, run between requests. */
int luafs_timers_after(lua_State *L);
int luafs_timers_every(lua_State *L);
int luafs_timers_watch(lua_State *L);
void luafs_timers_start(void);
void luafs_timers_reloaded(int ok);
void luafs_timers_stop(void);

/* stdlibs.c: os.exit raises; os.execute and io.popen reset signals. */
void luafs_stdlibs_open(lua_State *L);

/* shared.c: luafs.shared, one store that every state sees. */
void luafs_shared_open(lua_State *L);

/* bufvec.c: luafs.BufVec, for read_buf and write_buf. */
struct fuse_bufvec;
void luafs_bufvec_open(lua_State *L);
void luafs_bufvec_push_borrowed(lua_State *L, struct luafs_call *c,
				struct fuse_bufvec *bv);
struct fuse_bufvec *luafs_bufvec_take(lua_State *L, int idx, size_t max);

/* pollhandle.c: luafs.PollHandle, owned by Lua once poll receives it. */
void luafs_pollhandle_open(lua_State *L);
void luafs_pollhandle_push(lua_State *L, struct fuse_pollhandle *ph);
struct luafs_poll;	/* the handle, which luafs.shared may pass on */
struct luafs_poll *luafs_poll_check(lua_State *L, int idx);
void luafs_poll_push(lua_State *L, struct luafs_poll *p);
void luafs_poll_hold(struct luafs_poll *p);
void luafs_poll_unref(struct luafs_poll *p);

/* invalidate.c: luafs.invalidate_path, queued to run outside requests. */
int luafs_invalidate_path(lua_State *L);
void luafs_invalidate_stop(void);

/* handles.c: file handles that are any Lua value, kept until release. */
int luafs_handle_state(const struct fuse_file_info *fi);
void luafs_handle_set(lua_State *L, struct luafs_state *s,
		      struct fuse_file_info *fi, int idx, int at_open);
void luafs_handle_push(lua_State *L, struct luafs_state *s,
		       const struct fuse_file_info *fi);
void luafs_handle_drop(lua_State *L, struct luafs_state *s,
		       struct fuse_file_info *fi);

/* stattable.c: struct stat, statvfs and flock as Lua tables; luafs.Stat. */
void luafs_push_stat(lua_State *L, const struct stat *st, int into);
struct stat *luafs_test_stat(lua_State *L, int idx);
void luafs_stat_open(lua_State *L);
void luafs_check_stat(lua_State *L, int idx, struct stat *st);
struct statvfs;
void luafs_push_statvfs(lua_State *L, const struct statvfs *sv);
void luafs_check_statvfs(lua_State *L, int idx, struct statvfs *sv);
void luafs_push_flock(lua_State *L, const struct flock *fl, int into);
void luafs_check_flock(lua_State *L, int idx, struct flock *fl);

/* constants.c: errno names, mode bits, flags, into the table at idx. */
void luafs_set_constants(lua_State *L, int idx);
const char *luafs_errno_name(int e);
void luafs_open_flags_name(int flags, char *out, size_t size);

/* sys.c: luafs.sys, the syscalls a passthrough needs. */
void luafs_open_sys(lua_State *L);
int luafs_sys_fail(lua_State *L, int err, const char *what);

/* dir.c: luafs.Dir, a directory stream of luafs.sys. */
void luafs_dir_open(lua_State *L);
DIR **luafs_dir_new(lua_State *L);
/* The luafs.Dir at idx, NULL for other values; raises if closed. */
struct luafs_dir *luafs_test_dir(lua_State *L, int idx);
int luafs_dir_fill(struct luafs_dir *d, void *buf, fuse_fill_dir_t filler,
		   off_t offset, enum fuse_readdir_flags flags);

/* error.c: luafs.Error, raised by luafs.error, answered with its errno. */
void luafs_error_open(lua_State *L);
int luafs_is_error(lua_State *L, int idx, int *err);
int luafs_valid_errno(lua_Integer e);

/* udata.c: the one way luafs makes and checks its userdata. */
enum luafs_type_id {
	LUAFS_T_STAT, LUAFS_T_BUFVEC, LUAFS_T_FILEINFO, LUAFS_T_POLLHANDLE,
	LUAFS_T_DIR, LUAFS_T_CONN, LUAFS_T_CONFIG, LUAFS_T_SCRATCH,
	LUAFS_T_TIMER, LUAFS_T_WATCH, LUAFS_NTYPES
};
struct luafs_type {
	const char *name;	/* the metatable's __name */
	enum luafs_type_id id;
};
/*
 * What a host state's extra space (lua_getextraspace) points to: made
 * with the state, so that it stays where it is when the pool's array of
 * states moves at start-up, and reached from every coroutine, which Lua
 * gives a copy of the extra space.  Only the host's states have one; the
 * plain module runs in states that it did not make (luafs_in_host is 0).
 */
struct luafs_extra {
	int number;			/* pool index + 1; 0: a scratch state */
	const void *mt[LUAFS_NTYPES];	/* the metatables' addresses */
	int ref[LUAFS_NTYPES];		/* and their registry references */
};
extern int luafs_in_host;
static inline struct luafs_extra *luafs_extra(lua_State *L)
{
	return *(struct luafs_extra **)lua_getextraspace(L);
}
int luafs_newmetatable(lua_State *L, const struct luafs_type *t);
void luafs_setmetatable(lua_State *L, const struct luafs_type *t);
void *luafs_testudata(lua_State *L, int idx, const struct luafs_type *t);
void *luafs_checkudata(lua_State *L, int idx, const struct luafs_type *t);

/* module.c: require "luafs", its table built from one list. */
int luaopen_luafs(lua_State *L);
void luafs_set_generation(lua_State *L, int generation);
void luafs_set_private(lua_State *L, int idx);
void luafs_push_private(lua_State *L);
/* The call this thread runs (luafs_call sets it): a body's request. */
extern __thread struct luafs_call *luafs_current;

#endif
