/*
 * mountpoint.c: where luafs mounts.  The mountpoint's absolute path is
 * found without looking at the mountpoint itself, and the mount table
 * says what is mounted there already: luafs refuses any mount but a stale
 * luafs one (its process gone, as after a SIGKILL), which it unmounts to
 * take its place.  FUSE mounts are probed from a child, so that one that
 * never answers cannot hang luafs.
 */
#include "luafs.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

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
 * Whether the mount on path goes within a second.  A luafs told to stop
 * (SIGTERM, say) answers until it has unmounted, some milliseconds later:
 * a restart right after it must wait for that, not refuse.
 */
static int goes_away(const char *path)
{
	struct mount_entry me;
	int i;

	for (i = 0; i < 100; i++) {
		usleep(10000);
		find_mount(path, &me);
		if (!me.found)
			return 1;
	}
	return 0;
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
			if (goes_away(path))
				continue;
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
int luafs_mountpoint_check(const char *mnt, char *resolved)
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
