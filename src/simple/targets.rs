//! Where a request goes: the one target list of the proxy and of every
//! request Parley originates (bridged messages, offline delivery, reports).
//!
//! - A local user: its registered contacts as branch groups, one group per
//!   q-value, best first (RFC 3261 §16.6; forked in parallel within a
//!   group, groups in turn). A contact registered through proxies is
//!   reached along its Path (RFC 3327) as a Route set; one registered over
//!   a connection that is still open is reached over that flow.
//! - Another SIP domain: its RFC 3263 targets as groups of one, tried in
//!   order (the next only after a timeout or 503).
//! - A Route value or a URI with an address: that address.

use std::net::SocketAddr;

use super::location::Binding;
use super::Core;
use crate::net::{Sip, Target};
use crate::proto::sip::grammar::split_commas;
use crate::proto::sip::typed::NameAddr;
use crate::proto::sip::uri::{SipUri, Uri};
use crate::proto::sip::Transport;
use crate::sys::now_secs;

/// Where one copy of a request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Branch {
    /// The Request-URI of the copy.
    pub request_uri: String,
    /// Route header values to put on top, in order (a contact's Path).
    pub routes: Vec<String>,
    /// Where the copy is sent.
    pub target: Target,
}

/// The branch for one registered contact: its URI, its Path as the Route
/// set (none without a Path), and where it is reached.
pub fn binding_branch(b: &Binding, sip: &Sip) -> Option<Branch> {
    Some(Branch {
        request_uri: b.uri.to_string(),
        routes: path_routes(&b.path),
        target: binding_target(b, sip)?,
    })
}

/// The Route values of a stored Path: none for an empty Path.
fn path_routes(path: &str) -> Vec<String> {
    split_commas(path.as_bytes())
        .map(|v| String::from_utf8_lossy(v).trim().to_string())
        .filter(|v| !v.is_empty())
        .collect()
}

/// Bindings (best q first) into branch groups: one group per q-value.
pub fn groups(bindings: &[Binding], sip: &Sip) -> Vec<Vec<Branch>> {
    let mut out: Vec<Vec<Branch>> = Vec::new();
    let mut last_q = None;
    for b in bindings {
        let Some(branch) = binding_branch(b, sip) else {
            continue;
        };
        if last_q == Some(b.q) {
            if let Some(g) = out.last_mut() {
                g.push(branch);
                continue;
            }
        }
        last_q = Some(b.q);
        out.push(vec![branch]);
    }
    out
}

/// The branch groups of a local user's registered contacts, now.
pub fn contact_groups(core: &Core, sip: &Sip, aor: &str) -> Vec<Vec<Branch>> {
    groups(&core.location.lookup(aor, now_secs()), sip)
}

/// The RFC 3263 targets of a Request-URI in another domain, as groups of
/// one (tried in turn).
pub async fn remote_groups(core: &Core, uri: &SipUri<'_>, request_uri: &str) -> Vec<Vec<Branch>> {
    uri_targets(core, uri)
        .await
        .into_iter()
        .map(|target| {
            vec![Branch {
                request_uri: request_uri.to_string(),
                routes: Vec::new(),
                target,
            }]
        })
        .collect()
}

/// Where a binding is reached: through its Path, back over the flow it
/// registered on while that connection is open (TCP/TLS), or at its
/// contact address.
pub fn binding_target(b: &Binding, sip: &Sip) -> Option<Target> {
    if let Some(first) = path_routes(&b.path).first() {
        return route_target(first.as_bytes(), b.transport);
    }
    // RFC 5626 §5.3: an outbound flow is the only way to the device (its
    // Contact is unreachable behind NAT); a closed one reaches nothing.
    if b.is_flow() {
        let open = !b.transport.is_stream() || sip.is_connected(b.transport, b.source);
        return open.then(|| Target::new(b.transport, b.source));
    }
    if b.transport.is_stream() && sip.is_connected(b.transport, b.source) {
        return Some(Target::new(b.transport, b.source));
    }
    let uri = Uri::parse(b.uri.as_bytes()).ok()?;
    let sip = uri.as_sip()?;
    address_target(sip, Transport::Udp).or(Some(Target::new(b.transport, b.source)))
}

/// The target of a SIP URI whose host is an address (RFC 3263 §4.1 and
/// §4.2 for a numeric host): its `transport=`, else TLS for `sips:` and
/// `plain` otherwise; its port, else the transport's default.
pub fn address_target(sip: &SipUri<'_>, plain: Transport) -> Option<Target> {
    let ip = sip.host.ip()?;
    let transport = transport_param(sip).unwrap_or(if sip.secure { Transport::Tls } else { plain });
    let port = sip.port.unwrap_or(transport.default_port());
    Some(Target::new(transport, SocketAddr::new(ip, port)))
}

/// The target of a Route value whose URI host is an address. Without a
/// transport parameter it is reached over UDP, except where the request
/// came over TLS, which is not downgraded.
pub fn route_target(value: &[u8], inbound: Transport) -> Option<Target> {
    let na = NameAddr::parse(value, "Route").ok()?;
    let uri = na.uri().ok()?;
    let plain = if inbound == Transport::Tls {
        Transport::Tls
    } else {
        Transport::Udp
    };
    address_target(uri.as_sip()?, plain)
}

/// The targets for a Request-URI in another domain: its address as
/// written, or RFC 3263 location over DNS.
pub async fn uri_targets(core: &Core, sip: &SipUri<'_>) -> Vec<Target> {
    if let Some(target) = address_target(sip, Transport::Udp) {
        return vec![target];
    }
    let transport = transport_param(sip);
    core.router
        .dns()
        .locate(&sip.host.to_string(), sip.port, transport, sip.secure)
        .await
}

fn transport_param(sip: &SipUri<'_>) -> Option<Transport> {
    Transport::from_name(sip.transport()?)
}

#[cfg(test)]
mod tests {
    use super::path_routes;

    #[test]
    fn a_contact_without_a_path_has_no_route_set() {
        assert!(path_routes("").is_empty());
        assert!(path_routes("  ").is_empty());
        assert_eq!(
            path_routes("<sip:p1.example.com;lr>, <sip:p2.example.com;lr>"),
            ["<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"]
        );
    }
}
