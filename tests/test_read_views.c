/*
 * Echoes of a read callback's view, and the loop's read block kept between
 * runs:
 * - a write of the bytes a read callback was handed is queued by reference:
 *   the transport is handed the very memory it read into, and consecutive
 *   lines go out as one iovec entry;
 * - such references survive everything that moves the read buffer's memory
 *   (compaction, settling into a block of the stream's own, lending) while
 *   the transport will not take them: they are copied first, in order with
 *   the copied writes around them;
 * - a stream holding part of a large message keeps the loop's read block
 *   between runs (no allocation while the message arrives in pieces), and
 *   gives it up when another stream needs it and none is free, losing
 *   nothing.
 *
 * The transport is a socketpair driven with recv/writev that records what
 * the core hands it.
 */
#include "iostream_int.h"
#include "testutil.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

typedef struct vtr {
    int fd;
    bool writes_blocked;
    size_t read_max; /* most bytes one read returns (0: no limit) */
    const char *read_lo, *read_hi; /* every byte range read_from_fd was handed */
    int writes, iovs_from_read_memory, iov_entries;
} vtr;

static int v_fileno(void *t) { return ((vtr *)t)->fd; }

static ssize_t v_read(void *t, void *buf, size_t len)
{
    vtr *v = t;
    if (v->read_max && len > v->read_max)
        len = v->read_max;
    ssize_t r = recv(v->fd, buf, len, 0);
    if (r < 0)
        return errno == EAGAIN ? TS_EAGAIN : -errno;
    const char *lo = buf, *hi = (const char *)buf + len;
    if (!v->read_lo || lo < v->read_lo)
        v->read_lo = lo;
    if (hi > v->read_hi)
        v->read_hi = hi;
    return r;
}

static ssize_t v_write(void *t, const struct iovec *iov, int cnt)
{
    vtr *v = t;
    if (v->writes_blocked)
        return TS_EAGAIN;
    v->writes++;
    v->iov_entries += cnt;
    for (int i = 0; i < cnt; i++) {
        const char *p = iov[i].iov_base;
        if (v->read_lo && p >= v->read_lo && p + iov[i].iov_len <= v->read_hi)
            v->iovs_from_read_memory++;
    }
    ssize_t r = writev(v->fd, iov, cnt);
    if (r < 0)
        return errno == EAGAIN ? TS_EAGAIN : -errno;
    return r;
}

static void v_close(void *t)
{
    vtr *v = t;
    if (v->fd >= 0)
        close(v->fd);
    v->fd = -1;
}

static const ts_stream_ops VOPS = {
    .size = sizeof(ts_stream_ops),
    .name = "views",
    .fileno = v_fileno,
    .read_from_fd = v_read,
    .write_to_fd = v_write,
    .close_fd = v_close,
    .flags = TS_STREAM_OPS_SHORT_READ_DRAINED,
};

/* The same transport without the drained flag: it reads on after a short read, as TLS does. */
static const ts_stream_ops VOPS_READ_ON = {
    .size = sizeof(ts_stream_ops),
    .name = "views-read-on",
    .fileno = v_fileno,
    .read_from_fd = v_read,
    .write_to_fd = v_write,
    .close_fd = v_close,
};

static ts_iostream *view_stream_ops(ts_ioloop *loop, vtr *v, int *peer, const ts_stream_ops *ops);

/* A stream over a user transport on one end of a new socketpair; *peer is the other end (non-blocking). */
static ts_iostream *view_stream(ts_ioloop *loop, vtr *v, int *peer) { return view_stream_ops(loop, v, peer, &VOPS); }

static ts_iostream *view_stream_ops(ts_ioloop *loop, vtr *v, int *peer, const ts_stream_ops *ops)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    tu_set_nonblock(sv[0]);
    tu_set_nonblock(sv[1]);
    *v = (vtr){.fd = sv[0]};
    *peer = sv[1];
    ts_iostream *s = ts_iostream_new(loop, ops, v, NULL);
    assert_non_null(s);
    return s;
}

static void send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        assert_true(w > 0);
        p += w;
        n -= (size_t)w;
    }
}

/* Reads exactly @p n bytes from the non-blocking @p fd into @p out, running the loop meanwhile. */
static void recv_exactly(ts_ioloop *loop, int fd, char *out, size_t n)
{
    size_t got = 0;
    for (int i = 0; i < 20000 && got < n; i++) {
        ssize_t r = recv(fd, out + got, n - got, MSG_DONTWAIT);
        if (r > 0)
            got += (size_t)r;
        else
            tu_run_iterations(loop, 1);
    }
    assert_int_equal(got, n);
}

/* Runs the loop until *@p calls is nonzero, for at most @p rounds iterations. */
static void run_until_called(ts_ioloop *loop, const int *calls, int rounds)
{
    for (int i = 0; i < rounds && *calls == 0; i++)
        tu_run_iterations(loop, 1);
}

/* ---- echo of the view --------------------------------------------------- */

typedef struct echo {
    int lines;
    bool prefix; /* write "> " (copied) before each echoed line */
} echo;

static void on_echo_line(ts_iostream *s, int status, const char *data, size_t len, void *arg);

static void read_line(ts_iostream *s, echo *e)
{
    assert_int_equal(ts_iostream_read_until(s, "\n", 1, 0, on_echo_line, e), 0);
}

static void on_echo_line(ts_iostream *s, int status, const char *data, size_t len, void *arg)
{
    echo *e = arg;
    if (status != 0)
        return;
    e->lines++;
    if (e->prefix)
        assert_int_equal(ts_iostream_write(s, "> ", 2, NULL, NULL), 0);
    assert_int_equal(ts_iostream_write(s, data, len, NULL, NULL), 0);
    read_line(s, e);
}

static void make_lines(char *buf, int n, int len)
{
    for (int i = 0; i < n; i++) {
        memset(buf + i * len, 'a' + i % 26, (size_t)len - 1);
        buf[i * len + len - 1] = '\n';
    }
}

/* Sixteen lines arriving at once are echoed from the memory they were read into, in one iovec entry. */
static void test_echo_goes_out_from_read_memory(void **state)
{
    (void)state;
    ts_ioloop *loop = tu_loop_new(30);
    vtr v;
    int peer;
    ts_iostream *s = view_stream(loop, &v, &peer);
    echo e = {0};
    read_line(s, &e);
    char batch[16 * 64], back[sizeof batch];
    make_lines(batch, 16, 64);
    for (int round = 0; round < 10; round++) {
        int writes = v.writes, from_read = v.iovs_from_read_memory, entries = v.iov_entries;
        send_all(peer, batch, sizeof batch);
        recv_exactly(loop, peer, back, sizeof back);
        assert_memory_equal(back, batch, sizeof batch);
        assert_int_equal(v.writes - writes, 1);
        assert_int_equal(v.iov_entries - entries, 1);
        assert_int_equal(v.iovs_from_read_memory - from_read, 1);
    }
    assert_int_equal(e.lines, 160);
    ts_iostream_free(s);
    close(peer);
    tu_loop_free(loop);
}

/*
 * While the transport takes nothing, echoed views wait in the queue across
 * runs: the read buffer settles (the loop's block goes back), later lines
 * are read and compacted, and the bytes still come out whole and in order,
 * the copied prefixes between them included.
 */
static void test_views_outlive_the_read_memory(void **state)
{
    (void)state;
    ts_ioloop *loop = tu_loop_new(30);
    vtr v;
    int peer;
    ts_iostream *s = view_stream(loop, &v, &peer);
    echo e = {.prefix = true};
    read_line(s, &e);
    v.writes_blocked = true;
    enum { LINES = 200, LEN = 333 };
    static char in[LINES * LEN];
    make_lines(in, LINES, LEN);
    /* In uneven pieces, a few iterations apart, so reads land at every offset of the blocks. */
    size_t sent = 0, piece = 1;
    while (sent < sizeof in) {
        size_t n = TS__MIN(piece, sizeof in - sent);
        send_all(peer, in + sent, n);
        sent += n;
        piece = piece * 7 % 9001 + 1;
        tu_run_iterations(loop, 2);
    }
    tu_run_iterations(loop, 5);
    assert_int_equal(e.lines, LINES);
    assert_int_equal(v.writes, 0);
    assert_int_equal(ts_iostream_write_buffer_size(s), sizeof in + 2 * LINES);
    v.writes_blocked = false;
    ts_iostream_write(s, "", 0, NULL, NULL); /* wake the writer */
    static char out[LINES * (LEN + 2)], want[LINES * (LEN + 2)];
    for (int i = 0; i < LINES; i++) {
        memcpy(want + i * (LEN + 2), "> ", 2);
        memcpy(want + i * (LEN + 2) + 2, in + i * LEN, LEN);
    }
    recv_exactly(loop, peer, out, sizeof out);
    assert_memory_equal(out, want, sizeof out);
    ts_iostream_free(s);
    close(peer);
    tu_loop_free(loop);
}

/*
 * A transport that reads on after a short read (TLS, a user transport)
 * hands over one line per read; the transport takes no writes. Each line is
 * consumed whole, so the buffer is empty before every read after the first:
 * the next read must not restart at the block's front, where the echoes
 * queued by reference still point.
 */
static void test_views_survive_reads_in_the_same_run(void **state)
{
    (void)state;
    ts_ioloop *loop = tu_loop_new(30);
    vtr v;
    int peer;
    ts_iostream *s = view_stream_ops(loop, &v, &peer, &VOPS_READ_ON);
    enum { LINES = 12, LEN = 100 };
    v.read_max = LEN;
    v.writes_blocked = true;
    echo e = {0};
    read_line(s, &e);
    static char in[LINES * LEN], out[LINES * LEN];
    make_lines(in, LINES, LEN);
    send_all(peer, in, sizeof in);
    for (int i = 0; i < 50 && e.lines < LINES; i++)
        tu_run_iterations(loop, 1);
    assert_int_equal(e.lines, LINES);
    assert_int_equal(ts_iostream_write_buffer_size(s), sizeof in);
    v.writes_blocked = false;
    ts_iostream_write(s, "", 0, NULL, NULL); /* wake the writer */
    recv_exactly(loop, peer, out, sizeof out);
    assert_memory_equal(out, in, sizeof out);
    ts_iostream_free(s);
    close(peer);
    tu_loop_free(loop);
}

/*
 * The same invariant at random: lines of 1 to 3,000 bytes (mostly short) arrive in random
 * pieces; each loop iteration the transport takes writes or refuses them and
 * reads at most a random number of bytes (mostly about a line), with and
 * without the drained flag.
 * Whatever the reads, compactions, settles and lends in between, the peer
 * gets every line back whole, prefixed, in order.
 */
static uint32_t xs(uint32_t *st)
{
    *st ^= *st << 13;
    *st ^= *st >> 17;
    *st ^= *st << 5;
    return *st;
}

static void echo_at_random(const ts_stream_ops *ops, uint32_t seed)
{
    ts_ioloop *loop = tu_loop_new(60);
    vtr v;
    int peer;
    ts_iostream *s = view_stream_ops(loop, &v, &peer, ops);
    echo e = {.prefix = true};
    read_line(s, &e);
    enum { LINES = 600, MAXLEN = 3000 };
    static char in[LINES * MAXLEN], want[LINES * (MAXLEN + 2)], out[LINES * (MAXLEN + 2)];
    size_t in_len = 0, want_len = 0, got = 0;
    for (int i = 0; i < LINES; i++) {
        size_t len = 1 + xs(&seed) % (i % 8 ? 300 : MAXLEN);
        memset(in + in_len, 'A' + i % 50, len - 1);
        in[in_len + len - 1] = '\n';
        memcpy(want + want_len, "> ", 2);
        memcpy(want + want_len + 2, in + in_len, len);
        in_len += len;
        want_len += len + 2;
    }
    size_t sent = 0;
    for (int it = 0; it < 200000 && got < want_len; it++) {
        if (sent < in_len) {
            size_t n = 1 + xs(&seed) % 9000;
            n = TS__MIN(n, in_len - sent);
            ssize_t w = send(peer, in + sent, n, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (w > 0)
                sent += (size_t)w;
        }
        bool last = sent == in_len && e.lines == LINES;
        v.writes_blocked = !last && xs(&seed) % 2;
        v.read_max = 1 + xs(&seed) % (xs(&seed) % 4 ? 400 : 70000);
        if (last)
            ts_iostream_write(s, "", 0, NULL, NULL); /* wake the writer */
        tu_run_iterations(loop, 1);
        ssize_t r = recv(peer, out + got, sizeof out - got, MSG_DONTWAIT);
        if (r > 0)
            got += (size_t)r;
    }
    assert_int_equal(e.lines, LINES);
    assert_int_equal(got, want_len);
    assert_memory_equal(out, want, want_len);
    ts_iostream_free(s);
    close(peer);
    tu_loop_free(loop);
}

static void test_views_survive_random_reads_and_refusals(void **state)
{
    (void)state;
    for (uint32_t seed = 1; seed <= 24; seed++) {
        echo_at_random(&VOPS_READ_ON, seed * 2654435761u);
        echo_at_random(&VOPS, seed * 2246822519u);
    }
}

/* A view written with a completion callback still completes once its bytes went out. */
static void on_written(ts_iostream *s, int status, void *arg)
{
    (void)s;
    assert_int_equal(status, 0);
    (*(int *)arg)++;
}

typedef struct cbecho {
    int lines, done;
} cbecho;

static void on_cb_line(ts_iostream *s, int status, const char *data, size_t len, void *arg)
{
    cbecho *c = arg;
    if (status != 0)
        return;
    c->lines++;
    assert_int_equal(ts_iostream_write(s, data, len, on_written, &c->done), 0);
    assert_int_equal(ts_iostream_read_until(s, "\n", 1, 0, on_cb_line, c), 0);
}

static void test_view_write_callbacks_complete(void **state)
{
    (void)state;
    ts_ioloop *loop = tu_loop_new(30);
    vtr v;
    int peer;
    ts_iostream *s = view_stream(loop, &v, &peer);
    cbecho c = {0};
    assert_int_equal(ts_iostream_read_until(s, "\n", 1, 0, on_cb_line, &c), 0);
    char batch[8 * 100], back[sizeof batch];
    make_lines(batch, 8, 100);
    send_all(peer, batch, sizeof batch);
    recv_exactly(loop, peer, back, sizeof back);
    assert_memory_equal(back, batch, sizeof batch);
    for (int i = 0; i < 100 && c.done < 8; i++)
        tu_run_iterations(loop, 1);
    assert_int_equal(c.lines, 8);
    assert_int_equal(c.done, 8);
    assert_true(v.iovs_from_read_memory >= 1);
    ts_iostream_free(s);
    close(peer);
    tu_loop_free(loop);
}

/* ---- the loop's block kept between runs --------------------------------- */

typedef struct big {
    int calls, status;
    size_t len;
    char first, last;
} big;

static void on_big(ts_iostream *s, int status, const char *data, size_t len, void *arg)
{
    (void)s;
    big *b = arg;
    b->calls++;
    b->status = status;
    b->len = len;
    if (status == 0 && len) {
        b->first = data[0];
        b->last = data[len - 2];
        for (size_t i = 0; i + 1 < len; i++)
            if (data[i] != b->first) {
                b->first = '?';
                break;
            }
    }
}

/* A 120 KiB line arriving in 4 KiB pieces, a run each, allocates nothing once the loop's block exists. */
static void test_large_message_in_pieces_allocates_nothing(void **state)
{
    (void)state;
    ts_ioloop *loop = tu_loop_new(30);
    vtr v;
    int peer;
    ts_iostream *s = view_stream(loop, &v, &peer);
    static char line[120 * 1024];
    memset(line, 'q', sizeof line - 1);
    line[sizeof line - 1] = '\n';
    big b = {0};
    /* warm up: the loop's block comes into being */
    assert_int_equal(ts_iostream_read_until(s, "\n", 1, 0, on_big, &b), 0);
    send_all(peer, "w\n", 2);
    run_until_called(loop, &b.calls, 50);
    assert_int_equal(b.calls, 1);
    b = (big){0};
    assert_int_equal(ts_iostream_read_until(s, "\n", 1, 0, on_big, &b), 0);
    tu_use_counting_allocator();
    for (size_t off = 0; off < sizeof line; off += 4096) {
        send_all(peer, line + off, TS__MIN((size_t)4096, sizeof line - off));
        tu_run_iterations(loop, 2);
    }
    run_until_called(loop, &b.calls, 50);
    long allocs = tu_alloc_count();
    tu_restore_allocator();
    printf("allocations while a 120 KiB line arrived in 30 pieces: %ld\n", allocs);
    assert_int_equal(b.calls, 1);
    assert_int_equal(b.status, 0);
    assert_int_equal(b.len, sizeof line);
    assert_int_equal(b.first, 'q');
    assert_int_equal(allocs, 0);
    ts_iostream_free(s);
    close(peer);
    tu_loop_free(loop);
}

/*
 * More streams than the loop has read blocks each hold half a large line:
 * the last ones to arrive take blocks back from streams resting with them
 * (whose bytes move to blocks of their own). Every line completes intact.
 */
static void test_kept_blocks_are_given_to_other_streams(void **state)
{
    (void)state;
    enum { N = TS__LOOP_RDBUFS + 2, LEN = 100 * 1024 };
    ts_ioloop *loop = tu_loop_new(30);
    vtr v[N];
    int peer[N];
    ts_iostream *s[N];
    big r[N];
    static char line[N][LEN];
    for (int i = 0; i < N; i++) {
        s[i] = view_stream(loop, &v[i], &peer[i]);
        memset(line[i], 'A' + i, LEN - 1);
        line[i][LEN - 1] = '\n';
        r[i] = (big){0};
        assert_int_equal(ts_iostream_read_until(s[i], "\n", 1, 0, on_big, &r[i]), 0);
    }
    for (int i = 0; i < N; i++) {
        send_all(peer[i], line[i], LEN / 2 + 1000 * (size_t)i);
        tu_run_iterations(loop, 3);
    }
    for (int i = N - 1; i >= 0; i--) {
        send_all(peer[i], line[i] + LEN / 2 + 1000 * (size_t)i, LEN / 2 - 1000 * (size_t)i);
        tu_run_iterations(loop, 2);
    }
    for (int k = 0; k < 100; k++)
        tu_run_iterations(loop, 1);
    for (int i = 0; i < N; i++) {
        assert_int_equal(r[i].calls, 1);
        assert_int_equal(r[i].status, 0);
        assert_int_equal(r[i].len, LEN);
        assert_int_equal(r[i].first, 'A' + i);
        ts_iostream_free(s[i]);
        close(peer[i]);
    }
    tu_loop_free(loop);
}

/*
 * As many streams as the loop has read blocks each keep one between runs
 * while a line arrives in pieces: every read of a stream lands in the block
 * it first borrowed, and no two streams share one. One more stream reading
 * meanwhile takes a block back from one of them; every line completes intact.
 */
static void test_kept_blocks_stay_with_their_keepers(void **state)
{
    (void)state;
    enum { N = TS__LOOP_RDBUFS, PIECE = 8 * 1024, PIECES = 3, LEN = PIECE * (PIECES + 1) };
    ts_ioloop *loop = tu_loop_new(30);
    vtr v[N + 1];
    int peer[N + 1];
    ts_iostream *s[N + 1];
    big r[N + 1];
    static char line[N][LEN];
    for (int i = 0; i <= N; i++) {
        s[i] = view_stream(loop, &v[i], &peer[i]);
        r[i] = (big){0};
        assert_int_equal(ts_iostream_read_until(s[i], "\n", 1, 0, on_big, &r[i]), 0);
    }
    for (int i = 0; i < N; i++) {
        memset(line[i], 'a' + i, LEN - 1);
        line[i][LEN - 1] = '\n';
    }
    for (int p = 0; p < PIECES; p++)
        for (int i = 0; i < N; i++) {
            send_all(peer[i], line[i] + p * PIECE, PIECE);
            tu_run_iterations(loop, 2);
        }
    for (int i = 0; i < N; i++) {
        assert_int_equal(r[i].calls, 0);
        assert_non_null(v[i].read_lo);
        assert_true(v[i].read_hi - v[i].read_lo <= (ptrdiff_t)TS__LOOP_RDBUF);
        for (int j = 0; j < i; j++)
            assert_true(v[i].read_hi <= v[j].read_lo || v[j].read_hi <= v[i].read_lo);
    }
    send_all(peer[N], "x\n", 2);
    run_until_called(loop, &r[N].calls, 50);
    assert_int_equal(r[N].calls, 1);
    assert_int_equal(r[N].len, 2);
    for (int i = 0; i < N; i++)
        send_all(peer[i], line[i] + PIECES * PIECE, LEN - PIECES * PIECE);
    for (int i = 0; i < N; i++) {
        run_until_called(loop, &r[i].calls, 50);
        assert_int_equal(r[i].calls, 1);
        assert_int_equal(r[i].status, 0);
        assert_int_equal(r[i].len, LEN);
        assert_int_equal(r[i].first, 'a' + i);
    }
    for (int i = 0; i <= N; i++) {
        ts_iostream_free(s[i]);
        close(peer[i]);
    }
    tu_loop_free(loop);
}

/* A stream freed (and its loop after it) while it keeps the loop's block: no leak, no use after free. */
static void test_stream_freed_while_keeping_block(void **state)
{
    (void)state;
    ts_ioloop *loop = tu_loop_new(30);
    vtr v, w;
    int peer, peer2;
    ts_iostream *s = view_stream(loop, &v, &peer);
    ts_iostream *t = view_stream(loop, &w, &peer2);
    big r = {0}, r2 = {0};
    assert_int_equal(ts_iostream_read_until(s, "\n", 1, 0, on_big, &r), 0);
    static char part[20 * 1024];
    memset(part, 'z', sizeof part);
    send_all(peer, part, sizeof part);
    tu_run_iterations(loop, 3);
    ts_iostream_free(s);
    tu_run_iterations(loop, 3);
    /* the block went back with the stream: another one reads through it */
    assert_int_equal(ts_iostream_read_until(t, "\n", 1, 0, on_big, &r2), 0);
    send_all(peer2, "hello\n", 6);
    run_until_called(loop, &r2.calls, 50);
    assert_int_equal(r2.calls, 1);
    assert_int_equal(r2.len, 6);
    assert_int_equal(r.calls, 1); /* the freed stream's read failed */
    assert_true(r.status < 0);
    ts_iostream_free(t);
    close(peer);
    close(peer2);
    tu_loop_free(loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_echo_goes_out_from_read_memory),
        cmocka_unit_test(test_views_outlive_the_read_memory),
        cmocka_unit_test(test_views_survive_reads_in_the_same_run),
        cmocka_unit_test(test_views_survive_random_reads_and_refusals),
        cmocka_unit_test(test_view_write_callbacks_complete),
        cmocka_unit_test(test_large_message_in_pieces_allocates_nothing),
        cmocka_unit_test(test_kept_blocks_are_given_to_other_streams),
        cmocka_unit_test(test_stream_freed_while_keeping_block),
        cmocka_unit_test(test_kept_blocks_stay_with_their_keepers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
