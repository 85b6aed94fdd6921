//! The head of an MSRP request or response (RFC 4975 §7, §9; RFC 4976 §5),
//! its typed header fields, and the printer.

use std::fmt::Write as _;

use super::uri::{parse_path, print_path, MsrpUri};
use super::{MsrpError, MsrpLimits};

/// The end-line's continuation flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flag {
    /// `$`: the last chunk of the message.
    End,
    /// `+`: more chunks follow.
    More,
    /// `#`: the message is abandoned.
    Abort,
}

impl Flag {
    /// As on the wire.
    pub fn byte(self) -> u8 {
        match self {
            Flag::End => b'$',
            Flag::More => b'+',
            Flag::Abort => b'#',
        }
    }

    pub(super) fn from_byte(b: u8) -> Option<Flag> {
        Some(match b {
            b'$' => Flag::End,
            b'+' => Flag::More,
            b'#' => Flag::Abort,
            _ => return None,
        })
    }
}

/// A request or a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// `MSRP <tid> <METHOD>`.
    Request {
        /// SEND, REPORT, AUTH, or another upper-case word.
        method: String,
    },
    /// `MSRP <tid> <code> [comment]`.
    Response {
        /// The status code.
        code: u16,
        /// The comment after it.
        comment: String,
    },
}

/// The start line and header fields of one MSRP message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// The transaction identifier.
    pub tid: String,
    /// Request or response.
    pub kind: Kind,
    /// `To-Path`, first hop first.
    pub to_path: Vec<MsrpUri>,
    /// `From-Path`, nearest hop first.
    pub from_path: Vec<MsrpUri>,
    /// The other fields, in order, names as written.
    pub headers: Vec<(String, String)>,
    /// Whether a body (`Content-Type`, a blank line, data) follows.
    pub has_body: bool,
}

/// `Byte-Range: start-end/total`, `*` for an unknown end or total.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    /// The first byte of this chunk, counting from 1.
    pub start: u64,
    /// The last byte, when known.
    pub end: Option<u64>,
    /// The message's size, when known.
    pub total: Option<u64>,
}

impl ByteRange {
    fn parse(v: &str) -> Option<ByteRange> {
        let (range, total) = v.trim().split_once('/')?;
        let (start, end) = range.split_once('-')?;
        let num = |s: &str| -> Option<u64> {
            if s.is_empty() || s.len() > 19 || !s.bytes().all(|b| b.is_ascii_digit()) {
                None
            } else {
                s.parse().ok()
            }
        };
        let star = |s: &str| -> Option<Option<u64>> {
            if s == "*" {
                Some(None)
            } else {
                num(s).map(Some)
            }
        };
        let r = ByteRange {
            start: num(start)?,
            end: star(end)?,
            total: star(total)?,
        };
        if r.start == 0
            || r.end.is_some_and(|e| e + 1 < r.start)
            || matches!((r.end, r.total), (Some(e), Some(t)) if e > t)
        {
            return None;
        }
        Some(r)
    }
}

impl std::fmt::Display for ByteRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-", self.start)?;
        match self.end {
            Some(e) => write!(f, "{e}")?,
            None => f.write_str("*")?,
        }
        match self.total {
            Some(t) => write!(f, "/{t}"),
            None => f.write_str("/*"),
        }
    }
}

/// `Status: 000 <code> [comment]` of a REPORT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// The status code.
    pub code: u16,
    /// The comment.
    pub comment: String,
}

/// `Success-Report` / `Failure-Report` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Report {
    /// `yes`.
    Yes,
    /// `no`.
    No,
    /// `partial` (Failure-Report only): only failures are reported.
    Partial,
}

/// The default reason phrase of a status code.
pub fn reason(code: u16) -> &'static str {
    match code {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        408 => "Request Timeout",
        413 => "Message Too Large",
        415 => "Unsupported Media Type",
        423 => "Interval Out-of-Bounds",
        481 => "Session Does Not Exist",
        501 => "Not Implemented",
        506 => "Session Already Bound",
        _ => "",
    }
}

impl Head {
    /// A request.
    pub fn request(
        method: &str,
        tid: &str,
        to_path: Vec<MsrpUri>,
        from_path: Vec<MsrpUri>,
    ) -> Head {
        Head {
            tid: tid.to_string(),
            kind: Kind::Request {
                method: method.to_string(),
            },
            to_path,
            from_path,
            headers: Vec::new(),
            has_body: false,
        }
    }

    /// The response to `self` (a request), paths turned round as RFC 4975
    /// §7.2 and RFC 4976 §6 say: To-Path is the request's From-Path (with
    /// the relays it came through), From-Path this side's URI.
    pub fn response(&self, code: u16, comment: &str, own: &MsrpUri) -> Head {
        Head {
            tid: self.tid.clone(),
            kind: Kind::Response {
                code,
                comment: comment.to_string(),
            },
            to_path: self.from_path.clone(),
            from_path: vec![own.clone()],
            headers: Vec::new(),
            has_body: false,
        }
    }

    /// A header field added at the end.
    pub fn with(mut self, name: &str, value: impl Into<String>) -> Head {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    /// The method of a request.
    pub fn method(&self) -> Option<&str> {
        match &self.kind {
            Kind::Request { method } => Some(method),
            Kind::Response { .. } => None,
        }
    }

    /// The status of a response.
    pub fn code(&self) -> Option<u16> {
        match &self.kind {
            Kind::Response { code, .. } => Some(*code),
            Kind::Request { .. } => None,
        }
    }

    /// The first value of a field (name without regard to case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a field (name without regard to case), in order.
    pub fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// `Message-ID`.
    pub fn message_id(&self) -> Option<&str> {
        self.header("Message-ID")
    }

    /// `Byte-Range`; absent means `1-*/*` (RFC 4975 §7.3.1).
    pub fn byte_range(&self) -> Option<ByteRange> {
        match self.header("Byte-Range") {
            Some(v) => ByteRange::parse(v),
            None => Some(ByteRange {
                start: 1,
                end: None,
                total: None,
            }),
        }
    }

    /// `Success-Report` (absent: `no`).
    pub fn success_report(&self) -> Report {
        match self.header("Success-Report").map(str::trim) {
            Some("yes") => Report::Yes,
            _ => Report::No,
        }
    }

    /// `Failure-Report` (absent: `yes`).
    pub fn failure_report(&self) -> Report {
        match self.header("Failure-Report").map(str::trim) {
            Some("no") => Report::No,
            Some("partial") => Report::Partial,
            _ => Report::Yes,
        }
    }

    /// `Status` of a REPORT.
    pub fn status(&self) -> Option<Status> {
        let v = self.header("Status")?;
        let mut parts = v.trim().splitn(3, ' ');
        let ns = parts.next()?;
        let code = parts.next()?;
        if ns != "000" || code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(Status {
            code: code.parse().ok()?,
            comment: parts.next().unwrap_or("").to_string(),
        })
    }

    /// `Content-Type`, the media type of the body.
    pub fn content_type(&self) -> Option<&str> {
        self.header("Content-Type").map(str::trim)
    }

    /// `Expires` (RFC 4976) in seconds.
    pub fn expires(&self) -> Option<u64> {
        self.header("Expires").and_then(|v| v.trim().parse().ok())
    }

    /// Checks what the RFC requires of fields Parley reads: a valid
    /// Message-ID, Byte-Range and Status when present, Success-Report and
    /// Failure-Report values, Content-Type with a body.
    pub(super) fn check(&self) -> Result<(), MsrpError> {
        for (name, value) in &self.headers {
            let v = value.trim();
            let ok = if name.eq_ignore_ascii_case("Message-ID") {
                is_ident(v)
            } else if name.eq_ignore_ascii_case("Byte-Range") {
                ByteRange::parse(v).is_some()
            } else if name.eq_ignore_ascii_case("Success-Report") {
                matches!(v, "yes" | "no")
            } else if name.eq_ignore_ascii_case("Failure-Report") {
                matches!(v, "yes" | "no" | "partial")
            } else if name.eq_ignore_ascii_case("Status") {
                self.status().is_some()
            } else {
                true
            };
            if !ok {
                return Err(MsrpError::Header {
                    name: name.clone(),
                    why: "its value does not follow RFC 4975 §9",
                });
            }
        }
        if self.has_body && self.content_type().is_none() {
            return Err(MsrpError::Header {
                name: "Content-Type".into(),
                why: "a body needs one",
            });
        }
        Ok(())
    }

    /// The start line and header fields, with the line that ends them
    /// (`CRLF` before a body); the caller adds the body and the end-line.
    pub fn write_head(&self, out: &mut Vec<u8>) {
        let mut s = String::with_capacity(256);
        match &self.kind {
            Kind::Request { method } => {
                let _ = write!(s, "MSRP {} {}\r\n", self.tid, method);
            }
            Kind::Response { code, comment } => {
                let _ = write!(s, "MSRP {} {:03}", self.tid, code);
                if !comment.is_empty() {
                    let _ = write!(s, " {comment}");
                }
                s.push_str("\r\n");
            }
        }
        let _ = write!(s, "To-Path: {}\r\n", print_path(&self.to_path));
        let _ = write!(s, "From-Path: {}\r\n", print_path(&self.from_path));
        for (n, v) in &self.headers {
            let _ = write!(s, "{n}: {v}\r\n");
        }
        if self.has_body {
            s.push_str("\r\n");
        }
        out.extend_from_slice(s.as_bytes());
    }

    /// The end-line, with the CRLF that ends the body before it.
    pub fn write_end(&self, flag: Flag, out: &mut Vec<u8>) {
        if self.has_body {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"-------");
        out.extend_from_slice(self.tid.as_bytes());
        out.push(flag.byte());
        out.extend_from_slice(b"\r\n");
    }

    /// A whole message: head, body (when `Some`; `has_body` follows it),
    /// end-line.
    pub fn to_bytes(&self, body: Option<&[u8]>, flag: Flag) -> Vec<u8> {
        let mut head = self.clone();
        head.has_body = body.is_some();
        let mut out = Vec::with_capacity(256 + body.map_or(0, <[u8]>::len));
        head.write_head(&mut out);
        if let Some(b) = body {
            out.extend_from_slice(b);
        }
        head.write_end(flag, &mut out);
        out
    }
}

/// RFC 4975 `ident`: an alphanumeric, then 3 to 31 of alphanumerics and
/// `.-+%=`.
pub fn is_ident(s: &str) -> bool {
    let b = s.as_bytes();
    (4..=32).contains(&b.len())
        && b[0].is_ascii_alphanumeric()
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || b".-+%=".contains(c))
}

/// Parses a head: the bytes from the start line up to (not including) the
/// blank line before a body or the end-line. `has_body` is set by the
/// caller.
pub(super) fn parse_head(bytes: &[u8], limits: &MsrpLimits) -> Result<Head, MsrpError> {
    let text = std::str::from_utf8(bytes).map_err(|_| MsrpError::NotText)?;
    let mut lines = text.split("\r\n");
    let start = lines.next().unwrap_or("");
    let mut parts = start.splitn(4, ' ');
    if parts.next() != Some("MSRP") {
        return Err(MsrpError::StartLine);
    }
    let tid = parts.next().unwrap_or("");
    if !is_ident(tid) {
        return Err(MsrpError::TransactionId);
    }
    let third = parts.next().unwrap_or("");
    let kind = if third.len() == 3 && third.bytes().all(|b| b.is_ascii_digit()) {
        let comment = parts.next().unwrap_or("");
        Kind::Response {
            code: third.parse().map_err(|_| MsrpError::StartLine)?,
            comment: comment.to_string(),
        }
    } else if !third.is_empty()
        && third.bytes().all(|b| b.is_ascii_uppercase())
        && parts.next().is_none()
    {
        Kind::Request {
            method: third.to_string(),
        }
    } else {
        return Err(MsrpError::StartLine);
    };
    let mut to_path = None;
    let mut from_path = None;
    let mut headers = Vec::new();
    for (i, line) in lines.enumerate() {
        if line.is_empty() {
            continue;
        }
        if i + 1 > limits.max_headers {
            return Err(MsrpError::TooLarge {
                what: "header count",
                seen: i + 1,
                max: limits.max_headers,
            });
        }
        let (name, value) = line.split_once(':').ok_or(MsrpError::Header {
            name: line.chars().take(40).collect(),
            why: "no colon",
        })?;
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(MsrpError::Header {
                name: name.chars().take(40).collect(),
                why: "the name is not a token",
            });
        }
        if value.bytes().any(|b| b < 0x20 && b != b'\t') {
            return Err(MsrpError::Header {
                name: name.to_string(),
                why: "the value holds a control character",
            });
        }
        let value = value.strip_prefix(' ').unwrap_or(value);
        // RFC 4975 §9: To-Path first, From-Path second.
        if name.eq_ignore_ascii_case("To-Path") {
            if i != 0 {
                return Err(MsrpError::PathOrder);
            }
            to_path = Some(parse_path(value)?);
        } else if name.eq_ignore_ascii_case("From-Path") {
            if i != 1 {
                return Err(MsrpError::PathOrder);
            }
            from_path = Some(parse_path(value)?);
        } else {
            headers.push((name.to_string(), value.to_string()));
        }
    }
    let (Some(to_path), Some(from_path)) = (to_path, from_path) else {
        return Err(MsrpError::PathOrder);
    };
    if to_path.len() + from_path.len() > limits.max_path {
        return Err(MsrpError::TooLarge {
            what: "path length",
            seen: to_path.len() + from_path.len(),
            max: limits.max_path,
        });
    }
    Ok(Head {
        tid: tid.to_string(),
        kind,
        to_path,
        from_path,
        headers,
        has_body: false,
    })
}
