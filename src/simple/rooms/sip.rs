//! SIP requests to the conference domain. Pager-mode rooms (in the manner
//! of Kamailio's imc module) for clients that only send MESSAGE: a
//! MESSAGE to the room is said to every member, and a body that starts
//! with `/` is a command (`/join`, `/leave`, `/nick`, `/who`, `/topic`,
//! `/msg`, `/kick`, `/me`, `/help`; `//` sends a line that starts with a
//! slash). Answers to commands come back as MESSAGEs from the room.

use std::sync::Arc;

use bytes::Bytes;
use parley_adapter::{RoomAction, RoomRole};

use super::{act, describe, sip_status, tell, Via, Who};
use crate::net::{Incoming, Sip};
use crate::proto::room::{command, Command, HELP};
use crate::proto::sip::{Message, Method};
use crate::simple::auth::Sender;
use crate::simple::Core;

/// What the conference domain allows.
pub const ALLOW: &str = "INVITE, ACK, BYE, CANCEL, MESSAGE, SUBSCRIBE, OPTIONS";

/// Whether `msg` is for the conference domain.
pub fn addressed(core: &Core, msg: &Message) -> Option<String> {
    if !core.rooms.enabled() {
        return None;
    }
    let uri = msg.request_uri()?.ok()?;
    let sip = uri.as_sip()?;
    let host = sip.host.to_string();
    // The user part unescaped: `dev%25muc.example.org` names the remote
    // room `dev@muc.example.org`.
    core.rooms.serves(&host).then(|| match sip.user {
        Some(user) => {
            let user = crate::proto::sip::grammar::unescape(user.as_bytes());
            format!(
                "{}@{}",
                String::from_utf8_lossy(&user).to_ascii_lowercase(),
                core.rooms.domain()
            )
        }
        None => String::new(),
    })
}

/// The text of a MESSAGE body: `text/plain`, or `text/plain` inside
/// `message/cpim`.
fn text_of(msg: &Message) -> Result<String, (u16, &'static str)> {
    let ct = crate::router::content_type(msg);
    let base = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let body = Bytes::copy_from_slice(msg.body());
    let (ct, body) = match base.as_str() {
        "text/plain" | "" => (base, body),
        "message/cpim" => {
            let cpim = crate::proto::cpim::Cpim::parse(&body, &Default::default())
                .map_err(|_| (400, "Bad Request (malformed message/cpim)"))?;
            let inner = cpim
                .content_type()
                .unwrap_or("text/plain")
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            (inner, cpim.body)
        }
        _ => return Err((415, "Unsupported Media Type")),
    };
    if ct != "text/plain" && !ct.is_empty() {
        return Err((415, "Unsupported Media Type"));
    }
    String::from_utf8(body.to_vec()).map_err(|_| (400, "Bad Request (text is not UTF-8)"))
}

/// Serves one request for the conference domain; `sender` passed the
/// proxy's authentication and the domain policy.
pub(crate) async fn request(
    core: Arc<Core>,
    sip: Sip,
    mut inc: Incoming,
    msg: &Message,
    sender: &Sender,
    room: String,
) {
    let allow = [("Allow", ALLOW.to_string())];
    match msg.method() {
        Some(Method::Message) => {}
        Some(Method::Invite) if !room.is_empty() => {
            return super::msrp::invite(&core, &sip, inc, msg, sender, room).await;
        }
        Some(Method::Subscribe) if !room.is_empty() => {
            return super::conference::subscribe(&core, &sip, inc, Some(room)).await;
        }
        Some(Method::Options) => {
            return inc
                .responder
                .reply(
                    200,
                    "OK",
                    &[
                        ("Allow", ALLOW.to_string()),
                        ("Accept", "text/plain, message/cpim".into()),
                    ],
                )
                .await
        }
        _ => return inc.responder.reply(405, "Method Not Allowed", &allow).await,
    }
    if room.is_empty() {
        return inc
            .responder
            .reply(404, "Not Found (no room named)", &[])
            .await;
    }
    let Some(user) = sender.user.as_deref() else {
        return inc
            .responder
            .reply(403, "Forbidden (a room member needs a user address)", &[])
            .await;
    };
    let id = format!("{}@{}", user.to_ascii_lowercase(), sender.domain);
    let text = match text_of(msg) {
        Ok(t) => t,
        Err((status, reason)) => {
            let extra = if status == 415 {
                vec![("Accept", "text/plain, message/cpim".to_string())]
            } else {
                Vec::new()
            };
            return inc.responder.reply(status, reason, &extra).await;
        }
    };
    if text.len() > core.rooms.max_message_bytes() {
        return inc
            .responder
            .reply(413, "Request Entity Too Large", &[])
            .await;
    }
    let who = Who {
        id: id.clone(),
        via: Via::Pager(format!("sip:{id}")),
    };
    // A room of another network (`room%service@` the conference domain).
    if let Some(remote) = room
        .split_once('@')
        .and_then(|(u, _)| super::remote::remote_room(u))
    {
        return match super::remote::request(&core, &sip, remote, who, user, text).await {
            Ok(()) => inc.responder.reply(200, "OK", &[]).await,
            Err((status, reason)) => inc.responder.reply(status, &reason, &[]).await,
        };
    }
    let action = match action_of(&core, &sip, &room, &who, user, text).await {
        Ok(Some(a)) => a,
        Ok(None) => return inc.responder.reply(200, "OK", &[]).await,
        Err((status, reason)) => return inc.responder.reply(status, &reason, &[]).await,
    };
    match act(&core, &sip, &room, who, action).await {
        Ok(()) => inc.responder.reply(200, "OK", &[]).await,
        Err(f) => {
            let (status, reason) = sip_status(&f);
            inc.responder.reply(status, &reason, &[]).await
        }
    }
}

/// What a line a member wrote asks of the room: a command (`/join`, …)
/// or something to say. `Ok(None)` for a question the room answered the
/// member alone (`/who`, `/topic`, `/help`); `Err` with the SIP status for
/// a command used wrongly.
pub(super) async fn action_of(
    core: &Arc<Core>,
    sip: &Sip,
    room: &str,
    who: &Who,
    user: &str,
    text: String,
) -> Result<Option<RoomAction>, (u16, String)> {
    let id = &who.id;
    Ok(Some(match command(&text) {
        None => RoomAction::Say {
            id: crate::sys::token(),
            text,
        },
        Some(Err(usage)) => return Err((400, format!("Bad Request ({usage})"))),
        Some(Ok(c)) => match c {
            Command::Join { nick, password } => RoomAction::Join {
                nick: nick.unwrap_or_else(|| user.to_string()),
                password,
                history: None,
            },
            Command::Leave => RoomAction::Leave,
            Command::Nick(nick) => {
                if !is_member(core, room, id).await {
                    return Err((
                        403,
                        "Forbidden (you are not in this room: /join first)".into(),
                    ));
                }
                RoomAction::Join {
                    nick,
                    password: None,
                    history: Some(0),
                }
            }
            Command::Who | Command::Topic(None) | Command::Help => {
                let answer = match (c, describe(core, room).await) {
                    (Command::Help, _) => format!("Commands: {HELP}"),
                    (_, None) => return Err((404, "Not Found (no such room)".into())),
                    (Command::Who, Some((roster, _))) if roster.is_empty() => {
                        "No one is here.".to_string()
                    }
                    (Command::Who, Some((roster, _))) => format!("Here: {}", roster.join(", ")),
                    (_, Some((_, subject))) if subject.is_empty() => "No topic is set.".into(),
                    (_, Some((_, subject))) => format!("Topic: {subject}"),
                };
                tell(core, sip, room, who, answer);
                return Ok(None);
            }
            Command::Topic(Some(text)) => RoomAction::Subject(text),
            Command::Msg { to, text } => RoomAction::Private {
                nick: to,
                id: crate::sys::token(),
                text,
            },
            Command::Kick { nick, reason } => RoomAction::SetRole {
                nick,
                role: RoomRole::None,
                reason,
            },
            Command::Ban { nick, reason } => {
                let member = match core.rooms.get(room) {
                    Some(h) => h.lock().await.room.members.get(&nick).map(|m| m.id.clone()),
                    None => None,
                };
                let Some(member) = member.and_then(|m| parley_adapter::Address::parse(&m).ok())
                else {
                    return Err((404, "Not Found (no one here has that nickname)".into()));
                };
                RoomAction::SetAffiliation {
                    member,
                    affiliation: parley_adapter::RoomAffiliation::Outcast,
                    reason,
                }
            }
            Command::Me(text) => RoomAction::Say {
                id: crate::sys::token(),
                text: format!("/me {text}"),
            },
        },
    }))
}

async fn is_member(core: &Core, room: &str, id: &str) -> bool {
    match core.rooms.get(room) {
        Some(h) => h.lock().await.room.nick_of(id).is_some(),
        None => false,
    }
}
