# hc NAME WANT ARGS...: runs $HC (examples/http_client, at most 60 s) with
# stdout in $TMP/NAME.out and stderr in $TMP/NAME.err, and checks its exit
# status and that no sanitizer spoke. Sourced after testlib.sh.
hc() {
    local name=$1 want=$2 rc=0
    shift 2
    timeout 60 "$HC" "$@" >"$TMP/$name.out" 2>"$TMP/$name.err" </dev/null || rc=$?
    ! grep -q Sanitizer "$TMP/$name.err" || fail "$name: sanitizer report:$(printf '\n')$(head -40 "$TMP/$name.err")"
    [ "$rc" = "$want" ] || fail "$name: exit status $rc, expected $want; stderr: $(tail -5 "$TMP/$name.err")"
}
