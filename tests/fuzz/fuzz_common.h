/*
 * Small pieces shared by the libFuzzer targets: a check that aborts (so
 * libFuzzer records the input), a cursor over control bytes that can be
 * taken from either end, quiet logging, and a bounded loop runner that
 * treats a session that does not finish as a hang.
 */
#ifndef TS_FUZZ_COMMON_H
#define TS_FUZZ_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <ev.h>

#include "tstream.h"

#define FZ_CHECK(c)                                                                                               \
    do {                                                                                                          \
        if (!(c)) {                                                                                               \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c);                                 \
            abort();                                                                                              \
        }                                                                                                         \
    } while (0)

/** Control bytes: fz_front() takes from the start, fz_back() from the end; both give 0 once used up. */
typedef struct fz_cursor {
    const uint8_t *p;
    size_t front, back; /* [front, back) is left */
} fz_cursor;

static inline void fz_cursor_init(fz_cursor *c, const uint8_t *p, size_t len)
{
    c->p = p;
    c->front = 0;
    c->back = len;
}
static inline size_t fz_left(const fz_cursor *c) { return c->back - c->front; }
static inline unsigned fz_front(fz_cursor *c) { return c->front < c->back ? c->p[c->front++] : 0; }
static inline unsigned fz_back(fz_cursor *c) { return c->front < c->back ? c->p[--c->back] : 0; }

static void fz_log_drop(ts_log_level level, const char *msg, void *arg)
{
    (void)level, (void)msg, (void)arg;
}

/** Drops the library's log lines (errors the input provokes are expected). */
static inline void fz_quiet_logs(void) { ts_log_set_handler(fz_log_drop, NULL, TS_LOG_ERROR); }

/**
 * Runs @p loop without blocking until @p done(@p arg); a session that needs
 * more than 200,000 iterations is a hang and aborts.
 */
static inline void fz_run_until(ts_ioloop *loop, bool (*done)(const void *), const void *arg, const char *what)
{
    for (int it = 0; it < 200000; it++) {
        if (done(arg))
            return;
        ev_run(ts_ioloop_ev(loop), EVRUN_NOWAIT);
    }
    fprintf(stderr, "%s: the session did not finish (hang)\n", what);
    abort();
}

/*
 * The fd half of an in-memory transport: an eventfd that is always readable
 * and writable, so readiness never gates the transport. A session struct
 * puts it first, so the session is the transport pointer for these ops.
 */
typedef struct fz_fd {
    int efd;
    bool closed, freed;
} fz_fd;

static inline void fz_fd_open(fz_fd *f)
{
    f->efd = eventfd(1, EFD_NONBLOCK | EFD_CLOEXEC);
    f->closed = f->freed = false;
    FZ_CHECK(f->efd >= 0);
}
static inline int fz_fd_fileno(void *t) { return ((fz_fd *)t)->closed ? -1 : ((fz_fd *)t)->efd; }
static inline void fz_fd_close(void *t)
{
    fz_fd *f = t;
    if (!f->closed)
        close(f->efd);
    f->closed = true;
}
static inline void fz_fd_free(void *t)
{
    fz_fd *f = t;
    FZ_CHECK(f->closed && !f->freed); /* once, after the close */
    f->freed = true;
}

#endif /* TS_FUZZ_COMMON_H */
