/*
 * constants.c: errno names, mode bits and flags as integer fields of the
 * luafs module.
 *
 * A name is set only when the headers luafs was built against define it
 * (each one sits in its own #ifdef), so a script can test for a feature
 * with `if luafs.O_TMPFILE then`.  The FUSE_BUF_*, FUSE_READDIR_PLUS and
 * FUSE_FILL_DIR_PLUS values are enumerators, which #ifdef cannot see;
 * every libfuse 3 has them.
 */
#include "luafs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/timerfd.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

struct constant {
	const char *name;
	lua_Integer value;
};

#define K(name) { #name, name }

static const struct constant constants[] = {
	/* errno */
#ifdef E2BIG
	K(E2BIG),
#endif
#ifdef EACCES
	K(EACCES),
#endif
#ifdef EADDRINUSE
	K(EADDRINUSE),
#endif
#ifdef EADDRNOTAVAIL
	K(EADDRNOTAVAIL),
#endif
#ifdef EADV
	K(EADV),
#endif
#ifdef EAFNOSUPPORT
	K(EAFNOSUPPORT),
#endif
#ifdef EAGAIN
	K(EAGAIN),
#endif
#ifdef EALREADY
	K(EALREADY),
#endif
#ifdef EBADE
	K(EBADE),
#endif
#ifdef EBADF
	K(EBADF),
#endif
#ifdef EBADFD
	K(EBADFD),
#endif
#ifdef EBADMSG
	K(EBADMSG),
#endif
#ifdef EBADR
	K(EBADR),
#endif
#ifdef EBADRQC
	K(EBADRQC),
#endif
#ifdef EBADSLT
	K(EBADSLT),
#endif
#ifdef EBFONT
	K(EBFONT),
#endif
#ifdef EBUSY
	K(EBUSY),
#endif
#ifdef ECANCELED
	K(ECANCELED),
#endif
#ifdef ECHILD
	K(ECHILD),
#endif
#ifdef ECHRNG
	K(ECHRNG),
#endif
#ifdef ECOMM
	K(ECOMM),
#endif
#ifdef ECONNABORTED
	K(ECONNABORTED),
#endif
#ifdef ECONNREFUSED
	K(ECONNREFUSED),
#endif
#ifdef ECONNRESET
	K(ECONNRESET),
#endif
#ifdef EDEADLK
	K(EDEADLK),
#endif
#ifdef EDEADLOCK
	K(EDEADLOCK),
#endif
#ifdef EDESTADDRREQ
	K(EDESTADDRREQ),
#endif
#ifdef EDOM
	K(EDOM),
#endif
#ifdef EDOTDOT
	K(EDOTDOT),
#endif
#ifdef EDQUOT
	K(EDQUOT),
#endif
#ifdef EEXIST
	K(EEXIST),
#endif
#ifdef EFAULT
	K(EFAULT),
#endif
#ifdef EFBIG
	K(EFBIG),
#endif
#ifdef EHOSTDOWN
	K(EHOSTDOWN),
#endif
#ifdef EHOSTUNREACH
	K(EHOSTUNREACH),
#endif
#ifdef EHWPOISON
	K(EHWPOISON),
#endif
#ifdef EIDRM
	K(EIDRM),
#endif
#ifdef EILSEQ
	K(EILSEQ),
#endif
#ifdef EINPROGRESS
	K(EINPROGRESS),
#endif
#ifdef EINTR
	K(EINTR),
#endif
#ifdef EINVAL
	K(EINVAL),
#endif
#ifdef EIO
	K(EIO),
#endif
#ifdef EISCONN
	K(EISCONN),
#endif
#ifdef EISDIR
	K(EISDIR),
#endif
#ifdef EISNAM
	K(EISNAM),
#endif
#ifdef EKEYEXPIRED
	K(EKEYEXPIRED),
#endif
#ifdef EKEYREJECTED
	K(EKEYREJECTED),
#endif
#ifdef EKEYREVOKED
	K(EKEYREVOKED),
#endif
#ifdef EL2HLT
	K(EL2HLT),
#endif
#ifdef EL2NSYNC
	K(EL2NSYNC),
#endif
#ifdef EL3HLT
	K(EL3HLT),
#endif
#ifdef EL3RST
	K(EL3RST),
#endif
#ifdef ELIBACC
	K(ELIBACC),
#endif
#ifdef ELIBBAD
	K(ELIBBAD),
#endif
#ifdef ELIBEXEC
	K(ELIBEXEC),
#endif
#ifdef ELIBMAX
	K(ELIBMAX),
#endif
#ifdef ELIBSCN
	K(ELIBSCN),
#endif
#ifdef ELNRNG
	K(ELNRNG),
#endif
#ifdef ELOOP
	K(ELOOP),
#endif
#ifdef EMEDIUMTYPE
	K(EMEDIUMTYPE),
#endif
#ifdef EMFILE
	K(EMFILE),
#endif
#ifdef EMLINK
	K(EMLINK),
#endif
#ifdef EMSGSIZE
	K(EMSGSIZE),
#endif
#ifdef EMULTIHOP
	K(EMULTIHOP),
#endif
#ifdef ENAMETOOLONG
	K(ENAMETOOLONG),
#endif
#ifdef ENAVAIL
	K(ENAVAIL),
#endif
#ifdef ENETDOWN
	K(ENETDOWN),
#endif
#ifdef ENETRESET
	K(ENETRESET),
#endif
#ifdef ENETUNREACH
	K(ENETUNREACH),
#endif
#ifdef ENFILE
	K(ENFILE),
#endif
#ifdef ENOANO
	K(ENOANO),
#endif
#ifdef ENOBUFS
	K(ENOBUFS),
#endif
#ifdef ENOCSI
	K(ENOCSI),
#endif
#ifdef ENODATA
	K(ENODATA),
#endif
#ifdef ENODEV
	K(ENODEV),
#endif
#ifdef ENOENT
	K(ENOENT),
#endif
#ifdef ENOEXEC
	K(ENOEXEC),
#endif
#ifdef ENOKEY
	K(ENOKEY),
#endif
#ifdef ENOLCK
	K(ENOLCK),
#endif
#ifdef ENOLINK
	K(ENOLINK),
#endif
#ifdef ENOMEDIUM
	K(ENOMEDIUM),
#endif
#ifdef ENOMEM
	K(ENOMEM),
#endif
#ifdef ENOMSG
	K(ENOMSG),
#endif
#ifdef ENONET
	K(ENONET),
#endif
#ifdef ENOPKG
	K(ENOPKG),
#endif
#ifdef ENOPROTOOPT
	K(ENOPROTOOPT),
#endif
#ifdef ENOSPC
	K(ENOSPC),
#endif
#ifdef ENOSR
	K(ENOSR),
#endif
#ifdef ENOSTR
	K(ENOSTR),
#endif
#ifdef ENOSYS
	K(ENOSYS),
#endif
#ifdef ENOTBLK
	K(ENOTBLK),
#endif
#ifdef ENOTCONN
	K(ENOTCONN),
#endif
#ifdef ENOTDIR
	K(ENOTDIR),
#endif
#ifdef ENOTEMPTY
	K(ENOTEMPTY),
#endif
#ifdef ENOTNAM
	K(ENOTNAM),
#endif
#ifdef ENOTRECOVERABLE
	K(ENOTRECOVERABLE),
#endif
#ifdef ENOTSOCK
	K(ENOTSOCK),
#endif
#ifdef ENOTSUP
	K(ENOTSUP),
#endif
#ifdef ENOTTY
	K(ENOTTY),
#endif
#ifdef ENOTUNIQ
	K(ENOTUNIQ),
#endif
#ifdef ENXIO
	K(ENXIO),
#endif
#ifdef EOPNOTSUPP
	K(EOPNOTSUPP),
#endif
#ifdef EOVERFLOW
	K(EOVERFLOW),
#endif
#ifdef EOWNERDEAD
	K(EOWNERDEAD),
#endif
#ifdef EPERM
	K(EPERM),
#endif
#ifdef EPFNOSUPPORT
	K(EPFNOSUPPORT),
#endif
#ifdef EPIPE
	K(EPIPE),
#endif
#ifdef EPROTO
	K(EPROTO),
#endif
#ifdef EPROTONOSUPPORT
	K(EPROTONOSUPPORT),
#endif
#ifdef EPROTOTYPE
	K(EPROTOTYPE),
#endif
#ifdef ERANGE
	K(ERANGE),
#endif
#ifdef EREMCHG
	K(EREMCHG),
#endif
#ifdef EREMOTE
	K(EREMOTE),
#endif
#ifdef EREMOTEIO
	K(EREMOTEIO),
#endif
#ifdef ERESTART
	K(ERESTART),
#endif
#ifdef ERFKILL
	K(ERFKILL),
#endif
#ifdef EROFS
	K(EROFS),
#endif
#ifdef ESHUTDOWN
	K(ESHUTDOWN),
#endif
#ifdef ESOCKTNOSUPPORT
	K(ESOCKTNOSUPPORT),
#endif
#ifdef ESPIPE
	K(ESPIPE),
#endif
#ifdef ESRCH
	K(ESRCH),
#endif
#ifdef ESRMNT
	K(ESRMNT),
#endif
#ifdef ESTALE
	K(ESTALE),
#endif
#ifdef ESTRPIPE
	K(ESTRPIPE),
#endif
#ifdef ETIME
	K(ETIME),
#endif
#ifdef ETIMEDOUT
	K(ETIMEDOUT),
#endif
#ifdef ETOOMANYREFS
	K(ETOOMANYREFS),
#endif
#ifdef ETXTBSY
	K(ETXTBSY),
#endif
#ifdef EUCLEAN
	K(EUCLEAN),
#endif
#ifdef EUNATCH
	K(EUNATCH),
#endif
#ifdef EUSERS
	K(EUSERS),
#endif
#ifdef EWOULDBLOCK
	K(EWOULDBLOCK),
#endif
#ifdef EXDEV
	K(EXDEV),
#endif
#ifdef EXFULL
	K(EXFULL),
#endif
	/* file types and permission bits */
#ifdef S_IFMT
	K(S_IFMT),
#endif
#ifdef S_IFDIR
	K(S_IFDIR),
#endif
#ifdef S_IFREG
	K(S_IFREG),
#endif
#ifdef S_IFLNK
	K(S_IFLNK),
#endif
#ifdef S_IFCHR
	K(S_IFCHR),
#endif
#ifdef S_IFBLK
	K(S_IFBLK),
#endif
#ifdef S_IFIFO
	K(S_IFIFO),
#endif
#ifdef S_IFSOCK
	K(S_IFSOCK),
#endif
#ifdef S_ISUID
	K(S_ISUID),
#endif
#ifdef S_ISGID
	K(S_ISGID),
#endif
#ifdef S_ISVTX
	K(S_ISVTX),
#endif
#ifdef S_IRWXU
	K(S_IRWXU),
#endif
#ifdef S_IRUSR
	K(S_IRUSR),
#endif
#ifdef S_IWUSR
	K(S_IWUSR),
#endif
#ifdef S_IXUSR
	K(S_IXUSR),
#endif
#ifdef S_IRWXG
	K(S_IRWXG),
#endif
#ifdef S_IRGRP
	K(S_IRGRP),
#endif
#ifdef S_IWGRP
	K(S_IWGRP),
#endif
#ifdef S_IXGRP
	K(S_IXGRP),
#endif
#ifdef S_IRWXO
	K(S_IRWXO),
#endif
#ifdef S_IROTH
	K(S_IROTH),
#endif
#ifdef S_IWOTH
	K(S_IWOTH),
#endif
#ifdef S_IXOTH
	K(S_IXOTH),
#endif
	/* open(2) */
#ifdef O_RDONLY
	K(O_RDONLY),
#endif
#ifdef O_WRONLY
	K(O_WRONLY),
#endif
#ifdef O_RDWR
	K(O_RDWR),
#endif
#ifdef O_ACCMODE
	K(O_ACCMODE),
#endif
#ifdef O_CREAT
	K(O_CREAT),
#endif
#ifdef O_EXCL
	K(O_EXCL),
#endif
#ifdef O_NOCTTY
	K(O_NOCTTY),
#endif
#ifdef O_TRUNC
	K(O_TRUNC),
#endif
#ifdef O_APPEND
	K(O_APPEND),
#endif
#ifdef O_NONBLOCK
	K(O_NONBLOCK),
#endif
#ifdef O_DSYNC
	K(O_DSYNC),
#endif
#ifdef O_SYNC
	K(O_SYNC),
#endif
#ifdef O_DIRECT
	K(O_DIRECT),
#endif
#ifdef O_LARGEFILE
	K(O_LARGEFILE),
#endif
#ifdef O_DIRECTORY
	K(O_DIRECTORY),
#endif
#ifdef O_NOFOLLOW
	K(O_NOFOLLOW),
#endif
#ifdef O_NOATIME
	K(O_NOATIME),
#endif
#ifdef O_CLOEXEC
	K(O_CLOEXEC),
#endif
#ifdef O_PATH
	K(O_PATH),
#endif
#ifdef O_TMPFILE
	K(O_TMPFILE),
#endif
	/* access(2) */
#ifdef F_OK
	K(F_OK),
#endif
#ifdef R_OK
	K(R_OK),
#endif
#ifdef W_OK
	K(W_OK),
#endif
#ifdef X_OK
	K(X_OK),
#endif
	/* setxattr(2) */
#ifdef XATTR_CREATE
	K(XATTR_CREATE),
#endif
#ifdef XATTR_REPLACE
	K(XATTR_REPLACE),
#endif
	/* renameat2(2) */
#ifdef RENAME_NOREPLACE
	K(RENAME_NOREPLACE),
#endif
#ifdef RENAME_EXCHANGE
	K(RENAME_EXCHANGE),
#endif
#ifdef RENAME_WHITEOUT
	K(RENAME_WHITEOUT),
#endif
	/* flock(2) */
#ifdef LOCK_SH
	K(LOCK_SH),
#endif
#ifdef LOCK_EX
	K(LOCK_EX),
#endif
#ifdef LOCK_UN
	K(LOCK_UN),
#endif
#ifdef LOCK_NB
	K(LOCK_NB),
#endif
	/* fcntl(2) locks */
#ifdef F_GETLK
	K(F_GETLK),
#endif
#ifdef F_SETLK
	K(F_SETLK),
#endif
#ifdef F_SETLKW
	K(F_SETLKW),
#endif
#ifdef F_RDLCK
	K(F_RDLCK),
#endif
#ifdef F_WRLCK
	K(F_WRLCK),
#endif
#ifdef F_UNLCK
	K(F_UNLCK),
#endif
#ifdef F_OFD_GETLK
	K(F_OFD_GETLK),
#endif
#ifdef F_OFD_SETLK
	K(F_OFD_SETLK),
#endif
#ifdef F_OFD_SETLKW
	K(F_OFD_SETLKW),
#endif
	/* lseek(2) */
#ifdef SEEK_SET
	K(SEEK_SET),
#endif
#ifdef SEEK_CUR
	K(SEEK_CUR),
#endif
#ifdef SEEK_END
	K(SEEK_END),
#endif
#ifdef SEEK_DATA
	K(SEEK_DATA),
#endif
#ifdef SEEK_HOLE
	K(SEEK_HOLE),
#endif
	/* utimensat(2) */
#ifdef UTIME_NOW
	K(UTIME_NOW),
#endif
#ifdef UTIME_OMIT
	K(UTIME_OMIT),
#endif
	/* *at(2) */
#ifdef AT_FDCWD
	K(AT_FDCWD),
#endif
#ifdef AT_SYMLINK_NOFOLLOW
	K(AT_SYMLINK_NOFOLLOW),
#endif
#ifdef AT_REMOVEDIR
	K(AT_REMOVEDIR),
#endif
#ifdef AT_EMPTY_PATH
	K(AT_EMPTY_PATH),
#endif
#ifdef AT_SYMLINK_FOLLOW
	K(AT_SYMLINK_FOLLOW),
#endif
#ifdef AT_EACCESS
	K(AT_EACCESS),
#endif
	/* fallocate(2) */
#ifdef FALLOC_FL_KEEP_SIZE
	K(FALLOC_FL_KEEP_SIZE),
#endif
#ifdef FALLOC_FL_PUNCH_HOLE
	K(FALLOC_FL_PUNCH_HOLE),
#endif
#ifdef FALLOC_FL_ZERO_RANGE
	K(FALLOC_FL_ZERO_RANGE),
#endif
#ifdef FALLOC_FL_COLLAPSE_RANGE
	K(FALLOC_FL_COLLAPSE_RANGE),
#endif
#ifdef FALLOC_FL_INSERT_RANGE
	K(FALLOC_FL_INSERT_RANGE),
#endif
	/* readdir(3) */
#ifdef DT_UNKNOWN
	K(DT_UNKNOWN),
#endif
#ifdef DT_REG
	K(DT_REG),
#endif
#ifdef DT_DIR
	K(DT_DIR),
#endif
#ifdef DT_LNK
	K(DT_LNK),
#endif
#ifdef DT_CHR
	K(DT_CHR),
#endif
#ifdef DT_BLK
	K(DT_BLK),
#endif
#ifdef DT_FIFO
	K(DT_FIFO),
#endif
#ifdef DT_SOCK
	K(DT_SOCK),
#endif
	/* poll(2) */
#ifdef POLLIN
	K(POLLIN),
#endif
#ifdef POLLOUT
	K(POLLOUT),
#endif
#ifdef POLLPRI
	K(POLLPRI),
#endif
#ifdef POLLERR
	K(POLLERR),
#endif
#ifdef POLLHUP
	K(POLLHUP),
#endif
#ifdef POLLNVAL
	K(POLLNVAL),
#endif
#ifdef POLLRDNORM
	K(POLLRDNORM),
#endif
#ifdef POLLWRNORM
	K(POLLWRNORM),
#endif
	/* inotify(7) */
#ifdef IN_ACCESS
	K(IN_ACCESS),
#endif
#ifdef IN_MODIFY
	K(IN_MODIFY),
#endif
#ifdef IN_ATTRIB
	K(IN_ATTRIB),
#endif
#ifdef IN_CLOSE_WRITE
	K(IN_CLOSE_WRITE),
#endif
#ifdef IN_CLOSE_NOWRITE
	K(IN_CLOSE_NOWRITE),
#endif
#ifdef IN_CLOSE
	K(IN_CLOSE),
#endif
#ifdef IN_OPEN
	K(IN_OPEN),
#endif
#ifdef IN_MOVED_FROM
	K(IN_MOVED_FROM),
#endif
#ifdef IN_MOVED_TO
	K(IN_MOVED_TO),
#endif
#ifdef IN_MOVE
	K(IN_MOVE),
#endif
#ifdef IN_CREATE
	K(IN_CREATE),
#endif
#ifdef IN_DELETE
	K(IN_DELETE),
#endif
#ifdef IN_DELETE_SELF
	K(IN_DELETE_SELF),
#endif
#ifdef IN_MOVE_SELF
	K(IN_MOVE_SELF),
#endif
#ifdef IN_ALL_EVENTS
	K(IN_ALL_EVENTS),
#endif
#ifdef IN_UNMOUNT
	K(IN_UNMOUNT),
#endif
#ifdef IN_Q_OVERFLOW
	K(IN_Q_OVERFLOW),
#endif
#ifdef IN_IGNORED
	K(IN_IGNORED),
#endif
#ifdef IN_ISDIR
	K(IN_ISDIR),
#endif
#ifdef IN_ONLYDIR
	K(IN_ONLYDIR),
#endif
#ifdef IN_DONT_FOLLOW
	K(IN_DONT_FOLLOW),
#endif
#ifdef IN_EXCL_UNLINK
	K(IN_EXCL_UNLINK),
#endif
#ifdef IN_MASK_CREATE
	K(IN_MASK_CREATE),
#endif
#ifdef IN_MASK_ADD
	K(IN_MASK_ADD),
#endif
#ifdef IN_ONESHOT
	K(IN_ONESHOT),
#endif
#ifdef IN_NONBLOCK
	K(IN_NONBLOCK),
#endif
#ifdef IN_CLOEXEC
	K(IN_CLOEXEC),
#endif
	/* timerfd_create(2) */
#ifdef CLOCK_REALTIME
	K(CLOCK_REALTIME),
#endif
#ifdef CLOCK_MONOTONIC
	K(CLOCK_MONOTONIC),
#endif
#ifdef CLOCK_BOOTTIME
	K(CLOCK_BOOTTIME),
#endif
#ifdef TFD_NONBLOCK
	K(TFD_NONBLOCK),
#endif
#ifdef TFD_CLOEXEC
	K(TFD_CLOEXEC),
#endif
#ifdef TFD_TIMER_ABSTIME
	K(TFD_TIMER_ABSTIME),
#endif
#ifdef TFD_TIMER_CANCEL_ON_SET
	K(TFD_TIMER_CANCEL_ON_SET),
#endif
	/* fuse_common.h: struct fuse_conn_info capable and want */
#ifdef FUSE_CAP_ASYNC_READ
	K(FUSE_CAP_ASYNC_READ),
#endif
#ifdef FUSE_CAP_POSIX_LOCKS
	K(FUSE_CAP_POSIX_LOCKS),
#endif
#ifdef FUSE_CAP_ATOMIC_O_TRUNC
	K(FUSE_CAP_ATOMIC_O_TRUNC),
#endif
#ifdef FUSE_CAP_EXPORT_SUPPORT
	K(FUSE_CAP_EXPORT_SUPPORT),
#endif
#ifdef FUSE_CAP_DONT_MASK
	K(FUSE_CAP_DONT_MASK),
#endif
#ifdef FUSE_CAP_SPLICE_WRITE
	K(FUSE_CAP_SPLICE_WRITE),
#endif
#ifdef FUSE_CAP_SPLICE_MOVE
	K(FUSE_CAP_SPLICE_MOVE),
#endif
#ifdef FUSE_CAP_SPLICE_READ
	K(FUSE_CAP_SPLICE_READ),
#endif
#ifdef FUSE_CAP_FLOCK_LOCKS
	K(FUSE_CAP_FLOCK_LOCKS),
#endif
#ifdef FUSE_CAP_IOCTL_DIR
	K(FUSE_CAP_IOCTL_DIR),
#endif
#ifdef FUSE_CAP_AUTO_INVAL_DATA
	K(FUSE_CAP_AUTO_INVAL_DATA),
#endif
#ifdef FUSE_CAP_READDIRPLUS
	K(FUSE_CAP_READDIRPLUS),
#endif
#ifdef FUSE_CAP_READDIRPLUS_AUTO
	K(FUSE_CAP_READDIRPLUS_AUTO),
#endif
#ifdef FUSE_CAP_ASYNC_DIO
	K(FUSE_CAP_ASYNC_DIO),
#endif
#ifdef FUSE_CAP_WRITEBACK_CACHE
	K(FUSE_CAP_WRITEBACK_CACHE),
#endif
#ifdef FUSE_CAP_NO_OPEN_SUPPORT
	K(FUSE_CAP_NO_OPEN_SUPPORT),
#endif
#ifdef FUSE_CAP_PARALLEL_DIROPS
	K(FUSE_CAP_PARALLEL_DIROPS),
#endif
#ifdef FUSE_CAP_POSIX_ACL
	K(FUSE_CAP_POSIX_ACL),
#endif
#ifdef FUSE_CAP_HANDLE_KILLPRIV
	K(FUSE_CAP_HANDLE_KILLPRIV),
#endif
#ifdef FUSE_CAP_CACHE_SYMLINKS
	K(FUSE_CAP_CACHE_SYMLINKS),
#endif
#ifdef FUSE_CAP_NO_OPENDIR_SUPPORT
	K(FUSE_CAP_NO_OPENDIR_SUPPORT),
#endif
#ifdef FUSE_CAP_EXPLICIT_INVAL_DATA
	K(FUSE_CAP_EXPLICIT_INVAL_DATA),
#endif
#ifdef FUSE_CAP_EXPIRE_ONLY
	K(FUSE_CAP_EXPIRE_ONLY),
#endif
	/* fuse.h, fuse_common.h */
	K(FUSE_BUF_IS_FD),
	K(FUSE_BUF_FD_SEEK),
	K(FUSE_BUF_FD_RETRY),
	/* fuse_buf_copy() flags */
	K(FUSE_BUF_NO_SPLICE),
	K(FUSE_BUF_FORCE_SPLICE),
	K(FUSE_BUF_SPLICE_MOVE),
	K(FUSE_BUF_SPLICE_NONBLOCK),
	K(FUSE_IOCTL_COMPAT),
	K(FUSE_IOCTL_UNRESTRICTED),
	K(FUSE_IOCTL_RETRY),
	K(FUSE_IOCTL_DIR),
	K(FUSE_IOCTL_MAX_IOV),
	K(FUSE_READDIR_PLUS),
	K(FUSE_FILL_DIR_PLUS),
};

void luafs_set_constants(lua_State *L, int idx)
{
	size_t i;

	idx = lua_absindex(L, idx);
	for (i = 0; i < sizeof constants / sizeof constants[0]; i++) {
		lua_pushinteger(L, constants[i].value);
		lua_setfield(L, idx, constants[i].name);
	}
}

/* The name of errno e ("ENOENT"), or NULL; the first name the table has. */
const char *luafs_errno_name(int e)
{
	size_t i;

	for (i = 0; i < sizeof constants / sizeof constants[0]; i++)
		if (constants[i].name[0] == 'E' && constants[i].value == e)
			return constants[i].name;
	return NULL;
}

/* open(2) flags by name into out: "O_WRONLY|O_CREAT|O_TRUNC". */
void luafs_open_flags_name(int flags, char *out, size_t size)
{
	static const char *const modes[] = { "O_RDONLY", "O_WRONLY", "O_RDWR" };
	int acc = flags & O_ACCMODE, rest = flags & ~O_ACCMODE;
	size_t i, o;

	o = (size_t)snprintf(out, size, "%s", acc < 3 ? modes[acc] : "O_ACCMODE");
	for (i = 0; i < sizeof constants / sizeof constants[0] && o < size; i++) {
		lua_Integer v = constants[i].value;

		if (strncmp(constants[i].name, "O_", 2) != 0 || v == 0 ||
		    (v & (v - 1)) != 0 || !(rest & v))
			continue;
		rest &= ~(int)v;
		o += (size_t)snprintf(out + o, size - o, "|%s", constants[i].name);
	}
#if defined(__x86_64__) || defined(__i386__)
	/* The kernel's own, which it adds on 64-bit systems; glibc has 0. */
	if ((rest & 0100000) && o < size) {
		rest &= ~0100000;
		o += (size_t)snprintf(out + o, size - o, "|O_LARGEFILE");
	}
#endif
	if (rest != 0 && o < size)
		snprintf(out + o, size - o, "|%#o", (unsigned)rest);
}
