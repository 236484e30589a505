//! The fake WeChat's services behind an access_token, modelled on WECHAT.md: `checksession`
//! (the HMAC-SHA256 signature of the empty message under the user's *current* session_key;
//! 87009 otherwise), the QR-code endpoints (PNG bytes as `image/png`, 40097 without the
//! required field), `subscribe/send` (40003 without `touser`) and `getuserriskrank` (a rank
//! per openid, 0 unless set; an injectable failure). Every one runs the shared access_token
//! check first ([`token_gate`]), so 40001 after an invalidation works on all of them.

use std::collections::HashMap;
use std::sync::Mutex;

use aes::Aes128;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockModeEncrypt, KeyIvInit};
use hmac::{KeyInit, Mac};
use hyper::Response;
use serde_json::{Value, json};

use super::fake_tokens::token_gate;
use super::fake_wechat::{FakeWechat, WxState, wx_error};
use super::{TestBody, full};

/// What an endpoint answers: JSON (served as `text/plain`, as WeChat does) or an image.
pub enum Answer {
    Json(Value),
    Png(Vec<u8>),
}

impl Answer {
    pub fn into_response(self) -> Response<TestBody> {
        let (content_type, body) = match self {
            Answer::Json(v) => ("text/plain", Bytes::from(v.to_string())),
            Answer::Png(bytes) => ("image/png", Bytes::from(bytes)),
        };
        Response::builder()
            .status(200)
            .header("content-type", content_type)
            .body(full(body))
            .unwrap()
    }
}

/// State of the services.
#[derive(Default)]
pub struct ServiceState {
    risk_ranks: HashMap<String, i64>,
    risk_error: Option<i64>,
    checks_ok: usize,
    checks_bad: usize,
    pngs: Vec<Vec<u8>>,
    sent: Vec<Value>,
}

/// The QR-code endpoints and the field each requires.
const QR_PATHS: [(&str, &str); 3] = [
    ("/wxa/getwxacodeunlimit", "scene"),
    ("/wxa/getwxacode", "path"),
    ("/cgi-bin/wxaapp/createwxaqrcode", "path"),
];

/// The answer of a service endpoint, or `None` when `path` is not one.
pub(super) fn handle(
    state: &Mutex<WxState>,
    path: &str,
    q: &HashMap<String, String>,
    body: &[u8],
) -> Option<Answer> {
    let known = matches!(
        path,
        "/wxa/checksession" | "/cgi-bin/message/subscribe/send" | "/wxa/getuserriskrank"
    ) || QR_PATHS.iter().any(|(p, _)| *p == path);
    if !known {
        return None;
    }
    let mut guard = state.lock().unwrap();
    let st = &mut *guard;
    let appid = match token_gate(&mut st.tokens, q) {
        Ok(appid) => appid,
        Err(answer) => return Some(Answer::Json(answer)),
    };
    let json_body = serde_json::from_slice::<Value>(body).unwrap_or(Value::Null);
    Some(match path {
        "/wxa/checksession" => Answer::Json(checksession(st, &appid, q)),
        "/cgi-bin/message/subscribe/send" => Answer::Json(subscribe_send(st, json_body)),
        "/wxa/getuserriskrank" => Answer::Json(risk_rank(st, &appid, &json_body)),
        qr => {
            let field = QR_PATHS.iter().find(|(p, _)| *p == qr).map(|(_, f)| *f);
            match json_body.get(field.unwrap_or("")).and_then(Value::as_str) {
                Some(v) if !v.is_empty() => Answer::Png(png(st, qr, v)),
                _ => Answer::Json(wx_error(40097, "invalid args")),
            }
        }
    })
}

/// `GET /wxa/checksession?access_token&openid&signature&sig_method=hmac_sha256`.
fn checksession(st: &mut WxState, appid: &str, q: &HashMap<String, String>) -> Value {
    let get = |k: &str| q.get(k).map(String::as_str).unwrap_or("");
    let user = (appid.to_string(), get("openid").to_string());
    let expected = st.current_keys.get(&user).map(|key| signature(key));
    if get("sig_method") == "hmac_sha256" && expected.as_deref() == Some(get("signature")) {
        st.services.checks_ok += 1;
        json!({"errcode": 0, "errmsg": "ok"})
    } else {
        st.services.checks_bad += 1;
        wx_error(87009, "invalid signature")
    }
}

/// `plain` encrypted as the mini-program's SDK does, under `key` and `iv` (base64).
pub fn encrypt(key: &str, iv: &str, plain: &Value) -> String {
    let (key, iv) = (STANDARD.decode(key).unwrap(), STANDARD.decode(iv).unwrap());
    let enc = cbc::Encryptor::<Aes128>::new_from_slices(&key, &iv).unwrap();
    let plain = plain.to_string().into_bytes();
    let mut buf = plain.clone();
    buf.extend_from_slice(&[0u8; 16]);
    STANDARD.encode(enc.encrypt_padded::<Pkcs7>(&mut buf, plain.len()).unwrap())
}

/// `hex(HMAC-SHA256(key = the session_key string, message = ""))`.
pub fn signature(session_key: &str) -> String {
    let mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(session_key.as_bytes()).unwrap();
    hex::encode(mac.finalize().into_bytes())
}

fn subscribe_send(st: &mut WxState, body: Value) -> Value {
    if body["touser"].as_str().is_none_or(str::is_empty) {
        return wx_error(40003, "invalid openid");
    }
    st.services.sent.push(body);
    json!({"errcode": 0, "errmsg": "ok"})
}

fn risk_rank(st: &mut WxState, appid: &str, body: &Value) -> Value {
    if let Some(errcode) = st.services.risk_error {
        return wx_error(errcode, "simulated risk failure");
    }
    if body["appid"].as_str() != Some(appid) {
        return wx_error(40013, "invalid appid");
    }
    let Some(openid) = body["openid"].as_str() else {
        return wx_error(40003, "invalid openid");
    };
    let rank = st.services.risk_ranks.get(openid).copied().unwrap_or(0);
    json!({"errcode": 0, "errmsg": "getuserriskrank succ", "risk_rank": rank, "unoin_id": 123456})
}

/// A PNG-looking answer of about 40 KiB that differs per path and parameter.
fn png(st: &mut WxState, path: &str, param: &str) -> Vec<u8> {
    let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
    bytes.extend_from_slice(format!("{path}?{param}").as_bytes());
    let mut x: u32 = 0x9e37_79b9 ^ param.len() as u32;
    for _ in 0..40_000 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        bytes.push((x >> 24) as u8);
    }
    st.services.pngs.push(bytes.clone());
    bytes
}

impl FakeWechat {
    fn services<R>(&self, f: impl FnOnce(&mut ServiceState) -> R) -> R {
        f(&mut self.state.lock().unwrap().services)
    }

    /// The session_key WeChat holds now for `openid` of the first app (the newest login's).
    pub fn current_session_key(&self, openid: &str) -> Option<String> {
        let st = self.state.lock().unwrap();
        let user = (self.appid.clone(), openid.to_string());
        st.current_keys.get(&user).cloned()
    }

    /// `getuserriskrank` answers `rank` for `openid` (0 unless set).
    pub fn set_risk_rank(&self, openid: &str, rank: i64) {
        self.services(|s| s.risk_ranks.insert(openid.to_string(), rank));
    }

    /// `getuserriskrank` answers `errcode` (None: works again).
    pub fn fail_risk(&self, errcode: Option<i64>) {
        self.services(|s| s.risk_error = errcode);
    }

    /// checksession answers so far: (valid signatures, refused ones).
    pub fn checksessions(&self) -> (usize, usize) {
        self.services(|s| (s.checks_ok, s.checks_bad))
    }

    /// Every PNG served, in order.
    pub fn pngs(&self) -> Vec<Vec<u8>> {
        self.services(|s| s.pngs.clone())
    }

    /// Every subscribe message accepted, in order.
    pub fn sent_messages(&self) -> Vec<Value> {
        self.services(|s| s.sent.clone())
    }
}
