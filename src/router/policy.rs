//! The domain policy, decided here and nowhere else: which remote domains
//! may federate, over what security, how much and what content, at what
//! rate, and who may assert which address. Every refusal has a reason that
//! is logged, counted and returned as the matching SIP status or XMPP
//! condition.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Mutex;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use parley_adapter::{Address, Condition, Failure, Peer, PeerAuth, Security};

use crate::config::GatewayConfig;

/// Why the policy refused something.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Refusal {
    /// The domain is on the deny list.
    DomainDenied,
    /// An allow list is in force and the domain is not on it.
    DomainNotAllowed,
    /// The domain requires encryption and the link has none.
    TlsRequired,
    /// The domain requires a certificate and the peer used something weaker.
    CertificateRequired,
    /// The content is larger than allowed.
    TooLarge,
    /// The content type is not allowed to cross.
    ContentType,
    /// The peer asserted an address of a domain it did not authenticate as.
    IdentityMismatch,
    /// The peer asserted an address of one of Parley's own domains.
    OwnDomainAsserted,
    /// The remote domain sends faster than allowed.
    RateLimited,
    /// The message already crossed Parley: bridging it again would echo.
    Loop,
    /// Neither domain's policy lets users of the other reach it through
    /// Parley (by default only Parley's own users use a bridged network).
    NotBridged,
}

impl Refusal {
    /// Every reason, for counters that start at zero.
    pub const ALL: [Refusal; 11] = [
        Refusal::DomainDenied,
        Refusal::DomainNotAllowed,
        Refusal::TlsRequired,
        Refusal::CertificateRequired,
        Refusal::TooLarge,
        Refusal::ContentType,
        Refusal::IdentityMismatch,
        Refusal::OwnDomainAsserted,
        Refusal::RateLimited,
        Refusal::Loop,
        Refusal::NotBridged,
    ];

    /// The reason as a label (logs, metrics, the admin API).
    pub fn name(self) -> &'static str {
        match self {
            Refusal::DomainDenied => "domain-denied",
            Refusal::DomainNotAllowed => "domain-not-allowed",
            Refusal::TlsRequired => "tls-required",
            Refusal::CertificateRequired => "certificate-required",
            Refusal::TooLarge => "too-large",
            Refusal::ContentType => "content-type",
            Refusal::IdentityMismatch => "identity-mismatch",
            Refusal::OwnDomainAsserted => "own-domain-asserted",
            Refusal::RateLimited => "rate-limited",
            Refusal::Loop => "loop",
            Refusal::NotBridged => "not-bridged",
        }
    }

    /// Words for the sender.
    pub fn text(self) -> &'static str {
        match self {
            Refusal::DomainDenied => "Federation with this domain is denied by policy",
            Refusal::DomainNotAllowed => "This domain is not on the federation allow list",
            Refusal::TlsRequired => "Policy requires an encrypted link for this domain",
            Refusal::CertificateRequired => {
                "Policy requires certificate authentication for this domain"
            }
            Refusal::TooLarge => "Message larger than policy allows",
            Refusal::ContentType => "Content type not allowed across domains",
            Refusal::IdentityMismatch => "Sender is not of the domain the peer authenticated as",
            Refusal::OwnDomainAsserted => "A remote peer may not send as a local domain",
            Refusal::RateLimited => "Too many messages from this domain",
            Refusal::Loop => "Message already crossed this gateway",
            Refusal::NotBridged => "Policy does not bridge users of this domain to that network",
        }
    }

    /// The SIP status and reason phrase.
    pub fn sip(self) -> (u16, &'static str) {
        match self {
            Refusal::TooLarge => (513, "Message Too Large"),
            Refusal::ContentType => (415, "Unsupported Media Type"),
            Refusal::RateLimited => (503, "Service Unavailable"),
            Refusal::Loop => (482, "Loop Detected"),
            _ => (403, "Forbidden"),
        }
    }

    /// The XMPP condition.
    pub fn condition(self) -> Condition {
        match self {
            Refusal::RateLimited => Condition::ResourceConstraint,
            Refusal::ContentType => Condition::NotAcceptable,
            Refusal::IdentityMismatch | Refusal::OwnDomainAsserted => Condition::Forbidden,
            _ => Condition::PolicyViolation,
        }
    }

    /// The refusal as a neutral failure.
    pub fn failure(self) -> Failure {
        Failure::new(self.condition(), self.text())
    }
}

/// The policy in force.
pub struct Policy {
    config: GatewayConfig,
    limiter: Option<DefaultKeyedRateLimiter<String>>,
    counts: Mutex<HashMap<Refusal, u64>>,
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policy")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Whether `domain` matches a pattern: the domain itself, or `*.parent`
/// for any subdomain of `parent`, or `*` for all.
fn matches(pattern: &str, domain: &str) -> bool {
    let pattern = pattern.trim_end_matches('.');
    if pattern == "*" {
        return true;
    }
    match pattern.strip_prefix("*.") {
        Some(parent) => domain
            .len()
            .checked_sub(parent.len() + 1)
            .is_some_and(|cut| {
                domain.as_bytes()[cut] == b'.' && domain[cut + 1..].eq_ignore_ascii_case(parent)
            }),
        None => pattern.eq_ignore_ascii_case(domain),
    }
}

impl Policy {
    /// The policy of the config.
    pub fn new(config: &GatewayConfig) -> Policy {
        let limiter = NonZeroU32::new(config.rate_per_domain).map(|rate| {
            let burst = NonZeroU32::new(config.rate_burst).unwrap_or(rate);
            RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst))
        });
        Policy {
            config: config.clone(),
            limiter,
            counts: Mutex::new(Refusal::ALL.iter().map(|r| (*r, 0)).collect()),
        }
    }

    /// A policy replacing `old`: its refusal counts carry over.
    pub fn new_after(config: &GatewayConfig, old: &Policy) -> Policy {
        let p = Policy::new(config);
        *p.counts.lock().unwrap_or_else(|e| e.into_inner()) =
            old.counts.lock().unwrap_or_else(|e| e.into_inner()).clone();
        p
    }

    /// The configuration in force.
    pub fn config(&self) -> &GatewayConfig {
        &self.config
    }

    /// Counts a refusal and hands it back.
    pub fn refuse(&self, r: Refusal) -> Refusal {
        metrics::counter!("parley_policy_refusals_total", "reason" => r.name()).increment(1);
        *self
            .counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(r)
            .or_default() += 1;
        r
    }

    /// Refusals so far, by reason.
    pub fn refusals(&self) -> Vec<(Refusal, u64)> {
        let mut v: Vec<_> = self
            .counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(r, n)| (*r, *n))
            .collect();
        v.sort();
        v
    }

    /// May `domain` federate at all?
    pub fn domain(&self, domain: &str) -> Result<(), Refusal> {
        if self.config.deny_domains.iter().any(|p| matches(p, domain)) {
            return Err(self.refuse(Refusal::DomainDenied));
        }
        if !self.config.allow_domains.is_empty()
            && !self.config.allow_domains.iter().any(|p| matches(p, domain))
        {
            return Err(self.refuse(Refusal::DomainNotAllowed));
        }
        Ok(())
    }

    /// The largest message content that may cross, in bytes.
    pub fn max_message_bytes(&self) -> usize {
        self.config.max_message_bytes
    }

    /// What a link to or from `domain` must offer.
    pub fn security(&self, domain: &str) -> Security {
        let mut s = Security::default();
        for d in self
            .config
            .domain
            .iter()
            .filter(|d| matches(&d.name, domain))
        {
            s.tls |= d.require_tls || d.require_certificate;
            s.verified |= d.require_certificate;
        }
        s
    }

    /// May users of `a` and users of `b`, neither of them Parley's, meet
    /// through Parley (an XMPP domain and an IRC network)? Only when the
    /// `[[gateway.domain]]` of one names the other in its `bridge` list;
    /// by default a bridged network is for Parley's own users.
    pub fn bridges(&self, a: &str, b: &str) -> Result<(), Refusal> {
        let names = |this: &str, other: &str| {
            self.config
                .domain
                .iter()
                .any(|d| matches(&d.name, this) && d.bridge.iter().any(|p| matches(p, other)))
        };
        if names(a, b) || names(b, a) {
            Ok(())
        } else {
            Err(self.refuse(Refusal::NotBridged))
        }
    }

    /// Does the peer's link meet the domain's requirements?
    pub fn peer_security(&self, peer: &Peer) -> Result<(), Refusal> {
        let need = self.security(&peer.domain);
        if need.tls && !peer.tls {
            return Err(self.refuse(Refusal::TlsRequired));
        }
        if need.verified && peer.auth != PeerAuth::Certificate {
            return Err(self.refuse(Refusal::CertificateRequired));
        }
        Ok(())
    }

    /// Identity binding: an address a peer asserts must be of the domain it
    /// authenticated as, and never one of Parley's own. A component link
    /// speaks for its XMPP server, which authenticated its own users and
    /// peers: any remote domain, but still none of ours.
    pub fn identity(
        &self,
        peer: &Peer,
        asserted: &Address,
        is_ours: impl Fn(&str) -> bool,
    ) -> Result<(), Refusal> {
        if is_ours(asserted.domain()) {
            return Err(self.refuse(Refusal::OwnDomainAsserted));
        }
        let bound = match peer.auth {
            PeerAuth::SharedSecret => true,
            _ => asserted.domain().eq_ignore_ascii_case(&peer.domain),
        };
        if !bound {
            return Err(self.refuse(Refusal::IdentityMismatch));
        }
        Ok(())
    }

    /// Size and content type.
    pub fn content(&self, size: usize, content_types: &[&str]) -> Result<(), Refusal> {
        if size > self.config.max_message_bytes {
            return Err(self.refuse(Refusal::TooLarge));
        }
        let allowed = |ct: &str| {
            let media = ct.split(';').next().unwrap_or("").trim();
            self.config
                .content_types
                .iter()
                .any(|a| a.eq_ignore_ascii_case(media))
        };
        if !content_types.iter().all(|ct| allowed(ct)) {
            return Err(self.refuse(Refusal::ContentType));
        }
        Ok(())
    }

    /// One more message from `domain`: within its rate?
    pub fn rate(&self, domain: &str) -> Result<(), Refusal> {
        match &self.limiter {
            Some(l) if l.check_key(&domain.to_ascii_lowercase()).is_err() => {
                Err(self.refuse(Refusal::RateLimited))
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DomainPolicyConfig;

    fn peer(domain: &str, auth: PeerAuth, tls: bool) -> Peer {
        Peer {
            adapter: "xmpp".into(),
            protocol: parley_adapter::Protocol::Xmpp,
            domain: domain.into(),
            auth,
            tls,
        }
    }

    #[test]
    fn allow_and_deny_lists() {
        let mut c = GatewayConfig {
            deny_domains: vec!["evil.test".into(), "*.spam.test".into()],
            ..GatewayConfig::default()
        };
        let p = Policy::new(&c);
        assert_eq!(p.domain("evil.test"), Err(Refusal::DomainDenied));
        assert_eq!(p.domain("EVIL.test"), Err(Refusal::DomainDenied));
        assert_eq!(p.domain("a.spam.test"), Err(Refusal::DomainDenied));
        assert_eq!(p.domain("spam.test"), Ok(()));
        assert_eq!(p.domain("notspam.test"), Ok(()));
        c.allow_domains = vec!["partner.test".into()];
        let p = Policy::new(&c);
        assert_eq!(p.domain("partner.test"), Ok(()));
        assert_eq!(p.domain("other.test"), Err(Refusal::DomainNotAllowed));
        assert_eq!(p.domain("evil.test"), Err(Refusal::DomainDenied));
        let counts: HashMap<_, _> = p.refusals().into_iter().collect();
        assert_eq!(counts[&Refusal::DomainNotAllowed], 1);
        assert_eq!(counts[&Refusal::DomainDenied], 1);
    }

    #[test]
    fn security_per_domain() {
        let c = GatewayConfig {
            domain: vec![DomainPolicyConfig {
                name: "bank.test".into(),
                require_tls: true,
                require_certificate: true,
                bridge: Vec::new(),
            }],
            ..GatewayConfig::default()
        };
        let p = Policy::new(&c);
        assert_eq!(
            p.peer_security(&peer("bank.test", PeerAuth::Dialback, true)),
            Err(Refusal::CertificateRequired)
        );
        assert_eq!(
            p.peer_security(&peer("bank.test", PeerAuth::Certificate, false)),
            Err(Refusal::TlsRequired)
        );
        assert_eq!(
            p.peer_security(&peer("bank.test", PeerAuth::Certificate, true)),
            Ok(())
        );
        assert_eq!(
            p.peer_security(&peer("other.test", PeerAuth::Dialback, false)),
            Ok(())
        );
        assert_eq!(
            p.security("bank.test"),
            Security {
                tls: true,
                verified: true
            }
        );
    }

    #[test]
    fn bridging_between_two_other_networks_is_named_by_one_of_them() {
        let c = GatewayConfig {
            domain: vec![DomainPolicyConfig {
                name: "irc.example.com".into(),
                require_tls: false,
                require_certificate: false,
                bridge: vec!["xmpp.test".into(), "*.partner.test".into()],
            }],
            ..GatewayConfig::default()
        };
        let p = Policy::new(&c);
        // Either way round: the replies go back the same way.
        assert_eq!(p.bridges("xmpp.test", "irc.example.com"), Ok(()));
        assert_eq!(p.bridges("irc.example.com", "xmpp.test"), Ok(()));
        assert_eq!(p.bridges("chat.partner.test", "irc.example.com"), Ok(()));
        assert_eq!(
            p.bridges("other.test", "irc.example.com"),
            Err(Refusal::NotBridged)
        );
        assert_eq!(
            p.bridges("xmpp.test", "irc.other.com"),
            Err(Refusal::NotBridged)
        );
        // The default: no one's but Parley's own users.
        let p = Policy::new(&GatewayConfig::default());
        assert_eq!(
            p.bridges("xmpp.test", "irc.example.com"),
            Err(Refusal::NotBridged)
        );
        let counts: HashMap<_, _> = p.refusals().into_iter().collect();
        assert_eq!(counts[&Refusal::NotBridged], 1);
    }

    #[test]
    fn identity_binding() {
        let p = Policy::new(&GatewayConfig::default());
        let ours = |d: &str| d == "parley.test";
        let xmpp = peer("xmpp.test", PeerAuth::Dialback, true);
        let a = |s: &str| Address::parse(s).unwrap();
        assert_eq!(p.identity(&xmpp, &a("j@xmpp.test"), ours), Ok(()));
        assert_eq!(
            p.identity(&xmpp, &a("j@other.test"), ours),
            Err(Refusal::IdentityMismatch)
        );
        assert_eq!(
            p.identity(&xmpp, &a("boss@parley.test"), ours),
            Err(Refusal::OwnDomainAsserted)
        );
        let component = peer("xmpp.test", PeerAuth::SharedSecret, false);
        assert_eq!(p.identity(&component, &a("j@far.test"), ours), Ok(()));
        assert_eq!(
            p.identity(&component, &a("boss@parley.test"), ours),
            Err(Refusal::OwnDomainAsserted)
        );
    }

    #[test]
    fn content_and_rate() {
        let c = GatewayConfig {
            rate_per_domain: 1,
            rate_burst: 3,
            ..GatewayConfig::default()
        };
        let p = Policy::new(&c);
        assert_eq!(p.content(10, &["text/plain; charset=utf-8"]), Ok(()));
        assert_eq!(p.content(10, &["image/png"]), Err(Refusal::ContentType));
        assert_eq!(p.content(100_000, &["text/plain"]), Err(Refusal::TooLarge));
        for _ in 0..3 {
            assert_eq!(p.rate("noisy.test"), Ok(()));
        }
        assert_eq!(p.rate("noisy.test"), Err(Refusal::RateLimited));
        assert_eq!(p.rate("quiet.test"), Ok(()));
        assert_eq!(Refusal::RateLimited.sip().0, 503);
        assert_eq!(
            Refusal::DomainDenied.condition(),
            Condition::PolicyViolation
        );
    }
}
