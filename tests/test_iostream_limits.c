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

/* read_into's completion: its status, or the byte count when it succeeded. */
static void on_into(ts_iostream *s, int status, size_t n, void *arg)
{
    (void)s;
    ((got *)arg)->status = status < 0 ? status : (int)n;
}

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

/*
 * More than max_buffer_size bytes left buffered at a clean close (one read
 * took the limit plus the byte that proves it full, and the pending read, an
 * empty regex match, was answered within it; then the stream was closed, as
 * at the peer's EOF): read_until_close must not answer with the first
 * max_buffer_size of them as if they were everything. Found by
 * fuzz_read_model.
 */
static void test_until_close_past_limit_after_clean_close(void **state)
{
    (void)state;
    ts_ioloop *loop = tu_fixture_begin(20);
    int fds[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
    ts_iostream_options o = {.size = sizeof o, .max_buffer_size = 64};
    ts_iostream *s = ts_iostream_new_socket(loop, fds[1], &o);
    assert_non_null(s);
    char data[65];
    memset(data, 'a', sizeof data);
    assert_int_equal(write(fds[0], data, sizeof data), (ssize_t)sizeof data);
    close(fds[0]);
    got g = {.status = 1};
    assert_int_equal(ts_iostream_read_until_regex(s, "x*", 0, on_line, &g), 0);
    assert_true(tu_run_until(loop, got_it, &g, 5));
    assert_int_equal(g.status, 0);
    ts_iostream_close(s, 0);
    size_t kept = ts_iostream_read_buffer_size(s);
    assert_true(kept == 65); /* one read took it all: the limit and the byte past it */
    /* the whole stream until close does not fit the limit: refused, not cut short */
    assert_int_equal(ts_iostream_read_until_close(s, on_line, &g), TS_ECLOSED);
    /* read_into fills the caller's buffer, so all 65 bytes still come out of it */
    char into[65];
    g.status = 1;
    assert_int_equal(ts_iostream_read_into(s, into, sizeof into, false, on_into, &g), 0);
    assert_true(tu_run_until(loop, got_it, &g, 5));
    assert_int_equal(g.status, 65);
    assert_memory_equal(into, data, sizeof into);
    ts_iostream_free(s);
    tu_fixture_end(loop);
}

/* A delimiter length past 32 bits is refused up front (the pending read keeps it in 32 bits); nothing is read. */
static void test_delimiter_length_past_32_bits_refused(void **state)
{
    (void)state;
#if SIZE_MAX > UINT32_MAX
    ts_ioloop *loop = tu_fixture_begin(20);
    int fds[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
    ts_iostream *s = ts_iostream_new_socket(loop, fds[1], NULL);
    assert_non_null(s);
    got g = {.status = 1};
    assert_int_equal(ts_iostream_read_until(s, "x", (size_t)UINT32_MAX + 1, 0, on_line, &g), TS_EINVAL);
    assert_false(ts_iostream_reading(s));
    /* the stream is untouched: a normal read works */
    assert_int_equal(write(fds[0], "ab\n", 3), 3);
    assert_int_equal(ts_iostream_read_until(s, "\n", 1, 0, on_line, &g), 0);
    assert_true(tu_run_until(loop, got_it, &g, 5));
    assert_int_equal(g.status, 0);
    ts_iostream_free(s);
    close(fds[0]);
    tu_fixture_end(loop);
#endif
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
        cmocka_unit_test(test_until_close_past_limit_after_clean_close),
        cmocka_unit_test(test_delimiter_length_past_32_bits_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
