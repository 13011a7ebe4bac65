/*
 * netutil.c -- listening sockets and accept handlers (Tornado's netutil).
 *
 * What this file does not do: it never wraps a socket in a stream and never
 * resolves names asynchronously (bind_sockets resolves with a blocking
 * getaddrinfo, as Tornado; asynchronous resolution is resolver.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "tstream/common.h"
#include "tstream/ioloop.h"
#include "tstream/netutil.h"

/* How often a port-0 bind is retried when its port is taken in another family. */
#define BIND_PORT_RETRIES 8

/* ------------------------------------------------------------------------ */
/* bind_sockets                                                             */
/* ------------------------------------------------------------------------ */

static int close_all(int *fds, int n, int err)
{
    for (int i = 0; i < n; i++)
        close(fds[i]);
    return err;
}

static void set_port(struct sockaddr *sa, int port)
{
    if (sa->sa_family == AF_INET)
        ((struct sockaddr_in *)sa)->sin_port = htons((uint16_t)port);
    else if (sa->sa_family == AF_INET6)
        ((struct sockaddr_in6 *)sa)->sin6_port = htons((uint16_t)port);
}

static int get_port(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)sa)->sin_port);
    if (sa->sa_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
    return -1;
}

static bool is_ipv6_loopback(const struct sockaddr *sa)
{
    return sa->sa_family == AF_INET6 && IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)sa)->sin6_addr);
}

/*
 * Creates, binds and listens one socket. Returns the fd or -errno; on error
 * *skip says the address should be passed over rather than fail the call
 * (family unsupported, or "::1" on a half-IPv6 host).
 */
static int bind_one(const struct addrinfo *ai, const char *address, int bound_port, int backlog, int flags,
                    bool *skip)
{
    struct sockaddr_storage ss;
    int one = 1;

    *skip = false;
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
        *skip = errno == EAFNOSUPPORT;
        return -errno;
    }
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 && errno != ENOPROTOOPT)
        goto fail;
    if ((flags & TS_BIND_REUSE_PORT) && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0)
        goto fail;
    /* Always v6-only, so "::" and "0.0.0.0" can be bound side by side (Tornado). */
    if (ai->ai_family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0)
        goto fail;

    memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
    if (get_port((struct sockaddr *)&ss) == 0 && bound_port > 0)
        set_port((struct sockaddr *)&ss, bound_port);
    if (bind(fd, (struct sockaddr *)&ss, ai->ai_addrlen) < 0) {
        /* Docker-style half-disabled IPv6: "localhost" gives ::1 but it cannot be bound. */
        *skip = errno == EADDRNOTAVAIL && address && strcmp(address, "localhost") == 0 &&
                is_ipv6_loopback((struct sockaddr *)&ss);
        goto fail;
    }
    if (listen(fd, backlog) < 0)
        goto fail;
    return fd;

fail:;
    int err = -errno;
    close(fd);
    return err;
}

static int local_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
        return -errno;
    return get_port((struct sockaddr *)&ss);
}

static bool same_addrinfo(const struct addrinfo *a, const struct addrinfo *b)
{
    return a->ai_family == b->ai_family && a->ai_socktype == b->ai_socktype && a->ai_protocol == b->ai_protocol &&
           a->ai_addrlen == b->ai_addrlen && memcmp(a->ai_addr, b->ai_addr, a->ai_addrlen) == 0;
}

/*
 * Binds every entry of @p list (sorted, deduplicated). Sets *port_clash when
 * a reused ephemeral port turned out to be taken, so the caller may retry.
 */
static int bind_list(struct addrinfo **list, int n, const char *address, int port, int backlog, int flags,
                     int *fds, size_t max_fds, bool *port_clash)
{
    int count = 0, bound_port = -1, last_err = -EADDRNOTAVAIL;

    *port_clash = false;
    for (int i = 0; i < n; i++) {
        bool skip;
        int fd = bind_one(list[i], address, bound_port, backlog, flags, &skip);
        if (fd < 0 && skip) {
            last_err = fd;
            continue;
        }
        if (fd < 0) {
            *port_clash = port == 0 && bound_port > 0 && fd == -EADDRINUSE;
            return close_all(fds, count, fd);
        }
        if ((size_t)count == max_fds) {
            close(fd);
            return close_all(fds, count, -ENOSPC);
        }
        fds[count++] = fd;
        if (bound_port < 0) {
            bound_port = local_port(fd);
            if (bound_port < 0)
                return close_all(fds, count, bound_port);
        }
    }
    return count > 0 ? count : last_err;
}

static int resolve_error(int rc, const char *what, const char *host)
{
    if (rc == EAI_SYSTEM)
        return errno ? -errno : TS_ERESOLVE;
    if (rc == EAI_MEMORY)
        return TS_ENOMEM;
    ts_log(TS_LOG_WARN, "%s: cannot resolve %s: %s", what, host ? host : "(any)", gai_strerror(rc));
    return TS_ERESOLVE;
}

int ts_bind_sockets(int port, const char *address, int family, int backlog, int flags, int *fds, size_t max_fds)
{
    if (port < 0 || port > 65535 || !fds || max_fds == 0 ||
        (family != AF_UNSPEC && family != AF_INET && family != AF_INET6))
        return TS_EINVAL;
    if (address && !*address)
        address = NULL;
    if (backlog < 0)
        backlog = TS_DEFAULT_BACKLOG;

    struct addrinfo hints = {0}, *res = NULL;
    char service[8];
    hints.ai_family = family;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | ((flags & TS_BIND_NUMERIC_HOST) ? AI_NUMERICHOST : 0);
    snprintf(service, sizeof(service), "%d", port);
    int rc = getaddrinfo(address, service, &hints, &res);
    if (rc != 0)
        return resolve_error(rc, "bind_sockets", address);

    /* Sort by family (IPv4 first, as Tornado) and drop duplicates. */
    struct addrinfo *list[64];
    int n = 0;
    for (struct addrinfo *ai = res; ai && n < (int)(sizeof(list) / sizeof(list[0])); ai = ai->ai_next) {
        bool dup = false;
        for (int j = 0; j < n && !dup; j++)
            dup = same_addrinfo(list[j], ai);
        if (dup)
            continue;
        int j = n++;
        while (j > 0 && list[j - 1]->ai_family > ai->ai_family) {
            list[j] = list[j - 1];
            j--;
        }
        list[j] = ai;
    }

    bool clash = false;
    int attempt = 0;
    do {
        rc = bind_list(list, n, address, port, backlog, flags, fds, max_fds, &clash);
    } while (clash && ++attempt < BIND_PORT_RETRIES);
    freeaddrinfo(res);
    return rc;
}

int ts_bind_unix_socket(const char *path, unsigned int mode, int backlog)
{
    struct sockaddr_un sun = {0};
    struct stat st;
    int one = 1;

    if (!path || !*path)
        return TS_EINVAL;
    if (strlen(path) >= sizeof(sun.sun_path))
        return -ENAMETOOLONG;
    if (backlog < 0)
        backlog = TS_DEFAULT_BACKLOG;
    sun.sun_family = AF_UNIX;
    memcpy(sun.sun_path, path, strlen(path) + 1);

    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode))
            return -EEXIST;
        if (unlink(path) < 0 && errno != ENOENT)
            return -errno;
    } else if (errno != ENOENT) {
        return -errno;
    }

    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 && errno != ENOPROTOOPT)
        goto fail;
    if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0)
        goto fail;
    if (chmod(path, (mode_t)mode) < 0 || listen(fd, backlog) < 0)
        goto fail;
    return fd;

fail:;
    int err = -errno;
    close(fd);
    return err;
}

bool ts_is_valid_ip(const char *ip)
{
    struct addrinfo hints = {0}, *res = NULL;

    if (!ip || !*ip)
        return false;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICHOST;
    if (getaddrinfo(ip, "0", &hints, &res) != 0)
        return false;
    freeaddrinfo(res);
    return true;
}

/* ------------------------------------------------------------------------ */
/* Accept handler                                                           */
/* ------------------------------------------------------------------------ */

#define BACKOFF_MIN 0.01
#define BACKOFF_MAX 1.0
#define WARN_INTERVAL 5.0

struct ts_accept_handler {
    ts_ioloop *loop;
    int fd;
    ts_accept_cb cb;
    void *arg;
    /* Kept open so a connection can still be accepted (and shed) at EMFILE. */
    int reserve_fd;
    uint64_t resume_timer;
    double backoff;
    double last_warning; /* loop time of the last exhaustion warning */
    bool watching;       /* registered with the loop */
    bool in_callback; /* inside on_readable: removal frees later */
    bool removed;
};

static void on_readable(ts_ioloop *loop, int fd, int events, void *arg);

static int open_reserve(void)
{
    return open("/dev/null", O_RDONLY | O_CLOEXEC);
}

static int watch(ts_accept_handler *h)
{
    int rc = ts_ioloop_add_handler(h->loop, h->fd, TS_IOLOOP_READ, on_readable, h);
    h->watching = rc == 0;
    return rc;
}

static void unwatch(ts_accept_handler *h)
{
    if (h->watching)
        ts_ioloop_remove_handler(h->loop, h->fd);
    h->watching = false;
}

static void pause_accepting(ts_accept_handler *h, int err);

static void resume_accepting(ts_ioloop *loop, void *arg)
{
    ts_accept_handler *h = arg;
    (void)loop;
    h->resume_timer = 0;
    if (h->reserve_fd < 0)
        h->reserve_fd = open_reserve();
    if (watch(h) != 0)
        pause_accepting(h, TS_ENOMEM);
}

/*
 * Out of descriptors or memory, or a listener error: stop watching the fd
 * (it stays readable, so watching it would spin) and look again later.
 */
static void pause_accepting(ts_accept_handler *h, int err)
{
    h->backoff = h->backoff > 0 ? h->backoff * 2 : BACKOFF_MIN;
    if (h->backoff > BACKOFF_MAX)
        h->backoff = BACKOFF_MAX;
    /* At most one warning per WARN_INTERVAL: exhaustion can last. */
    double now = ts_ioloop_time(h->loop);
    if (h->last_warning == 0 || now - h->last_warning >= WARN_INTERVAL) {
        ts_log(TS_LOG_WARN, "accept on fd %d: %s; pausing accepts for %g s (and backing off)", h->fd,
               ts_strerror(err), h->backoff);
        h->last_warning = now;
    }
    unwatch(h);
    h->resume_timer = ts_ioloop_call_later(h->loop, h->backoff, resume_accepting, h);
    if (h->resume_timer == 0)
        ts_log(TS_LOG_ERROR, "accept on fd %d: cannot schedule resume; handler stays paused", h->fd);
}

/*
 * Out of descriptors: free the reserve, take the oldest pending connection
 * and close it at once, so that client learns now instead of waiting.
 */
static void shed_one(ts_accept_handler *h)
{
    if (h->reserve_fd < 0)
        return;
    close(h->reserve_fd);
    int c = accept4(h->fd, NULL, NULL, SOCK_CLOEXEC);
    if (c >= 0)
        close(c);
    h->reserve_fd = open_reserve();
}

static bool transient_accept_error(int err)
{
    switch (err) {
    case ECONNABORTED: case EINTR: case EPROTO: case EPERM: case ENETDOWN: case ENOPROTOOPT:
    case EHOSTDOWN: case ENONET: case EHOSTUNREACH: case EOPNOTSUPP: case ENETUNREACH:
        return true;
    default:
        return false;
    }
}

/* Returns false when the round must end. */
static bool accept_failed(ts_accept_handler *h, int err)
{
    if (err == EAGAIN || err == EWOULDBLOCK)
        return false;
    if (transient_accept_error(err))
        return true;
    if (err == EMFILE || err == ENFILE) {
        shed_one(h);
    } else if (err != ENOBUFS && err != ENOMEM) {
        ts_ioloop_handle_callback_error(h->loop, "accept handler", -err);
    }
    pause_accepting(h, -err);
    return false;
}

static void on_readable(ts_ioloop *loop, int fd, int events, void *arg)
{
    ts_accept_handler *h = arg;
    (void)events;

    h->in_callback = true;
    /* Bounded so that one busy listener cannot starve the rest of the loop. */
    for (int i = 0; i < TS_DEFAULT_BACKLOG && !h->removed; i++) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        int c = accept4(fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (c < 0) {
            if (!accept_failed(h, errno))
                break;
            continue;
        }
        h->backoff = 0;
        h->cb(loop, c, (struct sockaddr *)&ss, len, h->arg);
    }
    h->in_callback = false;
    if (h->removed)
        ts_free(h);
}

int ts_add_accept_handler(ts_ioloop *loop, int fd, ts_accept_cb cb, void *arg, ts_accept_handler **handler)
{
    if (!loop || fd < 0 || !cb || !handler)
        return TS_EINVAL;
    ts_accept_handler *h = ts_malloc(sizeof(*h));
    if (!h)
        return TS_ENOMEM;
    memset(h, 0, sizeof(*h));
    h->loop = loop;
    h->fd = fd;
    h->cb = cb;
    h->arg = arg;
    h->reserve_fd = open_reserve();
    int rc = watch(h);
    if (rc != 0) {
        if (h->reserve_fd >= 0)
            close(h->reserve_fd);
        ts_free(h);
        return rc;
    }
    *handler = h;
    return 0;
}

void ts_remove_accept_handler(ts_accept_handler *h)
{
    if (!h || h->removed)
        return;
    h->removed = true;
    unwatch(h);
    if (h->resume_timer)
        ts_ioloop_remove_timeout(h->loop, h->resume_timer);
    h->resume_timer = 0;
    if (h->reserve_fd >= 0)
        close(h->reserve_fd);
    h->reserve_fd = -1;
    if (!h->in_callback)
        ts_free(h);
}

int ts_accept_handler_fd(const ts_accept_handler *h)
{
    return h ? h->fd : -1;
}
