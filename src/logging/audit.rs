//! The audit log (CONTRACT section 11): one JSON object per identity event, on the same
//! output as the other logs, whatever `[log] format`, `[log] level` or `RUST_LOG` say.
//!
//! An [`Audit`] is started where a request begins (its request id and client IP), filled
//! in as the handler learns who the user is, and written once with the event's name and
//! outcome. Phones are masked (`+86138****8000`); nothing that is a token, a
//! `session_key`, a code or a secret has a field here.

use std::net::IpAddr;
use std::time::SystemTime;

use http::HeaderMap;
use serde::Serialize;

use super::{ACCESS, append};

/// An identity event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    Login,
    LoginFailed,
    PhoneVerified,
    BindingDeleted,
    SessionsRevoked,
    Logout,
    SessionEvicted,
}

/// What is known of an identity event so far.
#[derive(Debug, Default)]
pub struct Audit {
    pub request_id: Option<String>,
    pub client_ip: Option<IpAddr>,
    pub appid: Option<String>,
    pub openid: Option<String>,
    pub account_id: Option<String>,
    /// E.164; masked when written.
    pub phone: Option<String>,
}

#[derive(Serialize)]
struct Line<'a> {
    target: &'static str,
    event: Event,
    time: String,
    request_id: Option<&'a str>,
    appid: Option<&'a str>,
    openid: Option<&'a str>,
    account_id: Option<&'a str>,
    client_ip: Option<String>,
    outcome: &'a str,
    phone: Option<String>,
}

impl Audit {
    /// An event of the request with these headers (its `X-Request-Id`, as the router set
    /// it) from `client_ip`.
    pub fn of_request(headers: &HeaderMap, client_ip: IpAddr) -> Self {
        Self {
            request_id: headers
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            client_ip: Some(client_ip),
            ..Self::default()
        }
    }

    /// Write the event with `outcome` (`ok` or an error code), if logging is set up.
    pub fn write(&self, event: Event, outcome: &str) {
        let Some((batched, _)) = ACCESS.get() else {
            return;
        };
        let mut text = self.line(event, outcome, SystemTime::now());
        text.push('\n');
        append(batched, text.as_bytes());
    }

    fn line(&self, event: Event, outcome: &str, now: SystemTime) -> String {
        let line = Line {
            target: "wxgate::audit",
            event,
            time: humantime::format_rfc3339_micros(now).to_string(),
            request_id: self.request_id.as_deref(),
            appid: self.appid.as_deref(),
            openid: self.openid.as_deref(),
            account_id: self.account_id.as_deref(),
            client_ip: self.client_ip.map(|ip| ip.to_canonical().to_string()),
            outcome,
            phone: self.phone.as_deref().map(mask),
        };
        serde_json::to_string(&line).unwrap_or_default()
    }
}

/// `+<country code><first three>***…<last four>` of an E.164 number: every digit of the
/// national number between its first three and last four as `*`. A number too short to
/// keep seven digits is masked whole but for the country code.
pub fn mask(e164: &str) -> String {
    let digits = e164.trim_start_matches('+');
    let cc = country_code_len(digits);
    let (code, national) = digits.split_at(cc.min(digits.len()));
    let n = national.len();
    let masked: String = national
        .char_indices()
        .map(|(i, c)| {
            if n >= 8 && (i < 3 || i >= n - 4) {
                c
            } else {
                '*'
            }
        })
        .collect();
    format!("+{code}{masked}")
}

/// The length of the ITU-T E.164 country code that starts `digits` (1, 2 or 3 digits).
fn country_code_len(digits: &str) -> usize {
    const TWO: [&str; 44] = [
        "20", "27", "30", "31", "32", "33", "34", "36", "39", "40", "41", "43", "44", "45", "46",
        "47", "48", "49", "51", "52", "53", "54", "55", "56", "57", "58", "60", "61", "62", "63",
        "64", "65", "66", "81", "82", "84", "86", "90", "91", "92", "93", "94", "95", "98",
    ];
    match digits.as_bytes().first() {
        Some(b'1' | b'7') => 1,
        _ if digits.get(..2).is_some_and(|p| TWO.contains(&p)) => 2,
        _ => 3,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones_keep_country_code_first_three_and_last_four() {
        assert_eq!(mask("+8613800138000"), "+86138****8000");
        assert_eq!(mask("+14155552671"), "+1415***2671");
        assert_eq!(mask("+447911123456"), "+44791***3456");
        assert_eq!(mask("+85291234567"), "+852912*4567");
        assert_eq!(mask("+8521234"), "+852****");
    }

    #[test]
    fn a_line_has_every_field_and_no_more() {
        let audit = Audit {
            request_id: Some("r-1".into()),
            client_ip: Some(
                "::ffff:10.0.0.7"
                    .parse()
                    .unwrap_or(IpAddr::from([0, 0, 0, 0])),
            ),
            appid: Some("wx1".into()),
            openid: None,
            account_id: None,
            phone: Some("+8613800138000".into()),
        };
        let line = audit.line(Event::LoginFailed, "invalid_code", SystemTime::UNIX_EPOCH);
        let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        assert_eq!(v["target"], "wxgate::audit");
        assert_eq!(v["event"], "login_failed");
        assert_eq!(v["time"], "1970-01-01T00:00:00.000000Z");
        assert_eq!(v["client_ip"], "10.0.0.7");
        assert_eq!(v["phone"], "+86138****8000");
        assert!(v["openid"].is_null() && v["account_id"].is_null());
        assert_eq!(v.as_object().map(|o| o.len()), Some(10));
    }
}
