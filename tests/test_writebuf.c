/* The write buffer as a plain data structure: no loop, no I/O (file regions hold /dev/null). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

#include "iostream_int.h"
#include "testutil.h"

static int setup(void **state)
{
    (void)state;
    tu_use_test_allocator();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tu_restore_allocator();
    return 0;
}

/* Gathers everything queued, as writev would see it, without consuming. */
static size_t peek_all(const ts__writebuf *wb, char *out, size_t max)
{
    struct iovec iov[1024];
    int n = ts__writebuf_iov(wb, iov, 1024, max);
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        memcpy(out + off, iov[i].iov_base, iov[i].iov_len);
        off += iov[i].iov_len;
    }
    return off;
}

static void test_small_writes_coalesce(void **state)
{
    (void)state;
    ts__writebuf wb;
    ts__writebuf_init(&wb);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(ts__writebuf_append(&wb, "0123456789", 10), 0);
    assert_int_equal(ts__writebuf_size(&wb), 10000);
    assert_int_equal(ts__writebuf_nchunks(&wb), 1); /* all in one 16 KiB chunk */
    for (int i = 0; i < 1000; i++)
        assert_int_equal(ts__writebuf_append(&wb, "0123456789", 10), 0);
    assert_int_equal(ts__writebuf_nchunks(&wb), 2); /* 16384 + 3616 */
    struct iovec iov[4];
    assert_int_equal(ts__writebuf_iov(&wb, iov, 4, SIZE_MAX), 2);
    assert_int_equal(iov[0].iov_len, TS__WB_CHUNK);
    assert_int_equal(iov[1].iov_len, 20000 - TS__WB_CHUNK);
    static char out[20000];
    assert_int_equal(peek_all(&wb, out, sizeof out), 20000);
    for (int i = 0; i < 20000; i++)
        assert_int_equal(out[i], '0' + i % 10);
    ts__writebuf_free(&wb);
}

static void test_large_write_own_chunk(void **state)
{
    (void)state;
    ts__writebuf wb;
    ts__writebuf_init(&wb);
    size_t big = 100000;
    char *data = malloc(big);
    memset(data, 'L', big);
    assert_int_equal(ts__writebuf_append(&wb, "ab", 2), 0);
    assert_int_equal(ts__writebuf_append(&wb, data, big), 0);
    /* The tail chunk is topped up, the rest goes in one chunk of its own. */
    assert_int_equal(ts__writebuf_nchunks(&wb), 2);
    struct iovec iov[4];
    assert_int_equal(ts__writebuf_iov(&wb, iov, 4, SIZE_MAX), 2);
    assert_int_equal(iov[0].iov_len, TS__WB_CHUNK);
    assert_int_equal(iov[1].iov_len, big + 2 - TS__WB_CHUNK);
    free(data);
    ts__writebuf_free(&wb);
}

static int g_freed;
static void count_free(void *p)
{
    g_freed++;
    free(p);
}

static void test_owned_zero_copy(void **state)
{
    (void)state;
    ts__writebuf wb;
    ts__writebuf_init(&wb);
    g_freed = 0;
    char *owned = malloc(5);
    memcpy(owned, "HELLO", 5);
    assert_int_equal(ts__writebuf_append(&wb, "x", 1), 0);
    assert_int_equal(ts__writebuf_append_owned(&wb, owned, 5, &(ts__wowner){.data = owned, .free_fn = count_free}), 0);
    assert_int_equal(ts__writebuf_append(&wb, "y", 1), 0); /* not coalesced into owned memory */
    struct iovec iov[4];
    assert_int_equal(ts__writebuf_iov(&wb, iov, 4, SIZE_MAX), 3);
    assert_ptr_equal(iov[1].iov_base, owned); /* referenced, not copied */
    ts__writebuf_advance(&wb, 3);
    assert_int_equal(g_freed, 0);
    ts__writebuf_advance(&wb, 3); /* owned chunk done */
    assert_int_equal(g_freed, 1);
    assert_int_equal(ts__writebuf_size(&wb), 1);
    ts__writebuf_free(&wb);
}

static void test_clear_frees_owned(void **state)
{
    (void)state;
    ts__writebuf wb;
    ts__writebuf_init(&wb);
    g_freed = 0;
    for (int i = 0; i < 2; i++) {
        char *p = malloc(10);
        /* The queued part may start inside what gets freed. */
        assert_int_equal(ts__writebuf_append_owned(&wb, p + i, 10 - (size_t)i, &(ts__wowner){.data = p, .free_fn = count_free}), 0);
    }
    ts__writebuf_advance(&wb, 4);
    assert_int_equal(ts__writebuf_size(&wb), 15);
    ts__writebuf_clear(&wb);
    assert_int_equal(g_freed, 2);
    assert_int_equal(ts__writebuf_size(&wb), 0);
    ts__writebuf_free(&wb);
}

static void cb_dummy(ts_iostream *s, int status, void *arg)
{
    (void)s, (void)status, (void)arg;
}

static void test_marks_complete_by_index_in_order(void **state)
{
    (void)state;
    ts__writebuf wb;
    ts__writebuf_init(&wb);
    int args[5];
    size_t lens[5] = {3, 0, 10, 1, 0};
    for (int i = 0; i < 5; i++) {
        static const char data[16] = "abcdefghijklmno";
        assert_int_equal(ts__writebuf_append(&wb, data, lens[i]), 0);
        assert_int_equal(ts__writebuf_add_mark(&wb, cb_dummy, &args[i]), 0);
    }
    ts__wmark m;
    assert_false(ts__writebuf_pop_mark(&wb, false, &m));
    ts__writebuf_advance(&wb, 2);
    assert_false(ts__writebuf_pop_mark(&wb, false, &m));
    ts__writebuf_advance(&wb, 1); /* index 3: marks 0 and 1 (the empty write) */
    assert_true(ts__writebuf_pop_mark(&wb, false, &m));
    assert_ptr_equal(m.arg, &args[0]);
    assert_int_equal(m.end, 3);
    assert_true(ts__writebuf_pop_mark(&wb, false, &m));
    assert_ptr_equal(m.arg, &args[1]);
    assert_false(ts__writebuf_pop_mark(&wb, false, &m));
    ts__writebuf_advance(&wb, 11);
    for (int i = 2; i < 5; i++) {
        assert_true(ts__writebuf_pop_mark(&wb, false, &m));
        assert_ptr_equal(m.arg, &args[i]);
    }
    assert_false(ts__writebuf_has_marks(&wb));
    ts__writebuf_free(&wb);
}

static void test_marks_ring_wraps_and_grows(void **state)
{
    (void)state;
    ts__writebuf wb;
    ts__writebuf_init(&wb);
    uintptr_t next_pop = 0, next_push = 0;
    ts__wmark m;
    for (int round = 0; round < 200; round++) {
        int push = 1 + round % 7, pop = round % 5;
        for (int i = 0; i < push; i++) {
            assert_int_equal(ts__writebuf_append(&wb, "z", 1), 0);
            assert_int_equal(ts__writebuf_add_mark(&wb, cb_dummy, (void *)next_push++), 0);
        }
        for (int i = 0; i < pop && ts__writebuf_pop_mark(&wb, true, &m); i++)
            assert_int_equal((uintptr_t)m.arg, next_pop++);
    }
    while (ts__writebuf_pop_mark(&wb, true, &m))
        assert_int_equal((uintptr_t)m.arg, next_pop++);
    assert_int_equal(next_pop, next_push);
    assert_null(wb.marks); /* a grown ring is released once drained */
    ts__writebuf_free(&wb);
}

static void test_iov_caps(void **state)
{
    (void)state;
    ts__writebuf wb;
    ts__writebuf_init(&wb);
    g_freed = 0;
    for (int i = 0; i < 50; i++) {
        char *p = malloc(100);
        assert_int_equal(ts__writebuf_append_owned(&wb, p, 100, &(ts__wowner){.data = p, .free_fn = count_free}), 0);
    }
    struct iovec iov[64];
    assert_int_equal(ts__writebuf_iov(&wb, iov, 16, SIZE_MAX), 16);
    assert_int_equal(ts__writebuf_iov(&wb, iov, 64, 250), 3);
    assert_int_equal(iov[2].iov_len, 50);
    ts__writebuf_advance(&wb, 150); /* mid-chunk */
    assert_int_equal(ts__writebuf_iov(&wb, iov, 64, 10), 1);
    assert_int_equal(iov[0].iov_len, 10);
    assert_int_equal(ts__writebuf_iov(&wb, iov, 64, SIZE_MAX), 49);
    assert_int_equal(iov[0].iov_len, 50);
    assert_int_equal(g_freed, 1);
    ts__writebuf_free(&wb);
    assert_int_equal(g_freed, 50);
}

static void test_skip_keeps_indexes(void **state)
{
    (void)state;
    ts__writebuf wb;
    ts__writebuf_init(&wb);
    ts__writebuf_skip(&wb, 100);
    assert_int_equal(ts__writebuf_add_mark(&wb, cb_dummy, NULL), 0);
    assert_true(ts__writebuf_mark_ready(&wb));
    assert_int_equal(ts__writebuf_append(&wb, "abc", 3), 0);
    assert_int_equal(ts__writebuf_add_mark(&wb, cb_dummy, NULL), 0);
    ts__wmark m;
    assert_true(ts__writebuf_pop_mark(&wb, false, &m));
    assert_int_equal(m.end, 100);
    assert_false(ts__writebuf_pop_mark(&wb, false, &m));
    ts__writebuf_advance(&wb, 3);
    assert_true(ts__writebuf_pop_mark(&wb, false, &m));
    assert_int_equal(m.end, 103);
    ts__writebuf_free(&wb);
}

static void test_random_against_model(void **state)
{
    (void)state;
    /*
     * Random appends (copied, owned, from guard pages; views of a block that
     * stays put, some continuing the last, some copied in place as when the
     * read buffer moves) and advances, partial and whole.
     */
    enum { MAXQ = 1 << 20 };
    char *model = malloc(MAXQ);
    char *out = malloc(MAXQ);
    char *viewed = malloc(MAXQ);
    for (size_t k = 0; k < MAXQ; k++)
        viewed[k] = (char)(k * 7 + 3);
    size_t mstart = 0, mlen = 0, view_end = 0;
    ts__writebuf wb;
    ts__writebuf_init(&wb);
    unsigned seed = 99;
    unsigned char next = 0;
    for (int i = 0; i < 4000; i++) {
        seed = seed * 1103515245u + 12345u;
        unsigned op = (seed >> 16) % 4;
        size_t n = (seed >> 4) % (op == 0 ? 300 : 40000);
        if (op == 3 && n > 0 && mstart + mlen + n <= MAXQ) {
            size_t at = (seed & 1) && view_end + n <= MAXQ ? view_end : (seed >> 8) % (MAXQ - n);
            memcpy(model + mstart + mlen, viewed + at, n);
            assert_int_equal(ts__writebuf_append_view(&wb, viewed + at, n), 0);
            view_end = at + n;
            mlen += n;
            if ((seed & 6) == 6) {
                assert_int_equal(ts__writebuf_own_views(&wb), 0);
                assert_false(ts__writebuf_has_views(&wb));
            }
        } else if (op < 2 && mstart + mlen + n <= MAXQ) {
            char *in = tu_guarded_alloc(n);
            for (size_t k = 0; k < n; k++)
                in[k] = model[mstart + mlen + k] = (char)next++;
            if (op == 1 && n > 0) {
                char *own = malloc(n);
                memcpy(own, in, n);
                assert_int_equal(ts__writebuf_append_owned(&wb, own, n, &(ts__wowner){.data = own, .free_fn = free}), 0);
            } else {
                assert_int_equal(ts__writebuf_append(&wb, in, n), 0);
            }
            tu_guarded_free(in, n);
            mlen += n;
        } else {
            size_t k = (seed & 8) ? mlen : n % (mlen + 1);
            ts__writebuf_advance(&wb, k);
            mstart += k;
            mlen -= k;
            if (mlen == 0) {
                mstart = 0;
                assert_int_equal(ts__writebuf_nchunks(&wb), 0);
                assert_false(ts__writebuf_has_views(&wb));
            }
        }
        assert_int_equal(ts__writebuf_size(&wb), mlen);
        assert_int_equal(wb.total_index - wb.done_index, mlen);
        if (i % 50 == 0) {
            assert_int_equal(peek_all(&wb, out, MAXQ), mlen);
            assert_memory_equal(out, model + mstart, mlen);
        }
    }
    ts__writebuf_free(&wb);
    free(model);
    free(out);
    free(viewed);
}

static void test_out_of_memory(void **state)
{
    (void)state;
    ts__writebuf wb;
    ts__writebuf_init(&wb);
    tu_fail_alloc_after(0);
    assert_int_equal(ts__writebuf_append(&wb, "abc", 3), TS_ENOMEM);
    assert_int_equal(ts__writebuf_size(&wb), 0);
    assert_int_equal(wb.total_index, 0);
    assert_int_equal(ts__writebuf_append(&wb, "abc", 3), 0);
    tu_fail_alloc_after(0);
    static char big[TS__WB_CHUNK * 2];
    /* Needs a new chunk: fails before touching the tail. */
    assert_int_equal(ts__writebuf_append(&wb, big, sizeof big), TS_ENOMEM);
    assert_int_equal(ts__writebuf_size(&wb), 3);
    tu_fail_alloc_after(0);
    char *own = malloc(4);
    assert_int_equal(ts__writebuf_append_owned(&wb, own, 4, &(ts__wowner){.data = own, .free_fn = free}), TS_ENOMEM);
    free(own); /* not taken on failure */
    tu_fail_alloc_after(0);
    assert_int_equal(ts__writebuf_add_mark(&wb, cb_dummy, NULL), TS_ENOMEM);
    assert_false(ts__writebuf_has_marks(&wb));
    ts__writebuf_free(&wb);
}

/* A file region: the iovec stops before it until bytes are staged; staged bytes go out like copies; its fd is closed. */
static void test_file_region_staging(void **state)
{
    (void)state;
    ts__writebuf wb;
    ts__writebuf_init(&wb);
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(ts__writebuf_append(&wb, "ab", 2), 0);
    assert_int_equal(ts__writebuf_append_file(&wb, fd, 100, 40000), 0);
    assert_int_equal(ts__writebuf_append(&wb, "cd", 2), 0); /* a new copy chunk: a file chunk takes no copies */
    assert_int_equal(ts__writebuf_size(&wb), 40004);
    assert_int_equal(ts__writebuf_nchunks(&wb), 3);
    int got_fd;
    uint64_t off;
    size_t left;
    assert_false(ts__writebuf_head_file(&wb, &got_fd, &off, &left));
    struct iovec iov[8];
    assert_int_equal(ts__writebuf_iov(&wb, iov, 8, SIZE_MAX), 1);
    assert_int_equal(iov[0].iov_len, 2);
    ts__writebuf_advance(&wb, 2);
    size_t sent = 0;
    for (int round = 0; round < 3; round++) {
        assert_true(ts__writebuf_head_file(&wb, &got_fd, &off, &left));
        assert_int_equal(got_fd, fd);
        assert_int_equal(off, 100 + sent);
        assert_int_equal(left, 40000 - sent);
        size_t room;
        char *buf = ts__writebuf_stage_begin(&wb, &room);
        assert_non_null(buf);
        assert_int_equal(room, left < TS__WB_CHUNK ? left : TS__WB_CHUNK);
        memset(buf, 'a' + round, room);
        ts__writebuf_stage_commit(&wb, room);
        assert_false(ts__writebuf_head_file(&wb, &got_fd, &off, &left));
        int n = ts__writebuf_iov(&wb, iov, 8, SIZE_MAX);
        assert_int_equal(n, round < 2 ? 1 : 2); /* the last stage reaches the region's end: "cd" follows */
        assert_int_equal(iov[0].iov_len, room);
        assert_int_equal(((char *)iov[0].iov_base)[room - 1], 'a' + round);
        /* a short write keeps the rest staged, the same bytes, for the retry */
        ts__writebuf_advance(&wb, 1000);
        assert_int_equal(ts__writebuf_iov(&wb, iov, 8, SIZE_MAX), n);
        assert_int_equal(iov[0].iov_len, room - 1000);
        ts__writebuf_advance(&wb, room - 1000);
        sent += room;
    }
    assert_int_equal(sent, 40000);
    assert_int_equal(ts__writebuf_iov(&wb, iov, 8, SIZE_MAX), 1);
    assert_memory_equal(iov[0].iov_base, "cd", 2);
    assert_int_equal(fcntl(fd, F_GETFD), -1); /* closed with its chunk */
    ts__writebuf_advance(&wb, 2);
    assert_int_equal(ts__writebuf_size(&wb), 0);
    ts__writebuf_free(&wb);
}

/* Clearing the buffer closes a queued region's fd. */
static void test_clear_closes_file(void **state)
{
    (void)state;
    ts__writebuf wb;
    ts__writebuf_init(&wb);
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    assert_int_equal(ts__writebuf_append_file(&wb, fd, 0, 10), 0);
    ts__writebuf_free(&wb);
    assert_int_equal(fcntl(fd, F_GETFD), -1);
}

/*
 * The chunk an empty queue starts with, when it references memory (a view,
 * owned memory, a file region), lives in the queue itself: queueing it
 * allocates nothing and takes nothing from the loop's pools, and neither
 * does writing it out. A second such chunk behind it takes a header as
 * before, and the queue's own is reused once the queue is empty again.
 */
static void test_first_chunk_is_the_queues_own(void **state)
{
    (void)state;
    ts__wpools pools = {.chunks.max = 4, .heads.max = 4, .queues.max = 4};
    ts__writebuf *wb = ts__writebuf_new(&pools);
    assert_non_null(wb);
    static const char line[] = "a line to echo\n";
    const size_t n = sizeof line - 1;
    struct iovec iov[4];
    /* An echo, then a zero-copy reply, then a file region, each on an empty queue: no allocation. */
    for (int round = 0; round < 3; round++) {
        tu_fail_alloc_after(0);
        assert_int_equal(ts__writebuf_append_view(wb, line, 5), 0);
        assert_int_equal(ts__writebuf_append_view(wb, line + 5, n - 5), 0); /* continues it: the same chunk */
        assert_int_equal(ts__writebuf_nchunks(wb), 1);
        assert_true(ts__writebuf_has_views(wb));
        assert_int_equal(ts__writebuf_iov(wb, iov, 4, SIZE_MAX), 1);
        assert_ptr_equal(iov[0].iov_base, line);
        ts__writebuf_advance(wb, n);
        assert_int_equal(ts__writebuf_size(wb), 0);
        assert_false(ts__writebuf_has_views(wb));
        g_freed = 0;
        char *own = malloc(n);
        memcpy(own, line, n);
        assert_int_equal(ts__writebuf_append_owned(wb, own, n, &(ts__wowner){.data = own, .free_fn = count_free}), 0);
        ts__writebuf_advance(wb, n - 1);
        assert_int_equal(g_freed, 0);
        ts__writebuf_advance(wb, 1);
        assert_int_equal(g_freed, 1);
        int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        assert_true(fd >= 0);
        assert_int_equal(ts__writebuf_append_file(wb, fd, 0, 10), 0);
        tu_fail_alloc_after(-1);
        ts__writebuf_clear(wb);
        assert_int_equal(fcntl(fd, F_GETFD), -1);
        assert_int_equal(pools.heads.n, 0); /* none was taken, none given back */
        assert_int_equal(wb->total_index - wb->done_index, 10 * (round + 1)); /* the region cleared unwritten */
    }
    /* Behind the first, a view that does not continue it needs a header: out of memory, nothing queued. */
    assert_int_equal(ts__writebuf_append_view(wb, line, 4), 0);
    tu_fail_alloc_after(0);
    assert_int_equal(ts__writebuf_append_view(wb, line + 5, 4), TS_ENOMEM);
    tu_fail_alloc_after(-1);
    assert_int_equal(ts__writebuf_size(wb), 4);
    assert_int_equal(ts__writebuf_append_view(wb, line + 5, 4), 0);
    assert_int_equal(ts__writebuf_nchunks(wb), 2);
    /* Copied in place (the read buffer is about to move): the first becomes a copy chunk, then frees up. */
    assert_int_equal(ts__writebuf_own_views(wb), 0);
    assert_false(ts__writebuf_has_views(wb));
    assert_int_equal(ts__writebuf_iov(wb, iov, 4, SIZE_MAX), 2);
    assert_true(iov[0].iov_base != line && iov[1].iov_base != line + 5);
    assert_memory_equal(iov[0].iov_base, "a li", 4);
    assert_memory_equal(iov[1].iov_base, "e to", 4);
    ts__writebuf_advance(wb, 8);
    assert_int_equal(pools.heads.n, 1); /* the second header went back */
    /* A view written in part stays at the head; the rest goes with the next write. */
    assert_int_equal(ts__writebuf_append_view(wb, line, n), 0);
    assert_int_equal(pools.heads.n, 1);
    ts__writebuf_advance(wb, 5);
    assert_int_equal(ts__writebuf_iov(wb, iov, 4, SIZE_MAX), 1);
    assert_ptr_equal(iov[0].iov_base, line + 5);
    ts__writebuf_advance(wb, n - 5);
    assert_int_equal(ts__writebuf_size(wb), 0);
    assert_int_equal(wb->total_index - wb->done_index, 30); /* only the regions cleared unwritten */
    ts__writebuf_release(wb); /* back to the pool */
    assert_int_equal(pools.queues.n, 1);
    ts__pool_drain(&pools.chunks);
    ts__pool_drain(&pools.heads);
    ts__writebuf_pool_drain(&pools.queues);
}

/*
 * A write that takes the whole queue frees its one chunk by kind: a copy
 * chunk goes back to the pool (and the next small write takes it again,
 * allocating nothing), owned memory is given back, a file region closed.
 */
static void test_whole_write_frees_the_chunk(void **state)
{
    (void)state;
    ts__wpools pools = {.chunks.max = 4, .heads.max = 4, .queues.max = 4};
    ts__writebuf *wb = ts__writebuf_new(&pools);
    assert_non_null(wb);
    assert_int_equal(ts__writebuf_append(wb, "HTTP/1.1 200 OK\r\n", 17), 0);
    ts__writebuf_advance(wb, 17);
    assert_int_equal(ts__writebuf_nchunks(wb), 0);
    assert_int_equal(pools.chunks.n, 1);
    tu_fail_alloc_after(0);
    assert_int_equal(ts__writebuf_append(wb, "again", 5), 0); /* the pool's chunk */
    tu_fail_alloc_after(-1);
    assert_int_equal(pools.chunks.n, 0);
    ts__writebuf_advance(wb, 5);
    g_freed = 0;
    char *own = malloc(8);
    assert_int_equal(ts__writebuf_append_owned(wb, own, 8, &(ts__wowner){.data = own, .free_fn = count_free}), 0);
    ts__writebuf_advance(wb, 8);
    assert_int_equal(g_freed, 1);
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    assert_int_equal(ts__writebuf_append_file(wb, fd, 0, 3), 0);
    size_t room;
    char *stage = ts__writebuf_stage_begin(wb, &room);
    assert_non_null(stage);
    memcpy(stage, "abc", 3);
    ts__writebuf_stage_commit(wb, 3);
    ts__writebuf_advance(wb, 3);
    assert_int_equal(fcntl(fd, F_GETFD), -1);
    assert_int_equal(pools.chunks.n, 1); /* the staging block (the pool's chunk again) went back */
    assert_int_equal(ts__writebuf_size(wb), 0);
    assert_int_equal(wb->done_index, wb->total_index);
    ts__writebuf_release(wb);
    ts__pool_drain(&pools.chunks);
    ts__pool_drain(&pools.heads);
    ts__writebuf_pool_drain(&pools.queues);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_small_writes_coalesce, setup, teardown),
        cmocka_unit_test_setup_teardown(test_large_write_own_chunk, setup, teardown),
        cmocka_unit_test_setup_teardown(test_owned_zero_copy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_clear_frees_owned, setup, teardown),
        cmocka_unit_test_setup_teardown(test_marks_complete_by_index_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_marks_ring_wraps_and_grows, setup, teardown),
        cmocka_unit_test_setup_teardown(test_iov_caps, setup, teardown),
        cmocka_unit_test_setup_teardown(test_skip_keeps_indexes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_random_against_model, setup, teardown),
        cmocka_unit_test_setup_teardown(test_out_of_memory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_region_staging, setup, teardown),
        cmocka_unit_test_setup_teardown(test_clear_closes_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_first_chunk_is_the_queues_own, setup, teardown),
        cmocka_unit_test_setup_teardown(test_whole_write_frees_the_chunk, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
