/*
 * Timeouts and periodic callbacks. Timeouts sit in a binary heap ordered by
 * (deadline, insertion sequence); one libev timer is armed for the earliest.
 * Ids carry a slot generation, so removing a timeout that already ran, or
 * removing twice, finds nothing and is harmless.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ioloop_int.h"

static inline bool ent_before(const ts__heapent *x, const ts__heapent *y)
{
    return x->deadline < y->deadline || (x->deadline == y->deadline && x->seq < y->seq);
}

static inline void heap_place(ts_ioloop *loop, uint32_t pos, ts__heapent e)
{
    loop->heap[pos] = e;
    loop->slots[e.slot].heap_idx = pos;
}

static void sift_up(ts_ioloop *loop, uint32_t pos)
{
    ts__heapent e = loop->heap[pos];
    while (pos > 0) {
        uint32_t parent = (pos - 1) / 2;
        if (!ent_before(&e, &loop->heap[parent]))
            break;
        heap_place(loop, pos, loop->heap[parent]);
        pos = parent;
    }
    heap_place(loop, pos, e);
}

static void sift_down(ts_ioloop *loop, uint32_t pos)
{
    ts__heapent e = loop->heap[pos];
    uint32_t n = loop->nheap;
    for (;;) {
        uint32_t child = 2 * pos + 1;
        if (child >= n)
            break;
        if (child + 1 < n && ent_before(&loop->heap[child + 1], &loop->heap[child]))
            child++;
        if (!ent_before(&loop->heap[child], &e))
            break;
        heap_place(loop, pos, loop->heap[child]);
        pos = child;
    }
    heap_place(loop, pos, e);
}

static void heap_remove_at(ts_ioloop *loop, uint32_t pos)
{
    ts__heapent last = loop->heap[--loop->nheap];
    if (pos == loop->nheap)
        return;
    heap_place(loop, pos, last);
    if (pos > 0 && ent_before(&last, &loop->heap[(pos - 1) / 2]))
        sift_up(loop, pos);
    else
        sift_down(loop, pos);
}

static void slot_release(ts_ioloop *loop, uint32_t idx)
{
    ts__tslot *s = &loop->slots[idx];
    s->gen++;
    if (s->gen == 0)
        s->gen = 1;
    s->cb = NULL;
    s->drop = NULL;
    s->heap_idx = TS__NO_SLOT;
    s->next_free = loop->free_slot;
    loop->free_slot = idx;
}

static void arm_timer(ts_ioloop *loop)
{
    if (ev_is_active(&loop->timer))
        ev_timer_stop(loop->ev, &loop->timer);
    if (loop->nheap == 0)
        return;
    double delay = loop->heap[0].deadline - ts__monotonic();
    ev_timer_set(&loop->timer, delay > 0 ? delay : 0, 0);
    ev_timer_start(loop->ev, &loop->timer);
}

static void timer_cb(struct ev_loop *ev, ev_timer *w, int revents)
{
    TS__UNUSED(ev), TS__UNUSED(revents);
    ts_ioloop *loop = w->data;
    double now = ts__monotonic();
    /* Timeouts scheduled by these callbacks wait for a later pass, as in Tornado. */
    uint64_t seq_limit = loop->seq;
    while (loop->nheap > 0) {
        if (loop->heap[0].deadline > now || loop->heap[0].seq >= seq_limit)
            break;
        uint32_t idx = loop->heap[0].slot;
        ts__tslot *s = &loop->slots[idx];
        ts_ioloop_cb cb = s->cb;
        void *arg = s->arg;
        heap_remove_at(loop, 0);
        slot_release(loop, idx);
        cb(loop, arg);
    }
    arm_timer(loop);
}

void ts__timers_init(ts_ioloop *loop)
{
    loop->free_slot = TS__NO_SLOT;
    ev_init(&loop->timer, timer_cb);
    loop->timer.data = loop;
}

void ts__timers_free(ts_ioloop *loop)
{
    if (ev_is_active(&loop->timer))
        ev_timer_stop(loop->ev, &loop->timer);
    /* Pending timeouts are dropped, not run; the ones that own their argument release it. */
    while (loop->nheap > 0) {
        uint32_t idx = loop->heap[loop->nheap - 1].slot;
        void (*drop)(void *) = loop->slots[idx].drop;
        void *arg = loop->slots[idx].arg;
        heap_remove_at(loop, loop->nheap - 1);
        slot_release(loop, idx);
        if (drop)
            drop(arg);
    }
    ts__free(loop->slots);
    ts__free(loop->heap);
    loop->slots = NULL;
    loop->heap = NULL;
    loop->nslots = loop->nheap = 0;
}

static bool grow_slots(ts_ioloop *loop)
{
    uint32_t n = loop->nslots ? loop->nslots * 2 : 64;
    if (n <= loop->nslots)
        return false;
    ts__tslot *slots = ts__realloc(loop->slots, (size_t)n * sizeof *slots);
    if (!slots)
        return false;
    loop->slots = slots;
    ts__heapent *heap = ts__realloc(loop->heap, (size_t)n * sizeof *heap);
    if (!heap)
        return false;
    loop->heap = heap;
    for (uint32_t i = n; i-- > loop->nslots;) {
        slots[i] = (ts__tslot){.gen = 1, .heap_idx = TS__NO_SLOT, .next_free = loop->free_slot};
        loop->free_slot = i;
    }
    loop->nslots = n;
    return true;
}

uint64_t ts_ioloop_call_at(ts_ioloop *loop, double deadline, ts_ioloop_cb cb, void *arg)
{
    if (!cb || isnan(deadline))
        return 0;
    if (loop->free_slot == TS__NO_SLOT && !grow_slots(loop))
        return 0;
    uint32_t idx = loop->free_slot;
    ts__tslot *s = &loop->slots[idx];
    loop->free_slot = s->next_free;
    s->deadline = deadline;
    s->seq = loop->seq++;
    s->cb = cb;
    s->arg = arg;
    s->drop = NULL;
    loop->heap[loop->nheap] = (ts__heapent){deadline, s->seq, idx};
    sift_up(loop, loop->nheap++);
    if (s->heap_idx == 0)
        arm_timer(loop);
    return ((uint64_t)s->gen << 32) | (idx + 1);
}

uint64_t ts_ioloop_call_later(ts_ioloop *loop, double delay, ts_ioloop_cb cb, void *arg)
{
    if (isnan(delay))
        return 0;
    return ts_ioloop_call_at(loop, ts__monotonic() + (delay > 0 ? delay : 0), cb, arg);
}

uint64_t ts__ioloop_call_later_owned(ts_ioloop *loop, double delay, ts_ioloop_cb cb, void *arg,
                                     void (*drop)(void *arg))
{
    uint64_t id = ts_ioloop_call_later(loop, delay, cb, arg);
    if (id)
        loop->slots[(uint32_t)(id & 0xffffffffu) - 1].drop = drop;
    return id;
}

bool ts_ioloop_remove_timeout(ts_ioloop *loop, uint64_t id)
{
    uint32_t idx = (uint32_t)(id & 0xffffffffu);
    uint32_t gen = (uint32_t)(id >> 32);
    if (idx == 0 || idx > loop->nslots)
        return false;
    idx--;
    ts__tslot *s = &loop->slots[idx];
    if (s->gen != gen || s->heap_idx == TS__NO_SLOT)
        return false;
    bool was_first = s->heap_idx == 0;
    heap_remove_at(loop, s->heap_idx);
    slot_release(loop, idx);
    if (was_first)
        arm_timer(loop);
    return true;
}

/* ---- PeriodicCallback --------------------------------------------------- */

struct ts_periodic {
    ts_ioloop *loop;
    ts_ioloop_cb cb;
    void *arg;
    double interval, jitter, next;
    uint64_t timeout;
    bool running, in_callback, free_pending;
};

ts_periodic *ts_periodic_new(ts_ioloop *loop, ts_ioloop_cb cb, void *arg, double interval, double jitter)
{
    if (!loop || !cb || !(interval > 0) || !(jitter >= 0 && jitter < 1))
        return NULL;
    ts_periodic *pc = ts__calloc(1, sizeof *pc);
    if (!pc)
        return NULL;
    pc->loop = loop;
    pc->cb = cb;
    pc->arg = arg;
    pc->interval = interval;
    pc->jitter = jitter;
    return pc;
}

static void periodic_run(ts_ioloop *loop, void *arg);

/* Tornado's schedule: missed deadlines are skipped to the next multiple. */
static void periodic_schedule(ts_periodic *pc)
{
    if (!pc->running)
        return;
    double now = ts__monotonic();
    double period = pc->interval;
    if (pc->jitter > 0)
        period *= 1 + pc->jitter * ((double)rand() / RAND_MAX - 0.5);
    if (pc->next <= now)
        pc->next += (floor((now - pc->next) / period) + 1) * period;
    else
        pc->next += period;
    pc->timeout = ts_ioloop_call_at(pc->loop, pc->next, periodic_run, pc);
    if (!pc->timeout) {
        ts_log(TS_LOG_ERROR, "periodic callback: out of memory, stopped");
        pc->running = false;
    }
}

static void periodic_run(ts_ioloop *loop, void *arg)
{
    TS__UNUSED(loop);
    ts_periodic *pc = arg;
    pc->timeout = 0;
    if (!pc->running)
        return;
    pc->in_callback = true;
    pc->cb(pc->loop, pc->arg);
    pc->in_callback = false;
    if (pc->free_pending) {
        ts__free(pc);
        return;
    }
    if (pc->timeout == 0) /* not restarted from inside the callback */
        periodic_schedule(pc);
}

void ts_periodic_start(ts_periodic *pc)
{
    if (pc->running)
        return;
    pc->running = true;
    pc->next = ts__monotonic();
    periodic_schedule(pc);
}

void ts_periodic_stop(ts_periodic *pc)
{
    pc->running = false;
    if (pc->timeout) {
        ts_ioloop_remove_timeout(pc->loop, pc->timeout);
        pc->timeout = 0;
    }
}

bool ts_periodic_is_running(ts_periodic *pc) { return pc->running; }

void ts_periodic_free(ts_periodic *pc)
{
    if (!pc)
        return;
    ts_periodic_stop(pc);
    if (pc->in_callback)
        pc->free_pending = true;
    else
        ts__free(pc);
}
