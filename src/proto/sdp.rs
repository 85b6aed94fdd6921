//! SDP (RFC 8866) as far as chat needs it, and the offer/answer of MSRP
//! message streams (RFC 3264, RFC 4975 §8, RFC 6135).
//!
//! A description is kept as its lines, in order: what Parley does not
//! interpret is printed back byte for byte. The `m=` line and the
//! attributes of message streams (`a=path`, `a=accept-types`,
//! `a=accept-wrapped-types`, `a=max-size`, `a=setup`, `a=connection`,
//! `a=file-selector`) have typed accessors. Parsing is bounded (size, lines,
//! media sections, line length) and never panics.

use std::fmt;

/// Limits for one description.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SdpLimits {
    /// The whole description in bytes.
    pub max_size: usize,
    /// Lines in all.
    pub max_lines: usize,
    /// Media sections (`m=` lines).
    pub max_media: usize,
    /// One line in bytes.
    pub max_line: usize,
}

impl Default for SdpLimits {
    fn default() -> Self {
        SdpLimits {
            max_size: 16 * 1024,
            max_lines: 256,
            max_media: 16,
            max_line: 2048,
        }
    }
}

/// Why a description was refused. The text names the fault, for the
/// Warning of a 488 and for the log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SdpError {
    /// Over a limit.
    #[error("SDP {what} {seen} exceeds the limit of {max}")]
    TooLarge {
        /// Which limit: size, line count, media count, line length.
        what: &'static str,
        /// The value seen.
        seen: usize,
        /// The limit.
        max: usize,
    },
    /// Not UTF-8, or a NUL.
    #[error("SDP is not text")]
    NotText,
    /// A line is not `<letter>=<value>`.
    #[error("SDP line {line} is not <type>=<value>")]
    BadLine {
        /// 1-based.
        line: usize,
    },
    /// The first line is not `v=0`.
    #[error("SDP does not start with v=0")]
    Version,
    /// A field every description has is missing.
    #[error("SDP has no {0}= line")]
    Missing(char),
    /// An `m=` line does not follow `media port[/n] proto fmt...`.
    #[error("SDP m= line {line} is malformed")]
    BadMedia {
        /// 1-based.
        line: usize,
    },
}

/// One `<type>=<value>` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// The type letter.
    pub kind: char,
    /// Everything after `=`.
    pub value: String,
}

impl Field {
    /// A line.
    pub fn new(kind: char, value: impl Into<String>) -> Field {
        Field {
            kind,
            value: value.into(),
        }
    }

    /// An `a=` line.
    pub fn attr(name: &str, value: Option<&str>) -> Field {
        match value {
            Some(v) => Field::new('a', format!("{name}:{v}")),
            None => Field::new('a', name),
        }
    }

    /// For an `a=` line: its name and value (`None` for a flag).
    pub fn attribute(&self) -> Option<(&str, Option<&str>)> {
        if self.kind != 'a' {
            return None;
        }
        Some(match self.value.split_once(':') {
            Some((n, v)) => (n, Some(v)),
            None => (self.value.as_str(), None),
        })
    }
}

/// One media section: its `m=` line, typed, and the lines below it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Media {
    /// `message`, `audio`, ...
    pub media: String,
    /// The port; 0 for a rejected or disabled stream.
    pub port: u16,
    /// `/<number of ports>` when given.
    pub port_count: Option<u16>,
    /// `TCP/MSRP`, `TCP/TLS/MSRP`, `RTP/AVP`, ...
    pub proto: String,
    /// The formats (`*` for MSRP).
    pub formats: Vec<String>,
    /// The `i=`, `c=`, `b=`, `k=` and `a=` lines, in order.
    pub fields: Vec<Field>,
}

/// A session description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sdp {
    /// The session-level lines, `v=` first, in order.
    pub session: Vec<Field>,
    /// The media sections, in order.
    pub media: Vec<Media>,
}

/// `a=setup` (RFC 4145, for MSRP RFC 6135).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setup {
    /// Opens the connection.
    Active,
    /// Waits for it.
    Passive,
    /// Either (an offer only).
    ActPass,
    /// Neither for now.
    HoldConn,
}

impl Setup {
    fn parse(s: &str) -> Option<Setup> {
        Some(match s.trim() {
            "active" => Setup::Active,
            "passive" => Setup::Passive,
            "actpass" => Setup::ActPass,
            "holdconn" => Setup::HoldConn,
            _ => return None,
        })
    }

    /// As written in SDP.
    pub fn as_str(self) -> &'static str {
        match self {
            Setup::Active => "active",
            Setup::Passive => "passive",
            Setup::ActPass => "actpass",
            Setup::HoldConn => "holdconn",
        }
    }
}

impl Sdp {
    /// Parses a description with the default limits.
    pub fn parse(bytes: &[u8]) -> Result<Sdp, SdpError> {
        Sdp::parse_with(bytes, &SdpLimits::default())
    }

    /// Parses a description. Lines end in CRLF or, leniently, LF.
    pub fn parse_with(bytes: &[u8], limits: &SdpLimits) -> Result<Sdp, SdpError> {
        if bytes.len() > limits.max_size {
            return Err(SdpError::TooLarge {
                what: "size",
                seen: bytes.len(),
                max: limits.max_size,
            });
        }
        let text = std::str::from_utf8(bytes).map_err(|_| SdpError::NotText)?;
        if text.contains('\0') {
            return Err(SdpError::NotText);
        }
        let mut session = Vec::new();
        let mut media: Vec<Media> = Vec::new();
        let mut count = 0;
        for (n, raw) in text.split('\n').enumerate() {
            let line = raw.strip_suffix('\r').unwrap_or(raw);
            if line.is_empty() {
                // A trailing line end, or blank lines some senders add.
                continue;
            }
            count += 1;
            if count > limits.max_lines {
                return Err(SdpError::TooLarge {
                    what: "line count",
                    seen: count,
                    max: limits.max_lines,
                });
            }
            if line.len() > limits.max_line {
                return Err(SdpError::TooLarge {
                    what: "line length",
                    seen: line.len(),
                    max: limits.max_line,
                });
            }
            let number = n + 1;
            let mut chars = line.chars();
            let kind = chars.next().ok_or(SdpError::BadLine { line: number })?;
            if !kind.is_ascii_lowercase() || chars.next() != Some('=') || line.contains('\r') {
                return Err(SdpError::BadLine { line: number });
            }
            let value = &line[2..];
            if count == 1 {
                if kind != 'v' || value != "0" {
                    return Err(SdpError::Version);
                }
            } else if kind == 'v' {
                return Err(SdpError::BadLine { line: number });
            }
            if kind == 'm' {
                if media.len() == limits.max_media {
                    return Err(SdpError::TooLarge {
                        what: "media count",
                        seen: media.len() + 1,
                        max: limits.max_media,
                    });
                }
                media.push(parse_m(value).ok_or(SdpError::BadMedia { line: number })?);
                continue;
            }
            let field = Field::new(kind, value);
            match media.last_mut() {
                Some(m) => m.fields.push(field),
                None => session.push(field),
            }
        }
        if session.is_empty() {
            return Err(SdpError::Version);
        }
        for kind in ['o', 's'] {
            if !session.iter().any(|f| f.kind == kind) {
                return Err(SdpError::Missing(kind));
            }
        }
        Ok(Sdp { session, media })
    }

    /// The connection address: the media's `c=`, else the session's.
    pub fn connection_of<'a>(&'a self, m: &'a Media) -> Option<&'a str> {
        m.fields
            .iter()
            .chain(self.session.iter())
            .find(|f| f.kind == 'c')
            .map(|f| f.value.as_str())
    }

    /// The printed description, CRLF after every line.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.to_string().into_bytes()
    }
}

fn parse_m(value: &str) -> Option<Media> {
    let mut parts = value.split(' ');
    let media = parts.next().filter(|s| is_token(s))?;
    let port_part = parts.next()?;
    let (port, count) = match port_part.split_once('/') {
        Some((p, c)) => (p, Some(number(c)?)),
        None => (port_part, None),
    };
    let port = number(port)?;
    let proto = parts
        .next()
        .filter(|s| !s.is_empty() && s.split('/').all(is_token))?;
    let formats: Vec<String> = parts.map(str::to_string).collect();
    if formats.is_empty()
        || formats
            .iter()
            .any(|f| f.is_empty() || !f.bytes().all(|b| b.is_ascii_graphic()))
    {
        return None;
    }
    Some(Media {
        media: media.to_string(),
        port,
        port_count: count,
        proto: proto.to_string(),
        formats,
        fields: Vec::new(),
    })
}

fn number(s: &str) -> Option<u16> {
    if s.is_empty() || s.len() > 5 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// RFC 8866 `token`.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`{|}~".contains(&b))
}

impl fmt::Display for Sdp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for field in &self.session {
            write!(f, "{}={}\r\n", field.kind, field.value)?;
        }
        for m in &self.media {
            write!(f, "{m}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Media {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "m={} {}", self.media, self.port)?;
        if let Some(n) = self.port_count {
            write!(f, "/{n}")?;
        }
        write!(f, " {}", self.proto)?;
        for format in &self.formats {
            write!(f, " {format}")?;
        }
        f.write_str("\r\n")?;
        for field in &self.fields {
            write!(f, "{}={}\r\n", field.kind, field.value)?;
        }
        Ok(())
    }
}

impl Media {
    /// The value of the first `a=<name>:<value>`.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .filter_map(Field::attribute)
            .find(|(n, _)| *n == name)
            .and_then(|(_, v)| v)
    }

    /// Whether `a=<name>` (flag or with a value) is there.
    pub fn has_attr(&self, name: &str) -> bool {
        self.fields
            .iter()
            .filter_map(Field::attribute)
            .any(|(n, _)| n == name)
    }

    /// An MSRP message stream: `m=message` over `TCP/MSRP` or
    /// `TCP/TLS/MSRP`.
    pub fn is_msrp(&self) -> bool {
        self.media.eq_ignore_ascii_case("message") && msrp_proto(&self.proto).is_some()
    }

    /// Over TLS (`TCP/TLS/MSRP`).
    pub fn is_tls(&self) -> bool {
        msrp_proto(&self.proto) == Some(true)
    }

    /// `a=path`: the MSRP URIs, first hop first (RFC 4975 §8.2).
    pub fn path(&self) -> Vec<&str> {
        self.attr("path")
            .map(|p| p.split_ascii_whitespace().collect())
            .unwrap_or_default()
    }

    /// `a=accept-types` (RFC 4975 §8.6).
    pub fn accept_types(&self) -> Vec<&str> {
        self.attr("accept-types")
            .map(|p| p.split_ascii_whitespace().collect())
            .unwrap_or_default()
    }

    /// `a=accept-wrapped-types`.
    pub fn accept_wrapped_types(&self) -> Vec<&str> {
        self.attr("accept-wrapped-types")
            .map(|p| p.split_ascii_whitespace().collect())
            .unwrap_or_default()
    }

    /// `a=max-size`: the largest message the endpoint takes, in bytes.
    pub fn max_size(&self) -> Option<u64> {
        self.attr("max-size").and_then(|v| v.trim().parse().ok())
    }

    /// `a=setup` (RFC 6135; absent means the RFC 4975 default).
    pub fn setup(&self) -> Option<Setup> {
        self.attr("setup").and_then(Setup::parse)
    }

    /// `a=connection:new` or `existing` (RFC 4145).
    pub fn connection(&self) -> Option<&str> {
        self.attr("connection").map(str::trim)
    }

    /// `a=file-selector` (RFC 5547), kept as written.
    pub fn file_selector(&self) -> Option<&str> {
        self.attr("file-selector")
    }

    /// `sendonly`, `recvonly`, `inactive` or `sendrecv` (the default).
    pub fn direction(&self) -> &'static str {
        for d in ["sendonly", "recvonly", "inactive", "sendrecv"] {
            if self.has_attr(d) {
                return d;
            }
        }
        "sendrecv"
    }
}

/// For an MSRP transport protocol: whether it is TLS; `None` otherwise.
fn msrp_proto(proto: &str) -> Option<bool> {
    if proto.eq_ignore_ascii_case("TCP/MSRP") {
        Some(false)
    } else if proto.eq_ignore_ascii_case("TCP/TLS/MSRP") {
        Some(true)
    } else {
        None
    }
}

/// Whether a media type `offered` (as in `a=accept-types`, `*` and
/// `type/*` allowed) covers `wanted` (parameters ignored, case-insensitive).
pub fn type_matches(offered: &str, wanted: &str) -> bool {
    let bare = |s: &str| {
        s.split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
    };
    let (o, w) = (bare(offered), bare(wanted));
    if o == "*" || o == w {
        return true;
    }
    match (o.split_once('/'), w.split_once('/')) {
        (Some((ot, "*")), Some((wt, _))) => ot == wt,
        (Some((ot, _)), Some((wt, "*"))) => ot == wt,
        _ => false,
    }
}

/// What the answering side offers for message streams.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MsrpLocal {
    /// The `a=path` this side answers with: the relays' URIs first, this
    /// side's own last (RFC 4975 §8.2).
    pub paths: Vec<String>,
    /// The address for `c=` and the `m=` port.
    pub address: String,
    /// The port of the listener in the path.
    pub port: u16,
    /// Over TLS (`TCP/TLS/MSRP`); a stream with the other transport is
    /// rejected.
    pub tls: bool,
    /// The types this side takes.
    pub accept_types: Vec<String>,
    /// The types it takes inside CPIM.
    pub accept_wrapped_types: Vec<String>,
    /// The largest message it takes.
    pub max_size: Option<u64>,
}

/// Why a stream, or the whole offer, was not accepted: the text of a 488's
/// Warning (RFC 3261 §20.43, code 305 or 304).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// 304 (media type not available), 305 (incompatible media format) or
    /// 302 (incompatible transport).
    pub warn_code: u16,
    /// Why.
    pub text: String,
}

/// The answer to an offer (RFC 3264 §6): one `m=` line for each offered,
/// in order; message streams Parley can take are accepted (at most one),
/// every other stream is refused with port 0. `Err` when no stream could
/// be accepted, with the reason for the first message stream (or for the
/// lack of one).
pub fn answer(offer: &Sdp, local: &MsrpLocal, origin: &str) -> Result<(Sdp, usize), Refusal> {
    let mut accepted = None;
    let mut first_refusal = None;
    let mut media = Vec::with_capacity(offer.media.len());
    for (i, m) in offer.media.iter().enumerate() {
        let outcome = if accepted.is_some() {
            Err(Refusal {
                warn_code: 304,
                text: "one message stream per session".into(),
            })
        } else {
            answer_stream(m, local)
        };
        match outcome {
            Ok(answered) => {
                accepted = Some(i);
                media.push(answered);
            }
            Err(r) => {
                if m.is_msrp() || m.media.eq_ignore_ascii_case("message") {
                    first_refusal.get_or_insert(r);
                }
                media.push(Media {
                    media: m.media.clone(),
                    port: 0,
                    port_count: None,
                    proto: m.proto.clone(),
                    formats: m.formats.clone(),
                    fields: Vec::new(),
                });
            }
        }
    }
    let Some(index) = accepted else {
        return Err(first_refusal.unwrap_or(Refusal {
            warn_code: 304,
            text: "no message stream (m=message TCP/MSRP or TCP/TLS/MSRP) offered".into(),
        }));
    };
    let session = vec![
        Field::new('v', "0"),
        Field::new('o', origin),
        Field::new('s', "-"),
        Field::new('c', connection_line(&local.address)),
        Field::new('t', "0 0"),
    ];
    Ok((Sdp { session, media }, index))
}

fn connection_line(address: &str) -> String {
    if address.contains(':') {
        format!("IN IP6 {address}")
    } else {
        format!("IN IP4 {address}")
    }
}

/// The answer for one offered stream, or why it is refused.
pub fn answer_stream(m: &Media, local: &MsrpLocal) -> Result<Media, Refusal> {
    if !m.media.eq_ignore_ascii_case("message") {
        return Err(Refusal {
            warn_code: 304,
            text: format!("media {} is not offered here", m.media),
        });
    }
    let Some(tls) = msrp_proto(&m.proto) else {
        return Err(Refusal {
            warn_code: 302,
            text: format!("transport {} is not MSRP", m.proto),
        });
    };
    if m.port == 0 {
        return Err(Refusal {
            warn_code: 304,
            text: "the stream is disabled (port 0)".into(),
        });
    }
    if tls != local.tls {
        return Err(Refusal {
            warn_code: 302,
            text: if local.tls {
                "MSRP over TLS (TCP/TLS/MSRP) is required".into()
            } else {
                "MSRP over TLS is not available here".into()
            },
        });
    }
    let path = m.path();
    if path.is_empty() {
        return Err(Refusal {
            warn_code: 305,
            text: "the message stream has no a=path".into(),
        });
    }
    if path
        .iter()
        .any(|u| crate::proto::msrp::MsrpUri::parse(u).is_err())
    {
        return Err(Refusal {
            warn_code: 305,
            text: "a=path holds a malformed MSRP URI".into(),
        });
    }
    // Content types both sides take (RFC 4975 §8.6).
    let offered = m.accept_types();
    if offered.is_empty() {
        return Err(Refusal {
            warn_code: 305,
            text: "the message stream has no a=accept-types".into(),
        });
    }
    let mut common: Vec<String> = Vec::new();
    for mine in &local.accept_types {
        if offered
            .iter()
            .any(|o| type_matches(o, mine) || type_matches(mine, o))
        {
            common.push(mine.clone());
        }
    }
    if common.is_empty() {
        return Err(Refusal {
            warn_code: 305,
            text: format!(
                "none of the accept-types {} is taken here",
                offered.join(" ")
            ),
        });
    }
    // RFC 6135: the offerer said who connects; when it left the choice,
    // the answerer connects (the RFC 4975 default: the answerer is active).
    let setup = match m.setup() {
        Some(Setup::Active) => Setup::Passive,
        Some(Setup::Passive) | Some(Setup::ActPass) | None => Setup::Active,
        Some(Setup::HoldConn) => Setup::HoldConn,
    };
    let mut fields = Vec::new();
    let direction = match m.direction() {
        "sendonly" => Some("recvonly"),
        "recvonly" => Some("sendonly"),
        "inactive" => Some("inactive"),
        _ => None,
    };
    fields.push(Field::attr("accept-types", Some(&common.join(" "))));
    if !local.accept_wrapped_types.is_empty()
        && common.iter().any(|t| type_matches("message/cpim", t))
    {
        fields.push(Field::attr(
            "accept-wrapped-types",
            Some(&local.accept_wrapped_types.join(" ")),
        ));
    }
    if let Some(max) = local.max_size {
        fields.push(Field::attr("max-size", Some(&max.to_string())));
    }
    fields.push(Field::attr("path", Some(&local.paths.join(" "))));
    fields.push(Field::attr("setup", Some(setup.as_str())));
    if m.setup().is_some() {
        fields.push(Field::attr("connection", Some("new")));
    }
    if let Some(d) = direction {
        fields.push(Field::attr(d, None));
    }
    if let Some(fs) = m.file_selector() {
        fields.push(Field::attr("file-selector", Some(fs)));
    }
    Ok(Media {
        media: m.media.clone(),
        port: local.port,
        port_count: None,
        proto: m.proto.clone(),
        formats: vec!["*".into()],
        fields,
    })
}

/// An offer for one message stream.
pub fn offer(local: &MsrpLocal, origin: &str) -> Sdp {
    let mut fields = vec![Field::attr(
        "accept-types",
        Some(&local.accept_types.join(" ")),
    )];
    if !local.accept_wrapped_types.is_empty() {
        fields.push(Field::attr(
            "accept-wrapped-types",
            Some(&local.accept_wrapped_types.join(" ")),
        ));
    }
    if let Some(max) = local.max_size {
        fields.push(Field::attr("max-size", Some(&max.to_string())));
    }
    fields.push(Field::attr("path", Some(&local.paths.join(" "))));
    // RFC 6135 §4.2: the offerer leaves the choice to the answerer.
    fields.push(Field::attr("setup", Some("actpass")));
    fields.push(Field::attr("connection", Some("new")));
    Sdp {
        session: vec![
            Field::new('v', "0"),
            Field::new('o', origin),
            Field::new('s', "-"),
            Field::new('c', connection_line(&local.address)),
            Field::new('t', "0 0"),
        ],
        media: vec![Media {
            media: "message".into(),
            port: local.port,
            port_count: None,
            proto: if local.tls {
                "TCP/TLS/MSRP"
            } else {
                "TCP/MSRP"
            }
            .into(),
            formats: vec!["*".into()],
            fields,
        }],
    }
}
