//! Multipart bodies (RFC 2046 §5.1 as used by SIP, RFC 5621), split on demand.
//!
//! Each part's headers and body are slices of the message body; a nested
//! multipart part is split by calling [`split`] again on it.

use bytes::Bytes;

use super::error::SipError;
use super::grammar::trim;

/// One body part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// The part's header fields, `(name, value)` in order.
    pub headers: Vec<(Bytes, Bytes)>,
    /// The part's body.
    pub body: Bytes,
}

impl Part {
    /// The value of a header (without case), e.g. `Content-Type`.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| &v[..])
    }
}

/// Splits `body` on `boundary`, keeping at most `max_parts` parts.
pub fn split(body: &Bytes, boundary: &str, max_parts: usize) -> Result<Vec<Part>, SipError> {
    let err = |r: String| SipError::Multipart(r);
    if boundary.is_empty() || boundary.len() > 70 {
        return Err(err(format!(
            "boundary must be 1 to 70 characters, got {}",
            boundary.len()
        )));
    }
    let delim = format!("--{boundary}");
    let finder = memchr::memmem::Finder::new(delim.as_bytes());
    // Delimiters are at the start of the body or after CRLF.
    let mut marks = Vec::new();
    let mut at = 0;
    while let Some(i) = finder.find(&body[at..]) {
        let pos = at + i;
        if pos == 0 || body[..pos].ends_with(b"\r\n") {
            marks.push(pos);
            if marks.len() > max_parts + 1 {
                return Err(SipError::TooLarge {
                    limit: super::error::Limit::MultipartParts,
                    seen: marks.len() - 1,
                    max: max_parts,
                });
            }
        }
        at = pos + delim.len();
    }
    let Some(&first) = marks.first() else {
        return Err(err(format!("no delimiter {delim:?} in the body")));
    };
    let mut parts = Vec::new();
    let mut closed = false;
    for w in 0..marks.len() {
        let start = marks[w] + delim.len();
        let after = &body[start..];
        if after.starts_with(b"--") {
            closed = true;
            break;
        }
        let Some(&next) = marks.get(w + 1) else {
            return Err(err("no closing delimiter".into()));
        };
        // Transport padding then CRLF after the delimiter line.
        let line_end = memchr::memmem::find(after, b"\r\n")
            .ok_or_else(|| err("delimiter line without CRLF".into()))?;
        if !trim(&after[..line_end]).is_empty() {
            return Err(err("junk after a delimiter".into()));
        }
        let content_start = start + line_end + 2;
        let content_end = next.saturating_sub(2).max(content_start);
        parts.push(part(body.slice(content_start..content_end))?);
    }
    let _ = first;
    if !closed {
        return Err(err("no closing delimiter".into()));
    }
    Ok(parts)
}

fn part(content: Bytes) -> Result<Part, SipError> {
    let (head, body) = if content.starts_with(b"\r\n") {
        (Bytes::new(), content.slice(2..))
    } else {
        let end = memchr::memmem::find(&content, b"\r\n\r\n").ok_or_else(|| {
            SipError::Multipart("part without an empty line after its headers".into())
        })?;
        (content.slice(..end), content.slice(end + 4..))
    };
    let mut headers = Vec::new();
    let mut pos = 0;
    while pos < head.len() {
        let end = memchr::memmem::find(&head[pos..], b"\r\n").map_or(head.len(), |i| pos + i);
        let line = &head[pos..end];
        let colon = memchr::memchr(b':', line)
            .ok_or_else(|| SipError::Multipart("part header without a colon".into()))?;
        let name = trim(&line[..colon]);
        let value = trim(&line[colon + 1..]);
        headers.push((head.slice_ref(name), head.slice_ref(value)));
        pos = end + 2;
    }
    Ok(Part { headers, body })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_parts() {
        let body = Bytes::from_static(
            b"preamble\r\n--b1\r\nContent-Type: text/plain\r\n\r\nhello\r\n--b1\r\nContent-Type: application/sdp\r\n\r\nv=0\r\n\r\n--b1--\r\nepilogue",
        );
        let parts = split(&body, "b1", 8).unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].header("content-type"), Some(&b"text/plain"[..]));
        assert_eq!(&parts[0].body[..], b"hello");
        assert_eq!(&parts[1].body[..], b"v=0\r\n");
    }

    #[test]
    fn refuses_broken_bodies() {
        let open = Bytes::from_static(b"--b1\r\n\r\nx\r\n");
        assert!(split(&open, "b1", 8).is_err());
        assert!(split(&Bytes::from_static(b"nothing"), "b1", 8).is_err());
        let many = Bytes::from(format!("{}--b--", "--b\r\n\r\nx\r\n".repeat(40)));
        assert!(matches!(
            split(&many, "b", 32),
            Err(SipError::TooLarge { .. })
        ));
    }
}
