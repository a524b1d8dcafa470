/*
 * ops.c: the fuse_operations table.  Each operation is a shim that libfuse
 * calls and a body that call.c runs in a Lua state, under one lua_pcall
 * (see call.c for the path of one request).  The shim puts what libfuse
 * gave it into the operation's own arguments and calls luafs_call; the
 * body pushes them for the script, calls it with luafs_invoke, and checks
 * and copies the answer into libfuse's out-parameters, raising for one it
 * refuses.  Only the operations the script defines are registered, so the
 * kernel's defaults apply to the rest.
 */
#include "luafs.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>

#define FIRST LUAFS_FIRST_RESULT

static void push_path(lua_State *L, const char *path)
{
	if (path)
		lua_pushstring(L, path);
	else
		lua_pushnil(L);
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
static lua_Integer check_count(lua_State *L, struct luafs_call *c, int idx,
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

static const char *check_string(lua_State *L, struct luafs_call *c, int idx,
				size_t *len)
{
	if (lua_type(L, idx) != LUA_TSTRING)
		luaL_error(L, "%s must return a string, got %s",
			   luafs_op_names[c->op], got(L, idx));
	return lua_tolstring(L, idx, len);
}

/*
 * The operations whose only arguments are integers beside the path and
 * fi, and whose only answer is success or failure, share one body: the
 * shim gives the integers and says where fi goes.
 */
struct int_args {
	int nints;		/* how many of ints are passed */
	int fi_at;		/* fi's position among the arguments, 0: none */
	lua_Integer ints[4];
	const char *names;	/* theirs, for the trace: "mode rdev" */
};

/* "mode=0644 rdev=0": modes in octal, as chmod(1) writes them. */
static void describe_ints(const struct luafs_call *c, char *out, size_t size)
{
	const struct int_args *a = c->args;
	const char *n = a->names;
	size_t o = 0, len;
	int i;

	for (i = 0; i < a->nints && n != NULL && *n && o < size; i++) {
		len = strcspn(n, " ");
		o += (size_t)snprintf(out + o, size - o,
				      len == 4 && !memcmp(n, "mode", 4) ?
				      "%s%.*s=%#llo" : "%s%.*s=%lld",
				      i ? " " : "", (int)len, n,
				      (long long)a->ints[i]);
		n += len + (n[len] == ' ');
	}
}

static int ints_body(lua_State *L)
{
	struct luafs_call *c = luafs_current;
	struct int_args *a = c->args;
	int i, pos = 1;

	push_path(L, c->path);
	for (i = 0; i <= a->nints; i++) {
		if (++pos == a->fi_at)
			luafs_fileinfo_push(L, c, c->fi, 0);
		if (i < a->nints)
			lua_pushinteger(L, a->ints[i]);
	}
	luafs_invoke(L, c);
	return 0;
}

static int call_ints(enum luafs_op op, const char *path,
		     struct fuse_file_info *fi, struct int_args *a)
{
	struct luafs_call c = {
		.op = op, .path = path, .fi = fi, .args = a,
		.describe = describe_ints,
	};

	return luafs_call(&c, ints_body);
}

/* The operations that take one or two strings beside the path. */
struct names_args {
	const char *name;	/* pushed after the path, or before: symlink */
	int before;
	int has_flags;
	unsigned int flags;
};

static int names_body(lua_State *L)
{
	struct luafs_call *c = luafs_current;
	struct names_args *a = c->args;

	if (a->before)
		lua_pushstring(L, a->name);
	push_path(L, c->path);
	if (a->name != NULL && !a->before)
		lua_pushstring(L, a->name);
	if (a->has_flags)
		lua_pushinteger(L, a->flags);
	luafs_invoke(L, c);
	return 0;
}

static void describe_names(const struct luafs_call *c, char *out,
			   size_t size)
{
	const struct names_args *a = c->args;

	if (a->name == NULL)
		*out = '\0';
	else if (a->has_flags)
		snprintf(out, size, "%s flags=%#x", a->name, a->flags);
	else
		snprintf(out, size, "%s", a->name);
}

static int call_names(enum luafs_op op, const char *path,
		      struct names_args *a)
{
	struct luafs_call c = {
		.op = op, .path = path, .args = a, .describe = describe_names,
	};

	return luafs_call(&c, names_body);
}

/* getattr */

/*
 * The kernel marks an inode bad for good when getattr gives it no valid
 * file type, answers EIO with no word for a negative size, and keeps only
 * 32 bits of nlink, blksize and rdev (struct fuse_attr): each of those is
 * an error here, with a log line that says which field.
 */
static void check_kernel_stat(lua_State *L, const struct stat *st)
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
		luaL_error(L, "stat field 'mode' (%s) has no file type such "
			   "as luafs.S_IFREG", mode);
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
		luaL_error(L, "stat field '%s' is %I; the kernel takes %s",
			   field, v, expected);
}

static int getattr_body(lua_State *L)
{
	struct luafs_call *c = luafs_current;
	struct stat *st = c->args;

	push_path(L, c->path);
	luafs_fileinfo_push(L, c, c->fi, 0);
	if (luafs_invoke(L, c) < 0)
		return 0;
	luafs_check_stat(L, FIRST, st);
	check_kernel_stat(L, st);
	return 0;
}

static int op_getattr(const char *path, struct stat *st,
		      struct fuse_file_info *fi)
{
	struct luafs_call c = {
		.op = OP_getattr, .path = path, .fi = fi, .args = st,
	};

	return luafs_call(&c, getattr_body);
}

/* readlink */

struct readlink_args {
	char *buf;
	size_t size;
};

static int readlink_body(lua_State *L)
{
	struct luafs_call *c = luafs_current;
	struct readlink_args *a = c->args;
	const char *s;
	size_t len;

	push_path(L, c->path);
	lua_pushinteger(L, (lua_Integer)a->size);
	if (luafs_invoke(L, c) < 0)
		return 0;
	s = check_string(L, c, FIRST, &len);
	if (len >= a->size)
		len = a->size - 1;
	memcpy(a->buf, s, len);
	a->buf[len] = '\0';
	return 0;
}

static int op_readlink(const char *path, char *buf, size_t size)
{
	struct readlink_args a = { buf, size };
	struct luafs_call c = { .op = OP_readlink, .path = path, .args = &a };

	if (size == 0)
		return -EINVAL;
	return luafs_call(&c, readlink_body);
}

/* namespace operations */

static int op_mknod(const char *path, mode_t mode, dev_t rdev)
{
	struct int_args a = { 2, 0, { mode, (lua_Integer)rdev }, "mode rdev" };

	return call_ints(OP_mknod, path, NULL, &a);
}

static int op_mkdir(const char *path, mode_t mode)
{
	struct int_args a = { 1, 0, { mode }, "mode" };

	return call_ints(OP_mkdir, path, NULL, &a);
}

static int op_unlink(const char *path)
{
	struct names_args a = { 0 };

	return call_names(OP_unlink, path, &a);
}

static int op_rmdir(const char *path)
{
	struct names_args a = { 0 };

	return call_names(OP_rmdir, path, &a);
}

/* symlink(target, linkpath): the path argument is the new link. */
static int op_symlink(const char *target, const char *linkpath)
{
	struct names_args a = { .name = target, .before = 1 };

	return call_names(OP_symlink, linkpath, &a);
}

static int op_rename(const char *from, const char *to, unsigned int flags)
{
	struct names_args a = { .name = to, .has_flags = 1, .flags = flags };

	return call_names(OP_rename, from, &a);
}

static int op_link(const char *from, const char *to)
{
	struct names_args a = { .name = to };

	return call_names(OP_link, from, &a);
}

/* attributes */

static int op_chmod(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	struct int_args a = { 1, 3, { mode }, "mode" };

	return call_ints(OP_chmod, path, fi, &a);
}

/* (uid_t)-1 means "unchanged"; the script sees -1, as chown(2) takes. */
static int op_chown(const char *path, uid_t uid, gid_t gid,
		    struct fuse_file_info *fi)
{
	struct int_args a = { 2, 4, {
		uid == (uid_t)-1 ? -1 : (lua_Integer)uid,
		gid == (gid_t)-1 ? -1 : (lua_Integer)gid,
	}, "uid gid" };

	return call_ints(OP_chown, path, fi, &a);
}

static int op_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
	struct int_args a = { 1, 3, { size }, "size" };

	return call_ints(OP_truncate, path, fi, &a);
}

static int op_utimens(const char *path, const struct timespec tv[2],
		      struct fuse_file_info *fi)
{
	struct int_args a = { 4, 6, {
		tv[0].tv_sec, tv[0].tv_nsec, tv[1].tv_sec, tv[1].tv_nsec,
	}, "atime atime_nsec mtime mtime_nsec" };

	return call_ints(OP_utimens, path, fi, &a);
}

static int op_access(const char *path, int mask)
{
	struct int_args a = { 1, 0, { mask }, "mask" };

	return call_ints(OP_access, path, NULL, &a);
}

/* open files */

/* open, create and opendir: a value they return becomes the handle. */
struct open_args {
	int has_mode;
	mode_t mode;
};

static int open_body(lua_State *L)
{
	struct luafs_call *c = luafs_current;
	struct open_args *a = c->args;

	push_path(L, c->path);
	if (a->has_mode)
		lua_pushinteger(L, a->mode);
	luafs_fileinfo_push(L, c, c->fi, 1);
	if (luafs_invoke(L, c) < 0)
		return 0;
	if (!lua_isnil(L, FIRST))
		luafs_handle_set(L, c->st, c->fi, FIRST, 1);
	return 0;
}

static void describe_open(const struct luafs_call *c, char *out, size_t size)
{
	const struct open_args *a = c->args;
	size_t o;

	memcpy(out, "flags=", 7);
	luafs_open_flags_name(c->fi->flags, out + 6, size - 6);
	o = strlen(out);
	if (a->has_mode && o < size)
		snprintf(out + o, size - o, " mode=%#o", (unsigned)a->mode);
}

static int op_open(const char *path, struct fuse_file_info *fi)
{
	struct open_args a = { 0, 0 };
	struct luafs_call c = {
		.op = OP_open, .path = path, .fi = fi, .args = &a,
		.describe = describe_open,
	};

	return luafs_call(&c, open_body);
}

static int op_create(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	struct open_args a = { 1, mode };
	struct luafs_call c = {
		.op = OP_create, .path = path, .fi = fi, .args = &a,
		.describe = describe_open,
	};

	return luafs_call(&c, open_body);
}

static int op_opendir(const char *path, struct fuse_file_info *fi)
{
	struct open_args a = { 0, 0 };
	struct luafs_call c = {
		.op = OP_opendir, .path = path, .fi = fi, .args = &a,
		.describe = describe_open,
	};

	return luafs_call(&c, open_body);
}

/* read and read_buf take the same arguments. */
struct read_args {
	size_t size;
	off_t offset;
	char *buf;			/* read's */
	struct fuse_bufvec **bufp;	/* read_buf's */
};

static void push_read(lua_State *L, struct luafs_call *c)
{
	struct read_args *a = c->args;

	push_path(L, c->path);
	lua_pushinteger(L, (lua_Integer)a->size);
	lua_pushinteger(L, a->offset);
	luafs_fileinfo_push(L, c, c->fi, 0);
}

static void describe_read(const struct luafs_call *c, char *out, size_t size)
{
	const struct read_args *a = c->args;

	snprintf(out, size, "size=%zu offset=%lld", a->size,
		 (long long)a->offset);
}

static int read_body(lua_State *L)
{
	struct luafs_call *c = luafs_current;
	struct read_args *a = c->args;
	const char *s;
	size_t len;

	push_read(L, c);
	if (luafs_invoke(L, c) < 0)
		return 0;
	s = check_string(L, c, FIRST, &len);
	if (len > a->size)
		luaL_error(L, "read returned %I bytes for a read of %I",
			   (lua_Integer)len, (lua_Integer)a->size);
	memcpy(a->buf, s, len);
	c->result = (int)len;
	return 0;
}

static int op_read(const char *path, char *buf, size_t size, off_t offset,
		   struct fuse_file_info *fi)
{
	struct read_args a = { .size = size, .offset = offset, .buf = buf };
	struct luafs_call c = {
		.op = OP_read, .path = path, .fi = fi, .args = &a,
		.describe = describe_read,
	};

	return luafs_call(&c, read_body);
}

static int read_buf_body(lua_State *L)
{
	struct luafs_call *c = luafs_current;
	struct read_args *a = c->args;

	push_read(L, c);
	if (luafs_invoke(L, c) < 0)
		return 0;
	*a->bufp = luafs_bufvec_take(L, FIRST, a->size);
	return 0;
}

static int op_read_buf(const char *path, struct fuse_bufvec **bufp,
		       size_t size, off_t off, struct fuse_file_info *fi)
{
	struct read_args a = { .size = size, .offset = off, .bufp = bufp };
	struct luafs_call c = {
		.op = OP_read_buf, .path = path, .fi = fi, .args = &a,
		.describe = describe_read,
	};

	*bufp = NULL;
	return luafs_call(&c, read_buf_body);
}

/* write and write_buf: the data as a string, or lent as a BufVec. */
struct write_args {
	const char *data;		/* write's */
	struct fuse_bufvec *buf;	/* write_buf's */
	size_t size;
	off_t offset;
};

static void describe_write(const struct luafs_call *c, char *out,
			   size_t size)
{
	const struct write_args *a = c->args;

	snprintf(out, size, "size=%zu offset=%lld", a->size,
		 (long long)a->offset);
}

static int write_body(lua_State *L)
{
	struct luafs_call *c = luafs_current;
	struct write_args *a = c->args;

	push_path(L, c->path);
	if (a->buf != NULL)
		luafs_bufvec_push_borrowed(L, c, a->buf);
	else
		lua_pushlstring(L, a->data, a->size);
	lua_pushinteger(L, a->offset);
	luafs_fileinfo_push(L, c, c->fi, 0);
	if (luafs_invoke(L, c) < 0)
		return 0;
	c->result = (int)check_count(L, c, FIRST, (lua_Integer)a->size);
	return 0;
}

static int op_write(const char *path, const char *buf, size_t size,
		    off_t offset, struct fuse_file_info *fi)
{
	struct write_args a = { buf, NULL, size, offset };
	struct luafs_call c = {
		.op = OP_write, .path = path, .fi = fi, .args = &a,
		.describe = describe_write,
	};

	return luafs_call(&c, write_body);
}

static int op_write_buf(const char *path, struct fuse_bufvec *buf, off_t off,
			struct fuse_file_info *fi)
{
	struct write_args a = { NULL, buf, fuse_buf_size(buf), off };
	struct luafs_call c = {
		.op = OP_write_buf, .path = path, .fi = fi, .args = &a,
		.describe = describe_write,
	};

	return luafs_call(&c, write_body);
}

static int statfs_body(lua_State *L)
{
	struct luafs_call *c = luafs_current;

	push_path(L, c->path);
	if (luafs_invoke(L, c) < 0)
		return 0;
	luafs_check_statvfs(L, FIRST, c->args);
	return 0;
}

static int op_statfs(const char *path, struct statvfs *sv)
{
	struct luafs_call c = { .op = OP_statfs, .path = path, .args = sv };

	return luafs_call(&c, statfs_body);
}

static int op_flush(const char *path, struct fuse_file_info *fi)
{
	struct int_args a = { 0, 2, { 0 }, NULL };

	return call_ints(OP_flush, path, fi, &a);
}

static int op_release(const char *path, struct fuse_file_info *fi)
{
	struct int_args a = { 0, 2, { 0 }, NULL };

	return call_ints(OP_release, path, fi, &a);
}

static int op_releasedir(const char *path, struct fuse_file_info *fi)
{
	struct int_args a = { 0, 2, { 0 }, NULL };

	return call_ints(OP_releasedir, path, fi, &a);
}

static int op_fsync(const char *path, int datasync, struct fuse_file_info *fi)
{
	struct int_args a = { 1, 3, { datasync }, "datasync" };

	return call_ints(OP_fsync, path, fi, &a);
}

static int op_fsyncdir(const char *path, int datasync,
		       struct fuse_file_info *fi)
{
	struct int_args a = { 1, 3, { datasync }, "datasync" };

	return call_ints(OP_fsyncdir, path, fi, &a);
}

/* extended attributes */

struct xattr_args {
	const char *name;	/* NULL for listxattr */
	const char *value;	/* setxattr's */
	char *buf;		/* getxattr's and listxattr's */
	size_t size;
	int flags;
};

static void describe_xattr(const struct luafs_call *c, char *out,
			   size_t size)
{
	const struct xattr_args *a = c->args;

	snprintf(out, size, "%s%ssize=%zu", a->name ? a->name : "",
		 a->name ? " " : "", a->size);
}

static int setxattr_body(lua_State *L)
{
	struct luafs_call *c = luafs_current;
	struct xattr_args *a = c->args;

	push_path(L, c->path);
	lua_pushstring(L, a->name);
	lua_pushlstring(L, a->value, a->size);
	lua_pushinteger(L, a->flags);
	luafs_invoke(L, c);
	return 0;
}

static int op_setxattr(const char *path, const char *name, const char *value,
		       size_t size, int flags)
{
	struct xattr_args a = { name, value, NULL, size, flags };
	struct luafs_call c = {
		.op = OP_setxattr, .path = path, .args = &a,
		.describe = describe_xattr,
	};

	return luafs_call(&c, setxattr_body);
}

/* size 0 asks for the length; a value that does not fit is ERANGE. */
static int copy_sized(struct xattr_args *a, const char *s, size_t len)
{
	if (len > INT32_MAX)
		return -E2BIG;
	if (a->size == 0)
		return (int)len;
	if (len > a->size)
		return -ERANGE;
	memcpy(a->buf, s, len);
	return (int)len;
}

static int getxattr_body(lua_State *L)
{
	struct luafs_call *c = luafs_current;
	struct xattr_args *a = c->args;
	const char *s;
	size_t len;

	push_path(L, c->path);
	lua_pushstring(L, a->name);
	if (luafs_invoke(L, c) < 0)
		return 0;
	s = check_string(L, c, FIRST, &len);
	c->result = copy_sized(a, s, len);
	return 0;
}

static int op_getxattr(const char *path, const char *name, char *value,
		       size_t size)
{
	struct xattr_args a = { name, NULL, value, size, 0 };
	struct luafs_call c = {
		.op = OP_getxattr, .path = path, .args = &a,
		.describe = describe_xattr,
	};

	return luafs_call(&c, getxattr_body);
}

static int listxattr_body(lua_State *L)
{
	struct luafs_call *c = luafs_current;
	lua_Integer i, count;
	luaL_Buffer b;
	const char *s;
	size_t len;

	push_path(L, c->path);
	if (luafs_invoke(L, c) < 0)
		return 0;
	if (!lua_istable(L, FIRST))
		luaL_error(L, "listxattr must return an array of names, got %s",
			   got(L, FIRST));
	count = luaL_len(L, FIRST);
	luaL_buffinit(L, &b);
	for (i = 1; i <= count; i++) {
		lua_rawgeti(L, FIRST, i);
		s = lua_tolstring(L, -1, &len);
		if (lua_type(L, -1) != LUA_TSTRING || memchr(s, 0, len))
			luaL_error(L, "listxattr: entry %I is not a name", i);
		lua_pop(L, 1);
		luaL_addlstring(&b, s, len + 1);
	}
	luaL_pushresult(&b);
	s = lua_tolstring(L, -1, &len);
	c->result = copy_sized(c->args, s, len);
	return 0;
}

static int op_listxattr(const char *path, char *list, size_t size)
{
	struct xattr_args a = { NULL, NULL, list, size, 0 };
	struct luafs_call c = {
		.op = OP_listxattr, .path = path, .args = &a,
		.describe = describe_xattr,
	};

	return luafs_call(&c, listxattr_body);
}

static int op_removexattr(const char *path, const char *name)
{
	struct names_args a = { .name = name };

	return call_names(OP_removexattr, path, &a);
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
 * The answer is an array of entries, a function that returns one entry
 * per call (the script's code then runs again, and its errors are its
 * own: c->answered is off meanwhile), or a luafs.Dir.
 */
static int readdir_body(lua_State *L)
{
	struct luafs_call *c = luafs_current;
	struct readdir_args *a = c->args;
	lua_Integer i, count;
	struct luafs_dir *dir;

	push_path(L, c->path);
	lua_pushinteger(L, a->offset);
	luafs_fileinfo_push(L, c, c->fi, 0);
	lua_pushinteger(L, a->flags);
	if (luafs_invoke(L, c) < 0)
		return 0;
	if ((dir = luafs_test_dir(L, FIRST)) != NULL) {
		c->result = luafs_dir_fill(dir, a->buf, a->filler, a->offset,
					   a->flags);
		return 0;
	}
	if (lua_istable(L, FIRST)) {
		count = luaL_len(L, FIRST);
		for (i = 1; i <= count; i++) {
			lua_rawgeti(L, FIRST, i);
			if (fill_entry(L, a, -1))
				break;
			lua_pop(L, 1);
		}
		return 0;
	}
	if (!lua_isfunction(L, FIRST))
		luaL_error(L, "readdir must return an array of entries, an "
			   "iterator function or a luafs.Dir, got %s",
			   got(L, FIRST));
	for (;;) {
		luaL_checkstack(L, 4, "readdir");
		lua_pushvalue(L, FIRST);
		c->answered = 0;
		lua_call(L, 0, 1);
		c->answered = 1;
		if (lua_isnil(L, -1) || fill_entry(L, a, -1))
			break;
		lua_pop(L, 1);
	}
	return 0;
}

static void describe_readdir(const struct luafs_call *c, char *out,
			     size_t size)
{
	const struct readdir_args *a = c->args;

	snprintf(out, size, "offset=%lld%s", (long long)a->offset,
		 a->flags & FUSE_READDIR_PLUS ? " plus" : "");
}

static int op_readdir(const char *path, void *buf, fuse_fill_dir_t filler,
		      off_t offset, struct fuse_file_info *fi,
		      enum fuse_readdir_flags flags)
{
	struct readdir_args a = { buf, filler, offset, flags, 0, 0 };
	struct luafs_call c = {
		.op = OP_readdir, .path = path, .fi = fi, .args = &a,
		.describe = describe_readdir,
	};

	return luafs_call(&c, readdir_body);
}

/* locks */

struct lock_args {
	int cmd;
	struct flock *lk;
};

/* F_GETLK answers with the lock table describing the conflicting lock. */
static int lock_body(lua_State *L)
{
	struct luafs_call *c = luafs_current;
	struct lock_args *a = c->args;
	struct flock *lk = a->lk;

	push_path(L, c->path);
	luafs_fileinfo_push(L, c, c->fi, 0);
	lua_pushinteger(L, a->cmd);
	luafs_push_flock(L, lk, 0);
	if (luafs_invoke(L, c) < 0 || a->cmd != F_GETLK)
		return 0;
	if (!lua_istable(L, FIRST))
		luaL_error(L, "lock must return a lock table for F_GETLK, "
			   "got %s", got(L, FIRST));
	luafs_check_flock(L, FIRST, lk);
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
	struct lock_args a = { cmd, lk };
	struct luafs_call c = {
		.op = OP_lock, .path = path, .fi = fi, .args = &a,
	};

	if (cmd != F_GETLK) {
		if (lk->l_type != F_UNLCK)
			__atomic_store_n(&locks_asked, 1, __ATOMIC_RELEASE);
		else if (!__atomic_load_n(&locks_asked, __ATOMIC_ACQUIRE))
			return 0;
	}
	return luafs_call(&c, lock_body);
}

static int op_flock(const char *path, struct fuse_file_info *fi, int op)
{
	struct int_args a = { 1, 2, { op }, "op" };

	return call_ints(OP_flock, path, fi, &a);
}

/* space and positions */

static int op_fallocate(const char *path, int mode, off_t offset, off_t len,
			struct fuse_file_info *fi)
{
	struct int_args a = { 3, 5, { mode, offset, len }, "mode offset len" };

	return call_ints(OP_fallocate, path, fi, &a);
}

struct copy_args {
	const char *path_out;
	struct fuse_file_info *fi_out;
	off_t off_in, off_out;
	size_t len;
	int flags;
};

static int copy_body(lua_State *L)
{
	struct luafs_call *c = luafs_current;
	struct copy_args *a = c->args;

	push_path(L, c->path);
	luafs_fileinfo_push(L, c, c->fi, 0);
	lua_pushinteger(L, a->off_in);
	push_path(L, a->path_out);
	luafs_fileinfo_push(L, c, a->fi_out, 0);
	lua_pushinteger(L, a->off_out);
	lua_pushinteger(L, (lua_Integer)a->len);
	lua_pushinteger(L, a->flags);
	if (luafs_invoke(L, c) < 0)
		return 0;
	c->result = (int)check_count(L, c, FIRST, (lua_Integer)a->len);
	return 0;
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
		.args = &a, .pin = 1 + (in >= 0 ? in : out),
	};

	/*
	 * Two handles held by different states cannot meet in one; the
	 * kernel answers EXDEV by copying through read and write itself.
	 */
	if (in >= 0 && out >= 0 && in != out)
		return -EXDEV;
	return luafs_call(&c, copy_body);
}

struct lseek_args {
	off_t offset;
	int whence;
	off_t result;
};

static int lseek_body(lua_State *L)
{
	struct luafs_call *c = luafs_current;
	struct lseek_args *a = c->args;

	push_path(L, c->path);
	lua_pushinteger(L, a->offset);
	lua_pushinteger(L, a->whence);
	luafs_fileinfo_push(L, c, c->fi, 0);
	if (luafs_invoke(L, c) < 0)
		return 0;
	a->result = (off_t)check_count(L, c, FIRST, INT64_MAX);
	return 0;
}

static void describe_lseek(const struct luafs_call *c, char *out,
			   size_t size)
{
	const struct lseek_args *a = c->args;

	snprintf(out, size, "offset=%lld whence=%d", (long long)a->offset,
		 a->whence);
}

static off_t op_lseek(const char *path, off_t off, int whence,
		      struct fuse_file_info *fi)
{
	struct lseek_args a = { off, whence, 0 };
	struct luafs_call c = {
		.op = OP_lseek, .path = path, .fi = fi, .args = &a,
		.describe = describe_lseek,
	};
	int res = luafs_call(&c, lseek_body);

	return res < 0 ? res : a.result;
}

struct bmap_args {
	size_t blocksize;
	uint64_t *idx;
};

static int bmap_body(lua_State *L)
{
	struct luafs_call *c = luafs_current;
	struct bmap_args *a = c->args;

	push_path(L, c->path);
	lua_pushinteger(L, (lua_Integer)a->blocksize);
	lua_pushinteger(L, (lua_Integer)*a->idx);
	if (luafs_invoke(L, c) < 0)
		return 0;
	*a->idx = (uint64_t)check_count(L, c, FIRST, INT64_MAX);
	return 0;
}

static int op_bmap(const char *path, size_t blocksize, uint64_t *idx)
{
	struct bmap_args a = { blocksize, idx };
	struct luafs_call c = { .op = OP_bmap, .path = path, .args = &a };

	return luafs_call(&c, bmap_body);
}

/* ioctl: data in and out, sized by the command's _IOC bits. */

struct ioctl_args {
	unsigned int cmd;
	void *arg;
	unsigned int flags;
	void *data;
	size_t in, out;
};

/* ioctl returns its result, then the output data for _IOC_READ commands. */
static int ioctl_body(lua_State *L)
{
	struct luafs_call *c = luafs_current;
	struct ioctl_args *a = c->args;
	lua_Integer res = 0;
	const char *s;
	size_t len;

	push_path(L, c->path);
	lua_pushinteger(L, a->cmd);
	lua_pushinteger(L, (lua_Integer)(uintptr_t)a->arg);
	luafs_fileinfo_push(L, c, c->fi, 0);
	lua_pushinteger(L, a->flags);
	if (a->in > 0)
		lua_pushlstring(L, a->data, a->in);
	else
		lua_pushnil(L);
	if (luafs_invoke(L, c) < 0)
		return 0;
	if (!lua_isnil(L, FIRST))
		res = check_count(L, c, FIRST, INT32_MAX);
	c->result = (int)res;
	if (lua_isnil(L, FIRST + 1))
		return 0;
	s = check_string(L, c, FIRST + 1, &len);
	if (len > a->out)
		luaL_error(L, "ioctl returned %I bytes of data, the command "
			   "has room for %I", (lua_Integer)len,
			   (lua_Integer)a->out);
	memcpy(a->data, s, len);
	return 0;
}

static int op_ioctl(const char *path, unsigned int cmd, void *arg,
		    struct fuse_file_info *fi, unsigned int flags, void *data)
{
	struct ioctl_args a = { cmd, arg, flags, data, 0, 0 };
	struct luafs_call c = {
		.op = OP_ioctl, .path = path, .fi = fi, .args = &a,
	};

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
	return luafs_call(&c, ioctl_body);
}

/* poll */

struct poll_args {
	struct fuse_pollhandle *ph;	/* NULL once Lua owns it */
	unsigned *reventsp;
};

static int poll_body(lua_State *L)
{
	struct luafs_call *c = luafs_current;
	struct poll_args *a = c->args;

	push_path(L, c->path);
	luafs_fileinfo_push(L, c, c->fi, 0);
	luafs_pollhandle_push(L, a->ph);
	a->ph = NULL;
	if (luafs_invoke(L, c) < 0)
		return 0;
	*a->reventsp = (unsigned)check_count(L, c, FIRST, UINT32_MAX);
	return 0;
}

static int op_poll(const char *path, struct fuse_file_info *fi,
		   struct fuse_pollhandle *ph, unsigned *reventsp)
{
	struct poll_args a = { ph, reventsp };
	struct luafs_call c = {
		.op = OP_poll, .path = path, .fi = fi, .args = &a,
	};
	int res = luafs_call(&c, poll_body);

	if (a.ph != NULL)
		fuse_pollhandle_destroy(a.ph);
	return res;
}

/* init and destroy run in every state. */

struct init_args {
	struct fuse_conn_info *conn;
	struct fuse_config *cfg;
};

/* Whatever init returns first becomes the state's private value. */
static int init_body(lua_State *L)
{
	struct luafs_call *c = luafs_current;
	struct init_args *a = c->args;

	luafs_conn_push(L, a->conn);
	luafs_config_push(L, a->cfg);
	if (luafs_invoke(L, c) < 0)
		return 0;
	luafs_set_private(L, FIRST);
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
	struct init_args a = { conn, cfg };
	int i, n = luafs_host.present >> OP_init & 1 ? luafs_host.nstates : 0;

	for (i = 0; i < n; i++) {
		char message[LUAFS_MESSAGE_MAX] = "";
		struct luafs_call c = {
			.op = OP_init, .pin = i + 1, .args = &a,
			.message = message,
		};

		if (luafs_call(&c, init_body) < 0) {
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

static int destroy_body(lua_State *L)
{
	struct luafs_call *c = luafs_current;

	luafs_push_private(L);
	luafs_invoke(L, c);
	return 0;
}

static void op_destroy(void *private_data)
{
	int i;

	(void)private_data;
	for (i = 0; i < luafs_host.nstates; i++) {
		struct luafs_call c = { .op = OP_destroy, .pin = i + 1 };

		luafs_call(&c, destroy_body);
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
