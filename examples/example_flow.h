/*
 * Flow control shared by the example servers. A connection reads its next
 * request only while the answers it has queued stay under a high-water mark;
 * past it, the next read waits for a write completion: the moment the queued
 * answers have all reached the kernel (Tornado's HTTP/1 connection likewise
 * waits for the previous response to be written before it reads the next
 * request). A client that sends without reading then fills the kernel's
 * socket buffers and TCP stops it, where the server would otherwise queue
 * answers without limit. Per connection, at most the mark plus one answer is
 * queued. The mark is one of the loop's read blocks (256 KiB): the answers
 * to everything one read brings in are queued before the connection pauses,
 * so a pipelining client's answers go out in one write per read, not in
 * several. Header-only: each example is one .c file.
 */
#ifndef TS_EXAMPLE_FLOW_H
#define TS_EXAMPLE_FLOW_H

#include <stdbool.h>
#include <stddef.h>

#include <tstream.h>

/** Queued output (bytes) past which a connection stops reading requests. */
#define EX_WRITE_HIGH_WATER (256u * 1024u)

/* Whether the output queued on @p s, plus @p more bytes about to be queued, is past the mark. */
static inline bool ex_write_backed_up(const ts_iostream *s, size_t more)
{
    return ts_iostream_write_buffer_size(s) + more > EX_WRITE_HIGH_WATER;
}

#endif /* TS_EXAMPLE_FLOW_H */
