/*
 * callback_client: the classic callback chain on one stream. Connect, send a
 * request, read the head up to the blank line, read the body by its
 * Content-Length, print it, stop.
 *
 *   callback_client HOST PORT [PATH]
 */
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <tstream.h>

#include "example_args.h"

/* The name the program was run as, for its messages. */
static const char *g_prog = "callback_client";

typedef struct request {
    char text[512];
    char peer[TS_SOCKADDR_STRLEN]; /* the address connected to, for messages */
    int status;
} request;

static void stop(ts_iostream *s, request *req, int status)
{
    req->status = status;
    ts_ioloop_stop(ts_iostream_loop(s));
}

static void on_body(ts_iostream *s, int status, const char *data, size_t len, void *arg)
{
    if (status < 0) {
        fprintf(stderr, "%s: reading the body: %s\n", g_prog, ts_strerror(status));
        stop(s, arg, 1);
        return;
    }
    fwrite(data, 1, len, stdout);
    stop(s, arg, 0);
}

static void on_headers(ts_iostream *s, int status, const char *data, size_t len, void *arg)
{
    if (status < 0) {
        fprintf(stderr, "%s: reading the headers: %s\n", g_prog, ts_strerror(status));
        stop(s, arg, 1);
        return;
    }
    fwrite(data, 1, len, stderr); /* the head goes to stderr, the body to stdout */
    long long length = -1;
    for (const char *p = data; p && p < data + len; p = memchr(p, '\n', (size_t)(data + len - p))) {
        if (*p == '\n')
            p++;
        if (!strncasecmp(p, "Content-Length:", 15))
            length = atoll(p + 15);
    }
    if (length < 0) {
        fprintf(stderr, "%s: the response has no Content-Length\n", g_prog);
        stop(s, arg, 1);
        return;
    }
    ts_iostream_read_bytes(s, (size_t)length, false, on_body, arg);
}

static void send_request(ts_iostream *s, int status, void *arg)
{
    request *req = arg;
    if (status < 0) {
        fprintf(stderr, "%s: connect to %s: %s\n", g_prog, req->peer, ts_strerror(status));
        stop(s, req, 1);
        return;
    }
    ts_iostream_write(s, req->text, strlen(req->text), NULL, NULL);
    ts_iostream_read_until(s, "\r\n\r\n", 4, 64 * 1024, on_headers, req);
}

static void on_timeout(ts_ioloop *loop, void *arg)
{
    fprintf(stderr, "%s: no answer within 30 seconds\n", g_prog);
    ((request *)arg)->status = 1;
    ts_ioloop_stop(loop);
}

int main(int argc, char **argv)
{
    g_prog = ex_prog_name(argc, argv, g_prog);
    if (argc < 3 || !strcmp(argv[1], "--help")) {
        printf("usage: %s HOST PORT [PATH]\nFetches PATH (default /) with HTTP/1.0 through a callback chain.\n",
               g_prog);
        return argc < 3 && (argc < 2 || strcmp(argv[1], "--help")) ? 2 : 0;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai;
    int gai = getaddrinfo(argv[1], argv[2], &hints, &ai);
    if (gai != 0) {
        fprintf(stderr, "%s: %s: %s\n", g_prog, argv[1], gai_strerror(gai));
        return 1;
    }
    request req = {.status = 1};
    snprintf(req.text, sizeof req.text, "GET %s HTTP/1.0\r\nHost: %s\r\n\r\n", argc > 3 ? argv[3] : "/", argv[1]);
    ts_sockaddr_str(ai->ai_addr, ai->ai_addrlen, req.peer, sizeof req.peer);
    ts_ioloop *loop = ts_ioloop_new();
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ts_iostream *s = fd >= 0 ? ts_iostream_new_socket(loop, fd, NULL) : NULL;
    int rc = s ? ts_iostream_connect(s, ai->ai_addr, ai->ai_addrlen, send_request, &req) : TS_ENOMEM;
    freeaddrinfo(ai);
    if (rc < 0) {
        fprintf(stderr, "%s: %s\n", g_prog, ts_strerror(rc));
    } else {
        ts_ioloop_call_later(loop, 30, on_timeout, &req);
        ts_ioloop_start(loop);
    }
    ts_iostream_free(s);
    ts_ioloop_free(loop, false);
    return req.status;
}
