/*
 * Test certificates, generated at run time with the OpenSSL API into a fresh
 * mkdtemp() directory (no private key is ever committed). EC P-256 keys, so
 * generation stays fast under sanitizers. Every certificate but the
 * self-signed one is issued by the test CA.
 */
#ifndef TS_TLS_CERTS_H
#define TS_TLS_CERTS_H

#include <limits.h>
#include <stdbool.h>

/** Paths of the generated PEM files (each NUL-terminated). */
typedef struct tu_certs {
    char dir[PATH_MAX];
    /** The test CA's certificate: trust this to verify the others. */
    char ca_cert[PATH_MAX];
    /** A second, unrelated CA: trusting only it makes every cert below untrusted. */
    char other_ca_cert[PATH_MAX];
    /** CN=localhost, SAN DNS:localhost, IP:127.0.0.1, IP:::1; serverAuth. */
    char server_cert[PATH_MAX], server_key[PATH_MAX];
    /** As server, but valid only in the past (expired yesterday). */
    char expired_cert[PATH_MAX], expired_key[PATH_MAX];
    /** CN/SAN other.example: a good certificate for another name. */
    char other_cert[PATH_MAX], other_key[PATH_MAX];
    /** A client certificate (clientAuth), CN=tstream client. */
    char client_cert[PATH_MAX], client_key[PATH_MAX];
    /** A self-signed localhost certificate, trusted by nothing. */
    char selfsigned_cert[PATH_MAX], selfsigned_key[PATH_MAX];
} tu_certs;

/** Generates every file. Returns 0, or -1 (with a message on stderr). */
int tu_certs_create(tu_certs *c);

/** Removes the files and the directory. */
void tu_certs_destroy(tu_certs *c);

/**
 * The process-wide set, created on first use and removed at exit (atexit).
 * Aborts the test program if generation fails.
 */
const tu_certs *tu_certs_get(void);

/* ---- small TLS fixtures -------------------------------------------------- */

#include <openssl/ssl.h>

/**
 * A server context from the library's builder: @p cert / @p key, protocol
 * versions [@p min, @p max] (0: defaults), no ALPN. Fails the test on error.
 */
SSL_CTX *tu_tls_server_ctx(const char *cert, const char *key, int min, int max);

/** A client context trusting only @p ca_file (NULL: the system store), versions as above. */
SSL_CTX *tu_tls_client_ctx(const char *ca_file, int min, int max);

/** A connected loopback TCP pair (blocking); returns 0 or -1. */
int tu_tcp_pair(int fds[2]);

/** A listening loopback TCP socket on a free port; *port receives it. -1 on error. */
int tu_tcp_listen(int *port);

#endif /* TS_TLS_CERTS_H */
