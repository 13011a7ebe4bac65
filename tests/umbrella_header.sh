#!/usr/bin/env bash
# The umbrella header pulls in no OpenSSL header: a program that only
# includes <tstream.h> must not pay for (or depend on) OpenSSL's headers.
# tstream/ssl.h, which TLS users include, does pull them in.
set -euo pipefail
SRC="${TS_SRC_DIR:?}"
BUILD="${TS_BUILD_DIR:?}"
CC="${CC:-cc}"
pp() { printf '#include <%s>\n' "$1" | "$CC" -E -x c -I "$SRC/include" -I "$BUILD/include" -; }

umbrella="$(pp tstream.h)"
lines=$(printf '%s\n' "$umbrella" | wc -l)
echo "tstream.h preprocesses to $lines lines"
if printf '%s\n' "$umbrella" | grep -E '^# [0-9]+ "[^"]*/openssl/' >/dev/null; then
    printf '%s\n' "$umbrella" | grep -E '^# [0-9]+ "[^"]*/openssl/' | sed -n 1,3p
    echo "FAIL: tstream.h pulls in the OpenSSL headers above" >&2
    exit 1
fi
# The check itself works: tstream/ssl.h does include OpenSSL.
ssl="$(pp tstream/ssl.h)"
printf '%s\n' "$ssl" | grep -E '^# [0-9]+ "[^"]*/openssl/ssl\.h"' >/dev/null || {
    echo "FAIL: the check does not see openssl/ssl.h through tstream/ssl.h" >&2
    exit 1
}
# A program using the TCP options without TLS compiles against tstream.h alone.
printf '#include <tstream.h>\nint main(void){ ts_tcpclient_options o = {.size = sizeof o, .ssl_ctx = NULL}; return (int)(o.size == 0); }\n' |
    "$CC" -Wall -Wextra -Werror -fsyntax-only -x c -I "$SRC/include" -I "$BUILD/include" -
# Passing something that is not an SSL_CTX is now a compile-time error (it used to be a void *).
if printf '#include <tstream.h>\nint main(void){ ts_tcpclient_options o = {.size = sizeof o}; o.ssl_ctx = (int *)&o.size; return 0; }\n' |
    "$CC" -Wall -Wextra -Werror -fsyntax-only -x c -I "$SRC/include" -I "$BUILD/include" - 2>/dev/null; then
    echo "FAIL: ssl_ctx accepts a pointer of the wrong type" >&2
    exit 1
fi
echo "ok"
