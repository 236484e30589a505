//! TLS termination on the public listener (`[server] tls`): the gateway serves HTTPS with
//! the configured certificate, offers HTTP/2 and HTTP/1.1 by ALPN, and tells the upstream
//! `X-Forwarded-Proto: https`. A plain-text client on the TLS port gets no answer.

mod common;

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
