//! Server transactions (RFC 3261 §17.2, RFC 6026 §7.1).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{Key, Reliability, Retransmit, TimerConfig};
use crate::proto::sip::{Message, Method, SipError};

/// How long an INVITE server transaction waits for the TU before it sends
/// 100 Trying itself (RFC 3261 §17.2.1).
pub const TRYING_DELAY: Duration = Duration::from_millis(200);

/// What a server transaction tells its transaction user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerEvent {
    /// An ACK for a 2xx, passed up while Accepted (RFC 6026 §7.1).
    Ack(Message),
    /// Timer H fired: the ACK for a non-2xx final response never came.
    Timeout,
    /// The transport could not send a response.
    TransportError,
}

/// The states of RFC 3261 Figures 7 and 8, with RFC 6026's Accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerState {
    /// Non-INVITE received, waiting for the TU's first response; request
    /// retransmissions are absorbed.
    Trying,
    /// Waiting for the TU's final response; a request retransmission makes
    /// the last provisional response go out again. An INVITE sends 100
    /// Trying itself if the TU is silent for 200 ms.
    Proceeding {
        /// When to send 100 Trying (INVITE only, until any response is sent).
        trying_at: Option<Instant>,
    },
    /// A final response (3xx–6xx for INVITE) was sent; for INVITE waiting
    /// for the ACK (Timer G retransmits, Timer H gives up); for non-INVITE
    /// answering retransmissions until Timer J.
    Completed {
        /// Timer G (INVITE on unreliable transports).
        retransmit: Option<Retransmit>,
        /// Timer H or J.
        until: Instant,
    },
    /// RFC 6026: a 2xx to an INVITE was sent; the TU retransmits it and gets
    /// the ACKs, retransmitted INVITEs are absorbed, until Timer L.
    Accepted {
        /// Timer L.
        until: Instant,
    },
    /// The ACK came; absorbing ACK retransmissions until Timer I.
    Confirmed {
        /// Timer I.
        until: Instant,
    },
    /// Done; the transaction can be dropped.
    Terminated,
}

/// One server transaction.
#[derive(Debug)]
pub struct ServerTransaction {
    key: Key,
    invite: bool,
    reliability: Reliability,
    timers: TimerConfig,
    state: ServerState,
    trying: Option<Bytes>,
    last_response: Option<Bytes>,
    transmits: VecDeque<Bytes>,
    events: VecDeque<ServerEvent>,
}

impl ServerTransaction {
    /// Creates the transaction for a new request (the TU gets the request
    /// from whoever matched it; this only tracks the exchange).
    pub fn new(
        now: Instant,
        request: &Message,
        reliability: Reliability,
        timers: TimerConfig,
    ) -> Result<ServerTransaction, SipError> {
        Ok(Self::with_key(
            now,
            request,
            Key::for_request(request)?,
            reliability,
            timers,
        ))
    }

    /// Creates the transaction when the caller has the key already.
    pub fn with_key(
        now: Instant,
        request: &Message,
        key: Key,
        reliability: Reliability,
        timers: TimerConfig,
    ) -> ServerTransaction {
        let invite = matches!(request.method(), Some(Method::Invite));
        let (state, trying) = if invite {
            (
                ServerState::Proceeding {
                    trying_at: Some(now + TRYING_DELAY),
                },
                Some(Bytes::from(trying_for(request))),
            )
        } else {
            (ServerState::Trying, None)
        };
        ServerTransaction {
            key,
            invite,
            reliability,
            timers,
            state,
            trying,
            last_response: None,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// The key requests are matched by.
    pub fn key(&self) -> &Key {
        &self.key
    }

    /// The current state.
    pub fn state(&self) -> &ServerState {
        &self.state
    }

    /// True while no final response has been sent (Trying, Proceeding).
    pub fn awaits_final(&self) -> bool {
        matches!(
            self.state,
            ServerState::Trying | ServerState::Proceeding { .. }
        )
    }

    /// True once the transaction is over.
    pub fn is_terminated(&self) -> bool {
        self.state == ServerState::Terminated
    }

    /// Bytes to send to the peer, oldest first.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        self.transmits.pop_front()
    }

    /// Something for the transaction user.
    pub fn poll_event(&mut self) -> Option<ServerEvent> {
        self.events.pop_front()
    }

    /// When `handle_timeout` must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.state {
            ServerState::Trying | ServerState::Terminated => None,
            ServerState::Proceeding { trying_at } => *trying_at,
            ServerState::Completed { retransmit, until } => {
                Some(retransmit.map_or(*until, |r| r.at.min(*until)))
            }
            ServerState::Accepted { until } | ServerState::Confirmed { until } => Some(*until),
        }
    }

    /// Lets time pass: fires every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        // Several timers can be due at once (a late call): fire until none is.
        while self.fire(now) {}
    }
    /// Fires the first timer due at `now`; false when none was.
    fn fire(&mut self, now: Instant) -> bool {
        let t2 = self.timers.t2;
        let mut fired = true;
        self.state = match std::mem::replace(&mut self.state, ServerState::Terminated) {
            ServerState::Proceeding {
                trying_at: Some(at),
            } if now >= at => {
                if let Some(t) = self.trying.take() {
                    self.transmits.push_back(t.clone());
                    self.last_response = Some(t);
                }
                ServerState::Proceeding { trying_at: None }
            }
            ServerState::Completed { until, .. } if now >= until => {
                if self.invite {
                    self.events.push_back(ServerEvent::Timeout);
                }
                ServerState::Terminated
            }
            ServerState::Completed {
                retransmit: Some(r),
                until,
            } if now >= r.at => {
                // Timer G doubles up to T2 (RFC 3261 §17.2.1).
                if let Some(resp) = &self.last_response {
                    self.transmits.push_back(resp.clone());
                }
                ServerState::Completed {
                    retransmit: Some(r.next(Some(t2))),
                    until,
                }
            }
            ServerState::Accepted { until } | ServerState::Confirmed { until } if now >= until => {
                ServerState::Terminated
            }
            other => {
                fired = false;
                other
            }
        };
        fired
    }

    /// A request whose key matched this transaction: a retransmission, or
    /// the ACK of an INVITE.
    pub fn handle_request(&mut self, now: Instant, request: Message) {
        let ack = matches!(request.method(), Some(Method::Ack));
        let state = std::mem::replace(&mut self.state, ServerState::Terminated);
        self.state = match state {
            ServerState::Completed { .. } if ack && self.invite => ServerState::Confirmed {
                until: match self.reliability {
                    Reliability::Unreliable => now + self.timers.t4,
                    Reliability::Reliable => now,
                },
            },
            s @ ServerState::Accepted { .. } if ack => {
                self.events.push_back(ServerEvent::Ack(request));
                s
            }
            s @ (ServerState::Proceeding { .. } | ServerState::Completed { .. }) if !ack => {
                if let Some(resp) = &self.last_response {
                    self.transmits.push_back(resp.clone());
                }
                s
            }
            s => s,
        };
    }

    /// The TU answers. Responses that the state does not allow are ignored
    /// and reported as `false`.
    pub fn send_response(&mut self, now: Instant, response: &Message) -> bool {
        let Some(code) = response.status() else {
            return false;
        };
        self.send_printed(now, code, Bytes::from(response.to_bytes()))
    }

    /// The TU answers with a response it printed itself (`status` is its code).
    pub fn send_printed(&mut self, now: Instant, status: u16, wire: Bytes) -> bool {
        let code = status;
        let unreliable = self.reliability == Reliability::Unreliable;
        let t1x64 = self.timers.t1x64();
        let state = std::mem::replace(&mut self.state, ServerState::Terminated);
        let (next, sent) = match (state, code) {
            (ServerState::Trying | ServerState::Proceeding { .. }, 100..=199) => {
                (ServerState::Proceeding { trying_at: None }, true)
            }
            (ServerState::Trying | ServerState::Proceeding { .. }, 200..=699) if !self.invite => (
                ServerState::Completed {
                    retransmit: None,
                    until: if unreliable { now + t1x64 } else { now },
                },
                true,
            ),
            (ServerState::Proceeding { .. }, 200..=299) => {
                (ServerState::Accepted { until: now + t1x64 }, true)
            }
            // The TU retransmits its 2xx itself while Accepted (RFC 6026 §7.1).
            (s @ ServerState::Accepted { .. }, 200..=299) => (s, true),
            (ServerState::Proceeding { .. }, 300..=699) => (
                ServerState::Completed {
                    retransmit: unreliable.then(|| Retransmit::start(now, self.timers.t1)),
                    until: now + t1x64,
                },
                true,
            ),
            (s, _) => (s, false),
        };
        self.state = next;
        if sent {
            self.trying = None;
            self.transmits.push_back(wire.clone());
            self.last_response = Some(wire);
        }
        sent
    }

    /// The transport could not send a response.
    pub fn handle_transport_error(&mut self) {
        if self.state != ServerState::Terminated {
            self.events.push_back(ServerEvent::TransportError);
            self.state = ServerState::Terminated;
        }
    }
}

/// 100 Trying for a request (RFC 3261 §8.2.6.1): Via, From, To, Call-ID and
/// CSeq copied, Timestamp echoed, no To tag added.
fn trying_for(request: &Message) -> Vec<u8> {
    use crate::proto::sip::HeaderName as N;
    let mut out = b"SIP/2.0 100 Trying\r\n".to_vec();
    for h in request.headers().iter() {
        if matches!(
            h.name,
            N::Via | N::From | N::To | N::CallId | N::CSeq | N::Timestamp
        ) {
            out.extend_from_slice(h.name.canonical().as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(h.value);
            out.extend_from_slice(b"\r\n");
        }
    }
    out.extend_from_slice(b"Content-Length: 0\r\n\r\n");
    out
}
