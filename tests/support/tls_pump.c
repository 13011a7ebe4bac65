/* Poll-driven handshakes and transfers over the raw TLS transport (see tls_pump.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tls_pump.h"

double tu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void tu_pattern_fill(void *buf, uint64_t off, size_t len)
{
    uint8_t *p = buf;
    for (size_t i = 0; i < len; i++)
        p[i] = tu_pattern(off + i);
}

bool tu_pattern_check(const void *buf, uint64_t off, size_t len, uint64_t *bad)
{
    const uint8_t *p = buf;
    for (size_t i = 0; i < len; i++) {
        if (p[i] != tu_pattern(off + i)) {
            if (bad)
                *bad = off + i;
            return false;
        }
    }
    return true;
}

ts__ssl_transport *tu_tls_transport(int fd, SSL_CTX *ctx, bool server_side, const char *hostname)
{
    ts_ssl_options o = {.size = sizeof o, .ctx = ctx, .server_side = server_side, .server_hostname = hostname};
    int err = 0;
    ts__ssl_transport *t = ts__ssl_transport_new(fd, &o, &err);
    if (t == NULL)
        fail_msg("ts__ssl_transport_new: %s (%s)", ts_strerror(err), ts_ssl_last_error_detail());
    return t;
}

static short interest(int rc) { return rc == TS_EWANTWRITE ? POLLOUT : POLLIN; }

void tu_tls_handshake(ts__ssl_transport *c, ts__ssl_transport *s, double timeout, int *rc_c, int *rc_s)
{
    ts__ssl_transport *t[2] = {c, s};
    int rc[2] = {TS_EWANTREAD, TS_EWANTREAD};
    bool done[2] = {false, false};
    double deadline = tu_now() + timeout;
    while ((!done[0] || !done[1]) && tu_now() < deadline) {
        struct pollfd p[2];
        int np = 0;
        for (int i = 0; i < 2; i++) {
            if (done[i])
                continue;
            rc[i] = ts__ssl_ops.handshake(t[i]);
            if (rc[i] == TS_EWANTREAD || rc[i] == TS_EWANTWRITE) {
                p[np++] = (struct pollfd){.fd = ts__ssl_ops.fileno(t[i]), .events = interest(rc[i])};
                continue;
            }
            done[i] = true;
            if (rc[i] < 0)
                ts__ssl_ops.close_fd(t[i]); /* let the peer see the end */
        }
        if (np > 0)
            poll(p, (nfds_t)np, 20);
    }
    *rc_c = done[0] ? rc[0] : TS_ETIMEDOUT;
    *rc_s = done[1] ? rc[1] : TS_ETIMEDOUT;
}

/* Builds the iovecs for one write call of up to @p n bytes at stream offset @p off. */
static int make_iov(int mode, uint64_t off, size_t n, int round, struct iovec *iov, int max_iov, void **owned)
{
    if (mode == TU_PUMP_FRESH) {
        /* A new block every call: a retried SSL_write sees its data move. */
        void *b = malloc(n);
        assert_non_null(b);
        tu_pattern_fill(b, off, n);
        iov[0] = (struct iovec){b, n};
        *owned = b;
        return 1;
    }
    /* Pieces of 1..~700 bytes, split differently each round. */
    uint8_t *b = malloc(n);
    assert_non_null(b);
    tu_pattern_fill(b, off, n);
    *owned = b;
    int k = 0;
    size_t pos = 0;
    while (pos < n && k < max_iov) {
        size_t piece = 1 + (size_t)((round * 37 + k * 101) % 700);
        if (piece > n - pos || k == max_iov - 1)
            piece = n - pos;
        iov[k++] = (struct iovec){b + pos, piece};
        pos += piece;
    }
    return k;
}

int tu_tls_pump(ts__ssl_transport *w, ts__ssl_transport *r, size_t total, int mode, double timeout, int *want_writes)
{
    enum { MAX_IOV = 256, OFFER = 256 * 1024 };
    uint64_t sent = 0, recvd = 0;
    int wrc = 0, rrc = TS_EWANTREAD, round = 0;
    size_t rcap = 64 * 1024;
    char *rbuf = malloc(rcap);
    assert_non_null(rbuf);
    double deadline = tu_now() + timeout;
    int result = 0;
    if (want_writes)
        *want_writes = 0;
    while (recvd < total) {
        if (tu_now() > deadline) {
            result = TS_ETIMEDOUT;
            break;
        }
        if (sent < total) {
            struct iovec iov[MAX_IOV];
            void *owned = NULL;
            size_t n = TS__MIN(total - sent, (size_t)OFFER);
            int cnt = make_iov(mode, sent, n, round++, iov, MAX_IOV, &owned);
            ssize_t k = ts__ssl_ops.write_to_fd(w, iov, cnt);
            free(owned);
            if (k > 0) {
                sent += (uint64_t)k;
                wrc = 0;
            } else if (k == TS_EWANTWRITE || k == TS_EWANTREAD) {
                wrc = (int)k;
                if (want_writes && k == TS_EWANTWRITE)
                    (*want_writes)++;
            } else {
                result = k < 0 ? (int)k : TS_EINTERNAL;
                break;
            }
        }
        if (sent < total && wrc == 0)
            continue; /* fill the pipe until the writer blocks: that is the case under test */
        ssize_t k = ts__ssl_ops.read_from_fd(r, rbuf, rcap);
        if (k > 0) {
            uint64_t bad = 0;
            if (!tu_pattern_check(rbuf, recvd, (size_t)k, &bad))
                fail_msg("byte %llu differs", (unsigned long long)bad);
            recvd += (uint64_t)k;
            rrc = 0;
            continue;
        }
        if (k == 0) {
            result = TS_ECLOSED;
            break;
        }
        if (k != TS_EWANTREAD && k != TS_EWANTWRITE) {
            result = (int)k;
            break;
        }
        rrc = (int)k;
        struct pollfd p[2];
        int np = 0;
        p[np++] = (struct pollfd){.fd = ts__ssl_ops.fileno(r), .events = interest(rrc)};
        if (sent < total)
            p[np++] = (struct pollfd){.fd = ts__ssl_ops.fileno(w), .events = interest(wrc)};
        poll(p, (nfds_t)np, 20);
    }
    free(rbuf);
    return result;
}
