/*
 * The half-close rule: when the peer shuts down its write side, the pending
 * read fails as at a close, but what the stream has queued still goes out
 * before the fd is closed, whether or not a read was pending. Before the
 * rule, a server that queued a 1 MiB reply and then issued its next read
 * closed at the peer's EOF, and the peer got 32-73 KiB of the reply.
 *
 * The peer is a real TCP client on loopback in a thread: it sends one line,
 * shuts down its write side and reads until EOF. The loop runs under a
 * watchdog (alarm) in case it never returns.
 */
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "net_helpers.h"
#include "testutil.h"

#define REPLY_LEN (1u << 20)

static void on_alarm(int sig)
{
    (void)sig;
    static const char msg[] = "test_halfclose: watchdog: the loop is stuck\n";
    (void)!write(2, msg, sizeof msg - 1);
    _exit(3);
}

/* ---- the peer: one line, shutdown(SHUT_WR), read to EOF ------------------ */

typedef struct peer {
    int fd;
    size_t received;
    bool content_ok;
    bool got_eof;
} peer;

static void *peer_thread(void *arg)
{
    peer *p = arg;
    static const char line[] = "GET\n";
    if (nh_write_all(p->fd, line, sizeof line - 1) < 0 || shutdown(p->fd, SHUT_WR) < 0)
        return NULL;
    /* Read slowly at first, so the server's reply is still queued when our EOF reaches it. */
    usleep(50 * 1000);
    char buf[16384];
    p->content_ok = true;
    for (;;) {
        ssize_t n = nh_read(p->fd, buf, sizeof buf, 10.0);
        if (n == 0) {
            p->got_eof = true;
            break;
        }
        if (n < 0)
            break;
        for (ssize_t i = 0; i < n; i++)
            if ((unsigned char)buf[i] != (unsigned char)((p->received + (size_t)i) % 251))
                p->content_ok = false;
        p->received += (size_t)n;
    }
    return NULL;
}

/* ---- the server side ----------------------------------------------------- */

typedef struct server {
    ts_iostream *s;
    bool read_next;     /* issue the next read right after queuing the reply */
    int next_status;    /* what that read got */
    bool next_done;
    int write_status;
    bool write_done;
    bool closed;
    int close_error;
    char *reply;
} server;

static void on_next(ts_iostream *s, int status, const char *data, size_t len, void *arg)
{
    (void)s, (void)data, (void)len;
    server *sv = arg;
    sv->next_status = status;
    sv->next_done = true;
}

static void on_written(ts_iostream *s, int status, void *arg)
{
    (void)s;
    server *sv = arg;
    sv->write_status = status;
    sv->write_done = true;
}

static void on_request(ts_iostream *s, int status, const char *data, size_t len, void *arg)
{
    (void)data, (void)len;
    server *sv = arg;
    assert_int_equal(status, 0);
    assert_int_equal(ts_iostream_write(s, sv->reply, REPLY_LEN, on_written, sv), 0);
    if (sv->read_next)
        assert_int_equal(ts_iostream_read_until(s, "\n", 1, 1 << 16, on_next, sv), 0);
}

static void on_close(ts_iostream *s, void *arg)
{
    server *sv = arg;
    sv->closed = true;
    sv->close_error = ts_iostream_error(s);
}

static bool all_done(void *arg)
{
    server *sv = arg;
    return sv->closed;
}

static void run_case(bool read_next)
{
    ts_ioloop *loop = tu_loop_new(30);
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(lfd >= 0);
    struct sockaddr_storage ss;
    socklen_t sl = nh_loopback(AF_INET, 0, &ss);
    assert_int_equal(bind(lfd, (struct sockaddr *)&ss, sl), 0);
    assert_int_equal(listen(lfd, 4), 0);

    peer p = {.fd = nh_connect(AF_INET, nh_local_port(lfd), 5.0)};
    assert_true(p.fd >= 0);
    int sfd = accept(lfd, NULL, NULL);
    assert_true(sfd >= 0);
    close(lfd);
    /* A small send buffer keeps most of the reply in the stream's own queue. */
    int sndbuf = 16384;
    setsockopt(sfd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
    tu_set_nonblock(sfd);

    server sv = {.read_next = read_next, .next_status = 1};
    sv.reply = malloc(REPLY_LEN);
    assert_non_null(sv.reply);
    for (size_t i = 0; i < REPLY_LEN; i++)
        sv.reply[i] = (char)(i % 251);
    sv.s = ts_iostream_new_socket(loop, sfd, NULL);
    assert_non_null(sv.s);
    ts_iostream_set_close_callback(sv.s, on_close, &sv);
    assert_int_equal(ts_iostream_read_until(sv.s, "\n", 1, 1 << 16, on_request, &sv), 0);

    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, peer_thread, &p), 0);
    signal(SIGALRM, on_alarm);
    alarm(20);
    assert_true(tu_run_until(loop, all_done, &sv, 15.0));
    alarm(0);
    pthread_join(th, NULL);

    /* Every byte of the reply arrived, in order, and then the server closed. */
    assert_int_equal(p.received, REPLY_LEN);
    assert_true(p.content_ok);
    assert_true(p.got_eof);
    assert_true(sv.write_done);
    assert_int_equal(sv.write_status, 0);
    assert_int_equal(sv.close_error, 0);
    if (read_next) {
        /* The read pending at the EOF failed as at any close. */
        assert_true(sv.next_done);
        assert_int_equal(sv.next_status, TS_ECLOSED);
    }
    ts_iostream_free(sv.s);
    close(p.fd);
    free(sv.reply);
    tu_loop_free(loop);
}

static void test_eof_with_pending_read_keeps_queued_writes(void **state)
{
    (void)state;
    run_case(true);
}

static void test_eof_without_pending_read_keeps_queued_writes(void **state)
{
    (void)state;
    run_case(false);
}

/* A read started after the EOF, while the reply drains, fails from the loop and the reply still arrives. */
static void on_request_late_read(ts_iostream *s, int status, const char *data, size_t len, void *arg);

typedef struct late {
    server sv;
    bool late_done;
    int late_status;
    bool late_inline;
    bool in_call;
} late;

static void on_late(ts_iostream *s, int status, const char *data, size_t len, void *arg)
{
    (void)s, (void)data, (void)len;
    late *l = arg;
    l->late_done = true;
    l->late_status = status;
    l->late_inline = l->in_call;
}

static void on_next_then_read(ts_iostream *s, int status, const char *data, size_t len, void *arg)
{
    late *l = arg;
    on_next(s, status, data, len, &l->sv);
    l->in_call = true;
    assert_int_equal(ts_iostream_read_bytes(s, 10, false, on_late, l), 0);
    l->in_call = false;
    assert_false(ts_iostream_closed(s)); /* still sending the reply */
}

static void on_request_late_read(ts_iostream *s, int status, const char *data, size_t len, void *arg)
{
    (void)data, (void)len;
    late *l = arg;
    assert_int_equal(status, 0);
    assert_int_equal(ts_iostream_write(s, l->sv.reply, REPLY_LEN, on_written, &l->sv), 0);
    assert_int_equal(ts_iostream_read_until(s, "\n", 1, 1 << 16, on_next_then_read, l), 0);
}

static void test_read_after_eof_fails_from_loop(void **state)
{
    (void)state;
    ts_ioloop *loop = tu_loop_new(30);
    int sv_pair[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv_pair), 0);
    int sndbuf = 8192;
    setsockopt(sv_pair[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
    tu_set_nonblock(sv_pair[0]);
    peer p = {.fd = sv_pair[1]};
    late l = {.sv = {.next_status = 1}};
    l.sv.reply = malloc(REPLY_LEN);
    assert_non_null(l.sv.reply);
    for (size_t i = 0; i < REPLY_LEN; i++)
        l.sv.reply[i] = (char)(i % 251);
    l.sv.s = ts_iostream_new_socket(loop, sv_pair[0], NULL);
    assert_non_null(l.sv.s);
    ts_iostream_set_close_callback(l.sv.s, on_close, &l.sv);
    assert_int_equal(ts_iostream_read_until(l.sv.s, "\n", 1, 1 << 16, on_request_late_read, &l), 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, peer_thread, &p), 0);
    signal(SIGALRM, on_alarm);
    alarm(20);
    assert_true(tu_run_until(loop, all_done, &l.sv, 15.0));
    alarm(0);
    pthread_join(th, NULL);
    assert_int_equal(p.received, REPLY_LEN);
    assert_true(p.content_ok);
    assert_true(l.sv.next_done);
    assert_int_equal(l.sv.next_status, TS_ECLOSED);
    assert_true(l.late_done);
    assert_false(l.late_inline); /* never inside the call that started it */
    assert_int_equal(l.late_status, TS_ECLOSED);
    ts_iostream_free(l.sv.s);
    close(p.fd);
    free(l.sv.reply);
    tu_loop_free(loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_eof_with_pending_read_keeps_queued_writes),
        cmocka_unit_test(test_eof_without_pending_read_keeps_queued_writes),
        cmocka_unit_test(test_read_after_eof_fails_from_loop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
