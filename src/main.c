/*
 * main.c: the luafs command.  Parse the command line, check the mountpoint,
 * load the script (so that its errors reach the terminal), create the
 * filesystem with only the operations the script defines, mount, detach
 * from the terminal once init has run, and serve until unmounted.
 */
#include "luafs.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <spawn.h>
#include <sys/mount.h>
#include <sys/statvfs.h>
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
"Arguments after -- are passed to the script's chunk as `...'.\n"
"See luafs(1) and luafs(3).\n";

struct cmdline {
	const char *script;
	const char *mountpoint;
	int help, version, foreground, debug, single_thread, clone_fd;
	unsigned int max_threads, max_idle_threads;
	char *states, *call_timeout, *lua_memory;
	int noreload, allow_other, default_permissions;
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

/* Copies one field of a /proc/self/mountinfo line, undoing \ooo escapes. */
static void unescape_next(const char **p, char *out, size_t size)
{
	const char *s = *p;
	size_t o = 0;

	while (*s && *s != ' ' && *s != '\n' && o + 1 < size) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '7' && s[2] && s[3]) {
			out[o++] = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 +
					  (s[3] - '0'));
			s += 4;
		} else {
			out[o++] = *s++;
		}
	}
	out[o] = '\0';
	while (*s == ' ')
		s++;
	*p = s;
}

/* The topmost mount on a path: its type and source, as in mountinfo. */
struct mount_entry {
	int found;
	char fstype[256];
	char source[PATH_MAX];
};

static void find_mount(const char *path, struct mount_entry *me)
{
	char line[3 * PATH_MAX + 1024], mnt[PATH_MAX];
	FILE *f = fopen("/proc/self/mountinfo", "r");
	const char *p;
	int field;

	me->found = 0;
	if (f == NULL)
		return;
	/* Later lines are mounted on top of earlier ones. */
	while (fgets(line, sizeof(line), f)) {
		p = line;
		for (field = 0; field < 4 && (p = strchr(p, ' ')); field++)
			p++;
		if (p == NULL)
			continue;
		unescape_next(&p, mnt, sizeof(mnt));
		if (strcmp(mnt, path) != 0 || (p = strstr(p, " - ")) == NULL)
			continue;
		p += 3;
		unescape_next(&p, me->fstype, sizeof(me->fstype));
		unescape_next(&p, me->source, sizeof(me->source));
		me->found = 1;
	}
	fclose(f);
}

static int is_fuse(const char *fstype)
{
	return strcmp(fstype, "fuse") == 0 || strcmp(fstype, "fuseblk") == 0 ||
	       strncmp(fstype, "fuse.", 5) == 0;
}

/*
 * Asks a FUSE filesystem for its statfs, which the kernel never answers
 * from a cache: a mount whose process died fails with ENOTCONN (or
 * ECONNABORTED).  A child asks, so that a live filesystem that does not
 * answer cannot hang luafs.  Returns 0, -errno, or -ETIMEDOUT when no
 * answer came in time.
 */
static int probe_fuse(const char *path)
{
	struct statvfs sv;
	int status, i;
	pid_t pid = fork();

	if (pid < 0)
		return -errno;
	if (pid == 0)
		_exit(statvfs(path, &sv) == 0 ? 0 : errno & 0xff);
	for (i = 0; i < 300; i++) {
		if (waitpid(pid, &status, WNOHANG) == pid)
			return WIFEXITED(status) ? -WEXITSTATUS(status) : -EIO;
		usleep(10000);
	}
	kill(pid, SIGKILL);
	for (i = 0; i < 100 && waitpid(pid, &status, WNOHANG) != pid; i++)
		usleep(10000);
	return -ETIMEDOUT;
}

/* Unmounts a dead mount lazily: directly as root, else by fusermount3. */
static int unmount_stale(const char *path)
{
	char *argv[] = { "fusermount3", "-u", "-z", "--", (char *)path, NULL };
	int status;
	pid_t pid;

	if (umount2(path, MNT_DETACH | UMOUNT_NOFOLLOW) == 0)
		return 0;
	if (errno != EPERM)
		return -1;
	if (posix_spawnp(&pid, "fusermount3", NULL, NULL, argv,
			 environ) != 0 ||
	    waitpid(pid, &status, 0) != pid)
		return -1;
	errno = EPERM;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

/*
 * Refuses a path that something is mounted on, except a stale luafs mount
 * (type fuse.luafs, its process gone), which is unmounted so that luafs can
 * take its place: a host killed with SIGKILL leaves one behind.
 */
static int check_not_mounted(const char *path)
{
	struct mount_entry me;
	int tries, res, stale;

	for (tries = 0; tries < 8; tries++) {
		find_mount(path, &me);
		if (!me.found)
			return 0;
		if (!is_fuse(me.fstype)) {
			fprintf(stderr, "luafs: %s is already a mountpoint (%s "
				"%s); unmount it first: umount %s\n", path,
				me.fstype, me.source, path);
			return -1;
		}
		res = probe_fuse(path);
		stale = res == -ENOTCONN || res == -ECONNABORTED;
		if (res == -ETIMEDOUT) {
			/* A host that is unmounting answers nothing. */
			find_mount(path, &me);
			if (!me.found)
				continue;
			fprintf(stderr, "luafs: %s is a FUSE mount (%s %s) that "
				"does not answer; unmount it first: fusermount3 "
				"-u -z %s\n", path, me.fstype, me.source, path);
			return -1;
		}
		if (!stale && strcmp(me.fstype, "fuse.luafs") == 0) {
			fprintf(stderr, "luafs: %s is already mounted by another "
				"luafs (%s); unmount it first: fusermount3 -u "
				"%s\n", path, me.source, path);
			return -1;
		}
		if (!stale) {
			fprintf(stderr, "luafs: %s is already mounted (%s %s); "
				"unmount it first: fusermount3 -u %s\n", path,
				me.fstype, me.source, path);
			return -1;
		}
		if (strcmp(me.fstype, "fuse.luafs") != 0) {
			fprintf(stderr, "luafs: %s is a stale FUSE mount (%s %s) "
				"whose filesystem process died; run: "
				"fusermount3 -u -z %s\n", path, me.fstype,
				me.source, path);
			return -1;
		}
		if (unmount_stale(path) != 0) {
			/* Gone meanwhile: its own host was still unmounting. */
			if (errno == EINVAL)
				continue;
			fprintf(stderr, "luafs: %s is a stale luafs mount that "
				"cannot be unmounted (%s); run: fusermount3 -u "
				"-z %s\n", path, strerror(errno), path);
			return -1;
		}
		luafs_log(LOG_WARNING, "%s: unmounted a stale mount of %s, "
			  "left by a luafs process that died", path, me.source);
	}
	fprintf(stderr, "luafs: %s: too many stale mounts\n", path);
	return -1;
}

/*
 * The absolute path of a mountpoint, with the symbolic links of its
 * directory resolved but without looking at the mountpoint itself, which
 * may be a FUSE mount that hangs or fails.
 */
static int absolute_path(const char *mnt, char *out)
{
	char dir[PATH_MAX], real[PATH_MAX], *slash;
	const char *base;
	size_t n = strlen(mnt);

	while (n > 1 && mnt[n - 1] == '/')
		n--;
	if (n >= sizeof(dir)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(dir, mnt, n);
	dir[n] = '\0';
	slash = strrchr(dir, '/');
	base = slash ? slash + 1 : dir;
	if (!*base || strcmp(base, ".") == 0 || strcmp(base, "..") == 0)
		return realpath(mnt, out) ? 0 : -1;
	if (slash == dir) {
		strcpy(real, "/");
	} else {
		if (slash)
			*slash = '\0';
		if (realpath(slash ? dir : ".", real) == NULL)
			return -1;
	}
	if (snprintf(out, PATH_MAX, "%s%s%s", real,
		     strcmp(real, "/") == 0 ? "" : "/", base) >= PATH_MAX) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

/* Checks the mountpoint and stores its absolute path in resolved. */
static int check_mountpoint(const char *mnt, char *resolved)
{
	char real[PATH_MAX];
	struct stat st;

	if (absolute_path(mnt, resolved) != 0) {
		fprintf(stderr, "luafs: mountpoint %s: %s\n", mnt,
			strerror(errno));
		return -1;
	}
	if (check_not_mounted(resolved) != 0)
		return -1;
	if (stat(resolved, &st) != 0) {
		fprintf(stderr, "luafs: mountpoint %s: %s\n", mnt,
			strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		fprintf(stderr, "luafs: mountpoint %s is not a directory\n",
			mnt);
		return -1;
	}
	/* A symbolic link to a directory: check where it leads. */
	if (realpath(resolved, real) == NULL) {
		fprintf(stderr, "luafs: mountpoint %s: %s\n", mnt,
			strerror(errno));
		return -1;
	}
	if (strcmp(real, resolved) != 0) {
		strcpy(resolved, real);
		return check_not_mounted(resolved);
	}
	return 0;
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
	 * libfuse callocs each request (128 bytes), and calloc bypasses the
	 * thread cache: served from the fast bins instead of bins shared with
	 * the Lua heap, a request's allocation costs a third as much.
	 */
	mallopt(M_MXFAST, 160);
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

	res = EXIT_SCRIPT;
	if (realpath(cl.script, script) == NULL) {
		fprintf(stderr, "luafs: script %s: %s\n", cl.script,
			strerror(errno));
		goto out_args;
	}
	luafs_host.script = script;
	res = EXIT_MOUNT;
	if (check_mountpoint(cl.mountpoint, mnt) != 0)
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
	if (luafs_reload_start(!cl.noreload) != 0)
		goto out_unmount;
	luafs_timers_start();
	served = serve(&cl);
	if (served != 0 && !luafs_host.init_failed)
		luafs_log(LOG_ERR, "the FUSE loop failed: %s", served < 0 ?
			  strerror(-served) : "error");
	else if (!luafs_host.init_failed)
		res = 0;
	luafs_signals_block();
	luafs_reload_stop();
	luafs_timers_stop();
	luafs_invalidate_stop();
out_unmount:
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
