//! `wxgate demo`: the gateway, a WeChat simulator and an echo upstream in one process.
//!
//! Everything binds loopback and lives in memory; the output is a set of `curl` lines that
//! work when pasted. This module is reachable only from the `demo` command.

mod echo;
mod services;
mod simulator;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

use crate::accounts::{AccountResolver, AccountsFile};
use crate::config::Config;
use crate::http::Body;
use crate::metrics::Metrics;
use crate::server::{Server, shutdown_signal};
use crate::state::{AppState, Backends};

use self::simulator::Simulator;

const APPID: &str = "wxd000000000000001";

/// Run the demo until SIGINT/SIGTERM.
pub async fn run(listen: SocketAddr, admin: SocketAddr) -> Result<(), String> {
    let mut secret = [0u8; 16];
    getrandom::fill(&mut secret).map_err(|e| e.to_string())?;
    let secret: String = hex::encode(secret);
    let simulator = Arc::new(Simulator::new(APPID, &secret));
    let wechat = spawn_http(simulator.clone(), |sim, req| sim.handle(req)).await?;
    let upstream = spawn_http(Arc::new(()), |_, req| echo::handle(req)).await?;

    let signing_key = ephemeral_signing_key()?;
    let config = Config::from_toml(
        &demo_config(&secret, &signing_key, wechat, upstream),
        Path::new("."),
    )
    .map_err(|e| format!("demo config: {e}"))?;
    let mut accounts = AccountsFile::default();
    accounts
        .openid
        .insert(simulator.openid_for("alice"), Arc::from("10001"));
    accounts
        .phone
        .insert("+8613800138000".into(), Arc::from("10002"));
    let resolver = Arc::new(AccountResolver::fixed(accounts));
    let metrics = Arc::new(Metrics::new());
    let state = Arc::new(AppState::assemble(
        config,
        resolver,
        Backends::in_memory(),
        metrics,
    ));
    let server = Server::bind_to(state, listen, admin).await?;
    let (Some(gw), Some(adm)) = (server.public_addr(), server.admin_addr()) else {
        return Err("cannot read the demo's listening addresses".into());
    };
    print_instructions(gw, adm, &simulator);
    server.serve(shutdown_signal()).await;
    Ok(())
}

/// A P-256 key for this run's signed identity, as PKCS#8 PEM (never written anywhere).
fn ephemeral_signing_key() -> Result<String, String> {
    use base64::Engine;
    let der = ring::signature::EcdsaKeyPair::generate_pkcs8(
        &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        &ring::rand::SystemRandom::new(),
    )
    .map_err(|_| "cannot generate the demo's signing key".to_string())?;
    let body = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
    Ok(format!(
        "-----BEGIN PRIVATE KEY-----\n{body}\n-----END PRIVATE KEY-----"
    ))
}

fn demo_config(
    secret: &str,
    signing_key: &str,
    wechat: SocketAddr,
    upstream: SocketAddr,
) -> String {
    format!(
        r#"
[wechat]
api_base = "http://{wechat}"
[[apps]]
appid = "{APPID}"
secret = "{secret}"
[server]
drain_timeout = "2s"
[relay]
enabled = true
[risk]
enabled = true
[identity_token]
enabled = true
signing_key = '''{signing_key}'''
[[routes]]
prefix = "/api/"
upstream = "http://{upstream}"
auth = "required"
[[routes]]
prefix = "/public/"
upstream = "http://{upstream}"
auth = "public"
"#
    )
}

/// Serve `handler` on a free loopback port in the background.
async fn spawn_http<T, F, Fut>(ctx: Arc<T>, handler: F) -> Result<SocketAddr, String>
where
    T: Send + Sync + 'static,
    F: Fn(Arc<T>, Request<Incoming>) -> Fut + Send + Sync + Copy + 'static,
    Fut: Future<Output = Result<Response<Body>, Infallible>> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let ctx = ctx.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| handler(ctx.clone(), req));
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(addr)
}

fn print_instructions(gw: SocketAddr, admin: SocketAddr, simulator: &Simulator) {
    let base = format!("http://{gw}");
    let (sealed, iv) = simulator.sealed_for_carol();
    let carol = simulator.openid_for("carol");
    let text = format!(
        r#"wxgate demo is running: gateway {base}, admin http://{admin}
(in memory, with a built-in WeChat simulator and an echo upstream; Ctrl-C stops it)

Paste these into a shell:

# 1. Log in as "alice" with a one-time wx.login() code (alice-<anything> works once; bob-<anything> is another user)
TOKEN=$(curl -s -X POST {base}/wx/login -H 'Content-Type: application/json' -d "{{\"code\":\"alice-$RANDOM$RANDOM\"}}" | sed -E 's/.*"token":"([^"]+)".*/\1/'); echo "$TOKEN"

# 2. Call a protected route: the echo upstream shows the X-WX-* identity headers it received
curl -s {base}/api/hello -H "Authorization: Bearer $TOKEN"

# 3. A forged identity header never reaches the upstream
curl -s {base}/api/hello -H "Authorization: Bearer $TOKEN" -H 'X-WX-OPENID: forged'

# 4. Log in as "bob" (no account yet), verify his phone with a getPhoneNumber code made by his button
#    (phone-<number>-bob-<anything>): he is bound to account 10002
BOB=$(curl -s -X POST {base}/wx/login -d "{{\"code\":\"bob-$RANDOM$RANDOM\"}}" | sed -E 's/.*"token":"([^"]+)".*/\1/')
curl -s -X POST {base}/wx/phone -H "Authorization: Bearer $BOB" -d "{{\"code\":\"phone-13800138000-bob-$RANDOM$RANDOM\"}}"
curl -s {base}/api/hello -H "Authorization: Bearer $BOB"
#    A code made by bob's button is refused for alice (the gateway sends her openid; WeChat checks it): 400 invalid_code
curl -s -X POST {base}/wx/phone -H "Authorization: Bearer $TOKEN" -d "{{\"code\":\"phone-13800138000-bob-$RANDOM$RANDOM\"}}"

# 5. Without a token the gateway answers 401
curl -s -i {base}/api/hello

# 6. The session, then log out (the token is dead at once)
curl -s {base}/wx/session -H "Authorization: Bearer $TOKEN"
curl -s -i -X POST {base}/wx/logout -H "Authorization: Bearer $TOKEN"

# 7. Encrypted data (as wx.getWeRunData hands it over) opened with carol's session_key, which only the gateway holds
CAROL=$(curl -s -X POST {base}/wx/login -d "{{\"code\":\"carol-$RANDOM$RANDOM\"}}" | sed -E 's/.*"token":"([^"]+)".*/\1/')
curl -s -X POST {base}/wx/decrypt -H "Authorization: Bearer $CAROL" -d '{{"encryptedData":"{sealed}","iv":"{iv}"}}'

# 8. Is carol's session_key still WeChat's current one? (checksession; false once she logged in again elsewhere)
curl -s "{base}/wx/session?verify=true" -H "Authorization: Bearer $CAROL"

# 9. Legacy code calls WeChat's open API through the admin listener; the gateway adds the access_token
curl -s -o wxgate-qr.png -w '%{{http_code}} %{{content_type}} %{{size_download}} bytes\n' -X POST "http://{admin}/wechat/api/wxa/getwxacodeunlimit" -d '{{"scene":"order=42"}}'
curl -s -X POST "http://{admin}/wechat/api/cgi-bin/message/subscribe/send" -d '{{"touser":"{carol}","template_id":"TEMPLATE","data":{{}}}}'
#    A path off the [relay] paths allow-list is 404, so the relay cannot change the app's settings
curl -s -X POST "http://{admin}/wechat/api/cgi-bin/wxaapp/setting" -d '{{}}'

# 10. The login risk check: WeChat rates "mallory" rank 4, so she gets 403 user_blocked and no session
#     (everyone else is rank 0; the echo in step 2 shows X-WX-RISK-RANK: 0)
curl -s -X POST {base}/wx/login -d "{{\"code\":\"mallory-$RANDOM$RANDOM\"}}"

# 11. The echo in step 2 also got X-WX-JWT-ASSERTION: an ES256 JWT the upstream can verify against these public keys
#     (see examples/verify-upstream/ for a few lines of Python that do)
curl -s http://{admin}/.well-known/jwks.json

# 12. Metrics, and bob's durable binding on the admin listener
curl -s http://{admin}/bindings/{APPID}/$(curl -s {base}/wx/session -H "Authorization: Bearer $BOB" | sed -E 's/.*"openid":"([^"]+)".*/\1/')
curl -s http://{admin}/metrics
"#
    );
    for line in text.lines() {
        if line.starts_with("curl ") {
            println!("{line}; echo");
        } else {
            println!("{line}");
        }
    }
}
