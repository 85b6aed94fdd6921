//! The server on bound listeners: readers, acceptors, the timer task and
//! the handler's tick, and a graceful stop.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::endpoint::{now, FastMap, Shared};
use super::{stream, timer, tls, udp, Handler, Listeners, Sip};
use crate::config::Config;
use crate::proto::sip::stateless::Policy;
use crate::proto::sip::Transport;

/// Why the server could not be prepared.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The TLS certificate, key or trust anchors.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    /// A socket could not be set up.
    #[error("socket: {0}")]
    Socket(#[from] std::io::Error),
}

/// A SIP server on bound listeners.
pub struct Server {
    shared: Arc<Shared>,
    listeners: Listeners,
    tls: Option<tokio_rustls::TlsAcceptor>,
    grace: Duration,
    readers: usize,
}

impl Server {
    /// Prepares the server: loads the TLS material, sizes the UDP buffers.
    pub fn new(
        config: &Config,
        listeners: Listeners,
        handler: Arc<dyn Handler>,
    ) -> Result<Server, StartError> {
        let tls = if listeners.tls.is_empty() {
            None
        } else {
            Some(tokio_rustls::TlsAcceptor::from(tls::server_config(config)?))
        };
        let tls_client = tls::client_config(config)?.map(tokio_rustls::TlsConnector::from);
        let mut listeners = listeners;
        let mut udp_sockets = Vec::new();
        for socket in std::mem::take(&mut listeners.udp) {
            let socket = udp::blocking(socket, config.sip.udp_buffer_bytes)?;
            let local = socket.local_addr()?;
            udp_sockets.push((Arc::new(socket), local));
        }
        let mut stream_listen = Vec::new();
        for (t, list) in [
            (Transport::Tcp, &listeners.tcp),
            (Transport::Tls, &listeners.tls),
        ] {
            for l in list {
                if let Ok(a) = l.local_addr() {
                    stream_listen.push((t, a));
                }
            }
        }
        let shared = Arc::new(Shared {
            handler,
            overload: super::overload::Overload::new(config.sip.overload),
            limits: config.sip.limits,
            policy: Policy {
                tag_secret: crate::sys::random_u64(),
                ..Policy::default()
            },
            timers: config.sip.timers.config(),
            servers: Mutex::new(FastMap::default()),
            clients: Mutex::new(FastMap::default()),
            timers_queue: timer::Timers::new(),
            branch_key: std::collections::hash_map::RandomState::new(),
            multicast_responses: config.sip.multicast_responses,
            udp: udp_sockets,
            stream_listen,
            connections: Mutex::new(HashMap::new()),
            tls_client,
            conn: stream::Settings {
                idle: Duration::from_secs(config.sip.idle_timeout_secs),
                fair: super::fair::Fair::new(config.sip.connections, config.sip.max_connections),
                stop: CancellationToken::new(),
                tracker: TaskTracker::new(),
            },
        });
        Ok(Server {
            shared,
            listeners,
            tls,
            grace: Duration::from_secs(config.sip.shutdown_grace_secs),
            // Several readers per UDP socket, as many as there are cores,
            // so a burst is drained while one reader is busy.
            readers: config.workers(),
        })
    }

    /// The handle services use to send requests.
    pub fn sip(&self) -> Sip {
        Sip::of(self.shared.clone())
    }

    /// Starts serving: the UDP readers, the TCP and TLS acceptors, the
    /// transaction timers and the handler's tick.
    pub fn start(self) -> Running {
        let Server {
            shared,
            listeners,
            tls,
            grace,
            readers,
        } = self;
        let stop = shared.conn.stop.clone();
        let tracker = shared.conn.tracker.clone();
        tracker.spawn(timers(shared.clone(), stop.clone()));
        tracker.spawn(ticks(shared.clone(), stop.clone()));
        for (socket, _) in &shared.udp {
            for _ in 0..readers {
                let (shared, socket) = (shared.clone(), socket.clone());
                tracker.spawn_blocking(move || udp::reader(shared, socket));
            }
        }
        for listener in listeners.tcp {
            tracker.spawn(stream::accept(shared.clone(), listener, None));
        }
        for listener in listeners.tls {
            tracker.spawn(stream::accept(shared.clone(), listener, tls.clone()));
        }
        Running { shared, grace }
    }
}

/// A started server.
pub struct Running {
    shared: Arc<Shared>,
    grace: Duration,
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running").finish_non_exhaustive()
    }
}

impl Running {
    /// The handle services use to send requests.
    pub fn sip(&self) -> Sip {
        Sip::of(self.shared.clone())
    }

    /// Waits until every server transaction has its final response, for
    /// at most the configured grace period. New requests are still served
    /// meanwhile.
    pub async fn drain(&self) {
        let deadline = tokio::time::Instant::now() + self.grace;
        while self.shared.unanswered() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops reading, accepting and the timers, and waits for every task.
    pub async fn stop(self) {
        self.shared.conn.stop.cancel();
        self.shared.conn.tracker.close();
        self.shared.conn.tracker.wait().await;
    }
}

/// Gives the handler a turn every second (expiry sweeps that send
/// requests).
async fn ticks(shared: Arc<Shared>, stop: CancellationToken) {
    let sip = Sip::of(shared.clone());
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {
                shared.handler.clone().tick(sip.clone()).await;
                shared.compact();
            }
        }
    }
}

/// Runs the transaction timers. Deadlines that fall close together are
/// handled in one wake-up: after a round the task sleeps at least a
/// granule (a fiftieth of T1, at most 10 ms), so under load the timers
/// cost a bounded number of wake-ups per second instead of one per
/// transaction, and fire at most a granule late.
async fn timers(shared: Arc<Shared>, stop: CancellationToken) {
    let granule = (shared.timers.t1 / 50).min(Duration::from_millis(10));
    let mut not_before = now();
    loop {
        let next = shared.timers_queue.next();
        let sleep = async {
            match next {
                Some(at) => {
                    let at = at.max(not_before);
                    tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = shared.timers_queue.changed.notified() => continue,
            _ = sleep => {}
        }
        let round = now();
        for key in shared.timers_queue.due(round) {
            if let Some(next) = shared.expire(&key).await {
                shared.timers_queue.schedule(key, next);
            }
        }
        not_before = round + granule;
    }
}
