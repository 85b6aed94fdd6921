//! One timer queue for every transaction: a deadline per transaction,
//! kept in order. Scheduling takes a lock and wakes the timer task only
//! when the new deadline is the earliest, so under load no timer costs a
//! wake-up of its own.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use std::sync::Mutex;
use std::time::Instant;

use tokio::sync::Notify;

struct Inner<K> {
    queue: BTreeMap<(Instant, u64), K>,
    scheduled: HashMap<K, (Instant, u64), foldhash::fast::RandomState>,
    seq: u64,
}

/// Deadlines by key; a key has at most one.
pub(super) struct Timers<K> {
    inner: Mutex<Inner<K>>,
    /// Signalled when the earliest deadline moved earlier.
    pub(super) changed: Notify,
}

impl<K: Clone + Eq + Hash> Timers<K> {
    pub(super) fn new() -> Self {
        Timers {
            inner: Mutex::new(Inner {
                queue: BTreeMap::new(),
                scheduled: HashMap::default(),
                seq: 0,
            }),
            changed: Notify::new(),
        }
    }

    /// Sets the deadline of `key`, replacing any earlier one.
    pub(super) fn schedule(&self, key: K, at: Instant) {
        let earliest = {
            let mut t = self.inner.lock().unwrap_or_else(|p| p.into_inner());
            let seq = t.seq;
            t.seq += 1;
            if let Some(old) = t.scheduled.insert(key.clone(), (at, seq)) {
                t.queue.remove(&old);
            }
            t.queue.insert((at, seq), key);
            t.queue
                .first_key_value()
                .is_some_and(|(k, _)| *k == (at, seq))
        };
        if earliest {
            self.changed.notify_one();
        }
    }

    /// Gives back the room the index grew into during a burst.
    pub(super) fn compact(&self) {
        let mut t = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if t.scheduled.capacity() > 4 * t.scheduled.len() + 1024 {
            let keep = t.scheduled.len() * 2;
            t.scheduled.shrink_to(keep);
        }
    }

    /// Removes and returns the keys whose deadline is at or before `now`.
    pub(super) fn due(&self, now: Instant) -> Vec<K> {
        let mut t = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = Vec::new();
        while let Some(entry) = t.queue.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let key = entry.remove();
            t.scheduled.remove(&key);
            out.push(key);
        }
        out
    }

    /// The earliest deadline.
    pub(super) fn next(&self) -> Option<Instant> {
        let t = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        t.queue.first_key_value().map(|((at, _), _)| *at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn deadlines_come_due_in_order_and_replace_each_other() {
        let t: Timers<&str> = Timers::new();
        let now = Instant::now();
        t.schedule("a", now + Duration::from_millis(30));
        t.schedule("b", now + Duration::from_millis(10));
        t.schedule("a", now + Duration::from_millis(20)); // replaces 30
        assert_eq!(t.next(), Some(now + Duration::from_millis(10)));
        assert!(t.due(now).is_empty());
        assert_eq!(t.due(now + Duration::from_millis(25)), vec!["b", "a"]);
        assert_eq!(t.next(), None);
        assert!(t.due(now + Duration::from_secs(1)).is_empty());
    }
}
