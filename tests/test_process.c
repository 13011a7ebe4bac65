/*
 * fork_processes / task_id, after Tornado's test/process_test.py. Each test
 * forks a "manager" process that calls ts_fork_processes(), so the test
 * process itself never becomes a parent that exit()s. Managers run in their
 * own process group, killed as a whole if a test fails.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "net_helpers.h"
#include "testutil.h"
#include "tstream.h"

/* Counters shared between the test, the manager and the workers. */
typedef struct shared {
    int runs;          /* worker starts */
    int ids_seen;      /* bit per task id */
    int bad_task_id;   /* a worker saw ts_task_id() disagree */
    int refork_ok;     /* workers whose second fork_processes got TS_ESTATE */
} shared;

static shared *shared_new(void)
{
    shared *s = mmap(NULL, sizeof(*s), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(s != MAP_FAILED);
    memset(s, 0, sizeof(*s));
    return s;
}

static void shared_free(shared *s)
{
    munmap(s, sizeof(*s));
}

/* Forks a manager in its own process group running @p fn. */
static pid_t spawn_manager(void (*fn)(void *), void *arg)
{
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        setpgid(0, 0);
        fn(arg);
        _exit(99); /* fn must not return */
    }
    setpgid(pid, pid);
    return pid;
}

/* Waits for @p pid up to @p timeout seconds; on timeout kills its group and fails. */
static int wait_manager(pid_t pid, double timeout)
{
    double deadline = nh_now() + timeout;
    int status = 0;
    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            break;
        if (nh_now() > deadline) {
            kill(-pid, SIGKILL);
            waitpid(pid, &status, 0);
            fail_msg("manager %d did not exit in %.1f s", (int)pid, timeout);
        }
        usleep(10000);
    }
    kill(-pid, SIGKILL); /* any worker left behind */
    return status;
}

static void test_task_id_outside(void **state)
{
    (void)state;
    assert_int_equal(ts_task_id(), -1);
    assert_true(ts_cpu_count() >= 1);
}

/* ---- restarts and exits --------------------------------------------------- */

typedef struct restart_arg {
    shared *sh;
    int nprocs;
    int max_restarts;
} restart_arg;

static void note_worker(shared *sh, int id)
{
    __atomic_add_fetch(&sh->runs, 1, __ATOMIC_SEQ_CST);
    __atomic_or_fetch(&sh->ids_seen, 1 << id, __ATOMIC_SEQ_CST);
    if (ts_task_id() != id)
        __atomic_store_n(&sh->bad_task_id, 1, __ATOMIC_SEQ_CST);
    if (ts_fork_processes(1, 0) == TS_ESTATE)
        __atomic_add_fetch(&sh->refork_ok, 1, __ATOMIC_SEQ_CST);
}

/* Worker runs 0 and 1 fail (exit 3, then SIGKILL); run 2 exits cleanly. */
static void flaky_manager(void *p)
{
    restart_arg *a = p;
    int id = ts_fork_processes(1, a->max_restarts);
    if (id < 0)
        _exit(50);
    note_worker(a->sh, id);
    int run = __atomic_load_n(&a->sh->runs, __ATOMIC_SEQ_CST);
    if (run == 1)
        _exit(3);
    if (run == 2)
        raise(SIGKILL);
    _exit(0);
}

static void test_restart_on_failure_then_clean_exit(void **state)
{
    (void)state;
    shared *sh = shared_new();
    restart_arg a = {sh, 1, 5};
    int status = wait_manager(spawn_manager(flaky_manager, &a), 20);
    /* The parent exit(0)s once its only child exited cleanly. */
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_int_equal(sh->runs, 3);
    assert_int_equal(sh->ids_seen, 1);
    assert_int_equal(sh->bad_task_id, 0);
    assert_int_equal(sh->refork_ok, 3);
    shared_free(sh);
}

static void failing_manager(void *p)
{
    restart_arg *a = p;
    int id = ts_fork_processes(a->nprocs, a->max_restarts);
    if (id >= 0) {
        note_worker(a->sh, id);
        _exit(1);
    }
    _exit(id == TS_ECANCELLED ? 42 : 43);
}

static void test_too_many_restarts(void **state)
{
    (void)state;
    shared *sh = shared_new();
    restart_arg a = {sh, 1, 2};
    int status = wait_manager(spawn_manager(failing_manager, &a), 20);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 42); /* gave up with TS_ECANCELLED */
    assert_int_equal(sh->runs, 3);             /* the first run + 2 restarts */
    shared_free(sh);
}

static void clean_manager(void *p)
{
    restart_arg *a = p;
    int id = ts_fork_processes(a->nprocs, a->max_restarts);
    if (id < 0)
        _exit(50);
    note_worker(a->sh, id);
    _exit(0);
}

/* num_processes 0: one per CPU, ids 0..n-1, no restart of clean exits. */
static void test_one_per_cpu(void **state)
{
    (void)state;
    shared *sh = shared_new();
    restart_arg a = {sh, 0, -1};
    int n = ts_cpu_count();
    if (n > 16) {
        printf("# skipped: %d CPUs is more workers than this test wants to fork\n", n);
        shared_free(sh);
        skip();
    }
    int status = wait_manager(spawn_manager(clean_manager, &a), 20);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_int_equal(sh->runs, n);
    assert_int_equal(sh->ids_seen, (1 << n) - 1);
    assert_int_equal(sh->bad_task_id, 0);
    shared_free(sh);
}

/* ---- two serving workers --------------------------------------------------- */

/*
 * Each worker runs a loop with an accept handler on the inherited listener.
 * Per connection it writes "<task id> <pid>\n", then reads one command:
 * "hello" closes the connection, "quit" answers "bye" and exits 0.
 */
typedef struct worker_arg {
    int listen_fd;
} worker_arg;

static int g_worker_id;

static void worker_accept(ts_ioloop *loop, int fd, const struct sockaddr *addr, socklen_t len, void *arg)
{
    (void)addr, (void)len, (void)arg;
    char line[64], cmd[16] = {0};
    int n = snprintf(line, sizeof(line), "%d %d\n", g_worker_id, (int)getpid());
    nh_write_all(fd, line, (size_t)n);
    ssize_t r = nh_read_line(fd, cmd, sizeof(cmd) - 1, 2.0);
    if (r > 0 && strncmp(cmd, "quit", 4) == 0) {
        nh_write_all(fd, "bye\n", 4);
        close(fd);
        ts_ioloop_stop(loop);
        return;
    }
    close(fd);
}

static void serving_manager(void *p)
{
    worker_arg *w = p;
    int id = ts_fork_processes(2, 10);
    if (id < 0)
        _exit(50);
    /* Loops are created only after forking, as Tornado requires. */
    g_worker_id = id;
    ts_ioloop *loop = ts_ioloop_new();
    ts_accept_handler *h;
    if (!loop || ts_add_accept_handler(loop, w->listen_fd, worker_accept, NULL, &h) != 0)
        _exit(51);
    ts_ioloop_start(loop);
    _exit(0);
}

/* One request: returns the worker's id and pid, sending @p cmd. */
static int ask(int port, const char *cmd, int *pid, bool *bye)
{
    char line[64] = {0};
    int c = nh_connect(AF_INET, port, 2);
    if (c < 0)
        return -1;
    ssize_t n = nh_read_line(c, line, sizeof(line) - 1, 3.0);
    int id = -1;
    if (n <= 0 || sscanf(line, "%d %d", &id, pid) != 2) {
        close(c);
        return -1;
    }
    nh_write_all(c, cmd, strlen(cmd));
    if (bye) {
        memset(line, 0, sizeof(line));
        *bye = nh_read_line(c, line, sizeof(line) - 1, 3.0) > 0 && strcmp(line, "bye\n") == 0;
    }
    close(c);
    return id;
}

static void test_two_workers_serve_and_restart(void **state)
{
    (void)state;
    int fds[1];
    assert_int_equal(ts_bind_sockets(0, "127.0.0.1", AF_INET, -1, 0, fds, 1), 1);
    int port = nh_local_port(fds[0]);
    worker_arg w = {fds[0]};
    pid_t mgr = spawn_manager(serving_manager, &w);
    close(fds[0]);

    /* Both task ids answer; hold one connection so the other worker must take the next. */
    int pids[2] = {0, 0};
    double deadline = nh_now() + 10;
    while ((!pids[0] || !pids[1]) && nh_now() < deadline) {
        int held = nh_connect(AF_INET, port, 2);
        char line[64] = {0};
        int hid = -1, hpid = 0;
        if (held >= 0 && nh_read_line(held, line, sizeof(line) - 1, 3.0) > 0 &&
            sscanf(line, "%d %d", &hid, &hpid) == 2 && hid >= 0 && hid < 2)
            pids[hid] = hpid;
        int pid = 0;
        int id = ask(port, "hello\n", &pid, NULL);
        if (id >= 0 && id < 2)
            pids[id] = pid;
        if (held >= 0) {
            nh_write_all(held, "hello\n", 6);
            close(held);
        }
    }
    if (!pids[0] || !pids[1])
        kill(-mgr, SIGKILL);
    assert_true(pids[0] > 0 && pids[1] > 0);
    assert_int_not_equal(pids[0], pids[1]);

    /* SIGKILL task 0: the manager restarts it with the same id, in a new process. */
    assert_int_equal(kill(pids[0], SIGKILL), 0);
    int new0 = 0;
    deadline = nh_now() + 10;
    while (!new0 && nh_now() < deadline) {
        int pid = 0;
        int id = ask(port, "hello\n", &pid, NULL);
        if (id == 0 && pid != pids[0])
            new0 = pid;
        if (id < 0)
            usleep(20000);
    }
    if (!new0)
        kill(-mgr, SIGKILL);
    assert_true(new0 > 0);

    /* "quit" both: clean exits are not restarted, and the manager exit(0)s. */
    bool quit[2] = {false, false};
    deadline = nh_now() + 10;
    while ((!quit[0] || !quit[1]) && nh_now() < deadline) {
        int pid = 0;
        bool bye = false;
        int id = ask(port, "quit\n", &pid, &bye);
        if (id >= 0 && id < 2 && bye)
            quit[id] = true;
        if (id < 0)
            usleep(20000);
    }
    int status = wait_manager(mgr, 10);
    assert_true(quit[0] && quit[1]);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    /* Nobody listens any more. */
    assert_true(nh_connect(AF_INET, port, 1) < 0);
}

/*
 * SIGTERM to the parent: it passes the signal on to its workers, waits for
 * them and ends by the same signal. Before, the parent died alone and its
 * workers went on serving the port as orphans.
 */
static void test_sigterm_to_parent_stops_workers(void **state)
{
    (void)state;
    int fds[1];
    assert_int_equal(ts_bind_sockets(0, "127.0.0.1", AF_INET, -1, 0, fds, 1), 1);
    int port = nh_local_port(fds[0]);
    worker_arg w = {fds[0]};
    pid_t mgr = spawn_manager(serving_manager, &w);
    close(fds[0]);

    int pids[2] = {0, 0};
    double deadline = nh_now() + 10;
    while ((!pids[0] || !pids[1]) && nh_now() < deadline) {
        int pid = 0;
        int id = ask(port, "hello\n", &pid, NULL);
        if (id >= 0 && id < 2)
            pids[id] = pid;
    }
    if (!pids[0] || !pids[1])
        kill(-mgr, SIGKILL);
    assert_true(pids[0] > 0 && pids[1] > 0);

    double t0 = nh_now();
    assert_int_equal(kill(mgr, SIGTERM), 0);
    int status = wait_manager(mgr, 5);
    double took = nh_now() - t0;
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGTERM);
    assert_true(took < 1.0);
    /* No worker outlived the parent (they were reaped, so not even as zombies). */
    assert_int_equal(kill(pids[0], 0), -1);
    assert_int_equal(errno, ESRCH);
    assert_int_equal(kill(pids[1], 0), -1);
    assert_int_equal(errno, ESRCH);
    /* Nobody holds the port any more. */
    int c = nh_connect(AF_INET, port, 1);
    assert_true(c < 0);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_task_id_outside),
        cmocka_unit_test(test_restart_on_failure_then_clean_exit),
        cmocka_unit_test(test_too_many_restarts),
        cmocka_unit_test(test_one_per_cpu),
        cmocka_unit_test(test_two_workers_serve_and_restart),
        cmocka_unit_test(test_sigterm_to_parent_stops_workers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
