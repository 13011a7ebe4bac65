#!/usr/bin/env bash
# examples/http_server as a static file server, driven with curl, and checked
# against nginx serving the same directory: media types, index.html,
# directory redirects and listings, byte ranges (206, 416), validators and
# 304s, HEAD, 405 with Allow, path safety (.., %-encoding, symbolic links),
# the access log, a sparse file past 2 GiB, a download slower than the idle
# timeout, and flow control with pipelined file requests.
. "$(dirname "$0")/support/testlib.sh"
. "$(dirname "$0")/support/nginx_helper.sh"
need curl python3 cmp
SRV=$TS_BUILD_DIR/examples/http_server
[ -x "$SRV" ] || fail "$SRV not built"

R=$TMP/root
mkdir -p "$R/sub" "$R/docs" "$R/a&b <dir>" "$TMP/outside"
printf 'small file\n' >"$R/sub/small.txt"
printf '<h1>docs</h1>\n' >"$R/docs/index.html"
printf 'body { }\n' >"$R/style.css"
printf 'zz' >"$R/a&b <dir>/it's \"quoted\".txt"
head -c 1048576 /dev/urandom >"$R/one.bin"
head -c 8000000 /dev/urandom >"$R/slow.bin"
: >"$R/empty.txt"
printf 'secret\n' >"$TMP/outside/secret.txt"
ln -s "$TMP/outside/secret.txt" "$R/leak.txt"
ln -s sub/small.txt "$R/inside.txt"
# sparse, past 2 GiB, with markers near the start, across 2^31 and at the end
BIG=$((2 * 1024 * 1024 * 1024 + 5000))
truncate -s $BIG "$R/big.sparse"
printf 'START' | dd of="$R/big.sparse" conv=notrunc bs=1 seek=0 status=none
printf 'ACROSS' | dd of="$R/big.sparse" conv=notrunc bs=1 seek=$((2147483648 - 3)) status=none
printf 'END' | dd of="$R/big.sparse" conv=notrunc bs=1 seek=$((BIG - 3)) status=none

P=$(free_port)
start http "$SRV" "$P" --root "$R" --access-log "$TMP/access.log" --idle-timeout 2
wait_port "$P"
U=http://127.0.0.1:$P
C=(curl -sS --max-time 60)
code() { "${C[@]}" -o /dev/null -w '%{http_code}' "$@"; }
header() { # header NAME CURL-ARGS...: the value of response header NAME
    local name=$1
    shift
    "${C[@]}" -o /dev/null -D - "$@" | tr -d '\r' | awk -v n="$(echo "$name" | tr A-Z a-z)" \
        'BEGIN{FS=": "} tolower($1)==n {sub(/^[^:]*: /, ""); print; exit}'
}

# ---- files, types, HEAD ----
"${C[@]}" "$U/one.bin" | cmp -s - "$R/one.bin" || fail "GET /one.bin differs"
[ "$(header Content-Type "$U/style.css")" = text/css ] || fail "css type: $(header Content-Type "$U/style.css")"
[ "$(header Content-Type "$U/sub/small.txt")" = text/plain ] || fail "txt type"
[ "$(header Content-Type "$U/one.bin")" = application/octet-stream ] || fail "bin type"
printf 'text/x-tstream-test tstx\n' >"$TMP/types"
printf 't' >"$R/f.tstx"
PM=$(free_port)
start http_mime "$SRV" "$PM" --root "$R" --mime-types "$TMP/types"
wait_port "$PM"
[ "$(header Content-Type "http://127.0.0.1:$PM/f.tstx")" = text/x-tstream-test ] || fail "--mime-types not used"
[ "$(header Content-Type "http://127.0.0.1:$PM/style.css")" = text/css ] || fail "built-in fallback not used"
pass "bodies intact; types from /etc/mime.types, --mime-types, and the built-in fallback"
h=$("${C[@]}" -I "$U/one.bin" | tr -d '\r')
grep -qx 'Content-Length: 1048576' <<<"$h" || fail "HEAD length: $h"
grep -qx 'Accept-Ranges: bytes' <<<"$h" || fail "HEAD: no Accept-Ranges"
grep -q '^Date: ' <<<"$h" || fail "no Date"
grep -q '^Last-Modified: ' <<<"$h" || fail "no Last-Modified"
grep -q '^ETag: "' <<<"$h" || fail "no ETag"
[ "$("${C[@]}" -I "$U/one.bin" -o /dev/null -w '%{size_download}')" = 0 ] || fail "HEAD sent a body"
[ "$(header Content-Length "$U/empty.txt")" = 0 ] || fail "empty file"
pass "HEAD: headers, no body; Date, Last-Modified, ETag, Accept-Ranges"

# ---- methods ----
[ "$(code -X DELETE "$U/one.bin")" = 405 ] || fail "DELETE"
[ "$(header Allow -X PUT "$U/one.bin")" = "GET, HEAD" ] || fail "Allow: $(header Allow -X PUT "$U/one.bin")"
[ "$(header Allow "$U/echo")" = POST ] || fail "Allow for /echo"
pass "405 with Allow"

# ---- directories ----
[ "$(code "$U/docs")" = 301 ] || fail "no 301 for /docs"
[ "$(header Location "$U/docs?x=1")" = "/docs/?x=1" ] || fail "Location: $(header Location "$U/docs?x=1")"
[ "$("${C[@]}" "$U/docs/")" = "<h1>docs</h1>" ] || fail "index.html"
[ "$("${C[@]}" -L "$U/docs")" = "<h1>docs</h1>" ] || fail "following the 301"
listing=$("${C[@]}" "$U/")
[ "$(header Content-Type "$U/")" = "text/html; charset=utf-8" ] || fail "listing type"
grep -q 'a&amp;b &lt;dir&gt;/' <<<"$listing" || fail "listing: name not escaped: $listing"
grep -q 'href="a%26b%20%3Cdir%3E/"' <<<"$listing" || fail "listing: href not encoded"
grep -q '>1048576<' <<<"$listing" || fail "listing: no size"
grep -Eq '[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}' <<<"$listing" || fail "listing: no date"
order=$(grep -o 'href="[^"]*"' <<<"$listing" | tr '\n' ' ')
[ "$order" = 'href="a%26b%20%3Cdir%3E/" href="docs/" href="sub/" href="big.sparse" href="empty.txt" href="f.tstx" href="inside.txt" href="leak.txt" href="one.bin" href="slow.bin" href="style.css" ' ] ||
    fail "listing order: $order"
sub=$("${C[@]}" "$U/a%26b%20%3Cdir%3E/")
grep -q 'it&#39;s &quot;quoted&quot;.txt' <<<"$sub" || fail "listing: quotes not escaped: $sub"
grep -q 'href="../"' <<<"$sub" || fail "no parent link"
[ "$("${C[@]}" "$U/a%26b%20%3Cdir%3E/it%27s%20%22quoted%22.txt")" = zz ] || fail "percent-decoded name"
pass "directories: 301 to the slash form (query kept), index.html, sorted escaped listing with sizes and dates"

# ---- path safety ----
[ "$(code --path-as-is "$U/../../etc/passwd")" = 400 ] || fail "../ above the root"
[ "$(code --path-as-is "$U/sub/%2e%2e/%2e%2e/etc/passwd")" = 400 ] || fail "encoded ../ above the root"
[ "$("${C[@]}" --path-as-is "$U/sub/../sub/./small.txt")" = "small file" ] || fail ".. inside the root"
[ "$(code "$U/leak.txt")" = 403 ] || fail "symlink out of the root"
[ "$("${C[@]}" "$U/inside.txt")" = "small file" ] || fail "symlink inside the root"
[ "$(code "$U/sub/small.txt%00.bin")" = 400 ] || fail "encoded NUL"
[ "$(code "$U/sub/%zz")" = 400 ] || fail "bad percent-encoding"
[ "$(code "$U/sub/small.txt/")" = 404 ] || fail "file with a trailing slash"
pass "path safety: .. above the root 400, links out 403, %00 and bad %-escapes 400"

# ---- ranges ----
cut_bytes() { tail -c +$(($2 + 1)) "$1" | head -c $(($3 - $2 + 1)); }
r=$("${C[@]}" -r 100-199 -D "$TMP/h" "$U/one.bin" | od -An -tx1)
[ "$r" = "$(cut_bytes "$R/one.bin" 100 199 | od -An -tx1)" ] || fail "range 100-199 body"
tr -d '\r' <"$TMP/h" | grep -qx 'HTTP/1.1 206 Partial Content' || fail "range: not 206"
tr -d '\r' <"$TMP/h" | grep -qx 'Content-Range: bytes 100-199/1048576' || fail "Content-Range: $(cat "$TMP/h")"
tr -d '\r' <"$TMP/h" | grep -qx 'Content-Length: 100' || fail "range length"
[ "$("${C[@]}" -r -10 "$U/one.bin" | od -An -tx1)" = "$(tail -c 10 "$R/one.bin" | od -An -tx1)" ] || fail "suffix range"
[ "$("${C[@]}" -r 1048570- "$U/one.bin" | wc -c)" = 6 ] || fail "open range"
[ "$("${C[@]}" -r 1048570-99999999 "$U/one.bin" | wc -c)" = 6 ] || fail "range past the end"
[ "$(code -r 1048576- "$U/one.bin")" = 416 ] || fail "unsatisfiable range"
[ "$(header Content-Range -r 2000000-3000000 "$U/one.bin")" = "bytes */1048576" ] || fail "416 Content-Range"
[ "$(code -r 0-1,5-6 "$U/one.bin")" = 200 ] || fail "several ranges: not the whole file"
[ "$(code -H 'Range: bytes=9-3' "$U/one.bin")" = 200 ] || fail "invalid range not ignored"
[ "$(code -H 'Range: items=1-2' "$U/one.bin")" = 200 ] || fail "other unit not ignored"
etag=$(header ETag "$U/one.bin")
[ "$(code -r 0-9 -H "If-Range: $etag" "$U/one.bin")" = 206 ] || fail "If-Range with the current ETag"
[ "$(code -r 0-9 -H 'If-Range: "old"' "$U/one.bin")" = 200 ] || fail "If-Range with another ETag"
pass "ranges: 206 with Content-Range, suffix and open ranges, 416 with bytes */size, If-Range"

# ---- validators ----
[ "$(code -H "If-None-Match: $etag" "$U/one.bin")" = 304 ] || fail "If-None-Match"
[ "$(code -H "If-None-Match: \"x\", W/$etag" "$U/one.bin")" = 304 ] || fail "If-None-Match list, weak"
[ "$(code -H 'If-None-Match: "x"' "$U/one.bin")" = 200 ] || fail "If-None-Match other"
[ "$(code -H 'If-None-Match: *' "$U/one.bin")" = 304 ] || fail "If-None-Match *"
lm=$(header Last-Modified "$U/one.bin")
[ "$(code -H "If-Modified-Since: $lm" "$U/one.bin")" = 304 ] || fail "If-Modified-Since"
[ "$(code -H 'If-Modified-Since: Sat, 01 Jan 2000 00:00:00 GMT' "$U/one.bin")" = 200 ] || fail "IMS in the past"
[ "$(code -H 'If-Modified-Since: Saturday, 01-Jan-00 00:00:00 GMT' "$U/one.bin")" = 200 ] || fail "RFC 850 date"
[ "$(code -H "If-None-Match: \"x\"" -H "If-Modified-Since: $lm" "$U/one.bin")" = 200 ] || fail "INM must win over IMS"
"${C[@]}" -D "$TMP/h304" -o "$TMP/b304" -H "If-None-Match: $etag" "$U/one.bin"
[ ! -s "$TMP/b304" ] || fail "304 with a body"
! tr -d '\r' <"$TMP/h304" | grep -qi '^Content-Length' || fail "304 with a Content-Length"
pass "validators: If-None-Match (lists, weak, *) and If-Modified-Since give 304 without a body"

# ---- past 2 GiB, zero copy ----
[ "$(header Content-Length "$U/big.sparse")" = $BIG ] || fail "big: length"
[ "$("${C[@]}" -r $((2147483648 - 3))-$((2147483648 + 2)) "$U/big.sparse")" = ACROSS ] || fail "big: range across 2 GiB"
[ "$("${C[@]}" -r -3 "$U/big.sparse")" = END ] || fail "big: suffix"
"${C[@]}" --max-time 120 "$U/big.sparse" | cmp - "$R/big.sparse" || fail "big: whole file differs"
pass "a sparse file of 2 GiB + 5000 bytes: ranges across 2^31 and the whole file intact"

# ---- a download slower than the idle timeout (2 s here) is not idle ----
"${C[@]}" --limit-rate 2000000 "$U/slow.bin" | cmp -s - "$R/slow.bin" || fail "slow download cut off"
pass "a 4 s download at 2 MB/s with --idle-timeout 2 completes"

# ---- the idle clock restarts at every request: busy past the timeout, closed 2 s after the last ----
python3 - "$P" <<'PY' || fail "idle timeout after keep-alive requests (see above)"
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
def get():
    s.sendall(b"GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n")
    got = b""
    while b"\r\n\r\n" not in got:
        d = s.recv(65536)
        assert d, "closed while busy"
        got += d
    head, _, body = got.partition(b"\r\n\r\n")
    n = int([l.split(b":")[1] for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")][0])
    while len(body) < n:
        body += s.recv(65536)
t0 = time.monotonic()
while time.monotonic() - t0 < 4.5:  # more than twice the timeout
    get()
    last = time.monotonic()
    time.sleep(0.4)
assert s.recv(1) == b"", "data after the last answer"
waited = time.monotonic() - last
print("closed %.2f s after the last request (timeout 2 s)" % waited)
assert 1.5 <= waited <= 3.0, waited
PY
pass "keep-alive requests for 4.5 s with --idle-timeout 2: open while busy, closed 2 s after the last"

# ---- flow control: pipelined file requests while the client reads nothing ----
pid=$(cat "$TMP/http.pid")
python3 - "$P" "$pid" "$R/one.bin" <<'PY' || fail "flow control with pipelined files (see above)"
import os, socket, sys, time
port, pid, path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
want = open(path, "rb").read()
fds = lambda: len(os.listdir("/proc/%d/fd" % pid))
base = fds()
n = 40
s = socket.create_connection(("127.0.0.1", port), timeout=20)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
s.sendall(b"GET /one.bin HTTP/1.1\r\nHost: x\r\n\r\n" * (n - 1) + b"GET /one.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
time.sleep(0.7)
peak = fds() - base
# one connection plus the file region being sent; without flow control each queued answer would hold a descriptor
if peak > 3:
    sys.exit("the server holds %d more descriptors with %d requests pipelined" % (peak, n))
data = bytearray()
while True:
    b = s.recv(1 << 20)
    if not b:
        break
    data += b
got = 0
i = 0
while i < len(data):
    end = data.index(b"\r\n\r\n", i)
    head = bytes(data[i:end])
    assert head.startswith(b"HTTP/1.1 200"), head[:40]
    i = end + 4
    if data[i:i + len(want)] != want:
        sys.exit("answer %d differs" % got)
    i += len(want)
    got += 1
if got != n:
    sys.exit("%d answers for %d requests" % (got, n))
print("ok: %d pipelined 1 MiB answers intact; +%d descriptors while the client did not read" % (n, peak))
PY

# ---- the access log ----
sleep 0.2
lines=$(wc -l <"$TMP/access.log")
[ "$lines" -gt 60 ] || fail "access log: $lines lines"
bad=$(grep -Evc '^127\.0\.0\.1 - - \[[0-9]{2}/[A-Z][a-z]{2}/[0-9]{4}:[0-9]{2}:[0-9]{2}:[0-9]{2} [+-][0-9]{4}\] "[^"]*" [0-9]{3} ([0-9]+|-)$' "$TMP/access.log")
[ "$bad" = 0 ] || fail "access log: $bad lines not in the common log format: $(head -3 "$TMP/access.log")"
grep -q '"GET /one.bin HTTP/1.1" 200 1048576$' "$TMP/access.log" || fail "access log: no GET line"
grep -q '"GET /one.bin HTTP/1.1" 206 100$' "$TMP/access.log" || fail "access log: no 206 line"
grep -q '"HEAD /one.bin HTTP/1.1" 200 -$' "$TMP/access.log" || fail "access log: HEAD sends no bytes"
grep -q '"DELETE /one.bin HTTP/1.1" 405 ' "$TMP/access.log" || fail "access log: no 405 line"
pass "access log: $lines lines, all in the common log format"

# ---- nginx on the same directory: same bytes, same statuses ----
nginx_find
NP=$(free_port)
nginx_start nginx "$TMP/nginx" "server { listen 127.0.0.1:$NP; root $R; disable_symlinks off; }"
wait_port "$NP"
N=http://127.0.0.1:$NP
same() { # same WHAT CURL-ARGS... PATH: status, body and the given headers agree
    local what=$1 path=${!#}
    set -- "${@:2:$#-2}"
    local a b
    a=$("${C[@]}" "$@" -D "$TMP/ha" -o "$TMP/ba" -w '%{http_code}' "$U$path")
    b=$("${C[@]}" "$@" -D "$TMP/hb" -o "$TMP/bb" -w '%{http_code}' "$N$path")
    [ "$a" = "$b" ] || fail "$what: http_server $a, nginx $b"
    if [ "$a" -lt 300 ] && [[ " $* " != *" -I "* ]]; then # (with -I curl writes the head as the body)
        cmp -s "$TMP/ba" "$TMP/bb" || fail "$what: bodies differ"
    fi
    local hdr
    for hdr in ETag Content-Range Content-Length Last-Modified; do
        local x y
        x=$(tr -d '\r' <"$TMP/ha" | grep -i "^$hdr:" | cut -d' ' -f2-)
        y=$(tr -d '\r' <"$TMP/hb" | grep -i "^$hdr:" | cut -d' ' -f2-)
        [ "$hdr" = Content-Length ] && [ "$a" != 200 ] && [ "$a" != 206 ] && continue # error bodies differ
        [ "$x" = "$y" ] || fail "$what: $hdr '$x' vs nginx '$y'"
    done
}
same "GET" /one.bin
same "GET small" /sub/small.txt
same "HEAD" -I /one.bin
same "range" -r 100-199 /one.bin
same "suffix range" -r -77 /one.bin
same "open range" -r 1048000- /one.bin
same "unsatisfiable range" -r 2000000- /one.bin
same "If-None-Match" -H "If-None-Match: $etag" /one.bin
same "If-Modified-Since" -H "If-Modified-Since: $lm" /one.bin
same "index.html" /docs/
same "dir without slash" /docs
same "missing" /nope
same "range past 2 GiB" -r $((2147483648 - 3))-$((2147483648 + 2)) /big.sparse
pass "nginx agrees: bytes, statuses, ETag, Last-Modified, Content-Range for files, ranges, 304s, 416, 301, 404"

stop_graceful http || fail "http_server exited with status $? (sanitizer report?): $(tail -20 "$TMP/http.log")"
stop_graceful http_mime || fail "http_server (--mime-types) exited with status $?: $(tail -20 "$TMP/http_mime.log")"
pass "servers stopped cleanly on SIGTERM"
