/* Connected stream pairs, one maker per transport (see stream_pairs.h). */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "stream_pairs.h"
#include "tls_streams.h"

int tu_tcp_socketpair(int fds[2])
{
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (l < 0)
        return -errno;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    int c = -1, err = 0;
    if (bind(l, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(l, 1) < 0 ||
        getsockname(l, (struct sockaddr *)&a, &len) < 0)
        goto fail;
    c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c < 0 || connect(c, (struct sockaddr *)&a, sizeof(a)) < 0)
        goto fail;
    fds[1] = accept4(l, NULL, NULL, SOCK_CLOEXEC);
    if (fds[1] < 0)
        goto fail;
    fds[0] = c;
    close(l);
    return 0;
fail:
    err = -errno;
    if (c >= 0)
        close(c);
    close(l);
    return err;
}

static int wrap(ts_ioloop *loop, const ts_iostream_options *opts, int cfd, int sfd, bool pipe, ts_iostream **client,
                ts_iostream **server)
{
    *client = pipe ? ts_iostream_new_pipe(loop, cfd, opts) : ts_iostream_new_socket(loop, cfd, opts);
    *server = pipe ? ts_iostream_new_pipe(loop, sfd, opts) : ts_iostream_new_socket(loop, sfd, opts);
    if (*client && *server)
        return 0;
    if (*client)
        ts_iostream_free(*client);
    else
        close(cfd);
    if (*server)
        ts_iostream_free(*server);
    else
        close(sfd);
    *client = *server = NULL;
    return TS_ENOMEM;
}

static int make_tcp(ts_ioloop *loop, const ts_iostream_options *opts, ts_iostream **client, ts_iostream **server)
{
    int fds[2];
    int r = tu_tcp_socketpair(fds);
    return r ? r : wrap(loop, opts, fds[0], fds[1], false, client, server);
}

static int make_unix(ts_ioloop *loop, const ts_iostream_options *opts, ts_iostream **client, ts_iostream **server)
{
    int fds[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) < 0)
        return -errno;
    return wrap(loop, opts, fds[0], fds[1], false, client, server);
}

static int make_pipe(ts_ioloop *loop, const ts_iostream_options *opts, ts_iostream **client, ts_iostream **server)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) < 0)
        return -errno;
    /* The client writes into fds[1]; the server reads from fds[0]. */
    return wrap(loop, opts, fds[1], fds[0], true, client, server);
}

const tu_stream_pair_kind tu_stream_pairs[] = {
    {"tcp", make_tcp, true, true},
    {"unix", make_unix, true, true},
    {"pipe", make_pipe, false, false},
    {"tls", tu_make_tls_pair, true, true}, /* TLS over loopback TCP, verified (tls_streams.c) */
};
const int tu_stream_pairs_count = (int)(sizeof(tu_stream_pairs) / sizeof(tu_stream_pairs[0]));

/* ---- the shared suite's fixture ------------------------------------------ */

#include <stdio.h>
#include <stdlib.h>

#include "testutil.h"

tu_fx tu_F;

int tu_fx_setup(void **state)
{
    memset(&tu_F, 0, sizeof(tu_F));
    tu_F.kind = *state;
    tu_F.fds_before = tu_count_fds();
    tu_F.loop = tu_loop_new(30);
    return 0;
}

int tu_fx_teardown(void **state)
{
    (void)state;
    ts_iostream_free(tu_F.rs);
    ts_iostream_free(tu_F.ws);
    tu_F.rs = tu_F.ws = NULL;
    tu_loop_free(tu_F.loop);
    tu_F.loop = NULL;
    assert_int_equal(tu_count_fds(), tu_F.fds_before);
    return 0;
}

void tu_fx_pair(const ts_iostream_options *opts)
{
    ts_iostream_free(tu_F.rs);
    ts_iostream_free(tu_F.ws);
    assert_int_equal(tu_F.kind->make_pair(tu_F.loop, opts, &tu_F.ws, &tu_F.rs), 0);
}

ts_iostream_options tu_opts(size_t max_buffer, size_t chunk, size_t max_write)
{
    ts_iostream_options o = {.size = sizeof(o)};
    o.max_buffer_size = max_buffer;
    o.read_chunk_size = chunk;
    o.max_write_buffer_size = max_write;
    return o;
}

ts_future *tu_await(ts_future *f)
{
    assert_non_null(f);
    int r = ts_ioloop_run_sync(tu_F.loop, f, 10);
    if (r)
        fail_msg("future did not complete: %s", ts_strerror(r));
    return f;
}

void tu_expect_read(ts_future *f, const void *want, size_t len)
{
    tu_await(f);
    if (ts_future_error(f))
        fail_msg("read failed: %s", ts_err_name(ts_future_error(f)));
    ts_bytes *b = ts_future_result(f);
    assert_non_null(b);
    assert_int_equal(b->len, len);
    assert_memory_equal(b->data, want, len);
    ts_future_unref(f);
}

int tu_await_error(ts_future *f)
{
    tu_await(f);
    int e = ts_future_error(f);
    ts_future_unref(f);
    assert_true(e < 0);
    return e;
}

void tu_await_ok(ts_future *f)
{
    tu_await(f);
    if (ts_future_error(f))
        fail_msg("operation failed: %s", ts_err_name(ts_future_error(f)));
    ts_future_unref(f);
}

int tu_run_variants(const char *group, const struct CMUnitTest *tests, size_t n)
{
    size_t total = n * (size_t)tu_stream_pairs_count;
    struct CMUnitTest *all = calloc(total, sizeof(*all));
    char **names = calloc(total, sizeof(*names));
    size_t k = 0;
    for (int v = 0; v < tu_stream_pairs_count; v++) {
        for (size_t i = 0; i < n; i++, k++) {
            size_t len = strlen(tu_stream_pairs[v].name) + strlen(tests[i].name) + 2;
            names[k] = malloc(len);
            snprintf(names[k], len, "%s/%s", tu_stream_pairs[v].name, tests[i].name);
            all[k] = tests[i];
            all[k].name = names[k];
            all[k].setup_func = tu_fx_setup;
            all[k].teardown_func = tu_fx_teardown;
            all[k].initial_state = (void *)&tu_stream_pairs[v];
        }
    }
    int failed = _cmocka_run_group_tests(group, all, total, NULL, NULL);
    for (size_t i = 0; i < total; i++)
        free(names[i]);
    free(names);
    free(all);
    return failed;
}

static int g_order;

void tu_rec_read(ts_iostream *s, int status, const char *data, size_t len, void *arg)
{
    (void)s;
    tu_rec *r = arg;
    r->calls++;
    r->status = status;
    r->order = ++g_order;
    free(r->data);
    r->data = malloc(len + 1);
    if (len)
        memcpy(r->data, data, len);
    r->data[len] = 0;
    r->len = len;
    if (status == 0)
        assert_non_null(data);
    else
        assert_null(data);
}

void tu_rec_write(ts_iostream *s, int status, void *arg)
{
    (void)s;
    tu_rec *r = arg;
    r->calls++;
    r->status = status;
    r->order = ++g_order;
}

void tu_rec_close(ts_iostream *s, void *arg)
{
    (void)s;
    tu_rec *r = arg;
    r->calls++;
    r->order = ++g_order;
}

void tu_rec_stream(ts_iostream *s, const char *data, size_t len, void *arg)
{
    (void)s;
    tu_rec *r = arg;
    assert_true(len > 0);
    r->data = realloc(r->data, r->len + len + 1);
    memcpy(r->data + r->len, data, len);
    r->len += len;
    r->data[r->len] = 0;
}

void tu_rec_free(tu_rec *r)
{
    free(r->data);
    memset(r, 0, sizeof(*r));
}

void tu_rec_wait(tu_rec *r, int calls) { tu_run_until_count(tu_F.loop, &r->calls, calls, 10); }
