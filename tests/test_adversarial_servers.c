/*
 * Adversarial clients against the example servers (ctest label
 * `adversarial`): the binaries of this build (examples/echo_server,
 * examples/http_server) run as child processes on loopback, and plain
 * blocking sockets misbehave at them:
 *   - an accept storm past the server's RLIMIT_NOFILE (64): the server
 *     serves what it can hold, sheds one connection at a time while it
 *     backs off accepting (the rest wait in the backlog), does not spin
 *     (CPU measured from /proc), and once the storm is gone it is back to
 *     its baseline fds and serves again;
 *   - an HTTP request head that never ends: 431 (or a close) within the
 *     16 KiB head limit, bounded VmRSS, the server still serves.
 * Each test bounds its time with alarm() and stops its child.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "net_helpers.h"
#include "testutil.h"

typedef struct child {
    pid_t pid;
    int port;
} child;

/* Starts an example server on an ephemeral port with RLIMIT_NOFILE @p nofile (0: unchanged). */
static void child_start(child *c, const char *name, long nofile, const char *const *extra)
{
    char bin[4096];
    snprintf(bin, sizeof bin, "%s/examples/%s", TS_TEST_BINDIR, name);
    if (access(bin, X_OK) != 0)
        skip(); /* examples not built */
    int errp[2];
    assert_int_equal(pipe(errp), 0);
    c->pid = fork();
    assert_true(c->pid >= 0);
    if (c->pid == 0) {
        dup2(errp[1], 2);
        close(errp[0]);
        close(errp[1]);
        if (nofile) {
            struct rlimit rl = {(rlim_t)nofile, (rlim_t)nofile};
            setrlimit(RLIMIT_NOFILE, &rl);
        }
        const char *argv[8] = {bin, "0", "--address", "127.0.0.1"};
        for (int i = 0; extra && extra[i] && i < 3; i++)
            argv[4 + i] = extra[i];
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    close(errp[1]);
    /* "...: listening on 127.0.0.1:PORT" on its stderr */
    char line[512];
    size_t n = 0;
    double t0 = nh_now();
    c->port = 0;
    while (n + 1 < sizeof line && nh_now() - t0 < 10) {
        ssize_t r = read(errp[0], line + n, 1);
        if (r <= 0)
            break;
        if (line[n++] == '\n') {
            line[n] = '\0';
            const char *p = strstr(line, "127.0.0.1:");
            if (p) {
                c->port = atoi(p + 10);
                break;
            }
            n = 0;
        }
    }
    close(errp[0]); /* later log lines go nowhere (EPIPE is ignored by the servers' streams) */
    assert_true(c->port > 0);
}

static int child_stop(child *c)
{
    kill(c->pid, SIGTERM);
    int st = 0;
    for (int i = 0; i < 100; i++) {
        if (waitpid(c->pid, &st, WNOHANG) == c->pid)
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        usleep(50000);
    }
    kill(c->pid, SIGKILL);
    waitpid(c->pid, &st, 0);
    return -1;
}

static int child_fds(const child *c)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/fd", (int)c->pid);
    DIR *d = opendir(path);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

/* /proc/PID/@p what, NUL-terminated in @p buf; false if it cannot be read. */
static bool read_proc(const child *c, const char *what, char *buf, size_t len)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/%s", (int)c->pid, what);
    int fd = open(path, O_RDONLY);
    ssize_t n = fd >= 0 ? read(fd, buf, len - 1) : -1;
    if (fd >= 0)
        close(fd);
    buf[n > 0 ? n : 0] = '\0';
    return n > 0;
}

static double child_cpu(const child *c)
{
    char buf[1024];
    unsigned long ut = 0, st = 0;
    const char *p = read_proc(c, "stat", buf, sizeof buf) ? strrchr(buf, ')') : NULL; /* after the name */
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static long child_rss_kb(const child *c)
{
    char buf[4096];
    const char *p = read_proc(c, "status", buf, sizeof buf) ? strstr(buf, "VmRSS:") : NULL;
    return p ? strtol(p + 6, NULL, 10) : -1;
}

/* One echoed line on a fresh connection. */
static bool echo_works(int port)
{
    int fd = nh_connect(AF_INET, port, 2);
    if (fd < 0)
        return false;
    char buf[64];
    bool ok = nh_write_all(fd, "still here\n", 11) == 0 && nh_read_line(fd, buf, sizeof buf, 2) == 11 &&
              memcmp(buf, "still here\n", 11) == 0;
    close(fd);
    return ok;
}

#define STORM 300

static void test_accept_storm_past_rlimit_nofile(void **state)
{
    (void)state;
    alarm(60);
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < STORM + 64) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur < STORM + 64)
        skip();
    int fds_before = tu_count_fds();
    child c;
    child_start(&c, "echo_server", 64, NULL);
    assert_true(echo_works(c.port));
    int base_fds = child_fds(&c);
    int cl[STORM], served = 0, shed = 0, waiting = 0;
    for (int i = 0; i < STORM; i++)
        cl[i] = nh_connect(AF_INET, c.port, 2);
    double cpu0 = child_cpu(&c);
    for (int i = 0; i < STORM; i++) {
        char buf[16];
        if (cl[i] < 0 || nh_write_all(cl[i], "x\n", 2) != 0) {
            shed++;
            continue;
        }
        /* Accepted in order: once one waits, the later ones get only a short look. */
        ssize_t r = nh_read_line(cl[i], buf, sizeof buf, waiting ? 0.01 : 1.0);
        if (r == 2)
            served++;
        else if (r == -ETIMEDOUT)
            waiting++;
        else
            shed++;
    }
    /* The server at its limit: it must wait, not spin. */
    double cpu_at = child_cpu(&c);
    usleep(1000 * 1000);
    double spin = child_cpu(&c) - cpu_at;
    int fds_at_limit = child_fds(&c);
    for (int i = 0; i < STORM; i++)
        if (cl[i] >= 0)
            close(cl[i]);
    int fds_after = -1;
    for (int i = 0; i < 50; i++) {
        usleep(100 * 1000);
        if ((fds_after = child_fds(&c)) <= base_fds)
            break;
    }
    bool recovered = echo_works(c.port);
    printf("# %d connects at RLIMIT_NOFILE 64: %d served, %d shed, %d waiting; server fds %d at the limit; CPU %.2f s "
           "for the storm, %.2f s in 1 s at the limit; fds %d -> %d after; serves again: %s\n", STORM, served, shed,
           waiting, fds_at_limit, cpu_at - cpu0, spin, base_fds, fds_after, recovered ? "yes" : "no");
    assert_true(served > 0);
    assert_true(served < STORM); /* the limit was really reached */
    assert_true(spin < 0.3);     /* no busy loop at EMFILE */
    assert_true(fds_after <= base_fds);
    assert_true(recovered);
    assert_int_equal(child_stop(&c), 0);
    assert_int_equal(tu_count_fds(), fds_before);
    alarm(0);
}

static void test_http_head_that_never_ends(void **state)
{
    (void)state;
    alarm(60);
    int fds_before = tu_count_fds();
    child c;
    child_start(&c, "http_server", 0, NULL);
    long rss0 = child_rss_kb(&c);
    int fd = nh_connect(AF_INET, c.port, 2);
    assert_true(fd >= 0);
    tu_set_nonblock(fd);
    static const char start[] = "GET / HTTP/1.1\r\nHost: x\r\n";
    char hdr[1024];
    memset(hdr, 'a', sizeof hdr);
    memcpy(hdr, "X-Flood: ", 9);
    hdr[sizeof hdr - 2] = '\r', hdr[sizeof hdr - 1] = '\n';
    size_t sent = (size_t)send(fd, start, sizeof start - 1, MSG_NOSIGNAL);
    char resp[256] = {0};
    size_t got = 0;
    bool closed = false;
    double t0 = nh_now();
    while (sent < (8u << 20) && !closed && got < 12 && nh_now() - t0 < 20) {
        ssize_t w = send(fd, hdr, sizeof hdr, MSG_NOSIGNAL);
        if (w > 0)
            sent += (size_t)w;
        else if (w < 0 && errno != EAGAIN)
            closed = true;
        ssize_t r = recv(fd, resp + got, sizeof resp - 1 - got, 0);
        if (r > 0)
            got += (size_t)r;
        else if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
            closed = true;
        if (w < 0 && r < 0)
            usleep(1000);
    }
    long rss1 = child_rss_kb(&c);
    close(fd);
    bool answered = strncmp(resp, "HTTP/1.1 431", 12) == 0;
    printf("# an endless request head: %zu KiB sent, then %s; server VmRSS %ld -> %ld KiB\n", sent / 1024,
           answered ? "431" : closed ? "closed" : "nothing", rss0, rss1);
    assert_true(answered || closed);
    assert_true(sent < (8u << 20));
    assert_true(rss1 - rss0 < 16 * 1024);
    int ok = nh_connect(AF_INET, c.port, 2);
    assert_true(ok >= 0);
    static const char req[] = "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    assert_int_equal(nh_write_all(ok, req, sizeof req - 1), 0);
    char line[64];
    assert_true(nh_read_line(ok, line, sizeof line, 2) > 0);
    assert_memory_equal(line, "HTTP/1.1 200", 12); /* still serving */
    close(ok);
    assert_int_equal(child_stop(&c), 0);
    assert_int_equal(tu_count_fds(), fds_before);
    alarm(0);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accept_storm_past_rlimit_nofile),
        cmocka_unit_test(test_http_head_that_never_ends),
    };
    return cmocka_run_group_tests_name("adversarial_servers", tests, NULL, NULL);
}
