//! The handle services use to send requests: client transactions,
//! CANCEL, stateless forwarding of an ACK.

use std::hash::BuildHasher;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::mpsc;
use tracing::debug;

use super::endpoint::{
    cancel_for, now, unsent_response, ClientEntry, Path, Shared, Sink, TimerKey,
};
use super::{stream, SendError, Target, UDP_REQUEST_LIMIT};
use crate::proto::sip::{HeaderName, Message, Transport};
use crate::proto::transaction::{ClientTransaction, Key};

/// Called with each response of a client transaction, on the task that
/// received it: the proxy's response context runs here, without a task
/// switch.
pub type OnResponse = Arc<dyn Fn(Message) + Send + Sync>;

/// A handle on the running transports, for the services that send requests.
#[derive(Clone)]
pub struct Sip {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Sip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sip").finish_non_exhaustive()
    }
}

impl Sip {
    pub(super) fn of(shared: Arc<Shared>) -> Sip {
        Sip { shared }
    }

    /// Sends `request` to `target` in a new client transaction, with a
    /// top Via of Parley's own (fresh branch, rport). The receiver yields
    /// every response in order: provisional ones, then the final one (or a
    /// local 408 on timeout, 503 on a transport error); for INVITE, every
    /// 2xx that arrives while the transaction lasts.
    pub async fn request(
        &self,
        request: Message,
        target: &Target,
    ) -> Result<mpsc::UnboundedReceiver<Message>, SendError> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.send_request(request, target, Sink::One(tx), None)
            .await?;
        Ok(rx)
    }

    /// [`Sip::request`] with `on_response` called for each response, in
    /// place, on the task that received it (it must not block).
    /// A request that cannot be sent at all gets a local 503 the same way.
    /// Returns the client transaction's key, for [`Sip::cancel`].
    /// `loop_tag` goes into the branch (RFC 3261 §16.6 item 8) so the
    /// proxy can tell a loop from a spiral.
    pub async fn request_with(
        &self,
        request: Message,
        target: &Target,
        on_response: OnResponse,
        loop_tag: Option<u64>,
    ) -> Option<Key> {
        // Kept for a local 503, made only when the request cannot be sent.
        let original = request.clone();
        let sink = Sink::Call(on_response.clone());
        match self.send_request(request, target, sink, loop_tag).await {
            Ok(key) => key,
            Err(e) => {
                debug!(error = %e, "request not sent");
                if let Some(r) = unsent_response(&original, 503, "Service Unavailable") {
                    on_response(r);
                }
                None
            }
        }
    }

    /// Cancels the INVITE client transaction `key` (RFC 3261 §9.1): a
    /// CANCEL with the INVITE's Request-URI, top Via, Route, From, To,
    /// Call-ID and CSeq number goes the same way. False when the INVITE has
    /// no provisional response yet (the CANCEL must wait for one) or is over.
    pub async fn cancel(&self, key: &Key) -> bool {
        use crate::proto::transaction::ClientState;
        let (cancel, path, peer) = {
            let table = self
                .shared
                .clients
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let Some(entry) = table.get(key) else {
                return false;
            };
            if !matches!(entry.txn.state(), ClientState::Proceeding { .. }) {
                return false;
            }
            let Some(cancel) = entry.txn.request().as_ref().and_then(cancel_for) else {
                return false;
            };
            (cancel, entry.path.clone(), entry.peer)
        };
        let Ok(txn) = ClientTransaction::new(now(), cancel, path.reliability(), self.shared.timers)
        else {
            return false;
        };
        let ckey = txn.key().clone();
        let step = {
            let mut table = self
                .shared
                .clients
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            // The 200 to the CANCEL is of no further use.
            let (tx, _) = mpsc::unbounded_channel();
            table.insert(
                ckey.clone(),
                Box::new(ClientEntry {
                    txn,
                    path,
                    responses: Sink::One(tx),
                    peer,
                }),
            );
            Shared::client_step(&mut table, &ckey)
        };
        self.shared.finish_client_step(ckey, step).await;
        true
    }

    /// Forwards a request without a transaction (the ACK for a 2xx, RFC
    /// 3261 §16.11): a Via of Parley's own, whose branch is derived from
    /// the request's, so a retransmission is forwarded identically.
    pub async fn forward_stateless(&self, mut request: Message, target: &Target) {
        let shared = &self.shared;
        let branch_of = request
            .top_via()
            .and_then(Result::ok)
            .and_then(|v| v.branch().map(str::to_string))
            .unwrap_or_default();
        let (path, local) = match self.path_to(target.transport, target).await {
            Ok(p) => p,
            Err(e) => {
                debug!(addr = %target.addr, error = %e, "ACK not forwarded");
                return;
            }
        };
        let via = format!(
            "SIP/2.0/{} {local};branch=z9hG4bK{:016x};rport",
            path.transport().via_name(),
            shared.branch_key.hash_one(&branch_of)
        );
        if request.headers_mut().push_front("Via", &via).is_err() {
            return;
        }
        request.ensure_content_length();
        path.send_now(Bytes::from(request.to_bytes())).await;
    }

    /// True while the server transaction `key` waits for its final response.
    pub fn is_pending(&self, key: &Key) -> bool {
        self.shared
            .servers
            .lock()
            .is_ok_and(|t| t.get(key).is_some_and(|e| e.txn.awaits_final()))
    }

    /// Where to send to `target` over `transport`, and the sent-by for the
    /// Via: the UDP socket of the right family, or a connection (open or
    /// new) with the address Parley listens on for that transport.
    async fn path_to(
        &self,
        transport: Transport,
        target: &Target,
    ) -> Result<(Path, SocketAddr), std::io::Error> {
        let shared = &self.shared;
        if transport == Transport::Udp {
            let (socket, local) = shared.udp_socket(target.addr).ok_or_else(|| {
                std::io::Error::new(std::io::ErrorKind::NotFound, "no UDP socket")
            })?;
            let path = Path::Udp {
                socket,
                to: target.addr,
            };
            return Ok((path, local));
        }
        let (tx, local) = stream::open(shared, transport, target).await?;
        let sent_by = shared.sent_by(transport, target.addr).unwrap_or(local);
        Ok((Path::Stream(tx, transport, None), sent_by))
    }

    async fn send_request(
        &self,
        mut request: Message,
        target: &Target,
        sink: Sink,
        loop_tag: Option<u64>,
    ) -> Result<Option<Key>, SendError> {
        let shared = &self.shared;
        // A server that asked for less (RFC 7339) gets its share of new
        // requests turned away here, as if it had answered 503.
        if !shared
            .overload
            .may_send(target.addr, || (crate::sys::random_u64() % 100) as u32)
        {
            if let Some(r) =
                unsent_response(&request, 503, "Service Unavailable (overload control)")
            {
                sink.send(r);
            }
            return Ok(None);
        }
        let mut transport = target.transport;
        let too_large = transport == Transport::Udp && request.wire_len() + 100 > UDP_REQUEST_LIMIT;
        if too_large {
            transport = Transport::Tcp; // RFC 3261 §18.1.1
        }
        let (path, local) = match self.path_to(transport, target).await {
            Ok(p) => p,
            Err(_) if transport == Transport::Udp => return Err(SendError::NoSocket(transport)),
            // RFC 3261 §18.1.1: TCP only for the size, and the target
            // refuses the connection: the request goes over UDP after all.
            // Not a MESSAGE: RFC 3428 §5 wants 513 for that instead.
            Err(e)
                if too_large
                    && target.transport == Transport::Udp
                    && !matches!(request.method(), Some(crate::proto::sip::Method::Message))
                    && e.kind() == std::io::ErrorKind::ConnectionRefused =>
            {
                debug!(addr = %target.addr, "no TCP for a large request: UDP after all");
                transport = Transport::Udp;
                match self.path_to(transport, target).await {
                    Ok(p) => p,
                    Err(_) => return Err(SendError::NoSocket(transport)),
                }
            }
            Err(e) => {
                debug!(addr = %target.addr, error = %e, "cannot connect");
                // Too large for UDP and no TCP at the target: the request
                // cannot go there at all (RFC 3428 §5: 513).
                let answer = if too_large {
                    unsent_response(&request, 513, "Message Too Large")
                } else {
                    unsent_response(&request, 503, "Service Unavailable")
                };
                if let Some(r) = answer {
                    sink.send(r);
                }
                return Ok(None);
            }
        };
        let tag = loop_tag.map_or_else(String::new, |t| format!(".{t:016x}"));
        // `oc`: Parley honours RFC 7339 reductions from this server.
        let via = format!(
            "SIP/2.0/{} {local};branch=z9hG4bK{}{tag};rport;oc",
            transport.via_name(),
            crate::sys::token()
        );
        request.headers_mut().push_front("Via", &via)?;
        if request.headers().get(HeaderName::MaxForwards).is_none() {
            request.headers_mut().push("Max-Forwards", "70")?;
        }
        request.ensure_content_length();
        let txn = ClientTransaction::new(now(), request, path.reliability(), shared.timers)?;
        let key = txn.key().clone();
        let step = {
            let mut table = shared.clients.lock().unwrap_or_else(|p| p.into_inner());
            table.insert(
                key.clone(),
                Box::new(ClientEntry {
                    txn,
                    path,
                    responses: sink,
                    peer: target.addr,
                }),
            );
            Shared::client_step(&mut table, &key)
        };
        let path = step.path.clone();
        for data in step.out {
            let sent = match &path {
                Some(p) => p.send_now(data).await,
                None => false,
            };
            if !sent {
                let failed = {
                    let mut table = shared.clients.lock().unwrap_or_else(|p| p.into_inner());
                    if let Some(e) = table.get_mut(&key) {
                        e.txn.handle_transport_error();
                    }
                    Shared::client_step(&mut table, &key)
                };
                shared.finish_client_step(key, failed).await;
                return Ok(None);
            }
        }
        if let Some(at) = step.next {
            shared
                .timers_queue
                .schedule(TimerKey::Client(key.clone()), at);
        }
        for (sink, m) in step.deliver {
            sink.send(m);
        }
        Ok(Some(key))
    }

    /// True when a connection over `transport` to `peer` is open (a flow a
    /// user agent registered over).
    pub fn is_connected(&self, transport: Transport, peer: SocketAddr) -> bool {
        let map = self
            .shared
            .connections
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        map.get(&(transport, peer, None)).is_some_and(|slot| {
            slot.try_lock()
                .is_ok_and(|c| c.as_ref().is_some_and(|c| !c.tx.is_closed()))
        })
    }

    /// Open connections (accepted and opened), for monitoring and tests.
    pub fn open_connections(&self) -> usize {
        self.shared.connections.lock().map_or(0, |c| c.len())
    }
}
