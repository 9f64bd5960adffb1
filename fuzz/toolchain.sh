#!/usr/bin/env bash
# Make sure clang can build with AddressSanitizer and libFuzzer's coverage
# instrumentation; if not, install the Debian packages that provide them:
# clang, and the compiler-rt runtimes (libclang-rt-dev where the release has
# it, else libclang-rt-<clang major>-dev, e.g. libclang-rt-14-dev on Debian 12).
set -euo pipefail

probe() {
    local dir
    dir=$(mktemp -d)
    echo 'int f(int x) { return x + 1; }' > "$dir/probe.c"
    clang -fsanitize=address,fuzzer-no-link -shared -fPIC -o "$dir/probe.so" "$dir/probe.c" \
        >/dev/null 2>&1
    local rc=$?
    rm -rf "$dir"
    return $rc
}

if command -v clang >/dev/null && probe; then
    exit 0
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq clang
if apt-cache show libclang-rt-dev >/dev/null 2>&1; then
    runtime=libclang-rt-dev
else
    major=$(clang --version | sed -n 's/.*clang version \([0-9]*\).*/\1/p' | head -n 1)
    runtime="libclang-rt-${major}-dev"
fi
apt-get install -y -qq "$runtime"
probe || { echo "clang still cannot build with -fsanitize=address,fuzzer-no-link" >&2; exit 1; }
