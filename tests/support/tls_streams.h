/*
 * TLS stream fixtures over loopback TCP: a handshaken client/server pair
 * (also the "tls" row of the shared stream-behaviour suite), and a waiter
 * for handshake results.
 */
#ifndef TS_TLS_STREAMS_H
#define TS_TLS_STREAMS_H

#include "tstream.h"
#include "tstream/ssl.h"

/**
 * Two TLS streams over a fresh loopback TCP connection: *client (verifying
 * @p host against @p cctx) and *server (@p sctx). NULL contexts: the test
 * CA's localhost server certificate / a client trusting only the test CA.
 * Runs @p loop until both handshakes finish; *rc_c / *rc_s (may be NULL) get
 * the results. Returns 0 if both succeeded; otherwise the first error, with
 * the streams still returned (closed) for inspection when they were made.
 */
int tu_tls_stream_pair(ts_ioloop *loop, const ts_iostream_options *opts, SSL_CTX *sctx, SSL_CTX *cctx,
                       const char *host, ts_iostream **client, ts_iostream **server, int *rc_c, int *rc_s);

/** The tu_make_pair_fn for the shared suite: defaults, both streams released on failure. */
int tu_make_tls_pair(ts_ioloop *loop, const ts_iostream_options *opts, ts_iostream **client, ts_iostream **server);

/** A handshake outcome: set by tu_hs_record (as a ts_iostream_connect_cb). */
typedef struct tu_hs {
    bool done;
    int status;
} tu_hs;
void tu_hs_record(ts_iostream *s, int status, void *arg);

#endif /* TS_TLS_STREAMS_H */
