/*
 * The stream object and the functions the core files share (iostream.c,
 * iostream_read.c, iostream_regex.c, iostream_write.c, iostream_future.c).
 * Transports never include this: they see a stream only through
 * iostream_int.h and ts_stream_ops.
 */
#ifndef TSTREAM_IOSTREAM_CORE_H
#define TSTREAM_IOSTREAM_CORE_H

#include <errno.h>

#include "iostream_int.h"

/* Stream state bits. */
enum {
    TS__F_CONNECTING = 1u << 0,     /* connect() in progress */
    TS__F_CONNECT_WAIT = 1u << 1,   /* a connect callback is owed */
    TS__F_CONNECT_READY = 1u << 2,  /* ... and is ready to run (connect_status) */
    TS__F_HANDSHAKING = 1u << 3,    /* ops->handshake not finished */
    TS__F_HS_WAIT = 1u << 4,        /* a wait_for_handshake callback is owed */
    TS__F_HS_READY = 1u << 5,       /* ... and is ready to run (hs_status) */
    TS__F_CLOSED = 1u << 6,         /* phase one done: fd closed, watchers gone */
    TS__F_CLOSE_DONE = 1u << 7,     /* phase two done: everyone told */
    TS__F_SCHEDULED = 1u << 8,      /* a deferred run is queued on the loop */
    TS__F_IN_RUN = 1u << 9,         /* inside run(): callbacks may be on the stack */
    TS__F_VIEW = 1u << 10,          /* a read callback holds a view into the read buffer */
    TS__F_DETACHED = 1u << 11,      /* fd taken by ts__iostream_detach_fd() */
    TS__F_INLINE_T = 1u << 12,      /* the transport lives inside the stream's block */
    TS__F_RDRAINED = 1u << 13,      /* this run saw the fd would block for reads */
    TS__F_WBLOCKED = 1u << 14,      /* this run saw the fd would block for writes */
    TS__F_HANDSHAKE_DONE = 1u << 15, /* the transport handshake completed */
    TS__F_HS_STARTED = 1u << 16,     /* ops->handshake has been called (the fd is connected) */
    TS__F_KICK = 1u << 17,           /* the transport has data the fd won't announce: run again */
    TS__F_PLAIN_FD = 1u << 18,       /* the ops say TS_STREAM_OPS_SHORT_READ_DRAINED: a short read means drained */
    TS__F_KEEP_UNSAT = 1u << 19,     /* a read failing TS_EUNSATISFIABLE leaves the stream open */
    TS__F_READ_EOF = 1u << 20,       /* the peer's EOF came with writes queued: reads fail, the fd closes once they drain */
    TS__F_SHUT_REQ = 1u << 21,       /* ts_iostream_shutdown(): shut the write side once the queue drains */
    TS__F_SHUT_DONE = 1u << 22,      /* ... done (or the stream closed first) */
    TS__F_SHUT_READY = 1u << 23,     /* ... and its callback is owed (shut_status) */
    TS__F_ORPHAN = 1u << 24,         /* its loop was freed: closed, and nothing may reach the loop */
    TS__F_TIMEOUTS = 1u << 25,       /* ts_iostream_set_timeouts() set one: rare->tmo is live */
    TS__F_LIMITS = 1u << 26,         /* rare holds the size limits (not all the defaults) */
    TS__F_RARE = 1u << 27            /* rare is whole, not only its sizes (ts__io_rare()) */
};

/* An optional op, or NULL when the ops struct is too old to have it. */
#define TS__OP(s, f) \
    ((s)->ops->size >= offsetof(ts_stream_ops, f) + sizeof((s)->ops->f) ? (s)->ops->f : NULL)

/* The ops' flags (0 when the struct is too old to have them). */
#define TS__OPS_FLAGS(ops) \
    ((ops)->size >= offsetof(ts_stream_ops, flags) + sizeof((ops)->flags) ? (ops)->flags : 0u)

/*
 * The one spelling of "would block": a transport may say -EAGAIN or
 * -EWOULDBLOCK, as the system call it wraps did, as well as TS_EAGAIN.
 * Every place that classifies a transport's answer passes it through here.
 */
static inline ssize_t ts__io_wouldblock(ssize_t r)
{
    return (r == -EAGAIN || r == -EWOULDBLOCK) ? TS_EAGAIN : r;
}

enum ts__read_kind { TS__RK_NONE = 0, TS__RK_BYTES, TS__RK_UNTIL, TS__RK_REGEX, TS__RK_CLOSE, TS__RK_INTO };

/*
 * Delimiters up to this long are kept inside the stream; longer ones get a
 * block of their own, which starts with their length (ts__delim_long).
 */
#define TS__DELIM_INLINE 8
#define TS__DELIM_LONG 0xffu /* ts__read.dlen of a delimiter in a block of its own */
typedef struct ts__delim_long {
    size_t len;
    char bytes[];
} ts__delim_long;

/*
 * The pending read (Tornado's _read_bytes/_read_delimiter/... fields). What
 * only one kind of read uses shares its room with what only another uses:
 * every idle connection with a read pending holds one of these (48 bytes).
 */
typedef struct ts__read {
    uint8_t kind;
    bool ready;            /* complete (status, pos) and waiting to be delivered */
    uint8_t dlen;          /* until: the delimiter's length, or TS__DELIM_LONG */
    uint8_t partial : 1;   /* bytes, into: any data completes it */
    uint8_t streaming : 1; /* bytes, until-close: each piece goes to scb */
    uint8_t chunk : 1;     /* ready is one streaming piece, not the end */
    int status;
    union {
        size_t n;         /* bytes: wanted (streaming: still wanted); into: buffer size */
        size_t max_bytes; /* until, regex: 0: none */
    };
    union {
        size_t scan;   /* until, regex, while not ready: the search resumes here (offset from the unconsumed start) */
        size_t pos;    /* when ready (but into): bytes of the read buffer to deliver */
        size_t filled; /* into: bytes stored in into (what its completion reports) */
    };
    union {
        ts_iostream_read_cb cb;           /* every kind but into */
        ts_iostream_read_into_cb into_cb; /* into */
    };
    void *arg;
    union {
        ts_iostream_streaming_cb scb;   /* streaming bytes and until-close: each piece */
        char *into;                     /* into: the caller's buffer */
        ts__delim_long *delim_heap;     /* until: a delimiter longer than TS__DELIM_INLINE */
        char delim[TS__DELIM_INLINE];   /* until: one up to TS__DELIM_INLINE long */
        size_t seen;                    /* regex: bytes buffered at the last search */
    };
} ts__read;

typedef struct ts__regex ts__regex;

/* Per-stream read/write timeouts (ts_iostream_set_timeouts), in the stream's ts__rare while TS__F_TIMEOUTS. */
typedef struct ts__timeouts {
    double read, write;          /* seconds without progress, 0: none */
    double rd_since, wr_since;   /* loop time of the last progress (or of the wait's start) */
    bool rd_waiting, wr_waiting; /* a read / the write side was waiting when last settled */
    uint64_t timer;              /* the armed check, 0: none */
    double due;                  /* when it fires */
} ts__timeouts;

/*
 * What only size options other than the defaults, a connect, a handshake,
 * ts_iostream_shutdown(), timeouts or a regex read need, kept apart so that
 * an idle stream does not carry it. A stream whose only need is the sizes
 * (TS__F_LIMITS) holds just them, the block's first TS__RARE_SIZES bytes,
 * from its creation; the whole block (TS__F_RARE) comes with the API call
 * that first needs the rest (ts__io_rare()), or at creation for a transport
 * with a handshake or a handshake_timeout. Freed with the stream. Whole
 * whenever TS__F_CONNECT_WAIT, TS__F_HS_WAIT, TS__F_SHUT_REQ,
 * TS__F_TIMEOUTS or a handshake timeout is.
 */
typedef struct ts__rare {
    size_t max_buffer_size;       /* while TS__F_LIMITS (else TS_IOSTREAM_DEFAULT_MAX_BUFFER) */
    size_t max_write_buffer_size; /* while TS__F_LIMITS (else 0: none) */
    uint32_t read_chunk_size;     /* while TS__F_LIMITS (else TS_IOSTREAM_DEFAULT_CHUNK; at most TS_IOSTREAM_MAX_CHUNK) */
    /* the rest: only while TS__F_RARE */
    ts_iostream_connect_cb connect_cb;
    void *connect_arg;
    ts_iostream_connect_cb hs_cb;
    void *hs_arg;
    ts_iostream_write_cb shut_cb;
    void *shut_arg;
    double hs_timeout; /* seconds, 0: none */
    uint64_t hs_timer; /* the handshake's deadline timeout, 0: none armed */
    int connect_status;
    int hs_status;
    int shut_status;
    ts__timeouts tmo; /* live while TS__F_TIMEOUTS */
    ts__regex *re;    /* the last pattern read_until_regex compiled (NULL: none) */
} ts__rare;
#define TS__RARE_SIZES offsetof(ts__rare, connect_cb)

struct ts_iostream {
    ts__loop_member member; /* on the loop's list (or its deferred-run queue: TS__F_SCHEDULED) until destroyed or orphaned */
    const ts_stream_ops *ops;
    unsigned flags;
    int refs;
    int error;
    unsigned read_wait : 3;  /* TS_IOLOOP_READ/WRITE a blocked read waits for (0: not blocked) */
    unsigned write_wait : 3; /* likewise for the write buffer */
    unsigned hs_wait : 3;    /* likewise for the handshake */
    uint8_t run_reads;       /* transport reads made in this run (bounded by TS__READS_PER_RUN) */
    uint8_t events;          /* interest registered with the loop through handler (0: none) */

    ts__readbuf rb;
    ts__writebuf *wb; /* &ts__writebuf_idle while nothing is queued (ts__io_wbuf, ts__io_wbuf_settle) */
    ts__read rd;
    ts__rare *rare; /* NULL until needed */

    ts_iostream_close_cb close_cb;
    void *close_arg;
    void *userdata;
    ts__handler handler; /* the loop's fd handler while events != 0 (its fd: handler.io.fd); io.data: the loop */
};

/* The stream's loop (NULL once orphaned): kept in the handler's spare word rather than a field of its own. */
static inline ts_ioloop *ts__io_loop(const ts_iostream *s) { return (ts_ioloop *)s->handler.io.data; }

/*
 * The transport follows the stream in its block, at TS__IO_TOFF: the
 * transport itself when TS__F_INLINE_T (ts__iostream_new_inline), else a
 * pointer to the caller's (ts_iostream_new).
 */
#define TS__ALIGN_UP(n, a) (((n) + (a) - 1) / (a) * (a))
#define TS__IO_TOFF TS__ALIGN_UP(sizeof(struct ts_iostream), _Alignof(max_align_t))
static inline void *ts__io_transport(const ts_iostream *s)
{
    char *tail = (char *)s + TS__IO_TOFF;
    return (s->flags & TS__F_INLINE_T) ? (void *)tail : *(void **)(void *)tail;
}

/* The most bytes the read buffer answers reads from (options.max_buffer_size, made safe). */
static inline size_t ts__io_max_buffer(const ts_iostream *s)
{
    return (s->flags & TS__F_LIMITS) ? s->rare->max_buffer_size : TS_IOSTREAM_DEFAULT_MAX_BUFFER;
}

/* Bytes asked of the transport per read. */
static inline size_t ts__io_read_chunk(const ts_iostream *s)
{
    return (s->flags & TS__F_LIMITS) ? s->rare->read_chunk_size : TS_IOSTREAM_DEFAULT_CHUNK;
}

/* The write buffer's limit (0: none). */
static inline size_t ts__io_max_write(const ts_iostream *s)
{
    return (s->flags & TS__F_LIMITS) ? s->rare->max_write_buffer_size : 0;
}

/* Counts @p n bytes examined by a search, on the loop's counter (an orphan's are not counted). */
static inline void ts__io_count_search(const ts_iostream *s, size_t n)
{
    ts_ioloop *loop = ts__io_loop(s);
    if (loop)
        ts__ioloop_head(loop)->search_bytes += n;
}

_Static_assert(TS_IOSTREAM_MAX_CHUNK <= UINT32_MAX, "rare->read_chunk_size is 32 bits");

/*
 * Bytes after which one run stops writing, so one busy stream cannot starve
 * the others; the write that crosses it goes whole, up to twice the cap.
 */
#define TS__WRITE_EVENT_CAP (4u * 1024u * 1024u)
/*
 * The write queue's run_written counts up to twice the cap (each write asks
 * for at most what is left of that). It is the queue's: a stream with
 * nothing queued since its run began has written nothing in it.
 */
_Static_assert(2ull * TS__WRITE_EVENT_CAP <= UINT32_MAX / 2, "run_written is 32 bits");
/*
 * Transport reads one run makes at most (libuv's 32): a stream that still
 * has data waits for the next poll, where the fd (level-triggered) or its
 * transport's pending bytes bring it back, after the loop served the rest.
 */
#define TS__READS_PER_RUN 32
/* Unfinished messages at least this long keep the loop's read block between runs (see release_read_memory). */
#define TS__KEEP_BLOCK_MIN 4096u
/* Most iovec entries per write_to_fd call (IOV_MAX on Linux). */
#define TS__IOV_CAP 1024

/* ---- iostream.c --------------------------------------------------------- */

/**
 * Phase one of closing (see ts_iostream_close). @p orderly: a clean end, the
 * user's close or the peer's clean EOF, not an error; without an error the
 * transport then says goodbye first (ops->shutdown: TLS close_notify).
 */
void ts__io_close(ts_iostream *s, int err, bool orderly);
/** Queues a deferred run on the loop (no-op if queued, or if a run is on the stack: it will loop). Cannot fail: the stream's member links hold its place. */
void ts__io_schedule(ts_iostream *s);
void ts__io_settle_interest(ts_iostream *s);
/**
 * Brings the loop's interest in line with what the stream waits for;
 * releases an empty read buffer. Inside run() nothing: run() settles once,
 * on its way out (API calls from callbacks land here).
 */
static inline void ts__io_update_interest(ts_iostream *s)
{
    if (!(s->flags & TS__F_IN_RUN))
        ts__io_settle_interest(s);
}
/** Room for ts__io_describe_peer()'s text. */
#define TS__PEER_STRLEN TS_SOCKADDR_STRLEN
/** "host:port" ("[v6]:port") of the peer when the fd is an inet socket, else "fd N" (for log lines). */
void ts__io_describe_peer(ts_iostream *s, char *buf, size_t len);
/** The transport's peer_address op, or TS_ENOTSUP without one (*len is set to the room). */
int ts__io_peer_address(const ts_iostream *s, struct sockaddr_storage *ss, socklen_t *len);

/* ---- iostream_connect.c -------------------------------------------------- */

/**
 * The closed / connecting / handshaking part of a run's fd work: finishes a
 * connect on readiness, steps the handshake. Returns whether reads and
 * writes may go on (*inl_io: they may be tried without readiness).
 */
bool ts__io_setup(ts_iostream *s, int events, bool *inl_io);
/** Runs the connect (@p hs false) or handshake-wait callback owed. */
void ts__io_deliver_connect(ts_iostream *s, bool hs);
/** Cancels the handshake deadline, if one is armed. */
void ts__io_disarm_handshake_timer(ts_iostream *s);

/** Whether fd I/O may happen now (open, connected, handshake done). */
static inline bool ts__io_ready_for_io(const ts_iostream *s)
{
    return !(s->flags & (TS__F_CLOSED | TS__F_CONNECTING | TS__F_HANDSHAKING));
}
/** The error a failed operation reports: the closing error, else TS_ECLOSED. */
int ts__io_close_status(const ts_iostream *s);
/** The stream's whole ts__rare, allocated (zeroed, the sizes kept) on first use; NULL when out of memory (nothing changed). */
ts__rare *ts__io_rare(ts_iostream *s);
/** The whole ts__rare if the stream has it, else NULL (never allocates). */
static inline ts__rare *ts__io_rare_if(const ts_iostream *s) { return (s->flags & TS__F_RARE) ? s->rare : NULL; }

/*
 * The callback wrapper, inline because it brackets every completion: enter
 * holds a reference across a user callback; leave drops it and returns
 * whether the stream is still open (the last reference frees it).
 */
static inline void ts__io_cb_enter(ts_iostream *s) { s->refs++; }
static inline bool ts__io_cb_leave(ts_iostream *s)
{
    bool open = !(s->flags & TS__F_CLOSED);
    if (s->refs == 1) {
        ts_iostream_unref(s);
        return false;
    }
    s->refs--;
    return open;
}

/* ---- iostream_timeout.c -------------------------------------------------- */

/** Arms, moves or drops the timeout check after the stream's state changed (only called with TS__F_TIMEOUTS). */
void ts__io_timeouts_settle(ts_iostream *s);
/** Disarms and frees the timeouts (destroy, close). */
void ts__io_timeouts_free(ts_iostream *s);
/** The read side made progress (bytes arrived): its clock restarts. */
static inline void ts__io_read_progress(ts_iostream *s)
{
    if (s->flags & TS__F_TIMEOUTS) /* one test of a word the caller has at hand when no timeout is set */
        s->rare->tmo.rd_since = ts_ioloop_time(ts__io_loop(s));
}
/** The write side made progress (bytes went out): its clock restarts. */
static inline void ts__io_write_progress(ts_iostream *s)
{
    if (s->flags & TS__F_TIMEOUTS)
        s->rare->tmo.wr_since = ts_ioloop_time(ts__io_loop(s));
}

/* ---- iostream_read.c ---------------------------------------------------- */

/** Reads from the fd (and buffer) for the pending read, or one chunk when idle. */
void ts__io_read_step(ts_iostream *s);
void ts__io_read_check_buffered(ts_iostream *s);
/**
 * Checks the pending read against the buffer only (no fd I/O). Inline, what
 * needs no look: no read, one already ready, or a delimiter or pattern read
 * with nothing buffered (it never completes on an empty buffer).
 */
static inline void ts__io_read_check(ts_iostream *s)
{
    unsigned kind = s->rd.kind;
    if (kind == TS__RK_NONE || s->rd.ready || (s->rb.len == 0 && (kind == TS__RK_UNTIL || kind == TS__RK_REGEX)))
        return;
    ts__io_read_check_buffered(s);
}
/** Whether a pending read needs fd data (not complete yet). */
static inline bool ts__io_read_wants_fd(const ts_iostream *s) { return s->rd.kind != TS__RK_NONE && !s->rd.ready; }
/** Phase two: decides the pending read against what is buffered (no more data will come). */
void ts__io_read_finalize(ts_iostream *s);
/** Runs a ready read's callback (or one streaming chunk). Returns whether one ran. */
bool ts__io_read_deliver(ts_iostream *s);
/** Frees the read side's private allocations (delimiter, regex cache). */
void ts__io_read_free(ts_iostream *s);

/* ---- iostream_regex.c --------------------------------------------------- */

/** Compiles @p pattern into the stream's cache unless it is already there. 0 or TS_EREGEX / TS_ENOMEM. */
int ts__regex_prepare(ts_iostream *s, const char *pattern);
/**
 * Searches the first @p len bytes of @p data from @p *scan. 1: match, *end
 * set; 0: none yet, *scan advanced to where a match could still start;
 * negative: TS_EREGEX (a limit was hit). @p final: no more data will come.
 */
int ts__regex_search(ts_iostream *s, const char *data, size_t len, size_t *scan, bool final, size_t *end);
void ts__regex_free(ts__regex *re);
/** Heap bytes the cache holds (approximate, for reports). */
size_t ts__regex_heap_bytes(const ts__regex *re);

/* ---- iostream_write.c --------------------------------------------------- */

/** Hands queued bytes to the transport until it would block or the per-event cap. */
void ts__io_flush(ts_iostream *s);
/** Runs the oldest finished write callback (or, once closed, the oldest queued one with the close status). */
bool ts__io_write_deliver(ts_iostream *s);
/** Runs the ts_iostream_shutdown() callback once owed (once closed, with the close status). Returns whether it ran. */
bool ts__io_shutdown_deliver(ts_iostream *s);
/*
 * Whether @p len bytes at @p data lie in the stream's read buffer while one
 * of its read callbacks holds a view into it: an echo of what it was handed.
 * Such a write is queued by reference (ts__writebuf_append_view), and the
 * read buffer keeps that memory still until ts__io_pin_views() ran.
 */
static inline bool ts__io_is_view(const ts_iostream *s, const void *data, size_t len)
{
    uintptr_t p = (uintptr_t)data, b = (uintptr_t)s->rb.base;
    size_t used = s->rb.start + s->rb.len;
    return (s->flags & TS__F_VIEW) && b && len && p >= b && len <= used && p - b <= used - len;
}
/**
 * Called while views are queued, before the read buffer may move or give
 * back their memory: with @p flush they are offered to the transport first;
 * with @p copy what it did not take is copied into the write buffer's own
 * chunks. Returns false if the stream closed (a write failed, or the copy
 * could not be made: TS_ENOMEM).
 */
bool ts__io_pin_views(ts_iostream *s, bool flush, bool copy);
/** Gives @p s a write queue of its own (ts__io_wbuf's slow part). NULL: out of memory. */
ts__writebuf *ts__io_wbuf_new(ts_iostream *s);
/** The stream's write queue, ready to be written to; made on first need. NULL: out of memory. */
static inline ts__writebuf *ts__io_wbuf(ts_iostream *s)
{
    return s->wb != &ts__writebuf_idle ? s->wb : ts__io_wbuf_new(s);
}
/**
 * Gives the queue back once it holds nothing (no bytes, no markers): an idle
 * stream keeps no write state. Only where no caller holds the queue, i.e.
 * when interest is settled, outside runs.
 */
static inline void ts__io_wbuf_settle(ts_iostream *s)
{
    ts__writebuf *wb = s->wb;
    if (wb == &ts__writebuf_idle || !ts__writebuf_unused(wb))
        return;
    s->wb = (ts__writebuf *)&ts__writebuf_idle;
    if (!ts__writebuf_recycle(wb)) /* (unused: it holds no chunks) */
        ts__writebuf_release(wb);
}
/** Whether the write side has work: queued bytes, or a shutdown waiting to happen. */
static inline bool ts__io_write_pending(const ts_iostream *s)
{
    return ts__writebuf_size(s->wb) > 0 || (s->flags & TS__F_SHUT_REQ);
}

#endif /* TSTREAM_IOSTREAM_CORE_H */
