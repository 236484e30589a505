#!/usr/bin/env bash
# End to end test of the example upstream against `wxgate demo` on loopback: an assertion
# the demo's gateway signed is accepted (by the server and by `app.py verify`); no
# assertion, hand-made X-WX-* headers, a tampered assertion and one for another audience
# are refused. Needs python3 with venv and pip reaching PyPI, and (unless WXGATE_BIN names
# a built wxgate) cargo.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="${EXAMPLE_TEST_VENV:-$root/target/example-venv}"
log() { echo "examples/verify-upstream/test.sh: $*"; }
fail() {
    log "FAILED: $*"
    exit 1
}

if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check 'pyjwt[crypto]>=2.8,<3'
py="$venv/bin/python"
log "$("$py" -c 'import jwt; print("PyJWT", jwt.__version__)')"

if [ -z "${WXGATE_BIN:-}" ]; then
    (cd "$root" && cargo build --locked --quiet)
    WXGATE_BIN="$root/target/debug/wxgate"
fi

work="$(mktemp -d)"
pids=()
cleanup() {
    local p
    for p in "${pids[@]+"${pids[@]}"}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

"$WXGATE_BIN" demo >"$work/demo.txt" 2>"$work/demo.err" &
pids+=("$!")
for _ in $(seq 100); do
    grep -q "admin http://" "$work/demo.txt" 2>/dev/null && break
    sleep 0.05
done
gateway="$(grep -o 'gateway http://[0-9.:]*' "$work/demo.txt" | cut -d' ' -f2)"
admin="$(grep -o 'admin http://[0-9.:]*' "$work/demo.txt" | cut -d' ' -f2)"
[ -n "$gateway" ] && [ -n "$admin" ] || fail "the demo printed no addresses: $(cat "$work/demo.txt" "$work/demo.err")"

port="$("$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
export WXGATE_JWKS_URL="$admin/.well-known/jwks.json" WXGATE_AUDIENCE=/api/ PORT="$port"
"$py" "$here/app.py" &
pids+=("$!")
for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.05
done

token="$(curl -s -X POST "$gateway/wx/login" -d '{"code":"alice-example"}' | "$py" -c 'import json, sys; print(json.load(sys.stdin)["token"])')"
assertion="$(curl -s "$gateway/api/hello" -H "Authorization: Bearer $token" |
    "$py" -c 'import json, sys; print(json.load(sys.stdin)["headers"]["x-wx-jwt-assertion"][0])')"

status() { curl -s -o "$work/body" -w '%{http_code}' "http://127.0.0.1:$port/orders" "$@"; }

[ "$(status -H "X-WX-JWT-ASSERTION: $assertion")" = 200 ] || fail "the gateway's assertion was refused: $(cat "$work/body")"
grep -q '"hello": "10001"' "$work/body" || fail "unexpected answer: $(cat "$work/body")"
"$py" "$here/app.py" verify "$assertion" | grep -q '"account_id": "10001"' || fail "app.py verify"

[ "$(status)" = 401 ] || fail "no assertion was accepted"
[ "$(status -H 'X-WX-OPENID: oForged' -H 'X-WX-ACCOUNT-ID: 10001')" = 401 ] || fail "hand-made headers were accepted"
signature="${assertion##*.}"
first="A"
[ "${signature:0:1}" = A ] && first="B"
tampered="${assertion%.*}.${first}${signature:1}"
[ "$(status -H "X-WX-JWT-ASSERTION: $tampered")" = 401 ] || fail "a tampered assertion was accepted"
if WXGATE_AUDIENCE=/other/ "$py" "$here/app.py" verify "$assertion" 2>/dev/null; then
    fail "an assertion for /api/ verified for /other/"
fi
log "ok: the signed identity verifies; bypass, forgery and tampering are refused"
