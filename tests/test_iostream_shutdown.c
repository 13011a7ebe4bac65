/*
 * ts_iostream_shutdown (flush, then half-close) and ts_iostream_write_ref
 * (lent memory with a release argument), over every row of tu_stream_pairs:
 * tcp, unix, pipe and tls. tu_F.ws writes, tu_F.rs reads.
 */
#include "stream_pairs.h"
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

#define F tu_F
#define BIG (1u << 20)

static char *pattern(size_t n)
{
    char *p = malloc(n);
    assert_non_null(p);
    for (size_t i = 0; i < n; i++)
        p[i] = (char)('a' + i % 23);
    return p;
}

/* Everything queued before the shutdown arrives, then the reader sees EOF; callbacks run in order. */
static void test_shutdown_flushes_then_ends_data(void **state)
{
    (void)state;
    tu_fx_pair(NULL);
    char *big = pattern(BIG);
    tu_rec w = {0}, sh = {0}, rd = {0};
    assert_int_equal(ts_iostream_write(F.ws, big, BIG, tu_rec_write, &w), 0);
    assert_int_equal(ts_iostream_shutdown(F.ws, tu_rec_write, &sh), 0);
    assert_int_equal(sh.calls, 0); /* never inside the call */
    /* The write side is shut for good: later writes and a second shutdown are refused. */
    assert_int_equal(ts_iostream_write(F.ws, "x", 1, NULL, NULL), TS_ESTATE);
    assert_int_equal(ts_iostream_shutdown(F.ws, NULL, NULL), TS_ESTATE);
    assert_int_equal(ts_iostream_read_until_close(F.rs, tu_rec_read, &rd), 0);
    tu_rec_wait(&rd, 1);
    assert_int_equal(rd.status, 0);
    assert_int_equal(rd.len, BIG);
    assert_memory_equal(rd.data, big, BIG);
    tu_rec_wait(&sh, 1);
    assert_int_equal(w.status, 0);
    assert_int_equal(sh.status, 0);
    assert_true(w.order < sh.order);
    assert_int_equal(sh.calls, 1);
    tu_rec_free(&rd);
    free(big);
}

/* After its shutdown a bidirectional stream still reads what the peer sends, until the peer's EOF. */
static void test_reads_go_on_after_shutdown(void **state)
{
    (void)state;
    tu_fx_pair(NULL);
    if (!F.kind->bidirectional) {
        /* A pipe has no read side: its shutdown closes the stream once the queue drains. */
        tu_rec sh = {0}, cl = {0};
        ts_iostream_set_close_callback(F.ws, tu_rec_close, &cl);
        assert_int_equal(ts_iostream_write(F.ws, "tail", 4, NULL, NULL), 0);
        assert_int_equal(ts_iostream_shutdown(F.ws, tu_rec_write, &sh), 0);
        tu_rec_wait(&cl, 1);
        assert_int_equal(sh.calls, 1);
        assert_int_equal(sh.status, 0);
        assert_true(sh.order < cl.order);
        assert_int_equal(ts_iostream_error(F.ws), 0);
        tu_expect_read(ts_iostream_read_until_close_future(F.rs), "tail", 4);
        return;
    }
    tu_rec sh = {0}, eof = {0}, cl = {0};
    char *big = pattern(BIG);
    /* The peer's answer is on its way before it sees our request end... */
    assert_int_equal(ts_iostream_write(F.rs, big, BIG, NULL, NULL), 0);
    ts_iostream_set_close_callback(F.ws, tu_rec_close, &cl);
    assert_int_equal(ts_iostream_write(F.ws, "request", 7, NULL, NULL), 0);
    assert_int_equal(ts_iostream_shutdown(F.ws, tu_rec_write, &sh), 0);
    /* ...it reads the request to our EOF (and, its answer drained, closes: the half-close rule)... */
    tu_expect_read(ts_iostream_read_until_close_future(F.rs), "request", 7);
    tu_rec_wait(&sh, 1);
    assert_int_equal(sh.status, 0);
    assert_false(ts_iostream_closed(F.ws));
    /* ...while our stream, its write side shut, still reads the whole answer, then the peer's EOF. */
    tu_expect_read(ts_iostream_read_bytes_future(F.ws, BIG, false), big, BIG);
    assert_int_equal(ts_iostream_read_until_close(F.ws, tu_rec_read, &eof), 0);
    tu_rec_wait(&cl, 1);
    assert_int_equal(eof.status, 0);
    assert_int_equal(eof.len, 0);
    assert_int_equal(ts_iostream_error(F.ws), 0);
    tu_rec_free(&eof);
    free(big);
}

/* A close before the queue drains: the queued write fails, then the shutdown callback, both with the status. */
static void test_close_before_drained_fails_shutdown(void **state)
{
    (void)state;
    tu_fx_pair(NULL);
    size_t n = 8u << 20; /* more than the kernel buffers while nobody reads */
    char *big = pattern(n);
    tu_rec w = {0}, sh = {0};
    assert_int_equal(ts_iostream_write(F.ws, big, n, tu_rec_write, &w), 0);
    assert_int_equal(ts_iostream_shutdown(F.ws, tu_rec_write, &sh), 0);
    tu_run_for(F.loop, 0.05);
    assert_int_equal(sh.calls, 0);
    ts_iostream_close(F.ws, 0);
    tu_rec_wait(&sh, 1);
    assert_int_equal(w.status, TS_ECLOSED);
    assert_int_equal(sh.status, TS_ECLOSED);
    assert_true(w.order < sh.order);
    assert_int_equal(ts_iostream_shutdown(F.ws, NULL, NULL), TS_ECLOSED);
    free(big);
}

/* The future form resolves once the write side is shut. */
static void test_shutdown_future(void **state)
{
    (void)state;
    tu_fx_pair(NULL);
    assert_int_equal(ts_iostream_write(F.ws, "abc", 3, NULL, NULL), 0);
    tu_await_ok(ts_iostream_shutdown_future(F.ws));
    tu_expect_read(ts_iostream_read_until_close_future(F.rs), "abc", 3);
    ts_future *f = ts_iostream_shutdown_future(F.ws);
    assert_int_equal(tu_await_error(f), F.kind->bidirectional ? TS_ESTATE : TS_ECLOSED);
}

/* ---- write_ref: one reference-counted buffer fanned out to many streams ---- */

typedef struct shared_buf {
    char *data;
    size_t len;
    int refs;
    int releases;
    bool wrong_args;
} shared_buf;

static void release_shared(const void *data, size_t len, void *arg)
{
    shared_buf *b = arg;
    if (data != b->data || len != b->len)
        b->wrong_args = true;
    b->releases++;
    if (--b->refs == 0) {
        free(b->data);
        b->data = NULL;
    }
}

static void test_write_ref_fan_out(void **state)
{
    (void)state;
    tu_fx_pair(NULL);
    shared_buf b = {.data = pattern(BIG), .len = BIG, .refs = 1};
    char *copy = pattern(BIG);
    /* Three references on one stream (three messages), each released exactly once. */
    for (int i = 0; i < 3; i++) {
        b.refs++;
        assert_int_equal(ts_iostream_write_ref(F.ws, b.data, b.len, release_shared, &b, NULL, NULL), 0);
    }
    for (int i = 0; i < 3; i++)
        tu_expect_read(ts_iostream_read_bytes_future(F.rs, BIG, false), copy, BIG);
    tu_run_for(F.loop, 0.01);
    assert_int_equal(b.releases, 3);
    assert_false(b.wrong_args);
    /* A refused write leaves the reference with the caller. */
    ts_iostream_close(F.ws, 0);
    b.refs++;
    assert_int_equal(ts_iostream_write_ref(F.ws, b.data, b.len, release_shared, &b, NULL, NULL), TS_ECLOSED);
    assert_int_equal(b.releases, 3);
    b.refs--;
    release_shared(b.data, b.len, &b); /* the creator's own reference */
    assert_null(b.data);
    free(copy);
}

/* Unwritten lent memory is released when the stream closes, and a static buffer may pass no release. */
static void test_write_ref_released_at_close(void **state)
{
    (void)state;
    tu_fx_pair(NULL);
    size_t n = 8u << 20;
    shared_buf b = {.data = pattern(n), .len = n, .refs = 1};
    assert_int_equal(ts_iostream_write_ref(F.ws, b.data, n, release_shared, &b, NULL, NULL), 0);
    static const char hello[] = "hello";
    assert_int_equal(ts_iostream_write_ref(F.ws, hello, 5, NULL, NULL, NULL, NULL), 0);
    tu_run_for(F.loop, 0.02);
    assert_int_equal(b.releases, 0); /* the reader took nothing: still queued */
    ts_iostream_close(F.ws, 0);
    assert_int_equal(b.releases, 1);
    assert_false(b.wrong_args);
    assert_null(b.data);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_shutdown_flushes_then_ends_data, tu_fx_setup, tu_fx_teardown),
        cmocka_unit_test_setup_teardown(test_reads_go_on_after_shutdown, tu_fx_setup, tu_fx_teardown),
        cmocka_unit_test_setup_teardown(test_close_before_drained_fails_shutdown, tu_fx_setup, tu_fx_teardown),
        cmocka_unit_test_setup_teardown(test_shutdown_future, tu_fx_setup, tu_fx_teardown),
        cmocka_unit_test_setup_teardown(test_write_ref_fan_out, tu_fx_setup, tu_fx_teardown),
        cmocka_unit_test_setup_teardown(test_write_ref_released_at_close, tu_fx_setup, tu_fx_teardown),
    };
    return tu_run_variants("iostream_shutdown", tests, sizeof(tests) / sizeof(tests[0]));
}
