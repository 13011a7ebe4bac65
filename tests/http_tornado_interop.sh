#!/usr/bin/env bash
# The HTTP examples against Tornado (Debian's python3-tornado), both ways:
# examples/http_client fetching from a Tornado server (chunked bodies that
# Tornado streams with flush(), a redirect, -H/-A/-u as Tornado sees them,
# -I, -O, -d @FILE), and Tornado's HTTP client fetching from
# examples/http_server (a file, a Content-Length POST, and a chunked POST
# from a body_producer, which http_server must decode). Loopback only.
. "$(dirname "$0")/support/testlib.sh"
. "$(dirname "$0")/support/hc_helper.sh"
need sha256sum cmp
PY=
for p in /usr/bin/python3 python3; do
    if command -v "$p" >/dev/null && "$p" -c 'import tornado' 2>/dev/null; then PY=$p; break; fi
done
if [ -z "$PY" ]; then
    [ "${CI:-}" = true ] && fail "python3-tornado is not installed (scripts/deps.sh test installs it)"
    skip "python3-tornado is not installed"
fi
HC=$TS_BUILD_DIR/examples/http_client
SRV=$TS_BUILD_DIR/examples/http_server
[ -x "$HC" ] && [ -x "$SRV" ] || fail "examples not built"

cat >"$TMP/server.py" <<'PY'
import json, sys
import tornado.ioloop, tornado.web

class Headers(tornado.web.RequestHandler):
    def get(self):
        self.write(json.dumps(dict(self.request.headers.get_all())))
    head = get

class Chunked(tornado.web.RequestHandler):
    async def get(self):
        for i in range(200):  # no Content-Length: Tornado sends each flush() as a chunk
            self.write(("chunk %d " % i) * 50 + "\n")
            await self.flush()

class Redirect(tornado.web.RequestHandler):
    def get(self):
        self.redirect("/chunked")

class Echo(tornado.web.RequestHandler):
    def post(self):
        self.set_header("Content-Type", "application/octet-stream")
        self.write(self.request.body)

class Big(tornado.web.RequestHandler):
    def get(self):
        self.set_header("Content-Type", "application/octet-stream")
        self.write(bytes(range(256)) * 4096 * 5)  # 5 MiB

app = tornado.web.Application([("/headers", Headers), ("/chunked", Chunked), ("/redirect", Redirect),
                               ("/echo", Echo), ("/dir/big.bin", Big)])
app.listen(int(sys.argv[1]), address="127.0.0.1", max_body_size=64 << 20)
tornado.ioloop.IOLoop.current().start()
PY
PT=$(free_port)
PS=$(free_port)
mkdir -p "$TMP/root"
head -c 3000000 /dev/urandom >"$TMP/root/file.bin"
start tornado "$PY" "$TMP/server.py" "$PT"
start http_server "$SRV" "$PS" --root "$TMP/root"
wait_port "$PT"
wait_port "$PS"
T=http://127.0.0.1:$PT

# ---- http_client -> Tornado -------------------------------------------------
hc headers 0 -H 'X-Custom: one' -A 'agent/7' -u 'user:secret' "$T/headers"
"$PY" - "$TMP/headers.out" <<'PY' || fail "headers as Tornado saw them: $(cat "$TMP/headers.out")"
import base64, json, sys
h = json.load(open(sys.argv[1]))
assert h["X-Custom"] == "one", h
assert h["User-Agent"] == "agent/7", h
assert h["Authorization"] == "Basic " + base64.b64encode(b"user:secret").decode(), h
PY
"$PY" -c 'import sys; sys.stdout.write("".join(("chunk %d " % i) * 50 + "\n" for i in range(200)))' >"$TMP/chunked.want"
hc chunked 0 -L -v "$T/redirect"
cmp -s "$TMP/chunked.out" "$TMP/chunked.want" || fail "Tornado's chunked body after a redirect differs"
grep -qi '< Transfer-Encoding: chunked' "$TMP/chunked.err" || fail "Tornado did not chunk: $(head -30 "$TMP/chunked.err")"
hc head 0 -I "$T/headers"
head -1 "$TMP/head.out" | grep -q '^HTTP/1.1 200' || fail "-I against Tornado: $(head -1 "$TMP/head.out")"
[ "$(tail -c 2 "$TMP/head.out" | od -An -c | tr -d ' ')" = '\r\n' ] || fail "-I wrote more than the head"
hc echo 0 -d @"$TMP/root/file.bin" "$T/echo"
cmp -s "$TMP/echo.out" "$TMP/root/file.bin" || fail "-d @FILE echoed by Tornado differs"
mkdir -p "$TMP/odir"
(cd "$TMP/odir" && hc remote 0 -O "$T/dir/big.bin")
[ "$(sha256sum <"$TMP/odir/big.bin")" = "$("$PY" -c 'import sys; sys.stdout.buffer.write(bytes(range(256)) * 4096 * 5)' | sha256sum)" ] ||
    fail "-O from Tornado: big.bin differs"
pass "http_client -> Tornado: -H/-A/-u seen by Tornado, chunked body after -L, -I, -d @FILE (3 MB), -O (5 MiB)"

# ---- Tornado's client -> http_server ------------------------------------------
"$PY" - "$PS" "$TMP/root/file.bin" <<'PY' || fail "Tornado's client against http_server failed (see above)"
import sys
from tornado.httpclient import AsyncHTTPClient
from tornado.ioloop import IOLoop
port, path = int(sys.argv[1]), sys.argv[2]
data = open(path, "rb").read()

async def main():
    client = AsyncHTTPClient()
    base = "http://127.0.0.1:%d" % port
    r = await client.fetch(base + "/file.bin", request_timeout=30)
    assert r.code == 200 and r.body == data, (r.code, len(r.body))
    r = await client.fetch(base + "/echo", method="POST", body=data[:100000], request_timeout=30)
    assert r.code == 200 and r.body == data[:100000], (r.code, len(r.body))

    async def produce(write):  # no Content-Length: Tornado sends the body chunked
        for i in range(0, 300000, 7000):
            await write(data[i:min(i + 7000, 300000)])
    r = await client.fetch(base + "/echo", method="POST", body_producer=produce, request_timeout=30)
    assert r.code == 200 and r.body == data[:300000], (r.code, len(r.body))
    r = await client.fetch(base + "/missing", raise_error=False, request_timeout=30)
    assert r.code == 404, r.code
    print("tornado client: file, Content-Length POST, chunked POST and 404 all as expected")

IOLoop.current().run_sync(main, timeout=60)
PY
pass "Tornado's client -> http_server: 3 MB file, Content-Length POST, chunked POST (body_producer), 404"

stop_graceful http_server || fail "http_server exited with status $? (sanitizer report?): $(tail -20 "$TMP/http_server.log")"
pass "http_server stopped cleanly"
