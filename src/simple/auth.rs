//! Authentication of SIP requests: 401 challenges at the registrar, 407
//! at the proxy (the digest itself is `crate::auth`). [`authenticate`] decides
//! who sent a request, for the proxy and the presence agent alike: a
//! local user by digest, a peer server by its TLS certificate.

use super::Core;
use crate::net::Incoming;
use crate::proto::sip::{HeaderName, Message};

pub use crate::auth::{provision, Authenticator, Verdict};

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
    // Forwarded by another node of the cluster, which authenticated it
    // (the node's header never goes further).
    let by_a_node = super::cluster::signed_by_a_node(core, msg);
    if !local {
        return Some(sender);
    }
    if by_a_node || !core.auth_proxy.get() {
        sender.authenticated = true;
        return Some(sender);
    }
    let user = sender.user.clone().unwrap_or_default();
    let domain = sender.domain.clone();
    match core
        .auth
        .check(
            msg,
            HeaderName::ProxyAuthorization,
            (
                &domain,
                crate::auth::Origin {
                    transport: inc.transport.name(),
                    source: inc.source,
                },
            ),
            now,
            |u| core.names_us(u),
        )
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
