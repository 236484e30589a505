//! Renders a gateway TOML config (both listeners on `127.0.0.1:0`, the fake WeChat's base,
//! apps, routes and any extra sections) into a temp dir and starts `wxgate run` on it; the
//! bound ports are read from the gateway's start-up line.

use std::process::Command;
use std::time::Duration;

use super::FakeWechat;
use super::gateway::{Gateway, bin};

/// A `RUST_LOG` for load tests: warnings, and the gateway's own `info` lines (the start-up
/// line among them) except the one-per-request access log.
pub const QUIET_LOG: &str = "warn,wxgate=info,wxgate::access=warn";

/// Builds a gateway config; keys already set are replaced by later calls.
#[derive(Clone)]
pub struct GatewayBuilder {
    api_base: String,
    server: Vec<(String, String)>,
    admin: Vec<(String, String)>,
    wechat: Vec<(String, String)>,
    apps: Vec<String>,
    routes: Vec<String>,
    sections: Vec<String>,
    rate_limit: String,
    files: Vec<(String, String)>,
    env: Vec<(String, String)>,
    args: Vec<String>,
    rust_log: String,
    config_via_env: bool,
    nofile: Option<u64>,
}

fn set(list: &mut Vec<(String, String)>, key: &str, value: &str) {
    list.retain(|(k, _)| k != key);
    list.push((key.to_string(), value.to_string()));
}

impl GatewayBuilder {
    /// A config pointing at `wx` with its first app, a short header timeout and the
    /// login rate limit off (tests that need it turn it on).
    pub fn new(wx: &FakeWechat) -> GatewayBuilder {
        let mut b = GatewayBuilder {
            api_base: wx.base.clone(),
            server: Vec::new(),
            admin: Vec::new(),
            wechat: Vec::new(),
            apps: Vec::new(),
            routes: Vec::new(),
            sections: Vec::new(),
            rate_limit: "login_per_minute = 0".into(),
            files: Vec::new(),
            env: Vec::new(),
            args: Vec::new(),
            rust_log: "debug".into(),
            config_via_env: false,
            nofile: None,
        };
        b = b
            .server("header_read_timeout", "\"2s\"")
            .server("drain_timeout", "\"5s\"");
        b = b.wechat("timeout", "\"2s\"");
        b.app(&wx.appid, &wx.secret)
    }

    /// Set `[server] key = value` (value is raw TOML).
    pub fn server(mut self, key: &str, value: &str) -> Self {
        set(&mut self.server, key, value);
        self
    }

    /// Set `[admin] key = value` (value is raw TOML; `listen` is always the builder's).
    pub fn admin(mut self, key: &str, value: &str) -> Self {
        set(&mut self.admin, key, value);
        self
    }

    /// Start the process with `RLIMIT_NOFILE` (soft and hard) set to `n`, through `prlimit`.
    pub fn nofile_limit(mut self, n: u64) -> Self {
        self.nofile = Some(n);
        self
    }

    /// Set `[wechat] key = value` (value is raw TOML).
    pub fn wechat(mut self, key: &str, value: &str) -> Self {
        set(&mut self.wechat, key, value);
        self
    }

    pub fn api_base(mut self, base: &str) -> Self {
        self.api_base = base.to_string();
        self
    }

    /// Add an `[[apps]]` entry.
    pub fn app(self, appid: &str, secret: &str) -> Self {
        self.app_raw(&format!("appid = \"{appid}\"\nsecret = \"{secret}\""))
    }

    /// Add an `[[apps]]` entry from raw TOML lines.
    pub fn app_raw(mut self, body: &str) -> Self {
        self.apps.push(body.to_string());
        self
    }

    /// Drop every `[[apps]]` entry added so far.
    pub fn no_apps(mut self) -> Self {
        self.apps.clear();
        self
    }

    /// Add a `[[routes]]` entry.
    pub fn route(self, prefix: &str, upstream: &str, auth: &str) -> Self {
        self.route_raw(&format!(
            "prefix = \"{prefix}\"\nupstream = \"{upstream}\"\nauth = \"{auth}\""
        ))
    }

    /// Add a `[[routes]]` entry from raw TOML lines.
    pub fn route_raw(mut self, body: &str) -> Self {
        self.routes.push(body.to_string());
        self
    }

    /// Append a whole raw section, e.g. `"[accounts]\nunbound = \"reject\""`.
    pub fn section(mut self, toml: &str) -> Self {
        self.sections.push(toml.to_string());
        self
    }

    /// Replace the body of `[rate_limit]`.
    pub fn rate_limit(mut self, body: &str) -> Self {
        self.rate_limit = body.to_string();
        self
    }

    /// Write a file next to the config (relative name).
    pub fn file(mut self, name: &str, content: &str) -> Self {
        self.files.push((name.to_string(), content.to_string()));
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// An extra argument after `run --config FILE`.
    pub fn arg(mut self, a: &str) -> Self {
        self.args.push(a.to_string());
        self
    }

    /// Set `RUST_LOG`. It must let through the `info` line the gateway logs at start-up
    /// (target `wxgate`), which tells the harness the ports: see [`QUIET_LOG`].
    pub fn rust_log(mut self, filter: &str) -> Self {
        self.rust_log = filter.to_string();
        self
    }

    /// Name the config file through `WXGATE_CONFIG` instead of `--config`.
    pub fn config_via_env(mut self) -> Self {
        self.config_via_env = true;
        self
    }

    /// The TOML text, both listeners on `127.0.0.1:0` (the kernel picks free ports).
    pub fn render(&self) -> String {
        let kv = |l: &[(String, String)]| {
            l.iter()
                .map(|(k, v)| format!("{k} = {v}\n"))
                .collect::<String>()
        };
        let mut out = format!("[server]\nlisten = \"127.0.0.1:0\"\n{}\n", kv(&self.server));
        out += &format!("[admin]\nlisten = \"127.0.0.1:0\"\n{}\n", kv(&self.admin));
        out += &format!(
            "[wechat]\napi_base = \"{}\"\n{}\n",
            self.api_base,
            kv(&self.wechat)
        );
        out += &format!("[rate_limit]\n{}\n\n", self.rate_limit);
        for a in &self.apps {
            out += &format!("[[apps]]\n{a}\n\n");
        }
        for r in &self.routes {
            out += &format!("[[routes]]\n{r}\n\n");
        }
        for s in &self.sections {
            out += &format!("{s}\n\n");
        }
        out
    }

    /// Start the gateway and wait until its admin `/healthz` answers (panics otherwise).
    pub async fn start(self) -> Gateway {
        let mut gw = self.spawn();
        if let Err(e) = gw.wait_ready(Duration::from_secs(15)).await {
            panic!("gateway did not start: {e}\n--- config ---\n{}", gw.config);
        }
        gw
    }

    /// Start the gateway process without waiting for it; its addresses are known once
    /// [`Gateway::wait_ready`] returns `Ok`.
    pub fn spawn(&self) -> Gateway {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = self.render();
        let path = dir.path().join("gateway.toml");
        std::fs::write(&path, &config).unwrap();
        for (name, content) in &self.files {
            std::fs::write(dir.path().join(name), content).unwrap();
        }
        let mut cmd = match self.nofile {
            Some(n) => {
                let mut c = Command::new("prlimit");
                c.arg(format!("--nofile={n}:{n}")).arg("--").arg(bin());
                c
            }
            None => Command::new(bin()),
        };
        cmd.arg("run");
        if self.config_via_env {
            cmd.env("WXGATE_CONFIG", &path);
        } else {
            cmd.arg("--config").arg(&path).env_remove("WXGATE_CONFIG");
        }
        cmd.args(&self.args).env("RUST_LOG", &self.rust_log);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        Gateway::spawn_child(cmd, dir, config)
    }
}
