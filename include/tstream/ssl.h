/**
 * @file tstream/ssl.h
 * @brief TLS streams over OpenSSL (Tornado's SSLIOStream, IOStream.start_tls).
 *
 * A TLS stream is an ordinary ts_iostream whose transport is an OpenSSL `SSL`
 * object over a socket: every read, write, callback and error rule of
 * tstream/iostream.h applies unchanged. What TLS adds:
 *
 * - **The handshake.** It runs before any application data moves: for a
 *   stream over a connected socket it starts at once, for a client stream
 *   over a connecting socket once ts_iostream_connect() has connected (whose
 *   callback then runs after the handshake). Reads and writes may be queued
 *   meanwhile. ts_iostream_wait_for_handshake() tells when it finished.
 * - **Errors.** A TLS failure closes the stream with TS_ESSL and
 *   ts_iostream_error_detail() gives OpenSSL's reason, e.g.
 *   "certificate verify failed: Hostname mismatch", "wrong version number",
 *   "tlsv1 alert unknown ca". Failed handshakes are also logged at
 *   TS_LOG_WARN (as Tornado logs "SSL Error").
 * - **Closing.** ts_iostream_close() sends a close_notify alert when it can
 *   (best effort, never blocking), and discards unread input before closing
 *   the socket, so the kernel ends the connection with FIN rather than RST (a
 *   TLS 1.3 client that never reads has the server's session tickets unread;
 *   a RST would drop the last data it sent). A peer's close_notify is a clean end of
 *   stream. A peer that just closes its socket (no close_notify) also ends
 *   the stream as Tornado 6 does (read_until_close still completes
 *   successfully), but ts_iostream_error() then reports TS_ETRUNCATED, so a
 *   protocol that needs authenticated end-of-data (one without its own
 *   length framing) can tell a truncation attack from a clean close.
 * - **A vanished peer loses nothing it sent.** A write that fails because
 *   the peer has gone (-EPIPE / -ECONNRESET) does not close the stream while
 *   data the peer sent before going is still unread: the pending read gets
 *   it first, then the stream closes (openssl#10880's lesson, one level up).
 * - **No SIGPIPE.** The transport writes with `send(MSG_NOSIGNAL)` through
 *   its own BIO: writing to a peer that has gone fails with -EPIPE instead
 *   of killing the process, without touching the process's signal mask.
 *
 * ## Secure defaults
 * Contexts made by ts_ssl_context_new() (and the default client context) use
 * TLS 1.2 as the minimum version, disable renegotiation and compression,
 * and on the client side verify the server's certificate chain against the
 * system CA store and its name against `server_hostname` (which is also sent
 * as SNI unless it is an IP address). Nothing is skipped silently: turning
 * verification off takes an explicit ::TS_SSL_VERIFY_NONE (or a user-built
 * `SSL_CTX` configured so), and a verifying client stream without a
 * `server_hostname` is refused with TS_EINVAL unless
 * ts_ssl_options::no_hostname_check says so.
 *
 * This is the only libtstream header that includes OpenSSL's headers.
 */
#ifndef TSTREAM_SSL_H
#define TSTREAM_SSL_H

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "common.h"
#include "future.h"
#include "ioloop.h"
#include "iostream.h"

#ifdef __cplusplus
extern "C" {
#endif

/** How a context verifies the peer's certificate. */
typedef enum ts_ssl_verify {
    /** Clients: ::TS_SSL_VERIFY_REQUIRED. Servers: ::TS_SSL_VERIFY_NONE (no client certificate asked). */
    TS_SSL_VERIFY_DEFAULT = 0,
    /** No verification. For a client this is insecure and must be asked for explicitly. */
    TS_SSL_VERIFY_NONE = 1,
    /** Servers: ask for a client certificate and verify it if one is sent. Clients: as REQUIRED. */
    TS_SSL_VERIFY_OPTIONAL = 2,
    /** The peer must present a certificate that verifies; the handshake fails otherwise. */
    TS_SSL_VERIFY_REQUIRED = 3
} ts_ssl_verify;

/**
 * What ts_ssl_context_new() builds a context from. Zero-initialise, set
 * `size = sizeof(ts_ssl_context_options)`, fill in what you need; every
 * field left zero takes the secure default described on it.
 */
typedef struct ts_ssl_context_options {
    /** sizeof(ts_ssl_context_options). */
    size_t size;
    /** A server context (TLS_server_method) rather than a client one. */
    bool server_side;
    /** PEM certificate chain (leaf first). Required for servers; optional client certificate for clients. */
    const char *cert_file;
    /** PEM private key for cert_file. NULL: the key is read from cert_file. */
    const char *key_file;
    /**
     * PEM file of trusted CA certificates. With ca_file or ca_dir set, only
     * those are trusted; with neither, a client (or a verifying server) trusts
     * the system CA store (SSL_CTX_set_default_verify_paths()).
     */
    const char *ca_file;
    /** Directory of hashed CA certificates (c_rehash layout). See ca_file. */
    const char *ca_dir;
    /** Peer verification. See ::ts_ssl_verify. */
    ts_ssl_verify verify;
    /** Lowest protocol version, e.g. TLS1_2_VERSION, TLS1_3_VERSION. 0: TLS1_2_VERSION. */
    int min_version;
    /** Highest protocol version. 0: the highest OpenSSL supports. */
    int max_version;
    /** OpenSSL cipher list for TLS 1.2 and below (SSL_CTX_set_cipher_list). NULL: OpenSSL's default. */
    const char *ciphers;
    /** TLS 1.3 cipher suites (SSL_CTX_set_ciphersuites). NULL: OpenSSL's default. */
    const char *ciphersuites;
    /**
     * ALPN protocols in preference order, a NULL-terminated array, e.g.
     * `(const char *[]){"h2", "http/1.1", NULL}`. Clients offer them; servers
     * pick the first of theirs the client offered (no match: no ALPN, the
     * handshake goes on, as OpenSSL's SSL_TLSEXT_ERR_NOACK). NULL: no ALPN.
     * Each name is 1..255 bytes.
     */
    const char *const *alpn_protocols;
    /**
     * TLS 1.3 session tickets a server sends after the handshake. 0: OpenSSL's
     * default (2); a negative value sends none. Ignored for clients.
     */
    int num_tickets;
} ts_ssl_context_options;

/**
 * Builds an `SSL_CTX` from @p opts (NULL: a default client context). The
 * caller owns the returned context (one reference): pass it in
 * ts_ssl_options::ctx to any number of streams (each takes its own
 * reference) and release it with SSL_CTX_free().
 *
 * @param opts the options, or NULL for a default client context (TLS 1.2+,
 *             verifying against the system CA store)
 * @param err  on failure gets the error (may be NULL): TS_EINVAL for a bad
 *             option (a server without cert_file, an empty or over-long ALPN
 *             name, an unknown version, too small a size), TS_ESSL when
 *             OpenSSL refuses a file, cipher list or key (the reason is then
 *             logged and available from ts_ssl_last_error_detail()),
 *             TS_ENOMEM; set to 0 on success
 * @return the context (one reference for the caller), or NULL on failure
 */
TS_EXPORT SSL_CTX *ts_ssl_context_new(const ts_ssl_context_options *opts, int *err);

/**
 * OpenSSL's reason for the last TS_ESSL returned by ts_ssl_context_new(),
 * ts_iostream_new_ssl() or ts_iostream_start_tls() on the calling thread
 * (e.g. "No such file or directory", "key values mismatch"), or "" if none.
 * Valid until the next such call on this thread. Errors on a stream are
 * reported by ts_iostream_error_detail() instead.
 *
 * @return a thread-local string, never NULL
 */
TS_EXPORT const char *ts_ssl_last_error_detail(void);

/**
 * Per-stream TLS options. Zero-initialise, set `size = sizeof(ts_ssl_options)`.
 */
typedef struct ts_ssl_options {
    /** sizeof(ts_ssl_options). */
    size_t size;
    /**
     * The context; the stream takes its own reference, so the caller may free
     * it at once. NULL: a context built from @ref ctx_options for this stream
     * alone, or with both NULL the shared default client context (servers
     * need a context with a certificate: TS_EINVAL without one).
     */
    SSL_CTX *ctx;
    /** Used only when ctx is NULL; its server_side must match server_side below. */
    const ts_ssl_context_options *ctx_options;
    /** Server end of the connection (SSL_accept) rather than client (SSL_connect). */
    bool server_side;
    /**
     * Client only: the name the server's certificate must match (a DNS name or
     * an IP address literal), also sent as SNI when it is a name. Copied.
     */
    const char *server_hostname;
    /**
     * Client only: verify the certificate chain but not the name, allowing a
     * verifying client stream without server_hostname. Insecure against any
     * holder of a certificate from a trusted CA; explicit by design.
     */
    bool no_hostname_check;
} ts_ssl_options;

/**
 * A TLS stream over socket @p fd (Tornado's SSLIOStream). The stream owns
 * @p fd (made non-blocking, closed with the stream). The socket may be
 * connected already (the handshake starts at once; a server-side stream is
 * typically made this way from an accepted socket) or not yet connected
 * (client side only: call ts_iostream_connect(), whose callback runs once
 * connected *and* handshaken). @p opts (may be NULL) are the stream's buffer
 * options.
 *
 * @param loop the loop the stream runs on
 * @param fd   a socket, owned by the stream on success (not closed on failure)
 * @param ssl  the TLS options, or NULL for a default verifying client (which
 *             then fails: a client needs server_hostname or no_hostname_check)
 * @param opts buffer options, or NULL for the defaults
 * @param err  on failure gets the error (may be NULL): TS_EINVAL (bad
 *             options, a server without a context, a verifying client without
 *             server_hostname, a negative fd), TS_ESSL (building the context
 *             or SSL object failed, see ts_ssl_last_error_detail()), TS_ENOMEM
 * @return the stream (one reference for the caller), or NULL on failure
 */
TS_EXPORT ts_iostream *ts_iostream_new_ssl(ts_ioloop *loop, int fd, const ts_ssl_options *ssl,
                                           const ts_iostream_options *opts, int *err);

/**
 * Turns the plain stream @p s into a new TLS stream over the same socket
 * (Tornado's IOStream.start_tls, for STARTTLS-style protocols).
 *
 * @p s must be idle: no pending read, write, or connect, and nothing in its
 * read or write buffer (data still in the kernel is fine). Every error is
 * returned before @p s is touched, except TS_ENOMEM while creating the new
 * stream after @p s was detached (then @p s is closed).
 *
 * On success (0): @p s is closed without closing its socket (its close
 * callback is moved to the new stream and does not run for @p s; the caller
 * still drops its own reference to @p s), `*out` receives the new stream
 * (the caller owns one reference; buffer options are carried over), and
 * @p cb (may be NULL) runs once the handshake completes or fails, as
 * ts_iostream_wait_for_handshake(). Any other use of @p s is undefined.
 *
 * @p server_side and @p server_hostname take precedence over those fields of
 * @p ssl, which may be NULL (a default client context: verify against the
 * system CA store).
 *
 * @param s               a plain, idle socket stream
 * @param server_side     accept (server) rather than connect (client)
 * @param ssl             TLS options, or NULL
 * @param server_hostname client only: the name to verify and send as SNI, or NULL
 * @param out             gets the new TLS stream on success
 * @param cb              runs once the handshake completes (0) or fails; may be NULL
 * @param arg             passed to @p cb
 * @return 0 when the handshake has started on the new stream
 * @retval TS_EBUSY   @p s is not idle (nothing is changed)
 * @retval TS_ECLOSED @p s is closed
 * @retval TS_EINVAL  @p s is already a TLS stream, @p out is NULL, or bad options
 * @retval TS_ESSL    building the context or SSL object failed (ts_ssl_last_error_detail())
 * @retval TS_ENOMEM  out of memory
 */
TS_EXPORT int ts_iostream_start_tls(ts_iostream *s, bool server_side, const ts_ssl_options *ssl,
                                    const char *server_hostname, ts_iostream **out,
                                    ts_iostream_connect_cb cb, void *arg);

/**
 * Future form of ts_iostream_start_tls(). The future completes after the
 * handshake: its result is the new stream (the future owns that reference:
 * take it with ts_future_steal_result(), or it is dropped with the future),
 * or its error is the handshake's (TS_ESSL, -ECONNRESET, ...; the new stream
 * is then closed and released). A refusal (TS_EBUSY, ...) fails the future
 * at once.
 *
 * @param s               a plain, idle socket stream
 * @param server_side     accept (server) rather than connect (client)
 * @param ssl             TLS options, or NULL
 * @param server_hostname client only: the name to verify and send as SNI, or NULL
 * @return the future (one reference for the caller); NULL when out of memory
 */
TS_EXPORT ts_future *ts_iostream_start_tls_future(ts_iostream *s, bool server_side, const ts_ssl_options *ssl,
                                                  const char *server_hostname);

/**
 * Runs @p cb once the TLS handshake of @p s has completed (status 0) or
 * failed (the error that closed the stream; ts_iostream_error_detail() has
 * the reason). If it already completed, @p cb runs from the loop soon (never
 * inside this call). Intended for server-side and start_tls streams; a
 * client's ts_iostream_connect() callback already waits for the handshake.
 *
 * @param s   a TLS stream
 * @param cb  the callback
 * @param arg passed to @p cb
 * @return 0 when @p cb will run once, from the loop
 * @retval TS_EINVAL  @p s is not a TLS stream, or @p cb is NULL
 * @retval TS_EBUSY   a wait is already pending (Tornado's "Already waiting")
 * @retval TS_ECLOSED the stream closed before a handshake completed
 * @retval TS_ENOMEM  out of memory (@p cb will not run)
 */
TS_EXPORT int ts_iostream_wait_for_handshake(ts_iostream *s, ts_iostream_connect_cb cb, void *arg);

/**
 * Future form of ts_iostream_wait_for_handshake().
 *
 * @param s a TLS stream
 * @return a future resolved with NULL after the handshake, or failed with its
 *         error (or the one ts_iostream_wait_for_handshake() would return);
 *         NULL when out of memory
 */
TS_EXPORT ts_future *ts_iostream_wait_for_handshake_future(ts_iostream *s);

/**
 * Whether @p s is a TLS stream.
 *
 * @param s the stream
 * @return true for a stream made by ts_iostream_new_ssl() or ts_iostream_start_tls()
 */
TS_EXPORT bool ts_iostream_is_ssl(const ts_iostream *s);

/**
 * The stream's `SSL` object (borrowed, valid while the stream lives), for
 * anything the accessors below do not cover; NULL if @p s is not a TLS
 * stream. Do not read, write or shut it down yourself.
 *
 * @param s the stream
 * @return the `SSL *`, or NULL
 */
TS_EXPORT SSL *ts_iostream_ssl(const ts_iostream *s);

/**
 * Whether the handshake has completed successfully.
 *
 * @param s the stream
 * @return true once handshaken; false before, after a failure, or for a plain stream
 */
TS_EXPORT bool ts_iostream_ssl_handshake_done(const ts_iostream *s);

/**
 * The peer's certificate after the handshake (borrowed: do not free; valid
 * while the stream lives).
 *
 * @param s the stream
 * @return the certificate, or NULL (no certificate, not handshaken, not TLS)
 */
TS_EXPORT X509 *ts_iostream_ssl_peer_certificate(const ts_iostream *s);

/**
 * The peer's certificate as PEM text.
 *
 * @param s the stream
 * @return the text (the caller's; free with ts_bytes_free()), or NULL (no
 *         certificate, not handshaken, not TLS, out of memory)
 */
TS_EXPORT ts_bytes *ts_iostream_ssl_peer_certificate_pem(const ts_iostream *s);

/**
 * The peer certificate's subject, RFC 2253 style, e.g. "CN=localhost,O=tstream test".
 *
 * @param s the stream
 * @return the text (the caller's; free with ts_bytes_free()), or NULL (no
 *         certificate, not handshaken, not TLS, out of memory)
 */
TS_EXPORT ts_bytes *ts_iostream_ssl_peer_subject(const ts_iostream *s);

/**
 * The negotiated protocol version, e.g. "TLSv1.3".
 *
 * @param s the stream
 * @return a static string, or NULL before the handshake or for a plain stream
 */
TS_EXPORT const char *ts_iostream_ssl_version(const ts_iostream *s);

/**
 * The negotiated protocol version as OpenSSL's number.
 *
 * @param s the stream
 * @return TLS1_2_VERSION, TLS1_3_VERSION, ...; 0 before the handshake or for a plain stream
 */
TS_EXPORT int ts_iostream_ssl_version_number(const ts_iostream *s);

/**
 * The negotiated cipher suite, e.g. "TLS_AES_256_GCM_SHA384".
 *
 * @param s the stream
 * @return a static string, or NULL before the handshake or for a plain stream
 */
TS_EXPORT const char *ts_iostream_ssl_cipher(const ts_iostream *s);

/**
 * The ALPN protocol agreed on, NUL-terminated (valid while the stream
 * lives).
 *
 * @param s the stream
 * @return the protocol name, or NULL if none was agreed (or before the handshake)
 */
TS_EXPORT const char *ts_iostream_ssl_alpn_protocol(const ts_iostream *s);

#ifdef __cplusplus
}
#endif

#endif /* TSTREAM_SSL_H */
