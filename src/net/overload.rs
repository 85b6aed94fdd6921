//! Overload control. A new request is admitted only while the work that
//! waits is bounded: past `max_pending` unanswered non-INVITE requests, it
//! gets 503 with Retry-After at once (RFC 3261 §21.5.4), statelessly,
//! before any storage work; retransmissions of admitted transactions are
//! absorbed by their transactions and never turned away.
//!
//! RFC 7339 (loss-based): as a server, an upstream that puts `oc` in its
//! Via is told in the responses how much less to send once the load passes
//! the threshold; as a client, Parley puts `oc` in its own Vias and, when a
//! downstream server answers with `oc=N`, turns away N % of the new
//! requests for it (locally, 503) for `oc-validity` milliseconds.
//!
//! Floods are logged once per interval, with counts; `/metrics` counts what
//! was turned away by reason.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tracing::warn;

use crate::config::OverloadConfig;
use crate::proto::sip::Message;

/// How often a flood is logged at most.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// Downstream servers remembered with a reduction at most.
const PEERS: usize = 4096;

/// How often the answer rate is measured.
const RATE_WINDOW: Duration = Duration::from_millis(250);

/// Requests always admitted whatever the answer rate.
const FLOOR: usize = 64;

/// Answers per second from which the rate bounds the pending requests.
const BUSY: f64 = 200.0;

/// The recent answer rate: answers counted since the window began, and
/// the rate of the windows before (an average that forgets).
struct Rate {
    since: Instant,
    answered_then: u64,
    per_second: f64,
}

/// The admission state.
pub(super) struct Overload {
    config: OverloadConfig,
    pending: AtomicUsize,
    answered: AtomicU64,
    rate: Mutex<Rate>,
    /// Turned away since the last log line, and when that was.
    shed: AtomicU64,
    last_log: Mutex<Instant>,
    /// RFC 7339 §5.2: a number that grows with each new `oc` value.
    seq: AtomicU64,
    /// Downstream servers that asked for less: (percent, until).
    peers: Mutex<HashMap<SocketAddr, (u32, Instant)>>,
    /// Whether `peers` holds anything: the common case sends without a
    /// lock or a random draw.
    any_peer: std::sync::atomic::AtomicBool,
}

impl Overload {
    pub(super) fn new(config: OverloadConfig) -> Overload {
        Overload {
            config,
            pending: AtomicUsize::new(0),
            answered: AtomicU64::new(0),
            rate: Mutex::new(Rate {
                since: Instant::now(),
                answered_then: 0,
                per_second: 0.0,
            }),
            shed: AtomicU64::new(0),
            last_log: Mutex::new(Instant::now()),
            seq: AtomicU64::new(1),
            peers: Mutex::new(HashMap::new()),
            any_peer: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Whether a new request may start a transaction; a non-INVITE one that
    /// does counts as pending until [`Overload::answered`].
    pub(super) fn admit(&self, counts: bool) -> bool {
        // Below the floor no bound applies: the hot path takes no lock.
        let pending = self.pending.load(Ordering::Relaxed);
        if pending >= FLOOR.min(self.config.max_pending) && pending >= self.bound() {
            self.turned_away("pending");
            return false;
        }
        if counts {
            self.pending.fetch_add(1, Ordering::Relaxed);
        }
        true
    }

    /// How many may be pending now: `max_pending`, or fewer when the
    /// answers of late would not clear them within `max_wait_ms` (the
    /// time a newly admitted request would wait behind them).
    fn bound(&self) -> usize {
        let per_second = match self.rate.try_lock() {
            Ok(mut r) => {
                let elapsed = r.since.elapsed();
                if elapsed >= RATE_WINDOW {
                    let now = self.answered.load(Ordering::Relaxed);
                    let window = (now - r.answered_then) as f64 / elapsed.as_secs_f64();
                    r.per_second = if r.per_second == 0.0 {
                        window
                    } else {
                        0.5 * r.per_second + 0.5 * window
                    };
                    r.since = Instant::now();
                    r.answered_then = now;
                }
                r.per_second
            }
            Err(_) => 0.0,
        };
        let max = self.config.max_pending;
        // Below a busy rate, what is pending waits on the network (a
        // silent device, Timer F), not on Parley: the plain bound holds.
        if per_second < BUSY {
            return max;
        }
        let clears = (per_second * f64::from(self.config.max_wait_ms) / 1000.0) as usize;
        clears.clamp(FLOOR.min(max), max)
    }

    /// A counted request got its final response.
    pub(super) fn answered(&self) {
        self.answered.fetch_add(1, Ordering::Relaxed);
        let _ = self
            .pending
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                Some(n.saturating_sub(1))
            });
    }

    /// Requests admitted and not yet answered.
    pub(super) fn pending(&self) -> usize {
        self.pending.load(Ordering::Relaxed)
    }

    /// The Retry-After of a 503 for overload.
    pub(super) fn retry_after(&self) -> String {
        self.config.retry_after_secs.to_string()
    }

    fn turned_away(&self, reason: &'static str) {
        metrics::counter!("parley_requests_shed_total", "reason" => reason).increment(1);
        let n = self.shed.fetch_add(1, Ordering::Relaxed) + 1;
        let mut last = self.last_log.lock().unwrap_or_else(|p| p.into_inner());
        if last.elapsed() >= LOG_EVERY {
            let secs = last.elapsed().as_secs();
            *last = Instant::now();
            self.shed.store(0, Ordering::Relaxed);
            warn!(
                turned_away = n,
                seconds = secs,
                pending = self.pending(),
                max_pending = self.config.max_pending,
                "overload: new requests answered 503"
            );
        }
    }

    /// RFC 7339 §5.3: the share (percent) of its requests an upstream
    /// should drop now: none below the threshold, then rising to 100 at
    /// `max_pending`.
    pub(super) fn reduction(&self) -> u32 {
        let max = self.config.max_pending.max(1) as u64;
        let load = (self.pending() as u64 * 100 / max).min(100) as u32;
        let from = self.config.oc_threshold_percent.min(99);
        if load <= from {
            0
        } else {
            (load - from) * 100 / (100 - from)
        }
    }

    /// The `oc` parameters for the top Via of a response to an upstream
    /// that announced support, when it should send less.
    pub(super) fn via_params(&self) -> Option<String> {
        let oc = self.reduction();
        (oc > 0).then(|| {
            format!(
                ";oc={oc};oc-algo=\"loss\";oc-validity={};oc-seq={}",
                self.config.oc_validity_ms,
                self.seq.fetch_add(1, Ordering::Relaxed)
            )
        })
    }

    /// A response from `peer`: remembers the reduction its top Via asks
    /// for (RFC 7339 §5.5), or forgets it when the Via asks for none.
    pub(super) fn learn(&self, peer: SocketAddr, response: &Message) {
        let Some(Ok(via)) = response.top_via() else {
            return;
        };
        let Some(oc) = via.params.value("oc") else {
            return;
        };
        let percent = oc.trim().parse::<u32>().unwrap_or(0).min(100);
        let validity = via
            .params
            .value("oc-validity")
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(500)
            .min(60_000);
        let mut peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        if percent == 0 || validity == 0 {
            peers.remove(&peer);
            self.any_peer.store(!peers.is_empty(), Ordering::Relaxed);
            return;
        }
        if peers.len() >= PEERS && !peers.contains_key(&peer) {
            let now = Instant::now();
            peers.retain(|_, (_, until)| *until > now);
        }
        if peers.len() < PEERS || peers.contains_key(&peer) {
            peers.insert(
                peer,
                (percent, Instant::now() + Duration::from_millis(validity)),
            );
        }
        self.any_peer.store(!peers.is_empty(), Ordering::Relaxed);
    }

    /// Whether a new request for `peer` goes out, or is turned away to
    /// honour the reduction that peer asked for; `draw` gives a number in
    /// 0..100 (asked for only when a reduction is in force).
    pub(super) fn may_send(&self, peer: SocketAddr, draw: impl FnOnce() -> u32) -> bool {
        if !self.any_peer.load(Ordering::Relaxed) {
            return true;
        }
        let peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        match peers.get(&peer) {
            Some((percent, until)) if *until > Instant::now() && draw() < *percent => {
                metrics::counter!("parley_requests_shed_total", "reason" => "downstream-oc")
                    .increment(1);
                false
            }
            _ => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn config(max: usize) -> OverloadConfig {
        OverloadConfig {
            max_pending: max,
            max_wait_ms: 400,
            retry_after_secs: 5,
            oc_threshold_percent: 50,
            oc_validity_ms: 2000,
        }
    }

    #[test]
    fn admission_stops_at_the_bound_and_resumes_as_answers_go_out() {
        let o = Overload::new(config(3));
        assert!(o.admit(true) && o.admit(true) && o.admit(true));
        assert!(!o.admit(true), "the fourth waits for nobody: 503");
        assert!(!o.admit(false), "an INVITE neither");
        o.answered();
        assert!(o.admit(false), "an INVITE is admitted, not counted");
        assert!(o.admit(true));
        assert_eq!(o.pending(), 3);
    }

    #[test]
    fn upstreams_are_asked_for_less_past_the_threshold() {
        let o = Overload::new(config(100));
        for _ in 0..50 {
            o.admit(true);
        }
        assert_eq!(o.reduction(), 0);
        assert_eq!(o.via_params(), None);
        for _ in 0..25 {
            o.admit(true);
        }
        assert_eq!(o.reduction(), 50);
        let p = o.via_params().unwrap();
        assert!(
            p.starts_with(";oc=50;oc-algo=\"loss\";oc-validity=2000;oc-seq="),
            "{p}"
        );
    }

    #[test]
    fn a_downstream_reduction_is_honoured_until_it_lapses() {
        let o = Overload::new(config(100));
        let peer: SocketAddr = "127.0.0.1:5070".parse().unwrap();
        let response = |via: &str| {
            Message::parse(
                Bytes::from(format!(
                    "SIP/2.0 200 OK\r\nVia: {via}\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: x\r\nCSeq: 1 MESSAGE\r\nContent-Length: 0\r\n\r\n"
                )),
                crate::proto::sip::Framing::Stream,
                &crate::proto::sip::Limits::default(),
            )
            .unwrap()
        };
        o.learn(
            peer,
            &response(
                "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKa;oc=30;oc-validity=60000;oc-seq=1",
            ),
        );
        assert!(!o.may_send(peer, || 10), "10 < 30: turned away");
        assert!(o.may_send(peer, || 30), "30 of 100 go out");
        assert!(
            o.may_send("127.0.0.1:5080".parse().unwrap(), || 0),
            "others are not affected"
        );
        o.learn(
            peer,
            &response("SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKb;oc=0"),
        );
        assert!(o.may_send(peer, || 0), "oc=0 ends the reduction");
    }
}
