/*
 * http_parse: the strict HTTP/1.1 parser behind http_parse.h. Pure functions
 * over caller-owned bytes: no I/O, no allocation, no copies.
 */
#include "http_parse.h"

#include <string.h>
#include <strings.h>

/* RFC 9110 5.6.2: tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." / "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA */
static bool is_tchar(unsigned char ch)
{
    if ((ch >= '0' && ch <= '9') || ((ch | 0x20) >= 'a' && (ch | 0x20) <= 'z'))
        return true;
    return ch && strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

bool hp_is_token(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!is_tchar((unsigned char)s[i]))
            return false;
    return n > 0;
}

static bool is_ws(char ch) { return ch == ' ' || ch == '\t'; }

/* field-vchar, SP or HTAB: anything but the other controls and DEL */
static bool is_field_char(unsigned char ch) { return ch >= 0x20 ? ch != 0x7f : ch == '\t'; }

bool hp_str_eq(hp_str s, const char *word)
{
    return strlen(word) == s.len && !strncasecmp(s.ptr, word, s.len);
}

int hp_status(ssize_t err)
{
    switch (err) {
    case HP_ELINE: return 414;
    case HP_EHEAD: return 431;
    case HP_ECODING: return 501;
    case HP_EVERSION: return 505;
    default: return 400;
    }
}

static ssize_t fail(const char **why, ssize_t code, const char *what)
{
    *why = what;
    return code;
}

/*
 * The line that buf[0..nl] ends (nl: the index of its LF): its length without
 * the line ending, or -1 for a CR that does not end it.
 */
static ssize_t line_length(const char *buf, size_t nl)
{
    size_t n = nl > 0 && buf[nl - 1] == '\r' ? nl - 1 : nl;
    return memchr(buf, '\r', n) ? -1 : (ssize_t)n;
}

int hp_parse_field(const char *line, size_t len, hp_field *out, const char **why)
{
    const char *colon = memchr(line, ':', len), *v, *ve = line + len;
    if (!colon)
        return (int)fail(why, HP_EBAD, "a field line without a colon");
    size_t nlen = (size_t)(colon - line);
    if (nlen == 0)
        return (int)fail(why, HP_EBAD, "an empty field name");
    if (is_ws(line[0]))
        return (int)fail(why, HP_EBAD, "obsolete line folding");
    if (is_ws(colon[-1]))
        return (int)fail(why, HP_EBAD, "whitespace between a field name and its colon");
    if (!hp_is_token(line, nlen))
        return (int)fail(why, HP_EBAD, "an invalid character in a field name");
    for (v = colon + 1; v < ve && is_ws(*v); v++)
        ;
    while (ve > v && is_ws(ve[-1]))
        ve--;
    for (const char *q = v; q < ve; q++)
        if (!is_field_char((unsigned char)*q))
            return (int)fail(why, HP_EBAD, "a control character in a field value");
    out->name = (hp_str){line, nlen};
    out->value = (hp_str){v, (size_t)(ve - v)};
    return 0;
}

const hp_field *hp_find(const hp_message *m, const char *name)
{
    for (size_t i = 0; i < m->nfields; i++)
        if (hp_str_eq(m->fields[i].name, name))
            return &m->fields[i];
    return NULL;
}

/* ---- start lines ----------------------------------------------------------- */

/* "HTTP/" DIGIT "." DIGIT: 0 and *minor; HP_EVERSION for another major; HP_EBAD */
static int parse_version(const char *v, size_t n, int *minor)
{
    if (n != 8 || memcmp(v, "HTTP/", 5) || v[6] != '.' || v[5] < '0' || v[5] > '9' || v[7] < '0' || v[7] > '9')
        return HP_EBAD;
    *minor = v[7] - '0';
    return v[5] == '1' ? 0 : HP_EVERSION;
}

/* method SP request-target SP HTTP-version */
static ssize_t parse_request_line(const char *l, size_t n, hp_message *m)
{
    const char *sp1 = memchr(l, ' ', n);
    const char *sp2 = sp1 ? memchr(sp1 + 1, ' ', n - (size_t)(sp1 + 1 - l)) : NULL;
    if (!sp2)
        return fail(&m->error, HP_EBAD, "a malformed request line");
    m->method = (hp_str){l, (size_t)(sp1 - l)};
    m->target = (hp_str){sp1 + 1, (size_t)(sp2 - sp1 - 1)};
    if (!hp_is_token(m->method.ptr, m->method.len))
        return fail(&m->error, HP_EBAD, "an invalid method");
    if (m->target.len == 0)
        return fail(&m->error, HP_EBAD, "an empty request target");
    for (size_t i = 0; i < m->target.len; i++)
        if ((unsigned char)m->target.ptr[i] <= 0x20 || (unsigned char)m->target.ptr[i] >= 0x7f)
            return fail(&m->error, HP_EBAD, "an invalid character in the request target");
    int rc = parse_version(sp2 + 1, n - (size_t)(sp2 + 1 - l), &m->minor);
    if (rc < 0)
        return fail(&m->error, rc, rc == HP_EVERSION ? "an HTTP version other than 1.x" : "a malformed HTTP version");
    return 0;
}

/* HTTP-version SP 3DIGIT [SP reason-phrase]; the SP before an empty reason may be missing */
static ssize_t parse_status_line(const char *l, size_t n, hp_message *m)
{
    if (n < 12 || l[8] != ' ' || (n > 12 && l[12] != ' '))
        return fail(&m->error, HP_EBAD, "a malformed status line");
    int rc = parse_version(l, 8, &m->minor);
    if (rc < 0)
        return fail(&m->error, rc, rc == HP_EVERSION ? "an HTTP version other than 1.x" : "a malformed status line");
    m->status = 0;
    for (int i = 9; i < 12; i++) {
        if (l[i] < '0' || l[i] > '9')
            return fail(&m->error, HP_EBAD, "a malformed status code");
        m->status = m->status * 10 + (l[i] - '0');
    }
    if (m->status < 100 || m->status > 599)
        return fail(&m->error, HP_EBAD, "a status code outside 100..599");
    m->reason = n > 13 ? (hp_str){l + 13, n - 13} : (hp_str){l + n, 0};
    for (size_t i = 0; i < m->reason.len; i++)
        if (!is_field_char((unsigned char)m->reason.ptr[i]))
            return fail(&m->error, HP_EBAD, "a control character in the reason phrase");
    return 0;
}

/* ---- the fields that frame the message ---------------------------------------- */

/*
 * *( BWS ";" BWS name [ BWS "=" BWS ( token / quoted-string ) ] ): chunk
 * extensions (RFC 9112 7.1.1), and with need_value the parameters of a
 * transfer coding (RFC 9110 10.1.4), whose value is not optional.
 */
static bool valid_params(const char *p, const char *end, bool need_value)
{
    while (p < end) {
        while (p < end && is_ws(*p))
            p++;
        if (p == end || *p++ != ';')
            return false;
        while (p < end && is_ws(*p))
            p++;
        const char *name = p;
        while (p < end && is_tchar((unsigned char)*p))
            p++;
        if (p == name)
            return false;
        const char *q = p;
        while (q < end && is_ws(*q))
            q++;
        if (q == end || *q != '=') {
            if (need_value)
                return false;
            continue; /* BWS before the next ';', or trailing whitespace rejected above */
        }
        for (p = q + 1; p < end && is_ws(*p); p++)
            ;
        if (p < end && *p == '"') {
            for (p++; p < end && *p != '"'; p++) {
                if (*p == '\\' && ++p == end)
                    return false;
                if (!is_field_char((unsigned char)*p))
                    return false;
            }
            if (p++ == end)
                return false;
        } else {
            const char *v = p;
            while (p < end && is_tchar((unsigned char)*p))
                p++;
            if (p == v)
                return false;
        }
    }
    return true;
}


/* The next element of a comma-separated list (RFC 9110 5.6.1), empty ones skipped. */
static bool next_element(hp_str *list, hp_str *elem)
{
    for (;;) {
        const char *p = list->ptr, *end = p + list->len;
        if (p == end)
            return false;
        const char *comma = memchr(p, ',', list->len), *e = comma ? comma : end;
        list->ptr = comma ? comma + 1 : end;
        list->len = (size_t)(end - list->ptr);
        while (p < e && is_ws(*p))
            p++;
        while (e > p && is_ws(e[-1]))
            e--;
        if (e > p) {
            *elem = (hp_str){p, (size_t)(e - p)};
            return true;
        }
    }
}

typedef struct framing_fields {
    const hp_field *length; /* the one Content-Length */
    bool te, chunked, other_coding, http10_close;
    int hosts;
} framing_fields;

static ssize_t scan_transfer_encoding(const hp_field *f, framing_fields *ff, const char **why)
{
    hp_str list = f->value, c;
    bool any = false;
    ff->te = true;
    while (next_element(&list, &c)) {
        size_t tl = 0;
        while (tl < c.len && is_tchar((unsigned char)c.ptr[tl]))
            tl++;
        if (tl == 0 || !valid_params(c.ptr + tl, c.ptr + c.len, true))
            return fail(why, HP_EBAD, "an invalid Transfer-Encoding");
        bool chunked = tl == 7 && !strncasecmp(c.ptr, "chunked", 7);
        if (ff->chunked || (chunked && tl != c.len))
            return fail(why, HP_EBAD, "a Transfer-Encoding after chunked, or chunked with parameters");
        ff->chunked = chunked;
        ff->other_coding |= !chunked;
        any = true;
    }
    return any ? 0 : fail(why, HP_EBAD, "an empty Transfer-Encoding");
}

static ssize_t scan_fields(hp_message *m, framing_fields *ff)
{
    memset(ff, 0, sizeof *ff);
    for (size_t i = 0; i < m->nfields; i++) {
        const hp_field *f = &m->fields[i];
        if (hp_str_eq(f->name, "Content-Length")) {
            if (ff->length)
                return fail(&m->error, HP_EBAD, "a repeated Content-Length");
            ff->length = f;
        } else if (hp_str_eq(f->name, "Transfer-Encoding")) {
            ssize_t rc = scan_transfer_encoding(f, ff, &m->error);
            if (rc < 0)
                return rc;
        } else if (hp_str_eq(f->name, "Host")) {
            ff->hosts++;
        } else if (hp_str_eq(f->name, "Connection")) {
            hp_str list = f->value, opt;
            while (next_element(&list, &opt)) {
                if (hp_str_eq(opt, "close"))
                    ff->http10_close = true, m->keep_alive = false;
                else if (hp_str_eq(opt, "keep-alive") && m->minor == 0 && !ff->http10_close)
                    m->keep_alive = true;
            }
        }
    }
    if (ff->te && ff->length)
        return fail(&m->error, HP_EBAD, "both Content-Length and Transfer-Encoding");
    if (ff->te && m->minor == 0)
        return fail(&m->error, HP_EBAD, "Transfer-Encoding in an HTTP/1.0 message");
    if (ff->length) {
        hp_str v = ff->length->value;
        if (v.len == 0 || v.len > HP_MAX_LENGTH_DIGITS)
            return fail(&m->error, HP_EBAD, "a Content-Length that is empty or over 19 digits");
        m->length = 0;
        for (size_t i = 0; i < v.len; i++) {
            if (v.ptr[i] < '0' || v.ptr[i] > '9')
                return fail(&m->error, HP_EBAD, "a Content-Length that is not a number");
            m->length = m->length * 10 + (uint64_t)(v.ptr[i] - '0');
        }
    }
    return 0;
}

static ssize_t request_framing(hp_message *m)
{
    framing_fields ff;
    ssize_t rc = scan_fields(m, &ff);
    if (rc < 0)
        return rc;
    if (ff.hosts > 1 || (ff.hosts == 0 && m->minor >= 1))
        return fail(&m->error, HP_EBAD, ff.hosts ? "more than one Host" : "no Host in an HTTP/1.1 request");
    if (ff.te && !ff.chunked)
        return fail(&m->error, HP_EBAD, "a request whose last transfer coding is not chunked");
    if (ff.te && ff.other_coding)
        return fail(&m->error, HP_ECODING, "a request transfer coding other than chunked");
    m->framing = ff.te ? HP_BODY_CHUNKED : ff.length && m->length > 0 ? HP_BODY_LENGTH : HP_BODY_NONE;
    return 0;
}

static ssize_t response_framing(hp_message *m, bool head_request)
{
    framing_fields ff;
    ssize_t rc = scan_fields(m, &ff);
    if (rc < 0)
        return rc;
    if (head_request || m->status < 200 || m->status == 204 || m->status == 304)
        m->framing = HP_BODY_NONE;
    else if (ff.te)
        m->framing = ff.chunked ? HP_BODY_CHUNKED : HP_BODY_CLOSE;
    else if (ff.length)
        m->framing = m->length > 0 ? HP_BODY_LENGTH : HP_BODY_NONE;
    else
        m->framing = HP_BODY_CLOSE;
    if (m->framing == HP_BODY_CLOSE)
        m->keep_alive = false;
    return 0;
}

/* ---- heads ----------------------------------------------------------------------- */

typedef ssize_t (*start_line_fn)(const char *line, size_t len, hp_message *m);

/*
 * Splits the head into lines and checks each as soon as it is complete: the
 * start line with parse_start, the others as fields. max_line 0: no limit
 * but max_head. The head's length, HP_INCOMPLETE or an error.
 */
static ssize_t split_head(const char *buf, size_t len, size_t max_line, size_t max_head, start_line_fn parse_start,
                          hp_message *m)
{
    for (size_t pos = 0;;) {
        const char *nl = memchr(buf + pos, '\n', len - pos);
        if (!nl && pos == 0 && max_line && len > max_line + 1)
            return fail(&m->error, HP_ELINE, "a request line over the limit");
        if (!nl)
            return len + 1 > max_head ? fail(&m->error, HP_EHEAD, "a head over the limit") : HP_INCOMPLETE;
        size_t end = (size_t)(nl - buf) + 1;
        ssize_t n = line_length(buf + pos, end - 1 - pos);
        m->error_line = (hp_str){buf + pos, end - 1 - pos}; /* kept only if this line fails */
        if (pos == 0 && max_line && (n >= 0 ? (size_t)n : end - 1) > max_line)
            return fail(&m->error, HP_ELINE, "a request line over the limit");
        if (end > max_head)
            return fail(&m->error, HP_EHEAD, "a head over the limit");
        if (n < 0)
            return fail(&m->error, HP_EBAD, "a CR not followed by LF");
        if (pos == 0) {
            ssize_t rc = parse_start(buf, (size_t)n, m);
            if (rc < 0)
                return rc;
        } else if (n == 0) {
            m->error_line = (hp_str){NULL, 0};
            return (ssize_t)end;
        } else if (m->nfields == m->max_fields) {
            return fail(&m->error, HP_EHEAD, "more header fields than allowed");
        } else if (hp_parse_field(buf + pos, (size_t)n, &m->fields[m->nfields], &m->error) < 0) {
            return HP_EBAD;
        } else {
            m->nfields++;
        }
        pos = end;
    }
}

static void reset(hp_message *m)
{
    hp_field *fields = m->fields;
    size_t max_fields = m->max_fields;
    memset(m, 0, sizeof *m);
    m->fields = fields;
    m->max_fields = max_fields;
}

ssize_t hp_parse_request(const char *buf, size_t len, const hp_limits *lim, hp_message *m)
{
    reset(m);
    /* one empty line before the request line is ignored (RFC 9112 2.2), e.g. a CRLF after a previous body */
    size_t skip = len >= 1 && buf[0] == '\n' ? 1 : len >= 2 && buf[0] == '\r' && buf[1] == '\n' ? 2 : 0;
    ssize_t head = split_head(buf + skip, len - skip, lim && lim->max_line ? lim->max_line : HP_MAX_LINE,
                              lim && lim->max_head ? lim->max_head : HP_MAX_HEAD, parse_request_line, m);
    if (head < 0)
        return head;
    head += (ssize_t)skip;
    m->keep_alive = m->minor >= 1;
    ssize_t rc = request_framing(m);
    return rc < 0 ? rc : head;
}

ssize_t hp_parse_response(const char *buf, size_t len, bool head_request, const hp_limits *lim, hp_message *m)
{
    reset(m);
    ssize_t head = split_head(buf, len, 0, lim && lim->max_head ? lim->max_head : HP_MAX_HEAD, parse_status_line, m);
    if (head < 0)
        return head;
    m->keep_alive = m->minor >= 1;
    ssize_t rc = response_framing(m, head_request);
    return rc < 0 ? rc : head;
}

/* ---- chunked framing --------------------------------------------------------------- */

ssize_t hp_parse_chunk_line(const char *buf, size_t len, uint64_t *size, const char **why)
{
    size_t scan = len < HP_MAX_CHUNK_LINE + 2 ? len : HP_MAX_CHUNK_LINE + 2;
    const char *nl = memchr(buf, '\n', scan);
    if (!nl)
        return len >= HP_MAX_CHUNK_LINE + 2 ? fail(why, HP_EBAD, "a chunk-size line over the limit") : HP_INCOMPLETE;
    size_t n = (size_t)(nl - buf);
    if (n == 0 || buf[n - 1] != '\r')
        return fail(why, HP_EBAD, "a chunk-size line not ended by CRLF");
    n--;
    if (memchr(buf, '\r', n))
        return fail(why, HP_EBAD, "a CR not followed by LF");
    size_t i = 0;
    uint64_t v = 0;
    for (; i < n; i++) {
        unsigned char ch = (unsigned char)buf[i], d;
        if (ch >= '0' && ch <= '9')
            d = (unsigned char)(ch - '0');
        else if ((ch | 0x20) >= 'a' && (ch | 0x20) <= 'f')
            d = (unsigned char)((ch | 0x20) - 'a' + 10);
        else
            break;
        if (v > (UINT64_MAX >> 4))
            return fail(why, HP_EBAD, "a chunk size over 64 bits");
        v = v << 4 | d;
    }
    if (i == 0)
        return fail(why, HP_EBAD, "a chunk-size line without a size");
    if (!valid_params(buf + i, buf + n, false))
        return fail(why, HP_EBAD, "a malformed chunk extension");
    *size = v;
    return (ssize_t)(n + 2);
}

ssize_t hp_parse_chunk_end(const char *buf, size_t len, const char **why)
{
    if (len >= 1 && buf[0] != '\r')
        return fail(why, HP_EBAD, "chunk data not followed by CRLF");
    if (len >= 2 && buf[1] != '\n')
        return fail(why, HP_EBAD, "chunk data not followed by CRLF");
    return len >= 2 ? 2 : HP_INCOMPLETE;
}

ssize_t hp_parse_trailer_line(const char *buf, size_t len, size_t max_bytes, hp_field *field, bool *last,
                              const char **why)
{
    const char *nl = memchr(buf, '\n', len < max_bytes ? len : max_bytes);
    if (!nl)
        return len >= max_bytes ? fail(why, HP_EBAD, "a trailer section over the limit") : HP_INCOMPLETE;
    ssize_t n = line_length(buf, (size_t)(nl - buf));
    if (n < 0)
        return fail(why, HP_EBAD, "a CR not followed by LF");
    *last = n == 0;
    if (n > 0 && hp_parse_field(buf, (size_t)n, field, why) < 0)
        return HP_EBAD;
    return nl - buf + 1;
}

enum { CH_SIZE, CH_DATA, CH_DATA_END, CH_TRAILER, CH_ERROR };

static ssize_t chunk_error(hp_chunked *d)
{
    d->state = CH_ERROR;
    return HP_EBAD;
}

ssize_t hp_chunked_feed(hp_chunked *d, const char *buf, size_t len, size_t max_trailers, const hp_chunk_cbs *cbs,
                        void *arg)
{
    size_t pos = 0;
    max_trailers = max_trailers ? max_trailers : HP_MAX_HEAD;
    while (!d->done) {
        ssize_t r;
        uint64_t size = 0;
        hp_field f;
        bool last = false;
        switch (d->state) {
        case CH_SIZE:
            if ((r = hp_parse_chunk_line(buf + pos, len - pos, &size, &d->error)) == HP_INCOMPLETE)
                return (ssize_t)pos;
            if (r < 0)
                return chunk_error(d);
            pos += (size_t)r;
            d->left = size;
            d->state = size ? CH_DATA : CH_TRAILER;
            if (cbs && cbs->chunk)
                cbs->chunk(arg, size);
            break;
        case CH_DATA:
            if (pos == len)
                return (ssize_t)pos;
            r = (ssize_t)(d->left < len - pos ? d->left : len - pos);
            if (cbs && cbs->data)
                cbs->data(arg, buf + pos, (size_t)r);
            pos += (size_t)r;
            if ((d->left -= (uint64_t)r) == 0)
                d->state = CH_DATA_END;
            break;
        case CH_DATA_END:
            if ((r = hp_parse_chunk_end(buf + pos, len - pos, &d->error)) == HP_INCOMPLETE)
                return (ssize_t)pos;
            if (r < 0)
                return chunk_error(d);
            pos += (size_t)r;
            d->state = CH_SIZE;
            break;
        case CH_TRAILER:
            r = hp_parse_trailer_line(buf + pos, len - pos, max_trailers - d->trailer_bytes, &f, &last, &d->error);
            if (r == HP_INCOMPLETE)
                return (ssize_t)pos;
            if (r < 0)
                return chunk_error(d);
            pos += (size_t)r;
            d->trailer_bytes += (size_t)r;
            if (last)
                d->done = true;
            else if (cbs && cbs->trailer)
                cbs->trailer(arg, &f);
            break;
        default:
            return HP_EBAD;
        }
    }
    return (ssize_t)pos;
}
