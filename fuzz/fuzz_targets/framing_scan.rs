//! The framing scanner (src/server/framing/scan.rs: `FramingScan::feed`) fed arbitrary
//! bytes in arbitrary chunks.
//!
//! Never panics, and what it finds does not depend on how the reads split the stream:
//! fed whole, a byte at a time, or at the fuzzed split points, the first flagged request
//! is the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wxgate::server::framing::{Framing, FramingScan};

/// The ordinal of the first flagged request, if any, after feeding `parts`.
fn flagged<'a>(parts: impl Iterator<Item = &'a [u8]>, heads_at_most: usize) -> Option<usize> {
    let framing = Framing::default();
    let mut scan = FramingScan::default();
    for part in parts {
        scan.feed(part, &framing);
    }
    (0..=heads_at_most).find(|_| framing.next_request_is_flagged())
}

// The input: a count `n` (one byte, mod 16), `n` bytes giving the lengths of successive
// reads (0 is an empty read), then the stream, whose rest goes in one last read.
fuzz_target!(|data: &[u8]| {
    let Some((count, data)) = data.split_first() else {
        return;
    };
    let (reads, stream) = data.split_at(usize::from(count % 16).min(data.len()));
    // A head ends with a newline: no more heads than newlines.
    let heads = stream.iter().filter(|b| **b == b'\n').count();
    let whole = flagged(std::iter::once(stream), heads);
    let bytes = flagged(stream.chunks(1), heads);
    assert_eq!(whole, bytes, "whole vs byte at a time");
    let mut parts = Vec::new();
    let mut rest = stream;
    for n in reads {
        let (part, tail) = rest.split_at(usize::from(*n).min(rest.len()));
        parts.push(part);
        rest = tail;
    }
    parts.push(rest);
    let split = flagged(parts.into_iter(), heads);
    assert_eq!(whole, split, "whole vs the fuzzed reads {reads:?}");
});
