/* Private declarations shared between the library's source files. */
#ifndef TSTREAM_INTERNAL_H
#define TSTREAM_INTERNAL_H

#include "tstream/common.h"
#include "tstream/future.h"
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

/* A queued loop callback. */
typedef struct ts__cbnode {
    struct ts__cbnode *next;
    ts_ioloop_cb cb;
    void *arg;
    bool embedded; /* part of the object that queued it: the loop neither recycles nor frees it */
} ts__cbnode;

/*
 * Queues a library completion to run right after the current event, in the
 * same loop iteration (before the loop polls again). The queue runs as a
 * batch: completions queued while it runs wait for the next iteration, after
 * the next (non-blocking) poll, so a chain of them cannot starve the fds and
 * timers. Loop thread only. This is how a read satisfied from the buffer
 * completes without an extra poll.
 *
 * @p node is the caller's, embedded in the object it schedules, so queuing
 * allocates nothing and cannot fail: an object that must be run (a stream
 * whose handshake is to start, whose close must be told) is never left
 * unscheduled by an out-of-memory. It must not be queued twice at once and
 * must outlive the callback's start (the callback may free it).
 */
void ts__ioloop_defer(ts_ioloop *loop, ts__cbnode *node, ts_ioloop_cb cb, void *arg);

/*
 * ts_ioloop_add_callback() with the caller's @p node (same queue, same
 * order, any thread), for an object that must hear back and so cannot
 * accept TS_ENOMEM (a completed future's done callbacks). Rules as for
 * ts__ioloop_defer().
 */
void ts__ioloop_add_callback_node(ts_ioloop *loop, ts__cbnode *node, ts_ioloop_cb cb, void *arg);

#endif /* TSTREAM_INTERNAL_H */
