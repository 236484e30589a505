//! The simulator's services behind an access_token, as WECHAT.md describes them:
//! `checksession` (the HMAC-SHA256 signature of the user's current key, else 87009), the
//! QR-code endpoints (a PNG), `subscribe/send` (40003 without `touser`) and
//! `getuserriskrank` (rank 4 for the user "mallory", 0 for everyone else). Any of them
//! answers 40001 to a token that is not the simulator's.
//!
//! Also what the demo prints for `/wx/decrypt`: WeRun-style data sealed with carol's key,
//! as WeChat seals it for the mini-program (AES-128-CBC, PKCS#7).

use std::sync::atomic::Ordering;

use aes::Aes128;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockModeEncrypt, KeyIvInit};
use serde_json::{Value, json};

use super::simulator::{Query, Simulator, error};
use crate::secret::Secret;
use crate::wechat::session_check::signature;

/// A 1×1 PNG: what a QR-code endpoint answers here.
const PNG: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==";

/// What a service endpoint answers.
pub enum Reply {
    Json(Value),
    Png(Vec<u8>),
}

impl Simulator {
    /// The answer of a service endpoint, or `None` when `path` is not one.
    pub(super) fn service(&self, path: &str, query: &str, body: &Value) -> Option<Reply> {
        let known = matches!(
            path,
            "/wxa/checksession"
                | "/wxa/getwxacodeunlimit"
                | "/wxa/getwxacode"
                | "/cgi-bin/wxaapp/createwxaqrcode"
                | "/cgi-bin/message/subscribe/send"
                | "/wxa/getuserriskrank"
        );
        if !known {
            return None;
        }
        let q = Query::parse(query);
        let get = |k| q.get(k);
        if get("access_token") != self.access_token {
            return Some(Reply::Json(error(
                40001,
                "invalid credential, access_token is invalid or not latest",
            )));
        }
        let field = |name: &str| body[name].as_str().filter(|v| !v.is_empty());
        Some(match path {
            "/wxa/checksession" => Reply::Json(self.checksession(get("openid"), get("signature"))),
            "/wxa/getwxacodeunlimit" if field("scene").is_some() => Reply::Png(png()),
            "/wxa/getwxacode" | "/cgi-bin/wxaapp/createwxaqrcode" if field("path").is_some() => {
                Reply::Png(png())
            }
            "/cgi-bin/message/subscribe/send" => Reply::Json(match field("touser") {
                Some(_) => {
                    let msgid = self.messages.fetch_add(1, Ordering::Relaxed) + 1;
                    json!({"errcode": 0, "errmsg": "ok", "msgid": msgid})
                }
                None => error(40003, "invalid openid"),
            }),
            "/wxa/getuserriskrank" => Reply::Json(match field("openid") {
                Some(openid) if body["appid"] == self.appid.as_str() => {
                    let rank = if openid == self.openid_for("mallory") {
                        4
                    } else {
                        0
                    };
                    json!({"errcode": 0, "errmsg": "getuserriskrank succ", "risk_rank": rank, "unoin_id": 1})
                }
                _ => error(40003, "invalid openid"),
            }),
            _ => Reply::Json(error(40097, "invalid args")),
        })
    }

    fn checksession(&self, openid: &str, presented: &str) -> Value {
        let expected = self.keys.lock().ok().and_then(|keys| {
            keys.get(openid)
                .map(|key| signature(&Secret::new(key.as_str())))
        });
        if expected.is_some_and(|s| s == presented) {
            json!({"errcode": 0, "errmsg": "ok"})
        } else {
            error(87009, "invalid signature")
        }
    }

    /// `(encryptedData, iv)` of WeRun-style data for carol, sealed with her session_key.
    pub fn sealed_for_carol(&self) -> (String, String) {
        let plain = json!({
            "stepInfoList": [{"timestamp": 1_700_000_000, "step": 8042}],
            "openId": self.openid_for("carol"),
            "watermark": {"timestamp": 1_700_000_000, "appid": self.appid},
        })
        .to_string();
        let mut iv = [0u8; 16];
        let _ = getrandom::fill(&mut iv);
        let mut buf = plain.clone().into_bytes();
        buf.resize(plain.len() + 16, 0);
        let sealed = cbc::Encryptor::<Aes128>::new_from_slices(&self.carol_key, &iv)
            .ok()
            .and_then(|c| c.encrypt_padded::<Pkcs7>(&mut buf, plain.len()).ok())
            .map(<[u8]>::to_vec)
            .unwrap_or_default();
        (STANDARD.encode(sealed), STANDARD.encode(iv))
    }
}

fn png() -> Vec<u8> {
    STANDARD.decode(PNG).unwrap_or_default()
}
