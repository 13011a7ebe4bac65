/**
 * @file tstream/netutil.h
 * @brief Listening sockets, accept handlers and name resolution (Tornado's
 * tornado.netutil).
 *
 * What this module does not do: it creates and accepts sockets but never
 * wraps them in streams (that is ts_tcpserver's job), and it never talks to
 * a DNS server itself (resolution goes through getaddrinfo(3) or a resolver
 * you supply).
 */
#ifndef TSTREAM_NETUTIL_H
#define TSTREAM_NETUTIL_H

#include <sys/socket.h>
#include <sys/types.h>

#include "common.h"
#include "future.h"
#include "ioloop.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Default listen(2) backlog, and the most connections accepted per wake-up (Tornado's _DEFAULT_BACKLOG). */
#define TS_DEFAULT_BACKLOG 128

/** The most listening sockets ts_bind_sockets() creates for one call (see its @p fds). */
#define TS_BIND_MAX_SOCKETS 16

/** Flags for ts_bind_sockets(). */
enum {
    /** Set SO_REUSEPORT on every socket, so several processes can each bind the same port. */
    TS_BIND_REUSE_PORT = 0x1,
    /** @p address must be a numeric IP literal (AI_NUMERICHOST): never a name lookup. */
    TS_BIND_NUMERIC_HOST = 0x2
};

/**
 * Creates listening TCP sockets bound to @p port on @p address (Tornado's
 * bind_sockets): one socket per address the name resolves to, which usually
 * means one per address family.
 *
 * Every socket is non-blocking and close-on-exec, has SO_REUSEADDR, and,
 * for IPv6, IPV6_V6ONLY (so "::" and "0.0.0.0" can both be bound, as
 * Tornado). With @p port 0 the first socket gets an ephemeral port and the
 * others reuse it, so all families listen on the same port (if that port is
 * taken in another family, the whole bind is retried a few times with a new
 * ephemeral port). Addresses whose family the system cannot create are
 * skipped, as is "::1" for "localhost" on hosts where IPv6 is half disabled.
 *
 * @param port    0..65535; 0 picks an ephemeral port
 * @param address an IP literal or a host name (resolved with a blocking
 *                getaddrinfo(3), AI_PASSIVE); NULL or "" listens on every interface
 * @param family  AF_UNSPEC (IPv4 and IPv6, as available), AF_INET or AF_INET6
 * @param backlog for listen(2); negative means TS_DEFAULT_BACKLOG
 * @param flags   TS_BIND_* bits
 * @param fds     gets the descriptors, IPv4 first; the caller owns them
 * @param max_fds room in @p fds (pass TS_BIND_MAX_SOCKETS)
 * @return the number of sockets (>= 1); on an error no socket is left open
 * @retval TS_EINVAL   bad port or family, a NULL @p fds or @p max_fds 0
 * @retval TS_ERESOLVE the address did not resolve (the getaddrinfo message is logged at WARN)
 * @retval -ENOSPC     more addresses than @p max_fds
 * @retval -EADDRINUSE (or another `-errno`) socket(), bind() or listen() failed
 */
TS_EXPORT int ts_bind_sockets(int port, const char *address, int family, int backlog, int flags, int *fds,
                              size_t max_fds);

/**
 * Creates a listening Unix-domain stream socket at @p path (Tornado's
 * bind_unix_socket), non-blocking and close-on-exec, then chmods the file to
 * @p mode (e.g. 0600). A stale socket file at @p path is removed first; any
 * other kind of file is left alone and the call fails with -EEXIST.
 *
 * @param path    the socket's file name
 * @param mode    permissions for the file, e.g. 0600
 * @param backlog for listen(2); negative means TS_DEFAULT_BACKLOG
 * @return the fd (owned by the caller)
 * @retval TS_EINVAL     @p path is NULL
 * @retval -ENAMETOOLONG @p path does not fit in a sockaddr_un
 * @retval -EEXIST       a file that is not a socket is in the way
 * @retval -EACCES       (or another `-errno`) socket(), bind(), chmod() or listen() failed
 */
TS_EXPORT int ts_bind_unix_socket(const char *path, unsigned int mode, int backlog);

/** An accept handler registered with ts_add_accept_handler(). Opaque. */
typedef struct ts_accept_handler ts_accept_handler;

/**
 * A connection was accepted. @p conn_fd is non-blocking and close-on-exec
 * and now belongs to the callee (close it or hand it to a stream).
 * @p addr / @p addrlen are the peer's address (valid during the call).
 * The callback may call ts_remove_accept_handler() on its own handler.
 */
typedef void (*ts_accept_cb)(ts_ioloop *loop, int conn_fd, const struct sockaddr *addr, socklen_t addrlen,
                             void *arg);

/**
 * Starts accepting connections on the listening socket @p fd (Tornado's
 * add_accept_handler). Each time @p fd becomes readable, up to
 * TS_DEFAULT_BACKLOG connections are accepted (so one busy listener cannot
 * starve the loop) and each is handed to @p cb.
 *
 * Errors from accept(2):
 * - EAGAIN ends the round; ECONNABORTED and the network errors Linux
 *   reports through accept (EPROTO, ENETDOWN, EHOSTUNREACH, ...) skip the
 *   one connection.
 * - EMFILE / ENFILE / ENOBUFS / ENOMEM (out of descriptors or memory) never
 *   turn into a busy loop: the handler sheds the one pending connection it
 *   could not take (with a reserve descriptor it keeps open for exactly
 *   this: close the reserve, accept, close the connection, reopen the
 *   reserve), logs a warning, and pauses itself with a back-off timer
 *   (10 ms doubling up to 1 s, reset by the next successful accept).
 *   Connections that arrive meanwhile wait in the kernel's backlog and are
 *   served once descriptors free up.
 * - Anything else (e.g. EINVAL: @p fd is not listening) is reported through
 *   ts_ioloop_handle_callback_error() and also pauses with the back-off.
 *
 * The listening fd is not owned: ts_remove_accept_handler() does not close
 * it. @p fd must stay open while the handler exists.
 *
 * @param loop the loop to accept on.
 * @param fd a listening, non-blocking socket.
 * @param cb called once per accepted connection.
 * @param arg passed to @p cb.
 * @param[out] handler receives the handler on success.
 * @return 0 when accepting; on an error @p cb never runs
 * @retval TS_EINVAL a NULL @p loop, @p cb or @p handler, or a negative @p fd
 * @retval TS_ENOMEM out of memory
 * @retval -EEXIST   the loop already has a handler for @p fd
 */
TS_EXPORT int ts_add_accept_handler(ts_ioloop *loop, int fd, ts_accept_cb cb, void *arg,
                                    ts_accept_handler **handler);

/**
 * Stops accepting and frees the handler (Tornado's remove_handler closure).
 * Safe inside the handler's own callback: no further connection is accepted
 * or delivered after it returns. The listening fd is not closed.
 *
 * @param handler the handler, or NULL (nothing happens)
 */
TS_EXPORT void ts_remove_accept_handler(ts_accept_handler *handler);

/**
 * The listening fd of an accept handler.
 *
 * @param handler the handler
 * @return the fd given to ts_add_accept_handler()
 */
TS_EXPORT int ts_accept_handler_fd(const ts_accept_handler *handler);

/**
 * Whether @p ip is a well-formed IPv4 or IPv6 literal (Tornado's
 * is_valid_ip). Never performs a lookup.
 *
 * @param ip a NUL-terminated string, or NULL
 * @return true for a literal such as "127.0.0.1", "::1" or "fe80::1%lo";
 *         false for NULL, "", names and anything malformed
 */
TS_EXPORT bool ts_is_valid_ip(const char *ip);

/* ------------------------------------------------------------------------ */
/* Resolvers                                                                */
/* ------------------------------------------------------------------------ */

/** One resolved address: (family, sockaddr), ready for connect(2). */
typedef struct ts_address {
    /** AF_INET or AF_INET6 (or another family a custom resolver returns). */
    int family;
    /** The length of the valid part of @p addr. */
    socklen_t addrlen;
    /** The address, including the port. */
    struct sockaddr_storage addr;
} ts_address;

/** A resolver's result: @p count addresses, in the order getaddrinfo gave them. */
typedef struct ts_addrlist {
    /** How many addresses follow. */
    size_t count;
    /** The addresses. */
    ts_address addrs[];
} ts_addrlist;

/**
 * Allocates a list with room for @p count addresses, for resolvers you write.
 *
 * @param count the number of addresses (count is set, the addresses zeroed)
 * @return the list (free with ts_addrlist_free()), or NULL when out of memory
 */
TS_EXPORT ts_addrlist *ts_addrlist_new(size_t count);
/**
 * Frees a list. Its signature makes it usable as a future result destructor.
 *
 * @param list a ts_addrlist *, or NULL (nothing happens)
 */
TS_EXPORT void ts_addrlist_free(void *list);

/**
 * A resolution finished. On success @p status is 0 and @p addrs (count >= 1)
 * belongs to the callee (free it with ts_addrlist_free()); @p detail is NULL.
 * On failure @p addrs is NULL, @p status is TS_ERESOLVE (the name does not
 * resolve; @p detail is getaddrinfo's gai_strerror() text or the resolver's
 * own reason), TS_ENOMEM, or another negative code; @p detail (may be NULL)
 * is valid during the call only.
 */
typedef void (*ts_resolve_cb)(int status, ts_addrlist *addrs, const char *detail, void *arg);

/**
 * The resolver interface (Tornado's Resolver), for resolvers you write.
 * Each function receives the @p impl pointer given to ts_resolver_new().
 */
typedef struct ts_resolver_ops {
    /** sizeof(ts_resolver_ops), so the struct can grow. */
    size_t size;
    /**
     * Starts resolving @p host (a name or IP literal) and @p port for
     * @p family (AF_UNSPEC, AF_INET, AF_INET6). Contract: if it returns 0,
     * @p cb must run exactly once, on @p loop's thread, and never inside this
     * call; if it returns an error, @p cb must never run. @p host is only
     * valid during the call. Required.
     */
    int (*resolve)(void *impl, ts_ioloop *loop, const char *host, int port, int family, ts_resolve_cb cb,
                   void *arg);
    /** Releases @p impl. Optional. */
    void (*free)(void *impl);
} ts_resolver_ops;

/** A resolver. Opaque. Used on one thread at a time. */
typedef struct ts_resolver ts_resolver;

/**
 * Wraps your own implementation.
 *
 * @param ops  its functions; must outlive the resolver (a static table)
 * @param impl passed to every function
 * @return the resolver; NULL when out of memory or for a bad @p ops (no
 *         resolve function, too small a size); ops->free is not called then
 */
TS_EXPORT ts_resolver *ts_resolver_new(const ts_resolver_ops *ops, void *impl);

/**
 * The default resolver (Tornado's DefaultExecutorResolver): getaddrinfo(3)
 * (SOCK_STREAM) on the loop's executor thread pool, so a slow lookup never
 * blocks the loop; the result arrives on the loop's thread. IP literals are
 * parsed on the loop's thread without any lookup (still delivered in a later
 * callback). A literal of the wrong family for the @p family asked (e.g.
 * "::1" with AF_INET) fails with TS_ERESOLVE at once, without a lookup.
 *
 * @return the resolver, or NULL when out of memory
 */
TS_EXPORT ts_resolver *ts_resolver_new_default(void);

/**
 * An override resolver (Tornado's OverrideResolver) in front of @p base:
 * names (and ports) listed with ts_resolver_override_add() are rewritten
 * before @p base resolves them; everything else goes to @p base unchanged.
 *
 * @param base     the resolver that does the lookups
 * @param own_base freeing this resolver frees @p base too
 * @return the resolver; NULL for a NULL @p base or out of memory (then
 *         @p base is not freed)
 */
TS_EXPORT ts_resolver *ts_resolver_new_override(ts_resolver *base, bool own_base);

/**
 * Adds a rewrite to an override resolver. The key is (@p host, @p port,
 * @p family); @p port -1 matches any port and @p family -1 any family. The
 * lookup order is Tornado's: (host, port, family) first, then (host, port),
 * then host alone. The target is (@p to_host, @p to_port), where @p to_port
 * -1 keeps the requested port. Strings are copied.
 *
 * @param resolver an override resolver
 * @param host     the name to rewrite
 * @param port     the port to match, or -1 for any
 * @param family   the family to match, or -1 for any
 * @param to_host  the name (or literal) to resolve instead
 * @param to_port  the port to use instead, or -1 to keep the one asked for
 * @return 0 when added
 * @retval TS_EINVAL not an override resolver, a NULL name, or a port out of range
 * @retval TS_ENOMEM out of memory
 */
TS_EXPORT int ts_resolver_override_add(ts_resolver *resolver, const char *host, int port, int family,
                                       const char *to_host, int to_port);

/**
 * Frees a resolver. Queries already started still complete: their
 * callbacks run as promised.
 *
 * @param resolver the resolver, or NULL (nothing happens)
 */
TS_EXPORT void ts_resolver_free(ts_resolver *resolver);

/**
 * Resolves @p host : @p port for @p family (AF_UNSPEC, AF_INET, AF_INET6).
 * @p cb runs exactly once on @p loop's thread, never inside this call. Port
 * must be 0..65535.
 *
 * @param resolver the resolver
 * @param loop     the loop @p cb runs on
 * @param host     a name or IP literal (copied)
 * @param port     0..65535, stored in the addresses
 * @param family   AF_UNSPEC, AF_INET or AF_INET6
 * @param cb       gets the addresses or the error
 * @param arg      passed to @p cb
 * @return 0 when started (@p cb will run once); on an error @p cb never runs
 * @retval TS_EINVAL a NULL argument or a port out of range
 * @retval TS_ENOMEM out of memory
 * @retval TS_ERESOLVE (or another code) the resolver's own refusal
 */
TS_EXPORT int ts_resolver_resolve(ts_resolver *resolver, ts_ioloop *loop, const char *host, int port, int family,
                                  ts_resolve_cb cb, void *arg);

/**
 * Future form of ts_resolver_resolve(): the result is a ts_addrlist * owned
 * by the future (take it with ts_future_steal_result(), then free it with
 * ts_addrlist_free()). On failure the future's error is the status code;
 * the detail text is logged at DEBUG. An error ts_resolver_resolve() would
 * return at once comes back as a future already failed with that code.
 *
 * @param resolver the resolver
 * @param loop     the loop the future belongs to
 * @param host     a name or IP literal
 * @param port     0..65535
 * @param family   AF_UNSPEC, AF_INET or AF_INET6
 * @return the future (one reference for the caller); NULL when @p loop is
 *         NULL or the future cannot be allocated
 */
TS_EXPORT ts_future *ts_resolver_resolve_future(ts_resolver *resolver, ts_ioloop *loop, const char *host, int port,
                                                int family);

#ifdef __cplusplus
}
#endif

#endif /* TSTREAM_NETUTIL_H */
