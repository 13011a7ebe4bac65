/*
 * The timeout heap against a model: random add/remove (also from inside the
 * callbacks as they run), heap invariants checked after every operation, and
 * the run order checked against the model's (deadline, insertion order). Many
 * seeds, deterministic (a private xorshift generator, deadlines in the past so
 * the wall clock plays no part).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ioloop_int.h"
#include "tstream.h"

enum { MAX_ENTRIES = 1200 };

typedef struct entry {
    uint64_t id;
    double deadline;
    uint64_t order; /* insertion order, as the loop's seq */
    int state;      /* 0 pending, 1 removed, 2 ran */
} entry;

typedef struct model {
    ts_ioloop *loop;
    uint64_t rng;
    entry e[MAX_ENTRIES];
    int n;
    uint64_t order;
    double base;
    int ran;
    int pending;
} model;

static uint64_t next_rand(model *m)
{
    m->rng ^= m->rng << 13;
    m->rng ^= m->rng >> 7;
    m->rng ^= m->rng << 17;
    return m->rng;
}

static void check_heap(ts_ioloop *loop, int pending)
{
    if ((int)loop->nheap != pending)
        fail_msg("heap holds %u, model %d", loop->nheap, pending);
    for (uint32_t i = 0; i < loop->nheap; i++) {
        const ts__heapent *e = &loop->heap[i];
        if (loop->slots[e->slot].heap_idx != i)
            fail_msg("slot %u says heap %u, is at %u", e->slot, loop->slots[e->slot].heap_idx, i);
        if (loop->slots[e->slot].deadline != e->deadline || loop->slots[e->slot].seq != e->seq)
            fail_msg("heap entry %u disagrees with its slot", i);
        if (i > 0) {
            const ts__heapent *p = &loop->heap[(i - 1) / 2];
            if (e->deadline < p->deadline || (e->deadline == p->deadline && e->seq < p->seq))
                fail_msg("heap order broken at %u", i);
        }
    }
}

static void entry_cb(ts_ioloop *loop, void *arg);

static void add_one(model *m)
{
    if (m->n >= MAX_ENTRIES)
        return;
    entry *x = &m->e[m->n];
    /* few distinct deadlines: plenty of ties */
    x->deadline = m->base + (double)(next_rand(m) % 40);
    x->order = m->order++;
    x->state = 0;
    x->id = ts_ioloop_call_at(m->loop, x->deadline, entry_cb, x);
    assert_true(x->id != 0);
    m->n++;
    m->pending++;
}

static void remove_one(model *m)
{
    if (m->n == 0)
        return;
    entry *x = &m->e[next_rand(m) % (uint64_t)m->n];
    bool want = x->state == 0;
    if (ts_ioloop_remove_timeout(m->loop, x->id) != want)
        fail_msg("remove_timeout of an entry in state %d answered %d", x->state, !want);
    if (want) {
        x->state = 1;
        m->pending--;
    }
}

static model *g_model;

/* The one running must be the smallest pending (deadline, order) in the model. */
static void entry_cb(ts_ioloop *loop, void *arg)
{
    model *m = g_model;
    entry *x = arg;
    if (x->state != 0)
        fail_msg("a timeout in state %d ran", x->state);
    for (int i = 0; i < m->n; i++) {
        entry *y = &m->e[i];
        if (y->state == 0 && y != x &&
            (y->deadline < x->deadline || (y->deadline == x->deadline && y->order < x->order)))
            fail_msg("ran (%g, %llu) before (%g, %llu)", x->deadline - m->base, (unsigned long long)x->order,
                     y->deadline - m->base, (unsigned long long)y->order);
    }
    x->state = 2;
    m->pending--;
    m->ran++;
    /* its own id is spent */
    if (ts_ioloop_remove_timeout(loop, x->id))
        fail_msg("a running timeout could be removed");
    uint64_t r = next_rand(m) % 8;
    if (r < 2)
        remove_one(m);
    else if (r == 2)
        add_one(m);
    check_heap(loop, m->pending);
}

static void run_seed(uint64_t seed)
{
    static model m;
    memset(&m, 0, sizeof m);
    g_model = &m;
    m.rng = seed * 0x9E3779B97F4A7C15ull + 1;
    m.loop = ts_ioloop_new();
    m.base = ts_ioloop_time(m.loop) - 1000; /* all due: the order is the heap's alone */
    int ops = 200 + (int)(next_rand(&m) % 600);
    for (int i = 0; i < ops; i++) {
        if (next_rand(&m) % 3 == 0)
            remove_one(&m);
        else
            add_one(&m);
        check_heap(m.loop, m.pending);
    }
    for (int guard = 0; m.pending > 0 && guard < 10000; guard++)
        ev_run(ts_ioloop_ev(m.loop), EVRUN_NOWAIT);
    if (m.pending != 0)
        fail_msg("seed %llu: %d timeouts never ran", (unsigned long long)seed, m.pending);
    check_heap(m.loop, 0);
    for (int i = 0; i < m.n; i++)
        assert_true(m.e[i].state != 0);
    ts_ioloop_free(m.loop, false);
}

static void test_heap_against_model(void **state)
{
    (void)state;
    for (uint64_t seed = 1; seed <= 300; seed++)
        run_seed(seed);
}

/* Slot reuse: thousands of add/remove cycles, stale ids never match a reused slot. */
static void test_stale_ids_never_match(void **state)
{
    (void)state;
    ts_ioloop *loop = ts_ioloop_new();
    static uint64_t old[4096];
    for (int i = 0; i < 4096; i++) {
        old[i] = ts_ioloop_call_later(loop, 100, entry_cb, NULL);
        assert_true(ts_ioloop_remove_timeout(loop, old[i]));
        uint64_t fresh = ts_ioloop_call_later(loop, 100, entry_cb, NULL);
        for (int j = i; j >= 0 && j > i - 8; j--)
            assert_false(ts_ioloop_remove_timeout(loop, old[j]));
        assert_true(ts_ioloop_remove_timeout(loop, fresh));
    }
    assert_int_equal(loop->nheap, 0);
    ts_ioloop_free(loop, false);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_heap_against_model),
        cmocka_unit_test(test_stale_ids_never_match),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
