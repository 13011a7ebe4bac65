#!/usr/bin/env bash
# Flow control in the example servers (http_server, echo_server, tcp_server):
# a client that sends a long stream of requests without reading must not make
# the server queue answers without limit, and once it reads, every answer
# arrives, in order.
#
# The rule (examples/example_flow.h): a connection reads its next request only
# while less than EX_WRITE_HIGH_WATER (256 KiB) of answers is queued; past it,
# it waits for a write completion. Per connection the server then holds at
# most 256 KiB plus one answer of output and one 256 KiB read block of input;
# the rest waits in the kernel's socket buffers until TCP stops the client.
#
# Each server gets 200,000 requests it cannot answer into a reading client:
# the client sends until the kernel buffers are full, waits, and the growth
# of the server's peak RSS (VmHWM) must stay under RSS_BOUND_KB; then it
# reads everything and checks each answer against its request, in order.
# Without the rule the growth is linear in the requests: +22,628 KiB for
# http_server (release build), +32,828 KiB under ASan. The same runs with a
# client that half-closes after its last request, and small sessions that end
# with a half-close, check that no queued answer is dropped at the client's
# EOF (echo_server lost the tail of 39 of 50 such sessions) or at
# tcp_server's closing message (41,136 of 200,000 echoes arrived).
. "$(dirname "$0")/support/testlib.sh"
need python3
HTTP=$TS_BUILD_DIR/examples/http_server
ECHO=$TS_BUILD_DIR/examples/echo_server
TCP=$TS_BUILD_DIR/examples/tcp_server
[ -x "$HTTP" ] && [ -x "$ECHO" ] && [ -x "$TCP" ] || fail "examples not built"
N=200000
if [ "${TS_SANITIZE:-0}" = 1 ]; then
    # ASan keeps freed blocks in a quarantine (256 MiB by default): that is
    # RSS no bound could tell from queued answers. 1 MiB still catches a
    # use right after a free. Measured with it: +1.9 to +4.2 MiB.
    export ASAN_OPTIONS="${ASAN_OPTIONS:-}:quarantine_size_mb=1"
    RSS_BOUND_KB=$((6 * 1024))
else
    # measured: +264 to +780 KiB
    RSS_BOUND_KB=$((3 * 1024))
fi

cat >"$TMP/flow.py" <<'PY'
import selectors, socket, sys, time

def status(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise SystemExit("no %s for pid %d" % (key, pid))

def http_load(n):
    """Mixed pipelined requests whose answers tell them apart: GET / (200), GET /nope (404), POST /echo."""
    reqs, want = [], []
    for i in range(n):
        if i % 1000 == 0:
            body = b"%08d" % i
            reqs.append(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 8\r\n\r\n" + body)
            want.append((200, body))
        elif (i * 2654435761 >> 9) & 1:
            reqs.append(b"GET /nope HTTP/1.1\r\nHost: t\r\n\r\n")
            want.append((404, b"404 Not Found\n"))
        else:
            reqs.append(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            want.append((200, b"Hello from libtstream!\n"))
    return b"".join(reqs), HttpAnswers(want)

class HttpAnswers:
    def __init__(self, want):
        self.want, self.buf, self.got, self.bad = want, bytearray(), 0, None
    def feed(self, d):
        self.buf += d
        while self.bad is None:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buf[:end]).split(b"\r\n")
            clen = [int(h.split(b":")[1]) for h in head[1:] if h.lower().startswith(b"content-length:")]
            if len(clen) != 1:
                self.bad = "answer %d has no Content-Length: %r" % (self.got, head)
                return
            if len(self.buf) < end + 4 + clen[0]:
                return
            got = (int(head[0].split()[1]), bytes(self.buf[end + 4:end + 4 + clen[0]]))
            del self.buf[:end + 4 + clen[0]]
            exp = self.want[self.got] if self.got < len(self.want) else None
            if got != exp:
                self.bad = "answer %d is %r, expected %r" % (self.got, got, exp)
                return
            self.got += 1
    def done(self):
        return self.got == len(self.want)

class Echoes:
    """The messages come back unchanged, in order, and nothing else."""
    def __init__(self, msgs):
        self.msgs, self.want, self.buf, self.got, self.bad = msgs, msgs, bytearray(), 0, None
    def feed(self, d):
        self.buf += d
        while self.bad is None and self.got < len(self.msgs):
            m = self.msgs[self.got]
            if len(self.buf) < len(m):
                return
            if self.buf[:len(m)] != m:
                self.bad = "echo %d is %r, expected %r" % (self.got, bytes(self.buf[:len(m)]), m)
                return
            del self.buf[:len(m)]
            self.got += 1
        if self.bad is None and self.buf:
            self.bad = "%d bytes after the last echo" % len(self.buf)
    def done(self):
        return self.got == len(self.msgs)

def load(kind, n):
    if kind == "http":
        return http_load(n)
    if kind == "echo":
        msgs = [b"%08d %s\n" % (i, b"e" * 90) for i in range(n)]
        return b"".join(msgs), Echoes(msgs)
    msgs = [b"%08d %s that is all!" % (i, b"t" * 80) for i in range(n)]
    return b"".join(msgs) + b"that is all!", Echoes(msgs)   # tcp_server: a bare terminator ends it

def flood(kind, port, pid, n, bound_kb, halfclose, stall=2.0, deadline=120.0):
    data, answers = load(kind, n)
    t0 = time.time()
    hwm0 = status(pid, "VmHWM")
    s = socket.create_connection(("127.0.0.1", port))
    s.setblocking(False)
    view, off, last = memoryview(data), 0, time.time()
    # 1: send, never read, until all is sent or nothing moved for `stall` s; then let the server settle
    while off < len(data) and time.time() - last < stall:
        try:
            off += s.send(view[off:off + 262144])
            last = time.time()
        except BlockingIOError:
            time.sleep(0.01)
    time.sleep(stall)
    grown = status(pid, "VmHWM") - hwm0
    print("%s: %d requests (%.1f MB); %.1f MB sent without reading; server peak RSS +%d KiB (bound %d)"
          % (kind, n, len(data) / 1e6, off / 1e6, grown, bound_kb))
    # 2: read everything (sending the rest)
    sel = selectors.DefaultSelector()
    sel.register(s, selectors.EVENT_READ | selectors.EVENT_WRITE)
    eof = shut = False
    while not eof and not answers.done() and answers.bad is None and time.time() - t0 < deadline:
        if off == len(data) and not shut:
            shut = True
            sel.modify(s, selectors.EVENT_READ)
            if halfclose:
                s.shutdown(socket.SHUT_WR)
        for _, ev in sel.select(1.0):
            if ev & selectors.EVENT_WRITE and off < len(data):
                try:
                    off += s.send(view[off:off + 262144])
                except BlockingIOError:
                    pass
            if ev & selectors.EVENT_READ:
                try:
                    d = s.recv(1 << 20)
                except BlockingIOError:
                    continue
                eof = not d
                answers.feed(d)
    s.close()
    if answers.bad:
        print("FAIL: " + answers.bad)
        return False
    if not answers.done():
        print("FAIL: %d of %d answers (%s)" % (answers.got, n, "EOF" if eof else "timed out"))
        return False
    print("%s: all %d answers in order%s (%.1f s)" % (kind, n, " after a half-close" if halfclose else "",
                                                      time.time() - t0))
    if grown > bound_kb:
        print("FAIL: peak RSS grew by %d KiB, over the bound of %d KiB" % (grown, bound_kb))
        return False
    return True

def sessions(kind, port, count=50):
    """Short sessions ending with a half-close: every answer queued at the EOF still arrives."""
    short = 0
    for i in range(count):
        data, answers = load(kind, 1 + i * 100)
        if kind == "tcp":
            data = data[:-len(b"that is all!")]             # the EOF ends it, not the terminator
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        while True:
            d = s.recv(65536)
            if not d:
                break
            answers.feed(d)
        s.close()
        if answers.bad or not answers.done():
            short += 1
    print("%s: %d of %d sessions ending with a half-close lost answers" % (kind, short, count))
    return short == 0

if __name__ == "__main__":
    cmd, kind, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if cmd == "flood":
        ok = flood(kind, port, int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]), sys.argv[7] == "half")
    else:
        ok = sessions(kind, port)
    sys.exit(0 if ok else 1)
PY

PH=$(free_port)
start http "$HTTP" "$PH" --idle-timeout 60
PE=$(free_port)
start echo "$ECHO" "$PE"
PT=$(free_port)
# tcp_server prints every message: 20 MB of log nobody reads
"$TCP" "$PT" >/dev/null 2>"$TMP/tcp.log" &
PIDS+=($!)
echo $! >"$TMP/tcp.pid"
for p in $PH $PE $PT; do wait_port "$p"; done

flow() { timeout 150 python3 "$TMP/flow.py" "$@"; }
for kind in http echo tcp; do
    case $kind in http) port=$PH ;; echo) port=$PE ;; tcp) port=$PT ;; esac
    pid=$(cat "$TMP/$kind.pid")
    flow flood $kind "$port" "$pid" $N $RSS_BOUND_KB full || fail "$kind: flood without reading"
    [ $kind = tcp ] || flow flood $kind "$port" "$pid" $N $RSS_BOUND_KB half || fail "$kind: flood, then half-close"
    flow sessions $kind "$port" || fail "$kind: sessions ending with a half-close"
    pass "$kind: bounded while the client does not read; every answer in order"
done
for name in http echo tcp; do
    stop_graceful $name || fail "$name exited with status $? (see $TMP/$name.log: $(tail -5 "$TMP/$name.log"))"
done
pass "the servers exit cleanly"
