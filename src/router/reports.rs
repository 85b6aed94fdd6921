//! Failure reports that cannot be forged. A message handed to an adapter
//! is remembered with the peer domain it went to, its recipient and its
//! SIP sender; a failure an adapter reports later (an XMPP stanza error) is
//! acted on only when it names such a message, comes from that peer domain
//! about that recipient, and arrives within the message's lifetime. Any
//! other is dropped without an answer (RFC 6120 §8.3.1: never an error
//! for an error) and counted.
//!
//! While the SIP sender still waits for its final response, a matching
//! failure answers it (RFC 7247 §7's status); after that it becomes a
//! report, rate-limited per peer domain.

use std::collections::{HashMap, VecDeque};
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use parley_adapter::Failure;
use tokio::sync::oneshot;

/// Messages remembered at most; past this the oldest are forgotten (and a
/// failure naming one is dropped like any unmatched one).
const MEMORY: usize = 65_536;

/// One message handed to an adapter.
struct Sent {
    peer_domain: String,
    recipient: String,
    sender: String,
    until: Instant,
    /// The SIP transaction still waiting, when it is.
    pending: Option<oneshot::Sender<Failure>>,
}

/// What a failure turned out to be about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Matched {
    /// The SIP sender was still waiting and got the mapped status.
    Answered,
    /// The sender (its SIP URI) is to be told in a report.
    Report {
        /// The SIP URI of the message's sender.
        sender: String,
    },
    /// A report is due, but the peer domain sent too many of late.
    Limited,
}

/// Messages by id, and their ids in the order they expire.
type SentTable = (HashMap<String, Sent>, VecDeque<(String, Instant)>);

/// The messages that may still fail, and the report rate per peer.
pub(crate) struct Reports {
    sent: Mutex<SentTable>,
    /// How long after it was handed over a message can still fail.
    lifetime: Duration,
    rate: DefaultKeyedRateLimiter<String>,
}

impl Reports {
    /// `burst` reports at once, then `per_minute`, per peer domain (at
    /// least one of each); failures believed for `lifetime`.
    pub(crate) fn new(lifetime: Duration, burst: u32, per_minute: u32) -> Reports {
        let period = Duration::from_secs(60) / per_minute.max(1);
        let quota = Quota::with_period(period)
            .expect("a non-zero period")
            .allow_burst(NonZeroU32::new(burst.max(1)).expect("at least one"));
        Reports {
            sent: Mutex::new((HashMap::new(), VecDeque::new())),
            lifetime,
            rate: RateLimiter::keyed(quota),
        }
    }

    /// Remembers a message handed to an adapter; the receiver gets a
    /// matching failure while the caller still holds it.
    pub(crate) fn expect(
        &self,
        id: &str,
        peer_domain: &str,
        recipient: &str,
        sender: &str,
    ) -> oneshot::Receiver<Failure> {
        let (tx, rx) = oneshot::channel();
        if id.is_empty() {
            return rx;
        }
        let now = Instant::now();
        let mut guard = self.sent.lock().unwrap_or_else(|p| p.into_inner());
        let (map, order) = &mut *guard;
        while order.len() >= MEMORY || order.front().is_some_and(|(_, t)| *t <= now) {
            let Some((old, at)) = order.pop_front() else {
                break;
            };
            if map.get(&old).is_some_and(|s| s.until == at) {
                map.remove(&old);
            }
        }
        let until = now + self.lifetime;
        map.insert(
            id.to_string(),
            Sent {
                peer_domain: peer_domain.to_ascii_lowercase(),
                recipient: recipient.to_ascii_lowercase(),
                sender: sender.to_string(),
                until,
                pending: Some(tx),
            },
        );
        order.push_back((id.to_string(), until));
        rx
    }

    /// A failure an adapter reports: what it is about, or `None` when it
    /// names no message Parley sent to that peer about that recipient in
    /// time (counted, and dropped by the caller).
    pub(crate) fn matched(
        &self,
        id: &str,
        peer_domain: &str,
        recipient: &str,
        failure: &Failure,
    ) -> Option<Matched> {
        let found = {
            let mut guard = self.sent.lock().unwrap_or_else(|p| p.into_inner());
            let (map, _) = &mut *guard;
            let fits = map.get(id).is_some_and(|s| {
                s.until > Instant::now()
                    && s.peer_domain.eq_ignore_ascii_case(peer_domain)
                    && s.recipient.eq_ignore_ascii_case(recipient)
            });
            // A message fails once: the entry goes with its failure.
            if fits {
                map.remove(id)
            } else {
                None
            }
        };
        let outcome = match found {
            None => None,
            Some(Sent {
                pending: Some(tx),
                sender,
                ..
            }) => match tx.send(failure.clone()) {
                Ok(()) => Some(Matched::Answered),
                Err(_) => Some(self.report(peer_domain, sender)),
            },
            Some(Sent { sender, .. }) => Some(self.report(peer_domain, sender)),
        };
        let label = match &outcome {
            None => "unmatched",
            Some(Matched::Answered) => "answered",
            Some(Matched::Report { .. }) => "reported",
            Some(Matched::Limited) => "rate-limited",
        };
        metrics::counter!("parley_failure_reports_total", "outcome" => label).increment(1);
        outcome
    }

    fn report(&self, peer_domain: &str, sender: String) -> Matched {
        if self
            .rate
            .check_key(&peer_domain.to_ascii_lowercase())
            .is_ok()
        {
            Matched::Report { sender }
        } else {
            Matched::Limited
        }
    }
}

/// The words of a remote server, as Parley passes them on: attributed to
/// that server and quoted, one line, at most 200 characters, so they can
/// never read as Parley's own.
pub fn attributed(peer_domain: &str, failure: &Failure) -> String {
    let said: String = failure
        .text
        .as_deref()
        .unwrap_or("")
        .chars()
        .map(|c| match c {
            '"' => '\'',
            c if c.is_control() => ' ',
            c => c,
        })
        .take(200)
        .collect();
    let condition = failure.condition.name();
    if said.trim().is_empty() {
        format!("the server of {peer_domain} refused it ({condition})")
    } else {
        format!(
            "the server of {peer_domain} refused it ({condition}) and wrote: \"{}\"",
            said.trim()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parley_adapter::Condition;

    fn failure(text: &str) -> Failure {
        Failure::new(Condition::ItemNotFound, text)
    }

    #[test]
    fn only_a_failure_of_a_message_sent_to_that_peer_about_that_recipient_counts() {
        let r = Reports::new(Duration::from_secs(600), 5, 6);
        let rx = r.expect(
            "m1",
            "xmpp.test",
            "juliet@xmpp.test",
            "sip:romeo@parley.test",
        );
        drop(rx);
        let f = failure("gone");
        assert_eq!(r.matched("m0", "xmpp.test", "juliet@xmpp.test", &f), None);
        assert_eq!(r.matched("m1", "evil.test", "juliet@xmpp.test", &f), None);
        assert_eq!(r.matched("m1", "xmpp.test", "nurse@xmpp.test", &f), None);
        assert_eq!(
            r.matched("m1", "XMPP.test", "Juliet@xmpp.test", &f),
            Some(Matched::Report {
                sender: "sip:romeo@parley.test".into()
            })
        );
        // Once.
        assert_eq!(r.matched("m1", "xmpp.test", "juliet@xmpp.test", &f), None);
    }

    #[test]
    fn a_waiting_sender_gets_the_failure_itself() {
        let r = Reports::new(Duration::from_secs(600), 5, 6);
        let mut rx = r.expect(
            "m2",
            "xmpp.test",
            "juliet@xmpp.test",
            "sip:romeo@parley.test",
        );
        let f = failure("no such user");
        assert_eq!(
            r.matched("m2", "xmpp.test", "juliet@xmpp.test", &f),
            Some(Matched::Answered)
        );
        assert_eq!(rx.try_recv().unwrap(), f);
    }

    #[test]
    fn reports_are_rate_limited_per_peer_domain() {
        let r = Reports::new(Duration::from_secs(600), 5, 6);
        let f = failure("x");
        let mut outcomes = Vec::new();
        for n in 0..8 {
            let id = format!("m{n}");
            drop(r.expect(&id, "xmpp.test", "j@xmpp.test", "sip:r@p.test"));
            outcomes.push(r.matched(&id, "xmpp.test", "j@xmpp.test", &f));
        }
        let limited = outcomes
            .iter()
            .filter(|o| **o == Some(Matched::Limited))
            .count();
        assert_eq!(limited, 3, "{outcomes:?}");
        // Another domain has its own budget.
        drop(r.expect("o1", "other.test", "j@other.test", "sip:r@p.test"));
        assert!(matches!(
            r.matched("o1", "other.test", "j@other.test", &f),
            Some(Matched::Report { .. })
        ));
    }

    #[test]
    fn the_window_and_the_burst_are_the_configured_ones() {
        let r = Reports::new(Duration::from_millis(30), 2, 1);
        let f = failure("late");
        drop(r.expect("w1", "xmpp.test", "j@xmpp.test", "sip:r@p.test"));
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(r.matched("w1", "xmpp.test", "j@xmpp.test", &f), None);
        let r = Reports::new(Duration::from_secs(600), 2, 1);
        let outcomes: Vec<_> = (0..3)
            .map(|n| {
                let id = format!("b{n}");
                drop(r.expect(&id, "xmpp.test", "j@xmpp.test", "sip:r@p.test"));
                r.matched(&id, "xmpp.test", "j@xmpp.test", &f)
            })
            .collect();
        assert!(matches!(outcomes[1], Some(Matched::Report { .. })));
        assert_eq!(outcomes[2], Some(Matched::Limited), "{outcomes:?}");
    }

    #[test]
    fn remote_words_are_quoted_and_attributed() {
        let text = attributed(
            "evil.test",
            &failure("your SIP password expired \"now\"\nre-enter it"),
        );
        assert_eq!(
            text,
            "the server of evil.test refused it (item-not-found) and wrote: \"your SIP password expired 'now' re-enter it\""
        );
        assert_eq!(
            attributed("x.test", &Failure::bare(Condition::Gone)),
            "the server of x.test refused it (gone)"
        );
    }
}
