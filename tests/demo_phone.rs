//! `wxgate demo`'s phone and service lines, replayed as printed: bob's own
//! `getPhoneNumber` code binds him to account 10002, the printed attempt to use a code of
//! bob's for alice is refused (400 `invalid_code`, WeChat errcode 40029) and gives alice no
//! phone; carol's sealed data decrypts, her key checks valid, the relay serves a PNG and
//! sends a message but refuses a path off its list, the signing keys are published, and
//! mallory's risky login is refused.

mod common;

use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::gateway::{bin, capture};
use common::{client, random_hex, send};
use serde_json::Value;

struct Demo(Child);

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Start the demo and return its printed lines once the last instruction is out.
async fn demo_lines() -> (Demo, Vec<String>) {
    let mut child = Command::new(bin())
        .arg("demo")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn wxgate demo");
    let out: Arc<Mutex<Vec<u8>>> = capture(child.stdout.take().unwrap());
    let demo = Demo(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = String::from_utf8_lossy(&out.lock().unwrap()).into_owned();
        if text.contains("/metrics") {
            return (demo, text.lines().map(str::to_string).collect());
        }
        assert!(Instant::now() < deadline, "demo printed:\n{text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The `-d "..."` body of a printed curl line, unescaped, `$RANDOM` filled in.
fn body_of(line: &str) -> String {
    let start = line.find(" -d \"").expect("a -d body") + 5;
    let mut out = String::new();
    let mut chars = line[start..].chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.extend(chars.next()),
            '"' => break,
            c => out.push(c),
        }
    }
    out.replace("$RANDOM", &random_hex(3))
}

/// The `-d '...'` body of a printed curl line (single-quoted: taken as it is).
fn quoted_body_of(line: &str) -> String {
    let start = line.find(" -d '").expect("a -d '...' body") + 5;
    let end = line[start..].find('\'').expect("a closing quote");
    line[start..start + end].to_string()
}

fn url_of(line: &str) -> String {
    let start = line.find("http://").expect("a URL");
    line[start..]
        .split(|c: char| c.is_whitespace() || c == '"' || c == '\'' || c == ';')
        .next()
        .unwrap()
        .to_string()
}

/// The single printed line that contains every one of `needles`.
fn line_with<'a>(lines: &'a [String], needles: &[&str]) -> &'a str {
    let found: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("curl ") && needles.iter().all(|n| l.contains(n)))
        .collect();
    assert_eq!(found.len(), 1, "lines with {needles:?}: {found:#?}");
    found[0]
}

async fn post(line: &str, token: Option<&str>) -> common::Resp {
    let mut req = client().post(url_of(line)).body(body_of(line));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    send(req).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_phone_lines_bind_bob_and_refuse_his_code_for_alice() {
    let (_demo, lines) = demo_lines().await;
    let alice = post(line_with(&lines, &["TOKEN=$(", "/wx/login"]), None).await;
    let bob = post(line_with(&lines, &["BOB=$(", "/wx/login"]), None).await;
    let token = |r: &common::Resp| r.json()["token"].as_str().unwrap().to_string();
    let (alice, bob) = (token(&alice), token(&bob));

    let r = post(line_with(&lines, &["/wx/phone", "$BOB"]), Some(&bob)).await;
    assert_eq!(r.status, 200, "bob's phone: {}", r.text());
    assert_eq!(r.json()["account_id"], "10002");

    let r = post(line_with(&lines, &["/wx/phone", "$TOKEN"]), Some(&alice)).await;
    assert_eq!(r.status, 400, "alice with bob's code: {}", r.text());
    assert_eq!(r.json()["error"]["code"], "invalid_code");
    assert_eq!(r.json()["error"]["wechat_errcode"], 40029);
    let session = line_with(&lines, &["/wx/session", "$TOKEN"]);
    let r = send(client().get(url_of(session)).bearer_auth(&alice)).await;
    assert_eq!(r.json()["phone_number"], Value::Null, "{}", r.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_service_lines_work_as_printed() {
    let (_demo, lines) = demo_lines().await;
    let carol = post(line_with(&lines, &["CAROL=$(", "/wx/login"]), None).await;
    let carol = carol.json()["token"].as_str().unwrap().to_string();

    let decrypt = line_with(&lines, &["/wx/decrypt", "$CAROL"]);
    let req = client().post(url_of(decrypt)).bearer_auth(&carol);
    let r = send(req.body(quoted_body_of(decrypt))).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["data"]["stepInfoList"][0]["step"], 8042);

    let verify = line_with(&lines, &["/wx/session?verify=true", "$CAROL"]);
    let r = send(client().get(url_of(verify)).bearer_auth(&carol)).await;
    assert_eq!(r.json()["session_key_valid"], true, "{}", r.text());

    let qr = line_with(&lines, &["/wechat/api/wxa/getwxacodeunlimit"]);
    let resp = client()
        .post(url_of(qr))
        .body(quoted_body_of(qr))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "image/png");
    assert!(
        resp.bytes()
            .await
            .unwrap()
            .starts_with(b"\x89PNG\r\n\x1a\n")
    );

    let message = line_with(&lines, &["/wechat/api/cgi-bin/message/subscribe/send"]);
    let r = send(client().post(url_of(message)).body(quoted_body_of(message))).await;
    assert_eq!(r.json()["errcode"], 0, "{}", r.text());
    let setting = line_with(&lines, &["/wechat/api/cgi-bin/wxaapp/setting"]);
    let r = send(client().post(url_of(setting)).body(quoted_body_of(setting))).await;
    assert_eq!(r.status, 404, "{}", r.text());

    let jwks = line_with(&lines, &["/.well-known/jwks.json"]);
    let r = send(client().get(url_of(jwks))).await;
    assert_eq!(r.json()["keys"][0]["alg"], "ES256", "{}", r.text());

    let mallory = line_with(&lines, &["mallory-", "/wx/login"]);
    let r = post(mallory, None).await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "user_blocked");
}
