/*
 * Connected stream pairs for the shared stream-behaviour suite
 * (tests/test_iostream.c), one row per transport, as Tornado's
 * make_iostream_pair. Add a row to tu_stream_pairs[] (stream_pairs.c) to run
 * the whole suite over a new transport.
 */
#ifndef TS_STREAM_PAIRS_H
#define TS_STREAM_PAIRS_H

#include <stdbool.h>

#include "tstream.h"

/**
 * Makes two connected streams on @p loop with @p opts (may be NULL) applied
 * to both. Bytes written to *client arrive at *server; for bidirectional
 * kinds the reverse holds too. Both are ready for reads and writes when it
 * returns (a maker may run the loop, e.g. for a TLS handshake). Returns 0 or
 * a negative error (nothing left open).
 */
typedef int (*tu_make_pair_fn)(ts_ioloop *loop, const ts_iostream_options *opts, ts_iostream **client,
                               ts_iostream **server);

typedef struct tu_stream_pair_kind {
    const char *name;
    tu_make_pair_fn make_pair;
    /** Data flows server -> client too (not for pipes). */
    bool bidirectional;
    /** The streams' fds are sockets (shutdown(), SO_LINGER work). */
    bool sockets;
} tu_stream_pair_kind;

/** The rows: "tcp" (127.0.0.1), "unix" (socketpair AF_UNIX), "pipe". */
extern const tu_stream_pair_kind tu_stream_pairs[];
extern const int tu_stream_pairs_count;

/** A connected TCP socket pair over 127.0.0.1 (blocking fds). Returns 0 or -errno. */
int tu_tcp_socketpair(int fds[2]);

#endif /* TS_STREAM_PAIRS_H */

/* ---- the shared suite's fixture ------------------------------------------ */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

/** The current test's loop and pair: @c ws writes, @c rs reads (client / server). */
typedef struct tu_fx {
    const tu_stream_pair_kind *kind;
    ts_ioloop *loop;
    ts_iostream *rs, *ws;
    int fds_before;
} tu_fx;

extern tu_fx tu_F;

/** cmocka setup: a loop with a 30 s watchdog; initial state is the tu_stream_pair_kind. */
int tu_fx_setup(void **state);
/** cmocka teardown: frees what is left, checks no handler and no fd is left behind. */
int tu_fx_teardown(void **state);
/** Makes tu_F.ws / tu_F.rs with @p opts (NULL: defaults). */
void tu_fx_pair(const ts_iostream_options *opts);
/** Options with the given limits (0: default). */
ts_iostream_options tu_opts(size_t max_buffer, size_t chunk, size_t max_write);

/** Runs the loop until @p f is done (10 s at most); returns it. */
ts_future *tu_await(ts_future *f);
/** Awaits a read future and checks its bytes; releases it. */
void tu_expect_read(ts_future *f, const void *want, size_t len);
/** Awaits a future that must fail; returns its error and releases it. */
int tu_await_error(ts_future *f);
/** Awaits a future that must succeed; releases it. */
void tu_await_ok(ts_future *f);

/** Runs every test over every pair kind (names "kind/test"). Returns failures. */
int tu_run_variants(const char *group, const struct CMUnitTest *tests, size_t n);

/** Records callbacks: how many, the last status and data, and a global order stamp. */
typedef struct tu_rec {
    int calls;
    int status;
    char *data;
    size_t len;
    int order;
} tu_rec;

void tu_rec_read(ts_iostream *s, int status, const char *data, size_t len, void *arg);
void tu_rec_write(ts_iostream *s, int status, void *arg);
void tu_rec_close(ts_iostream *s, void *arg);
/** Appends streamed chunks to the record's data. */
void tu_rec_stream(ts_iostream *s, const char *data, size_t len, void *arg);
void tu_rec_free(tu_rec *r);
/** Waits until @p r has at least @p calls calls. */
void tu_rec_wait(tu_rec *r, int calls);
