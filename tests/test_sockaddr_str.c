/* ts_sockaddr_str(): every family it knows, the port, scopes, truncation and bad input. */
#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cmocka.h>

#include "tstream.h"

static void expect(const void *sa, size_t sl, const char *want)
{
    char buf[TS_SOCKADDR_STRLEN];
    memset(buf, 'x', sizeof buf);
    int n = ts_sockaddr_str(sa, sl, buf, sizeof buf);
    assert_string_equal(buf, want);
    assert_int_equal(n, (int)strlen(want));
}

static void test_ipv4(void **state)
{
    (void)state;
    struct sockaddr_in in = {.sin_family = AF_INET, .sin_port = htons(8080)};
    inet_pton(AF_INET, "127.0.0.1", &in.sin_addr);
    expect(&in, sizeof in, "127.0.0.1:8080");
    in.sin_port = 0;
    inet_pton(AF_INET, "10.200.3.44", &in.sin_addr);
    expect(&in, sizeof in, "10.200.3.44:0");
}

static void test_ipv6(void **state)
{
    (void)state;
    struct sockaddr_in6 in6 = {.sin6_family = AF_INET6, .sin6_port = htons(443)};
    inet_pton(AF_INET6, "::1", &in6.sin6_addr);
    expect(&in6, sizeof in6, "[::1]:443");
    inet_pton(AF_INET6, "fe80::1", &in6.sin6_addr);
    in6.sin6_scope_id = if_nametoindex("lo");
    assert_true(in6.sin6_scope_id > 0);
    expect(&in6, sizeof in6, "[fe80::1%lo]:443");
    in6.sin6_scope_id = 999999; /* no such interface: the number */
    expect(&in6, sizeof in6, "[fe80::1%999999]:443");
    /* The longest form fits in TS_SOCKADDR_STRLEN. */
    inet_pton(AF_INET6, "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255", &in6.sin6_addr);
    in6.sin6_port = htons(65535);
    char buf[TS_SOCKADDR_STRLEN];
    int n = ts_sockaddr_str((struct sockaddr *)&in6, sizeof in6, buf, sizeof buf);
    assert_true(n > 0 && n < (int)sizeof buf);
}

static void test_unix(void **state)
{
    (void)state;
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    strcpy(un.sun_path, "/run/app.sock");
    expect(&un, offsetof(struct sockaddr_un, sun_path) + strlen(un.sun_path) + 1, "/run/app.sock");
    expect(&un, sizeof un, "/run/app.sock");
    memcpy(un.sun_path, "\0hidden", 7);
    expect(&un, offsetof(struct sockaddr_un, sun_path) + 7, "@hidden");
    expect(&un, offsetof(struct sockaddr_un, sun_path), "(unnamed)");
}

static void test_truncation_and_errors(void **state)
{
    (void)state;
    struct sockaddr_in in = {.sin_family = AF_INET, .sin_port = htons(80)};
    inet_pton(AF_INET, "192.168.100.200", &in.sin_addr);
    char small[8];
    /* As snprintf: the whole length comes back, the text is cut and terminated. */
    assert_int_equal(ts_sockaddr_str((struct sockaddr *)&in, sizeof in, small, sizeof small), 18);
    assert_string_equal(small, "192.168");
    char buf[TS_SOCKADDR_STRLEN];
    assert_int_equal(ts_sockaddr_str(NULL, 0, buf, sizeof buf), TS_EINVAL);
    assert_string_equal(buf, "?");
    assert_int_equal(ts_sockaddr_str((struct sockaddr *)&in, sizeof in - 1, buf, sizeof buf), TS_EINVAL);
    struct sockaddr other = {.sa_family = AF_APPLETALK};
    assert_int_equal(ts_sockaddr_str(&other, sizeof other, buf, sizeof buf), TS_EINVAL);
    assert_string_equal(buf, "?");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ipv4),
        cmocka_unit_test(test_ipv6),
        cmocka_unit_test(test_unix),
        cmocka_unit_test(test_truncation_and_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
