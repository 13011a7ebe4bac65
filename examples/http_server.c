/*
 * http_server: a keep-alive HTTP/1.1 server on TCPServer, and with --root a
 * static file server.
 *
 * Per connection: the request head is read with read_until_regex for a blank
 * line (with a size limit) and parsed strictly by http_parse.c (RFC 9112:
 * every malformed or ambiguous framing is refused with 400, 414, 431, 501 or
 * 505 and the connection closed); a Content-Length body is read with
 * read_bytes, a chunked one chunk by chunk (its trailers checked and
 * dropped); then the response is written; pipelined requests are answered
 * in order because the next request is read only once the previous response
 * is queued. While more than EX_WRITE_HIGH_WATER (256 KiB) of answers is
 * queued, the next request waits until they reached the kernel
 * (example_flow.h): a client that pipelines without reading costs at most
 * that plus one response, and one read chunk of its requests.
 *
 * Files (http_files.c maps targets, media types, validators, ranges and
 * listings) are queued with ts_iostream_write_file: sendfile from the page
 * cache on plain connections, never read into this program's memory. A
 * queued file counts as queued output, so the flow control above holds.
 *
 *   http_server PORT [--address ADDR] [--root DIR] [--tls CERT KEY]
 *                    [--processes N] [--idle-timeout S]
 *                    [--access-log FILE] [--mime-types FILE]
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <tstream.h>
#include <tstream/ssl.h>
#include <tstream/tcpserver.h>

#include "example_args.h"
#include "example_flow.h"
#include "http_files.h"
#include "http_parse.h"

#define MAX_HEAD (16 * 1024)  /* the request head: 431 past it */
#define MAX_LINE HP_MAX_LINE  /* the request line: 414 past it */
#define MAX_FIELDS 100        /* header fields: 431 past them */
#define MAX_BODY (16 * 1024 * 1024)
#define HELLO "Hello from libtstream!\n"
#define LINGER_SECONDS 2.0    /* how long a lingering close reads and discards */

typedef struct config {
    const char *root; /* realpath of --root, or NULL */
    double idle_timeout;
    FILE *access_log; /* common log format, or NULL */
} config;

static config g_cfg = {NULL, 30.0, NULL};
static ts_ioloop *g_loop;

typedef struct conn {
    struct conn *prev, *next;
    ts_iostream *s;
    uint64_t idle_timer; /* armed for timer_due (0: none) */
    double timer_due;
    double idle_due;     /* when the connection counts as idle (loop time) */
    bool keep_alive;
    bool head_only;
    bool linger; /* the peer may still be sending: drain before closing */
    size_t idle_queued; /* output queued when the idle timer was armed */
    char *method, *path; /* copied from the head: a body read may come between head and response */
    char *reqline;       /* the request line, for the access log (NULL: none parsed) */
    char *hdr[4];        /* copied header values (HDR_*), NULL when absent */
    char peer[NI_MAXHOST]; /* the client's address, for the access log */
    char *body;          /* a chunked request body, gathered */
    size_t body_len, body_cap, trailer_bytes;
} conn;

/* The request headers a file response looks at, copied from the head. */
enum { HDR_RANGE, HDR_IF_NONE_MATCH, HDR_IF_MODIFIED_SINCE, HDR_IF_RANGE };
static const char *const hdr_names[4] = {"Range", "If-None-Match", "If-Modified-Since", "If-Range"};

static conn g_conns = {.prev = &g_conns, .next = &g_conns};

static void read_request(conn *c);
static void arm_idle(conn *c);
static void arm_idle_at(conn *c, double due);

/* ---- connection lifetime ------------------------------------------------- */

static void on_idle(ts_ioloop *loop, void *arg)
{
    (void)loop;
    conn *c = arg;
    c->idle_timer = 0;
    if (ts_ioloop_time(loop) < c->idle_due) { /* there was activity since it was armed */
        c->timer_due = c->idle_due;
        c->idle_timer = ts_ioloop_call_at(g_loop, c->idle_due, on_idle, c);
        return;
    }
    size_t queued = ts_iostream_write_buffer_size(c->s);
    /*
     * A response still going out that made progress since the timer was
     * armed: the client is reading, which is not idleness (a download may
     * take longer than the timeout). One that made none is closed.
     */
    if (queued && queued != c->idle_queued) {
        arm_idle(c);
        return;
    }
    ts_iostream_close(c->s, TS_ETIMEDOUT);
}

/*
 * Moves the idle deadline. The timer is not moved along with it at every
 * request: one armed for an earlier time fires, finds the deadline later,
 * and is armed again for it (one timer per timeout period, not two heap
 * operations per request). Only a deadline before the armed one re-arms it.
 */
static void arm_idle_at(conn *c, double due)
{
    c->idle_queued = ts_iostream_write_buffer_size(c->s);
    c->idle_due = due;
    if (c->idle_timer && c->timer_due <= due)
        return;
    if (c->idle_timer)
        ts_ioloop_remove_timeout(g_loop, c->idle_timer);
    c->timer_due = due;
    c->idle_timer = ts_ioloop_call_at(g_loop, due, on_idle, c);
}

static void arm_idle(conn *c) { arm_idle_at(c, ts_ioloop_time(g_loop) + g_cfg.idle_timeout); }

static void free_request(conn *c)
{
    free(c->method);
    free(c->reqline);
    c->method = c->path = c->reqline = NULL;
    for (int i = 0; i < 4; i++) {
        free(c->hdr[i]);
        c->hdr[i] = NULL;
    }
}

/* The close callback runs once, after every pending callback was told: free the connection here. */
static void on_close(ts_iostream *s, void *arg)
{
    conn *c = arg;
    if (c->idle_timer)
        ts_ioloop_remove_timeout(g_loop, c->idle_timer);
    free_request(c);
    free(c->body);
    c->prev->next = c->next;
    c->next->prev = c->prev;
    free(c);
    ts_iostream_unref(s);
}

/* ---- responses ------------------------------------------------------------- */

static const char *reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 416: return "Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 431: return "Request Header Fields Too Large";
    case 501: return "Not Implemented";
    case 505: return "HTTP Version Not Supported";
    default: return "Internal Server Error";
    }
}

static void discard(ts_iostream *s, const char *data, size_t len, void *arg)
{
    (void)s, (void)data, (void)len, (void)arg;
}

static void on_drained(ts_iostream *s, int status, const char *data, size_t len, void *arg)
{
    (void)status, (void)data, (void)len, (void)arg;
    ts_iostream_close(s, 0);
}

static void on_flushed_close(ts_iostream *s, int status, void *arg)
{
    conn *c = arg;
    if (status < 0)
        return;
    /*
     * Closing with unread input makes the kernel send a reset, which can
     * destroy the response before the client reads it. After an error
     * response, read and discard until the client closes (the idle timer,
     * shortened here, bounds the wait): a lingering close.
     */
    if (c->linger && ts_iostream_read_until_close_streaming(s, discard, on_drained, c) == 0) {
        arm_idle_at(c, ts_ioloop_time(g_loop) + LINGER_SECONDS);
        return;
    }
    ts_iostream_close(s, 0);
}

static void on_answers_sent(ts_iostream *s, int status, void *arg)
{
    (void)s;
    if (status == 0)
        read_request(arg);
}

static void finish(conn *c)
{
    if (c->keep_alive) {
        /* flow control: past the mark, the next request waits until the answers reached the kernel */
        if (!ex_write_backed_up(c->s, 0))
            read_request(c);
        else if (ts_iostream_write(c->s, "", 0, on_answers_sent, c) < 0)
            ts_iostream_close(c->s, 0);
        return;
    }
    /* close once the response reached the kernel */
    if (ts_iostream_write(c->s, "", 0, on_flushed_close, c) < 0)
        ts_iostream_close(c->s, 0);
}

/* The Date header's value, formatted once a second. */
static const char *date_now(void)
{
    static char buf[HF_DATE_LEN];
    static time_t last = -1;
    time_t now = time(NULL);
    if (now != last) {
        hf_http_date(now, buf);
        last = now;
    }
    return buf;
}

/* One common-log-format line: host ident authuser [date] "request" status bytes. */
static void log_access(const conn *c, int status, long long bytes)
{
    char when[64], req[1024];
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    strftime(when, sizeof when, "%d/%b/%Y:%H:%M:%S %z", &tm);
    size_t n = 0;
    for (const char *p = c->reqline ? c->reqline : "-"; *p && n + 5 < sizeof req; p++) {
        unsigned char ch = (unsigned char)*p;
        if (ch == '"' || ch == '\\' || ch < 0x20 || ch >= 0x7f)
            n += (size_t)snprintf(req + n, sizeof req - n, "\\x%02x", ch);
        else
            req[n++] = (char)ch;
    }
    req[n] = '\0';
    if (bytes > 0)
        fprintf(g_cfg.access_log, "%s - - [%s] \"%s\" %d %lld\n", c->peer, when, req, status, bytes);
    else
        fprintf(g_cfg.access_log, "%s - - [%s] \"%s\" %d -\n", c->peer, when, req, status);
}

/*
 * A bounded appender for response heads: every response builds one, so it
 * copies strings and digits itself rather than parse a printf format (which
 * was a fifth of the server's instructions per request).
 */
typedef struct head_buf {
    char p[1024];
    size_t n;
    bool over;
} head_buf;

static void hb_str(head_buf *b, const char *s)
{
    size_t l = strlen(s);
    if (l > sizeof b->p - b->n) {
        b->over = true;
        return;
    }
    memcpy(b->p + b->n, s, l);
    b->n += l;
}

static void hb_num(head_buf *b, unsigned long long v)
{
    char t[24];
    size_t i = sizeof t;
    do
        t[--i] = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    size_t l = sizeof t - i;
    if (l > sizeof b->p - b->n) {
        b->over = true;
        return;
    }
    memcpy(b->p + b->n, t + i, l);
    b->n += l;
}

/* The status line and headers; @p extra is more header lines (each ending CRLF), or "". */
static void send_head_extra(conn *c, int status, const char *ctype, long long length, const char *extra)
{
    head_buf h = {.n = 0, .over = false};
    hb_str(&h, "HTTP/1.1 ");
    hb_num(&h, (unsigned long long)status);
    hb_str(&h, " ");
    hb_str(&h, reason(status));
    hb_str(&h, "\r\nServer: libtstream-http_server\r\nDate: ");
    hb_str(&h, date_now());
    hb_str(&h, "\r\n");
    if (ctype) {
        hb_str(&h, "Content-Type: ");
        hb_str(&h, ctype);
        hb_str(&h, "\r\n");
    }
    if (length >= 0) {
        hb_str(&h, "Content-Length: ");
        hb_num(&h, (unsigned long long)length);
        hb_str(&h, "\r\n");
    }
    hb_str(&h, extra);
    if (!c->keep_alive)
        hb_str(&h, "Connection: close\r\n");
    hb_str(&h, "\r\n");
    if (h.over) {
        ts_iostream_close(c->s, TS_EINVAL);
        return;
    }
    ts_iostream_write(c->s, h.p, h.n, NULL, NULL);
    if (g_cfg.access_log)
        log_access(c, status, c->head_only ? 0 : length);
}

static void send_head(conn *c, int status, const char *ctype, long long length)
{
    send_head_extra(c, status, ctype, length, "");
}

/* Statuses after which the connection cannot go on: the request's framing is in doubt. */
static bool ends_connection(int status)
{
    return status == 400 || status == 413 || status == 414 || status == 417 || status == 431 || status == 501 ||
           status == 505 || status >= 500;
}

static void send_simple_extra(conn *c, int status, const char *ctype, const char *body, size_t len, const char *extra)
{
    if (ends_connection(status)) {
        c->keep_alive = false;
        c->linger = true;
    }
    send_head_extra(c, status, ctype, (long long)len, extra);
    if (!c->head_only)
        ts_iostream_write(c->s, body, len, NULL, NULL);
    finish(c);
}

static void send_simple(conn *c, int status, const char *body)
{
    send_simple_extra(c, status, "text/plain; charset=utf-8", body, strlen(body), "");
}

static void send_error_extra(conn *c, int status, const char *extra)
{
    char body[128];
    snprintf(body, sizeof body, "%d %s\n", status, reason(status));
    send_simple_extra(c, status, "text/plain; charset=utf-8", body, strlen(body), extra);
}

static void send_error(conn *c, int status) { send_error_extra(c, status, ""); }

/* ---- files ------------------------------------------------------------------ */

static const char *hdr(const conn *c, int which) { return c->hdr[which]; }

/* If-None-Match, else If-Modified-Since (RFC 9110 13.2.2): whether the client's copy is current. */
static bool not_modified(const conn *c, const struct stat *st, const char *etag)
{
    const char *inm = hdr(c, HDR_IF_NONE_MATCH), *ims = hdr(c, HDR_IF_MODIFIED_SINCE);
    time_t since;
    if (inm)
        return hf_etag_listed(inm, strlen(inm), etag);
    return ims && hf_parse_http_date(ims, strlen(ims), &since) && st->st_mtime <= since;
}

/* If-Range (RFC 9110 13.1.5): the range applies only if the validator still matches. */
static bool range_applies(const conn *c, const char *etag, const char *last_modified)
{
    const char *ir = hdr(c, HDR_IF_RANGE);
    if (!ir)
        return true;
    if (ir[0] == '"')
        return !strcmp(ir, etag);
    return !strcmp(ir, last_modified);
}

/* A regular file: 200, 206, 304 or 416, the body queued as a file region (never copied through here). */
static void send_file(conn *c, const char *path, const char *name)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        if (fd >= 0)
            close(fd);
        send_error(c, errno == EACCES ? 403 : 404);
        return;
    }
    char etag[HF_ETAG_LEN], lm[HF_DATE_LEN], extra[512];
    hf_etag(&st, etag);
    hf_http_date(st.st_mtime, lm);
    uint64_t size = (uint64_t)st.st_size, first = 0, last = size ? size - 1 : 0;
    int status = 200;
    const char *range = hdr(c, HDR_RANGE);
    hf_range_kind rk = HF_RANGE_NONE;
    if (not_modified(c, &st, etag))
        status = 304;
    else if (range && !c->head_only && range_applies(c, etag, lm))
        rk = hf_parse_range(range, strlen(range), size, &first, &last);
    if (rk == HF_RANGE_UNSATISFIABLE) {
        close(fd);
        snprintf(extra, sizeof extra, "Content-Range: bytes */%llu\r\n", (unsigned long long)size);
        send_error_extra(c, 416, extra);
        return;
    }
    int n = snprintf(extra, sizeof extra, "Last-Modified: %s\r\nETag: %s\r\nAccept-Ranges: bytes\r\n", lm, etag);
    if (rk == HF_RANGE_ONE) {
        status = 206;
        snprintf(extra + n, sizeof extra - (size_t)n, "Content-Range: bytes %llu-%llu/%llu\r\n",
                 (unsigned long long)first, (unsigned long long)last, (unsigned long long)size);
    }
    uint64_t len = status == 304 || size == 0 ? 0 : last - first + 1;
    /* a 304 has no content and no Content-Length: one would have to be the 200's (RFC 9110 8.6) */
    send_head_extra(c, status, status == 304 ? NULL : hf_mime_type(name), status == 304 ? -1 : (long long)len, extra);
    if (!c->head_only && len > 0 && ts_iostream_write_file(c->s, fd, first, len, NULL, NULL) < 0)
        ts_iostream_close(c->s, 0); /* the file changed under us, or no fd left */
    close(fd); /* the stream keeps its own descriptor until the region is sent */
    finish(c);
}

/* A directory: 301 to the slash form, its index.html, or a listing. */
static void send_directory(conn *c, const hf_target *t)
{
    size_t ul = strlen(t->url_path);
    if (t->url_path[ul - 1] != '/') {
        char extra[4200];
        const char *q = strchr(c->path, '?');
        size_t pl = q ? (size_t)(q - c->path) : strlen(c->path);
        snprintf(extra, sizeof extra, "Location: %.*s/%s\r\n", (int)pl, c->path, q ? q : "");
        send_error_extra(c, 301, extra);
        return;
    }
    char index[sizeof t->url_path + 16];
    hf_target it;
    snprintf(index, sizeof index, "%sindex.html", t->url_path);
    if (hf_resolve(g_cfg.root, index, &it) == 0 && !it.dir) {
        send_file(c, it.file, it.file);
        return;
    }
    size_t len = 0;
    char *html = hf_listing(t->file, t->url_path, &len);
    if (!html) {
        send_error(c, errno == EACCES ? 403 : 500);
        return;
    }
    send_simple_extra(c, 200, "text/html; charset=utf-8", html, len, "");
    free(html);
}

/* ---- requests ------------------------------------------------------------ */

static void respond(conn *c, const char *body, size_t body_len)
{
    bool get = !strcmp(c->method, "GET"), head = !strcmp(c->method, "HEAD");
    c->head_only = head;
    if (!strcmp(c->path, "/echo")) {
        if (strcmp(c->method, "POST") != 0) {
            send_error_extra(c, 405, "Allow: POST\r\n");
            return;
        }
        send_head(c, 200, "application/octet-stream", (long long)body_len);
        ts_iostream_write(c->s, body, body_len, NULL, NULL);
        finish(c);
        return;
    }
    if (!get && !head) {
        send_error_extra(c, 405, "Allow: GET, HEAD\r\n");
        return;
    }
    if (!g_cfg.root) {
        if (strcmp(c->path, "/") != 0 && strncmp(c->path, "/?", 2) != 0)
            send_error(c, 404);
        else
            send_simple(c, 200, HELLO);
        return;
    }
    hf_target t;
    int status = hf_resolve(g_cfg.root, c->path, &t);
    if (status)
        send_error(c, status);
    else if (t.dir)
        send_directory(c, &t);
    else
        send_file(c, t.file, t.url_path);
}

static void on_body(ts_iostream *s, int status, const char *data, size_t len, void *arg)
{
    (void)s;
    if (status < 0)
        return;
    respond(arg, data, len);
}

/* ---- chunked request bodies: size line, data, CRLF, ..., last chunk, trailer lines ---- */

static void read_chunk_line(conn *c);

/* A chunk element could not be read or is malformed: answer it (true), or the stream is closing (true). */
static bool chunk_failed(conn *c, int status, bool malformed)
{
    if (status == TS_EUNSATISFIABLE || (status == 0 && malformed))
        send_error(c, 400); /* a line over its limit, or bad framing */
    return status < 0 || malformed;
}

static void on_trailer_line(ts_iostream *s, int status, const char *data, size_t len, void *arg);

/* One line of the trailer section, within what is left of MAX_HEAD for it. */
static void read_trailer_line(conn *c)
{
    size_t left = MAX_HEAD - c->trailer_bytes;
    if (left == 0) /* 0 would mean no limit to read_until */
        send_error(c, 400);
    else if (ts_iostream_read_until(c->s, "\n", 1, left, on_trailer_line, c) < 0)
        ts_iostream_close(c->s, 0);
}

static void on_trailer_line(ts_iostream *s, int status, const char *data, size_t len, void *arg)
{
    conn *c = arg;
    hp_field field;
    bool last = false;
    const char *why;
    (void)s;
    if (chunk_failed(c, status, status == 0 && hp_parse_trailer_line(data, len, MAX_HEAD - c->trailer_bytes, &field,
                                                                     &last, &why) != (ssize_t)len))
        return;
    if (!last) {
        c->trailer_bytes += len;
        read_trailer_line(c);
        return;
    }
    char *body = c->body;
    size_t body_len = c->body_len;
    c->body = NULL;
    c->body_len = c->body_cap = 0;
    respond(c, body, body_len);
    free(body);
}

static void on_chunk_end(ts_iostream *s, int status, const char *data, size_t len, void *arg)
{
    const char *why;
    (void)s;
    if (!chunk_failed(arg, status, status == 0 && hp_parse_chunk_end(data, len, &why) != 2))
        read_chunk_line(arg);
}

static void on_chunk_data(ts_iostream *s, int status, const char *data, size_t len, void *arg)
{
    conn *c = arg;
    if (status < 0)
        return;
    memcpy(c->body + c->body_len, data, len);
    c->body_len += len;
    if (ts_iostream_read_bytes(s, 2, false, on_chunk_end, c) < 0)
        ts_iostream_close(s, 0);
}

static void on_chunk_line(ts_iostream *s, int status, const char *data, size_t len, void *arg)
{
    conn *c = arg;
    uint64_t size = 0;
    const char *why;
    if (chunk_failed(c, status, status == 0 && hp_parse_chunk_line(data, len, &size, &why) != (ssize_t)len))
        return;
    if (size == 0) {
        c->trailer_bytes = 0;
        read_trailer_line(c);
        return;
    }
    if (size > MAX_BODY - c->body_len) {
        send_error(c, 413);
        return;
    }
    arm_idle(c); /* a body arriving chunk by chunk is no idle connection */
    if (c->body_len + size > c->body_cap) { /* doubling: many small chunks cost linear time */
        size_t cap = c->body_cap ? c->body_cap : 16 * 1024;
        while (cap < c->body_len + size)
            cap *= 2;
        char *body = realloc(c->body, cap);
        if (!body) {
            ts_iostream_close(s, TS_ENOMEM);
            return;
        }
        c->body = body;
        c->body_cap = cap;
    }
    if (ts_iostream_read_bytes(s, (size_t)size, false, on_chunk_data, c) < 0)
        ts_iostream_close(s, 0);
}

static void read_chunk_line(conn *c)
{
    if (ts_iostream_read_until(c->s, "\n", 1, HP_MAX_CHUNK_LINE + 2, on_chunk_line, c) < 0)
        ts_iostream_close(c->s, 0);
}

/* ---- the request head ------------------------------------------------------------ */

static const hp_limits head_limits = {.max_line = MAX_LINE, .max_head = MAX_HEAD};

/* No blank line within MAX_HEAD: data is what is buffered; a request line over MAX_LINE is 414, else 431. */
static void on_overlong_head(ts_iostream *s, int status, const char *data, size_t len, void *arg)
{
    hp_field fields[MAX_FIELDS];
    hp_message m = {.fields = fields, .max_fields = MAX_FIELDS};
    (void)s;
    if (status < 0)
        return;
    ssize_t rc = hp_parse_request(data, len, &head_limits, &m);
    send_error(arg, rc < 0 && rc != HP_INCOMPLETE ? hp_status(rc) : 431);
}

/* The path and query of a target: origin-form as it is, absolute-form past its authority (RFC 9112 3.2.2). */
static hp_str origin_path(hp_str t)
{
    size_t skip = t.len > 7 && !strncasecmp(t.ptr, "http://", 7) ? 7 : t.len > 8 && !strncasecmp(t.ptr, "https://", 8) ? 8 : 0;
    if (!skip)
        return t;
    size_t i = skip;
    while (i < t.len && t.ptr[i] != '/' && t.ptr[i] != '?')
        i++;
    return (hp_str){t.ptr + i, t.len - i};
}

/* Keeps the request line (for the log) and the headers a file response needs past this callback. */
static int copy_request(conn *c, const hp_message *m, const char *head, size_t len)
{
    /* skip the empty line a client may send before the request line (RFC 9112 2.2) */
    while (len && (*head == '\r' || *head == '\n'))
        head++, len--;
    const char *nl = memchr(head, '\n', len);
    size_t line = nl ? (size_t)(nl - head) : len;
    if (line && head[line - 1] == '\r')
        line--;
    if (!(c->reqline = strndup(head, line)))
        return -1;
    for (int i = 0; i < 4; i++) {
        const hp_field *f = hp_find(m, hdr_names[i]);
        if (f && !(c->hdr[i] = strndup(f->value.ptr, f->value.len)))
            return -1;
    }
    return 0;
}

static void on_head(ts_iostream *s, int status, const char *data, size_t len, void *arg)
{
    conn *c = arg;
    c->head_only = false;
    if (status == TS_EUNSATISFIABLE) {
        /* the stream stayed open (see on_stream) for this answer */
        if (ts_iostream_read_bytes(s, MAX_HEAD, true, on_overlong_head, c) < 0)
            ts_iostream_close(s, 0);
        return;
    }
    if (status < 0)
        return;
    arm_idle(c);
    free_request(c);
    hp_field fields[MAX_FIELDS];
    hp_message m = {.fields = fields, .max_fields = MAX_FIELDS};
    ssize_t rc = hp_parse_request(data, len, &head_limits, &m);
    if (rc != (ssize_t)len) { /* HP_INCOMPLETE cannot be: the blank line was found */
        send_error(c, rc < 0 && rc != HP_INCOMPLETE ? hp_status(rc) : 400);
        return;
    }
    hp_str path = origin_path(m.target);
    bool slash = path.len == 0 || path.ptr[0] == '?'; /* "http://host" and "http://host?q" mean "/" */
    if (!(c->method = malloc(m.method.len + path.len + 3))) {
        ts_iostream_close(s, TS_ENOMEM);
        return;
    }
    c->path = c->method + m.method.len + 1;
    memcpy(c->method, m.method.ptr, m.method.len);
    c->method[m.method.len] = '\0';
    c->path[0] = '/';
    memcpy(c->path + slash, path.ptr, path.len);
    c->path[slash + path.len] = '\0';
    if (copy_request(c, &m, data, len) < 0) {
        ts_iostream_close(s, TS_ENOMEM);
        return;
    }
    c->keep_alive = m.keep_alive;
    const hp_field *expect = hp_find(&m, "Expect");
    bool body = m.framing != HP_BODY_NONE && (m.framing != HP_BODY_LENGTH || m.length <= MAX_BODY);
    if (expect && !hp_str_eq(expect->value, "100-continue")) {
        send_error(c, 417);
        return;
    }
    /* a client that asked for 100 Continue sends the body only after it, or after a pause (RFC 9110 10.1.1) */
    if (expect && body && m.minor >= 1 && ts_iostream_write(s, "HTTP/1.1 100 Continue\r\n\r\n", 25, NULL, NULL) < 0) {
        ts_iostream_close(s, 0);
        return;
    }
    if (c->path[0] != '/') { /* origin form only: this is no proxy */
        send_error(c, 400);
    } else if (m.framing == HP_BODY_CHUNKED) {
        c->body_len = 0;
        read_chunk_line(c);
    } else if (m.framing == HP_BODY_LENGTH && m.length > MAX_BODY) {
        send_error(c, 413);
    } else if (m.framing == HP_BODY_LENGTH) {
        if (ts_iostream_read_bytes(s, (size_t)m.length, false, on_body, c) < 0)
            ts_iostream_close(s, 0);
    } else {
        respond(c, NULL, 0);
    }
}

static void read_request(conn *c)
{
    if (ts_iostream_read_until_regex(c->s, "\r?\n\r?\n", MAX_HEAD, on_head, c) < 0)
        ts_iostream_close(c->s, 0);
}

static int on_stream(ts_tcpserver *server, ts_iostream *s, const struct sockaddr *addr, socklen_t addrlen,
                     void *arg)
{
    (void)server, (void)arg;
    conn *c = calloc(1, sizeof *c);
    if (!c)
        return TS_ENOMEM;
    c->s = s;
    if (getnameinfo(addr, addrlen, c->peer, sizeof c->peer, NULL, 0, NI_NUMERICHOST) != 0)
        snprintf(c->peer, sizeof c->peer, "-"); /* e.g. a unix socket */
    c->next = g_conns.next;
    c->prev = &g_conns;
    g_conns.next->prev = c;
    g_conns.next = c;
    ts_iostream_set_close_callback(s, on_close, c);
    ts_iostream_set_close_on_unsatisfiable(s, false); /* so an oversized head can get its 431 */
    arm_idle(c);
    read_request(c);
    return 0;
}

/* ---- main ------------------------------------------------------------------------- */

static void stop_loop(ts_ioloop *loop, void *arg)
{
    (void)arg;
    ts_ioloop_stop(loop);
}

static void on_signal(int sig)
{
    (void)sig;
    ts_ioloop_add_callback_from_signal(g_loop, stop_loop, NULL);
}

static void usage(FILE *out, const char *prog)
{
    fprintf(out,
            "usage: %s PORT [options]\n"
            "A keep-alive HTTP/1.1 server. Without --root, GET / answers a short greeting;\n"
            "with it, files and directories under DIR are served (index.html or a listing,\n"
            "single byte ranges, ETag / Last-Modified and 304s, HEAD). POST /echo returns\n"
            "the request body. Paths never leave DIR: \"..\" above it is a 400, and a\n"
            "symbolic link is followed only to a file inside DIR (else 403).\n"
            "  --address ADDR       address to listen on (default 127.0.0.1)\n"
            "  --root DIR           serve files from DIR\n"
            "  --tls CERT KEY       serve HTTPS with this certificate and key (PEM)\n"
            "  --processes N        fork N processes sharing the port (0: one per CPU)\n"
            "  --idle-timeout S     close connections idle for S seconds (default 30)\n"
            "  --access-log FILE    one common-log-format line per request to FILE (-: stdout)\n"
            "  --mime-types FILE    media types by extension (default /etc/mime.types;\n"
            "                       a small built-in table covers what it lacks)\n",
            prog);
}

int main(int argc, char **argv)
{
    const char *address = "127.0.0.1", *cert = NULL, *key = NULL, *root = NULL, *log_path = NULL;
    const char *mime_path = "/etc/mime.types";
    bool mime_given = false;
    int port = -1, processes = 1;
    const char *prog = "http_server";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout, argv[0]);
            return 0;
        } else if (!strcmp(a, "--address")) {
            if (!(address = ex_option_value(prog, argc, argv, &i)))
                return EX_USAGE_STATUS;
        } else if (!strcmp(a, "--root")) {
            if (!(root = ex_option_value(prog, argc, argv, &i)) || ex_check_directory(prog, "--root", root) < 0)
                return EX_USAGE_STATUS;
        } else if (!strcmp(a, "--tls")) {
            if (i + 2 >= argc)
                return ex_usage_error(prog, "option '--tls' needs CERT and KEY");
            cert = argv[++i];
            key = argv[++i];
        } else if (!strcmp(a, "--processes")) {
            if (!(v = ex_option_value(prog, argc, argv, &i)) || ex_parse_int(prog, "--processes", v, 0, 1024, &processes) < 0)
                return EX_USAGE_STATUS;
        } else if (!strcmp(a, "--idle-timeout")) {
            if (!(v = ex_option_value(prog, argc, argv, &i)) ||
                ex_parse_seconds(prog, "--idle-timeout", v, &g_cfg.idle_timeout) < 0)
                return EX_USAGE_STATUS;
        } else if (!strcmp(a, "--access-log")) {
            if (!(log_path = ex_option_value(prog, argc, argv, &i)))
                return EX_USAGE_STATUS;
        } else if (!strcmp(a, "--mime-types")) {
            if (!(mime_path = ex_option_value(prog, argc, argv, &i)))
                return EX_USAGE_STATUS;
            mime_given = true;
        } else if (a[0] == '-' && a[1]) {
            return ex_usage_error(prog, "unknown option '%s'", a);
        } else if (port >= 0) {
            return ex_usage_error(prog, "unexpected argument '%s'", a);
        } else if (ex_parse_port(prog, a, &port) < 0) {
            return EX_USAGE_STATUS;
        }
    }
    if (port < 0)
        return ex_usage_error(prog, "missing PORT");
    static char root_real[PATH_MAX];
    if (root) {
        if (!realpath(root, root_real)) {
            fprintf(stderr, "http_server: --root %s: %s\n", root, strerror(errno));
            return 2;
        }
        g_cfg.root = root_real;
    }
    if (hf_mime_load(mime_path) < 0 && mime_given) {
        fprintf(stderr, "http_server: --mime-types %s: %s\n", mime_path, strerror(errno));
        return 2;
    }
    if (log_path) {
        g_cfg.access_log = strcmp(log_path, "-") ? fopen(log_path, "ae") : stdout;
        if (!g_cfg.access_log) {
            fprintf(stderr, "http_server: --access-log %s: %s\n", log_path, strerror(errno));
            return 2;
        }
        setvbuf(g_cfg.access_log, NULL, _IOLBF, 0); /* whole lines, as they happen */
    }
    SSL_CTX *ctx = NULL;
    if (cert) {
        int err = 0;
        ts_ssl_context_options o = {.size = sizeof o, .server_side = true, .cert_file = cert, .key_file = key};
        ctx = ts_ssl_context_new(&o, &err);
        if (!ctx) {
            fprintf(stderr, "http_server: TLS setup failed: %s (%s)\n", ts_strerror(err),
                    ts_ssl_last_error_detail() ? ts_ssl_last_error_detail() : "");
            return 1;
        }
    }
    signal(SIGPIPE, SIG_IGN);
    g_loop = ts_ioloop_new();
    ts_tcpserver_options so = {.size = sizeof so, .ssl_ctx = ctx};
    ts_tcpserver *server = ts_tcpserver_new(g_loop, on_stream, NULL, &so);
    if (ctx)
        SSL_CTX_free(ctx);
    int rc = server ? ts_tcpserver_bind(server, port, address, AF_UNSPEC, 4096, 0) : TS_ENOMEM;
    if (rc == 0)
        rc = ts_tcpserver_start(server, processes, 100);
    if (rc < 0) {
        fprintf(stderr, "http_server: cannot listen on %s:%d: %s\n", address, port, ts_strerror(rc));
        ts_tcpserver_free(server);
        ts_ioloop_free(g_loop, false);
        return 1;
    }
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    if (ts_task_id() <= 0)
        fprintf(stderr, "http_server: listening on %s://%s:%d/%s%s\n", ctx ? "https" : "http", address,
                ts_tcpserver_port(server), g_cfg.root ? " serving " : "", g_cfg.root ? g_cfg.root : "");
    ts_ioloop_start(g_loop);
    ts_tcpserver_free(server);
    /* close what is left; each close callback frees its connection */
    for (conn *c = g_conns.next; c != &g_conns; c = c->next)
        ts_iostream_close(c->s, 0);
    for (int i = 0; i < 100 && g_conns.next != &g_conns; i++) {
        ts_future *never = ts_future_new(g_loop);
        ts_ioloop_run_sync(g_loop, never, 0.01);
        ts_future_unref(never);
    }
    ts_ioloop_free(g_loop, false);
    hf_mime_free();
    if (g_cfg.access_log && g_cfg.access_log != stdout)
        fclose(g_cfg.access_log);
    return 0;
}
