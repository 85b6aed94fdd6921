//! Globally routable user agent URIs (RFC 5627): addresses for one device
//! of a user (one `+sip.instance`), given in the REGISTER 200 to clients
//! that say `Supported: gruu`.
//!
//! - The public GRUU is the address of record with the instance as `gr`
//!   (`sip:alice@example.com;gr=urn:uuid:…`): stable, and shows the AOR.
//! - A temporary GRUU (`sip:tgruu.<random>@example.com;gr`) is new on each
//!   registration and says nothing of the AOR or the instance to anyone
//!   else: Parley keeps what each stands for. The ones issued stay valid
//!   while the instance is registered (the latest `MAX_TEMP` of each).
//!
//! A request to either reaches that device only; while it has no binding
//! the answer is 480, and nothing is kept for it offline.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

/// Temporary GRUUs kept per instance (older ones stop resolving).
const MAX_TEMP: usize = 16;

/// The prefix of a temporary GRUU's user part.
const TEMP_PREFIX: &str = "tgruu.";

/// The GRUUs issued, by token.
#[derive(Debug, Default)]
pub struct Gruus {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// token → (address of record, instance URN)
    temp: HashMap<String, (String, String)>,
    /// (address of record, instance URN) → its tokens, oldest first
    issued: HashMap<(String, String), VecDeque<String>>,
}

/// The URN of a `+sip.instance` value (`"<urn:uuid:…>"` → `urn:uuid:…`).
pub fn urn(instance: &str) -> &str {
    instance
        .trim_matches('"')
        .trim_start_matches('<')
        .trim_end_matches('>')
}

/// What a Request-URI names when it is a GRUU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Not a GRUU.
    None,
    /// One device of a user: (address of record, instance URN).
    Device(String, String),
    /// A temporary GRUU Parley does not know (never issued, or long gone).
    Unknown,
}

impl Gruus {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The public GRUU of `instance` of `aor` (`user@domain`).
    pub fn public(aor: &str, instance: &str) -> String {
        format!("sip:{aor};gr={}", urn(instance))
    }

    /// A new temporary GRUU of `instance` of `aor`, in `domain`.
    pub fn issue(&self, aor: &str, instance: &str, domain: &str) -> String {
        let token = crate::sys::token_hex(12);
        let key = (aor.to_string(), urn(instance).to_string());
        let mut inner = self.lock();
        let list = inner.issued.entry(key.clone()).or_default();
        list.push_back(token.clone());
        let dropped = (list.len() > MAX_TEMP).then(|| list.pop_front()).flatten();
        if let Some(old) = dropped {
            inner.temp.remove(&old);
        }
        inner.temp.insert(token.clone(), key);
        format!("sip:{TEMP_PREFIX}{token}@{domain};gr")
    }

    /// The newest temporary GRUU of `instance` of `aor`, if any.
    pub fn latest(&self, aor: &str, instance: &str, domain: &str) -> Option<String> {
        let inner = self.lock();
        let list = inner
            .issued
            .get(&(aor.to_string(), urn(instance).to_string()))?;
        list.back()
            .map(|t| format!("sip:{TEMP_PREFIX}{t}@{domain};gr"))
    }

    /// What a Request-URI's user part and `gr` parameter name: `aor` is
    /// the address of record the user part stands for.
    pub fn resolve(&self, user: &str, gr: Option<Option<&str>>, aor: &str) -> Target {
        match gr {
            None => Target::None,
            Some(Some(instance)) if !instance.is_empty() => {
                Target::Device(aor.to_string(), urn(instance).to_string())
            }
            Some(_) => match user.strip_prefix(TEMP_PREFIX) {
                Some(token) => match self.lock().temp.get(token) {
                    Some((aor, instance)) => Target::Device(aor.clone(), instance.clone()),
                    None => Target::Unknown,
                },
                None => Target::Unknown,
            },
        }
    }

    /// Forgets the temporary GRUUs of instances that `registered` says
    /// have no binding any more.
    pub fn retain(&self, registered: impl Fn(&str, &str) -> bool) {
        let mut inner = self.lock();
        let gone: Vec<(String, String)> = inner
            .issued
            .keys()
            .filter(|(aor, instance)| !registered(aor, instance))
            .cloned()
            .collect();
        for key in gone {
            if let Some(tokens) = inner.issued.remove(&key) {
                for t in tokens {
                    inner.temp.remove(&t);
                }
            }
        }
    }

    /// Temporary GRUUs that resolve now.
    pub fn len(&self) -> usize {
        self.lock().temp.len()
    }

    /// None.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INSTANCE: &str = "\"<urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6>\"";

    #[test]
    fn the_public_gruu_is_the_aor_with_the_instance() {
        // RFC 5627 §4's example.
        assert_eq!(
            Gruus::public("alice@example.com", INSTANCE),
            "sip:alice@example.com;gr=urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6"
        );
    }

    #[test]
    fn temporary_gruus_change_each_time_reveal_nothing_and_resolve_while_registered() {
        let g = Gruus::default();
        let a = g.issue("alice@example.com", INSTANCE, "example.com");
        let b = g.issue("alice@example.com", INSTANCE, "example.com");
        assert_ne!(a, b);
        for t in [&a, &b] {
            assert!(!t.contains("alice") && !t.contains("f81d4fae"), "{t}");
            let user = t.trim_start_matches("sip:").split('@').next().unwrap();
            assert_eq!(
                g.resolve(user, Some(None), "ignored@example.com"),
                Target::Device(
                    "alice@example.com".into(),
                    "urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6".into()
                )
            );
        }
        assert_eq!(
            g.latest("alice@example.com", INSTANCE, "example.com"),
            Some(b.clone())
        );
        assert_eq!(
            g.resolve("tgruu.nothing", Some(None), "x@y"),
            Target::Unknown
        );
        assert_eq!(g.resolve("alice", None, "alice@example.com"), Target::None);
        // Unregistered: all of them stop resolving.
        g.retain(|_, _| false);
        assert!(g.is_empty());
    }

    #[test]
    fn only_the_latest_temporary_gruus_of_an_instance_are_kept() {
        let g = Gruus::default();
        let first = g.issue("alice@example.com", INSTANCE, "example.com");
        for _ in 0..MAX_TEMP {
            g.issue("alice@example.com", INSTANCE, "example.com");
        }
        assert_eq!(g.len(), MAX_TEMP);
        let user = first.trim_start_matches("sip:").split('@').next().unwrap();
        assert_eq!(g.resolve(user, Some(None), "x@y"), Target::Unknown);
    }
}
