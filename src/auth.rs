//! Digest authentication (RFC 3261 §22, RFC 7616, RFC 8760) against
//! Parley's users: one challenge per configured algorithm in preference
//! order, stateless nonces, `stale=true` for old ones, replays refused by
//! nonce-count. SIP requests (the registrar, the proxy) and MSRP AUTH
//! (RFC 4976 §5, the relay) are checked by the same [`Authenticator`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use crate::proto::digest::{challenge, Algorithm, Credentials, NonceCounts, NonceState, Nonces};
use crate::proto::sip::typed::Auth;
use crate::proto::sip::{HeaderName, Message};
use crate::store::{Store, User};

/// The outcome of checking a request's credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Authenticated as this user.
    User(String, String),
    /// Challenge (again); `stale` when the nonce was ours but too old.
    Challenge {
        /// Send `stale=true`.
        stale: bool,
    },
    /// Refused outright (403), with the reason phrase.
    Forbidden(&'static str),
}

/// Where credentials came from: a failure is logged with it.
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    /// `udp`, `tcp`, `tls`, `msrp`…
    pub transport: &'a str,
    /// The peer's address and port.
    pub source: std::net::SocketAddr,
}

/// The algorithms `[auth]` names (checked on load), in its order.
fn algorithms(config: &crate::config::AuthConfig) -> Vec<Algorithm> {
    config
        .algorithms
        .iter()
        .filter_map(|a| Algorithm::parse(a).map(|(a, _)| a))
        .collect()
}

/// Checks credentials against the users; issues challenges.
pub struct Authenticator {
    nonces: Nonces,
    counts: Mutex<NonceCounts>,
    algorithms: RwLock<Vec<Algorithm>>,
    users: RwLock<HashMap<(String, String), User>>,
    store: Arc<dyn Store>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("algorithms", &self.algorithms)
            .finish_non_exhaustive()
    }
}

/// Nonces whose counts are tracked at most (each is a few dozen bytes).
const TRACKED_NONCES: usize = 100_000;

impl Authenticator {
    /// An authenticator offering `algorithms`, with a fresh random secret.
    pub async fn new(
        algorithms: Vec<Algorithm>,
        nonce_lifetime_secs: u64,
        store: Arc<dyn Store>,
    ) -> Result<Authenticator, crate::store::StoreError> {
        let secret = crate::sys::random_bytes(32);
        let users = store
            .users()
            .await?
            .into_iter()
            .map(|u| ((u.username.clone(), u.domain.to_ascii_lowercase()), u))
            .collect();
        Ok(Authenticator {
            nonces: Nonces::new(&secret, nonce_lifetime_secs),
            counts: Mutex::new(NonceCounts::new(TRACKED_NONCES)),
            algorithms: RwLock::new(algorithms),
            users: RwLock::new(users),
            store,
        })
    }

    /// The authenticator `[auth]` describes, on the users of `store`.
    pub async fn from_config(
        config: &crate::config::Config,
        store: Arc<dyn Store>,
    ) -> Result<Authenticator, crate::store::StoreError> {
        Authenticator::new(
            algorithms(&config.auth),
            config.auth.nonce_lifetime_secs,
            store,
        )
        .await
    }

    /// The algorithms offered, strongest first.
    pub fn algorithms(&self) -> Vec<Algorithm> {
        self.algorithms
            .read()
            .map_or_else(|_| Vec::new(), |a| a.clone())
    }

    /// Puts the algorithms of a reloaded `[auth]` in force; the next
    /// challenge offers them.
    pub fn reload(&self, config: &crate::config::AuthConfig) {
        if let Ok(mut a) = self.algorithms.write() {
            *a = algorithms(config);
        }
    }

    /// Drops a cached user (removed from the store).
    pub fn forget(&self, username: &str, domain: &str) {
        if let Ok(mut users) = self.users.write() {
            users.remove(&(username.to_string(), domain.to_ascii_lowercase()));
        }
    }

    /// A user, from memory or (on a miss) from the store, so users added
    /// while Parley runs are found.
    pub async fn user(&self, username: &str, domain: &str) -> Option<User> {
        let key = (username.to_string(), domain.to_ascii_lowercase());
        if let Some(u) = self.users.read().ok()?.get(&key) {
            return Some(u.clone());
        }
        let found = self.store.user(username, &key.1).await.ok().flatten()?;
        if let Ok(mut users) = self.users.write() {
            users.insert(key, found.clone());
        }
        Some(found)
    }

    /// The challenge header values for `realm`, strongest algorithm first.
    pub fn challenges(&self, realm: &str, stale: bool, now: u64) -> Vec<String> {
        let salt = crate::sys::random_u64();
        let nonce = self.nonces.issue(now, salt, realm);
        if let Ok(mut c) = self.counts.lock() {
            c.issued(&nonce);
        }
        self.algorithms()
            .iter()
            .map(|a| challenge(realm, &nonce, *a, stale))
            .collect()
    }

    /// The challenge header fields for `realm`, named `header`
    /// (WWW-Authenticate or Proxy-Authenticate).
    pub fn challenge_fields(
        &self,
        header: &'static str,
        realm: &str,
        stale: bool,
        now: u64,
    ) -> Vec<(&'static str, String)> {
        self.challenges(realm, stale, now)
            .into_iter()
            .map(|c| (header, c))
            .collect()
    }

    /// Checks the credentials in `header` (Authorization or
    /// Proxy-Authorization) for `realm`. The digest-uri must be the
    /// Request-URI or, as some agents send, a URI `names_us` accepts
    /// (RFC 7616 §3.4.6 asks only that it identify the same resource).
    pub async fn check(
        &self,
        request: &Message,
        header: HeaderName,
        (realm, origin): (&str, Origin<'_>),
        now: u64,
        names_us: impl Fn(&str) -> bool,
    ) -> Verdict {
        let method = request.method().map_or("", |m| m.as_str()).to_string();
        let name = header.canonical();
        let values: Vec<&[u8]> = request.headers().lines(header).collect();
        let target = request.request_uri_raw().unwrap_or(b"");
        self.check_values(
            &method,
            target,
            name,
            &values,
            (realm, origin),
            now,
            names_us,
        )
        .await
    }

    /// Logs and counts one failed authentication (by reason in
    /// `/metrics`): who, from where, over what, with which algorithm.
    fn failed(&self, origin: Origin<'_>, user: &str, used: &str, reason: &'static str) {
        let offered: Vec<&str> = self.algorithms().iter().map(|a| a.name()).collect();
        tracing::info!(
            user,
            source = %origin.source,
            transport = origin.transport,
            offered = ?offered,
            used,
            reason,
            "authentication failed"
        );
        metrics::counter!("parley_auth_failures_total", "reason" => reason).increment(1);
    }

    /// [`Authenticator::check`] for any protocol that carries digest
    /// credentials (MSRP AUTH, RFC 4976 §5): the method, the URI the
    /// request is for, the name of the credentials field and its values.
    #[allow(clippy::too_many_arguments)]
    pub async fn check_values(
        &self,
        method: &str,
        target: &[u8],
        name: &'static str,
        values: &[&[u8]],
        (realm, origin): (&str, Origin<'_>),
        now: u64,
        names_us: impl Fn(&str) -> bool,
    ) -> Verdict {
        let creds = values
            .iter()
            .filter_map(|v| Auth::parse(v, name).ok())
            .filter_map(|a| Credentials::from_auth(&a).ok())
            .find(|c| c.realm == realm);
        let Some(creds) = creds else {
            // No credentials yet: the first challenge, not a failure.
            return Verdict::Challenge { stale: false };
        };
        let used = if creds.algorithm.1 {
            format!("{}-sess", creds.algorithm.0.name())
        } else {
            creds.algorithm.0.name().to_string()
        };
        let fail = |reason| self.failed(origin, &creds.username, &used, reason);
        match self.nonces.check(&creds.nonce, now, realm) {
            NonceState::Fresh => {}
            NonceState::Stale => {
                fail("stale-nonce");
                return Verdict::Challenge { stale: true };
            }
            NonceState::Forged => {
                fail("unknown-nonce");
                return Verdict::Challenge { stale: false };
            }
        }
        if creds.algorithm.1 || !self.algorithms().contains(&creds.algorithm.0) {
            fail("unsupported-algorithm");
            return Verdict::Challenge { stale: false };
        }
        let Some(user) = self.user(&creds.username, realm).await else {
            fail("unknown-user");
            return Verdict::Forbidden("Unknown user");
        };
        if creds.uri.as_bytes() != target && !names_us(&creds.uri) {
            fail("uri-mismatch");
            return Verdict::Forbidden("Digest URI differs from the Request-URI");
        }
        if !creds.verify(method, user.ha1(creds.algorithm.0)) {
            fail("wrong-password");
            return Verdict::Forbidden("Wrong credentials");
        }
        // Only after the response checks out, so a forger cannot burn counts.
        let fresh_count = match creds.nc {
            Some(nc) => self.counts.lock().map(|mut c| c.accept(&creds.nonce, nc)),
            None => Ok(false), // qop=auth is always offered, so nc is required
        };
        if !matches!(fresh_count, Ok(true)) {
            fail("replayed-nc");
            return Verdict::Challenge { stale: false };
        }
        Verdict::User(user.username, user.domain)
    }
}

/// Adds or replaces a user with a password (kept as HA1 values only).
pub async fn provision(
    store: &dyn Store,
    user: &str,
    domain: &str,
    password: &str,
) -> Result<(), crate::store::StoreError> {
    store
        .put_user(&User::with_password(user, domain, password))
        .await
}
