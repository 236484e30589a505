//! The fake WeChat's access_token and phone endpoints, modelled on WECHAT.md:
//! `POST /cgi-bin/stable_token` in normal mode hands out the same token while it has at
//! least the renewal window (5 minutes, shrinkable for tests) left, and a new one inside
//! the window, the old one staying valid until its own expiry; `getuserphonenumber` checks
//! the access_token with [`token_gate`] (40001 unknown or invalidated, 42001 expired; the
//! other token endpoints of `fake_services.rs` share it) and answers single-use
//! phone codes; a code made for one user (`add_phone_code_for`) is refused with 40029
//! unless the body's `openid` is that user's, as WeChat checks. Test controls: invalidate
//! the current token (as a `force_refresh` elsewhere would; optionally with stable_token
//! still handing it out a few times), queue token errors, fail stable_token, and count
//! everything.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::fake_wechat::{FakeWechat, WxState, wx_error};
use super::random_hex;

/// One access_token WeChat handed out.
struct Issued {
    appid: String,
    token: String,
    expires_at: Instant,
    invalid: bool,
}

/// What a phone code answers.
#[derive(Clone)]
enum PhoneEntry {
    Valid {
        owner: String,
        /// The user the button made the code for; `None`: not checked.
        openid: Option<String>,
        info: Value,
        used: bool,
    },
    Error(i64),
}

/// Token and phone state of the fake.
pub struct TokenState {
    lifetime: Duration,
    window: Duration,
    issued: Vec<Issued>,
    current: HashMap<String, usize>,
    phone_codes: HashMap<String, PhoneEntry>,
    queued_errors: VecDeque<i64>,
    stable_error: Option<i64>,
    /// stable_token answers still handing out an invalidated token (a lagging invalidation).
    stale_answers: usize,
    rejected: usize,
    force_refreshes: usize,
    phone_openid_refusals: usize,
}

impl Default for TokenState {
    fn default() -> Self {
        TokenState {
            lifetime: Duration::from_secs(7200),
            window: Duration::from_secs(300),
            issued: Vec::new(),
            current: HashMap::new(),
            phone_codes: HashMap::new(),
            queued_errors: VecDeque::new(),
            stable_error: None,
            stale_answers: 0,
            rejected: 0,
            force_refreshes: 0,
            phone_openid_refusals: 0,
        }
    }
}

/// `POST /cgi-bin/stable_token` with a JSON body.
pub(super) fn stable_token(state: &Mutex<WxState>, body: &[u8]) -> Value {
    let mut st = state.lock().unwrap();
    let Ok(req) = serde_json::from_slice::<Value>(body) else {
        return wx_error(47001, "data format error");
    };
    let field = |k: &str| req[k].as_str().unwrap_or("").to_string();
    if field("grant_type") != "client_credential" {
        return wx_error(40002, "invalid grant_type");
    }
    let appid = field("appid");
    let Some(secret) = st.apps.get(&appid).cloned() else {
        return wx_error(40013, "invalid appid");
    };
    if field("secret") != secret {
        return wx_error(40125, "invalid appsecret");
    }
    let tk = &mut st.tokens;
    if let Some(errcode) = tk.stable_error {
        return wx_error(errcode, "simulated stable_token failure");
    }
    let now = Instant::now();
    let force = req["force_refresh"].as_bool().unwrap_or(false);
    if force {
        tk.force_refreshes += 1;
    }
    if let Some(&i) = tk.current.get(&appid) {
        let t = &mut tk.issued[i];
        let left = t.expires_at.saturating_duration_since(now);
        if force {
            t.invalid = true;
        } else if !t.invalid && left >= tk.window {
            return json!({"access_token": t.token, "expires_in": left.as_secs()});
        } else if t.invalid && tk.stale_answers > 0 && !left.is_zero() {
            tk.stale_answers -= 1;
            return json!({"access_token": t.token, "expires_in": left.as_secs()});
        }
    }
    let token = format!("ACCESSTOKEN-{}", random_hex(20));
    tk.issued.push(Issued {
        appid: appid.clone(),
        token: token.clone(),
        expires_at: now + tk.lifetime,
        invalid: false,
    });
    tk.current.insert(appid, tk.issued.len() - 1);
    json!({"access_token": token, "expires_in": tk.lifetime.as_secs()})
}

/// The access_token check every token endpoint runs first: a queued error, else 40001 for
/// an unknown or invalidated token, 42001 for an expired one; `Ok(appid)` of a valid one.
pub(super) fn token_gate(
    tk: &mut TokenState,
    q: &HashMap<String, String>,
) -> Result<String, Value> {
    if let Some(errcode) = tk.queued_errors.pop_front() {
        return Err(wx_error(errcode, "simulated token error"));
    }
    let presented = q.get("access_token").map(String::as_str).unwrap_or("");
    let now = Instant::now();
    match tk.issued.iter().find(|t| t.token == presented) {
        Some(t) if t.expires_at <= now && !t.invalid => {
            tk.rejected += 1;
            Err(wx_error(42001, "access_token expired"))
        }
        Some(t) if !t.invalid => Ok(t.appid.clone()),
        _ => {
            tk.rejected += 1;
            Err(wx_error(
                40001,
                "invalid credential, access_token is invalid or not latest",
            ))
        }
    }
}

/// `POST /wxa/business/getuserphonenumber?access_token=...` with `{"code", "openid"?}`.
pub(super) fn phone_number(
    state: &Mutex<WxState>,
    q: &HashMap<String, String>,
    body: &[u8],
) -> Value {
    let mut st = state.lock().unwrap();
    let tk = &mut st.tokens;
    let appid = match token_gate(tk, q) {
        Ok(appid) => appid,
        Err(answer) => return answer,
    };
    let body = serde_json::from_slice::<Value>(body).unwrap_or(Value::Null);
    let code = body["code"].as_str().unwrap_or_default();
    let sent_openid = body["openid"].as_str();
    match tk.phone_codes.get_mut(code) {
        None => wx_error(40029, "invalid code"),
        Some(PhoneEntry::Error(errcode)) => wx_error(*errcode, "simulated error"),
        Some(PhoneEntry::Valid { owner, .. }) if *owner != appid => {
            wx_error(40013, "invalid appid")
        }
        Some(PhoneEntry::Valid {
            openid: Some(user), ..
        }) if sent_openid != Some(user.as_str()) => {
            tk.phone_openid_refusals += 1;
            wx_error(40029, "invalid code")
        }
        Some(PhoneEntry::Valid { used: true, .. }) => wx_error(40163, "code been used"),
        Some(PhoneEntry::Valid { info, used, .. }) => {
            *used = true;
            json!({"errcode": 0, "errmsg": "ok", "phone_info": info})
        }
    }
}

/// `phone_info` as WeChat sends it; `country` is a JSON string or number.
pub fn phone_info(pure: &str, country: Value, watermark_appid: &str) -> Value {
    let cc = match &country {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let full = if cc == "86" {
        pure.to_string()
    } else {
        format!("+{cc}{pure}")
    };
    json!({
        "phoneNumber": full,
        "purePhoneNumber": pure,
        "countryCode": country,
        "watermark": {"timestamp": super::now_secs(), "appid": watermark_appid},
    })
}

impl FakeWechat {
    fn tokens<R>(&self, f: impl FnOnce(&mut TokenState) -> R) -> R {
        f(&mut self.state.lock().unwrap().tokens)
    }

    /// A phone code of the first app for `pure` under country code `country` (a string).
    pub fn add_phone_code(&self, code: &str, pure: &str, country: &str) {
        let info = phone_info(pure, json!(country), &self.appid);
        self.add_phone_info(code, &self.appid.clone(), info);
    }

    /// A phone code owned by `appid` that answers `info` (see [`phone_info`]) once.
    pub fn add_phone_info(&self, code: &str, appid: &str, info: Value) {
        self.insert_phone_code(code, appid, None, info);
    }

    /// A phone code of the first app made by `openid`'s button: refused (40029, not
    /// consumed) unless the call's body carries that `openid`.
    pub fn add_phone_code_for(&self, code: &str, openid: &str, pure: &str, country: &str) {
        let info = phone_info(pure, json!(country), &self.appid);
        self.insert_phone_code(code, &self.appid.clone(), Some(openid), info);
    }

    fn insert_phone_code(&self, code: &str, appid: &str, openid: Option<&str>, info: Value) {
        let entry = PhoneEntry::Valid {
            owner: appid.to_string(),
            openid: openid.map(str::to_string),
            info,
            used: false,
        };
        self.tokens(|t| t.phone_codes.insert(code.to_string(), entry));
    }

    /// getuserphonenumber calls refused because the body's `openid` was not the code's.
    pub fn phone_openid_refusals(&self) -> usize {
        self.tokens(|t| t.phone_openid_refusals)
    }

    /// A phone code that always answers `errcode` (with a valid access_token).
    pub fn add_phone_error(&self, code: &str, errcode: i64) {
        self.tokens(|t| {
            t.phone_codes
                .insert(code.to_string(), PhoneEntry::Error(errcode))
        });
    }

    /// Tokens live `lifetime`; a new one is handed out once less than `window` is left.
    pub fn set_token_lifetime(&self, lifetime: Duration, window: Duration) {
        self.tokens(|t| (t.lifetime, t.window) = (lifetime, window));
    }

    /// Invalidate `appid`'s current token at WeChat (as a force_refresh elsewhere would):
    /// it now answers 40001 and the next stable_token call hands out a new one.
    pub fn invalidate_token(&self, appid: &str) {
        self.tokens(|t| {
            if let Some(&i) = t.current.get(appid) {
                t.issued[i].invalid = true;
            }
        });
    }

    /// Invalidate `appid`'s current token, but let stable_token hand it out `stale` more
    /// times (its answers lag behind the invalidation), then a new one.
    pub fn invalidate_token_lagging(&self, appid: &str, stale: usize) {
        self.invalidate_token(appid);
        self.tokens(|t| t.stale_answers = stale);
    }

    /// The next getuserphonenumber calls answer these errcodes, one each, whatever the
    /// token (the phone code is not consumed).
    pub fn queue_phone_errors(&self, errcodes: &[i64]) {
        self.queue_token_errors(errcodes);
    }

    /// The next calls to any endpoint that takes an access_token (phone, checksession,
    /// QR codes, subscribe send, risk rank) answer these errcodes, one each.
    pub fn queue_token_errors(&self, errcodes: &[i64]) {
        self.tokens(|t| t.queued_errors.extend(errcodes));
    }

    /// Calls refused for an invalid or expired access_token, on every token endpoint.
    pub fn rejected_calls(&self) -> usize {
        self.tokens(|t| t.rejected)
    }

    /// Make stable_token answer `errcode` (None: work again).
    pub fn fail_stable_token(&self, errcode: Option<i64>) {
        self.tokens(|t| t.stable_error = errcode);
    }

    /// The current token of `appid` at WeChat.
    pub fn current_token(&self, appid: &str) -> Option<String> {
        self.tokens(|t| t.current.get(appid).map(|&i| t.issued[i].token.clone()))
    }

    /// Every access_token ever handed out, oldest first.
    pub fn issued_tokens(&self) -> Vec<String> {
        self.tokens(|t| t.issued.iter().map(|i| i.token.clone()).collect())
    }

    /// getuserphonenumber calls refused for an invalid or expired access_token.
    pub fn rejected_token_calls(&self) -> usize {
        self.tokens(|t| t.rejected)
    }

    /// stable_token calls with `force_refresh: true`.
    pub fn force_refreshes(&self) -> usize {
        self.tokens(|t| t.force_refreshes)
    }
}
