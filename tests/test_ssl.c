/*
 * TLS streams through the public API: handshakes over connected and
 * connecting sockets, wait_for_handshake, accessors, ALPN, clean vs
 * truncated close, start_tls (STARTTLS), 100 MiB each way at once verified
 * byte for byte, openssl#10880 at stream level, and no SIGPIPE.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "testutil.h"
#include "tls_certs.h"
#include "tls_pump.h"
#include "tls_streams.h"

static ts_ioloop *g_loop;

static int setup(void **state)
{
    (void)state;
    g_loop = tu_fixture_begin(60);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tu_fixture_end(g_loop);
    g_loop = NULL;
    return 0;
}

static ts_future *await(ts_future *f, double timeout)
{
    assert_non_null(f);
    int r = ts_ioloop_run_sync(g_loop, f, timeout);
    if (r)
        fail_msg("future did not complete: %s", ts_strerror(r));
    return f;
}

static void expect_bytes(ts_future *f, const char *want)
{
    await(f, 10);
    if (ts_future_error(f))
        fail_msg("read failed: %s", ts_err_name(ts_future_error(f)));
    ts_bytes *b = ts_future_result(f);
    assert_int_equal(b->len, strlen(want));
    assert_memory_equal(b->data, want, b->len);
    ts_future_unref(f);
}

static void await_ok(ts_future *f)
{
    await(f, 10);
    if (ts_future_error(f))
        fail_msg("failed: %s", ts_err_name(ts_future_error(f)));
    ts_future_unref(f);
}

static void test_pair_accessors_and_echo(void **state)
{
    (void)state;
    const tu_certs *certs = tu_certs_get();
    int vers[] = {TLS1_2_VERSION, TLS1_3_VERSION};
    for (int i = 0; i < 2; i++) {
        SSL_CTX *sctx = tu_tls_server_ctx(certs->server_cert, certs->server_key, vers[i], vers[i]);
        ts_iostream *c, *s;
        assert_int_equal(tu_tls_stream_pair(g_loop, NULL, sctx, NULL, "localhost", &c, &s, NULL, NULL), 0);
        SSL_CTX_free(sctx);
        assert_true(ts_iostream_is_ssl(c) && ts_iostream_ssl_handshake_done(c));
        assert_string_equal(ts_iostream_ssl_version(c), i ? "TLSv1.3" : "TLSv1.2");
        assert_int_equal(ts_iostream_ssl_version_number(s), vers[i]);
        assert_non_null(ts_iostream_ssl_cipher(c));
        assert_string_equal(ts_iostream_ssl_cipher(c), ts_iostream_ssl_cipher(s));
        assert_null(ts_iostream_ssl_alpn_protocol(c));
        assert_non_null(ts_iostream_ssl_peer_certificate(c));
        assert_null(ts_iostream_ssl_peer_certificate(s)); /* no client certificate asked for */
        ts_bytes *subj = ts_iostream_ssl_peer_subject(c);
        assert_string_equal(subj->data, "CN=localhost,O=tstream test");
        ts_bytes_free(subj);
        ts_bytes *pem = ts_iostream_ssl_peer_certificate_pem(c);
        assert_non_null(strstr(pem->data, "-----BEGIN CERTIFICATE-----"));
        ts_bytes_free(pem);
        assert_non_null(ts_iostream_ssl(c));

        await_ok(ts_iostream_write_future(c, "hello\r\n", 7));
        expect_bytes(ts_iostream_read_until_future(s, "\r\n", 2, 0), "hello\r\n");
        await_ok(ts_iostream_write_future(s, "world\r\n", 7));
        expect_bytes(ts_iostream_read_until_future(c, "\r\n", 2, 0), "world\r\n");
        ts_iostream_free(c);
        ts_iostream_free(s);
    }
}

/* ---- a client over a connecting socket ----------------------------------------- */

typedef struct accept_ctx {
    int listener;
    SSL_CTX *ctx;
    ts_iostream *server;
} accept_ctx;

static void on_accept(ts_ioloop *loop, int fd, int events, void *arg)
{
    (void)events;
    accept_ctx *a = arg;
    int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (c < 0)
        return;
    ts_ssl_options o = {.size = sizeof o, .ctx = a->ctx, .server_side = true};
    a->server = ts_iostream_new_ssl(loop, c, &o, NULL, NULL);
    assert_non_null(a->server);
    ts_ioloop_remove_handler(loop, fd);
}

typedef struct connect_rec {
    bool done;
    int status;
    bool handshaken_in_cb;
} connect_rec;

static void on_connect(ts_iostream *s, int status, void *arg)
{
    connect_rec *r = arg;
    r->done = true;
    r->status = status;
    r->handshaken_in_cb = ts_iostream_ssl_handshake_done(s);
}

static void test_connect_then_handshake(void **state)
{
    (void)state;
    const tu_certs *certs = tu_certs_get();
    accept_ctx a = {.ctx = tu_tls_server_ctx(certs->server_cert, certs->server_key, 0, 0)};
    int port;
    a.listener = tu_tcp_listen(&port);
    assert_true(a.listener >= 0);
    assert_int_equal(ts_ioloop_add_handler(g_loop, a.listener, TS_IOLOOP_READ, on_accept, &a), 0);

    SSL_CTX *cctx = tu_tls_client_ctx(certs->ca_cert, 0, 0);
    ts_ssl_options o = {.size = sizeof o, .ctx = cctx, .server_hostname = "localhost"};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int err = 0;
    ts_iostream *c = ts_iostream_new_ssl(g_loop, fd, &o, NULL, &err);
    SSL_CTX_free(cctx);
    assert_non_null(c);
    /* A write queued before connecting goes out once connected and handshaken. */
    assert_int_equal(ts_iostream_write(c, "early\n", 6, NULL, NULL), 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    connect_rec r = {0};
    assert_int_equal(ts_iostream_connect(c, (struct sockaddr *)&sa, sizeof sa, on_connect, &r), 0);
    assert_false(r.done); /* never inline */
    tu_run_until_flag(g_loop, &r.done, 10);
    assert_int_equal(r.status, 0);
    assert_true(r.handshaken_in_cb); /* the connect callback waits for the handshake */
    assert_non_null(a.server);
    expect_bytes(ts_iostream_read_until_future(a.server, "\n", 1, 0), "early\n");
    ts_iostream_free(c);
    ts_iostream_free(a.server);
    close(a.listener);
    SSL_CTX_free(a.ctx);
}

/* ---- wait_for_handshake ---------------------------------------------------------- */

static void test_wait_for_handshake_rules(void **state)
{
    (void)state;
    ts_iostream *c, *s;
    assert_int_equal(tu_tls_stream_pair(g_loop, NULL, NULL, NULL, "localhost", &c, &s, NULL, NULL), 0);
    /* Already handshaken: succeeds, but from the loop, not inline. */
    tu_hs h1 = {0}, h2 = {0};
    assert_int_equal(ts_iostream_wait_for_handshake(s, tu_hs_record, &h1), 0);
    assert_false(h1.done);
    /* Tornado's "Already waiting". */
    assert_int_equal(ts_iostream_wait_for_handshake(s, tu_hs_record, &h2), TS_EBUSY);
    tu_run_until_flag(g_loop, &h1.done, 5);
    assert_int_equal(h1.status, 0);
    assert_false(h2.done);
    await_ok(ts_iostream_wait_for_handshake_future(c));
    ts_iostream_free(c);
    ts_iostream_free(s);

    /* A plain stream is not a TLS stream. */
    int fds[2];
    assert_int_equal(tu_tcp_pair(fds), 0);
    ts_iostream *p = ts_iostream_new_socket(g_loop, fds[0], NULL);
    assert_int_equal(ts_iostream_wait_for_handshake(p, tu_hs_record, &h2), TS_EINVAL);
    assert_false(ts_iostream_is_ssl(p));
    assert_null(ts_iostream_ssl(p));
    assert_null(ts_iostream_ssl_version(p));
    ts_iostream_free(p);
    close(fds[1]);
}

static void test_alpn(void **state)
{
    (void)state;
    const tu_certs *certs = tu_certs_get();
    const char *server_protos[] = {"h2", "http/1.1", NULL};
    const char *client_protos[] = {"http/1.1", "h2", NULL};
    const char *other[] = {"smtp", NULL};
    ts_ssl_context_options so = {.size = sizeof so, .server_side = true, .cert_file = certs->server_cert,
                                 .key_file = certs->server_key, .alpn_protocols = server_protos};
    ts_ssl_context_options co = {.size = sizeof co, .ca_file = certs->ca_cert, .alpn_protocols = client_protos};
    int err;
    SSL_CTX *sctx = ts_ssl_context_new(&so, &err);
    SSL_CTX *cctx = ts_ssl_context_new(&co, &err);
    ts_iostream *c, *s;
    assert_int_equal(tu_tls_stream_pair(g_loop, NULL, sctx, cctx, "localhost", &c, &s, NULL, NULL), 0);
    /* The server's preference wins. */
    assert_string_equal(ts_iostream_ssl_alpn_protocol(c), "h2");
    assert_string_equal(ts_iostream_ssl_alpn_protocol(s), "h2");
    ts_iostream_free(c);
    ts_iostream_free(s);
    SSL_CTX_free(cctx);
    /* No overlap: no ALPN, the handshake still succeeds. */
    co.alpn_protocols = other;
    cctx = ts_ssl_context_new(&co, &err);
    assert_int_equal(tu_tls_stream_pair(g_loop, NULL, sctx, cctx, "localhost", &c, &s, NULL, NULL), 0);
    assert_null(ts_iostream_ssl_alpn_protocol(c));
    ts_iostream_free(c);
    ts_iostream_free(s);
    SSL_CTX_free(cctx);
    SSL_CTX_free(sctx);
}

/* ---- closing ---------------------------------------------------------------------- */

static void test_close_notify_and_truncation(void **state)
{
    (void)state;
    for (int abrupt = 0; abrupt < 2; abrupt++) {
        ts_iostream *c, *s;
        assert_int_equal(tu_tls_stream_pair(g_loop, NULL, NULL, NULL, "localhost", &c, &s, NULL, NULL), 0);
        /* Let the client take in its TLS 1.3 tickets, so closing sends FIN, not RST. */
        ts_future *idle = ts_iostream_read_bytes_future(c, 1, true);
        tu_run_for(g_loop, 0.05);
        await_ok(ts_iostream_write_future(c, "bye", 3));
        if (abrupt)
            shutdown(ts_iostream_fileno(c), SHUT_RDWR); /* FIN without close_notify */
        else
            ts_iostream_close(c, 0); /* sends close_notify */
        ts_future *f = ts_iostream_read_until_close_future(s);
        expect_bytes(f, "bye"); /* the stream ends either way, as Tornado 6 */
        assert_true(ts_iostream_closed(s));
        if (abrupt) {
            assert_int_equal(ts_iostream_error(s), TS_ETRUNCATED);
            assert_non_null(strstr(ts_iostream_error_detail(s), "close_notify"));
        } else {
            assert_int_equal(ts_iostream_error(s), 0);
        }
        ts_iostream_free(c);
        await(idle, 5);
        ts_future_unref(idle);
        ts_iostream_free(s);
    }
}

/* ---- start_tls ---------------------------------------------------------------------- */

static void plain_pair_opts(ts_iostream **c, ts_iostream **s, const ts_iostream_options *sopts)
{
    int fds[2];
    assert_int_equal(tu_tcp_pair(fds), 0);
    *c = ts_iostream_new_socket(g_loop, fds[0], NULL);
    *s = ts_iostream_new_socket(g_loop, fds[1], sopts);
    assert_true(*c && *s);
}

static void plain_pair(ts_iostream **c, ts_iostream **s) { plain_pair_opts(c, s, NULL); }

static int g_closes;
static ts_iostream *g_closed_stream;
static void count_close(ts_iostream *s, void *arg)
{
    (void)arg;
    g_closes++;
    g_closed_stream = s;
}

static void send_line(ts_iostream *from, ts_iostream *to, const char *line)
{
    ts_iostream_write(from, line, strlen(line), NULL, NULL);
    expect_bytes(ts_iostream_read_until_future(to, "\r\n", 2, 0), line);
}

static void test_start_tls_smtp(void **state)
{
    (void)state;
    const tu_certs *certs = tu_certs_get();
    ts_iostream *c, *s;
    ts_iostream_options small = {.size = sizeof small, .max_buffer_size = 4096};
    plain_pair_opts(&c, &s, &small);
    g_closes = 0;
    ts_iostream_set_close_callback(c, count_close, NULL);
    send_line(s, c, "220 mail.example.com ready\r\n");
    send_line(c, s, "EHLO mail.example.com\r\n");
    send_line(s, c, "250 STARTTLS\r\n");
    send_line(c, s, "STARTTLS\r\n");

    /* Refused while a read is pending; the stream is untouched. */
    ts_iostream *out = NULL;
    ts_future *pending = ts_iostream_read_bytes_future(c, 1, false);
    assert_int_equal(ts_iostream_start_tls(c, false, NULL, "localhost", &out, NULL, NULL), TS_EBUSY);
    assert_null(out);
    ts_iostream_write(s, "X", 1, NULL, NULL);
    expect_bytes(pending, "X");
    send_line(s, c, "220 Go ahead\r\n");

    SSL_CTX *sctx = tu_tls_server_ctx(certs->server_cert, certs->server_key, 0, 0);
    SSL_CTX *cctx = tu_tls_client_ctx(certs->ca_cert, 0, 0);
    ts_ssl_options so = {.size = sizeof so, .ctx = sctx};
    ts_ssl_options co = {.size = sizeof co, .ctx = cctx};
    ts_future *cf = ts_iostream_start_tls_future(c, false, &co, "localhost");
    ts_future *sf = ts_iostream_start_tls_future(s, true, &so, NULL);
    SSL_CTX_free(sctx);
    SSL_CTX_free(cctx);
    assert_true(ts_iostream_closed(c) && ts_iostream_closed(s)); /* the plain streams are done */
    ts_iostream_unref(c);
    ts_iostream_unref(s);
    await(cf, 10);
    await(sf, 10);
    assert_int_equal(ts_future_error(cf), 0);
    assert_int_equal(ts_future_error(sf), 0);
    c = ts_future_steal_result(cf);
    s = ts_future_steal_result(sf);
    ts_future_unref(cf);
    ts_future_unref(sf);
    assert_true(ts_iostream_is_ssl(c) && ts_iostream_is_ssl(s));
    send_line(c, s, "EHLO mail.example.com\r\n");
    send_line(s, c, "250 mail.example.com welcome\r\n");
    /* The close callback moved to the TLS stream: it did not run for the plain one. */
    assert_int_equal(g_closes, 0);
    /* The server's buffer limit came along: a 5000-byte line overflows it. */
    char line[5000];
    memset(line, 'x', sizeof line);
    ts_iostream_write(c, line, sizeof line, NULL, NULL);
    ts_future *big = ts_iostream_read_until_future(s, "\r\n", 2, 0);
    await(big, 10);
    assert_int_equal(ts_future_error(big), TS_EBUFFERFULL);
    ts_future_unref(big);
    /* The server closed on that; the client notices, and its (moved) close callback runs, once. */
    tu_run_until_count(g_loop, &g_closes, 1, 5);
    assert_ptr_equal(g_closed_stream, c);
    tu_run_for(g_loop, 0.02);
    assert_int_equal(g_closes, 1);
    ts_iostream_free(c);
    ts_iostream_free(s);
}

static void test_start_tls_handshake_fails(void **state)
{
    (void)state;
    const tu_certs *certs = tu_certs_get();
    ts_iostream *c, *s;
    plain_pair(&c, &s);
    SSL_CTX *sctx = tu_tls_server_ctx(certs->server_cert, certs->server_key, 0, 0);
    ts_ssl_options so = {.size = sizeof so, .ctx = sctx};
    ts_future *sf = ts_iostream_start_tls_future(s, true, &so, NULL);
    /* No options: the default client context, which trusts the system store, not our CA. */
    ts_future *cf = ts_iostream_start_tls_future(c, false, NULL, "localhost");
    SSL_CTX_free(sctx);
    ts_iostream_unref(c);
    ts_iostream_unref(s);
    await(cf, 10);
    await(sf, 10);
    assert_int_equal(ts_future_error(cf), TS_ESSL);
    assert_true(ts_future_error(sf) < 0);
    ts_future_unref(cf);
    ts_future_unref(sf);
    /* A verifying client without a name is refused outright. */
    plain_pair(&c, &s);
    ts_iostream *out = NULL;
    assert_int_equal(ts_iostream_start_tls(c, false, NULL, NULL, &out, NULL, NULL), TS_EINVAL);
    assert_non_null(strstr(ts_ssl_last_error_detail(), "server_hostname"));
    assert_false(ts_iostream_closed(c));
    ts_iostream_free(c);
    ts_iostream_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_pair_accessors_and_echo, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connect_then_handshake, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wait_for_handshake_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(test_alpn, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_notify_and_truncation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_start_tls_smtp, setup, teardown),
        cmocka_unit_test_setup_teardown(test_start_tls_handshake_fails, setup, teardown),
    };
    signal(SIGPIPE, SIG_DFL); /* a SIGPIPE anywhere in these tests kills the run: none may happen */
    tu_certs_get();
    if (getenv("TS_TEST_FILTER"))
        cmocka_set_test_filter(getenv("TS_TEST_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
