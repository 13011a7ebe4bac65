/* IOLoop behaviour, ported from Tornado's test/ioloop_test.py where it applies to C. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <ev.h>

#include "tstream.h"
#include "ioloop_int.h"
#include "testutil.h"

static void watchdog_fired(ts_ioloop *loop, void *arg)
{
    (void)loop;
    fail_msg("watchdog: test ran past %s", (const char *)arg);
}

/* Every test bounds its own time. */
static uint64_t watchdog(ts_ioloop *loop, double seconds)
{
    return ts_ioloop_call_later(loop, seconds, watchdog_fired, "its time limit");
}

static void stop_cb(ts_ioloop *loop, void *arg)
{
    (void)arg;
    ts_ioloop_stop(loop);
}

/* ---- callbacks ------------------------------------------------------------ */

typedef struct order_rec {
    int seen[16];
    int n;
} order_rec;

typedef struct tagged {
    order_rec *rec;
    int tag;
} tagged;

static void record_cb(ts_ioloop *loop, void *arg)
{
    (void)loop;
    tagged *t = arg;
    t->rec->seen[t->rec->n++] = t->tag;
}

static void test_callbacks_fifo(void **state)
{
    (void)state;
    ts_ioloop *loop = ts_ioloop_new();
    assert_non_null(loop);
    order_rec rec = {0};
    tagged t[5];
    for (int i = 0; i < 5; i++) {
        t[i] = (tagged){&rec, i};
        assert_int_equal(ts_ioloop_add_callback(loop, record_cb, &t[i]), 0);
    }
    assert_int_equal(rec.n, 0); /* nothing runs inline */
    ts_ioloop_add_callback(loop, stop_cb, NULL);
    uint64_t wd = watchdog(loop, 5);
    ts_ioloop_start(loop);
    ts_ioloop_remove_timeout(loop, wd);
    assert_int_equal(rec.n, 5);
    for (int i = 0; i < 5; i++)
        assert_int_equal(rec.seen[i], i);
    ts_ioloop_free(loop, false);
}

/* A callback added by a callback runs in the next iteration: I/O is polled in between. */
typedef struct iter_state {
    int io_calls;
    int io_at_a, io_at_b;
    int fds[2];
} iter_state;

static void iter_io(ts_ioloop *loop, int fd, int events, void *arg)
{
    (void)loop, (void)fd, (void)events;
    ((iter_state *)arg)->io_calls++;
}

static void iter_b(ts_ioloop *loop, void *arg)
{
    iter_state *st = arg;
    st->io_at_b = st->io_calls;
    ts_ioloop_stop(loop);
}

static void iter_a(ts_ioloop *loop, void *arg)
{
    iter_state *st = arg;
    st->io_at_a = st->io_calls;
    ts_ioloop_add_callback(loop, iter_b, st);
}

static void test_callback_added_in_callback_waits(void **state)
{
    (void)state;
    ts_ioloop *loop = ts_ioloop_new();
    iter_state st = {0};
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, st.fds), 0);
    assert_int_equal(write(st.fds[1], "x", 1), 1); /* always readable */
    assert_int_equal(ts_ioloop_add_handler(loop, st.fds[0], TS_IOLOOP_READ, iter_io, &st), 0);
    ts_ioloop_add_callback(loop, iter_a, &st);
    uint64_t wd = watchdog(loop, 5);
    ts_ioloop_start(loop);
    ts_ioloop_remove_timeout(loop, wd);
    assert_true(st.io_at_b > st.io_at_a);
    ts_ioloop_remove_handler(loop, st.fds[0]);
    close(st.fds[0]);
    close(st.fds[1]);
    ts_ioloop_free(loop, false);
}

/*
 * Library completions (ts__ioloop_defer) run in the iteration that queued
 * them, but as a batch: one queued while the batch runs waits for the next
 * iteration, after a poll. A chain of completions (a stream continuing past
 * its per-run bound) therefore cannot keep the loop from its fds.
 */
typedef struct defer_state {
    iter_state *it;
    int left;
    int io_at_start, io_at_end;
    ts__loop_member member; /* a loop member, as a stream is: its links hold its place in the queue */
    ts_ioloop *loop;
} defer_state;

static void defer_chain(ts__loop_member *m)
{
    defer_state *d = (defer_state *)((char *)m - offsetof(defer_state, member));
    if (--d->left > 0) {
        ts__ioloop_defer(d->loop, &d->member);
        return;
    }
    d->io_at_end = d->it->io_calls;
    ts_ioloop_stop(d->loop);
}

static void defer_member_end(ts__loop_member *m) { ts__ioloop_detach(m); }
static const ts__member_ops defer_ops = {defer_member_end, defer_member_end, defer_chain};

static void defer_start(ts_ioloop *loop, void *arg)
{
    defer_state *d = arg;
    d->io_at_start = d->it->io_calls;
    ts__ioloop_defer(loop, &d->member);
}

/*
 * A member that leaves the loop while queued for a deferred run (a stream
 * freed by the callback of one run before it) is not run, and the batch
 * goes on with the rest in order.
 */
typedef struct batch_member {
    ts__loop_member member;
    int *log, *nlog, id;
    struct batch_member *drop; /* detached by this one's run */
} batch_member;

static void batch_run(ts__loop_member *m)
{
    batch_member *b = (batch_member *)m;
    b->log[(*b->nlog)++] = b->id;
    if (b->drop)
        ts__ioloop_detach(&b->drop->member);
}

static const ts__member_ops batch_ops = {defer_member_end, defer_member_end, batch_run};

static void test_deferred_member_gone_from_batch(void **state)
{
    (void)state;
    ts_ioloop *loop = ts_ioloop_new();
    int log[8], nlog = 0;
    batch_member b[4];
    for (int i = 0; i < 4; i++) {
        b[i] = (batch_member){.log = log, .nlog = &nlog, .id = i};
        ts__ioloop_attach(loop, &b[i].member, &batch_ops);
    }
    b[0].drop = &b[1]; /* queued after it: gone before its turn */
    for (int i = 0; i < 4; i++)
        ts__ioloop_defer(loop, &b[i].member);
    tu_run_iterations(loop, 2);
    assert_int_equal(nlog, 3);
    assert_int_equal(log[0], 0);
    assert_int_equal(log[1], 2);
    assert_int_equal(log[2], 3);
    assert_null(b[1].member.next); /* on no list */
    /* the others are members again: the loop's end reaches them */
    ts_ioloop_free(loop, false);
    for (int i = 0; i < 4; i++)
        assert_null(b[i].member.next);
}

static void test_deferred_completions_batched_per_iteration(void **state)
{
    (void)state;
    ts_ioloop *loop = ts_ioloop_new();
    iter_state st = {0};
    defer_state d = {&st, 100, 0, 0, {0}, loop};
    ts__ioloop_attach(loop, &d.member, &defer_ops);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, st.fds), 0);
    assert_int_equal(write(st.fds[1], "x", 1), 1); /* always readable: every poll counts */
    assert_int_equal(ts_ioloop_add_handler(loop, st.fds[0], TS_IOLOOP_READ, iter_io, &st), 0);
    ts_ioloop_add_callback(loop, defer_start, &d);
    uint64_t wd = watchdog(loop, 5);
    ts_ioloop_start(loop);
    ts_ioloop_remove_timeout(loop, wd);
    assert_int_equal(d.left, 0);
    /* 100 chained completions: the first in defer_start's iteration, then one per poll. */
    assert_int_equal(d.io_at_end - d.io_at_start, 99);
    ts_ioloop_remove_handler(loop, st.fds[0]);
    close(st.fds[0]);
    close(st.fds[1]);
    ts_ioloop_free(loop, false);
}

typedef struct thread_arg {
    ts_ioloop *loop;
    int index;
    unsigned char *hits;
    int per_thread;
} thread_arg;

static void *stop_from_thread(void *arg)
{
    usleep(50 * 1000);
    ts_ioloop_add_callback(arg, stop_cb, NULL);
    return NULL;
}

static void test_add_callback_from_thread_wakes_loop(void **state)
{
    (void)state;
    ts_ioloop *loop = ts_ioloop_new();
    pthread_t th;
    uint64_t wd = watchdog(loop, 5);
    double t0 = ts_ioloop_time(loop);
    assert_int_equal(pthread_create(&th, NULL, stop_from_thread, loop), 0);
    ts_ioloop_start(loop); /* sleeps in the poller until the thread wakes it */
    pthread_join(th, NULL);
    double elapsed = ts_ioloop_time(loop) - t0;
    assert_true(elapsed >= 0.04 && elapsed < 4);
    ts_ioloop_remove_timeout(loop, wd);
    ts_ioloop_free(loop, false);
}

static int g_total_hits;

static void hit_cb(ts_ioloop *loop, void *arg)
{
    (void)loop;
    unsigned char *slot = arg;
    (*slot)++;
    g_total_hits++;
}

static void *spam_thread(void *arg)
{
    thread_arg *ta = arg;
    for (int i = 0; i < ta->per_thread; i++)
        while (ts_ioloop_add_callback(ta->loop, hit_cb, &ta->hits[(size_t)ta->index * ta->per_thread + i]) != 0)
            usleep(100);
    return NULL;
}

static void poll_done(ts_ioloop *loop, void *arg)
{
    int *want = arg;
    if (g_total_hits >= *want)
        ts_ioloop_stop(loop);
    else
        ts_ioloop_call_later(loop, 0.005, poll_done, arg);
}

static void test_many_threads_each_callback_once(void **state)
{
    (void)state;
    enum { THREADS = 4, PER = 100000 };
    ts_ioloop *loop = ts_ioloop_new();
    unsigned char *hits = calloc((size_t)THREADS * PER, 1);
    pthread_t th[THREADS];
    thread_arg ta[THREADS];
    g_total_hits = 0;
    for (int i = 0; i < THREADS; i++) {
        ta[i] = (thread_arg){loop, i, hits, PER};
        assert_int_equal(pthread_create(&th[i], NULL, spam_thread, &ta[i]), 0);
    }
    int want = THREADS * PER;
    ts_ioloop_call_later(loop, 0.005, poll_done, &want);
    uint64_t wd = watchdog(loop, 120);
    ts_ioloop_start(loop);
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    ts_ioloop_remove_timeout(loop, wd);
    assert_int_equal(g_total_hits, want);
    for (size_t i = 0; i < (size_t)want; i++)
        if (hits[i] != 1)
            fail_msg("callback %zu ran %d times", i, hits[i]);
    free(hits);
    ts_ioloop_free(loop, false);
}

/* ---- stop ----------------------------------------------------------------- */

static void test_stop_before_start_returns_after_one_iteration(void **state)
{
    (void)state;
    ts_ioloop *loop = ts_ioloop_new();
    order_rec rec = {0};
    tagged t = {&rec, 7};
    ts_ioloop_add_callback(loop, record_cb, &t);
    ts_ioloop_stop(loop);
    uint64_t wd = watchdog(loop, 5);
    ts_ioloop_start(loop);
    ts_ioloop_remove_timeout(loop, wd);
    assert_int_equal(rec.n, 1); /* callbacks queued before the stop still ran */
    /* the stop was consumed: a later start runs until stopped again */
    ts_ioloop_call_later(loop, 0.02, stop_cb, NULL);
    double t0 = ts_ioloop_time(loop);
    ts_ioloop_start(loop);
    assert_true(ts_ioloop_time(loop) - t0 >= 0.015);
    ts_ioloop_free(loop, false);
}

static void *stop_direct_thread(void *arg)
{
    usleep(30 * 1000);
    ts_ioloop_stop(arg);
    return NULL;
}

static void test_stop_from_other_thread(void **state)
{
    (void)state;
    ts_ioloop *loop = ts_ioloop_new();
    pthread_t th;
    uint64_t wd = watchdog(loop, 5);
    assert_int_equal(pthread_create(&th, NULL, stop_direct_thread, loop), 0);
    assert_int_equal(ts_ioloop_start(loop), 0);
    pthread_join(th, NULL);
    ts_ioloop_remove_timeout(loop, wd);
    assert_false(ts_ioloop_running(loop));
    ts_ioloop_free(loop, false);
}

static void restart_cb(ts_ioloop *loop, void *arg)
{
    *(int *)arg = ts_ioloop_start(loop);
    ts_ioloop_stop(loop);
}

static void test_start_while_running_refused(void **state)
{
    (void)state;
    ts_ioloop *loop = ts_ioloop_new();
    int rc = 1;
    ts_ioloop_add_callback(loop, restart_cb, &rc);
    uint64_t wd = watchdog(loop, 5);
    ts_ioloop_start(loop);
    ts_ioloop_remove_timeout(loop, wd);
    assert_int_equal(rc, TS_ESTATE);
    ts_ioloop_free(loop, false);
}

/* ---- timeouts ------------------------------------------------------------- */

static void test_timeout_order(void **state)
{
    (void)state;
    ts_ioloop *loop = ts_ioloop_new();
    order_rec rec = {0};
    tagged t[6];
    for (int i = 0; i < 6; i++)
        t[i] = (tagged){&rec, i};
    double now = ts_ioloop_time(loop);
    ts_ioloop_call_at(loop, now + 0.03, record_cb, &t[3]);
    ts_ioloop_call_later(loop, 0.01, record_cb, &t[0]);
    ts_ioloop_call_at(loop, now + 0.02, record_cb, &t[1]);
    ts_ioloop_call_at(loop, now + 0.02, record_cb, &t[2]); /* same deadline: insertion order */
    ts_ioloop_call_at(loop, now + 0.04, record_cb, &t[4]);
    ts_ioloop_call_at(loop, now + 0.04, record_cb, &t[5]);
    ts_ioloop_call_at(loop, now + 0.05, stop_cb, NULL);
    uint64_t wd = watchdog(loop, 5);
    ts_ioloop_start(loop);
    ts_ioloop_remove_timeout(loop, wd);
    assert_int_equal(rec.n, 6);
    for (int i = 0; i < 6; i++)
        assert_int_equal(rec.seen[i], i);
    ts_ioloop_free(loop, false);
}

typedef struct remove_state {
    uint64_t self, other;
    int self_calls, other_calls;
    bool removed_self, removed_other, removed_twice;
} remove_state;

static void other_cb(ts_ioloop *loop, void *arg)
{
    (void)loop;
    ((remove_state *)arg)->other_calls++;
}

static void remover_cb(ts_ioloop *loop, void *arg)
{
    remove_state *st = arg;
    st->self_calls++;
    st->removed_self = ts_ioloop_remove_timeout(loop, st->self);   /* already running: false */
    st->removed_other = ts_ioloop_remove_timeout(loop, st->other); /* same deadline, later: true */
    st->removed_twice = ts_ioloop_remove_timeout(loop, st->other);
}

static void test_remove_timeout_inside_callbacks(void **state)
{
    (void)state;
    ts_ioloop *loop = ts_ioloop_new();
    remove_state st = {0};
    double at = ts_ioloop_time(loop) + 0.01;
    st.self = ts_ioloop_call_at(loop, at, remover_cb, &st);
    st.other = ts_ioloop_call_at(loop, at, other_cb, &st);
    assert_true(st.self != 0 && st.other != 0 && st.self != st.other);
    uint64_t cancelled = ts_ioloop_call_later(loop, 0.005, other_cb, &st);
    assert_true(ts_ioloop_remove_timeout(loop, cancelled));
    assert_false(ts_ioloop_remove_timeout(loop, cancelled));
    assert_false(ts_ioloop_remove_timeout(loop, 0));
    assert_false(ts_ioloop_remove_timeout(loop, 0xffffffffffffull));
    ts_ioloop_call_later(loop, 0.05, stop_cb, NULL);
    uint64_t wd = watchdog(loop, 5);
    ts_ioloop_start(loop);
    ts_ioloop_remove_timeout(loop, wd);
    assert_int_equal(st.self_calls, 1);
    assert_int_equal(st.other_calls, 0);
    assert_false(st.removed_self);
    assert_true(st.removed_other);
    assert_false(st.removed_twice);
    /* a reused slot must not answer to the old id */
    uint64_t fresh = ts_ioloop_call_later(loop, 10, other_cb, &st);
    assert_false(ts_ioloop_remove_timeout(loop, st.other));
    assert_true(ts_ioloop_remove_timeout(loop, fresh));
    ts_ioloop_free(loop, false);
}

static void test_many_timeouts_random_removal(void **state)
{
    (void)state;
    enum { N = 2000 };
    ts_ioloop *loop = ts_ioloop_new();
    static uint64_t ids[N];
    remove_state st = {0};
    srand(42);
    for (int i = 0; i < N; i++)
        ids[i] = ts_ioloop_call_later(loop, 0.001 * (rand() % 20), other_cb, &st);
    int removed = 0;
    for (int i = 0; i < N; i += 3)
        removed += ts_ioloop_remove_timeout(loop, ids[i]);
    ts_ioloop_call_later(loop, 0.05, stop_cb, NULL);
    uint64_t wd = watchdog(loop, 5);
    ts_ioloop_start(loop);
    ts_ioloop_remove_timeout(loop, wd);
    assert_int_equal(removed, (N + 2) / 3);
    assert_int_equal(st.other_calls, N - removed);
    ts_ioloop_free(loop, false);
}

/* ---- run_sync ------------------------------------------------------------- */

static void complete_future(ts_ioloop *loop, void *arg)
{
    (void)loop;
    ts_future_set_result(arg, strdup("done"), free);
}

static void test_run_sync(void **state)
{
    (void)state;
    ts_ioloop *loop = ts_ioloop_new();
    ts_future *f = ts_future_new(loop);
    ts_ioloop_call_later(loop, 0.01, complete_future, f);
    assert_int_equal(ts_ioloop_run_sync(loop, f, 5), 0);
    assert_true(ts_future_done(f));
    assert_string_equal(ts_future_result(f), "done");
    ts_future_unref(f);
    ts_ioloop_free(loop, false);
}

static void test_run_sync_timeout(void **state)
{
    (void)state;
    ts_ioloop *loop = ts_ioloop_new();
    ts_future *f = ts_future_new(loop);
    double t0 = ts_ioloop_time(loop);
    assert_int_equal(ts_ioloop_run_sync(loop, f, 0.05), TS_ETIMEDOUT);
    double dt = ts_ioloop_time(loop) - t0;
    assert_true(dt >= 0.045 && dt < 2);
    assert_false(ts_future_done(f));
    /* the loop is reusable and the abandoned wait left nothing behind */
    ts_ioloop_call_later(loop, 0.01, complete_future, f);
    assert_int_equal(ts_ioloop_run_sync(loop, f, 5), 0);
    ts_future_unref(f);
    ts_ioloop_free(loop, false);
}

/* ---- periodic ------------------------------------------------------------- */

typedef struct periodic_state {
    ts_periodic *pc;
    int calls;
    double times[64];
    double sleep_first;
    int stop_after;
    bool free_inside;
} periodic_state;

static void periodic_cb(ts_ioloop *loop, void *arg)
{
    periodic_state *ps = arg;
    if (ps->calls < 64)
        ps->times[ps->calls] = ts_ioloop_time(loop);
    ps->calls++;
    if (ps->calls == 1 && ps->sleep_first > 0)
        usleep((useconds_t)(ps->sleep_first * 1e6));
    if (ps->stop_after && ps->calls == ps->stop_after) {
        if (ps->free_inside) {
            ts_periodic_free(ps->pc);
            ps->pc = NULL;
        } else {
            ts_periodic_stop(ps->pc);
        }
    }
}

static void test_periodic_counts(void **state)
{
    (void)state;
    ts_ioloop *loop = ts_ioloop_new();
    periodic_state ps = {0};
    ps.pc = ts_periodic_new(loop, periodic_cb, &ps, 0.02, 0);
    assert_non_null(ps.pc);
    assert_false(ts_periodic_is_running(ps.pc));
    ts_periodic_start(ps.pc);
    assert_true(ts_periodic_is_running(ps.pc));
    ts_ioloop_call_later(loop, 0.21, stop_cb, NULL);
    uint64_t wd = watchdog(loop, 5);
    ts_ioloop_start(loop);
    ts_ioloop_remove_timeout(loop, wd);
    assert_in_range(ps.calls, 5, 10); /* never more than one per interval; late runs (a loaded machine) are skipped */
    ts_periodic_stop(ps.pc);
    assert_false(ts_periodic_is_running(ps.pc));
    ts_periodic_free(ps.pc);
    assert_null(ts_periodic_new(loop, periodic_cb, &ps, 0, 0));
    assert_null(ts_periodic_new(loop, periodic_cb, &ps, 1, 1.5));
    ts_ioloop_free(loop, false);
}

/* A slow run makes the schedule skip the missed deadlines instead of bunching them. */
static void test_periodic_skips_missed_runs(void **state)
{
    (void)state;
    ts_ioloop *loop = ts_ioloop_new();
    periodic_state ps = {0};
    ps.sleep_first = 0.075; /* 3.75 intervals */
    ps.pc = ts_periodic_new(loop, periodic_cb, &ps, 0.02, 0);
    double t0 = ts_ioloop_time(loop);
    ts_periodic_start(ps.pc);
    ts_ioloop_call_later(loop, 0.18, stop_cb, NULL);
    uint64_t wd = watchdog(loop, 5);
    ts_ioloop_start(loop);
    ts_ioloop_remove_timeout(loop, wd);
    ts_periodic_free(ps.pc);
    assert_true(ps.calls >= 3);
    /* first run at t0+0.02 slept until t0+0.095: the next run is t0+0.10, not right away */
    double second = ps.times[1] - t0;
    assert_true(second >= 0.099);
    /*
     * No bunching: the k-th run after the slow one is due at t0 + 0.10 + 0.02 k
     * and never runs before that (a loaded machine may run it late, never
     * early), so at most one run per remaining interval: 0.02, 0.10, 0.12,
     * 0.14, 0.16 and 0.18 (due just before the stop, scheduled a moment later).
     */
    for (int i = 2; i < ps.calls && i < 64; i++)
        assert_true(ps.times[i] - t0 >= 0.10 + 0.02 * (i - 1) - 0.001);
    assert_true(ps.calls <= 6);
    ts_ioloop_free(loop, false);
}

static void test_periodic_stop_and_free_inside_callback(void **state)
{
    (void)state;
    ts_ioloop *loop = ts_ioloop_new();
    periodic_state a = {0}, b = {0};
    a.stop_after = 2;
    b.stop_after = 3;
    b.free_inside = true;
    a.pc = ts_periodic_new(loop, periodic_cb, &a, 0.005, 0.2);
    b.pc = ts_periodic_new(loop, periodic_cb, &b, 0.005, 0);
    ts_periodic_start(a.pc);
    ts_periodic_start(b.pc);
    ts_ioloop_call_later(loop, 0.1, stop_cb, NULL);
    uint64_t wd = watchdog(loop, 5);
    ts_ioloop_start(loop);
    ts_ioloop_remove_timeout(loop, wd);
    assert_int_equal(a.calls, 2);
    assert_int_equal(b.calls, 3);
    assert_null(b.pc);
    assert_false(ts_periodic_is_running(a.pc));
    ts_periodic_free(a.pc);
    ts_ioloop_free(loop, false);
}

/* ---- handlers ------------------------------------------------------------- */

typedef struct handler_state {
    int fds[2];
    int read_events, write_events, error_events;
    int calls;
    bool remove_on_read;
} handler_state;

static void handler_cb(ts_ioloop *loop, int fd, int events, void *arg)
{
    handler_state *hs = arg;
    hs->calls++;
    if (events & TS_IOLOOP_READ) {
        char buf[64];
        ssize_t n = read(fd, buf, sizeof buf);
        (void)n;
        hs->read_events++;
        if (hs->remove_on_read)
            assert_int_equal(ts_ioloop_remove_handler(loop, fd), 0);
    }
    if (events & TS_IOLOOP_WRITE) {
        hs->write_events++;
        ts_ioloop_update_handler(loop, fd, TS_IOLOOP_READ | TS_IOLOOP_ERROR);
    }
    if (events & TS_IOLOOP_ERROR)
        hs->error_events++;
}

static void writer_cb(ts_ioloop *loop, void *arg)
{
    (void)loop;
    handler_state *hs = arg;
    assert_int_equal(write(hs->fds[1], "ping", 4), 4);
}

static void closer_cb(ts_ioloop *loop, void *arg)
{
    (void)loop;
    handler_state *hs = arg;
    close(hs->fds[1]);
    hs->fds[1] = -1;
}

static void test_handler_events_on_socketpair(void **state)
{
    (void)state;
    ts_ioloop *loop = ts_ioloop_new();
    handler_state hs = {0};
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, hs.fds), 0);
    /* writable at once; the handler then switches itself to READ|ERROR */
    assert_int_equal(ts_ioloop_add_handler(loop, hs.fds[0], TS_IOLOOP_WRITE, handler_cb, &hs), 0);
    assert_int_equal(ts_ioloop_add_handler(loop, hs.fds[0], TS_IOLOOP_READ, handler_cb, &hs), -EEXIST);
    assert_int_equal(ts_ioloop_add_handler(loop, -1, TS_IOLOOP_READ, handler_cb, &hs), TS_EINVAL);
    assert_int_equal(ts_ioloop_add_handler(loop, hs.fds[1], 0, handler_cb, &hs), TS_EINVAL);
    ts_ioloop_call_later(loop, 0.02, writer_cb, &hs);
    ts_ioloop_call_later(loop, 0.04, closer_cb, &hs);
    ts_ioloop_call_later(loop, 0.08, stop_cb, NULL);
    uint64_t wd = watchdog(loop, 5);
    ts_ioloop_start(loop);
    ts_ioloop_remove_timeout(loop, wd);
    assert_int_equal(hs.write_events, 1);
    assert_true(hs.read_events >= 2);   /* the ping, then EOF */
    assert_true(hs.error_events >= 1); /* hang-up after the peer closed */
    assert_int_equal(ts_ioloop_remove_handler(loop, hs.fds[0]), 0);
    assert_int_equal(ts_ioloop_remove_handler(loop, hs.fds[0]), -ENOENT);
    assert_int_equal(ts_ioloop_update_handler(loop, hs.fds[0], TS_IOLOOP_READ), -ENOENT);
    close(hs.fds[0]);
    ts_ioloop_free(loop, false);
}

static void test_remove_handler_inside_handler(void **state)
{
    (void)state;
    ts_ioloop *loop = ts_ioloop_new();
    handler_state hs = {.remove_on_read = true};
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, hs.fds), 0);
    assert_int_equal(write(hs.fds[1], "abc", 3), 3);
    assert_int_equal(ts_ioloop_add_handler(loop, hs.fds[0], TS_IOLOOP_READ, handler_cb, &hs), 0);
    ts_ioloop_call_later(loop, 0.01, writer_cb, &hs); /* more data: must not be seen */
    ts_ioloop_call_later(loop, 0.05, stop_cb, NULL);
    uint64_t wd = watchdog(loop, 5);
    ts_ioloop_start(loop);
    ts_ioloop_remove_timeout(loop, wd);
    assert_int_equal(hs.read_events, 1);
    close(hs.fds[0]);
    close(hs.fds[1]);
    ts_ioloop_free(loop, false);
}

static void nop_handler(ts_ioloop *loop, int fd, int events, void *arg)
{
    (void)loop, (void)fd, (void)events, (void)arg;
}

static void test_free_all_fds(void **state)
{
    (void)state;
    int a[2], b[2];
    assert_int_equal(pipe(a), 0);
    assert_int_equal(pipe(b), 0);
    ts_ioloop *loop = ts_ioloop_new();
    assert_int_equal(ts_ioloop_add_handler(loop, a[0], TS_IOLOOP_READ, nop_handler, NULL), 0);
    ts_ioloop_free(loop, true);
    assert_int_equal(fcntl(a[0], F_GETFD), -1);
    assert_int_equal(errno, EBADF);
    assert_true(fcntl(a[1], F_GETFD) >= 0); /* not registered: untouched */

    loop = ts_ioloop_new();
    assert_int_equal(ts_ioloop_add_handler(loop, b[0], TS_IOLOOP_READ, nop_handler, NULL), 0);
    ts_ioloop_free(loop, false);
    assert_true(fcntl(b[0], F_GETFD) >= 0);
    close(a[1]);
    close(b[0]);
    close(b[1]);
}

/* ---- embedded handlers (caller-owned storage) ------------------------------ */

typedef struct emb {
    int before;     /* something in front, as a stream has */
    ts__handler h;
    int calls, events;
    ts_ioloop *loop; /* set: the callback removes the handler */
} emb;

static void on_emb(struct ev_loop *ev, ev_io *w, int revents)
{
    (void)ev;
    int events = ts__handler_events(w, revents);
    emb *e = w->data; /* the owner's word: the loop left it alone */
    assert_ptr_equal(e, (char *)w - offsetof(emb, h));
    if (!events)
        return;
    ts__handler *h = &e->h;
    e->calls++;
    e->events |= events;
    if (e->loop)
        ts__ioloop_remove_handler_embedded(e->loop, h);
}


static void on_user(ts_ioloop *loop, int fd, int events, void *arg)
{
    (void)loop, (void)fd, (void)events;
    (*(int *)arg)++;
}

static void test_embedded_handler_api(void **state)
{
    (void)state;
    int fds_before = tu_count_fds();
    ts_ioloop *loop = tu_loop_new(30);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    emb e = {0};
    e.h.io.data = &e;
    assert_int_equal(ts__ioloop_add_handler_embedded(loop, &e.h, -1, TS_IOLOOP_READ, on_emb), TS_EINVAL);
    assert_int_equal(ts__ioloop_add_handler_embedded(loop, &e.h, sv[0], 0, on_emb), TS_EINVAL);
    assert_int_equal(ts__ioloop_add_handler_embedded(loop, &e.h, sv[0], TS_IOLOOP_ERROR, on_emb), TS_EINVAL);
    assert_int_equal(ts__ioloop_add_handler_embedded(loop, &e.h, sv[0], TS_IOLOOP_READ, NULL), TS_EINVAL);
    assert_int_equal(ts__ioloop_add_handler_embedded(loop, &e.h, sv[0], TS_IOLOOP_READ, on_emb), 0);
    /* the fd table is shared: one handler per fd, and the public calls leave the embedded one alone */
    int ucalls = 0;
    emb other = {0};
    assert_int_equal(ts_ioloop_add_handler(loop, sv[0], TS_IOLOOP_READ, on_user, &ucalls), -EEXIST);
    assert_int_equal(ts__ioloop_add_handler_embedded(loop, &other.h, sv[0], TS_IOLOOP_READ, on_emb), -EEXIST);
    assert_int_equal(ts_ioloop_update_handler(loop, sv[0], TS_IOLOOP_WRITE), -ENOENT);
    assert_int_equal(ts_ioloop_remove_handler(loop, sv[0]), -ENOENT);
    /* not readable yet */
    tu_run_iterations(loop, 2);
    assert_int_equal(e.calls, 0);
    /* writable: only once asked for */
    ts__ioloop_update_handler_embedded(loop, &e.h, TS_IOLOOP_READ | TS_IOLOOP_WRITE);
    tu_run_iterations(loop, 1);
    assert_true(e.calls >= 1);
    assert_int_equal(e.events, TS_IOLOOP_WRITE);
    ts__ioloop_update_handler_embedded(loop, &e.h, TS_IOLOOP_READ);
    e.calls = e.events = 0;
    assert_int_equal(write(sv[1], "x", 1), 1);
    e.loop = loop; /* removed from its own callback: never called again */
    tu_run_iterations(loop, 3);
    assert_int_equal(e.calls, 1);
    assert_int_equal(e.events, TS_IOLOOP_READ);
    /* the fd is free again for a public handler */
    assert_int_equal(ts_ioloop_add_handler(loop, sv[0], TS_IOLOOP_READ, on_user, &ucalls), 0);
    tu_run_iterations(loop, 1);
    assert_true(ucalls >= 1);
    assert_int_equal(ts_ioloop_remove_handler(loop, sv[0]), 0);
    tu_loop_free(loop);
    close(sv[0]);
    close(sv[1]);
    assert_int_equal(tu_count_fds(), fds_before);
}

/*
 * A loop freed with members whose embedded handlers are registered: each
 * member removes its own when orphaned (as a stream does); the loop frees
 * neither the member nor its fd, and closes (all_fds) only what
 * ts_ioloop_add_handler registered.
 */
typedef struct emb_member {
    ts__loop_member member;
    emb e;
    ts_ioloop *loop;
    int orphaned;
} emb_member;

static void emb_member_close(ts__loop_member *m) { (void)m; }

static void emb_member_orphan(ts__loop_member *m)
{
    emb_member *em = (emb_member *)m;
    ts__ioloop_remove_handler_embedded(em->loop, &em->e.h);
    ts__ioloop_detach(m);
    em->orphaned++;
}

static void emb_member_run(ts__loop_member *m) { (void)m; }
static const ts__member_ops emb_member_ops = {emb_member_close, emb_member_orphan, emb_member_run};

static void test_loop_free_leaves_embedded_handler(void **state)
{
    (void)state;
    int fds_before = tu_count_fds();
    ts_ioloop *loop = ts_ioloop_new();
    assert_non_null(loop);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    emb_member *heap = calloc(1, sizeof *heap); /* freed by the loop, ASan would name it */
    assert_non_null(heap);
    emb_member onstack = {0};
    emb_member *ms[2] = {heap, &onstack};
    for (int i = 0; i < 2; i++) {
        ms[i]->loop = loop;
        ms[i]->e.h.io.data = &ms[i]->e;
        ts__ioloop_attach(loop, &ms[i]->member, &emb_member_ops);
    }
    int ucalls = 0;
    int extra = dup(sv[1]);
    assert_true(extra >= 0);
    assert_int_equal(ts__ioloop_add_handler_embedded(loop, &heap->e.h, sv[0], TS_IOLOOP_READ, on_emb), 0);
    assert_int_equal(ts__ioloop_add_handler_embedded(loop, &onstack.e.h, sv[1], TS_IOLOOP_WRITE, on_emb), 0);
    assert_int_equal(ts_ioloop_add_handler(loop, extra, TS_IOLOOP_READ, on_user, &ucalls), 0);
    assert_int_equal(ts_ioloop_add_handler(loop, sv[0], TS_IOLOOP_READ, on_user, &ucalls), -EEXIST);
    ts_ioloop_free(loop, true); /* all_fds closes what ts_ioloop_add_handler registered, only that */
    struct pollfd p[2] = {{.fd = sv[0]}, {.fd = sv[1]}};
    assert_int_equal(poll(p, 2, 0), 0); /* both still open: no POLLNVAL */
    assert_int_equal(fcntl(extra, F_GETFD), -1); /* closed by the loop */
    assert_int_equal(errno, EBADF);
    assert_int_equal(heap->e.calls + onstack.e.calls, 0);
    assert_int_equal(heap->orphaned + onstack.orphaned, 2);
    assert_false(ev_is_active(&heap->e.h.io));
    assert_false(ev_is_active(&onstack.e.h.io));
    free(heap);
    close(sv[0]);
    close(sv[1]);
    assert_int_equal(tu_count_fds(), fds_before);
}

/* ---- executor ------------------------------------------------------------- */

static void *square_job(void *arg, int *err)
{
    intptr_t v = (intptr_t)arg;
    if (v < 0) {
        *err = -EDOM;
        return NULL;
    }
    usleep(1000);
    intptr_t *r = malloc(sizeof *r);
    *r = v * v;
    return r;
}

static void test_run_in_executor(void **state)
{
    (void)state;
    enum { N = 32 };
    ts_ioloop *loop = ts_ioloop_new();
    assert_int_equal(ts_ioloop_set_executor_threads(loop, 3), 0);
    ts_future *fs[N];
    for (int i = 0; i < N; i++)
        fs[i] = ts_ioloop_run_in_executor(loop, square_job, (void *)(intptr_t)(i == 5 ? -1 : i), free);
    assert_int_equal(ts_ioloop_set_executor_threads(loop, 2), TS_ESTATE);
    ts_future *all = ts_future_multi(loop, fs, N);
    for (int i = 0; i < N; i++) {
        if (!ts_future_done(fs[i]))
            assert_int_equal(ts_ioloop_run_sync(loop, fs[i], 5), 0);
    }
    for (int i = 0; i < N; i++) {
        if (i == 5) {
            assert_int_equal(ts_future_error(fs[i]), -EDOM);
        } else {
            assert_int_equal(ts_future_error(fs[i]), 0);
            assert_int_equal(*(intptr_t *)ts_future_result(fs[i]), i * i);
        }
        ts_future_unref(fs[i]);
    }
    assert_int_equal(ts_ioloop_run_sync(loop, all, 5), 0);
    assert_int_equal(ts_future_error(all), -EDOM);
    ts_future_unref(all);
    ts_ioloop_free(loop, false);
}

static void *slow_job(void *arg, int *err)
{
    (void)err;
    usleep(20 * 1000);
    return strdup(arg);
}

/* Freeing the loop with jobs in flight waits for them and leaks nothing. */
static void test_free_with_jobs_in_flight(void **state)
{
    (void)state;
    ts_ioloop *loop = ts_ioloop_new();
    ts_ioloop_set_executor_threads(loop, 1);
    ts_future *a = ts_ioloop_run_in_executor(loop, slow_job, "a", free);
    ts_future *b = ts_ioloop_run_in_executor(loop, slow_job, "b", free);
    ts_future_unref(a);
    ts_future_unref(b);
    ts_ioloop_free(loop, false);
}

/* ---- signals, current, embedding, error hook ------------------------------ */

static ts_ioloop *g_sig_loop;
static int g_sig_calls;

static void sig_cb(ts_ioloop *loop, void *arg)
{
    (void)arg;
    g_sig_calls++;
    ts_ioloop_stop(loop);
}

static void on_sigusr1(int sig)
{
    (void)sig;
    ts_ioloop_add_callback_from_signal(g_sig_loop, sig_cb, NULL);
}

static void raise_cb(ts_ioloop *loop, void *arg)
{
    (void)loop, (void)arg;
    raise(SIGUSR1);
}

static void test_add_callback_from_signal(void **state)
{
    (void)state;
    g_sig_loop = ts_ioloop_new();
    g_sig_calls = 0;
    struct sigaction sa = {0}, old;
    sa.sa_handler = on_sigusr1;
    sigaction(SIGUSR1, &sa, &old);
    ts_ioloop_call_later(g_sig_loop, 0.01, raise_cb, NULL);
    uint64_t wd = watchdog(g_sig_loop, 5);
    ts_ioloop_start(g_sig_loop);
    ts_ioloop_remove_timeout(g_sig_loop, wd);
    sigaction(SIGUSR1, &old, NULL);
    assert_int_equal(g_sig_calls, 1);
    ts_ioloop_free(g_sig_loop, false);
}

static void current_cb(ts_ioloop *loop, void *arg)
{
    *(bool *)arg = ts_ioloop_current() == loop;
    ts_ioloop_stop(loop);
}

static void test_current(void **state)
{
    (void)state;
    assert_null(ts_ioloop_current());
    ts_ioloop *a = ts_ioloop_new(), *b = ts_ioloop_new();
    ts_ioloop_make_current(a);
    assert_ptr_equal(ts_ioloop_current(), a);
    bool inside = false;
    ts_ioloop_add_callback(b, current_cb, &inside);
    ts_ioloop_start(b);
    assert_true(inside);                     /* the running loop is current */
    assert_ptr_equal(ts_ioloop_current(), a); /* and the previous one comes back */
    ts_ioloop_free(a, false);
    assert_null(ts_ioloop_current());
    ts_ioloop_free(b, false);
}

static void ev_break_cb(ts_ioloop *loop, void *arg)
{
    (void)arg;
    ev_break(ts_ioloop_ev(loop), EVBREAK_ALL);
}

static void test_new_from_ev(void **state)
{
    (void)state;
    struct ev_loop *ev = ev_loop_new(EVFLAG_AUTO);
    ts_ioloop *loop = ts_ioloop_new_from_ev(ev);
    assert_ptr_equal(ts_ioloop_ev(loop), ev);
    order_rec rec = {0};
    tagged t[2] = {{&rec, 1}, {&rec, 2}};
    ts_ioloop_add_callback(loop, record_cb, &t[0]);
    ts_ioloop_call_later(loop, 0.01, record_cb, &t[1]);
    ts_ioloop_call_later(loop, 0.02, ev_break_cb, NULL);
    uint64_t wd = watchdog(loop, 5);
    ev_run(ev, 0); /* the host program runs libev itself */
    ts_ioloop_remove_timeout(loop, wd);
    assert_int_equal(rec.n, 2);
    ts_ioloop_free(loop, false);
    /* the borrowed loop survives and still works */
    ev_run(ev, EVRUN_NOWAIT);
    ev_loop_destroy(ev);
}

static char g_logged[512];

static void capture_log(ts_log_level level, const char *msg, void *arg)
{
    (void)arg;
    if (level == TS_LOG_ERROR)
        snprintf(g_logged, sizeof g_logged, "%s", msg);
}

static void test_callback_error_goes_to_log_hook(void **state)
{
    (void)state;
    ts_ioloop *loop = ts_ioloop_new();
    ts_log_set_handler(capture_log, NULL, TS_LOG_DEBUG);
    ts_ioloop_handle_callback_error(loop, "my_handler", TS_ECLOSED);
    ts_log_set_handler(NULL, NULL, TS_LOG_INFO);
    assert_non_null(strstr(g_logged, "my_handler"));
    assert_non_null(strstr(g_logged, "stream is closed"));
    ts_ioloop_free(loop, false);
}

static void test_errors_named(void **state)
{
    (void)state;
    assert_string_equal(ts_err_name(TS_ECLOSED), "TS_ECLOSED");
    assert_string_equal(ts_err_name(-ECONNRESET), "ECONNRESET");
    assert_string_equal(ts_strerror(TS_EUNSATISFIABLE), "read cannot be satisfied within max_bytes");
    assert_string_equal(ts_strerror(-ENOENT), strerror(ENOENT));
    assert_string_equal(ts_strerror(-99999), "unknown error");
    assert_true(TS_ECLOSED < -4095 && TS_EINTERNAL < -4095);
    assert_string_equal(ts_version(), TS_VERSION_STRING);
}

typedef struct rd_keeper {
    ts_ioloop *loop;
    unsigned tag;
    int reclaims;
} rd_keeper;

static void rd_give_back(void *arg)
{
    rd_keeper *k = arg;
    k->reclaims++;
    ts__ioloop_rdbuf_give(k->loop, k->tag);
}

/*
 * The shared read blocks are named by their tags: give, rest and use act on
 * the block named alone. With every block lent, a take reclaims one from a
 * keeper resting with it (never one using its block again) and lends it at
 * once, a block past the first too, which going back freed.
 */
static void test_read_blocks_by_tag(void **state)
{
    (void)state;
    ts_ioloop *loop = tu_loop_new(10);
    char *b[TS__LOOP_RDBUFS];
    unsigned t;
    for (unsigned i = 0; i < TS__LOOP_RDBUFS; i++) {
        b[i] = ts__ioloop_rdbuf_take(loop, &t);
        assert_non_null(b[i]);
        assert_int_equal(t, i + 1);
        for (unsigned j = 0; j < i; j++)
            assert_ptr_not_equal(b[i], b[j]);
    }
    assert_null(ts__ioloop_rdbuf_take(loop, &t)); /* none free, none resting */
    ts__ioloop_rdbuf_give(loop, 1);
    assert_ptr_equal(ts__ioloop_rdbuf_take(loop, &t), b[0]); /* the first outlives its loans */
    assert_int_equal(t, 1);
    ts__ioloop_rdbuf_give(loop, 3);
    assert_non_null(ts__ioloop_rdbuf_take(loop, &t));
    assert_int_equal(t, 3);

    rd_keeper k2 = {loop, 2, 0}, k4 = {loop, 4, 0};
    ts__ioloop_rdbuf_rest(loop, 2, rd_give_back, &k2);
    ts__ioloop_rdbuf_rest(loop, 4, rd_give_back, &k4);
    ts__ioloop_rdbuf_use(loop, 4); /* its keeper works in it again */
    assert_non_null(ts__ioloop_rdbuf_take(loop, &t));
    assert_int_equal(t, 2);
    assert_int_equal(k2.reclaims, 1);
    assert_int_equal(k4.reclaims, 0);
    assert_null(ts__ioloop_rdbuf_take(loop, &t));
    assert_int_equal(k4.reclaims, 0);
    for (unsigned i = 1; i <= TS__LOOP_RDBUFS; i++)
        ts__ioloop_rdbuf_give(loop, i);
    tu_loop_free(loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_callbacks_fifo),
        cmocka_unit_test(test_callback_added_in_callback_waits),
        cmocka_unit_test(test_deferred_completions_batched_per_iteration),
        cmocka_unit_test(test_deferred_member_gone_from_batch),
        cmocka_unit_test(test_add_callback_from_thread_wakes_loop),
        cmocka_unit_test(test_many_threads_each_callback_once),
        cmocka_unit_test(test_stop_before_start_returns_after_one_iteration),
        cmocka_unit_test(test_stop_from_other_thread),
        cmocka_unit_test(test_start_while_running_refused),
        cmocka_unit_test(test_timeout_order),
        cmocka_unit_test(test_remove_timeout_inside_callbacks),
        cmocka_unit_test(test_many_timeouts_random_removal),
        cmocka_unit_test(test_run_sync),
        cmocka_unit_test(test_run_sync_timeout),
        cmocka_unit_test(test_periodic_counts),
        cmocka_unit_test(test_periodic_skips_missed_runs),
        cmocka_unit_test(test_periodic_stop_and_free_inside_callback),
        cmocka_unit_test(test_handler_events_on_socketpair),
        cmocka_unit_test(test_remove_handler_inside_handler),
        cmocka_unit_test(test_free_all_fds),
        cmocka_unit_test(test_embedded_handler_api),
        cmocka_unit_test(test_loop_free_leaves_embedded_handler),
        cmocka_unit_test(test_run_in_executor),
        cmocka_unit_test(test_free_with_jobs_in_flight),
        cmocka_unit_test(test_add_callback_from_signal),
        cmocka_unit_test(test_current),
        cmocka_unit_test(test_new_from_ev),
        cmocka_unit_test(test_callback_error_goes_to_log_hook),
        cmocka_unit_test(test_errors_named),
        cmocka_unit_test(test_read_blocks_by_tag),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
