//! Size and count limits applied while parsing.
//!
//! Every parser in Parley is bounded: a hostile peer can make it refuse a
//! message, never make it allocate without bound or spin.

/// Limits for one message. The defaults suit IM traffic; a deployment can
/// change them in the config (`[sip.limits]`, one key per field).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Whole message in bytes (default 64 KiB).
    pub max_message_size: usize,
    /// Header fields in one message.
    pub max_headers: usize,
    /// One header field in bytes, folded continuation lines included.
    pub max_header_line: usize,
    /// One URI in bytes.
    pub max_uri_len: usize,
    /// Via values in one message: one per hop, and a request starts with
    /// Max-Forwards 70 (RFC 3261 §8.1.1.6), so 70 is above any real path
    /// (RFC 4475 §3.1.1.7 carries 34).
    pub max_vias: usize,
    /// Body in bytes.
    pub max_body_size: usize,
    /// Parts in one multipart body (nesting counts each level's parts).
    pub max_parts: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_size: 64 * 1024,
            max_headers: 128,
            max_header_line: 8 * 1024,
            max_uri_len: 2048,
            max_vias: 70,
            max_body_size: 60 * 1024,
            max_parts: 32,
        }
    }
}
