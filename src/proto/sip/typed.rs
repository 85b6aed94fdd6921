//! Typed views of header values, parsed on demand (RFC 3261 §20, §25 and the
//! extension RFCs named on each type). A view borrows from the message and
//! copies nothing; parsing it checks the whole grammar of the value.

use std::borrow::Cow;

use super::error::{shown, SipError};
use super::grammar::{parse_u32, text, unquote, Cursor, TOKEN};
use super::uri::{parse_hostport, Host, Uri};

/// Characters of a gen-value that is a token or a host (IPv6 references included).
static GENVALUE: [bool; 256] = {
    let mut t = TOKEN;
    t[b'[' as usize] = true;
    t[b']' as usize] = true;
    t[b':' as usize] = true;
    t
};

/// A `*( SEMI generic-param )` list, checked once and searched on demand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Params<'a> {
    raw: &'a [u8],
}

impl<'a> Params<'a> {
    /// Reads params from the cursor (which stands before the first `;`).
    pub(crate) fn read(c: &mut Cursor<'a>) -> Result<Params<'a>, String> {
        Self::read_with(c, |_, _| Ok(()))
    }

    /// Reads params, showing each `(name, value)` to `check` as it goes.
    pub(crate) fn read_with(
        c: &mut Cursor<'a>,
        mut check: impl FnMut(&'a [u8], Option<&'a [u8]>) -> Result<(), String>,
    ) -> Result<Params<'a>, String> {
        let start = c.pos;
        let mut end = c.pos;
        while c.sep(b';') {
            let name = c.token().ok_or("empty or invalid parameter name")?;
            let mut value = None;
            if c.sep(b'=') {
                let vstart = c.pos;
                if c.peek() == Some(b'"') {
                    c.quoted()?;
                } else if c.take(&GENVALUE).is_empty() {
                    return Err("parameter value missing".into());
                }
                value = Some(&c.s[vstart..c.pos]);
            }
            check(name, value)?;
            end = c.pos;
        }
        c.pos = end;
        Ok(Params {
            raw: &c.s[start..end],
        })
    }

    /// Iterates `(name, value)`; a quoted value keeps its quotes.
    pub fn iter(&self) -> impl Iterator<Item = (&'a str, Option<&'a [u8]>)> + 'a {
        self.iter_raw().map(|(n, v)| (text(n), v))
    }

    fn iter_raw(&self) -> impl Iterator<Item = (&'a [u8], Option<&'a [u8]>)> + 'a {
        let mut c = Cursor::new(self.raw);
        std::iter::from_fn(move || {
            if !c.sep(b';') {
                return None;
            }
            let name = c.token()?;
            let value = if c.sep(b'=') {
                let start = c.pos;
                if c.peek() == Some(b'"') {
                    c.quoted().ok()?;
                } else {
                    c.take(&GENVALUE);
                }
                Some(&c.s[start..c.pos])
            } else {
                None
            };
            Some((name, value))
        })
    }

    /// The parameter `name` (without case): `Some(None)` when it has no value.
    pub fn get(&self, name: &str) -> Option<Option<&'a [u8]>> {
        self.iter_raw()
            .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v)
    }

    /// The value of `name` as text, quotes removed.
    pub fn value(&self, name: &str) -> Option<Cow<'a, str>> {
        let v = self.get(name)??;
        Some(if v.first() == Some(&b'"') {
            Cow::Owned(String::from_utf8_lossy(&unquote(v)).into_owned())
        } else {
            Cow::Borrowed(text(v))
        })
    }

    /// The raw text (from the first `;`).
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }
}

fn done(c: &Cursor<'_>, what: &str) -> Result<(), String> {
    let mut c = c.clone();
    c.ws();
    if c.at_end() {
        Ok(())
    } else {
        Err(format!(
            "unexpected {:?} after the {what}",
            super::error::shown(c.rest())
        ))
    }
}

/// A checked token as text; the usual Via and CSeq tokens skip the conversion.
#[inline]
fn known_token(t: &[u8]) -> &str {
    match t {
        b"SIP" => "SIP",
        b"2.0" => "2.0",
        b"UDP" => "UDP",
        b"TCP" => "TCP",
        b"TLS" => "TLS",
        b"WSS" => "WSS",
        b"WS" => "WS",
        b"SCTP" => "SCTP",
        b"INVITE" => "INVITE",
        b"ACK" => "ACK",
        b"BYE" => "BYE",
        b"CANCEL" => "CANCEL",
        b"OPTIONS" => "OPTIONS",
        b"REGISTER" => "REGISTER",
        b"MESSAGE" => "MESSAGE",
        b"SUBSCRIBE" => "SUBSCRIBE",
        b"NOTIFY" => "NOTIFY",
        b"PUBLISH" => "PUBLISH",
        _ => text(t),
    }
}

/// One Via value (RFC 3261 §20.42, RFC 3581 rport, RFC 5118 IPv6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via<'a> {
    /// Protocol name and version, normally `SIP` and `2.0`.
    pub protocol: (&'a str, &'a str),
    /// Transport as written (`UDP`, `TCP`, `TLS`, `SCTP`, `WS`, or any token).
    pub transport: &'a str,
    /// The sent-by host.
    pub host: Host<'a>,
    /// The sent-by port.
    pub port: Option<u16>,
    /// Via parameters.
    pub params: Params<'a>,
    /// The branch, found while the parameters were checked.
    branch: Option<&'a str>,
}

impl<'a> Via<'a> {
    /// Parses one Via value.
    pub fn parse(s: &'a [u8]) -> Result<Via<'a>, SipError> {
        Self::parse_inner(s).map_err(|e| SipError::header("Via", e))
    }

    fn parse_inner(s: &'a [u8]) -> Result<Via<'a>, String> {
        let mut c = Cursor::new(s);
        c.ws();
        let name = c.token().ok_or("missing protocol name")?;
        if !c.sep(b'/') {
            return Err("missing '/' after the protocol name".into());
        }
        let version = c.token().ok_or("missing protocol version")?;
        if !c.sep(b'/') {
            return Err("missing '/' before the transport".into());
        }
        let transport = c.token().ok_or("missing transport")?;
        if !c.ws() {
            return Err("missing space before sent-by".into());
        }
        let start = c.pos;
        while let Some(ch) = c.peek() {
            if ch == b';' || ch == b' ' || ch == b'\t' || ch == b'\r' || ch == b',' {
                break;
            }
            c.pos += 1;
        }
        let hostport = &s[start..c.pos];
        let (host, mut port) = parse_hostport(hostport)?;
        // COLON is SWS ":" SWS: the port may stand apart from the host.
        if port.is_none() && c.sep(b':') {
            let digits = c.take(&DIGIT);
            port = Some(
                parse_u32(digits)
                    .and_then(|p| u16::try_from(p).ok())
                    .ok_or_else(|| format!("invalid port {:?}", text(digits)))?,
            );
        }
        let mut branch = None;
        let params = Params::read_with(&mut c, |n, v| {
            let v = v.unwrap_or(b"");
            let ok = match n.len() {
                3 if n.eq_ignore_ascii_case(b"ttl") => parse_u32(v).is_some_and(|t| t <= 255),
                5 if n.eq_ignore_ascii_case(b"maddr") => Host::parse(v).is_ok(),
                8 if n.eq_ignore_ascii_case(b"received") => Host::parse(v)
                    .or_else(|_| Host::parse_bare(v))
                    .is_ok_and(|h| !matches!(h, Host::Name(_))),
                5 if n.eq_ignore_ascii_case(b"rport") => {
                    v.is_empty() || parse_u32(v).is_some_and(|p| p <= 65535)
                }
                6 if n.eq_ignore_ascii_case(b"branch") => {
                    branch = Some(text(v));
                    !v.is_empty() && v.iter().all(|&ch| TOKEN[ch as usize])
                }
                _ => true,
            };
            if ok {
                Ok(())
            } else {
                Err(format!("invalid {} parameter {:?}", text(n), text(v)))
            }
        })?;
        done(&c, "Via parameters")?;
        Ok(Via {
            protocol: (known_token(name), known_token(version)),
            transport: known_token(transport),
            host,
            port,
            params,
            branch,
        })
    }

    /// The branch parameter (case-sensitive).
    pub fn branch(&self) -> Option<&'a str> {
        self.branch
    }

    /// The received parameter (an address; brackets allowed, RFC 5118 §4.5).
    pub fn received(&self) -> Option<&'a str> {
        self.params.get("received").flatten().map(text)
    }

    /// `rport`: `Some(None)` when requested without a value (RFC 3581).
    pub fn rport(&self) -> Option<Option<u16>> {
        self.params
            .get("rport")
            .map(|v| v.and_then(parse_u32).and_then(|p| u16::try_from(p).ok()))
    }

    /// The maddr parameter.
    pub fn maddr(&self) -> Option<&'a str> {
        self.params.get("maddr").flatten().map(text)
    }

    /// The ttl parameter.
    pub fn ttl(&self) -> Option<u8> {
        self.params
            .get("ttl")
            .flatten()
            .and_then(parse_u32)
            .and_then(|t| u8::try_from(t).ok())
    }

    /// True when the branch carries the RFC 3261 magic cookie.
    pub fn is_rfc3261(&self) -> bool {
        self.branch().is_some_and(|b| b.starts_with("z9hG4bK"))
    }
}

/// A name-addr or addr-spec with header parameters: From, To, Contact,
/// Route, Record-Route, Path, P-Asserted-Identity, Reply-To (RFC 3261 §20).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr<'a> {
    /// The display name as written (quoted or a token sequence).
    pub display: Option<&'a [u8]>,
    /// The URI text; [`NameAddr::uri`] parses it.
    pub uri_raw: &'a [u8],
    /// True when the URI was enclosed in `<>`.
    pub angle: bool,
    /// Header parameters (tag, expires, q, …).
    pub params: Params<'a>,
    /// The first tag parameter, found while the parameters were checked.
    tag: Option<&'a [u8]>,
}

impl<'a> NameAddr<'a> {
    /// Parses one value; `name` is the header it came from, for errors.
    pub fn parse(s: &'a [u8], name: &'static str) -> Result<NameAddr<'a>, SipError> {
        Self::parse_inner(s).map_err(|e| SipError::header(name, e))
    }

    fn parse_inner(s: &'a [u8]) -> Result<NameAddr<'a>, String> {
        let mut c = Cursor::new(s);
        c.ws();
        let mut display = None;
        let angle;
        let uri_raw;
        if c.peek() == Some(b'"') {
            display = Some(c.quoted()?);
            c.ws();
            if !c.eat(b'<') {
                return Err("a quoted display name must be followed by <URI>".into());
            }
            angle = true;
        } else if let Some(lt) = memchr::memchr(b'<', c.rest()) {
            let d = super::grammar::trim(&c.rest()[..lt]);
            if !d.is_empty() {
                // *(token LWS); LWS before '<' may be absent (RFC 4475 §3.1.1.6).
                let ok = d
                    .split(|&ch| ch == b' ' || ch == b'\t' || ch == b'\r' || ch == b'\n')
                    .all(|t| t.is_empty() || t.iter().all(|&ch| TOKEN[ch as usize]));
                if !ok {
                    return Err(format!(
                        "display name {:?} must be tokens or a quoted string",
                        String::from_utf8_lossy(d)
                    ));
                }
                display = Some(d);
            }
            c.pos += lt + 1;
            angle = true;
        } else {
            angle = false;
        }
        if angle {
            let rest = c.rest();
            let gt = memchr::memchr(b'>', rest).ok_or("missing '>' after the URI")?;
            uri_raw = &rest[..gt];
            if uri_raw.first().is_some_and(|&ch| ch == b' ' || ch == b'\t')
                || uri_raw.last().is_some_and(|&ch| ch == b' ' || ch == b'\t')
            {
                return Err("white space inside <> around the URI".into());
            }
            c.pos += gt + 1;
        } else {
            let start = c.pos;
            while let Some(ch) = c.peek() {
                if ch == b';' || ch == b' ' || ch == b'\t' || ch == b'\r' || ch == b'\n' {
                    break;
                }
                c.pos += 1;
            }
            uri_raw = &s[start..c.pos];
            if uri_raw.is_empty() {
                return Err("missing URI".into());
            }
            if uri_raw.contains(&b'?') || uri_raw.contains(&b',') {
                return Err(format!(
                    "URI {:?} holds '?' or ',' and must be enclosed in <>",
                    shown(uri_raw)
                ));
            }
        }
        let mut tag = None;
        let params = Params::read_with(&mut c, |n, v| {
            if tag.is_none() && n.eq_ignore_ascii_case(b"tag") {
                tag = Some(v.unwrap_or(b""));
            }
            Ok(())
        })?;
        done(&c, "header parameters")?;
        Ok(NameAddr {
            display,
            uri_raw,
            angle,
            params,
            tag,
        })
    }

    /// Parses one value and its URI, checking the whole grammar.
    pub fn parse_full(s: &'a [u8], name: &'static str) -> Result<NameAddr<'a>, SipError> {
        let na = Self::parse(s, name)?;
        na.uri()
            .map_err(|e| SipError::header(name, e.to_string()))?;
        Ok(na)
    }

    /// The URI, parsed on demand (a proxy reading a tag need not parse it).
    pub fn uri(&self) -> Result<Uri<'a>, SipError> {
        Uri::parse(self.uri_raw)
    }

    /// The tag parameter (From/To, case-sensitive).
    pub fn tag(&self) -> Option<&'a str> {
        self.tag.filter(|t| !t.is_empty()).map(text)
    }

    /// The display name with quotes and escapes removed.
    pub fn display_name(&self) -> Option<String> {
        self.display.map(|d| {
            if d.first() == Some(&b'"') {
                String::from_utf8_lossy(&unquote(d)).into_owned()
            } else {
                String::from_utf8_lossy(d).into_owned()
            }
        })
    }
}

/// A Contact value: `*` or an address (RFC 3261 §20.10).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Contact<'a> {
    /// `Contact: *` (remove all bindings, with Expires: 0).
    Star,
    /// A contact address with its parameters.
    Addr(NameAddr<'a>),
}

impl<'a> Contact<'a> {
    /// Parses one Contact value.
    pub fn parse(s: &'a [u8]) -> Result<Contact<'a>, SipError> {
        if super::grammar::trim(s) == b"*" {
            return Ok(Contact::Star);
        }
        let na = NameAddr::parse_full(s, "Contact")?;
        for (n, v) in na.params.iter() {
            let v = v.unwrap_or(b"");
            if n.eq_ignore_ascii_case("q") && parse_q(v).is_none() {
                return Err(SipError::header(
                    "Contact",
                    format!("invalid q value {:?}", text(v)),
                ));
            }
            if n.eq_ignore_ascii_case("expires") && parse_u32(v).is_none() {
                return Err(SipError::header(
                    "Contact",
                    format!(
                        "expires {:?} is not a number of seconds up to 2^32-1",
                        text(v)
                    ),
                ));
            }
        }
        Ok(Contact::Addr(na))
    }
}

/// Parses a qvalue into thousandths (RFC 3261 §20.10: 0 to 1 with up to three decimals).
pub fn parse_q(v: &[u8]) -> Option<u16> {
    let (int, frac) = match memchr::memchr(b'.', v) {
        Some(i) => (&v[..i], &v[i + 1..]),
        None => (v, &b""[..]),
    };
    if int.len() != 1 || frac.len() > 3 || !frac.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut q = u16::from(int[0].wrapping_sub(b'0')) * 1000;
    for (i, &d) in frac.iter().enumerate() {
        q += u16::from(d - b'0') * [100, 10, 1][i];
    }
    (q <= 1000 && int[0].is_ascii_digit()).then_some(q)
}

/// CSeq (RFC 3261 §20.16): a 32-bit sequence number and a method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CSeq<'a> {
    /// The sequence number.
    pub seq: u32,
    /// The method (case-sensitive).
    pub method: &'a str,
}

impl<'a> CSeq<'a> {
    /// Parses a CSeq value.
    pub fn parse(s: &'a [u8]) -> Result<CSeq<'a>, SipError> {
        let err = |r: String| SipError::header("CSeq", r);
        let mut c = Cursor::new(s);
        c.ws();
        let digits = c.take(&DIGIT);
        let seq = parse_u32(digits).ok_or_else(|| {
            err(format!(
                "sequence number {:?} is not an integer below 2^32",
                text(digits)
            ))
        })?;
        if !c.ws() {
            return Err(err("missing space before the method".into()));
        }
        let method = c.token().ok_or_else(|| err("missing method".into()))?;
        done(&c, "method").map_err(err)?;
        Ok(CSeq {
            seq,
            method: known_token(method),
        })
    }
}

static DIGIT: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = b'0';
    while c <= b'9' {
        t[c as usize] = true;
        c += 1;
    }
    t
};

/// Checks a Call-ID: `word [ "@" word ]` (RFC 3261 §20.8; compared with case).
pub fn check_call_id(s: &[u8]) -> Result<(), SipError> {
    let parts: Vec<&[u8]> = s.splitn(2, |&c| c == b'@').collect();
    if parts
        .iter()
        .all(|p| !p.is_empty() && p.iter().all(|&c| super::grammar::WORD[c as usize]))
    {
        Ok(())
    } else {
        Err(SipError::header(
            "Call-ID",
            format!("{:?} is not word[@word]", shown(s)),
        ))
    }
}

/// Parses delta-seconds (Expires, Min-Expires; RFC 3261 §20.19: up to 2^32-1).
pub fn parse_delta(s: &[u8], name: &'static str) -> Result<u32, SipError> {
    parse_u32(s).ok_or_else(|| {
        SipError::header(
            name,
            format!(
                "{:?} is not a number of seconds up to 2^32-1",
                super::error::shown(s)
            ),
        )
    })
}

/// Parses Max-Forwards (RFC 3261 §20.22: 0 to 255).
pub fn parse_max_forwards(s: &[u8]) -> Result<u8, SipError> {
    parse_u32(s)
        .and_then(|v| u8::try_from(v).ok())
        .ok_or_else(|| {
            SipError::header(
                "Max-Forwards",
                format!(
                    "{:?} is not an integer from 0 to 255",
                    super::error::shown(s)
                ),
            )
        })
}

/// A media type (Content-Type; Accept ranges allow `*`), RFC 3261 §20.15.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaType<'a> {
    /// Top-level type (compare without case).
    pub kind: &'a str,
    /// Subtype (compare without case).
    pub subtype: &'a str,
    /// Parameters (`charset`, `boundary`, …).
    pub params: Params<'a>,
}

impl<'a> MediaType<'a> {
    /// Parses a media type.
    pub fn parse(s: &'a [u8], name: &'static str) -> Result<MediaType<'a>, SipError> {
        let err = |r: String| SipError::header(name, r);
        let mut c = Cursor::new(s);
        c.ws();
        let kind = c.token().ok_or_else(|| err("missing media type".into()))?;
        if !c.sep(b'/') {
            return Err(err("missing '/' in the media type".into()));
        }
        let subtype = c
            .token()
            .ok_or_else(|| err("missing media subtype".into()))?;
        let params = Params::read(&mut c).map_err(err)?;
        done(&c, "media type").map_err(err)?;
        Ok(MediaType {
            kind: text(kind),
            subtype: text(subtype),
            params,
        })
    }

    /// True when this is `kind/subtype` (without case).
    pub fn is(&self, kind: &str, subtype: &str) -> bool {
        self.kind.eq_ignore_ascii_case(kind) && self.subtype.eq_ignore_ascii_case(subtype)
    }
}

/// A token with parameters: Event, Subscription-State, Content-Disposition,
/// Retry-After's parameters (RFC 6665 §8.4, RFC 3261 §20.11).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenParams<'a> {
    /// The token (event package, substate, disposition type).
    pub token: &'a str,
    /// Its parameters.
    pub params: Params<'a>,
}

impl<'a> TokenParams<'a> {
    /// Parses `token *(SEMI generic-param)`.
    pub fn parse(s: &'a [u8], name: &'static str) -> Result<TokenParams<'a>, SipError> {
        let err = |r: String| SipError::header(name, r);
        let mut c = Cursor::new(s);
        c.ws();
        let token = c.token().ok_or_else(|| err("missing value".into()))?;
        let params = Params::read(&mut c).map_err(err)?;
        done(&c, "value").map_err(err)?;
        Ok(TokenParams {
            token: text(token),
            params,
        })
    }
}

/// Checks a comma list of tokens (Require, Supported, Allow, …); `empty_ok`
/// for the headers whose grammar allows an empty value.
pub fn check_token_list(s: &[u8], name: &'static str, empty_ok: bool) -> Result<(), SipError> {
    let t = super::grammar::trim(s);
    if t.is_empty() {
        return if empty_ok {
            Ok(())
        } else {
            Err(SipError::header(name, "empty value"))
        };
    }
    for item in super::grammar::split_commas(t) {
        if !super::grammar::is_token(item) {
            return Err(SipError::header(
                name,
                format!("{:?} is not a token", shown(item)),
            ));
        }
    }
    Ok(())
}

/// Credentials or a challenge (Authorization, WWW-Authenticate, …; RFC 3261 §20.7, §25).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Auth<'a> {
    /// The scheme (`Digest` or another token; compare without case).
    pub scheme: &'a str,
    raw: &'a [u8],
}

impl<'a> Auth<'a> {
    /// Parses `scheme LWS auth-param *(COMMA auth-param)`.
    pub fn parse(s: &'a [u8], name: &'static str) -> Result<Auth<'a>, SipError> {
        let err = |r: String| SipError::header(name, r);
        let mut c = Cursor::new(s);
        c.ws();
        let scheme = c.token().ok_or_else(|| err("missing scheme".into()))?;
        if !c.ws() {
            return Err(err("missing parameters after the scheme".into()));
        }
        let start = c.pos;
        loop {
            c.token()
                .ok_or_else(|| err("invalid parameter name".into()))?;
            if !c.sep(b'=') {
                return Err(err("parameter without '='".into()));
            }
            if c.peek() == Some(b'"') {
                c.quoted().map_err(err)?;
            } else if c.token().is_none() {
                return Err(err("missing parameter value".into()));
            }
            if !c.sep(b',') {
                break;
            }
        }
        done(&c, "parameters").map_err(err)?;
        Ok(Auth {
            scheme: text(scheme),
            raw: &s[start..c.pos],
        })
    }

    /// The parameter `name` (without case), quotes removed.
    pub fn param(&self, name: &str) -> Option<Cow<'a, str>> {
        let mut c = Cursor::new(self.raw);
        loop {
            let n = c.token()?;
            c.sep(b'=');
            let start = c.pos;
            if c.peek() == Some(b'"') {
                c.quoted().ok()?;
            } else {
                c.token()?;
            }
            let v = &self.raw[start..c.pos];
            if n.eq_ignore_ascii_case(name.as_bytes()) {
                return Some(if v.first() == Some(&b'"') {
                    Cow::Owned(String::from_utf8_lossy(&unquote(v)).into_owned())
                } else {
                    Cow::Borrowed(text(v))
                });
            }
            if !c.sep(b',') {
                return None;
            }
        }
    }
}

/// Checks a Date value: rfc1123-date in GMT (RFC 3261 §20.17).
pub fn check_date(s: &[u8]) -> Result<(), SipError> {
    let err = |r: &str| SipError::header("Date", format!("{:?}: {r}", shown(s)));
    let t = std::str::from_utf8(s).map_err(|_| err("not ASCII text"))?;
    let parts: Vec<&str> = t.split(' ').collect();
    let [wkday, day, month, year, time, zone] = parts[..] else {
        return Err(err("not of the form 'Sun, 06 Nov 1994 08:49:37 GMT'"));
    };
    let wk = wkday
        .strip_suffix(',')
        .ok_or_else(|| err("missing ',' after the weekday"))?;
    if !["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"].contains(&wk) {
        return Err(err("invalid weekday"));
    }
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let num = |v: &str, n: usize, max: u32| {
        v.len() == n
            && v.bytes().all(|c| c.is_ascii_digit())
            && v.parse::<u32>().is_ok_and(|x| x <= max)
    };
    if !num(day, 2, 31) || day == "00" {
        return Err(err("invalid day"));
    }
    if !months.contains(&month) {
        return Err(err("invalid month"));
    }
    if !num(year, 4, 9999) {
        return Err(err("invalid year"));
    }
    let hms: Vec<&str> = time.split(':').collect();
    if hms.len() != 3 || !num(hms[0], 2, 23) || !num(hms[1], 2, 59) || !num(hms[2], 2, 60) {
        return Err(err("invalid time"));
    }
    if zone != "GMT" {
        return Err(err("the time zone must be GMT"));
    }
    Ok(())
}

/// Checks Retry-After: `delta-seconds [comment] *(SEMI retry-param)` (RFC 3261 §20.33).
pub fn check_retry_after(s: &[u8]) -> Result<u32, SipError> {
    let err = |r: String| SipError::header("Retry-After", r);
    let mut c = Cursor::new(s);
    c.ws();
    let digits = c.take(&DIGIT);
    let secs = parse_u32(digits).ok_or_else(|| {
        err(format!(
            "{:?} is not a number of seconds up to 2^32-1",
            text(digits)
        ))
    })?;
    c.ws();
    if c.peek() == Some(b'(') {
        let mut depth = 0usize;
        loop {
            match c.peek() {
                None => return Err(err("unterminated comment".into())),
                Some(b'(') => depth += 1,
                Some(b')') => depth -= 1,
                Some(b'\\') => c.pos += 1,
                _ => {}
            }
            c.pos += 1;
            if depth == 0 {
                break;
            }
            if depth > 16 {
                return Err(err("comment nested too deep".into()));
            }
        }
    }
    let params = Params::read(&mut c).map_err(err)?;
    if let Some(Some(d)) = params.get("duration") {
        parse_u32(d).ok_or_else(|| err("invalid duration".into()))?;
    }
    done(&c, "value").map_err(err)?;
    Ok(secs)
}

/// Checks one Warning value: `warn-code SP warn-agent SP warn-text` (RFC 3261 §20.43).
pub fn check_warning(s: &[u8]) -> Result<(), SipError> {
    let err = |r: String| SipError::header("Warning", r);
    let mut c = Cursor::new(s);
    let code = c.take(&DIGIT);
    if code.len() != 3 {
        return Err(err(format!(
            "warn-code {:?} is not three digits",
            text(code)
        )));
    }
    if !c.eat(b' ') {
        return Err(err("missing space after the warn-code".into()));
    }
    let start = c.pos;
    while c.peek().is_some_and(|ch| ch != b' ') {
        c.pos += 1;
    }
    let agent = &s[start..c.pos];
    if parse_hostport(agent).is_err() && !super::grammar::is_token(agent) {
        return Err(err(format!("invalid warn-agent {:?}", shown(agent))));
    }
    if !c.eat(b' ') {
        return Err(err("missing space after the warn-agent".into()));
    }
    c.quoted().map_err(err)?;
    done(&c, "warn-text").map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn via_params() {
        let v = Via::parse(b"SIP/2.0/UDP [2001:db8::9:1]:5070;received=[2001:db8::9:255];branch=z9hG4bKas3;rport=5060;ttl=16;maddr=224.2.0.1;x").unwrap();
        assert_eq!(v.transport, "UDP");
        assert_eq!(v.port, Some(5070));
        assert_eq!(v.branch(), Some("z9hG4bKas3"));
        assert_eq!(v.received(), Some("[2001:db8::9:255]"));
        assert_eq!(v.rport(), Some(Some(5060)));
        assert_eq!(v.ttl(), Some(16));
        assert_eq!(v.maddr(), Some("224.2.0.1"));
        assert!(v.is_rfc3261());
        let v = Via::parse(b"SIP / 2.0 / TCP host.example.com ; rport ; received=2001:db8::9:255")
            .unwrap();
        assert_eq!(v.rport(), Some(None));
        assert_eq!(v.host, Host::Name("host.example.com"));
        for bad in [
            &b"SIP/2.0/UDP 192.0.2.15;;"[..],
            b"SIP/2.0/UDP",
            b"SIP/2.0 host",
            b"SIP/2.0/UDP host;ttl=256",
            b"SIP/2.0/UDP host;received=example.com",
            b"SIP/2.0/UDP host;rport=70000",
            b"SIP/2.0/UDP host:99999",
        ] {
            assert!(Via::parse(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn name_addr_forms() {
        let n = NameAddr::parse(
            br#""J Rosenberg \\\"" <sip:jdrosen@example.com>;tag=98asjd8"#,
            "From",
        )
        .unwrap();
        assert_eq!(n.display_name().as_deref(), Some(r#"J Rosenberg \""#));
        assert_eq!(n.tag(), Some("98asjd8"));
        let n = NameAddr::parse(b"sip:user@example.com;tag=1", "To").unwrap();
        assert!(!n.angle);
        assert_eq!(n.uri_raw, b"sip:user@example.com");
        assert_eq!(n.tag(), Some("1"));
        let n = NameAddr::parse(b"caller<sip:caller@example.com>;tag=323", "From").unwrap();
        assert_eq!(n.display_name().as_deref(), Some("caller"));
        let n = NameAddr::parse(b"Bob Smith <sip:bob@example.com>", "To").unwrap();
        assert_eq!(n.display, Some(&b"Bob Smith"[..]));
        for bad in [
            &b"Bell, Alexander <sip:a.g.bell@example.com>;tag=43"[..],
            b"\"Watson <sip:t.watson@example.org>",
            b"\"Watson\" < sip:t.watson@example.org >",
            b"sip:user@example.com?Route=%3Csip:sip.example.com%3E",
            b"<sip:user@example.com",
            b"<sip:user@example.com>;;",
            b"",
        ] {
            assert!(
                NameAddr::parse_full(bad, "To").is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn contact_and_q() {
        assert_eq!(Contact::parse(b" * ").unwrap(), Contact::Star);
        match Contact::parse(b"<sip:a@b>;q=0.7;expires=3600;+sip.instance=\"<urn:x>\"").unwrap() {
            Contact::Addr(a) => {
                assert_eq!(a.params.get("q"), Some(Some(&b"0.7"[..])));
                assert_eq!(a.params.value("+sip.instance").as_deref(), Some("<urn:x>"));
            }
            Contact::Star => panic!(),
        }
        assert_eq!(parse_q(b"1"), Some(1000));
        assert_eq!(parse_q(b"0.125"), Some(125));
        assert_eq!(parse_q(b"1.001"), None);
        assert_eq!(parse_q(b"0.1234"), None);
        assert!(Contact::parse(b"<sip:a@b>;expires=280297596632815").is_err());
        assert!(Contact::parse(b"<sip:a@b>;q=2").is_err());
    }

    #[test]
    fn scalars() {
        assert_eq!(
            CSeq::parse(b"4711 INVITE").unwrap(),
            CSeq {
                seq: 4711,
                method: "INVITE"
            }
        );
        assert!(CSeq::parse(b"36893488147419103232 INVITE").is_err());
        assert!(CSeq::parse(b"1INVITE").is_err());
        assert!(CSeq::parse(b"1 INVITE x").is_err());
        assert_eq!(parse_max_forwards(b"70").unwrap(), 70);
        assert!(parse_max_forwards(b"300").is_err());
        assert!(parse_delta(b"4294967296", "Expires").is_err());
        assert!(check_call_id(b"abc@host").is_ok());
        assert!(check_call_id(b"a b").is_err());
        assert!(check_call_id(b"a@b@c").is_err());
    }

    #[test]
    fn dates_and_lists() {
        assert!(check_date(b"Sat, 13 Nov 2010 23:29:00 GMT").is_ok());
        assert!(check_date(b"Fri, 01 Jan 2010 16:00:00 EST").is_err());
        assert!(check_date(b"Sat, 32 Nov 2010 23:29:00 GMT").is_err());
        assert!(check_token_list(b"100rel, timer", "Supported", true).is_ok());
        assert!(check_token_list(b"", "Supported", true).is_ok());
        assert!(check_token_list(b"", "Require", false).is_err());
        assert!(check_token_list(b"a b", "Require", false).is_err());
        assert_eq!(
            check_retry_after(b"120 (I'm in a meeting);duration=3600").unwrap(),
            120
        );
        assert!(check_retry_after(b"18446744073709551616").is_err());
        assert!(check_warning(br#"370 devnull "Choose a bigger pipe""#).is_ok());
        assert!(check_warning(br#"1812 overture "In Progress""#).is_err());
    }

    #[test]
    fn auth_params() {
        let a = Auth::parse(br#"Digest username="alice", realm="atlanta.com", nonce="84a4cc6f", uri="sip:bob@biloxi.com", response="7587245234b3434cc3412213e5f113a5432", qop=auth, nc=00000001"#, "Authorization").unwrap();
        assert_eq!(a.scheme, "Digest");
        assert_eq!(a.param("realm").as_deref(), Some("atlanta.com"));
        assert_eq!(a.param("NC").as_deref(), Some("00000001"));
        assert!(Auth::parse(b"NoOneKnowsThisScheme opaque-data=here", "Authorization").is_ok());
        assert!(Auth::parse(b"Digest", "Authorization").is_err());
        assert!(Auth::parse(b"Digest realm=", "Authorization").is_err());
    }

    #[test]
    fn media_types() {
        let m = MediaType::parse(
            b"multipart/mixed;boundary=\"unique-boundary-1\"",
            "Content-Type",
        )
        .unwrap();
        assert!(m.is("Multipart", "MIXED"));
        assert_eq!(
            m.params.value("boundary").as_deref(),
            Some("unique-boundary-1")
        );
        assert!(MediaType::parse(b"text", "Content-Type").is_err());
    }
}
