//! Micro-benchmarks of what every proxied request pays for: the session lookup of a
//! required route (hash the bearer token, look it up in a memory store of 10k sessions)
//! and the header rewrite (sanitise the client's headers, inject the identity, set
//! X-Forwarded-*), and with `[identity_token]` the signed assertion (a cached one, as
//! nearly every request gets it, and a fresh ES256 signature, as one request per session,
//! route and half-lifetime pays). `cargo bench --bench hot_path`; CI runs each once
//! (`cargo test --bench hot_path`, criterion's test mode, in the test profile).

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use http::header::{AUTHORIZATION, HOST, HeaderMap, HeaderName, HeaderValue};
use wxgate::accounts::Resolved;
use wxgate::assertion::{Claims, Signer};
use wxgate::config::Config;
use wxgate::config::IdentityHeaders;
use wxgate::limit::ClientAddr;
use wxgate::proxy::headers::{self, Hop, IdentityNames};
use wxgate::secret::Secret;
use wxgate::session::identity::{Identity, Stamp};
use wxgate::session::memory::MemoryStore;
use wxgate::session::{Session, SessionStore, Token, TokenHash};

const SESSIONS: usize = 10_000;

fn session(i: usize) -> Arc<Session> {
    Arc::new(Session {
        appid: "wx0123456789abcdef".into(),
        openid: format!("oGZUI0egBJY1zhBYw2Kh{i:08}").into(),
        unionid: None,
        session_key: Secret::new("tiihtNczf5v6AKRyjwEUhQ=="),
        phone: None,
        risk_rank: None,
        expires_at: SystemTime::now() + Duration::from_secs(3600),
        identity: Default::default(),
    })
}

fn token_lookup(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("tokio runtime");
    let store = MemoryStore::new();
    let tokens: Vec<String> = (0..SESSIONS)
        .map(|_| Token::mint().map(|t| t.as_str().to_owned()))
        .collect::<Result<_, _>>()
        .expect("mint tokens");
    rt.block_on(async {
        for (i, token) in tokens.iter().enumerate() {
            store
                .put(TokenHash::of(token), session(i))
                .await
                .expect("put");
        }
    });
    let hit = tokens[SESSIONS / 2].as_str();
    let miss = "wxg_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let mut group = c.benchmark_group("token_lookup");
    group.bench_function("hash", |b| b.iter(|| TokenHash::of(black_box(hit))));
    for (name, token) in [("hash_get_hit", hit), ("hash_get_miss", miss)] {
        group.bench_function(name, |b| {
            b.to_async(&rt)
                .iter(|| async { store.get(&TokenHash::of(black_box(token))).await })
        });
    }
    group.finish();
}

/// What a mini-program's request looks like on arrival: 11 headers, one of them a forged
/// identity header, one the gateway's bearer token.
fn client_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    for (name, value) in [
        ("host", "api.example.com"),
        (
            "user-agent",
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) MicroMessenger/8.0.47",
        ),
        ("accept", "application/json"),
        ("accept-encoding", "gzip, deflate, br"),
        ("accept-language", "zh-CN,zh;q=0.9"),
        ("content-type", "application/json"),
        ("content-length", "42"),
        (
            "referer",
            "https://servicewechat.com/wx0123456789abcdef/12/page-frame.html",
        ),
        ("connection", "keep-alive"),
        ("x-wx-openid", "forged-openid"),
        (
            "authorization",
            "Bearer wxg_0xSTnEEIosoVsnvZ8LNNKiZB43Jm-nd85kKkA9cgSc0",
        ),
    ] {
        h.insert(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    h
}

fn identity_names() -> IdentityNames {
    IdentityHeaders {
        openid: HeaderName::from_static("x-wx-openid"),
        appid: HeaderName::from_static("x-wx-appid"),
        unionid: HeaderName::from_static("x-wx-unionid"),
        account_id: HeaderName::from_static("x-wx-account-id"),
        phone: HeaderName::from_static("x-wx-phone"),
        risk_rank: HeaderName::from_static("x-wx-risk-rank"),
    }
}

/// A session's identity as a login leaves it ready: built once, injected per request.
fn identity(names: &IdentityNames) -> Identity {
    let mut session = Arc::unwrap_or_clone(session(42));
    session.unionid = Some("ocMvos6NjeKLIBqg5Mr9QjxrP1FA".into());
    let resolved = Resolved {
        account: Some("acct-42".into()),
        phone: None,
    };
    let stamp = Stamp {
        accounts: 0,
        bindings: 0,
        fresh_until: None,
    };
    Identity::build(names, &session, resolved, stamp, 0)
}

fn header_rewrite(c: &mut Criterion) {
    let names = identity_names();
    let client = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7));
    let template = client_headers();
    let id = identity(&names);
    let peer_value = HeaderValue::from_static("203.0.113.7");
    let mut group = c.benchmark_group("headers");
    group.bench_function("sanitise_inject", |b| {
        b.iter_batched(
            || template.clone(),
            |mut h| {
                let host = h.get(HOST).cloned();
                headers::sanitize(&mut h, &names, false);
                id.inject(&mut h);
                let client = ClientAddr {
                    peer: client,
                    peer_trusted: false,
                    ip: client,
                };
                let hop = Hop {
                    client,
                    peer_value: &peer_value,
                    scheme: "http",
                    host: host.as_ref(),
                };
                headers::set_forwarded(&mut h, &hop);
                debug_assert!(!h.contains_key(AUTHORIZATION));
                h
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

/// A signer over a fresh P-256 key, as `[identity_token]` builds it.
fn signer() -> Signer {
    use base64::Engine;
    let rng = ring::rand::SystemRandom::new();
    let der = ring::signature::EcdsaKeyPair::generate_pkcs8(
        &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        &rng,
    )
    .expect("a P-256 key");
    let body = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
    let toml = format!(
        "[[apps]]\nappid='wx1'\nsecret='s'\n[identity_token]\nenabled=true\n\
         signing_key='''-----BEGIN PRIVATE KEY-----\n{body}\n-----END PRIVATE KEY-----'''\n"
    );
    let config = Config::from_toml(&toml, std::path::Path::new(".")).expect("config");
    Signer::new(config.identity_token.as_ref().expect("identity_token on"))
}

fn assertion(c: &mut Criterion) {
    let names = identity_names();
    let signer = signer();
    let mut session = Arc::unwrap_or_clone(session(7));
    session.risk_rank = Some(0);
    let resolved = Resolved {
        account: Some("acct-7".into()),
        phone: None,
    };
    let stamp = Stamp {
        accounts: 0,
        bindings: 0,
        fresh_until: None,
    };
    let id = Identity::build(&names, &session, resolved, stamp, 1);
    let claims = Claims {
        sub: "acct-7",
        openid: &session.openid,
        appid: &session.appid,
        unionid: None,
        account_id: Some("acct-7"),
        phone_number: None,
        risk_rank: Some(0),
    }
    .fragment();
    let mut group = c.benchmark_group("assertion");
    group.bench_function("cached", |b| {
        b.iter(|| black_box(id.assertion(&signer, 0, "orders-api")))
    });
    group.bench_function("sign", |b| {
        b.iter(|| black_box(signer.sign(&claims, "orders-api", SystemTime::now())))
    });
    group.finish();
}

criterion_group!(benches, token_lookup, header_rewrite, assertion);
criterion_main!(benches);
