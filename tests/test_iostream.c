/*
 * The shared stream-behaviour suite, ported from Tornado's
 * tornado/test/iostream_test.py (TestReadWriteMixin, the transport-neutral
 * parts of TestIOStreamMixin and TestIOStreamWebMixin, TestPipeIOStream).
 * Every test runs over every row of tu_stream_pairs (tcp, unix, pipe, and
 * tls once that row exists): tu_F.ws writes, tu_F.rs reads.
 *
 * Behaviour the issue adds beyond Tornado's tests is in test_iostream_core.c.
 */
#include "stream_pairs.h"
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

#define F tu_F
#define S(lit) lit, sizeof(lit) - 1

static void write_str(ts_iostream *s, const char *str) { assert_int_equal(ts_iostream_write(s, str, strlen(str), NULL, NULL), 0); }

/* test_write_zero_bytes: an empty write completes without looping forever. */
static void test_write_zero_bytes(void **state)
{
    (void)state;
    tu_fx_pair(NULL);
    tu_await_ok(ts_iostream_write_future(F.ws, "", 0));
}

/* test_future_delayed_close_callback: buffered bytes are still readable after the writer closes. */
static void test_future_delayed_close_callback(void **state)
{
    (void)state;
    tu_fx_pair(NULL);
    write_str(F.ws, "12");
    tu_expect_read(ts_iostream_read_bytes_future(F.rs, 1, false), S("1"));
    ts_iostream_close(F.ws, 0);
    tu_expect_read(ts_iostream_read_bytes_future(F.rs, 1, false), S("2"));
}

/* test_close_buffered_data: data still in the kernel is drained before the close is seen. */
static void test_close_buffered_data(void **state)
{
    (void)state;
    ts_iostream_options o = tu_opts(0, 256, 0);
    tu_fx_pair(&o);
    char a[512];
    memset(a, 'A', sizeof a);
    assert_int_equal(ts_iostream_write(F.ws, a, sizeof a, NULL, NULL), 0);
    tu_expect_read(ts_iostream_read_bytes_future(F.rs, 256, false), a, 256);
    ts_iostream_close(F.ws, 0);
    tu_run_for(F.loop, 0.01);
    tu_expect_read(ts_iostream_read_bytes_future(F.rs, 256, false), a, 256);
}

/* test_read_until_close_after_close */
static void test_read_until_close_after_close(void **state)
{
    (void)state;
    tu_fx_pair(NULL);
    write_str(F.ws, "1234");
    tu_expect_read(ts_iostream_read_bytes_future(F.rs, 1, false), S("1"));
    ts_iostream_close(F.ws, 0);
    tu_expect_read(ts_iostream_read_until_close_future(F.rs), S("234"));
}

/* test_large_read_until: 4 MiB line in 1 KiB writes, found in linear time. */
static void test_large_read_until(void **state)
{
    (void)state;
    tu_fx_pair(NULL);
    char k[1024];
    memset(k, 'A', sizeof k);
    for (int i = 0; i < 4096; i++)
        assert_int_equal(ts_iostream_write(F.ws, k, sizeof k, NULL, NULL), 0);
    write_str(F.ws, "\r\n");
    ts_future *f = tu_await(ts_iostream_read_until_future(F.rs, S("\r\n"), 0));
    assert_int_equal(ts_future_error(f), 0);
    assert_int_equal(((ts_bytes *)ts_future_result(f))->len, 4096 * 1024 + 2);
    ts_future_unref(f);
}

/* test_read_until_with_close_after_second_packet (Tornado #2717) */
static void test_read_until_with_close_after_second_packet(void **state)
{
    (void)state;
    tu_fx_pair(NULL);
    ts_future *rf = ts_iostream_read_until_future(F.rs, S("done"), 0);
    tu_run_for(F.loop, 0.02);
    char x[2048];
    memset(x, 'x', sizeof x);
    tu_await_ok(ts_iostream_write_future(F.ws, x, sizeof x));
    write_str(F.ws, "done");
    ts_iostream_close(F.ws, 0);
    tu_await(rf);
    assert_int_equal(ts_future_error(rf), 0);
    assert_int_equal(((ts_bytes *)ts_future_result(rf))->len, 2052);
    ts_future_unref(rf);
}

/* test_read_until_unsatisfied_after_close: a close while reading is TS_ECLOSED, not unsatisfiable. */
static void test_read_until_unsatisfied_after_close(void **state)
{
    (void)state;
    tu_fx_pair(NULL);
    ts_future *rf = ts_iostream_read_until_future(F.rs, S("done"), 0);
    char x[2048];
    memset(x, 'x', sizeof x);
    tu_await_ok(ts_iostream_write_future(F.ws, x, sizeof x));
    write_str(F.ws, "foo");
    ts_iostream_close(F.ws, 0);
    assert_int_equal(tu_await_error(rf), TS_ECLOSED);
}

/* test_close_callback_with_pending_read: the close callback runs even with a read pending. */
static void test_close_callback_with_pending_read(void **state)
{
    (void)state;
    tu_fx_pair(NULL);
    tu_rec closed = {0}, rd = {0};
    ts_iostream_set_close_callback(F.rs, tu_rec_close, &closed);
    write_str(F.ws, "OK\r\n");
    tu_expect_read(ts_iostream_read_until_future(F.rs, S("\r\n"), 0), S("OK\r\n"));
    ts_iostream_close(F.ws, 0);
    assert_int_equal(ts_iostream_read_until(F.rs, S("\r\n"), 0, tu_rec_read, &rd), 0);
    tu_rec_wait(&closed, 1);
    assert_int_equal(rd.calls, 1);
    assert_int_equal(rd.status, TS_ECLOSED);
    assert_true(rd.order < closed.order);
    tu_rec_free(&rd);
}

/* test_future_close_callback: an idle stream with a close callback notices the peer closing. */
static void test_future_close_callback(void **state)
{
    (void)state;
    tu_fx_pair(NULL);
    tu_rec closed = {0};
    ts_iostream_set_close_callback(F.rs, tu_rec_close, &closed);
    write_str(F.ws, "a");
    tu_expect_read(ts_iostream_read_bytes_future(F.rs, 1, false), S("a"));
    assert_int_equal(closed.calls, 0);
    ts_iostream_close(F.ws, 0);
    tu_rec_wait(&closed, 1);
    tu_run_for(F.loop, 0.01);
    assert_int_equal(closed.calls, 1);
}

/* test_write_memoryview: writing part of a larger buffer. */
static void test_write_memoryview(void **state)
{
    (void)state;
    tu_fx_pair(NULL);
    ts_future *f = ts_iostream_read_bytes_future(F.rs, 4, false);
    const char *hello = "hello world";
    assert_int_equal(ts_iostream_write(F.ws, hello, 5, NULL, NULL), 0);
    tu_expect_read(f, S("hell"));
}

/* test_read_bytes_partial */
static void test_read_bytes_partial(void **state)
{
    (void)state;
    tu_fx_pair(NULL);
    ts_future *f = ts_iostream_read_bytes_future(F.rs, 50, true);
    write_str(F.ws, "hello");
    tu_expect_read(f, S("hello"));
    f = ts_iostream_read_bytes_future(F.rs, 3, true);
    write_str(F.ws, "world");
    tu_expect_read(f, S("wor"));
    tu_expect_read(ts_iostream_read_bytes_future(F.rs, 0, true), "", 0);
}

/* test_read_until_max_bytes / test_read_until_regex_max_bytes */
static void read_until_max_bytes(bool regex)
{
    tu_fx_pair(NULL);
    tu_rec closed = {0};
    ts_iostream_set_close_callback(F.rs, tu_rec_close, &closed);
#define RU(max) (regex ? ts_iostream_read_until_regex_future(F.rs, "def", max) : ts_iostream_read_until_future(F.rs, S("def"), max))
    ts_future *f = RU(50); /* extra room under the limit */
    write_str(F.ws, "abcdef");
    tu_expect_read(f, S("abcdef"));
    f = RU(6); /* just enough: max_bytes counts the delimiter */
    write_str(F.ws, "abcdef");
    tu_expect_read(f, S("abcdef"));
    f = RU(5); /* not enough */
    write_str(F.ws, "123456");
    tu_rec_wait(&closed, 1);
    assert_int_equal(tu_await_error(f), TS_EUNSATISFIABLE);
    assert_int_equal(ts_iostream_error(F.rs), TS_EUNSATISFIABLE);
    assert_true(ts_iostream_closed(F.rs));
}

static void test_read_until_max_bytes(void **state)
{
    (void)state;
    read_until_max_bytes(false);
}

static void test_read_until_regex_max_bytes(void **state)
{
    (void)state;
    read_until_max_bytes(true);
}

/* ..._max_bytes_inline: data already there; the error still is not raised inside the call. */
static void read_until_max_bytes_inline(bool regex)
{
    tu_fx_pair(NULL);
    tu_rec closed = {0};
    ts_iostream_set_close_callback(F.rs, tu_rec_close, &closed);
    write_str(F.ws, "123456");
    tu_run_for(F.loop, 0.01);
    ts_future *f = RU(5);
    assert_false(ts_future_done(f));
    assert_int_equal(closed.calls, 0);
    assert_int_equal(tu_await_error(f), TS_EUNSATISFIABLE);
    tu_rec_wait(&closed, 1);
}

static void test_read_until_max_bytes_inline(void **state)
{
    (void)state;
    read_until_max_bytes_inline(false);
}

static void test_read_until_regex_max_bytes_inline(void **state)
{
    (void)state;
    read_until_max_bytes_inline(true);
}

/* ..._max_bytes_ignores_extra: a match arriving in the packet that passes the limit is still refused. */
static void read_until_max_bytes_ignores_extra(bool regex)
{
    tu_fx_pair(NULL);
    tu_rec closed = {0};
    ts_iostream_set_close_callback(F.rs, tu_rec_close, &closed);
    write_str(F.ws, "abcdef");
    ts_future *f = RU(5);
    tu_rec_wait(&closed, 1);
    assert_int_equal(tu_await_error(f), TS_EUNSATISFIABLE);
#undef RU
}

static void test_read_until_max_bytes_ignores_extra(void **state)
{
    (void)state;
    read_until_max_bytes_ignores_extra(false);
}

static void test_read_until_regex_max_bytes_ignores_extra(void **state)
{
    (void)state;
    read_until_max_bytes_ignores_extra(true);
}

/* test_small_reads_from_large_buffer: the buffer is not filled eagerly past what reads need. */
static void test_small_reads_from_large_buffer(void **state)
{
    (void)state;
    ts_iostream_options o = tu_opts(10 * 1024, 0, 0);
    tu_fx_pair(&o);
    static char a[100 * 1024];
    memset(a, 'a', sizeof a);
    assert_int_equal(ts_iostream_write(F.ws, a, sizeof a, NULL, NULL), 0);
    for (int i = 0; i < 100; i++)
        tu_expect_read(ts_iostream_read_bytes_future(F.rs, 1024, false), a, 1024);
}

/* test_small_read_untils_from_large_buffer */
static void test_small_read_untils_from_large_buffer(void **state)
{
    (void)state;
    ts_iostream_options o = tu_opts(10 * 1024, 0, 0);
    tu_fx_pair(&o);
    static char a[100 * 1024];
    for (int i = 0; i < 100; i++) {
        memset(a + i * 1024, 'a', 1023);
        a[i * 1024 + 1023] = '\n';
    }
    assert_int_equal(ts_iostream_write(F.ws, a, sizeof a, NULL, NULL), 0);
    for (int i = 0; i < 100; i++)
        tu_expect_read(ts_iostream_read_until_future(F.rs, S("\n"), 4096), a, 1024);
}

/* test_flow_control: a reader with a 5 MiB limit takes 10 MiB gradually. */
static void test_flow_control(void **state)
{
    (void)state;
    enum { MB = 1024 * 1024 };
    ts_iostream_options o = tu_opts(5 * MB, 0, 0);
    tu_fx_pair(&o);
    char *a = malloc(10 * MB);
    memset(a, 'a', 10 * MB);
    assert_int_equal(ts_iostream_write(F.ws, a, 10 * MB, NULL, NULL), 0);
    tu_expect_read(ts_iostream_read_bytes_future(F.rs, MB, false), a, MB);
    tu_run_for(F.loop, 0.05);
    assert_true(ts_iostream_read_buffer_size(F.rs) <= 5 * MB);
    for (int i = 0; i < 9; i++)
        tu_expect_read(ts_iostream_read_bytes_future(F.rs, MB, false), a, MB);
    free(a);
}

static size_t await_count(ts_future *f)
{
    tu_await(f);
    if (ts_future_error(f))
        fail_msg("read_into failed: %s", ts_err_name(ts_future_error(f)));
    size_t n = (size_t)(uintptr_t)ts_future_result(f);
    ts_future_unref(f);
    return n;
}

/* test_read_into */
static void test_read_into(void **state)
{
    (void)state;
    tu_fx_pair(NULL);
    char buf[10];
    ts_future *f = ts_iostream_read_into_future(F.rs, buf, 10, false);
    write_str(F.ws, "hello");
    tu_run_for(F.loop, 0.02);
    assert_true(ts_iostream_reading(F.rs));
    write_str(F.ws, "world!!");
    assert_int_equal(await_count(f), 10);
    assert_false(ts_iostream_reading(F.rs));
    assert_memory_equal(buf, "helloworld", 10);

    /* Existing buffer is fed into the user buffer. */
    f = ts_iostream_read_into_future(F.rs, buf, 10, false);
    tu_run_for(F.loop, 0.02);
    assert_true(ts_iostream_reading(F.rs));
    write_str(F.ws, "1234567890");
    assert_int_equal(await_count(f), 10);
    assert_false(ts_iostream_reading(F.rs));
    assert_memory_equal(buf, "!!12345678", 10);

    /* Existing buffer can satisfy the read at once. */
    char b4[4];
    write_str(F.ws, "abcdefghi");
    assert_int_equal(await_count(ts_iostream_read_into_future(F.rs, b4, 4, false)), 4);
    assert_memory_equal(b4, "90ab", 4);
    tu_expect_read(ts_iostream_read_bytes_future(F.rs, 7, false), S("cdefghi"));
}

/* test_read_into_partial */
static void test_read_into_partial(void **state)
{
    (void)state;
    tu_fx_pair(NULL);
    char buf[10] = {0};
    ts_future *f = ts_iostream_read_into_future(F.rs, buf, 10, true);
    write_str(F.ws, "hello");
    assert_int_equal(await_count(f), 5);
    assert_false(ts_iostream_reading(F.rs));
    assert_memory_equal(buf, "hello\0\0\0\0\0", 10);
    write_str(F.ws, "world!1234567890");
    tu_run_for(F.loop, 0.02);
    assert_int_equal(await_count(ts_iostream_read_into_future(F.rs, buf, 10, true)), 10);
    assert_memory_equal(buf, "world!1234", 10);
    assert_int_equal(await_count(ts_iostream_read_into_future(F.rs, buf, 10, true)), 6);
    assert_memory_equal(buf, "5678901234", 10);
}

/* test_read_into_zero_bytes (completes from the loop, not inside the call) */
static void test_read_into_zero_bytes(void **state)
{
    (void)state;
    tu_fx_pair(NULL);
    char buf[1];
    ts_future *f = ts_iostream_read_into_future(F.rs, buf, 0, false);
    assert_false(ts_future_done(f));
    assert_int_equal(await_count(f), 0);
}

/* test_many_mixed_reads: random read_bytes / read_into against random writes, 1 MB. */
typedef struct mixed {
    unsigned seed;
    size_t produced, consumed, total;
    uint64_t phash, chash;
    char buf[1000];
    bool done;
} mixed;

static unsigned rnd(unsigned *seed)
{
    *seed = *seed * 1103515245u + 12345u;
    return *seed >> 8;
}

static uint64_t fnv(uint64_t h, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)p[i]) * 1099511628211ull;
    return h;
}

static void mixed_produce(ts_iostream *s, int status, void *arg);
static void mixed_consume(mixed *m);

static void mixed_produce(ts_iostream *s, int status, void *arg)
{
    mixed *m = arg;
    assert_int_equal(status, 0);
    if (m->produced == m->total)
        return;
    size_t n = 1 + rnd(&m->seed) % 1000;
    if (n > m->total - m->produced)
        n = m->total - m->produced;
    char data[1000];
    for (size_t i = 0; i < n; i++)
        data[i] = (char)rnd(&m->seed);
    m->phash = fnv(m->phash, data, n);
    m->produced += n;
    assert_int_equal(ts_iostream_write(s, data, n, mixed_produce, m), 0);
}

static void mixed_on_bytes(ts_iostream *s, int status, const char *data, size_t len, void *arg)
{
    (void)s;
    mixed *m = arg;
    assert_int_equal(status, 0);
    m->chash = fnv(m->chash, data, len);
    m->consumed += len;
    mixed_consume(m);
}

static void mixed_on_into(ts_iostream *s, int status, size_t n, void *arg)
{
    (void)s;
    mixed *m = arg;
    assert_int_equal(status, 0);
    m->chash = fnv(m->chash, m->buf, n);
    m->consumed += n;
    mixed_consume(m);
}

static void mixed_consume(mixed *m)
{
    if (m->consumed == m->total) {
        m->done = true;
        return;
    }
    unsigned r = rnd(&m->seed);
    size_t n = 1 + (r >> 1) % 1000;
    if (n > m->total - m->consumed)
        n = m->total - m->consumed;
    if (r & 1)
        assert_int_equal(ts_iostream_read_bytes(F.rs, n, false, mixed_on_bytes, m), 0);
    else
        assert_int_equal(ts_iostream_read_into(F.rs, m->buf, n, false, mixed_on_into, m), 0);
}

static void test_many_mixed_reads(void **state)
{
    (void)state;
    tu_fx_pair(NULL);
    mixed m = {.seed = 42, .total = 1000000, .phash = 14695981039346656037ull, .chash = 14695981039346656037ull};
    mixed_produce(F.ws, 0, &m);
    mixed_consume(&m);
    tu_run_until_flag(F.loop, &m.done, 20);
    assert_int_equal(m.produced, m.total);
    assert_true(m.phash == m.chash);
}

/* test_future_write: write callbacks are never orphaned with many concurrent writers. */
typedef struct producer {
    int left;
    int *running;
} producer;

static char g_xs[5000];

static void produce_next(ts_iostream *s, int status, void *arg)
{
    producer *p = arg;
    assert_int_equal(status, 0);
    if (p->left-- == 0) {
        (*p->running)--;
        return;
    }
    assert_int_equal(ts_iostream_write(s, g_xs, sizeof g_xs, produce_next, p), 0);
}

static void consume_next(ts_iostream *s, int status, const char *data, size_t len, void *arg)
{
    (void)data;
    size_t *left = arg;
    assert_int_equal(status, 0);
    *left -= len;
    if (*left)
        assert_int_equal(ts_iostream_read_bytes(s, 5000, false, consume_next, left), 0);
}

typedef struct fw_state {
    int *running;
    size_t *left;
} fw_state;

static bool fw_done(void *arg)
{
    fw_state *st = arg;
    return *st->running == 0 && *st->left == 0;
}

static void test_future_write(void **state)
{
    (void)state;
    enum { N = 100, PRODUCERS = 10 };
    ts_iostream_options o = tu_opts(5000 * N * PRODUCERS, 0, 0);
    tu_fx_pair(&o);
    int running = PRODUCERS;
    producer ps[PRODUCERS];
    for (int i = 0; i < PRODUCERS; i++) {
        ps[i] = (producer){N, &running};
        produce_next(F.ws, 0, &ps[i]);
    }
    size_t left = 5000u * N * PRODUCERS;
    assert_int_equal(ts_iostream_read_bytes(F.rs, 5000, false, consume_next, &left), 0);
    fw_state st = {&running, &left};
    assert_true(tu_run_until(F.loop, fw_done, &st, 20));
}

/* test_read_zero_bytes (web mixin): read_bytes(0) between two reads. */
static void test_read_zero_bytes(void **state)
{
    (void)state;
    tu_fx_pair(NULL);
    write_str(F.ws, "HTTP/1.1 200 OK\r\n");
    tu_expect_read(ts_iostream_read_bytes_future(F.rs, 9, false), S("HTTP/1.1 "));
    tu_expect_read(ts_iostream_read_bytes_future(F.rs, 0, false), "", 0);
    tu_expect_read(ts_iostream_read_bytes_future(F.rs, 3, false), S("200"));
}

/* test_read_until_close (web mixin) */
static void test_read_until_close(void **state)
{
    (void)state;
    tu_fx_pair(NULL);
    write_str(F.ws, "HTTP/1.1 200 OK\r\n\r\nHello");
    ts_iostream_close(F.ws, 0);
    tu_expect_read(ts_iostream_read_until_close_future(F.rs), S("HTTP/1.1 200 OK\r\n\r\nHello"));
}

/* test_future_interface (web mixin) */
static void test_future_interface(void **state)
{
    (void)state;
    tu_fx_pair(NULL);
    tu_await_ok(ts_iostream_write_future(F.ws, S("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nHello")));
    tu_expect_read(ts_iostream_read_until_future(F.rs, S("\r\n"), 0), S("HTTP/1.1 200 OK\r\n"));
    tu_expect_read(ts_iostream_read_until_future(F.rs, S("\r\n\r\n"), 0), S("Content-Length: 5\r\n\r\n"));
    tu_expect_read(ts_iostream_read_bytes_future(F.rs, 5, false), S("Hello"));
}

/* test_future_close_while_reading (web mixin) */
static void test_future_close_while_reading(void **state)
{
    (void)state;
    tu_fx_pair(NULL);
    ts_future *f = ts_iostream_read_bytes_future(F.rs, 1024 * 1024, false);
    write_str(F.ws, "HTTP/1.1 200 OK\r\n\r\nHello");
    ts_iostream_close(F.ws, 0);
    assert_int_equal(tu_await_error(f), TS_ECLOSED);
}

/* test_future_read_until_close (web mixin): then nothing is left, and the error comes at once. */
static void test_future_read_until_close(void **state)
{
    (void)state;
    tu_fx_pair(NULL);
    write_str(F.ws, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nHello");
    ts_iostream_close(F.ws, 0);
    tu_expect_read(ts_iostream_read_until_future(F.rs, S("\r\n\r\n"), 0), S("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n"));
    tu_expect_read(ts_iostream_read_until_close_future(F.rs), S("Hello"));
    ts_future *f = ts_iostream_read_bytes_future(F.rs, 1, false);
    assert_true(ts_future_done(f)); /* failed without waiting */
    assert_int_equal(ts_future_error(f), TS_ECLOSED);
    ts_future_unref(f);
    char b;
    tu_rec r = {0};
    assert_int_equal(ts_iostream_read_bytes(F.rs, 1, false, tu_rec_read, &r), TS_ECLOSED);
    assert_int_equal(ts_iostream_read_into(F.rs, &b, 1, false, NULL, NULL), TS_EINVAL);
}

/* test_pipe_iostream (TestPipeIOStream, run over every kind) */
static void test_pipe_iostream(void **state)
{
    (void)state;
    tu_fx_pair(NULL);
    write_str(F.ws, "hel");
    write_str(F.ws, "lo world");
    tu_expect_read(ts_iostream_read_until_future(F.rs, S(" "), 0), S("hello "));
    tu_expect_read(ts_iostream_read_bytes_future(F.rs, 3, false), S("wor"));
    ts_iostream_close(F.ws, 0);
    tu_expect_read(ts_iostream_read_until_close_future(F.rs), S("ld"));
}

/* test_pipe_iostream_big_write */
static void test_pipe_iostream_big_write(void **state)
{
    (void)state;
    tu_fx_pair(NULL);
    enum { N = 1048576 };
    char *a = malloc(N);
    memset(a, '1', N);
    assert_int_equal(ts_iostream_write(F.ws, a, N, NULL, NULL), 0);
    tu_expect_read(ts_iostream_read_bytes_future(F.rs, N, false), a, N);
    free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_write_zero_bytes),
        cmocka_unit_test(test_future_delayed_close_callback),
        cmocka_unit_test(test_close_buffered_data),
        cmocka_unit_test(test_read_until_close_after_close),
        cmocka_unit_test(test_large_read_until),
        cmocka_unit_test(test_read_until_with_close_after_second_packet),
        cmocka_unit_test(test_read_until_unsatisfied_after_close),
        cmocka_unit_test(test_close_callback_with_pending_read),
        cmocka_unit_test(test_future_close_callback),
        cmocka_unit_test(test_write_memoryview),
        cmocka_unit_test(test_read_bytes_partial),
        cmocka_unit_test(test_read_until_max_bytes),
        cmocka_unit_test(test_read_until_max_bytes_inline),
        cmocka_unit_test(test_read_until_max_bytes_ignores_extra),
        cmocka_unit_test(test_read_until_regex_max_bytes),
        cmocka_unit_test(test_read_until_regex_max_bytes_inline),
        cmocka_unit_test(test_read_until_regex_max_bytes_ignores_extra),
        cmocka_unit_test(test_small_reads_from_large_buffer),
        cmocka_unit_test(test_small_read_untils_from_large_buffer),
        cmocka_unit_test(test_flow_control),
        cmocka_unit_test(test_read_into),
        cmocka_unit_test(test_read_into_partial),
        cmocka_unit_test(test_read_into_zero_bytes),
        cmocka_unit_test(test_many_mixed_reads),
        cmocka_unit_test(test_future_write),
        cmocka_unit_test(test_read_zero_bytes),
        cmocka_unit_test(test_read_until_close),
        cmocka_unit_test(test_future_interface),
        cmocka_unit_test(test_future_close_while_reading),
        cmocka_unit_test(test_future_read_until_close),
        cmocka_unit_test(test_pipe_iostream),
        cmocka_unit_test(test_pipe_iostream_big_write),
    };
    return tu_run_variants("iostream", tests, sizeof(tests) / sizeof(tests[0]));
}
