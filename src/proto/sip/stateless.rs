//! The first look at every received message, before any transaction:
//! requests that cannot be served are answered statelessly with the status
//! the fault calls for, and malformed responses are dropped silently
//! (RFC 3261 §8.2, §16.3, §18.3; RFC 4475).
//!
//! | fault | answer |
//! |---|---|
//! | unparseable or invalid request | 400, the reason phrase names the fault |
//! | SIP version other than 2.0 | 505 |
//! | message or body over the limit | 513 |
//! | Request-URI scheme not served | 416 |
//! | unknown option tag in Require (or Proxy-Require at a proxy) | 420 with Unsupported |
//! | Max-Forwards 0 on a request to forward | 483 |
//!
//! An ACK is never answered; a request without a usable Via cannot be
//! answered and is dropped.

use bytes::Bytes;

use super::error::{Limit, SipError};
use super::grammar::{split_commas, trim};
use super::limits::Limits;
use super::message::{Framing, Message, Method};
use super::name::HeaderName;
use super::typed::parse_max_forwards;
use super::uri::Uri;

/// What this server serves, for the checks that depend on it.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Request-URI schemes accepted (lower case).
    pub schemes: Vec<String>,
    /// Option tags understood (Require, Proxy-Require).
    pub supported: Vec<String>,
    /// Check Proxy-Require too (a proxy must, RFC 3261 §16.3 item 6).
    pub proxy: bool,
    /// Keys the To tags of stateless answers, so a retransmitted request
    /// gets the same tag (RFC 3261 §8.2.7) and outsiders cannot predict it.
    pub tag_secret: u64,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            schemes: ["sip", "sips", "tel", "im", "pres"]
                .map(String::from)
                .to_vec(),
            supported: Vec::new(),
            proxy: true,
            tag_secret: 0,
        }
    }
}

/// The outcome of screening one received message.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Verdict {
    /// A well-formed message to hand to the transaction layer.
    Accept(Message),
    /// A request refused: send these bytes back to where it came from.
    Answer {
        /// The status code sent.
        status: u16,
        /// The response, printed.
        response: Vec<u8>,
    },
    /// Nothing to do (a malformed response, an ACK, an unanswerable request).
    Drop(SipError),
}

/// Screens one received message (see the module documentation). Answers
/// carry a To tag derived from the request and `policy.tag_secret`.
pub fn screen(data: Bytes, framing: Framing, limits: &Limits, policy: &Policy) -> Verdict {
    let secret = policy.tag_secret;
    let is_response = data.len() >= 4 && data[..4].eq_ignore_ascii_case(b"SIP/");
    let msg = match Message::parse(data.clone(), framing, limits) {
        Ok(m) => m,
        Err(e) if is_response => return Verdict::Drop(e),
        Err(e) => {
            return match Salvaged::from_bytes(&data, limits) {
                Some(s) if !s.is_ack => {
                    answer(&s, e.status(), &e.to_string(), &s.tag(secret), &[], limits)
                }
                _ => Verdict::Drop(e),
            }
        }
    };
    if let Err(e) = msg.validate(limits) {
        if !msg.is_request() || matches!(msg.method(), Some(Method::Ack)) {
            return Verdict::Drop(e);
        }
        return match Salvaged::from_message(&msg) {
            Some(s) => answer(&s, e.status(), &e.to_string(), &s.tag(secret), &[], limits),
            None => Verdict::Drop(e),
        };
    }
    if !msg.is_request() || matches!(msg.method(), Some(Method::Ack)) {
        return Verdict::Accept(msg);
    }
    let refuse =
        |status: u16, reason: &str, extra: &[(&str, String)]| match Salvaged::from_message(&msg) {
            Some(s) => answer(&s, status, reason, &s.tag(secret), extra, limits),
            None => Verdict::Drop(SipError::Missing("Via")),
        };
    let scheme = match msg.request_uri() {
        Some(Ok(uri)) => scheme_of(&uri),
        _ => String::new(),
    };
    if !policy.schemes.contains(&scheme) {
        return refuse(416, &format!("Unsupported URI Scheme {scheme}"), &[]);
    }
    if !matches!(msg.method(), Some(Method::Cancel)) {
        let mut unknown: Vec<String> = Vec::new();
        let mut names = vec![HeaderName::Require];
        if policy.proxy {
            names.push(HeaderName::ProxyRequire);
        }
        for name in names {
            for tag in msg.headers().values(name) {
                let tag = String::from_utf8_lossy(trim(tag)).into_owned();
                let known = policy
                    .supported
                    .iter()
                    .any(|s| s.eq_ignore_ascii_case(&tag));
                if !known && !unknown.iter().any(|u| u.eq_ignore_ascii_case(&tag)) {
                    unknown.push(tag);
                }
            }
        }
        if !unknown.is_empty() {
            // As many of the unknown tags as one header line holds.
            let mut list = String::new();
            for tag in &unknown {
                if "Unsupported: ".len() + list.len() + tag.len() + 2 > limits.max_header_line {
                    break;
                }
                if !list.is_empty() {
                    list.push_str(", ");
                }
                list.push_str(tag);
            }
            return refuse(420, "Bad Extension", &[("Unsupported", list)]);
        }
    }
    let mf = msg
        .headers()
        .get(HeaderName::MaxForwards)
        .and_then(|v| parse_max_forwards(v).ok());
    if mf == Some(0) && !matches!(msg.method(), Some(Method::Options)) {
        return refuse(483, "Too Many Hops", &[]);
    }
    Verdict::Accept(msg)
}

fn scheme_of(uri: &Uri<'_>) -> String {
    uri.scheme().to_ascii_lowercase()
}

/// The fields an answer copies from the request (RFC 3261 §8.2.6.2).
#[derive(Debug, Default)]
struct Salvaged {
    vias: Vec<Vec<u8>>,
    from: Option<Vec<u8>>,
    to: Option<Vec<u8>>,
    call_id: Option<Vec<u8>>,
    cseq: Option<Vec<u8>>,
    is_ack: bool,
}

/// A value copied into an answer must print as one line.
fn printable(v: &[u8]) -> bool {
    !v.iter().any(|&c| (c < 0x20 && c != b'\t') || c == 0x7f)
}

impl Salvaged {
    fn keep(&mut self, name: HeaderName, value: &[u8]) {
        if !printable(value) {
            return;
        }
        let v = value.to_vec();
        match name {
            HeaderName::Via => self.vias.push(v),
            HeaderName::From => self.from = self.from.take().or(Some(v)),
            HeaderName::To => self.to = self.to.take().or(Some(v)),
            HeaderName::CallId => self.call_id = self.call_id.take().or(Some(v)),
            HeaderName::CSeq => self.cseq = self.cseq.take().or(Some(v)),
            _ => {}
        }
    }

    /// A To tag that is the same for every retransmission of the request:
    /// a keyed hash of the fields that identify it.
    fn tag(&self, secret: u64) -> String {
        use std::hash::{Hash, Hasher};
        let mut h = std::hash::DefaultHasher::new();
        secret.hash(&mut h);
        self.vias.first().hash(&mut h);
        self.from.hash(&mut h);
        self.call_id.hash(&mut h);
        self.cseq.hash(&mut h);
        format!("s{:012x}", h.finish() & 0xffff_ffff_ffff)
    }

    fn from_message(msg: &Message) -> Option<Salvaged> {
        let mut s = Salvaged {
            is_ack: matches!(msg.method(), Some(Method::Ack)),
            ..Salvaged::default()
        };
        for h in msg.headers().iter() {
            s.keep(h.name, h.value);
        }
        (!s.vias.is_empty()).then_some(s)
    }

    /// Reads the fields from a message the parser refused, line by line
    /// and leniently, within the limits.
    fn from_bytes(data: &[u8], limits: &Limits) -> Option<Salvaged> {
        let data = &data[..data.len().min(limits.max_message_size)];
        let mut lines = data
            .split(|&c| c == b'\n')
            .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
        let first = lines.next()?;
        let mut s = Salvaged {
            is_ack: first.starts_with(b"ACK "),
            ..Salvaged::default()
        };
        for line in lines.take(limits.max_headers * 2) {
            if line.is_empty() {
                break;
            }
            if let Some(colon) = memchr::memchr(b':', line) {
                let name = HeaderName::from_bytes(trim(&line[..colon]));
                s.keep(name, trim(&line[colon + 1..]));
            }
        }
        (!s.vias.is_empty()).then_some(s)
    }
}

/// Marks where a request really came from in its top Via (RFC 3261
/// §18.2.1, RFC 3581 §4): `received` when the sent-by is not the source
/// address, and the source port in an empty `rport`. A top Via that does
/// not parse is left as it is.
pub fn stamp_via(msg: &mut Message, source: std::net::SocketAddr) {
    if !msg.is_request() {
        return;
    }
    let Some(first) = msg.headers().get(HeaderName::Via).map(<[u8]>::to_vec) else {
        return;
    };
    let mut values = split_commas(&first);
    let top = values.next().unwrap_or(b"").to_vec();
    let rest: Vec<Vec<u8>> = values.map(<[u8]>::to_vec).collect();
    let Ok(via) = super::typed::Via::parse(&top) else {
        return;
    };
    let same_host = match via.host {
        super::uri::Host::V4(a) => std::net::IpAddr::V4(a) == source.ip(),
        super::uri::Host::V6(a) => std::net::IpAddr::V6(a) == source.ip(),
        super::uri::Host::Name(_) => false,
    };
    let wants_rport = via.rport() == Some(None);
    if same_host && !wants_rport {
        return;
    }
    let mut stamped = String::new();
    for part in String::from_utf8_lossy(&top).split(';') {
        let name = part.split('=').next().unwrap_or("").trim();
        if name.eq_ignore_ascii_case("received") {
            continue;
        }
        if !stamped.is_empty() {
            stamped.push(';');
        }
        if name.eq_ignore_ascii_case("rport") && wants_rport {
            stamped.push_str(&format!("rport={}", source.port()));
        } else {
            stamped.push_str(part);
        }
    }
    if !same_host {
        stamped.push_str(&format!(";received={}", source.ip()));
    }
    for r in rest {
        stamped.push_str(", ");
        stamped.push_str(&String::from_utf8_lossy(&r));
    }
    // The value came from a parsed field, so it prints as one; a refusal
    // would leave the Via as received, which is still a valid answer path.
    let _ = msg.headers_mut().set_first(HeaderName::Via, &stamped);
}

/// A To tag for a response sent without a transaction: the same for every
/// retransmission of `request` (RFC 3261 §8.2.7), keyed by `secret`.
pub fn stateless_tag(request: &Message, secret: u64) -> String {
    Salvaged::from_message(request)
        .unwrap_or_default()
        .tag(secret)
}

/// A response to `request` (RFC 3261 §8.2.6.2): its Vias, From, To (with
/// `to_tag` added when it has none), Call-ID and CSeq, then `extra` fields
/// and an empty body.
pub fn respond(
    request: &Message,
    status: u16,
    reason: &str,
    to_tag: &str,
    extra: &[(&str, String)],
) -> Vec<u8> {
    let s = Salvaged::from_message(request).unwrap_or_default();
    match answer(&s, status, reason, to_tag, extra, &Limits::default()) {
        Verdict::Answer { response, .. } => response,
        _ => Vec::new(),
    }
}

/// A reason phrase made of what RFC 3261 §25.1 allows, from any text.
fn reason_phrase(text: &str) -> String {
    let allowed =
        |c: char| c.is_alphanumeric() || " \t-_.!~*'();/?:@&=+$,".contains(c) || !c.is_ascii();
    let mut out: String = text
        .chars()
        .map(|c| match c {
            '"' => '\'',
            '<' => '(',
            '>' => ')',
            c if allowed(c) && !c.is_control() => c,
            _ => '_',
        })
        .take(160)
        .collect();
    if out.trim().is_empty() {
        out = "Refused".into();
    }
    out
}

/// The answer to a request: never more fields, longer lines or more bytes
/// than Parley's own `limits` accept, whatever the request carried. A From,
/// To, Call-ID or CSeq too long to copy, or a top Via too long, leaves the
/// request unanswered (answering would echo the attack); Vias past the
/// header budget and extra fields that do not fit are left out.
fn answer(
    s: &Salvaged,
    status: u16,
    reason: &str,
    to_tag: &str,
    extra: &[(&str, String)],
    limits: &Limits,
) -> Verdict {
    let fits = |name: &str, value: &[u8]| name.len() + 2 + value.len() <= limits.max_header_line;
    let to = s.to.as_ref().map(|t| {
        let has_tag = super::typed::NameAddr::parse(t, "To").is_ok_and(|n| n.tag().is_some());
        let mut v = t.clone();
        if !has_tag && status != 100 {
            v.extend_from_slice(format!(";tag={to_tag}").as_bytes());
        }
        v
    });
    let identifiers = [
        ("From", s.from.as_ref()),
        ("To", to.as_ref()),
        ("Call-ID", s.call_id.as_ref()),
        ("CSeq", s.cseq.as_ref()),
    ];
    for (name, value) in identifiers {
        if let Some(v) = value {
            if !fits(name, v) {
                return Verdict::Drop(SipError::TooLarge {
                    limit: Limit::HeaderLine,
                    seen: name.len() + 2 + v.len(),
                    max: limits.max_header_line,
                });
            }
        }
    }
    let extra: Vec<&(&str, String)> = extra
        .iter()
        .filter(|(n, v)| fits(n, v.as_bytes()))
        .collect();
    let fixed = identifiers.iter().filter(|(_, v)| v.is_some()).count() + extra.len() + 1;
    let room = limits
        .max_headers
        .saturating_sub(fixed)
        .min(limits.max_vias);
    // The top Via first: the answer goes where it says.
    let vias: Vec<&[u8]> = s
        .vias
        .iter()
        .flat_map(|v| split_commas(v))
        .take_while(|v| fits("Via", v))
        .take(room)
        .collect();
    if vias.is_empty() {
        return Verdict::Drop(SipError::Missing("Via"));
    }
    // Sized up front: a response can stay in its server transaction for
    // Timer J (32 s), so it should not carry the slack of a grown buffer.
    let reason = reason_phrase(reason);
    let need = 32
        + reason.len()
        + vias.iter().map(|v| v.len() + 7).sum::<usize>()
        + identifiers
            .iter()
            .map(|(_, f)| f.map_or(0, |v| v.len() + 12))
            .sum::<usize>()
        + extra
            .iter()
            .map(|(n, v)| n.len() + v.len() + 4)
            .sum::<usize>()
        + 24;
    if need > limits.max_message_size {
        return Verdict::Drop(SipError::TooLarge {
            limit: Limit::MessageSize,
            seen: need,
            max: limits.max_message_size,
        });
    }
    let mut out = Vec::with_capacity(need);
    out.extend_from_slice(format!("SIP/2.0 {status} {reason}\r\n").as_bytes());
    let mut field = |name: &str, value: &[u8]| {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    };
    for v in vias {
        field("Via", v);
    }
    for (name, value) in identifiers {
        if let Some(v) = value {
            field(name, v);
        }
    }
    for (name, value) in extra {
        field(name, value.as_bytes());
    }
    field("Content-Length", b"0");
    out.extend_from_slice(b"\r\n");
    Verdict::Answer {
        status,
        response: out,
    }
}
