//! The signed identity (`[identity_token]`, CONTRACT section 11), checked by an independent
//! JWT implementation (`jsonwebtoken`, RustCrypto backend) against the JWKS the admin
//! listener serves: the signature, `aud` per route, `iss`, `exp` = `iat` + ttl, the claims
//! of a mapped and an unmapped user, no assertion on public routes, a forged inbound one
//! stripped, the cached assertion renewed after half its lifetime, `kid` = the RFC 7638
//! thumbprint (the same on every gateway with the key), rotation through
//! `previous_keys_files`, and key errors at start-up that never show the key.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::gateway::{output_text, run_cli};
use common::{Echo, FakeWechat, Gateway, GatewayBuilder, client, client_from, raw, send};
use jsonwebtoken::jwk::{Jwk, JwkSet, ThumbprintHash};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use serde_json::Value;

const HEADER: &str = "x-wx-jwt-assertion";

/// A fresh P-256 key: (PKCS#8 private PEM, SPKI public PEM).
fn p256_key() -> (String, String) {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    (key.serialize_pem(), key.public_key_pem())
}

fn builder(wx: &FakeWechat, echo: &Echo, pem: &str, extra: &str) -> GatewayBuilder {
    GatewayBuilder::new(wx)
        .file("jwt-key.pem", pem)
        .file("accounts.toml", "[openid]\n\"o-mapped\" = \"acct-1\"\n")
        .section("[accounts]\nfile = \"accounts.toml\"")
        .section(&format!(
            "[identity_token]\nenabled = true\nsigning_key_file = \"jwt-key.pem\"\n{extra}"
        ))
        .route_raw(&format!(
            "prefix = \"/req/\"\nupstream = \"{}\"\nauth = \"required\"\naudience = \"orders-api\"",
            echo.url
        ))
        .route("/opt/", &echo.url, "optional")
        .route("/pub/", &echo.url, "public")
}

async fn jwks(gw: &Gateway) -> JwkSet {
    let r = send(client().get(gw.admin_url("/.well-known/jwks.json"))).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/json")
    );
    serde_json::from_str(&r.text()).expect("a JWKS")
}

/// The assertion the upstream received for `path`, verified against `keys` for `aud`.
async fn verified(
    gw: &Gateway,
    echo: &Echo,
    token: &str,
    path: &str,
    aud: &str,
    keys: &JwkSet,
) -> (String, Value) {
    let r = gw.call("GET", path, Some(token)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let rec = echo.last();
    let all = rec.header_all(HEADER);
    assert_eq!(all.len(), 1, "{all:?}");
    let jwt = all[0].to_string();
    (jwt.clone(), verify(&jwt, aud, keys))
}

fn verify(jwt: &str, aud: &str, keys: &JwkSet) -> Value {
    try_verify(jwt, aud, keys).unwrap_or_else(|e| panic!("{e}"))
}

fn try_verify(jwt: &str, aud: &str, keys: &JwkSet) -> Result<Value, String> {
    let header = decode_header(jwt).expect("a JOSE header");
    assert_eq!(header.alg, Algorithm::ES256);
    assert_eq!(header.typ.as_deref(), Some("JWT"));
    let kid = header.kid.expect("a kid");
    let jwk = keys.find(&kid).expect("the kid is published");
    let mut validation = Validation::new(Algorithm::ES256);
    validation.set_audience(&[aud]);
    validation.set_issuer(&["wxgate"]);
    validation.required_spec_claims = ["exp", "iat", "aud", "iss", "sub"]
        .map(String::from)
        .into_iter()
        .collect::<HashSet<_>>();
    let key = DecodingKey::from_jwk(jwk).expect("a usable JWK");
    decode::<Value>(jwt, &key, &validation)
        .map(|data| data.claims)
        .map_err(|e| format!("assertion does not verify for {aud}: {e}"))
}

fn kids(keys: &JwkSet) -> Vec<String> {
    keys.keys
        .iter()
        .map(|k| k.common.key_id.clone().unwrap_or_default())
        .collect()
}

fn thumbprint(jwk: &Jwk) -> String {
    jwk.thumbprint(ThumbprintHash::SHA256).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assertions_verify_against_the_served_jwks() {
    let (wx, echo) = (FakeWechat::start().await, Echo::start().await);
    let (pem, _) = p256_key();
    let gw = builder(&wx, &echo, &pem, "")
        .rust_log("trace")
        .start()
        .await;
    let keys = jwks(&gw).await;
    assert_eq!(keys.keys.len(), 1);
    let jwk = &keys.keys[0];
    assert_eq!(jwk.common.key_id.as_deref(), Some(thumbprint(jwk).as_str()));
    let raw_jwks: Value = serde_json::from_str(
        &send(client().get(gw.admin_url("/.well-known/jwks.json")))
            .await
            .text(),
    )
    .unwrap();
    let k = &raw_jwks["keys"][0];
    assert_eq!(
        (k["kty"].as_str(), k["crv"].as_str()),
        (Some("EC"), Some("P-256"))
    );
    assert_eq!(
        (k["alg"].as_str(), k["use"].as_str()),
        (Some("ES256"), Some("sig"))
    );
    assert!(k.get("d").is_none(), "the JWKS publishes the private key");

    wx.add_code("c-mapped", "o-mapped", Some("u-mapped"));
    let mapped = gw.token("c-mapped").await;
    let (_, claims) = verified(&gw, &echo, &mapped, "/req/a", "orders-api", &keys).await;
    assert_eq!(claims["sub"], "acct-1");
    assert_eq!(claims["account_id"], "acct-1");
    assert_eq!(claims["openid"], "o-mapped");
    assert_eq!(claims["appid"], wx.appid.as_str());
    assert_eq!(claims["unionid"], "u-mapped");
    assert_eq!(claims["iss"], "wxgate");
    let (iat, exp) = (
        claims["iat"].as_u64().unwrap(),
        claims["exp"].as_u64().unwrap(),
    );
    assert_eq!(exp - iat, 60);
    assert!(common::now_secs().abs_diff(iat as i64) <= 5, "iat {iat}");
    for absent in ["phone_number", "risk_rank"] {
        assert!(claims.get(absent).is_none(), "{absent} in {claims}");
    }
    // the default audience is the route's prefix; a wrong audience fails
    let (jwt, _) = verified(&gw, &echo, &mapped, "/opt/b", "/opt/", &keys).await;
    assert!(
        try_verify(&jwt, "orders-api", &keys).is_err(),
        "an /opt/ assertion verified for orders-api"
    );
    // a tampered payload fails
    let mut parts: Vec<&str> = jwt.split('.').collect();
    let (_, forged_claims) = verified(&gw, &echo, &mapped, "/req/t", "orders-api", &keys).await;
    let forged = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        forged_claims.to_string().replace("acct-1", "acct-2"),
    );
    parts[1] = &forged;
    assert!(
        try_verify(&parts.join("."), "/opt/", &keys).is_err(),
        "a tampered assertion verified"
    );

    wx.add_code("c-bare", "o-bare", None);
    let bare = gw.token("c-bare").await;
    let (_, claims) = verified(&gw, &echo, &bare, "/opt/c", "/opt/", &keys).await;
    assert_eq!(claims["sub"], format!("{}:o-bare", wx.appid));
    for absent in ["account_id", "unionid", "phone_number", "risk_rank"] {
        assert!(claims.get(absent).is_none(), "{absent} in {claims}");
    }

    // public routes and anonymous optional calls carry none; a forged one never passes
    for (path, token) in [
        ("/pub/x", Some(&mapped)),
        ("/opt/anon", None),
        ("/req/y", Some(&bare)),
    ] {
        let auth = token
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        let head = format!(
            "GET {path} HTTP/1.1\r\nHost: a\r\n{auth}X-WX-JWT-ASSERTION: forged.jwt.value\r\n\
             x_wx_jwt_assertion: forged\r\nConnection: close\r\n\r\n"
        );
        assert_eq!(raw::request(gw.addr, &head).await.status, 200, "{path}");
        let rec = echo.last();
        assert!(!rec.dump().contains("forged"), "{path}: {}", rec.dump());
        assert_eq!(
            rec.header_all(HEADER).len(),
            usize::from(path == "/req/y"),
            "{path}"
        );
    }
    let logs = gw.logs();
    for line in pem.lines().filter(|l| !l.starts_with("-----")) {
        assert!(!logs.contains(line), "the signing key is in the logs");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_assertion_is_reused_then_renewed_after_half_its_lifetime() {
    let (wx, echo) = (FakeWechat::start().await, Echo::start().await);
    let (pem, _) = p256_key();
    let gw = builder(&wx, &echo, &pem, "ttl = \"2s\"").start().await;
    let keys = jwks(&gw).await;
    wx.add_code("c", "o-mapped", None);
    let token = gw.token("c").await;
    let (first, claims) = verified(&gw, &echo, &token, "/req/a", "orders-api", &keys).await;
    assert_eq!(
        claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
        2
    );
    let (again, _) = verified(&gw, &echo, &token, "/req/b", "orders-api", &keys).await;
    let iat = claims["iat"].as_u64().unwrap();
    if common::now_secs() as u64 == iat {
        assert_eq!(first, again, "signed again within its first half");
    }
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (renewed, claims) = verified(&gw, &echo, &token, "/req/c", "orders-api", &keys).await;
    assert_ne!(renewed, first);
    assert!(claims["iat"].as_u64().unwrap() > iat);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_publishes_the_previous_key_and_kids_are_stable() {
    let (wx, echo) = (FakeWechat::start().await, Echo::start().await);
    let (old_pem, old_public) = p256_key();
    let (new_pem, _) = p256_key();
    let old = builder(&wx, &echo, &old_pem, "").start().await;
    let old_keys = jwks(&old).await;
    wx.add_code("c-old", "o-mapped", None);
    let old_token = old.token("c-old").await;
    let (old_jwt, _) = verified(&old, &echo, &old_token, "/req/a", "orders-api", &old_keys).await;
    // the same key on another gateway (or after a restart): the same kid
    let twin = builder(&wx, &echo, &old_pem, "").start().await;
    assert_eq!(kids(&jwks(&twin).await), kids(&old_keys));

    let rotated = builder(
        &wx,
        &echo,
        &new_pem,
        "previous_keys_files = [\"old.pem\", \"old-private.pem\"]",
    )
    .file("old.pem", &old_public)
    .file("old-private.pem", &old_pem)
    .start()
    .await;
    let keys = jwks(&rotated).await;
    let published = kids(&keys);
    assert_eq!(published.len(), 2, "{published:?}");
    assert_eq!(published[1], kids(&old_keys)[0]);
    assert_ne!(published[0], published[1]);
    wx.add_code("c-new", "o-mapped", None);
    let token = rotated.token("c-new").await;
    let (new_jwt, _) = verified(&rotated, &echo, &token, "/req/b", "orders-api", &keys).await;
    assert_eq!(
        decode_header(&new_jwt).unwrap().kid.as_deref(),
        Some(published[0].as_str())
    );
    // an assertion signed with the previous key still verifies against the new JWKS
    verify(&old_jwt, "orders-api", &keys);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_jwks_is_open_to_any_admin_peer_and_404_when_off() {
    let (wx, echo) = (FakeWechat::start().await, Echo::start().await);
    let off = GatewayBuilder::new(&wx).start().await;
    let r = send(client().get(off.admin_url("/.well-known/jwks.json"))).await;
    common::assert_error(&r, 404, "not_found");
    let (pem, _) = p256_key();
    let gw = builder(&wx, &echo, &pem, "")
        .admin("token", "\"admin-secret-123\"")
        .start()
        .await;
    // another peer, no admin token: the public keys are public
    let r = send(client_from("127.0.0.2").get(gw.admin_url("/.well-known/jwks.json"))).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.header("cache-control").is_some());
    let r = send(client().get(gw.url("/.well-known/jwks.json"))).await;
    assert_ne!(r.status, 200, "the JWKS is on the public listener");
}

/// `check-config` on `[identity_token]` with `files` beside it.
fn check(section: &str, files: &[(&str, &str)]) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.toml");
    let config = format!(
        "[[apps]]\nappid = \"wx0123456789abcdef\"\nsecret = \"APPSECRET-x\"\n\
         [[routes]]\nprefix = \"/api/\"\nupstream = \"http://127.0.0.1:9\"\n{section}"
    );
    std::fs::write(&path, config).unwrap();
    for (name, content) in files {
        std::fs::write(dir.path().join(name), content).unwrap();
    }
    let out = run_cli(&["check-config", "--config", path.to_str().unwrap()], &[]);
    (out.status.code().unwrap_or(-1), output_text(&out))
}

#[test]
fn bad_keys_are_start_up_errors_that_never_show_the_key() {
    let (code, text) = check("[identity_token]\nenabled = true", &[]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("identity_token.signing_key"), "{text}");

    let ed = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519)
        .unwrap()
        .serialize_pem();
    let garbage =
        "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWtleS1tYXRlcmlhbA==\n-----END PRIVATE KEY-----\n";
    for (name, pem) in [("ed25519", ed.as_str()), ("garbage", garbage)] {
        let section = format!("[identity_token]\nenabled = true\nsigning_key = \"\"\"{pem}\"\"\"");
        let (code, text) = check(&section, &[]);
        assert_eq!(code, 1, "{name}: {text}");
        assert!(
            text.contains("identity_token.signing_key"),
            "{name}: {text}"
        );
        for line in pem.lines().filter(|l| !l.starts_with("-----")) {
            assert!(
                !text.contains(line),
                "{name}: the key is in the message: {text}"
            );
        }
    }
    let (pem, _) = p256_key();
    let files = [("k.pem", pem.as_str())];
    let (code, text) = check(
        "[identity_token]\nenabled = true\nsigning_key_file = \"k.pem\"\nprevious_keys_files = [\"missing.pem\"]",
        &files,
    );
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("identity_token.previous_keys_files[0]"),
        "{text}"
    );
    let (code, text) = check(
        "[identity_token]\nenabled = true\nsigning_key_file = \"k.pem\"\nttl = \"0s\"",
        &files,
    );
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("identity_token.ttl"), "{text}");
    let (code, text) = check(
        "[identity_token]\nenabled = true\nsigning_key_file = \"k.pem\"\n[[routes]]\nprefix = \"/b/\"\nupstream = \"http://127.0.0.1:9\"\naudience = \"\"",
        &files,
    );
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("routes[1].audience"), "{text}");
    let (code, text) = check(
        "[identity_token]\nenabled = true\nsigning_key_file = \"k.pem\"",
        &files,
    );
    assert_eq!(code, 0, "{text}");
}
