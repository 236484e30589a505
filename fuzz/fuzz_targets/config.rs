//! The config loader (src/config/: `Config::from_toml`, parse + expand + validate).
//!
//! Never panics. A value of a secret-bearing key (contract section 2: `[[apps]] secret`,
//! `[redis] url`, `nodes`, `encryption_key`, `[admin] token`, given inline or through
//! `<key>_file`) never appears in an error message, whatever its type and whatever else
//! the file holds, nor in a loaded config's `Debug` or summary. The fuzzed secret carries a
//! marker that nothing else in the file may hold; no message may show it.
//!
//! Input: a byte naming the secret key, a byte naming its shape, then text:
//! `before NUL after NUL toml`. The secret is `before MARK after`; `toml` is laid over a
//! loadable base document (merged when it parses, appended as text when it does not).
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use toml::{Table, Value};
use wxgate::config::Config;

const MARK: &str = "Qz7mK2xW";
/// The content of `secret.txt` beside the config: a secret read through `<key>_file`.
const FILE_SECRET: &str = "file-Qz7mK2xW-secret";

const BASE: &str = "[[apps]]\nappid = \"wx1\"\nsecret = \"app-secret\"\n\
[redis]\nurl = \"redis://127.0.0.1:6379/0\"\n\
encryption_key = \"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\"\n\
[[routes]]\nprefix = \"/api/\"\nupstream = \"http://127.0.0.1:9000\"\n";

/// The directory the config is "in", with `secret.txt` in it.
fn base_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("wxgate-fuzz-config-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let _ = std::fs::write(dir.join("secret.txt"), format!("  {FILE_SECRET}\n"));
        dir
    })
}

/// Where the secret goes: (section, key).
const SECRET_KEYS: [(&str, &str); 5] = [
    ("apps", "secret"),
    ("redis", "url"),
    ("redis", "encryption_key"),
    ("redis", "nodes"),
    ("admin", "token"),
];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Shape {
    Text,
    /// The secret as a bare (unquoted) word: a TOML syntax or type error.
    Bare,
    InArray,
    InTable,
    Int,
    Bool,
    /// `<key>_file` naming `secret.txt`.
    File,
    /// Both `<key>` and `<key>_file`.
    Both,
}

const SHAPES: [Shape; 8] = [
    Shape::Text,
    Shape::Bare,
    Shape::InArray,
    Shape::InTable,
    Shape::Int,
    Shape::Bool,
    Shape::File,
    Shape::Both,
];

/// The section's table, taken out of `root` (the last one of an array of tables).
fn take(root: &mut Table, name: &str) -> Table {
    match root.remove(name) {
        Some(Value::Table(t)) => t,
        Some(Value::Array(mut a)) => match a.pop() {
            Some(Value::Table(t)) => t,
            _ => Table::new(),
        },
        _ => Table::new(),
    }
}

fn put(root: &mut Table, name: &str, t: Table) {
    let value = if name == "apps" || name == "routes" {
        Value::Array(vec![Value::Table(t)])
    } else {
        Value::Table(t)
    };
    root.insert(name.to_string(), value);
}

/// Lay `over` on `root`, key by key within each section.
fn merge(root: &mut Table, over: Table) {
    for (name, value) in over {
        match value {
            Value::Table(keys) if root.contains_key(&name) => {
                let mut t = take(root, &name);
                t.extend(keys);
                put(root, &name, t);
            }
            other => {
                root.insert(name, other);
            }
        }
    }
}

/// Put the secret in place, in its shape.
fn place(root: &mut Table, (section, key): (&str, &str), shape: Shape, secret: &str) {
    let text = || Value::String(secret.to_string());
    let file_key = format!("{key}_file");
    let mut t = take(root, section);
    t.remove(&file_key);
    t.remove(key);
    let value = match shape {
        Shape::Text | Shape::Bare => Some(text()),
        Shape::InArray => Some(Value::Array(vec![text()])),
        Shape::InTable => Some(Value::Table(Table::from_iter([("v".to_string(), text())]))),
        Shape::Int => Some(Value::Integer(secret.len() as i64)),
        Shape::Bool => Some(Value::Boolean(true)),
        Shape::File => None,
        Shape::Both => Some(text()),
    };
    if matches!(shape, Shape::File | Shape::Both) {
        t.insert(file_key, Value::String("secret.txt".into()));
    }
    if let Some(v) = value {
        let v = match (key, shape) {
            ("nodes", Shape::Text | Shape::Bare) => Value::Array(vec![v]),
            _ => v,
        };
        t.insert(key.into(), v);
    }
    put(root, section, t);
}

/// Point every `<key>_file` at `secret.txt`, so that no input makes the loader read
/// another file (`/dev/zero`, say); true when there was one.
fn tame_files(table: &mut Table) -> bool {
    let mut changed = false;
    for (key, value) in table.iter_mut() {
        if key.ends_with("_file") && value.as_str() != Some("secret.txt") {
            *value = Value::String("secret.txt".into());
            changed = true;
        }
        changed |= match value {
            Value::Table(t) => tame_files(t),
            Value::Array(items) => items.iter_mut().fold(false, |c, item| match item {
                Value::Table(t) => tame_files(t) | c,
                _ => c,
            }),
            _ => false,
        };
    }
    changed
}

fuzz_target!(|data: &[u8]| {
    let [key, shape, rest @ ..] = data else {
        return;
    };
    let Ok(rest) = std::str::from_utf8(rest) else {
        return;
    };
    let secret_key = SECRET_KEYS[usize::from(*key) % SECRET_KEYS.len()];
    let shape = SHAPES[usize::from(*shape) % SHAPES.len()];
    let mut parts = rest.splitn(3, '\0');
    let (before, after, overlay) = (
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
    );
    let secret = format!("{before}{MARK}{after}");

    let mut root: Table = toml::from_str(BASE).unwrap_or_default();
    let tail = match toml::from_str::<Table>(overlay) {
        Ok(over) => {
            merge(&mut root, over);
            None
        }
        Err(_) => Some(overlay),
    };
    place(&mut root, secret_key, shape, &secret);
    let Ok(mut text) = toml::to_string(&root) else {
        return;
    };
    if shape == Shape::Bare {
        let quoted = Value::String(secret.clone()).to_string();
        text = text.replacen(&quoted, &secret, 1);
    }
    if let Some(tail) = tail {
        text.push('\n');
        text.push_str(tail);
    }
    if let Ok(mut parsed) = toml::from_str::<Table>(&text) {
        if tame_files(&mut parsed) {
            let Ok(tamed) = toml::to_string(&parsed) else {
                return;
            };
            text = tamed;
        }
    }
    // The marker must come from the secret alone (inline once, or from the file).
    let inline = match shape {
        Shape::Text | Shape::Bare | Shape::InArray | Shape::InTable | Shape::Both => 1,
        Shape::Int | Shape::Bool | Shape::File => 0,
    };
    let checkable = text.matches(MARK).count() == inline
        && !before.contains(MARK)
        && !after.contains(MARK)
        // `${NAME}` is expanded first, and a missing variable's name is reported.
        && !secret.contains("${")
        // A bare word with a line break makes the rest a key of its own, which is named.
        && !(shape == Shape::Bare && secret.contains(['\n', '\r']));
    match Config::from_toml(&text, base_dir()) {
        Ok(config) if checkable => {
            let shown = format!("{config:?} {}", config.summary());
            assert!(
                !shown.contains(MARK),
                "a loaded config shows a secret: {shown}"
            );
        }
        Ok(_) => {}
        Err(e) => {
            let message = format!("{e} {e:?}");
            if checkable {
                assert!(
                    !message.contains(MARK),
                    "the message shows a secret's value: {message}\n--- config:\n{text}"
                );
            }
        }
    }
});
