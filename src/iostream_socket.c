/*
 * The socket transport (Tornado's IOStream): recv into the buffer the core
 * hands over, send / sendmsg with MSG_NOSIGNAL so a vanished peer is an
 * -EPIPE and never a SIGPIPE, SO_ERROR as the fd error, connect(), the
 * addresses, TCP_NODELAY, and sendfile for ts_iostream_write_file().
 *
 * No buffering and no state machine here. The connect, address and option
 * calls are ops like the rest; the TLS transport, whose fd is a socket too,
 * shares them (ts__sock_*), and the pipe transport the sendfile call.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>

#include "iostream_int.h"

/*
 * sendfile has no MSG_NOSIGNAL: a socket whose peer is gone raises SIGPIPE.
 * The signal is blocked around the call and, if the call raised it, taken
 * back, so a library never kills its process (nor runs its handler).
 */
ssize_t ts__fd_send_file(int out_fd, int in_fd, uint64_t off, size_t len)
{
    sigset_t pipe_set, old, pending;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
    sigpending(&pending);
    bool was_pending = sigismember(&pending, SIGPIPE);
    off_t o = (off_t)off;
    ssize_t r;
    do
        r = sendfile(out_fd, in_fd, &o, len);
    while (r < 0 && errno == EINTR);
    int err = errno;
    /* Even a call that sent some bytes may have raised it, on the part that failed. */
    if (!was_pending && sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE)) {
        const struct timespec zero = {0, 0};
        sigtimedwait(&pipe_set, NULL, &zero);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (r >= 0)
        return r;
    if (err == EAGAIN || err == EWOULDBLOCK)
        return TS_EAGAIN;
    /* A file sendfile cannot read from, or an fd it cannot write to. */
    if (err == EINVAL || err == ENOSYS || err == EOPNOTSUPP)
        return TS_ENOTSUP;
    return -err;
}

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

int ts__sock_connect_result(int fd)
{
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        return errno == ENOPROTOOPT ? 0 : -errno;
    return -err;
}

int ts__sock_connect(int fd, const struct sockaddr *addr, socklen_t addrlen)
{
    if (connect(fd, addr, addrlen) == 0)
        return 0;
    if (errno == EINPROGRESS || errno == EINTR)
        return TS_EAGAIN; /* (after EINTR the connect goes on in the background too) */
    return errno == ENOTSOCK ? TS_ENOTSUP : -errno;
}

int ts__sock_peer_address(int fd, struct sockaddr *addr, socklen_t *len)
{
    return getpeername(fd, addr, len) < 0 ? -errno : 0;
}

int ts__sock_local_address(int fd, struct sockaddr *addr, socklen_t *len)
{
    return getsockname(fd, addr, len) < 0 ? -errno : 0;
}

int ts__sock_set_nodelay(int fd, bool on)
{
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

static int sock_fd_error(void *t) { return ts__sock_connect_result(((sock_transport *)t)->fd); }

static int sock_shutdown_write(void *t)
{
    return shutdown(((sock_transport *)t)->fd, SHUT_WR) < 0 ? -errno : 0;
}

static int sock_connect(void *t, const struct sockaddr *addr, socklen_t addrlen)
{
    return ts__sock_connect(((sock_transport *)t)->fd, addr, addrlen);
}

static int sock_peer_address(void *t, struct sockaddr *addr, socklen_t *len)
{
    return ts__sock_peer_address(((sock_transport *)t)->fd, addr, len);
}

static int sock_local_address(void *t, struct sockaddr *addr, socklen_t *len)
{
    return ts__sock_local_address(((sock_transport *)t)->fd, addr, len);
}

static int sock_set_nodelay(void *t, bool on) { return ts__sock_set_nodelay(((sock_transport *)t)->fd, on); }

static ssize_t sock_send_file(void *t, int file_fd, uint64_t off, size_t len)
{
    return ts__fd_send_file(((sock_transport *)t)->fd, file_fd, off, len);
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
    .flags = TS_STREAM_OPS_SHORT_READ_DRAINED, /* recv() straight from the fd */
    .connect = sock_connect,
    .connect_result = sock_fd_error,
    .peer_address = sock_peer_address,
    .local_address = sock_local_address,
    .set_nodelay = sock_set_nodelay,
    .send_file = sock_send_file,
};

ts_iostream *ts__iostream_new_socket_nonblocking(ts_ioloop *loop, int fd, const ts_iostream_options *opts)
{
    if (fd < 0)
        return NULL;
    ts_iostream *s = ts__iostream_new_inline(loop, &socket_ops, sizeof(sock_transport), opts);
    if (s)
        ((sock_transport *)ts__iostream_transport(s))->fd = fd;
    return s;
}

ts_iostream *ts_iostream_new_socket(ts_ioloop *loop, int fd, const ts_iostream_options *opts)
{
    if (fd < 0)
        return NULL;
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || (!(fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0))
        return NULL;
    return ts__iostream_new_socket_nonblocking(loop, fd, opts);
}
