/*
 * The ops as the only door to a transport: a user transport that implements
 * connect / connect_result / peer_address / local_address / set_nodelay gets
 * ts_iostream_connect() and the address functions through them (and a
 * documented TS_ENOTSUP without them); a transport answering -EAGAIN or
 * -EWOULDBLOCK is waited for, not closed; TS_STREAM_OPS_SHORT_READ_DRAINED
 * decides whether a short read ends the reading.
 *
 * The transport is a real loopback socket driven with recv/send, so every
 * op call the core makes is counted here.
 */
#include "iostream_int.h"
#include "testutil.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

typedef struct utr {
    int fd;
    int block_code;        /* what "would block" is spelt as: TS_EAGAIN, -EAGAIN or -EWOULDBLOCK */
    bool writes_blocked;   /* writes answer block_code */
    int reads, read_blocks, writes, write_blocks;
    int connects, results, peers, locals, nodelays;
    int last_nodelay;
} utr;

static int u_fileno(void *t) { return ((utr *)t)->fd; }

static ssize_t u_read(void *t, void *buf, size_t len)
{
    utr *u = t;
    u->reads++;
    ssize_t r = recv(u->fd, buf, len, 0);
    if (r >= 0)
        return r;
    if (errno != EAGAIN)
        return -errno;
    u->read_blocks++;
    return u->block_code;
}

static ssize_t u_write(void *t, const struct iovec *iov, int cnt)
{
    utr *u = t;
    u->writes++;
    if (u->writes_blocked) {
        u->write_blocks++;
        return u->block_code;
    }
    struct msghdr msg = {.msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)cnt};
    ssize_t r = sendmsg(u->fd, &msg, MSG_NOSIGNAL);
    return r >= 0 ? r : -errno;
}

static void u_close(void *t)
{
    utr *u = t;
    if (u->fd >= 0)
        close(u->fd);
    u->fd = -1;
}

static int u_connect(void *t, const struct sockaddr *a, socklen_t n)
{
    utr *u = t;
    u->connects++;
    return connect(u->fd, a, n) == 0 ? 0 : -errno; /* -EINPROGRESS, as the system call says it */
}

static int u_connect_result(void *t)
{
    utr *u = t;
    u->results++;
    int err = 0;
    socklen_t len = sizeof err;
    return getsockopt(u->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 ? -errno : -err;
}

static int u_peer(void *t, struct sockaddr *a, socklen_t *n)
{
    utr *u = t;
    u->peers++;
    return getpeername(u->fd, a, n) == 0 ? 0 : -errno;
}

static int u_local(void *t, struct sockaddr *a, socklen_t *n)
{
    utr *u = t;
    u->locals++;
    return getsockname(u->fd, a, n) == 0 ? 0 : -errno;
}

static int u_nodelay(void *t, bool on)
{
    utr *u = t;
    u->nodelays++;
    u->last_nodelay = on;
    return 0;
}

/* The five required-and-early ops only: no connect, no addresses, no flags. */
static const ts_stream_ops plain_ops = {
    .size = sizeof(ts_stream_ops),
    .name = "user-plain",
    .fileno = u_fileno,
    .read_from_fd = u_read,
    .write_to_fd = u_write,
    .close_fd = u_close,
};

static const ts_stream_ops socket_like_ops = {
    .size = sizeof(ts_stream_ops),
    .name = "user-socket",
    .fileno = u_fileno,
    .read_from_fd = u_read,
    .write_to_fd = u_write,
    .close_fd = u_close,
    .connect = u_connect,
    .connect_result = u_connect_result,
    .peer_address = u_peer,
    .local_address = u_local,
    .set_nodelay = u_nodelay,
};

static const ts_stream_ops drained_ops = {
    .size = sizeof(ts_stream_ops),
    .name = "user-drained",
    .fileno = u_fileno,
    .read_from_fd = u_read,
    .write_to_fd = u_write,
    .close_fd = u_close,
    .flags = TS_STREAM_OPS_SHORT_READ_DRAINED,
};

static ts_ioloop *g_loop;

static int setup(void **state)
{
    (void)state;
    g_loop = tu_fixture_begin(20);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tu_fixture_end(g_loop);
    g_loop = NULL;
    return 0;
}

typedef struct rec {
    int calls, status;
    size_t len;
    char data[64];
} rec;

static void on_done(ts_iostream *s, int status, void *arg)
{
    (void)s;
    rec *r = arg;
    r->calls++, r->status = status;
}

static void on_read(ts_iostream *s, int status, const char *data, size_t len, void *arg)
{
    (void)s;
    rec *r = arg;
    r->calls++, r->status = status, r->len = len;
    if (len)
        memcpy(r->data, data, len < sizeof r->data ? len : sizeof r->data);
}

/* A loopback listener; its address in *a. */
static int listener(struct sockaddr_in *a)
{
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(l >= 0);
    memset(a, 0, sizeof *a);
    a->sin_family = AF_INET;
    a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof *a;
    assert_int_equal(bind(l, (struct sockaddr *)a, sizeof *a), 0);
    assert_int_equal(listen(l, 4), 0);
    assert_int_equal(getsockname(l, (struct sockaddr *)a, &alen), 0);
    return l;
}

static void utr_init(utr *u, int fd, int block_code)
{
    memset(u, 0, sizeof *u);
    u->fd = fd;
    u->block_code = block_code;
}

/* A user transport's own connect and getpeername serve ts_iostream_connect() and the address calls. */
static void test_connect_and_addresses_through_ops(void **state)
{
    (void)state;
    struct sockaddr_in a;
    int l = listener(&a);
    static utr u; /* static: a failed assertion leaves the stream to the teardown, which still calls the ops */
    utr_init(&u, socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0), TS_EAGAIN);
    ts_iostream *s = ts_iostream_new(g_loop, &socket_like_ops, &u, NULL);
    static rec c;
    c = (rec){0};
    assert_int_equal(ts_iostream_connect(s, (struct sockaddr *)&a, sizeof a, on_done, &c), 0);
    assert_int_equal(u.connects, 1);
    tu_run_until_count(g_loop, &c.calls, 1, 5);
    assert_int_equal(c.status, 0);
    assert_false(ts_iostream_closed(s));
    if (u.results == 0)
        print_message("(the loopback connect completed at once)\n");

    struct sockaddr_storage ss;
    socklen_t sl = 0;
    int peers = u.peers;
    assert_int_equal(ts_iostream_peer_address(s, &ss, &sl), 0);
    assert_int_equal(u.peers, peers + 1);
    assert_int_equal(sl, sizeof(struct sockaddr_in));
    assert_int_equal(((struct sockaddr_in *)&ss)->sin_port, a.sin_port);
    assert_int_equal(ts_iostream_local_address(s, &ss, &sl), 0);
    assert_int_equal(u.locals, 1);
    assert_int_equal(ss.ss_family, AF_INET);
    assert_int_equal(ts_iostream_set_nodelay(s, true), 0);
    assert_int_equal(u.nodelays, 1);
    assert_int_equal(u.last_nodelay, 1);

    /* The connected stream carries bytes both ways. */
    int peer = accept(l, NULL, NULL);
    assert_true(peer >= 0);
    static rec w, r;
    w = r = (rec){0};
    assert_int_equal(ts_iostream_write(s, "ping", 4, on_done, &w), 0);
    assert_int_equal(ts_iostream_read_bytes(s, 4, false, on_read, &r), 0);
    char buf[4];
    assert_int_equal(recv(peer, buf, 4, MSG_WAITALL), 4);
    assert_int_equal(send(peer, "pong", 4, 0), 4);
    tu_run_until_count(g_loop, &r.calls, 1, 5);
    assert_int_equal(r.status, 0);
    assert_memory_equal(r.data, "pong", 4);
    ts_iostream_free(s);
    tu_run_iterations(g_loop, 2);
    close(peer);
    close(l);
}

/* A refused connect is the transport's verdict (connect_result), reported to the callback. */
static void test_refused_connect_through_ops(void **state)
{
    (void)state;
    struct sockaddr_in a;
    int l = listener(&a);
    close(l); /* nothing listens there now */
    static utr u;
    utr_init(&u, socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0), TS_EAGAIN);
    ts_iostream *s = ts_iostream_new(g_loop, &socket_like_ops, &u, NULL);
    static rec c;
    c = (rec){0};
    assert_int_equal(ts_iostream_connect(s, (struct sockaddr *)&a, sizeof a, on_done, &c), 0);
    tu_run_until_count(g_loop, &c.calls, 1, 5);
    assert_int_equal(c.status, -ECONNREFUSED);
    assert_int_equal(u.connects, 1);
    /* Refused at once (connect's own error) or later (SO_ERROR, asked through the op). */
    assert_true(u.results >= 1 || ts_iostream_error(s) == -ECONNREFUSED);
    assert_true(ts_iostream_closed(s));
    ts_iostream_free(s);
    tu_run_iterations(g_loop, 2);
}

/*
 * connect(2)'s EAGAIN is no "under way": a unix socket says it when its
 * listener's backlog is full, and the connect has failed.
 */
static void test_unix_connect_eagain_fails(void **state)
{
    (void)state;
    struct sockaddr_un u = {.sun_family = AF_UNIX};
    snprintf(u.sun_path, sizeof u.sun_path, "/tmp/ts_transport_ops.%d", (int)getpid());
    unlink(u.sun_path);
    int l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_int_equal(bind(l, (struct sockaddr *)&u, sizeof u), 0);
    assert_int_equal(listen(l, 0), 0);
    int fill[4], nfill = 0, r = 0;
    while (nfill < 4) { /* fill the backlog (never accepted) until connect says EAGAIN */
        fill[nfill] = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        r = connect(fill[nfill], (struct sockaddr *)&u, sizeof u);
        nfill++;
        if (r < 0)
            break;
    }
    assert_int_equal(r, -1);
    assert_int_equal(errno, EAGAIN);
    ts_iostream *s = ts_iostream_new_socket(g_loop, socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), NULL);
    static rec c;
    c = (rec){0};
    assert_int_equal(ts_iostream_connect(s, (struct sockaddr *)&u, sizeof u, on_done, &c), 0);
    tu_run_until_count(g_loop, &c.calls, 1, 5);
    assert_int_equal(c.status, -EAGAIN);
    assert_true(ts_iostream_closed(s));
    ts_iostream_free(s);
    tu_run_iterations(g_loop, 2);
    for (int i = 0; i < nfill; i++)
        close(fill[i]);
    close(l);
    unlink(u.sun_path);
}

/* Without the ops: a documented TS_ENOTSUP, nothing started, no callback. */
static void test_missing_ops_are_not_supported(void **state)
{
    (void)state;
    struct sockaddr_in a;
    int l = listener(&a);
    static utr u;
    utr_init(&u, socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0), TS_EAGAIN);
    ts_iostream *s = ts_iostream_new(g_loop, &plain_ops, &u, NULL);
    static rec c;
    c = (rec){0};
    assert_int_equal(ts_iostream_connect(s, (struct sockaddr *)&a, sizeof a, on_done, &c), TS_ENOTSUP);
    struct sockaddr_storage ss;
    socklen_t sl;
    assert_int_equal(ts_iostream_peer_address(s, &ss, &sl), TS_ENOTSUP);
    assert_int_equal(ts_iostream_local_address(s, &ss, &sl), TS_ENOTSUP);
    assert_int_equal(ts_iostream_set_nodelay(s, true), TS_ENOTSUP);
    assert_string_equal(ts_err_name(TS_ENOTSUP), "TS_ENOTSUP");
    tu_run_iterations(g_loop, 2);
    assert_int_equal(c.calls, 0);
    assert_false(ts_iostream_closed(s));
    /* The socket was never connected behind the transport's back. */
    assert_int_equal(getpeername(u.fd, (struct sockaddr *)&ss, &(socklen_t){sizeof ss}), -1);
    assert_int_equal(errno, ENOTCONN);
    ts_iostream_free(s);
    tu_run_iterations(g_loop, 2);
    close(l);
}

/* Reads and writes answering the errno spelling of "would block" wait for the fd; the stream stays open. */
static void wouldblock_read_and_write(int code)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv), 0);
    static utr u;
    utr_init(&u, sv[0], code);
    u.writes_blocked = true;
    ts_iostream *s = ts_iostream_new(g_loop, &plain_ops, &u, NULL);
    static rec r, w;
    r = w = (rec){0};
    assert_int_equal(ts_iostream_read_bytes(s, 5, false, on_read, &r), 0);
    assert_int_equal(ts_iostream_write(s, "out", 3, on_done, &w), 0);
    tu_run_iterations(g_loop, 3);
    assert_true(u.read_blocks >= 1);
    assert_true(u.write_blocks >= 1);
    assert_false(ts_iostream_closed(s));
    assert_int_equal(ts_iostream_error(s), 0);
    assert_int_equal(r.calls, 0);
    assert_int_equal(w.calls, 0);
    assert_int_equal(send(sv[1], "hel", 3, 0), 3);
    tu_run_iterations(g_loop, 3);
    assert_int_equal(send(sv[1], "lo", 2, 0), 2);
    tu_run_until_count(g_loop, &r.calls, 1, 5);
    assert_int_equal(r.status, 0);
    assert_memory_equal(r.data, "hello", 5);
    u.writes_blocked = false;
    tu_run_until_count(g_loop, &w.calls, 1, 5);
    assert_int_equal(w.status, 0);
    char buf[3];
    assert_int_equal(recv(sv[1], buf, 3, 0), 3);
    assert_memory_equal(buf, "out", 3);
    assert_false(ts_iostream_closed(s));
    ts_iostream_free(s);
    tu_run_iterations(g_loop, 2);
    close(sv[1]);
}

static void test_errno_eagain_is_would_block(void **state)
{
    (void)state;
    wouldblock_read_and_write(-EAGAIN);
}

static void test_errno_ewouldblock_is_would_block(void **state)
{
    (void)state;
    wouldblock_read_and_write(-EWOULDBLOCK);
}

/* Transport reads one short arrival costs, with the given ops. */
static int reads_for_short_arrival(const ts_stream_ops *ops, int *blocks)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv), 0);
    static utr u;
    utr_init(&u, sv[0], TS_EAGAIN);
    ts_iostream *s = ts_iostream_new(g_loop, ops, &u, NULL);
    static rec r;
    r = (rec){0};
    assert_int_equal(ts_iostream_read_bytes(s, 10, false, on_read, &r), 0);
    tu_run_iterations(g_loop, 2);
    int before = u.reads;
    assert_int_equal(send(sv[1], "abc", 3, 0), 3); /* far less than the 64 KiB asked per read */
    tu_run_iterations(g_loop, 3);
    int reads = u.reads - before;
    *blocks = u.read_blocks;
    assert_int_equal(r.calls, 0);
    assert_int_equal(send(sv[1], "defghij", 7, 0), 7);
    tu_run_until_count(g_loop, &r.calls, 1, 5);
    assert_int_equal(r.status, 0);
    assert_memory_equal(r.data, "abcdefghij", 10);
    ts_iostream_free(s);
    tu_run_iterations(g_loop, 2);
    close(sv[1]);
    return reads;
}

static void test_short_read_drained_flag(void **state)
{
    (void)state;
    int blocks;
    /* With the flag, the short read is the last one until the fd says readable again. */
    assert_int_equal(reads_for_short_arrival(&drained_ops, &blocks), 1);
    /* Without it, the core reads on until the transport itself says it would block. */
    int n = reads_for_short_arrival(&plain_ops, &blocks);
    assert_int_equal(n, 2);
    assert_true(blocks >= 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_connect_and_addresses_through_ops, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused_connect_through_ops, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unix_connect_eagain_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_ops_are_not_supported, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errno_eagain_is_would_block, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errno_ewouldblock_is_would_block, setup, teardown),
        cmocka_unit_test_setup_teardown(test_short_read_drained_flag, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
