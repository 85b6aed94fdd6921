//! The one error type of the SIP message layer.
//!
//! Every variant names the fault and carries what was seen, so the text an
//! operator reads (`parley sip parse`, a 400 reason phrase, a log line) says
//! exactly why a message was refused.

use std::fmt;

/// Which size or count limit a message broke (see [`super::Limits`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Limit {
    /// Whole message, start line to the end of the body.
    MessageSize,
    /// Number of header fields.
    HeaderCount,
    /// One header field, folded lines included.
    HeaderLine,
    /// One URI.
    UriLength,
    /// Number of Via values.
    ViaCount,
    /// The body.
    BodySize,
    /// Parts of a multipart body, or their nesting.
    MultipartParts,
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Limit::MessageSize => "message size",
            Limit::HeaderCount => "header count",
            Limit::HeaderLine => "header line length",
            Limit::UriLength => "URI length",
            Limit::ViaCount => "Via count",
            Limit::BodySize => "body size",
            Limit::MultipartParts => "multipart part count",
        })
    }
}

/// Why a SIP message, header value or URI was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SipError {
    /// A stream ended, or a datagram holds no blank line after the headers.
    #[error("message is incomplete: no empty line ends the header section")]
    Incomplete,
    /// A configured limit was exceeded.
    #[error("{limit} {seen} exceeds the limit of {max}")]
    TooLarge {
        /// Which limit.
        limit: Limit,
        /// The value seen (bytes or a count).
        seen: usize,
        /// The configured maximum.
        max: usize,
    },
    /// The start line is neither a Request-Line nor a Status-Line.
    #[error("malformed start line: {0}")]
    StartLine(String),
    /// A SIP version other than 2.0.
    #[error("unsupported SIP version {0}")]
    Version(String),
    /// A status code outside 100–699 or not three digits.
    #[error("invalid status code {0:?}: must be three digits from 100 to 699")]
    StatusCode(String),
    /// A method that is not a token.
    #[error("invalid method {0:?}: not a token")]
    Method(String),
    /// A line that ends without CR LF, or a bare CR.
    #[error("line {line} does not end with CRLF")]
    LineEnding {
        /// 1-based line number.
        line: usize,
    },
    /// A header line without a colon or with a name that is not a token.
    #[error("malformed header line {line}: {reason}")]
    HeaderLine {
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A header value that does not follow its grammar.
    #[error("invalid {name} header: {reason}")]
    Header {
        /// The header's canonical name.
        name: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A header that must appear once appears more often.
    #[error("{name} header appears {count} times; only one is allowed")]
    Duplicate {
        /// The header's canonical name.
        name: &'static str,
        /// How often it appears.
        count: usize,
    },
    /// A mandatory header is missing.
    #[error("missing mandatory {0} header")]
    Missing(&'static str),
    /// A URI that does not follow its grammar.
    #[error("invalid URI {uri:?}: {reason}")]
    Uri {
        /// The URI text (cut to 80 bytes).
        uri: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Content-Length promises more bytes than arrived.
    #[error("Content-Length {declared} exceeds the {received} body bytes received")]
    BodyTruncated {
        /// The Content-Length value.
        declared: usize,
        /// The bytes after the header section.
        received: usize,
    },
    /// A message on a stream transport without Content-Length (RFC 3261 §18.3).
    #[error("Content-Length is required on a stream transport")]
    MissingContentLength,
    /// The CSeq method differs from the request method (RFC 3261 §8.1.1.5).
    #[error("CSeq method {cseq} does not match the request method {method}")]
    CSeqMismatch {
        /// Method in the Request-Line.
        method: String,
        /// Method in CSeq.
        cseq: String,
    },
    /// A field Parley was asked to write would not print as one field.
    #[error("cannot write header {name:?}: {reason}")]
    Field {
        /// The name given.
        name: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// A multipart body that cannot be split.
    #[error("invalid multipart body: {0}")]
    Multipart(String),
}

impl SipError {
    /// The status code a server answers a request with this fault (RFC 3261 §21).
    pub fn status(&self) -> u16 {
        match self {
            SipError::TooLarge {
                limit: Limit::MessageSize | Limit::BodySize,
                ..
            } => 513,
            SipError::Version(_) => 505,
            _ => 400,
        }
    }

    pub(crate) fn header(name: &'static str, reason: impl Into<String>) -> Self {
        SipError::Header {
            name,
            reason: reason.into(),
        }
    }

    pub(crate) fn uri(uri: &[u8], reason: impl Into<String>) -> Self {
        let shown = &uri[..uri.len().min(80)];
        SipError::Uri {
            uri: String::from_utf8_lossy(shown).into_owned(),
            reason: reason.into(),
        }
    }
}

/// Text of bytes for an error message, cut to a readable length.
pub(crate) fn shown(b: &[u8]) -> String {
    String::from_utf8_lossy(&b[..b.len().min(80)]).into_owned()
}
