/*
 * tcpserver.c -- Tornado's TCPServer: accepted sockets become streams.
 *
 * What this file does not do: it does not track the streams it hands out
 * (stop() leaves them running), and it never reads or writes them. It uses
 * only the public stream API.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ev.h>

#include "tstream/common.h"
#include "tstream/ioloop.h"
#include "tstream/iostream.h"
#include "tstream/netutil.h"
#include "tstream/process.h"
#include "tstream/tcpserver.h"

#include "internal.h"
#include "iostream_int.h"

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

typedef struct listener {
    int fd;
    ts_accept_handler *handler;
} listener;

struct ts_tcpserver {
    ts_ioloop *loop;
    ts_tcpserver_stream_cb handle_stream;
    void *arg;
    ts_tcpserver_options opts;
    listener *listeners; /* served */
    size_t nlisteners, cap_listeners;
    int *pending; /* bound, waiting for start() */
    size_t npending, cap_pending;
    bool started;
    bool stopped;
    int in_handler;      /* handle_stream calls on the stack */
    bool free_requested; /* ts_tcpserver_free() inside the handler */
};

static int grow(void **array, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t ncap = *cap ? *cap * 2 : 4;
    while (ncap < need)
        ncap *= 2;
    void *p = ts_realloc(*array, ncap * elem);
    if (!p)
        return TS_ENOMEM;
    *array = p;
    *cap = ncap;
    return 0;
}

static void set_nodelay(int fd, const struct sockaddr *addr)
{
    int one = 1;
    if (addr->sa_family == AF_INET || addr->sa_family == AF_INET6)
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* Wraps an accepted fd; on failure the fd is closed and NULL returned. */
static ts_iostream *make_stream(ts_tcpserver *srv, int fd)
{
    ts_iostream_options so = {0};
    ts_iostream *s = NULL;
    int err = TS_ENOMEM;

    so.size = sizeof(so);
    so.max_buffer_size = srv->opts.max_buffer_size;
    so.read_chunk_size = srv->opts.read_chunk_size;
    so.max_write_buffer_size = srv->opts.max_write_buffer_size;
#if TS_NET_TLS
    if (srv->opts.ssl_ctx) {
        double t = srv->opts.handshake_timeout;
        so.handshake_timeout = t == 0 ? TS_TCPSERVER_DEFAULT_HANDSHAKE_TIMEOUT : t > 0 ? t : 0;
        ts_ssl_options ssl = {0};
        ssl.size = sizeof(ssl);
        ssl.ctx = srv->opts.ssl_ctx;
        ssl.server_side = true;
        s = ts_iostream_new_ssl(srv->loop, fd, &ssl, &so, &err);
    } else
#endif
    {
        s = ts__iostream_new_socket_nonblocking(srv->loop, fd, &so); /* (accepted with SOCK_NONBLOCK) */
    }
    if (!s) {
        close(fd);
        ts_ioloop_handle_callback_error(srv->loop, "tcpserver: creating a stream", err);
    }
    return s;
}

static void destroy(ts_tcpserver *srv)
{
    ts_free(srv->listeners);
    ts_free(srv->pending);
#if TS_NET_TLS
    if (srv->opts.ssl_ctx)
        SSL_CTX_free(srv->opts.ssl_ctx);
#endif
    ts_free(srv);
}

/*
 * Whether an accepted socket was reset before we got it (a port scan, a
 * client giving up mid-handshake): it is then no longer connected. Tornado's
 * TCPServer drops these too (tornado#750, the ENOTCONN/EINVAL case of
 * wrap_socket). A TLS stream must not be built on one: it would take the
 * socket for a client stream whose connect() is still to come, and never
 * start the handshake nor watch the fd, keeping it open for good.
 */
static bool reset_before_accept(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    return getpeername(fd, (struct sockaddr *)&ss, &len) < 0 && (errno == ENOTCONN || errno == EINVAL);
}

static void on_connection(ts_ioloop *loop, int fd, const struct sockaddr *addr, socklen_t addrlen, void *arg)
{
    ts_tcpserver *srv = arg;

    if (srv->opts.ssl_ctx && reset_before_accept(fd)) {
        close(fd);
        return;
    }
    if (!srv->opts.disable_nodelay)
        set_nodelay(fd, addr);
    ts_iostream *s = make_stream(srv, fd);
    if (!s)
        return;
    srv->in_handler++;
    int rc = srv->handle_stream(srv, s, addr, addrlen, srv->arg);
    if (rc < 0) {
        ts_ioloop_handle_callback_error(loop, "tcpserver handle_stream", rc);
        ts_iostream_close(s, 0);
        ts_iostream_unref(s);
    }
    if (--srv->in_handler == 0 && srv->free_requested)
        destroy(srv);
}

ts_tcpserver *ts_tcpserver_new(ts_ioloop *loop, ts_tcpserver_stream_cb handle_stream, void *arg,
                               const ts_tcpserver_options *opts)
{
    if (!loop || !handle_stream)
        return NULL;
    if (opts && opts->size < offsetof(ts_tcpserver_options, disable_nodelay) + sizeof(bool))
        return NULL;
#if !TS_NET_TLS
    if (opts && opts->ssl_ctx)
        return NULL; /* TLS support compiled out */
#endif
    ts_tcpserver *srv = ts_malloc(sizeof(*srv));
    if (!srv)
        return NULL;
    memset(srv, 0, sizeof(*srv));
    srv->loop = loop;
    srv->handle_stream = handle_stream;
    srv->arg = arg;
    if (opts) /* an older, smaller struct: copy what it has, the rest stays zero (the defaults) */
        memcpy(&srv->opts, opts, opts->size < sizeof(srv->opts) ? opts->size : sizeof(srv->opts));
    srv->opts.size = sizeof(srv->opts);
#if TS_NET_TLS
    if (srv->opts.ssl_ctx && !SSL_CTX_up_ref(srv->opts.ssl_ctx)) {
        ts_free(srv); /* never serve plaintext where TLS was asked for */
        return NULL;
    }
#endif
    return srv;
}

/* Serves @p fd; on failure closes it. */
static int serve(ts_tcpserver *srv, int fd)
{
    int rc = grow((void **)&srv->listeners, &srv->cap_listeners, srv->nlisteners + 1, sizeof(listener));
    ts_accept_handler *h = NULL;
    if (rc == 0)
        rc = ts_add_accept_handler(srv->loop, fd, on_connection, srv, &h);
    if (rc != 0) {
        close(fd);
        return rc;
    }
    srv->listeners[srv->nlisteners].fd = fd;
    srv->listeners[srv->nlisteners].handler = h;
    srv->nlisteners++;
    return 0;
}

int ts_tcpserver_add_sockets(ts_tcpserver *srv, const int *fds, size_t n)
{
    int rc = 0;
    if (!srv || (!fds && n > 0))
        return TS_EINVAL;
    for (size_t i = 0; i < n; i++) {
        if (srv->stopped) {
            close(fds[i]);
            rc = rc ? rc : TS_ESTATE;
            continue;
        }
        int r = serve(srv, fds[i]);
        rc = rc ? rc : r;
    }
    return rc;
}

int ts_tcpserver_add_socket(ts_tcpserver *srv, int fd)
{
    return ts_tcpserver_add_sockets(srv, &fd, 1);
}

int ts_tcpserver_listen(ts_tcpserver *srv, int port, const char *address)
{
    int fds[TS_BIND_MAX_SOCKETS];
    if (!srv)
        return TS_EINVAL;
    if (srv->stopped)
        return TS_ESTATE;
    int n = ts_bind_sockets(port, address, AF_UNSPEC, TS_DEFAULT_BACKLOG, 0, fds, TS_BIND_MAX_SOCKETS);
    if (n < 0)
        return n;
    return ts_tcpserver_add_sockets(srv, fds, (size_t)n);
}

int ts_tcpserver_bind(ts_tcpserver *srv, int port, const char *address, int family, int backlog, int flags)
{
    int fds[TS_BIND_MAX_SOCKETS];
    if (!srv)
        return TS_EINVAL;
    if (srv->stopped)
        return TS_ESTATE;
    int n = ts_bind_sockets(port, address, family, backlog, flags, fds, TS_BIND_MAX_SOCKETS);
    if (n < 0)
        return n;
    if (srv->started)
        return ts_tcpserver_add_sockets(srv, fds, (size_t)n);
    if (grow((void **)&srv->pending, &srv->cap_pending, srv->npending + (size_t)n, sizeof(int)) != 0) {
        for (int i = 0; i < n; i++)
            close(fds[i]);
        return TS_ENOMEM;
    }
    memcpy(srv->pending + srv->npending, fds, (size_t)n * sizeof(int));
    srv->npending += (size_t)n;
    return 0;
}

int ts_tcpserver_start(ts_tcpserver *srv, int num_processes, int max_restarts)
{
    if (!srv)
        return TS_EINVAL;
    if (srv->started || srv->stopped || (num_processes != 1 && ts_ioloop_running(srv->loop)))
        return TS_ESTATE;
    srv->started = true;
    if (num_processes != 1) {
        ts__ioloop_before_fork(srv->loop);
        int id = ts_fork_processes(num_processes, max_restarts);
        if (id < 0)
            return id;
        /* The child shares the parent's kernel poll state until told otherwise. */
        ts__ioloop_after_fork(srv->loop);
    }
    int *fds = srv->pending;
    size_t n = srv->npending;
    srv->pending = NULL;
    srv->npending = srv->cap_pending = 0;
    int rc = ts_tcpserver_add_sockets(srv, fds, n);
    ts_free(fds);
    return rc;
}

void ts_tcpserver_stop(ts_tcpserver *srv)
{
    if (!srv || srv->stopped)
        return;
    srv->stopped = true;
    for (size_t i = 0; i < srv->nlisteners; i++) {
        ts_remove_accept_handler(srv->listeners[i].handler);
        close(srv->listeners[i].fd);
    }
    srv->nlisteners = 0;
    for (size_t i = 0; i < srv->npending; i++)
        close(srv->pending[i]);
    srv->npending = 0;
}

void ts_tcpserver_free(ts_tcpserver *srv)
{
    if (!srv)
        return;
    ts_tcpserver_stop(srv);
    if (srv->in_handler > 0)
        srv->free_requested = true;
    else
        destroy(srv);
}

int ts_tcpserver_port(const ts_tcpserver *srv)
{
    int fd = -1;
    if (!srv)
        return TS_EINVAL;
    if (srv->nlisteners > 0)
        fd = srv->listeners[0].fd;
    else if (srv->npending > 0)
        fd = srv->pending[0];
    if (fd < 0)
        return TS_ESTATE;
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
        return -errno;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return TS_ESTATE;
}

size_t ts_tcpserver_sockets(const ts_tcpserver *srv, int *fds, size_t max)
{
    size_t n = 0;
    if (!srv)
        return 0;
    for (size_t i = 0; i < srv->nlisteners; i++, n++)
        if (n < max && fds)
            fds[n] = srv->listeners[i].fd;
    for (size_t i = 0; i < srv->npending; i++, n++)
        if (n < max && fds)
            fds[n] = srv->pending[i];
    return n;
}

ts_ioloop *ts_tcpserver_loop(const ts_tcpserver *srv)
{
    return srv ? srv->loop : NULL;
}
