//! SIP requests and responses (RFC 3261 §7, §25): framing, the start line,
//! header lines, the body, and the byte-exact printer.
//!
//! Parsing is one pass over the bytes with `memchr`; header values stay in
//! the received buffer. What Parley does not modify prints back exactly as
//! it arrived, so a proxy forwards what it does not understand unchanged.

use bytes::Bytes;

use super::error::{shown, Limit, SipError};
use super::grammar::{is_wsp, parse_usize, text, trim, TOKEN};
use super::headers::{Entry, Headers, Src};
use super::limits::Limits;
use super::name::HeaderName;
use super::uri::Uri;

/// How the message arrived: it decides what a missing Content-Length means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// UDP: the body runs to the end of the datagram when Content-Length is absent,
    /// and octets past Content-Length are discarded (RFC 3261 §18.3).
    Datagram,
    /// TCP/TLS: Content-Length is mandatory.
    Stream,
}

/// A request method. Methods are case-sensitive (RFC 3261 §7.1).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Method {
    /// RFC 3261.
    Invite,
    /// RFC 3261.
    Ack,
    /// RFC 3261.
    Bye,
    /// RFC 3261.
    Cancel,
    /// RFC 3261.
    Options,
    /// RFC 3261.
    Register,
    /// RFC 3428.
    Message,
    /// RFC 6665.
    Subscribe,
    /// RFC 6665.
    Notify,
    /// RFC 3903.
    Publish,
    /// RFC 6086.
    Info,
    /// RFC 3262.
    Prack,
    /// RFC 3311.
    Update,
    /// RFC 3515.
    Refer,
    /// An extension method (any token).
    Other(Bytes),
}

impl Method {
    /// Identifies a method token (exact case).
    pub fn from_bytes(m: &[u8]) -> Method {
        match m {
            b"INVITE" => Method::Invite,
            b"ACK" => Method::Ack,
            b"BYE" => Method::Bye,
            b"CANCEL" => Method::Cancel,
            b"OPTIONS" => Method::Options,
            b"REGISTER" => Method::Register,
            b"MESSAGE" => Method::Message,
            b"SUBSCRIBE" => Method::Subscribe,
            b"NOTIFY" => Method::Notify,
            b"PUBLISH" => Method::Publish,
            b"INFO" => Method::Info,
            b"PRACK" => Method::Prack,
            b"UPDATE" => Method::Update,
            b"REFER" => Method::Refer,
            other => Method::Other(Bytes::copy_from_slice(other)),
        }
    }

    /// The method token.
    pub fn as_str(&self) -> &str {
        match self {
            Method::Other(b) => text(b),
            known => known.label(),
        }
    }

    /// The method as a bounded label (metrics, logs): its name for the
    /// methods Parley knows, `other` for any extension method, so a peer
    /// cannot grow a label set by inventing methods.
    pub fn label(&self) -> &'static str {
        match self {
            Method::Invite => "INVITE",
            Method::Ack => "ACK",
            Method::Bye => "BYE",
            Method::Cancel => "CANCEL",
            Method::Options => "OPTIONS",
            Method::Register => "REGISTER",
            Method::Message => "MESSAGE",
            Method::Subscribe => "SUBSCRIBE",
            Method::Notify => "NOTIFY",
            Method::Publish => "PUBLISH",
            Method::Info => "INFO",
            Method::Prack => "PRACK",
            Method::Update => "UPDATE",
            Method::Refer => "REFER",
            Method::Other(_) => "other",
        }
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The first line of a message.
#[derive(Debug, Clone)]
pub(crate) enum Start {
    Request { method: Method, uri: Src },
    Response { code: u16, reason: Src },
}

/// A SIP request or response.
#[derive(Debug, Clone)]
pub struct Message {
    pub(crate) start: Start,
    pub(crate) start_line: Src,
    pub(crate) headers: Headers,
    pub(crate) body: Body,
}

/// Where the body lives: in the received buffer, or one Parley set.
#[derive(Debug, Clone)]
pub(crate) enum Body {
    Span(u32, u32),
    Owned(Bytes),
}

impl PartialEq for Message {
    /// Equal when the start line, every header (name and value, in order) and
    /// the body are equal; how a header was folded or spelled does not matter.
    fn eq(&self, other: &Self) -> bool {
        self.start == other.start
            && self.start_text() == other.start_text()
            && self.body() == other.body()
            && self.headers.len() == other.headers.len()
            && self.headers.iter().zip(other.headers.iter()).all(|(a, b)| {
                a.name == b.name
                    && a.value == b.value
                    && (a.name != HeaderName::Other || a.raw_name.eq_ignore_ascii_case(b.raw_name))
            })
    }
}

impl Eq for Message {}

impl PartialEq for Start {
    /// Compares what the line means; its text is compared by `Message::eq`.
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Start::Request { method: a, .. }, Start::Request { method: b, .. }) => a == b,
            (Start::Response { code: a, .. }, Start::Response { code: b, .. }) => a == b,
            _ => false,
        }
    }
}

/// The blank line that ends a header section.
static HEAD_END: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
    std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"\r\n\r\n"));

/// Finds where the first message in a stream buffer ends.
///
/// Leading CRLFs (keep-alives, RFC 5626 §4.4.1) are not part of the message:
/// the result says how many to skip. `Ok(None)` means more bytes are needed.
pub fn frame(data: &[u8], limits: &Limits) -> Result<Option<(usize, usize)>, SipError> {
    let skip = data
        .iter()
        .take_while(|&&c| c == b'\r' || c == b'\n')
        .count();
    let data = &data[skip..];
    let head_end = match HEAD_END.find(data) {
        Some(i) => i + 4,
        None if data.len() > limits.max_message_size => {
            return Err(SipError::TooLarge {
                limit: Limit::MessageSize,
                seen: data.len(),
                max: limits.max_message_size,
            })
        }
        None => return Ok(None),
    };
    let mut cl = None;
    let mut pos = memchr::memchr(b'\n', data).map_or(head_end, |i| i + 1);
    while pos < head_end - 2 {
        let end = memchr::memchr(b'\n', &data[pos..head_end]).map_or(head_end, |i| pos + i);
        let line = &data[pos..end];
        if let Some(colon) = memchr::memchr(b':', line) {
            let name = trim(&line[..colon]);
            if HeaderName::from_bytes(name) == HeaderName::ContentLength {
                let v = trim(&line[colon + 1..]);
                let n = parse_usize(v).ok_or_else(|| {
                    SipError::header(
                        "Content-Length",
                        format!("{:?} is not a non-negative integer", shown(v)),
                    )
                })?;
                if cl.is_some_and(|c| c != n) {
                    return Err(SipError::Duplicate {
                        name: "Content-Length",
                        count: 2,
                    });
                }
                cl = Some(n);
            }
        }
        pos = end + 1;
    }
    let cl = cl.ok_or(SipError::MissingContentLength)?;
    let total = head_end.saturating_add(cl);
    if total > limits.max_message_size {
        return Err(SipError::TooLarge {
            limit: Limit::MessageSize,
            seen: total,
            max: limits.max_message_size,
        });
    }
    Ok((data.len() >= total).then_some((skip, total)))
}

impl Message {
    /// Parses one whole message: framing, the start line (Request-URI
    /// included) and the header lines. Header values are typed later, on
    /// demand; [`Message::validate`] checks them all. Octets past
    /// Content-Length are not part of the message (a datagram's are
    /// discarded, RFC 3261 §18.3; on a stream, [`frame`] says where the next
    /// message starts).
    pub fn parse(buf: Bytes, framing: Framing, limits: &Limits) -> Result<Message, SipError> {
        if buf.len() > limits.max_message_size {
            return Err(SipError::TooLarge {
                limit: Limit::MessageSize,
                seen: buf.len(),
                max: limits.max_message_size,
            });
        }
        let data: &[u8] = &buf;
        // RFC 3261 §7.5: CRLFs before the start line are ignored.
        let begin = data
            .iter()
            .take_while(|&&c| c == b'\r' || c == b'\n')
            .count();
        // Line ends, found by one vector search that runs along the message.
        let mut lfs = memchr::memchr_iter(b'\n', &data[begin..]);
        let mut line_end = |pos: usize, line: usize| match lfs.next().map(|i| begin + i) {
            Some(i) if i > pos && data[i - 1] == b'\r' => Ok(i - 1),
            Some(_) => Err(SipError::LineEnding { line }),
            None => Err(SipError::Incomplete),
        };
        // Start line.
        let sl_end = line_end(begin, 1)?;
        let start = parse_start(data, begin, sl_end, limits)?;

        // Header lines.
        let mut list: Vec<Entry> = Vec::with_capacity(16);
        let mut folded = false;
        let mut content_length: Option<(usize, usize)> = None;
        let mut pos = sl_end + 2;
        let mut lineno = 1;
        // Lines until the empty one that ends the header section.
        let body_start = loop {
            match data.get(pos..pos + 2) {
                Some(b"\r\n") => break pos + 2,
                // A datagram is whole: one that ends right after a header
                // line has no body (RFC 4475's own archive file for `baddn`
                // is one). A stream must end its header section itself.
                None if framing == Framing::Datagram && pos == data.len() => break pos,
                None | Some([b'\r', _]) if pos + 1 >= data.len() => {
                    return Err(SipError::Incomplete)
                }
                _ => {}
            }
            lineno += 1;
            let end = line_end(pos, lineno)?;
            let line = &data[pos..end];
            if is_wsp(line[0]) {
                // A fold continues the previous field (RFC 3261 §7.3.1).
                let e = list.last_mut().ok_or(SipError::HeaderLine {
                    line: lineno,
                    reason: "continuation line before any header",
                })?;
                if let Src::Span(s, _) = e.line {
                    if end - s as usize > limits.max_header_line {
                        return Err(SipError::TooLarge {
                            limit: Limit::HeaderLine,
                            seen: end - s as usize,
                            max: limits.max_header_line,
                        });
                    }
                    e.line = Src::Span(s, end as u32);
                    e.value =
                        Src::Span(value_start(data, s as usize, e.name_len) as u32, end as u32);
                }
                folded = true;
                pos = end + 2;
                continue;
            }
            if line.len() > limits.max_header_line {
                return Err(SipError::TooLarge {
                    limit: Limit::HeaderLine,
                    seen: line.len(),
                    max: limits.max_header_line,
                });
            }
            if list.len() == limits.max_headers {
                return Err(SipError::TooLarge {
                    limit: Limit::HeaderCount,
                    seen: list.len() + 1,
                    max: limits.max_headers,
                });
            }
            // The name is a token, then optional white space, then the colon.
            let name_end = line
                .iter()
                .position(|&c| !TOKEN[c as usize])
                .unwrap_or(line.len());
            let mut colon = name_end;
            while colon < line.len() && is_wsp(line[colon]) {
                colon += 1;
            }
            if line.get(colon) != Some(&b':') {
                return Err(SipError::HeaderLine {
                    line: lineno,
                    reason: if memchr::memchr(b':', line).is_none() {
                        "no colon after the header name"
                    } else {
                        "header name is not a token"
                    },
                });
            }
            if name_end == 0 || name_end > u16::MAX as usize {
                return Err(SipError::HeaderLine {
                    line: lineno,
                    reason: "header name is not a token",
                });
            }
            let name = &line[..name_end];
            let mut vstart = pos + colon + 1;
            while vstart < end && is_wsp(data[vstart]) {
                vstart += 1;
            }
            let hname = HeaderName::from_bytes(name);
            if vstart == end {
                // The value may start on a continuation line.
                vstart = value_start(data, pos, name_end as u16).min(end);
            }
            let mut vend = end;
            while vend > vstart && is_wsp(data[vend - 1]) {
                vend -= 1;
            }
            if hname == HeaderName::ContentLength {
                let v = &data[vstart..vend];
                let n = parse_usize(v).ok_or_else(|| {
                    SipError::header(
                        "Content-Length",
                        format!("{:?} is not a non-negative integer", shown(v)),
                    )
                })?;
                content_length = match content_length {
                    None => Some((n, 1)),
                    Some((_, count)) => {
                        return Err(SipError::Duplicate {
                            name: "Content-Length",
                            count: count + 1,
                        })
                    }
                };
            }
            list.push(Entry {
                name: hname,
                name_len: name_end as u16,
                line: Src::Span(pos as u32, end as u32),
                value: Src::Span(vstart as u32, vend as u32),
            });
            pos = end + 2;
        };
        let mut own = Vec::new();
        if folded {
            for e in &mut list {
                if let Src::Span(s, end) = e.value {
                    let v = &data[s as usize..end as usize];
                    if memchr::memchr(b'\n', v).is_some() {
                        let start = own.len() as u32;
                        unfold(v, &mut own);
                        e.value = Src::Own(start, own.len() as u32);
                    }
                }
            }
        }

        // Every line of the head ends in CR LF: the empty line too, when
        // there is one.
        let empty_line = usize::from(data[..body_start].ends_with(b"\r\n\r\n"));
        check_bare_cr(&data[begin..body_start], lineno + empty_line)?;

        // Body.
        let received = data.len() - body_start;
        let body_len = match (content_length, framing) {
            (Some((n, _)), _) => n,
            (None, Framing::Datagram) => received,
            (None, Framing::Stream) => return Err(SipError::MissingContentLength),
        };
        if body_len > limits.max_body_size {
            return Err(SipError::TooLarge {
                limit: Limit::BodySize,
                seen: body_len,
                max: limits.max_body_size,
            });
        }
        if body_len > received {
            return Err(SipError::BodyTruncated {
                declared: body_len,
                received,
            });
        }
        Ok(Message {
            start,
            start_line: Src::Span(begin as u32, sl_end as u32),
            body: Body::Span(body_start as u32, (body_start + body_len) as u32),
            headers: Headers { buf, own, list },
        })
    }

    /// True for a request.
    pub fn is_request(&self) -> bool {
        matches!(self.start, Start::Request { .. })
    }

    /// The request method, for a request.
    pub fn method(&self) -> Option<&Method> {
        match &self.start {
            Start::Request { method, .. } => Some(method),
            Start::Response { .. } => None,
        }
    }

    /// The Request-URI as written, for a request.
    pub fn request_uri_raw(&self) -> Option<&[u8]> {
        match &self.start {
            Start::Request { uri, .. } => Some(self.headers.text(*uri)),
            Start::Response { .. } => None,
        }
    }

    /// The Request-URI, parsed (it was checked when the message was parsed).
    pub fn request_uri(&self) -> Option<Result<Uri<'_>, SipError>> {
        self.request_uri_raw().map(Uri::parse)
    }

    /// The status code, for a response.
    pub fn status(&self) -> Option<u16> {
        match self.start {
            Start::Response { code, .. } => Some(code),
            Start::Request { .. } => None,
        }
    }

    /// The reason phrase, for a response (may be empty).
    pub fn reason(&self) -> Option<&[u8]> {
        match &self.start {
            Start::Response { reason, .. } => Some(self.headers.text(*reason)),
            Start::Request { .. } => None,
        }
    }

    /// The start line as it will be printed.
    pub fn start_text(&self) -> &[u8] {
        self.headers.text(self.start_line)
    }

    /// The header fields.
    pub fn headers(&self) -> &Headers {
        &self.headers
    }

    /// The header fields, to modify.
    pub fn headers_mut(&mut self) -> &mut Headers {
        &mut self.headers
    }

    /// The body (empty when there is none).
    pub fn body(&self) -> &[u8] {
        match &self.body {
            Body::Span(s, e) => self
                .headers
                .buf
                .get(*s as usize..*e as usize)
                .unwrap_or(b""),
            Body::Owned(b) => b,
        }
    }

    /// The body as a shared slice of the received buffer (no copy).
    pub fn body_bytes(&self) -> Bytes {
        match &self.body {
            Body::Span(s, e) => self.headers.buf.slice(*s as usize..*e as usize),
            Body::Owned(b) => b.clone(),
        }
    }

    /// Shares a sub-slice of this message's text (a header value, a tag, a
    /// branch) without copying; copies when `part` is not from this message.
    pub fn share(&self, part: &[u8]) -> Bytes {
        let buf = &self.headers.buf;
        let (b, p) = (buf.as_ptr() as usize, part.as_ptr() as usize);
        if p >= b && p + part.len() <= b + buf.len() {
            buf.slice(p - b..p - b + part.len())
        } else {
            Bytes::copy_from_slice(part)
        }
    }

    /// Replaces the Request-URI; the start line is then printed canonically.
    pub fn set_request_uri(&mut self, uri: &str) -> Result<(), SipError> {
        Uri::parse(uri.as_bytes())?;
        if let Start::Request { method, .. } = &self.start {
            let method = method.clone();
            let line = self
                .headers
                .store(format!("{method} {uri} SIP/2.0").as_bytes());
            let Src::Own(start, end) = line else {
                return Ok(());
            };
            let uri_start = start + method.as_str().len() as u32 + 1;
            self.start = Start::Request {
                method,
                uri: Src::Own(uri_start, end - 8),
            };
            self.start_line = line;
        }
        Ok(())
    }

    /// Replaces the body and sets Content-Length (and Content-Type when given).
    pub fn set_body(&mut self, body: Bytes, content_type: Option<&str>) -> Result<(), SipError> {
        if let Some(ct) = content_type {
            self.headers.set("Content-Type", ct)?;
        }
        self.headers
            .set("Content-Length", &body.len().to_string())?;
        self.body = Body::Owned(body);
        Ok(())
    }

    /// Adds `Content-Length` when it is absent (a datagram may omit it; a
    /// stream may not), so the message can be forwarded on any transport.
    pub fn ensure_content_length(&mut self) {
        if self.headers.get(HeaderName::ContentLength).is_none() {
            let n = self.body().len().to_string();
            // A decimal number and a known name always make a valid field.
            let _ = self.headers.push("Content-Length", &n);
        }
    }

    /// Prints the message: untouched parts byte for byte, modified parts canonically.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.wire_len());
        self.write(&mut out);
        out
    }

    /// Octets [`Message::to_bytes`] produces, without printing.
    pub fn wire_len(&self) -> usize {
        self.start_text().len() + 2 + self.headers.wire_len() + 2 + self.body().len()
    }

    /// Appends the printed message to `out`.
    pub fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.start_text());
        out.extend_from_slice(b"\r\n");
        self.headers.write(out);
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(self.body());
    }
}

/// The header section `head` ends `lines` lines with CRLF: any other CR is a
/// bare one (RFC 3261 §7: lines end with CRLF only). One vector count in the
/// common case; the line is located only when there is a fault.
fn check_bare_cr(head: &[u8], lines: usize) -> Result<(), SipError> {
    if memchr::memchr_iter(b'\r', head).count() == lines {
        return Ok(());
    }
    let line = head
        .split(|&c| c == b'\n')
        .position(|l| {
            l.iter()
                .take(l.len().saturating_sub(1))
                .any(|&c| c == b'\r')
        })
        .map_or(lines, |i| i + 1);
    Err(SipError::LineEnding { line })
}

/// Where a header value starts: after the colon and any white space,
/// including the fold of a value that begins on a continuation line.
#[inline]
fn value_start(data: &[u8], line_start: usize, name_len: u16) -> usize {
    let mut i = line_start + name_len as usize;
    while i < data.len() && data[i] != b':' {
        i += 1;
    }
    i += 1;
    while i < data.len() {
        if is_wsp(data[i]) {
            i += 1;
        } else if data[i] == b'\r' && data.get(i + 2).is_some_and(|&c| is_wsp(c)) {
            i += 2;
        } else {
            break;
        }
    }
    i
}

/// Appends `v` to `out` with each fold (CRLF and the white space around it)
/// replaced by one space.
fn unfold(v: &[u8], out: &mut Vec<u8>) {
    let base = out.len();
    let mut i = 0;
    while i < v.len() {
        if v[i] == b'\r' || v[i] == b'\n' {
            while out.len() > base && out.last().is_some_and(|&c| is_wsp(c)) {
                out.pop();
            }
            while i < v.len() && (is_wsp(v[i]) || v[i] == b'\r' || v[i] == b'\n') {
                i += 1;
            }
            out.push(b' ');
        } else {
            out.push(v[i]);
            i += 1;
        }
    }
}

fn parse_start(data: &[u8], begin: usize, end: usize, limits: &Limits) -> Result<Start, SipError> {
    let line = &data[begin..end];
    let bad = |why: &str| SipError::StartLine(format!("{why} in {:?}", shown(line)));
    let sp1 = memchr::memchr(b' ', line).ok_or_else(|| bad("no space"))?;
    let first = &line[..sp1];
    if first.len() >= 4 && first[..4].eq_ignore_ascii_case(b"SIP/") {
        check_version(first)?;
        let rest = &line[sp1 + 1..];
        let (code, reason_at) = match memchr::memchr(b' ', rest) {
            Some(i) => (&rest[..i], sp1 + 1 + i + 1),
            None => (rest, line.len()),
        };
        if code.len() != 3 || !code.iter().all(u8::is_ascii_digit) {
            return Err(SipError::StatusCode(shown(code)));
        }
        let code_n = code.iter().fold(0u16, |a, &c| a * 10 + u16::from(c - b'0'));
        if !(100..=699).contains(&code_n) {
            return Err(SipError::StatusCode(shown(code)));
        }
        let reason = &line[reason_at.min(line.len())..];
        if std::str::from_utf8(reason).is_err()
            || reason
                .iter()
                .any(|&c| (c < 0x20 && c != b'\t') || c == 0x7f)
        {
            return Err(bad("reason phrase is not UTF-8 text"));
        }
        return Ok(Start::Response {
            code: code_n,
            reason: Src::Span((begin + reason_at.min(line.len())) as u32, end as u32),
        });
    }
    let method = first;
    if method.is_empty() {
        return Err(bad("empty method (extra space?)"));
    }
    if !method.iter().all(|&c| TOKEN[c as usize]) {
        return Err(SipError::Method(shown(method)));
    }
    let rest = &line[sp1 + 1..];
    let sp2 = memchr::memchr(b' ', rest).ok_or_else(|| bad("no SIP version"))?;
    let uri = &rest[..sp2];
    let version = &rest[sp2 + 1..];
    if uri.is_empty() {
        return Err(bad("more than one space before the Request-URI"));
    }
    if version.contains(&b' ') || version.contains(&b'\t') {
        return Err(bad(
            "more than two spaces (white space inside the Request-URI or after the version)",
        ));
    }
    check_version(version).map_err(|e| match e {
        SipError::StartLine(_) if version.is_empty() => {
            bad("more than one space before the SIP version")
        }
        e => e,
    })?;
    if uri.first() == Some(&b'<') {
        return Err(SipError::uri(
            uri,
            "the Request-URI must not be enclosed in <>",
        ));
    }
    let parsed = Uri::parse_limited(uri, limits.max_uri_len)?;
    if let Uri::Sip(u) = &parsed {
        if u.headers.is_some() {
            return Err(SipError::uri(
                uri,
                "headers are not allowed in a Request-URI (RFC 3261 §19.1.1)",
            ));
        }
    }
    let uri_start = begin + sp1 + 1;
    Ok(Start::Request {
        method: Method::from_bytes(method),
        uri: Src::Span(uri_start as u32, (uri_start + uri.len()) as u32),
    })
}

/// Accepts exactly SIP/2.0 ("SIP" without case, RFC 3261 §7.1).
fn check_version(v: &[u8]) -> Result<(), SipError> {
    if v.len() == 7 && v[..4].eq_ignore_ascii_case(b"SIP/") && &v[4..] == b"2.0" {
        return Ok(());
    }
    let ok_form = v.len() > 4
        && v[..4].eq_ignore_ascii_case(b"SIP/")
        && match memchr::memchr(b'.', &v[4..]) {
            Some(i) => {
                let (a, b) = (&v[4..4 + i], &v[5 + i..]);
                !a.is_empty() && !b.is_empty() && a.iter().chain(b).all(u8::is_ascii_digit)
            }
            None => false,
        };
    if ok_form {
        Err(SipError::Version(shown(v)))
    } else {
        Err(SipError::StartLine(format!(
            "invalid SIP version {:?}",
            shown(v)
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPTIONS: &[u8] = b"OPTIONS sip:b@example.com SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nTo: <sip:b@example.com>\r\nFrom: <sip:a@example.com>;tag=1\r\nCall-ID: c1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 5\r\n\r\nhello";

    #[test]
    fn frames_a_stream() {
        let limits = Limits::default();
        let mut stream = b"\r\n\r\n".to_vec();
        stream.extend_from_slice(OPTIONS);
        stream.extend_from_slice(OPTIONS);
        assert_eq!(frame(&stream, &limits).unwrap(), Some((4, OPTIONS.len())));
        let rest = &stream[4 + OPTIONS.len()..];
        assert_eq!(frame(rest, &limits).unwrap(), Some((0, OPTIONS.len())));
        // A message cut in its headers or its body needs more bytes.
        assert_eq!(frame(&OPTIONS[..40], &limits).unwrap(), None);
        assert_eq!(frame(&OPTIONS[..OPTIONS.len() - 1], &limits).unwrap(), None);
        let msg = Message::parse(Bytes::copy_from_slice(rest), Framing::Stream, &limits).unwrap();
        assert_eq!(msg.body(), b"hello");
    }

    #[test]
    fn framing_faults() {
        let limits = Limits::default();
        let no_cl = b"OPTIONS sip:b@example.com SIP/2.0\r\nCall-ID: c1\r\n\r\n";
        assert_eq!(frame(no_cl, &limits), Err(SipError::MissingContentLength));
        let bad_cl = b"OPTIONS sip:b@example.com SIP/2.0\r\nl: -1\r\n\r\n";
        assert!(matches!(
            frame(bad_cl, &limits),
            Err(SipError::Header {
                name: "Content-Length",
                ..
            })
        ));
        let two = b"OPTIONS sip:b@example.com SIP/2.0\r\nContent-Length: 1\r\nl: 2\r\n\r\nxx";
        assert!(matches!(
            frame(two, &limits),
            Err(SipError::Duplicate { .. })
        ));
        let endless = vec![b'a'; limits.max_message_size + 1];
        assert!(matches!(
            frame(&endless, &limits),
            Err(SipError::TooLarge {
                limit: Limit::MessageSize,
                ..
            })
        ));
        let huge = b"OPTIONS sip:b@example.com SIP/2.0\r\nContent-Length: 99999999\r\n\r\n";
        assert!(matches!(
            frame(huge, &limits),
            Err(SipError::TooLarge { .. })
        ));
    }

    #[test]
    fn incomplete_and_broken_lines() {
        let limits = Limits::default();
        let parse =
            |b: &[u8]| Message::parse(Bytes::copy_from_slice(b), Framing::Datagram, &limits);
        assert_eq!(parse(&OPTIONS[..50]).unwrap_err(), SipError::Incomplete);
        assert_eq!(
            parse(b"OPTIONS sip:b@example.com SIP/2.0\r\nTo: x\rFrom: y\r\n\r\n").unwrap_err(),
            SipError::LineEnding { line: 2 }
        );
        assert_eq!(
            parse(b"OPTIONS sip:b@example.com SIP/2.0\nTo: x\r\n\r\n").unwrap_err(),
            SipError::LineEnding { line: 1 }
        );
        assert_eq!(parse(b"").unwrap_err(), SipError::Incomplete);
        assert_eq!(parse(b"\r\n").unwrap_err(), SipError::Incomplete);
        // A datagram that ends after a whole header line has no body; a
        // stream that does is incomplete.
        let unended = b"OPTIONS sip:b@example.com SIP/2.0\r\nCall-ID: c1\r\n";
        let m = Message::parse(
            Bytes::from_static(unended),
            Framing::Datagram,
            &Limits::default(),
        )
        .unwrap();
        assert!(m.body().is_empty());
        assert_eq!(
            Message::parse(
                Bytes::from_static(unended),
                Framing::Stream,
                &Limits::default()
            )
            .unwrap_err(),
            SipError::Incomplete
        );
    }

    #[test]
    fn header_edits_print_canonically() {
        let limits = Limits::default();
        let mut msg =
            Message::parse(Bytes::from_static(OPTIONS), Framing::Stream, &limits).unwrap();
        msg.headers_mut()
            .push_front("route", "<sip:p.example.com;lr>")
            .unwrap();
        assert!(msg.headers_mut().remove_first(HeaderName::Via));
        msg.headers_mut().set("Call-ID", "c2").unwrap();
        msg.set_body(Bytes::from_static(b"hi"), Some("text/plain"))
            .unwrap();
        assert!(msg.headers_mut().set("X-Evil", "a\r\nVia: forged").is_err());
        assert!(msg.headers_mut().push("Bad Name", "v").is_err());
        let text = String::from_utf8(msg.to_bytes()).unwrap();
        assert_eq!(
            text,
            "OPTIONS sip:b@example.com SIP/2.0\r\nRoute: <sip:p.example.com;lr>\r\nTo: <sip:b@example.com>\r\nFrom: <sip:a@example.com>;tag=1\r\nCall-ID: c2\r\nCSeq: 1 OPTIONS\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nhi"
        );
    }

    #[test]
    fn unknown_headers_are_set_and_removed_by_name() {
        let limits = Limits::default();
        let raw = b"OPTIONS sip:b@example.com SIP/2.0\r\nX-A: 1\r\nX-B: 2\r\nx-a: 3\r\nCall-ID: c\r\n\r\n";
        let mut msg = Message::parse(Bytes::from_static(raw), Framing::Datagram, &limits).unwrap();
        msg.headers_mut().set("X-A", "4").unwrap();
        assert_eq!(
            msg.headers().get_all("x-a").collect::<Vec<_>>(),
            vec![&b"4"[..]]
        );
        assert_eq!(
            msg.headers().get_all("X-B").collect::<Vec<_>>(),
            vec![&b"2"[..]]
        );
        assert_eq!(msg.headers_mut().remove(HeaderName::Other), 0);
        assert_eq!(msg.headers_mut().remove_named("x-b"), 1);
        assert_eq!(msg.headers_mut().remove_named("i"), 1);
        let text = String::from_utf8(msg.to_bytes()).unwrap();
        assert_eq!(text, "OPTIONS sip:b@example.com SIP/2.0\r\nX-A: 4\r\n\r\n");
    }

    #[test]
    fn shares_slices_without_copying() {
        let limits = Limits::default();
        let buf = Bytes::from_static(OPTIONS);
        let msg = Message::parse(buf.clone(), Framing::Stream, &limits).unwrap();
        let call_id = msg.headers().get_bytes(HeaderName::CallId).unwrap();
        assert_eq!(&call_id[..], b"c1");
        assert!(buf.as_ptr_range().contains(&call_id.as_ptr()));
        let tag = msg.from().unwrap().unwrap().tag().unwrap();
        let shared = msg.share(tag.as_bytes());
        assert!(buf.as_ptr_range().contains(&shared.as_ptr()));
        assert!(buf.as_ptr_range().contains(&msg.body_bytes().as_ptr()));
    }
}
