/*
 * What reading costs in memory, counted through the allocation hooks:
 * - a slow client holding an unfinished request head keeps a block sized to
 *   the bytes it buffered, not a read chunk (slowloris);
 * - a peer that never sends the delimiter grows the buffer to the read's
 *   max_bytes plus one read chunk at most, not to the next doubling;
 * - a steady line echo (reads that complete, small replies written from the
 *   callbacks) allocates nothing per line once warm;
 * - an idle echo connection is one block (its loop fd handler lives in the
 *   stream), holding no more than that block;
 * - a stream that outlives its loop frees cleanly, its fd closed once.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "iostream_int.h"
#include "testutil.h"
#include "tstream.h"

static void raise_nofile(rlim_t want)
{
    struct rlimit rl;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
    if (rl.rlim_cur < want) {
        rl.rlim_cur = rl.rlim_max < want ? rl.rlim_max : want;
        assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
    }
}

typedef struct head_rec {
    int calls, bad;
} head_rec;

static void on_head(ts_iostream *s, int status, const char *data, size_t len, void *arg)
{
    (void)s;
    head_rec *r = arg;
    r->calls++;
    /* every client sends the same 31-byte head */
    if (status != 0 || len != 31 || memcmp(data, "GET /slow HTTP/1.1\r\nHost: x", 27) != 0)
        r->bad++;
}

static void send_all(int fd, const char *p, size_t n)
{
    assert_int_equal(send(fd, p, n, MSG_NOSIGNAL), (ssize_t)n);
}

/* 26 buffered bytes of an unfinished head (25, then 1 more) cost about their size class, per stream. */
static void test_slow_clients_keep_what_they_buffer(void **state)
{
    (void)state;
    enum { N = 400 };
    raise_nofile(2 * N + 64);
    int fds_before = tu_count_fds();
    ts_ioloop *loop = tu_loop_new(30);
    static int peer[N];
    static ts_iostream *srv[N];
    head_rec rec = {0};
    for (int i = 0; i < N; i++) {
        int sv[2];
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        peer[i] = sv[1];
        srv[i] = ts_iostream_new_socket(loop, sv[0], NULL);
        assert_non_null(srv[i]);
        assert_int_equal(ts_iostream_read_until(srv[i], "\r\n\r\n", 4, 8192, on_head, &rec), 0);
    }
    tu_run_iterations(loop, 2);
    tu_use_byte_allocator();
    long base = tu_mem_mark();
    const char *head = "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n"; /* 31 bytes: 25 + 1 now, 5 at the end */
    for (int i = 0; i < N; i++)
        send_all(peer[i], head, 25);
    tu_run_for(loop, 0.05);
    for (int i = 0; i < N; i++)
        send_all(peer[i], head + 25, 1);
    tu_run_for(loop, 0.05);
    long per_stream = (tu_mem_live() - base) / N;
    printf("read memory per slow stream holding 26 bytes: %ld bytes\n", per_stream);
    assert_int_equal(rec.calls, 0);
    /* 64 is the size class of 26 bytes; the allocator's own rounding is allowed for. */
    assert_true(per_stream <= 96);
    for (int i = 0; i < N; i++)
        send_all(peer[i], head + 26, 5);
    tu_run_until_count(loop, &rec.calls, N, 10);
    assert_int_equal(rec.bad, 0);
    tu_restore_allocator();
    for (int i = 0; i < N; i++) {
        ts_iostream_free(srv[i]);
        close(peer[i]);
    }
    tu_loop_free(loop);
    assert_int_equal(tu_count_fds(), fds_before);
}

/* A stream over one end of a new socketpair; sv[1], the peer's end, is non-blocking. */
static ts_iostream *socket_stream(ts_ioloop *loop, int sv[2])
{
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    tu_set_nonblock(sv[1]);
    ts_iostream *s = ts_iostream_new_socket(loop, sv[0], NULL);
    assert_non_null(s);
    return s;
}

typedef struct fail_rec {
    int calls, status;
} fail_rec;

static void on_fail(ts_iostream *s, int status, const char *data, size_t len, void *arg)
{
    (void)s, (void)data, (void)len;
    fail_rec *r = arg;
    r->calls++;
    r->status = status;
}

/* No delimiter within max_bytes: the read fails, and the buffer never passed max_bytes plus one chunk. */
static void test_undelimited_flood_stays_under_max_bytes(void **state)
{
    (void)state;
    int fds_before = tu_count_fds();
    ts_ioloop *loop = tu_loop_new(30);
    int sv[2];
    ts_iostream *s = socket_stream(loop, sv);
    const size_t max_bytes = 1u << 20;
    fail_rec r = {0};
    tu_use_byte_allocator();
    long base = tu_mem_mark();
    assert_int_equal(ts_iostream_read_until(s, "\n", 1, max_bytes, on_fail, &r), 0);
    static char junk[64 * 1024];
    memset(junk, 'x', sizeof junk);
    /* One byte first, so the chunks that follow do not land on the limit exactly. */
    send_all(sv[1], junk, 1);
    tu_run_iterations(loop, 2);
    size_t sent = 1;
    for (int i = 0; i < 20000 && r.calls == 0 && sent < (4u << 20); i++) {
        ssize_t w = send(sv[1], junk, sizeof junk, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w > 0)
            sent += (size_t)w;
        else
            assert_true(errno == EAGAIN || errno == EPIPE || errno == ECONNRESET);
        tu_run_iterations(loop, 1);
    }
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.status, TS_EUNSATISFIABLE);
    long peak = tu_mem_peak_over(base);
    printf("peak read memory for max_bytes %zu: %ld bytes (%zu sent)\n", max_bytes, peak, sent);
    /* max_bytes + one 64 KiB chunk, plus the loop's shared 256 KiB block and slack for small blocks */
    assert_true(peak <= (long)(max_bytes + (64u << 10) + (256u << 10) + (16u << 10)));
    tu_restore_allocator();
    ts_iostream_free(s);
    close(sv[1]);
    tu_loop_free(loop);
    assert_int_equal(tu_count_fds(), fds_before);
}

typedef struct big_lines {
    int calls, bad;
    size_t lens[2];
} big_lines;

static void on_big_line(ts_iostream *s, int status, const char *data, size_t len, void *arg)
{
    big_lines *b = arg;
    if (status != 0 || b->calls >= 2) {
        b->bad++;
        return;
    }
    char want = b->calls == 0 ? 'a' : 'b';
    for (size_t i = 0; i + 1 < len; i++)
        if (data[i] != want) {
            b->bad++;
            break;
        }
    b->lens[b->calls++] = len;
    if (b->calls == 1) /* the limit caps the block's growth for the rest of this line */
        assert_int_equal(ts_iostream_read_until(s, "\n", 1, 500u << 10, on_big_line, b), 0);
}

/* A transport that hands the core as many scripted bytes as it asks for (its fd never becomes readable). */
typedef struct script {
    int fd;
    const char *p;
    size_t left;
} script;

static int sc_fileno(void *t) { return ((script *)t)->fd; }

static ssize_t sc_read(void *t, void *buf, size_t len)
{
    script *sc = t;
    if (sc->left == 0)
        return TS_EAGAIN;
    size_t n = len < sc->left ? len : sc->left;
    memcpy(buf, sc->p, n);
    sc->p += n;
    sc->left -= n;
    return (ssize_t)n;
}

static ssize_t sc_write(void *t, const struct iovec *iov, int cnt)
{
    (void)t, (void)iov, (void)cnt;
    return TS_EAGAIN;
}

static void sc_close(void *t)
{
    script *sc = t;
    if (sc->fd >= 0)
        close(sc->fd);
    sc->fd = -1;
}

static size_t sc_pending(void *t) { return ((script *)t)->left; }

/*
 * Reads of 1 MiB chunks (the stream never borrows the loop's block), each
 * answered in full: a line consumed from the front of the stream's own
 * block, then the next one, whose max_bytes caps the growth, growing that
 * block. Every read lands inside it.
 */
static void test_big_chunks_after_a_consumed_line(void **state)
{
    (void)state;
    static const ts_stream_ops ops = {.size = sizeof(ts_stream_ops),
                                      .name = "script",
                                      .fileno = sc_fileno,
                                      .read_from_fd = sc_read,
                                      .write_to_fd = sc_write,
                                      .close_fd = sc_close,
                                      .pending = sc_pending};
    enum { L1 = 600 * 1024, L2 = 450 * 1024, MORE = 1024 * 1024 };
    static char data[L1 + L2 + MORE]; /* (what follows the lines keeps every read answered in full) */
    memset(data, 'a', L1 - 1);
    data[L1 - 1] = '\n';
    memset(data + L1, 'b', L2 - 1);
    data[L1 + L2 - 1] = '\n';
    memset(data + L1 + L2, 'c', MORE);
    ts_ioloop *loop = tu_loop_new(30);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    script sc = {.fd = sv[0], .p = data, .left = sizeof data};
    ts_iostream_options o = {.size = sizeof o, .read_chunk_size = 1u << 20};
    ts_iostream *s = ts_iostream_new(loop, &ops, &sc, &o);
    assert_non_null(s);
    big_lines b = {0};
    assert_int_equal(ts_iostream_read_until(s, "\n", 1, 0, on_big_line, &b), 0);
    for (int i = 0; i < 1000 && b.calls < 2 && !b.bad; i++)
        tu_run_iterations(loop, 1);
    assert_int_equal(b.bad, 0);
    assert_int_equal(b.calls, 2);
    assert_int_equal(b.lens[0], L1);
    assert_int_equal(b.lens[1], L2);
    ts_iostream_free(s);
    close(sv[1]);
    tu_loop_free(loop);
}

static void on_line(ts_iostream *s, int status, const char *data, size_t len, void *arg);

static void start_line(ts_iostream *s, void *arg)
{
    assert_int_equal(ts_iostream_read_until(s, "\n", 1, 0, on_line, arg), 0);
}

static void on_line(ts_iostream *s, int status, const char *data, size_t len, void *arg)
{
    if (status != 0)
        return;
    assert_int_equal(ts_iostream_write(s, data, len, NULL, NULL), 0);
    (*(int *)arg)++;
    start_line(s, arg);
}

/* Reads back @p n bytes from the nonblocking @p fd, running the loop meanwhile. */
static void drain(ts_ioloop *loop, int fd, size_t n)
{
    char buf[4096];
    for (int i = 0; i < 10000 && n > 0; i++) {
        ssize_t r = recv(fd, buf, sizeof buf < n ? sizeof buf : n, MSG_DONTWAIT);
        if (r > 0)
            n -= (size_t)r;
        else
            tu_run_iterations(loop, 1);
    }
    assert_int_equal(n, 0);
}

/* Warm, a line echo allocates nothing: no read block per arrival, no write chunk per reply. */
static void test_steady_echo_allocates_nothing(void **state)
{
    (void)state;
    int fds_before = tu_count_fds();
    ts_ioloop *loop = tu_loop_new(30);
    int sv[2];
    ts_iostream *s = socket_stream(loop, sv);
    int lines = 0;
    start_line(s, &lines);
    char batch[16 * 64];
    for (int i = 0; i < 16; i++) {
        memset(batch + i * 64, 'a' + i, 63);
        batch[i * 64 + 63] = '\n';
    }
    for (int round = 0; round < 3; round++) { /* warm up: the loop's blocks come into being */
        send_all(sv[1], batch, sizeof batch);
        drain(loop, sv[1], sizeof batch);
    }
    tu_use_counting_allocator();
    for (int round = 0; round < 100; round++) {
        send_all(sv[1], batch, sizeof batch);
        drain(loop, sv[1], sizeof batch);
    }
    long allocs = tu_alloc_count();
    tu_restore_allocator();
    printf("allocations in 100 rounds of 16 echoed lines: %ld\n", allocs);
    assert_int_equal(lines, 103 * 16);
    assert_int_equal(allocs, 0);
    ts_iostream_free(s);
    close(sv[1]);
    tu_loop_free(loop);
    assert_int_equal(tu_count_fds(), fds_before);
}

static void count_close(ts_iostream *s, void *arg)
{
    (void)s;
    (*(int *)arg)++;
}

/* An idle stream watched by the loop is one allocation: the fd handler is inside it. */
static void test_idle_stream_is_one_allocation(void **state)
{
    (void)state;
    int fds_before = tu_count_fds();
    ts_ioloop *loop = tu_loop_new(30);
    int lines = 0, closes = 0;
    /* a first stream makes the loop's fd table and blocks (its write chunk pool's included) */
    int warm[2];
    ts_iostream *w = socket_stream(loop, warm);
    start_line(w, &lines);
    tu_run_iterations(loop, 2);
    send_all(warm[1], "warm\n", 5);
    drain(loop, warm[1], 5);
    lines = 0;

    tu_use_counting_allocator();
    int sv[2];
    ts_iostream *s = socket_stream(loop, sv);
    start_line(s, &lines);
    ts_iostream_set_close_callback(s, count_close, &closes);
    tu_run_iterations(loop, 2);
    send_all(sv[1], "hello\n", 6);
    drain(loop, sv[1], 6);
    long allocs = tu_alloc_count();
    tu_restore_allocator();
    printf("allocations for an idle stream that echoed one line: %ld\n", allocs);
    assert_int_equal(lines, 1);
    assert_int_equal(allocs, 1);

    ts_iostream_free(s);
    ts_iostream_free(w);
    close(sv[1]);
    close(warm[1]);
    tu_loop_free(loop);
    assert_int_equal(closes, 1);
    assert_int_equal(tu_count_fds(), fds_before);
}

/* Heap bytes per idle echo connection after one line: the stream's block, rounded by malloc, and nothing else. */
static void test_idle_echo_heap_bytes(void **state)
{
    (void)state;
    enum { N = 200 };
    raise_nofile(2 * N + 64);
    int fds_before = tu_count_fds();
    ts_ioloop *loop = tu_loop_new(30);
    static int peer[N];
    static ts_iostream *srv[N];
    int lines = 0, closes = 0;
    /* the loop's fd table reaches past every fd the test opens before counting starts */
    {
        int warm[2];
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, warm), 0);
        tu_set_nonblock(warm[1]);
        int hi = fcntl(warm[0], F_DUPFD_CLOEXEC, 2 * N + 40);
        assert_true(hi >= 2 * N + 40);
        close(warm[0]);
        ts_iostream *w = ts_iostream_new_socket(loop, hi, NULL);
        assert_non_null(w);
        start_line(w, &lines);
        tu_run_iterations(loop, 2);
        send_all(warm[1], "warm\n", 5);
        drain(loop, warm[1], 5);
        lines = 0;
        ts_iostream_free(w);
        close(warm[1]);
    }
    tu_run_iterations(loop, 2);
    tu_use_byte_allocator();
    long base = tu_mem_mark();
    for (int i = 0; i < N; i++) {
        int sv[2];
        srv[i] = socket_stream(loop, sv);
        peer[i] = sv[1];
        start_line(srv[i], &lines);
        ts_iostream_set_close_callback(srv[i], count_close, &closes);
    }
    tu_run_iterations(loop, 2);
    for (int i = 0; i < N; i++)
        send_all(peer[i], "ping\n", 5);
    for (int i = 0; i < N; i++)
        drain(loop, peer[i], 5);
    long per_stream = (tu_mem_live() - base) / N;
    tu_restore_allocator();
    size_t block = ts__iostream_transport_offset() + sizeof(int);
    printf("sizeof(struct ts_iostream): %zu; heap bytes per idle echo stream: %ld\n", ts__iostream_struct_size(),
           per_stream);
    assert_int_equal(lines, N);
    /* one block: the struct and its inline socket transport (an int); no read buffer, no write queue */
    assert_true(per_stream <= (long)block);
    /* ... of at most 212 bytes: connect, handshake, shutdown, timeout and non-default size state live apart */
    assert_true(per_stream <= 212);
    for (int i = 0; i < N; i++) {
        ts_iostream_free(srv[i]);
        close(peer[i]);
    }
    tu_loop_free(loop);
    assert_int_equal(closes, N);
    assert_int_equal(tu_count_fds(), fds_before);
}

/*
 * A stream made with sizes other than the defaults keeps them in a small
 * side block of their own (not the whole one for connect, handshake and
 * timeout state); a call that needs the rest grows it, and the sizes stay.
 */
static void test_size_options_small_block(void **state)
{
    (void)state;
    int fds_before = tu_count_fds();
    ts_ioloop *loop = tu_loop_new(30);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    ts_iostream_options o = {.size = sizeof o, .max_buffer_size = 1u << 20, .read_chunk_size = 4096,
                             .max_write_buffer_size = 1u << 16};
    tu_use_byte_allocator();
    long base = tu_mem_live();
    ts_iostream *s = ts_iostream_new_socket(loop, sv[0], &o);
    assert_non_null(s);
    long made = tu_mem_live() - base;
    size_t block = ts__iostream_transport_offset() + sizeof(int);
    printf("a socket stream with its own sizes: %ld heap bytes (its block %zu)\n", made, block);
    assert_true(made > (long)block);      /* the sizes are kept apart */
    assert_true(made <= (long)block + 24); /* ... in three words, not the whole side block */
    /* timeouts need the rest: the block grows, the sizes stay */
    assert_int_equal(ts_iostream_set_timeouts(s, 30, 30), 0);
    assert_true(tu_mem_live() - base > (long)block + 64);
    tu_restore_allocator();
    ts_iostream_options got = {.size = sizeof got};
    ts__iostream_get_options(s, &got);
    assert_int_equal(got.max_buffer_size, 1u << 20);
    assert_int_equal(got.read_chunk_size, 4096);
    assert_int_equal(got.max_write_buffer_size, 1u << 16);
    /* and they still govern: a write past the write limit is refused */
    static char big[(1u << 16) + 1];
    assert_int_equal(ts_iostream_write(s, big, sizeof big, NULL, NULL), TS_EBUFFERFULL);
    ts_iostream_free(s);
    close(sv[1]);
    tu_loop_free(loop);
    assert_int_equal(tu_count_fds(), fds_before);
}

/* With reads and writes both waiting on the fd, the loop freed first: the stream stays valid, closed, and frees cleanly. */
static void test_stream_outlives_loop(void **state)
{
    (void)state;
    int fds_before = tu_count_fds();
    ts_ioloop *loop = tu_loop_new(30);
    int sv[2];
    ts_iostream *s = socket_stream(loop, sv);
    int lines = 0, closes = 0;
    start_line(s, &lines);
    ts_iostream_set_close_callback(s, count_close, &closes);
    /* more than the socket takes: the write side waits for the fd too */
    size_t big = 4u << 20;
    char *data = malloc(big);
    assert_non_null(data);
    memset(data, 'z', big);
    assert_int_equal(ts_iostream_write(s, data, big, NULL, NULL), 0);
    free(data);
    tu_run_for(loop, 0.05);
    assert_true(ts_iostream_write_buffer_size(s) > 0);
    tu_loop_forget(loop);
    ts_ioloop_free(loop, true);
    assert_int_equal(closes, 1);
    assert_true(ts_iostream_closed(s));
    assert_null(ts_iostream_loop(s));
    assert_int_equal(ts_iostream_fileno(s), -1);
    /* its fd was closed once, by the stream: the peer sees the end */
    static char sink[65536];
    ssize_t r;
    while ((r = recv(sv[1], sink, sizeof sink, 0)) > 0)
        ;
    assert_int_equal(r, 0);
    ts_iostream_free(s);
    close(sv[1]);
    assert_int_equal(tu_count_fds(), fds_before);
}

/* ---- connect, handshake-wait and shutdown state, allocated on first use ---- */

static void on_status(ts_iostream *s, int status, void *arg)
{
    (void)s;
    int *r = arg;
    r[0]++;
    r[1] = status;
}

/* Out of memory for its state, connect says TS_ENOMEM and starts nothing; with memory it connects. */
static void test_connect_state_enomem(void **state)
{
    (void)state;
    int fds_before = tu_count_fds();
    ts_ioloop *loop = tu_loop_new(30);
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(lfd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    assert_int_equal(bind(lfd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(lfd, 4), 0);
    assert_int_equal(getsockname(lfd, (struct sockaddr *)&a, &alen), 0);
    int cfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    assert_true(cfd >= 0);
    ts_iostream *c = ts_iostream_new_socket(loop, cfd, NULL);
    assert_non_null(c);
    int rec[2] = {0, 1};
    tu_use_counting_allocator();
    tu_fail_alloc_after(0);
    assert_int_equal(ts_iostream_connect(c, (struct sockaddr *)&a, alen, on_status, rec), TS_ENOMEM);
    tu_fail_alloc_after(-1);
    struct sockaddr_storage peer;
    socklen_t plen = sizeof peer;
    assert_int_equal(getpeername(cfd, (struct sockaddr *)&peer, &plen), -1); /* connect() was not called */
    assert_int_equal(errno, ENOTCONN);
    tu_run_iterations(loop, 2);
    assert_int_equal(rec[0], 0);
    assert_false(ts_iostream_closed(c));
    assert_int_equal(ts_iostream_connect(c, (struct sockaddr *)&a, alen, on_status, rec), 0);
    tu_run_until_count(loop, &rec[0], 1, 5);
    tu_restore_allocator();
    assert_int_equal(rec[1], 0);
    int sfd = accept(lfd, NULL, NULL);
    assert_true(sfd >= 0);
    ts_iostream_free(c);
    close(sfd);
    close(lfd);
    tu_loop_free(loop);
    assert_int_equal(tu_count_fds(), fds_before);
}

typedef int (*state_call)(ts_iostream *s, int *rec);

/*
 * @p call fails with TS_ENOMEM when the allocation of its state does, and no
 * callback follows; @p between (may be NULL) then checks that nothing changed;
 * the same call then succeeds and its callback gets 0. Leaves @p sv[1] open
 * for @p after (may be NULL).
 */
static void check_state_enomem(state_call call, void (*between)(ts_iostream *s), void (*after)(int peer))
{
    int fds_before = tu_count_fds();
    ts_ioloop *loop = tu_loop_new(30);
    int sv[2];
    ts_iostream *s = socket_stream(loop, sv);
    int rec[2] = {0, 1};
    tu_use_counting_allocator();
    tu_fail_alloc_after(0);
    assert_int_equal(call(s, rec), TS_ENOMEM);
    tu_fail_alloc_after(-1);
    tu_restore_allocator();
    if (between)
        between(s);
    tu_run_iterations(loop, 2);
    assert_int_equal(rec[0], 0);
    assert_int_equal(call(s, rec), 0);
    tu_run_until_count(loop, &rec[0], 1, 5);
    assert_int_equal(rec[1], 0);
    if (after)
        after(sv[1]);
    ts_iostream_free(s);
    close(sv[1]);
    tu_loop_free(loop);
    assert_int_equal(tu_count_fds(), fds_before);
}

static int call_shutdown(ts_iostream *s, int *rec) { return ts_iostream_shutdown(s, on_status, rec); }
static int call_wait_handshake(ts_iostream *s, int *rec) { return ts__iostream_wait_for_handshake(s, on_status, rec); }

static void write_two(ts_iostream *s) { assert_int_equal(ts_iostream_write(s, "ab", 2, NULL, NULL), 0); }

static void read_two_then_end(int peer)
{
    char buf[8];
    assert_int_equal(recv(peer, buf, sizeof buf, 0), 2);
    assert_int_equal(recv(peer, buf, sizeof buf, 0), 0); /* the write side's end */
}

/* Out of memory for its state, shutdown says TS_ENOMEM and the write side stays open; with memory it shuts. */
static void test_shutdown_state_enomem(void **state)
{
    (void)state;
    check_state_enomem(call_shutdown, write_two, read_two_then_end);
}

/* Out of memory for its state, a handshake wait says TS_ENOMEM; with memory it is answered (no handshake: 0). */
static void test_handshake_wait_state_enomem(void **state)
{
    (void)state;
    check_state_enomem(call_wait_handshake, NULL, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slow_clients_keep_what_they_buffer),
        cmocka_unit_test(test_undelimited_flood_stays_under_max_bytes),
        cmocka_unit_test(test_big_chunks_after_a_consumed_line),
        cmocka_unit_test(test_steady_echo_allocates_nothing),
        cmocka_unit_test(test_idle_stream_is_one_allocation),
        cmocka_unit_test(test_idle_echo_heap_bytes),
        cmocka_unit_test(test_stream_outlives_loop),
        cmocka_unit_test(test_size_options_small_block),
        cmocka_unit_test(test_connect_state_enomem),
        cmocka_unit_test(test_shutdown_state_enomem),
        cmocka_unit_test(test_handshake_wait_state_enomem),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
