/*
 * The STARTTLS pattern: read the command line, then upgrade the stream from
 * inside that read's callback. Detaching the fd used to free the read buffer
 * while the callback still held its view of the line (heap use-after-free
 * under ASan).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "testutil.h"
#include "tls_certs.h"
#include "tstream/ssl.h"

typedef struct upgrade {
    SSL_CTX *ctx;
    ts_iostream *tls;
    int rc;
    char seen[32];
    bool done;
} upgrade;

static void on_command(ts_iostream *s, int status, const char *data, size_t len, void *arg)
{
    upgrade *u = arg;
    assert_int_equal(status, 0);
    ts_ssl_options so = {.size = sizeof so, .ctx = u->ctx, .server_side = true};
    u->rc = ts_iostream_start_tls(s, true, &so, NULL, &u->tls, NULL, NULL);
    /* The line is still ours to read until we return. */
    assert_true(len < sizeof u->seen);
    memcpy(u->seen, data, len);
    u->done = true;
}

static void test_start_tls_inside_read_callback(void **state)
{
    (void)state;
    ts_ioloop *loop = tu_fixture_begin(20);
    const tu_certs *certs = tu_certs_get();
    int fds[2];
    assert_int_equal(tu_tcp_pair(fds), 0);
    ts_iostream *s = ts_iostream_new_socket(loop, fds[1], NULL);
    assert_non_null(s);
    upgrade u = {.ctx = tu_tls_server_ctx(certs->server_cert, certs->server_key, 0, 0), .rc = 1};
    assert_int_equal(ts_iostream_read_until(s, "\r\n", 2, 1024, on_command, &u), 0);
    assert_int_equal(write(fds[0], "STARTTLS\r\n", 10), 10);
    tu_run_until_flag(loop, &u.done, 5);
    assert_int_equal(u.rc, 0);
    assert_string_equal(u.seen, "STARTTLS\r\n");
    assert_non_null(u.tls);
    ts_iostream_unref(s); /* the caller's reference to the plaintext stream */
    ts_iostream_free(u.tls);
    SSL_CTX_free(u.ctx);
    close(fds[0]);
    tu_run_for(loop, 0.05);
    tu_fixture_end(loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_start_tls_inside_read_callback),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
