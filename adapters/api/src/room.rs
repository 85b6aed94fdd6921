//! Chat rooms as every network sees them: what a member asks of a room
//! Parley hosts ([`RoomRequest`]), what the room tells each member
//! ([`RoomNotice`]), and what a room directory shows ([`RoomInfo`]). The
//! model is XEP-0045's roles and affiliations, the richest of the room
//! models; SIP (RFC 4575, RFC 7701) and IRC render a subset of it.

use crate::{Address, Failure};

/// A member's standing for this visit (XEP-0045 §5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RoomRole {
    /// Not present (a role change to none is a kick).
    None,
    /// Present, may not speak in a moderated room.
    Visitor,
    /// Present, may speak.
    Participant,
    /// May kick and change roles.
    Moderator,
}

impl RoomRole {
    /// The XEP-0045 name.
    pub fn name(self) -> &'static str {
        match self {
            RoomRole::None => "none",
            RoomRole::Visitor => "visitor",
            RoomRole::Participant => "participant",
            RoomRole::Moderator => "moderator",
        }
    }

    /// The role of an XEP-0045 name.
    pub fn from_name(name: &str) -> Option<RoomRole> {
        Some(match name {
            "none" => RoomRole::None,
            "visitor" => RoomRole::Visitor,
            "participant" => RoomRole::Participant,
            "moderator" => RoomRole::Moderator,
            _ => return None,
        })
    }
}

/// A user's long-lived standing in the room (XEP-0045 §5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RoomAffiliation {
    /// Banned.
    Outcast,
    /// No standing.
    None,
    /// May enter a members-only room.
    Member,
    /// May ban and grant membership.
    Admin,
    /// Owns the room.
    Owner,
}

impl RoomAffiliation {
    /// The XEP-0045 name.
    pub fn name(self) -> &'static str {
        match self {
            RoomAffiliation::Outcast => "outcast",
            RoomAffiliation::None => "none",
            RoomAffiliation::Member => "member",
            RoomAffiliation::Admin => "admin",
            RoomAffiliation::Owner => "owner",
        }
    }

    /// The affiliation of an XEP-0045 name.
    pub fn from_name(name: &str) -> Option<RoomAffiliation> {
        Some(match name {
            "outcast" => RoomAffiliation::Outcast,
            "none" => RoomAffiliation::None,
            "member" => RoomAffiliation::Member,
            "admin" => RoomAffiliation::Admin,
            "owner" => RoomAffiliation::Owner,
            _ => return None,
        })
    }
}

/// What a member of another network asks of a room Parley hosts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomRequest {
    /// Who asks: the member's full address on its network (an XMPP full
    /// JID), where the room's notices go.
    pub from: Address,
    /// The room (bare: `dev@conference.example.com`).
    pub room: Address,
    /// What is asked.
    pub action: RoomAction,
}

/// What a member asks.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RoomAction {
    /// Enter under `nick`, or take `nick` when already present.
    Join {
        /// The nickname.
        nick: String,
        /// The room's password, when given.
        password: Option<String>,
        /// How many past messages to replay; `None` is the room's setting.
        history: Option<usize>,
    },
    /// Leave.
    Leave,
    /// Say something to everyone.
    Say {
        /// The message id on the member's network, echoed back.
        id: String,
        /// The text.
        text: String,
    },
    /// Say something to one member.
    Private {
        /// The addressee's nickname.
        nick: String,
        /// The message id.
        id: String,
        /// The text.
        text: String,
    },
    /// Set the subject.
    Subject(String),
    /// Give a present member a role; `RoomRole::None` removes them.
    SetRole {
        /// Whose.
        nick: String,
        /// The new role.
        role: RoomRole,
        /// Why.
        reason: String,
    },
    /// Give a user an affiliation; `Outcast` bans them.
    SetAffiliation {
        /// Whose (a bare address).
        member: Address,
        /// The new affiliation.
        affiliation: RoomAffiliation,
        /// Why.
        reason: String,
    },
}

/// One occupant as the room shows it to a member (XEP-0045 §7.2.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Occupant {
    /// The nickname.
    pub nick: String,
    /// The role; `None` when they are gone.
    pub role: RoomRole,
    /// The affiliation.
    pub affiliation: RoomAffiliation,
    /// The occupant's real address, shown to moderators only
    /// (a semi-anonymous room).
    pub real: Option<Address>,
}

/// Why an occupant's presence changed, for the XEP-0045 status codes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Change {
    /// Entered (or was already present when the addressee entered).
    Present,
    /// Left of their own accord.
    Left,
    /// Took another nickname (303): the old one leaves with this.
    Renamed(String),
    /// Removed by a moderator (307).
    Kicked(String),
    /// Banned (301).
    Banned(String),
    /// Removed because their link stopped taking what the room sends
    /// (333, XEP-0045 §9.12 “removed due to a technical problem”).
    Dropped,
    /// Their role or affiliation changed.
    Standing,
}

/// What the room tells one member of another network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomNotice {
    /// The room (bare).
    pub room: Address,
    /// The member (full address).
    pub to: Address,
    /// What happened.
    pub event: RoomEvent,
}

/// What happened, as one member sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RoomEvent {
    /// An occupant's presence: entered, left, renamed, kicked, banned.
    Occupant {
        /// The occupant.
        occupant: Occupant,
        /// What changed.
        change: Change,
        /// It is the addressee themself (status 110).
        own: bool,
        /// The addressee's entry created the room (status 201).
        created: bool,
    },
    /// A message to everyone, or replayed history.
    Message {
        /// The speaker's nickname.
        nick: String,
        /// The message id.
        id: String,
        /// The text.
        text: String,
        /// For history: when it was said, RFC 3339 (XEP-0203).
        delay: Option<String>,
    },
    /// A message to the addressee alone.
    Private {
        /// The speaker's nickname.
        nick: String,
        /// The message id.
        id: String,
        /// The text.
        text: String,
    },
    /// The subject, on entry and when it changes.
    Subject {
        /// Who set it (none: the room).
        nick: Option<String>,
        /// The subject.
        text: String,
    },
    /// A message from the room itself (a notice).
    Notice(String),
    /// The addressee's request was refused after it was taken (for
    /// example the entry, when the room refused it asynchronously).
    Refused(Failure),
}

/// A room as a directory shows it (XEP-0045 §6 disco).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomInfo {
    /// Its address.
    pub address: Address,
    /// Its subject.
    pub subject: String,
    /// Listed in the directory.
    pub public: bool,
    /// Only members may enter.
    pub members_only: bool,
    /// Kept when empty.
    pub persistent: bool,
    /// Only participants may speak.
    pub moderated: bool,
    /// A password is needed.
    pub password: bool,
    /// Occupants now.
    pub occupants: usize,
}

/// What an adapter asks of the room directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomQuery {
    /// The public rooms of a conference domain.
    Rooms(String),
    /// One room.
    Room(Address),
}
