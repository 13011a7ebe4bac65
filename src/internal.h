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

/*
 * Queues a library completion to run right after the current event, in the
 * same loop iteration (before the loop polls again). The queue runs as a
 * batch: completions queued while it runs wait for the next iteration, after
 * the next (non-blocking) poll, so a chain of them cannot starve the fds and
 * timers. Loop thread only. This is how a read satisfied from the buffer
 * completes without an extra poll.
 */
int ts__ioloop_defer(ts_ioloop *loop, ts_ioloop_cb cb, void *arg);

/*
 * Objects that live on a loop and must hear of its end (streams). The loop
 * keeps them on a list; ts_ioloop_free() calls close() on each before it runs
 * the queued completions for the last time, then orphan() on each still
 * there, which must cut every tie to the loop and leave the list.
 */
typedef struct ts__loop_member ts__loop_member;
typedef struct ts__member_ops {
    void (*close)(ts__loop_member *m);
    void (*orphan)(ts__loop_member *m);
} ts__member_ops;
struct ts__loop_member {
    ts__loop_member *prev, *next; /* NULL when on no list */
    const ts__member_ops *ops;
};
void ts__ioloop_attach(ts_ioloop *loop, ts__loop_member *m, const ts__member_ops *ops);
void ts__ioloop_detach(ts__loop_member *m); /* no-op when not attached */

#endif /* TSTREAM_INTERNAL_H */
