//! The gateway: the router that decides where every address goes and
//! whether it may go there, and the hub that connects the SIMPLE core with
//! the adapters.
//!
//! A domain is classified once and cached: a local domain (config); an
//! explicit `[[route]]`; else what DNS publishes (RFC 7247 §5 style):
//! SIP NAPTR/SRV means SIP federation, `_xmpp-server._tcp` alone means the
//! XMPP adapter, nothing means SIP by RFC 3263's A/AAAA fallback.
//!
//! Policy ([`policy::Policy`]) is applied here and nowhere else: on SIP
//! requests leaving for another domain, on SIP requests arriving from
//! one, and on everything an adapter hands in. Loop protection remembers
//! the ids of bridged messages in both directions, so a message that
//! already crossed is never bridged back.

pub mod archive;
pub mod policy;
pub mod sipmap;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use parley_adapter::{
    Adapter, Address, Condition, Failure, Hub, HubSink, Inbound, Outbound, Peer, Protocol,
    Subscription, SubscriptionAction,
};
use tracing::{debug, info, warn};

use crate::config::Config;
use crate::net::{Incoming, Sip};
use crate::proto::sip::{HeaderName, Message as SipMessage};
use crate::simple::presence::{self, Decision, ExternalNotice};
use crate::simple::{now_secs, pager, rfc3339, Core};
use policy::{Policy, Refusal};

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

/// The router, the policy and the adapters.
pub struct Gateway {
    core: Weak<Core>,
    sip: Sip,
    /// Swapped whole on reload; the refusal counts carry over.
    policy: std::sync::RwLock<Arc<Policy>>,
    adapters: Vec<Arc<dyn Adapter>>,
    routes: HashMap<String, String>,
    cache: Mutex<HashMap<String, (Destination, Instant)>>,
    ttl: Duration,
    loops: Mutex<LoopGuard>,
    routed: Mutex<Routed>,
    /// What each resource of a watched presentity of another network last
    /// reported, by bare address.
    resources: Mutex<HashMap<String, Vec<(String, parley_adapter::Presence)>>>,
    /// The compliance archive.
    archive: archive::Archive,
    /// The store (archive searches).
    store: Arc<dyn crate::store::Store>,
    /// When the archive was last expired.
    last_expiry: Mutex<Instant>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("policy", &self.policy())
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

/// The hub handed to adapters: a weak link back to the gateway.
struct HubRef(Weak<Gateway>);

#[async_trait]
impl HubSink for HubRef {
    async fn submit(&self, peer: &Peer, item: Inbound) -> Result<(), Failure> {
        match self.0.upgrade() {
            Some(g) => g.submit(peer, item).await,
            None => Err(Failure::new(Condition::ServiceUnavailable, "shutting down")),
        }
    }
}

/// The listeners adapters serve on, bound by the caller.
#[derive(Debug, Default)]
pub struct AdapterListeners {
    /// XMPP s2s.
    pub xmpp: Option<tokio::net::TcpListener>,
    /// XMPP s2s with direct TLS (XEP-0368).
    pub xmpp_tls: Option<tokio::net::TcpListener>,
}

impl Gateway {
    /// Builds the adapters the config asks for, starts them and returns
    /// the gateway.
    pub async fn start(
        config: &Config,
        core: &Arc<Core>,
        sip: Sip,
        listeners: AdapterListeners,
        store: Arc<dyn crate::store::Store>,
    ) -> anyhow::Result<Arc<Gateway>> {
        let mut adapters: Vec<Arc<dyn Adapter>> = Vec::new();
        if config.xmpp.enabled {
            adapters.push(Arc::new(xmpp_adapter(config, core, listeners)?));
        }
        let gateway = Arc::new(Gateway {
            core: Arc::downgrade(core),
            sip,
            policy: std::sync::RwLock::new(Arc::new(Policy::new(&config.gateway))),
            adapters,
            routes: config
                .route
                .iter()
                .map(|r| (r.domain.to_ascii_lowercase(), r.via.clone()))
                .collect(),
            cache: Mutex::new(HashMap::new()),
            ttl: Duration::from_secs(config.gateway.classify_ttl_secs),
            loops: Mutex::new(LoopGuard::default()),
            routed: Mutex::new(HashMap::new()),
            resources: Mutex::new(HashMap::new()),
            archive: archive::Archive::new(store.clone(), config.archive),
            store,
            last_expiry: Mutex::new(Instant::now()),
        });
        let hub = Hub::new(Arc::new(HubRef(Arc::downgrade(&gateway))));
        for a in &gateway.adapters {
            a.start(hub.clone())
                .await
                .map_err(|e| anyhow::anyhow!("adapter {}: {e}", a.name()))?;
            info!(adapter = a.name(), "adapter started");
        }
        Ok(gateway)
    }

    /// The archive.
    pub fn archive(&self) -> &archive::Archive {
        &self.archive
    }

    /// Searches the archive.
    pub async fn search_archive(
        &self,
        query: &crate::store::ArchiveQuery,
    ) -> Result<Vec<crate::store::ArchiveRow>, crate::store::StoreError> {
        self.store.search_archive(query).await
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

    /// Stops the adapters.
    pub async fn stop(&self) {
        for a in &self.adapters {
            a.stop().await;
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

    fn count(&self, from: Protocol, to: Protocol) {
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
    pub async fn destination(&self, core: &Core, domain: &str) -> Destination {
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        if core.is_local_domain(&domain) {
            return Destination::Local;
        }
        if let Some(via) = self.routes.get(&domain) {
            return match via.as_str() {
                "xmpp" => self
                    .adapter(Protocol::Xmpp)
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
        let d = match core.dns.service_of(&domain).await {
            crate::net::dns::Service::Xmpp => self
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

    /// A SIP request for another domain from an authenticated local user,
    /// bridged through `adapter`: MESSAGE crosses (202 when the network
    /// took it, the mapped error when not); a presence SUBSCRIBE is held by
    /// the presence agent and asked of the other network (RFC 7248 §4);
    /// other methods are refused.
    pub async fn bridge_request(
        &self,
        core: &Core,
        adapter: Arc<dyn Adapter>,
        mut inc: Incoming,
        msg: &SipMessage,
        sender: Address,
        recipient: Address,
    ) {
        if let Err(r) = self.policy().domain(recipient.domain()) {
            if msg.method().is_some_and(|m| m.as_str() == "MESSAGE") {
                self.archive_sip(
                    msg,
                    &sender.bare().to_string(),
                    &recipient.bare().to_string(),
                    recipient.domain(),
                    "digest",
                    format!("refused: {}", r.name()),
                    true,
                );
            }
            return refuse_sip(&mut inc, r, recipient.domain()).await;
        }
        let method = msg
            .method()
            .map(|m| m.as_str().to_string())
            .unwrap_or_default();
        let is_presence = msg.headers().get(HeaderName::Event).is_some_and(|e| {
            String::from_utf8_lossy(e).trim().split(';').next() == Some("presence")
        });
        if method == "SUBSCRIBE" && is_presence {
            return self
                .bridge_subscribe(core, adapter, inc, sender, recipient)
                .await;
        }
        let inc = &mut inc;
        if method != "MESSAGE" {
            return inc
                .responder
                .reply(
                    488,
                    "Not Acceptable Here (only MESSAGE and presence cross to this network)",
                    &[],
                )
                .await;
        }
        let content_type = msg.headers().get(HeaderName::ContentType).map_or_else(
            || "text/plain".to_string(),
            |v| String::from_utf8_lossy(v).trim().to_string(),
        );
        let body = msg.body_bytes();
        let (from_text, to_text) = (sender.bare().to_string(), recipient.bare().to_string());
        let archive = |decision: String| {
            self.archive.record(
                archive::Fact {
                    source: "sip",
                    destination: adapter.protocol().name(),
                    sender: &from_text,
                    recipient: &to_text,
                    peer_domain: recipient.domain(),
                    auth: "digest",
                    decision,
                    content_type: &content_type,
                    body: &body,
                },
                true,
            )
        };
        if let Err(r) = self.policy().content(body.len(), &[&content_type]) {
            archive(format!("refused: {}", r.name()));
            return refuse_sip(inc, r, recipient.domain()).await;
        }
        let id = format!("p{}", core.presence.token());
        let m = match sipmap::from_sip(sender.clone(), recipient.clone(), &content_type, &body, id)
        {
            Ok(m) => m,
            Err(u) => return inc.responder.reply(u.status, u.reason, &[]).await,
        };
        if !self.cross(true, &m.id) {
            archive("refused: loop".into());
            return refuse_sip(inc, self.policy().refuse(Refusal::Loop), recipient.domain()).await;
        }
        let security = self.policy().security(recipient.domain());
        let started = Instant::now();
        let delivered = adapter.deliver(Outbound::Message(m), security).await;
        metrics::histogram!(
            "parley_message_delivery_seconds",
            "destination" => adapter.protocol().name()
        )
        .record(started.elapsed().as_secs_f64());
        match delivered {
            Ok(()) => {
                archive("accepted".into());
                self.count(Protocol::Sip, adapter.protocol());
                inc.responder
                    .reply(202, "Accepted (relayed to XMPP)", &[])
                    .await
            }
            Err(f) => {
                archive(format!("failed: {f}"));
                info!(to = %recipient, failure = %f, "MESSAGE not bridged");
                let status = f.condition.to_sip();
                let reason = f
                    .text
                    .clone()
                    .unwrap_or_else(|| f.condition.name().to_string());
                inc.responder.reply(status, &reason, &[]).await
            }
        }
    }

    async fn bridge_subscribe(
        &self,
        core: &Core,
        adapter: Arc<dyn Adapter>,
        inc: Incoming,
        watcher: Address,
        presentity: Address,
    ) {
        let key = presentity.bare().to_string();
        let known = presence::foreign_decision(core, &key, &watcher.bare().to_string());
        let made = presence::subscribe_foreign(core, &self.sip, inc, key).await;
        if !made {
            return;
        }
        let security = self.policy().security(presentity.domain());
        // RFC 7248 §4: ask for the subscription; where it was granted
        // before, probe for the current state too (a probe from someone not
        // yet allowed would only be answered `unsubscribed`).
        let mut actions = vec![SubscriptionAction::Subscribe];
        if known == Some(Decision::Allow) {
            actions.push(SubscriptionAction::Probe);
        }
        for action in actions {
            let s = Subscription {
                from: watcher.bare(),
                to: presentity.bare(),
                action,
            };
            if let Err(f) = adapter.deliver(Outbound::Subscription(s), security).await {
                info!(to = %presentity, failure = %f, "subscription not bridged");
                presence::set_foreign(
                    core,
                    &self.sip,
                    &presentity.bare().to_string(),
                    &watcher.bare().to_string(),
                    Decision::Deny,
                )
                .await;
                return;
            }
        }
    }

    /// Presence of a local presentity for a watcher on another network.
    pub async fn presence_out(&self, notice: ExternalNotice) {
        let (presentity, watcher) = match &notice {
            ExternalNotice::Allowed {
                presentity,
                watcher,
                ..
            }
            | ExternalNotice::State {
                presentity,
                watcher,
                ..
            }
            | ExternalNotice::Revoked {
                presentity,
                watcher,
            } => (presentity, watcher),
        };
        let (Ok(from), Ok(to)) = (Address::parse(presentity), Address::parse(watcher)) else {
            return;
        };
        let Some(core) = self.core.upgrade() else {
            return;
        };
        let Destination::Adapter(adapter) = self.destination(&core, to.domain()).await else {
            return;
        };
        let security = self.policy().security(to.domain());
        let mut items = Vec::new();
        match &notice {
            ExternalNotice::Allowed { document, .. } => {
                items.push(Outbound::Subscription(Subscription {
                    from: from.clone(),
                    to: to.clone(),
                    action: SubscriptionAction::Subscribed,
                }));
                items.push(Outbound::Presence(sipmap::presence_of(document, from, to)));
            }
            ExternalNotice::State { document, .. } => {
                items.push(Outbound::Presence(sipmap::presence_of(document, from, to)));
            }
            ExternalNotice::Revoked { .. } => {
                items.push(Outbound::Subscription(Subscription {
                    from,
                    to,
                    action: SubscriptionAction::Unsubscribed,
                }));
            }
        }
        for item in items {
            if let Err(f) = adapter.deliver(item, security).await {
                debug!(%watcher, failure = %f, "presence not bridged");
                return;
            }
        }
    }

    /// A subscription request or answer from another network.
    async fn inbound_subscription(&self, core: &Core, s: Subscription) -> Result<(), Failure> {
        if !core.is_local_domain(s.to.domain()) {
            return Err(Failure::new(
                Condition::ItemNotFound,
                "not a domain of this server",
            ));
        }
        let local = s.to.bare().to_string();
        let remote = s.from.bare().to_string();
        match s.action {
            SubscriptionAction::Subscribe => {
                if core.auth.user(s.to.user(), s.to.domain()).await.is_none() {
                    return Err(Failure::new(Condition::ItemNotFound, "no such user"));
                }
                presence::watch_external(core, &self.sip, &local, &remote).await;
            }
            SubscriptionAction::Unsubscribe => presence::unwatch_external(core, &local, &remote),
            SubscriptionAction::Subscribed => {
                presence::set_foreign(core, &self.sip, &remote, &local, Decision::Allow).await
            }
            SubscriptionAction::Unsubscribed => {
                presence::set_foreign(core, &self.sip, &remote, &local, Decision::Deny).await
            }
            SubscriptionAction::Probe => {
                if let Some(doc) = presence::probe_external(core, &local, &remote) {
                    self.presence_out(ExternalNotice::State {
                        presentity: local,
                        watcher: remote,
                        document: doc,
                    })
                    .await;
                }
            }
        }
        Ok(())
    }

    /// A presence state from another network: the watched presentity's
    /// document is rebuilt from its resources and notified.
    async fn inbound_presence(
        &self,
        core: &Core,
        p: parley_adapter::Presence,
    ) -> Result<(), Failure> {
        let bare = p.from.bare().to_string();
        if !presence::is_watched(core, &bare) {
            return Ok(());
        }
        let resource = p.from.resource().unwrap_or("").to_string();
        let document = {
            let mut all = self.resources.lock().unwrap_or_else(|e| e.into_inner());
            let list = all.entry(bare.clone()).or_default();
            list.retain(|(r, _)| *r != resource);
            if p.available {
                list.push((resource, p));
            }
            let doc = sipmap::pidf_of(&format!("pres:{bare}"), list);
            if list.is_empty() {
                all.remove(&bare);
            }
            doc
        };
        presence::publish_foreign(core, &self.sip, &bare, Some(document)).await;
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
        let content_type = msg.headers().get(HeaderName::ContentType).map_or_else(
            || "text/plain".to_string(),
            |v| String::from_utf8_lossy(v).trim().to_string(),
        );
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

    fn cross(&self, outward: bool, id: &str) -> bool {
        self.loops
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .cross(outward, id)
    }

    /// One inbound item from an adapter.
    async fn submit(&self, peer: &Peer, item: Inbound) -> Result<(), Failure> {
        let Some(core) = self.core.upgrade() else {
            return Err(Failure::new(Condition::ServiceUnavailable, "shutting down"));
        };
        let refused = |r: Refusal| {
            warn!(peer = %peer.domain, reason = r.name(), "refused by policy");
            r.failure()
        };
        // The peer's domain and link first; a message refused here is
        // archived with the reason like any other.
        let early = self
            .policy()
            .domain(&peer.domain)
            .and_then(|()| self.policy().peer_security(peer));
        if !matches!(item, Inbound::Message(_)) {
            early.map_err(refused)?;
        }
        match item {
            Inbound::Message(m) => {
                let (from, to) = (m.from.bare().to_string(), m.to.bare().to_string());
                let (ct, body) = m
                    .parts
                    .first()
                    .map(|p| (p.content_type.clone(), p.data.clone()))
                    .unwrap_or_default();
                let result = match early {
                    Err(r) => Err(refused(r)),
                    Ok(()) => self.inbound_message(&core, peer, m, &refused).await,
                };
                let decision = match &result {
                    Ok(()) => "delivered".to_string(),
                    Err(f) => format!("refused: {f}"),
                };
                self.archive.record(
                    archive::Fact {
                        source: peer.protocol.name(),
                        destination: "sip",
                        sender: &from,
                        recipient: &to,
                        peer_domain: &peer.domain,
                        auth: peer.auth.name(),
                        decision,
                        content_type: &ct,
                        body: &body,
                    },
                    true,
                );
                result
            }
            Inbound::Failed {
                id,
                sender,
                recipient,
                failure,
            } => {
                self.policy()
                    .identity(peer, &recipient, |d| core.is_local_domain(d))
                    .map_err(refused)?;
                if core.is_local_domain(sender.domain()) {
                    info!(%id, to = %recipient, %failure, "bridged message failed");
                    let text = failure
                        .text
                        .clone()
                        .unwrap_or_else(|| failure.condition.name().to_string());
                    pager::report(
                        &core,
                        &self.sip,
                        &sender.bare().to_sip_uri(),
                        &recipient.bare().to_string(),
                        &text,
                    )
                    .await;
                }
                Ok(())
            }
            Inbound::Presence(p) => {
                self.policy()
                    .identity(peer, &p.from, |d| core.is_local_domain(d))
                    .map_err(refused)?;
                self.inbound_presence(&core, p).await
            }
            Inbound::Subscription(s) => {
                self.policy()
                    .identity(peer, &s.from, |d| core.is_local_domain(d))
                    .map_err(refused)?;
                self.policy().rate(&peer.domain).map_err(refused)?;
                self.inbound_subscription(&core, s).await
            }
            _ => Err(Failure::bare(Condition::FeatureNotImplemented)),
        }
    }

    /// An inbound message from an adapter: policy, then SIP delivery.
    async fn inbound_message(
        &self,
        core: &Core,
        peer: &Peer,
        m: parley_adapter::Message,
        refused: &impl Fn(Refusal) -> Failure,
    ) -> Result<(), Failure> {
        self.policy()
            .identity(peer, &m.from, |d| core.is_local_domain(d))
            .map_err(refused)?;
        self.policy().rate(&peer.domain).map_err(refused)?;
        if !core.is_local_domain(m.to.domain()) {
            return Err(Failure::new(
                Condition::ItemNotFound,
                "not a domain of this server",
            ));
        }
        let types: Vec<&str> = m.parts.iter().map(|p| p.content_type.as_str()).collect();
        self.policy().content(m.size(), &types).map_err(refused)?;
        if !self.cross(false, &m.id) {
            return Err(refused(self.policy().refuse(Refusal::Loop)));
        }
        self.deliver_to_sip(core, peer, m).await
    }

    async fn deliver_to_sip(
        &self,
        core: &Core,
        peer: &Peer,
        m: parley_adapter::Message,
    ) -> Result<(), Failure> {
        let now = rfc3339(now_secs());
        let Some(content) = sipmap::to_sip(&m, &now, &core.presence.token()) else {
            return Ok(());
        };
        let to = m.to.bare();
        let aor = format!("{}@{}", to.user(), to.domain());
        let sender = m.from.bare().to_sip_uri();
        let started = Instant::now();
        let result = pager::deliver_bridged(
            core,
            &self.sip,
            &sender,
            &aor,
            to.user(),
            to.domain(),
            &content.content_type,
            &content.body,
        )
        .await;
        metrics::histogram!("parley_message_delivery_seconds", "destination" => "sip")
            .record(started.elapsed().as_secs_f64());
        match result {
            Ok(status) => {
                debug!(from = %m.from, to = %aor, status, "bridged into SIP");
                self.count(peer.protocol, Protocol::Sip);
                Ok(())
            }
            Err(status) => {
                let condition = Condition::from_sip(status);
                Err(Failure::new(condition, format!("SIP {status}")))
            }
        }
    }
}

/// Answers a SIP request the policy refused: the status, and the reason
/// in a Warning.
pub async fn refuse_sip(inc: &mut Incoming, r: Refusal, domain: &str) {
    warn!(%domain, reason = r.name(), "refused by policy");
    let (status, phrase) = r.sip();
    let mut extra = vec![("Warning", format!("399 parley \"{}\"", r.text()))];
    if r == Refusal::RateLimited {
        extra.push(("Retry-After", "1".to_string()));
    }
    inc.responder.reply(status, phrase, &extra).await
}

/// Whether the domain policy lets SIP federation with `domain` happen,
/// in either direction (the refusal is counted).
pub fn check_domain(gateway: &Gateway, domain: &str) -> Option<Refusal> {
    gateway.policy().domain(domain).err()
}

/// The identity binding of a SIP request from another domain: every
/// address it asserts (P-Asserted-Identity, a CPIM From, a PIDF entity)
/// must be of the domain it comes from, never one of Parley's own. The
/// refusal, when there is one, is counted.
pub fn check_remote_identity(
    gateway: &Gateway,
    core: &Core,
    msg: &SipMessage,
    sender_domain: &str,
) -> Option<Refusal> {
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
    let content_type = msg
        .headers()
        .get(HeaderName::ContentType)
        .map(|v| String::from_utf8_lossy(v).to_ascii_lowercase())
        .unwrap_or_default();
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
    for uri in asserted {
        let Ok(address) = Address::from_uri(&uri) else {
            continue;
        };
        if core.is_local_domain(address.domain()) {
            return Some(gateway.policy().refuse(Refusal::OwnDomainAsserted));
        }
        if !address.domain().eq_ignore_ascii_case(sender_domain) {
            return Some(gateway.policy().refuse(Refusal::IdentityMismatch));
        }
    }
    None
}

fn xmpp_adapter(
    config: &Config,
    core: &Arc<Core>,
    listeners: AdapterListeners,
) -> anyhow::Result<parley_xmpp::XmppAdapter> {
    let x = &config.xmpp;
    let first = config
        .domains
        .first()
        .cloned()
        .unwrap_or_else(|| "localhost".into());
    let components = x
        .component
        .iter()
        .map(|c| {
            let mut remote = vec![c.server_domain.to_ascii_lowercase()];
            remote.extend(c.remote_domains.iter().map(|d| d.to_ascii_lowercase()));
            parley_xmpp::ComponentSettings {
                server: c.server,
                domain: c.domain.to_ascii_lowercase(),
                server_domain: c.server_domain.to_ascii_lowercase(),
                local_domain: c
                    .local_domain
                    .clone()
                    .unwrap_or_else(|| first.clone())
                    .to_ascii_lowercase(),
                secret: c.secret.clone(),
                remote_domains: remote,
            }
        })
        .collect();
    let tls_server = Some(crate::net::tls::server_config(config)?);
    let tls_client = crate::net::tls::dialback_client_config(config)?;
    let tls_client_verified = crate::net::tls::client_config(config)?;
    let secret = {
        use std::hash::BuildHasher;
        let r = std::collections::hash_map::RandomState::new();
        format!(
            "{:016x}{:016x}",
            r.hash_one(1u8),
            r.hash_one(std::process::id())
        )
    };
    Ok(parley_xmpp::XmppAdapter::new(parley_xmpp::Settings {
        name: "xmpp".into(),
        domains: core.config_domains.clone(),
        listener: listeners.xmpp,
        listener_tls: listeners.xmpp_tls,
        require_tls: x.require_tls,
        tls_server,
        tls_client,
        tls_client_verified,
        dialback_secret: secret,
        components,
        max_stanza: x.max_stanza_bytes,
        connect_timeout: Duration::from_millis(x.connect_timeout_ms),
        idle_timeout: Duration::from_secs(x.idle_timeout_secs),
        resolver: core.dns.hickory(),
    }))
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
