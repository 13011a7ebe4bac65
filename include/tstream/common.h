/**
 * @file tstream/common.h
 * @brief Error codes, logging and allocation hooks shared by every module.
 *
 * Every libtstream function that can fail returns `0` (or a non-negative
 * count) on success and a negative error code on failure: `-errno` for
 * operating-system errors, and the `TS_E*` codes below (all less than -4095,
 * outside errno's range) for library errors. ts_strerror() and ts_err_name()
 * describe every code.
 */
#ifndef TSTREAM_COMMON_H
#define TSTREAM_COMMON_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Marks a symbol as part of the public ABI (everything else is hidden). */
#define TS_EXPORT __attribute__((visibility("default")))

/** printf-style format checking for the logging functions. */
#define TS_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))

/**
 * The library's own error codes. X(name, value, message). Operating-system
 * errors are reported as `-errno` and are not listed here.
 */
#define TS_ERRNO_MAP(X)                                                        \
    X(ECLOSED, -5001, "stream is closed")                                      \
    X(EBUFFERFULL, -5002, "buffer size limit reached")                        \
    X(EUNSATISFIABLE, -5003, "read cannot be satisfied within max_bytes")     \
    X(ETIMEDOUT, -5004, "operation timed out")                                 \
    X(ESSL, -5005, "TLS error")                                                \
    X(EBUSY, -5006, "another operation of this kind is already pending")      \
    X(ERESOLVE, -5007, "name resolution failed")                               \
    X(EREGEX, -5008, "regular expression error")                               \
    X(ESTATE, -5009, "operation not valid in the current state")              \
    X(ECANCELLED, -5010, "operation cancelled")                                \
    X(ETRUNCATED, -5011, "TLS peer closed without close_notify")               \
    X(EAGAIN, -5012, "operation would block")                                  \
    X(EWANTREAD, -5013, "transport must wait until the fd is readable")       \
    X(EWANTWRITE, -5014, "transport must wait until the fd is writable")      \
    X(EINTERNAL, -5015, "internal error")                                      \
    X(ENOTSUP, -5016, "operation not supported by this transport")

/** Library error codes. */
typedef enum ts_errno {
/** @cond INTERNAL */
#define TS__ERR_ENUM(name, value, msg) TS_##name = (value),
    TS_ERRNO_MAP(TS__ERR_ENUM)
#undef TS__ERR_ENUM
/** @endcond */
    /** Invalid argument (an alias for `-EINVAL`). */
    TS_EINVAL = -22,
    /** Out of memory (an alias for `-ENOMEM`). */
    TS_ENOMEM = -12
} ts_errno;

/**
 * A human-readable description of an error code (library or `-errno`).
 *
 * @param err 0, a TS_E* code or a negative errno value
 * @return a static string, never NULL: "success" for 0, strerror()'s text
 *         for `-errno`, "unknown error" for a code that is neither
 */
TS_EXPORT const char *ts_strerror(int err);

/**
 * The symbolic name of an error code, e.g. "TS_ECLOSED" or "ECONNRESET".
 *
 * @param err 0, a TS_E* code or a negative errno value
 * @return a static string, never NULL: "OK" for 0, "UNKNOWN" for a code
 *         that is neither a library code nor an errno value
 */
TS_EXPORT const char *ts_err_name(int err);

struct sockaddr;

/** Room for any ts_sockaddr_str() text with its NUL: an IPv6 address with scope and port, or a unix socket path. */
#define TS_SOCKADDR_STRLEN 112

/**
 * Formats a socket address as text for logs and messages (libuv's
 * uv_ip_name plus the port): `127.0.0.1:8080`, `[::1]:8080`,
 * `[fe80::1%eth0]:8080`, a unix socket's path, `@name` for an abstract unix
 * socket, `(unnamed)` for an unbound one.
 *
 * @param sa      the address
 * @param addrlen its length in bytes (as accept() or getpeername() gave it)
 * @param buf     where the text goes; always NUL-terminated when @p len > 0
 * @param len     the size of @p buf (TS_SOCKADDR_STRLEN always suffices)
 * @return the length of the whole text (as snprintf: truncated if >= @p len)
 * @retval TS_EINVAL @p sa is NULL, @p addrlen too short for its family, or
 *         the family is not AF_INET, AF_INET6 or AF_UNIX (@p buf gets "?")
 */
TS_EXPORT int ts_sockaddr_str(const struct sockaddr *sa, size_t addrlen, char *buf, size_t len);

/**
 * The version of the library the program runs with (TS_VERSION_STRING is
 * the version of the headers it was compiled with).
 *
 * @return a static string, e.g. "0.1.0"
 */
TS_EXPORT const char *ts_version(void);

/** Log levels, in increasing severity. */
typedef enum ts_log_level {
    TS_LOG_DEBUG = 0,
    TS_LOG_INFO = 1,
    TS_LOG_WARN = 2,
    TS_LOG_ERROR = 3
} ts_log_level;

/**
 * A log hook. @p msg is a complete, NUL-terminated line without a trailing
 * newline. It may be called from any thread that logs (in practice: the loop
 * threads and executor threads).
 */
typedef void (*ts_log_cb)(ts_log_level level, const char *msg, void *arg);

/**
 * Replaces the log hook. NULL restores the default, which writes
 * "tstream: LEVEL: msg" to stderr. Messages below @p min_level are dropped
 * before formatting. Until this is called the level is TS_LOG_WARN, as
 * Tornado shows by default: warnings and errors, not the INFO progress
 * lines (process starts, unsatisfiable reads) nor DEBUG (a peer that went
 * away mid-handshake, a handshake timeout, connect failures). The library
 * logs only what it decided itself (a close the application asked for is
 * never logged) and names the peer's address when it has one. Not
 * thread-safe against concurrent logging: set it at start-up.
 *
 * @param cb        the hook, or NULL for the default (stderr)
 * @param arg       passed to @p cb (ignored with the default)
 * @param min_level messages below this level are dropped
 */
TS_EXPORT void ts_log_set_handler(ts_log_cb cb, void *arg, ts_log_level min_level);

/**
 * Logs through the current hook (printf-style), if @p level is at or above
 * the level ts_log_set_handler() set.
 *
 * @param level severity of the message
 * @param fmt   printf format of the message (no trailing newline needed)
 * @param ...   the format's arguments
 */
TS_EXPORT void ts_log(ts_log_level level, const char *fmt, ...) TS_PRINTF(2, 3);

/**
 * Allocation hooks. Every allocation the library makes goes through these.
 * Set them before creating any object; all three must be given together, or
 * all NULL to restore malloc/realloc/free. @p realloc_fn must accept a NULL
 * pointer as malloc does; @p free_fn must accept NULL.
 */
typedef struct ts_allocator {
    /** Allocates @p size bytes (never called with 0). */
    void *(*malloc_fn)(size_t size);
    /** Resizes (or allocates, for a NULL @p ptr). */
    void *(*realloc_fn)(void *ptr, size_t size);
    /** Frees (never called with NULL). */
    void (*free_fn)(void *ptr);
} ts_allocator;

/**
 * Installs allocation hooks. Not thread-safe: call it before any other
 * library function.
 *
 * @param alloc the hooks (copied), or NULL to restore malloc/realloc/free
 * @return 0 on success
 * @retval TS_EINVAL one of the three functions is NULL
 */
TS_EXPORT int ts_set_allocator(const ts_allocator *alloc);

/**
 * Allocates through the library's hooks, for memory handed to the library
 * that it frees (e.g. with ts_iostream_write_owned() and ts_free as free_fn).
 *
 * @param size bytes wanted (0 allocates 1)
 * @return the memory, or NULL when out of memory
 */
TS_EXPORT void *ts_malloc(size_t size);
/**
 * Reallocates through the library's hooks.
 *
 * @param ptr  memory from ts_malloc() / ts_realloc(), or NULL to allocate
 * @param size the new size (0 is treated as 1)
 * @return the memory, or NULL when out of memory (@p ptr is then unchanged)
 */
TS_EXPORT void *ts_realloc(void *ptr, size_t size);
/**
 * Frees through the library's hooks.
 *
 * @param ptr memory from ts_malloc() / ts_realloc(), or NULL (nothing happens)
 */
TS_EXPORT void ts_free(void *ptr);

/**
 * An owned byte string, used as the result of read futures. `data` is
 * NUL-terminated for convenience (the terminator is not counted in `len`).
 * Free with ts_bytes_free().
 */
typedef struct ts_bytes {
    /** The number of bytes. */
    size_t len;
    /** The bytes, followed by a NUL not counted in @p len. */
    char *data;
} ts_bytes;

/**
 * Makes an owned copy of @p len bytes, NUL-terminated.
 *
 * @param data the bytes (may be NULL when @p len is 0)
 * @param len  their number
 * @return the copy (free with ts_bytes_free()), or NULL when out of memory
 */
TS_EXPORT ts_bytes *ts_bytes_new(const void *data, size_t len);
/**
 * Frees a ts_bytes and its data. Its signature makes it usable as a
 * future's result destructor (ts_future_set_result()).
 *
 * @param bytes a ts_bytes *, or NULL (nothing happens)
 */
TS_EXPORT void ts_bytes_free(void *bytes);

#ifdef __cplusplus
}
#endif

#endif /* TSTREAM_COMMON_H */
