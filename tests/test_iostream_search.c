/*
 * Searching the read buffer: the linear-time proof (a 64 MiB line fed in
 * 1 KiB pieces is examined at most twice over, for 1-, 2- and 16-byte
 * delimiters and for a regex), regex matches split across pieces, the regex
 * cache, and the PCRE2 limits that stop a pathological pattern quickly.
 *
 * The data comes from a feeder transport that hands out at most 1 KiB per
 * read and says "would block" every 64 pieces, over an fd that is always
 * readable, so the stream goes through the loop between bursts.
 */
#include "iostream_int.h"
#include "testutil.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct feeder {
    int fd, peer;
    size_t total, off; /* bytes to produce: fill, then the tail */
    const char *tail;
    size_t tail_len;
    char fill;
    size_t piece;
    int calls;
} feeder;

static int f_fileno(void *t) { return ((feeder *)t)->fd; }

static ssize_t f_read(void *t, void *buf, size_t len)
{
    feeder *f = t;
    if (++f->calls % 65 == 0)
        return TS_EAGAIN;
    if (f->off == f->total)
        return TS_EAGAIN;
    size_t n = f->total - f->off;
    if (n > f->piece)
        n = f->piece;
    if (n > len)
        n = len;
    size_t body = f->total - f->tail_len;
    for (size_t i = 0; i < n; i++) {
        size_t at = f->off + i;
        ((char *)buf)[i] = at < body ? f->fill : f->tail[at - body];
    }
    f->off += n;
    return (ssize_t)n;
}

static ssize_t f_write(void *t, const struct iovec *iov, int cnt)
{
    (void)t, (void)iov, (void)cnt;
    return TS_EAGAIN;
}

static void f_close(void *t) { (void)t; }

static const ts_stream_ops feeder_ops = {
    .size = sizeof(ts_stream_ops),
    .name = "feeder",
    .fileno = f_fileno,
    .read_from_fd = f_read,
    .write_to_fd = f_write,
    .close_fd = f_close,
};

static ts_ioloop *g_loop;

static int setup(void **state)
{
    (void)state;
    g_loop = tu_fixture_begin(60);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tu_fixture_end(g_loop);
    return 0;
}

static void feeder_init(feeder *f, size_t total, const char *tail, size_t tail_len)
{
    memset(f, 0, sizeof(*f));
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    f->fd = sv[0];
    f->peer = sv[1];
    assert_int_equal(write(f->peer, "r", 1), 1); /* keeps fd readable for good */
    f->total = total;
    f->tail = tail;
    f->tail_len = tail_len;
    f->fill = 'a';
    f->piece = 1024;
}

static void feeder_done(feeder *f)
{
    close(f->fd);
    close(f->peer);
}

typedef struct res {
    int calls, status;
    size_t len;
    bool tail_ok;
    const char *tail;
    size_t tail_len;
} res;

static void on_line(ts_iostream *s, int status, const char *data, size_t len, void *arg)
{
    (void)s;
    res *r = arg;
    r->calls++;
    r->status = status;
    r->len = len;
    r->tail_ok = status == 0 && len >= r->tail_len &&
                 (r->tail_len == 0 || memcmp(data + len - r->tail_len, r->tail, r->tail_len) == 0);
}

#define LINE (64u * 1024 * 1024)

static void linear(const char *delim, size_t dlen, const char *regex)
{
    feeder f;
    feeder_init(&f, LINE, delim, dlen);
    ts_iostream_options o = {.size = sizeof(o), .max_buffer_size = 2 * LINE};
    ts_iostream *s = ts_iostream_new(g_loop, &feeder_ops, &f, &o);
    res r = {.tail = delim, .tail_len = dlen};
    uint64_t examined_before = ts__iostream_search_bytes(s); /* the loop's count: earlier cases' bytes too */
    if (regex)
        assert_int_equal(ts_iostream_read_until_regex(s, regex, 0, on_line, &r), 0);
    else
        assert_int_equal(ts_iostream_read_until(s, delim, dlen, 0, on_line, &r), 0);
    tu_run_until_count(g_loop, &r.calls, 1, 50);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.len, LINE);
    assert_true(r.tail_ok);
    uint64_t examined = ts__iostream_search_bytes(s) - examined_before;
    print_message("%s %-22s (%zu-byte tail): %d reads, %llu bytes examined for a %u byte line (%.3fx)\n",
                  regex ? "regex" : "delim", regex ? regex : "", dlen, f.calls, (unsigned long long)examined, LINE,
                  (double)examined / LINE);
    assert_true(f.calls > 60000); /* it really arrived in pieces */
    assert_true(examined <= 2ull * LINE);
    ts_iostream_free(s);
    tu_run_iterations(g_loop, 2);
    feeder_done(&f);
}

static void test_linear_1_byte_delimiter(void **state)
{
    (void)state;
    linear("\n", 1, NULL);
}

static void test_linear_2_byte_delimiter(void **state)
{
    (void)state;
    linear("\r\n", 2, NULL);
}

static void test_linear_16_byte_delimiter(void **state)
{
    (void)state;
    linear("0123456789ABCDEF", 16, NULL);
}

static void test_linear_regex(void **state)
{
    (void)state;
    linear("\r\n\r\n", 4, "\\r?\\n\\r?\\n");
}

static void test_regex_match_split_across_pieces(void **state)
{
    (void)state;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    ts_iostream *s = ts_iostream_new_socket(g_loop, sv[0], NULL);
    /* The match starts in one piece and ends in another; a lookbehind reaches back before the resume point. */
    ts_future *fu = ts_iostream_read_until_regex_future(s, "ab+c", 0);
    assert_int_equal(write(sv[1], "xxab", 4), 4);
    tu_run_for(g_loop, 0.01);
    assert_int_equal(write(sv[1], "bbbcTAIL", 8), 8);
    assert_int_equal(ts_ioloop_run_sync(g_loop, fu, 5), 0);
    ts_bytes *b = ts_future_result(fu);
    assert_non_null(b);
    assert_string_equal(b->data, "xxabbbbc");
    ts_future_unref(fu);
    fu = ts_iostream_read_until_regex_future(s, "(?<=q)z", 0);
    assert_int_equal(write(sv[1], "..q", 3), 3);
    tu_run_for(g_loop, 0.01);
    assert_int_equal(write(sv[1], "z!", 2), 2);
    assert_int_equal(ts_ioloop_run_sync(g_loop, fu, 5), 0);
    assert_string_equal(((ts_bytes *)ts_future_result(fu))->data, "TAIL..qz");
    ts_future_unref(fu);
    /* A match that could still grow waits for more data, then completes at EOF as it stands. */
    fu = ts_iostream_read_until_regex_future(s, "!a+", 0);
    assert_int_equal(write(sv[1], "aa", 2), 2);
    tu_run_for(g_loop, 0.01);
    assert_false(ts_future_done(fu));
    close(sv[1]);
    assert_int_equal(ts_ioloop_run_sync(g_loop, fu, 5), 0);
    assert_int_equal(ts_future_error(fu), 0);
    assert_string_equal(((ts_bytes *)ts_future_result(fu))->data, "!aa");
    ts_future_unref(fu);
    ts_iostream_free(s);
    tu_run_iterations(g_loop, 2);
}

/*
 * The documented empty-match rule: a pattern that can match nothing (`x*`)
 * waits while the buffer is empty, and completes with 0 bytes as soon as any
 * byte is buffered (the empty match at its start), consuming nothing.
 */
static void test_regex_empty_match_rule(void **state)
{
    (void)state;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    ts_iostream *s = ts_iostream_new_socket(g_loop, sv[0], NULL);
    ts_future *fu = ts_iostream_read_until_regex_future(s, "x*", 0);
    tu_run_for(g_loop, 0.02);
    assert_false(ts_future_done(fu)); /* empty buffer: waits */
    assert_int_equal(write(sv[1], "abc", 3), 3);
    assert_int_equal(ts_ioloop_run_sync(g_loop, fu, 5), 0);
    assert_int_equal(ts_future_error(fu), 0);
    assert_int_equal(((ts_bytes *)ts_future_result(fu))->len, 0);
    ts_future_unref(fu);
    assert_int_equal(ts_iostream_read_buffer_size(s), 3); /* nothing consumed */
    /* With the x's first, the match takes them. */
    fu = ts_iostream_read_bytes_future(s, 3, false);
    assert_int_equal(ts_ioloop_run_sync(g_loop, fu, 5), 0);
    ts_future_unref(fu);
    assert_int_equal(write(sv[1], "xxy", 3), 3);
    fu = ts_iostream_read_until_regex_future(s, "x*", 0);
    assert_int_equal(ts_ioloop_run_sync(g_loop, fu, 5), 0);
    assert_string_equal(((ts_bytes *)ts_future_result(fu))->data, "xx");
    ts_future_unref(fu);
    ts_iostream_free(s);
    close(sv[1]);
}

static void test_regex_compiled_once(void **state)
{
    (void)state;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    ts_iostream *s = ts_iostream_new_socket(g_loop, sv[0], NULL);
    static char lines[100 * 6];
    for (int i = 0; i < 100; i++)
        memcpy(lines + i * 6, "line\r\n", 6);
    assert_int_equal(write(sv[1], lines, sizeof lines), (ssize_t)sizeof lines);
    ts_future *fu = ts_iostream_read_until_regex_future(s, "\\r\\n", 0);
    assert_int_equal(ts_ioloop_run_sync(g_loop, fu, 5), 0);
    ts_future_unref(fu);
    res r = {0};
    tu_use_counting_allocator();
    for (int i = 0; i < 50; i++) {
        assert_int_equal(ts_iostream_read_until_regex(s, "\\r\\n", 0, on_line, &r), 0);
        tu_run_until_count(g_loop, &r.calls, i + 1, 5);
    }
    long same = tu_alloc_count();
    assert_int_equal(ts_iostream_read_until_regex(s, "\\n", 0, on_line, &r), 0);
    tu_run_until_count(g_loop, &r.calls, 51, 5);
    long changed = tu_alloc_count() - same;
    tu_restore_allocator();
    print_message("allocations: 50 reads with a cached pattern: %ld; one new pattern: %ld\n", same, changed);
    assert_int_equal(same, 0);
    assert_true(changed > 0);
    ts_iostream_free(s);
    tu_run_iterations(g_loop, 2);
    close(sv[1]);
}

static long maxrss_kib(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

static void test_pathological_regex_fails_fast(void **state)
{
    (void)state;
    feeder f;
    feeder_init(&f, 8u * 1024 * 1024, "", 0);
    f.piece = 64 * 1024;
    ts_iostream *s = ts_iostream_new(g_loop, &feeder_ops, &f, NULL);
    res r = {0};
    long rss0 = maxrss_kib();
    double t0 = ts_ioloop_time(g_loop);
    assert_int_equal(ts_iostream_read_until_regex(s, "^(a)+$", 0, on_line, &r), 0);
    tu_run_until_count(g_loop, &r.calls, 1, 20);
    double took = ts_ioloop_time(g_loop) - t0;
    long grew = maxrss_kib() - rss0;
    print_message("^(a)+$ failed after %zu bytes in %.3fs, max RSS grew %ld KiB\n", f.off, took, grew);
    assert_int_equal(r.status, TS_EREGEX);
    assert_int_equal(ts_iostream_error(s), TS_EREGEX);
    assert_true(took < 5.0);
    assert_true(grew < 200 * 1024);
    ts_iostream_free(s);
    tu_run_iterations(g_loop, 2);
    feeder_done(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_linear_1_byte_delimiter, setup, teardown),
        cmocka_unit_test_setup_teardown(test_linear_2_byte_delimiter, setup, teardown),
        cmocka_unit_test_setup_teardown(test_linear_16_byte_delimiter, setup, teardown),
        cmocka_unit_test_setup_teardown(test_linear_regex, setup, teardown),
        cmocka_unit_test_setup_teardown(test_regex_match_split_across_pieces, setup, teardown),
        cmocka_unit_test_setup_teardown(test_regex_empty_match_rule, setup, teardown),
        cmocka_unit_test_setup_teardown(test_regex_compiled_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pathological_regex_fails_fast, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
