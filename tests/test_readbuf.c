/* The read buffer as a plain data structure: no loop, no fds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "iostream_int.h"
#include "testutil.h"

static int setup(void **state)
{
    (void)state;
    tu_use_test_allocator(); /* cmocka reports any block left allocated */
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tu_restore_allocator();
    return 0;
}

static void test_starts_released(void **state)
{
    (void)state;
    ts__readbuf rb;
    ts__readbuf_init(&rb);
    assert_null(rb.base);
    assert_int_equal(ts__readbuf_len(&rb), 0);
    /* Data pointer is the shared sentinel, never NULL. */
    assert_ptr_equal(ts__readbuf_data(&rb), ts__readbuf_empty);
    ts__readbuf_release_if_empty(&rb);
    ts__readbuf_free(&rb);
}

static void test_reserve_commit_consume(void **state)
{
    (void)state;
    ts__readbuf rb;
    ts__readbuf_init(&rb);
    size_t avail = 0;
    char *tail = ts__readbuf_reserve(&rb, 100, 1 << 20, &avail);
    assert_non_null(tail);
    assert_true(avail >= 100);
    memcpy(tail, "hello world", 11);
    ts__readbuf_commit(&rb, 11);
    assert_int_equal(ts__readbuf_len(&rb), 11);
    assert_memory_equal(ts__readbuf_data(&rb), "hello world", 11);
    const char *view = ts__readbuf_data(&rb);
    ts__readbuf_consume(&rb, 6);
    /* Consuming moves no memory: the old view is still intact. */
    assert_memory_equal(view, "hello world", 11);
    assert_memory_equal(ts__readbuf_data(&rb), "world", 5);
    ts__readbuf_release_if_empty(&rb); /* not empty: kept */
    assert_non_null(rb.base);
    ts__readbuf_consume(&rb, 5);
    ts__readbuf_release_if_empty(&rb);
    assert_null(rb.base);
    assert_int_equal(rb.cap, 0);
    ts__readbuf_free(&rb);
}

static void test_doubling_growth_and_limit(void **state)
{
    (void)state;
    ts__readbuf rb;
    ts__readbuf_init(&rb);
    char chunk[1000];
    memset(chunk, 'x', sizeof chunk);
    assert_int_equal(ts__readbuf_append(&rb, chunk, 1000, 1 << 20), 0);
    size_t cap = rb.cap;
    assert_int_equal(cap, 1000);
    assert_int_equal(ts__readbuf_append(&rb, chunk, 1000, 1 << 20), 0);
    assert_int_equal(rb.cap, 2000); /* doubled */
    assert_int_equal(ts__readbuf_append(&rb, chunk, 1, 1 << 20), 0);
    assert_int_equal(rb.cap, 4000);
    /* The limit caps doubling... */
    assert_int_equal(ts__readbuf_append(&rb, chunk, 1000, 4500), 0); /* 3001: fits */
    assert_int_equal(rb.cap, 4000);
    assert_int_equal(ts__readbuf_append(&rb, chunk, 1000, 4500), 0); /* 4001: 8000 capped */
    assert_int_equal(rb.cap, 4500);
    assert_int_equal(ts__readbuf_append(&rb, chunk, 1000, 4500), 0);
    assert_int_equal(rb.cap, 5001); /* need exceeds the limit: the request wins */
    assert_int_equal(ts__readbuf_len(&rb), 5001);
    ts__readbuf_free(&rb);
}

/* Fills @p data with the bytes 0 .. 99 and a new @p rb with them, in a block of exactly 100 bytes. */
static void hundred_bytes(ts__readbuf *rb, char data[100])
{
    ts__readbuf_init(rb);
    for (int i = 0; i < 100; i++)
        data[i] = (char)i;
    assert_int_equal(ts__readbuf_append(rb, data, 100, 100), 0);
}

static void test_compaction_only_when_the_tail_is_short(void **state)
{
    (void)state;
    ts__readbuf rb;
    char data[100];
    hundred_bytes(&rb, data);
    ts__readbuf_consume(&rb, 40); /* prefix 40 < half */
    size_t avail;
    /* Tail room 0, must compact (not grow) to fit 30 more. */
    char *tail = ts__readbuf_reserve(&rb, 30, 100, &avail);
    assert_non_null(tail);
    assert_int_equal(rb.cap, 100);
    assert_int_equal(rb.start, 0);
    assert_int_equal(avail, 40);
    assert_memory_equal(ts__readbuf_data(&rb), data + 40, 60);
    ts__readbuf_commit(&rb, 0);

    /* A prefix past half with room enough at the tail: the bytes stay where they are. */
    ts__readbuf_free(&rb);
    assert_non_null(ts__readbuf_reserve(&rb, 200, 200, &avail));
    assert_int_equal(ts__readbuf_append(&rb, data, 100, 200), 0);
    ts__readbuf_consume(&rb, 60);
    const char *before = ts__readbuf_data(&rb);
    tail = ts__readbuf_reserve(&rb, 50, 200, &avail);
    assert_non_null(tail);
    assert_ptr_equal(ts__readbuf_data(&rb), before);
    assert_int_equal(rb.start, 60);
    assert_int_equal(avail, 100);

    /* A prefix too short to make the room asked for is not compacted: the block grows (one move, not two). */
    ts__readbuf_free(&rb);
    assert_int_equal(ts__readbuf_append(&rb, data, 100, 1000), 0);
    ts__readbuf_consume(&rb, 10);
    assert_non_null(ts__readbuf_reserve(&rb, 50, 1000, &avail));
    assert_int_equal(rb.cap, 200);
    assert_int_equal(rb.start, 0); /* the live bytes moved once, to the front of the new block */
    assert_memory_equal(ts__readbuf_data(&rb), data + 10, 90);
    ts__readbuf_free(&rb);
}

/*
 * Growth after a consumed prefix too short to compact into: the room handed
 * out is really there, up to the limit (the tail once ended the prefix's
 * length past the block).
 */
static void test_growth_after_prefix_room_is_real(void **state)
{
    (void)state;
    ts__readbuf rb;
    char data[100];
    hundred_bytes(&rb, data);
    ts__readbuf_consume(&rb, 10);
    size_t avail;
    char *tail = ts__readbuf_reserve(&rb, 50, 140, &avail); /* the limit: exactly the 140 bytes needed */
    assert_non_null(tail);
    assert_true(avail >= 50);
    assert_true((size_t)(tail - rb.base) + avail <= ts__readbuf_capacity(&rb));
    memset(tail, 'x', avail);
    ts__readbuf_commit(&rb, 50);
    assert_int_equal(ts__readbuf_len(&rb), 140);
    assert_memory_equal(ts__readbuf_data(&rb), data + 10, 90);
    assert_int_equal(ts__readbuf_data(&rb)[90], 'x');
    ts__readbuf_free(&rb);
}

/*
 * Bulk lines through a block of four line lengths, read in pieces as a
 * socket hands them over and consumed line by line: the bytes compaction
 * moves stay a small share of those read (each filling of the block moves
 * at most the one unfinished line at its end). Compacting whenever the
 * consumed prefix passed half the block moved about one byte per byte.
 */
static void test_bulk_lines_move_few_bytes(void **state)
{
    (void)state;
    enum { LINE = 65536, BLOCK = 4 * LINE, TOTAL = 64 * LINE };
    static const size_t pieces[] = {65536, 40000, 131072, 7000, 90000, 65536, 262144, 1000};
    ts__readbuf rb;
    ts__readbuf_init(&rb);
    size_t avail, read = 0, moved = 0;
    assert_non_null(ts__readbuf_reserve(&rb, BLOCK, BLOCK, &avail));
    for (size_t i = 0; read < TOTAL; i++) {
        const char *before = ts__readbuf_data(&rb);
        size_t live = ts__readbuf_len(&rb);
        char *tail = ts__readbuf_reserve(&rb, LINE, BLOCK, &avail);
        assert_non_null(tail);
        if (live && ts__readbuf_data(&rb) != before)
            moved += live;
        assert_int_equal(rb.cap, BLOCK); /* never grows: one line at most is live */
        size_t n = TS__MIN(TS__MIN(avail, pieces[i % TS__ARRAY_LEN(pieces)]), (size_t)TOTAL - read);
        memset(tail, 'x', n);
        ts__readbuf_commit(&rb, n);
        read += n;
        /* Consume every finished line, as a line reader would: the unfinished one stays. */
        while (ts__readbuf_len(&rb) >= LINE)
            ts__readbuf_consume(&rb, LINE);
    }
    assert_true(moved <= (size_t)TOTAL / 4);
    ts__readbuf_free(&rb);
}

static void test_small_prefix_not_compacted(void **state)
{
    (void)state;
    ts__readbuf rb;
    ts__readbuf_init(&rb);
    char data[100] = {0};
    size_t avail;
    assert_non_null(ts__readbuf_reserve(&rb, 200, 1000, &avail));
    assert_int_equal(ts__readbuf_append(&rb, data, 100, 1000), 0);
    ts__readbuf_consume(&rb, 50);
    assert_non_null(ts__readbuf_reserve(&rb, 10, 1000, &avail));
    assert_int_equal(rb.start, 50); /* 50 < 200/2 and room enough: no memmove */
    assert_int_equal(avail, 100);
    ts__readbuf_free(&rb);
}

static void test_empty_restarts_at_zero(void **state)
{
    (void)state;
    ts__readbuf rb;
    ts__readbuf_init(&rb);
    char data[64] = {0};
    assert_int_equal(ts__readbuf_append(&rb, data, 64, 1000), 0);
    ts__readbuf_consume(&rb, 64);
    size_t avail;
    char *tail = ts__readbuf_reserve(&rb, 64, 1000, &avail);
    assert_ptr_equal(tail, rb.base);
    assert_int_equal(rb.cap, 64); /* reused, not grown */
    ts__readbuf_free(&rb);
}

static void test_append_from_guard_page(void **state)
{
    (void)state;
    /* Inputs end exactly at an inaccessible page: any over-read faults. */
    for (size_t len = 1; len <= 5000; len = len * 3 + 1) {
        char *in = tu_guarded_alloc(len);
        for (size_t i = 0; i < len; i++)
            in[i] = (char)('a' + i % 26);
        ts__readbuf rb;
        ts__readbuf_init(&rb);
        size_t total = 0;
        for (int round = 0; round < 5; round++) {
            assert_int_equal(ts__readbuf_append(&rb, in, len, SIZE_MAX), 0);
            total += len;
            ts__readbuf_consume(&rb, len / 2);
            total -= len / 2;
            assert_int_equal(ts__readbuf_len(&rb), total);
        }
        ts__readbuf_free(&rb);
        tu_guarded_free(in, len);
    }
}

static void test_random_ops_match_model(void **state)
{
    (void)state;
    /* A plain array is the model; every op must keep the buffer equal to it. */
    enum { MODEL = 1 << 16 };
    static char model[MODEL];
    size_t mstart = 0, mlen = 0;
    ts__readbuf rb;
    ts__readbuf_init(&rb);
    unsigned seed = 12345;
    unsigned char next = 0;
    for (int i = 0; i < 20000; i++) {
        seed = seed * 1103515245u + 12345u;
        unsigned op = (seed >> 16) % 4;
        size_t n = (seed >> 8) % 700;
        if (op < 2) {
            if (mstart + mlen + n > MODEL) {
                memmove(model, model + mstart, mlen);
                mstart = 0;
            }
            if (mlen + n > 8192)
                n = 0;
            size_t avail;
            char *tail = ts__readbuf_reserve(&rb, n, 8192, &avail);
            assert_non_null(tail);
            assert_true(avail >= n);
            for (size_t k = 0; k < n; k++)
                tail[k] = model[mstart + mlen + k] = (char)next++;
            ts__readbuf_commit(&rb, n);
            mlen += n;
        } else if (op == 2) {
            n = n % (mlen + 1);
            ts__readbuf_consume(&rb, n);
            mstart += n;
            mlen -= n;
        } else {
            ts__readbuf_release_if_empty(&rb);
        }
        assert_int_equal(ts__readbuf_len(&rb), mlen);
        assert_memory_equal(ts__readbuf_data(&rb), model + mstart, mlen);
        assert_true(rb.cap <= 16384);
    }
    ts__readbuf_free(&rb);
}

static void test_out_of_memory(void **state)
{
    (void)state;
    ts__readbuf rb;
    ts__readbuf_init(&rb);
    tu_fail_alloc_after(0);
    assert_int_equal(ts__readbuf_append(&rb, "abc", 3, 100), TS_ENOMEM);
    assert_null(rb.base);
    assert_int_equal(ts__readbuf_append(&rb, "abc", 3, 100), 0);
    tu_fail_alloc_after(0);
    /* Growth fails: the buffer keeps its data. */
    assert_int_equal(ts__readbuf_append(&rb, "defg", 4, 100), TS_ENOMEM);
    assert_int_equal(ts__readbuf_len(&rb), 3);
    assert_memory_equal(ts__readbuf_data(&rb), "abc", 3);
    ts__readbuf_free(&rb);
}

/*
 * A lent block carries its lender's tag, in no extra space: settling hands
 * the tag back, keeping nothing when every byte was consumed and the live
 * bytes, in a block of their own sized to them, otherwise. Bytes kept in an
 * own block come along to the next lent block.
 */
static void test_lent_block_tag(void **state)
{
    (void)state;
    assert_int_equal(sizeof(ts__readbuf), 4 * sizeof(size_t));
    static char block[1024];
    ts__readbuf rb;
    ts__readbuf_init(&rb);
    assert_int_equal(ts__readbuf_lent(&rb), 0);
    ts__readbuf_lend(&rb, block, sizeof block, 3);
    assert_int_equal(ts__readbuf_lent(&rb), 3);
    assert_int_equal(ts__readbuf_capacity(&rb), sizeof block);
    assert_int_equal(ts__readbuf_append(&rb, "line\n", 5, 4096), 0);
    assert_ptr_equal(ts__readbuf_data(&rb), block);
    ts__readbuf_consume(&rb, 5);
    assert_int_equal(ts__readbuf_settle(&rb), 3);
    assert_null(rb.base);
    assert_int_equal(ts__readbuf_lent(&rb), 0);
    assert_int_equal(ts__readbuf_capacity(&rb), 0);

    assert_int_equal(ts__readbuf_append(&rb, "partial", 7, 4096), 0);
    assert_int_equal(ts__readbuf_lent(&rb), 0);
    ts__readbuf_lend(&rb, block, sizeof block, TS__RB_TAG_MAX); /* the own block is freed (the allocator checks) */
    assert_int_equal(ts__readbuf_lent(&rb), TS__RB_TAG_MAX);
    assert_int_equal(ts__readbuf_capacity(&rb), sizeof block);
    assert_ptr_equal(ts__readbuf_data(&rb), block);
    assert_memory_equal(block, "partial", 7);
    ts__readbuf_consume(&rb, 3);
    assert_int_equal(ts__readbuf_settle(&rb), TS__RB_TAG_MAX);
    assert_int_equal(ts__readbuf_lent(&rb), 0);
    assert_int_equal(ts__readbuf_capacity(&rb), 64);
    assert_memory_equal(ts__readbuf_data(&rb), "tial", 4);
    assert_int_equal(ts__readbuf_settle(&rb), 0); /* an own block: no tag to hand back */
    assert_memory_equal(ts__readbuf_data(&rb), "tial", 4);
    ts__readbuf_consume(&rb, 4);
    assert_int_equal(ts__readbuf_settle(&rb), 0);
    assert_null(rb.base);

    /* Outgrowing a lent block moves the bytes to an own block: the tag is gone, the capacity exact. */
    ts__readbuf_lend(&rb, block, sizeof block, 2);
    char fill[1000];
    memset(fill, 'f', sizeof fill);
    assert_int_equal(ts__readbuf_append(&rb, fill, sizeof fill, 1500), 0);
    size_t avail;
    assert_non_null(ts__readbuf_reserve(&rb, 100, 1500, &avail));
    assert_int_equal(ts__readbuf_lent(&rb), 0);
    assert_int_equal(ts__readbuf_capacity(&rb), 1500);
    assert_int_equal(avail, 500);
    assert_memory_equal(ts__readbuf_data(&rb), fill, sizeof fill);
    assert_int_equal(ts__readbuf_settle(&rb), 0);
    ts__readbuf_free(&rb);

    /* Out of memory while settling: the tag still comes back, marked lost, and nothing is kept. */
    ts__readbuf_lend(&rb, block, sizeof block, 1);
    assert_int_equal(ts__readbuf_append(&rb, "abc", 3, 4096), 0);
    tu_fail_alloc_after(0);
    assert_int_equal(ts__readbuf_settle(&rb), 1 | TS__RB_LOST);
    assert_null(rb.base);
    assert_int_equal(ts__readbuf_len(&rb), 0);
}

/* A block past TS__RB_CAP_MAX (the capacity shares its word with the tag) is refused like a failed allocation. */
static void test_capacity_limit(void **state)
{
    (void)state;
    ts__readbuf rb;
    ts__readbuf_init(&rb);
    size_t avail;
    assert_null(ts__readbuf_reserve(&rb, TS__RB_CAP_MAX + 1, SIZE_MAX, &avail));
    assert_null(rb.base);
    assert_int_equal(ts__readbuf_append(&rb, "abc", 3, 100), 0);
    size_t cap = ts__readbuf_capacity(&rb);
    assert_null(ts__readbuf_reserve(&rb, TS__RB_CAP_MAX - 1, SIZE_MAX, &avail));
    assert_int_equal(ts__readbuf_capacity(&rb), cap);
    assert_int_equal(ts__readbuf_len(&rb), 3);
    assert_memory_equal(ts__readbuf_data(&rb), "abc", 3);
    ts__readbuf_free(&rb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_starts_released, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reserve_commit_consume, setup, teardown),
        cmocka_unit_test_setup_teardown(test_doubling_growth_and_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_compaction_only_when_the_tail_is_short, setup, teardown),
        cmocka_unit_test_setup_teardown(test_small_prefix_not_compacted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_growth_after_prefix_room_is_real, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bulk_lines_move_few_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_restarts_at_zero, setup, teardown),
        cmocka_unit_test_setup_teardown(test_append_from_guard_page, setup, teardown),
        cmocka_unit_test_setup_teardown(test_random_ops_match_model, setup, teardown),
        cmocka_unit_test_setup_teardown(test_out_of_memory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lent_block_tag, setup, teardown),
        cmocka_unit_test_setup_teardown(test_capacity_limit, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
