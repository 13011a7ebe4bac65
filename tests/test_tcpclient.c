/*
 * TCPClient, after Tornado's test/tcpclient_test.py: connect by literal and
 * by name, refused, unresolvable, timeout, source port, IPv6, the Happy
 * Eyeballs race (_Connector), TLS, and lifetime. No DNS query leaves the
 * machine: names are "localhost" (/etc/hosts) or go through a test resolver;
 * an "unreachable" address is a loopback listener whose backlog is full.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net_helpers.h"
#include "testutil.h"
#include "tls_certs.h"
#include "tstream.h"
/*
 * TLS streams come from tstream/ssl.h (ts_iostream_new_ssl,
 * ts_iostream_start_tls). -DTS_NET_TLS=0 builds without them: an ssl_ctx
 * option is then refused (TS_EINVAL / NULL).
 */
#ifndef TS_NET_TLS
#define TS_NET_TLS 1
#endif
#if TS_NET_TLS
#include "tstream/ssl.h"
#endif

typedef struct conn_rec {
    bool done;
    int status;
    ts_iostream *stream;
    char detail[256];
    double at; /* loop time of the callback */
    ts_ioloop *loop;
} conn_rec;

static void on_connected(int status, ts_iostream *stream, const char *detail, void *arg)
{
    conn_rec *r = arg;
    assert_false(r->done); /* exactly once */
    r->done = true;
    r->status = status;
    r->stream = stream;
    r->at = ts_ioloop_time(r->loop);
    snprintf(r->detail, sizeof(r->detail), "%s", detail ? detail : "");
    if (status == 0)
        assert_non_null(stream);
    else
        assert_null(stream);
}

/* Connects and waits; returns the record (its stream is the caller's). */
static conn_rec do_connect(ts_ioloop *loop, ts_tcpclient *cl, const char *host, int port,
                           const ts_tcpclient_options *o, double limit)
{
    conn_rec r = {.loop = loop};
    double t0 = ts_ioloop_time(loop);
    assert_int_equal(ts_tcpclient_connect(cl, host, port, o, on_connected, &r), 0);
    assert_false(r.done); /* never inline */
    tu_run_until_flag(loop, &r.done, limit);
    r.at -= t0;
    return r;
}

/* Writes a line and expects it echoed back. */
static void check_echo(ts_ioloop *loop, ts_iostream *s, const char *line)
{
    ts_future *w = ts_iostream_write_future(s, line, strlen(line));
    ts_future *f = ts_iostream_read_until_future(s, "\n", 1, 0);
    assert_int_equal(ts_ioloop_run_sync(loop, f, 5), 0);
    assert_int_equal(ts_future_error(f), 0);
    ts_bytes *b = ts_future_result(f);
    assert_int_equal(b->len, strlen(line));
    assert_memory_equal(b->data, line, b->len);
    ts_future_unref(f);
    ts_future_unref(w);
}

static int peer_family(ts_iostream *s)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    assert_int_equal(ts_iostream_peer_address(s, &ss, &len), 0);
    return ss.ss_family;
}

static int closed_port(int family)
{
    int fds[1];
    assert_int_equal(ts_bind_sockets(0, family == AF_INET6 ? "::1" : "127.0.0.1", family, -1, 0, fds, 1), 1);
    int port = nh_local_port(fds[0]);
    close(fds[0]);
    return port;
}

typedef struct fixture {
    ts_ioloop *loop;
    ts_tcpserver *srv;
    nh_echo_stats st;
    int port;
    ts_tcpclient *cl;
} fixture;

static int setup(void **state)
{
    fixture *fx = calloc(1, sizeof(*fx));
    fx->loop = tu_loop_new(30);
    fx->srv = nh_echo_server_new(fx->loop, NULL, &fx->st);
    /* Every interface, so both 127.0.0.1 and ::1 reach it on one port. */
    assert_int_equal(ts_tcpserver_listen(fx->srv, 0, NULL), 0);
    fx->port = ts_tcpserver_port(fx->srv);
    fx->cl = ts_tcpclient_new(fx->loop, NULL);
    assert_non_null(fx->cl);
    *state = fx;
    return 0;
}

static bool open_is_zero(void *arg) { return ((nh_echo_stats *)arg)->open == 0; }

static int teardown(void **state)
{
    fixture *fx = *state;
    ts_tcpclient_free(fx->cl);
    ts_tcpserver_free(fx->srv);
    nh_echo_close_all();
    tu_run_until(fx->loop, open_is_zero, &fx->st, 2);
    tu_loop_free(fx->loop);
    free(fx);
    return 0;
}

/* ---- basics ------------------------------------------------------------------- */

static void test_connect_ipv4_literal(void **state)
{
    fixture *fx = *state;
    conn_rec r = do_connect(fx->loop, fx->cl, "127.0.0.1", fx->port, NULL, 5);
    assert_int_equal(r.status, 0);
    assert_int_equal(peer_family(r.stream), AF_INET);
    check_echo(fx->loop, r.stream, "hello\n");
    ts_iostream_free(r.stream);
}

static void test_connect_localhost(void **state)
{
    fixture *fx = *state;
    /* "localhost" goes through getaddrinfo on the executor; /etc/hosts answers. */
    ts_tcpclient_options o = {.size = sizeof(o), .family = AF_INET};
    conn_rec r = do_connect(fx->loop, fx->cl, "localhost", fx->port, &o, 5);
    assert_int_equal(r.status, 0);
    check_echo(fx->loop, r.stream, "by name\n");
    ts_iostream_free(r.stream);
}

static void test_connect_ipv6(void **state)
{
    fixture *fx = *state;
    if (!nh_have_ipv6()) {
        printf("# skipped: ::1 cannot be bound or reached on this machine\n");
        skip();
    }
    conn_rec r = do_connect(fx->loop, fx->cl, "::1", fx->port, NULL, 5);
    assert_int_equal(r.status, 0);
    assert_int_equal(peer_family(r.stream), AF_INET6);
    check_echo(fx->loop, r.stream, "over v6\n");
    ts_iostream_free(r.stream);
}

static void test_connect_future(void **state)
{
    fixture *fx = *state;
    ts_future *f = ts_tcpclient_connect_future(fx->cl, "127.0.0.1", fx->port, NULL);
    assert_non_null(f);
    assert_int_equal(ts_ioloop_run_sync(fx->loop, f, 5), 0);
    assert_int_equal(ts_future_error(f), 0);
    ts_iostream *s = ts_future_steal_result(f);
    ts_future_unref(f);
    check_echo(fx->loop, s, "future\n");
    ts_iostream_free(s);

    /* Left in the future, the stream is closed and released with it. */
    f = ts_tcpclient_connect_future(fx->cl, "127.0.0.1", fx->port, NULL);
    assert_int_equal(ts_ioloop_run_sync(fx->loop, f, 5), 0);
    assert_int_equal(ts_future_error(f), 0);
    ts_future_unref(f);

    f = ts_tcpclient_connect_future(fx->cl, "127.0.0.1", closed_port(AF_INET), NULL);
    assert_int_equal(ts_ioloop_run_sync(fx->loop, f, 5), 0);
    assert_int_equal(ts_future_error(f), -ECONNREFUSED);
    ts_future_unref(f);

    /* Refused at once (a bad port): a failed future carrying the code, not NULL. */
    f = ts_tcpclient_connect_future(fx->cl, "127.0.0.1", 70000, NULL);
    assert_non_null(f);
    assert_true(ts_future_done(f));
    assert_int_equal(ts_future_error(f), TS_EINVAL);
    ts_future_unref(f);
}

static void test_bad_arguments(void **state)
{
    fixture *fx = *state;
    conn_rec r = {.loop = fx->loop};
    ts_tcpclient_options o = {.size = sizeof(o)};
    assert_int_equal(ts_tcpclient_connect(fx->cl, NULL, 80, NULL, on_connected, &r), TS_EINVAL);
    assert_int_equal(ts_tcpclient_connect(fx->cl, "127.0.0.1", 0, NULL, on_connected, &r), TS_EINVAL);
    assert_int_equal(ts_tcpclient_connect(fx->cl, "127.0.0.1", 70000, NULL, on_connected, &r), TS_EINVAL);
    assert_int_equal(ts_tcpclient_connect(fx->cl, "127.0.0.1", 80, NULL, NULL, &r), TS_EINVAL);
    o.family = AF_UNIX;
    assert_int_equal(ts_tcpclient_connect(fx->cl, "127.0.0.1", 80, &o, on_connected, &r), TS_EINVAL);
    o.family = 0;
    o.source_ip = "not an ip";
    assert_int_equal(ts_tcpclient_connect(fx->cl, "127.0.0.1", 80, &o, on_connected, &r), TS_EINVAL);
    ts_tcpclient_options tiny = {.size = 8};
    assert_int_equal(ts_tcpclient_connect(fx->cl, "127.0.0.1", 80, &tiny, on_connected, &r), TS_EINVAL);
    tu_run_iterations(fx->loop, 3);
    assert_false(r.done);
}

/* ---- failures ------------------------------------------------------------------ */

static void test_connection_refused(void **state)
{
    fixture *fx = *state;
    conn_rec r = do_connect(fx->loop, fx->cl, "127.0.0.1", closed_port(AF_INET), NULL, 5);
    assert_int_equal(r.status, -ECONNREFUSED);
}

static void test_unresolvable_host(void **state)
{
    fixture *fx = *state;
    /* A test resolver that fails: nothing is looked up anywhere. */
    nh_static_resolver *sr = nh_static_resolver_new();
    nh_static_resolver_fail(sr, "nonexistent.invalid", "Name or service not known (test resolver)");
    ts_tcpclient *cl = ts_tcpclient_new(fx->loop, nh_static_resolver_get(sr));
    conn_rec r = do_connect(fx->loop, cl, "nonexistent.invalid", 80, NULL, 5);
    assert_int_equal(r.status, TS_ERESOLVE);
    assert_string_equal(r.detail, "Name or service not known (test resolver)");
    ts_tcpclient_free(cl);
    ts_resolver_free(nh_static_resolver_get(sr));

    /* The default resolver fails a literal of the wrong family locally, with getaddrinfo-style text. */
    ts_tcpclient_options o = {.size = sizeof(o), .family = AF_INET};
    r = do_connect(fx->loop, fx->cl, "::1", 80, &o, 5);
    assert_int_equal(r.status, TS_ERESOLVE);
    assert_true(strlen(r.detail) > 0);
}

static void test_connect_timeout(void **state)
{
    fixture *fx = *state;
    nh_blackhole bh;
    assert_int_equal(nh_blackhole_open(&bh, AF_INET), 0);
    ts_tcpclient_options o = {.size = sizeof(o), .timeout = 0.5};
    conn_rec r = do_connect(fx->loop, fx->cl, "127.0.0.1", bh.port, &o, 5);
    assert_int_equal(r.status, TS_ETIMEDOUT);
    assert_true(r.at >= 0.45 && r.at < 1.5);
    nh_blackhole_close(&bh);
}

/* ---- source address ---------------------------------------------------------------- */

static void test_source_port_and_ip(void **state)
{
    fixture *fx = *state;
    int sport = closed_port(AF_INET);
    ts_tcpclient_options o = {.size = sizeof(o), .source_port = sport};
    conn_rec r = do_connect(fx->loop, fx->cl, "127.0.0.1", fx->port, &o, 5);
    assert_int_equal(r.status, 0);
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    assert_int_equal(ts_iostream_local_address(r.stream, &ss, &len), 0);
    assert_int_equal(ntohs(((struct sockaddr_in *)&ss)->sin_port), sport);
    check_echo(fx->loop, r.stream, "from a fixed port\n");
    assert_int_equal(fx->st.last_peer_port, sport); /* the server saw it too */
    ts_iostream_free(r.stream);

    o = (ts_tcpclient_options){.size = sizeof(o), .source_ip = "127.0.0.1"};
    r = do_connect(fx->loop, fx->cl, "127.0.0.1", fx->port, &o, 5);
    assert_int_equal(r.status, 0);
    ts_iostream_free(r.stream);

    /* A source of the other family cannot reach this address. */
    o.source_ip = "::1";
    r = do_connect(fx->loop, fx->cl, "127.0.0.1", fx->port, &o, 5);
    assert_int_equal(r.status, -EAFNOSUPPORT);

    /* A source port that is taken fails loudly (Tornado's test_source_port_fail). */
    o = (ts_tcpclient_options){.size = sizeof(o), .source_port = fx->port};
    r = do_connect(fx->loop, fx->cl, "127.0.0.1", fx->port, &o, 5);
    assert_int_equal(r.status, -EADDRINUSE);

    /* A source address that is not ours (Tornado's test_source_ip_fail). */
    o = (ts_tcpclient_options){.size = sizeof(o), .source_ip = "192.0.2.1"};
    r = do_connect(fx->loop, fx->cl, "127.0.0.1", fx->port, &o, 5);
    assert_int_equal(r.status, -EADDRNOTAVAIL);
}

/* ---- Happy Eyeballs ------------------------------------------------------------------- */

/*
 * The primary family (IPv6, listed first) is a blackhole; the secondary
 * (IPv4) works. The secondary must win, and only after the 0.3 s head start.
 */
static void test_happy_eyeballs_secondary_wins_after_delay(void **state)
{
    fixture *fx = *state;
    if (!nh_have_ipv6()) {
        printf("# skipped: needs ::1 for a second address family\n");
        skip();
    }
    nh_blackhole bh;
    assert_int_equal(nh_blackhole_open(&bh, AF_INET6), 0);
    nh_static_resolver *sr = nh_static_resolver_new();
    nh_static_resolver_add(sr, "dual.test", "::1", bh.port);
    nh_static_resolver_add(sr, "dual.test", "127.0.0.1", fx->port);
    ts_tcpclient *cl = ts_tcpclient_new(fx->loop, nh_static_resolver_get(sr));

    conn_rec r = do_connect(fx->loop, cl, "dual.test", 80, NULL, 5);
    assert_int_equal(r.status, 0);
    printf("# happy eyeballs: IPv4 secondary won after %.3f s\n", r.at);
    assert_int_equal(peer_family(r.stream), AF_INET);
    assert_true(r.at >= 0.28 && r.at < 1.0);
    check_echo(fx->loop, r.stream, "secondary\n");
    ts_iostream_free(r.stream);
    ts_tcpclient_free(cl);
    ts_resolver_free(nh_static_resolver_get(sr));
    nh_blackhole_close(&bh);
}

/* A primary that fails starts the secondary at once, without the 0.3 s wait. */
static void test_happy_eyeballs_failure_starts_secondary_now(void **state)
{
    fixture *fx = *state;
    if (!nh_have_ipv6()) {
        printf("# skipped: needs ::1 for a second address family\n");
        skip();
    }
    nh_static_resolver *sr = nh_static_resolver_new();
    nh_static_resolver_add(sr, "dual.test", "127.0.0.1", closed_port(AF_INET));
    nh_static_resolver_add(sr, "dual.test", "::1", fx->port);
    ts_tcpclient *cl = ts_tcpclient_new(fx->loop, nh_static_resolver_get(sr));
    conn_rec r = do_connect(fx->loop, cl, "dual.test", 80, NULL, 5);
    assert_int_equal(r.status, 0);
    assert_int_equal(peer_family(r.stream), AF_INET6);
    assert_true(r.at < 0.2);
    ts_iostream_free(r.stream);
    ts_tcpclient_free(cl);
    ts_resolver_free(nh_static_resolver_get(sr));
}

/* Within one family addresses are tried in order, the next as soon as one fails. */
static void test_happy_eyeballs_same_family_in_order(void **state)
{
    fixture *fx = *state;
    nh_static_resolver *sr = nh_static_resolver_new();
    nh_static_resolver_add(sr, "many.test", "127.0.0.1", closed_port(AF_INET));
    nh_static_resolver_add(sr, "many.test", "127.0.0.1", closed_port(AF_INET));
    nh_static_resolver_add(sr, "many.test", "127.0.0.1", fx->port);
    ts_tcpclient *cl = ts_tcpclient_new(fx->loop, nh_static_resolver_get(sr));
    conn_rec r = do_connect(fx->loop, cl, "many.test", 80, NULL, 5);
    assert_int_equal(r.status, 0);
    assert_true(r.at < 0.2);
    ts_iostream_free(r.stream);
    ts_tcpclient_free(cl);
    ts_resolver_free(nh_static_resolver_get(sr));
}

/* Every address fails: the last error is reported, once. */
static void test_happy_eyeballs_all_fail(void **state)
{
    fixture *fx = *state;
    nh_static_resolver *sr = nh_static_resolver_new();
    nh_static_resolver_add(sr, "dead.test", "127.0.0.1", closed_port(AF_INET));
    if (nh_have_ipv6())
        nh_static_resolver_add(sr, "dead.test", "::1", closed_port(AF_INET6));
    nh_static_resolver_add(sr, "dead.test", "127.0.0.1", closed_port(AF_INET));
    ts_tcpclient *cl = ts_tcpclient_new(fx->loop, nh_static_resolver_get(sr));
    conn_rec r = do_connect(fx->loop, cl, "dead.test", 80, NULL, 5);
    assert_int_equal(r.status, -ECONNREFUSED);
    tu_run_for(fx->loop, 0.4); /* nothing more arrives (on_connected asserts once) */
    ts_tcpclient_free(cl);
    ts_resolver_free(nh_static_resolver_get(sr));
}

/* on_attempt: what the hook saw, in order. */
typedef struct attempt_log {
    int n;
    char addr[4][TS_SOCKADDR_STRLEN];
    conn_rec *conn; /* the connect's own callback has not run yet at each attempt */
} attempt_log;

static void on_attempt(const struct sockaddr *addr, socklen_t addrlen, void *arg)
{
    attempt_log *log = arg;
    assert_true(log->n < 4);
    assert_false(log->conn->done);
    assert_true(ts_sockaddr_str(addr, addrlen, log->addr[log->n], sizeof log->addr[0]) > 0);
    log->n++;
}

/* The hook sees each address as it is tried: the refusing first one, then the one that answers. */
static void test_on_attempt_sees_each_address(void **state)
{
    fixture *fx = *state;
    bool v6 = nh_have_ipv6();
    int dead = closed_port(v6 ? AF_INET6 : AF_INET);
    char want[2][TS_SOCKADDR_STRLEN];
    snprintf(want[0], sizeof want[0], v6 ? "[::1]:%d" : "127.0.0.1:%d", dead);
    snprintf(want[1], sizeof want[1], "127.0.0.1:%d", fx->port);
    nh_static_resolver *sr = nh_static_resolver_new();
    nh_static_resolver_add(sr, "two.test", v6 ? "::1" : "127.0.0.1", dead);
    nh_static_resolver_add(sr, "two.test", "127.0.0.1", fx->port);
    ts_tcpclient *cl = ts_tcpclient_new(fx->loop, nh_static_resolver_get(sr));

    conn_rec r = {.loop = fx->loop};
    attempt_log log = {.conn = &r};
    ts_tcpclient_options o = {.size = sizeof o, .on_attempt = on_attempt, .on_attempt_arg = &log};
    assert_int_equal(ts_tcpclient_connect(cl, "two.test", 80, &o, on_connected, &r), 0);
    assert_int_equal(log.n, 0); /* never inside the call */
    tu_run_until_flag(fx->loop, &r.done, 5);
    assert_int_equal(r.status, 0);
    printf("# attempts: %s, then %s\n", log.addr[0], log.addr[1]);
    assert_int_equal(log.n, 2);
    assert_string_equal(log.addr[0], want[0]);
    assert_string_equal(log.addr[1], want[1]);
    ts_iostream_free(r.stream);

    /* A program built before the hook existed (size up to timeout): the fields past it are not read. */
    conn_rec r2 = {.loop = fx->loop};
    attempt_log log2 = {.conn = &r2};
    o.size = offsetof(ts_tcpclient_options, timeout) + sizeof(double);
    o.on_attempt_arg = &log2;
    assert_int_equal(ts_tcpclient_connect(cl, "two.test", 80, &o, on_connected, &r2), 0);
    tu_run_until_flag(fx->loop, &r2.done, 5);
    assert_int_equal(r2.status, 0);
    assert_int_equal(log2.n, 0);
    assert_int_equal(log.n, 2);
    ts_iostream_free(r2.stream);
    ts_tcpclient_free(cl);
    ts_resolver_free(nh_static_resolver_get(sr));
}

/* Both families blackholed: the overall timeout ends it and closes every attempt. */
static void test_happy_eyeballs_timeout_closes_attempts(void **state)
{
    fixture *fx = *state;
    nh_blackhole b4, b6;
    assert_int_equal(nh_blackhole_open(&b4, AF_INET), 0);
    bool v6 = nh_have_ipv6() && nh_blackhole_open(&b6, AF_INET6) == 0;
    nh_static_resolver *sr = nh_static_resolver_new();
    nh_static_resolver_add(sr, "hole.test", "127.0.0.1", b4.port);
    if (v6)
        nh_static_resolver_add(sr, "hole.test", "::1", b6.port);
    ts_tcpclient *cl = ts_tcpclient_new(fx->loop, nh_static_resolver_get(sr));
    int fds_before = tu_count_fds();
    ts_tcpclient_options o = {.size = sizeof(o), .timeout = 0.6};
    conn_rec r = do_connect(fx->loop, cl, "hole.test", 80, &o, 5);
    assert_int_equal(r.status, TS_ETIMEDOUT);
    assert_true(r.at >= 0.55 && r.at < 1.5);
    tu_run_iterations(fx->loop, 4);
    assert_int_equal(tu_count_fds(), fds_before); /* both attempts' sockets are closed */
    ts_tcpclient_free(cl);
    ts_resolver_free(nh_static_resolver_get(sr));
    nh_blackhole_close(&b4);
    if (v6)
        nh_blackhole_close(&b6);
}

/* Freeing the client with a connect in flight: the connect still completes. */
static void test_free_client_while_connecting(void **state)
{
    fixture *fx = *state;
    ts_tcpclient *cl = ts_tcpclient_new(fx->loop, NULL);
    conn_rec r = {.loop = fx->loop};
    assert_int_equal(ts_tcpclient_connect(cl, "localhost", fx->port, NULL, on_connected, &r), 0);
    ts_tcpclient_free(cl);
    tu_run_until_flag(fx->loop, &r.done, 5);
    assert_int_equal(r.status, 0);
    ts_iostream_free(r.stream);
}

/*
 * Out of memory at every allocation of a connect in turn: either the call
 * fails at once (and the callback never runs) or the callback runs once;
 * nothing leaks (cmocka's allocator checks) and nothing crashes.
 */
static void test_connect_out_of_memory_sweep(void **state)
{
    (void)state;
    int outcomes[3] = {0, 0, 0}; /* sync error, async error, success */
    for (long n = 0; n < 200; n++) {
        tu_use_test_allocator();
        ts_ioloop *loop = tu_loop_new(10);
        nh_echo_stats st = {0};
        ts_tcpserver *srv = nh_echo_server_new(loop, NULL, &st);
        assert_int_equal(ts_tcpserver_listen(srv, 0, "127.0.0.1"), 0);
        int port = ts_tcpserver_port(srv);
        ts_tcpclient *cl = ts_tcpclient_new(loop, NULL);
        conn_rec r = {.loop = loop};
        ts_tcpclient_options o = {.size = sizeof(o), .timeout = 2};
        tu_fail_alloc_after(n);
        int rc = ts_tcpclient_connect(cl, "127.0.0.1", port, &o, on_connected, &r);
        if (rc == 0)
            tu_run_until_flag(loop, &r.done, 3);
        tu_fail_alloc_after(-1);
        bool clean = rc == 0 && r.status == 0;
        outcomes[rc != 0 ? 0 : r.status != 0 ? 1 : 2]++;
        if (r.stream)
            ts_iostream_free(r.stream);
        ts_tcpclient_free(cl);
        ts_tcpserver_free(srv);
        nh_echo_close_all();
        tu_run_until(loop, open_is_zero, &st, 1);
        tu_loop_free(loop);
        tu_restore_allocator();
        if (clean && n > 40)
            break; /* past the last allocation: every later run succeeds */
    }
    printf("# OOM sweep: %d refused at once, %d failed later, %d connected\n", outcomes[0], outcomes[1],
           outcomes[2]);
    assert_true(outcomes[0] > 0 && outcomes[2] > 0);
}

/* ---- TLS ---------------------------------------------------------------------------------- */

static void test_tls_server_and_client(void **state)
{
    fixture *fx = *state;
#if !TS_NET_TLS
    (void)fx;
    printf("# skipped: built without TLS (TS_NET_TLS=0)\n");
    skip();
#else
    const tu_certs *certs = tu_certs_get();
    int err = 0;
    ts_ssl_context_options so = {.size = sizeof(so), .server_side = true, .cert_file = certs->server_cert,
                                 .key_file = certs->server_key};
    SSL_CTX *sctx = ts_ssl_context_new(&so, &err);
    assert_non_null(sctx);
    ts_ssl_context_options co = {.size = sizeof(co), .ca_file = certs->ca_cert};
    SSL_CTX *cctx = ts_ssl_context_new(&co, &err);
    assert_non_null(cctx);

    nh_echo_stats st = {0};
    ts_tcpserver_options sopt = {.size = sizeof(sopt), .ssl_ctx = sctx};
    ts_tcpserver *srv = nh_echo_server_new(fx->loop, &sopt, &st);
    SSL_CTX_free(sctx); /* the server holds its own reference */
    assert_int_equal(ts_tcpserver_listen(srv, 0, "127.0.0.1"), 0);
    int port = ts_tcpserver_port(srv);

    ts_tcpclient_options o = {.size = sizeof(o), .ssl_ctx = cctx, .timeout = 5};
    conn_rec r = do_connect(fx->loop, fx->cl, "localhost", port, &o, 10);
    assert_int_equal(r.status, 0);
    assert_true(ts_iostream_is_ssl(r.stream));
    assert_true(ts_iostream_ssl_handshake_done(r.stream));
    check_echo(fx->loop, r.stream, "over tls\n");
    ts_iostream_free(r.stream);

    /* The name is checked: the certificate is not for other.example. */
    o.server_hostname = "other.example";
    r = do_connect(fx->loop, fx->cl, "127.0.0.1", port, &o, 10);
    assert_int_equal(r.status, TS_ESSL);
    printf("# TLS name mismatch detail: %s\n", r.detail);
    assert_true(strlen(r.detail) > 0);

    SSL_CTX_free(cctx);
    ts_tcpserver_free(srv);
    nh_echo_close_all();
    tu_run_until(fx->loop, open_is_zero, &st, 2);
#endif
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_connect_ipv4_literal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connect_localhost, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connect_ipv6, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connect_future, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_arguments, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connection_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unresolvable_host, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connect_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_source_port_and_ip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_happy_eyeballs_secondary_wins_after_delay, setup, teardown),
        cmocka_unit_test_setup_teardown(test_happy_eyeballs_failure_starts_secondary_now, setup, teardown),
        cmocka_unit_test_setup_teardown(test_happy_eyeballs_same_family_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_happy_eyeballs_all_fail, setup, teardown),
        cmocka_unit_test_setup_teardown(test_happy_eyeballs_timeout_closes_attempts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_on_attempt_sees_each_address, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_client_while_connecting, setup, teardown),
        cmocka_unit_test(test_connect_out_of_memory_sweep),
        cmocka_unit_test_setup_teardown(test_tls_server_and_client, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
