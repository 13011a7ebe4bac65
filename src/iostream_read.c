/*
 * The read half of the stream core: the read API, deciding when the pending
 * read is satisfied (Tornado's _find_read_pos), reading from the transport
 * straight into the read buffer (or the caller's buffer for read_into), and
 * delivering completions as views into the buffer.
 *
 * Searches resume: the pending read keeps an offset (from the unconsumed
 * start) before which no match can begin, so a long line arriving in pieces
 * is scanned once. Regex matching itself is in iostream_regex.c.
 */
#include <errno.h>
#include <string.h>

#include "iostream_core.h"

static const char *delim_ptr(const ts__read *rd)
{
    return rd->dlen == TS__DELIM_LONG ? rd->delim_heap->bytes : rd->delim;
}

static size_t delim_size(const ts__read *rd) { return rd->dlen == TS__DELIM_LONG ? rd->delim_heap->len : rd->dlen; }

/* Ends the pending read: all of it is cleared (a few wide stores), once per read. */
static void reset_read(ts__read *rd)
{
    if (rd->kind == TS__RK_UNTIL && rd->dlen == TS__DELIM_LONG) /* almost always inline: skip the allocator hook */
        ts__free(rd->delim_heap);
    *rd = (ts__read){.kind = TS__RK_NONE};
}

void ts__io_read_free(ts_iostream *s)
{
    reset_read(&s->rd);
    if (ts__io_rare_if(s)) {
        ts__regex_free(s->rare->re);
        s->rare->re = NULL;
    }
}

/* 1: delimiter ends at *end; 0: not yet; TS_EUNSATISFIABLE: cannot end within max_bytes. */
static int find_delim(ts_iostream *s, size_t *end)
{
    ts__read *rd = &s->rd;
    const char *data = ts__readbuf_data(&s->rb);
    size_t len = TS__MIN(s->rb.len, ts__io_max_buffer(s));
    /* Bytes past max_bytes can never be part of the answer: don't even look at them. */
    size_t limit = rd->max_bytes ? TS__MIN(len, rd->max_bytes) : len;
    size_t dl = delim_size(rd);
    if (limit >= dl && rd->scan <= limit - dl) {
        const char *d = delim_ptr(rd);
        size_t span = limit - rd->scan;
        ts__io_count_search(s, span);
        const char *hit = dl == 1 ? memchr(data + rd->scan, d[0], span) : memmem(data + rd->scan, span, d, dl);
        if (hit) {
            *end = (size_t)(hit - data) + dl;
            return 1;
        }
        /* A delimiter straddling the end may still complete: keep its first dl-1 bytes in view. */
        rd->scan = limit - dl + 1;
    }
    if (rd->max_bytes && len >= rd->max_bytes)
        return TS_EUNSATISFIABLE;
    return 0;
}

static int find_regex(ts_iostream *s, bool final, size_t *end)
{
    ts__read *rd = &s->rd;
    size_t len = TS__MIN(s->rb.len, ts__io_max_buffer(s));
    bool at_limit = rd->max_bytes && len >= rd->max_bytes;
    size_t limit = rd->max_bytes ? TS__MIN(len, rd->max_bytes) : len;
    final = final || at_limit;
    if (!final && limit == rd->seen)
        return 0; /* nothing new since the last search */
    rd->seen = limit;
    int r = ts__regex_search(s, ts__readbuf_data(&s->rb), limit, &rd->scan, final, end);
    if (r == 0 && at_limit)
        return TS_EUNSATISFIABLE;
    return r;
}

/*
 * Whether the pending read can complete from what is buffered. 1: yes, with
 * *pos bytes (*chunk: a streaming piece, the read stays pending); 0: not yet;
 * negative: the read fails with that error. @p final: no more data will come.
 */
static int find_pos(ts_iostream *s, bool final, size_t *pos, bool *chunk)
{
    ts__read *rd = &s->rd;
    /* Only max_buffer_size bytes may answer a read; the byte past them only proves the buffer full. */
    size_t len = TS__MIN(s->rb.len, ts__io_max_buffer(s));
    *chunk = false;
    switch (rd->kind) {
    case TS__RK_BYTES:
        if (rd->streaming) {
            *pos = TS__MIN(len, rd->n);
            *chunk = *pos > 0;
            return (rd->n == 0 || *chunk) ? 1 : 0;
        }
        if (len >= rd->n || (rd->partial && len > 0)) {
            *pos = TS__MIN(len, rd->n);
            return 1;
        }
        return 0;
    case TS__RK_UNTIL:
        return find_delim(s, pos);
    case TS__RK_REGEX:
        return find_regex(s, final, pos);
    case TS__RK_CLOSE:
        if (rd->streaming && len > 0) {
            *pos = len;
            *chunk = true;
            return 1;
        }
        if (!final)
            return 0;
        /* Data cut short by our own limit is not "everything until close". */
        if (s->error == TS_EBUFFERFULL || s->error == TS_ENOMEM)
            return s->error;
        /*
         * Nor is more than the limit, kept after a clean close (the byte
         * that proves the buffer full, left by a read answered within it):
         * the answer would be cut to max_buffer_size bytes.
         */
        if (!rd->streaming && s->rb.len > ts__io_max_buffer(s))
            return TS_EBUFFERFULL;
        *pos = rd->streaming ? 0 : len;
        return 1;
    case TS__RK_INTO: {
        /* The caller's buffer takes it: every buffered byte counts, the limit's extra one too. */
        size_t k = TS__MIN(s->rb.len, rd->n - rd->filled);
        bool done = rd->filled + k == rd->n || (rd->partial && rd->filled + k > 0);
        if (final && !done)
            return 0; /* the read fails: what is buffered stays for the next read, not lost in the caller's buffer */
        if (k) {
            memcpy(rd->into + rd->filled, ts__readbuf_data(&s->rb), k);
            ts__readbuf_consume(&s->rb, k);
            rd->filled += k;
        }
        *pos = 0;
        return (rd->filled == rd->n || (rd->partial && rd->filled > 0)) ? 1 : 0;
    }
    default:
        return 0;
    }
}

static bool evaluate_slow(ts_iostream *s, bool final);

/*
 * Marks the read ready if it can complete (or fail); returns whether it is
 * ready. The common "nothing buffered yet" case of a delimiter or pattern
 * read is answered inline: such a read never completes on an empty buffer
 * (documented for empty regex matches), and it is asked once or twice per
 * line while the stream waits for the next one.
 */
static inline bool evaluate(ts_iostream *s, bool final)
{
    ts__read *rd = &s->rd;
    if (final || rd->ready)
        return evaluate_slow(s, final);
    if (s->rb.len == 0 && (rd->kind == TS__RK_UNTIL || rd->kind == TS__RK_REGEX))
        return false;
    /*
     * A one-byte delimiter (a line) within the buffer limit: the search of
     * find_delim() without its general cases, since it runs once per line.
     * Only a miss that reaches max_bytes goes on to the full path, which
     * fails the read.
     */
    if (rd->kind == TS__RK_UNTIL && rd->dlen == 1 && s->rb.len <= ts__io_max_buffer(s)) {
        size_t len = s->rb.len;
        size_t limit = rd->max_bytes && rd->max_bytes < len ? rd->max_bytes : len;
        if (rd->scan < limit) {
            const char *data = s->rb.base + s->rb.start;
            ts__io_count_search(s, limit - rd->scan);
            const char *hit = memchr(data + rd->scan, rd->delim[0], limit - rd->scan); /* dlen 1: inline */
            if (hit) {
                rd->ready = true; /* (chunk stays 0: only streaming reads set it) */
                rd->pos = (size_t)(hit - data) + 1;
                rd->status = 0;
                return true;
            }
            rd->scan = limit;
        }
        if (!rd->max_bytes || len < rd->max_bytes)
            return false;
    }
    return evaluate_slow(s, final);
}

static bool evaluate_slow(ts_iostream *s, bool final)
{
    ts__read *rd = &s->rd;
    if (rd->kind == TS__RK_NONE || rd->ready)
        return rd->ready;
    size_t pos = 0;
    bool chunk = false;
    int r = find_pos(s, final, &pos, &chunk);
    if (r == 0 && !final)
        return false;
    rd->ready = true;
    rd->chunk = chunk ? 1 : 0;
    if (rd->kind != TS__RK_INTO) /* (its room is filled's, which its completion reports) */
        rd->pos = r > 0 ? pos : 0;
    rd->status = r > 0 ? 0 : r < 0 ? r : ts__io_close_status(s);
    if (r < 0 && !(r == TS_EUNSATISFIABLE && (s->flags & TS__F_KEEP_UNSAT)))
        ts__io_close(s, r, false);
    return true;
}

void ts__io_read_check_buffered(ts_iostream *s) { evaluate(s, false); }

void ts__io_read_finalize(ts_iostream *s) { evaluate(s, true); }

static void log_read_error(ts_iostream *s, int err);

/*
 * Where the next read lands. A stream whose own block has room for a whole
 * read (the tail of an unfinished message) reads there; otherwise it
 * borrows the loop's shared block, bringing along the bytes it kept (the
 * copy growing or compacting its own block would have made), and settles
 * (keeps only the unconsumed tail) when it is done: arrivals that complete
 * reads allocate nothing, and a stream holds memory in proportion to what it
 * buffers. A read too big for the shared block grows a block of its own.
 */
static void borrow_block(ts_iostream *s, size_t want)
{
    ts__readbuf *rb = &s->rb;
    if (rb->lent || (rb->base && rb->cap - rb->start - rb->len >= want) || rb->len + want > TS__LOOP_RDBUF / 2 ||
        (s->flags & TS__F_VIEW))
        return;
    unsigned tag;
    char *block = ts__ioloop_rdbuf_take(ts__io_loop(s), &tag);
    if (block)
        ts__readbuf_lend(rb, block, TS__LOOP_RDBUF, tag);
}
_Static_assert(TS__LOOP_RDBUFS <= TS__RB_TAG_MAX, "a read buffer's tag names each of the loop's blocks");

/* How far the block may grow: max_buffer_size, or the pending read's max_bytes plus one chunk. */
static size_t grow_cap(const ts_iostream *s)
{
    size_t cap = ts__io_max_buffer(s);
    size_t mb = s->rd.max_bytes;
    if ((s->rd.kind == TS__RK_UNTIL || s->rd.kind == TS__RK_REGEX) && mb && mb < cap - ts__io_read_chunk(s))
        cap = mb + ts__io_read_chunk(s);
    return cap;
}

/* One transport read. >0: bytes; 0: would block (read_wait set); -1: the stream closed. */
static ssize_t read_once(ts_iostream *s)
{
    ts__read *rd = &s->rd;
    char *dst;
    size_t room;
    size_t max = ts__io_max_buffer(s); /* (the size options never change) */
    bool direct = rd->kind == TS__RK_INTO && s->rb.len == 0;
    if (direct) {
        /* read_into: bytes go straight to the caller's buffer, no copy. */
        dst = rd->into + rd->filled;
        room = rd->n - rd->filled;
    } else {
        if (s->rb.len > max) {
            /* Full, and the pending read needs more (read_step asked). */
            ts__io_close(s, TS_EBUFFERFULL, false);
            return -1;
        }
        /* Never let the buffer pass max_buffer_size by more than the one byte that proves it full. */
        size_t limit = max - s->rb.len + 1;
        size_t want = TS__MIN(ts__io_read_chunk(s), limit);
        if (ts__writebuf_has_views(s->wb)) {
            /*
             * Echoes queued by reference go out before more is read; what the
             * transport leaves is copied if this read moves the buffer's bytes
             * (a block without room for it is compacted, grown or swapped).
             */
            ts__readbuf *rb = &s->rb;
            bool moves = !rb->base || rb->cap - rb->start - rb->len < want;
            if (!ts__io_pin_views(s, true, moves))
                return -1;
        }
        borrow_block(s, want);
        /* Views left queued point before the tail: the read goes after them (the check above kept them). */
        dst = ts__readbuf_tail(&s->rb, want, &room, ts__writebuf_has_views(s->wb));
        if (!dst && !(dst = ts__readbuf_make_room(&s->rb, want, grow_cap(s), &room))) {
            ts__io_close(s, TS_ENOMEM, false);
            return -1;
        }
        /*
         * read_chunk_size bytes are asked per read; into the loop's block,
         * for a pending read, as much as the block holds (up to the limit):
         * bulk costs a quarter of the reads. An idle stream reads one chunk.
         */
        room = TS__MIN(room, (s->rb.lent && s->rd.kind != TS__RK_NONE) ? limit : want);
    }
    ssize_t r = ts__io_wouldblock(s->ops->read_from_fd(ts__io_transport(s), dst, room));
    if (r > 0) {
        s->read_wait = 0;
        ts__io_read_progress(s);
        if (direct) {
            rd->filled += (size_t)r;
        } else {
            ts__readbuf_commit(&s->rb, (size_t)r);
            /* Full only if the pending read cannot be answered from the first max_buffer_size bytes. */
            if (s->rb.len > max && !evaluate(s, false) && s->rb.len > max) {
                ts__io_close(s, TS_EBUFFERFULL, false);
                return -1;
            }
        }
        if ((size_t)r < room && (s->flags & TS__F_PLAIN_FD)) {
            /*
             * A short read from a plain fd means it is drained: skip the read
             * that would only say EAGAIN and wait for readiness (the loop is
             * level-triggered, so bytes still there are announced). User and
             * TLS transports may hold bytes the fd never announces: they read on.
             */
            s->flags |= TS__F_RDRAINED;
        }
        return r;
    }
    if (r == 0) {
        /* EOF. A transport may know it was not a clean one (TLS truncation). */
        int (*fd_error)(void *) = TS__OP(s, get_fd_error);
        int err = fd_error ? fd_error(ts__io_transport(s)) : 0;
        if (!err && ts__writebuf_size(s->wb) > 0) {
            /*
             * The half-close rule: the peer only stopped sending. Reads end
             * now, as at a close; what is queued still goes out, and the
             * flush that drains it closes the fd (iostream_write.c).
             */
            s->flags |= TS__F_READ_EOF;
            evaluate(s, true);
            return -1;
        }
        ts__io_close(s, err, true);
        return -1;
    }
    if (r == TS_EAGAIN || r == TS_EWANTREAD || r == TS_EWANTWRITE) {
        s->read_wait = r == TS_EWANTWRITE ? TS_IOLOOP_WRITE : TS_IOLOOP_READ;
        s->flags |= TS__F_RDRAINED;
        return 0;
    }
    log_read_error(s, (int)r);
    ts__io_close(s, (int)r, false);
    return -1;
}

/* A peer hanging up is ordinary; everything else that kills a read is news (Tornado's _is_connreset). */
static bool is_connreset(int err)
{
    return err == -ECONNRESET || err == -ECONNABORTED || err == -EPIPE || err == -ETIMEDOUT;
}

/*
 * As Tornado's "error on read": logged once, when a read that was waiting on
 * the loop fails (a TLS record error, EIO from a transport). Errors met when
 * a read starts are the caller's to report (the API call returns them, or
 * the callback gets them at once), so those stay quiet.
 */
static void log_read_error(ts_iostream *s, int err)
{
    if (!(s->flags & TS__F_IN_RUN) || s->rd.kind == TS__RK_NONE || is_connreset(err))
        return;
    char peer[TS__PEER_STRLEN];
    ts__io_describe_peer(s, peer, sizeof peer);
    const char *detail = ts_iostream_error_detail(s);
    ts_log(TS_LOG_WARN, "iostream: error on read from %s: %s%s%s", peer, ts_strerror(err), detail ? ": " : "",
           detail ? detail : "");
}

/* Bytes the fd will never announce (e.g. inside TLS): come back without waiting for it. */
static void kick_if_pending(ts_iostream *s)
{
    size_t (*pending)(void *) = TS__OP(s, pending);
    if (pending && pending(ts__io_transport(s)) > 0) {
        s->flags |= TS__F_KICK;
        ts__io_schedule(s);
    }
}

void ts__io_read_step(ts_iostream *s)
{
    if (!(s->flags & TS__F_IN_RUN))
        s->run_reads = 0; /* an API call's inline read counts on its own */
    for (;;) {
        if (!ts__io_ready_for_io(s) || (s->flags & TS__F_VIEW))
            return;
        if (s->flags & TS__F_READ_EOF) {
            evaluate(s, true); /* no more data will come: decide on what is buffered */
            return;
        }
        if (s->rd.kind != TS__RK_NONE) {
            if (evaluate(s, false))
                return;
        } else if (s->rb.len > 0) {
            return; /* idle: one chunk is enough to notice a close */
        }
        if (s->run_reads >= TS__READS_PER_RUN) {
            /* This run's share is used up: the rest waits for the next poll. */
            if (!(s->flags & TS__F_PLAIN_FD))
                kick_if_pending(s);
            return;
        }
        s->run_reads++;
        ssize_t r = read_once(s);
        if (r > 0 && (s->flags & TS__F_RDRAINED)) {
            if (s->rd.kind != TS__RK_NONE)
                evaluate(s, false);
            return;
        }
        if (r == 0) {
            kick_if_pending(s);
            return;
        }
        if (r < 0)
            return;
    }
}

bool ts__io_read_deliver(ts_iostream *s)
{
    ts__read *rd = &s->rd;
    if (!rd->ready)
        return false;
    const char *data = ts__readbuf_data(&s->rb);
    size_t n = rd->pos;
    void *arg = rd->arg;
    if (rd->chunk) {
        rd->ready = false;
        rd->chunk = 0;
        if (rd->kind == TS__RK_BYTES)
            rd->n -= n;
        /* Consumed before the call so a read started inside it sees what follows; the memory stays put. */
        ts__readbuf_consume(&s->rb, n);
        s->flags |= TS__F_VIEW;
        ts__io_cb_enter(s);
        rd->scb(s, data, n, arg);
        s->flags &= ~TS__F_VIEW;
        ts__io_cb_leave(s);
        return true;
    }
    int kind = rd->kind, status = rd->status;
    size_t filled = rd->filled;
    ts_iostream_read_cb cb = rd->cb;
    ts_iostream_read_into_cb into_cb = rd->into_cb;
    reset_read(rd); /* cleared before the call: the callback may start the next read */
    ts__io_cb_enter(s);
    if (kind == TS__RK_INTO) {
        into_cb(s, status, status ? 0 : filled, arg);
    } else if (status) {
        cb(s, status, NULL, 0, arg);
    } else {
        ts__readbuf_consume(&s->rb, n);
        s->flags |= TS__F_VIEW;
        cb(s, 0, data, n, arg);
        s->flags &= ~TS__F_VIEW;
    }
    ts__io_cb_leave(s);
    return true;
}

/* ---- the read API -------------------------------------------------------- */

/* Inline: it is most of every read call, made once per line. */
__attribute__((noinline)) static int begin_read_slow(ts_iostream *s)
{
    ts__read *rd = &s->rd;
    if (s->flags & TS__F_CLOSED) {
        /* Tornado 6.1+: a closed stream still serves what it buffered. */
        evaluate(s, true);
        if (rd->status != 0) {
            reset_read(rd);
            return TS_ECLOSED;
        }
        ts__io_schedule(s);
        return 0;
    }
    /* After the peer's EOF (writes still draining) nothing more arrives: decide now, answer from the loop. */
    bool ready = evaluate(s, (s->flags & TS__F_READ_EOF) != 0);
    /* Inside a run, run() reads, delivers and settles interest itself: schedule and update would be no-ops. */
    if (s->flags & TS__F_IN_RUN)
        return 0;
    if (!ready)
        ts__io_read_step(s); /* Tornado's _try_inline_read */
    /*
     * Waiting on a handshake, the read cannot try the fd itself; a run from
     * the loop steps the handshake once, so a socket that went bad under it
     * (closed: EBADF) fails the read instead of leaving it waiting on an fd
     * the poller no longer watches.
     */
    if (rd->ready || ((s->flags & (TS__F_HANDSHAKING | TS__F_HS_STARTED)) == (TS__F_HANDSHAKING | TS__F_HS_STARTED)))
        ts__io_schedule(s);
    ts__io_update_interest(s);
    return 0;
}

/*
 * Starts the read just set up. The common case, a read started by a
 * callback (inside a run) on an open stream, only checks the buffer: run()
 * reads, delivers and settles interest itself.
 */
__attribute__((always_inline)) static inline int begin_read(ts_iostream *s)
{
    if ((s->flags & (TS__F_IN_RUN | TS__F_CLOSED | TS__F_READ_EOF)) != TS__F_IN_RUN)
        return begin_read_slow(s);
    evaluate(s, false);
    return 0;
}

static int check_start(ts_iostream *s, bool have_cb)
{
    if (!have_cb)
        return TS_EINVAL;
    if (s->flags & TS__F_ORPHAN)
        return TS_ECLOSED; /* its loop is gone: nothing could deliver the result */
    if (s->rd.kind != TS__RK_NONE)
        return TS_EBUSY;
    return 0;
}

int ts_iostream_read_bytes(ts_iostream *s, size_t n, bool partial, ts_iostream_read_cb cb, void *arg)
{
    int r = check_start(s, cb != NULL);
    if (r)
        return r;
    if (n > ts__io_max_buffer(s))
        return TS_EBUFFERFULL;
    s->rd.kind = TS__RK_BYTES;
    s->rd.n = n;
    s->rd.partial = partial ? 1 : 0;
    s->rd.cb = cb;
    s->rd.arg = arg;
    return begin_read(s);
}

/* A streaming read of @p kind (bytes: @p n of them; until-close: @p n unused): each piece to @p scb. */
static int start_streaming(ts_iostream *s, uint8_t kind, size_t n, ts_iostream_streaming_cb scb,
                           ts_iostream_read_cb cb, void *arg)
{
    int r = check_start(s, cb != NULL);
    if (r)
        return r;
    if (!scb)
        return TS_EINVAL;
    s->rd.kind = kind;
    s->rd.streaming = 1;
    s->rd.n = n;
    s->rd.scb = scb;
    s->rd.cb = cb;
    s->rd.arg = arg;
    return begin_read(s);
}

int ts_iostream_read_bytes_streaming(ts_iostream *s, size_t n, ts_iostream_streaming_cb streaming_cb,
                                     ts_iostream_read_cb cb, void *arg)
{
    return start_streaming(s, TS__RK_BYTES, n, streaming_cb, cb, arg);
}

/* A delimiter longer than one byte: inline, or in a block of its own. False when out of memory. */
__attribute__((noinline)) static bool copy_delim(ts__read *rd, const void *delim, size_t delim_len)
{
    if (delim_len <= TS__DELIM_INLINE) {
        memcpy(rd->delim, delim, delim_len);
        return true;
    }
    if (!(rd->delim_heap = ts__malloc(sizeof(ts__delim_long) + delim_len)))
        return false;
    rd->delim_heap->len = delim_len;
    memcpy(rd->delim_heap->bytes, delim, delim_len);
    return true;
}

int ts_iostream_read_until(ts_iostream *s, const void *delim, size_t delim_len, size_t max_bytes,
                           ts_iostream_read_cb cb, void *arg)
{
    int r = check_start(s, cb != NULL);
    if (r)
        return r;
    if (!delim || delim_len == 0 || delim_len > UINT32_MAX)
        return TS_EINVAL;
    ts__read *rd = &s->rd;
    /* (set first, so that only the stream is needed after a copy; they mean nothing until kind is) */
    rd->max_bytes = max_bytes;
    rd->cb = cb;
    rd->arg = arg;
    if (delim_len == 1)
        rd->delim[0] = *(const char *)delim; /* the common "\n": no call */
    else if (!copy_delim(rd, delim, delim_len))
        return TS_ENOMEM;
    rd->kind = TS__RK_UNTIL;
    rd->dlen = delim_len > TS__DELIM_INLINE ? TS__DELIM_LONG : (uint8_t)delim_len;
    return begin_read(s);
}

int ts_iostream_read_until_regex(ts_iostream *s, const char *pattern, size_t max_bytes, ts_iostream_read_cb cb,
                                 void *arg)
{
    int r = check_start(s, cb != NULL);
    if (r)
        return r;
    if (!pattern)
        return TS_EINVAL;
    r = ts__regex_prepare(s, pattern);
    if (r)
        return r;
    s->rd.kind = TS__RK_REGEX;
    s->rd.max_bytes = max_bytes;
    s->rd.cb = cb;
    s->rd.arg = arg;
    return begin_read(s);
}

int ts_iostream_read_until_close(ts_iostream *s, ts_iostream_read_cb cb, void *arg)
{
    int r = check_start(s, cb != NULL);
    if (r)
        return r;
    s->rd.kind = TS__RK_CLOSE;
    s->rd.cb = cb;
    s->rd.arg = arg;
    return begin_read(s);
}

int ts_iostream_read_until_close_streaming(ts_iostream *s, ts_iostream_streaming_cb streaming_cb,
                                           ts_iostream_read_cb cb, void *arg)
{
    return start_streaming(s, TS__RK_CLOSE, 0, streaming_cb, cb, arg);
}

int ts_iostream_read_into(ts_iostream *s, void *buf, size_t len, bool partial, ts_iostream_read_into_cb cb,
                          void *arg)
{
    int r = check_start(s, cb != NULL);
    if (r)
        return r;
    if (!buf && len)
        return TS_EINVAL;
    s->rd.kind = TS__RK_INTO;
    s->rd.into = buf;
    s->rd.n = len;
    s->rd.partial = partial ? 1 : 0;
    s->rd.into_cb = cb;
    s->rd.arg = arg;
    return begin_read(s);
}
