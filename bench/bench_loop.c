/*
 * bench_loop: the event loop's own costs against raw libev doing the same
 * work, measured in the same run. Prints key=value lines and the ratio
 * ours/raw (time; lower is better, 1.0 = as fast as raw libev).
 *
 *   callbacks: 2M callbacks queued from the loop in batches of 1000, each
 *              one a counter increment (raw: a hand-written queue drained
 *              by an ev_check watcher, kept awake by ev_idle).
 *   timers:    200k timeouts added at random delays, then all removed, on a
 *              loop that has held that many before (raw: ev_timer_start and
 *              ev_timer_stop on malloc'd watchers).
 *   fired:     50k timeouts spread over 1 ms that fire (raw: 50k ev_timers).
 *              Ours also keeps equal deadlines in insertion order, which
 *              libev does not promise.
 */
#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <tstream.h>

#define BATCH 1000
static long g_count, g_target;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---- ours --------------------------------------------------------------- */

static void ours_batch(ts_ioloop *loop, void *arg);

static void ours_inc(ts_ioloop *loop, void *arg)
{
    (void)arg;
    if (++g_count % BATCH == 0) {
        if (g_count >= g_target)
            ts_ioloop_stop(loop);
        else
            ts_ioloop_add_callback(loop, ours_batch, NULL);
    }
}

static void ours_batch(ts_ioloop *loop, void *arg)
{
    (void)arg;
    for (int i = 0; i < BATCH; i++)
        ts_ioloop_add_callback(loop, ours_inc, NULL);
}

static double ours_callbacks(long n)
{
    ts_ioloop *loop = ts_ioloop_new();
    g_count = 0;
    g_target = n;
    double t = now();
    ts_ioloop_add_callback(loop, ours_batch, NULL);
    ts_ioloop_start(loop);
    t = now() - t;
    ts_ioloop_free(loop, false);
    return t;
}

static void nop(ts_ioloop *loop, void *arg) { (void)loop, (void)arg; }

static double ours_timers(int n)
{
    ts_ioloop *loop = ts_ioloop_new();
    uint64_t *ids = malloc(sizeof *ids * n);
    double t = 0;
    for (int round = 0; round < 2; round++) { /* the first round grows the tables */
        srand(1);
        t = now();
        for (int i = 0; i < n; i++)
            ids[i] = ts_ioloop_call_later(loop, 1 + (rand() % 10000) / 1000.0, nop, NULL);
        for (int i = 0; i < n; i++)
            ts_ioloop_remove_timeout(loop, ids[i]);
        t = now() - t;
    }
    free(ids);
    ts_ioloop_free(loop, false);
    return t;
}

static void ours_fire(ts_ioloop *loop, void *arg)
{
    (void)arg;
    if (++g_count == g_target)
        ts_ioloop_stop(loop);
}

static double ours_fired(int n)
{
    ts_ioloop *loop = ts_ioloop_new();
    double t = 0;
    for (int round = 0; round < 2; round++) { /* the first round grows the tables */
        g_count = 0;
        g_target = n;
        t = now();
        srand(2);
        for (int i = 0; i < n; i++)
            ts_ioloop_call_later(loop, (rand() % 1000) * 1e-6, ours_fire, NULL);
        ts_ioloop_start(loop);
        t = now() - t;
    }
    ts_ioloop_free(loop, false);
    return t;
}

/* ---- raw libev ---------------------------------------------------------- */

typedef struct node {
    struct node *next;
    void (*cb)(struct ev_loop *);
} node;

static node *q_head, *q_tail, *q_spare;

static void raw_push(void (*cb)(struct ev_loop *))
{
    node *n = q_spare;
    if (n)
        q_spare = n->next;
    else
        n = malloc(sizeof *n);
    n->cb = cb;
    n->next = NULL;
    if (q_tail)
        q_tail->next = n;
    else
        q_head = n;
    q_tail = n;
}

static void raw_batch(struct ev_loop *ev);

static void raw_inc(struct ev_loop *ev)
{
    if (++g_count % BATCH == 0) {
        if (g_count >= g_target)
            ev_break(ev, EVBREAK_ALL);
        else
            raw_push(raw_batch);
    }
}

static void raw_batch(struct ev_loop *ev)
{
    (void)ev;
    for (int i = 0; i < BATCH; i++)
        raw_push(raw_inc);
}

static void raw_check(struct ev_loop *ev, ev_check *w, int revents)
{
    (void)w, (void)revents;
    node *n = q_head;
    q_head = q_tail = NULL;
    while (n) {
        node *next = n->next;
        void (*cb)(struct ev_loop *) = n->cb;
        n->next = q_spare;
        q_spare = n;
        cb(ev);
        n = next;
    }
}

static void raw_idle(struct ev_loop *ev, ev_idle *w, int revents) { (void)ev, (void)w, (void)revents; }

static double raw_callbacks(long n)
{
    struct ev_loop *ev = ev_loop_new(EVFLAG_AUTO);
    ev_check check;
    ev_idle idle;
    ev_check_init(&check, raw_check);
    ev_idle_init(&idle, raw_idle);
    ev_check_start(ev, &check);
    ev_idle_start(ev, &idle);
    g_count = 0;
    g_target = n;
    double t = now();
    raw_push(raw_batch);
    ev_run(ev, 0);
    t = now() - t;
    ev_check_stop(ev, &check);
    ev_idle_stop(ev, &idle);
    ev_loop_destroy(ev);
    while (q_spare) {
        node *next = q_spare->next;
        free(q_spare);
        q_spare = next;
    }
    return t;
}

static void raw_nop_timer(struct ev_loop *ev, ev_timer *w, int revents) { (void)ev, (void)w, (void)revents; }

static double raw_timers(int n)
{
    struct ev_loop *ev = ev_loop_new(EVFLAG_AUTO);
    ev_timer **ws = malloc(sizeof *ws * n);
    double t = 0;
    for (int round = 0; round < 2; round++) {
        srand(1);
        t = now();
        for (int i = 0; i < n; i++) {
            ws[i] = malloc(sizeof **ws);
            ev_timer_init(ws[i], raw_nop_timer, 1 + (rand() % 10000) / 1000.0, 0);
            ev_timer_start(ev, ws[i]);
        }
        for (int i = 0; i < n; i++) {
            ev_timer_stop(ev, ws[i]);
            free(ws[i]);
        }
        t = now() - t;
    }
    free(ws);
    ev_loop_destroy(ev);
    return t;
}

static void raw_fire(struct ev_loop *ev, ev_timer *w, int revents)
{
    (void)revents;
    free(w);
    if (++g_count == g_target)
        ev_break(ev, EVBREAK_ALL);
}

static double raw_fired(int n)
{
    struct ev_loop *ev = ev_loop_new(EVFLAG_AUTO);
    double t = 0;
    for (int round = 0; round < 2; round++) {
        g_count = 0;
        g_target = n;
        t = now();
        srand(2);
        for (int i = 0; i < n; i++) {
            ev_timer *w = malloc(sizeof *w);
            ev_timer_init(w, raw_fire, (rand() % 1000) * 1e-6, 0);
            ev_timer_start(ev, w);
        }
        ev_run(ev, 0);
        t = now() - t;
    }
    ev_loop_destroy(ev);
    return t;
}

static double best(double (*fn)(long), long n)
{
    double b = 1e9;
    for (int r = 0; r < 5; r++) {
        double t = fn(n);
        if (t < b)
            b = t;
    }
    return b;
}

static double ours_timers_l(long n) { return ours_timers((int)n); }
static double raw_timers_l(long n) { return raw_timers((int)n); }
static double ours_fired_l(long n) { return ours_fired((int)n); }
static double raw_fired_l(long n) { return raw_fired((int)n); }

static void report(const char *name, long n, double ours, double raw)
{
    printf("bench=%s n=%ld ours_ns_per_op=%.1f libev_ns_per_op=%.1f ratio_vs_libev=%.2f\n", name, n,
           ours / n * 1e9, raw / n * 1e9, ours / raw);
}

int main(void)
{
    long nc = 2000000, nt = 200000, nf = 50000;
    /* interleave so both see the same machine state; best of 5 each */
    double oc = best(ours_callbacks, nc), rc = best(raw_callbacks, nc);
    report("add_callback", nc, oc, rc);
    double ot = best(ours_timers_l, nt), rt = best(raw_timers_l, nt);
    report("timer_add_remove", nt, ot, rt);
    double of = best(ours_fired_l, nf), rf = best(raw_fired_l, nf);
    report("timer_fire", nf, of, rf);
    return 0;
}
