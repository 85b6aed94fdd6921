//! The chat rooms Parley hosts, which users of every network join as
//! equals: the room itself is one protocol-independent state machine
//! ([`crate::proto::room`]); here are the rooms of the conference domain,
//! their members' links, the fan-out of every event to each member in
//! the member's own rendering, and persistence.
//!
//! Each member has one outbox: a bounded queue drained by one task, so
//! each member sees the room's events in order, a slow member never
//! holds up the others, and a member whose link takes nothing while
//! `member_queue` notices pile up is removed from the room rather than
//! buffered without limit. Pager-mode members are removed after
//! `max_missed` failed deliveries in a row.

pub mod conference;
pub mod msrp;
pub mod remote;
pub mod render;
pub mod sip;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use parley_adapter::{
    Adapter, Address, Condition, Failure, Occupant, Outbound, RoomAction, RoomAffiliation,
    RoomEvent, RoomInfo, RoomNotice, RoomQuery, RoomRole,
};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use super::Core;
use crate::config::{RoomCreators, RoomsConfig};
use crate::net::Sip;
use crate::proto::room::{Affiliation, Event, Refusal, Room, Settings};
use crate::proto::time::rfc3339;
use crate::router::archive;
use crate::store::{RoomLine, RoomRow, Store, StoreError};
use crate::sys::{now_secs, token};

/// How a member is reached.
#[derive(Clone)]
pub enum Via {
    /// A SIP user agent in pager mode: notices go as MESSAGEs to this URI.
    Pager(String),
    /// A member of another network at this full address, through this
    /// adapter.
    Adapter(Arc<dyn Adapter>, Address),
    /// A SIP user agent in an MSRP session with the room (RFC 7701).
    Msrp(Arc<crate::msrp::SessionHandle>),
}

impl std::fmt::Debug for Via {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Via::Pager(uri) => write!(f, "Pager({uri})"),
            Via::Adapter(a, address) => write!(f, "Adapter({}, {address})", a.name()),
            Via::Msrp(h) => write!(f, "Msrp({})", h.uri()),
        }
    }
}

impl Via {
    /// The network's name, for the console and metrics.
    pub fn network(&self) -> &'static str {
        match self {
            Via::Pager(_) => "sip",
            Via::Msrp(_) => "msrp",
            Via::Adapter(a, _) => a.protocol().name(),
        }
    }

    fn same_link(&self, other: &Via) -> bool {
        match (self, other) {
            (Via::Pager(a), Via::Pager(b)) => a == b,
            (Via::Adapter(x, a), Via::Adapter(y, b)) => x.name() == y.name() && a == b,
            (Via::Msrp(a), Via::Msrp(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

/// Who acts in a room: their identity (`user@domain`, the same on every
/// network, so a ban holds across networks) and how they are reached.
#[derive(Debug, Clone)]
pub struct Who {
    /// `user@domain`, lower case.
    pub id: String,
    /// Their link.
    pub via: Via,
}

/// What waits in a member's outbox.
enum Item {
    /// A line of text for a pager member, with the speaker's nickname for
    /// the From display name.
    Text(Option<String>, String),
    /// A notice for a member of another network.
    Notice(RoomEvent),
    /// Several, in order (what a newcomer learns on entry).
    Many(Vec<Item>),
    /// What a member said, for an MSRP member: the speaker's nickname and
    /// address, the addressee's address for a private message.
    Said {
        nick: String,
        from: String,
        to: Option<String>,
        text: String,
    },
}

struct Link {
    via: Via,
    outbox: mpsc::Sender<Item>,
}

/// One room with its members' links.
pub struct Hosted {
    /// The room.
    pub room: Room,
    links: HashMap<String, Link>,
    joins: VecDeque<u64>,
    created_at: i64,
}

/// The rooms of the conference domain.
pub struct Rooms {
    domain: String,
    config: RoomsConfig,
    store: Arc<dyn Store>,
    rooms: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Hosted>>>>,
    /// Subscriptions to rooms (RFC 4575).
    watchers: conference::Watchers,
    /// NOTIFYs made by changes that came with no SIP handle at hand (an
    /// operator's, a member dropped): sent with the next request or tick.
    notify: Mutex<Vec<Option<(crate::proto::sip::Message, crate::net::Target)>>>,
    /// Members' MSRP sessions (RFC 7701), for BYE.
    sessions: msrp::Sessions,
    /// Parley's users in rooms of other networks.
    remote: remote::Remote,
}

impl std::fmt::Debug for Rooms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rooms")
            .field("domain", &self.domain)
            .finish_non_exhaustive()
    }
}

/// The XMPP condition and text of a room's refusal.
pub fn failure(r: Refusal) -> Failure {
    let condition = match r {
        Refusal::Banned | Refusal::NotAllowed => Condition::Forbidden,
        Refusal::MembersOnly => Condition::RegistrationRequired,
        Refusal::Password => Condition::NotAuthorized,
        Refusal::NickTaken => Condition::Conflict,
        Refusal::BadNick => Condition::JidMalformed,
        Refusal::Full => Condition::ServiceUnavailable,
        Refusal::NotPresent => Condition::NotAcceptable,
        Refusal::NoSuchNick => Condition::ItemNotFound,
    };
    Failure::new(condition, r.to_string())
}

/// The SIP status and reason phrase of a room's refusal.
pub fn status(r: Refusal) -> (u16, String) {
    let code = match r {
        Refusal::Banned | Refusal::MembersOnly | Refusal::Password | Refusal::NotAllowed => 403,
        Refusal::NotPresent => 403,
        // The XEP-0045 409: the nickname belongs to someone else.
        Refusal::NickTaken => 486,
        Refusal::BadNick => 400,
        Refusal::Full => 486,
        Refusal::NoSuchNick => 404,
    };
    (code, r.to_string())
}

/// The SIP status of a failure the room service reports.
pub fn sip_status(f: &Failure) -> (u16, String) {
    let code = match f.condition {
        Condition::ItemNotFound => 404,
        Condition::Forbidden | Condition::NotAllowed | Condition::RegistrationRequired => 403,
        Condition::NotAuthorized => 403,
        Condition::NotAcceptable => 403,
        Condition::Conflict => 486,
        Condition::JidMalformed | Condition::BadRequest => 400,
        Condition::PolicyViolation => 413,
        Condition::ResourceConstraint => 480,
        _ => 503,
    };
    (
        code,
        f.text.clone().unwrap_or_else(|| f.condition.to_string()),
    )
}

impl Rooms {
    /// The rooms kept in the store, with their affiliations and history.
    pub async fn load(
        config: &RoomsConfig,
        domains: &[String],
        store: Arc<dyn Store>,
    ) -> Result<Rooms, StoreError> {
        let domain = config.domain(domains);
        let mut rooms = HashMap::new();
        if config.enabled {
            let mut affiliations: HashMap<String, Vec<(String, String)>> = HashMap::new();
            for (room, member, a) in store.room_affiliations().await? {
                affiliations.entry(room).or_default().push((member, a));
            }
            for row in store.rooms().await? {
                let settings = Settings {
                    public: row.public,
                    members_only: row.members_only,
                    persistent: true,
                    moderated: row.moderated,
                    password: row.password.clone(),
                    history: usize::try_from(row.history).unwrap_or(0),
                    max_members: usize::try_from(row.max_members).unwrap_or(1),
                };
                let mut room = Room::new(&row.address, "", settings);
                room.affiliations.clear();
                room.subject = row.subject.clone();
                for (member, a) in affiliations.remove(&row.address).unwrap_or_default() {
                    if let Some(a) = RoomAffiliation::from_name(&a) {
                        room.affiliations.insert(member, render::affiliation_of(a));
                    }
                }
                let limit = room.settings.history;
                for line in store.room_history(&row.address, limit).await? {
                    room.history.push_back(Event::Message {
                        from: line.nick,
                        text: line.body,
                        at: u64::try_from(line.at).unwrap_or(0),
                    });
                }
                rooms.insert(
                    row.address.clone(),
                    Arc::new(tokio::sync::Mutex::new(Hosted {
                        room,
                        links: HashMap::new(),
                        joins: VecDeque::new(),
                        created_at: row.created_at,
                    })),
                );
            }
        }
        metrics::gauge!("parley_rooms").set(rooms.len() as f64);
        Ok(Rooms {
            domain,
            config: config.clone(),
            store,
            rooms: Mutex::new(rooms),
            watchers: conference::Watchers::default(),
            notify: Mutex::new(Vec::new()),
            sessions: msrp::Sessions::default(),
            remote: remote::Remote::default(),
        })
    }

    /// The conference domain.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// Whether rooms are hosted at all.
    pub fn enabled(&self) -> bool {
        self.config.enabled
    }

    /// True for the conference domain.
    pub fn serves(&self, domain: &str) -> bool {
        self.config.enabled && domain.eq_ignore_ascii_case(&self.domain)
    }

    /// The largest room message, in bytes.
    pub fn max_message_bytes(&self) -> usize {
        self.config.max_message_bytes
    }

    fn get(&self, address: &str) -> Option<Arc<tokio::sync::Mutex<Hosted>>> {
        self.rooms
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(address)
            .cloned()
    }

    fn all(&self) -> Vec<(String, Arc<tokio::sync::Mutex<Hosted>>)> {
        let mut v: Vec<_> = self
            .rooms
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(a, r)| (a.clone(), r.clone()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// Rooms hosted now.
    pub fn count(&self) -> usize {
        self.rooms.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// The settings of a new room, from `[rooms]`.
    pub fn default_settings(&self) -> Settings {
        Settings {
            persistent: self.config.persistent,
            history: self.config.history,
            max_members: self.config.max_members,
            ..Settings::default()
        }
    }

    /// Makes a room; `owner` owns it (none: an operator made it).
    pub async fn create(
        &self,
        address: &str,
        owner: Option<&str>,
        settings: Option<Settings>,
    ) -> Result<Arc<tokio::sync::Mutex<Hosted>>, Failure> {
        let address = address.to_ascii_lowercase();
        let settings = settings.unwrap_or_else(|| self.default_settings());
        let hosted = {
            let mut rooms = self.rooms.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(r) = rooms.get(&address) {
                return Ok(r.clone());
            }
            if rooms.len() >= self.config.max_rooms {
                metrics::counter!("parley_caps_reached_total", "cap" => "rooms").increment(1);
                return Err(Failure::new(
                    Condition::ResourceConstraint,
                    format!("limit of {} rooms reached", self.config.max_rooms),
                ));
            }
            let mut room = Room::new(&address, owner.unwrap_or(""), settings);
            if owner.is_none() {
                room.affiliations.clear();
            }
            let hosted = Arc::new(tokio::sync::Mutex::new(Hosted {
                room,
                links: HashMap::new(),
                joins: VecDeque::new(),
                created_at: now_secs() as i64,
            }));
            rooms.insert(address.clone(), hosted.clone());
            metrics::gauge!("parley_rooms").set(rooms.len() as f64);
            hosted
        };
        info!(room = %address, owner = owner.unwrap_or("(operator)"), "room created");
        let h = hosted.lock().await;
        self.persist(&h).await;
        if h.room.settings.persistent {
            if let Some(owner) = owner {
                self.persist_affiliation(&address, owner, Affiliation::Owner)
                    .await;
            }
        }
        drop(h);
        Ok(hosted)
    }

    async fn persist(&self, h: &Hosted) {
        if !h.room.settings.persistent {
            return;
        }
        let s = &h.room.settings;
        let row = RoomRow {
            address: h.room.address.clone(),
            subject: h.room.subject.clone(),
            public: s.public,
            members_only: s.members_only,
            moderated: s.moderated,
            password: s.password.clone(),
            history: s.history as i64,
            max_members: s.max_members as i64,
            created_at: h.created_at,
        };
        if let Err(e) = self.store.put_room(&row).await {
            warn!(error = %e, room = %row.address, "room not saved");
        }
    }

    async fn persist_affiliation(&self, room: &str, member: &str, a: Affiliation) {
        let name = render::affiliation(a).name();
        if let Err(e) = self
            .store
            .put_room_affiliation(room, &member.to_ascii_lowercase(), name)
            .await
        {
            warn!(error = %e, room, "room affiliation not saved");
        }
    }

    /// Closes a room: everyone present is told and removed, subscriptions
    /// to it end; a persistent room is forgotten by the store too. False
    /// when there was none.
    pub async fn close(&self, core: &Arc<Core>, address: &str, reason: &str) -> bool {
        let address = address.to_ascii_lowercase();
        let hosted = self
            .rooms
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&address);
        let Some(hosted) = hosted else {
            return false;
        };
        metrics::gauge!("parley_rooms").set(self.count() as f64);
        let mut h = hosted.lock().await;
        let nicks: Vec<String> = h.room.members.keys().cloned().collect();
        for nick in nicks {
            let e = Event::Kicked {
                nick: nick.clone(),
                by: "the operator".into(),
                reason: reason.to_string(),
            };
            fan_out(&mut h, &[e], "", None);
            if let Some(m) = h.room.members.remove(&nick) {
                h.links.remove(&m.id.to_ascii_lowercase());
            }
        }
        conference::closed(core, &h);
        if let Err(e) = self.store.remove_room(&address).await {
            warn!(error = %e, room = %address, "room not removed from the store");
        }
        info!(room = %address, "room closed");
        true
    }

    /// Changes a room's settings (an operator's `parley room set`).
    pub async fn configure(
        &self,
        address: &str,
        change: impl FnOnce(&mut Settings, &mut String),
    ) -> Option<RoomView> {
        let hosted = self.get(&address.to_ascii_lowercase())?;
        let mut h = hosted.lock().await;
        let was_persistent = h.room.settings.persistent;
        let Hosted { room, .. } = &mut *h;
        change(&mut room.settings, &mut room.subject);
        room.settings.max_members = room.settings.max_members.clamp(1, self.config.max_members);
        while room.history.len() > room.settings.history {
            room.history.pop_front();
        }
        if h.room.settings.persistent {
            self.persist(&h).await;
            if !was_persistent {
                for (member, a) in h.room.affiliations.clone() {
                    self.persist_affiliation(&h.room.address, &member, a).await;
                }
            }
        } else if was_persistent {
            let _ = self.store.remove_room(&h.room.address).await;
        }
        info!(room = %h.room.address, "room configured");
        drop(h);
        self.views()
            .await
            .into_iter()
            .find(|v| v.address.eq_ignore_ascii_case(address))
    }

    /// An operator removes the member called `nick`; false when no one
    /// has that nickname.
    pub async fn remove(&self, core: &Arc<Core>, address: &str, nick: &str, reason: &str) -> bool {
        let Some(hosted) = self.get(&address.to_ascii_lowercase()) else {
            return false;
        };
        let mut h = hosted.lock().await;
        let Some(m) = h.room.members.remove(nick) else {
            return false;
        };
        let e = Event::Kicked {
            nick: nick.to_string(),
            by: "the operator".into(),
            reason: reason.to_string(),
        };
        let overflowed = fan_out(&mut h, &[e], "", None);
        h.links.remove(&m.id.to_ascii_lowercase());
        for o in overflowed {
            remove_and_tell(core, &mut h, &o, "queue full").await;
        }
        info!(room = %address, nick, "member removed by the operator");
        finish(core, &h).await;
        gauge_members(&h);
        true
    }

    /// Lets go of every member's link (their outbox tasks end) and every
    /// MSRP member's session: for shutdown.
    pub async fn stop(&self) {
        for (_, r) in self.all() {
            r.lock().await.links.clear();
        }
        self.remote.clear();
        for (_, ended) in self.sessions.lock().drain() {
            ended.cancel();
        }
    }

    /// The directory: public rooms of the conference domain, or one room.
    pub async fn directory(&self, query: &RoomQuery) -> Result<Vec<RoomInfo>, Failure> {
        let info = |h: &Hosted| RoomInfo {
            address: Address::parse(&h.room.address)
                .unwrap_or_else(|_| Address::parse("room@invalid").expect("valid")),
            subject: h.room.subject.clone(),
            public: h.room.settings.public,
            members_only: h.room.settings.members_only,
            persistent: h.room.settings.persistent,
            moderated: h.room.settings.moderated,
            password: h.room.settings.password.is_some(),
            occupants: h.room.members.len(),
        };
        match query {
            RoomQuery::Rooms(domain) if self.serves(domain) => {
                let mut out = Vec::new();
                for (_, r) in self.all() {
                    let h = r.lock().await;
                    if h.room.settings.public {
                        out.push(info(&h));
                    }
                }
                Ok(out)
            }
            RoomQuery::Room(address) if self.serves(address.domain()) => {
                match self.get(&address.bare().to_string().to_ascii_lowercase()) {
                    Some(r) => Ok(vec![info(&*r.lock().await)]),
                    None => Err(Failure::new(Condition::ItemNotFound, "no such room")),
                }
            }
            _ => Err(Failure::new(
                Condition::ItemNotFound,
                "not a conference domain",
            )),
        }
    }

    /// The rooms with their members, for the console.
    pub async fn views(&self) -> Vec<RoomView> {
        let mut out = Vec::new();
        for (address, r) in self.all() {
            let h = r.lock().await;
            out.push(RoomView {
                address,
                subject: h.room.subject.clone(),
                settings: h.room.settings.clone(),
                members: h
                    .room
                    .members
                    .iter()
                    .map(|(nick, m)| MemberView {
                        nick: nick.clone(),
                        id: m.id.clone(),
                        role: render::role_name(m.role),
                        affiliation: render::affiliation(m.affiliation).name(),
                        network: h
                            .links
                            .get(&m.id.to_ascii_lowercase())
                            .map_or("?", |l| l.via.network()),
                    })
                    .collect(),
                affiliations: {
                    let mut a: Vec<(String, &'static str)> = h
                        .room
                        .affiliations
                        .iter()
                        .map(|(id, a)| (id.clone(), render::affiliation(*a).name()))
                        .collect();
                    a.sort();
                    a
                },
            });
        }
        out
    }
}

/// A room as the console shows it.
#[derive(Debug, Clone)]
pub struct RoomView {
    /// Its address.
    pub address: String,
    /// Its subject.
    pub subject: String,
    /// Its settings.
    pub settings: Settings,
    /// Who is present.
    pub members: Vec<MemberView>,
    /// Long-lived standings.
    pub affiliations: Vec<(String, &'static str)>,
}

/// A member present, as the console shows it.
#[derive(Debug, Clone)]
pub struct MemberView {
    /// The nickname.
    pub nick: String,
    /// `user@domain`.
    pub id: String,
    /// The role.
    pub role: &'static str,
    /// The affiliation.
    pub affiliation: &'static str,
    /// The network the member is on.
    pub network: &'static str,
}

/// What a member sees of the occupant called `nick`: the real address
/// only when the addressee is a moderator (a semi-anonymous room).
fn occupant_of(room: &Room, nick: &str, moderator: bool) -> Occupant {
    match room.members.get(nick) {
        Some(m) => Occupant {
            nick: nick.to_string(),
            role: render::role(m.role),
            affiliation: render::affiliation(m.affiliation),
            real: if moderator {
                Address::parse(&m.id).ok()
            } else {
                None
            },
        },
        None => Occupant {
            nick: nick.to_string(),
            role: RoomRole::None,
            affiliation: RoomAffiliation::None,
            real: None,
        },
    }
}

/// Sends `events` to every member (and to the departed ones named in
/// them, whose links are still here), in each member's rendering; pager
/// members do not get back what they said themselves (`speaker`).
/// Returns the members whose outbox overflowed.
fn fan_out(h: &mut Hosted, events: &[Event], id: &str, speaker: Option<&str>) -> Vec<String> {
    let mut overflowed = Vec::new();
    let room = &h.room;
    // Who is present under which nickname and role, looked up once per
    // event batch rather than once per member (a room of a thousand).
    let present: HashMap<String, (&str, crate::proto::room::Role)> = room
        .members
        .iter()
        .map(|(nick, m)| (m.id.to_ascii_lowercase(), (nick.as_str(), m.role)))
        .collect();
    for (member_id, link) in &h.links {
        let standing = present.get(member_id.as_str());
        let own_nick = standing.map(|(n, _)| n.to_string()).or_else(|| {
            // A departed member still learns of their own departure.
            events.iter().find_map(|e| match e {
                Event::Left { nick }
                | Event::Dropped { nick }
                | Event::Kicked { nick, .. }
                | Event::Banned { nick, .. }
                    if !room.members.contains_key(nick) =>
                {
                    Some(nick.clone())
                }
                _ => None,
            })
        });
        let moderator = standing.is_some_and(|(_, r)| *r >= crate::proto::room::Role::Moderator);
        for e in events {
            if let Event::Private { to, .. } = e {
                if own_nick.as_deref() != Some(to.as_str()) {
                    continue;
                }
            }
            let item = match &link.via {
                Via::Msrp(_) => match e {
                    Event::Message { from, text, .. } | Event::Private { from, text, .. } => {
                        let from_id = room.members.get(from).map(|m| m.id.clone());
                        if from_id
                            .as_deref()
                            .is_some_and(|f| f.eq_ignore_ascii_case(member_id))
                        {
                            continue;
                        }
                        vec![Item::Said {
                            nick: from.clone(),
                            from: from_id.unwrap_or_default(),
                            to: matches!(e, Event::Private { .. }).then(|| member_id.clone()),
                            text: text.clone(),
                        }]
                    }
                    _ => vec![Item::Text(None, render::line(e, own_nick.as_deref()))],
                },
                Via::Pager(_) => {
                    if let Event::Message { .. } = e {
                        if speaker.is_some_and(|s| s.eq_ignore_ascii_case(member_id)) {
                            continue;
                        }
                    }
                    vec![Item::Text(
                        speaker_nick(e),
                        render::line(e, own_nick.as_deref()),
                    )]
                }
                Via::Adapter(..) => render::notices(e, id, own_nick.as_deref(), &|n| {
                    occupant_of(room, n, moderator)
                })
                .into_iter()
                .map(Item::Notice)
                .collect(),
            };
            for i in item {
                if link.outbox.try_send(i).is_err() {
                    overflowed.push(member_id.clone());
                    break;
                }
            }
        }
    }
    overflowed.sort();
    overflowed.dedup();
    overflowed
}

fn speaker_nick(e: &Event) -> Option<String> {
    match e {
        Event::Message { from, .. } | Event::Private { from, .. } => Some(from.clone()),
        _ => None,
    }
}

/// Starts the outbox of a new member.
fn open_link(core: &Arc<Core>, sip: &Sip, room: &str, who: &Who) -> Link {
    let (tx, rx) = mpsc::channel(core.rooms.config.member_queue);
    tokio::spawn(outbox(
        core.clone(),
        sip.clone(),
        room.to_string(),
        who.clone(),
        rx,
    ));
    Link {
        via: who.via.clone(),
        outbox: tx,
    }
}

/// Drains one member's outbox in order.
/// The task holds the core while the member's link lasts: the link goes
/// when the member leaves, and [`Rooms::stop`] drops every link at shutdown.
async fn outbox(core: Arc<Core>, sip: Sip, room: String, who: Who, mut rx: mpsc::Receiver<Item>) {
    let room_address = Address::parse(&room).ok();
    let mut missed = 0u32;
    let mut pending: VecDeque<Item> = VecDeque::new();
    loop {
        let item = match pending.pop_front() {
            Some(i) => i,
            None => match rx.recv().await {
                Some(Item::Many(items)) => {
                    pending.extend(items);
                    continue;
                }
                Some(i) => i,
                None => return,
            },
        };
        let delivered = match (&who.via, item) {
            (Via::Pager(uri), Item::Text(nick, text)) => {
                let from = match nick {
                    Some(n) => format!("\"{}\" <sip:{room}>", n.replace(['"', '\\'], "")),
                    None => format!("<sip:{room}>"),
                };
                super::pager::send_to_address(
                    &core,
                    &sip,
                    uri,
                    &from,
                    &format!("<{uri}>"),
                    "text/plain;charset=UTF-8",
                    text.as_bytes(),
                )
                .await
            }
            (Via::Adapter(adapter, to), Item::Notice(event)) => {
                let Some(room) = room_address.clone() else {
                    return;
                };
                let notice = RoomNotice {
                    room,
                    to: to.clone(),
                    event,
                };
                let security = core.router.policy().security(to.domain());
                match adapter.deliver(Outbound::Room(notice), security).await {
                    Ok(()) => true,
                    Err(f) => {
                        debug!(to = %to, failure = %f, "room notice not delivered");
                        false
                    }
                }
            }
            (
                Via::Msrp(handle),
                Item::Said {
                    nick,
                    from,
                    to,
                    text,
                },
            ) => {
                let to = to.map_or_else(|| format!("sip:{room}"), |t| format!("sip:{t}"));
                let body = msrp::cpim(
                    (Some(&nick), &format!("sip:{from}")),
                    &to,
                    &text,
                    now_secs(),
                );
                handle.send("message/cpim", &body).await
            }
            (Via::Msrp(handle), Item::Text(_, text)) => {
                let body = msrp::cpim(
                    (None, &format!("sip:{room}")),
                    &format!("sip:{}", who.id),
                    &text,
                    now_secs(),
                );
                handle.send("message/cpim", &body).await
            }
            _ => true,
        };
        if delivered {
            missed = 0;
            metrics::counter!("parley_room_deliveries_total", "network" => who.via.network())
                .increment(1);
            continue;
        }
        missed += 1;
        if missed >= core.rooms.config.max_missed {
            info!(room = %room, member = %who.id, "member removed: deliveries failed");
            drop_member(&core, &room, &who.id).await;
            return;
        }
    }
}

/// Removes a member whose link failed or overflowed (XEP-0045 status 333).
async fn drop_member(core: &Arc<Core>, room: &str, id: &str) {
    let Some(hosted) = core.rooms.get(room) else {
        return;
    };
    let mut h = hosted.lock().await;
    remove_and_tell(core, &mut h, id, "not reachable").await;
}

async fn remove_and_tell(core: &Arc<Core>, h: &mut Hosted, id: &str, reason: &str) {
    let mut gone = vec![id.to_string()];
    // Bounded: each round removes at least one member.
    while let Some(id) = gone.pop() {
        h.links.remove(&id);
        let Ok(left) = h.room.leave(&id) else {
            continue;
        };
        let events: Vec<Event> = left
            .into_iter()
            .map(|e| match e {
                Event::Left { nick } => Event::Dropped { nick },
                e => e,
            })
            .collect();
        metrics::counter!("parley_room_members_dropped_total").increment(1);
        debug!(room = %h.room.address, member = %id, reason, "member dropped");
        gone.extend(fan_out(h, &events, "", None));
    }
    finish(core, h).await;
}

/// Tells the room's subscribers (RFC 4575) of a change of roster or
/// subject.
fn roster_changed(core: &Arc<Core>, h: &Hosted) {
    let out = conference::changed(core, h);
    if !out.is_empty() {
        core.rooms
            .notify
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(out);
    }
}

/// After a change of membership: gauges, subscribers, and a temporary
/// room with no one left goes.
async fn finish(core: &Arc<Core>, h: &Hosted) {
    roster_changed(core, h);
    if h.room.is_done() {
        core.rooms
            .rooms
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&h.room.address);
        metrics::gauge!("parley_rooms").set(core.rooms.count() as f64);
        info!(room = %h.room.address, "temporary room closed: no one left");
    }
}

/// Whether `id` may create a room.
pub(crate) fn may_create(core: &Core, id: &str) -> bool {
    let domain = id.rsplit_once('@').map_or("", |(_, d)| d);
    match core.rooms.config.create {
        RoomCreators::Local => core.is_local_domain(domain),
        RoomCreators::Anyone => true,
        RoomCreators::Operators => false,
    }
}

/// One member's request of a room. `Ok` once the room took it; every
/// member (the requester too) learns what came of it through its outbox.
pub async fn act(
    core: &Arc<Core>,
    sip: &Sip,
    room: &str,
    who: Who,
    action: RoomAction,
) -> Result<(), Failure> {
    let result = act_in(core, sip, room, who, action).await;
    // What the change tells the room's subscribers, at once.
    conference::flush(core, sip).await;
    result
}

async fn act_in(
    core: &Arc<Core>,
    sip: &Sip,
    room: &str,
    who: Who,
    action: RoomAction,
) -> Result<(), Failure> {
    let rooms = &core.rooms;
    let room = room.to_ascii_lowercase();
    let hosted = match rooms.get(&room) {
        Some(h) => h,
        None if matches!(action, RoomAction::Join { .. }) => {
            if !may_create(core, &who.id) {
                return Err(Failure::new(
                    Condition::ItemNotFound,
                    "no such room, and you may not create one",
                ));
            }
            rooms.create(&room, Some(&who.id), None).await?
        }
        None => return Err(Failure::new(Condition::ItemNotFound, "no such room")),
    };
    let mut h = hosted.lock().await;
    if !rooms.get(&room).is_some_and(|r| Arc::ptr_eq(&r, &hosted)) {
        // Closed while this request waited.
        return Err(Failure::new(Condition::ItemNotFound, "no such room"));
    }
    let now = now_secs();
    let id = token();
    let refusal = failure;
    let mut speaker = None;
    let events: Vec<Event> = match action {
        RoomAction::Join {
            nick,
            password,
            history,
        } => {
            return join(
                core,
                sip,
                &mut h,
                who,
                &nick,
                password.as_deref(),
                history,
                now,
            )
            .await;
        }
        RoomAction::Leave => {
            let events = h.room.leave(&who.id).map_err(refusal)?;
            let overflowed = fan_out(&mut h, &events, &id, None);
            h.links.remove(&who.id);
            for o in overflowed {
                remove_and_tell(core, &mut h, &o, "queue full").await;
            }
            finish(core, &h).await;
            gauge_members(&h);
            return Ok(());
        }
        RoomAction::Say { id: msg_id, text } => {
            if text.len() > rooms.config.max_message_bytes {
                return Err(Failure::new(
                    Condition::PolicyViolation,
                    format!("longer than {} bytes", rooms.config.max_message_bytes),
                ));
            }
            let events = h.room.say(&who.id, &text, now).map_err(refusal)?;
            speaker = Some(who.id.clone());
            keep_line(core, &h, &events, &who, &text).await;
            return finish_say(core, &mut h, events, &msg_id, speaker.as_deref()).await;
        }
        RoomAction::Private {
            nick,
            id: msg_id,
            text,
        } => {
            if text.len() > rooms.config.max_message_bytes {
                return Err(Failure::new(
                    Condition::PolicyViolation,
                    format!("longer than {} bytes", rooms.config.max_message_bytes),
                ));
            }
            let e = h.room.whisper(&who.id, &nick, &text).map_err(refusal)?;
            return finish_say(core, &mut h, vec![e], &msg_id, None).await;
        }
        RoomAction::Subject(text) => {
            let events = h.room.set_subject(&who.id, &text).map_err(refusal)?;
            rooms.persist(&h).await;
            events
        }
        RoomAction::SetRole { nick, role, reason } => match render::role_of(role) {
            None => h.room.kick(&who.id, &nick, &reason).map_err(refusal)?,
            Some(r) => h.room.set_role(&who.id, &nick, r).map_err(refusal)?,
        },
        RoomAction::SetAffiliation {
            member,
            affiliation,
            reason,
        } => {
            let target = member.bare().to_string().to_ascii_lowercase();
            let a = render::affiliation_of(affiliation);
            let present = h.room.nick_of(&target).map(str::to_string);
            let events = match (a, present) {
                (Affiliation::Outcast, Some(nick)) => {
                    h.room.ban(&who.id, &nick, &reason).map_err(refusal)?
                }
                (_, present) => {
                    h.room
                        .set_affiliation(&who.id, &target, a)
                        .map_err(refusal)?;
                    match present {
                        Some(nick) => {
                            if let Some(m) = h.room.members.get_mut(&nick) {
                                m.affiliation = a;
                            }
                            vec![Event::RoleChanged {
                                role: h.room.members[&nick].role,
                                nick,
                            }]
                        }
                        None => Vec::new(),
                    }
                }
            };
            if h.room.settings.persistent {
                rooms.persist_affiliation(&room, &target, a).await;
            }
            events
        }
        _ => return Err(Failure::bare(Condition::FeatureNotImplemented)),
    };
    let _ = speaker;
    let overflowed = fan_out(&mut h, &events, &id, None);
    // The removed learn of it, then their links go.
    for e in &events {
        if let Event::Kicked { nick, .. } | Event::Banned { nick, .. } = e {
            let gone: Vec<String> = h
                .links
                .keys()
                .filter(|k| h.room.nick_of(k).is_none())
                .cloned()
                .collect();
            for k in gone {
                debug!(room = %room, member = %k, nick = %nick, "removed");
                h.links.remove(&k);
            }
        }
    }
    for o in overflowed {
        remove_and_tell(core, &mut h, &o, "queue full").await;
    }
    finish(core, &h).await;
    gauge_members(&h);
    Ok(())
}

async fn finish_say(
    core: &Arc<Core>,
    h: &mut Hosted,
    events: Vec<Event>,
    id: &str,
    speaker: Option<&str>,
) -> Result<(), Failure> {
    metrics::counter!("parley_room_messages_total").increment(1);
    let overflowed = fan_out(h, &events, id, speaker);
    for o in overflowed {
        remove_and_tell(core, h, &o, "queue full").await;
    }
    Ok(())
}

/// Archives a room message under the archive's mode and keeps it in a
/// persistent room's history.
async fn keep_line(core: &Arc<Core>, h: &Hosted, events: &[Event], who: &Who, text: &str) {
    let Some(Event::Message { from, at, .. }) = events.first() else {
        return;
    };
    let domain_of = |id: &str| id.rsplit_once('@').map_or("", |(_, d)| d).to_string();
    let speaker_domain = domain_of(&who.id);
    let cross = h
        .room
        .members
        .values()
        .any(|m| !core.is_local_domain(&domain_of(&m.id)));
    let peer = if core.is_local_domain(&speaker_domain) {
        String::new()
    } else {
        speaker_domain
    };
    core.router.archive().record(
        archive::Fact {
            source: who.via.network(),
            destination: "room",
            sender: &who.id,
            recipient: &h.room.address,
            peer_domain: &peer,
            auth: "",
            decision: "delivered".into(),
            content_type: "text/plain;charset=UTF-8",
            body: text.as_bytes(),
        },
        cross,
    );
    if h.room.settings.persistent && h.room.settings.history > 0 {
        let line = RoomLine {
            nick: from.clone(),
            body: text.to_string(),
            at: *at as i64,
        };
        if let Err(e) = core
            .rooms
            .store
            .put_room_line(&h.room.address, &line, h.room.settings.history)
            .await
        {
            warn!(error = %e, room = %h.room.address, "room history not saved");
        }
    }
}

fn gauge_members(h: &Hosted) {
    metrics::gauge!("parley_room_members", "room" => h.room.address.clone())
        .set(h.room.members.len() as f64);
}

#[allow(clippy::too_many_arguments)]
async fn join(
    core: &Arc<Core>,
    sip: &Sip,
    h: &mut Hosted,
    who: Who,
    nick: &str,
    password: Option<&str>,
    history: Option<usize>,
    now: u64,
) -> Result<(), Failure> {
    let present = h.room.nick_of(&who.id).is_some();
    if !present {
        let config = &core.rooms.config;
        while h
            .joins
            .front()
            .is_some_and(|t| now.saturating_sub(*t) >= 60)
        {
            h.joins.pop_front();
        }
        if h.joins.len() >= config.joins_per_minute as usize {
            metrics::counter!("parley_caps_reached_total", "cap" => "room joins per minute")
                .increment(1);
            return Err(Failure::new(
                Condition::ResourceConstraint,
                "too many entries into this room this minute",
            ));
        }
    }
    let created = h.room.members.is_empty()
        && h.room.affiliation(&who.id) == Affiliation::Owner
        && h.room.history.is_empty()
        && h.room.subject.is_empty()
        && h.links.is_empty()
        && now_secs() as i64 - h.created_at < 2;
    let events = h.room.join(&who.id, nick, password).map_err(failure)?;
    if present {
        // A new nickname, or the same one again (a presence refresh).
        if let Some(link) = h.links.get_mut(&who.id) {
            if !link.via.same_link(&who.via) {
                // The member came back over another link: it takes over.
                *link = open_link(core, sip, &h.room.address, &who);
            }
        }
        let overflowed = fan_out(h, &events, "", None);
        for o in overflowed {
            remove_and_tell(core, h, &o, "queue full").await;
        }
        if events.is_empty() {
            // The same nickname again: XEP-0045 clients that rejoin expect
            // their own presence back.
            welcome(h, &who.id, Some(0), false);
        } else {
            roster_changed(core, h);
        }
        return Ok(());
    }
    h.joins.push_back(now);
    // Everyone else learns of the newcomer; the newcomer gets the roster,
    // its own presence, the history and the subject (XEP-0045 §7.2).
    let overflowed = fan_out(h, &events, "", None);
    let link = open_link(core, sip, &h.room.address, &who);
    h.links.insert(who.id.clone(), link);
    welcome(h, &who.id, history, created);
    info!(room = %h.room.address, member = %who.id, nick, network = who.via.network(), "member joined");
    for o in overflowed {
        remove_and_tell(core, h, &o, "queue full").await;
    }
    roster_changed(core, h);
    gauge_members(h);
    Ok(())
}

/// What a newcomer learns on entry, in its rendering.
fn welcome(h: &mut Hosted, id: &str, history: Option<usize>, created: bool) {
    let room = &h.room;
    let Some(link) = h.links.get(id) else {
        return;
    };
    let Some(own) = room.nick_of(id).map(str::to_string) else {
        return;
    };
    let moderator = room.members[&own].role >= crate::proto::room::Role::Moderator;
    let count = history
        .unwrap_or(room.settings.history)
        .min(room.history.len());
    let past: Vec<&Event> = room
        .history
        .iter()
        .skip(room.history.len() - count)
        .collect();
    let items: Vec<Item> = match &link.via {
        Via::Pager(_) | Via::Msrp(_) => {
            let others: Vec<&str> = room
                .members
                .keys()
                .filter(|n| **n != own)
                .map(String::as_str)
                .collect();
            let mut text = format!(
                "*** You are in {} as {own} ({}).",
                room.address,
                render::role_name(room.members[&own].role)
            );
            if others.is_empty() {
                text.push_str(" No one else is here.");
            } else {
                text.push_str(&format!(" Also here: {}.", others.join(", ")));
            }
            if !room.subject.is_empty() {
                text.push_str(&format!(" Topic: {}", room.subject));
            }
            text.push_str(" Send /help for the commands.");
            if !past.is_empty() {
                text.push_str("\nRecent messages:");
                for e in past {
                    if let Event::Message { at, .. } = e {
                        text.push_str(&format!("\n[{}] {}", rfc3339(*at), render::line(e, None)));
                    }
                }
            }
            vec![Item::Text(None, text)]
        }
        Via::Adapter(..) => {
            let mut items = Vec::new();
            for nick in room.members.keys().filter(|n| **n != own) {
                items.push(Item::Notice(RoomEvent::Occupant {
                    occupant: occupant_of(room, nick, moderator),
                    change: parley_adapter::Change::Present,
                    own: false,
                    created: false,
                }));
            }
            items.push(Item::Notice(RoomEvent::Occupant {
                occupant: occupant_of(room, &own, true),
                change: parley_adapter::Change::Present,
                own: true,
                created,
            }));
            for e in past {
                if let Event::Message { from, text, at } = e {
                    items.push(Item::Notice(RoomEvent::Message {
                        nick: from.clone(),
                        id: format!("{}-{at}", room.address),
                        text: text.clone(),
                        delay: Some(rfc3339(*at)),
                    }));
                }
            }
            items.push(Item::Notice(RoomEvent::Subject {
                nick: None,
                text: room.subject.clone(),
            }));
            items
        }
    };
    // One slot of the outbox: a roster as large as the room fits.
    let _ = link.outbox.try_send(Item::Many(items));
}

/// Sends one member alone a notice from the room (a command's answer).
pub fn tell(core: &Arc<Core>, sip: &Sip, room: &str, who: &Who, text: String) {
    let (core, sip, room, who) = (core.clone(), sip.clone(), room.to_string(), who.clone());
    tokio::spawn(async move {
        match &who.via {
            Via::Pager(uri) => {
                super::pager::send_to_address(
                    &core,
                    &sip,
                    uri,
                    &format!("<sip:{room}>"),
                    &format!("<{uri}>"),
                    "text/plain;charset=UTF-8",
                    text.as_bytes(),
                )
                .await;
            }
            Via::Msrp(handle) => {
                let body = msrp::cpim(
                    (None, &format!("sip:{room}")),
                    &format!("sip:{}", who.id),
                    &text,
                    now_secs(),
                );
                handle.send("message/cpim", &body).await;
            }
            Via::Adapter(adapter, to) => {
                let Ok(room) = Address::parse(&room) else {
                    return;
                };
                let notice = RoomNotice {
                    room,
                    to: to.clone(),
                    event: RoomEvent::Notice(text),
                };
                let security = core.router.policy().security(to.domain());
                let _ = adapter.deliver(Outbound::Room(notice), security).await;
            }
        }
    });
}

/// The room's roster and subject as text, for `/who` and `/topic`.
pub async fn describe(core: &Core, room: &str) -> Option<(Vec<String>, String)> {
    let hosted = core.rooms.get(&room.to_ascii_lowercase())?;
    let h = hosted.lock().await;
    let roster = h
        .room
        .members
        .iter()
        .map(|(nick, m)| match m.role {
            crate::proto::room::Role::Moderator => format!("@{nick}"),
            crate::proto::room::Role::Visitor => format!("({nick})"),
            _ => nick.clone(),
        })
        .collect();
    Some((roster, h.room.subject.clone()))
}
