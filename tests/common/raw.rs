//! A raw HTTP/1.1 client over a tokio TcpStream, for requests an HTTP library would
//! normalise or refuse to send (dot segments, backslashes, odd header spellings, stalled or
//! chunked bodies) and for reading response headers exactly as sent.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A response read off the wire.
#[derive(Debug, Clone)]
pub struct RawResponse {
    pub status: u16,
    /// Names lower-cased, values as sent, duplicates kept.
    pub headers: Vec<(String, String)>,
    /// The body with chunked framing removed.
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.text()))
    }
}

/// Connect, send `head` verbatim (it must contain the blank line), read one response.
pub async fn request(addr: SocketAddr, head: &str) -> RawResponse {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(head.as_bytes()).await.expect("write request");
    read_response(&mut s, Duration::from_secs(5))
        .await
        .expect("no complete response")
}

/// `GET target` with `Host` and `Connection: close` plus `extra` header lines (each ending in CRLF).
pub async fn get(addr: SocketAddr, target: &str, extra: &str) -> RawResponse {
    let head = format!("GET {target} HTTP/1.1\r\nHost: {addr}\r\n{extra}Connection: close\r\n\r\n");
    request(addr, &head).await
}

/// Read one response (headers, then a Content-Length, chunked or until-EOF body).
pub async fn read_response<R: AsyncRead + Unpin>(
    s: &mut R,
    timeout: Duration,
) -> Option<RawResponse> {
    tokio::time::timeout(timeout, read_response_inner(s))
        .await
        .ok()
        .flatten()
}

async fn read_response_inner<R: AsyncRead + Unpin>(s: &mut R) -> Option<RawResponse> {
    let mut buf = Vec::new();
    let head_end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i;
        }
        read_more(s, &mut buf).await?;
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut rest = buf[head_end + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let find_h = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    let body = if status == 204 || status == 304 || (100..200).contains(&status) {
        Vec::new()
    } else if find_h("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        read_chunked(s, &mut rest).await?
    } else if let Some(n) = find_h("content-length").and_then(|v| v.parse::<usize>().ok()) {
        while rest.len() < n {
            read_more(s, &mut rest).await?;
        }
        rest.truncate(n);
        rest
    } else {
        while read_more(s, &mut rest).await.is_some() {}
        rest
    };
    Some(RawResponse {
        status,
        headers,
        body,
    })
}

async fn read_chunked<R: AsyncRead + Unpin>(s: &mut R, buf: &mut Vec<u8>) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = loop {
            if let Some(i) = find(buf, b"\r\n") {
                break i;
            }
            read_more(s, buf).await?;
        };
        let size_txt = String::from_utf8_lossy(&buf[..line_end]).into_owned();
        let size = usize::from_str_radix(size_txt.split(';').next()?.trim(), 16).ok()?;
        buf.drain(..line_end + 2);
        while buf.len() < size + 2 {
            read_more(s, buf).await?;
        }
        body.extend_from_slice(&buf[..size]);
        buf.drain(..size + 2);
        if size == 0 {
            return Some(body);
        }
    }
}

/// Read more bytes into `buf`; None at EOF or on error.
async fn read_more<R: AsyncRead + Unpin>(s: &mut R, buf: &mut Vec<u8>) -> Option<()> {
    let mut tmp = [0u8; 8192];
    match s.read(&mut tmp).await {
        Ok(0) | Err(_) => None,
        Ok(n) => {
            buf.extend_from_slice(&tmp[..n]);
            Some(())
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Wait until the peer closes the connection (EOF or reset), discarding any bytes.
/// Returns false if it is still open after `timeout`.
#[must_use = "assert the outcome: a wait that timed out must fail the test"]
pub async fn wait_closed<R: AsyncRead + Unpin>(s: &mut R, timeout: Duration) -> bool {
    let fut = async {
        let mut tmp = [0u8; 4096];
        loop {
            match s.read(&mut tmp).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    };
    tokio::time::timeout(timeout, fut).await.is_ok()
}
