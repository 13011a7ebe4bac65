/*
 * http_client: fetch one URL over HTTP/1.1 or HTTPS -- the seeds' callback
 * chain client, grown up.
 *
 *   http_client [options] URL          (http_client --help for the options)
 *
 * The chain, one callback per step, each starting the next:
 *
 *   start_request   TCPClient: resolve, connect, TLS handshake
 *   on_connect      write the request; read_until_regex(blank line)
 *   on_head         parse the status line and headers strictly, then the body:
 *     Content-Length   read_bytes_streaming                 -> on_length_done
 *     chunked          read_until("\r\n") -> on_chunk_size
 *                      -> read_bytes_streaming -> on_chunk_data
 *                      -> read_bytes(2) -> on_chunk_end -> ... -> on_trailer
 *     neither          read_until_close_streaming           -> on_close_done
 *   body_done       finish; or, for a redirect with -L, start_request again.
 *
 * Body bytes go to stdout or -o FILE as they arrive: the body is never held
 * whole in memory. One deadline timer on the loop bounds the whole fetch.
 *
 * What it does not do: keep-alive, compression, cookies, authentication,
 * proxies, HTTP/2.
 */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <netdb.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <tstream.h>
#include <tstream/ssl.h>
#include <tstream/tcpclient.h>

/* Exit codes (documented in --help). */
enum {
    HC_OK = 0,
    HC_INTERNAL = 1,  /* out of memory, unexpected library error */
    HC_USAGE = 2,     /* bad arguments or URL */
    HC_RESOLVE = 3,   /* the host name does not resolve */
    HC_CONNECT = 4,   /* connection refused or failed, or broken mid-transfer */
    HC_TLS = 5,       /* TLS setup, handshake or certificate verification */
    HC_TIMEOUT = 6,   /* --timeout expired */
    HC_PROTOCOL = 7,  /* malformed or truncated response */
    HC_HTTP = 8,      /* status >= 400 with --fail */
    HC_WRITE = 9,     /* cannot write the output */
    HC_REDIRECTS = 10 /* more than MAX_REDIRECTS redirects with -L */
};

#define MAX_HEAD (64 * 1024)     /* status line + headers */
#define MAX_CHUNK_LINE 1024      /* one chunk-size line, extensions included */
#define MAX_TRAILERS (64 * 1024) /* all trailer lines together */
#define MAX_REDIRECTS 5
#define PROGRESS_INTERVAL 0.1 /* seconds between progress bar updates */
#define HARD_STOP_GRACE 2.0   /* seconds a timed-out connect gets to wind down */

typedef struct options {
    const char *url;
    const char *method;  /* -X; NULL: GET, or POST with -d */
    const char *data;    /* -d */
    const char *outfile; /* -o; NULL or "-": stdout */
    const char *cacert;  /* --cacert */
    double timeout;      /* --timeout; 0: none */
    bool follow, include, fail, verbose, silent, insecure;
} options;

typedef struct url {
    bool tls;
    int port;
    char *host;   /* without IPv6 brackets */
    char *target; /* origin form: "/path?query", no fragment */
} url;

typedef enum body_mode { BODY_NONE, BODY_LENGTH, BODY_CHUNKED, BODY_CLOSE } body_mode;

typedef struct progress {
    bool enabled, drawn;
    double start, last;
    uint64_t done;
    int64_t total; /* -1: unknown */
} progress;

typedef struct client {
    const options *opt;
    ts_ioloop *loop;
    ts_tcpclient *tcp;
    SSL_CTX *ssl_ctx; /* made on the first https hop */
    FILE *out;        /* opened on the first byte of output */

    /* the current hop */
    url url;
    char *authority; /* "host[:port]" as in the Host header */
    const char *method;
    const char *data; /* NULL: no request body */
    int redirects;
    ts_iostream *stream;
    const char *phase; /* what we are doing, for timeout messages */

    /* the response being read */
    int status;
    char reason[128];
    char *location;
    body_mode mode;
    uint64_t length; /* BODY_LENGTH */
    uint64_t received;
    size_t trailer_bytes;

    /* the end */
    bool connecting, done, hard_stopped;
    int exit_code;
    double deadline;
    uint64_t deadline_timer, hard_timer;
    progress progress;
} client;

static void start_request(client *c);
static void read_chunk_size(client *c);
static void read_trailer(client *c);

/* ---- small helpers ----------------------------------------------------- */

static _Noreturn void oom(void)
{
    fputs("http_client: out of memory\n", stderr);
    exit(HC_INTERNAL);
}

static char *xasprintf(const char *fmt, ...) TS_PRINTF(1, 2);
static char *xasprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *s = n < 0 ? NULL : malloc((size_t)n + 1);
    if (!s)
        oom();
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

static char *xstrndup(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (!d)
        oom();
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

/* RFC 9110 tchar: the characters of a token (method, header name). */
static bool is_tchar(unsigned char ch)
{
    return isalnum(ch) || (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

static bool is_token(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!is_tchar((unsigned char)s[i]))
            return false;
    return n > 0;
}

/* ---- URLs -------------------------------------------------------------- */

static void url_free(url *u)
{
    free(u->host);
    free(u->target);
    memset(u, 0, sizeof *u);
}

/* The request target: a leading '/' ensured, unsafe bytes percent-encoded. */
static char *encode_target(const char *s, size_t n)
{
    char *out = malloc(3 * n + 2), *o = out;
    if (!out)
        oom();
    if (n == 0 || s[0] != '/')
        *o++ = '/';
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch <= 0x20 || ch >= 0x7f)
            o += sprintf(o, "%%%02X", ch);
        else
            *o++ = (char)ch;
    }
    *o = '\0';
    return out;
}

/* Parses "http[s]://host[:port][/path][?query][#fragment]". */
static int parse_url(const char *s, url *u, const char **why)
{
    memset(u, 0, sizeof *u);
    const char *sep = strstr(s, "://");
    size_t slen = sep ? (size_t)(sep - s) : 0;
    if (slen == 4 && strncasecmp(s, "http", 4) == 0)
        u->tls = false;
    else if (slen == 5 && strncasecmp(s, "https", 5) == 0)
        u->tls = true;
    else
        return *why = "only http:// and https:// URLs are supported", -1;
    const char *auth = sep + 3;
    size_t alen = strcspn(auth, "/?#");
    const char *auth_end = auth + alen, *host = auth, *host_end, *rest;
    if (memchr(auth, '@', alen))
        return *why = "user names and passwords in URLs are not supported", -1;
    if (*auth == '[') {
        const char *close = memchr(auth, ']', alen);
        if (!close)
            return *why = "unterminated IPv6 address", -1;
        host = auth + 1, host_end = close, rest = close + 1;
    } else {
        const char *colon = memchr(auth, ':', alen);
        host_end = colon ? colon : auth_end, rest = host_end;
    }
    if (host_end == host)
        return *why = "no host name", -1;
    for (const char *p = host; p < host_end; p++)
        if ((unsigned char)*p <= 0x20 || *p == 0x7f || *p == '[' || *p == '\\')
            return *why = "invalid character in the host name", -1;
    u->port = u->tls ? 443 : 80;
    if (rest < auth_end) {
        if (*rest != ':')
            return *why = "garbage after the host name", -1;
        long port = 0;
        for (const char *p = rest + 1; p < auth_end; p++) {
            if (!isdigit((unsigned char)*p) || (port = port * 10 + (*p - '0')) > 65535)
                return *why = "invalid port", -1;
        }
        if (rest + 1 < auth_end) {
            if (port == 0)
                return *why = "invalid port", -1;
            u->port = (int)port;
        }
    }
    u->host = xstrndup(host, (size_t)(host_end - host));
    u->target = encode_target(auth_end, strcspn(auth_end, "#"));
    return 0;
}

/* "host[:port]" with the port only when it is not the scheme's default. */
static char *authority_of(const url *u)
{
    bool v6 = strchr(u->host, ':') != NULL;
    const char *l = v6 ? "[" : "", *r = v6 ? "]" : "";
    if (u->port == (u->tls ? 443 : 80))
        return xasprintf("%s%s%s", l, u->host, r);
    return xasprintf("%s%s%s:%d", l, u->host, r, u->port);
}

/* RFC 3986 5.2.4 on the path part of an origin-form target, in place. */
static void remove_dot_segments(char *target)
{
    size_t plen = strcspn(target, "?"), i = 0;
    char *out = malloc(strlen(target) + 2), *o = out;
    if (!out)
        oom();
    while (i < plen) { /* target[i] == '/' */
        size_t j = i + 1;
        while (j < plen && target[j] != '/')
            j++;
        const char *seg = target + i + 1;
        size_t n = j - i - 1;
        if (n == 1 && seg[0] == '.') {
            if (j == plen)
                *o++ = '/';
        } else if (n == 2 && seg[0] == '.' && seg[1] == '.') {
            while (o > out && *--o != '/')
                ;
            if (j == plen)
                *o++ = '/';
        } else {
            memcpy(o, target + i, j - i);
            o += j - i;
        }
        i = j;
    }
    if (o == out)
        *o++ = '/';
    strcpy(o, target + plen);
    strcpy(target, out);
    free(out);
}

/* Resolves a Location header against the URL that answered with it. */
static int resolve_location(const url *base, const char *loc, url *out, const char **why)
{
    size_t i = 0;
    while (isalnum((unsigned char)loc[i]) || loc[i] == '+' || loc[i] == '-' || loc[i] == '.')
        i++;
    const char *scheme = base->tls ? "https" : "http";
    char *auth = authority_of(base), *full;
    if (i > 0 && isalpha((unsigned char)loc[0]) && loc[i] == ':') {
        full = xasprintf("%s", loc); /* absolute */
    } else if (loc[0] == '/' && loc[1] == '/') {
        full = xasprintf("%s:%s", scheme, loc); /* scheme-relative */
    } else if (loc[0] == '/') {
        full = xasprintf("%s://%s%s", scheme, auth, loc);
    } else {
        size_t plen = strcspn(base->target, "?"), dir = plen;
        if (loc[0] != '?' && loc[0] != '#' && loc[0] != '\0')
            while (base->target[dir - 1] != '/')
                dir--; /* relative path: replace the last segment */
        full = xasprintf("%s://%s%.*s%s", scheme, auth, (int)dir, base->target,
                         loc[0] == '\0' || loc[0] == '#' ? base->target + plen : loc);
    }
    int rc = parse_url(full, out, why);
    if (rc == 0)
        remove_dot_segments(out->target);
    free(full);
    free(auth);
    return rc;
}

/* ---- messages and the progress bar --------------------------------------- */

static void progress_clear(client *c)
{
    if (c->progress.drawn) {
        fputs("\r\033[K", stderr);
        c->progress.drawn = false;
    }
}

static void note(client *c, const char *fmt, ...) TS_PRINTF(2, 3);
static void note(client *c, const char *fmt, ...)
{
    if (!c->opt->verbose)
        return;
    progress_clear(c);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* Prints each line of a header block with a prefix ("> " or "< "). */
static void note_lines(client *c, const char *prefix, const char *data, size_t len)
{
    while (c->opt->verbose && len > 0) {
        const char *nl = memchr(data, '\n', len);
        size_t n = nl ? (size_t)(nl - data) + 1 : len, shown = n;
        while (shown > 0 && (data[shown - 1] == '\n' || data[shown - 1] == '\r'))
            shown--;
        if (shown > 0)
            note(c, "%s%.*s", prefix, (int)shown, data);
        data += n, len -= n;
    }
}

static void human_size(double v, char *buf, size_t n)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    while (v >= 1024 && u < 4)
        v /= 1024, u++;
    snprintf(buf, n, u ? "%.1f %s" : "%.0f %s", v, units[u]);
}

static void progress_start(client *c, int64_t total)
{
    progress *p = &c->progress;
    p->start = ts_ioloop_time(c->loop);
    p->last = 0;
    p->done = 0;
    p->total = total;
}

static void progress_draw(client *c, bool final)
{
    progress *p = &c->progress;
    double now = ts_ioloop_time(c->loop);
    if (!p->enabled || (!final && now - p->last < PROGRESS_INTERVAL))
        return;
    p->last = now;
    double elapsed = now - p->start, rate = elapsed > 0 ? (double)p->done / elapsed : 0;
    char done[32], total[32], speed[32], tail[48];
    human_size((double)p->done, done, sizeof done);
    human_size(rate, speed, sizeof speed);
    if (final)
        snprintf(tail, sizeof tail, "in %.1f s", elapsed);
    else if (p->total > 0 && rate > 0) {
        long eta = lround((double)(p->total - (int64_t)p->done) / rate);
        snprintf(tail, sizeof tail, "ETA %ld:%02ld", eta / 60, eta % 60);
    } else
        tail[0] = '\0';
    if (p->total > 0) {
        enum { WIDTH = 30 };
        char bar[WIDTH + 1];
        int fill = (int)((double)p->done * WIDTH / (double)p->total);
        fill = fill > WIDTH ? WIDTH : fill;
        memset(bar, '#', (size_t)fill);
        memset(bar + fill, '-', (size_t)(WIDTH - fill));
        bar[WIDTH] = '\0';
        human_size((double)p->total, total, sizeof total);
        fprintf(stderr, "\r[%s] %3d%%  %s / %s  %s/s  %s\033[K", bar, (int)(100 * p->done / (uint64_t)p->total),
                done, total, speed, tail);
    } else {
        fprintf(stderr, "\r%s  %s/s  %s\033[K", done, speed, tail);
    }
    p->drawn = true;
    if (final) {
        fputc('\n', stderr);
        p->drawn = false;
    }
}

/* ---- the end --------------------------------------------------------------- */

/*
 * Ends the fetch: the first call wins. Prints the message (if any), closes the
 * stream and stops the loop -- unless a connect is in flight, which cannot be
 * cancelled: then on_connect stops the loop when it arrives.
 */
static void finish(client *c, int code, const char *fmt, ...) TS_PRINTF(3, 4);
static void finish(client *c, int code, const char *fmt, ...)
{
    if (c->done)
        return;
    c->done = true;
    c->exit_code = code;
    if (fmt) {
        progress_clear(c);
        va_list ap;
        va_start(ap, fmt);
        fputs("http_client: ", stderr);
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
        va_end(ap);
    }
    if (c->stream) {
        ts_iostream_free(c->stream);
        c->stream = NULL;
    }
    if (!c->connecting)
        ts_ioloop_stop(c->loop);
}

/* The exit code for an error that ended a connect, read or write. */
static int exit_code_for(int err)
{
    switch (err) {
    case TS_ERESOLVE: return HC_RESOLVE;
    case TS_ESSL: return HC_TLS;
    case TS_ETIMEDOUT: return HC_TIMEOUT;
    case TS_ECLOSED:
    case TS_ETRUNCATED:
    case TS_EUNSATISFIABLE:
    case TS_EBUFFERFULL:
    case TS_EREGEX: return HC_PROTOCOL;
    case TS_ENOMEM: return HC_INTERNAL;
    default: return err > -4096 ? HC_CONNECT : HC_INTERNAL; /* -errno */
    }
}

/* A read failed: say what was being read and why. */
static void read_failed(client *c, ts_iostream *s, int status, const char *what)
{
    int err = status;
    if (err == TS_ECLOSED && ts_iostream_error(s) < 0)
        err = ts_iostream_error(s); /* the error that closed the stream */
    const char *detail = ts_iostream_error_detail(s);
    char got[96] = "";
    if (c->mode == BODY_LENGTH && c->received > 0)
        snprintf(got, sizeof got, " (%" PRIu64 " of %" PRIu64 " body bytes received)", c->received, c->length);
    if (err == TS_ECLOSED || err == TS_ETRUNCATED)
        finish(c, HC_PROTOCOL, "%s closed the connection in the middle of %s%s", c->authority, what, got);
    else if (err == TS_EUNSATISFIABLE)
        finish(c, HC_PROTOCOL, "malformed response from %s: %s is too long", c->authority, what);
    else
        finish(c, exit_code_for(err), "error reading %s from %s: %s%s%s%s", what, c->authority, ts_strerror(err),
               detail ? " (" : "", detail ? detail : "", detail ? ")" : "");
}

/* A timed-out connect did not end within HARD_STOP_GRACE: give up on it. */
static void on_hard_stop(ts_ioloop *loop, void *arg)
{
    client *c = arg;
    c->hard_timer = 0;
    c->hard_stopped = true;
    ts_ioloop_stop(loop);
}

static void on_deadline(ts_ioloop *loop, void *arg)
{
    client *c = arg;
    c->deadline_timer = 0;
    bool connecting = c->connecting;
    finish(c, HC_TIMEOUT, "timed out after %g s while %s %s", c->opt->timeout, c->phase, c->authority);
    if (connecting) /* TCPClient's own timeout ends it; this is the safety net */
        c->hard_timer = ts_ioloop_call_later(loop, HARD_STOP_GRACE, on_hard_stop, c);
}

/* ---- output ---------------------------------------------------------------- */

static const char *out_name(client *c)
{
    const char *f = c->opt->outfile;
    return f && strcmp(f, "-") != 0 ? f : "standard output";
}

static bool out_write(client *c, const void *data, size_t len)
{
    if (!c->out) {
        const char *f = c->opt->outfile;
        c->out = f && strcmp(f, "-") != 0 ? fopen(f, "wb") : stdout;
        if (!c->out) {
            finish(c, HC_WRITE, "cannot open %s: %s", f, strerror(errno));
            return false;
        }
    }
    if (len > 0 && fwrite(data, 1, len, c->out) != len) {
        finish(c, HC_WRITE, "cannot write to %s: %s", out_name(c), strerror(errno));
        return false;
    }
    return true;
}

/* ---- connecting and sending ---------------------------------------------- */

static bool make_ssl_ctx(client *c)
{
    const char *const alpn[] = {"http/1.1", NULL};
    ts_ssl_context_options so = {.size = sizeof so};
    so.ca_file = c->opt->cacert;
    so.verify = c->opt->insecure ? TS_SSL_VERIFY_NONE : TS_SSL_VERIFY_REQUIRED;
    so.alpn_protocols = alpn;
    int err = 0;
    c->ssl_ctx = ts_ssl_context_new(&so, &err);
    if (c->ssl_ctx)
        return true;
    if (err == TS_ESSL && c->opt->cacert)
        finish(c, HC_TLS, "cannot load CA certificates from %s: %s", c->opt->cacert, ts_ssl_last_error_detail());
    else if (err == TS_ESSL)
        finish(c, HC_TLS, "cannot set up TLS: %s", ts_ssl_last_error_detail());
    else
        finish(c, HC_INTERNAL, "cannot set up TLS: %s", ts_strerror(err));
    return false;
}

static void on_connect(int status, ts_iostream *s, const char *detail, void *arg);

static void start_request(client *c)
{
    free(c->authority);
    c->authority = authority_of(&c->url);
    c->phase = "connecting to";
    if (c->url.tls && !c->ssl_ctx && !make_ssl_ctx(c))
        return;
    ts_tcpclient_options o = {.size = sizeof o};
    o.ssl_ctx = c->url.tls ? c->ssl_ctx : NULL;
    o.server_hostname = c->url.host;
    if (c->opt->timeout > 0) {
        o.timeout = c->deadline - ts_ioloop_time(c->loop);
        if (o.timeout <= 0) {
            finish(c, HC_TIMEOUT, "timed out after %g s before connecting to %s", c->opt->timeout, c->authority);
            return;
        }
    }
    note(c, "* Connecting to %s port %d%s", c->url.host, c->url.port, c->url.tls ? " (TLS)" : "");
    c->connecting = true;
    int rc = ts_tcpclient_connect(c->tcp, c->url.host, c->url.port, &o, on_connect, c);
    if (rc < 0) {
        c->connecting = false;
        finish(c, exit_code_for(rc), "cannot connect to %s: %s", c->authority, ts_strerror(rc));
    }
}

static void report_connect_error(client *c, int status, const char *detail)
{
    const char *why = detail && *detail ? detail : ts_strerror(status);
    switch (status) {
    case TS_ERESOLVE:
        finish(c, HC_RESOLVE, "cannot resolve host '%s': %s", c->url.host, why);
        break;
    case TS_ETIMEDOUT:
        finish(c, HC_TIMEOUT, "timed out after %g s while connecting to %s", c->opt->timeout, c->authority);
        break;
    case TS_ESSL:
        if (!c->opt->insecure && (!detail || strcasestr(detail, "certificate")))
            finish(c, HC_TLS,
                   "TLS handshake with %s failed: %s\n"
                   "http_client: server certificate verification failed; --cacert FILE trusts another CA, "
                   "--insecure skips verification",
                   c->authority, why);
        else
            finish(c, HC_TLS, "TLS handshake with %s failed: %s", c->authority, why);
        break;
    default:
        finish(c, exit_code_for(status), "cannot connect to %s: %s", c->authority, why);
    }
}

static void note_connected(client *c, ts_iostream *s)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    char ip[NI_MAXHOST], port[NI_MAXSERV];
    if (ts_iostream_peer_address(s, &ss, &sl) == 0 &&
        getnameinfo((struct sockaddr *)&ss, sl, ip, sizeof ip, port, sizeof port, NI_NUMERICHOST | NI_NUMERICSERV) == 0)
        note(c, "* Connected to %s (%s) port %s", c->url.host, ip, port);
    if (c->opt->verbose && ts_iostream_is_ssl(s)) {
        ts_bytes *subject = ts_iostream_ssl_peer_subject(s);
        const char *alpn = ts_iostream_ssl_alpn_protocol(s);
        note(c, "* TLS %s, %s%s%s; server certificate %s%s", ts_iostream_ssl_version(s), ts_iostream_ssl_cipher(s),
             alpn ? ", ALPN " : "", alpn ? alpn : "", subject ? subject->data : "(none)",
             c->opt->insecure ? " NOT verified (--insecure)" : " verified");
        ts_bytes_free(subject);
    }
}

static void read_head(client *c);

static void on_connect(int status, ts_iostream *s, const char *detail, void *arg)
{
    client *c = arg;
    c->connecting = false;
    if (c->done) { /* timed out meanwhile: finish() left the loop to us */
        if (s)
            ts_iostream_free(s);
        ts_ioloop_remove_timeout(c->loop, c->hard_timer);
        c->hard_timer = 0;
        ts_ioloop_stop(c->loop);
        return;
    }
    if (status < 0) {
        report_connect_error(c, status, detail);
        return;
    }
    c->stream = s;
    note_connected(c, s);

    bool has_body = c->data || !strcmp(c->method, "POST") || !strcmp(c->method, "PUT") || !strcmp(c->method, "PATCH");
    size_t data_len = c->data ? strlen(c->data) : 0;
    char length[96] = "";
    if (has_body)
        snprintf(length, sizeof length,
                 "Content-Length: %zu\r\nContent-Type: application/x-www-form-urlencoded\r\n", data_len);
    char *head = xasprintf("%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: tstream-http_client/%s\r\n"
                           "Accept: */*\r\nConnection: close\r\n%s\r\n",
                           c->method, c->url.target, c->authority, ts_version(), length);
    note_lines(c, "> ", head, strlen(head));
    int rc = ts_iostream_write(s, head, strlen(head), NULL, NULL);
    if (rc == 0 && data_len > 0)
        rc = ts_iostream_write(s, c->data, data_len, NULL, NULL);
    free(head);
    if (rc < 0) {
        finish(c, exit_code_for(rc), "cannot send the request to %s: %s", c->authority, ts_strerror(rc));
        return;
    }
    read_head(c);
}

/* ---- the response head ---------------------------------------------------- */

static void on_head(ts_iostream *s, int status, const char *data, size_t len, void *arg);

static void read_head(client *c)
{
    c->phase = "waiting for the response from";
    int rc = ts_iostream_read_until_regex(c->stream, "\r?\n\r?\n", MAX_HEAD, on_head, c);
    if (rc < 0)
        finish(c, exit_code_for(rc), "cannot read from %s: %s", c->authority, ts_strerror(rc));
}

/* "HTTP/1.x SP 3DIGIT [SP reason]" */
static bool parse_status_line(client *c, const char *l, size_t n)
{
    if (n < 12 || memcmp(l, "HTTP/1.", 7) != 0 || !isdigit((unsigned char)l[7]) || l[8] != ' ')
        return false;
    for (int i = 9; i < 12; i++)
        if (!isdigit((unsigned char)l[i]))
            return false;
    if (n > 12 && l[12] != ' ')
        return false;
    c->status = (l[9] - '0') * 100 + (l[10] - '0') * 10 + (l[11] - '0');
    size_t rlen = n > 13 ? n - 13 : 0;
    snprintf(c->reason, sizeof c->reason, "%.*s", (int)rlen, l + 13);
    return c->status >= 100 && c->status <= 599;
}

/* Content-Length: 1*DIGIT, or a list of identical values ("5, 5"). */
static bool parse_length(const char *v, size_t n, uint64_t *out, bool seen)
{
    size_t i = 0;
    for (;;) {
        while (i < n && (v[i] == ' ' || v[i] == '\t'))
            i++;
        if (i == n || !isdigit((unsigned char)v[i]))
            return false;
        uint64_t x = 0;
        for (; i < n && isdigit((unsigned char)v[i]); i++) {
            if (x > (UINT64_MAX - 9) / 10)
                return false;
            x = x * 10 + (uint64_t)(v[i] - '0');
        }
        if (seen && x != *out)
            return false;
        *out = x, seen = true;
        while (i < n && (v[i] == ' ' || v[i] == '\t'))
            i++;
        if (i == n)
            return true;
        if (v[i++] != ',')
            return false;
    }
}

/* Whether the last coding in a Transfer-Encoding value is "chunked". */
static bool last_coding_is_chunked(const char *v, size_t n)
{
    while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
        n--;
    size_t start = n;
    while (start > 0 && v[start - 1] != ',' && v[start - 1] != ' ' && v[start - 1] != '\t')
        start--;
    return n - start == 7 && strncasecmp(v + start, "chunked", 7) == 0;
}

/* Parses the whole head strictly; on error calls finish() and returns false. */
static bool parse_head(client *c, const char *data, size_t len)
{
    const char *p = data, *end = data + len, *bad = NULL;
    bool first = true, have_length = false, have_te = false, chunked = false;
    free(c->location);
    c->location = NULL;
    c->length = 0;
    while (p < end && !bad) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = (size_t)(nl - p);
        const char *l = p;
        p = nl + 1;
        if (n > 0 && l[n - 1] == '\r')
            n--;
        if (memchr(l, '\r', n) || memchr(l, '\0', n)) {
            bad = "stray CR or NUL byte";
        } else if (first) {
            first = false;
            if (!parse_status_line(c, l, n))
                bad = "invalid status line";
        } else if (n == 0) {
            if (p != end)
                bad = "data after the blank line";
        } else if (l[0] == ' ' || l[0] == '\t') {
            bad = "obsolete header line folding";
        } else {
            const char *colon = memchr(l, ':', n);
            if (!colon || !is_token(l, (size_t)(colon - l))) {
                bad = "invalid header line";
                break;
            }
            size_t nlen = (size_t)(colon - l);
            const char *v = colon + 1, *ve = l + n;
            while (v < ve && (*v == ' ' || *v == '\t'))
                v++;
            while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
                ve--;
            for (const char *q = v; q < ve && !bad; q++)
                if (((unsigned char)*q < 0x20 && *q != '\t') || *q == 0x7f)
                    bad = "control character in a header value";
            size_t vlen = (size_t)(ve - v);
            if (nlen == 14 && !strncasecmp(l, "content-length", 14)) {
                if (!parse_length(v, vlen, &c->length, have_length))
                    bad = "invalid Content-Length";
                have_length = true;
            } else if (nlen == 17 && !strncasecmp(l, "transfer-encoding", 17)) {
                have_te = true;
                chunked = last_coding_is_chunked(v, vlen);
            } else if (nlen == 8 && !strncasecmp(l, "location", 8) && !c->location) {
                c->location = xstrndup(v, vlen);
            }
        }
    }
    if (!bad && have_te && have_length)
        bad = "both Transfer-Encoding and Content-Length";
    if (bad) {
        finish(c, HC_PROTOCOL, "malformed response from %s: %s", c->authority, bad);
        return false;
    }
    if (!strcmp(c->method, "HEAD") || c->status == 204 || c->status == 304 || c->status < 200)
        c->mode = BODY_NONE;
    else if (have_te)
        c->mode = chunked ? BODY_CHUNKED : BODY_CLOSE;
    else
        c->mode = have_length ? BODY_LENGTH : BODY_CLOSE;
    return true;
}

static bool is_redirect(int status)
{
    return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

static void follow_redirect(client *c)
{
    url next;
    const char *why = NULL;
    if (resolve_location(&c->url, c->location, &next, &why) < 0) {
        finish(c, HC_PROTOCOL, "cannot follow the redirect to '%s': %s", c->location, why);
        return;
    }
    c->redirects++;
    if (c->status == 303 && strcmp(c->method, "HEAD") != 0)
        c->method = "GET", c->data = NULL;
    note(c, "* Redirect %d of at most %d: %s %s://%s%s", c->redirects, MAX_REDIRECTS, c->method,
         next.tls ? "https" : "http", c->authority, next.target);
    ts_iostream_free(c->stream); /* Connection: close -- the rest is not needed */
    c->stream = NULL;
    url_free(&c->url);
    c->url = next;
    start_request(c);
}

static void start_body(client *c);

static void on_head(ts_iostream *s, int status, const char *data, size_t len, void *arg)
{
    client *c = arg;
    if (c->done)
        return;
    if (status < 0) {
        c->mode = BODY_NONE;
        read_failed(c, s, status, "the response head");
        return;
    }
    note_lines(c, "< ", data, len);
    if (!parse_head(c, data, len))
        return;
    if (c->status == 101) {
        finish(c, HC_PROTOCOL, "malformed response from %s: unexpected 101 Switching Protocols", c->authority);
        return;
    }
    bool redirect = c->opt->follow && is_redirect(c->status) && c->location;
    bool failed = c->opt->fail && c->status >= 400;
    if (c->opt->include && !failed && !out_write(c, data, len))
        return;
    if (c->status < 200) { /* 100 Continue and friends: the real head follows */
        read_head(c);
    } else if (redirect && c->redirects >= MAX_REDIRECTS) {
        finish(c, HC_REDIRECTS, "too many redirects (more than %d); the last one was to %s", MAX_REDIRECTS,
               c->location);
    } else if (redirect) {
        follow_redirect(c);
    } else if (failed) {
        finish(c, HC_HTTP, "%s returned HTTP %d %s", c->authority, c->status, c->reason);
    } else {
        start_body(c);
    }
}

/* ---- the body -------------------------------------------------------------- */

static void body_done(client *c)
{
    c->progress.done = c->received;
    if (c->progress.enabled && c->mode != BODY_NONE)
        progress_draw(c, true);
    if (!out_write(c, NULL, 0))
        return;
    if (fflush(c->out) != 0) {
        finish(c, HC_WRITE, "cannot write to %s: %s", out_name(c), strerror(errno));
        return;
    }
    note(c, "* %" PRIu64 " body bytes, HTTP %d %s", c->received, c->status, c->reason);
    finish(c, HC_OK, NULL);
}

static void on_body_data(ts_iostream *s, const char *data, size_t len, void *arg)
{
    client *c = arg;
    (void)s;
    if (c->done || !out_write(c, data, len))
        return;
    c->received += len;
    c->progress.done = c->received;
    progress_draw(c, false);
}

static bool body_read_ok(client *c, ts_iostream *s, int status, const char *data, size_t len, const char *what)
{
    if (c->done)
        return false;
    if (len > 0) {
        on_body_data(s, data, len, c);
        if (c->done)
            return false;
    }
    if (status < 0) {
        read_failed(c, s, status, what);
        return false;
    }
    return true;
}

static void on_length_done(ts_iostream *s, int status, const char *data, size_t len, void *arg)
{
    client *c = arg;
    if (body_read_ok(c, s, status, data, len, "the body"))
        body_done(c);
}

static void on_close_done(ts_iostream *s, int status, const char *data, size_t len, void *arg)
{
    client *c = arg;
    if (!body_read_ok(c, s, status, data, len, "the body"))
        return;
    if (ts_iostream_error(s) == TS_ETRUNCATED)
        note(c, "* warning: the TLS peer closed without close_notify; the body may be truncated");
    body_done(c);
}

static void start_body(client *c)
{
    int rc = 0;
    c->received = 0;
    c->phase = "reading the body from";
    progress_start(c, c->mode == BODY_LENGTH ? (int64_t)c->length : -1);
    if (c->mode == BODY_NONE || (c->mode == BODY_LENGTH && c->length == 0))
        body_done(c);
    else if (c->mode == BODY_LENGTH)
        rc = ts_iostream_read_bytes_streaming(c->stream, (size_t)c->length, on_body_data, on_length_done, c);
    else if (c->mode == BODY_CHUNKED)
        read_chunk_size(c);
    else
        rc = ts_iostream_read_until_close_streaming(c->stream, on_body_data, on_close_done, c);
    if (rc < 0)
        finish(c, exit_code_for(rc), "cannot read the body from %s: %s", c->authority, ts_strerror(rc));
}

/* chunk-size [ BWS ";" chunk-ext ] -- without the CRLF */
static bool parse_chunk_size(const char *l, size_t n, uint64_t *size)
{
    size_t i = 0;
    uint64_t x = 0;
    for (; i < n && isxdigit((unsigned char)l[i]); i++) {
        if (i == 16)
            return false; /* more than 64 bits */
        int d = isdigit((unsigned char)l[i]) ? l[i] - '0' : (tolower((unsigned char)l[i]) - 'a' + 10);
        x = x << 4 | (uint64_t)d;
    }
    if (i == 0)
        return false;
    while (i < n && (l[i] == ' ' || l[i] == '\t'))
        i++;
    if (i < n && l[i] != ';')
        return false;
    for (; i < n; i++)
        if (((unsigned char)l[i] < 0x20 && l[i] != '\t') || l[i] == 0x7f)
            return false;
    *size = x;
    return true;
}

static void on_chunk_size(ts_iostream *s, int status, const char *data, size_t len, void *arg);
static void on_chunk_data(ts_iostream *s, int status, const char *data, size_t len, void *arg);
static void on_chunk_end(ts_iostream *s, int status, const char *data, size_t len, void *arg);
static void on_trailer(ts_iostream *s, int status, const char *data, size_t len, void *arg);

static void read_chunk_size(client *c)
{
    int rc = ts_iostream_read_until(c->stream, "\r\n", 2, MAX_CHUNK_LINE, on_chunk_size, c);
    if (rc < 0)
        finish(c, exit_code_for(rc), "cannot read the body from %s: %s", c->authority, ts_strerror(rc));
}

static void on_chunk_size(ts_iostream *s, int status, const char *data, size_t len, void *arg)
{
    client *c = arg;
    uint64_t size;
    if (c->done)
        return;
    if (status < 0) {
        read_failed(c, s, status, "a chunk-size line");
        return;
    }
    if (!parse_chunk_size(data, len - 2, &size)) {
        finish(c, HC_PROTOCOL, "malformed response from %s: invalid chunk-size line '%.*s'", c->authority,
               (int)(len - 2 > 40 ? 40 : len - 2), data);
        return;
    }
    if (size == 0) {
        c->trailer_bytes = 0;
        read_trailer(c);
        return;
    }
    int rc = ts_iostream_read_bytes_streaming(s, (size_t)size, on_body_data, on_chunk_data, c);
    if (rc < 0)
        finish(c, exit_code_for(rc), "cannot read a chunk from %s: %s", c->authority, ts_strerror(rc));
}

static void on_chunk_data(ts_iostream *s, int status, const char *data, size_t len, void *arg)
{
    client *c = arg;
    if (!body_read_ok(c, s, status, data, len, "a chunk"))
        return;
    int rc = ts_iostream_read_bytes(s, 2, false, on_chunk_end, c);
    if (rc < 0)
        finish(c, exit_code_for(rc), "cannot read a chunk from %s: %s", c->authority, ts_strerror(rc));
}

static void on_chunk_end(ts_iostream *s, int status, const char *data, size_t len, void *arg)
{
    client *c = arg;
    if (c->done)
        return;
    if (status < 0)
        read_failed(c, s, status, "a chunk");
    else if (len != 2 || memcmp(data, "\r\n", 2) != 0)
        finish(c, HC_PROTOCOL, "malformed response from %s: a chunk is not followed by CRLF", c->authority);
    else
        read_chunk_size(c);
}

static void read_trailer(client *c)
{
    int rc = ts_iostream_read_until(c->stream, "\r\n", 2, MAX_CHUNK_LINE * 8, on_trailer, c);
    if (rc < 0)
        finish(c, exit_code_for(rc), "cannot read the trailers from %s: %s", c->authority, ts_strerror(rc));
}

static void on_trailer(ts_iostream *s, int status, const char *data, size_t len, void *arg)
{
    client *c = arg;
    if (c->done)
        return;
    if (status < 0) {
        read_failed(c, s, status, "the trailers");
    } else if (len == 2) {
        body_done(c); /* the blank line that ends the chunked body */
    } else if ((c->trailer_bytes += len) > MAX_TRAILERS) {
        finish(c, HC_PROTOCOL, "malformed response from %s: trailers longer than %d bytes", c->authority,
               MAX_TRAILERS);
    } else {
        note_lines(c, "< ", data, len);
        read_trailer(c);
    }
}

/* ---- the command line ------------------------------------------------------ */

static void usage(FILE *f)
{
    fputs("usage: http_client [options] URL\n"
          "\n"
          "Fetches URL (http:// or https://) with one HTTP/1.1 request and streams the\n"
          "body to standard output.\n"
          "\n"
          "options:\n"
          "  -o, --output FILE   write the body to FILE instead of standard output\n"
          "  -i, --include       write the status line and headers before the body\n"
          "  -L, --location      follow redirects (301, 302, 303, 307, 308; at most 5);\n"
          "                      303 turns the request into a GET, the others keep it\n"
          "  -X, --request METHOD  use METHOD instead of GET (POST with -d)\n"
          "  -d, --data DATA     send DATA as the request body, with Content-Length\n"
          "  -f, --fail          fail (exit 8) without writing the body on status >= 400\n"
          "      --timeout SECONDS  give up on the whole fetch after SECONDS\n"
          "      --cacert FILE   trust the CA certificates in FILE (PEM) instead of the\n"
          "                      system store when verifying the server\n"
          "  -k, --insecure      do not verify the server's certificate (TLS still used)\n"
          "  -v, --verbose       show the connection, request and response on stderr\n"
          "  -s, --silent        no progress bar (it is shown only when stderr is a\n"
          "                      terminal and the body does not go to that terminal)\n"
          "  -h, --help          show this help\n"
          "\n"
          "exit status:\n"
          "   0  success (also for HTTP errors, unless --fail)\n"
          "   1  internal error (out of memory)\n"
          "   2  usage error: bad option or URL\n"
          "   3  the host name could not be resolved\n"
          "   4  connection refused or failed, or broken during the transfer\n"
          "   5  TLS error: handshake or certificate verification failed, bad --cacert\n"
          "   6  timed out (--timeout)\n"
          "   7  malformed or truncated response\n"
          "   8  HTTP status 400 or above, with --fail\n"
          "   9  cannot write the output\n"
          "  10  too many redirects (more than 5, with -L)\n",
          f);
}

/* Returns -1 to go on, or the exit code to end with at once. */
static int parse_args(int argc, char **argv, options *opt)
{
    enum { OPT_TIMEOUT = 256, OPT_CACERT };
    static const struct option longopts[] = {
        {"output", required_argument, NULL, 'o'},    {"include", no_argument, NULL, 'i'},
        {"location", no_argument, NULL, 'L'},        {"request", required_argument, NULL, 'X'},
        {"data", required_argument, NULL, 'd'},      {"fail", no_argument, NULL, 'f'},
        {"timeout", required_argument, NULL, OPT_TIMEOUT}, {"cacert", required_argument, NULL, OPT_CACERT},
        {"insecure", no_argument, NULL, 'k'},        {"verbose", no_argument, NULL, 'v'},
        {"silent", no_argument, NULL, 's'},          {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    int ch;
    char *end;
    while ((ch = getopt_long(argc, argv, "o:iLX:d:fkvsh", longopts, NULL)) != -1) {
        switch (ch) {
        case 'o': opt->outfile = optarg; break;
        case 'i': opt->include = true; break;
        case 'L': opt->follow = true; break;
        case 'X': opt->method = optarg; break;
        case 'd': opt->data = optarg; break;
        case 'f': opt->fail = true; break;
        case 'k': opt->insecure = true; break;
        case 'v': opt->verbose = true; break;
        case 's': opt->silent = true; break;
        case OPT_CACERT: opt->cacert = optarg; break;
        case OPT_TIMEOUT:
            errno = 0;
            opt->timeout = strtod(optarg, &end);
            if (errno || end == optarg || *end || !isfinite(opt->timeout) || opt->timeout <= 0 ||
                opt->timeout > 1e7) {
                fprintf(stderr, "http_client: --timeout wants a positive number of seconds, not '%s'\n", optarg);
                return HC_USAGE;
            }
            break;
        case 'h': usage(stdout); return HC_OK;
        default: fputs("http_client: try 'http_client --help'\n", stderr); return HC_USAGE;
        }
    }
    if (optind != argc - 1) {
        fputs(optind == argc ? "http_client: no URL given\n" : "http_client: more than one URL given\n", stderr);
        fputs("http_client: try 'http_client --help'\n", stderr);
        return HC_USAGE;
    }
    opt->url = argv[optind];
    if (opt->method && !is_token(opt->method, strlen(opt->method))) {
        fprintf(stderr, "http_client: invalid method '%s'\n", opt->method);
        return HC_USAGE;
    }
    return -1;
}

static void on_log(ts_log_level level, const char *msg, void *arg)
{
    client *c = arg;
    progress_clear(c);
    fprintf(stderr, "%s tstream: %s\n", level >= TS_LOG_ERROR ? "http_client:" : "*", msg);
}

/* Closes the output; a late write error still fails the fetch. */
static void close_output(client *c)
{
    if (!c->out)
        return;
    int rc = c->out == stdout ? fflush(stdout) : fclose(c->out);
    if (rc != 0 && c->exit_code == HC_OK) {
        fprintf(stderr, "http_client: cannot write to %s: %s\n", out_name(c), strerror(errno));
        c->exit_code = HC_WRITE;
    }
    c->out = NULL;
}

int main(int argc, char **argv)
{
    options opt = {0};
    int rc = parse_args(argc, argv, &opt);
    if (rc >= 0)
        return rc;
    client cl = {.opt = &opt, .exit_code = HC_INTERNAL, .phase = "starting"}, *c = &cl;
    const char *why = NULL;
    if (parse_url(opt.url, &c->url, &why) < 0) {
        fprintf(stderr, "http_client: bad URL '%s': %s\n", opt.url, why);
        url_free(&c->url);
        return HC_USAGE;
    }
    c->method = opt.method ? opt.method : opt.data ? "POST" : "GET";
    c->data = opt.data;
    signal(SIGPIPE, SIG_IGN); /* a closed stdout pipe is a write error (9), not death */
    bool to_stdout = !opt.outfile || !strcmp(opt.outfile, "-");
    c->progress.enabled = !opt.silent && isatty(STDERR_FILENO) && !(to_stdout && isatty(STDOUT_FILENO));
    ts_log_set_handler(on_log, c, opt.verbose ? TS_LOG_INFO : TS_LOG_ERROR);

    c->loop = ts_ioloop_new();
    c->tcp = c->loop ? ts_tcpclient_new(c->loop, NULL) : NULL;
    if (!c->tcp) {
        fputs("http_client: cannot create the event loop\n", stderr);
        return HC_INTERNAL;
    }
    if (opt.timeout > 0) {
        c->deadline = ts_ioloop_time(c->loop) + opt.timeout;
        c->deadline_timer = ts_ioloop_call_later(c->loop, opt.timeout, on_deadline, c);
    }
    start_request(c);
    ts_ioloop_start(c->loop); /* until finish() (or on_hard_stop) stops it */

    if (c->hard_stopped) {
        /* A connect is still in flight and cannot be cancelled: leave it to exit(). */
        close_output(c);
        return c->exit_code;
    }
    ts_ioloop_remove_timeout(c->loop, c->deadline_timer);
    ts_iostream_free(c->stream); /* NULL unless something went very wrong */
    ts_tcpclient_free(c->tcp);
    ts_ioloop_stop(c->loop); /* one more iteration: let the closed stream's callbacks run */
    ts_ioloop_start(c->loop);
    ts_ioloop_free(c->loop, false);
    if (c->ssl_ctx)
        SSL_CTX_free(c->ssl_ctx);
    ts_log_set_handler(NULL, NULL, TS_LOG_INFO);
    close_output(c);
    url_free(&c->url);
    free(c->authority);
    free(c->location);
    return c->exit_code;
}
