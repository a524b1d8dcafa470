/*
 * heap.c: the memory of one Lua state: a lua_Alloc over malloc that keeps
 * the account -o lua_memory caps.  An allocation over the cap fails, Lua
 * raises a memory error, and the call answers ENOMEM.  Shrinking and
 * freeing never fail, as Lua requires.
 */
#include "luafs.h"

#include <stdlib.h>

struct luafs_heap {
	size_t used;		/* bytes Lua holds */
	size_t limit;		/* 0: no cap */
};

void *luafs_heap_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
	struct luafs_heap *h = ud;
	size_t old = ptr ? osize : 0;
	void *p;

	if (nsize == 0) {
		free(ptr);
		h->used -= old;
		return NULL;
	}
	if (h->limit && nsize > old && h->used + (nsize - old) > h->limit)
		return NULL;
	p = realloc(ptr, nsize);
	if (p == NULL && nsize <= old)
		p = ptr;	/* a block too large serves as well */
	if (p == NULL)
		return NULL;
	h->used = h->used - old + nsize;
	return p;
}

struct luafs_heap *luafs_heap_new(void)
{
	return calloc(1, sizeof(struct luafs_heap));
}

void luafs_heap_limit(struct luafs_heap *h, size_t limit)
{
	h->limit = limit;
}

size_t luafs_heap_used(const struct luafs_heap *h)
{
	return h->used;
}

void luafs_heap_free(struct luafs_heap *h)
{
	free(h);
}
