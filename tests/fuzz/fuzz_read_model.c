/*
 * libFuzzer target: the read state machine against a reference model.
 *
 * The input is a whole session:
 *   byte 0      limits and the end of the stream (max_buffer_size, read
 *               chunk size, clean EOF / reset / truncation / EIO, whether
 *               TS_EUNSATISFIABLE keeps the stream open);
 *   bytes 1-2   the length L of the incoming data, then L bytes of it;
 *   the rest    the control bytes: a script of reads is taken from the
 *               front (kind, arguments, what the callback does next), the
 *               arrival pattern from the back (how many bytes each
 *               read_from_fd call hands over, or TS_EAGAIN).
 * The data goes through an in-memory transport behind ts_stream_ops (its fd
 * is an eventfd that is always ready, so readiness never gates it).
 *
 * The model knows the whole stream and decides every read's outcome from the
 * data alone, never from how it was cut: success with exactly these bytes
 * (or, for partial reads, a non-empty prefix of them), TS_EUNSATISFIABLE,
 * TS_EBUFFERFULL, or the end's status; what the API call itself returns on a
 * closed stream; streamed chunks in order with nothing lost or repeated; one
 * completion per read, never inside the API call that started it; the close
 * callback once, after the read was told. Any difference aborts
 * (FZ_TRACE=1 prints every read while replaying an input).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef PCRE2_CODE_UNIT_WIDTH
#define PCRE2_CODE_UNIT_WIDTH 8
#endif
#include <ev.h>
#include <pcre2.h>

#include "fuzz_common.h"
#include "tstream.h"

typedef struct span {
    const char *p;
    size_t len;
} span;

/* Overlapping and self-similar delimiters exercise the search's resume point. */
static const span DELIMS[] = {{"\n", 1}, {"\r\n", 2}, {"aa", 2}, {"aab", 3}, {"<<END>>", 7}, {"abcabd", 6},
                              {"\0", 1}, {"\r\n\r\n", 4}};
#define NDELIMS (sizeof(DELIMS) / sizeof(DELIMS[0]))
/*
 * Patterns whose leftmost match ends at the same place however the data
 * arrives (nothing greedy at the end), so the outcome is the data's alone.
 */
static const char *const PATTERNS[] = {"X[0-9]{3}Y", "[;|]", "a+b", "\\r?\\n", "(?:ab)+c", "<<E[N]D>>"};
#define NPATTERNS (sizeof(PATTERNS) / sizeof(PATTERNS[0]))
static pcre2_code *g_re[NPATTERNS];
static pcre2_match_data *g_md;

enum { K_UNTIL, K_BYTES, K_REGEX, K_INTO, K_CLOSE, K_BYTES_STREAM, K_CLOSE_STREAM, K_COUNT };
enum { A_INLINE, A_DEFER, A_CLOSE, A_FREE, A_UNREF, A_COUNT };

typedef struct session {
    fz_fd fd; /* first: the session is the transport */
    ts_ioloop *loop;
    ts_iostream *s; /* NULL once our reference is gone */
    /* the incoming stream */
    const uint8_t *data;
    size_t visible, delivered, pos;
    int end_status;
    int fail_status; /* what the pending read fails with at the end: end_status, or TS_ECLOSED once closed */
    size_t max_buf;
    bool keep_unsat;
    /* control bytes: the script from the front, the arrivals from the back */
    fz_cursor ops, cuts;
    /* the pending read */
    bool pending, future;
    int kind, action, delim, pat;
    size_t n, max_bytes, streamed;
    bool partial;
    uint8_t *into;
    bool dead;    /* no more reads: what is buffered is no longer predictable */
    bool lenient; /* our own close may cut the pending read short */
    int in_api, close_calls, deferred, futures;
} session;

#define API(m, expr) ((m)->in_api++, (expr), (m)->in_api--)

/* ---- the transport -------------------------------------------------------- */

static ssize_t t_read(void *t, void *buf, size_t len)
{
    session *m = t;
    FZ_CHECK(!m->fd.closed);
    if (m->delivered == m->visible)
        return m->end_status == TS_ECLOSED || m->end_status == TS_ETRUNCATED ? 0 : m->end_status;
    size_t piece = len;
    if (fz_left(&m->cuts)) {
        unsigned c = fz_back(&m->cuts);
        if (c < 12)
            return TS_EAGAIN;
        piece = c & 0x80 ? 1 + (c & 0x3f) : (size_t)(1 + (c & 0x3f)) * 97;
    }
    size_t n = piece < len ? piece : len;
    if (n > m->visible - m->delivered)
        n = m->visible - m->delivered;
    memcpy(buf, m->data + m->delivered, n);
    m->delivered += n;
    return (ssize_t)n;
}

static ssize_t t_write(void *t, const struct iovec *iov, int cnt)
{
    (void)t;
    size_t total = 0;
    for (int i = 0; i < cnt; i++)
        total += iov[i].iov_len;
    return (ssize_t)total;
}

static int t_fd_error(void *t) { return ((session *)t)->end_status == TS_ETRUNCATED ? TS_ETRUNCATED : 0; }

static const ts_stream_ops model_ops = {
    .size = sizeof(ts_stream_ops),
    .name = "fuzz",
    .fileno = fz_fd_fileno,
    .read_from_fd = t_read,
    .write_to_fd = t_write,
    .close_fd = fz_fd_close,
    .get_fd_error = t_fd_error,
    .free = fz_fd_free,
};

/* ---- the model ------------------------------------------------------------- */

typedef struct pred {
    int status; /* 0: success with lo..hi bytes */
    size_t lo, hi;
} pred;

/* The end of the first match in p[0..w), 0 if none. */
static size_t first_match(const session *m, const char *p, size_t w)
{
    if (m->kind == K_UNTIL) {
        const span *d = &DELIMS[m->delim];
        const char *hit = memmem(p, w, d->p, d->len);
        return hit ? (size_t)(hit - p) + d->len : 0;
    }
    int rc = pcre2_match(g_re[m->pat], (PCRE2_SPTR)p, w, 0, 0, g_md, NULL);
    return rc > 0 ? pcre2_get_ovector_pointer(g_md)[1] : 0;
}

/* Only the first max_buffer_size bytes of what is left may answer a read. */
static pred predict(const session *m)
{
    size_t rem = m->visible - m->pos;
    size_t w = rem < m->max_buf ? rem : m->max_buf;
    const char *p = (const char *)m->data + m->pos;
    switch (m->kind) {
    case K_BYTES:
    case K_INTO:
        if (m->n == 0)
            return (pred){0, 0, 0};
        if (m->partial && rem > 0) {
            size_t cap = m->kind == K_INTO ? rem : w; /* read_into fills the caller's buffer, past the limit */
            return (pred){0, 1, m->n < cap ? m->n : cap};
        }
        return rem >= m->n ? (pred){0, m->n, m->n} : (pred){m->fail_status, 0, 0};
    case K_UNTIL:
    case K_REGEX: {
        size_t end = first_match(m, p, w);
        if (end && (!m->max_bytes || end <= m->max_bytes))
            return (pred){0, end, end};
        if (m->max_bytes && w >= m->max_bytes)
            return (pred){TS_EUNSATISFIABLE, 0, 0};
        if (rem > m->max_buf)
            return (pred){TS_EBUFFERFULL, 0, 0};
        return (pred){m->fail_status, 0, 0};
    }
    case K_CLOSE:
        return rem > m->max_buf ? (pred){TS_EBUFFERFULL, 0, 0} : (pred){0, rem, rem};
    default:
        return (pred){0, 0, 0};
    }
}

/* What starting the read must return (its callback then never runs). */
static int expect_start(const session *m, bool closed)
{
    if (m->kind == K_BYTES && m->n > m->max_buf)
        return TS_EBUFFERFULL;
    if (m->kind == K_UNTIL && DELIMS[m->delim].len == 0)
        return TS_EINVAL;
    if (!closed)
        return 0;
    if (m->kind == K_BYTES_STREAM)
        return m->n > 0 && m->visible == m->pos ? TS_ECLOSED : 0;
    if (m->kind == K_CLOSE_STREAM)
        return 0;
    return predict(m).status == 0 ? 0 : TS_ECLOSED;
}

/* ---- reads ------------------------------------------------------------------ */

static void next_step(session *m, bool in_cb);
static void start_read(session *m);

static void check_bytes(const session *m, const char *data, size_t len)
{
    FZ_CHECK(m->pos + len <= m->visible);
    FZ_CHECK(len == 0 || memcmp(data, m->data + m->pos, len) == 0);
}

static void read_done(session *m, int status, const char *data, size_t len)
{
    FZ_CHECK(!m->in_api);
    FZ_CHECK(m->pending); /* one completion per read */
    m->pending = false;
    if (getenv("FZ_TRACE"))
        fprintf(stderr, "read model: kind %d fut %d n %zu partial %d delim %d pat %d max_bytes %zu pos %zu "
                "visible %zu streamed %zu -> %d/%zu\n", m->kind, m->future, m->n, m->partial, m->delim, m->pat,
                m->max_bytes, m->pos, m->visible, m->streamed, status, len);
    if (m->kind == K_BYTES_STREAM || m->kind == K_CLOSE_STREAM) {
        FZ_CHECK(len == 0);
        if (m->lenient) {
            m->dead = true;
        } else if (status == 0) {
            FZ_CHECK(m->kind == K_BYTES_STREAM ? m->streamed == m->n : m->pos == m->visible);
        } else {
            FZ_CHECK(m->kind == K_BYTES_STREAM && m->pos == m->visible && status == m->fail_status);
        }
        next_step(m, true);
        return;
    }
    if (m->lenient) {
        /* Our close ended it: whatever came must still be the right bytes. */
        if (status == 0)
            check_bytes(m, data, len), m->pos += len;
        m->dead = true;
        next_step(m, true);
        return;
    }
    pred e = predict(m);
    if (status != e.status || (status == 0 && (len < e.lo || len > e.hi)))
        fprintf(stderr, "read model: kind %d n %zu partial %d delim %d pat %d max_bytes %zu pos %zu visible %zu "
                "max_buf %zu: got %d/%zu, expected %d/%zu..%zu\n", m->kind, m->n, m->partial, m->delim, m->pat,
                m->max_bytes, m->pos, m->visible, m->max_buf, status, len, e.status, e.lo, e.hi);
    FZ_CHECK(status == e.status);
    if (status == 0) {
        FZ_CHECK(len >= e.lo && len <= e.hi);
        check_bytes(m, data, len);
        m->pos += len;
    } else if (status == TS_EUNSATISFIABLE && m->keep_unsat) {
        FZ_CHECK(m->s == NULL || !ts_iostream_closed(m->s));
    } else if (status != m->fail_status || m->kind == K_INTO) {
        /* The limit closed the stream, or read_into kept bytes: what is left is timing's business. */
        m->dead = true;
    }
    next_step(m, true);
}

static void on_read(ts_iostream *s, int status, const char *data, size_t len, void *arg)
{
    (void)s;
    read_done(arg, status, data, len);
}

static void on_into(ts_iostream *s, int status, size_t n, void *arg)
{
    (void)s;
    session *m = arg;
    uint8_t *buf = m->into;
    m->into = NULL;
    FZ_CHECK(status != 0 || n <= m->n);
    read_done(m, status, (const char *)buf, status == 0 ? n : 0);
    free(buf);
}

static void on_chunk(ts_iostream *s, const char *data, size_t len, void *arg)
{
    (void)s;
    session *m = arg;
    FZ_CHECK(!m->in_api && m->pending && len > 0);
    check_bytes(m, data, len);
    m->pos += len;
    m->streamed += len;
    FZ_CHECK(m->kind != K_BYTES_STREAM || m->streamed <= m->n);
    if (m->action == A_CLOSE && !m->lenient && m->s) {
        m->lenient = true; /* closing inside a chunk: the read ends with what is buffered, or fails */
        API(m, ts_iostream_close(m->s, 0));
    }
}

static void on_future(ts_future *f, void *arg)
{
    session *m = arg;
    m->futures--;
    int err = ts_future_error(f);
    if (m->kind == K_INTO) {
        uint8_t *buf = m->into;
        m->into = NULL;
        read_done(m, err, (const char *)buf, err ? 0 : (size_t)(uintptr_t)ts_future_result(f));
        free(buf);
    } else {
        ts_bytes *b = err ? NULL : ts_future_result(f);
        read_done(m, err, b ? b->data : NULL, b ? b->len : 0);
    }
    ts_future_unref(f);
}

static int start_future(session *m)
{
    ts_iostream *s = m->s;
    ts_future *f = NULL;
    const span *d = &DELIMS[m->delim];
    switch (m->kind) {
    case K_UNTIL: API(m, f = ts_iostream_read_until_future(s, d->p, d->len, m->max_bytes)); break;
    case K_BYTES: API(m, f = ts_iostream_read_bytes_future(s, m->n, m->partial)); break;
    case K_REGEX: API(m, f = ts_iostream_read_until_regex_future(s, PATTERNS[m->pat], m->max_bytes)); break;
    case K_INTO: API(m, f = ts_iostream_read_into_future(s, m->into, m->n, m->partial)); break;
    default: API(m, f = ts_iostream_read_until_close_future(s)); break;
    }
    FZ_CHECK(f != NULL);
    if (ts_future_done(f) && ts_future_error(f)) {
        int r = ts_future_error(f);
        ts_future_unref(f);
        return r;
    }
    m->futures++;
    API(m, ts_future_add_done_callback(f, on_future, m));
    return 0;
}

static int start_callback(session *m)
{
    ts_iostream *s = m->s;
    const span *d = &DELIMS[m->delim];
    int r;
    switch (m->kind) {
    case K_UNTIL: API(m, r = ts_iostream_read_until(s, d->p, d->len, m->max_bytes, on_read, m)); break;
    case K_BYTES: API(m, r = ts_iostream_read_bytes(s, m->n, m->partial, on_read, m)); break;
    case K_REGEX: API(m, r = ts_iostream_read_until_regex(s, PATTERNS[m->pat], m->max_bytes, on_read, m)); break;
    case K_INTO: API(m, r = ts_iostream_read_into(s, m->into, m->n, m->partial, on_into, m)); break;
    case K_CLOSE: API(m, r = ts_iostream_read_until_close(s, on_read, m)); break;
    case K_BYTES_STREAM: API(m, r = ts_iostream_read_bytes_streaming(s, m->n, on_chunk, on_read, m)); break;
    default: API(m, r = ts_iostream_read_until_close_streaming(s, on_chunk, on_read, m)); break;
    }
    return r;
}

static size_t pick_size(fz_cursor *c, size_t max_buf)
{
    unsigned a = fz_front(c), b = fz_front(c);
    switch (a >> 6) {
    case 0: return a & 0x3f;
    case 1: return (a & 0x3f) << 8 | b;
    case 2: { /* around the buffer limit */
        size_t base = max_buf < 70000 ? max_buf : 70000;
        return base + (b & 7) >= 4 ? base + (b & 7) - 4 : 0;
    }
    default: return (size_t)b * 997;
    }
}

static void start_read(session *m)
{
    fz_cursor *c = &m->ops;
    if (!m->s || m->dead || !fz_left(c)) {
        m->dead = true;
        return;
    }
    unsigned op = fz_front(c);
    m->kind = (int)(op % K_COUNT);
    m->future = (op & 0x80) && m->kind <= K_CLOSE;
    m->action = (int)(fz_front(c) % A_COUNT);
    m->delim = (int)(op >> 3 & 7) % (int)NDELIMS;
    m->pat = (int)(op >> 3 & 7) % (int)NPATTERNS;
    m->partial = op & 0x40;
    m->n = pick_size(c, m->max_buf);
    unsigned mb = fz_front(c);
    m->max_bytes = mb < 128 ? 0 : mb < 192 ? mb - 127 : (size_t)(mb - 191) * 311;
    m->streamed = 0;
    m->lenient = false;
    bool closed = ts_iostream_closed(m->s);
    if (closed)
        m->visible = m->delivered; /* nothing more will come */
    /* A read started on a closed stream that runs out of buffered data fails with the closing error. */
    m->fail_status = !closed ? m->end_status : ts_iostream_error(m->s) ? ts_iostream_error(m->s) : TS_ECLOSED;
    if (m->kind == K_INTO)
        m->into = malloc(m->n + 1);
    int want = expect_start(m, closed);
    m->pending = true;
    int r = m->future ? start_future(m) : start_callback(m);
    if (getenv("FZ_TRACE"))
        fprintf(stderr, "read model: start kind %d closed %d error %d -> %d\n", m->kind, closed, ts_iostream_error(m->s), r);
    if (r != want)
        fprintf(stderr, "read model: start kind %d n %zu closed %d pos %zu visible %zu: returned %d, expected %d\n",
                m->kind, m->n, closed, m->pos, m->visible, r, want);
    FZ_CHECK(r == want);
    if (r != 0) {
        m->pending = false;
        free(m->into);
        m->into = NULL;
        next_step(m, false);
        return;
    }
    int r2;
    API(m, r2 = ts_iostream_read_bytes(m->s, 1, false, on_read, m));
    FZ_CHECK(r2 == TS_EBUSY); /* a second read is refused and changes nothing */
}

static void deferred(ts_ioloop *loop, void *arg)
{
    (void)loop;
    session *m = arg;
    m->deferred--;
    if (m->dead && m->s) {
        ts_iostream *s = m->s;
        m->s = NULL;
        API(m, ts_iostream_free(s));
        return;
    }
    start_read(m);
    if (m->dead && m->s)
        next_step(m, false);
}

/* After a read: what its action says, or the end of the script. */
static void next_step(session *m, bool in_cb)
{
    if (!m->s)
        return;
    int action = in_cb ? m->action : A_DEFER;
    if (m->dead || !fz_left(&m->ops)) {
        m->dead = true;
        if (action == A_FREE || action == A_UNREF) {
            ts_iostream *s = m->s;
            m->s = NULL;
            API(m, action == A_FREE ? ts_iostream_free(s) : ts_iostream_unref(s));
        } else {
            m->deferred++;
            ts_ioloop_add_callback(m->loop, deferred, m);
        }
        return;
    }
    switch (action) {
    case A_CLOSE:
        API(m, ts_iostream_close(m->s, 0));
        /* fall through: the next read meets a closed stream */
    case A_INLINE:
        start_read(m);
        if (m->dead && m->s && !m->pending)
            next_step(m, false);
        break;
    default: /* A_DEFER; A_FREE and A_UNREF act only at the end of the script */
        m->deferred++;
        ts_ioloop_add_callback(m->loop, deferred, m);
        break;
    }
}

static void on_close(ts_iostream *s, void *arg)
{
    (void)s;
    session *m = arg;
    FZ_CHECK(!m->in_api && m->close_calls == 0);
    m->close_calls++;
    FZ_CHECK(!m->pending || m->future); /* the read was told first */
}

static bool session_done(const void *arg)
{
    const session *m = arg;
    return m->s == NULL && m->fd.freed && !m->pending && m->deferred == 0 && m->futures == 0 && m->close_calls == 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static ts_ioloop *loop;
    if (!loop) {
        fz_quiet_logs();
        loop = ts_ioloop_new();
        for (size_t i = 0; i < NPATTERNS; i++) {
            int ec;
            PCRE2_SIZE eo;
            g_re[i] = pcre2_compile((PCRE2_SPTR)PATTERNS[i], PCRE2_ZERO_TERMINATED, 0, &ec, &eo, NULL);
            FZ_CHECK(g_re[i] != NULL);
        }
        g_md = pcre2_match_data_create(4, NULL);
    }
    if (size < 3)
        return 0;
    static const size_t bufs[] = {16, 64, 100, 257, 4096, 65536, 1, 0};
    static const int ends[] = {TS_ECLOSED, -ECONNRESET, TS_ETRUNCATED, -EIO};
    static const size_t chunks[] = {0, 1, 7, 4096};
    session m = {.loop = loop};
    unsigned cfg = data[0];
    size_t mb = bufs[cfg & 7];
    m.max_buf = mb ? mb : TS_IOSTREAM_DEFAULT_MAX_BUFFER;
    m.end_status = ends[cfg >> 3 & 3];
    m.keep_unsat = cfg & 0x20;
    size_t len = (size_t)(data[1] | data[2] << 8) % (size - 2);
    m.data = data + 3;
    if (len > size - 3)
        len = size - 3;
    m.visible = len;
    fz_cursor_init(&m.ops, data + 3 + len, size - 3 - len);
    m.cuts = m.ops; /* the same bytes, read from the other end */

    fz_fd_open(&m.fd);
    ts_iostream_options o = {.size = sizeof(o), .max_buffer_size = mb, .read_chunk_size = chunks[cfg >> 6]};
    m.s = ts_iostream_new(loop, &model_ops, &m, &o);
    FZ_CHECK(m.s != NULL);
    if (m.keep_unsat)
        ts_iostream_set_close_on_unsatisfiable(m.s, false);
    ts_iostream_set_close_callback(m.s, on_close, &m);
    start_read(&m);
    if (m.dead && m.s)
        next_step(&m, false);
    fz_run_until(loop, session_done, &m, "read model");
    return 0;
}
