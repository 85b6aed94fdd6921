//! SIP pager-mode content ↔ the neutral message (RFC 7572 §5–6): plain
//! text as it is; CPIM unwrapped, with its IMDN Message-ID kept as the
//! message id so receipts can refer to it; isComposing (RFC 3994) ↔ chat
//! states; IMDN delivery notifications (RFC 5438) ↔ receipts. A chat state
//! or a receipt never becomes an empty text on the other side.

use bytes::Bytes;
use parley_adapter::{Address, ChatState, Message, MessageKind, Part, Presence, Receipt, Show};

use crate::proto::xml::{self, Element};
use crate::proto::{cpim, imdn, pidf};

/// The isComposing namespace.
pub const NS_ISCOMPOSING: &str = "urn:ietf:params:xml:ns:im-iscomposing";
/// The isComposing media type.
pub const ISCOMPOSING: &str = "application/im-iscomposing+xml";

/// A SIP MESSAGE body with its type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipContent {
    /// The Content-Type.
    pub content_type: String,
    /// The body.
    pub body: Vec<u8>,
}

/// Why a SIP body cannot cross.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unmappable {
    /// The SIP status to answer.
    pub status: u16,
    /// Its reason phrase.
    pub reason: &'static str,
}

const fn unmappable(status: u16, reason: &'static str) -> Unmappable {
    Unmappable { status, reason }
}

fn media_type(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// The neutral message for a SIP MESSAGE from `from` to `to`; `id` is used
/// when the body carries no IMDN Message-ID.
pub fn from_sip(
    from: Address,
    to: Address,
    content_type: &str,
    body: &Bytes,
    id: String,
) -> Result<Message, Unmappable> {
    let mut m = Message {
        id,
        from,
        to,
        kind: MessageKind::Chat,
        parts: Vec::new(),
        subject: None,
        thread: None,
        chat_state: None,
        receipt: None,
        timestamp: None,
    };
    let mut content_type = content_type.to_string();
    let mut body = body.clone();
    if media_type(&content_type) == cpim::CONTENT_TYPE {
        let c = cpim::Cpim::parse(&body, &cpim::Limits::default())
            .map_err(|_| unmappable(400, "Bad CPIM body"))?;
        if let Some(id) = c.header_ns(cpim::NS_IMDN, "Message-ID") {
            m.id = id.to_string();
        }
        m.timestamp = c.header("DateTime").map(str::to_string);
        if imdn::Request::of(&c).is_some_and(|r| r.positive_delivery) {
            m.receipt = Some(Receipt::Request);
        }
        content_type = c.content_type().unwrap_or("text/plain").to_string();
        body = c.body.clone();
    }
    match media_type(&content_type).as_str() {
        "text/plain" => m.parts.push(Part {
            content_type,
            data: body,
        }),
        ISCOMPOSING => {
            let doc = xml::parse(&body, &xml::Limits::default())
                .map_err(|_| unmappable(400, "Bad isComposing document"))?;
            if !doc.is(NS_ISCOMPOSING, "isComposing") {
                return Err(unmappable(400, "Bad isComposing document"));
            }
            let state = doc.child(NS_ISCOMPOSING, "state").map(Element::text);
            m.chat_state = Some(match state.as_deref().map(str::trim) {
                Some("active") => ChatState::Composing,
                _ => ChatState::Paused,
            });
            m.receipt = None;
        }
        imdn::CONTENT_TYPE => {
            let doc = xml::parse(&body, &xml::Limits::default())
                .map_err(|_| unmappable(400, "Bad IMDN document"))?;
            let id = doc
                .child(imdn::NS, "message-id")
                .map(Element::text)
                .ok_or(unmappable(400, "IMDN without message-id"))?;
            let delivered = doc
                .child(imdn::NS, "delivery-notification")
                .and_then(|d| d.child(imdn::NS, "status"))
                .is_some_and(|s| s.child(imdn::NS, "delivered").is_some());
            if !delivered {
                // XMPP receipts say only "received": a failure or a
                // display notification has nothing to map to.
                return Err(unmappable(
                    488,
                    "Not Acceptable Here (only delivered notifications cross)",
                ));
            }
            m.receipt = Some(Receipt::Delivered { id });
        }
        _ => return Err(unmappable(415, "Unsupported Media Type")),
    }
    Ok(m)
}

/// The SIP body for a neutral message, or `None` when it carries nothing
/// SIP can show. `now` is RFC 3339, `token` a fresh unique string.
pub fn to_sip(m: &Message, now: &str, token: &str) -> Option<SipContent> {
    let from = m.from.bare().to_sip_uri();
    let to = m.to.bare().to_sip_uri();
    if let Some(Receipt::Delivered { id }) = &m.receipt {
        let request = imdn::Request {
            message_id: id.clone(),
            datetime: m.timestamp.clone().unwrap_or_else(|| now.to_string()),
            positive_delivery: true,
            negative_delivery: false,
        };
        // The receipt is from the recipient of the original (m.from) to
        // its sender (m.to).
        let body =
            imdn::delivery_message(&request, &from, &to, token, now, imdn::Delivery::Delivered);
        return Some(SipContent {
            content_type: cpim::CONTENT_TYPE.into(),
            body,
        });
    }
    if let Some(text) = m.body_text() {
        if m.receipt == Some(Receipt::Request) {
            let datetime = m.timestamp.as_deref().unwrap_or(now);
            let body = format!(
                "From: <{from}>\r\nTo: <{to}>\r\nNS: imdn <{}>\r\nimdn.Message-ID: {}\r\n\
                 DateTime: {datetime}\r\nimdn.Disposition-Notification: positive-delivery\r\n\r\n\
                 Content-Type: text/plain;charset=UTF-8\r\nContent-Length: {}\r\n\r\n{text}",
                cpim::NS_IMDN,
                m.id,
                text.len()
            );
            return Some(SipContent {
                content_type: cpim::CONTENT_TYPE.into(),
                body: body.into_bytes(),
            });
        }
        return Some(SipContent {
            content_type: "text/plain;charset=UTF-8".into(),
            body: text.as_bytes().to_vec(),
        });
    }
    let state = match m.chat_state? {
        ChatState::Composing => "active",
        ChatState::Active | ChatState::Paused | ChatState::Inactive | ChatState::Gone => "idle",
    };
    let mut doc = Element::new(NS_ISCOMPOSING, "isComposing")
        .with_child(Element::new(NS_ISCOMPOSING, "state").with_text(state))
        .with_child(Element::new(NS_ISCOMPOSING, "contenttype").with_text("text/plain"));
    if state == "active" {
        doc = doc.with_child(Element::new(NS_ISCOMPOSING, "refresh").with_text("60"));
    }
    Some(SipContent {
        content_type: ISCOMPOSING.into(),
        body: xml::write(&doc, &[]).into_bytes(),
    })
}

/// PIDF for a presentity of another network from what its resources
/// report (RFC 7248 §7): one tuple per resource, open when available;
/// `show` as an RPID activity (away, busy; xa is away too), the status
/// text as the person's note. No resource is a closed document.
pub fn pidf_of(entity: &str, resources: &[(String, Presence)]) -> pidf::Presence {
    use pidf::{Activity, Basic, Note, Person, Tuple};
    let mut doc = pidf::Presence::new(entity);
    for (resource, p) in resources {
        doc.tuples.push(Tuple {
            id: tuple_id(resource),
            basic: Some(if p.available {
                Basic::Open
            } else {
                Basic::Closed
            }),
            status_extensions: Vec::new(),
            contact: None,
            notes: Vec::new(),
            timestamp: None,
            extensions: Vec::new(),
        });
    }
    if doc.tuples.is_empty() {
        return pidf::Presence::closed(entity);
    }
    // The person: from the available resource of highest priority.
    let best = resources
        .iter()
        .filter(|(_, p)| p.available)
        .max_by_key(|(_, p)| p.priority)
        .map(|(_, p)| p);
    if let Some(p) = best {
        let activity = match p.show {
            Some(Show::Away) | Some(Show::Xa) => Some("away"),
            Some(Show::Dnd) => Some("busy"),
            _ => None,
        };
        if activity.is_some() || p.note.is_some() {
            doc.persons.push(Person {
                id: "p".into(),
                activities: activity.map(|a| vec![Activity::Known(a.into())]),
                notes: p
                    .note
                    .iter()
                    .map(|n| Note {
                        lang: None,
                        text: n.clone(),
                    })
                    .collect(),
                timestamp: None,
                extensions: Vec::new(),
            });
        }
    }
    doc
}

/// A PIDF tuple id (an XML NCName) for an XMPP resource.
fn tuple_id(resource: &str) -> String {
    let mut id = String::from("r-");
    for c in resource.chars().take(64) {
        id.push(if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
            c
        } else {
            '_'
        });
    }
    id
}

/// The presence another network is told for a local presentity's PIDF
/// (RFC 7248 §7): available when any tuple is open; RPID away/busy and
/// the like as show; the note as status.
pub fn presence_of(doc: &pidf::Presence, from: Address, to: Address) -> Presence {
    let available = doc.basic() == Some(pidf::Basic::Open);
    let show = doc.activities().and_then(|acts| {
        acts.iter().find_map(|a| match a {
            pidf::Activity::Known(k) => match k.as_str() {
                "away" | "appointment" | "meal" | "steering" | "travel" => Some(Show::Away),
                "busy" | "meeting" | "on-the-phone" | "performance" | "presentation" => {
                    Some(Show::Dnd)
                }
                "vacation" | "sleeping" | "holiday" => Some(Show::Xa),
                _ => None,
            },
            pidf::Activity::Other(_) => None,
        })
    });
    Presence {
        from,
        to,
        available,
        show: if available { show } else { None },
        note: doc.note().map(str::to_string),
        priority: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> Address {
        Address::parse(s).unwrap()
    }

    #[test]
    fn plain_text_both_ways() {
        let m = from_sip(
            a("alice@parley.test"),
            a("juliet@xmpp.test"),
            "text/plain;charset=UTF-8",
            &Bytes::from_static(b"hello"),
            "c1".into(),
        )
        .unwrap();
        assert_eq!(m.body_text(), Some("hello"));
        assert_eq!(m.id, "c1");
        let back = to_sip(&m, "2026-01-01T00:00:00Z", "t").unwrap();
        assert_eq!(back.body, b"hello");
        assert!(back.content_type.starts_with("text/plain"));
    }

    #[test]
    fn cpim_with_imdn_request_keeps_the_id_and_asks_for_a_receipt() {
        let body = Bytes::from_static(
            b"From: <sip:alice@parley.test>\r\nTo: <sip:juliet@xmpp.test>\r\n\
              NS: imdn <urn:ietf:params:imdn>\r\nimdn.Message-ID: Xy12\r\n\
              DateTime: 2026-01-01T00:00:00Z\r\nimdn.Disposition-Notification: positive-delivery\r\n\r\n\
              Content-Type: text/plain\r\n\r\nhi there",
        );
        let m = from_sip(
            a("alice@parley.test"),
            a("juliet@xmpp.test"),
            "message/cpim",
            &body,
            "c".into(),
        )
        .unwrap();
        assert_eq!((m.id.as_str(), m.body_text()), ("Xy12", Some("hi there")));
        assert_eq!(m.receipt, Some(Receipt::Request));
        // And back: a CPIM message asking for the same.
        let sip = to_sip(&m, "2026-01-01T00:00:01Z", "t").unwrap();
        let again = from_sip(
            m.from.clone(),
            m.to.clone(),
            &sip.content_type,
            &Bytes::from(sip.body),
            "z".into(),
        )
        .unwrap();
        assert_eq!(
            (
                again.id.as_str(),
                again.body_text(),
                &again.receipt,
                &again.timestamp
            ),
            (m.id.as_str(), m.body_text(), &m.receipt, &m.timestamp)
        );
    }

    #[test]
    fn receipts_and_typing_are_never_empty_texts() {
        // XEP-0184 <received id='Xy12'/> from juliet becomes an IMDN.
        let mut r = Message::text("r1", a("juliet@xmpp.test"), a("alice@parley.test"), "");
        r.parts.clear();
        r.receipt = Some(Receipt::Delivered { id: "Xy12".into() });
        let sip = to_sip(&r, "2026-01-01T00:00:00Z", "n1").unwrap();
        assert_eq!(sip.content_type, "message/cpim");
        let text = String::from_utf8(sip.body.clone()).unwrap();
        assert!(text.contains("<message-id>Xy12</message-id>"), "{text}");
        assert!(text.contains("<delivered/>"), "{text}");
        let back = from_sip(
            r.from.clone(),
            r.to.clone(),
            &sip.content_type,
            &Bytes::from(sip.body),
            "x".into(),
        )
        .unwrap();
        assert_eq!(back.receipt, r.receipt);
        assert!(back.parts.is_empty());

        let mut typing = r.clone();
        typing.receipt = None;
        typing.chat_state = Some(ChatState::Composing);
        let sip = to_sip(&typing, "now", "t").unwrap();
        assert_eq!(sip.content_type, ISCOMPOSING);
        let back = from_sip(
            typing.from.clone(),
            typing.to.clone(),
            ISCOMPOSING,
            &Bytes::from(sip.body),
            "x".into(),
        )
        .unwrap();
        assert_eq!(back.chat_state, Some(ChatState::Composing));
        assert!(back.parts.is_empty());

        typing.chat_state = None;
        assert_eq!(to_sip(&typing, "now", "t"), None);
    }

    #[test]
    fn presence_maps_to_pidf_and_back() {
        let from = a("juliet@xmpp.test");
        let p = |available, show, note: Option<&str>, priority| Presence {
            from: from.clone(),
            to: a("romeo@parley.test"),
            available,
            show,
            note: note.map(str::to_string),
            priority,
        };
        let doc = pidf_of(
            "pres:juliet@xmpp.test",
            &[
                (
                    "balcony".into(),
                    p(true, Some(Show::Dnd), Some("In a meeting"), 5),
                ),
                ("garden/2".into(), p(true, Some(Show::Away), None, 1)),
            ],
        );
        assert_eq!(doc.tuples.len(), 2);
        assert_eq!(doc.tuples[1].id, "r-garden_2");
        // Valid PIDF, and it says what the best resource said.
        let doc = pidf::Presence::parse(doc.to_xml().as_bytes(), &pidf::Limits::default()).unwrap();
        let back = presence_of(&doc, a("juliet@xmpp.test"), a("romeo@parley.test"));
        assert!(back.available);
        assert_eq!(back.show, Some(Show::Dnd));
        assert_eq!(back.note.as_deref(), Some("In a meeting"));
        let gone = pidf_of("pres:juliet@xmpp.test", &[]);
        assert_eq!(gone.basic(), Some(pidf::Basic::Closed));
        let back = presence_of(&gone, a("juliet@xmpp.test"), a("romeo@parley.test"));
        assert!(!back.available);
    }

    #[test]
    fn unmappable_content_is_refused() {
        let err = from_sip(
            a("a@b.c"),
            a("d@e.f"),
            "image/png",
            &Bytes::new(),
            "i".into(),
        )
        .unwrap_err();
        assert_eq!(err.status, 415);
        let err = from_sip(
            a("a@b.c"),
            a("d@e.f"),
            "message/cpim",
            &Bytes::from_static(b"junk"),
            "i".into(),
        )
        .unwrap_err();
        assert_eq!(err.status, 400);
        let err = from_sip(
            a("a@b.c"),
            a("d@e.f"),
            ISCOMPOSING,
            &Bytes::from_static(b"<!DOCTYPE x [<!ENTITY a 'b'>]><x/>"),
            "i".into(),
        )
        .unwrap_err();
        assert_eq!(err.status, 400);
    }
}
