/*
 * libFuzzer harness for the stream core: the model of
 * tests/test_iostream_model.c (included below), driven by fuzz input instead
 * of a seeded generator.
 *
 * Built with -DTS_FUZZ=ON (see tests/fuzz/CMakeLists.txt); `make fuzz`
 * runs it with the other targets, FUZZ_TARGETS=fuzz_iostream alone.
 * A crash file replays with: build-fuzz/fuzz/fuzz_iostream <file>. Turn each one
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
