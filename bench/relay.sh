#!/usr/bin/env bash
# The open-API relay under load: wrk sends subscribe messages through wxgate's admin
# listener (`/wechat/api/cgi-bin/message/subscribe/send`) to the bench fake WeChat, once
# with a steady access_token and once while the fake invalidates the token every
# BENCH_CHURN_MS (as another service's force_refresh would). Prints relayed calls/s,
# latency, the calls that did not end in errcode 0 (must be 0), and how many stable_token
# fetches and 40001 refusals the churn caused. Loopback only; not part of CI.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DURATION="${BENCH_DURATION:-10s}"
THREADS="${BENCH_THREADS:-1}"
CONNECTIONS="${BENCH_CONNECTIONS:-32}"
CHURN_MS="${BENCH_CHURN_MS:-1000}"
APPID="wxbench000000000a"
APP_SECRET="bench-secret"

# shellcheck source=bench/lib/common.sh
source "$ROOT/bench/lib/common.sh"
# shellcheck source=bench/lib/deps.sh
source "$ROOT/bench/lib/deps.sh"

install_missing wrk curl
build_all

# run_case NAME CHURN_MS: one fake WeChat and one wxgate, a warm-up, then the measured run.
run_case() {
    local name="$1" churn="$2" dir="$WORK/$1" wx gw admin out
    mkdir -p "$dir"
    read -r wx gw admin <<<"$(free_ports 3)"
    "$TOOLS/fake-wechat" --listen "127.0.0.1:$wx" --appid "$APPID" --secret "$APP_SECRET" \
        --delay-ms 0 --churn-ms "$churn" >"$dir/wechat.log" 2>&1 &
    PIDS+=("$!")
    wait_port "$wx" "$!" "fake WeChat" "$dir/wechat.log"
    cat >"$dir/gateway.toml" <<TOML
[server]
listen = "127.0.0.1:$gw"
drain_timeout = "2s"
[admin]
listen = "127.0.0.1:$admin"
[wechat]
api_base = "http://127.0.0.1:$wx"
[[apps]]
appid = "$APPID"
secret = "$APP_SECRET"
[log]
level = "warn"
[relay]
enabled = true
TOML
    "$WXGATE" run --config "$dir/gateway.toml" >"$dir/wxgate.log" 2>&1 &
    PIDS+=("$!")
    wait_port "$admin" "$!" "wxgate admin" "$dir/wxgate.log"
    local url="http://127.0.0.1:$admin"
    curl -fsS -X POST "$url/wechat/api/cgi-bin/message/subscribe/send" -d '{"touser":"o"}' |
        grep -q '"errcode":0' || die "$name: the relay does not answer errcode 0"
    wrk -t"$THREADS" -c"$CONNECTIONS" -d2s -s "$ROOT/bench/relay.lua" "$url" >/dev/null
    local before after
    before="$(curl -fsS "http://127.0.0.1:$wx/_stats")"
    out="$dir/wrk.txt"
    wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -s "$ROOT/bench/relay.lua" "$url" >"$out"
    after="$(curl -fsS "http://127.0.0.1:$wx/_stats")"
    python3 - "$name" "$churn" "$out" "$before" "$after" <<'PY'
import json, re, sys
name, churn, out, before, after = sys.argv[1:]
text = open(out).read()
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
p50 = re.search(r"50%\s+(\S+)", text).group(1)
p99 = re.search(r"99%\s+(\S+)", text).group(1)
failed = int(re.search(r"relay_failed (\d+)", text).group(1))
errors = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
b, a = json.loads(before), json.loads(after)
d = {k: a[k] - b[k] for k in a}
print(f"| {name} | {churn if churn != '0' else '-'} | {rps:,.0f} | {p50} | {p99} | "
      f"{failed + (int(errors.group(1)) if errors else 0)} | {d['generation']} | "
      f"{d['stable_token']} | {d['refused']} |")
PY
}

echo "| case | churn (ms) | relayed calls/s | p50 | p99 | failed calls | tokens invalidated | stable_token fetches | 40001 refusals |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
run_case steady 0
run_case churn "$CHURN_MS"
