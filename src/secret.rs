//! A wrapper for credentials that must never be printed.
//!
//! `Secret` holds an app secret, a `session_key` or an access_token. Its `Debug` and
//! `Display` print `***`, so a stray `{:?}` in a log line cannot leak it; the value is
//! reachable only through the explicit [`Secret::expose`].

use std::fmt;

/// A string credential whose formatting never shows its value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Box<str>);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into().into_boxed_str())
    }

    /// The value, for the one place that must send it (a WeChat call).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formatting_hides_the_value() {
        let s = Secret::new("tQY+38pdTVnAIWCBNiM1+A==");
        assert_eq!(format!("{s:?} {s}"), "*** ***");
        assert_eq!(s.expose(), "tQY+38pdTVnAIWCBNiM1+A==");
    }
}
