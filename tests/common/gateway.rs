//! The guard around a running `wxgate` child process (started by `builder.rs` on
//! `127.0.0.1:0` for both listeners): it learns the bound addresses from the start-up log
//! line (text or JSON), polls the admin `/healthz` until ready, captures stdout and stderr,
//! sends signals, offers request helpers, and kills the child on drop. Also the one-shot
//! CLI runner.

use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tempfile::TempDir;

use super::{FakeWechat, Resp, client, send};

/// Path of the binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_wxgate")
}

/// Run `wxgate args...` to completion with extra environment variables.
pub fn run_cli(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(bin());
    cmd.args(args).env_remove("WXGATE_CONFIG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run wxgate")
}

/// stdout + stderr of a finished command, as text.
pub fn output_text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The message of the line the gateway logs once both listeners are bound.
const LISTENING: &str = "wxgate is listening";

/// A listener address not known yet (before the start-up line is read).
const UNKNOWN: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 0);

/// The public and admin addresses from the gateway's `wxgate is listening` line, in the
/// text (`listen=Some(127.0.0.1:41234)`) or the JSON (`"listen":"Some(127.0.0.1:41234)"`)
/// log format; `None` until that line is in `logs`.
pub fn listening_addrs(logs: &str) -> Option<(SocketAddr, SocketAddr)> {
    let line = logs.lines().find(|l| l.contains(LISTENING))?;
    let field = |name: &str| -> Option<SocketAddr> {
        let raw = match serde_json::from_str::<Value>(line) {
            Ok(json) => json.get(name)?.as_str()?.to_string(),
            Err(_) => {
                let at = line.find(&format!(" {name}="))? + name.len() + 2;
                line[at..].split_whitespace().next()?.to_string()
            }
        };
        let raw = raw.trim_matches('"');
        let raw = raw
            .strip_prefix("Some(")
            .and_then(|r| r.strip_suffix(')'))
            .unwrap_or(raw);
        raw.parse().ok()
    };
    Some((field("listen")?, field("admin")?))
}

/// A running gateway; killed when dropped.
pub struct Gateway {
    child: Child,
    /// The public listener; known once [`Gateway::wait_ready`] has returned `Ok`.
    pub addr: SocketAddr,
    /// The admin listener; known once [`Gateway::wait_ready`] has returned `Ok`.
    pub admin: SocketAddr,
    pub config: String,
    dir: TempDir,
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    exited: Option<ExitStatus>,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if self.exited.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Copy everything `src` yields into a shared buffer, on a thread.
pub fn capture(mut src: impl Read + Send + 'static) -> Arc<Mutex<Vec<u8>>> {
    let buf = Arc::new(Mutex::new(Vec::new()));
    let sink = buf.clone();
    std::thread::spawn(move || {
        let mut tmp = [0u8; 8192];
        while let Ok(n) = src.read(&mut tmp) {
            if n == 0 {
                break;
            }
            sink.lock().unwrap().extend_from_slice(&tmp[..n]);
        }
    });
    buf
}

impl Gateway {
    pub(crate) fn spawn_child(mut cmd: Command, dir: TempDir, config: String) -> Gateway {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn wxgate");
        let stdout = capture(child.stdout.take().unwrap());
        let stderr = capture(child.stderr.take().unwrap());
        Gateway {
            child,
            addr: UNKNOWN,
            admin: UNKNOWN,
            config,
            dir,
            stdout,
            stderr,
            exited: None,
        }
    }

    /// Wait for the start-up line (which names the listeners' addresses), then poll the
    /// admin `/healthz` until 200; Err (with the logs) if the process exits first.
    pub async fn wait_ready(&mut self, timeout: Duration) -> Result<(), String> {
        let c = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_millis(500))
            .build()
            .unwrap();
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(st) = self.try_exit() {
                return Err(format!("exited early ({st}); output:\n{}", self.logs()));
            }
            if self.admin == UNKNOWN {
                match listening_addrs(&self.logs()) {
                    Some((addr, admin)) => (self.addr, self.admin) = (addr, admin),
                    None => {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                }
            }
            let r = c.get(self.admin_url("/healthz")).send().await;
            if r.is_ok_and(|r| r.status() == 200) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let missing = if self.admin == UNKNOWN {
            format!(" (no `{LISTENING}` line with both addresses: does RUST_LOG hide it?)")
        } else {
            String::new()
        };
        Err(format!(
            "not ready after {timeout:?}{missing}; output:\n{}",
            self.logs()
        ))
    }

    /// The exit status, if the process has exited.
    pub fn try_exit(&mut self) -> Option<ExitStatus> {
        if self.exited.is_none() {
            self.exited = self.child.try_wait().expect("try_wait");
        }
        self.exited
    }

    /// Wait up to `timeout` for the process to exit.
    #[must_use = "assert the outcome: a wait that timed out must fail the test"]
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.try_exit() {
                return Some(st);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Send a signal by name (`TERM`, `INT`, `HUP`) with `kill`.
    pub fn signal(&self, name: &str) {
        let st = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(st.success(), "kill -{name} failed");
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("gateway.toml")
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin)
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned()
    }

    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.stdout.lock().unwrap()).into_owned()
    }

    /// stdout and stderr together.
    pub fn logs(&self) -> String {
        format!("{}{}", self.stdout(), self.stderr())
    }

    /// `POST /wx/login` with `{"code": code}`.
    pub async fn login(&self, code: &str) -> Resp {
        self.login_body(json!({ "code": code })).await
    }

    /// `POST /wx/login` with a JSON body.
    pub async fn login_body(&self, body: Value) -> Resp {
        send(client().post(self.url("/wx/login")).json(&body)).await
    }

    /// Log in with a valid code and return the token (asserts 200).
    pub async fn token(&self, code: &str) -> String {
        let r = self.login(code).await;
        assert_eq!(r.status, 200, "login failed: {}", r.text());
        r.json()["token"].as_str().expect("token").to_string()
    }

    /// Log `openid` in with a fresh code (no unionid) and return the token (asserts 200).
    pub async fn login_as(&self, wx: &FakeWechat, openid: &str) -> String {
        let code = format!("login-{}", super::random_hex(6));
        wx.add_code(&code, openid, None);
        self.token(&code).await
    }

    /// `GET /bindings/{appid}/{openid}` on the admin listener.
    pub async fn binding(&self, appid: &str, openid: &str) -> Resp {
        send(client().get(self.admin_url(&format!("/bindings/{appid}/{openid}")))).await
    }

    /// `POST /wx/phone` with `{"code": code}` and the bearer token.
    pub async fn phone(&self, token: &str, code: &str) -> Resp {
        let req = client()
            .post(self.url("/wx/phone"))
            .bearer_auth(token)
            .json(&json!({ "code": code }));
        send(req).await
    }

    /// `GET /wx/session` with the bearer token.
    pub async fn session(&self, token: &str) -> Resp {
        self.call("GET", "/wx/session", Some(token)).await
    }

    /// The process id (for `kill -9` from a test).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `method path` with an optional bearer token.
    pub async fn call(&self, method: &str, path: &str, token: Option<&str>) -> Resp {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = client().request(m, self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        send(req).await
    }

    /// `GET /metrics` on the admin listener, as text.
    pub async fn metrics(&self) -> String {
        let r = send(client().get(self.admin_url("/metrics"))).await;
        assert_eq!(r.status, 200, "/metrics: {}", r.text());
        r.text()
    }
}
