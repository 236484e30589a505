//! A WeChat simulator for `wxgate demo`: `jscode2session` as WeChat answers it.
//!
//! Codes are single-use; `<user>-<anything>` logs in as a stable openid derived from
//! `<user>`; a code starting with `bad` is invalid (40029). Answers are HTTP 200 with
//! `text/plain` JSON, like the real servers. Only `demo` starts it; `run` never can.

use std::collections::HashSet;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::http::{Body, text};

/// The simulator's state.
pub struct Simulator {
    pub appid: String,
    pub secret: String,
    used: Mutex<HashSet<String>>,
}

impl Simulator {
    pub fn new(appid: &str, secret: &str) -> Self {
        Self {
            appid: appid.into(),
            secret: secret.into(),
            used: Mutex::new(HashSet::new()),
        }
    }

    /// The openid the simulator gives `user`.
    pub fn openid_for(&self, user: &str) -> String {
        format!("o{}", &derive(&self.appid, "openid", user)[..27])
    }

    fn unionid_for(&self, user: &str) -> String {
        format!("u{}", &derive("open-platform", "unionid", user)[..27])
    }

    /// Answer one request.
    pub async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
    ) -> Result<Response<Body>, Infallible> {
        let body = match req.uri().path() {
            "/sns/jscode2session" => self.jscode2session(req.uri().query().unwrap_or("")),
            _ => error(40066, "invalid url"),
        };
        Ok(text(StatusCode::OK, "text/plain", body.to_string()))
    }

    fn jscode2session(&self, query: &str) -> Value {
        let q: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        let get = |k: &str| {
            q.iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
                .unwrap_or("")
        };
        if get("appid") != self.appid {
            return error(40013, "invalid appid");
        }
        if get("secret") != self.secret {
            return error(40125, "invalid appsecret");
        }
        let code = get("js_code");
        if code.is_empty() || code.starts_with("bad") {
            return error(40029, "invalid code");
        }
        let fresh = self
            .used
            .lock()
            .map(|mut used| used.insert(code.to_string()))
            .unwrap_or(false);
        if !fresh {
            return error(40163, "code been used");
        }
        let user = code.split('-').next().unwrap_or(code);
        let mut key = [0u8; 16];
        let _ = getrandom::fill(&mut key);
        json!({
            "session_key": STANDARD.encode(key),
            "openid": self.openid_for(user),
            "unionid": self.unionid_for(user),
        })
    }
}

fn derive(scope: &str, kind: &str, user: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(format!("{scope}:{kind}:{user}").as_bytes()))
}

fn error(errcode: i64, errmsg: &str) -> Value {
    json!({"errcode": errcode, "errmsg": format!("{errmsg}, rid: demo")})
}
