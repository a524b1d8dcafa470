/*
 * ref_passthrough.c: the benchmark's reference, a passthrough filesystem in
 * C on libfuse's high-level API.  It does what lua/examples/passthrough.lua
 * does, the same way, so that the two differ only by luafs's host and the
 * Lua code:
 *   - paths are resolved relative to an O_PATH directory fd held on ROOT
 *     (*at calls), umask 0;
 *   - getattr with a file handle is fstat, without one fstatat NOFOLLOW;
 *   - open/create keep the fd in fi->fh (O_CLOEXEC added); when running as
 *     root, what is created is given to a non-root caller with fchown(at);
 *   - read_buf answers with an fd-backed bufvec (FUSE_BUF_IS_FD |
 *     FUSE_BUF_FD_SEEK), so libfuse splices; write_buf fuse_buf_copy()s the
 *     request's bufvec into the fd with FUSE_BUF_SPLICE_NONBLOCK;
 *   - flush does nothing; lock keeps per-owner OFD descriptors and answers
 *     the unlock libfuse sends on every flush at once when there are none;
 *   - xattrs go through /proc/self/fd/ROOTFD/NAME;
 *   - readdir streams with offsets (telldir), fstatat per entry for
 *     readdirplus; one difference: each request seeks the stream to the
 *     offset asked for, as libfuse's passthrough_fh.c does, where luafs.Dir
 *     keeps the entry that did not fit and goes on without seeking (a seek
 *     makes the C library read the directory again from there);
 *   - init sets use_ino, nullpath_ok, the splice capabilities, and then the
 *     cache settings of the benchmark mode.
 *
 *   ref_passthrough MOUNTPOINT [-f] [-s] [-d] [-o opt,...] -- ROOT CACHE [OPS]
 *
 * CACHE is "nocache" (entry, attr and negative timeouts 0, kernel_cache 0)
 * or "cache" (timeouts 60 s, kernel_cache 1); scripts/bench/bench applies
 * the same values to passthrough.lua through scripts/bench/cachemode.lua.
 * OPS, a comma-separated list of struct fuse_operations member names,
 * registers only those (the bench passes the operations passthrough.lua
 * defines, so that the kernel sees the same ENOSYS answers from both);
 * without it every operation below is registered.
 */
#define FUSE_USE_VERSION 314
#define _GNU_SOURCE

#include <fuse.h>
#include <fuse_lowlevel.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <unistd.h>

static int rootfd = -1;
static int cache_on;
static int as_root;

static const char *rel(const char *path)
{
	return path[1] == '\0' ? "." : path + 1;
}

static int err(int res)
{
	return res == -1 ? -errno : res;
}

/*
 * Ownership of new nodes, as passthrough.lua's new_owner: only when running
 * as root and the caller is not root; in a set-group-ID directory the group
 * is inherited.  Returns 0 when there is nothing to change.
 */
static int new_owner(const char *name, uid_t *uid, gid_t *gid)
{
	struct fuse_context *ctx;
	const char *slash;
	char parent[PATH_MAX];
	struct stat pst;

	if (!as_root)
		return 0;
	ctx = fuse_get_context();
	*uid = ctx->uid;
	*gid = ctx->gid;
	if (*uid == 0 && *gid == 0)
		return 0;
	slash = strrchr(name, '/');
	if (slash == NULL)
		strcpy(parent, ".");
	else
		snprintf(parent, sizeof(parent), "%.*s", (int)(slash - name),
			 name);
	if (fstatat(rootfd, parent, &pst, AT_SYMLINK_NOFOLLOW) == 0 &&
	    (pst.st_mode & S_ISGID))
		*gid = (gid_t)-1;
	return 1;
}

/* After name was created: gives it to the caller, or removes it again. */
static int created(const char *name, int undo_flags)
{
	uid_t uid;
	gid_t gid;

	if (new_owner(name, &uid, &gid) &&
	    fchownat(rootfd, name, uid, gid, AT_SYMLINK_NOFOLLOW) == -1) {
		int e = errno;

		unlinkat(rootfd, name, undo_flags);
		return -e;
	}
	return 0;
}

static void *rp_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
	cfg->use_ino = 1;
	cfg->nullpath_ok = 1;
	conn->want |= conn->capable & (FUSE_CAP_SPLICE_WRITE |
				       FUSE_CAP_SPLICE_MOVE |
				       FUSE_CAP_SPLICE_READ);
	if (cache_on) {
		cfg->entry_timeout = 60;
		cfg->attr_timeout = 60;
		cfg->negative_timeout = 60;
		cfg->kernel_cache = 1;
	} else {
		cfg->entry_timeout = 0;
		cfg->attr_timeout = 0;
		cfg->negative_timeout = 0;
		cfg->kernel_cache = 0;
	}
	return NULL;
}

static int rp_getattr(const char *path, struct stat *st,
		      struct fuse_file_info *fi)
{
	if (fi)
		return err(fstat((int)fi->fh, st));
	return err(fstatat(rootfd, rel(path), st, AT_SYMLINK_NOFOLLOW));
}

static int rp_access(const char *path, int mask)
{
	return err(faccessat(rootfd, rel(path), mask, 0));
}

static int rp_readlink(const char *path, char *buf, size_t size)
{
	ssize_t n = readlinkat(rootfd, rel(path), buf, size - 1);

	if (n == -1)
		return -errno;
	buf[n] = '\0';
	return 0;
}

static int rp_mknod(const char *path, mode_t mode, dev_t rdev)
{
	if (mknodat(rootfd, rel(path), mode, rdev) == -1)
		return -errno;
	return created(rel(path), 0);
}

static int rp_mkdir(const char *path, mode_t mode)
{
	if (mkdirat(rootfd, rel(path), mode) == -1)
		return -errno;
	return created(rel(path), AT_REMOVEDIR);
}

static int rp_unlink(const char *path)
{
	return err(unlinkat(rootfd, rel(path), 0));
}

static int rp_rmdir(const char *path)
{
	return err(unlinkat(rootfd, rel(path), AT_REMOVEDIR));
}

static int rp_symlink(const char *target, const char *path)
{
	if (symlinkat(target, rootfd, rel(path)) == -1)
		return -errno;
	return created(rel(path), 0);
}

static int rp_rename(const char *from, const char *to, unsigned int flags)
{
	return err(renameat2(rootfd, rel(from), rootfd, rel(to), flags));
}

static int rp_link(const char *from, const char *to)
{
	return err(linkat(rootfd, rel(from), rootfd, rel(to), 0));
}

static int rp_chmod(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	if (fi)
		return err(fchmod((int)fi->fh, mode));
	return err(fchmodat(rootfd, rel(path), mode, 0));
}

static int rp_chown(const char *path, uid_t uid, gid_t gid,
		    struct fuse_file_info *fi)
{
	if (fi)
		return err(fchown((int)fi->fh, uid, gid));
	return err(fchownat(rootfd, rel(path), uid, gid, AT_SYMLINK_NOFOLLOW));
}

static int rp_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
	int fd, res;

	if (fi)
		return err(ftruncate((int)fi->fh, size));
	fd = openat(rootfd, rel(path), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd == -1)
		return -errno;
	res = err(ftruncate(fd, size));
	close(fd);
	return res;
}

static int rp_utimens(const char *path, const struct timespec tv[2],
		      struct fuse_file_info *fi)
{
	if (fi)
		return err(futimens((int)fi->fh, tv));
	return err(utimensat(rootfd, rel(path), tv, AT_SYMLINK_NOFOLLOW));
}

static int rp_open(const char *path, struct fuse_file_info *fi)
{
	int fd = openat(rootfd, rel(path), fi->flags | O_CLOEXEC);

	if (fd == -1)
		return -errno;
	fi->fh = (uint64_t)fd;
	return 0;
}

static int rp_create(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	const char *name = rel(path);
	int fd = openat(rootfd, name, fi->flags | O_CREAT | O_CLOEXEC, mode);
	uid_t uid;
	gid_t gid;

	if (fd == -1)
		return -errno;
	if (new_owner(name, &uid, &gid) && fchown(fd, uid, gid) == -1) {
		int e = errno;

		close(fd);
		unlinkat(rootfd, name, 0);
		return -e;
	}
	fi->fh = (uint64_t)fd;
	return 0;
}

static int rp_read_buf(const char *path, struct fuse_bufvec **bufp,
		       size_t size, off_t off, struct fuse_file_info *fi)
{
	struct fuse_bufvec *bv = malloc(sizeof(*bv));

	(void)path;
	if (bv == NULL)
		return -ENOMEM;
	*bv = (struct fuse_bufvec)FUSE_BUFVEC_INIT(size);
	bv->buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
	bv->buf[0].fd = (int)fi->fh;
	bv->buf[0].pos = off;
	*bufp = bv;
	return 0;
}

static int rp_write_buf(const char *path, struct fuse_bufvec *buf, off_t off,
			struct fuse_file_info *fi)
{
	struct fuse_bufvec dst = FUSE_BUFVEC_INIT(fuse_buf_size(buf));

	(void)path;
	dst.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
	dst.buf[0].fd = (int)fi->fh;
	dst.buf[0].pos = off;
	return (int)fuse_buf_copy(&dst, buf, FUSE_BUF_SPLICE_NONBLOCK);
}

static int rp_statfs(const char *path, struct statvfs *sv)
{
	(void)path;
	return err(fstatvfs(rootfd, sv));
}

static int rp_flush(const char *path, struct fuse_file_info *fi)
{
	(void)path;
	(void)fi;
	return 0;
}

static int rp_release(const char *path, struct fuse_file_info *fi)
{
	(void)path;
	close((int)fi->fh);
	return 0;
}

static int rp_fsync(const char *path, int datasync, struct fuse_file_info *fi)
{
	(void)path;
	return err(datasync ? fdatasync((int)fi->fh) : fsync((int)fi->fh));
}

/* Extended attributes: no *at calls, so through /proc/self/fd/ROOTFD. */
static int full(char *out, const char *path)
{
	if ((size_t)snprintf(out, PATH_MAX + 32, "/proc/self/fd/%d/%s", rootfd,
			     rel(path)) >= PATH_MAX + 32)
		return -ENAMETOOLONG;
	return 0;
}

static int rp_setxattr(const char *path, const char *name, const char *value,
		       size_t size, int flags)
{
	char p[PATH_MAX + 32];
	int res = full(p, path);

	return res ? res : err(lsetxattr(p, name, value, size, flags));
}

static int rp_getxattr(const char *path, const char *name, char *value,
		       size_t size)
{
	char p[PATH_MAX + 32];
	int res = full(p, path);

	return res ? res : err((int)lgetxattr(p, name, value, size));
}

static int rp_listxattr(const char *path, char *list, size_t size)
{
	char p[PATH_MAX + 32];
	int res = full(p, path);

	return res ? res : err((int)llistxattr(p, list, size));
}

static int rp_removexattr(const char *path, const char *name)
{
	char p[PATH_MAX + 32];
	int res = full(p, path);

	return res ? res : err(lremovexattr(p, name));
}

struct dirh {
	DIR *dir;
	int fd;
};

#define DIRH(fi) ((struct dirh *)(uintptr_t)(fi)->fh)

static int rp_opendir(const char *path, struct fuse_file_info *fi)
{
	int fd = openat(rootfd, rel(path), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct dirh *h;

	if (fd == -1)
		return -errno;
	h = malloc(sizeof(*h));
	if (h == NULL) {
		close(fd);
		return -ENOMEM;
	}
	h->fd = fd;
	h->dir = fdopendir(fd);
	if (h->dir == NULL) {
		int e = errno;

		close(fd);
		free(h);
		return -e;
	}
	fi->fh = (uint64_t)(uintptr_t)h;
	return 0;
}

/* Streams with telldir offsets, seeking to the offset asked for. */
static int rp_readdir(const char *path, void *buf, fuse_fill_dir_t filler,
		      off_t offset, struct fuse_file_info *fi,
		      enum fuse_readdir_flags flags)
{
	struct dirh *h = DIRH(fi);
	int plus = flags & FUSE_READDIR_PLUS;
	struct dirent *e;
	struct stat st;

	(void)path;
	if (telldir(h->dir) != offset)
		seekdir(h->dir, offset);
	for (;;) {
		errno = 0;
		e = readdir(h->dir);
		if (e == NULL)
			return errno ? -errno : 0;
		if (plus) {
			if (fstatat(h->fd, e->d_name, &st,
				    AT_SYMLINK_NOFOLLOW) == -1)
				continue;
		} else {
			memset(&st, 0, sizeof(st));
			st.st_ino = e->d_ino;
			st.st_mode = (mode_t)e->d_type << 12;
		}
		if (filler(buf, e->d_name, &st, telldir(h->dir),
			   plus ? FUSE_FILL_DIR_PLUS : 0))
			return 0;
	}
}

static int rp_releasedir(const char *path, struct fuse_file_info *fi)
{
	(void)path;
	closedir(DIRH(fi)->dir);
	free(DIRH(fi));
	return 0;
}

static int rp_fsyncdir(const char *path, int datasync,
		       struct fuse_file_info *fi)
{
	int fd = DIRH(fi)->fd;

	(void)path;
	return err(datasync ? fdatasync(fd) : fsync(fd));
}

static void rp_destroy(void *private_data)
{
	(void)private_data;
}

/*
 * POSIX record locks as passthrough.lua does them: one re-opened descriptor
 * per (file, lock owner), holding OFD locks; a count of such descriptors
 * lets the unlock that libfuse sends on every flush return at once.
 */
struct owner {
	struct owner *next;
	dev_t dev;
	ino_t ino;
	uint64_t owner;
	int fd;
};

static pthread_mutex_t owners_lock = PTHREAD_MUTEX_INITIALIZER;
static struct owner *owners;
static int nowners;

static int reopen(int fd)
{
	char proc[64];
	int base = O_NONBLOCK | O_NOCTTY | O_CLOEXEC, ofd;

	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	ofd = open(proc, O_RDWR | base);
	if (ofd >= 0 || (errno != EACCES && errno != EISDIR &&
			 errno != EROFS && errno != ETXTBSY))
		return ofd;
	ofd = open(proc, O_RDONLY | base);
	if (ofd >= 0 || errno != EACCES)
		return ofd;
	return open(proc, O_WRONLY | base);
}

static struct owner **find_owner(dev_t dev, ino_t ino, uint64_t owner)
{
	struct owner **o;

	for (o = &owners; *o; o = &(*o)->next)
		if ((*o)->dev == dev && (*o)->ino == ino &&
		    (*o)->owner == owner)
			break;
	return o;
}

static int rp_lock(const char *path, struct fuse_file_info *fi, int cmd,
		   struct flock *lk)
{
	int fd = (int)fi->fh, unlock = lk->l_type == F_UNLCK, ofd, res;
	struct owner **o, *n;
	struct flock t;
	struct stat st;
	int delay_us = 1000;

	(void)path;
	if (unlock && __atomic_load_n(&nowners, __ATOMIC_RELAXED) <= 0)
		return 0;
	if (fstat(fd, &st) == -1)
		return -errno;
	t = *lk;
	t.l_pid = 0;
	pthread_mutex_lock(&owners_lock);
	o = find_owner(st.st_dev, st.st_ino, fi->lock_owner);
	if (cmd == F_GETLK) {
		ofd = *o ? (*o)->fd : fd;
		res = err(fcntl(ofd, F_OFD_GETLK, &t));
		pthread_mutex_unlock(&owners_lock);
		if (res == 0) {
			*lk = t;
		}
		return res;
	}
	if (*o == NULL) {
		if (unlock) {
			pthread_mutex_unlock(&owners_lock);
			return 0;
		}
		n = calloc(1, sizeof(*n));
		if (n == NULL || (n->fd = reopen(fd)) < 0) {
			res = n ? -errno : -ENOMEM;
			free(n);
			pthread_mutex_unlock(&owners_lock);
			return res;
		}
		n->dev = st.st_dev;
		n->ino = st.st_ino;
		n->owner = fi->lock_owner;
		*o = n;
		__atomic_add_fetch(&nowners, 1, __ATOMIC_RELAXED);
	}
	ofd = (*o)->fd;
	if (unlock && lk->l_start == 0 && lk->l_len == 0) {
		n = *o;
		*o = n->next;
		close(n->fd);
		free(n);
		__atomic_sub_fetch(&nowners, 1, __ATOMIC_RELAXED);
		pthread_mutex_unlock(&owners_lock);
		return 0;
	}
	pthread_mutex_unlock(&owners_lock);
	for (;;) {
		res = err(fcntl(ofd, F_OFD_SETLK, &t));
		if (cmd != F_SETLKW || (res != -EAGAIN && res != -EACCES))
			return res;
		if (fuse_interrupted())
			return -EINTR;
		usleep((useconds_t)delay_us);
		delay_us = delay_us * 2 > 50000 ? 50000 : delay_us * 2;
	}
}

static int rp_flock(const char *path, struct fuse_file_info *fi, int op)
{
	int fd = (int)fi->fh, res, delay_us = 1000;

	(void)path;
	if (op & (LOCK_NB | LOCK_UN))
		return err(flock(fd, op));
	for (;;) {
		res = err(flock(fd, op | LOCK_NB));
		if (res != -EAGAIN && res != -EACCES)
			return res;
		if (fuse_interrupted())
			return -EINTR;
		usleep((useconds_t)delay_us);
		delay_us = delay_us * 2 > 50000 ? 50000 : delay_us * 2;
	}
}

static int rp_fallocate(const char *path, int mode, off_t off, off_t len,
			struct fuse_file_info *fi)
{
	(void)path;
	return err(fallocate((int)fi->fh, mode, off, len));
}

static ssize_t rp_copy_file_range(const char *pin, struct fuse_file_info *fin,
				  off_t oin, const char *pout,
				  struct fuse_file_info *fout, off_t oout,
				  size_t len, int flags)
{
	ssize_t n;

	(void)pin;
	(void)pout;
	n = copy_file_range((int)fin->fh, &oin, (int)fout->fh, &oout, len,
			    (unsigned)flags);
	return n == -1 ? -errno : n;
}

static off_t rp_lseek(const char *path, off_t off, int whence,
		      struct fuse_file_info *fi)
{
	off_t res = lseek((int)fi->fh, off, whence);

	(void)path;
	return res == -1 ? -errno : res;
}

static struct fuse_operations all_ops = {
	.init = rp_init,
	.destroy = rp_destroy,
	.getattr = rp_getattr,
	.access = rp_access,
	.readlink = rp_readlink,
	.mknod = rp_mknod,
	.mkdir = rp_mkdir,
	.unlink = rp_unlink,
	.rmdir = rp_rmdir,
	.symlink = rp_symlink,
	.rename = rp_rename,
	.link = rp_link,
	.chmod = rp_chmod,
	.chown = rp_chown,
	.truncate = rp_truncate,
	.utimens = rp_utimens,
	.open = rp_open,
	.create = rp_create,
	.read_buf = rp_read_buf,
	.write_buf = rp_write_buf,
	.statfs = rp_statfs,
	.flush = rp_flush,
	.release = rp_release,
	.fsync = rp_fsync,
	.setxattr = rp_setxattr,
	.getxattr = rp_getxattr,
	.listxattr = rp_listxattr,
	.removexattr = rp_removexattr,
	.opendir = rp_opendir,
	.readdir = rp_readdir,
	.releasedir = rp_releasedir,
	.fsyncdir = rp_fsyncdir,
	.lock = rp_lock,
	.flock = rp_flock,
	.fallocate = rp_fallocate,
	.copy_file_range = rp_copy_file_range,
	.lseek = rp_lseek,
};

/* Keeps only the operations named in list (init always stays). */
static int select_ops(struct fuse_operations *ops, const char *list)
{
	struct fuse_operations sel = { .init = all_ops.init };
	char *copy = strdup(list), *name, *save = NULL;

	if (copy == NULL)
		return -1;
	for (name = strtok_r(copy, ",", &save); name;
	     name = strtok_r(NULL, ",", &save)) {
#define OP(n) if (strcmp(name, #n) == 0) { sel.n = all_ops.n; continue; }
		OP(init) OP(destroy) OP(getattr) OP(access) OP(readlink) OP(mknod)
		OP(mkdir) OP(unlink) OP(rmdir) OP(symlink) OP(rename)
		OP(link) OP(chmod) OP(chown) OP(truncate) OP(utimens)
		OP(open) OP(create) OP(read_buf) OP(write_buf) OP(statfs)
		OP(flush) OP(release) OP(fsync) OP(setxattr) OP(getxattr)
		OP(listxattr) OP(removexattr) OP(opendir) OP(readdir)
		OP(releasedir) OP(fsyncdir) OP(lock) OP(flock)
		OP(fallocate) OP(copy_file_range) OP(lseek)
#undef OP
		/* Operations the reference does not implement are left out;
		 * the bench only exercises the ones above. */
		fprintf(stderr, "ref_passthrough: note: no '%s' here\n", name);
	}
	free(copy);
	*ops = sel;
	return 0;
}

int main(int argc, char **argv)
{
	struct fuse_args args;
	struct fuse_cmdline_opts opts;
	struct fuse_operations ops = all_ops;
	struct fuse_loop_config *lc;
	struct fuse *fuse;
	int i, split = argc, res = 1;

	for (i = 1; i < argc; i++)
		if (strcmp(argv[i], "--") == 0) {
			split = i;
			break;
		}
	if (split >= argc - 2) {
		fprintf(stderr, "usage: %s MOUNTPOINT [-f] [-s] [-o opts] -- "
			"ROOT nocache|cache [OPS]\n", argv[0]);
		return 1;
	}
	cache_on = strcmp(argv[split + 2], "cache") == 0;
	if (!cache_on && strcmp(argv[split + 2], "nocache") != 0) {
		fprintf(stderr, "ref_passthrough: cache mode must be nocache "
			"or cache\n");
		return 1;
	}
	if (split + 3 < argc && select_ops(&ops, argv[split + 3]) != 0)
		return 1;
	umask(0);
	as_root = geteuid() == 0;
	rootfd = open(argv[split + 1], O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (rootfd == -1) {
		perror(argv[split + 1]);
		return 1;
	}
	args = (struct fuse_args)FUSE_ARGS_INIT(split, argv);
	if (fuse_parse_cmdline(&args, &opts) != 0 || opts.mountpoint == NULL) {
		fprintf(stderr, "ref_passthrough: no mountpoint\n");
		return 1;
	}
	fuse = fuse_new(&args, &ops, sizeof(ops), NULL);
	if (fuse == NULL)
		goto out_args;
	if (fuse_mount(fuse, opts.mountpoint) != 0)
		goto out_fuse;
	if (fuse_daemonize(opts.foreground) != 0 ||
	    fuse_set_signal_handlers(fuse_get_session(fuse)) != 0)
		goto out_unmount;
	if (opts.singlethread) {
		res = fuse_loop(fuse);
	} else {
		/* As luafs's serve() does with one state. */
		lc = fuse_loop_cfg_create();
		fuse_loop_cfg_set_clone_fd(lc, (unsigned)opts.clone_fd);
		if (opts.max_idle_threads)
			fuse_loop_cfg_set_idle_threads(lc,
						       opts.max_idle_threads);
		if (opts.max_threads)
			fuse_loop_cfg_set_max_threads(lc, opts.max_threads);
		res = fuse_loop_mt(fuse, lc);
		fuse_loop_cfg_destroy(lc);
	}
	res = res != 0;
	fuse_remove_signal_handlers(fuse_get_session(fuse));
out_unmount:
	fuse_unmount(fuse);
out_fuse:
	fuse_destroy(fuse);
out_args:
	free(opts.mountpoint);
	fuse_opt_free_args(&args);
	close(rootfd);
	return res;
}
