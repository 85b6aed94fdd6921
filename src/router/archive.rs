//! The compliance archive: every message that crosses the company
//! boundary (or every message, or none, as `[archive] mode` says) is kept
//! in the store normalised to CPIM (RFC 3862), with its routing facts and
//! the policy's decision, for `retention_days`.

use std::sync::Arc;

use tracing::warn;

use crate::config::{ArchiveConfig, ArchiveMode};
use crate::proto::time::rfc3339;
use crate::store::{ArchiveRow, Store};
use crate::sys::now_secs;

/// One message's routing facts.
#[derive(Debug, Clone)]
pub struct Fact<'a> {
    /// Protocol it came in on.
    pub source: &'a str,
    /// Protocol it went out on (or would have).
    pub destination: &'a str,
    /// `user@domain`.
    pub sender: &'a str,
    /// `user@domain`.
    pub recipient: &'a str,
    /// The remote domain (empty for a local message).
    pub peer_domain: &'a str,
    /// How the peer authenticated.
    pub auth: &'a str,
    /// `delivered`, `accepted`, `relayed`, or `refused: …`.
    pub decision: String,
    /// The Content-Type.
    pub content_type: &'a str,
    /// The body.
    pub body: &'a [u8],
}

/// Rows waiting for the writer at most; past this a row is counted as
/// dropped and logged rather than growing memory without bound.
const QUEUE: usize = 65_536;
/// Rows written in one transaction at most.
const BATCH: usize = 512;

/// Writes archive rows off the request path, in batches: one SQLite
/// transaction for every row that arrived while the previous one was
/// written, so a burst costs a few transactions instead of one each.
pub struct Archive {
    store: Arc<dyn Store>,
    config: ArchiveConfig,
    queue: tokio::sync::mpsc::Sender<ArchiveRow>,
}

impl std::fmt::Debug for Archive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Archive")
            .field("config", &self.config)
            .finish()
    }
}

impl Archive {
    /// The archive of the config.
    pub fn new(store: Arc<dyn Store>, config: ArchiveConfig) -> Archive {
        let (queue, mut rx) = tokio::sync::mpsc::channel::<ArchiveRow>(QUEUE);
        let writer = store.clone();
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(BATCH);
            while let Some(row) = rx.recv().await {
                batch.push(row);
                while batch.len() < BATCH {
                    match rx.try_recv() {
                        Ok(row) => batch.push(row),
                        Err(_) => break,
                    }
                }
                let started = std::time::Instant::now();
                let written = writer.put_archive_batch(&batch).await;
                metrics::histogram!("parley_store_seconds", "operation" => "put_archive")
                    .record(started.elapsed().as_secs_f64());
                if let Err(e) = written {
                    warn!(error = %e, rows = batch.len(), "messages not archived");
                }
                batch.clear();
            }
        });
        Archive {
            store,
            config,
            queue,
        }
    }

    /// Whether a message that crossed (`cross`) or not is archived.
    pub fn wants(&self, cross: bool) -> bool {
        match self.config.mode {
            ArchiveMode::All => true,
            ArchiveMode::CrossDomain => cross,
            ArchiveMode::None => false,
        }
    }

    /// Keeps `fact` when the mode asks for it: `cross` says whether the
    /// message crossed (or tried to cross) the company boundary.
    pub fn record(&self, fact: Fact<'_>, cross: bool) {
        if !self.wants(cross) {
            return;
        }
        let now = now_secs();
        let cpim = cpim(&fact, &rfc3339(now));
        let row = ArchiveRow {
            id: 0,
            at: i64::try_from(now).unwrap_or(i64::MAX),
            source_protocol: fact.source.to_string(),
            destination_protocol: fact.destination.to_string(),
            sender: fact.sender.to_ascii_lowercase(),
            recipient: fact.recipient.to_ascii_lowercase(),
            peer_domain: fact.peer_domain.to_ascii_lowercase(),
            auth: fact.auth.to_string(),
            decision: fact.decision,
            cpim,
        };
        if self.queue.try_send(row).is_err() {
            metrics::counter!("parley_archive_dropped_total").increment(1);
            warn!("archive queue full: a message was not archived");
        }
    }

    /// Removes what is older than the retention period.
    pub async fn expire(&self) {
        let keep = u64::from(self.config.retention_days) * 86_400;
        let before = i64::try_from(now_secs().saturating_sub(keep)).unwrap_or(0);
        if let Err(e) = self.store.expire_archive(before).await {
            warn!(error = %e, "archive not expired");
        }
    }
}

/// The message as CPIM: a CPIM body is kept as it was; any other becomes
/// the content of a CPIM message with From, To and DateTime.
fn cpim(fact: &Fact<'_>, now: &str) -> String {
    let media = fact
        .content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let body = String::from_utf8_lossy(fact.body);
    if media == crate::proto::cpim::CONTENT_TYPE {
        return body.into_owned();
    }
    format!(
        "From: <im:{}>\r\nTo: <im:{}>\r\nDateTime: {now}\r\n\r\nContent-Type: {}\r\nContent-Length: {}\r\n\r\n{body}",
        fact.sender,
        fact.recipient,
        fact.content_type,
        fact.body.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fact(content_type: &'static str, body: &'static [u8]) -> Fact<'static> {
        Fact {
            source: "sip",
            destination: "xmpp",
            sender: "alice@parley.test",
            recipient: "juliet@xmpp.test",
            peer_domain: "xmpp.test",
            auth: "dialback",
            decision: "accepted".into(),
            content_type,
            body,
        }
    }

    #[test]
    fn plain_text_is_wrapped_and_cpim_kept() {
        let c = cpim(&fact("text/plain", b"hi"), "2026-01-01T00:00:00Z");
        let parsed = crate::proto::cpim::Cpim::parse(
            &bytes::Bytes::from(c.clone()),
            &crate::proto::cpim::Limits::default(),
        )
        .unwrap();
        assert_eq!(parsed.from_uri(), Some("im:alice@parley.test"));
        assert_eq!(&parsed.body[..], b"hi");
        let original =
            "From: <sip:a@b.test>\r\nTo: <sip:c@d.test>\r\n\r\nContent-Type: text/plain\r\n\r\nx";
        assert_eq!(
            cpim(&fact("message/cpim", original.as_bytes()), "now"),
            original
        );
    }
}
