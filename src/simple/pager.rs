//! Pager-mode IM (RFC 3428) beyond relaying: store and forward.
//!
//! A MESSAGE for a known local user with no registered contact is written
//! to the store and only then answered 202 Accepted, so a crash after the
//! 202 loses nothing. When a contact of that user registers, the kept
//! messages go out oldest first, each as a new MESSAGE from the original
//! sender with a Date header saying when it was accepted; one is removed
//! only after a 2xx. One that expires first is removed and its sender gets
//! a MESSAGE saying it was not delivered. A kept CPIM message that asks
//! for IMDN delivery notifications (RFC 5438) gets them: `delivered` when
//! a device of the recipient accepted it, `failed` when it expired.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tracing::{debug, info, warn};

use super::targets::{contact_groups, remote_groups, Branch};
use super::{proxy, reject, Core};
use crate::config::OfflineConfig;
use crate::net::{Incoming, Sip};
use crate::proto::sip::{HeaderName, Message, RequestBuilder};
use crate::proto::time::{http_date, rfc3339};
use crate::proto::{cpim, imdn};
use crate::router::{Destination, Rejection};
use crate::store::{OfflineRow, Store};
use crate::sys::now_secs;

/// The offline store: counts per recipient in memory (so a REGISTER
/// costs no database call unless something waits), rows in the store.
pub struct Offline {
    store: Arc<dyn Store>,
    /// The settings (`[offline]`), reloadable.
    pub config: crate::config::Live<OfflineConfig>,
    pending: Mutex<HashMap<String, u32>>,
    /// Kept messages by the domain of their sender.
    by_sender_domain: Mutex<HashMap<String, u32>>,
    delivering: Mutex<HashSet<String>>,
}

impl std::fmt::Debug for Offline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Offline")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Offline {
    /// Loads the counts of what is kept.
    pub async fn load(
        store: Arc<dyn Store>,
        config: OfflineConfig,
    ) -> Result<Offline, crate::store::StoreError> {
        let pending = store
            .offline_counts()
            .await?
            .into_iter()
            .map(|(aor, n)| (aor, u32::try_from(n).unwrap_or(u32::MAX)))
            .collect();
        let mut by_sender_domain: HashMap<String, u32> = HashMap::new();
        for (sender, n) in store.offline_sender_counts().await? {
            *by_sender_domain.entry(sender_domain(&sender)).or_default() +=
                u32::try_from(n).unwrap_or(u32::MAX);
        }
        Ok(Offline {
            store,
            config: crate::config::Live::new(config),
            pending: Mutex::new(pending),
            by_sender_domain: Mutex::new(by_sender_domain),
            delivering: Mutex::new(HashSet::new()),
        })
    }

    /// True when store and forward is on.
    pub fn enabled(&self) -> bool {
        self.config.get().enabled
    }

    /// How many messages wait, for everyone.
    pub fn total(&self) -> u64 {
        self.counts().values().map(|n| u64::from(*n)).sum()
    }

    /// Reads again how many messages wait for `aor` (another node kept or
    /// delivered some).
    pub async fn recount(&self, aor: &str) {
        let Ok(rows) = self.store.offline_for(aor).await else {
            return;
        };
        let mut counts = self.counts();
        match u32::try_from(rows.len()).unwrap_or(u32::MAX) {
            0 => counts.remove(aor),
            n => counts.insert(aor.to_string(), n),
        };
    }

    /// How many messages wait for `aor`.
    pub fn waiting(&self, aor: &str) -> u32 {
        self.counts().get(aor).copied().unwrap_or(0)
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, HashMap<String, u32>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn domains(&self) -> std::sync::MutexGuard<'_, HashMap<String, u32>> {
        self.by_sender_domain
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// One kept message for `aor` from `sender` is gone.
    fn took(&self, aor: &str, sender: &str) {
        let fewer = |counts: &mut HashMap<String, u32>, key: &str| {
            if let Some(n) = counts.get_mut(key) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    counts.remove(key);
                }
            }
        };
        fewer(&mut self.counts(), aor);
        fewer(&mut self.domains(), &sender_domain(sender));
    }
}

/// The domain of a stored sender (`"Name" <sip:user@domain>`), lower-cased;
/// empty when it names none.
fn sender_domain(sender: &str) -> String {
    let uri = angle(sender).unwrap_or_else(|| sender.trim().to_string());
    crate::proto::sip::Uri::parse(uri.as_bytes())
        .ok()
        .and_then(|u| u.as_sip().map(|s| s.host.to_string().to_ascii_lowercase()))
        .unwrap_or_default()
}

/// Keeps a MESSAGE for `aor` (a known user with no contact) and answers
/// 202 once it is durable; 480 when the user's share is full, 500 when
/// the store fails (nothing was accepted then). True when accepted.
pub async fn keep(core: &Core, inc: &mut Incoming, aor: &str) -> bool {
    let msg = &inc.message;
    let Some(Ok(from)) = msg.from() else {
        inc.responder.reply(400, "Bad From", &[]).await;
        return false;
    };
    let sender = match from.display {
        Some(d) => format!(
            "{} <{}>",
            String::from_utf8_lossy(d),
            String::from_utf8_lossy(from.uri_raw)
        ),
        None => format!("<{}>", String::from_utf8_lossy(from.uri_raw)),
    };
    let content_type = msg.headers().get(HeaderName::ContentType).map_or_else(
        || "text/plain".to_string(),
        |v| String::from_utf8_lossy(v).trim().to_string(),
    );
    let body = msg.body().to_vec();
    match store(core, aor, sender, content_type, body).await {
        Ok(()) => {
            inc.responder
                .reply(202, "Accepted (stored for delivery)", &[])
                .await;
            true
        }
        Err(r) => {
            reject(inc, &r, aor).await;
            false
        }
    }
}

/// Writes one message for `aor` to the store: the 202 may follow.
async fn store(
    core: &Core,
    aor: &str,
    sender: String,
    content_type: String,
    body: Vec<u8>,
) -> Result<(), Rejection> {
    let offline = &core.offline;
    if offline.waiting(aor) >= offline.config.get().max_per_user {
        metrics::counter!("parley_caps_reached_total", "cap" => "kept messages per user")
            .increment(1);
        return Err(Rejection::new(
            480,
            "Temporarily Unavailable (limit of kept messages for this user reached)",
        ));
    }
    let from_domain = sender_domain(&sender);
    let kept_from_domain = offline.domains().get(&from_domain).copied().unwrap_or(0);
    if kept_from_domain >= offline.config.get().max_per_sender_domain {
        metrics::counter!("parley_caps_reached_total", "cap" => "kept messages per sender domain")
            .increment(1);
        return Err(Rejection::new(
            480,
            "Temporarily Unavailable (limit of kept messages from this domain reached)",
        ));
    }
    let now = now_secs() as i64;
    let row = OfflineRow {
        id: 0,
        aor: aor.to_string(),
        sender,
        content_type,
        body,
        received_at: now,
        expires_at: now.saturating_add(offline.config.get().expiry_secs as i64),
    };
    let started = std::time::Instant::now();
    let written = offline.store.put_offline(&row).await;
    metrics::histogram!("parley_store_seconds", "operation" => "put_offline")
        .record(started.elapsed().as_secs_f64());
    match written {
        Ok(id) => {
            *offline.counts().entry(aor.to_string()).or_default() += 1;
            *offline.domains().entry(from_domain).or_default() += 1;
            debug!(id, aor, "message kept for an offline user");
            Ok(())
        }
        Err(e) => {
            warn!(error = %e, "offline store failed");
            // Nothing was accepted: the sender keeps it and tries again.
            Err(Rejection::new(
                503,
                "Service Unavailable (the store does not answer)",
            ))
        }
    }
}

/// Delivers a MESSAGE that came from another network to the local user
/// `user@domain`: to its contacts, or kept for its next contact when it
/// has none. `Ok` with the status that took it (2xx, or 202 when kept).
pub async fn deliver_bridged(
    core: &Arc<Core>,
    sip: &Sip,
    sender_uri: &str,
    user: &str,
    domain: &str,
    content_type: &str,
    body: &[u8],
) -> Result<u16, Rejection> {
    if core.auth.user(user, domain).await.is_none() {
        return Err(Rejection::new(404, "Not Found"));
    }
    let aor = format!("{user}@{}", domain.to_ascii_lowercase());
    let groups = contact_groups(core, sip, &aor);
    let sender = format!("<{sender_uri}>");
    if groups.is_empty() {
        if !core.offline.enabled() {
            return Err(Rejection::new(480, "Temporarily Unavailable"));
        }
        return store(core, &aor, sender, content_type.to_string(), body.to_vec())
            .await
            .map(|()| 202);
    }
    let message = Outgoing {
        from: &sender,
        to: &format!("<sip:{aor}>"),
        date: now_secs() as i64,
        content_type,
        body,
    };
    match send(core, sip, groups, false, &message).await {
        s if (200..300).contains(&s) => Ok(s),
        s => Err(Rejection::text(s, format!("SIP {s}"))),
    }
}

/// A plain-text report Parley sends a local user about a message that
/// could not be delivered elsewhere.
pub async fn report(core: &Arc<Core>, sip: &Sip, to_uri: &str, about: &str, text: &str) {
    let domain = core.router.first_domain().to_string();
    send_to_address(
        core,
        sip,
        to_uri,
        &format!("<sip:parley@{domain}>"),
        &format!("<{to_uri}>"),
        "text/plain;charset=UTF-8",
        format!("Your message to {about} was not delivered: {text}").as_bytes(),
    )
    .await;
}

/// How long a node holds the kept messages it is delivering.
const CLAIM_SECS: i64 = 60;

/// Delivers what waits for `aor` to its registered contacts, oldest
/// first; stops at the first message no contact accepts.
pub async fn deliver(core: Arc<Core>, sip: Sip, aor: String) {
    let offline = &core.offline;
    if offline.waiting(&aor) == 0 {
        return;
    }
    // One delivery per recipient at a time.
    if !offline
        .delivering
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(aor.clone())
    {
        return;
    }
    // Claimed for a minute: another node sharing the store delivers none
    // of them meanwhile, and takes over what this one could not.
    let now = now_secs() as i64;
    let rows = match offline
        .store
        .claim_offline(&aor, now, now + CLAIM_SECS)
        .await
    {
        Ok(r) => r,
        Err(e) => {
            warn!(error = %e, "offline store failed");
            Vec::new()
        }
    };
    let mut delivered = 0usize;
    for (i, row) in rows.iter().enumerate() {
        if !deliver_one(&core, &sip, row).await {
            let left: Vec<i64> = rows[i..].iter().map(|r| r.id).collect();
            if let Err(e) = offline.store.release_offline(&left).await {
                warn!(error = %e, "offline store failed");
            }
            break;
        }
        {
            let (core, sip, row) = (core.clone(), sip.clone(), row.clone());
            tokio::spawn(async move {
                notify_disposition(&core, &sip, &row, imdn::Delivery::Delivered).await;
            });
        }
        match offline.store.remove_offline(row.id).await {
            Ok(true) => offline.took(&aor, &row.sender),
            Ok(false) => {}
            Err(e) => warn!(error = %e, "offline store failed"),
        }
        delivered += 1;
    }
    if delivered > 0 {
        info!(aor = %aor, delivered, "offline messages delivered");
    }
    offline
        .delivering
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&aor);
}

/// Sends one kept message to the contacts of its recipient, by the
/// proxy's forking rule; true when one answered 2xx.
async fn deliver_one(core: &Arc<Core>, sip: &Sip, row: &OfflineRow) -> bool {
    let message = Outgoing {
        from: &row.sender,
        to: &format!("<sip:{}>", row.aor),
        date: row.received_at,
        content_type: &row.content_type,
        body: &row.body,
    };
    let groups = contact_groups(core, sip, &row.aor);
    (200..300).contains(&send(core, sip, groups, false, &message).await)
}

/// A MESSAGE Parley originates, before it has a Request-URI.
struct Outgoing<'a> {
    from: &'a str,
    to: &'a str,
    /// The Date it carries, Unix seconds.
    date: i64,
    content_type: &'a str,
    body: &'a [u8],
}

impl Outgoing<'_> {
    /// The MESSAGE request, addressed per branch by the forking rule.
    fn request(&self, request_uri: &str) -> Option<Message> {
        RequestBuilder::new("MESSAGE", request_uri)
            .header(
                "From",
                &format!("{};tag={}", self.from, crate::sys::token()),
            )
            .header("To", self.to)
            .header("Call-ID", &crate::sys::token_hex(12))
            .header("CSeq", "1 MESSAGE")
            .header("Max-Forwards", "70")
            .header("Date", &http_date(u64::try_from(self.date).unwrap_or(0)))
            .body(self.content_type, self.body)
            .map_err(|e| warn!(error = %e, "MESSAGE not made"))
            .ok()
    }
}

/// Sends `message` to `groups` by the proxy's forking rule; the final
/// status (480 when there was nowhere to send it).
async fn send(
    core: &Arc<Core>,
    sip: &Sip,
    groups: Vec<Vec<Branch>>,
    failover: bool,
    message: &Outgoing<'_>,
) -> u16 {
    let Some(first) = groups.first().and_then(|g| g.first()) else {
        return 480;
    };
    let Some(request) = message.request(&first.request_uri) else {
        return 500;
    };
    proxy::originate(core, sip, request, groups, failover).await
}

/// Removes expired messages and tells each sender (RFC 3428 leaves the
/// report to the service; this is a plain-text MESSAGE from Parley).
pub async fn expire(core: &Arc<Core>, sip: &Sip) {
    let offline = &core.offline;
    if offline.counts().is_empty() {
        return;
    }
    let rows = match offline.store.offline_expired(now_secs() as i64).await {
        Ok(r) => r,
        Err(e) => {
            warn!(error = %e, "offline store failed");
            return;
        }
    };
    for row in rows {
        if !matches!(offline.store.remove_offline(row.id).await, Ok(true)) {
            continue;
        }
        offline.took(&row.aor, &row.sender);
        info!(aor = %row.aor, sender = %row.sender, "offline message expired");
        report_expiry(core, sip, &row).await;
    }
}

/// The URI inside `<>` of a name-addr.
fn angle(value: &str) -> Option<String> {
    value
        .split_once('<')
        .and_then(|(_, r)| r.split_once('>'))
        .map(|(u, _)| u.to_string())
}

/// What the kept message asked to be told (IMDN, RFC 5438).
fn imdn_request(row: &OfflineRow) -> Option<imdn::Request> {
    let is_cpim = row
        .content_type
        .split(';')
        .next()
        .is_some_and(|t| t.trim().eq_ignore_ascii_case(cpim::CONTENT_TYPE));
    if !is_cpim {
        return None;
    }
    let body = Bytes::from(row.body.clone());
    imdn::Request::of(&cpim::Cpim::parse(&body, &cpim::Limits::default()).ok()?)
}

/// Sends an IMDN delivery notification for a kept message, from its
/// recipient to its sender, when the message asked for this outcome.
async fn notify_disposition(
    core: &Arc<Core>,
    sip: &Sip,
    row: &OfflineRow,
    outcome: imdn::Delivery,
) -> bool {
    let Some(request) = imdn_request(row) else {
        return false;
    };
    let wanted = match outcome {
        imdn::Delivery::Delivered => request.positive_delivery,
        imdn::Delivery::Failed => request.negative_delivery,
    };
    let Some(sender) = angle(&row.sender) else {
        return false;
    };
    if !wanted {
        // Asked, but not for this outcome: nothing is sent.
        return true;
    }
    let recipient = format!("sip:{}", row.aor);
    let body = imdn::delivery_message(
        &request,
        &recipient,
        &sender,
        &core.presence.token(),
        &rfc3339(now_secs()),
        outcome,
    );
    send_to_address(
        core,
        sip,
        &sender,
        &format!("<{recipient}>"),
        &row.sender,
        cpim::CONTENT_TYPE,
        &body,
    )
    .await;
    true
}

/// The not-delivered report to the sender of an expired message: an IMDN
/// failure when the message asked for one, else plain text.
async fn report_expiry(core: &Arc<Core>, sip: &Sip, row: &OfflineRow) {
    if notify_disposition(core, sip, row, imdn::Delivery::Failed).await {
        return;
    }
    let Some(uri) = angle(&row.sender) else {
        return;
    };
    let domain = row.aor.split_once('@').map_or("localhost", |(_, d)| d);
    let text = format!(
        "Your message to sip:{} of {} was not delivered: no device of the recipient came online before it expired.",
        row.aor,
        http_date(u64::try_from(row.received_at).unwrap_or(0))
    );
    send_to_address(
        core,
        sip,
        &uri,
        &format!("<sip:parley@{domain}>"),
        &row.sender,
        "text/plain;charset=UTF-8",
        text.as_bytes(),
    )
    .await;
}

/// Sends a MESSAGE Parley originates to `uri`: a local user at its
/// contacts, another SIP domain through DNS (RFC 3263) when the domain
/// policy lets it; true on a 2xx.
pub(crate) async fn send_to_address(
    core: &Arc<Core>,
    sip: &Sip,
    uri: &str,
    from: &str,
    to: &str,
    content_type: &str,
    body: &[u8],
) -> bool {
    let Ok(parsed) = crate::proto::sip::Uri::parse(uri.as_bytes()) else {
        return false;
    };
    let Some(sip_uri) = parsed.as_sip() else {
        return false;
    };
    let local = core.is_local(&sip_uri.host, sip_uri.port);
    let (groups, failover) = match (sip_uri.user, local) {
        (Some(user), true) => {
            let (aor, _) = proxy::local_aor(core, user, &sip_uri.host);
            (contact_groups(core, sip, &aor), false)
        }
        _ => {
            let domain = sip_uri.host.to_string();
            match core.router.destination(&domain).await {
                Destination::Sip => {}
                other => {
                    info!(to = %uri, destination = ?other, "a report Parley made has no SIP route");
                    return false;
                }
            }
            if let Err(r) = core.router.check_domain(&domain) {
                info!(to = %uri, refusal = %r, "a report Parley made is refused by policy");
                return false;
            }
            (remote_groups(core, sip_uri, uri).await, true)
        }
    };
    let message = Outgoing {
        from,
        to,
        date: now_secs() as i64,
        content_type,
        body,
    };
    if (200..300).contains(&send(core, sip, groups, failover, &message).await) {
        return true;
    }
    debug!(to = %uri, "a MESSAGE Parley made found no one");
    false
}
