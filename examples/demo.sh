#!/usr/bin/env bash
# The README demo: on loopback, start http_server over HTTP and HTTPS, fetch a
# page and a large file with http_client, and stop the servers, saying what
# happens at each step. Run through `make demo` (TS_BUILD_DIR is set there).
set -euo pipefail
BUILD=${TS_BUILD_DIR:-$(cd "$(dirname "$0")/.." && pwd)/build}
EX=$BUILD/examples
TMP=$(mktemp -d /tmp/tstream-demo.XXXXXX)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT
step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# wait_listening LOG: until the server says it is listening (at most 10 s); echoes that line.
wait_listening() {
    for _ in $(seq 100); do
        if grep -q "listening" "$1" 2>/dev/null; then
            sed 's/^/  /' "$1"
            return 0
        fi
        sleep 0.1
    done
    echo "the server did not start:" >&2
    cat "$1" >&2
    exit 1
}

"$EX/loop_demo" >/dev/null # a quick check that the build runs at all

step "Generating a throw-away certificate authority and a certificate for localhost in $TMP"
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj "/CN=libtstream demo CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign" \
    -keyout "$TMP/ca.key" -out "$TMP/ca.pem" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout "$TMP/server.key" -out "$TMP/server.csr" 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >"$TMP/ext.cnf"
openssl x509 -req -in "$TMP/server.csr" -CA "$TMP/ca.pem" -CAkey "$TMP/ca.key" -CAcreateserial -days 1 \
    -extfile "$TMP/ext.cnf" -out "$TMP/server.pem" 2>/dev/null

step "Making a 64 MiB file to serve"
mkdir -p "$TMP/www"
head -c $((64 * 1024 * 1024)) /dev/urandom >"$TMP/www/large.bin"
echo "  $(sha256sum "$TMP/www/large.bin" | cut -c1-16)...  large.bin"

HTTP=$(port)
HTTPS=$(port)
step "Starting http_server on http://127.0.0.1:$HTTP/ and https://localhost:$HTTPS/"
"$EX/http_server" "$HTTP" --root "$TMP/www" 2>"$TMP/http.log" &
PIDS+=($!)
"$EX/http_server" "$HTTPS" --root "$TMP/www" --tls "$TMP/server.pem" "$TMP/server.key" 2>"$TMP/https.log" &
PIDS+=($!)
wait_listening "$TMP/http.log"
wait_listening "$TMP/https.log"

step "Fetching http://127.0.0.1:$HTTP/ with http_client -i (status line and headers shown)"
"$EX/http_client" -i "http://127.0.0.1:$HTTP/"

step "Fetching https://localhost:$HTTPS/ with http_client -i, verifying the certificate against the demo CA"
"$EX/http_client" -i --cacert "$TMP/ca.pem" "https://localhost:$HTTPS/"

step "Downloading the 64 MiB file over HTTPS (a progress bar shows on a terminal)"
"$EX/http_client" --cacert "$TMP/ca.pem" -o "$TMP/download.bin" "https://localhost:$HTTPS/large.bin"
if cmp -s "$TMP/www/large.bin" "$TMP/download.bin"; then
    echo "  the download is byte-for-byte identical to the served file"
else
    echo "  the download differs from the served file" >&2
    exit 1
fi

step "Without the demo CA, the same HTTPS fetch is refused"
set +e
"$EX/http_client" "https://localhost:$HTTPS/" >/dev/null
rc=$?
set -e
echo "  http_client exited with status $rc (certificate verification failed, as it should)"

step "Stopping the servers (SIGTERM)"
for pid in "${PIDS[@]}"; do kill -TERM "$pid"; wait "$pid" || true; done
PIDS=()
echo "  done: both servers stopped; what they logged:"
sed 's/^/  /' "$TMP/http.log" "$TMP/https.log"
