/*
 * Futures. Done callbacks never run inline: completing a future (or adding a
 * callback to a done one) schedules one loop callback that runs the list.
 * with_timeout and multi are built on the public operations only. The
 * loop's future-shaped API is here too: run_sync over the loop's run-until,
 * run_in_executor over the executor's plain done callback.
 */
#include <stdlib.h>

#include "internal.h"
#include "tstream/future.h"

typedef struct donecb {
    struct donecb *next;
    ts_future_cb cb;
    void *arg;
} donecb;

struct ts_future {
    ts_ioloop *loop;
    unsigned refs;
    bool done;
    bool scheduled; /* a run of the callbacks is queued on the loop */
    int err;
    void *result;
    ts_future_dtor dtor;
    donecb *cbs, *cbs_tail;
    ts_future *keep; /* a future this one borrows its result from */
    ts__cbnode node; /* queues the run of the callbacks: completing a future cannot fail */
};

ts_future *ts_future_new(ts_ioloop *loop)
{
    if (!loop)
        return NULL;
    ts_future *f = ts__calloc(1, sizeof *f);
    if (!f)
        return NULL;
    f->loop = loop;
    f->refs = 1;
    return f;
}

ts_future *ts_future_ref(ts_future *f)
{
    f->refs++;
    return f;
}

void ts_future_unref(ts_future *f)
{
    if (!f || --f->refs > 0)
        return;
    for (donecb *c = f->cbs, *next; c; c = next) {
        next = c->next;
        ts__free(c);
    }
    if (f->result && f->dtor)
        f->dtor(f->result);
    ts_future_unref(f->keep);
    ts__free(f);
}

static void run_done_callbacks(ts_ioloop *loop, void *arg)
{
    TS__UNUSED(loop);
    ts_future *f = (ts_future *)((char *)arg - offsetof(ts_future, node)); /* (schedule() took a reference) */
    f->scheduled = false;
    donecb *c = f->cbs;
    f->cbs = f->cbs_tail = NULL;
    while (c) {
        donecb *next = c->next;
        ts_future_cb cb = c->cb;
        void *cbarg = c->arg;
        ts__free(c);
        cb(f, cbarg);
        c = next;
    }
    ts_future_unref(f);
}

static void schedule(ts_future *f)
{
    if (f->scheduled || !f->cbs)
        return;
    f->scheduled = true;
    ts_future_ref(f);
    ts__ioloop_add_callback_node(f->loop, &f->node, run_done_callbacks);
}

int ts_future_set_result(ts_future *f, void *result, ts_future_dtor dtor)
{
    if (f->done) {
        ts_log(TS_LOG_ERROR, "future %p: result set on a future that is already done", (void *)f);
        if (result && dtor)
            dtor(result);
        return TS_ESTATE;
    }
    f->done = true;
    f->result = result;
    f->dtor = dtor;
    schedule(f);
    return 0;
}

int ts_future_set_error(ts_future *f, int err)
{
    if (err >= 0)
        return TS_EINVAL;
    if (f->done) {
        ts_log(TS_LOG_ERROR, "future %p: error %s set on a future that is already done", (void *)f,
               ts_err_name(err));
        return TS_ESTATE;
    }
    f->done = true;
    f->err = err;
    schedule(f);
    return 0;
}

bool ts_future_done(const ts_future *f) { return f->done; }
void *ts_future_result(const ts_future *f) { return f->done ? f->result : NULL; }
int ts_future_error(const ts_future *f) { return f->err; }
ts_ioloop *ts_future_loop(const ts_future *f) { return f->loop; }

void *ts_future_steal_result(ts_future *f)
{
    if (!f->done || f->err)
        return NULL;
    void *r = f->result;
    f->result = NULL;
    f->dtor = NULL;
    /*
     * A result borrowed from another future (ts_with_timeout) moves out of
     * that one too: the caller now owns it, and the inner future must not
     * destroy it (close the stream it holds) when the last reference goes.
     */
    for (ts_future *k = f->keep; k && r; k = k->keep) {
        if (k->result == r) {
            k->result = NULL;
            k->dtor = NULL;
        }
    }
    return r;
}

int ts_future_add_done_callback(ts_future *f, ts_future_cb cb, void *arg)
{
    if (!cb)
        return TS_EINVAL;
    donecb *c = ts__malloc(sizeof *c);
    if (!c)
        return TS_ENOMEM;
    c->next = NULL;
    c->cb = cb;
    c->arg = arg;
    if (f->cbs_tail)
        f->cbs_tail->next = c;
    else
        f->cbs = c;
    f->cbs_tail = c;
    if (f->done)
        schedule(f);
    return 0;
}

/* Removes a callback that has not run yet (used by run_sync and with_timeout). */
static bool remove_done_callback(ts_future *f, ts_future_cb cb, void *arg)
{
    donecb *prev = NULL;
    for (donecb *c = f->cbs; c; prev = c, c = c->next) {
        if (c->cb != cb || c->arg != arg)
            continue;
        if (prev)
            prev->next = c->next;
        else
            f->cbs = c->next;
        if (f->cbs_tail == c)
            f->cbs_tail = prev;
        ts__free(c);
        return true;
    }
    return false;
}

/* ---- the loop's future forms ----------------------------------------------- */

static void run_sync_done(ts_future *f, void *arg)
{
    TS__UNUSED(f);
    *(bool *)arg = true;
}

int ts_ioloop_run_sync(ts_ioloop *loop, ts_future *future, double timeout)
{
    if (ts_ioloop_running(loop))
        return TS_ESTATE;
    bool done = false;
    if (ts_future_add_done_callback(future, run_sync_done, &done) < 0)
        return TS_ENOMEM;
    int r = ts__ioloop_run_until(loop, &done, timeout);
    if (!done)
        remove_done_callback(future, run_sync_done, &done);
    if (r == TS_ENOMEM || r == TS_ESTATE)
        return r;
    return ts_future_done(future) ? 0 : TS_ETIMEDOUT;
}

typedef struct executor_job {
    ts_future *future;
    ts_future_dtor dtor;
} executor_job;

static void executor_done(ts_ioloop *loop, void *result, int err, void *arg)
{
    TS__UNUSED(loop);
    executor_job *j = arg;
    if (err) {
        if (result && j->dtor)
            j->dtor(result); /* (a result left behind when the loop was freed) */
        ts_future_set_error(j->future, err < 0 ? err : TS_EINTERNAL);
    } else {
        ts_future_set_result(j->future, result, j->dtor);
    }
    ts_future_unref(j->future);
    ts__free(j);
}

ts_future *ts_ioloop_run_in_executor(ts_ioloop *loop, ts_executor_fn fn, void *arg, void (*result_dtor)(void *))
{
    if (!fn)
        return NULL;
    executor_job *j = ts__calloc(1, sizeof *j);
    ts_future *f = j ? ts_future_new(loop) : NULL;
    if (!f) {
        ts__free(j);
        return NULL;
    }
    j->future = ts_future_ref(f);
    j->dtor = result_dtor;
    if (ts__executor_submit(loop, fn, arg, executor_done, j) < 0) {
        ts_future_unref(f);
        ts_future_unref(f);
        ts__free(j);
        return NULL;
    }
    return f;
}

/* ---- with_timeout -------------------------------------------------------- */

typedef struct timeout_ctx {
    ts_future *outer, *inner;
    uint64_t timer;
} timeout_ctx;

static void timeout_inner_done(ts_future *inner, void *arg)
{
    timeout_ctx *ctx = arg;
    ts_ioloop_remove_timeout(inner->loop, ctx->timer);
    if (!ctx->outer->done) {
        if (inner->err)
            ts_future_set_error(ctx->outer, inner->err);
        else
            ts_future_set_result(ctx->outer, inner->result, NULL);
    }
    ts_future_unref(ctx->outer);
    ts__free(ctx);
}

static void timeout_fired(ts_ioloop *loop, void *arg)
{
    TS__UNUSED(loop);
    timeout_ctx *ctx = arg;
    remove_done_callback(ctx->inner, timeout_inner_done, ctx);
    if (!ctx->outer->done)
        ts_future_set_error(ctx->outer, TS_ETIMEDOUT);
    ts_future_unref(ctx->outer);
    ts__free(ctx);
}

/* The loop was freed with the timeout pending: nothing will complete outer now. */
static void timeout_dropped(void *arg)
{
    timeout_ctx *ctx = arg;
    remove_done_callback(ctx->inner, timeout_inner_done, ctx);
    ts_future_unref(ctx->outer);
    ts__free(ctx);
}

ts_future *ts_with_timeout(ts_future *f, double timeout)
{
    if (f->done) {
        /* Tornado copies a done result before a due timeout can fire: the result wins. */
        ts_future *outer = ts_future_new(f->loop);
        if (!outer)
            return NULL;
        outer->keep = ts_future_ref(f);
        if (f->err)
            ts_future_set_error(outer, f->err);
        else
            ts_future_set_result(outer, f->result, NULL);
        return outer;
    }
    ts_future *outer = ts_future_new(f->loop);
    timeout_ctx *ctx = ts__malloc(sizeof *ctx);
    if (!outer || !ctx)
        goto fail;
    ctx->outer = ts_future_ref(outer);
    ctx->inner = f;
    outer->keep = ts_future_ref(f);
    ctx->timer = ts__ioloop_call_later_owned(f->loop, timeout, timeout_fired, ctx, timeout_dropped);
    if (!ctx->timer) {
        outer->refs--;
        goto fail;
    }
    if (ts_future_add_done_callback(f, timeout_inner_done, ctx) < 0) {
        ts_ioloop_remove_timeout(f->loop, ctx->timer);
        outer->refs--;
        goto fail;
    }
    return outer;
fail:
    ts__free(ctx);
    ts_future_unref(outer);
    return NULL;
}

/* ---- multi ---------------------------------------------------------------- */

typedef struct multi_ctx {
    ts_future *outer;
    size_t remaining, n;
    ts_future *inputs[];
} multi_ctx;

static void multi_one_done(ts_future *f, void *arg)
{
    multi_ctx *ctx = arg;
    if (f->err && !ctx->outer->done)
        ts_future_set_error(ctx->outer, f->err);
    if (--ctx->remaining > 0)
        return;
    if (!ctx->outer->done)
        ts_future_set_result(ctx->outer, NULL, NULL);
    for (size_t i = 0; i < ctx->n; i++)
        ts_future_unref(ctx->inputs[i]);
    ts_future_unref(ctx->outer);
    ts__free(ctx);
}

ts_future *ts_future_multi(ts_ioloop *loop, ts_future *const *futures, size_t n)
{
    ts_future *outer = ts_future_new(loop);
    if (!outer)
        return NULL;
    if (n == 0) {
        ts_future_set_result(outer, NULL, NULL);
        return outer;
    }
    multi_ctx *ctx = ts__malloc(sizeof *ctx + n * sizeof(ts_future *));
    if (!ctx) {
        ts_future_unref(outer);
        return NULL;
    }
    /* Register every callback first so a failure leaves nothing behind. */
    size_t added = 0;
    for (; added < n; added++)
        if (ts_future_add_done_callback(futures[added], multi_one_done, ctx) < 0)
            break;
    if (added < n) {
        for (size_t i = 0; i < added; i++)
            remove_done_callback(futures[i], multi_one_done, ctx);
        ts__free(ctx);
        ts_future_unref(outer);
        return NULL;
    }
    ctx->outer = ts_future_ref(outer);
    ctx->remaining = ctx->n = n;
    for (size_t i = 0; i < n; i++)
        ctx->inputs[i] = ts_future_ref(futures[i]);
    return outer;
}
