//! The SIMPLE services. Today: the user-agent core that answers OPTIONS
//! (RFC 3261 §11) and refuses, with 501, the methods Parley does not serve
//! yet. The registrar, proxy and presence agent join it here.

use crate::proto::sip::stateless::respond;
use crate::proto::sip::{Message, Method};

/// The methods Parley serves, for Allow.
pub const ALLOW: &str = "OPTIONS";

/// The request handler behind the server transactions.
#[derive(Debug, Default, Clone)]
pub struct Core;

impl Core {
    /// The final response to a request that opened a server transaction,
    /// with its status, or `None` for ACK (which gets no response).
    pub fn handle_request(&self, request: &Message, to_tag: &str) -> Option<(u16, Vec<u8>)> {
        match request.method()? {
            Method::Ack => None,
            Method::Options => {
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
                Some((200, respond(request, 200, "OK", to_tag, &extra)))
            }
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
