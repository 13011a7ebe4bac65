#!/usr/bin/env bash
# bench/run.sh -- libtstream against its peers on loopback, every workload, one run.
#
# Builds the library and its example servers in release mode (build-bench/), copies the
# benchmark kit (../shared/bench: load generator, peers, compare.sh, cost/) into the build
# tree and builds it there, then measures for every workload
#   echo depth 1 and 16, bulk 1 and 4 connections, starved bulk, HTTP hello, idle connections
# the cost figures (cost/: user-space instructions per unit with callgrind, system calls per
# unit with strace), the throughput (compare.sh, interleaved rounds), and a callgrind profile
# of libtstream on the hot workloads. It writes bench/results/latest.md (machine, kernel, date,
# commit, the exact commands, medians and ratios against the peers measured in the same run),
# one gnuplot PNG per workload (bench/results/<workload>.png), the raw outputs
# (bench/results/raw/) and the profiles (bench/results/profiles/).
#
#   bench/run.sh                      or   make bench-compare
#   ROUNDS=N        compare.sh rounds and starved-bulk runs (default 3)
#   QUICK=1         short runs, for checking the harness (2 s windows, 256 MiB bulk, 2000 idle)
#   WORKLOADS='..'  a subset of: echo bulk starved http idle (default all)
#   UPDATE_DOCS=0|1 refresh the tables in docs/BENCHMARKS.md (default 1, 0 with QUICK=1)
#   REPORT_ONLY=1   only rewrite latest.md, the docs tables and the plots from raw/
#   NO_DEPS=1       do not install the missing `bench` packages (scripts/deps.sh bench)
#   BENCH_KIT=DIR   the kit (default: the first of ../shared/bench, ../../shared/bench)
#   BENCH_BUILD_DIR, BENCH_OUT   build tree (build-bench) and output folder (bench/results)
#
# A peer that is missing (not installed, not built) is skipped and named in latest.md. Every
# step runs under timeout in its own process group, which is stopped on exit or Ctrl-C.
set -u -o pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 2
ROUNDS=${ROUNDS:-3}
QUICK=${QUICK:-0}
WORKLOADS=${WORKLOADS:-"echo bulk starved http idle"}
BUILD=${BENCH_BUILD_DIR:-$ROOT/build-bench}
OUT=${BENCH_OUT:-$ROOT/bench/results}
PY=/usr/bin/python3
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || { echo "run.sh: ROUNDS must be a positive integer" >&2; exit 2; }

if [ "$QUICK" = 1 ]; then
    DUR=2 BULK_BYTES=256M IDLE_CONNS=2000 IDLE_HOLD=3 COST_SECS=1 COST_BULK_BYTES=64M STARVED_BYTES=256M
else
    DUR=10 BULK_BYTES=2G IDLE_CONNS=10000 IDLE_HOLD=5 COST_SECS=3 COST_BULK_BYTES=256M STARVED_BYTES=2G
fi

log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "run.sh: $*"; exit 1; }

# ---- state: the current step's process group, notes for latest.md ------------------------
RAW=$OUT/raw
STEP_PID="" SAMPLER_PID="" KIT=""
WORK=$(mktemp -d /tmp/tstream-bench.XXXXXX)
cleanup() {
    [ -n "$SAMPLER_PID" ] && kill "$SAMPLER_PID" 2>/dev/null
    if [ -n "$STEP_PID" ]; then
        kill -TERM -- "-$STEP_PID" 2>/dev/null
        sleep 1
        kill -KILL -- "-$STEP_PID" 2>/dev/null
        wait "$STEP_PID" 2>/dev/null
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM HUP

# report_and_plots: latest.md (and the docs tables) from raw/, then one PNG per workload
report_and_plots() {
    local docs="" wl title y1 y2
    log "writing $OUT/latest.md"
    [ "${UPDATE_DOCS:-$([ "$QUICK" = 1 ] && echo 0 || echo 1)}" = 1 ] && docs=$ROOT/docs/BENCHMARKS.md
    $PY "$ROOT/bench/report.py" "$OUT" $docs || die "report.py failed"
    command -v gnuplot >/dev/null || return 0
    while IFS=$'\t' read -r wl title y1 y2; do
        gnuplot -e "datafile='$OUT/data-$wl.tsv'; outfile='$OUT/$wl.png'; plottitle='$title'; ylab1='$y1'; ylab2='$y2'" \
            "$ROOT/bench/plot.gp" 2>"$WORK/gnuplot.err" || log "gnuplot failed for $wl: $(head -3 "$WORK/gnuplot.err")"
    done <"$OUT/plots.tsv"
}
if [ "${REPORT_ONLY:-0}" = 1 ]; then
    [ -s "$RAW/meta.env" ] || die "REPORT_ONLY=1: no earlier run in $RAW"
    QUICK=$(sed -n 's/^quick=//p' "$RAW/meta.env")
    report_and_plots
    exit 0
fi

mkdir -p "$RAW" "$OUT/profiles"
rm -f "$RAW"/* "$OUT"/profiles/* "$OUT"/*.png "$OUT"/data-*.tsv "$OUT"/plots.tsv
NOTES=$RAW/notes.txt COMMANDS=$RAW/commands.txt
: >"$NOTES"
: >"$COMMANDS"
note() { log "note: $*"; echo "$*" >>"$NOTES"; }
# show CMD...: the command as latest.md prints it, with the tree's own paths made relative
show() {
    local s
    s=$(printf '%q ' "$@")
    s=${s//$KIT\//kit\/}
    s=${s//$ROOT\//}
    echo "${s% }"
}

# step LIMIT OUTFILE CMD...: run CMD under timeout in its own process group (timeout makes
# one), stdout to OUTFILE, stderr to OUTFILE.err; record the command; return its status.
step() {
    local limit=$1 out=$2 rc
    shift 2
    show "$@" >>"$COMMANDS"
    timeout -k 10 "$limit" "$@" >"$out" 2>"$out.err" </dev/null &
    STEP_PID=$!
    wait "$STEP_PID"
    rc=$?
    STEP_PID=""
    [ $rc -eq 124 ] && note "timed out after ${limit}s: $(show "$@")"
    return $rc
}

# ---- machine ----------------------------------------------------------------------------
{
    echo "date=$(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "cpu=$(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')"
    echo "nproc=$(nproc)"
    echo "kernel=$(uname -sr)"
    echo "commit=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD -- src include examples 2>/dev/null || echo ' (with uncommitted changes in src/include/examples)')"
    echo "engine=$(git log -1 --format='%h %s' -- src include examples 2>/dev/null | cut -c1-110)"
    echo "rounds=$ROUNDS"
    echo "quick=$QUICK"
    echo "load_start=$(cut -d' ' -f1-3 /proc/loadavg)"
    echo "compiler=$(cc --version 2>/dev/null | head -1)"
} >"$RAW/meta.env"
[ "$(nproc)" -ge 2 ] || die "needs 2 CPUs (servers on CPU 0, load on CPU 1)"

# The machine is shared: sample the load while the run goes on.
(while :; do cut -d' ' -f1 /proc/loadavg; sleep 10; done) >"$RAW/load.txt" 2>/dev/null &
SAMPLER_PID=$!

# ---- packages, build --------------------------------------------------------------------
if [ "${NO_DEPS:-0}" != 1 ] && ! bash scripts/deps.sh --check bench >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then
        log "installing the missing bench packages (scripts/deps.sh bench)"
        timeout 900 bash scripts/deps.sh bench >&2 || note "scripts/deps.sh bench failed; missing peers are skipped"
    else
        note "missing bench packages: $(bash scripts/deps.sh --check bench 2>&1 | tail -1); their peers are skipped"
    fi
fi
bash scripts/deps.sh --check build >/dev/null 2>&1 || timeout 900 bash scripts/deps.sh build >&2 ||
    die "the build dependencies are missing (scripts/deps.sh build)"

log "release build in $BUILD"
nice cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DCMAKE_C_FLAGS_RELEASE="-O2 -g -DNDEBUG" \
    -DTS_BUILD_TESTS=OFF -DTS_BUILD_BENCH=OFF >"$WORK/cmake.log" 2>&1 &&
    nice cmake --build "$BUILD" -j2 --target echo_server http_server >>"$WORK/cmake.log" 2>&1 ||
    { tail -20 "$WORK/cmake.log" >&2; die "release build failed"; }
echo "build=cmake -DCMAKE_BUILD_TYPE=Release -DCMAKE_C_FLAGS_RELEASE='-O2 -g -DNDEBUG' -DTS_BUILD_TESTS=OFF; targets echo_server http_server" >>"$RAW/meta.env"
OURS_ECHO="$BUILD/examples/echo_server {PORT}"
OURS_HTTP="$BUILD/examples/http_server {PORT}"

# The kit is read-only where it is shared: build a copy inside the build tree.
KIT_SRC=${BENCH_KIT:-}
if [ -z "$KIT_SRC" ]; then
    for d in "$ROOT/../shared/bench" "$ROOT/../../shared/bench"; do
        [ -x "$d/compare.sh" ] && { KIT_SRC=$(cd "$d" && pwd); break; }
    done
fi
[ -n "$KIT_SRC" ] && [ -x "$KIT_SRC/compare.sh" ] || die "benchmark kit not found (set BENCH_KIT=DIR)"
KIT=$BUILD/kit
rm -rf "$KIT"
cp -r "$KIT_SRC" "$KIT" && chmod -R u+w "$KIT" || die "cannot copy $KIT_SRC to $KIT"
nice make -k -s -C "$KIT" >"$WORK/kit.log" 2>&1
[ -x "$KIT/bin/loadgen" ] || { cat "$WORK/kit.log" >&2; die "the load generator did not build"; }
# cost/echo.sh and cost/http.sh read the total of `strace -c` as the third field from the end,
# which is the calls column only when some call failed (the errors column is blank otherwise:
# nginx's HTTP run came out as 0.001 calls per request). The calls column is always the 4th.
if grep -q 'awk .\$NF=="total"{print \$(NF-2)}' "$KIT"/cost/echo.sh "$KIT"/cost/http.sh 2>/dev/null; then
    sed -i 's/\$NF=="total"{print \$(NF-2)}/$NF=="total"{print $4}/' "$KIT"/cost/echo.sh "$KIT"/cost/http.sh
    note "fix applied to the copy of the kit: the strace -c total is read from its calls column (cost/echo.sh, cost/http.sh took the usecs/call column when no call failed)"
fi
echo "kit=$KIT_SRC (copied to $(show "$KIT"))" >>"$RAW/meta.env"

# compare.sh idle starts the load generator in the background with its output sent to the file
# the previous server's run wrote, then looks there for "ready": when it looks before the new
# process has truncated the file, it finds the old line, reads the file again after the
# truncation, finds nothing and records the run as failed. The copy empties the file first.
if grep -q '^        before=$(rss_kib "$SRV_PID")$' "$KIT/compare.sh"; then
    sed -i 's/^        before=$(rss_kib "$SRV_PID")$/        before=$(rss_kib "$SRV_PID"); : >"$out"/' "$KIT/compare.sh"
    note "fix applied to the copy of the kit: compare.sh idle empties its output file before starting the load generator (a stale \"ready\" line from the previous server made runs fail at random)"
fi

# ---- which servers can run ----------------------------------------------------------------
declare -A CMD_ECHO CMD_HTTP
CMD_ECHO[ours]=$OURS_ECHO
CMD_HTTP[ours]=$OURS_HTTP
peer_bin() { # NAME BINARY MAP: a kit peer, or a skip note (a stub keeps compare.sh's make quiet)
    if [ -x "$KIT/bin/$2" ]; then
        if [ "$3" = echo ]; then CMD_ECHO[$1]="$KIT/bin/$2 {PORT}"; else CMD_HTTP[$1]="$KIT/bin/$2 {PORT}"; fi
    else
        note "skipped $1: $2 did not build ($(grep -m1 -i 'error' "$WORK/kit.log" | cut -c1-120))"
        printf '#!/bin/sh\necho "%s was not built" >&2\nexit 1\n' "$2" >"$KIT/bin/$2"
        chmod +x "$KIT/bin/$2"
    fi
}
peer_bin epoll-raw echo_epoll echo
peer_bin libev-raw echo_libev echo
peer_bin libuv echo_libuv echo
peer_bin libevent echo_libevent echo
peer_bin libevent-evhttp http_libevent http
if command -v nginx >/dev/null; then CMD_HTTP[nginx]=nginx; else note "skipped nginx: not installed"; fi
if $PY -c 'import tornado' 2>/dev/null; then
    CMD_ECHO[tornado]="$PY $KIT/echo_tornado.py {PORT}"
    CMD_HTTP[tornado]="$PY $KIT/http_tornado.py {PORT}"
else
    note "skipped tornado: $PY has no tornado module (python3-tornado)"
fi
HAVE_WRK=1 HAVE_COST=1
command -v wrk >/dev/null || { HAVE_WRK=0; note "skipped the HTTP workload: wrk is not installed"; }
for t in valgrind callgrind_control callgrind_annotate strace; do
    command -v $t >/dev/null || { HAVE_COST=0; note "skipped the cost figures: $t is not installed"; }
done
command -v gnuplot >/dev/null || note "no plots: gnuplot is not installed"
# Orders as in compare.sh. The cost tools skip tornado: under callgrind its figures count the
# CPython interpreter, and its throughput is in the compare.sh tables.
ECHO_ORDER="ours epoll-raw libev-raw libuv libevent tornado"
HTTP_ORDER="ours nginx libevent-evhttp tornado"
present() { # MAP NAMES...: the names that have a command
    local map=$1 n out=""
    shift
    for n in "$@"; do
        if [ "$map" = echo ]; then [ -n "${CMD_ECHO[$n]:-}" ] && out="$out $n"; else [ -n "${CMD_HTTP[$n]:-}" ] && out="$out $n"; fi
    done
    echo "${out# }"
}
ECHO_SERVERS=$(present echo $ECHO_ORDER)
HTTP_SERVERS=$(present http $HTTP_ORDER)
COST_ECHO_SERVERS=$(present echo ours epoll-raw libev-raw libuv libevent)
COST_HTTP_SERVERS=$(present http ours nginx libevent-evhttp)
echo "echo_servers=$ECHO_SERVERS" >>"$RAW/meta.env"
echo "http_servers=$HTTP_SERVERS" >>"$RAW/meta.env"
wants() { [[ " $WORKLOADS " == *" $1 "* ]]; }
compare() { # MODE SERVERS ARGS...: compare.sh with ours taken from the list
    local mode=$1 servers=$2 ours
    shift 2
    if [ "$mode" = http ]; then ours=$OURS_HTTP; else ours=$OURS_ECHO; fi
    log "compare.sh $mode: $servers"
    step $((ROUNDS * 1500 + 600)) "$RAW/compare-$mode.txt" "$KIT/compare.sh" "$mode" --ours "$ours" \
        --rounds "$ROUNDS" --servers "$servers" "$@" ||
        note "compare.sh $mode exited with status $? (see raw/compare-$mode.txt.err)"
}

# ---- cost figures -----------------------------------------------------------------------
# cost LIMIT FILE SCRIPT NAME CMD ARGS...: one line of a cost script appended to FILE
cost() {
    local limit=$1 file=$2 script=$3 name=$4
    shift 4
    log "cost/$script $name $*"
    if step "$limit" "$WORK/cost.out" "$KIT/cost/$script" "$name" "$@"; then
        tail -1 "$WORK/cost.out" >>"$file"
    else
        note "cost/$script $name $*: failed ($(tail -1 "$WORK/cost.out" "$WORK/cost.out.err" 2>/dev/null | grep -v '^==>' | tr '\n' ' ' | cut -c1-160))"
    fi
}
# profile KEY MODE LOAD-ARGS...: callgrind_annotate of ours over one measured window (the same
# procedure as cost/: instrumentation switched on after a warm-up, dumped before the stop)
profile() {
    local key=$1 mode=$2 p vp cmd d=$WORK/prof-$1 i
    shift 2
    mkdir -p "$d"
    p=$($PY -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
    if [ "$mode" = http ]; then cmd=$OURS_HTTP; else cmd=$OURS_ECHO; fi
    log "profile $key"
    show valgrind --tool=callgrind --instr-atstart=no $cmd >>"$COMMANDS"
    cmd=${cmd//\{PORT\}/$p}
    # shellcheck disable=SC2086
    timeout -k 10 300 valgrind --tool=callgrind --callgrind-out-file="$d/cg.out" --instr-atstart=no $cmd \
        >"$d/vg.log" 2>&1 </dev/null &
    STEP_PID=$!
    for i in $(seq 201); do
        [ "$i" = 201 ] && { note "profile $key: the server did not listen within 20 s"; kill -TERM -- "-$STEP_PID"
            wait "$STEP_PID"; STEP_PID=""; return 1; }
        (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && break
        sleep 0.1
    done
    vp=$(pgrep -P "$STEP_PID" | head -1)
    case $mode in
    echo) timeout 60 "$KIT/bin/loadgen" echo -P "$p" "$@" -d 1 -w 0 >/dev/null 2>&1
        set -- "$@" -d "$COST_SECS" -w 0 ;;
    http) timeout 60 wrk -t1 -c64 -d1s "http://127.0.0.1:$p/" >/dev/null 2>&1 ;;
    esac
    callgrind_control -i on "$vp" >/dev/null 2>&1
    case $mode in
    echo | bulk) show "$KIT/bin/loadgen" "$mode" -P PORT "$@" >>"$COMMANDS"
        timeout 300 "$KIT/bin/loadgen" "$mode" -P "$p" "$@" >"$d/load.txt" 2>&1 ;;
    http) show wrk -t1 -c64 "-d${COST_SECS}s" http://127.0.0.1:PORT/ >>"$COMMANDS"
        timeout 120 wrk -t1 -c64 "-d${COST_SECS}s" "http://127.0.0.1:$p/" >"$d/load.txt" 2>&1 ;;
    esac
    callgrind_control -d "$vp" >/dev/null 2>&1
    kill -TERM "$vp" 2>/dev/null
    wait "$STEP_PID" 2>/dev/null
    STEP_PID=""
    if [ -s "$d/cg.out.1" ]; then
        {
            echo "# callgrind_annotate, self cost, libtstream $key: $(grep '^mode=\|requests in' "$d/load.txt" | head -1)"
            callgrind_annotate "$d/cg.out.1" 2>/dev/null | sed -n '/PROGRAM TOTALS/,$p' | sed "s|$ROOT/||g" |
                sed -E 's| \[[^]]*\]$||; s#  \./[^ :]*:#  libc:#' | head -40
            echo
            echo "# inclusive cost (the function and what it calls)"
            callgrind_annotate --inclusive=yes "$d/cg.out.1" 2>/dev/null | sed -n '/PROGRAM TOTALS/,$p' |
                sed "s|$ROOT/||g" | sed -E 's| \[[^]]*\]$||; s#  \./[^ :]*:#  libc:#' | sed -n '3,40p'
        } >"$OUT/profiles/$key.txt"
    else
        note "profile $key failed (no callgrind dump)"
    fi
}

# cost_all LIMIT FILE SCRIPT echo|http SERVERS ARGS...: cost for each of SERVERS
cost_all() {
    local limit=$1 file=$2 script=$3 map=$4 servers=$5 s c
    shift 5
    for s in $servers; do
        if [ "$map" = http ]; then c=${CMD_HTTP[$s]}; else c=${CMD_ECHO[$s]}; fi
        cost "$limit" "$file" "$script" "$s" "$c" "$@"
    done
}

if [ $HAVE_COST = 1 ]; then
    if wants echo; then
        for depth in 1 16; do
            cost_all 300 "$RAW/cost-echo-d$depth.txt" echo.sh echo "$COST_ECHO_SERVERS" $depth $COST_SECS
        done
        profile echo-d16 echo -c 64 -s 64 -p 16
        profile echo-d1 echo -c 64 -s 64 -p 1
    fi
    if wants bulk; then
        for conns in 1 4; do
            cost_all 900 "$RAW/cost-bulk-c$conns.txt" bulk.sh echo "$COST_ECHO_SERVERS" $conns $COST_BULK_BYTES
        done
        profile bulk-1 bulk -c 1 -s 65536 -b 64M
    fi
    if wants http && [ $HAVE_WRK = 1 ]; then
        cost_all 300 "$RAW/cost-http.txt" http.sh http "$COST_HTTP_SERVERS" $COST_SECS
        profile http http
    fi
fi

# ---- starved bulk: ROUNDS runs per server, interleaved --------------------------------------
if wants starved; then
    for r in $(seq "$ROUNDS"); do
        for s in $COST_ECHO_SERVERS; do
            log "cost/bulk_starved.sh $s, run $r/$ROUNDS"
            if step 200 "$WORK/starved.out" "$KIT/cost/bulk_starved.sh" "${CMD_ECHO[$s]}" $STARVED_BYTES &&
                grep -q 'complete=1' "$WORK/starved.out"; then
                echo "$s round=$r $(tail -1 "$WORK/starved.out")" >>"$RAW/starved.txt"
            else
                echo "$s round=$r failed" >>"$RAW/starved.txt"
                note "starved bulk $s run $r failed: $(tail -1 "$WORK/starved.out" | cut -c1-160)"
            fi
        done
    done
fi

# ---- throughput: compare.sh -------------------------------------------------------------
wants echo && compare echo "$ECHO_SERVERS" --duration $DUR
wants bulk && compare bulk "$ECHO_SERVERS" --bytes $BULK_BYTES
wants http && [ $HAVE_WRK = 1 ] && compare http "$HTTP_SERVERS" --duration $DUR
wants idle && compare idle "$ECHO_SERVERS" --conns $IDLE_CONNS --duration $IDLE_HOLD

echo "load_end=$(cut -d' ' -f1-3 /proc/loadavg)" >>"$RAW/meta.env"
echo "others=$(ps -eo pcpu=,comm= --sort=-pcpu | awk '$1 > 5 {printf "%s %s%%, ", $2, $1}' | head -c 300)" >>"$RAW/meta.env"

report_and_plots
log "done: $OUT/latest.md"
