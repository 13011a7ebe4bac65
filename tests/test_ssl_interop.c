/*
 * TLS streams against real peers on loopback: `openssl s_server` (our
 * client; TLS 1.2 and 1.3; ALPN), `openssl s_client` (our server; both
 * versions, verifying our certificate) and nginx serving HTTPS (a small page
 * and an 8 MiB file checked byte for byte). Each peer is spawned from the
 * test with fork/exec on a free port and killed at the end. Skipped (not
 * failed) when openssl or nginx is not installed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"
#include "tls_certs.h"
#include "tls_pump.h"
#include "tls_streams.h"

#define NGINX "/usr/sbin/nginx"

static ts_ioloop *g_loop;
static const tu_certs *C;
static char g_tmp[PATH_MAX];

static int setup(void **state)
{
    (void)state;
    g_loop = tu_fixture_begin(60);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tu_fixture_end(g_loop);
    g_loop = NULL;
    return 0;
}

/* ---- child processes ---------------------------------------------------------------- */

static bool in_path(const char *prog)
{
    const char *path = getenv("PATH");
    char buf[PATH_MAX];
    if (prog[0] == '/')
        return access(prog, X_OK) == 0;
    for (const char *p = path ? path : "/usr/bin:/bin"; *p;) {
        const char *e = strchr(p, ':');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        snprintf(buf, sizeof buf, "%.*s/%s", (int)n, p, prog);
        if (access(buf, X_OK) == 0)
            return true;
        p += n + (e != NULL);
    }
    return false;
}

/* Starts argv with stdin/stdout on the given fds (-1: /dev/null) and stderr appended to log. */
static pid_t spawn(char *const argv[], int in_fd, int out_fd, const char *log)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int null = open("/dev/null", O_RDWR);
        int err = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        dup2(in_fd >= 0 ? in_fd : null, 0);
        dup2(out_fd >= 0 ? out_fd : null, 1);
        dup2(err >= 0 ? err : null, 2);
        signal(SIGPIPE, SIG_DFL);
        execvp(argv[0], argv);
        _exit(127);
    }
    return pid;
}

/* Ends a child: SIGTERM, then SIGKILL after 3 s. Returns its wait status. */
static int stop(pid_t pid)
{
    int st = 0;
    kill(pid, SIGTERM);
    for (int i = 0; i < 300; i++) {
        if (waitpid(pid, &st, WNOHANG) == pid)
            return st;
        usleep(10000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    return st;
}

/* Waits until @p path contains @p needle; returns a pointer into a static copy of it, or NULL. */
static const char *wait_for_text(const char *path, const char *needle, double timeout)
{
    static char buf[8192];
    for (double end = tu_now() + timeout; tu_now() < end; usleep(20000)) {
        FILE *f = fopen(path, "r");
        if (f == NULL)
            continue;
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = '\0';
        const char *hit = strstr(buf, needle);
        if (hit)
            return hit;
    }
    return NULL;
}

static int free_port(void)
{
    int port;
    int l = tu_tcp_listen(&port);
    assert_true(l >= 0);
    close(l);
    return port;
}

static bool port_open(int port, double timeout)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    for (double end = tu_now() + timeout; tu_now() < end; usleep(20000)) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        int ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
        close(fd);
        if (ok)
            return true;
    }
    return false;
}

static void tmp_path(char *out, const char *name)
{
    int n = snprintf(out, PATH_MAX, "%s/%s", g_tmp, name);
    assert_true(n > 0 && n < PATH_MAX);
}

/* ---- our client ------------------------------------------------------------------- */

/* A TLS client stream connected (and handshaken) to 127.0.0.1:port. */
static ts_iostream *connect_client(int port, const char *const *alpn, int version, int *status)
{
    ts_ssl_context_options co = {.size = sizeof co, .ca_file = C->ca_cert, .alpn_protocols = alpn,
                                 .min_version = version, .max_version = version};
    ts_ssl_options o = {.size = sizeof o, .ctx_options = &co, .server_hostname = "localhost"};
    int err = 0;
    ts_iostream *s = ts_iostream_new_ssl(g_loop, socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), &o, NULL, &err);
    assert_non_null(s);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ts_future *f = ts_iostream_connect_future(s, (struct sockaddr *)&a, sizeof a);
    assert_int_equal(ts_ioloop_run_sync(g_loop, f, 10), 0);
    *status = ts_future_error(f);
    ts_future_unref(f);
    return s;
}

static ts_bytes *read_until(ts_iostream *s, const char *delim)
{
    ts_future *f = ts_iostream_read_until_future(s, delim, strlen(delim), 0);
    assert_int_equal(ts_ioloop_run_sync(g_loop, f, 10), 0);
    if (ts_future_error(f))
        fail_msg("read failed: %s (%s)", ts_err_name(ts_future_error(f)), ts_iostream_error_detail(s));
    ts_bytes *b = ts_future_steal_result(f);
    ts_future_unref(f);
    return b;
}

static void test_client_vs_openssl_s_server(void **state)
{
    (void)state;
    if (!in_path("openssl"))
        skip();
    const char *versions[] = {"-tls1_2", "-tls1_3"};
    const char *names[] = {"TLSv1.2", "TLSv1.3"};
    int nums[] = {TLS1_2_VERSION, TLS1_3_VERSION};
    for (int v = 0; v < 2; v++) {
        char out[PATH_MAX], log[PATH_MAX];
        tmp_path(out, "s_server.out");
        tmp_path(log, "s_server.log");
        unlink(out);
        int ofd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        /* -rev: a line-reversing echo server; -alpn: what it will agree to. */
        char *argv[] = {"openssl", "s_server", "-accept", "127.0.0.1:0", "-cert", (char *)C->server_cert,
                        "-key", (char *)C->server_key, (char *)versions[v], "-rev", "-alpn", "h2,http/1.1", NULL};
        pid_t pid = spawn(argv, -1, ofd, log);
        close(ofd);
        const char *acc = wait_for_text(out, "ACCEPT 127.0.0.1:", 10);
        assert_non_null(acc);
        int port = atoi(acc + strlen("ACCEPT 127.0.0.1:"));
        assert_true(port > 0);

        const char *alpn[] = {"h2", NULL};
        int rc;
        ts_iostream *s = connect_client(port, alpn, nums[v], &rc);
        if (rc != 0)
            fail_msg("connect: %s (%s)", ts_err_name(rc), ts_iostream_error_detail(s));
        assert_string_equal(ts_iostream_ssl_version(s), names[v]);
        assert_string_equal(ts_iostream_ssl_alpn_protocol(s), "h2");
        ts_bytes *subj = ts_iostream_ssl_peer_subject(s);
        assert_string_equal(subj->data, "CN=localhost,O=tstream test");
        ts_bytes_free(subj);

        char line[4001];
        for (int i = 0; i < 4000; i++)
            line[i] = (char)('a' + i % 26);
        line[4000] = '\n';
        for (int round = 0; round < 3; round++) {
            assert_int_equal(ts_iostream_write(s, line, sizeof line, NULL, NULL), 0);
            ts_bytes *b = read_until(s, "\n");
            assert_int_equal(b->len, sizeof line);
            for (int i = 0; i < 4000; i++)
                assert_int_equal(b->data[i], line[3999 - i]);
            ts_bytes_free(b);
        }
        ts_iostream_free(s); /* close_notify */
        tu_run_for(g_loop, 0.05);
        stop(pid);
    }
}

/* ---- our server ------------------------------------------------------------------- */

typedef struct server {
    int listener;
    SSL_CTX *ctx;
    ts_iostream *conn;
    int version;
    bool replied;
} server;

static void on_line(ts_iostream *s, int status, const char *data, size_t len, void *arg)
{
    server *srv = arg;
    if (status != 0)
        return;
    srv->version = ts_iostream_ssl_version_number(s);
    ts_iostream_write(s, "echo: ", 6, NULL, NULL);
    ts_iostream_write(s, data, len, NULL, NULL);
    srv->replied = true;
}

static void on_echo_written(ts_iostream *s, int status, void *arg)
{
    (void)status, (void)arg;
    ts_iostream_close(s, 0);
}

static void on_line_then_close(ts_iostream *s, int status, const char *data, size_t len, void *arg)
{
    on_line(s, status, data, len, arg);
    /* Close (with close_notify) once the reply is out: closing now would drop it. */
    ts_iostream_write(s, NULL, 0, on_echo_written, NULL);
}

static void on_accept(ts_ioloop *loop, int fd, int events, void *arg)
{
    (void)events;
    server *srv = arg;
    int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (c < 0 || srv->conn != NULL) {
        if (c >= 0)
            close(c);
        return;
    }
    ts_ssl_options o = {.size = sizeof o, .ctx = srv->ctx, .server_side = true};
    srv->conn = ts_iostream_new_ssl(loop, c, &o, NULL, NULL);
    assert_non_null(srv->conn);
    ts_iostream_read_until(srv->conn, "\n", 1, 0, on_line_then_close, srv);
}

typedef struct collected {
    bool done;
    int status;
    char text[256];
} collected;

static void on_client_output(ts_iostream *s, int status, const char *data, size_t len, void *arg)
{
    (void)s;
    collected *c = arg;
    c->done = true;
    c->status = status;
    snprintf(c->text, sizeof c->text, "%.*s", (int)len, data ? data : "");
}

static void test_server_vs_openssl_s_client(void **state)
{
    (void)state;
    if (!in_path("openssl"))
        skip();
    const char *versions[] = {"-tls1_2", "-tls1_3"};
    int nums[] = {TLS1_2_VERSION, TLS1_3_VERSION};
    for (int v = 0; v < 2; v++) {
        server srv = {.ctx = tu_tls_server_ctx(C->server_cert, C->server_key, 0, 0)};
        int port;
        srv.listener = tu_tcp_listen(&port);
        assert_int_equal(ts_ioloop_add_handler(g_loop, srv.listener, TS_IOLOOP_READ, on_accept, &srv), 0);
        char connect_to[64], log[PATH_MAX];
        snprintf(connect_to, sizeof connect_to, "127.0.0.1:%d", port);
        tmp_path(log, "s_client.log");
        int in[2], out[2];
        assert_int_equal(pipe2(in, O_CLOEXEC), 0);
        assert_int_equal(pipe2(out, O_CLOEXEC), 0);
        /* s_client verifies us against the test CA and the name; it fails on any verify error. */
        char *argv[] = {"openssl", "s_client", "-connect", connect_to, "-servername", "localhost",
                        "-verify_hostname", "localhost", "-CAfile", (char *)C->ca_cert, "-verify_return_error",
                        (char *)versions[v], "-quiet", NULL};
        pid_t pid = spawn(argv, in[0], out[1], log);
        close(in[0]);
        close(out[1]);
        const char *msg = "ping from s_client\n";
        assert_int_equal(write(in[1], msg, strlen(msg)), (ssize_t)strlen(msg));
        /* Its stdout is just another stream to read until it closes. */
        ts_iostream *po = ts_iostream_new_pipe(g_loop, out[0], NULL);
        collected got = {0};
        ts_iostream_read_until_close(po, on_client_output, &got);
        tu_run_until_flag(g_loop, &got.done, 15);
        assert_int_equal(got.status, 0);
        assert_string_equal(got.text, "echo: ping from s_client\n");
        assert_int_equal(srv.version, nums[v]);
        int st = 0;
        for (int i = 0; i < 300 && waitpid(pid, &st, WNOHANG) != pid; i++)
            usleep(10000);
        if (!WIFEXITED(st))
            st = stop(pid);
        assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0); /* s_client saw a clean, verified session */
        close(in[1]);
        ts_iostream_free(po);
        ts_iostream_free(srv.conn);
        ts_ioloop_remove_handler(g_loop, srv.listener);
        close(srv.listener);
        SSL_CTX_free(srv.ctx);
    }
}

/* ---- nginx ------------------------------------------------------------------------- */

#define BIG (8u << 20)

static pid_t start_nginx(int *port_out)
{
    char conf[PATH_MAX], html[PATH_MAX], big[PATH_MAX], log[PATH_MAX];
    tmp_path(conf, "nginx.conf");
    tmp_path(html, "html");
    tmp_path(big, "html/big.bin");
    tmp_path(log, "nginx.log");
    mkdir(html, 0700);
    FILE *f = fopen(big, "w");
    char *buf = malloc(BIG);
    tu_pattern_fill(buf, 0, BIG);
    assert_int_equal(fwrite(buf, 1, BIG, f), BIG);
    fclose(f);
    free(buf);
    for (int attempt = 0; attempt < 3; attempt++) {
        int port = free_port();
        f = fopen(conf, "w");
        /* One process, everything under the temp dir, so it runs as any user. */
        fprintf(f,
                "master_process off;\nworker_processes 1;\npid %s/nginx.pid;\nerror_log %s/error.log;\n"
                "events { worker_connections 64; }\n"
                "http {\n access_log off;\n client_body_temp_path %s/t1;\n proxy_temp_path %s/t2;\n"
                " fastcgi_temp_path %s/t3;\n uwsgi_temp_path %s/t4;\n scgi_temp_path %s/t5;\n"
                " server {\n  listen 127.0.0.1:%d ssl;\n  ssl_certificate %s;\n  ssl_certificate_key %s;\n"
                "  ssl_protocols TLSv1.2 TLSv1.3;\n  root %s;\n"
                "  location = / { default_type text/plain; return 200 \"hello from nginx\\n\"; }\n }\n}\n",
                g_tmp, g_tmp, g_tmp, g_tmp, g_tmp, g_tmp, g_tmp, port, C->server_cert, C->server_key, html);
        fclose(f);
        char *argv[] = {NGINX, "-p", g_tmp, "-c", conf, "-e", log, "-g", "daemon off;", NULL};
        pid_t pid = spawn(argv, -1, -1, log);
        if (port_open(port, 10)) {
            *port_out = port;
            return pid;
        }
        stop(pid); /* the port was taken meanwhile: try another */
    }
    fail_msg("nginx did not start");
    return -1;
}

static ts_bytes *https_get(int port, const char *path, int version)
{
    const char *alpn[] = {"http/1.1", NULL};
    int rc;
    ts_iostream *s = connect_client(port, alpn, version, &rc);
    if (rc != 0)
        fail_msg("connect to nginx: %s (%s)", ts_err_name(rc), ts_iostream_error_detail(s));
    assert_string_equal(ts_iostream_ssl_alpn_protocol(s), "http/1.1");
    char req[256];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n", path);
    ts_iostream_write(s, req, (size_t)n, NULL, NULL);
    ts_future *f = ts_iostream_read_until_close_future(s);
    assert_int_equal(ts_ioloop_run_sync(g_loop, f, 20), 0);
    assert_int_equal(ts_future_error(f), 0);
    assert_int_equal(ts_iostream_error(s), 0); /* nginx ends with close_notify */
    ts_bytes *b = ts_future_steal_result(f);
    ts_future_unref(f);
    ts_iostream_free(s);
    return b;
}

static void test_nginx_https(void **state)
{
    (void)state;
    if (access(NGINX, X_OK) != 0)
        skip();
    int port;
    pid_t pid = start_nginx(&port);
    int vers[] = {TLS1_2_VERSION, TLS1_3_VERSION};
    for (int v = 0; v < 2; v++) {
        ts_bytes *b = https_get(port, "/", vers[v]);
        assert_non_null(strstr(b->data, "HTTP/1.1 200"));
        assert_non_null(strstr(b->data, "\r\n\r\nhello from nginx\n"));
        ts_bytes_free(b);
        b = https_get(port, "/big.bin", vers[v]);
        const char *body = strstr(b->data, "\r\n\r\n");
        assert_non_null(body);
        body += 4;
        assert_int_equal(b->len - (size_t)(body - b->data), BIG);
        assert_true(tu_pattern_check(body, 0, BIG, NULL));
        ts_bytes_free(b);
    }
    stop(pid);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_client_vs_openssl_s_server, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_vs_openssl_s_client, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nginx_https, setup, teardown),
    };
    signal(SIGPIPE, SIG_DFL);
    C = tu_certs_get();
    if (snprintf(g_tmp, sizeof g_tmp, "%s/interop", C->dir) >= (int)sizeof g_tmp)
        return 1;
    mkdir(g_tmp, 0700);
    if (getenv("TS_TEST_FILTER"))
        cmocka_set_test_filter(getenv("TS_TEST_FILTER"));
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmp); /* before tu_certs removes the directory */
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", g_tmp);
    return failed;
}
