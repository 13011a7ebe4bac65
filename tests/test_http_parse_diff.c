/*
 * examples/http_parse.c against Debian's libhttp-parser (nodejs/http-parser
 * 2.9), over the fuzz corpora in tests/fuzz/http/corpus/fuzz_http_{request,response}
 * (each file: two control bytes, then the message). Where both parsers
 * accept a head, they must agree on the method, the target, the status, and
 * the framing (chunked, a Content-Length and its value, or none / until
 * close); where both accept a whole chunked body, on every chunk size and on
 * the body bytes. Where only http_parser accepts, our parser must name a
 * rule it applies (m.error); the counts of each side's refusals are printed.
 * Known differences, compared on the head only: responses with 1xx, 204 and
 * 304 (RFC 9110 gives them no body whatever their Content-Length,
 * http_parser reads one), and a Transfer-Encoding with an empty list element
 * (", chunked": RFC 9110 5.6.1 has recipients ignore it, http_parser then
 * does not see chunked).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_parse.h"

#ifdef TS_HAVE_HTTP_PARSER
#include <http_parser.h>

#define MAX_CHUNKS 64

typedef struct theirs {
    bool headers_done, complete;
    char url[8192];
    size_t url_len;
    unsigned flags;
    uint64_t length;
    int nchunks;
    uint64_t chunks[MAX_CHUNKS];
    char body[8192];
    size_t body_len;
    bool overflow;
} theirs;

/* Appends to a fixed buffer, or notes that it would not fit. */
static void append(char *dst, size_t *have, size_t cap, bool *overflow, const char *data, size_t len)
{
    if (*have + len > cap)
        *overflow = true;
    else
        memcpy(dst + *have, data, len), *have += len;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
    theirs *t = p->data;
    append(t->url, &t->url_len, sizeof t->url, &t->overflow, at, len);
    return 0;
}

static int on_headers_complete(http_parser *p)
{
    theirs *t = p->data;
    t->headers_done = true;
    t->flags = p->flags;
    t->length = p->content_length;
    return 0;
}

static int on_chunk_header(http_parser *p)
{
    theirs *t = p->data;
    if (t->nchunks < MAX_CHUNKS)
        t->chunks[t->nchunks] = p->content_length;
    t->nchunks++;
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    theirs *t = p->data;
    append(t->body, &t->body_len, sizeof t->body, &t->overflow, at, len);
    return 0;
}

static int on_message_complete(http_parser *p)
{
    ((theirs *)p->data)->complete = true;
    http_parser_pause(p, 1); /* the first message only */
    return 0;
}

static const http_parser_settings settings = {
    .on_url = on_url,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
    .on_chunk_header = on_chunk_header,
};

typedef struct ours {
    int nchunks;
    uint64_t chunks[MAX_CHUNKS];
    char body[8192];
    size_t body_len;
    bool overflow;
} ours;

static void our_chunk(void *arg, uint64_t size)
{
    ours *o = arg;
    if (o->nchunks < MAX_CHUNKS)
        o->chunks[o->nchunks] = size;
    o->nchunks++;
}

static void our_data(void *arg, const char *data, size_t len)
{
    ours *o = arg;
    append(o->body, &o->body_len, sizeof o->body, &o->overflow, data, len);
}

static const hp_chunk_cbs our_cbs = {our_chunk, our_data, NULL};

typedef struct tally {
    int files, both_head, both_body, only_theirs, only_ours, neither, differ, known;
} tally;

static tally *g_tally; /* the corpus being compared */

/* A disagreement: named, counted, and the run goes on so that all are listed. */
static void fail_on(const char *path, const char *what)
{
    fprintf(stderr, "DIFFER %s: %s\n", path, what);
    g_tally->differ++;
}

/* Whether a Transfer-Encoding value has an empty list element ("a,,b", ", a", "a ,"). */
static bool te_has_empty_element(const hp_message *m)
{
    for (size_t i = 0; i < m->nfields; i++) {
        if (!hp_str_eq(m->fields[i].name, "Transfer-Encoding"))
            continue;
        bool seen = false;
        hp_str v = m->fields[i].value;
        for (size_t j = 0; j < v.len; j++) {
            if (v.ptr[j] == ',' && !seen)
                return true;
            seen = v.ptr[j] == ',' ? false : seen || (v.ptr[j] != ' ' && v.ptr[j] != '\t');
        }
        if (!seen)
            return true;
    }
    return false;
}

/* One message: both parsers, then the comparison. */
static void compare(const char *path, bool request, const char *msg, size_t len, tally *t)
{
    hp_field fields[100];
    hp_message m = {.fields = fields, .max_fields = 100};
    ssize_t rc = request ? hp_parse_request(msg, len, NULL, &m) : hp_parse_response(msg, len, false, NULL, &m);

    theirs *th = calloc(1, sizeof *th);
    assert_non_null(th);
    http_parser p;
    http_parser_init(&p, request ? HTTP_REQUEST : HTTP_RESPONSE);
    p.data = th;
    http_parser_execute(&p, &settings, msg, len);
    enum http_errno err = HTTP_PARSER_ERRNO(&p);
    bool their_head = th->headers_done && (err == HPE_OK || err == HPE_PAUSED || th->complete);
    t->files++;

    if (rc > 0 && their_head) {
        t->both_head++;
        if (request) {
            if (!hp_str_eq(m.method, http_method_str((enum http_method)p.method)))
                fail_on(path, "the methods differ");
            if (m.target.len != th->url_len || memcmp(m.target.ptr, th->url, th->url_len))
                fail_on(path, "the targets differ");
        } else if (m.status != (int)p.status_code) {
            fail_on(path, "the status codes differ");
        }
        bool no_body_status = !request && (m.status < 200 || m.status == 204 || m.status == 304);
        if (te_has_empty_element(&m)) {
            t->known++;
            no_body_status = true; /* the framing is not compared */
        }
        bool chunked = th->flags & F_CHUNKED, has_length = th->flags & F_CONTENTLENGTH;
        if (!no_body_status) {
            if ((m.framing == HP_BODY_CHUNKED) != chunked)
                fail_on(path, "chunked or not: the parsers differ");
            if (m.framing == HP_BODY_LENGTH && (!has_length || th->length != m.length))
                fail_on(path, "the Content-Length differs");
            if (m.framing == HP_BODY_NONE && has_length && th->length != 0)
                fail_on(path, "no body for us, a body for http_parser");
            if (m.framing == HP_BODY_CLOSE && (chunked || has_length))
                fail_on(path, "until close for us, framed for http_parser");
        }
        if (m.framing == HP_BODY_CHUNKED && !no_body_status) {
            ours *o = calloc(1, sizeof *o);
            assert_non_null(o);
            hp_chunked d = {0};
            ssize_t used = hp_chunked_feed(&d, msg + rc, len - (size_t)rc, 0, &our_cbs, o);
            if (used >= 0 && d.done && th->complete && err != HPE_OK && err != HPE_PAUSED)
                fail_on(path, "http_parser failed after completing");
            if (used >= 0 && d.done && th->complete) {
                t->both_body++;
                if (o->nchunks != th->nchunks ||
                    memcmp(o->chunks, th->chunks, sizeof(uint64_t) * (size_t)(o->nchunks < MAX_CHUNKS ? o->nchunks : MAX_CHUNKS)))
                    fail_on(path, "the chunk boundaries differ");
                if (!o->overflow && !th->overflow &&
                    (o->body_len != th->body_len || memcmp(o->body, th->body, o->body_len)))
                    fail_on(path, "the chunked bodies differ");
            }
            free(o);
        }
    } else if (their_head) {
        t->only_theirs++;
        if (getenv("HP_DIFF_VERBOSE"))
            printf("only http_parser: %s: %s\n", path, m.error ? m.error : "(incomplete)");
        if (rc == HP_INCOMPLETE || !m.error)
            fail_on(path, "http_parser accepts a head that we neither take nor refuse by a named rule");
    } else if (rc > 0) {
        t->only_ours++;
    } else {
        t->neither++;
    }
    free(th);
}

static void run_corpus(bool request, const char *kind)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/tests/fuzz/http/corpus/fuzz_http_%s", TS_TEST_SRCDIR, kind);
    DIR *d = opendir(dir);
    assert_non_null(d);
    tally t = {0};
    static char buf[1 << 16];
    g_tally = &t;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.')
            continue;
        char path[8192];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        FILE *f = fopen(path, "rb");
        assert_non_null(f);
        size_t n = fread(buf, 1, sizeof buf, f);
        fclose(f);
        if (n >= 2)
            compare(path, request, buf + 2, n - 2, &t);
    }
    closedir(d);
    printf("%s corpus: %d messages; heads both accept %d (chunked bodies both complete %d); "
           "only http_parser %d; only ours %d; neither %d; known differences %d; disagreements %d\n",
           kind, t.files, t.both_head, t.both_body, t.only_theirs, t.only_ours, t.neither, t.known, t.differ);
    assert_int_equal(t.differ, 0);
    assert_true(t.files >= 20);
    assert_true(t.both_head >= 10); /* the comparison compared something */
    assert_true(t.both_body >= 2);
}

static void test_requests_agree(void **state)
{
    (void)state;
    run_corpus(true, "request");
}

static void test_responses_agree(void **state)
{
    (void)state;
    run_corpus(false, "response");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_requests_agree),
        cmocka_unit_test(test_responses_agree),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

#else /* no libhttp-parser-dev */

static void test_needs_http_parser(void **state)
{
    (void)state;
    const char *ci = getenv("CI");
    if (ci && !strcmp(ci, "true"))
        fail_msg("libhttp-parser-dev is not installed (scripts/deps.sh test installs it)");
    skip();
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_needs_http_parser)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}

#endif
