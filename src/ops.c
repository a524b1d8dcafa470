/*
 * ops.c: the fuse_operations table.  Each entry is a thin shim that packs
 * its arguments into a luafs_call, with one function that pushes them for
 * the script and one that turns the script's results into libfuse's
 * out-parameters.  Only the operations the script defines are registered,
 * so the kernel's defaults apply to the rest.
 */
#include "luafs.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>

static void push_path(lua_State *L, const char *path)
{
	if (path)
		lua_pushstring(L, path);
	else
		lua_pushnil(L);
}

/*
 * bare (see struct luafs_call) says when take can run outside protected
 * mode: when it cannot run the script's code, through a metamethod or a
 * function it calls.  Without one, take runs in a lua_pcall of its own.
 */
static int call_bare(enum luafs_op op, const char *path,
		     struct fuse_file_info *fi, luafs_push_fn push,
		     luafs_take_fn take,
		     int (*bare)(lua_State *L, int first, int n), void *arg)
{
	struct luafs_call c = {
		.op = op, .path = path, .fi = fi,
		.push = push, .take = take, .bare = bare, .arg = arg,
	};

	return luafs_call(&c);
}

static int call_path(enum luafs_op op, const char *path,
		     struct fuse_file_info *fi, luafs_push_fn push,
		     luafs_take_fn take, void *arg)
{
	return call_bare(op, path, fi, push, take, NULL, arg);
}

/* For takes that read only numbers and strings, which run no Lua code. */
static int always_bare(lua_State *L, int first, int n)
{
	(void)L;
	(void)first;
	(void)n;
	return 1;
}

/* Arguments most operations share, beside the path and fi. */
struct args {
	const char *s;		/* second path or a name */
	const char *data;
	size_t size;
	off_t offset;
	lua_Integer n1, n2;	/* mode, flags, uid/gid, ... */
	void *out;
};

#define ARGS(c) ((struct args *)(c)->arg)

static int push_p(lua_State *L, struct luafs_call *c)
{
	push_path(L, c->path);
	return 1;
}

static int push_p_fi(lua_State *L, struct luafs_call *c)
{
	push_path(L, c->path);
	luafs_fileinfo_push(L, c->fi, 0);
	return 2;
}

static int push_p_n1(lua_State *L, struct luafs_call *c)
{
	push_path(L, c->path);
	lua_pushinteger(L, ARGS(c)->n1);
	return 2;
}

static int push_p_n1_fi(lua_State *L, struct luafs_call *c)
{
	push_p_n1(L, c);
	luafs_fileinfo_push(L, c->fi, 0);
	return 3;
}

static int push_p_n1_n2(lua_State *L, struct luafs_call *c)
{
	push_p_n1(L, c);
	lua_pushinteger(L, ARGS(c)->n2);
	return 3;
}

static int push_p_s(lua_State *L, struct luafs_call *c)
{
	push_path(L, c->path);
	lua_pushstring(L, ARGS(c)->s);
	return 2;
}

static int push_p_s_n1(lua_State *L, struct luafs_call *c)
{
	push_p_s(L, c);
	lua_pushinteger(L, ARGS(c)->n1);
	return 3;
}

/* What a refused value was, for the log: its type, and a number's value. */
static const char *got(lua_State *L, int idx)
{
	if (lua_type(L, idx) != LUA_TNUMBER)
		return luaL_typename(L, idx);
	if (lua_isinteger(L, idx))
		return lua_pushfstring(L, "number %I", lua_tointeger(L, idx));
	return lua_pushfstring(L, "number %f", lua_tonumber(L, idx));
}

/* Checks that result idx is an integer in [0, max]. */
static lua_Integer take_count(lua_State *L, struct luafs_call *c, int idx,
			      lua_Integer max)
{
	int isint = 0;
	lua_Integer n = 0;

	/* Numbers only: lua_tointegerx alone would also take "12". */
	if (lua_type(L, idx) == LUA_TNUMBER)
		n = lua_tointegerx(L, idx, &isint);
	if (!isint)
		luaL_error(L, "%s must return an integer, got %s",
			   luafs_op_names[c->op], got(L, idx));
	if (n > max)
		luaL_error(L, "%s returned %I, more than the %I asked for",
			   luafs_op_names[c->op], n, max);
	return n;
}

static const char *take_string(lua_State *L, struct luafs_call *c, int idx,
			       size_t *len)
{
	const char *s = lua_type(L, idx) == LUA_TSTRING ?
			lua_tolstring(L, idx, len) : NULL;

	if (s == NULL)
		luaL_error(L, "%s must return a string, got %s",
			   luafs_op_names[c->op], got(L, idx));
	return s;
}

/* getattr */

/*
 * The kernel marks an inode bad for good when getattr gives it no valid
 * file type, answers EIO with no word for a negative size, and keeps only
 * 32 bits of nlink, blksize and rdev (struct fuse_attr): each of those is
 * an error here, with a log line that says which field.
 */
static int check_kernel_stat(lua_State *L, const struct stat *st)
{
	static const char *const u32 = "an integer from 0 to 4294967295";
	static const char *const nonneg = "an integer of 0 or more";
	const char *field = NULL, *expected = NULL;
	lua_Integer v = 0;
	char mode[16];

	switch (st->st_mode & S_IFMT) {
	case S_IFREG: case S_IFDIR: case S_IFLNK: case S_IFCHR:
	case S_IFBLK: case S_IFIFO: case S_IFSOCK:
		break;
	default:
		snprintf(mode, sizeof(mode), "%#o", (unsigned)st->st_mode);
		return luaL_error(L, "stat field 'mode' (%s) has no file type "
				  "such as luafs.S_IFREG", mode);
	}
	if (st->st_size < 0)
		field = "size", v = st->st_size, expected = nonneg;
	else if (st->st_blocks < 0)
		field = "blocks", v = st->st_blocks, expected = nonneg;
	else if ((uint64_t)st->st_nlink > UINT32_MAX)
		field = "nlink", v = (lua_Integer)st->st_nlink, expected = u32;
	else if (st->st_blksize < 0 || st->st_blksize > UINT32_MAX)
		field = "blksize", v = st->st_blksize, expected = u32;
	else if ((uint64_t)st->st_rdev > UINT32_MAX)
		field = "rdev", v = (lua_Integer)st->st_rdev, expected = u32;
	if (field != NULL)
		return luaL_error(L, "stat field '%s' is %I; the kernel takes "
				  "%s", field, v, expected);
	return 0;
}

static int take_stat(lua_State *L, struct luafs_call *c, int first, int n)
{
	(void)n;
	luafs_check_stat(L, first, c->arg);
	return check_kernel_stat(L, c->arg);
}

/* A luafs.Stat, the answer of fast getattrs: copied, nothing else read. */
static int quick_stat(lua_State *L, struct luafs_call *c, int first, int n)
{
	const struct stat *from;

	if (n < 1 || (from = luafs_test_stat(L, first)) == NULL)
		return 0;
	*(struct stat *)c->arg = *from;
	c->result = check_kernel_stat(L, from);
	return 1;
}

/*
 * Only a table's metamethods could run Lua code while its fields are read:
 * a luafs.Stat is copied, and anything but a table is refused unread.
 */
static int bare_stat(lua_State *L, int first, int n)
{
	if (n < 1 || lua_type(L, first) != LUA_TTABLE)
		return 1;
	if (lua_getmetatable(L, first)) {
		lua_pop(L, 1);
		return 0;
	}
	return 1;
}

static int op_getattr(const char *path, struct stat *st,
		      struct fuse_file_info *fi)
{
	struct luafs_call c = {
		.op = OP_getattr, .path = path, .fi = fi, .push = push_p_fi,
		.take = take_stat, .bare = bare_stat, .quick = quick_stat,
		.arg = st,
	};

	return luafs_call(&c);
}

/* readlink */

static int push_readlink(lua_State *L, struct luafs_call *c)
{
	push_path(L, c->path);
	lua_pushinteger(L, (lua_Integer)ARGS(c)->size);
	return 2;
}

static int take_readlink(lua_State *L, struct luafs_call *c, int first,
			 int n)
{
	struct args *a = c->arg;
	size_t len;
	const char *s = take_string(L, c, first, &len);

	(void)n;
	if (len >= a->size)
		len = a->size - 1;
	memcpy(a->out, s, len);
	((char *)a->out)[len] = '\0';
	return 0;
}

static int op_readlink(const char *path, char *buf, size_t size)
{
	struct args a = { .size = size, .out = buf };

	if (size == 0)
		return -EINVAL;
	return call_bare(OP_readlink, path, NULL, push_readlink,
			 take_readlink, always_bare, &a);
}

/* namespace operations */

static int op_mknod(const char *path, mode_t mode, dev_t rdev)
{
	struct args a = { .n1 = mode, .n2 = (lua_Integer)rdev };

	return call_path(OP_mknod, path, NULL, push_p_n1_n2, NULL, &a);
}

static int op_mkdir(const char *path, mode_t mode)
{
	struct args a = { .n1 = mode };

	return call_path(OP_mkdir, path, NULL, push_p_n1, NULL, &a);
}

static int op_unlink(const char *path)
{
	return call_path(OP_unlink, path, NULL, push_p, NULL, NULL);
}

static int op_rmdir(const char *path)
{
	return call_path(OP_rmdir, path, NULL, push_p, NULL, NULL);
}

/* symlink(target, linkpath): the path argument is the new link. */
static int push_symlink(lua_State *L, struct luafs_call *c)
{
	lua_pushstring(L, ARGS(c)->s);
	push_path(L, c->path);
	return 2;
}

static int op_symlink(const char *target, const char *linkpath)
{
	struct args a = { .s = target };

	return call_path(OP_symlink, linkpath, NULL, push_symlink, NULL, &a);
}

static int op_rename(const char *from, const char *to, unsigned int flags)
{
	struct args a = { .s = to, .n1 = flags };

	return call_path(OP_rename, from, NULL, push_p_s_n1, NULL, &a);
}

static int op_link(const char *from, const char *to)
{
	struct args a = { .s = to };

	return call_path(OP_link, from, NULL, push_p_s, NULL, &a);
}

/* attributes */

static int op_chmod(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	struct args a = { .n1 = mode };

	return call_path(OP_chmod, path, fi, push_p_n1_fi, NULL, &a);
}

/* (uid_t)-1 means "unchanged"; the script sees -1, as chown(2) takes. */
static int push_chown(lua_State *L, struct luafs_call *c)
{
	push_p_n1_n2(L, c);
	luafs_fileinfo_push(L, c->fi, 0);
	return 4;
}

static int op_chown(const char *path, uid_t uid, gid_t gid,
		    struct fuse_file_info *fi)
{
	struct args a = {
		.n1 = uid == (uid_t)-1 ? -1 : (lua_Integer)uid,
		.n2 = gid == (gid_t)-1 ? -1 : (lua_Integer)gid,
	};

	return call_path(OP_chown, path, fi, push_chown, NULL, &a);
}

static int op_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
	struct args a = { .n1 = size };

	return call_path(OP_truncate, path, fi, push_p_n1_fi, NULL, &a);
}

static int push_utimens(lua_State *L, struct luafs_call *c)
{
	const struct timespec *tv = ARGS(c)->out;

	push_path(L, c->path);
	lua_pushinteger(L, tv[0].tv_sec);
	lua_pushinteger(L, tv[0].tv_nsec);
	lua_pushinteger(L, tv[1].tv_sec);
	lua_pushinteger(L, tv[1].tv_nsec);
	luafs_fileinfo_push(L, c->fi, 0);
	return 6;
}

static int op_utimens(const char *path, const struct timespec tv[2],
		      struct fuse_file_info *fi)
{
	struct args a = { .out = (void *)tv };

	return call_path(OP_utimens, path, fi, push_utimens, NULL, &a);
}

static int op_access(const char *path, int mask)
{
	struct args a = { .n1 = mask };

	return call_path(OP_access, path, NULL, push_p_n1, NULL, &a);
}

/* open files */

static int push_open(lua_State *L, struct luafs_call *c)
{
	push_path(L, c->path);
	luafs_fileinfo_push(L, c->fi, 1);
	return 2;
}

static int push_create(lua_State *L, struct luafs_call *c)
{
	push_path(L, c->path);
	lua_pushinteger(L, ARGS(c)->n1);
	luafs_fileinfo_push(L, c->fi, 1);
	return 3;
}

/* A value returned by open, create or opendir becomes the handle. */
static int take_handle(lua_State *L, struct luafs_call *c, int first, int n)
{
	if (n > 0 && !lua_isnil(L, first))
		luafs_handle_set(L, c->st, c->fi, first, 1);
	return 0;
}

static int op_open(const char *path, struct fuse_file_info *fi)
{
	return call_bare(OP_open, path, fi, push_open, take_handle, always_bare,
			 NULL);
}

static int op_create(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	struct args a = { .n1 = mode };

	return call_bare(OP_create, path, fi, push_create, take_handle,
			 always_bare, &a);
}

static int op_opendir(const char *path, struct fuse_file_info *fi)
{
	return call_bare(OP_opendir, path, fi, push_open, take_handle,
			 always_bare, NULL);
}

static int push_read(lua_State *L, struct luafs_call *c)
{
	push_path(L, c->path);
	lua_pushinteger(L, (lua_Integer)ARGS(c)->size);
	lua_pushinteger(L, ARGS(c)->offset);
	luafs_fileinfo_push(L, c->fi, 0);
	return 4;
}

static int take_read(lua_State *L, struct luafs_call *c, int first, int n)
{
	struct args *a = c->arg;
	size_t len;
	const char *s = take_string(L, c, first, &len);

	(void)n;
	if (len > a->size)
		luaL_error(L, "read returned %I bytes for a read of %I",
			   (lua_Integer)len, (lua_Integer)a->size);
	memcpy(a->out, s, len);
	return (int)len;
}

static int op_read(const char *path, char *buf, size_t size, off_t offset,
		   struct fuse_file_info *fi)
{
	struct args a = { .size = size, .offset = offset, .out = buf };

	return call_bare(OP_read, path, fi, push_read, take_read, always_bare,
			 &a);
}

static int push_write(lua_State *L, struct luafs_call *c)
{
	push_path(L, c->path);
	lua_pushlstring(L, ARGS(c)->data, ARGS(c)->size);
	lua_pushinteger(L, ARGS(c)->offset);
	luafs_fileinfo_push(L, c->fi, 0);
	return 4;
}

static int take_write(lua_State *L, struct luafs_call *c, int first, int n)
{
	(void)n;
	return (int)take_count(L, c, first, (lua_Integer)ARGS(c)->size);
}

static int op_write(const char *path, const char *buf, size_t size,
		    off_t offset, struct fuse_file_info *fi)
{
	struct args a = { .data = buf, .size = size, .offset = offset };

	return call_bare(OP_write, path, fi, push_write, take_write, always_bare,
			 &a);
}

static int take_statvfs(lua_State *L, struct luafs_call *c, int first, int n)
{
	(void)n;
	luafs_check_statvfs(L, first, c->arg);
	return 0;
}

static int op_statfs(const char *path, struct statvfs *sv)
{
	return call_path(OP_statfs, path, NULL, push_p, take_statvfs, sv);
}

static int op_flush(const char *path, struct fuse_file_info *fi)
{
	return call_path(OP_flush, path, fi, push_p_fi, NULL, NULL);
}

static int op_release(const char *path, struct fuse_file_info *fi)
{
	return call_path(OP_release, path, fi, push_p_fi, NULL, NULL);
}

static int op_releasedir(const char *path, struct fuse_file_info *fi)
{
	return call_path(OP_releasedir, path, fi, push_p_fi, NULL, NULL);
}

static int op_fsync(const char *path, int datasync, struct fuse_file_info *fi)
{
	struct args a = { .n1 = datasync };

	return call_path(OP_fsync, path, fi, push_p_n1_fi, NULL, &a);
}

static int op_fsyncdir(const char *path, int datasync,
		       struct fuse_file_info *fi)
{
	struct args a = { .n1 = datasync };

	return call_path(OP_fsyncdir, path, fi, push_p_n1_fi, NULL, &a);
}

/* extended attributes */

static int push_setxattr(lua_State *L, struct luafs_call *c)
{
	push_path(L, c->path);
	lua_pushstring(L, ARGS(c)->s);
	lua_pushlstring(L, ARGS(c)->data, ARGS(c)->size);
	lua_pushinteger(L, ARGS(c)->n1);
	return 4;
}

static int op_setxattr(const char *path, const char *name, const char *value,
		       size_t size, int flags)
{
	struct args a = { .s = name, .data = value, .size = size, .n1 = flags };

	return call_path(OP_setxattr, path, NULL, push_setxattr, NULL, &a);
}

/* size 0 asks for the length; a value that does not fit is ERANGE. */
static int copy_sized(struct args *a, const char *s, size_t len)
{
	if (len > INT32_MAX)
		return -E2BIG;
	if (a->size == 0)
		return (int)len;
	if (len > a->size)
		return -ERANGE;
	memcpy(a->out, s, len);
	return (int)len;
}

static int take_getxattr(lua_State *L, struct luafs_call *c, int first,
			 int n)
{
	size_t len;
	const char *s = take_string(L, c, first, &len);

	(void)n;
	return copy_sized(c->arg, s, len);
}

static int op_getxattr(const char *path, const char *name, char *value,
		       size_t size)
{
	struct args a = { .s = name, .size = size, .out = value };

	return call_path(OP_getxattr, path, NULL, push_p_s, take_getxattr, &a);
}

static int take_listxattr(lua_State *L, struct luafs_call *c, int first,
			  int n)
{
	luaL_Buffer b;
	lua_Integer i, count;
	size_t len;
	const char *s;

	(void)n;
	if (!lua_istable(L, first))
		luaL_error(L, "listxattr must return an array of names, got %s",
			   got(L, first));
	count = luaL_len(L, first);
	luaL_buffinit(L, &b);
	for (i = 1; i <= count; i++) {
		lua_rawgeti(L, first, i);
		s = lua_tolstring(L, -1, &len);
		if (lua_type(L, -1) != LUA_TSTRING || memchr(s, 0, len))
			luaL_error(L, "listxattr: entry %I is not a name", i);
		lua_pop(L, 1);
		luaL_addlstring(&b, s, len + 1);
	}
	luaL_pushresult(&b);
	s = lua_tolstring(L, -1, &len);
	return copy_sized(c->arg, s, len);
}

static int op_listxattr(const char *path, char *list, size_t size)
{
	struct args a = { .size = size, .out = list };

	return call_path(OP_listxattr, path, NULL, push_p, take_listxattr, &a);
}

static int op_removexattr(const char *path, const char *name)
{
	struct args a = { .s = name };

	return call_path(OP_removexattr, path, NULL, push_p_s, NULL, &a);
}

/* readdir */

struct readdir_args {
	void *buf;
	fuse_fill_dir_t filler;
	off_t offset;
	enum fuse_readdir_flags flags;
	lua_Integer count;	/* entries so far */
	int paged;		/* the first entry had an offset */
};

static int push_readdir(lua_State *L, struct luafs_call *c)
{
	struct readdir_args *a = c->arg;

	push_path(L, c->path);
	lua_pushinteger(L, a->offset);
	luafs_fileinfo_push(L, c->fi, 0);
	lua_pushinteger(L, a->flags);
	return 4;
}

/*
 * The kernel refuses a whole listing, without saying why, for one name
 * that is empty or holds a '/', and libfuse for entries that mix the two
 * modes; a zero byte would cut the name short.  Each is an error here.
 */
static const char *check_name(lua_State *L, struct readdir_args *a, int idx,
			      int has_offset)
{
	size_t len;
	const char *name = lua_tolstring(L, idx, &len);

	if (len == 0 || memchr(name, '/', len) || memchr(name, 0, len))
		luaL_error(L, "readdir: entry %I: %s", a->count + 1,
			   len == 0 ? "an empty name" :
			   "a name with a '/' or a zero byte");
	if (a->count++ == 0)
		a->paged = has_offset;
	else if (a->paged != has_offset)
		luaL_error(L, "readdir: entry %I ('%s') %s, unlike the "
			   "first: entries have offsets all or none",
			   a->count, name, has_offset ? "has an offset" :
			   "has no offset");
	return name;
}

/* Fills one entry; returns 1 when the kernel's buffer is full. */
static int fill_entry(lua_State *L, struct readdir_args *a, int idx)
{
	enum fuse_fill_dir_flags fill = 0;
	struct stat st, *stp = NULL;
	lua_Integer off = 0;
	const char *name;
	int full;

	idx = lua_absindex(L, idx);
	if (lua_type(L, idx) == LUA_TSTRING)
		return a->filler(a->buf, check_name(L, a, idx, 0), NULL, 0, 0);
	if (!lua_istable(L, idx))
		luaL_error(L, "readdir: entry %I must be a name or a table, "
			   "got %s", a->count + 1, got(L, idx));
	if (lua_getfield(L, idx, "name") != LUA_TSTRING)
		luaL_error(L, "readdir: entry %I has no string 'name'",
			   a->count + 1);
	if (lua_getfield(L, idx, "stat") != LUA_TNIL) {
		luafs_check_stat(L, -1, &st);
		/*
		 * With use_ino, libfuse passes st_ino on as d_ino, and
		 * readdir(3) hides an entry whose d_ino is 0: a stat table
		 * without an ino gets the number libfuse uses for unknown.
		 */
		if (st.st_ino == 0)
			st.st_ino = 0xffffffff;
		stp = &st;
		if (a->flags & FUSE_READDIR_PLUS) {
			check_kernel_stat(L, &st);
			fill = FUSE_FILL_DIR_PLUS;
		}
	}
	if (lua_getfield(L, idx, "offset") != LUA_TNIL) {
		int isint = 0;

		if (lua_type(L, -1) == LUA_TNUMBER)
			off = lua_tointegerx(L, -1, &isint);
		if (!isint || off <= 0)
			luaL_error(L, "readdir: entry %I has an offset that is "
				   "not a positive integer", a->count + 1);
	}
	name = check_name(L, a, -3, off != 0);
	full = a->filler(a->buf, name, stp, (off_t)off, fill);
	lua_pop(L, 3);
	return full;
}

/*
 * A luafs.Dir: the host lists the stream itself, from the offset asked
 * for, so the entries never become Lua values: each carries its d_ino and
 * d_type, or with FUSE_READDIR_PLUS an fstatat in the stream's directory
 * (an entry gone by then is skipped), and the stream position after it.
 */
static int fill_from_dir(struct readdir_args *a, DIR *dir)
{
	int plus = a->flags & FUSE_READDIR_PLUS;
	long pos = telldir(dir), next;
	struct dirent *e;
	struct stat st;

	if (pos != (long)a->offset) {
		seekdir(dir, (long)a->offset);
		pos = (long)a->offset;
	}
	for (;; pos = next) {
		errno = 0;
		e = readdir(dir);
		if (e == NULL)
			return errno ? -errno : 0;
		next = telldir(dir);
		if (plus) {
			if (fstatat(dirfd(dir), e->d_name, &st,
				    AT_SYMLINK_NOFOLLOW) == -1)
				continue;
		} else {
			memset(&st, 0, sizeof(st));
			st.st_ino = e->d_ino;
			st.st_mode = DTTOIF(e->d_type);
		}
		if (a->filler(a->buf, e->d_name, &st, next,
			      plus ? FUSE_FILL_DIR_PLUS : 0)) {
			/* Not delivered: the next call starts with it. */
			seekdir(dir, pos);
			return 0;
		}
	}
}

static int take_readdir(lua_State *L, struct luafs_call *c, int first, int n)
{
	struct readdir_args *a = c->arg;
	lua_Integer i, count;
	DIR *dir;

	(void)n;
	if ((dir = luafs_test_dir(L, first)) != NULL)
		return fill_from_dir(a, dir);
	if (lua_istable(L, first)) {
		count = luaL_len(L, first);
		for (i = 1; i <= count; i++) {
			lua_rawgeti(L, first, i);
			if (fill_entry(L, a, -1))
				break;
			lua_pop(L, 1);
		}
		return 0;
	}
	if (!lua_isfunction(L, first))
		luaL_error(L, "readdir must return an array of entries, an "
			   "iterator function or a luafs.Dir, got %s",
			   got(L, first));
	for (;;) {
		lua_pushvalue(L, first);
		lua_call(L, 0, 1);
		if (lua_isnil(L, -1) || fill_entry(L, a, -1))
			break;
		lua_pop(L, 1);
	}
	return 0;
}

static int op_readdir(const char *path, void *buf, fuse_fill_dir_t filler,
		      off_t offset, struct fuse_file_info *fi,
		      enum fuse_readdir_flags flags)
{
	struct readdir_args a = { buf, filler, offset, flags, 0, 0 };

	return call_path(OP_readdir, path, fi, push_readdir, take_readdir, &a);
}

/* locks */

static void push_lock(lua_State *L, const struct flock *lk)
{
	lua_createtable(L, 0, 5);
	lua_pushinteger(L, lk->l_type);
	lua_setfield(L, -2, "type");
	lua_pushinteger(L, lk->l_whence);
	lua_setfield(L, -2, "whence");
	lua_pushinteger(L, lk->l_start);
	lua_setfield(L, -2, "start");
	lua_pushinteger(L, lk->l_len);
	lua_setfield(L, -2, "len");
	lua_pushinteger(L, lk->l_pid);
	lua_setfield(L, -2, "pid");
}

static lua_Integer lock_field(lua_State *L, int idx, const char *name)
{
	int isint;
	lua_Integer v;

	lua_getfield(L, idx, name);
	v = lua_tointegerx(L, -1, &isint);
	if (!isint && !lua_isnil(L, -1))
		luaL_error(L, "lock field '%s' must be an integer, got %s",
			   name, got(L, -1));
	lua_pop(L, 1);
	return v;
}

static int push_lockop(lua_State *L, struct luafs_call *c)
{
	push_path(L, c->path);
	luafs_fileinfo_push(L, c->fi, 0);
	lua_pushinteger(L, ARGS(c)->n1);
	push_lock(L, ARGS(c)->out);
	return 4;
}

/* F_GETLK answers with the lock table describing the conflicting lock. */
static int take_lock(lua_State *L, struct luafs_call *c, int first, int n)
{
	struct flock *lk = ARGS(c)->out;

	(void)n;
	if (ARGS(c)->n1 != F_GETLK)
		return 0;
	if (!lua_istable(L, first))
		luaL_error(L, "lock must return a lock table for F_GETLK, "
			   "got %s", got(L, first));
	lk->l_type = (short)lock_field(L, first, "type");
	lk->l_whence = (short)lock_field(L, first, "whence");
	lk->l_start = (off_t)lock_field(L, first, "start");
	lk->l_len = (off_t)lock_field(L, first, "len");
	lk->l_pid = (pid_t)lock_field(L, first, "pid");
	return 0;
}

/*
 * libfuse sends an unlock of the whole file at every flush, whether or not
 * anything was locked.  Until a lock has been asked for there is nothing
 * to unlock, so unlocks are answered here, sparing a call per close(2).
 * Set before the call that asks, so no unlock can miss a lock it grants.
 */
static int locks_asked;

static int op_lock(const char *path, struct fuse_file_info *fi, int cmd,
		   struct flock *lk)
{
	struct args a = { .n1 = cmd, .out = lk };

	if (cmd != F_GETLK) {
		if (lk->l_type != F_UNLCK)
			__atomic_store_n(&locks_asked, 1, __ATOMIC_RELEASE);
		else if (!__atomic_load_n(&locks_asked, __ATOMIC_ACQUIRE))
			return 0;
	}
	return call_path(OP_lock, path, fi, push_lockop, take_lock, &a);
}

static int push_p_fi_n1(lua_State *L, struct luafs_call *c)
{
	push_path(L, c->path);
	luafs_fileinfo_push(L, c->fi, 0);
	lua_pushinteger(L, ARGS(c)->n1);
	return 3;
}

static int op_flock(const char *path, struct fuse_file_info *fi, int op)
{
	struct args a = { .n1 = op };

	return call_path(OP_flock, path, fi, push_p_fi_n1, NULL, &a);
}

/* space and positions */

static int push_fallocate(lua_State *L, struct luafs_call *c)
{
	push_path(L, c->path);
	lua_pushinteger(L, ARGS(c)->n1);
	lua_pushinteger(L, ARGS(c)->offset);
	lua_pushinteger(L, ARGS(c)->n2);
	luafs_fileinfo_push(L, c->fi, 0);
	return 5;
}

static int op_fallocate(const char *path, int mode, off_t offset, off_t len,
			struct fuse_file_info *fi)
{
	struct args a = { .n1 = mode, .offset = offset, .n2 = len };

	return call_path(OP_fallocate, path, fi, push_fallocate, NULL, &a);
}

struct copy_args {
	const char *path_out;
	struct fuse_file_info *fi_out;
	off_t off_in, off_out;
	size_t len;
	int flags;
};

static int push_copy(lua_State *L, struct luafs_call *c)
{
	struct copy_args *a = c->arg;

	push_path(L, c->path);
	luafs_fileinfo_push(L, c->fi, 0);
	lua_pushinteger(L, a->off_in);
	push_path(L, a->path_out);
	luafs_fileinfo_push(L, a->fi_out, 0);
	lua_pushinteger(L, a->off_out);
	lua_pushinteger(L, (lua_Integer)a->len);
	lua_pushinteger(L, a->flags);
	return 8;
}

static int take_copy(lua_State *L, struct luafs_call *c, int first, int n)
{
	struct copy_args *a = c->arg;

	(void)n;
	return (int)take_count(L, c, first, (lua_Integer)a->len);
}

static ssize_t op_copy_file_range(const char *path_in,
				  struct fuse_file_info *fi_in, off_t off_in,
				  const char *path_out,
				  struct fuse_file_info *fi_out, off_t off_out,
				  size_t len, int flags)
{
	struct copy_args a = { path_out, fi_out, off_in, off_out,
			       len > INT32_MAX ? INT32_MAX : len, flags };
	int in = luafs_handle_state(fi_in), out = luafs_handle_state(fi_out);
	struct luafs_call c = {
		.op = OP_copy_file_range, .path = path_in, .fi = fi_in,
		.push = push_copy, .take = take_copy, .bare = always_bare,
		.arg = &a,
		.pin = 1 + (in >= 0 ? in : out),
	};

	/*
	 * Two handles held by different states cannot meet in one; the
	 * kernel answers EXDEV by copying through read and write itself.
	 */
	if (in >= 0 && out >= 0 && in != out)
		return -EXDEV;
	return luafs_call(&c);
}

static int push_lseek(lua_State *L, struct luafs_call *c)
{
	push_path(L, c->path);
	lua_pushinteger(L, ARGS(c)->offset);
	lua_pushinteger(L, ARGS(c)->n1);
	luafs_fileinfo_push(L, c->fi, 0);
	return 4;
}

static int take_lseek(lua_State *L, struct luafs_call *c, int first, int n)
{
	(void)n;
	*(off_t *)ARGS(c)->out = (off_t)take_count(L, c, first, INT64_MAX);
	return 0;
}

static off_t op_lseek(const char *path, off_t off, int whence,
		      struct fuse_file_info *fi)
{
	off_t result = 0;
	struct args a = { .offset = off, .n1 = whence, .out = &result };
	int res = call_bare(OP_lseek, path, fi, push_lseek, take_lseek,
			    always_bare, &a);

	return res < 0 ? res : result;
}

static int push_bmap(lua_State *L, struct luafs_call *c)
{
	push_path(L, c->path);
	lua_pushinteger(L, (lua_Integer)ARGS(c)->size);
	lua_pushinteger(L, (lua_Integer)*(uint64_t *)ARGS(c)->out);
	return 3;
}

static int take_bmap(lua_State *L, struct luafs_call *c, int first, int n)
{
	(void)n;
	*(uint64_t *)ARGS(c)->out = (uint64_t)take_count(L, c, first,
							 INT64_MAX);
	return 0;
}

static int op_bmap(const char *path, size_t blocksize, uint64_t *idx)
{
	struct args a = { .size = blocksize, .out = idx };

	return call_bare(OP_bmap, path, NULL, push_bmap, take_bmap,
			 always_bare, &a);
}

/* ioctl: data in and out, sized by the command's _IOC bits. */

struct ioctl_args {
	unsigned int cmd;
	void *arg;
	unsigned int flags;
	void *data;
	size_t in, out;
};

static int push_ioctl(lua_State *L, struct luafs_call *c)
{
	struct ioctl_args *a = c->arg;

	push_path(L, c->path);
	lua_pushinteger(L, a->cmd);
	lua_pushinteger(L, (lua_Integer)(uintptr_t)a->arg);
	luafs_fileinfo_push(L, c->fi, 0);
	lua_pushinteger(L, a->flags);
	if (a->in > 0)
		lua_pushlstring(L, a->data, a->in);
	else
		lua_pushnil(L);
	return 6;
}

/* ioctl returns its result, then the output data for _IOC_READ commands. */
static int take_ioctl(lua_State *L, struct luafs_call *c, int first, int n)
{
	struct ioctl_args *a = c->arg;
	lua_Integer res = n > 0 && !lua_isnil(L, first) ?
			  take_count(L, c, first, INT32_MAX) : 0;
	size_t len;
	const char *s;

	if (n < 2 || lua_isnil(L, first + 1))
		return (int)res;
	s = take_string(L, c, first + 1, &len);
	if (len > a->out)
		luaL_error(L, "ioctl returned %I bytes of data, the command "
			   "has room for %I", (lua_Integer)len,
			   (lua_Integer)a->out);
	memcpy(a->data, s, len);
	return (int)res;
}

static int op_ioctl(const char *path, unsigned int cmd, void *arg,
		    struct fuse_file_info *fi, unsigned int flags, void *data)
{
	struct ioctl_args a = { cmd, arg, flags, data, 0, 0 };

	if (_IOC_DIR(cmd) & _IOC_WRITE)
		a.in = _IOC_SIZE(cmd);
	if (_IOC_DIR(cmd) & _IOC_READ)
		a.out = _IOC_SIZE(cmd);
	/*
	 * libfuse sends all a.out bytes back, and for a command that only
	 * reads it has not initialised them: what the script leaves out is
	 * zeros, not stale heap memory.
	 */
	if (a.out > 0 && !(_IOC_DIR(cmd) & _IOC_WRITE))
		memset(data, 0, a.out);
	return call_path(OP_ioctl, path, fi, push_ioctl, take_ioctl, &a);
}

/* poll */

struct poll_args {
	struct fuse_pollhandle *ph;
	unsigned *reventsp;
};

static int push_poll(lua_State *L, struct luafs_call *c)
{
	struct poll_args *a = c->arg;

	push_path(L, c->path);
	luafs_fileinfo_push(L, c->fi, 0);
	luafs_pollhandle_push(L, a->ph);
	a->ph = NULL;	/* owned by Lua from here on */
	return 3;
}

static int take_poll(lua_State *L, struct luafs_call *c, int first, int n)
{
	struct poll_args *a = c->arg;

	(void)n;
	*a->reventsp = (unsigned)take_count(L, c, first, UINT32_MAX);
	return 0;
}

static int op_poll(const char *path, struct fuse_file_info *fi,
		   struct fuse_pollhandle *ph, unsigned *reventsp)
{
	struct poll_args a = { ph, reventsp };
	int res = call_path(OP_poll, path, fi, push_poll, take_poll, &a);

	if (a.ph != NULL)
		fuse_pollhandle_destroy(a.ph);
	return res;
}

/* read_buf and write_buf: data that need not pass through Lua strings. */

static int take_read_buf(lua_State *L, struct luafs_call *c, int first,
			 int n)
{
	struct args *a = c->arg;

	(void)n;
	*(struct fuse_bufvec **)a->out = luafs_bufvec_take(L, first, a->size);
	return 0;
}

static int op_read_buf(const char *path, struct fuse_bufvec **bufp,
		       size_t size, off_t off, struct fuse_file_info *fi)
{
	struct args a = { .size = size, .offset = off, .out = bufp };

	*bufp = NULL;
	return call_bare(OP_read_buf, path, fi, push_read, take_read_buf,
			 always_bare, &a);
}

static int push_write_buf(lua_State *L, struct luafs_call *c)
{
	push_path(L, c->path);
	luafs_bufvec_push_borrowed(L, ARGS(c)->out);
	lua_pushinteger(L, ARGS(c)->offset);
	luafs_fileinfo_push(L, c->fi, 0);
	return 4;
}

static int op_write_buf(const char *path, struct fuse_bufvec *buf, off_t off,
			struct fuse_file_info *fi)
{
	struct args a = { .size = fuse_buf_size(buf), .offset = off,
			  .out = buf };
	struct luafs_call c = {
		.op = OP_write_buf, .path = path, .fi = fi,
		.push = push_write_buf, .take = take_write,
		.bare = always_bare, .arg = &a, .borrows = 1,
	};

	return luafs_call(&c);
}

/* init and destroy run in every state. */

static int push_init(lua_State *L, struct luafs_call *c)
{
	struct fuse_config *cfg = ARGS(c)->out;

	luafs_conn_push(L, (struct fuse_conn_info *)ARGS(c)->data);
	luafs_config_push(L, cfg);
	return 2;
}

static int take_init(lua_State *L, struct luafs_call *c, int first, int n)
{
	(void)c;
	if (n > 0)
		luafs_set_private(L, first);
	return 0;
}

static void on_intr_signal(int sig)
{
	(void)sig;	/* there only to make a blocking system call return */
}

/*
 * With cfg.intr, libfuse signals the thread of an interrupted request with
 * cfg.intr_signal, SIGUSR1 by default, which luafs keeps for reloading;
 * and set in init rather than on the command line, no handler is in place
 * for it.  So luafs takes SIGUSR2 instead of a signal it uses itself, and
 * gives an unhandled one a handler that does nothing.
 */
static void setup_intr(struct fuse_config *cfg)
{
	struct sigaction sa, old;

	if (!cfg->intr)
		return;
	switch (cfg->intr_signal) {
	case SIGUSR1: case SIGINT: case SIGTERM: case SIGHUP: case SIGALRM:
	case SIGPIPE:
		cfg->intr_signal = SIGUSR2;
	}
	if (sigaction(cfg->intr_signal, NULL, &old) != 0 ||
	    (old.sa_handler != SIG_DFL && old.sa_handler != SIG_IGN))
		return;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_intr_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(cfg->intr_signal, &sa, NULL);
}

static void *op_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
	struct args a = { .data = (const char *)conn, .out = cfg };
	int i, n = luafs_host.present >> OP_init & 1 ? luafs_host.nstates : 0;

	for (i = 0; i < n; i++) {
		char message[LUAFS_MESSAGE_MAX] = "";
		struct luafs_call c = {
			.op = OP_init, .pin = i + 1, .push = push_init,
			.take = take_init, .arg = &a, .message = message,
		};

		if (luafs_call(&c) < 0) {
			luafs_log(LOG_ERR, "init failed%s%s (%s): unmounting",
				  *message ? ": " : "", message,
				  strerror(-c.result));
			luafs_host.init_failed = 1;
			fuse_exit(luafs_host.fuse);
			break;
		}
	}
	setup_intr(cfg);
	luafs_host_started();
	return NULL;
}

static int push_destroy(lua_State *L, struct luafs_call *c)
{
	(void)c;
	luafs_push_private(L);
	return 1;
}

static void op_destroy(void *private_data)
{
	int i;

	(void)private_data;
	for (i = 0; i < luafs_host.nstates; i++) {
		struct luafs_call c = {
			.op = OP_destroy, .pin = i + 1, .push = push_destroy,
		};

		luafs_call(&c);
	}
}

#define HAS(op) (present >> OP_##op & 1)

void luafs_ops_fill(struct fuse_operations *ops, uint64_t present)
{
	memset(ops, 0, sizeof(*ops));
	if (HAS(getattr)) ops->getattr = op_getattr;
	if (HAS(readlink)) ops->readlink = op_readlink;
	if (HAS(mknod)) ops->mknod = op_mknod;
	if (HAS(mkdir)) ops->mkdir = op_mkdir;
	if (HAS(unlink)) ops->unlink = op_unlink;
	if (HAS(rmdir)) ops->rmdir = op_rmdir;
	if (HAS(symlink)) ops->symlink = op_symlink;
	if (HAS(rename)) ops->rename = op_rename;
	if (HAS(link)) ops->link = op_link;
	if (HAS(chmod)) ops->chmod = op_chmod;
	if (HAS(chown)) ops->chown = op_chown;
	if (HAS(truncate)) ops->truncate = op_truncate;
	if (HAS(open)) ops->open = op_open;
	if (HAS(read)) ops->read = op_read;
	if (HAS(write)) ops->write = op_write;
	if (HAS(statfs)) ops->statfs = op_statfs;
	if (HAS(flush)) ops->flush = op_flush;
	if (HAS(release)) ops->release = op_release;
	if (HAS(fsync)) ops->fsync = op_fsync;
	if (HAS(setxattr)) ops->setxattr = op_setxattr;
	if (HAS(getxattr)) ops->getxattr = op_getxattr;
	if (HAS(listxattr)) ops->listxattr = op_listxattr;
	if (HAS(removexattr)) ops->removexattr = op_removexattr;
	if (HAS(opendir)) ops->opendir = op_opendir;
	if (HAS(readdir)) ops->readdir = op_readdir;
	if (HAS(releasedir)) ops->releasedir = op_releasedir;
	if (HAS(fsyncdir)) ops->fsyncdir = op_fsyncdir;
	ops->init = op_init;
	if (HAS(destroy)) ops->destroy = op_destroy;
	if (HAS(access)) ops->access = op_access;
	if (HAS(create)) ops->create = op_create;
	if (HAS(utimens)) ops->utimens = op_utimens;
	if (HAS(lock)) ops->lock = op_lock;
	if (HAS(bmap)) ops->bmap = op_bmap;
	if (HAS(ioctl)) ops->ioctl = op_ioctl;
	if (HAS(poll)) ops->poll = op_poll;
	if (HAS(write_buf)) ops->write_buf = op_write_buf;
	if (HAS(read_buf)) ops->read_buf = op_read_buf;
	if (HAS(flock)) ops->flock = op_flock;
	if (HAS(fallocate)) ops->fallocate = op_fallocate;
	if (HAS(copy_file_range)) ops->copy_file_range = op_copy_file_range;
	if (HAS(lseek)) ops->lseek = op_lseek;
}
