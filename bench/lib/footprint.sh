# shellcheck shell=bash
# shellcheck disable=SC2153 # SESSIONS and the other knobs are set by run.sh
# The second table: what one wxgate (memory store) costs besides throughput. Start to
# ready (median of several starts), idle RSS, bytes per live session after many logins,
# and logins/s with many concurrent clients against a fake WeChat that answers in a fixed
# time. Uses its own wxgate with the per-IP login limit raised so that it caps nothing.

FP_STARTS_MS=() FP_STARTS_RSS=() FP_LOGIN_RPS=() FP_LOGIN_P50=() FP_LOGIN_P99=() FP_LOGIN_CPU=()
FP_LOGIN_BAD=0 FP_WECHAT_RPS=- FP_WECHAT_CPU=()

# sessions_now ADMIN_PORT: wxgate's live-session gauge.
sessions_now() {
    curl -sS "http://127.0.0.1:$1/metrics" | awk '$1 == "wxgate_sessions" { print $2 }'
}

# login_args TAG DURATION [STOP_AFTER]: LOGIN_ARGS = wrk posting /wx/login with fresh codes.
login_args() {
    LOGIN_ARGS=(-t"$LOGIN_THREADS" -c"$LOGIN_CONNECTIONS" -d"$2" --latency -s "$ROOT/bench/login.lua"
        "http://127.0.0.1:$FP_PORT" -- "$1" "$APPID" "${3:-0}")
}

login_wrk() { # TAG DURATION OUT
    login_args "$1" "$2"
    wrk "${LOGIN_ARGS[@]}" >"$3"
}

measure_starts() {
    local i out
    for i in $(seq "$STARTS"); do
        out="$("$TOOLS/ready-time" --port "$FP_ADMIN" --interval-ms 1 --log "$FP_DIR/start-$i.log" \
            -- "$WXGATE" run --config "$FP_DIR/gateway.toml")" \
            || die "wxgate start $i did not get ready: $(tail -n 5 "$FP_DIR/start-$i.log")"
        FP_STARTS_MS+=("$(printf '%s' "$out" | sed -n 's/.*ready_ms=\([0-9.]*\).*/\1/p' | xargs printf '%.1f')")
        FP_STARTS_RSS+=("$(printf '%s' "$out" | sed -n 's/.*rss_kb=\([0-9]*\).*/\1/p')")
    done
    log "start to ready: ${FP_STARTS_MS[*]} ms"
}

# many_logins: BENCH_SESSIONS logins, then wrk is told to stop (it would run its -d out).
many_logins() {
    local out="$WORK/wrk-sessions.txt" per_thread wrk_pid n target
    per_thread=$(((SESSIONS + LOGIN_THREADS - 1) / LOGIN_THREADS))
    target=$((FP_S0 + SESSIONS))
    login_args s "$SESSIONS_CAP" "$per_thread"
    # wrk itself in the background (not a subshell, which would ignore SIGINT): on SIGINT
    # it stops and reports the requests so far over the time so far.
    wrk "${LOGIN_ARGS[@]}" >"$out" &
    wrk_pid=$!
    PIDS+=("$wrk_pid")
    while kill -0 "$wrk_pid" 2>/dev/null; do
        n="$(sessions_now "$FP_ADMIN")"
        [ "${n:-0}" -ge "$target" ] && break
        sleep 0.1
    done
    kill -INT "$wrk_pid" 2>/dev/null || true
    wait "$wrk_pid" 2>/dev/null || true
    forget_pid "$wrk_pid"
    FP_SESSIONS_RPS="$(wrk_field "$out" rps)"
    FP_LOGIN_BAD=$((FP_LOGIN_BAD + $(wrk_field "$out" non2xx) + $(wrk_field "$out" sockerr)))
}

# fake_alone: the same load straight at the fake WeChat, to show it is not what limits.
fake_alone() {
    local out="$WORK/wrk-wechat-alone.txt"
    wrk -t"$LOGIN_THREADS" -c"$LOGIN_CONNECTIONS" -d"$DURATION" --latency -s "$ROOT/bench/login.lua" \
        "http://127.0.0.1:$WECHAT_PORT" -- f "$APPID" 0 "$APP_SECRET" >"$out"
    FP_WECHAT_RPS="$(wrk_field "$out" rps)"
    FP_LOGIN_BAD=$((FP_LOGIN_BAD + $(wrk_field "$out" non2xx) + $(wrk_field "$out" sockerr)))
}

footprint() {
    FP_DIR="$WORK/footprint"
    wxgate_config "$FP_DIR" "$FP_PORT" "$FP_ADMIN" memory "
[rate_limit]
login_per_minute = 60000000
login_burst = 1000000"
    measure_starts
    start_wxgate "$FP_DIR" "$FP_PORT" "$FP_ADMIN"
    local pid="$LAST_PID" r out before wx_before warm="$WARMUP"
    [ "$warm" = 0 ] && warm=1s
    sleep 1
    FP_IDLE_RSS="$(rss_kb "$pid" VmRSS)"
    # Warm-up: connections, pools and the allocator settle before the baseline.
    login_wrk w "$warm" "$WORK/wrk-login-warmup.txt"
    FP_S0="$(sessions_now "$FP_ADMIN")"
    FP_RSS0="$(rss_kb "$pid" VmRSS)"
    log "logging in $SESSIONS users ($LOGIN_CONNECTIONS clients; WeChat answers in $WECHAT_DELAY_MS ms)"
    many_logins
    FP_S1="$(sessions_now "$FP_ADMIN")"
    FP_RSS1="$(rss_kb "$pid" VmRSS)"
    for r in $(seq "$ROUNDS"); do
        out="$WORK/wrk-login-$r.txt"
        before="$(cpu_ticks "$pid")"
        wx_before="$(cpu_ticks "$WECHAT_PID")"
        login_wrk "l$r" "$DURATION" "$out"
        FP_LOGIN_CPU+=("$(us_per $(($(cpu_ticks "$pid") - before)) "$(wrk_field "$out" requests)")")
        FP_WECHAT_CPU+=("$(us_per $(($(cpu_ticks "$WECHAT_PID") - wx_before)) "$(wrk_field "$out" requests)")")
        FP_LOGIN_RPS+=("$(wrk_field "$out" rps)")
        FP_LOGIN_P50+=("$(wrk_field "$out" p50)")
        FP_LOGIN_P99+=("$(wrk_field "$out" p99)")
        FP_LOGIN_BAD=$((FP_LOGIN_BAD + $(wrk_field "$out" non2xx) + $(wrk_field "$out" sockerr)))
        log "logins round $r: ${FP_LOGIN_RPS[-1]} logins/s"
    done
    fake_alone
    kill -0 "$pid" 2>/dev/null || die "wxgate died during the logins: $(tail -n 20 "$FP_DIR/wxgate.log")"
    stop_pid "$pid"
    forget_pid "$pid"
}

footprint_table() {
    local ceiling sessions bytes rps
    ceiling="$(awk -v c="$LOGIN_CONNECTIONS" -v d="$WECHAT_DELAY_MS" 'BEGIN { printf "%.0f", c * 1000 / d }')"
    sessions=$((FP_S1 - FP_S0))
    bytes="$(div "$(((FP_RSS1 - FP_RSS0) * 1024))" "$sessions" "%.0f")"
    rps="$(median "${FP_LOGIN_RPS[@]}")"
    echo "Footprint and logins: wxgate, memory store"
    printf '%-48s %s\n' "idle RSS (1 s after ready)" "$FP_IDLE_RSS kB"
    printf '%-48s %s\n' "start to ready (/healthz 200), median of $STARTS" \
        "$(fmt %.1f "$(median "${FP_STARTS_MS[@]}")") ms   (all: ${FP_STARTS_MS[*]}; RSS at ready $(fmt %.0f "$(median "${FP_STARTS_RSS[@]}")") kB)"
    printf '%-48s %s\n' "bytes per live session ($sessions logins)" \
        "$bytes B   (RSS $FP_RSS0 -> $FP_RSS1 kB; sessions $FP_S0 -> $FP_S1; at $(fmt %.0f "$FP_SESSIONS_RPS") logins/s)"
    printf '%-48s %s\n' "logins/s, $LOGIN_CONNECTIONS clients, WeChat in $WECHAT_DELAY_MS ms" \
        "$(fmt %.0f "$rps")   ($(div "$rps" "$ceiling") of $ceiling; p50 $(fmt %.2f "$(median "${FP_LOGIN_P50[@]}")") ms, p99 $(fmt %.2f "$(median "${FP_LOGIN_P99[@]}")") ms; cpu $(fmt %.1f "$(median "${FP_LOGIN_CPU[@]}")") us/login; median of $ROUNDS)"
    printf '%-48s %s\n' "the fake WeChat alone, same load" \
        "$(fmt %.0f "$FP_WECHAT_RPS")   ($(div "$FP_WECHAT_RPS" "$ceiling") of $ceiling; its cpu $(fmt %.1f "$(median "${FP_WECHAT_CPU[@]}")") us/login during the logins)"
    printf '%-48s %s\n' "failed logins (non-2xx + socket errors)" "$FP_LOGIN_BAD"
}
