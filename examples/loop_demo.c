/*
 * loop_demo: a tour of the event loop. Schedules timeouts out of order, a
 * periodic callback, a job on the thread pool and a callback from another
 * thread, and prints what runs when.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <tstream.h>

#include "example_args.h"

typedef struct demo {
    ts_ioloop *loop;
    double t0;
    ts_periodic *tick;
    int ticks;
} demo;

static double since(demo *d) { return ts_ioloop_time(d->loop) - d->t0; }

static void say(ts_ioloop *loop, void *arg)
{
    (void)loop;
    printf("  timeout: %s\n", (const char *)arg);
}

static void on_tick(ts_ioloop *loop, void *arg)
{
    (void)loop;
    demo *d = arg;
    printf("  periodic tick %d at %.2fs\n", ++d->ticks, since(d));
    if (d->ticks == 3) {
        printf("  periodic: stopping itself after 3 ticks\n");
        ts_periodic_stop(d->tick);
    }
}

static void *count_primes(void *arg, int *err)
{
    (void)err;
    long limit = (long)(intptr_t)arg, count = 0;
    for (long n = 2; n < limit; n++) {
        bool prime = true;
        for (long k = 2; k * k <= n && prime; k++)
            prime = n % k != 0;
        count += prime;
    }
    long *result = malloc(sizeof *result);
    *result = count;
    return result;
}

static void on_primes(ts_future *f, void *arg)
{
    demo *d = arg;
    printf("  executor: %ld primes below 200000, computed on a worker thread (%.2fs)\n",
           *(long *)ts_future_result(f), since(d));
    ts_future_unref(f);
}

static void from_thread(ts_ioloop *loop, void *arg)
{
    (void)loop;
    demo *d = arg;
    printf("  callback queued by another thread ran on the loop thread (%.2fs)\n", since(d));
}

static void *thread_main(void *arg)
{
    demo *d = arg;
    usleep(150 * 1000);
    ts_ioloop_add_callback(d->loop, from_thread, d);
    return NULL;
}

static void finish(ts_ioloop *loop, void *arg)
{
    demo *d = arg;
    printf("  stopping the loop at %.2fs\n", since(d));
    ts_ioloop_stop(loop);
}

int main(int argc, char **argv)
{
    const char *prog = ex_prog_name(argc, argv, "loop_demo");
    if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        printf("usage: %s\nRuns a short tour of the libtstream event loop and exits.\n", prog);
        return 0;
    }
    demo d = {.loop = ts_ioloop_new()};
    if (!d.loop) {
        fprintf(stderr, "%s: cannot create a loop\n", prog);
        return 1;
    }
    d.t0 = ts_ioloop_time(d.loop);
    printf("libtstream %s loop demo\n", ts_version());
    ts_ioloop_call_later(d.loop, 0.30, say, "third (scheduled first, 0.30s)");
    ts_ioloop_call_later(d.loop, 0.10, say, "first (0.10s)");
    ts_ioloop_call_later(d.loop, 0.20, say, "second (0.20s)");
    uint64_t cancelled = ts_ioloop_call_later(d.loop, 0.25, say, "never printed: removed");
    ts_ioloop_remove_timeout(d.loop, cancelled);
    d.tick = ts_periodic_new(d.loop, on_tick, &d, 0.12, 0);
    ts_periodic_start(d.tick);
    ts_future *f = ts_ioloop_run_in_executor(d.loop, count_primes, (void *)(intptr_t)200000, free);
    ts_future_add_done_callback(f, on_primes, &d);
    pthread_t th;
    pthread_create(&th, NULL, thread_main, &d);
    ts_ioloop_call_later(d.loop, 0.5, finish, &d);
    ts_ioloop_start(d.loop);
    pthread_join(th, NULL);
    ts_periodic_free(d.tick);
    ts_ioloop_free(d.loop, false);
    printf("done\n");
    return 0;
}
