#!/usr/bin/env bash
# Soak: SOAK_CONNS (1,000) verifying connections for SOAK_SECONDS (60)
# against examples/echo_server and examples/http_server at once (keep-alive GETs
# of files of 1 B .. 64 KiB), driven by tests/soak/soak_load.c (plain
# poll(), no libtstream): random message sizes and pauses, 5 % of the
# connections reset at a random moment and replaced. Every echo and body byte
# is compared. Afterwards each server's fd count is back at its baseline
# (measured before the load) and its VmRSS at the end is within 10 % of the
# value after warm-up (a fifth of the run); then it exits 0 on SIGTERM.
# Meant for a release build (`make soak`, or .ci/reliability.sh soak);
# skipped unless TS_SOAK=1, so the ordinary ctest run does not pay for it.
# SOAK_SEED replays a run (the seed is printed).
. "$(dirname "$0")/support/testlib.sh"
[ "${TS_SOAK:-0}" = 1 ] || skip "set TS_SOAK=1 (make soak) to run the soak test"
need python3 cc
SRC=${TS_SRC_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
SECS=${SOAK_SECONDS:-60}
CONNS=${SOAK_CONNS:-1000}
SEED=${SOAK_SEED:-$(( (RANDOM << 15 | RANDOM) ))}
RSS_GROWTH_PCT=10
echo "soak: seed $SEED (replay with SOAK_SEED=$SEED), $CONNS connections, ${SECS}s per server"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
[ "$(ulimit -n)" -ge $((CONNS + 100)) ] || skip "RLIMIT_NOFILE $(ulimit -n) is too low for $CONNS connections"

cc -O2 -Wall -Wextra -o "$TMP/soak_load" "$SRC/tests/soak/soak_load.c" || fail "building soak_load"
mkdir -p "$TMP/root"
"$TMP/soak_load" mkroot "$TMP/root" "$SEED" || fail "mkroot"

fds() { ls "/proc/$1/fd" | wc -l; }
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

# Runs in a subshell of its own: its server is stopped when it ends, whatever happens.
soak_one() {
    local mode=$1 bin=$2 port pid base warm final lpid status=0 i
    shift 2
    port=$(free_port)
    start "$mode" "$bin" "$port" "$@"
    pid=$(cat "$TMP/$mode.pid")
    trap 'kill -KILL $(cat "$TMP/'"$mode"'.pid") 2>/dev/null' EXIT
    wait_port "$port"
    sleep 0.2
    base=$(fds "$pid")
    "$TMP/soak_load" "$mode" "$port" "$CONNS" "$SECS" "$SEED" >"$TMP/$mode.load" 2>&1 &
    lpid=$!
    local warm_at=$(( SECS / 5 > 2 ? SECS / 5 : 2 ))
    sleep "$warm_at"
    warm=$(rss_kb "$pid")
    sleep $(( SECS - warm_at - 1 > 0 ? SECS - warm_at - 1 : 0 ))
    final=$(rss_kb "$pid")
    wait "$lpid" || status=$?
    cat "$TMP/$mode.load"
    [ "$status" -eq 0 ] || fail "$mode: the load generator found errors (exit $status, seed $SEED)"
    for i in $(seq 100); do
        [ "$(fds "$pid")" -le "$base" ] && break
        sleep 0.1
    done
    local now_fds; now_fds=$(fds "$pid")
    echo "soak: $mode server fds: baseline $base, after the load $now_fds"
    [ "$now_fds" -le "$base" ] || fail "$mode: the server holds $((now_fds - base)) fds more than before the load"
    local bound=$(( warm + warm * RSS_GROWTH_PCT / 100 ))
    echo "soak: $mode server VmRSS: ${warm} KiB after warm-up (${warm_at}s), ${final} KiB at the end (bound ${bound} KiB, +${RSS_GROWTH_PCT}%)"
    [ "$final" -le "$bound" ] || fail "$mode: VmRSS grew from $warm to $final KiB (more than ${RSS_GROWTH_PCT}%)"
    stop_graceful "$mode" || fail "$mode server exited with status $? on SIGTERM"
    pass "$mode soak"
}

soak_one echo "$TS_BUILD_DIR/examples/echo_server" &
e=$!
soak_one http "$TS_BUILD_DIR/examples/http_server" --root "$TMP/root" --idle-timeout 30 &
h=$!
rc=0
wait "$e" || rc=1
wait "$h" || rc=1
[ "$rc" -eq 0 ] || fail "soak failed (seed $SEED)"
