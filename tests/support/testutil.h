/*
 * Shared test helpers: loops with a watchdog, run-until, guard-page memory,
 * allocation hooks through cmocka's test_malloc with failure injection, and
 * an fd-leak check. Include after <cmocka.h>'s prerequisites.
 */
#ifndef TS_TESTUTIL_H
#define TS_TESTUTIL_H

#include <stdbool.h>
#include <stddef.h>

#include "tstream.h"

/* ---- loops -------------------------------------------------------------- */

/**
 * A new loop with a watchdog: if a tu_run_* call on it runs longer than
 * @p watchdog_seconds in total, the loop stops and the test fails.
 */
ts_ioloop *tu_loop_new(double watchdog_seconds);

/**
 * Runs the loop's queued callbacks (a few rounds, so deferred stream
 * completions settle), checks that no fd handler is left registered, and
 * frees it.
 */
void tu_loop_free(ts_ioloop *loop);
/** Drops @p loop from the watchdog registry (for a test that frees it itself). */
void tu_loop_forget(ts_ioloop *loop);

/**
 * The usual per-test fixture: notes the open fd count and returns a new loop
 * (tu_loop_new()). tu_fixture_end() frees the loop (tu_loop_free()) and fails
 * the test if an fd opened since tu_fixture_begin() is still open.
 */
ts_ioloop *tu_fixture_begin(double watchdog_seconds);
/** Ends a fixture started by tu_fixture_begin(). */
void tu_fixture_end(ts_ioloop *loop);

/** A condition polled after every loop iteration. */
typedef bool (*tu_pred)(void *arg);

/**
 * Runs @p loop until @p pred(@p arg) is true (checked before each poll) or
 * @p timeout seconds pass. Returns whether the predicate became true. Fails
 * the test if the watchdog fires.
 */
bool tu_run_until(ts_ioloop *loop, tu_pred pred, void *arg, double timeout);

/** Runs until *@p flag is true (a tu_pred over a bool). Fails the test on timeout. */
void tu_run_until_flag(ts_ioloop *loop, const bool *flag, double timeout);

/** Runs until *@p counter >= @p target. Fails the test on timeout. */
void tu_run_until_count(ts_ioloop *loop, const int *counter, int target, double timeout);

/** Runs the loop for @p seconds. */
void tu_run_for(ts_ioloop *loop, double seconds);

/** Runs @p n loop iterations (non-blocking polls). */
void tu_run_iterations(ts_ioloop *loop, int n);

/* ---- memory ------------------------------------------------------------- */

/**
 * @p len bytes placed so that the byte after them is the first byte of an
 * inaccessible page: reading one byte past the end faults.
 */
void *tu_guarded_alloc(size_t len);
/** Frees memory from tu_guarded_alloc(). */
void tu_guarded_free(void *p, size_t len);

/** Routes the library's allocations through cmocka's test_malloc (leak checks). */
void tu_use_test_allocator(void);
/** Restores malloc/realloc/free. */
void tu_restore_allocator(void);
/** With the test allocator: the allocation after @p n more succeed fails (n = 0: the next). -1 disables. */
void tu_fail_alloc_after(long n);
/** Counts allocations but uses malloc/realloc/free: may be switched on and off at any time. */
void tu_use_counting_allocator(void);
/** Allocations made through the test or counting allocator since it was installed. */
long tu_alloc_count(void);

/* ---- fds ---------------------------------------------------------------- */

/** The number of open fds in this process. */
int tu_count_fds(void);

/** Makes @p fd non-blocking. */
void tu_set_nonblock(int fd);

/* ---- memory in bytes, loop iterations, CPU time ------------------------- */

/**
 * Routes the library's allocations through malloc, counting the bytes live
 * and their peak by usable size (thread-safe; no failure injection, no
 * tu_alloc_count). It may be installed at any time: blocks from before may be
 * freed through it, so the byte count is relative to the moment it went in.
 * tu_restore_allocator() takes it out.
 */
void tu_use_byte_allocator(void);
/** The library's bytes live now (byte allocator). */
long tu_mem_live(void);
/** Restarts the peak from the bytes live now; returns them. */
long tu_mem_mark(void);
/** The peak since tu_mem_mark() returned @p base, over @p base. */
long tu_mem_peak_over(long base);

/** Iterations @p loop makes while it runs for @p seconds (a busy loop makes thousands). */
long tu_idle_iterations(ts_ioloop *loop, double seconds);

/** CPU seconds (user + system) this process has used. */
double tu_cpu_seconds(void);

#endif /* TS_TESTUTIL_H */
