#!/usr/bin/env bash
# tests/fuzz/http/build.sh [OUTDIR] -- builds the libFuzzer targets for
# examples/http_parse.c with clang directly (no CMake configure needed):
#   OUTDIR/fuzz_http_request, OUTDIR/fuzz_http_response   (default: build-fuzz/http)
# Run one:  OUTDIR/fuzz_http_request -max_total_time=60 NEWDIR tests/fuzz/http/corpus/fuzz_http_request
# A crash file replays with: OUTDIR/fuzz_http_request crash-<hash>
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../../.." && pwd)
OUT=${1:-$ROOT/build-fuzz/http}
CC=${FUZZ_CC:-clang}
mkdir -p "$OUT"
for t in fuzz_http_request fuzz_http_response; do
    "$CC" -std=c11 -D_GNU_SOURCE -g -O1 -fno-omit-frame-pointer -Wall -Wextra -Werror \
        -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
        -I"$ROOT/examples" -o "$OUT/$t" "$HERE/$t.c" "$ROOT/examples/http_parse.c"
done
echo "built: $OUT/fuzz_http_request $OUT/fuzz_http_response"
