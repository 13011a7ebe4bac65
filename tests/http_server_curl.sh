#!/usr/bin/env bash
# curl against examples/http_server: HTTP and HTTPS, keep-alive with several
# requests on one connection, pipelining, errors, and a 100 MiB file by checksum.
. "$(dirname "$0")/support/testlib.sh"
need curl openssl python3 sha256sum
SRV=$TS_BUILD_DIR/examples/http_server
[ -x "$SRV" ] || fail "$SRV not built"

mkdir -p "$TMP/root/sub"
head -c $((100 * 1024 * 1024)) /dev/urandom >"$TMP/root/big.bin"
echo "small file" >"$TMP/root/sub/small.txt"
# with --root, / is the root directory: its index.html is the greeting the checks expect
printf 'Hello from libtstream!\n' >"$TMP/root/index.html"
make_certs "$TMP/certs"

P=$(free_port)
start http "$SRV" "$P" --root "$TMP/root"
PS=$(free_port)
start https "$SRV" "$PS" --root "$TMP/root" --tls "$TMP/certs/server.pem" "$TMP/certs/server.key"
wait_port "$P"
wait_port "$PS"

C=(curl -sS --max-time 60)
[ "$("${C[@]}" "http://127.0.0.1:$P/")" = "Hello from libtstream!" ] || fail "GET /"
pass "GET / over HTTP"
[ "$("${C[@]}" --cacert "$TMP/certs/ca.pem" "https://localhost:$PS/")" = "Hello from libtstream!" ] || fail "GET / over HTTPS"
pass "GET / over HTTPS with the test CA"

# keep-alive: three requests, one connection (curl reports how many it opened)
n=$("${C[@]}" -o /dev/null -o /dev/null -o /dev/null -w '%{num_connects}\n' \
    "http://127.0.0.1:$P/" "http://127.0.0.1:$P/sub/small.txt" "http://127.0.0.1:$P/" | awk '{s+=$1} END {print s}')
[ "$n" = 1 ] || fail "keep-alive: $n connections for 3 requests"
pass "keep-alive: 3 requests on 1 connection"
n=$("${C[@]}" --cacert "$TMP/certs/ca.pem" -o /dev/null -o /dev/null -w '%{num_connects}\n' \
    "https://localhost:$PS/" "https://localhost:$PS/sub/small.txt" | awk '{s+=$1} END {print s}')
[ "$n" = 1 ] || fail "HTTPS keep-alive: $n connections for 2 requests"
pass "HTTPS keep-alive"

# pipelining: two requests in one write, answered in order
out=$(python3 - "$P" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
s.sendall(b"GET /sub/small.txt HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
data = b""
while True:
    chunk = s.recv(65536)
    if not chunk:
        break
    data += chunk
print(data.count(b"HTTP/1.1 200"), data.index(b"small file") < data.index(b"Hello from"))
PY
)
[ "$out" = "2 True" ] || fail "pipelining: $out"
pass "two pipelined requests answered in order"

# errors
[ "$("${C[@]}" -o /dev/null -w '%{http_code}' "http://127.0.0.1:$P/missing")" = 404 ] || fail "404"
[ "$("${C[@]}" -o /dev/null -w '%{http_code}' --path-as-is "http://127.0.0.1:$P/../../etc/passwd")" = 400 ] || fail "traversal"
[ "$("${C[@]}" -o /dev/null -w '%{http_code}' -X DELETE "http://127.0.0.1:$P/")" = 405 ] || fail "405"
code=$(printf 'NONSENSE\r\n\r\n' | timeout 10 python3 -c '
import socket,sys
s=socket.create_connection(("127.0.0.1",int(sys.argv[1])),timeout=10); s.sendall(sys.stdin.buffer.read())
print(s.recv(100).split()[1].decode())' "$P")
[ "$code" = 400 ] || fail "malformed request gave $code"
[ "$("${C[@]}" -H "X-Big: $(head -c 20000 /dev/zero | tr '\0' a)" -o /dev/null -w '%{http_code}' "http://127.0.0.1:$P/")" = 431 ] || fail "oversized head not answered with 431"
pass "404, 405, 400 (traversal, malformed), 431 for an oversized head"
[ "$("${C[@]}" --data-binary 'ping-pong' "http://127.0.0.1:$P/echo")" = ping-pong ] || fail "POST body"
[ "$("${C[@]}" -0 "http://127.0.0.1:$P/")" = "Hello from libtstream!" ] || fail "HTTP/1.0"
head -c 2000000 /dev/urandom >"$TMP/post.bin"
"${C[@]}" -v -o "$TMP/post.out" --data-binary @"$TMP/post.bin" "http://127.0.0.1:$P/echo" 2>"$TMP/post.err" || fail "2 MB POST"
cmp -s "$TMP/post.out" "$TMP/post.bin" || fail "2 MB POST not echoed intact"
grep -q 'Expect: 100-continue' "$TMP/post.err" || fail "curl did not send Expect: $(cat "$TMP/post.err")"
grep -q '< HTTP/1.1 100 Continue' "$TMP/post.err" || fail "no 100 Continue: $(cat "$TMP/post.err")"
! grep -q 'Done waiting for 100-continue' "$TMP/post.err" || fail "curl had to wait out its 1 s for 100 Continue"
pass "POST /echo with Content-Length, HTTP/1.0; 100 Continue for a 2 MB POST (curl does not wait its 1 s)"

# 100 MiB over HTTP and HTTPS, by checksum
want=$(sha256sum <"$TMP/root/big.bin" | cut -d' ' -f1)
got=$("${C[@]}" "http://127.0.0.1:$P/big.bin" | sha256sum | cut -d' ' -f1)
[ "$got" = "$want" ] || fail "100 MiB over HTTP: checksum differs"
pass "100 MiB over HTTP, checksum equal"
got=$("${C[@]}" --cacert "$TMP/certs/ca.pem" "https://localhost:$PS/big.bin" | sha256sum | cut -d' ' -f1)
[ "$got" = "$want" ] || fail "100 MiB over HTTPS: checksum differs"
pass "100 MiB over HTTPS, checksum equal"

stop_graceful http || fail "http_server exited with status $? (sanitizer report?): $(tail -20 "$TMP/http.log")"
stop_graceful https || fail "https server exited with status $?: $(tail -20 "$TMP/https.log")"
pass "servers stopped cleanly on SIGTERM"
