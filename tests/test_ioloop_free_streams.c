/*
 * ts_ioloop_free() with streams still on the loop, over every row of
 * tu_stream_pairs (tcp, unix, pipe, tls): open streams are closed and told
 * (pending read, queued writes, close callback), and streams the program
 * still holds are cut loose, so that freeing them afterwards touches no freed
 * loop (ASan would report it) and leaks nothing.
 */
#include "stream_pairs.h"
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

#define F tu_F

/* Frees the fixture's loop from inside the test; the teardown then frees the streams. */
static void free_loop_now(void)
{
    tu_loop_forget(F.loop);
    ts_ioloop_free(F.loop, false);
    F.loop = NULL;
}

/* Open streams are closed by the loop's end: their pending read, queued write and close callback run. */
static void test_open_streams_are_closed_and_told(void **state)
{
    (void)state;
    tu_fx_pair(NULL);
    tu_rec rd = {0}, wr = {0}, cl_r = {0}, cl_w = {0};
    ts_iostream_set_close_callback(F.rs, tu_rec_close, &cl_r);
    ts_iostream_set_close_callback(F.ws, tu_rec_close, &cl_w);
    assert_int_equal(ts_iostream_read_until(F.rs, "\r\n", 2, 0, tu_rec_read, &rd), 0);
    /* More than any socket buffer holds, so it is still queued when the loop goes. */
    size_t n = 16u << 20;
    char *big = calloc(1, n);
    assert_non_null(big);
    assert_int_equal(ts_iostream_write(F.ws, big, n, tu_rec_write, &wr), 0);
    free(big);
    tu_run_for(F.loop, 0.01);
    assert_int_equal(rd.calls + wr.calls + cl_r.calls + cl_w.calls, 0);

    free_loop_now();

    assert_int_equal(rd.calls, 1);
    assert_int_equal(rd.status, TS_ECLOSED);
    assert_int_equal(wr.calls, 1);
    assert_int_equal(wr.status, TS_ECLOSED);
    assert_int_equal(cl_r.calls, 1);
    assert_int_equal(cl_w.calls, 1);
    assert_true(rd.order < cl_r.order); /* the close order holds: read, then close callback */
    assert_true(wr.order < cl_w.order);
    assert_true(ts_iostream_closed(F.rs));
    assert_true(ts_iostream_closed(F.ws));
    assert_int_equal(ts_iostream_fileno(F.rs), -1);
    tu_rec_free(&rd);
}

/* A stream that outlives its loop is valid, closed and refuses work without reaching the loop. */
static void test_held_stream_is_cut_loose(void **state)
{
    (void)state;
    tu_fx_pair(NULL);
    /* Data waiting in the buffer must not tempt a read into a completion nobody could run. */
    assert_int_equal(ts_iostream_write(F.ws, "abc\n", 4, NULL, NULL), 0);
    tu_run_for(F.loop, 0.02);
    ts_iostream_ref(F.rs);

    free_loop_now();

    assert_null(ts_iostream_loop(F.rs));
    assert_null(ts_iostream_loop(F.ws));
    tu_rec rd = {0};
    assert_int_equal(ts_iostream_read_until(F.rs, "\n", 1, 0, tu_rec_read, &rd), TS_ECLOSED);
    assert_int_equal(ts_iostream_read_bytes(F.rs, 1, true, tu_rec_read, &rd), TS_ECLOSED);
    assert_int_equal(ts_iostream_write(F.ws, "x", 1, NULL, NULL), TS_ECLOSED);
    assert_null(ts_iostream_read_until_close_future(F.rs));
    assert_int_equal(ts_iostream_set_timeouts(F.rs, 1, 1), TS_ECLOSED);
    ts_iostream_set_close_callback(F.rs, tu_rec_close, &rd); /* never runs: nothing is owed */
    assert_int_equal(rd.calls, 0);
    ts_iostream_unref(F.rs); /* the extra reference; the teardown drops the last */
}

/* A close callback that frees its stream leaves nothing behind (the leak checker would say). */
static void on_close_free(ts_iostream *s, void *arg)
{
    ts_iostream **slot = arg;
    assert_ptr_equal(*slot, s);
    *slot = NULL;
    ts_iostream_free(s);
}

static void test_close_callback_may_free(void **state)
{
    (void)state;
    tu_fx_pair(NULL);
    ts_iostream_set_close_callback(F.rs, on_close_free, &F.rs);
    ts_iostream_set_close_callback(F.ws, on_close_free, &F.ws);
    tu_rec rd = {0};
    assert_int_equal(ts_iostream_read_bytes(F.rs, 10, false, tu_rec_read, &rd), 0);

    free_loop_now();

    assert_null(F.rs);
    assert_null(F.ws);
    assert_int_equal(rd.calls, 1);
    assert_int_equal(rd.status, TS_ECLOSED);
    tu_rec_free(&rd);
}

/* A stream the program closed itself but still holds: freed later, after the loop. */
static void test_closed_held_stream_freed_after_loop(void **state)
{
    (void)state;
    tu_fx_pair(NULL);
    tu_rec cl = {0};
    ts_iostream_set_close_callback(F.ws, tu_rec_close, &cl);
    ts_iostream_close(F.ws, 0);
    /* no loop iteration: phase two is still queued when the loop goes */
    free_loop_now();
    assert_int_equal(cl.calls, 1);
    assert_null(ts_iostream_loop(F.ws));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_open_streams_are_closed_and_told, tu_fx_setup, tu_fx_teardown),
        cmocka_unit_test_setup_teardown(test_held_stream_is_cut_loose, tu_fx_setup, tu_fx_teardown),
        cmocka_unit_test_setup_teardown(test_close_callback_may_free, tu_fx_setup, tu_fx_teardown),
        cmocka_unit_test_setup_teardown(test_closed_held_stream_freed_after_loop, tu_fx_setup, tu_fx_teardown),
    };
    return tu_run_variants("ioloop_free_streams", tests, sizeof(tests) / sizeof(tests[0]));
}
