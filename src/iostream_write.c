/*
 * The write half of the stream core: the write API, the inline first attempt
 * on an idle stream, flushing the write buffer with one writev per call
 * (capped in iovec entries and in bytes per event, so one busy stream cannot
 * starve the others), and running write callbacks in order as the bytes
 * written reach each write's end index.
 *
 * Buffer bookkeeping is writebuf.c's; the bytes themselves go through
 * ops->write_to_fd. A queued file region (ts_iostream_write_file) goes out
 * through ops->send_file where the transport has it (the built-in socket
 * and pipe transports: sendfile); any other transport gets its bytes read
 * (pread) into a staging block in the write buffer and written like copied
 * bytes.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "iostream_core.h"

static bool write_blocked(ts_iostream *s, ssize_t r)
{
    r = ts__io_wouldblock(r);
    if (r == 0 || r == TS_EAGAIN || r == TS_EWANTWRITE) {
        s->write_wait = TS_IOLOOP_WRITE;
    } else if (r == TS_EWANTREAD) {
        s->write_wait = TS_IOLOOP_READ; /* e.g. TLS renegotiation: a write that needs a read */
    } else {
        return false;
    }
    s->flags |= TS__F_WBLOCKED;
    return true;
}

/* The write side is drained: shut it if asked to (ts_iostream_shutdown). */
static void shutdown_write(ts_iostream *s)
{
    int (*op)(void *) = TS__OP(s, shutdown_write);
    int r = 0;
    if (op) {
        r = op(ts__io_transport(s));
        if (r < 0 && write_blocked(s, r))
            return; /* e.g. a close_notify the socket would not take yet: retried when writable */
    }
    s->flags = (s->flags & ~TS__F_SHUT_REQ) | TS__F_SHUT_DONE | TS__F_SHUT_READY;
    s->rare->shut_status = r < 0 ? r : 0; /* (set: TS__F_SHUT_REQ was) */
    if (!op)
        ts__io_close(s, 0, true); /* the only end of data this transport can send */
    else if (r < 0)
        ts__io_close(s, r, false);
}

/*
 * The head of the queue is a file region with nothing staged: send up to
 * @p budget of it. Returns bytes the transport took (> 0), 0 when bytes were
 * only staged (the caller goes on to write them), or a negative code:
 * TS_EAGAIN and friends, -ENODATA when the file ended before the region did
 * (it shrank), another error from the file or the fd.
 */
static ssize_t flush_file(ts_iostream *s, int fd, uint64_t off, size_t left, size_t budget)
{
    ssize_t (*send_file)(void *, int, uint64_t, size_t) = TS__OP(s, send_file);
    if (send_file) {
        ssize_t r = ts__io_wouldblock(send_file(ts__io_transport(s), fd, off, TS__MIN(left, budget)));
        if (r != TS_ENOTSUP)
            return r == 0 ? -ENODATA : r;
        /* A file the transport cannot send from: staged like the others. */
    }
    size_t room;
    char *buf = ts__writebuf_stage_begin(s->wb, &room);
    if (!buf)
        return TS_ENOMEM;
    ssize_t r;
    do
        r = pread(fd, buf, room, (off_t)off);
    while (r < 0 && errno == EINTR);
    if (r <= 0)
        return r == 0 ? -ENODATA : -errno;
    ts__writebuf_stage_commit(s->wb, (size_t)r);
    return 0;
}

/*
 * What may still be written now. A run (or an API call outside one) writes
 * until TS__WRITE_EVENT_CAP bytes have gone, across all its flushes and
 * direct writes; past it the stream waits for the next poll, as if blocked:
 * the fd stays watched and the loop serves the others first. The write that
 * crosses the cap is not cut at it (at most one more cap's worth): cut, it
 * would split a queued reply into two sends, or leave the rest of a large
 * write to be copied, and the next run would pay the extra call.
 */
static void budget_begin(ts_iostream *s)
{
    if (!(s->flags & TS__F_IN_RUN) && s->wb != &ts__writebuf_idle)
        s->wb->run_written = 0;
}

static size_t write_budget(ts_iostream *s)
{
    uint32_t done = s->wb->run_written;
    if (done >= TS__WRITE_EVENT_CAP) {
        s->flags |= TS__F_WBLOCKED;
        return 0;
    }
    return 2 * (size_t)TS__WRITE_EVENT_CAP - done;
}

/* Everything queued went out and the write side has been asked to end, or the read side ended. */
static void flush_drained(ts_iostream *s)
{
    if (s->flags & TS__F_SHUT_REQ)
        shutdown_write(s);
    if ((s->flags & (TS__F_READ_EOF | TS__F_CLOSED)) == TS__F_READ_EOF && !(s->flags & TS__F_SHUT_REQ))
        ts__io_close(s, 0, true); /* the half-close rule: everything queued went out */
}

void ts__io_flush(ts_iostream *s)
{
    struct iovec iov[TS__IOV_CAP];
    budget_begin(s);
    while (ts__writebuf_size(s->wb) > 0) {
        size_t left = write_budget(s);
        if (!left)
            return;
        ssize_t r;
        int fd;
        uint64_t off;
        size_t file_left;
        if (ts__writebuf_head_is_file(s->wb) && ts__writebuf_head_file(s->wb, &fd, &off, &file_left)) {
            r = flush_file(s, fd, off, file_left, left);
            if (r == 0)
                continue; /* staged: written through the transport next */
        } else {
            int cnt = ts__writebuf_iov_inline(s->wb, iov, TS__IOV_CAP, left);
            r = s->ops->write_to_fd(ts__io_transport(s), iov, cnt);
        }
        if (r > 0) {
            ts__writebuf_advance(s->wb, (size_t)r);
            s->wb->run_written += (uint32_t)r;
            s->write_wait = 0;
            ts__io_write_progress(s);
            continue;
        }
        if (!write_blocked(s, r))
            ts__io_close(s, (int)r, false);
        return;
    }
    if (s->flags & (TS__F_SHUT_REQ | TS__F_READ_EOF))
        flush_drained(s);
}

ts__writebuf *ts__io_wbuf_new(ts_iostream *s)
{
    ts_ioloop *loop = ts__io_loop(s);
    ts__writebuf *wb = ts__writebuf_new(loop ? ts__ioloop_write_pools(loop) : NULL);
    if (wb)
        s->wb = wb;
    return wb;
}

bool ts__io_pin_views(ts_iostream *s, bool flush, bool copy)
{
    if (flush && ts__io_ready_for_io(s) && !(s->flags & TS__F_WBLOCKED))
        ts__io_flush(s);
    if (s->flags & TS__F_CLOSED)
        return false; /* closing dropped the queue, views with it */
    if (!copy || !ts__writebuf_has_views(s->wb) || ts__writebuf_own_views(s->wb) == 0)
        return true;
    ts__io_close(s, TS_ENOMEM, false);
    return false;
}

/* Writes straight from the caller's memory. Returns bytes written, or -1 if that closed the stream. */
static ssize_t write_direct(ts_iostream *s, const char *data, size_t len)
{
    size_t done = 0, left;
    budget_begin(s);
    while (done < len && (left = write_budget(s)) > 0) {
        struct iovec iov = {(void *)(data + done), TS__MIN(len - done, left)};
        ssize_t r = s->ops->write_to_fd(ts__io_transport(s), &iov, 1);
        if (r > 0) {
            done += (size_t)r;
            s->wb->run_written += (uint32_t)r;
            s->write_wait = 0;
            continue;
        }
        if (write_blocked(s, r))
            break;
        ts__io_close(s, (int)r, false);
        return -1;
    }
    return (ssize_t)done;
}

/* Whether a write of @p len bytes may be queued now (0), or why not; makes room for its marker. */
static int write_refused(ts_iostream *s, uint64_t len, ts_iostream_write_cb cb)
{
    if (s->flags & TS__F_CLOSED)
        return TS_ECLOSED;
    if (s->flags & (TS__F_SHUT_REQ | TS__F_SHUT_DONE))
        return TS_ESTATE; /* the write side is (being) shut */
    /* As Tornado: the write is refused and nothing else happens; the caller may wait for the queue to drain. */
    size_t max = ts__io_max_write(s);
    if (max && (len > max || ts__writebuf_size(s->wb) > max - len))
        return TS_EBUFFERFULL;
    if (cb && (!ts__io_wbuf(s) || ts__writebuf_reserve_mark(s->wb)))
        return TS_ENOMEM; /* nothing happened yet */
    return 0;
}

/* @p own: the caller's memory is queued without a copy (NULL: copy it). */
__attribute__((noinline)) static int queue_write(ts_iostream *s, const void *data, size_t len, const ts__wowner *own,
                                                 ts_iostream_write_cb cb, void *arg)
{
    int refused = write_refused(s, len, cb);
    if (refused)
        return refused;
    if (len && !data)
        return TS_EINVAL;
    if (!ts__io_wbuf(s))
        return TS_ENOMEM;
    if (!own && ts__io_is_view(s, data, len)) {
        /* An echo of the callback's view: referenced, and flushed before that memory moves. */
        int r = ts__writebuf_append_view(s->wb, data, len);
        if (r) {
            ts__io_close(s, r, false);
            return r;
        }
        if (cb)
            ts__writebuf_add_mark(s->wb, cb, arg); /* room reserved above */
        return 0; /* only from a read callback, so inside a run: it flushes on its way out */
    }
    size_t done = 0;
    bool closed = false;
    if (len && ts__writebuf_size(s->wb) == 0 && ts__io_ready_for_io(s) && !(s->flags & TS__F_WBLOCKED) &&
        (!(s->flags & TS__F_IN_RUN) || len >= TS__WB_CHUNK)) {
        /*
         * Idle stream: try the kernel first and copy only what it would not
         * take. Inside this stream's own callbacks small writes are queued
         * instead: run() flushes everything they wrote with one writev. A
         * large one goes now, uncopied, so bulk sends as it reads.
         */
        ssize_t w = write_direct(s, data, len);
        closed = w < 0;
        if (closed)
            ts__writebuf_lose(s->wb, len); /* its callback must hear of the failure */
        else
            ts__writebuf_skip(s->wb, (size_t)w), done = (size_t)w;
    }
    if (!closed && done < len) {
        const char *rest = (const char *)data + done;
        int r = own ? ts__writebuf_append_owned(s->wb, rest, len - done, own)
                    : ts__writebuf_append(s->wb, rest, len - done);
        if (r) {
            ts__io_close(s, r, false);
            return r;
        }
    } else if (own) {
        ts__wowner_release(own); /* all of it went out (or never will): done with it */
    }
    if (cb)
        ts__writebuf_add_mark(s->wb, cb, arg); /* room reserved above */
    /* Inside a run (writes from callbacks), run() delivers, flushes and settles interest on its way out. */
    if (s->flags & TS__F_IN_RUN)
        return 0;
    if (ts__writebuf_mark_ready(s->wb))
        ts__io_schedule(s);
    ts__io_update_interest(s);
    return 0;
}

/*
 * ts_iostream_write()'s common case past the tail view: a view (write_view)
 * or a small copy (write_copy) queued and nothing else. Out of line so that
 * the extension of the tail view stays a leaf; a failed allocation takes
 * the full path.
 */
__attribute__((noinline)) static int write_view(ts_iostream *s, const void *data, size_t len)
{
    if (ts__io_wbuf(s) && ts__writebuf_append_view(s->wb, data, len) == 0)
        return 0;
    return queue_write(s, data, len, NULL, NULL, NULL);
}

__attribute__((noinline)) static int write_copy(ts_iostream *s, const void *data, size_t len)
{
    if (ts__io_wbuf(s) && ts__writebuf_append(s->wb, data, len) == 0)
        return 0;
    return queue_write(s, data, len, NULL, NULL, NULL);
}

int ts_iostream_write(ts_iostream *s, const void *data, size_t len, ts_iostream_write_cb cb, void *arg)
{
    /*
     * The common case, a small reply written from one of the stream's own
     * callbacks with no completion asked for, on an open stream without a
     * write limit: it is queued and nothing else (run() flushes on its way
     * out), so it goes straight to the buffer. An echo of what the read
     * callback was handed is queued by reference, no copy: most often as
     * part of the view the previous line's echo queued.
     */
    const unsigned mask = TS__F_IN_RUN | TS__F_CLOSED | TS__F_CONNECTING | TS__F_HANDSHAKING | TS__F_SHUT_REQ |
                          TS__F_SHUT_DONE;
    if (!cb && (s->flags & mask) == TS__F_IN_RUN && !ts__io_max_write(s)) {
        if (ts__io_is_view(s, data, len))
            return ts__writebuf_extend_view(s->wb, data, len) ? 0 : write_view(s, data, len);
        if (data && len < TS__WB_CHUNK)
            return write_copy(s, data, len);
    }
    return queue_write(s, data, len, NULL, cb, arg);
}

int ts_iostream_write_owned(ts_iostream *s, void *data, size_t len, void (*free_fn)(void *),
                            ts_iostream_write_cb cb, void *arg)
{
    return queue_write(s, data, len, &(ts__wowner){.data = data, .len = len, .free_fn = free_fn}, cb, arg);
}

int ts_iostream_write_ref(ts_iostream *s, const void *data, size_t len, ts_iostream_release_cb release,
                          void *release_arg, ts_iostream_write_cb cb, void *arg)
{
    ts__wowner own = {.data = data, .len = len, .release = release, .release_arg = release_arg};
    return queue_write(s, data, len, &own, cb, arg);
}

/* The region's length once checked against the file: 0 or a negative code. */
static int file_region(int fd, uint64_t offset, uint64_t *length)
{
    struct stat st;
    if (fd < 0)
        return TS_EINVAL;
    if (fstat(fd, &st) < 0)
        return -errno;
    if (!S_ISREG(st.st_mode))
        return TS_EINVAL; /* sendfile and pread need a regular file */
    uint64_t size = (uint64_t)st.st_size;
    if (*length == TS_WRITE_FILE_TO_END)
        *length = offset <= size ? size - offset : 0;
    if (offset > size || *length > size - offset)
        return -ENODATA;
    if (*length > SIZE_MAX)
        return TS_EINVAL; /* more than the write buffer can count (32-bit builds) */
    return 0;
}

int ts_iostream_write_file(ts_iostream *s, int fd, uint64_t offset, uint64_t length, ts_iostream_write_cb cb,
                           void *arg)
{
    int r = write_refused(s, 0, NULL); /* the stream's state first: a closed stream says so */
    if (!r)
        r = file_region(fd, offset, &length);
    if (!r)
        r = write_refused(s, length, cb);
    if (r)
        return r;
    if (!ts__io_wbuf(s))
        return TS_ENOMEM;
    if (length) {
        int own = fcntl(fd, F_DUPFD_CLOEXEC, 0);
        if (own < 0)
            return -errno;
        if (ts__writebuf_append_file(s->wb, own, offset, (size_t)length)) {
            close(own);
            return TS_ENOMEM;
        }
    }
    if (cb)
        ts__writebuf_add_mark(s->wb, cb, arg); /* room reserved above */
    if (s->flags & TS__F_IN_RUN)
        return 0; /* run() flushes on its way out */
    if (ts__writebuf_mark_ready(s->wb))
        ts__io_schedule(s);
    ts__io_update_interest(s);
    return 0;
}

int ts_iostream_shutdown(ts_iostream *s, ts_iostream_write_cb cb, void *arg)
{
    if (s->flags & TS__F_CLOSED)
        return TS_ECLOSED;
    if (s->flags & (TS__F_SHUT_REQ | TS__F_SHUT_DONE))
        return TS_ESTATE;
    ts__rare *rare = ts__io_rare(s);
    if (!rare)
        return TS_ENOMEM;
    s->flags |= TS__F_SHUT_REQ;
    rare->shut_cb = cb;
    rare->shut_arg = arg;
    /* A run flushes what is queued and then shuts; never inside this call. */
    ts__io_schedule(s);
    return 0;
}

/* Runs the shutdown callback once it is owed (after every write callback). */
bool ts__io_shutdown_deliver(ts_iostream *s)
{
    if (s->flags & TS__F_CLOSED && (s->flags & TS__F_SHUT_REQ)) {
        s->flags = (s->flags & ~TS__F_SHUT_REQ) | TS__F_SHUT_DONE | TS__F_SHUT_READY;
        s->rare->shut_status = ts__io_close_status(s);
    }
    if (!(s->flags & TS__F_SHUT_READY))
        return false;
    s->flags &= ~TS__F_SHUT_READY;
    ts__rare *rare = s->rare; /* (set: TS__F_SHUT_REQ was) */
    ts_iostream_write_cb cb = rare->shut_cb;
    rare->shut_cb = NULL;
    if (cb) {
        ts__io_cb_enter(s);
        cb(s, rare->shut_status, rare->shut_arg);
        ts__io_cb_leave(s);
    }
    return true;
}

bool ts__io_write_deliver(ts_iostream *s)
{
    ts__wmark m;
    int status = 0;
    if (!ts__writebuf_pop_mark(s->wb, false, &m)) {
        /* Once closed, the writes that did not make it fail in order. */
        if (!(s->flags & TS__F_CLOSED) || !ts__writebuf_pop_mark(s->wb, true, &m))
            return false;
        status = ts__io_close_status(s);
    }
    ts__io_cb_enter(s);
    m.cb(s, status, m.arg);
    ts__io_cb_leave(s);
    return true;
}
