/*
 * http_server: a small keep-alive HTTP/1.1 server on TCPServer.
 *
 * Per connection: the request head is read with read_until_regex for a blank
 * line (with a size limit) and parsed strictly by http_parse.c (RFC 9112:
 * every malformed or ambiguous framing is refused with 400, 414, 431, 501 or
 * 505 and the connection closed); a Content-Length body is read with
 * read_bytes, a chunked one chunk by chunk (its trailers checked and
 * dropped); then the response is written; pipelined requests are answered in order because the
 * next request is read only once the previous response is queued (or, for a
 * file, fully handed to the kernel). While more than EX_WRITE_HIGH_WATER
 * (64 KiB) of answers is queued, the next request waits until they reached
 * the kernel (example_flow.h): a client that pipelines without reading costs
 * at most that plus one response, and one read chunk of its requests. Files
 * stream in chunks with back pressure, never held whole in memory.
 *
 *   http_server PORT [--address ADDR] [--root DIR] [--tls CERT KEY]
 *                    [--processes N] [--idle-timeout S]
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
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
#include "http_parse.h"

#define MAX_HEAD (16 * 1024)  /* the request head: 431 past it */
#define MAX_LINE HP_MAX_LINE  /* the request line: 414 past it */
#define MAX_FIELDS 100        /* header fields: 431 past them */
#define MAX_BODY (16 * 1024 * 1024)
#define FILE_CHUNK (256 * 1024)
#define HELLO "Hello from libtstream!\n"

typedef struct config {
    const char *root; /* realpath of --root, or NULL */
    double idle_timeout;
} config;

static config g_cfg = {NULL, 30.0};
static ts_ioloop *g_loop;

typedef struct conn {
    struct conn *prev, *next;
    ts_iostream *s;
    uint64_t idle_timer;
    bool keep_alive;
    bool head_only;
    bool linger; /* the peer may still be sending: drain before closing */
    int file_fd;
    off_t file_left;
    char *method, *path; /* copied from the head: a body read may come between head and response */
    char *body;          /* a chunked request body, gathered */
    size_t body_len, body_cap, trailer_bytes;
} conn;

static conn g_conns = {.prev = &g_conns, .next = &g_conns};

static void read_request(conn *c);

/* ---- connection lifetime ------------------------------------------------- */

static void on_idle(ts_ioloop *loop, void *arg)
{
    (void)loop;
    conn *c = arg;
    c->idle_timer = 0;
    ts_iostream_close(c->s, TS_ETIMEDOUT);
}

static void arm_idle(conn *c)
{
    if (c->idle_timer)
        ts_ioloop_remove_timeout(g_loop, c->idle_timer);
    c->idle_timer = ts_ioloop_call_later(g_loop, g_cfg.idle_timeout, on_idle, c);
}

/* The close callback runs once, after every pending callback was told: free the connection here. */
static void on_close(ts_iostream *s, void *arg)
{
    conn *c = arg;
    if (c->idle_timer)
        ts_ioloop_remove_timeout(g_loop, c->idle_timer);
    if (c->file_fd >= 0)
        close(c->file_fd);
    free(c->method);
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
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
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
        if (c->idle_timer)
            ts_ioloop_remove_timeout(g_loop, c->idle_timer);
        c->idle_timer = ts_ioloop_call_later(g_loop, 2.0, on_idle, c);
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

static void send_head(conn *c, int status, const char *ctype, long long length)
{
    char head[512];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d %s\r\nServer: libtstream-http_server\r\nContent-Type: %s\r\n"
                     "Content-Length: %lld\r\n%s\r\n",
                     status, reason(status), ctype, length, c->keep_alive ? "" : "Connection: close\r\n");
    ts_iostream_write(c->s, head, (size_t)n, NULL, NULL);
}

static void send_simple(conn *c, int status, const char *body)
{
    if (status >= 400 && status != 404 && status != 405) {
        c->keep_alive = false;
        c->linger = true;
    }
    send_head(c, status, "text/plain; charset=utf-8", (long long)strlen(body));
    if (!c->head_only)
        ts_iostream_write(c->s, body, strlen(body), NULL, NULL);
    finish(c);
}

static void send_error(conn *c, int status)
{
    char body[128];
    snprintf(body, sizeof body, "%d %s\n", status, reason(status));
    send_simple(c, status, body);
}

/* ---- files ------------------------------------------------------------------ */

static void file_pump(conn *c);

static void on_chunk_written(ts_iostream *s, int status, void *arg)
{
    (void)s;
    if (status < 0)
        return; /* closing: on_close cleans up */
    /*
     * The client is reading: that is not idleness. Without this, a download
     * longer than --idle-timeout was cut off midway however fast it went; a
     * client that stops reading still gets closed one timeout after it stopped.
     */
    arm_idle(arg);
    file_pump(arg);
}

/* Keeps about two chunks in flight: read one, queue it, continue when it reached the kernel. */
static void file_pump(conn *c)
{
    while (c->file_left > 0) {
        size_t want = c->file_left < FILE_CHUNK ? (size_t)c->file_left : FILE_CHUNK;
        char *buf = malloc(want);
        ssize_t n = buf ? read(c->file_fd, buf, want) : -1;
        if (n <= 0) {
            free(buf);
            ts_iostream_close(c->s, n < 0 ? -errno : TS_EUNSATISFIABLE);
            return;
        }
        c->file_left -= n;
        bool wait = ts_iostream_write_buffer_size(c->s) + (size_t)n > 2 * FILE_CHUNK;
        if (ts_iostream_write_owned(c->s, buf, (size_t)n, free, wait ? on_chunk_written : NULL, c) < 0) {
            free(buf);
            return;
        }
        if (wait)
            return;
    }
    close(c->file_fd);
    c->file_fd = -1;
    finish(c);
}

static int hexval(int ch)
{
    return isdigit(ch) ? ch - '0' : isxdigit(ch) ? (tolower(ch) - 'a' + 10) : -1;
}

/* Maps a request path under --root; returns an open fd or a negative HTTP status. */
static int open_under_root(const char *path, off_t *size)
{
    char decoded[PATH_MAX], full[2 * PATH_MAX], real[PATH_MAX];
    size_t j = 0;
    for (size_t i = 0; path[i] && path[i] != '?'; i++) {
        if (j + 1 == sizeof decoded)
            return -414; /* never a shortened path: that names another file */
        if (path[i] == '%' && hexval(path[i + 1]) >= 0 && hexval(path[i + 2]) >= 0) {
            decoded[j++] = (char)(hexval(path[i + 1]) * 16 + hexval(path[i + 2]));
            i += 2;
        } else {
            decoded[j++] = path[i];
        }
    }
    decoded[j] = '\0';
    if (strlen(decoded) != j || strstr(decoded, "/../") || (j >= 3 && !strcmp(decoded + j - 3, "/..")))
        return -400;
    snprintf(full, sizeof full, "%s%s", g_cfg.root, decoded);
    if (!realpath(full, real))
        return -404;
    size_t rl = strlen(g_cfg.root);
    if (strncmp(real, g_cfg.root, rl) != 0 || (real[rl] != '/' && real[rl] != '\0'))
        return -403;
    struct stat st;
    if (stat(real, &st) < 0 || !S_ISREG(st.st_mode))
        return -404;
    int fd = open(real, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -403;
    *size = st.st_size;
    return fd;
}

/* ---- requests ------------------------------------------------------------ */

static void respond(conn *c, const char *body, size_t body_len)
{
    bool get = !strcmp(c->method, "GET"), head = !strcmp(c->method, "HEAD");
    c->head_only = head;
    if (!strcmp(c->path, "/echo") && !strcmp(c->method, "POST")) {
        send_head(c, 200, "application/octet-stream", (long long)body_len);
        ts_iostream_write(c->s, body, body_len, NULL, NULL);
        finish(c);
        return;
    }
    if (!get && !head) {
        send_error(c, 405);
        return;
    }
    if (!strcmp(c->path, "/") || !g_cfg.root) {
        if (strcmp(c->path, "/") != 0) {
            send_error(c, 404);
            return;
        }
        send_simple(c, 200, HELLO);
        return;
    }
    off_t size = 0;
    int fd = open_under_root(c->path, &size);
    if (fd < 0) {
        send_error(c, -fd);
        return;
    }
    send_head(c, 200, "application/octet-stream", (long long)size);
    if (head) {
        close(fd);
        finish(c);
        return;
    }
    c->file_fd = fd;
    c->file_left = size;
    file_pump(c);
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
    hp_field fields[MAX_FIELDS];
    hp_message m = {.fields = fields, .max_fields = MAX_FIELDS};
    ssize_t rc = hp_parse_request(data, len, &head_limits, &m);
    if (rc != (ssize_t)len) { /* HP_INCOMPLETE cannot be: the blank line was found */
        send_error(c, rc < 0 && rc != HP_INCOMPLETE ? hp_status(rc) : 400);
        return;
    }
    free(c->method);
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
    (void)server, (void)addr, (void)addrlen, (void)arg;
    conn *c = calloc(1, sizeof *c);
    if (!c)
        return TS_ENOMEM;
    c->s = s;
    c->file_fd = -1;
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
            "A keep-alive HTTP/1.1 server. GET / answers a short greeting; with --root,\n"
            "other paths serve files under DIR; POST /echo returns the request body.\n"
            "  --address ADDR       address to listen on (default 127.0.0.1)\n"
            "  --root DIR           serve files from DIR\n"
            "  --tls CERT KEY       serve HTTPS with this certificate and key (PEM)\n"
            "  --processes N        fork N processes sharing the port (0: one per CPU)\n"
            "  --idle-timeout S     close connections idle for S seconds (default 30)\n",
            prog);
}

int main(int argc, char **argv)
{
    const char *address = "127.0.0.1", *cert = NULL, *key = NULL, *root = NULL;
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
    return 0;
}
