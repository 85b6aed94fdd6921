//! Parley's users in rooms of other networks (RFC 7702 §4, the other way
//! round): a pager-mode SIP user writes to `sip:ROOM%25SERVICE@<conference
//! domain>` — `sip:dev%25muc.example.org@conference.example.com` (the `%`
//! escaped, RFC 3261 §19.1.2) is the room `dev@muc.example.org` — with the
//! same commands as in Parley's own
//! rooms. Parley keeps one occupant per SIP user in the remote room
//! (`user@domain/parley`) and carries the traffic both ways: what the
//! room says comes back as MESSAGEs from that address, the speaker's
//! nickname in the display name and the text.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use parley_adapter::{
    Address, Change, Condition, Failure, Outbound, RoomAction, RoomEvent, RoomNotice, RoomRequest,
    RoomRole,
};
use tracing::{debug, info};

use super::{open_link, Item, Link, Who};
use crate::net::Sip;
use crate::proto::room::{command, Command, HELP};
use crate::router::Destination;
use crate::simple::Core;

/// The resource of the occupant Parley keeps for each user.
pub const RESOURCE: &str = "parley";

/// One user's place in a remote room.
struct Membership {
    nick: String,
    /// The user has seen its own presence: it is in.
    joined: bool,
    occupants: BTreeSet<String>,
    subject: String,
    link: Link,
}

/// The remote rooms Parley's users are in, by (user, room).
#[derive(Default)]
pub struct Remote {
    memberships: Mutex<HashMap<(String, String), Membership>>,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote").finish_non_exhaustive()
    }
}

impl Remote {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Membership>> {
        self.memberships.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Memberships now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// None.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets every membership (their outbox tasks end): for shutdown.
    pub fn clear(&self) {
        self.lock().clear();
    }
}

/// The remote room a conference-domain user part names (`dev%muc.example.org`).
pub fn remote_room(user: &str) -> Option<Address> {
    let (room, service) = user.split_once('%')?;
    Address::new(room, service, None).ok()
}

/// The address of a remote room on Parley's side (the `%` escaped).
fn gateway(core: &Core, room: &Address) -> String {
    format!(
        "{}%25{}@{}",
        room.user(),
        room.domain(),
        core.rooms.domain()
    )
}

/// A pager-mode user's line for the remote room `room`: a command or
/// something to say. `Ok` once it is on its way.
pub(crate) async fn request(
    core: &Arc<Core>,
    sip: &Sip,
    room: Address,
    who: Who,
    user: &str,
    text: String,
) -> Result<(), (u16, String)> {
    let key = (who.id.clone(), room.to_string().to_ascii_lowercase());
    let own_nick = core.rooms.remote.lock().get(&key).map(|m| m.nick.clone());
    let gateway_address = gateway(core, &room);
    let member = |nick: &Option<String>| {
        nick.clone().ok_or((
            403,
            "Forbidden (you are not in this room: /join first)".to_string(),
        ))
    };
    let tell = |text: String| super::tell(core, sip, &gateway_address, &who, text);
    let (action, nick) = match command(&text) {
        None => (
            RoomAction::Say {
                id: crate::sys::token(),
                text,
            },
            member(&own_nick)?,
        ),
        Some(Err(usage)) => return Err((400, format!("Bad Request ({usage})"))),
        Some(Ok(c)) => match c {
            Command::Join { nick, password } => {
                let nick = nick.unwrap_or_else(|| user.to_string());
                let link = open_link(core, sip, &gateway_address, &who);
                core.rooms
                    .remote
                    .lock()
                    .entry(key.clone())
                    .or_insert(Membership {
                        nick: nick.clone(),
                        joined: false,
                        occupants: BTreeSet::new(),
                        subject: String::new(),
                        link,
                    });
                (
                    RoomAction::Join {
                        nick: nick.clone(),
                        password,
                        history: None,
                    },
                    nick,
                )
            }
            Command::Nick(new) => {
                member(&own_nick)?;
                (
                    RoomAction::Join {
                        nick: new.clone(),
                        password: None,
                        history: Some(0),
                    },
                    new,
                )
            }
            Command::Leave => (RoomAction::Leave, member(&own_nick)?),
            Command::Msg { to, text } => (
                RoomAction::Private {
                    nick: to,
                    id: crate::sys::token(),
                    text,
                },
                member(&own_nick)?,
            ),
            Command::Topic(Some(text)) => (RoomAction::Subject(text), member(&own_nick)?),
            Command::Kick { nick, reason } => (
                RoomAction::SetRole {
                    nick,
                    role: RoomRole::None,
                    reason,
                },
                member(&own_nick)?,
            ),
            Command::Me(text) => (
                RoomAction::Say {
                    id: crate::sys::token(),
                    text: format!("/me {text}"),
                },
                member(&own_nick)?,
            ),
            Command::Who | Command::Topic(None) => {
                let answer = match core.rooms.remote.lock().get(&key) {
                    None => return Err((403, "Forbidden (you are not in this room)".into())),
                    Some(m) if matches!(c, Command::Who) => format!(
                        "Here: {}",
                        m.occupants.iter().cloned().collect::<Vec<_>>().join(", ")
                    ),
                    Some(m) if m.subject.is_empty() => "No topic is set.".into(),
                    Some(m) => format!("Topic: {}", m.subject),
                };
                tell(answer);
                return Ok(());
            }
            Command::Help => {
                tell(format!("Commands: {HELP}"));
                return Ok(());
            }
            Command::Ban { .. } => {
                return Err((
                    501,
                    "Not Implemented (ban from the room's own network)".into(),
                ))
            }
        },
    };
    let leaving = matches!(action, RoomAction::Leave);
    let (user_part, domain) = who.id.split_once('@').unwrap_or((&who.id, ""));
    let from = Address::new(user_part, domain, Some(RESOURCE))
        .map_err(|e| (400, format!("Bad Request ({e})")))?;
    let request = RoomRequest {
        from,
        room: room.with_resource(Some(&nick)),
        action,
    };
    let sent = send(core, request).await;
    if leaving || (sent.is_err() && own_nick.is_none()) {
        core.rooms.remote.lock().remove(&key);
    }
    sent.map_err(|f| super::sip_status(&f))
}

/// Hands a request to the adapter that reaches the room's domain, as the
/// domain policy allows.
async fn send(core: &Core, request: RoomRequest) -> Result<(), Failure> {
    let domain = request.room.domain().to_string();
    let Destination::Adapter(adapter) = core.router.destination(&domain).await else {
        return Err(Failure::new(
            Condition::ItemNotFound,
            format!("{domain} is not reached through another network"),
        ));
    };
    core.router.check_domain(&domain).map_err(|r| {
        Failure::new(
            Condition::PolicyViolation,
            r.refusal.map_or("refused", |x| x.name()).to_string(),
        )
    })?;
    let security = core.router.policy().security(&domain);
    adapter
        .deliver(Outbound::RoomRequest(request), security)
        .await
}

/// What a remote room tells one of Parley's users.
pub async fn notice(core: &Arc<Core>, n: RoomNotice) -> Result<(), Failure> {
    let key = (
        n.to.bare().to_string().to_ascii_lowercase(),
        n.room.bare().to_string().to_ascii_lowercase(),
    );
    let mut all = core.rooms.remote.lock();
    let Some(m) = all.get_mut(&key) else {
        debug!(room = %n.room, to = %n.to, "room traffic for no one of ours");
        return Ok(());
    };
    let mut lines: Vec<(Option<String>, String)> = Vec::new();
    let mut gone = false;
    match n.event {
        RoomEvent::Occupant {
            occupant,
            change,
            own,
            ..
        } => {
            let nick = occupant.nick.clone();
            match change {
                Change::Present if own => {
                    m.occupants.insert(nick.clone());
                    m.nick = nick.clone();
                    if !m.joined {
                        m.joined = true;
                        let others: Vec<&str> = m
                            .occupants
                            .iter()
                            .filter(|o| **o != nick)
                            .map(String::as_str)
                            .collect();
                        let mut text = format!(
                            "*** You are in {} as {nick} ({}).",
                            n.room,
                            occupant.role.name()
                        );
                        if others.is_empty() {
                            text.push_str(" No one else is here.");
                        } else {
                            text.push_str(&format!(" Also here: {}.", others.join(", ")));
                        }
                        lines.push((None, text));
                    }
                }
                Change::Present => {
                    if m.occupants.insert(nick.clone()) && m.joined {
                        lines.push((None, format!("*** {nick} has joined")));
                    }
                }
                Change::Renamed(to) => {
                    m.occupants.remove(&nick);
                    m.occupants.insert(to.clone());
                    if own {
                        m.nick = to.clone();
                    }
                    lines.push((None, format!("*** {nick} is now known as {to}")));
                }
                Change::Standing => {}
                other => {
                    m.occupants.remove(&nick);
                    let why = |r: &str| {
                        if r.is_empty() {
                            String::new()
                        } else {
                            format!(": {r}")
                        }
                    };
                    let line = match (&other, own) {
                        (Change::Kicked(r), true) => {
                            format!("*** You were removed from the room{}", why(r))
                        }
                        (Change::Banned(r), true) => {
                            format!("*** You were banned from the room{}", why(r))
                        }
                        (Change::Kicked(r), false) => format!("*** {nick} was removed{}", why(r)),
                        (Change::Banned(r), false) => format!("*** {nick} was banned{}", why(r)),
                        (_, true) => "*** You have left the room".to_string(),
                        _ => format!("*** {nick} has left"),
                    };
                    lines.push((None, line));
                    gone = own;
                }
            }
        }
        // The room reflects what the user said: not back to them.
        RoomEvent::Message {
            nick, delay: None, ..
        } if nick == m.nick => {}
        RoomEvent::Message {
            nick, text, delay, ..
        } => {
            let line = match text.strip_prefix("/me ") {
                Some(action) => format!("* {nick} {action}"),
                None => format!("<{nick}> {text}"),
            };
            let line = match delay {
                Some(at) => format!("[{at}] {line}"),
                None => line,
            };
            lines.push((Some(nick), line));
        }
        RoomEvent::Private { nick, text, .. } => {
            lines.push((Some(nick.clone()), format!("[private] <{nick}> {text}")));
        }
        RoomEvent::Subject { nick, text } => {
            m.subject = text.clone();
            if !text.is_empty() {
                lines.push((
                    None,
                    match nick {
                        Some(by) if m.joined => format!("*** {by} set the topic: {text}"),
                        _ => format!("*** Topic: {text}"),
                    },
                ));
            }
        }
        RoomEvent::Notice(text) => lines.push((None, format!("*** {text}"))),
        RoomEvent::Refused(f) => {
            lines.push((None, format!("*** The room refused: {f}")));
            gone = !m.joined;
        }
        _ => {}
    }
    for (nick, line) in lines {
        if m.link.outbox.try_send(Item::Text(nick, line)).is_err() {
            gone = true;
            break;
        }
    }
    if gone {
        info!(room = %n.room, member = %n.to, "no longer in the remote room");
        all.remove(&key);
    }
    Ok(())
}
