//! Messages and presence as every network sees them: what RFC 7572
//! (pager-mode IM), RFC 7248 (presence), XEP-0085/RFC 3994 (chat states)
//! and XEP-0184/RFC 5438 (receipts) have in common.

use bytes::Bytes;

use crate::Address;

/// What kind of conversation a message belongs to (XMPP's `type`; SIP
/// pager-mode messages are `Chat` unless they say otherwise).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MessageKind {
    /// One-to-one conversation.
    #[default]
    Chat,
    /// A standalone message.
    Normal,
    /// An alert or news item that expects no reply.
    Headline,
    /// A message to or from a room.
    Groupchat,
}

/// One body part with its MIME type (`text/plain; charset=utf-8`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// The MIME type, with parameters.
    pub content_type: String,
    /// The content, byte for byte.
    pub data: Bytes,
}

/// XEP-0085 chat states; RFC 3994 isComposing carries `active` and
/// `composing` (`idle` is `paused` or `inactive` by the refresh).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChatState {
    /// Paying attention.
    Active,
    /// Typing.
    Composing,
    /// Stopped typing.
    Paused,
    /// Not paying attention.
    Inactive,
    /// Left the conversation.
    Gone,
}

/// A delivery receipt request or answer (XEP-0184 ↔ RFC 5438 IMDN).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Receipt {
    /// The sender wants to know when the message reaches a device.
    Request,
    /// The message with this id reached a device.
    Delivered {
        /// The id of the message the receipt is for.
        id: String,
    },
}

/// A message crossing the gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Unique per sender: the XMPP `id`, the IMDN Message-ID, or one Parley
    /// made. Receipts and error reports refer to it.
    pub id: String,
    /// Who sent it.
    pub from: Address,
    /// Who it is for.
    pub to: Address,
    /// Its conversation kind.
    pub kind: MessageKind,
    /// The content. Empty for a bare chat state or receipt: such a message
    /// must never reach a network as an empty text.
    pub parts: Vec<Part>,
    /// The subject, when one was given.
    pub subject: Option<String>,
    /// The conversation thread (XMPP `<thread/>`).
    pub thread: Option<String>,
    /// A chat state notification, alone or with content.
    pub chat_state: Option<ChatState>,
    /// A receipt request or a receipt.
    pub receipt: Option<Receipt>,
    /// When it was sent, RFC 3339, if the sender said (XEP-0203, CPIM DateTime).
    pub timestamp: Option<String>,
}

impl Message {
    /// A chat message with one `text/plain` part.
    pub fn text(id: impl Into<String>, from: Address, to: Address, text: &str) -> Message {
        Message {
            id: id.into(),
            from,
            to,
            kind: MessageKind::Chat,
            parts: vec![Part {
                content_type: "text/plain; charset=utf-8".into(),
                data: Bytes::copy_from_slice(text.as_bytes()),
            }],
            subject: None,
            thread: None,
            chat_state: None,
            receipt: None,
            timestamp: None,
        }
    }

    /// The first `text/plain` part as text, when there is one.
    pub fn body_text(&self) -> Option<&str> {
        self.parts
            .iter()
            .find(|p| is_text_plain(&p.content_type))
            .and_then(|p| std::str::from_utf8(&p.data).ok())
    }

    /// The total size of the content in bytes.
    pub fn size(&self) -> usize {
        self.parts.iter().map(|p| p.data.len()).sum::<usize>()
            + self.subject.as_ref().map_or(0, String::len)
    }
}

/// Whether a MIME type is `text/plain` (any parameters, any case).
pub fn is_text_plain(content_type: &str) -> bool {
    content_type
        .split(';')
        .next()
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("text/plain"))
}

/// What a person shows besides being on line (XMPP `<show/>`; RPID
/// activities in PIDF per RFC 7248 §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Show {
    /// Away for a short while (RPID `away`).
    Away,
    /// Wants to talk (RPID none, basic open).
    Chat,
    /// Do not disturb (RPID `busy`).
    Dnd,
    /// Away for a long time (RPID `vacation` or `sleeping`… mapped to `away`
    /// with a long idle).
    Xa,
}

/// A presence state sent to one watcher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presence {
    /// Whose presence.
    pub from: Address,
    /// The watcher it is for.
    pub to: Address,
    /// Open (available) or closed (unavailable).
    pub available: bool,
    /// The finer state, when available.
    pub show: Option<Show>,
    /// Free text.
    pub note: Option<String>,
    /// XMPP priority (−128…127); PIDF priority scaled.
    pub priority: i8,
}

/// The subscription handshake (RFC 6121 §3 ↔ SUBSCRIBE/NOTIFY, RFC 7248 §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscriptionAction {
    /// Asks to see the other's presence.
    Subscribe,
    /// Allows the other to see one's presence.
    Subscribed,
    /// Stops seeing the other's presence.
    Unsubscribe,
    /// Refuses or ends the other's subscription.
    Unsubscribed,
    /// Asks for the current presence once.
    Probe,
}

/// A subscription request or answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// The watcher for `Subscribe`, `Unsubscribe` and `Probe`; the presentity
    /// for `Subscribed` and `Unsubscribed`.
    pub from: Address,
    /// The other side.
    pub to: Address,
    /// What is asked or answered.
    pub action: SubscriptionAction,
}
