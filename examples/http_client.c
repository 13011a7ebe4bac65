/*
 * http_client: fetch one URL over HTTP/1.1 or HTTPS -- the seeds' callback
 * chain client, grown up. `http_client --help` lists the options and the
 * exit codes.
 *
 * The chain, one callback per step, each starting the next:
 *
 *   start_request   TCPClient: resolve, connect, TLS handshake  -> on_connect
 *   on_connect      write the request, read_until_regex(blank line) -> on_head
 *   on_head         parse the head strictly (http_parse.c), then the body:
 *     Content-Length   read_bytes_streaming                     -> on_length_done
 *     chunked          read_until("\n"): chunk-size line        -> on_chunk_size
 *                      read_bytes_streaming(size)               -> on_chunk_data
 *                      read_bytes(2) = CRLF                     -> on_chunk_end ...
 *                      after the 0-size chunk: read_until("\n")  -> on_trailer
 *     neither          read_until_close_streaming               -> on_close_done
 *   body_done       success. With -L a redirect goes back to start_request
 *                   straight from on_head, without reading its body.
 *
 * Body bytes go to stdout or -o FILE as they arrive: nothing holds the body
 * whole. One deadline timer on the loop bounds the whole fetch (--timeout).
 * What it does not do: keep-alive, compression, cookies, authentication
 * other than Basic, proxies, HTTP/2.
 */
#include <arpa/inet.h>
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
#include <sys/ioctl.h>
#include <unistd.h>

#include <openssl/evp.h>

#include <tstream.h>
#include <tstream/ssl.h>
#include <tstream/netutil.h>
#include <tstream/tcpclient.h>

#include "example_addr.h"
#include "example_args.h"
#include "http_parse.h"

/* The name the program was run as (tstream-http-client when installed), for its messages. */
static const char *g_prog = "http_client";

/* Exit codes; usage() says what each means. */
enum {
    HC_OK = 0, HC_INTERNAL = 1, HC_USAGE = 2, HC_RESOLVE = 3, HC_CONNECT = 4, HC_TLS = 5,
    HC_TIMEOUT = 6, HC_PROTOCOL = 7, HC_HTTP = 8, HC_WRITE = 9, HC_REDIRECTS = 10, HC_READ = 11
};

#define MAX_HEAD (64 * 1024)     /* status line + headers */
#define MAX_FIELDS 256           /* header fields in one head */
#define MAX_TRAILERS (64 * 1024) /* all trailer lines together */
#define MAX_REDIRECTS 5 /* --max-redirs: the default */
#define PROGRESS_INTERVAL 0.1 /* seconds between progress bar updates */
#define RATE_MIN_TIME 1.0     /* no rate or ETA before this much of the body's time */
#define RATE_SAMPLES 32       /* the rate is measured over the last this many frames (~3 s) */

typedef struct options {
    const char *url, *method, *data; /* method: -X (NULL: GET, HEAD with -I, or POST with -d) */
    size_t data_len;                 /* data: -d DATA, or what -d @FILE holds */
    char *data_buf, *remote_name;    /* owned: -d @FILE's contents, -O's file name */
    const char *outfile, *cacert;    /* outfile NULL or "-": stdout */
    const char *user, *agent;        /* -u user:password, -A */
    const char **headers;            /* -H, as given (checked) */
    size_t nheaders;
    const char **resolves;           /* --resolve, as given (checked) */
    size_t nresolves;
    double timeout;                  /* 0: none */
    int max_redirs;
    bool follow, include, fail, verbose, silent, insecure, head, use_remote_name;
} options;

typedef struct url {
    bool tls;
    int port;
    char *host;   /* without IPv6 brackets */
    char *target; /* origin form: "/path?query", no fragment */
} url;

typedef enum body_mode { BODY_NONE, BODY_LENGTH, BODY_CHUNKED, BODY_CLOSE } body_mode;

typedef struct client {
    const options *opt;
    ts_ioloop *loop;
    ts_tcpclient *tcp;
    ts_resolver *resolver, *resolver_base; /* -v, --resolve: ours, in front of the default one */
    SSL_CTX *ssl_ctx; /* made on the first https hop */
    FILE *out;        /* opened with the first byte of output */

    /* the current hop */
    url url;
    char *authority; /* "host[:port]", as in the Host header */
    char *origin;    /* "scheme://authority" of the first URL: -u goes there only */
    const char *method, *data;
    size_t data_len;
    const char *phase; /* what we are doing, for the timeout message */
    int redirects;
    ts_iostream *stream;

    /* the response */
    int status;
    char reason[128];
    char *location;
    body_mode mode;
    uint64_t length, received; /* length: Content-Length */
    size_t trailer_bytes;

    /* the progress bar */
    bool bar, bar_drawn;
    double bar_start, bar_last;
    int bar_width;                /* the terminal's columns (TIOCGWINSZ), again on SIGWINCH */
    double sample_t[RATE_SAMPLES]; /* (time, bytes) at the last frames: the rate's window */
    uint64_t sample_n[RATE_SAMPLES];
    unsigned samples;

    /* the end */
    bool done;
    int exit_code;
    double deadline;
    uint64_t deadline_timer;
} client;

/* ---- small helpers ------------------------------------------------------- */

static _Noreturn void oom(void)
{
    fprintf(stderr, "%s: out of memory\n", g_prog);
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

/* ---- URLs ------------------------------------------------------------------- */

static void url_free(url *u)
{
    free(u->host);
    free(u->target);
    memset(u, 0, sizeof *u);
}

/* Parses "http[s]://host[:port][/path][?query][#fragment]". */
static int parse_url(const char *s, url *u, const char **why)
{
    memset(u, 0, sizeof *u);
    const char *sep = strstr(s, "://");
    size_t slen = sep ? (size_t)(sep - s) : 0;
    if ((slen != 4 || strncasecmp(s, "http", 4)) && (slen != 5 || strncasecmp(s, "https", 5)))
        return *why = "only http:// and https:// URLs are supported", -1;
    u->tls = slen == 5;
    const char *auth = sep + 3, *auth_end = auth + strcspn(auth, "/?#"), *host = auth, *host_end, *rest;
    if (memchr(auth, '@', (size_t)(auth_end - auth)))
        return *why = "user names and passwords in URLs are not supported", -1;
    if (*auth == '[') {
        if (!(host_end = memchr(auth, ']', (size_t)(auth_end - auth))))
            return *why = "unterminated IPv6 address", -1;
        host = auth + 1, rest = host_end + 1;
    } else {
        host_end = memchr(auth, ':', (size_t)(auth_end - auth));
        rest = host_end = host_end ? host_end : auth_end;
    }
    if (host_end == host)
        return *why = "no host name", -1;
    for (const char *p = host; p < host_end; p++)
        if ((unsigned char)*p <= 0x20 || *p == 0x7f || *p == '[' || *p == '\\')
            return *why = "invalid character in the host name", -1;
    u->port = u->tls ? 443 : 80;
    if (rest < auth_end && *rest != ':')
        return *why = "garbage after the host name", -1;
    if (rest + 1 < auth_end) { /* an empty port means the default */
        long port = 0;
        for (const char *p = rest + 1; p < auth_end; p++)
            if (!isdigit((unsigned char)*p) || (port = port * 10 + (*p - '0')) > 65535)
                return *why = "invalid port", -1;
        if ((u->port = (int)port) == 0)
            return *why = "invalid port", -1;
    }
    u->host = xasprintf("%.*s", (int)(host_end - host), host);
    /* The target: a leading '/' ensured, unsafe bytes percent-encoded. */
    size_t n = strcspn(auth_end, "#");
    char *o = u->target = malloc(3 * n + 2);
    if (!o)
        oom();
    if (*auth_end != '/')
        *o++ = '/';
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)auth_end[i];
        if (ch <= 0x20 || ch >= 0x7f)
            o += sprintf(o, "%%%02X", ch);
        else
            *o++ = (char)ch;
    }
    *o = '\0';
    return 0;
}

/* "host[:port]", the port only when it is not the scheme's default. */
static char *authority_of(const url *u)
{
    bool v6 = strchr(u->host, ':') != NULL;
    if (u->port == (u->tls ? 443 : 80))
        return xasprintf("%s%s%s", v6 ? "[" : "", u->host, v6 ? "]" : "");
    return xasprintf("%s%s%s:%d", v6 ? "[" : "", u->host, v6 ? "]" : "", u->port);
}

/* RFC 3986 5.2.4 on the path of an origin-form target, in place. */
static void remove_dot_segments(char *target)
{
    size_t plen = strcspn(target, "?");
    char *out = malloc(strlen(target) + 2), *o = out;
    if (!out)
        oom();
    for (size_t i = 0, j; i < plen; i = j) { /* target[i] is a '/' */
        for (j = i + 1; j < plen && target[j] != '/'; j++)
            ;
        const char *seg = target + i + 1;
        if (j - i == 2 && seg[0] == '.') { /* "/." */
            if (j == plen)
                *o++ = '/';
        } else if (j - i == 3 && seg[0] == '.' && seg[1] == '.') { /* "/..": drop the last output segment */
            while (o > out && *--o != '/')
                ;
            if (j == plen)
                *o++ = '/';
        } else {
            memcpy(o, target + i, j - i);
            o += j - i;
        }
    }
    if (o == out)
        *o++ = '/';
    strcpy(o, target + plen);
    strcpy(target, out);
    free(out);
}

/* Resolves a Location header value against the URL that answered with it. */
static int resolve_location(const url *base, const char *loc, url *out, const char **why)
{
    size_t i = strspn(loc, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+-.");
    const char *scheme = base->tls ? "https" : "http";
    char *auth = authority_of(base), *full;
    if (i > 0 && isalpha((unsigned char)loc[0]) && loc[i] == ':')
        full = xasprintf("%s", loc); /* absolute */
    else if (loc[0] == '/' && loc[1] == '/')
        full = xasprintf("%s:%s", scheme, loc); /* scheme-relative */
    else if (loc[0] == '/')
        full = xasprintf("%s://%s%s", scheme, auth, loc);
    else { /* relative to the base path: "x" replaces its last segment, "?q" its query */
        size_t plen = strcspn(base->target, "?"), dir = plen;
        bool same = loc[0] == '\0' || loc[0] == '#';
        while (!same && loc[0] != '?' && base->target[dir - 1] != '/')
            dir--;
        full = xasprintf("%s://%s%.*s%s", scheme, auth, (int)dir, base->target, same ? base->target + plen : loc);
    }
    int rc = parse_url(full, out, why);
    if (rc == 0)
        remove_dot_segments(out->target);
    free(full);
    free(auth);
    return rc;
}

/* ---- messages, output and the progress bar --------------------------------- */

static void bar_clear(client *c)
{
    if (c->bar_drawn)
        fputs("\r\033[K", stderr);
    c->bar_drawn = false;
}

/* -v: a line on stderr. */
static void note(client *c, const char *fmt, ...) TS_PRINTF(2, 3);
static void note(client *c, const char *fmt, ...)
{
    if (!c->opt->verbose)
        return;
    bar_clear(c);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* -v: each line of a header block, with a prefix ("> " sent, "< " received). */
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

static const char *human(double v, char buf[static 32])
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    for (; v >= 1024 && u < 4; u++)
        v /= 1024;
    snprintf(buf, 32, u ? "%.1f %s" : "%.0f %s", v, units[u]);
    return buf;
}

static int terminal_width(void)
{
    struct winsize ws;
    return ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0 ? ws.ws_col : 80;
}

/* Bytes per second over the last frames, or -1 while there is too little to tell. */
static double bar_rate(client *c, double now)
{
    unsigned i = c->samples++ % RATE_SAMPLES, oldest = c->samples > RATE_SAMPLES ? c->samples % RATE_SAMPLES : 0;
    c->sample_t[i] = now;
    c->sample_n[i] = c->received;
    double span = now - c->sample_t[oldest];
    if (now - c->bar_start < RATE_MIN_TIME || span <= 0)
        return -1;
    return (double)(c->received - c->sample_n[oldest]) / span;
}

/*
 * "[#####-----]  42%  8.4 MiB / 20.0 MiB  12.3 MiB/s  ETA 0:01", ~10 times a
 * second, as wide as the terminal allows (the bar shrinks first, then the
 * line is cut); no rate or ETA in the first RATE_MIN_TIME seconds.
 */
static void bar_draw(client *c, bool final)
{
    double now = ts_ioloop_time(c->loop), elapsed = now - c->bar_start;
    if (!c->bar || (!final && now - c->bar_last < PROGRESS_INTERVAL))
        return;
    c->bar_last = now;
    double done = (double)c->received, rate = final ? (elapsed > 0 ? done / elapsed : 0) : bar_rate(c, now);
    char b1[32], b2[32], b3[32], rate_s[48] = "", tail[48] = "", line[256];
    if (rate >= 0)
        snprintf(rate_s, sizeof rate_s, "  %s/s", human(rate, b3));
    if (final)
        snprintf(tail, sizeof tail, "  in %.1f s", elapsed);
    int n = 0, width = (c->bar_width > 0 ? c->bar_width : 80) - 1; /* the last column would wrap */
    bool sized = c->mode == BODY_LENGTH && c->length > 0;
    if (sized && !final && rate > 0) {
        long eta = lround(((double)c->length - done) / rate);
        snprintf(tail, sizeof tail, "  ETA %ld:%02ld", eta / 60, eta % 60);
    }
    /* too wide: without the ETA (or time), then without the rate, then cut */
    for (int drop = 0; drop < 3; drop++) {
        const char *r = drop >= 2 ? "" : rate_s, *t = drop >= 1 ? "" : tail;
        if (sized)
            n = snprintf(line, sizeof line, " %3d%%  %s / %s%s%s", (int)(100 * c->received / c->length),
                         human(done, b1), human((double)c->length, b2), r, t);
        else
            n = snprintf(line, sizeof line, "%s%s%s", human(done, b1), r, t);
        if (n <= width)
            break;
    }
    int bar = width - n - 2 > 30 ? 30 : width - n - 2;
    if (sized && bar >= 5) {
        int fill = (int)(done * bar / (double)c->length);
        fill = fill > bar ? bar : fill;
        fprintf(stderr, "\r[%.*s%.*s]", fill, "##############################", bar - fill,
                "------------------------------");
    } else {
        fputc('\r', stderr);
    }
    fprintf(stderr, "%.*s\033[K", n < width ? n : (width > 0 ? width : 0), line);
    c->bar_drawn = !final;
    if (final)
        fputc('\n', stderr);
}

/* SIGWINCH, through the loop: measure the terminal again and redraw. */
static void on_winch(ts_ioloop *loop, void *arg)
{
    client *c = arg;
    (void)loop;
    c->bar_width = terminal_width();
    if (c->bar_drawn && !c->done) {
        c->bar_last = 0;
        bar_draw(c, false);
    }
}

static client *g_client; /* for the SIGWINCH handler */

static void on_sigwinch(int sig)
{
    (void)sig;
    ts_ioloop_add_callback_from_signal(g_client->loop, on_winch, g_client);
}

/* Ends the fetch; the first call wins. Prints the message (if any), closes the stream, stops the loop. */
static void finish(client *c, int code, const char *fmt, ...) TS_PRINTF(3, 4);
static void finish(client *c, int code, const char *fmt, ...)
{
    if (c->done)
        return;
    c->done = true;
    c->exit_code = code;
    if (fmt) {
        bar_clear(c);
        va_list ap;
        va_start(ap, fmt);
        fprintf(stderr, "%s: ", g_prog);
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
        va_end(ap);
    }
    if (c->stream)
        ts_iostream_free(c->stream);
    c->stream = NULL;
    ts_ioloop_stop(c->loop);
}

/* The exit code for an error that ended a connect, read or write. */
static int exit_code_for(int err)
{
    switch (err) {
    case TS_ERESOLVE: return HC_RESOLVE;
    case TS_ESSL: return HC_TLS;
    case TS_ETIMEDOUT: return HC_TIMEOUT;
    case TS_ECLOSED: case TS_ETRUNCATED: case TS_EUNSATISFIABLE: case TS_EBUFFERFULL: return HC_PROTOCOL;
    case TS_ENOMEM: return HC_INTERNAL;
    default: return err > -4096 ? HC_CONNECT : HC_INTERNAL; /* -errno: the network failed */
    }
}

/* A read or write could not even start (rc < 0). */
static void check_started(client *c, int rc, const char *what)
{
    if (rc < 0)
        finish(c, exit_code_for(rc), "cannot %s %s: %s", what, c->authority, ts_strerror(rc));
}

/* A read failed: say what was being read and why. */
static void read_failed(client *c, ts_iostream *s, int status, const char *what)
{
    int err = status == TS_ECLOSED && ts_iostream_error(s) < 0 ? ts_iostream_error(s) : status;
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

/* --timeout: whatever is under way (a connect cannot be cancelled) is left to exit(), see main(). */
static void on_deadline(ts_ioloop *loop, void *arg)
{
    client *c = arg;
    (void)loop;
    c->deadline_timer = 0;
    finish(c, HC_TIMEOUT, "timed out after %g s while %s %s", c->opt->timeout, c->phase, c->authority);
}

static const char *out_name(const client *c)
{
    const char *f = c->opt->outfile;
    return f && strcmp(f, "-") ? f : "standard output";
}

/* Writes to the output, opening it first; false (and finished) on error. */
static bool out_write(client *c, const void *data, size_t len)
{
    if (!c->out && !(c->out = strcmp(out_name(c), "standard output") ? fopen(c->opt->outfile, "wb") : stdout)) {
        finish(c, HC_WRITE, "cannot open %s: %s", c->opt->outfile, strerror(errno));
        return false;
    }
    if (len > 0 && fwrite(data, 1, len, c->out) != len) {
        finish(c, HC_WRITE, "cannot write to %s: %s", out_name(c), strerror(errno));
        return false;
    }
    return true;
}

/* ---- connecting and sending the request ------------------------------------ */

static void on_connect(int status, ts_iostream *s, const char *detail, void *arg);

static bool make_ssl_ctx(client *c)
{
    const char *const alpn[] = {"http/1.1", NULL};
    ts_ssl_context_options so = {.size = sizeof so, .ca_file = c->opt->cacert, .alpn_protocols = alpn};
    so.verify = c->opt->insecure ? TS_SSL_VERIFY_NONE : TS_SSL_VERIFY_REQUIRED;
    int err = 0;
    if ((c->ssl_ctx = ts_ssl_context_new(&so, &err)))
        return true;
    if (err == TS_ESSL && c->opt->cacert)
        finish(c, HC_TLS, "cannot load CA certificates from %s: %s", c->opt->cacert, ts_ssl_last_error_detail());
    else
        finish(c, exit_code_for(err), "cannot set up TLS: %s",
               err == TS_ESSL ? ts_ssl_last_error_detail() : ts_strerror(err));
    return false;
}

/* -v: each address as the TCP client tries it (its on_attempt hook). */
static void note_attempt(const struct sockaddr *addr, socklen_t addrlen, void *arg)
{
    client *c = arg;
    char text[TS_SOCKADDR_STRLEN];
    ts_sockaddr_str(addr, addrlen, text, sizeof text);
    note(c, "* Trying %s...", text);
}

static void start_request(client *c)
{
    free(c->authority);
    c->authority = authority_of(&c->url);
    c->phase = "connecting to";
    if (c->url.tls && !c->ssl_ctx && !make_ssl_ctx(c))
        return;
    ts_tcpclient_options o = {.size = sizeof o, .server_hostname = c->url.host};
    o.ssl_ctx = c->url.tls ? c->ssl_ctx : NULL;
    if (c->opt->verbose) {
        o.on_attempt = note_attempt;
        o.on_attempt_arg = c;
    }
    if (c->opt->timeout > 0 && (o.timeout = c->deadline - ts_ioloop_time(c->loop)) <= 0) {
        finish(c, HC_TIMEOUT, "timed out after %g s before connecting to %s", c->opt->timeout, c->authority);
        return;
    }
    note(c, "* Connecting to %s port %d%s", c->url.host, c->url.port, c->url.tls ? " (TLS)" : "");
    check_started(c, ts_tcpclient_connect(c->tcp, c->url.host, c->url.port, &o, on_connect, c), "connect to");
}

/* ---- the lookup: --resolve, and -v telling what it found -------------------------- */

typedef struct lookup {
    client *c;
    ts_resolve_cb cb;
    void *arg;
    ts_addrlist *pinned; /* --resolve's addresses, delivered from the loop */
} lookup;

/* An IP literal and a port as a connectable address. */
static bool set_address(ts_address *a, const char *ip, int port)
{
    struct sockaddr_in *in = (struct sockaddr_in *)&a->addr;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&a->addr;
    memset(a, 0, sizeof *a);
    if (inet_pton(AF_INET, ip, &in->sin_addr) == 1) {
        in->sin_family = AF_INET;
        in->sin_port = htons((uint16_t)port);
        a->addrlen = sizeof *in;
    } else if (inet_pton(AF_INET6, ip, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)port);
        a->addrlen = sizeof *in6;
    } else {
        return false;
    }
    a->family = a->addr.ss_family;
    return true;
}

/*
 * --resolve HOST:PORT:ADDR[,ADDR]... (curl's): false (with *why) when @p arg
 * is malformed. With @p out: *out gets the addresses, in order, when @p arg
 * names @p host and @p port, else stays NULL.
 */
static bool parse_resolve(const char *arg, const char *host, int port, ts_addrlist **out, const char **why)
{
    const char *c1 = strchr(arg, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
    char *end = NULL;
    long p = c2 ? strtol(c1 + 1, &end, 10) : 0;
    if (!c2 || c1 == arg || end != c2 || p < 1 || p > 65535 || !c2[1]) {
        *why = "it wants HOST:PORT:ADDR[,ADDR]...";
        return false;
    }
    bool match = out && p == port && strlen(host) == (size_t)(c1 - arg) && !strncasecmp(arg, host, (size_t)(c1 - arg));
    size_t n = 1;
    for (const char *a = c2 + 1; *a; a++)
        n += *a == ',';
    ts_addrlist *l = match ? ts_addrlist_new(n) : NULL;
    if (match && !l)
        oom();
    const char *a = c2 + 1;
    for (size_t i = 0; i < n; i++, a++) {
        size_t len = strcspn(a, ",");
        bool bracket = len >= 2 && a[0] == '[' && a[len - 1] == ']';
        char ip[INET6_ADDRSTRLEN];
        ts_address one;
        int w = snprintf(ip, sizeof ip, "%.*s", (int)len - 2 * bracket, a + bracket);
        if (w < 0 || (size_t)w >= sizeof ip || !set_address(l ? &l->addrs[i] : &one, ip, (int)p)) {
            ts_addrlist_free(l);
            *why = "an address that is not an IP literal";
            return false;
        }
        a += len;
    }
    if (out)
        *out = l;
    return true;
}

static void on_resolved(int status, ts_addrlist *addrs, const char *detail, void *arg);

static void deliver_pinned(ts_ioloop *loop, void *arg)
{
    (void)loop;
    lookup *l = arg;
    on_resolved(0, l->pinned, NULL, l);
}

static void on_resolved(int status, ts_addrlist *addrs, const char *detail, void *arg)
{
    lookup *l = arg;
    if (status == 0 && !l->c->done) {
        char list[512] = "", one[TS_SOCKADDR_STRLEN];
        size_t used = 0;
        for (size_t i = 0; i < addrs->count && used < sizeof list; i++) {
            ts_sockaddr_str((struct sockaddr *)&addrs->addrs[i].addr, addrs->addrs[i].addrlen, one, sizeof one);
            used += (size_t)snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "", one);
        }
        if (addrs->count > 1)
            note(l->c, "* Resolved %s to %s", l->c->url.host, list);
    }
    l->cb(status, addrs, detail, l->arg);
    free(l);
}

/* The first --resolve naming HOST:PORT answers (the client asks for any family); else the default resolver. */
static int client_resolve(void *impl, ts_ioloop *loop, const char *host, int port, int family, ts_resolve_cb cb,
                          void *arg)
{
    client *c = impl;
    const char *why;
    lookup *l = malloc(sizeof *l);
    if (!l)
        return TS_ENOMEM;
    *l = (lookup){c, cb, arg, NULL};
    for (size_t i = 0; i < c->opt->nresolves && !l->pinned; i++)
        parse_resolve(c->opt->resolves[i], host, port, &l->pinned, &why);
    int rc = l->pinned ? ts_ioloop_add_callback(loop, deliver_pinned, l)
                       : ts_resolver_resolve(c->resolver_base, loop, host, port, family, on_resolved, l);
    if (rc < 0) {
        ts_addrlist_free(l->pinned);
        free(l);
    }
    return rc;
}

static const ts_resolver_ops client_resolver_ops = {.size = sizeof client_resolver_ops, .resolve = client_resolve};

/* A TLS handshake answered by something that is not TLS, as OpenSSL words it. */
static bool not_tls(const char *detail)
{
    return detail && (strcasestr(detail, "wrong version number") || strcasestr(detail, "packet length too long") ||
                      strcasestr(detail, "unknown protocol"));
}

static void connect_failed(client *c, int status, const char *detail)
{
    const char *why = detail && *detail ? detail : ts_strerror(status);
    if (status == TS_ERESOLVE)
        finish(c, HC_RESOLVE, "cannot resolve host '%s': %s", c->url.host, why);
    else if (status == TS_ETIMEDOUT)
        finish(c, HC_TIMEOUT, "timed out after %g s while connecting to %s", c->opt->timeout, c->authority);
    else if (status == TS_ESSL && !c->opt->insecure && (!detail || strcasestr(detail, "certificate")))
        finish(c, HC_TLS, "TLS handshake with %s failed: %s\n%s: server certificate verification failed: %s",
               c->authority, why, g_prog,
               detail && strcasestr(detail, "mismatch") ? "it is not for this host; --insecure skips checks"
                                                        : "--cacert FILE trusts another CA, --insecure skips checks");
    else if (status == TS_ESSL && not_tls(detail))
        finish(c, HC_TLS, "TLS handshake with %s failed: %s\n%s: the server does not speak TLS on this port "
               "(is it plain http://%s%s?)", c->authority, why, g_prog, c->authority, c->url.target);
    else if (status == TS_ESSL)
        finish(c, HC_TLS, "TLS handshake with %s failed: %s", c->authority, why);
    else
        finish(c, exit_code_for(status), "cannot connect to %s: %s", c->authority, why);
}

static void note_connected(client *c, ts_iostream *s)
{
    char peer[TS_SOCKADDR_STRLEN];
    if (!c->opt->verbose)
        return;
    note(c, "* Connected to %s (%s)", c->url.host, ex_peer_address(s, peer, sizeof peer));
    if (ts_iostream_is_ssl(s)) {
        ts_bytes *subject = ts_iostream_ssl_peer_subject(s);
        const char *alpn = ts_iostream_ssl_alpn_protocol(s);
        note(c, "* %s %s%s%s; server certificate %s, %s", ts_iostream_ssl_version(s), ts_iostream_ssl_cipher(s),
             alpn ? ", ALPN " : "", alpn ? alpn : "", subject ? subject->data : "(none)",
             c->opt->insecure ? "NOT verified (--insecure)" : "verified");
        ts_bytes_free(subject);
    }
}

static void read_head(client *c);

/* The -H option naming this field, or NULL. */
static const char *user_header(const options *o, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < o->nheaders; i++)
        if (!strncasecmp(o->headers[i], name, n) && o->headers[i][n] == ':')
            return o->headers[i];
    return NULL;
}

/* The fields the client sends by default; a -H of the same name takes the default's place. */
static const char *const default_names[] = {"Host", "User-Agent", "Accept", "Connection", "Authorization",
                                            "Content-Type"};

/* One -H line as "Name: value" CRLF, nothing for "Name:" (checked in parse_args). */
static void put_user_header(FILE *f, const char *h)
{
    hp_field fl;
    const char *why;
    if (hp_parse_field(h, strlen(h), &fl, &why) == 0 && fl.value.len > 0)
        fprintf(f, "%.*s: %.*s\r\n", (int)fl.name.len, fl.name.ptr, (int)fl.value.len, fl.value.ptr);
}

/* A default field (value NULL: none this time), or in its place the -H that names it. */
static void default_header(client *c, FILE *f, const char *name, const char *value)
{
    const char *h = user_header(c->opt, name);
    if (h)
        put_user_header(f, h);
    else if (value)
        fprintf(f, "%s: %s\r\n", name, value);
}

/* "Basic base64(user:password)" */
static char *basic_credentials(const char *user)
{
    size_t n = strlen(user);
    char *out = malloc(6 + 4 * ((n + 2) / 3) + 1);
    if (!out)
        oom();
    memcpy(out, "Basic ", 6);
    EVP_EncodeBlock((unsigned char *)out + 6, (const unsigned char *)user, (int)n);
    return out;
}

/* The request line and head, as one string. */
static char *build_request(client *c, size_t *len)
{
    char *head = NULL;
    FILE *f = open_memstream(&head, len);
    if (!f)
        oom();
    fprintf(f, "%s %s HTTP/1.1\r\n", c->method, c->url.target);
    char *agent = c->opt->agent ? xasprintf("%s", c->opt->agent) : xasprintf("tstream-http_client/%s", ts_version());
    char *here = xasprintf("%s://%s", c->url.tls ? "https" : "http", c->authority), *cred = NULL;
    if (c->opt->user && !strcmp(here, c->origin)) /* credentials never go to another host */
        cred = basic_credentials(c->opt->user);
    else if (c->opt->user)
        note(c, "* Not sending the -u credentials to %s", here);
    bool body = c->data || !strcmp(c->method, "POST") || !strcmp(c->method, "PUT") || !strcmp(c->method, "PATCH");
    default_header(c, f, "Host", c->authority);
    default_header(c, f, "User-Agent", agent);
    default_header(c, f, "Accept", "*/*");
    default_header(c, f, "Connection", "close");
    default_header(c, f, "Authorization", cred);
    if (body)
        fprintf(f, "Content-Length: %zu\r\n", c->data_len);
    default_header(c, f, "Content-Type", body ? "application/x-www-form-urlencoded" : NULL);
    free(agent);
    free(here);
    free(cred);
    for (size_t i = 0; i < c->opt->nheaders; i++) {
        bool is_default = false;
        for (size_t d = 0; d < sizeof default_names / sizeof *default_names; d++)
            is_default |= user_header(c->opt, default_names[d]) == c->opt->headers[i];
        if (!is_default)
            put_user_header(f, c->opt->headers[i]);
    }
    fputs("\r\n", f);
    if (fclose(f) != 0)
        oom();
    return head;
}

static void on_connect(int status, ts_iostream *s, const char *detail, void *arg)
{
    client *c = arg;
    if (c->done) { /* timed out in this same loop iteration */
        if (s)
            ts_iostream_free(s);
        return;
    }
    if (status < 0) {
        connect_failed(c, status, detail);
        return;
    }
    c->stream = s;
    note_connected(c, s);
    size_t head_len = 0;
    char *head = build_request(c, &head_len);
    note_lines(c, "> ", head, head_len);
    int rc = ts_iostream_write(s, head, head_len, NULL, NULL);
    if (rc == 0 && c->data_len > 0)
        rc = ts_iostream_write(s, c->data, c->data_len, NULL, NULL);
    free(head);
    check_started(c, rc, "send the request to");
    if (!c->done)
        read_head(c);
}

/* ---- the response head -------------------------------------------------------- */

static void on_head(ts_iostream *s, int status, const char *data, size_t len, void *arg);

static void read_head(client *c)
{
    c->phase = "waiting for the response from";
    check_started(c, ts_iostream_read_until_regex(c->stream, "\r?\n\r?\n", MAX_HEAD, on_head, c), "read from");
}

/* Parses the whole head strictly and picks the body mode; false (finished) on error. */
static bool parse_head(client *c, const char *data, size_t len)
{
    hp_field fields[MAX_FIELDS];
    hp_message m = {.fields = fields, .max_fields = MAX_FIELDS};
    hp_limits lim = {.max_head = MAX_HEAD};
    free(c->location);
    c->location = NULL;
    ssize_t rc = hp_parse_response(data, len, !strcmp(c->method, "HEAD"), &lim, &m);
    if (rc != (ssize_t)len) { /* HP_INCOMPLETE cannot be: the blank line was found */
        char line[64] = "";
        size_t n = m.error_line.len < 60 ? m.error_line.len : 60;
        for (size_t i = 0; i < n; i++) /* shown with its control characters as '?' */
            line[i] = (unsigned char)m.error_line.ptr[i] < 0x20 || m.error_line.ptr[i] == 0x7f ? '?' : m.error_line.ptr[i];
        finish(c, HC_PROTOCOL, "malformed response from %s: %s%s%s%s", c->authority,
               m.error ? m.error : "no blank line", n ? " in '" : "", line, n ? "'" : "");
        return false;
    }
    const hp_field *loc = hp_find(&m, "Location");
    if (loc)
        c->location = xasprintf("%.*s", (int)loc->value.len, loc->value.ptr);
    c->status = m.status;
    snprintf(c->reason, sizeof c->reason, "%.*s", (int)m.reason.len, m.reason.ptr);
    c->length = m.length;
    static const body_mode modes[] = {[HP_BODY_NONE] = BODY_NONE, [HP_BODY_LENGTH] = BODY_LENGTH,
                                      [HP_BODY_CHUNKED] = BODY_CHUNKED, [HP_BODY_CLOSE] = BODY_CLOSE};
    c->mode = modes[m.framing];
    return true;
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
    if (c->status == 303 && strcmp(c->method, "HEAD"))
        c->method = "GET", c->data = NULL, c->data_len = 0;
    ts_iostream_free(c->stream); /* Connection: close -- the redirect's body is not needed */
    c->stream = NULL;
    url_free(&c->url);
    c->url = next;
    note(c, "* Redirect %d of at most %d, to %s (%s)", c->redirects, c->opt->max_redirs, c->location, c->method);
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
    bool redirect = c->opt->follow && c->location &&
                    (c->status == 301 || c->status == 302 || c->status == 303 || c->status == 307 || c->status == 308);
    bool failed = c->opt->fail && c->status >= 400;
    if (c->status == 101)
        finish(c, HC_PROTOCOL, "malformed response from %s: 101 Switching Protocols, unasked", c->authority);
    else if (c->opt->include && !failed && !out_write(c, data, len))
        return;
    else if (c->status < 200) /* 100 Continue and friends: the real head follows */
        read_head(c);
    else if (redirect && c->redirects >= c->opt->max_redirs)
        finish(c, HC_REDIRECTS, "too many redirects (more than %d); the last one was to %s", c->opt->max_redirs,
               c->location);
    else if (redirect)
        follow_redirect(c);
    else if (failed)
        finish(c, HC_HTTP, "%s returned HTTP %d %s", c->authority, c->status, c->reason);
    else
        start_body(c);
}

/* ---- the body ------------------------------------------------------------------ */

static void body_done(client *c)
{
    if (c->mode != BODY_NONE)
        bar_draw(c, true);
    if (!out_write(c, NULL, 0)) /* -o FILE: an empty body still makes the file */
        return;
    if (fflush(c->out) != 0) {
        finish(c, HC_WRITE, "cannot write to %s: %s", out_name(c), strerror(errno));
        return;
    }
    note(c, "* %" PRIu64 " body bytes; HTTP %d %s", c->received, c->status, c->reason);
    finish(c, HC_OK, NULL);
}

static void on_body_data(ts_iostream *s, const char *data, size_t len, void *arg)
{
    client *c = arg;
    (void)s;
    if (c->done || !out_write(c, data, len))
        return;
    c->received += len;
    bar_draw(c, false);
}

/* The end of one streaming read: any last bytes, then whether it succeeded. */
static bool body_read_ok(client *c, ts_iostream *s, int status, const char *data, size_t len, const char *what)
{
    if (!c->done && len > 0)
        on_body_data(s, data, len, c);
    if (c->done)
        return false;
    if (status < 0)
        read_failed(c, s, status, what);
    return status == 0;
}

static void on_length_done(ts_iostream *s, int status, const char *data, size_t len, void *arg)
{
    if (body_read_ok(arg, s, status, data, len, "the body"))
        body_done(arg);
}

static void on_close_done(ts_iostream *s, int status, const char *data, size_t len, void *arg)
{
    if (!body_read_ok(arg, s, status, data, len, "the body"))
        return;
    if (ts_iostream_error(s) == TS_ETRUNCATED) /* no framing but the close itself */
        note(arg, "* warning: the TLS peer closed without close_notify: the body may be truncated");
    body_done(arg);
}

static void read_chunk_size(client *c);

static void start_body(client *c)
{
    c->received = 0;
    c->trailer_bytes = 0;
    c->phase = "reading the body from";
    c->bar_start = ts_ioloop_time(c->loop);
    c->bar_last = 0;
    c->samples = 0;
    if (c->mode == BODY_NONE || (c->mode == BODY_LENGTH && c->length == 0))
        body_done(c);
    else if (c->mode == BODY_LENGTH)
        check_started(c, ts_iostream_read_bytes_streaming(c->stream, c->length, on_body_data, on_length_done, c),
                      "read the body from");
    else if (c->mode == BODY_CHUNKED)
        read_chunk_size(c);
    else
        check_started(c, ts_iostream_read_until_close_streaming(c->stream, on_body_data, on_close_done, c),
                      "read the body from");
}

static void on_chunk_size(ts_iostream *s, int status, const char *data, size_t len, void *arg);
static void on_chunk_data(ts_iostream *s, int status, const char *data, size_t len, void *arg);
static void on_chunk_end(ts_iostream *s, int status, const char *data, size_t len, void *arg);
static void on_trailer(ts_iostream *s, int status, const char *data, size_t len, void *arg);

/* One line of the trailer section, within what is left of MAX_TRAILERS. */
static void read_trailer_line(client *c)
{
    size_t left = MAX_TRAILERS - c->trailer_bytes;
    if (left == 0) /* 0 would mean no limit to read_until */
        finish(c, HC_PROTOCOL, "malformed response from %s: trailers over %d bytes", c->authority, MAX_TRAILERS);
    else
        check_started(c, ts_iostream_read_until(c->stream, "\n", 1, left, on_trailer, c), "read from");
}

static void read_chunk_size(client *c)
{
    check_started(c, ts_iostream_read_until(c->stream, "\n", 1, HP_MAX_CHUNK_LINE + 2, on_chunk_size, c),
                  "read the body from");
}

static void on_chunk_size(ts_iostream *s, int status, const char *data, size_t len, void *arg)
{
    client *c = arg;
    uint64_t size = 0;
    const char *why = NULL;
    if (c->done)
        return;
    if (status < 0)
        read_failed(c, s, status, "a chunk-size line");
    else if (hp_parse_chunk_line(data, len, &size, &why) != (ssize_t)len)
        finish(c, HC_PROTOCOL, "malformed response from %s: %s: '%.*s'", c->authority, why,
               (int)(len > 60 ? 60 : len - (len > 0 && data[len - 1] == '\n')), data);
    else if (size == 0) /* the last chunk: trailers follow, up to a blank line */
        read_trailer_line(c);
    else
        check_started(c, ts_iostream_read_bytes_streaming(s, size, on_body_data, on_chunk_data, c), "read from");
}

static void on_chunk_data(ts_iostream *s, int status, const char *data, size_t len, void *arg)
{
    if (body_read_ok(arg, s, status, data, len, "a chunk"))
        check_started(arg, ts_iostream_read_bytes(s, 2, false, on_chunk_end, arg), "read from");
}

static void on_chunk_end(ts_iostream *s, int status, const char *data, size_t len, void *arg)
{
    client *c = arg;
    const char *why = NULL;
    if (c->done)
        return;
    if (status < 0)
        read_failed(c, s, status, "a chunk");
    else if (hp_parse_chunk_end(data, len, &why) != 2)
        finish(c, HC_PROTOCOL, "malformed response from %s: %s", c->authority, why);
    else
        read_chunk_size(c);
}

static void on_trailer(ts_iostream *s, int status, const char *data, size_t len, void *arg)
{
    client *c = arg;
    hp_field field;
    bool last = false;
    const char *why = NULL;
    if (c->done)
        return;
    if (status < 0)
        read_failed(c, s, status, "the trailers");
    else if (hp_parse_trailer_line(data, len, MAX_TRAILERS - c->trailer_bytes, &field, &last, &why) != (ssize_t)len)
        finish(c, HC_PROTOCOL, "malformed response from %s: %s in the trailers", c->authority, why);
    else if (last) /* the blank line that ends the chunked body */
        body_done(c);
    else {
        c->trailer_bytes += len;
        note_lines(c, "< ", data, len);
        read_trailer_line(c);
    }
}

/* ---- the command line -------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f, "usage: %s [options] URL\n", g_prog);
    fputs("\n"
          "Fetches URL (http:// or https://) with one HTTP/1.1 request and writes the\n"
          "body to standard output as it arrives.\n"
          "\n"
          "  -o, --output FILE      write the body to FILE instead\n"
          "  -O, --remote-name      write the body to a file named as the URL's last\n"
          "                         path segment, in the current directory\n"
          "  -i, --include          write the status line and headers before the body\n"
          "  -I, --head             send HEAD and write the status line and headers\n"
          "  -L, --location         follow redirects (301, 302, 303, 307, 308);\n"
          "                         303 turns the request into a GET, the others keep it\n"
          "      --max-redirs N     follow at most N redirects (default 5)\n"
          "  -X, --request METHOD   use METHOD instead of GET (or of POST with -d)\n"
          "  -d, --data DATA        send DATA as the request body, with Content-Length;\n"
          "                         -d @FILE sends what FILE holds\n"
          "  -H, --header 'N: V'    add the header N with value V (repeatable); it\n"
          "                         replaces a header the client would send, and\n"
          "                         'N:' with no value removes that header\n"
          "  -A, --user-agent UA    send User-Agent: UA\n"
          "  -u, --user USER:PASS   Basic authentication, sent to the URL's host only\n"
          "                         (not along redirects to another host)\n"
          "  -f, --fail             on status 400 or above: no body, exit 8\n"
          "      --timeout SECONDS  give up on the whole fetch after SECONDS\n"
          "      --resolve HOST:PORT:ADDR[,ADDR]...\n"
          "                         connect to these addresses, in this order, for\n"
          "                         HOST:PORT instead of looking HOST up (repeatable)\n"
          "      --cacert FILE      verify the server against the CA certificates in FILE\n"
          "                         (PEM) instead of the system store\n"
          "  -k, --insecure         do not verify the server's certificate\n"
          "  -v, --verbose          show on stderr the addresses found, each one as it\n"
          "                         is tried, TLS, the request and the response head\n"
          "  -s, --silent           no progress bar (one is drawn on stderr when it is a\n"
          "                         terminal and the body does not go to that terminal)\n"
          "  -h, --help             show this help\n"
          "\n"
          "Exit status:\n"
          "   0  success (HTTP errors included, unless --fail)\n"
          "   1  internal error (out of memory)\n"
          "   2  usage: bad option, header or URL (also: -O and a URL without a file name)\n"
          "   3  the host name could not be resolved\n"
          "   4  connection refused or failed, or broken during the transfer\n"
          "   5  TLS: handshake or certificate verification failed, bad --cacert\n"
          "   6  timed out (--timeout)\n"
          "   7  malformed or truncated response\n"
          "   8  HTTP status 400 or above, with --fail\n"
          "   9  cannot write the output\n"
          "  10  too many redirects (more than --max-redirs, with -L)\n"
          "  11  cannot read the request body (-d @FILE)\n",
          f);
}

static int usage_error(const char *fmt, ...) TS_PRINTF(1, 2);
static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    ex_usage_verror(g_prog, fmt, ap);
    va_end(ap);
    return HC_USAGE;
}

/* -H 'Name: value': a valid field line, and not one that frames the body. */
static int add_header_option(options *opt, const char *arg)
{
    hp_field f;
    const char *why = NULL;
    if (hp_parse_field(arg, strlen(arg), &f, &why) < 0)
        return usage_error("invalid header '%s': %s", arg, why);
    if (hp_str_eq(f.name, "Content-Length") || hp_str_eq(f.name, "Transfer-Encoding"))
        return usage_error("-H cannot set %.*s: the client frames the body itself", (int)f.name.len, f.name.ptr);
    const char **h = realloc(opt->headers, (opt->nheaders + 1) * sizeof *h);
    if (!h)
        oom();
    opt->headers = h;
    opt->headers[opt->nheaders++] = arg;
    return -1;
}

/* Returns -1 to go on, or the exit code to end with at once. */
static int parse_args(int argc, char **argv, options *opt)
{
    enum { OPT_TIMEOUT = 256, OPT_CACERT, OPT_MAX_REDIRS, OPT_RESOLVE };
    static const struct option longopts[] = {
        {"output", required_argument, NULL, 'o'}, {"include", no_argument, NULL, 'i'},
        {"location", no_argument, NULL, 'L'},     {"request", required_argument, NULL, 'X'},
        {"data", required_argument, NULL, 'd'},   {"fail", no_argument, NULL, 'f'},
        {"insecure", no_argument, NULL, 'k'},     {"verbose", no_argument, NULL, 'v'},
        {"silent", no_argument, NULL, 's'},       {"help", no_argument, NULL, 'h'},
        {"header", required_argument, NULL, 'H'}, {"head", no_argument, NULL, 'I'},
        {"user", required_argument, NULL, 'u'},   {"user-agent", required_argument, NULL, 'A'},
        {"remote-name", no_argument, NULL, 'O'},
        {"timeout", required_argument, NULL, OPT_TIMEOUT},
        {"cacert", required_argument, NULL, OPT_CACERT},
        {"max-redirs", required_argument, NULL, OPT_MAX_REDIRS},
        {"resolve", required_argument, NULL, OPT_RESOLVE},
        {NULL, 0, NULL, 0}};
    char *end;
    long n;
    int rc;
    opt->max_redirs = MAX_REDIRECTS;
    for (int ch; (ch = getopt_long(argc, argv, "o:OiILX:d:H:A:u:fkvsh", longopts, NULL)) != -1;) {
        switch (ch) {
        case 'o': opt->outfile = optarg; break;
        case 'O': opt->use_remote_name = true; break;
        case 'i': opt->include = true; break;
        case 'I': opt->head = opt->include = true; break;
        case 'L': opt->follow = true; break;
        case 'X': opt->method = optarg; break;
        case 'd': opt->data = optarg; break;
        case 'f': opt->fail = true; break;
        case 'k': opt->insecure = true; break;
        case 'v': opt->verbose = true; break;
        case 's': opt->silent = true; break;
        case OPT_CACERT: opt->cacert = optarg; break;
        case 'H':
            if ((rc = add_header_option(opt, optarg)) >= 0)
                return rc;
            break;
        case 'A':
            for (const char *p = optarg; *p; p++)
                if (((unsigned char)*p < 0x20 && *p != '\t') || *p == 0x7f)
                    return usage_error("a control character in the -A value");
            opt->agent = optarg;
            break;
        case OPT_RESOLVE: {
            const char *why = NULL;
            if (!parse_resolve(optarg, NULL, 0, NULL, &why))
                return usage_error("invalid --resolve '%s': %s", optarg, why);
            const char **r = realloc(opt->resolves, (opt->nresolves + 1) * sizeof *r);
            if (!r)
                oom();
            opt->resolves = r;
            opt->resolves[opt->nresolves++] = optarg;
            break;
        }
        case 'u':
            if (!strchr(optarg, ':'))
                return usage_error("-u wants USER:PASSWORD");
            opt->user = optarg;
            break;
        case OPT_MAX_REDIRS:
            errno = 0;
            n = strtol(optarg, &end, 10);
            if (errno || end == optarg || *end || n < 0 || n > 1000)
                return usage_error("--max-redirs wants a number from 0 to 1000, not '%s'", optarg);
            opt->max_redirs = (int)n;
            break;
        case OPT_TIMEOUT:
            errno = 0;
            opt->timeout = strtod(optarg, &end);
            if (errno || end == optarg || *end || !(opt->timeout > 0 && opt->timeout < 1e7)) {
                return usage_error("--timeout wants a positive number of seconds, not '%s'", optarg);
            }
            break;
        case 'h': usage(stdout); return HC_OK;
        default: fprintf(stderr, "Try '%s --help'.\n", g_prog); return HC_USAGE;
        }
    }
    if (optind != argc - 1)
        return usage_error("%s", optind == argc ? "no URL given" : "more than one URL given");
    opt->url = argv[optind];
    if (opt->method && !hp_is_token(opt->method, strlen(opt->method))) {
        fprintf(stderr, "%s: invalid method '%s'\n", g_prog, opt->method);
        return HC_USAGE;
    }
    if (opt->use_remote_name && opt->outfile)
        return usage_error("-o and -O together: which file?");
    return -1;
}

/* -O: the last segment of the target's path, or NULL when it names no file. */
static char *remote_name(const char *target)
{
    size_t plen = strcspn(target, "?"), start = plen;
    while (start > 0 && target[start - 1] != '/')
        start--;
    size_t n = plen - start;
    if (n == 0 || (n == 1 && target[start] == '.') || (n == 2 && !strncmp(target + start, "..", 2)))
        return NULL;
    return xasprintf("%.*s", (int)n, target + start);
}

/* -d @FILE: the whole file into opt->data; false (message printed) when it cannot be read. */
static bool read_data_file(options *opt)
{
    const char *path = opt->data + 1;
    FILE *f = fopen(path, "rb");
    size_t cap = 0, len = 0;
    char *buf = NULL;
    while (f) {
        if (len == cap) {
            char *nb = realloc(buf, cap = cap ? 2 * cap : 64 * 1024);
            if (!nb)
                oom();
            buf = nb;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0)
            break;
    }
    if (!f || ferror(f)) {
        fprintf(stderr, "%s: cannot read the request body from %s: %s\n", g_prog, path, strerror(errno));
        if (f)
            fclose(f);
        free(buf);
        return false;
    }
    fclose(f);
    opt->data_buf = buf;
    opt->data = buf ? buf : "";
    opt->data_len = len;
    return true;
}

static void on_log(ts_log_level level, const char *msg, void *arg)
{
    bar_clear(arg);
    if (level >= TS_LOG_ERROR)
        fprintf(stderr, "%s: tstream: %s\n", g_prog, msg);
    else
        fprintf(stderr, "* tstream: %s\n", msg);
}

/* Flushes and closes the output: a late write error still fails a good fetch. */
static int close_output(client *c)
{
    if (c->out && (c->out == stdout ? fflush(stdout) : fclose(c->out)) != 0 && c->exit_code == HC_OK) {
        fprintf(stderr, "%s: cannot write to %s: %s\n", g_prog, out_name(c), strerror(errno));
        c->exit_code = HC_WRITE;
    }
    c->out = NULL;
    return c->exit_code;
}

int main(int argc, char **argv)
{
    options opt = {0};
    g_prog = ex_prog_name(argc, argv, g_prog);
    if (argc > 0)
        argv[0] = (char *)g_prog; /* getopt's own messages name the program so too */
    int rc = parse_args(argc, argv, &opt);
    if (rc >= 0) {
        free(opt.headers);
        free(opt.resolves);
        return rc;
    }
    client cl = {.opt = &opt, .exit_code = HC_INTERNAL, .phase = "starting"}, *c = &cl;
    const char *why = NULL;
    if (parse_url(opt.url, &c->url, &why) < 0) {
        fprintf(stderr, "%s: bad URL '%s': %s\n", g_prog, opt.url, why);
        url_free(&c->url);
        free(opt.headers);
        free(opt.resolves);
        return HC_USAGE;
    }
    if (opt.data && opt.data[0] == '@' && !read_data_file(&opt)) {
        url_free(&c->url);
        free(opt.headers);
        free(opt.resolves);
        return HC_READ;
    }
    if (opt.data && !opt.data_buf)
        opt.data_len = strlen(opt.data);
    if (opt.use_remote_name && !(opt.outfile = opt.remote_name = remote_name(c->url.target))) {
        fprintf(stderr, "%s: -O: the URL '%s' has no file name to save under\n", g_prog, opt.url);
        url_free(&c->url);
        free(opt.headers);
        free(opt.resolves);
        free(opt.data_buf);
        return HC_USAGE;
    }
    c->method = opt.method ? opt.method : opt.head ? "HEAD" : opt.data ? "POST" : "GET";
    c->data = opt.data;
    c->data_len = opt.data_len;
    c->origin = xasprintf("%s://%s", c->url.tls ? "https" : "http", (c->authority = authority_of(&c->url)));
    signal(SIGPIPE, SIG_IGN); /* a closed stdout pipe is a write error (exit 9), not death */
    bool body_on_tty = !strcmp(out_name(c), "standard output") && isatty(STDOUT_FILENO);
    c->bar = !opt.silent && isatty(STDERR_FILENO) && !body_on_tty;
    ts_log_set_handler(on_log, c, opt.verbose ? TS_LOG_INFO : TS_LOG_ERROR);

    c->loop = ts_ioloop_new();
    if (c->loop && (opt.verbose || opt.nresolves)) {
        c->resolver_base = ts_resolver_new_default();
        c->resolver = c->resolver_base ? ts_resolver_new(&client_resolver_ops, c) : NULL;
        if (!c->resolver)
            oom();
    }
    c->tcp = c->loop ? ts_tcpclient_new(c->loop, c->resolver) : NULL;
    if (!c->tcp)
        oom();
    if (c->bar) {
        c->bar_width = terminal_width();
        g_client = c;
        struct sigaction sa = {.sa_handler = on_sigwinch, .sa_flags = SA_RESTART};
        sigaction(SIGWINCH, &sa, NULL);
    }
    if (opt.timeout > 0) {
        c->deadline = ts_ioloop_time(c->loop) + opt.timeout;
        c->deadline_timer = ts_ioloop_call_later(c->loop, opt.timeout, on_deadline, c);
    }
    start_request(c);
    ts_ioloop_start(c->loop); /* until finish() stops it */
    /*
     * After a timeout a connect may still be under way -- worse, a getaddrinfo()
     * on the loop's executor thread, which nothing can cancel and which
     * ts_ioloop_free() would wait for. exit() keeps the --timeout promise; all
     * the memory is still reachable from here.
     */
    if (c->exit_code == HC_TIMEOUT)
        exit(close_output(c));
    ts_ioloop_remove_timeout(c->loop, c->deadline_timer);
    ts_tcpclient_free(c->tcp);
    ts_resolver_free(c->resolver);
    ts_resolver_free(c->resolver_base);
    ts_ioloop_stop(c->loop); /* one more iteration, for the closed stream's last callbacks */
    ts_ioloop_start(c->loop);
    ts_ioloop_free(c->loop, false);
    SSL_CTX_free(c->ssl_ctx);
    ts_log_set_handler(NULL, NULL, TS_LOG_INFO);
    url_free(&c->url);
    free(c->authority);
    free(c->origin);
    free(c->location);
    free(opt.headers);
    free(opt.resolves);
    free(opt.data_buf);
    free(opt.remote_name);
    return close_output(c);
}
