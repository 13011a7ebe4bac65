/*
 * TLS bulk throughput through a libtstream TLS stream against a hand-written
 * non-blocking OpenSSL loop (raw libev ev_io + SSL_read / SSL_write), in the
 * same run, over the same kind of loopback TCP pair. The far end is the same
 * blocking OpenSSL peer in a helper thread for both, so only the measured
 * side differs:
 *   recv: the peer SSL_writes, we read    (ours: read_bytes_streaming; raw: SSL_read until WANT_READ)
 *   send: we write, the peer SSL_reads    (ours: write_owned, 4 MiB in flight; raw: SSL_write until WANT_WRITE)
 * Same protocol version and cipher on both (TLS 1.3, OpenSSL's default suite).
 * Prints key=value lines; ratio_* = ours / raw throughput (1.0 = as fast as
 * raw). BENCH_MB sets the bytes moved per case (default 512).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <ev.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "tstream.h"
#include "tstream/ssl.h"

#define BLOCK (1u << 20)

static size_t g_total;
static char g_block[BLOCK];
static SSL_CTX *g_server_ctx, *g_client_ctx;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
    fprintf(stderr, "bench_ssl: %s\n", what);
    ERR_print_errors_fp(stderr);
    exit(1);
}

/* A self-signed localhost certificate in memory; the client trusts exactly it. */
static void make_contexts(void)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *cert = X509_new();
    if (key == NULL || cert == NULL)
        die("key generation");
    ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
    X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
    X509_gmtime_adj(X509_getm_notAfter(cert), 24 * 3600);
    X509_set_pubkey(cert, key);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(cert), "CN", MBSTRING_ASC, (const unsigned char *)"localhost", -1,
                               -1, 0);
    X509_set_issuer_name(cert, X509_get_subject_name(cert));
    if (!X509_sign(cert, key, EVP_sha256()))
        die("signing");
    g_server_ctx = SSL_CTX_new(TLS_server_method());
    if (!SSL_CTX_use_certificate(g_server_ctx, cert) || !SSL_CTX_use_PrivateKey(g_server_ctx, key))
        die("server context");
    g_client_ctx = SSL_CTX_new(TLS_client_method());
    X509_STORE_add_cert(SSL_CTX_get_cert_store(g_client_ctx), cert);
    SSL_CTX_set_verify(g_client_ctx, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_min_proto_version(g_server_ctx, TLS1_3_VERSION);
    SSL_CTX_set_min_proto_version(g_client_ctx, TLS1_3_VERSION);
    X509_free(cert);
    EVP_PKEY_free(key);
}

static void tcp_pair(int fds[2])
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    int one = 1;
    int l = socket(AF_INET, SOCK_STREAM, 0);
    if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof a) < 0 || listen(l, 1) < 0 ||
        getsockname(l, (struct sockaddr *)&a, &al) < 0)
        die("listen");
    fds[0] = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(fds[0], (struct sockaddr *)&a, sizeof a) < 0)
        die("connect");
    fds[1] = accept(l, NULL, NULL);
    close(l);
    setsockopt(fds[0], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(fds[1], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/* ---- the far end: a blocking OpenSSL client in a thread ------------------------ */

typedef struct peer {
    int fd;
    bool sends; /* SSL_write g_total bytes, else SSL_read until the end */
    pthread_t thread;
} peer;

static void *peer_main(void *arg)
{
    peer *p = arg;
    SSL *ssl = SSL_new(g_client_ctx);
    SSL_set_fd(ssl, p->fd);
    SSL_set1_host(ssl, "localhost");
    if (SSL_connect(ssl) != 1)
        die("peer handshake");
    static char buf[1 << 16];
    if (p->sends) {
        for (size_t sent = 0; sent < g_total;) {
            int n = (int)(g_total - sent < BLOCK ? g_total - sent : BLOCK);
            int w = SSL_write(ssl, g_block, n);
            if (w <= 0)
                break;
            sent += (size_t)w;
        }
        /* Then read to the end: closing with our session tickets unread would reset the
         * connection and drop whatever the kernel had not yet delivered. */
        SSL_shutdown(ssl);
    }
    while (SSL_read(ssl, buf, sizeof buf) > 0) {
    }
    SSL_shutdown(ssl);
    SSL_free(ssl);
    close(p->fd);
    return NULL;
}

/* Pins the calling thread (or @p t) to one CPU when there are two or more: less scheduler noise. */
static void pin(pthread_t t, int cpu)
{
    if (sysconf(_SC_NPROCESSORS_ONLN) < 2)
        return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    pthread_setaffinity_np(t, sizeof set, &set);
}

static void start_peer(peer *p, int fd, bool sends)
{
    p->fd = fd;
    p->sends = sends;
    pthread_create(&p->thread, NULL, peer_main, p);
    pin(p->thread, 1);
}

/* ---- ours ---------------------------------------------------------------------- */

typedef struct ours {
    ts_ioloop *loop;
    size_t moved, queued;
    int in_flight;
    bool done;
} ours;

static void on_stream_chunk(ts_iostream *s, const char *data, size_t len, void *arg)
{
    (void)s, (void)data;
    ((ours *)arg)->moved += len;
}

static void on_stream_done(ts_iostream *s, int status, const char *data, size_t len, void *arg)
{
    (void)s, (void)data, (void)len;
    ours *o = arg;
    if (status) {
        fprintf(stderr, "bench_ssl: stream read: %s (%s)\n", ts_strerror(status),
                ts_iostream_error_detail(s) ? ts_iostream_error_detail(s) : "");
        exit(1);
    }
    o->done = true;
    ts_ioloop_stop(o->loop);
}

static void queue_writes(ts_iostream *s, ours *o);

static void on_written(ts_iostream *s, int status, void *arg)
{
    ours *o = arg;
    o->in_flight--;
    if (status)
        die("stream write failed");
    if (o->queued < g_total)
        queue_writes(s, o);
    else if (o->in_flight == 0) {
        o->done = true;
        ts_ioloop_stop(o->loop);
    }
}

static void queue_writes(ts_iostream *s, ours *o)
{
    while (o->in_flight < 4 && o->queued < g_total) {
        size_t n = g_total - o->queued < BLOCK ? g_total - o->queued : BLOCK;
        if (ts_iostream_write_owned(s, g_block, n, NULL, on_written, o) < 0)
            die("write_owned");
        o->queued += n;
        o->in_flight++;
    }
}

static void on_handshake(ts_iostream *s, int status, void *arg)
{
    (void)s, (void)status;
    ts_ioloop_stop(arg);
}

static double run_ours(bool recv)
{
    int fds[2];
    tcp_pair(fds);
    peer p;
    start_peer(&p, fds[0], recv);
    ours o = {.loop = ts_ioloop_new()};
    ts_ssl_options so = {.size = sizeof so, .ctx = g_server_ctx, .server_side = true};
    int err = 0;
    ts_iostream *s = ts_iostream_new_ssl(o.loop, fds[1], &so, NULL, &err);
    if (s == NULL || ts_iostream_wait_for_handshake(s, on_handshake, o.loop) < 0)
        die("stream");
    ts_ioloop_start(o.loop); /* the handshake, untimed */
    double t0 = now();
    if (recv)
        ts_iostream_read_bytes_streaming(s, g_total, on_stream_chunk, on_stream_done, &o);
    else
        queue_writes(s, &o);
    ts_ioloop_start(o.loop);
    double dt = now() - t0;
    ts_iostream_free(s);
    ts_ioloop_free(o.loop, false);
    pthread_join(p.thread, NULL);
    return (double)g_total / dt / 1e6;
}

/* ---- raw: libev + non-blocking SSL_read / SSL_write ------------------------------- */

typedef struct raw {
    ev_io io;
    SSL *ssl;
    size_t moved;
    char buf[1 << 16];
} raw;

static void raw_recv_cb(struct ev_loop *ev, ev_io *w, int revents)
{
    (void)revents;
    raw *r = (raw *)w;
    for (;;) {
        int n = SSL_read(r->ssl, r->buf, sizeof r->buf);
        if (n > 0) {
            r->moved += (size_t)n;
            if (r->moved >= g_total) {
                ev_io_stop(ev, w);
                return;
            }
            continue;
        }
        if (SSL_get_error(r->ssl, n) == SSL_ERROR_WANT_READ)
            return;
        die("raw SSL_read");
    }
}

static void raw_send_cb(struct ev_loop *ev, ev_io *w, int revents)
{
    (void)revents;
    raw *r = (raw *)w;
    while (r->moved < g_total) {
        size_t off = r->moved % BLOCK;
        size_t n = g_total - r->moved < BLOCK - off ? g_total - r->moved : BLOCK - off;
        int k = SSL_write(r->ssl, g_block + off, (int)n);
        if (k > 0) {
            r->moved += (size_t)k;
            continue;
        }
        if (SSL_get_error(r->ssl, k) == SSL_ERROR_WANT_WRITE)
            return;
        die("raw SSL_write");
    }
    ev_io_stop(ev, w);
}

static double run_raw(bool recv)
{
    int fds[2];
    tcp_pair(fds);
    peer p;
    start_peer(&p, fds[0], recv);
    static raw r;
    memset(&r, 0, sizeof r);
    r.ssl = SSL_new(g_server_ctx);
    SSL_set_fd(r.ssl, fds[1]);
    if (SSL_accept(r.ssl) != 1) /* blocking, untimed */
        die("raw handshake");
    SSL_set_mode(r.ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    fcntl(fds[1], F_SETFL, fcntl(fds[1], F_GETFL) | O_NONBLOCK);
    struct ev_loop *ev = ev_loop_new(EVFLAG_AUTO);
    ev_io_init(&r.io, recv ? raw_recv_cb : raw_send_cb, fds[1], recv ? EV_READ : EV_WRITE);
    ev_io_start(ev, &r.io);
    double t0 = now();
    ev_run(ev, 0);
    double dt = now() - t0;
    ev_loop_destroy(ev);
    SSL_shutdown(r.ssl);
    SSL_free(r.ssl);
    close(fds[1]);
    pthread_join(p.thread, NULL);
    return (double)g_total / dt / 1e6;
}

int main(void)
{
    const char *mb = getenv("BENCH_MB");
    g_total = (size_t)(mb ? atoi(mb) : 512) << 20;
    signal(SIGPIPE, SIG_IGN); /* the raw side uses OpenSSL's own socket BIO */
    for (size_t i = 0; i < BLOCK; i++)
        g_block[i] = (char)(i * 131u);
    make_contexts();
    pin(pthread_self(), 0);
    printf("bytes_per_case=%zu\nprotocol=TLSv1.3\n", g_total);
    const char *names[] = {"tls_recv", "tls_send"};
    for (int i = 0; i < 2; i++) {
        bool recv = i == 0;
        /* Best of three each, interleaved so drift in the machine's speed hits both alike. */
        double o = 0, r = 0;
        for (int round = 0; round < 3; round++) {
            double x = run_ours(recv), y = run_raw(recv);
            o = x > o ? x : o;
            r = y > r ? y : r;
        }
        printf("%s_ours_MBps=%.1f\n%s_raw_MBps=%.1f\nratio_%s=%.3f\n", names[i], o, names[i], r, names[i], o / r);
    }
    SSL_CTX_free(g_server_ctx);
    SSL_CTX_free(g_client_ctx);
    return 0;
}
