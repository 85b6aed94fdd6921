//! Instant Message Disposition Notification (RFC 5438): what a message
//! asks for (`imdn.Disposition-Notification` in its CPIM headers) and the
//! delivery notifications Parley sends for messages it stored.

use crate::proto::cpim::{self, Cpim};
use crate::proto::xml::{self, Element};

/// The IMDN document namespace.
pub const NS: &str = "urn:ietf:params:xml:ns:imdn";

/// The media type of a notification document.
pub const CONTENT_TYPE: &str = "message/imdn+xml";

/// What a message asked to be told (RFC 5438 §6.3).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Request {
    /// Its `imdn.Message-ID`.
    pub message_id: String,
    /// Its CPIM `DateTime`.
    pub datetime: String,
    /// `positive-delivery`: tell when it was delivered.
    pub positive_delivery: bool,
    /// `negative-delivery`: tell when it could not be.
    pub negative_delivery: bool,
}

impl Request {
    /// The request of a CPIM message; None when it asks for nothing or
    /// lacks the Message-ID and DateTime a notification must quote.
    pub fn of(message: &Cpim) -> Option<Request> {
        let wanted = message.header_ns(cpim::NS_IMDN, "Disposition-Notification")?;
        let has = |token: &str| {
            wanted
                .split(',')
                .any(|t| t.trim().eq_ignore_ascii_case(token))
        };
        let request = Request {
            message_id: message.header_ns(cpim::NS_IMDN, "Message-ID")?.to_string(),
            datetime: message.header("DateTime")?.to_string(),
            positive_delivery: has("positive-delivery"),
            negative_delivery: has("negative-delivery"),
        };
        (request.positive_delivery || request.negative_delivery).then_some(request)
    }
}

/// A delivery outcome (RFC 5438 §7.2.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Delivered to a device of the recipient.
    Delivered,
    /// Not delivered.
    Failed,
}

/// The notification document for `request`, about `recipient`.
pub fn delivery_document(request: &Request, recipient: &str, outcome: Delivery) -> String {
    let status = match outcome {
        Delivery::Delivered => "delivered",
        Delivery::Failed => "failed",
    };
    let root = Element::new(NS, "imdn")
        .with_child(Element::new(NS, "message-id").with_text(&request.message_id))
        .with_child(Element::new(NS, "datetime").with_text(&request.datetime))
        .with_child(Element::new(NS, "recipient-uri").with_text(recipient))
        .with_child(Element::new(NS, "original-recipient-uri").with_text(recipient))
        .with_child(
            Element::new(NS, "delivery-notification")
                .with_child(Element::new(NS, "status").with_child(Element::new(NS, status))),
        );
    xml::write(&root, &[])
}

/// The CPIM body of a notification: from the recipient to the sender,
/// with a Message-ID of its own and the time it was made.
pub fn delivery_message(
    request: &Request,
    recipient: &str,
    sender: &str,
    message_id: &str,
    now: &str,
    outcome: Delivery,
) -> Vec<u8> {
    let document = delivery_document(request, recipient, outcome);
    format!(
        "From: <{recipient}>\r\nTo: <{sender}>\r\nNS: imdn <{}>\r\nimdn.Message-ID: {message_id}\r\n\
         DateTime: {now}\r\n\r\nContent-Type: {CONTENT_TYPE}\r\nContent-Disposition: notification\r\n\
         Content-Length: {}\r\n\r\n{document}",
        cpim::NS_IMDN,
        document.len()
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn a_request_is_read_and_answered() {
        let body = Bytes::from_static(
            b"From: <im:alice@a.example>\r\nTo: <im:bob@b.example>\r\n\
              NS: i <urn:ietf:params:imdn>\r\ni.Message-ID: 34jk324j\r\n\
              DateTime: 2008-04-04T12:16:49-05:00\r\n\
              i.Disposition-Notification: positive-delivery, negative-delivery\r\n\r\n\
              Content-Type: text/plain\r\n\r\nHi",
        );
        let m = Cpim::parse(&body, &cpim::Limits::default()).unwrap();
        let r = Request::of(&m).unwrap();
        assert_eq!(r.message_id, "34jk324j");
        assert!(r.positive_delivery && r.negative_delivery);
        let note = delivery_message(
            &r,
            "im:bob@b.example",
            "im:alice@a.example",
            "n1",
            "2008-04-04T12:17:00Z",
            Delivery::Failed,
        );
        let parsed = Cpim::parse(&Bytes::from(note), &cpim::Limits::default()).unwrap();
        assert_eq!(parsed.content_type(), Some(CONTENT_TYPE));
        let doc = xml::parse(&parsed.body, &xml::Limits::default()).unwrap();
        assert_eq!(doc.child(NS, "message-id").unwrap().text(), "34jk324j");
        let status = doc
            .child(NS, "delivery-notification")
            .and_then(|d| d.child(NS, "status"))
            .unwrap();
        assert!(status.child(NS, "failed").is_some());
        // Nothing asked: no request.
        let plain = Bytes::from_static(b"From: <im:a@b>\r\n\r\nContent-Type: text/plain\r\n\r\nx");
        assert_eq!(
            Request::of(&Cpim::parse(&plain, &cpim::Limits::default()).unwrap()),
            None
        );
    }
}
