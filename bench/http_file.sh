#!/usr/bin/env bash
# http_file.sh - wrk fetching one file (1 MiB by default) from examples/http_server
# (ts_iostream_write_file: sendfile) and from nginx (sendfile on) serving the same
# directory, the way ../shared/bench/compare.sh runs its HTTP workload: the server on
# CPU 0, wrk on CPU 1, rounds interleaved, medians reported, plus their ratio.
#
#   bench/http_file.sh [--rounds N] [--duration S] [--conns C] [--size BYTES]
#                      [--build DIR] [--also NAME=CMD]...
#
# --build DIR: where examples/http_server is (default build/, made with `make build`
# if missing). --also NAME=CMD adds a server ({PORT} and {ROOT} are replaced), e.g. an
# older http_server for a before/after figure.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
TOP=$(dirname "$HERE")
ROUNDS=3 DUR=10 CONNS=64 SIZE=1048576 BUILD=$TOP/build
EXTRA_NAMES=() EXTRA_CMDS=()
while [ $# -gt 0 ]; do
    case $1 in
    --rounds) ROUNDS=$2 ;;
    --duration) DUR=$2 ;;
    --conns) CONNS=$2 ;;
    --size) SIZE=$2 ;;
    --build) BUILD=$2 ;;
    --also) EXTRA_NAMES+=("${2%%=*}") EXTRA_CMDS+=("${2#*=}") ;;
    *) sed -n '2,13p' "$0" >&2; exit 2 ;;
    esac
    shift 2
done
die() { echo "http_file.sh: $*" >&2; exit 1; }
for tool in wrk nginx taskset python3; do command -v $tool >/dev/null || die "$tool not found"; done
[ "$(nproc)" -ge 2 ] || die "needs 2 CPUs (server on CPU 0, wrk on CPU 1)"
SRV=$BUILD/examples/http_server
[ -x "$SRV" ] || make -s -C "$TOP" build >&2 || die "build failed"

TMP=$(mktemp -d /tmp/bench-file.XXXXXX)
SRV_PID=""
stop() {
    [ -n "$SRV_PID" ] || return 0
    kill -TERM "$SRV_PID" $(pgrep -P "$SRV_PID") 2>/dev/null
    wait "$SRV_PID" 2>/dev/null
    SRV_PID=""
}
trap 'stop; rm -rf "$TMP"' EXIT
mkdir -p "$TMP/www" "$TMP/nginx"
chmod 755 "$TMP" "$TMP/www" # nginx workers may run as another user
head -c "$SIZE" /dev/urandom >"$TMP/www/file.bin"

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
nginx_conf() {
    cat >"$TMP/nginx/nginx.conf" <<EOF
worker_processes 1;
pid nginx.pid;
error_log error.log warn;
events { worker_connections 16384; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 100000000;
    client_body_temp_path tmp_body;
    proxy_temp_path tmp_proxy;
    fastcgi_temp_path tmp_fastcgi;
    uwsgi_temp_path tmp_uwsgi;
    scgi_temp_path tmp_scgi;
    default_type application/octet-stream;
    server { listen 127.0.0.1:$1 backlog=4096; root $TMP/www; }
}
EOF
}
NAMES=(http_server nginx "${EXTRA_NAMES[@]}")
cmd_for() { # NAME PORT
    case $1 in
    http_server) echo "$(printf %q "$SRV") $2 --root $(printf %q "$TMP/www")" ;;
    nginx) nginx_conf "$2"; echo "nginx -p $(printf %q "$TMP/nginx") -c $(printf %q "$TMP/nginx/nginx.conf") -g 'daemon off;'" ;;
    *)
        local i c
        for i in "${!EXTRA_NAMES[@]}"; do
            [ "${EXTRA_NAMES[$i]}" = "$1" ] && c=${EXTRA_CMDS[$i]}
        done
        c=${c//\{PORT\}/$2}
        echo "${c//\{ROOT\}/$TMP/www}" ;;
    esac
}
start() { # NAME: sets SRV_PID and P
    P=$(port)
    taskset -c 0 bash -c "exec $(cmd_for "$1" "$P")" >"$TMP/$1.log" 2>&1 &
    SRV_PID=$!
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$P") 2>/dev/null && { sleep 0.3; return 0; }
        sleep 0.1
    done
    die "$1 did not start: $(tail -3 "$TMP/$1.log")"
}
cpu_ticks() { # user + system clock ticks of a server and its children
    local p t=0 f
    for p in $1 $(pgrep -P "$1"); do
        f=$(cut -d' ' -f14,15 "/proc/$p/stat" 2>/dev/null) || continue
        t=$((t + ${f% *} + ${f#* }))
    done
    echo $t
}
to_mb() { # wrk's Transfer/sec ("1.05GB") in MB/s
    awk -v v="$1" 'BEGIN { n = v + 0; u = substr(v, length(v) - 1);
        if (u == "GB") n *= 1024; else if (u == "KB") n /= 1024; else if (u != "MB") n /= 1048576; printf "%.0f", n }'
}

: >"$TMP/results"
echo "file: $SIZE bytes; wrk -t1 -c$CONNS -d${DUR}s, keep-alive, GET /file.bin; $ROUNDS rounds" >&2
for r in $(seq "$ROUNDS"); do
    for name in "${NAMES[@]}"; do
        start "$name"
        url=http://127.0.0.1:$P/file.bin
        curl -s "$url" | cmp -s - "$TMP/www/file.bin" || die "$name: the file came back different"
        taskset -c 1 wrk -t1 -c"$CONNS" -d1s "$url" >/dev/null 2>&1 # warm-up
        t0=$(cpu_ticks "$SRV_PID")
        out=$(taskset -c 1 wrk -t1 -c"$CONNS" -d"${DUR}s" "$url" 2>&1)
        t1=$(cpu_ticks "$SRV_PID")
        stop
        rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
        mbs=$(to_mb "$(awk '/^Transfer\/sec/ {print $2}' <<<"$out")")
        errs=$(grep -E 'Socket errors|Non-2xx' <<<"$out" | tr '\n' ' ')
        [ -n "$rps" ] || die "$name: no figure from wrk: $out"
        # server CPU per request, in microseconds (clock ticks of 1/CLK_TCK s)
        cpu=$(awk -v t=$((t1 - t0)) -v hz="$(getconf CLK_TCK)" -v rps="$rps" -v d="$DUR" \
            'BEGIN {printf "%.1f", t / hz * 1e6 / (rps * d)}')
        echo "$name $r $rps $mbs $cpu" >>"$TMP/results"
        printf '  round %d %-14s %10s req/s %6s MB/s %6s us CPU/req %s\n' "$r" "$name" "$rps" "$mbs" "$cpu" "$errs" >&2
    done
done

median() { sort -n | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
base=$(awk '$1 == "nginx" {print $3}' "$TMP/results" | median)
echo
echo "| server | req/s (median of $ROUNDS) | MB/s | vs nginx | server CPU per request |"
echo "|---|---:|---:|---:|---:|"
for name in "${NAMES[@]}"; do
    m=$(awk -v n="$name" '$1 == n {print $3}' "$TMP/results" | median)
    mb=$(awk -v n="$name" '$1 == n {print $4}' "$TMP/results" | median)
    cpu=$(awk -v n="$name" '$1 == n {print $5}' "$TMP/results" | median)
    printf '| %s | %.0f | %.0f | %.2f | %s us |\n' "$name" "$m" "$mb" "$(awk -v a="$m" -v b="$base" 'BEGIN {print a / b}')" "$cpu"
done
