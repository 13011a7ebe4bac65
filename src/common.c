/* Error names, the log hook and the allocation hooks. Knows nothing of loops or streams. */
#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>

#include "internal.h"
#include "tstream/version.h"

static ts_allocator g_alloc = {malloc, realloc, free};

int ts_set_allocator(const ts_allocator *alloc)
{
    if (alloc == NULL) {
        g_alloc = (ts_allocator){malloc, realloc, free};
        return 0;
    }
    if (!alloc->malloc_fn || !alloc->realloc_fn || !alloc->free_fn)
        return TS_EINVAL;
    g_alloc = *alloc;
    return 0;
}

void *ts_malloc(size_t size) { return g_alloc.malloc_fn(size ? size : 1); }
void *ts_realloc(void *ptr, size_t size) { return g_alloc.realloc_fn(ptr, size ? size : 1); }
void ts_free(void *ptr)
{
    if (ptr)
        g_alloc.free_fn(ptr);
}

void *ts__calloc(size_t n, size_t size)
{
    if (size && n > SIZE_MAX / size)
        return NULL;
    void *p = ts_malloc(n * size);
    if (p)
        memset(p, 0, n * size);
    return p;
}

char *ts__strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = ts_malloc(n);
    if (p)
        memcpy(p, s, n);
    return p;
}

double ts__monotonic(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

const char *ts_version(void) { return TS_VERSION_STRING; }

static int format_unix(const struct sockaddr_un *un, size_t addrlen, char *buf, size_t len)
{
    size_t off = offsetof(struct sockaddr_un, sun_path);
    size_t n = addrlen > off ? TS__MIN(addrlen - off, sizeof un->sun_path) : 0;
    if (n == 0)
        return snprintf(buf, len, "(unnamed)");
    if (un->sun_path[0] == '\0') /* abstract: the name is every byte after the NUL */
        return snprintf(buf, len, "@%.*s", (int)(n - 1), un->sun_path + 1);
    return snprintf(buf, len, "%.*s", (int)strnlen(un->sun_path, n), un->sun_path);
}

int ts_sockaddr_str(const struct sockaddr *sa, size_t addrlen, char *buf, size_t len)
{
    char host[INET6_ADDRSTRLEN];
    if (sa && sa->sa_family == AF_INET && addrlen >= sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
        return snprintf(buf, len, "%s:%u", host, (unsigned)ntohs(in->sin_port));
    }
    if (sa && sa->sa_family == AF_INET6 && addrlen >= sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
        char scope[IF_NAMESIZE + 2] = "";
        if (in6->sin6_scope_id) {
            char name[IF_NAMESIZE];
            if (if_indextoname(in6->sin6_scope_id, name))
                snprintf(scope, sizeof scope, "%%%s", name);
            else
                snprintf(scope, sizeof scope, "%%%u", (unsigned)in6->sin6_scope_id);
        }
        return snprintf(buf, len, "[%s%s]:%u", host, scope, (unsigned)ntohs(in6->sin6_port));
    }
    if (sa && sa->sa_family == AF_UNIX && addrlen >= offsetof(struct sockaddr_un, sun_path))
        return format_unix((const struct sockaddr_un *)sa, addrlen, buf, len);
    if (len)
        snprintf(buf, len, "?");
    return TS_EINVAL;
}

const char *ts_strerror(int err)
{
    switch (err) {
#define TS__ERR_MSG(name, value, msg) case TS_##name: return msg;
        TS_ERRNO_MAP(TS__ERR_MSG)
#undef TS__ERR_MSG
    case 0:
        return "success";
    default:
        break;
    }
    if (err < 0 && err > -4096)
        return strerror(-err);
    return "unknown error";
}

const char *ts_err_name(int err)
{
    switch (err) {
#define TS__ERR_NAME(name, value, msg) case TS_##name: return "TS_" #name;
        TS_ERRNO_MAP(TS__ERR_NAME)
#undef TS__ERR_NAME
    case 0:
        return "OK";
    default:
        break;
    }
    if (err < 0 && err > -4096) {
        const char *name = strerrorname_np(-err);
        if (name)
            return name;
    }
    return "UNKNOWN";
}

/* ---- logging ---------------------------------------------------------- */

static const char *const g_level_names[] = {"DEBUG", "INFO", "WARN", "ERROR"};

static void default_log(ts_log_level level, const char *msg, void *arg)
{
    TS__UNUSED(arg);
    fprintf(stderr, "tstream: %s: %s\n", g_level_names[level], msg);
}

static ts_log_cb g_log_cb = default_log;
static void *g_log_arg;
static ts_log_level g_log_min = TS_LOG_WARN; /* what Tornado shows by default: warnings and errors */

void ts_log_set_handler(ts_log_cb cb, void *arg, ts_log_level min_level)
{
    g_log_cb = cb ? cb : default_log;
    g_log_arg = cb ? arg : NULL;
    g_log_min = min_level;
}

void ts_log(ts_log_level level, const char *fmt, ...)
{
    if (level < g_log_min || level > TS_LOG_ERROR)
        return;
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    g_log_cb(level, buf, g_log_arg);
}

/* ---- owned bytes ------------------------------------------------------ */

ts_bytes *ts_bytes_new(const void *data, size_t len)
{
    if (len == SIZE_MAX)
        return NULL;
    ts_bytes *b = ts_malloc(sizeof *b);
    if (!b)
        return NULL;
    b->data = ts_malloc(len + 1);
    if (!b->data) {
        ts_free(b);
        return NULL;
    }
    if (len)
        memcpy(b->data, data, len);
    b->data[len] = '\0';
    b->len = len;
    return b;
}

void ts_bytes_free(void *bytes)
{
    ts_bytes *b = bytes;
    if (!b)
        return;
    ts_free(b->data);
    ts_free(b);
}
