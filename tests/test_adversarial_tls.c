/*
 * Adversarial TLS peers (ctest label `adversarial`), over loopback TCP. The
 * misbehaving side is OpenSSL driven by hand through memory BIOs, so a test
 * decides exactly which bytes go out and when:
 *   - resets, a FIN and a stall at every stage of a server stream's
 *     handshake: the waiter gets one clear error, nothing is logged above
 *     DEBUG for a peer that merely went away, memory and fds come back;
 *   - a TLS 1.2 server asking the client stream to renegotiate: refused
 *     (the library's contexts set SSL_OP_NO_RENEGOTIATION), data sent
 *     before it is delivered intact, the stream ends cleanly;
 *   - a TLS 1.3 KeyUpdate (update requested) that arrives while the
 *     client's send buffer is full: the reply waits behind 16 MiB of queued
 *     writes, the read still completes, and every byte arrives in order.
 * Each test bounds its time (alarm() outside the loop, the loop watchdog).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <ev.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "net_helpers.h"
#include "stream_pairs.h"
#include "testutil.h"
#include "tls_certs.h"
#include "tls_pump.h"
#include "tls_streams.h"
#include "tstream/ssl.h"

/* ---- a hand-driven OpenSSL peer on a raw socket ----------------------------------- */

typedef struct peer {
    int fd;
    SSL *ssl;
    BIO *rbio, *wbio;
    ts_ioloop *loop;
} peer;

static void peer_init(peer *p, ts_ioloop *loop, int fd, SSL_CTX *ctx, bool server)
{
    p->fd = fd;
    p->loop = loop;
    tu_set_nonblock(fd);
    p->ssl = SSL_new(ctx);
    p->rbio = BIO_new(BIO_s_mem());
    p->wbio = BIO_new(BIO_s_mem());
    SSL_set_bio(p->ssl, p->rbio, p->wbio);
    if (server)
        SSL_set_accept_state(p->ssl);
    else
        SSL_set_connect_state(p->ssl);
}

/* Moves what arrived on the socket into OpenSSL. */
static void peer_in(peer *p)
{
    char buf[65536];
    ssize_t n;
    while ((n = recv(p->fd, buf, sizeof buf, 0)) > 0)
        BIO_write(p->rbio, buf, (int)n);
}

/* Sends what OpenSSL wrote, at most @p max bytes (SIZE_MAX: all); the loop runs while the socket is full. */
static size_t peer_out(peer *p, size_t max)
{
    char buf[16384];
    size_t sent = 0;
    while (sent < max) {
        int want = (int)(max - sent < sizeof buf ? max - sent : sizeof buf);
        int n = BIO_read(p->wbio, buf, want);
        if (n <= 0)
            break;
        for (int off = 0; off < n;) {
            ssize_t w = send(p->fd, buf + off, (size_t)(n - off), MSG_NOSIGNAL);
            if (w > 0)
                off += (int)w;
            else if (w < 0 && errno != EAGAIN)
                return sent;
            else
                tu_run_iterations(p->loop, 1);
        }
        sent += (size_t)n;
    }
    return sent;
}

static void peer_free(peer *p)
{
    SSL_free(p->ssl);
    ERR_clear_error();
}

static void reset_fd(int fd)
{
    struct linger l = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    close(fd);
}

static bool hs_done(void *arg) { return ((tu_hs *)arg)->done; }

/* ---- resets at every handshake stage ------------------------------------------------ */

enum { ST_SILENT_RST, ST_HALF_HELLO_RST, ST_AFTER_SERVER_HELLO_RST, ST_AFTER_SERVER_HELLO_FIN, ST_STALL, ST_COUNT };
static const char *const ST_NAMES[] = {"RST before any byte", "RST after half a ClientHello",
                                       "RST after the server's first flight", "FIN after the server's first flight",
                                       "stall after the ClientHello"};

static void test_handshake_abuse_at_every_stage(void **state)
{
    (void)state;
    alarm(60);
    const tu_certs *certs = tu_certs_get();
    SSL_CTX *sctx = tu_tls_server_ctx(certs->server_cert, certs->server_key, 0, 0);
    SSL_CTX *cctx = tu_tls_client_ctx(certs->ca_cert, 0, 0);
    nh_log_capture_start();
    for (int st = 0; st < ST_COUNT; st++) {
        long base = tu_mem_live();
        ts_ioloop *loop = tu_fixture_begin(20);
        int fds[2];
        assert_int_equal(tu_tcp_pair(fds), 0);
        ts_ssl_options so = {.size = sizeof so, .ctx = sctx, .server_side = true};
        ts_iostream_options o = {.size = sizeof o, .handshake_timeout = st == ST_STALL ? 0.5 : 0};
        int err = 0;
        ts_iostream *s = ts_iostream_new_ssl(loop, fds[1], &so, &o, &err);
        assert_non_null(s);
        tu_hs hs = {0};
        tu_rec c = {0};
        ts_iostream_set_close_callback(s, tu_rec_close, &c);
        assert_int_equal(ts_iostream_wait_for_handshake(s, tu_hs_record, &hs), 0);
        peer p;
        peer_init(&p, loop, fds[0], cctx, false);
        SSL_set_tlsext_host_name(p.ssl, "localhost");
        SSL_do_handshake(p.ssl); /* the ClientHello, into the BIO */
        if (st == ST_HALF_HELLO_RST)
            peer_out(&p, 100);
        else if (st != ST_SILENT_RST)
            peer_out(&p, SIZE_MAX);
        tu_run_iterations(loop, 5);
        if (st == ST_AFTER_SERVER_HELLO_RST || st == ST_AFTER_SERVER_HELLO_FIN) {
            for (int i = 0; i < 50 && BIO_ctrl_pending(p.rbio) == 0; i++) {
                tu_run_iterations(loop, 1);
                peer_in(&p);
            }
            assert_true(BIO_ctrl_pending(p.rbio) > 0); /* the server answered */
        }
        double t0 = nh_now();
        if (st == ST_AFTER_SERVER_HELLO_FIN)
            shutdown(fds[0], SHUT_WR);
        else if (st != ST_STALL)
            reset_fd(fds[0]), fds[0] = -1;
        assert_true(tu_run_until(loop, hs_done, &hs, 5));
        double took = nh_now() - t0;
        tu_run_until_count(loop, &c.calls, 1, 5);
        long idle = tu_idle_iterations(loop, 0.3);
        printf("# %s: handshake %s after %.3f s, stream error %s, close callback %d, %ld idle iterations\n",
               ST_NAMES[st], ts_err_name(hs.status), took, ts_err_name(ts_iostream_error(s)), c.calls, idle);
        assert_true(hs.status < 0);
        if (st == ST_STALL)
            assert_int_equal(hs.status, TS_ETIMEDOUT);
        else
            assert_true(hs.status == -ECONNRESET || hs.status == TS_ECLOSED || hs.status == TS_ESSL ||
                        hs.status == TS_ETRUNCATED || hs.status == -EPIPE);
        assert_int_equal(c.calls, 1);
        assert_true(idle <= 40);
        ts_iostream_free(s);
        peer_free(&p);
        if (fds[0] >= 0)
            close(fds[0]);
        tu_fixture_end(loop);
        assert_int_equal(tu_mem_live(), base); /* every library byte back once the loop is gone */
    }
    /* A peer that went away (or stalled) is the peer's business: nothing at WARN or above. */
    int warned = nh_log_count("", TS_LOG_WARN);
    nh_log_capture_stop();
    printf("# %d log lines at WARN or above\n", warned);
    assert_int_equal(warned, 0);
    SSL_CTX_free(sctx);
    SSL_CTX_free(cctx);
    alarm(0);
}

/* ---- renegotiation ---------------------------------------------------------------- */

typedef struct lines {
    int n, status;
    char got[2][16];
} lines;

static void on_line(ts_iostream *s, int status, const char *data, size_t len, void *arg)
{
    lines *l = arg;
    if (status != 0) {
        l->status = status;
        return;
    }
    if (len < sizeof l->got[0])
        memcpy(l->got[l->n], data, len);
    if (++l->n < 2 && ts_iostream_read_until(s, "\n", 1, 0, on_line, l) != 0)
        l->status = TS_ECLOSED;
}

static bool line_or_end(void *arg)
{
    lines *l = arg;
    return l->n == 2 || l->status != 0;
}

/* Handshakes the library's client stream with the hand-driven server. */
static bool client_handshake(peer *p, ts_iostream *c, tu_hs *hs)
{
    for (int i = 0; i < 2000 && !(hs->done && SSL_is_init_finished(p->ssl)); i++) {
        peer_in(p);
        if (!SSL_is_init_finished(p->ssl))
            SSL_do_handshake(p->ssl);
        peer_out(p, SIZE_MAX);
        tu_run_iterations(p->loop, 1);
    }
    (void)c;
    return hs->done && hs->status == 0 && SSL_is_init_finished(p->ssl);
}

/*
 * A library client stream (verifying localhost against the test CA) over
 * loopback TCP, handshaken with a hand-driven server limited to versions
 * [min, max]; @p reneg lets that server ask for renegotiation.
 */
static void client_vs_peer(ts_ioloop *loop, int min, int max, bool reneg, ts_iostream **c, peer *p)
{
    const tu_certs *certs = tu_certs_get();
    SSL_CTX *sctx = tu_tls_server_ctx(certs->server_cert, certs->server_key, min, max);
    SSL_CTX *cctx = tu_tls_client_ctx(certs->ca_cert, 0, 0);
    int fds[2];
    assert_int_equal(tu_tcp_pair(fds), 0);
    ts_ssl_options co = {.size = sizeof co, .ctx = cctx, .server_hostname = "localhost"};
    int err = 0;
    *c = ts_iostream_new_ssl(loop, fds[0], &co, NULL, &err);
    assert_non_null(*c);
    tu_hs hs = {0};
    assert_int_equal(ts_iostream_wait_for_handshake(*c, tu_hs_record, &hs), 0);
    peer_init(p, loop, fds[1], sctx, true);
    if (reneg)
        SSL_clear_options(p->ssl, SSL_OP_NO_RENEGOTIATION); /* the library's contexts refuse it */
    SSL_CTX_free(sctx); /* the stream and the SSL hold their own references */
    SSL_CTX_free(cctx);
    assert_true(client_handshake(p, *c, &hs));
}

static void test_renegotiation_request_refused(void **state)
{
    (void)state;
    alarm(30);
    ts_ioloop *loop = tu_fixture_begin(20);
    ts_iostream *c;
    peer p;
    client_vs_peer(loop, 0, TLS1_2_VERSION, true, &c, &p);
    lines l = {0};
    assert_int_equal(ts_iostream_read_until(c, "\n", 1, 0, on_line, &l), 0);
    assert_int_equal(SSL_write(p.ssl, "before\n", 7), 7);
    assert_int_equal(SSL_renegotiate(p.ssl), 1);
    SSL_do_handshake(p.ssl); /* the HelloRequest */
    SSL_write(p.ssl, "after\n", 6);
    peer_out(&p, SIZE_MAX);
    for (int i = 0; i < 200 && !line_or_end(&l); i++) {
        tu_run_iterations(loop, 1);
        peer_in(&p);
        char sink[256];
        SSL_read(p.ssl, sink, sizeof sink); /* takes the client's answer (an alert) */
        peer_out(&p, SIZE_MAX);
    }
    shutdown(p.fd, SHUT_WR);
    tu_run_until(loop, line_or_end, &l, 5);
    int pending = (int)SSL_renegotiate_pending(p.ssl);
    printf("# TLS 1.2 renegotiation request: %d line(s) delivered (\"%.6s\"), then %s; stream error %s; the "
           "server's renegotiation %s\n", l.n, l.got[0], l.n == 2 ? "the second line" : ts_err_name(l.status),
           ts_err_name(ts_iostream_error(c)), pending ? "never happened" : "completed");
    assert_true(pending); /* refused: the client never renegotiated */
    assert_true(l.n >= 1);
    assert_memory_equal(l.got[0], "before\n", 7);
    if (l.n == 2)
        assert_memory_equal(l.got[1], "after\n", 6);
    else
        assert_true(l.status == TS_ESSL || l.status == TS_ETRUNCATED || l.status == TS_ECLOSED ||
                    l.status == -ECONNRESET);
    ts_iostream_free(c);
    peer_free(&p);
    close(p.fd);
    tu_fixture_end(loop);
    alarm(0);
}

/* ---- KeyUpdate while our send buffer is full ------------------------------------------ */

#define KU_TOTAL (16u << 20)
#define KU_CHUNK (256u << 10)

typedef struct ku {
    int ok, failed;
    uint64_t checked, bad;
} ku;

static void on_ku_write(ts_iostream *s, int status, void *arg)
{
    (void)s;
    ku *k = arg;
    if (status == 0)
        k->ok++;
    else
        k->failed++;
}

/* The peer reads and checks the plaintext. */
static void peer_drain(peer *p, ku *k)
{
    static unsigned char buf[65536];
    peer_in(p);
    int n;
    while ((n = SSL_read(p->ssl, buf, sizeof buf)) > 0) {
        uint64_t bad;
        if (!tu_pattern_check(buf, k->checked, (size_t)n, &bad))
            k->bad++;
        k->checked += (uint64_t)n;
    }
    peer_out(p, SIZE_MAX); /* e.g. session tickets, alerts */
}

static void test_keyupdate_while_send_buffer_full(void **state)
{
    (void)state;
    alarm(120);
    ts_ioloop *loop = tu_fixture_begin(100);
    ts_iostream *c;
    peer p;
    client_vs_peer(loop, TLS1_3_VERSION, 0, false, &c, &p);
    /* 16 MiB queued to a peer that does not read: the client's socket fills up. */
    ku k = {0};
    static char chunk[KU_CHUNK];
    int writes = 0;
    for (uint64_t off = 0; off < KU_TOTAL; off += KU_CHUNK, writes++) {
        tu_pattern_fill(chunk, off, KU_CHUNK);
        assert_int_equal(ts_iostream_write(c, chunk, KU_CHUNK, on_ku_write, &k), 0);
    }
    tu_run_iterations(loop, 20);
    size_t queued = ts_iostream_write_buffer_size(c);
    assert_true(queued > 0); /* really blocked */
    /* The peer asks for a KeyUpdate and sends a line under its new keys. */
    assert_int_equal(SSL_key_update(p.ssl, SSL_KEY_UPDATE_REQUESTED), 1);
    assert_int_equal(SSL_write(p.ssl, "ping\n", 5), 5);
    peer_out(&p, SIZE_MAX);
    lines l = {.n = 1}; /* one line wanted */
    assert_int_equal(ts_iostream_read_until(c, "\n", 1, 0, on_line, &l), 0);
    tu_run_until(loop, line_or_end, &l, 5);
    printf("# KeyUpdate with %zu KiB queued: read %s\n", queued / 1024, l.status ? ts_err_name(l.status) : "ok");
    assert_int_equal(l.status, 0);
    assert_int_equal(l.n, 2);
    assert_memory_equal(l.got[1], "ping\n", 5);
    /* Now the peer reads: everything arrives, in order, under the client's updated keys. */
    double t0 = nh_now();
    while (k.ok + k.failed < writes && nh_now() - t0 < 60) {
        peer_drain(&p, &k);
        tu_run_iterations(loop, 1);
    }
    for (int i = 0; i < 100 && k.checked < KU_TOTAL; i++) {
        peer_drain(&p, &k);
        tu_run_iterations(loop, 1);
    }
    printf("# then %d of %d writes done, %llu of %u bytes checked, %llu bad runs, stream error %s\n", k.ok, writes,
           (unsigned long long)k.checked, KU_TOTAL, (unsigned long long)k.bad, ts_err_name(ts_iostream_error(c)));
    assert_int_equal(k.ok, writes);
    assert_int_equal(k.failed, 0);
    assert_true(k.checked == KU_TOTAL);
    assert_int_equal(k.bad, 0);
    ts_iostream_free(c);
    peer_free(&p);
    close(p.fd);
    tu_fixture_end(loop);
    alarm(0);
}

int main(void)
{
    tu_use_byte_allocator(); /* before the library allocates anything */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_handshake_abuse_at_every_stage),
        cmocka_unit_test(test_renegotiation_request_refused),
        cmocka_unit_test(test_keyupdate_while_send_buffer_full),
    };
    return cmocka_run_group_tests_name("adversarial_tls", tests, NULL, NULL);
}
