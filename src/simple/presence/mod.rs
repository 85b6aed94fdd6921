//! The presence agent: PUBLISH (RFC 3903) with entity tags, SUBSCRIBE and
//! NOTIFY (RFC 6665) for the presence event package (RFC 3856), and
//! composition of a presentity's publications into one PIDF document
//! (RFC 4479) sent to every watcher when it changes.
//!
//! Watchers are authorized per presentity (RFC 3856 §6.6, the
//! sub-handling values of RFC 5025): allow, deny (403), polite-block (the
//! watcher sees only "closed") or, without a rule, the configured default
//! (pending watchers get a neutral NOTIFY until a rule allows them). Rules
//! live in the store; `parley presence` edits them and a running server
//! picks up the change within a second. A presentity watches its own
//! watchers through the watcher-info package (RFC 3857, RFC 3858).
//!
//! Presentities and watchers on other networks (RFC 7248) are served by
//! `foreign`, through the same state and the same rules.
//!
//! State lives in memory behind one lock; NOTIFYs are sent after the lock
//! is released. Subscriptions and publications expire on a sweep that
//! runs every second.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tracing::{debug, warn};

use super::{proxy, Core};
use crate::net::{Incoming, Sip, Target};
use crate::proto::pidf::{self, Presence as Document};
use crate::proto::sip::typed::{parse_delta, TokenParams};
use crate::proto::sip::Transport;
use crate::proto::sip::{HeaderName, Message, RequestBuilder};
use crate::router::Rejection;
use crate::sys::now_secs;

mod foreign;

pub(crate) use foreign::subscribe_foreign;
pub use foreign::{
    foreign_decision, is_watched, probe_external, publish_foreign, set_foreign, unwatch_external,
    watch_external,
};

/// Event packages the agent serves, for Allow-Events.
pub const EVENTS: &str = "presence, presence.winfo";

/// The watcher-info document namespace (RFC 3858).
pub const NS_WATCHERINFO: &str = "urn:ietf:params:xml:ns:watcherinfo";

pub use crate::config::{DefaultPolicy, PresenceConfig};

/// What a watcher of a presentity may see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The presentity's state.
    Allow,
    /// Nothing: the SUBSCRIBE gets 403.
    Deny,
    /// Accepted, but it only ever sees "closed".
    PoliteBlock,
    /// Accepted and waiting for a rule; sees a neutral document.
    Pending,
}

impl Decision {
    /// The name a rule is stored under.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::Deny => "deny",
            Decision::PoliteBlock => "polite-block",
            Decision::Pending => "pending",
        }
    }

    /// The decision a stored rule names.
    pub fn parse(s: &str) -> Option<Decision> {
        match s {
            "allow" => Some(Decision::Allow),
            "deny" => Some(Decision::Deny),
            "polite-block" => Some(Decision::PoliteBlock),
            _ => None,
        }
    }
}

/// The event packages served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Package {
    /// RFC 3856.
    Presence,
    /// RFC 3857: the watchers of a presentity.
    Winfo,
}

/// One publication (RFC 3903 §4.1: an event state with its entity tag).
#[derive(Debug, Clone)]
struct Publication {
    etag: String,
    document: Document,
    expires_at: u64,
}

/// The dialog a subscription lives in, as the notifier sees it.
#[derive(Debug, Clone)]
struct Dialog {
    /// Call-ID, tags, URIs, the remote target and the watcher, in one
    /// allocation (see [`Texts`]).
    texts: Texts,
    /// Record-Route of the SUBSCRIBE, in order (a NOTIFY uses it as is).
    route_set: Vec<String>,
    local_cseq: u32,
    /// Where the SUBSCRIBE came from, for a target without a usable host.
    source: SocketAddr,
    transport: Transport,
}

/// The text of a dialog, one string with the end of each part: a
/// subscription holds one allocation for its seven strings, which keeps
/// it small and keeps the heap from being pinned by many small pieces.
#[derive(Debug, Clone)]
struct Texts {
    buf: Box<str>,
    ends: [u32; 7],
}

/// The parts of [`Texts`].
#[derive(Debug, Clone, Copy)]
enum Part {
    CallId,
    LocalTag,
    RemoteTag,
    /// The subscriber's To URI (the presentity), our From in NOTIFY.
    LocalUri,
    /// The subscriber's From URI, our To in NOTIFY.
    RemoteUri,
    /// The subscriber's Contact: the NOTIFY Request-URI.
    RemoteTarget,
    /// The subscriber, `user@domain`.
    Watcher,
}

impl Texts {
    fn new(parts: [&str; 7]) -> Texts {
        let mut buf = String::with_capacity(parts.iter().map(|p| p.len()).sum());
        let mut ends = [0u32; 7];
        for (i, p) in parts.iter().enumerate() {
            buf.push_str(p);
            ends[i] = u32::try_from(buf.len()).unwrap_or(u32::MAX);
        }
        Texts {
            buf: buf.into_boxed_str(),
            ends,
        }
    }

    fn get(&self, part: Part) -> &str {
        let i = part as usize;
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        self.buf
            .get(start..self.ends[i] as usize)
            .unwrap_or_default()
    }

    /// The same texts with one part replaced.
    fn with(&self, part: Part, value: &str) -> Texts {
        let mut parts: [&str; 7] = [""; 7];
        for (i, p) in [
            Part::CallId,
            Part::LocalTag,
            Part::RemoteTag,
            Part::LocalUri,
            Part::RemoteUri,
            Part::RemoteTarget,
            Part::Watcher,
        ]
        .into_iter()
        .enumerate()
        {
            parts[i] = if i == part as usize {
                value
            } else {
                self.get(p)
            };
        }
        Texts::new(parts)
    }
}

#[derive(Debug, Clone)]
struct Subscription {
    /// Shared by every watcher of the presentity.
    presentity: Arc<str>,
    package: Package,
    event_id: Option<Box<str>>,
    dialog: Dialog,
    expires_at: u64,
    decision: Decision,
    /// The watcher-info document version (RFC 3858 §4.2).
    version: u32,
    /// The watcher is of another domain (its pending state is bounded).
    outside: bool,
}

/// The identity of a subscription dialog: Call-ID, our tag, theirs.
type DialogId = (String, String, String);

/// A subscription's number, unique while the agent runs.
type SubId = u64;

#[derive(Debug, Default)]
struct State {
    /// Publications per presentity (`user@domain`), oldest first.
    publications: HashMap<String, Vec<Publication>>,
    subscriptions: HashMap<SubId, Subscription>,
    /// Subscriptions by a keyed hash of their dialog (Call-ID and tags);
    /// the rare dialog whose hash is taken goes to `collided`.
    by_dialog: HashMap<u64, SubId>,
    collided: HashMap<DialogId, SubId>,
    /// The key of that hash, random per process.
    dialog_seed: std::collections::hash_map::RandomState,
    /// Subscriptions per presentity and package: a NOTIFY fan-out walks
    /// one set, and a new watcher costs O(1). The name is shared with the
    /// subscriptions.
    watchers: HashMap<(String, Package), (Arc<str>, HashSet<SubId>)>,
    next_id: SubId,
    /// Rules by (presentity, watcher); watcher `*` for everyone else.
    rules: HashMap<(String, String), Decision>,
    /// What the store said last time the rules were read.
    rules_version: Option<(i64, i64)>,
    /// Presentities with a device that push can wake (RFC 8599), until
    /// when its binding lasts: shown open while they publish nothing.
    pushable: HashMap<String, u64>,
    /// Presentities of other networks (reached through an adapter): what
    /// each answered a watcher's subscription request, by (presentity,
    /// watcher). Pending until the other network answers.
    foreign: HashMap<(String, String), Decision>,
    /// Watchers of local presentities on other networks, by presentity:
    /// what each may see.
    external: HashMap<String, HashMap<String, Decision>>,
    /// Presence for external watchers, waiting to be handed to the bridge.
    external_out: Vec<ExternalNotice>,
    /// Users removed by the operator: their subscriptions, as presentity
    /// and as watcher, end with the next sweep.
    ending: Vec<String>,
    /// What the presentity published on the other nodes of a cluster, by
    /// presentity: (node, document, expiry), composed with what it
    /// published here.
    remote: HashMap<String, Vec<(String, Document, u64)>>,
    /// Subscriptions by watcher domain, by source address, and pending
    /// ones of other domains' watchers: what the caps are checked against.
    per_domain: HashMap<Box<str>, u32>,
    per_source: HashMap<std::net::IpAddr, u32>,
    pending_outside: u32,
}

/// One more (`up`) or one fewer subscription in the counts the caps use.
fn account(state: &mut State, sub: &Subscription, up: bool) {
    let step = |n: &mut u32| {
        *n = if up {
            n.saturating_add(1)
        } else {
            n.saturating_sub(1)
        };
    };
    let domain = sub
        .dialog
        .texts
        .get(Part::Watcher)
        .rsplit_once('@')
        .map_or("", |(_, d)| d)
        .to_ascii_lowercase();
    let n = state.per_domain.entry(domain.clone().into()).or_default();
    step(n);
    if *n == 0 {
        state.per_domain.remove(domain.as_str());
    }
    let ip = sub.dialog.source.ip();
    let n = state.per_source.entry(ip).or_default();
    step(n);
    if *n == 0 {
        state.per_source.remove(&ip);
    }
    if sub.outside && sub.decision == Decision::Pending {
        step(&mut state.pending_outside);
    }
}

/// The cap a new subscription would pass, if any: its name, for the
/// reason phrase and the metric.
fn cap_reached(
    state: &State,
    config: &PresenceConfig,
    presentity: &str,
    domain: &str,
    source: std::net::IpAddr,
    pending_outside: bool,
) -> Option<&'static str> {
    let watchers: usize = [Package::Presence, Package::Winfo]
        .iter()
        .filter_map(|p| state.watchers.get(&(presentity.to_string(), *p)))
        .map(|(_, set)| set.len())
        .sum();
    if watchers >= config.max_per_presentity as usize {
        return Some("subscriptions to this user");
    }
    if state.per_domain.get(domain).copied().unwrap_or(0) >= config.max_per_watcher_domain {
        return Some("subscriptions from this watcher domain");
    }
    if state.per_source.get(&source).copied().unwrap_or(0) >= config.max_per_source {
        return Some("subscriptions from this address");
    }
    if pending_outside && state.pending_outside >= config.max_pending_outside {
        return Some("pending subscriptions from other domains");
    }
    None
}

/// Presence for a watcher on another network (RFC 7248), handed to the
/// bridge: the watcher is allowed (with the current state), the state
/// changed, or the watcher is no longer allowed.
#[derive(Debug, Clone, PartialEq)]
pub enum ExternalNotice {
    /// The watcher may see the presentity now; its state follows.
    Allowed {
        /// `user@domain` of the local presentity.
        presentity: String,
        /// `user@domain` of the watcher.
        watcher: String,
        /// The state.
        document: Document,
    },
    /// The state changed.
    State {
        /// `user@domain` of the local presentity.
        presentity: String,
        /// `user@domain` of the watcher.
        watcher: String,
        /// The state.
        document: Document,
    },
    /// The watcher may no longer see the presentity.
    Revoked {
        /// `user@domain` of the local presentity.
        presentity: String,
        /// `user@domain` of the watcher.
        watcher: String,
    },
}

/// The presence agent.
pub struct PresenceAgent {
    /// The settings (`[presence]`), reloadable.
    pub config: crate::config::Live<PresenceConfig>,
    store: Option<Arc<dyn crate::store::Store>>,
    state: Mutex<State>,
    limits: pidf::Limits,
}

/// A NOTIFY ready to go: the request and where to send it.
struct Outgoing {
    id: SubId,
    request: Message,
    target: Target,
}

impl std::fmt::Debug for PresenceAgent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PresenceAgent")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl PresenceAgent {
    /// An agent with no state; rules come from `store` when there is one.
    pub fn new(
        config: PresenceConfig,
        store: Option<Arc<dyn crate::store::Store>>,
    ) -> PresenceAgent {
        PresenceAgent {
            config: crate::config::Live::new(config),
            store,
            state: Mutex::new(State::default()),
            limits: pidf::Limits::default(),
        }
    }

    /// A fresh, unpredictable token (tags, entity tags, Call-IDs).
    pub(crate) fn token(&self) -> String {
        crate::sys::token()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every subscription, for the admin API: (presentity, watcher,
    /// package, decision, seconds left), then the watchers on other
    /// networks with `0` seconds (they do not expire).
    pub fn subscriptions(&self, now: u64) -> Vec<(String, String, &'static str, Decision, u64)> {
        let state = self.state();
        let mut out: Vec<_> = state
            .subscriptions
            .values()
            .map(|s| {
                (
                    s.presentity.to_string(),
                    s.dialog.texts.get(Part::Watcher).to_string(),
                    match s.package {
                        Package::Presence => "presence",
                        Package::Winfo => "presence.winfo",
                    },
                    s.decision,
                    s.expires_at.saturating_sub(now),
                )
            })
            .collect();
        for (presentity, watchers) in &state.external {
            for (watcher, d) in watchers {
                out.push((presentity.clone(), watcher.clone(), "presence", *d, 0));
            }
        }
        out.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        out
    }

    /// Ends everything of the user `aor` (removed by the operator): its
    /// watchers are told `terminated;reason=noresource`, its own
    /// subscriptions `terminated;reason=deactivated` (RFC 6665 §4.1.3),
    /// and its publications go, all with the next sweep (within a
    /// second). Returns how many subscriptions end.
    pub fn end_user(&self, aor: &str) -> usize {
        let mut state = self.state();
        let n = state
            .subscriptions
            .values()
            .filter(|s| &*s.presentity == aor || s.dialog.texts.get(Part::Watcher) == aor)
            .count();
        state.ending.push(aor.to_string());
        n
    }

    /// The presentities watched here or published for on other nodes
    /// (what a resync reads again).
    pub fn followed(&self) -> Vec<String> {
        let state = self.state();
        let mut out: Vec<String> = state
            .watchers
            .keys()
            .map(|(p, _)| p.clone())
            .chain(state.remote.keys().cloned())
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// How many subscriptions are active.
    pub fn subscription_count(&self) -> usize {
        self.state().subscriptions.len()
    }

    /// The composed document of a presentity (`user@domain`), or a closed
    /// one without publications.
    pub fn document(&self, presentity: &str) -> Document {
        compose(&self.state(), presentity)
    }

    /// What `watcher` may see of `presentity`: its own rule, else the
    /// presentity's rule for everyone, else the default policy.
    fn decide(&self, state: &State, core: &Core, presentity: &str, watcher: &str) -> Decision {
        if presentity.eq_ignore_ascii_case(watcher) {
            return Decision::Allow;
        }
        // A presentity of another network: its network decides (RFC 7248
        // §4: pending until it answers the subscription request).
        if !presentity
            .rsplit_once('@')
            .is_some_and(|(_, d)| core.is_local_domain(d))
        {
            return state
                .foreign
                .get(&(presentity.to_string(), watcher.to_string()))
                .copied()
                .unwrap_or(Decision::Pending);
        }
        let rule = |w: &str| {
            state
                .rules
                .get(&(presentity.to_string(), w.to_string()))
                .copied()
        };
        if let Some(d) = rule(watcher).or_else(|| rule("*")) {
            return d;
        }
        let local = watcher
            .rsplit_once('@')
            .is_some_and(|(_, d)| core.is_local_domain(d));
        match self.config.get().default_policy {
            DefaultPolicy::Allow => Decision::Allow,
            DefaultPolicy::Local if local => Decision::Allow,
            DefaultPolicy::Local | DefaultPolicy::Pending => Decision::Pending,
        }
    }
}

impl State {
    fn dialog_hash(&self, id: &DialogId) -> u64 {
        use std::hash::BuildHasher;
        self.dialog_seed
            .hash_one((id.0.as_str(), id.1.as_str(), id.2.as_str()))
    }
}

/// The subscription of a dialog.
fn find(state: &State, id: &DialogId) -> Option<SubId> {
    let h = state.dialog_hash(id);
    if let Some(&sub) = state.by_dialog.get(&h) {
        let t = &state.subscriptions.get(&sub)?.dialog.texts;
        if t.get(Part::CallId) == id.0
            && t.get(Part::LocalTag) == id.1
            && t.get(Part::RemoteTag) == id.2
        {
            return Some(sub);
        }
    }
    state.collided.get(id).copied()
}

fn index_dialog(state: &mut State, key: DialogId, sub: SubId) {
    let h = state.dialog_hash(&key);
    match state.by_dialog.entry(h) {
        std::collections::hash_map::Entry::Occupied(_) => {
            state.collided.insert(key, sub);
        }
        std::collections::hash_map::Entry::Vacant(slot) => {
            slot.insert(sub);
        }
    }
}

fn compose(state: &State, presentity: &str) -> Document {
    let entity = format!("pres:{presentity}");
    let local = state.publications.get(presentity).into_iter().flatten();
    let remote = state.remote.get(presentity).into_iter().flatten();
    let documents: Vec<&Document> = local
        .map(|p| &p.document)
        .chain(remote.map(|(_, d, _)| d))
        .collect();
    match state.publications.get(presentity) {
        _ if !documents.is_empty() => Document::compose(&entity, documents),
        // A suspended device is asleep, not gone: a request wakes it.
        _ if state.pushable.contains_key(presentity) => {
            Document::open_with_note(&entity, PUSH_NOTE)
        }
        _ => Document::closed(&entity),
    }
}

/// The note of a presentity shown open because a device can be woken.
pub const PUSH_NOTE: &str = "Reachable (device asleep; wakes for messages)";

/// The registrar's word on `presentity`'s devices: `until` is when its
/// last binding a push can wake expires (None: it has none). Watchers are
/// told when that changes what they see.
pub async fn set_pushable(core: &Core, sip: &Sip, presentity: &str, until: Option<u64>) {
    let now = now_secs();
    let out = {
        let mut state = core.presence.state();
        let before = compose(&state, presentity);
        match until {
            Some(t) if t > now => {
                state.pushable.insert(presentity.to_string(), t);
            }
            _ => {
                state.pushable.remove(presentity);
            }
        }
        if compose(&state, presentity) != before {
            notifications(core, &mut state, presentity, now)
        } else {
            Vec::new()
        }
    };
    send_all(core, sip, out).await;
}

/// The Event package of a request, when it is one the agent serves.
fn event(msg: &Message) -> Result<(Package, Option<String>), &'static str> {
    let raw = msg
        .headers()
        .get(HeaderName::Event)
        .ok_or("no Event header")?;
    let ev = TokenParams::parse(raw, "Event").map_err(|_| "malformed Event header")?;
    let package = if ev.token.eq_ignore_ascii_case("presence") {
        Package::Presence
    } else if ev.token.eq_ignore_ascii_case("presence.winfo") {
        Package::Winfo
    } else {
        return Err("event package not served");
    };
    Ok((package, ev.params.value("id").map(|v| v.into_owned())))
}

/// The requested Expires, bounded; Err(()) when below the minimum.
fn expires(msg: &Message, config: &PresenceConfig) -> Result<u32, Option<String>> {
    let asked = match msg.headers().get(HeaderName::Expires) {
        Some(v) => parse_delta(v, "Expires").map_err(|e| Some(e.to_string()))?,
        None => config.default_expires,
    };
    if asked != 0 && asked < config.min_expires {
        return Err(None);
    }
    Ok(asked.min(config.max_expires))
}

/// The Expires of a SUBSCRIBE or PUBLISH, bounded; None when it was
/// refused (400 for a malformed one, 423 with Min-Expires for a short one).
async fn checked_expires(agent: &PresenceAgent, inc: &mut Incoming) -> Option<u32> {
    match expires(&inc.message, &agent.config.get()) {
        Ok(e) => Some(e),
        Err(Some(reason)) => {
            inc.responder.reply(400, &reason, &[]).await;
            None
        }
        Err(None) => {
            let min = agent.config.get().min_expires.to_string();
            inc.responder
                .reply(423, "Interval Too Brief", &[("Min-Expires", min)])
                .await;
            None
        }
    }
}

/// The presentity a request addresses: `user@domain` of a local
/// Request-URI with a user part.
fn presentity(core: &Core, msg: &Message) -> Option<String> {
    let uri = msg.request_uri()?.ok()?;
    let sip = uri.as_sip()?;
    let user = sip.user?;
    if !core.is_local(&sip.host, sip.port) {
        return None;
    }
    // A GRUU names one device, not the presentity (RFC 5627 §8.4.1): the
    // request goes to that device.
    if sip.params.get("gr").is_some() {
        return None;
    }
    let (aor, _) = proxy::local_aor(core, user, &sip.host);
    Some(aor)
}

/// True when the request is for the presence agent: PUBLISH or
/// SUBSCRIBE to a local user, or a SUBSCRIBE inside a dialog the agent
/// holds.
pub fn serves(core: &Core, msg: &Message) -> bool {
    use crate::proto::sip::Method;
    match msg.method() {
        Some(Method::Publish) => presentity(core, msg).is_some(),
        // Other event packages go to the user's agents, as a proxy does.
        Some(Method::Subscribe) if event(msg).is_err() => false,
        Some(Method::Subscribe) => {
            presentity(core, msg).is_some()
                || (to_tag(msg).is_some()
                    && (names_agent(core, msg)
                        || dialog_id(msg)
                            .is_some_and(|id| find(&core.presence.state(), &id).is_some())))
        }
        _ => false,
    }
}

/// True when the Request-URI is Parley itself (no user part): the
/// Contact the agent gives its dialogs.
fn names_agent(core: &Core, msg: &Message) -> bool {
    msg.request_uri()
        .and_then(Result::ok)
        .and_then(|u| {
            u.as_sip()
                .map(|s| s.user.is_none() && core.is_local(&s.host, s.port))
        })
        .unwrap_or(false)
}

fn to_tag(msg: &Message) -> Option<String> {
    msg.to()?.ok()?.tag().map(str::to_string)
}

fn dialog_id(msg: &Message) -> Option<DialogId> {
    let call_id = String::from_utf8_lossy(msg.call_id()?).into_owned();
    let local = to_tag(msg)?;
    let remote = msg.from()?.ok()?.tag()?.to_string();
    Some((call_id, local, remote))
}

/// 489 for an event package the agent does not serve (RFC 6665 §8.3.2),
/// with the ones it does.
async fn bad_event(inc: &mut Incoming, reason: &str) {
    inc.responder
        .reply(
            489,
            &format!("Bad Event ({reason})"),
            &[("Allow-Events", EVENTS.into())],
        )
        .await
}

/// PUBLISH (RFC 3903 §6).
pub async fn publish(core: &Core, sip: &Sip, mut inc: Incoming) {
    let msg = &inc.message;
    let Some(presentity) = presentity(core, msg) else {
        return inc.responder.reply(404, "Not Found", &[]).await;
    };
    if let Err(reason) = event(msg).and_then(|(p, _)| {
        if p == Package::Presence {
            Ok(())
        } else {
            Err("only presence is published")
        }
    }) {
        return bad_event(&mut inc, reason).await;
    }
    // Only the presentity publishes its own state.
    let mut copy = inc.message.clone();
    let Some(sender) = super::auth::authenticate(core, &mut copy, &mut inc, now_secs()).await
    else {
        return;
    };
    let publisher = format!("{}@{}", sender.user.unwrap_or_default(), sender.domain);
    if !sender.authenticated || !publisher.eq_ignore_ascii_case(&presentity) {
        return inc
            .responder
            .reply(403, "Only the presentity publishes its presence", &[])
            .await;
    }
    let agent = &core.presence;
    let Some(expires) = checked_expires(agent, &mut inc).await else {
        return;
    };
    let msg = &inc.message;
    let if_match = msg
        .headers()
        .get(HeaderName::SipIfMatch)
        .map(|v| String::from_utf8_lossy(v).trim().to_string());
    let body = msg.body();
    let document = if body.is_empty() {
        None
    } else {
        let is_pidf = msg.content_type().and_then(Result::ok).is_some_and(|ct| {
            ct.kind.eq_ignore_ascii_case("application")
                && ct.subtype.eq_ignore_ascii_case("pidf+xml")
        });
        if !is_pidf {
            return inc
                .responder
                .reply(
                    415,
                    "Unsupported Media Type",
                    &[("Accept", pidf::CONTENT_TYPE.into())],
                )
                .await;
        }
        match Document::parse(body, &agent.limits) {
            Ok(d) => Some(d),
            Err(e) => {
                return inc
                    .responder
                    .reply(400, &format!("Bad PIDF: {e}"), &[])
                    .await
            }
        }
    };
    let now = now_secs();
    let outcome = {
        let mut state = agent.state();
        apply_publish(
            core,
            &mut state,
            &presentity,
            if_match.as_deref(),
            document,
            expires,
            now,
        )
    };
    let (etag, notify) = match outcome {
        Ok(o) => o,
        Err(r) => return super::reject(&mut inc, &r, &presentity).await,
    };
    let mut extra = vec![("Expires", expires.to_string())];
    if !etag.is_empty() {
        extra.push(("SIP-ETag", etag));
    }
    inc.responder.reply(200, "OK", &extra).await;
    send_all(core, sip, notify).await;
    share(core, &presentity);
}

/// In a cluster: what `presentity` published on this node, composed, for
/// the watchers on the other nodes (or nothing, when it has no
/// publication here any more). Written off the request path.
fn share(core: &Core, presentity: &str) {
    let (Some((node, _)), Some(store)) = (&core.cluster, &core.presence.store) else {
        return;
    };
    let local = {
        let state = core.presence.state();
        state
            .publications
            .get(presentity)
            .filter(|l| !l.is_empty())
            .map(|list| {
                let entity = format!("pres:{presentity}");
                let expires = list.iter().map(|p| p.expires_at).max().unwrap_or(0);
                (
                    Document::compose(&entity, list.iter().map(|p| &p.document)).to_xml(),
                    i64::try_from(expires).unwrap_or(i64::MAX),
                )
            })
    };
    let (store, node, presentity) = (store.clone(), node.clone(), presentity.to_string());
    tokio::spawn(async move {
        let document = local.as_ref().map(|(d, e)| (d.as_str(), *e));
        if let Err(e) = store
            .put_presence_document(&presentity, &node, document)
            .await
        {
            warn!(error = %e, %presentity, "presence not shared with the other nodes");
        }
    });
}

/// Another node of the cluster published for `presentity`: `rows` are
/// every node's documents (this node's own are skipped). Watchers here
/// are told when what they see changes.
pub async fn remote_changed(
    core: &Core,
    sip: &Sip,
    presentity: &str,
    rows: Vec<(String, String, i64)>,
) {
    let Some((own, _)) = &core.cluster else {
        return;
    };
    let agent = &core.presence;
    let now = now_secs();
    let documents: Vec<(String, Document, u64)> = rows
        .into_iter()
        .filter(|(node, _, expires)| node != own && *expires > now as i64)
        .filter_map(|(node, xml, expires)| {
            let doc = Document::parse(xml.as_bytes(), &agent.limits).ok()?;
            Some((node, doc, u64::try_from(expires).ok()?))
        })
        .collect();
    let out = {
        let mut state = agent.state();
        let before = compose(&state, presentity);
        if documents.is_empty() {
            state.remote.remove(presentity);
        } else {
            state.remote.insert(presentity.to_string(), documents);
        }
        if compose(&state, presentity) != before {
            notifications(core, &mut state, presentity, now)
        } else {
            Vec::new()
        }
    };
    send_all(core, sip, out).await;
}

/// Applies one PUBLISH to the state: the new entity tag (empty after a
/// removal) and the NOTIFYs the change calls for, or the refusal.
fn apply_publish(
    core: &Core,
    state: &mut State,
    presentity: &str,
    if_match: Option<&str>,
    document: Option<Document>,
    expires: u32,
    now: u64,
) -> Result<(String, Vec<Outgoing>), Rejection> {
    let agent = &core.presence;
    let before = compose(state, presentity);
    let list = state
        .publications
        .entry(presentity.to_string())
        .or_default();
    let etag = match if_match {
        None => {
            // Initial publication: a body is required (§6 step 4).
            let Some(document) = document else {
                return Err(Rejection::new(400, "PUBLISH without a body"));
            };
            if expires == 0 {
                return Err(Rejection::new(400, "Initial PUBLISH with Expires 0"));
            }
            let etag = agent.token();
            list.push(Publication {
                etag: etag.clone(),
                document,
                expires_at: now + u64::from(expires),
            });
            etag
        }
        Some(tag) => {
            let Some(at) = list.iter().position(|p| p.etag == tag) else {
                if list.is_empty() {
                    state.publications.remove(presentity);
                }
                return Err(Rejection::new(412, "Conditional Request Failed"));
            };
            if expires == 0 {
                list.remove(at);
                String::new()
            } else {
                // Refresh, or modify with a body; a new tag either way
                // (§6 step 7). A modified publication becomes the newest.
                let mut p = list.remove(at);
                if let Some(d) = document {
                    p.document = d;
                }
                p.etag = agent.token();
                p.expires_at = now + u64::from(expires);
                let etag = p.etag.clone();
                list.push(p);
                etag
            }
        }
    };
    if list.is_empty() {
        state.publications.remove(presentity);
    }
    let after = compose(state, presentity);
    let notify = if after != before {
        notifications(core, state, presentity, now)
    } else {
        Vec::new()
    };
    Ok((etag, notify))
}

/// SUBSCRIBE (RFC 6665 §4.2, RFC 3856 §6, RFC 3857 §5).
pub async fn subscribe(core: &Core, sip: &Sip, inc: Incoming) {
    subscribe_to(core, sip, inc, None, &mut false).await;
}

async fn subscribe_to(
    core: &Core,
    sip: &Sip,
    mut inc: Incoming,
    foreign: Option<(String, super::auth::Sender)>,
    made: &mut bool,
) {
    let (foreign, checked) = match foreign {
        Some((presentity, sender)) => (Some(presentity), Some(sender)),
        None => (None, None),
    };
    let agent = &core.presence;
    let (package, event_id) = match event(&inc.message) {
        Ok(e) => e,
        Err(reason) => return bad_event(&mut inc, reason).await,
    };
    let Some(expires) = checked_expires(agent, &mut inc).await else {
        return;
    };
    let now = now_secs();
    let contact = our_contact(core, inc.transport);
    if to_tag(&inc.message).is_some() {
        // A refresh or an unsubscribe inside the dialog.
        let Some(dialog) = dialog_id(&inc.message) else {
            return inc
                .responder
                .reply(481, "Subscription does not exist", &[])
                .await;
        };
        let notify = {
            let mut state = agent.state();
            let id = find(&state, &dialog).unwrap_or(0);
            match state.subscriptions.get_mut(&id) {
                Some(sub) => {
                    // Still waiting for a rule: a watcher of another domain
                    // keeps coming back soon.
                    let expires = if sub.outside && sub.decision == Decision::Pending {
                        expires.min(agent.config.get().pending_expires)
                    } else {
                        expires
                    };
                    sub.expires_at = now + u64::from(expires);
                    if let Some(c) = contact_uri(&inc.message) {
                        if sub.dialog.texts.get(Part::RemoteTarget) != c {
                            sub.dialog.texts = sub.dialog.texts.with(Part::RemoteTarget, &c);
                        }
                    }
                    let (presentity, package) = (sub.presentity.to_string(), sub.package);
                    let mut out: Vec<Outgoing> = notify_one(core, &mut state, id, now, None, None)
                        .into_iter()
                        .collect();
                    if expires == 0 && package == Package::Presence {
                        out.extend(winfo_notifications(core, &mut state, &presentity, now));
                    }
                    Some((out, expires))
                }
                None => None,
            }
        };
        let Some((notify, expires)) = notify else {
            return inc
                .responder
                .reply(481, "Subscription does not exist", &[])
                .await;
        };
        // The dialog's To tag is already in the request.
        let tag = to_tag(&inc.message).unwrap_or_default();
        return accept(core, sip, &mut inc, &tag, expires, contact, notify).await;
    }

    let is_foreign = foreign.is_some();
    let Some(presentity) = foreign.or_else(|| presentity(core, &inc.message)) else {
        return inc.responder.reply(404, "Not Found", &[]).await;
    };
    let (user, domain) = presentity.split_once('@').unwrap_or((&presentity, ""));
    if !is_foreign && core.auth.user(user, domain).await.is_none() {
        return inc.responder.reply(404, "Not Found", &[]).await;
    }
    if is_foreign && package == Package::Winfo {
        return inc
            .responder
            .reply(403, "Watcher information of another network", &[])
            .await;
    }
    // A watcher of a local domain proves who it is; one of another domain
    // is who its server (and the RFC 5922 check) says it is.
    let sender = match checked {
        Some(s) => s,
        None => {
            let mut copy = inc.message.clone();
            let Some(s) = super::auth::authenticate(core, &mut copy, &mut inc, now).await else {
                return;
            };
            s
        }
    };
    let watcher = format!(
        "{}@{}",
        sender.user.clone().unwrap_or_default(),
        sender.domain
    );
    let msg = &inc.message;
    let (Some(call_id), Some(Ok(from)), Some(Ok(to))) = (msg.call_id(), msg.from(), msg.to())
    else {
        return inc
            .responder
            .reply(400, "Missing dialog headers", &[])
            .await;
    };
    let Some(remote_tag) = from.tag() else {
        return inc.responder.reply(400, "From has no tag", &[]).await;
    };
    let Some(remote_target) = contact_uri(msg) else {
        return inc
            .responder
            .reply(400, "SUBSCRIBE without a Contact", &[])
            .await;
    };
    let local_tag = agent.token();
    let call_id = String::from_utf8_lossy(call_id).into_owned();
    let dialog = Dialog {
        texts: Texts::new([
            &call_id,
            &local_tag,
            remote_tag,
            &String::from_utf8_lossy(to.uri_raw),
            &String::from_utf8_lossy(from.uri_raw),
            &remote_target,
            &watcher,
        ]),
        route_set: msg
            .headers()
            .values(HeaderName::RecordRoute)
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .collect(),
        local_cseq: 0,
        source: inc.source,
        transport: inc.transport,
    };
    let dialog_key: DialogId = (call_id, local_tag.clone(), remote_tag.to_string());
    let notify = {
        let mut state = agent.state();
        let decision = match package {
            // Only the presentity watches its own watchers.
            Package::Winfo if sender.authenticated && watcher.eq_ignore_ascii_case(&presentity) => {
                Decision::Allow
            }
            Package::Winfo => Decision::Deny,
            Package::Presence => agent.decide(&state, core, &presentity, &watcher),
        };
        let outside = !core.is_local_domain(&sender.domain);
        let pending_outside = outside && decision == Decision::Pending;
        let cap = cap_reached(
            &state,
            &agent.config.get(),
            &presentity,
            &sender.domain,
            inc.source.ip(),
            pending_outside,
        );
        if let Some(cap) = cap {
            Err(cap)
        } else if decision == Decision::Deny {
            Ok(None)
        } else {
            state.next_id += 1;
            let id = state.next_id;
            index_dialog(&mut state, dialog_key, id);
            let (shared, set) = state
                .watchers
                .entry((presentity.clone(), package))
                .or_insert_with(|| (Arc::from(presentity.as_str()), HashSet::new()));
            set.insert(id);
            let shared = shared.clone();
            // A watcher of another domain that waits for a rule must come
            // back soon: its subscription is not kept for hours.
            let expires = if pending_outside {
                expires.min(agent.config.get().pending_expires)
            } else {
                expires
            };
            let sub = Subscription {
                presentity: shared,
                package,
                event_id: event_id.map(String::into_boxed_str),
                dialog,
                expires_at: now + u64::from(expires),
                decision,
                version: 0,
                outside,
            };
            account(&mut state, &sub, true);
            state.subscriptions.insert(id, sub);
            // RFC 6665 §4.2.1.4: a NOTIFY right after the 200, also for a
            // fetch (Expires 0), which then ends the subscription.
            let mut out: Vec<Outgoing> = notify_one(core, &mut state, id, now, None, None)
                .into_iter()
                .collect();
            if package == Package::Presence {
                out.extend(winfo_notifications(core, &mut state, &presentity, now));
            }
            *made = expires > 0;
            Ok(Some((out, expires)))
        }
    };
    let (notify, expires) = match notify {
        Ok(Some(n)) => n,
        Ok(None) => {
            return inc
                .responder
                .reply(403, "Forbidden (not allowed to watch)", &[])
                .await
        }
        Err(cap) => {
            metrics::counter!("parley_caps_reached_total", "cap" => cap).increment(1);
            tracing::info!(%presentity, %watcher, cap, "subscription refused: cap reached");
            return inc
                .responder
                .reply(
                    503,
                    &format!("Service Unavailable (limit of {cap} reached)"),
                    &[("Retry-After", "60".to_string())],
                )
                .await;
        }
    };
    accept(core, sip, &mut inc, &local_tag, expires, contact, notify).await;
}

/// The 200 to a SUBSCRIBE (with the dialog's tag, its Expires and
/// Parley's Contact), then the NOTIFYs it causes, in that order
/// (RFC 6665 §4.2.1.4).
async fn accept(
    core: &Core,
    sip: &Sip,
    inc: &mut Incoming,
    tag: &str,
    expires: u32,
    contact: String,
    notify: Vec<Outgoing>,
) {
    inc.responder
        .reply_with_tag(
            200,
            "OK",
            tag,
            &[("Expires", expires.to_string()), ("Contact", contact)],
        )
        .await;
    send_all(core, sip, notify).await;
}

/// Ends expired subscriptions and publications, applies changed rules;
/// sends what that changes.
pub async fn sweep(core: &Core, sip: &Sip) {
    let now = now_secs();
    let agent = &core.presence;
    // Rules changed in the store (by `parley presence`): reload them.
    let mut reloaded = None;
    if let Some(store) = &agent.store {
        if let Ok(version) = store.presence_rules_version().await {
            if agent.state().rules_version != Some(version) {
                if let Ok(rows) = store.presence_rules().await {
                    reloaded = Some((version, rows));
                }
            }
        }
    }
    let changed_here: Vec<String>;
    let out = {
        let mut state = agent.state();
        let mut out = Vec::new();
        if let Some((version, rows)) = reloaded {
            state.rules = rows
                .into_iter()
                .filter_map(|(p, w, d)| Decision::parse(&d).map(|d| ((p, w), d)))
                .collect();
            state.rules_version = Some(version);
            out.extend(apply_rules(core, &mut state, now));
        }
        for aor in std::mem::take(&mut state.ending) {
            state.publications.remove(&aor);
            state.pushable.remove(&aor);
            let ending: Vec<(SubId, &'static str)> = state
                .subscriptions
                .iter()
                .filter_map(|(id, s)| {
                    if *s.presentity == *aor {
                        Some((*id, "noresource"))
                    } else if s.dialog.texts.get(Part::Watcher) == aor {
                        Some((*id, "deactivated"))
                    } else {
                        None
                    }
                })
                .collect();
            for (id, reason) in ending {
                out.extend(notify_one(core, &mut state, id, now, Some(reason), None));
            }
        }
        let expired: Vec<String> = state
            .publications
            .iter_mut()
            .filter_map(|(who, list)| {
                let n = list.len();
                list.retain(|p| p.expires_at > now);
                (list.len() != n).then(|| who.clone())
            })
            .collect();
        state.publications.retain(|_, l| !l.is_empty());
        let mut expired = expired;
        let asleep_gone: Vec<String> = state
            .pushable
            .iter()
            .filter(|(_, until)| **until <= now)
            .map(|(who, _)| who.clone())
            .collect();
        for who in asleep_gone {
            state.pushable.remove(&who);
            expired.push(who);
        }
        // Documents of other nodes past their expiry (a node that died
        // does not take its own away).
        let mut remote_gone = Vec::new();
        state.remote.retain(|who, list| {
            let n = list.len();
            list.retain(|(_, _, until)| *until > now);
            if list.len() != n {
                remote_gone.push(who.clone());
            }
            !list.is_empty()
        });
        expired.extend(remote_gone);
        for who in &expired {
            out.extend(notifications(core, &mut state, who, now));
        }
        changed_here = expired;
        let ended: Vec<(SubId, String, Package)> = state
            .subscriptions
            .iter()
            .filter(|(_, s)| s.expires_at <= now)
            .map(|(id, s)| (*id, s.presentity.to_string(), s.package))
            .collect();
        for (id, presentity, package) in ended {
            out.extend(notify_one(core, &mut state, id, now, None, None));
            if package == Package::Presence {
                out.extend(winfo_notifications(core, &mut state, &presentity, now));
            }
        }
        out
    };
    send_all(core, sip, out).await;
    for who in &changed_here {
        share(core, who);
    }
}

/// Decides every presence subscription again under new rules: a watcher
/// now denied is told `terminated;reason=rejected`; one whose decision
/// changed otherwise gets a NOTIFY with what it may now see.
fn apply_rules(core: &Core, state: &mut State, now: u64) -> Vec<Outgoing> {
    let agent = &core.presence;
    let mut changed: Vec<(SubId, Decision, String)> = Vec::new();
    for (id, sub) in &state.subscriptions {
        if sub.package != Package::Presence {
            continue;
        }
        let d = agent.decide(
            state,
            core,
            &sub.presentity,
            sub.dialog.texts.get(Part::Watcher),
        );
        if d != sub.decision {
            changed.push((*id, d, sub.presentity.to_string()));
        }
    }
    let mut out = Vec::new();
    let mut presentities: Vec<String> = Vec::new();
    for (id, decision, presentity) in changed {
        if decision == Decision::Deny {
            out.extend(notify_one(core, state, id, now, Some("rejected"), None));
        } else {
            if let Some(mut sub) = state.subscriptions.remove(&id) {
                account(state, &sub, false);
                sub.decision = decision;
                account(state, &sub, true);
                state.subscriptions.insert(id, sub);
            }
            out.extend(notify_one(core, state, id, now, None, None));
        }
        if !presentities.contains(&presentity) {
            presentities.push(presentity);
        }
    }
    for p in presentities {
        out.extend(winfo_notifications(core, state, &p, now));
    }
    let mut external_changed = Vec::new();
    for (presentity, watchers) in &state.external {
        for (watcher, decision) in watchers {
            let d = agent.decide(state, core, presentity, watcher);
            if d != *decision {
                external_changed.push((presentity.clone(), watcher.clone(), d));
            }
        }
    }
    for (presentity, watcher, d) in external_changed {
        if let Some(w) = state.external.get_mut(&presentity) {
            w.insert(watcher.clone(), d);
        }
        let notice = match d {
            Decision::Allow => ExternalNotice::Allowed {
                document: compose(state, &presentity),
                presentity,
                watcher,
            },
            _ => ExternalNotice::Revoked {
                presentity,
                watcher,
            },
        };
        state.external_out.push(notice);
    }
    out
}

/// A NOTIFY for every presence watcher of `presentity` allowed to see
/// its state (pending and blocked watchers see no change). The document
/// is composed and printed once for all of them.
fn notifications(core: &Core, state: &mut State, presentity: &str, now: u64) -> Vec<Outgoing> {
    let document = compose(state, presentity);
    if let Some(watchers) = state.external.get(presentity) {
        let notices: Vec<ExternalNotice> = watchers
            .iter()
            .filter(|(_, d)| **d == Decision::Allow)
            .map(|(w, _)| ExternalNotice::State {
                presentity: presentity.to_string(),
                watcher: w.clone(),
                document: document.clone(),
            })
            .collect();
        state.external_out.extend(notices);
    }
    let body = document.to_xml();
    watchers_of(state, presentity, Package::Presence)
        .into_iter()
        .filter(|id| {
            state
                .subscriptions
                .get(id)
                .is_some_and(|s| s.decision == Decision::Allow)
        })
        .collect::<Vec<_>>()
        .into_iter()
        .filter_map(|id| notify_one(core, state, id, now, None, Some(&body)))
        .collect()
}

/// A NOTIFY for every watcher-info subscriber of `presentity`.
fn winfo_notifications(
    core: &Core,
    state: &mut State,
    presentity: &str,
    now: u64,
) -> Vec<Outgoing> {
    watchers_of(state, presentity, Package::Winfo)
        .into_iter()
        .filter_map(|id| notify_one(core, state, id, now, None, None))
        .collect()
}

fn watchers_of(state: &State, presentity: &str, package: Package) -> Vec<SubId> {
    state
        .watchers
        .get(&(presentity.to_string(), package))
        .map(|(_, ids)| ids.iter().copied().collect())
        .unwrap_or_default()
}

/// The NOTIFY for one subscription with what it may see now. One past its
/// expiry gets `terminated;reason=timeout`, one given `reason`
/// `terminated;reason=…`; either is then removed.
fn notify_one(
    core: &Core,
    state: &mut State,
    id: SubId,
    now: u64,
    reason: Option<&str>,
    composed: Option<&str>,
) -> Option<Outgoing> {
    let (body, content_type) = {
        let sub = state.subscriptions.get(&id)?;
        match (sub.package, sub.decision) {
            (Package::Presence, Decision::Allow) if composed.is_some() => {
                (composed.unwrap_or_default().to_string(), pidf::CONTENT_TYPE)
            }
            (Package::Winfo, _) => (
                watcherinfo(state, &sub.presentity, sub.version),
                "application/watcherinfo+xml",
            ),
            (Package::Presence, Decision::Allow) => {
                (compose(state, &sub.presentity).to_xml(), pidf::CONTENT_TYPE)
            }
            // Pending and politely blocked watchers see a neutral "closed".
            (Package::Presence, _) => (
                Document::closed(&format!("pres:{}", sub.presentity)).to_xml(),
                pidf::CONTENT_TYPE,
            ),
        }
    };
    let sub = state.subscriptions.get_mut(&id)?;
    let remaining = sub.expires_at.saturating_sub(now);
    let ended = remaining == 0 || reason.is_some();
    sub.dialog.local_cseq += 1;
    sub.version += 1;
    let substate = match (reason, remaining, sub.decision) {
        (Some(r), ..) => format!("terminated;reason={r}"),
        (None, 0, _) => "terminated;reason=timeout".to_string(),
        (None, _, Decision::Pending) => format!("pending;expires={remaining}"),
        (None, _, _) => format!("active;expires={remaining}"),
    };
    let request = notify_request(core, sub, &substate, content_type, &body)?;
    let target = notify_target(core, &sub.dialog)?;
    if ended {
        remove(state, id);
    }
    Some(Outgoing {
        id,
        request,
        target,
    })
}

/// The watcher-info document of a presentity (RFC 3858), always full
/// state: every presence subscription with its status.
fn watcherinfo(state: &State, presentity: &str, version: u32) -> String {
    use crate::proto::xml::{self, Element};
    let mut list = Element::new(NS_WATCHERINFO, "watcher-list")
        .with_attr("", "resource", &format!("sip:{presentity}"))
        .with_attr("", "package", "presence");
    for id in watchers_of(state, presentity, Package::Presence) {
        let Some(sub) = state.subscriptions.get(&id) else {
            continue;
        };
        let status = if sub.decision == Decision::Pending {
            "pending"
        } else {
            "active"
        };
        list = list.with_child(
            Element::new(NS_WATCHERINFO, "watcher")
                .with_attr("", "id", sub.dialog.texts.get(Part::LocalTag))
                .with_attr("", "event", "subscribe")
                .with_attr("", "status", status)
                .with_text(sub.dialog.texts.get(Part::RemoteUri)),
        );
    }
    let root = Element::new(NS_WATCHERINFO, "watcherinfo")
        .with_attr("", "version", &version.to_string())
        .with_attr("", "state", "full")
        .with_child(list);
    xml::write(&root, &[])
}

fn remove(state: &mut State, id: SubId) {
    let Some(sub) = state.subscriptions.remove(&id) else {
        return;
    };
    account(state, &sub, false);
    let t = &sub.dialog.texts;
    let key: DialogId = (
        t.get(Part::CallId).to_string(),
        t.get(Part::LocalTag).to_string(),
        t.get(Part::RemoteTag).to_string(),
    );
    if state.collided.remove(&key).is_none() {
        let h = state.dialog_hash(&key);
        if state.by_dialog.get(&h) == Some(&id) {
            state.by_dialog.remove(&h);
        }
    }
    let key = (sub.presentity.to_string(), sub.package);
    if let Some((_, set)) = state.watchers.get_mut(&key) {
        set.remove(&id);
        if set.is_empty() {
            state.watchers.remove(&key);
        }
    }
}

fn notify_request(
    core: &Core,
    sub: &Subscription,
    substate: &str,
    content_type: &str,
    body: &str,
) -> Option<Message> {
    let d = &sub.dialog;
    let t = &d.texts;
    let package = match sub.package {
        Package::Presence => "presence",
        Package::Winfo => "presence.winfo",
    };
    let event = match &sub.event_id {
        Some(id) => format!("{package};id={id}"),
        None => package.to_string(),
    };
    RequestBuilder::new("NOTIFY", t.get(Part::RemoteTarget))
        .headers("Route", &d.route_set)
        .header(
            "From",
            &format!("<{}>;tag={}", t.get(Part::LocalUri), t.get(Part::LocalTag)),
        )
        .header(
            "To",
            &format!(
                "<{}>;tag={}",
                t.get(Part::RemoteUri),
                t.get(Part::RemoteTag)
            ),
        )
        .header("Call-ID", t.get(Part::CallId))
        .header("CSeq", &format!("{} NOTIFY", d.local_cseq))
        .header("Max-Forwards", "70")
        .header("Contact", &our_contact(core, d.transport))
        .header("Event", &event)
        .header("Subscription-State", substate)
        .body(content_type, body.as_bytes())
        .map_err(|e| debug!(error = %e, "NOTIFY not made"))
        .ok()
}

/// Where a NOTIFY goes: the first Route of the route set, else the
/// remote target; a target Parley cannot resolve goes back where the
/// SUBSCRIBE came from.
fn notify_target(core: &Core, d: &Dialog) -> Option<Target> {
    if let Some(first) = d.route_set.first() {
        if let Some(t) = super::targets::route_target(first.as_bytes(), d.transport) {
            return Some(t);
        }
    }
    let uri = crate::proto::sip::Uri::parse(d.texts.get(Part::RemoteTarget).as_bytes()).ok();
    let from_uri = uri
        .as_ref()
        .and_then(|u| u.as_sip())
        .and_then(|s| super::targets::address_target(s, d.transport));
    let _ = core;
    Some(from_uri.unwrap_or_else(|| Target::new(d.transport, d.source)))
}

/// Sends NOTIFYs; a subscriber that answers 481 (or cannot be reached)
/// loses its subscription (RFC 6665 §4.2.2).
async fn send_all(core: &Core, sip: &Sip, out: Vec<Outgoing>) {
    let external = std::mem::take(&mut core.presence.state().external_out);
    for notice in external {
        super::bridge::presence_out(core, notice).await;
    }
    for o in out {
        let agent = Arc::downgrade(&core.presence);
        let id = o.id;
        let on_response: crate::net::OnResponse = Arc::new(move |m: Message| {
            let status = m.status().unwrap_or(0);
            if status == 481
                || status == 408
                || (status >= 300 && status != 401 && status != 407 && status < 500)
            {
                if let Some(agent) = agent.upgrade() {
                    let mut state = agent.state();
                    if state.subscriptions.contains_key(&id) {
                        debug!(status, "subscription ended by the subscriber");
                        remove(&mut state, id);
                    }
                }
            }
        });
        sip.request_with(o.request, &o.target, on_response, None)
            .await;
    }
}

/// Parley's Contact for a dialog over `transport`.
pub(crate) fn our_contact(core: &Core, transport: Transport) -> String {
    let listen = core
        .listen
        .iter()
        .find(|(t, _)| *t == transport)
        .or_else(|| core.listen.first());
    match listen {
        Some((t, a)) if *t == Transport::Udp => format!("<sip:{a}>"),
        Some((Transport::Tls, a)) => format!("<sips:{a}>"),
        Some((t, a)) => format!("<sip:{a};transport={t}>"),
        None => "<sip:parley.invalid>".to_string(),
    }
}

/// The URI of the first Contact.
fn contact_uri(msg: &Message) -> Option<String> {
    let raw = msg.headers().values(HeaderName::Contact).next()?;
    let first = crate::proto::sip::grammar::split_commas(raw).next()?;
    let na = crate::proto::sip::typed::NameAddr::parse(first, "Contact").ok()?;
    Some(String::from_utf8_lossy(na.uri_raw).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subscription(call_id: &str, local: &str, remote: &str) -> Subscription {
        Subscription {
            presentity: Arc::from("alice@localhost"),
            package: Package::Presence,
            event_id: None,
            dialog: Dialog {
                texts: Texts::new([
                    call_id,
                    local,
                    remote,
                    "sip:alice@localhost",
                    "sip:bob@localhost",
                    "sip:bob@127.0.0.1:5070",
                    "bob@localhost",
                ]),
                route_set: Vec::new(),
                local_cseq: 0,
                source: "127.0.0.1:5070".parse().unwrap(),
                transport: Transport::Udp,
            },
            expires_at: 0,
            decision: Decision::Allow,
            version: 0,
            outside: false,
        }
    }

    fn key(c: &str, l: &str, r: &str) -> DialogId {
        (c.to_string(), l.to_string(), r.to_string())
    }

    #[test]
    fn texts_keep_their_parts_apart() {
        let t = subscription("c1", "l1", "r1").dialog.texts;
        assert_eq!(t.get(Part::CallId), "c1");
        assert_eq!(t.get(Part::RemoteTag), "r1");
        assert_eq!(t.get(Part::Watcher), "bob@localhost");
        let moved = t.with(Part::RemoteTarget, "sip:bob@10.0.0.1");
        assert_eq!(moved.get(Part::RemoteTarget), "sip:bob@10.0.0.1");
        assert_eq!(moved.get(Part::RemoteUri), "sip:bob@localhost");
        assert_eq!(moved.get(Part::Watcher), "bob@localhost");
    }

    #[test]
    fn a_dialog_whose_hash_is_taken_is_still_found_and_removed() {
        let mut state = State::default();
        state.subscriptions.insert(1, subscription("a", "la", "ra"));
        index_dialog(&mut state, key("a", "la", "ra"), 1);
        // Dialog B's hash slot is taken by A, as a collision would do.
        let b = key("b", "lb", "rb");
        let hb = state.dialog_hash(&b);
        state.by_dialog.insert(hb, 1);
        state.subscriptions.insert(2, subscription("b", "lb", "rb"));
        index_dialog(&mut state, b.clone(), 2);
        assert_eq!(find(&state, &b), Some(2), "found through the collision map");
        assert_eq!(find(&state, &key("a", "la", "ra")), Some(1));
        assert_eq!(find(&state, &key("a", "la", "rX")), None);
        remove(&mut state, 2);
        assert_eq!(find(&state, &b), None);
        assert!(state.collided.is_empty());
        assert_eq!(find(&state, &key("a", "la", "ra")), Some(1));
    }
}
