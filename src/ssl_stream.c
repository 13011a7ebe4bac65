/*
 * The public TLS stream API: making TLS streams (over a new socket or by
 * start_tls over a plain stream), waiting for the handshake, and the
 * post-handshake accessors. Everything here goes through the public stream
 * API and the few hooks in iostream_int.h; the transport itself is
 * iostream_ssl.c. Knows nothing of the stream's internals.
 */
#include <string.h>

#include <openssl/bio.h>
#include <openssl/pem.h>

#include "iostream_int.h"
#include "ssl_int.h"

ts_iostream *ts_iostream_new_ssl(ts_ioloop *loop, int fd, const ts_ssl_options *ssl, const ts_iostream_options *opts,
                                 int *err)
{
    int dummy;
    if (err == NULL)
        err = &dummy;
    if (loop == NULL) {
        *err = TS_EINVAL;
        return NULL;
    }
    ts__ssl_transport *t = ts__ssl_transport_new(fd, ssl, err);
    if (t == NULL)
        return NULL;
    ts_iostream *s = ts_iostream_new(loop, &ts__ssl_ops, t, opts);
    if (s == NULL) {
        ts__ssl_ops.free(t); /* frees the SSL object; the fd stays the caller's */
        *err = TS_ENOMEM;
        return NULL;
    }
    return s;
}

static ts__ssl_transport *transport_of(const ts_iostream *s)
{
    ts_iostream *m = (ts_iostream *)s; /* the core's hooks take non-const streams; nothing is modified */
    if (s == NULL || ts__iostream_ops(m) != &ts__ssl_ops)
        return NULL;
    return ts__iostream_transport(m);
}

bool ts_iostream_is_ssl(const ts_iostream *s) { return transport_of(s) != NULL; }

/* ---- start_tls -------------------------------------------------------------- */

int ts_iostream_start_tls(ts_iostream *s, bool server_side, const ts_ssl_options *ssl, const char *server_hostname,
                          ts_iostream **out, ts_iostream_connect_cb cb, void *arg)
{
    ts_ssl_options o = {.size = sizeof o};
    if (s == NULL || out == NULL || (ssl != NULL && (ssl->size == 0 || ssl->size > sizeof o)))
        return TS_EINVAL;
    *out = NULL;
    if (ts_iostream_is_ssl(s))
        return TS_EINVAL; /* TLS inside TLS is not something a STARTTLS protocol does */
    if (ts_iostream_closed(s))
        return TS_ECLOSED;
    /* Tornado's precondition, checked before anything is built. */
    if (ts_iostream_reading(s) || ts_iostream_writing(s) || ts_iostream_read_buffer_size(s) > 0)
        return TS_EBUSY;
    if (ssl != NULL)
        memcpy(&o, ssl, ssl->size);
    o.server_side = server_side;
    if (server_hostname != NULL)
        o.server_hostname = server_hostname;

    int err = 0;
    ts__ssl_transport *t = ts__ssl_transport_new(ts_iostream_fileno(s), &o, &err);
    if (t == NULL)
        return err;
    ts_iostream_options so = {.size = sizeof so};
    ts_iostream_close_cb close_cb = NULL;
    void *close_arg = NULL;
    /* Carried over as Tornado does; read now, since detaching clears the callback. */
    ts__iostream_get_options(s, &so);
    ts__iostream_get_close_callback(s, &close_cb, &close_arg);
    int fd = -1;
    int rc = ts__iostream_detach_fd(s, &fd);
    if (rc < 0) {
        ts__ssl_ops.free(t); /* s keeps its fd */
        return rc;
    }
    ts_iostream *ns = ts_iostream_new(ts_iostream_loop(s), &ts__ssl_ops, t, &so);
    if (ns == NULL) {
        ts__ssl_ops.close_fd(t);
        ts__ssl_ops.free(t);
        return TS_ENOMEM;
    }
    if (close_cb != NULL)
        ts_iostream_set_close_callback(ns, close_cb, close_arg);
    if (cb != NULL)
        (void)ts__iostream_wait_for_handshake(ns, cb, arg); /* a new stream has no waiter yet */
    *out = ns;
    return 0;
}

static void stream_unref(void *p) { ts_iostream_unref(p); }

static void on_start_tls_done(ts_iostream *s, int status, void *arg)
{
    ts_future *f = arg;
    if (status == 0) {
        /* The reference start_tls gave us becomes the future's result. */
        ts_future_set_result(f, s, stream_unref);
    } else {
        ts_future_set_error(f, status);
        ts_iostream_unref(s);
    }
    ts_future_unref(f);
}

ts_future *ts_iostream_start_tls_future(ts_iostream *s, bool server_side, const ts_ssl_options *ssl,
                                        const char *server_hostname)
{
    ts_future *f = ts_future_new(ts_iostream_loop(s));
    if (f == NULL)
        return NULL;
    ts_iostream *ns = NULL;
    ts_future_ref(f); /* for the callback */
    int rc = ts_iostream_start_tls(s, server_side, ssl, server_hostname, &ns, on_start_tls_done, f);
    if (rc < 0) {
        ts_future_unref(f);
        ts_future_set_error(f, rc);
    }
    return f;
}

/* ---- waiting for the handshake ------------------------------------------------ */

int ts_iostream_wait_for_handshake(ts_iostream *s, ts_iostream_connect_cb cb, void *arg)
{
    if (!ts_iostream_is_ssl(s) || cb == NULL)
        return TS_EINVAL;
    if (ts_iostream_closed(s) && !ts__ssl_transport_handshake_done(transport_of(s)))
        return TS_ECLOSED;
    return ts__iostream_wait_for_handshake(s, cb, arg);
}

static void on_handshake_future(ts_iostream *s, int status, void *arg)
{
    (void)s;
    ts_future *f = arg;
    if (status == 0)
        ts_future_set_result(f, NULL, NULL);
    else
        ts_future_set_error(f, status);
    ts_future_unref(f);
}

ts_future *ts_iostream_wait_for_handshake_future(ts_iostream *s)
{
    ts_future *f = ts_future_new(ts_iostream_loop(s));
    if (f == NULL)
        return NULL;
    ts_future_ref(f);
    int rc = ts_iostream_wait_for_handshake(s, on_handshake_future, f);
    if (rc < 0) {
        ts_future_unref(f);
        ts_future_set_error(f, rc);
    }
    return f;
}

/* ---- accessors --------------------------------------------------------------- */

/* The SSL object once the handshake is done, else NULL. */
static SSL *handshaken(const ts_iostream *s)
{
    ts__ssl_transport *t = transport_of(s);
    return t && ts__ssl_transport_handshake_done(t) ? ts__ssl_transport_ssl(t) : NULL;
}

SSL *ts_iostream_ssl(const ts_iostream *s)
{
    ts__ssl_transport *t = transport_of(s);
    return t ? ts__ssl_transport_ssl(t) : NULL;
}

bool ts_iostream_ssl_handshake_done(const ts_iostream *s) { return handshaken(s) != NULL; }

X509 *ts_iostream_ssl_peer_certificate(const ts_iostream *s)
{
    SSL *ssl = handshaken(s);
    return ssl ? SSL_get0_peer_certificate(ssl) : NULL;
}

/* Renders the peer certificate with @p how into an owned ts_bytes. */
static ts_bytes *render_peer(const ts_iostream *s, bool pem)
{
    X509 *cert = ts_iostream_ssl_peer_certificate(s);
    if (cert == NULL)
        return NULL;
    BIO *b = BIO_new(BIO_s_mem());
    if (b == NULL)
        return NULL;
    int ok = pem ? PEM_write_bio_X509(b, cert) : X509_NAME_print_ex(b, X509_get_subject_name(cert), 0, XN_FLAG_RFC2253) >= 0;
    char *data = NULL;
    long n = BIO_get_mem_data(b, &data);
    ts_bytes *out = ok && n >= 0 ? ts_bytes_new(data, (size_t)n) : NULL;
    BIO_free(b);
    return out;
}

ts_bytes *ts_iostream_ssl_peer_certificate_pem(const ts_iostream *s) { return render_peer(s, true); }
ts_bytes *ts_iostream_ssl_peer_subject(const ts_iostream *s) { return render_peer(s, false); }

const char *ts_iostream_ssl_version(const ts_iostream *s)
{
    SSL *ssl = handshaken(s);
    return ssl ? SSL_get_version(ssl) : NULL;
}

int ts_iostream_ssl_version_number(const ts_iostream *s)
{
    SSL *ssl = handshaken(s);
    return ssl ? SSL_version(ssl) : 0;
}

const char *ts_iostream_ssl_cipher(const ts_iostream *s)
{
    SSL *ssl = handshaken(s);
    const SSL_CIPHER *c = ssl ? SSL_get_current_cipher(ssl) : NULL;
    return c ? SSL_CIPHER_get_name(c) : NULL;
}

const char *ts_iostream_ssl_alpn_protocol(const ts_iostream *s)
{
    ts__ssl_transport *t = transport_of(s);
    return t ? ts__ssl_transport_alpn(t) : NULL;
}
