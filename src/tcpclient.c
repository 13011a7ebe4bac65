/*
 * tcpclient.c -- Tornado's TCPClient and its Happy Eyeballs _Connector.
 *
 * What this file does not do: no connection pooling and no address cache;
 * it resolves through a ts_resolver and connects through the public stream
 * API only (ts_iostream_new_socket, ts_iostream_connect, and for TLS
 * ts_iostream_start_tls).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tstream/common.h"
#include "tstream/future.h"
#include "tstream/ioloop.h"
#include "tstream/iostream.h"
#include "tstream/netutil.h"
#include "tstream/tcpclient.h"

/*
 * TLS streams come from tstream/ssl.h (ts_iostream_new_ssl,
 * ts_iostream_start_tls). -DTS_NET_TLS=0 builds without them: an ssl_ctx
 * option is then refused (TS_EINVAL / NULL).
 */
#ifndef TS_NET_TLS
#define TS_NET_TLS 1
#endif
#if TS_NET_TLS
#include "tstream/ssl.h"
#endif

enum { PRIMARY = 0, SECONDARY = 1 };

struct ts_tcpclient {
    ts_ioloop *loop;
    ts_resolver *resolver;
    bool own_resolver;
};

typedef struct connector connector;

/* One connection attempt; lives until its connect callback has run. */
typedef struct attempt {
    connector *c;
    ts_iostream *stream;
    int which; /* PRIMARY or SECONDARY */
    struct attempt *prev, *next;
} attempt;

struct connector {
    int refs;
    ts_ioloop *loop;
    ts_tcpclient_connect_cb cb;
    void *arg;
    /* options */
    void *ssl_ctx;
    char *server_hostname;
    size_t max_buffer_size, read_chunk_size;
    struct sockaddr_storage src;
    bool has_src_ip;
    int source_port;
    ts_tcpclient_attempt_cb on_attempt;
    void *on_attempt_arg;
    /* the race */
    ts_addrlist *addrs;
    size_t *list[2];
    size_t len[2], pos[2];
    size_t remaining;       /* addresses not yet finished (Tornado's remaining) */
    uint64_t secondary_timer;
    uint64_t deadline_timer;
    bool secondary_started;
    bool settled;  /* a winner was found, or the connect failed: stop racing */
    bool finished; /* the user callback ran */
    int last_error;
    attempt *attempts; /* in flight */
    ts_iostream *tls;  /* the winner, while its TLS handshake runs */
    char host[];
};

static void try_connect(connector *c, int which);
static void finish(connector *c, int status, ts_iostream *stream, const char *detail);

static void connector_unref(connector *c)
{
    if (--c->refs > 0)
        return;
    ts_addrlist_free(c->addrs);
    ts_free(c->list[PRIMARY]);
    ts_free(c->server_hostname);
#if TS_NET_TLS
    if (c->ssl_ctx)
        SSL_CTX_free(c->ssl_ctx);
#endif
    ts_free(c);
}

static void cancel_timer(connector *c, uint64_t *id)
{
    if (*id)
        ts_ioloop_remove_timeout(c->loop, *id);
    *id = 0;
}

static void unlink_attempt(attempt *a)
{
    connector *c = a->c;
    if (a->prev)
        a->prev->next = a->next;
    else
        c->attempts = a->next;
    if (a->next)
        a->next->prev = a->prev;
}

/* Closes every attempt still in flight; their callbacks then release them. */
static void close_attempts(connector *c)
{
    for (attempt *a = c->attempts; a; a = a->next)
        ts_iostream_close(a->stream, 0);
}

static void start_secondary(connector *c)
{
    cancel_timer(c, &c->secondary_timer);
    if (c->secondary_started || c->settled)
        return;
    c->secondary_started = true;
    try_connect(c, SECONDARY);
}

static void on_connect(ts_iostream *s, int status, void *arg);

static int bind_source(connector *c, int fd, int family)
{
    struct sockaddr_storage ss = {0};
    socklen_t len = family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);

    if (c->has_src_ip) {
        if (c->src.ss_family != family)
            return -EAFNOSUPPORT;
        memcpy(&ss, &c->src, sizeof(ss));
    }
    ss.ss_family = (sa_family_t)family;
    if (family == AF_INET)
        ((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)c->source_port);
    else if (family == AF_INET6)
        ((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)c->source_port);
    else
        return -EAFNOSUPPORT;
    return bind(fd, (struct sockaddr *)&ss, len) < 0 ? -errno : 0;
}

/* Starts one attempt. Returns 0, or an error (nothing left behind). */
static int start_attempt(connector *c, int which, const ts_address *addr)
{
    int fd = socket(addr->family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (c->has_src_ip || c->source_port) {
        int rc = bind_source(c, fd, addr->family);
        if (rc != 0) {
            close(fd);
            return rc;
        }
    }
    ts_iostream_options so = {0};
    so.size = sizeof(so);
    so.max_buffer_size = c->max_buffer_size;
    so.read_chunk_size = c->read_chunk_size;
    ts_iostream *s = ts_iostream_new_socket(c->loop, fd, &so);
    attempt *a = s ? ts_malloc(sizeof(*a)) : NULL;
    if (!a) {
        if (s)
            ts_iostream_free(s);
        else
            close(fd);
        return TS_ENOMEM;
    }
    memset(a, 0, sizeof(*a));
    a->c = c;
    a->stream = s;
    a->which = which;
    int rc = ts_iostream_connect(s, (const struct sockaddr *)&addr->addr, addr->addrlen, on_connect, a);
    if (rc != 0) {
        ts_free(a);
        ts_iostream_free(s);
        return rc;
    }
    a->next = c->attempts;
    if (c->attempts)
        c->attempts->prev = a;
    c->attempts = a;
    c->refs++;
    return 0;
}

/* Tornado's try_connect: the next address of one list, one at a time. */
static void try_connect(connector *c, int which)
{
    while (!c->settled) {
        if (c->pos[which] >= c->len[which]) {
            /* Fail only when both lists are done (the other may still be working). */
            if (c->remaining == 0)
                finish(c, c->last_error ? c->last_error : -ECONNREFUSED, NULL, NULL);
            return;
        }
        const ts_address *addr = &c->addrs->addrs[c->list[which][c->pos[which]++]];
        if (c->on_attempt)
            c->on_attempt((const struct sockaddr *)&addr->addr, addr->addrlen, c->on_attempt_arg);
        int rc = start_attempt(c, which, addr);
        if (rc == 0)
            return;
        c->remaining--;
        c->last_error = rc;
        if (which == PRIMARY)
            start_secondary(c); /* a failure does not wait for the 0.3 s timer */
    }
}

#if TS_NET_TLS
static void on_handshake(ts_iostream *s, int status, void *arg)
{
    connector *c = arg;
    c->tls = NULL;
    if (status == 0 && !c->finished) {
        finish(c, 0, s, NULL);
    } else {
        if (!c->finished)
            finish(c, status, NULL, ts_iostream_error_detail(s));
        ts_iostream_close(s, 0);
        ts_iostream_unref(s);
    }
    connector_unref(c);
}

static void start_tls(connector *c, ts_iostream *s)
{
    ts_ssl_options o = {0};
    ts_iostream *out = NULL;

    o.size = sizeof(o);
    o.ctx = c->ssl_ctx;
    o.server_side = false;
    o.server_hostname = c->server_hostname;
    int rc = ts_iostream_start_tls(s, false, &o, c->server_hostname, &out, on_handshake, c);
    if (rc != 0) {
        finish(c, rc, NULL, rc == TS_ESSL ? ts_ssl_last_error_detail() : NULL);
        ts_iostream_close(s, 0);
        ts_iostream_unref(s);
        return;
    }
    ts_iostream_unref(s); /* s is detached; out carries the connection */
    c->tls = out;
    c->refs++;
}
#endif

static void on_connect(ts_iostream *s, int status, void *arg)
{
    attempt *a = arg;
    connector *c = a->c;
    int which = a->which;

    unlink_attempt(a);
    ts_free(a);
    c->remaining--;
    if (status != 0) {
        ts_iostream_unref(s);
        if (!c->settled) {
            c->last_error = status;
            try_connect(c, which);
            start_secondary(c);
        }
    } else if (c->settled) {
        ts_iostream_close(s, 0); /* a late arrival */
        ts_iostream_unref(s);
    } else {
        c->settled = true;
        cancel_timer(c, &c->secondary_timer);
        close_attempts(c);
#if TS_NET_TLS
        if (c->ssl_ctx)
            start_tls(c, s);
        else
#endif
            finish(c, 0, s, NULL);
    }
    connector_unref(c);
}

static void on_secondary_timer(ts_ioloop *loop, void *arg)
{
    connector *c = arg;
    (void)loop;
    c->secondary_timer = 0;
    start_secondary(c);
}

static void on_deadline(ts_ioloop *loop, void *arg)
{
    connector *c = arg;
    (void)loop;
    c->deadline_timer = 0;
    finish(c, TS_ETIMEDOUT, NULL, NULL);
}

/* Delivers the outcome once; closes whatever is still racing. */
static void finish(connector *c, int status, ts_iostream *stream, const char *detail)
{
    if (c->finished)
        return;
    c->finished = c->settled = true;
    cancel_timer(c, &c->secondary_timer);
    cancel_timer(c, &c->deadline_timer);
    close_attempts(c);
    if (c->tls)
        ts_iostream_close(c->tls, status); /* on_handshake releases it */
    c->cb(status, stream, detail, c->arg);
    connector_unref(c); /* the reference held until the outcome */
}

/* Splits the addresses by family (Tornado's _Connector.split). */
static int split(connector *c)
{
    size_t n = c->addrs->count;
    c->list[PRIMARY] = ts_malloc(2 * n * sizeof(size_t));
    if (!c->list[PRIMARY])
        return TS_ENOMEM;
    c->list[SECONDARY] = c->list[PRIMARY] + n;
    int first = c->addrs->addrs[0].family;
    for (size_t i = 0; i < n; i++) {
        int which = c->addrs->addrs[i].family == first ? PRIMARY : SECONDARY;
        c->list[which][c->len[which]++] = i;
    }
    c->remaining = n;
    return 0;
}

static void on_resolved(int status, ts_addrlist *addrs, const char *detail, void *arg)
{
    connector *c = arg;
    if (c->finished) {
        ts_addrlist_free(addrs);
    } else if (status != 0) {
        finish(c, status, NULL, detail);
    } else if (!addrs || addrs->count == 0) {
        ts_addrlist_free(addrs);
        finish(c, TS_ERESOLVE, NULL, "the resolver returned no address");
    } else {
        c->addrs = addrs;
        int rc = split(c);
        if (rc != 0) {
            finish(c, rc, NULL, NULL);
        } else {
            try_connect(c, PRIMARY);
            if (!c->settled && !c->secondary_started)
                c->secondary_timer = ts_ioloop_call_later(c->loop, TS_TCPCLIENT_SECONDARY_DELAY, on_secondary_timer, c);
        }
    }
    connector_unref(c); /* the resolver's reference */
}

ts_tcpclient *ts_tcpclient_new(ts_ioloop *loop, ts_resolver *resolver)
{
    if (!loop)
        return NULL;
    ts_tcpclient *cl = ts_malloc(sizeof(*cl));
    if (!cl)
        return NULL;
    cl->loop = loop;
    cl->resolver = resolver;
    cl->own_resolver = resolver == NULL;
    if (!resolver && !(cl->resolver = ts_resolver_new_default())) {
        ts_free(cl);
        return NULL;
    }
    return cl;
}

void ts_tcpclient_free(ts_tcpclient *cl)
{
    if (!cl)
        return;
    if (cl->own_resolver)
        ts_resolver_free(cl->resolver);
    ts_free(cl);
}

static int copy_options(connector *c, const ts_tcpclient_options *o)
{
    const char *name = o && o->server_hostname ? o->server_hostname : c->host;
    size_t n = strlen(name) + 1;
    if (!(c->server_hostname = ts_malloc(n)))
        return TS_ENOMEM;
    memcpy(c->server_hostname, name, n);
    if (!o)
        return 0;
    c->max_buffer_size = o->max_buffer_size;
    c->read_chunk_size = o->read_chunk_size;
    c->source_port = o->source_port;
    /* A program built before on_attempt existed passes a smaller size: no hook. */
    if (o->size >= offsetof(ts_tcpclient_options, on_attempt_arg) + sizeof(o->on_attempt_arg)) {
        c->on_attempt = o->on_attempt;
        c->on_attempt_arg = o->on_attempt_arg;
    }
    if (o->source_ip) {
        struct sockaddr_in *in = (struct sockaddr_in *)&c->src;
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&c->src;
        if (inet_pton(AF_INET, o->source_ip, &in->sin_addr) == 1)
            in->sin_family = AF_INET;
        else if (inet_pton(AF_INET6, o->source_ip, &in6->sin6_addr) == 1)
            in6->sin6_family = AF_INET6;
        else
            return TS_EINVAL;
        c->has_src_ip = true;
    }
#if TS_NET_TLS
    if (o->ssl_ctx) {
        /* TLS was asked for: a context we cannot hold must fail the connect, never fall back to plaintext. */
        if (!SSL_CTX_up_ref(o->ssl_ctx))
            return TS_ESSL;
        c->ssl_ctx = o->ssl_ctx;
    }
#endif
    return 0;
}

static bool options_valid(const ts_tcpclient_options *o)
{
    if (!o)
        return true;
    if (o->size < offsetof(ts_tcpclient_options, timeout) + sizeof(double))
        return false;
    if (o->family != AF_UNSPEC && o->family != AF_INET && o->family != AF_INET6)
        return false;
    if (o->source_port < 0 || o->source_port > 65535)
        return false;
#if !TS_NET_TLS
    if (o->ssl_ctx)
        return false; /* TLS support compiled out */
#endif
    return true;
}

int ts_tcpclient_connect(ts_tcpclient *cl, const char *host, int port, const ts_tcpclient_options *opts,
                         ts_tcpclient_connect_cb cb, void *arg)
{
    if (!cl || !host || !cb || port < 1 || port > 65535 || !options_valid(opts))
        return TS_EINVAL;
    size_t hlen = strlen(host);
    connector *c = ts_malloc(sizeof(*c) + hlen + 1);
    if (!c)
        return TS_ENOMEM;
    memset(c, 0, sizeof(*c));
    memcpy(c->host, host, hlen + 1);
    c->refs = 1; /* held until the outcome is delivered */
    c->loop = cl->loop;
    c->cb = cb;
    c->arg = arg;
    int rc = copy_options(c, opts);
    if (rc != 0) {
        connector_unref(c);
        return rc;
    }
    c->refs++; /* the resolver's */
    rc = ts_resolver_resolve(cl->resolver, c->loop, host, port, opts ? opts->family : AF_UNSPEC, on_resolved, c);
    if (rc != 0) {
        c->refs = 1;
        connector_unref(c);
        return rc;
    }
    if (opts && opts->timeout > 0)
        c->deadline_timer = ts_ioloop_call_later(c->loop, opts->timeout, on_deadline, c);
    return 0;
}

static void stream_dtor(void *stream)
{
    ts_iostream_free(stream);
}

static void connected_to_future(int status, ts_iostream *stream, const char *detail, void *arg)
{
    ts_future *f = arg;
    if (status == 0) {
        ts_future_set_result(f, stream, stream_dtor);
    } else {
        if (detail)
            ts_log(TS_LOG_DEBUG, "connect failed: %s: %s", ts_strerror(status), detail);
        ts_future_set_error(f, status);
    }
    ts_future_unref(f);
}

ts_future *ts_tcpclient_connect_future(ts_tcpclient *cl, const char *host, int port,
                                       const ts_tcpclient_options *opts)
{
    if (!cl)
        return NULL;
    ts_future *f = ts_future_new(cl->loop);
    if (!f)
        return NULL;
    ts_future_ref(f);
    int err = ts_tcpclient_connect(cl, host, port, opts, connected_to_future, f);
    if (err != 0) {
        /* Refused at once: the caller still gets a future, already failed with the reason. */
        ts_future_set_error(f, err);
        ts_future_unref(f); /* the callback's reference: it will never run */
    }
    return f;
}
