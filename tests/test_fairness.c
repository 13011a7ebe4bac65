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

#include <ev.h>

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

/* The bulk sink: takes everything as it streams in, never answers. */
static void on_chunk(ts_iostream *s, const char *data, size_t len, void *arg)
{
    (void)s, (void)data;
    *(size_t *)arg += len;
}

static void on_sink_end(ts_iostream *s, int status, const char *data, size_t len, void *arg)
{
    (void)s, (void)status, (void)data, (void)len, (void)arg;
}

static size_t g_sunk;

/* How the flooded stream reads: lines echoed back, or one endless streaming read. */
static void start_echo(ts_iostream *s) { assert_int_equal(ts_iostream_read_until(s, "\n", 1, 1 << 20, echo_line, NULL), 0); }
static void start_sink(ts_iostream *s)
{
    assert_int_equal(ts_iostream_read_until_close_streaming(s, on_chunk, on_sink_end, &g_sunk), 0);
}

static void flood_run(void (*start)(ts_iostream *s))
{
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
    start(srv);
    start_echo(psrv);

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

static void test_flood_does_not_starve_timer_or_other_clients(void **state)
{
    (void)state;
    flood_run(start_echo);
}

/* A bulk sender into an endless streaming read: reads per run are capped, so the loop still comes round. */
static void test_bulk_flood_does_not_starve_timer_or_other_clients(void **state)
{
    (void)state;
    g_sunk = 0;
    flood_run(start_sink);
    print_message("bulk: %zu bytes taken\n", g_sunk);
    assert_true(g_sunk > (1u << 20));
}

/*
 * A user transport faster than any loop: every read comes back full (of 'z',
 * or of "x\n" lines), every write is taken whole. Its fd (one end of a
 * socketpair with a byte never read) is always readable, so the
 * level-triggered poller brings the stream back after each capped run. It
 * counts reads and bytes written per loop iteration (an ev_prepare starts
 * each count).
 */
typedef struct fake {
    int fd, peer;
    bool lines;
    int reads_this_iteration, max_reads_per_iteration;
    size_t written_this_iteration, max_written_per_iteration;
    size_t min_write, max_write; /* sizes of the smallest and largest write offered */
    size_t answer_len;           /* bytes each answered line gets (answer_line) */
    long answered;               /* lines the test answered */
    ev_prepare iteration;
} fake;

static int f_fileno(void *t) { return ((fake *)t)->fd; }
static ssize_t f_read(void *t, void *buf, size_t len)
{
    fake *f = t;
    if (++f->reads_this_iteration > f->max_reads_per_iteration)
        f->max_reads_per_iteration = f->reads_this_iteration;
    if (!f->lines) {
        memset(buf, 'z', len);
        return (ssize_t)len;
    }
    char *p = buf;
    for (size_t i = 0; i + 1 < len; i += 2)
        p[i] = 'x', p[i + 1] = '\n';
    return (ssize_t)(len & ~(size_t)1);
}
static ssize_t f_write(void *t, const struct iovec *iov, int n)
{
    fake *f = t;
    size_t total = 0;
    for (int i = 0; i < n; i++)
        total += iov[i].iov_len;
    if (total && (!f->min_write || total < f->min_write))
        f->min_write = total;
    if (total > f->max_write)
        f->max_write = total;
    f->written_this_iteration += total;
    if (f->written_this_iteration > f->max_written_per_iteration)
        f->max_written_per_iteration = f->written_this_iteration;
    return (ssize_t)total;
}
static void f_close(void *t)
{
    fake *f = t;
    if (f->fd >= 0)
        close(f->fd);
    f->fd = -1;
}

static const ts_stream_ops fake_ops = {
    .size = sizeof(ts_stream_ops),
    .name = "fake",
    .fileno = f_fileno,
    .read_from_fd = f_read,
    .write_to_fd = f_write,
    .close_fd = f_close,
};

static void on_iteration(struct ev_loop *ev, ev_prepare *w, int revents)
{
    (void)ev, (void)revents;
    fake *f = w->data;
    f->reads_this_iteration = 0;
    f->written_this_iteration = 0;
}

/* A stream over a new fake transport on @p loop, counting from the next iteration. */
static ts_iostream *fake_stream(ts_ioloop *loop, fake *f, bool lines, const ts_iostream_options *opts)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    assert_int_equal(write(sv[1], "x", 1), 1); /* always readable */
    memset(f, 0, sizeof *f);
    f->fd = sv[0];
    f->peer = sv[1];
    f->lines = lines;
    ev_prepare_init(&f->iteration, on_iteration);
    f->iteration.data = f;
    ev_prepare_start(ts_ioloop_ev(loop), &f->iteration);
    ts_iostream *s = ts_iostream_new(loop, &fake_ops, f, opts);
    assert_non_null(s);
    return s;
}

/* Stops the counting and frees the stream and the socketpair's other end. */
static void fake_end(ts_ioloop *loop, fake *f, ts_iostream *s)
{
    ev_prepare_stop(ts_ioloop_ev(loop), &f->iteration);
    ts_iostream_free(s);
    close(f->peer);
}

typedef struct fail_rec {
    int calls, status;
} fail_rec;

static void on_fail(ts_iostream *s, int status, const char *data, size_t len, void *arg)
{
    (void)s, (void)data, (void)len;
    fail_rec *r = arg;
    r->calls++;
    r->status = status;
}

static void test_endless_source_is_read_in_bounded_runs(void **state)
{
    (void)state;
    signal(SIGALRM, on_alarm);
    alarm(20);
    ts_ioloop *loop = tu_fixture_begin(15);
    static fake e;
    /* A delimiter that never comes, into a big buffer: 512 full reads before it is full. */
    ts_iostream_options o = {.size = sizeof o, .max_buffer_size = 32u << 20};
    ts_iostream *s = fake_stream(loop, &e, false, &o);
    fail_rec r = {0};
    assert_int_equal(ts_iostream_read_until(s, "\n", 1, 0, on_fail, &r), 0);
    tu_run_until_count(loop, &r.calls, 1, 10);
    fake_end(loop, &e, s);
    print_message("endless source: at most %d reads per loop iteration\n", e.max_reads_per_iteration);
    assert_int_equal(r.status, TS_EBUFFERFULL);
    /* One capped run from the poll, perhaps one more from the deferred list. */
    assert_true(e.max_reads_per_iteration <= 2 * 32);
    tu_run_for(loop, 0.05);
    tu_fixture_end(loop);
    alarm(0);
}

/*
 * Writes are bounded per run too, across all its flushes and direct writes:
 * an endless source of lines whose callback answers each with 1 MiB, into a
 * sink that takes everything. Before, each large write had its own 4 MiB
 * bound and one run could write until its 1,024 callbacks were done.
 */
static char g_answer[3 << 20];

static void answer_line(ts_iostream *s, int status, const char *data, size_t len, void *arg);

/* The next line is read once the answer is written (flow control, as the example servers do). */
static void answer_written(ts_iostream *s, int status, void *arg)
{
    if (status == 0)
        assert_int_equal(ts_iostream_read_until(s, "\n", 1, 0, answer_line, arg), 0);
}

static void answer_line(ts_iostream *s, int status, const char *data, size_t len, void *arg)
{
    (void)data, (void)len;
    fake *k = arg;
    if (status < 0)
        return;
    k->answered++;
    assert_int_equal(ts_iostream_write(s, g_answer, k->answer_len, answer_written, k), 0);
}

/* Answers lines of the endless source with @p answer_len bytes each for 0.3 s; the counts land in @p k. */
static void answer_for_a_while(fake *k, size_t answer_len)
{
    signal(SIGALRM, on_alarm);
    alarm(20);
    ts_ioloop *loop = tu_fixture_begin(15);
    ts_iostream *s = fake_stream(loop, k, true, NULL);
    k->answer_len = answer_len;
    assert_int_equal(ts_iostream_read_until(s, "\n", 1, 0, answer_line, k), 0);
    tu_run_for(loop, 0.3);
    fake_end(loop, k, s);
    print_message("lines answered: %ld; writes of %zu to %zu KiB, at most %zu KiB per loop iteration\n",
                  k->answered, k->min_write / 1024, k->max_write / 1024, k->max_written_per_iteration / 1024);
    tu_run_for(loop, 0.05);
    tu_fixture_end(loop);
    alarm(0);
}

static void test_writes_per_run_are_bounded(void **state)
{
    (void)state;
    static fake k;
    answer_for_a_while(&k, 1u << 20);
    assert_true(k.answered > 8);
    /* One run from the poll and perhaps one from the deferred list, 4 MiB each. */
    assert_true(k.max_written_per_iteration <= 2 * (4u << 20));
}

/*
 * The write that crosses a run's 4 MiB goes whole: answers of 3 MiB each
 * reach the transport as one write each. Before, the second answer of a run
 * was cut at the cap, 1 MiB written directly and 2 MiB copied and written
 * in the next run: two calls for one answer, and a copy.
 */
static void test_write_crossing_the_run_cap_is_not_split(void **state)
{
    (void)state;
    static fake k;
    answer_for_a_while(&k, 3u << 20);
    assert_true(k.answered > 4);
    assert_int_equal(k.min_write, 3u << 20);
    assert_int_equal(k.max_write, 3u << 20);
    /* Still bounded: a run stops once 4 MiB went, after at most 8. */
    assert_true(k.max_written_per_iteration <= 2 * (8u << 20));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_flood_does_not_starve_timer_or_other_clients),
        cmocka_unit_test(test_bulk_flood_does_not_starve_timer_or_other_clients),
        cmocka_unit_test(test_endless_source_is_read_in_bounded_runs),
        cmocka_unit_test(test_writes_per_run_are_bounded),
        cmocka_unit_test(test_write_crossing_the_run_cap_is_not_split),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
