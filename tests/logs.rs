//! Request logs on stderr: one line per request carrying method, status and request id;
//! JSON lines with `run --log-format json` or `[log] format = "json"`.

mod common;

use std::time::Duration;

use common::{Echo, FakeWechat, Gateway, GatewayBuilder, client, send, wait_until};
use serde_json::Value;

/// Send `method path` with a request id and wait until a log line mentions it.
async fn logged_request(gw: &Gateway, method: &str, path: &str, id: &str) -> Vec<String> {
    let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    send(client().request(m, gw.url(path)).header("x-request-id", id)).await;
    assert!(
        wait_until(Duration::from_secs(3), || gw.stderr().contains(id)).await,
        "the request's log line never appeared"
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    gw.stderr()
        .lines()
        .filter(|l| l.contains(id))
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_line_per_request_with_method_status_and_id() {
    let (wx, echo) = (FakeWechat::start().await, Echo::start().await);
    let gw = GatewayBuilder::new(&wx)
        .rust_log("info")
        .route("/pub/", &echo.url, "public")
        .start()
        .await;
    for (method, path, status, id) in [
        ("GET", "/nowhere", "404", "log-test-404-aa11"),
        ("POST", "/pub/x", "200", "log-test-200-bb22"),
        ("DELETE", "/wx/login", "405", "log-test-405-cc33"),
    ] {
        let lines = logged_request(&gw, method, path, id).await;
        assert_eq!(
            lines.len(),
            1,
            "{method} {path}: expected one line with the id, got {lines:#?}"
        );
        let line = &lines[0];
        assert!(line.contains(method), "no method in {line}");
        assert!(line.contains(status), "no status in {line}");
    }
}

fn assert_json_lines(stderr: &str) {
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty(), "no log output");
    for l in lines {
        let v: Value =
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}"));
        assert!(v.is_object(), "not a JSON object: {l}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_format_json_flag_gives_json_lines() {
    let (wx, echo) = (FakeWechat::start().await, Echo::start().await);
    let gw = GatewayBuilder::new(&wx)
        .rust_log("debug")
        .arg("--log-format")
        .arg("json")
        .route("/pub/", &echo.url, "public")
        .start()
        .await;
    let lines = logged_request(&gw, "GET", "/pub/j", "json-log-test-dd44").await;
    assert!(
        !lines.is_empty(),
        "the request was not logged:\n{}",
        gw.stderr()
    );
    assert_json_lines(&gw.stderr());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_format_json_in_config_gives_json_lines() {
    let wx = FakeWechat::start().await;
    let gw = GatewayBuilder::new(&wx)
        .rust_log("info")
        .section("[log]\nformat = \"json\"")
        .start()
        .await;
    let lines = logged_request(&gw, "GET", "/nothing", "json-cfg-test-ee55").await;
    assert!(
        !lines.is_empty(),
        "the request was not logged:\n{}",
        gw.stderr()
    );
    assert_json_lines(&gw.stderr());
}
