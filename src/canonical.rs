//! The canonical request view: the one spelling of a request's path and host
//! that every decision reads (rules, SSO match lists, the token endpoint, the
//! SSO callback and sign-out paths).
//!
//! Attackers spell one resource many ways (`//admin`, `/./admin`,
//! `/x/../admin`, `/%61dmin`, `Host: api.example.com.`); upstreams and Envoy
//! settings differ in which spellings they fold together. Deciding on the raw
//! spelling lets a request through that the upstream then serves as the
//! protected resource. So the view is computed once per request, and a path
//! or host that cannot be put in canonical form safely is never read as
//! "matches nothing": an unsafe path needs authentication, a bad host gets
//! 400.
//!
//! A leaf module: it imports nothing from the rest of the crate.

use std::borrow::Cow;

/// Why a path cannot be put in canonical form safely. Such a path needs
/// authentication wherever the plugin decides on paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnsafePath {
    /// No path at all.
    Empty,
    /// Neither `/...` (origin form) nor `*`.
    NotOriginForm,
    /// `%2F`: one segment to us, two to an upstream that decodes it.
    EncodedSlash,
    /// `\` or `%5C`: a separator to some servers (Windows, IIS).
    Backslash,
    /// `%` not followed by two hex digits.
    InvalidEscape,
    /// A control byte (NUL included), raw or percent-encoded.
    ControlByte,
    /// `%25` followed by two hex digits (`%252e`): a dot segment or a slash
    /// to an upstream that decodes twice.
    DoubleEncoding,
    /// `#` in the path: not part of a request target.
    Fragment,
    /// `.;x` or `..;x`: a dot segment to servers that drop `;` parameters
    /// from segments (Tomcat, Jetty).
    DotSegmentWithParameters,
}

impl UnsafePath {
    /// A stable code for logs and metrics.
    pub fn code(self) -> &'static str {
        match self {
            UnsafePath::Empty => "empty",
            UnsafePath::NotOriginForm => "not_origin_form",
            UnsafePath::EncodedSlash => "encoded_slash",
            UnsafePath::Backslash => "backslash",
            UnsafePath::InvalidEscape => "invalid_escape",
            UnsafePath::ControlByte => "control_byte",
            UnsafePath::DoubleEncoding => "double_encoding",
            UnsafePath::Fragment => "fragment",
            UnsafePath::DotSegmentWithParameters => "dot_segment_with_parameters",
        }
    }
}

/// A request path in canonical form, or why it has none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CanonicalPath {
    /// Dot segments removed (RFC 3986 §5.2.4), escapes of unreserved
    /// characters decoded, other escapes upper case, other bytes outside
    /// `pchar` escaped, repeated slashes merged; a trailing slash kept.
    /// Or `*` (asterisk form).
    Safe(String),
    Unsafe(UnsafePath),
}

impl CanonicalPath {
    /// The canonical path; `None` when it has none (needs authentication).
    pub fn as_safe(&self) -> Option<&str> {
        match self {
            CanonicalPath::Safe(p) => Some(p),
            CanonicalPath::Unsafe(_) => None,
        }
    }

    /// The path is exactly `other` (already canonical, e.g. from config).
    pub fn is(&self, other: &str) -> bool {
        self.as_safe() == Some(other)
    }
}

/// Splits a request target (`:path`) into the path and the query (after the
/// first `?`, kept as sent).
pub fn split_target(target: &str) -> (&str, Option<&str>) {
    match target.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (target, None),
    }
}

/// Unreserved characters (RFC 3986 §2.3): their escapes are decoded.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Characters a path may carry unescaped besides unreserved ones
/// (`sub-delims`, `:`, `@`, and `/` between segments).
fn is_path_delimiter(b: u8) -> bool {
    matches!(
        b,
        b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'=' | b':' | b'@'
    )
}

fn is_control(b: u8) -> bool {
    b < 0x20 || b == 0x7f
}

/// The value of one hex digit (either case).
fn hex_value(b: u8) -> Option<u8> {
    char::from(b)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

fn push_escaped(out: &mut String, b: u8) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.push('%');
    out.push(char::from(
        HEX.get(usize::from(b >> 4)).copied().unwrap_or(b'0'),
    ));
    out.push(char::from(
        HEX.get(usize::from(b & 15)).copied().unwrap_or(b'0'),
    ));
}

/// The canonical form of a path without its query (see [`split_target`]).
pub fn canonical_path(path: &str) -> CanonicalPath {
    match normalize(path) {
        Ok(p) => CanonicalPath::Safe(p),
        Err(why) => CanonicalPath::Unsafe(why),
    }
}

fn normalize(path: &str) -> Result<String, UnsafePath> {
    if path.is_empty() {
        return Err(UnsafePath::Empty);
    }
    if path == "*" {
        return Ok(path.to_string());
    }
    if !path.starts_with('/') {
        return Err(UnsafePath::NotOriginForm);
    }
    if is_already_canonical(path) {
        return Ok(path.to_string());
    }
    let decoded = decode_unreserved(path)?;
    // Escapes were decoded first, so `%2e%2e` is a dot segment here; `/`
    // only ever comes from a real separator (`%2F` was refused).
    let merged = remove_dot_segments(&decoded)?;
    if has_double_encoding(&merged) {
        return Err(UnsafePath::DoubleEncoding);
    }
    Ok(merged)
}

/// A path the steps of [`normalize`] give back unchanged: unreserved
/// characters and `/` only (so nothing to decode, escape or refuse), no
/// empty segment and no dot segment. Almost every API path is one, and
/// the check costs one pass and no allocation (the request path of every
/// request goes through here).
fn is_already_canonical(path: &str) -> bool {
    path.starts_with('/')
        && path.bytes().all(|b| b == b'/' || is_unreserved(b))
        && !path.contains("//")
        && path
            .split('/')
            .all(|segment| segment != "." && segment != "..")
}

/// Decodes escapes of unreserved characters, upper-cases the others, escapes
/// bytes that may not appear raw; refuses what has no safe reading.
fn decode_unreserved(path: &str) -> Result<String, UnsafePath> {
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        i += 1;
        match b {
            b'%' => {
                let hi = bytes.get(i).and_then(|h| hex_value(*h));
                let lo = bytes.get(i + 1).and_then(|l| hex_value(*l));
                let (Some(hi), Some(lo)) = (hi, lo) else {
                    return Err(UnsafePath::InvalidEscape);
                };
                i += 2;
                let value = hi << 4 | lo;
                match value {
                    b'/' => return Err(UnsafePath::EncodedSlash),
                    b'\\' => return Err(UnsafePath::Backslash),
                    v if is_control(v) => return Err(UnsafePath::ControlByte),
                    v if is_unreserved(v) => out.push(char::from(v)),
                    v => push_escaped(&mut out, v),
                }
            }
            b'\\' => return Err(UnsafePath::Backslash),
            b'#' => return Err(UnsafePath::Fragment),
            b if is_control(b) => return Err(UnsafePath::ControlByte),
            b'/' => out.push('/'),
            b if is_unreserved(b) || is_path_delimiter(b) => out.push(char::from(b)),
            // Space, `"`, `<`, `>`, `[`, `]`, `^`, `` ` ``, `{`, `|`, `}` and
            // the bytes of non-ASCII characters: one spelling, escaped.
            b => push_escaped(&mut out, b),
        }
    }
    Ok(out)
}

/// RFC 3986 §5.2.4 on a path of `/`-separated segments, empty segments
/// (repeated slashes) dropped. A trailing slash, or a trailing dot segment,
/// leaves the result ending in `/`.
fn remove_dot_segments(path: &str) -> Result<String, UnsafePath> {
    let mut kept: Vec<&str> = Vec::new();
    let mut trailing_slash = false;
    for segment in path.split('/').skip(1) {
        trailing_slash = false;
        match segment {
            "" => trailing_slash = true,
            "." => trailing_slash = true,
            ".." => {
                kept.pop();
                trailing_slash = true;
            }
            s if is_dot_segment_with_parameters(s) => {
                return Err(UnsafePath::DotSegmentWithParameters)
            }
            s => kept.push(s),
        }
    }
    let mut out = String::with_capacity(path.len());
    for segment in &kept {
        out.push('/');
        out.push_str(segment);
    }
    if trailing_slash || kept.is_empty() {
        out.push('/');
    }
    Ok(out)
}

/// `.;x`, `..;x`, and the same with `;` escaped (`..%3B`: servers that
/// decode before they split off parameters read a dot segment there).
fn is_dot_segment_with_parameters(segment: &str) -> bool {
    let name = segment_name(segment);
    name.len() < segment.len() && (name == "." || name == "..")
}

/// A segment without its parameters: up to the first `;`, raw or escaped
/// (escapes are upper case by now).
fn segment_name(segment: &str) -> &str {
    let end = [segment.find(';'), segment.find("%3B")]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(segment.len());
    segment.get(..end).unwrap_or(segment)
}

/// `%25` followed by two hex digits. Checked on the decoded path: `%25%34%31`
/// becomes `%2541` there.
fn has_double_encoding(path: &str) -> bool {
    let bytes = path.as_bytes();
    bytes.windows(5).any(|w| {
        w.starts_with(b"%25")
            && w.get(3..)
                .is_some_and(|t| t.iter().all(u8::is_ascii_hexdigit))
    })
}

/// The (canonical) path as servers read it that drop `;parameters` from
/// each segment (`/admin;jsessionid=1/x` → `/admin/x`; `%3B` counts too,
/// for servers that decode first). Decisions that must hold for every
/// reading of a path check this one too.
pub fn without_parameters(path: &str) -> Cow<'_, str> {
    if !path.contains(';') && !path.contains("%3B") {
        return Cow::Borrowed(path);
    }
    let mut out = String::with_capacity(path.len());
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let last = segments.len().saturating_sub(1);
    for (i, segment) in segments.iter().enumerate() {
        let name = segment_name(segment);
        if !name.is_empty() {
            out.push('/');
            out.push_str(name);
        } else if i == last {
            out.push('/');
        }
    }
    if out.is_empty() {
        out.push('/');
    }
    Cow::Owned(out)
}

/// Why an `:authority` was refused (the request gets 400).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadAuthority {
    Empty,
    /// Anything but letters, digits, `-`, `.`, `_`, and `[`, `]`, `:` where
    /// an IPv6 literal and a port go (so `@`, `%`, spaces, ... are refused).
    InvalidCharacter,
    /// Not digits, empty, or above 65535.
    BadPort,
    /// An empty label: `..`, a leading dot, two trailing dots.
    EmptyLabel,
    /// `[...]` that is not an IPv6 literal.
    BadIpLiteral,
}

impl BadAuthority {
    pub fn code(self) -> &'static str {
        match self {
            BadAuthority::Empty => "empty",
            BadAuthority::InvalidCharacter => "invalid_character",
            BadAuthority::BadPort => "bad_port",
            BadAuthority::EmptyLabel => "empty_label",
            BadAuthority::BadIpLiteral => "bad_ip_literal",
        }
    }
}

/// The canonical host of an `:authority`: lower case, port removed, one
/// trailing dot removed; an IPv6 literal keeps its brackets.
pub fn canonical_host(authority: &str) -> Result<String, BadAuthority> {
    if authority.is_empty() {
        return Err(BadAuthority::Empty);
    }
    if !authority
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'[' | b']' | b':'))
    {
        return Err(BadAuthority::InvalidCharacter);
    }
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (literal, after) = rest.split_once(']').ok_or(BadAuthority::BadIpLiteral)?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or(BadAuthority::InvalidCharacter)?),
        };
        let ipv6 = literal.contains(':')
            && literal
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.');
        if !ipv6 {
            return Err(BadAuthority::BadIpLiteral);
        }
        check_port(port)?;
        return Ok(format!("[{}]", literal.to_ascii_lowercase()));
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host.contains(['[', ']']) {
        return Err(BadAuthority::InvalidCharacter);
    }
    check_port(port)?;
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.is_empty() || host.split('.').any(str::is_empty) {
        return Err(BadAuthority::EmptyLabel);
    }
    Ok(host.to_ascii_lowercase())
}

fn check_port(port: Option<&str>) -> Result<(), BadAuthority> {
    match port {
        None => Ok(()),
        Some(p) if !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()) => p
            .parse::<u16>()
            .map(|_| ())
            .map_err(|_| BadAuthority::BadPort),
        Some(_) => Err(BadAuthority::BadPort),
    }
}

/// What every decision reads about a request's target, computed once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestView {
    pub path: CanonicalPath,
    /// The query as sent (after the first `?`), not normalized.
    pub query: Option<String>,
    /// See [`canonical_host`].
    pub host: String,
}

impl RequestView {
    /// The view of `:path` and `:authority`; `Err` when the authority does
    /// not parse (answer 400: it matches no rule only by accident).
    pub fn new(target: &str, authority: &str) -> Result<Self, BadAuthority> {
        let host = canonical_host(authority)?;
        let (path, query) = split_target(target);
        Ok(RequestView {
            path: canonical_path(path),
            query: query.map(str::to_string),
            host,
        })
    }

    /// A view that matches nothing and needs authentication everywhere, for
    /// a request whose target cannot be read.
    pub fn unusable() -> Self {
        RequestView {
            path: CanonicalPath::Unsafe(UnsafePath::Empty),
            query: None,
            host: String::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn safe(p: &str) -> String {
        match canonical_path(p) {
            CanonicalPath::Safe(s) => s,
            CanonicalPath::Unsafe(why) => panic!("{p:?} unsafe: {why:?}"),
        }
    }

    fn unsafe_(p: &str) -> UnsafePath {
        match canonical_path(p) {
            CanonicalPath::Unsafe(why) => why,
            CanonicalPath::Safe(s) => panic!("{p:?} taken as {s:?}"),
        }
    }

    /// Every path of up to six characters over an alphabet that reaches
    /// each branch: where the shortcut answers, the full steps agree.
    #[test]
    fn the_shortcut_answers_only_what_the_full_steps_answer() {
        let alphabet = [b'/', b'.', b'a', b'-', b'%', b'2', b'e', b';'];
        let mut taken = 0;
        for len in 1..=6u32 {
            for n in 0..alphabet.len().pow(len) {
                let mut rest = n;
                let path: String = (0..len)
                    .map(|_| {
                        let c = alphabet[rest % alphabet.len()];
                        rest /= alphabet.len();
                        char::from(c)
                    })
                    .collect();
                if is_already_canonical(&path) {
                    taken += 1;
                    let full = decode_unreserved(&path)
                        .and_then(|d| remove_dot_segments(&d))
                        .ok()
                        .filter(|m| !has_double_encoding(m));
                    assert_eq!(full.as_deref(), Some(path.as_str()), "{path:?}");
                }
            }
        }
        assert!(taken > 1000, "the shortcut took {taken} paths");
    }

    #[test]
    fn spellings_of_one_path() {
        for p in [
            "/admin/x",
            "//admin/x",
            "/./admin/x",
            "/x/../admin/x",
            "/%61dmin/x",
            "/%61%64%6D%69%6E/x",
            "/admin//x",
            "///admin///x",
            "/admin/./x",
            "/admin/y/../x",
            "/../admin/x",
            "/%2e/admin/x",
            "/x/%2e%2e/admin/x",
            "/x/.%2E/admin/x",
            "/x/%2E./admin/x",
            "/a/b/c/../../../admin/x",
        ] {
            assert_eq!(safe(p), "/admin/x", "{p}");
        }
        assert_eq!(safe("/public/../app"), "/app");
        assert_eq!(safe("/public/%2e%2e/app"), "/app");
    }

    #[test]
    fn trailing_slashes_and_root() {
        assert_eq!(safe("/"), "/");
        assert_eq!(safe("//"), "/");
        assert_eq!(safe("/."), "/");
        assert_eq!(safe("/.."), "/");
        assert_eq!(safe("/admin/"), "/admin/");
        assert_eq!(safe("/admin"), "/admin");
        assert_eq!(safe("/admin/."), "/admin/");
        assert_eq!(safe("/admin//"), "/admin/");
        assert_eq!(safe("/admin/x/.."), "/admin/");
        assert_eq!(safe("/admin/.."), "/");
        assert_eq!(safe("*"), "*");
    }

    #[test]
    fn escapes() {
        // Unreserved decoded; others kept, upper case.
        assert_eq!(safe("/%7euser/%2D%5f"), "/~user/-_");
        assert_eq!(safe("/a%3bb%3Fc"), "/a%3Bb%3Fc");
        assert_eq!(safe("/a%20b"), "/a%20b");
        assert_eq!(safe("/a b"), "/a%20b");
        // Non-ASCII: one spelling, the escaped UTF-8 bytes.
        assert_eq!(safe("/café"), "/caf%C3%A9");
        assert_eq!(safe("/caf%c3%a9"), "/caf%C3%A9");
        // A lone %25 (a literal percent sign) is fine.
        assert_eq!(safe("/100%25"), "/100%25");
        assert_eq!(safe("/100%25/x"), "/100%25/x");
        // Case is kept: paths are case-sensitive (RFC 3986 §6.2.2.1).
        assert_eq!(safe("/ADMIN"), "/ADMIN");
        // Parameters are kept in the canonical path.
        assert_eq!(safe("/admin;x"), "/admin;x");
    }

    #[test]
    fn unsafe_paths() {
        let table = [
            ("", UnsafePath::Empty),
            ("admin", UnsafePath::NotOriginForm),
            ("http://h/admin", UnsafePath::NotOriginForm),
            ("/admin%2Fx", UnsafePath::EncodedSlash),
            ("/admin%2fx", UnsafePath::EncodedSlash),
            ("/public/..%2Fadmin", UnsafePath::EncodedSlash),
            ("/admin%5Cx", UnsafePath::Backslash),
            ("/admin\\x", UnsafePath::Backslash),
            ("/public\\..\\admin", UnsafePath::Backslash),
            ("/admin%", UnsafePath::InvalidEscape),
            ("/admin%4", UnsafePath::InvalidEscape),
            ("/admin%zz", UnsafePath::InvalidEscape),
            ("/admin%00", UnsafePath::ControlByte),
            ("/admin%0a", UnsafePath::ControlByte),
            ("/admin%7F", UnsafePath::ControlByte),
            ("/admin\0", UnsafePath::ControlByte),
            ("/admin\tx", UnsafePath::ControlByte),
            ("/%252e%252e/admin", UnsafePath::DoubleEncoding),
            ("/a%252Fb", UnsafePath::DoubleEncoding),
            ("/a%25%34%31", UnsafePath::DoubleEncoding),
            ("/admin#x", UnsafePath::Fragment),
            ("/public/..;/admin", UnsafePath::DotSegmentWithParameters),
            ("/public/.;x/admin", UnsafePath::DotSegmentWithParameters),
            (
                "/public/%2e%2e;/admin",
                UnsafePath::DotSegmentWithParameters,
            ),
        ];
        for (p, why) in table {
            assert_eq!(unsafe_(p), why, "{p:?}");
        }
    }

    #[test]
    fn targets_split_at_the_first_question_mark() {
        assert_eq!(split_target("/a/b?x=1?y#z"), ("/a/b", Some("x=1?y#z")));
        assert_eq!(split_target("/a"), ("/a", None));
        let view = RequestView::new("/x/../admin?next=/../y", "h").unwrap();
        assert!(view.path.is("/admin"));
        assert_eq!(view.query.as_deref(), Some("next=/../y"));
    }

    #[test]
    fn parameters_dropped_for_lenient_servers() {
        assert_eq!(without_parameters("/admin"), "/admin");
        assert_eq!(without_parameters("/admin;x"), "/admin");
        assert_eq!(without_parameters("/admin;x/y;z=1"), "/admin/y");
        assert_eq!(without_parameters("/a/;x/b"), "/a/b");
        assert_eq!(without_parameters("/a/;x"), "/a/");
        assert_eq!(without_parameters("/;x"), "/");
        assert_eq!(without_parameters("/a;x/"), "/a/");
        assert_eq!(without_parameters("/admin%3Bx/y"), "/admin/y");
        assert_eq!(without_parameters("/a%3B;x%3B"), "/a");
    }

    #[test]
    fn hosts() {
        let table = [
            ("api.example.com", "api.example.com"),
            ("API.Example.COM", "api.example.com"),
            ("api.example.com.", "api.example.com"),
            ("api.example.com:80", "api.example.com"),
            ("api.example.com.:80", "api.example.com"),
            ("API.EXAMPLE.COM.:8443", "api.example.com"),
            ("127.0.0.1:10000", "127.0.0.1"),
            ("[::1]", "[::1]"),
            ("[::1]:8080", "[::1]"),
            ("[FE80::A:b]:1", "[fe80::a:b]"),
            ("[::ffff:127.0.0.1]", "[::ffff:127.0.0.1]"),
            ("svc_name.local", "svc_name.local"),
            ("localhost", "localhost"),
        ];
        for (authority, host) in table {
            assert_eq!(
                canonical_host(authority).as_deref(),
                Ok(host),
                "{authority}"
            );
        }
        let bad = [
            ("", BadAuthority::Empty),
            ("api.example.com..", BadAuthority::EmptyLabel),
            ("api.example.com..:80", BadAuthority::EmptyLabel),
            (".", BadAuthority::EmptyLabel),
            (".example.com", BadAuthority::EmptyLabel),
            ("a..b", BadAuthority::EmptyLabel),
            (":80", BadAuthority::EmptyLabel),
            ("user@api.example.com", BadAuthority::InvalidCharacter),
            ("api example.com", BadAuthority::InvalidCharacter),
            ("api.example.com/x", BadAuthority::InvalidCharacter),
            ("api%2eexample.com", BadAuthority::InvalidCharacter),
            ("api.example.com:", BadAuthority::BadPort),
            ("api.example.com:x", BadAuthority::BadPort),
            ("api.example.com:65536", BadAuthority::BadPort),
            ("api.example.com:123456", BadAuthority::BadPort),
            ("api.example.com:80:80", BadAuthority::BadPort),
            ("[::1", BadAuthority::BadIpLiteral),
            ("[]", BadAuthority::BadIpLiteral),
            ("[api.example.com]", BadAuthority::BadIpLiteral),
            ("[::1]x", BadAuthority::InvalidCharacter),
            ("[::1]:", BadAuthority::BadPort),
            ("a[::1]", BadAuthority::InvalidCharacter),
            ("::1", BadAuthority::BadPort),
        ];
        for (authority, why) in bad {
            assert_eq!(canonical_host(authority), Err(why), "{authority:?}");
        }
        assert_eq!(
            RequestView::new("/", "api.example.com.."),
            Err(BadAuthority::EmptyLabel)
        );
    }

    /// A tiny deterministic generator (xorshift): no dependency, the same
    /// cases on every run.
    struct Gen(u64);

    impl Gen {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
            items[(self.next() % items.len() as u64) as usize]
        }
    }

    const PIECES: &[&str] = &[
        "/", "/", "/", "a", "b", "admin", ".", "..", "%2e", "%2E", "%2e%2e", ".%2e", "%61", "%41",
        "%2f", "%5c", "\\", "%00", "%25", "%252e", "%3b", "%3B", ";", ";x", "%", "%g1", "~", "%7e",
        "é", " ", "#", "?", "*", "-", "_", "%20", "@", ":", "\u{1}",
    ];

    fn random_path(g: &mut Gen) -> String {
        let len = 1 + g.next() % 12;
        let mut p = String::from(if g.next() % 8 == 0 { "" } else { "/" });
        for _ in 0..len {
            p.push_str(g.pick(PIECES));
        }
        p
    }

    /// Properties every canonical path has.
    fn check_canonical(input: &str, out: &str) {
        assert!(out == "*" || out.starts_with('/'), "{input:?} -> {out:?}");
        assert!(!out.contains("//"), "{input:?} -> {out:?}");
        for segment in out.split('/') {
            assert!(segment != "." && segment != "..", "{input:?} -> {out:?}");
        }
        assert!(!out.contains('\\') && !out.contains('#') && !out.contains('?'));
        assert!(
            out.bytes().all(|b| b.is_ascii_graphic()),
            "{input:?} -> {out:?}"
        );
        // Only escapes of reserved bytes are left, upper case.
        let bytes = out.as_bytes();
        for (i, _) in out.match_indices('%') {
            let hex = bytes.get(i + 1..i + 3).unwrap();
            assert!(
                hex.iter()
                    .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase()),
                "{input:?} -> {out:?}"
            );
            let v = u8::from_str_radix(std::str::from_utf8(hex).unwrap(), 16).unwrap();
            assert!(!is_unreserved(v) && v != b'/' && v != b'\\' && !is_control(v));
        }
    }

    #[test]
    fn property_canonical_paths_are_idempotent_and_clean() {
        let mut g = Gen(0x9e37_79b9_7f4a_7c15);
        let (mut safe_count, mut unsafe_count) = (0, 0);
        for _ in 0..20_000 {
            let input = random_path(&mut g);
            match canonical_path(&input) {
                CanonicalPath::Safe(out) => {
                    safe_count += 1;
                    check_canonical(&input, &out);
                    assert_eq!(canonical_path(&out), CanonicalPath::Safe(out.clone()));
                    let lenient = without_parameters(&out);
                    assert!((!lenient.contains("//") && lenient.starts_with('/')) || out == "*");
                }
                CanonicalPath::Unsafe(_) => unsafe_count += 1,
            }
        }
        // The generator reaches both outcomes often.
        assert!(
            safe_count > 2_000 && unsafe_count > 2_000,
            "{safe_count} {unsafe_count}"
        );
    }

    /// Spelling a safe path differently (escaping unreserved bytes, adding
    /// `./`, `x/../`, doubled slashes) never changes its canonical form.
    #[test]
    fn property_equivalent_spellings_agree() {
        let mut g = Gen(0x2545_f491_4f6c_dd1d);
        for _ in 0..5_000 {
            let input = random_path(&mut g);
            let CanonicalPath::Safe(out) = canonical_path(&input) else {
                continue;
            };
            if out == "*" {
                continue;
            }
            let mut respelled = String::new();
            for segment in out.split('/').skip(1) {
                match g.next() % 4 {
                    0 => respelled.push_str("/."),
                    1 => respelled.push_str("/zz/.."),
                    2 => respelled.push('/'),
                    _ => {}
                }
                respelled.push('/');
                let mut escape_left = 0;
                for b in segment.bytes() {
                    // The two hex digits of an escape stay as they are.
                    if b == b'%' {
                        escape_left = 2;
                        respelled.push('%');
                    } else if escape_left > 0 {
                        escape_left -= 1;
                        respelled.push(char::from(b));
                    } else if is_unreserved(b) && g.next() % 2 == 0 {
                        respelled.push_str(&format!("%{b:02x}"));
                    } else {
                        respelled.push(char::from(b));
                    }
                }
            }
            assert_eq!(
                canonical_path(&respelled),
                CanonicalPath::Safe(out.clone()),
                "{input:?} -> {out:?}, respelled {respelled:?}"
            );
        }
    }

    #[test]
    fn property_hosts_are_idempotent_and_clean() {
        let pieces = [
            "a", "B", "example", ".", ".", "com", ":", "80", "-", "_", "[", "]", "::1", "@", " ",
            "%", "0", "65536",
        ];
        let mut g = Gen(0x1234_5678_9abc_def1);
        let mut ok = 0;
        for _ in 0..20_000 {
            let len = 1 + g.next() % 6;
            let input: String = (0..len).map(|_| g.pick(&pieces)).collect();
            if let Ok(host) = canonical_host(&input) {
                ok += 1;
                assert_eq!(
                    canonical_host(&host).as_deref(),
                    Ok(host.as_str()),
                    "{input:?}"
                );
                assert!(
                    !host.ends_with('.') && !host.is_empty(),
                    "{input:?} -> {host:?}"
                );
                assert_eq!(host, host.to_ascii_lowercase());
                if !host.starts_with('[') {
                    assert!(!host.contains(':'), "{input:?} -> {host:?}");
                }
                for spelling in [
                    host.to_ascii_uppercase(),
                    format!("{host}:443"),
                    if host.starts_with('[') {
                        host.clone()
                    } else {
                        format!("{host}.")
                    },
                ] {
                    assert_eq!(canonical_host(&spelling).as_deref(), Ok(host.as_str()));
                }
            }
        }
        assert!(ok > 1_000, "{ok}");
    }
}
