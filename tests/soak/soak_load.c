/*
 * soak_load: a verifying load generator for the soak test (tests/soak.sh).
 * Plain C and poll(), no libtstream, so it checks the servers independently.
 *
 *   soak_load echo PORT CONNS SECONDS SEED
 *       line echo (examples/echo_server): messages of 1 B .. 64 KiB (random
 *       bytes, no newline, then '\n'), each echo compared byte for byte.
 *   soak_load http PORT CONNS SECONDS SEED ROOT
 *       keep-alive GET /f<i> against examples/http_server --root ROOT; every
 *       status line, Content-Length and body byte is compared with the file.
 *   soak_load mkroot ROOT SEED
 *       writes the files f0..f31 (sizes 1 B .. 64 KiB) the http mode asks for.
 *
 * Every connection pauses at random (0-50 ms) between messages; 5 % of the
 * connections are reset (SO_LINGER 0, close: an RST) at a random moment,
 * mid-message included, and replaced at once. SIGUSR1 prints progress; the
 * summary line on stdout is "soak: ..." and the exit status is 0 only if
 * nothing failed. At the end every connection is closed cleanly.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_MSG (64 * 1024)
#define NFILES 32

static uint64_t g_rng;
static uint32_t rnd(void)
{
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (uint32_t)(g_rng >> 16);
}
static size_t below(size_t n) { return n ? rnd() % n : 0; }

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* File i of the http root: its size and byte j (a function of both, so nothing is stored). */
static size_t file_size(uint64_t seed, int i) { return 1 + (size_t)((seed * 2654435761u + (uint64_t)i * 40503u * 977u) % MAX_MSG); }
static uint8_t file_byte(int i, size_t j) { return (uint8_t)('a' + (j * 7 + (size_t)i * 13 + (j >> 8)) % 26); }

typedef enum { ST_CONNECTING, ST_SENDING, ST_PAUSED } state;

typedef struct conn {
    int fd;
    state st;
    uint8_t *out;       /* echo: the message; http: the request */
    size_t out_len, sent;
    size_t got;         /* echo: bytes of the echo checked; http: body bytes checked */
    char head[1024];    /* http: the response head so far */
    size_t head_len, body_len;
    int file;
    bool in_body;
    double resume_at;
    long reset_at;      /* reset once this many bytes were received in total (-1: never) */
    long received;
} conn;

static struct {
    bool http;
    int port;
    uint64_t seed;
    long opened, messages, resets, failures;
    unsigned long long bytes;
} G;

static void fail(conn *c, const char *what)
{
    fprintf(stderr, "soak_load: connection fd %d: %s\n", c->fd, what);
    G.failures++;
}

static void conn_open(conn *c)
{
    memset(c, 0, sizeof(*c));
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        perror("soak_load: socket");
        exit(2);
    }
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)G.port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(c->fd, (struct sockaddr *)&a, sizeof(a)) < 0 && errno != EINPROGRESS) {
        perror("soak_load: connect");
        exit(2);
    }
    c->st = ST_CONNECTING;
    c->reset_at = below(100) < 5 ? (long)below(4 * MAX_MSG) : -1;
    c->out = malloc(MAX_MSG + 256);
    G.opened++;
}

static void conn_close(conn *c, bool reset)
{
    if (reset) {
        struct linger l = {1, 0};
        setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
    }
    close(c->fd);
    free(c->out);
    c->fd = -1;
}

/* The next message (or request) on this connection. */
static void next_message(conn *c)
{
    c->sent = c->got = 0;
    if (G.http) {
        c->file = (int)below(NFILES);
        c->out_len = (size_t)snprintf((char *)c->out, 256, "GET /f%d HTTP/1.1\r\nHost: soak\r\n\r\n", c->file);
        c->head_len = 0;
        c->in_body = false;
    } else {
        size_t n = 1 + below(rnd() % 4 == 0 ? MAX_MSG : 512);
        for (size_t i = 0; i + 1 < n; i++)
            c->out[i] = (uint8_t)(' ' + below(95));
        c->out[n - 1] = '\n';
        c->out_len = n;
    }
    c->st = ST_SENDING;
}

static void finished_message(conn *c, double t)
{
    G.messages++;
    double pause = below(4) == 0 ? below(50) / 1000.0 : 0;
    c->resume_at = t + pause;
    c->st = ST_PAUSED;
}

/* Checks incoming bytes; returns false if the connection failed. */
static bool take_echo(conn *c, const uint8_t *p, size_t n, double t)
{
    if (c->got + n > c->sent) {
        fail(c, "echo: more bytes than were sent");
        return false;
    }
    if (memcmp(p, c->out + c->got, n) != 0) {
        fail(c, "echo: wrong bytes");
        return false;
    }
    c->got += n;
    G.bytes += n;
    if (c->got == c->out_len)
        finished_message(c, t);
    return true;
}

static bool take_http(conn *c, const uint8_t *p, size_t n, double t)
{
    while (n > 0) {
        if (!c->in_body) {
            if (c->head_len + 1 >= sizeof(c->head)) {
                fail(c, "http: response head too long");
                return false;
            }
            c->head[c->head_len++] = (char)*p++;
            n--;
            c->head[c->head_len] = '\0';
            if (c->head_len < 4 || memcmp(c->head + c->head_len - 4, "\r\n\r\n", 4) != 0)
                continue;
            const char *cl = strcasestr(c->head, "\r\nContent-Length:");
            if (strncmp(c->head, "HTTP/1.1 200 ", 13) != 0 || !cl) {
                fail(c, "http: not a 200 response with a Content-Length");
                return false;
            }
            c->body_len = strtoul(cl + 17, NULL, 10);
            if (c->body_len != file_size(G.seed, c->file)) {
                fail(c, "http: wrong Content-Length");
                return false;
            }
            c->in_body = true;
            continue;
        }
        size_t k = n < c->body_len - c->got ? n : c->body_len - c->got;
        for (size_t j = 0; j < k; j++)
            if (p[j] != file_byte(c->file, c->got + j)) {
                fail(c, "http: wrong body byte");
                return false;
            }
        c->got += k, p += k, n -= k;
        G.bytes += k;
        if (c->got == c->body_len) {
            if (n > 0) {
                fail(c, "http: bytes after the body");
                return false;
            }
            finished_message(c, t);
        }
    }
    return true;
}

/* One poll event; returns false if the connection is to be replaced. */
static bool conn_event(conn *c, short ev, double t)
{
    if (c->st == ST_CONNECTING) {
        int err = 0;
        socklen_t el = sizeof(err);
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
        if (err) {
            fail(c, strerror(err));
            return false;
        }
        next_message(c);
    }
    if ((ev & POLLOUT) && c->st == ST_SENDING && c->sent < c->out_len) {
        ssize_t w = send(c->fd, c->out + c->sent, c->out_len - c->sent, MSG_NOSIGNAL);
        if (w < 0 && errno != EAGAIN) {
            fail(c, "send failed");
            return false;
        }
        if (w > 0)
            c->sent += (size_t)w;
    }
    if (ev & (POLLIN | POLLHUP | POLLERR)) {
        uint8_t buf[65536];
        ssize_t r = recv(c->fd, buf, sizeof(buf), 0);
        if (r == 0 || (r < 0 && errno != EAGAIN)) {
            fail(c, r == 0 ? "server closed the connection" : "recv failed");
            return false;
        }
        if (r > 0) {
            if (c->st == ST_PAUSED) {
                fail(c, "bytes while none were asked for");
                return false;
            }
            c->received += r;
            if (!(G.http ? take_http(c, buf, (size_t)r, t) : take_echo(c, buf, (size_t)r, t)))
                return false;
        }
    }
    if (c->reset_at >= 0 && c->received >= c->reset_at) {
        G.resets++;
        conn_close(c, true);
        return false;
    }
    return true;
}

static int mkroot(const char *root, uint64_t seed)
{
    char path[4096];
    static uint8_t buf[MAX_MSG];
    for (int i = 0; i < NFILES; i++) {
        size_t n = file_size(seed, i);
        for (size_t j = 0; j < n; j++)
            buf[j] = file_byte(i, j);
        snprintf(path, sizeof(path), "%s/f%d", root, i);
        FILE *f = fopen(path, "wb");
        if (!f || fwrite(buf, 1, n, f) != n || fclose(f) != 0) {
            perror(path);
            return 2;
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 4 && !strcmp(argv[1], "mkroot"))
        return mkroot(argv[2], strtoull(argv[3], NULL, 0));
    if (argc < 6 || (strcmp(argv[1], "echo") && strcmp(argv[1], "http"))) {
        fprintf(stderr, "usage: soak_load echo|http PORT CONNS SECONDS SEED [ROOT] | soak_load mkroot ROOT SEED\n");
        return 2;
    }
    G.http = !strcmp(argv[1], "http");
    G.port = atoi(argv[2]);
    int nconn = atoi(argv[3]);
    double seconds = atof(argv[4]);
    G.seed = strtoull(argv[5], NULL, 0);
    g_rng = G.seed * 0x9E3779B97F4A7C15ull + 1;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)nconn + 64) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    conn *cs = calloc((size_t)nconn, sizeof(conn));
    struct pollfd *pf = calloc((size_t)nconn, sizeof(struct pollfd));
    for (int i = 0; i < nconn; i++)
        conn_open(&cs[i]);
    double end = now() + seconds;
    double t;
    while ((t = now()) < end && G.failures == 0) {
        for (int i = 0; i < nconn; i++) {
            conn *c = &cs[i];
            if (c->st == ST_PAUSED && t >= c->resume_at)
                next_message(c);
            pf[i].fd = c->fd;
            pf[i].events = c->st == ST_CONNECTING || (c->st == ST_SENDING && c->sent < c->out_len) ? POLLOUT : 0;
            pf[i].events |= c->st == ST_CONNECTING ? 0 : POLLIN;
            pf[i].revents = 0;
        }
        if (poll(pf, (nfds_t)nconn, 10) < 0 && errno != EINTR) {
            perror("soak_load: poll");
            return 2;
        }
        t = now();
        for (int i = 0; i < nconn; i++) {
            if (!pf[i].revents)
                continue;
            if (!conn_event(&cs[i], pf[i].revents, t)) {
                if (cs[i].fd >= 0)
                    conn_close(&cs[i], false);
                conn_open(&cs[i]); /* replaced at once */
            }
        }
    }
    for (int i = 0; i < nconn; i++)
        conn_close(&cs[i], false);
    printf("soak: %s seed %llu: %d connections, %ld opened, %ld resets, %ld messages verified, %.1f MiB "
           "verified, %ld failures\n", argv[1], (unsigned long long)G.seed, nconn, G.opened, G.resets, G.messages,
           G.bytes / 1048576.0, G.failures);
    free(cs);
    free(pf);
    return G.failures ? 1 : 0;
}
