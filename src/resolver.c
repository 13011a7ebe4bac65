/*
 * resolver.c -- asynchronous name resolution (Tornado's Resolver,
 * DefaultExecutorResolver and OverrideResolver).
 *
 * What this file does not do: it has no DNS client of its own and no cache.
 * The default resolver runs getaddrinfo(3) on the loop's executor threads;
 * the override resolver only rewrites names before passing them on.
 */
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "tstream/common.h"
#include "tstream/future.h"
#include "tstream/ioloop.h"
#include "tstream/netutil.h"

struct ts_resolver {
    const ts_resolver_ops *ops;
    void *impl;
};

ts_addrlist *ts_addrlist_new(size_t count)
{
    if (count > (SIZE_MAX - sizeof(ts_addrlist)) / sizeof(ts_address))
        return NULL;
    size_t size = sizeof(ts_addrlist) + count * sizeof(ts_address);
    ts_addrlist *list = ts_malloc(size);
    if (list) {
        memset(list, 0, size);
        list->count = count;
    }
    return list;
}

void ts_addrlist_free(void *list)
{
    ts_free(list);
}

ts_resolver *ts_resolver_new(const ts_resolver_ops *ops, void *impl)
{
    if (!ops || ops->size < offsetof(ts_resolver_ops, free) || !ops->resolve)
        return NULL;
    ts_resolver *r = ts_malloc(sizeof(*r));
    if (r) {
        r->ops = ops;
        r->impl = impl;
    }
    return r;
}

void ts_resolver_free(ts_resolver *r)
{
    if (!r)
        return;
    if (r->ops->size >= offsetof(ts_resolver_ops, free) + sizeof(r->ops->free) && r->ops->free)
        r->ops->free(r->impl);
    ts_free(r);
}

int ts_resolver_resolve(ts_resolver *r, ts_ioloop *loop, const char *host, int port, int family, ts_resolve_cb cb,
                        void *arg)
{
    if (!r || !loop || !host || !cb || port < 0 || port > 65535)
        return TS_EINVAL;
    return r->ops->resolve(r->impl, loop, host, port, family, cb, arg);
}

/* ------------------------------------------------------------------------ */
/* Future form                                                              */
/* ------------------------------------------------------------------------ */

static void resolved_to_future(int status, ts_addrlist *addrs, const char *detail, void *arg)
{
    ts_future *f = arg;
    if (status == 0) {
        ts_future_set_result(f, addrs, ts_addrlist_free);
    } else {
        if (detail)
            ts_log(TS_LOG_DEBUG, "resolve failed: %s: %s", ts_strerror(status), detail);
        ts_future_set_error(f, status);
    }
    ts_future_unref(f);
}

ts_future *ts_resolver_resolve_future(ts_resolver *r, ts_ioloop *loop, const char *host, int port, int family)
{
    if (!loop)
        return NULL;
    ts_future *f = ts_future_new(loop);
    if (!f)
        return NULL;
    ts_future_ref(f);
    int err = ts_resolver_resolve(r, loop, host, port, family, resolved_to_future, f);
    if (err != 0) {
        /* Refused at once: the caller still gets a future, already failed with the reason. */
        ts_future_set_error(f, err);
        ts_future_unref(f); /* the callback's reference: it will never run */
    }
    return f;
}

/* ------------------------------------------------------------------------ */
/* The default resolver: getaddrinfo on the executor                        */
/* ------------------------------------------------------------------------ */

typedef struct gai_job {
    ts_ioloop *loop;
    ts_resolve_cb cb;
    void *arg;
    int port;
    int family;
    int status;         /* for literal results delivered by add_callback */
    ts_addrlist *addrs; /* likewise */
    const char *detail; /* static text (gai_strerror) or NULL */
    char host[];
} gai_job;

static int to_addrlist(const struct addrinfo *res, ts_addrlist **out)
{
    size_t n = 0;
    for (const struct addrinfo *ai = res; ai; ai = ai->ai_next)
        n += ai->ai_addrlen <= sizeof(struct sockaddr_storage);
    ts_addrlist *list = ts_addrlist_new(n);
    if (!list)
        return TS_ENOMEM;
    size_t i = 0;
    for (const struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        if (ai->ai_addrlen > sizeof(struct sockaddr_storage))
            continue;
        list->addrs[i].family = ai->ai_family;
        list->addrs[i].addrlen = ai->ai_addrlen;
        memcpy(&list->addrs[i].addr, ai->ai_addr, ai->ai_addrlen);
        i++;
    }
    *out = list;
    return n > 0 ? 0 : TS_ERESOLVE;
}

/* getaddrinfo into job; returns 0 or a negative code (detail set on TS_ERESOLVE). */
static int lookup(gai_job *job, int flags, ts_addrlist **out)
{
    struct addrinfo hints = {0}, *res = NULL;
    char service[8];

    hints.ai_family = job->family;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = flags;
    snprintf(service, sizeof(service), "%d", job->port);
    int rc = getaddrinfo(job->host, service, &hints, &res);
    if (rc == EAI_SYSTEM)
        return errno ? -errno : TS_ERESOLVE;
    if (rc == EAI_MEMORY)
        return TS_ENOMEM;
    if (rc != 0) {
        job->detail = gai_strerror(rc);
        return TS_ERESOLVE;
    }
    rc = to_addrlist(res, out);
    freeaddrinfo(res);
    if (rc == TS_ERESOLVE) {
        ts_addrlist_free(*out);
        *out = NULL;
        job->detail = "no usable address";
    }
    return rc;
}

static void *gai_thread(void *arg, int *err)
{
    gai_job *job = arg;
    ts_addrlist *list = NULL;
    *err = lookup(job, 0, &list);
    return list;
}

static void gai_done(ts_future *f, void *arg)
{
    gai_job *job = arg;
    int status = ts_future_error(f);
    ts_addrlist *list = status == 0 ? ts_future_steal_result(f) : NULL;
    if (status == 0 && !list)
        status = TS_EINTERNAL;
    job->cb(status, list, status == TS_ERESOLVE ? job->detail : NULL, job->arg);
    ts_free(job);
}

static void literal_done(ts_ioloop *loop, void *arg)
{
    gai_job *job = arg;
    (void)loop;
    job->cb(job->status, job->addrs, job->status == TS_ERESOLVE ? job->detail : NULL, job->arg);
    ts_free(job);
}

/*
 * An IP literal needs no thread: parse it here (AI_NUMERICHOST never does a
 * lookup). Returns true if @p job->host was a literal of any family, with
 * job->status / job->addrs filled in.
 */
static bool parse_literal(gai_job *job)
{
    job->status = lookup(job, AI_NUMERICHOST, &job->addrs);
    if (job->status != TS_ERESOLVE)
        return true;
    if (job->family == AF_UNSPEC || !ts_is_valid_ip(job->host))
        return false;
    /* A literal of the other family (e.g. "::1" for AF_INET): no lookup can help. */
    job->detail = "address family for hostname not supported";
    return true;
}

static int default_resolve(void *impl, ts_ioloop *loop, const char *host, int port, int family, ts_resolve_cb cb,
                           void *arg)
{
    (void)impl;
    if (family != AF_UNSPEC && family != AF_INET && family != AF_INET6)
        return TS_EINVAL;
    size_t hlen = strlen(host);
    gai_job *job = ts_malloc(sizeof(*job) + hlen + 1);
    if (!job)
        return TS_ENOMEM;
    memset(job, 0, sizeof(*job));
    memcpy(job->host, host, hlen + 1);
    job->loop = loop;
    job->cb = cb;
    job->arg = arg;
    job->port = port;
    job->family = family;

    if (parse_literal(job)) {
        if (ts_ioloop_add_callback(loop, literal_done, job) == 0)
            return 0;
        ts_addrlist_free(job->addrs);
        ts_free(job);
        return TS_ENOMEM;
    }
    ts_future *f = ts_ioloop_run_in_executor(loop, gai_thread, job, ts_addrlist_free);
    if (!f) {
        ts_free(job);
        return TS_ENOMEM;
    }
    int rc = ts_future_add_done_callback(f, gai_done, job);
    ts_future_unref(f);
    /*
     * XXX If the callback cannot be registered the job is still running on
     * the executor and owns @p job until it finishes; leak it rather than
     * free memory a thread is writing.
     */
    return rc;
}

static const ts_resolver_ops default_ops = {
    .size = sizeof(ts_resolver_ops),
    .resolve = default_resolve,
    .free = NULL,
};

ts_resolver *ts_resolver_new_default(void)
{
    return ts_resolver_new(&default_ops, NULL);
}

/* ------------------------------------------------------------------------ */
/* The override resolver                                                    */
/* ------------------------------------------------------------------------ */

typedef struct override_entry {
    char *host;
    char *to_host;
    int port;   /* -1: any */
    int family; /* -1: any */
    int to_port; /* -1: keep */
} override_entry;

typedef struct override_impl {
    ts_resolver *base;
    bool own_base;
    size_t count, cap;
    override_entry *entries;
} override_impl;

static void override_free(void *impl)
{
    override_impl *o = impl;
    for (size_t i = 0; i < o->count; i++) {
        ts_free(o->entries[i].host);
        ts_free(o->entries[i].to_host);
    }
    ts_free(o->entries);
    if (o->own_base)
        ts_resolver_free(o->base);
    ts_free(o);
}

/* Tornado's order: (host, port, family), then (host, port), then host. */
static const override_entry *override_find(const override_impl *o, const char *host, int port, int family)
{
    const override_entry *best = NULL;
    int best_rank = 0;
    for (size_t i = 0; i < o->count; i++) {
        const override_entry *e = &o->entries[i];
        if (strcmp(e->host, host) != 0)
            continue;
        int rank = 0;
        if (e->port >= 0 && e->family >= 0 && e->port == port && e->family == family)
            rank = 3;
        else if (e->port >= 0 && e->family < 0 && e->port == port)
            rank = 2;
        else if (e->port < 0 && e->family < 0)
            rank = 1;
        if (rank > best_rank) {
            best = e;
            best_rank = rank;
        }
    }
    return best;
}

static int override_resolve(void *impl, ts_ioloop *loop, const char *host, int port, int family, ts_resolve_cb cb,
                            void *arg)
{
    override_impl *o = impl;
    const override_entry *e = override_find(o, host, port, family);
    if (e) {
        host = e->to_host;
        if (e->to_port >= 0)
            port = e->to_port;
    }
    return ts_resolver_resolve(o->base, loop, host, port, family, cb, arg);
}

static const ts_resolver_ops override_ops = {
    .size = sizeof(ts_resolver_ops),
    .resolve = override_resolve,
    .free = override_free,
};

ts_resolver *ts_resolver_new_override(ts_resolver *base, bool own_base)
{
    if (!base)
        return NULL;
    override_impl *o = ts_malloc(sizeof(*o));
    if (!o)
        return NULL;
    memset(o, 0, sizeof(*o));
    o->base = base;
    o->own_base = own_base;
    ts_resolver *r = ts_resolver_new(&override_ops, o);
    if (!r)
        ts_free(o);
    return r;
}

static char *dup_string(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = ts_malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

int ts_resolver_override_add(ts_resolver *r, const char *host, int port, int family, const char *to_host,
                             int to_port)
{
    if (!r || r->ops != &override_ops || !host || !to_host || port < -1 || port > 65535 || to_port < -1 ||
        to_port > 65535 || (port < 0 && family >= 0))
        return TS_EINVAL;
    override_impl *o = r->impl;
    if (o->count == o->cap) {
        size_t cap = o->cap ? o->cap * 2 : 4;
        override_entry *e = ts_realloc(o->entries, cap * sizeof(*e));
        if (!e)
            return TS_ENOMEM;
        o->entries = e;
        o->cap = cap;
    }
    override_entry *e = &o->entries[o->count];
    e->host = dup_string(host);
    e->to_host = dup_string(to_host);
    if (!e->host || !e->to_host) {
        ts_free(e->host);
        ts_free(e->to_host);
        return TS_ENOMEM;
    }
    e->port = port;
    e->family = family < 0 ? -1 : family;
    e->to_port = to_port;
    o->count++;
    return 0;
}
