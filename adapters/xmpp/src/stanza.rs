//! Sans-IO mapping between XMPP stanzas and the neutral model:
//! messages per RFC 7572 (with XEP-0085 chat states, XEP-0184 receipts and
//! XEP-0203 delay), presence and the subscription handshake per RFC 7248,
//! and stanza errors per RFC 6120 §8.3 with RFC 7247 §7 conditions.

use bytes::Bytes;
use parley_adapter::xml::{Element, Node};
use parley_adapter::{
    Address, ChatState, Condition, ErrorType, Failure, Message, MessageKind, Part, Presence,
    Receipt, Show, Subscription, SubscriptionAction,
};

/// XEP-0085 chat states.
pub const NS_CHATSTATES: &str = "http://jabber.org/protocol/chatstates";
/// XEP-0184 receipts.
pub const NS_RECEIPTS: &str = "urn:xmpp:receipts";
/// XEP-0203 delayed delivery.
pub const NS_DELAY: &str = "urn:xmpp:delay";
/// RFC 6120 stanza error conditions.
pub const NS_STANZAS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";

/// What one inbound stanza means for the gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    /// A message.
    Message(Message),
    /// A presence state.
    Presence(Presence),
    /// A subscription request or answer.
    Subscription(Subscription),
    /// An error about something the gateway sent.
    Error {
        /// The failed stanza's id.
        id: String,
        /// The original recipient (the error's sender).
        from: Address,
        /// The original sender (the error's recipient).
        to: Address,
        /// Why.
        failure: Failure,
    },
    /// A stanza with no meaning across the gateway (an IQ the gateway
    /// answers itself, a presence error): nothing to route.
    Ignored,
}

/// Why a stanza could not be read, with the error to return for it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{failure}")]
pub struct Refused {
    /// The error condition for the reply.
    pub failure: Failure,
}

fn refused(condition: Condition, text: &str) -> Refused {
    Refused {
        failure: Failure::new(condition, text),
    }
}

fn address(el: &Element, attr: &str) -> Result<Address, Refused> {
    let value = el
        .attr(attr)
        .ok_or_else(|| refused(Condition::JidMalformed, "missing address"))?;
    Address::from_jid(value).map_err(|e| refused(Condition::JidMalformed, &e.to_string()))
}

/// Reads one stanza of a stream whose default namespace is `ns`.
pub fn decode(el: &Element, ns: &str) -> Result<Decoded, Refused> {
    if el.ns != ns {
        return Ok(Decoded::Ignored);
    }
    match el.name.as_str() {
        "message" => decode_message(el, ns),
        "presence" => decode_presence(el, ns),
        _ => Ok(Decoded::Ignored),
    }
}

fn decode_message(el: &Element, ns: &str) -> Result<Decoded, Refused> {
    let from = address(el, "from")?;
    let to = address(el, "to")?;
    let id = el.attr("id").unwrap_or_default().to_string();
    let kind = match el.attr("type").unwrap_or("normal") {
        "chat" => MessageKind::Chat,
        "normal" => MessageKind::Normal,
        "headline" => MessageKind::Headline,
        "groupchat" => MessageKind::Groupchat,
        "error" => {
            return Ok(Decoded::Error {
                id,
                from,
                to,
                failure: read_error(el),
            })
        }
        _ => return Err(refused(Condition::BadRequest, "unknown message type")),
    };
    let mut parts = Vec::new();
    if let Some(body) = el.child(ns, "body") {
        parts.push(Part {
            content_type: "text/plain; charset=utf-8".into(),
            data: Bytes::from(body.text()),
        });
    }
    let chat_state = el
        .elements()
        .filter(|c| c.ns == NS_CHATSTATES)
        .find_map(|c| match c.name.as_str() {
            "active" => Some(ChatState::Active),
            "composing" => Some(ChatState::Composing),
            "paused" => Some(ChatState::Paused),
            "inactive" => Some(ChatState::Inactive),
            "gone" => Some(ChatState::Gone),
            _ => None,
        });
    let receipt = if let Some(r) = el.child(NS_RECEIPTS, "received") {
        Some(Receipt::Delivered {
            id: r.attr("id").unwrap_or_default().to_string(),
        })
    } else if el.child(NS_RECEIPTS, "request").is_some() && !id.is_empty() {
        Some(Receipt::Request)
    } else {
        None
    };
    if parts.is_empty()
        && chat_state.is_none()
        && !matches!(receipt, Some(Receipt::Delivered { .. }))
    {
        // Nothing a person would see (an empty message, or only extensions
        // no other network has): never an empty message on the other side.
        return Ok(Decoded::Ignored);
    }
    Ok(Decoded::Message(Message {
        id,
        from,
        to,
        kind,
        parts,
        subject: el.child(ns, "subject").map(Element::text),
        thread: el.child(ns, "thread").map(Element::text),
        chat_state,
        receipt,
        timestamp: el
            .child(NS_DELAY, "delay")
            .and_then(|d| d.attr("stamp"))
            .map(str::to_string),
    }))
}

fn decode_presence(el: &Element, ns: &str) -> Result<Decoded, Refused> {
    let from = address(el, "from")?;
    let to = match el.attr("to") {
        Some(_) => address(el, "to")?,
        None => return Ok(Decoded::Ignored),
    };
    let action = match el.attr("type") {
        None => None,
        Some("unavailable") => None,
        Some("subscribe") => Some(SubscriptionAction::Subscribe),
        Some("subscribed") => Some(SubscriptionAction::Subscribed),
        Some("unsubscribe") => Some(SubscriptionAction::Unsubscribe),
        Some("unsubscribed") => Some(SubscriptionAction::Unsubscribed),
        Some("probe") => Some(SubscriptionAction::Probe),
        Some("error") => return Ok(Decoded::Ignored),
        Some(_) => return Err(refused(Condition::BadRequest, "unknown presence type")),
    };
    if let Some(action) = action {
        return Ok(Decoded::Subscription(Subscription {
            from: from.bare(),
            to: to.bare(),
            action,
        }));
    }
    let show = el.child(ns, "show").and_then(|s| match s.text().trim() {
        "away" => Some(Show::Away),
        "chat" => Some(Show::Chat),
        "dnd" => Some(Show::Dnd),
        "xa" => Some(Show::Xa),
        _ => None,
    });
    let priority = el
        .child(ns, "priority")
        .and_then(|p| p.text().trim().parse::<i8>().ok())
        .unwrap_or(0);
    Ok(Decoded::Presence(Presence {
        from,
        to,
        available: el.attr("type").is_none(),
        show,
        note: el.child(ns, "status").map(Element::text),
        priority,
    }))
}

/// The condition and text of an error stanza.
pub fn read_error(el: &Element) -> Failure {
    let Some(error) = el.elements().find(|c| c.name == "error") else {
        return Failure::bare(Condition::UndefinedCondition);
    };
    let condition = error
        .elements()
        .filter(|c| c.ns == NS_STANZAS && c.name != "text")
        .find_map(|c| Condition::from_name(&c.name))
        .unwrap_or(Condition::UndefinedCondition);
    Failure {
        condition,
        text: error.child(NS_STANZAS, "text").map(Element::text),
    }
}

fn text_child(ns: &str, name: &str, text: &str) -> Element {
    Element::new(ns, name).with_text(text)
}

/// The message stanza for a neutral message, or `None` when it carries
/// nothing XMPP can show (no text, chat state or receipt).
pub fn encode_message(m: &Message, ns: &str) -> Option<Element> {
    let text = m.body_text();
    let delivered = match &m.receipt {
        Some(Receipt::Delivered { id }) => Some(id.as_str()),
        _ => None,
    };
    if text.is_none() && m.chat_state.is_none() && delivered.is_none() {
        return None;
    }
    let kind = match m.kind {
        MessageKind::Chat => "chat",
        MessageKind::Normal => "normal",
        MessageKind::Headline => "headline",
        MessageKind::Groupchat => "groupchat",
    };
    let mut el = Element::new(ns, "message")
        .with_attr("", "from", &m.from.to_jid())
        .with_attr("", "to", &m.to.to_jid())
        .with_attr("", "type", kind)
        .with_attr("", "id", &m.id);
    if let Some(s) = &m.subject {
        el = el.with_child(text_child(ns, "subject", s));
    }
    if let Some(t) = text {
        el = el.with_child(text_child(ns, "body", t));
    }
    if let Some(t) = &m.thread {
        el = el.with_child(text_child(ns, "thread", t));
    }
    if let Some(state) = m.chat_state {
        let name = match state {
            ChatState::Active => "active",
            ChatState::Composing => "composing",
            ChatState::Paused => "paused",
            ChatState::Inactive => "inactive",
            ChatState::Gone => "gone",
        };
        el = el.with_child(Element::new(NS_CHATSTATES, name));
    }
    match &m.receipt {
        Some(Receipt::Request) => el = el.with_child(Element::new(NS_RECEIPTS, "request")),
        Some(Receipt::Delivered { id }) => {
            el = el.with_child(Element::new(NS_RECEIPTS, "received").with_attr("", "id", id))
        }
        None => {}
    }
    if let Some(stamp) = &m.timestamp {
        el = el.with_child(
            Element::new(NS_DELAY, "delay")
                .with_attr("", "stamp", stamp)
                .with_attr("", "from", m.from.domain()),
        );
    }
    Some(el)
}

/// The presence stanza for a neutral presence state.
pub fn encode_presence(p: &Presence, ns: &str) -> Element {
    let mut el = Element::new(ns, "presence")
        .with_attr("", "from", &p.from.to_jid())
        .with_attr("", "to", &p.to.to_jid());
    if !p.available {
        el = el.with_attr("", "type", "unavailable");
    }
    if let (true, Some(show)) = (p.available, p.show) {
        let name = match show {
            Show::Away => "away",
            Show::Chat => "chat",
            Show::Dnd => "dnd",
            Show::Xa => "xa",
        };
        el = el.with_child(text_child(ns, "show", name));
    }
    if let Some(note) = &p.note {
        el = el.with_child(text_child(ns, "status", note));
    }
    if p.available && p.priority != 0 {
        el = el.with_child(text_child(ns, "priority", &p.priority.to_string()));
    }
    el
}

/// The presence stanza of a subscription request or answer.
pub fn encode_subscription(s: &Subscription, ns: &str) -> Element {
    let kind = match s.action {
        SubscriptionAction::Subscribe => "subscribe",
        SubscriptionAction::Subscribed => "subscribed",
        SubscriptionAction::Unsubscribe => "unsubscribe",
        SubscriptionAction::Unsubscribed => "unsubscribed",
        SubscriptionAction::Probe => "probe",
    };
    Element::new(ns, "presence")
        .with_attr("", "from", &s.from.to_bare_jid())
        .with_attr("", "to", &s.to.to_bare_jid())
        .with_attr("", "type", kind)
}

/// The error reply to `original` (RFC 6120 §8.3.1): addresses swapped,
/// the same id, `type='error'`, the condition and the reason.
pub fn error_reply(original: &Element, failure: &Failure) -> Element {
    let mut el = Element::new(&original.ns, &original.name).with_attr("", "type", "error");
    if let Some(from) = original.attr("to") {
        el = el.with_attr("", "from", from);
    }
    if let Some(to) = original.attr("from") {
        el = el.with_attr("", "to", to);
    }
    if let Some(id) = original.attr("id") {
        el = el.with_attr("", "id", id);
    }
    let kind = match failure.condition.error_type() {
        ErrorType::Cancel => "cancel",
        ErrorType::Wait => "wait",
        ErrorType::Modify => "modify",
        ErrorType::Auth => "auth",
        ErrorType::Continue => "continue",
    };
    let mut error = Element::new(&original.ns, "error")
        .with_attr("", "type", kind)
        .with_child(Element::new(NS_STANZAS, failure.condition.name()));
    if let Some(text) = &failure.text {
        error = error.with_child(text_child(NS_STANZAS, "text", text));
    }
    el.children.push(Node::Element(error));
    el
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use parley_adapter::xml::{self, Limits};

    pub(crate) const NS: &str = "jabber:server";

    /// One stanza of a `jabber:server` stream, parsed from its text.
    pub(crate) fn stanza(text: &str) -> Element {
        let wrapped = format!("<w xmlns='{NS}'>{text}</w>");
        let mut root = xml::parse(wrapped.as_bytes(), &Limits::default()).unwrap();
        match root.children.pop() {
            Some(Node::Element(e)) => e,
            _ => panic!(),
        }
    }

    /// A stanza as it goes on the stream.
    pub(crate) fn write(el: &Element) -> String {
        let mut out = String::new();
        xml::write_fragment(el, NS, &mut out);
        out
    }

    #[test]
    fn chat_message_with_state_and_receipt_request() {
        let el = stanza(
            "<message from='juliet@xmpp.example.test/balcony' to='romeo@parley.example.test' \
             type='chat' id='m1'><body>Wherefore art thou?</body><thread>t1</thread>\
             <active xmlns='http://jabber.org/protocol/chatstates'/>\
             <request xmlns='urn:xmpp:receipts'/></message>",
        );
        let Decoded::Message(m) = decode(&el, NS).unwrap() else {
            panic!()
        };
        assert_eq!(m.from.to_string(), "juliet@xmpp.example.test/balcony");
        assert_eq!(m.body_text(), Some("Wherefore art thou?"));
        assert_eq!(m.chat_state, Some(ChatState::Active));
        assert_eq!(m.receipt, Some(Receipt::Request));
        assert_eq!(m.thread.as_deref(), Some("t1"));
        let back = encode_message(&m, NS).unwrap();
        assert_eq!(decode(&back, NS).unwrap(), Decoded::Message(m));
        assert_eq!(
            write(&back),
            "<message from=\"juliet@xmpp.example.test/balcony\" to=\"romeo@parley.example.test\" \
             type=\"chat\" id=\"m1\"><body>Wherefore art thou?</body><thread>t1</thread>\
             <active xmlns=\"http://jabber.org/protocol/chatstates\"/>\
             <request xmlns=\"urn:xmpp:receipts\"/></message>"
        );
    }

    #[test]
    fn typing_and_receipts_are_not_empty_messages() {
        let typing = stanza(
            "<message from='a@x.test' to='b@y.test' type='chat'>\
             <composing xmlns='http://jabber.org/protocol/chatstates'/></message>",
        );
        let Decoded::Message(m) = decode(&typing, NS).unwrap() else {
            panic!()
        };
        assert!(m.parts.is_empty());
        assert_eq!(m.chat_state, Some(ChatState::Composing));
        let receipt = stanza(
            "<message from='a@x.test' to='b@y.test'><received xmlns='urn:xmpp:receipts' id='m1'/></message>",
        );
        let Decoded::Message(r) = decode(&receipt, NS).unwrap() else {
            panic!()
        };
        assert_eq!(r.receipt, Some(Receipt::Delivered { id: "m1".into() }));
        let empty =
            stanza("<message from='a@x.test' to='b@y.test'><x xmlns='urn:other'/></message>");
        assert_eq!(decode(&empty, NS).unwrap(), Decoded::Ignored);
        let mut nothing = Message::text("1", r.from.clone(), r.to.clone(), "");
        nothing.parts.clear();
        assert!(encode_message(&nothing, NS).is_none());
    }

    #[test]
    fn errors_carry_their_condition_both_ways() {
        let el = stanza(
            "<message from='juliet@xmpp.example.test' to='romeo@parley.example.test' id='m9'>\
             <body>hi</body></message>",
        );
        let failure = Failure::new(Condition::ItemNotFound, "no such user");
        let reply = error_reply(&el, &failure);
        assert_eq!(reply.attr("to"), Some("juliet@xmpp.example.test"));
        assert_eq!(reply.attr("from"), Some("romeo@parley.example.test"));
        let Decoded::Error {
            id, failure: back, ..
        } = decode(&reply, NS).unwrap()
        else {
            panic!()
        };
        assert_eq!(id, "m9");
        assert_eq!(back, failure);
        assert!(write(&reply).contains(
            "<error type=\"cancel\"><item-not-found xmlns=\"urn:ietf:params:xml:ns:xmpp-stanzas\"/>"
        ));
    }

    #[test]
    fn presence_and_subscriptions() {
        let el = stanza(
            "<presence from='juliet@xmpp.example.test/balcony' to='romeo@parley.example.test'>\
             <show>dnd</show><status>In a meeting</status><priority>5</priority></presence>",
        );
        let Decoded::Presence(p) = decode(&el, NS).unwrap() else {
            panic!()
        };
        assert!(p.available);
        assert_eq!(p.show, Some(Show::Dnd));
        assert_eq!(p.note.as_deref(), Some("In a meeting"));
        assert_eq!(p.priority, 5);
        assert_eq!(
            decode(&encode_presence(&p, NS), NS).unwrap(),
            Decoded::Presence(p)
        );
        let gone = stanza("<presence type='unavailable' from='j@x.test/r' to='r@y.test'/>");
        let Decoded::Presence(g) = decode(&gone, NS).unwrap() else {
            panic!()
        };
        assert!(!g.available);
        for kind in [
            "subscribe",
            "subscribed",
            "unsubscribe",
            "unsubscribed",
            "probe",
        ] {
            let el = stanza(&format!(
                "<presence type='{kind}' from='j@x.test/r' to='r@y.test'/>"
            ));
            let Decoded::Subscription(s) = decode(&el, NS).unwrap() else {
                panic!()
            };
            assert_eq!(s.from.resource(), None);
            assert_eq!(encode_subscription(&s, NS).attr("type"), Some(kind));
        }
        let bad = stanza("<presence type='nonsense' from='j@x.test' to='r@y.test'/>");
        assert_eq!(
            decode(&bad, NS).unwrap_err().failure.condition,
            Condition::BadRequest
        );
        let bad_jid = stanza("<message from='@@' to='r@y.test'><body>x</body></message>");
        assert_eq!(
            decode(&bad_jid, NS).unwrap_err().failure.condition,
            Condition::JidMalformed
        );
    }
}
