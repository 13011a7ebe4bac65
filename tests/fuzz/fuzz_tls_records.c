/*
 * libFuzzer target: the TLS record path of a client stream.
 *
 * Each input runs a real handshake between a library TLS client stream
 * (ts_iostream_new_ssl over one end of a socketpair) and an OpenSSL server
 * driven by hand through memory BIOs on the other end. Then the server
 * encrypts the plaintext messages the input asks for (TLS 1.3 or 1.2,
 * with KeyUpdates or a renegotiation request in between, then close_notify
 * or not), and the input decides how those wire bytes reach the stream: in
 * which pieces (the loop runs between pieces, so record boundaries fall
 * anywhere in a read), and whether a piece is corrupted, swapped with the
 * next, followed by garbage, or where the connection is cut.
 *
 *   byte 0      TLS 1.2/1.3, close_notify at the end, KeyUpdate/renegotiation,
 *               how the stream reads (read_until_close_streaming or partial
 *               read_bytes in a loop)
 *   byte 1      number of plaintext messages (1..16)
 *   the rest    message sizes from the front, the delivery script from the back
 *
 * Checked: the stream ends (never hangs) with its read told once and its
 * close callback run once; what it delivered is exactly a prefix of the
 * plaintext (never a wrong byte); with the wire untouched it is all of it,
 * with error 0 after close_notify and TS_ETRUNCATED (or a reset) without;
 * the closing error is one of the clean ones (TS_ESSL, TS_ETRUNCATED,
 * -ECONNRESET, -EPIPE, 0).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "fuzz_common.h"
#include "tls_certs.h"
#include "tstream.h"
#include "tstream/ssl.h"

#define MAX_PLAIN (256 * 1024)

typedef struct session {
    ts_ioloop *loop;
    ts_iostream *s;
    int peer;
    SSL *srv;
    BIO *rbio, *wbio;
    uint8_t *plain;
    size_t plain_len;
    uint8_t *got;
    size_t got_len;
    bool use_bytes, read_done, read_failed;
    int close_calls;
    fz_cursor c;
} session;

static uint8_t pat(size_t i) { return (uint8_t)(i * 167u ^ i >> 5); }

/* ---- the hand-driven server ------------------------------------------------ */

static void pump_in(session *m)
{
    char buf[16384];
    ssize_t n;
    while ((n = read(m->peer, buf, sizeof(buf))) > 0)
        BIO_write(m->rbio, buf, (int)n);
}

/* Writes everything, letting the loop drain the other end as needed. */
static bool send_all(session *m, const uint8_t *p, size_t len)
{
    for (int spins = 0; len > 0 && spins < 10000; spins++) {
        ssize_t n = send(m->peer, p, len, MSG_NOSIGNAL);
        if (n > 0) {
            p += n, len -= (size_t)n;
            continue;
        }
        if (n < 0 && errno != EAGAIN)
            return false; /* the stream closed its end */
        ev_run(ts_ioloop_ev(m->loop), EVRUN_NOWAIT);
        pump_in(m);
    }
    return len == 0;
}

static void pump_out(session *m)
{
    char buf[16384];
    int n;
    while ((n = BIO_read(m->wbio, buf, sizeof(buf))) > 0)
        send_all(m, (uint8_t *)buf, (size_t)n);
}

static bool handshake(session *m)
{
    for (int it = 0; it < 20000; it++) {
        pump_in(m);
        if (!SSL_is_init_finished(m->srv))
            SSL_do_handshake(m->srv);
        pump_out(m);
        ev_run(ts_ioloop_ev(m->loop), EVRUN_NOWAIT);
        if (SSL_is_init_finished(m->srv) && ts_iostream_ssl_handshake_done(m->s))
            return true;
        if (ts_iostream_closed(m->s))
            return false;
    }
    return false;
}

/* Appends what the server wrote to its BIO to the wire buffer. */
static void take_records(session *m, uint8_t **wire, size_t *len, size_t *cap)
{
    char buf[16384];
    int n;
    while ((n = BIO_read(m->wbio, buf, sizeof(buf))) > 0) {
        if (*len + (size_t)n > *cap)
            *wire = realloc(*wire, *cap = 2 * (*len + (size_t)n));
        memcpy(*wire + *len, buf, (size_t)n);
        *len += (size_t)n;
    }
}

/* The server's records for the input's messages, in one buffer. */
static uint8_t *make_wire(session *m, unsigned flags, unsigned nmsg, size_t *wire_len)
{
    size_t cap = 1 << 16, len = 0;
    uint8_t *wire = malloc(cap);
    for (unsigned i = 0; i < nmsg; i++) {
        unsigned a = fz_front(&m->c), b = fz_front(&m->c);
        size_t sz = a & 0x80 ? 1 + (a & 0x7f) : 1 + ((size_t)(a & 0x7f) << 8 | b) * 3;
        if (m->plain_len + sz > MAX_PLAIN)
            sz = MAX_PLAIN - m->plain_len;
        if (sz == 0)
            break;
        if ((flags & 4) && i == nmsg / 2) {
            if (SSL_version(m->srv) >= TLS1_3_VERSION)
                SSL_key_update(m->srv, b & 1 ? SSL_KEY_UPDATE_REQUESTED : SSL_KEY_UPDATE_NOT_REQUESTED);
            else
                SSL_renegotiate(m->srv);
        }
        for (size_t k = 0; k < sz; k++)
            m->plain[m->plain_len + k] = pat(m->plain_len + k);
        int w = SSL_write(m->srv, m->plain + m->plain_len, (int)sz);
        if (w <= 0)
            break; /* e.g. waiting on a renegotiation: what was written is all there is */
        m->plain_len += (size_t)w;
        take_records(m, &wire, &len, &cap);
    }
    if (flags & 2) {
        SSL_shutdown(m->srv);
        take_records(m, &wire, &len, &cap);
    }
    *wire_len = len;
    return wire;
}

/* Sends the wire as the input cuts and damages it. Returns whether it went out untouched. */
static bool deliver(session *m, uint8_t *wire, size_t len)
{
    bool intact = true;
    size_t off = 0;
    while (off < len) {
        unsigned op = fz_back(&m->c), k = fz_back(&m->c);
        size_t piece = fz_left(&m->c) ? 1 + (op & 0x1f) * (k % 67 + 1) : len - off;
        if (piece > len - off)
            piece = len - off;
        switch (op >> 5) {
        case 1: /* a corrupted byte */
            wire[off + k % piece] ^= (uint8_t)(op | 1);
            intact = false;
            break;
        case 2: /* swapped with the next piece of the same size */
            if (off + 2 * piece <= len && memcmp(wire + off, wire + off + piece, piece)) {
                uint8_t tmp[2048];
                size_t l = piece < sizeof(tmp) ? piece : sizeof(tmp);
                memcpy(tmp, wire + off, l);
                memmove(wire + off, wire + off + piece, l);
                memcpy(wire + off + piece, tmp, l);
                intact = false;
            }
            break;
        case 3: /* the connection is cut here */
            if (k < 40) {
                if (!send_all(m, wire + off, k % piece))
                    return false;
                return false;
            }
            break;
        case 4: { /* garbage after the piece */
            if (!send_all(m, wire + off, piece))
                return false;
            off += piece;
            uint8_t junk[3] = {(uint8_t)k, (uint8_t)op, 0x17};
            if (!send_all(m, junk, 1 + k % 3))
                return false;
            intact = false;
            continue;
        }
        default:
            break;
        }
        if (!send_all(m, wire + off, piece))
            return false;
        off += piece;
        /* The loop runs between pieces, so the stream sees each as its own arrival. */
        for (unsigned i = 0; i < 1 + (k & 3); i++)
            ev_run(ts_ioloop_ev(m->loop), EVRUN_NOWAIT);
        pump_in(m);
    }
    return intact;
}

/* ---- the stream's side -------------------------------------------------------- */

static void got(session *m, const char *data, size_t len)
{
    FZ_CHECK(m->got_len + len <= m->plain_len);
    FZ_CHECK(memcmp(data, m->plain + m->got_len, len) == 0); /* never a wrong byte */
    memcpy(m->got + m->got_len, data, len);
    m->got_len += len;
}

static void on_chunk(ts_iostream *s, const char *data, size_t len, void *arg)
{
    (void)s;
    got(arg, data, len);
}

static void on_end(ts_iostream *s, int status, const char *data, size_t len, void *arg)
{
    (void)s;
    session *m = arg;
    FZ_CHECK(!m->read_done);
    FZ_CHECK(status == 0 && len == 0);
    (void)data;
    m->read_done = true;
}

static void on_bytes(ts_iostream *s, int status, const char *data, size_t len, void *arg)
{
    session *m = arg;
    FZ_CHECK(!m->read_done);
    if (status != 0) {
        m->read_done = m->read_failed = true;
        return;
    }
    got(m, data, len);
    int r = ts_iostream_read_bytes(s, 1 + (m->got_len * 7) % 20000, true, on_bytes, m);
    if (r != 0)
        m->read_done = m->read_failed = true;
}

static void on_close(ts_iostream *s, void *arg)
{
    (void)s;
    session *m = arg;
    FZ_CHECK(m->close_calls == 0);
    m->close_calls++;
}

static bool stream_ended(const void *arg)
{
    const session *m = arg;
    return m->read_done && m->close_calls == 1;
}

static SSL_CTX *g_sctx[2], *g_cctx;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static ts_ioloop *loop;
    static uint8_t *plain, *gotbuf;
    if (!loop) {
        fz_quiet_logs();
        loop = ts_ioloop_new();
        const tu_certs *c = tu_certs_get();
        g_sctx[0] = tu_tls_server_ctx(c->server_cert, c->server_key, 0, 0);
        g_sctx[1] = tu_tls_server_ctx(c->server_cert, c->server_key, 0, TLS1_2_VERSION);
        g_cctx = tu_tls_client_ctx(c->ca_cert, 0, 0);
        plain = malloc(MAX_PLAIN);
        gotbuf = malloc(MAX_PLAIN);
    }
    if (size < 2)
        return 0;
    session m = {.loop = loop, .plain = plain, .got = gotbuf};
    unsigned flags = data[0];
    unsigned nmsg = 1 + data[1] % 16;
    m.use_bytes = flags & 8;
    fz_cursor_init(&m.c, data + 2, size - 2);

    int sv[2];
    FZ_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0);
    m.peer = sv[1];
    ts_ssl_options so = {.size = sizeof(so), .ctx = g_cctx, .server_hostname = "localhost"};
    int err = 0;
    m.s = ts_iostream_new_ssl(loop, sv[0], &so, NULL, &err);
    FZ_CHECK(m.s != NULL);
    ts_iostream_set_close_callback(m.s, on_close, &m);
    m.srv = SSL_new(g_sctx[flags & 1]);
    m.rbio = BIO_new(BIO_s_mem());
    m.wbio = BIO_new(BIO_s_mem());
    SSL_set_bio(m.srv, m.rbio, m.wbio);
    SSL_set_accept_state(m.srv);

    FZ_CHECK(handshake(&m)); /* an untouched handshake always succeeds */
    int r = m.use_bytes ? ts_iostream_read_bytes(m.s, 1 + (flags >> 4) * 997, true, on_bytes, &m)
                        : ts_iostream_read_until_close_streaming(m.s, on_chunk, on_end, &m);
    FZ_CHECK(r == 0);
    size_t wire_len;
    uint8_t *wire = make_wire(&m, flags, nmsg, &wire_len);
    bool renegotiated = (flags & 4) && SSL_version(m.srv) < TLS1_3_VERSION;
    bool intact = deliver(&m, wire, wire_len);
    free(wire);
    pump_in(&m); /* read what the stream sent, so closing our end is no reset */
    shutdown(m.peer, SHUT_WR);
    for (int i = 0; i < 50 && !ts_iostream_closed(m.s); i++) {
        ev_run(ts_ioloop_ev(loop), EVRUN_NOWAIT);
        pump_in(&m);
    }
    close(m.peer);
    fz_run_until(loop, stream_ended, &m, "tls records");

    int e = ts_iostream_error(m.s);
    if (!(e == 0 || e == TS_ESSL || e == TS_ETRUNCATED || e == -ECONNRESET || e == -EPIPE)) {
        fprintf(stderr, "tls records: closing error %d (%s)\n", e, ts_strerror(e));
        abort();
    }
    if (intact && !renegotiated) {
        if (m.got_len != m.plain_len)
            fprintf(stderr, "tls records: got %zu of %zu bytes, error %d\n", m.got_len, m.plain_len, e);
        FZ_CHECK(m.got_len == m.plain_len); /* nothing lost */
        FZ_CHECK((flags & 2) ? e == 0 : (e == TS_ETRUNCATED || e == -ECONNRESET));
    }
    ts_iostream_free(m.s);
    SSL_free(m.srv);
    ERR_clear_error();
    for (int i = 0; i < 3; i++)
        ev_run(ts_ioloop_ev(loop), EVRUN_NOWAIT);
    return 0;
}
