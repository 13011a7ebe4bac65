/*
 * A TLS stream whose fd is closed under it while its handshake waits on the
 * peer: a new read used to wait forever (the poller drops a closed fd, so
 * no event ever came). As in Tornado, the read fails with EBADF.
 */
#include <errno.h>
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

static void on_read(ts_iostream *s, int status, const char *data, size_t len, void *arg)
{
    (void)s, (void)data, (void)len;
    *(int *)arg = status;
}

static bool status_set(void *arg) { return *(int *)arg != 1; }

static void test_read_after_fd_closed_mid_handshake(void **state)
{
    (void)state;
    ts_ioloop *loop = tu_loop_new(20);
    const tu_certs *c = tu_certs_get();
    for (int server_side = 0; server_side < 2; server_side++) {
        int fds[2], err = 0;
        assert_int_equal(tu_tcp_pair(fds), 0);
        SSL_CTX *ctx = server_side ? tu_tls_server_ctx(c->server_cert, c->server_key, 0, 0)
                                   : tu_tls_client_ctx(c->ca_cert, 0, 0);
        ts_ssl_options so = {.size = sizeof so, .ctx = ctx, .server_side = server_side,
                             .server_hostname = "localhost"};
        ts_iostream *s = ts_iostream_new_ssl(loop, fds[1], &so, NULL, &err);
        assert_non_null(s);
        tu_run_iterations(loop, 2); /* the handshake has started and waits for the silent peer */
        assert_false(ts_iostream_ssl_handshake_done(s));
        close(fds[1]);              /* the fd goes away under the stream */
        static int status;
        status = 1;
        assert_int_equal(ts_iostream_read_until(s, "\n", 1, 100, on_read, &status), 0);
        assert_true(tu_run_until(loop, status_set, &status, 3));
        assert_int_equal(status, -EBADF);
        assert_true(ts_iostream_closed(s));
        ts_iostream_unref(s);
        SSL_CTX_free(ctx);
        close(fds[0]);
    }
    tu_loop_free(loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_read_after_fd_closed_mid_handshake),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
