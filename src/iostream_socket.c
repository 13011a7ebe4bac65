/*
 * The socket transport (Tornado's IOStream): recv into the buffer the core
 * hands over, send / sendmsg with MSG_NOSIGNAL so a vanished peer is an
 * -EPIPE and never a SIGPIPE, SO_ERROR as the fd error. Plus the socket
 * options and addresses of the public API, which work on any stream whose fd
 * is a socket (TLS streams included).
 *
 * No buffering and no state machine here: connect() is in the core, which
 * does it for any socket fd.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include "iostream_int.h"

typedef struct sock_transport {
    int fd;
} sock_transport;

static int sock_fileno(void *t) { return ((sock_transport *)t)->fd; }

static ssize_t sock_read(void *t, void *buf, size_t len)
{
    for (;;) {
        ssize_t r = recv(((sock_transport *)t)->fd, buf, len, 0);
        if (r >= 0)
            return r;
        if (errno == EINTR)
            continue;
        return (errno == EAGAIN || errno == EWOULDBLOCK) ? TS_EAGAIN : -errno;
    }
}

static ssize_t sock_write(void *t, const struct iovec *iov, int iovcnt)
{
    int fd = ((sock_transport *)t)->fd;
    for (;;) {
        ssize_t r;
        if (iovcnt == 1) {
            r = send(fd, iov[0].iov_base, iov[0].iov_len, MSG_NOSIGNAL);
        } else {
            /* writev has no flags argument; sendmsg gathers the same way and takes MSG_NOSIGNAL. */
            struct msghdr msg = {.msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)iovcnt};
            r = sendmsg(fd, &msg, MSG_NOSIGNAL);
        }
        if (r >= 0)
            return r;
        if (errno == EINTR)
            continue;
        return (errno == EAGAIN || errno == EWOULDBLOCK) ? TS_EAGAIN : -errno;
    }
}

static void sock_close(void *t)
{
    sock_transport *st = t;
    if (st->fd >= 0) {
        close(st->fd);
        st->fd = -1;
    }
}

static int sock_fd_error(void *t)
{
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(((sock_transport *)t)->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        return -errno;
    return -err;
}

static int sock_shutdown_write(void *t)
{
    return shutdown(((sock_transport *)t)->fd, SHUT_WR) < 0 ? -errno : 0;
}

static const ts_stream_ops socket_ops = {
    .size = sizeof(ts_stream_ops),
    .name = "socket",
    .fileno = sock_fileno,
    .read_from_fd = sock_read,
    .write_to_fd = sock_write,
    .close_fd = sock_close,
    .get_fd_error = sock_fd_error,
    .shutdown_write = sock_shutdown_write,
};

ts_iostream *ts_iostream_new_socket(ts_ioloop *loop, int fd, const ts_iostream_options *opts)
{
    if (fd < 0)
        return NULL;
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || (!(fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0))
        return NULL;
    ts_iostream *s = ts__iostream_new_inline(loop, &socket_ops, sizeof(sock_transport), opts);
    if (s)
        ((sock_transport *)ts__iostream_transport(s))->fd = fd;
    return s;
}

int ts_iostream_set_nodelay(ts_iostream *s, bool on)
{
    int fd = ts_iostream_fileno(s);
    if (fd < 0)
        return TS_ECLOSED;
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
        return -errno;
    /* As Tornado: meaningful for TCP only, silently nothing for other sockets. */
    if (ss.ss_family != AF_INET && ss.ss_family != AF_INET6)
        return 0;
    int v = on ? 1 : 0;
    return setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &v, sizeof(v)) < 0 ? -errno : 0;
}

int ts_iostream_peer_address(const ts_iostream *s, struct sockaddr_storage *addr, socklen_t *len)
{
    int fd = ts_iostream_fileno(s);
    if (fd < 0)
        return TS_ECLOSED;
    *len = sizeof(*addr);
    return getpeername(fd, (struct sockaddr *)addr, len) < 0 ? -errno : 0;
}

int ts_iostream_local_address(const ts_iostream *s, struct sockaddr_storage *addr, socklen_t *len)
{
    int fd = ts_iostream_fileno(s);
    if (fd < 0)
        return TS_ECLOSED;
    *len = sizeof(*addr);
    return getsockname(fd, (struct sockaddr *)addr, len) < 0 ? -errno : 0;
}
