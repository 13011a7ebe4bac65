/*
 * Private declarations of the TLS transport, shared by ssl_context.c,
 * iostream_ssl.c and ssl_bio.c (and the transport's own unit tests, which
 * drive the ops directly on a socketpair without a stream).
 */
#ifndef TSTREAM_SSL_INT_H
#define TSTREAM_SSL_INT_H

#include <openssl/ssl.h>

#include "internal.h"
#include "tstream/iostream.h"
#include "tstream/ssl.h"

/* Room for one OpenSSL reason plus the verify result and a file name. */
#define TS__SSL_DETAIL_LEN 256

/*
 * Formats the OpenSSL error queue (earliest entry, plus the certificate
 * verify result when that is the reason) into @p buf, then clears the queue.
 * With an empty queue writes @p fallback (may be NULL: ""). @p ssl may be NULL.
 */
void ts__ssl_format_error(char *buf, size_t len, const SSL *ssl, const char *fallback);

/* Records a detail for ts_ssl_last_error_detail() (thread-local); NULL clears it. */
void ts__ssl_set_last_error(const char *detail);

/* A new reference to the shared default client context, or NULL with *err set. */
SSL_CTX *ts__ssl_default_client_context(int *err);

/* The BIO that reads with recv() and writes with send(MSG_NOSIGNAL) on @p fd (not owned). */
BIO *ts__ssl_bio_new(int fd);
/* The last errno seen by that BIO's read or write (0 if none since the last call). */
int ts__ssl_bio_errno(BIO *bio);
/* Points the BIO at another fd (-1 once the transport closed it). */
void ts__ssl_bio_set_fd(BIO *bio, int fd);

/* The transport: an SSL object over a socket, driven through ts__ssl_ops. */
typedef struct ts__ssl_transport ts__ssl_transport;

/*
 * A transport over @p fd (not closed on failure; owned on success and closed
 * by ops->close_fd). @p ssl: ctx (or one built from ctx_options or the
 * default), side, hostname. NULL on failure with *err set (TS_EINVAL,
 * TS_ESSL with ts_ssl_last_error_detail(), TS_ENOMEM).
 */
ts__ssl_transport *ts__ssl_transport_new(int fd, const ts_ssl_options *ssl, int *err);

/* The ops every TLS stream uses; a stream is a TLS stream iff its ops are these. */
extern const ts_stream_ops ts__ssl_ops;

/* The transport's SSL object. */
SSL *ts__ssl_transport_ssl(ts__ssl_transport *t);
/* Whether the handshake completed successfully. */
bool ts__ssl_transport_handshake_done(const ts__ssl_transport *t);
/* The ALPN protocol agreed on (NUL-terminated), or NULL. */
const char *ts__ssl_transport_alpn(const ts__ssl_transport *t);
/* Whether the peer's close_notify was received (a clean TLS close). */
bool ts__ssl_transport_got_close_notify(const ts__ssl_transport *t);

#endif /* TSTREAM_SSL_INT_H */
