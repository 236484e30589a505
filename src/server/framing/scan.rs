//! The byte-level walk behind [`super::Framing`]: heads, `Content-Length` bodies and
//! chunked bodies, mirroring hyper's HTTP/1 parser and chunked decoder closely enough to
//! find every head boundary hyper finds in a stream hyper accepts.

use super::Framing;

/// Where the scan is in the stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// In a head, or before one (skipping empty lines).
    Head,
    /// This many bytes of a `Content-Length` body to go.
    Length(u64),
    /// Inside a chunked body.
    Chunked(Chunk),
    /// Not following any more.
    Off,
}

/// The chunked decoder's states, as hyper's `ChunkedState` has them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Chunk {
    Start,
    Size(u64),
    SizeLws(u64),
    Extension(u64),
    SizeLf(u64),
    Data(u64),
    DataCr,
    DataLf,
    EndCr,
    Trailer,
    TrailerLf,
    EndLf,
}

/// The header a line names, once its name is known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Field {
    Undecided,
    ContentLength,
    TransferEncoding,
    Other,
}

const CONTENT_LENGTH: &[u8] = b"content-length";
const TRANSFER_ENCODING: &[u8] = b"transfer-encoding";
/// Enough of a line to hold `transfer-encoding:`.
const PREFIX: usize = 18;

/// A `Content-Length` value read so far: blanks, digits, blanks (as hyper accepts it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Value {
    #[default]
    Blank,
    Digits(u64),
    Trailing(u64),
    Invalid,
}

impl Value {
    fn push(self, b: u8) -> Self {
        match (self, b) {
            (Self::Blank, b' ' | b'\t') => Self::Blank,
            (Self::Blank, b'0'..=b'9') => Self::Digits(u64::from(b - b'0')),
            (Self::Digits(v), b'0'..=b'9') => v
                .checked_mul(10)
                .and_then(|v| v.checked_add(u64::from(b - b'0')))
                .map_or(Self::Invalid, Self::Digits),
            (Self::Digits(v) | Self::Trailing(v), b' ' | b'\t' | b'\r') => Self::Trailing(v),
            _ => Self::Invalid,
        }
    }

    fn get(self) -> Option<u64> {
        match self {
            Self::Digits(v) | Self::Trailing(v) => Some(v),
            Self::Blank | Self::Invalid => None,
        }
    }
}

/// Facts about the head being read.
#[derive(Default)]
struct Head {
    /// The request line has been read.
    started: bool,
    line_len: usize,
    prefix: [u8; PREFIX],
    last_cr: bool,
    /// `None` while in the request line.
    field: Option<Field>,
    value: Value,
    content_lengths: u8,
    length: Option<u64>,
    transfer_encoding: bool,
}

impl Head {
    /// Whether the rest of the current line cannot change what the head tells.
    fn field_known(&self) -> bool {
        self.line_len > 0 && matches!(self.field, Some(Field::Other | Field::TransferEncoding))
    }
}

/// The per-connection scanner; see the module comment.
pub struct FramingScan {
    state: State,
    heads: u64,
    head: Head,
}

impl Default for FramingScan {
    fn default() -> Self {
        Self {
            state: State::Head,
            heads: 0,
            head: Head::default(),
        }
    }
}

impl FramingScan {
    /// Follow `bytes`, the next bytes the client sent.
    pub fn feed(&mut self, bytes: &[u8], framing: &Framing) {
        if self.state == State::Off {
            return;
        }
        if framing.is_upgraded() {
            self.state = State::Off;
            return;
        }
        let mut i = 0;
        while i < bytes.len() {
            i += match self.state {
                State::Off => return,
                State::Head => self.head(&bytes[i..], framing),
                State::Length(n) => {
                    let take = n.min((bytes.len() - i) as u64);
                    self.state = if take == n {
                        State::Head
                    } else {
                        State::Length(n - take)
                    };
                    take as usize
                }
                State::Chunked(c) => self.chunked(c, &bytes[i..]),
            };
        }
    }

    /// Read head bytes until the head ends or `bytes` do; returns how many were used.
    fn head(&mut self, bytes: &[u8], framing: &Framing) -> usize {
        let mut i = 0;
        while i < bytes.len() {
            let rest = &bytes[i..];
            let newline = memchr::memchr(b'\n', rest);
            match newline {
                // The common case: a whole line in this read, classified at once.
                Some(at) if self.head.line_len == 0 => self.whole_line(&rest[..at]),
                // A line's end (or no end yet) after a part in an earlier read.
                _ if self.head.field_known() => {}
                _ => {
                    let part = &rest[..newline.unwrap_or(rest.len())];
                    let used = self.line_part(part);
                    if self.state == State::Off {
                        return bytes.len();
                    }
                    if newline.is_none() || used < part.len() {
                        i += used;
                        continue;
                    }
                }
            }
            let Some(at) = newline else {
                return bytes.len();
            };
            i += at + 1;
            if self.state == State::Off {
                return bytes.len();
            }
            if self.end_line(framing) {
                return i;
            }
        }
        bytes.len()
    }

    /// Classify a whole line (without its `\n`).
    fn whole_line(&mut self, line: &[u8]) {
        let h = &mut self.head;
        h.line_len = line.len();
        h.last_cr = line.last() == Some(&b'\r');
        if h.field.is_none() {
            self.request_line(line);
            return;
        }
        let starts = |name: &[u8]| {
            line.len() > name.len()
                && line[..name.len()].eq_ignore_ascii_case(name)
                && line[name.len()] == b':'
        };
        h.field = Some(if starts(CONTENT_LENGTH) {
            let value = &line[CONTENT_LENGTH.len() + 1..];
            h.value = value.iter().fold(Value::Blank, |v, &b| v.push(b));
            Field::ContentLength
        } else if starts(TRANSFER_ENCODING) {
            Field::TransferEncoding
        } else {
            Field::Other
        });
    }

    /// The request line (or its first bytes): only HTTP/2's preface matters.
    fn request_line(&mut self, start: &[u8]) {
        if self.heads == 0
            && start
                .get(..4)
                .is_some_and(|s| s.eq_ignore_ascii_case(b"PRI "))
        {
            self.state = State::Off;
        }
        if start.len() >= 4 {
            self.head.field = Some(Field::Other);
        }
    }

    /// Read the bytes of a line that did not arrive whole, up to (not including) its
    /// `\n`; returns how many were used (fewer once the line's field is known).
    fn line_part(&mut self, part: &[u8]) -> usize {
        for (i, &b) in part.iter().enumerate() {
            let h = &mut self.head;
            if h.field_known() {
                return i;
            }
            if h.line_len < PREFIX {
                h.prefix[h.line_len] = b.to_ascii_lowercase();
            }
            h.line_len += 1;
            h.last_cr = b == b'\r';
            match h.field {
                None => {
                    if h.line_len >= 4 {
                        let prefix = h.prefix;
                        self.request_line(&prefix[..4]);
                    }
                }
                Some(Field::Undecided) => h.field = Some(name(h, b)),
                Some(Field::ContentLength) => h.value = h.value.push(b),
                Some(Field::Other | Field::TransferEncoding) => {}
            }
        }
        part.len()
    }

    /// A line ended; true when it ended the head.
    fn end_line(&mut self, framing: &Framing) -> bool {
        let h = &mut self.head;
        let empty = h.line_len == 0 || (h.line_len == 1 && h.last_cr);
        let (field, value) = (h.field, h.value);
        h.line_len = 0;
        h.last_cr = false;
        h.value = Value::Blank;
        if !h.started {
            // Empty lines before the request line are skipped, as httparse does.
            h.started = !empty;
            h.field = h.started.then_some(Field::Undecided);
            return false;
        }
        h.field = Some(Field::Undecided);
        if empty {
            self.end_head(framing);
            return true;
        }
        match field {
            Some(Field::ContentLength) => {
                h.content_lengths = h.content_lengths.saturating_add(1);
                h.length = h.length.or(value.get());
                if value.get().is_none() {
                    // hyper answers an invalid length with 400 and closes.
                    self.state = State::Off;
                }
            }
            Some(Field::TransferEncoding) => h.transfer_encoding = true,
            _ => {}
        }
        false
    }

    fn end_head(&mut self, framing: &Framing) {
        let h = std::mem::take(&mut self.head);
        let ordinal = self.heads;
        self.heads += 1;
        if self.state == State::Off {
            return;
        }
        self.state = if h.content_lengths > 1 || (h.content_lengths > 0 && h.transfer_encoding) {
            // hyper serves this head as if it were ordinary; nothing after it is served.
            framing.flag(ordinal);
            State::Off
        } else if h.transfer_encoding {
            State::Chunked(Chunk::Start)
        } else {
            match h.length {
                Some(n) if n > 0 => State::Length(n),
                _ => State::Head,
            }
        };
    }

    /// Read chunked-body bytes until the body ends or `bytes` do; returns how many were used.
    fn chunked(&mut self, mut c: Chunk, bytes: &[u8]) -> usize {
        let mut i = 0;
        while i < bytes.len() {
            if let Chunk::Data(n) = c {
                let take = n.min((bytes.len() - i) as u64);
                i += take as usize;
                c = if take == n {
                    Chunk::DataCr
                } else {
                    Chunk::Data(n - take)
                };
                continue;
            }
            let b = bytes[i];
            i += 1;
            match step(c, b) {
                Some(Step::Next(next)) => c = next,
                Some(Step::BodyEnd) => {
                    self.state = State::Head;
                    return i;
                }
                None => {
                    self.state = State::Off;
                    return bytes.len();
                }
            }
        }
        self.state = State::Chunked(c);
        bytes.len()
    }
}

/// The field a header line names, decided at its colon (or once it cannot match).
fn name(h: &Head, b: u8) -> Field {
    if b == b':' {
        let name = &h.prefix[..h.line_len - 1];
        if name == CONTENT_LENGTH {
            return Field::ContentLength;
        }
        if name == TRANSFER_ENCODING {
            return Field::TransferEncoding;
        }
        return Field::Other;
    }
    if h.line_len >= PREFIX {
        Field::Other
    } else {
        Field::Undecided
    }
}

enum Step {
    Next(Chunk),
    BodyEnd,
}

/// One byte of chunked framing outside chunk data; `None` where hyper fails the body.
fn step(c: Chunk, b: u8) -> Option<Step> {
    use Chunk::*;
    let next = match (c, b) {
        (Start, _) => Size(u64::from(hex(b)?)),
        (Size(n), b'\t' | b' ') => SizeLws(n),
        (Size(n) | SizeLws(n), b';') => Extension(n),
        (Size(n) | SizeLws(n) | Extension(n), b'\r') => SizeLf(n),
        (Size(n), _) => Size(n.checked_mul(16)?.checked_add(u64::from(hex(b)?))?),
        (SizeLws(n), b'\t' | b' ') => SizeLws(n),
        (SizeLws(_), _) | (Extension(_), b'\n') => return None,
        (Extension(n), _) => Extension(n),
        (SizeLf(0), b'\n') => EndCr,
        (SizeLf(n), b'\n') => Data(n),
        (DataCr, b'\r') => DataLf,
        (DataLf, b'\n') => Start,
        (EndCr, b'\r') => EndLf,
        (EndCr | Trailer, _) if b != b'\r' => Trailer,
        (Trailer, _) => TrailerLf,
        (TrailerLf, b'\n') => EndCr,
        (EndLf, b'\n') => return Some(Step::BodyEnd),
        _ => return None,
    };
    Some(Step::Next(next))
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feed `stream` split at every `split` bytes; the flagged ordinal, if any.
    fn scan(stream: &[u8], split: usize) -> Option<u64> {
        let framing = Framing::default();
        let mut scan = FramingScan::default();
        for part in stream.chunks(split.max(1)) {
            scan.feed(part, &framing);
        }
        let flagged = framing.flagged.load(std::sync::atomic::Ordering::Relaxed);
        (flagged != u64::MAX).then_some(flagged)
    }

    fn all_splits(stream: &str) -> Vec<Option<u64>> {
        (1..=stream.len())
            .map(|s| scan(stream.as_bytes(), s))
            .collect()
    }

    const GET: &str = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";

    #[test]
    fn finds_both_shapes_wherever_the_reads_split() {
        for bad in [
            "POST / HTTP/1.1\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG",
            "POST / HTTP/1.1\r\nTRANSFER-ENCODING: chunked\r\ncontent-length: 6\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
            "POST / HTTP/1.1\nContent-Length: 5\nContent-Length: 5\n\nhello",
        ] {
            assert!(all_splits(bad).iter().all(|f| *f == Some(0)), "{bad:?}");
        }
    }

    #[test]
    fn follows_bodies_to_the_next_head() {
        let stream = [
            "\r\nPOST /a HTTP/1.1\r\nContent-Length: 48\r\n\r\n",
            "x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked",
            "POST /b HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            "3;ext=1\r\nabc\r\nA \r\n0123456789\r\n0\r\nX-T: 1\r\n\r\n",
            GET,
            "POST /c HTTP/1.1\r\nContent-Length:  2 \r\n\r\nhi",
            "POST /d HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
        ]
        .concat();
        assert!(all_splits(&stream).iter().all(|f| *f == Some(4)));
    }

    #[test]
    fn ordinary_streams_are_not_flagged() {
        let stream = [
            GET,
            "POST / HTTP/1.1\r\nX-Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            GET,
        ]
        .concat();
        assert!(all_splits(&stream).iter().all(Option::is_none));
    }

    #[test]
    fn stops_at_http2_upgrades_and_what_hyper_rejects() {
        let h2 = format!(
            "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\nGET / HTTP/1.1\r\n{}\r\n",
            "Content-Length: 1\r\n".repeat(2)
        );
        assert!(all_splits(&h2).iter().all(Option::is_none));
        assert_eq!(scan(h2.replacen("PRI", "GET", 1).as_bytes(), 9), Some(2));
        let bad_chunk = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n";
        let after = format!(
            "{bad_chunk}{}",
            "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n"
        );
        assert_eq!(scan(after.as_bytes(), 5), None);
        let framing = Framing::default();
        let mut s = FramingScan::default();
        s.feed(GET.as_bytes(), &framing);
        framing.set_upgraded();
        s.feed(
            b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
            &framing,
        );
        assert!(!framing.next_request_is_flagged());
        assert!(!framing.next_request_is_flagged());
    }
}
