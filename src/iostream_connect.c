/*
 * Connecting and the transport handshake, the stream core's part: the
 * connect op and its outcome (connect_result), starting the handshake once
 * the fd is connected, stepping it on readiness under its deadline, and the
 * connect and handshake-wait callbacks. run() reaches this file through
 * ts__io_setup() (a stream not yet ready for reads and writes) and
 * ts__io_deliver_connect(); the state lives in the stream's side block
 * (ts__rare), allocated by the call that first needs it.
 */
#include <errno.h>
#include <sys/socket.h>

#include "iostream_core.h"

void ts__io_disarm_handshake_timer(ts_iostream *s)
{
    if (ts__io_rare_if(s) && s->rare->hs_timer) {
        ts_ioloop_remove_timeout(ts__io_loop(s), s->rare->hs_timer);
        s->rare->hs_timer = 0;
    }
}

/* The outcome of a connect (SO_ERROR): connect_result, else get_fd_error, else 0. */
static int connect_result(ts_iostream *s)
{
    int (*op)(void *) = TS__OP(s, connect_result);
    if (!op)
        op = TS__OP(s, get_fd_error);
    return op ? op(ts__io_transport(s)) : 0;
}

static bool fd_connected(ts_iostream *s)
{
    struct sockaddr_storage ss;
    socklen_t len;
    if (ts__io_peer_address(s, &ss, &len) != -ENOTCONN)
        return true; /* connected, or nothing to wait for (not a socket, no such op) */
    /*
     * ENOTCONN is also what an accepted socket says once its peer reset it.
     * A pending SO_ERROR tells the two apart: such a socket is "connected"
     * as far as we are concerned, and the handshake will meet the error.
     */
    return connect_result(s) != 0;
}

static void handshake_done(ts_iostream *s, int status)
{
    if (s->flags & TS__F_CONNECT_WAIT) {
        s->rare->connect_status = status;
        s->flags |= TS__F_CONNECT_READY;
    }
    if (s->flags & TS__F_HS_WAIT) {
        s->rare->hs_status = status;
        s->flags |= TS__F_HS_READY;
    }
}

/* A peer that stalls its handshake must not hold the fd and the memory for as long as it likes. */
static void on_handshake_deadline(ts_ioloop *loop, void *arg)
{
    TS__UNUSED(loop);
    ts_iostream *s = arg;
    s->rare->hs_timer = 0;
    if (!(s->flags & TS__F_HANDSHAKING) || (s->flags & TS__F_CLOSED))
        return;
    ts_log(TS_LOG_DEBUG, "iostream: handshake not finished in %.3g s, closing", s->rare->hs_timeout);
    ts__io_close(s, TS_ETIMEDOUT, false);
}

static void step_handshake(ts_iostream *s)
{
    if (!(s->flags & TS__F_HS_STARTED)) {
        if ((s->flags & TS__F_CONNECTING) || !fd_connected(s))
            return; /* a client stream: connect() will start it */
        s->flags |= TS__F_HS_STARTED;
        ts__rare *rare = ts__io_rare_if(s); /* (whole whenever a timeout is) */
        if (rare && rare->hs_timeout > 0) {
            rare->hs_timer = ts_ioloop_call_later(ts__io_loop(s), rare->hs_timeout, on_handshake_deadline, s);
            if (!rare->hs_timer) {
                ts__io_close(s, TS_ENOMEM, false); /* a deadline asked for and not kept would be a silent hole */
                return;
            }
        }
    }
    int r = s->ops->handshake(ts__io_transport(s));
    if (r == 0) {
        ts__io_disarm_handshake_timer(s);
        s->flags &= ~TS__F_HANDSHAKING;
        s->flags |= TS__F_HANDSHAKE_DONE;
        s->hs_wait = 0;
        handshake_done(s, 0);
    } else if (r == TS_EWANTREAD || (int)ts__io_wouldblock(r) == TS_EAGAIN) {
        s->hs_wait = TS_IOLOOP_READ;
    } else if (r == TS_EWANTWRITE) {
        s->hs_wait = TS_IOLOOP_WRITE;
    } else {
        ts__io_close(s, r, false); /* phase two hands r to the connect / handshake waiters */
    }
}

/* The socket is connected (connect finished or succeeded at once). */
static void connected(ts_iostream *s)
{
    s->flags &= ~TS__F_CONNECTING;
    if (!(s->flags & TS__F_HANDSHAKING) && (s->flags & TS__F_CONNECT_WAIT)) {
        s->rare->connect_status = 0;
        s->flags |= TS__F_CONNECT_READY;
    }
}

static void finish_connect(ts_iostream *s)
{
    int err = connect_result(s);
    if (err) {
        ts__io_close(s, err, false);
        return;
    }
    connected(s);
}

/* The closed / connecting / handshaking part of do_io. Returns whether reads and writes may go on. */
bool ts__io_setup(ts_iostream *s, int events, bool *inl_io)
{
    bool inl = *inl_io;
    if (s->flags & TS__F_CLOSED)
        return false;
    if (s->flags & TS__F_CONNECTING) {
        if (!(events & (TS_IOLOOP_WRITE | TS_IOLOOP_READ)))
            return false;
        finish_connect(s);
        if (s->flags & (TS__F_CONNECTING | TS__F_CLOSED))
            return false;
        inl = true;
    }
    if (s->flags & TS__F_HANDSHAKING) {
        int dir = s->hs_wait ? s->hs_wait : (TS_IOLOOP_READ | TS_IOLOOP_WRITE);
        if (!inl && !(events & dir))
            return false;
        step_handshake(s);
        if (s->flags & (TS__F_HANDSHAKING | TS__F_CLOSED))
            return false;
        inl = true; /* queued reads and writes may go now */
    }
    *inl_io = inl;
    return true;
}

/* Runs the connect or handshake-wait callback. */
void ts__io_deliver_connect(ts_iostream *s, bool hs)
{
    ts_iostream_connect_cb cb;
    void *arg;
    int status;
    ts__rare *r = s->rare; /* (set: a wait flag was) */
    if (hs) {
        s->flags &= ~(TS__F_HS_WAIT | TS__F_HS_READY);
        cb = r->hs_cb, arg = r->hs_arg, status = r->hs_status;
        r->hs_cb = NULL;
    } else {
        s->flags &= ~(TS__F_CONNECT_WAIT | TS__F_CONNECT_READY);
        cb = r->connect_cb, arg = r->connect_arg, status = r->connect_status;
        r->connect_cb = NULL;
    }
    if (!cb)
        return;
    ts__io_cb_enter(s);
    cb(s, status, arg);
    ts__io_cb_leave(s);
}

/* ---- the API ------------------------------------------------------------ */

int ts_iostream_connect(ts_iostream *s, const struct sockaddr *addr, socklen_t addrlen, ts_iostream_connect_cb cb,
                        void *arg)
{
    if (s->flags & TS__F_CLOSED)
        return TS_ECLOSED;
    if (s->flags & (TS__F_CONNECTING | TS__F_CONNECT_WAIT))
        return TS_EBUSY;
    int (*op)(void *, const struct sockaddr *, socklen_t) = TS__OP(s, connect);
    if (!addr)
        return TS_EINVAL;
    if (!op)
        return TS_ENOTSUP;
    ts__rare *rare = ts__io_rare(s);
    if (!rare)
        return TS_ENOMEM; /* before the transport is asked: nothing started */
    int r = op(ts__io_transport(s), addr, addrlen);
    /*
     * connect(2)'s word for "under way". Not -EAGAIN: from a unix socket's
     * connect that means its listener's backlog is full, a failure.
     */
    if (r == -EINPROGRESS)
        r = TS_EAGAIN;
    if (r == TS_ENOTSUP)
        return r; /* e.g. a socket stream over a pipe: nothing was started */
    rare->connect_cb = cb;
    rare->connect_arg = arg;
    s->flags |= TS__F_CONNECT_WAIT;
    if (r == 0) {
        connected(s);
        ts__io_schedule(s); /* callback, handshake and queued writes from the loop */
    } else if (r == TS_EAGAIN) {
        s->flags |= TS__F_CONNECTING;
    } else {
        /* Refused at once (e.g. a missing unix socket): reported like a late failure. */
        ts__io_close(s, r, false);
    }
    ts__io_update_interest(s);
    return 0;
}

int ts__iostream_wait_for_handshake(ts_iostream *s, ts_iostream_connect_cb cb, void *arg)
{
    if (s->flags & TS__F_HS_WAIT)
        return TS_EBUSY;
    ts__rare *rare = ts__io_rare(s);
    if (!rare)
        return TS_ENOMEM;
    rare->hs_cb = cb;
    rare->hs_arg = arg;
    s->flags |= TS__F_HS_WAIT;
    if (s->flags & TS__F_CLOSED) {
        rare->hs_status = ts__io_close_status(s);
        s->flags |= TS__F_HS_READY;
    } else if (!(s->flags & TS__F_HANDSHAKING)) {
        rare->hs_status = 0;
        s->flags |= TS__F_HS_READY;
    }
    if (s->flags & TS__F_HS_READY)
        ts__io_schedule(s);
    return 0;
}
