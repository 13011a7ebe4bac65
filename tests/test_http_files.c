/*
 * examples/http_files.c as plain functions: targets mapped under a root
 * (decoding, "..", links), byte ranges, HTTP-dates, entity-tag lists, media
 * types and listings. The files live in a temporary directory.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "http_files.h"

static char g_root[PATH_MAX], g_outside[PATH_MAX];

static void put(const char *rel, const char *text)
{
    char p[PATH_MAX * 2];
    snprintf(p, sizeof p, "%s/%s", g_root, rel);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int setup(void **state)
{
    (void)state;
    char tmpl[] = "/tmp/ts_http_files_XXXXXX", otmpl[] = "/tmp/ts_http_out_XXXXXX";
    assert_non_null(mkdtemp(tmpl));
    assert_non_null(mkdtemp(otmpl));
    assert_non_null(realpath(tmpl, g_root));
    assert_non_null(realpath(otmpl, g_outside));
    char p[PATH_MAX * 2], q[PATH_MAX * 2];
    snprintf(p, sizeof p, "%s/sub", g_root);
    assert_int_equal(mkdir(p, 0755), 0);
    put("sub/a.txt", "a");
    put("b&<c>.html", "b");
    snprintf(p, sizeof p, "%s/secret", g_outside);
    FILE *f = fopen(p, "w");
    fclose(f);
    snprintf(q, sizeof q, "%s/out", g_root);
    assert_int_equal(symlink(p, q), 0);
    snprintf(q, sizeof q, "%s/in", g_root);
    assert_int_equal(symlink("sub/a.txt", q), 0);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[PATH_MAX * 3];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s'", g_root, g_outside);
    assert_int_equal(system(cmd), 0);
    return 0;
}

static void expect_resolves(const char *target, const char *url_path, const char *rel_file, bool dir)
{
    hf_target t;
    char want[PATH_MAX * 2];
    int r = hf_resolve(g_root, target, &t);
    if (r)
        fail_msg("%s: status %d", target, r);
    assert_string_equal(t.url_path, url_path);
    snprintf(want, sizeof want, "%s%s", g_root, rel_file);
    assert_string_equal(t.file, want);
    assert_int_equal(t.dir, dir);
}

static void expect_status(const char *target, int status)
{
    hf_target t;
    int r = hf_resolve(g_root, target, &t);
    if (r != status)
        fail_msg("%s: status %d, expected %d", target, r, status);
}

static void test_resolve(void **state)
{
    (void)state;
    expect_resolves("/sub/a.txt", "/sub/a.txt", "/sub/a.txt", false);
    expect_resolves("/sub/a.txt?x=/../..", "/sub/a.txt", "/sub/a.txt", false);
    expect_resolves("/%73ub/./a.txt", "/sub/a.txt", "/sub/a.txt", false);
    expect_resolves("/sub/../sub//a.txt", "/sub/a.txt", "/sub/a.txt", false);
    expect_resolves("/b%26%3Cc%3E.html", "/b&<c>.html", "/b&<c>.html", false);
    expect_resolves("/", "/", "", true);
    expect_resolves("/sub", "/sub", "/sub", true);
    expect_resolves("/sub/", "/sub/", "/sub", true);
    expect_resolves("/sub/.", "/sub/", "/sub", true);
    expect_resolves("/sub/x/..", "/sub/", "/sub", true); /* normalised before the file system is asked */
    expect_resolves("/in", "/in", "/sub/a.txt", false);  /* a link inside the root */
    expect_status("/..", 400);
    expect_status("/../etc/passwd", 400);
    expect_status("/sub/../../etc/passwd", 400);
    expect_status("/sub/%2e%2e/%2E%2E/x", 400);
    expect_status("/a%00b", 400);
    expect_status("/a%zz", 400);
    expect_status("/a%4", 400);
    expect_status("relative", 400);
    expect_status("/out", 403); /* a link leading outside */
    expect_status("/nope", 404);
    expect_status("/sub/a.txt/", 404);
    hf_target t;
    assert_int_equal(hf_resolve("/", "/tmp", &t), 0); /* --root / */
    assert_true(t.dir);
    char longp[5000];
    memset(longp, 'a', sizeof longp - 1);
    longp[0] = '/';
    longp[sizeof longp - 1] = '\0';
    expect_status(longp, 414);
}

static void expect_range(const char *v, uint64_t size, hf_range_kind kind, uint64_t first, uint64_t last)
{
    uint64_t f = 12345, l = 12345;
    hf_range_kind k = hf_parse_range(v, strlen(v), size, &f, &l);
    if (k != kind)
        fail_msg("'%s' over %llu: kind %d, expected %d", v, (unsigned long long)size, k, kind);
    if (k == HF_RANGE_ONE && (f != first || l != last))
        fail_msg("'%s': %llu-%llu, expected %llu-%llu", v, (unsigned long long)f, (unsigned long long)l,
                 (unsigned long long)first, (unsigned long long)last);
}

static void test_ranges(void **state)
{
    (void)state;
    expect_range("bytes=0-0", 10, HF_RANGE_ONE, 0, 0);
    expect_range("bytes=2-5", 10, HF_RANGE_ONE, 2, 5);
    expect_range("BYTES= 2-5 ", 10, HF_RANGE_ONE, 2, 5);
    expect_range("bytes=2-", 10, HF_RANGE_ONE, 2, 9);
    expect_range("bytes=2-99", 10, HF_RANGE_ONE, 2, 9);
    expect_range("bytes=-3", 10, HF_RANGE_ONE, 7, 9);
    expect_range("bytes=-30", 10, HF_RANGE_ONE, 0, 9);
    expect_range("bytes=3000000000-", 5000000000ull, HF_RANGE_ONE, 3000000000ull, 4999999999ull);
    expect_range("bytes=10-", 10, HF_RANGE_UNSATISFIABLE, 0, 0);
    expect_range("bytes=10-20", 10, HF_RANGE_UNSATISFIABLE, 0, 0);
    expect_range("bytes=-0", 10, HF_RANGE_UNSATISFIABLE, 0, 0);
    expect_range("bytes=0-", 0, HF_RANGE_UNSATISFIABLE, 0, 0);
    expect_range("bytes=-5", 0, HF_RANGE_UNSATISFIABLE, 0, 0);
    expect_range("bytes=5-2", 10, HF_RANGE_NONE, 0, 0);
    expect_range("bytes=0-1,3-4", 10, HF_RANGE_NONE, 0, 0);
    expect_range("bytes=a-b", 10, HF_RANGE_NONE, 0, 0);
    expect_range("bytes=1-2x", 10, HF_RANGE_NONE, 0, 0);
    expect_range("bytes=-", 10, HF_RANGE_NONE, 0, 0);
    expect_range("bytes=", 10, HF_RANGE_NONE, 0, 0);
    expect_range("items=1-2", 10, HF_RANGE_NONE, 0, 0);
    expect_range("bytes=99999999999999999999-", 10, HF_RANGE_NONE, 0, 0);
}

static void test_dates(void **state)
{
    (void)state;
    char buf[HF_DATE_LEN];
    hf_http_date(784111777, buf);
    assert_string_equal(buf, "Sun, 06 Nov 1994 08:49:37 GMT");
    time_t t = 0;
    assert_true(hf_parse_http_date(buf, strlen(buf), &t));
    assert_int_equal(t, 784111777);
    const char *rfc850 = "Sunday, 06-Nov-94 08:49:37 GMT", *asc = "Sun Nov  6 08:49:37 1994";
    assert_true(hf_parse_http_date(rfc850, strlen(rfc850), &t));
    assert_int_equal(t, 784111777);
    assert_true(hf_parse_http_date(asc, strlen(asc), &t));
    assert_int_equal(t, 784111777);
    const char *bad[] = {"", "yesterday", "Sun, 06 Nov 1994 08:49:37 UTC", "Sun, 06 Xyz 1994 08:49:37 GMT",
                         "Sun, 06 Nov 1994 25:49:37 GMT", "Sun, 06 Nov 1994 08:49:37 GMT trailing"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_false(hf_parse_http_date(bad[i], strlen(bad[i]), &t));
}

static void test_etags(void **state)
{
    (void)state;
    struct stat st = {0};
    st.st_mtime = 0x5f5e100;
    st.st_size = 0x2a;
    char e[HF_ETAG_LEN];
    hf_etag(&st, e);
    assert_string_equal(e, "\"5f5e100-2a\"");
    const char *yes[] = {"\"5f5e100-2a\"", "*", "W/\"5f5e100-2a\"", "\"x\", \"5f5e100-2a\"", "\"x\",W/\"5f5e100-2a\" "};
    const char *no[] = {"", "\"x\"", "5f5e100-2a", "\"5f5e100-2a", "\"5f5e100-2ab\"", "W/\"x\", \"y\""};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++)
        if (!hf_etag_listed(yes[i], strlen(yes[i]), e))
            fail_msg("'%s' should match", yes[i]);
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
        if (hf_etag_listed(no[i], strlen(no[i]), e))
            fail_msg("'%s' should not match", no[i]);
}

static void test_mime(void **state)
{
    (void)state;
    hf_mime_free();
    assert_string_equal(hf_mime_type("a.html"), "text/html"); /* built in */
    assert_string_equal(hf_mime_type("A.PNG"), "image/png");
    assert_string_equal(hf_mime_type("noext"), "application/octet-stream");
    assert_string_equal(hf_mime_type("dir.d/noext"), "application/octet-stream");
    assert_string_equal(hf_mime_type("x.unknownext"), "application/octet-stream");
    char p[PATH_MAX * 2];
    snprintf(p, sizeof p, "%s/types", g_root);
    FILE *f = fopen(p, "w");
    fputs("# comment\ntext/x-one one ONE2\n\napplication/x-lonely\nimage/x-png png\n", f);
    fclose(f);
    assert_int_equal(hf_mime_load(p), 3);
    assert_string_equal(hf_mime_type("f.one"), "text/x-one");
    assert_string_equal(hf_mime_type("f.one2"), "text/x-one");
    assert_string_equal(hf_mime_type("f.png"), "image/x-png");   /* the file wins */
    assert_string_equal(hf_mime_type("f.css"), "text/css");      /* the fallback fills in */
    assert_int_equal(hf_mime_load("/nonexistent/types"), -1);
    assert_string_equal(hf_mime_type("f.one"), "text/x-one");    /* a failed load keeps the table */
    hf_mime_free();
}

static void test_listing(void **state)
{
    (void)state;
    char escaped[64];
    const char *want = "&lt;a href=&#39;x&#39;&gt;&amp;&quot;";
    assert_int_equal(hf_html_escape("<a href='x'>&\"", escaped, sizeof escaped), strlen(want));
    assert_string_equal(escaped, want);
    assert_int_equal(hf_html_escape("<<<<", escaped, 6), 16);
    assert_string_equal(escaped, "&lt;"); /* cut, terminated */

    size_t len = 0;
    char *html = hf_listing(g_root, "/<root>/", &len);
    assert_non_null(html);
    assert_int_equal(strlen(html), len);
    assert_non_null(strstr(html, "<title>Index of /&lt;root&gt;/</title>"));
    assert_non_null(strstr(html, "href=\"../\""));
    char *sub = strstr(html, "href=\"sub/\""), *b = strstr(html, "href=\"b%26%3Cc%3E.html\">b&amp;&lt;c&gt;.html</a>");
    char *in = strstr(html, "href=\"in\""), *out = strstr(html, "href=\"out\"");
    assert_non_null(sub);
    assert_non_null(b);
    assert_non_null(in);
    assert_non_null(out);
    assert_true(sub < b && b < in && in < out); /* directories first, then by name */
    free(html);
    html = hf_listing(g_root, "/", &len);
    assert_null(strstr(html, "href=\"../\"")); /* no parent above the root */
    free(html);
    assert_null(hf_listing("/nonexistent/dir", "/x/", &len));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resolve), cmocka_unit_test(test_ranges), cmocka_unit_test(test_dates),
        cmocka_unit_test(test_etags),   cmocka_unit_test(test_mime),   cmocka_unit_test(test_listing),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
