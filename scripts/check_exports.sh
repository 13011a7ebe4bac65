#!/usr/bin/env bash
# scripts/check_exports.sh -- the shared library exports exactly the public API.
#
#   scripts/check_exports.sh LIBTSTREAM_SO [SRC_DIR]
#
# Three lists must be equal:
#   - every ts_* function declared in include/tstream.h and include/tstream/*.h
#   - every function listed in src/libtstream.map (the linker version script)
#   - every symbol the .so exports (nm -D --defined-only), each in a
#     LIBTSTREAM_* version node (docs/ABI.md)
# A function declared but not exported, exported but not declared (a missing
# `static` or a leaked private helper), or missing from the version script
# fails the check with the names that differ. Exit 0: equal; 1: differ.
set -euo pipefail

so="${1:?usage: $0 LIBTSTREAM_SO [SRC_DIR]}"
src="${2:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
map="$src/src/libtstream.map"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# Declarations: drop comments and preprocessor lines, split at ';' and '{',
# keep statements that declare a function named ts_* (not typedefs, not
# function-pointer members such as `(*fileno)`).
perl -0777 -ne '
    s{/\*.*?\*/}{ }gs; s{//[^\n]*}{ }g; s{^\s*#[^\n]*}{ }gm;
    for my $st (split /[;{}]/) {
        next if $st =~ /\btypedef\b/;
        print "$1\n" if $st =~ /\b(ts_\w+)\s*\(/ && $st !~ /\(\s*\*\s*ts_\w+\s*\)/;
    }' "$src/include/tstream.h" "$src"/include/tstream/*.h | sort -u >"$tmp/declared"

# Version script: names in the `global:` sections of its nodes.
sed -n '/global:/,/local:\|}/p' "$map" | sed 's/#.*//' | tr -s ' \t;' '\n' |
    grep -E '^ts_[A-Za-z0-9_]+$' | sort -u >"$tmp/mapped"

# Exports, with their version (nm prints name@@LIBTSTREAM_0 for default versions).
nm -D --defined-only --with-symbol-versions "$so" | awk '{print $NF}' |
    grep -v '^LIBTSTREAM_[0-9.]*$' >"$tmp/raw" || true
sed 's/@.*//' "$tmp/raw" | sort -u >"$tmp/exported"
grep -Ev '@@LIBTSTREAM_[0-9.]+$' "$tmp/raw" >"$tmp/unversioned" || true

rc=0
report() {  # title file
    if [[ -s $2 ]]; then
        echo "check_exports: $1:" >&2
        sed 's/^/  /' "$2" >&2
        rc=1
    fi
}
comm -23 "$tmp/declared" "$tmp/exported" >"$tmp/d1"; report "declared but not exported" "$tmp/d1"
comm -13 "$tmp/declared" "$tmp/exported" >"$tmp/d2"; report "exported but not declared in a public header" "$tmp/d2"
comm -23 "$tmp/declared" "$tmp/mapped"   >"$tmp/d3"; report "declared but missing from src/libtstream.map" "$tmp/d3"
comm -13 "$tmp/declared" "$tmp/mapped"   >"$tmp/d4"; report "in src/libtstream.map but not declared" "$tmp/d4"
report "exported without a LIBTSTREAM_* version" "$tmp/unversioned"

echo "check_exports: $(wc -l <"$tmp/declared") declared, $(wc -l <"$tmp/mapped") in the version script, $(wc -l <"$tmp/exported") exported"
exit "$rc"
