/*
 * Private declarations of the stream layer: the read and write buffers
 * (readbuf.c, writebuf.c), the stream object shared by the core files
 * (iostream.c, iostream_read.c, iostream_write.c, iostream_future.c), and
 * the hooks the transports (iostream_socket.c, iostream_pipe.c,
 * iostream_ssl.c) and the tests use. Nothing here is public API.
 */
#ifndef TSTREAM_IOSTREAM_INT_H
#define TSTREAM_IOSTREAM_INT_H

#include <stdint.h>
#include <sys/uio.h>

#include "internal.h"
#include "tstream/iostream.h"

/* ------------------------------------------------------------------------ */
/* Read buffer: one contiguous block with a start offset (h2o_buffer_t).     */
/* ------------------------------------------------------------------------ */

/**
 * Unconsumed bytes live at base[start .. start+len). The block is allocated
 * on first use and released (base == NULL) by ts__readbuf_release_if_empty(),
 * so an idle stream holds no read memory. Consuming never moves memory: a
 * view handed to a read callback stays valid until the core calls reserve,
 * append, settle or release again.
 *
 * The block may also be lent (@c lent != 0): the loop's shared read block,
 * which the stream reads into while it runs and hands back when it settles
 * (ts__readbuf_settle()), keeping only what is left unconsumed, in a block
 * of its own sized to it. @c lent is the lender's tag for the block (the
 * loop's block index + 1), so giving it back needs no search. Lent memory is
 * never freed or resized here. The tag shares a word with @c cap, which keeps
 * the buffer four words long (every connection has one, idle or not); cap
 * is then limited to TS__RB_CAP_MAX, and growing past it fails as
 * allocating would.
 */
#define TS__RB_TAG_BITS 3
#define TS__RB_TAG_MAX ((1u << TS__RB_TAG_BITS) - 1)
#define TS__RB_CAP_MAX (SIZE_MAX >> TS__RB_TAG_BITS)
typedef struct ts__readbuf {
    char *base;
    size_t lent : TS__RB_TAG_BITS; /* 0: the buffer's own block (or none); else the lender's tag */
    size_t cap : sizeof(size_t) * 8 - TS__RB_TAG_BITS;
    size_t start;
    size_t len;
} ts__readbuf;

/** Where ts__readbuf_data() points while no block is allocated. */
extern const char ts__readbuf_empty[1];

static inline void ts__readbuf_init(ts__readbuf *rb) { *rb = (ts__readbuf){0}; }
/** Frees the block (the buffer is then empty and released). */
void ts__readbuf_free(ts__readbuf *rb);

/** The first unconsumed byte (never NULL: the empty sentinel when released). */
static inline const char *ts__readbuf_data(const ts__readbuf *rb)
{
    return rb->base ? rb->base + rb->start : ts__readbuf_empty;
}
static inline size_t ts__readbuf_len(const ts__readbuf *rb) { return rb->len; }
static inline size_t ts__readbuf_capacity(const ts__readbuf *rb) { return rb->cap; }
/** The tag the block was lent with (ts__readbuf_lend()), 0 if the block is the buffer's own. */
static inline unsigned ts__readbuf_lent(const ts__readbuf *rb) { return (unsigned)rb->lent; }

/**
 * ts__readbuf_reserve() without moving memory: the tail, or NULL if it is
 * shorter than @p want (or absent). An empty buffer restarts at the block's
 * front unless @p keep_front: the consumed bytes there are still referenced
 * (echoes queued by reference) and must not be read over.
 */
static inline char *ts__readbuf_tail(ts__readbuf *rb, size_t want, size_t *avail, bool keep_front)
{
    /* Restarting an empty buffer at 0 is free and keeps the tail long. */
    if (rb->len == 0 && !keep_front)
        rb->start = 0;
    size_t tail = rb->cap - rb->start - rb->len; /* 0 while no block is allocated */
    if (tail == 0 || tail < want)
        return NULL;
    *avail = tail;
    return rb->base + rb->start + rb->len;
}
/** ts__readbuf_reserve() once ts__readbuf_tail() found the tail too short: compacts or grows. */
char *ts__readbuf_make_room(ts__readbuf *rb, size_t want, size_t max_cap, size_t *avail);
/**
 * Makes room for at least @p want more bytes at the tail and returns the
 * tail (*avail receives the room there, >= want). Compacts with memmove when
 * the tail is too short and the consumed prefix makes up the difference;
 * otherwise grows by doubling, but never past max(max_cap, len + want). A
 * lent block is never grown: the bytes move to an own block. NULL on allocation
 * failure (the buffer is unchanged). Invalidates earlier data pointers.
 */
static inline char *ts__readbuf_reserve(ts__readbuf *rb, size_t want, size_t max_cap, size_t *avail)
{
    char *tail = ts__readbuf_tail(rb, want, avail, false);
    return tail ? tail : ts__readbuf_make_room(rb, want, max_cap, avail);
}
/** Marks @p n bytes written at the tail (after reserve) as data. */
static inline void ts__readbuf_commit(ts__readbuf *rb, size_t n) { rb->len += n; }
/** Copies @p n bytes in (reserve + memcpy + commit). 0 or TS_ENOMEM. */
int ts__readbuf_append(ts__readbuf *rb, const void *data, size_t n, size_t max_cap);
/** Drops @p n bytes from the front. Moves no memory: the bytes just consumed may still be on loan to a callback. */
static inline void ts__readbuf_consume(ts__readbuf *rb, size_t n)
{
    rb->start += n;
    rb->len -= n;
}
/** Frees the block if no data is left in it (a lent block is only dropped). */
static inline void ts__readbuf_release_if_empty(ts__readbuf *rb)
{
    if (rb->len == 0 && rb->base)
        ts__readbuf_free(rb);
}
/** Size class of a block kept for @p len bytes: a power of two, at least 64. */
size_t ts__readbuf_class(size_t len);
/** ts__readbuf_lend() for a buffer that holds a block: its live bytes are copied. */
void ts__readbuf_lend_move(ts__readbuf *rb, char *block, size_t cap, unsigned tag);
/**
 * Moves the buffer onto @p block (@p cap bytes, which must hold the live
 * bytes), lent under @p tag (1 .. TS__RB_TAG_MAX): the live bytes are copied
 * there and the buffer's own block is freed. Invalidates earlier data
 * pointers.
 */
static inline void ts__readbuf_lend(ts__readbuf *rb, char *block, size_t cap, unsigned tag)
{
    if (rb->base) {
        ts__readbuf_lend_move(rb, block, cap, tag);
        return;
    }
    rb->base = block;
    rb->cap = cap;
    rb->lent = tag;
    rb->start = 0; /* (no block: nothing is live) */
}
/** Added to ts__readbuf_settle()'s result when the live bytes were lost. */
#define TS__RB_LOST (1u << TS__RB_TAG_BITS)
/** ts__readbuf_settle() for a buffer with live bytes or an own block. */
unsigned ts__readbuf_settle_move(ts__readbuf *rb);
/**
 * Gives a lent block back: the live bytes move to a block of their own of
 * ts__readbuf_class(len) bytes (none when empty). An own block much larger
 * than its live bytes (past 4 KiB and 4 times their class) shrinks to
 * their class; an empty one is freed. Returns the tag of the lent block let
 * go (the caller returns it to its owner), 0 if none was, plus TS__RB_LOST
 * if the live bytes could not be moved (out of memory: they are dropped).
 * Invalidates earlier data pointers.
 */
static inline unsigned ts__readbuf_settle(ts__readbuf *rb)
{
    unsigned tag = (unsigned)rb->lent;
    if (rb->len == 0 && tag) { /* the common end of a run: every byte was consumed */
        ts__readbuf_init(rb);
        return tag;
    }
    return ts__readbuf_settle_move(rb);
}

/* ------------------------------------------------------------------------ */
/* Write buffer: FIFO of chunks plus write markers, indexed by byte count.   */
/* ------------------------------------------------------------------------ */

/** Size of the copy chunks small writes are coalesced into. */
#define TS__WB_CHUNK 16384u

typedef struct ts__wchunk ts__wchunk;

/** A write's completion: it is done when done_index reaches @c end. */
typedef struct ts__wmark {
    uint64_t end;
    ts_iostream_write_cb cb;
    void *arg;
} ts__wmark;

/** Caller memory queued without a copy, and how it goes back: free_fn(data), or release(data, len, release_arg). */
typedef struct ts__wowner {
    const void *data;
    size_t len;
    void (*free_fn)(void *);
    ts_iostream_release_cb release;
    void *release_arg;
} ts__wowner;
/** Gives @p own's memory back now (a no-op if it has neither function). */
static inline void ts__wowner_release(const ts__wowner *own)
{
    if (own->free_fn)
        own->free_fn((void *)own->data);
    else if (own->release)
        own->release(own->data, own->len, own->release_arg);
}

/* The chunks, private to writebuf.c but for the inline functions below. */
/* A file region: the chunk's bytes are the file's [off, off + len). */
typedef struct ts__wfile {
    int fd;             /* the chunk's own descriptor, closed with it */
    uint64_t off;       /* file offset of the chunk's first byte */
    ts__wchunk *stage;  /* a copy chunk holding bytes read for the transport (NULL: none yet) */
    size_t stage_pos;   /* chunk offset of stage's first byte */
} ts__wfile;

struct ts__wchunk {
    ts__wchunk *next;
    char *data;   /* file chunks: NULL */
    size_t len;
    size_t cap;   /* copy chunks: room for appends; owned and file chunks: 0 */
    uint64_t end; /* total_index at the chunk's last byte */
    bool is_file;
    bool is_view; /* references the read buffer: nothing to give back */
    union {
        ts__wowner own; /* owned chunks: how the caller's memory goes back */
        ts__wfile file;
    } u;
    /* copy chunks: the bytes follow */
};

typedef struct ts__writebuf {
    ts__wchunk *head, *tail;
    size_t head_off;      /* bytes of head already written */
    size_t size;          /* bytes queued and not yet written */
    uint64_t total_index; /* bytes ever queued */
    uint64_t done_index;  /* bytes ever written */
    ts__wmark *marks;     /* ring of pending markers */
    uint32_t mcap, mhead, mcount;
    uint32_t nviews;      /* view chunks queued (ts__writebuf_append_view) */
    uint32_t run_written; /* bytes its stream wrote in this run or API call (at most twice TS__WRITE_EVENT_CAP) */
    ts__wpools *pool;     /* where copy chunks and chunk headers come from and go back to (NULL: the allocator) */
    /*
     * The header of a chunk without bytes of its own (a view, owned memory,
     * a file region) queued first on an empty queue: the common queue, one
     * such chunk (the echo of a read, one zero-copy reply), takes no header
     * from the pool and gives none back. It is free whenever the queue is
     * empty; a queue is never copied, so it may point at it.
     */
    ts__wchunk first;
} ts__writebuf;

void ts__writebuf_init(ts__writebuf *wb);
/*
 * A stream holds a queue only while something is queued on it: otherwise
 * its pointer is &ts__writebuf_idle, a shared empty queue that is read but
 * never written (it is const). ts__writebuf_new() makes a real one (from
 * @p pool's spare queues when it has one; NULL: out of memory) and
 * ts__writebuf_release() frees an unused one back there.
 */
extern const ts__writebuf ts__writebuf_idle;
/** ts__writebuf_new() when @p pool has no spare queue: a new one from the allocator. */
ts__writebuf *ts__writebuf_alloc(ts__wpools *pool);
/* Inline: a stream that writes between idle spells takes a queue once per reply. */
static inline ts__writebuf *ts__writebuf_new(ts__wpools *pool)
{
    ts__writebuf *wb = pool ? ts__pool_get(&pool->queues) : NULL;
    if (!wb)
        return ts__writebuf_alloc(pool);
    /*
     * A spare queue is empty (no chunks, no markers), came from this pool
     * (ts__writebuf_recycle) and keeps its marker ring. Its indexes restart:
     * a queue cleared by a close counted bytes that were never written, so
     * they no longer agree.
     */
    wb->head = NULL;
    wb->total_index = wb->done_index = 0;
    wb->run_written = 0;
    return wb;
}
/** Drops what @p wb still holds and gives it back to its pool (or frees it). No-op for ts__writebuf_idle. */
void ts__writebuf_release(ts__writebuf *wb);
/**
 * Puts @p wb, which holds no chunks, in its pool's spare queues if there is
 * room (markers still owed are dropped: their stream is done with it); it
 * keeps its marker ring. Returns whether it went there. Inline: an idle
 * stream gives its queue back once per reply.
 */
static inline bool ts__writebuf_recycle(ts__writebuf *wb)
{
    ts__pool *queues = wb->pool ? &wb->pool->queues : NULL;
    if (!queues || queues->n >= queues->max)
        return false;
    wb->mcount = wb->mhead = 0;
    ts__pool_put(queues, wb);
    return true;
}
/** Whether @p wb holds nothing at all: no bytes, no markers (so it may be released). */
static inline bool ts__writebuf_unused(const ts__writebuf *wb) { return wb->size == 0 && wb->mcount == 0; }
/** Frees every chunk (owned data through its free function, file regions' fds closed) and the markers, without running any. */
void ts__writebuf_free(ts__writebuf *wb);
static inline size_t ts__writebuf_size(const ts__writebuf *wb) { return wb->size; }
/** Queues a copy of @p data (coalesced into the tail chunk when it fits). 0 or TS_ENOMEM (nothing queued). */
int ts__writebuf_append(ts__writebuf *wb, const void *data, size_t len);
/**
 * Queues @p len bytes at @p data without copying; @p own's memory goes back
 * (ts__wowner_release) once they have been written or the buffer is
 * cleared. @p data may point inside it (the part not written inline). @p len
 * must be > 0. 0 or TS_ENOMEM (nothing queued, nothing released).
 */
int ts__writebuf_append_owned(ts__writebuf *wb, const void *data, size_t len, const ts__wowner *own);

/** Counts @p len more bytes queued at the end of tail chunk @p t (whose room or memory holds them). */
static inline void ts__writebuf_grow_tail(ts__writebuf *wb, ts__wchunk *t, size_t len)
{
    t->len += len;
    t->end += len;
    wb->total_index += len;
    wb->size += len;
}
/**
 * Queues @p len bytes at @p data as part of the tail chunk if it is a view
 * that they continue (an echo of consecutive lines: one iovec entry), and
 * says whether it did. Never allocates; false on an empty queue (also the
 * idle one, which it does not write).
 */
static inline bool ts__writebuf_extend_view(ts__writebuf *wb, const void *data, size_t len)
{
    ts__wchunk *t = wb->tail;
    if (!t || !t->is_view || t->data + t->len != (const char *)data)
        return false;
    ts__writebuf_grow_tail(wb, t, len);
    return true;
}
/** Queues a view as a chunk of its own (ts__writebuf_append_view's out-of-line part). */
int ts__writebuf_append_view_chunk(ts__writebuf *wb, const void *data, size_t len);
/**
 * Queues @p len (> 0) bytes at @p data by reference, with nothing to give
 * back: bytes of the stream's own read buffer (a read callback's view),
 * which stay put only until the read buffer next moves its memory, so the
 * core calls ts__writebuf_own_views() before that. A view that continues
 * the tail view extends it (ts__writebuf_extend_view). 0 or TS_ENOMEM
 * (nothing queued).
 */
static inline int ts__writebuf_append_view(ts__writebuf *wb, const void *data, size_t len)
{
    if (!wb->tail) {
        /* An empty queue (the echo of a read): an empty view in its own header, grown below. */
        ts__wchunk *t = &wb->first;
        t->next = NULL;
        t->data = (char *)data;
        t->len = t->cap = 0;
        t->end = wb->total_index;
        t->is_file = false;
        t->is_view = true;
        wb->head = wb->tail = t;
        wb->nviews = 1;
        ts__writebuf_grow_tail(wb, t, len);
        return 0;
    }
    if (ts__writebuf_extend_view(wb, data, len))
        return 0;
    return ts__writebuf_append_view_chunk(wb, data, len);
}
/** Whether view chunks are queued. */
static inline bool ts__writebuf_has_views(const ts__writebuf *wb) { return wb->nviews != 0; }
/**
 * Copies the unwritten bytes of every queued view into chunks of the
 * buffer's own, in place (order, indexes and markers unchanged), so the
 * memory the views pointed into may change. 0, or TS_ENOMEM (the views not
 * copied stay queued; the caller must not let their memory change).
 */
int ts__writebuf_own_views(ts__writebuf *wb);
/**
 * Queues the region [@p off, @p off + @p len) of the file open on @p fd,
 * which the buffer then owns: it is closed when the region has been written
 * or the buffer is cleared. @p len must be > 0. 0 or TS_ENOMEM (nothing
 * queued, @p fd left open).
 */
int ts__writebuf_append_file(ts__writebuf *wb, int fd, uint64_t off, size_t len);
/**
 * Whether the head chunk is a file region with nothing staged at its next
 * byte; if so, *fd, *off (the file offset of that byte) and *left (the
 * region's bytes not yet written) are set. The core then sends from the
 * file itself (sendfile, then ts__writebuf_advance) or stages bytes.
 */
bool ts__writebuf_head_file(const ts__writebuf *wb, int *fd, uint64_t *off, size_t *left);
/**
 * Where to read the head file region's next bytes (at most *room, set here:
 * up to TS__WB_CHUNK) so ts__writebuf_iov() hands them out like copied
 * bytes; they stay until written, so a transport that must retry a write
 * with the same bytes (TLS) gets them. Only after ts__writebuf_head_file()
 * said true. NULL when out of memory.
 */
char *ts__writebuf_stage_begin(ts__writebuf *wb, size_t *room);
/** Records that @p n (> 0, <= room) bytes were read into the staging block. */
void ts__writebuf_stage_commit(ts__writebuf *wb, size_t n);
/**
 * Counts @p n bytes as written without queueing them (they went out inline
 * before being buffered), keeping the indexes consistent. Only valid while
 * the buffer is empty.
 */
static inline void ts__writebuf_skip(ts__writebuf *wb, size_t n)
{
    wb->total_index += n;
    wb->done_index += n;
}
/**
 * Counts @p n bytes as queued but never to be written (the stream closed
 * under them), so a marker added next can never be reached.
 */
void ts__writebuf_lose(ts__writebuf *wb, size_t n);
/** Makes room for one more marker, so the next add_mark cannot fail. 0 or TS_ENOMEM. */
int ts__writebuf_reserve_mark(ts__writebuf *wb);
/** Adds a marker at the current end (total_index). 0 or TS_ENOMEM. */
int ts__writebuf_add_mark(ts__writebuf *wb, ts_iostream_write_cb cb, void *arg);
/**
 * Fills up to @p max_iov entries, at most @p max_bytes in all, from the head,
 * stopping at a file region's bytes that are not staged. Returns the count.
 */
int ts__writebuf_iov(const ts__writebuf *wb, struct iovec *iov, int max_iov, size_t max_bytes);
/**
 * ts__writebuf_iov() with the common queue, one chunk in memory (a reply,
 * the echo of one read), answered inline. Not for an empty buffer.
 */
static inline int ts__writebuf_iov_inline(const ts__writebuf *wb, struct iovec *iov, int max_iov, size_t max_bytes)
{
    const ts__wchunk *h = wb->head;
    if (h == wb->tail && !h->is_file) {
        size_t n = h->len - wb->head_off;
        iov[0].iov_base = h->data + wb->head_off;
        iov[0].iov_len = n < max_bytes ? n : max_bytes;
        return 1;
    }
    return ts__writebuf_iov(wb, iov, max_iov, max_bytes);
}
/** Whether the head chunk is a file region (only then may ts__writebuf_head_file() say yes). Not for an empty buffer. */
static inline bool ts__writebuf_head_is_file(const ts__writebuf *wb) { return wb->head->is_file; }
/** ts__writebuf_advance() for a write that leaves bytes queued, or a queue of several chunks. */
void ts__writebuf_advance_chunks(ts__writebuf *wb, size_t n);
/** Frees chunk @p c, which has left @p wb (giving back what it references). */
void ts__writebuf_chunk_free(ts__writebuf *wb, ts__wchunk *c);
/**
 * Marks @p n bytes (<= size) written: frees finished chunks, advances
 * done_index. Inline for the common end of a flush, a write that took the
 * whole queue of one chunk: the echo of a read (a view in the queue's own
 * header: nothing to give back) or a reply copied into a pool chunk.
 */
static inline void ts__writebuf_advance(ts__writebuf *wb, size_t n)
{
    ts__wchunk *h = wb->head;
    if (n != wb->size || h != wb->tail || !h) {
        ts__writebuf_advance_chunks(wb, n);
        return;
    }
    wb->head = wb->tail = NULL;
    wb->head_off = 0;
    wb->size = 0;
    wb->done_index += n;
    if (h == &wb->first && h->is_view)
        wb->nviews = 0;
    else if (h->cap == TS__WB_CHUNK)
        ts__pool_put(wb->pool ? &wb->pool->chunks : NULL, h);
    else
        ts__writebuf_chunk_free(wb, h);
}
/** Pops the oldest marker if done_index reached it (or any oldest one with @p force). */
bool ts__writebuf_pop_mark(ts__writebuf *wb, bool force, ts__wmark *out);
/** Whether a marker is pending. */
static inline bool ts__writebuf_has_marks(const ts__writebuf *wb) { return wb->mcount != 0; }
/** Whether the oldest marker is done (inline: checked after every write). */
static inline bool ts__writebuf_mark_ready(const ts__writebuf *wb)
{
    return wb->mcount && wb->marks[wb->mhead].end <= wb->done_index;
}
/** Drops all queued bytes (running owned free functions); markers stay. */
void ts__writebuf_clear(ts__writebuf *wb);
/** Number of chunks queued (for tests). */
size_t ts__writebuf_nchunks(const ts__writebuf *wb);

/* ------------------------------------------------------------------------ */
/* Hooks for transports and tests                                            */
/* ------------------------------------------------------------------------ */

/**
 * Allocates a stream whose transport lives in the same block, right after
 * the stream (@p transport_size bytes, zeroed, max-aligned). The transport is
 * then reached with ts__iostream_transport(); ops->free must not free it
 * (it may release what the transport points to). NULL on allocation failure.
 * Used by the socket and pipe transports so an idle stream is one allocation.
 */
ts_iostream *ts__iostream_new_inline(ts_ioloop *loop, const ts_stream_ops *ops, size_t transport_size,
                                     const ts_iostream_options *opts);

/**
 * ts_iostream_new_socket() for an fd known to be non-blocking already (from
 * accept4() with SOCK_NONBLOCK): no fcntl() to make sure.
 */
ts_iostream *ts__iostream_new_socket_nonblocking(ts_ioloop *loop, int fd, const ts_iostream_options *opts);

/*
 * The socket calls behind the connect / address / option ops, on a socket
 * fd; shared by the socket and TLS transports (iostream_socket.c).
 */
/** connect(): 0, TS_EAGAIN (under way), TS_ENOTSUP (@p fd is not a socket) or -errno. */
int ts__sock_connect(int fd, const struct sockaddr *addr, socklen_t addrlen);
/** SO_ERROR as a negative code (0: none, also where the option does not exist). */
int ts__sock_connect_result(int fd);
/** getpeername(): 0 or -errno. */
int ts__sock_peer_address(int fd, struct sockaddr *addr, socklen_t *len);
/** getsockname(): 0 or -errno. */
int ts__sock_local_address(int fd, struct sockaddr *addr, socklen_t *len);
/** TCP_NODELAY on a TCP socket, 0 for any other socket; -errno on failure. */
int ts__sock_set_nodelay(int fd, bool on);
/**
 * sendfile() of up to @p len bytes at @p off of @p in_fd to @p out_fd (a
 * socket or a pipe), the send_file op of the built-in transports: bytes
 * sent, 0 at the file's end, TS_EAGAIN, TS_ENOTSUP (sendfile cannot do
 * this pair of fds) or -errno. SIGPIPE is never raised.
 */
ssize_t ts__fd_send_file(int out_fd, int in_fd, uint64_t off, size_t len);

/** The transport pointer the stream was created with (or its inline transport). */
void *ts__iostream_transport(ts_iostream *s);

/** The stream's close callback and its argument (NULL if none); for start_tls to carry it over. */
void ts__iostream_get_close_callback(ts_iostream *s, ts_iostream_close_cb *cb, void **arg);

/** Fills *out (out->size must be set) with the buffer limits in effect; for start_tls. */
void ts__iostream_get_options(ts_iostream *s, ts_iostream_options *out);

/** The stream's ops. */
const ts_stream_ops *ts__iostream_ops(ts_iostream *s);

/**
 * Takes the fd away from the stream (Tornado's start_tls precondition).
 * Fails with TS_EBUSY if a read, write or connect is pending or any data is
 * buffered in either direction (data still in the kernel is fine), and with
 * TS_ECLOSED if the stream is closed. On success the fd is removed from the
 * loop and returned in *fd_out; the stream is closed WITHOUT closing the fd
 * (ops->close_fd is not called; ops->free still is, later), its close
 * callback does not run, and the caller keeps its reference to release.
 */
int ts__iostream_detach_fd(ts_iostream *s, int *fd_out);

/**
 * Runs @p cb(s, status, arg) once the transport handshake has completed
 * (status 0) or failed (its error). Always deferred through the loop, even
 * when the handshake is already done, the transport has none (status 0), or
 * the stream is already closed (its error, or TS_ECLOSED). Returns 0, or
 * TS_EBUSY if already waiting or TS_ENOMEM (then @p cb never runs).
 */
int ts__iostream_wait_for_handshake(ts_iostream *s, ts_iostream_connect_cb cb, void *arg);

/** Bytes the delimiter / regex searches of every stream on @p s's loop have examined (a test statistic; 0 once orphaned). */
uint64_t ts__iostream_search_bytes(const ts_iostream *s);

/** sizeof(struct ts_iostream), for memory reports. */
size_t ts__iostream_struct_size(void);
/** Where a stream's transport starts in its block (an inline transport's block is this plus its size). */
size_t ts__iostream_transport_offset(void);

/** Heap bytes the stream holds beyond its struct (buffers, regex cache, queued writes): test/report stat. */
size_t ts__iostream_heap_bytes(const ts_iostream *s);

#endif /* TSTREAM_IOSTREAM_INT_H */
