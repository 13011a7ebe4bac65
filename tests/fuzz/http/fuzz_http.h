/*
 * The checks shared by the libFuzzer targets for examples/http_parse.c
 * (fuzz_http_request.c, fuzz_http_response.c). Input layout: byte 0 picks
 * the limits and the prefix cut, byte 1 the piece size for the chunked
 * decoder, the rest is the message. Every property is an abort() on failure:
 *   - a result is a head length within the input or one of the HP_E* codes;
 *   - every view of a parsed head lies inside the head;
 *   - a prefix of the input gives HP_INCOMPLETE or the whole input's result
 *     (a head that parses is incomplete in every shorter prefix);
 *   - a chunked body decodes the same in one piece and in small pieces.
 */
#ifndef FUZZ_HTTP_H
#define FUZZ_HTTP_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http_parse.h"

#define FZ_FIELDS 8

#define FZ_CHECK(cond)                                                                                                 \
    do {                                                                                                               \
        if (!(cond))                                                                                                   \
            abort();                                                                                                   \
    } while (0)

static ssize_t fz_parse(bool request, bool head_request, const char *buf, size_t len, const hp_limits *lim,
                        hp_message *m)
{
    return request ? hp_parse_request(buf, len, lim, m) : hp_parse_response(buf, len, head_request, lim, m);
}

static void fz_check_view(hp_str s, const char *buf, ssize_t head)
{
    FZ_CHECK(s.len == 0 || (s.ptr >= buf && s.ptr + s.len <= buf + head));
}

typedef struct fz_body {
    uint64_t chunks, bytes, hash, trailers;
} fz_body;

static void fz_chunk(void *arg, uint64_t size)
{
    fz_body *b = arg;
    b->chunks++;
    b->hash = b->hash * 31 + size;
}

static void fz_data(void *arg, const char *data, size_t len)
{
    fz_body *b = arg;
    b->bytes += len;
    for (size_t i = 0; i < len; i++)
        b->hash = b->hash * 131 + (unsigned char)data[i];
}

static void fz_trailer(void *arg, const hp_field *f)
{
    fz_body *b = arg;
    b->trailers++;
    b->hash = b->hash * 7 + f->name.len * 3 + f->value.len;
}

static const hp_chunk_cbs fz_cbs = {fz_chunk, fz_data, fz_trailer};

/*
 * Decodes buf in pieces of at most step bytes (the rest carried over, each
 * feed from an exactly sized copy); the total consumed or HP_EBAD.
 */
static ssize_t fz_decode(const char *buf, size_t len, size_t step, fz_body *b, bool *done)
{
    hp_chunked d = {0};
    char *acc = malloc(len + 1);
    size_t have = 0, pos = 0, used = 0;
    ssize_t r = 0;
    FZ_CHECK(acc);
    memset(b, 0, sizeof *b);
    while (!d.done) {
        size_t add = len - pos < step ? len - pos : step;
        memcpy(acc + have, buf + pos, add);
        have += add, pos += add;
        char *exact = malloc(have ? have : 1); /* sized to the byte: a read past it is an ASan report */
        FZ_CHECK(exact);
        memcpy(exact, acc, have);
        r = hp_chunked_feed(&d, exact, have, 300, &fz_cbs, b);
        free(exact);
        if (r < 0)
            break;
        FZ_CHECK((size_t)r <= have);
        memmove(acc, acc + r, have - (size_t)r);
        have -= (size_t)r, used += (size_t)r;
        if (pos == len)
            break;
    }
    free(acc);
    *done = d.done;
    if (r < 0) {
        FZ_CHECK(r == HP_EBAD && d.error);
        return r;
    }
    return (ssize_t)used;
}

static int fz_run(bool request, const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    uint8_t ctl = data[0];
    size_t step = (size_t)(data[1] % 16) + 1;
    const char *buf = (const char *)data + 2;
    size_t len = size - 2;
    hp_limits small = {.max_line = 64, .max_head = 512};
    const hp_limits *lim = ctl & 1 ? &small : NULL;
    bool head_request = ctl & 2;
    hp_field fields[FZ_FIELDS];
    hp_message m = {.fields = fields, .max_fields = FZ_FIELDS};

    ssize_t rc = fz_parse(request, head_request, buf, len, lim, &m);
    FZ_CHECK(rc >= HP_EVERSION && rc != 0 && rc <= (ssize_t)len);
    FZ_CHECK(request || (rc != HP_ELINE && rc != HP_ECODING));
    FZ_CHECK(rc == HP_INCOMPLETE || rc > 0 || m.error);
    if (rc > 0) {
        FZ_CHECK(m.nfields <= FZ_FIELDS);
        for (size_t i = 0; i < m.nfields; i++) {
            FZ_CHECK(m.fields[i].name.len > 0);
            fz_check_view(m.fields[i].name, buf, rc);
            fz_check_view(m.fields[i].value, buf, rc);
        }
        if (request) {
            FZ_CHECK(m.method.len > 0 && m.target.len > 0 && m.framing != HP_BODY_CLOSE);
            fz_check_view(m.method, buf, rc);
            fz_check_view(m.target, buf, rc);
        } else {
            FZ_CHECK(m.status >= 100 && m.status <= 599);
            fz_check_view(m.reason, buf, rc);
        }
        FZ_CHECK(m.framing != HP_BODY_LENGTH || m.length > 0);
        FZ_CHECK(!(hp_find(&m, "Content-Length") && hp_find(&m, "Transfer-Encoding")));
    }

    /* a prefix: incomplete, or the same answer */
    size_t cut = len ? (size_t)(ctl >> 2) * len / 64 : 0;
    hp_message pm = {.fields = fields, .max_fields = FZ_FIELDS};
    char *prefix = malloc(cut ? cut : 1); /* exactly sized, as the whole input is */
    FZ_CHECK(prefix);
    memcpy(prefix, buf, cut);
    ssize_t pr = fz_parse(request, head_request, prefix, cut, lim, &pm);
    free(prefix);
    if (rc > 0)
        FZ_CHECK(cut < (size_t)rc ? pr == HP_INCOMPLETE : pr == rc);
    else
        FZ_CHECK(pr == HP_INCOMPLETE || pr == rc);

    /* the body, when chunked: one piece and small pieces agree */
    rc = fz_parse(request, head_request, buf, len, lim, &m);
    if (rc > 0 && m.framing == HP_BODY_CHUNKED) {
        fz_body whole, pieces;
        bool done_whole, done_pieces;
        ssize_t a = fz_decode(buf + rc, len - (size_t)rc, len, &whole, &done_whole);
        ssize_t b = fz_decode(buf + rc, len - (size_t)rc, step, &pieces, &done_pieces);
        FZ_CHECK(a == b && done_whole == done_pieces && !memcmp(&whole, &pieces, sizeof whole));
    }
    return 0;
}

#endif /* FUZZ_HTTP_H */
