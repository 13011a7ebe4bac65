/*
 * examples/http_parse.c as plain functions over buffers: request and response
 * heads, every rejection RFC 9112 asks for, chunked framing and trailers.
 * Inputs sit against a guard page, so a read past the end faults.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_parse.h"
#include "testutil.h"

#define NFIELDS 32

typedef struct parsed {
    hp_field fields[NFIELDS];
    hp_message m;
    char *buf;
    size_t len;
    ssize_t rc;
} parsed;

/*
 * Parses len bytes (against a guard page) as a request or a response, and
 * checks that every prefix gives HP_INCOMPLETE or the same result.
 */
static void parse_n(parsed *p, bool request, const char *text, size_t len, const hp_limits *lim)
{
    memset(p, 0, sizeof *p);
    p->m.fields = p->fields;
    p->m.max_fields = NFIELDS;
    p->len = len;
    p->buf = tu_guarded_alloc(len);
    memcpy(p->buf, text, len);
    ssize_t whole = request ? hp_parse_request(p->buf, len, lim, &p->m) : hp_parse_response(p->buf, len, false, lim, &p->m);
    for (size_t cut = 0; cut < len; cut++) {
        char *q = tu_guarded_alloc(cut);
        memcpy(q, text, cut);
        ssize_t r = request ? hp_parse_request(q, cut, lim, &p->m) : hp_parse_response(q, cut, false, lim, &p->m);
        tu_guarded_free(q, cut);
        if (r != HP_INCOMPLETE && r != whole && !(r > 0 && whole > 0)) {
            fprintf(stderr, "prefix of %zu bytes gave %zd, the whole %zd\n", cut, r, whole);
            fail();
        }
    }
    p->rc = request ? hp_parse_request(p->buf, len, lim, &p->m) : hp_parse_response(p->buf, len, false, lim, &p->m);
}

static void parse(parsed *p, bool request, const char *text) { parse_n(p, request, text, strlen(text), NULL); }

static void done(parsed *p) { tu_guarded_free(p->buf, p->len); }

static void assert_str(hp_str s, const char *want)
{
    if (s.len != strlen(want) || memcmp(s.ptr, want, s.len)) {
        fprintf(stderr, "got '%.*s', want '%s'\n", (int)s.len, s.ptr, want);
        fail();
    }
}

/* ---- requests ------------------------------------------------------------------ */

static void test_request_fields_are_views(void **state)
{
    (void)state;
    char text[8192];
    char big[5000];
    memset(big, 'v', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    int n = snprintf(text, sizeof text,
                     "POST /echo?x=1 HTTP/1.1\r\nHost: example\r\nX-A: one\r\nX-A: two\r\nX-Big: %s\r\n"
                     "Content-Length: 40\r\nX-Spaces:  \t padded value \t \r\n\r\nbody...",
                     big);
    parsed p;
    parse_n(&p, true, text, (size_t)n, NULL);
    assert_int_equal(p.rc, n - 7);
    assert_str(p.m.method, "POST");
    assert_str(p.m.target, "/echo?x=1");
    assert_int_equal(p.m.minor, 1);
    assert_int_equal(p.m.nfields, 6);
    assert_str(p.m.fields[1].name, "X-A");
    assert_str(p.m.fields[1].value, "one");
    assert_str(p.m.fields[2].value, "two"); /* a repeated field: both kept, in order */
    assert_str(p.m.fields[3].value, big);   /* 4999 bytes: no fixed-size copy */
    assert_str(p.m.fields[5].value, "padded value");
    for (size_t i = 0; i < p.m.nfields; i++) /* every view points into the buffer */
        assert_true(p.m.fields[i].value.ptr >= p.buf && p.m.fields[i].value.ptr < p.buf + p.len);
    assert_str(hp_find(&p.m, "x-big")->name, "X-Big");
    assert_null(hp_find(&p.m, "X-None"));
    assert_int_equal(p.m.framing, HP_BODY_LENGTH);
    assert_int_equal(p.m.length, 40);
    assert_true(p.m.keep_alive);
    done(&p);
}

static void test_request_bare_lf_and_keep_alive(void **state)
{
    (void)state;
    parsed p;
    parse(&p, true, "GET / HTTP/1.1\nHost: x\n\n");
    assert_int_equal(p.rc, (ssize_t)p.len);
    assert_int_equal(p.m.framing, HP_BODY_NONE);
    assert_true(p.m.keep_alive);
    done(&p);
    parse(&p, true, "GET / HTTP/1.1\r\nHost: x\nConnection: foo, close\r\n\n");
    assert_int_equal(p.rc, (ssize_t)p.len);
    assert_false(p.m.keep_alive);
    done(&p);
    parse(&p, true, "\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n"); /* a stray CRLF before the request line */
    assert_int_equal(p.rc, (ssize_t)p.len);
    assert_str(p.m.method, "GET");
    done(&p);
    parse(&p, true, "GET / HTTP/1.0\r\n\r\n"); /* 1.0: no Host needed, no keep-alive by default */
    assert_int_equal(p.rc, (ssize_t)p.len);
    assert_false(p.m.keep_alive);
    done(&p);
    parse(&p, true, "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n");
    assert_true(p.m.keep_alive);
    done(&p);
    parse(&p, true, "PUT /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
    assert_int_equal(p.m.framing, HP_BODY_CHUNKED);
    done(&p);
    parse(&p, true, "PUT /x HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
    assert_int_equal(p.m.framing, HP_BODY_NONE);
    done(&p);
}

typedef struct bad_case {
    const char *text;
    ssize_t want;
} bad_case;

static void check_cases(bool request, const bad_case *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        parsed p;
        parse(&p, request, cases[i].text);
        if (p.rc != cases[i].want) {
            fprintf(stderr, "case %zu: got %zd, want %zd: %s\n", i, p.rc, cases[i].want, cases[i].text);
            fail();
        }
        if (p.rc < 0 && p.rc != HP_INCOMPLETE)
            assert_non_null(p.m.error);
        done(&p);
    }
}

static void test_request_rejections(void **state)
{
    (void)state;
    static const bad_case cases[] = {
        /* request smuggling and framing attacks that must be refused */
        {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 40\r\n\r\n", HP_EBAD},
        {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 00000000000000000000000000000000000000000000000000000000000000040\r\n\r\n", HP_EBAD},
        {"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\nContent-Length: 3\r\n\r\n", HP_EBAD},
        {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n 40\r\n\r\n", HP_EBAD},
        {"GET / HTTP/1.1\r\nHost: x\r\nconnection : close\r\n\r\n", HP_EBAD},
        /* Content-Length */
        {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n", HP_EBAD},
        {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3, 3\r\n\r\n", HP_EBAD},
        {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 12abc\r\n\r\n", HP_EBAD},
        {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", HP_EBAD},
        {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +1\r\n\r\n", HP_EBAD},
        {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length:\r\n\r\n", HP_EBAD},
        {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n", HP_EBAD},
        /* Transfer-Encoding */
        {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", HP_EBAD},
        {"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", HP_EBAD},
        {"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", HP_EBAD},
        {"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n", HP_EBAD},
        {"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\r\n\r\n", HP_EBAD},
        {"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", HP_EBAD},
        {"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", HP_ECODING},
        {"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: ch/n, chunked\r\n\r\n", HP_EBAD},
        {"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip;level, chunked\r\n\r\n", HP_EBAD},
        /* field lines */
        {"GET / HTTP/1.1\r\nHost: x\r\nBad Header: x\r\n\r\n", HP_EBAD},
        {"GET / HTTP/1.1\r\nHost: x\r\nX@Y: x\r\n\r\n", HP_EBAD},
        {"GET / HTTP/1.1\r\nHost: x\r\nX-A:\x01\r\n\r\n", HP_EBAD},
        {"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n", HP_EBAD},
        {"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\r\n\r\n", HP_EBAD},
        {"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x7f\r\n\r\n", HP_EBAD},
        {"GET / HTTP/1.1\r\nHost: x\r\n: empty\r\n\r\n", HP_EBAD},
        {"GET / HTTP/1.1\r\nHost: x\r\nno colon\r\n\r\n", HP_EBAD},
        {"GET / HTTP/1.1\r\n Host: x\r\n\r\n", HP_EBAD},
        {"GET / HTTP/1.1\r\nHost: x\r\n\tfolded\r\n\r\n", HP_EBAD},
        {"GET / HTTP/1.1\r\nHost: x\r\r\n\r\n", HP_EBAD},
        /* Host */
        {"GET / HTTP/1.1\r\n\r\n", HP_EBAD},
        {"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", HP_EBAD},
        /* the request line */
        {"GET  / HTTP/1.1\r\nHost: x\r\n\r\n", HP_EBAD},
        {"GET / HTTP/1.1 \r\nHost: x\r\n\r\n", HP_EBAD},
        {"GET /\r\n\r\n", HP_EBAD},
        {"G(T / HTTP/1.1\r\nHost: x\r\n\r\n", HP_EBAD},
        {"GET /\x7f HTTP/1.1\r\nHost: x\r\n\r\n", HP_EBAD},
        {"GET /\xc3\xa9 HTTP/1.1\r\nHost: x\r\n\r\n", HP_EBAD},
        {"GET / http/1.1\r\nHost: x\r\n\r\n", HP_EBAD},
        {"GET / HTTP/1.1\rHost: x\r\n\r\n", HP_EBAD},
        {"\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", HP_EBAD}, /* one empty line is ignored, not two */
        {"GET / HTTP/2.0\r\nHost: x\r\n\r\n", HP_EVERSION},
        {"GET / HTTP/0.9\r\nHost: x\r\n\r\n", HP_EVERSION},
        /* incomplete, not wrong */
        {"GET / HTTP/1.1\r\nHost: x\r\n", HP_INCOMPLETE},
        {"GET / HTTP/1.1\r\nHost: x\r\n\r", HP_INCOMPLETE},
    };
    check_cases(true, cases, sizeof cases / sizeof cases[0]);
}

static void test_request_limits(void **state)
{
    (void)state;
    char text[40000];
    parsed p;
    /* a 1,031-byte target: kept whole under the default limit */
    int n = snprintf(text, sizeof text, "GET /%01030d HTTP/1.1\r\nHost: x\r\n\r\n", 0);
    memset(text + 5, 'a', 1029);
    text[5 + 1029] = 'f';
    parse_n(&p, true, text, (size_t)n, NULL);
    assert_int_equal(p.rc, n);
    assert_int_equal(p.m.target.len, 1031);
    assert_int_equal(p.m.target.ptr[1030], 'f');
    done(&p);
    /* a request line of max_line bytes passes, one more is 414, complete or not */
    hp_limits lim = {.max_line = 100, .max_head = 1000};
    n = snprintf(text, sizeof text, "GET /%086d HTTP/1.1\r\nHost: x\r\n\r\n", 0);
    parse_n(&p, true, text, (size_t)n, &lim);
    assert_int_equal(p.rc, n);
    done(&p);
    n = snprintf(text, sizeof text, "GET /%087d HTTP/1.1\r\nHost: x\r\n\r\n", 0);
    parse_n(&p, true, text, (size_t)n, &lim);
    assert_int_equal(p.rc, HP_ELINE);
    assert_int_equal(hp_status(p.rc), 414);
    done(&p);
    parse_n(&p, true, text, 102, &lim); /* no line ending yet, already too long */
    assert_int_equal(p.rc, HP_ELINE);
    done(&p);
    /* the head: max_head bytes pass, one more is 431, complete or not */
    n = snprintf(text, sizeof text, "GET / HTTP/1.1\r\nHost: x\r\nX: %0968d\r\n\r\n", 0);
    assert_int_equal(n, 1000);
    parse_n(&p, true, text, (size_t)n, &lim);
    assert_int_equal(p.rc, 1000);
    done(&p);
    n = snprintf(text, sizeof text, "GET / HTTP/1.1\r\nHost: x\r\nX: %0969d\r\n\r\n", 0);
    parse_n(&p, true, text, (size_t)n, &lim);
    assert_int_equal(p.rc, HP_EHEAD);
    assert_int_equal(hp_status(p.rc), 431);
    done(&p);
    parse_n(&p, true, text, 1000, &lim);
    assert_int_equal(p.rc, HP_EHEAD);
    done(&p);
    /* more fields than the caller's array: 431 */
    size_t len = (size_t)snprintf(text, sizeof text, "GET / HTTP/1.1\r\nHost: x\r\n");
    for (int i = 0; i < NFIELDS; i++)
        len += (size_t)snprintf(text + len, sizeof text - len, "X-%d: %d\r\n", i, i);
    len += (size_t)snprintf(text + len, sizeof text - len, "\r\n");
    parse_n(&p, true, text, len, NULL);
    assert_int_equal(p.rc, HP_EHEAD);
    done(&p);
}

/* ---- responses ------------------------------------------------------------------- */

static void test_response_heads(void **state)
{
    (void)state;
    parsed p;
    parse(&p, false, "HTTP/1.1 200 OK\r\nContent-Length: 12\r\nServer: s\r\n\r\n");
    assert_int_equal(p.rc, (ssize_t)p.len);
    assert_int_equal(p.m.status, 200);
    assert_str(p.m.reason, "OK");
    assert_int_equal(p.m.framing, HP_BODY_LENGTH);
    assert_int_equal(p.m.length, 12);
    assert_true(p.m.keep_alive);
    done(&p);
    parse(&p, false, "HTTP/1.1 204\r\n\r\n");
    assert_int_equal(p.m.status, 204);
    assert_int_equal(p.m.reason.len, 0);
    assert_int_equal(p.m.framing, HP_BODY_NONE);
    done(&p);
    parse(&p, false, "HTTP/1.1 404 Not  Found \r\nTransfer-Encoding: gzip, chunked\r\n\r\n");
    assert_str(p.m.reason, "Not  Found ");
    assert_int_equal(p.m.framing, HP_BODY_CHUNKED);
    done(&p);
    parse(&p, false, "HTTP/1.1 200 OK\r\nTransfer-Encoding: , gzip;level=\"1\" ,, chunked\r\n\r\n");
    assert_int_equal(p.m.framing, HP_BODY_CHUNKED); /* empty list elements are ignored (RFC 9110 5.6.1) */
    done(&p);
    parse(&p, false, "HTTP/1.1 200 OK\nTransfer-Encoding: gzip\n\n");
    assert_int_equal(p.m.framing, HP_BODY_CLOSE);
    assert_false(p.m.keep_alive);
    done(&p);
    parse(&p, false, "HTTP/1.0 200 OK\r\nServer: fake\r\n\r\n");
    assert_int_equal(p.m.framing, HP_BODY_CLOSE);
    done(&p);
    parse(&p, false, "HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\n\r\n");
    assert_int_equal(p.m.framing, HP_BODY_NONE);
    done(&p);
    parse(&p, false, "HTTP/1.1 100 Continue\r\n\r\n");
    assert_int_equal(p.m.framing, HP_BODY_NONE);
    done(&p);
    /* HEAD: no body whatever the head says */
    hp_field f[4];
    hp_message m = {.fields = f, .max_fields = 4};
    const char *h = "HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\n";
    assert_int_equal(hp_parse_response(h, strlen(h), true, NULL, &m), (ssize_t)strlen(h));
    assert_int_equal(m.framing, HP_BODY_NONE);
    assert_int_equal(m.length, 20);
}

static void test_response_rejections(void **state)
{
    (void)state;
    /* the client's hostile-server table, and more */
    static const bad_case cases[] = {
        {"HTTP/1.1 2OO OK\r\nContent-Length: 0\r\n\r\n", HP_EBAD},
        {"HTTP/1.1 200 OK\r\nBad Header: x\r\nContent-Length: 0\r\n\r\n", HP_EBAD},
        {"HTTP/1.1 200 OK\r\nContent-Length: 12abc\r\n\r\n", HP_EBAD},
        {"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n", HP_EBAD},
        {"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", HP_EBAD},
        {"HTTP/1.1 200 OK\r\nX-A: 1\r\n  folded\r\nContent-Length: 0\r\n\r\n", HP_EBAD},
        {"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", HP_EBAD},
        {"HTTP/1.1 200 OK\r\nX-A: a\rb\r\n\r\n", HP_EBAD},
        {"HTTP/1.1 200\tOK\r\n\r\n", HP_EBAD},
        {"HTTP/1.1 099 Low\r\n\r\n", HP_EBAD},
        {"HTTP/1.1 600 High\r\n\r\n", HP_EBAD},
        {"HTTP/1.1 200 O\x01K\r\n\r\n", HP_EBAD},
        {"HTTP/1.1 20\r\n\r\n", HP_EBAD},
        {"HTTP/2.0 200 OK\r\n\r\n", HP_EVERSION},
        {"ICY 200 OK\r\n\r\n", HP_EBAD},
        {"HTTP/1.1 200 OK\r\n", HP_INCOMPLETE},
    };
    check_cases(false, cases, sizeof cases / sizeof cases[0]);
    hp_field f[4];
    hp_message m = {.fields = f, .max_fields = 4};
    char big[2000];
    int n = snprintf(big, sizeof big, "HTTP/1.1 200 OK\r\nX-Big: %01900d\r\n\r\n", 0);
    hp_limits lim = {.max_head = 1000};
    assert_int_equal(hp_parse_response(big, (size_t)n, false, &lim, &m), HP_EHEAD);
    assert_int_equal(hp_parse_response(big, 1000, false, &lim, &m), HP_EHEAD);
    assert_int_equal(hp_parse_response(big, 999, false, &lim, &m), HP_INCOMPLETE);
}

/* ---- chunked framing ---------------------------------------------------------------- */

static ssize_t chunk_line(const char *s, uint64_t *size)
{
    size_t n = strlen(s);
    char *q = tu_guarded_alloc(n);
    memcpy(q, s, n);
    const char *why = NULL;
    ssize_t r = hp_parse_chunk_line(q, n, size, &why);
    if (r < 0 && r != HP_INCOMPLETE)
        assert_non_null(why);
    tu_guarded_free(q, n);
    return r;
}

static void test_chunk_lines(void **state)
{
    (void)state;
    uint64_t size = 0;
    assert_int_equal(chunk_line("5\r\n", &size), 3);
    assert_int_equal(size, 5);
    assert_int_equal(chunk_line("00aF;name=value\r\nxx", &size), 17);
    assert_int_equal(size, 0xaf);
    assert_int_equal(chunk_line("7 ; x\r\n", &size), 7);
    assert_int_equal(chunk_line("7;a=\"q\\\"t;\" ;b\t=\tc\r\n", &size), 20);
    assert_int_equal(chunk_line("ffffffffffffffff\r\n", &size), 18);
    assert_true(size == UINT64_MAX);
    assert_int_equal(chunk_line("0\r\n", &size), 3);
    assert_int_equal(size, 0);
    /* rejected */
    assert_int_equal(chunk_line("zz\r\n", &size), HP_EBAD);
    assert_int_equal(chunk_line("1ffffffffffffffff\r\n", &size), HP_EBAD);
    assert_int_equal(chunk_line("5\n", &size), HP_EBAD);
    assert_int_equal(chunk_line("5 \r\n", &size), HP_EBAD);
    assert_int_equal(chunk_line("5;\r\n", &size), HP_EBAD);
    assert_int_equal(chunk_line("5;a=\r\n", &size), HP_EBAD);
    assert_int_equal(chunk_line("5;a=\"x\r\n", &size), HP_EBAD);
    assert_int_equal(chunk_line("5;a\x01\r\n", &size), HP_EBAD);
    assert_int_equal(chunk_line("5\r\r\n", &size), HP_EBAD);
    assert_int_equal(chunk_line("-5\r\n", &size), HP_EBAD);
    assert_int_equal(chunk_line("\r\n", &size), HP_EBAD);
    /* incomplete, and the length limit */
    assert_int_equal(chunk_line("5", &size), HP_INCOMPLETE);
    assert_int_equal(chunk_line("5\r", &size), HP_INCOMPLETE);
    char line[HP_MAX_CHUNK_LINE + 8];
    memset(line, 'a', sizeof line);
    line[0] = '5', line[1] = ';';
    strcpy(line + HP_MAX_CHUNK_LINE, "\r\n");
    assert_int_equal(chunk_line(line, &size), HP_MAX_CHUNK_LINE + 2);
    line[HP_MAX_CHUNK_LINE] = 'a';
    strcpy(line + HP_MAX_CHUNK_LINE + 1, "\r\n");
    assert_int_equal(chunk_line(line, &size), HP_EBAD);
    line[HP_MAX_CHUNK_LINE + 1] = '\0';
    assert_int_equal(chunk_line(line, &size), HP_INCOMPLETE);
    line[HP_MAX_CHUNK_LINE + 1] = 'a';
    assert_int_equal(chunk_line(line, &size), HP_EBAD); /* 1026 bytes, no LF */
    /* the CRLF after chunk data */
    const char *why = NULL;
    assert_int_equal(hp_parse_chunk_end("\r\n", 2, &why), 2);
    assert_int_equal(hp_parse_chunk_end("\r", 1, &why), HP_INCOMPLETE);
    assert_int_equal(hp_parse_chunk_end("", 0, &why), HP_INCOMPLETE);
    assert_int_equal(hp_parse_chunk_end("XX", 2, &why), HP_EBAD);
    assert_int_equal(hp_parse_chunk_end("\rX", 2, &why), HP_EBAD);
    assert_int_equal(hp_parse_chunk_end("\n", 1, &why), HP_EBAD);
}

typedef struct decoded {
    char data[256];
    size_t len;
    int chunks, trailers;
    char trailer[64];
} decoded;

static void on_chunk(void *arg, uint64_t size)
{
    (void)size;
    ((decoded *)arg)->chunks++;
}

static void on_data(void *arg, const char *data, size_t len)
{
    decoded *d = arg;
    assert_true(d->len + len <= sizeof d->data);
    memcpy(d->data + d->len, data, len);
    d->len += len;
}

static void on_trailer(void *arg, const hp_field *f)
{
    decoded *d = arg;
    d->trailers++;
    snprintf(d->trailer, sizeof d->trailer, "%.*s=%.*s", (int)f->name.len, f->name.ptr, (int)f->value.len,
             f->value.ptr);
}

static const hp_chunk_cbs cbs = {on_chunk, on_data, on_trailer};

/* Feeds text in pieces of `step` bytes, keeping what the decoder left; the result of the last feed. */
static ssize_t decode(const char *text, size_t step, size_t max_trailers, decoded *out, size_t *rest)
{
    size_t n = strlen(text), have = 0, pos = 0;
    char acc[512];
    hp_chunked d = {0};
    ssize_t r = 0;
    memset(out, 0, sizeof *out);
    while (!d.done) {
        size_t add = n - pos < step ? n - pos : step;
        memcpy(acc + have, text + pos, add);
        have += add, pos += add;
        r = hp_chunked_feed(&d, acc, have, max_trailers, &cbs, out);
        if (r < 0) {
            assert_non_null(d.error);
            return r;
        }
        memmove(acc, acc + r, have - (size_t)r);
        have -= (size_t)r;
        if (pos == n && !d.done)
            return HP_INCOMPLETE;
    }
    *rest = have + (n - pos);
    return r;
}

static void test_chunked_decoder(void **state)
{
    (void)state;
    const char *body = "5;name=value\r\nhello\r\n7 ; x\r\n, world\r\n0\r\nX-Trailer: yes\nX-Two: 2\r\n\r\nNEXT";
    for (size_t step = 1; step <= strlen(body); step++) {
        decoded d;
        size_t rest = 0;
        assert_true(decode(body, step, 0, &d, &rest) >= 0);
        assert_int_equal(d.len, 12);
        assert_memory_equal(d.data, "hello, world", 12);
        assert_int_equal(d.chunks, 3);
        assert_int_equal(d.trailers, 2);
        assert_string_equal(d.trailer, "X-Two=2");
        assert_int_equal(rest, 4); /* "NEXT" is not the body's */
    }
    decoded d;
    size_t rest;
    assert_int_equal(decode("5\r\nhelloXX0\r\n\r\n", 1, 0, &d, &rest), HP_EBAD);
    assert_int_equal(decode("5\r\nhello\r\n1ffffffffffffffff\r\n", 3, 0, &d, &rest), HP_EBAD);
    assert_int_equal(decode("0\r\nX-A: 1\r\n folded\r\n\r\n", 4, 0, &d, &rest), HP_EBAD);
    assert_int_equal(decode("0\r\nBad Name: 1\r\n\r\n", 4, 0, &d, &rest), HP_EBAD);
    assert_int_equal(decode("0\r\nX-Long: 12345678901234567890\r\n\r\n", 64, 20, &d, &rest), HP_EBAD);
    assert_int_equal(decode("0\r\nX-Long: 12345678901234567890\r\n\r\n", 1, 20, &d, &rest), HP_EBAD);
    assert_int_equal(decode("a\r\nhello", 2, 0, &d, &rest), HP_INCOMPLETE);
    /* after an error the decoder stays failed */
    hp_chunked dec = {0};
    assert_int_equal(hp_chunked_feed(&dec, "x\r\n", 3, 0, NULL, NULL), HP_EBAD);
    assert_int_equal(hp_chunked_feed(&dec, "0\r\n\r\n", 5, 0, NULL, NULL), HP_EBAD);
}

static void test_status_codes(void **state)
{
    (void)state;
    parsed p;
    parse(&p, true, "GET / HTTP/1.1\r\nHost: x\r\nBad Header: 1\r\n\r\n");
    assert_int_equal(p.rc, HP_EBAD);
    assert_str(p.m.error_line, "Bad Header: 1\r"); /* the failing line, as received */
    done(&p);
    parse(&p, true, "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n");
    assert_int_equal(p.rc, HP_EBAD);
    assert_int_equal(p.m.error_line.len, 0); /* not one line's fault */
    done(&p);
    assert_int_equal(hp_status(HP_EBAD), 400);
    assert_int_equal(hp_status(HP_ELINE), 414);
    assert_int_equal(hp_status(HP_EHEAD), 431);
    assert_int_equal(hp_status(HP_ECODING), 501);
    assert_int_equal(hp_status(HP_EVERSION), 505);
    const char *why = NULL;
    hp_field f;
    assert_int_equal(hp_parse_field("Name: v", 7, &f, &why), 0);
    assert_int_equal(hp_parse_field("Name : v", 8, &f, &why), HP_EBAD);
    assert_string_equal(why, "whitespace between a field name and its colon");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_fields_are_views),
        cmocka_unit_test(test_request_bare_lf_and_keep_alive),
        cmocka_unit_test(test_request_rejections),
        cmocka_unit_test(test_request_limits),
        cmocka_unit_test(test_response_heads),
        cmocka_unit_test(test_response_rejections),
        cmocka_unit_test(test_chunk_lines),
        cmocka_unit_test(test_chunked_decoder),
        cmocka_unit_test(test_status_codes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
