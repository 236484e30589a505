//! The access log: one line per request, written straight into the thread's log buffer.
//!
//! Every request ends with this line, so it is formatted here by hand rather than through
//! the generic event formatter, in exactly the shape that formatter gives the gateway's
//! other lines (text or JSON, the same timestamp, level, target and field order), and only
//! when the `wxgate::access` target is enabled at `info`. The date and time to the second
//! are formatted once per second per thread. Nothing here sees a token or a secret: the
//! fields are the method, path, route label, status, latency, request id and peer.

use std::cell::RefCell;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::Method;

use crate::config::LogFormat;

/// One finished request, as the access log shows it.
pub struct AccessLine<'a> {
    pub method: &'a Method,
    pub path: &'a str,
    pub route: &'a str,
    pub status: u16,
    pub latency: Duration,
    pub request_id: &'a str,
    /// The socket peer's address, as text.
    pub peer: &'a str,
}

thread_local! {
    /// The second last formatted on this thread, and its text up to the seconds.
    static CLOCK: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
}

/// The RFC 3339 UTC time with microseconds, as the event formatter writes it.
fn timestamp(out: &mut String, now: SystemTime) {
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    CLOCK.with(|clock| {
        let mut clock = clock.borrow_mut();
        if clock.0 != since.as_secs() {
            let whole = UNIX_EPOCH + Duration::from_secs(since.as_secs());
            let text = humantime::format_rfc3339_seconds(whole).to_string();
            clock.1 = text.trim_end_matches('Z').to_string();
            clock.0 = since.as_secs();
        }
        out.push_str(&clock.1);
    });
    out.push('.');
    let micros = since.subsec_micros();
    for place in [100_000, 10_000, 1_000, 100, 10, 1] {
        out.push(char::from(b'0' + (micros / place % 10) as u8));
    }
    out.push('Z');
}

/// Milliseconds with microsecond precision (`1.975`).
fn millis(out: &mut String, latency: Duration) {
    let micros = latency.as_micros();
    decimal(out, micros / 1000);
    out.push('.');
    let frac = micros % 1000;
    for digit in [frac / 100, frac / 10 % 10, frac % 10] {
        out.push(char::from(b'0' + digit as u8));
    }
}

/// An unsigned integer in decimal, without the formatting machinery.
fn decimal(out: &mut String, mut n: u128) {
    let mut digits = [0u8; 39];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend(digits[i..].iter().map(|d| char::from(*d)));
}

/// A string as `{:?}` shows it (quoted, escaped), without the formatting machinery for
/// the plain characters that make up nearly every request id.
fn debug_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            other => out.extend(other.escape_debug()),
        }
    }
    out.push('"');
}

/// A JSON string literal.
fn json_str(out: &mut String, s: &str) {
    if s.bytes()
        .all(|b| (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\')
    {
        out.push('"');
        out.push_str(s);
        out.push('"');
        return;
    }
    match serde_json::to_string(s) {
        Ok(quoted) => out.push_str(&quoted),
        Err(_) => out.push_str("\"\""),
    }
}

impl AccessLine<'_> {
    /// The line, newline included.
    pub fn format(&self, format: LogFormat, now: SystemTime, out: &mut String) {
        match format {
            LogFormat::Text => self.text(now, out),
            LogFormat::Json => self.json(now, out),
        }
    }

    fn text(&self, now: SystemTime, out: &mut String) {
        timestamp(out, now);
        out.push_str("  INFO wxgate::access: method=");
        out.push_str(self.method.as_str());
        out.push_str(" path=");
        out.push_str(self.path);
        out.push_str(" route=");
        out.push_str(self.route);
        out.push_str(" status=");
        decimal(out, u128::from(self.status));
        out.push_str(" latency_ms=");
        millis(out, self.latency);
        out.push_str(" request_id=");
        debug_str(out, self.request_id);
        out.push_str(" peer=");
        out.push_str(self.peer);
        out.push('\n');
    }

    fn json(&self, now: SystemTime, out: &mut String) {
        out.push_str("{\"timestamp\":\"");
        timestamp(out, now);
        out.push_str("\",\"level\":\"INFO\",\"method\":");
        json_str(out, self.method.as_str());
        out.push_str(",\"path\":");
        json_str(out, self.path);
        out.push_str(",\"route\":");
        json_str(out, self.route);
        out.push_str(",\"status\":");
        decimal(out, u128::from(self.status));
        out.push_str(",\"latency_ms\":\"");
        millis(out, self.latency);
        out.push_str("\",\"request_id\":");
        json_str(out, self.request_id);
        out.push_str(",\"peer\":");
        json_str(out, self.peer);
        out.push_str(",\"target\":\"wxgate::access\"}\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line() -> AccessLine<'static> {
        AccessLine {
            method: &Method::GET,
            path: "/pub/x",
            route: "/pub/",
            status: 502,
            latency: Duration::from_micros(105),
            request_id: "a\"b\\c",
            peer: "127.0.0.1",
        }
    }

    /// The very lines the generic formatter wrote for this request (text and JSON).
    #[test]
    fn lines_match_the_event_formatter() {
        let at = UNIX_EPOCH + Duration::from_micros(1_796_174_713_161_427);
        let mut text = String::new();
        line().format(LogFormat::Text, at, &mut text);
        assert_eq!(
            text,
            "2026-12-02T01:25:13.161427Z  INFO wxgate::access: method=GET path=/pub/x \
             route=/pub/ status=502 latency_ms=0.105 request_id=\"a\\\"b\\\\c\" peer=127.0.0.1\n"
        );
        let mut json = String::new();
        line().format(LogFormat::Json, at, &mut json);
        assert_eq!(
            json,
            "{\"timestamp\":\"2026-12-02T01:25:13.161427Z\",\"level\":\"INFO\",\"method\":\"GET\",\
             \"path\":\"/pub/x\",\"route\":\"/pub/\",\"status\":502,\"latency_ms\":\"0.105\",\
             \"request_id\":\"a\\\"b\\\\c\",\"peer\":\"127.0.0.1\",\"target\":\"wxgate::access\"}\n"
        );
        let parsed: Result<serde_json::Value, _> = serde_json::from_str(&json);
        assert!(parsed.is_ok_and(|v| v["request_id"] == "a\"b\\c"));
    }

    #[test]
    fn the_cached_second_moves_on() {
        let mut out = String::new();
        timestamp(&mut out, UNIX_EPOCH + Duration::from_millis(1_500));
        out.push(' ');
        timestamp(&mut out, UNIX_EPOCH + Duration::from_millis(2_000_250));
        assert_eq!(
            out,
            "1970-01-01T00:00:01.500000Z 1970-01-01T00:33:20.250000Z"
        );
    }
}

#[cfg(test)]
mod escaping {
    use super::*;

    /// The hand-written escapes agree with `{:?}`, `{}` and serde_json on any string.
    #[test]
    fn hand_written_formatting_agrees_with_the_standard_one() {
        for s in [
            "",
            "plain-id",
            "a\"b\\c",
            "tab\there",
            "nl\n",
            "é中",
            "\u{7f}\u{1b}[31m",
        ] {
            let mut ours = String::new();
            debug_str(&mut ours, s);
            assert_eq!(ours, format!("{s:?}"));
            let mut json = String::new();
            json_str(&mut json, s);
            assert_eq!(
                serde_json::from_str::<String>(&json).ok().as_deref(),
                Some(s)
            );
        }
        for n in [0u128, 7, 10, 404, 65535, u128::from(u64::MAX)] {
            let mut ours = String::new();
            decimal(&mut ours, n);
            assert_eq!(ours, n.to_string());
        }
        let mut ms = String::new();
        millis(&mut ms, Duration::from_micros(12_034_005));
        assert_eq!(ms, "12034.005");
    }
}
