#!/usr/bin/env bash
# scripts/deps.sh -- make sure the Debian packages libtstream needs are
# installed. Three lists: what building the library and its examples needs,
# what the test suite and the demo need on top (peers such as nginx,
# curl and wrk, cmocka, the sanitizer and fuzzer runtimes), and what the
# peer comparison (bench/run.sh) needs: the peer libraries, profilers, gnuplot.
#
#   scripts/deps.sh [build|test|bench|all]  check; install what is missing
#                                        (root) or print the apt-get command
#                                        and exit 1 (non-root). Default: all
#                                        (build + test; bench only on request).
#   scripts/deps.sh --list [build|test|bench|all]   print a list (one line), exit
#   scripts/deps.sh --check [build|test|bench|all]  only check; exit 1 if missing
#
# `make build` and `make install` use the build list; `make test`,
# `make demo` and .ci/run use build and test; `make bench-compare` uses bench.
set -euo pipefail

BUILD_PACKAGES=(
    build-essential
    cmake
    pkg-config
    libev-dev
    libssl-dev
    libpcre2-dev
)

TEST_PACKAGES=(
    libcmocka-dev
    libhttp-parser-dev  # the HTTP parser's differential test (tests/test_http_parse_diff.c)
    openssl      # s_server / s_client peers, test certificates
    curl
    nginx
    wrk
    python3      # small socket clients in the integration tests
    python3-tornado  # tests/http_tornado_interop.sh (Debian's /usr/bin/python3)
    iproute2     # `ip`: the http_client test's network-namespace cases
    util-linux   # unshare, taskset
    bsdutils     # script: the progress-bar check runs under a pseudo-terminal
    media-types  # /etc/mime.types: http_server's media types (tests/http_server_files.sh)
    clang        # make fuzz (libFuzzer) and make tsan
    libclang-rt-14-dev  # clang's fuzzer and sanitizer runtimes
    valgrind     # make valgrind
)

BENCH_PACKAGES=(
    libev-dev        # the raw libev peer
    libuv1-dev       # the libuv peer
    libevent-dev     # the libevent and evhttp peers
    python3-tornado  # the Tornado peers (Debian's /usr/bin/python3)
    nginx
    wrk
    valgrind         # callgrind: instructions per unit of work
    strace           # system calls per unit of work
    gnuplot-nox      # the plots
    util-linux       # taskset
)

mode=install
case "${1:-}" in
    --list)  mode=list; shift ;;
    --check) mode=check; shift ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
esac
set_name="${1:-all}"
case "$set_name" in
    build) PACKAGES=("${BUILD_PACKAGES[@]}") ;;
    test)  PACKAGES=("${TEST_PACKAGES[@]}") ;;
    bench) PACKAGES=("${BENCH_PACKAGES[@]}") ;;
    all)   PACKAGES=("${BUILD_PACKAGES[@]}" "${TEST_PACKAGES[@]}") ;;
    *) echo "usage: $0 [--list|--check] [build|test|bench|all]" >&2; exit 2 ;;
esac
if [[ $mode == list ]]; then
    echo "${PACKAGES[*]}"
    exit 0
fi

if ! command -v dpkg-query >/dev/null 2>&1; then
    echo "deps: dpkg-query not found (not a Debian-based system); skipping package check." >&2
    echo "deps: you need: a C11 compiler, cmake, pkg-config, libev, OpenSSL, PCRE2 (8-bit), cmocka, curl, nginx, wrk." >&2
    exit 0
fi

is_installed() {
    local st
    st=$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null) || return 1
    [[ "$st" == "install ok installed" ]]
}

missing=()
for pkg in "${PACKAGES[@]}"; do
    if [[ "$pkg" == nginx ]]; then
        # Any nginx flavour will do (nginx-light is a transitional package on
        # Debian 12 that pulls in nginx).
        if is_installed nginx || is_installed nginx-light || is_installed nginx-core \
           || is_installed nginx-full || is_installed nginx-extras; then
            continue
        fi
    elif is_installed "$pkg"; then
        continue
    fi
    missing+=("$pkg")
done

if [[ ${#missing[@]} -eq 0 ]]; then
    echo "deps: all required packages are installed."
    exit 0
fi

echo "deps: missing packages: ${missing[*]}"

if [[ "$mode" == check ]]; then
    exit 1
fi

if [[ $(id -u) -ne 0 ]]; then
    echo "deps: not running as root; install them with:" >&2
    echo "" >&2
    echo "    sudo apt-get update && sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
    echo "" >&2
    exit 1
fi

# Installing nginx on Debian tries to start the service (and fails the
# install if it cannot, e.g. without an init system). Forbid service starts
# during this install unless a policy is already in place.
policy=/usr/sbin/policy-rc.d
created_policy=0
cleanup() {
    if [[ $created_policy -eq 1 ]]; then
        rm -f "$policy"
    fi
}
trap cleanup EXIT
if [[ " ${missing[*]} " == *" nginx "* && ! -e "$policy" ]]; then
    printf '#!/bin/sh\n# temporary, created by libtstream scripts/deps.sh\nexit 101\n' > "$policy"
    chmod 755 "$policy"
    created_policy=1
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends "${missing[@]}"
echo "deps: installed: ${missing[*]}"
