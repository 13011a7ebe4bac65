/*
 * TCPServer, after Tornado's test/tcpserver_test.py: many concurrent
 * clients, stop with live connections, errors in handle_stream, TCP_NODELAY,
 * Unix sockets, EMFILE, and multi-process start(). Clients here are plain
 * library streams (ts_iostream_new_socket + ts_iostream_connect), so these
 * tests do not depend on ts_tcpclient. Loopback only.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "net_helpers.h"
#include "testutil.h"
#include "tls_certs.h"
#include "tstream.h"
#include "tstream/ssl.h"

/* ---- a loop-driven client ------------------------------------------------- */

typedef struct client {
    ts_iostream *s;
    char sent[64];
    char got[128];
    int status;   /* connect / read outcome */
    bool done;
    int *ndone;
} client;

static void client_finish(client *c, int status)
{
    c->status = status;
    c->done = true;
    if (c->ndone)
        (*c->ndone)++;
}

static void client_got_line(ts_iostream *s, int status, const char *data, size_t len, void *arg)
{
    client *c = arg;
    (void)s;
    if (status == 0)
        snprintf(c->got, sizeof(c->got), "%.*s", (int)len, data);
    client_finish(c, status);
}

static void client_connected(ts_iostream *s, int status, void *arg)
{
    client *c = arg;
    if (status != 0) {
        client_finish(c, status);
        return;
    }
    ts_iostream_write(s, c->sent, strlen(c->sent), NULL, NULL);
    if (ts_iostream_read_until(s, "\n", 1, 0, client_got_line, c) != 0)
        client_finish(c, TS_EINTERNAL);
}

/* Starts a client that sends @p line and reads one line back. */
static void client_start(client *c, ts_ioloop *loop, int family, int port, const char *line)
{
    struct sockaddr_storage ss;
    socklen_t len = nh_loopback(family, port, &ss);
    snprintf(c->sent, sizeof(c->sent), "%s", line);
    int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    c->s = ts_iostream_new_socket(loop, fd, NULL);
    assert_non_null(c->s);
    assert_int_equal(ts_iostream_connect(c->s, (struct sockaddr *)&ss, len, client_connected, c), 0);
}

static void client_free(client *c)
{
    ts_iostream_free(c->s);
    c->s = NULL;
}

static bool open_is_zero(void *arg) { return ((nh_echo_stats *)arg)->open == 0; }

static void teardown_server(ts_ioloop *loop, ts_tcpserver *srv, nh_echo_stats *st)
{
    ts_tcpserver_free(srv);
    nh_echo_close_all();
    tu_run_until(loop, open_is_zero, st, 2);
    tu_loop_free(loop);
}

/* ---- tests -------------------------------------------------------------------- */

enum { NCLIENTS = 50 };

static void test_many_concurrent_clients(void **state)
{
    (void)state;
    ts_ioloop *loop = tu_loop_new(20);
    nh_echo_stats st = {0};
    ts_tcpserver *srv = nh_echo_server_new(loop, NULL, &st);
    assert_int_equal(ts_tcpserver_listen(srv, 0, "127.0.0.1"), 0);
    int port = ts_tcpserver_port(srv);
    assert_true(port > 0);

    static client cl[NCLIENTS];
    int ndone = 0;
    memset(cl, 0, sizeof(cl));
    for (int i = 0; i < NCLIENTS; i++) {
        char line[32];
        snprintf(line, sizeof(line), "client %d says hi\n", i);
        cl[i].ndone = &ndone;
        client_start(&cl[i], loop, AF_INET, port, line);
    }
    tu_run_until_count(loop, &ndone, NCLIENTS, 10);
    for (int i = 0; i < NCLIENTS; i++) {
        assert_int_equal(cl[i].status, 0);
        assert_string_equal(cl[i].got, cl[i].sent); /* each got its own line back */
        client_free(&cl[i]);
    }
    assert_int_equal(st.accepted, NCLIENTS);
    assert_int_equal(st.lines, NCLIENTS);
    assert_true(st.nodelay_checked); /* TCP_NODELAY by default */
    tu_run_until(loop, open_is_zero, &st, 5);
    assert_int_equal(st.open, 0);
    teardown_server(loop, srv, &st);
}

/* stop() closes the listeners: live connections carry on, new ones are refused. */
static void test_stop_keeps_live_connections(void **state)
{
    (void)state;
    ts_ioloop *loop = tu_loop_new(20);
    nh_echo_stats st = {0};
    ts_tcpserver *srv = nh_echo_server_new(loop, NULL, &st);
    assert_int_equal(ts_tcpserver_listen(srv, 0, "127.0.0.1"), 0);
    int port = ts_tcpserver_port(srv);

    int fd = nh_connect(AF_INET, port, 2);
    assert_true(fd >= 0);
    tu_run_until_count(loop, &st.accepted, 1, 5);
    ts_tcpserver_stop(srv);
    ts_tcpserver_stop(srv); /* idempotent */
    assert_int_equal(ts_tcpserver_listen(srv, 0, "127.0.0.1"), TS_ESTATE);
    assert_int_equal(ts_tcpserver_sockets(srv, NULL, 0), 0);

    /* The live connection still echoes. */
    for (int i = 0; i < 3; i++) {
        assert_int_equal(nh_write_all(fd, "again\n", 6), 0);
        tu_run_until_count(loop, &st.lines, i + 1, 5);
        char buf[16] = {0};
        assert_int_equal(nh_read_line(fd, buf, sizeof(buf) - 1, 2), 6);
        assert_string_equal(buf, "again\n");
    }
    /* New connections are refused: nothing listens on the port any more. */
    assert_int_equal(nh_connect(AF_INET, port, 2), -ECONNREFUSED);
    close(fd);
    tu_run_until(loop, open_is_zero, &st, 5);
    assert_int_equal(st.open, 0);
    teardown_server(loop, srv, &st);
}

/* An error from handle_stream is logged; the server closes that stream and keeps serving. */
static void test_handle_stream_error_is_logged(void **state)
{
    (void)state;
    ts_ioloop *loop = tu_loop_new(20);
    nh_echo_stats st = {.fail_next = 1};
    ts_tcpserver *srv = nh_echo_server_new(loop, NULL, &st);
    assert_int_equal(ts_tcpserver_listen(srv, 0, "127.0.0.1"), 0);
    int port = ts_tcpserver_port(srv);

    nh_log_capture_start();
    int bad = nh_connect(AF_INET, port, 2);
    tu_run_until_count(loop, &st.accepted, 1, 5);
    tu_run_iterations(loop, 4);
    int logged = nh_log_count("handle_stream", TS_LOG_ERROR);
    nh_log_capture_stop();
    assert_int_equal(logged, 1);
    char buf[16];
    assert_int_equal(nh_read(bad, buf, sizeof(buf), 2), 0); /* the server closed it */
    close(bad);

    client c = {0};
    client_start(&c, loop, AF_INET, port, "still here\n");
    tu_run_until_flag(loop, &c.done, 5);
    assert_int_equal(c.status, 0);
    assert_string_equal(c.got, "still here\n");
    client_free(&c);
    teardown_server(loop, srv, &st);
}

static void test_nodelay_option_and_unix_socket(void **state)
{
    (void)state;
    ts_ioloop *loop = tu_loop_new(20);
    nh_echo_stats st = {.nodelay_checked = true};
    ts_tcpserver_options o = {.size = sizeof(o), .disable_nodelay = true};
    ts_tcpserver *srv = nh_echo_server_new(loop, &o, &st);

    char dir[] = "/tmp/tssrv.XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[100];
    snprintf(path, sizeof(path), "%.80s/echo.sock", dir);
    int ufd = ts_bind_unix_socket(path, 0600, -1);
    assert_true(ufd >= 0);
    assert_int_equal(ts_tcpserver_add_socket(srv, ufd), 0);
    assert_int_equal(ts_tcpserver_listen(srv, 0, "127.0.0.1"), 0);
    int fds[4];
    assert_int_equal(ts_tcpserver_sockets(srv, fds, 4), 2);
    assert_int_equal(fds[0], ufd);
    /* The port of a unix socket does not exist: ts_tcpserver_port() reports the first one. */
    assert_int_equal(ts_tcpserver_port(srv), TS_ESTATE);

    int tcp = nh_connect(AF_INET, nh_local_port(fds[1]), 2);
    tu_run_until_count(loop, &st.accepted, 1, 5);
    assert_false(st.nodelay_checked); /* disable_nodelay left Nagle on */

    int u = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
    assert_int_equal(connect(u, (struct sockaddr *)&sun, sizeof(sun)), 0);
    assert_int_equal(nh_write_all(u, "unix\n", 5), 0);
    tu_run_until_count(loop, &st.lines, 1, 5);
    char buf[16] = {0};
    assert_int_equal(nh_read_line(u, buf, sizeof(buf) - 1, 2), 5);
    assert_string_equal(buf, "unix\n");
    close(u);
    close(tcp);
    teardown_server(loop, srv, &st);
    unlink(path);
    rmdir(dir);
}

/* Listening on every interface serves both families on one port. */
static void test_listen_all_interfaces(void **state)
{
    (void)state;
    ts_ioloop *loop = tu_loop_new(20);
    nh_echo_stats st = {0};
    ts_tcpserver *srv = nh_echo_server_new(loop, NULL, &st);
    assert_int_equal(ts_tcpserver_listen(srv, 0, NULL), 0);
    int port = ts_tcpserver_port(srv);
    client a = {0}, b = {0};
    client_start(&a, loop, AF_INET, port, "v4\n");
    tu_run_until_flag(loop, &a.done, 5);
    assert_string_equal(a.got, "v4\n");
    if (nh_have_ipv6()) {
        client_start(&b, loop, AF_INET6, port, "v6\n");
        tu_run_until_flag(loop, &b.done, 5);
        assert_string_equal(b.got, "v6\n");
        client_free(&b);
    } else {
        printf("# IPv6 unavailable on this machine: IPv6 half skipped\n");
    }
    client_free(&a);
    teardown_server(loop, srv, &st);
}

/* bind() + start(1): sockets bound before start are served after it. */
static void test_bind_then_start(void **state)
{
    (void)state;
    ts_ioloop *loop = tu_loop_new(20);
    nh_echo_stats st = {0};
    ts_tcpserver *srv = nh_echo_server_new(loop, NULL, &st);
    assert_int_equal(ts_tcpserver_bind(srv, 0, "127.0.0.1", AF_INET, 16, 0), 0);
    int port = ts_tcpserver_port(srv);
    assert_true(port > 0);
    assert_int_equal(ts_tcpserver_start(srv, 1, -1), 0);
    assert_int_equal(ts_tcpserver_start(srv, 1, -1), TS_ESTATE);
    client a = {0};
    client_start(&a, loop, AF_INET, port, "started\n");
    tu_run_until_flag(loop, &a.done, 5);
    assert_string_equal(a.got, "started\n");
    client_free(&a);
    teardown_server(loop, srv, &st);
}

/* handle_stream may stop and free the server. */
static int free_in_handler(ts_tcpserver *srv, ts_iostream *s, const struct sockaddr *a, socklen_t l, void *arg)
{
    (void)a, (void)l;
    *(int *)arg += 1;
    ts_tcpserver_free(srv);
    ts_iostream_free(s);
    return 0;
}

static void test_free_inside_handler(void **state)
{
    (void)state;
    ts_ioloop *loop = tu_loop_new(20);
    int calls = 0;
    ts_tcpserver *srv = ts_tcpserver_new(loop, free_in_handler, &calls, NULL);
    assert_int_equal(ts_tcpserver_listen(srv, 0, "127.0.0.1"), 0);
    int port = ts_tcpserver_port(srv);
    int c1 = nh_connect(AF_INET, port, 2), c2 = nh_connect(AF_INET, port, 2);
    tu_run_until_count(loop, &calls, 1, 5);
    tu_run_for(loop, 0.1);
    assert_int_equal(calls, 1); /* the second pending connection was never handed over */
    close(c1);
    if (c2 >= 0)
        close(c2);
    assert_null(ts_tcpserver_new(NULL, free_in_handler, NULL, NULL));
    assert_null(ts_tcpserver_new(loop, NULL, NULL, NULL));
    ts_tcpserver_options tiny = {.size = 4};
    assert_null(ts_tcpserver_new(loop, free_in_handler, NULL, &tiny));
    tu_loop_free(loop);
}

/* ---- EMFILE with the server --------------------------------------------------- */

static void emfile_stop(ts_ioloop *loop, int fd, int events, void *arg)
{
    (void)events, (void)arg;
    ts_ioloop_remove_handler(loop, fd);
    ts_ioloop_stop(loop);
}

static void emfile_server_child(int ctl_fd, int port_fd, int report_fd)
{
    ts_ioloop *loop = ts_ioloop_new();
    static nh_echo_stats st;
    if (!loop)
        _exit(2);
    ts_tcpserver *srv = nh_echo_server_new(loop, NULL, &st);
    if (ts_tcpserver_listen(srv, 0, "127.0.0.1") != 0)
        _exit(3);
    int port = ts_tcpserver_port(srv);
    ts_ioloop_add_handler(loop, ctl_fd, TS_IOLOOP_READ, emfile_stop, NULL);
    int probe = open("/dev/null", O_RDONLY);
    close(probe);
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = (rlim_t)(probe + 8);
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
        _exit(4);
    (void)write(port_fd, &port, sizeof(port));
    ts_ioloop_start(loop);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
                 ru.ru_stime.tv_usec / 1e6;
    (void)write(report_fd, &cpu, sizeof(cpu));
    _exit(0);
}

static void test_emfile_server_recovers(void **state)
{
    (void)state;
    enum { BURST = 60 };
    int ctl[2], rep[2];
    assert_int_equal(pipe2(ctl, O_CLOEXEC), 0);
    assert_int_equal(pipe2(rep, O_CLOEXEC), 0);
    fflush(stdout);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(ctl[1]);
        close(rep[0]);
        emfile_server_child(ctl[0], rep[1], rep[1]);
    }
    close(ctl[0]);
    close(rep[1]);
    int port = 0;
    assert_int_equal(nh_read(rep[0], &port, sizeof(port), 10), (ssize_t)sizeof(port));

    int clients[BURST], served = 0;
    for (int i = 0; i < BURST; i++) {
        clients[i] = nh_connect(AF_INET, port, 2);
        assert_true(clients[i] >= 0);
        nh_write_all(clients[i], "x\n", 2);
    }
    double t0 = nh_now();
    for (int i = 0; i < BURST; i++) {
        char buf[8];
        if (nh_read(clients[i], buf, sizeof(buf), i < 4 ? 2.0 : 0.02) == 2)
            served++;
    }
    while (nh_now() - t0 < 1.5)
        usleep(50000);
    printf("# TCPServer EMFILE burst: %d of %d served at the limit\n", served, BURST);
    assert_true(served >= 1 && served < BURST);

    for (int i = 0; i < BURST; i++)
        close(clients[i]);
    ssize_t n = -1;
    char buf[8] = {0};
    double t1 = nh_now();
    while (n != 3 && nh_now() - t1 < 5.0) {
        int c = nh_connect(AF_INET, port, 2);
        assert_true(c >= 0);
        nh_write_all(c, "ok\n", 3);
        n = nh_read(c, buf, sizeof(buf), 2.0);
        close(c);
        if (n != 3)
            usleep(100000);
    }
    assert_int_equal(n, 3); /* serving again */
    assert_int_equal(write(ctl[1], "x", 1), 1);
    double cpu = -1;
    assert_int_equal(nh_read(rep[0], &cpu, sizeof(cpu), 5), (ssize_t)sizeof(cpu));
    double wall = nh_now() - t0;
    printf("# TCPServer EMFILE: child used %.3f s CPU over %.2f s wall\n", cpu, wall);
    assert_true(cpu < 0.25 * wall);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    close(ctl[1]);
    close(rep[0]);
}

/* ---- start(2): fork through the server ---------------------------------------- */

static void quit_on_line(ts_iostream *s, int status, const char *data, size_t len, void *arg)
{
    (void)arg;
    if (status == 0 && len >= 4 && memcmp(data, "quit", 4) == 0) {
        ts_iostream_write(s, "bye\n", 4, NULL, NULL);
        ts_ioloop_stop(ts_iostream_loop(s));
    }
    ts_iostream_unref(s);
}

/* Replies "task <id> pid <pid>"; a following "quit" line ends the worker cleanly. */
static int task_reply(ts_tcpserver *srv, ts_iostream *s, const struct sockaddr *a, socklen_t l, void *arg)
{
    (void)srv, (void)a, (void)l, (void)arg;
    char line[64];
    int n = snprintf(line, sizeof(line), "task %d pid %d\n", ts_task_id(), (int)getpid());
    ts_iostream_write(s, line, (size_t)n, NULL, NULL);
    return ts_iostream_read_until(s, "\n", 1, 64, quit_on_line, NULL);
}

static void start2_manager(int port_fd)
{
    setpgid(0, 0);
    /* As Tornado: the loop may exist but not run; each child re-arms it. */
    ts_ioloop *loop = ts_ioloop_new();
    ts_tcpserver *srv = loop ? ts_tcpserver_new(loop, task_reply, NULL, NULL) : NULL;
    if (!srv || ts_tcpserver_bind(srv, 0, "127.0.0.1", AF_INET, -1, 0) != 0)
        _exit(60);
    int port = ts_tcpserver_port(srv);
    (void)write(port_fd, &port, sizeof(port));
    close(port_fd);
    if (ts_tcpserver_start(srv, 2, 5) != 0)
        _exit(61);
    ts_ioloop_start(loop);
    /* Let "bye" reach the kernel before leaving. */
    tu_run_iterations(loop, 10);
    _exit(0);
}

/*
 * Forks a manager process (its own process group) that runs @p manager,
 * which writes the port it listens on to the fd it is given; returns its
 * pid and stores the port.
 */
static pid_t spawn_manager(void (*manager)(int port_fd), int *port)
{
    int pp[2];
    assert_int_equal(pipe2(pp, O_CLOEXEC), 0);
    fflush(stdout);
    pid_t mgr = fork();
    assert_true(mgr >= 0);
    if (mgr == 0) {
        close(pp[0]);
        manager(pp[1]);
    }
    setpgid(mgr, mgr);
    close(pp[1]);
    assert_int_equal(nh_read(pp[0], port, sizeof(*port), 10), (ssize_t)sizeof(*port));
    close(pp[0]);
    return mgr;
}

/* ---- a thread pool started before the fork ------------------------------- */

static void *job_answer(void *arg, int *err)
{
    (void)arg, (void)err;
    static int answer = 42;
    return &answer;
}

static void on_job(ts_future *f, void *arg)
{
    ts_iostream *s = arg;
    char line[32];
    int n = ts_future_error(f) ? snprintf(line, sizeof line, "job failed\n")
                               : snprintf(line, sizeof line, "job %d\n", *(int *)ts_future_result(f));
    ts_iostream_write(s, line, (size_t)n, NULL, NULL);
    ts_iostream_unref(s);
}

/* Each worker answers a connection with the result of a job run on its loop's thread pool. */
static int job_reply(ts_tcpserver *srv, ts_iostream *s, const struct sockaddr *a, socklen_t l, void *arg)
{
    (void)srv, (void)a, (void)l, (void)arg;
    ts_future *f = ts_ioloop_run_in_executor(ts_iostream_loop(s), job_answer, NULL, NULL);
    if (!f)
        return TS_ENOMEM;
    ts_future_add_done_callback(f, on_job, s);
    ts_future_unref(f);
    return 0;
}

static void pool_manager(int port_fd)
{
    setpgid(0, 0);
    ts_ioloop *loop = ts_ioloop_new();
    ts_tcpserver *srv = loop ? ts_tcpserver_new(loop, job_reply, NULL, NULL) : NULL;
    if (!srv || ts_tcpserver_bind(srv, 0, "127.0.0.1", AF_INET, -1, 0) != 0)
        _exit(60);
    /* The parent's pool is running (its workers wait on its lock) when the children are made. */
    ts_future *warm = ts_ioloop_run_in_executor(loop, job_answer, NULL, NULL);
    if (!warm || ts_ioloop_run_sync(loop, warm, 5) != 0)
        _exit(62);
    ts_future_unref(warm);
    int port = ts_tcpserver_port(srv);
    (void)write(port_fd, &port, sizeof(port));
    close(port_fd);
    if (ts_tcpserver_start(srv, 2, 0) != 0)
        _exit(61);
    ts_ioloop_start(loop);
    _exit(0);
}

/* Before, a child inherited the parent's pool without its threads: a job (a name lookup) never came back. */
static void test_children_get_their_own_thread_pool(void **state)
{
    (void)state;
    int port = 0;
    pid_t mgr = spawn_manager(pool_manager, &port);
    int answered = 0;
    for (int i = 0; i < 6; i++) {
        int c = nh_connect(AF_INET, port, 2);
        char line[32] = {0};
        if (c >= 0 && nh_read_line(c, line, sizeof(line) - 1, 3) > 0 && strcmp(line, "job 42\n") == 0)
            answered++;
        if (c >= 0)
            close(c);
    }
    kill(-mgr, SIGKILL);
    int status = 0;
    waitpid(mgr, &status, 0);
    assert_int_equal(answered, 6);
}

static int ask_task(int port, const char *cmd, int *pid, bool *bye)
{
    char line[64] = {0};
    int c = nh_connect(AF_INET, port, 2), id = -1;
    if (c < 0)
        return -1;
    if (nh_read_line(c, line, sizeof(line) - 1, 3) > 0 && sscanf(line, "task %d pid %d", &id, pid) == 2) {
        nh_write_all(c, cmd, strlen(cmd));
        if (bye) {
            memset(line, 0, sizeof(line));
            *bye = nh_read_line(c, line, sizeof(line) - 1, 3) > 0 && strcmp(line, "bye\n") == 0;
        }
    }
    close(c);
    return id;
}

static void test_start_two_processes(void **state)
{
    (void)state;
    int port = 0;
    pid_t mgr = spawn_manager(start2_manager, &port);

    /* Both task ids answer (hold one connection open so the other worker takes the next). */
    bool seen[2] = {false, false};
    double deadline = nh_now() + 10;
    while ((!seen[0] || !seen[1]) && nh_now() < deadline) {
        int held = nh_connect(AF_INET, port, 2), hid = -1, hpid = 0;
        char line[64] = {0};
        if (held >= 0 && nh_read_line(held, line, sizeof(line) - 1, 3) > 0 &&
            sscanf(line, "task %d pid %d", &hid, &hpid) == 2 && hid >= 0 && hid < 2)
            seen[hid] = true;
        int pid = 0, id = ask_task(port, "hello\n", &pid, NULL);
        if (id >= 0 && id < 2)
            seen[id] = true;
        if (held >= 0)
            close(held);
    }
    bool quit[2] = {false, false};
    deadline = nh_now() + 10;
    while ((!quit[0] || !quit[1]) && nh_now() < deadline) {
        int pid = 0;
        bool bye = false;
        int id = ask_task(port, "quit\n", &pid, &bye);
        if (id >= 0 && id < 2 && bye)
            quit[id] = true;
        if (id < 0)
            usleep(20000);
    }
    int status = 0;
    deadline = nh_now() + 10;
    while (waitpid(mgr, &status, WNOHANG) != mgr) {
        if (nh_now() > deadline) {
            kill(-mgr, SIGKILL);
            waitpid(mgr, &status, 0);
            break;
        }
        usleep(10000);
    }
    kill(-mgr, SIGKILL);
    assert_true(seen[0] && seen[1]);
    assert_true(quit[0] && quit[1]);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0); /* the parent exit(0)s after both clean exits */
}

/*
 * A TLS connection the client resets before it is accepted (a port scan,
 * or a client giving up mid-handshake) is already dead when accept()
 * returns it: getpeername() fails with ENOTCONN. Before the server dropped
 * such sockets, the stream took the dead socket for a client stream still
 * connecting, never started the handshake and never polled the fd: the
 * connection and its fd stayed open for good (tests/stress_servers.sh saw
 * echo_server --tls keep 25 fds after 25 such clients).
 */
static void test_tls_connection_reset_before_accept(void **state)
{
    (void)state;
    const tu_certs *certs = tu_certs_get();
    ts_ioloop *loop = tu_loop_new(20);
    SSL_CTX *sctx = tu_tls_server_ctx(certs->server_cert, certs->server_key, 0, 0);
    nh_echo_stats st = {0};
    ts_tcpserver_options o = {.size = sizeof(o), .ssl_ctx = sctx};
    ts_tcpserver *srv = nh_echo_server_new(loop, &o, &st);
    SSL_CTX_free(sctx);
    assert_int_equal(ts_tcpserver_listen(srv, 0, "127.0.0.1"), 0);
    int port = ts_tcpserver_port(srv);

    enum { NRESET = 5 };
    for (int i = 0; i < NRESET; i++) {
        int c = nh_connect(AF_INET, port, 2);
        assert_true(c >= 0);
        assert_int_equal(nh_write_all(c, "\x16\x03\x01\x02\x00\x01", 6), 0); /* half a ClientHello */
        struct linger lg = {.l_onoff = 1, .l_linger = 0};
        assert_int_equal(setsockopt(c, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)), 0);
        close(c); /* RST, while the server has not accepted yet */
    }
    tu_run_for(loop, 0.3);
    int lfd;
    assert_int_equal(ts_tcpserver_sockets(srv, &lfd, 1), 1);
    int extra = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (extra >= 0)
        close(extra);
    assert_true(extra < 0 && errno == EAGAIN); /* the server did take them all */
    assert_int_equal(st.open, 0);              /* and none of them lingers */
    teardown_server(loop, srv, &st);
}

/*
 * A TLS client that connects and then says nothing used to hold its fd and
 * memory for as long as it liked (echo_server --tls closed 0 of 20 such
 * clients in 3 s). The server's handshake timeout closes it with
 * TS_ETIMEDOUT; a negative timeout turns the limit off.
 */
typedef struct hs_rec {
    ts_iostream *s;
    int close_error;
    bool closed;
} hs_rec;

static void hs_closed(ts_iostream *s, void *arg)
{
    hs_rec *r = arg;
    r->close_error = ts_iostream_error(s);
    r->closed = true;
}

static int hs_handle(ts_tcpserver *srv, ts_iostream *s, const struct sockaddr *addr, socklen_t len, void *arg)
{
    (void)srv, (void)addr, (void)len;
    hs_rec *r = arg;
    r->s = s;
    ts_iostream_set_close_callback(s, hs_closed, r);
    return 0;
}

static bool hs_accepted(void *arg) { return ((hs_rec *)arg)->s != NULL; }

static void stalled_handshake(double timeout, hs_rec *r, int *client)
{
    const tu_certs *certs = tu_certs_get();
    ts_ioloop *loop = tu_loop_new(20);
    SSL_CTX *sctx = tu_tls_server_ctx(certs->server_cert, certs->server_key, 0, 0);
    ts_tcpserver_options o = {.size = sizeof(o), .ssl_ctx = sctx, .handshake_timeout = timeout};
    ts_tcpserver *srv = ts_tcpserver_new(loop, hs_handle, r, &o);
    SSL_CTX_free(sctx);
    assert_non_null(srv);
    assert_int_equal(ts_tcpserver_listen(srv, 0, "127.0.0.1"), 0);
    *client = nh_connect(AF_INET, ts_tcpserver_port(srv), 2);
    assert_true(*client >= 0);
    assert_true(tu_run_until(loop, hs_accepted, r, 5));
    if (timeout > 0) {
        double t0 = ts_ioloop_time(loop);
        tu_run_until_flag(loop, &r->closed, 5);
        double took = ts_ioloop_time(loop) - t0;
        assert_true(took >= timeout * 0.5 && took < timeout + 2.0);
        char b;
        assert_true(nh_read_line(*client, &b, 1, 2.0) <= 0); /* the client sees its connection end */
    } else {
        tu_run_for(loop, 0.6);
        assert_false(r->closed);
    }
    close(*client);
    if (r->s) {
        ts_iostream_free(r->s);
        r->s = NULL;
    }
    ts_tcpserver_free(srv);
    tu_loop_free(loop);
}

static void test_tls_handshake_timeout(void **state)
{
    (void)state;
    hs_rec r = {0};
    int c;
    stalled_handshake(0.3, &r, &c);
    assert_int_equal(r.close_error, TS_ETIMEDOUT);

    hs_rec off = {0};
    stalled_handshake(-1, &off, &c);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_many_concurrent_clients),
        cmocka_unit_test(test_stop_keeps_live_connections),
        cmocka_unit_test(test_handle_stream_error_is_logged),
        cmocka_unit_test(test_nodelay_option_and_unix_socket),
        cmocka_unit_test(test_listen_all_interfaces),
        cmocka_unit_test(test_bind_then_start),
        cmocka_unit_test(test_free_inside_handler),
        cmocka_unit_test(test_emfile_server_recovers),
        cmocka_unit_test(test_start_two_processes),
        cmocka_unit_test(test_children_get_their_own_thread_pool),
        cmocka_unit_test(test_tls_connection_reset_before_accept),
        cmocka_unit_test(test_tls_handshake_timeout),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
