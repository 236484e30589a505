# shellcheck shell=bash
# shellcheck disable=SC2034 # the R_* arrays are read through a nameref (column)
# The throughput table: wrk against each target in alternating rounds (A B C ... A B C
# ...), the CPU time its processes spent in each measured window, and the medians over
# rounds with their ratios to nginx.

declare -A PORT_OF=() PATH_OF=() TOKEN_OF=() OPENID_OF=() CPU_PIDS_OF=()
declare -A R_RPS=() R_P50=() R_P99=() R_CPU=() R_NON2XX=() R_SOCKERR=() R_REDIS_CPU=()

run_wrk() { # NAME ROUND
    local name="$1" round="$2" out url before after redis_before=0 requests
    url="http://127.0.0.1:${PORT_OF[$name]}${PATH_OF[$name]}"
    local auth=(-H "Authorization: Bearer ${TOKEN_OF[$name]}")
    if [ "$WARMUP" != 0 ]; then
        wrk -t"$THREADS" -c"$CONNECTIONS" -d"$WARMUP" "${auth[@]}" "$url" >/dev/null
    fi
    out="$WORK/wrk-$name-$round.txt"
    # shellcheck disable=SC2086 # a list of pids
    before="$(cpu_ticks ${CPU_PIDS_OF[$name]})"
    [ "$name" = wxgate-redis ] && redis_before="$(cpu_ticks "$REDIS_PID")"
    wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "${auth[@]}" "$url" >"$out"
    # shellcheck disable=SC2086
    after="$(cpu_ticks ${CPU_PIDS_OF[$name]})"
    requests="$(wrk_field "$out" requests)"
    R_CPU["$name,$round"]="$(us_per $((after - before)) "${requests:-0}")"
    if [ "$name" = wxgate-redis ]; then
        R_REDIS_CPU[$round]="$(us_per $(($(cpu_ticks "$REDIS_PID") - redis_before)) "${requests:-0}")"
    fi
    R_RPS["$name,$round"]="$(wrk_field "$out" rps)"
    R_P50["$name,$round"]="$(wrk_field "$out" p50)"
    R_P99["$name,$round"]="$(wrk_field "$out" p99)"
    R_NON2XX["$name,$round"]="$(wrk_field "$out" non2xx)"
    R_SOCKERR["$name,$round"]="$(wrk_field "$out" sockerr)"
    log "round $round $name: ${R_RPS["$name,$round"]} req/s, ${R_CPU["$name,$round"]} us cpu/req"
}

run_rounds() {
    local round name
    log "load: wrk -t$THREADS -c$CONNECTIONS -d$DURATION (warm-up $WARMUP), $ROUNDS round(s) of: ${TARGETS[*]}"
    for round in $(seq "$ROUNDS"); do
        for name in "${TARGETS[@]}"; do
            run_wrk "$name" "$round"
        done
    done
}

# column ARRAY NAME: the values of one target over the rounds.
column() {
    local -n arr="$1"
    local r
    for r in $(seq "$ROUNDS"); do
        printf '%s\n' "${arr["$2,$r"]:--}"
    done
}

sum_column() { column "$1" "$2" | awk '{ n += $1 } END { print n + 0 }'; }

med() { # ARRAY NAME [FORMAT]
    local values
    mapfile -t values < <(column "$1" "$2")
    fmt "${3:-%s}" "$(median "${values[@]}")"
}

throughput_table() {
    local name rps cpu nginx_rps="-" nginx_cpu="-"
    if [[ " ${TARGETS[*]} " == *" nginx "* ]]; then
        nginx_rps="$(med R_RPS nginx %.0f)"
        nginx_cpu="$(med R_CPU nginx %.1f)"
    fi
    echo "Throughput and latency: medians over $ROUNDS round(s); ratios are of medians, against nginx"
    printf '%-13s %10s %8s %8s %10s %9s %9s %8s %8s\n' target "req/s" "p50 ms" "p99 ms" "cpu us/req" \
        "req/s÷ngx" "cpu÷ngx" non-2xx sockerr
    for name in "${TARGETS[@]}"; do
        rps="$(med R_RPS "$name" %.0f)"
        cpu="$(med R_CPU "$name" %.1f)"
        printf '%-13s %10s %8s %8s %10s %9s %9s %8s %8s\n' "$name" "$rps" \
            "$(med R_P50 "$name" %.2f)" "$(med R_P99 "$name" %.2f)" "$cpu" \
            "$(div "$rps" "$nginx_rps")" "$(div "$cpu" "$nginx_cpu")" \
            "$(sum_column R_NON2XX "$name")" "$(sum_column R_SOCKERR "$name")"
    done
    if [[ " ${TARGETS[*]} " == *" wxgate-redis "* ]]; then
        local values
        mapfile -t values < <(for r in $(seq "$ROUNDS"); do echo "${R_REDIS_CPU[$r]:--}"; done)
        echo "(wxgate-redis cpu includes its redis-server: $(fmt %.1f "$(median "${values[@]}")") us/req of it)"
    fi
}

rounds_table() {
    local name r
    echo "Every round (req/s / cpu us per request):"
    printf '%-13s' target
    for r in $(seq "$ROUNDS"); do printf ' %17s' "round $r"; done
    echo
    for name in "${TARGETS[@]}"; do
        printf '%-13s' "$name"
        for r in $(seq "$ROUNDS"); do
            printf ' %17s' "$(printf '%.0f' "${R_RPS["$name,$r"]:-0}") / ${R_CPU["$name,$r"]:--}"
        done
        echo
    done
}
