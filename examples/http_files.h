/*
 * http_files: the static-file half of examples/http_server, with no I/O on
 * a stream: mapping a request target to a file under a root, media types,
 * validators (ETag, Last-Modified), conditional requests, byte ranges and
 * directory listings. http_server.c does the sending (ts_iostream_write_file).
 *
 * Path policy: the target's path is percent-decoded (a decoded NUL is
 * refused), "." segments are dropped and ".." segments remove the previous
 * one; a ".." above the root is refused (400). Symbolic links are followed
 * only when the file they lead to is inside the root (realpath), else 403.
 */
#ifndef TS_EXAMPLE_HTTP_FILES_H
#define TS_EXAMPLE_HTTP_FILES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>

/** Room for an HTTP-date ("Sun, 06 Nov 1994 08:49:37 GMT") and its NUL. */
#define HF_DATE_LEN 30
/** Room for an ETag as hf_etag() makes it, quotes and NUL included. */
#define HF_ETAG_LEN 40

/** A request target mapped under the root. */
typedef struct hf_target {
    char url_path[4096]; /* decoded and normalised, starting with '/' */
    char file[4096];     /* realpath of what it names */
    struct stat st;
    bool dir;
} hf_target;

/**
 * Maps @p target (origin-form, query allowed) under @p root (a realpath).
 * Returns 0 with *out filled, or an HTTP status: 400 (bad encoding, ".."
 * above the root), 403 (a link leading outside the root, or unreadable),
 * 404 (nothing there), 414 (too long).
 */
int hf_resolve(const char *root, const char *target, hf_target *out);

/** Loads "type ext ext..." lines (/etc/mime.types); returns how many extensions were read, or -1. */
int hf_mime_load(const char *path);
/** The media type for a file name by its extension: the loaded table, then a built-in one, then application/octet-stream. */
const char *hf_mime_type(const char *name);
/** Frees the loaded table. */
void hf_mime_free(void);

/** @p t as an IMF-fixdate (RFC 9110 5.6.7) into @p buf (HF_DATE_LEN bytes). */
void hf_http_date(time_t t, char *buf);
/** Parses an HTTP-date (IMF-fixdate, RFC 850 or asctime form). false if it is none. */
bool hf_parse_http_date(const char *s, size_t len, time_t *out);

/** The strong validator of @p st: "<mtime hex>-<size hex>" in quotes (nginx's form). */
void hf_etag(const struct stat *st, char *buf);
/** Whether an If-None-Match value (a list of entity-tags, or "*") matches @p etag (weak comparison). */
bool hf_etag_listed(const char *value, size_t len, const char *etag);

/** What a Range header asks of a file of @p size bytes. */
typedef enum hf_range_kind {
    HF_RANGE_NONE = 0,      /* no range, or one to ignore (not bytes=, malformed, several): send it all */
    HF_RANGE_ONE,           /* one satisfiable range: *first .. *last (inclusive) */
    HF_RANGE_UNSATISFIABLE  /* 416 */
} hf_range_kind;
/** Parses a Range value (RFC 9110 14.1.2). Several ranges are answered with the whole file. */
hf_range_kind hf_parse_range(const char *value, size_t len, uint64_t size, uint64_t *first, uint64_t *last);

/**
 * An HTML listing of directory @p dir, shown as @p url_path: entries sorted
 * by name, directories first marked with '/', each with its size and
 * modification time; names HTML-escaped, links percent-encoded. Returns a
 * malloc'd document and its length, or NULL (errno set).
 */
char *hf_listing(const char *dir, const char *url_path, size_t *len);

/** Appends @p s HTML-escaped (& < > " ') to @p out (room @p cap, always NUL-terminated); returns the length it needs. */
size_t hf_html_escape(const char *s, char *out, size_t cap);

#endif /* TS_EXAMPLE_HTTP_FILES_H */
