#!/usr/bin/env bash
# wxgate next to nginx, HAProxy, Caddy and a bare hyper proxy doing the same job, on this
# box, in one run: see bench/README.md for what each row means and how to read it.
#
#   upstream      wrk -> upstream nginx (return 200)                      the ceiling
#   wxgate-mem    wrk -> wxgate, memory store, required route -> upstream  token lookup + headers
#   wxgate-redis  wrk -> wxgate, Redis store (own redis-server) -> upstream
#   wxgate-pub    wrk -> wxgate, public route -> upstream                 the proxy alone
#   nginx         wrk -> nginx (map token, set headers) -> upstream       the yardstick
#   haproxy       wrk -> HAProxy (same check and headers) -> upstream
#   caddy         wrk -> Caddy (same check and headers) -> upstream
#   hyper         wrk -> bench/tools bare-proxy (same) -> upstream        the floor of the stack
#
# Then a second table for wxgate alone: start to ready, idle RSS, bytes per live session,
# logins/s against a fake WeChat that answers in 50 ms. Everything listens on 127.0.0.1
# on ports picked free at run time (never 6379) and is stopped on exit. Not part of CI.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DURATION="${BENCH_DURATION:-10s}"
THREADS="${BENCH_THREADS:-1}"
CONNECTIONS="${BENCH_CONNECTIONS:-32}"
WARMUP="${BENCH_WARMUP:-2s}"
ROUNDS="${BENCH_ROUNDS:-5}"
LOG_MODE="${BENCH_LOG:-on}"
STORE="${BENCH_STORE:-both}"
FOOTPRINT="${BENCH_FOOTPRINT:-on}"
SESSIONS="${BENCH_SESSIONS:-100000}"
SESSIONS_CAP="${BENCH_SESSIONS_CAP:-300s}"
STARTS="${BENCH_STARTS:-5}"
LOGIN_CONNECTIONS="${BENCH_LOGIN_CONNECTIONS:-256}"
LOGIN_THREADS="${BENCH_LOGIN_THREADS:-1}"
WECHAT_DELAY_MS="${BENCH_WECHAT_DELAY_MS:-50}"
APPID="wxbench000000000a"
APP_SECRET="bench-secret"
API_PATH="/api/bench"
PUBLIC_PATH="/pub/bench" # wxgate's public route: the proxy without the session lookup

# shellcheck source=bench/lib/common.sh
source "$ROOT/bench/lib/common.sh"
# shellcheck source=bench/lib/deps.sh
source "$ROOT/bench/lib/deps.sh"
# shellcheck source=bench/lib/contenders.sh
source "$ROOT/bench/lib/contenders.sh"
# shellcheck source=bench/lib/checks.sh
source "$ROOT/bench/lib/checks.sh"
# shellcheck source=bench/lib/load.sh
source "$ROOT/bench/lib/load.sh"
# shellcheck source=bench/lib/footprint.sh
source "$ROOT/bench/lib/footprint.sh"

case "$LOG_MODE" in on | off) ;; *) die "BENCH_LOG must be on or off" ;; esac
case "$STORE" in both | memory | redis) ;; *) die "BENCH_STORE must be both, memory or redis" ;; esac
case "$FOOTPRINT" in on | off) ;; *) die "BENCH_FOOTPRINT must be on or off" ;; esac

# ---------------------------------------------------------------- targets
ALL_TARGETS=(upstream wxgate-mem wxgate-redis wxgate-pub nginx haproxy caddy hyper)
read -r -a TARGETS <<<"${BENCH_TARGETS:-${ALL_TARGETS[*]}}"
wanted() { [[ " ${TARGETS[*]} " == *" $1 "* ]]; }
for name in "${TARGETS[@]}"; do
    [[ " ${ALL_TARGETS[*]} " == *" $name "* ]] || die "unknown target $name (BENCH_TARGETS: ${ALL_TARGETS[*]})"
done
# BENCH_STORE picks which wxgate stores run; the public route rides on whichever runs.
[ "$STORE" = redis ] && TARGETS=("${TARGETS[@]/wxgate-mem/}")
[ "$STORE" = memory ] && TARGETS=("${TARGETS[@]/wxgate-redis/}")
read -r -a TARGETS <<<"${TARGETS[*]}"
[ "${#TARGETS[@]}" -gt 0 ] || die "no target left to run"
RUN_MEM=0 RUN_REDIS=0
wanted wxgate-mem && RUN_MEM=1
wanted wxgate-redis && RUN_REDIS=1
if wanted wxgate-pub && [ "$RUN_MEM" = 0 ] && [ "$RUN_REDIS" = 0 ]; then
    [ "$STORE" = redis ] && RUN_REDIS=1 || RUN_MEM=1
fi

# ---------------------------------------------------------------- dependencies and builds
needs=(wrk nginx curl python3)
wanted haproxy && needs+=(haproxy)
wanted caddy && needs+=(caddy)
[ "$RUN_REDIS" = 1 ] && needs+=(redis-server)
install_missing "${needs[@]}"
NGINX="$(command -v nginx || echo /usr/sbin/nginx)"
build_all

# ---------------------------------------------------------------- processes
read -r UP_PORT NGX_PORT HAP_PORT CADDY_PORT HYPER_PORT WECHAT_PORT REDIS_PORT \
    MEM_PORT MEM_ADMIN RED_PORT RED_ADMIN FP_PORT FP_ADMIN <<<"$(free_ports 13)"
start_fake_wechat "$WECHAT_PORT"
WECHAT_PID="$LAST_PID"
start_upstream "$UP_PORT"
UP_PID="$LAST_PID"
PORT_OF[upstream]="$UP_PORT" PATH_OF[upstream]="$API_PATH" CPU_PIDS_OF[upstream]="$UP_PID"

# The gateways log in for real (through the fake WeChat); the others get the token of
# the first one, and its openid ("o" + the login code) to inject.
TOKEN="" OPENID=""
if [ "$RUN_MEM" = 1 ]; then
    wxgate_config "$WORK/wxgate-mem" "$MEM_PORT" "$MEM_ADMIN" memory
    start_wxgate "$WORK/wxgate-mem" "$MEM_PORT" "$MEM_ADMIN"
    MEM_PID="$LAST_PID"
    TOKEN="$(login "$MEM_PORT" benchmem)" OPENID=obenchmem
    PORT_OF[wxgate-mem]="$MEM_PORT" PATH_OF[wxgate-mem]="$API_PATH" CPU_PIDS_OF[wxgate-mem]="$MEM_PID"
    TOKEN_OF[wxgate-mem]="$TOKEN" OPENID_OF[wxgate-mem]="$OPENID"
    PORT_OF[wxgate-pub]="$MEM_PORT" CPU_PIDS_OF[wxgate-pub]="$MEM_PID" TOKEN_OF[wxgate-pub]="$TOKEN"
fi
if [ "$RUN_REDIS" = 1 ]; then
    start_redis "$REDIS_PORT"
    REDIS_PID="$LAST_PID"
    wxgate_config "$WORK/wxgate-redis" "$RED_PORT" "$RED_ADMIN" redis
    start_wxgate "$WORK/wxgate-redis" "$RED_PORT" "$RED_ADMIN"
    RED_PID="$LAST_PID"
    red_token="$(login "$RED_PORT" benchredis)"
    PORT_OF[wxgate-redis]="$RED_PORT" PATH_OF[wxgate-redis]="$API_PATH"
    CPU_PIDS_OF[wxgate-redis]="$RED_PID $REDIS_PID" # the store is part of its cost
    TOKEN_OF[wxgate-redis]="$red_token" OPENID_OF[wxgate-redis]=obenchredis
    if [ -z "$TOKEN" ]; then
        TOKEN="$red_token" OPENID=obenchredis
        PORT_OF[wxgate-pub]="$RED_PORT" CPU_PIDS_OF[wxgate-pub]="$RED_PID" TOKEN_OF[wxgate-pub]="$TOKEN"
    fi
fi
PATH_OF[wxgate-pub]="$PUBLIC_PATH"
[ -n "$TOKEN" ] || { TOKEN="wxg_$(head -c 32 /dev/urandom | base64 | tr '+/' '-_' | cut -c1-43)" OPENID=obench; }
TOKEN_OF[upstream]="$TOKEN"

# start_proxy NAME FUNCTION PORT: one of the non-wxgate contenders, with the shared token.
start_proxy() {
    wanted "$1" || return 0
    "$2" "$3" "$TOKEN" "$OPENID"
    PORT_OF[$1]="$3" PATH_OF[$1]="$API_PATH" CPU_PIDS_OF[$1]="$LAST_PID"
    TOKEN_OF[$1]="$TOKEN" OPENID_OF[$1]="$OPENID"
}
start_proxy nginx start_nginx_proxy "$NGX_PORT"
start_proxy haproxy start_haproxy "$HAP_PORT"
start_proxy caddy start_caddy "$CADDY_PORT"
start_proxy hyper start_hyper "$HYPER_PORT"

check_all

# ---------------------------------------------------------------- measure
RUN_START=$SECONDS
BUSY_BEFORE="$(cpu_busy_pct)"
[ "$FOOTPRINT" = on ] && footprint
run_rounds
for name in wxgate-mem wxgate-redis; do
    pid="${CPU_PIDS_OF[$name]:-}"
    [ -z "$pid" ] || kill -0 "${pid%% *}" 2>/dev/null || die "$name died during the run"
done

# ---------------------------------------------------------------- report
mkdir -p "$ROOT/bench/results"
REPORT="$ROOT/bench/results/$(date -u +%Y%m%dT%H%M%SZ).txt"
{
    echo "wxgate bench $(date -u +%Y-%m-%dT%H:%M:%SZ)   ($((SECONDS - RUN_START)) s of measuring)"
    echo "box:     $(nproc) cores, $(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo); ${BUSY_BEFORE}% busy in the second before the load"
    echo "wxgate:  $("$WXGATE" --version 2>&1 | head -n1)"
    echo "others:  $("$NGINX" -v 2>&1 | head -n1 | sed 's/.*: //')$(wanted haproxy && haproxy -v | head -n1 | awk '{ print ", haproxy " $3 }')$(wanted caddy && caddy version | awk '{ print ", caddy " $1 }'), wrk $(wrk -v 2>&1 | head -n1 | awk '{ print $2 }')"
    echo "load:    wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency (warm-up $WARMUP), Authorization: Bearer, GET $API_PATH"
    echo "logs:    $LOG_MODE (a log line per request in every proxy)"
    echo
    throughput_table
    echo
    rounds_table
    if [ "$FOOTPRINT" = on ]; then
        echo
        footprint_table
    fi
} | tee "$REPORT"
log "report saved to ${REPORT#"$ROOT"/}"
