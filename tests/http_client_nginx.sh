#!/usr/bin/env bash
# examples/http_client against nginx (HTTP, HTTPS, Content-Length, chunked,
# redirects, 404), a scripted fake server (malformed, truncated and silent
# responses, 100 Continue, chunk extensions and trailers) and, when built,
# examples/http_server. Checks bodies byte for byte and every exit code.
# Loopback only; the unresolvable-host case runs in a network namespace
# without network, so no DNS query can leave the machine.
. "$(dirname "$0")/support/testlib.sh"
. "$(dirname "$0")/support/nginx_helper.sh"
. "$(dirname "$0")/support/hc_helper.sh"
need curl openssl python3 sha256sum cmp
nginx_find
HC=$TS_BUILD_DIR/examples/http_client
[ -x "$HC" ] || fail "$HC not built"

sha() { sha256sum <"$1" | cut -d' ' -f1; }
err_has() { grep -qi -- "$2" "$TMP/$1.err" || fail "$1: stderr lacks '$2': $(cat "$TMP/$1.err")"; }

# ---- fixtures ------------------------------------------------------------
make_certs "$TMP/certs"
CA=$TMP/certs/ca.pem
# a second certificate from the same CA, for a name that is not localhost
openssl req -newkey rsa:2048 -nodes -subj "/CN=other.example" -keyout "$TMP/certs/other.key" \
    -out "$TMP/certs/other.csr" >/dev/null 2>&1 || fail "openssl: CSR"
printf 'subjectAltName=DNS:other.example\n' >"$TMP/certs/other.cnf"
openssl x509 -req -in "$TMP/certs/other.csr" -CA "$CA" -CAkey "$TMP/certs/ca.key" -CAcreateserial -days 2 \
    -extfile "$TMP/certs/other.cnf" -out "$TMP/certs/other.pem" >/dev/null 2>&1 || fail "openssl: sign"

WWW=$TMP/www
mkdir -p "$WWW/dir"
echo "a small file for http_client" >"$WWW/small.txt"
head -c $((20 * 1024 * 1024)) /dev/urandom >"$WWW/big.bin"
seq 1 60000 | sed 's/^/line /' >"$WWW/lines.txt" # ~650 KB of text, rewritten on the fly

P=$(free_port)  # nginx HTTP
PS=$(free_port) # nginx HTTPS, certificate for localhost / 127.0.0.1
PO=$(free_port) # nginx HTTPS, certificate for other.example
PF=$(free_port) # the fake server
PR=$(free_port) # nothing listens here

nginx_start nginx "$TMP/nginx" "
    server {
        listen 127.0.0.1:$P;
        listen 127.0.0.1:$PS ssl;
        server_name localhost;
        ssl_certificate $TMP/certs/server.pem;
        ssl_certificate_key $TMP/certs/server.key;
        root $WWW;
        location = /redirect { return 302 /small.txt; }
        location = /dir/relative { absolute_redirect off; return 301 ../small.txt; }
        location = /see-other { return 303 /small.txt; }
        location = /temporary { return 307 /small.txt; }
        location = /hop1 { return 302 /small.txt; }
        location = /hop2 { return 302 /hop1; }
        location = /hop3 { return 302 /hop2; }
        location = /hop4 { return 302 /hop3; }
        location = /hop5 { return 302 /hop4; }
        location = /hop6 { return 302 /hop5; }
        location = /to-https { return 302 https://localhost:$PS/small.txt; }
        location /chunked/ {
            alias $WWW/;
            sub_filter 'line' 'LINE';
            sub_filter_once off;
            sub_filter_types text/plain;
        }
        location /slow/ { alias $WWW/; limit_rate 64k; }
    }
    server {
        listen 127.0.0.1:$PO ssl;
        ssl_certificate $TMP/certs/other.pem;
        ssl_certificate_key $TMP/certs/other.key;
        root $WWW;
    }"

cat >"$TMP/fake.py" <<'PY'
# A scripted HTTP server: each path answers with fixed bytes, sent in pieces
# with small pauses so the client sees them split; unknown paths never answer.
import socket, sys, threading, time
port, nginx_port = int(sys.argv[1]), sys.argv[2]
R = {
    "/bad-status": [b"HTTP/1.1 2OO OK\r\nContent-Length: 0\r\n\r\n"],
    "/bad-header": [b"HTTP/1.1 200 OK\r\nBad Header: x\r\nContent-Length: 0\r\n\r\n"],
    "/bad-length": [b"HTTP/1.1 200 OK\r\nContent-Length: 12abc\r\n\r\n"],
    "/length-mismatch": [b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc"],
    "/both": [b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"],
    "/folded": [b"HTTP/1.1 200 OK\r\nX-A: 1\r\n  folded\r\nContent-Length: 0\r\n\r\n"],
    "/huge-head": [b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 70000 + b"\r\n\r\n"],
    "/truncated": [b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n", b"0123456789"],
    "/bad-chunk": [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", b"zz\r\n"],
    "/chunk-overflow": [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", b"1ffffffffffffffff\r\n"],
    "/chunk-no-crlf": [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", b"5\r\nhelloXX0\r\n\r\n"],
    "/chunk-cut": [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", b"a\r\nhello"],
    "/space-colon": [b"HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\nok"],
    "/bare-cr": [b"HTTP/1.1 200 OK\r\nX-A: a\rb\r\nContent-Length: 2\r\n\r\nok"],
    "/length-65": [b"HTTP/1.1 200 OK\r\nContent-Length: " + b"0" * 63 + b"02\r\n\r\nok"],
    "/te-http10": [b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"],
    "/chunk-lf": [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", b"2\nok\r\n0\r\n\r\n"],
    "/chunk-bad-ext": [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", b"2;=x\r\nok\r\n0\r\n\r\n"],
    "/bad-trailer": [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", b"2\r\nok\r\n0\r\nBad Trailer: x\r\n\r\n"],
    "/chunked": [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", b"5;name=val", b"ue\r\nhel",
                 b"lo\r\n7 ; x\r\n, world\r\n", b"0\r\nX-Trailer: yes\r\n", b"\r\n"],
    "/continue": [b"HTTP/1.1 100 Continue\r\n\r\n", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"],
    "/lf-only": [b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok"],
    "/until-close": [b"HTTP/1.0 200 OK\r\nServer: fake\r\n\r\n", b"until ", b"close"],
    "/no-reason": [b"HTTP/1.1 204\r\n\r\n"],
    "/relative": [b"HTTP/1.1 302 Found\r\nLocation: a/./b/../../continue?x#frag\r\nContent-Length: 0\r\n\r\n"],
    "/continue?x": [b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nrelative!"],
    "/elsewhere": [b"HTTP/1.1 308 Permanent\r\nLocation: http://localhost:" + nginx_port.encode()
                   + b"/small.txt\r\nContent-Length: 0\r\n\r\n"],
    "/loop": [b"HTTP/1.1 302 Found\r\nLocation: /loop\r\nContent-Length: 0\r\n\r\n"],
    "/to-localhost": [b"HTTP/1.1 302 Found\r\nLocation: http://localhost:%d/continue?x\r\nContent-Length: 0\r\n\r\n" % port],
}

def serve(c):
    try:
        c.settimeout(30)
        req = b""
        while b"\r\n\r\n" not in req:
            d = c.recv(4096)
            if not d:
                return
            req += d
        with open(sys.argv[3], "ab") as log:
            log.write(req)
        parts = R.get(req.split(b" ")[1].decode())
        if parts is None:  # /silent and friends: accept, read, never answer
            time.sleep(30)
        for part in parts or []:
            c.sendall(part)
            time.sleep(0.02)
    except OSError:
        pass
    finally:
        c.close()

s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", port))
s.listen(16)
while True:
    threading.Thread(target=serve, args=(s.accept()[0],), daemon=True).start()
PY
start fake python3 "$TMP/fake.py" "$PF" "$P" "$TMP/fake-requests.log"
wait_port "$P"
wait_port "$PS"
wait_port "$PO"
wait_port "$PF"
H=http://127.0.0.1:$P
HS=https://localhost:$PS
F=http://127.0.0.1:$PF

# ---- bodies over HTTP and HTTPS ---------------------------------------------
hc small 0 "$H/small.txt"
cmp -s "$TMP/small.out" "$WWW/small.txt" || fail "small file over HTTP differs"
[ ! -s "$TMP/small.err" ] || fail "a quiet fetch wrote to stderr: $(cat "$TMP/small.err")"
pass "small file over HTTP equals the file; nothing on stderr"

want=$(sha "$WWW/big.bin")
hc big 0 "$H/big.bin"
[ "$(sha "$TMP/big.out")" = "$want" ] || fail "20 MiB over HTTP: checksum differs"
pass "20 MiB over HTTP (Content-Length), sha256 equal"
hc bigtls 0 --cacert "$CA" "$HS/big.bin"
[ "$(sha "$TMP/bigtls.out")" = "$want" ] || fail "20 MiB over HTTPS: checksum differs"
pass "20 MiB over HTTPS verified with --cacert, sha256 equal"
hc iplit 0 --cacert "$CA" "https://127.0.0.1:$PS/small.txt"
cmp -s "$TMP/iplit.out" "$WWW/small.txt" || fail "HTTPS to an IP literal differs"
pass "HTTPS to 127.0.0.1 verified against the certificate's IP address"

hc outfile 0 -o "$TMP/written.bin" --cacert "$CA" "$HS/big.bin"
cmp -s "$TMP/written.bin" "$WWW/big.bin" || fail "-o FILE differs"
[ ! -s "$TMP/outfile.out" ] || fail "-o FILE also wrote to stdout"
hc outempty 0 -o "$TMP/empty.txt" -X HEAD "$H/small.txt"
[ -f "$TMP/empty.txt" ] && [ ! -s "$TMP/empty.txt" ] || fail "-o with an empty body: no empty file"
pass "-o FILE writes the body (and an empty file for HEAD), stdout stays empty"

# chunked: nginx's sub_filter makes the length unknown, so nginx must chunk
curl -sS --max-time 30 -D "$TMP/chunked.hdr" -o "$TMP/chunked.curl" "$H/chunked/lines.txt" || fail "curl chunked"
grep -qi '^transfer-encoding: *chunked' "$TMP/chunked.hdr" || fail "nginx did not chunk: $(cat "$TMP/chunked.hdr")"
! grep -qi '^content-length' "$TMP/chunked.hdr" || fail "nginx sent Content-Length for the chunked response"
hc chunked 0 "$H/chunked/lines.txt"
cmp -s "$TMP/chunked.out" "$TMP/chunked.curl" || fail "chunked body differs from curl's"
[ "$(sed 's/line/LINE/' "$WWW/lines.txt" | sha256sum)" = "$(sha256sum <"$TMP/chunked.out")" ] || fail "chunked content"
hc chunkedtls 0 --cacert "$CA" "$HS/chunked/lines.txt"
cmp -s "$TMP/chunkedtls.out" "$TMP/chunked.curl" || fail "chunked body over HTTPS differs"
pass "Transfer-Encoding: chunked (asserted with curl) equals curl's body, over HTTP and HTTPS"

# ---- headers, redirects, errors ---------------------------------------------
hc include 0 -i "$H/small.txt"
head -1 "$TMP/include.out" | grep -q '^HTTP/1.1 200 OK' || fail "-i: $(head -1 "$TMP/include.out")"
grep -qi '^content-length: 29' "$TMP/include.out" || fail "-i: no Content-Length header"
tail -1 "$TMP/include.out" | cmp -s - "$WWW/small.txt" || fail "-i: body after the headers differs"
pass "-i writes the status line and headers, then the body"

hc noredirect 0 -i "$H/redirect"
head -1 "$TMP/noredirect.out" | grep -q '^HTTP/1.1 302 ' || fail "302 without -L: $(head -1 "$TMP/noredirect.out")"
grep -qi "^location: http://127.0.0.1:$P/small.txt" "$TMP/noredirect.out" || fail "302 without -L: Location"
grep -q '302 Found' "$TMP/noredirect.out" || fail "302 without -L: no 302 body"
pass "without -L the 302 itself is the answer (headers and body)"
hc redirect 0 -L "$H/redirect"
cmp -s "$TMP/redirect.out" "$WWW/small.txt" || fail "-L did not follow the 302"
hc relredirect 0 -L -v "$H/dir/relative"
cmp -s "$TMP/relredirect.out" "$WWW/small.txt" || fail "-L relative Location"
grep -q 'GET /small.txt HTTP/1.1' "$TMP/relredirect.err" || fail "relative Location '../small.txt' not resolved"
grep -qF "* Trying 127.0.0.1:$P..." "$TMP/relredirect.err" || fail "-v does not show the address tried"
grep -qF "* Connected to 127.0.0.1 (127.0.0.1:$P)" "$TMP/relredirect.err" || fail "-v does not show the peer address"
# A name with two addresses, the first refusing (nginx listens on 127.0.0.1
# only): -v shows each address as it is tried, in order.
hc tries 0 -v --resolve "two.test:$P:127.0.0.2,127.0.0.1" "http://two.test:$P/small.txt"
cmp -s "$TMP/tries.out" "$WWW/small.txt" || fail "--resolve: wrong body"
tried=$(grep '^\* Trying ' "$TMP/tries.err" | tr '\n' '|')
[ "$tried" = "* Trying 127.0.0.2:$P...|* Trying 127.0.0.1:$P...|" ] || fail "-v attempts: '$tried'"
grep -qF "* Connected to two.test (127.0.0.1:$P)" "$TMP/tries.err" || fail "--resolve: not connected to the second address"
hc badresolve 2 --resolve "two.test:$P:not-an-ip" "http://two.test:$P/"
err_has badresolve "not an IP literal"
pass "-v shows every address tried (refused 127.0.0.2, then 127.0.0.1); --resolve"
hc fakerel 0 -L "$F/relative"
[ "$(cat "$TMP/fakerel.out")" = "relative!" ] || fail "Location with dot segments: $(cat "$TMP/fakerel.out")"
hc https_hop 0 -L --cacert "$CA" "$H/to-https"
cmp -s "$TMP/https_hop.out" "$WWW/small.txt" || fail "redirect from http to https"
hc elsewhere 0 -L "$F/elsewhere"
cmp -s "$TMP/elsewhere.out" "$WWW/small.txt" || fail "308 to another server"
pass "-L follows absolute, relative (../, ./) and cross-scheme/cross-server Locations"
hc seeother 0 -L -X POST -d 'x=1' "$H/see-other"
cmp -s "$TMP/seeother.out" "$WWW/small.txt" || fail "303 after POST did not turn into GET"
hc temporary 8 -L -f -X POST -d 'x=1' "$H/temporary"
err_has temporary 405
pass "303 turns POST into GET; 307 keeps POST (nginx answers 405)"
hc fivehops 0 -L "$H/hop5"
cmp -s "$TMP/fivehops.out" "$WWW/small.txt" || fail "5 redirects"
hc sixhops 10 -L "$H/hop6"
err_has sixhops "too many redirects"
hc loop 10 -L "$F/loop"
pass "5 redirects are followed, a 6th gives exit 10"

hc notfound 0 "$H/missing"
grep -q '404 Not Found' "$TMP/notfound.out" || fail "404 body"
hc notfoundf 8 -f "$H/missing"
err_has notfoundf 404
[ ! -s "$TMP/notfoundf.out" ] || fail "-f wrote the error body"
pass "404: body shown (exit 0), with -f exit 8 and no body"
hc head 0 -i -X HEAD "$H/big.bin"
grep -qi '^content-length: 20971520' "$TMP/head.out" || fail "HEAD: headers"
[ "$(wc -c <"$TMP/head.out")" -lt 1000 ] || fail "HEAD read a body"
pass "HEAD: headers only, Content-Length not read as a body"

# ---- TLS failures -----------------------------------------------------------
hc noca 5 "$HS/small.txt"
err_has noca "certificate verif"
hc mismatch 5 --cacert "$CA" "https://localhost:$PO/small.txt"
err_has mismatch "certificate"
hc badca 5 --cacert "$TMP/nonexistent.pem" "$HS/small.txt"
err_has badca "nonexistent.pem"
hc plaintotls 5 "https://127.0.0.1:$P/small.txt"
err_has plaintotls "does not speak TLS on this port"
hc insecure 0 --insecure "$HS/small.txt"
cmp -s "$TMP/insecure.out" "$WWW/small.txt" || fail "--insecure"
hc insecure2 0 -k "https://localhost:$PO/small.txt"
cmp -s "$TMP/insecure2.out" "$WWW/small.txt" || fail "-k with a mismatched name"
pass "TLS: unknown CA, wrong name, bad --cacert, plaintext peer (with a hint): exit 5; --insecure works"

# ---- connection failures and timeouts -------------------------------------
hc refused 4 "http://127.0.0.1:$PR/"
err_has refused "refused"
pass "refused port: exit 4"

t0=$(date +%s.%N)
hc silent 6 --timeout 1 "$F/silent"
t1=$(date +%s.%N)
err_has silent "timed out"
python3 -c "import sys; sys.exit(0 if $t1 - $t0 < 5 else 1)" || fail "--timeout 1 took $(python3 -c "print($t1 - $t0)") s"
hc silenttls 6 --timeout 1 "https://127.0.0.1:$PF/"
hc slowbody 6 --timeout 1 -o "$TMP/slow.bin" "$H/slow/big.bin"
[ -s "$TMP/slow.bin" ] || fail "--timeout during the body: nothing written before it"
pass "--timeout 1: exit 6 within 5 s (no answer, TLS handshake, slow body)"

if unshare -n true 2>/dev/null; then NS=(unshare -n)
elif unshare -rn true 2>/dev/null; then NS=(unshare -rn)
else NS=(); fi
if [ ${#NS[@]} -gt 0 ]; then
    # No network at all in the namespace (not even loopback): the lookup fails
    # on this machine, without a packet leaving it.
    rc=0
    timeout 60 "${NS[@]}" "$HC" "http://nonexistent-host.invalid/" >"$TMP/resolve.out" 2>"$TMP/resolve.err" || rc=$?
    ! grep -q Sanitizer "$TMP/resolve.err" || fail "resolve: sanitizer report: $(head -40 "$TMP/resolve.err")"
    [ "$rc" = 3 ] || fail "unresolvable host: exit status $rc, expected 3: $(cat "$TMP/resolve.err")"
    err_has resolve "nonexistent-host.invalid"
    pass "unresolvable host (in a network namespace without network): exit 3"
else
    echo "SKIP (one case): unresolvable host -- cannot create a network namespace (unshare -n / -rn)," \
        "and resolving a name outside one could send a DNS query off this machine"
fi
if [ ${#NS[@]} -gt 0 ] && command -v ip >/dev/null && "${NS[@]}" -m true 2>/dev/null; then
    # A DNS server that never answers, inside a network + mount namespace (the
    # bind-mounted resolv.conf is seen there only): getaddrinfo() hangs on the
    # loop's executor thread, and --timeout must still end the run on time.
    cat >"$TMP/slowdns.sh" <<'EOF'
ip link set lo up && echo "nameserver 127.0.0.1" >"$2/resolv.conf" && mount --bind "$2/resolv.conf" /etc/resolv.conf || exit 99
python3 -c 'import socket, sys; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 53))
open(sys.argv[1], "w").close()
while True: s.recvfrom(4096)' "$2/dns.ready" &
for _ in $(seq 100); do [ -e "$2/dns.ready" ] && break; sleep 0.05; done
[ -e "$2/dns.ready" ] || exit 99
rc=0
"$1" --timeout 1 http://slow-dns.invalid/ || rc=$?
kill %1
exit $rc
EOF
    t0=$(date +%s.%N)
    rc=0
    timeout 60 "${NS[@]}" -m bash "$TMP/slowdns.sh" "$HC" "$TMP" >"$TMP/slowdns.out" 2>"$TMP/slowdns.err" || rc=$?
    t1=$(date +%s.%N)
    ! grep -q Sanitizer "$TMP/slowdns.err" || fail "slow DNS: sanitizer report: $(head -40 "$TMP/slowdns.err")"
    if [ "$rc" = 99 ]; then
        echo "SKIP (one case): hanging DNS -- could not set up the namespace: $(cat "$TMP/slowdns.err")"
    else
        [ "$rc" = 6 ] || fail "slow DNS with --timeout 1: exit status $rc, expected 6: $(cat "$TMP/slowdns.err")"
        python3 -c "import sys; sys.exit(0 if $t1 - $t0 < 5 else 1)" ||
            fail "slow DNS: --timeout 1 took $(python3 -c "print($t1 - $t0)") s"
        pass "a DNS server that never answers: --timeout 1 still exits 6 within 5 s"
    fi
else
    echo "SKIP (one case): hanging DNS -- cannot create a network + mount namespace"
fi

# ---- strict parsing against the fake server --------------------------------
for path in bad-status bad-header bad-length length-mismatch both folded huge-head truncated \
    bad-chunk chunk-overflow chunk-no-crlf chunk-cut space-colon bare-cr length-65 te-http10 chunk-lf \
    chunk-bad-ext bad-trailer; do
    hc "fake-$path" 7 --timeout 20 "$F/$path"
    err_has "fake-$path" "127.0.0.1:$PF"
done
err_has fake-truncated "10 of 100"
err_has fake-bad-header "in 'Bad Header: x?'"
pass "malformed or truncated responses: exit 7 with a message"
hc fake-chunked 0 -v "$F/chunked"
[ "$(cat "$TMP/fake-chunked.out")" = "hello, world" ] || fail "chunk extensions/trailers: $(cat "$TMP/fake-chunked.out")"
grep -q '< X-Trailer: yes' "$TMP/fake-chunked.err" || fail "trailer not shown with -v"
hc fake-continue 0 "$F/continue"
[ "$(cat "$TMP/fake-continue.out")" = ok ] || fail "100 Continue"
hc fake-lf 0 "$F/lf-only"
[ "$(cat "$TMP/fake-lf.out")" = ok ] || fail "LF-only head"
hc fake-close 0 "$F/until-close"
[ "$(cat "$TMP/fake-close.out")" = "until close" ] || fail "body until close"
hc fake-204 0 -i "$F/no-reason"
head -1 "$TMP/fake-204.out" | grep -q '^HTTP/1.1 204' || fail "204 without a reason phrase"
pass "chunk extensions + trailers, 100 Continue, LF-only head, body until close, 204"

hc post 0 -d 'a=1&b=2' "$F/continue"
grep -q '^POST /continue HTTP/1.1' "$TMP/fake-requests.log" || fail "-d did not POST"
grep -qi '^content-length: 7' "$TMP/fake-requests.log" || fail "-d: no Content-Length"
grep -qi "^host: 127.0.0.1:$PF" "$TMP/fake-requests.log" || fail "no Host header"
grep -qi '^connection: close' "$TMP/fake-requests.log" || fail "no Connection: close"
grep -qi '^user-agent: ' "$TMP/fake-requests.log" || fail "no User-Agent"
pass "request: Host, Connection: close, User-Agent; -d sends POST with Content-Length"

# ---- request options: -H, -A, -u, -I, -O, --max-redirs, -d @FILE ---------------
: >"$TMP/fake-requests.log"
hc opts 0 -H 'X-Custom:  one two ' -H 'Accept:' -H 'host: renamed.example' -A 'agent/9' -u 'user:pa:ss' "$F/continue"
python3 - "$TMP/fake-requests.log" <<'PY' || fail "-H/-A/-u: $(cat "$TMP/fake-requests.log")"
import base64, sys
lines = open(sys.argv[1], "rb").read().split(b"\r\n\r\n")[0].split(b"\r\n")
assert lines[0] == b"GET /continue HTTP/1.1", lines
assert lines[1] == b"host: renamed.example", lines          # -H replaces Host, in its place
assert b"User-Agent: agent/9" in lines, lines                 # -A
assert not any(l.lower().startswith(b"accept:") for l in lines), lines  # 'Accept:' removes it
assert b"X-Custom: one two" in lines, lines
assert b"Authorization: Basic " + base64.b64encode(b"user:pa:ss") in lines, lines
PY
: >"$TMP/fake-requests.log"
hc authhop 0 -L -u user:pass "$F/to-localhost"
[ "$(grep -c '^Host: ' "$TMP/fake-requests.log")" = 2 ] || fail "-u -L: not two requests: $(cat "$TMP/fake-requests.log")"
[ "$(grep -c '^Authorization: Basic dXNlcjpwYXNz' "$TMP/fake-requests.log")" = 1 ] ||
    fail "-u credentials went along a redirect to another host: $(cat "$TMP/fake-requests.log")"
pass "-H adds, replaces (in place) and removes headers; -A; -u Basic, not sent along a redirect to another host"

hc headonly 0 -I "$H/small.txt"
head -1 "$TMP/headonly.out" | grep -q '^HTTP/1.1 200' || fail "-I: $(head -1 "$TMP/headonly.out")"
grep -qi '^content-length: 29' "$TMP/headonly.out" || fail "-I: no Content-Length"
! grep -q 'a small file' "$TMP/headonly.out" || fail "-I wrote a body"
mkdir -p "$TMP/odir"
(cd "$TMP/odir" && hc remote 0 -O "$H/small.txt?x=1")
cmp -s "$TMP/odir/small.txt" "$WWW/small.txt" || fail "-O did not save small.txt"
[ ! -s "$TMP/remote.out" ] || fail "-O also wrote to stdout"
hc noname 2 -O "$H/"
err_has noname "no file name"
hc bothout 2 -O -o "$TMP/x" "$H/small.txt"
pass "-I: headers only; -O saves under the remote name (and refuses a URL without one)"
hc maxredirs1 10 -L --max-redirs 1 "$H/hop2"
hc maxredirs2 0 -L --max-redirs 2 "$H/hop2"
cmp -s "$TMP/maxredirs2.out" "$WWW/small.txt" || fail "--max-redirs 2 did not reach the file"
hc maxredirs0 10 -L --max-redirs 0 "$H/redirect"
hc badmaxredirs 2 --max-redirs -1 "$H/redirect"
pass "--max-redirs N: N redirects are followed, one more gives exit 10"
hc badheader 2 -H 'Bad Header: x' "$H/small.txt"
hc lenheader 2 -H 'Content-Length: 3' "$H/small.txt"
hc ctlheader 2 -H "X-A: a$(printf '\001')b" "$H/small.txt"
hc badagent 2 -A "a$(printf '\r')b" "$H/small.txt"
hc badauth 2 -u nopassword "$H/small.txt"
hc nofile 11 -d @"$TMP/missing.bin" "$H/small.txt"
err_has nofile "missing.bin"
pass "bad -H, -A or -u: exit 2; an unreadable -d @FILE: exit 11"

# ---- usage and output errors -------------------------------------------------
hc help 0 --help
grep -q 'too many redirects' "$TMP/help.out" || fail "--help does not list the exit codes"
hc nourl 2
hc badscheme 2 "ftp://127.0.0.1/"
hc badport 2 "http://127.0.0.1:99999/"
hc badtimeout 2 --timeout abc "$H/small.txt"
hc badmethod 2 -X 'GE T' "$H/small.txt"
pass "usage errors: exit 2"
hc nodir 9 -o "$TMP/no/such/dir/file" "$H/small.txt"
rc=0
timeout 60 "$HC" "$H/big.bin" 2>"$TMP/pipe.err" | head -c 1000 >/dev/null
rc=${PIPESTATUS[0]}
! grep -q Sanitizer "$TMP/pipe.err" || fail "closed pipe: sanitizer report"
[ "$rc" = 9 ] || fail "writing into a closed pipe: exit $rc, expected 9"
pass "output errors (no such directory, closed pipe): exit 9"

# ---- progress bar on a terminal ---------------------------------------------
if script -qec true /dev/null >/dev/null 2>&1; then
    timeout 60 script -qec "'$HC' -o '$TMP/tty.bin' '$H/big.bin'" "$TMP/tty.log" >/dev/null 2>&1 ||
        fail "http_client under script(1) failed: $(tail -c 500 "$TMP/tty.log")"
    grep -q '100%' "$TMP/tty.log" || fail "no progress bar on a terminal: $(tail -c 300 "$TMP/tty.log")"
    cmp -s "$TMP/tty.bin" "$WWW/big.bin" || fail "download under script(1) differs"
    pass "a progress bar is drawn when stderr is a terminal"
    # A slow body (nginx limit_rate 64k) on a 100-column terminal that shrinks
    # to 50 columns after 1.5 s (the kernel sends SIGWINCH): every frame fits
    # the width of its moment, the first shows no rate, none claims MiB/s.
    printf '%s\n' "stty cols 100" "'$HC' --timeout 3 -o '$TMP/slowtty.bin' '$H/slow/big.bin' &" \
        "sleep 1.5" "stty cols 50" "wait" >"$TMP/winch.sh"
    timeout 60 script -qec "sh '$TMP/winch.sh'" "$TMP/winch.log" >/dev/null 2>&1 || true
    python3 - "$TMP/winch.log" <<'PY' || fail "progress bar on a resized terminal: $(tail -c 600 "$TMP/winch.log" | cat -v)"
import re, sys
d = open(sys.argv[1], "rb").read().decode("latin-1")
frames = [re.sub(r"\x1b\[K", "", f) for f in re.split(r"[\r\n]", d)]
frames = [f for f in frames if f.startswith("[") or re.match(r" *\d+%", f)]
assert len(frames) >= 3, frames
assert all(len(f) <= 99 for f in frames), max(frames, key=len)
assert any(len(f) > 49 for f in frames), "never wider than 49 columns on a 100-column terminal"
narrow = next(i for i, f in enumerate(frames) if len(f) <= 49 and i > 0)
assert all(len(f) <= 49 for f in frames[narrow:]), frames[narrow:]
assert "/s" not in frames[0], frames[0]
rates = re.findall(r"[\d.]+ (B|KiB|MiB)/s", " ".join(frames))
assert rates and "MiB" not in rates, rates
PY
    pass "the bar fits the terminal, follows SIGWINCH, and shows no rate until it can measure one"
else
    echo "SKIP (one case): progress bar -- script(1) cannot allocate a terminal here"
fi

# ---- the project's own http_server -------------------------------------------
SRV=$TS_BUILD_DIR/examples/http_server
if [ -x "$SRV" ]; then
    PH=$(free_port)
    PHS=$(free_port)
    start http_server "$SRV" "$PH" --root "$WWW"
    start https_server "$SRV" "$PHS" --root "$WWW" --tls "$TMP/certs/server.pem" "$TMP/certs/server.key"
    wait_port "$PH"
    wait_port "$PHS"
    hc own 0 "http://127.0.0.1:$PH/small.txt"
    cmp -s "$TMP/own.out" "$WWW/small.txt" || fail "http_server GET /small.txt: $(cat "$TMP/own.out")"
    hc owntls 0 --cacert "$CA" "https://localhost:$PHS/small.txt"
    cmp -s "$TMP/owntls.out" "$WWW/small.txt" || fail "http_server over TLS"
    hc ownbig 0 --cacert "$CA" "https://localhost:$PHS/big.bin"
    [ "$(sha "$TMP/ownbig.out")" = "$want" ] || fail "http_server 20 MiB over TLS"
    hc ownecho 0 -d 'ping-pong' "http://127.0.0.1:$PH/echo"
    [ "$(cat "$TMP/ownecho.out")" = "ping-pong" ] || fail "http_server POST /echo: $(cat "$TMP/ownecho.out")"
    head -c 300000 /dev/urandom >"$TMP/post.bin"
    hc ownechofile 0 -d @"$TMP/post.bin" "http://127.0.0.1:$PH/echo"
    cmp -s "$TMP/ownechofile.out" "$TMP/post.bin" || fail "-d @FILE (300 KB of random bytes) not echoed intact"
    pass "examples/http_server: a small file over HTTP and HTTPS, 20 MiB over HTTPS, POST /echo (also -d @FILE)"
else
    echo "SKIP (one part): $SRV is not built"
fi

grep -q '\[alert\]\|\[emerg\]' "$TMP/nginx/logs/error.log" && fail "nginx: $(grep 'alert\|emerg' "$TMP/nginx/logs/error.log")"
echo "all http_client checks passed"
