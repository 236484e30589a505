//! The accounts file parser (src/accounts/file.rs) and the phone normaliser
//! (src/accounts/phone.rs).
//!
//! Never panics. Every `[phone]` key of a parsed file is canonical E.164; `normalize` and
//! `from_parts` give `+` and 8–15 digits not starting with 0, or nothing, and a canonical
//! number normalises to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wxgate::accounts::AccountsFile;
use wxgate::accounts::phone::{from_parts, normalize};

fn check_e164(input: &str, e164: &str) {
    let digits = e164
        .strip_prefix('+')
        .unwrap_or_else(|| panic!("{input:?} -> {e164:?}"));
    assert!((8..=15).contains(&digits.len()), "{input:?} -> {e164:?}");
    assert!(
        digits.bytes().all(|b| b.is_ascii_digit()),
        "{input:?} -> {e164:?}"
    );
    assert!(!digits.starts_with('0'), "{input:?} -> {e164:?}");
    assert_eq!(
        normalize(e164).as_deref(),
        Some(e164),
        "not idempotent: {input:?}"
    );
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(file) = AccountsFile::parse(text) {
        for key in file.phone.keys() {
            check_e164(key, key);
        }
        assert_eq!(
            file.len(),
            file.openid.len() + file.unionid.len() + file.phone.len()
        );
    }
    for line in text.lines().take(64) {
        if let Some(e164) = normalize(line) {
            check_e164(line, &e164);
        }
        if let Some((cc, national)) = line.split_once('|') {
            if let Some(e164) = from_parts(cc, national) {
                check_e164(line, &e164);
            }
        }
    }
});
