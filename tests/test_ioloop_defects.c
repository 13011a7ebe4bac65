/*
 * Regression tests for loop and future defects: each case failed (hung,
 * lost an error or misreported) before its fix.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include <cmocka.h>
#include <ev.h>

#include "testutil.h"

static void on_alarm(int sig)
{
    (void)sig;
    static const char msg[] = "test_ioloop_defects: watchdog: a loop hung\n";
    (void)!write(2, msg, sizeof msg - 1);
    _exit(3);
}

/* A watchdog outside the loop: a run_sync that never returns cannot stop itself. */
static void arm_watchdog(unsigned seconds)
{
    signal(SIGALRM, on_alarm);
    alarm(seconds);
}

/*
 * run_sync with a timeout whose timer cannot be allocated used to run with
 * no timer at all: a future that never completes hung it forever. Fail each
 * allocation of the call in turn; each outcome must be TS_ENOMEM or the
 * timeout, and the timer's failure must be among them.
 */
static void test_run_sync_timer_alloc_failure(void **state)
{
    (void)state;
    arm_watchdog(20);
    bool saw_enomem = false;
    for (long n = 0; n < 8; n++) {
        ts_ioloop *loop = ts_ioloop_new();
        assert_non_null(loop);
        ts_future *f = ts_future_new(loop);
        assert_non_null(f);
        tu_use_counting_allocator();
        long before = tu_alloc_count();
        tu_fail_alloc_after(n);
        int r = ts_ioloop_run_sync(loop, f, 0.05);
        long used = tu_alloc_count() - before;
        tu_restore_allocator();
        assert_true(r == TS_ENOMEM || r == TS_ETIMEDOUT);
        if (r == TS_ENOMEM)
            saw_enomem = true;
        assert_false(ts_future_done(f));
        ts_future_unref(f);
        ts_ioloop_free(loop, false);
        if (used <= n)
            break; /* the call made fewer than n + 1 allocations: every one has been failed */
    }
    assert_true(saw_enomem);
    alarm(0);
}

/* The documented rule: 0 means done, and then the future's error is the outcome. */
static void fail_it(ts_ioloop *loop, void *arg)
{
    (void)loop;
    ts_future_set_error(arg, (-ECONNREFUSED));
}

static void test_run_sync_error_rule(void **state)
{
    (void)state;
    arm_watchdog(10);
    ts_ioloop *loop = ts_ioloop_new();
    ts_future *f = ts_future_new(loop);
    assert_int_equal(ts_ioloop_add_callback(loop, fail_it, f), 0);
    int r = ts_ioloop_run_sync(loop, f, 5);
    assert_int_equal(r, 0);
    assert_int_equal(ts_future_error(f), (-ECONNREFUSED));
    ts_future_unref(f);

    ts_future *never = ts_future_new(loop);
    assert_int_equal(ts_ioloop_run_sync(loop, never, 0.02), TS_ETIMEDOUT);
    assert_false(ts_future_done(never));
    ts_future_unref(never);
    ts_ioloop_free(loop, false);
    alarm(0);
}

/*
 * ts_with_timeout around a future that owns its result (a stream, say): the
 * caller took the result from the wrapper, yet releasing the futures ran the
 * inner future's destructor on it (closed the stream the caller kept).
 * Stealing from the wrapper now moves the result out of the inner one too.
 */
static int g_dtor_runs;
static void count_dtor(void *p)
{
    g_dtor_runs++;
    free(p);
}

static void complete_inner(ts_ioloop *loop, void *arg)
{
    (void)loop;
    int *v = malloc(sizeof *v);
    *v = 42;
    ts_future_set_result(arg, v, count_dtor);
}

static void test_with_timeout_steal_moves_inner_result(void **state)
{
    (void)state;
    arm_watchdog(10);
    ts_ioloop *loop = ts_ioloop_new();
    g_dtor_runs = 0;
    for (int done_first = 0; done_first < 2; done_first++) {
        ts_future *inner = ts_future_new(loop);
        if (done_first) {
            complete_inner(loop, inner);
        } else {
            assert_int_equal(ts_ioloop_add_callback(loop, complete_inner, inner), 0);
        }
        ts_future *outer = ts_with_timeout(inner, 5);
        assert_non_null(outer);
        ts_future_unref(inner); /* the wrapper keeps it alive */
        assert_int_equal(ts_ioloop_run_sync(loop, outer, 5), 0);
        int *v = ts_future_steal_result(outer);
        assert_non_null(v);
        ts_future_unref(outer); /* frees inner as well */
        assert_int_equal(g_dtor_runs, 0); /* the result is ours: not destroyed */
        assert_int_equal(*v, 42);
        free(v);
    }
    /* Not stolen: the inner future still owns it and destroys it. */
    ts_future *inner = ts_future_new(loop);
    complete_inner(loop, inner);
    ts_future *outer = ts_with_timeout(inner, 5);
    ts_future_unref(inner);
    assert_int_equal(*(int *)ts_future_result(outer), 42);
    ts_future_unref(outer);
    assert_int_equal(g_dtor_runs, 1);
    ts_ioloop_free(loop, false);
    alarm(0);
}

/* ---- a borrowed loop run by the host's ev_run() ------------------------- */

typedef struct embed {
    ts_ioloop *loop;
    ts_ioloop *seen_current;
    bool stopped;
} embed;

static void embedded_cb(ts_ioloop *loop, void *arg)
{
    embed *e = arg;
    e->seen_current = ts_ioloop_current();
    e->stopped = true;
    ts_ioloop_stop(loop);
}

static void host_timer_cb(struct ev_loop *ev, ev_timer *w, int revents)
{
    (void)ev, (void)w, (void)revents;
}

/* Inside callbacks the loop is current, and ts_ioloop_stop() ends the host's ev_run(). */
static void test_borrowed_loop_current_and_stop(void **state)
{
    (void)state;
    arm_watchdog(10);
    struct ev_loop *ev = ev_loop_new(EVFLAG_AUTO);
    ts_ioloop *loop = ts_ioloop_new_from_ev(ev);
    ev_timer keepalive; /* the host's own work: 30 s, so only the stop can end ev_run soon */
    ev_timer_init(&keepalive, host_timer_cb, 30, 0);
    ev_timer_start(ev, &keepalive);
    embed e = {.loop = loop};
    assert_int_equal(ts_ioloop_add_callback(loop, embedded_cb, &e), 0);
    double t0 = ts_ioloop_time(loop);
    ev_run(ev, 0);
    assert_true(e.stopped);
    assert_ptr_equal(e.seen_current, loop);
    assert_true(ts_ioloop_time(loop) - t0 < 5);
    ev_timer_stop(ev, &keepalive);
    ts_ioloop_free(loop, false);
    ev_loop_destroy(ev);
    alarm(0);
}

static void *slow_job(void *arg, int *err)
{
    (void)err;
    usleep(200 * 1000);
    return arg;
}

/* ev_run() returned while a thread-pool job was still running: nothing held the libev loop. */
static void test_borrowed_loop_waits_for_executor_job(void **state)
{
    (void)state;
    arm_watchdog(10);
    struct ev_loop *ev = ev_loop_new(EVFLAG_AUTO);
    ts_ioloop *loop = ts_ioloop_new_from_ev(ev);
    static int token;
    ts_future *f = ts_ioloop_run_in_executor(loop, slow_job, &token, NULL);
    assert_non_null(f);
    ev_run(ev, 0); /* no watcher of the host's: only the job keeps it running */
    assert_true(ts_future_done(f));
    assert_ptr_equal(ts_future_result(f), &token);
    ts_future_unref(f);
    ev_run(ev, EVRUN_NOWAIT); /* and once it is back, nothing holds the loop any more */
    ts_ioloop_free(loop, false);
    ev_loop_destroy(ev);
    alarm(0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_run_sync_timer_alloc_failure),
        cmocka_unit_test(test_run_sync_error_rule),
        cmocka_unit_test(test_with_timeout_steal_moves_inner_result),
        cmocka_unit_test(test_borrowed_loop_current_and_stop),
        cmocka_unit_test(test_borrowed_loop_waits_for_executor_job),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
