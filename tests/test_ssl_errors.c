/*
 * TLS failures, each with a clear error (TS_ESSL plus OpenSSL's reason from
 * ts_iostream_error_detail()) and nothing leaked: untrusted, self-signed,
 * wrong name or address, expired, plaintext peers either way, a peer that
 * closes mid-handshake, a handshake that never completes (bounded by the
 * caller's timeout), version mismatch, missing client certificate, and the
 * option errors of the context builder and the constructors.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <unistd.h>

#include "testutil.h"
#include "tls_certs.h"
#include "tls_streams.h"

static ts_ioloop *g_loop;
static const tu_certs *C;
static int g_ssl_warnings;
static int g_ssl_debug; /* handshakes that ended because the peer went away */
static char g_last_warning[512];

/* Failed handshakes are logged once each ("TLS handshake with HOST:PORT failed: reason"); count them. */
static void count_log(ts_log_level level, const char *msg, void *arg)
{
    (void)arg;
    if (strncmp(msg, "TLS handshake with ", 19) == 0) {
        if (level == TS_LOG_WARN) {
            g_ssl_warnings++;
            snprintf(g_last_warning, sizeof g_last_warning, "%s", msg);
        } else if (level == TS_LOG_DEBUG) {
            g_ssl_debug++;
        }
    }
    if (getenv("TS_TEST_VERBOSE"))
        fprintf(stderr, "log %d: %s\n", (int)level, msg);
}

static int setup(void **state)
{
    (void)state;
    g_loop = tu_fixture_begin(30);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tu_fixture_end(g_loop);
    g_loop = NULL;
    return 0;
}

static void assert_detail(const ts_iostream *s, const char *want)
{
    const char *d = ts_iostream_error_detail(s);
    if (d == NULL || strstr(d, want) == NULL)
        fail_msg("error detail '%s' lacks '%s'", d ? d : "(null)", want);
}

/* One handshake with a server using cert/key and a client trusting ca (NULL: system store) for host. */
static void handshake_case(const char *cert, const char *key, const char *ca, const char *host, int *rc_c,
                           int *rc_s, ts_iostream **c, ts_iostream **s)
{
    SSL_CTX *sctx = tu_tls_server_ctx(cert, key, 0, 0);
    SSL_CTX *cctx = ca ? tu_tls_client_ctx(ca, 0, 0) : NULL;
    ts_ssl_options co = {.size = sizeof co, .ctx = cctx, .server_hostname = host};
    int fds[2], err = 0;
    assert_int_equal(tu_tcp_pair(fds), 0);
    ts_ssl_options so = {.size = sizeof so, .ctx = sctx, .server_side = true};
    *s = ts_iostream_new_ssl(g_loop, fds[1], &so, NULL, &err);
    *c = ts_iostream_new_ssl(g_loop, fds[0], &co, NULL, &err);
    assert_true(*c && *s);
    SSL_CTX_free(sctx);
    SSL_CTX_free(cctx);
    tu_hs hc = {0}, hs = {0};
    ts_iostream_wait_for_handshake(*c, tu_hs_record, &hc);
    ts_iostream_wait_for_handshake(*s, tu_hs_record, &hs);
    tu_run_until_flag(g_loop, &hc.done, 10);
    tu_run_until_flag(g_loop, &hs.done, 10);
    *rc_c = hc.status;
    *rc_s = hs.status;
}

static void expect_client_verify_failure(const char *cert, const char *key, const char *ca, const char *host,
                                         const char *client_why, const char *server_why)
{
    ts_iostream *c, *s;
    int rc_c, rc_s;
    int warnings = g_ssl_warnings;
    handshake_case(cert, key, ca, host, &rc_c, &rc_s, &c, &s);
    /* One line per side that failed (never a repeat), naming the peer's address, not an fd. */
    assert_true(g_ssl_warnings > warnings && g_ssl_warnings - warnings <= 2);
    assert_non_null(strstr(g_last_warning, "127.0.0.1:"));
    assert_int_equal(rc_c, TS_ESSL);
    assert_int_equal(ts_iostream_error(c), TS_ESSL);
    assert_true(ts_iostream_closed(c));
    assert_detail(c, "certificate verify failed");
    assert_detail(c, client_why);
    assert_false(ts_iostream_ssl_handshake_done(c));
    assert_true(rc_s < 0);
    if (server_why)
        assert_detail(s, server_why);
    ts_iostream_free(c);
    ts_iostream_free(s);
}

static void test_untrusted(void **state)
{
    (void)state;
    /* The default: the system store, which does not know the test CA. */
    expect_client_verify_failure(C->server_cert, C->server_key, NULL, "localhost",
                                 "unable to get local issuer certificate", "unknown ca");
    expect_client_verify_failure(C->server_cert, C->server_key, C->other_ca_cert, "localhost",
                                 "unable to get local issuer certificate", "unknown ca");
    expect_client_verify_failure(C->selfsigned_cert, C->selfsigned_key, C->ca_cert, "localhost", "self", NULL);
}

static void test_wrong_name(void **state)
{
    (void)state;
    expect_client_verify_failure(C->other_cert, C->other_key, C->ca_cert, "localhost", "Hostname mismatch", NULL);
    expect_client_verify_failure(C->server_cert, C->server_key, C->ca_cert, "127.0.0.2", "IP address mismatch",
                                 NULL);
    expect_client_verify_failure(C->server_cert, C->server_key, C->ca_cert, "www.example.com", "Hostname mismatch",
                                 NULL);
}

static void test_expired(void **state)
{
    (void)state;
    expect_client_verify_failure(C->expired_cert, C->expired_key, C->ca_cert, "localhost",
                                 "certificate has expired", "certificate expired");
}

/* Right names pass, and SNI is sent for names but never for address literals. */
static void test_names_that_match(void **state)
{
    (void)state;
    const char *hosts[] = {"localhost", "127.0.0.1", "::1"};
    for (int i = 0; i < 3; i++) {
        ts_iostream *c, *s;
        int rc_c, rc_s;
        handshake_case(C->server_cert, C->server_key, C->ca_cert, hosts[i], &rc_c, &rc_s, &c, &s);
        assert_int_equal(rc_c, 0);
        assert_int_equal(rc_s, 0);
        const char *sni = SSL_get_servername(ts_iostream_ssl(s), TLSEXT_NAMETYPE_host_name);
        if (i == 0)
            assert_string_equal(sni, "localhost");
        else
            assert_null(sni);
        ts_iostream_free(c);
        ts_iostream_free(s);
    }
}

/* The explicit ways out: no_hostname_check, and TS_SSL_VERIFY_NONE. */
static void test_explicit_opt_outs(void **state)
{
    (void)state;
    int fds[2], err;
    SSL_CTX *sctx = tu_tls_server_ctx(C->other_cert, C->other_key, 0, 0);
    SSL_CTX *cctx = tu_tls_client_ctx(C->ca_cert, 0, 0);
    assert_int_equal(tu_tcp_pair(fds), 0);
    ts_ssl_options so = {.size = sizeof so, .ctx = sctx, .server_side = true};
    ts_ssl_options co = {.size = sizeof co, .ctx = cctx, .no_hostname_check = true};
    ts_iostream *s = ts_iostream_new_ssl(g_loop, fds[1], &so, NULL, &err);
    ts_iostream *c = ts_iostream_new_ssl(g_loop, fds[0], &co, NULL, &err);
    ts_future *f = ts_iostream_wait_for_handshake_future(c);
    assert_int_equal(ts_ioloop_run_sync(g_loop, f, 10), 0);
    assert_int_equal(ts_future_error(f), 0);
    ts_future_unref(f);
    ts_iostream_free(c);
    ts_iostream_free(s);
    SSL_CTX_free(cctx);
    SSL_CTX_free(sctx);

    sctx = tu_tls_server_ctx(C->selfsigned_cert, C->selfsigned_key, 0, 0);
    ts_ssl_context_options insecure = {.size = sizeof insecure, .verify = TS_SSL_VERIFY_NONE};
    assert_int_equal(tu_tcp_pair(fds), 0);
    so.ctx = sctx;
    co = (ts_ssl_options){.size = sizeof co, .ctx_options = &insecure};
    s = ts_iostream_new_ssl(g_loop, fds[1], &so, NULL, &err);
    c = ts_iostream_new_ssl(g_loop, fds[0], &co, NULL, &err);
    assert_non_null(c);
    f = ts_iostream_wait_for_handshake_future(c);
    assert_int_equal(ts_ioloop_run_sync(g_loop, f, 10), 0);
    assert_int_equal(ts_future_error(f), 0);
    ts_future_unref(f);
    ts_iostream_free(c);
    ts_iostream_free(s);
    SSL_CTX_free(sctx);
}

/* ---- raw peers -------------------------------------------------------------------- */

/* Reads whatever arrives within @p ms (blocking fd), returns the count. */
static ssize_t raw_read(int fd, char *buf, size_t len, int ms)
{
    struct pollfd p = {fd, POLLIN, 0};
    if (poll(&p, 1, ms) != 1)
        return 0;
    return read(fd, buf, len);
}

typedef struct raw_peer {
    int fd;
    const char *reply; /* written once the TLS side spoke (NULL: nothing) */
    bool close_after;
    bool spoke;
} raw_peer;

static void on_raw(ts_ioloop *loop, int fd, int events, void *arg)
{
    (void)events;
    raw_peer *p = arg;
    char buf[4096];
    if (raw_read(fd, buf, sizeof buf, 0) <= 0)
        return;
    p->spoke = true;
    if (p->reply)
        (void)!write(fd, p->reply, strlen(p->reply));
    if (p->close_after) {
        ts_ioloop_remove_handler(loop, fd);
        close(fd);
        p->fd = -1;
    }
}

/* A TLS client against a raw peer that replies/closes/ignores. Returns the client's handshake status. */
static int client_vs_raw(raw_peer *peer, ts_iostream **out, double timeout)
{
    int fds[2], err;
    assert_int_equal(tu_tcp_pair(fds), 0);
    SSL_CTX *cctx = tu_tls_client_ctx(C->ca_cert, 0, 0);
    ts_ssl_options co = {.size = sizeof co, .ctx = cctx, .server_hostname = "localhost"};
    ts_iostream *c = ts_iostream_new_ssl(g_loop, fds[0], &co, NULL, &err);
    SSL_CTX_free(cctx);
    peer->fd = fds[1];
    assert_int_equal(ts_ioloop_add_handler(g_loop, fds[1], TS_IOLOOP_READ, on_raw, peer), 0);
    ts_future *hs = ts_iostream_wait_for_handshake_future(c);
    ts_future *bounded = ts_with_timeout(hs, timeout); /* the caller's bound, as a user would */
    assert_int_equal(ts_ioloop_run_sync(g_loop, bounded, 20), 0);
    int rc = ts_future_error(bounded);
    ts_future_unref(bounded);
    ts_future_unref(hs);
    if (peer->fd >= 0) {
        ts_ioloop_remove_handler(g_loop, peer->fd);
        close(peer->fd);
    }
    *out = c;
    return rc;
}

static void test_tls_client_to_plaintext_server(void **state)
{
    (void)state;
    ts_iostream *c;
    raw_peer p = {.reply = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n", .close_after = true};
    assert_int_equal(client_vs_raw(&p, &c, 5), TS_ESSL);
    assert_detail(c, "wrong version number");
    ts_iostream_free(c);
}

static void test_peer_closes_mid_handshake(void **state)
{
    (void)state;
    ts_iostream *c;
    raw_peer p = {.close_after = true};
    int warnings = g_ssl_warnings, debug = g_ssl_debug;
    assert_int_equal(client_vs_raw(&p, &c, 5), TS_ESSL);
    assert_int_equal(g_ssl_warnings, warnings); /* a peer going away is no warning... */
    assert_int_equal(g_ssl_debug, debug + 1);   /* ...only a debug line */
    assert_true(p.spoke); /* it did see a ClientHello */
    assert_detail(c, "unexpected eof");
    ts_iostream_free(c);
}

static void test_handshake_never_completes(void **state)
{
    (void)state;
    ts_iostream *c;
    raw_peer p = {0}; /* reads the ClientHello, never answers */
    double t0 = ts_ioloop_time(g_loop);
    assert_int_equal(client_vs_raw(&p, &c, 0.3), TS_ETIMEDOUT);
    assert_true(ts_ioloop_time(g_loop) - t0 < 5);
    assert_false(ts_iostream_closed(c)); /* as Tornado: the timeout does not cancel */
    ts_iostream_free(c);
}

/* A plaintext client talking to a TLS server. */
static void test_plaintext_client_to_tls_server(void **state)
{
    (void)state;
    const char *inputs[] = {"GET / HTTP/1.0\r\n\r\n", "hello there, this is not TLS\r\n"};
    const char *whys[] = {"http request", "wrong version number"};
    for (int i = 0; i < 2; i++) {
        int fds[2], err;
        assert_int_equal(tu_tcp_pair(fds), 0);
        SSL_CTX *sctx = tu_tls_server_ctx(C->server_cert, C->server_key, 0, 0);
        ts_ssl_options so = {.size = sizeof so, .ctx = sctx, .server_side = true};
        ts_iostream *s = ts_iostream_new_ssl(g_loop, fds[1], &so, NULL, &err);
        SSL_CTX_free(sctx);
        assert_true(write(fds[0], inputs[i], strlen(inputs[i])) > 0);
        ts_future *f = ts_iostream_wait_for_handshake_future(s);
        assert_int_equal(ts_ioloop_run_sync(g_loop, f, 10), 0);
        assert_int_equal(ts_future_error(f), TS_ESSL);
        ts_future_unref(f);
        assert_detail(s, whys[i]);
        ts_iostream_free(s);
        close(fds[0]);
    }
}

static void test_version_mismatch(void **state)
{
    (void)state;
    int fds[2], err;
    assert_int_equal(tu_tcp_pair(fds), 0);
    SSL_CTX *sctx = tu_tls_server_ctx(C->server_cert, C->server_key, TLS1_3_VERSION, 0);
    SSL_CTX *cctx = tu_tls_client_ctx(C->ca_cert, TLS1_2_VERSION, TLS1_2_VERSION);
    ts_ssl_options so = {.size = sizeof so, .ctx = sctx, .server_side = true};
    ts_ssl_options co = {.size = sizeof co, .ctx = cctx, .server_hostname = "localhost"};
    ts_iostream *s = ts_iostream_new_ssl(g_loop, fds[1], &so, NULL, &err);
    ts_iostream *c = ts_iostream_new_ssl(g_loop, fds[0], &co, NULL, &err);
    SSL_CTX_free(sctx);
    SSL_CTX_free(cctx);
    ts_future *fc = ts_iostream_wait_for_handshake_future(c);
    ts_future *fs = ts_iostream_wait_for_handshake_future(s);
    ts_ioloop_run_sync(g_loop, fc, 10);
    ts_ioloop_run_sync(g_loop, fs, 10);
    assert_int_equal(ts_future_error(fc), TS_ESSL);
    assert_int_equal(ts_future_error(fs), TS_ESSL);
    assert_detail(c, "protocol version");
    assert_detail(s, "unsupported protocol");
    ts_future_unref(fc);
    ts_future_unref(fs);
    ts_iostream_free(c);
    ts_iostream_free(s);
}

/* Mutual TLS: a server that requires a client certificate. */
static void test_client_certificate(void **state)
{
    (void)state;
    ts_ssl_context_options so = {.size = sizeof so, .server_side = true, .cert_file = C->server_cert,
                                 .key_file = C->server_key, .ca_file = C->ca_cert,
                                 .verify = TS_SSL_VERIFY_REQUIRED};
    int err;
    SSL_CTX *sctx = ts_ssl_context_new(&so, &err);
    assert_non_null(sctx);
    for (int with_cert = 0; with_cert < 2; with_cert++) {
        ts_ssl_context_options co = {.size = sizeof co, .ca_file = C->ca_cert,
                                     .cert_file = with_cert ? C->client_cert : NULL,
                                     .key_file = with_cert ? C->client_key : NULL};
        SSL_CTX *cctx = ts_ssl_context_new(&co, &err);
        assert_non_null(cctx);
        ts_iostream *c, *s;
        int rc_c, rc_s;
        (void)tu_tls_stream_pair(g_loop, NULL, sctx, cctx, "localhost", &c, &s, &rc_c, &rc_s);
        SSL_CTX_free(cctx);
        if (with_cert) {
            assert_int_equal(rc_c | rc_s, 0);
            ts_bytes *subj = ts_iostream_ssl_peer_subject(s);
            assert_string_equal(subj->data, "CN=tstream client,O=tstream test");
            ts_bytes_free(subj);
        } else {
            assert_int_equal(rc_s, TS_ESSL);
            assert_detail(s, "peer did not return a certificate");
            /* A TLS 1.3 client finishes first and hears the alert on its next read. */
            if (rc_c == 0) {
                ts_future *r = ts_iostream_read_bytes_future(c, 1, false);
                assert_int_equal(ts_ioloop_run_sync(g_loop, r, 10), 0);
                assert_int_equal(ts_future_error(r), TS_ESSL);
                ts_future_unref(r);
            }
            assert_detail(c, "certificate required");
        }
        ts_iostream_free(c);
        ts_iostream_free(s);
    }
    SSL_CTX_free(sctx);
}

/* ---- option errors ---------------------------------------------------------------- */

static void test_context_option_errors(void **state)
{
    (void)state;
    int err = 0;
    ts_ssl_context_options o = {.size = sizeof o, .server_side = true};
    assert_null(ts_ssl_context_new(&o, &err));
    assert_int_equal(err, TS_EINVAL); /* a server needs a certificate */
    o.cert_file = "/nonexistent/cert.pem";
    assert_null(ts_ssl_context_new(&o, &err));
    assert_int_equal(err, TS_ESSL);
    assert_non_null(strstr(ts_ssl_last_error_detail(), "No such file or directory"));
    o.cert_file = C->server_cert;
    o.key_file = C->other_key;
    assert_null(ts_ssl_context_new(&o, &err));
    assert_int_equal(err, TS_ESSL);
    assert_non_null(strstr(ts_ssl_last_error_detail(), "key values mismatch"));
    o.key_file = C->server_key;
    o.ciphers = "NO-SUCH-CIPHER";
    assert_null(ts_ssl_context_new(&o, &err));
    assert_int_equal(err, TS_ESSL);
    assert_non_null(strstr(ts_ssl_last_error_detail(), "no cipher match"));
    o.ciphers = NULL;
    const char *bad_alpn[] = {"h2", "", NULL};
    o.alpn_protocols = bad_alpn;
    assert_null(ts_ssl_context_new(&o, &err));
    assert_int_equal(err, TS_EINVAL);
    o.alpn_protocols = NULL;
    o.min_version = 12345;
    assert_null(ts_ssl_context_new(&o, &err));
    assert_int_equal(err, TS_EINVAL);
    o.min_version = TLS1_3_VERSION;
    o.max_version = TLS1_2_VERSION;
    assert_null(ts_ssl_context_new(&o, &err));
    assert_int_equal(err, TS_EINVAL);
    o = (ts_ssl_context_options){0};
    assert_null(ts_ssl_context_new(&o, &err)); /* size not set */
    assert_int_equal(err, TS_EINVAL);
    /* Defaults: TLS 1.2 minimum, a verifying client. */
    SSL_CTX *ctx = ts_ssl_context_new(NULL, &err);
    assert_non_null(ctx);
    assert_int_equal(SSL_CTX_get_min_proto_version(ctx), TLS1_2_VERSION);
    assert_true(SSL_CTX_get_verify_mode(ctx) & SSL_VERIFY_PEER);
    SSL_CTX_free(ctx);
}

static void test_stream_option_errors(void **state)
{
    (void)state;
    int fds[2], err = 0;
    assert_int_equal(tu_tcp_pair(fds), 0);
    ts_ssl_options o = {.size = sizeof o, .server_side = true}; /* no context */
    assert_null(ts_iostream_new_ssl(g_loop, fds[0], &o, NULL, &err));
    assert_int_equal(err, TS_EINVAL);
    ts_ssl_options vc = {.size = sizeof vc}; /* verifying client, no name */
    assert_null(ts_iostream_new_ssl(g_loop, fds[0], &vc, NULL, &err));
    assert_int_equal(err, TS_EINVAL);
    assert_non_null(strstr(ts_ssl_last_error_detail(), "server_hostname"));
    assert_null(ts_iostream_new_ssl(g_loop, fds[0], NULL, NULL, &err));
    assert_int_equal(err, TS_EINVAL);
    ts_ssl_context_options server_ctx = {.size = sizeof server_ctx, .server_side = true,
                                         .cert_file = C->server_cert, .key_file = C->server_key};
    ts_ssl_options mismatch = {.size = sizeof mismatch, .ctx_options = &server_ctx, .server_hostname = "x"};
    assert_null(ts_iostream_new_ssl(g_loop, fds[0], &mismatch, NULL, &err));
    assert_int_equal(err, TS_EINVAL);
    ts_ssl_options nosize = {0};
    assert_null(ts_iostream_new_ssl(g_loop, fds[0], &nosize, NULL, &err));
    assert_int_equal(err, TS_EINVAL);
    /* On failure the fd stays the caller's. */
    assert_true(fcntl(fds[0], F_GETFD) >= 0);
    close(fds[0]);
    close(fds[1]);
}

static void count_close(ts_iostream *s, void *arg)
{
    (void)s;
    (*(int *)arg)++;
}

static void ignore_read(ts_iostream *s, int status, const char *data, size_t len, void *arg)
{
    (void)s, (void)data, (void)len;
    *(int *)arg = status;
}

/*
 * A server-side TLS stream over an accepted socket whose peer reset it
 * (after accept, before the first handshake step) must start its handshake,
 * fail and close, not wait forever with its fd open.
 */
static void test_reset_after_accept_closes(void **state)
{
    (void)state;
    int port = 0, warnings = g_ssl_warnings;
    int l = tu_tcp_listen(&port);
    assert_true(l >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_int_equal(connect(c, (struct sockaddr *)&a, sizeof a), 0);
    int fd = accept4(l, NULL, NULL, SOCK_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(write(c, "\x16\x03\x01\x02\x00\x01", 6), 6); /* half a ClientHello */
    struct linger lg = {1, 0};
    setsockopt(c, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(c); /* RST, after accept */
    struct pollfd p = {.fd = fd, .events = POLLIN};
    assert_int_equal(poll(&p, 1, 2000), 1); /* the reset has arrived */
    char b;
    assert_int_equal(recv(fd, &b, 1, MSG_PEEK), 1);
    SSL_CTX *sctx = tu_tls_server_ctx(C->server_cert, C->server_key, 0, 0);
    ts_ssl_options so = {.size = sizeof so, .ctx = sctx, .server_side = true};
    int err = 0, closes = 0, rstatus = 1;
    ts_iostream *s = ts_iostream_new_ssl(g_loop, fd, &so, NULL, &err);
    assert_non_null(s);
    SSL_CTX_free(sctx);
    ts_iostream_set_close_callback(s, count_close, &closes);
    assert_int_equal(ts_iostream_read_until(s, "\n", 1, 1024, ignore_read, &rstatus), 0);
    tu_run_until_count(g_loop, &closes, 1, 5);
    assert_int_equal(closes, 1);
    assert_true(rstatus < 0);
    assert_int_equal(ts_iostream_fileno(s), -1);
    assert_int_equal(g_ssl_warnings, warnings); /* a reset is no warning */
    ts_iostream_unref(s);
    close(l);
}

/*
 * A port scan of a TLS server: clients that connect and close without a
 * word. Each used to log "SSL Error on N ...: unexpected eof while reading"
 * at WARN (1,025 scans, 1,025 lines); now each is one DEBUG line.
 */
static void test_port_scan_is_quiet(void **state)
{
    (void)state;
    enum { SCANS = 20 };
    int warnings = g_ssl_warnings, debug = g_ssl_debug, closes = 0;
    SSL_CTX *sctx = tu_tls_server_ctx(C->server_cert, C->server_key, 0, 0);
    ts_iostream *srv[SCANS];
    for (int i = 0; i < SCANS; i++) {
        int fds[2], err = 0;
        assert_int_equal(tu_tcp_pair(fds), 0);
        ts_ssl_options so = {.size = sizeof so, .ctx = sctx, .server_side = true};
        srv[i] = ts_iostream_new_ssl(g_loop, fds[1], &so, NULL, &err);
        assert_non_null(srv[i]);
        ts_iostream_set_close_callback(srv[i], count_close, &closes);
        close(fds[0]); /* the scanner hangs up */
    }
    SSL_CTX_free(sctx);
    tu_run_until_count(g_loop, &closes, SCANS, 10);
    assert_int_equal(g_ssl_warnings, warnings);
    assert_int_equal(g_ssl_debug, debug + SCANS);
    for (int i = 0; i < SCANS; i++)
        ts_iostream_unref(srv[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_untrusted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reset_after_accept_closes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_port_scan_is_quiet, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_name, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expired, setup, teardown),
        cmocka_unit_test_setup_teardown(test_names_that_match, setup, teardown),
        cmocka_unit_test_setup_teardown(test_explicit_opt_outs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tls_client_to_plaintext_server, setup, teardown),
        cmocka_unit_test_setup_teardown(test_peer_closes_mid_handshake, setup, teardown),
        cmocka_unit_test_setup_teardown(test_handshake_never_completes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_plaintext_client_to_tls_server, setup, teardown),
        cmocka_unit_test_setup_teardown(test_version_mismatch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_certificate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_context_option_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream_option_errors, setup, teardown),
    };
    signal(SIGPIPE, SIG_DFL);
    C = tu_certs_get();
    ts_log_set_handler(count_log, NULL, TS_LOG_DEBUG);
    if (getenv("TS_TEST_FILTER"))
        cmocka_set_test_filter(getenv("TS_TEST_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
