/**
 * @file tstream/iostream.h
 * @brief Buffered non-blocking streams (Tornado's BaseIOStream, IOStream,
 * PipeIOStream), over one transport-agnostic core.
 *
 * ## Callback rules
 * - **No user callback ever runs inside the API call that caused it.** A read
 *   that buffered data can satisfy at once, a write that completes inline, an
 *   error found while starting an operation: all are delivered from the
 *   loop, right after the current event, in the same loop iteration.
 * - If a function that takes a callback returns an error, that callback never
 *   runs.
 * - One read may be pending at a time (a second gets TS_EBUSY). Any number of
 *   writes may be queued; their callbacks run in order, each once its bytes
 *   have been handed to the kernel.
 * - A completed read hands its callback a pointer into the stream's read
 *   buffer, valid only until the callback returns; the bytes are consumed
 *   after it. Copy what you keep. The future forms copy into a ts_bytes.
 * - A stream may be closed, and its last reference dropped, from inside any of
 *   its callbacks.
 *
 * ## Lifetime
 * The creator holds one reference. ts_iostream_close() closes the fd but does
 * not drop it; memory is freed when the last reference is dropped and the
 * close callback (if any) has run. Dropping the last reference of an open
 * stream closes it. Closing runs in this order: watchers stopped, unwritten
 * data dropped and fd closed (at once, idempotent); then, from the loop: a
 * pending connect callback gets the error; the pending read is completed
 * from buffered data if it can be, else fails once with the error that
 * closed the stream (TS_ECLOSED for a plain close or clean EOF); queued
 * writes fail in order with that same status; then the close callback, once.
 *
 * ## Future forms
 * Each *_future function returns a new future (one reference for the
 * caller). If the operation cannot start (the callback form would return an
 * error), the future comes back already failed with that error. NULL only
 * if the future cannot be allocated.
 *
 * ## Reads on a closed stream
 * As Tornado 6.1+: a read started after the stream closed is still served
 * from data left in the buffer; it fails with TS_ECLOSED only when the buffer
 * cannot satisfy it. When the peer closes, buffered data is first offered to
 * the pending read; read_until_close completes successfully with whatever
 * remains.
 *
 * ## The peer's EOF and queued writes (half-close)
 * A clean EOF from the peer (for TCP, its `shutdown(SHUT_WR)` or close; for
 * TLS, its close_notify) ends the read side only. One rule holds whether or
 * not a read was pending when the EOF arrived:
 * - the pending read, and any read started afterwards, is decided on what
 *   is buffered, exactly as at a close: served from it if it can be, else
 *   failed from the loop with TS_ECLOSED;
 * - writes already queued still go out, and more may be queued meanwhile;
 *   their callbacks get 0 once the kernel has the bytes, or the real error
 *   (e.g. -EPIPE, -ECONNRESET) if the peer is gone altogether;
 * - once the write queue is empty the fd is closed and the close callback
 *   runs with ts_iostream_error() 0. ts_iostream_closed() is false until then.
 * An EOF that is an error (a TLS peer that did not send close_notify:
 * TS_ETRUNCATED) closes at once, dropping queued writes. An EOF with nothing
 * queued closes at once too.
 */
#ifndef TSTREAM_IOSTREAM_H
#define TSTREAM_IOSTREAM_H

#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "common.h"
#include "future.h"
#include "ioloop.h"

#ifdef __cplusplus
extern "C" {
#endif

/** A stream. Opaque; reference counted. */
typedef struct ts_iostream ts_iostream;

/**
 * The transport vtable (Tornado's BaseIOStream subclass contract). Each
 * function receives the transport pointer given to ts_iostream_new().
 * Return conventions: a count (>= 0) or a negative code. TS_EAGAIN (or
 * -EAGAIN / -EWOULDBLOCK, taken as the same) means
 * "wait until the fd is readable" for reads and "writable" for writes;
 * TS_EWANTREAD / TS_EWANTWRITE name the direction explicitly (a TLS read that
 * must wait for writability returns TS_EWANTWRITE).
 *
 * The ops are the core's only door to the transport: it makes no system
 * call on the fd itself (connect, addresses, socket options, SO_ERROR all
 * go through an op), so a user transport can provide each of them. An op
 * added after the first release is optional and read only when @c size
 * covers it; what the core does without it is said at each.
 */
typedef struct ts_stream_ops {
    /** sizeof(ts_stream_ops), so the struct can grow. */
    size_t size;
    /** A short name for logs ("socket", "pipe", "tls"). */
    const char *name;
    /** The fd to watch (-1 once closed). Required. */
    int (*fileno)(void *transport);
    /** Reads up to @p len bytes into @p buf (memory the core provides). >0: bytes; 0: EOF; <0: error/TS_EAGAIN. Required. */
    ssize_t (*read_from_fd)(void *transport, void *buf, size_t len);
    /** Writes from @p iov. >0: bytes written (may be short); <0: error/TS_EAGAIN. Required. */
    ssize_t (*write_to_fd)(void *transport, const struct iovec *iov, int iovcnt);
    /** Closes the fd (once; further calls are no-ops). Required. */
    void (*close_fd)(void *transport);
    /**
     * The pending error on the fd (e.g. SO_ERROR), as a negative code, or 0.
     * Optional. Consulted when read_from_fd reports EOF: nonzero becomes the
     * stream's close error (a TLS transport reports truncation this way).
     */
    int (*get_fd_error)(void *transport);
    /**
     * Bytes readable without waiting for the fd (e.g. SSL_pending). Optional.
     * When a read would block but this is nonzero, the core reads again from
     * the loop without waiting for the fd.
     */
    size_t (*pending)(void *transport);
    /**
     * Advances a handshake. 0: done; TS_EWANTREAD/TS_EWANTWRITE: call again
     * when the fd is ready; other negative: failed (the stream closes with
     * that error, which the connect callback and handshake waiters get).
     * Optional: NULL means no handshake. First called from the loop: right
     * after creation if the fd is already connected (peer_address does not
     * say -ENOTCONN, or there is no peer_address op), else once
     * ts_iostream_connect() completes. No read_from_fd / write_to_fd
     * call happens before it returns 0; reads and writes queue meanwhile.
     */
    int (*handshake)(void *transport);
    /**
     * Starts an orderly shutdown before close (e.g. TLS close_notify); best
     * effort, must not block. Optional. Called just before close_fd, only when
     * the stream ends cleanly: closed locally without an error, or closed
     * after the peer's clean EOF (answering its close_notify); never after a
     * reset, a truncation or any other error.
     */
    void (*shutdown)(void *transport);
    /** A detail string for the last error (e.g. OpenSSL's reason), or NULL. Optional. */
    const char *(*error_detail)(void *transport);
    /** Frees the transport (after close_fd). Optional. */
    void (*free)(void *transport);
    /**
     * Ends the write side while reads go on, once everything queued went
     * out (ts_iostream_shutdown()): for TCP `shutdown(SHUT_WR)`, for TLS a
     * close_notify. 0: done; TS_EAGAIN/TS_EWANTWRITE/TS_EWANTREAD: call again
     * when the fd is ready; other negative: failed (the stream closes with
     * it). Optional: without it, ts_iostream_shutdown() closes the stream
     * once the queue drains, the only end of data such a transport can send.
     */
    int (*shutdown_write)(void *transport);
    /**
     * TS_STREAM_OPS_* bits telling the core how the transport behaves
     * (0: none of them, the safe default).
     */
    unsigned flags;
    /**
     * Starts connecting the fd to @p addr (ts_iostream_connect()). 0:
     * connected at once; TS_EAGAIN (or -EINPROGRESS): under way,
     * the core waits until the fd is writable and then asks
     * connect_result; TS_ENOTSUP: this transport
     * cannot connect (ts_iostream_connect() returns it, nothing changes);
     * other negative: failed (the stream closes with it, the connect
     * callback gets it). Optional: without it ts_iostream_connect() returns
     * TS_ENOTSUP.
     */
    int (*connect)(void *transport, const struct sockaddr *addr, socklen_t addrlen);
    /**
     * The outcome of a connect that was under way, asked once the fd is
     * writable (for a socket, SO_ERROR): 0 connected, negative the error.
     * Also asked when peer_address says -ENOTCONN, to tell a socket that
     * was never connected (0) from one whose peer already reset it (nonzero).
     * Optional: without it get_fd_error answers; without either, 0.
     */
    int (*connect_result)(void *transport);
    /**
     * The peer's address (getpeername()): 0 with @p addr / @p len filled
     * (@p len is in: room, out: length), or a negative code; -ENOTCONN means
     * not connected yet, so a handshake waits for ts_iostream_connect().
     * Optional: without it ts_iostream_peer_address() returns TS_ENOTSUP,
     * and the fd counts as connected (a handshake starts at once).
     */
    int (*peer_address)(void *transport, struct sockaddr *addr, socklen_t *len);
    /** The local address (getsockname()), as peer_address. Optional: without it ts_iostream_local_address() returns TS_ENOTSUP. */
    int (*local_address)(void *transport, struct sockaddr *addr, socklen_t *len);
    /** Sets or clears TCP_NODELAY (0 where it means nothing, e.g. a unix socket). Optional: without it ts_iostream_set_nodelay() returns TS_ENOTSUP. */
    int (*set_nodelay)(void *transport, bool on);
    /**
     * Sends up to @p len bytes of the regular file open on @p file_fd,
     * starting at @p offset, straight from the file (sendfile(2)), for
     * ts_iostream_write_file(). >0: bytes sent (may be short); 0: the file
     * ended before @p offset + 1; TS_EAGAIN (or -EAGAIN): would block;
     * TS_ENOTSUP: not this file or not now (the core reads the bytes and
     * writes them through write_to_fd instead); other negative: failed (the
     * stream closes with it). It must not move @p file_fd's offset.
     * Optional: without it every file region goes through write_to_fd.
     */
    ssize_t (*send_file)(void *transport, int file_fd, uint64_t offset, size_t len);
} ts_stream_ops;

/**
 * ts_stream_ops.flags: a read that returns fewer bytes than asked means the
 * fd is drained, so the core waits for readiness instead of making the read
 * that would only answer TS_EAGAIN. Right for a transport that reads the fd
 * itself (recv, read); wrong for one that holds bytes the fd does not
 * announce (TLS records, a user-space queue): without the flag the core
 * reads on until the transport says it would block.
 */
#define TS_STREAM_OPS_SHORT_READ_DRAINED 0x1u

/** Stream options. Zero-initialise, set `size = sizeof(ts_iostream_options)`. */
typedef struct ts_iostream_options {
    /** sizeof(ts_iostream_options). */
    size_t size;
    /**
     * Largest amount of unconsumed read data (0: 100 MiB). Over it:
     * TS_EBUFFERFULL, stream closed. Values above
     * TS_IOSTREAM_MAX_BUFFER_LIMIT, SIZE_MAX ("unlimited") among them, are
     * clamped to it.
     */
    size_t max_buffer_size;
    /** Bytes asked of the transport per read (0: 64 KiB; capped at max_buffer_size / 2 and at TS_IOSTREAM_MAX_CHUNK). */
    size_t read_chunk_size;
    /** Largest amount of queued write data (0: unlimited). A write that would pass it is refused with TS_EBUFFERFULL; the stream stays open (as Tornado). */
    size_t max_write_buffer_size;
    /**
     * Seconds the transport's handshake (TLS) may take, counted from when it
     * starts (once the fd is connected). Past it the stream closes with
     * TS_ETIMEDOUT, which the connect / handshake waiters and the pending
     * operations receive. 0: no limit. Ignored by transports without a
     * handshake. ts_iostream_start_tls() carries it over to the TLS stream.
     */
    double handshake_timeout;
} ts_iostream_options;

/** Default max_buffer_size: 100 MiB. */
#define TS_IOSTREAM_DEFAULT_MAX_BUFFER (100u * 1024u * 1024u)
/** The largest max_buffer_size in effect (SIZE_MAX / 4); larger values are clamped to it. */
#define TS_IOSTREAM_MAX_BUFFER_LIMIT (SIZE_MAX / 4)
/** The largest read_chunk_size in effect: 16 MiB (a read reserves that much room). */
#define TS_IOSTREAM_MAX_CHUNK (16u * 1024u * 1024u)
/** Default read_chunk_size: 64 KiB. */
#define TS_IOSTREAM_DEFAULT_CHUNK (64u * 1024u)

/**
 * A read completed (@p status 0) or failed (@p status < 0). On success
 * @p data / @p len are the bytes read (a view into the read buffer, valid
 * until the callback returns); on failure they are NULL / 0.
 */
typedef void (*ts_iostream_read_cb)(ts_iostream *s, int status, const char *data, size_t len, void *arg);

/** One chunk of a streaming read, as it arrives (a view, valid until return). */
typedef void (*ts_iostream_streaming_cb)(ts_iostream *s, const char *data, size_t len, void *arg);

/** ts_iostream_read_into() finished: @p n bytes were stored in the caller's buffer. */
typedef void (*ts_iostream_read_into_cb)(ts_iostream *s, int status, size_t n, void *arg);

/** A write's bytes reached the kernel (@p status 0), or the stream closed first (the closing error, or TS_ECLOSED if it closed without one). */
typedef void (*ts_iostream_write_cb)(ts_iostream *s, int status, void *arg);

/** A connect (and TLS handshake, for TLS streams) finished. */
typedef void (*ts_iostream_connect_cb)(ts_iostream *s, int status, void *arg);

/** The stream closed. ts_iostream_error() tells why (0: closed locally or by a clean EOF). */
typedef void (*ts_iostream_close_cb)(ts_iostream *s, void *arg);

/**
 * A stream over a user-supplied transport. The stream calls ops->close_fd and
 * ops->free (if set) when done with @p transport.
 *
 * @param loop      the loop the stream runs on
 * @param ops       the transport's vtable (not copied: it must outlive the stream)
 * @param transport passed to every op
 * @param opts      options, or NULL for the defaults
 * @return the stream (one reference for the caller); NULL for a NULL
 *         @p loop, ops missing a required function or too small a
 *         ops->size, or out of memory (the transport is then not freed)
 */
TS_EXPORT ts_iostream *ts_iostream_new(ts_ioloop *loop, const ts_stream_ops *ops, void *transport,
                                       const ts_iostream_options *opts);

/**
 * A stream over a socket (Tornado's IOStream). The stream owns @p fd (it is
 * made non-blocking and closed with the stream). The socket may be connected
 * already or not yet (then call ts_iostream_connect()).
 *
 * @param loop the loop the stream runs on
 * @param fd   a socket (TCP or unix); owned by the stream on success
 * @param opts options, or NULL for the defaults
 * @return the stream (one reference for the caller); NULL for a negative
 *         @p fd, an fd that cannot be made non-blocking or out of memory
 *         (@p fd is then not closed)
 */
TS_EXPORT ts_iostream *ts_iostream_new_socket(ts_ioloop *loop, int fd, const ts_iostream_options *opts);

/**
 * A stream over one end of a pipe (Tornado's PipeIOStream). Owns @p fd.
 * Writing to a pipe whose reader is gone fails with -EPIPE (SIGPIPE is
 * ignored process-wide when the first pipe stream is created, as Python does).
 *
 * @param loop the loop the stream runs on
 * @param fd   one end of a pipe (or any fd that read()/write() work on); owned by the stream on success
 * @param opts options, or NULL for the defaults
 * @return the stream (one reference for the caller); NULL for a negative
 *         @p fd, an fd that cannot be made non-blocking or out of memory
 *         (@p fd is then not closed)
 */
TS_EXPORT ts_iostream *ts_iostream_new_pipe(ts_ioloop *loop, int fd, const ts_iostream_options *opts);

/**
 * Takes a reference.
 *
 * @param s the stream
 * @return @p s
 */
TS_EXPORT ts_iostream *ts_iostream_ref(ts_iostream *s);
/**
 * Drops a reference. The last one closes the stream if it is open, and frees
 * it once its close callback has run.
 *
 * @param s the stream, or NULL (nothing happens)
 */
TS_EXPORT void ts_iostream_unref(ts_iostream *s);
/**
 * Closes the stream (no error) and drops the caller's reference:
 * ts_iostream_close(s, 0) then ts_iostream_unref(s).
 *
 * @param s the stream, or NULL (nothing happens)
 */
TS_EXPORT void ts_iostream_free(ts_iostream *s);

/**
 * Connects a socket stream to @p addr (through its transport's connect op:
 * socket and TLS streams, or a user transport that has one). Writes queued
 * meanwhile go out once connected (a write issued
 * before connect() is called goes to the unconnected socket and fails, as
 * Tornado). @p cb (may be NULL) gets 0, or the OS error (e.g.
 * -ECONNREFUSED, also when connect() fails at once), which also closes the
 * stream and becomes ts_iostream_error(). For streams with a handshake
 * (TLS) the callback runs after the handshake, with its error if it fails.
 *
 * @param s       the stream
 * @param addr    the address to connect to (copied by connect())
 * @param addrlen its length
 * @param cb      runs once connected (0) or failed (its error); may be NULL
 * @param arg     passed to @p cb
 * @return 0 when started (@p cb will run once, from the loop)
 * @retval TS_ECLOSED the stream is closed
 * @retval TS_EBUSY   a connect is already under way
 * @retval TS_EINVAL  @p addr is NULL
 * @retval TS_ENOTSUP the transport cannot connect (no connect op, as a pipe
 *                    stream, or a socket stream whose fd is not a socket)
 * @retval TS_ENOMEM  out of memory (nothing was started)
 */
TS_EXPORT int ts_iostream_connect(ts_iostream *s, const struct sockaddr *addr, socklen_t addrlen,
                                  ts_iostream_connect_cb cb, void *arg);
/**
 * Future form of ts_iostream_connect().
 *
 * @param s       the stream
 * @param addr    the address to connect to
 * @param addrlen its length
 * @return a future resolved with NULL once connected, or failed with the
 *         connect's error (or the one ts_iostream_connect() would return);
 *         NULL when out of memory
 */
TS_EXPORT ts_future *ts_iostream_connect_future(ts_iostream *s, const struct sockaddr *addr, socklen_t addrlen);

/**
 * Reads exactly @p n bytes, or with @p partial as soon as any bytes (up to
 * @p n) are available. n == 0 completes at once with no data.
 *
 * @param s       the stream
 * @param n       bytes to read (at most, with @p partial)
 * @param partial complete with whatever is available (at least one byte)
 * @param cb      gets the bytes (a view into the read buffer), or the error
 * @param arg     passed to @p cb
 * @return 0 when started (@p cb will run once, from the loop)
 * @retval TS_EINVAL @p cb is NULL
 * @retval TS_EBUSY  another read is pending
 * @retval TS_ECLOSED the stream is closed and what it buffered cannot satisfy the read
 * @retval TS_EBUFFERFULL @p n is larger than max_buffer_size
 */
TS_EXPORT int ts_iostream_read_bytes(ts_iostream *s, size_t n, bool partial, ts_iostream_read_cb cb, void *arg);

/**
 * Reads @p n bytes, handing them to @p streaming_cb in chunks as they arrive;
 * then @p cb runs with status 0 and no data (len 0). @p n may exceed
 * max_buffer_size (nothing accumulates).
 *
 * @param s            the stream
 * @param n            bytes to read in all
 * @param streaming_cb gets each chunk as it arrives (a view)
 * @param cb           runs at the end: 0 with no data, or the error
 * @param arg          passed to both callbacks
 * @return 0 when started
 * @retval TS_EINVAL @p cb or @p streaming_cb is NULL
 * @retval TS_EBUSY  another read is pending
 * @retval TS_ECLOSED the stream is closed and what it buffered cannot satisfy the read
 */
TS_EXPORT int ts_iostream_read_bytes_streaming(ts_iostream *s, size_t n, ts_iostream_streaming_cb streaming_cb,
                                               ts_iostream_read_cb cb, void *arg);

/**
 * Reads up to and including the delimiter @p delim (any length > 0; an empty
 * one is TS_EINVAL). With @p max_bytes > 0, if the delimiter (counted in
 * @p max_bytes) is not found within that many bytes, the read fails with
 * TS_EUNSATISFIABLE and the stream closes. The search resumes where it
 * stopped, so a long line arriving in pieces costs linear time.
 *
 * @param s         the stream
 * @param delim     the delimiter (copied)
 * @param delim_len its length, > 0
 * @param max_bytes the most bytes to look through, delimiter included; 0: max_buffer_size
 * @param cb        gets the bytes up to and including the delimiter (a view), or the error
 * @param arg       passed to @p cb
 * @return 0 when started (@p cb will run once, from the loop)
 * @retval TS_EINVAL @p cb is NULL, or @p delim is NULL or @p delim_len is 0
 * @retval TS_EBUSY  another read is pending
 * @retval TS_ECLOSED the stream is closed and what it buffered cannot satisfy the read
 * @retval TS_ENOMEM out of memory (a long delimiter is copied)
 */
TS_EXPORT int ts_iostream_read_until(ts_iostream *s, const void *delim, size_t delim_len, size_t max_bytes,
                                     ts_iostream_read_cb cb, void *arg);

/**
 * Reads up to the end of the first match of the PCRE2 @p pattern. The
 * pattern is compiled (with JIT) once and kept by the stream while it stays
 * the same. Matching runs under PCRE2 match and heap limits; exceeding them
 * fails the read with TS_EREGEX and closes the stream (running out of memory
 * below the limits: TS_ENOMEM). A bad pattern is TS_EREGEX at once (callback
 * not run); TS_ENOMEM if compiling it runs out of memory. @p max_bytes as for read_until; the
 * match is looked for in the first @p max_bytes bytes only, so a pattern
 * whose match could run on past them (greedy repeats, `$`, `\b`) ends at
 * that limit where Tornado, which searches the whole buffer, would fail the
 * read. Like Tornado, the pattern sees only what has arrived so far: prefer
 * patterns whose end does not depend on bytes still to come.
 *
 * Empty matches: a pattern that can match the empty string (`x*`, `a?`)
 * waits while nothing is buffered, and completes as soon as any byte is
 * buffered with the first match it finds, which may be empty at the very
 * start (0 bytes delivered, nothing consumed). A read that must make
 * progress needs a pattern that cannot match nothing (`x+`). This is the
 * regex counterpart of read_until's rule that the delimiter may not be empty.
 *
 * @param s         the stream
 * @param pattern   a NUL-terminated PCRE2 pattern
 * @param max_bytes the most bytes to look through; 0: max_buffer_size
 * @param cb        gets the bytes up to the end of the match (a view), or the error
 * @param arg       passed to @p cb
 * @return 0 when started (@p cb will run once, from the loop)
 * @retval TS_EINVAL @p cb is NULL, or @p pattern is NULL
 * @retval TS_EBUSY  another read is pending
 * @retval TS_ECLOSED the stream is closed and what it buffered cannot satisfy the read
 * @retval TS_EREGEX @p pattern does not compile (or memory ran out compiling it)
 */
TS_EXPORT int ts_iostream_read_until_regex(ts_iostream *s, const char *pattern, size_t max_bytes,
                                           ts_iostream_read_cb cb, void *arg);

/**
 * Reads everything until the stream closes; @p cb gets it all (status 0)
 * when it does, also when the close had an error such as a reset (see
 * ts_iostream_error()), as Tornado. Exceptions: TS_EBUFFERFULL (more than
 * max_buffer_size arrived) and TS_ENOMEM fail the read. On a stream that is
 * already closed it completes with whatever is buffered (possibly nothing).
 *
 * @param s   the stream
 * @param cb  gets all the bytes (a view), or the error
 * @param arg passed to @p cb
 * @return 0 when started (@p cb will run once, from the loop)
 * @retval TS_EINVAL @p cb is NULL
 * @retval TS_EBUSY  another read is pending
 */
TS_EXPORT int ts_iostream_read_until_close(ts_iostream *s, ts_iostream_read_cb cb, void *arg);

/**
 * As ts_iostream_read_until_close(), handing data to @p streaming_cb as it
 * arrives; then @p cb with no data. Nothing accumulates, so max_buffer_size
 * does not limit the total.
 *
 * @param s            the stream
 * @param streaming_cb gets each chunk as it arrives (a view)
 * @param cb           runs at the close: 0 with no data, or the error
 * @param arg          passed to both callbacks
 * @return 0 when started
 * @retval TS_EINVAL @p cb or @p streaming_cb is NULL
 * @retval TS_EBUSY  another read is pending
 */
TS_EXPORT int ts_iostream_read_until_close_streaming(ts_iostream *s, ts_iostream_streaming_cb streaming_cb,
                                                     ts_iostream_read_cb cb, void *arg);

/**
 * Reads into the caller's @p buf of @p len bytes: until it is full, or with
 * @p partial as soon as any bytes arrived (Tornado's read_into).
 *
 * @param s       the stream
 * @param buf     where the bytes go; must stay valid until @p cb runs
 * @param len     its size
 * @param partial complete as soon as any bytes are stored
 * @param cb      gets the number of bytes stored, or the error
 * @param arg     passed to @p cb
 * @return 0 when started (@p cb will run once, from the loop)
 * @retval TS_EINVAL @p cb is NULL, or @p buf is NULL with @p len > 0
 * @retval TS_EBUSY  another read is pending
 * @retval TS_ECLOSED the stream is closed and what it buffered cannot satisfy the read
 */
TS_EXPORT int ts_iostream_read_into(ts_iostream *s, void *buf, size_t len, bool partial,
                                    ts_iostream_read_into_cb cb, void *arg);

/**
 * Future form of ts_iostream_read_bytes(). The future forms of the reads
 * resolve with a ts_bytes * (a copy, owned by the future) and fail with the
 * error the callback would get, or the one the callback form would return.
 *
 * @param s       the stream
 * @param n       bytes to read (at most, with @p partial)
 * @param partial complete with whatever is available (at least one byte)
 * @return the future (one reference for the caller); NULL when out of memory
 */
TS_EXPORT ts_future *ts_iostream_read_bytes_future(ts_iostream *s, size_t n, bool partial);
/**
 * Future form of ts_iostream_read_until(): resolves with a ts_bytes *.
 *
 * @param s         the stream
 * @param delim     the delimiter (copied)
 * @param delim_len its length, > 0
 * @param max_bytes the most bytes to look through; 0: max_buffer_size
 * @return the future (one reference for the caller); NULL when out of memory
 */
TS_EXPORT ts_future *ts_iostream_read_until_future(ts_iostream *s, const void *delim, size_t delim_len,
                                                   size_t max_bytes);
/**
 * Future form of ts_iostream_read_until_regex(): resolves with a ts_bytes *.
 *
 * @param s         the stream
 * @param pattern   a NUL-terminated PCRE2 pattern
 * @param max_bytes the most bytes to look through; 0: max_buffer_size
 * @return the future (one reference for the caller); NULL when out of memory
 */
TS_EXPORT ts_future *ts_iostream_read_until_regex_future(ts_iostream *s, const char *pattern, size_t max_bytes);
/**
 * Future form of ts_iostream_read_until_close(): resolves with a ts_bytes *.
 *
 * @param s the stream
 * @return the future (one reference for the caller); NULL when out of memory
 */
TS_EXPORT ts_future *ts_iostream_read_until_close_future(ts_iostream *s);
/**
 * Future form of ts_iostream_read_into(): resolves with the byte count cast
 * to (void *)(uintptr_t).
 *
 * @param s       the stream
 * @param buf     where the bytes go; must stay valid until the future is done
 * @param len     its size
 * @param partial complete as soon as any bytes are stored
 * @return the future (one reference for the caller); NULL when out of memory
 */
TS_EXPORT ts_future *ts_iostream_read_into_future(ts_iostream *s, void *buf, size_t len, bool partial);

/**
 * Queues a copy of @p len bytes for writing; tried inline at once when the
 * stream is idle. Inside the stream's own callbacks writes are gathered
 * instead, and flushed with one writev as soon as the callbacks that can run
 * now have returned (same loop iteration). @p cb (may be NULL) runs once
 * these bytes reached the kernel. len == 0 is allowed (the callback runs
 * once earlier writes are done).
 *
 * An echo is not copied: bytes that a read callback of this stream was
 * handed (they lie in the stream's read buffer), written from that
 * callback, are queued by reference and kept in place until they went out;
 * consecutive ones form one writev entry. Nothing changes for the caller.
 *
 * @param s    the stream
 * @param data the bytes (copied before this returns, or, for an echo, kept by the stream)
 * @param len  their number
 * @param cb   runs once the bytes reached the kernel (0) or the stream closed first; may be NULL
 * @param arg  passed to @p cb
 * @return 0 when queued (@p cb, if given, will run once)
 * @retval TS_ECLOSED     the stream is closed
 * @retval TS_ESTATE      ts_iostream_shutdown() was called on the stream
 * @retval TS_EINVAL      @p data is NULL with @p len > 0
 * @retval TS_EBUFFERFULL the write would pass max_write_buffer_size: nothing
 *         is queued and the stream stays open, so the caller may retry once
 *         earlier writes drained
 * @retval TS_ENOMEM      out of memory
 */
TS_EXPORT int ts_iostream_write(ts_iostream *s, const void *data, size_t len, ts_iostream_write_cb cb, void *arg);

/**
 * Zero-copy write: queues @p data without copying and takes ownership of it,
 * calling @p free_fn(@p data) (if not NULL) once it has been written or the
 * stream closed. free_fn may run inside this call (when the kernel took
 * everything at once, or @p len is 0) or inside any later stream call: it
 * must only release the memory. On an error return @p data is NOT freed
 * (the caller keeps it). For one buffer shared by many streams, see
 * ts_iostream_write_ref().
 *
 * @param s       the stream
 * @param data    the bytes, owned by the stream on success
 * @param len     their number
 * @param free_fn releases @p data (e.g. ts_free or free), or NULL
 * @param cb      runs once the bytes reached the kernel (0) or the stream closed first; may be NULL
 * @param arg     passed to @p cb
 * @return 0 when queued
 * @retval TS_ECLOSED     the stream is closed
 * @retval TS_ESTATE      ts_iostream_shutdown() was called on the stream
 * @retval TS_EINVAL      @p data is NULL with @p len > 0
 * @retval TS_EBUFFERFULL the write would pass max_write_buffer_size
 * @retval TS_ENOMEM      out of memory
 */
TS_EXPORT int ts_iostream_write_owned(ts_iostream *s, void *data, size_t len, void (*free_fn)(void *),
                                      ts_iostream_write_cb cb, void *arg);

/**
 * Releases memory lent to ts_iostream_write_ref(): @p data and @p len are
 * what was passed to it, @p arg its release argument.
 */
typedef void (*ts_iostream_release_cb)(const void *data, size_t len, void *arg);

/**
 * Zero-copy write of memory the caller lends, for one buffer shared by many
 * streams (libevent's evbuffer_add_reference): @p data is queued without a
 * copy and @p release(@p data, @p len, @p release_arg) runs once this
 * stream no longer needs it (written, or the stream closed). Reference
 * counting a buffer sent to N streams is then one increment per write and
 * one decrement per release. @p release may be NULL (static memory); it
 * runs at most once per successful call, possibly inside this call (the
 * kernel took everything at once, or @p len is 0) or inside any later call
 * on the stream, and must only release the memory.
 *
 * @param s           the stream
 * @param data        the bytes; must stay valid and unchanged until released
 * @param len         their length (0 is allowed)
 * @param release     called once the stream is done with @p data, or NULL
 * @param release_arg passed to @p release
 * @param cb          runs once these bytes reached the kernel (or failed), or NULL
 * @param arg         passed to @p cb
 * @return 0 when queued; on an error nothing is queued and @p release does not run
 * @retval TS_ECLOSED     the stream is closed
 * @retval TS_ESTATE      ts_iostream_shutdown() was called on the stream
 * @retval TS_EINVAL      @p data is NULL with @p len > 0
 * @retval TS_EBUFFERFULL the write would pass max_write_buffer_size
 * @retval TS_ENOMEM      out of memory
 */
TS_EXPORT int ts_iostream_write_ref(ts_iostream *s, const void *data, size_t len, ts_iostream_release_cb release,
                                    void *release_arg, ts_iostream_write_cb cb, void *arg);

/** ts_iostream_write_file()'s @p length for "from @p offset to the end of the file". */
#define TS_WRITE_FILE_TO_END UINT64_MAX

/**
 * Zero-copy write of a region of a file (libevent's evbuffer_add_file):
 * queues bytes [@p offset, @p offset + @p length) of the regular file open
 * on @p fd, in order with the other writes. On the built-in socket and pipe
 * transports (and any transport with the send_file op) they go from the
 * page cache to the fd with sendfile(2), never through user memory; TLS and
 * other user transports (ts_iostream_new()) get them read (pread) into a
 * 16 KiB staging block and written through their write_to_fd. The file's
 * bytes are read as they are sent, not at this call.
 *
 * The stream keeps its own descriptor for the file (a duplicate of @p fd,
 * close-on-exec) until the region has been sent or the stream closed, so
 * the caller may close @p fd as soon as this returns, and may queue the
 * same fd again (e.g. several ranges). The duplicate shares @p fd's file
 * offset, which is neither used nor moved (pread / sendfile with an
 * offset).
 *
 * The region counts towards ts_iostream_write_buffer_size() and
 * max_write_buffer_size like any queued write (a 2 GiB file queues 2 GiB),
 * and @p cb runs, in order with the other writes' callbacks, once its last
 * byte reached the kernel. If the file turns out shorter than the region
 * while it is sent (it was truncated), the stream closes with -ENODATA:
 * the peer got a prefix, this write's callback and every later one get
 * -ENODATA, and the peer sees the connection end. A read error of the file
 * closes the stream with that error (-errno).
 *
 * @param s      the stream
 * @param fd     an open regular file; it stays the caller's (see above)
 * @param offset the region's first byte in the file
 * @param length its length in bytes (0 is allowed: @p cb runs once earlier
 *               writes are done), or TS_WRITE_FILE_TO_END
 * @param cb     runs once the region reached the kernel (0) or the stream
 *               closed first (its status); may be NULL
 * @param arg    passed to @p cb
 * @return 0 when queued (@p cb, if given, will run once); on an error
 *         nothing is queued and @p cb never runs
 * @retval TS_ECLOSED     the stream is closed
 * @retval TS_ESTATE      ts_iostream_shutdown() was called on the stream
 * @retval TS_EINVAL      @p fd is negative or not a regular file, or the
 *                        region is larger than SIZE_MAX (32-bit builds)
 * @retval -ENODATA       the file, as it is now, ends before the region
 * @retval TS_EBUFFERFULL the region would pass max_write_buffer_size: the
 *                        stream stays open
 * @retval TS_ENOMEM      out of memory
 * @retval -EMFILE        no descriptor left for the stream's duplicate
 *                        (or another -errno from fstat / fcntl)
 */
TS_EXPORT int ts_iostream_write_file(ts_iostream *s, int fd, uint64_t offset, uint64_t length,
                                     ts_iostream_write_cb cb, void *arg);

/**
 * Flush, then half-close (libuv's uv_shutdown): once everything queued
 * before this call has gone out, ends the write side through the
 * transport's shutdown_write op (TCP `shutdown(SHUT_WR)`, TLS close_notify
 * followed by `shutdown(SHUT_WR)`) and runs @p cb from the loop with 0.
 * Reads go on: the peer may still send until its own EOF, which then
 * closes the stream (nothing is left to write). A transport without the op
 * (pipes) is closed once the queue drains instead, and @p cb gets 0.
 *
 * After this call writes are refused with TS_ESTATE. If the stream closes
 * before the queue drains (an error, a reset, ts_iostream_close()), @p cb
 * gets the closing status after the queued writes' callbacks. With the
 * half-close rule above: when the peer's EOF arrives first, the queue still
 * drains, the write side is shut, and then the stream closes.
 *
 * @param s   the stream
 * @param cb  runs once the write side is shut (0) or the stream closed first (its status); may be NULL
 * @param arg passed to @p cb
 * @return 0 when started (@p cb will run exactly once)
 * @retval TS_ECLOSED the stream is closed
 * @retval TS_ESTATE  a shutdown was already asked for
 * @retval TS_ENOMEM  out of memory (nothing changed)
 */
TS_EXPORT int ts_iostream_shutdown(ts_iostream *s, ts_iostream_write_cb cb, void *arg);

/**
 * Read and write timeouts, as libevent's bufferevent_set_timeouts: a read
 * waiting on the fd, or queued writes (including a pending
 * ts_iostream_shutdown()), that make no progress for the given number of
 * seconds close the stream with TS_ETIMEDOUT (logged at debug level). The
 * pending read and queued writes then fail with TS_ETIMEDOUT, as at any
 * close. Progress is any byte read from, or written to, the transport; the
 * clock starts when a wait starts, and at this call for a wait already
 * under way. A read served from buffered data never waits. Between reads
 * nothing is timed: to bound a keep-alive connection's idle time, keep a
 * read pending (e.g. for the next request). A TLS handshake has its own
 * limit (ts_iostream_options.handshake_timeout).
 *
 * @param s             the stream
 * @param read_timeout  seconds a waiting read may go without data; 0: none
 * @param write_timeout seconds queued writes may go without the kernel taking a byte; 0: none
 * @return 0 on success (both 0 removes the timeouts)
 * @retval TS_EINVAL  a negative or NaN timeout
 * @retval TS_ECLOSED the stream is closed
 * @retval TS_ENOMEM  out of memory
 */
TS_EXPORT int ts_iostream_set_timeouts(ts_iostream *s, double read_timeout, double write_timeout);

/**
 * The timeouts ts_iostream_set_timeouts() set (0: none).
 *
 * @param s             the stream
 * @param read_timeout  gets the read timeout (may be NULL)
 * @param write_timeout gets the write timeout (may be NULL)
 */
TS_EXPORT void ts_iostream_get_timeouts(const ts_iostream *s, double *read_timeout, double *write_timeout);

/**
 * Future form of ts_iostream_shutdown().
 *
 * @param s the stream
 * @return a future resolved with NULL once the write side is shut, or failed
 *         with the closing status (or the error ts_iostream_shutdown() would
 *         return); NULL when out of memory
 */
TS_EXPORT ts_future *ts_iostream_shutdown_future(ts_iostream *s);

/**
 * Future form of ts_iostream_write().
 *
 * @param s    the stream
 * @param data the bytes (copied)
 * @param len  their number
 * @return a future resolved with NULL once the bytes reached the kernel, or
 *         failed with the error; NULL when out of memory
 */
TS_EXPORT ts_future *ts_iostream_write_future(ts_iostream *s, const void *data, size_t len);

/**
 * Future form of ts_iostream_write_file().
 *
 * @param s      the stream
 * @param fd     an open regular file (the stream keeps a duplicate)
 * @param offset the region's first byte
 * @param length its length, or TS_WRITE_FILE_TO_END
 * @return a future resolved with NULL once the region reached the kernel,
 *         or failed with the error; NULL when out of memory
 */
TS_EXPORT ts_future *ts_iostream_write_file_future(ts_iostream *s, int fd, uint64_t offset, uint64_t length);

/**
 * Closes the stream, recording @p err (0 for a plain close) as
 * ts_iostream_error() unless an error was already recorded. Idempotent.
 * Pending callbacks are told as described in the file comment. The caller's
 * reference is kept: drop it with ts_iostream_unref().
 *
 * @param s   the stream
 * @param err the error to record (negative), or 0 for a plain close
 */
TS_EXPORT void ts_iostream_close(ts_iostream *s, int err);

/**
 * Sets the close callback, which runs once, from the loop, after the pending
 * read and writes have been told.
 *
 * @param s   the stream
 * @param cb  the callback, or NULL to clear it
 * @param arg passed to @p cb
 */
TS_EXPORT void ts_iostream_set_close_callback(ts_iostream *s, ts_iostream_close_cb cb, void *arg);

/**
 * Whether the stream is closed (Tornado's closed()).
 *
 * @param s the stream
 * @return true once closed (locally, by an error, or after the peer's EOF and the drained queue)
 */
TS_EXPORT bool ts_iostream_closed(const ts_iostream *s);
/**
 * Whether a read is pending (Tornado's reading()).
 *
 * @param s the stream
 * @return true from a read's start until its callback is called
 */
TS_EXPORT bool ts_iostream_reading(const ts_iostream *s);
/**
 * Whether written data is still queued (Tornado's writing()).
 *
 * @param s the stream
 * @return true while bytes wait for the kernel
 */
TS_EXPORT bool ts_iostream_writing(const ts_iostream *s);
/**
 * The error that closed the stream (Tornado's .error / real_error).
 *
 * @param s the stream
 * @return the negative code, or 0 (open, or closed without an error)
 */
TS_EXPORT int ts_iostream_error(const ts_iostream *s);
/**
 * A detail string for the error that closed the stream.
 *
 * @param s the stream
 * @return e.g. OpenSSL's reason text, valid while the stream lives; or NULL
 */
TS_EXPORT const char *ts_iostream_error_detail(const ts_iostream *s);
/**
 * The stream's fd.
 *
 * @param s the stream
 * @return the fd, or -1 once closed
 */
TS_EXPORT int ts_iostream_fileno(const ts_iostream *s);
/**
 * The loop the stream runs on.
 *
 * @param s the stream
 * @return the loop it was created with; NULL once that loop was freed
 *         (see ts_ioloop_free())
 */
TS_EXPORT ts_ioloop *ts_iostream_loop(const ts_iostream *s);
/**
 * Bytes buffered and not yet consumed by a read.
 *
 * @param s the stream
 * @return the number of bytes
 */
TS_EXPORT size_t ts_iostream_read_buffer_size(const ts_iostream *s);
/**
 * Bytes queued for writing and not yet taken by the kernel.
 *
 * @param s the stream
 * @return the number of bytes
 */
TS_EXPORT size_t ts_iostream_write_buffer_size(const ts_iostream *s);

/**
 * Sets or clears TCP_NODELAY (Tornado's set_nodelay). A unix socket stream
 * ignores it.
 *
 * @param s  the stream
 * @param on true to send small writes at once (no Nagle delay)
 * @return 0 on success (also for a socket that is not TCP)
 * @retval TS_ECLOSED the stream is closed
 * @retval TS_ENOTSUP the transport has no set_nodelay op (a pipe stream)
 * @retval -ENOTSOCK  (or another `-errno`) getsockname() or setsockopt() failed
 */
TS_EXPORT int ts_iostream_set_nodelay(ts_iostream *s, bool on);
/**
 * The peer's address (getpeername(), through the transport's peer_address op).
 *
 * @param s    the stream
 * @param addr gets the address
 * @param len  in: sizeof(*addr); out: the address's length
 * @return 0 on success
 * @retval TS_ECLOSED   the stream is closed
 * @retval TS_ENOTSUP   the transport has no peer_address op (a pipe stream)
 * @retval -ENOTCONN    (or another `-errno`) getpeername() failed
 */
TS_EXPORT int ts_iostream_peer_address(const ts_iostream *s, struct sockaddr_storage *addr, socklen_t *len);
/**
 * The local address (getsockname(), through the transport's local_address op).
 *
 * @param s    the stream
 * @param addr gets the address
 * @param len  in: sizeof(*addr); out: the address's length
 * @return 0 on success
 * @retval TS_ECLOSED the stream is closed
 * @retval TS_ENOTSUP the transport has no local_address op (a pipe stream)
 * @retval -ENOTSOCK  (or another `-errno`) getsockname() failed
 */
TS_EXPORT int ts_iostream_local_address(const ts_iostream *s, struct sockaddr_storage *addr, socklen_t *len);

/**
 * Whether a read that fails with TS_EUNSATISFIABLE (max_bytes reached without
 * a match) closes the stream: true by default, as Tornado. With false the
 * read still fails, but the stream stays open with the data left buffered,
 * so a server can answer (e.g. HTTP 431) before closing it itself.
 *
 * @param s     the stream
 * @param close false to keep the stream open after TS_EUNSATISFIABLE
 */
TS_EXPORT void ts_iostream_set_close_on_unsatisfiable(ts_iostream *s, bool close);

/**
 * Sets the stream's user data slot (not used by the library).
 *
 * @param s    the stream
 * @param data anything
 */
TS_EXPORT void ts_iostream_set_userdata(ts_iostream *s, void *data);
/**
 * The stream's user data slot.
 *
 * @param s the stream
 * @return what ts_iostream_set_userdata() stored, or NULL
 */
TS_EXPORT void *ts_iostream_userdata(const ts_iostream *s);

#ifdef __cplusplus
}
#endif

#endif /* TSTREAM_IOSTREAM_H */
