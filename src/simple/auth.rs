//! Digest authentication of requests (RFC 3261 §22): 401 challenges at the
//! registrar, 407 at the proxy, one challenge per configured algorithm in
//! preference order (RFC 8760 §2.4), stale nonces answered with
//! `stale=true`, replays refused by nonce-count. [`authenticate`] decides
//! who sent a request, for the proxy and the presence agent alike: a
//! local user by digest, a peer server by its TLS certificate.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use super::Core;
use crate::net::Incoming;

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

/// Checks credentials against the users; issues challenges.
pub struct Authenticator {
    nonces: Nonces,
    counts: Mutex<NonceCounts>,
    algorithms: Vec<Algorithm>,
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
            algorithms,
            users: RwLock::new(users),
            store,
        })
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
        self.algorithms
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
        realm: &str,
        now: u64,
        names_us: impl Fn(&str) -> bool,
    ) -> Verdict {
        let method = request.method().map_or("", |m| m.as_str()).to_string();
        let name = header.canonical();
        let values: Vec<&[u8]> = request.headers().lines(header).collect();
        let target = request.request_uri_raw().unwrap_or(b"");
        self.check_values(&method, target, name, &values, realm, now, names_us)
            .await
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
        realm: &str,
        now: u64,
        names_us: impl Fn(&str) -> bool,
    ) -> Verdict {
        let creds = values
            .iter()
            .filter_map(|v| Auth::parse(v, name).ok())
            .filter_map(|a| Credentials::from_auth(&a).ok())
            .find(|c| c.realm == realm);
        let Some(creds) = creds else {
            return Verdict::Challenge { stale: false };
        };
        match self.nonces.check(&creds.nonce, now, realm) {
            NonceState::Fresh => {}
            NonceState::Stale => return Verdict::Challenge { stale: true },
            NonceState::Forged => return Verdict::Challenge { stale: false },
        }
        if creds.algorithm.1 || !self.algorithms.contains(&creds.algorithm.0) {
            return Verdict::Challenge { stale: false };
        }
        let Some(user) = self.user(&creds.username, realm).await else {
            return Verdict::Forbidden("Unknown user");
        };
        if creds.uri.as_bytes() != target && !names_us(&creds.uri) {
            return Verdict::Forbidden("Digest URI differs from the Request-URI");
        }
        if !creds.verify(method, user.ha1(creds.algorithm.0)) {
            return Verdict::Forbidden("Wrong credentials");
        }
        // Only after the response checks out, so a forger cannot burn counts.
        let fresh_count = match creds.nc {
            Some(nc) => self.counts.lock().map(|mut c| c.accept(&creds.nonce, nc)),
            None => Ok(false), // qop=auth is always offered, so nc is required
        };
        if !matches!(fresh_count, Ok(true)) {
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
/// Who sent a request, as far as Parley can tell.
#[derive(Debug, Clone, Default)]
pub(crate) struct Sender {
    /// The From user.
    pub user: Option<String>,
    /// The From domain, lower-cased.
    pub domain: String,
    /// A local user proved the From identity (or authentication is off).
    pub authenticated: bool,
}

/// Checks the sender of `msg` (the request of `inc`, or a copy being
/// forwarded): a local From must authenticate with digest when the
/// config asks for it (407, then 403 for someone else's address); a
/// peer server that authenticated with a certificate speaks only for the
/// domains that certificate names (RFC 5922 §7.4). The credentials are
/// removed from `msg`: they were for Parley. None when a response was
/// sent.
pub(crate) async fn authenticate(
    core: &Core,
    msg: &mut Message,
    inc: &mut Incoming,
    now: u64,
) -> Option<Sender> {
    let (from_user, from_domain) = from_parts(core, msg).unwrap_or_default();
    let local = core.is_local_domain(&from_domain);
    let mut sender = Sender {
        user: from_user,
        domain: from_domain,
        authenticated: false,
    };
    if let (Some(cert), false) = (&inc.peer_certificate, local) {
        if !crate::net::tls::certificate_names(cert, &sender.domain) {
            inc.responder
                .reply(403, "From domain is not the TLS peer's domain", &[])
                .await;
            return None;
        }
    }
    if !local {
        return Some(sender);
    }
    if !core.auth_proxy {
        sender.authenticated = true;
        return Some(sender);
    }
    let user = sender.user.clone().unwrap_or_default();
    let domain = sender.domain.clone();
    match core
        .auth
        .check(msg, HeaderName::ProxyAuthorization, &domain, now, |u| {
            core.names_us(u)
        })
        .await
    {
        Verdict::User(u, d) if u == user && d.eq_ignore_ascii_case(&domain) => {
            sender.authenticated = true;
        }
        Verdict::User(..) => {
            inc.responder
                .reply(403, "Not allowed to send as this address", &[])
                .await;
            return None;
        }
        Verdict::Challenge { stale } => {
            let extra = core
                .auth
                .challenge_fields("Proxy-Authenticate", &domain, stale, now);
            inc.responder
                .reply(407, "Proxy Authentication Required", &extra)
                .await;
            return None;
        }
        Verdict::Forbidden(reason) => {
            inc.responder.reply(403, reason, &[]).await;
            return None;
        }
    }
    msg.headers_mut().remove(HeaderName::ProxyAuthorization);
    Some(sender)
}

/// The From user and domain; a From naming one of Parley's own addresses
/// counts as the first local domain.
fn from_parts(core: &Core, msg: &Message) -> Option<(Option<String>, String)> {
    let from = msg.from()?.ok()?;
    let uri = from.uri().ok()?;
    let sip = uri.as_sip()?;
    Some((
        sip.user.map(str::to_string),
        core.domain_of(&sip.host, sip.port),
    ))
}
