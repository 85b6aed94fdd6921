//! The SIMPLE services. Today: the user-agent core that answers OPTIONS
//! (RFC 3261 §11) and refuses, with 501, the methods Parley does not serve
//! yet. The registrar, proxy and presence agent join it here.

use crate::proto::sip::stateless::{respond, stateless_tag};
use crate::proto::sip::{Message, Method};

/// The methods Parley serves, for Allow.
pub const ALLOW: &str = "OPTIONS";

/// The request handler behind the server transactions.
#[derive(Debug, Default, Clone)]
pub struct Core;

impl Core {
    /// The response to a request Parley answers without a transaction
    /// (RFC 3261 §8.2.7): OPTIONS, whose answer depends on the request
    /// alone. The To tag is derived from the request with `tag_secret`, so a
    /// retransmission gets the same response.
    pub fn answer_stateless(&self, request: &Message, tag_secret: u64) -> Option<Vec<u8>> {
        match request.method()? {
            Method::Options => Some(options(request, &stateless_tag(request, tag_secret))),
            _ => None,
        }
    }

    /// The final response to a request that opened a server transaction,
    /// with its status, or `None` for ACK (which gets no response).
    pub fn handle_request(&self, request: &Message, to_tag: &str) -> Option<(u16, Vec<u8>)> {
        match request.method()? {
            Method::Ack => None,
            Method::Options => Some((200, options(request, to_tag))),
            _ => {
                let extra = [("Allow", ALLOW.to_string())];
                Some((
                    501,
                    respond(request, 501, "Not Implemented", to_tag, &extra),
                ))
            }
        }
    }
}

/// The 200 to OPTIONS (RFC 3261 §11.2).
fn options(request: &Message, to_tag: &str) -> Vec<u8> {
    let extra = [
        ("Allow", ALLOW.to_string()),
        // Empty lists: no bodies and no extensions are understood yet.
        ("Accept", String::new()),
        ("Supported", String::new()),
        (
            "Server",
            concat!("Parley/", env!("CARGO_PKG_VERSION")).to_string(),
        ),
    ];
    respond(request, 200, "OK", to_tag, &extra)
}
