//! What the bench tools share: `--name value` command-line arguments.
//!
//! Each tool is a few dozen lines with one job (see `src/bin/`); this file only parses
//! their arguments and never touches the network.

use std::collections::HashMap;
use std::str::FromStr;

/// `--name value` pairs, plus whatever follows a lone `--` (a command to run).
pub struct Args {
    named: HashMap<String, String>,
    pub rest: Vec<String>,
}

impl Args {
    /// Parse the process's arguments; an error names the argument that is wrong.
    pub fn parse() -> Result<Self, String> {
        let mut named = HashMap::new();
        let mut it = std::env::args().skip(1);
        while let Some(arg) = it.next() {
            if arg == "--" {
                break;
            }
            let Some(name) = arg.strip_prefix("--") else {
                return Err(format!("unexpected argument {arg:?}"));
            };
            let value = it.next().ok_or_else(|| format!("--{name} needs a value"))?;
            named.insert(name.to_owned(), value);
        }
        Ok(Self {
            named,
            rest: it.collect(),
        })
    }

    /// A required argument, parsed.
    pub fn get<T: FromStr>(&self, name: &str) -> Result<T, String> {
        let raw = self
            .named
            .get(name)
            .ok_or_else(|| format!("--{name} is required"))?;
        raw.parse()
            .map_err(|_| format!("--{name}: cannot parse {raw:?}"))
    }

    /// An optional argument, parsed, or `default` when it is absent.
    pub fn get_or<T: FromStr>(&self, name: &str, default: T) -> Result<T, String> {
        if self.named.contains_key(name) {
            self.get(name)
        } else {
            Ok(default)
        }
    }
}
