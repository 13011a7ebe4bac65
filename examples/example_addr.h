/*
 * Socket addresses as the example programs print them: always through
 * ts_sockaddr_str() ("127.0.0.1:8080", "[::1]:8080"), never with a format of
 * their own. Header-only: each example is one .c file.
 */
#ifndef TS_EXAMPLE_ADDR_H
#define TS_EXAMPLE_ADDR_H

#include <stddef.h>
#include <stdio.h>
#include <sys/socket.h>

#include <tstream.h>

/* The largest number of listening sockets listed (one per address family in practice). */
#define EX_LISTEN_MAX 8

/*
 * Writes the addresses @p server's sockets are bound to, comma-separated, into
 * @p buf ("127.0.0.1:8080", or "[::]:8080, 0.0.0.0:8080" for a wildcard
 * bind): what the kernel bound, so port 0 shows the port it picked.
 */
static inline const char *ex_listen_addresses(const ts_tcpserver *server, char *buf, size_t len)
{
    int fds[EX_LISTEN_MAX];
    size_t n = ts_tcpserver_sockets(server, fds, EX_LISTEN_MAX), used = 0;
    if (len)
        buf[0] = '\0';
    for (size_t i = 0; i < n && i < EX_LISTEN_MAX && used < len; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        char one[TS_SOCKADDR_STRLEN];
        if (getsockname(fds[i], (struct sockaddr *)&ss, &sl) < 0)
            continue;
        ts_sockaddr_str((struct sockaddr *)&ss, sl, one, sizeof one);
        int w = snprintf(buf + used, len - used, "%s%s", used ? ", " : "", one);
        used += w > 0 ? (size_t)w : 0;
    }
    return buf;
}

/* The peer address of @p s as text, or "?" when it has none. */
static inline const char *ex_peer_address(ts_iostream *s, char *buf, size_t len)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (ts_iostream_peer_address(s, &ss, &sl) < 0)
        snprintf(buf, len, "?");
    else
        ts_sockaddr_str((struct sockaddr *)&ss, sl, buf, len);
    return buf;
}

#endif /* TS_EXAMPLE_ADDR_H */
