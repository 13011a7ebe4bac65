/*
 * The pipe transport (Tornado's PipeIOStream): read / writev on one end of a
 * pipe. Writing to a pipe whose reader is gone must not kill the process, so
 * the first pipe stream ignores SIGPIPE process-wide if nobody else decided
 * what it does (as Python does at start-up); the write then fails with
 * -EPIPE like a socket's.
 *
 * No buffering and no state machine here: that is the core's.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include "iostream_int.h"

typedef struct pipe_transport {
    int fd;
} pipe_transport;

static int pipe_fileno(void *t) { return ((pipe_transport *)t)->fd; }

static ssize_t pipe_read(void *t, void *buf, size_t len)
{
    for (;;) {
        ssize_t r = read(((pipe_transport *)t)->fd, buf, len);
        if (r >= 0)
            return r;
        if (errno == EINTR)
            continue;
        return (errno == EAGAIN || errno == EWOULDBLOCK) ? TS_EAGAIN : -errno;
    }
}

static ssize_t pipe_write(void *t, const struct iovec *iov, int iovcnt)
{
    for (;;) {
        ssize_t r = writev(((pipe_transport *)t)->fd, iov, iovcnt);
        if (r >= 0)
            return r;
        if (errno == EINTR)
            continue;
        return (errno == EAGAIN || errno == EWOULDBLOCK) ? TS_EAGAIN : -errno;
    }
}

static void pipe_close(void *t)
{
    pipe_transport *pt = t;
    if (pt->fd >= 0) {
        close(pt->fd);
        pt->fd = -1;
    }
}

static ssize_t pipe_send_file(void *t, int file_fd, uint64_t off, size_t len)
{
    return ts__fd_send_file(((pipe_transport *)t)->fd, file_fd, off, len);
}

static const ts_stream_ops pipe_ops = {
    .size = sizeof(ts_stream_ops),
    .name = "pipe",
    .fileno = pipe_fileno,
    .read_from_fd = pipe_read,
    .write_to_fd = pipe_write,
    .close_fd = pipe_close,
    .flags = TS_STREAM_OPS_SHORT_READ_DRAINED, /* read() straight from the fd; a pipe cannot connect */
    .send_file = pipe_send_file,
};

static void ignore_sigpipe(void)
{
    struct sigaction old;
    if (sigaction(SIGPIPE, NULL, &old) == 0 && !(old.sa_flags & SA_SIGINFO) && old.sa_handler == SIG_DFL) {
        struct sigaction sa = {.sa_handler = SIG_IGN};
        sigemptyset(&sa.sa_mask);
        sigaction(SIGPIPE, &sa, NULL);
    }
}

ts_iostream *ts_iostream_new_pipe(ts_ioloop *loop, int fd, const ts_iostream_options *opts)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    if (fd < 0)
        return NULL;
    pthread_once(&once, ignore_sigpipe);
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || (!(fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0))
        return NULL;
    ts_iostream *s = ts__iostream_new_inline(loop, &pipe_ops, sizeof(pipe_transport), opts);
    if (s)
        ((pipe_transport *)ts__iostream_transport(s))->fd = fd;
    return s;
}
