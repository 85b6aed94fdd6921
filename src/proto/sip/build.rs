//! The one way Parley makes a request of its own (NOTIFY, MESSAGE,
//! CANCEL): header fields in order, then the body with its Content-Type
//! and Content-Length, printed and read back with Parley's own parser and
//! its full header validation (what `parley sip parse` checks). A request
//! that Parley would refuse is never sent: it is an error here, where it is
//! made.

use bytes::Bytes;

use super::{Framing, Limits, Message, SipError};

/// A request being made.
#[derive(Debug, Clone)]
pub struct RequestBuilder {
    wire: Vec<u8>,
    /// The first value that could not be written, reported at the end so
    /// the chain reads straight.
    fault: Option<SipError>,
}

impl RequestBuilder {
    /// `METHOD uri SIP/2.0`.
    pub fn new(method: &str, request_uri: &str) -> RequestBuilder {
        let mut b = RequestBuilder {
            wire: Vec::with_capacity(512),
            fault: None,
        };
        if method.is_empty() || request_uri.is_empty() || !single_line(request_uri) {
            b.fault = Some(SipError::StartLine(format!("{method} {request_uri}")));
        }
        b.wire.extend_from_slice(method.as_bytes());
        b.wire.push(b' ');
        b.wire.extend_from_slice(request_uri.as_bytes());
        b.wire.extend_from_slice(b" SIP/2.0\r\n");
        b
    }

    /// One header field. A value that is empty or spans lines is a fault
    /// (an empty `Route:` or an injected header field), reported by
    /// [`RequestBuilder::build`].
    pub fn header(mut self, name: &str, value: &str) -> RequestBuilder {
        if value.trim().is_empty() || !single_line(value) {
            self.fault.get_or_insert(SipError::Field {
                name: name.to_string(),
                reason: "an empty or multi-line value",
            });
            return self;
        }
        self.wire.extend_from_slice(name.as_bytes());
        self.wire.extend_from_slice(b": ");
        self.wire.extend_from_slice(value.as_bytes());
        self.wire.extend_from_slice(b"\r\n");
        self
    }

    /// Each value of `values` as a header field of its own, in order.
    pub fn headers<S: AsRef<str>>(
        self,
        name: &str,
        values: impl IntoIterator<Item = S>,
    ) -> RequestBuilder {
        values
            .into_iter()
            .fold(self, |b, v| b.header(name, v.as_ref()))
    }

    /// The request with no body.
    pub fn build(self) -> Result<Message, SipError> {
        self.finish(None)
    }

    /// The request with `body` of `content_type`.
    pub fn body(self, content_type: &str, body: &[u8]) -> Result<Message, SipError> {
        self.finish(Some((content_type, body)))
    }

    fn finish(self, body: Option<(&str, &[u8])>) -> Result<Message, SipError> {
        let mut b = match body {
            Some((ct, _)) => self.header("Content-Type", ct),
            None => self,
        };
        if let Some(fault) = b.fault {
            return Err(fault);
        }
        let data = body.map_or(&[][..], |(_, d)| d);
        b.wire
            .extend_from_slice(format!("Content-Length: {}\r\n\r\n", data.len()).as_bytes());
        b.wire.extend_from_slice(data);
        let limits = Limits::default();
        let message = Message::parse(Bytes::from(b.wire), Framing::Stream, &limits)?;
        message.validate_unsent(&limits)?;
        Ok(message)
    }
}

fn single_line(s: &str) -> bool {
    !s.bytes().any(|b| b == b'\r' || b == b'\n')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::sip::HeaderName;

    #[test]
    fn a_request_reads_back_with_its_fields_and_body() {
        let m = RequestBuilder::new("MESSAGE", "sip:bob@example.com")
            .header("Via", "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKx")
            .headers("Route", ["<sip:127.0.0.1;lr>", "<sip:127.0.0.2;lr>"])
            .header("From", "<sip:alice@example.com>;tag=1")
            .header("To", "<sip:bob@example.com>")
            .header("Call-ID", "c1")
            .header("CSeq", "1 MESSAGE")
            .header("Max-Forwards", "70")
            .body("text/plain", b"hello")
            .unwrap();
        assert_eq!(m.headers().lines(HeaderName::Route).count(), 2);
        assert_eq!(&m.body_bytes()[..], b"hello");
        assert_eq!(m.headers().get(HeaderName::ContentLength).unwrap(), b"5");
    }

    #[test]
    fn an_empty_or_injected_value_is_refused_where_it_is_made() {
        let base = || {
            RequestBuilder::new("MESSAGE", "sip:bob@example.com")
                .header("From", "<sip:alice@example.com>;tag=1")
                .header("To", "<sip:bob@example.com>")
                .header("Call-ID", "c1")
                .header("CSeq", "1 MESSAGE")
        };
        assert!(base().header("Route", "").build().is_err());
        assert!(base()
            .header("Subject", "hi\r\nContact: <sip:evil@x>")
            .build()
            .is_err());
        assert!(RequestBuilder::new("MESSAGE", "sip:a\r\nb")
            .build()
            .is_err());
        assert!(base().build().is_ok());
    }
}
