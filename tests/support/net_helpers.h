/*
 * Networking test helpers: blocking loopback clients with timeouts, a
 * "blackhole" listener whose backlog is full (SYNs are dropped, so connects
 * to it hang: a loopback-only stand-in for an unreachable host), IPv6
 * detection, and log capture. Nothing here ever leaves the machine.
 */
#ifndef TS_NET_HELPERS_H
#define TS_NET_HELPERS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "tstream.h"

/** The monotonic clock, in seconds. */
double nh_now(void);

/** Whether ::1 can be bound and connected to on this machine. */
bool nh_have_ipv6(void);

/** Fills @p ss with the loopback address of @p family (AF_INET / AF_INET6) and @p port. Returns its length. */
socklen_t nh_loopback(int family, int port, struct sockaddr_storage *ss);

/** The local port of socket @p fd. */
int nh_local_port(int fd);

/** A blocking connect to loopback @p family : @p port, bounded by @p timeout. Returns the fd or -errno. */
int nh_connect(int family, int port, double timeout);

/** Reads at most @p len bytes within @p timeout. Returns bytes (0: EOF), or -errno (-ETIMEDOUT). */
ssize_t nh_read(int fd, void *buf, size_t len, double timeout);

/** Reads until @p len bytes or a newline (included) arrive, EOF, or @p timeout. Returns bytes or -errno. */
ssize_t nh_read_line(int fd, char *buf, size_t len, double timeout);

/** Writes everything (blocking). Returns 0 or -errno. */
int nh_write_all(int fd, const void *data, size_t len);

/** A listener that accepts nothing and whose accept queue is full: connects to it hang. */
typedef struct nh_blackhole {
    int listen_fd;
    int port;
    int family;
    int fill[8];
    int nfill;
} nh_blackhole;

/** Creates one on loopback @p family. Returns 0 or -errno. */
int nh_blackhole_open(nh_blackhole *bh, int family);
/** Closes its sockets. */
void nh_blackhole_close(nh_blackhole *bh);

/** Captures log lines (thread-safe) until nh_log_capture_stop(); lines still go to stderr. */
void nh_log_capture_start(void);
/** How many captured lines contain @p needle (at @p min_level or above). */
int nh_log_count(const char *needle, ts_log_level min_level);
/** Stops capturing and restores the default log hook. */
void nh_log_capture_stop(void);

/**
 * A test resolver over fixed address lists (name -> addresses, in order):
 * it proves the pluggable interface and lets a test hand the client any
 * address mix without DNS. Results arrive through ts_ioloop_add_callback().
 */
typedef struct nh_static_resolver nh_static_resolver;
/** Creates one; free it with ts_resolver_free(nh_static_resolver_get(r)). */
nh_static_resolver *nh_static_resolver_new(void);
/** The ts_resolver view of it. */
ts_resolver *nh_static_resolver_get(nh_static_resolver *r);
/** Maps @p host to one more address (appended); @p port -1 keeps the port asked for. */
void nh_static_resolver_add(nh_static_resolver *r, const char *host, const char *ip, int port);
/** Makes @p host fail with TS_ERESOLVE and @p detail. */
void nh_static_resolver_fail(nh_static_resolver *r, const char *host, const char *detail);
/** How many lookups it has answered. */
int nh_static_resolver_queries(const nh_static_resolver *r);


/* ---- an echo server on the library's own TCPServer ----------------------- */

/** What an echo server has seen. */
typedef struct nh_echo_stats {
    int accepted; /* handle_stream calls */
    int open;     /* connections not yet closed */
    int lines;    /* lines echoed */
    int fail_next; /* > 0: handle_stream returns TS_EINVAL this many times */
    bool nodelay_checked; /* the last accepted TCP socket had TCP_NODELAY */
    int last_peer_port;
    const char *prefix; /* prepended to every echoed line (NULL: none) */
} nh_echo_stats;

/**
 * A TCPServer that echoes every line back (read_until "\n", write), on
 * @p loop, not yet listening. @p stats must outlive the server's connections.
 */
ts_tcpserver *nh_echo_server_new(ts_ioloop *loop, const ts_tcpserver_options *opts, nh_echo_stats *stats);

/** Closes every connection the echo servers still hold (at teardown). */
void nh_echo_close_all(void);

#endif /* TS_NET_HELPERS_H */
