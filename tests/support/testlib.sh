# Shared helpers for the shell integration tests (sourced, not run).
# Every helper bounds its time; everything started is stopped by the EXIT trap.

set -u
TS_BUILD_DIR=${TS_BUILD_DIR:?TS_BUILD_DIR must point at the build directory}
TMP=$(mktemp -d /tmp/tstream-test.XXXXXX)
PIDS=()

cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null
    done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null
    done
    rm -rf "$TMP"
}
trap cleanup EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }
pass() { echo "ok: $*"; }
skip() { echo "SKIP: $*"; exit 77; }

need() {
    local tool
    for tool in "$@"; do
        command -v "$tool" >/dev/null 2>&1 || {
            [ "${CI:-}" = true ] && fail "$tool is not installed (CI must install it)"
            skip "$tool is not installed"
        }
    done
}

# A free TCP port on 127.0.0.1 (the kernel picks it; a race is possible but unlikely).
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# wait_port PORT: until 127.0.0.1:PORT accepts, at most 10 s.
wait_port() {
    local i
    for i in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    fail "nothing listening on port $1 after 10 s"
}

# start NAME CMD...: runs CMD in the background with its output in $TMP/NAME.log.
start() {
    local name=$1
    shift
    "$@" >"$TMP/$name.log" 2>&1 &
    PIDS+=($!)
    echo $! >"$TMP/$name.pid"
}

# stop_graceful NAME: SIGTERM, wait (5 s) and return the exit status.
stop_graceful() {
    local pid status=0
    pid=$(cat "$TMP/$1.pid")
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && { kill -KILL "$pid"; fail "$1 did not exit on SIGTERM"; }
    wait "$pid" || status=$?
    return $status
}

# make_certs DIR: a test CA and a server certificate for localhost / 127.0.0.1.
make_certs() {
    local d=$1
    mkdir -p "$d"
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=tstream test CA" \
        -keyout "$d/ca.key" -out "$d/ca.pem" -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" >/dev/null 2>&1 || fail "openssl: CA"
    openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout "$d/server.key" \
        -out "$d/server.csr" >/dev/null 2>&1 || fail "openssl: CSR"
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >"$d/ext.cnf"
    openssl x509 -req -in "$d/server.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial -days 2 \
        -extfile "$d/ext.cnf" -out "$d/server.pem" >/dev/null 2>&1 || fail "openssl: sign"
}
