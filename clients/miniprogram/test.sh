#!/usr/bin/env bash
# Tests of the mini-program client: against a mocked `wx` (test/mock.test.js) and end to
# end against `wxgate demo` on loopback (test/e2e.test.js). Needs node >= 20 and, unless
# WXGATE_BIN names a built wxgate, cargo to build target/debug/wxgate.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"

node_major="$(node -p 'process.versions.node.split(".")[0]')"
if [ "$node_major" -lt 20 ]; then
    echo "clients/miniprogram/test.sh: node >= 20 is needed (found $(node --version))" >&2
    exit 1
fi

if [ -z "${WXGATE_BIN:-}" ]; then
    (cd "$root" && cargo build --locked --quiet)
    WXGATE_BIN="$root/target/debug/wxgate"
fi
export WXGATE_BIN

cd "$here"
echo "clients/miniprogram/test.sh: node $(node --version), $("$WXGATE_BIN" --version)"
node scripts/build-cjs.mjs --check
node --test test/mock.test.js test/cjs.test.js test/e2e.test.js
