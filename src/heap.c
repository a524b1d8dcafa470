/*
 * heap.c: the memory of one Lua state.
 *
 * Lua makes and frees small blocks all the time (a BufVec per read
 * or write, strings, tables), and the collector frees them in batches.
 * Through malloc each block costs hundreds of instructions: a batch
 * overflows malloc's per-thread cache, and its bins are shared with
 * libfuse's buffers, so malloc sorts and merges chunks on the way.  A state
 * is only ever used by one thread at a time, so it keeps the small blocks
 * it frees on lists of its own, one per size class, and hands them out
 * again without a lock.  Lua passes the size of every block it frees or
 * resizes, so a block needs no header.  Each list keeps at most
 * KEEP_BYTES; what is over goes back to malloc.
 *
 * The heap also keeps the account that -o lua_memory caps: an allocation
 * over the cap fails, Lua raises a memory error, and the call answers
 * ENOMEM.  It counts what Lua holds, not what the lists keep.
 *
 * Under AddressSanitizer a block on a list is poisoned, so a use after
 * free is still reported.
 */
#include "luafs.h"

#include <sanitizer/asan_interface.h>
#include <stdlib.h>
#include <string.h>

#define GRAIN 16		/* class k holds blocks of (k + 1) * GRAIN */
#define NCLASSES 16		/* blocks up to 256 bytes */
#define KEEP_BYTES (64 * 1024)

struct block {
	struct block *next;
};

struct luafs_heap {
	size_t used;		/* bytes Lua holds */
	size_t limit;		/* 0: no cap */
	struct block *free[NCLASSES];
	unsigned kept[NCLASSES];
};

static unsigned class_of(size_t size)
{
	return (unsigned)((size - 1) / GRAIN);
}

static void *take(struct luafs_heap *h, size_t size)
{
	unsigned k = class_of(size);
	struct block *b;

	if (k >= NCLASSES)
		return malloc(size);
	b = h->free[k];
	if (b == NULL)
		return malloc((k + 1) * GRAIN);
	ASAN_UNPOISON_MEMORY_REGION(b, (k + 1) * GRAIN);
	h->free[k] = b->next;
	h->kept[k]--;
	return b;
}

static void give(struct luafs_heap *h, void *p, size_t size)
{
	unsigned k = class_of(size);
	struct block *b = p;

	if (k >= NCLASSES || h->kept[k] >= KEEP_BYTES / ((k + 1) * GRAIN)) {
		free(p);
		return;
	}
	b->next = h->free[k];
	h->free[k] = b;
	h->kept[k]++;
	ASAN_POISON_MEMORY_REGION(b, (k + 1) * GRAIN);
}

void *luafs_heap_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
	struct luafs_heap *h = ud;
	size_t old = ptr ? osize : 0;
	void *p;

	if (nsize == 0) {
		if (ptr != NULL)
			give(h, ptr, old);
		h->used -= old;
		return NULL;
	}
	if (h->limit && nsize > old && h->used + (nsize - old) > h->limit)
		return NULL;
	if (ptr == NULL) {
		p = take(h, nsize);
	} else if (class_of(old) < NCLASSES || class_of(nsize) < NCLASSES) {
		if (class_of(old) == class_of(nsize)) {
			p = ptr;
		} else if ((p = take(h, nsize)) != NULL) {
			memcpy(p, ptr, old < nsize ? old : nsize);
			give(h, ptr, old);
		} else if (nsize < old) {
			/* Lua counts on shrinking never failing; a block too
			 * large for its class serves that class as well. */
			p = ptr;
		}
	} else {
		p = realloc(ptr, nsize);
	}
	if (p != NULL)
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

/* After lua_close: frees the blocks on the lists, and the heap. */
void luafs_heap_free(struct luafs_heap *h)
{
	struct block *b;
	unsigned k;

	if (h == NULL)
		return;
	for (k = 0; k < NCLASSES; k++) {
		while ((b = h->free[k]) != NULL) {
			ASAN_UNPOISON_MEMORY_REGION(b, (k + 1) * GRAIN);
			h->free[k] = b->next;
			free(b);
		}
	}
	free(h);
}
