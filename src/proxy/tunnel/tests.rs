use super::*;

fn request(version: Version, headers: &[(&str, &str)]) -> Request<()> {
    let mut builder = Request::builder().uri("/ws").version(version);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(()).expect("request")
}

#[test]
fn a_websocket_upgrade_is_recognised_in_any_case_and_list_form() {
    let cases: [&[(&str, &str)]; 3] = [
        &[("connection", "Upgrade"), ("upgrade", "websocket")],
        &[
            ("connection", "keep-alive, UPGRADE"),
            ("upgrade", "WebSocket"),
        ],
        &[
            ("connection", "keep-alive"),
            ("connection", "upgrade"),
            ("upgrade", "foo/1, websocket"),
        ],
    ];
    for headers in cases {
        let req = request(Version::HTTP_11, headers);
        assert!(websocket_protocol(&req).is_some(), "{headers:?}");
    }
}

#[test]
fn other_upgrades_and_other_versions_are_not_tunnelled() {
    let cases: [(Version, &[(&str, &str)]); 5] = [
        (
            Version::HTTP_11,
            &[
                ("connection", "Upgrade, HTTP2-Settings"),
                ("upgrade", "h2c"),
            ],
        ),
        (Version::HTTP_11, &[("upgrade", "websocket")]),
        (Version::HTTP_11, &[("connection", "upgrade")]),
        (
            Version::HTTP_10,
            &[("connection", "upgrade"), ("upgrade", "websocket")],
        ),
        (
            Version::HTTP_2,
            &[("connection", "upgrade"), ("upgrade", "websocket")],
        ),
    ];
    for (version, headers) in cases {
        let req = request(version, headers);
        assert!(
            websocket_protocol(&req).is_none(),
            "{version:?} {headers:?}"
        );
    }
}

#[test]
fn restoring_puts_back_exactly_the_upgrade_pair() {
    let mut headers = HeaderMap::new();
    restore_upgrade_headers(&mut headers, HeaderValue::from_static("websocket"));
    assert_eq!(
        headers.get(header::CONNECTION).map(|v| v.as_bytes()),
        Some(&b"upgrade"[..])
    );
    assert_eq!(
        headers.get(header::UPGRADE).map(|v| v.as_bytes()),
        Some(&b"websocket"[..])
    );
    assert_eq!(headers.len(), 2);
}

#[tokio::test]
async fn drain_waits_for_the_last_tunnel() {
    let tunnels = Arc::new(Tunnels::new(Arc::new(Metrics::new())));
    let (a, b) = (tunnels.open(), tunnels.open());
    assert_eq!(tunnels.count(), 2);
    let waiter = tokio::spawn({
        let tunnels = tunnels.clone();
        async move { tunnels.all_closed().await }
    });
    drop(a);
    tokio::task::yield_now().await;
    assert!(!waiter.is_finished(), "drain ended with a tunnel open");
    drop(b);
    tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .expect("drain ends once the last tunnel closes")
        .expect("join");
    assert_eq!(tunnels.count(), 0);
}
