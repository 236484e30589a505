//! The normal form of a request path (contract section 5), checked before any routing.
//!
//! A path that a servlet container, PHP or a file system could read as another path is
//! refused: `.`/`..` segments (also with `;params`, as Tomcat and Jetty read `..;/`), `//`,
//! backslashes, an encoded `/`, `\`, `.` or NUL, double encoding (`%25` + two hex digits),
//! `%u` and other malformed escapes, and escapes that do not decode to UTF-8. Escaped
//! unreserved characters are decoded (RFC 3986 §6.2.2.2), and only then is anything
//! allocated. The query is never looked at.

use std::borrow::Cow;

use http::Uri;
use http::uri::PathAndQuery;

use crate::error::GatewayError;

/// The 400 for a path not in normal form, with a fixed message saying why.
macro_rules! not_normal {
    ($why:literal) => {
        GatewayError::invalid(concat!("the path is not in normal form: ", $why))
    };
}

/// The URI with its path in normal form: `None` when it already is (nothing allocated).
pub fn normal_uri(uri: &Uri) -> Result<Option<Uri>, GatewayError> {
    let Cow::Owned(path) = normalize(uri.path())? else {
        return Ok(None);
    };
    let path_and_query = match uri.query() {
        Some(query) => format!("{path}?{query}"),
        None => path,
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(
        PathAndQuery::try_from(path_and_query)
            .map_err(|_| GatewayError::invalid("the request target is not a valid path"))?,
    );
    Uri::from_parts(parts)
        .map(Some)
        .map_err(|_| GatewayError::invalid("the request target is not a valid path"))
}

/// The path in normal form, or why it cannot be put in it.
pub fn normalize(path: &str) -> Result<Cow<'_, str>, GatewayError> {
    let bytes = path.as_bytes();
    if bytes.first() != Some(&b'/') {
        return Err(not_normal!("it must start with `/`"));
    }
    if path.contains("//") {
        return Err(not_normal!("it has `//`"));
    }
    if path.contains('\\') {
        return Err(not_normal!("it has a backslash"));
    }
    if path.split('/').any(is_dot_segment) {
        return Err(not_normal!("it has a `.` or `..` segment"));
    }
    decode_unreserved(path)
}

/// `.` or `..`, alone or followed by path parameters (`;…`, also written `%3B…`).
fn is_dot_segment(segment: &str) -> bool {
    let rest = segment
        .strip_prefix("..")
        .or_else(|| segment.strip_prefix('.'));
    rest.is_some_and(|rest| {
        rest.is_empty()
            || rest.starts_with(';')
            || rest.get(..3).is_some_and(|p| p.eq_ignore_ascii_case("%3b"))
    })
}

/// Check every escape, decoding those of unreserved characters.
fn decode_unreserved(path: &str) -> Result<Cow<'_, str>, GatewayError> {
    let bytes = path.as_bytes();
    let mut decoded: Option<String> = None;
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'%' {
            i += 1;
            continue;
        }
        let byte =
            escaped_byte(bytes, i).ok_or_else(|| not_normal!("it has a malformed `%` escape"))?;
        match byte {
            b'/' | b'\\' | b'.' | 0 => {
                return Err(not_normal!("it has an encoded `/`, `\\`, `.` or NUL"));
            }
            b'%' if hex_digits_follow(bytes, i + 3) => {
                return Err(not_normal!(
                    "it is encoded twice (`%25` and two hex digits)"
                ));
            }
            b if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'~' => {
                let out = decoded.get_or_insert_with(|| String::with_capacity(path.len()));
                out.push_str(&path[copied..i]);
                out.push(char::from(b));
                copied = i + 3;
                i += 3;
            }
            0x80.. => i += 3 * utf8_sequence(bytes, i, byte)?,
            _ => i += 3,
        }
    }
    Ok(match decoded {
        Some(mut out) => {
            out.push_str(&path[copied..]);
            Cow::Owned(out)
        }
        None => Cow::Borrowed(path),
    })
}

/// The byte a `%XX` escape at `i` stands for; `None` when it is not two hex digits
/// (which is how `%u002e` fails).
fn escaped_byte(bytes: &[u8], i: usize) -> Option<u8> {
    let hex = |b: &u8| char::from(*b).to_digit(16);
    let high = hex(bytes.get(i + 1)?)?;
    let low = hex(bytes.get(i + 2)?)?;
    u8::try_from(high * 16 + low).ok()
}

/// Whether two hex digits follow at `i` once decoded: `%2541` and `%25%34%31` (which the
/// decoding of unreserved characters would turn into `%2541`) are both double encoding.
fn hex_digits_follow(bytes: &[u8], i: usize) -> bool {
    let decoded = |at: usize| match *bytes.get(at)? {
        b'%' => escaped_byte(bytes, at).map(|b| (b, 3)),
        b => Some((b, 1)),
    };
    decoded(i).is_some_and(|(first, len)| {
        first.is_ascii_hexdigit() && decoded(i + len).is_some_and(|(b, _)| b.is_ascii_hexdigit())
    })
}

/// The length, in escapes, of the UTF-8 sequence whose first escape (`first`) is at `i`;
/// an error when the escapes there do not spell one valid character.
fn utf8_sequence(bytes: &[u8], i: usize, first: u8) -> Result<usize, GatewayError> {
    let invalid = || not_normal!("it has escapes that are not UTF-8");
    let len = match first {
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF4 => 4,
        _ => return Err(invalid()),
    };
    let mut buf = [first, 0, 0, 0];
    for (k, slot) in buf.iter_mut().enumerate().take(len).skip(1) {
        let at = i + 3 * k;
        if bytes.get(at) != Some(&b'%') {
            return Err(invalid());
        }
        *slot = escaped_byte(bytes, at).ok_or_else(invalid)?;
    }
    std::str::from_utf8(&buf[..len]).map_err(|_| invalid())?;
    Ok(len)
}

/// The path with every segment's `;params` cut off, as servlet containers read it;
/// `None` when it has none (nothing allocated).
pub fn without_params(path: &str) -> Option<String> {
    if !path.contains(';') {
        return None;
    }
    let segments: Vec<&str> = path
        .split('/')
        .map(|s| s.split_once(';').map_or(s, |(name, _)| name))
        .collect();
    Some(segments.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_paths_pass_and_unreserved_escapes_are_decoded() {
        let cases = [
            ("/", "/"),
            ("/api/x", "/api/x"),
            ("/api/x.y", "/api/x.y"),
            ("/a/..b/c", "/a/..b/c"),
            ("/a/...", "/a/..."),
            ("/a%20b", "/a%20b"),
            ("/api/%41", "/api/A"),
            ("/ap%69/x", "/api/x"),
            ("/%7Euser/%2D%5f", "/~user/-_"),
            ("/x/%E4%BD%A0%e5%a5%bd", "/x/%E4%BD%A0%e5%a5%bd"),
            ("/x/%F0%9F%98%80", "/x/%F0%9F%98%80"),
            ("/x/%25", "/x/%25"),
            ("/x/%25zz", "/x/%25zz"),
            ("/x/%3B", "/x/%3B"),
            ("/x/a;b=1/c", "/x/a;b=1/c"),
            ("/x/你好", "/x/你好"),
        ];
        for (path, want) in cases {
            let got = normalize(path).map_err(|e| e.to_string());
            assert_eq!(got.as_deref(), Ok(want), "{path}");
        }
        assert!(matches!(normalize("/api/x"), Ok(Cow::Borrowed(_))));
    }

    #[test]
    fn paths_not_in_normal_form_are_refused() {
        for bad in [
            "/api/../x",
            "/api/./x",
            "/public/..;/api/x",
            "/public/.;/api/x",
            "/public/..;jsessionid=1/api/x",
            "/public/..%3B/api/x",
            "/public/.%3b/api/x",
            "//api",
            "/api//x",
            "/api\\x",
            "/api/%2e%2e/x",
            "/api%2Fx",
            "/api%5cx",
            "/api/%00",
            "/api/%252e%252e/x",
            "/api/%252F",
            "/api/%u002e%u002e/x",
            "/api/%c0%ae%c0%ae/x",
            "/api/%C0%AE",
            "/api/%e0%80%ae",
            "/api/%ed%a0%80",
            "/api/%f4%90%80%80",
            "/api/%80",
            "/api/%ff",
            "/api/%e4%bd",
            "/api/%e4%bdx",
            "/api/%e4%bd/",
            "/api/%zz",
            "/api/%4",
            "/api/%",
            "/api/..",
            "/.",
            "api",
            "*",
            "",
        ] {
            assert!(normalize(bad).is_err(), "{bad}");
        }
    }

    /// Found by fuzzing: `%25` followed by escaped hex digits decoded to `%25` and two hex
    /// digits, double encoding the gateway then forwarded (and `/%252e` reads as `..` to an
    /// upstream that decodes twice); its normal form was not its own normal form.
    #[test]
    fn double_encoding_through_escaped_hex_digits_is_refused() {
        for bad in [
            "/%254%34",
            "/%25%34%31",
            "/%25%341",
            "/static/%25%32%65%25%32%65/api",
        ] {
            assert!(normalize(bad).is_err(), "{bad}");
        }
        for good in ["/x/%25%25", "/x/%25%7A", "/x/%25-"] {
            let out = normalize(good).map_err(|e| e.to_string());
            let again = out.as_deref().map(|o| normalize(o).map(|c| c.into_owned()));
            assert!(matches!(again, Ok(Ok(_))), "{good}: {out:?}");
        }
    }

    #[test]
    fn path_parameters_are_cut_as_servlet_containers_do() {
        assert_eq!(without_params("/api/x"), None);
        assert_eq!(without_params("/api;a=1/x;b").as_deref(), Some("/api/x"));
    }

    #[test]
    fn the_uri_keeps_its_query_and_authority() {
        let uri: Uri = "http://h.example/ap%69/x?q=%69".parse().unwrap_or_default();
        let normal = normal_uri(&uri).ok().flatten().map(|u| u.to_string());
        assert_eq!(normal.as_deref(), Some("http://h.example/api/x?q=%69"));
        let plain: Uri = "/api/x?q=1".parse().unwrap_or_default();
        assert!(matches!(normal_uri(&plain), Ok(None)));
    }
}
