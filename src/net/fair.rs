//! Fairness between the clients of the stream transports: no one address
//! takes the TCP and TLS listeners from the others.
//!
//! - Each address may hold `max_per_source` accepted connections and open
//!   `new_per_second` a second.
//! - When the inbound budget (`max_connections`) is full, the oldest
//!   connection that never carried a whole message is closed to make room
//!   for the newcomer, rather than the newcomer being refused: idle and
//!   slowloris connections cannot lock real clients out.
//! - Connections Parley opens have a budget of their own.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use crate::config::ConnectionsConfig;

/// How long a newcomer waits for the room an evicted connection frees.
const EVICTION_WAIT: Duration = Duration::from_secs(1);

/// What the admission knows of one accepted connection.
pub(super) struct Accepted {
    peer: SocketAddr,
    since: Instant,
    /// Set once a whole message came over it.
    proven: AtomicBool,
    /// Cancelled to close it.
    pub(super) close: CancellationToken,
    fair: Weak<Fair>,
}

impl Accepted {
    /// A whole message came: the connection is in use.
    pub(super) fn proven(&self) {
        self.proven.store(true, Ordering::Relaxed);
    }
}

impl Drop for Accepted {
    fn drop(&mut self) {
        if let Some(fair) = self.fair.upgrade() {
            let mut per_source = fair.per_source.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(n) = per_source.get_mut(&self.peer.ip()) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    per_source.remove(&self.peer.ip());
                }
            }
        }
    }
}

/// Admission of accepted connections, and the outbound budget.
pub(super) struct Fair {
    config: ConnectionsConfig,
    inbound: Arc<Semaphore>,
    pub(super) outbound: Arc<Semaphore>,
    per_source: Mutex<HashMap<IpAddr, usize>>,
    rate: DefaultKeyedRateLimiter<IpAddr>,
    /// Accepted connections, oldest first.
    open: Mutex<Vec<Weak<Accepted>>>,
}

impl Fair {
    pub(super) fn new(config: ConnectionsConfig, max_inbound: usize) -> Arc<Fair> {
        let per_second = NonZeroU32::new(config.new_per_second.max(1)).expect("at least one");
        let burst = NonZeroU32::new(config.new_per_second.max(1).saturating_mul(2)).expect("two");
        Arc::new(Fair {
            config,
            inbound: Arc::new(Semaphore::new(max_inbound)),
            outbound: Arc::new(Semaphore::new(config.max_outbound)),
            per_source: Mutex::new(HashMap::new()),
            rate: RateLimiter::keyed(Quota::per_second(per_second).allow_burst(burst)),
            open: Mutex::new(Vec::new()),
        })
    }

    /// The deadline for a message's headers.
    pub(super) fn message_timeout(&self) -> Duration {
        Duration::from_secs(self.config.message_timeout_secs.max(1))
    }

    /// The deadline for a TLS handshake.
    pub(super) fn tls_timeout(&self) -> Duration {
        Duration::from_secs(self.config.tls_handshake_timeout_secs.max(1))
    }

    /// Admits a connection from `peer`: its permit and its record, or
    /// `None` (it is closed) when its address is over its share, or the
    /// budget is full of connections that are all in use.
    pub(super) async fn admit(
        self: &Arc<Self>,
        peer: SocketAddr,
    ) -> Option<(OwnedSemaphorePermit, Arc<Accepted>)> {
        let ip = peer.ip();
        if self.rate.check_key(&ip).is_err() {
            refused(peer, "new connections per second from this address");
            return None;
        }
        {
            let per_source = self.per_source.lock().unwrap_or_else(|p| p.into_inner());
            if per_source.get(&ip).copied().unwrap_or(0) >= self.config.max_per_source {
                refused(peer, "connections from this address");
                return None;
            }
        }
        let permit = match self.inbound.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                if !self.evict_one() {
                    refused(peer, "connections, all in use");
                    return None;
                }
                match tokio::time::timeout(EVICTION_WAIT, self.inbound.clone().acquire_owned())
                    .await
                {
                    Ok(Ok(p)) => p,
                    _ => {
                        refused(peer, "connections");
                        return None;
                    }
                }
            }
        };
        *self
            .per_source
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(ip)
            .or_default() += 1;
        let accepted = Arc::new(Accepted {
            peer,
            since: Instant::now(),
            proven: AtomicBool::new(false),
            close: CancellationToken::new(),
            fair: Arc::downgrade(self),
        });
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.retain(|w| w.strong_count() > 0);
        open.push(Arc::downgrade(&accepted));
        Some((permit, accepted))
    }

    /// Closes the oldest connection that never carried a whole message;
    /// false when every one is in use.
    fn evict_one(&self) -> bool {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.retain(|w| w.strong_count() > 0);
        let victim = open
            .iter()
            .filter_map(Weak::upgrade)
            .filter(|a| !a.proven.load(Ordering::Relaxed) && !a.close.is_cancelled())
            .min_by_key(|a| a.since);
        match victim {
            Some(a) => {
                debug!(peer = %a.peer, "closing an unused connection to make room");
                metrics::counter!("parley_connections_evicted_total").increment(1);
                a.close.cancel();
                true
            }
            None => false,
        }
    }
}

fn refused(peer: SocketAddr, limit: &'static str) {
    metrics::counter!("parley_connections_refused_total", "limit" => limit).increment(1);
    info!(%peer, limit, "connection refused: limit reached");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(per_source: usize) -> ConnectionsConfig {
        ConnectionsConfig {
            max_outbound: 4,
            max_per_source: per_source,
            new_per_second: 100,
            message_timeout_secs: 10,
            tls_handshake_timeout_secs: 10,
        }
    }

    fn addr(last: u8, port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, last], port))
    }

    #[tokio::test]
    async fn one_address_gets_its_share_and_no_more() {
        let fair = Fair::new(config(2), 10);
        let a = fair.admit(addr(2, 1)).await.unwrap();
        let b = fair.admit(addr(2, 2)).await.unwrap();
        assert!(fair.admit(addr(2, 3)).await.is_none());
        assert!(fair.admit(addr(3, 1)).await.is_some(), "another address");
        drop(a);
        assert!(fair.admit(addr(2, 4)).await.is_some(), "a place came free");
        drop(b);
    }

    #[tokio::test]
    async fn a_full_budget_makes_room_by_closing_the_oldest_unused() {
        let fair = Fair::new(config(10), 2);
        let (p1, old) = fair.admit(addr(2, 1)).await.unwrap();
        let (_p2, used) = fair.admit(addr(3, 1)).await.unwrap();
        used.proven();
        // The connection task ends when told to close, and its permit goes.
        let closing = old.close.clone();
        tokio::spawn(async move {
            closing.cancelled().await;
            drop(p1);
        });
        let (_p3, newcomer) = fair.admit(addr(4, 1)).await.expect("room was made");
        assert!(old.close.is_cancelled(), "the oldest unused one went");
        assert!(!used.close.is_cancelled(), "the one in use stays");
        // All in use now: nothing to evict, the next one is refused.
        newcomer.proven();
        assert!(fair.admit(addr(5, 1)).await.is_none());
    }
}
