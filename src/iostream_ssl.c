/*
 * The TLS transport: an OpenSSL SSL object over a socket, behind
 * ts_stream_ops. It maps OpenSSL's outcomes onto the core's vocabulary
 * (WANT_READ/WANT_WRITE -> TS_EWANTREAD/TS_EWANTWRITE, close_notify -> EOF,
 * failures -> TS_ESSL with OpenSSL's reason) and keeps the rules OpenSSL
 * imposes on retried writes. It does no buffering of its own beyond one
 * record's worth of coalesced small writes, and never touches the loop: the
 * core decides when to call it. The public TLS stream API is in ssl_stream.c.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "iostream_int.h"
#include "ssl_int.h"

/* One TLS record's payload: smaller head chunks are gathered up to this. */
#define COALESCE_MAX 16384u
/* SSL_write_ex takes size_t, but one call need not encrypt more than this. */
#define WRITE_CALL_MAX (1u << 30)

struct ts__ssl_transport {
    int fd;
    SSL *ssl;
    BIO *bio; /* owned by ssl */
    bool server_side;
    bool handshake_done;
    bool close_notify;  /* the peer's close_notify arrived */
    bool truncated;     /* EOF without close_notify after the handshake */
    bool shutdown_sent;
    int fatal;          /* sticky error: OpenSSL forbids further I/O after one */
    int write_err;      /* sticky write-side error that still lets reads drain */
    uint64_t rx_count;  /* bytes returned by reads, to tell whether a deferral made progress */
    uint64_t rx_mark;   /* rx_count when a write error was last deferred */
    bool deferred;      /* a write error was deferred at least once */
    /*
     * Length offered by the SSL_write that last returned WANT_WRITE. OpenSSL
     * has already encrypted (part of) it into a record it must finish
     * sending, and fails a retry offering fewer bytes ("bad length"), so the
     * next write offers at least this many, whatever the iovec layout.
     */
    size_t retry_len;
    unsigned char *gather; /* coalescing buffer for small head chunks */
    size_t gather_cap;
    char *alpn;
    char peer[TS_SOCKADDR_STRLEN]; /* "addr:port" for logs, taken when the handshake starts */
    char detail[TS__SSL_DETAIL_LEN];
};

static bool conn_closed_errno(int e) { return e == EPIPE || e == ECONNRESET; }

static void peer_name(int fd, char *buf, size_t len)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (fd < 0 || getpeername(fd, (struct sockaddr *)&ss, &sl) < 0)
        snprintf(buf, len, "(not connected)");
    else if (ss.ss_family != AF_INET && ss.ss_family != AF_INET6)
        snprintf(buf, len, "(local socket)");
    else
        ts_sockaddr_str((struct sockaddr *)&ss, sl, buf, len);
}

/*
 * Classifies the failure of an SSL call that returned "no progress".
 * Returns TS_EWANTREAD / TS_EWANTWRITE, 1 for a close_notify, 2 for an EOF
 * without one, or a sticky error (-errno or TS_ESSL) with t->detail set.
 */
enum { OUTCOME_CLOSE_NOTIFY = 1, OUTCOME_EOF = 2 };

static int classify(ts__ssl_transport *t)
{
    int e = SSL_get_error(t->ssl, 0);
    int sys = ts__ssl_bio_errno(t->bio);
    unsigned long q = ERR_peek_error();

    switch (e) {
    case SSL_ERROR_WANT_READ:
        return TS_EWANTREAD;
    case SSL_ERROR_WANT_WRITE:
        return TS_EWANTWRITE;
    case SSL_ERROR_ZERO_RETURN:
        t->close_notify = true;
        return OUTCOME_CLOSE_NOTIFY;
    case SSL_ERROR_SYSCALL:
        if (q == 0 && sys == 0)
            return OUTCOME_EOF; /* pre-3.0 spelling of an unexpected EOF */
        if (q == 0) {
            snprintf(t->detail, sizeof t->detail, "%s", strerror(sys));
            return t->fatal = -sys;
        }
        break;
    case SSL_ERROR_SSL:
        if (ERR_GET_LIB(q) == ERR_LIB_SSL && ERR_GET_REASON(q) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
            ERR_clear_error();
            return OUTCOME_EOF;
        }
        break;
    default:
        break;
    }
    ts__ssl_format_error(t->detail, sizeof t->detail, t->ssl, "TLS error");
    return t->fatal = TS_ESSL;
}

static void handshake_finished(ts__ssl_transport *t)
{
    const unsigned char *p = NULL;
    unsigned int n = 0;
    t->handshake_done = true;
    SSL_get0_alpn_selected(t->ssl, &p, &n);
    if (n > 0 && (t->alpn = ts__malloc(n + 1)) != NULL) {
        memcpy(t->alpn, p, n);
        t->alpn[n] = '\0';
    }
}

static int fail_handshake(ts__ssl_transport *t, int rc)
{
    /*
     * A peer that went away (EOF, close_notify or a reset) before finishing
     * is what every port scan and health check does: DEBUG, as Tornado, so
     * a scan cannot flood the log. Anything else is a real failure, worth
     * one WARN line naming the peer.
     */
    bool gone = rc == OUTCOME_EOF || rc == OUTCOME_CLOSE_NOTIFY || (rc < 0 && conn_closed_errno(-rc));
    if (rc == OUTCOME_EOF || rc == OUTCOME_CLOSE_NOTIFY) {
        /* No data was promised yet, so this is a failure, not an end of stream. */
        snprintf(t->detail, sizeof t->detail, "unexpected eof while reading (peer closed during the handshake)");
        rc = t->fatal = TS_ESSL;
    }
    ts_log(gone ? TS_LOG_DEBUG : TS_LOG_WARN, "TLS handshake with %s failed: %s", t->peer, t->detail);
    return rc;
}

static int ssl_handshake(void *tp)
{
    ts__ssl_transport *t = tp;
    if (t->handshake_done)
        return 0;
    if (t->fatal)
        return t->fatal;
    if (t->fd < 0)
        return TS_ECLOSED;
    if (t->peer[0] == '\0')
        peer_name(t->fd, t->peer, sizeof t->peer); /* now, while the peer is surely still there */
    ERR_clear_error();
    if (SSL_do_handshake(t->ssl) == 1) {
        handshake_finished(t);
        return 0;
    }
    int rc = classify(t);
    if (rc == TS_EWANTREAD || rc == TS_EWANTWRITE)
        return rc;
    if (rc < 0 && t->server_side && SSL_is_init_finished(t->ssl) && conn_closed_errno(-rc)) {
        /*
         * openssl#10880: a TLS 1.3 server writes its session tickets after
         * the client's Finished; a client that wrote and closed without
         * reading makes that write fail with EPIPE/ECONNRESET. The handshake
         * itself is complete and the client's data is in the kernel: go on
         * so the read path delivers it. Writes will fail with the error.
         */
        t->write_err = rc;
        t->fatal = 0;
        handshake_finished(t);
        return 0;
    }
    return fail_handshake(t, rc);
}

static ssize_t ssl_read(void *tp, void *buf, size_t len)
{
    ts__ssl_transport *t = tp;
    size_t n = 0;
    if (t->close_notify || t->truncated)
        return 0;
    if (t->fatal)
        return t->fatal;
    if (t->fd < 0)
        return TS_ECLOSED;
    if (!t->handshake_done) {
        int rc = ssl_handshake(t);
        if (rc < 0)
            return rc;
    }
    if (len > INT_MAX)
        len = INT_MAX;
    ERR_clear_error();
    if (SSL_read_ex(t->ssl, buf, len, &n)) {
        t->rx_count += n;
        return (ssize_t)n;
    }
    /*
     * No data: either a WANT (e.g. a TLS 1.3 NewSessionTicket or KeyUpdate
     * was consumed and nothing followed yet), or the end.
     */
    int rc = classify(t);
    if (rc == OUTCOME_CLOSE_NOTIFY)
        return 0;
    if (rc == OUTCOME_EOF) {
        /* Ends the stream as Tornado 6 does, but get_fd_error() reports it. */
        t->truncated = true;
        snprintf(t->detail, sizeof t->detail, "peer closed the connection without sending close_notify");
        return 0;
    }
    return rc;
}

/*
 * The peer is gone (EPIPE/ECONNRESET on a write), but what it sent before it
 * went may still be unread: in OpenSSL's buffer or in the kernel. Closing
 * now would drop it (the write error would win the race against the read
 * side, the openssl#10880 pattern one level up). So the first time, and
 * again only while reads keep making progress, the error is deferred as
 * TS_EWANTREAD: the core then waits for readability, serves the pending read
 * first, and retries. Without a pending read nothing is consumed and the
 * next retry reports the error: one extra wake-up, never a spin.
 */
static ssize_t write_failed(ts__ssl_transport *t)
{
    int unread = 0;
    bool more = SSL_pending(t->ssl) > 0 || (ioctl(t->fd, FIONREAD, &unread) == 0 && unread > 0);
    if (more && (!t->deferred || t->rx_count != t->rx_mark)) {
        t->deferred = true;
        t->rx_mark = t->rx_count;
        return TS_EWANTREAD;
    }
    return t->write_err;
}

/* Writes buf[0..len) in records until done or blocked. Returns bytes written, or an error if none were. */
static ssize_t write_span(ts__ssl_transport *t, const void *buf, size_t len)
{
    size_t done = 0;
    while (done < len) {
        size_t w = 0;
        size_t chunk = TS__MIN(len - done, (size_t)WRITE_CALL_MAX);
        ERR_clear_error();
        if (SSL_write_ex(t->ssl, (const char *)buf + done, chunk, &w)) {
            /* Any record left half-sent by an earlier call is out now. */
            t->retry_len = 0;
            done += w;
            continue;
        }
        int rc = classify(t);
        if (rc == TS_EWANTREAD || rc == TS_EWANTWRITE) {
            t->retry_len = chunk;
        } else if (rc > 0 || conn_closed_errno(-rc)) {
            /* A failed write leaves OpenSSL's read side usable: keep reading. */
            t->write_err = rc > 0 ? -EPIPE : rc;
            t->fatal = 0;
            if (done == 0)
                return write_failed(t);
        }
        /* Report progress first; a sticky error is returned by the next call. */
        return done > 0 ? (ssize_t)done : rc;
    }
    return (ssize_t)done;
}

static ssize_t ssl_write(void *tp, const struct iovec *iov, int iovcnt)
{
    ts__ssl_transport *t = tp;
    if (t->fatal)
        return t->fatal;
    if (t->fd < 0)
        return TS_ECLOSED;
    if (t->write_err)
        return write_failed(t);
    if (!t->handshake_done) {
        int rc = ssl_handshake(t);
        if (rc < 0)
            return rc;
    }
    while (iovcnt > 0 && iov[0].iov_len == 0)
        iov++, iovcnt--;
    if (iovcnt == 0)
        return 0;
    size_t want = TS__MAX((size_t)COALESCE_MAX, t->retry_len);
    if (iovcnt == 1 || iov[0].iov_len >= want)
        return write_span(t, iov[0].iov_base, iov[0].iov_len);
    /*
     * Small head chunks: gather up to one record so a run of small writes
     * does not cost one record (and one syscall) each. The gathered bytes
     * are a pure function of the queued data, so a retry after WANT_WRITE
     * offers the same prefix, as OpenSSL requires (ACCEPT_MOVING_WRITE_BUFFER
     * lets it live at another address).
     */
    if (t->gather_cap < want) {
        unsigned char *g = ts__realloc(t->gather, want);
        if (g == NULL)
            return write_span(t, iov[0].iov_base, iov[0].iov_len);
        t->gather = g;
        t->gather_cap = want;
    }
    size_t n = 0;
    for (int i = 0; i < iovcnt && n < want; i++) {
        size_t take = TS__MIN(iov[i].iov_len, want - n);
        memcpy(t->gather + n, iov[i].iov_base, take);
        n += take;
    }
    return write_span(t, t->gather, n);
}

static int ssl_fileno(void *tp) { return ((ts__ssl_transport *)tp)->fd; }

static int ssl_get_fd_error(void *tp)
{
    ts__ssl_transport *t = tp;
    int soerr = 0;
    socklen_t sl = sizeof soerr;
    /*
     * The TLS verdict on how the stream ended beats the socket's: a peer that
     * sent close_notify and then closed with our unread data in its buffer
     * resets the connection, yet ended cleanly; one that closed without
     * close_notify was cut short, whether by FIN or by RST.
     */
    if (t->close_notify)
        return 0;
    if (t->truncated)
        return TS_ETRUNCATED;
    if (t->fd >= 0 && getsockopt(t->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0 && soerr != 0)
        return -soerr;
    return 0;
}

static size_t ssl_pending(void *tp)
{
    ts__ssl_transport *t = tp;
    if (t->fd < 0 || t->fatal || !t->handshake_done)
        return 0;
    /* Decrypted bytes only: with read_ahead off (forced in transport_new)
     * nothing undecrypted hides in OpenSSL's buffer, so the fd's readiness
     * covers everything else. */
    int n = SSL_pending(t->ssl);
    return n > 0 ? (size_t)n : 0;
}

static void ssl_shutdown(void *tp)
{
    ts__ssl_transport *t = tp;
    /* After a fatal error OpenSSL must not be asked to write; before the
     * handshake there is no session to close. */
    if (t->fd < 0 || t->fatal || t->write_err || !t->handshake_done || t->shutdown_sent)
        return;
    t->shutdown_sent = true;
    ERR_clear_error();
    (void)SSL_shutdown(t->ssl); /* one non-blocking attempt: queues/sends close_notify */
    ERR_clear_error();
    (void)ts__ssl_bio_errno(t->bio);
}

/*
 * ts_iostream_shutdown: close_notify, then the TCP write side, so a peer
 * reading plain EOF sees the end too. Reads go on (TLS 1.3 half-close; a
 * TLS 1.2 peer answers with its own close_notify, read as EOF).
 */
static int ssl_shutdown_write(void *tp)
{
    ts__ssl_transport *t = tp;
    if (t->fatal)
        return t->fatal;
    if (t->write_err)
        return t->write_err;
    if (!t->shutdown_sent) {
        ERR_clear_error();
        int r = SSL_shutdown(t->ssl);
        if (r < 0) {
            int rc = classify(t);
            if (rc == TS_EWANTWRITE || rc == TS_EWANTREAD)
                return rc;
            return rc > 0 ? -EPIPE : rc;
        }
        t->shutdown_sent = true;
    }
    return shutdown(t->fd, SHUT_WR) < 0 ? -errno : 0;
}

/* Most bytes discarded from the receive queue at close (see ssl_close_fd). */
#define CLOSE_DRAIN_MAX (256u * 1024u)

static void ssl_close_fd(void *tp)
{
    ts__ssl_transport *t = tp;
    if (t->fd < 0)
        return;
    /*
     * Closing a socket with unread bytes in its receive queue makes Linux send
     * RST instead of FIN and throw away what we sent but the peer has not yet
     * received. A TLS 1.3 client that never reads always has such bytes: the
     * server's session tickets. So drop what is queued (we are closing; nobody
     * will read it) and let the kernel finish sending our data gracefully.
     */
    char sink[16384];
    for (size_t n = 0; n < CLOSE_DRAIN_MAX;) {
        ssize_t k = recv(t->fd, sink, sizeof sink, MSG_DONTWAIT);
        if (k <= 0)
            break;
        n += (size_t)k;
    }
    close(t->fd);
    t->fd = -1;
    ts__ssl_bio_set_fd(t->bio, -1);
}

static const char *ssl_error_detail(void *tp)
{
    ts__ssl_transport *t = tp;
    return t->detail[0] ? t->detail : NULL;
}

static void ssl_free(void *tp)
{
    ts__ssl_transport *t = tp;
    SSL_free(t->ssl);
    ts__free(t->gather);
    ts__free(t->alpn);
    ts__free(t);
}

/* The socket under TLS: connect, addresses and options are the socket transport's. */
static int ssl_connect(void *tp, const struct sockaddr *a, socklen_t n) { return ts__sock_connect(ssl_fileno(tp), a, n); }
static int ssl_connect_result(void *tp) { return ts__sock_connect_result(ssl_fileno(tp)); }
static int ssl_peer(void *tp, struct sockaddr *a, socklen_t *n) { return ts__sock_peer_address(ssl_fileno(tp), a, n); }
static int ssl_local(void *tp, struct sockaddr *a, socklen_t *n) { return ts__sock_local_address(ssl_fileno(tp), a, n); }
static int ssl_nodelay(void *tp, bool on) { return ts__sock_set_nodelay(ssl_fileno(tp), on); }

const ts_stream_ops ts__ssl_ops = {
    .size = sizeof(ts_stream_ops),
    .name = "tls",
    .fileno = ssl_fileno,
    .read_from_fd = ssl_read,
    .write_to_fd = ssl_write,
    .close_fd = ssl_close_fd,
    .get_fd_error = ssl_get_fd_error,
    .pending = ssl_pending,
    .handshake = ssl_handshake,
    .shutdown = ssl_shutdown,
    .error_detail = ssl_error_detail,
    .free = ssl_free,
    .shutdown_write = ssl_shutdown_write,
    .flags = 0, /* decrypted bytes can wait in OpenSSL: a short read proves nothing */
    .connect = ssl_connect,
    .connect_result = ssl_connect_result,
    .peer_address = ssl_peer,
    .local_address = ssl_local,
    .set_nodelay = ssl_nodelay,
};

/* ---- construction ---------------------------------------------------------- */

static SSL_CTX *pick_context(const ts_ssl_options *o, int *err)
{
    if (o->ctx != NULL) {
        SSL_CTX_up_ref(o->ctx);
        return o->ctx;
    }
    if (o->ctx_options != NULL) {
        if (o->ctx_options->size != 0 && o->ctx_options->server_side != o->server_side) {
            *err = TS_EINVAL;
            ts__ssl_set_last_error("ctx_options.server_side differs from server_side");
            return NULL;
        }
        return ts_ssl_context_new(o->ctx_options, err);
    }
    if (o->server_side) {
        *err = TS_EINVAL;
        ts__ssl_set_last_error("a server-side TLS stream needs a context with a certificate");
        return NULL;
    }
    return ts__ssl_default_client_context(err);
}

static int set_peer_name(SSL *ssl, const ts_ssl_options *o, bool verifying)
{
    const char *h = o->server_hostname;
    unsigned char addr[16];
    bool is_ip = inet_pton(AF_INET, h, addr) == 1 || inet_pton(AF_INET6, h, addr) == 1;
    /* RFC 6066: SNI carries host names only, never address literals. */
    if (!is_ip && !SSL_set_tlsext_host_name(ssl, h))
        return TS_ESSL;
    if (!verifying || o->no_hostname_check)
        return 0;
    X509_VERIFY_PARAM *param = SSL_get0_param(ssl);
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    int ok = is_ip ? X509_VERIFY_PARAM_set1_ip_asc(param, h) : X509_VERIFY_PARAM_set1_host(param, h, 0);
    return ok == 1 ? 0 : TS_ESSL;
}

static SSL *make_ssl(SSL_CTX *ctx, const ts_ssl_options *o, int *err)
{
    bool verifying = !o->server_side && (SSL_CTX_get_verify_mode(ctx) & SSL_VERIFY_PEER);
    if (verifying && o->server_hostname == NULL && !o->no_hostname_check) {
        ts__ssl_set_last_error("a verifying TLS client needs server_hostname (or an explicit no_hostname_check)");
        *err = TS_EINVAL;
        return NULL;
    }
    SSL *ssl = SSL_new(ctx);
    if (ssl == NULL)
        goto ssl_error;
    /* Partial writes report each record as it goes out (the core's write
     * accounting needs progress, not all-or-nothing); retries may come from a
     * moved buffer (the core's chunks); idle connections give their ~34 KiB
     * of record buffers back, as nginx does. */
    SSL_set_mode(ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
    /* Always see an abrupt EOF as such (we decide it is a clean end), and
     * keep undecrypted data out of OpenSSL's buffer (see ssl_pending). */
    SSL_clear_options(ssl, SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_set_read_ahead(ssl, 0);
    if (o->server_side)
        SSL_set_accept_state(ssl);
    else
        SSL_set_connect_state(ssl);
    if (!o->server_side && o->server_hostname != NULL && set_peer_name(ssl, o, verifying) < 0)
        goto ssl_error;
    return ssl;
ssl_error: {
    char why[TS__SSL_DETAIL_LEN];
    ts__ssl_format_error(why, sizeof why, NULL, "SSL_new failed");
    ts__ssl_set_last_error(why);
    SSL_free(ssl);
    *err = TS_ESSL;
    return NULL;
}
}

ts__ssl_transport *ts__ssl_transport_new(int fd, const ts_ssl_options *so, int *err)
{
    ts_ssl_options o = {.size = sizeof o};
    int dummy;
    if (err == NULL)
        err = &dummy;
    *err = 0;
    ts__ssl_set_last_error(NULL);
    if (fd < 0 || (so != NULL && (so->size == 0 || so->size > sizeof o))) {
        ts__ssl_set_last_error(fd < 0 ? "bad fd" : "ts_ssl_options.size is not set");
        *err = TS_EINVAL;
        return NULL;
    }
    if (so != NULL)
        memcpy(&o, so, so->size);
    ERR_clear_error();
    SSL_CTX *ctx = pick_context(&o, err);
    if (ctx == NULL)
        return NULL;
    SSL *ssl = make_ssl(ctx, &o, err);
    SSL_CTX_free(ctx); /* the SSL holds its own reference */
    if (ssl == NULL)
        return NULL;
    ts__ssl_transport *t = ts__calloc(1, sizeof *t);
    BIO *bio = t ? ts__ssl_bio_new(fd) : NULL;
    if (bio == NULL) {
        ts__free(t);
        SSL_free(ssl);
        ts__ssl_set_last_error("out of memory");
        *err = TS_ENOMEM;
        return NULL;
    }
    SSL_set_bio(ssl, bio, bio);
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0 && !(fl & O_NONBLOCK))
        fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    t->fd = fd;
    t->ssl = ssl;
    t->bio = bio;
    t->server_side = o.server_side;
    return t;
}

SSL *ts__ssl_transport_ssl(ts__ssl_transport *t) { return t->ssl; }
bool ts__ssl_transport_handshake_done(const ts__ssl_transport *t) { return t->handshake_done; }
const char *ts__ssl_transport_alpn(const ts__ssl_transport *t) { return t->alpn; }
bool ts__ssl_transport_got_close_notify(const ts__ssl_transport *t) { return t->close_notify; }
