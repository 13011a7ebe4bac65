#!/usr/bin/env bash
# A short wrk run against examples/http_server: zero socket errors, zero non-2xx.
. "$(dirname "$0")/support/testlib.sh"
need wrk
SRV=$TS_BUILD_DIR/examples/http_server
[ -x "$SRV" ] || fail "$SRV not built"
P=$(free_port)
start http "$SRV" "$P"
wait_port "$P"
timeout 30 wrk -t1 -c32 -d3s "http://127.0.0.1:$P/" >"$TMP/wrk.out" 2>&1 || fail "wrk failed: $(cat "$TMP/wrk.out")"
cat "$TMP/wrk.out"
grep -q "Socket errors" "$TMP/wrk.out" && fail "wrk saw socket errors"
grep -q "Non-2xx" "$TMP/wrk.out" && fail "wrk saw non-2xx responses"
reqs=$(awk '/requests in/ {print $1}' "$TMP/wrk.out")
[ "${reqs:-0}" -gt 100 ] || fail "only ${reqs:-0} requests completed"
pass "wrk: $reqs requests, no errors, all 2xx"
stop_graceful http || fail "http_server exited with status $?: $(tail -20 "$TMP/http.log")"
