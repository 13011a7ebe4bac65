/*
 * echo_server: a line echo server on TCPServer. Each connection reads a line
 * with read_until("\n"), writes it back unchanged and reads the next; the
 * connection stays open until the client closes it. This is the protocol the
 * benchmark kit drives. While more than EX_WRITE_HIGH_WATER (256 KiB) of
 * echoes is queued, the next line waits until they reached the kernel
 * (example_flow.h): a client that never reads costs at most that plus one
 * line, and one read chunk of what it sent.
 *
 *   echo_server PORT [--address ADDR] [--tls CERT KEY] [--processes N]
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tstream.h>
#include <tstream/ssl.h>
#include <tstream/tcpserver.h>

#include "example_addr.h"
#include "example_args.h"
#include "example_flow.h"

#define MAX_LINE (64u << 20)

/*
 * A connection is its stream and nothing else: no per-connection record.
 * At shutdown ts_ioloop_free() closes the streams still open, and the
 * callbacks it runs for them (the pending read's or write's error) drop
 * our references, so nothing is left behind.
 */
static ts_ioloop *g_loop;

static void on_line(ts_iostream *s, int status, const char *data, size_t len, void *arg);

static void on_flushed(ts_iostream *s, int status, void *arg)
{
    (void)status, (void)arg;
    ts_iostream_free(s);
}

/* The client is done (its EOF) or gone: drop our reference once the echoes still queued went out. */
static void finish(ts_iostream *s)
{
    if (ts_iostream_write(s, "", 0, on_flushed, NULL) < 0)
        ts_iostream_free(s);
}

static void read_next(ts_iostream *s)
{
    int rc = ts_iostream_read_until(s, "\n", 1, MAX_LINE, on_line, NULL);
    if (rc < 0)
        ts_iostream_free(s);
}

static void on_drained(ts_iostream *s, int status, void *arg)
{
    (void)arg;
    if (status < 0) {
        ts_iostream_free(s);
        return;
    }
    read_next(s);
}

static void on_line(ts_iostream *s, int status, const char *data, size_t len, void *arg)
{
    (void)arg;
    if (status < 0) { /* the client closed (or an error) */
        finish(s);
        return;
    }
    if (ex_write_backed_up(s, len)) {
        /* flow control: wait for this write to reach the kernel before reading more */
        if (ts_iostream_write(s, data, len, on_drained, NULL) < 0)
            ts_iostream_free(s);
        return;
    }
    if (ts_iostream_write(s, data, len, NULL, NULL) < 0) {
        ts_iostream_free(s);
        return;
    }
    read_next(s);
}

static int on_stream(ts_tcpserver *server, ts_iostream *s, const struct sockaddr *addr, socklen_t addrlen,
                     void *arg)
{
    (void)server, (void)addr, (void)addrlen, (void)arg;
    return ts_iostream_read_until(s, "\n", 1, MAX_LINE, on_line, NULL);
}

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
            "usage: %s PORT [--address ADDR] [--tls CERT KEY] [--processes N]\n"
            "Line echo server: every line received (ending in \\n) is written back unchanged.\n"
            "  --address ADDR   address to listen on (default 127.0.0.1)\n"
            "  --tls CERT KEY   serve TLS with this certificate and key (PEM files)\n"
            "  --processes N    fork N server processes sharing the port (0: one per CPU)\n",
            prog);
}

int main(int argc, char **argv)
{
    const char *address = "127.0.0.1", *cert = NULL, *key = NULL;
    int port = -1, processes = 1;
    const char *prog = ex_prog_name(argc, argv, "echo_server");
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout, prog);
            return 0;
        } else if (!strcmp(a, "--address")) {
            if (!(address = ex_option_value(prog, argc, argv, &i)))
                return EX_USAGE_STATUS;
        } else if (!strcmp(a, "--tls")) {
            if (i + 2 >= argc)
                return ex_usage_error(prog, "option '--tls' needs CERT and KEY");
            cert = argv[++i];
            key = argv[++i];
        } else if (!strcmp(a, "--processes")) {
            if (!(v = ex_option_value(prog, argc, argv, &i)) || ex_parse_int(prog, "--processes", v, 0, 1024, &processes) < 0)
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

    SSL_CTX *ctx = NULL;
    if (cert) {
        int err = 0;
        ts_ssl_context_options o = {.size = sizeof o, .server_side = true, .cert_file = cert, .key_file = key};
        ctx = ts_ssl_context_new(&o, &err);
        if (!ctx) {
            fprintf(stderr, "%s: TLS setup failed: %s (%s)\n", prog, ts_strerror(err),
                    ts_ssl_last_error_detail() ? ts_ssl_last_error_detail() : "");
            return 1;
        }
    }
    g_loop = ts_ioloop_new();
    ts_tcpserver_options so = {.size = sizeof so, .ssl_ctx = ctx};
    ts_tcpserver *server = ts_tcpserver_new(g_loop, on_stream, NULL, &so);
    if (ctx)
        SSL_CTX_free(ctx); /* the server holds its own reference */
    int rc = server ? ts_tcpserver_bind(server, port, address, AF_UNSPEC, 4096, 0) : TS_ENOMEM;
    if (rc == 0)
        rc = ts_tcpserver_start(server, processes, 100);
    if (rc < 0) {
        fprintf(stderr, "%s: cannot listen on %s port %d: %s\n", prog, address, port, ts_strerror(rc));
        ts_tcpserver_free(server);
        ts_ioloop_free(g_loop, false);
        return 1;
    }
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    char where[EX_LISTEN_MAX * TS_SOCKADDR_STRLEN];
    if (ts_task_id() <= 0)
        fprintf(stderr, "%s: listening on %s%s\n", prog, ex_listen_addresses(server, where, sizeof where),
                ctx ? " (TLS)" : "");
    ts_ioloop_start(g_loop);
    ts_tcpserver_free(server);
    ts_ioloop_free(g_loop, false); /* closes the connections (see the top) */
    return 0;
}
