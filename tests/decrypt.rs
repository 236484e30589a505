//! `POST /wx/decrypt` and the legacy `{"encryptedData", "iv"}` shape of `POST /wx/phone`:
//! WeChat's public test vector through a session whose key is the vector's; tampered data,
//! another app's watermark, another user's openId, bad base64 and bad padding all answer
//! 400 `decrypt_failed`; missing fields 400 `invalid_request`; no token 401; the legacy
//! phone shape binds like the code shape (409 rule included) and is counted; no
//! session_key in any answer or log line.

mod common;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::fake_services::encrypt;
use common::{FakeWechat, Gateway, GatewayBuilder, Resp, assert_error, client, metric_sum, send};
use serde_json::{Value, json};

const APPID: &str = "wx4f4bc4dec97d474b";
const KEY: &str = "tiihtNczf5v6AKRyjwEUhQ==";
const IV: &str = "r7BXXKkLb8qrSNn05n0qiA==";
const DATA: &str = "CiyLU1Aw2KjvrjMdj8YKliAjtP4gsMZMQmRzooG2xrDcvSnxIMXFufNstNGTyaGS9uT5geRa0W4oTOb1WT7fJlAC+oNPdbB+3hVbJSRgv+4lGOETKUQz6OYStslQ142dNCuabNPGBzlooOmB231qMM85d2/fV6ChevvXvQP8Hkue1poOFtnEtpyxVLW1zAo6/1Xx1COxFvrc2d7UL/lmHInNlxuacJXwu0fjpXfz/YqYzBIBzD6WUfTIF9GRHpOn/Hz7saL8xz+W//FRAUid1OksQaQx4CMs8LOddcQhULW4ucetDf96JcR3g0gfRK4PC7E/r7Z6xNrXd2UIeorGj5Ef7b1pJAYB6Y5anaHqZ9J6nKEBvB4DnNLIVWSgARns/8wR2SiRS7MNACwTyrGvt9ts8p12PKFdlqYTopNHR1Vf7XjfhQlVsAJdNiKdYmYVoKlaRv85IfVunYzO0IKXsyl7JCUjCpoG20f0a04COwfneQAGGwd5oa+T8yO5hzuyDb/XcxxmK01EpqOyuxINew==";
const OPENID: &str = "oGZUI0egBJY1zhBYw2KhdUfwVJJE";

/// A gateway whose only app is the test vector's.
async fn vector_gateway(wx: &FakeWechat, accounts: &str) -> Gateway {
    let secret = wx.add_app_with_id(APPID);
    GatewayBuilder::new(wx)
        .rust_log("trace")
        .no_apps()
        .app(APPID, &secret)
        .file("accounts.toml", accounts)
        .section("[accounts]\nfile = \"accounts.toml\"")
        .start()
        .await
}

async fn vector_login(
    wx: &FakeWechat,
    gw: &Gateway,
    code: &str,
    openid: &str,
    key: &str,
) -> String {
    wx.add_code_with_key(APPID, code, openid, None, key);
    let r = gw.login_body(json!({"code": code})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["token"].as_str().unwrap().to_string()
}

async fn post(gw: &Gateway, path: &str, token: Option<&str>, body: Value) -> Resp {
    let mut req = client().post(gw.url(path)).body(body.to_string());
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    send(req).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_test_vector_decrypts_and_anything_else_fails() {
    let wx = FakeWechat::start().await;
    let gw = vector_gateway(&wx, "").await;
    let token = vector_login(&wx, &gw, "c-vector", OPENID, KEY).await;

    let r = post(
        &gw,
        "/wx/decrypt",
        Some(&token),
        json!({"encryptedData": DATA, "iv": IV}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let data = &r.json()["data"];
    assert_eq!(data["openId"], OPENID);
    assert_eq!(data["unionId"], "ocMvos6NjeKLIBqg5Mr9QjxrP1FA");
    assert_eq!(data["watermark"]["appid"], APPID);

    let mut tampered = DATA.as_bytes().to_vec();
    tampered[100] = if tampered[100] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let other_app = encrypt(
        KEY,
        IV,
        &json!({"watermark": {"appid": "wx0000000000000000"}}),
    );
    let truncated = &DATA[..DATA.len() - 24];
    for (what, body) in [
        ("tampered", json!({"encryptedData": tampered, "iv": IV})),
        ("another app", json!({"encryptedData": other_app, "iv": IV})),
        (
            "bad base64",
            json!({"encryptedData": "***not base64***", "iv": IV}),
        ),
        ("bad iv", json!({"encryptedData": DATA, "iv": "AAAA"})),
        ("bad padding", json!({"encryptedData": truncated, "iv": IV})),
    ] {
        let r = post(&gw, "/wx/decrypt", Some(&token), body).await;
        let e = assert_error(&r, 400, "decrypt_failed");
        assert!(
            e["message"].as_str().unwrap().contains("wx.login"),
            "{what}"
        );
    }
    for body in [
        json!({"iv": IV}),
        json!({"encryptedData": DATA}),
        json!({"encryptedData": "", "iv": IV}),
    ] {
        let r = post(&gw, "/wx/decrypt", Some(&token), body).await;
        assert_error(&r, 400, "invalid_request");
    }
    let r = post(&gw, "/wx/decrypt", Some(&token), json!("nope")).await;
    assert_error(&r, 400, "invalid_request");
    let r = post(
        &gw,
        "/wx/decrypt",
        None,
        json!({"encryptedData": DATA, "iv": IV}),
    )
    .await;
    assert_error(&r, 401, "unauthenticated");
    let r = gw.call("GET", "/wx/decrypt", Some(&token)).await;
    assert_error(&r, 405, "method_not_allowed");

    // another user of the same app cannot open data that names the vector's user
    let other = vector_login(&wx, &gw, "c-other", "oSomeoneElse", KEY).await;
    let r = post(
        &gw,
        "/wx/decrypt",
        Some(&other),
        json!({"encryptedData": DATA, "iv": IV}),
    )
    .await;
    assert_error(&r, 400, "decrypt_failed");

    let m = gw.metrics().await;
    assert_eq!(
        metric_sum(&m, "wxgate_decrypt_total", "outcome=\"ok\""),
        1.0,
        "{m}"
    );
    assert_eq!(
        metric_sum(&m, "wxgate_decrypt_total", "outcome=\"decrypt_failed\""),
        6.0
    );
    let logs = gw.logs();
    assert!(
        !logs.contains(KEY.trim_end_matches('=')),
        "the session_key is in the logs"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_legacy_phone_shape_binds_like_the_code_shape() {
    let wx = FakeWechat::start().await;
    let accounts = "[phone]\n\"13800138000\" = \"acct-1\"\n\"13900139000\" = \"acct-2\"\n";
    let gw = vector_gateway(&wx, accounts).await;
    let key = STANDARD.encode([7u8; 16]);
    let iv = STANDARD.encode([9u8; 16]);
    let token = vector_login(&wx, &gw, "c-p1", "oPhoneUser", &key).await;
    let phone = |pure: &str| {
        json!({"phoneNumber": pure, "purePhoneNumber": pure, "countryCode": "86",
               "watermark": {"appid": APPID, "timestamp": 1}})
    };
    let body = json!({"encryptedData": encrypt(&key, &iv, &phone("13800138000")), "iv": iv});
    let r = post(&gw, "/wx/phone", Some(&token), body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["phone_number"], "+8613800138000");
    assert_eq!(r.json()["account_id"], "acct-1");
    let b = gw.binding(APPID, "oPhoneUser").await;
    assert_eq!(b.status, 200, "{}", b.text());
    assert!(b.text().contains("+8613800138000"), "{}", b.text());
    assert_eq!(wx.calls("/wxa/business/getuserphonenumber"), 0);

    // a phone of another account: 409, nothing changes
    let body = json!({"encryptedData": encrypt(&key, &iv, &phone("13900139000")), "iv": iv});
    let r = post(&gw, "/wx/phone", Some(&token), body).await;
    assert_error(&r, 409, "account_conflict");
    assert_eq!(gw.session(&token).await.json()["account_id"], "acct-1");

    // decrypted data without the phone fields, or sealed for another app
    let body = json!({"encryptedData": encrypt(&key, &iv, &json!({"watermark": {"appid": APPID}})), "iv": iv});
    assert_error(
        &post(&gw, "/wx/phone", Some(&token), body).await,
        400,
        "decrypt_failed",
    );
    let mut foreign = phone("13800138000");
    foreign["watermark"]["appid"] = json!("wx0000000000000000");
    let body = json!({"encryptedData": encrypt(&key, &iv, &foreign), "iv": iv});
    assert_error(
        &post(&gw, "/wx/phone", Some(&token), body).await,
        400,
        "decrypt_failed",
    );

    // with both shapes, `code` wins
    let info = common::fake_tokens::phone_info("13800138000", json!("86"), APPID);
    wx.add_phone_info("pc-1", APPID, info);
    let body = json!({"code": "pc-1", "encryptedData": "garbage", "iv": "garbage"});
    let r = post(&gw, "/wx/phone", Some(&token), body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(wx.calls("/wxa/business/getuserphonenumber"), 1);

    let m = gw.metrics().await;
    assert_eq!(
        metric_sum(&m, "wxgate_phone_total", "outcome=\"ok\""),
        2.0,
        "{m}"
    );
    assert_eq!(
        metric_sum(&m, "wxgate_phone_total", "outcome=\"account_conflict\""),
        1.0
    );
    assert_eq!(
        metric_sum(&m, "wxgate_decrypt_total", "outcome=\"decrypt_failed\""),
        2.0
    );
}
