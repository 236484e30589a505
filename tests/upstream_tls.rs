//! `https://` upstreams: the gateway verifies the upstream's certificate against the
//! route's `ca_file` (or the system roots), sends the caller's identity and never its
//! token, and keeps the TLS connection for the next request. A certificate that does not
//! verify (unknown issuer, another CA, another name) answers 502 `upstream_unavailable`
//! and logs why. `check-config` rejects a bad `ca_file` and one on an `http://` route.

mod common;
mod tls_pki;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use common::{FakeWechat, Gateway, GatewayBuilder, full};
use http::HeaderMap;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::PrivateKeyDer;
use tokio_rustls::rustls::pki_types::pem::PemObject;

/// An HTTPS upstream on 127.0.0.1:0 serving `leaf`: records each request's headers and
/// counts completed TLS handshakes.
struct TlsEcho {
    addr: SocketAddr,
    headers: Arc<Mutex<Vec<HeaderMap>>>,
    handshakes: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Drop for TlsEcho {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TlsEcho {
    async fn start(leaf: &tls_pki::Leaf) -> TlsEcho {
        let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
        let key = PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes()).expect("leaf key");
        let mut config = ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(vec![leaf.der.clone()], key)
            .expect("server config");
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (headers, handshakes) = (Arc::default(), Arc::new(AtomicUsize::new(0)));
        let task = tokio::spawn(serve(
            listener,
            acceptor,
            Arc::clone(&headers),
            Arc::clone(&handshakes),
        ));
        TlsEcho {
            addr,
            headers,
            handshakes,
            task,
        }
    }

    fn port(&self) -> u16 {
        self.addr.port()
    }

    fn requests(&self) -> Vec<HeaderMap> {
        self.headers.lock().unwrap().clone()
    }
}

async fn serve(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    headers: Arc<Mutex<Vec<HeaderMap>>>,
    handshakes: Arc<AtomicUsize>,
) {
    while let Ok((tcp, _)) = listener.accept().await {
        let (acceptor, headers, handshakes) =
            (acceptor.clone(), headers.clone(), handshakes.clone());
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            handshakes.fetch_add(1, Ordering::SeqCst);
            let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                headers.lock().unwrap().push(req.headers().clone());
                async move {
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(full("hello over tls")))
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tls), service)
                .await;
        });
    }
}

fn route(prefix: &str, port: u16, ca_file: Option<&str>) -> String {
    let ca = ca_file.map_or(String::new(), |f| format!("\nca_file = \"{f}\""));
    format!(
        "prefix = \"{prefix}\"\nupstream = \"https://localhost:{port}\"\nauth = \"required\"{ca}"
    )
}

/// `GET path` with the bearer token on `client` (one keep-alive connection to the gateway).
async fn get(client: &reqwest::Client, gw: &Gateway, path: &str, token: &str) -> (u16, String) {
    let r = client
        .get(gw.url(path))
        .bearer_auth(token)
        .send()
        .await
        .expect("request to the gateway");
    let status = r.status().as_u16();
    (status, r.text().await.expect("body"))
}

/// Sequential requests on one client connection (so one gateway worker and its pool).
const REQUESTS: usize = 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_with_ca_file_reaches_the_https_upstream_with_the_identity() {
    let ca = tls_pki::Ca::new("upstream CA");
    let upstream = TlsEcho::start(&ca.leaf(&["localhost", "127.0.0.1"])).await;
    let wx = FakeWechat::start().await;
    let gw = GatewayBuilder::new(&wx)
        .file("upstream-ca.pem", &ca.pem())
        .route_raw(&route("/secure/", upstream.port(), Some("upstream-ca.pem")))
        .start()
        .await;
    let token = gw.login_as(&wx, "o-tls-upstream").await;
    let client = common::client();
    for _ in 0..REQUESTS {
        let (status, body) = get(&client, &gw, "/secure/hello", &token).await;
        assert_eq!(status, 200, "{body}\n{}", gw.logs());
        assert_eq!(body, "hello over tls");
    }
    let requests = upstream.requests();
    assert_eq!(requests.len(), REQUESTS);
    for headers in &requests {
        assert_eq!(
            headers.get("x-wx-openid").and_then(|v| v.to_str().ok()),
            Some("o-tls-upstream"),
            "{headers:?}"
        );
        assert!(headers.get("authorization").is_none(), "{headers:?}");
        assert!(
            headers.values().all(|v| !v
                .as_bytes()
                .windows(token.len())
                .any(|w| w == token.as_bytes())),
            "the gateway token reached the upstream: {headers:?}"
        );
    }
    // A connection goes back to the pool when its response body ends, and a checkout
    // takes only one whose driver is ready again; on a loaded machine the next request
    // can come before that, so allow a few handshakes, never one per request.
    let handshakes = upstream.handshakes.load(Ordering::SeqCst);
    assert!(
        (1..=3).contains(&handshakes),
        "{REQUESTS} sequential requests made {handshakes} TLS handshakes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_certificate_that_does_not_verify_answers_502() {
    let (ca, other) = (
        tls_pki::Ca::new("upstream CA"),
        tls_pki::Ca::new("another CA"),
    );
    let good = TlsEcho::start(&ca.leaf(&["localhost", "127.0.0.1"])).await;
    let misnamed = TlsEcho::start(&ca.leaf(&["elsewhere.test"])).await;
    let wx = FakeWechat::start().await;
    let gw = GatewayBuilder::new(&wx)
        .file("upstream-ca.pem", &ca.pem())
        .file("other-ca.pem", &other.pem())
        .route_raw(&route("/system-roots/", good.port(), None))
        .route_raw(&route("/other-ca/", good.port(), Some("other-ca.pem")))
        .route_raw(&route(
            "/misnamed/",
            misnamed.port(),
            Some("upstream-ca.pem"),
        ))
        .start()
        .await;
    let token = gw.login_as(&wx, "o-tls-refused").await;
    let client = common::client();
    for prefix in ["/system-roots/", "/other-ca/", "/misnamed/"] {
        let (status, body) = get(&client, &gw, &format!("{prefix}x"), &token).await;
        assert_eq!(status, 502, "{prefix}: {body}");
        let json: serde_json::Value = serde_json::from_str(&body).expect("JSON error");
        assert_eq!(
            json["error"]["code"], "upstream_unavailable",
            "{prefix}: {body}"
        );
        let logged = common::wait_until(std::time::Duration::from_secs(3), || {
            gw.logs().lines().any(|l| {
                l.contains("upstream request failed")
                    && l.contains(&format!("route={prefix}"))
                    && l.contains("invalid peer certificate")
            })
        })
        .await;
        assert!(
            logged,
            "{prefix}: no warning naming the route and the TLS error:\n{}",
            gw.logs()
        );
    }
    assert!(good.requests().is_empty() && misnamed.requests().is_empty());
    assert!(!gw.logs().contains(&token), "the token was logged");
}

/// `check-config` on a config with one route `route_body` and the files `files`.
fn check_config(route_body: &str, files: &[(&str, &str)]) -> (bool, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, content) in files {
        std::fs::write(dir.path().join(name), content).expect("write file");
    }
    let config = dir.path().join("gw.toml");
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[admin]\nlisten = \"127.0.0.1:0\"\n\
         [session]\ndata_dir = \"data\"\n[[apps]]\nappid = \"wx1\"\nsecret = \"s\"\n\
         [[routes]]\nprefix = \"/ok/\"\nupstream = \"http://127.0.0.1:1\"\n\
         [[routes]]\n{route_body}\n"
    );
    std::fs::write(&config, text).expect("write config");
    let out =
        common::gateway::run_cli(&["check-config", "--config", config.to_str().unwrap()], &[]);
    (out.status.success(), common::gateway::output_text(&out))
}

/// What is wrong, the files written, and what the error must say.
type BadCa<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);

#[test]
fn check_config_reports_a_bad_ca_file_and_one_on_an_http_route() {
    let ca = tls_pki::Ca::new("config CA");
    let https = |file: &str| {
        format!("prefix = \"/s/\"\nupstream = \"https://localhost:8443\"\nca_file = \"{file}\"")
    };
    let (ok, text) = check_config(&https("ca.pem"), &[("ca.pem", &ca.pem())]);
    assert!(ok, "a good ca_file was refused: {text}");

    let broken_der =
        "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n";
    let bad: [BadCa; 4] = [
        ("missing", &[], "missing.pem"),
        (
            "no certificate",
            &[("none.pem", "just some text\n")],
            "no certificate",
        ),
        (
            "not PEM",
            &[("cut.pem", "-----BEGIN CERTIFICATE-----\nAAAA\n")],
            "cut.pem",
        ),
        ("not a certificate", &[("junk.pem", broken_der)], "junk.pem"),
    ];
    for (what, files, says) in bad {
        let name = files.first().map_or("missing.pem", |f| f.0);
        let (ok, text) = check_config(&https(name), files);
        assert!(!ok, "{what}: accepted: {text}");
        assert!(
            text.contains("routes[1].ca_file") && text.contains(says),
            "{what}: the error does not name routes[1].ca_file and why: {text}"
        );
    }

    let plain = "prefix = \"/p/\"\nupstream = \"http://127.0.0.1:8080\"\nca_file = \"ca.pem\"";
    let (ok, text) = check_config(plain, &[("ca.pem", &ca.pem())]);
    assert!(!ok, "ca_file on http:// was accepted: {text}");
    assert!(
        text.contains("routes[1].ca_file") && text.contains("https://"),
        "{text}"
    );
}
