# shellcheck shell=bash
# Sanity checks before any load: each contender must answer like the others (401 without
# or with a wrong token; with the token, the upstream sees the injected identity and
# neither the forged X-WX-* headers nor the bearer token). Exits the run on a mismatch.

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

# Forged identity in several spellings; X-WX-Extra is a name only a prefix rule catches.
FORGED=(-H "X-WX-OPENID: forged" -H "X-Wx-Appid: forged" -H "x-wx-unionid: forged" -H "X-WX-Extra: forged")
WRONG_TOKEN="wxg_0000000000000000000000000000000000000000000"

check_target() { # NAME
    local name="$1" url extra=""
    url="http://127.0.0.1:${PORT_OF[$name]}${PATH_OF[$name]}"
    case "$name" in
        upstream)
            check upstream "$url" 200 'ok *'
            return ;;
        wxgate-pub)
            check "$name (public route) with token" "$url" 200 \
                "ok openid= appid= unionid= extra= authorization=" \
                -H "Authorization: Bearer ${TOKEN_OF[$name]}" "${FORGED[@]}"
            return ;;
        nginx) extra=forged ;; # nginx cannot strip by prefix: only the named five go
    esac
    check "$name with token" "$url" 200 \
        "ok openid=${OPENID_OF[$name]} appid=$APPID unionid= extra=$extra authorization=" \
        -H "Authorization: Bearer ${TOKEN_OF[$name]}" "${FORGED[@]}"
    check "$name without token" "$url" 401 '*unauthenticated*' "${FORGED[@]}"
    check "$name with a wrong token" "$url" 401 '*unauthenticated*' \
        -H "Authorization: Bearer $WRONG_TOKEN"
}

check_all() {
    local name
    for name in "${TARGETS[@]}"; do
        check_target "$name"
    done
    log "sanity checks passed: ${TARGETS[*]} (401 without or with a wrong token; identity injected, forged X-WX-* and the token not forwarded)"
}
