//! A WeChat simulator for `wxgate demo`: `jscode2session` as WeChat answers it.
//!
//! Also `stable_token` and `getuserphonenumber` (codes `phone-<mainland number>-<user>-<anything>`,
//! made by `<user>`'s button: refused with 40029 unless the call names that user's openid,
//! as WeChat checks), and the services of [`super::services`]. Codes are single-use;
//! `<user>-<anything>` logs in as a stable openid derived from `<user>`; a code starting
//! with `bad` is invalid (40029). Answers are HTTP 200 with `text/plain` JSON (or an image),
//! like the real servers. Only `demo` starts it; `run` never can.

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::services::Reply;
use crate::http::{Body, text};

/// The simulator's state.
pub struct Simulator {
    pub appid: String,
    pub secret: String,
    used: Mutex<HashSet<String>>,
    pub(super) access_token: String,
    /// Each user's current session_key (the newest login's), for checksession.
    pub(super) keys: Mutex<HashMap<String, String>>,
    /// The key every login of "carol" gets, so the demo can print data sealed for her.
    pub carol_key: [u8; 16],
    pub(super) messages: AtomicU64,
}

impl Simulator {
    pub fn new(appid: &str, secret: &str) -> Self {
        let mut token = [0u8; 24];
        let _ = getrandom::fill(&mut token);
        let mut carol_key = [0u8; 16];
        let _ = getrandom::fill(&mut carol_key);
        Self {
            appid: appid.into(),
            secret: secret.into(),
            used: Mutex::new(HashSet::new()),
            access_token: URL_SAFE_NO_PAD.encode(token),
            keys: Mutex::default(),
            carol_key,
            messages: AtomicU64::new(0),
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
        let path = req.uri().path().to_owned();
        let query = req.uri().query().unwrap_or("").to_owned();
        let body = match path.as_str() {
            "/sns/jscode2session" => self.jscode2session(&query),
            "/cgi-bin/stable_token" => self.stable_token(&read_json(req).await),
            "/wxa/business/getuserphonenumber" => self.phone_number(&query, &read_json(req).await),
            _ => {
                let body = read_json(req).await;
                match self.service(&path, &query, &body) {
                    Some(Reply::Png(png)) => return Ok(text(StatusCode::OK, "image/png", png)),
                    Some(Reply::Json(v)) => v,
                    None => error(40066, "invalid url"),
                }
            }
        };
        Ok(text(StatusCode::OK, "text/plain", body.to_string()))
    }

    fn jscode2session(&self, query: &str) -> Value {
        let q = Query::parse(query);
        let get = |k| q.get(k);
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
        if !self.first_use(code) {
            return error(40163, "code been used");
        }
        let user = code.split('-').next().unwrap_or(code);
        let mut key = self.carol_key;
        if user != "carol" {
            let _ = getrandom::fill(&mut key);
        }
        let (key, openid) = (STANDARD.encode(key), self.openid_for(user));
        if let Ok(mut keys) = self.keys.lock() {
            keys.insert(openid.clone(), key.clone());
        }
        json!({
            "session_key": key,
            "openid": openid,
            "unionid": self.unionid_for(user),
        })
    }
}

impl Simulator {
    /// Mark a code used; `false` if it already was (codes are single-use).
    fn first_use(&self, code: &str) -> bool {
        self.used
            .lock()
            .map(|mut used| used.insert(code.to_string()))
            .unwrap_or(false)
    }

    fn stable_token(&self, body: &Value) -> Value {
        if body["appid"] != self.appid.as_str() {
            return error(40013, "invalid appid");
        }
        if body["secret"] != self.secret.as_str() {
            return error(40125, "invalid appsecret");
        }
        json!({"access_token": self.access_token, "expires_in": 7200})
    }

    /// Phone codes look like `phone-<mainland number>-<user>[-<anything>]`; each works once,
    /// and only for `<user>`'s openid.
    fn phone_number(&self, query: &str, body: &Value) -> Value {
        if Query::parse(query).get("access_token") != self.access_token {
            return error(
                40001,
                "invalid credential, access_token is invalid or not latest",
            );
        }
        let code = body["code"].as_str().unwrap_or("");
        let mut parts = code.splitn(4, '-');
        let (Some("phone"), Some(number), Some(user)) = (parts.next(), parts.next(), parts.next())
        else {
            return error(40029, "invalid code");
        };
        if number.len() != 11 || !number.bytes().all(|b| b.is_ascii_digit()) || user.is_empty() {
            return error(40029, "invalid code");
        }
        // the code was made by <user>'s button: another user's openid (or none) is refused
        if body["openid"].as_str() != Some(self.openid_for(user).as_str()) {
            return error(40029, "invalid code");
        }
        if !self.first_use(code) {
            return error(40163, "code been used");
        }
        json!({"errcode": 0, "errmsg": "ok", "phone_info": {
            "phoneNumber": number, "purePhoneNumber": number, "countryCode": "86",
            "watermark": {"timestamp": 1_700_000_000, "appid": self.appid},
        }})
    }
}

/// A request's query pairs, decoded.
pub(super) struct Query(Vec<(String, String)>);

impl Query {
    pub(super) fn parse(query: &str) -> Self {
        Self(
            form_urlencoded::parse(query.as_bytes())
                .into_owned()
                .collect(),
        )
    }

    /// The first value of `key`, or "".
    pub(super) fn get(&self, key: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map_or("", |(_, v)| v.as_str())
    }
}

async fn read_json(req: Request<Incoming>) -> Value {
    use http_body_util::{BodyExt, Limited};
    let bytes = Limited::new(req.into_body(), 16 * 1024)
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    serde_json::from_slice(&bytes).unwrap_or(Value::Null)
}

fn derive(scope: &str, kind: &str, user: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(format!("{scope}:{kind}:{user}").as_bytes()))
}

pub(super) fn error(errcode: i64, errmsg: &str) -> Value {
    json!({"errcode": errcode, "errmsg": format!("{errmsg}, rid: demo")})
}
