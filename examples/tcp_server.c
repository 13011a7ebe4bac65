/*
 * tcp_server: messages end with "that is all!"; each one is printed and
 * echoed back. A bare "that is all!" means the client is done: the server
 * closes the connection once every echo has gone out. Written with the future
 * forms of the stream API. While more than EX_WRITE_HIGH_WATER (256 KiB) of
 * echoes is queued, the next message waits for the last write's future
 * (example_flow.h): a client that never reads costs at most that plus one
 * message.
 *
 *   tcp_server PORT [--address ADDR]
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tstream.h>
#include <tstream/tcpserver.h>

#include "example_addr.h"
#include "example_args.h"
#include "example_flow.h"

#define TERMINATOR "that is all!"

static ts_ioloop *g_loop;
static int g_open;

static void serve_next(ts_iostream *s);

/* The echoes queued before the client's last message went out: now close. */
static void on_flushed(ts_future *w, void *arg)
{
    g_open--;
    ts_iostream_free(arg);
    ts_future_unref(w);
}

/* The echoes queued past the mark went out: read the next message. */
static void on_drained(ts_future *w, void *arg)
{
    if (ts_future_error(w) < 0) {
        g_open--;
        ts_iostream_free(arg);
    } else {
        serve_next(arg);
    }
    ts_future_unref(w);
}

/* Runs @p cb once @p w completes; if it cannot, closes the connection. */
static void after_write(ts_iostream *s, ts_future *w, ts_future_cb cb)
{
    if (w && ts_future_add_done_callback(w, cb, s) == 0)
        return;
    ts_future_unref(w);
    g_open--;
    ts_iostream_free(s);
}

static void on_message(ts_future *f, void *arg)
{
    ts_iostream *s = arg;
    ts_bytes *msg = ts_future_result(f);
    if (ts_future_error(f) < 0 || msg->len == strlen(TERMINATOR)) {
        if (ts_future_error(f) < 0)
            printf("connection closed: %s\n", ts_strerror(ts_future_error(f)));
        else
            printf("no more messages\n");
        /* the client is done (or gone): closing at once would drop the echoes still queued */
        after_write(s, ts_iostream_write_future(s, "", 0), on_flushed);
    } else {
        printf("data received: %s\n", msg->data);
        ts_future *w = ts_iostream_write_future(s, msg->data, msg->len);
        if (ex_write_backed_up(s, 0)) {
            after_write(s, w, on_drained);
        } else {
            ts_future_unref(w); /* under the mark: the next read starts now */
            serve_next(s);
        }
    }
    fflush(stdout);
    ts_future_unref(f);
}

static void serve_next(ts_iostream *s)
{
    ts_future *f = ts_iostream_read_until_future(s, TERMINATOR, strlen(TERMINATOR), 1 << 20);
    ts_future_add_done_callback(f, on_message, s);
}

static int on_stream(ts_tcpserver *server, ts_iostream *s, const struct sockaddr *addr, socklen_t addrlen,
                     void *arg)
{
    (void)server, (void)addr, (void)addrlen, (void)arg;
    g_open++;
    serve_next(s);
    return 0;
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

int main(int argc, char **argv)
{
    const char *address = "127.0.0.1";
    int port = -1;
    const char *prog = ex_prog_name(argc, argv, "tcp_server");
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            printf("usage: %s PORT [--address ADDR]\n"
                   "Echoes messages that end with \"" TERMINATOR "\"; a bare \"" TERMINATOR "\" ends the "
                   "connection.\n",
                   prog);
            return 0;
        } else if (!strcmp(a, "--address")) {
            if (!(address = ex_option_value(prog, argc, argv, &i)))
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
    g_loop = ts_ioloop_new();
    ts_tcpserver *server = ts_tcpserver_new(g_loop, on_stream, NULL, NULL);
    int rc = ts_tcpserver_listen(server, port, address);
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
    printf("%s: listening on %s\n", prog, ex_listen_addresses(server, where, sizeof where));
    fflush(stdout);
    ts_ioloop_start(g_loop);
    ts_tcpserver_free(server);
    ts_ioloop_free(g_loop, false);
    if (g_open > 0)
        fprintf(stderr, "%s: stopped with %d connection(s) open\n", prog, g_open);
    return 0;
}
