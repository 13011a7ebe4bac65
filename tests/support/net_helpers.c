/* Networking test helpers (see net_helpers.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "net_helpers.h"

double nh_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

socklen_t nh_loopback(int family, int port, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof(*ss));
    if (family == AF_INET6) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
        in6->sin6_family = AF_INET6;
        in6->sin6_addr = in6addr_loopback;
        in6->sin6_port = htons((uint16_t)port);
        return sizeof(*in6);
    }
    struct sockaddr_in *in = (struct sockaddr_in *)ss;
    in->sin_family = AF_INET;
    in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    in->sin_port = htons((uint16_t)port);
    return sizeof(*in);
}

int nh_local_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
        return -errno;
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

bool nh_have_ipv6(void)
{
    static int cached = -1;
    if (cached >= 0)
        return cached;
    cached = 0;
    int l = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (l < 0)
        return false;
    struct sockaddr_storage ss;
    socklen_t len = nh_loopback(AF_INET6, 0, &ss);
    if (bind(l, (struct sockaddr *)&ss, len) == 0 && listen(l, 1) == 0) {
        int c = nh_connect(AF_INET6, nh_local_port(l), 1.0);
        if (c >= 0) {
            cached = 1;
            close(c);
        }
    }
    close(l);
    return cached;
}

int nh_connect(int family, int port, double timeout)
{
    struct sockaddr_storage ss;
    socklen_t len = nh_loopback(family, port, &ss);
    int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (connect(fd, (struct sockaddr *)&ss, len) < 0 && errno != EINPROGRESS) {
        int err = -errno;
        close(fd);
        return err;
    }
    struct pollfd p = {.fd = fd, .events = POLLOUT};
    int n = poll(&p, 1, (int)(timeout * 1000));
    int err = 0;
    socklen_t elen = sizeof(err);
    if (n == 0)
        err = ETIMEDOUT;
    else if (n < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0)
        err = errno;
    if (err) {
        close(fd);
        return -err;
    }
    int fl = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    return fd;
}

ssize_t nh_read(int fd, void *buf, size_t len, double timeout)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int n = poll(&p, 1, (int)(timeout * 1000));
    if (n == 0)
        return -ETIMEDOUT;
    if (n < 0)
        return -errno;
    ssize_t r = read(fd, buf, len); /* read(), not recv(): pipes too */
    return r < 0 ? -errno : r;
}

ssize_t nh_read_line(int fd, char *buf, size_t len, double timeout)
{
    double deadline = nh_now() + timeout;
    size_t got = 0;
    while (got < len) {
        double left = deadline - nh_now();
        if (left <= 0)
            return got ? (ssize_t)got : -ETIMEDOUT;
        ssize_t r = nh_read(fd, buf + got, 1, left);
        if (r < 0)
            return got && r == -ETIMEDOUT ? (ssize_t)got : r;
        if (r == 0)
            break;
        if (buf[got++] == '\n')
            break;
    }
    return (ssize_t)got;
}

int nh_write_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t w = send(fd, p, len, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN) {
                struct pollfd pf = {.fd = fd, .events = POLLOUT};
                poll(&pf, 1, 1000);
                continue;
            }
            return -errno;
        }
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

/* ---- blackhole ------------------------------------------------------------ */

int nh_blackhole_open(nh_blackhole *bh, int family)
{
    memset(bh, 0, sizeof(*bh));
    bh->family = family;
    bh->listen_fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (bh->listen_fd < 0)
        return -errno;
    struct sockaddr_storage ss;
    socklen_t len = nh_loopback(family, 0, &ss);
    if (bind(bh->listen_fd, (struct sockaddr *)&ss, len) < 0 || listen(bh->listen_fd, 0) < 0) {
        int err = -errno;
        close(bh->listen_fd);
        return err;
    }
    bh->port = nh_local_port(bh->listen_fd);
    /* Connect until one hangs: from then on the kernel drops SYNs. */
    for (int i = 0; i < (int)(sizeof(bh->fill) / sizeof(bh->fill[0])); i++) {
        int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        len = nh_loopback(family, bh->port, &ss);
        (void)connect(fd, (struct sockaddr *)&ss, len);
        bh->fill[bh->nfill++] = fd;
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        if (poll(&p, 1, 100) == 0)
            return 0;
    }
    nh_blackhole_close(bh);
    return -EAGAIN;
}

void nh_blackhole_close(nh_blackhole *bh)
{
    for (int i = 0; i < bh->nfill; i++)
        close(bh->fill[i]);
    bh->nfill = 0;
    if (bh->listen_fd >= 0)
        close(bh->listen_fd);
    bh->listen_fd = -1;
}

/* ---- log capture ---------------------------------------------------------- */

#define NH_MAX_LINES 256
static pthread_mutex_t g_log_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
    ts_log_level level;
    char text[256];
} g_lines[NH_MAX_LINES];
static int g_nlines;

static void capture(ts_log_level level, const char *msg, void *arg)
{
    (void)arg;
    fprintf(stderr, "tstream(captured): %d: %s\n", (int)level, msg);
    pthread_mutex_lock(&g_log_lock);
    if (g_nlines < NH_MAX_LINES) {
        g_lines[g_nlines].level = level;
        snprintf(g_lines[g_nlines].text, sizeof(g_lines[0].text), "%s", msg);
        g_nlines++;
    }
    pthread_mutex_unlock(&g_log_lock);
}

void nh_log_capture_start(void)
{
    pthread_mutex_lock(&g_log_lock);
    g_nlines = 0;
    pthread_mutex_unlock(&g_log_lock);
    ts_log_set_handler(capture, NULL, TS_LOG_DEBUG);
}

int nh_log_count(const char *needle, ts_log_level min_level)
{
    int n = 0;
    pthread_mutex_lock(&g_log_lock);
    for (int i = 0; i < g_nlines; i++)
        if (g_lines[i].level >= min_level && strstr(g_lines[i].text, needle))
            n++;
    pthread_mutex_unlock(&g_log_lock);
    return n;
}

void nh_log_capture_stop(void)
{
    ts_log_set_handler(NULL, NULL, TS_LOG_INFO);
}

/* ---- static resolver ------------------------------------------------------ */

typedef struct nh_entry {
    char host[64];
    char ip[64];
    int port;
    const char *fail;
} nh_entry;

struct nh_static_resolver {
    ts_resolver *resolver;
    nh_entry entries[16];
    int n;
    int queries;
};

typedef struct nh_query {
    nh_static_resolver *r;
    ts_resolve_cb cb;
    void *arg;
    int status;
    const char *detail;
    ts_addrlist *list;
} nh_query;

static void deliver(ts_ioloop *loop, void *arg)
{
    nh_query *q = arg;
    (void)loop;
    q->cb(q->status, q->list, q->detail, q->arg);
    free(q);
}

static int static_resolve(void *impl, ts_ioloop *loop, const char *host, int port, int family, ts_resolve_cb cb,
                          void *arg)
{
    nh_static_resolver *r = impl;
    nh_query *q = calloc(1, sizeof(*q));
    if (!q)
        return TS_ENOMEM;
    q->r = r;
    q->cb = cb;
    q->arg = arg;
    size_t count = 0;
    for (int i = 0; i < r->n; i++) {
        if (strcmp(r->entries[i].host, host) != 0)
            continue;
        if (r->entries[i].fail) {
            q->status = TS_ERESOLVE;
            q->detail = r->entries[i].fail;
        }
        count++;
    }
    if (q->status == 0 && count == 0) {
        q->status = TS_ERESOLVE;
        q->detail = "not in the static resolver";
    }
    if (q->status == 0) {
        q->list = ts_addrlist_new(count);
        size_t k = 0;
        for (int i = 0; i < r->n; i++) {
            nh_entry *e = &r->entries[i];
            if (strcmp(e->host, host) != 0)
                continue;
            ts_address *a = &q->list->addrs[k];
            int p = e->port >= 0 ? e->port : port;
            if (strchr(e->ip, ':')) {
                struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&a->addr;
                in6->sin6_family = AF_INET6;
                inet_pton(AF_INET6, e->ip, &in6->sin6_addr);
                in6->sin6_port = htons((uint16_t)p);
                a->addrlen = sizeof(*in6);
            } else {
                struct sockaddr_in *in = (struct sockaddr_in *)&a->addr;
                in->sin_family = AF_INET;
                inet_pton(AF_INET, e->ip, &in->sin_addr);
                in->sin_port = htons((uint16_t)p);
                a->addrlen = sizeof(*in);
            }
            a->family = a->addr.ss_family;
            if (family != AF_UNSPEC && a->family != family)
                continue;
            k++;
        }
        q->list->count = k;
        if (k == 0) {
            ts_addrlist_free(q->list);
            q->list = NULL;
            q->status = TS_ERESOLVE;
            q->detail = "no address of that family";
        }
    }
    r->queries++;
    if (ts_ioloop_add_callback(loop, deliver, q) != 0) {
        ts_addrlist_free(q->list);
        free(q);
        return TS_ENOMEM;
    }
    return 0;
}

static void static_free(void *impl)
{
    free(impl);
}

static const ts_resolver_ops static_ops = {
    .size = sizeof(ts_resolver_ops),
    .resolve = static_resolve,
    .free = static_free,
};

nh_static_resolver *nh_static_resolver_new(void)
{
    nh_static_resolver *r = calloc(1, sizeof(*r));
    assert_non_null(r);
    r->resolver = ts_resolver_new(&static_ops, r);
    assert_non_null(r->resolver);
    return r;
}

ts_resolver *nh_static_resolver_get(nh_static_resolver *r)
{
    return r->resolver;
}

void nh_static_resolver_add(nh_static_resolver *r, const char *host, const char *ip, int port)
{
    assert_true(r->n < 16);
    nh_entry *e = &r->entries[r->n++];
    snprintf(e->host, sizeof(e->host), "%s", host);
    snprintf(e->ip, sizeof(e->ip), "%s", ip);
    e->port = port;
}

void nh_static_resolver_fail(nh_static_resolver *r, const char *host, const char *detail)
{
    assert_true(r->n < 16);
    nh_entry *e = &r->entries[r->n++];
    snprintf(e->host, sizeof(e->host), "%s", host);
    e->fail = detail;
}

int nh_static_resolver_queries(const nh_static_resolver *r)
{
    return r->queries;
}

/* ---- echo server ------------------------------------------------------------ */

#include <netinet/tcp.h>

#define NH_MAX_CONNS 512
static ts_iostream *g_conns[NH_MAX_CONNS];

static void conn_track(ts_iostream *s, bool add)
{
    for (int i = 0; i < NH_MAX_CONNS; i++) {
        if (add ? g_conns[i] == NULL : g_conns[i] == s) {
            g_conns[i] = add ? s : NULL;
            return;
        }
    }
}

void nh_echo_close_all(void)
{
    for (int i = 0; i < NH_MAX_CONNS; i++)
        if (g_conns[i])
            ts_iostream_close(g_conns[i], 0);
}

static void echo_read(ts_iostream *s, nh_echo_stats *st);

static void echo_line(ts_iostream *s, int status, const char *data, size_t len, void *arg)
{
    nh_echo_stats *st = arg;
    if (status != 0) {
        st->open--;
        conn_track(s, false);
        ts_iostream_unref(s);
        return;
    }
    if (st->prefix)
        ts_iostream_write(s, st->prefix, strlen(st->prefix), NULL, NULL);
    ts_iostream_write(s, data, len, NULL, NULL);
    st->lines++;
    echo_read(s, st);
}

static void echo_read(ts_iostream *s, nh_echo_stats *st)
{
    if (ts_iostream_read_until(s, "\n", 1, 65536, echo_line, st) != 0) {
        st->open--;
        conn_track(s, false);
        ts_iostream_close(s, 0);
        ts_iostream_unref(s);
    }
}

static int echo_stream(ts_tcpserver *srv, ts_iostream *s, const struct sockaddr *addr, socklen_t addrlen, void *arg)
{
    nh_echo_stats *st = arg;
    (void)srv, (void)addrlen;
    st->accepted++;
    if (st->fail_next > 0) {
        st->fail_next--;
        return TS_EINVAL; /* the server logs it, closes and drops s */
    }
    if (addr->sa_family == AF_INET || addr->sa_family == AF_INET6) {
        int v = 0;
        socklen_t vl = sizeof(v);
        st->nodelay_checked =
            getsockopt(ts_iostream_fileno(s), IPPROTO_TCP, TCP_NODELAY, &v, &vl) == 0 && v != 0;
        st->last_peer_port = addr->sa_family == AF_INET ? ntohs(((const struct sockaddr_in *)addr)->sin_port)
                                                        : ntohs(((const struct sockaddr_in6 *)addr)->sin6_port);
    }
    st->open++;
    conn_track(s, true);
    echo_read(s, st);
    return 0;
}

ts_tcpserver *nh_echo_server_new(ts_ioloop *loop, const ts_tcpserver_options *opts, nh_echo_stats *stats)
{
    ts_tcpserver *srv = ts_tcpserver_new(loop, echo_stream, stats, opts);
    assert_non_null(srv);
    return srv;
}
