#!/usr/bin/env bash
# What the example programs print about addresses: the servers name the
# address the kernel bound (port 0 shows the port it picked, IPv6 in
# brackets), as ts_sockaddr_str() writes it; callback_client names the
# address it failed to reach.
. "$(dirname "$0")/support/testlib.sh"
need python3
BIN=$TS_BUILD_DIR/examples

# listening NAME: the "listening on" line from $TMP/NAME.log, waited for (10 s).
listening() {
    local i
    for i in $(seq 100); do
        grep -m1 "listening on" "$TMP/$1.log" 2>/dev/null && return 0
        sleep 0.1
    done
    fail "$1 printed no 'listening on' line: $(head -c 300 "$TMP/$1.log")"
}

for prog in echo_server tcp_server; do
    start "$prog-v4" "$BIN/$prog" 0 --address 127.0.0.1
    line=$(listening "$prog-v4")
    [[ $line =~ ^$prog:\ listening\ on\ 127\.0\.0\.1:([0-9]+)$ ]] || fail "$prog, IPv4: '$line'"
    port=${BASH_REMATCH[1]}
    [ "$port" -gt 0 ] || fail "$prog: port 0 printed, not the one bound"
    wait_port "$port"
    pass "$prog: $line"

    if python3 -c 'import socket; socket.socket(socket.AF_INET6).bind(("::1", 0))' 2>/dev/null; then
        start "$prog-v6" "$BIN/$prog" 0 --address ::1
        line=$(listening "$prog-v6")
        [[ $line =~ ^$prog:\ listening\ on\ \[::1\]:[1-9][0-9]*$ ]] || fail "$prog, IPv6: '$line'"
        pass "$prog: $line"
    fi
done

# A port nobody listens on: the message names the address tried.
P=$(free_port)
timeout 10 "$BIN/callback_client" 127.0.0.1 "$P" >"$TMP/cc.out" 2>"$TMP/cc.err" && fail "callback_client reached a closed port"
grep -qF "callback_client: connect to 127.0.0.1:$P: " "$TMP/cc.err" || fail "callback_client: $(cat "$TMP/cc.err")"
pass "callback_client: $(cat "$TMP/cc.err")"
