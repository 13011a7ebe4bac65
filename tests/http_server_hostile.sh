#!/usr/bin/env bash
# examples/http_server against hostile and odd requests, one raw request per
# connection: the table of malformed framings that http_client refuses from a
# server (tests/http_client_nginx.sh), turned around, plus each request
# smuggling shape that RFC 9112 answers with 400, 414, 431, 501 or 505.
# Each row gives the statuses the server must send on that connection, in
# order ("-": none, the connection just closes), and whether it must close.
#   HOSTILE_SERVER=/path/to/http_server  runs the table against another build
#   and prints what each row got (the run still fails on a mismatch).
. "$(dirname "$0")/support/testlib.sh"
need python3
SRV=${HOSTILE_SERVER:-$TS_BUILD_DIR/examples/http_server}
[ -x "$SRV" ] || fail "$SRV not built"

mkdir -p "$TMP/root/sub"
echo "small file" >"$TMP/root/sub/small.txt"
# with --root, / is the root directory: its index.html is the greeting the checks expect
printf 'Hello from libtstream!\n' >"$TMP/root/index.html"
P=$(free_port)
start http "$SRV" "$P" --root "$TMP/root"
wait_port "$P"

cat >"$TMP/hostile.py" <<'PY'
import socket, sys, time
port = int(sys.argv[1])
H = b"Host: x\r\n"
pad = lambda n: b"a" * n
# name, request bytes, close the write side after sending?, wanted statuses, wanted body (or None)
ROWS = [
    # request smuggling and framing attacks that must be refused
    ("cl-conflict", b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: 3\r\nContent-Length: 40\r\n\r\nabc"
     b"GET /nope HTTP/1.1\r\nHost: x\r\nX-Pad: 12345\r\n\r\n", False, ["400"], None),
    ("cl-65-digits", b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: " + b"0" * 63 + b"40\r\n\r\n"
     b"GET /nope HTTP/1.1\r\nHost: x\r\nX-Pad: 12\r\n\r\n", False, ["400"], None),
    ("te-space-colon+cl", b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding : chunked\r\nContent-Length: 25\r\n\r\n"
     b"0\r\n\r\nGET /nope HTTP/1.1\r\n\r\n", False, ["400"], None),
    ("obs-fold-cl", b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: 0\r\n 40\r\n\r\n"
     b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n", False, ["400"], None),
    ("target-1031", b"GET /sub/small.txt?q=" + pad(1031 - 18) + b"f HTTP/1.1\r\n" + H + b"Connection: close\r\n\r\n",
     False, ["200"], b"small file\n"),
    ("connection-space-colon", b"GET / HTTP/1.1\r\n" + H + b"connection : close\r\n\r\n", False, ["400"], None),
    # the client's hostile-server table, as requests
    ("bad-request-line", b"G@T / HTTP/1.1\r\n" + H + b"\r\n", False, ["400"], None),
    ("bad-header", b"GET / HTTP/1.1\r\n" + H + b"Bad Header: x\r\n\r\n", False, ["400"], None),
    ("bad-length", b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: 12abc\r\n\r\n", False, ["400"], None),
    ("length-mismatch", b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: 2\r\nContent-Length: 3\r\n\r\nabc",
     False, ["400"], None),
    ("both", b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"3\r\nabc\r\n0\r\n\r\n", False, ["400"], None),
    ("folded", b"GET / HTTP/1.1\r\n" + H + b"X-A: 1\r\n  folded\r\n\r\n", False, ["400"], None),
    ("huge-head", b"GET / HTTP/1.1\r\n" + H + b"X-Big: " + pad(70000) + b"\r\n\r\n", False, ["431"], None),
    ("truncated", b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: 100\r\n\r\n0123456789", True, ["-"], None),
    ("bad-chunk", b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n", False, ["400"], None),
    ("chunk-overflow", b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n1ffffffffffffffff\r\n",
     False, ["400"], None),
    ("chunk-no-crlf", b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n",
     False, ["400"], None),
    ("chunk-cut", b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\na\r\nhello", True, ["-"], None),
    ("chunked", b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
     b"5;name=value\r\nhello\r\n7 ; x\r\n, world\r\n0\r\nX-Trailer: yes\r\n\r\n", False, ["200"], b"hello, world"),
    ("chunked-tiny", b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
     + b"1\r\nx\r\n" * 20000 + b"0\r\n\r\n", False, ["200"], b"x" * 20000),
    ("chunked-then-next", b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
     b"2\r\nab\r\n0\r\n\r\nGET /sub/small.txt HTTP/1.1\r\n" + H + b"Connection: close\r\n\r\n", False, ["200", "200"], None),
    ("absolute-form", b"GET http://x/sub/small.txt HTTP/1.1\r\n" + H + b"Connection: close\r\n\r\n", False, ["200"],
     b"small file\n"),
    ("absolute-form-root", b"GET HTTP://x HTTP/1.1\r\n" + H + b"Connection: close\r\n\r\n", False, ["200"],
     b"Hello from libtstream!\n"),
    ("crlf-before-request", b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: 2\r\n\r\nok\r\n"
     b"GET /sub/small.txt HTTP/1.1\r\n" + H + b"Connection: close\r\n\r\n", False, ["200", "200"], None),
    ("lf-only", b"GET /sub/small.txt HTTP/1.1\n" + H.replace(b"\r", b"") + b"Connection: close\n\n", False, ["200"],
     b"small file\n"),
    # more of RFC 9112
    ("line-over-8k", b"GET /" + pad(9000) + b" HTTP/1.1\r\n" + H + b"\r\n", False, ["414"], None),
    ("line-over-head-limit", b"GET /" + pad(40000) + b" HTTP/1.1\r\n" + H + b"\r\n", False, ["414"], None),
    ("head-over-16k", b"GET / HTTP/1.1\r\n" + H + b"X-Big: " + pad(20000) + b"\r\n\r\n", False, ["431"], None),
    ("no-host", b"GET / HTTP/1.1\r\n\r\n", False, ["400"], None),
    ("two-hosts", b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", False, ["400"], None),
    ("bare-cr", b"GET / HTTP/1.1\r\n" + H + b"X-A: a\rb\r\n\r\n", False, ["400"], None),
    ("nul-in-value", b"GET / HTTP/1.1\r\n" + H + b"X-A: a\0b\r\n\r\n", False, ["400"], None),
    ("te-not-chunked", b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: gzip\r\n\r\nabc", False, ["400"], None),
    ("te-gzip-chunked", b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
     False, ["501"], None),
    ("te-http10", b"POST /echo HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", False, ["400"], None),
    ("http2-version", b"GET / HTTP/2.0\r\n" + H + b"\r\n", False, ["505"], None),
    ("expect-100", b"POST /echo HTTP/1.1\r\n" + H + b"Expect: 100-continue\r\nContent-Length: 5\r\nConnection: close\r\n\r\n"
     b"hello", False, ["100", "200"], None),
    ("expect-unknown", b"POST /echo HTTP/1.1\r\n" + H + b"Expect: teapot\r\nContent-Length: 5\r\n\r\nhello", False, ["417"],
     None),
    ("cl-too-big", b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: 99999999999999999999\r\n\r\n", False, ["400"], None),
]

def read_responses(s, deadline):
    """Reads whole responses until one says Connection: close, the server closes, or 1.5 s pass quietly."""
    buf, out, bodies, closed = b"", [], [], False
    s.settimeout(1.5)
    while time.time() < deadline:
        while True:  # take every whole response from buf
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                break
            head = buf[:end].decode("latin-1").split("\r\n")
            length, last = 0, False
            for h in head[1:]:
                k, _, v = h.partition(":")
                if k.strip().lower() == "content-length":
                    length = int(v)
                if k.strip().lower() == "connection" and v.strip().lower() == "close":
                    last = True
            if len(buf) < end + 4 + length:
                break
            out.append(head[0].split()[1])
            bodies.append(buf[end + 4:end + 4 + length])
            buf = buf[end + 4 + length:]
            if last:
                return out, bodies, True, buf
        try:
            d = s.recv(65536)
        except socket.timeout:
            break
        except ConnectionResetError:
            closed = True
            break
        if not d:
            closed = True
            break
        buf += d
    return out, bodies, closed, buf

bad = 0
for name, req, shut, want, want_body in ROWS:
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        s.sendall(req)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server may answer and close before taking all of a huge request
    if shut:
        s.shutdown(socket.SHUT_WR)
    got, bodies, closed, rest = read_responses(s, time.time() + 10)
    s.close()
    got = got or ["-"]
    ok = got == want and (want_body is None or bodies[:1] == [want_body]) and not rest
    # every answered error must also end the connection (Connection: close, or closed): no second
    # request is read from what may be a body
    ok = ok and (closed or all(st.startswith("2") for st in got))
    print("%-24s %-4s got %-10s want %s%s" % (name, "ok" if ok else "FAIL", " ".join(got), " ".join(want),
          "" if closed else "  (left open)"))
    bad += not ok
sys.exit(1 if bad else 0)
PY
rc=0
timeout 300 python3 "$TMP/hostile.py" "$P" || rc=$?
[ "$rc" = 0 ] || fail "http_server gave a non-RFC answer to the rows marked FAIL above"
pass "every hostile request got its RFC 9112 answer"
stop_graceful http || fail "http_server exited with status $? (sanitizer report?): $(tail -20 "$TMP/http.log")"
pass "server stopped cleanly"
