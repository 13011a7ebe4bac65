/* Private declarations shared between the library's source files. */
#ifndef TSTREAM_INTERNAL_H
#define TSTREAM_INTERNAL_H

#include <ev.h>

#include "tstream/common.h"
#include "tstream/ioloop.h"

#define TS__UNUSED(x) ((void)(x))
#define TS__ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define TS__MIN(a, b) ((a) < (b) ? (a) : (b))
#define TS__MAX(a, b) ((a) > (b) ? (a) : (b))

/* Allocation shortcuts: every allocation in the library goes through these. */
#define ts__malloc(n) ts_malloc(n)
#define ts__realloc(p, n) ts_realloc((p), (n))
#define ts__free(p) ts_free(p)
void *ts__calloc(size_t n, size_t size);
char *ts__strdup(const char *s);

/* Reads the monotonic clock without a loop (seconds). */
double ts__monotonic(void);

/*
 * A queued loop callback. A node embedded in the object that queued it
 * (ts__ioloop_add_callback_node) is its own argument: that
 * is how the loop knows not to recycle or free it, and the callback finds
 * its object from the node.
 */
typedef struct ts__cbnode {
    struct ts__cbnode *next;
    ts_ioloop_cb cb;
    void *arg;
} ts__cbnode;
static inline bool ts__cbnode_embedded(const ts__cbnode *n) { return n->arg == n; }

typedef struct ts__loop_member ts__loop_member;

/*
 * Queues a library completion, the run of loop member @p m (its ops' run()),
 * to happen right after the current event, in the same loop iteration
 * (before the loop polls again). The queue runs as a batch: runs queued
 * while it runs wait for the next iteration, after the next (non-blocking)
 * poll, so a chain of them cannot starve the fds and timers. Loop thread
 * only. This is how a read satisfied from the buffer completes without an
 * extra poll.
 *
 * The member's own list links hold its place in the queue (it leaves the
 * member list for the queue and goes back before its run), so queuing
 * allocates nothing and cannot fail: an object that must be run (a stream
 * whose handshake is to start, whose close must be told) is never left
 * unscheduled by an out-of-memory. It must not be queued twice at once.
 */
void ts__ioloop_defer(ts_ioloop *loop, ts__loop_member *m);

/*
 * ts_ioloop_add_callback() with the caller's @p node (same queue, same
 * order, any thread), for an object that must hear back and so cannot
 * accept TS_ENOMEM (a completed future's done callbacks). Rules as for
 * ts__ioloop_defer().
 */
void ts__ioloop_add_callback_node(ts_ioloop *loop, ts__cbnode *node, ts_ioloop_cb cb);

/*
 * ts_ioloop_call_later() for a timeout that owns @p arg: if the loop is freed
 * while it is pending, @p drop(arg) runs instead, so the owner can release it.
 */
uint64_t ts__ioloop_call_later_owned(ts_ioloop *loop, double delay, ts_ioloop_cb cb, void *arg,
                                     void (*drop)(void *arg));

/*
 * Runs @p loop until *@p done is true (checked between iterations), until
 * @p timeout seconds pass (<= 0: no limit) or until ts_ioloop_stop(); at
 * least one iteration runs. 0 when *@p done, TS_ETIMEDOUT when the time ran
 * out or the loop was stopped first, TS_ESTATE when the loop is already
 * running, TS_ENOMEM when the timeout's timer cannot be allocated (nothing
 * ran). The loop half of ts_ioloop_run_sync(), which knows no futures.
 */
int ts__ioloop_run_until(ts_ioloop *loop, const bool *done, double timeout);

/*
 * The executor (executor.c): runs @p fn(@p arg) on the loop's thread pool,
 * then @p done(loop, result, err, @p done_arg) on the loop's thread, exactly
 * once: with fn's result (NULL when it set *err) and its *err, or, when the
 * loop is freed first, with TS_ECANCELLED (and the result, if fn ran and
 * succeeded, for the owner to release). 0, or TS_ENOMEM (the pool's threads
 * could not start, or no memory: @p fn and @p done never run). Futures are
 * built on it in future.c; the loop layer knows none.
 */
typedef void (*ts__executor_done_cb)(ts_ioloop *loop, void *result, int err, void *done_arg);
int ts__executor_submit(ts_ioloop *loop, ts_executor_fn fn, void *arg, ts__executor_done_cb done, void *done_arg);

/*
 * An fd handler whose storage belongs to the object that registers it (a
 * stream), so watching an fd allocates nothing past the loop's fd table.
 * The loop indexes it by fd like a ts_ioloop_add_handler() handler (that
 * function fails with -EEXIST on its fd; update and remove by fd say
 * -ENOENT), but never frees it: ts_ioloop_free() only stops one still
 * registered, and its owner must remove it before the loop is freed if it
 * is to be touched again. Events are TS_IOLOOP_READ / TS_IOLOOP_WRITE only.
 */
typedef struct ts__handler ts__handler;
/*
 * An embedded handler's libev callback: @p w is the handler's io, and
 * ts__handler_events() turns @p revents into the READ/WRITE subset that was
 * registered (0: nothing to do). One function per kind of owner.
 */
typedef void (*ts__handler_fn)(struct ev_loop *ev, ev_io *w, int revents);
struct ts__handler {
    ev_io io; /* io.fd is the fd; io.data is the owner's (the loop never reads or writes it) */
};
static inline int ts__handler_events(const ev_io *w, int revents)
{
    int ready = revents & w->events; /* libev reports both on a bad fd, whatever was asked */
    return ((ready & EV_READ) ? TS_IOLOOP_READ : 0) | ((ready & EV_WRITE) ? TS_IOLOOP_WRITE : 0);
}
/** Registers @p h for @p events on @p fd. 0, TS_EINVAL, -EEXIST (the fd has a handler) or TS_ENOMEM. */
int ts__ioloop_add_handler_embedded(ts_ioloop *loop, ts__handler *h, int fd, int events, ts__handler_fn fn);
/** Changes the events a registered @p h waits for (READ and/or WRITE, not none). */
void ts__ioloop_update_handler_embedded(ts_ioloop *loop, ts__handler *h, int events);
/**
 * Unregisters @p h (not called again, even for events already collected).
 * The storage stays the caller's. The owner must do this before the loop is
 * freed: the loop keeps only a bit per fd, not the watcher (a loop member
 * does it when orphaned).
 */
void ts__ioloop_remove_handler_embedded(ts_ioloop *loop, ts__handler *h);

/*
 * Objects that live on a loop and must hear of its end (streams). The loop
 * keeps them on a list; ts_ioloop_free() calls close() on each before it runs
 * the queued completions for the last time, then orphan() on each still
 * there, which must cut every tie to the loop and leave the list. run() is
 * a deferred run (ts__ioloop_defer). Every member of one loop has the same
 * ops (the loop keeps them once, not each member).
 */
typedef struct ts__member_ops {
    void (*close)(ts__loop_member *m);
    void (*orphan)(ts__loop_member *m);
    void (*run)(ts__loop_member *m);
} ts__member_ops;
struct ts__loop_member {
    ts__loop_member *prev, *next; /* on the loop's member list or its deferred-run queue; NULL: on neither */
};
void ts__ioloop_attach(ts_ioloop *loop, ts__loop_member *m, const ts__member_ops *ops);
void ts__ioloop_detach(ts__loop_member *m); /* off the list or the queue; no-op when on neither */

/*
 * Around fork() with the loop already made (ts_tcpserver_start with several
 * processes): before, the loop's thread pool stops (no thread may be caught
 * holding a lock); after, in each process, libev's kernel state is re-made.
 */
void ts__ioloop_before_fork(ts_ioloop *loop);
void ts__ioloop_after_fork(ts_ioloop *loop);

/** Size of the loop's shared read blocks, and how many there may be at once. */
#define TS__LOOP_RDBUF (256u * 1024u)
#define TS__LOOP_RDBUFS 4
/*
 * The loop's shared read blocks (TS__LOOP_RDBUF bytes each), lent to one
 * stream at a time: streams read into one and keep only what the pending
 * read leaves unconsumed. The first is kept for the loop's life; the others
 * exist while lent (several streams in the middle of large messages at
 * once). A block is named by its tag (*tag, 1 .. TS__LOOP_RDBUFS), which the
 * borrower passes back. NULL when none is free and none can be reclaimed or
 * allocated (the stream then reads into a block of its own).
 */
typedef struct ts__rdblock {
    char *base; /* NULL: not allocated */
    bool lent;
    void (*reclaim)(void *keeper); /* set while its holder rests between runs (ts__ioloop_rdbuf_rest) */
    void *keeper;
} ts__rdblock;

/*
 * Free blocks of one size kept for reuse (the write buffers' copy chunks),
 * one pool per loop: steady small writes allocate nothing. At most @c max
 * blocks are kept; loop thread only.
 */
typedef struct ts__pool {
    void *free; /* singly linked through each block's first word */
    uint32_t n, max;
} ts__pool;
/* A loop's write-buffer pools: TS__WB_CHUNK copy chunks, the headers of referencing chunks, and empty queues. */
typedef struct ts__wpools {
    ts__pool chunks, heads, queues;
} ts__wpools;
/*
 * The head of every ts_ioloop (its first member): what the stream core
 * reaches inline on every arrival.
 */
typedef struct ts__loop_head {
    uint64_t search_bytes;               /* bytes the delimiter and regex searches examined (a test statistic) */
    ts__rdblock rdbufs[TS__LOOP_RDBUFS]; /* the shared read blocks */
    ts__wpools wpools;                   /* write-buffer chunks, chunk headers and queues for reuse */
} ts__loop_head;
static inline ts__loop_head *ts__ioloop_head(ts_ioloop *loop) { return (ts__loop_head *)(void *)loop; }

char *ts__ioloop_rdbuf_take_other(ts_ioloop *loop, unsigned *tag);
void ts__ioloop_rdbuf_give_other(ts_ioloop *loop, unsigned tag);
static inline char *ts__ioloop_rdbuf_take(ts_ioloop *loop, unsigned *tag)
{
    /* Blocks past the first exist only while lent: the first is the one that can be free. */
    ts__rdblock *first = &ts__ioloop_head(loop)->rdbufs[0];
    if (first->lent || !first->base)
        return ts__ioloop_rdbuf_take_other(loop, tag);
    first->lent = true;
    *tag = 1;
    return first->base;
}
static inline void ts__ioloop_rdbuf_give(ts_ioloop *loop, unsigned tag)
{
    if (tag != 1) { /* only the first outlives its loan */
        ts__ioloop_rdbuf_give_other(loop, tag);
        return;
    }
    ts__rdblock *first = &ts__ioloop_head(loop)->rdbufs[0];
    first->lent = false;
    first->reclaim = NULL;
}
/*
 * The stream holding block @p tag keeps it between its runs (an unfinished
 * message sits in it and more is on the way): when no block is free, a take
 * by another stream calls @p reclaim(@p keeper), which must give the block
 * back (moving the keeper's bytes out). ts__ioloop_rdbuf_use() ends the rest
 * when the keeper works in it again; giving the block back ends it too.
 */
void ts__ioloop_rdbuf_rest(ts_ioloop *loop, unsigned tag, void (*reclaim)(void *keeper), void *keeper);
void ts__ioloop_rdbuf_use(ts_ioloop *loop, unsigned tag);

static inline ts__wpools *ts__ioloop_write_pools(ts_ioloop *loop) { return &ts__ioloop_head(loop)->wpools; }
/** A block from the pool (NULL: empty). */
static inline void *ts__pool_get(ts__pool *p)
{
    void *b = p ? p->free : NULL;
    if (b) {
        p->free = *(void **)b;
        p->n--;
    }
    return b;
}
/** Keeps @p b for reuse, or frees it when the pool is full (or NULL). */
static inline void ts__pool_put(ts__pool *p, void *b)
{
    if (p && p->n < p->max) {
        *(void **)b = p->free;
        p->free = b;
        p->n++;
        return;
    }
    ts__free(b);
}
/** Frees every block kept. */
void ts__pool_drain(ts__pool *p);
/** Frees the write queues kept in @p queues (with their marker rings). */
void ts__writebuf_pool_drain(ts__pool *queues);

#endif /* TSTREAM_INTERNAL_H */
