/**
 * @file tstream/process.h
 * @brief Pre-fork multi-process servers (Tornado's tornado.process).
 *
 * The Tornado way to use every core: bind the listening sockets
 * (ts_bind_sockets()), fork with ts_fork_processes(), then, in each child,
 * create a loop and add the sockets to a server. All children accept from
 * the same inherited sockets; the kernel spreads the connections.
 */
#ifndef TSTREAM_PROCESS_H
#define TSTREAM_PROCESS_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/** The default for ts_fork_processes()'s max_restarts (Tornado's). */
#define TS_DEFAULT_MAX_RESTARTS 100

/**
 * The number of online processors (Tornado's cpu_count).
 *
 * @return sysconf(_SC_NPROCESSORS_ONLN), at least 1
 */
TS_EXPORT int ts_cpu_count(void);

/**
 * Forks @p num_processes worker processes (Tornado's fork_processes) and
 * returns, in each child, its task id: 0 .. num_processes - 1.
 *
 * - The parent never returns on success: it waits for its children. A child
 *   that dies by a signal or exits with a non-zero status is restarted with
 *   the same task id (in the new child this call returns that id); a child
 *   that exits with status 0 is not. After more than @p max_restarts
 *   restarts in total (negative: TS_DEFAULT_MAX_RESTARTS) the parent gives
 *   up. When every child has exited, **the parent calls exit(0)** (as
 *   Tornado calls sys.exit(0)), so code after this call only ever runs in a
 *   child.
 * - Call it before creating any loop or thread (as Tornado requires no
 *   IOLoop before fork_processes): a child inherits only the calling
 *   thread, and a parent must not hold a running loop while it waits. Open
 *   listening sockets before it, so every child inherits them.
 * - SIGTERM and SIGINT: while it waits, the parent handles both. It passes
 *   the signal on to every child at once, restarts none of them, waits until
 *   all have ended (none is left running or a zombie), restores the
 *   dispositions the program had, and ends itself by the same signal (its
 *   default action: the parent's exit status says "killed by SIGTERM").
 *   Children start with the dispositions the program had before the call.
 * - Progress (start, deaths, restarts) is logged through the log hook.
 *
 * @param num_processes the number of children; <= 0: one per processor (ts_cpu_count())
 * @param max_restarts  restarts allowed in total; negative: TS_DEFAULT_MAX_RESTARTS
 * @return in a child, its task id (>= 0); in the parent only on failure:
 * @retval TS_ESTATE     already called in this process, or in a child of it
 * @retval TS_ECANCELLED too many restarts: the parent stopped waiting;
 *         children still alive are left running, as Tornado's RuntimeError
 *         leaves them
 * @retval -EAGAIN       (or another `-errno`) fork() or waitpid() failed;
 *         children already started are left running
 */
TS_EXPORT int ts_fork_processes(int num_processes, int max_restarts);

/**
 * The task id of this process (Tornado's task_id): the value
 * ts_fork_processes() returned in this child, or -1 in a process that
 * ts_fork_processes() did not create.
 *
 * @return the task id (>= 0), or -1
 */
TS_EXPORT int ts_task_id(void);

#ifdef __cplusplus
}
#endif

#endif /* TSTREAM_PROCESS_H */
