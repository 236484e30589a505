//! `${VAR}` expansion and `<key>_file` reading.
//!
//! Expansion walks the parsed TOML tree and rewrites every string value before serde sees
//! it, so a missing variable is reported with the key that used it. Secret files are read
//! here too; their contents are never logged.

use std::path::Path;

use toml::{Table, Value};

use super::ConfigError;

/// Replace `${VAR}` in every string of the tree. `$$` is not special; `${` without `}` is
/// an error.
pub fn expand_env(table: &mut Table) -> Result<(), ConfigError> {
    expand_table(table, "")
}

fn expand_table(table: &mut Table, path: &str) -> Result<(), ConfigError> {
    for (key, value) in table.iter_mut() {
        let here = if path.is_empty() {
            key.clone()
        } else {
            format!("{path}.{key}")
        };
        expand_value(value, &here)?;
    }
    Ok(())
}

fn expand_value(value: &mut Value, path: &str) -> Result<(), ConfigError> {
    match value {
        Value::String(s) if s.contains("${") => *s = expand_str(s, path)?,
        Value::Table(t) => expand_table(t, path)?,
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                expand_value(item, &format!("{path}[{i}]"))?;
            }
        }
        _ => {}
    }
    Ok(())
}

fn expand_str(input: &str, path: &str) -> Result<String, ConfigError> {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| ConfigError::key(path, "`${` without a closing `}`"))?;
        let name = &after[..end];
        if name.is_empty() {
            return Err(ConfigError::key(path, "empty `${}`"));
        }
        let value = std::env::var(name).map_err(|_| {
            ConfigError::key(path, format!("environment variable {name} is not set"))
        })?;
        out.push_str(&value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Resolve a key that may be given inline or as `<key>_file`: exactly one of the two.
pub fn inline_or_file(
    key: &str,
    inline: Option<String>,
    file: Option<String>,
    base: &Path,
) -> Result<Option<String>, ConfigError> {
    match (inline, file) {
        (Some(_), Some(_)) => Err(ConfigError::key(
            key,
            format!("give either `{key}` or `{key}_file`, not both"),
        )),
        (Some(value), None) => Ok(Some(value)),
        (None, Some(path)) => {
            let full = base.join(path);
            let content = std::fs::read_to_string(&full).map_err(|e| {
                ConfigError::key(
                    &format!("{key}_file"),
                    format!("cannot read {}: {e}", full.display()),
                )
            })?;
            Ok(Some(content.trim().to_string()))
        }
        (None, None) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_and_names_missing_variables() {
        // SAFETY: tests in this module are the only users of these variable names.
        unsafe { std::env::set_var("WXGATE_TEST_EXPAND", "abc") };
        assert_eq!(
            expand_str("x${WXGATE_TEST_EXPAND}y", "k").ok(),
            Some("xabcy".into())
        );
        let err = expand_str("${WXGATE_TEST_SURELY_MISSING}", "apps[0].secret");
        let message = err.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(message.contains("WXGATE_TEST_SURELY_MISSING"), "{message}");
        assert!(message.contains("apps[0].secret"), "{message}");
    }
}
