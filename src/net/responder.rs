//! A request handed to the handler, and the responder that answers it.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;

use super::endpoint::Shared;
use super::PeerCertificate;
use crate::proto::sip::stateless::{respond, stateless_tag};
use crate::proto::sip::{Message, Method, Transport};
use crate::proto::transaction::Key;

/// A request that opened a server transaction, handed to the handler.
#[derive(Debug)]
pub struct Incoming {
    /// The request, its top Via stamped with received/rport.
    pub message: Message,
    /// Where it came from.
    pub source: SocketAddr,
    /// The transport it came over.
    pub transport: Transport,
    /// The certificate of the TLS peer it came from, when the peer
    /// authenticated with one (RFC 5922 §7.4).
    pub peer_certificate: Option<PeerCertificate>,
    /// Sends the responses.
    pub responder: Responder,
}

/// Sends the responses of one server transaction. Dropping it before a
/// final response was sent answers 500, so no request is left unanswered.
pub struct Responder {
    shared: Arc<Shared>,
    key: Key,
    request: Message,
    finished: bool,
    /// When the request arrived: the transaction latency histogram.
    started: std::time::Instant,
    /// It counts as pending work until its final response.
    counted: bool,
    /// Its sender announced RFC 7339 support (`oc` in its Via).
    oc: bool,
}

impl std::fmt::Debug for Responder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Responder")
            .field("key", &self.key)
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

impl Responder {
    pub(super) fn new(shared: Arc<Shared>, key: Key, request: Message, counted: bool) -> Responder {
        let oc = request
            .top_via()
            .and_then(Result::ok)
            .is_some_and(|v| v.params.get("oc").is_some());
        Responder {
            shared,
            key,
            request,
            finished: false,
            started: std::time::Instant::now(),
            counted,
            oc,
        }
    }

    /// The final response went out: the request no longer counts.
    fn finish(&mut self) {
        if !self.finished {
            self.finished = true;
            if self.counted {
                self.shared.overload.answered();
            }
        }
    }

    /// Sends a printed response (provisional or final).
    pub async fn send(&mut self, status: u16, wire: Bytes) {
        self.send_sync(status, wire);
    }

    /// Sends a printed response from synchronous code (a response
    /// callback): in place, or on a task of its own when the socket is full.
    pub fn send_sync(&mut self, status: u16, wire: Bytes) {
        // RFC 7339 §5.2: an upstream that supports it learns, in the top
        // Via of each response, how much less to send.
        let params = if self.oc {
            self.shared.overload.via_params()
        } else {
            None
        };
        let wire = match params {
            Some(params) => with_top_via_params(wire, &params),
            None => wire,
        };
        if status >= 200 && !self.finished {
            self.finish();
            let method = self.request.method().map_or("other", Method::label);
            metrics::histogram!("parley_transaction_seconds", "method" => method)
                .record(self.started.elapsed().as_secs_f64());
        }
        if let Some((out, path)) = self.shared.respond_now(&self.key, status, wire) {
            for data in out {
                path.send_detached(data);
            }
        }
    }

    /// Sends a response made from the request (RFC 3261 §8.2.6) with
    /// `extra` header fields; the To tag is the transaction's own.
    pub async fn reply(&mut self, status: u16, reason: &str, extra: &[(&str, String)]) {
        self.reply_sync(status, reason, extra);
    }

    /// [`Responder::reply`] from synchronous code.
    pub fn reply_sync(&mut self, status: u16, reason: &str, extra: &[(&str, String)]) {
        let tag = stateless_tag(&self.request, self.shared.policy.tag_secret);
        let wire = respond(&self.request, status, reason, &tag, extra);
        count_response(status);
        self.send_sync(status, Bytes::from(wire));
    }

    /// [`Responder::reply`] with a To tag of the caller's choosing (a
    /// dialog the core creates, e.g. a subscription).
    pub async fn reply_with_tag(
        &mut self,
        status: u16,
        reason: &str,
        to_tag: &str,
        extra: &[(&str, String)],
    ) {
        let wire = respond(&self.request, status, reason, to_tag, extra);
        self.send_sync(status, Bytes::from(wire));
    }

    /// The server transaction's key.
    pub fn key(&self) -> &Key {
        &self.key
    }

    /// True once a final response was sent.
    pub fn is_finished(&self) -> bool {
        self.finished
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        self.finish();
        let tag = stateless_tag(&self.request, 0);
        let wire = respond(&self.request, 500, "Server Internal Error", &tag, &[]);
        if let Some((out, path)) = self.shared.respond_now(&self.key, 500, Bytes::from(wire)) {
            for data in out {
                path.send_detached(data);
            }
        }
    }
}

/// `wire` with `params` added to its top Via value.
fn with_top_via_params(wire: Bytes, params: &str) -> Bytes {
    use crate::proto::sip::{Framing, HeaderName, Limits};
    let Ok(mut m) = Message::parse(wire.clone(), Framing::Stream, &Limits::default()) else {
        return wire;
    };
    let Some(top) = m
        .headers()
        .values(HeaderName::Via)
        .next()
        .map(|v| String::from_utf8_lossy(v).into_owned())
    else {
        return wire;
    };
    if !m.headers_mut().pop_first_value(HeaderName::Via)
        || m.headers_mut()
            .push_front("Via", &format!("{top}{params}"))
            .is_err()
    {
        return wire;
    }
    Bytes::from(m.to_bytes())
}

/// Counts a final or provisional response Parley sent, by status class
/// and code (a bounded label set: SIP codes are three digits).
pub(super) fn count_response(status: u16) {
    static CODES: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let codes = CODES.get_or_init(|| (0..700).map(|c| c.to_string()).collect());
    let code = codes
        .get(usize::from(status))
        .map_or("other", String::as_str);
    metrics::counter!("parley_sip_responses_total", "code" => code).increment(1);
}
