/*
 * The event loop over libev: the callback queue, fd handlers, start/stop and
 * running until a flag is set (run_sync's loop half). Timeouts and periodic
 * callbacks live in ioloop_timer.c, the thread pool in executor.c. The loop
 * knows nothing of streams, nor of futures (future.c builds run_sync and
 * run_in_executor on it).
 *
 * One iteration: libev polls, then invokes I/O and timer watchers; last (at
 * the lowest priority) the check watcher drains the callback queue. Callbacks
 * queued while it drains wait for the next iteration; the prepare watcher
 * starts an idle watcher so that iteration does not block.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ioloop_int.h"

_Static_assert(offsetof(struct ts_ioloop, shared) == 0, "ts__ioloop_head() reads the loop's head");

#define TS__MAX_SPARE 4096

static _Thread_local ts_ioloop *tl_current;
static _Thread_local char tl_token; /* its address names the thread */

static uintptr_t self_token(void) { return (uintptr_t)&tl_token; }

bool ts__ioloop_on_thread(const ts_ioloop *loop) { return atomic_load(&loop->owner) == self_token(); }

static void collect_foreign(ts_ioloop *loop);

/*
 * Makes the calling thread the loop's thread. Callbacks queued before (through
 * the locked queue) move to the local queue first, so they keep their order
 * ahead of any the new owner queues.
 */
static void claim_owner(ts_ioloop *loop)
{
    if (atomic_load_explicit(&loop->owner, memory_order_relaxed) == self_token())
        return;
    atomic_store(&loop->owner, self_token());
    collect_foreign(loop);
}

/* ---- the callback queue ------------------------------------------------ */

static ts__cbnode *node_get(ts_ioloop *loop)
{
    ts__cbnode *n = loop->spare;
    if (n) {
        loop->spare = n->next;
        loop->nspare--;
        return n;
    }
    return ts__malloc(sizeof *n);
}

static void node_put(ts_ioloop *loop, ts__cbnode *n)
{
    if (loop->nspare >= TS__MAX_SPARE) {
        ts__free(n);
        return;
    }
    n->next = loop->spare;
    loop->spare = n;
    loop->nspare++;
}

static void queue_append(ts__cbnode **head, ts__cbnode **tail, ts__cbnode *first, ts__cbnode *last)
{
    if (*tail)
        (*tail)->next = first;
    else
        *head = first;
    *tail = last;
}

/* Moves callbacks queued by other threads and by signal handlers to the local queue. */
static void collect_foreign(ts_ioloop *loop)
{
    pthread_mutex_lock(&loop->xlock);
    ts__cbnode *first = loop->xhead, *last = loop->xtail;
    loop->xhead = loop->xtail = NULL;
    pthread_mutex_unlock(&loop->xlock);
    if (first)
        queue_append(&loop->head, &loop->tail, first, last);
    for (size_t i = 0; i < TS__ARRAY_LEN(loop->sig); i++) {
        ts__sigslot *s = &loop->sig[i];
        unsigned st = atomic_load(&s->state);
        if ((st & TS__SIG_PHASE) != TS__SIG_FULL)
            continue;
        /* Only the loop moves a FULL slot, so this succeeds; being a read-modify-write
         * it acquires the producers' writes, a deduplicated repeat's included. */
        unsigned gen = st & ~(unsigned)TS__SIG_PHASE;
        if (!atomic_compare_exchange_strong(&s->state, &st, gen | TS__SIG_TAKING))
            continue;
        ts_ioloop_cb cb = atomic_load(&s->cb);
        void *arg = atomic_load(&s->arg);
        atomic_store(&s->state, gen | TS__SIG_FREE);
        ts__cbnode *n = node_get(loop);
        if (!n) {
            ts_log(TS_LOG_ERROR, "out of memory queueing a signal callback");
            continue;
        }
        n->cb = cb;
        n->arg = arg;
        n->next = NULL;
        queue_append(&loop->head, &loop->tail, n, n);
    }
}

static void member_link_before(ts__loop_member *head, ts__loop_member *m)
{
    m->prev = head->prev;
    m->next = head;
    head->prev->next = m;
    head->prev = m;
}

static void member_unlink(ts__loop_member *m)
{
    m->prev->next = m->next;
    m->next->prev = m->prev;
    m->prev = m->next = NULL;
}

static bool member_list_empty(const ts__loop_member *head) { return head->next == head; }

void ts__ioloop_defer(ts_ioloop *loop, ts__loop_member *m)
{
    if (m->next)
        member_unlink(m);
    member_link_before(&loop->pending, m);
}

/*
 * Runs the deferred completions queued so far, as one batch. Completions
 * they queue in turn (a stream that reached its per-run bound, a read
 * started from a callback and answered at once) wait for the next
 * iteration, after the next poll: one busy stream cannot keep the loop from
 * its timers, its signals and the other fds. The prepare watcher sees the
 * non-empty list and makes that poll non-blocking.
 */
static void run_pending(ts_ioloop *loop)
{
    if (member_list_empty(&loop->pending))
        return;
    /* The batch: the queue as it stands, moved to a head of its own (a member freed meanwhile leaves it). */
    ts__loop_member batch;
    batch.next = loop->pending.next;
    batch.prev = loop->pending.prev;
    batch.next->prev = batch.prev->next = &batch;
    loop->pending.next = loop->pending.prev = &loop->pending;
    const ts__member_ops *ops = loop->member_ops;
    while (!member_list_empty(&batch)) {
        ts__loop_member *m = batch.next;
        member_unlink(m);
        member_link_before(&loop->members, m); /* back among the members before its run (which may free it) */
        ops->run(m);
    }
}

/* Runs the callbacks queued so far; ones they queue wait for the next call. */
static void run_callbacks(ts_ioloop *loop)
{
    collect_foreign(loop);
    ts__cbnode *n = loop->head;
    loop->head = loop->tail = NULL;
    while (n) {
        ts__cbnode *next = n->next;
        ts_ioloop_cb cb = n->cb;
        void *arg = n->arg;
        if (!ts__cbnode_embedded(n))
            node_put(loop, n);
        cb(loop, arg);
        run_pending(loop);
        n = next;
    }
}

void ts__ioloop_run_queued(ts_ioloop *loop) { run_callbacks(loop); }

static void check_cb(struct ev_loop *ev, ev_check *w, int revents)
{
    TS__UNUSED(revents);
    ts_ioloop *loop = w->data;
    run_pending(loop);
    run_callbacks(loop);
    if (atomic_load(&loop->stop_requested)) {
        if (loop->running) {
            ev_break(ev, EVBREAK_ONE);
        } else if (!loop->owns_ev) {
            /* A borrowed loop run by the host's ev_run(): the stop ends that run. */
            atomic_store(&loop->stop_requested, false);
            ev_break(ev, EVBREAK_ONE);
        }
    }
}

static void prepare_cb(struct ev_loop *ev, ev_prepare *w, int revents)
{
    TS__UNUSED(revents);
    ts_ioloop *loop = w->data;
    claim_owner(loop); /* whoever runs ev_run on the loop is its thread (embedding) */
    if (!loop->running && !loop->owns_ev)
        tl_current = loop; /* the host's ev_run drives it: it is this thread's current loop */
    bool busy = loop->head != NULL || !member_list_empty(&loop->pending) || (loop->running && atomic_load(&loop->stop_requested));
    if (busy && !ev_is_active(&loop->idle))
        ev_idle_start(ev, &loop->idle);
    else if (!busy && ev_is_active(&loop->idle))
        ev_idle_stop(ev, &loop->idle);
}

static void idle_cb(struct ev_loop *ev, ev_idle *w, int revents)
{
    TS__UNUSED(ev), TS__UNUSED(w), TS__UNUSED(revents);
}

static void async_cb(struct ev_loop *ev, ev_async *w, int revents)
{
    TS__UNUSED(ev), TS__UNUSED(w), TS__UNUSED(revents);
    /* Nothing to do: the check watcher of this iteration collects the work. */
}

/* Queues @p n: on the loop's thread without a lock, from any other through the locked queue. */
static void enqueue(ts_ioloop *loop, bool on_thread, ts__cbnode *n, ts_ioloop_cb cb, void *arg)
{
    n->cb = cb;
    n->arg = arg;
    n->next = NULL;
    if (on_thread) {
        queue_append(&loop->head, &loop->tail, n, n);
        return;
    }
    pthread_mutex_lock(&loop->xlock);
    queue_append(&loop->xhead, &loop->xtail, n, n);
    pthread_mutex_unlock(&loop->xlock);
    ev_async_send(loop->ev, &loop->async);
}

int ts_ioloop_add_callback(ts_ioloop *loop, ts_ioloop_cb cb, void *arg)
{
    if (!loop || !cb)
        return TS_EINVAL;
    bool on_thread = ts__ioloop_on_thread(loop);
    ts__cbnode *n = on_thread ? node_get(loop) : ts__malloc(sizeof *n); /* the spare list is the loop's */
    if (!n)
        return TS_ENOMEM;
    enqueue(loop, on_thread, n, cb, arg);
    return 0;
}

void ts__ioloop_add_callback_node(ts_ioloop *loop, ts__cbnode *node, ts_ioloop_cb cb)
{
    enqueue(loop, ts__ioloop_on_thread(loop), node, cb, node);
}

int ts_ioloop_add_callback_from_signal(ts_ioloop *loop, ts_ioloop_cb cb, void *arg)
{
    if (!loop || !cb)
        return TS_EINVAL;
again:
    /* The same pair already pending: touching its word (a CAS to the same value)
     * makes the loop's take synchronise with this call. If the word moved (taken,
     * or refilled with another pair meanwhile), look again. */
    for (size_t i = 0; i < TS__ARRAY_LEN(loop->sig); i++) {
        ts__sigslot *s = &loop->sig[i];
        unsigned st = atomic_load(&s->state);
        if ((st & TS__SIG_PHASE) != TS__SIG_FULL || atomic_load(&s->cb) != cb || atomic_load(&s->arg) != arg)
            continue;
        if (!atomic_compare_exchange_strong(&s->state, &st, st))
            goto again;
        ev_async_send(loop->ev, &loop->async);
        return 0;
    }
    for (size_t i = 0; i < TS__ARRAY_LEN(loop->sig); i++) {
        ts__sigslot *s = &loop->sig[i];
        unsigned st = atomic_load(&s->state);
        if ((st & TS__SIG_PHASE) != TS__SIG_FREE)
            continue;
        unsigned next = (st & ~(unsigned)TS__SIG_PHASE) + (TS__SIG_PHASE + 1);
        if (!atomic_compare_exchange_strong(&s->state, &st, next | TS__SIG_BUSY))
            continue;
        atomic_store(&s->cb, cb);
        atomic_store(&s->arg, arg);
        atomic_store(&s->state, next | TS__SIG_FULL);
        ev_async_send(loop->ev, &loop->async);
        return 0;
    }
    return TS_EBUSY;
}

/* ---- creation and destruction ------------------------------------------ */

static ts_ioloop *loop_init(struct ev_loop *ev, bool owns)
{
    ts_ioloop *loop = ts__calloc(1, sizeof *loop);
    if (!loop)
        return NULL;
    loop->ev = ev;
    loop->owns_ev = owns;
    atomic_init(&loop->owner, 0); /* nobody runs it yet: every thread takes the locked path */
    loop->executor_threads = 4;
    atomic_init(&loop->stop_requested, false);
    for (size_t i = 0; i < TS__ARRAY_LEN(loop->sig); i++)
    {
        atomic_init(&loop->sig[i].state, TS__SIG_FREE);
        atomic_init(&loop->sig[i].cb, NULL);
        atomic_init(&loop->sig[i].arg, NULL);
    }
    pthread_mutex_init(&loop->xlock, NULL);
    loop->members.prev = loop->members.next = &loop->members;
    loop->pending.prev = loop->pending.next = &loop->pending;
    loop->shared.wpools.chunks.max = 16; /* 256 KiB of write chunks at most */
    loop->shared.wpools.heads.max = 64;
    loop->shared.wpools.queues.max = 64;

    ev_prepare_init(&loop->prepare, prepare_cb);
    ev_check_init(&loop->check, check_cb);
    ev_idle_init(&loop->idle, idle_cb);
    ev_async_init(&loop->async, async_cb);
    loop->prepare.data = loop->check.data = loop->idle.data = loop->async.data = loop;
    ev_set_priority(&loop->check, EV_MINPRI);
    ev_set_priority(&loop->idle, EV_MINPRI);
    ev_prepare_start(ev, &loop->prepare);
    ev_check_start(ev, &loop->check);
    ev_async_start(ev, &loop->async);
    /* Our own watchers must not keep a libev loop alive by themselves. */
    ev_unref(ev);
    ev_unref(ev);
    ev_unref(ev);
    ts__timers_init(loop);
    return loop;
}

ts_ioloop *ts_ioloop_new(void)
{
    struct ev_loop *ev = ev_loop_new(EVFLAG_AUTO | EVFLAG_NOSIGMASK);
    if (!ev)
        return NULL;
    ts_ioloop *loop = loop_init(ev, true);
    if (!loop)
        ev_loop_destroy(ev);
    return loop;
}

ts_ioloop *ts_ioloop_new_from_ev(struct ev_loop *ev)
{
    if (!ev)
        return NULL;
    return loop_init(ev, false);
}

struct ev_loop *ts_ioloop_ev(ts_ioloop *loop) { return loop->ev; }

void ts__ioloop_attach(ts_ioloop *loop, ts__loop_member *m, const ts__member_ops *ops)
{
    loop->member_ops = ops; /* (one kind of member: streams) */
    member_link_before(&loop->members, m);
}

void ts__ioloop_detach(ts__loop_member *m)
{
    if (m->next)
        member_unlink(m);
}

void ts__ioloop_before_fork(ts_ioloop *loop)
{
    /*
     * Threads do not survive fork(), and one caught holding a lock (the
     * pool's, or one inside malloc) would hold it for good in the child:
     * the pool stops first. Finished jobs are delivered; jobs not yet run
     * fail with TS_ECANCELLED. Each process starts its own on first use.
     */
    ts__executor_free(loop);
}

void ts__ioloop_after_fork(ts_ioloop *loop) { ev_loop_fork(loop->ev); }

static char *lend_block(ts_ioloop *loop, ts__rdblock *b, unsigned *tag)
{
    if (!b->base && !(b->base = ts__malloc(TS__LOOP_RDBUF)))
        return NULL;
    b->lent = true;
    *tag = (unsigned)(b - loop->shared.rdbufs) + 1;
    return b->base;
}

/* A take while the first block is lent: a block of its own, or one reclaimed from a resting stream. */
char *ts__ioloop_rdbuf_take_other(ts_ioloop *loop, unsigned *tag)
{
    for (int i = 0; i < TS__LOOP_RDBUFS; i++)
        if (!loop->shared.rdbufs[i].base)
            return lend_block(loop, &loop->shared.rdbufs[i], tag);
    /* All lent: take one back from a stream resting with it. */
    for (int i = 0; i < TS__LOOP_RDBUFS; i++) {
        ts__rdblock *b = &loop->shared.rdbufs[i];
        if (b->reclaim) {
            void (*reclaim)(void *) = b->reclaim;
            b->reclaim = NULL;
            reclaim(b->keeper); /* gives it back (a block past the first is freed: made again) */
            if (!b->lent)
                return lend_block(loop, b, tag);
        }
    }
    return NULL;
}

void ts__ioloop_rdbuf_give_other(ts_ioloop *loop, unsigned tag)
{
    ts__rdblock *b = &loop->shared.rdbufs[tag - 1];
    b->lent = false;
    b->reclaim = NULL;
    ts__free(b->base); /* blocks past the first exist only while lent */
    b->base = NULL;
}

void ts__ioloop_rdbuf_rest(ts_ioloop *loop, unsigned tag, void (*reclaim)(void *keeper), void *keeper)
{
    ts__rdblock *b = &loop->shared.rdbufs[tag - 1];
    b->reclaim = reclaim;
    b->keeper = keeper;
}

void ts__ioloop_rdbuf_use(ts_ioloop *loop, unsigned tag) { loop->shared.rdbufs[tag - 1].reclaim = NULL; }

void ts__pool_drain(ts__pool *p)
{
    void *b;
    while ((b = ts__pool_get(p)))
        ts__free(b);
}

/*
 * Calls close() or orphan() on every member. Either may unlink any member
 * (itself through a close callback that frees it, or another stream the
 * callback frees), so a marker holds the walk's place.
 */
static void walk_list(ts_ioloop *loop, ts__loop_member *head, bool orphan)
{
    const ts__member_ops *ops = loop->member_ops;
    ts__loop_member marker = {0}, *outer = loop->walk_mark;
    loop->walk_mark = &marker;
    for (ts__loop_member *m = head->next; m != head;) {
        if (m == outer) { /* another walk's marker (a nested free: not expected) */
            m = m->next;
            continue;
        }
        /* the marker goes after m: whatever m's hook unlinks, the walk resumes there */
        member_link_before(m->next, &marker);
        if (orphan)
            ops->orphan(m);
        else
            ops->close(m);
        m = marker.next;
        ts__ioloop_detach(&marker);
    }
    loop->walk_mark = outer;
}

/* Both lists: the members, and those queued for a deferred run. */
static void walk_members(ts_ioloop *loop, bool orphan)
{
    walk_list(loop, &loop->members, orphan);
    walk_list(loop, &loop->pending, orphan);
}

/* Frees a queue's nodes at teardown; embedded ones belong to their objects. */
static void free_nodes(ts__cbnode *n)
{
    for (ts__cbnode *next; n; n = next) {
        next = n->next;
        if (!ts__cbnode_embedded(n))
            ts__free(n);
    }
}

void ts_ioloop_free(ts_ioloop *loop, bool all_fds)
{
    if (!loop)
        return;
    ts__executor_free(loop);
    /* Streams still open close now; their close callbacks run in the rounds below. */
    walk_members(loop, false);
    /* Run what is already queued: the callbacks may own resources (futures). */
    for (int round = 0; round < 64 && (loop->head || loop->xhead || !member_list_empty(&loop->pending)); round++) {
        run_pending(loop);
        run_callbacks(loop);
    }
    /*
     * What those rounds did not reach is dropped, never run. The queues go
     * first: a node may be embedded in a stream the next pass frees.
     */
    free_nodes(loop->head);
    pthread_mutex_lock(&loop->xlock);
    free_nodes(loop->xhead);
    loop->xhead = loop->xtail = NULL;
    pthread_mutex_unlock(&loop->xlock);
    loop->head = loop->tail = NULL;
    /* Streams the program still holds are cut loose: valid memory, no loop. */
    walk_members(loop, true);
    /* (embedded handlers are gone: their owners, the members, removed them on being orphaned) */
    for (int fd = 0; fd < loop->nhandlers; fd++) {
        ts__user_handler *h = loop->handlers[fd];
        if (!h)
            continue;
        ev_io_stop(loop->ev, &h->io);
        if (all_fds)
            close(fd);
        ts__free(h);
    }
    ts__free(loop->handlers);
    ts__free(loop->embedded);
    ts__timers_free(loop);
    for (int i = 0; i < TS__LOOP_RDBUFS; i++)
        ts__free(loop->shared.rdbufs[i].base);
    ts__pool_drain(&loop->shared.wpools.chunks);
    ts__pool_drain(&loop->shared.wpools.heads);
    ts__writebuf_pool_drain(&loop->shared.wpools.queues);

    ev_ref(loop->ev);
    ev_ref(loop->ev);
    ev_ref(loop->ev);
    ev_prepare_stop(loop->ev, &loop->prepare);
    ev_check_stop(loop->ev, &loop->check);
    ev_async_stop(loop->ev, &loop->async);
    if (ev_is_active(&loop->idle))
        ev_idle_stop(loop->ev, &loop->idle);
    if (loop->owns_ev)
        ev_loop_destroy(loop->ev);

    for (ts__cbnode *n = loop->spare, *next; n; n = next) {
        next = n->next;
        ts__free(n);
    }
    pthread_mutex_destroy(&loop->xlock);
    if (tl_current == loop)
        tl_current = NULL;
    ts__free(loop);
}

ts_ioloop *ts_ioloop_current(void) { return tl_current; }

void ts_ioloop_make_current(ts_ioloop *loop) { tl_current = loop; }

/* ---- running ------------------------------------------------------------ */

int ts_ioloop_start(ts_ioloop *loop)
{
    if (loop->running)
        return TS_ESTATE;
    ts_ioloop *prev = tl_current;
    tl_current = loop;
    claim_owner(loop);
    loop->running = true;
    ev_ref(loop->ev); /* keep ev_run going until we are stopped */
    ev_run(loop->ev, 0);
    ev_unref(loop->ev);
    loop->running = false;
    atomic_store(&loop->owner, 0);
    atomic_store(&loop->stop_requested, false);
    tl_current = prev;
    return 0;
}

void ts_ioloop_stop(ts_ioloop *loop)
{
    atomic_store(&loop->stop_requested, true);
    ev_async_send(loop->ev, &loop->async);
}

bool ts_ioloop_running(ts_ioloop *loop) { return loop->running; }

double ts_ioloop_time(ts_ioloop *loop)
{
    TS__UNUSED(loop);
    return ts__monotonic();
}

static void run_until_wake(ts_ioloop *loop, void *arg)
{
    TS__UNUSED(loop);
    *(bool *)arg = true;
}

int ts__ioloop_run_until(ts_ioloop *loop, const bool *done, double timeout)
{
    if (loop->running)
        return TS_ESTATE;
    bool timed_out = false;
    uint64_t tid = 0;
    if (timeout > 0) {
        tid = ts_ioloop_call_later(loop, timeout, run_until_wake, &timed_out);
        if (!tid)
            return TS_ENOMEM; /* without its timer the wait could never end: refuse rather than hang */
    }
    ts_ioloop *prev = tl_current;
    tl_current = loop;
    claim_owner(loop);
    loop->running = true;
    /* A stop asked for before the call still lets one iteration run, as start(). */
    for (bool first = true; !*done && !timed_out && (first || !atomic_load(&loop->stop_requested)); first = false) {
        ev_ref(loop->ev);
        ev_run(loop->ev, EVRUN_ONCE);
        ev_unref(loop->ev);
    }
    loop->running = false;
    atomic_store(&loop->owner, 0);
    atomic_store(&loop->stop_requested, false);
    tl_current = prev;
    if (tid)
        ts_ioloop_remove_timeout(loop, tid);
    return *done ? 0 : TS_ETIMEDOUT;
}

void ts_ioloop_handle_callback_error(ts_ioloop *loop, const char *where, int err)
{
    TS__UNUSED(loop);
    ts_log(TS_LOG_ERROR, "exception in callback %s: %s (%s)", where ? where : "?", ts_strerror(err),
           ts_err_name(err));
}

/* ---- fd handlers -------------------------------------------------------- */

static int ev_mask(int events)
{
    int m = 0;
    if (events & TS_IOLOOP_READ)
        m |= EV_READ;
    if (events & TS_IOLOOP_WRITE)
        m |= EV_WRITE;
    if (m == 0 && (events & TS_IOLOOP_ERROR))
        m = EV_READ;
    return m;
}

static void handler_io_cb(struct ev_loop *ev, ev_io *w, int revents)
{
    TS__UNUSED(ev);
    ts__user_handler *h = (ts__user_handler *)w;
    int events = 0;
    if (revents & EV_READ)
        events |= h->events & TS_IOLOOP_READ;
    if (revents & EV_WRITE)
        events |= h->events & TS_IOLOOP_WRITE;
    if (h->events & TS_IOLOOP_ERROR) {
        /* libev folds errors into readiness; ask the kernel only if the user cares. */
        struct pollfd p = {.fd = w->fd, .events = 0};
        if (poll(&p, 1, 0) > 0 && (p.revents & (POLLERR | POLLHUP | POLLNVAL)))
            events |= TS_IOLOOP_ERROR;
    }
    if (events)
        h->cb(h->loop, w->fd, events, h->arg);
}

/*
 * Grows the zero-filled array *@p arr of *@p n elements of @p size bytes,
 * doubling from @p min, until it has more than @p index. 0 or TS_ENOMEM.
 */
static int grow_zeroed(void **arr, int *n, int index, size_t size, int min)
{
    if (index < *n)
        return 0;
    int m = TS__MAX(min, *n);
    while (m <= index)
        m *= 2;
    char *p = ts__realloc(*arr, (size_t)m * size);
    if (!p)
        return TS_ENOMEM;
    memset(p + (size_t)*n * size, 0, (size_t)(m - *n) * size);
    *arr = p;
    *n = m;
    return 0;
}

/* Makes the fd table reach @p fd. */
static int table_reserve(ts_ioloop *loop, int fd)
{
    void *p = loop->handlers;
    int r = grow_zeroed(&p, &loop->nhandlers, fd, sizeof *loop->handlers, 64);
    loop->handlers = p;
    return r;
}

static bool embedded_at(const ts_ioloop *loop, int fd)
{
    return fd / 64 < loop->nembedded && (loop->embedded[fd / 64] >> (fd % 64) & 1u);
}

/* Makes the embedded-handler bits reach @p fd. */
static int embedded_reserve(ts_ioloop *loop, int fd)
{
    void *p = loop->embedded;
    int r = grow_zeroed(&p, &loop->nembedded, fd / 64, sizeof *loop->embedded, 4);
    loop->embedded = p;
    return r;
}

int ts_ioloop_add_handler(ts_ioloop *loop, int fd, int events, ts_ioloop_handler_cb cb, void *arg)
{
    if (fd < 0 || !cb || ev_mask(events) == 0)
        return TS_EINVAL;
    if (table_reserve(loop, fd))
        return TS_ENOMEM;
    if (loop->handlers[fd] || embedded_at(loop, fd))
        return -EEXIST;
    ts__user_handler *h = ts__calloc(1, sizeof *h);
    if (!h)
        return TS_ENOMEM;
    h->loop = loop;
    h->events = events;
    h->cb = cb;
    h->arg = arg;
    ev_io_init(&h->io, handler_io_cb, fd, ev_mask(events));
    h->io.data = h;
    ev_io_start(loop->ev, &h->io);
    loop->handlers[fd] = h;
    return 0;
}

/* The fd's ts_ioloop_add_handler() handler (NULL: none; embedded handlers are not in the table). */
static ts__user_handler *handler_get(ts_ioloop *loop, int fd)
{
    return (fd >= 0 && fd < loop->nhandlers) ? loop->handlers[fd] : NULL;
}

/* Moves @p w to the libev mask @p mask if it differs. */
static void watch_mask(ts_ioloop *loop, ev_io *w, int mask)
{
    if ((w->events & (EV_READ | EV_WRITE)) != mask) {
        ev_io_stop(loop->ev, w);
        ev_io_set(w, w->fd, mask);
        ev_io_start(loop->ev, w);
    }
}

int ts_ioloop_update_handler(ts_ioloop *loop, int fd, int events)
{
    ts__user_handler *h = handler_get(loop, fd);
    if (!h)
        return -ENOENT;
    if (ev_mask(events) == 0)
        return TS_EINVAL;
    h->events = events;
    watch_mask(loop, &h->io, ev_mask(events));
    return 0;
}

int ts_ioloop_remove_handler(ts_ioloop *loop, int fd)
{
    ts__user_handler *h = handler_get(loop, fd);
    if (!h)
        return -ENOENT;
    ev_io_stop(loop->ev, &h->io); /* also drops an event already collected */
    loop->handlers[fd] = NULL;
    ts__free(h);
    return 0;
}

/* ---- embedded fd handlers ----------------------------------------------- */

static bool embedded_events_valid(int events)
{
    return events != 0 && (events & ~(TS_IOLOOP_READ | TS_IOLOOP_WRITE)) == 0;
}

int ts__ioloop_add_handler_embedded(ts_ioloop *loop, ts__handler *h, int fd, int events, ts__handler_fn fn)
{
    if (fd < 0 || !fn || !embedded_events_valid(events))
        return TS_EINVAL;
    if (embedded_reserve(loop, fd))
        return TS_ENOMEM;
    if ((fd < loop->nhandlers && loop->handlers[fd]) || embedded_at(loop, fd))
        return -EEXIST;
    ev_io_init(&h->io, fn, fd, ev_mask(events)); /* (io.data stays the owner's) */
    ev_io_start(loop->ev, &h->io);
    loop->embedded[fd / 64] |= (uint64_t)1 << (fd % 64);
    return 0;
}

void ts__ioloop_update_handler_embedded(ts_ioloop *loop, ts__handler *h, int events)
{
    if (embedded_events_valid(events))
        watch_mask(loop, &h->io, ev_mask(events));
}

void ts__ioloop_remove_handler_embedded(ts_ioloop *loop, ts__handler *h)
{
    ev_io_stop(loop->ev, &h->io); /* also drops an event already collected */
    int fd = h->io.fd;
    if (fd >= 0 && embedded_at(loop, fd))
        loop->embedded[fd / 64] &= ~((uint64_t)1 << (fd % 64));
}
