# shellcheck shell=bash
# The processes a bench run starts: redis-server, the fake WeChat, the upstream, and each
# contender (wxgate with either store, nginx, HAProxy, Caddy, the bare hyper proxy), each
# with a config written into $WORK. Every start_* function records its pid in PIDS (so
# cleanup stops it) and in LAST_PID, and returns once the process listens.

LOG_ON() { [ "$LOG_MODE" = on ]; }

start_redis() { # PORT
    command -v redis-server >/dev/null 2>&1 || die "the redis store needs redis-server"
    mkdir -p "$WORK/redis"
    redis-server --port "$1" --bind 127.0.0.1 --save "" --appendonly no \
        --dir "$WORK/redis" >"$WORK/redis/redis.log" 2>&1 &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
    wait_port "$1" "$LAST_PID" redis-server "$WORK/redis/redis.log"
}

start_fake_wechat() { # PORT
    "$TOOLS/fake-wechat" --listen "127.0.0.1:$1" --appid "$APPID" --secret "$APP_SECRET" \
        --delay-ms "$WECHAT_DELAY_MS" >"$WORK/wechat.log" 2>&1 &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
    wait_port "$1" "$LAST_PID" "fake WeChat" "$WORK/wechat.log"
}

# ---------------------------------------------------------------- wxgate
# wxgate_config DIR GW_PORT ADMIN_PORT STORE [EXTRA_TOML]: DIR/gateway.toml with a required
# route /api/ and a public route /pub/ to the upstream.
wxgate_config() {
    local dir="$1" gw="$2" admin="$3" store="$4" extra="${5:-}" level=info store_toml
    mkdir -p "$dir"
    LOG_ON || level=warn
    case "$store" in
        memory) store_toml='store = "memory"
data_dir = "./data"' ;;
        redis) store_toml="store = \"redis\"

[redis]
url = \"redis://127.0.0.1:$REDIS_PORT/0\"
key_prefix = \"wxgate-bench:\"
encryption_key = \"$(head -c 32 /dev/urandom | base64)\"" ;;
    esac
    cat >"$dir/gateway.toml" <<TOML
[server]
listen = "127.0.0.1:$gw"
drain_timeout = "2s"

[admin]
listen = "127.0.0.1:$admin"

[wechat]
api_base = "http://127.0.0.1:$WECHAT_PORT"

[[apps]]
appid = "$APPID"
secret = "$APP_SECRET"

[log]
format = "text"
level = "$level"

[[routes]]
prefix = "/api/"
upstream = "http://127.0.0.1:$UP_PORT"
auth = "required"

[[routes]]
prefix = "/pub/"
upstream = "http://127.0.0.1:$UP_PORT"
auth = "public"

[session]
$store_toml
$extra
TOML
}

start_wxgate() { # DIR GW_PORT ADMIN_PORT
    unset RUST_LOG
    "$WXGATE" run --config "$1/gateway.toml" >"$1/wxgate.log" 2>&1 &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
    wait_port "$2" "$LAST_PID" "wxgate ($1)" "$1/wxgate.log"
    wait_port "$3" "$LAST_PID" "wxgate admin ($1)" "$1/wxgate.log"
}

# login GW_PORT CODE: log in through wxgate (and the fake WeChat); prints the token.
login() {
    local out status body token
    out="$(curl -sS -X POST -H 'Content-Type: application/json' \
        -d "{\"code\":\"$2\",\"appid\":\"$APPID\"}" \
        -w '\n%{http_code}' "http://127.0.0.1:$1/wx/login")" || die "login on port $1: curl failed"
    status="${out##*$'\n'}"
    body="${out%$'\n'*}"
    [ "$status" = 200 ] || die "login on port $1 answered $status: $body"
    token="$(printf '%s' "$body" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')"
    case "$token" in wxg_*) printf '%s' "$token" ;; *) die "unexpected token shape in: $body" ;; esac
}

# ---------------------------------------------------------------- nginx (upstream and proxy)
nginx_main() { # NAME
    mkdir -p "$WORK/$1"
    [ "$(id -u)" -eq 0 ] && echo "user root;"
    cat <<CONF
daemon off;
worker_processes auto;
pid $WORK/$1/nginx.pid;
error_log $WORK/$1/error.log warn;
events { worker_connections 4096; }
CONF
}

nginx_http_common() { # NAME
    cat <<CONF
    client_body_temp_path $WORK/$1/body;
    proxy_temp_path $WORK/$1/proxy;
    fastcgi_temp_path $WORK/$1/fastcgi;
    uwsgi_temp_path $WORK/$1/uwsgi;
    scgi_temp_path $WORK/$1/scgi;
    keepalive_requests 1000000;
    map_hash_bucket_size 128; # "Bearer wxg_<43 chars>" is longer than the default allows
CONF
}

start_nginx() { # NAME PORT
    "$NGINX" -t -q -p "$WORK/$1/" -e "$WORK/$1/error.log" -c "$WORK/nginx-$1.conf" \
        || die "nginx config for $1 is invalid"
    "$NGINX" -p "$WORK/$1/" -e "$WORK/$1/error.log" -c "$WORK/nginx-$1.conf" \
        >"$WORK/$1/stdout.log" 2>&1 &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
    wait_port "$2" "$LAST_PID" "nginx ($1)" "$WORK/$1/error.log"
}

# The upstream: a fixed 200 that echoes what it was told about the caller, so the sanity
# checks can see the injected identity, the forged headers and the bearer token (or not).
start_upstream() { # PORT
    {
        nginx_main upstream
        cat <<CONF
http {
$(nginx_http_common upstream)
    access_log off;
    server {
        listen 127.0.0.1:$1 backlog=4096;
        location / {
            default_type text/plain;
            return 200 "ok openid=\$http_x_wx_openid appid=\$http_x_wx_appid unionid=\$http_x_wx_unionid extra=\$http_x_wx_extra authorization=\$http_authorization";
        }
    }
}
CONF
    } >"$WORK/nginx-upstream.conf"
    start_nginx upstream "$1"
}

# nginx as the gateway: the token check is a map from the one bearer value to its openid.
start_nginx_proxy() { # PORT TOKEN OPENID
    local access_log="access_log off;"
    LOG_ON && access_log="access_log $WORK/proxy/access.log;"
    {
        nginx_main proxy
        cat <<CONF
http {
$(nginx_http_common proxy)
    $access_log
    upstream backend {
        server 127.0.0.1:$UP_PORT;
        keepalive 64;
        keepalive_requests 1000000;
    }
    map \$http_authorization \$wx_openid {
        default "";
        "Bearer $2" "$3";
    }
    map \$http_x_request_id \$wx_request_id {
        default \$http_x_request_id;
        "" \$request_id;
    }
    server {
        listen 127.0.0.1:$1 backlog=4096;
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
CONF
    } >"$WORK/nginx-proxy.conf"
    start_nginx proxy "$1"
}

# ---------------------------------------------------------------- HAProxy
start_haproxy() { # PORT TOKEN OPENID
    local dir="$WORK/haproxy" global_log="" defaults_log="no log"
    mkdir -p "$dir"
    if LOG_ON; then
        global_log="log stdout format raw local0"
        defaults_log="log global
    option httplog"
    fi
    cat >"$dir/haproxy.cfg" <<CONF
global
    maxconn 4096
    $global_log

defaults
    mode http
    $defaults_log
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout http-keep-alive 60s
    http-reuse always

frontend gateway
    bind 127.0.0.1:$1
    # The token check: exactly the one bearer value, else a 401 like the others'.
    http-request return status 401 content-type application/json string '{"error":{"code":"unauthenticated","message":"log in first"}}' hdr WWW-Authenticate Bearer unless { req.fhdr(authorization) -m str "Bearer $2" }
    http-request del-header x-wx- -m beg
    http-request del-header authorization
    http-request set-header X-WX-OPENID "$3"
    http-request set-header X-WX-APPID "$APPID"
    http-request set-header X-Request-Id %[uuid] unless { req.hdr(x-request-id) -m found }
    option forwardfor
    http-request set-header X-Forwarded-Proto http
    http-request set-header X-Forwarded-Host %[req.hdr(host)]
    default_backend upstream

backend upstream
    server upstream 127.0.0.1:$UP_PORT
CONF
    haproxy -c -q -f "$dir/haproxy.cfg" || die "HAProxy config is invalid: $(haproxy -c -f "$dir/haproxy.cfg" 2>&1)"
    haproxy -db -f "$dir/haproxy.cfg" >"$dir/haproxy.log" 2>&1 &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
    wait_port "$1" "$LAST_PID" haproxy "$dir/haproxy.log"
}

# ---------------------------------------------------------------- Caddy
start_caddy() { # PORT TOKEN OPENID
    local dir="$WORK/caddy" access_log=""
    mkdir -p "$dir"
    LOG_ON && access_log="log {
		output file $dir/access.log
	}"
    # request_header runs before reverse_proxy: deleting with header_up would run after
    # its own sets and take the injected X-WX-* away again.
    cat >"$dir/Caddyfile" <<CONF
{
	admin off
	auto_https off
}

http://127.0.0.1:$1 {
	$access_log
	@authorized header Authorization "Bearer $2"
	handle @authorized {
		request_header -X-WX-*
		request_header -Authorization
		reverse_proxy 127.0.0.1:$UP_PORT {
			header_up X-WX-OPENID "$3"
			header_up X-WX-APPID "$APPID"
			header_up X-Request-Id {http.request.uuid}
			transport http {
				keepalive 60s
				keepalive_idle_conns 64
				keepalive_idle_conns_per_host 64 # Go keeps 2 by default: churn
			}
		}
	}
	handle {
		header WWW-Authenticate Bearer
		header Content-Type application/json
		respond \`{"error":{"code":"unauthenticated","message":"log in first"}}\` 401
	}
}
CONF
    HOME="$dir" XDG_CONFIG_HOME="$dir/config" XDG_DATA_HOME="$dir/data" \
        caddy validate --config "$dir/Caddyfile" --adapter caddyfile >"$dir/validate.log" 2>&1 \
        || die "Caddy config is invalid: $(tail -n 5 "$dir/validate.log")"
    HOME="$dir" XDG_CONFIG_HOME="$dir/config" XDG_DATA_HOME="$dir/data" \
        caddy run --config "$dir/Caddyfile" --adapter caddyfile >"$dir/caddy.log" 2>&1 &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
    wait_port "$1" "$LAST_PID" caddy "$dir/caddy.log"
}

# ---------------------------------------------------------------- the bare hyper proxy
start_hyper() { # PORT TOKEN OPENID
    "$TOOLS/bare-proxy" --listen "127.0.0.1:$1" --upstream "127.0.0.1:$UP_PORT" \
        --token "$2" --openid "$3" --appid "$APPID" --log "$LOG_MODE" >"$WORK/hyper.log" 2>&1 &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
    wait_port "$1" "$LAST_PID" "bare hyper proxy" "$WORK/hyper.log"
}
