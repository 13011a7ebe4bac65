/*
 * Command-line checks shared by the example programs: a bad argument is a
 * usage error (exit status 2) whose message names it, never a value quietly
 * replaced by a default ("abc" read as port 0) or cut short ("18451x" read
 * as 18451). Header-only: each example is one .c file.
 */
#ifndef TS_EXAMPLE_ARGS_H
#define TS_EXAMPLE_ARGS_H

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/** Exit status of a usage error. */
#define EX_USAGE_STATUS 2

/*
 * The name a program was run as, for its usage and error lines: the last
 * part of argv[0] ("tstream-http-client" when installed, "http_client" in the
 * build tree), or @p fallback when argv[0] is missing or empty.
 */
static inline const char *ex_prog_name(int argc, char **argv, const char *fallback)
{
    if (argc < 1 || !argv[0] || !argv[0][0])
        return fallback;
    const char *slash = strrchr(argv[0], '/');
    return slash && slash[1] ? slash + 1 : argv[0];
}

/* ex_usage_error() with a va_list, for a program's own variadic wrapper. */
static inline int ex_usage_verror(const char *prog, const char *fmt, va_list ap)
{
    fprintf(stderr, "%s: ", prog);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\nTry '%s --help'.\n", prog);
    return EX_USAGE_STATUS;
}

/* Prints "PROG: message" and a pointer to --help on stderr; returns EX_USAGE_STATUS. */
static inline int ex_usage_error(const char *prog, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    ex_usage_verror(prog, fmt, ap);
    va_end(ap);
    return EX_USAGE_STATUS;
}

/* A whole decimal integer in [min, max]. Returns 0, or -1 after reporting it. */
static inline int ex_parse_int(const char *prog, const char *what, const char *s, long min, long max, int *out)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (!*s || *end || errno == ERANGE || v < min || v > max) {
        ex_usage_error(prog, "invalid %s '%s' (a whole number from %ld to %ld)", what, s, min, max);
        return -1;
    }
    *out = (int)v;
    return 0;
}

/* A TCP port: 1..65535, or 0 for a free port the kernel picks. */
static inline int ex_parse_port(const char *prog, const char *s, int *out)
{
    return ex_parse_int(prog, "port", s, 0, 65535, out);
}

/* A finite number of seconds > 0. Returns 0, or -1 after reporting it. */
static inline int ex_parse_seconds(const char *prog, const char *what, const char *s, double *out)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (!*s || *end || errno == ERANGE || !isfinite(v) || !(v > 0)) {
        ex_usage_error(prog, "invalid %s '%s' (a number of seconds > 0)", what, s);
        return -1;
    }
    *out = v;
    return 0;
}

/* The value of option argv[*i] (argv[*i + 1]), or NULL after reporting that it is missing. */
static inline const char *ex_option_value(const char *prog, int argc, char **argv, int *i)
{
    if (*i + 1 >= argc) {
        ex_usage_error(prog, "option '%s' needs a value", argv[*i]);
        return NULL;
    }
    return argv[++*i];
}

/* Whether @p path is a directory; reports it otherwise. */
static inline int ex_check_directory(const char *prog, const char *what, const char *path)
{
    struct stat st;
    if (stat(path, &st) < 0) {
        ex_usage_error(prog, "%s '%s': %s", what, path, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) {
        ex_usage_error(prog, "%s '%s' is not a directory", what, path);
        return -1;
    }
    return 0;
}

#endif /* TS_EXAMPLE_ARGS_H */
