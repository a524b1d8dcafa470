/*
 * control.c: a mounted host answers `luafs --stats MOUNTPOINT` and
 * `luafs --trace on|off MOUNTPOINT` on a Unix socket of its own.
 *
 * The socket is in the abstract namespace, named after the mountpoint, so
 * there is no file to clean up after a host that died, and a new host on
 * the same mountpoint simply takes the name over.  Only the user the host
 * runs as, and root, are answered (SO_PEERCRED).  A thread of its own
 * accepts one connection at a time: a command line in, the answer out.
 */
#include "luafs.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define REPORT_MAX (64 * 1024)

static int listen_fd = -1;
static int wake_fds[2] = { -1, -1 };
static pthread_t thread;
static int running;

/* The socket's abstract name: "luafs" and the mountpoint, or its hash. */
static socklen_t socket_name(const char *mountpoint, struct sockaddr_un *sa)
{
	size_t room = sizeof(sa->sun_path) - 1, len = strlen(mountpoint);
	uint64_t h = UINT64_C(14695981039346656037);
	int n;

	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if (len + 6 <= room) {
		n = snprintf(sa->sun_path + 1, room, "luafs%s", mountpoint);
	} else {
		for (; *mountpoint; mountpoint++)
			h = (h ^ (unsigned char)*mountpoint) *
			    UINT64_C(1099511628211);
		n = snprintf(sa->sun_path + 1, room, "luafs#%016llx",
			     (unsigned long long)h);
	}
	return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n);
}

static int allowed(int fd)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0)
		return 0;
	return cred.uid == 0 || cred.uid == geteuid();
}

/*
 * A peer that went away is no signal: the host refuses a user by closing
 * the connection at once, maybe before `luafs --stats` has written its
 * command, which must then go on to say why.
 */
static void write_all(int fd, const char *p, size_t n)
{
	ssize_t w;

	while (n > 0 &&
	       ((w = send(fd, p, n, MSG_NOSIGNAL)) > 0 || errno == EINTR))
		if (w > 0) {
			p += w;
			n -= (size_t)w;
		}
}

static void serve(int fd, char *report)
{
	char cmd[64];
	size_t len;
	ssize_t n;

	n = read(fd, cmd, sizeof(cmd) - 1);
	if (n <= 0)
		return;
	cmd[n] = '\0';
	cmd[strcspn(cmd, "\n")] = '\0';
	if (strcmp(cmd, "stats") == 0) {
		len = luafs_stats_report(report, REPORT_MAX);
		write_all(fd, report, len);
	} else if (strcmp(cmd, "reset") == 0) {
		luafs_stats_reset();
		write_all(fd, "statistics reset\n", 17);
	} else if (strcmp(cmd, "trace on") == 0 ||
		   strcmp(cmd, "trace off") == 0) {
		__atomic_store_n(&luafs_host.trace, cmd[7] == 'n',
				 __ATOMIC_RELAXED);
		luafs_log(LOG_NOTICE, "%s", cmd[7] == 'n' ? "trace on" :
			  "trace off");
		len = (size_t)snprintf(report, REPORT_MAX, "%s\n", cmd);
		write_all(fd, report, len);
	} else {
		write_all(fd, "unknown command\n", 16);
	}
}

static int thread_start(pthread_t *t, void *(*run)(void *), const char *name)
{
	if (pthread_create(t, NULL, run, NULL) != 0)
		return -1;
	pthread_setname_np(*t, name);
	return 0;
}

static void *controller(void *arg)
{
	struct pollfd fds[2] = {
		{ .fd = wake_fds[0], .events = POLLIN },
		{ .fd = listen_fd, .events = POLLIN },
	};
	char *report = malloc(REPORT_MAX);
	int fd;

	(void)arg;
	while (report != NULL) {
		if (poll(fds, 2, -1) < 0 && errno != EINTR)
			break;
		if (fds[0].revents)
			break;
		if (!(fds[1].revents & POLLIN))
			continue;
		fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		if (allowed(fd))
			serve(fd, report);
		close(fd);
	}
	free(report);
	return NULL;
}

/* Starts answering; a mount without it still serves, with a warning. */
void luafs_control_start(void)
{
	struct sockaddr_un sa;
	socklen_t len = socket_name(luafs_host.mountpoint, &sa);

	listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (listen_fd < 0 || bind(listen_fd, (struct sockaddr *)&sa, len) != 0 ||
	    listen(listen_fd, 4) != 0 || pipe2(wake_fds, O_CLOEXEC) != 0 ||
	    thread_start(&thread, controller, "luafs-control") != 0) {
		luafs_log(LOG_WARNING, "no --stats and --trace for this mount: "
			  "%s", strerror(errno));
		luafs_control_stop();
		return;
	}
	running = 1;
}

void luafs_control_stop(void)
{
	if (running) {
		if (write(wake_fds[1], "q", 1) != 1)
			pthread_cancel(thread);
		pthread_join(thread, NULL);
		running = 0;
	}
	if (listen_fd >= 0)
		close(listen_fd);
	if (wake_fds[0] >= 0) {
		close(wake_fds[0]);
		close(wake_fds[1]);
	}
	listen_fd = wake_fds[0] = wake_fds[1] = -1;
}

/*
 * The client: sends cmd to the host serving mountpoint and copies its
 * answer to standard output.  Returns an exit status.
 */
int luafs_control_client(const char *mountpoint, const char *cmd)
{
	char path[PATH_MAX], buf[4096];
	struct sockaddr_un sa;
	size_t total = 0;
	socklen_t len;
	ssize_t n;
	int fd;

	/* A mount of another user's cannot be looked at: take it as given. */
	if (realpath(mountpoint, path) == NULL &&
	    (mountpoint[0] != '/' ||
	     snprintf(path, sizeof(path), "%s", mountpoint) >= PATH_MAX)) {
		fprintf(stderr, "luafs: %s: %s\n", mountpoint, strerror(errno));
		return 1;
	}
	len = socket_name(path, &sa);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, len) != 0) {
		fprintf(stderr, "luafs: no luafs serves %s (%s)\n", path,
			strerror(errno));
		if (fd >= 0)
			close(fd);
		return 1;
	}
	write_all(fd, cmd, strlen(cmd));
	shutdown(fd, SHUT_WR);
	while ((n = read(fd, buf, sizeof(buf))) > 0 || (n < 0 && errno == EINTR))
		if (n > 0) {
			total += (size_t)n;
			fwrite(buf, 1, (size_t)n, stdout);
		}
	close(fd);
	if (total == 0) {
		fprintf(stderr, "luafs: the luafs that serves %s did not "
			"answer: only the user it runs as, and root, may ask\n",
			path);
		return 1;
	}
	return n < 0 ? 1 : 0;
}
