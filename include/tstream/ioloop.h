/**
 * @file tstream/ioloop.h
 * @brief The event loop: Tornado's IOLoop and PeriodicCallback over libev.
 *
 * Threading: one loop per thread. Only ts_ioloop_add_callback(),
 * ts_ioloop_add_callback_from_signal() and ts_ioloop_stop() may be called from
 * a thread other than the one running the loop. Every other function must be
 * called on the loop's thread (or before the loop starts). The loop's thread is
 * the one inside ts_ioloop_start() / ts_ioloop_run_sync(), or, for a loop run
 * with ev_run() directly (see ts_ioloop_new_from_ev()), the one that ran it
 * last; a loop may be created on one thread and run on another.
 *
 * Callback order within one iteration: I/O and timer events first (timeouts
 * in deadline order, ties in the order they were scheduled), then the
 * callbacks queued with ts_ioloop_add_callback(), first in first out.
 * Callbacks added while the queue is being run wait for the next iteration,
 * so a callback that re-adds itself cannot starve I/O.
 */
#ifndef TSTREAM_IOLOOP_H
#define TSTREAM_IOLOOP_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

struct ev_loop;

/** An event loop. Opaque. */
typedef struct ts_ioloop ts_ioloop;

/** A plain callback run by the loop. */
typedef void (*ts_ioloop_cb)(ts_ioloop *loop, void *arg);

/** Handler event bits (Tornado's IOLoop.READ/WRITE/ERROR). */
enum {
    TS_IOLOOP_READ = 0x001,
    TS_IOLOOP_WRITE = 0x004,
    TS_IOLOOP_ERROR = 0x018
};

/**
 * An fd handler. @p events is the subset of READ/WRITE/ERROR that is ready.
 * ERROR is reported when the fd has an error or hang-up condition (POLLERR /
 * POLLHUP), always alongside the READ/WRITE bits the handler asked for.
 */
typedef void (*ts_ioloop_handler_cb)(ts_ioloop *loop, int fd, int events, void *arg);

/**
 * Creates a loop that owns a new libev loop (freed with it).
 *
 * @return the loop, or NULL when libev or the allocation fails
 */
TS_EXPORT ts_ioloop *ts_ioloop_new(void);

/**
 * Creates a loop over an existing libev loop, which the caller keeps owning
 * (ts_ioloop_free() does not destroy it). The program may keep running the
 * libev loop itself with ev_run(); the ts_ioloop's watchers run inside it.
 * ts_ioloop_start() on such a loop runs ev_run() on the borrowed loop.
 *
 * Run by the host's own ev_run(), a borrowed loop behaves as one run by
 * ts_ioloop_start(): ts_ioloop_current() returns it on that thread (from its
 * first iteration on); ts_ioloop_stop() ends the host's ev_run() (one
 * ev_break(EVBREAK_ONE)); and work in flight on the thread pool (a
 * ts_ioloop_run_in_executor() job, so a TCPClient name lookup) keeps the
 * libev loop alive like an active watcher until its result is handed back.
 * The loop's own watchers do not: with nothing else to do, ev_run() returns.
 *
 * @param ev the libev loop to run inside; it must outlive the returned loop.
 * @return the new loop, or NULL on allocation failure or a NULL @p ev.
 */
TS_EXPORT ts_ioloop *ts_ioloop_new_from_ev(struct ev_loop *ev);

/**
 * The underlying libev loop, owned or borrowed, for libev watchers of the
 * program's own.
 *
 * @param loop the loop
 * @return its libev loop
 */
TS_EXPORT struct ev_loop *ts_ioloop_ev(ts_ioloop *loop);

/**
 * Frees the loop. Callbacks already queued with ts_ioloop_add_callback() are
 * run first (and the ones they queue, for a bounded number of rounds), so that
 * futures completing through them release what they hold; a finished
 * executor job is delivered and one not yet started fails its future with
 * TS_ECANCELLED (after the worker threads are joined). Pending timeouts are
 * dropped without being run (a ts_with_timeout() future still waiting then
 * stays pending forever, its memory released with its last reference), and
 * fd handlers are removed without being called. With @p all_fds, every fd still registered with
 * ts_ioloop_add_handler() is closed (Tornado's close(all_fds=True)).
 * The loop must not be running. If it is the thread's current loop, the
 * thread's current loop becomes NULL.
 *
 * Streams still on the loop: every stream not yet closed is closed first,
 * as ts_iostream_close(stream, 0) would (a TLS stream sends its
 * close_notify). Its pending read and queued writes fail with TS_ECLOSED and
 * its close callback runs, in the rounds above, so a close callback that
 * frees its stream leaves nothing behind. A stream the program still holds
 * after that (or whose callbacks the bounded rounds did not reach) is cut
 * loose from the loop: it stays closed and valid until the program's
 * ts_iostream_free() or last ts_iostream_unref(), which is then safe;
 * ts_iostream_loop() returns NULL, reads and writes on it fail with
 * TS_ECLOSED, future forms return NULL, and callbacks still owed to it are
 * never run. Servers, clients and timers are not covered by this rule: free
 * them before their loop.
 *
 * @param loop the loop to free (NULL: no-op).
 * @param all_fds also close every fd still registered with
 *        ts_ioloop_add_handler().
 */
TS_EXPORT void ts_ioloop_free(ts_ioloop *loop, bool all_fds);

/**
 * The calling thread's current loop: the one last passed to
 * ts_ioloop_make_current() on this thread, or the one running on it. NULL
 * if there is none (no loop is created implicitly).
 *
 * @return the current loop, or NULL
 */
TS_EXPORT ts_ioloop *ts_ioloop_current(void);

/**
 * Makes @p loop the calling thread's current loop.
 *
 * @param loop the loop, or NULL to clear the current loop
 */
TS_EXPORT void ts_ioloop_make_current(ts_ioloop *loop);

/**
 * Runs the loop until ts_ioloop_stop() is called. Makes the loop current on
 * this thread while it runs.
 *
 * @param loop the loop
 * @return 0 once stopped
 * @retval TS_ESTATE the loop is already running
 */
TS_EXPORT int ts_ioloop_start(ts_ioloop *loop);

/**
 * Asks the loop to stop: ts_ioloop_start() returns after the current
 * iteration. Safe from any thread. If the loop is not running, the next
 * ts_ioloop_start() returns after one iteration (as Tornado).
 *
 * A stop belongs to the run it lands in: one that arrives while a run is
 * already ending (ts_ioloop_run_sync() returning because its future is
 * done, or a start() that was stopped before) is spent on that run and not
 * kept for the next one, as asyncio's stop() and so Tornado's behave.
 *
 * @param loop the loop
 */
TS_EXPORT void ts_ioloop_stop(ts_ioloop *loop);

/**
 * Whether the loop is running.
 *
 * @param loop the loop
 * @return true inside ts_ioloop_start() / ts_ioloop_run_sync()
 */
TS_EXPORT bool ts_ioloop_running(ts_ioloop *loop);

/**
 * The loop's monotonic clock. Deadlines (ts_ioloop_call_at()) are on it.
 *
 * @param loop the loop
 * @return seconds on a monotonic clock with an arbitrary origin
 */
TS_EXPORT double ts_ioloop_time(ts_ioloop *loop);

/**
 * Queues @p cb to run on the loop's thread in the next iteration. Safe from
 * any thread; wakes a sleeping loop.
 *
 * @param loop the loop
 * @param cb   the callback
 * @param arg  passed to @p cb
 * @return 0 when queued (@p cb will run once)
 * @retval TS_EINVAL @p loop or @p cb is NULL
 * @retval TS_ENOMEM out of memory (@p cb will never run)
 */
TS_EXPORT int ts_ioloop_add_callback(ts_ioloop *loop, ts_ioloop_cb cb, void *arg);

/**
 * As ts_ioloop_add_callback() but async-signal-safe: it allocates nothing and
 * takes no lock. Each (loop, cb, arg) is delivered at least once after the
 * signal; several signals before the loop wakes may be folded into one run.
 * At most TS_IOLOOP_SIGNAL_SLOTS distinct (cb, arg) pairs may be pending.
 *
 * @param loop the loop
 * @param cb   the callback
 * @param arg  passed to @p cb
 * @return 0 when queued, or folded into a run of the same (cb, arg) still pending
 * @retval TS_EINVAL @p loop or @p cb is NULL
 * @retval TS_EBUSY  TS_IOLOOP_SIGNAL_SLOTS other pairs are pending
 */
TS_EXPORT int ts_ioloop_add_callback_from_signal(ts_ioloop *loop, ts_ioloop_cb cb, void *arg);

/** How many distinct signal callbacks may be pending at once. */
#define TS_IOLOOP_SIGNAL_SLOTS 32

/**
 * Schedules @p cb to run @p delay seconds from now (Tornado's call_later).
 *
 * @param loop  the loop
 * @param delay seconds from now; negative is treated as 0
 * @param cb    the callback
 * @param arg   passed to @p cb
 * @return a timeout id (never 0) for ts_ioloop_remove_timeout(); 0 when
 *         @p cb is NULL, @p delay is NaN or memory ran out (@p cb never runs)
 */
TS_EXPORT uint64_t ts_ioloop_call_later(ts_ioloop *loop, double delay, ts_ioloop_cb cb, void *arg);

/**
 * Schedules @p cb at a deadline (Tornado's call_at).
 *
 * @param loop     the loop
 * @param deadline when to run, on the ts_ioloop_time() clock (a past one runs next iteration)
 * @param cb       the callback
 * @param arg      passed to @p cb
 * @return a timeout id (never 0); 0 when @p cb is NULL, @p deadline is NaN
 *         or memory ran out (@p cb never runs)
 */
TS_EXPORT uint64_t ts_ioloop_call_at(ts_ioloop *loop, double deadline, ts_ioloop_cb cb, void *arg);

/**
 * Cancels a timeout. Safe from inside any callback, the timeout's own
 * included; removing an id that already ran or was removed (or 0) is
 * harmless.
 *
 * @param loop the loop
 * @param id   what ts_ioloop_call_later() / ts_ioloop_call_at() returned
 * @return true if the timeout was pending and is now cancelled
 */
TS_EXPORT bool ts_ioloop_remove_timeout(ts_ioloop *loop, uint64_t id);

/**
 * Registers @p cb for @p events on @p fd (Tornado's add_handler). One
 * handler per fd. ERROR alone is allowed: it watches for readability and
 * reports only error/hang-up. The fd is not owned (see ts_ioloop_free()'s
 * all_fds).
 *
 * libev has no error-only interest, so an ERROR-only handler wakes the loop
 * whenever the fd is readable, and keeps waking it (level-triggered, without
 * calling the handler) while unread data sits in it: register ERROR alone
 * only on an fd that is drained or never readable.
 *
 * @param loop   the loop
 * @param fd     the fd to watch
 * @param events TS_IOLOOP_READ, TS_IOLOOP_WRITE, TS_IOLOOP_ERROR, or'ed
 * @param cb     called with the ready events
 * @param arg    passed to @p cb
 * @return 0 when registered
 * @retval TS_EINVAL a negative @p fd, a NULL @p cb or no event bit
 * @retval -EEXIST   @p fd already has a handler
 * @retval TS_ENOMEM out of memory
 */
TS_EXPORT int ts_ioloop_add_handler(ts_ioloop *loop, int fd, int events, ts_ioloop_handler_cb cb, void *arg);

/**
 * Changes the events a handler waits for (Tornado's update_handler).
 *
 * @param loop   the loop
 * @param fd     an fd with a handler
 * @param events the new event bits
 * @return 0 on success
 * @retval -ENOENT   @p fd has no handler
 * @retval TS_EINVAL no event bit
 */
TS_EXPORT int ts_ioloop_update_handler(ts_ioloop *loop, int fd, int events);

/**
 * Removes @p fd's handler (safe inside any handler, its own included; the
 * handler will not be called again, even for events already collected in
 * this iteration). The fd is not closed.
 *
 * @param loop the loop
 * @param fd   the fd
 * @return 0 when removed
 * @retval -ENOENT @p fd has no handler
 */
TS_EXPORT int ts_ioloop_remove_handler(ts_ioloop *loop, int fd);

struct ts_future;

/**
 * Runs the loop until @p future is done, or until @p timeout seconds pass
 * (timeout <= 0: no limit), or until ts_ioloop_stop() is called. At least one
 * iteration runs, even for a future already done or after a stop asked for
 * before the call. The future is not consumed.
 *
 * The rule for errors: the return value says whether the WAIT ended with the
 * future done; the future's own outcome is read from the future, and only
 * after a 0 return. Report a failure as
 * `r = ts_ioloop_run_sync(loop, f, t); if (r == 0) r = ts_future_error(f);`
 * — `r` is then the one error to print (0 only for a future that succeeded).
 * A timeout never sets an error on the future (it stays pending, as Tornado's
 * run_sync leaves the coroutine running), so ts_future_error() after a
 * TS_ETIMEDOUT return is 0 and must not be read as success.
 *
 * @param loop    the loop to run; not already running.
 * @param future  the future to wait for.
 * @param timeout seconds to wait at most; <= 0 waits without limit.
 * @return 0 when the future is done (successfully or not: inspect it).
 * @retval TS_ETIMEDOUT the time ran out, or the loop was stopped, first.
 * @retval TS_ESTATE the loop is already running (run_sync does not nest, and
 *         is refused from inside any of the loop's callbacks under
 *         ts_ioloop_start()).
 * @retval TS_ENOMEM the done callback or the timeout's timer could not be
 *         allocated (nothing ran).
 */
TS_EXPORT int ts_ioloop_run_sync(ts_ioloop *loop, struct ts_future *future, double timeout);

/**
 * A function run on an executor thread. Returns the result pointer; a
 * non-zero *err (set it to a negative code) fails the future instead.
 */
typedef void *(*ts_executor_fn)(void *arg, int *err);

/**
 * Runs @p fn(@p arg) on the loop's thread pool (created on first use, 4
 * threads by default, see ts_ioloop_set_executor_threads()). Returns a future
 * that completes on the loop's thread with fn's result (destroyed with
 * @p result_dtor if the future is released unconsumed) or its error. The
 * caller owns one reference to the returned future.
 *
 * @param loop        the loop whose thread pool runs @p fn, and on which the future completes
 * @param fn          the function, run on a pool thread
 * @param arg         passed to @p fn
 * @param result_dtor destroys fn's result if the future is freed with it, or NULL
 * @return the future; NULL when @p fn is NULL, memory ran out or the pool's
 *         threads could not be started (@p fn never runs)
 */
TS_EXPORT struct ts_future *ts_ioloop_run_in_executor(ts_ioloop *loop, ts_executor_fn fn, void *arg,
                                                      void (*result_dtor)(void *));

/**
 * Sets the size of the loop's thread pool, before its first use.
 *
 * @param loop     the loop
 * @param nthreads 1 to 256 threads
 * @return 0 on success
 * @retval TS_EINVAL @p nthreads is out of range
 * @retval TS_ESTATE the pool already runs
 */
TS_EXPORT int ts_ioloop_set_executor_threads(ts_ioloop *loop, int nthreads);

/**
 * Reports an error raised by a callback, as Tornado's
 * handle_callback_exception: logs it at ERROR level through the log hook
 * with @p where naming the callback. The loop carries on.
 *
 * @param loop  the loop
 * @param where names the callback, for the log line
 * @param err   the error (a negative code)
 */
TS_EXPORT void ts_ioloop_handle_callback_error(ts_ioloop *loop, const char *where, int err);

/** A periodic callback (Tornado's PeriodicCallback). Opaque. */
typedef struct ts_periodic ts_periodic;

/**
 * Creates a periodic callback running every @p interval seconds (> 0) once
 * started. @p jitter in [0, 1): each interval is scaled by a random factor in
 * [1 - jitter/2, 1 + jitter/2]. Missed runs are skipped, not bunched: the
 * next deadline is the first future multiple of the interval.
 *
 * @param loop     the loop
 * @param cb       the callback
 * @param arg      passed to @p cb
 * @param interval seconds between runs, > 0
 * @param jitter   0 for none, up to (not including) 1
 * @return the periodic callback, stopped; NULL for a NULL @p loop or @p cb,
 *         an interval or jitter out of range, or out of memory
 */
TS_EXPORT ts_periodic *ts_periodic_new(ts_ioloop *loop, ts_ioloop_cb cb, void *arg, double interval, double jitter);
/**
 * Starts it: the first run is one interval from now. No-op if running.
 *
 * @param pc the periodic callback
 */
TS_EXPORT void ts_periodic_start(ts_periodic *pc);
/**
 * Stops it; safe from inside its own callback. No-op if stopped.
 *
 * @param pc the periodic callback
 */
TS_EXPORT void ts_periodic_stop(ts_periodic *pc);
/**
 * Whether it is started.
 *
 * @param pc the periodic callback
 * @return true between ts_periodic_start() and ts_periodic_stop()
 */
TS_EXPORT bool ts_periodic_is_running(ts_periodic *pc);
/**
 * Stops and frees it; safe from inside its own callback. Free it before its loop.
 *
 * @param pc the periodic callback (NULL is allowed)
 */
TS_EXPORT void ts_periodic_free(ts_periodic *pc);

#ifdef __cplusplus
}
#endif

#endif /* TSTREAM_IOLOOP_H */
