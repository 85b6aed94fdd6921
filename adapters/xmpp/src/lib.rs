//! Parley's XMPP adapter: server-to-server federation (RFC 6120 with
//! Server Dialback, XEP-0220) and XEP-0114 component mode, mapping stanzas
//! to the neutral model of `parley-adapter` (RFC 7247/7248/7572).
//!
//! The adapter moves stanzas and reports who its peers authenticated as;
//! whether a domain may federate is the gateway's decision, made on the
//! [`Peer`] each inbound item carries and on the [`Security`] each
//! outbound item requires.

#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

mod component;
pub mod framer;
mod io;
pub mod muc;
mod s2s;
pub mod stanza;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use parley_adapter::xml::Element;
use parley_adapter::{
    Adapter, Address, Condition, Failure, Health, Hub, Inbound, Outbound, Peer, Protocol,
};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::debug;

pub use component::handshake;
pub use parley_adapter::Security;
pub use s2s::dialback_key;
use stanza::Decoded;

/// One XEP-0114 component link.
#[derive(Debug, Clone)]
pub struct ComponentSettings {
    /// The XMPP server's component port.
    pub server: SocketAddr,
    /// The subdomain the component serves (`sip.example.com`).
    pub domain: String,
    /// The XMPP server's own domain (for monitoring).
    pub server_domain: String,
    /// The Parley domain the subdomain stands for: `alice@sip.example.com`
    /// on the XMPP side is `alice@<local_domain>` inside Parley.
    pub local_domain: String,
    /// The shared secret.
    pub secret: String,
    /// The domains reached through this server (its own, and those it
    /// federates with for Parley).
    pub remote_domains: Vec<String>,
}

/// How the adapter runs.
pub struct Settings {
    /// The adapter's name.
    pub name: String,
    /// Parley's own domains, which it serves to XMPP servers directly
    /// (the conference domain among them).
    pub domains: Vec<String>,
    /// The conference domains: stanzas to them are XEP-0045 (RFC 7702).
    pub room_domains: Vec<String>,
    /// Domains of other networks Parley bridges (IRC networks), served to
    /// XMPP servers as if Parley's own (and so among `domains`): a nick is
    /// `bob@irc.example.com`, a channel the room `#dev@irc.example.com`,
    /// as biboumi names them.
    pub gateway_domains: Vec<String>,
    /// The inbound s2s listener (none: outbound federation only).
    pub listener: Option<TcpListener>,
    /// The inbound direct-TLS s2s listener (XEP-0368).
    pub listener_tls: Option<TcpListener>,
    /// STARTTLS required on every s2s stream.
    pub require_tls: bool,
    /// TLS for inbound streams (Parley's certificate).
    pub tls_server: Option<Arc<rustls::ServerConfig>>,
    /// TLS for outbound streams authenticated by dialback (any
    /// certificate: the name is proved by the dialback key).
    pub tls_client: Arc<rustls::ClientConfig>,
    /// TLS for outbound streams with trust anchors configured: the remote
    /// certificate must name the remote domain, and Parley authenticates
    /// with SASL EXTERNAL where offered (XEP-0178).
    pub tls_client_verified: Option<Arc<rustls::ClientConfig>>,
    /// The secret dialback keys are made with (XEP-0185).
    pub dialback_secret: String,
    /// Component links.
    pub components: Vec<ComponentSettings>,
    /// The largest stanza accepted.
    pub max_stanza: usize,
    /// How long connecting, TLS and authentication may take.
    pub connect_timeout: Duration,
    /// How long a stream may stay silent.
    pub idle_timeout: Duration,
    /// How long an inbound stream may take, from its first byte, to
    /// authenticate a domain (dialback or SASL EXTERNAL).
    pub negotiation_timeout: Duration,
    /// Inbound streams at most.
    pub max_inbound: usize,
    /// Inbound streams from one address at most.
    pub max_per_source: usize,
    /// DNS for `_xmpp-server._tcp` and `_xmpps-server._tcp`: Parley's own
    /// resolver, with its RFC 2782 ordering.
    pub resolver: Arc<dyn parley_adapter::Locator>,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("name", &self.name)
            .field("domains", &self.domains)
            .field("components", &self.components)
            .finish_non_exhaustive()
    }
}

/// State shared by the adapter's tasks.
pub(crate) struct Shared {
    settings: Settings,
    hub: OnceLock<Hub>,
    s2s: s2s::S2s,
    components: Vec<mpsc::Sender<component::Outgoing>>,
    component_up: Vec<AtomicBool>,
    stop: CancellationToken,
    tracker: TaskTracker,
    ids: AtomicU64,
    /// Room traffic is handled in the order it came, per remote domain (a
    /// roster before the occupant's own presence, a join before what the
    /// occupant says, XEP-0045 §7.2): one queue and one task per domain.
    room_order: std::sync::Mutex<HashMap<String, mpsc::UnboundedSender<Ordered>>>,
}

/// Room traffic waiting its turn.
type Ordered = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

impl Shared {
    /// Runs `work` after the room traffic from `domain` that came before.
    fn in_order(self: &Arc<Self>, domain: &str, work: Ordered) {
        let mut queues = self.room_order.lock().unwrap_or_else(|p| p.into_inner());
        let work = match queues.get(domain) {
            Some(q) => match q.send(work) {
                Ok(()) => return,
                Err(mpsc::error::SendError(w)) => w,
            },
            None => work,
        };
        let (tx, mut rx) = mpsc::unbounded_channel::<Ordered>();
        let _ = tx.send(work);
        queues.insert(domain.to_string(), tx);
        let stop = self.stop.clone();
        self.tracker.spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    next = rx.recv() => match next {
                        Some(w) => w.await,
                        None => return,
                    },
                }
            }
        });
    }

    fn next_id(&self) -> u64 {
        self.ids.fetch_add(1, Ordering::Relaxed)
    }

    fn set_component_up(&self, index: usize, up: bool) {
        self.component_up[index].store(up, Ordering::Relaxed);
    }

    /// The component link that reaches `to` for Parley's `from` domain:
    /// the one standing for `from` when several reach `to` (a users'
    /// component and a rooms' component on the same server).
    fn component_between(&self, to: &str, from: &str) -> Option<usize> {
        self.settings
            .components
            .iter()
            .position(|c| {
                c.local_domain.eq_ignore_ascii_case(from)
                    && c.remote_domains.iter().any(|d| d.eq_ignore_ascii_case(to))
            })
            .or_else(|| self.component_for(to))
    }

    /// The component link serving `domain`, if any.
    fn component_for(&self, domain: &str) -> Option<usize> {
        self.settings.components.iter().position(|c| {
            c.remote_domains
                .iter()
                .any(|d| d.eq_ignore_ascii_case(domain))
        })
    }
}

/// The XMPP adapter.
pub struct XmppAdapter {
    shared: Arc<Shared>,
    component_rx: Mutex<Vec<mpsc::Receiver<component::Outgoing>>>,
    listener: Mutex<Option<TcpListener>>,
    listener_tls: Mutex<Option<TcpListener>>,
}

impl std::fmt::Debug for XmppAdapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XmppAdapter")
            .field("settings", &self.shared.settings)
            .finish()
    }
}

impl XmppAdapter {
    /// An adapter with these settings; nothing runs until [`Adapter::start`].
    pub fn new(mut settings: Settings) -> XmppAdapter {
        let listener = settings.listener.take();
        let listener_tls = settings.listener_tls.take();
        let mut senders = Vec::new();
        let mut receivers = Vec::new();
        for _ in &settings.components {
            let (tx, rx) = mpsc::channel(1024);
            senders.push(tx);
            receivers.push(rx);
        }
        let resolver = settings.resolver.clone();
        let shared = Arc::new(Shared {
            component_up: settings
                .components
                .iter()
                .map(|_| AtomicBool::new(false))
                .collect(),
            settings,
            hub: OnceLock::new(),
            s2s: s2s::S2s::new(resolver),
            components: senders,
            stop: CancellationToken::new(),
            tracker: TaskTracker::new(),
            ids: AtomicU64::new(0),
            room_order: std::sync::Mutex::new(HashMap::new()),
        });
        XmppAdapter {
            shared,
            component_rx: Mutex::new(receivers),
            listener: Mutex::new(listener),
            listener_tls: Mutex::new(listener_tls),
        }
    }
}

#[async_trait]
impl Adapter for XmppAdapter {
    fn name(&self) -> &str {
        &self.shared.settings.name
    }

    fn protocol(&self) -> Protocol {
        Protocol::Xmpp
    }

    async fn start(&self, hub: Hub) -> Result<(), Failure> {
        let _ = self.shared.hub.set(hub);
        let listener = self.listener.lock().ok().and_then(|mut l| l.take());
        if let Some(listener) = listener {
            self.shared
                .tracker
                .spawn(s2s::listen(self.shared.clone(), listener));
        }
        let listener_tls = self.listener_tls.lock().ok().and_then(|mut l| l.take());
        if let Some(listener) = listener_tls {
            self.shared
                .tracker
                .spawn(s2s::listen_direct(self.shared.clone(), listener));
        }
        let receivers =
            std::mem::take(&mut *self.component_rx.lock().unwrap_or_else(|p| p.into_inner()));
        let mut waits = Vec::new();
        for (index, rx) in receivers.into_iter().enumerate() {
            let (tx, ready) = oneshot::channel();
            self.shared
                .tracker
                .spawn(component::run(self.shared.clone(), index, rx, Some(tx)));
            waits.push(ready);
        }
        // A component that cannot connect yet is retried in the background;
        // start does not fail for it.
        for w in waits {
            let _ = tokio::time::timeout(self.shared.settings.connect_timeout, w).await;
        }
        Ok(())
    }

    async fn deliver(&self, item: Outbound, security: Security) -> Result<(), Failure> {
        let shared = &self.shared;
        let (from, to) = match &item {
            Outbound::Message(m) => (&m.from, &m.to),
            Outbound::Presence(p) => (&p.from, &p.to),
            Outbound::Subscription(s) => (&s.from, &s.to),
            Outbound::Room(n) => (&n.room, &n.to),
            Outbound::RoomRequest(r) => (&r.from, &r.room),
            _ => return Err(Failure::bare(Condition::FeatureNotImplemented)),
        };
        let (from_domain, to_domain) = (from.domain().to_string(), to.domain().to_string());
        if let Some(index) = shared.component_between(&to_domain, &from_domain) {
            let c = &shared.settings.components[index];
            let el = encode(
                &item,
                component::NS_COMPONENT,
                Some((&c.local_domain, &c.domain)),
            )?;
            if security.tls || security.verified {
                return Err(Failure::new(
                    Condition::PolicyViolation,
                    "the component link is not encrypted",
                ));
            }
            let (tx, rx) = oneshot::channel();
            shared.components[index]
                .send((el, Some(tx)))
                .await
                .map_err(|_| Failure::new(Condition::ServiceUnavailable, "component stopped"))?;
            return match tokio::time::timeout(shared.settings.connect_timeout, rx).await {
                Ok(Ok(r)) => r,
                _ => Err(Failure::new(
                    Condition::RemoteServerTimeout,
                    "component link busy",
                )),
            };
        }
        if security.verified && shared.settings.tls_client_verified.is_none() {
            return Err(Failure::new(
                Condition::PolicyViolation,
                "a verified certificate is required and no trust anchors are configured",
            ));
        }
        let el = encode(&item, "jabber:server", None)?;
        shared.s2s.send(shared, &from_domain, &to_domain, el).await
    }

    fn health(&self) -> Health {
        let shared = &self.shared;
        let mut links = shared.s2s.links();
        for (i, c) in shared.settings.components.iter().enumerate() {
            if shared.component_up[i].load(Ordering::Relaxed) {
                links.push(component::link(c));
            }
        }
        Health {
            up: shared.settings.components.is_empty()
                || shared
                    .component_up
                    .iter()
                    .any(|u| u.load(Ordering::Relaxed)),
            links,
            networks: Vec::new(),
        }
    }

    async fn stop(&self) {
        self.shared.stop.cancel();
        self.shared.tracker.close();
        let _ = tokio::time::timeout(Duration::from_secs(3), self.shared.tracker.wait()).await;
    }
}

/// The stanza for an outbound item; `rewrite` maps Parley's domain to the
/// component's subdomain on the sender's address.
fn encode(item: &Outbound, ns: &str, rewrite: Option<(&str, &str)>) -> Result<Element, Failure> {
    let map = |a: &Address| match rewrite {
        Some((local, sub)) if a.domain().eq_ignore_ascii_case(local) => a.with_domain(sub),
        _ => a.clone(),
    };
    match item {
        Outbound::Message(m) => {
            let mut m = m.clone();
            m.from = map(&m.from);
            stanza::encode_message(&m, ns)
                .ok_or_else(|| Failure::new(Condition::NotAcceptable, "nothing XMPP can carry"))
        }
        Outbound::Presence(p) => {
            let mut p = p.clone();
            p.from = map(&p.from);
            Ok(stanza::encode_presence(&p, ns))
        }
        Outbound::Subscription(s) => {
            let mut s = s.clone();
            s.from = map(&s.from);
            Ok(stanza::encode_subscription(&s, ns))
        }
        Outbound::Room(n) => {
            let mut n = n.clone();
            n.room = map(&n.room);
            Ok(muc::encode(&n, ns))
        }
        Outbound::RoomRequest(r) => {
            let mut r = r.clone();
            r.from = map(&r.from);
            Ok(muc::encode_request(&r, ns))
        }
        _ => Err(Failure::bare(Condition::FeatureNotImplemented)),
    }
}

/// Stanzas of one stream handled at once; beyond this the stream waits.
pub(crate) const IN_FLIGHT: usize = 512;

/// The domain of a JID attribute (lower case; empty when absent).
pub(crate) fn jid_domain(jid: Option<&str>) -> String {
    let Some(jid) = jid else {
        return String::new();
    };
    let bare = jid.split('/').next().unwrap_or("");
    bare.rsplit_once('@')
        .map_or(bare, |(_, d)| d)
        .to_ascii_lowercase()
}

/// Where an error reply for an inbound stanza goes.
#[derive(Debug, Clone)]
pub(crate) enum Reply {
    /// Over the outbound s2s link from this local domain.
    S2s { local: String },
    /// Back over the component link.
    Component(usize),
}

impl Reply {
    /// An address as Parley knows it: a component's subdomain is the
    /// Parley domain it stands for.
    fn inward(&self, shared: &Shared, a: Address) -> Address {
        self.map(shared, a, true)
    }

    /// The other way: a Parley domain as the component's subdomain.
    fn outward(&self, shared: &Shared, a: Address) -> Address {
        self.map(shared, a, false)
    }

    fn map(&self, shared: &Shared, a: Address, inward: bool) -> Address {
        let Reply::Component(i) = self else {
            return a;
        };
        let c = &shared.settings.components[*i];
        let (from, to) = if inward {
            (&c.domain, &c.local_domain)
        } else {
            (&c.local_domain, &c.domain)
        };
        if a.domain().eq_ignore_ascii_case(from) {
            a.with_domain(to)
        } else {
            a
        }
    }
}

/// Hands one inbound stanza to the hub, in its own task (a recipient that
/// is slow to answer does not hold up the stream); a refusal goes back to
/// the sender as a stanza error.
pub(crate) fn dispatch(
    shared: Arc<Shared>,
    peer: Peer,
    el: Element,
    ns: &'static str,
    reply: Reply,
    permit: tokio::sync::OwnedSemaphorePermit,
) {
    // Over a component link, its subdomain stands for a Parley domain (the
    // conference domain, for a rooms' component).
    let mut to_domain = jid_domain(el.attr("to"));
    if let Reply::Component(i) = &reply {
        let c = &shared.settings.components[*i];
        if to_domain.eq_ignore_ascii_case(&c.domain) {
            to_domain = c.local_domain.clone();
        }
    }
    if shared
        .settings
        .room_domains
        .iter()
        .any(|d| d.eq_ignore_ascii_case(&to_domain))
        || is_gateway_room(&shared.settings, el.attr("to"))
    {
        rooms(shared, peer, el, ns, reply, permit);
        return;
    }
    if el.name == "iq" {
        answer_iq(&shared, &el, ns, &reply);
        return;
    }
    // What a room of another server tells one of Parley's users, in the
    // order the room said it.
    if muc::is_room_traffic(&el, ns) {
        let domain = peer.domain.clone();
        let queue = shared.clone();
        queue.in_order(
            &domain,
            Box::pin(async move {
                let _permit = permit;
                let Some(hub) = shared.hub.get().cloned() else {
                    return;
                };
                let result = match muc::decode_notice(&el, ns) {
                    Ok(Some(mut n)) => {
                        n.to = reply.inward(&shared, n.to);
                        hub.submit(&peer, Inbound::RoomEvent(n)).await
                    }
                    Ok(None) => Ok(()),
                    Err(refused) => Err(refused.failure),
                };
                if let Err(failure) = result {
                    debug!(%failure, "room traffic refused");
                }
            }),
        );
        return;
    }
    let tracker = shared.tracker.clone();
    tracker.spawn(async move {
        // Held until the stanza is handled: a stream has a bounded number
        // of stanzas in flight, and past it the stream is not read, so a
        // flood slows its sender down instead of growing memory.
        let _permit = permit;
        let Some(hub) = shared.hub.get().cloned() else {
            return;
        };
        let rewrite = |a: Address| reply.inward(&shared, a);
        let item = match stanza::decode(&el, ns) {
            Ok(Decoded::Message(mut m)) => {
                m.to = rewrite(m.to);
                Inbound::Message(m)
            }
            Ok(Decoded::Presence(mut p)) => {
                p.to = rewrite(p.to);
                Inbound::Presence(p)
            }
            Ok(Decoded::Subscription(mut s)) => {
                s.to = rewrite(s.to);
                Inbound::Subscription(s)
            }
            Ok(Decoded::Error {
                id,
                from,
                to,
                failure,
            }) => Inbound::Failed {
                id,
                sender: rewrite(to),
                recipient: from,
                failure,
            },
            Ok(Decoded::Ignored) => return,
            Err(refused) => {
                send_error(&shared, &el, &refused.failure, &reply).await;
                return;
            }
        };
        let is_error = el.attr("type") == Some("error");
        if let Err(failure) = hub.submit(&peer, item).await {
            debug!(%failure, name = %el.name, "inbound stanza refused");
            // Never answer an error with an error (RFC 6120 §8.3.1).
            if !is_error {
                send_error(&shared, &el, &failure, &reply).await;
            }
        }
    });
}

/// Whether a JID is a channel of a bridged network: its domain is a
/// gateway domain and its local part starts as an IRC channel's does.
fn is_gateway_room(settings: &Settings, jid: Option<&str>) -> bool {
    let Some(jid) = jid else {
        return false;
    };
    let bare = jid.split('/').next().unwrap_or("");
    let Some((local, domain)) = bare.rsplit_once('@') else {
        return false;
    };
    local.starts_with(['#', '&'])
        && settings
            .gateway_domains
            .iter()
            .any(|d| d.eq_ignore_ascii_case(domain))
}

/// A stanza for a room Parley hosts (XEP-0045): presence and messages
/// become room requests, disco and muc#admin IQs are answered here.
fn rooms(
    shared: Arc<Shared>,
    peer: Peer,
    el: Element,
    ns: &'static str,
    reply: Reply,
    permit: tokio::sync::OwnedSemaphorePermit,
) {
    let domain = peer.domain.clone();
    let queue = shared.clone();
    queue.in_order(
        &domain,
        Box::pin(async move {
            let _permit = permit;
            let Some(hub) = shared.hub.get().cloned() else {
                return;
            };
            let is_error = el.attr("type") == Some("error");
            let rewrite = |a: Address| reply.inward(&shared, a);
            // And back: Parley's domain as the component's subdomain.
            let outward = |a: Address| reply.outward(&shared, a);
            if el.name == "iq" {
                let answer = room_iq(&hub, &peer, &el, ns, (&rewrite, &outward)).await;
                let response = match answer {
                    Ok(payload) => {
                        let mut r = Element::new(ns, "iq").with_attr("", "type", "result");
                        for (attr, value) in [
                            ("from", el.attr("to")),
                            ("to", el.attr("from")),
                            ("id", el.attr("id")),
                        ] {
                            if let Some(v) = value {
                                r = r.with_attr("", attr, v);
                            }
                        }
                        match payload {
                            Some(p) => r.with_child(p),
                            None => r,
                        }
                    }
                    Err(f) => stanza::error_reply(&el, &f),
                };
                if matches!(el.attr("type"), Some("get" | "set")) {
                    send_reply(&shared, response, &reply).await;
                }
                return;
            }
            let result = match muc::decode(&el, ns) {
                Ok(Some(mut request)) => {
                    request.room = rewrite(request.room);
                    hub.submit(&peer, Inbound::Room(request)).await
                }
                Ok(None) => Ok(()),
                Err(refused) => Err(refused.failure),
            };
            if let Err(failure) = result {
                debug!(%failure, name = %el.name, "room stanza refused");
                if !is_error {
                    send_error(&shared, &el, &failure, &reply).await;
                }
            }
        }),
    );
}

/// The answer to an IQ for the conference service or one of its rooms.
async fn room_iq(
    hub: &Hub,
    peer: &Peer,
    el: &Element,
    ns: &str,
    (rewrite, outward): (
        &(dyn Fn(Address) -> Address + Sync),
        &(dyn Fn(Address) -> Address + Sync),
    ),
) -> Result<Option<Element>, Failure> {
    let to = el.attr("to").unwrap_or_default();
    let room = Address::from_jid(to)
        .ok()
        .map(rewrite)
        .filter(|a| !a.user().is_empty());
    let kind = el.attr("type").unwrap_or_default();
    if el.child("urn:xmpp:ping", "ping").is_some() {
        return Ok(None);
    }
    if kind == "get" && el.child(muc::NS_DISCO_INFO, "query").is_some() {
        return match room {
            None => Ok(Some(muc::disco_info(None))),
            Some(r) => {
                let info = hub
                    .rooms(peer, parley_adapter::RoomQuery::Room(r.bare()))
                    .await?;
                Ok(Some(muc::disco_info(info.first())))
            }
        };
    }
    if kind == "get" && el.child(muc::NS_DISCO_ITEMS, "query").is_some() {
        return match room {
            None => {
                // The service's own name, as the component link maps it.
                let domain = jid_domain(Some(to));
                let domain = Address::new("service", &domain, None)
                    .map(|a| rewrite(a).domain().to_string())
                    .unwrap_or(domain);
                let mut rooms = hub
                    .rooms(peer, parley_adapter::RoomQuery::Rooms(domain))
                    .await?;
                for r in &mut rooms {
                    r.address = outward(r.address.clone());
                }
                Ok(Some(muc::disco_items(&rooms)))
            }
            Some(_) => Ok(Some(muc::disco_items(&[]))),
        };
    }
    if kind == "set" && el.child(muc::NS_MUC_ADMIN, "query").is_some() {
        let mut request = muc::decode_admin(el).map_err(|r| r.failure)?;
        request.room = rewrite(request.room);
        hub.submit(peer, Inbound::Room(request)).await?;
        return Ok(None);
    }
    if el.child(muc::NS_MUC_OWNER, "query").is_some() {
        // Rooms are open on creation (instant rooms); a submitted or
        // cancelled form is accepted as it is.
        return Ok((kind == "get").then(muc::owner_form));
    }
    let _ = ns;
    Err(Failure::bare(Condition::ServiceUnavailable))
}

async fn send_error(shared: &Arc<Shared>, original: &Element, failure: &Failure, reply: &Reply) {
    let el = stanza::error_reply(original, failure);
    send_reply(shared, el, reply).await;
}

async fn send_reply(shared: &Arc<Shared>, el: Element, reply: &Reply) {
    match reply {
        Reply::Component(i) => {
            let _ = shared.components[*i].send((el, None)).await;
        }
        Reply::S2s { local } => {
            let to = jid_domain(el.attr("to"));
            if let Err(e) = shared.s2s.send(shared, local, &to, el).await {
                debug!(error = %e, "error reply not sent");
            }
        }
    }
}

/// IQs the gateway answers itself: XEP-0199 ping; anything else of type
/// get or set gets `service-unavailable` (RFC 6120 §8.4).
fn answer_iq(shared: &Arc<Shared>, el: &Element, ns: &'static str, reply: &Reply) {
    let kind = el.attr("type").unwrap_or_default();
    if kind != "get" && kind != "set" {
        return;
    }
    let response = if el.child("urn:xmpp:ping", "ping").is_some() {
        let mut r = Element::new(ns, "iq").with_attr("", "type", "result");
        if let Some(v) = el.attr("to") {
            r = r.with_attr("", "from", v);
        }
        if let Some(v) = el.attr("from") {
            r = r.with_attr("", "to", v);
        }
        if let Some(v) = el.attr("id") {
            r = r.with_attr("", "id", v);
        }
        r
    } else {
        stanza::error_reply(el, &Failure::bare(Condition::ServiceUnavailable))
    };
    let (shared, reply) = (shared.clone(), reply.clone());
    shared.tracker.clone().spawn(async move {
        send_reply(&shared, response, &reply).await;
    });
}
