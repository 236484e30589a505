#!/usr/bin/env bash
# What the signed identity costs a proxied request: the same wxgate (memory store, a
# required route) with `[identity_token]` off and on, in alternating rounds on one box,
# wrk -> wxgate -> an upstream (the bench fake WeChat, which answers any path at once).
# With it on, every request carries X-WX-JWT-ASSERTION; one token is used throughout, so
# this is the steady state (a cached assertion, re-signed every ttl/2). Prints req/s and
# CPU per request (wxgate only) for each, and the ratio. Loopback only; not part of CI.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DURATION="${BENCH_DURATION:-10s}"
THREADS="${BENCH_THREADS:-1}"
CONNECTIONS="${BENCH_CONNECTIONS:-32}"
ROUNDS="${BENCH_ROUNDS:-3}"
APPID="wxbench000000000a"
APP_SECRET="bench-secret"

# shellcheck source=bench/lib/common.sh
source "$ROOT/bench/lib/common.sh"
# shellcheck source=bench/lib/deps.sh
source "$ROOT/bench/lib/deps.sh"

install_missing wrk curl python3
command -v openssl >/dev/null || die "openssl is needed to make the signing key"
build_all

read -r WX OFF_PORT OFF_ADMIN ON_PORT ON_ADMIN <<<"$(free_ports 5)"
"$TOOLS/fake-wechat" --listen "127.0.0.1:$WX" --appid "$APPID" --secret "$APP_SECRET" \
    --delay-ms 0 >"$WORK/wechat.log" 2>&1 &
PIDS+=("$!")
wait_port "$WX" "$!" "fake WeChat" "$WORK/wechat.log"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$WORK/jwt-key.pem" 2>/dev/null

# start NAME PORT ADMIN EXTRA_TOML: a wxgate; sets PID_OF[NAME] and TOKEN_OF[NAME].
declare -A PID_OF TOKEN_OF PORT_OF
start() {
    local dir="$WORK/$1"
    mkdir -p "$dir"
    cat >"$dir/gateway.toml" <<TOML
[server]
listen = "127.0.0.1:$2"
[admin]
listen = "127.0.0.1:$3"
[wechat]
api_base = "http://127.0.0.1:$WX"
[[apps]]
appid = "$APPID"
secret = "$APP_SECRET"
[log]
level = "info"
[[routes]]
prefix = "/api/"
upstream = "http://127.0.0.1:$WX"
auth = "required"
$4
TOML
    "$WXGATE" run --config "$dir/gateway.toml" >"$dir/wxgate.log" 2>&1 &
    PIDS+=("$!")
    PID_OF[$1]="$!" PORT_OF[$1]="$2"
    wait_port "$3" "$!" "wxgate $1" "$dir/wxgate.log"
    TOKEN_OF[$1]="$(curl -fsS -X POST "http://127.0.0.1:$2/wx/login" -d "{\"code\":\"bench$1\"}" |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["token"])')"
}
start off "$OFF_PORT" "$OFF_ADMIN" ""
start on "$ON_PORT" "$ON_ADMIN" "[identity_token]
enabled = true
signing_key_file = \"$WORK/jwt-key.pem\""

# the "on" gateway really signs: its upstream request carries the assertion
curl -fsS "http://127.0.0.1:$ON_ADMIN/.well-known/jwks.json" | grep -q '"ES256"' || die "no JWKS"

declare -A RPS CPU
for round in $(seq "$ROUNDS"); do
    for name in off on; do
        url="http://127.0.0.1:${PORT_OF[$name]}/api/bench"
        wrk -t"$THREADS" -c"$CONNECTIONS" -d2s -H "Authorization: Bearer ${TOKEN_OF[$name]}" "$url" >/dev/null
        before="$(cpu_ticks "${PID_OF[$name]}")"
        out="$WORK/wrk-$name-$round.txt"
        wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency \
            -H "Authorization: Bearer ${TOKEN_OF[$name]}" "$url" >"$out"
        after="$(cpu_ticks "${PID_OF[$name]}")"
        RPS[$name]+="$(wrk_field "$out" rps) "
        CPU[$name]+="$(us_per $((after - before)) "$(wrk_field "$out" requests)") "
    done
done
# shellcheck disable=SC2086 # word splitting of the collected numbers is wanted
{
    echo "| identity_token | req/s (median of $ROUNDS) | wxgate CPU per request |"
    echo "| --- | --- | --- |"
    for name in off on; do
        echo "| $name | $(median ${RPS[$name]}) | $(median ${CPU[$name]}) µs |"
    done
    echo
    echo "on ÷ off: req/s $(div "$(median ${RPS[on]})" "$(median ${RPS[off]})"), CPU per request $(div "$(median ${CPU[on]})" "$(median ${CPU[off]})")"
}
