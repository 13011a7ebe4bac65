/*
 * Loop abuse (ctest label `adversarial`): the loop under callers that do
 * not play fair, while a line echo (the library's TCPServer and a client
 * stream, over loopback TCP) keeps flowing and is verified line by line:
 *   - a callback that re-adds itself forever: timers and the streams still
 *     run (work per iteration is bounded);
 *   - four threads adding callbacks as fast as they can: every callback
 *     runs exactly once;
 *   - a storm of signals at the loop's thread, whose handler wakes the loop
 *     (ts_ioloop_add_callback_from_signal): no crash, the loop keeps
 *     serving;
 *   - storms of connects to a dead port and to a name the resolver cannot
 *     resolve: each fails with -ECONNREFUSED / TS_ERESOLVE.
 * Each bounds its time (alarm() outside the loop, the loop watchdog) and
 * checks that the library's bytes (counted through ts_set_allocator()) and
 * fds come back.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "net_helpers.h"
#include "testutil.h"
#include "tls_certs.h"

/* ---- the echo that keeps flowing ------------------------------------------------ */

#define LINE 512

typedef struct echo {
    ts_ioloop *loop;
    ts_tcpserver *srv;
    nh_echo_stats stats;
    ts_iostream *c;
    int sent, echoed, bad, want;
    int status;
    char line[LINE];
} echo;

static void make_line(echo *e, int i)
{
    memset(e->line, 'a' + i % 26, LINE - 1);
    snprintf(e->line, 16, "%08d", i);
    e->line[8] = ' ';
    e->line[LINE - 1] = '\n';
}

static void echo_next(echo *e);

static void on_echoed(ts_iostream *s, int status, const char *data, size_t len, void *arg)
{
    (void)s;
    echo *e = arg;
    if (status != 0) {
        e->status = status;
        return;
    }
    make_line(e, e->echoed);
    if (len != LINE || memcmp(data, e->line, LINE) != 0)
        e->bad++;
    e->echoed++;
    echo_next(e);
}

/* One line out and its echo back, again and again until e->want lines went round. */
static void echo_next(echo *e)
{
    if (e->echoed >= e->want)
        return;
    make_line(e, e->sent++);
    if (ts_iostream_write(e->c, e->line, LINE, NULL, NULL) != 0 ||
        ts_iostream_read_until(e->c, "\n", 1, 0, on_echoed, e) != 0)
        e->status = TS_ECLOSED;
}

static void on_connected(int status, ts_iostream *s, const char *detail, void *arg)
{
    (void)detail;
    echo *e = arg;
    e->c = s;
    e->status = status;
    if (status == 0)
        echo_next(e);
}

static bool echo_started(void *arg) { return ((echo *)arg)->c != NULL || ((echo *)arg)->status != 0; }

static void echo_start(echo *e, ts_ioloop *loop, ts_tcpclient *client, int want)
{
    memset(e, 0, sizeof *e);
    e->loop = loop;
    e->want = want;
    e->srv = nh_echo_server_new(loop, NULL, &e->stats);
    assert_int_equal(ts_tcpserver_listen(e->srv, 0, "127.0.0.1"), 0);
    assert_int_equal(ts_tcpclient_connect(client, "127.0.0.1", ts_tcpserver_port(e->srv), NULL, on_connected, e), 0);
    assert_true(tu_run_until(loop, echo_started, e, 5));
    assert_int_equal(e->status, 0);
}

static bool echo_done(void *arg)
{
    echo *e = arg;
    return e->echoed >= e->want || e->status != 0 || e->bad;
}

static void echo_stop(echo *e)
{
    ts_iostream_free(e->c);
    ts_tcpserver_free(e->srv);
    nh_echo_close_all();
    tu_run_iterations(e->loop, 5);
}

/* A test's start: its loop, a client, the echo running; *base gets the library's bytes before. */
static ts_ioloop *abuse_begin(echo *e, ts_tcpclient **client, int want, long *base)
{
    *base = tu_mem_live();
    ts_ioloop *loop = tu_fixture_begin(50);
    *client = ts_tcpclient_new(loop, NULL);
    echo_start(e, loop, *client, want);
    return loop;
}

/* Its end: everything closed and freed, fds (the fixture) and library bytes back. */
static void abuse_end(ts_ioloop *loop, echo *e, ts_tcpclient *client, long base)
{
    echo_stop(e);
    ts_tcpclient_free(client);
    tu_fixture_end(loop);
    assert_int_equal(tu_mem_live(), base);
}

/* ---- a callback that re-adds itself forever ----------------------------------------- */

typedef struct forever {
    long runs;
    bool stop;
    int ticks;
} forever;

static void again(ts_ioloop *loop, void *arg)
{
    forever *f = arg;
    f->runs++;
    if (!f->stop)
        ts_ioloop_add_callback(loop, again, f);
}

static void tick(ts_ioloop *loop, void *arg)
{
    (void)loop;
    ((forever *)arg)->ticks++;
}

static void test_callback_readding_itself_forever(void **state)
{
    (void)state;
    alarm(30);
    echo e;
    ts_tcpclient *client;
    long base;
    ts_ioloop *loop = abuse_begin(&e, &client, 1 << 30, &base); /* keeps going until stopped */
    forever f = {0};
    ts_periodic *pc = ts_periodic_new(loop, tick, &f, 0.01, 0);
    ts_periodic_start(pc);
    assert_int_equal(ts_ioloop_add_callback(loop, again, &f), 0);
    tu_run_for(loop, 1.0);
    f.stop = true;
    int echoed = e.echoed;
    tu_run_iterations(loop, 3);
    printf("# 1 s with a callback re-adding itself (%ld runs): %d of ~100 ticks of a 10 ms periodic, %d lines "
           "echoed, %d bad\n", f.runs, f.ticks, echoed, e.bad);
    assert_true(f.runs > 1000);
    assert_true(f.ticks >= 50); /* timers still fire */
    assert_true(echoed >= 100); /* streams still flow */
    assert_int_equal(e.bad, 0);
    assert_int_equal(e.status, 0);
    ts_periodic_free(pc);
    abuse_end(loop, &e, client, base);
    alarm(0);
}

/* ---- four threads adding callbacks ---------------------------------------------------- */

#define THREADS 4
#define PER_THREAD 50000

typedef struct spammer {
    ts_ioloop *loop;
    int *counter;
    int refused;
} spammer;

static void count_cb(ts_ioloop *loop, void *arg)
{
    (void)loop;
    (*(int *)arg)++;
}

static void *spam(void *arg)
{
    spammer *sp = arg;
    for (int i = 0; i < PER_THREAD; i++)
        if (ts_ioloop_add_callback(sp->loop, count_cb, sp->counter) != 0)
            sp->refused++;
    return NULL;
}

typedef struct both {
    echo *e;
    int *counter, target;
} both;

static bool both_done(void *arg)
{
    both *b = arg;
    return echo_done(b->e) && *b->counter >= b->target;
}

static void test_threads_adding_callbacks_during_traffic(void **state)
{
    (void)state;
    alarm(60);
    echo e;
    ts_tcpclient *client;
    long base;
    ts_ioloop *loop = abuse_begin(&e, &client, 2000, &base);
    int counter = 0;
    spammer sp[THREADS];
    pthread_t th[THREADS];
    double t0 = nh_now();
    for (int i = 0; i < THREADS; i++) {
        sp[i] = (spammer){loop, &counter, 0};
        assert_int_equal(pthread_create(&th[i], NULL, spam, &sp[i]), 0);
    }
    both b = {&e, &counter, THREADS * PER_THREAD};
    bool ok = tu_run_until(loop, both_done, &b, 40);
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    tu_run_iterations(loop, 5);
    int refused = 0;
    for (int i = 0; i < THREADS; i++)
        refused += sp[i].refused;
    printf("# %d threads x %d callbacks during an echo: %d ran, %d refused, %d lines echoed, %d bad, %.2f s\n",
           THREADS, PER_THREAD, counter, refused, e.echoed, e.bad, nh_now() - t0);
    assert_true(ok);
    assert_int_equal(refused, 0);
    assert_int_equal(counter, THREADS * PER_THREAD); /* each exactly once */
    assert_int_equal(e.echoed, 2000);
    assert_int_equal(e.bad, 0);
    abuse_end(loop, &e, client, base);
    alarm(0);
}

/* ---- a signal storm ---------------------------------------------------------------------- */

static ts_ioloop *g_sig_loop;
static int g_sig_runs;
static atomic_int g_sig_handled;

static void on_sig_cb(ts_ioloop *loop, void *arg)
{
    (void)loop, (void)arg;
    g_sig_runs++;
}

static void on_usr1(int sig)
{
    (void)sig;
    int saved = errno;
    atomic_fetch_add(&g_sig_handled, 1);
    ts_ioloop_add_callback_from_signal(g_sig_loop, on_sig_cb, NULL);
    errno = saved;
}

typedef struct storm {
    pthread_t target; /* the loop's thread: its polls and reads are the ones interrupted */
    int sent;
    atomic_bool stop;
} storm;

static void *send_signals(void *arg)
{
    storm *st = arg;
    while (!atomic_load(&st->stop) && st->sent < 20000) {
        pthread_kill(st->target, SIGUSR1);
        if (++st->sent % 64 == 0)
            sched_yield(); /* let some be delivered one by one rather than all folded */
    }
    return NULL;
}

static void test_signal_storm_during_traffic(void **state)
{
    (void)state;
    alarm(60);
    echo e;
    ts_tcpclient *client;
    long base;
    ts_ioloop *loop = abuse_begin(&e, &client, 2000, &base);
    g_sig_loop = loop;
    g_sig_runs = 0;
    atomic_store(&g_sig_handled, 0);
    struct sigaction sa = {.sa_handler = on_usr1, .sa_flags = SA_RESTART}, old;
    sigemptyset(&sa.sa_mask);
    assert_int_equal(sigaction(SIGUSR1, &sa, &old), 0);
    storm st = {.target = pthread_self()};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, send_signals, &st), 0);
    bool ok = tu_run_until(loop, echo_done, &e, 40);
    atomic_store(&st.stop, true);
    pthread_join(th, NULL);
    tu_run_iterations(loop, 5);
    assert_int_equal(sigaction(SIGUSR1, &old, NULL), 0);
    int handled = atomic_load(&g_sig_handled);
    printf("# %d SIGUSR1 sent, %d handled, %d loop callbacks from the handler; %d lines echoed, %d bad\n", st.sent,
           handled, g_sig_runs, e.echoed, e.bad);
    assert_true(ok);
    assert_int_equal(e.echoed, 2000);
    assert_int_equal(e.bad, 0);
    assert_true(g_sig_runs >= 1 && g_sig_runs <= handled); /* woken, never more than asked */
    abuse_end(loop, &e, client, base);
    alarm(0);
}

/* ---- connects to a dead port ---------------------------------------------------------------- */

#define DEAD_CONNECTS 200

typedef struct dead {
    int done, refused, other;
    int want; /* the status each attempt must end with */
} dead;

static void on_dead(int status, ts_iostream *s, const char *detail, void *arg)
{
    (void)detail;
    dead *d = arg;
    d->done++;
    if (status == d->want)
        d->refused++;
    else
        d->other++;
    ts_iostream_free(s);
}

static void test_connect_storm_to_dead_port(void **state)
{
    (void)state;
    alarm(60);
    long base = tu_mem_live();
    ts_ioloop *loop = tu_fixture_begin(50);
    int port;
    int l = tu_tcp_listen(&port);
    assert_true(l >= 0);
    close(l); /* nothing listens there now */
    ts_tcpclient *client = ts_tcpclient_new(loop, NULL);
    dead d = {.want = -ECONNREFUSED};
    for (int i = 0; i < DEAD_CONNECTS; i++)
        assert_int_equal(ts_tcpclient_connect(client, "127.0.0.1", port, NULL, on_dead, &d), 0);
    tu_run_until_count(loop, &d.done, DEAD_CONNECTS, 20);
    long idle = tu_idle_iterations(loop, 0.3);
    printf("# %d connects to a closed port: %d ECONNREFUSED, %d other, %ld idle iterations after\n", DEAD_CONNECTS,
           d.refused, d.other, idle);
    assert_int_equal(d.refused, DEAD_CONNECTS);
    assert_true(idle <= 40);
    ts_tcpclient_free(client);
    tu_fixture_end(loop);
    assert_int_equal(tu_mem_live(), base);
    alarm(0);
}

/* A storm of connects to a name the resolver cannot resolve: TS_ERESOLVE each, nothing left behind. */
static void test_resolver_failure_storm(void **state)
{
    (void)state;
    alarm(60);
    long base = tu_mem_live();
    ts_ioloop *loop = tu_fixture_begin(50);
    nh_static_resolver *sr = nh_static_resolver_new();
    nh_static_resolver_fail(sr, "nonexistent.invalid", "Name or service not known (test resolver)");
    ts_tcpclient *client = ts_tcpclient_new(loop, nh_static_resolver_get(sr));
    dead d = {.want = TS_ERESOLVE};
    for (int i = 0; i < DEAD_CONNECTS; i++)
        assert_int_equal(ts_tcpclient_connect(client, "nonexistent.invalid", 80, NULL, on_dead, &d), 0);
    tu_run_until_count(loop, &d.done, DEAD_CONNECTS, 20);
    long idle = tu_idle_iterations(loop, 0.3);
    printf("# %d connects to an unresolvable name: %d TS_ERESOLVE, %d other, %ld idle iterations after\n",
           DEAD_CONNECTS, d.refused, d.other, idle);
    assert_int_equal(d.refused, DEAD_CONNECTS);
    assert_true(idle <= 40);
    ts_tcpclient_free(client);
    ts_resolver_free(nh_static_resolver_get(sr));
    tu_fixture_end(loop);
    assert_int_equal(tu_mem_live(), base);
    alarm(0);
}

int main(void)
{
    tu_use_byte_allocator(); /* before the library allocates anything */
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_callback_readding_itself_forever),
        cmocka_unit_test(test_threads_adding_callbacks_during_traffic),
        cmocka_unit_test(test_signal_storm_during_traffic),
        cmocka_unit_test(test_connect_storm_to_dead_port),
        cmocka_unit_test(test_resolver_failure_storm),
    };
    return cmocka_run_group_tests_name("adversarial_loop", tests, NULL, NULL);
}
