/*
 * stats.c: what the mount has been doing, for `luafs --stats MOUNTPOINT`:
 * per operation the calls, the failures by errno and a histogram of the
 * script's time; per state its Lua memory, whether a call runs in it and
 * the generation of its code; for the host the requests waiting for a
 * state, the reloads and the RSS.
 *
 * Counting is always on, so it must cost a call next to nothing: a few
 * relaxed atomic additions to its operation's counters, and the time
 * taken from the CPU's time-stamp counter (one instruction) where there
 * is one, converted to microseconds only when a report is made.
 */
#include "luafs.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#endif

#define BUCKETS 128	/* two per power of two of ticks */
#define MAX_ERRNO 512

struct op_stats {
	uint64_t calls;
	uint64_t failed;
	uint64_t max_ticks;
	uint64_t buckets[BUCKETS];
	uint32_t errnos[MAX_ERRNO];
};

/* One more than the operations: the background jobs' calls (OP_COUNT). */
static struct op_stats ops[OP_COUNT + 1];
static uint64_t reloads_ok, reloads_failed;
static double started;

uint64_t luafs_stats_ticks(void)
{
#if defined(__x86_64__) || defined(__i386__)
	return __rdtsc();
#else
	return (uint64_t)(luafs_now() * 1e9);
#endif
}

/* Bucket 2k holds [2^k, 1.5 * 2^k), bucket 2k + 1 [1.5 * 2^k, 2^(k+1)). */
static unsigned bucket_of(uint64_t ticks)
{
	unsigned k;

	if (ticks < 2)
		return 0;
	k = 63 - (unsigned)__builtin_clzll(ticks);
	return 2 * k + (unsigned)(ticks >> (k - 1) & 1);
}

static double bucket_mid(unsigned b)
{
	double low = (double)(UINT64_C(1) << (b / 2)) * (b % 2 ? 1.5 : 1.0);
	double high = (double)(UINT64_C(1) << (b / 2)) * (b % 2 ? 2.0 : 1.5);

	return (low + high) / 2;
}

void luafs_stats_call(enum luafs_op op, int result, uint64_t ticks)
{
	struct op_stats *s = &ops[op];

	__atomic_add_fetch(&s->calls, 1, __ATOMIC_RELAXED);
	__atomic_add_fetch(&s->buckets[bucket_of(ticks)], 1, __ATOMIC_RELAXED);
	if (ticks > __atomic_load_n(&s->max_ticks, __ATOMIC_RELAXED))
		__atomic_store_n(&s->max_ticks, ticks, __ATOMIC_RELAXED);
	if (result < 0) {
		__atomic_add_fetch(&s->failed, 1, __ATOMIC_RELAXED);
		if (-result < MAX_ERRNO)
			__atomic_add_fetch(&s->errnos[-result], 1,
					   __ATOMIC_RELAXED);
	}
}

void luafs_stats_reload(int ok)
{
	__atomic_add_fetch(ok ? &reloads_ok : &reloads_failed, 1,
			   __ATOMIC_RELAXED);
}

void luafs_stats_start(void)
{
	started = luafs_now();
}

void luafs_stats_reset(void)
{
	memset(ops, 0, sizeof(ops));
	reloads_ok = reloads_failed = 0;
	started = luafs_now();
}

/* Ticks per microsecond, measured once against CLOCK_MONOTONIC. */
static double ticks_per_us(void)
{
	static double rate;
	double t0, t1;
	uint64_t c0, c1;

	if (rate > 0)
		return rate;
	t0 = luafs_now();
	c0 = luafs_stats_ticks();
	do
		t1 = luafs_now();
	while (t1 - t0 < 0.02);
	c1 = luafs_stats_ticks();
	rate = (double)(c1 - c0) / ((t1 - t0) * 1e6);
	return rate;
}

/* The tick count below which a fraction q of the calls fall. */
static double percentile(const struct op_stats *s, uint64_t calls, double q)
{
	uint64_t seen = 0, want = (uint64_t)(q * (double)calls + 0.5);
	unsigned b;

	if (want == 0)
		want = 1;
	for (b = 0; b < BUCKETS; b++) {
		seen += s->buckets[b];
		if (seen >= want)
			break;
	}
	/* A bucket's middle may lie past the longest call in it. */
	if (b == BUCKETS || bucket_mid(b) > (double)s->max_ticks)
		return (double)s->max_ticks;
	return bucket_mid(b);
}

static long rss_kib(void)
{
	char line[256];
	long kib = -1;
	FILE *f = fopen("/proc/self/status", "r");

	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
			break;
	fclose(f);
	return kib;
}

/* Appends to out: a printf to a growing buffer that never overflows. */
struct text {
	char *buf;
	size_t len, size;
};

static void add(struct text *t, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void add(struct text *t, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (t->len >= t->size)
		return;
	va_start(ap, fmt);
	n = vsnprintf(t->buf + t->len, t->size - t->len, fmt, ap);
	va_end(ap);
	if (n > 0)
		t->len += (size_t)n < t->size - t->len ? (size_t)n :
			  t->size - t->len - 1;
}

static void add_errnos(struct text *t, const struct op_stats *s)
{
	const char *name;
	int e, first = 1;

	for (e = 1; e < MAX_ERRNO; e++) {
		if (s->errnos[e] == 0)
			continue;
		name = luafs_errno_name(e);
		if (name != NULL)
			add(t, "%s%s %u", first ? " " : ", ", name,
			    s->errnos[e]);
		else
			add(t, "%serrno %d %u", first ? " " : ", ", e,
			    s->errnos[e]);
		first = 0;
	}
}

/* The report, as text, into buf; returns its length. */
size_t luafs_stats_report(char *buf, size_t size)
{
	struct text t = { buf, 0, size };
	double rate = ticks_per_us();
	struct luafs_state *st;
	int op, i;

	add(&t, "luafs %s on %s, pid %d, up %.1f s, generation %d\n",
	    luafs_host.script, luafs_host.mountpoint, (int)getpid(),
	    luafs_now() - started,
	    __atomic_load_n(&luafs_host.generation, __ATOMIC_RELAXED));
	add(&t, "\n%-16s %10s %10s %10s %10s %10s  %s\n", "operation", "calls",
	    "failed", "p50 us", "p99 us", "max us", "failures by errno");
	for (op = 0; op <= OP_COUNT; op++) {
		const struct op_stats *s = &ops[op];
		uint64_t calls = __atomic_load_n(&s->calls, __ATOMIC_RELAXED);

		if (calls == 0)
			continue;
		add(&t, "%-16s %10llu %10llu %10.1f %10.1f %10.1f ",
		    op < OP_COUNT ? luafs_op_names[op] : "background",
		    (unsigned long long)calls,
		    (unsigned long long)s->failed,
		    percentile(s, calls, 0.5) / rate,
		    percentile(s, calls, 0.99) / rate,
		    (double)s->max_ticks / rate);
		add_errnos(&t, s);
		add(&t, "\n");
	}
	add(&t, "\n%-6s %14s %8s %10s\n", "state", "Lua memory KiB", "busy",
	    "generation");
	for (i = 0; i < luafs_host.nstates; i++) {
		st = &luafs_host.states[i];
		add(&t, "%-6d %14zu %8s %10d\n", i + 1,
		    luafs_heap_used(st->heap) / 1024,
		    __atomic_load_n(&st->pool.busy, __ATOMIC_RELAXED) ?
		    "yes" : "no", st->code.generation);
	}
	add(&t, "\nwaiting for a state %d, reloads %llu done and %llu "
	    "failed, RSS %ld KiB\n",
	    __atomic_load_n(&luafs_host.waiters, __ATOMIC_RELAXED),
	    (unsigned long long)reloads_ok,
	    (unsigned long long)reloads_failed, rss_kib());
	return t.len;
}
