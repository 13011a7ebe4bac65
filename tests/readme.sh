#!/usr/bin/env bash
# The README stays true: its example program compiles against the library and
# echoes a line, and the demo script (what `make demo` runs) succeeds.
. "$(dirname "$0")/support/testlib.sh"
need python3 openssl cc
SRC=${TS_SRC_DIR:?}

# 1. the example program, extracted from the README's first C block
awk '/^```c$/ {on=1; next} /^```$/ && on {exit} on' "$SRC/README.md" >"$TMP/example.c"
[ -s "$TMP/example.c" ] || fail "no C example found in README.md"
FLAGS=()
[ "${TS_SANITIZE:-0}" = 1 ] && FLAGS=(-fsanitize=address,undefined)
cc -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wno-unused-parameter "${FLAGS[@]}" \
    -I"$SRC/include" -I"$TS_BUILD_DIR/include" "$TMP/example.c" -o "$TMP/example" \
    "$TS_BUILD_DIR/libtstream.a" -lev -lssl -lcrypto -lpcre2-8 -lpthread -lm 2>"$TMP/cc.log" ||
    fail "the README example does not compile: $(cat "$TMP/cc.log")"
[ -s "$TMP/cc.log" ] && fail "the README example compiles with warnings: $(cat "$TMP/cc.log")"
pass "README example compiles without warnings"
port=$(grep -o 'ts_tcpserver_listen(srv, [0-9]*' "$TMP/example.c" | grep -o '[0-9]*$')
if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "port $port is busy: not running the example"
else
    start example "$TMP/example"
    wait_port "$port"
    got=$(timeout 10 python3 -c '
import socket,sys
s=socket.create_connection(("127.0.0.1",int(sys.argv[1])),timeout=5)
s.sendall(b"hello readme\n"); print(s.recv(100).decode().strip())' "$port")
    [ "$got" = "hello readme" ] || fail "README example echoed '$got'"
    pass "README example echoes a line"
fi

# 2. the demo
timeout 300 env TS_BUILD_DIR="$TS_BUILD_DIR" bash "$SRC/examples/demo.sh" >"$TMP/demo.out" 2>&1 ||
    fail "demo failed: $(tail -30 "$TMP/demo.out")"
grep -q "byte-for-byte identical" "$TMP/demo.out" || fail "demo: large download not verified"
grep -q "exited with status 5" "$TMP/demo.out" || fail "demo: untrusted fetch not refused"
grep -q "both servers stopped" "$TMP/demo.out" || fail "demo: servers not stopped"
pass "the demo runs end to end"
