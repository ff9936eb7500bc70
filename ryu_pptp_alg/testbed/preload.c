/*
 * LD_PRELOAD shim for the real PPTP peers (pptp-linux, pptpd, pptpctrl).
 *
 *   PPTP_FORCE_CALL_ID=N   open("/dev/random") yields N (as the native uint16
 *                          pptp-linux reads; its call ID on the wire is N).
 *   PPTP_FORCE_PORT=P      bind() of an AF_INET SOCK_STREAM socket uses port P
 *                          (SO_REUSEADDR set so a quick restart can rebind).
 *   PPTP_SYSLOG_SOCKET=F   openlog/syslog/__syslog_chk/vsyslog send to the Unix
 *                          datagram socket F instead of /dev/log.
 *
 * Unset variables leave the wrapped call untouched. Built at run time by
 * ryu_pptp_alg.testbed.preload.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

extern char *program_invocation_short_name;

/* ---- /dev/random -> forced call ID ----------------------------------------- */

static int forced_random_fd(const char *path)
{
    const char *value = getenv("PPTP_FORCE_CALL_ID");
    if (!value || !*value || !path || strcmp(path, "/dev/random") != 0)
        return -1;
    uint16_t call_id = (uint16_t)strtoul(value, NULL, 0);
    int fd = memfd_create("pptp-forced-random", MFD_CLOEXEC);
    if (fd < 0)
        return -1;
    /* Repeat the value so every 2-byte read gives the same call ID. */
    for (int i = 0; i < 256; i++) {
        if (write(fd, &call_id, sizeof call_id) != sizeof call_id) {
            close(fd);
            return -1;
        }
    }
    lseek(fd, 0, SEEK_SET);
    return fd;
}

#define OPEN_WRAPPER(name)                                                       \
    int name(const char *path, int flags, ...)                                  \
    {                                                                            \
        static int (*real)(const char *, int, ...);                              \
        mode_t mode = 0;                                                         \
        if (flags & (O_CREAT | O_TMPFILE)) {                                     \
            va_list ap;                                                          \
            va_start(ap, flags);                                                 \
            mode = va_arg(ap, mode_t);                                           \
            va_end(ap);                                                          \
        }                                                                        \
        int fd = forced_random_fd(path);                                         \
        if (fd >= 0)                                                             \
            return fd;                                                           \
        if (!real)                                                               \
            real = dlsym(RTLD_NEXT, #name);                                      \
        return real(path, flags, mode);                                          \
    }

OPEN_WRAPPER(open)
OPEN_WRAPPER(open64)

#define OPENAT_WRAPPER(name)                                                     \
    int name(int dirfd, const char *path, int flags, ...)                       \
    {                                                                            \
        static int (*real)(int, const char *, int, ...);                         \
        mode_t mode = 0;                                                         \
        if (flags & (O_CREAT | O_TMPFILE)) {                                     \
            va_list ap;                                                          \
            va_start(ap, flags);                                                 \
            mode = va_arg(ap, mode_t);                                           \
            va_end(ap);                                                          \
        }                                                                        \
        int fd = forced_random_fd(path);                                         \
        if (fd >= 0)                                                             \
            return fd;                                                           \
        if (!real)                                                               \
            real = dlsym(RTLD_NEXT, #name);                                      \
        return real(dirfd, path, flags, mode);                                   \
    }

OPENAT_WRAPPER(openat)
OPENAT_WRAPPER(openat64)

/* ---- bind() -> forced TCP source port ---------------------------------------- */

int bind(int fd, const struct sockaddr *addr, socklen_t len)
{
    static int (*real)(int, const struct sockaddr *, socklen_t);
    if (!real)
        real = dlsym(RTLD_NEXT, "bind");
    const char *value = getenv("PPTP_FORCE_PORT");
    if (value && *value && addr && addr->sa_family == AF_INET &&
        len >= sizeof(struct sockaddr_in)) {
        int type = 0;
        socklen_t tlen = sizeof type;
        if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tlen) == 0 && type == SOCK_STREAM) {
            struct sockaddr_in sin;
            int one = 1;
            memcpy(&sin, addr, sizeof sin);
            sin.sin_port = htons((uint16_t)strtoul(value, NULL, 0));
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
            return real(fd, (const struct sockaddr *)&sin, sizeof sin);
        }
    }
    return real(fd, addr, len);
}

/* ---- syslog -> our own socket ------------------------------------------------ */

static const char *log_ident;
static int log_facility = LOG_USER;
static int log_option;
static int log_fd = -1;

static const char *log_socket(void)
{
    const char *path = getenv("PPTP_SYSLOG_SOCKET");
    return path && *path ? path : NULL;
}

static void send_log(int pri, const char *fmt, va_list ap)
{
    char msg[2048], line[2300], stamp[32];
    struct sockaddr_un sun;
    int saved_errno = errno;
    time_t now = time(NULL);
    struct tm tm;

    errno = saved_errno; /* for %m */
    vsnprintf(msg, sizeof msg, fmt, ap);
    if (!(pri & LOG_FACMASK))
        pri |= log_facility;
    localtime_r(&now, &tm);
    strftime(stamp, sizeof stamp, "%b %e %H:%M:%S", &tm);
    int n = snprintf(line, sizeof line, "<%d>%s %s[%d]: %s", pri, stamp,
                     log_ident ? log_ident : program_invocation_short_name, (int)getpid(), msg);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof line)
        n = sizeof line - 1;
    if (log_fd < 0)
        log_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (log_fd < 0)
        return;
    memset(&sun, 0, sizeof sun);
    sun.sun_family = AF_UNIX;
    strncpy(sun.sun_path, log_socket(), sizeof sun.sun_path - 1);
    sendto(log_fd, line, (size_t)n, MSG_DONTWAIT, (struct sockaddr *)&sun, sizeof sun);
    if (log_option & LOG_PERROR)
        dprintf(2, "%s\n", msg);
    errno = saved_errno;
}

void openlog(const char *ident, int option, int facility)
{
    static void (*real)(const char *, int, int);
    log_ident = ident;
    log_option = option;
    if (facility)
        log_facility = facility;
    if (log_socket())
        return;
    if (!real)
        real = dlsym(RTLD_NEXT, "openlog");
    real(ident, option, facility);
}

void closelog(void)
{
    static void (*real)(void);
    if (log_socket()) {
        if (log_fd >= 0)
            close(log_fd);
        log_fd = -1;
        return;
    }
    if (!real)
        real = dlsym(RTLD_NEXT, "closelog");
    real();
}

void vsyslog(int pri, const char *fmt, va_list ap)
{
    static void (*real)(int, const char *, va_list);
    if (log_socket()) {
        send_log(pri, fmt, ap);
        return;
    }
    if (!real)
        real = dlsym(RTLD_NEXT, "vsyslog");
    real(pri, fmt, ap);
}

void __vsyslog_chk(int pri, int flag, const char *fmt, va_list ap)
{
    (void)flag;
    vsyslog(pri, fmt, ap);
}

void syslog(int pri, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsyslog(pri, fmt, ap);
    va_end(ap);
}

void __syslog_chk(int pri, int flag, const char *fmt, ...)
{
    va_list ap;
    (void)flag;
    va_start(ap, fmt);
    vsyslog(pri, fmt, ap);
    va_end(ap);
}
