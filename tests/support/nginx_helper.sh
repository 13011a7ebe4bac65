# nginx for the shell integration tests (sourced after testlib.sh, not run).
#
#   nginx_find                 sets NGINX to the binary; skips (fails in CI) without one
#   nginx_start NAME DIR CONF  writes DIR/nginx.conf around the http{} body CONF,
#                              checks it with nginx -t and starts nginx in the
#                              foreground (stopped by testlib's EXIT trap)
#
# Everything nginx writes (pid, error log, temp files) stays inside DIR; there
# is no access log. The master runs as the current user; as root the workers
# run as root too, so they can read the test's private temp directory.

nginx_find() {
    NGINX=$(command -v nginx 2>/dev/null || true)
    [ -n "$NGINX" ] || NGINX=/usr/sbin/nginx
    if [ ! -x "$NGINX" ]; then
        [ "${CI:-}" = true ] && fail "nginx is not installed (CI must install it)"
        skip "nginx is not installed"
    fi
}

nginx_start() {
    local name=$1 dir=$2 conf=$3 user_line="" t
    mkdir -p "$dir/logs"
    for t in client_body proxy fastcgi uwsgi scgi; do mkdir -p "$dir/tmp/$t"; done
    [ "$(id -u)" = 0 ] && user_line="user root;"
    cat >"$dir/nginx.conf" <<EOF
$user_line
worker_processes 1;
events { worker_connections 256; }
http {
    access_log off;
    client_body_temp_path $dir/tmp/client_body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
    types { text/html html; text/plain txt; application/octet-stream bin; }
    default_type application/octet-stream;
$conf
}
EOF
    local args=(-p "$dir" -c "$dir/nginx.conf")
    # -e (1.19.5+) keeps even the start-up messages out of the default log path.
    "$NGINX" -h 2>&1 | grep -q -- '-e filename' && args+=(-e "$dir/logs/error.log")
    local g="pid $dir/nginx.pid; error_log $dir/logs/error.log;"
    timeout 20 "$NGINX" "${args[@]}" -g "$g" -t >"$dir/check.log" 2>&1 ||
        fail "nginx -t rejected the configuration: $(cat "$dir/check.log")"
    start "$name" "$NGINX" "${args[@]}" -g "daemon off; $g"
}
