//! The network-neutral address and its mapping to and from the URIs and
//! JIDs of each network (RFC 7247 §5, with XEP-0106 for the characters a
//! JID localpart cannot hold).
//!
//! The neutral form keeps a user part as the person typed it, unescaped:
//! `o'hara@example.com` is the same address whether it arrived as
//! `sip:o%27hara@example.com` or as the JID `o\27hara@example.com`. Each
//! network's escaping is applied only when printing for that network.
//!
//! Addresses compare as XMPP servers compare JIDs (RFC 7622 §3): domains
//! through IDNA (UTS #46 mapping, so `Example.COM`, `BÜCHER.example` and
//! `xn--bcher-kva.example` are each one domain, kept in their ASCII
//! form), a JID's localpart through the PRECIS UsernameCaseMapped profile
//! (RFC 8265: width-mapped, case-folded, NFC) and its resource through
//! OpaqueString. A SIP user part keeps its case (RFC 3261 §19.1.4).

use std::fmt;

/// Why an address was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AddressError {
    /// No `@` between a user and a domain.
    #[error("address {0:?} has no user@domain form")]
    NoDomain(String),
    /// A part is empty or holds a character no network accepts in it.
    #[error("address {address:?}: invalid {part}")]
    Invalid {
        /// The address as given.
        address: String,
        /// Which part is wrong.
        part: &'static str,
    },
    /// Longer than any network allows (RFC 7622 caps each part at 1023 bytes).
    #[error("address part {part} is {len} bytes; at most 1023 are allowed")]
    TooLong {
        /// Which part.
        part: &'static str,
        /// Its length.
        len: usize,
    },
    /// A URI scheme no adapter maps.
    #[error("URI scheme of {0:?} is not sip, sips, xmpp, im or pres")]
    Scheme(String),
}

/// A network-neutral address: `user@domain` with an optional resource
/// (an XMPP resource, a SIP GRUU instance, an IRC nick's session).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Address {
    user: String,
    domain: String,
    resource: Option<String>,
}

const MAX_PART: usize = 1023;

/// Characters a JID localpart cannot hold, with their XEP-0106 escapes.
const JID_ESCAPES: [(char, &str); 10] = [
    (' ', "\\20"),
    ('"', "\\22"),
    ('&', "\\26"),
    ('\'', "\\27"),
    ('/', "\\2f"),
    (':', "\\3a"),
    ('<', "\\3c"),
    ('>', "\\3e"),
    ('@', "\\40"),
    ('\\', "\\5c"),
];

impl Address {
    /// An address from its three parts, checked. The domain is lower-cased
    /// (domains compare without case everywhere); user and resource are kept.
    pub fn new(user: &str, domain: &str, resource: Option<&str>) -> Result<Address, AddressError> {
        let shown = || match resource {
            Some(r) => format!("{user}@{domain}/{r}"),
            None => format!("{user}@{domain}"),
        };
        let invalid = |part| AddressError::Invalid {
            address: shown(),
            part,
        };
        for (part, value) in [
            ("user", user),
            ("domain", domain),
            ("resource", resource.unwrap_or("x")),
        ] {
            if value.len() > MAX_PART {
                return Err(AddressError::TooLong {
                    part,
                    len: value.len(),
                });
            }
            if value.is_empty() || value.chars().any(char::is_control) {
                return Err(invalid(part));
            }
        }
        if domain.contains(char::is_whitespace) {
            return Err(invalid("domain"));
        }
        let label_ok = |l: &str| {
            !l.is_empty()
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_alphanumeric() || c == '-')
        };
        let is_ip = domain.parse::<std::net::IpAddr>().is_ok()
            || domain
                .strip_prefix('[')
                .and_then(|d| d.strip_suffix(']'))
                .is_some_and(|d| d.parse::<std::net::Ipv6Addr>().is_ok());
        if !is_ip && !domain.trim_end_matches('.').split('.').all(label_ok) {
            return Err(invalid("domain"));
        }
        let domain = if is_ip {
            domain.to_ascii_lowercase()
        } else {
            normalize_domain(domain).ok_or_else(|| invalid("domain"))?
        };
        Ok(Address {
            user: user.to_string(),
            domain,
            resource: resource.map(str::to_string),
        })
    }

    /// Parses the neutral text form `user@domain[/resource]`. A user part
    /// holding `/` or white space cannot be written this way; build it with
    /// [`Address::new`] or read it from a URI instead.
    pub fn parse(s: &str) -> Result<Address, AddressError> {
        let (bare, resource) = match s.split_once('/') {
            Some((b, r)) => (b, Some(r)),
            None => (s, None),
        };
        let (user, domain) = bare
            .rsplit_once('@')
            .ok_or_else(|| AddressError::NoDomain(s.to_string()))?;
        if user.contains(char::is_whitespace) {
            return Err(AddressError::Invalid {
                address: s.to_string(),
                part: "user",
            });
        }
        Address::new(user, domain, resource)
    }

    /// Reads a `sip:`, `sips:`, `im:`, `pres:` or `xmpp:` URI (RFC 7247 §5):
    /// percent-escapes are decoded, URI parameters, headers and a port are
    /// dropped, and an XMPP localpart is unescaped per XEP-0106.
    pub fn from_uri(uri: &str) -> Result<Address, AddressError> {
        let uri = uri.trim().trim_start_matches('<').trim_end_matches('>');
        let (scheme, rest) = uri
            .split_once(':')
            .ok_or_else(|| AddressError::Scheme(uri.to_string()))?;
        match scheme.to_ascii_lowercase().as_str() {
            "sip" | "sips" | "im" | "pres" => {
                let rest = rest.split(['?', ';']).next().unwrap_or("");
                let (user, host) = rest
                    .rsplit_once('@')
                    .ok_or_else(|| AddressError::NoDomain(uri.to_string()))?;
                let host = strip_port(host);
                Address::new(&percent_decode(user, uri)?, host, None)
            }
            "xmpp" => {
                // RFC 5122: an optional authority (`//account/`), then the JID.
                let jid = match rest.strip_prefix("//") {
                    Some(after) => after.split_once('/').map(|(_, j)| j).unwrap_or(""),
                    None => rest,
                };
                let jid = jid.split(['?', '#']).next().unwrap_or("");
                Address::from_jid(&percent_decode(jid, uri)?)
            }
            _ => Err(AddressError::Scheme(uri.to_string())),
        }
    }

    /// Reads a JID (`local@domain/resource`), unescaping the localpart per
    /// XEP-0106. A JID without a localpart (a server) is refused: only users
    /// cross the gateway.
    pub fn from_jid(jid: &str) -> Result<Address, AddressError> {
        let (bare, resource) = match jid.split_once('/') {
            Some((b, r)) => (b, Some(r)),
            None => (jid, None),
        };
        let (local, domain) = bare
            .split_once('@')
            .ok_or_else(|| AddressError::NoDomain(jid.to_string()))?;
        use precis_core::profile::PrecisFastInvocation;
        let invalid = |part| AddressError::Invalid {
            address: jid.to_string(),
            part,
        };
        // RFC 7622 §3.3: the localpart is enforced before its XEP-0106
        // escapes are read; §3.4: the resource as an OpaqueString.
        let local =
            precis_profiles::UsernameCaseMapped::enforce(local).map_err(|_| invalid("user"))?;
        if local.contains(['"', '&', '\'', '/', ':', '<', '>', '@']) {
            return Err(invalid("user"));
        }
        let resource = resource
            .map(|r| precis_profiles::OpaqueString::enforce(r).map_err(|_| invalid("resource")))
            .transpose()?;
        Address::new(&jid_unescape(&local), domain, resource.as_deref())
    }

    /// The user part.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The domain, lower case.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The resource, when there is one.
    pub fn resource(&self) -> Option<&str> {
        self.resource.as_deref()
    }

    /// The address without its resource.
    pub fn bare(&self) -> Address {
        Address {
            resource: None,
            ..self.clone()
        }
    }

    /// The same user and resource in another domain (a component's
    /// subdomain standing for a SIP domain, and back).
    pub fn with_domain(&self, domain: &str) -> Address {
        Address {
            domain: normalize_domain(domain).unwrap_or_else(|| domain.to_ascii_lowercase()),
            ..self.clone()
        }
    }

    /// The same address with another resource (or none).
    pub fn with_resource(&self, resource: Option<&str>) -> Address {
        Address {
            resource: resource.map(str::to_string),
            ..self.clone()
        }
    }

    /// The `sip:` URI: the user part percent-encoded where RFC 3261's
    /// `user` rule does not allow a character; the resource is not part of
    /// a SIP address of record and is left out.
    pub fn to_sip_uri(&self) -> String {
        let mut out = String::with_capacity(self.user.len() + self.domain.len() + 5);
        out.push_str("sip:");
        for b in self.user.bytes() {
            if b.is_ascii_alphanumeric() || b"-_.!~*'()&=+$,;?/".contains(&b) {
                out.push(b as char);
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
        out.push('@');
        out.push_str(&self.domain);
        out
    }

    /// The bare JID (`local@domain`) with the localpart escaped per XEP-0106.
    pub fn to_bare_jid(&self) -> String {
        let mut out = String::with_capacity(self.user.len() + self.domain.len() + 1);
        let mut chars = self.user.chars().peekable();
        while let Some(c) = chars.next() {
            // A backslash is escaped only where it would start an escape.
            let escape = JID_ESCAPES.iter().find(|(e, _)| *e == c).map(|(_, s)| *s);
            match escape {
                Some(s) if c != '\\' => out.push_str(s),
                Some(s) => {
                    let rest: String = chars.clone().take(2).collect();
                    if JID_ESCAPES
                        .iter()
                        .any(|(_, e)| e[1..].eq_ignore_ascii_case(&rest))
                    {
                        out.push_str(s);
                    } else {
                        out.push(c);
                    }
                }
                None => out.push(c),
            }
        }
        out.push('@');
        out.push_str(&self.domain);
        out
    }

    /// The full JID: the bare JID and the resource, when there is one.
    pub fn to_jid(&self) -> String {
        let mut jid = self.to_bare_jid();
        if let Some(r) = &self.resource {
            jid.push('/');
            jid.push_str(r);
        }
        jid
    }
}

/// A domain as Parley compares and prints it: IDNA's UTS #46 mapping
/// (case, width, NFC) to its ASCII form, without a trailing dot; `None`
/// when it is no domain name.
pub fn normalize_domain(domain: &str) -> Option<String> {
    let domain = domain.strip_suffix('.').unwrap_or(domain);
    idna::domain_to_ascii(domain).ok().filter(|d| !d.is_empty())
}

fn strip_port(host: &str) -> &str {
    if let Some(v6) = host.strip_prefix('[') {
        return match v6.find(']') {
            Some(end) => &host[..end + 2],
            None => host,
        };
    }
    match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

fn percent_decode(s: &str, whole: &str) -> Result<String, AddressError> {
    if !s.contains('%') {
        return Ok(s.to_string());
    }
    let bad = || AddressError::Invalid {
        address: whole.to_string(),
        part: "escape",
    };
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3).ok_or_else(bad)?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| bad())?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| bad())
}

fn jid_unescape(local: &str) -> String {
    if !local.contains('\\') {
        return local.to_string();
    }
    let mut out = String::with_capacity(local.len());
    let mut rest = local;
    while let Some(at) = rest.find('\\') {
        out.push_str(&rest[..at]);
        let code = rest.get(at..at + 3);
        match code.and_then(|code| {
            JID_ESCAPES
                .iter()
                .find(|(_, e)| e.eq_ignore_ascii_case(code))
        }) {
            Some((c, _)) => {
                out.push(*c);
                rest = &rest[at + 3..];
            }
            None => {
                out.push('\\');
                rest = &rest[at + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.user, self.domain)?;
        if let Some(r) = &self.resource {
            write!(f, "/{r}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        let a = Address::parse("Alice@Example.COM/phone").unwrap();
        assert_eq!(
            (a.user(), a.domain(), a.resource()),
            ("Alice", "example.com", Some("phone"))
        );
        assert_eq!(a.to_string(), "Alice@example.com/phone");
        assert_eq!(a.bare().to_string(), "Alice@example.com");
        assert!(Address::parse("bob@[2001:db8::1]").is_ok());
    }

    #[test]
    fn refuses_bad_addresses() {
        for bad in [
            "alice",
            "@example.com",
            "alice@",
            "al ice@example.com",
            "a@-x.com",
            "a@b..c",
            "a@b/",
            "a\u{7}@b.c",
        ] {
            assert!(Address::parse(bad).is_err(), "{bad}");
        }
        let long = format!("{}@example.com", "a".repeat(2000));
        assert!(matches!(
            Address::parse(&long),
            Err(AddressError::TooLong { part: "user", .. })
        ));
        assert!(matches!(
            Address::from_uri("mailto:a@b.c"),
            Err(AddressError::Scheme(_))
        ));
        assert!(Address::from_uri("sip:a%zz@b.c").is_err());
        assert!(Address::from_uri("sip:a%C3@b.c").is_err(), "not UTF-8");
        assert!(Address::from_jid("server.example.com").is_err());
    }

    #[test]
    fn sip_uris_map_both_ways() {
        let a = Address::from_uri("<sip:juliet@Example.com:5061;transport=tls?subject=x>").unwrap();
        assert_eq!(a.to_string(), "juliet@example.com");
        assert_eq!(a.to_sip_uri(), "sip:juliet@example.com");
        for uri in [
            "sips:juliet@example.com",
            "im:juliet@example.com",
            "pres:juliet@example.com",
        ] {
            assert_eq!(Address::from_uri(uri).unwrap(), a.bare());
        }
        // RFC 7247 §5: characters outside SIP's user rule are percent-encoded.
        let b = Address::new("o hara#1", "example.com", None).unwrap();
        assert_eq!(b.to_sip_uri(), "sip:o%20hara%231@example.com");
        assert_eq!(Address::from_uri(&b.to_sip_uri()).unwrap(), b);
    }

    #[test]
    fn jids_escape_what_a_localpart_cannot_hold() {
        // XEP-0106 §5 examples.
        let cases = [
            ("space cadet", "space\\20cadet"),
            ("call me \"ishmael\"", "call\\20me\\20\\22ishmael\\22"),
            ("at&t guy", "at\\26t\\20guy"),
            ("d'artagnan", "d\\27artagnan"),
            ("/.fanboy", "\\2f.fanboy"),
            ("::foo::", "\\3a\\3afoo\\3a\\3a"),
            ("<foo>", "\\3cfoo\\3e"),
            ("user@host", "user\\40host"),
            ("c:\\net", "c\\3a\\net"),
            ("c:\\\\net", "c\\3a\\\\net"),
            ("c:\\cool stuff", "c\\3a\\cool\\20stuff"),
            ("c:\\5commas", "c\\3a\\5c5commas"),
        ];
        for (user, local) in cases {
            let a = Address::new(user, "example.com", None).unwrap();
            assert_eq!(a.to_bare_jid(), format!("{local}@example.com"), "{user}");
            assert_eq!(Address::from_jid(&a.to_bare_jid()).unwrap(), a, "{user}");
        }
        // A SIP user with an apostrophe reaches XMPP escaped, and comes back.
        let sip = Address::from_uri("sip:o%27hara@example.com").unwrap();
        assert_eq!(sip.to_jid(), "o\\27hara@example.com");
        let back = Address::from_uri("xmpp:o%5C27hara@example.com/desk").unwrap();
        assert_eq!(back.bare(), sip);
        assert_eq!(back.resource(), Some("desk"));
        assert_eq!(
            Address::from_uri("xmpp://me@example.net/romeo@example.com?message").unwrap(),
            Address::parse("romeo@example.com").unwrap()
        );
    }

    /// RFC 7622: JIDs that XMPP servers take as one are one address.
    #[test]
    fn jids_compare_as_xmpp_servers_compare_them() {
        let j = |s: &str| Address::from_jid(s).unwrap();
        let juliet = j("juliet@example.com/balcony");
        assert_eq!(j("Juliet@Example.COM/balcony"), juliet);
        // Fullwidth letters are width-mapped (RFC 8265 §3.3.2).
        assert_eq!(
            j("\u{ff2a}\u{ff35}\u{ff2c}\u{ff29}\u{ff25}\u{ff34}@example.com/balcony"),
            juliet
        );
        // Case folding beyond ASCII, and NFC: a decomposed é is the
        // composed one.
        assert_eq!(j("ÉLISE@example.com"), j("élise@example.com"));
        assert_eq!(j("e\u{301}lise@example.com"), j("élise@example.com"));
        // Domains through IDNA: Unicode, any case, and the A-label agree.
        assert_eq!(
            j("juliet@BÜCHER.example"),
            j("juliet@xn--bcher-kva.example")
        );
        assert_eq!(j("juliet@bücher.example").domain(), "xn--bcher-kva.example");
        assert_eq!(j("juliet@example.com./balcony"), juliet);
        // The resource keeps its case (OpaqueString), but is NFC.
        assert_ne!(j("juliet@example.com/Balcony"), juliet);
        assert_eq!(
            j("juliet@example.com/caf\u{e9}"),
            j("juliet@example.com/cafe\u{301}")
        );
        // XEP-0106 escapes still read, after the profile.
        assert_eq!(j("O\\27Hara@example.com").user(), "o'hara");
        // What the profiles disallow is refused: a space, a control
        // character, an empty resource.
        assert!(Address::from_jid("jul iet@example.com").is_err());
        assert!(Address::from_jid("juliet@example.com/").is_err());
        // SIP user parts keep their case.
        assert_eq!(
            Address::from_uri("sip:Alice@EXAMPLE.com").unwrap().user(),
            "Alice"
        );
        assert_eq!(
            Address::from_uri("sip:alice@Bücher.example")
                .unwrap()
                .domain(),
            "xn--bcher-kva.example"
        );
    }
}
