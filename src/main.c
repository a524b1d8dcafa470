/*
 * main.c: the luafs command.  Parse the command line, check the mountpoint
 * (mountpoint.c), load the script (so that its errors reach the terminal), create the
 * filesystem with only the operations the script defines, mount, detach
 * from the terminal once init has run, and serve until unmounted.
 */
#include "luafs.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* Exit codes, one per stage; documented in luafs(1). */
enum {
	EXIT_USAGE = 1,		/* bad command line or option */
	EXIT_SCRIPT = 2,	/* the script did not load */
	EXIT_MOUNT = 3,		/* mountpoint unusable or mount failed */
	EXIT_INIT = 4,		/* init failed, or the filesystem failed */
};

static const char usage_line[] =
"usage: luafs SCRIPT MOUNTPOINT [options] [-- script arguments]\n";

/* Keep identical to OPTIONS in luafs(1); scripts/check-docs compares them. */
static const char usage_text[] =
"       luafs --stats | --stats-reset | --trace on|off  MOUNTPOINT\n"
"\n"
"Mount the filesystem that the Lua script SCRIPT implements at MOUNTPOINT.\n"
"\n"
"Options:\n"
"  -h, --help            print this help and exit\n"
"  -V, --version         print the luafs, Lua and libfuse versions and exit\n"
"  -f                    stay in the foreground and log to stderr\n"
"  -d, -o debug          debug: libfuse's request trace and a luafs line per\n"
"                        call (operation, path, result, microseconds);\n"
"                        implies -f\n"
"  -s                    single-threaded: serve one request at a time\n"
"  -o OPT[,OPT...]       mount, libfuse and luafs options, among them:\n"
"    allow_other         let other users than the one who mounted use the\n"
"                        filesystem; warns without default_permissions\n"
"    default_permissions  let the kernel check permissions against the\n"
"                        modes and owners that getattr returns\n"
"    ro                  mount read-only\n"
"    fsname=NAME         the name of the mount (default: the absolute path\n"
"                        of SCRIPT)\n"
"    subtype=NAME        the mount's type is fuse.NAME (default: luafs)\n"
"    auto_unmount        unmount when luafs exits, even when it is killed\n"
"    entry_timeout=T     seconds the kernel caches names\n"
"    attr_timeout=T      seconds the kernel caches attributes\n"
"    negative_timeout=T  seconds the kernel caches missing names\n"
"    max_threads=N       the most worker threads libfuse starts\n"
"    max_idle_threads=N  the most idle worker threads libfuse keeps\n"
"    clone_fd            a FUSE device descriptor per worker thread\n"
"    states=N            serve requests with N Lua states in parallel\n"
"                        (1 to 1024; default 1, or the script's states\n"
"                        field)\n"
"    trace               log one line per call of the script: the\n"
"                        operation, the path, the arguments that matter,\n"
"                        the result and the microseconds it took\n"
"    noreload            do not reload the script when it changes\n"
"                        (SIGUSR1 still reloads it)\n"
"    call_timeout=SECONDS  stop a callback that runs longer; the request\n"
"                        answers ETIMEDOUT\n"
"    lua_memory=BYTES    cap each Lua state's memory (1024 bytes to 1 TiB,\n"
"                        suffix k, m or g); a callback over the cap answers\n"
"                        ENOMEM\n"
"Other -o options go to libfuse and the kernel (see mount.fuse3(8)),\n"
"which reject those they do not know.\n"
"\n"
"While a filesystem is mounted:\n"
"  --stats MOUNTPOINT    print what it has done: per operation the calls,\n"
"                        the failures by errno and the script's time;\n"
"                        per Lua state its memory; reloads; RSS\n"
"  --stats-reset MOUNTPOINT  start the counts again\n"
"  --trace on|off MOUNTPOINT  turn the trace of -o trace on or off\n"
"\n"
"Arguments after -- are passed to the script's chunk as `...'.\n"
"See luafs(1) and luafs(3).\n";

struct cmdline {
	const char *script;
	const char *mountpoint;
	int help, version, foreground, debug, single_thread, clone_fd;
	unsigned int max_threads, max_idle_threads;
	char *states, *call_timeout, *lua_memory;
	int noreload, allow_other, default_permissions, trace;
	int bad;
};

enum { KEY_HELP, KEY_VERSION, KEY_FOREGROUND, KEY_DEBUG, KEY_SINGLE };

#define OPT(t, f, v) { t, offsetof(struct cmdline, f), v }
static const struct fuse_opt cmdline_opts[] = {
	OPT("-h", help, 1), OPT("--help", help, 1),
	OPT("-V", version, 1), OPT("--version", version, 1),
	OPT("-f", foreground, 1), OPT("-s", single_thread, 1),
	OPT("-d", debug, 1), OPT("debug", debug, 1),
	OPT("max_threads=%u", max_threads, 0),
	OPT("max_idle_threads=%u", max_idle_threads, 0),
	OPT("clone_fd", clone_fd, 1),
	OPT("states=%s", states, 0),
	OPT("noreload", noreload, 1),
	OPT("trace", trace, 1),
	OPT("call_timeout=%s", call_timeout, 0),
	OPT("lua_memory=%s", lua_memory, 0),
	OPT("allow_other", allow_other, 1),
	OPT("default_permissions", default_permissions, 1),
	FUSE_OPT_END
};

static int cmdline_proc(void *data, const char *arg, int key,
			struct fuse_args *out)
{
	struct cmdline *cl = data;

	(void)out;
	if (key == FUSE_OPT_KEY_NONOPT) {
		if (cl->script == NULL)
			cl->script = arg;
		else if (cl->mountpoint == NULL)
			cl->mountpoint = arg;
		else {
			fprintf(stderr, "luafs: unexpected argument '%s' "
				"(script arguments go after --)\n", arg);
			cl->bad = 1;
		}
		return 0;
	}
	if (arg[0] == '-') {
		fprintf(stderr, "luafs: unknown option '%s' "
			"(see luafs --help)\n", arg);
		cl->bad = 1;
		return 0;
	}
	return 1;	/* a -o option for libfuse, which checks it */
}

/* states=N: a number of Lua states from 1 to LUAFS_MAX_STATES. */
static int parse_states(const char *text, int *n)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(text, &end, 10);
	if (errno || end == text || *end || v < 1 || v > LUAFS_MAX_STATES) {
		fprintf(stderr, "luafs: -o states=%s: expected a number of Lua "
			"states from 1 to %d\n", text, LUAFS_MAX_STATES);
		return -1;
	}
	*n = (int)v;
	return 0;
}

/* call_timeout=SECONDS: a positive number of seconds. */
static int parse_timeout(const char *text, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(text, &end);
	if (errno || end == text || *end || !(v > 0) || v > 1e9) {
		fprintf(stderr, "luafs: -o call_timeout=%s: expected a positive "
			"number of seconds\n", text);
		return -1;
	}
	*out = v;
	return 0;
}

/* lua_memory=BYTES, with an optional k, m or g suffix (powers of 1024). */
static int parse_bytes(const char *text, size_t *out)
{
	unsigned long long v;
	char *end;
	int shift = 0;

	errno = 0;
	v = strtoull(text, &end, 10);
	if (end != text && *end && end[1] == '\0') {
		switch (*end | 0x20) {
		case 'k': shift = 10; end++; break;
		case 'm': shift = 20; end++; break;
		case 'g': shift = 30; end++; break;
		}
	}
	if (errno || end == text || *end || text[0] == '-' ||
	    (v << shift) < 1024 || v > (1ULL << 40) >> shift) {
		fprintf(stderr, "luafs: -o lua_memory=%s: expected a number of "
			"bytes from 1024 to 1T (suffix k, m or g)\n", text);
		return -1;
	}
	*out = (size_t)(v << shift);
	return 0;
}

static void print_version(void)
{
	printf("luafs %s\n%s\nlibfuse %s (FUSE_USE_VERSION %d)\n",
	       PACKAGE_VERSION, LUA_RELEASE, fuse_pkgversion(),
	       FUSE_USE_VERSION);
}

/*
 * Detaches from the terminal.  The parent waits until the child's init has
 * run, so that "luafs script mnt" returns once the mount is live, and exits
 * with the child's status if start-up fails.
 */
static int daemonize(void)
{
	ssize_t n;
	int fds[2], status;
	char ok;
	pid_t pid;

	if (pipe(fds) != 0 || (pid = fork()) < 0) {
		perror("luafs: cannot daemonize");
		return -1;
	}
	if (pid > 0) {
		/* A signal to the waiting parent must not stop the child. */
		luafs_signals_default();
		close(fds[1]);
		while ((n = read(fds[0], &ok, 1)) < 0 && errno == EINTR)
			;
		if (n == 1)
			_exit(0);
		if (waitpid(pid, &status, 0) == pid && WIFEXITED(status))
			_exit(WEXITSTATUS(status) ? WEXITSTATUS(status) :
			      EXIT_INIT);
		fprintf(stderr, "luafs: the filesystem process died during "
			"start-up\n");
		_exit(EXIT_INIT);
	}
	close(fds[0]);
	setsid();
	if (chdir("/") != 0)
		perror("luafs: chdir /");
	luafs_host.notify_fd = fds[1];
	return 0;
}

/* $LUAFS_READY_FILE: written once the mount is live, for who waits. */
static char ready_path[PATH_MAX];
static const char *ready_file;

static void set_ready_file(const char *path)
{
	if (path && *path && strlen(path) < sizeof(ready_path)) {
		strcpy(ready_path, path);
		ready_file = ready_path;
	}
	/* Not for the processes that the script starts. */
	unsetenv("LUAFS_READY_FILE");
}

static void write_ready_file(void)
{
	char pid[32];
	int fd, n = snprintf(pid, sizeof(pid), "%d\n", (int)getpid());

	fd = open(ready_file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, pid, (size_t)n) != n)
		luafs_log(LOG_WARNING, "LUAFS_READY_FILE %s: %m", ready_file);
	if (fd >= 0)
		close(fd);
}

void luafs_host_started(void)
{
	int fd, nullfd;

	luafs_host.started = 1;
	if (luafs_host.init_failed)
		return;
	if (ready_file)
		write_ready_file();
	fd = luafs_host.notify_fd;
	if (fd < 0)
		return;
	nullfd = open("/dev/null", O_RDWR);
	if (nullfd >= 0) {
		dup2(nullfd, 0);
		dup2(nullfd, 1);
		dup2(nullfd, 2);
		if (nullfd > 2)
			close(nullfd);
	}
	luafs_log_use_syslog();
	if (write(fd, "", 1) != 1)
		luafs_log(LOG_ERR, "cannot tell the parent that the mount is "
			  "live: %m");
	close(fd);
	luafs_host.notify_fd = -1;
}

static int serve(struct cmdline *cl)
{
	struct fuse_loop_config *lc;
	int res;

	if (cl->single_thread)
		return fuse_loop(luafs_host.fuse);
	lc = fuse_loop_cfg_create();
	if (lc == NULL)
		return -ENOMEM;
	fuse_loop_cfg_set_clone_fd(lc, (unsigned)cl->clone_fd);
	if (cl->max_idle_threads)
		fuse_loop_cfg_set_idle_threads(lc, cl->max_idle_threads);
	/* Enough threads that every state can be busy and more wait. */
	if (cl->max_threads)
		fuse_loop_cfg_set_max_threads(lc, cl->max_threads);
	else if (luafs_host.nstates + 8 > 10)
		fuse_loop_cfg_set_max_threads(lc,
			(unsigned)luafs_host.nstates + 8);
	res = fuse_loop_mt(luafs_host.fuse, lc);
	fuse_loop_cfg_destroy(lc);
	return res;
}

/* Splits argv at "--": what follows belongs to the script. */
static int split_script_args(int argc, char **argv)
{
	int i;

	for (i = 1; i < argc; i++)
		if (strcmp(argv[i], "--") == 0) {
			luafs_host.script_argc = argc - i - 1;
			luafs_host.script_argv = argv + i + 1;
			return i;
		}
	return argc;
}

int main(int argc, char **argv)
{
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	struct cmdline cl = { 0 };
	int nstates = 0;
	struct fuse_operations ops;
	static char script[PATH_MAX], mnt[PATH_MAX];
	char *escaped = NULL, *fsname = NULL;
	int res = EXIT_USAGE, served;

	/*
	 * libfuse callocs each request, and calloc bypasses the thread
	 * cache: the fast bins serve it cheaper than bins shared with the
	 * Lua heap.  M_MXFAST must cover the request's size.
	 */
	mallopt(M_MXFAST, 160);
	if (argc >= 3 && strcmp(argv[1], "--stats") == 0)
		return argc == 3 ? luafs_control_client(argv[2], "stats") :
		       EXIT_USAGE;
	if (argc >= 3 && strcmp(argv[1], "--stats-reset") == 0)
		return argc == 3 ? luafs_control_client(argv[2], "reset") :
		       EXIT_USAGE;
	if (argc >= 4 && strcmp(argv[1], "--trace") == 0 &&
	    (strcmp(argv[2], "on") == 0 || strcmp(argv[2], "off") == 0))
		return argc == 4 ? luafs_control_client(argv[3],
			strcmp(argv[2], "on") == 0 ? "trace on" : "trace off") :
		       EXIT_USAGE;
	luafs_host.notify_fd = -1;
	luafs_host.generation = 1;
	set_ready_file(getenv("LUAFS_READY_FILE"));
	args.argc = split_script_args(argc, argv);
	args.argv = argv;
	if (fuse_opt_parse(&args, &cl, cmdline_opts, cmdline_proc) != 0 ||
	    cl.bad)
		goto out_args;
	if (cl.help) {
		fputs(usage_line, stdout);
		fputs(usage_text, stdout);
		res = 0;
		goto out_args;
	}
	if (cl.version) {
		print_version();
		res = 0;
		goto out_args;
	}
	if (cl.script == NULL || cl.mountpoint == NULL) {
		fprintf(stderr, "luafs: no %s given; %s", cl.script ?
			"mountpoint" : "script", usage_line);
		goto out_args;
	}
	if ((cl.states && parse_states(cl.states, &nstates) != 0) ||
	    (cl.call_timeout && parse_timeout(cl.call_timeout,
					      &luafs_host.call_timeout) != 0) ||
	    (cl.lua_memory && parse_bytes(cl.lua_memory,
					  &luafs_host.lua_memory) != 0))
		goto out_args;
	if (cl.allow_other && !cl.default_permissions)
		fprintf(stderr, "luafs: warning: allow_other without "
			"default_permissions: the kernel checks no "
			"permissions, so other users can do whatever the "
			"script allows; check luafs.context() in the script "
			"or add -o default_permissions\n");
	/* fuse_opt consumed these two; libfuse needs them too. */
	if ((cl.allow_other &&
	     fuse_opt_add_arg(&args, "-oallow_other") != 0) ||
	    (cl.default_permissions &&
	     fuse_opt_add_arg(&args, "-odefault_permissions") != 0))
		goto out_args;
	if (cl.debug && fuse_opt_add_arg(&args, "-d") != 0)
		goto out_args;
	luafs_host.foreground = cl.foreground || cl.debug;
	luafs_host.debug = cl.debug;
	luafs_host.trace = cl.trace;

	res = EXIT_SCRIPT;
	if (realpath(cl.script, script) == NULL) {
		fprintf(stderr, "luafs: script %s: %s\n", cl.script,
			strerror(errno));
		goto out_args;
	}
	luafs_host.script = script;
	res = EXIT_MOUNT;
	if (luafs_mountpoint_check(cl.mountpoint, mnt) != 0)
		goto out_args;
	luafs_host.mountpoint = mnt;

	res = EXIT_SCRIPT;
	if (luafs_pool_open(nstates) != 0)
		goto out_args;

	/* Name the mount after the script; a user's -o fsname= wins. */
	res = EXIT_USAGE;
	if (fuse_opt_add_opt_escaped(&escaped, script) != 0 ||
	    asprintf(&fsname, "-ofsname=%s", escaped) < 0 ||
	    fuse_opt_insert_arg(&args, 1, fsname) != 0 ||
	    fuse_opt_insert_arg(&args, 1, "-osubtype=luafs") != 0)
		goto out_pool;
	luafs_ops_fill(&ops, luafs_host.present);
	luafs_host.fuse = fuse_new(&args, &ops, sizeof(ops), NULL);
	if (luafs_host.fuse == NULL)
		goto out_pool;

	res = EXIT_MOUNT;
	luafs_signals_set();
	if (fuse_mount(luafs_host.fuse, mnt) != 0) {
		if (geteuid() != 0 && access("/dev/fuse", R_OK | W_OK) != 0)
			fprintf(stderr, "luafs: /dev/fuse: %s; users other than "
				"root need it readable and writable (mode "
				"0666)\n", strerror(errno));
		goto out_fuse;
	}
	res = EXIT_INIT;
	if (!luafs_host.foreground && daemonize() != 0)
		goto out_unmount;
	luafs_signals_serving();
	luafs_stats_start();
	luafs_control_start();
	if (luafs_reload_start(!cl.noreload) != 0)
		goto out_unmount;
	luafs_janitor_start();
	luafs_timers_start();
	served = serve(&cl);
	/*
	 * A lazy unmount with requests in flight ends the connection that
	 * way (the kernel aborts it): unmounted, as with ENODEV.
	 */
	if (served == -ECONNABORTED) {
		luafs_log(LOG_NOTICE, "the kernel ended the connection: "
			  "unmounted");
		served = 0;
	}
	if (served != 0 && !luafs_host.init_failed)
		luafs_log(LOG_ERR, "the FUSE loop failed: %s", served < 0 ?
			  strerror(-served) : "error");
	else if (!luafs_host.init_failed)
		res = 0;
	luafs_signals_block();
	luafs_reload_stop();
	luafs_janitor_stop();
	luafs_timers_stop();
	luafs_invalidate_stop();
out_unmount:
	luafs_control_stop();
	fuse_unmount(luafs_host.fuse);
out_fuse:
	fuse_destroy(luafs_host.fuse);
out_pool:
	/* Again, for what the script registered before a failed mount. */
	luafs_timers_stop();
	luafs_pool_close();
	free(escaped);
	free(fsname);
out_args:
	free(cl.states);
	free(cl.call_timeout);
	free(cl.lua_memory);
	fuse_opt_free_args(&args);
	return res;
}
