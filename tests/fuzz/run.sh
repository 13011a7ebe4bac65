#!/usr/bin/env bash
# tests/fuzz/run.sh BUILD_DIR -- runs every libFuzzer target built in
# BUILD_DIR/fuzz (make fuzz builds them) for FUZZ_SECONDS each (default 60),
# starting from the committed seeds in tests/fuzz/corpus/<target>/ and the
# target's dictionary tests/fuzz/<target>.dict when present. New inputs go to
# BUILD_DIR/fuzz-corpus/<target>/ (the committed corpus is left as it is).
# FUZZ_TARGETS="a b" picks targets. Prints executions, execs/s and edges
# (libFuzzer's cov:) per target; exits 1 if any target crashed, hung or
# found a model mismatch (the input is kept as BUILD_DIR/fuzz-artifacts/*).
set -uo pipefail

build="${1:?usage: tests/fuzz/run.sh BUILD_DIR}"
build="$(cd "$build" && pwd)"
src="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
seconds="${FUZZ_SECONDS:-60}"

mapfile -t targets < <(find "$build/fuzz" -type f -name 'fuzz_*' -perm -u+x | sort)
if [[ -n ${FUZZ_TARGETS:-} ]]; then
    keep=()
    for t in "${targets[@]}"; do
        for want in $FUZZ_TARGETS; do [[ $(basename "$t") == "$want" ]] && keep+=("$t"); done
    done
    targets=("${keep[@]}")
fi
if [[ ${#targets[@]} -eq 0 ]]; then
    echo "fuzz: no targets in $build/fuzz (configure with -DTS_FUZZ=ON)" >&2
    exit 1
fi

mkdir -p "$build/fuzz-artifacts"
failed=0
summary=()
for t in "${targets[@]}"; do
    name="$(basename "$t")"
    rel="${t#"$build/fuzz/"}"
    sub="$(dirname "$rel")"
    [[ $sub == . ]] && sub="" || sub="$sub/"
    work="$build/fuzz-corpus/$name"
    seeds="$src/${sub}corpus/$name"
    dict="$src/${sub}$name.dict"
    mkdir -p "$work"
    args=(-max_total_time="$seconds" -timeout=20 -print_final_stats=1
          -artifact_prefix="$build/fuzz-artifacts/$name-")
    [[ -f $dict ]] && args+=(-dict="$dict")
    corpora=("$work")
    [[ -d $seeds ]] && corpora+=("$seeds")
    log="$build/fuzz-artifacts/$name.log"
    echo "==> $name: ${seconds}s, seeds ${seeds#"$src/"} ($(find "${corpora[@]}" -type f | wc -l) inputs)"
    start=$(date +%s)
    nice "$t" "${args[@]}" "${corpora[@]}" >"$log" 2>&1
    rc=$?
    took=$(( $(date +%s) - start ))
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n1 | awk '{print $2}')
    line=$(printf '%-22s %9s execs %7s/s %5s edges %4ss' "$name" "${execs:-?}" "${rate:-?}" "${cov:-?}" "$took")
    if [[ $rc -ne 0 ]]; then
        failed=1
        line="$line  FAILED (exit $rc)"
        echo "--- $name: last lines of $log"
        grep -v '^#' "$log" | tail -n 40
    fi
    echo "$line"
    summary+=("$line")
done
echo
echo "fuzz summary (${seconds}s per target):"
printf '  %s\n' "${summary[@]}"
exit $failed
