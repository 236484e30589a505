//! TLS termination on the public listener (`[server] tls`): the gateway serves HTTPS with
//! the configured certificate, offers HTTP/2 and HTTP/1.1 by ALPN, and tells the upstream
//! `X-Forwarded-Proto: https`. A plain-text client on the TLS port gets no answer. The
//! certificate and key are re-read on SIGHUP and when the files change (replaced by
//! rename, or the Kubernetes `..data` symlink swap): new handshakes get the new
//! certificate, established connections keep working, and a pair that fails to load keeps
//! the previous one and logs which file and why.

mod common;
mod tls_pki;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::raw;
use common::{Echo, FakeWechat, Gateway, GatewayBuilder};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

fn self_signed() -> (String, String, CertificateDer<'static>) {
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("rcgen");
    let der = certified.cert.der().clone();
    (
        certified.cert.pem(),
        certified.signing_key.serialize_pem(),
        der,
    )
}

fn connector(cert: CertificateDer<'static>, alpn: &[&[u8]]) -> TlsConnector {
    let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
    let mut roots = RootCertStore::empty();
    roots.add(cert).expect("add root");
    let mut config = ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    TlsConnector::from(Arc::new(config))
}

/// A gateway terminating TLS with a fresh self-signed certificate, a public route to an echo.
async fn tls_gateway() -> (FakeWechat, Echo, Gateway, CertificateDer<'static>) {
    let (wx, echo) = (FakeWechat::start().await, Echo::start().await);
    let (cert_pem, key_pem, der) = self_signed();
    let gw = GatewayBuilder::new(&wx)
        .file("cert.pem", &cert_pem)
        .file("key.pem", &key_pem)
        .server("tls", "{ cert = \"cert.pem\", key = \"key.pem\" }")
        .route("/pub/", &echo.url, "public")
        .start()
        .await;
    (wx, echo, gw, der)
}

async fn handshake(
    gw: &Gateway,
    der: CertificateDer<'static>,
    alpn: &[&[u8]],
) -> TlsStream<TcpStream> {
    let tcp = TcpStream::connect(gw.addr).await.expect("connect");
    let name = ServerName::try_from("localhost").expect("server name");
    connector(der, alpn)
        .connect(name, tcp)
        .await
        .expect("TLS handshake")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_is_terminated_and_the_upstream_sees_https() {
    let (_wx, echo, gw, der) = tls_gateway().await;
    let mut tls = handshake(&gw, der, &[b"http/1.1"]).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let head = "GET /pub/secure?x=1 HTTP/1.1\r\nHost: localhost\r\nX-Forwarded-Proto: http\r\nConnection: close\r\n\r\n";
    tls.write_all(head.as_bytes()).await.expect("write");
    let resp = raw::read_response(&mut tls, Duration::from_secs(5))
        .await
        .expect("response over TLS");
    assert_eq!(resp.status, 200, "{}", resp.text());
    let rec = echo.last();
    assert_eq!(
        rec.header("x-forwarded-proto"),
        Some("https"),
        "{}",
        rec.dump()
    );
    assert_eq!(rec.uri, "/pub/secure?x=1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alpn_offers_http2_and_plain_text_gets_no_http_answer() {
    let (_wx, echo, gw, der) = tls_gateway().await;
    let tls = handshake(&gw, der, &[b"h2", b"http/1.1"]).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));

    let mut plain = TcpStream::connect(gw.addr).await.expect("connect");
    plain
        .write_all(b"GET /pub/x HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .expect("write");
    let answer = raw::read_response(&mut plain, Duration::from_secs(2)).await;
    assert!(
        answer.is_none_or(|r| r.status != 200),
        "plain HTTP was served on the TLS port"
    );
    assert_eq!(echo.count(), 0, "nothing reached the upstream");
}

#[test]
fn a_missing_certificate_is_a_clear_startup_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("gw.toml");
    std::fs::write(
        &config,
        "[server]\nlisten = \"127.0.0.1:0\"\ntls = { cert = \"nope.pem\", key = \"nope.key\" }\n\
         [admin]\nlisten = \"127.0.0.1:0\"\n[session]\ndata_dir = \"data\"\n\
         [[apps]]\nappid = \"wx1\"\nsecret = \"s\"\n",
    )
    .expect("write config");
    let out = common::gateway::run_cli(
        &["run", "--config", config.to_str().unwrap_or_default()],
        &[],
    );
    assert!(!out.status.success(), "started without a certificate");
    let text = common::gateway::output_text(&out);
    assert!(
        text.contains("server.tls.cert") && text.contains("nope.pem"),
        "{text}"
    );
}

// ---- certificate reload ----

const RELOADED: &str = "TLS certificate reloaded";
const NOT_RELOADED: &str = "TLS certificate not reloaded; keeping the previous one";

/// Write `content` to `path` the way editors and tools replace files: a temp file, renamed.
fn replace(path: &Path, content: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, content).expect("write temp file");
    std::fs::rename(&tmp, path).expect("rename into place");
}

/// A gateway serving `leaf` from `cert`/`key` (absolute paths the test keeps writing to).
async fn reloading_gateway(cert: &Path, key: &Path) -> (FakeWechat, Echo, Gateway) {
    let (wx, echo) = (FakeWechat::start().await, Echo::start().await);
    let tls = format!(
        "{{ cert = \"{}\", key = \"{}\" }}",
        cert.display(),
        key.display()
    );
    let gw = GatewayBuilder::new(&wx)
        .server("tls", &tls)
        .route("/pub/", &echo.url, "public")
        .start()
        .await;
    (wx, echo, gw)
}

/// The certificate a new handshake is offered (the client trusts `ca`).
async fn served_cert(gw: &Gateway, ca: &tls_pki::Ca) -> CertificateDer<'static> {
    let tls = handshake_with(gw, ca).await;
    tls.get_ref()
        .1
        .peer_certificates()
        .expect("peer certificates")[0]
        .clone()
}

async fn handshake_with(gw: &Gateway, ca: &tls_pki::Ca) -> TlsStream<TcpStream> {
    let tcp = TcpStream::connect(gw.addr).await.expect("connect");
    let name = ServerName::try_from("localhost").expect("server name");
    TlsConnector::from(tls_pki::client_config(&[ca.der()], &[b"http/1.1"]))
        .connect(name, tcp)
        .await
        .expect("TLS handshake")
}

/// Poll new handshakes until one is offered `want` (bounded).
async fn cert_becomes(gw: &Gateway, ca: &tls_pki::Ca, want: &CertificateDer<'static>) -> bool {
    common::wait_until_async(Duration::from_secs(5), || async {
        served_cert(gw, ca).await == *want
    })
    .await
}

/// One keep-alive request on an established TLS connection; its status.
async fn get_on(tls: &mut TlsStream<TcpStream>) -> u16 {
    let head = "GET /pub/again HTTP/1.1\r\nHost: localhost\r\n\r\n";
    tls.write_all(head.as_bytes()).await.expect("write");
    raw::read_response(tls, Duration::from_secs(5))
        .await
        .expect("response over TLS")
        .status
}

fn lines_with(gw: &Gateway, message: &str) -> Vec<String> {
    gw.logs()
        .lines()
        .filter(|l| l.contains(message))
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_pair_and_established_connections_keep_working() {
    // The configured files are symlinks into a directory the gateway does not watch, so
    // writing there is seen only on SIGHUP.
    let ca = tls_pki::Ca::new("reload CA");
    let (a, b) = (ca.leaf(&["localhost"]), ca.leaf(&["localhost"]));
    let root = tempfile::tempdir().expect("tempdir");
    let (live, store) = (root.path().join("live"), root.path().join("store"));
    std::fs::create_dir_all(&live).unwrap();
    std::fs::create_dir_all(&store).unwrap();
    std::fs::write(store.join("cert.pem"), &a.cert_pem).unwrap();
    std::fs::write(store.join("key.pem"), &a.key_pem).unwrap();
    std::os::unix::fs::symlink(store.join("cert.pem"), live.join("cert.pem")).unwrap();
    std::os::unix::fs::symlink(store.join("key.pem"), live.join("key.pem")).unwrap();
    let (_wx, _echo, gw) = reloading_gateway(&live.join("cert.pem"), &live.join("key.pem")).await;

    let mut established = handshake_with(&gw, &ca).await;
    assert_eq!(get_on(&mut established).await, 200);
    assert_eq!(served_cert(&gw, &ca).await, a.der);

    replace(&store.join("key.pem"), &b.key_pem);
    replace(&store.join("cert.pem"), &b.cert_pem);
    gw.signal("HUP");
    assert!(
        cert_becomes(&gw, &ca, &b.der).await,
        "new handshakes still get the old certificate:\n{}",
        gw.logs()
    );
    // Log lines are flushed in batches: wait for the reload's line, not just its effect.
    let logged = common::wait_until(Duration::from_secs(3), || {
        !lines_with(&gw, RELOADED).is_empty()
    })
    .await;
    assert!(logged, "no reload line:\n{}", gw.logs());
    let reloads = lines_with(&gw, RELOADED);
    assert_eq!(reloads.len(), 1, "{}", gw.logs());
    assert!(
        reloads[0].contains(" INFO ") && reloads[0].contains("cause=Signal"),
        "{}",
        reloads[0]
    );
    let before = established.get_ref().1.peer_certificates().unwrap()[0].clone();
    assert_eq!(
        before, a.der,
        "the established connection changed certificate"
    );
    assert_eq!(
        get_on(&mut established).await,
        200,
        "the connection made before the reload stopped working"
    );

    // A second SIGHUP with nothing changed reloads nothing.
    gw.signal("HUP");
    let unchanged = common::wait_until(Duration::from_secs(3), || {
        !lines_with(&gw, "TLS certificate and key unchanged").is_empty()
    })
    .await;
    assert!(unchanged, "{}", gw.logs());
    assert_eq!(lines_with(&gw, RELOADED).len(), 1, "{}", gw.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaced_files_are_picked_up_without_a_signal() {
    let ca = tls_pki::Ca::new("rename CA");
    let (a, b) = (ca.leaf(&["localhost"]), ca.leaf(&["localhost"]));
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, &a.cert_pem).unwrap();
    std::fs::write(&key, &a.key_pem).unwrap();
    let (_wx, _echo, gw) = reloading_gateway(&cert, &key).await;
    assert_eq!(served_cert(&gw, &ca).await, a.der);

    replace(&key, &b.key_pem);
    replace(&cert, &b.cert_pem);
    assert!(
        cert_becomes(&gw, &ca, &b.der).await,
        "the replaced pair was not picked up:\n{}",
        gw.logs()
    );
    let logged = common::wait_until(Duration::from_secs(3), || {
        !lines_with(&gw, RELOADED).is_empty()
    })
    .await;
    assert!(logged, "no reload line:\n{}", gw.logs());
    assert!(
        lines_with(&gw, RELOADED)
            .iter()
            .all(|l| l.contains("cause=Changed")),
        "{}",
        gw.logs()
    );
}

/// Kubernetes' atomic writer: `cert.pem -> ..data/cert.pem`, `..data -> ..<timestamp>`,
/// and an update makes a new timestamped directory and renames a new `..data` link over
/// the old one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kubernetes_secret_update_is_picked_up() {
    use std::os::unix::fs::symlink;
    let ca = tls_pki::Ca::new("secret CA");
    let (a, b) = (ca.leaf(&["localhost"]), ca.leaf(&["localhost"]));
    let dir = tempfile::tempdir().expect("tempdir");
    let mount = dir.path();
    let version = |name: &str, leaf: &tls_pki::Leaf| {
        std::fs::create_dir(mount.join(name)).unwrap();
        std::fs::write(mount.join(name).join("cert.pem"), &leaf.cert_pem).unwrap();
        std::fs::write(mount.join(name).join("key.pem"), &leaf.key_pem).unwrap();
    };
    version("..2026_01_01_00_00_00.1", &a);
    symlink("..2026_01_01_00_00_00.1", mount.join("..data")).unwrap();
    symlink("..data/cert.pem", mount.join("cert.pem")).unwrap();
    symlink("..data/key.pem", mount.join("key.pem")).unwrap();
    let (_wx, _echo, gw) = reloading_gateway(&mount.join("cert.pem"), &mount.join("key.pem")).await;
    assert_eq!(served_cert(&gw, &ca).await, a.der);

    version("..2026_01_02_00_00_00.2", &b);
    symlink("..2026_01_02_00_00_00.2", mount.join("..data_tmp")).unwrap();
    std::fs::rename(mount.join("..data_tmp"), mount.join("..data")).unwrap();
    std::fs::remove_dir_all(mount.join("..2026_01_01_00_00_00.1")).unwrap();
    assert!(
        cert_becomes(&gw, &ca, &b.der).await,
        "the swapped Secret was not picked up:\n{}",
        gw.logs()
    );
}

/// A way to break the served pair's files.
type Breaker<'a> = Box<dyn Fn() + 'a>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pair_that_fails_to_load_keeps_the_previous_one_and_says_why() {
    let ca = tls_pki::Ca::new("bad pair CA");
    let (a, b, c) = (
        ca.leaf(&["localhost"]),
        ca.leaf(&["localhost"]),
        ca.leaf(&["localhost"]),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, &a.cert_pem).unwrap();
    std::fs::write(&key, &a.key_pem).unwrap();
    let (_wx, _echo, gw) = reloading_gateway(&cert, &key).await;

    let garbage = "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n";
    let cases: [(&str, Breaker, &str); 3] = [
        (
            "a garbage key",
            Box::new(|| replace(&key, garbage)),
            "server.tls.key",
        ),
        (
            "a key of another certificate",
            Box::new(|| replace(&key, &b.key_pem)),
            "does not belong to the certificate",
        ),
        (
            "a missing certificate",
            Box::new(|| std::fs::remove_file(&cert).unwrap()),
            "server.tls.cert",
        ),
    ];
    for (n, (what, break_it, why)) in cases.iter().enumerate() {
        break_it();
        let logged = common::wait_until(Duration::from_secs(5), || {
            lines_with(&gw, NOT_RELOADED).len() > n
        })
        .await;
        assert!(logged, "{what}: no warning:\n{}", gw.logs());
        let line = &lines_with(&gw, NOT_RELOADED)[n];
        assert!(line.contains(" WARN "), "{what}: {line}");
        assert!(
            line.contains(why),
            "{what}: the warning does not say why: {line}"
        );
        assert_eq!(
            served_cert(&gw, &ca).await,
            a.der,
            "{what}: the previous certificate is no longer served"
        );
    }
    let logs = gw.logs();
    for key_pem in [&a.key_pem, &b.key_pem] {
        let body = key_pem.lines().nth(1).expect("a base64 line");
        assert!(!logs.contains(body), "key material in the logs:\n{logs}");
    }
    assert!(lines_with(&gw, RELOADED).is_empty(), "{logs}");

    // A good pair after the bad ones is served.
    replace(&key, &c.key_pem);
    replace(&cert, &c.cert_pem);
    assert!(
        cert_becomes(&gw, &ca, &c.der).await,
        "a good pair after bad ones was not picked up:\n{}",
        gw.logs()
    );
}
