//! Session-mode chat to another network (RFC 7573): an INVITE with an
//! MSRP offer for a user the router sends to an adapter is answered by
//! Parley as the session's far end. Each message that arrives over MSRP
//! becomes a chat message of one conversation (the session's thread) on
//! the adapter; what the other user writes back while the session lasts
//! is sent into the session; BYE ends it with the `gone` chat state.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use parley_adapter::{Adapter, Address, ChatState, Outbound};
use tracing::{debug, info};

use super::Core;
use crate::msrp::{SessionEvent, SessionHandle};
use crate::net::Incoming;
use crate::proto::msrp::MsrpUri;
use crate::proto::sdp::{self, MsrpLocal, Sdp, Setup};
use crate::proto::sip::{HeaderName, Message};
use crate::router::sipmap;

/// What Parley needs to end the SIP side of a session itself (RFC 3261
/// §12.1.1, §15.1.1): the dialog as the INVITE set it up.
#[derive(Debug, Clone)]
pub(crate) struct Dialog {
    call_id: String,
    /// Parley's side: the INVITE's To URI and the tag of the 200.
    local_uri: String,
    local_tag: String,
    /// The caller: From URI and tag, Contact (the remote target).
    remote_uri: String,
    remote_tag: String,
    remote_target: String,
    /// Record-Route, in order (a UAS's route set).
    route_set: Vec<String>,
    /// Where the INVITE came from, when nothing else says where to go.
    source: std::net::SocketAddr,
    transport: crate::proto::sip::Transport,
}

impl Dialog {
    fn of(inc: &Incoming, local_tag: &str) -> Option<Dialog> {
        use crate::proto::sip::typed::NameAddr;
        let msg = &inc.message;
        let h = msg.headers();
        let from = NameAddr::parse(h.get(HeaderName::From)?, "From").ok()?;
        let to = NameAddr::parse(h.get(HeaderName::To)?, "To").ok()?;
        let contact = h
            .values(HeaderName::Contact)
            .next()
            .and_then(|v| NameAddr::parse(v, "Contact").ok())
            .map(|c| String::from_utf8_lossy(c.uri_raw).into_owned())
            .unwrap_or_else(|| String::from_utf8_lossy(from.uri_raw).into_owned());
        Some(Dialog {
            call_id: call_id(msg),
            local_uri: String::from_utf8_lossy(to.uri_raw).into_owned(),
            local_tag: local_tag.to_string(),
            remote_uri: String::from_utf8_lossy(from.uri_raw).into_owned(),
            remote_tag: from.tag()?.to_string(),
            remote_target: contact,
            route_set: h
                .values(HeaderName::RecordRoute)
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .collect(),
            source: inc.source,
            transport: inc.transport,
        })
    }

    /// The BYE that ends the dialog from Parley's side.
    pub(crate) fn bye(&self, contact: &str) -> Option<Message> {
        crate::proto::sip::build::RequestBuilder::new("BYE", &self.remote_target)
            .headers("Route", &self.route_set)
            .header(
                "From",
                &format!("<{}>;tag={}", self.local_uri, self.local_tag),
            )
            .header(
                "To",
                &format!("<{}>;tag={}", self.remote_uri, self.remote_tag),
            )
            .header("Call-ID", &self.call_id)
            .header("CSeq", "1 BYE")
            .header("Max-Forwards", "70")
            .header("Contact", contact)
            .build()
            .ok()
    }

    /// Where the BYE goes: the first Route, else the remote target, else
    /// back where the INVITE came from.
    pub(crate) fn target(&self) -> crate::net::Target {
        if let Some(t) = self
            .route_set
            .first()
            .and_then(|r| super::targets::route_target(r.as_bytes(), self.transport))
        {
            return t;
        }
        crate::proto::sip::Uri::parse(self.remote_target.as_bytes())
            .ok()
            .and_then(|u| {
                u.as_sip()
                    .and_then(|s| super::targets::address_target(s, self.transport))
            })
            .unwrap_or_else(|| crate::net::Target::new(self.transport, self.source))
    }
}

/// One session Parley terminates.
struct ChatSession {
    handle: SessionHandle,
    /// Set by BYE: the session's task stops.
    ended: tokio_util::sync::CancellationToken,
    /// The SIP user (bare) and the other network's user (bare).
    local: String,
    remote: String,
}

/// The sessions Parley terminates, by SIP dialog (Call-ID) and by the
/// pair of users.
#[derive(Default)]
pub struct ChatSessions {
    by_call: Mutex<HashMap<String, Arc<ChatSession>>>,
}

impl std::fmt::Debug for ChatSessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatSessions").finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl ChatSessions {
    /// Sessions open now.
    pub fn len(&self) -> usize {
        lock(&self.by_call).len()
    }

    /// None open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn has(&self, call_id: &str) -> bool {
        lock(&self.by_call).contains_key(call_id)
    }

    /// The session between a SIP user and a user of another network.
    fn between(&self, local: &str, remote: &str) -> Option<Arc<ChatSession>> {
        lock(&self.by_call)
            .values()
            .find(|s| s.local.eq_ignore_ascii_case(local) && s.remote.eq_ignore_ascii_case(remote))
            .cloned()
    }
}

/// The media types Parley takes in a session, and inside CPIM.
const ACCEPT: [&str; 3] = [
    "message/cpim",
    "text/plain",
    "application/im-iscomposing+xml",
];
const WRAPPED: [&str; 3] = [
    "text/plain",
    "message/imdn+xml",
    "application/im-iscomposing+xml",
];

fn call_id(msg: &Message) -> String {
    msg.headers()
        .get(HeaderName::CallId)
        .map(|v| String::from_utf8_lossy(v).trim().to_string())
        .unwrap_or_default()
}

/// Parley's side of a session's SDP: its MSRP end `own` and its `path`
/// (an outside relay's Use-Path first), the types it takes, the policy's
/// size limit; and the `o=` line.
fn our_side(core: &Core, own: &MsrpUri, path: &[MsrpUri]) -> (MsrpLocal, String) {
    let local = MsrpLocal {
        paths: path.iter().map(MsrpUri::to_string).collect(),
        address: own.host.clone(),
        port: own.port_or_default(),
        tls: own.secure,
        accept_types: ACCEPT.map(String::from).to_vec(),
        accept_wrapped_types: WRAPPED.map(String::from).to_vec(),
        max_size: Some(core.router.policy().max_message_bytes() as u64),
    };
    let origin = format!(
        "parley {} 1 IN {} {}",
        crate::sys::random_u64() >> 1,
        if own.host.contains(':') { "IP6" } else { "IP4" },
        own.host
    );
    (local, origin)
}

/// Parley's Contact in a chat session's dialog: a listener of
/// `transport` when there is one, else the first.
fn chat_contact(core: &Core, tag: &str, transport: Option<crate::proto::sip::Transport>) -> String {
    core.listen
        .iter()
        .find(|(t, _)| Some(*t) == transport)
        .or(core.listen.first())
        .map(|(t, a)| {
            format!(
                "<sip:chat-{}@{a};transport={}>",
                &tag[..8.min(tag.len())],
                t.via_name().to_ascii_lowercase()
            )
        })
        .unwrap_or_default()
}

/// Answers 488 with a Warning (RFC 3261 §20.43) naming why.
async fn not_acceptable(core: &Core, inc: &mut Incoming, code: u16, why: &str) {
    let host = core.domains().first().cloned().unwrap_or_default();
    let warning = format!("{code} {host} \"{}\"", why.replace('"', "'"));
    inc.responder
        .reply(488, "Not Acceptable Here", &[("Warning", warning)])
        .await
}

/// An MSRP session Parley accepted as its far end: the 200 with the
/// answer is sent.
pub(crate) struct Accepted {
    /// Parley's end.
    pub handle: SessionHandle,
    /// What arrives in it.
    pub events: tokio::sync::mpsc::Receiver<SessionEvent>,
    /// The INVITE's Call-ID.
    pub call: String,
    /// The dialog, for Parley's own BYE.
    pub dialog: Option<Dialog>,
    /// Parley's Contact in it.
    pub contact: String,
    /// Parley is the active side: it connects first.
    pub active: bool,
    /// Parley's MSRP URI, for the log.
    pub own: MsrpUri,
}

/// Reads the MSRP offer of an INVITE, opens Parley's end of the session
/// and answers 200 with the SDP answer (with `attributes` added to the
/// message stream, such as RFC 7701's `chatroom`); `policy_domain` is the
/// domain whose TLS requirement the media must meet. None when it
/// answered a refusal instead.
pub(crate) async fn accept(
    core: &Core,
    inc: &mut Incoming,
    msg: &Message,
    policy_domain: &str,
    attributes: &[&str],
) -> Option<Accepted> {
    let body = msg.body_bytes();
    let offer = match Sdp::parse(&body) {
        Ok(o) => o,
        Err(e) if body.is_empty() => {
            let _ = e;
            not_acceptable(core, inc, 304, "no offer: an MSRP offer is needed").await;
            return None;
        }
        Err(e) => {
            not_acceptable(core, inc, 399, &format!("unreadable offer: {e}")).await;
            return None;
        }
    };
    let Some(relay) = core.relay.as_ref() else {
        not_acceptable(
            core,
            inc,
            399,
            "session-mode chat is off here ([msrp] enabled = false); send MESSAGE",
        )
        .await;
        return None;
    };
    let Some(stream) = offer.media.iter().find(|m| m.is_msrp() && m.port != 0) else {
        not_acceptable(
            core,
            inc,
            304,
            "no message stream (m=message TCP/MSRP) offered",
        )
        .await;
        return None;
    };
    let secure = stream.is_tls();
    // The domain policy's TLS requirement holds for the session's media
    // as for its signalling: msrps only.
    if core.router.policy().security(policy_domain).tls && !secure {
        not_acceptable(
            core,
            inc,
            302,
            &format!("the policy for {policy_domain} requires MSRP over TLS (TCP/TLS/MSRP)"),
        )
        .await;
        return None;
    }
    let remote: Result<Vec<MsrpUri>, _> = stream.path().into_iter().map(MsrpUri::parse).collect();
    let Ok(remote) = remote.and_then(|r| {
        if r.is_empty() {
            Err(crate::proto::msrp::MsrpError::PathOrder)
        } else {
            Ok(r)
        }
    }) else {
        not_acceptable(core, inc, 305, "a=path is missing or malformed").await;
        return None;
    };
    let Some((own, handle, events)) = relay.open_session(secure, remote).await else {
        not_acceptable(
            core,
            inc,
            302,
            if secure {
                "MSRP over TLS is not available here"
            } else {
                "MSRP over TCP is not available here"
            },
        )
        .await;
        return None;
    };
    let (local, origin) = our_side(core, &own, &handle.path());
    let (mut answer, index) = match sdp::answer(&offer, &local, &origin) {
        Ok(a) => a,
        Err(r) => {
            not_acceptable(core, inc, r.warn_code, &r.text).await;
            return None;
        }
    };
    for a in attributes {
        answer.media[index].fields.push(sdp::Field::new('a', *a));
    }
    let active = answer.media[index].setup() == Some(Setup::Active);
    let call = call_id(msg);
    // 200 with the answer, a dialog of Parley's own (RFC 3261 §12.1.1).
    let tag = crate::sys::token();
    let dialog = Dialog::of(inc, &tag);
    let contact = chat_contact(core, &tag, None);
    let wire = crate::proto::sip::stateless::respond(
        &inc.message,
        200,
        "OK",
        &tag,
        &[
            ("Contact", contact.clone()),
            ("Allow", "INVITE, ACK, BYE, CANCEL, MESSAGE".to_string()),
        ],
    );
    let Some(wire) = with_body(wire, "application/sdp", &answer.to_bytes()) else {
        inc.responder.reply(500, "Server Internal Error", &[]).await;
        return None;
    };
    inc.responder.send(200, Bytes::from(wire)).await;
    Some(Accepted {
        handle,
        events,
        call,
        dialog,
        contact,
        active,
        own,
    })
}

/// An INVITE from `sender` (a local SIP user) to `recipient`, whom
/// `adapter` reaches: answered as the far end of an MSRP session.
pub async fn invite(
    core: &Core,
    sip: &crate::net::Sip,
    adapter: Arc<dyn Adapter>,
    mut inc: Incoming,
    msg: &Message,
    sender: Address,
    recipient: Address,
) {
    let Some(a) = accept(core, &mut inc, msg, recipient.domain(), &[]).await else {
        return;
    };
    let session = Arc::new(ChatSession {
        handle: a.handle,
        ended: tokio_util::sync::CancellationToken::new(),
        local: sender.bare().to_string(),
        remote: recipient.bare().to_string(),
    });
    lock(&core.chat.by_call).insert(a.call.clone(), session.clone());
    metrics::gauge!("parley_chat_sessions").set(core.chat.len() as f64);
    info!(from = %sender, to = %recipient, msrp = %a.own, "chat session opened");
    spawn(
        core,
        sip,
        adapter,
        session,
        a.events,
        (sender, recipient),
        a.call,
        (a.dialog, a.contact),
        a.active,
    );
}

/// Runs a session from here on: connects first when Parley is the active
/// side, carries messages from the SIP user to the other network's user
/// (`users`: SIP user, other user) until the session ends, then ends the
/// SIP side with a BYE when the caller did not, and forgets the session.
#[allow(clippy::too_many_arguments)]
fn spawn(
    core: &Core,
    sip: &crate::net::Sip,
    adapter: Arc<dyn Adapter>,
    session: Arc<ChatSession>,
    events: tokio::sync::mpsc::Receiver<SessionEvent>,
    users: (Address, Address),
    call: String,
    (dialog, contact): (Option<Dialog>, String),
    connect_first: bool,
) {
    let security = core.router.policy().security(users.1.domain());
    let router = core.router.clone();
    let sessions = Arc::downgrade(&core.chat);
    let sip = sip.clone();
    tokio::spawn(async move {
        if connect_first && !session.handle.connect().await {
            debug!(call = %call, "the other side's MSRP path could not be reached");
        }
        let ended = session.ended.clone();
        run(
            router,
            adapter,
            session,
            events,
            users.0,
            users.1,
            call.clone(),
            security,
        )
        .await;
        // Not ended by the caller's BYE: the MSRP side went away, and
        // Parley ends the SIP side itself.
        if !ended.is_cancelled() {
            if let Some(bye) = dialog.as_ref().and_then(|d| d.bye(&contact)) {
                info!(call = %call, "chat session's MSRP side closed: BYE");
                let target = dialog.as_ref().map(Dialog::target);
                if let Some(target) = target {
                    let _ = sip.request(bye, &target).await;
                }
            }
        }
        if let Some(sessions) = sessions.upgrade() {
            lock(&sessions.by_call).remove(&call);
            metrics::gauge!("parley_chat_sessions").set(sessions.len() as f64);
        }
    });
}

/// Carries one session's messages to the adapter until it ends.
#[allow(clippy::too_many_arguments)]
async fn run(
    router: Arc<crate::router::Router>,
    adapter: Arc<dyn Adapter>,
    session: Arc<ChatSession>,
    mut events: tokio::sync::mpsc::Receiver<SessionEvent>,
    sender: Address,
    recipient: Address,
    call: String,
    security: parley_adapter::Security,
) {
    let thread = format!("msrp-{}", &call);
    loop {
        let event = tokio::select! {
            _ = session.ended.cancelled() => break,
            e = events.recv() => e,
        };
        let m = match event {
            Some(SessionEvent::Message(m)) => m,
            Some(SessionEvent::Nickname { answer, .. }) => {
                // Nicknames belong to rooms (RFC 7701), not to one-to-one
                // sessions.
                let _ = answer.send((501, "Not a chat room".into()));
                continue;
            }
            _ => break,
        };
        let (from_text, to_text) = (sender.bare().to_string(), recipient.bare().to_string());
        let record = |decision: String| {
            router.archive().record(
                crate::router::archive::Fact {
                    source: "msrp",
                    destination: adapter.protocol().name(),
                    sender: &from_text,
                    recipient: &to_text,
                    peer_domain: recipient.domain(),
                    auth: "digest",
                    decision,
                    content_type: &m.content_type,
                    body: &m.body,
                },
                true,
            )
        };
        let (message_id, total, failure_report) =
            (m.message_id.clone(), m.body.len() as u64, m.failure_report);
        if let Err(r) = router.policy().content(m.body.len(), &[&m.content_type]) {
            debug!(content_type = %m.content_type, "a session message the policy refuses");
            record(format!("refused: {}", r.name()));
            if failure_report {
                let code = if m.body.len() > router.policy().max_message_bytes() {
                    413
                } else {
                    415
                };
                session
                    .handle
                    .report_failure(&message_id, total, code)
                    .await;
            }
            continue;
        }
        record("delivered".into());
        let id = format!("s{}", crate::sys::token());
        let Ok(mut out) = sipmap::from_sip(
            sender.clone(),
            recipient.clone(),
            &m.content_type,
            &Bytes::from(m.body),
            id,
        ) else {
            continue;
        };
        out.thread = Some(thread.clone());
        if !router.cross(true, &out.id) {
            continue;
        }
        if let Err(f) = adapter.deliver(Outbound::Message(out), security).await {
            debug!(failure = %f, "a session message was not delivered");
            // RFC 7573 §6 with RFC 7247 §7: the failure goes back to the
            // sender as an MSRP failure report.
            if failure_report {
                let code = msrp_status(f.condition.to_sip());
                session
                    .handle
                    .report_failure(&message_id, total, code)
                    .await;
            }
        }
    }
    // RFC 7573 §6: the end of the session is the end of the conversation.
    drop(session);
    gone(&adapter, &sender, &recipient, &thread, security).await;
}

async fn gone(
    adapter: &Arc<dyn Adapter>,
    sender: &Address,
    recipient: &Address,
    thread: &str,
    security: parley_adapter::Security,
) {
    let m = parley_adapter::Message {
        id: format!("s{}", crate::sys::token()),
        from: sender.clone(),
        to: recipient.clone(),
        kind: parley_adapter::MessageKind::Chat,
        parts: Vec::new(),
        subject: None,
        thread: Some(thread.to_string()),
        chat_state: Some(ChatState::Gone),
        receipt: None,
        timestamp: None,
    };
    let _ = adapter.deliver(Outbound::Message(m), security).await;
}

/// A BYE for a session Parley terminates: the session ends, 200.
/// False when the BYE is for no such session (it is routed as usual).
pub async fn bye(core: &Core, inc: &mut Incoming) -> bool {
    let call = call_id(&inc.message);
    if !core.chat.has(&call) {
        return false;
    }
    let session = lock(&core.chat.by_call).remove(&call);
    inc.responder.reply(200, "OK", &[]).await;
    // The task stops, says `gone`, and the MSRP end closes with it.
    if let Some(s) = session {
        s.ended.cancel();
    }
    metrics::gauge!("parley_chat_sessions").set(core.chat.len() as f64);
    info!(call = %call, "chat session closed by BYE");
    true
}

/// A message from `from` (another network) to `to` (a SIP user) while a
/// session between them is open: sent into the session, and confirmed by
/// the SIP side's response. `Ok(false)` when there is no session (it goes
/// as pager mode); `Err` with the MSRP status when the SIP side refused
/// it or did not answer in time (408), for the other network's sender.
pub async fn into_session(
    core: &Core,
    from: &str,
    to: &str,
    content_type: &str,
    body: &[u8],
) -> Result<bool, u16> {
    let Some(session) = core.chat.between(to, from) else {
        return Ok(false);
    };
    session
        .handle
        .send_confirmed(content_type, body)
        .await
        .map(|()| true)
}

/// `wire` (a response with an empty body) with `body` of `content_type`.
fn with_body(wire: Vec<u8>, content_type: &str, body: &[u8]) -> Option<Vec<u8>> {
    let text = String::from_utf8(wire).ok()?;
    let head = text.strip_suffix("Content-Length: 0\r\n\r\n")?;
    let mut out = head.as_bytes().to_vec();
    out.extend_from_slice(
        format!(
            "Content-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    out.extend_from_slice(body);
    Some(out)
}

/// Whether `aor` (`user@domain`, a local user) prefers sessions.
pub fn prefers_sessions(core: &Core, aor: &str) -> bool {
    let aor = aor.to_ascii_lowercase();
    let domain = aor.rsplit('@').next().unwrap_or_default().to_string();
    core.prefer_sessions
        .iter()
        .any(|p| *p == aor || *p == domain)
}

/// Opens a session from `from` (a user of another network, reached by
/// `adapter`) to `to` (a local SIP user who prefers sessions), RFC 7573
/// §5: an INVITE with Parley's MSRP offer to the user's first contact;
/// once answered and bound, `first` (content type and body) is the
/// session's first message. False when no session could be opened (the
/// caller then sends pager-mode MESSAGE).
pub async fn open_to_sip(
    core: &Arc<Core>,
    sip: &crate::net::Sip,
    adapter: Arc<dyn Adapter>,
    from: Address,
    to: Address,
    first: (&str, &[u8]),
) -> bool {
    let Some(relay) = core.relay.as_ref() else {
        return false;
    };
    let aor = to.bare().to_string().to_ascii_lowercase();
    // Every contact, as the proxy forks (RFC 3261 §16): the first 2xx
    // makes the session, the other branches are cancelled.
    let groups = super::targets::contact_groups(core, sip, &aor);
    let Some(branch) = groups.iter().flatten().next().cloned() else {
        return false;
    };
    let Some((own, handle, events)) = relay.open_session(false, Vec::new()).await else {
        return false;
    };
    let (local, origin) = our_side(core, &own, &handle.path());
    let offer = sdp::offer(&local, &origin);
    let call = format!("{}@{}", crate::sys::token(), core.router.first_domain());
    let tag = crate::sys::token();
    let from_uri = from.bare().to_sip_uri();
    let contact = chat_contact(core, &tag, Some(branch.target.transport));
    let Ok(invite) = crate::proto::sip::build::RequestBuilder::new("INVITE", &branch.request_uri)
        .header("From", &format!("<{from_uri}>;tag={tag}"))
        .header("To", &format!("<sip:{aor}>"))
        .header("Call-ID", &call)
        .header("CSeq", "1 INVITE")
        .header("Max-Forwards", "70")
        .header("Contact", &contact)
        .body("application/sdp", &offer.to_bytes())
    else {
        return false;
    };
    let ok = match super::proxy::originate_response(core, sip, invite, groups).await {
        (status, Some(r)) if (200..300).contains(&status) => r,
        _ => return false,
    };
    // RFC 3261 §13.2.2.4: the ACK for the 2xx, in the dialog it made.
    let dialog = answered_dialog(&ok, &call, &from_uri, &tag, &aor, &branch);
    if let Some(d) = &dialog {
        if let Ok(ack) = crate::proto::sip::build::RequestBuilder::new("ACK", &d.remote_target)
            .headers("Route", &d.route_set)
            .header("From", &format!("<{}>;tag={}", d.local_uri, d.local_tag))
            .header("To", &format!("<{}>;tag={}", d.remote_uri, d.remote_tag))
            .header("Call-ID", &call)
            .header("CSeq", "1 ACK")
            .header("Max-Forwards", "70")
            .build()
        {
            sip.forward_stateless(ack, &d.target()).await;
        }
    }
    let answer = Sdp::parse(&ok.body_bytes()).ok();
    let stream = answer
        .as_ref()
        .and_then(|a| a.media.iter().find(|m| m.is_msrp() && m.port != 0).cloned());
    let remote: Option<Vec<MsrpUri>> = stream.as_ref().and_then(|m| {
        m.path()
            .into_iter()
            .map(|u| MsrpUri::parse(u).ok())
            .collect()
    });
    let (Some(stream), Some(remote)) = (stream, remote.filter(|r| !r.is_empty())) else {
        debug!(call = %call, "the answer held no MSRP stream");
        return false;
    };
    handle.set_remote(remote);
    let session = Arc::new(ChatSession {
        handle,
        ended: tokio_util::sync::CancellationToken::new(),
        local: to.bare().to_string(),
        remote: from.bare().to_string(),
    });
    lock(&core.chat.by_call).insert(call.clone(), session.clone());
    metrics::gauge!("parley_chat_sessions").set(core.chat.len() as f64);
    // The answerer connects unless it said it waits (RFC 6135).
    let bound = if stream.setup() == Some(Setup::Passive) {
        session.handle.connect().await
    } else {
        session
            .handle
            .bound(std::time::Duration::from_secs(10))
            .await
    };
    if !bound || !session.handle.send(first.0, first.1).await {
        lock(&core.chat.by_call).remove(&call);
        return false;
    }
    info!(from = %from, to = %to, msrp = %own, "chat session opened towards a SIP user");
    spawn(
        core,
        sip,
        adapter,
        session,
        events,
        (to, from),
        call,
        (dialog, contact),
        false,
    );
    true
}

/// The dialog a 2xx to Parley's INVITE made (RFC 3261 §12.1.2): the route
/// set is the Record-Route reversed, the remote target the 2xx's Contact.
fn answered_dialog(
    ok: &Message,
    call: &str,
    from_uri: &str,
    tag: &str,
    aor: &str,
    branch: &super::targets::Branch,
) -> Option<Dialog> {
    use crate::proto::sip::typed::NameAddr;
    let h = ok.headers();
    let to = NameAddr::parse(h.get(HeaderName::To)?, "To").ok()?;
    let contact = h
        .values(HeaderName::Contact)
        .next()
        .and_then(|v| NameAddr::parse(v, "Contact").ok())
        .map(|c| String::from_utf8_lossy(c.uri_raw).into_owned())
        .unwrap_or_else(|| branch.request_uri.clone());
    let mut route_set: Vec<String> = h
        .values(HeaderName::RecordRoute)
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect();
    route_set.reverse();
    Some(Dialog {
        call_id: call.to_string(),
        local_uri: from_uri.to_string(),
        local_tag: tag.to_string(),
        remote_uri: format!("sip:{aor}"),
        remote_tag: to.tag()?.to_string(),
        remote_target: contact,
        route_set,
        source: branch.target.addr,
        transport: branch.target.transport,
    })
}

/// The MSRP status (RFC 4975 §10) closest to a SIP status from the
/// RFC 7247 §7 mapping of another network's error.
fn msrp_status(sip: u16) -> u16 {
    match sip {
        403 | 401 | 407 => 403,
        408 | 504 => 408,
        413 | 513 => 413,
        415 => 415,
        404 | 410 | 480 | 484 | 604 => 481,
        _ => 400,
    }
}
