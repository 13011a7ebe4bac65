/*
 * The write buffer: a FIFO of chunks plus a ring of write markers, both
 * indexed by the total number of bytes ever queued (Tornado's _StreamBuffer
 * and _write_futures, libuv's write queue).
 *
 * Small copies are coalesced into TS__WB_CHUNK-byte chunks so many small
 * writes cost one writev entry per chunk, not one each; owned (zero-copy)
 * data is referenced, and so is a region of a file (its own descriptor,
 * closed with the chunk). A view (bytes of the stream's own read buffer
 * that a read callback echoes) is referenced too, until the core asks for it
 * to be copied (ts__writebuf_own_views) because that memory is about to
 * change. Each chunk records the index where it ends, each
 * marker the index where its write ends; a marker is done once done_index
 * reaches it. This file does no I/O and runs no callbacks: the core asks it
 * for an iovec, reports how much went out, and pops the finished markers.
 * A file region enters the iovec only through its staging block, which the
 * core fills (pread) for transports that cannot sendfile.
 */
#include <string.h>
#include <unistd.h>

#include "iostream_int.h"

void ts__writebuf_init(ts__writebuf *wb) { memset(wb, 0, sizeof(*wb)); }

const ts__writebuf ts__writebuf_idle;

ts__writebuf *ts__writebuf_alloc(ts__wpools *pool)
{
    ts__writebuf *wb = ts__malloc(sizeof(*wb));
    if (wb) {
        ts__writebuf_init(wb);
        wb->pool = pool;
    }
    return wb;
}

void ts__writebuf_release(ts__writebuf *wb)
{
    if (wb == &ts__writebuf_idle)
        return;
    if (wb->head)
        ts__writebuf_clear(wb);
    if (ts__writebuf_recycle(wb))
        return;
    ts__free(wb->marks);
    ts__free(wb);
}

void ts__writebuf_pool_drain(ts__pool *queues)
{
    ts__writebuf *wb;
    while ((wb = ts__pool_get(queues))) {
        ts__free(wb->marks);
        ts__free(wb);
    }
}

static ts__pool *chunk_pool(const ts__writebuf *wb) { return wb->pool ? &wb->pool->chunks : NULL; }
static ts__pool *head_pool(const ts__writebuf *wb) { return wb->pool ? &wb->pool->heads : NULL; }

/*
 * A chunk without bytes of its own (cap 0): owned memory, a view or a file
 * region. The one an empty queue starts with is the queue's own.
 */
static ts__wchunk *new_header(ts__writebuf *wb)
{
    if (!wb->head)
        return &wb->first;
    ts__wchunk *c = ts__pool_get(head_pool(wb));
    return c ? c : ts__malloc(sizeof(*c));
}

void ts__writebuf_chunk_free(ts__writebuf *wb, ts__wchunk *c)
{
    if (c->cap == TS__WB_CHUNK) { /* a standard copy chunk: kept for the next writes */
        ts__pool_put(chunk_pool(wb), c);
        return;
    }
    if (c->cap) { /* a copy chunk sized to one large write */
        ts__free(c);
        return;
    }
    if (c->is_file) {
        close(c->u.file.fd);
        if (c->u.file.stage)
            ts__writebuf_chunk_free(wb, c->u.file.stage);
    } else if (c->is_view) {
        wb->nviews--;
    } else {
        ts__wowner_release(&c->u.own);
    }
    if (c != &wb->first)
        ts__pool_put(head_pool(wb), c);
}

static void push_chunk(ts__writebuf *wb, ts__wchunk *c)
{
    c->next = NULL;
    if (wb->tail)
        wb->tail->next = c;
    else
        wb->head = c;
    wb->tail = c;
}

/* Queues a referenced chunk (owned memory or a file region) of @p len bytes. */
static void push_sized(ts__writebuf *wb, ts__wchunk *c, size_t len)
{
    c->len = len;
    c->cap = 0;
    wb->total_index += len;
    wb->size += len;
    c->end = wb->total_index;
    push_chunk(wb, c);
}

void ts__writebuf_clear(ts__writebuf *wb)
{
    if (wb == &ts__writebuf_idle)
        return; /* nothing queued, and it is never written */
    ts__wchunk *c = wb->head;
    wb->head = wb->tail = NULL;
    /* What was queued but not written is dropped: count it as gone so indexes stay monotonic. */
    wb->size = 0;
    wb->head_off = 0;
    while (c) {
        ts__wchunk *next = c->next;
        ts__writebuf_chunk_free(wb, c);
        c = next;
    }
}

void ts__writebuf_free(ts__writebuf *wb)
{
    ts__writebuf_clear(wb);
    ts__free(wb->marks);
    ts__writebuf_init(wb);
}

static ts__wchunk *new_copy_chunk(ts__writebuf *wb, size_t cap)
{
    if (cap > SIZE_MAX - sizeof(ts__wchunk))
        return NULL;
    ts__wchunk *c = cap == TS__WB_CHUNK ? ts__pool_get(chunk_pool(wb)) : NULL;
    if (!c)
        c = ts__malloc(sizeof(ts__wchunk) + cap);
    if (!c)
        return NULL;
    c->data = (char *)(c + 1);
    c->len = 0;
    c->cap = cap;
    c->is_file = c->is_view = false;
    c->u.own = (ts__wowner){0};
    return c;
}

/* The append that spills into a new chunk (kept out of line so the common case stays small). */
__attribute__((noinline)) static int append_spill(ts__writebuf *wb, const void *data, size_t len)
{
    ts__wchunk *t = wb->tail;
    size_t room = (t && t->cap) ? t->cap - t->len : 0;
    size_t first = TS__MIN(room, len);
    size_t rest = len - first;
    ts__wchunk *c = NULL;
    if (rest) {
        /* Allocate before touching the tail so a failure queues nothing. */
        c = new_copy_chunk(wb, TS__MAX(rest, (size_t)TS__WB_CHUNK));
        if (!c)
            return TS_ENOMEM;
    }
    if (first) {
        memcpy(t->data + t->len, data, first);
        t->len += first;
        t->end += first;
    }
    wb->total_index += len;
    wb->size += len;
    if (c) {
        memcpy(c->data, (const char *)data + first, rest);
        c->len = rest;
        c->end = wb->total_index;
        push_chunk(wb, c);
    }
    return 0;
}

int ts__writebuf_append(ts__writebuf *wb, const void *data, size_t len)
{
    if (len == 0)
        return 0;
    ts__wchunk *t = wb->tail;
    /* Most small writes fit in the tail copy chunk (owned chunks have cap 0 and never take copies). */
    if (t && t->cap && t->cap - t->len >= len) {
        memcpy(t->data + t->len, data, len);
        ts__writebuf_grow_tail(wb, t, len);
        return 0;
    }
    return append_spill(wb, data, len);
}

int ts__writebuf_append_owned(ts__writebuf *wb, const void *data, size_t len, const ts__wowner *own)
{
    ts__wchunk *c = new_header(wb);
    if (!c)
        return TS_ENOMEM;
    c->data = (char *)data;
    c->is_file = c->is_view = false;
    c->u.own = *own;
    push_sized(wb, c, len);
    return 0;
}

int ts__writebuf_append_view_chunk(ts__writebuf *wb, const void *data, size_t len)
{
    ts__wchunk *c = new_header(wb);
    if (!c)
        return TS_ENOMEM;
    c->data = (char *)data;
    c->is_file = false;
    c->is_view = true; /* (u unused: nothing to give back) */
    push_sized(wb, c, len);
    wb->nviews++;
    return 0;
}

int ts__writebuf_own_views(ts__writebuf *wb)
{
    ts__wchunk **link = &wb->head;
    for (ts__wchunk *c = wb->head; c && wb->nviews; c = *link) {
        if (!c->is_view) {
            link = &c->next;
            continue;
        }
        size_t off = c == wb->head ? wb->head_off : 0;
        size_t n = c->len - off;
        ts__wchunk *copy = new_copy_chunk(wb, TS__MAX(n, (size_t)TS__WB_CHUNK));
        if (!copy)
            return TS_ENOMEM;
        memcpy(copy->data, c->data + off, n);
        copy->len = n;
        copy->end = c->end;
        copy->next = c->next;
        *link = copy;
        if (wb->tail == c)
            wb->tail = copy;
        if (off)
            wb->head_off = 0;
        ts__writebuf_chunk_free(wb, c);
        link = &copy->next;
    }
    return 0;
}

int ts__writebuf_append_file(ts__writebuf *wb, int fd, uint64_t off, size_t len)
{
    ts__wchunk *c = new_header(wb);
    if (!c)
        return TS_ENOMEM;
    c->data = NULL;
    c->is_view = false;
    c->is_file = true;
    c->u.file = (ts__wfile){.fd = fd, .off = off};
    push_sized(wb, c, len);
    return 0;
}

/* The staged bytes of file chunk @p c from chunk offset @p off (0 when none are staged there). */
static size_t staged_at(const ts__wchunk *c, size_t off, const char **p)
{
    const ts__wfile *f = &c->u.file;
    if (!f->stage || off < f->stage_pos || off >= f->stage_pos + f->stage->len)
        return 0;
    *p = f->stage->data + (off - f->stage_pos);
    return f->stage_pos + f->stage->len - off;
}

bool ts__writebuf_head_file(const ts__writebuf *wb, int *fd, uint64_t *off, size_t *left)
{
    const ts__wchunk *c = wb->head;
    const char *p;
    if (!c || !c->is_file || staged_at(c, wb->head_off, &p))
        return false;
    *fd = c->u.file.fd;
    *off = c->u.file.off + wb->head_off;
    *left = c->len - wb->head_off;
    return true;
}

char *ts__writebuf_stage_begin(ts__writebuf *wb, size_t *room)
{
    ts__wfile *f = &wb->head->u.file;
    if (!f->stage && !(f->stage = new_copy_chunk(wb, TS__WB_CHUNK)))
        return NULL;
    f->stage->len = 0;
    f->stage_pos = wb->head_off;
    *room = TS__MIN((size_t)TS__WB_CHUNK, wb->head->len - wb->head_off);
    return f->stage->data;
}

void ts__writebuf_stage_commit(ts__writebuf *wb, size_t n) { wb->head->u.file.stage->len = n; }

void ts__writebuf_lose(ts__writebuf *wb, size_t n) { wb->total_index += n; }

int ts__writebuf_reserve_mark(ts__writebuf *wb)
{
    if (wb->mcount == wb->mcap) {
        uint32_t ncap = wb->mcap ? wb->mcap * 2 : 4;
        ts__wmark *m = ts__malloc(ncap * sizeof(*m));
        if (!m)
            return TS_ENOMEM;
        /* Unroll the ring into the new array so it starts at 0. */
        for (uint32_t i = 0; i < wb->mcount; i++)
            m[i] = wb->marks[(wb->mhead + i) % wb->mcap];
        ts__free(wb->marks);
        wb->marks = m;
        wb->mcap = ncap;
        wb->mhead = 0;
    }
    return 0;
}

int ts__writebuf_add_mark(ts__writebuf *wb, ts_iostream_write_cb cb, void *arg)
{
    int r = ts__writebuf_reserve_mark(wb);
    if (r)
        return r;
    ts__wmark *m = &wb->marks[(wb->mhead + wb->mcount) % wb->mcap];
    m->end = wb->total_index;
    m->cb = cb;
    m->arg = arg;
    wb->mcount++;
    return 0;
}

int ts__writebuf_iov(const ts__writebuf *wb, struct iovec *iov, int max_iov, size_t max_bytes)
{
    int n = 0;
    size_t off = wb->head_off;
    for (ts__wchunk *c = wb->head; c && n < max_iov && max_bytes > 0; c = c->next) {
        const char *p = NULL;
        size_t avail = c->len - off;
        if (!c->is_file)
            p = c->data + off;
        else
            avail = staged_at(c, off, &p); /* only the staged part; 0: the core sends it (sendfile) or stages it */
        if (avail == 0)
            break;
        size_t l = TS__MIN(avail, max_bytes);
        iov[n].iov_base = (void *)p;
        iov[n].iov_len = l;
        n++;
        max_bytes -= l;
        if (l < c->len - off)
            break; /* the rest of this chunk is not staged yet (or the byte cap is reached) */
        off = 0;
    }
    return n;
}

void ts__writebuf_advance_chunks(ts__writebuf *wb, size_t n)
{
    wb->size -= n;
    wb->done_index += n;
    while (n > 0) {
        ts__wchunk *c = wb->head;
        size_t left = c->len - wb->head_off;
        if (n < left) {
            wb->head_off += n;
            return;
        }
        n -= left;
        wb->head = c->next;
        if (!wb->head)
            wb->tail = NULL;
        wb->head_off = 0;
        ts__writebuf_chunk_free(wb, c);
    }
}

bool ts__writebuf_pop_mark(ts__writebuf *wb, bool force, ts__wmark *out)
{
    if (!wb->mcount || (!force && !ts__writebuf_mark_ready(wb)))
        return false;
    *out = wb->marks[wb->mhead];
    wb->mhead = (wb->mhead + 1) % wb->mcap;
    wb->mcount--;
    if (wb->mcount == 0) {
        wb->mhead = 0;
        /* A burst may have grown the ring; don't let an idle stream keep it. */
        if (wb->mcap > 4) {
            ts__free(wb->marks);
            wb->marks = NULL;
            wb->mcap = 0;
        }
    }
    return true;
}

size_t ts__writebuf_nchunks(const ts__writebuf *wb)
{
    size_t n = 0;
    for (const ts__wchunk *c = wb->head; c; c = c->next)
        n++;
    return n;
}
