/*
 * http_parse: a strict HTTP/1.1 message parser (RFC 9112), shared by
 * examples/http_client.c and examples/http_server.c.
 *
 * It parses a request head, a response head, and chunked framing (chunk-size
 * lines, the CRLF after chunk data, trailer fields). Every result is a view
 * into the caller's buffer: nothing is copied, nothing is allocated, and the
 * views are valid as long as that buffer is. It decides the body framing
 * (none, Content-Length, chunked, until close) and keep-alive.
 *
 * What it rejects, each with its HTTP status (see hp_status()):
 *   400  Content-Length together with Transfer-Encoding; a repeated
 *        Content-Length (equal or not); a Content-Length that is not 1*DIGIT
 *        or has more than HP_MAX_LENGTH_DIGITS digits; whitespace between a
 *        field name and its colon; obs-fold (a line starting with SP/HTAB);
 *        a CR not followed by LF; NUL or another control character in a
 *        line; a non-token character in a field name or method; a malformed
 *        request line or status line; a request without exactly one Host
 *        (HTTP/1.1); Transfer-Encoding in an HTTP/1.0 message; a request
 *        whose last transfer coding is not chunked; a chunk-size over 64
 *        bits, a malformed chunk extension, chunk data not followed by CRLF.
 *   414  a request line longer than hp_limits.max_line.
 *   431  a head longer than hp_limits.max_head, or more fields than the
 *        caller's array holds.
 *   501  a request transfer coding other than chunked (it is not decoded).
 *   505  an HTTP major version other than 1.
 * A bare LF ends a start line or a field line, as RFC 9112 section 2.2
 * allows, and one empty line before a request line is ignored; chunk-size
 * lines and the end of chunk data need CRLF.
 *
 * What it does not do: read from sockets, decode content codings, interpret
 * any field but Content-Length, Transfer-Encoding, Connection and Host.
 */
#ifndef EXAMPLES_HTTP_PARSE_H
#define EXAMPLES_HTTP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define HP_MAX_LINE 8192        /* default request line limit (RFC 9112 3 suggests >= 8000) */
#define HP_MAX_HEAD (64 * 1024) /* default head limit */
#define HP_MAX_CHUNK_LINE 1024  /* a chunk-size line, extensions included, CRLF excluded */
#define HP_MAX_LENGTH_DIGITS 19 /* every 19-digit number fits in 64 bits */

/* Results: >= 0 is a byte count; these are below zero. */
enum {
    HP_INCOMPLETE = -1, /* no error so far, but the buffer ends before the element does */
    HP_EBAD = -2,       /* malformed: 400 */
    HP_ELINE = -3,      /* request line over the limit: 414 */
    HP_EHEAD = -4,      /* head over the limit, or too many fields: 431 */
    HP_ECODING = -5,    /* a transfer coding that is not implemented: 501 */
    HP_EVERSION = -6,   /* not HTTP/1.x: 505 */
};

/** A view into the parsed buffer: not NUL-terminated. */
typedef struct hp_str {
    const char *ptr;
    size_t len;
} hp_str;

/** One field line: the name as sent, the value without surrounding whitespace. */
typedef struct hp_field {
    hp_str name, value;
} hp_field;

typedef enum hp_framing {
    HP_BODY_NONE,    /* no body (or HEAD / 1xx / 204 / 304 responses) */
    HP_BODY_LENGTH,  /* Content-Length bytes */
    HP_BODY_CHUNKED, /* chunked transfer coding */
    HP_BODY_CLOSE,   /* response only: until the connection closes */
} hp_framing;

typedef struct hp_limits {
    size_t max_line; /* request line, its line ending excluded; 0: HP_MAX_LINE */
    size_t max_head; /* the whole head with its blank line; 0: HP_MAX_HEAD */
} hp_limits;

typedef struct hp_message {
    /* the caller sets these two before parsing: where the fields go */
    hp_field *fields;
    size_t max_fields;

    size_t nfields;
    hp_str method, target; /* requests */
    int status;            /* responses: 100..599 */
    hp_str reason;         /* responses, may be empty */
    int minor;             /* HTTP/1.<minor> (0..9) */
    hp_framing framing;
    uint64_t length;       /* HP_BODY_LENGTH: the Content-Length */
    bool keep_alive;       /* by version and Connection */
    const char *error;     /* after an error: what was wrong (a static string) */
    hp_str error_line;     /* after an error in one line: that line (its LF excluded), else empty */
} hp_message;

/**
 * Parses a request head at the start of buf.
 * @return the head's length, blank line included (> 0); HP_INCOMPLETE when buf
 *         holds no whole head yet and what it holds is within the limits and
 *         valid line by line; or an HP_E* error with m->error set. Each
 *         line is checked as soon as it is complete, so a prefix of a head
 *         gives HP_INCOMPLETE or the whole head's error.
 */
ssize_t hp_parse_request(const char *buf, size_t len, const hp_limits *lim, hp_message *m);

/**
 * Parses a response head at the start of buf; head_request says the request
 * was HEAD (no body follows whatever the head says).
 * @return as hp_parse_request() (HP_ELINE does not occur).
 */
ssize_t hp_parse_response(const char *buf, size_t len, bool head_request, const hp_limits *lim, hp_message *m);

/**
 * Checks one field line (no line ending) and splits it.
 * @return 0, or HP_EBAD with *why set.
 */
int hp_parse_field(const char *line, size_t len, hp_field *out, const char **why);

/** The first field named name (case-insensitive), or NULL. */
const hp_field *hp_find(const hp_message *m, const char *name);

/**
 * Parses a chunk-size line "1*HEXDIG [chunk-ext] CRLF" at the start of buf.
 * @return its length with the CRLF (> 0) and *size; HP_INCOMPLETE; or HP_EBAD
 *         with *why set (overflow, bad extension, bare LF, over HP_MAX_CHUNK_LINE).
 */
ssize_t hp_parse_chunk_line(const char *buf, size_t len, uint64_t *size, const char **why);

/**
 * Checks the CRLF that must follow chunk data.
 * @return 2, HP_INCOMPLETE, or HP_EBAD with *why set.
 */
ssize_t hp_parse_chunk_end(const char *buf, size_t len, const char **why);

/**
 * Checks one trailer section line at the start of buf (a field line, or the
 * blank line that ends the chunked body).
 * @return the line's length with its ending (> 0), *last set when it was the
 *         blank line; HP_INCOMPLETE; or HP_EBAD with *why set, also when the
 *         line with its ending would be longer than max_bytes.
 */
ssize_t hp_parse_trailer_line(const char *buf, size_t len, size_t max_bytes, hp_field *field, bool *last,
                              const char **why);

/** What a chunked body decoder reports, one callback per event. Any may be NULL. */
typedef struct hp_chunk_cbs {
    void (*chunk)(void *arg, uint64_t size);                 /* a chunk-size line; 0: the last chunk */
    void (*data)(void *arg, const char *data, size_t len);    /* chunk data, possibly in pieces */
    void (*trailer)(void *arg, const hp_field *field);       /* one trailer field */
} hp_chunk_cbs;

/** A chunked body decoder over buffers; zero-initialise to start. */
typedef struct hp_chunked {
    int state;
    uint64_t left;        /* data bytes left in the current chunk */
    size_t trailer_bytes; /* trailer section bytes so far */
    bool done;            /* the blank line after the trailers was consumed */
    const char *error;
} hp_chunked;

/**
 * Decodes as much of buf as holds whole elements (chunk data may come in
 * pieces); stops when the body ends (d->done) or the buffer does. Call again
 * with the unconsumed rest plus new bytes. The trailer section is limited to
 * max_trailers bytes (0: HP_MAX_HEAD).
 * @return bytes consumed (>= 0), or HP_EBAD with d->error set.
 */
ssize_t hp_chunked_feed(hp_chunked *d, const char *buf, size_t len, size_t max_trailers, const hp_chunk_cbs *cbs,
                        void *arg);

/** The HTTP status that answers an HP_E* error (400 for anything unknown). */
int hp_status(ssize_t err);

/** Whether s[0..n) is an RFC 9110 token (a method, a field name): 1*tchar. */
bool hp_is_token(const char *s, size_t n);

/** Whether s equals the NUL-terminated word, ignoring ASCII case. */
bool hp_str_eq(hp_str s, const char *word);

#endif /* EXAMPLES_HTTP_PARSE_H */
