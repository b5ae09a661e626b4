//! Cookie plumbing: reading a value split across `<name>_0`, `<name>_1`…,
//! writing `Set-Cookie` lines (clearing parts a previous, larger value left
//! behind), and removing our cookies from what goes upstream.

/// Bytes of value per cookie: browsers drop cookies over ~4096 bytes
/// including name and attributes, silently, which is how redirect loops start.
pub const MAX_CHUNK: usize = 3800;
/// A session is never split into more parts than this.
pub const MAX_PARTS: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SameSite {
    Lax,
    Strict,
    None,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CookieAttributes {
    pub domain: Option<String>,
    pub path: String,
    pub secure: bool,
    pub same_site: SameSite,
}

/// Name-value pairs of a `Cookie` header.
pub fn pairs(header: &str) -> impl Iterator<Item = (&str, &str)> {
    header
        .split(';')
        .filter_map(|p| p.trim().split_once('='))
        .map(|(k, v)| (k.trim(), v.trim()))
}

fn get<'h>(header: &'h str, name: &str) -> Option<&'h str> {
    pairs(header).find(|(k, _)| *k == name).map(|(_, v)| v)
}

fn part_name(name: &str, i: usize) -> String {
    format!("{name}_{i}")
}

/// The value of cookie `name`, or of its parts joined in order.
pub fn read(header: &str, name: &str) -> Option<String> {
    if let Some(v) = get(header, name) {
        return Some(v.to_string());
    }
    let mut joined = String::new();
    for i in 0..MAX_PARTS {
        match get(header, &part_name(name, i)) {
            Some(v) => joined.push_str(v),
            None if i == 0 => return None,
            None => break,
        }
    }
    Some(joined)
}

/// Names of our cookies present now (`name` and any `name_N`).
pub fn present(header: &str, name: &str) -> Vec<String> {
    pairs(header)
        .map(|(k, _)| k)
        .filter(|k| {
            *k == name
                || k.strip_prefix(name)
                    .and_then(|rest| rest.strip_prefix('_'))
                    .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        })
        .map(str::to_string)
        .collect()
}

/// `; Path=…; HttpOnly[; Domain=…][; Secure]; SameSite=…`
pub fn attributes(attrs: &CookieAttributes) -> String {
    let mut out = format!("; Path={}; HttpOnly", attrs.path);
    if let Some(domain) = &attrs.domain {
        out.push_str(&format!("; Domain={domain}"));
    }
    if attrs.secure || attrs.same_site == SameSite::None {
        out.push_str("; Secure");
    }
    out.push_str(match attrs.same_site {
        SameSite::Lax => "; SameSite=Lax",
        SameSite::Strict => "; SameSite=Strict",
        SameSite::None => "; SameSite=None",
    });
    out
}

pub fn clear_line(name: &str, attrs: &CookieAttributes) -> String {
    format!("{name}=; Max-Age=0{}", attributes(attrs))
}

/// `Set-Cookie` lines storing `value` under `name` (split when large), with
/// `max_age` seconds (None: a browser-session cookie), and clearing every
/// part in `existing` the new value does not overwrite. `None` when the
/// value would need more than [`MAX_PARTS`] cookies.
pub fn write(
    name: &str,
    value: &str,
    attrs: &CookieAttributes,
    max_age: Option<u64>,
    existing: &[String],
) -> Option<Vec<String>> {
    let age = max_age.map_or(String::new(), |s| format!("; Max-Age={s}"));
    let suffix = format!("{age}{}", attributes(attrs));
    let names: Vec<String> = if value.len() <= MAX_CHUNK {
        vec![name.to_string()]
    } else {
        let parts = value.len().div_ceil(MAX_CHUNK);
        if parts > MAX_PARTS {
            return None;
        }
        (0..parts).map(|i| part_name(name, i)).collect()
    };
    // Values are base64url: ASCII, so byte chunks are char boundaries.
    let chunks = value
        .as_bytes()
        .chunks(MAX_CHUNK)
        .map(|c| String::from_utf8_lossy(c));
    let mut lines: Vec<String> = names
        .iter()
        .zip(chunks)
        .map(|(n, chunk)| format!("{n}={chunk}{suffix}"))
        .collect();
    for stale in existing.iter().filter(|e| !names.contains(e)) {
        lines.push(clear_line(stale, attrs));
    }
    Some(lines)
}

/// Whether `name` belongs to the cookie family `family`: the cookie itself
/// or one of its `<family>_<suffix>` pieces (chunks, login cookies).
pub fn in_family(family: &str, name: &str) -> bool {
    name == family
        || name
            .strip_prefix(family)
            .is_some_and(|rest| rest.starts_with('_'))
}

/// What the upstream gets of the request's `Cookie` values (every one, in
/// order) once the family's cookies are taken out: `None` when none of them
/// was there (leave the header alone), else the other cookies joined with
/// `"; "` (empty: remove the header). Byte for byte: a value that is not
/// UTF-8 (obs-text a browser still sends) reaches the upstream as sent; a
/// name that is not UTF-8 is never the family's.
pub fn without_family(values: &[Vec<u8>], family: &str) -> Option<Vec<u8>> {
    let mut found = false;
    let mut kept: Vec<&[u8]> = Vec::new();
    for piece in values.iter().flat_map(|v| v.split(|b| *b == b';')) {
        let piece = piece.trim_ascii();
        if piece.is_empty() {
            continue;
        }
        let name = piece
            .split(|b| *b == b'=')
            .next()
            .unwrap_or(piece)
            .trim_ascii();
        if std::str::from_utf8(name).is_ok_and(|name| in_family(family, name)) {
            found = true;
        } else {
            kept.push(piece);
        }
    }
    found.then(|| kept.join(&b"; "[..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs() -> CookieAttributes {
        CookieAttributes {
            domain: None,
            path: "/".into(),
            secure: true,
            same_site: SameSite::Lax,
        }
    }

    #[test]
    fn small_values_use_one_cookie() {
        let lines = write("s", "abc", &attrs(), Some(60), &[]).unwrap();
        assert_eq!(
            lines,
            vec!["s=abc; Max-Age=60; Path=/; HttpOnly; Secure; SameSite=Lax"]
        );
        assert_eq!(read("a=1; s=abc", "s").as_deref(), Some("abc"));
    }

    #[test]
    fn large_values_split_join_and_clear_stale_parts() {
        let value = "x".repeat(MAX_CHUNK * 2 + 10);
        let lines = write("s", &value, &attrs(), None, &["s".into()]).unwrap();
        assert_eq!(
            lines.len(),
            4,
            "three parts and the old single cookie cleared"
        );
        assert!(lines[0].starts_with("s_0=") && lines[2].starts_with("s_2="));
        assert!(!lines[0].contains("Max-Age"), "session cookie");
        assert_eq!(
            lines[3],
            "s=; Max-Age=0; Path=/; HttpOnly; Secure; SameSite=Lax"
        );
        let header: String = lines[..3]
            .iter()
            .map(|l| l.split(';').next().unwrap().to_string())
            .collect::<Vec<_>>()
            .join("; ");
        assert_eq!(read(&header, "s").unwrap(), value);
        // Shrinking back clears the parts.
        let existing = present(&header, "s");
        assert_eq!(existing, vec!["s_0", "s_1", "s_2"]);
        let lines = write("s", "small", &attrs(), None, &existing).unwrap();
        assert_eq!(lines.len(), 4);
        assert!(lines[1..].iter().all(|l| l.contains("Max-Age=0")));
        assert!(write(
            "s",
            &"x".repeat(MAX_CHUNK * (MAX_PARTS + 1)),
            &attrs(),
            None,
            &[]
        )
        .is_none());
    }

    #[test]
    fn missing_first_part_reads_as_nothing() {
        assert_eq!(read("s_1=abc", "s"), None);
        assert_eq!(read("", "s"), None);
        assert_eq!(read("s_0=a; s_2=c", "s").as_deref(), Some("a"));
    }

    #[test]
    fn present_only_counts_numbered_parts() {
        assert_eq!(
            present("s=1; s_0=2; s_x=3; sx=4; s_=5; s_10=6", "s"),
            vec!["s", "s_0", "s_10"]
        );
    }

    #[test]
    fn strips_our_cookies_for_upstream() {
        let strip = |values: &[&[u8]]| {
            let values: Vec<Vec<u8>> = values.iter().map(|v| v.to_vec()).collect();
            without_family(&values, "s")
        };
        assert_eq!(
            strip(&[b"a=1; s_0=x; b=2; s=y"]).as_deref(),
            Some(&b"a=1; b=2"[..])
        );
        assert_eq!(
            strip(&[b"s=1"]).as_deref(),
            Some(&b""[..]),
            "only ours: remove"
        );
        assert_eq!(strip(&[b"a=1; sx=2"]), None, "none of ours: leave alone");
        // Every Cookie value (HTTP/2 sends one per cookie), ours in the second.
        assert_eq!(
            strip(&[b"a=1", b"s=2; b=3"]).as_deref(),
            Some(&b"a=1; b=3"[..])
        );
        // Bytes that are not UTF-8 stay exactly as sent.
        assert_eq!(
            strip(&[b"legacy=caf\xe9; s=x; n\xff=1"]).as_deref(),
            Some(&b"legacy=caf\xe9; n\xff=1"[..])
        );
        // Separators without spaces, a cookie without `=`, blanks.
        assert_eq!(
            strip(&[b";s;a;;s_1=z ; b=2"]).as_deref(),
            Some(&b"a; b=2"[..])
        );
    }

    #[test]
    fn the_family_is_the_name_and_its_suffixed_pieces() {
        assert!(in_family("s", "s") && in_family("s", "s_0") && in_family("s", "s_csrf_x"));
        assert!(!in_family("s", "sx") && !in_family("s", "S") && !in_family("s", "_s"));
    }

    #[test]
    fn samesite_none_forces_secure() {
        let a = CookieAttributes {
            secure: false,
            same_site: SameSite::None,
            domain: Some("example.com".into()),
            path: "/app".into(),
        };
        assert_eq!(
            clear_line("s", &a),
            "s=; Max-Age=0; Path=/app; HttpOnly; Domain=example.com; Secure; SameSite=None"
        );
    }
}
