/*
 * http_files: targets to files, media types, validators, ranges and
 * directory listings for examples/http_server (see http_files.h). Nothing
 * here touches a stream; everything returns data or an HTTP status.
 */
#include "http_files.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* ---- targets --------------------------------------------------------------- */

static int hexval(int ch)
{
    return isdigit(ch) ? ch - '0' : isxdigit(ch) ? (tolower(ch) - 'a' + 10) : -1;
}

/* Percent-decodes the path part of @p target into @p out. 0, or 400 / 414. */
static int decode_path(const char *target, char *out, size_t cap)
{
    size_t j = 0;
    for (size_t i = 0; target[i] && target[i] != '?' && target[i] != '#'; i++) {
        if (j + 1 >= cap)
            return 414; /* never a shortened path: that names another file */
        int ch = (unsigned char)target[i];
        if (ch == '%') {
            int hi = hexval(target[i + 1]), lo = hi < 0 ? -1 : hexval(target[i + 2]);
            if (lo < 0)
                return 400;
            ch = hi * 16 + lo;
            i += 2;
            if (ch == 0)
                return 400;
        }
        out[j++] = (char)ch;
    }
    out[j] = '\0';
    return j && out[0] == '/' ? 0 : 400;
}

/* Drops "." and empty segments, resolves ".." (400 above the root); keeps a trailing '/'. */
static int normalise(const char *in, char *out, size_t cap)
{
    size_t n = 0;
    const char *p = in;
    bool trailing = false;
    while (*p) {
        while (*p == '/')
            p++;
        const char *seg = p;
        while (*p && *p != '/')
            p++;
        size_t len = (size_t)(p - seg);
        if (len == 0)
            continue;
        trailing = *p == '/' || (len == 1 && seg[0] == '.') || (len == 2 && !memcmp(seg, "..", 2));
        if (len == 1 && seg[0] == '.')
            continue;
        if (len == 2 && !memcmp(seg, "..", 2)) {
            if (n == 0)
                return 400;
            while (n > 0 && out[n - 1] != '/')
                n--;
            n--; /* the '/' before the dropped segment */
            continue;
        }
        if (n + 1 + len + 2 > cap)
            return 414;
        out[n++] = '/';
        memcpy(out + n, seg, len);
        n += len;
    }
    if (n == 0 || trailing)
        out[n++] = '/';
    out[n] = '\0';
    return 0;
}

int hf_resolve(const char *root, const char *target, hf_target *out)
{
    char decoded[sizeof out->url_path], full[PATH_MAX * 2];
    int r = decode_path(target, decoded, sizeof decoded);
    if (r == 0)
        r = normalise(decoded, out->url_path, sizeof out->url_path);
    if (r)
        return r;
    if ((size_t)snprintf(full, sizeof full, "%s%s", root, out->url_path) >= sizeof full)
        return 414;
    if (!realpath(full, out->file))
        return errno == EACCES ? 403 : errno == ENAMETOOLONG ? 414 : 404;
    size_t rl = strlen(root);
    bool inside = rl == 1 || (strncmp(out->file, root, rl) == 0 && (out->file[rl] == '/' || out->file[rl] == '\0'));
    if (!inside)
        return 403; /* a link leading out of the root ("/" holds everything) */
    if (stat(out->file, &out->st) < 0)
        return 404;
    out->dir = S_ISDIR(out->st.st_mode);
    if (!out->dir && !S_ISREG(out->st.st_mode))
        return 403; /* devices, sockets, fifos: never */
    return 0;
}

/* ---- media types ------------------------------------------------------------- */

typedef struct mime_entry {
    char *ext;
    const char *type;
} mime_entry;

static mime_entry *g_mime;
static size_t g_nmime;
static char **g_types; /* the type strings, owned */
static size_t g_ntypes;

static const mime_entry builtin_types[] = {
    {"css", "text/css"},         {"gif", "image/gif"},        {"htm", "text/html"},
    {"html", "text/html"},       {"ico", "image/vnd.microsoft.icon"}, {"jpeg", "image/jpeg"},
    {"jpg", "image/jpeg"},       {"js", "text/javascript"},   {"json", "application/json"},
    {"mjs", "text/javascript"},  {"mp4", "video/mp4"},        {"pdf", "application/pdf"},
    {"png", "image/png"},        {"svg", "image/svg+xml"},    {"txt", "text/plain"},
    {"wasm", "application/wasm"}, {"webp", "image/webp"},     {"woff2", "font/woff2"},
    {"xml", "application/xml"},  {"zip", "application/zip"},
};

static int cmp_entry(const void *a, const void *b)
{
    return strcmp(((const mime_entry *)a)->ext, ((const mime_entry *)b)->ext);
}

void hf_mime_free(void)
{
    for (size_t i = 0; i < g_nmime; i++)
        free(g_mime[i].ext);
    for (size_t i = 0; i < g_ntypes; i++)
        free(g_types[i]);
    free(g_mime);
    free(g_types);
    g_mime = NULL;
    g_types = NULL;
    g_nmime = g_ntypes = 0;
}

/* Keeps @p type and each extension after it on the line. false when out of memory. */
static bool add_line(char *line, size_t *cap_m, size_t *cap_t)
{
    char *save, *type = strtok_r(line, " \t\r\n", &save);
    if (!type || type[0] == '#' || !strchr(type, '/'))
        return true;
    char *ext = strtok_r(NULL, " \t\r\n", &save);
    if (!ext)
        return true;
    if (g_ntypes == *cap_t) {
        char **t = realloc(g_types, (*cap_t = *cap_t ? *cap_t * 2 : 256) * sizeof *t);
        if (!t)
            return false;
        g_types = t;
    }
    if (!(g_types[g_ntypes] = strdup(type)))
        return false;
    const char *kept = g_types[g_ntypes++];
    for (; ext; ext = strtok_r(NULL, " \t\r\n", &save)) {
        if (g_nmime == *cap_m) {
            mime_entry *m = realloc(g_mime, (*cap_m = *cap_m ? *cap_m * 2 : 1024) * sizeof *m);
            if (!m)
                return false;
            g_mime = m;
        }
        for (char *c = ext; *c; c++)
            *c = (char)tolower((unsigned char)*c);
        if (!(g_mime[g_nmime].ext = strdup(ext)))
            return false;
        g_mime[g_nmime++].type = kept;
    }
    return true;
}

int hf_mime_load(const char *path)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return -1;
    hf_mime_free();
    char line[4096];
    size_t cap_m = 0, cap_t = 0;
    bool ok = true;
    while (ok && fgets(line, sizeof line, f))
        ok = add_line(line, &cap_m, &cap_t);
    fclose(f);
    if (!ok) {
        hf_mime_free();
        return -1;
    }
    qsort(g_mime, g_nmime, sizeof *g_mime, cmp_entry);
    return (int)g_nmime;
}

const char *hf_mime_type(const char *name)
{
    const char *dot = strrchr(name, '.'), *slash = strrchr(name, '/');
    char ext[32];
    size_t n = dot ? strlen(dot + 1) : 0;
    if (!dot || (slash && slash > dot) || n == 0 || n >= sizeof ext)
        return "application/octet-stream";
    for (size_t i = 0; i <= n; i++)
        ext[i] = (char)tolower((unsigned char)dot[1 + i]);
    mime_entry key = {.ext = ext};
    const mime_entry *e = g_nmime ? bsearch(&key, g_mime, g_nmime, sizeof *g_mime, cmp_entry) : NULL;
    if (!e)
        e = bsearch(&key, builtin_types, sizeof builtin_types / sizeof builtin_types[0], sizeof *builtin_types,
                    cmp_entry);
    return e ? e->type : "application/octet-stream";
}

/* ---- dates and validators ------------------------------------------------------ */

static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

void hf_http_date(time_t t, char *buf)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    char tmp[64]; /* room for any int the compiler imagines; the date itself takes 29 */
    snprintf(tmp, sizeof tmp, "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday], tm.tm_mday,
             months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
    memcpy(buf, tmp, HF_DATE_LEN - 1);
    buf[HF_DATE_LEN - 1] = '\0';
}

static int month_index(const char *m)
{
    for (int i = 0; i < 12; i++)
        if (!strncmp(m, months[i], 3))
            return i;
    return -1;
}

bool hf_parse_http_date(const char *s, size_t len, time_t *out)
{
    char buf[64], mon[4] = "", wd[16], tz[4] = "";
    if (len >= sizeof buf)
        return false;
    memcpy(buf, s, len);
    buf[len] = '\0';
    struct tm tm = {0};
    int end = 0;
    /* IMF-fixdate, then RFC 850, then asctime (RFC 9110 5.6.7) */
    if (sscanf(buf, "%3s, %2d %3s %4d %2d:%2d:%2d %3s%n", wd, &tm.tm_mday, mon, &tm.tm_year, &tm.tm_hour, &tm.tm_min,
               &tm.tm_sec, tz, &end) == 8 && !strcmp(tz, "GMT")) {
    } else if (sscanf(buf, "%15[A-Za-z], %2d-%3s-%2d %2d:%2d:%2d %3s%n", wd, &tm.tm_mday, mon, &tm.tm_year,
                      &tm.tm_hour, &tm.tm_min, &tm.tm_sec, tz, &end) == 8 && !strcmp(tz, "GMT")) {
        tm.tm_year += tm.tm_year < 70 ? 2000 : 1900;
    } else if (sscanf(buf, "%3s %3s %2d %2d:%2d:%2d %4d%n", wd, mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min,
                      &tm.tm_sec, &tm.tm_year, &end) == 7) {
    } else {
        return false;
    }
    tm.tm_mon = month_index(mon);
    if (end != (int)len || tm.tm_mon < 0 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 || tm.tm_min > 59 ||
        tm.tm_sec > 60 || tm.tm_year < 1900)
        return false;
    tm.tm_year -= 1900;
    *out = timegm(&tm);
    return true;
}

void hf_etag(const struct stat *st, char *buf)
{
    snprintf(buf, HF_ETAG_LEN, "\"%llx-%llx\"", (unsigned long long)st->st_mtime, (unsigned long long)st->st_size);
}

bool hf_etag_listed(const char *v, size_t len, const char *etag)
{
    size_t i = 0, elen = strlen(etag);
    while (i < len) {
        while (i < len && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        if (i < len && v[i] == '*')
            return true;
        if (i + 2 <= len && v[i] == 'W' && v[i + 1] == '/')
            i += 2; /* weak comparison: W/ does not matter */
        size_t start = i;
        if (i < len && v[i] == '"')
            for (i++; i < len && v[i] != '"'; i++)
                ;
        if (i < len)
            i++; /* the closing quote */
        if (i - start == elen && !memcmp(v + start, etag, elen))
            return true;
        while (i < len && v[i] != ',')
            i++;
    }
    return false;
}

/* ---- ranges ---------------------------------------------------------------------- */

/* Digits at *p..end into *out; false on none or overflow. */
static bool read_u64(const char **p, const char *end, uint64_t *out)
{
    const char *s = *p;
    uint64_t v = 0;
    while (s < end && isdigit((unsigned char)*s)) {
        if (v > (UINT64_MAX - 9) / 10)
            return false;
        v = v * 10 + (uint64_t)(*s++ - '0');
    }
    if (s == *p)
        return false;
    *p = s;
    *out = v;
    return true;
}

hf_range_kind hf_parse_range(const char *v, size_t len, uint64_t size, uint64_t *first, uint64_t *last)
{
    const char *p = v, *end = v + len;
    while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    if (len < 6 || strncasecmp(p, "bytes=", 6) != 0 || memchr(p, ',', len))
        return HF_RANGE_NONE; /* another unit, or several ranges: the whole file */
    p += 6;
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    uint64_t a = 0, b = UINT64_MAX;
    if (p < end && *p == '-') { /* the last b bytes */
        p++;
        if (!read_u64(&p, end, &b) || p != end)
            return HF_RANGE_NONE;
        if (b == 0 || size == 0)
            return HF_RANGE_UNSATISFIABLE;
        *first = size > b ? size - b : 0;
        *last = size - 1;
        return HF_RANGE_ONE;
    }
    if (!read_u64(&p, end, &a) || p == end || *p++ != '-')
        return HF_RANGE_NONE;
    if (p != end && (!read_u64(&p, end, &b) || p != end || b < a))
        return HF_RANGE_NONE; /* malformed: ignored, as RFC 9110 14.2 allows */
    if (a >= size)
        return HF_RANGE_UNSATISFIABLE;
    *first = a;
    *last = b < size - 1 ? b : size - 1;
    return HF_RANGE_ONE;
}

/* ---- listings -------------------------------------------------------------------- */

size_t hf_html_escape(const char *s, char *out, size_t cap)
{
    size_t n = 0, kept = 0; /* kept: what fits whole */
    for (; *s; s++) {
        const char *rep = *s == '&' ? "&amp;" : *s == '<' ? "&lt;" : *s == '>' ? "&gt;" : *s == '"' ? "&quot;"
                          : *s == '\'' ? "&#39;" : NULL;
        size_t l = rep ? strlen(rep) : 1;
        if (kept == n && n + l < cap) {
            memcpy(out + n, rep ? rep : s, l);
            kept += l;
        }
        n += l;
    }
    if (cap)
        out[kept] = '\0';
    return n;
}

typedef struct sbuf {
    char *p;
    size_t len, cap;
    bool failed;
} sbuf;

static void sb_add(sbuf *b, const char *s, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->failed = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_str(sbuf *b, const char *s) { sb_add(b, s, strlen(s)); }

static void sb_escaped(sbuf *b, const char *s)
{
    char small[512];
    size_t n = hf_html_escape(s, small, sizeof small);
    if (n < sizeof small) {
        sb_add(b, small, n);
        return;
    }
    char *big = malloc(n + 1);
    if (!big) {
        b->failed = true;
        return;
    }
    hf_html_escape(s, big, n + 1);
    sb_add(b, big, n);
    free(big);
}

/* A path segment percent-encoded for an href (everything but RFC 3986's unreserved characters). */
static void sb_url_segment(sbuf *b, const char *s)
{
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        char enc[4];
        if (isalnum(ch) || ch == '-' || ch == '.' || ch == '_' || ch == '~') {
            sb_add(b, (const char *)&ch, 1);
        } else {
            snprintf(enc, sizeof enc, "%%%02X", ch);
            sb_add(b, enc, 3);
        }
    }
}

typedef struct entry {
    char *name;
    struct stat st;
    bool ok, dir;
} entry;

static int cmp_dirent(const void *a, const void *b)
{
    const entry *x = a, *y = b;
    if (x->dir != y->dir)
        return x->dir ? -1 : 1;
    return strcmp(x->name, y->name);
}

static void sb_row(sbuf *b, const entry *e)
{
    char line[128], when[32] = "-";
    sb_str(b, "<tr><td><a href=\"");
    sb_url_segment(b, e->name);
    sb_str(b, e->dir ? "/\">" : "\">");
    sb_escaped(b, e->name);
    sb_str(b, e->dir ? "/</a></td>" : "</a></td>");
    if (e->ok) {
        struct tm tm;
        gmtime_r(&e->st.st_mtime, &tm);
        strftime(when, sizeof when, "%Y-%m-%d %H:%M", &tm);
    }
    if (e->ok && !e->dir)
        snprintf(line, sizeof line, "<td align=\"right\">%lld</td><td>%s</td></tr>\n", (long long)e->st.st_size, when);
    else
        snprintf(line, sizeof line, "<td align=\"right\">-</td><td>%s</td></tr>\n", when);
    sb_str(b, line);
}

/* The entries of @p dir but "." and "..", or NULL (errno set). */
static entry *read_entries(const char *dir, size_t *count)
{
    DIR *d = opendir(dir);
    if (!d)
        return NULL;
    entry *v = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        if (n == cap) {
            entry *nv = realloc(v, (cap = cap ? cap * 2 : 64) * sizeof *v);
            if (!nv)
                break;
            v = nv;
        }
        entry *e = &v[n];
        if (!(e->name = strdup(de->d_name)))
            break;
        e->ok = fstatat(dirfd(d), de->d_name, &e->st, 0) == 0;
        e->dir = e->ok && S_ISDIR(e->st.st_mode);
        n++;
    }
    closedir(d);
    *count = n;
    return v ? v : calloc(1, sizeof *v);
}

char *hf_listing(const char *dir, const char *url_path, size_t *len)
{
    size_t n = 0;
    entry *v = read_entries(dir, &n);
    if (!v)
        return NULL;
    qsort(v, n, sizeof *v, cmp_dirent);
    sbuf b = {0};
    sb_str(&b, "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Index of ");
    sb_escaped(&b, url_path);
    sb_str(&b, "</title></head>\n<body><h1>Index of ");
    sb_escaped(&b, url_path);
    sb_str(&b, "</h1>\n<table>\n<tr><th>Name</th><th>Size</th><th>Modified (UTC)</th></tr>\n");
    if (strcmp(url_path, "/") != 0)
        sb_str(&b, "<tr><td><a href=\"../\">../</a></td><td></td><td></td></tr>\n");
    for (size_t i = 0; i < n; i++) {
        sb_row(&b, &v[i]);
        free(v[i].name);
    }
    free(v);
    sb_str(&b, "</table>\n</body></html>\n");
    if (b.failed) {
        free(b.p);
        errno = ENOMEM;
        return NULL;
    }
    *len = b.len;
    return b.p;
}
