//! The SIMPLE services behind the transaction layer: the user-agent core
//! that answers OPTIONS (RFC 3261 §11), the registrar (§10) and the proxy
//! (§16) with digest authentication (§22), the presence agent, the pager,
//! and the bridge that hands SIP requests to the adapters.
//!
//! [`Core`] is the transports' [`Handler`]. It is made from a
//! [`Router`], never without one: every request for another domain or
//! network meets the domain policy there.

pub mod auth;
pub mod bridge;
pub mod cluster;
pub mod edge;
pub mod gruu;
pub mod location;
pub mod pager;
pub mod presence;
pub mod proxy;
pub mod push;
pub mod registrar;
pub mod rooms;
pub mod session;
pub mod targets;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{Config, RegistrarConfig};
use crate::net::{Handler, HandlerFuture, Incoming, Sip};
use crate::proto::sip::stateless::{respond, stateless_tag};
use crate::proto::sip::uri::Host;
use crate::proto::sip::Transport;
use crate::proto::sip::{Message, Method};
use crate::router::{Rejection, Router};
use crate::store::Store;
use crate::sys::now_secs;

/// The methods Parley serves itself, for Allow.
pub const ALLOW: &str = "OPTIONS, REGISTER, PUBLISH, SUBSCRIBE";

/// The request handler behind the server transactions.
#[derive(Debug)]
pub struct Core {
    /// Where every address goes and whether it may: the domain policy.
    pub router: Arc<Router>,
    /// The addresses Parley listens on, by transport.
    pub listen: Vec<(Transport, SocketAddr)>,
    /// Binding lifetimes.
    pub registrar: crate::config::Live<RegistrarConfig>,
    /// REGISTER must authenticate.
    pub auth_registrar: crate::config::Live<bool>,
    /// Local users must authenticate to send through the proxy.
    pub auth_proxy: crate::config::Live<bool>,
    /// Digest authentication.
    pub auth: Arc<auth::Authenticator>,
    /// The MSRP relay, when it runs: it also hosts the MSRP end of the
    /// chat sessions Parley terminates for other networks.
    pub relay: Option<crate::msrp::Relay>,
    /// Chat sessions Parley is the far end of (RFC 7573).
    pub chat: Arc<session::ChatSessions>,
    /// Users and domains who prefer sessions (`[msrp] prefer_sessions`).
    pub prefer_sessions: Vec<String>,
    /// Registrar bindings.
    pub location: location::Location,
    /// The temporary GRUUs issued (RFC 5627).
    pub gruus: gruu::Gruus,
    /// Push notification services (RFC 8599).
    pub push: push::Push,
    /// The PURRs given to devices with push.
    pub purrs: push::Purrs,
    /// Registrars Parley fronts as an edge proxy (`[proxy] edge_for`).
    pub edge_for: Vec<String>,
    /// The flow tokens of the Paths it adds for them (RFC 5626 §5.3).
    pub flow_tokens: Arc<edge::FlowTokens>,
    /// This node's name and the cluster's shared secret, when several
    /// nodes share the store.
    pub cluster: Option<(String, String)>,
    /// INVITEs being proxied, for CANCEL.
    pub invites: proxy::Invites,
    /// Redirect rules.
    pub redirects: Vec<crate::config::RedirectConfig>,
    /// Timer C: how long an INVITE branch may go without a response.
    pub timer_c: Duration,
    /// The presence agent.
    pub presence: Arc<presence::PresenceAgent>,
    /// MESSAGEs kept for users with no contact.
    pub offline: pager::Offline,
    /// The chat rooms of the conference domain.
    pub rooms: rooms::Rooms,
    /// Ticks since start: sweeps that need not run every second.
    ticks: std::sync::atomic::AtomicU64,
    /// MESSAGE requests served since start (the console's chart).
    pub messages: std::sync::atomic::AtomicU64,
}

impl Core {
    /// Loads users, bindings and kept messages from the store. `router`
    /// decides everything that leaves the local domains; `listen` are the
    /// addresses the transports bound.
    pub async fn new(
        config: &Config,
        store: Arc<dyn Store>,
        router: Arc<Router>,
        listen: Vec<(Transport, SocketAddr)>,
        auth: Arc<auth::Authenticator>,
        relay: Option<crate::msrp::Relay>,
    ) -> Result<Core, crate::store::StoreError> {
        let flow_tokens = Arc::new(edge::FlowTokens::default());
        // In a cluster, another node reaches this node's flows through it:
        // over UDP to this node, with a flow token only this node reads.
        let node = match listen.iter().find(|(t, _)| *t == Transport::Udp) {
            Some((_, udp)) if config.clustered() => {
                let (tokens, udp) = (flow_tokens.clone(), *udp);
                Some(location::Node {
                    name: config.cluster.node.clone(),
                    route: Box::new(move |t, source| {
                        format!(
                            "<sip:{}@{udp};transport=udp;lr;parley-node>",
                            tokens.encode(t, source)
                        )
                    }),
                })
            }
            _ => None,
        };
        Ok(Core {
            router,
            listen,
            registrar: crate::config::Live::new(config.registrar),
            auth_registrar: crate::config::Live::new(config.auth.registrar),
            auth_proxy: crate::config::Live::new(config.auth.proxy),
            auth,
            relay,
            chat: Arc::default(),
            prefer_sessions: config
                .msrp
                .prefer_sessions
                .iter()
                .map(|p| p.to_ascii_lowercase())
                .collect(),
            location: location::Location::load(store.clone(), now_secs(), node).await?,
            gruus: gruu::Gruus::default(),
            // The config was checked: its webhook URLs read.
            push: push::Push::new(&config.push).unwrap_or_else(|e| {
                tracing::warn!(error = %e, "push notifications off");
                push::Push::new(&crate::config::PushConfig::default())
                    .expect("no providers, nothing to refuse")
            }),
            offline: pager::Offline::load(store.clone(), config.offline).await?,
            rooms: rooms::Rooms::load(&config.rooms, &config.domains, store.clone()).await?,
            invites: proxy::Invites::default(),
            redirects: config.redirect.clone(),
            timer_c: Duration::from_secs(config.proxy.timer_c_secs),
            edge_for: config
                .proxy
                .edge_for
                .iter()
                .map(|d| d.to_ascii_lowercase())
                .collect(),
            flow_tokens,
            cluster: config
                .clustered()
                .then(|| (config.cluster.node.clone(), config.cluster.secret.clone())),
            purrs: push::Purrs::default(),
            presence: Arc::new(presence::PresenceAgent::new(
                config.presence,
                Some(store.clone()),
            )),
            ticks: std::sync::atomic::AtomicU64::new(0),
            messages: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// Parley's own domains, lower-cased (the router's list).
    pub fn domains(&self) -> &[String] {
        self.router.domains()
    }

    /// True for a local domain (without case).
    pub fn is_local_domain(&self, domain: &str) -> bool {
        self.router.is_local_domain(domain)
    }

    /// True when `host:port` is an address Parley listens on (a missing
    /// port matches 5060 and 5061).
    pub fn is_own_address(&self, host: &Host<'_>, port: Option<u16>) -> bool {
        let Some(ip) = host.ip() else {
            return false;
        };
        self.listen
            .iter()
            .any(|(t, a)| a.ip() == ip && a.port() == port.unwrap_or(t.default_port()))
    }

    /// True when a URI host names Parley: a local domain or its address.
    pub fn is_local(&self, host: &Host<'_>, port: Option<u16>) -> bool {
        match host {
            Host::Name(n) => self.is_local_domain(n),
            _ => self.is_own_address(host, port),
        }
    }

    /// The domain a URI host stands for: one of Parley's own addresses
    /// counts as the first local domain; any other host is itself,
    /// lower-cased.
    pub fn domain_of(&self, host: &Host<'_>, port: Option<u16>) -> String {
        match self.domains().first() {
            Some(first) if self.is_own_address(host, port) => first.clone(),
            _ => host.to_string().to_ascii_lowercase(),
        }
    }

    /// True when `uri` is a SIP URI naming Parley (a local domain or one
    /// of its addresses).
    pub fn names_us(&self, uri: &str) -> bool {
        crate::proto::sip::uri::Uri::parse(uri.as_bytes())
            .ok()
            .and_then(|u| u.as_sip().map(|s| self.is_local(&s.host, s.port)))
            .unwrap_or(false)
    }

    /// Record-Route values for a request that came over `inbound` and
    /// leaves over `outbound`: one, or two when the transport changes
    /// (RFC 3261 §16.6 item 4, RFC 5658). Returned top first.
    pub fn record_route(&self, inbound: Transport, outbound: Transport) -> Vec<String> {
        let entry = |t: Transport| {
            self.listen.iter().find(|(lt, _)| *lt == t).map(|(_, a)| {
                let scheme = if t == Transport::Tls { "sips" } else { "sip" };
                let param = if t == Transport::Udp {
                    String::new()
                } else {
                    format!(";transport={t}")
                };
                format!("<{scheme}:{a}{param};lr>")
            })
        };
        let mut out = Vec::new();
        if let Some(e) = entry(outbound) {
            out.push(e);
        }
        if inbound != outbound {
            if let Some(e) = entry(inbound) {
                out.push(e);
            }
        }
        out
    }

    /// Serves one request that opened a server transaction.
    pub async fn handle(self: Arc<Self>, sip: Sip, mut incoming: Incoming) {
        use tracing::Instrument;
        let method = incoming.message.method().map_or("other", Method::label);
        if method == "MESSAGE" {
            self.messages
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        let span = tracing::debug_span!("request", method, source = %incoming.source);
        async move {
            let is_bye = matches!(incoming.message.method(), Some(Method::Bye));
            if is_bye
                && (session::bye(&self, &mut incoming).await
                    || rooms::msrp::bye(&self, &mut incoming).await)
            {
                return;
            }
            match incoming.message.method() {
                // RFC 5626 §5: a REGISTER for a registrar Parley fronts is
                // relayed, with a Path that brings requests back over the flow.
                Some(Method::Register) if edge::fronts(&self, &incoming.message) => {
                    proxy::route(self.clone(), sip, incoming).await;
                }
                Some(Method::Register) => {
                    registrar::register(&self, &mut incoming).await;
                    // A contact came: deliver what was kept (off this task).
                    if let Some(aor) = registered_aor(&self, &incoming.message) {
                        // After its 200: a request held for the device
                        // follows the REGISTER's answer, not the other way.
                        self.location.announce(&aor);
                        if self.push.enabled() {
                            self.push_presence(&sip, &aor).await;
                        }
                        if self.offline.waiting(&aor) > 0 {
                            tokio::spawn(pager::deliver(self.clone(), sip.clone(), aor));
                        }
                    }
                }
                Some(Method::Cancel) => proxy::cancel(&self, &sip, incoming).await,
                Some(Method::Subscribe) if rooms::conference::owns(&self, &incoming.message) => {
                    rooms::conference::subscribe(&self, &sip, incoming, None).await
                }
                Some(Method::Publish) if presence::serves(&self, &incoming.message) => {
                    presence::publish(&self, &sip, incoming).await
                }
                Some(Method::Subscribe) if presence::serves(&self, &incoming.message) => {
                    presence::subscribe(&self, &sip, incoming).await
                }
                _ => proxy::route(self.clone(), sip, incoming).await,
            }
        }
        .instrument(span)
        .await
    }

    /// Work that runs once a second: presence, offline and archive expiry;
    /// bindings every fifth second.
    pub async fn tick(self: &Arc<Self>, sip: &Sip) {
        let n = self
            .ticks
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if n % 5 == 4 {
            if self.location.sweep(now_secs()) > 0 {
                self.forget_gruus();
            }
            rooms::conference::sweep(self, sip).await;
        }
        presence::sweep(self, sip).await;
        rooms::conference::flush(self, sip).await;
        self.router.tick().await;
        pager::expire(self, sip).await;
    }
}

impl Core {
    /// Tells the presence agent whether `aor` has a device push can wake,
    /// and until when (RFC 8599).
    pub(crate) async fn push_presence(&self, sip: &Sip, aor: &str) {
        let until = self
            .location
            .lookup(aor, now_secs())
            .iter()
            .filter(|b| push::Device::of(&b.uri).is_some())
            .map(|b| b.expires_at)
            .max();
        presence::set_pushable(self, sip, aor, until).await;
        let now = now_secs();
        self.purrs.retain(|aor, prid| {
            self.location
                .lookup(aor, now)
                .iter()
                .any(|b| push::Device::of(&b.uri).is_some_and(|d| d.prid == prid))
        });
    }

    /// Ends bindings of `aor` (as the operator asks): all of them, or
    /// the one whose contact URI is `contact`. Returns those ended.
    pub fn end_registrations(&self, aor: &str, contact: Option<&str>) -> Vec<location::Binding> {
        let mut gone = Vec::new();
        let _ = self.location.update(aor, |bindings| {
            bindings.retain(|b| {
                let end = contact.map_or(true, |c| *c == *b.uri);
                if end {
                    gone.push(b.clone());
                }
                !end
            });
            Ok::<(), ()>(())
        });
        if !gone.is_empty() {
            self.forget_gruus();
            for b in &gone {
                tracing::info!(%aor, contact = %b.uri, "binding ended by the operator");
            }
        }
        gone
    }

    /// Ends everything of a user the operator removed, as a kick does:
    /// bindings, subscriptions (as presentity and as watcher) and
    /// publications, and the cached credentials.
    pub fn end_user(&self, user: &str, domain: &str) -> (usize, usize) {
        let aor = format!("{user}@{}", domain.to_ascii_lowercase());
        let bindings = self.end_registrations(&aor, None).len();
        let subscriptions = self.presence.end_user(&aor);
        self.auth.forget(user, domain);
        (bindings, subscriptions)
    }

    /// Temporary GRUUs of instances no longer registered stop resolving.
    fn forget_gruus(&self) {
        let now = now_secs();
        self.gruus.retain(|aor, urn| {
            self.location
                .lookup(aor, now)
                .iter()
                .any(|b| gruu::urn(&b.instance) == urn)
        });
    }
}

impl Handler for Core {
    /// OPTIONS to Parley itself (no user part), whose answer depends on the
    /// request alone (RFC 3261 §11.2).
    fn answer_stateless(&self, request: &Message, tag_secret: u64) -> Option<Vec<u8>> {
        match request.method()? {
            Method::Options => {
                let uri = request.request_uri()?.ok()?;
                let to_us = uri.as_sip().is_some_and(|s| s.user.is_none());
                to_us.then(|| options(request, &stateless_tag(request, tag_secret)))
            }
            _ => None,
        }
    }

    fn handle(self: Arc<Self>, sip: Sip, incoming: Incoming) -> HandlerFuture {
        Box::pin(Core::handle(self, sip, incoming))
    }

    /// Forwarded statelessly along its route (RFC 3261 §16.11).
    fn ack(self: Arc<Self>, sip: Sip, ack: Message) -> HandlerFuture {
        Box::pin(async move { proxy::ack(&self, &sip, ack).await })
    }

    fn tick(self: Arc<Self>, sip: Sip) -> HandlerFuture {
        Box::pin(async move { Core::tick(&self, &sip).await })
    }

    /// RFC 5626 §5.3: the outbound bindings made over a flow end with it.
    fn flow_closed(&self, transport: crate::proto::sip::Transport, peer: std::net::SocketAddr) {
        let gone = self.location.drop_flow(transport, peer);
        for (aor, b) in &gone {
            tracing::info!(%aor, contact = %b.uri, %peer, reg_id = b.reg_id, "flow closed: binding ended");
            metrics::counter!("parley_flows_closed_total").increment(1);
        }
        if !gone.is_empty() {
            self.forget_gruus();
        }
    }
}

/// Answers a request the router or a service refused: the status, the
/// reason phrase, and the policy's reason in a Warning.
pub async fn reject(inc: &mut Incoming, r: &Rejection, domain: &str) {
    if let Some(refusal) = r.refusal {
        tracing::warn!(%domain, reason = refusal.name(), "refused by policy");
    }
    inc.responder.reply(r.status, &r.reason, &r.extra()).await
}

/// The address of record a REGISTER is for (its To), when it is local.
fn registered_aor(core: &Core, msg: &Message) -> Option<String> {
    let to = msg.to()?.ok()?;
    let uri = to.uri().ok()?;
    let sip = uri.as_sip()?;
    let user = sip.user?;
    core.is_local(&sip.host, sip.port)
        .then(|| proxy::local_aor(core, user, &sip.host).0)
}

/// The 200 to OPTIONS (RFC 3261 §11.2).
fn options(request: &Message, to_tag: &str) -> Vec<u8> {
    let extra = [
        ("Allow", ALLOW.to_string()),
        // No extensions are understood yet.
        ("Accept", crate::proto::pidf::CONTENT_TYPE.to_string()),
        ("Allow-Events", presence::EVENTS.to_string()),
        ("Supported", String::new()),
        (
            "Server",
            concat!("Parley/", env!("CARGO_PKG_VERSION")).to_string(),
        ),
    ];
    respond(request, 200, "OK", to_tag, &extra)
}
