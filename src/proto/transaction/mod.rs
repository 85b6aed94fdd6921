//! The SIP transaction layer (RFC 3261 §17, with the RFC 6026 corrections).
//!
//! Sans-IO, in the manner of a protocol core that takes time as an argument:
//! a transaction is fed messages (`handle_*`) and the passing of time
//! (`handle_timeout(now)`), and it is asked what to do (`poll_transmit`,
//! `poll_event`, `poll_timeout`). It never reads a clock or touches a socket,
//! so every timer and every retransmission schedule is tested on virtual time.
//!
//! States are types named as RFC 3261 names them; each holds only the timers
//! that run in it, so a transaction in one state cannot act on a timer of
//! another.

mod client;
mod key;
mod server;

use std::time::Duration;

pub use client::{ClientEvent, ClientState, ClientTransaction};
pub use key::{Key, MethodKey};
pub use server::{ServerEvent, ServerState, ServerTransaction, TRYING_DELAY};

/// The timer base values of RFC 3261 §17.1.1.1 and Table 4.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerConfig {
    /// RTT estimate (default 500 ms).
    pub t1: Duration,
    /// Longest retransmit interval for non-INVITE requests and INVITE responses (default 4 s).
    pub t2: Duration,
    /// Longest time a message stays in the network (default 5 s).
    pub t4: Duration,
}

impl Default for TimerConfig {
    fn default() -> Self {
        TimerConfig {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

impl TimerConfig {
    /// 64·T1: Timers B, F, H, J, L and M.
    pub fn t1x64(&self) -> Duration {
        self.t1 * 64
    }
}

/// Whether the transport retransmits for us (RFC 3261 §17: timers that
/// only retransmit are not started on a reliable transport, and the wait
/// states last zero seconds there).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reliability {
    /// UDP.
    Unreliable,
    /// TCP, TLS, SCTP, WebSocket.
    Reliable,
}

/// A retransmission timer: when it fires next and the interval it used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retransmit {
    /// When it fires.
    pub at: std::time::Instant,
    /// The interval that led to `at`.
    pub interval: Duration,
}

impl Retransmit {
    pub(crate) fn start(now: std::time::Instant, interval: Duration) -> Self {
        Retransmit {
            at: now + interval,
            interval,
        }
    }

    /// The next schedule after firing: doubled, capped at `cap` when given.
    pub(crate) fn next(self, cap: Option<Duration>) -> Self {
        let doubled = self.interval * 2;
        let interval = cap.map_or(doubled, |c| doubled.min(c));
        Retransmit {
            at: self.at + interval,
            interval,
        }
    }
}
