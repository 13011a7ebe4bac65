/*
 * ts_iostream_write_file(): a file region queued among other writes, over
 * every transport row (tcp, unix, pipe: sendfile; tls: staged through the
 * transport) plus a user transport (ts_iostream_new over a unix socket,
 * staged like TLS but without its cost, so the large file runs there too).
 * Files are sparse temporaries with markers written at a few offsets; every
 * byte that arrives is checked against them (zeros elsewhere).
 */
#include "stream_pairs.h"
#include "testutil.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>

#define F tu_F
#define MiB (1024u * 1024u)

/* ---- sparse files with markers ------------------------------------------- */

#define MAX_MARKS 8

typedef struct marked_file {
    int fd;
    uint64_t size;
    int nmarks;
    uint64_t mark_at[MAX_MARKS];
    char mark[MAX_MARKS][24];
} marked_file;

/* A sparse temporary of @p size bytes with a distinct marker at each of @p at (unlinked at once). */
static marked_file make_file(uint64_t size, const uint64_t *at, int n)
{
    marked_file m = {.size = size, .nmarks = n};
    char path[] = "/tmp/ts_write_file_XXXXXX";
    m.fd = mkstemp(path);
    assert_true(m.fd >= 0);
    unlink(path);
    assert_int_equal(ftruncate(m.fd, (off_t)size), 0);
    for (int i = 0; i < n; i++) {
        m.mark_at[i] = at[i];
        int len = snprintf(m.mark[i], sizeof m.mark[i], "<mark %d @%llu>", i, (unsigned long long)at[i]);
        assert_true(at[i] + (uint64_t)len <= size);
        assert_int_equal(pwrite(m.fd, m.mark[i], (size_t)len, (off_t)at[i]), len);
    }
    return m;
}

/* The byte the file holds at @p pos (as made; a truncation is the caller's to account for). */
static char file_byte(const marked_file *m, uint64_t pos)
{
    for (int i = 0; i < m->nmarks; i++) {
        uint64_t len = strlen(m->mark[i]);
        if (pos >= m->mark_at[i] && pos < m->mark_at[i] + len)
            return m->mark[i][pos - m->mark_at[i]];
    }
    return 0;
}

/* A reader that checks every arriving byte against the file region starting at @p base. */
typedef struct checker {
    const marked_file *file;
    uint64_t base;    /* file offset of the first byte expected */
    uint64_t got;     /* bytes seen */
    uint64_t bad;     /* bytes that differ */
    uint64_t first_bad;
    bool done;
    int status;
} checker;

static const char zeros[64 * 1024];

static void check_chunk(ts_iostream *s, const char *data, size_t len, void *arg)
{
    (void)s;
    checker *c = arg;
    size_t i = 0;
    while (i < len) {
        uint64_t pos = c->base + c->got + i;
        bool near_mark = false;
        for (int k = 0; k < c->file->nmarks; k++)
            if (pos + sizeof zeros > c->file->mark_at[k] && pos < c->file->mark_at[k] + 24)
                near_mark = true;
        size_t step = len - i < sizeof zeros ? len - i : sizeof zeros;
        if (!near_mark && memcmp(data + i, zeros, step) == 0) {
            i += step;
            continue;
        }
        for (size_t j = 0; j < step; j++) {
            if (data[i + j] != file_byte(c->file, pos + j)) {
                if (!c->bad)
                    c->first_bad = pos + j;
                c->bad++;
            }
        }
        i += step;
    }
    c->got += len;
}

static void check_end(ts_iostream *s, int status, const char *data, size_t len, void *arg)
{
    (void)s;
    (void)data;
    (void)len;
    checker *c = arg;
    c->status = status;
    c->done = true;
}

/* Reads @p n bytes (0: until close) on F.rs and checks them against @p m from @p base. */
static void start_check(checker *c, const marked_file *m, uint64_t base, uint64_t n)
{
    *c = (checker){.file = m, .base = base};
    int r = n ? ts_iostream_read_bytes_streaming(F.rs, (size_t)n, check_chunk, check_end, c)
              : ts_iostream_read_until_close_streaming(F.rs, check_chunk, check_end, c);
    assert_int_equal(r, 0);
}

static void wait_check(checker *c, double timeout)
{
    tu_run_until_flag(F.loop, &c->done, timeout);
    assert_true(c->done);
    if (c->bad)
        fail_msg("%llu bytes differ, the first at file offset %llu", (unsigned long long)c->bad,
                 (unsigned long long)c->first_bad);
}

static bool is_tls(void) { return strcmp(F.kind->name, "tls") == 0; }

/* ---- a user transport: a unix socket behind ts_iostream_new -------------- */

typedef struct user_transport {
    int fd;
} user_transport;

static int ut_fileno(void *t) { return ((user_transport *)t)->fd; }

static ssize_t ut_read(void *t, void *buf, size_t len)
{
    ssize_t r = recv(((user_transport *)t)->fd, buf, len, 0);
    return r >= 0 ? r : errno == EAGAIN ? TS_EAGAIN : -errno;
}

static uint64_t g_user_written; /* bytes the user transport's write_to_fd took */

static ssize_t ut_write(void *t, const struct iovec *iov, int iovcnt)
{
    struct msghdr msg = {.msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)iovcnt};
    ssize_t r = sendmsg(((user_transport *)t)->fd, &msg, MSG_NOSIGNAL);
    if (r > 0)
        g_user_written += (uint64_t)r;
    return r >= 0 ? r : errno == EAGAIN ? TS_EAGAIN : -errno;
}

static void ut_close(void *t)
{
    user_transport *u = t;
    if (u->fd >= 0)
        close(u->fd);
    u->fd = -1;
}

static void ut_free(void *t) { free(t); }

/* The ops both user transports share; it reads the fd itself, yet writes go through write_to_fd. */
#define USER_OPS_COMMON                                                                          \
    .size = sizeof(ts_stream_ops), .fileno = ut_fileno, .read_from_fd = ut_read, .write_to_fd = ut_write, \
    .close_fd = ut_close, .free = ut_free, .flags = TS_STREAM_OPS_SHORT_READ_DRAINED

/* Without send_file: no sendfile past write_to_fd, every file byte is staged through it. */
static const ts_stream_ops user_ops = {USER_OPS_COMMON, .name = "user"};

static uint64_t g_user_sent_file; /* bytes the send_file op sent */

/* The same transport with the send_file op: file regions go through it, uncopied. */
static ssize_t ut_send_file(void *t, int file_fd, uint64_t off, size_t len)
{
    /* sendfile cannot say MSG_NOSIGNAL: hold SIGPIPE back around it and take it if it came */
    sigset_t pipe_set, old;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
    off_t o = (off_t)off;
    ssize_t r = sendfile(((user_transport *)t)->fd, file_fd, &o, len);
    int err = errno;
    const struct timespec zero = {0, 0};
    while (sigtimedwait(&pipe_set, NULL, &zero) == SIGPIPE) {
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (r > 0)
        g_user_sent_file += (uint64_t)r;
    return r >= 0 ? r : err == EAGAIN ? TS_EAGAIN : -err;
}

static const ts_stream_ops user_sf_ops = {USER_OPS_COMMON, .name = "user-sendfile", .send_file = ut_send_file};

static ts_iostream *user_stream(ts_ioloop *loop, const ts_stream_ops *ops, int fd, const ts_iostream_options *opts)
{
    tu_set_nonblock(fd);
    user_transport *u = malloc(sizeof(*u));
    u->fd = fd;
    ts_iostream *s = ts_iostream_new(loop, ops, u, opts);
    assert_non_null(s);
    return s;
}

static int make_user_with(const ts_stream_ops *ops, ts_ioloop *loop, const ts_iostream_options *opts,
                          ts_iostream **client, ts_iostream **server)
{
    int fds[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) < 0)
        return -errno;
    *client = user_stream(loop, ops, fds[0], opts);
    *server = user_stream(loop, ops, fds[1], opts);
    return 0;
}

static int make_user(ts_ioloop *loop, const ts_iostream_options *opts, ts_iostream **client, ts_iostream **server)
{
    return make_user_with(&user_ops, loop, opts, client, server);
}

static int make_user_sf(ts_ioloop *loop, const ts_iostream_options *opts, ts_iostream **client, ts_iostream **server)
{
    return make_user_with(&user_sf_ops, loop, opts, client, server);
}

static const tu_stream_pair_kind user_kind = {"user", make_user, true, true};
static const tu_stream_pair_kind user_sf_kind = {"user-sendfile", make_user_sf, true, true};

/* ---- tests --------------------------------------------------------------- */

static void rec_order(tu_rec *r, int n)
{
    for (int i = 0; i < n; i++) {
        assert_int_equal(r[i].calls, 1);
        assert_int_equal(r[i].status, 0);
        if (i)
            assert_true(r[i].order > r[i - 1].order);
    }
}

/* Memory writes and two regions of one file interleave in order; callbacks run once each, in order. */
static void test_order(void **state)
{
    (void)state;
    tu_fx_pair(NULL);
    g_user_written = g_user_sent_file = 0;
    uint64_t at[] = {0, 100000, 299980};
    marked_file m = make_file(300000, at, 3);
    tu_rec rec[6] = {0};
    assert_int_equal(ts_iostream_write(F.ws, "head|", 5, tu_rec_write, &rec[0]), 0);
    assert_int_equal(ts_iostream_write_file(F.ws, m.fd, 99990, 200010, tu_rec_write, &rec[1]), 0);
    assert_int_equal(ts_iostream_write(F.ws, "|mid|", 5, tu_rec_write, &rec[2]), 0);
    assert_int_equal(ts_iostream_write_file(F.ws, m.fd, 0, 30, tu_rec_write, &rec[3]), 0);
    assert_int_equal(ts_iostream_write_file(F.ws, m.fd, 5, 0, tu_rec_write, &rec[4]), 0);
    close(m.fd); /* the stream keeps its own descriptor */
    assert_int_equal(ts_iostream_write(F.ws, "|tail", 5, tu_rec_write, &rec[5]), 0);
    assert_int_equal(ts_iostream_write_buffer_size(F.ws), 200010 + 30 + 10); /* "head|" went out at once */

    ts_future *f = tu_await(ts_iostream_read_bytes_future(F.rs, 200010 + 30 + 15, false));
    assert_int_equal(ts_future_error(f), 0);
    const ts_bytes *b = ts_future_result(f);
    assert_memory_equal(b->data, "head|", 5);
    for (size_t i = 0; i < 200010; i++)
        if (b->data[5 + i] != file_byte(&m, 99990 + i))
            fail_msg("byte %zu of the first region differs", i);
    assert_memory_equal(b->data + 5 + 200010, "|mid|", 5);
    for (size_t i = 0; i < 30; i++)
        assert_int_equal(b->data[5 + 200010 + 5 + i], file_byte(&m, i));
    assert_memory_equal(b->data + 5 + 200010 + 5 + 30, "|tail", 5);
    ts_future_unref(f);
    tu_rec_wait(&rec[5], 1);
    rec_order(rec, 6);
    assert_int_equal(ts_iostream_write_buffer_size(F.ws), 0);
    if (F.kind == &user_kind)
        assert_int_equal(g_user_written, 200010 + 30 + 15); /* every byte through the transport */
    if (F.kind == &user_sf_kind) { /* the file's bytes through its send_file op, the rest through write_to_fd */
        assert_int_equal(g_user_sent_file, 200010 + 30);
        assert_int_equal(g_user_written, 15);
    }
}

/*
 * A sparse file past 2 GiB (offsets above 2^31 and a marker straddling it).
 * Under ASan, TLS moves about 200 MB/s here, so its row sends 300 MiB past a
 * 2 GiB offset instead of the whole file; every other row sends all of it.
 */
static void test_large_sparse(void **state)
{
    (void)state;
    tu_fx_pair(NULL);
    const uint64_t two_g = 1ull << 31;
    const uint64_t size = two_g + 3 * MiB + 12345;
    uint64_t at[] = {0, MiB - 7, two_g - 9, two_g + MiB, size - 20};
    marked_file m = make_file(size, at, 5);
    uint64_t base = is_tls() ? two_g - 300 * MiB : 0;
    uint64_t len = size - base;
    bool written = false;
    ts_future *wf = ts_iostream_write_file_future(F.ws, m.fd, base, TS_WRITE_FILE_TO_END);
    assert_non_null(wf);
    assert_int_equal(ts_iostream_write_buffer_size(F.ws), len);
    checker c;
    start_check(&c, &m, base, len);
    wait_check(&c, 25);
    assert_int_equal(c.status, 0);
    assert_int_equal(c.got, len);
    tu_await(wf);
    written = ts_future_error(wf) == 0;
    ts_future_unref(wf);
    assert_true(written);
    close(m.fd);
}

static void expect_closed_with(ts_iostream *s, int err) { assert_int_equal(ts_iostream_error(s), err); }

/* The file shrank between the call and the send: the prefix arrives, then -ENODATA closes the stream. */
static void test_shrunk_before_send(void **state)
{
    (void)state;
    tu_fx_pair(NULL);
    uint64_t at[] = {10, 99980};
    marked_file m = make_file(MiB, at, 2);
    tu_rec rec[2] = {0};
    assert_int_equal(ts_iostream_write_file(F.ws, m.fd, 0, MiB, tu_rec_write, &rec[0]), 0);
    assert_int_equal(ts_iostream_write(F.ws, "after", 5, tu_rec_write, &rec[1]), 0);
    assert_int_equal(ftruncate(m.fd, 100000), 0);
    checker c;
    start_check(&c, &m, 0, 0);
    wait_check(&c, 10);
    assert_int_equal(c.got, 100000);
    /* A plain EOF, or for TLS perhaps the cut reported as a truncation (no close_notify after an error). */
    assert_true(c.status == 0 || (is_tls() && c.status == TS_ETRUNCATED));
    tu_rec_wait(&rec[1], 1);
    assert_int_equal(rec[0].calls, 1);
    assert_int_equal(rec[0].status, -ENODATA);
    assert_int_equal(rec[1].status, -ENODATA);
    assert_true(rec[1].order > rec[0].order);
    expect_closed_with(F.ws, -ENODATA);
    close(m.fd);
}

/* The file shrinks while it is being sent: exactly its new size arrives, then the stream closes. */
static void test_shrinks_while_sending(void **state)
{
    (void)state;
    tu_fx_pair(NULL);
    uint64_t at[] = {0, 20 * MiB, 32 * MiB - 10, 40 * MiB};
    marked_file m = make_file(64 * MiB, at, 4);
    tu_rec rec = {0};
    assert_int_equal(ts_iostream_write_file(F.ws, m.fd, 0, TS_WRITE_FILE_TO_END, tu_rec_write, &rec), 0);
    checker c;
    start_check(&c, &m, 0, MiB);
    wait_check(&c, 10);
    assert_true(ts_iostream_write_buffer_size(F.ws) > 32 * MiB); /* the rest has not left yet */
    assert_int_equal(ftruncate(m.fd, 32 * MiB), 0);
    start_check(&c, &m, MiB, 0);
    wait_check(&c, 20);
    assert_int_equal(c.got, 31 * MiB);
    tu_rec_wait(&rec, 1);
    assert_int_equal(rec.status, -ENODATA);
    expect_closed_with(F.ws, -ENODATA);
    close(m.fd);
}

/* Closing with a file queued: its callback and the next write's fail in order; its fd goes with the queue. */
static void test_close_with_file_queued(void **state)
{
    (void)state;
    tu_fx_pair(NULL);
    marked_file m = make_file(64 * MiB, NULL, 0);
    int fds_with_file = tu_count_fds();
    tu_rec rec[2] = {0};
    assert_int_equal(ts_iostream_write_file(F.ws, m.fd, 0, 64 * MiB, tu_rec_write, &rec[0]), 0);
    assert_int_equal(ts_iostream_write(F.ws, "x", 1, tu_rec_write, &rec[1]), 0);
    close(m.fd);
    tu_run_for(F.loop, 0.05); /* the kernel's buffers fill; nothing reads */
    assert_int_equal(rec[0].calls, 0);
    ts_iostream_close(F.ws, 0);
    tu_rec_wait(&rec[1], 1);
    assert_int_equal(rec[0].calls, 1);
    assert_int_equal(rec[0].status, TS_ECLOSED);
    assert_int_equal(rec[1].status, TS_ECLOSED);
    assert_true(rec[1].order > rec[0].order);
    assert_int_equal(tu_count_fds(), fds_with_file - 2); /* our fd and the stream's own; its duplicate of ours went with the queue */
}

/* max_write_buffer_size counts file regions: too large a region is refused, the stream stays open. */
static void test_max_write_buffer(void **state)
{
    (void)state;
    ts_iostream_options o = tu_opts(0, 0, MiB);
    tu_fx_pair(&o);
    uint64_t at[] = {512 * 1024 - 30};
    marked_file m = make_file(4 * MiB, at, 1);
    assert_int_equal(ts_iostream_write_file(F.ws, m.fd, 0, 2 * MiB, NULL, NULL), TS_EBUFFERFULL);
    assert_int_equal(ts_iostream_write_file(F.ws, m.fd, 0, TS_WRITE_FILE_TO_END, NULL, NULL), TS_EBUFFERFULL);
    assert_false(ts_iostream_closed(F.ws));
    assert_int_equal(ts_iostream_write_buffer_size(F.ws), 0);
    tu_rec rec = {0};
    assert_int_equal(ts_iostream_write_file(F.ws, m.fd, 0, 512 * 1024, tu_rec_write, &rec), 0);
    assert_int_equal(ts_iostream_write_buffer_size(F.ws), 512 * 1024);
    static char big[600 * 1024];
    assert_int_equal(ts_iostream_write(F.ws, big, sizeof big, NULL, NULL), TS_EBUFFERFULL);
    assert_int_equal(ts_iostream_write_file(F.ws, m.fd, 0, 512 * 1024 + 1, NULL, NULL), TS_EBUFFERFULL);
    checker c;
    start_check(&c, &m, 0, 512 * 1024);
    wait_check(&c, 10);
    tu_rec_wait(&rec, 1);
    assert_int_equal(rec.status, 0);
    close(m.fd);
}

/* Arguments refused before anything is queued; the stream stays usable. */
static void test_refused_arguments(void **state)
{
    (void)state;
    tu_fx_pair(NULL);
    marked_file m = make_file(1000, NULL, 0);
    int p[2];
    assert_int_equal(pipe(p), 0);
    assert_int_equal(ts_iostream_write_file(F.ws, -1, 0, 1, NULL, NULL), TS_EINVAL);
    assert_int_equal(ts_iostream_write_file(F.ws, p[0], 0, 1, NULL, NULL), TS_EINVAL);
    assert_int_equal(ts_iostream_write_file(F.ws, m.fd, 0, 1001, NULL, NULL), -ENODATA);
    assert_int_equal(ts_iostream_write_file(F.ws, m.fd, 1001, TS_WRITE_FILE_TO_END, NULL, NULL), -ENODATA);
    assert_int_equal(ts_iostream_write_file(F.ws, m.fd, UINT64_MAX, 2, NULL, NULL), -ENODATA);
    assert_int_equal(ts_iostream_write_buffer_size(F.ws), 0);
    assert_false(ts_iostream_closed(F.ws));
    tu_await_ok(ts_iostream_write_file_future(F.ws, m.fd, 1000, TS_WRITE_FILE_TO_END)); /* empty, at the end */
    tu_await_ok(ts_iostream_write_file_future(F.ws, m.fd, 990, 10));
    tu_expect_read(ts_iostream_read_bytes_future(F.rs, 10, false), zeros, 10);
    ts_iostream_close(F.ws, 0);
    assert_int_equal(ts_iostream_write_file(F.ws, m.fd, 0, 1, NULL, NULL), TS_ECLOSED);
    assert_int_equal(ts_iostream_write_file(F.ws, -1, 0, 1, NULL, NULL), TS_ECLOSED);
    close(p[0]);
    close(p[1]);
    close(m.fd);
}

/* The reader is gone: sendfile's EPIPE closes the stream with an error and raises no SIGPIPE. */
static void test_peer_gone(void **state)
{
    (void)state;
    tu_fx_pair(NULL);
    struct sigaction dfl = {.sa_handler = SIG_DFL}, old;
    sigemptyset(&dfl.sa_mask);
    sigaction(SIGPIPE, &dfl, &old); /* a stray SIGPIPE kills the test */
    marked_file m = make_file(16 * MiB, NULL, 0);
    ts_iostream_close(F.rs, 0);
    tu_rec rec = {0};
    assert_int_equal(ts_iostream_write_file(F.ws, m.fd, 0, 16 * MiB, tu_rec_write, &rec), 0);
    tu_rec_wait(&rec, 1);
    assert_true(rec.status < 0);
    assert_true(ts_iostream_error(F.ws) < 0);
    sigaction(SIGPIPE, &old, NULL);
    close(m.fd);
}

#define WRITE_FILE_TESTS(X)          \
    X(test_order)                    \
    X(test_large_sparse)             \
    X(test_shrunk_before_send)       \
    X(test_shrinks_while_sending)    \
    X(test_close_with_file_queued)   \
    X(test_max_write_buffer)         \
    X(test_refused_arguments)        \
    X(test_peer_gone)

int main(void)
{
#define VARIANT(t) cmocka_unit_test(t),
#define USER(t) {"user/" #t, t, tu_fx_setup, tu_fx_teardown, (void *)&user_kind},
#define USER_SF(t) {"user-sendfile/" #t, t, tu_fx_setup, tu_fx_teardown, (void *)&user_sf_kind},
    const struct CMUnitTest tests[] = {WRITE_FILE_TESTS(VARIANT)};
    const struct CMUnitTest user_tests[] = {WRITE_FILE_TESTS(USER)};
    const struct CMUnitTest user_sf_tests[] = {WRITE_FILE_TESTS(USER_SF)};
    int failed = tu_run_variants("write_file", tests, sizeof tests / sizeof tests[0]);
    failed += cmocka_run_group_tests_name("write_file_user", user_tests, NULL, NULL);
    failed += cmocka_run_group_tests_name("write_file_user_sendfile", user_sf_tests, NULL, NULL);
    return failed;
}
