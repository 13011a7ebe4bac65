/*
 * A randomized model test of the stream core. Each seed builds a session:
 * a producer sends a random byte stream (delimiters and regex matches
 * sprinkled in, split across pieces at random) to a stream, which is either
 * one end of a socketpair or a user transport (ts_iostream_new) that hands
 * data over in random pieces, answers TS_EAGAIN at random and ends with a
 * clean EOF, an error, or an EOF whose get_fd_error reports one. The
 * consumer issues a random sequence of reads (every form, callback and
 * future, with max_bytes and small max_buffer_size) and writes (copied,
 * owned, future, empty), starting the next one inside the callback or from a
 * later loop callback, and ends by closing and/or dropping its reference,
 * sometimes inside a callback.
 *
 * Every result is checked against a model that knows the whole stream:
 * bytes arrive exactly once and in order; a read's outcome depends only on
 * the data (never on how it was split): success, TS_EUNSATISFIABLE when
 * max_bytes passes without a match, TS_EBUFFERFULL when the answer would
 * need more than max_buffer_size, or the stream's end status; write
 * callbacks run in order, successes before failures; the read callback and
 * the write callbacks run before the close callback, which runs once; no
 * callback runs inside the API call that caused it; owned write data is
 * freed once; nothing leaks (LeakSanitizer) and no fd stays open.
 *
 * tests/fuzz/fuzz_iostream.c drives the same model from fuzz input (it
 * includes this file with TS_MODEL_FUZZ defined).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "iostream_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ev.h>

#include "tstream.h"

#ifndef TS_MODEL_FUZZ
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "stream_pairs.h"
#include "testutil.h"
#endif

/* ---- failure reporting -------------------------------------------------- */

static uint64_t g_seed;
static void model_fail(const char *what, int line)
{
    fprintf(stderr, "model: seed %llu: check failed at line %d: %s\n", (unsigned long long)g_seed, line, what);
#ifdef TS_MODEL_FUZZ
    abort();
#else
    fail_msg("model check failed (seed %llu, line %d): %s", (unsigned long long)g_seed, line, what);
#endif
}
#define MCHECK(c)                                                                                                 \
    do {                                                                                                          \
        if (!(c))                                                                                                 \
            model_fail(#c, __LINE__);                                                                             \
    } while (0)

/* ---- randomness: a seeded generator, or fuzz input ---------------------- */

typedef struct rng {
    uint64_t s;
    const uint8_t *fz; /* fuzz input, if any: consumed first, then the generator continues */
    size_t fzlen, fzoff;
} rng;

static uint32_t rnd(rng *r)
{
    if (r->fz && r->fzoff < r->fzlen) {
        uint32_t v = 0;
        for (int i = 0; i < 2 && r->fzoff < r->fzlen; i++)
            v = v << 8 | r->fz[r->fzoff++];
        return v * 2654435761u ^ (v >> 3);
    }
    r->s ^= r->s << 13;
    r->s ^= r->s >> 7;
    r->s ^= r->s << 17;
    return (uint32_t)(r->s >> 16);
}
static size_t below(rng *r, size_t n) { return n ? rnd(r) % n : 0; }
static bool chance(rng *r, unsigned pct) { return below(r, 100) < pct; }

/* ---- the session -------------------------------------------------------- */

enum { OP_BYTES, OP_BYTES_STREAM, OP_UNTIL, OP_REGEX, OP_CLOSE, OP_CLOSE_STREAM, OP_INTO, OP_COUNT };

static const char *const DELIMS[] = {"\n", "\r\n", "<<DELIM-16-B>>!!"};
static const char *const REGEXES[] = {"X[0-9]{3}Y", "[;|]"};

typedef struct model model;

typedef struct mock {
    model *m;
    int fd[2];
    bool closed;
} mock;

struct model {
    ts_ioloop *loop;
    rng r;
    ts_iostream *s; /* NULL once the model dropped its reference */
    bool use_mock;
    int in_api;

    /* the incoming stream */
    char *in;
    size_t in_len;
    size_t visible;  /* bytes the stream sees before its end */
    int end_status;  /* what a read failing at the end reports */
    size_t delivered; /* mock: bytes handed to the stream */
    size_t pos;       /* bytes the reads consumed */
    size_t max_buf;
    size_t piece_max;
    bool keep_unsat;
    bool close_cb_set;

    /* the pending read */
    bool pending;
    int op;
    bool future;
    size_t n;
    bool partial;
    int delim;
    size_t max_bytes;
    int regex;
    char *into;
    size_t streamed;
    int reads;
    int read_budget;
    bool reads_over;  /* no more reads: the stream's state is no longer predictable */
    bool lenient;     /* a write error or our own close may cut reads short */
    int write_error;  /* mock: the error an injected write failure closed the stream with */

    /* writes */
    size_t out_issued; /* bytes of the outgoing stream queued */
    size_t out_ok;     /* bytes covered by successful write callbacks */
    int w_issued, w_done, w_issued_cb, w_done_cb, w_last_cb, w_last_fut;
    bool w_failed, w_failed_fut;
    size_t w_fail_at; /* mock: inject a write error once this many bytes were accepted (0: never) */
    size_t accepted;  /* bytes the transport (mock or peer) received */

    /* the end */
    bool finishing;
    int close_calls;
    int futures_live;
    int later_live;

    /* socketpair peer */
    int peer;
    size_t sent;
    bool peer_shut, peer_closed;
    mock *mk;
};

static int g_owned_live;

static uint8_t out_byte(size_t i) { return (uint8_t)((i * 2654435761u) >> 11 ^ i); }

#define API(m, expr) ((m)->in_api++, (expr), (m)->in_api--)

/* ---- the model: where a read must end ------------------------------------ */

typedef struct pred {
    int status; /* 0: success with lo..hi bytes */
    size_t lo, hi;
} pred;

static size_t find_regex(const model *m, int which, const char *p, size_t len, size_t limit)
{
    /* The patterns are fixed-length: their leftmost match ends at the same place however the data arrives. */
    (void)m;
    if (which == 0) {
        for (size_t i = 0; i + 5 <= len; i++)
            if (p[i] == 'X' && p[i + 1] >= '0' && p[i + 1] <= '9' && p[i + 2] >= '0' && p[i + 2] <= '9' &&
                p[i + 3] >= '0' && p[i + 3] <= '9' && p[i + 4] == 'Y')
                return i + 5 <= limit ? i + 5 : SIZE_MAX;
        return 0;
    }
    for (size_t i = 0; i < len; i++)
        if (p[i] == ';' || p[i] == '|')
            return i + 1 <= limit ? i + 1 : SIZE_MAX;
    return 0;
}

/*
 * The outcome of the pending read: only the first max_buffer_size bytes of
 * what is left may satisfy it.
 */
static pred predict(const model *m)
{
    size_t rem = m->visible - m->pos;
    size_t w = rem < m->max_buf ? rem : m->max_buf;
    const char *p = m->in + m->pos;
    pred e = {m->end_status, 0, 0};
    switch (m->op) {
    case OP_BYTES:
    case OP_INTO:
        if (m->n == 0)
            return (pred){0, 0, 0};
        if (m->partial && rem > 0) {
            /* read_into reads straight into the caller's buffer, past max_buffer_size. */
            size_t cap = m->op == OP_INTO ? rem : w;
            return (pred){0, 1, m->n < cap ? m->n : cap};
        }
        if (rem >= m->n)
            return (pred){0, m->n, m->n};
        return e;
    case OP_UNTIL:
    case OP_REGEX: {
        size_t lim = m->max_bytes ? m->max_bytes : SIZE_MAX;
        size_t end = 0;
        if (m->op == OP_UNTIL) {
            const char *d = DELIMS[m->delim];
            size_t dl = strlen(d);
            const char *hit = memmem(p, w, d, dl);
            if (hit)
                end = (size_t)(hit - p) + dl <= lim ? (size_t)(hit - p) + dl : SIZE_MAX;
        } else {
            end = find_regex(m, m->regex, p, w, lim);
        }
        if (end && end != SIZE_MAX)
            return (pred){0, end, end};
        if (m->max_bytes && w >= m->max_bytes)
            return (pred){TS_EUNSATISFIABLE, 0, 0};
        if (rem > m->max_buf)
            return (pred){TS_EBUFFERFULL, 0, 0};
        return e;
    }
    case OP_CLOSE:
        if (rem > m->max_buf)
            return (pred){TS_EBUFFERFULL, 0, 0};
        return (pred){0, rem, rem};
    default:
        return (pred){0, 0, 0};
    }
}

/* ---- owned writes, write callbacks, futures ----------------------------- */

static void owned_free(void *p)
{
    g_owned_live--;
    free(p);
}

typedef struct wrec {
    model *m;
    int seq;
    size_t end;
} wrec;

/*
 * Callbacks of the callback form run in order; a future's done callbacks run
 * from the loop later, so futures are in order among themselves.
 */
static void write_result(model *m, int seq, size_t end, int status, bool fut)
{
    MCHECK(!m->in_api);
    int *last = fut ? &m->w_last_fut : &m->w_last_cb;
    MCHECK(seq > *last);
    *last = seq;
    m->w_done++;
    if (!fut)
        m->w_done_cb++;
    if (status == 0) {
        MCHECK(!(fut ? m->w_failed_fut : m->w_failed));
        if (end > m->out_ok)
            m->out_ok = end;
        MCHECK(m->accepted >= end || !m->use_mock);
    } else {
        *(fut ? &m->w_failed_fut : &m->w_failed) = true;
        MCHECK(m->s == NULL || ts_iostream_closed(m->s) || m->finishing);
    }
}

static void on_write(ts_iostream *s, int status, void *arg)
{
    (void)s;
    wrec *w = arg;
    write_result(w->m, w->seq, w->end, status, false);
    free(w);
}

static void on_write_future(ts_future *f, void *arg)
{
    wrec *w = arg;
    w->m->futures_live--;
    write_result(w->m, w->seq, w->end, ts_future_error(f), true);
    ts_future_unref(f);
    free(w);
}

static void maybe_write(model *m)
{
    if (!m->s || ts_iostream_closed(m->s))
        return;
    int k = (int)below(&m->r, 4);
    size_t len = k == 3 ? 0 : chance(&m->r, 80) ? 1 + below(&m->r, 300) : 1 + below(&m->r, 70000);
    char *buf = malloc(len + 1);
    for (size_t i = 0; i < len; i++)
        buf[i] = (char)out_byte(m->out_issued + i);
    wrec *w = malloc(sizeof(*w));
    *w = (wrec){m, m->w_issued + 1, m->out_issued + len};
    int r;
    bool with_cb = k == 3 || chance(&m->r, 80);
    if (k == 1) {
        g_owned_live++;
        API(m, r = ts_iostream_write_owned(m->s, buf, len, owned_free, with_cb ? on_write : NULL, w));
        if (r < 0)
            g_owned_live--, free(buf);
        buf = NULL;
    } else if (k == 2) {
        ts_future *f;
        API(m, f = ts_iostream_write_future(m->s, buf, len));
        MCHECK(f != NULL);
        with_cb = true;
        r = ts_future_done(f) ? ts_future_error(f) : 0;
        if (r == 0) {
            m->futures_live++;
            API(m, ts_future_add_done_callback(f, on_write_future, w));
        } else {
            ts_future_unref(f);
        }
    } else {
        API(m, r = ts_iostream_write(m->s, buf, len, with_cb ? on_write : NULL, w));
    }
    free(buf);
    if (r == 0) {
        m->out_issued += len;
        if (with_cb)
            m->w_issued++, m->w_issued_cb += k != 2;
        else
            free(w);
    } else {
        MCHECK(m->write_error || m->lenient);
        free(w);
    }
}

/* ---- reads -------------------------------------------------------------- */

static void start_read(model *m);
static void after_read(model *m, bool in_cb);
static void defer(model *m);

static void check_bytes(model *m, const char *data, size_t len)
{
    MCHECK(m->pos + len <= m->visible);
    MCHECK(len == 0 || memcmp(data, m->in + m->pos, len) == 0);
}

/* A read finished: compare with the model. */
static void read_result(model *m, int status, const char *data, size_t len)
{
    if (getenv("TS_MODEL_TRACE"))
        fprintf(stderr, "trace: op %d fut %d n %zu partial %d mb %zu -> status %d len %zu (pos %zu)\n", m->op,
                m->future, m->n, m->partial, m->max_bytes, status, len, m->pos);
    MCHECK(!m->in_api);
    MCHECK(m->pending);
    m->pending = false;
    if (m->op == OP_BYTES_STREAM || m->op == OP_CLOSE_STREAM) {
        MCHECK(len == 0);
        bool whole = m->op == OP_BYTES_STREAM ? m->streamed == m->n : m->pos == m->visible || m->lenient;
        if (status == 0) {
            MCHECK(whole);
        } else {
            MCHECK(m->op == OP_BYTES_STREAM);
            MCHECK(m->pos == m->visible || m->lenient);
            MCHECK(status == m->end_status || m->lenient);
            m->reads_over = m->reads_over || m->lenient;
        }
        after_read(m, true);
        return;
    }
    pred e = predict(m);
    if (m->lenient && status != 0 && status != e.status) {
        m->reads_over = true; /* cut short by our close or a write error */
        after_read(m, true);
        return;
    }
    if (m->lenient && status == 0 && (status != e.status || len < e.lo || len > e.hi)) {
        /* Our own close (or a write error) ended it early: the bytes must still be the right ones. */
        check_bytes(m, data, len);
        m->pos += len;
        m->reads_over = true;
        after_read(m, true);
        return;
    }
    if (status != e.status)
        fprintf(stderr, "model: op %d n %zu partial %d max_bytes %zu pos %zu visible %zu max_buf %zu: status %d, "
                "expected %d (%zu..%zu)\n", m->op, m->n, m->partial, m->max_bytes, m->pos, m->visible, m->max_buf,
                status, e.status, e.lo, e.hi);
    MCHECK(status == e.status);
    if (status == 0) {
        if (len < e.lo || len > e.hi)
            fprintf(stderr, "model: op %d len %zu expected %zu..%zu (pos %zu)\n", m->op, len, e.lo, e.hi, m->pos);
        MCHECK(len >= e.lo && len <= e.hi);
        check_bytes(m, data, len);
        m->pos += len;
    } else if (status == TS_EUNSATISFIABLE && m->keep_unsat) {
        /* The unsatisfiable read leaves the stream open; the peer's end may still close it. */
        MCHECK(m->s == NULL || ts_iostream_error(m->s) != TS_EUNSATISFIABLE || m->lenient);
    } else if (m->op == OP_INTO && m->pos < m->visible) {
        /* A failed read_into may have stored bytes in the caller's buffer: they are gone from the stream. */
        m->reads_over = true;
    } else if (status != m->end_status) {
        /* TS_EUNSATISFIABLE / TS_EBUFFERFULL closed the stream: what is still buffered is timing's business. */
        MCHECK(m->s == NULL || ts_iostream_closed(m->s));
        m->reads_over = true;
    }
    after_read(m, true);
}

static void on_read(ts_iostream *s, int status, const char *data, size_t len, void *arg)
{
    (void)s;
    read_result(arg, status, data, len);
}

static void on_chunk(ts_iostream *s, const char *data, size_t len, void *arg)
{
    (void)s;
    model *m = arg;
    MCHECK(!m->in_api);
    MCHECK(m->pending);
    MCHECK(len > 0);
    check_bytes(m, data, len);
    m->pos += len;
    m->streamed += len;
    if (m->op == OP_BYTES_STREAM)
        MCHECK(m->streamed <= m->n);
    if (chance(&m->r, 10))
        maybe_write(m);
    if (chance(&m->r, 3) && m->s && !m->finishing) {
        /* Closing inside a chunk: the read then ends with what is buffered, or fails. */
        m->lenient = true;
        API(m, ts_iostream_close(m->s, 0));
    }
}

static void on_into(ts_iostream *s, int status, size_t n, void *arg)
{
    (void)s;
    model *m = arg;
    char *buf = m->into;
    m->into = NULL;
    if (status == 0)
        MCHECK(n <= m->n);
    read_result(m, status, buf, status == 0 ? n : 0);
    free(buf);
}

typedef struct fctx {
    model *m;
    bool into;
} fctx;

static void on_read_future(ts_future *f, void *arg)
{
    fctx *c = arg;
    model *m = c->m;
    m->futures_live--;
    int err = ts_future_error(f);
    if (c->into) {
        char *buf = m->into;
        m->into = NULL;
        size_t n = err ? 0 : (size_t)(uintptr_t)ts_future_result(f);
        read_result(m, err, buf, n);
        free(buf);
    } else {
        ts_bytes *b = err ? NULL : ts_future_result(f);
        read_result(m, err, b ? b->data : NULL, b ? b->len : 0);
    }
    ts_future_unref(f);
    free(c);
}

/* What the API call itself must return for this read. */
static int expect_start(model *m, bool closed)
{
    if (m->op == OP_BYTES && m->n > m->max_buf)
        return TS_EBUFFERFULL;
    if (!closed)
        return 0;
    if (m->op == OP_BYTES_STREAM || m->op == OP_CLOSE_STREAM)
        return (m->op == OP_BYTES_STREAM && m->n > 0 && m->visible == m->pos) ? TS_ECLOSED : 0;
    return predict(m).status == 0 ? 0 : TS_ECLOSED;
}

static void start_read(model *m)
{
    if (!m->s || m->pending || m->reads_over || m->finishing)
        return;
    ts_iostream *s = m->s;
    m->op = (int)below(&m->r, OP_COUNT);
    m->future = chance(&m->r, 25) && m->op != OP_BYTES_STREAM && m->op != OP_CLOSE_STREAM;
    size_t big = m->max_buf < 100000 ? m->max_buf : 100000;
    m->n = chance(&m->r, 70) ? below(&m->r, 40) : chance(&m->r, 90) ? below(&m->r, big + 1) : big + below(&m->r, 50);
    m->partial = chance(&m->r, 40);
    m->delim = (int)below(&m->r, 3);
    m->regex = (int)below(&m->r, 2);
    m->max_bytes = chance(&m->r, 50) ? 0 : 1 + below(&m->r, chance(&m->r, 50) ? 64 : 3000);
    m->streamed = 0;
    bool closed = ts_iostream_closed(s);
    int want = expect_start(m, closed);
    if (m->lenient && closed)
        want = INT32_MIN; /* anything goes */
    m->pending = true;
    m->reads++;
    int r = 0;
    if (m->future) {
        ts_future *f = NULL;
        fctx *c = malloc(sizeof(*c));
        *c = (fctx){m, m->op == OP_INTO};
        switch (m->op) {
        case OP_BYTES:
            API(m, f = ts_iostream_read_bytes_future(s, m->n, m->partial));
            break;
        case OP_UNTIL:
            API(m, f = ts_iostream_read_until_future(s, DELIMS[m->delim], strlen(DELIMS[m->delim]), m->max_bytes));
            break;
        case OP_REGEX:
            API(m, f = ts_iostream_read_until_regex_future(s, REGEXES[m->regex], m->max_bytes));
            break;
        case OP_CLOSE:
            API(m, f = ts_iostream_read_until_close_future(s));
            break;
        default:
            m->into = malloc(m->n + 1);
            API(m, f = ts_iostream_read_into_future(s, m->into, m->n, m->partial));
            break;
        }
        MCHECK(f != NULL);
        bool failed_at_once = ts_future_done(f) && ts_future_error(f) != 0;
        if (failed_at_once) {
            r = ts_future_error(f);
            ts_future_unref(f);
            free(c);
        } else {
            m->futures_live++;
            API(m, ts_future_add_done_callback(f, on_read_future, c));
        }
    } else {
        switch (m->op) {
        case OP_BYTES:
            API(m, r = ts_iostream_read_bytes(s, m->n, m->partial, on_read, m));
            break;
        case OP_BYTES_STREAM:
            API(m, r = ts_iostream_read_bytes_streaming(s, m->n, on_chunk, on_read, m));
            break;
        case OP_UNTIL:
            API(m, r = ts_iostream_read_until(s, DELIMS[m->delim], strlen(DELIMS[m->delim]), m->max_bytes, on_read,
                                              m));
            break;
        case OP_REGEX:
            API(m, r = ts_iostream_read_until_regex(s, REGEXES[m->regex], m->max_bytes, on_read, m));
            break;
        case OP_CLOSE:
            API(m, r = ts_iostream_read_until_close(s, on_read, m));
            break;
        case OP_CLOSE_STREAM:
            API(m, r = ts_iostream_read_until_close_streaming(s, on_chunk, on_read, m));
            break;
        default:
            m->into = malloc(m->n + 1);
            API(m, r = ts_iostream_read_into(s, m->into, m->n, m->partial, on_into, m));
            break;
        }
    }
    if (getenv("TS_MODEL_TRACE"))
        fprintf(stderr, "trace: start op %d fut %d n %zu partial %d mb %zu closed %d -> %d\n", m->op, m->future, m->n,
                m->partial, m->max_bytes, closed, r);
    if (want != INT32_MIN) {
        if (r != want)
            fprintf(stderr, "model: start op %d n %zu partial %d closed %d pos %zu visible %zu: returned %d, expected %d\n",
                    m->op, m->n, m->partial, closed, m->pos, m->visible, r, want);
        MCHECK(r == want);
    }
    if (r != 0) {
        m->pending = false;
        free(m->into);
        m->into = NULL;
        if (m->lenient)
            m->reads_over = true;
        defer(m); /* carry on from the loop */
    } else if (chance(&m->r, 5)) {
        /* A second read while one is pending is refused and changes nothing. */
        int r2;
        API(m, r2 = ts_iostream_read_bytes(s, 1, false, on_read, m));
        MCHECK(r2 == TS_EBUSY);
    }
}

/* ---- the end ------------------------------------------------------------ */

static void on_close(ts_iostream *s, void *arg)
{
    (void)s;
    model *m = arg;
    MCHECK(!m->in_api);
    MCHECK(m->close_calls == 0);
    m->close_calls++;
    /* The pending read and the queued writes were told first. */
    MCHECK(!m->pending || m->future);
    MCHECK(m->w_done_cb == m->w_issued_cb);
    if (m->s && chance(&m->r, 30)) {
        ts_iostream *x = m->s;
        m->s = NULL;
        API(m, ts_iostream_unref(x));
    }
}

static void finish(model *m)
{
    if (!m->s)
        return;
    ts_iostream *s = m->s;
    m->finishing = true;
    m->lenient = true;
    switch (below(&m->r, 4)) {
    case 0:
        API(m, ts_iostream_close(s, 0));
        if (chance(&m->r, 50)) {
            defer(m); /* dropped later, from a loop callback */
            return;
        }
        /* fall through */
    case 1:
        m->s = NULL;
        API(m, ts_iostream_unref(s));
        break;
    case 2:
        m->s = NULL;
        API(m, ts_iostream_free(s));
        break;
    default:
        m->s = NULL;
        API(m, ts_iostream_unref(s)); /* the last reference of an open stream: closes it */
        break;
    }
}

static void later(ts_ioloop *loop, void *arg)
{
    (void)loop;
    model *m = arg;
    m->later_live--;
    if (m->finishing) {
        if (m->s && chance(&m->r, 50)) {
            ts_iostream *s = m->s;
            m->s = NULL;
            API(m, ts_iostream_unref(s));
        } else if (m->s) {
            if (chance(&m->r, 30))
                finish(m);
            else
                defer(m);
        }
        return;
    }
    if (chance(&m->r, 30))
        maybe_write(m);
    if (m->pending && chance(&m->r, 3)) {
        /* Close (or drop) while a read is pending. */
        finish(m);
        return;
    }
    if (!m->pending)
        after_read(m, false);
}

static void defer(model *m)
{
    m->later_live++;
    ts_ioloop_add_callback(m->loop, later, m);
}

/* The next step after a read completed (or from a loop callback). */
static void after_read(model *m, bool in_cb)
{
    if (m->finishing || !m->s)
        return;
    if (chance(&m->r, 20))
        maybe_write(m);
    if (chance(&m->r, 5))
        maybe_write(m);
    bool closed_done = ts_iostream_closed(m->s) && m->pos == m->visible;
    if (m->reads_over || m->reads >= m->read_budget || closed_done || chance(&m->r, 1)) {
        if (in_cb && chance(&m->r, 50))
            finish(m);
        else
            defer(m), m->finishing = true, m->lenient = true;
        return;
    }
    if (!in_cb || chance(&m->r, 60))
        start_read(m);
    else
        defer(m);
}

/* ---- the user transport ------------------------------------------------- */

static int mk_fileno(void *t) { return ((mock *)t)->fd[0]; }

static ssize_t mk_read(void *t, void *buf, size_t len)
{
    mock *k = t;
    model *m = k->m;
    MCHECK(!k->closed);
    if (chance(&m->r, 15))
        return TS_EAGAIN;
    if (m->delivered == m->visible) {
        if (m->end_status == TS_ECLOSED || m->end_status == TS_ETRUNCATED)
            return 0;
        return m->end_status;
    }
    size_t n = 1 + below(&m->r, chance(&m->r, 50) ? 8 : m->piece_max);
    if (n > len)
        n = len;
    if (n > m->visible - m->delivered)
        n = m->visible - m->delivered;
    memcpy(buf, m->in + m->delivered, n);
    m->delivered += n;
    return (ssize_t)n;
}

static ssize_t mk_write(void *t, const struct iovec *iov, int cnt)
{
    mock *k = t;
    model *m = k->m;
    MCHECK(!k->closed);
    if (chance(&m->r, 15))
        return TS_EAGAIN;
    if (m->w_fail_at && m->accepted >= m->w_fail_at) {
        m->write_error = -EPIPE;
        m->lenient = true;
        return -EPIPE;
    }
    size_t total = 0;
    for (int i = 0; i < cnt; i++)
        total += iov[i].iov_len;
    size_t take = chance(&m->r, 50) ? total : 1 + below(&m->r, total);
    size_t done = 0;
    for (int i = 0; i < cnt && done < take; i++) {
        size_t l = iov[i].iov_len < take - done ? iov[i].iov_len : take - done;
        for (size_t j = 0; j < l; j++)
            MCHECK(((const uint8_t *)iov[i].iov_base)[j] == out_byte(m->accepted + done + j));
        done += l;
    }
    m->accepted += take;
    return (ssize_t)take;
}

static void mk_close(void *t)
{
    mock *k = t;
    if (k->closed)
        return;
    k->closed = true;
    close(k->fd[0]);
    close(k->fd[1]);
}

static int mk_fd_error(void *t)
{
    mock *k = t;
    return k->m->end_status == TS_ETRUNCATED ? TS_ETRUNCATED : 0;
}

static void mk_free(void *t)
{
    mock *k = t;
    MCHECK(k->closed);
    k->m->mk = NULL;
    free(k);
}

static const ts_stream_ops mock_ops = {
    .size = sizeof(ts_stream_ops),
    .name = "model",
    .fileno = mk_fileno,
    .read_from_fd = mk_read,
    .write_to_fd = mk_write,
    .close_fd = mk_close,
    .get_fd_error = mk_fd_error,
    .free = mk_free,
};

/* ---- the socketpair peer ------------------------------------------------ */

static void peer_close(model *m)
{
    if (m->peer_closed)
        return;
    ts_ioloop_remove_handler(m->loop, m->peer);
    close(m->peer);
    m->peer_closed = true;
}

static void on_peer(ts_ioloop *loop, int fd, int events, void *arg)
{
    (void)loop;
    model *m = arg;
    if ((events & TS_IOLOOP_WRITE) && !m->peer_shut) {
        size_t n = 1 + below(&m->r, chance(&m->r, 50) ? 16 : m->piece_max);
        if (n > m->in_len - m->sent)
            n = m->in_len - m->sent;
        ssize_t w = n ? send(fd, m->in + m->sent, n, MSG_NOSIGNAL) : 0;
        if (w > 0)
            m->sent += (size_t)w;
        if (m->sent == m->in_len || (w < 0 && errno != EAGAIN)) {
            shutdown(fd, SHUT_WR);
            m->peer_shut = true;
            ts_ioloop_update_handler(m->loop, fd, TS_IOLOOP_READ);
        }
    }
    if (events & TS_IOLOOP_READ) {
        char buf[65536];
        ssize_t r = recv(fd, buf, sizeof(buf), 0);
        if (r > 0) {
            for (ssize_t j = 0; j < r; j++)
                MCHECK((uint8_t)buf[j] == out_byte(m->accepted + (size_t)j));
            m->accepted += (size_t)r;
        } else if (r == 0 || errno != EAGAIN) {
            peer_close(m);
        }
    }
}

/* ---- one session ---------------------------------------------------------- */

static void make_input(model *m)
{
    size_t len = chance(&m->r, 10) ? below(&m->r, 200000) : chance(&m->r, 30) ? below(&m->r, 40) : below(&m->r, 8000);
    m->in = malloc(len + 1);
    m->in_len = len;
    static const char alpha[] = "abcdefghij0123456789X\r\n";
    size_t i = 0;
    while (i < len) {
        const char *tok = NULL;
        char tmp[8];
        switch (below(&m->r, 40)) {
        case 0:
            tok = DELIMS[below(&m->r, 3)];
            break;
        case 1:
            snprintf(tmp, sizeof(tmp), "X%03uY", (unsigned)below(&m->r, 1000));
            tok = tmp;
            break;
        case 2:
            tok = below(&m->r, 2) ? ";" : "|";
            break;
        case 3:
            tok = "<<DELIM-16-B>>!"; /* almost the long delimiter */
            break;
        default:
            break;
        }
        if (tok) {
            for (size_t k = 0; tok[k] && i < len; k++)
                m->in[i++] = tok[k];
        } else {
            m->in[i++] = alpha[below(&m->r, sizeof(alpha) - 1)];
        }
    }
}

static bool session_done(const model *m)
{
    return m->s == NULL && m->mk == NULL && !m->pending && m->w_done == m->w_issued && m->futures_live == 0 &&
           m->later_live == 0 && (!m->close_cb_set || m->close_calls == 1) && (m->use_mock || m->peer_closed);
}

static void run_session(ts_ioloop *loop, uint64_t seed, const uint8_t *fz, size_t fzlen, bool use_mock)
{
    g_seed = seed;
    model *m = calloc(1, sizeof(*m));
    m->loop = loop;
    m->r.s = seed * 0x9E3779B97F4A7C15ull + 1;
    m->r.fz = fz, m->r.fzlen = fzlen;
    m->use_mock = use_mock;
    make_input(m);
    m->visible = m->in_len;
    m->end_status = TS_ECLOSED;
    m->piece_max = chance(&m->r, 50) ? 64 : 20000;
    m->read_budget = 5 + (int)below(&m->r, 200);
    static const size_t bufs[] = {1, 7, 64, 100, 4096, 0};
    size_t mb = bufs[below(&m->r, 6)];
    ts_iostream_options o = {.size = sizeof(o), .max_buffer_size = mb};
    if (chance(&m->r, 50))
        o.read_chunk_size = 1 + below(&m->r, 5000);
    m->max_buf = mb ? mb : TS_IOSTREAM_DEFAULT_MAX_BUFFER;
    g_owned_live = 0;
    int sv[2] = {-1, -1};
    if (use_mock) {
        if (chance(&m->r, 40)) {
            m->visible = below(&m->r, m->in_len + 1);
            static const int errs[] = {-ECONNRESET, TS_ETRUNCATED, -EIO};
            m->end_status = errs[below(&m->r, 3)];
        }
        if (chance(&m->r, 20))
            m->w_fail_at = 1 + below(&m->r, 5000);
        mock *k = calloc(1, sizeof(*k));
        k->m = m;
        MCHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, k->fd) == 0);
        MCHECK(write(k->fd[1], "x", 1) == 1); /* always readable (and writable): readiness never gates the mock */
        m->mk = k;
        m->s = ts_iostream_new(loop, &mock_ops, k, &o);
    } else {
        MCHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
        m->peer = sv[1];
        fcntl(sv[1], F_SETFL, fcntl(sv[1], F_GETFL) | O_NONBLOCK);
        m->s = ts_iostream_new_socket(loop, sv[0], &o);
        ts_ioloop_add_handler(loop, sv[1], TS_IOLOOP_READ | TS_IOLOOP_WRITE, on_peer, m);
    }
    MCHECK(m->s != NULL);
    m->keep_unsat = chance(&m->r, 40);
    if (m->keep_unsat)
        ts_iostream_set_close_on_unsatisfiable(m->s, false);
    m->close_cb_set = chance(&m->r, 70);
    if (m->close_cb_set)
        ts_iostream_set_close_callback(m->s, on_close, m);
    if (chance(&m->r, 50))
        start_read(m);
    else
        defer(m);
    if (chance(&m->r, 30))
        maybe_write(m);
    for (int it = 0; it < 1000000 && !session_done(m); it++)
        ev_run(ts_ioloop_ev(loop), EVRUN_NOWAIT);
    if (!session_done(m))
        fprintf(stderr, "model: seed %llu stuck: s %p mk %p pending %d op %d w %d/%d fut %d later %d close %d peer %d "
                "pos %zu visible %zu\n", (unsigned long long)seed, (void *)m->s, (void *)m->mk, m->pending, m->op,
                m->w_done, m->w_issued, m->futures_live, m->later_live, m->close_calls, m->peer_closed, m->pos,
                m->visible);
    MCHECK(session_done(m));
    MCHECK(g_owned_live == 0);
    /* Everything a successful write callback vouched for reached the other side, in order. */
    MCHECK(m->accepted >= m->out_ok);
    MCHECK(m->accepted <= m->out_issued);
    free(m->in);
    free(m);
}

#ifndef TS_MODEL_FUZZ

/* Seeds per transport; TS_MODEL_SEEDS overrides (e.g. for a long soak). */
static int seeds(int dflt)
{
    const char *e = getenv("TS_MODEL_SEEDS");
    return e ? atoi(e) : dflt;
}

static void quiet_log(ts_log_level level, const char *msg, void *arg)
{
    (void)level, (void)msg, (void)arg;
}

static void run_seeds(bool use_mock, uint64_t base, int n)
{
    ts_log_set_handler(quiet_log, NULL, TS_LOG_ERROR);
    for (int i = 0; i < n; i++) {
        ts_ioloop *loop = tu_fixture_begin(20);
        run_session(loop, base + (uint64_t)i, NULL, 0, use_mock);
        tu_fixture_end(loop);
    }
    ts_log_set_handler(NULL, NULL, TS_LOG_INFO);
}

static void test_model_socketpair(void **state)
{
    (void)state;
    run_seeds(false, 1, seeds(2000));
}

static void test_model_user_transport(void **state)
{
    (void)state;
    run_seeds(true, 100001, seeds(6000));
}

/* ---- regressions (each failed before its fix) ---------------------------- */

/* A transport that hands out scripted pieces, then EOF. */
typedef struct script {
    const char *data;
    const size_t *pieces;
    size_t npieces, idx, off;
    int fd[2];
} script;

static int sc_fileno(void *t) { return ((script *)t)->fd[0]; }
static ssize_t sc_read(void *t, void *buf, size_t len)
{
    script *c = t;
    if (c->idx == c->npieces)
        return 0;
    size_t n = c->pieces[c->idx];
    assert_true(n <= len); /* the test sizes its pieces to what the core asks for */
    memcpy(buf, c->data + c->off, n);
    c->off += n;
    c->idx++;
    return (ssize_t)n;
}
static ssize_t sc_write(void *t, const struct iovec *iov, int cnt)
{
    (void)t, (void)iov, (void)cnt;
    return TS_EAGAIN;
}
static void sc_close(void *t)
{
    script *c = t;
    if (c->fd[0] >= 0)
        close(c->fd[0]), close(c->fd[1]);
    c->fd[0] = c->fd[1] = -1;
}
static const ts_stream_ops script_ops = {
    .size = sizeof(ts_stream_ops), .name = "script", .fileno = sc_fileno,
    .read_from_fd = sc_read, .write_to_fd = sc_write, .close_fd = sc_close,
};

static ts_iostream *script_stream(ts_ioloop *loop, script *c, size_t max_buffer)
{
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, c->fd), 0);
    assert_int_equal(write(c->fd[1], "x", 1), 1); /* always readable */
    ts_iostream_options o = {.size = sizeof(o), .max_buffer_size = max_buffer};
    ts_iostream *s = ts_iostream_new(loop, &script_ops, c, &o);
    assert_non_null(s);
    return s;
}

static void rec_read(ts_iostream *s, int status, const char *data, size_t len, void *arg)
{
    (void)s;
    tu_rec *r = arg;
    r->calls++;
    r->status = status;
    free(r->data);
    r->data = malloc(len + 1);
    memcpy(r->data, data ? data : "", len);
    r->len = len;
}

/*
 * The line ends inside the chunk that takes the buffer past max_buffer_size:
 * the read is answered from the first max_buffer_size bytes, not failed with
 * TS_EBUFFERFULL (it used to fail as soon as the buffer passed the limit).
 */
static void test_regress_line_in_overflowing_chunk(void **state)
{
    (void)state;
    ts_ioloop *loop = tu_fixture_begin(10);
    char data[101];
    memset(data, 'a', sizeof(data));
    data[65] = '\n';
    static const size_t pieces[] = {50, 10, 41}; /* chunk = max/2 = 50; the last read may take 41 */
    script c = {.data = data, .pieces = pieces, .npieces = 3};
    ts_iostream *s = script_stream(loop, &c, 100);
    tu_rec r = {0};
    assert_int_equal(ts_iostream_read_until(s, "\n", 1, 0, rec_read, &r), 0);
    tu_run_until_count(loop, &r.calls, 1, 5);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.len, 66);
    assert_memory_equal(r.data, data, 66);
    assert_false(ts_iostream_closed(s));
    assert_int_equal(ts_iostream_read_buffer_size(s), 35);
    ts_iostream_free(s);
    free(r.data);
    tu_fixture_end(loop);
}

/* max_bytes above max_buffer_size: the buffer limit is what fails the read. */
static void test_regress_max_bytes_above_buffer(void **state)
{
    (void)state;
    ts_ioloop *loop = tu_fixture_begin(10);
    char data[16];
    memset(data, 'a', sizeof(data));
    static const size_t pieces[] = {3, 3, 2, 8};
    script c = {.data = data, .pieces = pieces, .npieces = 4};
    ts_iostream *s = script_stream(loop, &c, 7);
    tu_rec r = {0};
    assert_int_equal(ts_iostream_read_until(s, "\n", 1, 8, rec_read, &r), 0);
    tu_run_until_count(loop, &r.calls, 1, 5);
    assert_int_equal(r.status, TS_EBUFFERFULL);
    assert_true(ts_iostream_closed(s));
    ts_iostream_free(s);
    free(r.data);
    tu_fixture_end(loop);
}

static void rec_into(ts_iostream *s, int status, size_t n, void *arg)
{
    (void)s;
    tu_rec *r = arg;
    r->calls++;
    r->status = status;
    r->len = n;
}

/*
 * read_into on a closed stream that cannot fill the buffer fails with
 * TS_ECLOSED and leaves the buffered bytes for the next read (it used to copy
 * them into the caller's buffer and drop them). Also the model's seeds 22
 * and 100019.
 */
static void test_regress_read_into_closed_keeps_bytes(void **state)
{
    (void)state;
    ts_ioloop *loop = tu_fixture_begin(10);
    static const size_t pieces[] = {3};
    script c = {.data = "abc", .pieces = pieces, .npieces = 1};
    ts_iostream *s = script_stream(loop, &c, 0);
    tu_rec r = {0};
    assert_int_equal(ts_iostream_read_bytes(s, 10, false, rec_read, &r), 0);
    tu_run_until_count(loop, &r.calls, 1, 5);
    assert_int_equal(r.status, TS_ECLOSED);
    assert_true(ts_iostream_closed(s));
    char buf[10];
    tu_rec ri = {0};
    assert_int_equal(ts_iostream_read_into(s, buf, sizeof(buf), false, rec_into, &ri), TS_ECLOSED);
    assert_int_equal(ts_iostream_read_buffer_size(s), 3);
    assert_int_equal(ts_iostream_read_until_close(s, rec_read, &r), 0);
    tu_run_until_count(loop, &r.calls, 2, 5);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.len, 3);
    assert_memory_equal(r.data, "abc", 3);
    assert_int_equal(ri.calls, 0);
    ts_iostream_free(s);
    free(r.data);
    tu_fixture_end(loop);
}

static void test_regress_seeds(void **state)
{
    (void)state;
    static const struct {
        uint64_t seed;
        bool mock;
    } seeds_[] = {{22, false}, {100019, true}, {88, false}};
    ts_log_set_handler(quiet_log, NULL, TS_LOG_ERROR);
    for (size_t i = 0; i < sizeof(seeds_) / sizeof(seeds_[0]); i++) {
        ts_ioloop *loop = tu_fixture_begin(20);
        run_session(loop, seeds_[i].seed, NULL, 0, seeds_[i].mock);
        tu_fixture_end(loop);
    }
    ts_log_set_handler(NULL, NULL, TS_LOG_INFO);
}

int main(void)
{
    const char *one = getenv("TS_MODEL_SEED");
    if (one) {
        /* Replays one seed on both transports: TS_MODEL_SEED=123 ./test_iostream_model */
        uint64_t seed = strtoull(one, NULL, 0);
        for (int mock = 0; mock < 2; mock++) {
            ts_ioloop *loop = ts_ioloop_new();
            run_session(loop, seed, NULL, 0, mock);
            ts_ioloop_free(loop, false);
        }
        return 0;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_regress_line_in_overflowing_chunk),
        cmocka_unit_test(test_regress_max_bytes_above_buffer),
        cmocka_unit_test(test_regress_read_into_closed_keeps_bytes),
        cmocka_unit_test(test_regress_seeds),
        cmocka_unit_test(test_model_socketpair),
        cmocka_unit_test(test_model_user_transport),
    };
    return cmocka_run_group_tests_name("iostream_model", tests, NULL, NULL);
}
#endif
