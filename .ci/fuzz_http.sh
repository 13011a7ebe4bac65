#!/usr/bin/env bash
# .ci/fuzz_http.sh [SECONDS] -- a bounded libFuzzer run of each HTTP parser
# target (tests/fuzz/http): built with clang by tests/fuzz/http/build.sh,
# started from the committed seeds (read only: new inputs go to a temporary
# directory), SECONDS each (default 60). Prints runs, execs/s, edges (cov)
# and features per target; exits non-zero on a crash, a leak or a failed
# property, with the reproducer saved under build-fuzz/http/artifacts/.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SECONDS_EACH=${1:-60}
OUT="$ROOT/build-fuzz/http"
command -v clang >/dev/null || { echo "fuzz_http: clang is not installed" >&2; exit 1; }
bash "$ROOT/tests/fuzz/http/build.sh" "$OUT"
mkdir -p "$OUT/artifacts"
TMP="$(mktemp -d /tmp/tstream-fuzz.XXXXXX)"
trap 'rm -rf "$TMP"' EXIT
status=0
for kind in request response; do
    t="fuzz_http_$kind"
    mkdir -p "$TMP/$kind"
    rc=0
    nice "$OUT/$t" -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$OUT/artifacts/$t-" "$TMP/$kind" "$ROOT/tests/fuzz/http/corpus/fuzz_http_$kind" \
        >"$TMP/$t.log" 2>&1 || rc=$?
    done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$TMP/$t.log" | tail -1 || true)
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$TMP/$t.log")
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$TMP/$t.log")
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$done_line")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$done_line")
    printf 'fuzz_http: %-20s %ss  runs %s  execs/s %s  edges (cov) %s  features %s  new inputs %s  exit %d\n' \
        "$t" "$SECONDS_EACH" "${runs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" \
        "$(find "$TMP/$kind" -type f | wc -l)" "$rc"
    if [[ $rc -ne 0 ]]; then
        echo "fuzz_http: $t failed; the end of its log:" >&2
        tail -40 "$TMP/$t.log" >&2
        status=1
    fi
done
exit $status
