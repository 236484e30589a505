//! The access log: one line per request, written straight into the thread's log buffer.
//!
//! Every request ends with this line, so it is formatted here by hand rather than through
//! the generic event formatter, in exactly the shape that formatter gives the gateway's
//! other lines (text or JSON, the same timestamp, level, target and field order), and only
//! when the `wxgate::access` target is enabled at `info`. The date and time to the second
//! are formatted once per second per thread. Nothing here sees a token or a secret: the
//! fields are the method, path, route label, status, latency, request id and peer.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::net::IpAddr;
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
    pub peer: IpAddr,
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
    let _ = write!(out, ".{:06}Z", since.subsec_micros());
}

/// Milliseconds with microsecond precision (`1.975`).
fn millis(out: &mut String, latency: Duration) {
    let micros = latency.as_micros();
    let _ = write!(out, "{}.{:03}", micros / 1000, micros % 1000);
}

/// A JSON string literal.
fn json_str(out: &mut String, s: &str) {
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
        let _ = write!(out, " status={} latency_ms=", self.status);
        millis(out, self.latency);
        let _ = writeln!(out, " request_id={:?} peer={}", self.request_id, self.peer);
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
        let _ = write!(out, ",\"status\":{},\"latency_ms\":\"", self.status);
        millis(out, self.latency);
        out.push_str("\",\"request_id\":");
        json_str(out, self.request_id);
        let _ = writeln!(
            out,
            ",\"peer\":\"{}\",\"target\":\"wxgate::access\"}}",
            self.peer
        );
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
            peer: IpAddr::from([127, 0, 0, 1]),
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
