/*
 * The loop's thread pool. Workers run jobs and hand them back through
 * ts_ioloop_add_callback; on the loop's thread each job's plain done
 * callback gets its result. Every job stays on the executor's list until it
 * is delivered, so freeing the loop can still tell the jobs that never came
 * back (TS_ECANCELLED). Futures are not this file's: ts_ioloop_run_in_executor
 * (future.c) wraps a job in one.
 */
#include <stdlib.h>

#include "ioloop_int.h"

typedef struct job {
    struct job *next_queued;
    struct job *prev_all, *next_all;
    ts_executor_fn fn;
    void *arg;
    ts__executor_done_cb done;
    void *done_arg;
    void *result;
    int err;
} job;

struct ts__executor {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    job *qhead, *qtail; /* waiting to run */
    job *all;           /* every job not yet delivered (loop thread + workers, under lock) */
    bool shutdown;
    int nthreads;
    pthread_t threads[];
};

static void unlink_all(ts__executor *ex, job *j)
{
    if (j->prev_all)
        j->prev_all->next_all = j->next_all;
    else
        ex->all = j->next_all;
    if (j->next_all)
        j->next_all->prev_all = j->prev_all;
}

static void deliver(ts_ioloop *loop, void *arg)
{
    job *j = arg;
    ev_unref(loop->ev); /* taken when the job was queued */
    ts__executor *ex = loop->executor;
    pthread_mutex_lock(&ex->lock);
    unlink_all(ex, j);
    pthread_mutex_unlock(&ex->lock);
    ts__executor_done_cb done = j->done;
    void *done_arg = j->done_arg;
    void *result = j->err ? NULL : j->result;
    int err = j->err;
    ts__free(j);
    done(loop, result, err, done_arg);
}

static void *worker(void *arg)
{
    ts_ioloop *loop = arg;
    ts__executor *ex = loop->executor;
    pthread_mutex_lock(&ex->lock);
    for (;;) {
        while (!ex->qhead && !ex->shutdown)
            pthread_cond_wait(&ex->cond, &ex->lock);
        if (ex->shutdown)
            break;
        job *j = ex->qhead;
        ex->qhead = j->next_queued;
        if (!ex->qhead)
            ex->qtail = NULL;
        pthread_mutex_unlock(&ex->lock);
        j->err = 0;
        j->result = j->fn(j->arg, &j->err);
        pthread_mutex_lock(&ex->lock);
        if (ts_ioloop_add_callback(loop, deliver, j) < 0) /* stays on the list; released when the loop is freed */
            ts_log(TS_LOG_ERROR, "executor: out of memory handing a finished job back to the loop");
    }
    pthread_mutex_unlock(&ex->lock);
    return NULL;
}

static ts__executor *executor_get(ts_ioloop *loop)
{
    if (loop->executor)
        return loop->executor;
    int n = loop->executor_threads;
    ts__executor *ex = ts__calloc(1, sizeof *ex + (size_t)n * sizeof(pthread_t));
    if (!ex)
        return NULL;
    pthread_mutex_init(&ex->lock, NULL);
    pthread_cond_init(&ex->cond, NULL);
    loop->executor = ex;
    for (int i = 0; i < n; i++) {
        if (pthread_create(&ex->threads[i], NULL, worker, loop) != 0)
            break;
        ex->nthreads++;
    }
    if (ex->nthreads == 0) {
        loop->executor = NULL;
        pthread_mutex_destroy(&ex->lock);
        pthread_cond_destroy(&ex->cond);
        ts__free(ex);
        return NULL;
    }
    return ex;
}

int ts__executor_submit(ts_ioloop *loop, ts_executor_fn fn, void *arg, ts__executor_done_cb done, void *done_arg)
{
    ts__executor *ex = executor_get(loop);
    if (!ex)
        return TS_ENOMEM;
    job *j = ts__calloc(1, sizeof *j);
    if (!j)
        return TS_ENOMEM;
    j->fn = fn;
    j->arg = arg;
    j->done = done;
    j->done_arg = done_arg;
    pthread_mutex_lock(&ex->lock);
    j->next_all = ex->all;
    if (ex->all)
        ex->all->prev_all = j;
    ex->all = j;
    if (ex->qtail)
        ex->qtail->next_queued = j;
    else
        ex->qhead = j;
    ex->qtail = j;
    pthread_cond_signal(&ex->cond);
    pthread_mutex_unlock(&ex->lock);
    /*
     * A job in flight keeps the libev loop alive, as an active watcher
     * would: a host running a borrowed loop with ev_run() (and so a
     * TCPClient name lookup) must not see ev_run return before the result
     * is handed back. Released in deliver(), on the loop's thread.
     */
    ev_ref(loop->ev);
    return 0;
}

int ts_ioloop_set_executor_threads(ts_ioloop *loop, int nthreads)
{
    if (nthreads < 1 || nthreads > 256)
        return TS_EINVAL;
    if (loop->executor)
        return TS_ESTATE;
    loop->executor_threads = nthreads;
    return 0;
}

void ts__executor_free(ts_ioloop *loop)
{
    ts__executor *ex = loop->executor;
    if (!ex)
        return;
    pthread_mutex_lock(&ex->lock);
    ex->shutdown = true;
    pthread_cond_broadcast(&ex->cond);
    pthread_mutex_unlock(&ex->lock);
    for (int i = 0; i < ex->nthreads; i++)
        pthread_join(ex->threads[i], NULL);
    /* Deliver what finished (its callback may be queued); drop what never ran. */
    for (int round = 0; round < 64 && (loop->head || loop->xhead); round++) {
        ts__ioloop_run_queued(loop);
    }
    while (ex->all) {
        job *j = ex->all;
        unlink_all(ex, j);
        ev_unref(loop->ev); /* the reference it held on a libev loop that may outlive us */
        /* A result it made (it ran, but its hand-back failed) goes with it, for the owner to free. */
        void *result = j->err ? NULL : j->result;
        ts__executor_done_cb done = j->done;
        void *done_arg = j->done_arg;
        ts__free(j);
        done(loop, result, TS_ECANCELLED, done_arg);
    }
    pthread_mutex_destroy(&ex->lock);
    pthread_cond_destroy(&ex->cond);
    ts__free(ex);
    loop->executor = NULL;
}
