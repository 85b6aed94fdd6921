//! The router: where every address goes and whether it may go there.
//!
//! A domain is classified once and cached: one of Parley's own (config);
//! an explicit `[[route]]`; else what DNS publishes (RFC 7247 §5 style):
//! SIP NAPTR/SRV means SIP federation, `_xmpp-server._tcp` alone means the
//! XMPP adapter, nothing means SIP by RFC 3263's A/AAAA fallback.
//!
//! Policy ([`policy::Policy`]) is decided here and nowhere else: on SIP
//! requests leaving for another domain, on SIP requests arriving from
//! one, and on everything an adapter hands in. Loop protection remembers
//! the ids of bridged messages in both directions, so a message that
//! already crossed is never bridged back. The compliance archive and the
//! address mapping between SIP and the neutral adapter model live here too.
//!
//! The router is built before the SIMPLE core and handed to it: a core
//! without a router cannot be made, so no path to another domain skips the
//! policy. It knows the transports only through `net::dns`.

pub mod archive;
pub mod policy;
pub mod rejection;
pub mod reports;
pub mod sipmap;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use parley_adapter::{Adapter, Address, Protocol};
use tracing::{debug, info};

use crate::config::Config;
use crate::net::dns::{Resolver, Service};
use crate::proto::sip::{HeaderName, Message as SipMessage};
use policy::{Policy, Refusal};
pub use rejection::Rejection;

/// Where a domain's traffic goes.
#[derive(Clone)]
pub enum Destination {
    /// One of Parley's own domains.
    Local,
    /// SIP federation (RFC 3263).
    Sip,
    /// Through an adapter.
    Adapter(Arc<dyn Adapter>),
}

impl std::fmt::Debug for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Destination::Local => f.write_str("Local"),
            Destination::Sip => f.write_str("Sip"),
            Destination::Adapter(a) => write!(f, "Adapter({})", a.name()),
        }
    }
}

/// Messages routed, by (source, destination) protocol.
pub type Routed = HashMap<(&'static str, &'static str), u64>;

/// The router, the policy and the adapters it routes to.
pub struct Router {
    /// Parley's own domains, lower-cased; the first is the default.
    domains: Vec<String>,
    /// RFC 3263 location and domain classification.
    dns: Resolver,
    /// Swapped whole on reload; the refusal counts carry over.
    policy: std::sync::RwLock<Arc<Policy>>,
    adapters: Vec<Arc<dyn Adapter>>,
    routes: HashMap<String, String>,
    cache: Mutex<HashMap<String, (Destination, Instant)>>,
    ttl: Duration,
    loops: Mutex<LoopGuard>,
    routed: Mutex<Routed>,
    /// The compliance archive.
    archive: archive::Archive,
    /// When the archive was last expired.
    last_expiry: Mutex<Instant>,
    /// Messages handed to adapters, for failure reports.
    reports: reports::Reports,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router")
            .field("domains", &self.domains)
            .field("routes", &self.routes)
            .finish_non_exhaustive()
    }
}

/// The ids of recently bridged messages, by direction.
#[derive(Default)]
struct LoopGuard {
    seen: HashSet<(bool, String)>,
    order: VecDeque<(bool, String)>,
}

const LOOP_MEMORY: usize = 65_536;

impl LoopGuard {
    /// Records `id` crossing outward (`true`) or inward; false when the
    /// same id already crossed the other way.
    fn cross(&mut self, outward: bool, id: &str) -> bool {
        if id.is_empty() {
            return true;
        }
        if self.seen.contains(&(!outward, id.to_string())) {
            return false;
        }
        let key = (outward, id.to_string());
        if self.seen.insert(key.clone()) {
            self.order.push_back(key);
            if self.order.len() > LOOP_MEMORY {
                if let Some(old) = self.order.pop_front() {
                    self.seen.remove(&old);
                }
            }
        }
        true
    }
}

impl Router {
    /// The router of the config, routing to `adapters` (built, not yet
    /// started) and archiving into `store`.
    pub fn new(
        config: &Config,
        dns: Resolver,
        adapters: Vec<Arc<dyn Adapter>>,
        store: Arc<dyn crate::store::Store>,
    ) -> Router {
        Router {
            domains: config
                .domains
                .iter()
                .map(|d| d.to_ascii_lowercase())
                .collect(),
            dns,
            policy: std::sync::RwLock::new(Arc::new(Policy::new(&config.gateway))),
            adapters,
            routes: config
                .route
                .iter()
                .map(|r| (r.domain.to_ascii_lowercase(), r.via.clone()))
                // An IRC network's domain is reached through the IRC adapter.
                .chain(
                    config
                        .irc
                        .network
                        .iter()
                        .map(|n| (n.domain.to_ascii_lowercase(), "irc".to_string())),
                )
                .collect(),
            cache: Mutex::new(HashMap::new()),
            ttl: Duration::from_secs(config.gateway.classify_ttl_secs),
            loops: Mutex::new(LoopGuard::default()),
            routed: Mutex::new(HashMap::new()),
            archive: archive::Archive::new(store, config.archive),
            last_expiry: Mutex::new(Instant::now()),
            reports: reports::Reports::new(
                Duration::from_secs(config.gateway.report_window_secs),
                config.gateway.report_burst,
                config.gateway.reports_per_minute,
            ),
        }
    }

    /// Parley's own domains, lower-cased; the first is the default.
    pub fn domains(&self) -> &[String] {
        &self.domains
    }

    /// The first local domain (Parley's own reports come from it).
    pub fn first_domain(&self) -> &str {
        self.domains.first().map_or("localhost", String::as_str)
    }

    /// True for one of Parley's own domains (without case).
    pub fn is_local_domain(&self, domain: &str) -> bool {
        let domain = domain.trim_end_matches('.');
        self.domains.iter().any(|d| d.eq_ignore_ascii_case(domain))
    }

    /// The resolver (RFC 3263 location).
    pub fn dns(&self) -> &Resolver {
        &self.dns
    }

    /// The archive.
    pub fn archive(&self) -> &archive::Archive {
        &self.archive
    }

    /// Housekeeping, once a second: archive retention once a minute.
    pub async fn tick(&self) {
        let due = {
            let mut last = self.last_expiry.lock().unwrap_or_else(|p| p.into_inner());
            if last.elapsed() >= Duration::from_secs(60) {
                *last = Instant::now();
                true
            } else {
                false
            }
        };
        if due {
            self.archive.expire().await;
        }
    }

    /// The policy in force.
    pub fn policy(&self) -> Arc<Policy> {
        self.policy
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Puts a new `[gateway]` policy in force (the admin API, SIGHUP).
    /// Refusal counts carry over; classifications are forgotten.
    pub fn reload_policy(&self, config: &crate::config::GatewayConfig) {
        let old = self.policy();
        let new = Arc::new(Policy::new_after(config, &old));
        *self.policy.write().unwrap_or_else(|p| p.into_inner()) = new;
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).clear();
        info!("domain policy reloaded");
    }

    /// The adapters.
    pub fn adapters(&self) -> &[Arc<dyn Adapter>] {
        &self.adapters
    }

    /// Messages routed so far, by (source, destination) protocol.
    pub fn routed(&self) -> Routed {
        self.routed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Counts one message routed from `from` to `to`.
    pub fn count(&self, from: Protocol, to: Protocol) {
        metrics::counter!(
            "parley_messages_routed_total",
            "source" => from.name(),
            "destination" => to.name()
        )
        .increment(1);
        *self
            .routed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry((from.name(), to.name()))
            .or_default() += 1;
    }

    fn adapter(&self, protocol: Protocol) -> Option<Arc<dyn Adapter>> {
        self.adapters
            .iter()
            .find(|a| a.protocol() == protocol)
            .cloned()
    }

    /// Where `domain` is reached.
    pub async fn destination(&self, domain: &str) -> Destination {
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        if self.is_local_domain(&domain) {
            return Destination::Local;
        }
        if let Some(via) = self.routes.get(&domain) {
            return match via.as_str() {
                "xmpp" => self
                    .adapter(Protocol::Xmpp)
                    .map_or(Destination::Sip, Destination::Adapter),
                "irc" => self
                    .adapter(Protocol::Irc)
                    .map_or(Destination::Sip, Destination::Adapter),
                _ => Destination::Sip,
            };
        }
        let now = Instant::now();
        if let Some((d, until)) = self
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&domain)
        {
            if *until > now {
                metrics::counter!("parley_domain_classifications_total", "cache" => "hit")
                    .increment(1);
                return d.clone();
            }
        }
        if domain.parse::<std::net::IpAddr>().is_ok() || domain.starts_with('[') {
            return Destination::Sip;
        }
        metrics::counter!("parley_domain_classifications_total", "cache" => "miss").increment(1);
        let d = match self.dns.service_of(&domain).await {
            Service::Xmpp => self
                .adapter(Protocol::Xmpp)
                .map_or(Destination::Sip, Destination::Adapter),
            _ => Destination::Sip,
        };
        debug!(%domain, destination = ?d, "domain classified");
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() > 100_000 {
            cache.retain(|_, (_, until)| *until > now);
        }
        cache.insert(domain, (d.clone(), now + self.ttl));
        d
    }

    /// Records that the message `id` crosses outward (`true`) or inward;
    /// false when it already crossed the other way (a loop).
    pub fn cross(&self, outward: bool, id: &str) -> bool {
        self.loops
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .cross(outward, id)
    }

    /// Remembers a message handed to an adapter for `peer_domain`, so a
    /// failure reported for it can be checked; the receiver gets that
    /// failure while the SIP sender still waits.
    pub fn expect_failure(
        &self,
        id: &str,
        peer_domain: &str,
        recipient: &str,
        sender: &str,
    ) -> tokio::sync::oneshot::Receiver<parley_adapter::Failure> {
        self.reports.expect(id, peer_domain, recipient, sender)
    }

    /// What a failure an adapter reports is about (see [`reports`]); `None`
    /// for one that names no message Parley sent there.
    pub fn match_failure(
        &self,
        id: &str,
        peer_domain: &str,
        recipient: &str,
        failure: &parley_adapter::Failure,
    ) -> Option<reports::Matched> {
        self.reports.matched(id, peer_domain, recipient, failure)
    }

    /// Whether the domain policy lets federation with `domain` happen, in
    /// either direction (the refusal is counted).
    pub fn check_domain(&self, domain: &str) -> Result<(), Rejection> {
        self.policy().domain(domain).map_err(Rejection::from)
    }

    /// The identity binding of a SIP request from another domain: every
    /// address it asserts (P-Asserted-Identity, a CPIM From, a PIDF
    /// entity) must be of the domain it comes from, never one of Parley's
    /// own. The refusal, when there is one, is counted.
    pub fn check_remote_identity(
        &self,
        msg: &SipMessage,
        sender_domain: &str,
    ) -> Result<(), Rejection> {
        for uri in asserted_identities(msg) {
            let Ok(address) = Address::from_uri(&uri) else {
                continue;
            };
            if self.is_local_domain(address.domain()) {
                return Err(self.policy().refuse(Refusal::OwnDomainAsserted).into());
            }
            if !address.domain().eq_ignore_ascii_case(sender_domain) {
                return Err(self.policy().refuse(Refusal::IdentityMismatch).into());
            }
        }
        Ok(())
    }

    /// Archives a SIP MESSAGE (SIP federation, or any message in mode
    /// `all`).
    #[allow(clippy::too_many_arguments)]
    pub fn archive_sip(
        &self,
        msg: &SipMessage,
        sender: &str,
        recipient: &str,
        peer_domain: &str,
        auth: &str,
        decision: String,
        cross: bool,
    ) {
        let content_type = content_type(msg);
        let body = msg.body_bytes();
        self.archive.record(
            archive::Fact {
                source: "sip",
                destination: "sip",
                sender,
                recipient,
                peer_domain,
                auth,
                decision,
                content_type: &content_type,
                body: &body,
            },
            cross,
        );
    }
}

/// The Content-Type of a SIP message as text (`text/plain` without one,
/// RFC 3428 §5's default for MESSAGE).
pub fn content_type(msg: &SipMessage) -> String {
    msg.headers().get(HeaderName::ContentType).map_or_else(
        || "text/plain".to_string(),
        |v| String::from_utf8_lossy(v).trim().to_string(),
    )
}

/// Every address a SIP request asserts about its sender besides From:
/// P-Asserted-Identity values, the From of a CPIM body, the entity of a
/// PIDF body.
fn asserted_identities(msg: &SipMessage) -> Vec<String> {
    let mut asserted: Vec<String> = msg
        .headers()
        .values(HeaderName::PAssertedIdentity)
        .flat_map(crate::proto::sip::grammar::split_commas)
        .map(|v| {
            let v = String::from_utf8_lossy(v);
            match (v.find('<'), v.find('>')) {
                (Some(a), Some(b)) if a < b => v[a + 1..b].to_string(),
                _ => v.trim().to_string(),
            }
        })
        .collect();
    let content_type = content_type(msg).to_ascii_lowercase();
    let media = content_type.split(';').next().unwrap_or("").trim();
    let body = msg.body_bytes();
    if media == crate::proto::cpim::CONTENT_TYPE {
        if let Ok(c) =
            crate::proto::cpim::Cpim::parse(&body, &crate::proto::cpim::Limits::default())
        {
            asserted.extend(c.from_uri().map(str::to_string));
        }
    } else if media == crate::proto::pidf::CONTENT_TYPE {
        if let Ok(doc) =
            crate::proto::pidf::Presence::parse(&body, &crate::proto::pidf::Limits::default())
        {
            asserted.push(doc.entity);
        }
    }
    asserted
}

#[cfg(test)]
mod tests {
    use super::LoopGuard;

    #[test]
    fn a_message_that_crossed_is_not_bridged_back() {
        let mut g = LoopGuard::default();
        assert!(g.cross(true, "m1"), "first crossing outward");
        assert!(g.cross(true, "m1"), "a retransmission the same way");
        assert!(!g.cross(false, "m1"), "the same message coming back");
        assert!(g.cross(false, "m2"));
        assert!(!g.cross(true, "m2"), "an inbound message echoed out");
        assert!(g.cross(true, "") && g.cross(false, ""), "no id, no memory");
    }

    #[test]
    fn the_memory_is_bounded() {
        let mut g = LoopGuard::default();
        for n in 0..super::LOOP_MEMORY + 10 {
            g.cross(true, &n.to_string());
        }
        assert_eq!(g.seen.len(), super::LOOP_MEMORY);
        // The oldest were forgotten; the newest are still known.
        assert!(g.cross(false, "0"));
        assert!(!g.cross(false, &(super::LOOP_MEMORY + 9).to_string()));
    }
}
