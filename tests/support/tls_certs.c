/* Test certificate generation with the OpenSSL API (see tls_certs.h). */
#include "tls_certs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#define DAY (24L * 3600L)

typedef struct cert_spec {
    const char *cn;
    const char *san;            /* subjectAltName value, or NULL */
    const char *eku;            /* extendedKeyUsage value, or NULL */
    bool ca;
    long not_before, not_after; /* seconds from now */
} cert_spec;

static int add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX v3;
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, issuer, cert, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
    if (ext == NULL)
        return -1;
    int ok = X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
    return ok ? 0 : -1;
}

/* A certificate for @p key, issued by (issuer, issuer_key), or self-signed when issuer is NULL. */
static X509 *make_cert(const cert_spec *sp, EVP_PKEY *key, X509 *issuer, EVP_PKEY *issuer_key)
{
    static long serial = 1000;
    X509 *c = X509_new();
    if (c == NULL)
        return NULL;
    X509_set_version(c, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(c), serial++);
    X509_gmtime_adj(X509_getm_notBefore(c), sp->not_before);
    X509_gmtime_adj(X509_getm_notAfter(c), sp->not_after);
    X509_set_pubkey(c, key);
    X509_NAME *name = X509_get_subject_name(c);
    X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)"tstream test", -1, -1, 0);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)sp->cn, -1, -1, 0);
    X509 *iss = issuer ? issuer : c;
    X509_set_issuer_name(c, X509_get_subject_name(iss));
    int bad = 0;
    if (sp->ca) {
        bad |= add_ext(c, iss, NID_basic_constraints, "critical,CA:TRUE");
        bad |= add_ext(c, iss, NID_key_usage, "critical,keyCertSign,cRLSign");
    } else {
        bad |= add_ext(c, iss, NID_basic_constraints, "critical,CA:FALSE");
        bad |= add_ext(c, iss, NID_key_usage, "critical,digitalSignature,keyEncipherment");
    }
    bad |= add_ext(c, iss, NID_subject_key_identifier, "hash");
    if (issuer != NULL)
        bad |= add_ext(c, iss, NID_authority_key_identifier, "keyid:always");
    if (sp->san)
        bad |= add_ext(c, iss, NID_subject_alt_name, sp->san);
    if (sp->eku)
        bad |= add_ext(c, iss, NID_ext_key_usage, sp->eku);
    if (bad || !X509_sign(c, issuer_key ? issuer_key : key, EVP_sha256())) {
        X509_free(c);
        return NULL;
    }
    return c;
}

static int write_pem(const char *path, X509 *cert, EVP_PKEY *key)
{
    FILE *f = fopen(path, "w");
    if (f == NULL)
        return -1;
    int ok = cert ? PEM_write_X509(f, cert) : PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL);
    if (key != NULL)
        fchmod(fileno(f), 0600);
    return (fclose(f) == 0 && ok) ? 0 : -1;
}

/* Generates one leaf (or CA) and writes cert_path (+ key_path if given). */
static int issue(const cert_spec *sp, X509 *issuer, EVP_PKEY *issuer_key, const char *cert_path, const char *key_path,
                 X509 **cert_out, EVP_PKEY **key_out)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *cert = key ? make_cert(sp, key, issuer, issuer_key) : NULL;
    int rc = -1;
    if (cert != NULL && write_pem(cert_path, cert, NULL) == 0 && (key_path == NULL || write_pem(key_path, NULL, key) == 0))
        rc = 0;
    if (rc == 0 && cert_out != NULL) {
        *cert_out = cert;
        *key_out = key;
        return 0;
    }
    X509_free(cert);
    EVP_PKEY_free(key);
    return rc;
}

static void path(char *out, const tu_certs *c, const char *name)
{
    size_t n = strlen(c->dir);
    memcpy(out, c->dir, n);
    out[n] = '/';
    snprintf(out + n + 1, PATH_MAX - n - 1, "%s", name);
}

int tu_certs_create(tu_certs *c)
{
    memset(c, 0, sizeof *c);
    const char *tmp = getenv("TMPDIR");
    snprintf(c->dir, sizeof c->dir, "%s/tstream-certs-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (mkdtemp(c->dir) == NULL) {
        perror("tu_certs_create: mkdtemp");
        return -1;
    }
    path(c->ca_cert, c, "ca.pem");
    path(c->other_ca_cert, c, "other-ca.pem");
    path(c->server_cert, c, "server.pem");
    path(c->server_key, c, "server.key");
    path(c->expired_cert, c, "expired.pem");
    path(c->expired_key, c, "expired.key");
    path(c->other_cert, c, "other.pem");
    path(c->other_key, c, "other.key");
    path(c->client_cert, c, "client.pem");
    path(c->client_key, c, "client.key");
    path(c->selfsigned_cert, c, "selfsigned.pem");
    path(c->selfsigned_key, c, "selfsigned.key");

    const char *san = "DNS:localhost,IP:127.0.0.1,IP:::1";
    const cert_spec ca = {"tstream test CA", NULL, NULL, true, -DAY, 30 * DAY};
    const cert_spec other_ca = {"tstream other CA", NULL, NULL, true, -DAY, 30 * DAY};
    const cert_spec server = {"localhost", san, "serverAuth", false, -DAY, 30 * DAY};
    const cert_spec expired = {"localhost", san, "serverAuth", false, -3 * DAY, -DAY};
    const cert_spec other = {"other.example", "DNS:other.example", "serverAuth", false, -DAY, 30 * DAY};
    const cert_spec client = {"tstream client", NULL, "clientAuth", false, -DAY, 30 * DAY};
    const cert_spec self = {"localhost", san, "serverAuth", false, -DAY, 30 * DAY};

    X509 *ca_cert = NULL;
    EVP_PKEY *ca_key = NULL;
    int rc = -1;
    if (issue(&ca, NULL, NULL, c->ca_cert, NULL, &ca_cert, &ca_key) == 0 &&
        issue(&other_ca, NULL, NULL, c->other_ca_cert, NULL, NULL, NULL) == 0 &&
        issue(&server, ca_cert, ca_key, c->server_cert, c->server_key, NULL, NULL) == 0 &&
        issue(&expired, ca_cert, ca_key, c->expired_cert, c->expired_key, NULL, NULL) == 0 &&
        issue(&other, ca_cert, ca_key, c->other_cert, c->other_key, NULL, NULL) == 0 &&
        issue(&client, ca_cert, ca_key, c->client_cert, c->client_key, NULL, NULL) == 0 &&
        issue(&self, NULL, NULL, c->selfsigned_cert, c->selfsigned_key, NULL, NULL) == 0)
        rc = 0;
    X509_free(ca_cert);
    EVP_PKEY_free(ca_key);
    if (rc < 0) {
        fprintf(stderr, "tu_certs_create: generating certificates failed\n");
        ERR_print_errors_fp(stderr);
        tu_certs_destroy(c);
    }
    ERR_clear_error();
    return rc;
}

void tu_certs_destroy(tu_certs *c)
{
    char *files[] = {c->ca_cert,     c->other_ca_cert, c->server_cert, c->server_key,
                     c->expired_cert, c->expired_key,  c->other_cert,  c->other_key,
                     c->client_cert, c->client_key,    c->selfsigned_cert, c->selfsigned_key};
    if (c->dir[0] == '\0')
        return;
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        if (files[i][0] != '\0')
            unlink(files[i]);
    rmdir(c->dir);
    c->dir[0] = '\0';
}

static tu_certs g_certs;
static bool g_certs_ready;
static pid_t g_certs_owner;

static void certs_cleanup(void)
{
    /* Only the process that made them: forked children exit through here too. */
    if (g_certs_ready && getpid() == g_certs_owner)
        tu_certs_destroy(&g_certs);
}

const tu_certs *tu_certs_get(void)
{
    if (!g_certs_ready) {
        if (tu_certs_create(&g_certs) < 0)
            abort();
        g_certs_ready = true;
        g_certs_owner = getpid();
        atexit(certs_cleanup);
    }
    return &g_certs;
}

/* ---- small TLS fixtures ----------------------------------------------------- */

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include "tstream/ssl.h"

SSL_CTX *tu_tls_server_ctx(const char *cert, const char *key, int min, int max)
{
    ts_ssl_context_options o = {.size = sizeof o, .server_side = true, .cert_file = cert, .key_file = key,
                                .min_version = min, .max_version = max};
    int err = 0;
    SSL_CTX *ctx = ts_ssl_context_new(&o, &err);
    if (ctx == NULL) {
        fprintf(stderr, "tu_tls_server_ctx: %d %s\n", err, ts_ssl_last_error_detail());
        abort();
    }
    return ctx;
}

SSL_CTX *tu_tls_client_ctx(const char *ca_file, int min, int max)
{
    ts_ssl_context_options o = {.size = sizeof o, .ca_file = ca_file, .min_version = min, .max_version = max};
    int err = 0;
    SSL_CTX *ctx = ts_ssl_context_new(&o, &err);
    if (ctx == NULL) {
        fprintf(stderr, "tu_tls_client_ctx: %d %s\n", err, ts_ssl_last_error_detail());
        abort();
    }
    return ctx;
}

int tu_tcp_listen(int *port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    int one = 1;
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (l < 0)
        return -1;
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(l, (struct sockaddr *)&a, sizeof a) < 0 || listen(l, 64) < 0 ||
        getsockname(l, (struct sockaddr *)&a, &al) < 0) {
        close(l);
        return -1;
    }
    *port = ntohs(a.sin_port);
    return l;
}

int tu_tcp_pair(int fds[2])
{
    int port;
    int l = tu_tcp_listen(&port);
    if (l < 0)
        return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    if (c < 0 || connect(c, (struct sockaddr *)&a, sizeof a) < 0) {
        if (c >= 0)
            close(c);
        close(l);
        return -1;
    }
    int s = accept4(l, NULL, NULL, SOCK_CLOEXEC);
    close(l);
    if (s < 0) {
        close(c);
        return -1;
    }
    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    fds[0] = c;
    fds[1] = s;
    return 0;
}
