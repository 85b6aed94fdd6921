//! Client transactions (RFC 3261 §17.1, RFC 6026 §7.2).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{Key, Reliability, Retransmit, TimerConfig};
use crate::proto::sip::{HeaderName, Message, SipError};

/// What a client transaction tells its transaction user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent {
    /// A response to pass up (provisional, final, and for INVITE every 2xx
    /// retransmission while Accepted, so the TU can ACK it again).
    Response(Message),
    /// Timer B or F fired: no final response came (the TU acts as for 408).
    Timeout,
    /// The transport reported a failure (the TU acts as for 503).
    TransportError,
}

/// The states of RFC 3261 Figures 5 and 6, with RFC 6026's Accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientState {
    /// INVITE sent, waiting for any response: Timer A retransmits, Timer B gives up.
    Calling {
        /// Timer A (unreliable transports only).
        retransmit: Option<Retransmit>,
        /// Timer B.
        timeout: Instant,
    },
    /// Non-INVITE sent, waiting for any response: Timer E retransmits, Timer F gives up.
    Trying {
        /// Timer E (unreliable transports only).
        retransmit: Option<Retransmit>,
        /// Timer F.
        timeout: Instant,
    },
    /// A provisional response came; waiting for the final one. A non-INVITE
    /// keeps retransmitting at T2 until Timer F.
    Proceeding {
        /// Timer E at T2 (non-INVITE on unreliable transports).
        retransmit: Option<Retransmit>,
        /// Timer F (non-INVITE only).
        timeout: Option<Instant>,
    },
    /// A final response (3xx–6xx for INVITE) came; absorbing its
    /// retransmissions (and re-sending the ACK) until Timer D or K.
    Completed {
        /// Timer D or K.
        until: Instant,
    },
    /// RFC 6026: a 2xx to an INVITE came; further 2xx go to the TU until Timer M.
    Accepted {
        /// Timer M.
        until: Instant,
    },
    /// Done; the transaction can be dropped.
    Terminated,
}

/// One client transaction.
#[derive(Debug)]
pub struct ClientTransaction {
    key: Key,
    invite: bool,
    /// The request as sent: all the transaction keeps of it.
    wire: Bytes,
    reliability: Reliability,
    timers: TimerConfig,
    state: ClientState,
    ack: Option<Bytes>,
    transmits: VecDeque<Bytes>,
    events: VecDeque<ClientEvent>,
}

impl ClientTransaction {
    /// Starts a transaction for `request` (its top Via carries the branch);
    /// the request is the first thing `poll_transmit` returns.
    pub fn new(
        now: Instant,
        request: Message,
        reliability: Reliability,
        timers: TimerConfig,
    ) -> Result<ClientTransaction, SipError> {
        let key = Key::for_request(&request)?;
        let invite = matches!(request.method(), Some(crate::proto::sip::Method::Invite));
        // Only the printed bytes are kept for the life of the transaction
        // (Timer K, up to 5 s after the response); the parsed request is
        // read back from them in the rare cases that need it.
        let wire = Bytes::from(request.to_bytes());
        let retransmit =
            (reliability == Reliability::Unreliable).then(|| Retransmit::start(now, timers.t1));
        let timeout = now + timers.t1x64();
        let state = if invite {
            ClientState::Calling {
                retransmit,
                timeout,
            }
        } else {
            ClientState::Trying {
                retransmit,
                timeout,
            }
        };
        Ok(ClientTransaction {
            key,
            invite,
            transmits: VecDeque::from([wire.clone()]),
            wire,
            reliability,
            timers,
            state,
            ack: None,
            events: VecDeque::new(),
        })
    }

    /// The key responses are matched by.
    pub fn key(&self) -> &Key {
        &self.key
    }

    /// The request this transaction sends, read back from the bytes it
    /// sent (for a local 408 or 503, a CANCEL, an ACK); None only if those
    /// bytes do not parse, which Parley's own printer does not produce.
    pub fn request(&self) -> Option<Message> {
        let limits = crate::proto::sip::Limits {
            max_message_size: self.wire.len().max(1),
            max_body_size: self.wire.len(),
            max_headers: usize::MAX,
            max_vias: usize::MAX,
            ..crate::proto::sip::Limits::default()
        };
        Message::parse(
            self.wire.clone(),
            crate::proto::sip::Framing::Datagram,
            &limits,
        )
        .ok()
    }

    /// True for an INVITE transaction.
    pub fn is_invite(&self) -> bool {
        self.invite
    }

    /// The current state.
    pub fn state(&self) -> &ClientState {
        &self.state
    }

    /// True once the transaction is over.
    pub fn is_terminated(&self) -> bool {
        self.state == ClientState::Terminated
    }

    /// Bytes to send to the peer, oldest first.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        self.transmits.pop_front()
    }

    /// Something for the transaction user.
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    /// When `handle_timeout` must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.state {
            ClientState::Calling {
                retransmit,
                timeout,
            }
            | ClientState::Trying {
                retransmit,
                timeout,
            } => Some(retransmit.map_or(*timeout, |r| r.at.min(*timeout))),
            ClientState::Proceeding {
                retransmit,
                timeout,
            } => match (retransmit.map(|r| r.at), timeout) {
                (Some(a), Some(b)) => Some(a.min(*b)),
                (a, b) => a.or(*b),
            },
            ClientState::Completed { until } | ClientState::Accepted { until } => Some(*until),
            ClientState::Terminated => None,
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
        self.state = match std::mem::replace(&mut self.state, ClientState::Terminated) {
            ClientState::Calling { timeout, .. } | ClientState::Trying { timeout, .. }
                if now >= timeout =>
            {
                self.events.push_back(ClientEvent::Timeout);
                ClientState::Terminated
            }
            ClientState::Calling {
                retransmit: Some(r),
                timeout,
            } if now >= r.at => {
                // Timer A doubles without a cap (RFC 3261 §17.1.1.2).
                self.transmits.push_back(self.wire.clone());
                ClientState::Calling {
                    retransmit: Some(r.next(None)),
                    timeout,
                }
            }
            ClientState::Trying {
                retransmit: Some(r),
                timeout,
            } if now >= r.at => {
                // Timer E doubles up to T2 (RFC 3261 §17.1.2.2).
                self.transmits.push_back(self.wire.clone());
                ClientState::Trying {
                    retransmit: Some(r.next(Some(t2))),
                    timeout,
                }
            }
            ClientState::Proceeding {
                timeout: Some(timeout),
                ..
            } if now >= timeout => {
                self.events.push_back(ClientEvent::Timeout);
                ClientState::Terminated
            }
            ClientState::Proceeding {
                retransmit: Some(r),
                timeout,
            } if now >= r.at => {
                self.transmits.push_back(self.wire.clone());
                ClientState::Proceeding {
                    retransmit: Some(Retransmit {
                        at: r.at + t2,
                        interval: t2,
                    }),
                    timeout,
                }
            }
            ClientState::Completed { until } | ClientState::Accepted { until } if now >= until => {
                ClientState::Terminated
            }
            other => {
                fired = false;
                other
            }
        };
        fired
    }

    /// A response whose key matched this transaction.
    pub fn handle_response(&mut self, now: Instant, response: Message) {
        let Some(code) = response.status() else {
            return;
        };
        let t1x64 = self.timers.t1x64();
        let wait = |unreliable: Duration| match self.reliability {
            Reliability::Unreliable => now + unreliable,
            Reliability::Reliable => now,
        };
        let state = std::mem::replace(&mut self.state, ClientState::Terminated);
        self.state = match (state, code) {
            (ClientState::Calling { timeout, .. }, 100..=199) if self.invite => {
                self.events.push_back(ClientEvent::Response(response));
                let _ = timeout;
                ClientState::Proceeding {
                    retransmit: None,
                    timeout: None,
                }
            }
            (
                ClientState::Trying {
                    retransmit,
                    timeout,
                },
                100..=199,
            ) => {
                self.events.push_back(ClientEvent::Response(response));
                // Timer E continues, now at T2 (RFC 3261 §17.1.2.2).
                ClientState::Proceeding {
                    retransmit: retransmit.map(|r| Retransmit {
                        at: r.at,
                        interval: self.timers.t2,
                    }),
                    timeout: Some(timeout),
                }
            }
            (s @ ClientState::Proceeding { .. }, 100..=199) => {
                self.events.push_back(ClientEvent::Response(response));
                s
            }
            (ClientState::Calling { .. } | ClientState::Proceeding { .. }, 200..=299)
                if self.invite =>
            {
                self.events.push_back(ClientEvent::Response(response));
                // RFC 6026: Accepted, so retransmitted 2xx reach the TU until Timer M.
                ClientState::Accepted { until: now + t1x64 }
            }
            (ClientState::Calling { .. } | ClientState::Proceeding { .. }, 300..=699)
                if self.invite =>
            {
                let ack = self.build_ack(&response);
                self.transmits.push_back(ack.clone());
                self.ack = Some(ack);
                self.events.push_back(ClientEvent::Response(response));
                ClientState::Completed {
                    until: wait(Duration::from_secs(32).max(t1x64)),
                }
            }
            (ClientState::Trying { .. } | ClientState::Proceeding { .. }, 200..=699) => {
                self.events.push_back(ClientEvent::Response(response));
                ClientState::Completed {
                    until: wait(self.timers.t4),
                }
            }
            (s @ ClientState::Accepted { .. }, 200..=299) => {
                self.events.push_back(ClientEvent::Response(response));
                s
            }
            (s @ ClientState::Completed { .. }, 300..=699) if self.invite => {
                // A retransmitted final response: the ACK is sent again, the TU not told.
                if let Some(ack) = &self.ack {
                    self.transmits.push_back(ack.clone());
                }
                s
            }
            (s, _) => s,
        };
    }

    /// The transport could not send the request.
    pub fn handle_transport_error(&mut self) {
        if self.state != ClientState::Terminated {
            self.events.push_back(ClientEvent::TransportError);
            self.state = ClientState::Terminated;
        }
    }

    /// The ACK for a non-2xx final response (RFC 3261 §17.1.1.3): the
    /// request's Request-URI, Call-ID, From, top Via and Route headers; the
    /// response's To (with its tag); CSeq with the same number and ACK.
    fn build_ack(&self, response: &Message) -> Bytes {
        let Some(req) = self.request() else {
            return Bytes::new();
        };
        let mut out = Vec::with_capacity(self.wire.len());
        let uri = String::from_utf8_lossy(req.request_uri_raw().unwrap_or(b""));
        out.extend_from_slice(format!("ACK {uri} SIP/2.0\r\n").as_bytes());
        let top_via = req
            .headers()
            .get(HeaderName::Via)
            .map(crate::proto::sip::grammar::split_first)
            .unwrap_or(b"");
        let mut field = |name: &str, value: &[u8]| {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value);
            out.extend_from_slice(b"\r\n");
        };
        field("Via", top_via);
        for route in req.headers().lines(HeaderName::Route) {
            field("Route", route);
        }
        field("Max-Forwards", b"70");
        field("From", req.headers().get(HeaderName::From).unwrap_or(b""));
        field("To", response.headers().get(HeaderName::To).unwrap_or(b""));
        field("Call-ID", req.call_id().unwrap_or(b""));
        let seq = req.cseq().and_then(Result::ok).map_or(0, |c| c.seq);
        field("CSeq", format!("{seq} ACK").as_bytes());
        field("Content-Length", b"0");
        out.extend_from_slice(b"\r\n");
        Bytes::from(out)
    }
}
