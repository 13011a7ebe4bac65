/* Private declarations shared between the library's source files. */
#ifndef TSTREAM_INTERNAL_H
#define TSTREAM_INTERNAL_H

#include "tstream/common.h"
#include "tstream/future.h"
#include "tstream/ioloop.h"

#define TS__UNUSED(x) ((void)(x))
#define TS__ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define TS__MIN(a, b) ((a) < (b) ? (a) : (b))
#define TS__MAX(a, b) ((a) > (b) ? (a) : (b))

/* Allocation shortcuts: every allocation in the library goes through these. */
#define ts__malloc(n) ts_malloc(n)
#define ts__realloc(p, n) ts_realloc((p), (n))
#define ts__free(p) ts_free(p)
void *ts__calloc(size_t n, size_t size);
char *ts__strdup(const char *s);

/* Reads the monotonic clock without a loop (seconds). */
double ts__monotonic(void);

#endif /* TSTREAM_INTERNAL_H */
