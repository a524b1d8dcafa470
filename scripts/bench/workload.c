/*
 * workload.c: the benchmark's workloads, one small C program so that no
 * interpreter start-up is ever timed.  Each subcommand prints one number,
 * the rate, on stdout; the time of set-up steps is not counted.
 *
 *   workload stat FILE SECONDS           stat(2) in a loop       -> ops/s
 *   workload statn FILE N                N stat(2) calls         -> ops/s
 *   workload create DIR N                N x (creat, write 4 KiB, close),
 *                                        then N unlinks          -> files/s
 *   workload seqwrite FILE MIB           MIB blocks of 1 MiB, fsync, close
 *                                                                -> MiB/s
 *   workload seqread FILE SECONDS        posix_fadvise DONTNEED, then read
 *                                        it in 1 MiB blocks, again
 *                                        until SECONDS passed    -> MiB/s
 *   workload readdir DIR SECONDS         opendir, readdir to the end,
 *                                        closedir, repeated      -> entries/s
 *   workload readdir-page DIR SECONDS    the same with getdents64 into one
 *                                        page: the kernel asks the
 *                                        filesystem for a page at a time,
 *                                        as older kernels (Debian 12's
 *                                        6.1) always do          -> entries/s
 *   workload randread FILE THREADS SECONDS
 *                                        4 KiB preads at random aligned
 *                                        offsets, O_DIRECT, one fd per
 *                                        thread                  -> IOPS
 *   workload visibility SRCFILE MNTFILE N
 *                                        N times: chmod SRCFILE (in the
 *                                        mirrored directory) to the other
 *                                        of two modes, then stat MNTFILE
 *                                        until it shows that mode
 *                                        -> "MEDIAN P99" milliseconds from
 *                                        the chmod's return to the stat
 *                                        that saw it; a change not seen
 *                                        within a second fails the run
 *
 * seqread drops the kernel's page cache of FILE before each pass
 * (posix_fadvise POSIX_FADV_DONTNEED on the file as the mount shows it),
 * so that every byte comes through the filesystem even with kernel_cache
 * on; one pass of a file on tmpfs takes tens of milliseconds, too short to
 * time on its own.  randread
 * opens with O_DIRECT (FUSE passes direct reads through), so that after
 * the first second it does not measure the page cache instead.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MIB (1024 * 1024)

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what, const char *path)
{
	fprintf(stderr, "workload: %s %s: %s\n", what, path ? path : "",
		strerror(errno));
	exit(1);
}

static int do_stat(const char *path, double seconds)
{
	struct stat st;
	double start = now(), t;
	long n = 0;

	do {
		if (stat(path, &st) != 0)
			die("stat", path);
		n++;
	} while ((t = now()) - start < seconds);
	printf("%.0f\n", n / (t - start));
	return 0;
}

static int do_statn(const char *path, long count)
{
	struct stat st;
	double start = now();
	long i;

	for (i = 0; i < count; i++)
		if (stat(path, &st) != 0)
			die("stat", path);
	printf("%.0f\n", count / (now() - start));
	return 0;
}

static int do_create(const char *dir, int count)
{
	static char data[4096];
	char path[4096];
	double start;
	int i, fd;

	memset(data, 'x', sizeof(data));
	start = now();
	for (i = 0; i < count; i++) {
		snprintf(path, sizeof(path), "%s/f%05d", dir, i);
		fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0644);
		if (fd < 0)
			die("create", path);
		if (write(fd, data, sizeof(data)) != (ssize_t)sizeof(data))
			die("write", path);
		if (close(fd) != 0)
			die("close", path);
	}
	for (i = 0; i < count; i++) {
		snprintf(path, sizeof(path), "%s/f%05d", dir, i);
		if (unlink(path) != 0)
			die("unlink", path);
	}
	printf("%.1f\n", count / (now() - start));
	return 0;
}

static int do_seqwrite(const char *path, int mib)
{
	char *buf = malloc(MIB);
	double start;
	int fd, i;

	if (buf == NULL)
		die("malloc", NULL);
	for (i = 0; i < MIB; i++)
		buf[i] = (char)(i * 7 + 3);
	start = now();
	fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0644);
	if (fd < 0)
		die("open", path);
	for (i = 0; i < mib; i++)
		if (write(fd, buf, MIB) != MIB)
			die("write", path);
	if (fsync(fd) != 0)
		die("fsync", path);
	if (close(fd) != 0)
		die("close", path);
	printf("%.1f\n", mib / (now() - start));
	free(buf);
	return 0;
}

static int do_seqread(const char *path, double seconds)
{
	char *buf = malloc(MIB);
	double start, spent = 0;
	long long total = 0;
	ssize_t n;
	int fd;

	if (buf == NULL)
		die("malloc", NULL);
	do {
		fd = open(path, O_RDONLY);
		if (fd < 0)
			die("open", path);
		posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
		close(fd);
		start = now();
		fd = open(path, O_RDONLY);
		if (fd < 0)
			die("open", path);
		while ((n = read(fd, buf, MIB)) > 0)
			total += n;
		if (n < 0)
			die("read", path);
		close(fd);
		spent += now() - start;
	} while (spent < seconds);
	printf("%.1f\n", (double)total / MIB / spent);
	free(buf);
	return 0;
}

static int do_readdir(const char *path, double seconds)
{
	double start = now(), t;
	long entries = 0;
	struct dirent *e;
	DIR *d;

	do {
		d = opendir(path);
		if (d == NULL)
			die("opendir", path);
		errno = 0;
		while ((e = readdir(d)) != NULL)
			if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
				entries++;
		if (errno)
			die("readdir", path);
		closedir(d);
	} while ((t = now()) - start < seconds);
	printf("%.0f\n", entries / (t - start));
	return 0;
}

static int do_readdir_page(const char *path, double seconds)
{
	double start = now(), t;
	long entries = 0, n, at;
	static char buf[4096];
	struct dirent64 *e;
	int fd;

	do {
		fd = open(path, O_RDONLY | O_DIRECTORY);
		if (fd == -1)
			die("open", path);
		while ((n = getdents64(fd, buf, sizeof(buf))) > 0)
			for (at = 0; at < n; at += e->d_reclen) {
				e = (struct dirent64 *)(buf + at);
				if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
					entries++;
			}
		if (n == -1)
			die("getdents64", path);
		close(fd);
	} while ((t = now()) - start < seconds);
	printf("%.0f\n", entries / (t - start));
	return 0;
}

struct reader {
	pthread_t thread;
	const char *path;
	off_t blocks;
	double until;
	long ops;
	unsigned seed;
};

static void *reader_main(void *arg)
{
	struct reader *r = arg;
	void *buf;
	int fd = open(r->path, O_RDONLY | O_DIRECT);

	if (fd < 0)
		die("open O_DIRECT", r->path);
	if (posix_memalign(&buf, 4096, 4096) != 0)
		die("posix_memalign", NULL);
	while (now() < r->until) {
		off_t blk = (off_t)(rand_r(&r->seed) % r->blocks);

		if (pread(fd, buf, 4096, blk * 4096) != 4096)
			die("pread", r->path);
		r->ops++;
	}
	close(fd);
	free(buf);
	return NULL;
}

static int do_randread(const char *path, int threads, double seconds)
{
	struct reader *r = calloc((size_t)threads, sizeof(*r));
	struct stat st;
	double start;
	long ops = 0;
	int i;

	if (r == NULL)
		die("calloc", NULL);
	if (stat(path, &st) != 0)
		die("stat", path);
	start = now();
	for (i = 0; i < threads; i++) {
		r[i].path = path;
		r[i].blocks = st.st_size / 4096;
		r[i].until = start + seconds;
		r[i].seed = 12345u + (unsigned)i * 7919u;
		if (pthread_create(&r[i].thread, NULL, reader_main, &r[i]))
			die("pthread_create", NULL);
	}
	for (i = 0; i < threads; i++) {
		pthread_join(r[i].thread, NULL);
		ops += r[i].ops;
	}
	printf("%.0f\n", ops / (now() - start));
	free(r);
	return 0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static int do_visibility(const char *src, const char *mnt, int n)
{
	double *ms = calloc((size_t)n, sizeof(*ms)), t0;
	struct stat st;
	mode_t mode;
	int i;

	if (ms == NULL || n < 1)
		die("visibility", "N");
	if (stat(mnt, &st) != 0)	/* the kernel caches it from now on */
		die("stat", mnt);
	for (i = 0; i < n; i++) {
		mode = i % 2 ? 0600 : 0640;
		if (chmod(src, mode) != 0)
			die("chmod", src);
		t0 = now();
		do {
			if (stat(mnt, &st) != 0)
				die("stat", mnt);
			if (now() - t0 > 1)
				die("visibility: not seen after a second", mnt);
		} while ((st.st_mode & 07777) != mode);
		ms[i] = (now() - t0) * 1e3;
	}
	qsort(ms, (size_t)n, sizeof(*ms), cmp_double);
	printf("%.3f %.3f\n", ms[n / 2], ms[(int)(n * 0.99) < n ? (int)(n * 0.99) : n - 1]);
	free(ms);
	return 0;
}

int main(int argc, char **argv)
{
	const char *w = argc > 1 ? argv[1] : "";

	if (strcmp(w, "stat") == 0 && argc == 4)
		return do_stat(argv[2], atof(argv[3]));
	if (strcmp(w, "statn") == 0 && argc == 4)
		return do_statn(argv[2], atol(argv[3]));
	if (strcmp(w, "create") == 0 && argc == 4)
		return do_create(argv[2], atoi(argv[3]));
	if (strcmp(w, "seqwrite") == 0 && argc == 4)
		return do_seqwrite(argv[2], atoi(argv[3]));
	if (strcmp(w, "seqread") == 0 && argc == 4)
		return do_seqread(argv[2], atof(argv[3]));
	if (strcmp(w, "readdir") == 0 && argc == 4)
		return do_readdir(argv[2], atof(argv[3]));
	if (strcmp(w, "readdir-page") == 0 && argc == 4)
		return do_readdir_page(argv[2], atof(argv[3]));
	if (strcmp(w, "randread") == 0 && argc == 5)
		return do_randread(argv[2], atoi(argv[3]), atof(argv[4]));
	if (strcmp(w, "visibility") == 0 && argc == 5)
		return do_visibility(argv[2], argv[3], atoi(argv[4]));
	fprintf(stderr, "usage: workload stat|statn|create|seqwrite|seqread|"
		"readdir|readdir-page|randread|visibility ARGS (see workload.c)\n");
	return 2;
}
