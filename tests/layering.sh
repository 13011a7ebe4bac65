#!/usr/bin/env bash
# Arrows point down only (DESIGN.md's layers), checked on the source text:
#   - the loop layer (ioloop.c, ioloop_timer.c, executor.c and the private
#     headers they share) knows no futures: no future.h, no ts_future_* or
#     ts__future_* call. future.c builds run_sync and run_in_executor on it.
#   - the stream core (iostream.c and the other core files) makes no system
#     socket call on a transport's fd: connect, addresses, socket options,
#     SO_ERROR, shutdown, sendfile and the socket I/O itself are ts_stream_ops.
# Comments are stripped first, so prose may name the calls.
set -euo pipefail
SRC="${TS_SRC_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
strip() { perl -0777 -pe 's{/\*.*?\*/}{ }gs; s{//[^\n]*}{ }g' "$@"; }
fail=0

loop_files=(src/ioloop.c src/ioloop_timer.c src/executor.c src/ioloop_int.h src/internal.h)
for f in "${loop_files[@]}"; do
    if hits=$(strip "$SRC/$f" | grep -nE 'future\.h|\bts_?_future_\w*\s*\(|\bts_future\b'); then
        echo "FAIL: $f (loop layer) uses futures:" >&2
        printf '%s\n' "$hits" | sed -n 1,5p >&2
        fail=1
    fi
done

core_files=(src/iostream.c src/iostream_connect.c src/iostream_read.c src/iostream_write.c src/iostream_regex.c
            src/iostream_future.c src/iostream_timeout.c src/iostream_core.h)
calls='connect|getpeername|getsockname|getsockopt|setsockopt|shutdown|recv|recvmsg|send|sendmsg|sendfile|ioctl'
for f in "${core_files[@]}"; do
    [ -f "$SRC/$f" ] || continue
    if hits=$(strip "$SRC/$f" | grep -nE "(^|[^A-Za-z0-9_>.])($calls)\s*\("); then
        echo "FAIL: $f (stream core) calls the fd directly:" >&2
        printf '%s\n' "$hits" | sed -n 1,5p >&2
        fail=1
    fi
done

# The check itself works: the transports do make these calls.
if ! strip "$SRC/src/iostream_socket.c" | grep -qE "(^|[^A-Za-z0-9_>.])($calls)\s*\("; then
    echo "FAIL: the pattern finds no call even in iostream_socket.c" >&2
    fail=1
fi
[ "$fail" = 0 ] && echo "layering: loop knows no futures, core makes no fd calls"
exit "$fail"
