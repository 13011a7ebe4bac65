/*
 * read_until_regex's matcher: PCRE2 (8-bit, JIT when available), one
 * compiled pattern cached per stream, and resumable searching.
 *
 * Resuming: while more data may come, matches run with PCRE2_PARTIAL_HARD.
 * A partial match reports where a match could still begin; nothing before
 * that offset is scanned again. No match at all means no match can begin
 * anywhere in the data seen, so the next search starts at its end. The
 * subject always starts at the unconsumed start, so lookbehinds still see
 * the bytes before the resume offset.
 *
 * Safety: every match runs under a match limit, a heap limit and a depth
 * limit (and JIT's own stack limit), so a pathological pattern such as
 * ^(a)+$ over megabytes fails with TS_EREGEX instead of eating memory.
 *
 * This file does no I/O and knows nothing of the read buffer's layout.
 */
#include <string.h>

#include <pcre2.h>

#include "iostream_core.h"

#define TS__RE_MATCH_LIMIT 10000000u
#define TS__RE_DEPTH_LIMIT 10000u
#define TS__RE_HEAP_LIMIT_KIB 8192u

struct ts__regex {
    char *pattern;
    size_t pattern_len;
    pcre2_general_context *gctx;
    pcre2_code *code;
    pcre2_match_data *md;
    pcre2_match_context *mctx;
};

/* PCRE2's memory goes through the library's hooks like everything else. */
static void *re_malloc(PCRE2_SIZE n, void *data)
{
    TS__UNUSED(data);
    return ts__malloc(n);
}

static void re_free(void *p, void *data)
{
    TS__UNUSED(data);
    ts__free(p);
}

void ts__regex_free(ts__regex *re)
{
    if (!re)
        return;
    pcre2_match_data_free(re->md);
    pcre2_match_context_free(re->mctx);
    pcre2_code_free(re->code);
    pcre2_general_context_free(re->gctx);
    ts__free(re->pattern);
    ts__free(re);
}

/* Compiles @p pattern; NULL with *err TS_ENOMEM (out of memory, PCRE2's included) or TS_EREGEX (a bad pattern). */
static ts__regex *compile(const char *pattern, size_t plen, int *err)
{
    *err = TS_ENOMEM;
    ts__regex *re = ts__calloc(1, sizeof(*re));
    if (!re)
        return NULL;
    re->pattern = ts__malloc(plen + 1);
    re->gctx = pcre2_general_context_create(re_malloc, re_free, NULL);
    pcre2_compile_context *cctx = re->gctx ? pcre2_compile_context_create(re->gctx) : NULL;
    if (!re->pattern || !cctx) {
        pcre2_compile_context_free(cctx);
        ts__regex_free(re);
        return NULL;
    }
    memcpy(re->pattern, pattern, plen + 1);
    re->pattern_len = plen;
    int errcode;
    PCRE2_SIZE erroff;
    re->code = pcre2_compile((PCRE2_SPTR)pattern, plen, 0, &errcode, &erroff, cctx);
    pcre2_compile_context_free(cctx);
    if (!re->code) {
        if (errcode != PCRE2_ERROR_HEAP_FAILED) {
            PCRE2_UCHAR msg[120];
            pcre2_get_error_message(errcode, msg, sizeof(msg));
            ts_log(TS_LOG_INFO, "iostream: bad regex at offset %zu: %s", (size_t)erroff, (const char *)msg);
            *err = TS_EREGEX;
        }
        ts__regex_free(re);
        return NULL;
    }
    /* Both modes: partial while data may come, complete once it won't. Failure just means no JIT. */
    (void)pcre2_jit_compile(re->code, PCRE2_JIT_COMPLETE | PCRE2_JIT_PARTIAL_HARD);
    re->md = pcre2_match_data_create_from_pattern(re->code, re->gctx);
    re->mctx = pcre2_match_context_create(re->gctx);
    if (!re->md || !re->mctx) {
        ts__regex_free(re);
        return NULL;
    }
    pcre2_set_match_limit(re->mctx, TS__RE_MATCH_LIMIT);
    pcre2_set_depth_limit(re->mctx, TS__RE_DEPTH_LIMIT);
    pcre2_set_heap_limit(re->mctx, TS__RE_HEAP_LIMIT_KIB);
    return re;
}

int ts__regex_prepare(ts_iostream *s, const char *pattern)
{
    size_t plen = strlen(pattern);
    ts__rare *rare = ts__io_rare(s);
    if (!rare)
        return TS_ENOMEM;
    if (rare->re && rare->re->pattern_len == plen && memcmp(rare->re->pattern, pattern, plen) == 0)
        return 0; /* same pattern: keep the compiled code */
    int err;
    ts__regex *re = compile(pattern, plen, &err);
    if (!re)
        return err;
    ts__regex_free(rare->re);
    rare->re = re;
    return 0;
}

int ts__regex_search(ts_iostream *s, const char *data, size_t len, size_t *scan, bool final, size_t *end)
{
    ts__regex *re = s->rare->re; /* (set: the read was prepared) */
    ts__io_count_search(s, len - *scan);
    int rc = pcre2_match(re->code, (PCRE2_SPTR)data, len, *scan, final ? 0 : PCRE2_PARTIAL_HARD, re->md, re->mctx);
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(re->md);
    if (rc >= 0) {
        *end = ov[1];
        return 1;
    }
    if (rc == PCRE2_ERROR_PARTIAL) {
        *scan = ov[0];
        return 0;
    }
    if (rc == PCRE2_ERROR_NOMATCH) {
        *scan = len;
        return 0;
    }
    if (rc == PCRE2_ERROR_NOMEMORY)
        return TS_ENOMEM; /* the hooks refused PCRE2's frames: not the pattern's fault (the heap limit is) */
    PCRE2_UCHAR msg[120];
    pcre2_get_error_message(rc, msg, sizeof(msg));
    ts_log(TS_LOG_INFO, "iostream: regex match failed: %s", (const char *)msg);
    return TS_EREGEX;
}

size_t ts__regex_heap_bytes(const ts__regex *re)
{
    if (!re)
        return 0;
    size_t n = 0;
    pcre2_pattern_info(re->code, PCRE2_INFO_SIZE, &n);
    return sizeof(*re) + re->pattern_len + 1 + n;
}
