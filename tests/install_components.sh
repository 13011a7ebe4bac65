#!/usr/bin/env bash
# Each install component installs what it should and nothing of the others:
#   runtime      only the versioned shared library (libtstream.so.0*)
#   development  headers, libtstream.so link, libtstream.a, libtstream.pc, the
#                CMake package; man3 pages when the docs were generated
#   tools        tstream-* programs and their man1 pages (TS_INSTALL_EXAMPLES)
# Man pages are gzip-compressed (Debian policy), without a name or time stamp.
# Also: the three together are exactly a plain `cmake --install`, and the
# library exports exactly the public API (scripts/check_exports.sh).
# Uses TS_BUILD_DIR (any configured build tree; tests run it on build-test/).
set -euo pipefail
BUILD="${TS_BUILD_DIR:?}"
SRC="${TS_SRC_DIR:?}"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

libdir="$(sed -n 's/^CMAKE_INSTALL_LIBDIR:[A-Z]*=//p' "$BUILD/CMakeCache.txt")"
mandir="$(sed -n 's/^CMAKE_INSTALL_MANDIR:[A-Z]*=//p' "$BUILD/CMakeCache.txt")"
mandir="${mandir:-share/man}"   # an empty cache entry means DATAROOTDIR/man
examples="$(sed -n 's/^TS_INSTALL_EXAMPLES:[A-Z]*=//p' "$BUILD/CMakeCache.txt")"
[[ -n $libdir && -n $mandir ]] || fail "no GNUInstallDirs paths in $BUILD/CMakeCache.txt"
command -v gzip >/dev/null || fail "gzip is needed (the man pages are compressed with it)"

listing() {  # component -> sorted file list (relative)
    local dest="$TMP/$1"
    if [[ $1 == all ]]; then
        cmake --install "$BUILD" --prefix "$dest" >/dev/null
    else
        cmake --install "$BUILD" --prefix "$dest" --component "$1" >/dev/null
    fi
    if [[ -d $dest ]]; then (cd "$dest" && find . \( -type f -o -type l \) | sed 's|^\./||' | sort); fi
}
listing runtime >"$TMP/runtime.txt"
listing development >"$TMP/development.txt"
listing tools >"$TMP/tools.txt"
listing all >"$TMP/all.txt"
for c in runtime development tools; do
    echo "== $c: $(wc -l <"$TMP/$c.txt") files"
    sed 's/^/   /' "$TMP/$c.txt"
done

# runtime: the versioned library, its SONAME link, the licence; nothing else.
grep -qx "$libdir/libtstream.so.0" "$TMP/runtime.txt" || fail "runtime lacks $libdir/libtstream.so.0"
grep -Eqx "$libdir/libtstream\.so\.0\.[0-9]+\.[0-9]+" "$TMP/runtime.txt" || fail "runtime lacks the versioned library"
extra="$(grep -Ev "^($libdir/libtstream\.so\.0(\.[0-9]+\.[0-9]+)?|share/doc/libtstream0/copyright)$" "$TMP/runtime.txt" || true)"
[[ -z $extra ]] || fail "runtime installs more than the shared library: $extra"
for pkg in libtstream0 libtstream-dev; do
    c=runtime; [[ $pkg == libtstream-dev ]] && c=development
    grep -qx "share/doc/$pkg/copyright" "$TMP/$c.txt" || fail "$c lacks share/doc/$pkg/copyright"
done

# development: what building a program needs.
for f in include/tstream.h include/tstream/version.h include/tstream/iostream.h include/tstream/ssl.h \
         "$libdir/libtstream.so" "$libdir/libtstream.a" "$libdir/pkgconfig/libtstream.pc" \
         "$libdir/cmake/tstream/tstreamConfig.cmake" "$libdir/cmake/tstream/tstreamConfigVersion.cmake" \
         "$libdir/cmake/tstream/tstreamTargets.cmake" "$libdir/cmake/tstream/tstreamStaticTargets.cmake"; do
    grep -qx "$f" "$TMP/development.txt" || fail "development lacks $f"
done
for h in "$SRC"/include/tstream/*.h; do
    grep -qx "include/tstream/$(basename "$h")" "$TMP/development.txt" || fail "development lacks tstream/$(basename "$h")"
done
if grep -E "libtstream\.so\.0|^bin/|man1/" "$TMP/development.txt"; then
    fail "development installs runtime or tools files (above)"
fi
[[ -L $TMP/development/$libdir/libtstream.so ]] || fail "libtstream.so is not a link"
[[ $(readlink "$TMP/development/$libdir/libtstream.so") == libtstream.so.0 ]] || fail "libtstream.so does not point at libtstream.so.0"
pc="$TMP/development/$libdir/pkgconfig/libtstream.pc"
grep -qx "prefix=$TMP/development" "$pc" || fail "libtstream.pc prefix is not the install prefix: $(grep ^prefix= "$pc")"
grep -q '^Libs.private: .*-lev' "$pc" || fail "libtstream.pc lacks -lev in Libs.private (static linking)"
grep -q '^Requires.private: .*libpcre2-8' "$pc" || fail "libtstream.pc lacks libpcre2-8 in Requires.private"
if [[ -f $BUILD/docs/man/man3/tstream.h.3 ]]; then
    for h in tstream "tstream_common" "tstream_iostream" "tstream_ssl" "tstream_version"; do
        grep -qx "$mandir/man3/$h.3.gz" "$TMP/development.txt" || fail "development lacks man page $h(3) (.gz)"
    done
    gzip -dc "$TMP/development/$mandir/man3/tstream_iostream.3.gz" | cmp -s - "$BUILD/docs/man/man3/iostream.h.3" ||
        fail "tstream_iostream.3.gz is not the generated page"
    man3=$(grep -c "^$mandir/man3/" "$TMP/development.txt")
    headers=$(( $(ls "$SRC"/include/tstream/*.h | wc -l) + 2 ))   # + tstream.h + version.h
    [[ $man3 -eq $headers ]] || fail "$man3 man3 pages for $headers headers"
else
    echo "(docs not generated in $BUILD: man3 pages not checked)"
    if grep "/man3/" "$TMP/development.txt"; then fail "man3 pages installed without docs"; fi
fi

# tools: tstream-<example> programs, each with its man page, or nothing.
if [[ $examples == ON ]]; then
    n=0
    for src in "$SRC"/examples/*.c; do
        [[ -f ${src%.c}.h ]] && continue   # a module (http_parse.c), not a program
        tool="tstream-$(basename "$src" .c | tr _ -)"
        grep -qx "bin/$tool" "$TMP/tools.txt" || fail "tools lacks bin/$tool"
        grep -qx "$mandir/man1/$tool.1.gz" "$TMP/tools.txt" || fail "tools lacks $tool(1) (.gz)"
        gzip -dc "$TMP/tools/$mandir/man1/$tool.1.gz" | cmp -s - "$SRC/docs/man/$tool.1" || fail "$tool.1.gz is not docs/man/$tool.1"
        [[ -x $TMP/tools/bin/$tool ]] || fail "bin/$tool is not executable"
        n=$((n + 1))
    done
    grep -qx "share/doc/libtstream-tools/copyright" "$TMP/tools.txt" || fail "tools lacks its copyright file"
    [[ $(wc -l <"$TMP/tools.txt") -eq $((2 * n + 1)) ]] || fail "tools installs more than $n programs, their pages and the licence"
    "$TMP/tools/bin/tstream-loop-demo" --help | grep -q usage || fail "tstream-loop-demo --help"
else
    [[ ! -s $TMP/tools.txt ]] || fail "tools installs files with TS_INSTALL_EXAMPLES off"
fi

# Every page compressed, reproducibly: no file name or time stamp in the header.
if grep -E "/man[0-9]/.*[^z]$" "$TMP/all.txt"; then fail "uncompressed man pages (above)"; fi
while read -r page; do
    gzip -lv "$TMP/all/$page" >/dev/null || fail "$page: not gzip"
    # bytes 4-7 (the time stamp) are zero and the FNAME flag (bit 3 of byte 3) is clear
    hdr=$(od -An -tu1 -N8 "$TMP/all/$page" | tr -s ' ')
    read -r _ _ _ flg t0 t1 t2 t3 <<<"$hdr"
    (( (flg & 8) == 0 && t0 + t1 + t2 + t3 == 0 )) || fail "$page: gzip header holds a name or time stamp ($hdr)"
done < <(grep "/man[0-9]/" "$TMP/all.txt" || true)

# Together the components are the whole install.
cat "$TMP/runtime.txt" "$TMP/development.txt" "$TMP/tools.txt" | sort >"$TMP/union.txt"
diff -u "$TMP/all.txt" "$TMP/union.txt" || fail "files installed outside any component (above)"

bash "$SRC/scripts/check_exports.sh" "$BUILD/libtstream.so" "$SRC"
echo ok
