//! The proxy-wasm ABI's header-map encoding, both ways: a u32 count, then
//! each name's and value's length (u32, little endian), then each name and
//! value followed by a NUL. Plain code, tested natively.

/// Header names and values as bytes, in the host's order.
pub type BytePairs = Vec<(Vec<u8>, Vec<u8>)>;

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

/// Decodes a header map the host wrote. Names and values stay bytes (a
/// value may hold any byte, obs-text included). A map that does not add up
/// yields nothing rather than a guess, and never a panic.
pub fn parse_pairs(bytes: &[u8]) -> BytePairs {
    let u32_at = |at: usize| -> Option<usize> {
        let end = at.checked_add(4)?;
        let four: [u8; 4] = bytes.get(at..end)?.try_into().ok()?;
        usize::try_from(u32::from_le_bytes(four)).ok()
    };
    let Some(count) = u32_at(0) else {
        return Vec::new();
    };
    // Each pair needs at least 10 bytes: a count beyond that is a lie.
    if count > bytes.len() / 10 {
        return Vec::new();
    }
    let mut sizes = Vec::with_capacity(count);
    for i in 0..count {
        let at = 4 + i * 8;
        match (u32_at(at), u32_at(at + 4)) {
            (Some(k), Some(v)) => sizes.push((k, v)),
            _ => return Vec::new(),
        }
    }
    let mut at = 4 + count * 8;
    let mut take = |len: usize| -> Option<Vec<u8>> {
        let end = at.checked_add(len)?;
        let value = bytes.get(at..end)?.to_vec();
        // Each name and value ends with a NUL.
        if bytes.get(end) != Some(&0) {
            return None;
        }
        at = end + 1;
        Some(value)
    };
    let mut pairs = Vec::with_capacity(sizes.len());
    for (k, v) in sizes {
        match (take(k), take(v)) {
            (Some(name), Some(value)) => pairs.push((name, value)),
            _ => return Vec::new(),
        }
    }
    pairs
}

#[cfg(test)]
mod tests {
    use super::*;

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
