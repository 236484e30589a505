//! The path normal form (contract section 5): `normalize`, `normal_uri`, `without_params`.
//!
//! Never panics; a normalized path starts with `/`, is its own normal form (idempotent),
//! and has no `//`, no `.`/`..` segment (also with `;params`), no backslash; `normal_uri`
//! agrees with `normalize` and keeps the query.
#![no_main]

use std::borrow::Cow;

use http::Uri;
use libfuzzer_sys::fuzz_target;
use wxgate::router::path::{normal_uri, normalize, without_params};

/// `.` or `..`, alone or with `;params` (also written `%3B`), as a servlet container reads it.
fn is_dot_segment(segment: &str) -> bool {
    let lower = segment.to_ascii_lowercase();
    let name = lower.split(';').next().unwrap_or(&lower);
    let name = name.split("%3b").next().unwrap_or(name);
    name == "." || name == ".."
}

fn check_normal(input: &str, out: &str) {
    assert!(out.starts_with('/'), "{input:?} -> {out:?}");
    assert!(!out.contains("//"), "{input:?} -> {out:?}");
    assert!(!out.contains('\\'), "{input:?} -> {out:?}");
    assert!(!out.split('/').any(is_dot_segment), "{input:?} -> {out:?}");
    match normalize(out) {
        Ok(again) => {
            assert_eq!(again, out, "not idempotent: {input:?}");
            assert!(matches!(again, Cow::Borrowed(_)), "{input:?} -> {out:?}");
        }
        Err(e) => panic!("{input:?} -> {out:?}, which is refused: {e}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(path) = std::str::from_utf8(data) else {
        return;
    };
    let path = path.split('?').next().unwrap_or(path);
    if let Ok(out) = normalize(path) {
        check_normal(path, &out);
        if let Some(plain) = without_params(&out) {
            assert!(!plain.contains(';'), "{out:?} -> {plain:?}");
            assert!(plain.len() < out.len());
        } else {
            assert!(!out.contains(';'));
        }
    }
    // The same path as a request target, with a query, through the Uri the server sees.
    let target = format!("{path}?q=%2e%2e/x");
    if let Ok(uri) = target.parse::<Uri>() {
        match (normal_uri(&uri), normalize(uri.path())) {
            (Ok(None), Ok(out)) => assert_eq!(out, uri.path()),
            (Ok(Some(normal)), Ok(out)) => {
                assert_eq!(normal.path(), out, "{target:?}");
                assert_eq!(normal.query(), uri.query(), "{target:?}");
                check_normal(uri.path(), normal.path());
            }
            (Err(_), Err(_)) => {}
            (Ok(_), Err(e)) => panic!("{target:?}: normal_uri passes what normalize refuses: {e}"),
            (Err(e), Ok(out)) => panic!("{target:?}: normal_uri refuses {out:?}: {e}"),
        }
    }
    let _ = without_params(path);
});
