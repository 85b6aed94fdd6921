//! SIP towards the adapters: what a local SIP user sends to an address
//! the router places on another network, and the presence of local users
//! for watchers there (RFC 7247 §5, RFC 7248, RFC 7572).
//!
//! - MESSAGE crosses: 202 once the network took it, the RFC 7247 §7
//!   mapped error when it did not.
//! - A presence SUBSCRIBE is held by the presence agent and asked of the
//!   other network (RFC 7248 §4); INVITE with an MSRP offer opens a chat
//!   session (`session`, RFC 7573); other methods are refused with 488.
//! - Presence notices for external watchers (allowed, state, revoked) go
//!   out through the adapter of the watcher's domain.
//!
//! The reverse direction (an adapter handing something to SIP) is the
//! hub's, one layer up.

use std::sync::Arc;
use std::time::Instant;

use parley_adapter::{Adapter, Address, Outbound, Protocol, Subscription, SubscriptionAction};
use tracing::{debug, info};

use super::auth::Sender;
use super::presence::{self, Decision, ExternalNotice};
use super::{reject, Core};
use crate::net::{Incoming, Sip};
use crate::proto::sip::{HeaderName, Message, Method};
use crate::router::policy::Refusal;
use crate::router::reports::attributed;
use crate::router::{archive, content_type, sipmap, Destination, Rejection};

/// A SIP request for another domain from an authenticated local user,
/// bridged through `adapter`.
pub(crate) async fn request(
    core: &Core,
    sip: &Sip,
    adapter: Arc<dyn Adapter>,
    mut inc: Incoming,
    msg: &Message,
    (sender, checked): (Address, &Sender),
    recipient: Address,
) {
    let router = &core.router;
    let is_message = matches!(msg.method(), Some(Method::Message));
    if let Err(r) = router.check_domain(recipient.domain()) {
        if is_message {
            router.archive_sip(
                msg,
                &sender.bare().to_string(),
                &recipient.bare().to_string(),
                recipient.domain(),
                "digest",
                format!("refused: {}", refusal_name(&r)),
                true,
            );
        }
        return reject(&mut inc, &r, recipient.domain()).await;
    }
    let is_presence = msg
        .headers()
        .get(HeaderName::Event)
        .is_some_and(|e| String::from_utf8_lossy(e).trim().split(';').next() == Some("presence"));
    if matches!(msg.method(), Some(Method::Subscribe)) && is_presence {
        return subscribe(core, sip, adapter, inc, (sender, checked), recipient).await;
    }
    if matches!(msg.method(), Some(Method::Invite)) {
        return super::session::invite(core, sip, adapter, inc, msg, sender, recipient).await;
    }
    let inc = &mut inc;
    if !is_message {
        // RFC 3261 §21.4.26 with a Warning (§20.43) that says why.
        let why = format!(
            "only MESSAGE, INVITE with MSRP and presence cross to {}",
            adapter.protocol().name()
        );
        let host = core.domains().first().cloned().unwrap_or_default();
        let warning = format!("399 {host} \"{}\"", why.replace('"', "'"));
        return inc
            .responder
            .reply(488, "Not Acceptable Here", &[("Warning", warning)])
            .await;
    }
    let content_type = content_type(msg);
    let body = msg.body_bytes();
    let (from_text, to_text) = (sender.bare().to_string(), recipient.bare().to_string());
    let record = |decision: String| {
        router.archive().record(
            archive::Fact {
                source: "sip",
                destination: adapter.protocol().name(),
                sender: &from_text,
                recipient: &to_text,
                peer_domain: recipient.domain(),
                auth: "digest",
                decision,
                content_type: &content_type,
                body: &body,
            },
            true,
        )
    };
    if let Err(r) = router.policy().content(body.len(), &[&content_type]) {
        record(format!("refused: {}", r.name()));
        return reject(inc, &r.into(), recipient.domain()).await;
    }
    let id = format!("p{}", crate::sys::token());
    let m = match sipmap::from_sip(sender.clone(), recipient.clone(), &content_type, &body, id) {
        Ok(m) => m,
        Err(u) => return inc.responder.reply(u.status, u.reason, &[]).await,
    };
    if !router.cross(true, &m.id) {
        record("refused: loop".into());
        let r = router.policy().refuse(Refusal::Loop);
        return reject(inc, &r.into(), recipient.domain()).await;
    }
    let security = router.policy().security(recipient.domain());
    let started = Instant::now();
    // A failure the network reports while the sender still waits answers
    // the request itself; one that comes later is a report (router::reports).
    let failed = router.expect_failure(
        &m.id,
        recipient.domain(),
        &recipient.bare().to_string(),
        &sender.bare().to_sip_uri(),
    );
    let delivered = tokio::select! {
        r = adapter.deliver(Outbound::Message(m), security) => r.map_err(|f| (f, false)),
        Ok(f) = failed => Err((f, true)),
    };
    metrics::histogram!(
        "parley_message_delivery_seconds",
        "destination" => adapter.protocol().name()
    )
    .record(started.elapsed().as_secs_f64());
    match delivered {
        Ok(()) => {
            record("accepted".into());
            router.count(Protocol::Sip, adapter.protocol());
            inc.responder
                .reply(202, "Accepted (relayed to XMPP)", &[])
                .await
        }
        Err((f, remote)) => {
            record(format!("failed: {f}"));
            info!(to = %recipient, failure = %f, "MESSAGE not bridged");
            let status = f.condition.to_sip();
            // The other server's words are its own, never Parley's.
            let reason = match (&f.text, remote) {
                (_, true) => attributed(recipient.domain(), &f),
                (Some(t), false) => t.clone(),
                (None, false) => f.condition.name().to_string(),
            };
            reject(inc, &Rejection::text(status, reason), recipient.domain()).await
        }
    }
}

fn refusal_name(r: &Rejection) -> &'static str {
    r.refusal.map_or("refused", Refusal::name)
}

/// A local watcher subscribes to a presentity of another network: the
/// agent holds the dialog; the network is asked (RFC 7248 §4).
async fn subscribe(
    core: &Core,
    sip: &Sip,
    adapter: Arc<dyn Adapter>,
    inc: Incoming,
    (watcher, checked): (Address, &Sender),
    presentity: Address,
) {
    let key = presentity.bare().to_string();
    let known = presence::foreign_decision(core, &key, &watcher.bare().to_string());
    // The proxy checked who is asking (and used up the credentials).
    let made = presence::subscribe_foreign(core, sip, inc, key, checked.clone()).await;
    if !made {
        return;
    }
    let security = core.router.policy().security(presentity.domain());
    // RFC 7248 §4: ask for the subscription; where it was granted before,
    // probe for the current state too (a probe from someone not yet
    // allowed would only be answered `unsubscribed`).
    let mut actions = vec![SubscriptionAction::Subscribe];
    if known == Some(Decision::Allow) {
        actions.push(SubscriptionAction::Probe);
    }
    for action in actions {
        let s = Subscription {
            from: watcher.bare(),
            to: presentity.bare(),
            action,
        };
        if let Err(f) = adapter.deliver(Outbound::Subscription(s), security).await {
            info!(to = %presentity, failure = %f, "subscription not bridged");
            presence::set_foreign(
                core,
                sip,
                &presentity.bare().to_string(),
                &watcher.bare().to_string(),
                Decision::Deny,
            )
            .await;
            return;
        }
    }
}

/// Presence of a local presentity for a watcher on another network.
pub async fn presence_out(core: &Core, notice: ExternalNotice) {
    let (presentity, watcher) = match &notice {
        ExternalNotice::Allowed {
            presentity,
            watcher,
            ..
        }
        | ExternalNotice::State {
            presentity,
            watcher,
            ..
        }
        | ExternalNotice::Revoked {
            presentity,
            watcher,
        } => (presentity, watcher),
    };
    let (Ok(from), Ok(to)) = (Address::parse(presentity), Address::parse(watcher)) else {
        return;
    };
    let Destination::Adapter(adapter) = core.router.destination(to.domain()).await else {
        return;
    };
    let security = core.router.policy().security(to.domain());
    let mut items = Vec::new();
    match &notice {
        ExternalNotice::Allowed { document, .. } => {
            items.push(Outbound::Subscription(Subscription {
                from: from.clone(),
                to: to.clone(),
                action: SubscriptionAction::Subscribed,
            }));
            items.push(Outbound::Presence(sipmap::presence_of(document, from, to)));
        }
        ExternalNotice::State { document, .. } => {
            items.push(Outbound::Presence(sipmap::presence_of(document, from, to)));
        }
        ExternalNotice::Revoked { .. } => {
            items.push(Outbound::Subscription(Subscription {
                from,
                to,
                action: SubscriptionAction::Unsubscribed,
            }));
        }
    }
    for item in items {
        if let Err(f) = adapter.deliver(item, security).await {
            debug!(%watcher, failure = %f, "presence not bridged");
            return;
        }
    }
}
