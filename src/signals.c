/*
 * signals.c: the signals the host answers.  SIGINT, SIGTERM and SIGHUP
 * unmount (as libfuse's own handlers do); SIGUSR1 reloads the script;
 * SIGPIPE is ignored, so that a reader that went away costs a request an
 * EPIPE, not the host its life.  Handlers only set flags, write to a
 * pipe, or forward the signal.
 *
 * The kernel hands a signal sent to the process to any thread that does
 * not block it.  libfuse's workers block the unmount signals; the main
 * thread waits for the loop to end, and only a signal delivered to it (or
 * a worker's next request) wakes it.  So a handler that runs on another
 * thread of the host (the reload thread) forwards the signal to the main
 * thread.
 */
#include "luafs.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

/*
 * How many seconds the callbacks in flight get to finish after a signal
 * to unmount, before the Lua code still running is interrupted.
 */
#define STOP_GRACE 2

static volatile sig_atomic_t stopping;
static volatile pid_t main_tid;

static void set_handler(int sig, void (*handler)(int))
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = handler;
	sigemptyset(&sa.sa_mask);
	sigaction(sig, &sa, NULL);
}

static void on_signal(int sig)
{
	int saved = errno;

	if (luafs_host.fuse)
		fuse_exit(luafs_host.fuse);
	if (sig == SIGALRM) {
		luafs_pool_interrupt();
	} else {
		if (!stopping) {
			stopping = 1;
			alarm(STOP_GRACE);
		}
		if (main_tid != 0 && gettid() != main_tid)
			tgkill(getpid(), main_tid, sig);
	}
	errno = saved;
}

static void on_reload_signal(int sig)
{
	(void)sig;
	luafs_reload_request();
}

/* Before the mount, so that no signal can leave it behind. */
void luafs_signals_set(void)
{
	set_handler(SIGUSR1, on_reload_signal);
	set_handler(SIGINT, on_signal);
	set_handler(SIGTERM, on_signal);
	set_handler(SIGHUP, on_signal);
	set_handler(SIGALRM, on_signal);
	set_handler(SIGPIPE, SIG_IGN);
}

/* In the process that serves, before it starts threads of its own. */
void luafs_signals_serving(void)
{
	main_tid = gettid();
}

/* The parent that waits for start-up: a signal ends it, not the child. */
void luafs_signals_default(void)
{
	set_handler(SIGINT, SIG_DFL);
	set_handler(SIGTERM, SIG_DFL);
	set_handler(SIGHUP, SIG_DFL);
}

/* Blocks the unmount signals once serving is over, so destroy can run. */
void luafs_signals_block(void)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGALRM);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	alarm(0);
	luafs_pool_uninterrupt();
}
