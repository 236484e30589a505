//! `wxgate demo`: start it, read the curl lines it prints, replay them with reqwest (log in
//! with the printed code form, call the printed protected routes with the token) and see
//! the injected identity headers — and no forged one — in the echo upstream's answer.

mod common;

use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::gateway::{bin, capture};
use common::{client, random_hex, send};

struct Demo {
    child: Child,
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Demo {
    fn start() -> Demo {
        let mut child = Command::new(bin())
            .arg("demo")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn wxgate demo");
        let stdout = capture(child.stdout.take().unwrap());
        let stderr = capture(child.stderr.take().unwrap());
        Demo {
            child,
            stdout,
            stderr,
        }
    }

    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.stdout.lock().unwrap()).into_owned()
    }

    /// Wait until the printed curl lines include a login and a bearer call.
    async fn curl_lines(&mut self) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let lines: Vec<String> = self
                .stdout()
                .lines()
                .filter(|l| l.contains("curl "))
                .map(str::to_string)
                .collect();
            let login = lines.iter().any(|l| l.contains("/login"));
            if login
                && lines
                    .iter()
                    .any(|l| l.contains("Bearer") && !l.contains("/login"))
            {
                tokio::time::sleep(Duration::from_millis(200)).await;
                return self
                    .stdout()
                    .lines()
                    .filter(|l| l.contains("curl "))
                    .map(str::to_string)
                    .collect();
            }
            let exited = self.child.try_wait().unwrap();
            if exited.is_some() || Instant::now() > deadline {
                let err = String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned();
                panic!(
                    "demo printed no usable curl lines ({exited:?}):\n{}\n{err}",
                    self.stdout()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The first `http://` URL of a shell line, without quotes.
fn url_in(line: &str) -> String {
    let start = line.find("http://").expect("a URL in the curl line");
    line[start..]
        .split(|c: char| c.is_whitespace() || c == '\'' || c == '"' || c == ')')
        .next()
        .unwrap()
        .to_string()
}

/// The values of every `flag` (e.g. `-H`, `-d`) in a shell line, quotes removed.
fn args_of(line: &str, flag: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = line;
    while let Some(i) = rest.find(&format!(" {flag} ")) {
        rest = &rest[i + flag.len() + 2..];
        let (value, tail) = shell_word(rest);
        out.push(value);
        rest = tail;
    }
    out
}

/// One shell word at the start of `s` ('single', "double" with \-escapes, or bare).
fn shell_word(s: &str) -> (String, &str) {
    let mut chars = s.char_indices();
    match chars.next() {
        Some((_, q @ ('\'' | '"'))) => {
            let mut out = String::new();
            let mut escaped = false;
            for (i, c) in chars {
                if escaped {
                    out.push(c);
                    escaped = false;
                } else if c == '\\' && q == '"' {
                    escaped = true;
                } else if c == q {
                    return (out, &s[i + 1..]);
                } else {
                    out.push(c);
                }
            }
            (out, "")
        }
        _ => {
            let end = s.find(char::is_whitespace).unwrap_or(s.len());
            (s[..end].to_string(), &s[end..])
        }
    }
}

/// Replace `$RANDOM` and the token variable `$var` / `${var}`.
fn expand(s: &str, var: &str, token: &str) -> String {
    s.replace("$RANDOM", &random_hex(3))
        .replace(&format!("${{{var}}}"), token)
        .replace(&format!("${var}"), token)
}

/// Whether `line` uses `$var` (not a longer name that starts with it).
fn uses_var(line: &str, var: &str) -> bool {
    let pat = format!("${var}");
    line.match_indices(&pat).any(|(i, _)| {
        let next = line[i + pat.len()..].chars().next();
        !next.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
    })
}

/// The scheme and authority of a URL (`http://host:port`).
fn origin(url: &str) -> &str {
    let after = url.find("://").map(|i| i + 3).unwrap_or(0);
    let end = url[after..]
        .find('/')
        .map(|i| after + i)
        .unwrap_or(url.len());
    &url[..end]
}

/// Replay the printed login; returns (the variable it sets, the token, the gateway origin).
async fn replay_login(lines: &[String]) -> (String, String, String) {
    let login = lines.iter().find(|l| l.contains("/login")).unwrap();
    let var = login
        .split_once("=$(")
        .map(|(v, _)| v.trim().to_string())
        .filter(|v| v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or_else(|| "TOKEN".into());
    let body = args_of(login, "-d")
        .pop()
        .unwrap_or_else(|| panic!("no -d in {login}"));
    let url = url_in(login);
    let req = client()
        .post(&url)
        .header("content-type", "application/json");
    let r = send(req.body(expand(&body, &var, ""))).await;
    assert_eq!(r.status, 200, "demo login: {}", r.text());
    let token = r.json()["token"].as_str().expect("token").to_string();
    (var, token, origin(&url).to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_curl_lines_work() {
    let mut demo = Demo::start();
    let lines = demo.curl_lines().await;
    let (var, token, gateway) = replay_login(&lines).await;
    let calls: Vec<&String> = lines
        .iter()
        .filter(|l| uses_var(l, &var) && !l.contains("$(") && !l.contains(" -X "))
        .filter(|l| origin(&url_in(l)) == gateway && !url_in(l).contains("/wx/"))
        .collect();
    assert!(
        !calls.is_empty(),
        "no protected call with ${var} among {lines:#?}"
    );
    for line in calls {
        let mut req = client().get(url_in(line));
        for h in args_of(line, "-H") {
            let (k, v) = h.split_once(':').expect("header form");
            req = req.header(k.trim(), expand(v.trim(), &var, &token));
        }
        let r = send(req).await;
        assert_eq!(r.status, 200, "{line}: {}", r.text());
        let echoed = r.text().to_ascii_lowercase();
        assert!(
            echoed.contains("x-wx-openid"),
            "no identity header in the echo: {echoed}"
        );
        assert!(
            !echoed.contains("forged"),
            "a forged header reached the echo: {echoed}"
        );
    }
}
