//! A real `redis-server` for the Redis tests: started on a loopback port below the
//! kernel's ephemeral range (never 6379; a port it cannot bind, or that another process
//! answers on, is given up for another, a bounded number of times) in a temp dir with
//! persistence off, stoppable (`SHUTDOWN NOSAVE`) and restartable on the same port; a local
//! 3-master Redis Cluster; a tiny RESP client ([`client`]) to read every key back. Without
//! `redis-server` the tests skip with a note, unless `CI` is set: then they fail.

mod client;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use tempfile::TempDir;

use super::gateway::capture;
pub use client::{Reply, assert_dump_clean, command};

/// Ports tried for a server: below Linux's ephemeral range (32768 and up), where the
/// kernel never puts the tests' own `:0` sockets, with room for each one's cluster bus
/// port (+10000, Redis's default offset).
const PORTS: std::ops::Range<u16> = 12_000..22_000;
/// How many ports a server tries before the test fails.
const PORT_TRIES: usize = 10;

/// A port from [`PORTS`], at random.
fn candidate_port() -> u16 {
    let span = u64::from(PORTS.end - PORTS.start);
    let offset = getrandom::u64().expect("OS RNG") % span;
    PORTS.start + u16::try_from(offset).expect("offset within the range")
}

/// Whether Redis tests can run; panics when `redis-server` is missing and `CI` is set.
pub fn redis_available() -> bool {
    let found = Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set but redis-server is not installed: Redis tests must not skip"
        );
        eprintln!(
            "NOTE: redis-server not found; skipping this Redis test (set CI to fail instead)"
        );
    }
    found
}

/// 32 random bytes in base64: an `[redis] encryption_key`.
pub fn encryption_key() -> String {
    let mut k = [0u8; 32];
    getrandom::fill(&mut k).unwrap();
    base64::engine::general_purpose::STANDARD.encode(k)
}

/// `[session] store = "redis"` and a `[redis]` section for `url` (single node).
pub fn redis_sections(url: &str, key: &str) -> String {
    format!("[session]\nstore = \"redis\"\n\n[redis]\nurl = \"{url}\"\nencryption_key = \"{key}\"")
}

/// A `redis-server` child process; killed on drop.
pub struct RedisServer {
    pub port: u16,
    extra: Vec<String>,
    dir: TempDir,
    child: Option<Child>,
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl RedisServer {
    /// Start a plain server, or None (after a note) when redis-server is missing and CI unset.
    pub async fn start() -> Option<RedisServer> {
        if !redis_available() {
            return None;
        }
        Some(Self::start_with(&[]).await)
    }

    /// Start with extra arguments on a free port: a port it cannot bind (or where another
    /// process answers) is given up for another, up to [`PORT_TRIES`] times.
    pub async fn start_with(extra: &[&str]) -> RedisServer {
        let mut failures = Vec::new();
        for _ in 0..PORT_TRIES {
            let port = candidate_port();
            match Self::start_on(port, extra).await {
                Ok(r) => return r,
                Err(why) => failures.push(format!("port {port}: {why}")),
            }
        }
        panic!(
            "redis-server did not start on {PORT_TRIES} ports:\n{}",
            failures.join("\n")
        );
    }

    /// Start on `port` exactly; Err with why when that fails (the port is taken, say).
    pub async fn start_on(port: u16, extra: &[&str]) -> Result<RedisServer, String> {
        let mut r = RedisServer {
            port,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            dir: tempfile::tempdir().expect("tempdir"),
            child: None,
        };
        r.launch().await.map(|()| r)
    }

    /// redis://127.0.0.1:PORT/0
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    /// Spawn on `self.port` and wait until the server on that port is this very process
    /// (`INFO server` names its pid); Err with why (it exited, e.g. "Address already in
    /// use", another process answers there, or it never answered).
    async fn launch(&mut self) -> Result<(), String> {
        let port = self.port.to_string();
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", &port, "--bind", "127.0.0.1", "--save", ""])
            .args(["--appendonly", "no", "--protected-mode", "yes"])
            .arg("--dir")
            .arg(self.dir.path())
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn redis-server");
        let out = capture(child.stdout.take().expect("piped stdout"));
        let err = capture(child.stderr.take().expect("piped stderr"));
        let output = || {
            let text = |b: &std::sync::Mutex<Vec<u8>>| {
                String::from_utf8_lossy(&b.lock().unwrap()).into_owned()
            };
            format!("{}{}", text(&out), text(&err))
        };
        let pid = format!("process_id:{}", child.id());
        let deadline = Instant::now() + Duration::from_secs(10);
        let why = loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!("exited ({status}): {}", output()));
            }
            match command(self.port, &["INFO", "server"]) {
                Ok(info) if info.text().lines().any(|l| l.trim() == pid) => {
                    self.child = Some(child);
                    return Ok(());
                }
                Ok(info) if info.text().contains("process_id:") => {
                    break "another process answers on this port".to_string();
                }
                _ => {}
            }
            if Instant::now() >= deadline {
                break format!("no answer within 10 s: {}", output());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let _ = child.kill();
        let _ = child.wait();
        Err(why)
    }

    /// `SHUTDOWN NOSAVE` and wait for the process to exit.
    pub async fn stop(&mut self) {
        let _ = command(self.port, &["SHUTDOWN", "NOSAVE"]);
        if let Some(mut c) = self.child.take() {
            let deadline = Instant::now() + Duration::from_secs(5);
            while c.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Start again on the same port (a few tries while the port is released).
    pub async fn restart(&mut self) {
        let mut why = String::new();
        for _ in 0..50 {
            match self.launch().await {
                Ok(()) => return,
                Err(e) => why = e,
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "redis-server could not restart on port {}: {why}",
            self.port
        );
    }

    /// Run one command (panics on I/O errors).
    pub fn cmd(&self, args: &[&str]) -> Reply {
        command(self.port, args).unwrap_or_else(|e| panic!("redis {args:?}: {e}"))
    }

    /// Every key with all its values as (key, raw values), whatever the type.
    pub fn dump(&self) -> Vec<(String, Vec<Vec<u8>>)> {
        let mut out = Vec::new();
        let mut cursor = "0".to_string();
        loop {
            let r = self.cmd(&["SCAN", &cursor, "COUNT", "1000"]).items();
            cursor = r[0].text();
            for k in r[1].items() {
                let key = k.text();
                let values = self.values(&key);
                out.push((key, values));
            }
            if cursor == "0" {
                return out;
            }
        }
    }

    fn values(&self, key: &str) -> Vec<Vec<u8>> {
        let ty = self.cmd(&["TYPE", key]).text();
        let reply = match ty.as_str() {
            "string" => self.cmd(&["GET", key]),
            "hash" => self.cmd(&["HGETALL", key]),
            "set" => self.cmd(&["SMEMBERS", key]),
            "list" => self.cmd(&["LRANGE", key, "0", "-1"]),
            "zset" => self.cmd(&["ZRANGE", key, "0", "-1"]),
            _ => return vec![format!("<{ty}>").into_bytes()],
        };
        match reply {
            Reply::Bulk(Some(b)) => vec![b],
            Reply::Array(items) => items
                .into_iter()
                .filter_map(|i| match i {
                    Reply::Bulk(Some(b)) => Some(b),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// A local Redis Cluster of three masters, no replicas.
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Start it, or None (after a note) when redis-server is missing and CI unset.
    pub async fn start() -> Option<RedisCluster> {
        if !redis_available() {
            return None;
        }
        let mut nodes = Vec::new();
        for _ in 0..3 {
            // The bus listens on the port + 10000 (Redis's default): a bus port that is
            // taken makes the node exit, and start_with tries another pair.
            let args = [
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                "2000",
            ];
            nodes.push(RedisServer::start_with(&args).await);
        }
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let out = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("run redis-cli --cluster create");
        assert!(
            out.status.success(),
            "cluster create failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let cluster = RedisCluster { nodes };
        let ok = super::wait_until(Duration::from_secs(15), || {
            cluster.nodes.iter().all(|n| {
                command(n.port, &["CLUSTER", "INFO"])
                    .is_ok_and(|r| r.text().contains("cluster_state:ok"))
            })
        })
        .await;
        assert!(ok, "the local cluster never reached cluster_state:ok");
        Some(cluster)
    }

    /// `[session] store = "redis"` and a `[redis]` section in cluster mode: the first node
    /// as `url`, the others as `nodes`.
    pub fn sections(&self, key: &str) -> String {
        let urls = self.urls();
        let nodes = urls[1..]
            .iter()
            .map(|u| format!("\"{u}\""))
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            "[session]\nstore = \"redis\"\n\n[redis]\nurl = \"{}\"\nencryption_key = \"{key}\"\ncluster = true\nnodes = [{nodes}]",
            urls[0]
        )
    }

    /// Seed URLs of every node.
    pub fn urls(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| format!("redis://127.0.0.1:{}", n.port))
            .collect()
    }

    /// Every key of every node.
    pub fn dump(&self) -> Vec<(String, Vec<Vec<u8>>)> {
        self.nodes.iter().flat_map(|n| n.dump()).collect()
    }
}
