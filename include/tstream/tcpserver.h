/**
 * @file tstream/tcpserver.h
 * @brief A non-blocking, single-threaded TCP server (Tornado's TCPServer).
 *
 * The server accepts connections on its listening sockets and hands each one
 * to your handler as a ready stream. That is all it does: it does not track
 * the connections it handed out (they live on after ts_tcpserver_stop()),
 * and it reads and writes nothing itself.
 *
 * A minimal echo server:
 * @code
 *   static int on_stream(ts_tcpserver *srv, ts_iostream *s, const struct sockaddr *a,
 *                        socklen_t alen, void *arg)
 *   {
 *       return ts_iostream_read_until(s, "\n", 1, 0, on_line, NULL); // on error the server drops s
 *   }
 *   ...
 *   ts_tcpserver *srv = ts_tcpserver_new(loop, on_stream, NULL, NULL);
 *   ts_tcpserver_listen(srv, 8888, NULL);
 *   ts_ioloop_start(loop);
 * @endcode
 *
 * Multi-process, the Tornado way: create the loop, bind, fork, then start
 * (see ts_tcpserver_start()); or bind with ts_bind_sockets(), call
 * ts_fork_processes(), and only then create the loop and add the sockets.
 */
#ifndef TSTREAM_TCPSERVER_H
#define TSTREAM_TCPSERVER_H

#include <sys/socket.h>
#include <sys/types.h>

#include "common.h"
#include "ioloop.h"
#include "iostream.h"

struct ssl_ctx_st; /* OpenSSL's SSL_CTX */

#ifdef __cplusplus
extern "C" {
#endif

/** A TCP server. Opaque. Used on its loop's thread only. */
typedef struct ts_tcpserver ts_tcpserver;

/**
 * A connection arrived (Tornado's handle_stream). @p stream is connected (for
 * a TLS server, the handshake may still be running: use
 * ts_iostream_wait_for_handshake() if you must know its outcome); the one
 * reference to it is yours to drop with ts_iostream_unref() /
 * ts_iostream_free() when done. @p addr / @p addrlen are the peer's address,
 * valid during the call.
 *
 * Return 0 when you have taken the stream. A negative return means you did
 * not: the server logs the error through ts_ioloop_handle_callback_error(),
 * closes the stream and drops that reference itself (so do not drop it as
 * well), and keeps serving.
 *
 * The handler may call ts_tcpserver_stop() and even ts_tcpserver_free().
 */
typedef int (*ts_tcpserver_stream_cb)(ts_tcpserver *server, ts_iostream *stream, const struct sockaddr *addr,
                                      socklen_t addrlen, void *arg);

/** Server options. Zero-initialise, set `size = sizeof(ts_tcpserver_options)`. */
typedef struct ts_tcpserver_options {
    /** sizeof(ts_tcpserver_options). */
    size_t size;
    /**
     * An OpenSSL `SSL_CTX *` (the type is forward-declared, so this header
     * needs no OpenSSL header; include tstream/ssl.h to make one) with the server's certificate (e.g. from
     * ts_ssl_context_new() with server_side). When set, every connection is
     * a TLS stream (ts_iostream_new_ssl(), server side); each stream takes its
     * own reference, and the server one more, so the caller may free its own
     * at once. NULL: plain TCP.
     */
    struct ssl_ctx_st *ssl_ctx;
    /** Each stream's max_buffer_size (0: the stream default, 100 MiB). */
    size_t max_buffer_size;
    /** Each stream's read_chunk_size (0: the stream default, 64 KiB). */
    size_t read_chunk_size;
    /** Each stream's max_write_buffer_size (0: unlimited). */
    size_t max_write_buffer_size;
    /** Leave Nagle's algorithm on. By default TCP_NODELAY is set on every accepted TCP socket. */
    bool disable_nodelay;
    /**
     * TLS servers: seconds a client may take to finish its handshake, from
     * accept; past it the stream is closed with TS_ETIMEDOUT (logged at
     * DEBUG). 0 (a zero-initialised struct, or one too old to have this
     * field): TS_TCPSERVER_DEFAULT_HANDSHAKE_TIMEOUT. Negative: no limit.
     */
    double handshake_timeout;
} ts_tcpserver_options;

/** The handshake timeout a TLS server applies unless told otherwise: 10 s (as h2o). */
#define TS_TCPSERVER_DEFAULT_HANDSHAKE_TIMEOUT 10.0

/**
 * Creates a server on @p loop that passes each connection to
 * @p handle_stream. It serves nothing until ts_tcpserver_listen(),
 * ts_tcpserver_add_sockets() or ts_tcpserver_bind() + ts_tcpserver_start().
 *
 * @param loop          the loop it accepts on
 * @param handle_stream gets each connection
 * @param arg           passed to @p handle_stream
 * @param opts          options, or NULL (plain TCP, defaults); only the
 *                      opts->size bytes the caller's struct has are read
 * @return the server; NULL when out of memory or for bad arguments (no
 *         loop or handler, opts->size too small, an ssl_ctx that cannot be
 *         referenced, or ssl_ctx set in a build without TLS)
 */
TS_EXPORT ts_tcpserver *ts_tcpserver_new(ts_ioloop *loop, ts_tcpserver_stream_cb handle_stream, void *arg,
                                         const ts_tcpserver_options *opts);

/**
 * Binds @p port on @p address (NULL: every interface; IPv4 and IPv6) and
 * starts accepting at once (Tornado's listen). May be called more than once
 * to listen on several ports. Port 0 picks an ephemeral port (see
 * ts_tcpserver_port()).
 *
 * @param server  the server
 * @param port    0..65535
 * @param address an IP literal or name to bind, or NULL for every interface
 * @return 0 when listening
 * @retval TS_EINVAL   @p server is NULL, or a bad port
 * @retval TS_ESTATE   ts_tcpserver_stop() was called
 * @retval TS_ERESOLVE @p address did not resolve
 * @retval -EADDRINUSE (or another code) from ts_bind_sockets() or ts_add_accept_handler()
 */
TS_EXPORT int ts_tcpserver_listen(ts_tcpserver *server, int port, const char *address);

/**
 * Binds sockets to serve later, once ts_tcpserver_start() is called (Tornado's
 * bind). @p family, @p backlog and @p flags as for ts_bind_sockets(). After
 * start, bound sockets are served at once.
 *
 * @param server  the server
 * @param port    0..65535
 * @param address an IP literal or name to bind, or NULL for every interface
 * @param family  AF_UNSPEC, AF_INET or AF_INET6
 * @param backlog for listen(2); negative means TS_DEFAULT_BACKLOG
 * @param flags   TS_BIND_* bits
 * @return 0 when bound
 * @retval TS_EINVAL   @p server is NULL, or bad arguments
 * @retval TS_ESTATE   ts_tcpserver_stop() was called
 * @retval TS_ENOMEM   out of memory
 * @retval -EADDRINUSE (or another code) from ts_bind_sockets()
 */
TS_EXPORT int ts_tcpserver_bind(ts_tcpserver *server, int port, const char *address, int family, int backlog,
                                int flags);

/**
 * Starts serving the sockets bound with ts_tcpserver_bind() (Tornado's
 * start). With @p num_processes other than 1 it first forks through
 * ts_fork_processes(num_processes, max_restarts) (0 or negative: one per
 * CPU): this call then returns only in the children, each serving the
 * inherited sockets, and the parent exits when all children have exited
 * (see ts_fork_processes()). The server's loop must not be running. If its
 * thread pool (ts_ioloop_run_in_executor()) has started, the pool is stopped
 * before the fork, since threads do not survive it: finished jobs are
 * delivered, jobs not yet run fail with TS_ECANCELLED, and each child starts
 * a pool of its own on first use. In each child the loop is re-armed with
 * ev_loop_fork().
 *
 * @param server        the server
 * @param num_processes 1 to serve in this process; otherwise the number of
 *                      processes to fork (0 or negative: one per CPU)
 * @param max_restarts  as for ts_fork_processes()
 * @return 0 when serving (in a child, with forking)
 * @retval TS_EINVAL @p server is NULL
 * @retval TS_ESTATE already started, stopped, or (to fork) the loop is running
 * @retval TS_ECANCELLED (or another code) ts_fork_processes() failed
 * @retval TS_ENOMEM (or another code) from ts_add_accept_handler()
 */
TS_EXPORT int ts_tcpserver_start(ts_tcpserver *server, int num_processes, int max_restarts);

/**
 * Serves @p n listening sockets (e.g. from ts_bind_sockets() or
 * ts_bind_unix_socket()), Tornado's add_sockets. The server takes ownership
 * of every fd in @p fds, even on error (it closes them on stop, or at once
 * when it cannot serve them).
 *
 * @param server the server
 * @param fds    listening, non-blocking sockets
 * @param n      their number
 * @return 0 when serving them all
 * @retval TS_EINVAL @p server is NULL, or @p fds is NULL with @p n > 0
 * @retval TS_ESTATE ts_tcpserver_stop() was called
 * @retval TS_ENOMEM out of memory
 * @retval -EEXIST   (or another code) from ts_add_accept_handler()
 */
TS_EXPORT int ts_tcpserver_add_sockets(ts_tcpserver *server, const int *fds, size_t n);

/**
 * Serves one listening socket: ts_tcpserver_add_sockets() with one fd.
 *
 * @param server the server
 * @param fd     a listening, non-blocking socket; the server owns it, even on error
 * @return 0 when serving it, else an error as ts_tcpserver_add_sockets()
 */
TS_EXPORT int ts_tcpserver_add_socket(ts_tcpserver *server, int fd);

/**
 * Stops listening (Tornado's stop): removes the accept handlers and closes
 * every listening socket, including bound ones not yet started. Connections
 * already handed out carry on. Idempotent; safe inside the handler.
 *
 * @param server the server
 */
TS_EXPORT void ts_tcpserver_stop(ts_tcpserver *server);

/**
 * Stops the server (if it is not stopped) and frees it; safe inside the handler.
 *
 * @param server the server, or NULL (nothing happens)
 */
TS_EXPORT void ts_tcpserver_free(ts_tcpserver *server);

/**
 * The local port of the first listening socket (handy after listening on port
 * 0); a bound socket not yet started counts.
 *
 * @param server the server
 * @return the port (1..65535)
 * @retval TS_EINVAL @p server is NULL
 * @retval TS_ESTATE the server has no socket, or the first one is not TCP
 * @retval -EBADF    (or another `-errno`) getsockname() failed
 */
TS_EXPORT int ts_tcpserver_port(const ts_tcpserver *server);

/**
 * Copies up to @p max listening fds (served or bound, not yet started) into
 * @p fds. The fds stay the server's.
 *
 * @param server the server
 * @param fds    gets the fds (may be NULL when @p max is 0)
 * @param max    room in @p fds
 * @return how many listening fds there are (which may exceed @p max)
 */
TS_EXPORT size_t ts_tcpserver_sockets(const ts_tcpserver *server, int *fds, size_t max);

/**
 * The server's loop.
 *
 * @param server the server
 * @return the loop given to ts_tcpserver_new()
 */
TS_EXPORT ts_ioloop *ts_tcpserver_loop(const ts_tcpserver *server);

#ifdef __cplusplus
}
#endif

#endif /* TSTREAM_TCPSERVER_H */
