/*
 * TLS streams under load and at the edges of a connection's life:
 * 100 MiB each way at once over one stream pair, verified byte for byte
 * (a generated pattern, streamed, never stored); and openssl#10880 at stream
 * level: a client that writes and closes without reading loses nothing,
 * whether the server's ticket write or its own response write meets the
 * closed connection. SIGPIPE is left fatal throughout.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "testutil.h"
#include "tls_certs.h"
#include "tls_pump.h"
#include "tls_streams.h"

static ts_ioloop *g_loop;

/* ---- 100 MiB each way ------------------------------------------------------------- */

#define BULK (100u << 20)
#define CHUNK (1u << 20)
#define IN_FLIGHT 4

typedef struct flow {
    ts_iostream *w, *r;
    uint64_t queued, checked;
    int in_flight;
    bool done;
    int status;
    uint64_t bad;
} flow;

static void queue_more(flow *f);

static void on_chunk_written(ts_iostream *s, int status, void *arg)
{
    (void)s;
    flow *f = arg;
    f->in_flight--;
    if (status == 0)
        queue_more(f);
}

static void queue_more(flow *f)
{
    while (f->in_flight < IN_FLIGHT && f->queued < BULK) {
        size_t n = (size_t)TS__MIN((uint64_t)CHUNK, BULK - f->queued);
        char *buf = malloc(n);
        tu_pattern_fill(buf, f->queued, n);
        assert_int_equal(ts_iostream_write_owned(f->w, buf, n, free, on_chunk_written, f), 0);
        f->queued += n;
        f->in_flight++;
    }
}

static void on_data(ts_iostream *s, const char *data, size_t len, void *arg)
{
    (void)s;
    flow *f = arg;
    if (f->bad == UINT64_MAX && !tu_pattern_check(data, f->checked, len, &f->bad))
        fprintf(stderr, "mismatch at byte %llu\n", (unsigned long long)f->bad);
    f->checked += len;
}

static void on_flow_done(ts_iostream *s, int status, const char *data, size_t len, void *arg)
{
    (void)s, (void)data, (void)len;
    flow *f = arg;
    f->done = true;
    f->status = status;
}

static bool flows_done(void *arg)
{
    flow *f = arg;
    return f[0].done && f[1].done;
}

/* ---- openssl#10880 ------------------------------------------------------------------ */

typedef struct writer {
    int left;      /* writes still to complete */
    bool abrupt;   /* close without close_notify */
    bool closed;
    int failed;    /* the first write error */
} writer;

static void on_client_wrote(ts_iostream *s, int status, void *arg)
{
    writer *w = arg;
    if (status != 0) { /* the test asserts none; also how teardown's close ends them */
        w->failed = w->failed ? w->failed : status;
        return;
    }
    if (--w->left == 0) {
        /* Done writing: close at once, never having read (the tickets stay unread). */
        ts_iostream_close(s, w->abrupt ? TS_ECANCELLED : 0);
        w->closed = true;
    }
}

typedef struct reader {
    uint64_t base; /* pattern offset of the first byte expected */
    bool done;
    int status;
    size_t len;
    bool intact;
} reader;

static void on_all(ts_iostream *s, int status, const char *data, size_t len, void *arg)
{
    (void)s;
    reader *r = arg;
    r->done = true;
    r->status = status;
    r->len = len;
    r->intact = status == 0 && tu_pattern_check(data, r->base, len, NULL);
}

typedef struct responder {
    ts_iostream *s;
    reader rest;
    bool first;
    int first_status;
    bool write_done;
    int write_status;
} responder;

/* ---- the state callbacks use --------------------------------------------------------- */

/*
 * What the callbacks point at, and the streams that may still call them.
 * Both outlive the test function: when an assertion or a time limit ends a
 * test early (valgrind makes 100 MiB slow), reads and writes still queued
 * complete with TS_ECLOSED during teardown, which frees the streams, lets
 * those callbacks run, and only then frees this. On the test's stack they
 * would write into a returned frame.
 */
typedef struct bulk_state {
    ts_iostream *streams[2];
    SSL_CTX *ctx[2];
    flow f[2];
    writer w;
    reader r;
    responder p;
} bulk_state;

static bulk_state *g_st;

/* The test's streams: teardown frees whichever are still held. */
static void hold(ts_iostream *a, ts_iostream *b)
{
    g_st->streams[0] = a;
    g_st->streams[1] = b;
}

static void release(void)
{
    for (int i = 0; i < 2; i++) {
        ts_iostream_free(g_st->streams[i]);
        g_st->streams[i] = NULL;
    }
}

static int setup(void **state)
{
    (void)state;
    g_loop = tu_fixture_begin(120);
    g_st = calloc(1, sizeof *g_st);
    return g_st ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    release();
    tu_fixture_end(g_loop); /* runs the closed streams' last callbacks, which may use g_st */
    g_loop = NULL;
    for (int i = 0; i < 2; i++)
        SSL_CTX_free(g_st->ctx[i]);
    free(g_st);
    g_st = NULL;
    return 0;
}

/* ---- the tests ------------------------------------------------------------------------ */

static void test_100mib_each_way(void **state)
{
    (void)state;
    ts_iostream *c, *s;
    assert_int_equal(tu_tls_stream_pair(g_loop, NULL, NULL, NULL, "localhost", &c, &s, NULL, NULL), 0);
    hold(c, s);
    flow *f = g_st->f;
    f[0] = (flow){.w = c, .r = s, .bad = UINT64_MAX};
    f[1] = (flow){.w = s, .r = c, .bad = UINT64_MAX};
    double t0 = tu_now();
    for (int i = 0; i < 2; i++) {
        assert_int_equal(ts_iostream_read_bytes_streaming(f[i].r, BULK, on_data, on_flow_done, &f[i]), 0);
        queue_more(&f[i]);
    }
    assert_true(tu_run_until(g_loop, flows_done, f, 110));
    double dt = tu_now() - t0;
    for (int i = 0; i < 2; i++) {
        assert_int_equal(f[i].status, 0);
        assert_int_equal(f[i].checked, BULK);
        assert_int_equal(f[i].bad, UINT64_MAX);
    }
    fprintf(stderr, "# 2 x 100 MiB over TLS (%s) in %.2f s\n", ts_iostream_ssl_version(c), dt);
    release();
}

/*
 * The client queues its writes before the handshake ends; they go out and
 * it closes in the same run that finishes its handshake, so the server
 * reads the client's Finished (and sends its tickets) into a closed
 * connection. The server must still deliver every byte.
 */
static void test_write_and_close_without_reading(void **state)
{
    (void)state;
    const tu_certs *certs = tu_certs_get();
    SSL_CTX *sctx = g_st->ctx[0] = tu_tls_server_ctx(certs->server_cert, certs->server_key, TLS1_3_VERSION, 0);
    SSL_CTX *cctx = g_st->ctx[1] = tu_tls_client_ctx(certs->ca_cert, TLS1_3_VERSION, 0);
    reader *r = &g_st->r;
    writer *w = &g_st->w;
    for (int round = 0; round < 16; round++) {
        int fds[2], err;
        assert_int_equal(tu_tcp_pair(fds), 0);
        ts_ssl_options so = {.size = sizeof so, .ctx = sctx, .server_side = true};
        ts_ssl_options co = {.size = sizeof co, .ctx = cctx, .server_hostname = "localhost"};
        ts_iostream *s = ts_iostream_new_ssl(g_loop, fds[1], &so, NULL, &err);
        ts_iostream *c = ts_iostream_new_ssl(g_loop, fds[0], &co, NULL, &err);
        hold(c, s);
        *r = (reader){0};
        assert_int_equal(ts_iostream_read_until_close(s, on_all, r), 0);
        *w = (writer){.left = 4, .abrupt = round % 2};
        char msg[4000]; /* copied by each write */
        tu_pattern_fill(msg, 0, sizeof msg);
        for (int i = 0; i < 4; i++)
            assert_int_equal(ts_iostream_write(c, msg + i * 1000, 1000, on_client_wrote, w), 0);
        tu_run_until_flag(g_loop, &r->done, 10);
        assert_int_equal(w->failed, 0);
        assert_true(w->closed);
        assert_int_equal(r->status, 0);
        assert_int_equal(r->len, sizeof msg);
        assert_true(r->intact);
        int e = ts_iostream_error(s);
        if (w->abrupt)
            assert_true(e == TS_ETRUNCATED || e == -ECONNRESET);
        else
            assert_int_equal(e, 0);
        release();
    }
}

static void on_response_written(ts_iostream *s, int status, void *arg)
{
    (void)s;
    responder *p = arg;
    p->write_done = true;
    p->write_status = status;
}

static void on_first_part(ts_iostream *s, int status, const char *data, size_t len, void *arg)
{
    responder *p = arg;
    if (status != 0) { /* p->first stays false: the test fails on it (or teardown closed the stream) */
        p->first_status = status;
        return;
    }
    assert_int_equal(len, 1000);
    assert_true(tu_pattern_check(data, 0, len, NULL));
    p->first = true;
    /* Answer before reading the rest: this write meets the closed connection. */
    static char big[1 << 20];
    int rc = ts_iostream_write(s, big, sizeof big, on_response_written, p);
    if (rc == 0)
        rc = ts_iostream_read_until_close(s, on_all, &p->rest);
    p->first_status = rc; /* the test asserts 0; TS_ECLOSED when teardown closed the stream first */
}

/*
 * The server answers a request whose sender already closed, so its write
 * fails (EPIPE/ECONNRESET) while the rest of the request is unread. The failed write must
 * not close the stream before the rest of the request, still in the
 * kernel, has been read and delivered.
 */
static void test_write_error_does_not_lose_unread_data(void **state)
{
    (void)state;
    ts_iostream *c, *s;
    assert_int_equal(tu_tls_stream_pair(g_loop, NULL, NULL, NULL, "localhost", &c, &s, NULL, NULL), 0);
    hold(c, s);
    char msg[3000];
    tu_pattern_fill(msg, 0, sizeof msg);
    /* Three records, each flushed alone, so the server can read one and leave two in the kernel. */
    for (int i = 0; i < 3; i++) {
        ts_future *f = ts_iostream_write_future(c, msg + i * 1000, 1000);
        assert_int_equal(ts_ioloop_run_sync(g_loop, f, 5), 0);
        ts_future_unref(f);
    }
    ts_iostream_free(c); /* gone: what the server writes now is answered with RST */
    hold(NULL, s);
    tu_run_for(g_loop, 0.05);
    responder *p = &g_st->p;
    *p = (responder){.s = s, .rest = {.base = 1000}};
    assert_int_equal(ts_iostream_read_bytes(s, 1000, false, on_first_part, p), 0);
    tu_run_until_flag(g_loop, &p->rest.done, 10);
    assert_true(p->first);
    assert_int_equal(p->first_status, 0);
    assert_int_equal(p->rest.status, 0);
    assert_int_equal(p->rest.len, 2000);
    assert_true(p->rest.intact);
    tu_run_until_flag(g_loop, &p->write_done, 5);
    assert_true(p->write_status < 0); /* the response itself could not be delivered */
    release();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_100mib_each_way, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_and_close_without_reading, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_error_does_not_lose_unread_data, setup, teardown),
    };
    signal(SIGPIPE, SIG_DFL);
    tu_certs_get();
    if (getenv("TS_TEST_FILTER"))
        cmocka_set_test_filter(getenv("TS_TEST_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
