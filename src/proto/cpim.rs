//! Common Presence and Instant Messaging message format, `message/cpim`
//! (RFC 3862): message headers with namespaces (`NS`), then the MIME
//! headers of the content, then the content.
//!
//! The reader keeps every header as written and in order, so a message
//! can be relayed unchanged; it is bounded in header count and line
//! length and never panics. The writer prints headers and content back.

use bytes::Bytes;

/// The media type.
pub const CONTENT_TYPE: &str = "message/cpim";

/// The IMDN namespace (RFC 5438 §4.1).
pub const NS_IMDN: &str = "urn:ietf:params:imdn";

/// Bounds on one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most headers in either block.
    pub max_headers: usize,
    /// Longest header line.
    pub max_line: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_headers: 64,
            max_line: 4096,
        }
    }
}

/// Why a body is not CPIM.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CpimError {
    /// No blank line after a header block.
    #[error("the {0} headers do not end with a blank line")]
    Unterminated(&'static str),
    /// A line that is not `Name: value`.
    #[error("malformed header line {0:?}")]
    Malformed(String),
    /// A bound was exceeded.
    #[error("more than {0} headers or a line longer than {1} bytes")]
    TooLarge(usize, usize),
    /// Not UTF-8.
    #[error("headers are not UTF-8")]
    NotUtf8,
}

/// One header as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The name, with its namespace prefix when it has one (`imdn.Message-ID`).
    pub name: String,
    /// The value, trimmed.
    pub value: String,
}

/// A parsed CPIM message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cpim {
    /// Message headers (From, To, DateTime, NS, …), in order.
    pub headers: Vec<Header>,
    /// MIME headers of the content (Content-Type, …), in order.
    pub content_headers: Vec<Header>,
    /// The content.
    pub body: Bytes,
}

impl Cpim {
    /// Parses a `message/cpim` body.
    pub fn parse(input: &Bytes, limits: &Limits) -> Result<Cpim, CpimError> {
        let (headers, rest) = block(input, 0, "message", limits)?;
        let (content_headers, body_at) = block(input, rest, "content", limits)?;
        Ok(Cpim {
            headers,
            content_headers,
            body: input.slice(body_at..),
        })
    }

    /// The first message header named `name` (no namespace), without case.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.as_str())
    }

    /// A header of the namespace `ns` (by URI, whatever prefix the message
    /// gave it), e.g. `(NS_IMDN, "Message-ID")`.
    pub fn header_ns(&self, ns: &str, name: &str) -> Option<&str> {
        let prefix = self.prefix(ns)?;
        self.headers
            .iter()
            .find(|h| {
                h.name
                    .split_once('.')
                    .is_some_and(|(p, n)| p == prefix && n.eq_ignore_ascii_case(name))
            })
            .map(|h| h.value.as_str())
    }

    /// The prefix an `NS` header gives namespace `ns`.
    pub fn prefix(&self, ns: &str) -> Option<&str> {
        self.headers
            .iter()
            .filter(|h| h.name == "NS")
            .find_map(|h| {
                let (prefix, uri) = h.value.split_once('<')?;
                (uri.trim_end_matches('>').trim() == ns).then_some(prefix.trim())
            })
    }

    /// The address in the From header (`Name <im:a@b>` gives `im:a@b`).
    pub fn from_uri(&self) -> Option<&str> {
        self.header("From").and_then(angle_uri)
    }

    /// The address in the first To header.
    pub fn to_uri(&self) -> Option<&str> {
        self.header("To").and_then(angle_uri)
    }

    /// The content's Content-Type.
    pub fn content_type(&self) -> Option<&str> {
        self.content_headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("Content-Type"))
            .map(|h| h.value.as_str())
    }

    /// Prints the message back.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.body.len() + 256);
        for h in &self.headers {
            out.extend_from_slice(format!("{}: {}\r\n", h.name, h.value).as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        for h in &self.content_headers {
            out.extend_from_slice(format!("{}: {}\r\n", h.name, h.value).as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.body);
        out
    }
}

/// The URI between `<` and `>` of a CPIM address.
fn angle_uri(value: &str) -> Option<&str> {
    let (_, rest) = value.split_once('<')?;
    let (uri, _) = rest.split_once('>')?;
    Some(uri.trim())
}

/// `user@domain` of an address URI of any IM scheme (sip, sips, im, pres,
/// xmpp), the domain lower-cased; what two addresses are compared by.
pub fn address_key(uri: &str) -> Option<String> {
    let (scheme, rest) = uri.split_once(':')?;
    if !["sip", "sips", "im", "pres", "xmpp"]
        .iter()
        .any(|s| s.eq_ignore_ascii_case(scheme))
    {
        return None;
    }
    let rest = rest.trim_start_matches("//");
    let end = rest.find([';', '?', '/', '>']).unwrap_or(rest.len());
    let (user, host) = rest[..end].rsplit_once('@')?;
    let host = host.split(':').next().unwrap_or(host);
    Some(format!("{user}@{}", host.to_ascii_lowercase()))
}

/// One header block starting at `at`: the headers and where the block's
/// blank line ends.
fn block(
    input: &[u8],
    mut at: usize,
    what: &'static str,
    limits: &Limits,
) -> Result<(Vec<Header>, usize), CpimError> {
    let mut headers = Vec::new();
    loop {
        let rest = &input[at..];
        let Some(nl) = memchr::memchr(b'\n', rest) else {
            return Err(CpimError::Unterminated(what));
        };
        if nl > limits.max_line {
            return Err(CpimError::TooLarge(limits.max_headers, limits.max_line));
        }
        let line = &rest[..nl];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        at += nl + 1;
        if line.is_empty() {
            return Ok((headers, at));
        }
        if headers.len() >= limits.max_headers {
            return Err(CpimError::TooLarge(limits.max_headers, limits.max_line));
        }
        let line = std::str::from_utf8(line).map_err(|_| CpimError::NotUtf8)?;
        let Some((name, value)) = line.split_once(':') else {
            return Err(CpimError::Malformed(line.chars().take(80).collect()));
        };
        let valid_name = !name.is_empty()
            && name
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_'));
        if !valid_name {
            return Err(CpimError::Malformed(line.chars().take(80).collect()));
        }
        headers.push(Header {
            name: name.to_string(),
            value: value.trim().to_string(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 3862 §6.2.
    const EXAMPLE: &str = "From: MR SANDERS <im:piglet@100akerwood.com>\r\n\
        To: Depressed Donkey <im:eeyore@100akerwood.com>\r\n\
        DateTime: 2000-12-13T13:40:00-08:00\r\n\
        Subject: the weather will be fine today\r\n\
        NS: MyFeatures <mid:MessageFeatures@id.foo.com>\r\n\
        Require: MyFeatures.VitalMessageOption\r\n\
        MyFeatures.VitalMessageOption: Confirmation-requested\r\n\
        \r\n\
        Content-type: text/xml; charset=utf-8\r\n\
        Content-ID: <1234567890@foo.com>\r\n\
        \r\n\
        <body>\r\nHere is the text of my message.\r\n</body>\r\n";

    #[test]
    fn the_rfc_example_reads_and_prints_back() {
        let input = Bytes::from_static(EXAMPLE.as_bytes());
        let m = Cpim::parse(&input, &Limits::default()).unwrap();
        assert_eq!(m.from_uri(), Some("im:piglet@100akerwood.com"));
        assert_eq!(m.to_uri(), Some("im:eeyore@100akerwood.com"));
        assert_eq!(m.header("datetime"), Some("2000-12-13T13:40:00-08:00"));
        assert_eq!(
            m.header_ns("mid:MessageFeatures@id.foo.com", "VitalMessageOption"),
            Some("Confirmation-requested")
        );
        assert_eq!(m.content_type(), Some("text/xml; charset=utf-8"));
        assert!(m.body.starts_with(b"<body>"));
        assert_eq!(m.to_bytes(), EXAMPLE.as_bytes());
        assert_eq!(
            address_key("im:piglet@100AkerWood.com").as_deref(),
            Some("piglet@100akerwood.com")
        );
        assert_eq!(
            address_key("sip:piglet@100akerwood.com:5060;transport=tcp").as_deref(),
            Some("piglet@100akerwood.com")
        );
        assert_eq!(address_key("tel:+123"), None);
    }

    #[test]
    fn bad_bodies_get_errors_not_panics() {
        let limits = Limits::default();
        for bad in [
            "",
            "From: a <im:a@b>",
            "From: a <im:a@b>\r\n\r\nContent-Type: text/plain",
            "no colon here\r\n\r\n\r\n",
            "Bad Name: x\r\n\r\n\r\n",
        ] {
            assert!(Cpim::parse(&Bytes::from(bad), &limits).is_err(), "{bad:?}");
        }
        let many = "X: y\r\n".repeat(100) + "\r\n\r\n";
        assert!(matches!(
            Cpim::parse(&Bytes::from(many), &limits),
            Err(CpimError::TooLarge(..))
        ));
        let long = format!("X: {}\r\n\r\n\r\n", "y".repeat(10_000));
        assert!(matches!(
            Cpim::parse(&Bytes::from(long), &limits),
            Err(CpimError::TooLarge(..))
        ));
        let latin = Bytes::from_static(b"From: caf\xe9 <im:a@b>\r\n\r\n\r\n");
        assert_eq!(Cpim::parse(&latin, &limits), Err(CpimError::NotUtf8));
    }
}
