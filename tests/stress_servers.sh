#!/usr/bin/env bash
# Abuse the example servers with real clients on loopback, then check that
# they still answer, hold no connection (fd) they should have dropped, and
# exit 0 on SIGTERM (under ASan+UBSan: no sanitizer report, no leak).
#
#   http_server (HTTP and HTTPS, --idle-timeout 2):
#     wrk at 200 connections over HTTP and HTTPS (no errors, all 2xx);
#     clients resetting (SO_LINGER 0) mid-request and mid-response while a
#     16 MiB file downloads intact; slowloris (a byte per 100 ms, on HTTP and
#     on the TLS handshake) closed by the idle timeout while others are served;
#     a download slower than the idle timeout completes, a stalled one is
#     closed; 100 pipelined requests in one write, read slowly; a burst of TLS
#     handshakes aborted (garbage, half a ClientHello, FIN or RST), then curl
#     and openssl s_client still work.
#   echo_server: 50 concurrent openssl s_client sessions over --tls; aborted
#     handshakes leave no fd behind (there is no idle timeout to hide a leak);
#     a 5 MiB line from a client that never reads: the server stops reading
#     (back pressure) and its VmRSS stays bounded.
. "$(dirname "$0")/support/testlib.sh"
need curl openssl python3 wrk
HTTP=$TS_BUILD_DIR/examples/http_server
ECHO=$TS_BUILD_DIR/examples/echo_server
[ -x "$HTTP" ] && [ -x "$ECHO" ] || fail "examples not built"
T0=$SECONDS
# The servers' idle timeout. A TLS connection's clock starts at accept, so it
# must cover 200 handshakes queued at once in a sanitized build on a busy
# machine (at 2 s, CI saw wrk's late connections cut off: 63 read errors).
IDLE=5
BIG=$((16 * 1024 * 1024))
# Growth of echo_server's VmRSS allowed while a client that never reads sends
# 200 MiB in 5 MiB lines. Back pressure stops it at a few lines' worth (about
# 21 MiB measured under ASan, 22 MiB under valgrind); without it the server
# would buffer everything the client sends.
RSS_BOUND_KB=$((64 * 1024))

mkdir -p "$TMP/root"
head -c $BIG /dev/urandom >"$TMP/root/big.bin"
head -c 65536 /dev/urandom >"$TMP/root/med.bin"
# with --root, / is the root directory: its index.html is the greeting the checks expect
printf 'Hello from libtstream!\n' >"$TMP/root/index.html"
make_certs "$TMP/certs"
CERT=("$TMP/certs/server.pem" "$TMP/certs/server.key")

PH=$(free_port)
start http "$HTTP" "$PH" --root "$TMP/root" --idle-timeout $IDLE
PS=$(free_port)
start https "$HTTP" "$PS" --root "$TMP/root" --idle-timeout $IDLE --tls "${CERT[@]}"
PE=$(free_port)
start echo "$ECHO" "$PE"
PT=$(free_port)
start echotls "$ECHO" "$PT" --tls "${CERT[@]}"
for p in $PH $PS $PE $PT; do wait_port "$p"; done

pid_of() { cat "$TMP/$1.pid"; }
nfds() { ls "/proc/$(pid_of "$1")/fd" | wc -l; }
# settle NAME BASE SECONDS: until NAME holds at most BASE fds (its connections are gone).
settle() {
    local i
    for i in $(seq $((${3} * 10))); do
        [ "$(nfds "$1")" -le "$2" ] && return 0
        sleep 0.1
    done
    fail "$1 still holds $(($(nfds "$1") - $2)) connection(s) after ${3} s: $(ls -l "/proc/$(pid_of "$1")/fd" | tail -3)"
}
alive_http() {
    local out
    out=$(timeout 10 curl -sS --max-time 8 "http://127.0.0.1:$PH/") || fail "http_server does not answer after $1"
    [ "$out" = "Hello from libtstream!" ] || fail "http_server after $1: '$out'"
    out=$(timeout 10 curl -sS --max-time 8 --cacert "$TMP/certs/ca.pem" "https://localhost:$PS/") ||
        fail "http_server --tls does not answer after $1"
    [ "$out" = "Hello from libtstream!" ] || fail "http_server --tls after $1: '$out'"
}
alive_echo() {
    local out
    out=$(timeout 10 python3 "$TMP/stress.py" echo1 "$PE") || fail "echo_server does not answer after $1"
    out=$( (printf 'still here\n'; sleep 0.5) | timeout 10 openssl s_client -quiet -no_ign_eof \
        -connect "127.0.0.1:$PT" -servername localhost -CAfile "$TMP/certs/ca.pem" -verify_return_error 2>/dev/null)
    [ "$out" = "still here" ] || fail "echo_server --tls after $1: '$out'"
}

cat >"$TMP/stress.py" <<'PY'
import os, selectors, socket, ssl, struct, subprocess, sys, threading, time

H = "127.0.0.1"
RST = struct.pack("ii", 1, 0)

_ctx = None

def tls_ctx():
    # One context: building one loads the system CA store, ~50 ms of CPU each.
    global _ctx
    if _ctx is None:
        _ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        _ctx.check_hostname = False
        _ctx.verify_mode = ssl.CERT_NONE
    return _ctx

def connect(port, tls=False, timeout=10):
    s = socket.create_connection((H, port), timeout=timeout)
    return tls_ctx().wrap_socket(s, server_hostname="localhost") if tls else s

def reset(s):
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, RST)
    s.close()

def recv_all(s, slow=0.0):
    n = 0
    while True:
        d = s.recv(65536)
        if not d:
            return n
        n += len(d)
        if slow:
            time.sleep(len(d) / slow)

def get(port, path, tls=False, slow=0.0):
    """GET with Connection: close; returns (status line, body bytes)."""
    s = connect(port, tls, 30)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    s.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % path.encode())
    head = b""
    while b"\r\n\r\n" not in head:
        d = s.recv(4096)
        if not d:
            return head.split(b"\r\n")[0], -1
        head += d
    h, _, body = head.partition(b"\r\n\r\n")
    n = len(body) + recv_all(s, slow)
    s.close()
    return h.split(b"\r\n")[0], n

def resets(port, tls, n, size):
    """n clients reset mid-request or mid-response while a big file downloads."""
    res = {}
    def download():
        try:
            res["dl"] = get(port, "/big.bin", tls)
        except Exception as e:
            res["dl"] = repr(e)
    dl = threading.Thread(target=download)
    dl.start()
    errs = []
    def abuser(i):
        try:
            s = connect(port, tls)
            k = i % 4
            if k == 0:      # half a request line
                s.sendall(b"GET /big")
            elif k == 1:    # a head without its blank line
                s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * 3000)
            elif k == 2:    # mid-response: a little of the big file, then gone
                s.sendall(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
                s.recv([1, 1000, 60000][i % 3])
            else:           # half a request body
                s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + b"b" * 5000)
            time.sleep((i % 5) * 0.01)
            reset(s)
        except Exception as e:
            errs.append(repr(e))
    th = [threading.Thread(target=abuser, args=(i,)) for i in range(n)]
    for t in th: t.start()
    for t in th: t.join()
    dl.join(60)
    ok = res.get("dl") == (b"HTTP/1.1 200 OK", size)
    print("%d clients reset mid-request/mid-response (%d failed client-side first); download: %s"
          % (n, len(errs), res.get("dl")))
    return ok

def slowloris(port, tls, n, idle):
    """n clients drip a request head (or a ClientHello) a byte per 100 ms; others must be served."""
    hello = client_hello() if tls else None
    out = {}
    def loris(i):
        s = socket.create_connection((H, port), timeout=10)
        data = hello if tls else b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"z" * 1000
        t = time.time()
        try:
            for b in data:
                s.send(bytes([b]))
                time.sleep(0.1)
                if time.time() - t > idle + 4:
                    break
            out[i] = None                       # never closed
        except OSError:
            out[i] = time.time() - t
        s.close()
    th = [threading.Thread(target=loris, args=(i,)) for i in range(n)]
    for t in th: t.start()
    time.sleep(0.3)
    lat = []
    t0 = time.time()
    while time.time() - t0 < idle:
        t = time.time()
        st, _ = get(port, "/", tls)
        if not st.startswith(b"HTTP/1.1 200"):
            print("a normal request got %r" % st)
            return False
        lat.append(time.time() - t)
        time.sleep(0.05)
    for t in th: t.join()
    closed = [v for v in out.values() if v is not None]
    print("%d slowloris clients: %d closed after %.1f-%.1f s; meanwhile %d requests, slowest %.3f s"
          % (n, len(closed), min(closed or [0]), max(closed or [0]), len(lat), max(lat)))
    return len(closed) == n and max(closed) < idle + 2 and max(lat) < 1.0

def slow_download(port, rate, size):
    st, n = get(port, "/big.bin", slow=rate)
    print("download at %d B/s: %s, %d bytes" % (rate, st, n))
    return n == size

def stalled(port, idle):
    """Asks for the big file and reads nothing: the idle timeout must close it."""
    s = socket.create_connection((H, port), timeout=idle + 6)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    s.sendall(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
    time.sleep(idle + 1.5)
    try:
        n = recv_all(s)
    except OSError as e:
        n = repr(e)
    print("stalled reader: closed by the server after %s bytes" % n)
    return True

def pipeline(port, tls, n):
    """n requests in one write, the responses read 2 KiB at a time."""
    s = connect(port, tls, 20)
    paths = ["/", "/med.bin", "/missing", "/"]
    want = {"/": (200, 23), "/med.bin": (200, 65536), "/missing": (404, 14)}
    s.sendall(b"".join(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % paths[i % 4].encode() for i in range(n)))
    buf, got = b"", []
    def more():
        nonlocal buf
        d = s.recv(2048)
        if not d:
            raise EOFError("closed after %d responses" % len(got))
        buf += d
        time.sleep(0.001)
    while len(got) < n:
        while b"\r\n\r\n" not in buf:
            more()
        head, _, buf = buf.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        cl = int([l for l in lines if l.lower().startswith(b"content-length:")][0].split(b":")[1])
        while len(buf) < cl:
            more()
        buf = buf[cl:]
        got.append((int(lines[0].split()[1]), cl))
    s.close()
    ok = got == [want[paths[i % 4]] for i in range(n)]
    print("%d pipelined requests%s: %s" % (n, " over TLS" if tls else "", "answered in order" if ok else got[:5]))
    return ok

def client_hello():
    i, o = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = tls_ctx().wrap_bio(i, o, server_hostname="localhost")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return o.read()

def tls_aborts(port, n, kinds):
    """n handshakes abandoned in the ways listed (see below), concurrently."""
    ch = client_hello()
    errs = []
    def one(k):
        try:
            s = socket.create_connection((H, port), timeout=5)
            if k == 1:   s.sendall(os.urandom(200))                         # garbage
            elif k == 2: s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")    # plain HTTP on TLS
            elif k in (3, 4): s.sendall(ch[:len(ch) // 2])                  # half a ClientHello
            elif k == 5: s.sendall(ch); s.recv(100)                         # the server's flight begun
            elif k == 6: s.sendall(ch[:5])                                  # a record header only
            elif k == 7: s.sendall(b"\x16\x03\x01\xff\xff" + os.urandom(1000))  # oversized record
            if k in (4, 5, 6):
                reset(s)                                                    # RST instead of FIN
            else:
                s.close()                                                   # k == 0: connect, close
        except Exception as e:
            errs.append(repr(e))
    th = [threading.Thread(target=one, args=(kinds[i % len(kinds)],)) for i in range(n)]
    for t in th: t.start()
    for t in th: t.join()
    print("%d handshakes aborted (kinds %s); client-side errors: %d" % (n, kinds, len(errs)))
    return True

def sclients(port, n, lines, ca):
    """n concurrent openssl s_client sessions; each line is sent once the previous came back."""
    sel = selectors.DefaultSelector()
    sess = []
    def line(st, j):
        return b"session %d line %d %s" % (st["i"], j, b"x" * (j * 1000))
    def send(st):
        st["sent"] += 1
        st["p"].stdin.write(line(st, st["sent"]) + b"\n")
        st["p"].stdin.flush()
    for i in range(n):
        p = subprocess.Popen(["openssl", "s_client", "-quiet", "-no_ign_eof", "-connect", "%s:%d" % (H, port),
                              "-servername", "localhost", "-CAfile", ca, "-verify_return_error"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        os.set_blocking(p.stdout.fileno(), False)
        st = {"i": i, "p": p, "sent": 0, "ok": 0, "buf": b""}
        sess.append(st)
        sel.register(p.stdout, selectors.EVENT_READ, st)
        send(st)
    live, deadline = n, time.time() + 40
    while live and time.time() < deadline:
        for key, _ in sel.select(1):
            st = key.data
            d = os.read(key.fileobj.fileno(), 65536)
            if not d:
                sel.unregister(key.fileobj)
                live -= 1
                continue
            st["buf"] += d
            while b"\n" in st["buf"]:
                got, _, st["buf"] = st["buf"].partition(b"\n")
                if got == line(st, st["ok"] + 1):
                    st["ok"] += 1
                if st["sent"] < lines:
                    send(st)
                else:
                    st["p"].stdin.close()
    good = 0
    for st in sess:
        try:
            st["p"].wait(10)
        except subprocess.TimeoutExpired:
            st["p"].kill()
            st["p"].wait()
        good += st["ok"] == lines
    print("%d of %d concurrent s_client sessions echoed all %d lines" % (good, n, lines))
    return good == n

def rss(pid):
    for l in open("/proc/%d/status" % pid):
        if l.startswith("VmRSS:"):
            return int(l.split()[1])

def no_reader(port, pid, tls, nlines, bound_kb):
    """A client sends nlines 5 MiB lines and never reads: the server must stop reading."""
    base = peak = rss(pid)
    raw = socket.create_connection((H, port), timeout=10)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    s = tls_ctx().wrap_socket(raw, server_hostname="localhost") if tls else raw
    s.settimeout(1.5)
    line = memoryview(b"y" * (5 * 1024 * 1024 - 1) + b"\n")
    sent = 0
    try:
        for _ in range(nlines):
            v = line
            while v:
                k = s.send(v[:262144])
                v, sent = v[k:], sent + k
                peak = max(peak, rss(pid))
    except (socket.timeout, ssl.SSLWantWriteError):
        pass
    time.sleep(0.5)
    peak = max(peak, rss(pid))
    print("never-reading client%s: the server stopped reading after %.1f of %d MiB; VmRSS %d -> %d KiB (+%d, bound %d)"
          % (" over TLS" if tls else "", sent / 1048576, 5 * nlines, base, peak, peak - base, bound_kb))
    reset(s)
    return sent < nlines * len(line) and peak - base < bound_kb

def echo1(port):
    s = socket.create_connection((H, port), timeout=5)
    s.sendall(b"ping\n")
    d = b""
    while not d.endswith(b"\n"):
        c = s.recv(100)
        if not c:
            break
        d += c
    return d == b"ping\n"

if __name__ == "__main__":
    cmd, a = sys.argv[1], sys.argv[2:]
    tls = "tls" in a
    if cmd == "resets": ok = resets(int(a[0]), tls, int(a[2]), int(a[3]))
    elif cmd == "slowloris": ok = slowloris(int(a[0]), tls, int(a[2]), float(a[3]))
    elif cmd == "slow_download": ok = slow_download(int(a[0]), int(a[1]), int(a[2]))
    elif cmd == "stalled": ok = stalled(int(a[0]), float(a[1]))
    elif cmd == "pipeline": ok = pipeline(int(a[0]), tls, int(a[2]))
    elif cmd == "tls_aborts": ok = tls_aborts(int(a[0]), int(a[1]), [int(k) for k in a[2].split(",")])
    elif cmd == "sclients": ok = sclients(int(a[0]), int(a[1]), int(a[2]), a[3])
    elif cmd == "no_reader": ok = no_reader(int(a[0]), int(a[1]), tls, int(a[3]), int(a[4]))
    elif cmd == "echo1": ok = echo1(int(a[0]))
    else: sys.exit("unknown command " + cmd)
    sys.exit(0 if ok else 1)
PY
S=(python3 "$TMP/stress.py")
FD_HTTP=$(nfds http)
FD_HTTPS=$(nfds https)
FD_ECHO=$(nfds echo)
FD_ECHOTLS=$(nfds echotls)
alive_http "start"
alive_echo "start"

# ---- 1. wrk, 200 connections ------------------------------------------------------
for url in "http://127.0.0.1:$PH/" "https://127.0.0.1:$PS/"; do
    timeout 30 wrk -t2 -c200 -d3s --timeout 10s "$url" >"$TMP/wrk.out" 2>&1 || fail "wrk $url: $(cat "$TMP/wrk.out")"
    grep -q "Socket errors" "$TMP/wrk.out" && fail "wrk $url: socket errors: $(cat "$TMP/wrk.out")"
    grep -q "Non-2xx" "$TMP/wrk.out" && fail "wrk $url: non-2xx responses: $(cat "$TMP/wrk.out")"
    reqs=$(awk '/requests in/ {print $1}' "$TMP/wrk.out")
    [ "${reqs:-0}" -gt 200 ] || fail "wrk $url: only ${reqs:-0} requests"
    pass "wrk -c200 $url: $reqs requests, $(awk '/Requests\/sec/ {print $2}' "$TMP/wrk.out") req/s, no errors, all 2xx"
done
settle http "$FD_HTTP" 5
settle https "$FD_HTTPS" 5
alive_http "wrk"

# ---- 2. resets mid-request and mid-response during a download -------------------------
timeout 60 "${S[@]}" resets "$PH" plain 200 $BIG || fail "resets over HTTP"
pass "HTTP: download intact while 200 clients reset"
timeout 60 "${S[@]}" resets "$PS" tls 60 $BIG || fail "resets over HTTPS"
pass "HTTPS: download intact while 60 clients reset"
settle http "$FD_HTTP" 5
settle https "$FD_HTTPS" 5
alive_http "resets"

# ---- 3. slowloris, and downloads longer than the idle timeout ------------------------------
# A 16 MiB download at 4 MB/s takes twice the idle timeout: the timer must
# measure idleness, not the age of the request (it used to cut these off).
timeout 30 "${S[@]}" slow_download "$PH" 4000000 $BIG >"$TMP/slowdl.out" 2>&1 &
SLOWDL=$!
timeout 30 "${S[@]}" stalled "$PH" $IDLE >"$TMP/stalled.out" 2>&1 &
STALLED=$!
timeout 30 "${S[@]}" slowloris "$PH" plain 50 $IDLE || fail "slowloris over HTTP"
pass "HTTP slowloris: all closed by the idle timeout, others served"
timeout 30 "${S[@]}" slowloris "$PS" tls 20 $IDLE || fail "slowloris on the TLS handshake"
pass "HTTPS slowloris (ClientHello a byte per 100 ms): all closed, others served"
wait $SLOWDL || fail "a download slower than the idle timeout: $(cat "$TMP/slowdl.out")"
pass "$(cat "$TMP/slowdl.out")"
wait $STALLED || fail "stalled reader: $(cat "$TMP/stalled.out")"
settle http "$FD_HTTP" 5
settle https "$FD_HTTPS" 5
pass "$(cat "$TMP/stalled.out"); no connection left"
alive_http "slowloris"

# ---- 4. 100 pipelined requests, read slowly ------------------------------------------------
timeout 60 "${S[@]}" pipeline "$PH" plain 100 || fail "pipelining over HTTP"
timeout 60 "${S[@]}" pipeline "$PS" tls 100 || fail "pipelining over HTTPS"
pass "100 pipelined requests answered in order, HTTP and HTTPS"
alive_http "pipelining"

# ---- 5. aborted TLS handshakes ----------------------------------------------------------------
timeout 30 "${S[@]}" tls_aborts "$PS" 200 0,1,2,3,4,5,6,7 || fail "TLS aborts"
out=$(printf 'GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' |
    timeout 10 openssl s_client -quiet -connect "127.0.0.1:$PS" -servername localhost \
        -CAfile "$TMP/certs/ca.pem" -verify_return_error 2>/dev/null | head -1)
[ "${out%$'\r'}" = "HTTP/1.1 200 OK" ] || fail "openssl s_client after the aborted handshakes: '$out'"
alive_http "aborted handshakes"
settle https "$FD_HTTPS" $((IDLE + 3))
pass "HTTPS: 200 aborted handshakes, then s_client and curl fetch; no connection left"
# echo_server has no idle timeout: a connection it fails to notice stays for
# good, so every kind of abort must close by itself (kinds 4 and 6 reset
# after accept, before the stream's first handshake step).
timeout 30 "${S[@]}" tls_aborts "$PT" 100 0,1,2,3,4,5,6,7 || fail "TLS aborts on echo_server"
settle echotls "$FD_ECHOTLS" 5
pass "echo_server --tls: 100 aborted handshakes, no fd left"

# ---- 6. echo_server --tls, 50 concurrent s_client sessions -------------------------------------
timeout 60 "${S[@]}" sclients "$PT" 50 5 "$TMP/certs/ca.pem" || fail "concurrent s_client sessions"
settle echotls "$FD_ECHOTLS" 5
pass "50 concurrent openssl s_client sessions echoed"

# ---- 7. 5 MiB lines to a server whose client never reads ----------------------------------------
timeout 60 "${S[@]}" no_reader "$PE" "$(pid_of echo)" plain 40 $RSS_BOUND_KB || fail "echo_server memory not bounded"
timeout 60 "${S[@]}" no_reader "$PT" "$(pid_of echotls)" tls 40 $RSS_BOUND_KB || fail "echo_server --tls memory not bounded"
pass "never-reading clients: back pressure held VmRSS growth under $((RSS_BOUND_KB / 1024)) MiB"
settle echo "$FD_ECHO" 5
settle echotls "$FD_ECHOTLS" 5
alive_echo "never-reading clients"

# ---- the end: clean exits ---------------------------------------------------------------------------
alive_http "everything"
for name in http https echo echotls; do
    stop_graceful $name || fail "$name exited with status $?: $(tail -30 "$TMP/$name.log")"
done
pass "all four servers exited 0 on SIGTERM (no sanitizer report) after $((SECONDS - T0)) s"
