/*
 * Bounded work: one client flooding a line-echo stream must not starve the
 * loop's timers or its other streams. Before the pending list ran as a batch
 * and reads were capped per event, a 10 ms periodic fired once in 2 s under
 * such a flood, and epoll_wait was called once. A watchdog outside the loop
 * (alarm) fails the test if the loop never comes back.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "testutil.h"

static void on_alarm(int sig)
{
    (void)sig;
    static const char msg[] = "test_fairness: watchdog: the loop is stuck\n";
    (void)!write(2, msg, sizeof msg - 1);
    _exit(3);
}

/* ---- the flooded echo stream --------------------------------------------- */

static void echo_line(ts_iostream *s, int status, const char *data, size_t len, void *arg)
{
    if (status < 0)
        return;
    ts_iostream_write(s, data, len, NULL, NULL);
    ts_iostream_read_until(s, "\n", 1, 1 << 20, echo_line, arg);
}

typedef struct flood {
    int fd;
    atomic_bool stop;
    atomic_long lines_sent;
} flood;

/* Writes 64-byte lines as fast as the socket takes them, reading the echoes back. */
static void *flood_thread(void *arg)
{
    flood *f = arg;
    char out[64 * 256], in[1 << 16];
    for (size_t i = 0; i < sizeof out; i += 64) {
        memset(out + i, 'a' + (int)(i / 64 % 26), 63);
        out[i + 63] = '\n';
    }
    while (!atomic_load(&f->stop)) {
        struct pollfd p = {.fd = f->fd, .events = POLLIN | POLLOUT};
        if (poll(&p, 1, 50) <= 0)
            continue;
        if (p.revents & POLLIN)
            (void)!read(f->fd, in, sizeof in);
        if (p.revents & POLLOUT) {
            ssize_t n = write(f->fd, out, sizeof out);
            if (n > 0)
                atomic_fetch_add(&f->lines_sent, n / 64);
        }
        if (p.revents & (POLLERR | POLLHUP))
            break;
    }
    return NULL;
}

/* ---- what must keep running --------------------------------------------- */

static void tick(ts_ioloop *loop, void *arg)
{
    (void)loop;
    ++*(int *)arg;
}

/* A second client: one 16-byte ping per round trip, its latency recorded. */
typedef struct pinger {
    ts_ioloop *loop;
    ts_iostream *s;
    double sent_at;
    double rtt[4096];
    int n;
} pinger;

static void ping_reply(ts_iostream *s, int status, const char *data, size_t len, void *arg);

static void ping_send(pinger *p)
{
    p->sent_at = ts_ioloop_time(p->loop);
    ts_iostream_write(p->s, "ping ping ping!\n", 16, NULL, NULL);
    ts_iostream_read_until(p->s, "\n", 1, 1024, ping_reply, p);
}

static void ping_reply(ts_iostream *s, int status, const char *data, size_t len, void *arg)
{
    (void)s, (void)data, (void)len;
    pinger *p = arg;
    if (status < 0)
        return;
    if (p->n < (int)(sizeof p->rtt / sizeof p->rtt[0]))
        p->rtt[p->n++] = ts_ioloop_time(p->loop) - p->sent_at;
    ping_send(p);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void test_flood_does_not_starve_timer_or_other_clients(void **state)
{
    (void)state;
    signal(SIGALRM, on_alarm);
    alarm(30);
    ts_ioloop *loop = tu_fixture_begin(20);

    int fl[2], pg[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fl), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pg), 0);
    ts_iostream *srv = ts_iostream_new_socket(loop, fl[1], NULL);
    ts_iostream *psrv = ts_iostream_new_socket(loop, pg[1], NULL);
    ts_iostream *pcli = ts_iostream_new_socket(loop, pg[0], NULL);
    assert_true(srv && psrv && pcli);
    assert_int_equal(ts_iostream_read_until(srv, "\n", 1, 1 << 20, echo_line, NULL), 0);
    assert_int_equal(ts_iostream_read_until(psrv, "\n", 1, 1 << 20, echo_line, NULL), 0);

    flood f = {.fd = fl[0]};
    atomic_init(&f.stop, false);
    atomic_init(&f.lines_sent, 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, flood_thread, &f), 0);
    tu_run_for(loop, 0.2); /* the flood is under way */

    static pinger p;
    memset(&p, 0, sizeof p);
    p.loop = loop;
    p.s = pcli;
    ping_send(&p);
    int ticks = 0;
    ts_periodic *pc = ts_periodic_new(loop, tick, &ticks, 0.010, 0);
    assert_non_null(pc);
    ts_periodic_start(pc);
    double t0 = ts_ioloop_time(loop);
    tu_run_for(loop, 1.0);
    double elapsed = ts_ioloop_time(loop) - t0;
    ts_periodic_stop(pc);
    ts_periodic_free(pc);

    atomic_store(&f.stop, true);
    pthread_join(th, NULL);
    long sent = atomic_load(&f.lines_sent);

    int due = (int)(elapsed / 0.010);
    print_message("flood: %ld lines sent; periodic: %d of %d ticks; pings: %d\n", sent, ticks, due, p.n);
    assert_true(sent > 1000);             /* it really was a flood */
    assert_true(ticks * 10 >= due * 9);   /* >= 90 % of the ticks */
    assert_true(p.n >= 20);
    qsort(p.rtt, (size_t)p.n, sizeof p.rtt[0], cmp_double);
    double p99 = p.rtt[(p.n * 99 + 99) / 100 - 1];
    print_message("second client: %d round trips, p99 %.2f ms\n", p.n, p99 * 1e3);
    assert_true(p99 <= 0.010);

    ts_iostream_free(srv);
    ts_iostream_free(psrv);
    ts_iostream_free(pcli);
    close(fl[0]);
    tu_run_for(loop, 0.05);
    tu_fixture_end(loop);
    alarm(0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_flood_does_not_starve_timer_or_other_clients),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
