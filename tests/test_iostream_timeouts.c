/*
 * ts_iostream_set_timeouts: a waiting read or a queued write that makes no
 * progress for its timeout closes the stream with TS_ETIMEDOUT; progress
 * restarts the clock; nothing is timed between reads. Over every row of
 * tu_stream_pairs (tcp, unix, pipe, tls): tu_F.ws writes, tu_F.rs reads.
 */
#include "net_helpers.h"
#include "stream_pairs.h"
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define F tu_F

static void test_read_timeout_fires(void **state)
{
    (void)state;
    tu_fx_pair(NULL);
    tu_rec rd = {0}, cl = {0};
    ts_iostream_set_close_callback(F.rs, tu_rec_close, &cl);
    assert_int_equal(ts_iostream_set_timeouts(F.rs, 0.1, 0), 0);
    double t0 = nh_now();
    assert_int_equal(ts_iostream_read_bytes(F.rs, 10, false, tu_rec_read, &rd), 0);
    tu_rec_wait(&rd, 1);
    double took = nh_now() - t0;
    assert_int_equal(rd.status, TS_ETIMEDOUT);
    assert_true(took >= 0.09);
    assert_true(took < 2.0);
    tu_rec_wait(&cl, 1);
    assert_true(ts_iostream_closed(F.rs));
    assert_int_equal(ts_iostream_error(F.rs), TS_ETIMEDOUT);
    tu_rec_free(&rd);
}

/* One byte every 30 ms for 10 bytes (0.3 s in all) never trips a 0.15 s read timeout. */
typedef struct trickle {
    ts_iostream *s;
    int left;
} trickle;

static void trickle_tick(ts_ioloop *loop, void *arg)
{
    trickle *t = arg;
    assert_int_equal(ts_iostream_write(t->s, "x", 1, NULL, NULL), 0);
    if (--t->left > 0)
        assert_true(ts_ioloop_call_later(loop, 0.03, trickle_tick, t) != 0);
}

static void test_progress_restarts_read_clock(void **state)
{
    (void)state;
    tu_fx_pair(NULL);
    tu_rec rd = {0};
    assert_int_equal(ts_iostream_set_timeouts(F.rs, 0.15, 0), 0);
    trickle t = {F.ws, 10};
    assert_true(ts_ioloop_call_later(F.loop, 0.03, trickle_tick, &t) != 0);
    assert_int_equal(ts_iostream_read_bytes(F.rs, 10, false, tu_rec_read, &rd), 0);
    tu_rec_wait(&rd, 1);
    assert_int_equal(rd.status, 0);
    assert_int_equal(rd.len, 10);
    tu_rec_free(&rd);
    assert_false(ts_iostream_closed(F.rs));
}

/* Between reads nothing is timed; freeing a stream with a timeout armed leaves no timer behind. */
static void test_idle_between_reads_is_not_timed(void **state)
{
    (void)state;
    tu_fx_pair(NULL);
    assert_int_equal(ts_iostream_set_timeouts(F.rs, 0.05, 0.05), 0);
    tu_run_for(F.loop, 0.2);
    assert_false(ts_iostream_closed(F.rs));
    /* A read served from the buffer never waits. */
    assert_int_equal(ts_iostream_write(F.ws, "abc", 3, NULL, NULL), 0);
    tu_run_for(F.loop, 0.1);
    tu_expect_read(ts_iostream_read_bytes_future(F.rs, 3, false), "abc", 3);
    /* Armed, then the stream goes away: the check must not fire on freed memory. */
    tu_rec rd = {0};
    assert_int_equal(ts_iostream_read_bytes(F.rs, 1, false, tu_rec_read, &rd), 0);
    ts_iostream_free(F.rs);
    F.rs = NULL;
    tu_run_for(F.loop, 0.1);
    assert_int_equal(rd.calls, 1);
    assert_int_equal(rd.status, TS_ECLOSED);
    tu_rec_free(&rd);
}

static void test_write_timeout_fires(void **state)
{
    (void)state;
    tu_fx_pair(NULL);
    size_t n = 16u << 20; /* more than the kernel buffers while nobody reads */
    char *big = calloc(1, n);
    assert_non_null(big);
    tu_rec w = {0}, cl = {0};
    ts_iostream_set_close_callback(F.ws, tu_rec_close, &cl);
    assert_int_equal(ts_iostream_set_timeouts(F.ws, 0, 0.1), 0);
    assert_int_equal(ts_iostream_write(F.ws, big, n, tu_rec_write, &w), 0);
    tu_rec_wait(&w, 1);
    assert_int_equal(w.status, TS_ETIMEDOUT);
    tu_rec_wait(&cl, 1);
    assert_int_equal(ts_iostream_error(F.ws), TS_ETIMEDOUT);
    free(big);
}

/* A slow reader taking 64 KiB every 20 ms keeps a 0.2 s write timeout from firing. */
typedef struct slow_reader {
    ts_iostream *s;
    size_t got;
    size_t want;
} slow_reader;

static void slow_tick(ts_ioloop *loop, void *arg);

static void slow_got(ts_iostream *s, int status, const char *data, size_t len, void *arg)
{
    (void)s, (void)data;
    slow_reader *r = arg;
    if (status < 0)
        return;
    r->got += len;
    if (r->got < r->want)
        assert_true(ts_ioloop_call_later(ts_iostream_loop(s), 0.02, slow_tick, r) != 0);
}

static void slow_tick(ts_ioloop *loop, void *arg)
{
    (void)loop;
    slow_reader *r = arg;
    assert_int_equal(ts_iostream_read_bytes(r->s, 65536, true, slow_got, r), 0);
}

static bool reader_done(void *arg)
{
    const slow_reader *r = arg;
    return r->got >= r->want;
}

static void test_progress_restarts_write_clock(void **state)
{
    (void)state;
    tu_fx_pair(NULL);
    size_t n = 2u << 20;
    char *big = calloc(1, n);
    assert_non_null(big);
    tu_rec w = {0};
    assert_int_equal(ts_iostream_set_timeouts(F.ws, 0, 0.2), 0);
    assert_int_equal(ts_iostream_write(F.ws, big, n, tu_rec_write, &w), 0);
    slow_reader r = {F.rs, 0, n};
    slow_tick(F.loop, &r);
    tu_rec_wait(&w, 1);
    assert_int_equal(w.status, 0);
    assert_false(ts_iostream_closed(F.ws));
    /* The kernel took the last bytes before the reader had them all: let it finish, so no tick outlives r. */
    assert_true(tu_run_until(F.loop, reader_done, &r, 10));
    free(big);
}

static void test_set_get_and_clear(void **state)
{
    (void)state;
    tu_fx_pair(NULL);
    double r = -1, w = -1;
    ts_iostream_get_timeouts(F.rs, &r, &w);
    assert_true(r == 0 && w == 0);
    assert_int_equal(ts_iostream_set_timeouts(F.rs, -1, 0), TS_EINVAL);
    assert_int_equal(ts_iostream_set_timeouts(F.rs, 0, NAN), TS_EINVAL);
    assert_int_equal(ts_iostream_set_timeouts(F.rs, 0.05, 2), 0);
    ts_iostream_get_timeouts(F.rs, &r, &w);
    assert_true(r == 0.05 && w == 2);
    /* Cleared while a read waits: it then waits as long as it takes. */
    tu_rec rd = {0};
    assert_int_equal(ts_iostream_read_bytes(F.rs, 2, false, tu_rec_read, &rd), 0);
    assert_int_equal(ts_iostream_set_timeouts(F.rs, 0, 0), 0);
    tu_run_for(F.loop, 0.15);
    assert_int_equal(rd.calls, 0);
    assert_int_equal(ts_iostream_write(F.ws, "ok", 2, NULL, NULL), 0);
    tu_rec_wait(&rd, 1);
    assert_int_equal(rd.status, 0);
    tu_rec_free(&rd);
    ts_iostream_close(F.rs, 0);
    assert_int_equal(ts_iostream_set_timeouts(F.rs, 1, 1), TS_ECLOSED);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_read_timeout_fires, tu_fx_setup, tu_fx_teardown),
        cmocka_unit_test_setup_teardown(test_progress_restarts_read_clock, tu_fx_setup, tu_fx_teardown),
        cmocka_unit_test_setup_teardown(test_idle_between_reads_is_not_timed, tu_fx_setup, tu_fx_teardown),
        cmocka_unit_test_setup_teardown(test_write_timeout_fires, tu_fx_setup, tu_fx_teardown),
        cmocka_unit_test_setup_teardown(test_progress_restarts_write_clock, tu_fx_setup, tu_fx_teardown),
        cmocka_unit_test_setup_teardown(test_set_get_and_clear, tu_fx_setup, tu_fx_teardown),
    };
    return tu_run_variants("iostream_timeouts", tests, sizeof(tests) / sizeof(tests[0]));
}
