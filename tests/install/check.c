/*
 * Install check: compiled against an *installed* libtstream (pkg-config or
 * find_package(tstream)) by .ci/run. Exercises the public header, the
 * generated version header and a minimal ioloop round-trip.
 */
#include <tstream.h>
#include <tstream/ssl.h>

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static int fired;

static void on_timer(ts_ioloop *loop, void *arg)
{
    int *flag = arg;
    *flag = 1;
    ts_ioloop_stop(loop);
}

int main(void)
{
    const char *v = ts_version();

    printf("libtstream runtime version %s (headers %s)\n",
           v ? v : "(null)", TS_VERSION_STRING);
    if (v == NULL || strcmp(v, TS_VERSION_STRING) != 0) {
        fprintf(stderr, "check: version mismatch\n");
        return 1;
    }

    ts_ioloop *loop = ts_ioloop_new();
    if (loop == NULL) {
        fprintf(stderr, "check: ts_ioloop_new failed\n");
        return 1;
    }
    ts_ioloop_call_later(loop, 0.01, on_timer, &fired);
    ts_ioloop_start(loop);
    ts_ioloop_free(loop, false);

    if (!fired) {
        fprintf(stderr, "check: timer callback did not run\n");
        return 1;
    }
    /* The TLS API hands out OpenSSL objects: the consumer links OpenSSL through us. */
    int err = 0;
    ts_ssl_context_options o = {.size = sizeof o};
    SSL_CTX *ctx = ts_ssl_context_new(&o, &err);
    if (ctx == NULL) {
        fprintf(stderr, "check: ts_ssl_context_new failed: %s\n", ts_strerror(err));
        return 1;
    }
    SSL_CTX_free(ctx);
    printf("check: OK\n");
    return 0;
}
