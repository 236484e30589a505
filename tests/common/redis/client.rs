//! A tiny RESP2 client for the Redis tests (one command per connection, enough to read
//! every key and value back), and the check that a dump of the store holds no secret in
//! clear. It never writes what a gateway would read.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use base64::Engine;

/// A reply in RESP2.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Vec<Reply>),
}

impl Reply {
    /// The reply as text (bulk, simple or integer), lossily decoded.
    pub fn text(&self) -> String {
        match self {
            Reply::Simple(s) | Reply::Error(s) => s.clone(),
            Reply::Int(i) => i.to_string(),
            Reply::Bulk(Some(b)) => String::from_utf8_lossy(b).into_owned(),
            Reply::Bulk(None) => String::new(),
            Reply::Array(items) => items.iter().map(Reply::text).collect::<Vec<_>>().join("\n"),
        }
    }

    /// The elements of an array reply; none for any other reply.
    pub fn items(&self) -> Vec<Reply> {
        match self {
            Reply::Array(items) => items.clone(),
            _ => Vec::new(),
        }
    }
}

/// Send one command to `127.0.0.1:port` and read its reply.
pub fn command(port: u16, args: &[&str]) -> std::io::Result<Reply> {
    let mut s = TcpStream::connect_timeout(
        &format!("127.0.0.1:{port}").parse().unwrap(),
        Duration::from_secs(1),
    )?;
    s.set_read_timeout(Some(Duration::from_secs(3)))?;
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
    }
    s.write_all(&out)?;
    read_reply(&mut BufReader::new(s))
}

fn read_reply(r: &mut impl BufRead) -> std::io::Result<Reply> {
    let mut line = Vec::new();
    r.read_until(b'\n', &mut line)?;
    if line.len() < 3 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    let text = String::from_utf8_lossy(&line[1..line.len() - 2]).into_owned();
    let num = || text.parse::<i64>().unwrap_or(-1);
    Ok(match line[0] {
        b'+' => Reply::Simple(text),
        b'-' => Reply::Error(text),
        b':' => Reply::Int(num()),
        b'$' if num() < 0 => Reply::Bulk(None),
        b'$' => {
            let mut buf = vec![0u8; num() as usize + 2];
            r.read_exact(&mut buf)?;
            buf.truncate(buf.len() - 2);
            Reply::Bulk(Some(buf))
        }
        b'*' => {
            let n = num().max(0);
            let mut items = Vec::new();
            for _ in 0..n {
                items.push(read_reply(r)?);
            }
            Reply::Array(items)
        }
        other => panic!("unexpected RESP type byte {other:?}"),
    })
}

/// Panic if any key or value of `dump` holds one of `secrets` in clear: verbatim, or inside
/// a value that decodes as base64 (standard or URL-safe) or hex.
pub fn assert_dump_clean(dump: &[(String, Vec<Vec<u8>>)], secrets: &[String]) {
    let decoded = |v: &[u8]| -> Vec<Vec<u8>> {
        let s = String::from_utf8_lossy(v).trim().to_string();
        let mut out = vec![v.to_vec()];
        use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE_NO_PAD};
        for e in [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE_NO_PAD] {
            if let Ok(d) = e.decode(&s) {
                out.push(d);
            }
        }
        if let Ok(d) = hex::decode(&s) {
            out.push(d);
        }
        out
    };
    for (key, values) in dump {
        for s in secrets {
            assert!(
                !key.contains(s.as_str()),
                "Redis key {key:?} contains {s:?}"
            );
            for v in values {
                for d in decoded(v) {
                    let text = String::from_utf8_lossy(&d);
                    assert!(
                        !text.contains(s.as_str()),
                        "a value of Redis key {key:?} holds {s:?} in clear"
                    );
                }
            }
        }
    }
}
