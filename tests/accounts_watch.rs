//! The accounts watcher reacts to changes of the accounts file only: with the file left
//! alone the gateway does not keep re-reading it (its own reads must not trigger the
//! watcher again), a real change is still picked up once, and after that it is quiet
//! again. The test counts the gateway's opens of the file with its own inotify watch.

mod common;

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use common::{FakeWechat, Gateway, GatewayBuilder};
use notify::event::{AccessKind, EventKind};
use notify::{RecursiveMode, Watcher};

const QUIET: Duration = Duration::from_secs(2);

/// Opens of `file` seen during `window` (nobody else touches it meanwhile).
fn opens_during(file: &Path, window: Duration) -> usize {
    let (tx, rx) = mpsc::channel();
    let mut watcher = notify::recommended_watcher(move |e: notify::Result<notify::Event>| {
        if let Ok(e) = e {
            let _ = tx.send(e);
        }
    })
    .expect("inotify watcher");
    watcher
        .watch(file, RecursiveMode::NonRecursive)
        .expect("watch the accounts file");
    std::thread::sleep(window);
    drop(watcher);
    rx.try_iter()
        .filter(|e| matches!(e.kind, EventKind::Access(AccessKind::Open(_))))
        .count()
}

fn reloads(gw: &Gateway) -> usize {
    gw.logs().matches("accounts file reloaded").count()
}

async fn account_of(wx: &FakeWechat, gw: &Gateway) -> serde_json::Value {
    let code = format!("c-{}", common::random_hex(4));
    wx.add_code(&code, "o-watch", None);
    gw.login(&code).await.json()["account_id"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unchanged_accounts_file_is_not_read_again_and_a_change_is_picked_up() {
    let wx = FakeWechat::start().await;
    let gw = GatewayBuilder::new(&wx)
        .file("accounts.toml", "[openid]\n\"o-watch\" = \"10001\"\n")
        .section("[accounts]\nfile = \"accounts.toml\"")
        .start()
        .await;
    assert_eq!(account_of(&wx, &gw).await, "10001");
    let file: PathBuf = gw.dir().join("accounts.toml");
    let idle = tokio::task::spawn_blocking({
        let file = file.clone();
        move || opens_during(&file, QUIET)
    })
    .await
    .unwrap();
    assert!(
        idle <= 1,
        "the unchanged file was opened {idle} times in {QUIET:?}"
    );
    assert_eq!(reloads(&gw), 0, "{}", gw.logs());

    // a real change (written in place) is picked up, once
    std::fs::write(&file, "[openid]\n\"o-watch\" = \"20002\"\n").unwrap();
    let seen = common::wait_until_async(Duration::from_secs(5), || async {
        account_of(&wx, &gw).await == "20002"
    })
    .await;
    assert!(seen, "the change was not picked up:\n{}", gw.logs());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(reloads(&gw), 1, "{}", gw.logs());
    let after = tokio::task::spawn_blocking(move || opens_during(&file, QUIET))
        .await
        .unwrap();
    assert!(
        after <= 1,
        "after the change the file was opened {after} times"
    );
    assert_eq!(reloads(&gw), 1, "{}", gw.logs());
}
