#!/usr/bin/env bash
# Every example rejects a bad port, option or argument with a usage error:
# exit status 2 and a message on stderr that names what was wrong. Before,
# `http_server abc` listened on a random port and `http_server 18451x` on
# 18451.
set -uo pipefail
BIN="${TS_BUILD_DIR:?}/examples"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
fails=0

# expect_usage NAME WORD ARGS...: exits 2 within 5 s, and stderr names WORD.
expect_usage() {
    local name=$1 word=$2
    shift 2
    timeout 5 "$BIN/$name" "$@" >"$tmp/out" 2>"$tmp/err"
    local rc=$?
    if [[ $rc -ne 2 ]]; then
        echo "FAIL: $name $*: exit $rc, want 2 (stderr: $(head -c 200 "$tmp/err"))"
        fails=$((fails + 1))
    elif ! grep -qF -- "$word" "$tmp/err"; then
        echo "FAIL: $name $*: stderr does not name '$word': $(head -c 200 "$tmp/err")"
        fails=$((fails + 1))
    else
        echo "ok: $name $* -> 2: $(head -1 "$tmp/err")"
    fi
}

for prog in http_server echo_server tcp_server; do
    expect_usage $prog abc abc
    expect_usage $prog 18451x 18451x
    expect_usage $prog 70000 70000
    expect_usage $prog -- -1 -1
    expect_usage $prog --bogus 8080 --bogus
    expect_usage $prog --address 8080 --address
    expect_usage $prog 8080 9 8080
    expect_usage $prog PORT
done
expect_usage http_server --root 8080 --root /etc/passwd
expect_usage http_server /nonexistent-dir 8080 --root /nonexistent-dir
expect_usage http_server --idle-timeout 8080 --idle-timeout 0
expect_usage http_server --idle-timeout 8080 --idle-timeout 5s
expect_usage http_server --processes 8080 --processes two
expect_usage http_server /nonexistent-types 8080 --mime-types /nonexistent-types
expect_usage http_server /nonexistent-dir/log 8080 --access-log /nonexistent-dir/log
expect_usage http_server --access-log 8080 --access-log
expect_usage echo_server --processes 8080 --processes -3
expect_usage echo_server --tls 8080 --tls only-cert
expect_usage http_client --bogus --bogus http://127.0.0.1/
expect_usage http_client 18451x http://127.0.0.1:18451x/

# --help still succeeds, on stdout.
for prog in http_server echo_server tcp_server http_client; do
    if ! timeout 5 "$BIN/$prog" --help >"$tmp/out" 2>&1 || ! grep -qi usage "$tmp/out"; then
        echo "FAIL: $prog --help"
        fails=$((fails + 1))
    fi
done

# Run under its installed name (tstream-http-client, ...), a program names
# itself so in its usage and error lines, never by its source name or path.
# (http_server: not yet.)
# expect_named NAME WANT_STATUS ARGS...: run as $tmp/tstream-NAME; every
# output line that names a program names tstream-NAME.
expect_named() {
    local name=$1 want=$2 tool="tstream-${1//_/-}"
    shift 2
    ln -sf "$BIN/$name" "$tmp/$tool"
    timeout 10 "$tmp/$tool" "$@" >"$tmp/out" 2>"$tmp/err"
    local rc=$?
    if [[ $rc -ne $want ]]; then
        echo "FAIL: $tool $*: exit $rc, want $want (stderr: $(head -c 200 "$tmp/err"))"
        fails=$((fails + 1))
    elif ! grep -qE "^(usage: )?$tool([: ]|$)" "$tmp/out" "$tmp/err" || grep -qE "$name|$tmp" "$tmp/out" "$tmp/err"; then
        echo "FAIL: $tool $*: does not name itself $tool: $(cat "$tmp/out" "$tmp/err" | head -c 300)"
        fails=$((fails + 1))
    else
        echo "ok: $tool $* -> $rc: $(cat "$tmp/out" "$tmp/err" | head -1)"
    fi
}
closed=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
for prog in echo_server tcp_server; do
    expect_named $prog 0 --help
    expect_named $prog 2 abc
    expect_named $prog 2 --bogus 8080
done
expect_named echo_server 1 8080 --tls /nonexistent.pem /nonexistent.key
expect_named http_client 0 --help
expect_named http_client 2 --bogus http://127.0.0.1/
expect_named http_client 2 --timeout 0 http://127.0.0.1/
expect_named http_client 2 'bad-url'
expect_named http_client 4 "http://127.0.0.1:$closed/"
expect_named callback_client 0 --help
expect_named callback_client 1 127.0.0.1 "$closed"
expect_named loop_demo 0 --help

[[ $fails -eq 0 ]] || { echo "$fails failure(s)"; exit 1; }
echo "all usage errors reported"
