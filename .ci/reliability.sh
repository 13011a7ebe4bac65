#!/usr/bin/env bash
# .ci/reliability.sh -- the reliability sections of CI, after `make test`:
#
#   fuzz      every libFuzzer target (tests/fuzz) for FUZZ_SECONDS each (60)
#   valgrind  the unit suite, non-sanitized, under memcheck: 0 errors, 0 lost
#   tsan      a ThreadSanitizer build running the tests that use threads
#   soak      tests/soak.sh against echo_server and http_server (SOAK_SECONDS)
#
#   .ci/reliability.sh [all|fuzz|valgrind|tsan|soak]...   (default: all)
#
# Each section prints its time; any failure fails the script. `make fuzz`,
# `make valgrind`, `make tsan` and `make soak` run one section each.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
JOBS="${JOBS:-2}"
START=$(date +%s)
TIMES=()

# Under valgrind (20-50x slower) these tests fail on their own time bounds,
# not on memory errors (seen: a 10 s await, a periodic schedule, wake-up
# counts, a 30 s pump, a handshake deadline window, 100 MiB each way in
# 110 s, a file past 2 GiB in 25 s); they run in `make test` under ASan with
# their real bounds:
#   test_fairness test_iostream_timeouts test_ioloop test_ioloop_adversarial
#   test_iostream test_iostream_core test_ssl_transport test_tcpserver
#   test_ssl_bulk test_write_file
VALGRIND_EXCLUDE="${VALGRIND_EXCLUDE:-^(test_fairness|test_iostream_timeouts|test_ioloop|test_ioloop_adversarial|test_iostream|test_iostream_core|test_ssl_transport|test_tcpserver|test_ssl_bulk|test_write_file)$}"
# The model test's seed count under valgrind (it runs 8,000 by default: 220 s).
VALGRIND_MODEL_SEEDS="${VALGRIND_MODEL_SEEDS:-1000}"
# Tests that start threads or use the loop across threads: cross-thread
# add_callback, the executor, the resolver (thread pool), signals, process,
# the fairness test's flooding thread, and the loop-abuse tests (4 threads
# adding callbacks, a signal storm from another thread).
TSAN_TESTS="${TSAN_TESTS:-^(test_adversarial_loop|test_fairness|test_ioloop|test_ioloop_adversarial|test_ioloop_defects|test_netutil|test_tcpclient|test_process|test_halfclose)$}"

section_begin() {
    SECTION="$1"
    SECTION_START=$(date +%s)
    printf '\n== [%4ds] reliability: %s\n' "$(( SECTION_START - START ))" "$SECTION"
}
section_end() {
    local took=$(( $(date +%s) - SECTION_START ))
    TIMES+=("$(printf '%-9s %4ds' "$SECTION" "$took")")
    printf '== %s: %ds\n' "$SECTION" "$took"
}

run_fuzz() {
    section_begin fuzz
    make --no-print-directory fuzz FUZZ_SECONDS="${FUZZ_SECONDS:-60}" JOBS="$JOBS"
    section_end
}

run_valgrind() {
    section_begin valgrind
    local b="${VALGRIND_BUILD_DIR:-build-valgrind}"
    local vg="valgrind;--error-exitcode=99;--leak-check=full;--show-leak-kinds=definite,indirect,possible"
    vg+=";--errors-for-leak-kinds=definite,indirect,possible;--track-fds=no;--num-callers=30"
    vg+=";--suppressions=$ROOT/scripts/valgrind.supp;--gen-suppressions=all"
    cmake -S . -B "$b" -DCMAKE_BUILD_TYPE=Debug -DTS_SANITIZE=OFF \
        -DTS_BUILD_EXAMPLES=OFF -DTS_BUILD_BENCH=OFF "-DCMAKE_CROSSCOMPILING_EMULATOR=$vg" >/dev/null
    nice cmake --build "$b" -j"$JOBS" >/dev/null
    echo "excluded (time bounds too tight under valgrind): $VALGRIND_EXCLUDE"
    # Valgrind slows the tests down: more time each (ctest's TIMEOUT is per test).
    TS_MODEL_SEEDS="$VALGRIND_MODEL_SEEDS" nice ctest --test-dir "$b" -L unit -E "$VALGRIND_EXCLUDE" -j"$JOBS" --timeout 600 \
        --output-on-failure 2>&1 | tee "$b/valgrind.log" | grep -E '^ *[0-9]+/[0-9]+ Test|tests passed|FAILED|==[0-9]+== (ERROR SUMMARY|.*lost)' || true
    local n; n=$(grep -c ' Passed ' "$b/valgrind.log" || true)
    echo "valgrind: $n tests passed under memcheck"
    grep -q '100% tests passed' "$b/valgrind.log"
    section_end
}

run_tsan() {
    section_begin tsan
    local b="${TSAN_BUILD_DIR:-build-tsan}"
    CC=clang cmake -S . -B "$b" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTS_SANITIZE=OFF \
        -DCMAKE_C_FLAGS="-fsanitize=thread -g -O1" -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=thread" \
        -DCMAKE_SHARED_LINKER_FLAGS="-fsanitize=thread" \
        -DTS_BUILD_EXAMPLES=OFF -DTS_BUILD_BENCH=OFF >/dev/null
    nice cmake --build "$b" -j"$JOBS" >/dev/null
    echo "tests: $TSAN_TESTS"
    TSAN_OPTIONS="halt_on_error=1 exitcode=66 second_deadlock_stack=1" \
        nice ctest --test-dir "$b" -R "$TSAN_TESTS" -j"$JOBS" --output-on-failure 2>&1 | tee "$b/tsan.log" \
        | grep -E '^ *[0-9]+/[0-9]+ Test|tests passed|FAILED|WARNING: ThreadSanitizer' || true
    if grep -q 'WARNING: ThreadSanitizer' "$b/tsan.log"; then
        echo "tsan: reports found (see $b/tsan.log)" >&2
        return 1
    fi
    grep -q '100% tests passed' "$b/tsan.log"
    echo "tsan: $(grep -c ' Passed ' "$b/tsan.log") tests, 0 reports"
    section_end
}

run_soak() {
    section_begin soak
    make --no-print-directory build JOBS="$JOBS" >/dev/null
    TS_SOAK=1 TS_BUILD_DIR="$ROOT/build" SOAK_SECONDS="${SOAK_SECONDS:-60}" bash tests/soak.sh
    section_end
}

sections=("$@")
[[ ${#sections[@]} -eq 0 ]] && sections=(all)
for s in "${sections[@]}"; do
    case "$s" in
        all) run_fuzz; run_valgrind; run_tsan; run_soak ;;
        fuzz) run_fuzz ;;
        valgrind) run_valgrind ;;
        tsan) run_tsan ;;
        soak) run_soak ;;
        *) echo "usage: $0 [all|fuzz|valgrind|tsan|soak]..." >&2; exit 2 ;;
    esac
done
printf '\nreliability: section times\n'
printf '  %s\n' "${TIMES[@]}"
printf '  %-9s %4ds\n' total "$(( $(date +%s) - START ))"
