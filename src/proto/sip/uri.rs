//! URIs: `sip`/`sips` (RFC 3261 §19.1, §25 with the IPv6 rules of RFC 5118),
//! `tel` (RFC 3966), `im` (RFC 3860), `pres` (RFC 3859); any other
//! absoluteURI is kept verbatim after a character check.
//!
//! Views borrow from the message: parsing a URI copies nothing. Case rules
//! (RFC 3261 §19.1.4): scheme, host and parameter names compare without case;
//! user, password and header values with case.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use super::error::{shown, SipError};
use super::grammar::{check_escaped, text, HNV, PARAMCHAR, PASSWORD, URIC, USER};

/// A parsed URI, borrowing from its source text.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Uri<'a> {
    /// `sip:` or `sips:`.
    Sip(SipUri<'a>),
    /// `tel:`.
    Tel(TelUri<'a>),
    /// `im:` (RFC 3860).
    Im(ImUri<'a>),
    /// `pres:` (RFC 3859).
    Pres(ImUri<'a>),
    /// Any other absoluteURI, checked for URI characters and kept verbatim.
    Other {
        /// The scheme as written.
        scheme: &'a str,
        /// Everything after the colon.
        rest: &'a str,
    },
}

impl<'a> Uri<'a> {
    /// Parses any absoluteURI, with no limit on length (see [`Uri::parse_limited`]).
    pub fn parse(s: &'a [u8]) -> Result<Self, SipError> {
        Self::parse_limited(s, usize::MAX)
    }

    /// Parses any absoluteURI that is at most `max_len` bytes long.
    pub fn parse_limited(s: &'a [u8], max_len: usize) -> Result<Self, SipError> {
        if s.len() > max_len {
            return Err(SipError::TooLarge {
                limit: super::error::Limit::UriLength,
                seen: s.len(),
                max: max_len,
            });
        }
        let colon = memchr::memchr(b':', s).ok_or_else(|| SipError::uri(s, "no scheme"))?;
        let scheme = &s[..colon];
        if scheme.is_empty()
            || !scheme[0].is_ascii_alphabetic()
            || !scheme
                .iter()
                .all(|c| c.is_ascii_alphanumeric() || b"+-.".contains(c))
        {
            return Err(SipError::uri(s, "invalid scheme"));
        }
        let rest = &s[colon + 1..];
        if scheme.eq_ignore_ascii_case(b"sip") {
            SipUri::parse_after(s, rest, false).map(Uri::Sip)
        } else if scheme.eq_ignore_ascii_case(b"sips") {
            SipUri::parse_after(s, rest, true).map(Uri::Sip)
        } else if scheme.eq_ignore_ascii_case(b"tel") {
            TelUri::parse_after(s, rest).map(Uri::Tel)
        } else if scheme.eq_ignore_ascii_case(b"im") {
            ImUri::parse_after(s, rest).map(Uri::Im)
        } else if scheme.eq_ignore_ascii_case(b"pres") {
            ImUri::parse_after(s, rest).map(Uri::Pres)
        } else {
            if rest.is_empty() {
                return Err(SipError::uri(s, "empty after the scheme"));
            }
            check_escaped(rest, &URIC).map_err(|e| SipError::uri(s, e))?;
            Ok(Uri::Other {
                scheme: text(scheme),
                rest: text(rest),
            })
        }
    }

    /// The scheme in lower case for the known ones, as written otherwise.
    pub fn scheme(&self) -> &str {
        match self {
            Uri::Sip(u) if u.secure => "sips",
            Uri::Sip(_) => "sip",
            Uri::Tel(_) => "tel",
            Uri::Im(_) => "im",
            Uri::Pres(_) => "pres",
            Uri::Other { scheme, .. } => scheme,
        }
    }

    /// The SIP URI inside, if this is one.
    pub fn as_sip(&self) -> Option<&SipUri<'a>> {
        match self {
            Uri::Sip(u) => Some(u),
            _ => None,
        }
    }
}

/// A host: a domain name, an IPv4 address or a bracketed IPv6 reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Host<'a> {
    /// A hostname as written (compare without case).
    Name(&'a str),
    /// An IPv4 address.
    V4(Ipv4Addr),
    /// An IPv6 address (written in brackets in URIs, RFC 5118).
    V6(Ipv6Addr),
}

impl Host<'_> {
    /// Parses `host` per RFC 3261 §25 (hostname / IPv4address / IPv6reference).
    pub fn parse(s: &[u8]) -> Result<Host<'_>, String> {
        if let Some(inner) = s.strip_prefix(b"[") {
            let inner = inner
                .strip_suffix(b"]")
                .ok_or("IPv6 reference without closing bracket")?;
            return parse_v6(inner)
                .map(Host::V6)
                .ok_or_else(|| format!("invalid IPv6 reference [{}]", shown(inner)));
        }
        Self::parse_bare(s)
    }

    /// Parses a hostname or an address without brackets (Via `received`, RFC 5118 §4.5).
    pub fn parse_bare(s: &[u8]) -> Result<Host<'_>, String> {
        if s.is_empty() {
            return Err("empty host".into());
        }
        if s.contains(&b':') {
            return parse_ip::<Ipv6Addr>(s).map(Host::V6).ok_or_else(|| {
                format!(
                    "invalid host {:?} (an IPv6 address needs brackets)",
                    shown(s)
                )
            });
        }
        Self::parse_name_or_v4(s)
    }

    /// Parses a hostname or an IPv4 address (no colon can be in `s`).
    fn parse_name_or_v4(s: &[u8]) -> Result<Host<'_>, String> {
        if s.is_empty() {
            return Err("empty host".into());
        }
        if s[0].is_ascii_digit() && s.iter().all(|c| c.is_ascii_digit() || *c == b'.') {
            return text(s)
                .parse::<Ipv4Addr>()
                .map(Host::V4)
                .map_err(|_| format!("invalid IPv4 address {:?}", text(s)));
        }
        // One pass over the labels: alphanumerics and inner hyphens, a top
        // label that starts with a letter, one optional trailing dot.
        let bad = || format!("invalid hostname {:?}", String::from_utf8_lossy(s));
        let name = s.strip_suffix(b".").unwrap_or(s);
        let (mut label_start, mut prev) = (0, HOST_DOT);
        for (i, &c) in name.iter().enumerate() {
            let class = HOST_CLASS[c as usize];
            match class {
                HOST_ALNUM => {}
                HOST_DOT if prev == HOST_ALNUM && i - label_start <= 63 => label_start = i + 1,
                HOST_HYPHEN if prev != HOST_DOT => {}
                _ => return Err(bad()),
            }
            prev = class;
        }
        if prev != HOST_ALNUM || name.len() - label_start > 63 {
            return Err(bad());
        }
        if !name[label_start].is_ascii_alphabetic() {
            return Err(format!(
                "invalid hostname {:?}: top label must start with a letter",
                text(s)
            ));
        }
        Ok(Host::Name(text(s)))
    }
}

impl Host<'_> {
    /// The address, when the host is one (not a name).
    pub fn ip(&self) -> Option<std::net::IpAddr> {
        match self {
            Host::Name(_) => None,
            Host::V4(a) => Some(std::net::IpAddr::V4(*a)),
            Host::V6(a) => Some(std::net::IpAddr::V6(*a)),
        }
    }
}

impl fmt::Display for Host<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Name(n) => f.write_str(n),
            Host::V4(a) => write!(f, "{a}"),
            Host::V6(a) => write!(f, "[{a}]"),
        }
    }
}

/// Parses an address from bytes that may not be text.
/// An IPv6 address in a reference. RFC 3261's ABNF (from RFC 2373) also
/// admits three colons before an embedded IPv4 address
/// (`2001:db8:::192.0.2.1`); RFC 5118 §4.10 asks implementations to
/// tolerate it, and it means what the same text with two colons means
/// (RFC 5954 §3). Nothing else is relaxed: the `:::` must be the only one
/// and be followed by the dotted IPv4 part alone.
fn parse_v6(s: &[u8]) -> Option<Ipv6Addr> {
    if let Some(ip) = parse_ip::<Ipv6Addr>(s) {
        return Some(ip);
    }
    let text = std::str::from_utf8(s).ok()?;
    let (head, tail) = text.split_once(":::")?;
    if tail.contains(':') || !tail.contains('.') || head.contains("::") {
        return None;
    }
    format!("{head}::{tail}").parse().ok()
}

fn parse_ip<T: std::str::FromStr>(s: &[u8]) -> Option<T> {
    std::str::from_utf8(s).ok()?.parse().ok()
}

const HOST_OTHER: u8 = 0;
const HOST_ALNUM: u8 = 1;
const HOST_HYPHEN: u8 = 2;
const HOST_DOT: u8 = 3;

/// The class of each byte in a hostname.
static HOST_CLASS: [u8; 256] = {
    let mut t = [HOST_OTHER; 256];
    let mut c = 0;
    while c < 256 {
        if (c as u8).is_ascii_alphanumeric() {
            t[c] = HOST_ALNUM;
        }
        c += 1;
    }
    t[b'-' as usize] = HOST_HYPHEN;
    t[b'.' as usize] = HOST_DOT;
    t
};

/// Parses `host [":" port]`.
pub(crate) fn parse_hostport(s: &[u8]) -> Result<(Host<'_>, Option<u16>), String> {
    let (host, port) = if s.first() == Some(&b'[') {
        let close = memchr::memchr(b']', s).ok_or("IPv6 reference without closing bracket")?;
        match &s[close + 1..] {
            [] => (&s[..=close], None),
            [b':', p @ ..] => (&s[..=close], Some(p)),
            _ => return Err("junk after IPv6 reference".into()),
        }
    } else {
        // Hosts are short: a plain scan beats a vector search here.
        match s.iter().position(|&c| c == b':') {
            Some(i) if s[i + 1..].contains(&b':') => {
                return Err(format!(
                    "{:?}: an IPv6 address must be enclosed in brackets (RFC 5118)",
                    String::from_utf8_lossy(s)
                ))
            }
            Some(i) => (&s[..i], Some(&s[i + 1..])),
            None => (s, None),
        }
    };
    let host = if host.first() == Some(&b'[') {
        Host::parse(host)?
    } else {
        Host::parse_name_or_v4(host)?
    };
    let port = match port {
        None => None,
        Some(p) => Some(
            super::grammar::parse_u32(p)
                .and_then(|v| u16::try_from(v).ok())
                .ok_or_else(|| format!("invalid port {:?}", String::from_utf8_lossy(p)))?,
        ),
    };
    Ok((host, port))
}

/// A `;name[=value]` list that is parsed once for validity and searched on demand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UriParams<'a> {
    raw: &'a [u8],
}

impl<'a> UriParams<'a> {
    /// The raw text, starting after the first `;` (empty when there are none).
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// Iterates `(name, value)` pairs in order.
    pub fn iter(&self) -> impl Iterator<Item = (&'a str, Option<&'a str>)> + 'a {
        let raw = self.raw;
        raw.split(|&c| c == b';')
            .filter(|p| !p.is_empty())
            .map(|p| match memchr::memchr(b'=', p) {
                Some(i) => (text(&p[..i]), Some(text(&p[i + 1..]))),
                None => (text(p), None),
            })
    }

    /// The parameter `name` (case-insensitive): `Some(None)` when it has no value.
    pub fn get(&self, name: &str) -> Option<Option<&'a str>> {
        self.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }
}

/// A `sip:` or `sips:` URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipUri<'a> {
    /// `sips:` rather than `sip:`.
    pub secure: bool,
    /// The user part, escapes kept (compare with case).
    pub user: Option<&'a str>,
    /// The password, escapes kept.
    pub password: Option<&'a str>,
    /// The host.
    pub host: Host<'a>,
    /// The port, when written.
    pub port: Option<u16>,
    /// uri-parameters.
    pub params: UriParams<'a>,
    /// The `?` headers, raw (without the `?`).
    pub headers: Option<&'a str>,
}

impl<'a> SipUri<'a> {
    fn parse_after(whole: &'a [u8], rest: &'a [u8], secure: bool) -> Result<Self, SipError> {
        let err = |e: String| SipError::uri(whole, e);
        let (userinfo, hostpart) = match memchr::memchr(b'@', rest) {
            Some(i) => (Some(&rest[..i]), &rest[i + 1..]),
            None => (None, rest),
        };
        let (mut user, mut password) = (None, None);
        if let Some(ui) = userinfo {
            // The user part may hold ';' and '?' (user-unreserved); the password starts at the first ':'.
            let (u, p) = match memchr::memchr(b':', ui) {
                Some(i) => (&ui[..i], Some(&ui[i + 1..])),
                None => (ui, None),
            };
            if u.is_empty() {
                return Err(err("empty user part before '@'".into()));
            }
            check_escaped(u, &USER).map_err(|e| err(format!("user part: {e}")))?;
            if let Some(p) = p {
                check_escaped(p, &PASSWORD).map_err(|e| err(format!("password: {e}")))?;
                password = Some(text(p));
            }
            user = Some(text(u));
        }
        let end = hostpart
            .iter()
            .position(|&c| c == b';' || c == b'?')
            .unwrap_or(hostpart.len());
        let (host, port) = parse_hostport(&hostpart[..end]).map_err(err)?;
        let mut tail = &hostpart[end..];
        let mut params = UriParams::default();
        if let Some(p) = tail.strip_prefix(b";") {
            let pend = memchr::memchr(b'?', p).unwrap_or(p.len());
            let raw = &p[..pend];
            for param in raw.split(|&c| c == b';') {
                let (name, value) = match memchr::memchr(b'=', param) {
                    Some(i) => (&param[..i], Some(&param[i + 1..])),
                    None => (param, None),
                };
                if name.is_empty() {
                    return Err(err("empty URI parameter".into()));
                }
                check_escaped(name, &PARAMCHAR).map_err(|e| err(format!("parameter name: {e}")))?;
                if let Some(v) = value {
                    if v.is_empty() {
                        return Err(err("empty URI parameter value".into()));
                    }
                    check_escaped(v, &PARAMCHAR)
                        .map_err(|e| err(format!("parameter value: {e}")))?;
                }
            }
            params = UriParams { raw };
            tail = &p[pend..];
        }
        let mut headers = None;
        if let Some(h) = tail.strip_prefix(b"?") {
            for hdr in h.split(|&c| c == b'&') {
                let eq = memchr::memchr(b'=', hdr)
                    .ok_or_else(|| err("URI header without '='".into()))?;
                if eq == 0 {
                    return Err(err("URI header without a name".into()));
                }
                check_escaped(&hdr[..eq], &HNV).map_err(|e| err(format!("URI header: {e}")))?;
                check_escaped(&hdr[eq + 1..], &HNV).map_err(|e| err(format!("URI header: {e}")))?;
            }
            headers = Some(text(h));
        } else if !tail.is_empty() {
            return Err(err("junk after the host".into()));
        }
        Ok(SipUri {
            secure,
            user,
            password,
            host,
            port,
            params,
            headers,
        })
    }

    /// The `transport` parameter.
    pub fn transport(&self) -> Option<&'a str> {
        self.params.get("transport").flatten()
    }

    /// True when the `lr` parameter is present (loose routing, RFC 3261 §16.4).
    pub fn lr(&self) -> bool {
        self.params.get("lr").is_some()
    }

    /// The `maddr` parameter.
    pub fn maddr(&self) -> Option<&'a str> {
        self.params.get("maddr").flatten()
    }
}

/// A `tel:` URI (RFC 3966).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelUri<'a> {
    /// The number as written, with visual separators.
    pub number: &'a str,
    /// True for a global number (`+` prefix).
    pub global: bool,
    /// Parameters after the number.
    pub params: UriParams<'a>,
}

impl<'a> TelUri<'a> {
    fn parse_after(whole: &'a [u8], rest: &'a [u8]) -> Result<Self, SipError> {
        let err = |e: &str| SipError::uri(whole, e);
        let end = memchr::memchr(b';', rest).unwrap_or(rest.len());
        let number = &rest[..end];
        let global = number.first() == Some(&b'+');
        let digits = if global { &number[1..] } else { number };
        let visual = |c: &u8| b"-.()".contains(c);
        let ok = if global {
            digits.iter().all(|c| c.is_ascii_digit() || visual(c))
        } else {
            digits
                .iter()
                .all(|c| c.is_ascii_hexdigit() || b"*#".contains(c) || visual(c))
        };
        if !ok
            || !digits
                .iter()
                .any(|c| c.is_ascii_hexdigit() || b"*#".contains(c))
        {
            return Err(err("invalid telephone number"));
        }
        let raw = rest.get(end + 1..).unwrap_or(b"");
        for p in raw.split(|&c| c == b';').filter(|_| end < rest.len()) {
            let name = p.split(|&c| c == b'=').next().unwrap_or(b"");
            if name.is_empty() || !name.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-') {
                return Err(err("invalid tel parameter"));
            }
            check_escaped(p, &URIC).map_err(|e| SipError::uri(whole, e))?;
        }
        let params = UriParams { raw };
        if !global && params.get("phone-context").is_none() {
            return Err(err("a local number needs a phone-context parameter"));
        }
        Ok(TelUri {
            number: text(number),
            global,
            params,
        })
    }
}

/// An `im:` or `pres:` URI: a mailbox and optional headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImUri<'a> {
    /// The local part, when there is an address.
    pub user: Option<&'a str>,
    /// The domain, when there is an address.
    pub domain: Option<&'a str>,
    /// `?` headers, raw.
    pub headers: Option<&'a str>,
}

impl<'a> ImUri<'a> {
    fn parse_after(whole: &'a [u8], rest: &'a [u8]) -> Result<Self, SipError> {
        let err = |e: String| SipError::uri(whole, e);
        let (addr, headers) = match memchr::memchr(b'?', rest) {
            Some(i) => (&rest[..i], Some(&rest[i + 1..])),
            None => (rest, None),
        };
        // Checked as bytes before it becomes text: the check admits ASCII only.
        if let Some(h) = headers {
            check_escaped(h, &HNV).map_err(err)?;
        }
        let headers = headers.map(text);
        if addr.is_empty() {
            return Ok(ImUri {
                user: None,
                domain: None,
                headers,
            });
        }
        let at = memchr::memrchr(b'@', addr).ok_or_else(|| err("mailbox without '@'".into()))?;
        let (local, domain) = (&addr[..at], &addr[at + 1..]);
        let atext = |c: &u8| c.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~.".contains(c);
        if local.is_empty() || !local.iter().all(atext) {
            return Err(err("invalid local part".into()));
        }
        Host::parse(domain).map_err(err)?;
        Ok(ImUri {
            user: Some(text(local)),
            domain: Some(text(domain)),
            headers,
        })
    }
}

/// URI comparison (RFC 3261 §19.1.4), used to match bindings, routes and
/// request targets.
impl SipUri<'_> {
    /// True when the two URIs are equivalent: same scheme; user and password
    /// equal with case after unescaping; hosts equal without case; ports
    /// equal or both absent; `user`, `ttl`, `method`, `maddr` and `transport`
    /// in both or neither and equal; other parameters equal where both have
    /// them; URI headers all present in both and equal.
    pub fn equivalent(&self, other: &SipUri<'_>) -> bool {
        let unesc = |s: Option<&str>| s.map(|s| super::grammar::unescape(s.as_bytes()));
        if self.secure != other.secure
            || unesc(self.user) != unesc(other.user)
            || unesc(self.password) != unesc(other.password)
            || self.port != other.port
            || !same_host(&self.host, &other.host)
        {
            return false;
        }
        let key = |(n, v): (&str, Option<&str>)| {
            (
                String::from_utf8_lossy(&super::grammar::unescape(n.as_bytes()))
                    .to_ascii_lowercase(),
                v.map(|v| {
                    String::from_utf8_lossy(&super::grammar::unescape(v.as_bytes()))
                        .to_ascii_lowercase()
                }),
            )
        };
        let mine: Vec<_> = self.params.iter().map(key).collect();
        let theirs: Vec<_> = other.params.iter().map(key).collect();
        const MUST_MATCH: [&str; 5] = ["user", "ttl", "method", "maddr", "transport"];
        let find = |list: &[(String, Option<String>)], n: &str| {
            list.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone())
        };
        for (n, v) in &mine {
            match find(&theirs, n) {
                Some(w) if &w != v => return false,
                None if MUST_MATCH.contains(&n.as_str()) => return false,
                _ => {}
            }
        }
        if theirs
            .iter()
            .any(|(n, _)| MUST_MATCH.contains(&n.as_str()) && find(&mine, n).is_none())
        {
            return false;
        }
        uri_headers(self.headers) == uri_headers(other.headers)
    }
}

fn same_host(a: &Host<'_>, b: &Host<'_>) -> bool {
    match (a, b) {
        (Host::Name(x), Host::Name(y)) => x
            .trim_end_matches('.')
            .eq_ignore_ascii_case(y.trim_end_matches('.')),
        _ => a == b,
    }
}

/// URI headers as a sorted list: names without case, values unescaped.
fn uri_headers(h: Option<&str>) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<_> = h
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (n, val) = p.split_once('=').unwrap_or((p, ""));
            let n = String::from_utf8_lossy(&super::grammar::unescape(n.as_bytes()))
                .to_ascii_lowercase();
            (n, super::grammar::unescape(val.as_bytes()))
        })
        .collect();
    v.sort();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sip(s: &str) -> SipUri<'_> {
        match Uri::parse(s.as_bytes()) {
            Ok(Uri::Sip(u)) => u,
            other => panic!("{s}: {other:?}"),
        }
    }

    #[test]
    fn sip_uri_parts() {
        let u = sip("sips:alice:secret@Example.COM:5061;transport=tcp;lr?subject=hi&x=%20");
        assert!(u.secure);
        assert_eq!(u.user, Some("alice"));
        assert_eq!(u.password, Some("secret"));
        assert_eq!(u.host, Host::Name("Example.COM"));
        assert_eq!(u.port, Some(5061));
        assert_eq!(u.transport(), Some("tcp"));
        assert!(u.lr());
        assert_eq!(u.headers, Some("subject=hi&x=%20"));
    }

    #[test]
    fn user_may_hold_semicolons() {
        let u = sip("sip:user;par=u%40example.net@example.com");
        assert_eq!(u.user, Some("user;par=u%40example.net"));
        assert_eq!(u.host, Host::Name("example.com"));
    }

    #[test]
    fn ipv6_references_rfc5118() {
        assert_eq!(
            sip("sip:[2001:db8::10]").host,
            Host::V6("2001:db8::10".parse().unwrap())
        );
        let u = sip("sip:[2001:db8::10]:5070");
        assert_eq!(u.port, Some(5070));
        assert_eq!(sip("sip:[2001:db8::10:5070]").port, None);
        assert!(Uri::parse(b"sip:2001:db8::10").is_err());
        // RFC 5118 §4.10: the three-colon form RFC 3261's ABNF admits is
        // tolerated and means the two-colon address; nothing more is.
        assert_eq!(
            sip("sip:[2001:db8:::192.0.2.1]").host,
            Host::V6("2001:db8::192.0.2.1".parse().unwrap())
        );
        assert_eq!(
            sip("sip:[:::192.0.2.1]").host,
            Host::V6("::192.0.2.1".parse().unwrap())
        );
        for bad in [
            "sip:[2001:db8:::1]",
            "sip:[2001::db8:::192.0.2.1]",
            "sip:[2001:db8:::192.0.2.1:1]",
            "sip:[2001:db8::::192.0.2.1]",
        ] {
            assert!(Uri::parse(bad.as_bytes()).is_err(), "{bad}");
        }
        assert!(Uri::parse(b"sip:[2001:db8::192.0.2.1]").is_ok());
        assert!(Uri::parse(b"sip:[::ffff:192.0.2.1]").is_ok());
    }

    #[test]
    fn bad_sip_uris() {
        for bad in [
            "sip:",
            "sip:@example.com",
            "sip:user@",
            "sip:user@exa mple.com",
            "sip:user@example.com:99999",
            "sip:user@example.com;;",
            "sip:user@example.com?x",
            "sip:us%zzer@example.com",
            "sip:user@192.0.2.300",
            "sip:user@-bad.com",
            "sip:user@example.123",
            "<sip:user@example.com>",
        ] {
            assert!(
                Uri::parse(bad.as_bytes()).is_err(),
                "{bad} should be refused"
            );
        }
    }

    #[test]
    fn other_schemes() {
        match Uri::parse(b"tel:+1-201-555-0123;ext=1").unwrap() {
            Uri::Tel(t) => {
                assert!(t.global);
                assert_eq!(t.params.get("ext"), Some(Some("1")));
            }
            u => panic!("{u:?}"),
        }
        assert!(Uri::parse(b"tel:7042;phone-context=example.com").is_ok());
        assert!(Uri::parse(b"tel:7042").is_err());
        match Uri::parse(b"im:alice@example.com").unwrap() {
            Uri::Im(i) => assert_eq!((i.user, i.domain), (Some("alice"), Some("example.com"))),
            u => panic!("{u:?}"),
        }
        assert!(matches!(
            Uri::parse(b"pres:bob@example.org").unwrap(),
            Uri::Pres(_)
        ));
        match Uri::parse(b"http://example.com/a?b=c").unwrap() {
            Uri::Other { scheme, rest } => {
                assert_eq!((scheme, rest), ("http", "//example.com/a?b=c"))
            }
            u => panic!("{u:?}"),
        }
        assert!(Uri::parse(b"1http:x").is_err());
        assert!(Uri::parse(b"http:a b").is_err());
    }

    #[test]
    fn uri_length_limit() {
        let long = format!("sip:{}@example.com", "a".repeat(3000));
        assert!(matches!(
            Uri::parse_limited(long.as_bytes(), 2048),
            Err(SipError::TooLarge {
                seen: 3016,
                max: 2048,
                ..
            })
        ));
    }

    /// The examples of RFC 3261 §19.1.4.
    #[test]
    fn rfc3261_equivalent_pairs() {
        for (a, b) in [
            (
                "sip:%61lice@atlanta.com;transport=TCP",
                "sip:alice@AtLanTa.CoM;Transport=tcp",
            ),
            ("sip:carol@chicago.com", "sip:carol@chicago.com;newparam=5"),
            ("sip:carol@chicago.com", "sip:carol@chicago.com;security=on"),
            (
                "sip:carol@chicago.com;newparam=5",
                "sip:carol@chicago.com;security=on",
            ),
            (
                "sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com",
                "sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com",
            ),
            (
                "sip:alice@atlanta.com?subject=project%20x&priority=urgent",
                "sip:alice@atlanta.com?priority=urgent&subject=project%20x",
            ),
        ] {
            assert!(sip(a).equivalent(&sip(b)), "{a} ≡ {b}");
            assert!(sip(b).equivalent(&sip(a)), "{b} ≡ {a}");
        }
    }

    #[test]
    fn rfc3261_different_pairs() {
        for (a, b) in [
            (
                "SIP:ALICE@AtLanTa.CoM;Transport=udp",
                "sip:alice@AtLanTa.CoM;Transport=UDP",
            ),
            ("sip:bob@biloxi.com", "sip:bob@biloxi.com:5060"),
            ("sip:bob@biloxi.com", "sip:bob@biloxi.com;transport=udp"),
            (
                "sip:bob@biloxi.com",
                "sip:bob@biloxi.com:6000;transport=tcp",
            ),
            (
                "sip:carol@chicago.com",
                "sip:carol@chicago.com?Subject=next%20meeting",
            ),
            ("sip:bob@phone21.boxesbybob.com", "sip:bob@192.0.2.4"),
            (
                "sip:carol@chicago.com;security=on",
                "sip:carol@chicago.com;security=off",
            ),
            ("sip:alice@atlanta.com", "sips:alice@atlanta.com"),
        ] {
            assert!(!sip(a).equivalent(&sip(b)), "{a} ≢ {b}");
            assert!(!sip(b).equivalent(&sip(a)), "{b} ≢ {a}");
        }
    }
}
