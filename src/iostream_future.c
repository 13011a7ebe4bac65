/*
 * Future forms of the stream operations: each wraps the callback form with
 * a callback that completes a ts_future. Read results are owned copies
 * (ts_bytes); read_into's is the byte count cast to a pointer.
 *
 * If the callback form refuses to start (an error return), the future is
 * returned already failed with that error, so callers always get a future
 * (NULL only when the future itself cannot be allocated).
 */
#include <stdint.h>

#include "iostream_core.h"

/* The callback holds its own reference to the future until it runs. */
static ts_future *prepare(ts_iostream *s)
{
    ts_future *f = ts_future_new(ts__io_loop(s));
    if (f)
        ts_future_ref(f);
    return f;
}

/* Fails a future whose operation did not start; drops the callback's reference. */
static ts_future *started(ts_future *f, int r)
{
    if (r < 0) {
        ts_future_set_error(f, r);
        ts_future_unref(f);
    }
    return f;
}

static void on_read(ts_iostream *s, int status, const char *data, size_t len, void *arg)
{
    TS__UNUSED(s);
    ts_future *f = arg;
    if (status < 0) {
        ts_future_set_error(f, status);
    } else {
        ts_bytes *b = ts_bytes_new(data, len);
        if (b)
            ts_future_set_result(f, b, ts_bytes_free);
        else
            ts_future_set_error(f, TS_ENOMEM);
    }
    ts_future_unref(f);
}

static void on_into(ts_iostream *s, int status, size_t n, void *arg)
{
    TS__UNUSED(s);
    ts_future *f = arg;
    if (status < 0)
        ts_future_set_error(f, status);
    else
        ts_future_set_result(f, (void *)(uintptr_t)n, NULL);
    ts_future_unref(f);
}

static void on_done(ts_iostream *s, int status, void *arg)
{
    TS__UNUSED(s);
    ts_future *f = arg;
    if (status < 0)
        ts_future_set_error(f, status);
    else
        ts_future_set_result(f, NULL, NULL);
    ts_future_unref(f);
}

ts_future *ts_iostream_read_bytes_future(ts_iostream *s, size_t n, bool partial)
{
    ts_future *f = prepare(s);
    return f ? started(f, ts_iostream_read_bytes(s, n, partial, on_read, f)) : NULL;
}

ts_future *ts_iostream_read_until_future(ts_iostream *s, const void *delim, size_t delim_len, size_t max_bytes)
{
    ts_future *f = prepare(s);
    return f ? started(f, ts_iostream_read_until(s, delim, delim_len, max_bytes, on_read, f)) : NULL;
}

ts_future *ts_iostream_read_until_regex_future(ts_iostream *s, const char *pattern, size_t max_bytes)
{
    ts_future *f = prepare(s);
    return f ? started(f, ts_iostream_read_until_regex(s, pattern, max_bytes, on_read, f)) : NULL;
}

ts_future *ts_iostream_read_until_close_future(ts_iostream *s)
{
    ts_future *f = prepare(s);
    return f ? started(f, ts_iostream_read_until_close(s, on_read, f)) : NULL;
}

ts_future *ts_iostream_read_into_future(ts_iostream *s, void *buf, size_t len, bool partial)
{
    ts_future *f = prepare(s);
    return f ? started(f, ts_iostream_read_into(s, buf, len, partial, on_into, f)) : NULL;
}

ts_future *ts_iostream_write_future(ts_iostream *s, const void *data, size_t len)
{
    ts_future *f = prepare(s);
    return f ? started(f, ts_iostream_write(s, data, len, on_done, f)) : NULL;
}

ts_future *ts_iostream_write_file_future(ts_iostream *s, int fd, uint64_t offset, uint64_t length)
{
    ts_future *f = prepare(s);
    return f ? started(f, ts_iostream_write_file(s, fd, offset, length, on_done, f)) : NULL;
}

ts_future *ts_iostream_connect_future(ts_iostream *s, const struct sockaddr *addr, socklen_t addrlen)
{
    ts_future *f = prepare(s);
    return f ? started(f, ts_iostream_connect(s, addr, addrlen, on_done, f)) : NULL;
}

ts_future *ts_iostream_shutdown_future(ts_iostream *s)
{
    ts_future *f = prepare(s);
    return f ? started(f, ts_iostream_shutdown(s, on_done, f)) : NULL;
}
