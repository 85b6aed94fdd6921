//! The stateful proxy (RFC 3261 §16): Route processing with loose routing
//! (and strict-route compatibility), Max-Forwards, Record-Route (two
//! entries when the transport changes), forking to the registered contacts
//! (parallel within a q-value, sequential between q-values), the response
//! context with best-response selection (§16.7), and no open relay.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, Weak};

use bytes::Bytes;

use crate::net::{Incoming, OnResponse, Responder, Sip};
use crate::proto::sip::typed::{parse_max_forwards, NameAddr};
use crate::proto::sip::uri::{Host, SipUri};
use crate::proto::sip::{HeaderName, Message, Method, Transport};
use crate::proto::transaction::Key;
use crate::router::{Destination, Rejection};
use crate::sys::now_secs;

use super::auth::{authenticate, Sender};
use super::targets::{binding_target, groups, remote_groups, route_target, uri_targets, Branch};
use super::{reject, Core};

/// Routes one request that is not for Parley itself (neither ACK nor
/// CANCEL, which have their own paths).
pub async fn route(core: Arc<Core>, sip: Sip, mut inc: Incoming) {
    let now = now_secs();
    let method = inc.message.method().cloned();
    let invite = matches!(method, Some(Method::Invite));

    // §16.3 item 4: a request that carries a Via of ours whose branch has
    // this request's loop hash has been here in the same shape: a loop.
    let loop_tag = loop_hash(&inc.message);
    if has_looped(&core, &inc.message, loop_tag) {
        return inc.responder.reply(482, "Loop Detected", &[]).await;
    }
    let mut msg = inc.message.clone();
    let (routed_by_us, flow) = preprocess_routes(&core, &mut msg);
    let edge_register =
        matches!(method, Some(Method::Register)) && super::edge::fronts(&core, &msg);
    if edge_register {
        super::edge::add_path(&core, &mut msg, inc.transport, inc.source);
    }

    // §16.3 item 3 and §16.6 item 3: Max-Forwards.
    if !decrement_max_forwards(&mut msg) {
        return inc.responder.reply(483, "Too Many Hops", &[]).await;
    }

    // Who is asking: a local user must prove it (407). ACK and CANCEL,
    // which cannot be challenged (§22.1), never come here: they go to
    // `ack` and `cancel`.
    let Some(sender) = authenticate(&core, &mut msg, &mut inc, now).await else {
        return;
    };
    let authenticated = sender.authenticated;
    // A request from another domain meets the domain policy first.
    if !core.is_local_domain(&sender.domain)
        && !sender.domain.is_empty()
        && sender.domain.parse::<std::net::IpAddr>().is_err()
    {
        let checked = core
            .router
            .check_domain(&sender.domain)
            .and_then(|()| core.router.check_remote_identity(&msg, &sender.domain));
        if let Err(r) = checked {
            let decision = format!("refused: {}", r.refusal.map_or("refused", |x| x.name()));
            archive_message(&core, &msg, &sender, &decision);
            return reject(&mut inc, &r, &sender.domain).await;
        }
    }
    // RFC 3862 §4: the identity inside a CPIM body is the sender's, checked
    // here for the local users Parley authenticates.
    if authenticated {
        if let Err(r) = check_cpim_identity(&msg, &sender) {
            return reject(&mut inc, &r, &sender.domain).await;
        }
    }
    // The conference domain: the rooms Parley hosts.
    if let Some(room) = super::rooms::sip::addressed(&core, &msg) {
        if msg.headers().values(HeaderName::Route).next().is_none() {
            return super::rooms::sip::request(core.clone(), sip, inc, &msg, &sender, room).await;
        }
    }
    // A request on a route set Parley recorded belongs to a dialog it let
    // through.
    let may_relay = authenticated || edge_register || (routed_by_us && in_dialog(&msg));

    // Where to: a Route left, a local user, or another domain.
    let mut failover = false;
    // A flow token naming the flow this request came over is the client's
    // own in-dialog request: it is routed as usual (RFC 5626 §5.3).
    let flow = flow.filter(|(t, a)| !(*t == inc.transport && *a == inc.source));
    let branches: Vec<Vec<Branch>> = if let Some((transport, client)) = flow {
        // RFC 5626 §5.3: along the Path Parley gave the registrar, over
        // the flow the client registered on, while it is open.
        if transport.is_stream() && !sip.is_connected(transport, client) {
            return inc.responder.reply(430, "Flow Failed", &[]).await;
        }
        vec![vec![Branch {
            request_uri: request_uri_text(&msg),
            routes: Vec::new(),
            target: crate::net::Target::new(transport, client),
        }]]
    } else if let Some((aor, prid)) = purr_of(&core, &msg) {
        // RFC 8599: a request to a URI with the PURR Parley gave a device
        // (a request inside one of its dialogs) wakes that device first.
        let device: Vec<_> = core
            .location
            .lookup(&aor, now)
            .into_iter()
            .filter(|b| super::push::Device::of(&b.uri).is_some_and(|d| d.prid == prid))
            .collect();
        match super::push::wake_and_wait(&core, &sip, &msg, &aor, device).await {
            Some(bindings) => groups(&bindings, &sip),
            None => {
                return inc
                    .responder
                    .reply(480, "Temporarily Unavailable", &[])
                    .await
            }
        }
    } else if let Some(top) = msg
        .headers()
        .values(HeaderName::Route)
        .next()
        .map(<[u8]>::to_vec)
    {
        if !may_relay {
            return inc.responder.reply(403, "Relaying denied", &[]).await;
        }
        match route_target(&top, inc.transport) {
            Some(target) => vec![vec![Branch {
                request_uri: request_uri_text(&msg),
                routes: Vec::new(),
                target,
            }]],
            None => return inc.responder.reply(503, "Route not reachable", &[]).await,
        }
    } else {
        let Some(Ok(ruri)) = msg.request_uri() else {
            return inc
                .responder
                .reply(416, "Unsupported URI Scheme", &[])
                .await;
        };
        let Some(sip_uri) = ruri.as_sip().cloned() else {
            return inc
                .responder
                .reply(416, "Unsupported URI Scheme", &[])
                .await;
        };
        if let Some((status, contacts)) = redirect(&core, &sip_uri, now) {
            if contacts.is_empty() {
                return inc
                    .responder
                    .reply(480, "Temporarily Unavailable", &[])
                    .await;
            }
            let reason = if status == 301 {
                "Moved Permanently"
            } else {
                "Moved Temporarily"
            };
            let extra: Vec<(&str, String)> = contacts.into_iter().map(|c| ("Contact", c)).collect();
            return inc.responder.reply(status, reason, &extra).await;
        }
        if core.is_local(&sip_uri.host, sip_uri.port) {
            let Some(user) = sip_uri.user else {
                return inc
                    .responder
                    .reply(
                        405,
                        "Method Not Allowed",
                        &[("Allow", super::ALLOW.to_string())],
                    )
                    .await;
            };
            let (aor, domain) = local_aor(&core, user, &sip_uri.host);
            // RFC 5627 §8.4.1: a GRUU reaches that one device; while it has
            // no binding, 480 (nothing is kept offline for a device).
            let device = match core.gruus.resolve(user, sip_uri.params.get("gr"), &aor) {
                super::gruu::Target::None => None,
                super::gruu::Target::Unknown => {
                    return inc
                        .responder
                        .reply(404, "Not Found (no such GRUU)", &[])
                        .await;
                }
                super::gruu::Target::Device(aor, urn) => Some(
                    core.location
                        .lookup(&aor, now)
                        .into_iter()
                        .filter(|b| super::gruu::urn(&b.instance) == urn)
                        .collect::<Vec<_>>(),
                ),
            };
            let bindings = match &device {
                Some(d) => d.clone(),
                None => core.location.lookup(&aor, now),
            };
            if bindings.is_empty() {
                if device.is_some() {
                    return inc
                        .responder
                        .reply(480, "Temporarily Unavailable", &[])
                        .await;
                }
                if core.auth.user(user, &domain).await.is_none() {
                    return inc.responder.reply(404, "Not Found", &[]).await;
                }
                return unreachable(&core, &mut inc, &msg, &sender, &aor, true).await;
            }
            // RFC 8599: a suspended device is woken by push, and the
            // request waits for it.
            let bindings = if core.push.enabled() {
                match super::push::wake_and_wait(&core, &sip, &msg, &aor, bindings).await {
                    Some(b) => b,
                    None => {
                        let keep = device.is_none();
                        return unreachable(&core, &mut inc, &msg, &sender, &aor, keep).await;
                    }
                }
            } else {
                bindings
            };
            groups(&bindings, &sip)
        } else {
            if !may_relay {
                return inc.responder.reply(403, "Relaying denied", &[]).await;
            }
            // Another domain: the router says where it is and whether it
            // may be reached.
            let domain = sip_uri.host.to_string();
            if let Destination::Adapter(adapter) = core.router.destination(&domain).await {
                let sender_address = sender
                    .user
                    .as_deref()
                    .and_then(|u| parley_adapter::Address::new(u, &sender.domain, None).ok());
                let recipient = parley_adapter::Address::from_uri(&request_uri_text(&msg));
                let (Some(from), Ok(to)) = (sender_address, recipient) else {
                    return inc
                        .responder
                        .reply(400, "Address not mappable to the other network", &[])
                        .await;
                };
                return super::bridge::request(
                    &core,
                    &sip,
                    adapter,
                    inc,
                    &msg,
                    (from, &sender),
                    to,
                )
                .await;
            }
            if let Err(r) = core.router.check_domain(&domain) {
                return reject(&mut inc, &r, &domain).await;
            }
            // RFC 3263: every target in order, the next one only after a
            // timeout, a transport error or a 503.
            failover = true;
            let groups = remote_groups(&core, &sip_uri, &request_uri_text(&msg)).await;
            if groups.is_empty() {
                return inc
                    .responder
                    .reply(503, "Service Unavailable (destination not resolved)", &[])
                    .await;
            }
            groups
        }
    };

    archive_message(&core, &msg, &sender, "relayed");

    let dialog_creating = matches!(
        msg.method(),
        Some(Method::Invite) | Some(Method::Subscribe) | Some(Method::Refer)
    ) && !in_dialog(&msg);
    let invite_key = invite.then(|| inc.responder.key().clone());
    let mut context = Context::new(Upstream::Proxied(inc.responder), msg, branches, loop_tag);
    context.inbound = inc.transport;
    // A client on an outbound flow (RFC 5626 §5.3): the dialog's requests
    // from the far end come back over that flow.
    if dialog_creating {
        let aor = format!("{}@{}", sender.user.as_deref().unwrap_or(""), sender.domain);
        let on_flow = core
            .location
            .lookup(&aor, now)
            .iter()
            .any(|b| b.is_flow() && b.transport == inc.transport && b.source == inc.source);
        if on_flow {
            context.flow_token = Some(core.flow_tokens.encode(inc.transport, inc.source));
        }
    }
    context.invite = invite;
    context.failover = failover;
    context.dialog_creating = dialog_creating;
    let ctx = Arc::new(Mutex::new(context));
    if let Some(key) = invite_key {
        core.invites.insert(key, &ctx);
        tokio::spawn(timer_c(
            Arc::downgrade(&ctx),
            core.clone(),
            sip.clone(),
            core.timer_c,
        ));
    }
    start_group(ctx, core, sip).await;
}

/// Sends a request Parley originates (a bridged message, a kept message,
/// a report) to `groups` by the proxy's own forking rule: in parallel
/// within a group, groups in turn until one answers 2xx (or, with
/// `failover`, the RFC 3263 rule: the next target only after a timeout or
/// a 503). Returns the best final response's status (RFC 3261 §16.7),
/// or 480 when there was no target.
pub async fn originate(
    core: &Arc<Core>,
    sip: &Sip,
    request: Message,
    groups: Vec<Vec<Branch>>,
    failover: bool,
) -> u16 {
    if groups.is_empty() {
        return 480;
    }
    let (tx, rx) = tokio::sync::oneshot::channel();
    let loop_tag = loop_hash(&request);
    let mut context = Context::new(Upstream::Origin(Some(tx)), request, groups, loop_tag);
    context.failover = failover;
    let ctx = Arc::new(Mutex::new(context));
    start_group(ctx, core.clone(), sip.clone()).await;
    rx.await.map_or(408, |(status, _)| status)
}

/// [`originate`], with the final response itself when a branch sent one
/// (an INVITE's 2xx carries the answer and the dialog).
pub async fn originate_response(
    core: &Arc<Core>,
    sip: &Sip,
    request: Message,
    groups: Vec<Vec<Branch>>,
) -> (u16, Option<Message>) {
    if groups.is_empty() {
        return (480, None);
    }
    let (tx, rx) = tokio::sync::oneshot::channel();
    let loop_tag = loop_hash(&request);
    let invite = matches!(request.method(), Some(Method::Invite));
    let mut context = Context::new(Upstream::Origin(Some(tx)), request, groups, loop_tag);
    // An INVITE's other branches are cancelled once one answers 2xx.
    context.invite = invite;
    let ctx = Arc::new(Mutex::new(context));
    start_group(ctx, core.clone(), sip.clone()).await;
    rx.await.unwrap_or((408, None))
}

/// A local user with no contact to reach: a MESSAGE is kept for the
/// user's next contact (RFC 3428 pager mode, when `keep`: not for one
/// device's GRUU) and archived once accepted, as a relayed one is;
/// anything else gets 480.
async fn unreachable(
    core: &Core,
    inc: &mut Incoming,
    msg: &Message,
    sender: &Sender,
    aor: &str,
    keep: bool,
) {
    if keep && matches!(msg.method(), Some(Method::Message)) && core.offline.enabled() {
        if super::pager::keep(core, inc, aor).await {
            archive_message(core, msg, sender, "kept offline");
        }
        return;
    }
    inc.responder
        .reply(480, "Temporarily Unavailable", &[])
        .await
}

/// A MESSAGE relayed or refused between SIP domains goes to the compliance
/// archive (every MESSAGE in mode `all`).
fn archive_message(core: &Core, msg: &Message, sender: &Sender, decision: &str) {
    if !matches!(msg.method(), Some(Method::Message)) {
        return;
    }
    let router = &core.router;
    // Decided before anything is printed: the relay path stays cheap when
    // the message is not archived.
    let remote_sender = !core.is_local_domain(&sender.domain);
    let remote_target = msg
        .request_uri()
        .and_then(Result::ok)
        .and_then(|u| u.as_sip().map(|s| !core.is_local(&s.host, s.port)))
        .unwrap_or(false);
    if !router.archive().wants(remote_sender || remote_target) {
        return;
    }
    let Ok(to) = parley_adapter::Address::from_uri(&request_uri_text(msg)) else {
        return;
    };
    let from = format!("{}@{}", sender.user.as_deref().unwrap_or(""), sender.domain);
    let peer = if remote_target {
        to.domain()
    } else {
        &sender.domain
    };
    let auth = if sender.authenticated {
        "digest"
    } else {
        "none"
    };
    router.archive_sip(
        msg,
        &from,
        &to.bare().to_string(),
        if remote_sender || remote_target {
            peer
        } else {
            ""
        },
        auth,
        decision.to_string(),
        remote_sender || remote_target,
    );
}

/// The redirect rule for a Request-URI, if any, as (status, Contact
/// values): the rule's targets, or a local user's registered contacts.
fn redirect(core: &Core, uri: &SipUri<'_>, now: u64) -> Option<(u16, Vec<String>)> {
    let domain = uri.host.to_string().to_ascii_lowercase();
    let aor = uri.user.map(|u| format!("{u}@{domain}"));
    let rule = core.redirects.iter().find(|r| match (&r.user, &r.domain) {
        (Some(u), _) => aor.as_deref().is_some_and(|a| a.eq_ignore_ascii_case(u)),
        (None, Some(d)) => d.eq_ignore_ascii_case(&domain),
        _ => false,
    })?;
    if !rule.to.is_empty() {
        return Some((
            rule.status,
            rule.to.iter().map(|t| format!("<{t}>")).collect(),
        ));
    }
    let contacts = core
        .location
        .lookup(aor.as_deref()?, now)
        .into_iter()
        .map(|b| {
            let q = f64::from(b.q) / 1000.0;
            format!("<{}>;q={q}", b.uri)
        })
        .collect();
    Some((rule.status, contacts))
}

/// The loop hash of a request (RFC 3261 §16.6 item 8): To and From tags,
/// Call-ID, Request-URI, CSeq number, Proxy-Require and
/// Proxy-Authorization. The same request coming back unchanged hashes the
/// same; a spiral (a new Request-URI) does not.
fn loop_hash(msg: &Message) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::hash::DefaultHasher::new();
    msg.to()
        .and_then(Result::ok)
        .and_then(|t| t.tag())
        .hash(&mut h);
    msg.from()
        .and_then(Result::ok)
        .and_then(|f| f.tag())
        .hash(&mut h);
    msg.headers().get(HeaderName::CallId).hash(&mut h);
    msg.request_uri_raw().hash(&mut h);
    msg.cseq().and_then(Result::ok).map(|c| c.seq).hash(&mut h);
    for name in [HeaderName::ProxyRequire, HeaderName::ProxyAuthorization] {
        for v in msg.headers().lines(name) {
            v.hash(&mut h);
        }
    }
    h.finish()
}

/// True when a Via of Parley's carries `tag` in its branch.
fn has_looped(core: &Core, msg: &Message, tag: u64) -> bool {
    let suffix = format!(".{tag:016x}");
    msg.headers().values(HeaderName::Via).any(|v| {
        crate::proto::sip::typed::Via::parse(v).is_ok_and(|via| {
            core.is_own_address(&via.host, via.port)
                && via.branch().is_some_and(|b| b.ends_with(&suffix))
        })
    })
}

/// Takes one from Max-Forwards (70 when absent, §16.6 item 3); false when
/// it is already 0 and the request must not be forwarded.
fn decrement_max_forwards(msg: &mut Message) -> bool {
    let mf = msg
        .headers()
        .get(HeaderName::MaxForwards)
        .and_then(|v| parse_max_forwards(v).ok())
        .unwrap_or(70);
    if mf == 0 {
        return false;
    }
    let _ = msg.headers_mut().set("Max-Forwards", &(mf - 1).to_string());
    true
}

/// The address of record a local Request-URI names: its user at its
/// domain, or at the first local domain when the host is Parley's address.
pub(super) fn local_aor(core: &Core, user: &str, host: &Host<'_>) -> (String, String) {
    let domain = host.to_string().to_ascii_lowercase();
    let domain = if core.is_local_domain(&domain) {
        domain
    } else {
        core.router.first_domain().to_string()
    };
    (format!("{user}@{domain}"), domain)
}

/// The device a Request-URI's `pn-purr` names (RFC 8599), when Parley
/// gave that PURR.
fn purr_of(core: &Core, msg: &Message) -> Option<(String, String)> {
    if !core.push.enabled() || msg.headers().values(HeaderName::Route).next().is_some() {
        return None;
    }
    let uri = msg.request_uri()?.ok()?;
    let purr = uri.as_sip()?.params.get("pn-purr")??;
    core.purrs.resolve(purr)
}

/// §16.4: Parley's own Route entries go, and a strict router's
/// Request-URI is restored from the last Route. True when a Route of
/// Parley's was removed.
fn preprocess_routes(
    core: &Core,
    msg: &mut Message,
) -> (
    bool,
    Option<(crate::proto::sip::Transport, std::net::SocketAddr)>,
) {
    if let Some(Ok(uri)) = msg.request_uri() {
        let ours = uri
            .as_sip()
            .is_some_and(|s| s.lr() && core.is_own_address(&s.host, s.port));
        if ours {
            let last = msg
                .headers()
                .values(HeaderName::Route)
                .last()
                .map(<[u8]>::to_vec);
            if let Some(last) = last {
                if let Ok(na) = NameAddr::parse(&last, "Route") {
                    let uri = String::from_utf8_lossy(na.uri_raw).into_owned();
                    let _ = msg.set_request_uri(&uri);
                    remove_last_route(msg);
                }
            }
        }
    }
    let mut routed_by_us = false;
    let mut flow = None;
    loop {
        let top = msg
            .headers()
            .values(HeaderName::Route)
            .next()
            .map(<[u8]>::to_vec);
        let Some(top) = top else { break };
        let parsed = NameAddr::parse(&top, "Route").ok().and_then(|na| {
            na.uri().ok().and_then(|u| {
                u.as_sip()
                    .map(|s| (s.host, s.port, s.user.map(str::to_string)))
            })
        });
        let Some((h, p, user)) = parsed else { break };
        if !(core.is_own_address(&h, p) || core.is_local(&h, p)) {
            break;
        }
        // A Path of Parley's own (RFC 5626 §5.3) names a client's flow.
        if let Some(f) = user.as_deref().and_then(|u| core.flow_tokens.decode(u)) {
            flow = Some(f);
        }
        msg.headers_mut().pop_first_value(HeaderName::Route);
        routed_by_us = true;
    }
    (routed_by_us, flow)
}

/// The ACK for a 2xx (RFC 3261 §16.11 with §16.6): no transaction, no
/// response; forwarded along its route, or to the registered contact of a
/// local user, or to the Request-URI's address.
pub async fn ack(core: &Core, sip: &Sip, mut msg: Message) {
    preprocess_routes(core, &mut msg);
    if !decrement_max_forwards(&mut msg) {
        return;
    }
    let top = msg
        .headers()
        .values(HeaderName::Route)
        .next()
        .map(<[u8]>::to_vec);
    let target = if let Some(top) = top {
        route_target(&top, Transport::Udp)
    } else {
        let Some(Ok(uri)) = msg.request_uri() else {
            return;
        };
        let Some(sip_uri) = uri.as_sip().cloned() else {
            return;
        };
        if core.is_local(&sip_uri.host, sip_uri.port) {
            let Some(user) = sip_uri.user else { return };
            let (aor, _) = local_aor(core, user, &sip_uri.host);
            let bindings = core.location.lookup(&aor, now_secs());
            let Some(b) = bindings.first() else { return };
            let uri = b.uri.to_string();
            let target = binding_target(b, sip);
            let _ = msg.set_request_uri(&uri);
            target
        } else {
            uri_targets(core, &sip_uri).await.into_iter().next()
        }
    };
    match target {
        Some(t) => sip.forward_stateless(msg, &t).await,
        None => tracing::debug!("ACK with nowhere to go"),
    }
}

/// The response context of one proxied request (§16.7): the branch
/// groups still to try and the responses so far. Responses are handled in
/// place, on the task that received them.
struct Context {
    upstream: Upstream,
    msg: Message,
    inbound: Transport,
    /// The flow token of the client flow the request came over (RFC 5626
    /// §5.3), put in Parley's Record-Route so the dialog comes back on it.
    flow_token: Option<String>,
    groups: VecDeque<Vec<Branch>>,
    invite: bool,
    failover: bool,
    dialog_creating: bool,
    /// Branches of the current group, and how many have a final response.
    live: usize,
    finals: usize,
    best: Option<Message>,
    answered: bool,
    done: bool,
    /// The current group's client transactions, for CANCEL.
    branches: Vec<BranchState>,
    /// CANCEL received (or a 2xx arrived): pending branches are cancelled.
    cancelling: bool,
    /// The request's loop hash, carried in the branches.
    loop_tag: u64,
    /// When Timer C last started (the INVITE went out or a provisional came).
    last_provisional: std::time::Instant,
}

impl Context {
    /// A context for `msg` to `groups`, not yet started: a non-INVITE
    /// that creates no dialog and fails over like a fork.
    fn new(upstream: Upstream, msg: Message, groups: Vec<Vec<Branch>>, loop_tag: u64) -> Context {
        Context {
            upstream,
            msg,
            inbound: Transport::Udp,
            flow_token: None,
            groups: groups.into(),
            invite: false,
            failover: false,
            dialog_creating: false,
            live: 0,
            finals: 0,
            best: None,
            answered: false,
            done: false,
            branches: Vec::new(),
            cancelling: false,
            loop_tag,
            last_provisional: std::time::Instant::now(),
        }
    }
}

/// Who waits for the responses of a context. The context lives behind an
/// `Arc` already; boxing the responder would add an allocation per
/// proxied request for nothing.
#[allow(clippy::large_enum_variant)]
enum Upstream {
    /// A proxied request: responses go back through its server transaction.
    Proxied(Responder),
    /// A request Parley originated: its final status (and the response,
    /// when one came from a branch) goes to the task that sent it.
    Origin(Option<tokio::sync::oneshot::Sender<(u16, Option<Message>)>>),
}

impl Upstream {
    /// Passes a response on: every one to a proxied request's sender; only
    /// the final one to an originating task.
    fn forward(&mut self, status: u16, response: &Message) {
        match self {
            Upstream::Proxied(r) => r.send_sync(status, Bytes::from(response.to_bytes())),
            Upstream::Origin(_) => self.finish(status, Some(response)),
        }
    }

    /// Answers with a response Parley makes.
    fn reply(&mut self, status: u16, reason: &str) {
        match self {
            Upstream::Proxied(r) => r.reply_sync(status, reason, &[]),
            Upstream::Origin(_) => self.finish(status, None),
        }
    }

    /// An originating task learns the final status (and response).
    fn finish(&mut self, status: u16, response: Option<&Message>) {
        if let (Upstream::Origin(tx), true) = (self, status >= 200) {
            if let Some(tx) = tx.take() {
                let _ = tx.send((status, response.cloned()));
            }
        }
    }
}

/// What the context knows of one branch of the current group.
#[derive(Debug, Default, Clone)]
struct BranchState {
    key: Option<Key>,
    provisional: bool,
    finished: bool,
}

/// The response contexts of INVITEs being proxied, by server transaction,
/// so a CANCEL can find its INVITE's branches (RFC 3261 §16.10).
#[derive(Default)]
pub struct Invites {
    map: Mutex<HashMap<Key, Weak<Mutex<Context>>>>,
}

impl std::fmt::Debug for Invites {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Invites").finish_non_exhaustive()
    }
}

impl Invites {
    fn insert(&self, key: Key, ctx: &Arc<Mutex<Context>>) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= 1024 && map.len().is_power_of_two() {
            map.retain(|_, w| w.strong_count() > 0);
        }
        map.insert(key, Arc::downgrade(ctx));
    }

    fn get(&self, key: &Key) -> Option<Arc<Mutex<Context>>> {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let ctx = map.get(key)?.upgrade();
        if ctx.is_none() {
            map.remove(key);
        }
        ctx
    }
}

/// A CANCEL (RFC 3261 §16.10): answered 200 when it matches an INVITE
/// being proxied, whose pending branches are then cancelled; 481 otherwise.
pub async fn cancel(core: &Core, sip: &Sip, mut inc: Incoming) {
    let ctx = inc
        .responder
        .key()
        .cancelled_invite()
        .filter(|k| sip.is_pending(k))
        .and_then(|k| core.invites.get(&k));
    let Some(ctx) = ctx else {
        return inc
            .responder
            .reply(481, "Call/Transaction Does Not Exist", &[])
            .await;
    };
    inc.responder.reply(200, "OK", &[]).await;
    let keys = {
        let mut c = lock(&ctx);
        c.cancelling = true;
        c.groups.clear();
        pending_cancels(&c)
    };
    for k in keys {
        sip.cancel(&k).await;
    }
}

/// Branches that can be cancelled now: provisional received, no final.
fn pending_cancels(c: &Context) -> Vec<Key> {
    c.branches
        .iter()
        .filter(|b| b.provisional && !b.finished)
        .filter_map(|b| b.key.clone())
        .collect()
}

fn lock(ctx: &Mutex<Context>) -> std::sync::MutexGuard<'_, Context> {
    ctx.lock().unwrap_or_else(|p| p.into_inner())
}

/// Sends the next group of branches; when no group is left, answers
/// upstream with the best response.
async fn start_group(ctx: Arc<Mutex<Context>>, core: Arc<Core>, sip: Sip) {
    let loop_tag = lock(&ctx).loop_tag;
    loop {
        let copies = {
            let mut c = lock(&ctx);
            let Some(group) = c.groups.pop_front() else {
                finish(&mut c);
                return;
            };
            let mut copies = Vec::new();
            for branch in group {
                let mut copy = c.msg.clone();
                if copy.set_request_uri(&branch.request_uri).is_err() {
                    continue;
                }
                for route in branch.routes.iter().rev() {
                    let _ = copy.headers_mut().push_front("Route", route);
                }
                // To a user whose connection another node of the cluster
                // holds: through that node, signed.
                if branch
                    .routes
                    .first()
                    .is_some_and(|r| r.contains(";parley-node"))
                {
                    super::cluster::sign(&core, &mut copy);
                }
                if c.dialog_creating {
                    for rr in core.record_route(c.inbound, branch.target.transport) {
                        let rr = match &c.flow_token {
                            Some(token) => rr.replacen(":", &format!(":{token}@"), 1),
                            None => rr,
                        };
                        let _ = copy.headers_mut().push_front("Record-Route", &rr);
                    }
                }
                copies.push((copy, branch.target));
            }
            // Set before sending: a response may come back at once.
            c.live = copies.len();
            c.finals = 0;
            c.branches = vec![BranchState::default(); copies.len()];
            copies
        };
        if copies.is_empty() {
            continue;
        }
        for (i, (copy, target)) in copies.into_iter().enumerate() {
            let on_response: OnResponse = {
                let ctx = ctx.clone();
                let core = core.clone();
                let sip = sip.clone();
                Arc::new(move |r| on_response(&ctx, &core, &sip, i, r))
            };
            let key = sip
                .request_with(copy, &target, on_response, Some(loop_tag))
                .await;
            let cancel_now = {
                let mut c = lock(&ctx);
                let cancelling = c.cancelling;
                match c.branches.get_mut(i) {
                    Some(b) => {
                        b.key = key.clone();
                        cancelling && b.provisional && !b.finished
                    }
                    None => false,
                }
            };
            if let (true, Some(k)) = (cancel_now, key) {
                sip.cancel(&k).await;
            }
        }
        return;
    }
}

/// One response from a branch.
fn on_response(
    ctx: &Arc<Mutex<Context>>,
    core: &Arc<Core>,
    sip: &Sip,
    branch: usize,
    mut response: Message,
) {
    let Some(status) = response.status() else {
        return;
    };
    let mut c = lock(ctx);
    if let Some(b) = c.branches.get_mut(branch) {
        if status < 200 {
            b.provisional = true;
        } else {
            b.finished = true;
        }
    }
    if status < 200 {
        c.last_provisional = std::time::Instant::now();
    }
    // A branch that answers after its CANCEL was due gets it now.
    if c.cancelling && status < 200 {
        let key = c.branches.get(branch).and_then(|b| b.key.clone());
        if let Some(k) = key {
            let sip = sip.clone();
            tokio::spawn(async move { sip.cancel(&k).await });
        }
    }
    if c.done {
        return;
    }
    response.headers_mut().pop_first_value(HeaderName::Via);
    match status {
        100 => return,
        101..=199 => {
            if !c.answered {
                forward_upstream(&mut c, status, &response);
            }
            return;
        }
        200..=299 => {
            // Every 2xx goes upstream (an INVITE fork may bring several);
            // the other branches of an INVITE are cancelled (§16.7 step 10).
            forward_upstream(&mut c, status, &response);
            c.answered = true;
            if !c.invite {
                c.done = true;
            } else if !c.cancelling {
                c.cancelling = true;
                c.groups.clear();
                let keys = pending_cancels(&c);
                let sip = sip.clone();
                tokio::spawn(async move {
                    for k in keys {
                        sip.cancel(&k).await;
                    }
                });
            }
            return;
        }
        _ => {}
    }
    final_response(c, ctx, core, sip, response);
}

/// A final non-2xx response of a branch (received, or made for Timer C).
fn final_response(
    mut c: std::sync::MutexGuard<'_, Context>,
    ctx: &Arc<Mutex<Context>>,
    core: &Arc<Core>,
    sip: &Sip,
    response: Message,
) {
    let status = response.status().unwrap_or(500);
    c.finals += 1;
    if better(&response, c.best.as_ref()) {
        c.best = Some(response);
    }
    if status >= 600 {
        c.groups.clear();
    }
    if c.finals < c.live {
        return;
    }
    if c.answered {
        c.done = true;
        return;
    }
    // The group is over without a 2xx. Failing over to the next server is
    // only for one that did not answer or is unavailable (RFC 3263 §4.3).
    let retry = c
        .best
        .as_ref()
        .is_some_and(|b| matches!(b.status(), Some(408) | Some(503)));
    if c.groups.is_empty() || (c.failover && !retry) {
        finish(&mut c);
        return;
    }
    drop(c);
    tokio::spawn(start_group(ctx.clone(), core.clone(), sip.clone()));
}

/// Timer C fired: the branches to cancel, after counting the silent ones
/// as 408; `None` when the timer was restarted meanwhile.
fn fire_timer_c(
    ctx: &Arc<Mutex<Context>>,
    core: &Arc<Core>,
    sip: &Sip,
    after: std::time::Duration,
) -> Option<Vec<Key>> {
    let mut c = lock(ctx);
    if c.done || c.last_provisional + after > std::time::Instant::now() {
        return if c.done { Some(Vec::new()) } else { None };
    }
    let mut cancel = Vec::new();
    let mut silent = 0;
    for b in c.branches.iter_mut().filter(|b| !b.finished) {
        if b.provisional {
            cancel.extend(b.key.clone());
        } else {
            b.finished = true;
            silent += 1;
        }
    }
    // Cancelled branches answer 487 and end the context the usual way;
    // silent ones count as 408 now.
    c.last_provisional = std::time::Instant::now();
    for _ in 0..silent {
        let Some(m) = crate::net::local_response(&c.msg, 408, "Request Timeout") else {
            continue;
        };
        final_response(c, ctx, core, sip, m);
        c = lock(ctx);
    }
    Some(cancel)
}

/// Timer C (RFC 3261 §16.8): an INVITE branch with no final response
/// after `after` since the last provisional is cancelled when it has rung,
/// and counted as a 408 when it has not.
async fn timer_c(ctx: Weak<Mutex<Context>>, core: Arc<Core>, sip: Sip, after: std::time::Duration) {
    loop {
        let deadline = {
            let Some(ctx) = ctx.upgrade() else { return };
            let c = lock(&ctx);
            if c.done {
                return;
            }
            c.last_provisional + after
        };
        tokio::time::sleep_until(deadline.into()).await;
        let Some(ctx) = ctx.upgrade() else { return };
        let Some(cancel) = fire_timer_c(&ctx, &core, &sip, after) else {
            continue;
        };
        for k in cancel {
            sip.cancel(&k).await;
        }
    }
}

fn forward_upstream(c: &mut Context, status: u16, response: &Message) {
    c.upstream.forward(status, response);
}

/// Answers upstream with the best response (§16.7 step 6).
fn finish(c: &mut Context) {
    if c.done {
        return;
    }
    c.done = true;
    if c.answered {
        return;
    }
    let local = |c: &mut Context, status: u16, reason: &str| c.upstream.reply(status, reason);
    match c.best.take() {
        // A 503 from downstream becomes 500.
        Some(r) if r.status() == Some(503) => local(c, 500, "Server Internal Error"),
        Some(r) => {
            let status = r.status().unwrap_or(500);
            forward_upstream(c, status, &r);
        }
        None => local(c, 480, "Temporarily Unavailable"),
    }
}

/// §16.7 step 6: 6xx first, then the lowest class; the first of a class
/// stays.
fn better(new: &Message, old: Option<&Message>) -> bool {
    let Some(old) = old else {
        return true;
    };
    let (n, o) = (new.status().unwrap_or(699), old.status().unwrap_or(699));
    let rank = |s: u16| if s >= 600 { 0 } else { s / 100 };
    rank(n) < rank(o)
}

/// A request inside a dialog (a To tag): it follows its route set.
fn in_dialog(msg: &Message) -> bool {
    msg.to()
        .and_then(Result::ok)
        .is_some_and(|t| t.tag().is_some())
}

fn request_uri_text(msg: &Message) -> String {
    String::from_utf8_lossy(msg.request_uri_raw().unwrap_or(b"")).into_owned()
}

fn remove_last_route(msg: &mut Message) {
    let all: Vec<String> = msg
        .headers()
        .values(HeaderName::Route)
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect();
    msg.headers_mut().remove(HeaderName::Route);
    for r in &all[..all.len().saturating_sub(1)] {
        let _ = msg.headers_mut().push("Route", r);
    }
}

/// A `message/cpim` body must name its sender in CPIM From: 403 when it
/// names someone else, 400 when it is not CPIM at all.
fn check_cpim_identity(msg: &Message, sender: &Sender) -> Result<(), Rejection> {
    use crate::proto::cpim;
    let is_cpim = msg.content_type().and_then(Result::ok).is_some_and(|ct| {
        ct.kind.eq_ignore_ascii_case("message") && ct.subtype.eq_ignore_ascii_case("cpim")
    });
    if !is_cpim {
        return Ok(());
    }
    let body = msg.body_bytes();
    let parsed = cpim::Cpim::parse(&body, &cpim::Limits::default())
        .map_err(|_| Rejection::new(400, "Bad CPIM body"))?;
    let claimed = parsed
        .from_uri()
        .and_then(cpim::address_key)
        .ok_or(Rejection::new(400, "CPIM body without a From address"))?;
    let user = sender.user.as_deref().unwrap_or_default();
    if claimed.eq_ignore_ascii_case(&format!("{user}@{}", sender.domain)) {
        Ok(())
    } else {
        Err(Rejection::new(403, "CPIM From is not the sender"))
    }
}
