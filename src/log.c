/*
 * log.c: the host's log.  Until the host daemonizes, messages go to stderr
 * so that start-up errors reach the terminal; afterwards to syslog.  A
 * message is one line: luafs_flatten makes one of a traceback.
 */
#include "luafs.h"

#include <stdio.h>
#include <string.h>

static int use_syslog;

void luafs_log_use_syslog(void)
{
	openlog("luafs", LOG_PID, LOG_DAEMON);
	use_syslog = 1;
}

void luafs_log(int priority, const char *fmt, ...)
{
	char line[4096];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (use_syslog) {
		syslog(priority, "%s", line);
		return;
	}
	/* One fprintf so that lines from concurrent requests do not mix. */
	fprintf(stderr, "luafs: %s%s\n",
		priority <= LOG_ERR ? "" :
		priority == LOG_WARNING ? "warning: " : "", line);
}

/*
 * Copies msg into out as one line: a newline and the indentation after it
 * become sep, " | " for a traceback ("error | stack traceback: | ...") and
 * " " for a message that merely wraps, as require's do.
 */
void luafs_flatten(char *out, size_t size, const char *msg, const char *sep)
{
	size_t o = 0, n = strlen(sep);

	for (; *msg && o + n + 1 < size; msg++) {
		if (*msg == '\n') {
			memcpy(out + o, sep, n);
			o += n;
			while (msg[1] == '\t' || msg[1] == ' ')
				msg++;
		} else {
			out[o++] = *msg;
		}
	}
	out[o] = '\0';
}
