/**
 * @file tstream/future.h
 * @brief Futures (Tornado's Future, gen.with_timeout and gen.multi).
 *
 * A future belongs to one loop and is used on that loop's thread only. It is
 * reference counted: ts_future_new() and every function returning a new
 * future give the caller one reference, released with ts_future_unref().
 * Done callbacks always run on the loop in a later callback, never inline in
 * ts_future_set_result() or ts_future_add_done_callback(), as Tornado.
 */
#ifndef TSTREAM_FUTURE_H
#define TSTREAM_FUTURE_H

#include "common.h"
#include "ioloop.h"

#ifdef __cplusplus
extern "C" {
#endif

/** A future. Opaque. */
typedef struct ts_future ts_future;

/** Called once the future is done. The future stays valid during the call. */
typedef void (*ts_future_cb)(ts_future *f, void *arg);

/** Destroys a result value when the future is freed. */
typedef void (*ts_future_dtor)(void *result);

/**
 * A new pending future.
 *
 * @param loop the loop its done callbacks run on
 * @return the future, with one reference for the caller; NULL when out of memory
 */
TS_EXPORT ts_future *ts_future_new(ts_ioloop *loop);

/**
 * Takes a reference.
 *
 * @param f the future
 * @return @p f
 */
TS_EXPORT ts_future *ts_future_ref(ts_future *f);

/**
 * Drops a reference; the last one frees the future and destroys its result
 * (unless it was stolen).
 *
 * @param f the future, or NULL (nothing happens)
 */
TS_EXPORT void ts_future_unref(ts_future *f);

/**
 * Completes the future with @p result, which it then owns: @p dtor (may be
 * NULL) runs on it when the future is freed, unless ts_future_steal_result()
 * took it. The done callbacks run from the loop, not inside this call.
 *
 * @param f      a pending future
 * @param result the result (may be NULL)
 * @param dtor   destroys @p result when the future is freed, or NULL
 * @return 0 when the future is now done
 * @retval TS_ESTATE the future was already done: logged, and @p result is
 *         destroyed with @p dtor so it is not leaked
 */
TS_EXPORT int ts_future_set_result(ts_future *f, void *result, ts_future_dtor dtor);

/**
 * Completes the future with an error. The done callbacks run from the loop.
 *
 * @param f   a pending future
 * @param err a negative error code (TS_E* or `-errno`)
 * @return 0 when the future is now done
 * @retval TS_EINVAL @p err is not negative
 * @retval TS_ESTATE the future was already done (logged)
 */
TS_EXPORT int ts_future_set_error(ts_future *f, int err);

/**
 * Whether the future is done (with a result or an error).
 *
 * @param f the future
 * @return true once ts_future_set_result() or ts_future_set_error() ran
 */
TS_EXPORT bool ts_future_done(const ts_future *f);

/**
 * The result, still owned by the future.
 *
 * @param f the future
 * @return the result; NULL while pending, on error, after
 *         ts_future_steal_result() or when NULL was the result
 */
TS_EXPORT void *ts_future_result(const ts_future *f);

/**
 * Takes ownership of the result: returns it and makes the future forget its
 * destructor. On a future that borrows its result (ts_with_timeout()), the
 * result moves out of the future it was borrowed from too.
 *
 * @param f the future
 * @return the result, now the caller's to destroy; NULL if the future is not
 *         done successfully (or was stolen from already)
 */
TS_EXPORT void *ts_future_steal_result(ts_future *f);

/**
 * The future's error.
 *
 * @param f the future
 * @return 0 while pending or when done with a result, else the negative code
 */
TS_EXPORT int ts_future_error(const ts_future *f);

/**
 * Runs @p cb(f, arg) on the loop once @p f is done (in a later loop
 * callback if it is already done). The future holds a reference to itself
 * until its callbacks have run. Callbacks run in the order they were added.
 *
 * @param f   the future
 * @param cb  the callback
 * @param arg passed to @p cb
 * @return 0 when added (@p cb will run once)
 * @retval TS_EINVAL @p cb is NULL
 * @retval TS_ENOMEM out of memory (@p cb never runs)
 */
TS_EXPORT int ts_future_add_done_callback(ts_future *f, ts_future_cb cb, void *arg);

/**
 * The loop the future belongs to.
 *
 * @param f the future
 * @return the loop given to ts_future_new()
 */
TS_EXPORT ts_ioloop *ts_future_loop(const ts_future *f);

/**
 * A new future that completes as @p f does, or fails with TS_ETIMEDOUT after
 * @p timeout seconds. The result is shared: the new future's result is a
 * borrowed pointer to @p f's result, and the new future holds a reference to
 * @p f until it is freed. To keep a result that @p f owns (a stream from
 * ts_tcpclient_connect_future(), say), take it with ts_future_steal_result()
 * on the new future: that moves it out of @p f as well, so releasing both
 * futures no longer destroys it:
 * @code
 *   ts_future *c = ts_tcpclient_connect_future(cl, host, port, NULL);
 *   ts_future *t = ts_with_timeout(c, 5.0);
 *   ts_future_unref(c);                       // t keeps c alive
 *   if (ts_ioloop_run_sync(loop, t, 0) == 0 && ts_future_error(t) == 0)
 *       stream = ts_future_steal_result(t);   // ours now, in c too
 *   ts_future_unref(t);                       // frees c; the stream stays open
 * @endcode
 * Reading it with ts_future_result() instead only borrows it: it is closed
 * and released with @p f. @p f itself is not cancelled on timeout (as Tornado).
 * If @p f is already done, the new future is done with its outcome at once,
 * whatever @p timeout (its callbacks still run from the loop). If the loop is
 * freed while the new future waits, it stays pending; its memory goes with its
 * last reference.
 *
 * @param f       the future to wait for (referenced, not consumed)
 * @param timeout seconds to wait
 * @return a new future (one reference for the caller), done with @p f's
 *         outcome or failed with TS_ETIMEDOUT; NULL when out of memory
 */
TS_EXPORT ts_future *ts_with_timeout(ts_future *f, double timeout);

/**
 * Gathers @p n futures (Tornado's gen.multi): the returned future fails with
 * the first error as soon as one input fails, and otherwise completes with a
 * NULL result once all inputs have completed. The inputs are referenced until
 * they complete, not consumed; read their results from them. n == 0
 * completes at once (its callbacks still run from the loop).
 *
 * @param loop    the loop the new future belongs to
 * @param futures the inputs (the array is not kept)
 * @param n       their number
 * @return a new future (one reference for the caller) that completes with
 *         NULL or fails with the first input's error; NULL when out of memory
 */
TS_EXPORT ts_future *ts_future_multi(ts_ioloop *loop, ts_future *const *futures, size_t n);

#ifdef __cplusplus
}
#endif

#endif /* TSTREAM_FUTURE_H */
