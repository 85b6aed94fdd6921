//! The SIP message layer (RFC 3261 §7, §19, §20, §25; RFC 4475; RFC 5118).
//!
//! Sans-IO: bytes in, [`Message`] out, and back to bytes. Header fields are
//! kept raw and in order and typed on demand ([`typed`]); every parser is
//! bounded by [`Limits`] and reports faults as [`SipError`].

pub mod build;
pub mod error;
pub mod grammar;
pub mod headers;
pub mod limits;
pub mod message;
pub mod multipart;
pub mod name;
pub mod stateless;
pub mod transport;
pub mod typed;
pub mod uri;
mod validate;

pub use build::RequestBuilder;
pub use error::{Limit, SipError};
pub use headers::{HeaderRef, Headers};
pub use limits::Limits;
pub use message::{frame, Framing, Message, Method};
pub use name::HeaderName;
pub use transport::Transport;
pub use uri::{Host, Uri};

impl Message {
    /// Splits a multipart body (RFC 5621); `Ok(None)` when the body is not multipart.
    pub fn multipart(&self, limits: &Limits) -> Result<Option<Vec<multipart::Part>>, SipError> {
        let Some(ct) = self.content_type() else {
            return Ok(None);
        };
        let ct = ct?;
        if !ct.kind.eq_ignore_ascii_case("multipart") {
            return Ok(None);
        }
        let boundary = ct
            .params
            .value("boundary")
            .ok_or_else(|| SipError::Multipart("Content-Type has no boundary parameter".into()))?;
        multipart::split(&self.body_bytes(), &boundary, limits.max_parts).map(Some)
    }
}
