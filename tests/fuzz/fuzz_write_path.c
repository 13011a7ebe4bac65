/*
 * libFuzzer target: the write path.
 *
 * The input is byte 0 (max_write_buffer_size, whether the peer may fail)
 * then control bytes: a script of writes from the front, the peer's
 * behaviour from the back. Writes are copied (ts_iostream_write), owned
 * (write_owned), lent (write_ref) or futures, of random sizes up to 200 KiB
 * (empty ones too); their callbacks may write again, close or free the
 * stream; the script may also ask for ts_iostream_shutdown(). The peer is an
 * in-memory transport behind ts_stream_ops that takes each writev in a
 * random piece, answers TS_EAGAIN, or fails with -EPIPE / -ECONNRESET.
 *
 * Checked: every byte the transport takes is the next byte of the accepted
 * writes, in order, once; a refused write (TS_EBUFFERFULL exactly when it
 * would pass max_write_buffer_size, TS_ECLOSED, TS_ESTATE after shutdown)
 * queues nothing and never calls back; every callback runs once, in order,
 * never inside the API call that caused it; a success means its bytes were
 * taken; after the first failure every later write fails with the stream's
 * closing status; owned and lent memory is released exactly once; the
 * shutdown callback comes after every write callback; the close callback
 * runs once, after all of them.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz_common.h"
#include "tstream.h"

enum { W_COPY, W_OWNED, W_REF, W_FUTURE, W_EMPTY, W_SHUTDOWN, W_COUNT };
enum { C_NONE, C_WRITE, C_CLOSE, C_FREE, C_COUNT };

#define MAX_WRITES 256

typedef struct session session;

typedef struct wrec {
    session *m;
    int seq;
    size_t end; /* byte index at which this write's bytes end */
    int then;   /* what its callback does */
    bool fut, done;
} wrec;

struct session {
    fz_fd fd; /* first: the session is the transport */
    ts_ioloop *loop;
    ts_iostream *s;
    bool may_fail;
    fz_cursor ops, peer;
    size_t max_write;
    size_t issued, accepted;
    int nw, last_seq_cb, last_seq_fut, first_fail_cb, first_fail_fut;
    int fail_status; /* the closing status failures carry (0: none yet) */
    wrec w[MAX_WRITES];
    int owned_live, lent_live;
    int in_api, close_calls, futures, deferred;
    bool shut_asked, shut_done, ended;
};

#define API(m, expr) ((m)->in_api++, (expr), (m)->in_api--)

static uint8_t pat(size_t i) { return (uint8_t)(i * 131u ^ i >> 7); }

/* ---- the peer --------------------------------------------------------------- */

static ssize_t t_read(void *t, void *buf, size_t len)
{
    (void)t, (void)buf, (void)len;
    return TS_EAGAIN; /* the peer never sends */
}

static ssize_t t_write(void *t, const struct iovec *iov, int cnt)
{
    session *m = t;
    FZ_CHECK(!m->fd.closed);
    size_t total = 0;
    for (int i = 0; i < cnt; i++)
        total += iov[i].iov_len;
    FZ_CHECK(total > 0);
    size_t take = total;
    if (fz_left(&m->peer)) {
        unsigned c = fz_back(&m->peer);
        if (c < 40)
            return TS_EAGAIN;
        if (c < 43 && m->may_fail)
            return c == 40 ? -EPIPE : -ECONNRESET;
        size_t piece = c & 0x80 ? 1 + (c & 0x3f) : (size_t)(c & 0x3f) * 1499 + 1;
        take = piece < total ? piece : total;
    }
    size_t done = 0;
    for (int i = 0; i < cnt && done < take; i++) {
        const uint8_t *p = iov[i].iov_base;
        size_t l = iov[i].iov_len < take - done ? iov[i].iov_len : take - done;
        for (size_t j = 0; j < l; j++)
            FZ_CHECK(p[j] == pat(m->accepted + done + j)); /* in order, once */
        done += l;
    }
    m->accepted += take;
    FZ_CHECK(m->accepted <= m->issued);
    return (ssize_t)take;
}

static int t_shutdown_write(void *t)
{
    session *m = t;
    FZ_CHECK(m->shut_asked && m->accepted == m->issued); /* only once everything queued went out */
    unsigned c = fz_left(&m->peer) ? fz_back(&m->peer) : 255;
    return c < 30 ? TS_EAGAIN : 0;
}

static const ts_stream_ops peer_ops = {
    .size = sizeof(ts_stream_ops),
    .name = "fuzz",
    .fileno = fz_fd_fileno,
    .read_from_fd = t_read,
    .write_to_fd = t_write,
    .close_fd = fz_fd_close,
    .free = fz_fd_free,
    .shutdown_write = t_shutdown_write,
};

/* ---- results ------------------------------------------------------------------ */

static void step(session *m, int action);

static void result(wrec *w, int status)
{
    session *m = w->m;
    FZ_CHECK(!m->in_api && !w->done);
    w->done = true;
    int *last = w->fut ? &m->last_seq_fut : &m->last_seq_cb;
    FZ_CHECK(w->seq > *last); /* in order (futures among themselves) */
    *last = w->seq;
    int *first_fail = w->fut ? &m->first_fail_fut : &m->first_fail_cb;
    if (status == 0) {
        FZ_CHECK(*first_fail == 0);  /* no success after a failure */
        FZ_CHECK(m->accepted >= w->end); /* its bytes were taken */
    } else {
        if (!*first_fail)
            *first_fail = w->seq;
        if (!m->fail_status)
            m->fail_status = status;
        FZ_CHECK(status == m->fail_status);
        FZ_CHECK(m->s == NULL || ts_iostream_closed(m->s));
    }
    step(m, w->then);
}

static void on_write(ts_iostream *s, int status, void *arg)
{
    (void)s;
    result(arg, status);
}

static void on_future(ts_future *f, void *arg)
{
    wrec *w = arg;
    w->m->futures--;
    result(w, ts_future_error(f));
    ts_future_unref(f);
}

static session *g_m; /* the one session running: owned_free() gets only the pointer */

static void owned_free(void *p)
{
    g_m->owned_live--;
    FZ_CHECK(g_m->owned_live >= 0);
    free(p);
}

static void lent_release(const void *data, size_t len, void *arg)
{
    session *m = arg;
    (void)len;
    m->lent_live--;
    FZ_CHECK(m->lent_live >= 0);
    free((void *)data);
}

static void on_shutdown(ts_iostream *s, int status, void *arg)
{
    (void)s;
    session *m = arg;
    FZ_CHECK(!m->in_api && !m->shut_done);
    m->shut_done = true;
    /* After every write callback. */
    for (int i = 0; i < m->nw; i++)
        FZ_CHECK(m->w[i].done || m->w[i].fut);
    FZ_CHECK(status != 0 || m->accepted == m->issued);
}

static void on_close(ts_iostream *s, void *arg)
{
    (void)s;
    session *m = arg;
    FZ_CHECK(!m->in_api && m->close_calls == 0);
    m->close_calls++;
    for (int i = 0; i < m->nw; i++)
        FZ_CHECK(m->w[i].done || m->w[i].fut); /* told before the close callback */
    FZ_CHECK(!m->shut_asked || m->shut_done);
}

/* ---- the script ------------------------------------------------------------------ */

/* What a write must return now: the stream decides nothing the model cannot. */
static int expect_write(const session *m, size_t len)
{
    if (ts_iostream_closed(m->s))
        return TS_ECLOSED;
    if (m->shut_asked)
        return TS_ESTATE;
    if (m->max_write && ts_iostream_write_buffer_size(m->s) + len > m->max_write)
        return TS_EBUFFERFULL;
    return 0;
}

static void do_write(session *m, int kind, size_t len, int then)
{
    if (m->nw == MAX_WRITES || !m->s)
        return;
    wrec *w = &m->w[m->nw];
    *w = (wrec){.m = m, .seq = m->nw + 1, .end = m->issued + len, .then = then, .fut = kind == W_FUTURE};
    int want = expect_write(m, len);
    uint8_t *buf = malloc(len + 1);
    for (size_t i = 0; i < len; i++)
        buf[i] = pat(m->issued + i);
    int r;
    m->issued += len; /* the stream may hand bytes to the peer inside the call */
    switch (kind) {
    case W_OWNED:
        m->owned_live++;
        API(m, r = ts_iostream_write_owned(m->s, buf, len, owned_free, on_write, w));
        if (r != 0)
            m->owned_live--, free(buf);
        break;
    case W_REF:
        m->lent_live++;
        API(m, r = ts_iostream_write_ref(m->s, buf, len, lent_release, m, on_write, w));
        if (r != 0)
            m->lent_live--, free(buf);
        break;
    case W_FUTURE: {
        ts_future *f;
        API(m, f = ts_iostream_write_future(m->s, buf, len));
        free(buf);
        FZ_CHECK(f != NULL);
        /* A refusal fails the future at once; an accepted write's future completes from the loop. */
        r = ts_future_done(f) ? ts_future_error(f) : 0;
        FZ_CHECK(!ts_future_done(f) || r != 0);
        if (r == 0) {
            m->futures++;
            API(m, ts_future_add_done_callback(f, on_future, w));
        } else {
            ts_future_unref(f);
        }
        break;
    }
    default:
        API(m, r = ts_iostream_write(m->s, buf, len, on_write, w));
        free(buf);
        break;
    }
    if (r != want)
        fprintf(stderr, "write path: kind %d len %zu queued %zu max %zu: returned %d, expected %d\n", kind, len,
                ts_iostream_write_buffer_size(m->s), m->max_write, r, want);
    FZ_CHECK(r == want);
    if (r == 0)
        m->nw++;
    else
        m->issued -= len; /* a refused write queued nothing */
    FZ_CHECK(m->accepted <= m->issued);
}

static size_t write_size(fz_cursor *c)
{
    unsigned a = fz_front(c), b = fz_front(c);
    switch (a >> 6) {
    case 0: return 1 + (a & 0x3f);
    case 1: return 1 + ((a & 0x3f) << 8 | b);
    case 2: return 16384 + (b & 7) - 4; /* around the chunk size */
    default: return (size_t)b * 811 + 1;
    }
}

static void end_session(session *m)
{
    if (!m->s)
        return;
    ts_iostream *s = m->s;
    m->s = NULL;
    API(m, ts_iostream_free(s));
}

/* One script op; C_WRITE callbacks come back here for the next one. */
static void step(session *m, int action)
{
    if (!m->s || m->ended)
        return;
    if (action == C_CLOSE) {
        API(m, ts_iostream_close(m->s, 0));
        return;
    }
    if (action == C_FREE) {
        end_session(m);
        return;
    }
    if (action != C_WRITE)
        return;
    if (!fz_left(&m->ops)) {
        m->ended = true;
        return;
    }
    unsigned op = fz_front(&m->ops);
    int kind = (int)(op % W_COUNT);
    int then = (int)(op >> 4 & 3);
    switch (kind) {
    case W_EMPTY:
        do_write(m, W_COPY, 0, then);
        break;
    case W_SHUTDOWN: {
        int want = ts_iostream_closed(m->s) ? TS_ECLOSED : m->shut_asked ? TS_ESTATE : 0;
        int r;
        API(m, r = ts_iostream_shutdown(m->s, on_shutdown, m));
        FZ_CHECK(r == want);
        if (r == 0)
            m->shut_asked = true;
        break;
    }
    default:
        do_write(m, kind, write_size(&m->ops), then);
        break;
    }
}

static void driver(ts_ioloop *loop, void *arg);

static void again(session *m)
{
    m->deferred++;
    ts_ioloop_add_callback(m->loop, driver, m);
}

static void driver(ts_ioloop *loop, void *arg)
{
    (void)loop;
    session *m = arg;
    m->deferred--;
    if (!m->s)
        return;
    if (m->ended || !fz_left(&m->ops)) {
        /* The script is over: free once the queue drained (or at once, dropping it, if the peer says so). */
        if (!ts_iostream_writing(m->s) || ts_iostream_closed(m->s) || fz_back(&m->peer) == 7)
            end_session(m);
        else
            again(m);
        return;
    }
    /* A burst of writes from the loop, then the loop runs again. */
    unsigned burst = 1 + fz_front(&m->ops) % 4;
    for (unsigned i = 0; i < burst && m->s && !m->ended; i++)
        step(m, C_WRITE);
    if (m->s)
        again(m);
}

static bool session_done(const void *arg)
{
    const session *m = arg;
    if (m->s || !m->fd.freed || m->futures || m->deferred || m->close_calls != 1)
        return false;
    for (int i = 0; i < m->nw; i++)
        if (!m->w[i].done)
            return false;
    return !m->shut_asked || m->shut_done;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static ts_ioloop *loop;
    static session m;
    if (!loop) {
        fz_quiet_logs();
        loop = ts_ioloop_new();
    }
    if (size < 1)
        return 0;
    static const size_t limits[] = {0, 0, 1, 100, 16384, 65536, 300000, 0};
    memset(&m, 0, sizeof(m));
    g_m = &m;
    m.loop = loop;
    m.max_write = limits[data[0] & 7];
    m.may_fail = data[0] & 8;
    fz_cursor_init(&m.ops, data + 1, size - 1);
    m.peer = m.ops; /* the same bytes, from the other end */
    fz_fd_open(&m.fd);
    ts_iostream_options o = {.size = sizeof(o), .max_write_buffer_size = m.max_write};
    m.s = ts_iostream_new(loop, &peer_ops, &m, &o);
    FZ_CHECK(m.s != NULL);
    ts_iostream_set_close_callback(m.s, on_close, &m);
    again(&m);
    fz_run_until(loop, session_done, &m, "write path");
    FZ_CHECK(m.owned_live == 0 && m.lent_live == 0); /* released exactly once */
    if (m.fail_status == 0)
        FZ_CHECK(m.accepted == m.issued); /* nothing failed: everything went out */
    return 0;
}
