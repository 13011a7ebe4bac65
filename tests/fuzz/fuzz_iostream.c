/*
 * libFuzzer harness for the stream core: the model of
 * tests/test_iostream_model.c (included below), driven by fuzz input instead
 * of a seeded generator. Not part of the ctest run (CMake only globs
 * tests/test_<name>.c and tests/<name>.sh).
 *
 * Build and run (from the repository root, after `make test` generated
 * build-test/include/tstream/version.h; needs clang and libclang-rt-14-dev):
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -DPCRE2_CODE_UNIT_WIDTH=8 \
 *     -Iinclude -Ibuild-test/include -Isrc -Itests/support -o /tmp/fuzz_iostream tests/fuzz/fuzz_iostream.c \
 *     src/common.c src/executor.c src/future.c src/ioloop.c src/ioloop_timer.c \
 *     src/iostream.c src/iostream_read.c src/iostream_regex.c src/iostream_write.c \
 *     src/iostream_future.c src/iostream_socket.c src/iostream_pipe.c src/readbuf.c \
 *     src/writebuf.c -lev -lpcre2-8 -lpthread
 *   mkdir -p /tmp/fuzz_corpus && /tmp/fuzz_iostream -max_total_time=300 /tmp/fuzz_corpus
 * A crash file replays with: /tmp/fuzz_iostream crash-<hash>. Turn each one
 * into a deterministic case in tests/test_iostream_model.c.
 */
#define TS_MODEL_FUZZ 1
#include "../test_iostream_model.c"

static void fz_quiet(ts_log_level level, const char *msg, void *arg)
{
    (void)level, (void)msg, (void)arg;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    ts_log_set_handler(fz_quiet, NULL, TS_LOG_ERROR);
    /* Byte 0: transport (mostly the user transport: it also injects errors); the rest steers every choice. */
    bool use_mock = (data[0] & 3) != 0;
    ts_ioloop *loop = ts_ioloop_new();
    run_session(loop, data[1], data + 2, size - 2, use_mock);
    ts_ioloop_free(loop, false);
    return 0;
}
