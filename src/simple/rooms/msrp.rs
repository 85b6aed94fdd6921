//! Session-mode rooms (RFC 7701): an INVITE with an MSRP offer to a room
//! enters it; Parley is the conference focus and MSRP switch. The answer
//! carries `a=chatroom:nickname private-messages`. What members say comes
//! to the other MSRP members as `message/cpim` whose From names the
//! speaker, with the nickname as its display name (a private message has
//! the addressee in To); a NICKNAME request takes a nickname (425 when it
//! is someone else's, 424 when it is not allowed). A line starting with
//! `/` is a command, as in pager mode. BYE, or the MSRP connection
//! closing, leaves the room.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use parley_adapter::{Condition, RoomAction};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use super::{act, Via, Who};
use crate::msrp::{SessionEvent, SessionHandle};
use crate::net::{Incoming, Sip};
use crate::proto::cpim::Cpim;
use crate::proto::sip::Message;
use crate::simple::auth::Sender;
use crate::simple::Core;

/// What the focus advertises (RFC 7701 §5).
pub const CHATROOM: &str = "chatroom:nickname private-messages";

/// The room sessions, by Call-ID: BYE ends one.
#[derive(Debug, Default)]
pub struct Sessions {
    by_call: Mutex<HashMap<String, CancellationToken>>,
}

impl Sessions {
    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, CancellationToken>> {
        self.by_call.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sessions now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// None.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// An INVITE to `room` from `sender` (authenticated, or let in by the
/// domain policy).
pub(crate) async fn invite(
    core: &Arc<Core>,
    sip: &Sip,
    mut inc: Incoming,
    msg: &Message,
    sender: &Sender,
    room: String,
) {
    let Some(user) = sender.user.clone() else {
        return inc
            .responder
            .reply(403, "Forbidden (a room member needs a user address)", &[])
            .await;
    };
    let id = format!("{}@{}", user.to_ascii_lowercase(), sender.domain);
    // The nickname: the From display name, else the user part.
    let nick = msg
        .from()
        .and_then(Result::ok)
        .and_then(|f| {
            f.display.map(|d| {
                String::from_utf8_lossy(d)
                    .trim_matches('"')
                    .trim()
                    .to_string()
            })
        })
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| user.clone());
    if core.rooms.get(&room).is_none() && !super::may_create(core, &id) {
        return inc
            .responder
            .reply(404, "Not Found (no such room)", &[])
            .await;
    }
    let domain = core.rooms.domain().to_string();
    let Some(accepted) =
        crate::simple::session::accept(core, &mut inc, msg, &domain, &[CHATROOM]).await
    else {
        return;
    };
    let handle = Arc::new(accepted.handle);
    let ended = CancellationToken::new();
    core.rooms
        .sessions
        .lock()
        .insert(accepted.call.clone(), ended.clone());
    let (core, sip) = (core.clone(), sip.clone());
    tokio::spawn(async move {
        // The member hears the room once the session carries messages:
        // Parley connects (active), or waits for the member to.
        let up = if accepted.active {
            handle.connect().await
        } else {
            handle.bound(std::time::Duration::from_secs(30)).await
        };
        let who = Who {
            id: id.clone(),
            via: Via::Msrp(handle.clone()),
        };
        let entered = if up {
            act(
                &core,
                &sip,
                &room,
                who.clone(),
                RoomAction::Join {
                    nick: nick.clone(),
                    password: None,
                    history: None,
                },
            )
            .await
        } else {
            Err(parley_adapter::Failure::new(
                Condition::RemoteServerTimeout,
                "the MSRP session never carried anything",
            ))
        };
        match entered {
            Ok(()) => {
                info!(room = %room, member = %id, nick, msrp = %accepted.own, "MSRP member joined");
                run(&core, &sip, &room, &who, &user, accepted.events, &ended).await;
                if let Err(f) = act(&core, &sip, &room, who.clone(), RoomAction::Leave).await {
                    debug!(failure = %f, "leaving after the session");
                }
            }
            Err(f) => {
                // The room refused the entry: say why in the session,
                // then end it.
                info!(room = %room, member = %id, failure = %f, "MSRP entry refused");
                let text = format!("*** {}", f.text.as_deref().unwrap_or("refused"));
                let body = cpim(
                    (None, &format!("sip:{room}")),
                    &format!("sip:{id}"),
                    &text,
                    crate::sys::now_secs(),
                );
                let _ = handle.send_confirmed("message/cpim", &body).await;
            }
        }
        // Still listed: not ended by the member's BYE, so Parley ends the
        // SIP side.
        if core.rooms.sessions.lock().remove(&accepted.call).is_some() {
            if let Some(d) = accepted.dialog.as_ref() {
                if let Some(bye) = d.bye(&accepted.contact) {
                    let _ = sip.request(bye, &d.target()).await;
                }
            }
        }
        drop(handle);
    });
}

/// Carries what the member sends into the room until the session ends.
async fn run(
    core: &Arc<Core>,
    sip: &Sip,
    room: &str,
    who: &Who,
    user: &str,
    mut events: tokio::sync::mpsc::Receiver<SessionEvent>,
    ended: &CancellationToken,
) {
    loop {
        let event = tokio::select! {
            _ = ended.cancelled() => return,
            e = events.recv() => e,
        };
        match event {
            Some(SessionEvent::Message(m)) => {
                let Some((to, text)) = read(&m.content_type, m.body) else {
                    continue;
                };
                let private = to.as_deref().and_then(|uri| {
                    let key = crate::proto::cpim::address_key(uri)?;
                    (!key.eq_ignore_ascii_case(room)).then_some(key)
                });
                let action = match private {
                    Some(addressee) => match nick_of(core, room, &addressee).await {
                        Some(nick) => RoomAction::Private {
                            nick,
                            id: m.message_id.clone(),
                            text,
                        },
                        None => {
                            if m.failure_report {
                                let _ = who_handle(who).report_failure(&m.message_id, 0, 404).await;
                            }
                            continue;
                        }
                    },
                    None => match super::sip::action_of(core, sip, room, who, user, text).await {
                        Ok(Some(a)) => a,
                        Ok(None) => continue,
                        Err((_, reason)) => {
                            super::tell(core, sip, room, who, format!("*** {reason}"));
                            continue;
                        }
                    },
                };
                if let Err(f) = act(core, sip, room, who.clone(), action).await {
                    debug!(room = %room, failure = %f, "MSRP member's message refused");
                    if m.failure_report {
                        let code = match f.condition {
                            Condition::PolicyViolation => 413,
                            Condition::Forbidden | Condition::NotAcceptable => 403,
                            Condition::ItemNotFound => 404,
                            _ => 400,
                        };
                        let _ = who_handle(who).report_failure(&m.message_id, 0, code).await;
                    }
                    super::tell(
                        core,
                        sip,
                        room,
                        who,
                        format!("*** {}", f.text.unwrap_or_default()),
                    );
                }
            }
            Some(SessionEvent::Nickname { nickname, answer }) => {
                let outcome = act(
                    core,
                    sip,
                    room,
                    who.clone(),
                    RoomAction::Join {
                        nick: nickname,
                        password: None,
                        history: Some(0),
                    },
                )
                .await;
                let reply = match outcome {
                    Ok(()) => (200, "OK".to_string()),
                    Err(f) if f.condition == Condition::Conflict => {
                        (425, "Nickname reserved or already in use".to_string())
                    }
                    Err(f) => (424, f.text.unwrap_or_else(|| "Nickname not allowed".into())),
                };
                let _ = answer.send(reply);
            }
            _ => return,
        }
    }
}

fn who_handle(who: &Who) -> &SessionHandle {
    match &who.via {
        Via::Msrp(h) => h,
        _ => unreachable!("an MSRP member has an MSRP link"),
    }
}

/// The addressee (CPIM To) and the text of a message a member sent:
/// `text/plain`, or `text/plain` in `message/cpim`. None for anything
/// else (an isComposing, an IMDN).
fn read(content_type: &str, body: Vec<u8>) -> Option<(Option<String>, String)> {
    let base = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match base.as_str() {
        "text/plain" => Some((None, String::from_utf8(body).ok()?)),
        "message/cpim" => {
            let cpim = Cpim::parse(&Bytes::from(body), &Default::default()).ok()?;
            let inner = cpim
                .content_type()
                .unwrap_or("text/plain")
                .to_ascii_lowercase();
            if !inner.starts_with("text/plain") {
                return None;
            }
            let to = cpim.to_uri().map(str::to_string);
            Some((to, String::from_utf8(cpim.body.to_vec()).ok()?))
        }
        _ => None,
    }
}

async fn nick_of(core: &Core, room: &str, id: &str) -> Option<String> {
    let hosted = core.rooms.get(room)?;
    let h = hosted.lock().await;
    h.room.nick_of(id).map(str::to_string)
}

/// A BYE for a room session: the member leaves. False when it is for no
/// such session.
pub async fn bye(core: &Core, inc: &mut Incoming) -> bool {
    let call = inc
        .message
        .headers()
        .get(crate::proto::sip::HeaderName::CallId)
        .map(|v| String::from_utf8_lossy(v).trim().to_string())
        .unwrap_or_default();
    let Some(ended) = core.rooms.sessions.lock().remove(&call) else {
        return false;
    };
    ended.cancel();
    inc.responder.reply(200, "OK", &[]).await;
    true
}

/// The CPIM body a member of an MSRP session gets: from the speaker
/// (`from`: nickname and address) or the room, to the member or the room.
pub fn cpim(from: (Option<&str>, &str), to: &str, text: &str, now: u64) -> Vec<u8> {
    let from = match from.0 {
        Some(nick) => format!("\"{}\" <{}>", nick.replace(['"', '\\'], ""), from.1),
        None => format!("<{}>", from.1),
    };
    format!(
        "From: {from}\r\nTo: <{to}>\r\nDateTime: {}\r\n\r\nContent-Type: text/plain;charset=UTF-8\r\n\r\n{text}",
        crate::proto::time::rfc3339(now)
    )
    .into_bytes()
}
