/*
 * Batching in the stream core: reads satisfied from the buffer complete in
 * the same loop iteration (no poll between them), and the writes their
 * callbacks make go out together in one write_to_fd call.
 */
#include <errno.h>
#include <stdbool.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cmocka.h>

#include "tstream.h"

typedef struct counting {
    int fd;
    int reads, writes;
} counting;

static int c_fileno(void *t) { return ((counting *)t)->fd; }

static ssize_t c_read(void *t, void *buf, size_t len)
{
    counting *c = t;
    c->reads++;
    ssize_t n = read(c->fd, buf, len);
    if (n < 0)
        return errno == EAGAIN ? TS_EAGAIN : -errno;
    return n;
}

static ssize_t c_write(void *t, const struct iovec *iov, int iovcnt)
{
    counting *c = t;
    c->writes++;
    ssize_t n = writev(c->fd, iov, iovcnt);
    if (n < 0)
        return errno == EAGAIN ? TS_EAGAIN : -errno;
    return n;
}

static void c_close(void *t)
{
    counting *c = t;
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
}

static const ts_stream_ops counting_ops = {
    .size = sizeof(ts_stream_ops),
    .name = "counting",
    .fileno = c_fileno,
    .read_from_fd = c_read,
    .write_to_fd = c_write,
    .close_fd = c_close,
};

typedef struct state {
    ts_iostream *s;
    int lines;
    int polls;         /* I/O events seen by an always-readable probe */
    int polls_at_first, polls_at_last;
    int writes_at_last;
    counting *tr;
} state;

static void probe(ts_ioloop *loop, int fd, int events, void *arg)
{
    (void)loop, (void)fd, (void)events;
    ((state *)arg)->polls++;
}

static void on_line(ts_iostream *s, int status, const char *data, size_t len, void *arg)
{
    state *st = arg;
    assert_int_equal(status, 0);
    if (st->lines == 0)
        st->polls_at_first = st->polls;
    st->lines++;
    assert_int_equal(ts_iostream_write(s, data, len, NULL, NULL), 0);
    if (st->lines == 16) {
        st->polls_at_last = st->polls;
        st->writes_at_last = st->tr->writes;
        return;
    }
    assert_int_equal(ts_iostream_read_until(s, "\n", 1, 0, on_line, st), 0);
}

static void stop_cb(ts_ioloop *loop, void *arg)
{
    (void)arg;
    ts_ioloop_stop(loop);
}

static void test_lines_complete_together_and_writes_coalesce(void **state_)
{
    (void)state_;
    ts_ioloop *loop = ts_ioloop_new();
    int sv[2], pv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, pv), 0);
    assert_int_equal(write(pv[1], "x", 1), 1);
    counting tr = {.fd = sv[0]};
    state st = {.tr = &tr};
    assert_int_equal(ts_ioloop_add_handler(loop, pv[0], TS_IOLOOP_READ, probe, &st), 0);
    ts_iostream *s = ts_iostream_new(loop, &counting_ops, &tr, NULL);
    assert_non_null(s);
    char batch[16 * 8 + 1] = "";
    for (int i = 0; i < 16; i++) {
        char line[9];
        snprintf(line, sizeof line, "line%02d\n", i);
        strcat(batch, line);
    }
    size_t blen = strlen(batch);
    assert_int_equal(write(sv[1], batch, blen), (ssize_t)blen);
    assert_int_equal(ts_iostream_read_until(s, "\n", 1, 0, on_line, &st), 0);
    ts_ioloop_call_later(loop, 0.1, stop_cb, NULL);
    ts_ioloop_call_later(loop, 5, stop_cb, NULL); /* watchdog */
    ts_ioloop_start(loop);
    assert_int_equal(st.lines, 16);
    assert_int_equal(st.polls_at_last, st.polls_at_first); /* all 16 in one iteration */
    assert_int_equal(st.writes_at_last, 0);                /* nothing written from inside callbacks */
    assert_int_equal(tr.writes, 1);                        /* then one writev for all 16 */
    char echo[256];
    ssize_t n = read(sv[1], echo, sizeof echo);
    assert_int_equal(n, (ssize_t)blen);
    assert_memory_equal(echo, batch, blen);
    ts_iostream_free(s);
    ts_ioloop_remove_handler(loop, pv[0]);
    close(pv[0]);
    close(pv[1]);
    close(sv[1]);
    ts_ioloop_call_later(loop, 0.01, stop_cb, NULL);
    ts_ioloop_start(loop);
    ts_ioloop_free(loop, false);
}

/* Outside the stream's callbacks, a write on an idle stream still goes out inline. */
static void test_idle_write_is_inline(void **state_)
{
    (void)state_;
    ts_ioloop *loop = ts_ioloop_new();
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    counting tr = {.fd = sv[0]};
    ts_iostream *s = ts_iostream_new(loop, &counting_ops, &tr, NULL);
    assert_int_equal(ts_iostream_write(s, "hello", 5, NULL, NULL), 0);
    assert_int_equal(tr.writes, 1);
    assert_int_equal(ts_iostream_write_buffer_size(s), 0);
    char buf[8];
    assert_int_equal(read(sv[1], buf, sizeof buf), 5);
    ts_iostream_free(s);
    close(sv[1]);
    ts_ioloop_call_later(loop, 0.01, stop_cb, NULL);
    ts_ioloop_start(loop);
    ts_ioloop_free(loop, false);
}

typedef struct unsat {
    int status, calls;
    bool closed_in_cb;
} unsat;

static void on_unsat(ts_iostream *s, int status, const char *data, size_t len, void *arg)
{
    (void)data, (void)len;
    unsat *u = arg;
    u->status = status;
    u->calls++;
    u->closed_in_cb = ts_iostream_closed(s);
    ts_ioloop_stop(ts_iostream_loop(s));
}

/* With close_on_unsatisfiable off, max_bytes fails the read but the stream stays usable. */
static void test_unsatisfiable_can_leave_stream_open(void **state_)
{
    (void)state_;
    ts_ioloop *loop = ts_ioloop_new();
    for (int keep = 0; keep < 2; keep++) {
        int sv[2];
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
        ts_iostream *s = ts_iostream_new_socket(loop, sv[0], NULL);
        if (keep)
            ts_iostream_set_close_on_unsatisfiable(s, false);
        assert_int_equal(write(sv[1], "0123456789abcdefghij", 20), 20);
        unsat u = {0};
        assert_int_equal(ts_iostream_read_until(s, "\n", 1, 10, on_unsat, &u), 0);
        ts_ioloop_call_later(loop, 5, stop_cb, NULL);
        ts_ioloop_start(loop);
        assert_int_equal(u.calls, 1);
        assert_int_equal(u.status, TS_EUNSATISFIABLE);
        assert_int_equal(u.closed_in_cb, !keep);
        assert_int_equal(ts_iostream_closed(s), !keep);
        if (keep) {
            assert_int_equal(ts_iostream_read_buffer_size(s), 20); /* nothing lost */
            assert_int_equal(ts_iostream_write(s, "431\n", 4, NULL, NULL), 0);
            char buf[8];
            assert_int_equal(read(sv[1], buf, sizeof buf), 4);
        } else {
            assert_int_equal(ts_iostream_error(s), TS_EUNSATISFIABLE);
        }
        ts_iostream_free(s);
        close(sv[1]);
    }
    ts_ioloop_call_later(loop, 0.01, stop_cb, NULL);
    ts_ioloop_start(loop);
    ts_ioloop_free(loop, false);
}

typedef struct halfclose {
    int peer;
    size_t want, got;
    int write_status, write_calls, closes;
} halfclose;

static void hc_written(ts_iostream *s, int status, void *arg)
{
    (void)s;
    halfclose *h = arg;
    h->write_status = status;
    h->write_calls++;
}

static void hc_closed(ts_iostream *s, void *arg)
{
    (void)s;
    ((halfclose *)arg)->closes++;
}

static void hc_drain(ts_ioloop *loop, void *arg)
{
    halfclose *h = arg;
    char buf[65536];
    ssize_t n;
    while ((n = read(h->peer, buf, sizeof buf)) > 0)
        h->got += (size_t)n;
    if (h->closes && h->got == h->want)
        ts_ioloop_stop(loop);
    else
        ts_ioloop_call_later(loop, 0.002, hc_drain, h);
}

/*
 * A peer that shuts down its write side while we still have bytes queued for
 * it gets all of them (Tornado listens for EOF only when neither reading nor
 * writing); the stream notices the EOF once the writes are done.
 */
static void test_half_closed_peer_gets_queued_writes(void **state_)
{
    (void)state_;
    ts_ioloop *loop = ts_ioloop_new();
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    ts_iostream *s = ts_iostream_new_socket(loop, sv[0], NULL);
    halfclose h = {.peer = sv[1], .want = 8u << 20};
    ts_iostream_set_close_callback(s, hc_closed, &h);
    char *big = calloc(1, h.want);
    assert_int_equal(ts_iostream_write(s, big, h.want, hc_written, &h), 0);
    free(big);
    assert_true(ts_iostream_writing(s)); /* the peer is not reading yet */
    assert_int_equal(shutdown(sv[1], SHUT_WR), 0);
    ts_ioloop_call_later(loop, 0.05, hc_drain, &h); /* the EOF is there well before we read */
    ts_ioloop_call_later(loop, 10, stop_cb, NULL);
    ts_ioloop_start(loop);
    assert_int_equal(h.got, h.want);
    assert_int_equal(h.write_calls, 1);
    assert_int_equal(h.write_status, 0);
    assert_int_equal(h.closes, 1); /* EOF noticed after the writes finished */
    assert_int_equal(ts_iostream_error(s), 0);
    ts_iostream_free(s);
    close(sv[1]);
    ts_ioloop_call_later(loop, 0.01, stop_cb, NULL);
    ts_ioloop_start(loop);
    ts_ioloop_free(loop, false);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lines_complete_together_and_writes_coalesce),
        cmocka_unit_test(test_idle_write_is_inline),
        cmocka_unit_test(test_unsatisfiable_can_leave_stream_open),
        cmocka_unit_test(test_half_closed_peer_gets_queued_writes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
