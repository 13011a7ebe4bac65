/* The loop's private state, shared by ioloop.c, ioloop_timer.c and executor.c. */
#ifndef TSTREAM_IOLOOP_INT_H
#define TSTREAM_IOLOOP_INT_H

#include <ev.h>
#include <pthread.h>
#include <stdatomic.h>

#include "internal.h"

/* A ts_ioloop_add_handler() handler (allocated by the loop); the fd is io.fd. */
typedef struct ts__user_handler {
    ev_io io; /* first: handler_io_cb finds the handler from its watcher */
    ts_ioloop *loop;
    int events;
    ts_ioloop_handler_cb cb;
    void *arg;
} ts__user_handler;

/* A timeout slot. Ids are (generation << 32 | index + 1): a stale id never matches. */
typedef struct ts__tslot {
    double deadline;
    uint64_t seq;
    ts_ioloop_cb cb;
    void *arg;
    void (*drop)(void *arg); /* called if the loop is freed with the timeout pending */
    uint32_t gen;
    uint32_t heap_idx; /* position in the heap while pending */
    uint32_t next_free;
} ts__tslot;

/* Heap entries carry their sort key, so sifting never touches the slot table. */
typedef struct ts__heapent {
    double deadline;
    uint64_t seq;
    uint32_t slot;
} ts__heapent;

/*
 * A signal slot's state word is (generation << 2 | phase). A producer claims a
 * FREE slot by moving it to BUSY with the next generation, fills cb/arg, then
 * publishes FULL; the loop takes it (FULL -> TAKING), reads cb/arg, frees it.
 * Every change of cb/arg changes the word first, so a compare-and-swap on the
 * word proves that cb/arg read in between belong to it.
 */
enum { TS__SIG_FREE = 0, TS__SIG_BUSY = 1, TS__SIG_FULL = 2, TS__SIG_TAKING = 3, TS__SIG_PHASE = 3 };

typedef struct ts__sigslot {
    atomic_uint state;
    _Atomic(ts_ioloop_cb) cb;
    _Atomic(void *) arg;
} ts__sigslot;

typedef struct ts__executor ts__executor;

/* A shared read block and whom it is lent to. */

struct ts_ioloop {
    ts__loop_head shared; /* first: see ts__ioloop_head() */
    struct ev_loop *ev;
    bool owns_ev;
    bool running;
    atomic_bool stop_requested;
    /* The thread dispatching the loop (a per-thread token, 0: none yet). Claimed by
     * start/run_sync and by the first prepare of any ev_run (embedding); start and
     * run_sync give it up on return, so another thread may run the loop next. */
    atomic_uintptr_t owner;

    ev_prepare prepare;
    ev_check check;
    ev_idle idle;
    ev_async async;
    ev_timer timer;

    /* callbacks queued on the loop's thread (no lock) */
    ts__cbnode *head, *tail;
    /* completions deferred by the library: run as one batch per iteration (see run_pending) */
    ts__loop_member pending; /* head of the deferred-run queue (ts__ioloop_defer), in order */
    ts__cbnode *spare; /* free nodes, reused so steady state allocates nothing */
    size_t nspare;
    /* callbacks queued from other threads */
    pthread_mutex_t xlock;
    ts__cbnode *xhead, *xtail;
    ts__sigslot sig[TS_IOLOOP_SIGNAL_SLOTS];

    /* timeouts: slot table + binary heap of slot indexes ordered by (deadline, seq) */
    ts__tslot *slots;
    uint32_t nslots, free_slot;
    ts__heapent *heap;
    uint32_t nheap;
    uint64_t seq;

    /* ts_ioloop_add_handler() handlers, indexed by fd (their watchers) */
    ts__user_handler **handlers;
    int nhandlers;
    /* fds with an embedded handler (a bit each: the watcher is its owner's, and so is removing it) */
    uint64_t *embedded;
    int nembedded; /* words */

    ts__executor *executor;
    int executor_threads;

    ts__loop_member members; /* list head of the streams on this loop (see ts__ioloop_attach) */
    const ts__member_ops *member_ops; /* what the members' end calls (NULL: none attached yet) */
    ts__loop_member *walk_mark;       /* the marker of the member walk under way (NULL: none) */
};

#define TS__NO_SLOT UINT32_MAX

void ts__timers_init(ts_ioloop *loop);
void ts__timers_free(ts_ioloop *loop);
void ts__executor_free(ts_ioloop *loop);

bool ts__ioloop_on_thread(const ts_ioloop *loop);

/* Runs the callbacks queued so far (used while tearing down). */
void ts__ioloop_run_queued(ts_ioloop *loop);

#endif /* TSTREAM_IOLOOP_INT_H */
