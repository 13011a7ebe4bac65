/*
 * process.c -- pre-fork worker processes (Tornado's fork_processes).
 *
 * What this file does not do: it knows nothing about loops, sockets or
 * streams. The caller binds sockets before forking and builds its loop in
 * each child.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tstream/common.h"
#include "tstream/process.h"

static int task_id = -1;
/* Set once ts_fork_processes() has run in this process (parent or child). */
static bool forked;

/*
 * The parent's children, for its SIGTERM / SIGINT handler: it passes the
 * signal on at once (kill() is async-signal-safe), so no wake-up can be lost
 * between a check and waitpid(); supervise() then stops restarting and waits
 * for every child. Table updates happen with both signals blocked.
 */
static pid_t *volatile g_pids;
static volatile int g_npids;
static volatile sig_atomic_t g_stop_signal;
static struct sigaction g_old_term, g_old_int;

static void on_stop_signal(int sig)
{
    int saved = errno;
    g_stop_signal = sig;
    pid_t *pids = g_pids;
    for (int i = 0; pids && i < g_npids; i++)
        if (pids[i] > 0)
            kill(pids[i], sig);
    errno = saved;
}

static void block_stop_signals(bool block, sigset_t *old)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigprocmask(block ? SIG_BLOCK : SIG_SETMASK, block ? &set : old, block ? old : NULL);
}

static void install_stop_handlers(pid_t *pids, int n)
{
    g_pids = pids;
    g_npids = n;
    g_stop_signal = 0;
    struct sigaction sa;
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: waitpid() returns EINTR and supervise() looks at the flag */
    sigaction(SIGTERM, &sa, &g_old_term);
    sigaction(SIGINT, &sa, &g_old_int);
}

/* Gives the signals back their dispositions from before ts_fork_processes(). */
static void restore_stop_handlers(void)
{
    sigaction(SIGTERM, &g_old_term, NULL);
    sigaction(SIGINT, &g_old_int, NULL);
    g_pids = NULL;
    g_npids = 0;
}

int ts_cpu_count(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1)
        n = sysconf(_SC_NPROCESSORS_CONF);
    if (n < 1) {
        ts_log(TS_LOG_ERROR, "could not detect the number of processors; assuming 1");
        return 1;
    }
    return n > 4096 ? 4096 : (int)n;
}

int ts_task_id(void)
{
    return task_id;
}

/* Returns 0 in the parent (pid recorded in pids[id]), 1 in the child, or -errno. */
static int start_child(pid_t *pids, int id)
{
    sigset_t old;
    block_stop_signals(true, &old);
    pid_t pid = fork();
    if (pid < 0) {
        int err = -errno;
        block_stop_signals(false, &old);
        return err;
    }
    if (pid == 0) {
        task_id = id;
        restore_stop_handlers(); /* a child handles the signals as the program did before */
        block_stop_signals(false, &old);
        return 1;
    }
    pids[id] = pid;
    block_stop_signals(false, &old);
    return 0;
}

static int find_child(const pid_t *pids, int n, pid_t pid)
{
    for (int i = 0; i < n; i++)
        if (pids[i] == pid)
            return i;
    return -1;
}

/* Logs why a child ended; returns true if it must be restarted. */
static bool child_failed(int id, pid_t pid, int status)
{
    if (WIFSIGNALED(status)) {
        ts_log(TS_LOG_WARN, "child %d (pid %d) killed by signal %d, restarting", id, (int)pid, WTERMSIG(status));
        return true;
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) != 0) {
        ts_log(TS_LOG_WARN, "child %d (pid %d) exited with status %d, restarting", id, (int)pid,
               WEXITSTATUS(status));
        return true;
    }
    ts_log(TS_LOG_INFO, "child %d (pid %d) exited normally", id, (int)pid);
    return false;
}

/* The parent's wait loop. Returns a task id in a restarted child, else an error. */
static int supervise(pid_t *pids, int n, int max_restarts)
{
    int alive = n, restarts = 0;
    while (alive > 0) {
        int status;
        pid_t pid = waitpid(-1, &status, 0);
        if (pid < 0) {
            if (errno == EINTR)
                continue;
            int err = -errno;
            ts_log(TS_LOG_ERROR, "fork_processes: waitpid failed: %s", ts_strerror(err));
            return err;
        }
        int id = find_child(pids, n, pid);
        if (id < 0 || WIFSTOPPED(status) || WIFCONTINUED(status))
            continue; /* not one of ours, or not an exit */
        sigset_t old;
        block_stop_signals(true, &old);
        pids[id] = 0;
        block_stop_signals(false, &old);
        alive--;
        if (g_stop_signal)
            continue; /* shutting down: the signal ended it, nothing is restarted */
        if (!child_failed(id, pid, status))
            continue;
        if (++restarts > max_restarts) {
            ts_log(TS_LOG_ERROR, "fork_processes: too many child restarts (%d), giving up", restarts - 1);
            return TS_ECANCELLED;
        }
        int rc = start_child(pids, id);
        if (rc == 1)
            return id;
        if (rc < 0) {
            ts_log(TS_LOG_ERROR, "fork_processes: fork failed: %s", ts_strerror(rc));
            return rc;
        }
        alive++;
    }
    return 0;
}

int ts_fork_processes(int num_processes, int max_restarts)
{
    if (forked || task_id >= 0)
        return TS_ESTATE;
    forked = true;
    if (max_restarts < 0)
        max_restarts = TS_DEFAULT_MAX_RESTARTS;
    if (num_processes <= 0)
        num_processes = ts_cpu_count();
    ts_log(TS_LOG_INFO, "Starting %d processes", num_processes);

    pid_t *pids = ts_malloc(sizeof(*pids) * (size_t)num_processes);
    if (!pids)
        return TS_ENOMEM;
    for (int i = 0; i < num_processes; i++)
        pids[i] = 0;

    install_stop_handlers(pids, num_processes);
    int rc = 0;
    for (int i = 0; i < num_processes; i++) {
        rc = start_child(pids, i);
        if (rc == 1) {
            ts_free(pids);
            return i;
        }
        if (rc < 0) {
            ts_log(TS_LOG_ERROR, "fork_processes: fork failed: %s", ts_strerror(rc));
            restore_stop_handlers();
            ts_free(pids);
            return rc;
        }
    }
    rc = supervise(pids, num_processes, max_restarts);
    if (task_id < 0)
        restore_stop_handlers(); /* (a restarted child already did) */
    ts_free(pids);
    if (task_id >= 0)
        return task_id; /* a restarted child */
    int sig = g_stop_signal;
    if (sig) {
        /* Every child is gone: end the way the signal asked, with its default action. */
        ts_log(TS_LOG_INFO, "fork_processes: signal %d: children stopped, exiting", sig);
        signal(sig, SIG_DFL);
        raise(sig);
        _exit(128 + sig);
    }
    if (rc < 0)
        return rc;
    /*
     * Every child exited cleanly: exit rather than return, so the caller
     * does not fall through into code meant for a child (Tornado's
     * sys.exit(0)).
     */
    exit(0);
}
