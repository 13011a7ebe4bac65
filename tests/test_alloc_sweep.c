/*
 * Allocation-failure sweep. A scripted session on one loop, over plain TCP
 * and over TLS: a TCPServer listens and accepts; the client connects (and
 * handshakes), arms read/write timeouts, sends a line and a 200 KiB blob;
 * the server reads the line with read_until_regex and the blob with
 * read_bytes and echoes both; the client reads the line's echo, the blob's
 * through a future, checks them, half-closes and reads until the server,
 * seeing the EOF, closes. The session runs once with every allocation
 * counted (N of them), then again with allocation number k failing through
 * the library's allocation hooks (a single failure), k = 1, 2, ... until a
 * run makes fewer than k allocations.
 *
 * Every run must end:
 * - without hanging (the loop's time is bounded, and alarm() catches a loop
 *   that never returns);
 * - with nothing left reachable and half built: each stream made is closed
 *   and told so (its close callback ran) once the session is over;
 * - either completed (the client got both echoes intact) or failed cleanly:
 *   the failed allocation surfaced as TS_ENOMEM somewhere (a constructor or
 *   call returning it, a stream closed with it, the server's log line);
 * - with every block returned: the hooks count the blocks outstanding, and
 *   the loop, the server and the streams are freed before the count is read
 *   (ASan's leak check runs at exit on top).
 * OpenSSL's own allocations do not go through the hooks and are not swept.
 * SWEEP_TRACE=1 in the environment shows where each failed allocation is.
 */
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>
#define TRACE_ALLOC() __sanitizer_print_stack_trace()
#else
#define TRACE_ALLOC() ((void)0)
#endif
#include <ev.h>

#include "net_helpers.h"
#include "testutil.h"
#include "tls_certs.h"
#include "tls_streams.h"
#include "tstream/ssl.h"
#include "tstream/tcpserver.h"

#define BLOB_LEN (200 * 1024)
#define LINE "hello\n"
/* Loop time one run may take; a healthy one takes milliseconds. */
#define RUN_SECONDS 5.0

/* ---- allocation hooks: count calls, fail one, count blocks outstanding ---- */

static atomic_long g_calls;    /* malloc_fn / realloc_fn calls since the run began */
static atomic_long g_live;     /* blocks allocated through the hooks and not freed */
static long g_fail_at;         /* the call to fail (1-based), 0: none */
static atomic_bool g_injected; /* that call happened */

static bool fail_this_call(void)
{
    long k = atomic_fetch_add(&g_calls, 1) + 1;
    if (k != g_fail_at)
        return false;
    atomic_store(&g_injected, true);
    if (getenv("SWEEP_TRACE")) { /* where each failed allocation is (ASan builds print the stack) */
        fprintf(stderr, "failing allocation %ld\n", k);
        TRACE_ALLOC();
    }
    return true;
}

static void *h_malloc(size_t n)
{
    if (fail_this_call())
        return NULL;
    void *p = malloc(n);
    if (p)
        atomic_fetch_add(&g_live, 1);
    return p;
}

static void *h_realloc(void *p, size_t n)
{
    if (fail_this_call())
        return NULL;
    void *q = realloc(p, n);
    if (q && !p)
        atomic_fetch_add(&g_live, 1);
    return q;
}

static void h_free(void *p)
{
    if (p)
        atomic_fetch_sub(&g_live, 1);
    free(p);
}

static const ts_allocator g_hooks = {h_malloc, h_realloc, h_free};

/* ---- the session -------------------------------------------------------------- */

typedef struct sess {
    bool tls;
    SSL_CTX *sctx, *cctx;
    const char *blob; /* BLOB_LEN bytes, not from the hooks */
    ts_ioloop *loop;
    ts_tcpserver *srv;
    ts_iostream *client; /* the creator's reference */
    bool client_made, client_open, server_made, server_open;
    bool verified;      /* the client got both echoes intact */
    bool ended_cleanly; /* ... and then the server's close after its own half-close */
    int enomem;    /* TS_ENOMEM seen anywhere */
    int first_err; /* the first other error seen (for the report) */
} sess;

static sess *g_sess; /* for the log hook */

static void note(sess *S, int err)
{
    if (err == TS_ENOMEM)
        S->enomem++;
    else if (err < 0 && !S->first_err)
        S->first_err = err;
}

/* The library reports what it cannot hand to anyone (an accepted socket it could not wrap) in a log line. */
static void on_log(ts_log_level level, const char *msg, void *arg)
{
    (void)level, (void)arg;
    if (g_sess && (strstr(msg, "ENOMEM") || strstr(msg, "out of memory")))
        g_sess->enomem++;
}

/* Server side: echo a line, then BLOB_LEN bytes, then wait for the EOF. */

static void srv_on_line(ts_iostream *s, int status, const char *data, size_t len, void *arg);

/* A step failed (or the peer went away): record why and close, as an application would. */
static void fail_stream(sess *S, ts_iostream *s, int err)
{
    note(S, err);
    ts_iostream_close(s, err == TS_ECLOSED ? 0 : err);
}

static void srv_on_blob(ts_iostream *s, int status, const char *data, size_t len, void *arg)
{
    sess *S = arg;
    int rc = status;
    if (rc == 0)
        rc = ts_iostream_write(s, data, len, NULL, NULL);
    if (rc == 0)
        rc = ts_iostream_read_until(s, "\n", 1, 1024, srv_on_line, S); /* the client's EOF ends it */
    if (rc < 0)
        fail_stream(S, s, rc);
}

static void srv_on_line(ts_iostream *s, int status, const char *data, size_t len, void *arg)
{
    sess *S = arg;
    int rc = status;
    if (rc == 0)
        rc = ts_iostream_write(s, data, len, NULL, NULL);
    if (rc == 0)
        rc = ts_iostream_read_bytes(s, BLOB_LEN, false, srv_on_blob, S);
    if (rc < 0)
        fail_stream(S, s, rc);
}

static void srv_on_close(ts_iostream *s, void *arg)
{
    sess *S = arg;
    note(S, ts_iostream_error(s));
    S->server_open = false;
    ts_iostream_unref(s); /* the reference handle_stream was given */
}

static int srv_on_stream(ts_tcpserver *srv, ts_iostream *s, const struct sockaddr *addr, socklen_t addrlen,
                         void *arg)
{
    (void)srv, (void)addr, (void)addrlen;
    sess *S = arg;
    S->server_made = S->server_open = true;
    ts_iostream_set_close_callback(s, srv_on_close, S);
    int rc = ts_iostream_read_until_regex(s, "\r?\n", 1024, srv_on_line, S);
    if (rc < 0)
        fail_stream(S, s, rc);
    return 0;
}

/*
 * Client side: connect, arm timeouts, send the line, check its echo; send
 * the blob and read its echo through a future; then half-close and read
 * until the server's close.
 */

static void cli_on_eof(ts_iostream *s, int status, const char *data, size_t len, void *arg)
{
    (void)data;
    sess *S = arg;
    if (status < 0 || len != 0) {
        fail_stream(S, s, status < 0 ? status : TS_EINVAL);
        return;
    }
    S->ended_cleanly = true;
    ts_iostream_close(s, 0);
}

static void cli_on_shut(ts_iostream *s, int status, void *arg)
{
    if (status < 0)
        fail_stream(arg, s, status);
}

static void cli_on_blob(ts_future *f, void *arg)
{
    sess *S = arg;
    ts_iostream *s = S->client;
    ts_bytes *b = ts_future_result(f);
    int rc = ts_future_error(f);
    if (rc == 0) {
        S->verified = b->len == BLOB_LEN && memcmp(b->data, S->blob, BLOB_LEN) == 0;
        rc = ts_iostream_shutdown(s, cli_on_shut, S);
    }
    if (rc == 0)
        rc = ts_iostream_read_until_close(s, cli_on_eof, S);
    if (rc < 0)
        fail_stream(S, s, rc);
    ts_future_unref(f);
}

static void cli_on_line(ts_iostream *s, int status, const char *data, size_t len, void *arg)
{
    sess *S = arg;
    int rc = status;
    if (rc == 0 && (len != strlen(LINE) || memcmp(data, LINE, len) != 0))
        fail_msg("the line came back as '%.*s'", (int)len, data);
    if (rc == 0)
        rc = ts_iostream_write(s, S->blob, BLOB_LEN, NULL, NULL);
    if (rc == 0) {
        ts_future *f = ts_iostream_read_bytes_future(s, BLOB_LEN, false);
        rc = f ? ts_future_add_done_callback(f, cli_on_blob, S) : TS_ENOMEM;
        if (rc < 0)
            ts_future_unref(f);
    }
    if (rc < 0)
        fail_stream(S, s, rc);
}

static void cli_on_connect(ts_iostream *s, int status, void *arg)
{
    sess *S = arg;
    int rc = status;
    if (rc == 0)
        rc = ts_iostream_set_timeouts(s, 10, 10);
    if (rc == 0)
        rc = ts_iostream_write(s, LINE, strlen(LINE), NULL, NULL);
    if (rc == 0)
        rc = ts_iostream_read_until(s, "\n", 1, 1024, cli_on_line, S);
    if (rc < 0)
        fail_stream(S, s, rc);
}

static void cli_on_close(ts_iostream *s, void *arg)
{
    sess *S = arg;
    note(S, ts_iostream_error(s));
    S->client_open = false;
}

static void start_client(sess *S, int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    int err = TS_ENOMEM;
    if (S->tls) {
        ts_ssl_options so = {.size = sizeof so, .ctx = S->cctx, .server_hostname = "localhost"};
        S->client = ts_iostream_new_ssl(S->loop, fd, &so, NULL, &err);
    } else {
        S->client = ts_iostream_new_socket(S->loop, fd, NULL);
    }
    if (!S->client) {
        assert_int_equal(err, TS_ENOMEM); /* nothing else can fail here */
        note(S, err);
        close(fd);
        return;
    }
    S->client_made = S->client_open = true;
    ts_iostream_set_close_callback(S->client, cli_on_close, S);
    struct sockaddr_storage ss;
    socklen_t sl = nh_loopback(AF_INET, port, &ss);
    int rc = ts_iostream_connect(S->client, (struct sockaddr *)&ss, sl, cli_on_connect, S);
    if (rc < 0)
        fail_stream(S, S->client, rc);
}

static void on_tick(struct ev_loop *ev, ev_timer *w, int revents) { (void)ev, (void)w, (void)revents; }

/* Runs the loop (without the library's timers: those allocate) until @p done or RUN_SECONDS pass. */
static bool run_until(sess *S, bool (*done)(const sess *))
{
    struct ev_loop *ev = ts_ioloop_ev(S->loop);
    ev_timer tick; /* wakes the poll, so a stuck session is noticed */
    ev_timer_init(&tick, on_tick, 0.02, 0.02);
    ev_timer_start(ev, &tick);
    double end = nh_now() + RUN_SECONDS;
    while (!done(S) && nh_now() < end)
        ev_run(ev, EVRUN_ONCE);
    ev_timer_stop(ev, &tick);
    return done(S);
}

static bool session_over(const sess *S)
{
    return !S->client_open && !S->server_open;
}

/* What one run did. */
typedef struct outcome {
    long calls;    /* allocations the run asked for */
    bool injected; /* the failure happened */
    bool ended;    /* the session ended by itself (no stuck stream) */
    bool told;     /* after teardown every stream made was closed and told */
    bool verified;
    int enomem;
    int first_err;
    long live; /* blocks still allocated after teardown */
} outcome;

static void sigalrm(int sig)
{
    (void)sig;
    static const char msg[] = "test_alloc_sweep: a run hung (alarm)\n";
    ssize_t w = write(2, msg, sizeof msg - 1);
    (void)w;
    _exit(3);
}

static outcome run_session(bool tls, SSL_CTX *sctx, SSL_CTX *cctx, const char *blob, long fail_at)
{
    sess S = {.tls = tls, .sctx = sctx, .cctx = cctx, .blob = blob};
    outcome o = {0};
    g_sess = &S;
    atomic_store(&g_calls, 0);
    atomic_store(&g_live, 0);
    atomic_store(&g_injected, false);
    g_fail_at = fail_at;
    assert_int_equal(ts_set_allocator(&g_hooks), 0);
    alarm(30);

    S.loop = ts_ioloop_new();
    if (!S.loop) {
        note(&S, TS_ENOMEM);
        goto done;
    }
    ts_tcpserver_options to = {.size = sizeof to, .ssl_ctx = tls ? sctx : NULL};
    S.srv = ts_tcpserver_new(S.loop, srv_on_stream, &S, &to);
    int rc = S.srv ? ts_tcpserver_listen(S.srv, 0, "127.0.0.1") : TS_ENOMEM;
    if (rc < 0) {
        note(&S, rc);
    } else {
        start_client(&S, ts_tcpserver_port(S.srv));
        o.ended = run_until(&S, session_over);
    }
    /* Teardown: whatever is left is closed, told and released. */
    if (S.client_open)
        ts_iostream_close(S.client, 0);
    ts_tcpserver_free(S.srv);
    o.told = run_until(&S, session_over);
    ts_iostream_unref(S.client);
    ts_ioloop_free(S.loop, false);
done:
    alarm(0);
    assert_int_equal(ts_set_allocator(NULL), 0);
    g_sess = NULL;
    o.calls = atomic_load(&g_calls);
    o.injected = atomic_load(&g_injected);
    o.verified = S.verified && S.ended_cleanly;
    o.enomem = S.enomem;
    o.first_err = S.first_err;
    o.live = atomic_load(&g_live);
    if (!S.loop || !S.client_made)
        o.ended = o.told = true; /* nothing was started that could be stuck */
    return o;
}

/* Sweeps one transport; returns the number of defective runs (each printed). */
static int sweep(bool tls)
{
    const char *name = tls ? "tls" : "tcp";
    const tu_certs *c = tls ? tu_certs_get() : NULL;
    SSL_CTX *sctx = tls ? tu_tls_server_ctx(c->server_cert, c->server_key, 0, 0) : NULL;
    SSL_CTX *cctx = tls ? tu_tls_client_ctx(c->ca_cert, 0, 0) : NULL;
    char *blob = malloc(BLOB_LEN);
    assert_non_null(blob);
    for (size_t i = 0; i < BLOB_LEN; i++)
        blob[i] = (char)('a' + (i * 7 + i / 251) % 26);
    signal(SIGALRM, sigalrm);
    ts_log_set_handler(on_log, NULL, TS_LOG_DEBUG);

    outcome clean = run_session(tls, sctx, cctx, blob, 0);
    assert_true(clean.verified);
    assert_true(clean.ended);
    assert_int_equal(clean.enomem, 0);
    assert_int_equal(clean.live, 0);
    int defects = 0, completed = 0, failed = 0;
    long k;
    for (k = 1;; k++) {
        outcome o = run_session(tls, sctx, cctx, blob, k);
        if (!o.injected)
            break; /* the run made fewer than k allocations: every one has been failed */
        const char *why = NULL;
        if (!o.ended)
            why = "the session never ended (a stream stuck open)";
        else if (!o.told)
            why = "a stream closed at teardown was never told";
        else if (o.live != 0)
            why = "blocks leaked";
        else if (!o.verified && o.enomem == 0)
            why = "it failed without reporting TS_ENOMEM";
        if (why) {
            defects++;
            printf("DEFECT %s: failing allocation %ld of %ld: %s (verified %d, enomem %d, first error %s, %ld "
                   "blocks left)\n",
                   name, k, o.calls, why, o.verified, o.enomem, o.first_err ? ts_err_name(o.first_err) : "none",
                   o.live);
        } else if (o.verified) {
            /* the library recovered (e.g. a read retried later): fine, but worth knowing where */
            printf("%s: allocation %ld failed and the session still completed\n", name, k);
            completed++;
        } else {
            failed++;
        }
    }
    printf("%s: %ld allocation points in a session of %ld allocations; %d runs failed cleanly with TS_ENOMEM, "
           "%d completed despite the failure, %d defective\n",
           name, k - 1, clean.calls, failed, completed, defects);
    fflush(stdout);
    ts_log_set_handler(NULL, NULL, TS_LOG_WARN);
    free(blob);
    SSL_CTX_free(sctx);
    SSL_CTX_free(cctx);
    return defects;
}

/*
 * The constructor on its own, on a fresh loop (no spare loop nodes): a TLS
 * server stream over an accepted socket, its k-th allocation failing. It
 * must return NULL with TS_ENOMEM, or a stream that handshakes (or closes
 * with TS_ENOMEM). Its last allocation used to be the node queuing the run
 * that starts the handshake; when that failed, the stream came back anyway
 * and never handshook, closed or reported anything.
 */
static bool both_done(void *arg)
{
    tu_hs *hs = arg;
    return hs[0].done && hs[1].done;
}

static void test_new_ssl_server_each_allocation(void **state)
{
    (void)state;
    const tu_certs *c = tu_certs_get();
    SSL_CTX *sctx = tu_tls_server_ctx(c->server_cert, c->server_key, 0, 0);
    SSL_CTX *cctx = tu_tls_client_ctx(c->ca_cert, 0, 0);
    long k;
    for (k = 1;; k++) {
        ts_ioloop *loop = tu_loop_new(10);
        int fds[2], err = 0;
        assert_int_equal(tu_tcp_pair(fds), 0);
        ts_ssl_options co = {.size = sizeof co, .ctx = cctx, .server_hostname = "localhost"};
        ts_iostream *client = ts_iostream_new_ssl(loop, fds[0], &co, NULL, &err);
        assert_non_null(client);
        tu_hs hs[2] = {{0}};
        assert_int_equal(ts_iostream_wait_for_handshake(client, tu_hs_record, &hs[0]), 0);

        atomic_store(&g_calls, 0);
        atomic_store(&g_injected, false);
        g_fail_at = k;
        assert_int_equal(ts_set_allocator(&g_hooks), 0);
        ts_ssl_options so = {.size = sizeof so, .ctx = sctx, .server_side = true};
        ts_iostream *server = ts_iostream_new_ssl(loop, fds[1], &so, NULL, &err);
        assert_int_equal(ts_set_allocator(NULL), 0);
        bool injected = atomic_load(&g_injected);

        if (!server) {
            assert_true(injected);
            assert_int_equal(err, TS_ENOMEM);
            close(fds[1]); /* the caller's on failure */
            hs[1].done = true;
        } else {
            assert_int_equal(ts_iostream_wait_for_handshake(server, tu_hs_record, &hs[1]), 0);
        }
        if (!tu_run_until(loop, both_done, hs, 3))
            fail_msg("allocation %ld of the constructor failed: the server stream neither handshook nor closed", k);
        if (server) {
            /* handshaken, or closed with the failure */
            if (hs[1].status != 0)
                assert_int_equal(ts_iostream_error(server), TS_ENOMEM);
            ts_iostream_free(server);
        }
        ts_iostream_free(client);
        tu_loop_free(loop);
        if (!injected)
            break;
    }
    printf("ts_iostream_new_ssl (server side): %ld allocations, each failed in turn\n", k - 1);
    SSL_CTX_free(sctx);
    SSL_CTX_free(cctx);
}

/*
 * Completing a future cannot fail, so running its done callbacks must not
 * need memory: it used to take a loop node, and when none could be had the
 * callbacks never ran (a session waiting on the future hung).
 */
static void on_future_done(ts_future *f, void *arg)
{
    (void)f;
    *(bool *)arg = true;
}

static void test_future_done_callbacks_need_no_memory(void **state)
{
    (void)state;
    for (int err = 0; err < 2; err++) {
        ts_ioloop *loop = tu_loop_new(10);
        ts_future *f = ts_future_new(loop);
        bool ran = false;
        assert_int_equal(ts_future_add_done_callback(f, on_future_done, &ran), 0);
        atomic_store(&g_calls, 0);
        g_fail_at = 1; /* the first allocation completing it would make */
        assert_int_equal(ts_set_allocator(&g_hooks), 0);
        assert_int_equal(err ? ts_future_set_error(f, TS_ECLOSED) : ts_future_set_result(f, NULL, NULL), 0);
        assert_int_equal(ts_set_allocator(NULL), 0);
        tu_run_until_flag(loop, &ran, 2);
        ts_future_unref(f);
        tu_loop_free(loop);
    }
}

static void test_sweep_tcp(void **state)
{
    (void)state;
    assert_int_equal(sweep(false), 0);
}

static void test_sweep_tls(void **state)
{
    (void)state;
    assert_int_equal(sweep(true), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_ssl_server_each_allocation),
        cmocka_unit_test(test_future_done_callbacks_need_no_memory),
        cmocka_unit_test(test_sweep_tcp),
        cmocka_unit_test(test_sweep_tls),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
