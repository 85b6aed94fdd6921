//! Parley's IRC adapter: an IRC network appears as one more domain
//! (`bob@irc.example.com` is the nick `bob`). Each Parley user who talks
//! to the network gets an IRC connection of their own (a puppet), opened
//! on first use under a nick from the network's template and closed when
//! idle, so each person appears under their own nick. Private messages
//! map to and from neutral messages (RFC 2812 PRIVMSG; CTCP ACTION is
//! `/me`; NOTICE arrives as a headline, kept apart from PRIVMSG); long
//! text is cut into lines of at most 512 bytes on UTF-8 boundaries.
//!
//! The adapter depends on `parley-adapter` only: it never sees SIP.

#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

pub mod register;
pub mod text;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use irc_proto::{Command, Message as IrcMessage, Prefix, Response};
use parley_adapter::{
    Adapter, Address, Condition, Failure, Health, Hub, Inbound, Link, Message, MessageKind,
    Outbound, Peer, PeerAuth, Protocol, Security,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

/// A line from the server longer than this (IRCv3 tags included) is
/// dropped whole.
const MAX_INBOUND_LINE: usize = 8191 + text::MAX_LINE;

/// One IRC network.
#[derive(Clone)]
pub struct NetworkSettings {
    /// Its name, for logs and the console.
    pub name: String,
    /// The domain its nicks appear under (`irc.example.com`).
    pub domain: String,
    /// The servers to connect to, tried in turn.
    pub servers: Vec<SocketAddr>,
    /// The nick a Parley user gets: `{user}` is the user's local part.
    pub nick_template: String,
    /// The realname (GECOS) of every connection.
    pub realname: String,
    /// The longest nick the network takes.
    pub max_nick: usize,
    /// A user's connection with nothing to carry this long is closed.
    pub idle_timeout: Duration,
    /// How long connecting and registering may take.
    pub connect_timeout: Duration,
    /// A server silent this long is pinged, and given up after as long
    /// again.
    pub keepalive: Duration,
    /// How text that is not UTF-8 is read.
    pub fallback: text::Fallback,
    /// Connections to the network at most.
    pub max_connections: usize,
    /// Flood control: what one line costs, and how many lines may go in
    /// a burst (RFC 1459 §8.10: two seconds, five lines). Set them to
    /// the network's own limits.
    pub flood_interval: Duration,
    /// Lines in a burst.
    pub flood_burst: u32,
    /// How often a connection asks which followed nicks are on line
    /// (ISON).
    pub presence_poll: Duration,
    /// TLS: the client configuration (with its trust anchors) and the
    /// name the server's certificate must carry.
    pub tls: Option<(Arc<rustls::ClientConfig>, String)>,
    /// How connections log in to services accounts.
    pub login: Login,
    /// Services accounts by Parley user (lower-case bare address): the
    /// account name and its password.
    pub accounts: HashMap<String, (String, String)>,
}

impl std::fmt::Debug for NetworkSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetworkSettings")
            .field("name", &self.name)
            .field("domain", &self.domain)
            .field("servers", &self.servers)
            .field("tls", &self.tls.as_ref().map(|(_, name)| name))
            .finish_non_exhaustive()
    }
}

/// How a user's connection logs in to the user's services account, for
/// users with one in [`NetworkSettings::accounts`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Login {
    /// It does not.
    #[default]
    None,
    /// SASL PLAIN during registration (IRCv3 sasl); a refusal fails the
    /// connection with the server's reason.
    Sasl,
    /// `PRIVMSG NickServ :IDENTIFY account password` once registered, for
    /// networks whose services have no SASL.
    NickServ,
    /// SASL EXTERNAL for every user: the TLS client certificate (the
    /// gateway's) is the login.
    External,
}

/// How the adapter runs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The adapter's name.
    pub name: String,
    /// The networks.
    pub networks: Vec<NetworkSettings>,
}

/// Where a user's connection is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Connecting,
    /// Registered, under this nick.
    Ready(String),
    Failed(String),
}

/// A line for the server, with the message it carries (for a failure
/// the server reports about it).
struct Out {
    line: String,
    about: Option<(String, String, Address)>,
    control: Option<Control>,
    reflect: Option<Reflect>,
}

/// What the connection does besides sending a line.
enum Control {
    /// Follow this nick's presence (ISON polling).
    Watch(String),
    /// Stop following it.
    Unwatch(String),
    /// Report every followed nick's presence at the next answer.
    Probe,
}

/// The nicks a connection follows for its user, with what was last
/// reported (None: nothing yet).
#[derive(Default)]
struct Watching {
    nicks: std::collections::BTreeMap<String, Option<bool>>,
    /// Report all at the next answer, changed or not.
    force: bool,
}

struct Puppet {
    lines: mpsc::Sender<Out>,
    state: watch::Receiver<State>,
    id: u64,
}

/// A channel as one user knows it: (network, user, channel), lower case.
type ChannelKey = (usize, String, String);

struct Shared {
    settings: Settings,
    hub: OnceLock<Hub>,
    puppets: Mutex<HashMap<(usize, String), Puppet>>,
    /// The local part each user named a channel's room with (`dev` from
    /// SIP, `#dev` from XMPP), and the occupant address it entered from
    /// (an XMPP resource): what the channel says comes back under that
    /// name, to that address.
    room_names: Mutex<HashMap<ChannelKey, (String, Address)>>,
    /// The channels each user's connection is in, by (network, user).
    memberships: Mutex<HashMap<(usize, String), std::collections::BTreeSet<String>>>,
    /// Messages from and to each network.
    counts: Vec<(AtomicU64, AtomicU64)>,
    stop: CancellationToken,
    tracker: TaskTracker,
    ids: AtomicU64,
}

impl Shared {
    fn puppets(&self) -> std::sync::MutexGuard<'_, HashMap<(usize, String), Puppet>> {
        self.puppets.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn room_names(&self) -> std::sync::MutexGuard<'_, HashMap<ChannelKey, (String, Address)>> {
        self.room_names.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records the channels a user's connection is in now.
    fn memberships_of(&self, net: usize, user: &Address, channels: Option<Vec<String>>) {
        let mut all = self.memberships.lock().unwrap_or_else(|p| p.into_inner());
        let key = (net, user.to_string().to_ascii_lowercase());
        match channels {
            Some(list) if !list.is_empty() => {
                all.insert(key, list.into_iter().collect());
            }
            _ => {
                all.remove(&key);
            }
        }
    }

    fn network_of(&self, domain: &str) -> Option<usize> {
        self.settings
            .networks
            .iter()
            .position(|n| n.domain.eq_ignore_ascii_case(domain))
    }
}

/// The IRC adapter.
pub struct IrcAdapter {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for IrcAdapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IrcAdapter")
            .field("settings", &self.shared.settings)
            .finish()
    }
}

impl IrcAdapter {
    /// An adapter with these settings; nothing connects until a user
    /// talks to a network.
    pub fn new(settings: Settings) -> IrcAdapter {
        let counts = settings
            .networks
            .iter()
            .map(|_| (AtomicU64::new(0), AtomicU64::new(0)))
            .collect();
        IrcAdapter {
            shared: Arc::new(Shared {
                settings,
                hub: OnceLock::new(),
                puppets: Mutex::new(HashMap::new()),
                room_names: Mutex::new(HashMap::new()),
                memberships: Mutex::new(HashMap::new()),
                counts,
                stop: CancellationToken::new(),
                tracker: TaskTracker::new(),
                ids: AtomicU64::new(1),
            }),
        }
    }

    /// The domains of its networks.
    pub fn domains(&self) -> Vec<String> {
        self.shared
            .settings
            .networks
            .iter()
            .map(|n| n.domain.clone())
            .collect()
    }
}

#[async_trait]
impl Adapter for IrcAdapter {
    fn name(&self) -> &str {
        &self.shared.settings.name
    }

    fn protocol(&self) -> Protocol {
        Protocol::Irc
    }

    async fn start(&self, hub: Hub) -> Result<(), Failure> {
        let _ = self.shared.hub.set(hub);
        Ok(())
    }

    async fn deliver(&self, item: Outbound, security: Security) -> Result<(), Failure> {
        let m = match item {
            Outbound::Message(m) => m,
            Outbound::RoomRequest(r) => return room_request(&self.shared, r, security).await,
            Outbound::Subscription(s) => return subscription(&self.shared, s).await,
            Outbound::Presence(p) => return presence(&self.shared, p).await,
            _ => return Err(Failure::bare(Condition::FeatureNotImplemented)),
        };
        let shared = &self.shared;
        let Some(net) = shared.network_of(m.to.domain()) else {
            return Err(Failure::new(Condition::ItemNotFound, "no such IRC network"));
        };
        check_security(&shared.settings.networks[net], security)?;
        let Some(nick) = text::local_to_nick(m.to.user()) else {
            return Err(Failure::new(
                Condition::JidMalformed,
                format!("{} is not an IRC nick", m.to.user()),
            ));
        };
        let Some(body) = m.body_text().map(str::to_string) else {
            // Typing and receipts have nothing on IRC to become; other
            // content cannot cross.
            if m.chat_state.is_some() || m.receipt.is_some() || m.parts.is_empty() {
                return Ok(());
            }
            return Err(Failure::new(
                Condition::NotAcceptable,
                "IRC carries plain text only",
            ));
        };
        let puppet = open(shared, net, &m.from.bare()).await?;
        let prefix_room = 64 + shared.settings.networks[net].max_nick;
        let lines = text::lines(&nick, &body, prefix_room);
        // What flood control holds back waits in the connection's queue;
        // a message that does not fit whole is refused at once, with the
        // reason, rather than held until the sender gives up.
        if puppet.capacity() < lines.len() {
            return Err(Failure::new(
                Condition::ResourceConstraint,
                "too much is waiting for this IRC network's flood control; try again later",
            ));
        }
        count(shared, net, "out");
        for line in lines {
            puppet
                .try_send(Out {
                    line: format!("PRIVMSG {nick} :{line}"),
                    about: Some((nick.to_ascii_lowercase(), m.id.clone(), m.to.bare())),
                    control: None,
                    reflect: None,
                })
                .map_err(|_| {
                    Failure::new(
                        Condition::ResourceConstraint,
                        "the IRC connection is backed up",
                    )
                })?;
        }
        Ok(())
    }

    /// One link per user's connection: the console counts them per
    /// network.
    fn health(&self) -> Health {
        let puppets = self.shared.puppets();
        let mut links: Vec<Link> = puppets
            .keys()
            .map(|(i, _)| {
                let n = &self.shared.settings.networks[*i];
                Link {
                    domain: n.domain.clone(),
                    direction: "outbound",
                    auth: if n.tls.is_some() {
                        PeerAuth::Certificate
                    } else {
                        PeerAuth::None
                    },
                    tls: n.tls.is_some(),
                }
            })
            .collect();
        links.sort_by(|a, b| a.domain.cmp(&b.domain));
        let memberships = self
            .shared
            .memberships
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let networks = self
            .shared
            .settings
            .networks
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let channels: std::collections::BTreeSet<&String> = memberships
                    .iter()
                    .filter(|((net, _), _)| *net == i)
                    .flat_map(|(_, list)| list.iter())
                    .collect();
                parley_adapter::NetworkHealth {
                    name: n.name.clone(),
                    domain: n.domain.clone(),
                    connections: puppets.keys().filter(|(net, _)| *net == i).count(),
                    channels: channels.len(),
                    messages_in: self.shared.counts[i].0.load(Ordering::Relaxed),
                    messages_out: self.shared.counts[i].1.load(Ordering::Relaxed),
                }
            })
            .collect();
        Health {
            up: true,
            links,
            networks,
        }
    }

    async fn stop(&self) {
        self.shared.stop.cancel();
        self.shared.tracker.close();
        let _ = tokio::time::timeout(Duration::from_secs(3), self.shared.tracker.wait()).await;
    }
}

/// Whether the network's link offers what the domain policy requires: a
/// TLS network's certificate is always verified.
fn check_security(network: &NetworkSettings, security: Security) -> Result<(), Failure> {
    if (security.tls || security.verified) && network.tls.is_none() {
        return Err(Failure::new(
            Condition::PolicyViolation,
            "the link to this IRC network is not encrypted",
        ));
    }
    Ok(())
}

/// A Parley user's subscription to a nick: IRC asks no one's consent, so
/// it is granted at once, and the user's connection follows the nick's
/// presence (ISON, every `presence_poll`).
async fn subscription(
    shared: &Arc<Shared>,
    s: parley_adapter::Subscription,
) -> Result<(), Failure> {
    use parley_adapter::SubscriptionAction as A;
    let Some(net) = shared.network_of(s.to.domain()) else {
        return Err(Failure::new(Condition::ItemNotFound, "no such IRC network"));
    };
    let control = match s.action {
        A::Subscribe => {
            let Some(nick) = text::local_to_nick(s.to.user()) else {
                return Err(Failure::new(Condition::JidMalformed, "not an IRC nick"));
            };
            Control::Watch(nick)
        }
        A::Unsubscribe => match text::local_to_nick(s.to.user()) {
            Some(nick) => Control::Unwatch(nick),
            None => return Ok(()),
        },
        A::Probe => Control::Probe,
        // A Parley user letting a nick see their presence: IRC shows
        // everyone's away state to everyone.
        _ => return Ok(()),
    };
    let granted = matches!(control, Control::Watch(_));
    let puppet = open(shared, net, &s.from.bare()).await?;
    // The grant goes before any presence the watch brings, or the
    // watcher's server would drop the presence as unasked for.
    if granted {
        if let Some(hub) = shared.hub.get().cloned() {
            let answer = parley_adapter::Subscription {
                from: s.to.bare(),
                to: s.from.bare(),
                action: A::Subscribed,
            };
            let _ = hub
                .submit(&peer(shared, net), Inbound::Subscription(answer))
                .await;
        }
    }
    puppet
        .send(Out {
            line: String::new(),
            about: None,
            control: Some(control),
            reflect: None,
        })
        .await
        .map_err(|_| Failure::new(Condition::RemoteServerTimeout, "the IRC connection closed"))?;
    Ok(())
}

/// A Parley user's presence, for their connection's away state (only a
/// connection that is open: presence opens none).
async fn presence(shared: &Arc<Shared>, p: parley_adapter::Presence) -> Result<(), Failure> {
    use parley_adapter::Show;
    let Some(net) = shared.network_of(p.to.domain()) else {
        return Ok(());
    };
    let key = (net, p.from.bare().to_string().to_ascii_lowercase());
    let Some(lines) = shared.puppets().get(&key).map(|x| x.lines.clone()) else {
        return Ok(());
    };
    let away = !p.available || matches!(p.show, Some(Show::Away | Show::Xa | Show::Dnd));
    let line = if away {
        let note = p.note.clone().unwrap_or_else(|| "away".into());
        format!("AWAY :{}", note.replace(['\r', '\n'], " "))
    } else {
        "AWAY".to_string()
    };
    let _ = lines.try_send(Out {
        line,
        about: None,
        control: None,
        reflect: None,
    });
    Ok(())
}

/// One of Parley's users acts in a channel (a room of this network:
/// `dev@irc.example.com` is `#dev`).
async fn room_request(
    shared: &Arc<Shared>,
    r: parley_adapter::RoomRequest,
    security: Security,
) -> Result<(), Failure> {
    use parley_adapter::{RoomAction, RoomRole};
    let Some(net) = shared.network_of(r.room.domain()) else {
        return Err(Failure::new(Condition::ItemNotFound, "no such IRC network"));
    };
    check_security(&shared.settings.networks[net], security)?;
    let channel = text::channel_of(r.room.user())
        .ok_or_else(|| Failure::new(Condition::JidMalformed, "not an IRC channel name"))?;
    let user = r.from.bare();
    let key = (
        net,
        user.to_string().to_ascii_lowercase(),
        channel.to_ascii_lowercase(),
    );
    let lines: Vec<String> = match &r.action {
        RoomAction::Join { password, .. } => vec![match password {
            Some(key) => format!("JOIN {channel} {key}"),
            None => format!("JOIN {channel}"),
        }],
        RoomAction::Leave => vec![format!("PART {channel}")],
        RoomAction::Say { text: t, .. } => text::lines(&channel, t, 96)
            .into_iter()
            .map(|l| format!("PRIVMSG {channel} :{l}"))
            .collect(),
        RoomAction::Private { nick, text: t, .. } => text::lines(nick, t, 96)
            .into_iter()
            .map(|l| format!("PRIVMSG {nick} :{l}"))
            .collect(),
        RoomAction::Subject(t) => {
            vec![format!("TOPIC {channel} :{}", t.replace(['\r', '\n'], " "))]
        }
        RoomAction::SetRole {
            nick,
            role: RoomRole::None,
            reason,
        } => vec![format!(
            "KICK {channel} {nick} :{}",
            reason.replace(['\r', '\n'], " ")
        )],
        _ => return Err(Failure::bare(Condition::FeatureNotImplemented)),
    };
    if matches!(r.action, RoomAction::Join { .. }) {
        let mut names = shared.room_names();
        if names.len() < MAX_ROOM_NAMES {
            names.insert(key, (r.room.user().to_string(), r.from.clone()));
        }
    }
    let puppet = open(shared, net, &user).await?;
    if matches!(
        r.action,
        RoomAction::Say { .. } | RoomAction::Private { .. }
    ) {
        count(shared, net, "out");
    }
    let lines_count = lines.len();
    for (i, line) in lines.into_iter().enumerate() {
        // A room reflects what a member says (XEP-0045 §7.4): the server
        // does with echo-message (its echo carrying the message's id as
        // a label), the connection otherwise.
        let reflect = match &r.action {
            RoomAction::Say { id, text: t } => Some(Reflect {
                channel: channel.to_ascii_lowercase(),
                id: id.clone(),
                text: t.clone(),
                first: i == 0,
                last: i + 1 == lines_count,
            }),
            _ => None,
        };
        puppet
            .send(Out {
                line,
                about: None,
                control: None,
                reflect,
            })
            .await
            .map_err(|_| {
                Failure::new(Condition::RemoteServerTimeout, "the IRC connection closed")
            })?;
    }
    Ok(())
}

/// What a line said in a channel is, for its reflection to the speaker.
struct Reflect {
    channel: String,
    id: String,
    text: String,
    /// The first line of the message (it carries the label).
    first: bool,
    /// The last (the reflection of the whole follows it).
    last: bool,
}

/// Channels whose room name a user gave are remembered up to this many.
const MAX_ROOM_NAMES: usize = 100_000;

/// The connection of `user` to network `net`, registered: an existing one,
/// or a new one (opened on first use).
async fn open(
    shared: &Arc<Shared>,
    net: usize,
    user: &Address,
) -> Result<mpsc::Sender<Out>, Failure> {
    open_as(shared, net, user).await.map(|(lines, _)| lines)
}

/// [`open`], with the nick the connection is registered under.
async fn open_as(
    shared: &Arc<Shared>,
    net: usize,
    user: &Address,
) -> Result<(mpsc::Sender<Out>, String), Failure> {
    let key = (net, user.to_string().to_ascii_lowercase());
    let network = &shared.settings.networks[net];
    let (lines, mut state) = {
        let mut puppets = shared.puppets();
        let usable = puppets.get(&key).is_some_and(|p| {
            !matches!(*p.state.borrow(), State::Failed(_)) && !p.lines.is_closed()
        });
        if !usable {
            let on_network = puppets.keys().filter(|(n, _)| *n == net).count();
            if on_network >= network.max_connections {
                return Err(Failure::new(
                    Condition::ResourceConstraint,
                    format!(
                        "limit of {} connections to {} reached",
                        network.max_connections, network.name
                    ),
                ));
            }
            let (tx, rx) = mpsc::channel(256);
            let (state_tx, state_rx) = watch::channel(State::Connecting);
            let id = shared.ids.fetch_add(1, Ordering::Relaxed);
            puppets.insert(
                key.clone(),
                Puppet {
                    lines: tx,
                    state: state_rx,
                    id,
                },
            );
            gauge_connections(shared, net, &puppets);
            let (shared2, user2, key2) = (shared.clone(), user.clone(), key.clone());
            shared.tracker.spawn(async move {
                let outcome = run(&shared2, net, &user2, rx, &state_tx).await;
                if let Err(why) = outcome {
                    let _ = state_tx.send(State::Failed(why));
                }
                let mut puppets = shared2.puppets();
                if puppets.get(&key2).is_some_and(|p| p.id == id) {
                    puppets.remove(&key2);
                    shared2.memberships_of(net, &user2, None);
                    shared2
                        .room_names()
                        .retain(|(n, u, _), _| *n != net || *u != key2.1);
                }
                gauge_connections(&shared2, net, &puppets);
            });
        }
        let p = &puppets[&key];
        (p.lines.clone(), p.state.clone())
    };
    let ready = tokio::time::timeout(network.connect_timeout, async {
        loop {
            match &*state.borrow_and_update() {
                State::Ready(nick) => return Ok(nick.clone()),
                State::Failed(why) => return Err(why.clone()),
                State::Connecting => {}
            }
            if state.changed().await.is_err() {
                return Err("the connection ended".to_string());
            }
        }
    })
    .await;
    match ready {
        Ok(Ok(nick)) => Ok((lines, nick)),
        Ok(Err(why)) => Err(Failure::new(
            Condition::RemoteServerNotFound,
            format!("{}: {why}", network.name),
        )),
        Err(_) => Err(Failure::new(
            Condition::RemoteServerTimeout,
            format!("{} did not register the connection in time", network.name),
        )),
    }
}

/// The connections open to network `net`, for `/metrics`.
fn gauge_connections(shared: &Shared, net: usize, puppets: &HashMap<(usize, String), Puppet>) {
    let n = puppets.keys().filter(|(i, _)| *i == net).count();
    metrics::gauge!("parley_irc_connections", "network" => shared.settings.networks[net].name.clone())
        .set(n as f64);
}

/// Counts one message to or from network `net`.
fn count(shared: &Shared, net: usize, direction: &'static str) {
    let (inbound, outbound) = &shared.counts[net];
    match direction {
        "in" => inbound.fetch_add(1, Ordering::Relaxed),
        _ => outbound.fetch_add(1, Ordering::Relaxed),
    };
    metrics::counter!(
        "parley_irc_messages_total",
        "network" => shared.settings.networks[net].name.clone(),
        "direction" => direction
    )
    .increment(1);
}

/// One user's connection, from connecting to its end. `Err` with the
/// reason when it failed.
async fn run(
    shared: &Arc<Shared>,
    net: usize,
    user: &Address,
    mut outgoing: mpsc::Receiver<Out>,
    state: &watch::Sender<State>,
) -> Result<(), String> {
    let network = &shared.settings.networks[net];
    let mut channels: HashMap<String, Channel> = HashMap::new();
    let mut watching = Watching::default();
    let mut attempt = 0u32;
    loop {
        let rejoin: Vec<String> = channels.keys().cloned().collect();
        let mut unconfirmed = Unconfirmed::new();
        let carried = Carried {
            outgoing: &mut outgoing,
            state,
            channels: &mut channels,
            watching: &mut watching,
            unconfirmed: &mut unconfirmed,
            rejoin: &rejoin,
        };
        let outcome = session(shared, net, user, carried).await;
        let Err(why) = outcome else {
            return Ok(());
        };
        // What the server had not confirmed (echo-message) when it ended
        // the connection is reported to its senders with the reason.
        let failure = Failure::new(
            Condition::RemoteServerTimeout,
            format!("{}: {why}", network.name),
        );
        let mut told = std::collections::HashSet::new();
        for (_, id, recipient) in unconfirmed.drain(..) {
            if told.insert(id.clone()) {
                failed(shared, net, user, id, recipient, failure.clone()).await;
            }
        }
        // A connection in channels comes back and rejoins them, with
        // backoff; one with only private messages opens again on the
        // next message.
        if channels.is_empty() || attempt >= RECONNECTS || shared.stop.is_cancelled() {
            // Nothing still queued will go: each is reported.
            outgoing.close();
            while let Ok(out) = outgoing.try_recv() {
                if let Some((_, id, recipient)) = out.about {
                    if told.insert(id.clone()) {
                        failed(shared, net, user, id, recipient, failure.clone()).await;
                    }
                }
            }
            return Err(why);
        }
        if matches!(*state.borrow(), State::Ready(_)) {
            attempt = 0;
        }
        attempt += 1;
        let wait = Duration::from_secs(1 << attempt.min(5));
        warn!(network = %network.name, user = %user, %why, attempt, "IRC connection lost: reconnecting");
        let _ = state.send(State::Connecting);
        tokio::select! {
            _ = shared.stop.cancelled() => return Ok(()),
            _ = tokio::time::sleep(wait) => {}
        }
        for c in channels.values_mut() {
            *c = Channel::default();
        }
    }
}

/// Private lines written while echo-message is on and not yet echoed:
/// (target, message id, recipient), oldest first.
type Unconfirmed = std::collections::VecDeque<(String, String, Address)>;

/// Lines awaiting their echo at most (older ones are taken as delivered).
const MAX_UNCONFIRMED: usize = 1024;

/// What a user's connection carries from one session to the next.
struct Carried<'a> {
    outgoing: &'a mut mpsc::Receiver<Out>,
    state: &'a watch::Sender<State>,
    channels: &'a mut HashMap<String, Channel>,
    watching: &'a mut Watching,
    unconfirmed: &'a mut Unconfirmed,
    /// The channels to join once registered.
    rejoin: &'a [String],
}

/// Reconnections of a user's connection in a row at most.
const RECONNECTS: u32 = 6;

/// One connection, from connecting to its end; joins `rejoin` once
/// registered.
async fn session(
    shared: &Arc<Shared>,
    net: usize,
    user: &Address,
    carried: Carried<'_>,
) -> Result<(), String> {
    let network = &shared.settings.networks[net];
    // The network's servers in turn: the first that takes the connection.
    let mut stream = Err("no server configured".to_string());
    for server in &network.servers {
        stream =
            match tokio::time::timeout(network.connect_timeout, TcpStream::connect(server)).await {
                Ok(Ok(s)) => Ok(s),
                Ok(Err(e)) => Err(format!("cannot connect to {server}: {e}")),
                Err(_) => Err(format!("connecting to {server} timed out")),
            };
        match &stream {
            Ok(_) => break,
            Err(why) => debug!(network = %network.name, %why, "trying the next server"),
        }
    }
    let stream = stream?;
    let _ = stream.set_nodelay(true);
    let (mut reader, mut writer): (Reader, Writer) = match &network.tls {
        None => {
            let (r, w) = stream.into_split();
            (Box::new(r), Box::new(w))
        }
        Some((config, name)) => {
            let server_name = rustls::pki_types::ServerName::try_from(name.clone())
                .map_err(|e| format!("{name} is no server name: {e}"))?;
            let tls = tokio::time::timeout(
                network.connect_timeout,
                tokio_rustls::TlsConnector::from(config.clone()).connect(server_name, stream),
            )
            .await
            .map_err(|_| "the TLS handshake timed out".to_string())?
            .map_err(|e| format!("TLS: {e}"))?;
            let (r, w) = tokio::io::split(tls);
            (Box::new(r), Box::new(w))
        }
    };
    let mut buf = Vec::with_capacity(4096);
    let outcome = converse(
        shared,
        net,
        user,
        carried,
        (&mut reader, &mut writer, &mut buf),
    )
    .await;
    match outcome {
        // A server that ends a connection says why (ERROR) before it
        // closes; a write that failed first is not the reason.
        Err(why) if why.starts_with(WRITE_FAILED) => {
            Err(last_words(&mut reader, &mut buf).await.unwrap_or(why))
        }
        other => other,
    }
}

/// What a failed write's error starts with.
const WRITE_FAILED: &str = "the connection broke while writing: ";

/// The reason of an ERROR the server sent before closing, read from what
/// is left of the connection (for a second at most).
async fn last_words(
    reader: &mut (impl tokio::io::AsyncRead + Unpin),
    buf: &mut Vec<u8>,
) -> Option<String> {
    let fallback = text::Fallback::Latin1;
    let mut chunk = vec![0u8; 16384];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
    loop {
        while let Some(end) = buf.iter().position(|b| *b == b'\n') {
            let raw: Vec<u8> = buf.drain(..=end).collect();
            let line = text::decode(&raw, fallback);
            if let Ok(IrcMessage {
                command: Command::ERROR(why),
                ..
            }) = line.trim_end_matches(['\r', '\n']).parse::<IrcMessage>()
            {
                return Some(format!("the server ended the connection: {why}"));
            }
        }
        if buf.len() > MAX_INBOUND_LINE {
            buf.clear();
        }
        match tokio::time::timeout_at(deadline, reader.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            _ => return None,
        }
    }
}

type Reader = Box<dyn tokio::io::AsyncRead + Unpin + Send>;
type Writer = Box<dyn tokio::io::AsyncWrite + Unpin + Send>;

/// A registered connection's life: registration, then lines both ways
/// until it ends.
async fn converse(
    shared: &Arc<Shared>,
    net: usize,
    user: &Address,
    carried: Carried<'_>,
    (reader, writer, buf): (&mut Reader, &mut Writer, &mut Vec<u8>),
) -> Result<(), String> {
    let Carried {
        outgoing,
        state,
        channels,
        watching,
        unconfirmed,
        rejoin,
    } = carried;
    let network = &shared.settings.networks[net];
    let mut nick = text::nick_for(&network.nick_template, user.user(), network.max_nick);
    let ident = text::nick_for("{user}", user.user(), 10);
    let account = network
        .accounts
        .get(&user.to_string().to_ascii_lowercase())
        .cloned();
    let sasl = match (&network.login, &account) {
        (Login::Sasl, Some((name, password))) => Some(register::Sasl::Plain {
            account: name.clone(),
            password: password.clone(),
        }),
        (Login::External, _) => Some(register::Sasl::External),
        _ => None,
    };
    // IRCv3: capabilities first (a server without CAP ignores it and
    // registers as usual), then the registration itself.
    let (mut reg, hello) =
        register::Registration::new(&nick, &ident, &network.realname, network.max_nick, sasl);
    write_lines(writer, &hello).await?;
    info!(network = %network.name, user = %user, nick, "IRC connection opening");
    let mut chunk = vec![0u8; 16384];
    let mut registered = false;
    // RFC 1459 §8.10 flood control: each line costs `flood_interval` of a
    // clock that may run at most `flood_burst` lines ahead.
    let mut flood = tokio::time::Instant::now();
    let flood_ahead = network.flood_interval * network.flood_burst;
    // The last message sent to each nick: a 401 for it is reported.
    let mut sent: HashMap<String, (String, Address)> = HashMap::new();
    let idle = tokio::time::sleep(network.idle_timeout);
    tokio::pin!(idle);
    // A server that says nothing for `keepalive` is asked (PING); one that
    // then says nothing for as long again has stopped answering.
    let silence = tokio::time::sleep(network.keepalive);
    tokio::pin!(silence);
    let mut pinged = false;
    let mut poll = tokio::time::interval(network.presence_poll);
    poll.reset();
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shared.stop.cancelled() => {
                let _ = writer.write_all(b"QUIT :Parley is stopping\r\n").await;
                return Ok(());
            }
            // ISON where the server has no MONITOR, or follows fewer nicks
            // for a client than this user follows (the rest would go
            // untold, 734).
            _ = poll.tick(), if registered && !watching.nicks.is_empty()
                && reg.monitor.map_or(true, |limit| watching.nicks.len() > limit) => {
                for line in ison_lines(watching) {
                    write_lines(writer, &[line]).await?;
                }
            }
            _ = &mut silence => {
                if pinged {
                    return Err(format!("the server stopped answering ({} s)", 2 * network.keepalive.as_secs()));
                }
                pinged = true;
                silence.as_mut().reset(tokio::time::Instant::now() + network.keepalive);
                write_lines(writer, &["PING :parley".to_string()]).await?;
            }
            _ = &mut idle, if channels.is_empty() && watching.nicks.is_empty() => {
                debug!(network = %network.name, user = %user, "IRC connection idle: closed");
                let _ = writer.write_all(b"QUIT :idle\r\n").await;
                return Ok(());
            }
            out = outgoing.recv() => {
                let Some(out) = out else { return Ok(()) };
                if let Some(control) = out.control {
                    match control {
                        // IRCv3 MONITOR where the server has it: it tells of
                        // each change (730/731); ISON polling otherwise.
                        Control::Watch(n) => {
                            watching.nicks.entry(n.clone()).or_insert(None);
                            let line = match reg.monitor {
                                Some(_) => format!("MONITOR + {n}"),
                                None => format!("ISON {n}"),
                            };
                            write_lines(writer, &[line]).await?;
                        }
                        Control::Unwatch(n) => {
                            if watching.nicks.remove(&n).is_some() && reg.monitor.is_some() {
                                write_lines(writer, &[format!("MONITOR - {n}")]).await?;
                            }
                        }
                        Control::Probe if reg.monitor.is_some() => {
                            let known: Vec<(String, bool)> = watching
                                .nicks
                                .iter()
                                .filter_map(|(n, s)| s.map(|s| (n.clone(), s)))
                                .collect();
                            for (n, online) in known {
                                nick_presence(shared, net, user, &n, online, None).await;
                            }
                        }
                        Control::Probe => {
                            watching.force = true;
                            write_lines(writer, &ison_lines(watching)).await?;
                        }
                    }
                    continue;
                }
                if let Some((nick, id, recipient)) = out.about {
                    if sent.len() >= 1024 {
                        sent.clear();
                    }
                    if reg.has("echo-message") {
                        if unconfirmed.len() >= MAX_UNCONFIRMED {
                            unconfirmed.pop_front();
                        }
                        unconfirmed.push_back((nick.clone(), id.clone(), recipient.clone()));
                    }
                    sent.insert(nick, (id, recipient));
                }
                let now = tokio::time::Instant::now();
                flood = flood.max(now);
                if flood > now + flood_ahead {
                    tokio::time::sleep_until(flood - flood_ahead).await;
                }
                flood += network.flood_interval;
                let echo = reg.has("echo-message");
                let line = match &out.reflect {
                    Some(r) if echo && r.first && reg.has("labeled-response") => {
                        format!("@label={} {}", text::tag_value(&r.id), out.line)
                    }
                    _ => out.line,
                };
                write_lines(writer, &[line]).await?;
                idle.as_mut().reset(tokio::time::Instant::now() + network.idle_timeout);
                if let Some(r) = out.reflect.filter(|r| r.last && !echo) {
                    let event = parley_adapter::RoomEvent::Message {
                        nick: nick.clone(),
                        id: r.id,
                        text: r.text,
                        delay: None,
                    };
                    room_event(shared, net, user, &r.channel, event).await;
                }
            }
            n = reader.read(&mut chunk) => {
                let n = n.map_err(|e| e.to_string())?;
                if n == 0 {
                    return Err("the server closed the connection".into());
                }
                pinged = false;
                silence.as_mut().reset(tokio::time::Instant::now() + network.keepalive);
                buf.extend_from_slice(&chunk[..n]);
                while let Some(end) = buf.iter().position(|b| *b == b'\n') {
                    let raw: Vec<u8> = buf.drain(..=end).collect();
                    if raw.len() > MAX_INBOUND_LINE {
                        warn!(network = %network.name, "a line over the limit from the server: dropped");
                        continue;
                    }
                    let line = text::decode(&raw, network.fallback);
                    let Ok(msg) = line.trim_end_matches(['\r', '\n']).parse::<IrcMessage>() else {
                        debug!(network = %network.name, %line, "unreadable IRC line");
                        continue;
                    };
                    match msg.command {
                        Command::PING(ref server, _) => {
                            write_lines(writer, &[format!("PONG :{server}")]).await?;
                        }
                        _ if (!registered && !matches!(msg.command, Command::ERROR(_)))
                            || matches!(msg.command, Command::CAP(..) | Command::Response(Response::RPL_ISUPPORT, _)) =>
                        {
                            let mut out = Vec::new();
                            let had_monitor = reg.monitor.is_some();
                            let step = reg.on(&msg, &mut out);
                            // ISUPPORT follows the welcome: nicks followed
                            // meanwhile move to MONITOR.
                            if registered && !had_monitor && reg.monitor.is_some() {
                                out.extend(list_lines("MONITOR + ", ",", watching));
                            }
                            match step {
                                register::Step::Pending => {}
                                register::Step::Failed(why) => return Err(why),
                                register::Step::Welcome(n) => {
                                    nick = n;
                                    registered = true;
                                    info!(network = %network.name, user = %user, nick, caps = ?reg.caps, account = ?reg.account, "IRC connection registered");
                                    if let (Login::NickServ, Some((name, password))) = (&network.login, &account) {
                                        out.push(format!("PRIVMSG NickServ :IDENTIFY {name} {password}"));
                                    }
                                    out.extend(rejoin.iter().map(|chan| format!("JOIN {chan}")));
                                    if reg.monitor.is_some() {
                                        out.extend(list_lines("MONITOR + ", ",", watching));
                                    }
                                    let _ = state.send(State::Ready(nick.clone()));
                                }
                            }
                            write_lines(writer, &out).await?;
                        }
                        Command::Response(r @ (Response::RPL_MONONLINE | Response::RPL_MONOFFLINE), ref args) => {
                            // IRCv3 monitor: `730 <me> :nick!user@host,…`
                            // and `731 <me> :nick,…`.
                            let online = r == Response::RPL_MONONLINE;
                            let list = args.last().cloned().unwrap_or_default();
                            for target in list.split(',') {
                                let n = target.split('!').next().unwrap_or("").to_ascii_lowercase();
                                let Some(known) = watching.nicks.iter_mut().find(|(k, _)| k.to_ascii_lowercase() == n) else {
                                    continue;
                                };
                                if *known.1 != Some(online) {
                                    *known.1 = Some(online);
                                    let nick_of = known.0.clone();
                                    nick_presence(shared, net, user, &nick_of, online, None).await;
                                }
                            }
                        }
                        Command::AWAY(ref note) => {
                            // IRCv3 away-notify (and extended-monitor): a
                            // followed nick went away or came back.
                            let Some(Prefix::Nickname(from, _, _)) = &msg.prefix else { continue };
                            let followed = watching.nicks.keys().find(|k| k.eq_ignore_ascii_case(from)).cloned();
                            if let Some(n) = followed {
                                watching.nicks.insert(n.clone(), Some(true));
                                nick_presence(shared, net, user, &n, true, note.clone().map(|t| text::strip_formatting(&t))).await;
                            }
                        }
                        Command::Response(Response::RPL_ISON, ref args) => {
                            // RFC 2812 §4.9: the followed nicks on line now.
                            let online: Vec<String> = args
                                .last()
                                .map(|l| l.split_whitespace().map(str::to_ascii_lowercase).collect())
                                .unwrap_or_default();
                            let force = std::mem::take(&mut watching.force);
                            let mut changed = Vec::new();
                            for (n, known) in watching.nicks.iter_mut() {
                                let now = online.contains(&n.to_ascii_lowercase());
                                if force || *known != Some(now) {
                                    *known = Some(now);
                                    changed.push((n.clone(), now));
                                }
                            }
                            for (n, now) in changed {
                                nick_presence(shared, net, user, &n, now, None).await;
                            }
                        }
                        Command::Response(Response::ERR_NOSUCHNICK, ref args) => {
                            // RFC 2812 §5.2: "<nick> :No such nick/channel".
                            let target = args.get(1).map(|t| t.to_ascii_lowercase()).unwrap_or_default();
                            if let Some((id, recipient)) = sent.remove(&target) {
                                unconfirmed.retain(|(_, i, _)| *i != id);
                                let failure = Failure::new(
                                    Condition::ItemNotFound,
                                    format!("no one is called {} on {}", recipient.user(), network.name),
                                );
                                failed(shared, net, user, id, recipient, failure).await;
                            }
                        }
                        Command::ERROR(ref why) => {
                            return Err(format!("the server ended the connection: {why}"));
                        }
                        ref command if registered && is_channel_traffic(command) => {
                            let from = match &msg.prefix {
                                Some(Prefix::Nickname(n, _, _)) => n.clone(),
                                _ => String::new(),
                            };
                            let before = nick.clone();
                            let tag = |name: &str| {
                                msg.tags.as_ref().and_then(|tags| {
                                    tags.iter().find(|t| t.0 == name).and_then(|t| t.1.clone())
                                })
                            };
                            for (room, mut event) in channel_event(channels, &mut nick, &from, command) {
                                if let parley_adapter::RoomEvent::Message { id, delay, nick: speaker, .. } = &mut event {
                                    // echo-message: the server's echo of our own
                                    // line names the message by its label.
                                    if speaker.eq_ignore_ascii_case(&before) {
                                        if let Some(label) = tag("label") {
                                            *id = label;
                                        }
                                    } else {
                                        count(shared, net, "in");
                                    }
                                    // server-time: a line from the past (a
                                    // replay) keeps its time.
                                    *delay = tag("time").filter(|t| text::is_past(t, std::time::SystemTime::now()));
                                }
                                room_event(shared, net, user, &room, event).await;
                            }
                            if nick != before {
                                let _ = state.send(State::Ready(nick.clone()));
                            }
                            shared.memberships_of(net, user, Some(channels.keys().cloned().collect()));
                        }
                        Command::PRIVMSG(ref target, _)
                            if registered
                                && !target.starts_with(['#', '&'])
                                && matches!(&msg.prefix, Some(Prefix::Nickname(n, _, _)) if n.eq_ignore_ascii_case(&nick)) =>
                        {
                            // echo-message: the server took our line.
                            let target = target.to_ascii_lowercase();
                            if let Some(i) = unconfirmed.iter().position(|(t, _, _)| *t == target) {
                                unconfirmed.remove(i);
                            }
                        }
                        Command::PRIVMSG(ref target, ref body) | Command::NOTICE(ref target, ref body)
                            if registered && target.eq_ignore_ascii_case(&nick) =>
                        {
                            let notice = matches!(msg.command, Command::NOTICE(..));
                            let Some(Prefix::Nickname(from, _, _)) = msg.prefix.clone() else {
                                continue;
                            };
                            let Some(text) = text::readable(body) else {
                                continue;
                            };
                            idle.as_mut().reset(tokio::time::Instant::now() + network.idle_timeout);
                            inbound(shared, net, user, &from, text, notice).await;
                        }
                        _ => {}
                    }
                }
                if buf.len() > MAX_INBOUND_LINE {
                    warn!(network = %network.name, "a line over the limit from the server: dropped");
                    buf.clear();
                }
            }
        }
    }
}

/// Writes lines to the server, each ended with CR LF.
async fn write_lines(
    writer: &mut (impl tokio::io::AsyncWrite + Unpin),
    lines: &[String],
) -> Result<(), String> {
    if lines.is_empty() {
        return Ok(());
    }
    let mut all = String::new();
    for l in lines {
        all.push_str(l);
        all.push_str("\r\n");
    }
    writer
        .write_all(all.as_bytes())
        .await
        .map_err(|e| format!("{WRITE_FAILED}{e}"))
}

/// ISON lines for the followed nicks, each within the line limit.
fn ison_lines(watching: &Watching) -> Vec<String> {
    list_lines("ISON ", " ", watching)
}

/// Lines of `command` followed by the followed nicks joined with `sep`,
/// each within the line limit.
fn list_lines(command: &str, sep: &str, watching: &Watching) -> Vec<String> {
    let mut out = Vec::new();
    let mut line = String::from(command);
    for n in watching.nicks.keys() {
        if line.len() > command.len() && line.len() + n.len() + sep.len() + 2 > text::MAX_LINE {
            out.push(std::mem::replace(&mut line, String::from(command)));
        }
        if line.len() > command.len() {
            line.push_str(sep);
        }
        line.push_str(n);
    }
    if line.len() > command.len() {
        out.push(line);
    }
    out
}

/// A followed nick came on line or went, for the user who follows it.
async fn nick_presence(
    shared: &Arc<Shared>,
    net: usize,
    user: &Address,
    nick: &str,
    online: bool,
    away: Option<String>,
) {
    let network = &shared.settings.networks[net];
    let Some(hub) = shared.hub.get() else {
        return;
    };
    let Ok(from) = Address::new(&text::nick_to_local(nick), &network.domain, None) else {
        return;
    };
    let p = parley_adapter::Presence {
        from,
        to: user.clone(),
        available: online,
        show: away.as_ref().map(|_| parley_adapter::Show::Away),
        note: away.filter(|a| !a.is_empty()),
        priority: 0,
    };
    if let Err(f) = hub.submit(&peer(shared, net), Inbound::Presence(p)).await {
        debug!(network = %network.name, nick, failure = %f, "presence not taken");
    }
}

/// A channel a connection is in.
#[derive(Default)]
struct Channel {
    /// Who is there, with their prefix (`@` for operators).
    names: Vec<String>,
    /// NAMES is over: the user has heard of the channel.
    listed: bool,
    /// The topic given on entry (332), told after the roster.
    topic: Option<String>,
}

/// Whether a command is about channels (or a numeric that lists one).
fn is_channel_traffic(c: &Command) -> bool {
    match c {
        Command::JOIN(..) | Command::PART(..) | Command::QUIT(..) | Command::NICK(..) => true,
        Command::KICK(..) | Command::TOPIC(..) => true,
        Command::PRIVMSG(t, _) | Command::NOTICE(t, _) => t.starts_with(['#', '&']),
        Command::Response(r, _) => matches!(
            r,
            Response::RPL_NAMREPLY
                | Response::RPL_ENDOFNAMES
                | Response::RPL_TOPIC
                | Response::ERR_NOSUCHCHANNEL
                | Response::ERR_CHANNELISFULL
                | Response::ERR_INVITEONLYCHAN
                | Response::ERR_BANNEDFROMCHAN
                | Response::ERR_BADCHANNELKEY
        ),
        _ => false,
    }
}

/// What a line about channels tells the user, channel by channel.
fn channel_event(
    channels: &mut HashMap<String, Channel>,
    nick: &mut String,
    from: &str,
    command: &Command,
) -> Vec<(String, parley_adapter::RoomEvent)> {
    use parley_adapter::{Change, Occupant, RoomAffiliation, RoomEvent, RoomRole};
    let bare = |n: &str| n.trim_start_matches(['@', '+', '%', '~', '&']).to_string();
    let occupant = |n: &str, present: bool| Occupant {
        nick: bare(n),
        role: if !present {
            RoomRole::None
        } else if n.starts_with(['@', '~', '&']) {
            RoomRole::Moderator
        } else {
            RoomRole::Participant
        },
        affiliation: RoomAffiliation::None,
        real: None,
    };
    let presence = |n: &str, change: Change, own: bool| RoomEvent::Occupant {
        occupant: occupant(n, matches!(change, Change::Present)),
        change,
        own,
        created: false,
    };
    let me = from.eq_ignore_ascii_case(nick);
    let mut out = Vec::new();
    match command {
        Command::JOIN(list, _, _) => {
            for chan in list.split(',') {
                let key = chan.to_ascii_lowercase();
                if me {
                    channels.insert(key, Channel::default());
                } else if let Some(c) = channels.get_mut(&key) {
                    c.names.push(from.to_string());
                    if c.listed {
                        out.push((key, presence(from, Change::Present, false)));
                    }
                }
            }
        }
        Command::PART(list, _) => {
            for chan in list.split(',') {
                let key = chan.to_ascii_lowercase();
                if me {
                    if channels.remove(&key).is_some() {
                        out.push((key, presence(from, Change::Left, true)));
                    }
                } else if let Some(c) = channels.get_mut(&key) {
                    c.names.retain(|n| !bare(n).eq_ignore_ascii_case(from));
                    out.push((key, presence(from, Change::Left, false)));
                }
            }
        }
        Command::QUIT(_) => {
            for (key, c) in channels.iter_mut() {
                let before = c.names.len();
                c.names.retain(|n| !bare(n).eq_ignore_ascii_case(from));
                if c.names.len() < before {
                    out.push((key.clone(), presence(from, Change::Left, false)));
                }
            }
        }
        Command::NICK(new) => {
            for (key, c) in channels.iter_mut() {
                if let Some(n) = c
                    .names
                    .iter_mut()
                    .find(|n| bare(n).eq_ignore_ascii_case(from))
                {
                    let prefix: String = n.chars().take_while(|ch| "@+%~&".contains(*ch)).collect();
                    *n = format!("{prefix}{new}");
                    out.push((
                        key.clone(),
                        presence(from, Change::Renamed(new.clone()), me),
                    ));
                }
            }
            if me {
                *nick = new.clone();
            }
        }
        Command::KICK(chan, target, reason) => {
            let key = chan.to_ascii_lowercase();
            let own = target.eq_ignore_ascii_case(nick);
            let reason = reason.clone().unwrap_or_default();
            if own {
                channels.remove(&key);
            } else if let Some(c) = channels.get_mut(&key) {
                c.names.retain(|n| !bare(n).eq_ignore_ascii_case(target));
            }
            out.push((key, presence(target, Change::Kicked(reason), own)));
        }
        Command::TOPIC(chan, Some(topic)) => out.push((
            chan.to_ascii_lowercase(),
            RoomEvent::Subject {
                nick: Some(from.to_string()),
                text: text::strip_formatting(topic),
            },
        )),
        Command::PRIVMSG(chan, body) | Command::NOTICE(chan, body) => {
            if let Some(t) = text::readable(body) {
                out.push((
                    chan.to_ascii_lowercase(),
                    RoomEvent::Message {
                        nick: from.to_string(),
                        id: String::new(),
                        text: t,
                        delay: None,
                    },
                ));
            }
        }
        Command::Response(Response::RPL_NAMREPLY, args) => {
            if let (Some(chan), Some(names)) = (args.get(2), args.get(3)) {
                if let Some(c) = channels.get_mut(&chan.to_ascii_lowercase()) {
                    c.names.extend(names.split_whitespace().map(str::to_string));
                }
            }
        }
        Command::Response(Response::RPL_ENDOFNAMES, args) => {
            if let Some(chan) = args.get(1) {
                let key = chan.to_ascii_lowercase();
                if let Some(c) = channels.get_mut(&key) {
                    if !c.listed {
                        c.listed = true;
                        let own = c
                            .names
                            .iter()
                            .find(|n| bare(n).eq_ignore_ascii_case(nick))
                            .cloned()
                            .unwrap_or_else(|| nick.clone());
                        for n in c
                            .names
                            .iter()
                            .filter(|n| !bare(n).eq_ignore_ascii_case(nick))
                        {
                            out.push((key.clone(), presence(n, Change::Present, false)));
                        }
                        out.push((key.clone(), presence(&own, Change::Present, true)));
                        if let Some(topic) = c.topic.take() {
                            out.push((
                                key,
                                RoomEvent::Subject {
                                    nick: None,
                                    text: topic,
                                },
                            ));
                        }
                    }
                }
            }
        }
        Command::Response(Response::RPL_TOPIC, args) => {
            if let (Some(chan), Some(topic)) = (args.get(1), args.get(2)) {
                let key = chan.to_ascii_lowercase();
                let text = text::strip_formatting(topic);
                match channels.get_mut(&key) {
                    Some(c) if !c.listed => c.topic = Some(text),
                    _ => out.push((key, RoomEvent::Subject { nick: None, text })),
                }
            }
        }
        Command::Response(r, args) => {
            // An entry refused: the channel's error, with the server's words.
            if let Some(chan) = args.get(1) {
                let text = args.last().cloned().unwrap_or_default();
                let condition = match r {
                    Response::ERR_NOSUCHCHANNEL => Condition::ItemNotFound,
                    Response::ERR_CHANNELISFULL => Condition::ServiceUnavailable,
                    Response::ERR_BADCHANNELKEY => Condition::NotAuthorized,
                    Response::ERR_INVITEONLYCHAN => Condition::RegistrationRequired,
                    _ => Condition::Forbidden,
                };
                out.push((
                    chan.to_ascii_lowercase(),
                    RoomEvent::Refused(Failure::new(condition, text)),
                ));
            }
        }
        _ => {}
    }
    out
}

/// Hands the hub what a channel tells one of Parley's users.
async fn room_event(
    shared: &Arc<Shared>,
    net: usize,
    user: &Address,
    channel: &str,
    event: parley_adapter::RoomEvent,
) {
    let network = &shared.settings.networks[net];
    let Some(hub) = shared.hub.get() else {
        return;
    };
    let named = shared
        .room_names()
        .get(&(
            net,
            user.to_string().to_ascii_lowercase(),
            channel.to_string(),
        ))
        .cloned();
    let (local, to) = match named {
        Some((local, occupant)) => (local, occupant),
        None => match text::local_of_channel(channel) {
            Some(local) => (local, user.clone()),
            None => return,
        },
    };
    let Ok(room) = Address::new(&local, &network.domain, None) else {
        return;
    };
    let notice = parley_adapter::RoomNotice { room, to, event };
    if let Err(f) = hub
        .submit(&peer(shared, net), Inbound::RoomEvent(notice))
        .await
    {
        debug!(network = %network.name, %channel, failure = %f, "channel traffic not taken");
    }
}

/// A message Parley's user sent did not reach the network's nick (no
/// such nick, or the server ended the connection before it took the
/// line): the gateway reports it to the sender.
async fn failed(
    shared: &Arc<Shared>,
    net: usize,
    user: &Address,
    id: String,
    recipient: Address,
    failure: Failure,
) {
    let Some(hub) = shared.hub.get() else {
        return;
    };
    let _ = hub
        .submit(
            &peer(shared, net),
            Inbound::Failed {
                id,
                sender: user.clone(),
                recipient,
                failure,
            },
        )
        .await;
}

/// The link an inbound item came over.
fn peer(shared: &Shared, net: usize) -> Peer {
    let network = &shared.settings.networks[net];
    Peer {
        adapter: shared.settings.name.clone(),
        protocol: Protocol::Irc,
        domain: network.domain.clone(),
        // Over TLS the server proved its name with its certificate.
        auth: if network.tls.is_some() {
            PeerAuth::Certificate
        } else {
            PeerAuth::None
        },
        tls: network.tls.is_some(),
    }
}

/// A private message from the nick `from` to `user`, handed to the hub.
async fn inbound(
    shared: &Arc<Shared>,
    net: usize,
    user: &Address,
    from: &str,
    text: String,
    notice: bool,
) {
    let network = &shared.settings.networks[net];
    let Some(hub) = shared.hub.get() else {
        return;
    };
    let Ok(sender) = Address::new(&text::nick_to_local(from), &network.domain, None) else {
        debug!(network = %network.name, from, "a nick that is no address: dropped");
        return;
    };
    let mut m = Message::text(
        format!("irc{}", shared.ids.fetch_add(1, Ordering::Relaxed)),
        sender,
        user.clone(),
        &text,
    );
    if notice {
        m.kind = MessageKind::Headline;
    }
    count(shared, net, "in");
    if let Err(f) = hub.submit(&peer(shared, net), Inbound::Message(m)).await {
        info!(network = %network.name, from, to = %user, failure = %f, "IRC message not delivered");
        // Tell the sender, as a NOTICE (never answered, RFC 2812 §3.3.2).
        let key = (net, user.to_string().to_ascii_lowercase());
        let lines = shared.puppets().get(&key).map(|p| p.lines.clone());
        if let (Some(lines), false) = (lines, notice) {
            let why = f.to_string().replace(['\r', '\n'], " ");
            let _ = lines.try_send(Out {
                line: format!("NOTICE {from} :not delivered: {why}"),
                about: None,
                control: None,
                reflect: None,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn followed_nicks_go_in_lines_within_the_limit() {
        let mut w = Watching::default();
        assert!(ison_lines(&w).is_empty());
        for i in 0..40 {
            w.nicks.insert(format!("{i:02}{}", "n".repeat(27)), None);
        }
        for (command, sep) in [("ISON ", " "), ("MONITOR + ", ",")] {
            let lines = list_lines(command, sep, &w);
            assert!(lines.len() > 1);
            let mut seen = 0;
            for l in &lines {
                assert!(l.len() + 2 <= text::MAX_LINE, "{}", l.len());
                let rest = l.strip_prefix(command).unwrap();
                seen += rest.split(sep).count();
            }
            assert_eq!(seen, 40);
        }
    }
}
