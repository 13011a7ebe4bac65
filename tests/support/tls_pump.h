/*
 * Drives the TLS transport's ops directly (no loop, no stream) over a pair of
 * sockets with poll(): handshakes and verified bulk transfers. Lets the
 * transport be tested on its own, and the stream tests compare against it.
 */
#ifndef TS_TLS_PUMP_H
#define TS_TLS_PUMP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ssl_int.h"

/** Seconds on the monotonic clock. */
double tu_now(void);

/** The test pattern: byte @p i of an endless deterministic stream (cheap, not periodic at 256). */
static inline uint8_t tu_pattern(uint64_t i) { return (uint8_t)((i * 131u) ^ (i >> 9) ^ (i >> 17)); }
/** Fills @p buf with pattern bytes [@p off, @p off + len). */
void tu_pattern_fill(void *buf, uint64_t off, size_t len);
/** Whether @p buf holds pattern bytes [@p off, @p off + len); on mismatch *bad gets the offset. */
bool tu_pattern_check(const void *buf, uint64_t off, size_t len, uint64_t *bad);

/** A transport over @p fd (fails the test if creation fails). */
ts__ssl_transport *tu_tls_transport(int fd, SSL_CTX *ctx, bool server_side, const char *hostname);

/**
 * Runs both handshakes until each has finished or @p timeout passes. A side
 * that fails has its fd closed so the other sees the end. *rc_c / *rc_s get 0,
 * the error, or TS_ETIMEDOUT.
 */
void tu_tls_handshake(ts__ssl_transport *c, ts__ssl_transport *s, double timeout, int *rc_c, int *rc_s);

/** How tu_tls_pump() hands data to write_to_fd. */
enum {
    TU_PUMP_FRESH = 0, /* one iovec in a freshly allocated buffer each call (the buffer moves) */
    TU_PUMP_SMALL = 1, /* many small iovecs, split differently on every call */
};

/**
 * Sends @p total pattern bytes from @p w to @p r, reading on the other side
 * and checking every byte. Returns 0, the first error, or TS_ETIMEDOUT.
 * *want_writes (may be NULL) counts write calls that returned TS_EWANTWRITE.
 */
int tu_tls_pump(ts__ssl_transport *w, ts__ssl_transport *r, size_t total, int mode, double timeout, int *want_writes);

#endif /* TS_TLS_PUMP_H */
