/* Shared test helpers (see testutil.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "testutil.h"

/* ---- loops -------------------------------------------------------------- */

/*
 * The watchdog is a budget per loop rather than a timer, so a test that
 * waits in several steps cannot exceed it by re-arming. A loop's budget is
 * kept in a small table keyed by the loop pointer.
 */
#define TU_MAX_LOOPS 16
static struct {
    ts_ioloop *loop;
    double budget;
} g_loops[TU_MAX_LOOPS];

static double *budget_of(ts_ioloop *loop)
{
    for (int i = 0; i < TU_MAX_LOOPS; i++)
        if (g_loops[i].loop == loop)
            return &g_loops[i].budget;
    return NULL;
}

ts_ioloop *tu_loop_new(double watchdog_seconds)
{
    ts_ioloop *loop = ts_ioloop_new();
    assert_non_null(loop);
    for (int i = 0; i < TU_MAX_LOOPS; i++) {
        if (!g_loops[i].loop) {
            g_loops[i].loop = loop;
            g_loops[i].budget = watchdog_seconds;
            return loop;
        }
    }
    fail_msg("too many test loops");
    return NULL;
}

void tu_loop_forget(ts_ioloop *loop)
{
    for (int i = 0; i < TU_MAX_LOOPS; i++)
        if (g_loops[i].loop == loop)
            g_loops[i].loop = NULL;
}

static void probe_handler(ts_ioloop *loop, int fd, int events, void *arg)
{
    (void)loop, (void)fd, (void)events, (void)arg;
}

void tu_loop_free(ts_ioloop *loop)
{
    if (!loop)
        return; /* a test freed it itself */
    /* Let deferred completions (close phase two, frees) run. */
    tu_run_iterations(loop, 4);
    for (int i = 0; i < TU_MAX_LOOPS; i++)
        if (g_loops[i].loop == loop)
            g_loops[i].loop = NULL;
    /*
     * A stream that is still registered would be a leaked fd. A stream's
     * handler is the stream's own (remove by fd says -ENOENT): adding one
     * finds it.
     */
    for (int fd = 0; fd < 1024; fd++) {
        if (ts_ioloop_remove_handler(loop, fd) == 0)
            fail_msg("fd %d still has a loop handler at teardown", fd);
        int r = ts_ioloop_add_handler(loop, fd, TS_IOLOOP_READ, probe_handler, NULL);
        if (r == -EEXIST)
            fail_msg("fd %d still has a stream's loop handler at teardown", fd);
        if (r == 0)
            ts_ioloop_remove_handler(loop, fd);
    }
    ts_ioloop_free(loop, false);
}

static int g_fixture_fds = -1;

ts_ioloop *tu_fixture_begin(double watchdog_seconds)
{
    g_fixture_fds = tu_count_fds();
    return tu_loop_new(watchdog_seconds);
}

void tu_fixture_end(ts_ioloop *loop)
{
    tu_loop_free(loop);
    assert_int_equal(tu_count_fds(), g_fixture_fds);
}

typedef struct run_state {
    ts_ioloop *loop;
    tu_pred pred;
    void *arg;
    bool met;
    bool timed_out;
    bool stopping;
} run_state;

static void on_prepare(struct ev_loop *ev, ev_prepare *w, int revents)
{
    (void)ev, (void)revents;
    run_state *st = w->data;
    if (!st->stopping && st->pred && st->pred(st->arg)) {
        st->met = true;
        st->stopping = true;
        ts_ioloop_stop(st->loop);
    }
}

static void on_deadline(ts_ioloop *loop, void *arg)
{
    run_state *st = arg;
    st->timed_out = true;
    if (!st->stopping) {
        st->stopping = true;
        ts_ioloop_stop(loop);
    }
}

bool tu_run_until(ts_ioloop *loop, tu_pred pred, void *arg, double timeout)
{
    double *budget = budget_of(loop);
    double limit = timeout;
    bool watchdog = false;
    if (budget && *budget < limit) {
        limit = *budget;
        watchdog = true;
    }
    run_state st = {.loop = loop, .pred = pred, .arg = arg};
    if (pred && pred(arg))
        return true;
    ev_prepare prep;
    ev_prepare_init(&prep, on_prepare);
    prep.data = &st;
    /* Before the loop's own prepare watcher, so a stop makes this iteration's poll non-blocking. */
    ev_set_priority(&prep, EV_MAXPRI);
    ev_prepare_start(ts_ioloop_ev(loop), &prep);
    double t0 = ts_ioloop_time(loop);
    uint64_t id = ts_ioloop_call_later(loop, limit, on_deadline, &st);
    ts_ioloop_start(loop);
    ts_ioloop_remove_timeout(loop, id);
    ev_prepare_stop(ts_ioloop_ev(loop), &prep);
    if (budget)
        *budget -= ts_ioloop_time(loop) - t0;
    if (!st.met && pred && pred(arg))
        st.met = true;
    if (!st.met && st.timed_out && watchdog)
        fail_msg("watchdog: test loop ran out of its time budget");
    return st.met;
}

static bool flag_pred(void *arg) { return *(const bool *)arg; }

void tu_run_until_flag(ts_ioloop *loop, const bool *flag, double timeout)
{
    if (!tu_run_until(loop, flag_pred, (void *)flag, timeout))
        fail_msg("timed out after %.1fs waiting for a condition", timeout);
}

typedef struct {
    const int *counter;
    int target;
} count_arg;

static bool count_pred(void *arg)
{
    count_arg *c = arg;
    return *c->counter >= c->target;
}

void tu_run_until_count(ts_ioloop *loop, const int *counter, int target, double timeout)
{
    count_arg c = {counter, target};
    if (!tu_run_until(loop, count_pred, &c, timeout))
        fail_msg("timed out after %.1fs: counter at %d, waiting for %d", timeout, *counter, target);
}

void tu_run_for(ts_ioloop *loop, double seconds) { tu_run_until(loop, NULL, NULL, seconds); }

void tu_run_iterations(ts_ioloop *loop, int n)
{
    for (int i = 0; i < n; i++)
        ev_run(ts_ioloop_ev(loop), EVRUN_NOWAIT);
}

/* ---- memory ------------------------------------------------------------- */

void *tu_guarded_alloc(size_t len)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t span = ((len + page - 1) / page + 1) * page;
    char *base = mmap(NULL, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(base != MAP_FAILED);
    assert_int_equal(mprotect(base + span - page, page, PROT_NONE), 0);
    return base + span - page - len;
}

void tu_guarded_free(void *p, size_t len)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t span = ((len + page - 1) / page + 1) * page;
    char *end = (char *)p + len; /* the guard page */
    munmap(end + page - span, span);
}

static long g_fail_after = -1;
static long g_allocs;

static bool should_fail(void)
{
    g_allocs++;
    if (g_fail_after < 0)
        return false;
    if (g_fail_after == 0) {
        g_fail_after = -1;
        return true;
    }
    g_fail_after--;
    return false;
}

static void *t_malloc(size_t n) { return should_fail() ? NULL : test_malloc(n); }
static void *t_realloc(void *p, size_t n) { return should_fail() ? NULL : test_realloc(p, n); }
static void t_free(void *p) { test_free(p); }

void tu_use_test_allocator(void)
{
    static const ts_allocator a = {t_malloc, t_realloc, t_free};
    g_fail_after = -1;
    g_allocs = 0;
    assert_int_equal(ts_set_allocator(&a), 0);
}

void tu_restore_allocator(void)
{
    g_fail_after = -1;
    ts_set_allocator(NULL);
}

void tu_fail_alloc_after(long n) { g_fail_after = n; }

/* Counting hooks over libc: safe to switch to and from while blocks are live. */
static void *c_malloc(size_t n) { return should_fail() ? NULL : malloc(n); }
static void *c_realloc(void *p, size_t n) { return should_fail() ? NULL : realloc(p, n); }

void tu_use_counting_allocator(void)
{
    static const ts_allocator a = {c_malloc, c_realloc, free};
    g_allocs = 0;
    g_fail_after = -1;
    assert_int_equal(ts_set_allocator(&a), 0);
}

long tu_alloc_count(void) { return g_allocs; }

/* ---- fds ---------------------------------------------------------------- */

int tu_count_fds(void)
{
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1; /* the directory's own fd */
}

void tu_set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    assert_true(fl >= 0);
    assert_int_equal(fcntl(fd, F_SETFL, fl | O_NONBLOCK), 0);
}

/* ---- memory in bytes, loop iterations, CPU time ------------------------- */

#include <stdatomic.h>
#include <sys/resource.h>

static atomic_long g_live_bytes, g_peak_bytes;

static void bytes_add(long n)
{
    long v = atomic_fetch_add(&g_live_bytes, n) + n;
    long p = atomic_load(&g_peak_bytes);
    while (v > p && !atomic_compare_exchange_weak(&g_peak_bytes, &p, v)) {
    }
}

/*
 * Counted by usable size, so blocks allocated before the hooks went in may
 * be freed through them (the count is relative to that moment). Threads
 * allocate through them too: only the atomic counters are touched.
 */
static void *b_malloc(size_t n)
{
    void *p = malloc(n);
    if (p)
        bytes_add((long)malloc_usable_size(p));
    return p;
}
static void *b_realloc(void *q, size_t n)
{
    long old = q ? (long)malloc_usable_size(q) : 0;
    void *p = realloc(q, n);
    if (p)
        bytes_add((long)malloc_usable_size(p) - old);
    return p;
}
static void b_free(void *q)
{
    if (q)
        bytes_add(-(long)malloc_usable_size(q));
    free(q);
}

void tu_use_byte_allocator(void)
{
    static const ts_allocator a = {b_malloc, b_realloc, b_free};
    assert_int_equal(ts_set_allocator(&a), 0);
}

long tu_mem_live(void) { return atomic_load(&g_live_bytes); }

long tu_mem_mark(void)
{
    long v = atomic_load(&g_live_bytes);
    atomic_store(&g_peak_bytes, v);
    return v;
}

long tu_mem_peak_over(long base) { return atomic_load(&g_peak_bytes) - base; }

typedef struct tu_iters {
    ev_prepare w;
    long n;
} tu_iters;

static void on_iter(struct ev_loop *l, ev_prepare *w, int revents)
{
    (void)l, (void)revents;
    ((tu_iters *)w)->n++;
}

long tu_idle_iterations(ts_ioloop *loop, double seconds)
{
    tu_iters it = {.n = 0};
    ev_prepare_init(&it.w, on_iter);
    ev_prepare_start(ts_ioloop_ev(loop), &it.w);
    tu_run_for(loop, seconds);
    ev_prepare_stop(ts_ioloop_ev(loop), &it.w);
    return it.n;
}

double tu_cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}
