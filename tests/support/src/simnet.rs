//! A simulated network on virtual time, for transaction tests: datagrams
//! between two endpoints with loss, duplication, latency and jitter (which
//! reorders), all drawn from a seeded generator so every run repeats.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use bytes::Bytes;

/// One side of the simulated link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Side {
    /// The client transaction's side.
    Client,
    /// The server transaction's side.
    Server,
}

/// How the link misbehaves.
#[derive(Debug, Clone, Copy)]
pub struct Conditions {
    /// Chance that a datagram is lost (0 to 1).
    pub loss: f64,
    /// Chance that a datagram arrives twice.
    pub duplicate: f64,
    /// Base one-way delay.
    pub latency: Duration,
    /// Extra delay drawn uniformly from 0 to this, per datagram.
    pub jitter: Duration,
}

impl Conditions {
    /// A perfect link with a fixed delay.
    pub fn clean(latency: Duration) -> Self {
        Conditions {
            loss: 0.0,
            duplicate: 0.0,
            latency,
            jitter: Duration::ZERO,
        }
    }
}

/// A datagram on its way: arrival time, send order (ties keep it), destination.
type InFlight = (Instant, u64, Side, Vec<u8>);

/// The simulated network and its clock.
#[derive(Debug)]
pub struct SimNet {
    now: Instant,
    start: Instant,
    conditions: Conditions,
    rng: u64,
    seq: u64,
    queue: BinaryHeap<Reverse<InFlight>>,
    /// Every datagram sent, with the virtual time it was sent at.
    pub log: Vec<(Duration, Side, Bytes)>,
}

impl SimNet {
    /// A network starting at `start`, with a seed for its random choices.
    pub fn new(start: Instant, conditions: Conditions, seed: u64) -> Self {
        SimNet {
            now: start,
            start,
            conditions,
            rng: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
            seq: 0,
            queue: BinaryHeap::new(),
            log: Vec::new(),
        }
    }

    /// The virtual time.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Time since the start.
    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    fn random(&mut self) -> f64 {
        // xorshift64*
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        (self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Sends a datagram to `to`.
    pub fn send(&mut self, to: Side, data: Bytes) {
        self.log.push((self.elapsed(), to, data.clone()));
        let copies = if self.random() < self.conditions.duplicate {
            2
        } else {
            1
        };
        for _ in 0..copies {
            if self.random() < self.conditions.loss {
                continue;
            }
            let jitter = self.conditions.jitter.mul_f64(self.random());
            let at = self.now + self.conditions.latency + jitter;
            self.seq += 1;
            self.queue.push(Reverse((at, self.seq, to, data.to_vec())));
        }
    }

    /// When the next datagram arrives.
    pub fn next_arrival(&self) -> Option<Instant> {
        self.queue.peek().map(|Reverse((at, ..))| *at)
    }

    /// Moves the clock to `to` (never backwards).
    pub fn advance(&mut self, to: Instant) {
        self.now = self.now.max(to);
    }

    /// The next datagram due by now, if any.
    pub fn receive(&mut self) -> Option<(Side, Bytes)> {
        match self.queue.peek() {
            Some(Reverse((at, ..))) if *at <= self.now => {
                let Reverse((_, _, side, data)) = self.queue.pop()?;
                Some((side, Bytes::from(data)))
            }
            _ => None,
        }
    }
}
