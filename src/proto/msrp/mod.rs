//! MSRP (RFC 4975) and its relay extensions (RFC 4976), sans-IO: URIs, the
//! message head and printer, a streaming decoder, and the session rules
//! (chunking, reassembly, reports, the 408 and 481 rules).

pub mod decoder;
pub mod message;
pub mod session;
pub mod uri;

pub use decoder::{decode_one, Decoder, Event};
pub use message::{ByteRange, Flag, Head, Kind, Report, Status};
pub use uri::MsrpUri;

/// Limits for one connection's messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MsrpLimits {
    /// Start line and header fields of one message, in bytes.
    pub max_head: usize,
    /// Header fields in one message, To-Path and From-Path included.
    pub max_headers: usize,
    /// URIs in To-Path and From-Path together.
    pub max_path: usize,
    /// One chunk's body, in bytes.
    pub max_chunk: usize,
    /// One whole (reassembled) message, in bytes.
    pub max_message: usize,
}

impl Default for MsrpLimits {
    fn default() -> Self {
        MsrpLimits {
            max_head: 16 * 1024,
            max_headers: 64,
            max_path: 16,
            max_chunk: 2 * 1024 * 1024,
            max_message: 16 * 1024 * 1024,
        }
    }
}

/// Why an MSRP message was refused; the text names the fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MsrpError {
    /// Over a limit.
    #[error("MSRP {what} {seen} exceeds the limit of {max}")]
    TooLarge {
        /// Which limit.
        what: &'static str,
        /// The value seen.
        seen: usize,
        /// The limit.
        max: usize,
    },
    /// The head is not UTF-8.
    #[error("MSRP head is not UTF-8 text")]
    NotText,
    /// A line does not end in CRLF.
    #[error("MSRP line does not end in CRLF")]
    LineEnd,
    /// The start line is not `MSRP <tid> <METHOD>` or `MSRP <tid> <code>`.
    #[error("MSRP start line is malformed")]
    StartLine,
    /// The transaction identifier is not an RFC 4975 ident.
    #[error("MSRP transaction id is not 4 to 32 of the allowed characters")]
    TransactionId,
    /// To-Path must come first and From-Path second.
    #[error("MSRP To-Path and From-Path must be the first two header fields")]
    PathOrder,
    /// A header field is malformed.
    #[error("MSRP header field {name}: {why}")]
    Header {
        /// The field's name.
        name: String,
        /// What is wrong.
        why: &'static str,
    },
    /// A URI is malformed.
    #[error("MSRP URI {uri:?}: {why}")]
    Uri {
        /// The URI (its first 80 characters).
        uri: String,
        /// What is wrong.
        why: &'static str,
    },
    /// The end-line does not match the transaction or has no valid flag.
    #[error("MSRP end-line does not match the transaction id, or has no $, + or # flag")]
    EndLine,
}

impl MsrpError {
    /// The MSRP status to answer with, when an answer can still be framed.
    pub fn status(&self) -> u16 {
        match self {
            MsrpError::TooLarge { what, .. }
                if what.starts_with("body") || what.starts_with("message") =>
            {
                413
            }
            _ => 400,
        }
    }
}
