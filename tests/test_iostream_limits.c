/*
 * Size options at their extremes: each value a user may naturally pass must
 * give a working stream, never arithmetic that wraps around.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "net_helpers.h"
#include "testutil.h"
#include "tls_certs.h"

typedef struct got {
    int status;
    char line[64];
} got;

static void on_line(ts_iostream *s, int status, const char *data, size_t len, void *arg)
{
    (void)s;
    got *g = arg;
    g->status = status;
    if (status == 0 && len < sizeof g->line)
        memcpy(g->line, data, len);
}

static bool got_it(void *arg) { return ((got *)arg)->status != 1; }

/*
 * max_buffer_size = SIZE_MAX, the natural "unlimited": max - len + 1 wrapped
 * to 0, the stream asked the kernel for 0 bytes, took the 0 for EOF and
 * closed at its first read with no error recorded.
 */
static void test_unlimited_max_buffer_size_reads(void **state)
{
    (void)state;
    ts_ioloop *loop = tu_fixture_begin(20);
    size_t sizes[] = {SIZE_MAX, SIZE_MAX - 1, SIZE_MAX / 2 + 1, TS_IOSTREAM_MAX_BUFFER_LIMIT};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        int fds[2];
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
        ts_iostream_options o = {.size = sizeof o, .max_buffer_size = sizes[i], .read_chunk_size = sizes[i]};
        ts_iostream *s = ts_iostream_new_socket(loop, fds[1], &o);
        assert_non_null(s);
        got g = {.status = 1};
        assert_int_equal(ts_iostream_read_until(s, "\n", 1, 0, on_line, &g), 0);
        assert_int_equal(write(fds[0], "hello\n", 6), 6);
        assert_true(tu_run_until(loop, got_it, &g, 5));
        assert_int_equal(g.status, 0);
        assert_string_equal(g.line, "hello\n");
        assert_false(ts_iostream_closed(s));
        ts_iostream_free(s);
        close(fds[0]);
    }
    tu_fixture_end(loop);
}

/* TCPServer passes the same value through to every stream. */
static void test_unlimited_through_tcpserver(void **state)
{
    (void)state;
    ts_ioloop *loop = tu_fixture_begin(20);
    nh_echo_stats st = {0};
    ts_tcpserver_options o = {.size = sizeof o, .max_buffer_size = SIZE_MAX, .read_chunk_size = SIZE_MAX};
    ts_tcpserver *srv = nh_echo_server_new(loop, &o, &st);
    assert_int_equal(ts_tcpserver_listen(srv, 0, "127.0.0.1"), 0);
    int c = nh_connect(AF_INET, ts_tcpserver_port(srv), 2);
    assert_true(c >= 0);
    assert_int_equal(nh_write_all(c, "ping\n", 5), 0);
    tu_run_for(loop, 0.3);
    char line[16] = {0};
    assert_int_equal(nh_read_line(c, line, sizeof line - 1, 2), 5);
    assert_string_equal(line, "ping\n");
    assert_int_equal(st.lines, 1);
    close(c);
    tu_run_for(loop, 0.1);
    nh_echo_close_all();
    ts_tcpserver_free(srv);
    tu_run_for(loop, 0.05);
    tu_fixture_end(loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unlimited_max_buffer_size_reads),
        cmocka_unit_test(test_unlimited_through_tcpserver),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
