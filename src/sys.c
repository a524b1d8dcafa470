/*
 * sys.c: luafs.sys, the system calls a passthrough filesystem needs;
 * luafs(3) documents each function (LUAFS.SYS).
 *
 * Debian's luaposix has no Lua 5.4 build, so the host carries its own.
 * A bad argument raises an error.  A failing system call returns nil, a
 * message naming the call (and the path, when there is one) and the errno:
 * the shape that a luafs operation passes straight through to the kernel,
 * so `return sys.lstat(path)` is a complete getattr for a mirror.
 *
 * Strings are byte strings: data keeps its zero bytes, while a path or an
 * attribute name containing one raises, since the kernel would silently cut
 * it there.
 */
#include "luafs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/statvfs.h>
#include <sys/timerfd.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

/* Failures */

/*
 * fail* read errno as an argument, before the first Lua call can clobber
 * it.  Failures are common answers (a lookup of a name that does not
 * exist, a getxattr of one that is not set), so the message is built
 * cheaply: the C locale's text of the errno, which strerror_r would look
 * up through gettext on every call (and it is thread-safe, for the states
 * of the pool), joined by memcpy rather than by lua_pushfstring.
 */
#define ERRBUF 128

static const char *errtext(int err, char *buf)
{
	const char *text = strerrordesc_np(err);

	return text ? text : strerror_r(err, buf, ERRBUF);
}

static int pushfail(lua_State *L, int err, const char *what,
		    const char *from, const char *to)
{
	char buf[ERRBUF], msg[512];
	const char *part[7];
	size_t len[7], total = 0;
	int n = 0, i;
	luaL_Buffer b;
	char *p;

	part[n++] = what;
	if (from) {
		part[n++] = ": ";
		part[n++] = from;
	}
	if (to) {
		part[n++] = " -> ";
		part[n++] = to;
	}
	part[n++] = ": ";
	part[n++] = errtext(err, buf);
	for (i = 0; i < n; i++)
		total += len[i] = strlen(part[i]);
	luaL_pushfail(L);
	/* Joined on the C stack; only a long path needs a luaL_Buffer. */
	p = total <= sizeof(msg) ? msg : luaL_buffinitsize(L, &b, total);
	for (i = 0; i < n; i++) {
		memcpy(p, part[i], len[i]);
		p += len[i];
	}
	if (total <= sizeof(msg))
		lua_pushlstring(L, msg, total);
	else
		luaL_pushresultsize(&b, total);
	lua_pushinteger(L, err);
	return 3;
}

/* The same failure for the methods of luafs.Dir (dir.c). */
int luafs_sys_fail(lua_State *L, int err, const char *what)
{
	return pushfail(L, err, what, NULL, NULL);
}

static int fail(lua_State *L, const char *what)
{
	return pushfail(L, errno, what, NULL, NULL);
}

static int failpath(lua_State *L, const char *what, const char *path)
{
	return pushfail(L, errno, what, path, NULL);
}

static int failpaths(lua_State *L, const char *what, const char *from,
		     const char *to)
{
	return pushfail(L, errno, what, from, to);
}

static int ok(lua_State *L)
{
	lua_pushboolean(L, 1);
	return 1;
}

/* Arguments */

/*
 * Every passthrough request makes a sys call or two, so arguments are read
 * with one API call each in the common case; luaL's checks run only to
 * raise their usual messages for a wrong argument.
 */
static inline lua_Integer checkinteger(lua_State *L, int arg)
{
	int isnum;
	lua_Integer v = lua_tointegerx(L, arg, &isnum);

	return isnum ? v : luaL_checkinteger(L, arg);
}

static inline lua_Integer inrange(lua_State *L, int arg, lua_Integer v,
				  lua_Integer min, lua_Integer max)
{
	luaL_argcheck(L, min <= v && v <= max, arg, "out of range");
	return v;
}

static inline lua_Integer checkrange(lua_State *L, int arg, lua_Integer min,
				     lua_Integer max)
{
	return inrange(L, arg, checkinteger(L, arg), min, max);
}

/* An integer in range, or def for none or nil. */
static inline lua_Integer optrange(lua_State *L, int arg, lua_Integer def,
				   lua_Integer min, lua_Integer max)
{
	int isnum;
	lua_Integer v = lua_tointegerx(L, arg, &isnum);

	if (isnum)
		return inrange(L, arg, v, min, max);
	if (lua_isnoneornil(L, arg))
		return def;
	return inrange(L, arg, luaL_checkinteger(L, arg), min, max);
}

#define checkint(L, arg) ((int)checkrange(L, arg, INT_MIN, INT_MAX))
#define optint(L, arg, def) ((int)optrange(L, arg, def, INT_MIN, INT_MAX))
#define checkmode(L, arg) ((mode_t)checkrange(L, arg, 0, (mode_t)-1))
#define optmode(L, arg, def) ((mode_t)optrange(L, arg, def, 0, (mode_t)-1))
#define checksize(L, arg) ((size_t)checkrange(L, arg, 0, SSIZE_MAX))
#define checkoff(L, arg) ((off_t)checkinteger(L, arg))
#define checkuint(L, arg) ((unsigned)checkrange(L, arg, 0, UINT_MAX))
#define optuint(L, arg, def) ((unsigned)optrange(L, arg, def, 0, UINT_MAX))

/* -1 leaves the owner or group as it is, as in chown(2). */
static id_t checkid(lua_State *L, int arg)
{
	return (id_t)checkrange(L, arg, -1, (id_t)-1);
}

/* The kernel would stop a path at its first zero byte; refuse it here
 * instead of touching a different file. */
static inline const char *checkpath(lua_State *L, int arg)
{
	size_t len;
	const char *s = lua_tolstring(L, arg, &len);

	if (s == NULL)
		s = luaL_checklstring(L, arg, &len);
	luaL_argcheck(L, strlen(s) == len, arg, "contains a zero byte");
	return s;
}

/*
 * The buffer that read, pread, readlink and the xattr getters fill before
 * the bytes are copied into a Lua string.  There is one per state (an
 * upvalue shared by the module's functions) and it is reused: allocating
 * and freeing 128 KiB per FUSE read costs an mmap and a munmap each time.
 * Anything above SCRATCH_KEEP (more than a FUSE request can ask for) is
 * given back after the call, so one huge read does not pin its memory.
 */
#define SCRATCH_MIN 4096
#define SCRATCH_KEEP (1 << 20)

struct scratch {
	char *p;
	size_t cap;
};

static struct scratch *toscratch(lua_State *L)
{
	return lua_touserdata(L, lua_upvalueindex(1));
}

/* At least size bytes, or NULL with errno ENOMEM.  The old contents are
 * never needed, so free and malloc spare realloc's copy. */
/* The most that one read(2) transfers on Linux (MAX_RW_COUNT). */
#define MAX_RW 0x7ffff000

static char *scratch(struct scratch *s, size_t size)
{
	if (s->p && size <= s->cap)
		return s->p;
	if (size < SCRATCH_MIN)
		size = SCRATCH_MIN;
	free(s->p);
	s->p = malloc(size);
	s->cap = s->p ? size : 0;
	return s->p;
}

static void scratch_trim(struct scratch *s)
{
	if (s->cap > SCRATCH_KEEP) {
		free(s->p);
		s->p = NULL;
		s->cap = 0;
	}
}

#define SCRATCH_MT "luafs.sys scratch"

static const struct luafs_type scratch_type = { SCRATCH_MT, LUAFS_T_SCRATCH };

static int scratch_gc(lua_State *L)
{
	struct scratch *s = luafs_checkudata(L, 1, &scratch_type);

	free(s->p);
	s->p = NULL;
	s->cap = 0;
	return 0;
}

static void pushscratch(lua_State *L, struct scratch *s, size_t n)
{
	lua_pushlstring(L, s->p, n);
	scratch_trim(s);
}

/* File status */

/*
 * The optional last argument of the stat calls: a luafs.Stat or a stat
 * table to fill and return instead of a new table.  Sets *into to its
 * stack index, or 0, and returns where the call writes: the luafs.Stat's
 * own buffer, or scratch.
 */
static struct stat *stat_into(lua_State *L, int idx, int *into,
			      struct stat *scratch)
{
	struct stat *st = luafs_test_stat(L, idx);

	if (st != NULL) {
		*into = idx;
		return st;
	}
	*into = lua_isnoneornil(L, idx) ? 0 : idx;
	return scratch;
}

/* The answer once the call succeeded: the luafs.Stat, or a table. */
static int push_statted(lua_State *L, struct stat *st,
			const struct stat *scratch, int into)
{
	if (st != scratch)
		lua_pushvalue(L, into);
	else
		luafs_push_stat(L, st, into);
	return 1;
}

static int sys_lstat(lua_State *L)
{
	const char *path = checkpath(L, 1);
	int into;
	struct stat scratch, *st = stat_into(L, 2, &into, &scratch);

	if (lstat(path, st) == -1)
		return failpath(L, "lstat", path);
	return push_statted(L, st, &scratch, into);
}

static int sys_stat(lua_State *L)
{
	const char *path = checkpath(L, 1);
	int into;
	struct stat scratch, *st = stat_into(L, 2, &into, &scratch);

	if (stat(path, st) == -1)
		return failpath(L, "stat", path);
	return push_statted(L, st, &scratch, into);
}

static int sys_fstat(lua_State *L)
{
	int fd = checkint(L, 1);
	int into;
	struct stat scratch, *st = stat_into(L, 2, &into, &scratch);

	if (fstat(fd, st) == -1)
		return fail(L, "fstat");
	return push_statted(L, st, &scratch, into);
}

static int sys_fstatat(lua_State *L)
{
	int dirfd = checkint(L, 1);
	const char *path = checkpath(L, 2);
	int flags = optint(L, 3, 0);
	int into;
	struct stat scratch, *st = stat_into(L, 4, &into, &scratch);

	if (fstatat(dirfd, path, st, flags) == -1)
		return failpath(L, "fstatat", path);
	return push_statted(L, st, &scratch, into);
}

static int sys_statvfs(lua_State *L)
{
	const char *path = checkpath(L, 1);
	struct statvfs sv;

	if (statvfs(path, &sv) == -1)
		return failpath(L, "statvfs", path);
	luafs_push_statvfs(L, &sv);
	return 1;
}

static int sys_fstatvfs(lua_State *L)
{
	int fd = checkint(L, 1);
	struct statvfs sv;

	if (fstatvfs(fd, &sv) == -1)
		return fail(L, "fstatvfs");
	luafs_push_statvfs(L, &sv);
	return 1;
}

/* Opening, reading, writing */

static int sys_open(lua_State *L)
{
	const char *path = checkpath(L, 1);
	int flags = checkint(L, 2);
	mode_t mode = optmode(L, 3, 0666);
	int fd = open(path, flags, mode);

	if (fd == -1)
		return failpath(L, "open", path);
	lua_pushinteger(L, fd);
	return 1;
}

static int sys_openat(lua_State *L)
{
	int dirfd = checkint(L, 1);
	const char *path = checkpath(L, 2);
	int flags = checkint(L, 3);
	mode_t mode = optmode(L, 4, 0666);
	int fd = openat(dirfd, path, flags, mode);

	if (fd == -1)
		return failpath(L, "openat", path);
	lua_pushinteger(L, fd);
	return 1;
}

static int sys_close(lua_State *L)
{
	/* Not retried on EINTR: Linux has released the fd already. */
	return close(checkint(L, 1)) == -1 ? fail(L, "close") : ok(L);
}

static int sys_pread(lua_State *L)
{
	int fd = checkint(L, 1);
	size_t size = checksize(L, 2);
	off_t off = checkoff(L, 3);
	struct scratch *s = toscratch(L);
	char *buf;
	ssize_t n;

	/* More than one read(2) moves would be allocated in vain. */
	if (size > MAX_RW)
		size = MAX_RW;
	buf = scratch(s, size);
	if (!buf)
		return fail(L, "pread");
	n = pread(fd, buf, size, off);
	if (n == -1)
		return fail(L, "pread");
	pushscratch(L, s, (size_t)n);
	return 1;
}

static int sys_pwrite(lua_State *L)
{
	int fd = checkint(L, 1);
	size_t len;
	const char *data = luaL_checklstring(L, 2, &len);
	off_t off = checkoff(L, 3);
	ssize_t n = pwrite(fd, data, len, off);

	if (n == -1)
		return fail(L, "pwrite");
	lua_pushinteger(L, n);
	return 1;
}

static int sys_read(lua_State *L)
{
	int fd = checkint(L, 1);
	size_t size = checksize(L, 2);
	struct scratch *s = toscratch(L);
	char *buf;
	ssize_t n;

	/* More than one read(2) moves would be allocated in vain. */
	if (size > MAX_RW)
		size = MAX_RW;
	buf = scratch(s, size);
	if (!buf)
		return fail(L, "read");
	n = read(fd, buf, size);
	if (n == -1)
		return fail(L, "read");
	pushscratch(L, s, (size_t)n);
	return 1;
}

static int sys_write(lua_State *L)
{
	int fd = checkint(L, 1);
	size_t len;
	const char *data = luaL_checklstring(L, 2, &len);
	ssize_t n = write(fd, data, len);

	if (n == -1)
		return fail(L, "write");
	lua_pushinteger(L, n);
	return 1;
}

static int sys_fsync(lua_State *L)
{
	return fsync(checkint(L, 1)) == -1 ? fail(L, "fsync") : ok(L);
}

static int sys_fdatasync(lua_State *L)
{
	return fdatasync(checkint(L, 1)) == -1 ? fail(L, "fdatasync") : ok(L);
}

static int sys_ftruncate(lua_State *L)
{
	int fd = checkint(L, 1);
	off_t size = checkoff(L, 2);

	return ftruncate(fd, size) == -1 ? fail(L, "ftruncate") : ok(L);
}

static int sys_truncate(lua_State *L)
{
	const char *path = checkpath(L, 1);
	off_t size = checkoff(L, 2);

	if (truncate(path, size) == -1)
		return failpath(L, "truncate", path);
	return ok(L);
}

static int sys_fallocate(lua_State *L)
{
	int fd = checkint(L, 1);
	int mode = checkint(L, 2);
	off_t off = checkoff(L, 3);
	off_t len = checkoff(L, 4);

	if (fallocate(fd, mode, off, len) == -1)
		return fail(L, "fallocate");
	return ok(L);
}

/* nil means "use and advance the file offset", as a NULL pointer does. */
static off64_t *optoffp(lua_State *L, int arg, off64_t *off)
{
	if (lua_isnoneornil(L, arg))
		return NULL;
	*off = checkinteger(L, arg);
	return off;
}

static int sys_copy_file_range(lua_State *L)
{
	off64_t offin, offout;
	int fdin = checkint(L, 1);
	off64_t *pin = optoffp(L, 2, &offin);
	int fdout = checkint(L, 3);
	off64_t *pout = optoffp(L, 4, &offout);
	size_t len = checksize(L, 5);
	unsigned flags = optuint(L, 6, 0);
	ssize_t n;

	n = copy_file_range(fdin, pin, fdout, pout, len, flags);
	if (n == -1)
		return fail(L, "copy_file_range");
	lua_pushinteger(L, n);
	return 1;
}

static int sys_lseek(lua_State *L)
{
	int fd = checkint(L, 1);
	off_t off = checkoff(L, 2);
	int whence = checkint(L, 3);

	off = lseek(fd, off, whence);
	if (off == -1)
		return fail(L, "lseek");
	lua_pushinteger(L, off);
	return 1;
}

/* Links */

/*
 * A target may be as long as the filesystem allows, so grow the buffer
 * until readlink(2) leaves room to spare: a result that fills it may have
 * been cut short.
 */
static int readlink_common(lua_State *L, const char *what, int dirfd,
			   const char *path)
{
	struct scratch *s = toscratch(L);
	size_t want = SCRATCH_MIN;
	ssize_t n;

	for (;;) {
		if (!scratch(s, want))
			return failpath(L, what, path);
		n = readlinkat(dirfd, path, s->p, s->cap);
		if (n == -1)
			return failpath(L, what, path);
		if ((size_t)n < s->cap)
			break;
		want = s->cap * 2;
	}
	pushscratch(L, s, (size_t)n);
	return 1;
}

static int sys_readlink(lua_State *L)
{
	return readlink_common(L, "readlink", AT_FDCWD, checkpath(L, 1));
}

static int sys_readlinkat(lua_State *L)
{
	int dirfd = checkint(L, 1);

	return readlink_common(L, "readlinkat", dirfd, checkpath(L, 2));
}

static int sys_symlink(lua_State *L)
{
	const char *target = checkpath(L, 1);
	const char *linkpath = checkpath(L, 2);

	if (symlink(target, linkpath) == -1)
		return failpath(L, "symlink", linkpath);
	return ok(L);
}

static int sys_symlinkat(lua_State *L)
{
	const char *target = checkpath(L, 1);
	int dirfd = checkint(L, 2);
	const char *linkpath = checkpath(L, 3);

	if (symlinkat(target, dirfd, linkpath) == -1)
		return failpath(L, "symlinkat", linkpath);
	return ok(L);
}

static int sys_link(lua_State *L)
{
	const char *from = checkpath(L, 1);
	const char *to = checkpath(L, 2);

	if (link(from, to) == -1)
		return failpaths(L, "link", from, to);
	return ok(L);
}

static int sys_linkat(lua_State *L)
{
	int fromfd = checkint(L, 1);
	const char *from = checkpath(L, 2);
	int tofd = checkint(L, 3);
	const char *to = checkpath(L, 4);
	int flags = optint(L, 5, 0);

	if (linkat(fromfd, from, tofd, to, flags) == -1)
		return failpaths(L, "linkat", from, to);
	return ok(L);
}

/* Creating and removing names */

static int sys_mkdir(lua_State *L)
{
	const char *path = checkpath(L, 1);
	mode_t mode = optmode(L, 2, 0777);

	if (mkdir(path, mode) == -1)
		return failpath(L, "mkdir", path);
	return ok(L);
}

static int sys_mkdirat(lua_State *L)
{
	int dirfd = checkint(L, 1);
	const char *path = checkpath(L, 2);
	mode_t mode = optmode(L, 3, 0777);

	if (mkdirat(dirfd, path, mode) == -1)
		return failpath(L, "mkdirat", path);
	return ok(L);
}

static int sys_rmdir(lua_State *L)
{
	const char *path = checkpath(L, 1);

	if (rmdir(path) == -1)
		return failpath(L, "rmdir", path);
	return ok(L);
}

static int sys_unlink(lua_State *L)
{
	const char *path = checkpath(L, 1);

	if (unlink(path) == -1)
		return failpath(L, "unlink", path);
	return ok(L);
}

static int sys_unlinkat(lua_State *L)
{
	int dirfd = checkint(L, 1);
	const char *path = checkpath(L, 2);
	int flags = optint(L, 3, 0);

	if (unlinkat(dirfd, path, flags) == -1)
		return failpath(L, "unlinkat", path);
	return ok(L);
}

/* The flags are FUSE rename's, so a mirror passes them on unchanged. */
static int sys_rename(lua_State *L)
{
	const char *from = checkpath(L, 1);
	const char *to = checkpath(L, 2);
	unsigned flags = optuint(L, 3, 0);
	int r;

	/* Only renameat2 knows flags, and not every filesystem knows it. */
	if (flags)
		r = renameat2(AT_FDCWD, from, AT_FDCWD, to, flags);
	else
		r = rename(from, to);
	if (r == -1)
		return failpaths(L, "rename", from, to);
	return ok(L);
}

static int sys_renameat2(lua_State *L)
{
	int fromfd = checkint(L, 1);
	const char *from = checkpath(L, 2);
	int tofd = checkint(L, 3);
	const char *to = checkpath(L, 4);
	unsigned flags = optuint(L, 5, 0);

	if (renameat2(fromfd, from, tofd, to, flags) == -1)
		return failpaths(L, "renameat2", from, to);
	return ok(L);
}

static int sys_mknod(lua_State *L)
{
	const char *path = checkpath(L, 1);
	mode_t mode = checkmode(L, 2);
	dev_t dev = (dev_t)luaL_optinteger(L, 3, 0);

	if (mknod(path, mode, dev) == -1)
		return failpath(L, "mknod", path);
	return ok(L);
}

static int sys_mknodat(lua_State *L)
{
	int dirfd = checkint(L, 1);
	const char *path = checkpath(L, 2);
	mode_t mode = checkmode(L, 3);
	dev_t dev = (dev_t)luaL_optinteger(L, 4, 0);

	if (mknodat(dirfd, path, mode, dev) == -1)
		return failpath(L, "mknodat", path);
	return ok(L);
}

static int sys_mkfifo(lua_State *L)
{
	const char *path = checkpath(L, 1);
	mode_t mode = optmode(L, 2, 0666);

	if (mkfifo(path, mode) == -1)
		return failpath(L, "mkfifo", path);
	return ok(L);
}

/* Permissions and owners */

static int sys_chmod(lua_State *L)
{
	const char *path = checkpath(L, 1);
	mode_t mode = checkmode(L, 2);

	if (chmod(path, mode) == -1)
		return failpath(L, "chmod", path);
	return ok(L);
}

static int sys_fchmod(lua_State *L)
{
	int fd = checkint(L, 1);
	mode_t mode = checkmode(L, 2);

	return fchmod(fd, mode) == -1 ? fail(L, "fchmod") : ok(L);
}

static int sys_fchmodat(lua_State *L)
{
	int dirfd = checkint(L, 1);
	const char *path = checkpath(L, 2);
	mode_t mode = checkmode(L, 3);
	int flags = optint(L, 4, 0);

	if (fchmodat(dirfd, path, mode, flags) == -1)
		return failpath(L, "fchmodat", path);
	return ok(L);
}

static int sys_chown(lua_State *L)
{
	const char *path = checkpath(L, 1);
	uid_t uid = checkid(L, 2);
	gid_t gid = checkid(L, 3);

	if (chown(path, uid, gid) == -1)
		return failpath(L, "chown", path);
	return ok(L);
}

static int sys_lchown(lua_State *L)
{
	const char *path = checkpath(L, 1);
	uid_t uid = checkid(L, 2);
	gid_t gid = checkid(L, 3);

	if (lchown(path, uid, gid) == -1)
		return failpath(L, "lchown", path);
	return ok(L);
}

static int sys_fchown(lua_State *L)
{
	int fd = checkint(L, 1);
	uid_t uid = checkid(L, 2);
	gid_t gid = checkid(L, 3);

	return fchown(fd, uid, gid) == -1 ? fail(L, "fchown") : ok(L);
}

static int sys_fchownat(lua_State *L)
{
	int dirfd = checkint(L, 1);
	const char *path = checkpath(L, 2);
	uid_t uid = checkid(L, 3);
	gid_t gid = checkid(L, 4);
	int flags = optint(L, 5, 0);

	if (fchownat(dirfd, path, uid, gid, flags) == -1)
		return failpath(L, "fchownat", path);
	return ok(L);
}

/* Times and access */

/* Seconds and nanoseconds as the utimens operation receives them, so
 * UTIME_NOW and UTIME_OMIT pass through untouched. */
static void checktimes(lua_State *L, int arg, struct timespec ts[2])
{
	ts[0].tv_sec = (time_t)checkinteger(L, arg);
	ts[0].tv_nsec = (long)checkinteger(L, arg + 1);
	ts[1].tv_sec = (time_t)checkinteger(L, arg + 2);
	ts[1].tv_nsec = (long)checkinteger(L, arg + 3);
}

static int sys_utimensat(lua_State *L)
{
	int dirfd = checkint(L, 1);
	const char *path = checkpath(L, 2);
	struct timespec ts[2];
	int flags;

	checktimes(L, 3, ts);
	flags = optint(L, 7, 0);
	if (utimensat(dirfd, path, ts, flags) == -1)
		return failpath(L, "utimensat", path);
	return ok(L);
}

static int sys_futimens(lua_State *L)
{
	int fd = checkint(L, 1);
	struct timespec ts[2];

	checktimes(L, 2, ts);
	return futimens(fd, ts) == -1 ? fail(L, "futimens") : ok(L);
}

static int sys_access(lua_State *L)
{
	const char *path = checkpath(L, 1);
	int mode = checkint(L, 2);

	if (access(path, mode) == -1)
		return failpath(L, "access", path);
	return ok(L);
}

static int sys_faccessat(lua_State *L)
{
	int dirfd = checkint(L, 1);
	const char *path = checkpath(L, 2);
	int mode = checkint(L, 3);
	int flags = optint(L, 4, 0);

	if (faccessat(dirfd, path, mode, flags) == -1)
		return failpath(L, "faccessat", path);
	return ok(L);
}

/* Directory streams: the luafs.Dir they make is in dir.c */

static int sys_opendir(lua_State *L)
{
	const char *path = checkpath(L, 1);
	DIR **dir = luafs_dir_new(L);

	*dir = opendir(path);
	if (!*dir)
		return failpath(L, "opendir", path);
	return 1;
}

/* On success the stream owns fd: closing the stream closes it. */
static int sys_fdopendir(lua_State *L)
{
	int fd = checkint(L, 1);
	DIR **dir = luafs_dir_new(L);

	*dir = fdopendir(fd);
	if (!*dir)
		return fail(L, "fdopendir");
	return 1;
}

/* Extended attributes */

/* A NULL path means the fd variant. */
static ssize_t xget(const char *path, int fd, const char *name, char *buf,
		    size_t size)
{
	if (name)
		return path ? lgetxattr(path, name, buf, size)
			    : fgetxattr(fd, name, buf, size);
	return path ? llistxattr(path, buf, size) : flistxattr(fd, buf, size);
}

/*
 * Fill the scratch buffer with a value (name) or the name list (no name).
 * Try the buffer as it is first, which is one system call when it is large
 * enough.  ERANGE says it is not: ask for the size and try again, as often
 * as another process keeps growing the value in between.
 */
static ssize_t xfetch(struct scratch *s, const char *path, int fd,
		      const char *name)
{
	ssize_t n;

	if (!scratch(s, SCRATCH_MIN))
		return -1;
	for (;;) {
		n = xget(path, fd, name, s->p, s->cap);
		if (n >= 0 || errno != ERANGE)
			return n;
		n = xget(path, fd, name, NULL, 0);
		if (n == -1 || !scratch(s, (size_t)n))
			return -1;
	}
}

static int xfail(lua_State *L, const char *what, const char *path)
{
	return path ? failpath(L, what, path) : fail(L, what);
}

static int getxattr_common(lua_State *L, const char *what, const char *path,
			   int fd, const char *name)
{
	struct scratch *s = toscratch(L);
	ssize_t n = xfetch(s, path, fd, name);

	if (n == -1)
		return xfail(L, what, path);
	pushscratch(L, s, (size_t)n);
	return 1;
}

/*
 * Split the list from a Lua string, not from the scratch buffer: a push
 * may run a finalizer, and one that calls pread can replace the buffer.
 */
static int listxattr_common(lua_State *L, const char *what,
			    const char *path, int fd)
{
	struct scratch *s = toscratch(L);
	ssize_t n = xfetch(s, path, fd, NULL);
	const char *p, *end;
	int i = 0;

	if (n == -1)
		return xfail(L, what, path);
	pushscratch(L, s, (size_t)n);
	p = lua_tostring(L, -1);
	end = p + n;
	lua_newtable(L);
	for (; p < end; p += strlen(p) + 1) {
		lua_pushstring(L, p);
		lua_rawseti(L, -2, ++i);
	}
	return 1;
}

static int sys_lsetxattr(lua_State *L)
{
	const char *path = checkpath(L, 1);
	const char *name = checkpath(L, 2);
	size_t len;
	const char *value = luaL_checklstring(L, 3, &len);
	int flags = optint(L, 4, 0);

	if (lsetxattr(path, name, value, len, flags) == -1)
		return failpath(L, "lsetxattr", path);
	return ok(L);
}

static int sys_fsetxattr(lua_State *L)
{
	int fd = checkint(L, 1);
	const char *name = checkpath(L, 2);
	size_t len;
	const char *value = luaL_checklstring(L, 3, &len);
	int flags = optint(L, 4, 0);

	if (fsetxattr(fd, name, value, len, flags) == -1)
		return fail(L, "fsetxattr");
	return ok(L);
}

static int sys_lgetxattr(lua_State *L)
{
	const char *path = checkpath(L, 1);

	return getxattr_common(L, "lgetxattr", path, -1, checkpath(L, 2));
}

static int sys_fgetxattr(lua_State *L)
{
	int fd = checkint(L, 1);

	return getxattr_common(L, "fgetxattr", NULL, fd, checkpath(L, 2));
}

static int sys_llistxattr(lua_State *L)
{
	return listxattr_common(L, "llistxattr", checkpath(L, 1), -1);
}

static int sys_flistxattr(lua_State *L)
{
	return listxattr_common(L, "flistxattr", NULL, checkint(L, 1));
}

static int sys_lremovexattr(lua_State *L)
{
	const char *path = checkpath(L, 1);
	const char *name = checkpath(L, 2);

	if (lremovexattr(path, name) == -1)
		return failpath(L, "lremovexattr", path);
	return ok(L);
}

static int sys_fremovexattr(lua_State *L)
{
	int fd = checkint(L, 1);
	const char *name = checkpath(L, 2);

	return fremovexattr(fd, name) == -1 ? fail(L, "fremovexattr") : ok(L);
}

/* Locks */

static int sys_flock(lua_State *L)
{
	int fd = checkint(L, 1);
	int op = checkint(L, 2);

	return flock(fd, op) == -1 ? fail(L, "flock") : ok(L);
}

/* The table is filled in place: F_GETLK answers in it. */
static int sys_fcntl_lock(lua_State *L)
{
	int fd = checkint(L, 1);
	int cmd = checkint(L, 2);
	struct flock fl;

	switch (cmd) {
	case F_GETLK: case F_SETLK: case F_SETLKW:
	case F_OFD_GETLK: case F_OFD_SETLK: case F_OFD_SETLKW:
		break;
	default:
		return luaL_argerror(L, 2, "not a lock command");
	}
	luaL_checktype(L, 3, LUA_TTABLE);
	/* Absent, it would be 0, F_RDLCK: a lock nobody asked for. */
	if (lua_getfield(L, 3, "type") == LUA_TNIL)
		luaL_argerror(L, 3, "no field 'type'");
	luafs_check_flock(L, 3, &fl);
	if (fcntl(fd, cmd, &fl) == -1)
		return fail(L, "fcntl");
	luafs_push_flock(L, &fl, 3);
	return 1;
}

/* Process */

static int sys_umask(lua_State *L)
{
	lua_pushinteger(L, umask(checkmode(L, 1)));
	return 1;
}

/* For tests: an operation's paths start at the mount's root. */
static int sys_chdir(lua_State *L)
{
	const char *path = checkpath(L, 1);

	if (chdir(path) == -1)
		return failpath(L, "chdir", path);
	return ok(L);
}

static int sys_fchdir(lua_State *L)
{
	if (fchdir(checkint(L, 1)) == -1)
		return fail(L, "fchdir");
	return ok(L);
}

/* The host's ids; a request's caller's are luafs.context()'s. */
static int sys_getuid(lua_State *L)
{
	lua_pushinteger(L, getuid());
	return 1;
}

static int sys_geteuid(lua_State *L)
{
	lua_pushinteger(L, geteuid());
	return 1;
}

static int sys_getgid(lua_State *L)
{
	lua_pushinteger(L, getgid());
	return 1;
}

static int sys_getegid(lua_State *L)
{
	lua_pushinteger(L, getegid());
	return 1;
}

static int sys_getpid(lua_State *L)
{
	lua_pushinteger(L, getpid());
	return 1;
}

static int sys_sleep(lua_State *L)
{
	lua_Number secs = luaL_checknumber(L, 1);
	lua_Integer whole = 0;
	struct timespec req, rem;

	/* Also refuses NaN, for which every comparison is false. */
	luaL_argcheck(L, secs >= 0 && lua_numbertointeger(secs, &whole), 1,
		      "out of range");
	req.tv_sec = (time_t)whole;
	req.tv_nsec = (long)((secs - (lua_Number)whole) * 1e9);
	while (nanosleep(&req, &rem) == -1) {
		if (errno != EINTR)
			return fail(L, "nanosleep");
		req = rem;
	}
	return ok(L);
}

/* To the nanosecond: os.time() has whole seconds only. */
static int sys_clock_gettime(lua_State *L)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_REALTIME, &ts) != 0)
		return fail(L, "clock_gettime");
	lua_pushinteger(L, ts.tv_sec);
	lua_pushinteger(L, ts.tv_nsec);
	return 2;
}

static int sys_strerror(lua_State *L)
{
	char buf[ERRBUF];

	lua_pushstring(L, errtext(checkint(L, 1), buf));
	return 1;
}

/* Watches and timers */

/*
 * What inotify and timerfd descriptors give is checked before it is used:
 * any descriptor may be passed, and the bytes of another kind of file are
 * not events or a count.  Their read(2) never returns 0 bytes, nor part
 * of an event or of a count, so such a read fails as EINVAL, the error
 * read(2) gives for an object unsuitable for reading.
 */
static int notread(lua_State *L)
{
	return pushfail(L, EINVAL, "read", NULL, NULL);
}

static int sys_inotify_init1(lua_State *L)
{
	int fd = inotify_init1(optint(L, 1, IN_CLOEXEC));

	if (fd == -1)
		return fail(L, "inotify_init1");
	lua_pushinteger(L, fd);
	return 1;
}

static int sys_inotify_add_watch(lua_State *L)
{
	int fd = checkint(L, 1);
	const char *path = checkpath(L, 2);
	uint32_t mask = checkuint(L, 3);
	int wd = inotify_add_watch(fd, path, mask);

	if (wd == -1)
		return failpath(L, "inotify_add_watch", path);
	lua_pushinteger(L, wd);
	return 1;
}

static int sys_inotify_rm_watch(lua_State *L)
{
	int fd = checkint(L, 1);
	int wd = checkint(L, 2);

	return inotify_rm_watch(fd, wd) == -1 ? fail(L, "inotify_rm_watch")
					      : ok(L);
}

#define BIT(name) { #name, name }

/* The bits an event can carry, each set as a field of its table. */
static const struct {
	const char *name;
	uint32_t bit;
} inotify_bits[] = {
	BIT(IN_ACCESS), BIT(IN_MODIFY), BIT(IN_ATTRIB), BIT(IN_CLOSE_WRITE),
	BIT(IN_CLOSE_NOWRITE), BIT(IN_OPEN), BIT(IN_MOVED_FROM),
	BIT(IN_MOVED_TO), BIT(IN_CREATE), BIT(IN_DELETE), BIT(IN_DELETE_SELF),
	BIT(IN_MOVE_SELF), BIT(IN_UNMOUNT), BIT(IN_Q_OVERFLOW), BIT(IN_IGNORED),
	BIT(IN_ISDIR),
};

#undef BIT

static void push_event(lua_State *L, const struct inotify_event *ev,
		       const char *name)
{
	size_t i;

	lua_createtable(L, 0, 5);
	lua_pushinteger(L, ev->wd);
	lua_setfield(L, -2, "wd");
	lua_pushinteger(L, ev->mask);
	lua_setfield(L, -2, "mask");
	lua_pushinteger(L, ev->cookie);
	lua_setfield(L, -2, "cookie");
	if (ev->len > 0) {
		/* The kernel pads the name with zero bytes. */
		lua_pushlstring(L, name, strnlen(name, ev->len));
		lua_setfield(L, -2, "name");
	}
	for (i = 0; i < sizeof inotify_bits / sizeof inotify_bits[0]; i++) {
		if (ev->mask & inotify_bits[i].bit) {
			lua_pushboolean(L, 1);
			lua_setfield(L, -2, inotify_bits[i].name);
		}
	}
}

/*
 * Room for at least one event with the longest name, which is all that
 * read(2) needs; what does not fit stays queued, and the descriptor stays
 * readable.  On the C stack rather than in scratch: building the tables
 * may run a finalizer that replaces scratch.
 */
#define INOTIFY_BUF 4096

static int sys_inotify_read(lua_State *L)
{
	int fd = checkint(L, 1);
	char buf[INOTIFY_BUF]
		__attribute__((aligned(__alignof__(struct inotify_event))));
	struct inotify_event ev;
	ssize_t n = read(fd, buf, sizeof buf);
	size_t off, left;
	int i = 0;

	if (n == -1)
		return fail(L, "read");
	if (n == 0)
		return notread(L);
	lua_newtable(L);
	for (off = 0; off < (size_t)n; off += sizeof ev + ev.len) {
		left = (size_t)n - off;
		if (left < sizeof ev)
			return notread(L);
		memcpy(&ev, buf + off, sizeof ev);
		if (ev.len > left - sizeof ev)
			return notread(L);
		push_event(L, &ev, buf + off + sizeof ev);
		lua_rawseti(L, -2, ++i);
	}
	return 1;
}

static int sys_timerfd_create(lua_State *L)
{
	int clock = optint(L, 1, CLOCK_MONOTONIC);
	int fd = timerfd_create(clock, optint(L, 2, TFD_CLOEXEC));

	if (fd == -1)
		return fail(L, "timerfd_create");
	lua_pushinteger(L, fd);
	return 1;
}

/* Seconds, which may have a fraction, rounded to the nanosecond. */
static void checkseconds(lua_State *L, int arg, struct timespec *ts)
{
	lua_Number secs = luaL_checknumber(L, arg);
	lua_Integer whole = 0;
	long nsec;

	/* Also refuses NaN, for which every comparison is false. */
	luaL_argcheck(L, secs >= 0 && lua_numbertointeger(secs, &whole), arg,
		      "out of range");
	nsec = (long)((secs - (lua_Number)whole) * 1e9 + 0.5);
	if (nsec == 1000000000) {
		whole++;
		nsec = 0;
	}
	ts->tv_sec = (time_t)whole;
	ts->tv_nsec = nsec;
}

static void pushseconds(lua_State *L, const struct timespec *ts)
{
	lua_pushnumber(L, (lua_Number)ts->tv_sec +
			  (lua_Number)ts->tv_nsec / 1e9);
}

static int sys_timerfd_settime(lua_State *L)
{
	int fd = checkint(L, 1);
	struct itimerspec its;
	int flags;

	checkseconds(L, 2, &its.it_value);
	checkseconds(L, 3, &its.it_interval);
	flags = optint(L, 4, 0);
	if (timerfd_settime(fd, flags, &its, NULL) == -1)
		return fail(L, "timerfd_settime");
	return ok(L);
}

static int sys_timerfd_gettime(lua_State *L)
{
	struct itimerspec its;

	if (timerfd_gettime(checkint(L, 1), &its) == -1)
		return fail(L, "timerfd_gettime");
	pushseconds(L, &its.it_value);
	pushseconds(L, &its.it_interval);
	return 2;
}

static int sys_timerfd_read(lua_State *L)
{
	int fd = checkint(L, 1);
	uint64_t count;
	ssize_t n = read(fd, &count, sizeof count);

	if (n == -1)
		return fail(L, "read");
	if (n != sizeof count)
		return notread(L);
	lua_pushinteger(L, (lua_Integer)count);
	return 1;
}

static const luaL_Reg sys_funcs[] = {
	{ "lstat", sys_lstat },
	{ "stat", sys_stat },
	{ "fstat", sys_fstat },
	{ "fstatat", sys_fstatat },
	{ "statvfs", sys_statvfs },
	{ "fstatvfs", sys_fstatvfs },
	{ "open", sys_open },
	{ "openat", sys_openat },
	{ "close", sys_close },
	{ "pread", sys_pread },
	{ "pwrite", sys_pwrite },
	{ "read", sys_read },
	{ "write", sys_write },
	{ "fsync", sys_fsync },
	{ "fdatasync", sys_fdatasync },
	{ "ftruncate", sys_ftruncate },
	{ "truncate", sys_truncate },
	{ "fallocate", sys_fallocate },
	{ "copy_file_range", sys_copy_file_range },
	{ "lseek", sys_lseek },
	{ "readlink", sys_readlink },
	{ "readlinkat", sys_readlinkat },
	{ "symlink", sys_symlink },
	{ "symlinkat", sys_symlinkat },
	{ "link", sys_link },
	{ "linkat", sys_linkat },
	{ "mkdir", sys_mkdir },
	{ "mkdirat", sys_mkdirat },
	{ "rmdir", sys_rmdir },
	{ "unlink", sys_unlink },
	{ "unlinkat", sys_unlinkat },
	{ "rename", sys_rename },
	{ "renameat2", sys_renameat2 },
	{ "mknod", sys_mknod },
	{ "mknodat", sys_mknodat },
	{ "mkfifo", sys_mkfifo },
	{ "chmod", sys_chmod },
	{ "fchmod", sys_fchmod },
	{ "fchmodat", sys_fchmodat },
	{ "chown", sys_chown },
	{ "lchown", sys_lchown },
	{ "fchown", sys_fchown },
	{ "fchownat", sys_fchownat },
	{ "utimensat", sys_utimensat },
	{ "futimens", sys_futimens },
	{ "access", sys_access },
	{ "faccessat", sys_faccessat },
	{ "opendir", sys_opendir },
	{ "fdopendir", sys_fdopendir },
	{ "lsetxattr", sys_lsetxattr },
	{ "fsetxattr", sys_fsetxattr },
	{ "lgetxattr", sys_lgetxattr },
	{ "fgetxattr", sys_fgetxattr },
	{ "llistxattr", sys_llistxattr },
	{ "flistxattr", sys_flistxattr },
	{ "lremovexattr", sys_lremovexattr },
	{ "fremovexattr", sys_fremovexattr },
	{ "flock", sys_flock },
	{ "fcntl_lock", sys_fcntl_lock },
	{ "umask", sys_umask },
	{ "chdir", sys_chdir },
	{ "fchdir", sys_fchdir },
	{ "getuid", sys_getuid },
	{ "geteuid", sys_geteuid },
	{ "getgid", sys_getgid },
	{ "getegid", sys_getegid },
	{ "getpid", sys_getpid },
	{ "sleep", sys_sleep },
	{ "clock_gettime", sys_clock_gettime },
	{ "strerror", sys_strerror },
	{ "inotify_init1", sys_inotify_init1 },
	{ "inotify_add_watch", sys_inotify_add_watch },
	{ "inotify_rm_watch", sys_inotify_rm_watch },
	{ "inotify_read", sys_inotify_read },
	{ "timerfd_create", sys_timerfd_create },
	{ "timerfd_settime", sys_timerfd_settime },
	{ "timerfd_gettime", sys_timerfd_gettime },
	{ "timerfd_read", sys_timerfd_read },
	{ NULL, NULL }
};

void luafs_open_sys(lua_State *L)
{
	struct scratch *s;

	luafs_dir_open(L);
	luaL_newlibtable(L, sys_funcs);
	s = lua_newuserdatauv(L, sizeof *s, 0);
	s->p = NULL;
	s->cap = 0;
	if (luafs_newmetatable(L, &scratch_type)) {
		lua_pushcfunction(L, scratch_gc);
		lua_setfield(L, -2, "__gc");
	}
	lua_setmetatable(L, -2);
	luaL_setfuncs(L, sys_funcs, 1);
}
