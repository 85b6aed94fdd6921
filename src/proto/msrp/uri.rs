//! MSRP URIs (RFC 4975 §6): `msrp://host:port/session-id;tcp` and
//! `msrps:` for TLS.

use std::fmt;

use super::MsrpError;

/// The longest URI accepted, in bytes.
pub const MAX_URI: usize = 1024;

/// One MSRP URI.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MsrpUri {
    /// `msrps:`: TLS to this hop.
    pub secure: bool,
    /// The userinfo before `@`, when given (ignored in comparisons).
    pub user: Option<String>,
    /// A host name, an IPv4 address, or an IPv6 address without brackets.
    pub host: String,
    /// The port; RFC 4975 §6 leaves it out only where a default applies.
    pub port: Option<u16>,
    /// The session-id (compared case-sensitively).
    pub session_id: Option<String>,
    /// `tcp` (the only one defined), kept as written.
    pub transport: String,
    /// Further `;`-parameters, as written.
    pub params: Vec<String>,
}

/// The port MSRP uses when a URI names none (RFC 4975 §15.4).
pub const DEFAULT_PORT: u16 = 2855;

impl MsrpUri {
    /// Parses one URI.
    pub fn parse(s: &str) -> Result<MsrpUri, MsrpError> {
        let bad = |why: &'static str| MsrpError::Uri {
            uri: s.chars().take(80).collect(),
            why,
        };
        if s.len() > MAX_URI {
            return Err(bad("too long"));
        }
        let (secure, rest) = if let Some(r) = strip_prefix_ci(s, "msrps://") {
            (true, r)
        } else if let Some(r) = strip_prefix_ci(s, "msrp://") {
            (false, r)
        } else {
            return Err(bad("the scheme is not msrp:// or msrps://"));
        };
        let (before_params, params) = match rest.split_once(';') {
            Some((b, p)) => (b, p),
            None => return Err(bad("no ;transport")),
        };
        let mut params = params.split(';');
        let transport = params.next().unwrap_or("");
        if transport.is_empty() || !transport.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(bad("the transport is not a token"));
        }
        let params: Vec<String> = params.map(str::to_string).collect();
        if params
            .iter()
            .any(|p| p.is_empty() || !p.bytes().all(param_char))
        {
            return Err(bad("a parameter holds a character it may not"));
        }
        let (authority, session_id) = match before_params.split_once('/') {
            Some((a, id)) => (a, Some(id)),
            None => (before_params, None),
        };
        if let Some(id) = session_id {
            if id.is_empty()
                || !id
                    .bytes()
                    .all(|b| unreserved(b) || b == b'+' || b == b'=' || b == b'/' || b == b'%')
            {
                return Err(bad("the session-id holds a character it may not"));
            }
        }
        let (user, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => {
                if u.is_empty()
                    || !u
                        .bytes()
                        .all(|b| unreserved(b) || b"%!$&'()*+,;=:".contains(&b))
                {
                    return Err(bad("the userinfo holds a character it may not"));
                }
                (Some(u.to_string()), h)
            }
            None => (None, authority),
        };
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (addr, after) = v6
                .split_once(']')
                .ok_or_else(|| bad("an IPv6 reference is not closed"))?;
            if addr.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(bad("the IPv6 address is malformed"));
            }
            let port = match after {
                "" => None,
                p => Some(
                    port(
                        p.strip_prefix(':')
                            .ok_or_else(|| bad("text after the IPv6 reference"))?,
                    )
                    .ok_or_else(|| bad("the port is not a number below 65536"))?,
                ),
            };
            (addr.to_string(), port)
        } else {
            let (h, p) = match hostport.rsplit_once(':') {
                Some((h, p)) => (
                    h,
                    Some(port(p).ok_or_else(|| bad("the port is not a number below 65536"))?),
                ),
                None => (hostport, None),
            };
            if h.is_empty()
                || h.len() > 255
                || !h
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
            {
                return Err(bad("the host is not a name or address"));
            }
            (h.to_string(), p)
        };
        Ok(MsrpUri {
            secure,
            user,
            host,
            port,
            session_id: session_id.map(str::to_string),
            transport: transport.to_string(),
            params,
        })
    }

    /// A URI for this side: `msrp[s]://host:port/session-id;tcp`.
    pub fn new(secure: bool, host: &str, port: u16, session_id: &str) -> MsrpUri {
        MsrpUri {
            secure,
            user: None,
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string(),
            port: Some(port),
            session_id: Some(session_id.to_string()),
            transport: "tcp".into(),
            params: Vec::new(),
        }
    }

    /// The port to connect to.
    pub fn port_or_default(&self) -> u16 {
        self.port.unwrap_or(DEFAULT_PORT)
    }

    /// RFC 4975 §6.1: scheme and host compared without regard to case,
    /// the port exactly, the session-id case-sensitively, the transport
    /// without regard to case; userinfo and other parameters ignored.
    pub fn same_as(&self, other: &MsrpUri) -> bool {
        self.secure == other.secure
            && self.host.eq_ignore_ascii_case(&other.host)
            && self.port == other.port
            && self.session_id == other.session_id
            && self.transport.eq_ignore_ascii_case(&other.transport)
    }
}

impl fmt::Display for MsrpUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.secure { "msrps://" } else { "msrp://" })?;
        if let Some(u) = &self.user {
            write!(f, "{u}@")?;
        }
        if self.host.contains(':') {
            write!(f, "[{}]", self.host)?;
        } else {
            f.write_str(&self.host)?;
        }
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        if let Some(id) = &self.session_id {
            write!(f, "/{id}")?;
        }
        write!(f, ";{}", self.transport)?;
        for p in &self.params {
            write!(f, ";{p}")?;
        }
        Ok(())
    }
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

fn port(s: &str) -> Option<u16> {
    if s.is_empty() || s.len() > 5 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~".contains(&b)
}

fn param_char(b: u8) -> bool {
    unreserved(b) || b"%!$&'()*+,=:[]/@".contains(&b)
}

/// A path: URIs separated by single spaces, first hop first.
pub fn parse_path(s: &str) -> Result<Vec<MsrpUri>, MsrpError> {
    let uris: Vec<MsrpUri> = s
        .split(' ')
        .filter(|u| !u.is_empty())
        .map(MsrpUri::parse)
        .collect::<Result<_, _>>()?;
    if uris.is_empty() {
        return Err(MsrpError::Uri {
            uri: String::new(),
            why: "the path is empty",
        });
    }
    Ok(uris)
}

/// A path printed back.
pub fn print_path(uris: &[MsrpUri]) -> String {
    let mut out = String::new();
    for (i, u) in uris.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(&u.to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rfc_examples_parse_and_print_back() {
        for s in [
            "msrp://atlanta.example.com:7654/jshA7weztas;tcp",
            "msrp://biloxi.example.com:12763/kjhd37s2s20w2a;tcp",
            "msrps://alice.example.com:9892/98cjs;tcp",
            "msrps://bob@relay.example.net:2855;tcp",
            "msrp://[2001:db8::1]:2855/a1;tcp",
        ] {
            let u = MsrpUri::parse(s).unwrap();
            assert_eq!(u.to_string(), s);
        }
        let u = MsrpUri::parse("msrps://bob@relay.example.net:2855;tcp").unwrap();
        assert!(u.secure && u.session_id.is_none());
        assert_eq!(u.user.as_deref(), Some("bob"));
    }

    #[test]
    fn comparison_follows_section_6_1() {
        let a = MsrpUri::parse("msrp://Atlanta.Example.COM:7654/jshA7weztas;TCP").unwrap();
        let b = MsrpUri::parse("MSRP://user@atlanta.example.com:7654/jshA7weztas;tcp;x=1").unwrap();
        assert!(a.same_as(&b));
        let c = MsrpUri::parse("msrp://atlanta.example.com:7654/JSHA7WEZTAS;tcp").unwrap();
        assert!(!a.same_as(&c), "the session-id is case-sensitive");
        let d = MsrpUri::parse("msrps://atlanta.example.com:7654/jshA7weztas;tcp").unwrap();
        assert!(!a.same_as(&d), "the scheme counts");
        let e = MsrpUri::parse("msrp://atlanta.example.com/jshA7weztas;tcp").unwrap();
        assert!(!a.same_as(&e), "the port counts");
    }

    #[test]
    fn malformed_uris_are_refused_with_the_reason() {
        for (s, why) in [
            ("sip:alice@example.com", "scheme"),
            ("msrp://host:7654/abc", "transport"),
            ("msrp://host:99999/abc;tcp", "port"),
            ("msrp://ho st:1/abc;tcp", "host"),
            ("msrp://host:1/a b;tcp", "session-id"),
            ("msrp://[::1/abc;tcp", "IPv6"),
            ("msrp://host:1/a<b;tcp", "session-id"),
        ] {
            let e = MsrpUri::parse(s).unwrap_err().to_string();
            assert!(e.contains(why), "{s}: {e}");
        }
        assert!(MsrpUri::parse(&format!("msrp://{}:1/a;tcp", "h".repeat(2000))).is_err());
    }
}
