/*
 * The transport contract (ts_stream_ops) driven by a scripted mock
 * transport: WANT_READ / WANT_WRITE steering loop interest both ways, the
 * pending hook, handshakes (server and client side), wait_for_handshake,
 * get_fd_error on EOF, writev caps, the optional hooks, detach_fd, and
 * allocation failures.
 *
 * The mock's fd is one end of a socketpair: it is always writable, and
 * readable only when the test writes to the other end. What the mock
 * "reads" comes from its own script, so the tests control readiness and
 * data separately.
 */
#include "iostream_int.h"
#include "testutil.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define S(lit) lit, sizeof(lit) - 1

typedef struct mock {
    int fd, peer;
    const char *in;       /* bytes the transport will deliver */
    size_t in_len, in_off;
    size_t piece;         /* at most this many per read (0: any) */
    bool eof_after;       /* once in[] is drained, report EOF (else TS_EAGAIN) */
    int eof_error;        /* what get_fd_error returns */
    int want_write_reads; /* reads that first answer TS_EWANTWRITE */
    bool eagain_alternate;
    bool use_pending;
    bool writes_need_readable; /* writes answer TS_EWANTREAD until the fd is readable */
    bool writes_blocked;
    int read_error; /* returned by reads once set */
    int hs_script[8], hs_len, hs_calls;
    bool hs_done;
    bool io_before_handshake;
    int read_calls, write_calls, max_iovcnt, closes, frees, shutdowns;
    size_t written, max_write_call;
} mock;

static int m_fileno(void *t) { return ((mock *)t)->fd; }

static ssize_t m_read(void *t, void *buf, size_t len)
{
    mock *m = t;
    m->read_calls++;
    if (m->hs_len && !m->hs_done)
        m->io_before_handshake = true;
    if (m->read_error)
        return m->read_error;
    if (m->want_write_reads > 0) {
        m->want_write_reads--;
        return TS_EWANTWRITE;
    }
    if (m->eagain_alternate && (m->read_calls & 1))
        return TS_EAGAIN;
    if (m->in_off == m->in_len)
        return m->eof_after ? 0 : TS_EAGAIN;
    size_t n = m->in_len - m->in_off;
    if (n > len)
        n = len;
    if (m->piece && n > m->piece)
        n = m->piece;
    memcpy(buf, m->in + m->in_off, n);
    m->in_off += n;
    return (ssize_t)n;
}

static bool fd_readable(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, 0) == 1;
}

static ssize_t m_write(void *t, const struct iovec *iov, int cnt)
{
    mock *m = t;
    m->write_calls++;
    if (m->hs_len && !m->hs_done)
        m->io_before_handshake = true;
    if (m->writes_blocked)
        return TS_EAGAIN;
    if (m->writes_need_readable && !fd_readable(m->fd))
        return TS_EWANTREAD;
    if (cnt > m->max_iovcnt)
        m->max_iovcnt = cnt;
    size_t n = 0;
    for (int i = 0; i < cnt; i++)
        n += iov[i].iov_len;
    if (n > m->max_write_call)
        m->max_write_call = n;
    m->written += n;
    return (ssize_t)n;
}

static void m_close(void *t) { ((mock *)t)->closes++; }
static int m_fd_error(void *t) { return ((mock *)t)->eof_error; }
static size_t m_pending(void *t)
{
    mock *m = t;
    return m->use_pending ? m->in_len - m->in_off : 0;
}
static int m_handshake(void *t)
{
    mock *m = t;
    int r = m->hs_calls < m->hs_len ? m->hs_script[m->hs_calls] : 0;
    m->hs_calls++;
    if (r == 0)
        m->hs_done = true;
    return r;
}
static void m_shutdown(void *t) { ((mock *)t)->shutdowns++; }
static const char *m_detail(void *t)
{
    (void)t;
    return "mock detail";
}
static void m_free(void *t) { ((mock *)t)->frees++; }

static const ts_stream_ops mock_ops = {
    .size = sizeof(ts_stream_ops),
    .name = "mock",
    .fileno = m_fileno,
    .read_from_fd = m_read,
    .write_to_fd = m_write,
    .close_fd = m_close,
    .get_fd_error = m_fd_error,
    .pending = m_pending,
    .shutdown = m_shutdown,
    .error_detail = m_detail,
    .free = m_free,
};

/* A user transport over a socket connects and names its peer itself (the core makes no socket call). */
static int m_connect(void *t, const struct sockaddr *a, socklen_t n)
{
    return connect(((mock *)t)->fd, a, n) == 0 ? 0 : -errno;
}
static int m_peer(void *t, struct sockaddr *a, socklen_t *n)
{
    return getpeername(((mock *)t)->fd, a, n) == 0 ? 0 : -errno;
}

static const ts_stream_ops mock_hs_ops = {
    .size = sizeof(ts_stream_ops),
    .name = "mock-hs",
    .fileno = m_fileno,
    .read_from_fd = m_read,
    .write_to_fd = m_write,
    .close_fd = m_close,
    .get_fd_error = m_fd_error,
    .handshake = m_handshake,
    .free = m_free,
    .connect = m_connect,
    .peer_address = m_peer,
};

static ts_ioloop *g_loop;

static int setup(void **state)
{
    (void)state;
    g_loop = tu_fixture_begin(20);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tu_fixture_end(g_loop);
    g_loop = NULL;
    return 0;
}

static void mock_init(mock *m)
{
    memset(m, 0, sizeof(*m));
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv), 0);
    m->fd = sv[0];
    m->peer = sv[1];
}

static void mock_done(mock *m)
{
    close(m->fd);
    close(m->peer);
}

/* tu_rec-like recorders, local to this file */
typedef struct rec {
    int calls, status, order;
    size_t len;
    char data[256];
} rec;
static int g_order;

static void on_read(ts_iostream *s, int status, const char *data, size_t len, void *arg)
{
    (void)s;
    rec *r = arg;
    r->calls++, r->status = status, r->order = ++g_order, r->len = len;
    if (len)
        memcpy(r->data, data, len < sizeof r->data ? len : sizeof r->data);
}
static void on_done(ts_iostream *s, int status, void *arg)
{
    (void)s;
    rec *r = arg;
    r->calls++, r->status = status, r->order = ++g_order;
}
static void on_close(ts_iostream *s, void *arg)
{
    (void)s;
    rec *r = arg;
    r->calls++, r->order = ++g_order;
}

static void test_read_that_needs_writability(void **state)
{
    (void)state;
    mock m;
    mock_init(&m);
    m.in = "hello";
    m.in_len = 5;
    m.want_write_reads = 1;
    ts_iostream *s = ts_iostream_new(g_loop, &mock_ops, &m, NULL);
    rec r = {0};
    assert_int_equal(ts_iostream_read_bytes(s, 5, false, on_read, &r), 0);
    /* The fd never becomes readable: only waiting for WRITE lets the read retry. */
    tu_run_until_count(g_loop, &r.calls, 1, 5);
    assert_int_equal(r.status, 0);
    assert_memory_equal(r.data, "hello", 5);
    ts_iostream_free(s);
    tu_run_iterations(g_loop, 2);
    assert_int_equal(m.frees, 1);
    mock_done(&m);
}

static void test_write_that_needs_readability(void **state)
{
    (void)state;
    mock m;
    mock_init(&m);
    m.writes_need_readable = true;
    ts_iostream *s = ts_iostream_new(g_loop, &mock_ops, &m, NULL);
    rec w = {0};
    assert_int_equal(ts_iostream_write(s, S("abc"), on_done, &w), 0);
    tu_run_for(g_loop, 0.03);
    /* Waiting for WRITE here would spin: the fd is always writable. */
    assert_true(m.write_calls <= 2);
    assert_int_equal(w.calls, 0);
    assert_int_equal(write(m.peer, "!", 1), 1);
    tu_run_until_count(g_loop, &w.calls, 1, 5);
    assert_int_equal(w.status, 0);
    assert_int_equal(m.written, 3);
    ts_iostream_free(s);
    tu_run_iterations(g_loop, 2);
    mock_done(&m);
}

static void test_pending_bytes_read_without_fd(void **state)
{
    (void)state;
    mock m;
    mock_init(&m);
    static char data[100];
    memset(data, 'p', sizeof data);
    m.in = data;
    m.in_len = sizeof data;
    m.piece = 7;
    m.eagain_alternate = true; /* says "would block" although it holds bytes */
    m.use_pending = true;
    ts_iostream *s = ts_iostream_new(g_loop, &mock_ops, &m, NULL);
    rec r = {0};
    assert_int_equal(ts_iostream_read_bytes(s, 100, false, on_read, &r), 0);
    tu_run_until_count(g_loop, &r.calls, 1, 5); /* the fd is never readable */
    assert_int_equal(r.status, 0);
    assert_int_equal(r.len, 100);
    ts_iostream_free(s);
    tu_run_iterations(g_loop, 2);
    mock_done(&m);
}

static void test_eof_records_fd_error(void **state)
{
    (void)state;
    mock m;
    mock_init(&m);
    m.in = "abc";
    m.in_len = 3;
    m.eof_after = true;
    m.eof_error = TS_ETRUNCATED;
    ts_iostream *s = ts_iostream_new(g_loop, &mock_ops, &m, NULL);
    rec r = {0}, c = {0};
    ts_iostream_set_close_callback(s, on_close, &c);
    assert_int_equal(ts_iostream_read_bytes(s, 10, false, on_read, &r), 0);
    tu_run_until_count(g_loop, &c.calls, 1, 5);
    assert_int_equal(r.status, TS_ETRUNCATED); /* the pending read learns why */
    assert_int_equal(ts_iostream_error(s), TS_ETRUNCATED);
    assert_string_equal(ts_iostream_error_detail(s), "mock detail");
    assert_int_equal(m.shutdowns, 0); /* no goodbye after EOF */
    assert_int_equal(m.closes, 1);
    /* Data left behind is still served. */
    ts_future *f = ts_iostream_read_until_close_future(s);
    assert_int_equal(ts_ioloop_run_sync(g_loop, f, 5), 0);
    assert_int_equal(((ts_bytes *)ts_future_result(f))->len, 3);
    ts_future_unref(f);
    ts_iostream_unref(s);
    assert_int_equal(m.frees, 1);
    mock_done(&m);
}

/* Tornado's test_async_read_error_logging: an error on a read the loop drives closes the stream once. */
static void test_async_read_error(void **state)
{
    (void)state;
    mock m;
    mock_init(&m);
    ts_iostream *s = ts_iostream_new(g_loop, &mock_ops, &m, NULL);
    rec r = {0}, c = {0};
    ts_iostream_set_close_callback(s, on_close, &c);
    assert_int_equal(ts_iostream_read_bytes(s, 1, false, on_read, &r), 0);
    tu_run_for(g_loop, 0.01);
    m.read_error = -EIO;
    assert_int_equal(write(m.peer, "a", 1), 1);
    tu_run_until_count(g_loop, &c.calls, 1, 5);
    tu_run_for(g_loop, 0.01);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.status, -EIO);
    assert_int_equal(c.calls, 1);
    assert_int_equal(ts_iostream_error(s), -EIO);
    ts_iostream_unref(s);
    mock_done(&m);
}

static void test_shutdown_and_free_hooks(void **state)
{
    (void)state;
    mock m;
    mock_init(&m);
    ts_iostream *s = ts_iostream_new(g_loop, &mock_ops, &m, NULL);
    ts_iostream_ref(s);
    ts_iostream_close(s, 0);
    ts_iostream_close(s, 0);
    assert_int_equal(m.shutdowns, 1);
    assert_int_equal(m.closes, 1);
    ts_iostream_unref(s);
    ts_iostream_unref(s);
    assert_int_equal(m.frees, 0); /* phase two (the close callback) has not run yet */
    tu_run_iterations(g_loop, 2);
    assert_int_equal(m.frees, 1);
    /* An error close does not say goodbye. */
    m.shutdowns = m.closes = m.frees = 0;
    s = ts_iostream_new(g_loop, &mock_ops, &m, NULL);
    ts_iostream_close(s, -EIO);
    ts_iostream_unref(s);
    tu_run_iterations(g_loop, 2);
    assert_int_equal(m.shutdowns, 0);
    assert_int_equal(m.frees, 1);
    mock_done(&m);
}

static void test_minimal_old_ops(void **state)
{
    (void)state;
    /* An ops struct from before the optional hooks existed: none of them is touched. */
    static ts_stream_ops old;
    old = mock_ops;
    old.size = offsetof(ts_stream_ops, get_fd_error);
    mock m;
    mock_init(&m);
    m.in = "xy";
    m.in_len = 2;
    m.eof_after = true;
    m.eof_error = -EIO;
    ts_iostream *s = ts_iostream_new(g_loop, &old, &m, NULL);
    ts_future *f = ts_iostream_read_until_close_future(s);
    assert_int_equal(ts_ioloop_run_sync(g_loop, f, 5), 0);
    assert_int_equal(ts_future_error(f), 0);
    ts_future_unref(f);
    assert_int_equal(ts_iostream_error(s), 0); /* get_fd_error not called */
    assert_null(ts_iostream_error_detail(s));
    ts_iostream_unref(s);
    assert_int_equal(m.frees, 0);
    ts_stream_ops bad = mock_ops;
    bad.read_from_fd = NULL;
    assert_null(ts_iostream_new(g_loop, &bad, &m, NULL));
    mock_done(&m);
}

static void test_writev_caps(void **state)
{
    (void)state;
    mock m;
    mock_init(&m);
    m.writes_blocked = true;
    ts_iostream *s = ts_iostream_new(g_loop, &mock_ops, &m, NULL);
    static char piece[1024];
    rec w = {0};
    enum { N = 6000 };
    for (int i = 0; i < N; i++)
        assert_int_equal(ts_iostream_write_owned(s, piece, sizeof piece, NULL, i == N - 1 ? on_done : NULL, &w), 0);
    assert_int_equal(ts_iostream_write_buffer_size(s), (size_t)N * 1024);
    m.writes_blocked = false;
    tu_run_iterations(g_loop, 1); /* one WRITE event */
    assert_true(m.written > 0);
    assert_true(m.written <= 4u * 1024 * 1024); /* per-event byte cap */
    assert_true(m.max_iovcnt <= 1024);          /* IOV_MAX */
    assert_true(m.max_iovcnt > 1);              /* many chunks per call */
    tu_run_until_count(g_loop, &w.calls, 1, 5);
    assert_int_equal(m.written, (size_t)N * 1024);
    ts_iostream_free(s);
    tu_run_iterations(g_loop, 2);
    mock_done(&m);
}

static void on_hs(ts_iostream *s, int status, void *arg)
{
    rec *r = arg;
    on_done(s, status, arg);
    (void)r;
}

static void test_server_handshake_then_queued_io(void **state)
{
    (void)state;
    mock m;
    mock_init(&m);
    m.hs_script[0] = TS_EWANTREAD;
    m.hs_script[1] = TS_EWANTWRITE;
    m.hs_script[2] = 0;
    m.hs_len = 3;
    m.in = "data";
    m.in_len = 4;
    ts_iostream *s = ts_iostream_new(g_loop, &mock_hs_ops, &m, NULL);
    rec r = {0}, w = {0}, hs = {0};
    assert_int_equal(ts_iostream_read_bytes(s, 4, false, on_read, &r), 0);
    assert_int_equal(ts_iostream_write(s, S("out"), on_done, &w), 0);
    assert_int_equal(ts__iostream_wait_for_handshake(s, on_hs, &hs), 0);
    assert_int_equal(ts__iostream_wait_for_handshake(s, on_hs, &hs), TS_EBUSY);
    assert_int_equal(m.hs_calls, 0); /* driven from the loop, not inside new() */
    tu_run_for(g_loop, 0.02);
    assert_int_equal(m.hs_calls, 1); /* waiting for readability */
    assert_int_equal(write(m.peer, "!", 1), 1);
    tu_run_until_count(g_loop, &r.calls, 1, 5);
    tu_run_until_count(g_loop, &w.calls, 1, 5);
    assert_int_equal(m.hs_calls, 3);
    assert_false(m.io_before_handshake);
    assert_int_equal(hs.calls, 1);
    assert_int_equal(hs.status, 0);
    assert_true(hs.order < r.order);
    assert_memory_equal(r.data, "data", 4);
    /* Already done: still deferred, status 0. */
    rec hs2 = {0};
    assert_int_equal(ts__iostream_wait_for_handshake(s, on_hs, &hs2), 0);
    assert_int_equal(hs2.calls, 0);
    tu_run_until_count(g_loop, &hs2.calls, 1, 5);
    assert_int_equal(hs2.status, 0);
    ts_iostream_free(s);
    tu_run_iterations(g_loop, 2);
    mock_done(&m);
}

static void test_handshake_failure(void **state)
{
    (void)state;
    mock m;
    mock_init(&m);
    m.hs_script[0] = TS_EWANTWRITE;
    m.hs_script[1] = TS_ESSL;
    m.hs_len = 2;
    ts_iostream *s = ts_iostream_new(g_loop, &mock_hs_ops, &m, NULL);
    rec r = {0}, hs = {0}, c = {0};
    ts_iostream_set_close_callback(s, on_close, &c);
    assert_int_equal(ts_iostream_read_bytes(s, 1, false, on_read, &r), 0);
    assert_int_equal(ts__iostream_wait_for_handshake(s, on_hs, &hs), 0);
    tu_run_until_count(g_loop, &c.calls, 1, 5);
    assert_int_equal(hs.status, TS_ESSL);
    assert_int_equal(r.status, TS_ESSL);
    assert_int_equal(ts_iostream_error(s), TS_ESSL);
    assert_true(hs.order < r.order && r.order < c.order);
    /* Waiting on a closed stream reports its error. */
    rec hs2 = {0};
    assert_int_equal(ts__iostream_wait_for_handshake(s, on_hs, &hs2), 0);
    tu_run_until_count(g_loop, &hs2.calls, 1, 5);
    assert_int_equal(hs2.status, TS_ESSL);
    ts_iostream_unref(s);
    mock_done(&m);
}

static void test_client_handshake_after_connect(void **state)
{
    (void)state;
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    assert_int_equal(bind(l, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(l, 4), 0);
    assert_int_equal(getsockname(l, (struct sockaddr *)&a, &alen), 0);
    mock m;
    memset(&m, 0, sizeof m);
    m.fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    m.peer = -1;
    m.hs_script[0] = TS_EWANTWRITE;
    m.hs_len = 2;
    ts_iostream *s = ts_iostream_new(g_loop, &mock_hs_ops, &m, NULL);
    tu_run_for(g_loop, 0.01);
    assert_int_equal(m.hs_calls, 0); /* not connected: the handshake waits for connect() */
    rec c = {0}, w = {0};
    assert_int_equal(ts_iostream_write(s, S("early"), on_done, &w), 0);
    assert_int_equal(ts_iostream_connect(s, (struct sockaddr *)&a, sizeof a, on_done, &c), 0);
    tu_run_until_count(g_loop, &w.calls, 1, 5);
    assert_int_equal(c.calls, 1);
    assert_int_equal(c.status, 0);
    assert_int_equal(m.hs_calls, 2);
    assert_false(m.io_before_handshake);
    assert_true(c.order < w.order); /* connect (after the handshake) before the write */
    ts_iostream_free(s);
    tu_run_iterations(g_loop, 2);
    close(m.fd);
    close(l);
}

static void test_detach_fd(void **state)
{
    (void)state;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    ts_iostream *s = ts_iostream_new_socket(g_loop, sv[0], NULL);
    rec r = {0}, c = {0};
    ts_iostream_set_close_callback(s, on_close, &c);
    int fd = -1;
    assert_int_equal(ts_iostream_read_bytes(s, 2, false, on_read, &r), 0);
    assert_int_equal(ts__iostream_detach_fd(s, &fd), TS_EBUSY); /* read pending */
    assert_int_equal(write(sv[1], "abc", 3), 3);
    tu_run_until_count(g_loop, &r.calls, 1, 5);
    assert_int_equal(ts__iostream_detach_fd(s, &fd), TS_EBUSY); /* "c" is buffered */
    ts_future *f = ts_iostream_read_bytes_future(s, 1, false);
    assert_int_equal(ts_ioloop_run_sync(g_loop, f, 5), 0);
    ts_future_unref(f);
    ts_iostream_set_close_callback(s, on_close, &c);
    ts_iostream_close_cb got_cb;
    void *got_arg;
    ts__iostream_get_close_callback(s, &got_cb, &got_arg);
    assert_true(got_cb == on_close && got_arg == &c);
    ts_iostream_options opts = {.size = sizeof(opts)};
    ts__iostream_get_options(s, &opts);
    assert_int_equal(opts.max_buffer_size, TS_IOSTREAM_DEFAULT_MAX_BUFFER);
    assert_int_equal(opts.read_chunk_size, TS_IOSTREAM_DEFAULT_CHUNK);
    assert_int_equal(ts__iostream_detach_fd(s, &fd), 0);
    assert_int_equal(fd, sv[0]);
    assert_true(fcntl(fd, F_GETFD) >= 0); /* still open */
    assert_true(ts_iostream_closed(s));
    assert_int_equal(ts__iostream_detach_fd(s, &fd), TS_ECLOSED);
    ts_iostream_unref(s);
    tu_run_for(g_loop, 0.01);
    assert_int_equal(c.calls, 0); /* the close callback goes with the fd's new owner */
    /* The fd still works for whoever took it. */
    assert_int_equal(write(sv[1], "z", 1), 1);
    char b;
    assert_int_equal(read(fd, &b, 1), 1);
    close(fd);
    close(sv[1]);
}

static void test_allocation_failures(void **state)
{
    (void)state;
    int a[2], b[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, a), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, b), 0);
    ts_iostream *w_s = ts_iostream_new_socket(g_loop, a[0], NULL); /* its peer a[1] never reads */
    ts_iostream *r_s = ts_iostream_new_socket(g_loop, b[0], NULL);
    rec r = {0}, w = {0};
    tu_use_counting_allocator();
    /* A write that cannot be queued fails at once and closes the stream; earlier writes are told. */
    static char big[1 << 20];
    int rc = 0;
    for (int i = 0; i < 64 && rc == 0; i++) {
        if (ts_iostream_writing(w_s))
            tu_fail_alloc_after(0);
        rc = ts_iostream_write(w_s, big, sizeof big, i == 0 ? on_done : NULL, &w);
    }
    assert_int_equal(rc, TS_ENOMEM);
    assert_true(ts_iostream_closed(w_s));
    /* A long delimiter needs a copy. */
    tu_fail_alloc_after(0);
    assert_int_equal(ts_iostream_read_until(r_s, "0123456789abcdefXYZ", 19, 0, on_read, &r), TS_ENOMEM);
    assert_false(ts_iostream_reading(r_s));
    /*
     * An arrival that completes its read needs no memory of its own: it is
     * read into the loop's shared block (allocated here, on first use).
     */
    assert_int_equal(write(b[1], "hi", 2), 2);
    assert_int_equal(ts_iostream_read_bytes(r_s, 2, false, on_read, &r), 0);
    tu_run_until_count(g_loop, &r.calls, 1, 5);
    assert_int_equal(r.status, 0);
    r.calls = 0;
    /* What a read leaves unanswered must be kept in a block of the stream's own: without one, the read fails. */
    assert_int_equal(write(b[1], "hi", 2), 2);
    tu_fail_alloc_after(0);
    assert_int_equal(ts_iostream_read_bytes(r_s, 3, false, on_read, &r), 0);
    tu_run_until_count(g_loop, &r.calls, 1, 5);
    assert_int_equal(r.status, TS_ENOMEM);
    assert_int_equal(ts_iostream_error(r_s), TS_ENOMEM);
    tu_restore_allocator();
    tu_run_until_count(g_loop, &w.calls, 1, 5);
    assert_true(w.status == TS_ENOMEM || w.status == 0);
    ts_iostream_free(w_s);
    ts_iostream_free(r_s);
    tu_run_iterations(g_loop, 2);
    close(a[1]);
    close(b[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_read_that_needs_writability, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_that_needs_readability, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pending_bytes_read_without_fd, setup, teardown),
        cmocka_unit_test_setup_teardown(test_eof_records_fd_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_async_read_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shutdown_and_free_hooks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_minimal_old_ops, setup, teardown),
        cmocka_unit_test_setup_teardown(test_writev_caps, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_handshake_then_queued_io, setup, teardown),
        cmocka_unit_test_setup_teardown(test_handshake_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_handshake_after_connect, setup, teardown),
        cmocka_unit_test_setup_teardown(test_detach_fd, setup, teardown),
        cmocka_unit_test_setup_teardown(test_allocation_failures, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
