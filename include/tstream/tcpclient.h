/**
 * @file tstream/tcpclient.h
 * @brief A non-blocking TCP connection factory (Tornado's TCPClient), with
 * "Happy Eyeballs" (RFC 6555) across address families.
 *
 * ts_tcpclient_connect() resolves the host, races connection attempts the
 * way Tornado's _Connector does, optionally upgrades the winner to TLS, and
 * hands you a connected stream. What it does not do: it keeps no pool of
 * connections and caches no addresses.
 *
 * ## The race (Tornado's _Connector)
 * The resolved addresses are split into a primary list (the family of the
 * first address) and a secondary list (every other family), each kept in the
 * resolver's order. Primary addresses are tried one at a time, the next as
 * soon as one fails. The secondary list starts 0.3 s
 * (TS_TCPCLIENT_SECONDARY_DELAY) after the first attempt, or at once if a
 * primary attempt fails first or the primary list runs out, and is also
 * tried one at a time. So at most one attempt per family is in flight. The
 * first attempt to connect wins; every other one is closed. If every address
 * fails, the last error is reported.
 */
#ifndef TSTREAM_TCPCLIENT_H
#define TSTREAM_TCPCLIENT_H

#include "common.h"
#include "future.h"
#include "ioloop.h"
#include "iostream.h"
#include "netutil.h"

struct ssl_ctx_st; /* OpenSSL's SSL_CTX */

#ifdef __cplusplus
extern "C" {
#endif

/** How long the primary family runs alone before the secondary one starts (Tornado's _INITIAL_CONNECT_TIMEOUT). */
#define TS_TCPCLIENT_SECONDARY_DELAY 0.3

/** A TCP client. Opaque. Used on one loop's thread. */
typedef struct ts_tcpclient ts_tcpclient;

/**
 * A connection attempt is starting (ts_tcpclient_options.on_attempt): the
 * client is about to connect to @p addr, one of the resolved addresses, in
 * the order the race tries them (both families interleave as described in
 * the file comment). Called on the loop's thread, from the loop (never inside
 * ts_tcpclient_connect()), once per attempt, before the connect's own
 * callback; not called for addresses the race never reaches. For logging
 * ("Trying 127.0.0.1:8080..."): it must not free the client or the loop.
 *
 * @param addr    the address about to be tried (valid during the call only)
 * @param addrlen its length
 * @param arg     ts_tcpclient_options.on_attempt_arg
 */
typedef void (*ts_tcpclient_attempt_cb)(const struct sockaddr *addr, socklen_t addrlen, void *arg);

/** Connection options. Zero-initialise, set `size = sizeof(ts_tcpclient_options)`. */
typedef struct ts_tcpclient_options {
    /** sizeof(ts_tcpclient_options). */
    size_t size;
    /** AF_UNSPEC (0: any), AF_INET or AF_INET6: which addresses to resolve. */
    int family;
    /**
     * An OpenSSL `SSL_CTX *` (the type is forward-declared, so this header
     * needs no OpenSSL header; include tstream/ssl.h to make one) (client side, e.g. from ts_ssl_context_new()).
     * When set, the winning connection is upgraded to TLS
     * (ts_iostream_start_tls(), as Tornado connects in plaintext first) and
     * is handed over only after the handshake. The context is referenced for
     * the duration of the connect; the caller may free its own afterwards.
     * NULL: plain TCP.
     */
    struct ssl_ctx_st *ssl_ctx;
    /**
     * The name to verify the server's certificate against (and send as SNI).
     * NULL: the @p host passed to connect. Copied.
     */
    const char *server_hostname;
    /** The stream's max_buffer_size (0: the stream default, 100 MiB). */
    size_t max_buffer_size;
    /** The stream's read_chunk_size (0: the stream default, 64 KiB). */
    size_t read_chunk_size;
    /**
     * Bind each attempt's socket to this IP literal before connecting. An
     * attempt whose address family differs from it fails (and the race moves
     * on). NULL: the kernel chooses.
     */
    const char *source_ip;
    /**
     * Bind to this local port (1..65535) before connecting; 0: any. Without
     * source_ip the wildcard address of the attempt's family is used (Tornado
     * binds to the loopback address there, which cannot reach other hosts).
     */
    int source_port;
    /**
     * Overall deadline in seconds for resolving, connecting and the TLS
     * handshake together; on expiry the connect fails with TS_ETIMEDOUT and
     * every attempt is closed. <= 0: none (attempts then end only when the
     * kernel gives up).
     */
    double timeout;
    /**
     * Called as each attempt starts, with the address tried (see
     * ts_tcpclient_attempt_cb). NULL: not called. Read only when @p size
     * covers it and on_attempt_arg (older programs get none).
     */
    ts_tcpclient_attempt_cb on_attempt;
    /** Passed to on_attempt. */
    void *on_attempt_arg;
} ts_tcpclient_options;

/**
 * A connect finished. On success @p status is 0 and @p stream is connected
 * (and handshaken, for TLS); the one reference to it is yours. On failure
 * @p stream is NULL and @p status says why: TS_ERESOLVE (with @p detail, the
 * resolver's reason, e.g. getaddrinfo's message), TS_ETIMEDOUT, the last
 * attempt's OS error (-ECONNREFUSED, -ENETUNREACH, ...; -EADDRINUSE or
 * -EADDRNOTAVAIL when the source address cannot be bound), TS_ESSL (detail:
 * OpenSSL's reason), TS_ENOMEM. @p detail may be NULL and is valid during
 * the call only.
 */
typedef void (*ts_tcpclient_connect_cb)(int status, ts_iostream *stream, const char *detail, void *arg);

/**
 * Creates a client on @p loop. @p resolver (borrowed: it must outlive the
 * client's connects) resolves host names.
 *
 * @param loop     the loop the client's connects run on
 * @param resolver the resolver, or NULL for a ts_resolver_new_default() the client owns
 * @return the client; NULL for a NULL @p loop or out of memory
 */
TS_EXPORT ts_tcpclient *ts_tcpclient_new(ts_ioloop *loop, ts_resolver *resolver);

/**
 * Frees the client, and its resolver if it made it. Connects in flight are
 * not cancelled: they complete and their callbacks run.
 *
 * @param client the client, or NULL (nothing happens)
 */
TS_EXPORT void ts_tcpclient_free(ts_tcpclient *client);

/**
 * Connects to @p host (a name or IP literal) on @p port (1..65535), as
 * described in the file comment.
 *
 * @param client the client
 * @param host   a name or IP literal (copied)
 * @param port   1..65535
 * @param opts   options, or NULL for the defaults
 * @param cb     gets the connected stream or the error
 * @param arg    passed to @p cb
 * @return 0 when started (@p cb will run exactly once, never inside this
 *         call); on an error @p cb never runs
 * @retval TS_EINVAL bad arguments, opts->size too small, a source_ip that is
 *         not an IP literal, or ssl_ctx set in a build without TLS
 * @retval TS_ESSL   the TLS context cannot be referenced (never a plaintext fallback)
 * @retval TS_ENOMEM out of memory
 * @retval TS_ERESOLVE (or another code) the resolver's immediate error
 */
TS_EXPORT int ts_tcpclient_connect(ts_tcpclient *client, const char *host, int port,
                                   const ts_tcpclient_options *opts, ts_tcpclient_connect_cb cb, void *arg);

/**
 * Future form of ts_tcpclient_connect(). The result is the ts_iostream *: the
 * future owns that reference (take it with ts_future_steal_result(), or it is
 * closed and dropped with the future). The error is the status above (the
 * detail text is logged at DEBUG). An error ts_tcpclient_connect() would
 * return at once (bad arguments, the resolver's immediate error) comes back
 * as a future already failed with that code.
 *
 * @param client the client
 * @param host   a name or IP literal
 * @param port   1..65535
 * @param opts   options, or NULL for the defaults
 * @return the future (one reference for the caller); NULL only when
 *         @p client is NULL or the future cannot be allocated
 */
TS_EXPORT ts_future *ts_tcpclient_connect_future(ts_tcpclient *client, const char *host, int port,
                                                 const ts_tcpclient_options *opts);

#ifdef __cplusplus
}
#endif

#endif /* TSTREAM_TCPCLIENT_H */
