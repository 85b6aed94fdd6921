//! Presence across networks (RFC 7248): local watchers of presentities
//! on another network (held here, answered by that network through its
//! adapter) and watchers on another network of local presentities
//! (decided by the same rules as SIP watchers).

use super::*;

/// The answer of another network to a local watcher's subscription to
/// one of its presentities: live subscriptions follow it.
pub async fn set_foreign(
    core: &Core,
    sip: &Sip,
    presentity: &str,
    watcher: &str,
    decision: Decision,
) {
    let out = {
        let mut state = core.presence.state();
        state
            .foreign
            .insert((presentity.to_string(), watcher.to_string()), decision);
        apply_rules(core, &mut state, now_secs())
    };
    send_all(core, sip, out).await;
}

/// The state of a presentity of another network, as its adapter reports
/// it (None: nothing is known any more). It replaces what was known and
/// is notified to the watchers allowed to see it.
pub async fn publish_foreign(core: &Core, sip: &Sip, presentity: &str, document: Option<Document>) {
    let out = {
        let mut state = core.presence.state();
        let before = compose(&state, presentity);
        match document {
            Some(document) => {
                state.publications.insert(
                    presentity.to_string(),
                    vec![Publication {
                        etag: String::new(),
                        document,
                        expires_at: u64::MAX,
                    }],
                );
            }
            None => {
                state.publications.remove(presentity);
            }
        }
        let now = now_secs();
        if compose(&state, presentity) == before {
            Vec::new()
        } else {
            notifications(core, &mut state, presentity, now)
        }
    };
    send_all(core, sip, out).await;
}

/// A watcher on another network asks to see a local presentity (an XMPP
/// `subscribe`): decided as any watcher is; `Allowed`/`Revoked` notices
/// follow now and whenever the rules change.
/// Refused (with the cap's name) when the presentity already has as many
/// watchers on other networks as `[presence] max_per_presentity` allows.
pub async fn watch_external(
    core: &Core,
    sip: &Sip,
    presentity: &str,
    watcher: &str,
) -> Result<Decision, &'static str> {
    let decision = {
        let mut state = core.presence.state();
        let d = core.presence.decide(&state, core, presentity, watcher);
        let watchers = state.external.entry(presentity.to_string()).or_default();
        if !watchers.contains_key(watcher)
            && watchers.len() >= core.presence.config.get().max_per_presentity as usize
        {
            metrics::counter!("parley_caps_reached_total", "cap" => "subscriptions to this user")
                .increment(1);
            return Err("subscriptions to this user");
        }
        watchers.insert(watcher.to_string(), d);
        let notice = match d {
            Decision::Allow => Some(ExternalNotice::Allowed {
                presentity: presentity.to_string(),
                watcher: watcher.to_string(),
                document: compose(&state, presentity),
            }),
            Decision::Deny => Some(ExternalNotice::Revoked {
                presentity: presentity.to_string(),
                watcher: watcher.to_string(),
            }),
            _ => None,
        };
        state.external_out.extend(notice);
        d
    };
    send_all(core, sip, Vec::new()).await;
    Ok(decision)
}

/// What another network last answered `watcher`'s request to see
/// `presentity` (None: it was never asked).
pub fn foreign_decision(core: &Core, presentity: &str, watcher: &str) -> Option<Decision> {
    core.presence
        .state()
        .foreign
        .get(&(presentity.to_string(), watcher.to_string()))
        .copied()
}

/// Whether any local watcher subscribes to `presentity` (what another
/// network reports about presentities nobody watches is not kept).
pub fn is_watched(core: &Core, presentity: &str) -> bool {
    core.presence
        .state()
        .watchers
        .get(&(presentity.to_string(), Package::Presence))
        .is_some_and(|(_, set)| !set.is_empty())
}

/// A watcher on another network stops watching.
pub fn unwatch_external(core: &Core, presentity: &str, watcher: &str) {
    let mut state = core.presence.state();
    if let Some(w) = state.external.get_mut(presentity) {
        w.remove(watcher);
        if w.is_empty() {
            state.external.remove(presentity);
        }
    }
}

/// What a watcher on another network may see of a local presentity now
/// (an XMPP probe): the state when it is allowed.
pub fn probe_external(core: &Core, presentity: &str, watcher: &str) -> Option<Document> {
    let state = core.presence.state();
    let allowed = state
        .external
        .get(presentity)
        .and_then(|w| w.get(watcher))
        .is_some_and(|d| *d == Decision::Allow);
    allowed.then(|| compose(&state, presentity))
}

/// A SUBSCRIBE from a local user to a presentity of another network
/// (`user@domain`), which the router reaches through an adapter: the
/// agent holds the dialog and notifies what the adapter reports. True
/// when a new subscription was made (the other network is then asked).
/// `watcher` is who the proxy found the sender to be.
pub(crate) async fn subscribe_foreign(
    core: &Core,
    sip: &Sip,
    inc: Incoming,
    presentity: String,
    watcher: crate::simple::auth::Sender,
) -> bool {
    let mut made = false;
    subscribe_to(core, sip, inc, Some((presentity, watcher)), &mut made).await;
    made
}
