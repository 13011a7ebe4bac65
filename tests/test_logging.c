/*
 * What the library logs: only what it decided, at a level a person running
 * with the defaults wants to see, naming the peer.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "testutil.h"
#include "tls_certs.h"

typedef struct logrec {
    int warn, info;
    char last[512];
} logrec;

static void record(ts_log_level level, const char *msg, void *arg)
{
    logrec *r = arg;
    if (strncmp(msg, "iostream:", 9) != 0)
        return;
    if (level == TS_LOG_WARN)
        r->warn++;
    else if (level == TS_LOG_INFO)
        r->info++;
    snprintf(r->last, sizeof r->last, "%s", msg);
}

static void on_read(ts_iostream *s, int status, const char *data, size_t len, void *arg)
{
    (void)s, (void)data, (void)len;
    *(int *)arg = status;
}

static bool status_set(void *arg) { return *(int *)arg != 1; }

/* A stream over TCP loopback whose peer sends @p text, with a read_until("\n", max_bytes) pending. */
static int read_until_fails(ts_ioloop *loop, size_t max_buffer, size_t max_bytes, const char *text, int *peer,
                            ts_iostream **out)
{
    int fds[2];
    assert_int_equal(tu_tcp_pair(fds), 0);
    ts_iostream_options o = {.size = sizeof o, .max_buffer_size = max_buffer};
    ts_iostream *s = ts_iostream_new_socket(loop, fds[1], &o);
    assert_non_null(s);
    int status = 1;
    assert_int_equal(ts_iostream_read_until(s, "\n", 1, max_bytes, on_read, &status), 0);
    assert_int_equal(write(fds[0], text, strlen(text)), (ssize_t)strlen(text));
    assert_true(tu_run_until(loop, status_set, &status, 5));
    *peer = fds[0];
    *out = s;
    return status;
}

static void test_library_decisions_are_logged_with_the_peer(void **state)
{
    (void)state;
    ts_ioloop *loop = tu_fixture_begin(20);
    logrec r = {0};
    ts_log_set_handler(record, &r, TS_LOG_DEBUG);
    int peer;
    ts_iostream *s;
    assert_int_equal(read_until_fails(loop, 16, 0, "no newline in these many bytes at all", &peer, &s),
                     TS_EBUFFERFULL);
    assert_int_equal(r.warn, 1);
    assert_non_null(strstr(r.last, "maximum buffer size"));
    assert_non_null(strstr(r.last, "127.0.0.1:")); /* the peer, not an fd number */
    ts_iostream_free(s);
    close(peer);

    assert_int_equal(read_until_fails(loop, 0, 4, "abcdefgh", &peer, &s), TS_EUNSATISFIABLE);
    assert_int_equal(r.info, 1);
    assert_non_null(strstr(r.last, "127.0.0.1:"));
    ts_iostream_free(s);
    close(peer);
    ts_log_set_handler(NULL, NULL, TS_LOG_WARN);
    tu_fixture_end(loop);
}

/* The application's own close with a library code is its decision: nothing is logged. */
static void test_user_close_is_not_logged(void **state)
{
    (void)state;
    ts_ioloop *loop = tu_fixture_begin(20);
    logrec r = {0};
    ts_log_set_handler(record, &r, TS_LOG_DEBUG);
    int fds[2];
    assert_int_equal(tu_tcp_pair(fds), 0);
    ts_iostream *s = ts_iostream_new_socket(loop, fds[1], NULL);
    ts_iostream_close(s, TS_EBUFFERFULL); /* "my own backlog is too long" */
    ts_iostream *s2 = ts_iostream_new_socket(loop, fds[0], NULL);
    ts_iostream_close(s2, TS_EUNSATISFIABLE);
    tu_run_iterations(loop, 3);
    assert_int_equal(ts_iostream_error(s), TS_EBUFFERFULL);
    assert_int_equal(r.warn + r.info, 0);
    ts_iostream_unref(s);
    ts_iostream_unref(s2);
    ts_log_set_handler(NULL, NULL, TS_LOG_WARN);
    tu_fixture_end(loop);
}

/* The default handler and level: warnings reach stderr, INFO lines do not. */
static void test_default_level_is_warn(void **state)
{
    (void)state;
    char path[] = "/tmp/ts_logXXXXXX";
    int f = mkstemp(path);
    assert_true(f >= 0);
    fflush(stderr);
    int saved = dup(2);
    dup2(f, 2);
    ts_ioloop *loop = tu_fixture_begin(20);
    int peer;
    ts_iostream *s;
    assert_int_equal(read_until_fails(loop, 0, 4, "abcdefgh", &peer, &s), TS_EUNSATISFIABLE); /* INFO */
    ts_iostream_free(s);
    close(peer);
    assert_int_equal(read_until_fails(loop, 16, 0, "no newline in these many bytes at all", &peer, &s),
                     TS_EBUFFERFULL); /* WARN */
    ts_iostream_free(s);
    close(peer);
    tu_fixture_end(loop);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    char buf[4096] = {0};
    ssize_t n = pread(f, buf, sizeof buf - 1, 0);
    close(f);
    unlink(path);
    assert_true(n > 0);
    assert_non_null(strstr(buf, "WARN"));
    assert_non_null(strstr(buf, "maximum buffer size"));
    assert_null(strstr(buf, "unsatisfiable"));
}

/* ---- "error on read" ------------------------------------------------------ */

/* A user transport over a socketpair end that fails its reads on command. */
typedef struct failing {
    int fd;
    int calls;
    int fail_with;   /* the error the second and later reads return */
    bool fail_first; /* the very first read fails too */
} failing;

static int f_fileno(void *t) { return ((failing *)t)->fd; }
static ssize_t f_read(void *t, void *buf, size_t len)
{
    (void)buf, (void)len;
    failing *f = t;
    if (f->calls++ == 0 && !f->fail_first)
        return TS_EAGAIN; /* nothing yet: the read waits on the loop */
    return f->fail_with;
}
static ssize_t f_write(void *t, const struct iovec *iov, int n)
{
    (void)t, (void)iov, (void)n;
    return TS_EAGAIN;
}
static void f_close(void *t)
{
    failing *f = t;
    if (f->fd >= 0)
        close(f->fd);
    f->fd = -1;
}

static const ts_stream_ops failing_ops = {
    .size = sizeof(ts_stream_ops), .name = "failing", .fileno = f_fileno, .read_from_fd = f_read,
    .write_to_fd = f_write, .close_fd = f_close};

static int read_fails(ts_ioloop *loop, int err, bool at_start)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    failing f = {.fd = sv[0], .fail_with = err, .fail_first = at_start};
    ts_iostream *s = ts_iostream_new(loop, &failing_ops, &f, NULL);
    assert_non_null(s);
    int status = 1;
    assert_int_equal(ts_iostream_read_until(s, "\n", 1, 100, on_read, &status), 0);
    /* The fd turns readable: the loop calls the transport (unless the read already failed at its start). */
    (void)send(sv[1], "x", 1, MSG_NOSIGNAL);
    assert_true(tu_run_until(loop, status_set, &status, 5));
    ts_iostream_free(s);
    close(sv[1]);
    tu_run_iterations(loop, 2);
    return status;
}

static void test_read_error_logged_once(void **state)
{
    (void)state;
    ts_ioloop *loop = tu_fixture_begin(20);
    logrec r = {0};
    ts_log_set_handler(record, &r, TS_LOG_DEBUG);
    assert_int_equal(read_fails(loop, -EIO, false), -EIO);
    assert_int_equal(r.warn, 1);
    assert_non_null(strstr(r.last, "error on read"));
    assert_non_null(strstr(r.last, ts_strerror(-EIO)));
    /* A reset is ordinary: quiet. */
    assert_int_equal(read_fails(loop, -ECONNRESET, false), -ECONNRESET);
    assert_int_equal(r.warn, 1);
    /* An error met as the read starts is the caller's to report: quiet. */
    assert_int_equal(read_fails(loop, -EIO, true), -EIO);
    assert_int_equal(r.warn, 1);
    ts_log_set_handler(NULL, NULL, TS_LOG_WARN);
    tu_fixture_end(loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_library_decisions_are_logged_with_the_peer),
        cmocka_unit_test(test_user_close_is_not_logged),
        cmocka_unit_test(test_default_level_is_warn),
        cmocka_unit_test(test_read_error_logged_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
