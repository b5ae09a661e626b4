//! The proxy-wasm ABI's header-map encoding, both ways: a u32 count, then
//! each name's and value's length (u32, little endian), then each name and
//! value followed by a NUL. Plain code, tested natively.

use std::ops::Range;

/// A header map as the host wrote it, kept as one buffer: each pair is two
/// ranges into it. Reading a request's headers this way costs two
/// allocations, not three per header (the cached verification path reads
/// them on every request).
#[derive(Debug, Default)]
pub struct HeaderBlock {
    bytes: Vec<u8>,
    pairs: Vec<(Range<usize>, Range<usize>)>,
}

impl HeaderBlock {
    /// Decodes a header map the host wrote. Names and values stay bytes (a
    /// value may hold any byte, obs-text included). A map that does not add
    /// up yields no headers rather than a guess, and never a panic.
    pub fn parse(bytes: Vec<u8>) -> Self {
        match pair_ranges(&bytes) {
            Some(pairs) => HeaderBlock { bytes, pairs },
            None => HeaderBlock::default(),
        }
    }

    /// Every (name, value), in order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.pairs.iter().map(|(name, value)| {
            (
                self.bytes.get(name.clone()).unwrap_or_default(),
                self.bytes.get(value.clone()).unwrap_or_default(),
            )
        })
    }
}

/// Where each name and value lies in `bytes`; `None` unless the whole map
/// adds up (counts, lengths, the NUL after each).
fn pair_ranges(bytes: &[u8]) -> Option<Vec<(Range<usize>, Range<usize>)>> {
    let u32_at = |at: usize| -> Option<usize> {
        let end = at.checked_add(4)?;
        let four: [u8; 4] = bytes.get(at..end)?.try_into().ok()?;
        usize::try_from(u32::from_le_bytes(four)).ok()
    };
    let count = u32_at(0)?;
    // Each pair needs at least 10 bytes: a count beyond that is a lie.
    if count > bytes.len() / 10 {
        return None;
    }
    let mut at = 4 + count * 8;
    let mut take = |len: usize| -> Option<Range<usize>> {
        let end = at.checked_add(len)?;
        // Each name and value ends with a NUL.
        if bytes.get(end) != Some(&0) {
            return None;
        }
        let range = at..end;
        at = end + 1;
        Some(range)
    };
    let mut pairs = Vec::with_capacity(count);
    for i in 0..count {
        let sizes = 4 + i * 8;
        let (name, value) = (u32_at(sizes)?, u32_at(sizes + 4)?);
        pairs.push((take(name)?, take(value)?));
    }
    Some(pairs)
}

/// Encodes `pairs` (a local reply's or an HTTP call's headers).
pub fn serialize_pairs(pairs: &[(&str, &str)]) -> Vec<u8> {
    let size = 4 + pairs
        .iter()
        .map(|(k, v)| k.len() + v.len() + 10)
        .sum::<usize>();
    let mut bytes = Vec::with_capacity(size);
    let len32 = |n: usize| u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes();
    bytes.extend_from_slice(&len32(pairs.len()));
    for (name, value) in pairs {
        bytes.extend_from_slice(&len32(name.len()));
        bytes.extend_from_slice(&len32(value.len()));
    }
    for (name, value) in pairs {
        bytes.extend_from_slice(name.as_bytes());
        bytes.push(0);
        bytes.extend_from_slice(value.as_bytes());
        bytes.push(0);
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every (name, value) of a header map the host wrote, owned (see
    /// [`HeaderBlock::parse`]).
    fn parse_pairs(bytes: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
        HeaderBlock::parse(bytes.to_vec())
            .iter()
            .map(|(name, value)| (name.to_vec(), value.to_vec()))
            .collect()
    }

    #[test]
    fn round_trip_keeps_order_and_repeats() {
        let pairs = [
            (":path", "/a"),
            ("cookie", "a=1"),
            ("cookie", ""),
            ("x", "y"),
        ];
        let parsed = parse_pairs(&serialize_pairs(&pairs));
        let expected: Vec<(Vec<u8>, Vec<u8>)> = pairs
            .iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
            .collect();
        assert_eq!(parsed, expected);
        assert!(parse_pairs(&serialize_pairs(&[])).is_empty());
    }

    #[test]
    fn values_that_are_not_utf8_stay_bytes() {
        let mut bytes = serialize_pairs(&[("content-type", "?")]);
        let at = bytes.len() - 2;
        bytes[at] = 0xff;
        assert_eq!(
            parse_pairs(&bytes),
            vec![(b"content-type".to_vec(), vec![0xff])]
        );
    }

    #[test]
    fn maps_that_do_not_add_up_yield_nothing() {
        let good = serialize_pairs(&[("a", "bc"), ("d", "e")]);
        for cut in 0..good.len() {
            assert!(parse_pairs(&good[..cut]).is_empty(), "cut at {cut}");
        }
        // A count far beyond the bytes, and a missing NUL.
        assert!(parse_pairs(&[0xff, 0xff, 0xff, 0x7f, 0, 0]).is_empty());
        let mut no_nul = good.clone();
        let last = no_nul.len() - 1;
        no_nul[last] = b'x';
        assert!(parse_pairs(&no_nul).is_empty());
    }
}
