/*
 * Per-stream read and write timeouts (libevent's bufferevent_set_timeouts):
 * a read that waits on the fd, or a write side with bytes queued, that sees
 * no progress for its timeout closes the stream with TS_ETIMEDOUT.
 *
 * Progress costs one clock read (ts__io_read_progress / _write_progress) and
 * never touches the timer: one loop timer per stream is armed for the
 * earliest deadline and, when it fires, either closes the stream or re-arms
 * for the deadline that progress moved. The wait states are settled from
 * ts__io_update_interest, the one place the core brings the loop in line
 * with the stream. This file does no I/O.
 */
#include <string.h>

#include "iostream_core.h"

static void disarm(ts__timeouts *t, ts_ioloop *loop)
{
    if (t->timer) {
        ts_ioloop_remove_timeout(loop, t->timer);
        t->timer = 0;
    }
}

void ts__io_timeouts_free(ts_iostream *s)
{
    if (!(s->flags & TS__F_TIMEOUTS))
        return;
    disarm(&s->rare->tmo, ts__io_loop(s));
    s->flags &= ~TS__F_TIMEOUTS; /* (the block stays the stream's: freed with it) */
}

/* The earliest deadline of the sides that wait, or 0 when none does. */
static double next_deadline(const ts__timeouts *t)
{
    double due = 0;
    if (t->rd_waiting && t->read > 0)
        due = t->rd_since + t->read;
    if (t->wr_waiting && t->write > 0 && (due == 0 || t->wr_since + t->write < due))
        due = t->wr_since + t->write;
    return due;
}

static void arm(ts_iostream *s, double due);

static void on_check(ts_ioloop *loop, void *arg)
{
    ts_iostream *s = arg;
    ts__timeouts *t = &s->rare->tmo;
    t->timer = 0;
    double now = ts_ioloop_time(loop);
    bool rd_late = t->rd_waiting && t->read > 0 && now >= t->rd_since + t->read;
    bool wr_late = t->wr_waiting && t->write > 0 && now >= t->wr_since + t->write;
    if (rd_late || wr_late) {
        ts_log(TS_LOG_DEBUG, "iostream: no %s progress in %.3g s, closing", rd_late ? "read" : "write",
               rd_late ? t->read : t->write);
        ts__io_close(s, TS_ETIMEDOUT, false);
        return;
    }
    double due = next_deadline(t);
    if (due > 0)
        arm(s, due); /* progress moved the deadline: check again then */
}

static void arm(ts_iostream *s, double due)
{
    ts__timeouts *t = &s->rare->tmo;
    double delay = due - ts_ioloop_time(ts__io_loop(s));
    t->timer = ts_ioloop_call_later(ts__io_loop(s), delay > 0 ? delay : 0, on_check, s);
    t->due = due;
    if (!t->timer)
        ts__io_close(s, TS_ENOMEM, false); /* a timeout asked for and not kept would be a silent hole */
}

void ts__io_timeouts_settle(ts_iostream *s)
{
    ts__timeouts *t = &s->rare->tmo;
    bool closed = (s->flags & TS__F_CLOSED) != 0;
    bool rd = !closed && ts__io_read_wants_fd(s);
    bool wr = !closed && ts__io_write_pending(s);
    double now = 0;
    /* A wait that starts now starts its clock now. */
    if (rd && !t->rd_waiting)
        t->rd_since = now = ts_ioloop_time(ts__io_loop(s));
    if (wr && !t->wr_waiting)
        t->wr_since = now ? now : (now = ts_ioloop_time(ts__io_loop(s)));
    t->rd_waiting = rd;
    t->wr_waiting = wr;
    double due = next_deadline(t);
    if (due == 0) {
        disarm(t, ts__io_loop(s));
        return;
    }
    /* Armed for no later than needed: leave it (progress only moves deadlines later). */
    if (t->timer && t->due <= due)
        return;
    disarm(t, ts__io_loop(s));
    arm(s, due);
}

int ts_iostream_set_timeouts(ts_iostream *s, double read_timeout, double write_timeout)
{
    if (!(read_timeout >= 0) || !(write_timeout >= 0))
        return TS_EINVAL;
    if (s->flags & TS__F_CLOSED)
        return TS_ECLOSED;
    if (read_timeout == 0 && write_timeout == 0) {
        ts__io_timeouts_free(s);
        return 0;
    }
    if (!(s->flags & TS__F_TIMEOUTS)) {
        ts__rare *rare = ts__io_rare(s);
        if (!rare)
            return TS_ENOMEM;
        memset(&rare->tmo, 0, sizeof rare->tmo);
        s->flags |= TS__F_TIMEOUTS;
    }
    ts__timeouts *t = &s->rare->tmo;
    t->read = read_timeout;
    t->write = write_timeout;
    /* New limits count from now for whatever is waiting already. */
    t->rd_waiting = t->wr_waiting = false;
    disarm(t, ts__io_loop(s));
    if (!(s->flags & TS__F_IN_RUN))
        ts__io_timeouts_settle(s);
    return 0;
}

void ts_iostream_get_timeouts(const ts_iostream *s, double *read_timeout, double *write_timeout)
{
    if (read_timeout)
        *read_timeout = (s->flags & TS__F_TIMEOUTS) ? s->rare->tmo.read : 0;
    if (write_timeout)
        *write_timeout = (s->flags & TS__F_TIMEOUTS) ? s->rare->tmo.write : 0;
}
