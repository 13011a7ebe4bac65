/*
 * Stream throughput against a hand-written raw libev loop, in the same run,
 * over the same kind of AF_UNIX socketpair fed (or drained) by a helper
 * thread:
 *   read_until "\n" with 64 B, 4 KiB and 1 MiB lines   (raw: ev_io + read + memchr)
 *   read_until_regex "\r\n" with 4 KiB lines            (raw: ev_io + read + memmem)
 *   many 64-byte writes                                  (raw: own buffer + writev on EV_WRITE)
 * Prints key=value lines; ratio_* = ours / raw throughput (1.0 = as fast as raw).
 * Set BENCH_MB to change the bytes moved per case (default 256).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "tstream.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static size_t g_total;

/* ---- helper threads ------------------------------------------------------ */

typedef struct feed {
    int fd;
    char *block;
    size_t block_len;
} feed;

static void *feeder(void *arg)
{
    feed *f = arg;
    size_t sent = 0;
    while (sent < g_total) {
        size_t n = f->block_len;
        if (n > g_total - sent)
            n = g_total - sent;
        ssize_t w = write(f->fd, f->block, n);
        if (w <= 0)
            break;
        sent += (size_t)w;
    }
    close(f->fd);
    return NULL;
}

static void *drainer(void *arg)
{
    int fd = *(int *)arg;
    static char buf[1 << 16];
    while (read(fd, buf, sizeof buf) > 0) {
    }
    close(fd);
    return NULL;
}

/* A block of whole lines of @p line bytes ending in @p end, at least 1 MiB. */
static char *make_block(size_t line, const char *end, size_t *len)
{
    size_t el = strlen(end);
    size_t per = line;
    size_t n = (1u << 20) / per + 1;
    char *b = malloc(n * per);
    for (size_t i = 0; i < n; i++) {
        memset(b + i * per, 'a' + (int)(i % 26), per - el);
        memcpy(b + i * per + per - el, end, el);
    }
    *len = n * per;
    return b;
}

static void start_feeder(pthread_t *t, feed *f, int fd, size_t line, const char *end)
{
    f->fd = fd;
    f->block = make_block(line, end, &f->block_len);
    pthread_create(t, NULL, feeder, f);
}

/* ---- ours: read_until / read_until_regex --------------------------------- */

typedef struct ours {
    ts_ioloop *loop;
    const char *regex;
    size_t bytes;
    bool done;
} ours;

static void on_line(ts_iostream *s, int status, const char *data, size_t len, void *arg)
{
    (void)data;
    ours *o = arg;
    if (status) {
        o->done = true;
        ts_ioloop_stop(o->loop);
        return;
    }
    o->bytes += len;
    int r = o->regex ? ts_iostream_read_until_regex(s, o->regex, 0, on_line, o)
                     : ts_iostream_read_until(s, "\n", 1, 0, on_line, o);
    if (r) {
        o->done = true;
        ts_ioloop_stop(o->loop);
    }
}

static double run_ours_read(size_t line, const char *regex)
{
    int sv[2];
    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv);
    pthread_t t;
    feed f;
    start_feeder(&t, &f, sv[1], line, regex ? "\r\n" : "\n");
    ts_ioloop *loop = ts_ioloop_new();
    ts_iostream_options opt = {.size = sizeof(opt), .max_buffer_size = 64u << 20};
    ts_iostream *s = ts_iostream_new_socket(loop, sv[0], &opt);
    ours o = {.loop = loop, .regex = regex};
    double t0 = now();
    if (regex)
        ts_iostream_read_until_regex(s, regex, 0, on_line, &o);
    else
        ts_iostream_read_until(s, "\n", 1, 0, on_line, &o);
    ts_ioloop_start(loop);
    double dt = now() - t0;
    ts_iostream_free(s);
    pthread_join(t, NULL);
    ts_ioloop_free(loop, false);
    free(f.block);
    return o.bytes / dt / 1e6;
}

/* ---- raw: ev_io + read + memchr/memmem ------------------------------------ */

typedef struct raw {
    ev_io w;
    char *buf;
    size_t cap, start, len, scan;
    size_t bytes;
    bool crlf;
} raw;

static void raw_read_cb(struct ev_loop *ev, ev_io *w, int revents)
{
    (void)revents;
    raw *r = (raw *)w;
    if (r->cap - r->start - r->len < 65536) {
        memmove(r->buf, r->buf + r->start, r->len);
        r->start = 0;
        if (r->cap - r->len < 65536) {
            r->cap *= 2;
            r->buf = realloc(r->buf, r->cap);
        }
    }
    ssize_t n = read(w->fd, r->buf + r->start + r->len, r->cap - r->start - r->len);
    if (n <= 0) {
        if (n < 0 && errno == EAGAIN)
            return;
        ev_io_stop(ev, w);
        ev_break(ev, EVBREAK_ALL);
        return;
    }
    r->len += (size_t)n;
    for (;;) {
        char *base = r->buf + r->start;
        char *p = r->crlf ? memmem(base + r->scan, r->len - r->scan, "\r\n", 2)
                          : memchr(base + r->scan, '\n', r->len - r->scan);
        if (!p) {
            size_t keep = r->crlf ? 1 : 0;
            r->scan = r->len > keep ? r->len - keep : 0;
            break;
        }
        size_t l = (size_t)(p - base) + (r->crlf ? 2 : 1);
        r->bytes += l;
        r->start += l;
        r->len -= l;
        r->scan = 0;
    }
}

static double run_raw_read(size_t line, bool crlf)
{
    int sv[2];
    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv);
    fcntl(sv[0], F_SETFL, O_NONBLOCK);
    pthread_t t;
    feed f;
    start_feeder(&t, &f, sv[1], line, crlf ? "\r\n" : "\n");
    struct ev_loop *ev = ev_loop_new(EVFLAG_AUTO);
    raw r = {.cap = 1 << 17, .crlf = crlf};
    r.buf = malloc(r.cap);
    ev_io_init(&r.w, raw_read_cb, sv[0], EV_READ);
    double t0 = now();
    ev_io_start(ev, &r.w);
    ev_run(ev, 0);
    double dt = now() - t0;
    pthread_join(t, NULL);
    close(sv[0]);
    ev_loop_destroy(ev);
    free(r.buf);
    free(f.block);
    return r.bytes / dt / 1e6;
}

/* ---- many small writes ---------------------------------------------------- */

static const char g_msg[64] = "0123456789012345678901234567890123456789012345678901234567890\r\n";

static void on_flushed(ts_iostream *s, int status, void *arg)
{
    (void)s, (void)status;
    ts_ioloop_stop(arg);
}

static double run_ours_writes(void)
{
    int sv[2];
    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv);
    pthread_t t;
    pthread_create(&t, NULL, drainer, &sv[1]);
    ts_ioloop *loop = ts_ioloop_new();
    ts_iostream *s = ts_iostream_new_socket(loop, sv[0], NULL);
    size_t n = g_total / sizeof g_msg;
    double t0 = now();
    /* Batches of 1000 per loop iteration, as a server producing output would. */
    for (size_t i = 0; i < n; i += 1000) {
        for (size_t k = 0; k < 1000 && i + k < n; k++)
            ts_iostream_write(s, g_msg, sizeof g_msg, NULL, NULL);
        ev_run(ts_ioloop_ev(loop), EVRUN_NOWAIT);
    }
    ts_iostream_write(s, "", 0, on_flushed, loop);
    ts_ioloop_start(loop);
    double dt = now() - t0;
    ts_iostream_free(s);
    ev_run(ts_ioloop_ev(loop), EVRUN_NOWAIT);
    pthread_join(t, NULL);
    ts_ioloop_free(loop, false);
    return n * sizeof g_msg / dt / 1e6;
}

typedef struct rawout {
    ev_io w;
    char *buf;
    size_t cap, start, len;
} rawout;

static void rawout_flush(struct ev_loop *ev, rawout *o)
{
    while (o->len) {
        ssize_t w = write(o->w.fd, o->buf + o->start, o->len);
        if (w < 0) {
            if (!ev_is_active(&o->w))
                ev_io_start(ev, &o->w);
            return;
        }
        o->start += (size_t)w;
        o->len -= (size_t)w;
    }
    o->start = 0;
    if (ev_is_active(&o->w))
        ev_io_stop(ev, &o->w);
}

static void rawout_cb(struct ev_loop *ev, ev_io *w, int revents)
{
    (void)revents;
    rawout_flush(ev, (rawout *)w);
}

static void rawout_append(struct ev_loop *ev, rawout *o, const char *d, size_t n)
{
    if (o->len == 0 && !ev_is_active(&o->w)) {
        ssize_t w = write(o->w.fd, d, n); /* idle: straight to the kernel */
        if (w == (ssize_t)n)
            return;
        if (w > 0)
            d += w, n -= (size_t)w;
    }
    if (o->start + o->len + n > o->cap) {
        memmove(o->buf, o->buf + o->start, o->len);
        o->start = 0;
        while (o->len + n > o->cap)
            o->cap *= 2;
        o->buf = realloc(o->buf, o->cap);
    }
    memcpy(o->buf + o->start + o->len, d, n);
    o->len += n;
    if (!ev_is_active(&o->w))
        ev_io_start(ev, &o->w);
}

static double run_raw_writes(void)
{
    int sv[2];
    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv);
    fcntl(sv[0], F_SETFL, O_NONBLOCK);
    pthread_t t;
    pthread_create(&t, NULL, drainer, &sv[1]);
    struct ev_loop *ev = ev_loop_new(EVFLAG_AUTO);
    rawout o = {.cap = 1 << 16};
    o.buf = malloc(o.cap);
    ev_io_init(&o.w, rawout_cb, sv[0], EV_WRITE);
    size_t n = g_total / sizeof g_msg;
    double t0 = now();
    for (size_t i = 0; i < n; i += 1000) {
        for (size_t k = 0; k < 1000 && i + k < n; k++)
            rawout_append(ev, &o, g_msg, sizeof g_msg);
        ev_run(ev, EVRUN_NOWAIT);
    }
    while (o.len)
        ev_run(ev, EVRUN_ONCE);
    double dt = now() - t0;
    close(sv[0]);
    pthread_join(t, NULL);
    ev_loop_destroy(ev);
    free(o.buf);
    return n * sizeof g_msg / dt / 1e6;
}

/* Best of three, so a scheduler hiccup on the shared machine does not decide the ratio. */
#define BEST3(expr) ({ double _b = 0; for (int _i = 0; _i < 3; _i++) { double _v = (expr); if (_v > _b) _b = _v; } _b; })

int main(void)
{
    const char *mb = getenv("BENCH_MB");
    g_total = (size_t)(mb ? atoi(mb) : 256) << 20;
    static const struct {
        const char *name;
        size_t line;
    } cases[] = {{"read_until_64B", 64}, {"read_until_4KiB", 4096}, {"read_until_1MiB", 1u << 20}};
    printf("bytes_per_case=%zu\n", g_total);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        double o = BEST3(run_ours_read(cases[i].line, NULL));
        double r = BEST3(run_raw_read(cases[i].line, false));
        printf("%s_ours_MBps=%.1f\n%s_raw_MBps=%.1f\nratio_%s=%.3f\n", cases[i].name, o, cases[i].name, r,
               cases[i].name, o / r);
    }
    double o = BEST3(run_ours_read(4096, "\\r\\n"));
    double r = BEST3(run_raw_read(4096, true));
    printf("read_until_regex_4KiB_ours_MBps=%.1f\nread_until_regex_4KiB_raw_MBps=%.1f\nratio_read_until_regex_4KiB=%.3f\n",
           o, r, o / r);
    o = BEST3(run_ours_writes());
    r = BEST3(run_raw_writes());
    printf("small_writes_64B_ours_MBps=%.1f\nsmall_writes_64B_raw_MBps=%.1f\nratio_small_writes_64B=%.3f\n", o, r, o / r);
    return 0;
}
