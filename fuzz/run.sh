#!/usr/bin/env bash
# Build the fuzz targets and run each for a bounded time, one after another.
#
#   fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]     (default: 60 s each, every target)
#
# Seeds come from fuzz/corpus/<target>/ (read only); what libFuzzer finds on the way goes
# to fuzz/work/<target>/ and a crashing input to fuzz/artifacts/<target>/ (both ignored by
# git). Prints, per target, the executions and whether it crashed; exits 1 on any crash.
# Not part of the test suite or .ci/run. FUZZ_SANITIZER (default none; address for ASan)
# and FUZZ_NICE (default 19) tune the run.
set -euo pipefail

cd "$(dirname "$0")"
seconds=${1:-60}
if [[ $# -gt 0 ]]; then shift; fi
if ! [[ $seconds =~ ^[0-9]+$ ]] || [[ $seconds -eq 0 ]]; then
    echo "usage: fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]" >&2
    exit 2
fi
sanitizer=${FUZZ_SANITIZER:-none}
niceness=${FUZZ_NICE:-19}

if ! rustup toolchain list | grep -q '^nightly'; then
    echo "fuzz/run.sh: the nightly toolchain is needed: rustup toolchain install nightly" >&2
    exit 2
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz/run.sh: installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi

if [[ $# -gt 0 ]]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo +nightly fuzz list)
fi

# One build for all (or the one named); `fuzz run` below then finds it up to date.
build_only=()
if [[ ${#targets[@]} -eq 1 ]]; then build_only=("${targets[0]}"); fi
nice -n "$niceness" cargo +nightly fuzz build -s "$sanitizer" "${build_only[@]}"

crashed=0
summary=()
for target in "${targets[@]}"; do
    mkdir -p "work/$target" "corpus/$target" "artifacts/$target"
    log="work/$target.log"
    echo "== $target: ${seconds}s"
    started=$(date +%s)
    status=0
    nice -n "$niceness" cargo +nightly fuzz run -s "$sanitizer" "$target" \
        "work/$target" "corpus/$target" -- \
        -max_total_time="$seconds" -timeout=10 -print_final_stats=1 >"$log" 2>&1 || status=$?
    elapsed=$(( $(date +%s) - started ))
    execs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | grep -o '[0-9]*$' | tail -n 1 || true)
    if [[ -z $execs ]]; then
        execs=$(grep -o '^#[0-9]*' "$log" | tr -d '#' | tail -n 1 || true)
    fi
    if [[ $status -eq 0 ]]; then
        outcome="no crash"
    else
        crashed=1
        artifact=$(grep -o 'Test unit written to [^ ]*' "$log" | awk '{print $5}' | tail -n 1 || true)
        outcome="CRASHED (exit $status) ${artifact:-see $log}"
        grep -m 3 -E 'panicked at|ERROR: libFuzzer|^thread' "$log" || true
    fi
    line=$(printf '%-18s %12s execs %5ss  %s' "$target" "${execs:-?}" "$elapsed" "$outcome")
    echo "$line"
    summary+=("$line")
done

echo
echo "== summary (${seconds}s per target, sanitizer $sanitizer)"
printf '%s\n' "${summary[@]}"
exit "$crashed"
