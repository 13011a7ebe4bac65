/*
 * The socket BIO under every TLS stream. OpenSSL's own socket BIO writes with
 * write(2), which raises SIGPIPE when the peer has gone; OpenSSL writes not
 * only from SSL_write but from SSL_read (alerts, KeyUpdate replies) and the
 * handshake too, so the only place to stop the signal without touching the
 * process's signal mask is the write itself: send(MSG_NOSIGNAL). This file
 * does no buffering and knows nothing of SSL objects.
 */
#include <errno.h>
#include <string.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/bio.h>

#include "ssl_int.h"

typedef struct bio_state {
    int fd;
    int last_errno; /* errno of the last failed read/write, for error reports */
    bool eof;       /* recv() returned 0: BIO_eof() is how OpenSSL tells EOF from an error */
    bool not_socket;
} bio_state;

static BIO_METHOD *g_method;
static pthread_once_t g_method_once = PTHREAD_ONCE_INIT;

static bool would_block(int e) { return e == EAGAIN || e == EWOULDBLOCK || e == EINTR; }

static int bio_write(BIO *b, const char *buf, int len)
{
    bio_state *st = BIO_get_data(b);
    ssize_t n;
    BIO_clear_retry_flags(b);
    do {
        if (!st->not_socket) {
            n = send(st->fd, buf, (size_t)len, MSG_NOSIGNAL);
            if (n < 0 && errno == ENOTSOCK)
                st->not_socket = true; /* a pipe or tty: plain write, caller owns SIGPIPE policy */
        }
        if (st->not_socket)
            n = write(st->fd, buf, (size_t)len);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        st->last_errno = errno;
        if (would_block(errno))
            BIO_set_retry_write(b);
        return -1;
    }
    return (int)n;
}

static int bio_read(BIO *b, char *buf, int len)
{
    bio_state *st = BIO_get_data(b);
    ssize_t n;
    BIO_clear_retry_flags(b);
    if (buf == NULL || len <= 0)
        return 0;
    do {
        n = st->not_socket ? read(st->fd, buf, (size_t)len) : recv(st->fd, buf, (size_t)len, 0);
        if (n < 0 && errno == ENOTSOCK && !st->not_socket) {
            st->not_socket = true;
            n = -1, errno = EINTR; /* retry with read() */
        }
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        st->last_errno = errno;
        if (would_block(errno))
            BIO_set_retry_read(b);
        return -1;
    }
    if (n == 0)
        st->eof = true;
    return (int)n;
}

static int bio_puts(BIO *b, const char *str) { return bio_write(b, str, (int)strlen(str)); }

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    bio_state *st = BIO_get_data(b);
    TS__UNUSED(num);
    switch (cmd) {
    case BIO_CTRL_FLUSH: /* nothing is buffered here */
        return 1;
    case BIO_CTRL_EOF:
        return st->eof;
    case BIO_C_GET_FD: /* SSL_get_fd() and friends */
        if (ptr != NULL)
            *(int *)ptr = st->fd;
        return st->fd;
    case BIO_CTRL_GET_CLOSE:
        return BIO_NOCLOSE; /* the transport owns the fd */
    case BIO_CTRL_SET_CLOSE:
    case BIO_CTRL_DUP:
        return 1;
    default:
        return 0;
    }
}

static int bio_create(BIO *b)
{
    bio_state *st = OPENSSL_zalloc(sizeof *st);
    if (st == NULL)
        return 0;
    st->fd = -1;
    BIO_set_data(b, st);
    BIO_set_init(b, 1);
    return 1;
}

static int bio_destroy(BIO *b)
{
    OPENSSL_free(BIO_get_data(b));
    BIO_set_data(b, NULL);
    return 1;
}

static void method_init(void)
{
    /* A descriptor BIO, so SSL_get_fd() finds it. Made once, never freed:
     * OpenSSL keeps pointers to methods in live BIOs. */
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK | BIO_TYPE_DESCRIPTOR, "tstream socket");
    if (m == NULL)
        return;
    if (!BIO_meth_set_write(m, bio_write) || !BIO_meth_set_read(m, bio_read) || !BIO_meth_set_puts(m, bio_puts) ||
        !BIO_meth_set_ctrl(m, bio_ctrl) || !BIO_meth_set_create(m, bio_create) ||
        !BIO_meth_set_destroy(m, bio_destroy)) {
        BIO_meth_free(m);
        return;
    }
    g_method = m;
}

BIO *ts__ssl_bio_new(int fd)
{
    pthread_once(&g_method_once, method_init);
    if (g_method == NULL)
        return NULL;
    BIO *b = BIO_new(g_method);
    if (b != NULL)
        ts__ssl_bio_set_fd(b, fd);
    return b;
}

void ts__ssl_bio_set_fd(BIO *b, int fd)
{
    bio_state *st = BIO_get_data(b);
    st->fd = fd;
    st->eof = false;
    st->not_socket = false;
}

int ts__ssl_bio_errno(BIO *b)
{
    bio_state *st = BIO_get_data(b);
    int e = st->last_errno;
    st->last_errno = 0;
    return e;
}
