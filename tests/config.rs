//! Command line and configuration: `--version`, `check-config` on good and bad files (each
//! bad key named in the message), `${VAR}` expansion, `secret_file`, `WXGATE_CONFIG`, the
//! shipped example configs under `config/`, and that `store = "redis"` is never silently
//! served as memory.

mod common;

use std::path::Path;
use std::time::Duration;

use common::gateway::{output_text, run_cli};
use common::{FakeWechat, GatewayBuilder};

const GOOD_KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

/// A minimal valid config (one app, one route).
fn minimal() -> String {
    "[server]\nlisten = \"127.0.0.1:0\"\n[admin]\nlisten = \"127.0.0.1:0\"\n\
     [[apps]]\nappid = \"wx0123456789abcdef\"\nsecret = \"APPSECRET-x\"\n\
     [[routes]]\nprefix = \"/api/\"\nupstream = \"http://127.0.0.1:9\"\n"
        .to_string()
}

/// Write `config` (and `files`) into a temp dir and run `check-config` on it.
fn check(config: &str, files: &[(&str, &str)], env: &[(&str, &str)]) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.toml");
    std::fs::write(&path, config).unwrap();
    for (name, content) in files {
        std::fs::write(dir.path().join(name), content).unwrap();
    }
    let out = run_cli(&["check-config", "--config", path.to_str().unwrap()], env);
    (out.status.code().unwrap_or(-1), output_text(&out))
}

/// `check-config` must fail with exit 1 and a message naming `key`.
fn assert_rejected(config: &str, key: &str) {
    let (code, text) = check(config, &[], &[]);
    assert_eq!(code, 1, "expected exit 1 for bad `{key}`; output:\n{text}");
    assert!(text.contains(key), "message does not name `{key}`:\n{text}");
}

#[test]
fn version_prints_the_crate_version() {
    let out = run_cli(&["--version"], &[]);
    assert!(
        out.status.success(),
        "--version failed: {}",
        output_text(&out)
    );
    assert!(output_text(&out).contains(env!("CARGO_PKG_VERSION")));
}

#[test]
fn check_config_accepts_a_good_file_with_a_one_line_summary() {
    let (code, text) = check(&minimal(), &[], &[]);
    assert_eq!(code, 0, "output:\n{text}");
    assert_eq!(
        text.trim().lines().count(),
        1,
        "summary is not one line:\n{text}"
    );
    assert!(!text.trim().is_empty());
}

#[test]
fn check_config_accepts_every_contract_key() {
    let cfg = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nmax_body_bytes = 1048576\ntrusted_proxies = [\"10.0.0.0/8\", \"fd00::/8\"]\n\
         header_read_timeout = \"10s\"\nidle_timeout = \"60s\"\nmax_connections = 10000\ndrain_timeout = \"30s\"\nauth_prefix = \"/wx\"\n\
         [admin]\nlisten = \"127.0.0.1:0\"\n[wechat]\napi_base = \"https://api.weixin.qq.com\"\ntimeout = \"5s\"\n\
         [[apps]]\nappid = \"wx0123456789abcdef\"\nsecret = \"APPSECRET-x\"\n\
         [session]\nstore = \"memory\"\nttl = \"7d\"\ndata_dir = \"./data\"\n\
         [rate_limit]\nlogin_per_minute = 30\nlogin_burst = 10\n\
         [redis]\nurl = \"redis://127.0.0.1:1/0\"\nkey_prefix = \"wxgate:\"\nencryption_key = \"{GOOD_KEY}\"\ncluster = false\nnodes = []\n\
         [accounts]\nfile = \"accounts.toml\"\nunbound = \"allow\"\n\
         [identity_headers]\nopenid = \"X-User-Openid\"\nappid = \"X-User-Appid\"\nunionid = \"X-User-Unionid\"\naccount_id = \"X-User-Id\"\nphone = \"X-User-Phone\"\n\
         [[routes]]\nprefix = \"/api/\"\nupstream = \"http://127.0.0.1:9000\"\nauth = \"required\"\ntimeout = \"30s\"\n"
    );
    let accounts = "[openid]\n\"oAbC123\" = \"10001\"\n[unionid]\n\"uXyZ789\" = \"10002\"\n[phone]\n\"13800138000\" = \"10003\"\n";
    let (code, text) = check(&cfg, &[("accounts.toml", accounts)], &[]);
    assert_eq!(code, 0, "output:\n{text}");
}

#[test]
fn unknown_key_is_rejected_by_name() {
    let cfg = minimal().replace(
        "listen = \"127.0.0.1:0\"\n[admin]",
        "lisen = \"127.0.0.1:0\"\n[admin]",
    );
    assert_rejected(&cfg, "lisen");
}

#[test]
fn bad_duration_is_rejected_by_name() {
    let cfg = minimal().replace("[admin]", "header_read_timeout = \"ten parsecs\"\n[admin]");
    assert_rejected(&cfg, "header_read_timeout");
}

#[test]
fn bad_cidr_is_rejected_by_name() {
    let cfg = minimal().replace("[admin]", "trusted_proxies = [\"10.0.0.0/33\"]\n[admin]");
    assert_rejected(&cfg, "trusted_proxies");
}

#[test]
fn bad_upstream_uri_is_rejected_by_name() {
    let cfg = minimal().replace("http://127.0.0.1:9", "not a uri at all");
    assert_rejected(&cfg, "upstream");
}

#[test]
fn bad_socket_address_is_rejected_by_name() {
    let cfg = minimal().replacen("listen = \"127.0.0.1:0\"", "listen = \"localhost-ish\"", 1);
    assert_rejected(&cfg, "listen");
}

#[test]
fn bad_unbound_policy_is_rejected_by_name() {
    let cfg = minimal() + "[accounts]\nunbound = \"maybe\"\n";
    assert_rejected(&cfg, "unbound");
}

#[test]
fn bad_auth_kind_is_rejected_by_name() {
    let cfg = minimal() + "auth = \"sometimes\"\n";
    assert_rejected(&cfg, "auth");
}

#[test]
fn missing_env_var_is_named() {
    let cfg = minimal().replace("APPSECRET-x", "${WXGATE_TEST_SURELY_UNSET_VAR}");
    let (code, text) = check(&cfg, &[], &[]);
    assert_eq!(code, 1, "output:\n{text}");
    assert!(
        text.contains("WXGATE_TEST_SURELY_UNSET_VAR"),
        "variable not named:\n{text}"
    );
}

#[test]
fn env_var_is_expanded() {
    let cfg = minimal().replace("APPSECRET-x", "${WXGATE_TEST_SECRET_VAR}");
    let (code, text) = check(&cfg, &[], &[("WXGATE_TEST_SECRET_VAR", "APPSECRET-y")]);
    assert_eq!(code, 0, "output:\n{text}");
}

#[test]
fn missing_secret_file_is_rejected_by_name() {
    let cfg = minimal().replace(
        "secret = \"APPSECRET-x\"",
        "secret_file = \"no-such-secret.txt\"",
    );
    assert_rejected(&cfg, "secret_file");
}

#[test]
fn check_config_reads_wxgate_config_env() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.toml");
    std::fs::write(&path, minimal()).unwrap();
    let out = run_cli(
        &["check-config"],
        &[("WXGATE_CONFIG", path.to_str().unwrap())],
    );
    assert!(out.status.success(), "output:\n{}", output_text(&out));
}

#[test]
fn redis_store_without_redis_section_is_rejected() {
    let cfg = minimal() + "[session]\nstore = \"redis\"\n";
    let (code, text) = check(&cfg, &[], &[]);
    assert_eq!(code, 1, "output:\n{text}");
    assert!(
        text.to_ascii_lowercase().contains("redis"),
        "message:\n{text}"
    );
}

/// Every gateway config shipped under `config/` passes `check-config`.
#[test]
fn example_configs_pass_check_config() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).expect("config/ exists") {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.ends_with(".toml") || name.starts_with("accounts") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let vars = env_vars_in(&text);
        let env: Vec<(&str, &str)> = vars.iter().map(|v| (v.as_str(), GOOD_KEY)).collect();
        let out = run_cli(&["check-config", "--config", path.to_str().unwrap()], &env);
        assert!(
            out.status.success(),
            "{name} fails check-config:\n{}",
            output_text(&out)
        );
        checked += 1;
    }
    assert!(checked > 0, "no gateway config found in {}", dir.display());
}

/// Names of the `${VAR}` references in a text.
fn env_vars_in(text: &str) -> Vec<String> {
    text.split("${")
        .skip(1)
        .filter_map(|rest| rest.split_once('}').map(|(v, _)| v.to_string()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_file_is_read_and_trimmed() {
    let wx = FakeWechat::start().await;
    wx.add_code("code-sf", "o-secret-file", None);
    let gw = GatewayBuilder::new(&wx)
        .no_apps()
        .app_raw(&format!(
            "appid = \"{}\"\nsecret_file = \"app.secret\"",
            wx.appid
        ))
        .file("app.secret", &format!("  {}\n\n", wx.secret))
        .start()
        .await;
    let r = gw.login("code-sf").await;
    assert_eq!(r.status, 200, "login with secret_file: {}", r.text());
    let out = run_cli(
        &[
            "check-config",
            "--config",
            gw.config_path().to_str().unwrap(),
        ],
        &[],
    );
    assert!(out.status.success(), "check-config: {}", output_text(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn env_secret_reaches_wechat() {
    let wx = FakeWechat::start().await;
    wx.add_code("code-env", "o-env", None);
    let gw = GatewayBuilder::new(&wx)
        .no_apps()
        .app(&wx.appid, "${WXGATE_TEST_APP_SECRET}")
        .env("WXGATE_TEST_APP_SECRET", &wx.secret)
        .start()
        .await;
    let r = gw.login("code-env").await;
    assert_eq!(r.status, 200, "login with ${{VAR}} secret: {}", r.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_reads_wxgate_config_env() {
    let wx = FakeWechat::start().await;
    let gw = GatewayBuilder::new(&wx).config_via_env().start().await;
    let r = gw.call("GET", "/nothing", None).await;
    common::assert_error(&r, 404, "not_found");
}

/// `store = "redis"` (with Redis unreachable) must either stop `run` with an error, or be
/// visibly Redis: `/readyz` 503 (the store does not answer) and a login that cannot store
/// its session 503 `store_unavailable`. It must never quietly serve from memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_store_is_not_silently_ignored() {
    let wx = FakeWechat::start().await;
    wx.add_code("c-redis", "o-redis", None);
    let mut gw = GatewayBuilder::new(&wx)
        .section(&format!(
            "[session]\nstore = \"redis\"\n[redis]\nurl = \"redis://127.0.0.1:1/0\"\nencryption_key = \"{GOOD_KEY}\""
        ))
        .spawn();
    let ready = gw.wait_ready(Duration::from_secs(5)).await;
    if let Some(st) = gw.try_exit() {
        assert!(!st.success(), "run with redis exited 0:\n{}", gw.logs());
        return;
    }
    if let Err(e) = ready {
        panic!("neither exited nor answered /healthz: {e}");
    }
    let r = common::send(common::client().get(gw.admin_url("/readyz"))).await;
    assert_eq!(r.status, 503, "/readyz with Redis down: {}", r.text());
    let r = gw.login("c-redis").await;
    common::assert_error(&r, 503, "store_unavailable");
}

#[test]
fn check_config_accepts_the_hardening_keys() {
    let cfg = minimal()
        .replace(
            "[admin]\nlisten = \"127.0.0.1:0\"\n",
            "body_timeout = \"30s\"\n[admin]\nlisten = \"127.0.0.1:0\"\n\
             allow = [\"127.0.0.1/32\", \"::1/128\", \"10.1.2.3\"]\ntoken_file = \"admin-token\"\nmax_connections = 256\n",
        );
    let (code, text) = check(&cfg, &[("admin-token", "0123456789abcdef-admin\n")], &[]);
    assert_eq!(code, 0, "output:\n{text}");
    assert!(!text.contains("0123456789abcdef-admin"), "{text}");
}

#[test]
fn bad_hardening_keys_are_rejected_by_name() {
    let with_server = |line: &str| minimal().replace("[admin]\n", &format!("{line}\n[admin]\n"));
    let with_admin = |line: &str| {
        minimal().replace(
            "[admin]\nlisten = \"127.0.0.1:0\"\n",
            &format!("[admin]\nlisten = \"127.0.0.1:0\"\n{line}\n"),
        )
    };
    assert_rejected(
        &with_server("body_timeout = \"soon\""),
        "server.body_timeout",
    );
    assert_rejected(&with_admin("max_connections = 0"), "admin.max_connections");
    assert_rejected(&with_admin("allow = [\"10.0.0.0/33\"]"), "admin.allow[0]");
    assert_rejected(&with_admin("token = \"short\""), "admin.token");
    assert_rejected(&with_admin("tokn = \"x\""), "tokn");
}

/// A type or syntax error in a secret-bearing key names the key and never shows its value.
#[test]
fn config_errors_never_echo_a_secret() {
    const PW: &str = "S3cretPassw0rd";
    let redis = |body: &str| {
        format!(
            "{}[redis]\nencryption_key = \"{GOOD_KEY}\"\n{body}\n",
            minimal()
        )
    };
    let cases = [
        (
            redis(&format!(
                "url = \"redis://127.0.0.1:6379\"\nnodes = \"redis://:{PW}@10.0.0.1:6379\""
            )),
            "nodes",
        ),
        (
            redis(&format!("url = [\"redis://:{PW}@10.0.0.1:6379\"]")),
            "url",
        ),
        (
            redis(&format!(
                "url = \"redis://127.0.0.1:6379\"\nnodes = [[\"redis://:{PW}@h:1\"]]"
            )),
            "nodes",
        ),
        (
            minimal().replace("secret = \"APPSECRET-x\"", &format!("secret = [\"{PW}\"]")),
            "secret",
        ),
        (
            minimal().replace(
                "secret = \"APPSECRET-x\"",
                &format!("secret = {{ v = \"{PW}\" }}"),
            ),
            "secret",
        ),
        (
            minimal().replace(
                "[admin]\nlisten = \"127.0.0.1:0\"\n",
                &format!("[admin]\nlisten = \"127.0.0.1:0\"\ntoken = [\"{PW}\"]\n"),
            ),
            "token",
        ),
        // A syntax error on the secret's own line: the quoted source line must not appear.
        (
            minimal().replace("secret = \"APPSECRET-x\"", &format!("secret = \"{PW}")),
            "line",
        ),
    ];
    for (cfg, key) in cases {
        let (code, text) = check(&cfg, &[], &[]);
        assert_eq!(code, 1, "expected a rejection:\n{text}");
        assert!(text.contains(key), "message does not name `{key}`:\n{text}");
        assert!(!text.contains(PW), "the secret is echoed:\n{text}");
    }
}
