/*
 * The TLS transport on its own: its ops driven directly over socket pairs
 * with poll(), no loop and no stream core. Covers the WANT mapping, partial
 * and moving-buffer writes, clean vs truncated EOF, TLS 1.3 session tickets
 * on the read path, openssl#10880, and SIGPIPE from every OpenSSL entry
 * point (each against a control that shows OpenSSL's own socket BIO dies).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tls_certs.h"
#include "tls_pump.h"

typedef struct fixture {
    int fd[2]; /* [0] client, [1] server */
    SSL_CTX *cctx, *sctx;
    ts__ssl_transport *c, *s;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    f->fd[0] = f->fd[1] = -1;
    *state = f;
    alarm(60); /* watchdog: a hung test dies instead of blocking the suite */
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    ts__ssl_transport *t[2] = {f->c, f->s};
    for (int i = 0; i < 2; i++) {
        if (t[i] != NULL) {
            ts__ssl_ops.close_fd(t[i]);
            ts__ssl_ops.free(t[i]);
        } else if (f->fd[i] >= 0) {
            close(f->fd[i]);
        }
    }
    SSL_CTX_free(f->cctx);
    SSL_CTX_free(f->sctx);
    free(f);
    alarm(0);
    return 0;
}

/* A connected TLS pair with versions [min, max] (0: defaults), handshaken. */
static void connect_pair(fixture *f, bool tcp, int min, int max)
{
    const tu_certs *certs = tu_certs_get();
    if (tcp)
        assert_int_equal(tu_tcp_pair(f->fd), 0);
    else
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, f->fd), 0);
    f->sctx = tu_tls_server_ctx(certs->server_cert, certs->server_key, min, max);
    f->cctx = tu_tls_client_ctx(certs->ca_cert, min, max);
    f->c = tu_tls_transport(f->fd[0], f->cctx, false, "localhost");
    f->s = tu_tls_transport(f->fd[1], f->sctx, true, NULL);
    int rc_c, rc_s;
    tu_tls_handshake(f->c, f->s, 10, &rc_c, &rc_s);
    assert_int_equal(rc_c, 0);
    assert_int_equal(rc_s, 0);
}

/* Reads until data, EOF or error (bounded), into buf. */
static ssize_t read_some(ts__ssl_transport *t, void *buf, size_t len, double timeout)
{
    double deadline = tu_now() + timeout;
    for (;;) {
        ssize_t k = ts__ssl_ops.read_from_fd(t, buf, len);
        if ((k != TS_EWANTREAD && k != TS_EWANTWRITE) || tu_now() > deadline)
            return k;
        struct pollfd p = {ts__ssl_ops.fileno(t), k == TS_EWANTWRITE ? POLLOUT : POLLIN, 0};
        poll(&p, 1, 20);
    }
}

static void write_all(ts__ssl_transport *t, const void *data, size_t len)
{
    size_t off = 0;
    double deadline = tu_now() + 10;
    while (off < len && tu_now() < deadline) {
        struct iovec iov = {(char *)data + off, len - off};
        ssize_t k = ts__ssl_ops.write_to_fd(t, &iov, 1);
        if (k > 0) {
            off += (size_t)k;
            continue;
        }
        assert_true(k == TS_EWANTWRITE || k == TS_EWANTREAD);
        struct pollfd p = {ts__ssl_ops.fileno(t), k == TS_EWANTWRITE ? POLLOUT : POLLIN, 0};
        poll(&p, 1, 20);
    }
    assert_int_equal(off, len);
}

static void test_handshake_versions_and_echo(void **state)
{
    fixture *f = *state;
    int versions[] = {TLS1_2_VERSION, TLS1_3_VERSION};
    const char *names[] = {"TLSv1.2", "TLSv1.3"};
    for (int i = 0; i < 2; i++) {
        if (i == 1) {
            teardown(state);
            setup(state);
            f = *state;
        }
        connect_pair(f, true, versions[i], versions[i]);
        SSL *ssl = ts__ssl_transport_ssl(f->c);
        assert_string_equal(SSL_get_version(ssl), names[i]);
        assert_true(ts__ssl_transport_handshake_done(f->c));
        assert_non_null(SSL_get0_peer_certificate(ssl));
        write_all(f->c, "ping", 4);
        char buf[16];
        assert_int_equal(read_some(f->s, buf, sizeof buf, 5), 4);
        assert_memory_equal(buf, "ping", 4);
        write_all(f->s, "pong!", 5);
        assert_int_equal(read_some(f->c, buf, sizeof buf, 5), 5);
        assert_memory_equal(buf, "pong!", 5);
    }
}

static void test_want_read_when_idle(void **state)
{
    fixture *f = *state;
    assert_int_equal(tu_tcp_pair(f->fd), 0);
    const tu_certs *certs = tu_certs_get();
    f->sctx = tu_tls_server_ctx(certs->server_cert, certs->server_key, 0, 0);
    f->s = tu_tls_transport(f->fd[1], f->sctx, true, NULL);
    /* A server with no ClientHello yet must wait for readability. */
    assert_int_equal(ts__ssl_ops.handshake(f->s), TS_EWANTREAD);
    char buf[8];
    assert_int_equal(ts__ssl_ops.read_from_fd(f->s, buf, sizeof buf), TS_EWANTREAD);
    assert_int_equal(ts__ssl_ops.pending(f->s), 0);
    assert_int_equal(ts__ssl_ops.get_fd_error(f->s), 0);
    assert_null(ts__ssl_ops.error_detail(f->s));
    assert_string_equal(ts__ssl_ops.name, "tls");
}

/* SSL_pending reports decrypted bytes the fd no longer shows. */
static void test_pending_after_short_read(void **state)
{
    fixture *f = *state;
    connect_pair(f, true, 0, 0);
    write_all(f->s, "0123456789", 10);
    char buf[4];
    assert_int_equal(read_some(f->c, buf, 3, 5), 3);
    assert_int_equal(ts__ssl_ops.pending(f->c), 7);
    assert_int_equal(ts__ssl_ops.read_from_fd(f->c, buf, 4), 4);
    assert_memory_equal(buf, "3456", 4);
}

/*
 * A large write against small socket buffers: SSL_write stops midway
 * (partial write mode reports progress, then TS_EWANTWRITE), and every retry
 * comes from a different buffer address (ACCEPT_MOVING_WRITE_BUFFER) or a
 * different iovec split of the same bytes (the gather path's retry rule).
 */
static void test_partial_and_moving_writes(void **state)
{
    fixture *f = *state;
    connect_pair(f, true, 0, 0);
    /* A small send buffer makes writes block midway. (Not a small receive
     * buffer: on loopback a window below the 64 KiB MSS stalls TCP.) */
    int small = 8192;
    setsockopt(f->fd[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    int wants = 0;
    assert_int_equal(tu_tls_pump(f->c, f->s, 8u << 20, TU_PUMP_FRESH, 30, &wants), 0);
    assert_true(wants > 0); /* the trap was really hit */
    assert_int_equal(tu_tls_pump(f->c, f->s, 4u << 20, TU_PUMP_SMALL, 30, &wants), 0);
    assert_true(wants > 0);
    /* And the other direction, TLS 1.2 records included. */
    assert_int_equal(tu_tls_pump(f->s, f->c, 2u << 20, TU_PUMP_SMALL, 30, NULL), 0);
}

static void test_close_notify_is_clean_eof(void **state)
{
    fixture *f = *state;
    connect_pair(f, true, 0, 0);
    write_all(f->c, "last", 4);
    ts__ssl_ops.shutdown(f->c);
    ts__ssl_ops.close_fd(f->c);
    char buf[16];
    assert_int_equal(read_some(f->s, buf, sizeof buf, 5), 4);
    assert_int_equal(read_some(f->s, buf, sizeof buf, 5), 0);
    assert_true(ts__ssl_transport_got_close_notify(f->s));
    assert_int_equal(ts__ssl_ops.get_fd_error(f->s), 0);
    assert_int_equal(ts__ssl_ops.read_from_fd(f->s, buf, sizeof buf), 0); /* EOF stays EOF */
}

/*
 * An EOF without close_notify ends the stream but is reported as
 * TS_ETRUNCATED: TLS 1.2; TLS 1.3 with the tickets read; TLS 1.3 with the
 * tickets unread (closing drains them, so the peer still gets FIN, not RST);
 * and a real reset (SO_LINGER 0), which surfaces as -ECONNRESET after the data.
 */
static void test_abrupt_eof_is_truncated(void **state)
{
    fixture *f = *state;
    for (int v = 0; v < 4; v++) {
        if (v > 0) {
            teardown(state);
            setup(state);
            f = *state;
        }
        int ver = v ? TLS1_3_VERSION : TLS1_2_VERSION;
        connect_pair(f, true, ver, ver);
        char buf[16];
        if (v == 1) /* take in the TLS 1.3 tickets */
            assert_int_equal(read_some(f->c, buf, sizeof buf, 0.2), TS_EWANTREAD);
        if (v >= 2) /* let them arrive, unread */
            usleep(20000);
        if (v == 3) {
            struct linger lg = {1, 0};
            setsockopt(f->fd[0], SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        }
        write_all(f->c, "data", 4);
        ts__ssl_ops.close_fd(f->c); /* no close_notify */
        assert_int_equal(read_some(f->s, buf, sizeof buf, 5), 4);
        ssize_t end = read_some(f->s, buf, sizeof buf, 5);
        assert_false(ts__ssl_transport_got_close_notify(f->s));
        if (v == 3) {
            assert_int_equal(end, -ECONNRESET);
            continue;
        }
        assert_int_equal(end, 0); /* still an end of stream */
        assert_int_equal(ts__ssl_ops.get_fd_error(f->s), TS_ETRUNCATED);
        assert_non_null(strstr(ts__ssl_ops.error_detail(f->s), "close_notify"));
    }
}

static int g_tickets;
static int count_ticket(SSL *ssl, SSL_SESSION *sess)
{
    (void)ssl, (void)sess;
    g_tickets++;
    return 0; /* not kept */
}

/* TLS 1.3 tickets arrive after the handshake and are consumed by a read that yields no data. */
static void test_session_tickets_on_read_path(void **state)
{
    fixture *f = *state;
    const tu_certs *certs = tu_certs_get();
    assert_int_equal(tu_tcp_pair(f->fd), 0);
    f->sctx = tu_tls_server_ctx(certs->server_cert, certs->server_key, TLS1_3_VERSION, 0);
    f->cctx = tu_tls_client_ctx(certs->ca_cert, TLS1_3_VERSION, 0);
    SSL_CTX_set_session_cache_mode(f->cctx, SSL_SESS_CACHE_CLIENT);
    SSL_CTX_sess_set_new_cb(f->cctx, count_ticket);
    g_tickets = 0;
    f->c = tu_tls_transport(f->fd[0], f->cctx, false, "localhost");
    f->s = tu_tls_transport(f->fd[1], f->sctx, true, NULL);
    int rc_c, rc_s;
    tu_tls_handshake(f->c, f->s, 10, &rc_c, &rc_s);
    assert_int_equal(rc_c | rc_s, 0);
    /* The fd is readable (tickets), yet there is no application data. */
    struct pollfd p = {f->fd[0], POLLIN, 0};
    assert_int_equal(poll(&p, 1, 2000), 1);
    char buf[16];
    assert_int_equal(ts__ssl_ops.read_from_fd(f->c, buf, sizeof buf), TS_EWANTREAD);
    for (double end = tu_now() + 2; g_tickets < 2 && tu_now() < end;)
        (void)read_some(f->c, buf, sizeof buf, 0.05);
    assert_int_equal(g_tickets, 2);
    write_all(f->s, "after", 5);
    assert_int_equal(read_some(f->c, buf, sizeof buf, 5), 5);
    assert_memory_equal(buf, "after", 5);
}

/*
 * openssl#10880: a client writes and closes without reading; the TLS 1.3
 * server's ticket write meets a closed (or reset) connection. Every byte
 * the client wrote must still come out of the server's read path.
 */
static void test_client_writes_and_closes_without_reading(void **state)
{
    fixture *f = *state;
    const tu_certs *certs = tu_certs_get();
    for (int round = 0; round < 20; round++) {
        teardown(state);
        setup(state);
        f = *state;
        assert_int_equal(tu_tcp_pair(f->fd), 0);
        f->sctx = tu_tls_server_ctx(certs->server_cert, certs->server_key, TLS1_3_VERSION, 0);
        f->cctx = tu_tls_client_ctx(certs->ca_cert, TLS1_3_VERSION, 0);
        f->c = tu_tls_transport(f->fd[0], f->cctx, false, "localhost");
        f->s = tu_tls_transport(f->fd[1], f->sctx, true, NULL);
        /* Client handshake first: the server answers only its first flight. */
        int rc = TS_EWANTREAD;
        double deadline = tu_now() + 10;
        while (tu_now() < deadline) {
            if ((rc = ts__ssl_ops.handshake(f->c)) == 0)
                break;
            (void)ts__ssl_ops.handshake(f->s); /* sends ServerHello..Finished, then waits */
            usleep(500);
        }
        assert_int_equal(rc, 0);
        if (round % 4 >= 2) {
            /* Variant: the tickets reach the client before it closes, so its close sends RST. */
            for (int i = 0; i < 50 && !ts__ssl_transport_handshake_done(f->s); i++, usleep(500))
                (void)ts__ssl_ops.handshake(f->s);
            assert_true(ts__ssl_transport_handshake_done(f->s));
            usleep(2000);
        }
        char msg[3000];
        tu_pattern_fill(msg, 0, sizeof msg);
        write_all(f->c, msg, sizeof msg);
        if (round % 2)
            ts__ssl_ops.shutdown(f->c); /* with and without close_notify */
        ts__ssl_ops.close_fd(f->c);
        usleep(2000);
        /* Now the server reads the client's Finished, writes its tickets into a closed connection, and reads. */
        char buf[4096];
        size_t got = 0;
        deadline = tu_now() + 10;
        for (;;) {
            ssize_t k = read_some(f->s, buf, sizeof buf, 5);
            if (k <= 0) {
                assert_true(k == 0 || k == -ECONNRESET || k == -EPIPE);
                break;
            }
            assert_true(tu_pattern_check(buf, got, (size_t)k, NULL));
            got += (size_t)k;
            assert_true(tu_now() < deadline);
        }
        assert_int_equal(got, sizeof msg);
    }
}

/* ---- SIGPIPE ------------------------------------------------------------ */

enum { PIPE_HANDSHAKE, PIPE_WRITE, PIPE_READ };

/*
 * Runs one SIGPIPE scenario in a child with SIGPIPE at its default action
 * (fatal). With @p openssl_bio the SSL object uses OpenSSL's own socket BIO
 * (the control: it must die); otherwise ours (it must survive and report
 * an error). Returns the child's wait status.
 */
static int sigpipe_child(int scenario, bool openssl_bio)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid > 0) {
        int st = 0;
        assert_int_equal(waitpid(pid, &st, 0), pid);
        return st;
    }
    signal(SIGPIPE, SIG_DFL);
    alarm(20); /* the child's own watchdog */
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    const tu_certs *certs = tu_certs_get();
    int fd[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, fd) < 0)
        _exit(10);
    SSL_CTX *cctx = tu_tls_client_ctx(certs->ca_cert, 0, 0);
    SSL_CTX *sctx = tu_tls_server_ctx(certs->server_cert, certs->server_key, 0, 0);
    ts__ssl_transport *c = tu_tls_transport(fd[0], cctx, false, "localhost");
    ts__ssl_transport *s = tu_tls_transport(fd[1], sctx, true, NULL);
    SSL *ssl = ts__ssl_transport_ssl(c);
    if (scenario != PIPE_HANDSHAKE) {
        int rc_c, rc_s;
        tu_tls_handshake(c, s, 10, &rc_c, &rc_s);
        if (rc_c || rc_s)
            _exit(11);
        /* Drain the tickets now so the read scenario meets only our record. */
        char tmp[64];
        (void)ts__ssl_ops.read_from_fd(c, tmp, sizeof tmp);
    }
    if (scenario == PIPE_READ) {
        /* An application-data record that cannot decrypt: the client answers with an alert (a write). */
        unsigned char junk[5 + 64] = {0x17, 0x03, 0x03, 0x00, 0x40};
        memset(junk + 5, 0xAB, 64);
        if (write(fd[1], junk, sizeof junk) != (ssize_t)sizeof junk)
            _exit(12);
    }
    ts__ssl_ops.close_fd(s); /* the peer is gone: any write now is EPIPE */
    int rc;
    if (openssl_bio) {
        SSL_set_fd(ssl, fd[0]); /* replaces our BIO: from here on only raw SSL calls */
        char buf[16];
        rc = scenario == PIPE_HANDSHAKE ? SSL_do_handshake(ssl)
             : scenario == PIPE_WRITE   ? SSL_write(ssl, "x", 1)
                                        : SSL_read(ssl, buf, sizeof buf);
        _exit(rc > 0 ? 13 : 14); /* reaching here means no SIGPIPE */
    }
    char buf[16];
    struct iovec iov = {"x", 1};
    for (int i = 0; i < 3; i++) { /* the first write may still succeed into the socket buffer */
        rc = scenario == PIPE_HANDSHAKE ? ts__ssl_ops.handshake(c)
             : scenario == PIPE_WRITE   ? (int)ts__ssl_ops.write_to_fd(c, &iov, 1)
                                        : (int)ts__ssl_ops.read_from_fd(c, buf, sizeof buf);
        if (rc < 0 && rc != TS_EWANTREAD && rc != TS_EWANTWRITE)
            break;
    }
    if (rc == -EPIPE || rc == TS_ESSL)
        _exit(0);
    _exit(15);
}

static void test_no_sigpipe(void **state)
{
    (void)state;
    const char *names[] = {"handshake", "SSL_write", "SSL_read"};
    for (int sc = PIPE_HANDSHAKE; sc <= PIPE_READ; sc++) {
        int st = sigpipe_child(sc, true);
        if (!(WIFSIGNALED(st) && WTERMSIG(st) == SIGPIPE))
            fail_msg("control for %s did not raise SIGPIPE (status %#x): scenario is not testing anything", names[sc],
                     st);
        st = sigpipe_child(sc, false);
        if (!(WIFEXITED(st) && WEXITSTATUS(st) == 0))
            fail_msg("%s over the tstream BIO: status %#x (signal %d)", names[sc], st,
                     WIFSIGNALED(st) ? WTERMSIG(st) : 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_handshake_versions_and_echo, setup, teardown),
        cmocka_unit_test_setup_teardown(test_want_read_when_idle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pending_after_short_read, setup, teardown),
        cmocka_unit_test_setup_teardown(test_partial_and_moving_writes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_notify_is_clean_eof, setup, teardown),
        cmocka_unit_test_setup_teardown(test_abrupt_eof_is_truncated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_session_tickets_on_read_path, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_writes_and_closes_without_reading, setup, teardown),
        cmocka_unit_test(test_no_sigpipe),
    };
    tu_certs_get();
    if (getenv("TS_TEST_FILTER"))
        cmocka_set_test_filter(getenv("TS_TEST_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
