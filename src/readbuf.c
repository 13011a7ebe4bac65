/*
 * The read buffer: one contiguous block, a start offset, doubling growth and
 * memmove compaction (h2o's h2o_buffer_t, Redis's query buffer).
 *
 * This file knows nothing of streams, fds or searching: it only keeps bytes
 * in order and decides when to move or release memory. The stream core reads
 * straight into the tail that ts__readbuf_reserve() hands out.
 */
#include <string.h>

#include "iostream_int.h"

/* Shared by every released buffer so data pointers are never NULL. */
const char ts__readbuf_empty[1] = "";

_Static_assert(sizeof(ts__readbuf) == 4 * sizeof(size_t), "the lent tag shares the cap word");

void ts__readbuf_free(ts__readbuf *rb)
{
    if (!rb->lent)
        ts__free(rb->base);
    ts__readbuf_init(rb);
}

size_t ts__readbuf_class(size_t len)
{
    size_t c = 64;
    while (c < len && c <= SIZE_MAX / 2)
        c *= 2;
    return c < len ? len : c;
}

void ts__readbuf_lend_move(ts__readbuf *rb, char *block, size_t cap, unsigned tag)
{
    if (rb->len)
        memcpy(block, rb->base + rb->start, rb->len);
    if (!rb->lent)
        ts__free(rb->base);
    rb->base = block;
    rb->cap = cap;
    rb->start = 0;
    rb->lent = tag;
}

/* Moves the live bytes to a new own block of @p cap bytes. */
static bool move_to_own(ts__readbuf *rb, size_t cap)
{
    char *p = cap <= TS__RB_CAP_MAX ? ts__malloc(cap) : NULL;
    if (!p)
        return false;
    memcpy(p, rb->base + rb->start, rb->len);
    if (!rb->lent)
        ts__free(rb->base);
    rb->base = p;
    rb->cap = cap;
    rb->start = 0;
    rb->lent = 0;
    return true;
}

unsigned ts__readbuf_settle_move(ts__readbuf *rb)
{
    unsigned tag = (unsigned)rb->lent;
    if (rb->len == 0) {
        if (rb->base)
            ts__readbuf_free(rb);
        return tag;
    }
    size_t want = ts__readbuf_class(rb->len);
    if (tag) {
        if (!move_to_own(rb, want)) {
            ts__readbuf_init(rb);
            return tag | TS__RB_LOST;
        }
        return tag;
    }
    if (rb->cap > 4096 && rb->cap / 4 > want)
        (void)move_to_own(rb, want); /* failing to shrink loses nothing */
    return 0;
}

/* Moves the live bytes to the front of the block. */
static void compact(ts__readbuf *rb)
{
    if (rb->start == 0)
        return;
    if (rb->len)
        memmove(rb->base, rb->base + rb->start, rb->len);
    rb->start = 0;
}

char *ts__readbuf_make_room(ts__readbuf *rb, size_t want, size_t max_cap, size_t *avail)
{
    if (want == 0)
        want = 1;
    if (!rb->base) {
        char *p = want <= TS__RB_CAP_MAX ? ts__malloc(want) : NULL;
        if (!p)
            return NULL;
        rb->base = p;
        rb->cap = want;
        rb->start = 0;
        rb->len = 0;
    }
    if (rb->len == 0)
        rb->start = 0;
    size_t tail = rb->cap - rb->start - rb->len;
    /*
     * Live bytes move to the front only when the tail is too short and the
     * consumed prefix makes up for it: a stream keeps reading into the rest
     * of its block first, so a block is compacted once per filling, and the
     * bytes moved are the unfinished message left at its end (the reads
     * waiting here want more bytes, so what is live is one partial
     * message). A prefix too short to help is left for the growth below,
     * which moves the bytes anyway.
     */
    if (tail < want && rb->start > 0 && tail + rb->start >= want) {
        compact(rb);
        tail = rb->cap - rb->len;
    }
    if (tail < want) {
        size_t need = rb->len + want;
        if (rb->lent) {
            /* Outgrew the lent block: the bytes move to a block of the buffer's own. */
            size_t ncap = TS__MIN(TS__MAX(rb->cap * 2, need), TS__MAX(max_cap, need));
            if (!move_to_own(rb, ncap))
                return NULL;
            *avail = rb->cap - rb->len;
            return rb->base + rb->len;
        }
        size_t ncap = rb->cap ? rb->cap : want;
        while (ncap < need) {
            if (ncap > SIZE_MAX / 2) {
                ncap = need;
                break;
            }
            ncap *= 2;
        }
        /* Doubling may overshoot the stream's limit; the limit wins unless the request itself is bigger. */
        if (ncap > max_cap)
            ncap = TS__MAX(max_cap, need);
        if (rb->start > 0) {
            /* realloc would keep the offset, and the tail would be short of the need by the prefix. */
            if (!move_to_own(rb, ncap))
                return NULL;
        } else {
            char *p = ncap <= TS__RB_CAP_MAX ? ts__realloc(rb->base, ncap) : NULL;
            if (!p)
                return NULL;
            rb->base = p;
            rb->cap = ncap;
        }
        tail = ncap - rb->len;
    }
    *avail = tail;
    return rb->base + rb->start + rb->len;
}

int ts__readbuf_append(ts__readbuf *rb, const void *data, size_t n, size_t max_cap)
{
    if (n == 0)
        return 0;
    size_t avail;
    char *tail = ts__readbuf_reserve(rb, n, max_cap, &avail);
    if (!tail)
        return TS_ENOMEM;
    memcpy(tail, data, n);
    ts__readbuf_commit(rb, n);
    return 0;
}

