# shellcheck shell=bash
# Shared helpers of bench/run.sh: logging, the processes it started (stopped on exit),
# ports, /proc readings and small statistics. Sourced, never run; starts nothing itself.

log() { printf '[bench] %s\n' "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

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

# forget_pid PID: after stopping a process early, keep cleanup from touching its number.
forget_pid() {
    local i
    for i in "${!PIDS[@]}"; do
        [ "${PIDS[$i]}" = "$1" ] && unset 'PIDS[i]'
    done
    PIDS=("${PIDS[@]}")
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
    for i in $(seq 400); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            log "$name exited during start-up; its log:"
            cat "$logfile" >&2 || true
            exit 1
        fi
        sleep 0.025
    done
    log "$name did not listen on 127.0.0.1:$port within 10s; its log:"
    cat "$logfile" >&2 || true
    exit 1
}

# free_ports N: N loopback ports that were free a moment ago.
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

# cpu_ticks PID...: user + system CPU time, in clock ticks, of the processes (all their
# threads) and their direct children (nginx workers).
cpu_ticks() {
    local total=0 p
    for p in "$@" $(for q in "$@"; do pgrep -P "$q" 2>/dev/null || true; done); do
        [ -r "/proc/$p/stat" ] || continue
        # Fields after the ")" that closes the command name: utime is the 12th, stime the 13th.
        total=$((total + $(sed 's/^.*) //' "/proc/$p/stat" | awk '{ print $12 + $13 }')))
    done
    echo "$total"
}
CLK_TCK="$(getconf CLK_TCK)"

# us_per TICKS COUNT: CPU microseconds per unit of work.
us_per() {
    awk -v t="$1" -v hz="$CLK_TCK" -v n="$2" 'BEGIN { if (n > 0) printf "%.1f", t * 1000000 / hz / n; else print "-" }'
}

# median VALUES...: the median of the numbers given ("-" and empty values are skipped).
median() {
    printf '%s\n' "$@" | awk '$1 != "-" && $1 != "" && $1 != "?"' | sort -g | awk '
        { v[NR] = $1 }
        END {
            if (NR == 0) { print "-"; exit }
            m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
            print m
        }'
}

# fmt FORMAT VALUE: VALUE printed with FORMAT, or "-" when it is missing.
fmt() {
    # shellcheck disable=SC2059 # the format is the argument
    if [ "${2:--}" = - ]; then echo -; else printf "$1" "$2"; fi
}

# div A B [FORMAT]: A / B, or "-" when either is missing.
div() {
    awk -v a="$1" -v b="$2" -v f="${3:-%.2f}" 'BEGIN {
        if (a == "-" || b == "-" || a == "" || b == "" || b + 0 == 0) print "-"; else printf f, a / b }'
}

to_ms() { # wrk prints 812.00us / 1.23ms / 1.02s / 2.00m
    awk -v v="$1" 'BEGIN {
        if (v ~ /us$/) { sub(/us$/, "", v); printf "%.2f", v / 1000 }
        else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.2f", v }
        else if (v ~ /m$/) { sub(/m$/, "", v); printf "%.2f", v * 60000 }
        else if (v ~ /s$/) { sub(/s$/, "", v); printf "%.2f", v * 1000 }
        else printf "-" }'
}

# wrk_field FILE NAME: one number out of a saved wrk report.
wrk_field() {
    case "$2" in
        rps) awk '/^Requests\/sec:/ { print $2 }' "$1" ;;
        requests) awk '/requests in/ { print $1 }' "$1" ;;
        p50) to_ms "$(awk '$1 == "50%" { print $2 }' "$1")" ;;
        p99) to_ms "$(awk '$1 == "99%" { print $2 }' "$1")" ;;
        non2xx) awk '/Non-2xx or 3xx responses:/ { n = $NF } END { print n + 0 }' "$1" ;;
        sockerr) awk '/Socket errors:/ { gsub(/[^0-9 ]/, " "); for (i = 1; i <= NF; i++) n += $i } END { print n + 0 }' "$1" ;;
    esac
}
