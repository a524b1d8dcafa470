/*
 * invalidate.c: luafs.invalidate_path(path).  Invalidating a path makes
 * the kernel take locks that the request in progress may hold, so calling
 * fuse_invalidate_path from inside a callback can deadlock.  Requests are
 * queued instead, and a thread of their own sends them; it starts on first
 * use, which is always after the host has daemonized.
 */
#include "luafs.h"

#include <stdlib.h>
#include <string.h>

struct inval {
	struct inval *next;
	char path[];
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;
static struct inval *head, **tail = &head;
static pthread_t thread;
static int running, stopping;

static void *invalidator(void *arg)
{
	struct inval *in;

	(void)arg;
	pthread_mutex_lock(&lock);
	for (;;) {
		while (head == NULL && !stopping)
			pthread_cond_wait(&wake, &lock);
		if (head == NULL)
			break;
		in = head;
		head = in->next;
		if (head == NULL)
			tail = &head;
		pthread_mutex_unlock(&lock);
		fuse_invalidate_path(luafs_host.fuse, in->path);
		free(in);
		pthread_mutex_lock(&lock);
	}
	pthread_mutex_unlock(&lock);
	return NULL;
}

/* luafs.invalidate_path(path): drop the kernel's cache of path, soon. */
int luafs_invalidate_path(lua_State *L)
{
	size_t len;
	const char *path = luaL_checklstring(L, 1, &len);
	struct inval *in;

	if (luafs_host.fuse == NULL)
		return luaL_error(L, "luafs.invalidate_path: not mounted");
	in = malloc(sizeof(*in) + len + 1);
	if (in == NULL)
		return luaL_error(L, "out of memory");
	memcpy(in->path, path, len + 1);
	in->next = NULL;
	pthread_mutex_lock(&lock);
	if (!running && !stopping &&
	    pthread_create(&thread, NULL, invalidator, NULL) == 0)
		running = 1;
	if (!running) {
		pthread_mutex_unlock(&lock);
		free(in);
		return luaL_error(L, "luafs.invalidate_path: no thread");
	}
	*tail = in;
	tail = &in->next;
	pthread_cond_signal(&wake);
	pthread_mutex_unlock(&lock);
	lua_pushboolean(L, 1);
	return 1;
}

/* Sends what is queued and ends the thread, before the session ends. */
void luafs_invalidate_stop(void)
{
	pthread_mutex_lock(&lock);
	stopping = 1;
	pthread_cond_signal(&wake);
	pthread_mutex_unlock(&lock);
	if (running)
		pthread_join(thread, NULL);
	running = 0;
}
