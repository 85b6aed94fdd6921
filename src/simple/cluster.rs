//! Several nodes serving the same domains on one PostgreSQL store.
//!
//! Each node keeps what it serves in memory, as a single node does, and
//! learns of the others' changes from the engine (LISTEN/NOTIFY): the
//! bindings of an address of record another node changed are read again,
//! and the kept messages counted again. A binding made over a connection
//! is reached from any node through the node that holds the connection
//! (a Route with a flow token only that node reads, as RFC 5626 §5.3's
//! edge proxy does); a UDP binding from any node directly. What one node
//! forwards to another is signed with the shared `[cluster] secret`, so
//! the other takes it as authenticated there.

use std::sync::Arc;

use ring::hmac;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::Core;
use crate::net::Sip;
use crate::proto::sip::{HeaderName, Message};
use crate::store::{Change, NodeRow, Store};
use crate::sys::now_secs;

/// The header a node signs what it forwards to another node with.
pub const HEADER: &str = "Parley-Node";

/// The signature of `msg` by `node` under `secret`: over the node, the
/// Call-ID, the CSeq and the From tag, so it cannot be moved to another
/// request.
fn signature(secret: &str, node: &str, msg: &Message) -> Option<String> {
    let call_id = msg.headers().get(HeaderName::CallId)?;
    let cseq = msg.headers().get(HeaderName::CSeq)?;
    let from = msg.from()?.ok()?;
    let tag = from.tag().unwrap_or_default();
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let mut ctx = hmac::Context::with_key(&key);
    for part in [node.as_bytes(), call_id, cseq, tag.as_bytes()] {
        ctx.update(part);
        ctx.update(b"\n");
    }
    Some(crate::proto::digest::hex(&ctx.sign().as_ref()[..16]))
}

/// Signs a copy this node forwards to another node of the cluster.
pub fn sign(core: &Core, msg: &mut Message) {
    let Some((node, secret)) = &core.cluster else {
        return;
    };
    msg.headers_mut().remove_named(HEADER);
    if let Some(sig) = signature(secret, node, msg) {
        let _ = msg.headers_mut().push(HEADER, &format!("{node};sig={sig}"));
    }
}

/// True when `msg` was signed by a node of this cluster (the header is
/// removed either way: it never leaves the cluster).
pub fn signed_by_a_node(core: &Core, msg: &mut Message) -> bool {
    let value = msg
        .headers()
        .get_all(HEADER)
        .next()
        .map(|v| String::from_utf8_lossy(v).into_owned());
    let Some(value) = value else { return false };
    msg.headers_mut().remove_named(HEADER);
    let Some((_, secret)) = &core.cluster else {
        return false;
    };
    let Some((node, sig)) = value
        .split_once(";sig=")
        .map(|(n, s)| (n.trim().to_string(), s.trim().to_string()))
    else {
        return false;
    };
    let ok = signature(secret, &node, msg).is_some_and(|expected| {
        crate::proto::digest::constant_time_eq(expected.as_bytes(), sig.as_bytes())
    });
    if !ok {
        warn!(%node, "a request signed as from a node of the cluster does not verify");
    }
    ok
}

/// How often a node writes its row (its health on every console).
pub const HEARTBEAT_SECS: u64 = 5;

/// Follows the other nodes' changes until `stop`: bindings read again for
/// each address of record changed, kept messages counted again, and
/// delivered from here when their user is registered. Writes this node's
/// row (`me`) every few seconds.
pub async fn follow(
    core: Arc<Core>,
    sip: Sip,
    store: Arc<dyn Store>,
    mut changes: broadcast::Receiver<Change>,
    mut me: NodeRow,
    stop: CancellationToken,
) {
    let mut beat = tokio::time::interval(std::time::Duration::from_secs(HEARTBEAT_SECS));
    loop {
        let change = tokio::select! {
            _ = stop.cancelled() => return,
            _ = beat.tick() => {
                me.seen_at = now_secs() as i64;
                me.registrations = core.location.all(now_secs()).iter().filter(|(_, b)| b.node.is_empty()).count() as i64;
                if let Err(e) = store.put_node(&me).await {
                    warn!(error = %e, "this node's row not written");
                }
                continue;
            }
            c = changes.recv() => c,
        };
        match change {
            Ok(Change::Bindings(aor)) => match store.bindings_of(&aor).await {
                Ok(rows) => {
                    core.location.merge(&aor, &rows);
                    deliver_if_waiting(&core, &sip, &aor);
                }
                Err(e) => warn!(error = %e, %aor, "bindings not read again"),
            },
            Ok(Change::Presence(presentity)) => match store.presence_documents(&presentity).await {
                Ok(rows) => super::presence::remote_changed(&core, &sip, &presentity, rows).await,
                Err(e) => warn!(error = %e, %presentity, "presence not read again"),
            },
            Ok(Change::Offline(aor)) => {
                core.offline.recount(&aor).await;
                deliver_if_waiting(&core, &sip, &aor);
            }
            Ok(Change::Resync) | Err(broadcast::error::RecvError::Lagged(_)) => {
                resync(&core, &sip, &*store).await;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// Reads every binding and count again (after notifications were lost).
async fn resync(core: &Arc<Core>, sip: &Sip, store: &dyn Store) {
    let Ok(rows) = store.bindings().await else {
        return;
    };
    let mut aors: std::collections::BTreeSet<String> = rows.iter().map(|r| r.aor.clone()).collect();
    aors.extend(
        core.location
            .all(now_secs())
            .into_iter()
            .map(|(aor, _)| aor),
    );
    for aor in &aors {
        let mine: Vec<_> = rows.iter().filter(|r| &r.aor == aor).cloned().collect();
        core.location.merge(aor, &mine);
    }
    if let Ok(counts) = store.offline_counts().await {
        for (aor, _) in counts {
            core.offline.recount(&aor).await;
            deliver_if_waiting(core, sip, &aor);
        }
    }
    for presentity in core.presence.followed() {
        if let Ok(rows) = store.presence_documents(&presentity).await {
            super::presence::remote_changed(core, sip, &presentity, rows).await;
        }
    }
    debug!(addresses = aors.len(), "bindings and presence read again");
}

/// Kept messages for `aor` go now if it is registered (on any node: a
/// message is claimed by one).
fn deliver_if_waiting(core: &Arc<Core>, sip: &Sip, aor: &str) {
    if core.offline.waiting(aor) == 0 || core.location.lookup(aor, now_secs()).is_empty() {
        return;
    }
    info!(%aor, "kept messages: delivering what another node kept");
    tokio::spawn(super::pager::deliver(
        core.clone(),
        sip.clone(),
        aor.to_string(),
    ));
}
