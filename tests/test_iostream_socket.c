/*
 * Socket streams: connect (Tornado's test_connection_refused,
 * test_write_while_connecting, test_gaierror's immediate-failure analogue),
 * argument errors, TCP_NODELAY and addresses, closing inside the connect
 * callback, and Tornado's test_inline_read_error.
 */
#include "testutil.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static ts_ioloop *g_loop;

static int setup(void **state)
{
    (void)state;
    g_loop = tu_fixture_begin(20);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tu_fixture_end(g_loop);
    g_loop = NULL;
    return 0;
}

typedef struct rec {
    int calls, status, order;
} rec;
static int g_order;

static void on_done(ts_iostream *s, int status, void *arg)
{
    (void)s;
    rec *r = arg;
    r->calls++, r->status = status, r->order = ++g_order;
}

static void on_close(ts_iostream *s, void *arg)
{
    (void)s;
    rec *r = arg;
    r->calls++, r->order = ++g_order;
}

static int listener(struct sockaddr_in *a)
{
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    memset(a, 0, sizeof(*a));
    a->sin_family = AF_INET;
    a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(*a);
    assert_int_equal(bind(l, (struct sockaddr *)a, sizeof(*a)), 0);
    assert_int_equal(listen(l, 8), 0);
    assert_int_equal(getsockname(l, (struct sockaddr *)a, &len), 0);
    return l;
}

static ts_iostream *new_client(int family)
{
    int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    ts_iostream *s = ts_iostream_new_socket(g_loop, fd, NULL);
    assert_non_null(s);
    return s;
}

static void test_write_while_connecting(void **state)
{
    (void)state;
    struct sockaddr_in a;
    int l = listener(&a);
    ts_iostream *c = new_client(AF_INET);
    rec conn = {0}, w = {0};
    assert_int_equal(ts_iostream_connect(c, (struct sockaddr *)&a, sizeof a, on_done, &conn), 0);
    assert_int_equal(ts_iostream_connect(c, (struct sockaddr *)&a, sizeof a, on_done, &conn), TS_EBUSY);
    assert_int_equal(ts_iostream_write(c, "GET / HTTP/1.0\r\n\r\n", 18, on_done, &w), 0);
    assert_int_equal(conn.calls, 0);
    tu_run_until_count(g_loop, &w.calls, 1, 5);
    assert_int_equal(conn.status, 0);
    assert_int_equal(w.status, 0);
    assert_true(conn.order < w.order); /* connect resolves before the write queued while connecting */
    int sfd = accept(l, NULL, NULL);
    char buf[32];
    assert_int_equal(read(sfd, buf, sizeof buf), 18);
    assert_memory_equal(buf, "GET / HTTP/1.0\r\n\r\n", 18);
    /* Addresses and TCP_NODELAY. */
    struct sockaddr_storage peer, local;
    socklen_t plen, llen;
    assert_int_equal(ts_iostream_peer_address(c, &peer, &plen), 0);
    assert_int_equal(((struct sockaddr_in *)&peer)->sin_port, a.sin_port);
    assert_int_equal(ts_iostream_local_address(c, &local, &llen), 0);
    assert_int_equal(llen, sizeof(struct sockaddr_in));
    assert_int_equal(ts_iostream_set_nodelay(c, true), 0);
    int v = 0;
    socklen_t vl = sizeof v;
    getsockopt(ts_iostream_fileno(c), IPPROTO_TCP, TCP_NODELAY, &v, &vl);
    assert_int_equal(v, 1);
    ts_future *f = ts_iostream_read_until_close_future(c);
    assert_int_equal(write(sfd, "Hello", 5), 5);
    close(sfd);
    assert_int_equal(ts_ioloop_run_sync(g_loop, f, 5), 0);
    assert_string_equal(((ts_bytes *)ts_future_result(f))->data, "Hello");
    ts_future_unref(f);
    assert_int_equal(ts_iostream_set_nodelay(c, true), TS_ECLOSED);
    ts_iostream_free(c);
    close(l);
}

static void test_connection_refused(void **state)
{
    (void)state;
    /* A bound socket that does not listen refuses connections. */
    int b = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    assert_int_equal(bind(b, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(b, (struct sockaddr *)&a, &len), 0);
    ts_iostream *c = new_client(AF_INET);
    rec closed = {0}, w = {0};
    ts_iostream_set_close_callback(c, on_close, &closed);
    ts_future *f = ts_iostream_connect_future(c, (struct sockaddr *)&a, sizeof a);
    assert_int_equal(ts_iostream_write(c, "x", 1, on_done, &w), 0); /* queued while connecting */
    tu_run_until_count(g_loop, &closed.calls, 1, 5);
    assert_int_equal(ts_future_error(f), -ECONNREFUSED);
    assert_int_equal(ts_iostream_error(c), -ECONNREFUSED);
    assert_int_equal(w.status, -ECONNREFUSED);
    assert_true(w.order < closed.order);
    ts_future_unref(f);
    ts_iostream_unref(c);
    close(b);
}

static void test_connect_fails_at_once(void **state)
{
    (void)state;
    /* Tornado's test_gaierror analogue: connect() itself fails; reported through the callback. */
    ts_iostream *c = new_client(AF_UNIX);
    struct sockaddr_un u = {.sun_family = AF_UNIX};
    strcpy(u.sun_path, "/nonexistent/libtstream-test.sock");
    rec conn = {0}, closed = {0};
    ts_iostream_set_close_callback(c, on_close, &closed);
    assert_int_equal(ts_iostream_connect(c, (struct sockaddr *)&u, sizeof u, on_done, &conn), 0);
    assert_int_equal(conn.calls, 0); /* not inside the call */
    tu_run_until_count(g_loop, &closed.calls, 1, 5);
    assert_int_equal(conn.status, -ENOENT);
    assert_true(conn.order < closed.order);
    assert_int_equal(ts_iostream_error(c), -ENOENT);
    assert_int_equal(ts_iostream_connect(c, (struct sockaddr *)&u, sizeof u, on_done, &conn), TS_ECLOSED);
    ts_iostream_unref(c);
}

static void test_connect_needs_a_socket(void **state)
{
    (void)state;
    int p[2];
    assert_int_equal(pipe(p), 0);
    ts_iostream *s = ts_iostream_new_pipe(g_loop, p[0], NULL);
    struct sockaddr_in a = {.sin_family = AF_INET};
    rec r = {0};
    /* A pipe's transport has no connect, address or socket option ops. */
    assert_int_equal(ts_iostream_connect(s, (struct sockaddr *)&a, sizeof a, on_done, &r), TS_ENOTSUP);
    assert_int_equal(ts_iostream_connect(s, NULL, 0, on_done, &r), TS_EINVAL);
    assert_int_equal(ts_iostream_set_nodelay(s, true), TS_ENOTSUP);
    struct sockaddr_storage ss;
    socklen_t sl;
    assert_int_equal(ts_iostream_peer_address(s, &ss, &sl), TS_ENOTSUP);
    assert_int_equal(ts_iostream_local_address(s, &ss, &sl), TS_ENOTSUP);
    /* A socket stream over a pipe has them, but connect() finds no socket: refused, nothing started. */
    int q[2];
    assert_int_equal(pipe(q), 0);
    ts_iostream *n = ts_iostream_new_socket(g_loop, q[0], NULL);
    assert_int_equal(ts_iostream_connect(n, (struct sockaddr *)&a, sizeof a, on_done, &r), TS_ENOTSUP);
    assert_int_equal(ts_iostream_set_nodelay(n, true), -ENOTSOCK);
    assert_false(ts_iostream_closed(n));
    ts_iostream_free(n);
    close(q[1]);
    ts_iostream_free(s);
    close(p[1]);
    assert_null(ts_iostream_new_socket(g_loop, -1, NULL));
    assert_null(ts_iostream_new_pipe(g_loop, -1, NULL));
    tu_run_iterations(g_loop, 1);
    assert_int_equal(r.calls, 0);
}

static void drop_in_connect(ts_iostream *s, int status, void *arg)
{
    rec *r = arg;
    r->calls++, r->status = status;
    ts_iostream_free(s);
}

static void test_release_inside_connect_callback(void **state)
{
    (void)state;
    struct sockaddr_in a;
    int l = listener(&a);
    ts_iostream *c = new_client(AF_INET);
    rec conn = {0}, w = {0};
    assert_int_equal(ts_iostream_connect(c, (struct sockaddr *)&a, sizeof a, drop_in_connect, &conn), 0);
    assert_int_equal(ts_iostream_write(c, "late", 4, on_done, &w), 0);
    tu_run_until_count(g_loop, &w.calls, 1, 5);
    assert_int_equal(conn.status, 0);
    /* The write may have gone out before the close or been failed by it; either way it was told once. */
    assert_true(w.status == 0 || w.status == TS_ECLOSED);
    tu_run_for(g_loop, 0.01);
    assert_int_equal(w.calls, 1);
    close(l);
}

static void test_inline_read_error(void **state)
{
    (void)state;
    /* Tornado's test_inline_read_error: the fd turns bad under the stream; the read fails (from the loop). */
    struct sockaddr_in a;
    int l = listener(&a);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    ts_iostream *s = ts_iostream_new_socket(g_loop, sv[0], NULL);
    int spare = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0); /* unconnected: recv says ENOTCONN */
    assert_true(dup2(spare, sv[0]) == sv[0]);
    close(spare);
    rec r = {0};
    ts_future *f = ts_iostream_read_bytes_future(s, 1, false);
    assert_false(ts_future_done(f));
    assert_int_equal(ts_ioloop_run_sync(g_loop, f, 5), 0);
    assert_int_equal(ts_future_error(f), -ENOTCONN);
    assert_true(ts_iostream_closed(s));
    ts_future_unref(f);
    ts_iostream_unref(s);
    close(sv[1]);
    close(l);
    (void)r;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_write_while_connecting, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connection_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connect_fails_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connect_needs_a_socket, setup, teardown),
        cmocka_unit_test_setup_teardown(test_release_inside_connect_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_inline_read_error, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
