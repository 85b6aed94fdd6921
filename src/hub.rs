//! The hub: what the adapters hand to Parley becomes SIP.
//!
//! Every item an adapter submits meets the domain policy first (the
//! peer's domain and link, identity binding, rate, size and content, loop
//! protection: all decided by the router), is archived with the decision,
//! and then reaches the SIMPLE core: a message is delivered to the local
//! user's contacts (or kept for them), presence becomes PIDF for the local
//! watchers (RFC 7248), a subscription request is decided by the presence
//! rules, and a failure report goes back to the SIP sender.
//!
//! The adapters hold the hub through [`parley_adapter::Hub`], a handle
//! that only knows [`HubSink`]; the hub is built after the core and the
//! transports and given to the adapters when they start.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Instant;

use async_trait::async_trait;
use parley_adapter::{
    Address, Condition, Failure, HubSink, Inbound, Outbound, Peer, Protocol, RoomAction, RoomInfo,
    RoomQuery, RoomRequest, Subscription, SubscriptionAction,
};
use tracing::{debug, info, warn};

use crate::net::Sip;
use crate::proto::time::rfc3339;
use crate::router::policy::Refusal;
use crate::router::reports::{attributed, Matched};
use crate::router::{archive, sipmap, Destination, Router};
use crate::simple::presence::{self, Decision, ExternalNotice};
use crate::simple::{bridge, pager, rooms, Core};
use crate::sys::now_secs;

/// Adapters to SIP.
pub struct Hub {
    core: Arc<Core>,
    sip: Sip,
    /// What each resource of a watched presentity of another network last
    /// reported, by bare address.
    resources: Mutex<HashMap<String, Vec<(String, parley_adapter::Presence)>>>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub").finish_non_exhaustive()
    }
}

/// The handle given to adapters: a weak link, so an adapter that outlives
/// Parley's shutdown cannot keep the core alive.
struct HubRef(Weak<Hub>);

#[async_trait]
impl HubSink for HubRef {
    async fn submit(&self, peer: &Peer, item: Inbound) -> Result<(), Failure> {
        match self.0.upgrade() {
            Some(hub) => hub.submit(peer, item).await,
            None => Err(Failure::new(Condition::ServiceUnavailable, "shutting down")),
        }
    }

    async fn rooms(&self, peer: &Peer, query: RoomQuery) -> Result<Vec<RoomInfo>, Failure> {
        let Some(hub) = self.0.upgrade() else {
            return Err(Failure::new(Condition::ServiceUnavailable, "shutting down"));
        };
        hub.router()
            .policy()
            .domain(&peer.domain)
            .map_err(|r| r.failure())?;
        hub.core.rooms.directory(&query).await
    }
}

impl Hub {
    /// The hub of a running core, sending SIP through `sip`.
    pub fn new(core: Arc<Core>, sip: Sip) -> Arc<Hub> {
        Arc::new(Hub {
            core,
            sip,
            resources: Mutex::new(HashMap::new()),
        })
    }

    fn router(&self) -> &Router {
        &self.core.router
    }

    /// Starts every adapter of the router with this hub.
    pub async fn start_adapters(self: &Arc<Self>) -> Result<(), (String, Failure)> {
        let handle = parley_adapter::Hub::new(Arc::new(HubRef(Arc::downgrade(self))));
        for a in self.router().adapters() {
            a.start(handle.clone())
                .await
                .map_err(|e| (a.name().to_string(), e))?;
            info!(adapter = a.name(), "adapter started");
        }
        Ok(())
    }

    /// Stops the adapters.
    pub async fn stop_adapters(&self) {
        for a in self.router().adapters() {
            a.stop().await;
        }
    }

    /// One inbound item from an adapter.
    async fn submit(&self, peer: &Peer, item: Inbound) -> Result<(), Failure> {
        let router = self.router();
        let core = &self.core;
        let refused = |r: Refusal| {
            warn!(peer = %peer.domain, reason = r.name(), "refused by policy");
            r.failure()
        };
        // The peer's domain and link first; a message refused here is
        // archived with the reason like any other.
        let early = router
            .policy()
            .domain(&peer.domain)
            .and_then(|()| router.policy().peer_security(peer));
        if !matches!(item, Inbound::Message(_)) {
            early.map_err(refused)?;
        }
        let is_local = |d: &str| router.is_local_domain(d);
        match item {
            Inbound::Message(m) => {
                let (from, to) = (m.from.bare().to_string(), m.to.bare().to_string());
                let destination = if is_local(m.to.domain()) {
                    "sip"
                } else {
                    match router.destination(m.to.domain()).await {
                        Destination::Adapter(a) => a.protocol().name(),
                        _ => "sip",
                    }
                };
                let (ct, body) = m
                    .parts
                    .first()
                    .map(|p| (p.content_type.clone(), p.data.clone()))
                    .unwrap_or_default();
                let result = match early {
                    Err(r) => Err(refused(r)),
                    Ok(()) => self.inbound_message(peer, m, &refused).await,
                };
                let decision = match &result {
                    Ok(()) => "delivered".to_string(),
                    Err(f) => format!("refused: {f}"),
                };
                router.archive().record(
                    archive::Fact {
                        source: peer.protocol.name(),
                        destination,
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
                router
                    .policy()
                    .identity(peer, &recipient, is_local)
                    .map_err(refused)?;
                if !is_local(sender.domain()) {
                    // A message between two other networks: the report goes
                    // back the way the message came, to its sender.
                    let text = format!(
                        "Not delivered to {}: {}",
                        recipient.bare(),
                        attributed(&peer.domain, &failure)
                    );
                    let mut report =
                        parley_adapter::Message::text(id, recipient.bare(), sender.bare(), &text);
                    report.kind = parley_adapter::MessageKind::Normal;
                    let to = report.to.domain().to_string();
                    if let Err(f) = self
                        .between(peer, &recipient, &to, Outbound::Message(report))
                        .await
                    {
                        debug!(failure = %f, "failure report not carried");
                    }
                    return Ok(());
                }
                // Acted on only when it names a message Parley sent to this
                // peer about this recipient; who is told is the sender
                // Parley remembers, never whom the stanza names.
                let about = recipient.bare().to_string();
                match router.match_failure(&id, &peer.domain, &about, &failure) {
                    None => {
                        debug!(%id, peer = %peer.domain, "failure for no message sent; dropped")
                    }
                    Some(Matched::Answered) => {
                        info!(%id, to = %about, %failure, "bridged message refused")
                    }
                    Some(Matched::Limited) => {
                        info!(%id, peer = %peer.domain, "failure report not sent: too many from this domain")
                    }
                    Some(Matched::Report { sender }) => {
                        info!(%id, to = %about, %failure, "bridged message failed");
                        let text = attributed(&peer.domain, &failure);
                        pager::report(core, &self.sip, &sender, &about, &text).await;
                    }
                }
                // Never answer an error with an error.
                Ok(())
            }
            Inbound::Presence(p) => {
                router
                    .policy()
                    .identity(peer, &p.from, is_local)
                    .map_err(refused)?;
                if !is_local(p.to.domain()) {
                    let (from, to) = (p.from.clone(), p.to.domain().to_string());
                    return self.between(peer, &from, &to, Outbound::Presence(p)).await;
                }
                self.inbound_presence(p).await
            }
            Inbound::Subscription(s) => {
                router
                    .policy()
                    .identity(peer, &s.from, is_local)
                    .map_err(refused)?;
                router.policy().rate(&peer.domain).map_err(refused)?;
                if !is_local(s.to.domain()) {
                    let (from, to) = (s.from.clone(), s.to.domain().to_string());
                    return self
                        .between(peer, &from, &to, Outbound::Subscription(s))
                        .await;
                }
                self.inbound_subscription(s).await
            }
            Inbound::RoomEvent(n) => {
                // The room speaks for its own domain only.
                router
                    .policy()
                    .identity(peer, &n.room, is_local)
                    .map_err(refused)?;
                if !is_local(n.to.domain()) {
                    // A channel of one network telling a member of another.
                    let (room, to) = (n.room.clone(), n.to.domain().to_string());
                    return self.between(peer, &room, &to, Outbound::Room(n)).await;
                }
                rooms::remote::notice(&self.core, n).await
            }
            Inbound::Room(r) => {
                router
                    .policy()
                    .identity(peer, &r.from, is_local)
                    .map_err(refused)?;
                router.policy().rate(&peer.domain).map_err(refused)?;
                self.inbound_room(peer, r, &refused).await
            }
            _ => Err(Failure::bare(Condition::FeatureNotImplemented)),
        }
    }

    /// A member of another network acts in a room Parley hosts.
    async fn inbound_room(
        &self,
        peer: &Peer,
        r: RoomRequest,
        refused: &impl Fn(Refusal) -> Failure,
    ) -> Result<(), Failure> {
        let core = &self.core;
        if let RoomAction::Say { text, .. } | RoomAction::Private { text, .. } = &r.action {
            self.router()
                .policy()
                .content(text.len(), &["text/plain"])
                .map_err(refused)?;
        }
        if !core.rooms.serves(r.room.domain()) && !self.router().is_local_domain(r.room.domain()) {
            // A room of another network (an IRC channel) entered from this one.
            let (from, to) = (r.from.clone(), r.room.domain().to_string());
            return self
                .between(peer, &from, &to, Outbound::RoomRequest(r))
                .await;
        }
        if !core.rooms.serves(r.room.domain()) {
            return Err(Failure::new(
                Condition::ItemNotFound,
                "not a conference domain of this server",
            ));
        }
        let Some(adapter) = self
            .router()
            .adapters()
            .iter()
            .find(|a| a.name() == peer.adapter)
            .cloned()
        else {
            return Err(Failure::bare(Condition::ServiceUnavailable));
        };
        let who = rooms::Who {
            id: r.from.bare().to_string().to_ascii_lowercase(),
            via: rooms::Via::Adapter(adapter, r.from.clone()),
        };
        let room = r.room.bare().to_string();
        let result = rooms::act(core, &self.sip, &room, who, r.action).await;
        if result.is_ok() {
            self.router().count(peer.protocol, Protocol::Sip);
        }
        result
    }

    /// An inbound message from an adapter: policy, then SIP delivery.
    async fn inbound_message(
        &self,
        peer: &Peer,
        m: parley_adapter::Message,
        refused: &impl Fn(Refusal) -> Failure,
    ) -> Result<(), Failure> {
        let router = self.router();
        router
            .policy()
            .identity(peer, &m.from, |d| router.is_local_domain(d))
            .map_err(refused)?;
        router.policy().rate(&peer.domain).map_err(refused)?;
        let types: Vec<&str> = m.parts.iter().map(|p| p.content_type.as_str()).collect();
        router.policy().content(m.size(), &types).map_err(refused)?;
        if !router.is_local_domain(m.to.domain()) {
            let (from, to) = (m.from.clone(), m.to.domain().to_string());
            return self.between(peer, &from, &to, Outbound::Message(m)).await;
        }
        if !router.cross(false, &m.id) {
            return Err(refused(router.policy().refuse(Refusal::Loop)));
        }
        self.deliver_to_sip(peer, m).await
    }

    async fn deliver_to_sip(&self, peer: &Peer, m: parley_adapter::Message) -> Result<(), Failure> {
        let now = rfc3339(now_secs());
        let Some(content) = sipmap::to_sip(&m, &now, &crate::sys::token()) else {
            return Ok(());
        };
        let to = m.to.bare();
        let sender = m.from.bare().to_sip_uri();
        // RFC 7573: while a chat session between the two is open, the
        // message goes into it rather than as a MESSAGE.
        match crate::simple::session::into_session(
            &self.core,
            &m.from.bare().to_string(),
            &to.to_string(),
            &content.content_type,
            &content.body,
        )
        .await
        {
            Ok(true) => {
                self.router().count(peer.protocol, Protocol::Sip);
                return Ok(());
            }
            Ok(false) => {}
            // RFC 7247 §7: the session's refusal (or its silence, 408) is
            // the sender's error.
            Err(code) => {
                return Err(Failure::new(
                    Condition::from_sip(code),
                    format!("the chat session answered MSRP {code}"),
                ))
            }
        }
        // A user who prefers sessions gets one opened for a chat message.
        let aor = to.to_string();
        if m.chat_state.is_none()
            && m.receipt.is_none()
            && !m.parts.is_empty()
            && crate::simple::session::prefers_sessions(&self.core, &aor)
        {
            if let crate::router::Destination::Adapter(adapter) =
                self.router().destination(m.from.domain()).await
            {
                if crate::simple::session::open_to_sip(
                    &self.core,
                    &self.sip,
                    adapter,
                    m.from.bare(),
                    to.clone(),
                    (&content.content_type, &content.body),
                )
                .await
                {
                    self.router().count(peer.protocol, Protocol::Sip);
                    return Ok(());
                }
            }
        }
        let started = Instant::now();
        let result = pager::deliver_bridged(
            &self.core,
            &self.sip,
            &sender,
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
                debug!(from = %m.from, to = %to, status, "bridged into SIP");
                self.router().count(peer.protocol, Protocol::Sip);
                Ok(())
            }
            Err(r) => Err(r.failure()),
        }
    }

    /// An item between two other networks (an XMPP user and an IRC nick
    /// or channel): carried to the adapter that reaches `to` only when the
    /// domain policy bridges the two domains, never back to the adapter
    /// it came from, and counted like any crossing.
    async fn between(
        &self,
        peer: &Peer,
        from: &Address,
        to: &str,
        item: Outbound,
    ) -> Result<(), Failure> {
        let router = self.router();
        let not_ours = || Failure::new(Condition::ItemNotFound, "not a domain of this server");
        let Destination::Adapter(adapter) = router.destination(to).await else {
            return Err(not_ours());
        };
        if adapter.name() == peer.adapter {
            return Err(not_ours());
        }
        let policy = router.policy();
        let refused = |r: Refusal| {
            warn!(from = %from.domain(), to, reason = r.name(), "refused by policy");
            r.failure()
        };
        policy.bridges(from.domain(), to).map_err(refused)?;
        policy.domain(to).map_err(refused)?;
        let result = adapter.deliver(item, policy.security(to)).await;
        if result.is_ok() {
            router.count(peer.protocol, adapter.protocol());
        }
        result
    }

    /// A subscription request or answer from another network.
    async fn inbound_subscription(&self, s: Subscription) -> Result<(), Failure> {
        let core = &self.core;
        if !self.router().is_local_domain(s.to.domain()) {
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
                presence::watch_external(core, &self.sip, &local, &remote)
                    .await
                    .map_err(|cap| {
                        Failure::new(
                            Condition::ResourceConstraint,
                            format!("limit of {cap} reached"),
                        )
                    })?;
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
                    bridge::presence_out(
                        core,
                        ExternalNotice::State {
                            presentity: local,
                            watcher: remote,
                            document: doc,
                        },
                    )
                    .await;
                }
            }
        }
        Ok(())
    }

    /// A presence state from another network: the watched presentity's
    /// document is rebuilt from its resources and notified.
    async fn inbound_presence(&self, p: parley_adapter::Presence) -> Result<(), Failure> {
        let core = &self.core;
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
}
