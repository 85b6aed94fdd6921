//! SUBSCRIBE to a room with the conference event package (RFC 4575 over
//! RFC 6665): the subscriber gets the room's roster and subject at once
//! and again whenever they change, each time the full document with a
//! growing version. Refreshes and unsubscriptions come inside the
//! subscription's dialog; a subscription that is not refreshed ends with
//! `terminated;reason=timeout`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tracing::debug;

use super::Hosted;
use crate::net::{Incoming, Sip, Target};
use crate::proto::conference::{self, Info, User};
use crate::proto::sip::build::RequestBuilder;
use crate::proto::sip::typed::NameAddr;
use crate::proto::sip::{HeaderName, Message, Transport};
use crate::simple::Core;
use crate::sys::now_secs;

/// The shortest subscription granted (423 below it) and the longest.
const MIN_EXPIRES: u32 = 60;
const MAX_EXPIRES: u32 = 3600;

/// One subscription to a room, with its dialog as the notifier sees it.
#[derive(Debug, Clone)]
struct Watcher {
    room: String,
    call_id: String,
    local_tag: String,
    local_uri: String,
    remote_uri: String,
    remote_tag: String,
    remote_target: String,
    route_set: Vec<String>,
    source: SocketAddr,
    transport: Transport,
    event_id: Option<String>,
    cseq: u32,
    version: u32,
    expires_at: u64,
}

/// The subscriptions to rooms, by Call-ID.
#[derive(Debug, Default)]
pub struct Watchers {
    by_call: Mutex<HashMap<String, Watcher>>,
}

impl Watchers {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Watcher>> {
        self.by_call.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Subscriptions now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// No subscriptions.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }
}

/// The Event package and id of a SUBSCRIBE, when it is `conference`.
fn event(msg: &Message) -> Option<Option<String>> {
    let raw = msg.headers().get(HeaderName::Event)?;
    let text = String::from_utf8_lossy(raw);
    let mut parts = text.split(';');
    let package = parts.next()?.trim();
    if !package.eq_ignore_ascii_case(conference::EVENT) {
        return None;
    }
    let id = parts.find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("id")
            .then(|| v.trim().to_string())
    });
    Some(id)
}

fn call_id(msg: &Message) -> String {
    msg.headers()
        .get(HeaderName::CallId)
        .map(|v| String::from_utf8_lossy(v).trim().to_string())
        .unwrap_or_default()
}

/// Whether `msg` (a SUBSCRIBE with a To tag) belongs to a room
/// subscription.
pub fn owns(core: &Core, msg: &Message) -> bool {
    core.rooms.watchers.lock().contains_key(&call_id(msg))
}

fn expires(msg: &Message) -> Result<u32, ()> {
    match msg.headers().get(HeaderName::Expires) {
        None => Ok(MAX_EXPIRES),
        Some(v) => String::from_utf8_lossy(v)
            .trim()
            .parse::<u32>()
            .map(|e| e.min(MAX_EXPIRES))
            .map_err(|_| ()),
    }
}

/// A SUBSCRIBE for `room` (outside a dialog), or a refresh or an end of
/// one (inside).
pub(crate) async fn subscribe(
    core: &Arc<Core>,
    sip: &Sip,
    mut inc: Incoming,
    room: Option<String>,
) {
    let msg = inc.message.clone();
    let Some(event_id) = event(&msg) else {
        return inc
            .responder
            .reply(
                489,
                "Bad Event",
                &[("Allow-Events", conference::EVENT.to_string())],
            )
            .await;
    };
    let Ok(expires) = expires(&msg) else {
        return inc.responder.reply(400, "Bad Request (Expires)", &[]).await;
    };
    if expires != 0 && expires < MIN_EXPIRES {
        return inc
            .responder
            .reply(
                423,
                "Interval Too Brief",
                &[("Min-Expires", MIN_EXPIRES.to_string())],
            )
            .await;
    }
    let call = call_id(&msg);
    let now = now_secs();
    let existing = core.rooms.watchers.lock().get(&call).cloned();
    let watcher = match (existing, room) {
        (Some(mut w), _) => {
            w.expires_at = now + u64::from(expires);
            w
        }
        (None, Some(room)) => {
            if core.rooms.get(&room).is_none() {
                return inc
                    .responder
                    .reply(404, "Not Found (no such room)", &[])
                    .await;
            }
            let Some(w) = dialog(&inc, &room, event_id, now + u64::from(expires)) else {
                return inc
                    .responder
                    .reply(400, "Bad Request (From, To or Contact)", &[])
                    .await;
            };
            w
        }
        (None, None) => {
            return inc
                .responder
                .reply(481, "Call/Transaction Does Not Exist", &[])
                .await
        }
    };
    let contact = crate::simple::presence::our_contact(core, inc.transport);
    inc.responder
        .reply_with_tag(
            200,
            "OK",
            &watcher.local_tag,
            &[("Expires", expires.to_string()), ("Contact", contact)],
        )
        .await;
    // The state now, at once (RFC 6665 §4.2.1.2); the last one when the
    // subscription ends.
    let Some(hosted) = core.rooms.get(&watcher.room) else {
        return;
    };
    let h = hosted.lock().await;
    let mut w = watcher;
    let state = if expires == 0 {
        core.rooms.watchers.lock().remove(&call);
        "terminated;reason=timeout".to_string()
    } else {
        format!("active;expires={expires}")
    };
    let out = notify(core, &mut w, &h, &state);
    if expires != 0 {
        core.rooms.watchers.lock().insert(call, w);
    }
    drop(h);
    send(core, sip, [out]).await;
}

fn dialog(
    inc: &Incoming,
    room: &str,
    event_id: Option<String>,
    expires_at: u64,
) -> Option<Watcher> {
    let msg = &inc.message;
    let h = msg.headers();
    let from = NameAddr::parse(h.get(HeaderName::From)?, "From").ok()?;
    let to = NameAddr::parse(h.get(HeaderName::To)?, "To").ok()?;
    let contact = h
        .values(HeaderName::Contact)
        .next()
        .and_then(|v| NameAddr::parse(v, "Contact").ok())
        .map(|c| String::from_utf8_lossy(c.uri_raw).into_owned())?;
    Some(Watcher {
        room: room.to_string(),
        call_id: call_id(msg),
        local_tag: crate::sys::token(),
        local_uri: String::from_utf8_lossy(to.uri_raw).into_owned(),
        remote_uri: String::from_utf8_lossy(from.uri_raw).into_owned(),
        remote_tag: from.tag()?.to_string(),
        remote_target: contact,
        route_set: h
            .values(HeaderName::RecordRoute)
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .collect(),
        source: inc.source,
        transport: inc.transport,
        event_id,
        cseq: 0,
        version: 0,
        expires_at,
    })
}

/// The room's state as RFC 4575 shows it.
fn document(h: &Hosted, version: u32) -> String {
    let users: Vec<User> = h
        .room
        .members
        .iter()
        .map(|(nick, m)| {
            let network = h
                .links
                .get(&m.id.to_ascii_lowercase())
                .map_or("sip", |l| l.via.network());
            let scheme = if network == "xmpp" { "xmpp" } else { "sip" };
            User {
                entity: format!("{scheme}:{}", m.id),
                display: nick.clone(),
                role: super::render::role_name(m.role).to_string(),
            }
        })
        .collect();
    conference::document(&Info {
        entity: &format!("sip:{}", h.room.address),
        version,
        subject: &h.room.subject,
        users: &users,
    })
}

/// The NOTIFY for one subscriber, with the next version and CSeq.
fn notify(core: &Core, w: &mut Watcher, h: &Hosted, state: &str) -> Option<(Message, Target)> {
    w.cseq += 1;
    w.version += 1;
    let body = document(h, w.version);
    let event = match &w.event_id {
        Some(id) => format!("{};id={id}", conference::EVENT),
        None => conference::EVENT.to_string(),
    };
    let request = RequestBuilder::new("NOTIFY", &w.remote_target)
        .headers("Route", &w.route_set)
        .header("From", &format!("<{}>;tag={}", w.local_uri, w.local_tag))
        .header("To", &format!("<{}>;tag={}", w.remote_uri, w.remote_tag))
        .header("Call-ID", &w.call_id)
        .header("CSeq", &format!("{} NOTIFY", w.cseq))
        .header("Max-Forwards", "70")
        .header(
            "Contact",
            &crate::simple::presence::our_contact(core, w.transport),
        )
        .header("Event", &event)
        .header("Subscription-State", state)
        .body(conference::CONTENT_TYPE, body.as_bytes())
        .map_err(|e| debug!(error = %e, "NOTIFY not made"))
        .ok()?;
    let target = w
        .route_set
        .first()
        .and_then(|r| crate::simple::targets::route_target(r.as_bytes(), w.transport))
        .or_else(|| {
            crate::proto::sip::Uri::parse(w.remote_target.as_bytes())
                .ok()
                .and_then(|u| {
                    u.as_sip()
                        .and_then(|s| crate::simple::targets::address_target(s, w.transport))
                })
        })
        .unwrap_or_else(|| Target::new(w.transport, w.source));
    Some((request, target))
}

/// The NOTIFYs for every subscriber of the room `h` after a change.
pub(super) fn changed(core: &Core, h: &Hosted) -> Vec<Option<(Message, Target)>> {
    let now = now_secs();
    let mut watchers = core.rooms.watchers.lock();
    watchers
        .values_mut()
        .filter(|w| w.room == h.room.address)
        .map(|w| {
            let left = w.expires_at.saturating_sub(now);
            notify(core, w, h, &format!("active;expires={left}"))
        })
        .collect()
}

/// Sends NOTIFYs; a subscriber that answers 481 or cannot be reached
/// loses its subscription (RFC 6665 §4.2.2).
pub(super) async fn send(
    core: &Arc<Core>,
    sip: &Sip,
    out: impl IntoIterator<Item = Option<(Message, Target)>>,
) {
    for (request, target) in out.into_iter().flatten() {
        let call = call_id(&request);
        let rooms = Arc::downgrade(core);
        let on_response: crate::net::OnResponse = Arc::new(move |m: Message| {
            let status = m.status().unwrap_or(0);
            if status == 481
                || status == 408
                || (400..500).contains(&status) && status != 401 && status != 407
            {
                if let Some(core) = rooms.upgrade() {
                    if core.rooms.watchers.lock().remove(&call).is_some() {
                        debug!(status, "room subscription ended by the subscriber");
                    }
                }
            }
        });
        sip.request_with(request, &target, on_response, None).await;
    }
}

/// Ends the subscriptions that were not refreshed.
pub async fn sweep(core: &Arc<Core>, sip: &Sip) {
    let now = now_secs();
    let expired: Vec<Watcher> = {
        let mut watchers = core.rooms.watchers.lock();
        let gone: Vec<String> = watchers
            .iter()
            .filter(|(_, w)| w.expires_at <= now)
            .map(|(k, _)| k.clone())
            .collect();
        gone.iter().filter_map(|k| watchers.remove(k)).collect()
    };
    for mut w in expired {
        let out = match core.rooms.get(&w.room) {
            Some(hosted) => {
                let h = hosted.lock().await;
                notify(core, &mut w, &h, "terminated;reason=timeout")
            }
            None => None,
        };
        send(core, sip, [out]).await;
    }
}

/// Ends every subscription to a room that closed (sent with the next
/// flush).
pub(super) fn closed(core: &Arc<Core>, h: &Hosted) {
    let gone: Vec<Watcher> = {
        let mut watchers = core.rooms.watchers.lock();
        let keys: Vec<String> = watchers
            .iter()
            .filter(|(_, w)| w.room == h.room.address)
            .map(|(k, _)| k.clone())
            .collect();
        keys.iter().filter_map(|k| watchers.remove(k)).collect()
    };
    let out: Vec<_> = gone
        .into_iter()
        .map(|mut w| notify(core, &mut w, h, "terminated;reason=noresource"))
        .collect();
    core.rooms
        .notify
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .extend(out);
}

/// Sends the NOTIFYs that changes left waiting.
pub async fn flush(core: &Arc<Core>, sip: &Sip) {
    let out = std::mem::take(&mut *core.rooms.notify.lock().unwrap_or_else(|p| p.into_inner()));
    if !out.is_empty() {
        send(core, sip, out).await;
    }
}
