#!/usr/bin/env bash
# Throughput and latency of wxgate next to nginx doing the same job, on this box.
#
#   (a) upstream   wrk -> upstream nginx (return 200)             the ceiling
#   (b) wxgate     wrk -> wxgate (required route) -> upstream     token lookup + header rewrite
#   (c) nginx      wrk -> nginx (map token, set headers) -> upstream   the yardstick
#   (d) wxgate-pub wrk -> wxgate (public route) -> upstream       the proxy alone
#
# Everything listens on 127.0.0.1, on ports picked free at run time, and is stopped on
# exit. See bench/README.md for how to read the table. Not part of CI.
#
# Knobs (environment): BENCH_DURATION (10s), BENCH_THREADS (2), BENCH_CONNECTIONS (64),
# BENCH_WARMUP (2s, 0 to skip), BENCH_ROUNDS (1), BENCH_LOG (on|off: per-request logs of
# wxgate and nginx), BENCH_KEEP=1 (keep the temp dir with configs and logs),
# BENCH_WXGATE=/path/to/wxgate (use that binary instead of building target/release).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DURATION="${BENCH_DURATION:-10s}"
THREADS="${BENCH_THREADS:-2}"
CONNECTIONS="${BENCH_CONNECTIONS:-64}"
WARMUP="${BENCH_WARMUP:-2s}"
ROUNDS="${BENCH_ROUNDS:-1}"
LOG_MODE="${BENCH_LOG:-on}"
STORE="${BENCH_STORE:-memory}"
APPID="wxbench000000000a"
PATH_UNDER_TEST="/api/bench"
PUBLIC_PATH="/pub/bench" # wxgate's public route: the proxy without the session lookup

log() { printf '[bench] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

case "$LOG_MODE" in on | off) ;; *) die "BENCH_LOG must be on or off" ;; esac
case "$STORE" in memory | redis) ;; *) die "BENCH_STORE must be memory or redis" ;; esac

# ---------------------------------------------------------------- dependencies
install_missing() {
    local need=()
    command -v wrk >/dev/null 2>&1 || need+=(wrk)
    command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx)
    command -v curl >/dev/null 2>&1 || need+=(curl)
    command -v python3 >/dev/null 2>&1 || need+=(python3)
    [ "${#need[@]}" -eq 0 ] && return
    [ "$(id -u)" -eq 0 ] || die "missing ${need[*]}; run as root or install them (apt-get install ${need[*]})"
    log "installing from Debian packages: ${need[*]}"
    # Keep the package's own nginx service (port 80, all interfaces) from starting.
    local made_policy=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod +x /usr/sbin/policy-rc.d
        made_policy=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
    [ "$made_policy" -eq 1 ] && rm -f /usr/sbin/policy-rc.d
    return 0
}
install_missing
NGINX="$(command -v nginx || echo /usr/sbin/nginx)"

# ---------------------------------------------------------------- process bookkeeping
WORK="$(mktemp -d /tmp/wxgate-bench.XXXXXX)"
PIDS=()

stop_pid() {
    local pid="$1" i
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local rc=$? i
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
        stop_pid "${PIDS[$i]}"
    done
    if [ "${BENCH_KEEP:-0}" = 1 ]; then
        log "kept $WORK"
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# wait_port PORT PID NAME LOGFILE: poll until something accepts on 127.0.0.1:PORT.
wait_port() {
    local port="$1" pid="$2" name="$3" logfile="$4" i
    for i in $(seq 200); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            log "$name exited during start-up; its log:"
            cat "$logfile" >&2 || true
            exit 1
        fi
        sleep 0.05
    done
    log "$name did not listen on 127.0.0.1:$port within 10s; its log:"
    cat "$logfile" >&2 || true
    exit 1
}

free_ports() {
    python3 - "$1" <<'PY'
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
}

# cpu_busy_pct: share of all cores busy over one second, from /proc/stat.
cpu_busy_pct() {
    local a b
    a="$(awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9, $5 + $6 }' /proc/stat)"
    sleep 1
    b="$(awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9, $5 + $6 }' /proc/stat)"
    awk -v a="$a" -v b="$b" 'BEGIN {
        split(a, x, " "); split(b, y, " ")
        busy = y[1] - x[1]; idle = y[2] - x[2]
        printf "%.0f", (busy + idle > 0) ? 100 * busy / (busy + idle) : 0 }'
}

rss_kb() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }

# ---------------------------------------------------------------- build
if [ -n "${BENCH_WXGATE:-}" ]; then
    WXGATE="$BENCH_WXGATE" # a prebuilt binary, e.g. to compare two versions
else
    log "cargo build --release"
    (cd "$ROOT" && cargo build --release)
    WXGATE="$ROOT/target/release/wxgate"
fi
[ -x "$WXGATE" ] || die "$WXGATE not built"

read -r UP_PORT NGX_PORT GW_PORT ADMIN_PORT REDIS_PORT <<<"$(free_ports 5)"

# ---------------------------------------------------------------- Redis (BENCH_STORE=redis)
STORE_TOML='store = "memory"
data_dir = "./data"'
if [ "$STORE" = redis ]; then
    command -v redis-server >/dev/null 2>&1 || die "BENCH_STORE=redis needs redis-server"
    mkdir -p "$WORK/redis"
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
        --dir "$WORK/redis" >"$WORK/redis/redis.log" 2>&1 &
    PIDS+=($!)
    wait_port "$REDIS_PORT" "$!" redis-server "$WORK/redis/redis.log"
    STORE_TOML="store = \"redis\"

[redis]
url = \"redis://127.0.0.1:$REDIS_PORT/0\"
encryption_key = \"$(head -c 32 /dev/urandom | base64)\""
fi

# ---------------------------------------------------------------- fake WeChat
python3 "$ROOT/bench/fake_wechat.py" "$WORK/wechat.port" >"$WORK/wechat.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 200); do [ -s "$WORK/wechat.port" ] && break; sleep 0.05; done
[ -s "$WORK/wechat.port" ] || die "fake WeChat did not start: $(cat "$WORK/wechat.log")"
WECHAT_PORT="$(cat "$WORK/wechat.port")"

# ---------------------------------------------------------------- nginx instances
nginx_user=""
[ "$(id -u)" -eq 0 ] && nginx_user="user root;"
if [ "$LOG_MODE" = on ]; then
    proxy_access_log="access_log $WORK/nginx-proxy.access.log;"
else
    proxy_access_log="access_log off;"
fi

# nginx_main NAME: the part every instance shares.
nginx_main() {
    mkdir -p "$WORK/$1"
    cat <<EOF
$nginx_user
daemon off;
worker_processes auto;
pid $WORK/$1/nginx.pid;
error_log $WORK/$1/error.log warn;
events { worker_connections 4096; }
EOF
}

nginx_http_common() {
    cat <<EOF
    client_body_temp_path $WORK/$1/body;
    proxy_temp_path $WORK/$1/proxy;
    fastcgi_temp_path $WORK/$1/fastcgi;
    uwsgi_temp_path $WORK/$1/uwsgi;
    scgi_temp_path $WORK/$1/scgi;
    keepalive_requests 1000000;
    map_hash_bucket_size 128; # "Bearer wxg_<43 chars>" is longer than the default allows
EOF
}

# The upstream: a fixed 200 that echoes what it was told about the caller, so the
# sanity checks can see the injected identity and the absence of the bearer token.
{
    nginx_main upstream
    cat <<EOF
http {
$(nginx_http_common upstream)
    access_log off;
    server {
        listen 127.0.0.1:$UP_PORT;
        location / {
            default_type text/plain;
            return 200 "ok openid=\$http_x_wx_openid appid=\$http_x_wx_appid authorization=\$http_authorization";
        }
    }
}
EOF
} >"$WORK/nginx-upstream.conf"

start_nginx() { # NAME PORT
    "$NGINX" -t -q -p "$WORK/$1/" -e "$WORK/$1/error.log" -c "$WORK/nginx-$1.conf" \
        || die "nginx config for $1 is invalid"
    "$NGINX" -p "$WORK/$1/" -e "$WORK/$1/error.log" -c "$WORK/nginx-$1.conf" \
        >"$WORK/$1/stdout.log" 2>&1 &
    PIDS+=($!)
    wait_port "$2" "$!" "nginx ($1)" "$WORK/$1/error.log"
}
start_nginx upstream "$UP_PORT"

# ---------------------------------------------------------------- wxgate
gw_level=info
[ "$LOG_MODE" = off ] && gw_level=warn
cat >"$WORK/gateway.toml" <<EOF
[server]
listen = "127.0.0.1:$GW_PORT"
drain_timeout = "2s"

[admin]
listen = "127.0.0.1:$ADMIN_PORT"

[wechat]
api_base = "http://127.0.0.1:$WECHAT_PORT"

[[apps]]
appid = "$APPID"
secret = "bench-secret"

[session]
$STORE_TOML

[log]
format = "text"
level = "$gw_level"

[[routes]]
prefix = "/api/"
upstream = "http://127.0.0.1:$UP_PORT"
auth = "required"

[[routes]]
prefix = "/pub/"
upstream = "http://127.0.0.1:$UP_PORT"
auth = "public"
EOF

unset RUST_LOG
"$WXGATE" run --config "$WORK/gateway.toml" >"$WORK/wxgate.log" 2>&1 &
GW_PID=$!
PIDS+=("$GW_PID")
wait_port "$GW_PORT" "$GW_PID" wxgate "$WORK/wxgate.log"
wait_port "$ADMIN_PORT" "$GW_PID" "wxgate admin" "$WORK/wxgate.log"

login_body="$(curl -sS -X POST -H 'Content-Type: application/json' \
    -d "{\"code\":\"bench-code\",\"appid\":\"$APPID\"}" \
    -w '\n%{http_code}' "http://127.0.0.1:$GW_PORT/wx/login")"
login_status="${login_body##*$'\n'}"
login_body="${login_body%$'\n'*}"
[ "$login_status" = 200 ] || die "login answered $login_status: $login_body"
TOKEN="$(printf '%s' "$login_body" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')"
case "$TOKEN" in wxg_*) ;; *) die "unexpected token shape in: $login_body" ;; esac

# ---------------------------------------------------------------- nginx as the gateway
{
    nginx_main proxy
    cat <<EOF
http {
$(nginx_http_common proxy)
    $proxy_access_log
    upstream backend {
        server 127.0.0.1:$UP_PORT;
        keepalive 64;
        keepalive_requests 1000000;
    }
    # The token check: the one token the gateway minted maps to its openid.
    map \$http_authorization \$wx_openid {
        default "";
        "Bearer $TOKEN" "obench";
    }
    map \$http_x_request_id \$wx_request_id {
        default \$http_x_request_id;
        "" \$request_id;
    }
    server {
        listen 127.0.0.1:$NGX_PORT;
        location /api/ {
            default_type application/json; # for the 401; proxied answers keep theirs
            if (\$wx_openid = "") {
                add_header WWW-Authenticate Bearer always;
                return 401 '{"error":{"code":"unauthenticated","message":"log in first"}}';
            }
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            # Never forward the bearer token; inject identity; an empty value drops a
            # client-sent header of that name. (nginx cannot strip the whole X-WX-
            # prefix without extra modules; headers with "_" are dropped by default.)
            proxy_set_header Authorization "";
            proxy_set_header X-WX-OPENID \$wx_openid;
            proxy_set_header X-WX-APPID "$APPID";
            proxy_set_header X-WX-UNIONID "";
            proxy_set_header X-WX-ACCOUNT-ID "";
            proxy_set_header X-WX-PHONE "";
            proxy_set_header X-Request-Id \$wx_request_id;
            proxy_set_header X-Forwarded-For \$remote_addr;
            proxy_set_header X-Forwarded-Proto \$scheme;
            proxy_set_header X-Forwarded-Host \$host;
        }
    }
}
EOF
} >"$WORK/nginx-proxy.conf"
start_nginx proxy "$NGX_PORT"
NGX_PID="${PIDS[${#PIDS[@]} - 1]}"

# ---------------------------------------------------------------- sanity checks
# check NAME URL EXPECTED_STATUS BODY_PATTERN [curl args...]
check() {
    local name="$1" url="$2" want="$3" pattern="$4"
    shift 4
    local out status body
    out="$(curl -sS -w '\n%{http_code}' "$@" "$url")" || die "$name: curl failed"
    status="${out##*$'\n'}"
    body="${out%$'\n'*}"
    [ "$status" = "$want" ] || die "$name: status $status, want $want: $body"
    # shellcheck disable=SC2053 # the pattern is a glob on purpose
    [[ "$body" == $pattern ]] || die "$name: body '$body' does not match '$pattern'"
}
AUTH=(-H "Authorization: Bearer $TOKEN")
FORGED=(-H "X-WX-OPENID: forged" -H "X-WX-APPID: forged")
check upstream "http://127.0.0.1:$UP_PORT$PATH_UNDER_TEST" 200 'ok *' "${AUTH[@]}"
for target in "wxgate:$GW_PORT" "nginx:$NGX_PORT"; do
    name="${target%%:*}"
    port="${target##*:}"
    check "$name with token" "http://127.0.0.1:$port$PATH_UNDER_TEST" 200 \
        "ok openid=obench appid=$APPID authorization=" "${AUTH[@]}" "${FORGED[@]}"
    check "$name without token" "http://127.0.0.1:$port$PATH_UNDER_TEST" 401 '*unauthenticated*' "${FORGED[@]}"
done
check "wxgate public route" "http://127.0.0.1:$GW_PORT$PUBLIC_PATH" 200 \
    "ok openid= appid= authorization=" "${AUTH[@]}" "${FORGED[@]}"
log "sanity checks passed (identity injected, forged X-WX-* and bearer token not forwarded, 401 without token)"

# ---------------------------------------------------------------- load
to_ms() { # wrk prints 812.00us / 1.23ms / 1.02s
    awk -v v="$1" 'BEGIN {
        if (v ~ /us$/) { sub(/us$/, "", v); printf "%.2f", v / 1000 }
        else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.2f", v }
        else if (v ~ /s$/) { sub(/s$/, "", v); printf "%.2f", v * 1000 }
        else printf "?" }'
}

# CPU time (user + system, in clock ticks) of a process and its children (nginx workers).
cpu_ticks() { # PID
    local total=0 p
    for p in "$1" $(pgrep -P "$1" 2>/dev/null || true); do
        [ -r "/proc/$p/stat" ] || continue
        total=$((total + $(awk '{ print $14 + $15 }' "/proc/$p/stat")))
    done
    echo "$total"
}
CLK_TCK="$(getconf CLK_TCK)"
cpu_pid_of() { # NAME: the process whose CPU a target's row reports (none for the upstream)
    case "$1" in
        wxgate | wxgate-pub) echo "$GW_PID" ;;
        nginx) echo "$NGX_PID" ;;
        *) echo "" ;;
    esac
}

RESULTS=()
declare -A RPS_SUM=() RPS=() CPU_SUM=()
run_wrk() { # NAME PORT ROUND [PATH]
    local name="$1" port="$2" round="$3" out
    local url="http://127.0.0.1:$port${4:-$PATH_UNDER_TEST}"
    if [ "$WARMUP" != 0 ]; then
        wrk -t"$THREADS" -c"$CONNECTIONS" -d"$WARMUP" -H "Authorization: Bearer $TOKEN" "$url" >/dev/null
    fi
    out="$WORK/wrk-$name-$round.txt"
    local pid ticks_before=0 cpu_us="-"
    pid="$(cpu_pid_of "$name")"
    [ -n "$pid" ] && ticks_before="$(cpu_ticks "$pid")"
    wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency \
        -H "Authorization: Bearer $TOKEN" "$url" >"$out"
    local requests
    requests="$(awk '/requests in/ { print $1 }' "$out")"
    if [ -n "$pid" ] && [ "${requests:-0}" -gt 0 ]; then
        cpu_us="$(awk -v t="$(($(cpu_ticks "$pid") - ticks_before))" -v hz="$CLK_TCK" -v n="$requests" \
            'BEGIN { printf "%.1f", t * 1000000 / hz / n }')"
        CPU_SUM[$name]="$(awk -v a="${CPU_SUM[$name]:-0}" -v b="$cpu_us" 'BEGIN { print a + b }')"
    fi
    local rps p50 p99 non2xx sockerr
    rps="$(awk '/^Requests\/sec:/ { print $2 }' "$out")"
    p50="$(to_ms "$(awk '$1 == "50%" { print $2 }' "$out")")"
    p99="$(to_ms "$(awk '$1 == "99%" { print $2 }' "$out")")"
    non2xx="$(awk '/Non-2xx or 3xx responses:/ { print $NF }' "$out")"
    sockerr="$(awk '/Socket errors:/ { sub(/^ *Socket errors: */, ""); print }' "$out")"
    RESULTS+=("$(printf '%-10s %5s %12.0f %9s %9s %10s %8s  %s' \
        "$name" "$round" "$rps" "$p50" "$p99" "$cpu_us" "${non2xx:-0}" "${sockerr:-none}")")
    RPS_SUM[$name]="$(awk -v a="${RPS_SUM[$name]:-0}" -v b="$rps" 'BEGIN { print a + b }')"
    RPS["$name,$round"]="$rps"
    log "$name round $round: $rps req/s"
}

BUSY_BEFORE="$(cpu_busy_pct)"
RSS_BEFORE="$(rss_kb "$GW_PID" VmRSS)"
log "load: wrk -t$THREADS -c$CONNECTIONS -d$DURATION (warm-up $WARMUP), $ROUNDS round(s), logs $LOG_MODE"
for round in $(seq "$ROUNDS"); do
    run_wrk upstream "$UP_PORT" "$round"
    run_wrk wxgate "$GW_PORT" "$round"
    run_wrk nginx "$NGX_PORT" "$round"
    run_wrk wxgate-pub "$GW_PORT" "$round" "$PUBLIC_PATH"
done
kill -0 "$GW_PID" 2>/dev/null || die "wxgate died during the run; its log: $(tail -n 20 "$WORK/wxgate.log")"
RSS_AFTER="$(rss_kb "$GW_PID" VmRSS)"
RSS_PEAK="$(rss_kb "$GW_PID" VmHWM)"

# ---------------------------------------------------------------- report
div() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "?" }'; }
ratio() { div "${RPS_SUM[$1]}" "${RPS_SUM[$2]}"; }
per_round() {
    local r out=""
    for r in $(seq "$ROUNDS"); do
        out+=" $(div "${RPS["wxgate,$r"]}" "${RPS["nginx,$r"]}")"
    done
    echo "${out# }"
}
mkdir -p "$ROOT/bench/results"
REPORT="$ROOT/bench/results/$(date -u +%Y%m%dT%H%M%SZ).txt"
{
    echo "wxgate bench $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "box:    $(nproc) cores, $(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
    echo "wxgate: $("$WXGATE" --version 2>&1 | head -n1)"
    echo "nginx:  $("$NGINX" -v 2>&1 | head -n1)   wrk: $(wrk -v 2>&1 | head -n1 | awk '{ print $2 }')"
    echo "load:   wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency, Authorization: Bearer, GET $PATH_UNDER_TEST"
    echo "        (wxgate-pub: the same through wxgate's public route $PUBLIC_PATH, no session lookup)"
    echo "logs:   $LOG_MODE (per-request log lines of wxgate and the nginx proxy)"
    echo "store:  $STORE (wxgate's session store)"
    echo "cpu:    ${BUSY_BEFORE}% busy in the second before the load (other work skews everything)"
    echo
    printf '%-10s %5s %12s %9s %9s %10s %8s  %s\n' target round "req/s" "p50 ms" "p99 ms" "cpu us/req" non-2xx "socket errors"
    printf '%s\n' "${RESULTS[@]}"
    echo
    echo "wxgate / nginx  (req/s): $(ratio wxgate nginx)   per round: $(per_round)"
    echo "cpu per request, nginx / wxgate: $(div "${CPU_SUM[nginx]:-0}" "${CPU_SUM[wxgate]:-0}")   (1.00 = as cheap as nginx; steadier than req/s on a shared box)"
    echo "wxgate / upstream (req/s): $(ratio wxgate upstream)   nginx / upstream: $(ratio nginx upstream)"
    echo "wxgate (required) / wxgate-pub (req/s): $(ratio wxgate wxgate-pub)   (cost of the token check + identity headers)"
    echo "wxgate RSS: ${RSS_BEFORE} kB before load, ${RSS_AFTER} kB after, peak ${RSS_PEAK} kB"
} | tee "$REPORT"
log "report saved to ${REPORT#"$ROOT"/}"
