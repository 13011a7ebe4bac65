#!/usr/bin/env bash
# openssl s_client against examples/echo_server --tls (TLS 1.2 and 1.3), and
# the plain echo protocol with several pipelined lines and a line split over writes.
. "$(dirname "$0")/support/testlib.sh"
need openssl python3
SRV=$TS_BUILD_DIR/examples/echo_server
[ -x "$SRV" ] || fail "$SRV not built"
make_certs "$TMP/certs"

P=$(free_port)
start plain "$SRV" "$P"
PT=$(free_port)
start tls "$SRV" "$PT" --tls "$TMP/certs/server.pem" "$TMP/certs/server.key"
wait_port "$P"
wait_port "$PT"

out=$(timeout 20 python3 - "$P" <<'PY'
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
s.sendall(b"one\ntwo\nthr")
time.sleep(0.1)
s.sendall(b"ee\n" + b"x" * 300000 + b"\n")
want = b"one\ntwo\nthree\n" + b"x" * 300000 + b"\n"
got = b""
while len(got) < len(want):
    got += s.recv(65536)
print("match" if got == want else "mismatch")
PY
)
[ "$out" = match ] || fail "plain echo: $out"
pass "plain echo: pipelined lines, a split line and a 300000-byte line"

for v in -tls1_2 -tls1_3; do
    got=$( (printf 'hello over tls\nsecond line\n'; sleep 1) | timeout 20 openssl s_client $v -quiet -no_ign_eof \
        -connect "127.0.0.1:$PT" -servername localhost -CAfile "$TMP/certs/ca.pem" -verify_return_error 2>"$TMP/sclient.err")
    [ "$got" = "$(printf 'hello over tls\nsecond line')" ] || fail "s_client $v got '$got': $(cat "$TMP/sclient.err")"
    pass "openssl s_client $v: verified, lines echoed"
done

# Connections still open at SIGTERM (idle after one echo, or holding half a line) are
# closed by the server on its way out: each client sees the end, and the server exits 0
# (under ASan: nothing leaked).
timeout 30 python3 - "$P" "$TMP/held.ready" >"$TMP/held.out" 2>&1 <<'PY' &
import socket, sys
socks = []
for i in range(20):
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
    s.sendall(b"line %d\n" % i)
    want = b"line %d\n" % i
    got = b""
    while len(got) < len(want):
        got += s.recv(100)
    assert got == want, got
    socks.append(s)
half = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
half.sendall(b"no end")
socks.append(half)
open(sys.argv[2], "w").close()
ends = 0
for s in socks:
    if s.recv(100) == b"":
        ends += 1
print("ends", ends)
PY
HELD=$!
for _ in $(seq 100); do [ -e "$TMP/held.ready" ] && break; sleep 0.1; done
[ -e "$TMP/held.ready" ] || fail "held connections not set up: $(cat "$TMP/held.out")"
sleep 0.2
stop_graceful plain || fail "echo_server exited with status $?: $(tail -20 "$TMP/plain.log")"
wait "$HELD" || fail "held connections: $(cat "$TMP/held.out")"
[ "$(cat "$TMP/held.out")" = "ends 21" ] || fail "held connections: $(cat "$TMP/held.out")"
pass "connections open at SIGTERM: all 21 closed by the server"
stop_graceful tls || fail "echo_server --tls exited with status $?: $(tail -20 "$TMP/tls.log")"
pass "servers stopped cleanly on SIGTERM"
