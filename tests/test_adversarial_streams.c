/*
 * Adversarial streams (ctest label `adversarial`): peers that misbehave
 * against the public API, over loopback. The shared suite's fixture runs the
 * first group over every transport (tcp, unix, pipe, tls); the rest over
 * TCP. Each test bounds its time (the fixture's loop watchdog, and alarm()
 * outside the loop), and checks:
 *   - a clear error: the exact code the API documents;
 *   - no crash, no leak: ASan/LSan, and the library's live bytes, counted
 *     through ts_set_allocator(), back to where they started;
 *   - bounded memory: the peak of those bytes while the peer misbehaves;
 *   - no busy loop: loop iterations while nothing can progress;
 *   - fds back to the baseline (the fixture's teardown).
 * Each prints its figure ("# ...") for the record.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "net_helpers.h"
#include "stream_pairs.h"
#include "testutil.h"
#include "tls_streams.h"

/* ---- the fixture's end: every library byte back ------------------------------ */

/*
 * The fixture's streams and loop are freed, then every byte the library
 * allocated must be back (the loop keeps caches, so only its end can tell);
 * a fresh loop is left for the teardown. Returns the bytes still held.
 */
static long fx_release_all(void)
{
    ts_iostream_free(tu_F.rs), tu_F.rs = NULL;
    ts_iostream_free(tu_F.ws), tu_F.ws = NULL;
    tu_loop_free(tu_F.loop);
    long left = tu_mem_live();
    tu_F.loop = tu_loop_new(30);
    return left;
}

#define IDLE_MAX 40 /* iterations allowed in 0.3 s of waiting */

/* ---- a writer that floods until its stream fails ------------------------------- */

typedef struct flood {
    ts_iostream *s;
    char *chunk;
    size_t chunk_len;
    size_t sent, limit; /* limit 0: until the stream fails */
    int err;            /* 1 while running */
    bool close_at_limit;
} flood;

static void flood_more(ts_iostream *s, int status, void *arg)
{
    flood *f = arg;
    if (status != 0) {
        f->err = status;
        return;
    }
    if (f->limit && f->sent >= f->limit) {
        f->err = 0;
        if (f->close_at_limit)
            ts_iostream_close(s, 0);
        return;
    }
    int r = ts_iostream_write(s, f->chunk, f->chunk_len, flood_more, f);
    if (r != 0) {
        f->err = r;
        return;
    }
    f->sent += f->chunk_len;
}

static void flood_start(flood *f, ts_iostream *s, char byte, size_t limit)
{
    *f = (flood){.s = s, .chunk_len = 64 * 1024, .limit = limit, .err = 1};
    f->chunk = malloc(f->chunk_len);
    memset(f->chunk, byte, f->chunk_len);
    flood_more(s, 0, f);
}

static bool flood_over(void *arg) { return ((flood *)arg)->err != 1; }

/* ---- buffer limits under floods (every transport) -------------------------------- */

#define FLOOD_MAX_BUF (256 * 1024)
/*
 * What a reader may hold: its limit, one read chunk past it, and the
 * writer's two 64 KiB writes in flight; plus the loop's shared 256 KiB read
 * block, made on the loop's first read (once per loop, not per stream).
 */
#define FLOOD_MEM_BOUND (FLOOD_MAX_BUF + 64 * 1024 + 2 * 64 * 1024 + 64 * 1024 + 256 * 1024)

/*
 * A peer that floods: with no delimiter (read_until), or with more than
 * max_buffer_size before its close (read_until_close). TS_EBUFFERFULL at
 * the limit, memory bounded, the flooding side told, no spinning after.
 */
static void flood_case(bool until_close)
{
    alarm(60);
    ts_iostream_options o = tu_opts(FLOOD_MAX_BUF, 0, 0);
    tu_fx_pair(&o);
    long base = tu_mem_mark();
    flood f;
    flood_start(&f, tu_F.ws, 'a', until_close ? 4 * FLOOD_MAX_BUF : 0);
    f.close_at_limit = until_close;
    tu_rec r = {0};
    if (until_close)
        assert_int_equal(ts_iostream_read_until_close(tu_F.rs, tu_rec_read, &r), 0);
    else
        assert_int_equal(ts_iostream_read_until(tu_F.rs, "\n", 1, 0, tu_rec_read, &r), 0);
    tu_rec_wait(&r, 1);
    assert_int_equal(r.status, TS_EBUFFERFULL);
    assert_true(ts_iostream_closed(tu_F.rs));
    assert_int_equal(ts_iostream_error(tu_F.rs), TS_EBUFFERFULL);
    long peak = tu_mem_peak_over(base);
    /* The flooding side learns that its peer is gone (or finishes): a result, not a hang. */
    assert_true(tu_run_until(tu_F.loop, flood_over, &f, 10));
    assert_true(until_close || f.err < 0);
    long idle = tu_idle_iterations(tu_F.loop, 0.3);
    printf("# %s: %s: %zu KiB sent, TS_EBUFFERFULL at %d KiB, peak %ld KiB (bound %d), writer got %s, %ld idle "
           "iterations\n", tu_F.kind->name, until_close ? "read_until_close" : "no delimiter", f.sent / 1024,
           FLOOD_MAX_BUF / 1024, peak / 1024, FLOOD_MEM_BOUND / 1024, ts_err_name(f.err), idle);
    assert_true(peak <= FLOOD_MEM_BOUND);
    assert_true(idle <= IDLE_MAX);
    assert_int_equal(fx_release_all(), 0);
    free(f.chunk);
    tu_rec_free(&r);
    alarm(0);
}

static void test_flood_no_delimiter(void **state)
{
    (void)state;
    flood_case(false);
}

static void test_read_until_close_past_limit(void **state)
{
    (void)state;
    flood_case(true);
}

typedef struct wlog {
    int ok, failed, last_seq, bad_order;
    int fail_status;
} wlog;

typedef struct wcb {
    wlog *log;
    int seq;
} wcb;

static void on_logged_write(ts_iostream *s, int status, void *arg)
{
    (void)s;
    wcb *w = arg;
    if (w->seq <= w->log->last_seq || (status == 0 && w->log->failed))
        w->log->bad_order++;
    w->log->last_seq = w->seq;
    if (status == 0) {
        w->log->ok++;
    } else {
        if (w->log->failed && status != w->log->fail_status)
            w->log->bad_order++;
        w->log->failed++;
        w->log->fail_status = status;
    }
    free(w);
}

#define NEVER_READS_LIMIT (1024 * 1024)

/*
 * A peer that never reads: writes are refused with TS_EBUFFERFULL once
 * max_write_buffer_size is queued, the stream stays open and waits without
 * spinning; closing it fails what is still queued, once each, in order.
 */
static void test_peer_never_reads(void **state)
{
    (void)state;
    alarm(60);
    ts_iostream_options o = tu_opts(0, 0, NEVER_READS_LIMIT);
    tu_fx_pair(&o);
    long base = tu_mem_mark();
    static char chunk[64 * 1024];
    memset(chunk, 'c', sizeof chunk);
    wlog log = {0};
    int accepted = 0, refused = 0, r = 0;
    for (int i = 0; i < 100000 && refused < 3; i++) {
        wcb *w = malloc(sizeof *w);
        *w = (wcb){&log, accepted + 1};
        r = ts_iostream_write(tu_F.ws, chunk, sizeof chunk, on_logged_write, w);
        if (r == 0) {
            accepted++;
        } else {
            free(w);
            assert_int_equal(r, TS_EBUFFERFULL);
            refused++;
            tu_run_iterations(tu_F.loop, 3); /* let the kernel take what it still can */
        }
    }
    assert_int_equal(refused, 3);
    assert_false(ts_iostream_closed(tu_F.ws));
    assert_true(ts_iostream_write_buffer_size(tu_F.ws) <= NEVER_READS_LIMIT);
    long peak = tu_mem_peak_over(base);
    long idle = tu_idle_iterations(tu_F.loop, 0.3);
    int done_before = log.ok;
    ts_iostream_close(tu_F.ws, 0);
    tu_run_iterations(tu_F.loop, 5);
    printf("# %s: %d writes accepted (%d went out), peak %ld KiB (limit %d KiB), %ld idle iterations; close failed "
           "%d with %s\n", tu_F.kind->name, accepted, done_before, peak / 1024, NEVER_READS_LIMIT / 1024, idle,
           log.failed, ts_err_name(log.fail_status));
    assert_true(peak <= NEVER_READS_LIMIT + 2 * (long)sizeof chunk + 64 * 1024);
    assert_true(idle <= IDLE_MAX);
    assert_int_equal(log.ok + log.failed, accepted); /* every callback once */
    assert_int_equal(log.bad_order, 0);
    assert_true(log.failed > 0);
    assert_int_equal(log.fail_status, TS_ECLOSED);
    assert_int_equal(fx_release_all(), 0);
    alarm(0);
}

/* ---- search edge cases (every transport) ------------------------------------------- */

static void write_now(ts_iostream *s, const char *p, size_t n)
{
    tu_rec w = {0};
    assert_int_equal(ts_iostream_write(s, p, n, tu_rec_write, &w), 0);
    tu_rec_wait(&w, 1);
    assert_int_equal(w.status, 0);
}

/* A delimiter split across two arrivals at every offset, short and long delimiters alike. */
static void test_delimiter_split_everywhere(void **state)
{
    (void)state;
    alarm(120);
    tu_fx_pair(NULL);
    tu_mem_mark();
    static const char *const delims[] = {"\r\n\r\n", "<<0123456789abcdef-END>>", "aab"};
    int cases = 0;
    for (size_t d = 0; d < sizeof delims / sizeof delims[0]; d++) {
        char msg[256];
        /* The body holds near-misses of the delimiter, so resuming the search at the wrong place shows. */
        int n = snprintf(msg, sizeof msg, "head%.*s-aa-%s", (int)strlen(delims[d]) - 1, delims[d], delims[d]);
        for (int k = 1; k < n; k++) {
            tu_rec r = {0};
            assert_int_equal(ts_iostream_read_until(tu_F.rs, delims[d], strlen(delims[d]), 0, tu_rec_read, &r), 0);
            write_now(tu_F.ws, msg, (size_t)k);
            tu_run_iterations(tu_F.loop, 3);
            assert_int_equal(r.calls, 0);
            write_now(tu_F.ws, msg + k, (size_t)n - (size_t)k);
            tu_rec_wait(&r, 1);
            assert_int_equal(r.status, 0);
            assert_int_equal(r.len, (size_t)n);
            assert_memory_equal(r.data, msg, (size_t)n);
            tu_rec_free(&r);
            cases++;
        }
    }
    printf("# %s: %d split points, every read exact\n", tu_F.kind->name, cases);
    assert_int_equal(ts_iostream_read_buffer_size(tu_F.rs), 0);
    assert_int_equal(fx_release_all(), 0);
    alarm(0);
}

/* ---- zero-length operations (every transport) --------------------------------------- */

static bool g_in_call;

static void zl_read(ts_iostream *s, int status, const char *data, size_t len, void *arg)
{
    assert_false(g_in_call); /* never inside the API call */
    tu_rec_read(s, status, data, len, arg);
}
static void zl_write(ts_iostream *s, int status, void *arg)
{
    assert_false(g_in_call);
    tu_rec_write(s, status, arg);
}
static void zl_into(ts_iostream *s, int status, size_t n, void *arg)
{
    (void)s;
    assert_false(g_in_call);
    tu_rec *r = arg;
    r->calls++;
    r->status = status;
    r->len = n;
}
static int g_chunks;
static void zl_chunk(ts_iostream *s, const char *data, size_t len, void *arg)
{
    (void)s, (void)data, (void)len, (void)arg;
    g_chunks++; /* no chunk may come for 0 bytes */
}
static int g_released;
static void zl_release(const void *data, size_t len, void *arg)
{
    (void)data, (void)arg;
    assert_int_equal(len, 0);
    g_released++;
}

#define CALL(expr) (g_in_call = true, (expr), g_in_call = false)

static void test_zero_length_operations(void **state)
{
    (void)state;
    alarm(30);
    tu_fx_pair(NULL);
    tu_mem_mark();
    tu_rec rb = {0}, rw = {0}, ri = {0}, rr = {0}, rs = {0}, rx = {0};
    int r;
    char buf[4];
    CALL(r = ts_iostream_read_bytes(tu_F.rs, 0, false, zl_read, &rb));
    assert_int_equal(r, 0);
    tu_rec_wait(&rb, 1);
    assert_int_equal(rb.status, 0);
    assert_int_equal(rb.len, 0);
    CALL(r = ts_iostream_read_into(tu_F.rs, buf, 0, false, zl_into, &ri));
    assert_int_equal(r, 0);
    tu_rec_wait(&ri, 1);
    assert_int_equal(ri.status, 0);
    assert_int_equal(ri.len, 0);
    g_chunks = 0;
    CALL(r = ts_iostream_read_bytes_streaming(tu_F.rs, 0, zl_chunk, zl_read, &rs));
    assert_int_equal(r, 0);
    tu_rec_wait(&rs, 1);
    assert_int_equal(rs.status, 0);
    assert_int_equal(g_chunks, 0);
    g_released = 0;
    CALL(r = ts_iostream_write(tu_F.ws, "", 0, zl_write, &rw));
    assert_int_equal(r, 0);
    CALL(r = ts_iostream_write_ref(tu_F.ws, "", 0, zl_release, NULL, zl_write, &rr));
    assert_int_equal(r, 0);
    tu_rec_wait(&rr, 1);
    assert_int_equal(rw.calls, 1);
    assert_true(rw.order < rr.order); /* in order */
    assert_int_equal(g_released, 1);
    /* A pattern that matches nothing completes with 0 bytes once a byte is buffered, consuming nothing. */
    CALL(r = ts_iostream_read_until_regex(tu_F.rs, "x*", 0, zl_read, &rx));
    assert_int_equal(r, 0);
    tu_run_iterations(tu_F.loop, 3);
    assert_int_equal(rx.calls, 0); /* nothing buffered: it waits */
    write_now(tu_F.ws, "abc", 3);
    tu_rec_wait(&rx, 1);
    assert_int_equal(rx.status, 0);
    assert_int_equal(rx.len, 0);
    tu_rec_free(&rx);
    assert_int_equal(ts_iostream_read_bytes(tu_F.rs, 3, false, tu_rec_read, &rx), 0);
    tu_rec_wait(&rx, 1);
    assert_memory_equal(rx.data, "abc", 3);
    long idle = tu_idle_iterations(tu_F.loop, 0.3);
    printf("# %s: zero-length read_bytes, read_into, streaming, write, write_ref and an empty regex match: "
           "one callback each, from the loop; %ld idle iterations\n", tu_F.kind->name, idle);
    assert_true(idle <= IDLE_MAX);
    tu_rec_free(&rb), tu_rec_free(&rw), tu_rec_free(&ri), tu_rec_free(&rr), tu_rec_free(&rs), tu_rec_free(&rx);
    assert_int_equal(fx_release_all(), 0);
    alarm(0);
}

/* ---- close and free from inside every callback kind (every transport) ----------------- */

typedef struct killer {
    ts_iostream **slot; /* the fixture's pointer to the stream, cleared when freed */
    int calls, closes;
    bool use_free;
} killer;

static void kill_stream(killer *k, ts_iostream *s)
{
    k->calls++;
    if (k->use_free) {
        *k->slot = NULL;
        ts_iostream_free(s);
    } else {
        ts_iostream_close(s, 0);
    }
}
static void k_read(ts_iostream *s, int status, const char *d, size_t l, void *arg)
{
    (void)status, (void)d, (void)l;
    kill_stream(arg, s);
}
static void k_chunk(ts_iostream *s, const char *d, size_t l, void *arg)
{
    (void)d, (void)l;
    killer *k = arg;
    if (k->calls == 0)
        kill_stream(k, s);
}
static void k_end(ts_iostream *s, int status, const char *d, size_t l, void *arg)
{
    (void)s, (void)status, (void)d, (void)l;
    ((killer *)arg)->calls += 100; /* the end of a streaming read still comes, once */
}
static void k_write(ts_iostream *s, int status, void *arg)
{
    (void)status;
    kill_stream(arg, s);
}
static void k_close(ts_iostream *s, void *arg)
{
    killer *k = arg;
    k->closes++;
    if (k->use_free && *k->slot == s) {
        *k->slot = NULL;
        ts_iostream_unref(s); /* the last reference, from the close callback itself */
    }
}
static void k_future(ts_future *f, void *arg)
{
    killer *k = arg;
    kill_stream(k, *k->slot);
    ts_future_unref(f);
}

static bool killed(void *arg)
{
    killer *k = arg;
    return k->calls > 0 && k->closes == 1;
}

static void test_close_free_inside_callbacks(void **state)
{
    (void)state;
    alarm(60);
    tu_mem_mark();
    int scenarios = 0;
    tu_rec rest = {0};
    for (int kind = 0; kind < 5; kind++) {
        for (int use_free = 0; use_free < 2; use_free++) {
            tu_fx_pair(NULL);
            bool on_writer = kind == 2;
            ts_iostream **slot = on_writer ? &tu_F.ws : &tu_F.rs;
            killer k = {.slot = slot, .use_free = use_free};
            ts_iostream_set_close_callback(*slot, k_close, &k);
            switch (kind) {
            case 0:
                assert_int_equal(ts_iostream_read_until(tu_F.rs, "\n", 1, 0, k_read, &k), 0);
                break;
            case 1:
                assert_int_equal(ts_iostream_read_bytes_streaming(tu_F.rs, 100, k_chunk, k_end, &k), 0);
                break;
            case 2:
                assert_int_equal(ts_iostream_write(tu_F.ws, "x\n", 2, k_write, &k), 0);
                break;
            case 3: {
                ts_future *f = ts_iostream_read_bytes_future(tu_F.rs, 2, false);
                assert_int_equal(ts_future_add_done_callback(f, k_future, &k), 0);
                break;
            }
            default: /* the close callback frees; the close comes from the peer's EOF */
                k.calls = 1;
                assert_int_equal(ts_iostream_read_until_close(tu_F.rs, tu_rec_read, &rest), 0);
                break;
            }
            if (kind != 2)
                write_now(tu_F.ws, "x\n", 2);
            if (kind == 4) {
                ts_iostream_free(tu_F.ws), tu_F.ws = NULL;
            }
            assert_true(tu_run_until(tu_F.loop, killed, &k, 10));
            tu_run_iterations(tu_F.loop, 3);
            assert_int_equal(k.closes, 1);
            scenarios++;
        }
    }
    tu_rec_free(&rest);
    long left = fx_release_all();
    printf("# %s: %d scenarios (close or free in read, streaming, write, future and close callbacks): close "
           "callback once each, %ld bytes left\n", tu_F.kind->name, scenarios, left);
    assert_int_equal(left, 0);
    alarm(0);
}

/* ---- TCP only -------------------------------------------------------------------------- */

typedef struct sink {
    int fd;
    uint64_t got;
    const uint64_t *marks; /* offsets holding a non-zero byte */
    int nmarks, next;
    int bad;
    bool done, wrote; /* the streaming read ended; the write's callback ran */
    int status;
} sink;

/* Marked bytes around the 2 GiB (int) and 4 GiB (uint32) boundaries; the rest are zero pages. */
static const uint64_t MARKS[] = {0,           65535,         0x7fffffffull,  0x80000000ull,
                                 0x80000001ull, 0xffffffffull, 0x100000000ull, 0x100000001ull};
#define NMARKS ((int)(sizeof MARKS / sizeof MARKS[0]))

/* @p len bytes of untouched memory (no RAM until written) with the marks below @p len set; *nmarks gets their count. */
static unsigned char *marked_region(size_t len, int *nmarks)
{
    unsigned char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    assert_true(p != MAP_FAILED);
    *nmarks = 0;
    for (int i = 0; i < NMARKS && MARKS[i] < len; i++, (*nmarks)++)
        p[MARKS[i]] = (unsigned char)(0x41 + i);
    p[len - 1] = 0x7e;
    return p;
}

/* Counts arriving bytes and checks each mark, and the last byte, where it falls. */
static void sink_take(sink *k, const unsigned char *buf, size_t n, uint64_t total)
{
    for (; k->next < k->nmarks && k->marks[k->next] < k->got + n; k->next++)
        if (buf[k->marks[k->next] - k->got] != (unsigned char)(0x41 + k->next))
            k->bad++;
    if (k->got + n == total && buf[n - 1] != 0x7e)
        k->bad++;
    k->got += n;
}

static uint64_t g_sink_total;

static void *sink_thread(void *arg)
{
    sink *k = arg;
    size_t cap = 1 << 20;
    unsigned char *buf = malloc(cap);
    ssize_t n;
    while ((n = recv(k->fd, buf, cap, 0)) > 0)
        sink_take(k, buf, (size_t)n, g_sink_total);
    free(buf);
    return NULL;
}

static void sink_chunk(ts_iostream *s, const char *data, size_t len, void *arg)
{
    (void)s;
    sink_take(arg, (const unsigned char *)data, len, g_sink_total);
}

static void sink_end(ts_iostream *s, int status, const char *data, size_t len, void *arg)
{
    (void)s, (void)data, (void)len;
    sink *k = arg;
    k->done = true;
    k->status = status;
}

static bool sink_and_write_done(void *arg)
{
    sink *k = arg;
    return k->done && k->wrote;
}

static void wrote_all(ts_iostream *s, int status, void *arg)
{
    (void)s;
    sink *k = arg;
    k->wrote = true;
    k->status = k->status ? k->status : status;
}

/* More than 2 GiB through one TLS write: encrypted in bounded records, decrypted whole, in place. */
static void test_tls_write_over_2gib(void **state)
{
    (void)state;
    alarm(240);
    ts_ioloop *loop = tu_fixture_begin(200);
    const size_t len = ((size_t)2 << 30) + ((size_t)100 << 20) + 3; /* 2.10 GiB */
    int nmarks;
    unsigned char *p = marked_region(len, &nmarks);
    ts_iostream *c, *s;
    assert_int_equal(tu_tls_stream_pair(loop, NULL, NULL, NULL, "localhost", &c, &s, NULL, NULL), 0);
    long base = tu_mem_mark();
    sink k = {.fd = -1, .marks = MARKS, .nmarks = nmarks};
    g_sink_total = len;
    double t0 = nh_now();
    assert_int_equal(ts_iostream_read_bytes_streaming(s, len, sink_chunk, sink_end, &k), 0);
    assert_int_equal(ts_iostream_write_ref(c, p, len, NULL, NULL, wrote_all, &k), 0);
    assert_true(tu_run_until(loop, sink_and_write_done, &k, 200));
    double t = nh_now() - t0;
    long peak = tu_mem_peak_over(base);
    printf("# 2.10 GiB through one TLS write_ref (%s): %.2f s (%.0f MiB/s), %llu bytes decrypted, %d bad marks, "
           "peak %ld KiB of library memory\n", ts_iostream_ssl_version(c), t, len / t / 1048576,
           (unsigned long long)k.got, k.bad, peak / 1024);
    assert_int_equal(k.status, 0);
    assert_true(k.got == len);
    assert_int_equal(k.bad, 0);
    assert_true(peak < 2 * 1024 * 1024); /* lent and streamed, never held whole */
    ts_iostream_free(c);
    ts_iostream_free(s);
    munmap(p, len);
    tu_fixture_end(loop);
    assert_int_equal(tu_mem_live(), 0);
    alarm(0);
}

/*
 * More than 4 GiB through one write (write_ref of untouched memory, so it
 * costs no RAM): past both the int and the uint32 boundaries, every byte in
 * place, one callback, nothing copied.
 */
static void test_write_over_4gib(void **state)
{
    (void)state;
    alarm(240);
    ts_ioloop *loop = tu_fixture_begin(200);
    long base = tu_mem_mark();
    const size_t len = ((size_t)4 << 30) + ((size_t)300 << 20) + 7; /* 4.29 GiB */
    int nmarks;
    unsigned char *p = marked_region(len, &nmarks);
    int fds[2];
    assert_int_equal(tu_tcp_socketpair(fds), 0);
    ts_iostream *s = ts_iostream_new_socket(loop, fds[0], NULL);
    assert_non_null(s);
    sink k = {.fd = fds[1], .marks = MARKS, .nmarks = nmarks};
    g_sink_total = len;
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, sink_thread, &k), 0);
    tu_rec w = {0};
    double t0 = nh_now();
    assert_int_equal(ts_iostream_write_ref(s, p, len, NULL, NULL, tu_rec_write, &w), 0);
    tu_run_until_count(loop, &w.calls, 1, 200);
    double t = nh_now() - t0;
    assert_int_equal(w.status, 0);
    long peak = tu_mem_peak_over(base);
    ts_iostream_free(s);
    tu_run_iterations(loop, 3);
    pthread_join(th, NULL);
    close(fds[1]);
    printf("# 4.29 GiB through one write_ref: %.2f s (%.0f MiB/s), %llu bytes arrived, %d bad marks, peak %ld KiB "
           "of library memory\n", t, len / t / 1048576, (unsigned long long)k.got, k.bad, peak / 1024);
    assert_true(k.got == len);
    assert_int_equal(k.bad, 0);
    assert_true(peak < 512 * 1024); /* lent, not copied */
    munmap(p, len);
    tu_fixture_end(loop);
    assert_int_equal(tu_mem_live(), 0);
    alarm(0);
}

/* A catastrophic pattern against a hostile line: TS_EREGEX within PCRE2's limits, the stream closed, CPU bounded. */
static void test_catastrophic_regex(void **state)
{
    (void)state;
    alarm(60);
    ts_ioloop *loop = tu_fixture_begin(30);
    int fds[2];
    assert_int_equal(tu_tcp_socketpair(fds), 0);
    ts_iostream *s = ts_iostream_new_socket(loop, fds[0], NULL);
    char line[4096];
    memset(line, 'a', sizeof line);
    line[sizeof line - 1] = 'c';
    tu_rec r = {0};
    double cpu0 = tu_cpu_seconds();
    assert_int_equal(ts_iostream_read_until_regex(s, "(a+)+b", 0, tu_rec_read, &r), 0);
    assert_int_equal(nh_write_all(fds[1], line, sizeof line), 0);
    tu_run_until_count(loop, &r.calls, 1, 20);
    double cpu = tu_cpu_seconds() - cpu0;
    printf("# (a+)+b over 4 KiB of 'a' then 'c': %s after %.2f s of CPU\n", ts_err_name(r.status), cpu);
    assert_int_equal(r.status, TS_EREGEX);
    assert_true(ts_iostream_closed(s));
    assert_true(cpu < 10);
    ts_iostream_free(s);
    close(fds[1]);
    tu_rec_free(&r);
    tu_fixture_end(loop);
    assert_int_equal(tu_mem_live(), 0);
    alarm(0);
}

/* ---- resets at every stage (TCP) ------------------------------------------------------------- */

static void reset_fd(int fd)
{
    struct linger l = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    close(fd);
}

/* The peer resets: while a read waits, while writes are queued, after it half-closed. */
static void test_resets_at_every_stage(void **state)
{
    (void)state;
    alarm(60);
    ts_ioloop *loop = tu_fixture_begin(30);
    tu_mem_mark();
    for (int stage = 0; stage < 3; stage++) {
        int fds[2];
        assert_int_equal(tu_tcp_socketpair(fds), 0);
        ts_iostream *s = ts_iostream_new_socket(loop, fds[0], NULL);
        tu_rec r = {0}, c = {0};
        wlog log = {0};
        int queued = 0;
        ts_iostream_set_close_callback(s, tu_rec_close, &c);
        if (stage == 0) {
            assert_int_equal(ts_iostream_read_until(s, "\n", 1, 0, tu_rec_read, &r), 0);
            assert_int_equal(nh_write_all(fds[1], "partial line", 12), 0);
            tu_run_iterations(loop, 3);
        } else if (stage == 1) {
            static char chunk[256 * 1024];
            for (; queued < 32; queued++) { /* 8 MiB: far more than the kernel takes */
                wcb *w = malloc(sizeof *w);
                *w = (wcb){&log, queued + 1};
                assert_int_equal(ts_iostream_write(s, chunk, sizeof chunk, on_logged_write, w), 0);
            }
            tu_run_iterations(loop, 3);
        } else {
            shutdown(fds[1], SHUT_WR);
            assert_int_equal(ts_iostream_read_until_close(s, tu_rec_read, &r), 0);
            tu_run_iterations(loop, 3);
        }
        reset_fd(fds[1]);
        tu_run_until_count(loop, &c.calls, 1, 10);
        int err = ts_iostream_error(s);
        printf("# reset %s: stream error %s, read %s, writes %d ok / %d failed\n",
               stage == 0 ? "during a read" : stage == 1 ? "with 8 MiB queued" : "after a half-close",
               ts_err_name(err), r.calls ? ts_err_name(r.status) : "-", log.ok, log.failed);
        if (stage == 0) {
            assert_int_equal(r.calls, 1);
            assert_int_equal(r.status, -ECONNRESET);
            assert_int_equal(err, -ECONNRESET);
        } else if (stage == 1) {
            assert_int_equal(log.ok + log.failed, queued);
            assert_int_equal(log.bad_order, 0);
            assert_true(log.failed > 0);
            assert_true(log.fail_status == -ECONNRESET || log.fail_status == -EPIPE);
        } else {
            /* The EOF came first: read_until_close succeeded with nothing. */
            assert_int_equal(r.calls, 1);
            assert_int_equal(r.status, 0);
        }
        assert_int_equal(c.calls, 1);
        ts_iostream_free(s);
        tu_run_iterations(loop, 3);
        tu_rec_free(&r);
    }
    tu_fixture_end(loop);
    assert_int_equal(tu_mem_live(), 0);
    alarm(0);
}

int main(void)
{
    tu_use_byte_allocator(); /* before the library allocates anything */
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest variants[] = {
        cmocka_unit_test(test_flood_no_delimiter),
        cmocka_unit_test(test_read_until_close_past_limit),
        cmocka_unit_test(test_peer_never_reads),
        cmocka_unit_test(test_delimiter_split_everywhere),
        cmocka_unit_test(test_zero_length_operations),
        cmocka_unit_test(test_close_free_inside_callbacks),
    };
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_catastrophic_regex),
        cmocka_unit_test(test_resets_at_every_stage),
        cmocka_unit_test(test_write_over_4gib),
        cmocka_unit_test(test_tls_write_over_2gib),
    };
    int failed = tu_run_variants("adversarial_streams", variants, sizeof variants / sizeof variants[0]);
    failed += cmocka_run_group_tests_name("adversarial_streams_tcp", tests, NULL, NULL);
    return failed;
}
