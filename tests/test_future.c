/* Futures: results, errors, done callbacks never inline, with_timeout, multi. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tstream.h"

static int g_dtor_calls;

static void counting_free(void *p)
{
    g_dtor_calls++;
    free(p);
}

typedef struct cb_state {
    int calls;
    int order[8];
    int n;
    void *result_seen;
    int error_seen;
} cb_state;

static void done_cb(ts_future *f, void *arg)
{
    cb_state *st = arg;
    st->calls++;
    st->result_seen = ts_future_result(f);
    st->error_seen = ts_future_error(f);
}

static void stop_cb(ts_ioloop *loop, void *arg)
{
    (void)arg;
    ts_ioloop_stop(loop);
}

static void spin(ts_ioloop *loop, double seconds)
{
    ts_ioloop_call_later(loop, seconds, stop_cb, NULL);
    ts_ioloop_start(loop);
}

static void test_result_and_callbacks_not_inline(void **state)
{
    (void)state;
    ts_ioloop *loop = ts_ioloop_new();
    ts_future *f = ts_future_new(loop);
    cb_state st = {0};
    assert_false(ts_future_done(f));
    assert_null(ts_future_result(f));
    assert_int_equal(ts_future_add_done_callback(f, done_cb, &st), 0);
    char *value = strdup("value");
    assert_int_equal(ts_future_set_result(f, value, counting_free), 0);
    assert_int_equal(st.calls, 0); /* not inline */
    assert_true(ts_future_done(f));
    assert_ptr_equal(ts_future_result(f), value);
    spin(loop, 0.01);
    assert_int_equal(st.calls, 1);
    assert_ptr_equal(st.result_seen, value);
    /* adding to a done future: still from the loop, never inline */
    cb_state late = {0};
    ts_future_add_done_callback(f, done_cb, &late);
    assert_int_equal(late.calls, 0);
    spin(loop, 0.01);
    assert_int_equal(late.calls, 1);
    g_dtor_calls = 0;
    ts_future_unref(f);
    assert_int_equal(g_dtor_calls, 1);
    ts_ioloop_free(loop, false);
}

static void test_set_twice_is_reported(void **state)
{
    (void)state;
    ts_ioloop *loop = ts_ioloop_new();
    ts_future *f = ts_future_new(loop);
    g_dtor_calls = 0;
    assert_int_equal(ts_future_set_result(f, strdup("a"), counting_free), 0);
    assert_int_equal(ts_future_set_result(f, strdup("b"), counting_free), TS_ESTATE);
    assert_int_equal(g_dtor_calls, 1); /* the refused result is not leaked */
    assert_string_equal(ts_future_result(f), "a");
    assert_int_equal(ts_future_set_error(f, TS_ECLOSED), TS_ESTATE);
    assert_int_equal(ts_future_error(f), 0);
    ts_future_unref(f);
    assert_int_equal(g_dtor_calls, 2);
    ts_ioloop_free(loop, false);
}

static void test_error_and_steal(void **state)
{
    (void)state;
    ts_ioloop *loop = ts_ioloop_new();
    ts_future *f = ts_future_new(loop);
    assert_int_equal(ts_future_set_error(f, 5), TS_EINVAL);
    assert_false(ts_future_done(f));
    assert_int_equal(ts_future_set_error(f, TS_ETIMEDOUT), 0);
    assert_int_equal(ts_future_error(f), TS_ETIMEDOUT);
    assert_null(ts_future_steal_result(f));
    ts_future_unref(f);

    f = ts_future_new(loop);
    char *v = strdup("kept");
    g_dtor_calls = 0;
    ts_future_set_result(f, v, counting_free);
    assert_ptr_equal(ts_future_steal_result(f), v);
    ts_future_unref(f);
    assert_int_equal(g_dtor_calls, 0);
    free(v);
    ts_ioloop_free(loop, false);
}

static void unref_in_cb(ts_future *f, void *arg)
{
    (*(int *)arg)++;
    ts_future_unref(f); /* drops the caller's last reference from inside */
}

static void test_refcount_and_unref_inside_callback(void **state)
{
    (void)state;
    ts_ioloop *loop = ts_ioloop_new();
    ts_future *f = ts_future_new(loop);
    ts_future_ref(f);
    ts_future_unref(f);
    int calls = 0;
    ts_future_add_done_callback(f, unref_in_cb, &calls);
    ts_future_set_result(f, strdup("x"), free);
    spin(loop, 0.01);
    assert_int_equal(calls, 1);
    /* a pending future freed with callbacks registered leaks nothing */
    ts_future *g = ts_future_new(loop);
    cb_state st = {0};
    ts_future_add_done_callback(g, done_cb, &st);
    ts_future_unref(g);
    ts_future_unref(NULL);
    ts_ioloop_free(loop, false);
}

static void order_cb(ts_future *f, void *arg)
{
    (void)f;
    cb_state *st = arg;
    st->order[st->n++] = st->calls++;
}

static void test_callbacks_in_registration_order(void **state)
{
    (void)state;
    ts_ioloop *loop = ts_ioloop_new();
    ts_future *f = ts_future_new(loop);
    cb_state st = {0};
    for (int i = 0; i < 5; i++)
        ts_future_add_done_callback(f, order_cb, &st);
    ts_future_set_result(f, NULL, NULL);
    spin(loop, 0.01);
    assert_int_equal(st.n, 5);
    for (int i = 0; i < 5; i++)
        assert_int_equal(st.order[i], i);
    ts_future_unref(f);
    ts_ioloop_free(loop, false);
}

static void complete_later(ts_ioloop *loop, void *arg)
{
    (void)loop;
    ts_future_set_result(arg, strdup("late"), free);
}

static void test_with_timeout(void **state)
{
    (void)state;
    ts_ioloop *loop = ts_ioloop_new();
    /* the inner future wins */
    ts_future *inner = ts_future_new(loop);
    ts_future *outer = ts_with_timeout(inner, 1.0);
    ts_ioloop_call_later(loop, 0.01, complete_later, inner);
    assert_int_equal(ts_ioloop_run_sync(loop, outer, 5), 0);
    assert_int_equal(ts_future_error(outer), 0);
    assert_string_equal(ts_future_result(outer), "late");
    ts_future_unref(inner); /* outer keeps it alive: its result is borrowed */
    assert_string_equal(ts_future_result(outer), "late");
    ts_future_unref(outer);

    /* the timeout wins; the inner future is not cancelled and completes later */
    inner = ts_future_new(loop);
    outer = ts_with_timeout(inner, 0.02);
    double t0 = ts_ioloop_time(loop);
    assert_int_equal(ts_ioloop_run_sync(loop, outer, 5), 0);
    assert_true(ts_ioloop_time(loop) - t0 >= 0.015);
    assert_int_equal(ts_future_error(outer), TS_ETIMEDOUT);
    assert_false(ts_future_done(inner));
    ts_future_unref(outer);
    ts_future_set_result(inner, strdup("after"), free);
    spin(loop, 0.01);
    ts_future_unref(inner);

    /* an error passes through */
    inner = ts_future_new(loop);
    outer = ts_with_timeout(inner, 1.0);
    ts_future_set_error(inner, TS_ECLOSED);
    assert_int_equal(ts_ioloop_run_sync(loop, outer, 5), 0);
    assert_int_equal(ts_future_error(outer), TS_ECLOSED);
    ts_future_unref(outer);
    ts_future_unref(inner);
    ts_ioloop_free(loop, false);
}

static void fail_later(ts_ioloop *loop, void *arg)
{
    (void)loop;
    ts_future_set_error(arg, -5);
}

static void test_multi(void **state)
{
    (void)state;
    ts_ioloop *loop = ts_ioloop_new();
    ts_future *fs[3];
    for (int i = 0; i < 3; i++) {
        fs[i] = ts_future_new(loop);
        ts_ioloop_call_later(loop, 0.005 * (3 - i), complete_later, fs[i]);
    }
    ts_future *all = ts_future_multi(loop, fs, 3);
    assert_int_equal(ts_ioloop_run_sync(loop, all, 5), 0);
    assert_int_equal(ts_future_error(all), 0);
    for (int i = 0; i < 3; i++) {
        assert_true(ts_future_done(fs[i]));
        assert_string_equal(ts_future_result(fs[i]), "late");
        ts_future_unref(fs[i]);
    }
    ts_future_unref(all);

    /* fails fast on the first error, before the slow one completes */
    ts_future *slow = ts_future_new(loop), *bad = ts_future_new(loop);
    ts_future *pair[2] = {slow, bad};
    all = ts_future_multi(loop, pair, 2);
    ts_ioloop_call_later(loop, 0.005, fail_later, bad);
    assert_int_equal(ts_ioloop_run_sync(loop, all, 5), 0);
    assert_int_equal(ts_future_error(all), -5);
    assert_false(ts_future_done(slow));
    ts_future_set_result(slow, NULL, NULL);
    spin(loop, 0.01);
    ts_future_unref(slow);
    ts_future_unref(bad);
    ts_future_unref(all);

    /* none */
    all = ts_future_multi(loop, NULL, 0);
    assert_true(ts_future_done(all));
    ts_future_unref(all);
    ts_ioloop_free(loop, false);
}

static int g_allocs;

static void *count_malloc(size_t n)
{
    g_allocs++;
    return malloc(n);
}

static void *count_realloc(void *p, size_t n)
{
    if (!p)
        g_allocs++;
    return realloc(p, n);
}

static void count_free(void *p)
{
    if (p)
        g_allocs--;
    free(p);
}

/* Allocation goes through one place: a hook sees every allocation, and all are given back. */
static void test_allocator_hook(void **state)
{
    (void)state;
    ts_allocator a = {count_malloc, count_realloc, count_free};
    assert_int_equal(ts_set_allocator(&(ts_allocator){NULL, NULL, NULL}), TS_EINVAL);
    assert_int_equal(ts_set_allocator(&a), 0);
    g_allocs = 0;
    ts_ioloop *loop = ts_ioloop_new();
    ts_future *f = ts_future_new(loop);
    cb_state st = {0};
    ts_future_add_done_callback(f, done_cb, &st);
    ts_bytes *b = ts_bytes_new("abc", 3);
    assert_int_equal(b->len, 3);
    assert_string_equal(b->data, "abc");
    ts_future_set_result(f, b, ts_bytes_free);
    assert_true(g_allocs > 0);
    spin(loop, 0.01);
    ts_future_unref(f);
    ts_ioloop_free(loop, false);
    assert_int_equal(g_allocs, 0);
    ts_set_allocator(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_result_and_callbacks_not_inline),
        cmocka_unit_test(test_set_twice_is_reported),
        cmocka_unit_test(test_error_and_steal),
        cmocka_unit_test(test_refcount_and_unref_inside_callback),
        cmocka_unit_test(test_callbacks_in_registration_order),
        cmocka_unit_test(test_with_timeout),
        cmocka_unit_test(test_multi),
        cmocka_unit_test(test_allocator_hook),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
