//! What the memory store keeps under `[session] data_dir` (verified phones in clear) is
//! readable by the gateway's own user only: the directory is created 0700 and the bindings
//! file 0600, and a directory or file left looser by an earlier version is tightened at
//! start-up, with the bindings kept.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use common::{FakeWechat, Gateway, GatewayBuilder, client, send};

/// The permission bits of `path`, in octal ("700").
fn mode(path: &Path) -> String {
    let meta = std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    format!("{:o}", meta.permissions().mode() & 0o777)
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn builder(wx: &FakeWechat, data: &Path) -> GatewayBuilder {
    GatewayBuilder::new(wx).section(&format!("[session]\ndata_dir = \"{}\"", data.display()))
}

async fn bind(wx: &FakeWechat, gw: &Gateway, openid: &str) {
    let code = format!("login-{}", common::random_hex(6));
    wx.add_code(&code, openid, None);
    let token = gw.token(&code).await;
    let phone = format!("p-{}", common::random_hex(4));
    wx.add_phone_code(&phone, "13800138000", "86");
    let r = gw.phone(&token, &phone).await;
    assert_eq!(r.status, 200, "{}", r.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_dir_is_created_0700_and_the_bindings_file_0600() {
    let wx = FakeWechat::start().await;
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("state").join("wxgate");
    let gw = builder(&wx, &data).start().await;
    bind(&wx, &gw, "o-modes").await;
    assert_eq!(mode(&data), "700", "data_dir");
    assert_eq!(mode(&data.join("bindings.redb")), "600", "bindings file");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loose_modes_of_an_earlier_run_are_tightened_at_start() {
    let wx = FakeWechat::start().await;
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let b = builder(&wx, &data);
    let mut gw = b.clone().start().await;
    bind(&wx, &gw, "o-kept").await;
    gw.signal("TERM");
    assert!(gw.wait_exit(Duration::from_secs(10)).await.is_some());
    let file = data.join("bindings.redb");
    chmod(&data, 0o755);
    chmod(&file, 0o644);

    let gw = b.start().await;
    assert_eq!(mode(&data), "700", "data_dir not tightened");
    assert_eq!(mode(&file), "600", "bindings file not tightened");
    let url = gw.admin_url(&format!("/bindings/{}/o-kept", wx.appid));
    let r = send(client().get(url)).await;
    assert_eq!(r.status, 200, "the binding was lost: {}", r.text());
}
