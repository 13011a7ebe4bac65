/* libFuzzer target: examples/http_parse.c on request heads and chunked request bodies (see fuzz_http.h). */
#include "fuzz_http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fz_run(true, data, size);
}
