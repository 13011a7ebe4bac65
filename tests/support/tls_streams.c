/* TLS stream fixtures (see tls_streams.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <unistd.h>

#include "testutil.h"
#include "tls_certs.h"
#include "tls_streams.h"

void tu_hs_record(ts_iostream *s, int status, void *arg)
{
    (void)s;
    tu_hs *h = arg;
    h->done = true;
    h->status = status;
}

static bool both_done(void *arg)
{
    tu_hs *h = arg;
    return h[0].done && h[1].done;
}

int tu_tls_stream_pair(ts_ioloop *loop, const ts_iostream_options *opts, SSL_CTX *sctx, SSL_CTX *cctx,
                       const char *host, ts_iostream **client, ts_iostream **server, int *rc_c, int *rc_s)
{
    const tu_certs *certs = tu_certs_get();
    int fds[2], err = 0;
    *client = *server = NULL;
    if (tu_tcp_pair(fds) < 0)
        return TS_EINTERNAL;
    SSL_CTX *own_s = sctx ? NULL : tu_tls_server_ctx(certs->server_cert, certs->server_key, 0, 0);
    SSL_CTX *own_c = cctx ? NULL : tu_tls_client_ctx(certs->ca_cert, 0, 0);
    ts_ssl_options so = {.size = sizeof so, .ctx = sctx ? sctx : own_s, .server_side = true};
    ts_ssl_options co = {.size = sizeof co, .ctx = cctx ? cctx : own_c, .server_hostname = host};
    *server = ts_iostream_new_ssl(loop, fds[1], &so, opts, &err);
    if (*server == NULL)
        close(fds[1]);
    *client = ts_iostream_new_ssl(loop, fds[0], &co, opts, &err);
    if (*client == NULL)
        close(fds[0]);
    SSL_CTX_free(own_s); /* the streams hold their own references */
    SSL_CTX_free(own_c);
    if (*client == NULL || *server == NULL) {
        ts_iostream_free(*client);
        ts_iostream_free(*server);
        *client = *server = NULL;
        return err ? err : TS_ENOMEM;
    }
    tu_hs hs[2] = {{0}};
    assert_int_equal(ts_iostream_wait_for_handshake(*client, tu_hs_record, &hs[0]), 0);
    assert_int_equal(ts_iostream_wait_for_handshake(*server, tu_hs_record, &hs[1]), 0);
    if (!tu_run_until(loop, both_done, hs, 10))
        fail_msg("TLS handshakes did not finish");
    if (rc_c)
        *rc_c = hs[0].status;
    if (rc_s)
        *rc_s = hs[1].status;
    return hs[0].status ? hs[0].status : hs[1].status;
}

int tu_make_tls_pair(ts_ioloop *loop, const ts_iostream_options *opts, ts_iostream **client, ts_iostream **server)
{
    int rc = tu_tls_stream_pair(loop, opts, NULL, NULL, "localhost", client, server, NULL, NULL);
    if (rc < 0 && *client) {
        ts_iostream_free(*client);
        ts_iostream_free(*server);
        *client = *server = NULL;
    }
    return rc;
}
