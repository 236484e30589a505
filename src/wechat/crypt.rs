//! Legacy encrypted data (`encryptedData` + `iv` from `wx.getUserInfo`, `wx.getWeRunData`,
//! `wx.getShareInfo` and the legacy phone button), opened with the session's key.
//!
//! AES-128-CBC with PKCS#7 padding; the key is the base64-decoded `session_key`. The
//! plaintext must be a JSON object whose `watermark.appid` is the session's app and whose
//! `openId`, when present, is the session's user. Every failure is `decrypt_failed`, with
//! no hint of which check failed (no padding oracle); nothing is logged here.

use aes::Aes128;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockModeDecrypt, KeyIvInit};
use serde_json::Value;

use crate::error::GatewayError;
use crate::secret::Secret;

/// The largest `encryptedData` accepted, decoded (WeChat's are a few hundred bytes).
const MAX_CIPHERTEXT: usize = 64 * 1024;

/// Who the data must belong to.
pub struct Owner<'a> {
    pub appid: &'a str,
    pub openid: &'a str,
}

/// Decrypt `encrypted_data` with `session_key` and `iv` (all base64) into the JSON object,
/// checked against `owner`.
pub fn decrypt(
    session_key: &Secret,
    encrypted_data: &str,
    iv: &str,
    owner: &Owner<'_>,
) -> Result<Value, GatewayError> {
    let key = decode(session_key.expose(), 16)?;
    let iv = decode(iv, 16)?;
    let mut data = decode_limited(encrypted_data)?;
    if data.is_empty() || data.len() % 16 != 0 {
        return Err(GatewayError::DecryptFailed);
    }
    let cipher = cbc::Decryptor::<Aes128>::new_from_slices(&key, &iv)
        .map_err(|_| GatewayError::DecryptFailed)?;
    let plain = cipher
        .decrypt_padded::<Pkcs7>(&mut data)
        .map_err(|_| GatewayError::DecryptFailed)?;
    let value: Value = serde_json::from_slice(plain).map_err(|_| GatewayError::DecryptFailed)?;
    check_owner(&value, owner)?;
    Ok(value)
}

/// The base64 text decoded, when it is exactly `len` bytes.
fn decode(text: &str, len: usize) -> Result<Vec<u8>, GatewayError> {
    match STANDARD.decode(text.trim()) {
        Ok(bytes) if bytes.len() == len => Ok(bytes),
        _ => Err(GatewayError::DecryptFailed),
    }
}

fn decode_limited(text: &str) -> Result<Vec<u8>, GatewayError> {
    let text = text.trim();
    if text.len() > MAX_CIPHERTEXT / 3 * 4 + 4 {
        return Err(GatewayError::DecryptFailed);
    }
    STANDARD
        .decode(text)
        .map_err(|_| GatewayError::DecryptFailed)
}

/// `watermark.appid` must be the session's app; an `openId`, the session's user.
fn check_owner(value: &Value, owner: &Owner<'_>) -> Result<(), GatewayError> {
    let object = value.as_object().ok_or(GatewayError::DecryptFailed)?;
    let appid = object
        .get("watermark")
        .and_then(|w| w.get("appid"))
        .and_then(Value::as_str);
    if appid != Some(owner.appid) {
        return Err(GatewayError::DecryptFailed);
    }
    match object.get("openId") {
        None => Ok(()),
        Some(Value::String(o)) if o == owner.openid => Ok(()),
        Some(_) => Err(GatewayError::DecryptFailed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// WeChat's public decrypt demo (shared/WECHAT.md).
    const APPID: &str = "wx4f4bc4dec97d474b";
    const KEY: &str = "tiihtNczf5v6AKRyjwEUhQ==";
    const IV: &str = "r7BXXKkLb8qrSNn05n0qiA==";
    const DATA: &str = "CiyLU1Aw2KjvrjMdj8YKliAjtP4gsMZMQmRzooG2xrDcvSnxIMXFufNstNGTyaGS9uT5geRa0W4oTOb1WT7fJlAC+oNPdbB+3hVbJSRgv+4lGOETKUQz6OYStslQ142dNCuabNPGBzlooOmB231qMM85d2/fV6ChevvXvQP8Hkue1poOFtnEtpyxVLW1zAo6/1Xx1COxFvrc2d7UL/lmHInNlxuacJXwu0fjpXfz/YqYzBIBzD6WUfTIF9GRHpOn/Hz7saL8xz+W//FRAUid1OksQaQx4CMs8LOddcQhULW4ucetDf96JcR3g0gfRK4PC7E/r7Z6xNrXd2UIeorGj5Ef7b1pJAYB6Y5anaHqZ9J6nKEBvB4DnNLIVWSgARns/8wR2SiRS7MNACwTyrGvt9ts8p12PKFdlqYTopNHR1Vf7XjfhQlVsAJdNiKdYmYVoKlaRv85IfVunYzO0IKXsyl7JCUjCpoG20f0a04COwfneQAGGwd5oa+T8yO5hzuyDb/XcxxmK01EpqOyuxINew==";
    const OPENID: &str = "oGZUI0egBJY1zhBYw2KhdUfwVJJE";

    fn owner(appid: &'static str, openid: &'static str) -> Owner<'static> {
        Owner { appid, openid }
    }

    #[test]
    fn the_public_test_vector_decrypts() {
        let v = decrypt(&Secret::new(KEY), DATA, IV, &owner(APPID, OPENID));
        let v = v.unwrap_or_default();
        assert_eq!(v["openId"], OPENID);
        assert_eq!(v["unionId"], "ocMvos6NjeKLIBqg5Mr9QjxrP1FA");
        assert_eq!(v["watermark"]["timestamp"], 1477314187);
    }

    #[test]
    fn anything_wrong_is_decrypt_failed() {
        let mut tampered = DATA.as_bytes().to_vec();
        tampered[40] = if tampered[40] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap_or_default();
        let cases = [
            (KEY, DATA, IV, APPID, "oOtherUser"),
            (KEY, DATA, IV, "wx0000000000000000", OPENID),
            (KEY, tampered.as_str(), IV, APPID, OPENID),
            (KEY, "not base64!", IV, APPID, OPENID),
            (KEY, &DATA[..DATA.len() - 24], IV, APPID, OPENID),
            (KEY, DATA, "AAAA", APPID, OPENID),
            ("c2hvcnQ=", DATA, IV, APPID, OPENID),
            ("AAAAAAAAAAAAAAAAAAAAAA==", DATA, IV, APPID, OPENID),
            (KEY, "", IV, APPID, OPENID),
        ];
        for (i, (key, data, iv, appid, openid)) in cases.into_iter().enumerate() {
            let who = Owner { appid, openid };
            let r = decrypt(&Secret::new(key), data, iv, &who);
            assert_eq!(r.err(), Some(GatewayError::DecryptFailed), "case {i}");
        }
    }
}
