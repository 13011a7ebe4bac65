/*
 * The stream core (Tornado's BaseIOStream): lifetime and reference counts,
 * the run loop that turns fd readiness into transport calls and transport
 * results into callbacks, loop interest, and closing in two phases. The
 * read and write halves live in iostream_read.c and iostream_write.c,
 * connect and the handshake in iostream_connect.c; the transports behind
 * ts_stream_ops do the actual I/O.
 *
 * This file does no buffer management, knows no socket, pipe or TLS
 * specifics and makes no system call on the transport's fd: connect, the
 * addresses and SO_ERROR are ops like reads and writes.
 *
 * Callback discipline: user callbacks run only from run(), entered either by
 * the loop's fd handler or by a deferred loop callback, never from inside an
 * API call. Each goes through ts__io_cb_enter/leave, which hold a reference.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "iostream_core.h"

/* Callbacks one run delivers before it yields to the loop (fairness). */
#define TS__RUN_ROUNDS 1024

static void run(ts_iostream *s, int events, bool inline_io);

/* ---- creation and lifetime ---------------------------------------------- */

#define TS__OPT(o, f) \
    (((o) && (o)->size >= offsetof(ts_iostream_options, f) + sizeof((o)->f)) ? (o)->f : 0)

static bool ops_valid(const ts_stream_ops *ops)
{
    return ops && ops->size >= offsetof(ts_stream_ops, get_fd_error) && ops->fileno && ops->read_from_fd &&
           ops->write_to_fd && ops->close_fd;
}

static void on_loop_close(ts__loop_member *m);
static void on_loop_orphan(ts__loop_member *m);
static void release_read_memory(ts_iostream *s);
static void on_deferred(ts__loop_member *m);
static const ts__member_ops member_ops = {on_loop_close, on_loop_orphan, on_deferred};

/* False when out of memory (nothing to undo but the stream's block). */
static bool init_stream(ts_iostream *s, ts_ioloop *loop, const ts_stream_ops *ops, const ts_iostream_options *opts)
{
    s->ops = ops;
    size_t max = TS__OPT(opts, max_buffer_size);
    /*
     * The one place size options are made safe: "unlimited" (SIZE_MAX) and
     * other huge values are clamped so that no limit arithmetic on the read
     * path (limit - len + 1, len + chunk) can wrap around.
     */
    if (max > TS_IOSTREAM_MAX_BUFFER_LIMIT)
        max = TS_IOSTREAM_MAX_BUFFER_LIMIT;
    max = max ? max : TS_IOSTREAM_DEFAULT_MAX_BUFFER;
    size_t chunk = TS__OPT(opts, read_chunk_size);
    /* A chunk close to the limit makes reads fail spuriously (Tornado caps it the same way). */
    chunk = TS__MIN(chunk ? chunk : TS_IOSTREAM_DEFAULT_CHUNK, max / 2);
    chunk = TS__MIN(chunk, TS_IOSTREAM_MAX_CHUNK); /* each read reserves this much: keep it allocatable */
    chunk = chunk ? chunk : 1;
    size_t max_write = TS__OPT(opts, max_write_buffer_size);
    bool limits = max != TS_IOSTREAM_DEFAULT_MAX_BUFFER || chunk != TS_IOSTREAM_DEFAULT_CHUNK || max_write != 0;
    double hs = TS__OPT(opts, handshake_timeout);
    /*
     * A handshake's waiters and deadline are kept from the start: waiting for
     * it cannot fail later. Sizes other than the defaults are kept there too.
     */
    if (limits && !(s->rare = ts__calloc(1, TS__RARE_SIZES)))
        return false;
    if (hs > 0 || TS__OP(s, handshake)) {
        if (!ts__io_rare(s)) {
            ts__free(s->rare); /* (the sizes' block, if any) */
            return false;
        }
        s->rare->hs_timeout = hs > 0 ? hs : 0;
    }
    if (limits) {
        s->flags |= TS__F_LIMITS;
        s->rare->max_buffer_size = max;
        s->rare->read_chunk_size = (uint32_t)chunk;
        s->rare->max_write_buffer_size = max_write;
    }
    ts__ioloop_attach(loop, &s->member, &member_ops);
    s->handler.io.data = loop;
    s->refs = 1;
    ts__readbuf_init(&s->rb);
    s->wb = (ts__writebuf *)&ts__writebuf_idle; /* a queue of its own comes with the first write */
    if (TS__OP(s, handshake))
        /* Nothing may touch the fd before the handshake; it starts once the fd is connected. */
        s->flags |= TS__F_HANDSHAKING;
    if (TS__OPS_FLAGS(ops) & TS_STREAM_OPS_SHORT_READ_DRAINED)
        s->flags |= TS__F_PLAIN_FD; /* the read path tests one stream bit, not the ops */
    return true;
}

static void after_init(ts_iostream *s)
{
    if (s->flags & TS__F_HANDSHAKING)
        ts__io_schedule(s); /* the deferred run starts the handshake if already connected */
}

ts_iostream *ts_iostream_new(ts_ioloop *loop, const ts_stream_ops *ops, void *transport,
                             const ts_iostream_options *opts)
{
    if (!loop || !ops_valid(ops))
        return NULL;
    ts_iostream *s = ts__calloc(1, TS__IO_TOFF + sizeof(void *));
    if (!s)
        return NULL;
    *(void **)(void *)((char *)s + TS__IO_TOFF) = transport; /* (ts__io_transport) */
    if (!init_stream(s, loop, ops, opts)) {
        ts__free(s);
        return NULL;
    }
    after_init(s);
    return s;
}

ts_iostream *ts__iostream_new_inline(ts_ioloop *loop, const ts_stream_ops *ops, size_t transport_size,
                                     const ts_iostream_options *opts)
{
    if (!loop || !ops_valid(ops))
        return NULL;
    ts_iostream *s = ts__calloc(1, TS__IO_TOFF + transport_size);
    if (!s)
        return NULL;
    s->flags |= TS__F_INLINE_T; /* (ts__io_transport) */
    if (!init_stream(s, loop, ops, opts)) {
        ts__free(s);
        return NULL;
    }
    /* The caller fills the transport in before the loop runs, so deferring the handshake start is safe. */
    after_init(s);
    return s;
}

ts__rare *ts__io_rare(ts_iostream *s)
{
    if (s->flags & TS__F_RARE)
        return s->rare;
    /* (a block of only the sizes grows in place or moves: nothing points into it) */
    char *p = s->rare ? ts__realloc(s->rare, sizeof *s->rare) : ts__calloc(1, sizeof *s->rare);
    if (!p)
        return NULL;
    memset(p + TS__RARE_SIZES, 0, sizeof(ts__rare) - TS__RARE_SIZES);
    s->rare = (ts__rare *)(void *)p;
    s->flags |= TS__F_RARE;
    return s->rare;
}

static void destroy(ts_iostream *s)
{
    ts__ioloop_detach(&s->member);
    ts__io_disarm_handshake_timer(s);
    ts__io_timeouts_free(s);
    if (s->rb.lent)
        ts__ioloop_rdbuf_give(ts__io_loop(s), ts__readbuf_lent(&s->rb));
    ts__readbuf_free(&s->rb);
    ts__writebuf_release(s->wb);
    ts__io_read_free(s);
    void (*free_fn)(void *) = TS__OP(s, free);
    if (free_fn)
        free_fn(ts__io_transport(s));
    ts__free(s->rare);
    ts__free(s);
}

ts_iostream *ts_iostream_ref(ts_iostream *s)
{
    s->refs++;
    return s;
}

void ts_iostream_unref(ts_iostream *s)
{
    if (!s || --s->refs > 0)
        return;
    if (!(s->flags & TS__F_CLOSED)) {
        /* Dropping the last reference closes; the deferred phase two holds its own and frees. */
        s->refs++;
        ts__io_close(s, 0, true); /* queues phase two, which holds a reference of its own */
        s->refs--;
        return;
    }
    if (s->flags & TS__F_CLOSE_DONE)
        destroy(s);
}

void ts_iostream_free(ts_iostream *s)
{
    if (!s)
        return;
    ts_iostream_close(s, 0);
    ts_iostream_unref(s);
}

/* ---- closing ------------------------------------------------------------ */

int ts__io_close_status(const ts_iostream *s) { return s->error ? s->error : TS_ECLOSED; }

static void drop_handler(ts_iostream *s)
{
    if (s->events) {
        ts__ioloop_remove_handler_embedded(ts__io_loop(s), &s->handler);
        s->events = 0;
    }
}

/* The transport's peer_address op, or TS_ENOTSUP without one. */
int ts__io_peer_address(const ts_iostream *s, struct sockaddr_storage *ss, socklen_t *len)
{
    int (*op)(void *, struct sockaddr *, socklen_t *) = TS__OP(s, peer_address);
    *len = sizeof(*ss);
    return op ? op(ts__io_transport(s), (struct sockaddr *)ss, len) : TS_ENOTSUP;
}

void ts__io_describe_peer(ts_iostream *s, char *buf, size_t len)
{
    int fd = s->ops->fileno(ts__io_transport(s));
    struct sockaddr_storage ss;
    socklen_t sl;
    if (fd >= 0 && ts__io_peer_address(s, &ss, &sl) == 0 && (ss.ss_family == AF_INET || ss.ss_family == AF_INET6) &&
        ts_sockaddr_str((struct sockaddr *)&ss, sl, buf, len) > 0)
        return;
    snprintf(buf, len, "fd %d", fd);
}

void ts__io_close(ts_iostream *s, int err, bool orderly)
{
    if (s->flags & TS__F_CLOSED)
        return;
    if (err && !s->error)
        s->error = err;
    /* The library logs only what it decided: a user closing with one of these codes chose to. */
    if (!orderly && (err == TS_EUNSATISFIABLE || err == TS_EBUFFERFULL)) {
        char peer[TS__PEER_STRLEN];
        ts__io_describe_peer(s, peer, sizeof peer);
        if (err == TS_EUNSATISFIABLE)
            ts_log(TS_LOG_INFO, "iostream: unsatisfiable read, closing connection to %s", peer);
        else
            ts_log(TS_LOG_WARN, "iostream: reached maximum buffer size, closing connection to %s", peer);
    }
    drop_handler(s);
    ts__io_disarm_handshake_timer(s);
    ts__io_timeouts_free(s);
    void (*shut)(void *) = TS__OP(s, shutdown);
    /*
     * Only a clean end says goodbye (a clean EOF is answered in kind, as TLS
     * asks); after an error the peer is gone or confused.
     */
    if (orderly && !s->error && shut)
        shut(ts__io_transport(s));
    s->ops->close_fd(ts__io_transport(s));
    s->flags |= TS__F_CLOSED;
    s->flags &= ~TS__F_CONNECTING;
    /* Unwritten bytes can never go out now; their markers fail in phase two. */
    ts__writebuf_clear(s->wb);
    ts__io_schedule(s);
}

void ts_iostream_close(ts_iostream *s, int err) { ts__io_close(s, err, true); }

/* Phase two, once the pending read and writes were told: the close callback, once. */
static void close_phase_two(ts_iostream *s)
{
    s->flags |= TS__F_CLOSE_DONE;
    ts_iostream_close_cb cb = s->close_cb;
    void *arg = s->close_arg;
    s->close_cb = NULL;
    if (!cb)
        return;
    ts__io_cb_enter(s);
    cb(s, arg);
    ts__io_cb_leave(s);
}

/* ---- the loop's end ------------------------------------------------------ */

/* ts_ioloop_free(), first pass: an open stream closes as ts_iostream_close() would. */
static void on_loop_close(ts__loop_member *m)
{
    ts_iostream *s = (ts_iostream *)m;
    if (!(s->flags & TS__F_CLOSED))
        ts__io_close(s, 0, true);
}

/*
 * ts_ioloop_free(), last pass: a stream the program still holds (or whose
 * close did not finish in the loop's last rounds) is cut loose. It stays
 * closed and valid until its last ts_iostream_unref(); no call on it reaches
 * the loop again, and callbacks still owed to it are dropped.
 */
static void on_loop_orphan(ts__loop_member *m)
{
    ts_iostream *s = (ts_iostream *)m;
    s->flags |= TS__F_ORPHAN; /* from here on nothing is scheduled */
    ts__io_close(s, 0, false);
    /* A stream closed by ts__iostream_detach_fd() kept its timers: none may outlive the loop. */
    ts__io_disarm_handshake_timer(s);
    ts__io_timeouts_free(s);
    if (s->flags & TS__F_SCHEDULED) {
        /* its queued run is freed with the loop, never run: drop the reference it held */
        s->flags &= ~TS__F_SCHEDULED;
        s->refs--;
    }
    s->flags |= TS__F_CLOSE_DONE;
    s->close_cb = NULL;
    s->flags &= ~TS__F_VIEW;
    release_read_memory(s); /* the loop's read block stays with the loop */
    if (s->wb != &ts__writebuf_idle)
        s->wb->pool = NULL; /* and so do its write chunks */
    ts__ioloop_detach(&s->member);
    s->handler.io.data = NULL;
    if (s->refs <= 0)
        destroy(s);
}

/* ---- scheduling and the run loop ---------------------------------------- */

static void on_deferred(ts__loop_member *m)
{
    ts_iostream *s = (ts_iostream *)((char *)m - offsetof(ts_iostream, member));
    s->flags &= ~TS__F_SCHEDULED;
    run(s, 0, true);
    ts_iostream_unref(s); /* the reference ts__io_schedule took */
}

void ts__io_schedule(ts_iostream *s)
{
    if (s->flags & (TS__F_SCHEDULED | TS__F_IN_RUN | TS__F_ORPHAN))
        return;
    s->flags |= TS__F_SCHEDULED;
    s->refs++;
    ts__ioloop_defer(ts__io_loop(s), &s->member);
}

static void on_events(struct ev_loop *ev, ev_io *w, int revents)
{
    TS__UNUSED(ev);
    int events = ts__handler_events(w, revents);
    if (events)
        run((ts_iostream *)((char *)w - offsetof(ts_iostream, handler.io)), events, false);
}

static bool idle_listening(const ts_iostream *s)
{
    /*
     * Tornado's _maybe_add_error_listener: notice a peer close while nothing
     * is pending. Not while writing: a peer that half-closed (shutdown of its
     * write side) still reads, and must get everything queued for it.
     */
    return s->rd.kind == TS__RK_NONE && s->rb.len == 0 && s->close_cb && ts__writebuf_size(s->wb) == 0;
}

/*
 * Does whatever fd work readiness (@p events) or an inline pass allows. With
 * @p flush false, queued writes wait: run() flushes once after its callbacks,
 * so writes made by many callbacks go out in one writev.
 */
static void do_io(ts_iostream *s, int events, bool inl, bool flush)
{
    /* Most calls find an open, connected stream: one test skips the three below. */
    if (!ts__io_ready_for_io(s) && !ts__io_setup(s, events, &inl))
        return;
    if (ts__io_read_wants_fd(s)) {
        ts__io_read_check(s);
        if (ts__io_read_wants_fd(s)) {
            int dir = s->read_wait ? s->read_wait : TS_IOLOOP_READ;
            if ((events & dir) || (inl && !(s->flags & TS__F_RDRAINED)))
                ts__io_read_step(s);
        }
    } else if ((events & TS_IOLOOP_READ) && idle_listening(s)) {
        ts__io_read_step(s);
    }
    if (s->flags & TS__F_CLOSED)
        return;
    if (flush && ts__io_write_pending(s)) {
        int dir = s->write_wait ? s->write_wait : TS_IOLOOP_WRITE;
        if ((events & dir) || (inl && !(s->flags & TS__F_WBLOCKED)))
            ts__io_flush(s);
    }
}

/* deliver()'s first part, for a closed stream or a finished connect or handshake. Returns whether a callback ran. */
static bool deliver_state(ts_iostream *s)
{
    if (s->flags & TS__F_CLOSED) {
        /* Phase two: whoever is still waiting learns the outcome now. */
        if ((s->flags & (TS__F_CONNECT_WAIT | TS__F_CONNECT_READY)) == TS__F_CONNECT_WAIT) {
            s->rare->connect_status = ts__io_close_status(s);
            s->flags |= TS__F_CONNECT_READY;
        }
        if ((s->flags & (TS__F_HS_WAIT | TS__F_HS_READY)) == TS__F_HS_WAIT) {
            s->rare->hs_status = ts__io_close_status(s);
            s->flags |= TS__F_HS_READY;
        }
        ts__io_read_finalize(s);
    }
    if (s->flags & TS__F_CONNECT_READY) {
        ts__io_deliver_connect(s, false);
        return true;
    }
    if (s->flags & TS__F_HS_READY) {
        ts__io_deliver_connect(s, true);
        return true;
    }
    return false;
}

/*
 * Runs one ready callback, in the order the contract promises. Returns
 * whether one ran. It is asked once more after every callback, so each
 * kind is tested inline before its function is called.
 */
static bool deliver(ts_iostream *s)
{
    if ((s->flags & (TS__F_CLOSED | TS__F_CONNECT_READY | TS__F_HS_READY)) && deliver_state(s))
        return true;
    if (s->rd.ready && ts__io_read_deliver(s))
        return true;
    if (ts__writebuf_has_marks(s->wb) && ts__io_write_deliver(s))
        return true;
    if ((s->flags & (TS__F_SHUT_READY | TS__F_SHUT_REQ)) && ts__io_shutdown_deliver(s))
        return true;
    if ((s->flags & (TS__F_CLOSED | TS__F_CLOSE_DONE)) == TS__F_CLOSED) {
        close_phase_two(s);
        return true;
    }
    return false;
}

static bool has_work(const ts_iostream *s)
{
    if (s->flags & (TS__F_CONNECT_READY | TS__F_HS_READY | TS__F_KICK | TS__F_SHUT_READY))
        return true;
    if (s->rd.ready || ts__writebuf_mark_ready(s->wb))
        return true;
    if (s->flags & TS__F_CLOSED)
        return !(s->flags & TS__F_CLOSE_DONE) || s->rd.kind != TS__RK_NONE || ts__writebuf_has_marks(s->wb) ||
               (s->flags & (TS__F_CONNECT_WAIT | TS__F_HS_WAIT | TS__F_SHUT_REQ));
    return false;
}

static void run(ts_iostream *s, int events, bool inline_io)
{
    s->refs++;
    s->flags |= TS__F_IN_RUN;
    if (s->rb.lent) /* kept since the last run: nobody may reclaim it under this one */
        ts__ioloop_rdbuf_use(ts__io_loop(s), ts__readbuf_lent(&s->rb));
    /* A kick only asks for this run; a deferred run is inline, so the read is retried. */
    s->flags &= ~(TS__F_RDRAINED | TS__F_WBLOCKED | TS__F_KICK);
    s->run_reads = 0;
    if (s->wb != &ts__writebuf_idle) /* (a queue taken later in the run starts at 0) */
        s->wb->run_written = 0;
    do_io(s, events, inline_io, true);
    for (int round = 0; round < TS__RUN_ROUNDS; round++) {
        if (!deliver(s))
            break;
        /* The read the callback started is already answered from the buffer (the next line): deliver it. */
        if (s->rd.ready && ts__io_ready_for_io(s))
            continue;
        /*
         * The callback may have started a read, or left a streaming one
         * pending: serve it now. Writes wait for the flush below. An fd this
         * run found drained has nothing for it: only the buffer is asked.
         */
        if (!(s->flags & TS__F_RDRAINED) || !ts__io_ready_for_io(s))
            do_io(s, 0, true, false);
        else if (ts__io_read_wants_fd(s))
            ts__io_read_check(s);
    }
    if (!(s->flags & TS__F_CLOSED) && ts__io_write_pending(s) && ts__io_ready_for_io(s) &&
        !(s->flags & TS__F_WBLOCKED))
        ts__io_flush(s);
    s->flags &= ~(TS__F_IN_RUN | TS__F_RDRAINED | TS__F_WBLOCKED);
    if (has_work(s))
        ts__io_schedule(s);
    ts__io_update_interest(s);
    if (s->refs > 1)
        s->refs--; /* (the run's reference, not the last: nothing to decide) */
    else
        ts_iostream_unref(s);
}

/* ---- loop interest ------------------------------------------------------ */

/*
 * The one place an open stream gives its read buffer's memory back. Never
 * while a read callback holds a view into it: the callback may be the one
 * that asked (start_tls detaching the fd in the STARTTLS pattern), and its
 * bytes must stay valid until it returns. The release then happens when
 * run() settles interest on its way out (destroy() frees the rest).
 */
static inline void settle_read_memory(ts_iostream *s)
{
    /* Echoes still queued by reference are copied: their bytes are about to move. */
    if (ts__writebuf_has_views(s->wb))
        ts__io_pin_views(s, false, true);
    /* The loop's block goes back; an idle stream keeps no read memory, a busy one what it holds. */
    unsigned r = ts__readbuf_settle(&s->rb);
    if (r & TS__RB_TAG_MAX)
        ts__ioloop_rdbuf_give(ts__io_loop(s), r & TS__RB_TAG_MAX);
    if (r & TS__RB_LOST)
        ts__io_close(s, TS_ENOMEM, false);
}

/* Another stream wants the loop's block this stream kept between runs. */
static void reclaim_read_block(void *keeper) { settle_read_memory(keeper); }

/*
 * Whether the stream keeps the loop's block until its next run: it holds
 * buffered bytes worth a copy (the unfinished part of a large message, or
 * messages its reader paused on, e.g. waiting for its writes to drain).
 * Moving them out at every run and back in at the next would copy each such
 * tail twice; kept, they are copied only if another stream asks for the
 * block meanwhile (reclaim_read_block). The block is the loop's either way:
 * keeping it costs no memory.
 */
static bool keeps_read_block(const ts_iostream *s)
{
    return s->rb.lent && s->rb.len >= TS__KEEP_BLOCK_MIN && !(s->flags & (TS__F_CLOSED | TS__F_READ_EOF));
}

static void release_read_memory(ts_iostream *s)
{
    if ((s->flags & TS__F_VIEW) || !s->rb.base)
        return;
    if (keeps_read_block(s)) { /* the block stays put: so do the bytes echoes queued by reference point at */
        ts__ioloop_rdbuf_rest(ts__io_loop(s), ts__readbuf_lent(&s->rb), reclaim_read_block, s);
        return;
    }
    settle_read_memory(s);
}

void ts__io_settle_interest(ts_iostream *s)
{
    unsigned f = s->flags;
    release_read_memory(s);
    ts__io_wbuf_settle(s);
    if (s->flags & TS__F_TIMEOUTS) /* (read again: the release may have closed the stream) */
        ts__io_timeouts_settle(s);
    int want = 0;
    if (f & TS__F_CLOSED) {
        want = 0;
    } else if (f & TS__F_CONNECTING) {
        want = TS_IOLOOP_WRITE;
    } else if (f & TS__F_HANDSHAKING) {
        want = (f & TS__F_HS_STARTED) ? s->hs_wait : 0;
    } else {
        if (ts__io_read_wants_fd(s))
            want |= s->read_wait ? s->read_wait : TS_IOLOOP_READ;
        else if (idle_listening(s))
            want |= TS_IOLOOP_READ;
        if (ts__io_write_pending(s))
            want |= s->write_wait ? s->write_wait : TS_IOLOOP_WRITE;
    }
    if (want == s->events)
        return;
    if (want == 0) {
        drop_handler(s);
        return;
    }
    if (s->events == 0) {
        int fd = s->ops->fileno(ts__io_transport(s));
        int r = ts__ioloop_add_handler_embedded(ts__io_loop(s), &s->handler, fd, want, on_events);
        if (r < 0) {
            ts__io_close(s, r, false);
            return;
        }
    } else {
        ts__ioloop_update_handler_embedded(ts__io_loop(s), &s->handler, want);
    }
    s->events = (uint8_t)want;
}

int ts__iostream_detach_fd(ts_iostream *s, int *fd_out)
{
    if (s->flags & TS__F_CLOSED)
        return TS_ECLOSED;
    const unsigned busy = TS__F_CONNECTING | TS__F_CONNECT_WAIT | TS__F_HANDSHAKING | TS__F_HS_WAIT;
    if ((s->flags & busy) || s->rd.kind != TS__RK_NONE || s->rb.len || ts__writebuf_size(s->wb) ||
        ts__writebuf_has_marks(s->wb))
        return TS_EBUSY;
    int fd = s->ops->fileno(ts__io_transport(s));
    drop_handler(s);
    /* Closed for good, but silently: the fd and the close callback belong to whoever takes over. */
    s->flags |= TS__F_CLOSED | TS__F_CLOSE_DONE | TS__F_DETACHED;
    s->close_cb = NULL;
    release_read_memory(s); /* (the busy check above proved it empty) */
    *fd_out = fd;
    return 0;
}

/* ---- accessors ---------------------------------------------------------- */

void ts_iostream_set_close_callback(ts_iostream *s, ts_iostream_close_cb cb, void *arg)
{
    s->close_cb = cb;
    s->close_arg = arg;
    ts__io_update_interest(s);
}

bool ts_iostream_closed(const ts_iostream *s) { return s->flags & TS__F_CLOSED; }
bool ts_iostream_reading(const ts_iostream *s) { return s->rd.kind != TS__RK_NONE; }
bool ts_iostream_writing(const ts_iostream *s) { return ts__writebuf_size(s->wb) != 0; }
int ts_iostream_error(const ts_iostream *s) { return s->error; }

const char *ts_iostream_error_detail(const ts_iostream *s)
{
    const char *(*detail)(void *) = TS__OP(s, error_detail);
    return detail ? detail(ts__io_transport(s)) : NULL;
}

int ts_iostream_fileno(const ts_iostream *s)
{
    return (s->flags & TS__F_CLOSED) ? -1 : s->ops->fileno(ts__io_transport(s));
}

int ts_iostream_peer_address(const ts_iostream *s, struct sockaddr_storage *addr, socklen_t *len)
{
    if (ts_iostream_fileno(s) < 0)
        return TS_ECLOSED;
    return ts__io_peer_address(s, addr, len);
}

int ts_iostream_local_address(const ts_iostream *s, struct sockaddr_storage *addr, socklen_t *len)
{
    if (ts_iostream_fileno(s) < 0)
        return TS_ECLOSED;
    int (*op)(void *, struct sockaddr *, socklen_t *) = TS__OP(s, local_address);
    *len = sizeof(*addr);
    return op ? op(ts__io_transport(s), (struct sockaddr *)addr, len) : TS_ENOTSUP;
}

int ts_iostream_set_nodelay(ts_iostream *s, bool on)
{
    if (ts_iostream_fileno(s) < 0)
        return TS_ECLOSED;
    int (*op)(void *, bool) = TS__OP(s, set_nodelay);
    return op ? op(ts__io_transport(s), on) : TS_ENOTSUP;
}

ts_ioloop *ts_iostream_loop(const ts_iostream *s) { return ts__io_loop(s); }
size_t ts_iostream_read_buffer_size(const ts_iostream *s) { return s->rb.len; }
size_t ts_iostream_write_buffer_size(const ts_iostream *s) { return ts__writebuf_size(s->wb); }
void ts_iostream_set_close_on_unsatisfiable(ts_iostream *s, bool close)
{
    if (close)
        s->flags &= ~TS__F_KEEP_UNSAT;
    else
        s->flags |= TS__F_KEEP_UNSAT;
}

void ts_iostream_set_userdata(ts_iostream *s, void *data) { s->userdata = data; }
void *ts_iostream_userdata(const ts_iostream *s) { return s->userdata; }

void *ts__iostream_transport(ts_iostream *s) { return ts__io_transport(s); }

void ts__iostream_get_close_callback(ts_iostream *s, ts_iostream_close_cb *cb, void **arg)
{
    *cb = s->close_cb;
    *arg = s->close_arg;
}

void ts__iostream_get_options(ts_iostream *s, ts_iostream_options *out)
{
    if (out->size >= offsetof(ts_iostream_options, max_write_buffer_size) + sizeof(out->max_write_buffer_size)) {
        out->max_buffer_size = ts__io_max_buffer(s);
        out->read_chunk_size = ts__io_read_chunk(s);
        out->max_write_buffer_size = ts__io_max_write(s);
    }
    if (out->size >= offsetof(ts_iostream_options, handshake_timeout) + sizeof(out->handshake_timeout))
        out->handshake_timeout = ts__io_rare_if(s) ? s->rare->hs_timeout : 0;
}
const ts_stream_ops *ts__iostream_ops(ts_iostream *s) { return s->ops; }
uint64_t ts__iostream_search_bytes(const ts_iostream *s)
{
    ts_ioloop *loop = ts__io_loop(s);
    return loop ? ts__ioloop_head(loop)->search_bytes : 0;
}

size_t ts__iostream_struct_size(void) { return sizeof(struct ts_iostream); }
size_t ts__iostream_transport_offset(void) { return TS__IO_TOFF; }

size_t ts__iostream_heap_bytes(const ts_iostream *s)
{
    size_t n = s->rb.cap + ts__writebuf_size(s->wb) + (size_t)s->wb->mcap * sizeof(ts__wmark);
    if (s->wb != &ts__writebuf_idle)
        n += sizeof(ts__writebuf); /* a queue of its own */
    if (s->rd.kind == TS__RK_UNTIL && s->rd.dlen == TS__DELIM_LONG)
        n += sizeof(ts__delim_long) + s->rd.delim_heap->len;
    return n + ts__regex_heap_bytes(ts__io_rare_if(s) ? s->rare->re : NULL);
}
