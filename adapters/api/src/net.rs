//! What adapters need of the network that Parley already has: service
//! location over DNS (one resolver, one cache, one RFC 2782 selection for
//! SIP and every adapter), and the certificate name check of RFC 6125 that
//! SIP (RFC 5922 §7.1) and XMPP (XEP-0178) share.

use std::net::IpAddr;

use async_trait::async_trait;
use rustls_pki_types::{CertificateDer, ServerName};

/// One SRV target (RFC 2782).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrvTarget {
    /// Lower first.
    pub priority: u16,
    /// The host (a name or an address).
    pub host: String,
    /// The port.
    pub port: u16,
}

/// Service location, implemented by Parley's resolver.
#[async_trait]
pub trait Locator: Send + Sync {
    /// The SRV records of `name` (`_service._proto.domain`) in the order to
    /// try them: by priority, weighted random within one (RFC 2782). `None`
    /// when the name has no SRV records; an empty list when the service is
    /// decidedly not offered (a lone `.` target).
    async fn srv(&self, name: &str) -> Option<Vec<SrvTarget>>;

    /// The addresses of `host` (A and AAAA).
    async fn addresses(&self, host: &str) -> Vec<IpAddr>;
}

/// Whether `cert` (already verified against the trust anchors) is valid
/// for `domain`, a dNSName (RFC 6125; RFC 5922 §7.1 for SIP, XEP-0178 for
/// XMPP).
pub fn certificate_names(cert: &CertificateDer<'_>, domain: &str) -> bool {
    let Ok(ee) = webpki::EndEntityCert::try_from(cert) else {
        return false;
    };
    let Ok(name) = ServerName::try_from(domain) else {
        return false;
    };
    ee.verify_is_valid_for_subject_name(&name).is_ok()
}
