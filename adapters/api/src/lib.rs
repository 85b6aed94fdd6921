//! The interface between Parley's router and its network adapters.
//!
//! Adapters (XMPP, IRC, …) depend on this crate only: they never see SIP
//! types. This first piece is the neutral address every network maps to and
//! from (RFC 7247 §3 style `user@domain/resource`); messages, presence and
//! the `Adapter` trait join it as the gateway grows.

#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

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

impl Address {
    /// Parses `user@domain[/resource]`. The domain is lower-cased (domains
    /// compare without case everywhere); the user and resource are kept as given.
    pub fn parse(s: &str) -> Result<Address, AddressError> {
        let (bare, resource) = match s.split_once('/') {
            Some((b, r)) => (b, Some(r)),
            None => (s, None),
        };
        let (user, domain) = bare
            .rsplit_once('@')
            .ok_or_else(|| AddressError::NoDomain(s.to_string()))?;
        let invalid = |part| AddressError::Invalid {
            address: s.to_string(),
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
            if value.is_empty() || value.chars().any(|c| c.is_control() || c.is_whitespace()) {
                return Err(invalid(part));
            }
        }
        if user.contains(['@', '<', '>', '"']) {
            return Err(invalid("user"));
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
        Ok(Address {
            user: user.to_string(),
            domain: domain.to_ascii_lowercase(),
            resource: resource.map(str::to_string),
        })
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
        ] {
            assert!(Address::parse(bad).is_err(), "{bad}");
        }
        let long = format!("{}@example.com", "a".repeat(2000));
        assert!(matches!(
            Address::parse(&long),
            Err(AddressError::TooLong { part: "user", .. })
        ));
    }
}
