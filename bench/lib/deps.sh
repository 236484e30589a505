# shellcheck shell=bash
# What bench/run.sh needs on the box: Debian packages (installed when missing and running
# as root, with their own services kept from starting) and the two builds (wxgate, and
# the bench tools in bench/tools). Sourced by run.sh after common.sh.

# The Debian package that brings each command.
declare -A PACKAGE_OF=(
    [wrk]=wrk [nginx]=nginx [haproxy]=haproxy [caddy]=caddy [redis-server]=redis-server
    [curl]=curl [python3]=python3
)

have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]; }

# install_missing COMMAND...: apt-get install the packages of the commands not found.
install_missing() {
    local need=() cmd
    for cmd in "$@"; do
        have "$cmd" || need+=("${PACKAGE_OF[$cmd]}")
    done
    [ "${#need[@]}" -eq 0 ] && return 0
    [ "$(id -u)" -eq 0 ] || die "missing ${need[*]}; run as root or install them (apt-get install ${need[*]})"
    log "installing from Debian packages: ${need[*]}"
    # Keep the packages' own services (nginx and caddy on port 80 of every interface,
    # haproxy, redis on 6379) from starting: invoke-rc.d and deb-systemd-invoke obey this.
    local made_policy=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod +x /usr/sbin/policy-rc.d
        made_policy=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
    [ "$made_policy" -eq 1 ] && rm -f /usr/sbin/policy-rc.d
    # On a box that runs systemd, also keep them from starting at the next boot.
    if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
        local pkg
        for pkg in "${need[@]}"; do
            case "$pkg" in nginx | caddy | haproxy | redis-server)
                systemctl disable --quiet "$pkg.service" 2>/dev/null || true ;;
            esac
        done
    fi
    return 0
}

# build_all: sets WXGATE (the binary under test) and TOOLS (the bench tools' directory).
build_all() {
    if [ -n "${BENCH_WXGATE:-}" ]; then
        WXGATE="$BENCH_WXGATE" # a prebuilt binary, e.g. to compare two versions
    else
        log "cargo build --release"
        (cd "$ROOT" && cargo build --release)
        WXGATE="$ROOT/target/release/wxgate"
    fi
    [ -x "$WXGATE" ] || die "$WXGATE not built"
    log "cargo build --release (bench/tools)"
    (cd "$ROOT/bench/tools" && cargo build --release --locked --target-dir "$ROOT/target/bench-tools")
    TOOLS="$ROOT/target/bench-tools/release"
    local tool
    for tool in bare-proxy fake-wechat ready-time; do
        [ -x "$TOOLS/$tool" ] || die "$TOOLS/$tool not built"
    done
}
