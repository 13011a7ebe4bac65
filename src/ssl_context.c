/*
 * TLS contexts: ts_ssl_context_new() with secure defaults, the shared default
 * client context, server-side ALPN selection, and turning OpenSSL's error
 * queue into the reason text kept on streams. Knows nothing of streams, fds
 * or the loop.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "ssl_int.h"

static _Thread_local char g_last_detail[TS__SSL_DETAIL_LEN];

const char *ts_ssl_last_error_detail(void) { return g_last_detail; }

void ts__ssl_set_last_error(const char *detail)
{
    snprintf(g_last_detail, sizeof g_last_detail, "%s", detail ? detail : "");
}

void ts__ssl_format_error(char *buf, size_t len, const SSL *ssl, const char *fallback)
{
    const char *data = NULL;
    int flags = 0;
    /* The earliest entry is the cause ("No such file or directory"); later
     * ones only say which layer passed it up ("system lib"). */
    unsigned long e = ERR_peek_error_all(NULL, NULL, NULL, &data, &flags);

    if (e == 0) {
        snprintf(buf, len, "%s", fallback ? fallback : "");
        return;
    }
    const char *reason = ERR_SYSTEM_ERROR(e) ? strerror(ERR_GET_REASON(e)) : ERR_reason_error_string(e);
    char generic[128];
    if (reason == NULL) {
        ERR_error_string_n(e, generic, sizeof generic);
        reason = generic;
    }
    if (ssl != NULL && ERR_GET_LIB(e) == ERR_LIB_SSL && ERR_GET_REASON(e) == SSL_R_CERTIFICATE_VERIFY_FAILED) {
        /* OpenSSL's reason alone does not say *why* (expired, unknown CA,
         * hostname mismatch): append the verify result, as Python does. */
        long vr = SSL_get_verify_result(ssl);
        const char *why = vr == X509_V_ERR_HOSTNAME_MISMATCH ? "Hostname mismatch"
                          : vr == X509_V_ERR_IP_ADDRESS_MISMATCH ? "IP address mismatch"
                                                                 : X509_verify_cert_error_string(vr);
        snprintf(buf, len, "%s: %s", reason, why);
    } else if (data != NULL && (flags & ERR_TXT_STRING) && data[0] != '\0') {
        snprintf(buf, len, "%s (%s)", reason, data);
    } else {
        snprintf(buf, len, "%s", reason);
    }
    ERR_clear_error();
}

/* Records OpenSSL's reason as the thread's last error and returns TS_ESSL. */
static int ssl_fail(const char *what)
{
    char reason[TS__SSL_DETAIL_LEN - 64];
    char msg[TS__SSL_DETAIL_LEN];
    ts__ssl_format_error(reason, sizeof reason, NULL, "unknown OpenSSL error");
    snprintf(msg, sizeof msg, "%.48s: %s", what, reason);
    ts__ssl_set_last_error(msg);
    ts_log(TS_LOG_WARN, "TLS context: %s", msg);
    return TS_ESSL;
}

static int invalid(const char *what)
{
    ts__ssl_set_last_error(what);
    return TS_EINVAL;
}

/* ---- ALPN ------------------------------------------------------------- */

/* A protocol list in wire format (length-prefixed names), owned by the context. */
typedef struct alpn_list {
    unsigned int len;
    unsigned char data[];
} alpn_list;

static int g_alpn_index = -1;
static pthread_once_t g_alpn_once = PTHREAD_ONCE_INIT;

static void alpn_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
    TS__UNUSED(parent), TS__UNUSED(ad), TS__UNUSED(idx), TS__UNUSED(argl), TS__UNUSED(argp);
    OPENSSL_free(ptr);
}

static void alpn_index_init(void) { g_alpn_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, alpn_free); }

static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
                       unsigned int inlen, void *arg)
{
    TS__UNUSED(ssl);
    const alpn_list *mine = arg;
    /* Our list first: the server's preference order wins. */
    if (SSL_select_next_proto((unsigned char **)out, outlen, mine->data, mine->len, in, inlen) !=
        OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK;
    return SSL_TLSEXT_ERR_OK;
}

static int set_alpn(SSL_CTX *ctx, const char *const *protos, bool server_side)
{
    size_t total = 0;
    for (const char *const *p = protos; *p != NULL; p++) {
        size_t n = strlen(*p);
        if (n == 0 || n > 255)
            return invalid("ALPN protocol names must be 1..255 bytes");
        total += n + 1;
    }
    if (total == 0 || total > 65535)
        return invalid("ALPN protocol list must hold 1..65535 bytes");
    alpn_list *list = OPENSSL_malloc(sizeof *list + total);
    if (list == NULL)
        return TS_ENOMEM;
    list->len = (unsigned int)total;
    unsigned char *w = list->data;
    for (const char *const *p = protos; *p != NULL; p++) {
        size_t n = strlen(*p);
        *w++ = (unsigned char)n;
        memcpy(w, *p, n);
        w += n;
    }
    int rc = 0;
    if (server_side) {
        pthread_once(&g_alpn_once, alpn_index_init);
        if (g_alpn_index < 0 || !SSL_CTX_set_ex_data(ctx, g_alpn_index, list)) {
            OPENSSL_free(list);
            return ssl_fail("ALPN");
        }
        SSL_CTX_set_alpn_select_cb(ctx, alpn_select, list);
        return 0;
    }
    /* Note: SSL_CTX_set_alpn_protos returns 0 on success, unlike its neighbours. */
    if (SSL_CTX_set_alpn_protos(ctx, list->data, list->len) != 0)
        rc = ssl_fail("ALPN");
    OPENSSL_free(list);
    return rc;
}

/* ---- the builder -------------------------------------------------------- */

static int set_versions(SSL_CTX *ctx, const ts_ssl_context_options *o)
{
    int min = o->min_version ? o->min_version : TLS1_2_VERSION;
    if (!SSL_CTX_set_min_proto_version(ctx, min))
        return invalid("unsupported min_version");
    if (o->max_version && !SSL_CTX_set_max_proto_version(ctx, o->max_version))
        return invalid("unsupported max_version");
    if (o->max_version && o->max_version < min)
        return invalid("max_version is below min_version");
    return 0;
}

static int set_verify(SSL_CTX *ctx, const ts_ssl_context_options *o)
{
    int mode;
    switch (o->verify) {
    case TS_SSL_VERIFY_DEFAULT:
        mode = o->server_side ? SSL_VERIFY_NONE : SSL_VERIFY_PEER;
        break;
    case TS_SSL_VERIFY_NONE:
        mode = SSL_VERIFY_NONE;
        break;
    case TS_SSL_VERIFY_OPTIONAL:
        mode = SSL_VERIFY_PEER;
        break;
    case TS_SSL_VERIFY_REQUIRED:
        mode = SSL_VERIFY_PEER | (o->server_side ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0);
        break;
    default:
        return invalid("unknown verify mode");
    }
    SSL_CTX_set_verify(ctx, mode, NULL);
    if (mode == SSL_VERIFY_NONE)
        return 0;
    if (o->ca_file != NULL || o->ca_dir != NULL) {
        if (!SSL_CTX_load_verify_locations(ctx, o->ca_file, o->ca_dir))
            return ssl_fail("loading CA certificates");
        if (o->server_side && o->ca_file != NULL) {
            /* Tell clients which CAs we accept, so they pick the right certificate. */
            STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(o->ca_file);
            if (names != NULL)
                SSL_CTX_set_client_CA_list(ctx, names);
            ERR_clear_error();
        }
    } else if (!SSL_CTX_set_default_verify_paths(ctx)) {
        return ssl_fail("loading the system CA store");
    }
    if (o->server_side) {
        /* Without a session id context, resuming a session whose client was
         * verified fails the handshake ("session id context uninitialized"). */
        static const unsigned char sid_ctx[] = "tstream";
        SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof sid_ctx - 1);
    }
    return 0;
}

static int load_identity(SSL_CTX *ctx, const ts_ssl_context_options *o)
{
    if (o->cert_file == NULL) {
        if (o->key_file != NULL)
            return invalid("key_file without cert_file");
        return o->server_side ? invalid("a server context needs cert_file") : 0;
    }
    if (SSL_CTX_use_certificate_chain_file(ctx, o->cert_file) != 1)
        return ssl_fail("loading cert_file");
    const char *key = o->key_file ? o->key_file : o->cert_file;
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1)
        return ssl_fail("loading key_file");
    if (SSL_CTX_check_private_key(ctx) != 1)
        return ssl_fail("checking the private key");
    return 0;
}

static int configure(SSL_CTX *ctx, const ts_ssl_context_options *o)
{
    int rc;
    /* Renegotiation is a DoS lever and a source of WANT_READ-on-write
     * surprises; compression invites CRIME. */
    long ops = SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION;
    if (o->server_side)
        ops |= SSL_OP_CIPHER_SERVER_PREFERENCE;
    SSL_CTX_set_options(ctx, ops);
    if ((rc = set_versions(ctx, o)) < 0 || (rc = set_verify(ctx, o)) < 0 || (rc = load_identity(ctx, o)) < 0)
        return rc;
    if (o->ciphers != NULL && SSL_CTX_set_cipher_list(ctx, o->ciphers) != 1)
        return ssl_fail("ciphers");
    if (o->ciphersuites != NULL && SSL_CTX_set_ciphersuites(ctx, o->ciphersuites) != 1)
        return ssl_fail("ciphersuites");
    if (o->alpn_protocols != NULL && (rc = set_alpn(ctx, o->alpn_protocols, o->server_side)) < 0)
        return rc;
    if (o->server_side && o->num_tickets != 0)
        SSL_CTX_set_num_tickets(ctx, o->num_tickets < 0 ? 0 : (size_t)o->num_tickets);
    return 0;
}

SSL_CTX *ts_ssl_context_new(const ts_ssl_context_options *opts, int *err)
{
    ts_ssl_context_options o = {.size = sizeof o};
    int dummy;
    if (err == NULL)
        err = &dummy;
    *err = 0;
    ts__ssl_set_last_error(NULL);
    if (opts != NULL) {
        if (opts->size == 0 || opts->size > sizeof o) {
            *err = invalid("ts_ssl_context_options.size is not set");
            return NULL;
        }
        memcpy(&o, opts, opts->size);
    }
    ERR_clear_error();
    SSL_CTX *ctx = SSL_CTX_new(o.server_side ? TLS_server_method() : TLS_client_method());
    if (ctx == NULL) {
        *err = ssl_fail("SSL_CTX_new");
        return NULL;
    }
    int rc = configure(ctx, &o);
    if (rc < 0) {
        SSL_CTX_free(ctx);
        *err = rc;
        return NULL;
    }
    return ctx;
}

/* ---- the shared default client context ---------------------------------- */

static pthread_mutex_t g_default_lock = PTHREAD_MUTEX_INITIALIZER;
static SSL_CTX *g_default_client; /* built once; lives as long as the process */

SSL_CTX *ts__ssl_default_client_context(int *err)
{
    pthread_mutex_lock(&g_default_lock);
    if (g_default_client == NULL)
        g_default_client = ts_ssl_context_new(NULL, err);
    SSL_CTX *ctx = g_default_client;
    if (ctx != NULL)
        SSL_CTX_up_ref(ctx);
    pthread_mutex_unlock(&g_default_lock);
    return ctx;
}
