//! Parley as an RFC 5626 edge proxy in front of another registrar
//! (`[proxy] edge_for`): a REGISTER for that registrar's domain is relayed
//! with a Path whose URI carries a flow token (§5.3), so that requests the
//! registrar sends along the Path come back over the flow the client
//! registered on, never to its Contact.
//!
//! A flow token names the transport and the client's address, and is
//! signed with a key of this process (HMAC-SHA-256), so no one can make
//! Parley send to an address of their choosing.

use std::net::{IpAddr, SocketAddr};

use ring::hmac;

use crate::proto::digest::hex;
use crate::proto::sip::Transport;

/// Whether a REGISTER's Request-URI names a registrar Parley fronts.
pub fn fronts(core: &super::Core, msg: &crate::proto::sip::Message) -> bool {
    if core.edge_for.is_empty() {
        return false;
    }
    let Some(Ok(uri)) = msg.request_uri() else {
        return false;
    };
    let Some(sip) = uri.as_sip() else {
        return false;
    };
    if core.is_local(&sip.host, sip.port) {
        return false;
    }
    let host = sip.host.to_string().to_ascii_lowercase();
    let with_port = match sip.port {
        Some(p) => format!("{host}:{p}"),
        None => host.clone(),
    };
    core.edge_for.iter().any(|d| *d == host || *d == with_port)
}

/// Adds Parley's Path, with the flow token of the REGISTER's flow, on top
/// (RFC 5626 §5.1), and says the UA supports Path as the registrar needs.
pub fn add_path(
    core: &super::Core,
    msg: &mut crate::proto::sip::Message,
    transport: Transport,
    source: SocketAddr,
) {
    use crate::proto::sip::HeaderName;
    // Back through the address the registrar reaches Parley at: its first
    // UDP listener (any other when there is none).
    let own = core
        .listen
        .iter()
        .find(|(t, _)| *t == Transport::Udp)
        .or_else(|| core.listen.first());
    let Some((t, addr)) = own else {
        return;
    };
    let transport_param = match t {
        Transport::Udp => String::new(),
        other => format!(";transport={}", other.to_string().to_ascii_lowercase()),
    };
    let token = core.flow_tokens.encode(transport, source);
    let host = match addr.ip() {
        IpAddr::V6(ip) => format!("[{ip}]"),
        IpAddr::V4(ip) => ip.to_string(),
    };
    let path = format!(
        "<sip:{token}@{host}:{}{transport_param};lr;ob>",
        addr.port()
    );
    let _ = msg.headers_mut().push_front("Path", &path);
    let supports_path = msg.headers().values(HeaderName::Supported).any(|v| {
        crate::proto::sip::grammar::split_commas(v)
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"path"))
    });
    if !supports_path {
        let _ = msg.headers_mut().push("Supported", "path");
    }
}

/// The prefix of a flow token's user part.
const PREFIX: &str = "ft-";

/// Signs and reads flow tokens.
pub struct FlowTokens {
    key: hmac::Key,
}

impl std::fmt::Debug for FlowTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlowTokens").finish_non_exhaustive()
    }
}

impl Default for FlowTokens {
    fn default() -> Self {
        FlowTokens::new(&crate::sys::random_bytes(32))
    }
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

impl FlowTokens {
    /// Tokens signed with `key`.
    pub fn new(key: &[u8]) -> FlowTokens {
        FlowTokens {
            key: hmac::Key::new(hmac::HMAC_SHA256, key),
        }
    }

    fn body(transport: Transport, source: SocketAddr) -> String {
        let ip = match source.ip() {
            IpAddr::V4(a) => a.octets().to_vec(),
            IpAddr::V6(a) => a.octets().to_vec(),
        };
        let t = match transport {
            Transport::Udp => "u",
            Transport::Tcp => "t",
            Transport::Tls => "s",
        };
        format!("{t}-{}-{}", hex(&ip), source.port())
    }

    /// The token of a flow: a SIP URI user part (`ft-t-7f000001-5060-…`).
    pub fn encode(&self, transport: Transport, source: SocketAddr) -> String {
        let body = Self::body(transport, source);
        let tag = hmac::sign(&self.key, body.as_bytes());
        format!("{PREFIX}{body}-{}", hex(&tag.as_ref()[..12]))
    }

    /// The flow a token names, when it is one of this process's.
    pub fn decode(&self, user: &str) -> Option<(Transport, SocketAddr)> {
        let rest = user.strip_prefix(PREFIX)?;
        let (body, tag) = rest.rsplit_once('-')?;
        let tag = unhex(tag)?;
        let expected = hmac::sign(&self.key, body.as_bytes());
        if !crate::proto::digest::constant_time_eq(&expected.as_ref()[..12], &tag) {
            return None;
        }
        let mut parts = body.split('-');
        let transport = match parts.next()? {
            "u" => Transport::Udp,
            "t" => Transport::Tcp,
            "s" => Transport::Tls,
            _ => return None,
        };
        let ip = unhex(parts.next()?)?;
        let port: u16 = parts.next()?.parse().ok()?;
        let ip: IpAddr = match ip.len() {
            4 => IpAddr::from(<[u8; 4]>::try_from(ip).ok()?),
            16 => IpAddr::from(<[u8; 16]>::try_from(ip).ok()?),
            _ => return None,
        };
        Some((transport, SocketAddr::new(ip, port)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_names_its_flow_and_only_its_signer_reads_it() {
        let tokens = FlowTokens::new(b"a key of this process");
        for (t, a) in [
            (Transport::Tcp, "127.0.0.1:45678"),
            (Transport::Udp, "[::1]:5060"),
            (Transport::Tls, "192.0.2.7:5061"),
        ] {
            let a: SocketAddr = a.parse().unwrap();
            let token = tokens.encode(t, a);
            assert!(
                token.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'),
                "{token}"
            );
            assert_eq!(tokens.decode(&token), Some((t, a)));
            // Another process's key, or a changed flow: not ours.
            assert_eq!(FlowTokens::new(b"another key").decode(&token), None);
            let forged = token.replacen("-7f000001-", "-7f000002-", 1);
            if forged != token {
                assert_eq!(tokens.decode(&forged), None);
            }
        }
        assert_eq!(tokens.decode("alice"), None);
        assert_eq!(tokens.decode("ft-t-zz-1-00"), None);
    }
}
