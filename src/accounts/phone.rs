//! Phone numbers in E.164.
//!
//! The accounts file may name a phone as E.164 (`+8613800138000`) or as a bare mainland
//! number (`13800138000`, read as +86); WeChat gives a country code and a national number.
//! Both end up as one canonical `+<digits>` string so that they compare equal.

/// Canonical E.164 for an accounts-file key, or `None` if it is not a phone number.
pub fn normalize(input: &str) -> Option<String> {
    let cleaned: String = input
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '(' | ')'))
        .collect();
    if let Some(digits) = cleaned.strip_prefix('+') {
        return e164(digits);
    }
    if let Some(digits) = cleaned.strip_prefix("00") {
        return e164(digits);
    }
    if cleaned.len() == 11 && cleaned.starts_with('1') && all_digits(&cleaned) {
        return Some(format!("+86{cleaned}"));
    }
    None
}

/// E.164 from WeChat's `countryCode` and `purePhoneNumber`.
pub fn from_parts(country_code: &str, national: &str) -> Option<String> {
    let cc = country_code.trim().trim_start_matches('+');
    let national = national.trim();
    if cc.is_empty() || !all_digits(cc) || !all_digits(national) {
        return None;
    }
    e164(&format!("{cc}{national}"))
}

fn e164(digits: &str) -> Option<String> {
    let ok = (8..=15).contains(&digits.len()) && all_digits(digits) && !digits.starts_with('0');
    ok.then(|| format!("+{digits}"))
}

fn all_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_mainland_and_e164() {
        assert_eq!(normalize("13800138000").as_deref(), Some("+8613800138000"));
        assert_eq!(
            normalize("+86 138-0013-8000").as_deref(),
            Some("+8613800138000")
        );
        assert_eq!(normalize("+14155550123").as_deref(), Some("+14155550123"));
        assert_eq!(normalize("0012025550123").as_deref(), Some("+12025550123"));
        assert_eq!(normalize("12345"), None);
        assert_eq!(normalize("+86abc"), None);
        assert_eq!(
            from_parts("86", "13800138000").as_deref(),
            Some("+8613800138000")
        );
        assert_eq!(
            from_parts("1", "4155550123").as_deref(),
            Some("+14155550123")
        );
        assert_eq!(from_parts("", "4155550123"), None);
    }
}
