/*
 * bufvec.c: luafs.BufVec, a struct fuse_bufvec: memory buffers and
 * file-descriptor buffers.  It lets read_buf answer with "these bytes of
 * this fd", which libfuse splices to the kernel, and lets write_buf copy
 * the request's data straight into an fd, so the data of a passthrough
 * never becomes a Lua string.
 *
 * A BufVec either borrows libfuse's bufvec for one write_buf call (lent
 * out: a copy kept raises afterwards) or owns a bufvec the script made,
 * which :release() and __close end and the collector frees.  Copying from
 * a BufVec the script made does not use it up; copying from write_buf's
 * does (see cursor).
 */
#include "luafs.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define BUFVEC_MT "luafs.BufVec"

static const struct luafs_type bufvec_type = { BUFVEC_MT, LUAFS_T_BUFVEC };

/*
 * The memory buffer of a BufVec the script made lives in the userdata,
 * after the struct, so the collector frees it with the object and no
 * BufVec needs a finalizer.
 */
struct bufvec {
	struct fuse_bufvec *bv;	/* first: cleared when lent out ends */
	int owned;		/* made by the script, not write_buf's */
	struct fuse_bufvec one;	/* what bv points to when owned */
};

static size_t bufvec_bytes(size_t count)
{
	return sizeof(struct fuse_bufvec) +
	       (count - 1) * sizeof(struct fuse_buf);
}

static struct bufvec *test_bufvec(lua_State *L, int idx)
{
	return luafs_testudata(L, idx, &bufvec_type);
}

static struct bufvec *check_bufvec(lua_State *L, int idx)
{
	struct bufvec *u = luafs_checkudata(L, idx, &bufvec_type);

	if (u->bv == NULL)
		luaL_error(L, "expired or released luafs.BufVec");
	return u;
}

/* Frees a bufvec and its memory buffers, as libfuse's fuse_free_buf does. */
static void free_bufvec(struct fuse_bufvec *bv)
{
	size_t i;

	for (i = 0; i < bv->count; i++)
		if (!(bv->buf[i].flags & FUSE_BUF_IS_FD))
			free(bv->buf[i].mem);
	free(bv);
}

static void release(struct bufvec *u)
{
	u->bv = NULL;
}

/* A BufVec of one buffer of size bytes, with room for extra bytes. */
static struct bufvec *new_owned(lua_State *L, size_t size, size_t extra)
{
	struct bufvec *u = lua_newuserdatauv(L, sizeof(*u) + extra, 0);

	u->one = (struct fuse_bufvec)FUSE_BUFVEC_INIT(size);
	u->bv = &u->one;
	u->owned = 1;
	luafs_setmetatable(L, &bufvec_type);
	return u;
}

/* BufVec.fd(fd, size [, pos [, flags]]): size bytes of fd, at pos if given. */
static int l_fd(lua_State *L)
{
	int fd = (int)luaL_checkinteger(L, 1);
	lua_Integer size = luaL_checkinteger(L, 2);
	int seek = !lua_isnoneornil(L, 3);
	lua_Integer pos = seek ? luaL_checkinteger(L, 3) : 0;
	lua_Integer flags = luaL_optinteger(L, 4, 0);
	struct bufvec *u;

	luaL_argcheck(L, size >= 0, 2, "negative size");
	u = new_owned(L, (size_t)size, 0);
	u->bv->buf[0].fd = fd;
	u->bv->buf[0].flags = FUSE_BUF_IS_FD | (enum fuse_buf_flags)flags |
			      (seek ? FUSE_BUF_FD_SEEK : 0);
	u->bv->buf[0].pos = (off_t)pos;
	return 1;
}

/* BufVec.mem(string | size): a memory buffer, a copy or zeroed. */
static int l_mem(lua_State *L)
{
	size_t len;
	const char *s = NULL;
	struct bufvec *u;

	if (lua_type(L, 1) == LUA_TSTRING) {
		s = lua_tolstring(L, 1, &len);
	} else {
		lua_Integer n = luaL_checkinteger(L, 1);

		/* No request moves more; a larger buffer is a script's bug. */
		luaL_argcheck(L, n >= 0 && n <= INT32_MAX, 1,
			      "size out of range (0 to 2^31 - 1)");
		len = (size_t)n;
	}
	u = new_owned(L, len, len);
	u->bv->buf[0].mem = u + 1;
	if (s)
		memcpy(u + 1, s, len);
	else
		memset(u + 1, 0, len);
	return 1;
}

static int l_size(lua_State *L)
{
	lua_pushinteger(L, (lua_Integer)fuse_buf_size(check_bufvec(L, 1)->bv));
	return 1;
}

static int l_count(lua_State *L)
{
	lua_pushinteger(L, (lua_Integer)check_bufvec(L, 1)->bv->count);
	return 1;
}

/* bv:buffer(i) -> size, flags, fd, pos of the i-th buffer (1-based). */
static int l_buffer(lua_State *L)
{
	struct fuse_bufvec *bv = check_bufvec(L, 1)->bv;
	lua_Integer i = luaL_checkinteger(L, 2);
	struct fuse_buf *b;

	luaL_argcheck(L, i >= 1 && (size_t)i <= bv->count, 2, "no such buffer");
	b = &bv->buf[i - 1];
	lua_pushinteger(L, (lua_Integer)b->size);
	lua_pushinteger(L, b->flags);
	if (b->flags & FUSE_BUF_IS_FD) {
		lua_pushinteger(L, b->fd);
		lua_pushinteger(L, b->pos);
		return 4;
	}
	return 2;
}

/*
 * The bufvec a copy reads or fills.  fuse_buf_copy advances the bufvecs it
 * is given.  A BufVec the script made is copied shallowly first, so that
 * copying from it again gives the same bytes.  write_buf's is used in
 * place: its data may be in a pipe, which a read drains whatever the
 * bufvec says, so a second copy must find nothing left rather than block
 * on the empty pipe; and libfuse resets the pipe when its bufvec says that
 * some of it was not consumed.
 */
static struct fuse_bufvec *cursor(lua_State *L, struct bufvec *u)
{
	struct fuse_bufvec *bv;

	if (!u->owned)
		return u->bv;
	bv = lua_newuserdatauv(L, bufvec_bytes(u->bv->count), 0);
	memcpy(bv, u->bv, bufvec_bytes(u->bv->count));
	return bv;
}

/*
 * The other side of a copy: a BufVec, or an fd at a pos (nil: at the
 * fd's file offset, as BufVec.fd).
 */
static struct fuse_bufvec *copy_side(lua_State *L, int idx,
				     struct fuse_bufvec *fdv, size_t size)
{
	if (lua_isinteger(L, idx)) {
		*fdv = (struct fuse_bufvec)FUSE_BUFVEC_INIT(size);
		fdv->buf[0].fd = (int)lua_tointeger(L, idx);
		fdv->buf[0].flags = FUSE_BUF_IS_FD;
		if (!lua_isnoneornil(L, idx + 1)) {
			fdv->buf[0].flags |= FUSE_BUF_FD_SEEK;
			fdv->buf[0].pos = (off_t)luaL_checkinteger(L, idx + 1);
		}
		return fdv;
	}
	return cursor(L, check_bufvec(L, idx));
}

static int copy_result(lua_State *L, ssize_t n)
{
	if (n < 0) {
		errno = (int)-n;
		return luaL_fileresult(L, 0, "luafs.BufVec copy");
	}
	lua_pushinteger(L, (lua_Integer)n);
	return 1;
}

/* The flags of copy_to and copy_from, read before anything is pushed. */
static enum fuse_buf_copy_flags copy_flags(lua_State *L)
{
	int idx = lua_isinteger(L, 2) ? 4 : 3;

	return (enum fuse_buf_copy_flags)luaL_optinteger(L, idx, 0);
}

/* bv:copy_to(dst | fd, pos [, flags]) -> bytes copied */
static int l_copy_to(lua_State *L)
{
	struct bufvec *u = check_bufvec(L, 1);
	enum fuse_buf_copy_flags flags = copy_flags(L);
	struct fuse_bufvec fdv, *dst, *src;

	dst = copy_side(L, 2, &fdv, fuse_buf_size(u->bv));
	src = cursor(L, u);
	return copy_result(L, fuse_buf_copy(dst, src, flags));
}

/* bv:copy_from(src | fd, pos [, flags]) -> bytes copied */
static int l_copy_from(lua_State *L)
{
	struct bufvec *u = check_bufvec(L, 1);
	enum fuse_buf_copy_flags flags = copy_flags(L);
	struct fuse_bufvec fdv, *dst, *src;

	src = copy_side(L, 2, &fdv, fuse_buf_size(u->bv));
	dst = cursor(L, u);
	return copy_result(L, fuse_buf_copy(dst, src, flags));
}

/* bv:tostring() -> the bytes, read from fds where the buffers are fds. */
static int l_tostring(lua_State *L)
{
	struct bufvec *u = check_bufvec(L, 1);
	size_t size = fuse_buf_size(u->bv);
	struct fuse_bufvec dst = FUSE_BUFVEC_INIT(size), *src;
	luaL_Buffer b;
	ssize_t n;

	src = cursor(L, u);
	dst.buf[0].mem = luaL_buffinitsize(L, &b, size);
	n = fuse_buf_copy(&dst, src, 0);
	if (n < 0) {
		errno = (int)-n;
		return luaL_fileresult(L, 0, "luafs.BufVec");
	}
	luaL_pushresultsize(&b, (size_t)n);
	return 1;
}

static int l_release(lua_State *L)
{
	struct bufvec *u = luafs_checkudata(L, 1, &bufvec_type);

	if (u->owned)
		release(u);
	return 0;
}

static int l_name(lua_State *L)
{
	struct bufvec *u = luafs_checkudata(L, 1, &bufvec_type);

	if (u->bv == NULL)
		lua_pushliteral(L, "luafs.BufVec (expired)");
	else
		lua_pushfstring(L, "luafs.BufVec (%d buffers, %I bytes)",
				(int)u->bv->count,
				(lua_Integer)fuse_buf_size(u->bv));
	return 1;
}

void luafs_bufvec_open(lua_State *L)
{
	static const luaL_Reg methods[] = {
		{"size", l_size},
		{"count", l_count},
		{"buffer", l_buffer},
		{"copy_to", l_copy_to},
		{"copy_from", l_copy_from},
		{"tostring", l_tostring},
		{"release", l_release},
		{NULL, NULL}
	};
	static const luaL_Reg meta[] = {
		{"__close", l_release},
		{"__tostring", l_name},
		{"__len", l_size},
		{NULL, NULL}
	};
	static const luaL_Reg constructors[] = {
		{"fd", l_fd},
		{"mem", l_mem},
		{NULL, NULL}
	};

	luafs_newmetatable(L, &bufvec_type);
	luaL_setfuncs(L, meta, 0);
	luaL_newlib(L, methods);
	lua_setfield(L, -2, "__index");
	lua_pop(L, 1);
	luaL_newlib(L, constructors);
}

/* write_buf's bufvec, lent to the script for call c. */
void luafs_bufvec_push_borrowed(lua_State *L, struct luafs_call *c,
				struct fuse_bufvec *bv)
{
	struct bufvec *u = lua_newuserdatauv(L, sizeof(*u), 0);

	u->bv = bv;
	u->owned = 0;
	luafs_setmetatable(L, &bufvec_type);
	luafs_lend(L, c, (void **)&u->bv);
}

/*
 * What read_buf answers: a malloc'd bufvec that libfuse frees, memory
 * buffers included (fuse_free_buf), from a BufVec or a string.
 */
struct fuse_bufvec *luafs_bufvec_take(lua_State *L, int idx, size_t max)
{
	struct fuse_bufvec *src, *out;
	struct bufvec *u;
	size_t i, len;
	const char *s;

	if (lua_type(L, idx) == LUA_TSTRING) {
		s = lua_tolstring(L, idx, &len);
		if (len > max)
			luaL_error(L, "read_buf returned %I bytes for a read "
				   "of %I", (lua_Integer)len, (lua_Integer)max);
		out = malloc(sizeof(*out));
		if (out == NULL) {
			luaL_error(L, "out of memory");
			return NULL;
		}
		*out = (struct fuse_bufvec)FUSE_BUFVEC_INIT(len);
		out->buf[0].mem = malloc(len ? len : 1);
		if (out->buf[0].mem == NULL) {
			free(out);
			luaL_error(L, "out of memory");
			return NULL;
		}
		memcpy(out->buf[0].mem, s, len);
		return out;
	}
	if ((u = test_bufvec(L, idx)) == NULL)
		luaL_error(L, "read_buf must return a string or a luafs.BufVec, "
			   "got %s", luaL_typename(L, idx));
	if ((src = u->bv) == NULL)
		luaL_error(L, "expired or released luafs.BufVec");
	out = malloc(bufvec_bytes(src->count));
	if (out == NULL) {
		luaL_error(L, "out of memory");
		return NULL;
	}
	memcpy(out, src, bufvec_bytes(src->count));
	for (i = 0; i < out->count; i++)
		out->buf[i].mem = NULL;
	for (i = 0; i < out->count; i++) {
		if (out->buf[i].flags & FUSE_BUF_IS_FD)
			continue;
		out->buf[i].mem = malloc(out->buf[i].size ? out->buf[i].size : 1);
		if (out->buf[i].mem == NULL) {
			free_bufvec(out);
			luaL_error(L, "out of memory");
			return NULL;
		}
		memcpy(out->buf[i].mem, src->buf[i].mem, out->buf[i].size);
	}
	if (fuse_buf_size(out) > max) {
		/* A short read is fine; a long one is trimmed to the request. */
		size_t left = max;

		for (i = 0; i < out->count; i++) {
			if (out->buf[i].size > left)
				out->buf[i].size = left;
			left -= out->buf[i].size;
		}
	}
	return out;
}
