//! A fake WeChat API server that answers like the real one (see shared/WECHAT.md): HTTP 200
//! with `{"errcode", "errmsg": "... rid: ..."}` bodies served as `text/plain`, single-use
//! login codes, per-app secret checks, a slow mode (global or per path), call counters and
//! the request bodies received.
//! Endpoints are a match on the path; `stable_token` and `getuserphonenumber` live in
//! `fake_tokens.rs`, checksession, QR codes, subscribe send and getuserriskrank in
//! `fake_services.rs`; any other path answers 40066 `invalid url`. It remembers each user's
//! current session_key (a newer login replaces it, as at WeChat) and the headers of every
//! request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Request, Response};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use super::fake_services::{self, Answer, ServiceState};
use super::fake_tokens::{self, TokenState};
use super::{TestBody, full, random_hex, spawn_server};

/// What a login code does when presented to `jscode2session`.
#[derive(Debug, Clone)]
enum CodeEntry {
    Valid {
        appid: String,
        openid: String,
        unionid: Option<String>,
        session_key: String,
        used: bool,
    },
    Error {
        errcode: i64,
        as_string: bool,
    },
}

#[derive(Default)]
pub(super) struct WxState {
    pub(super) apps: HashMap<String, String>,
    codes: HashMap<String, CodeEntry>,
    delay: Duration,
    path_delays: HashMap<String, Duration>,
    calls: HashMap<String, usize>,
    queries: Vec<String>,
    bodies: Vec<(String, Vec<u8>)>,
    headers: Vec<(String, hyper::HeaderMap)>,
    /// The session_key WeChat holds now for (appid, openid): the newest login's.
    pub(super) current_keys: HashMap<(String, String), String>,
    pub(super) tokens: TokenState,
    pub(super) services: ServiceState,
}

/// Handle to a running fake WeChat; the server stops when this is dropped.
pub struct FakeWechat {
    pub base: String,
    /// The first app, registered at start: `wx` + 16 hex digits.
    pub appid: String,
    /// Its secret: `APPSECRET-<random>`.
    pub secret: String,
    pub(super) state: Arc<Mutex<WxState>>,
    task: JoinHandle<()>,
}

impl Drop for FakeWechat {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeWechat {
    /// Start on 127.0.0.1:0 with one app registered.
    pub async fn start() -> FakeWechat {
        let state = Arc::new(Mutex::new(WxState::default()));
        let st = state.clone();
        let (addr, task) = spawn_server(move |req| handle(st.clone(), req)).await;
        let mut wx = FakeWechat {
            base: format!("http://{addr}"),
            appid: String::new(),
            secret: String::new(),
            state,
            task,
        };
        (wx.appid, wx.secret) = wx.add_app();
        wx
    }

    /// Register another mini-program; returns its (appid, secret).
    pub fn add_app(&self) -> (String, String) {
        let appid = format!("wx{}", random_hex(8));
        let secret = format!("APPSECRET-{}", random_hex(16));
        let mut st = self.state.lock().unwrap();
        st.apps.insert(appid.clone(), secret.clone());
        (appid, secret)
    }

    /// Register a mini-program under a given appid (e.g. the one of WeChat's decrypt test
    /// vector); returns its secret.
    pub fn add_app_with_id(&self, appid: &str) -> String {
        let secret = format!("APPSECRET-{}", random_hex(16));
        let mut st = self.state.lock().unwrap();
        st.apps.insert(appid.to_string(), secret.clone());
        secret
    }

    /// A code of the first app, valid once, for this identity; returns the session_key.
    pub fn add_code(&self, code: &str, openid: &str, unionid: Option<&str>) -> String {
        let appid = self.appid.clone();
        self.add_code_for(&appid, code, openid, unionid)
    }

    /// A code of `appid`, valid once; returns the session_key (`SESSIONKEY-<random>==`).
    pub fn add_code_for(
        &self,
        appid: &str,
        code: &str,
        openid: &str,
        unionid: Option<&str>,
    ) -> String {
        let session_key = format!("SESSIONKEY-{}==", random_hex(12));
        self.add_code_with_key(appid, code, openid, unionid, &session_key);
        session_key
    }

    /// A code of `appid`, valid once, whose login hands out `session_key` (e.g. the base64
    /// of 16 bytes, so that data encrypted with it can be decrypted).
    pub fn add_code_with_key(
        &self,
        appid: &str,
        code: &str,
        openid: &str,
        unionid: Option<&str>,
        session_key: &str,
    ) {
        let session_key = session_key.to_string();
        let entry = CodeEntry::Valid {
            appid: appid.to_string(),
            openid: openid.to_string(),
            unionid: unionid.map(str::to_string),
            session_key,
            used: false,
        };
        self.state
            .lock()
            .unwrap()
            .codes
            .insert(code.to_string(), entry);
    }

    /// A code that always answers `errcode` (as a JSON number).
    pub fn add_error_code(&self, code: &str, errcode: i64) {
        self.insert_error(code, errcode, false);
    }

    /// A code that always answers `errcode` as a numeric JSON string (`"40029"`).
    pub fn add_error_code_as_string(&self, code: &str, errcode: i64) {
        self.insert_error(code, errcode, true);
    }

    fn insert_error(&self, code: &str, errcode: i64, as_string: bool) {
        let entry = CodeEntry::Error { errcode, as_string };
        self.state
            .lock()
            .unwrap()
            .codes
            .insert(code.to_string(), entry);
    }

    /// Delay every answer by `d` (slow mode); `Duration::ZERO` turns it off.
    pub fn set_delay(&self, d: Duration) {
        self.state.lock().unwrap().delay = d;
    }

    /// Delay answers on `path` only (added to the global delay); ZERO turns it off.
    pub fn set_path_delay(&self, path: &str, d: Duration) {
        self.state
            .lock()
            .unwrap()
            .path_delays
            .insert(path.to_string(), d);
    }

    /// How many requests reached `path` (e.g. `/sns/jscode2session`).
    pub fn calls(&self, path: &str) -> usize {
        let st = self.state.lock().unwrap();
        st.calls.get(path).copied().unwrap_or(0)
    }

    /// Every query string received, in order.
    pub fn queries(&self) -> Vec<String> {
        self.state.lock().unwrap().queries.clone()
    }

    /// The headers of every request received on `path`, in order.
    pub fn request_headers(&self, path: &str) -> Vec<hyper::HeaderMap> {
        let st = self.state.lock().unwrap();
        st.headers
            .iter()
            .filter(|(p, _)| p == path)
            .map(|(_, h)| h.clone())
            .collect()
    }

    /// The raw bodies received on `path`, in order.
    pub fn raw_bodies(&self, path: &str) -> Vec<Vec<u8>> {
        let st = self.state.lock().unwrap();
        st.bodies
            .iter()
            .filter(|(p, _)| p == path)
            .map(|(_, b)| b.clone())
            .collect()
    }

    /// The JSON bodies received on `path`, in order (`Null` for one that is not JSON).
    pub fn bodies(&self, path: &str) -> Vec<Value> {
        let st = self.state.lock().unwrap();
        st.bodies
            .iter()
            .filter(|(p, _)| p == path)
            .map(|(_, b)| serde_json::from_slice(b).unwrap_or(Value::Null))
            .collect()
    }
}

async fn handle(state: Arc<Mutex<WxState>>, req: Request<Incoming>) -> Response<TestBody> {
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let delay = {
        let mut st = state.lock().unwrap();
        *st.calls.entry(path.clone()).or_default() += 1;
        st.queries.push(query.clone());
        st.headers.push((path.clone(), req.headers().clone()));
        st.delay + st.path_delays.get(&path).copied().unwrap_or_default()
    };
    let input = match req.into_body().collect().await {
        Ok(c) => c.to_bytes().to_vec(),
        Err(_) => Vec::new(),
    };
    if !input.is_empty() {
        let mut st = state.lock().unwrap();
        st.bodies.push((path.clone(), input.clone()));
    }
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let q = parse_query(&query);
    let answer = match path.as_str() {
        "/sns/jscode2session" => Answer::Json(jscode2session(&state, &q)),
        "/cgi-bin/stable_token" => Answer::Json(fake_tokens::stable_token(&state, &input)),
        "/wxa/business/getuserphonenumber" => {
            Answer::Json(fake_tokens::phone_number(&state, &q, &input))
        }
        other => fake_services::handle(&state, other, &q, &input)
            .unwrap_or_else(|| Answer::Json(wx_error(40066, "invalid url"))),
    };
    answer.into_response()
}

/// `GET /sns/jscode2session?appid&secret&js_code&grant_type=authorization_code`.
fn jscode2session(state: &Mutex<WxState>, q: &HashMap<String, String>) -> Value {
    let mut guard = state.lock().unwrap();
    let st = &mut *guard;
    let get = |k: &str| q.get(k).map(String::as_str).unwrap_or("");
    let Some(secret) = st.apps.get(get("appid")).cloned() else {
        return wx_error(40013, "invalid appid");
    };
    if get("secret") != secret {
        return wx_error(40125, "invalid appsecret");
    }
    if get("grant_type") != "authorization_code" {
        return wx_error(40002, "invalid grant_type");
    }
    let appid = get("appid").to_string();
    match st.codes.get_mut(get("js_code")) {
        None => wx_error(40029, "invalid code"),
        Some(CodeEntry::Error { errcode, as_string }) => {
            let mut v = wx_error(*errcode, "simulated error");
            if *as_string {
                v["errcode"] = json!(errcode.to_string());
            }
            v
        }
        Some(CodeEntry::Valid { appid: owner, .. }) if *owner != appid => {
            wx_error(40029, "invalid code")
        }
        Some(CodeEntry::Valid { used: true, .. }) => wx_error(40163, "code been used"),
        Some(CodeEntry::Valid {
            openid,
            unionid,
            session_key,
            used,
            ..
        }) => {
            *used = true;
            let mut v = json!({"session_key": session_key, "openid": openid});
            if let Some(u) = unionid {
                v["unionid"] = json!(u);
            }
            let user = (appid, openid.clone());
            let key = session_key.clone();
            st.current_keys.insert(user, key);
            v
        }
    }
}

/// An error body with WeChat's changing `rid` suffix.
pub(super) fn wx_error(errcode: i64, msg: &str) -> Value {
    json!({"errcode": errcode, "errmsg": format!("{msg}, rid: {}-{}", random_hex(4), random_hex(6))})
}

/// Parse `a=b&c=d` with percent- and `+`-decoding.
pub fn parse_query(q: &str) -> HashMap<String, String> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

/// Decode `%XX` escapes and `+` (as space).
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let escaped = (b[i] == b'%' && i + 2 < b.len())
            .then(|| Some(hex(b[i + 1])? * 16 + hex(b[i + 2])?))
            .flatten();
        match (b[i], escaped) {
            (_, Some(v)) => {
                out.push(v);
                i += 2;
            }
            (b'+', None) => out.push(b' '),
            (c, None) => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
