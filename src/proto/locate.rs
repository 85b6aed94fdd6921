//! Locating a SIP server from DNS answers (RFC 3263 §4, RFC 2782): which
//! NAPTR records apply and in what order, which SRV names to try without
//! NAPTR, and the order of SRV targets (priority, then weighted random).
//! The lookups themselves are done by `net::dns`; this only decides.

use crate::proto::sip::Transport;

/// A NAPTR record (RFC 3403) as far as SIP uses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Naptr {
    /// Lower first.
    pub order: u16,
    /// Lower first, within an order.
    pub preference: u16,
    /// `s` for records that lead to SRV.
    pub flags: String,
    /// `SIP+D2U`, `SIP+D2T`, `SIPS+D2T`, …
    pub service: String,
    /// The SRV name to look up.
    pub replacement: String,
}

/// An SRV record (RFC 2782).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Srv {
    /// Lower first.
    pub priority: u16,
    /// Relative share within a priority.
    pub weight: u16,
    /// The port.
    pub port: u16,
    /// The host (`.` means the service is not offered).
    pub target: String,
}

/// The transport a NAPTR service field names (RFC 3263 §4.1).
pub fn service_transport(service: &str) -> Option<Transport> {
    match service.to_ascii_uppercase().as_str() {
        "SIP+D2U" => Some(Transport::Udp),
        "SIP+D2T" => Some(Transport::Tcp),
        "SIPS+D2T" => Some(Transport::Tls),
        _ => None,
    }
}

/// The NAPTR records to follow, best first, as (transport, SRV name):
/// flag `s`, a SIP service with a transport Parley speaks, TLS only for a
/// `sips:` URI; ordered by order then preference.
pub fn naptr_choices(records: &[Naptr], secure: bool) -> Vec<(Transport, String)> {
    let mut usable: Vec<&Naptr> = records
        .iter()
        .filter(|r| r.flags.eq_ignore_ascii_case("s"))
        .filter(|r| match service_transport(&r.service) {
            Some(Transport::Tls) => true,
            Some(_) => !secure,
            None => false,
        })
        .collect();
    usable.sort_by_key(|r| (r.order, r.preference));
    usable
        .into_iter()
        .filter_map(|r| {
            let t = service_transport(&r.service)?;
            Some((t, r.replacement.trim_end_matches('.').to_string()))
        })
        .collect()
}

/// The SRV names to query when a domain has no usable NAPTR record
/// (RFC 3263 §4.1): `_sips._tcp` for a `sips:` URI; otherwise UDP, TCP,
/// then TLS.
pub fn srv_names(domain: &str, secure: bool) -> Vec<(Transport, String)> {
    let domain = domain.trim_end_matches('.');
    if secure {
        return vec![(Transport::Tls, format!("_sips._tcp.{domain}"))];
    }
    vec![
        (Transport::Udp, format!("_sip._udp.{domain}")),
        (Transport::Tcp, format!("_sip._tcp.{domain}")),
        (Transport::Tls, format!("_sips._tcp.{domain}")),
    ]
}

/// SRV records in the order to try them (RFC 2782): by priority; within a
/// priority, a weighted random order where `random(n)` returns a number in
/// `0..=n`. A lone `.` target means "not offered" and yields nothing.
pub fn order_srv(records: &[Srv], mut random: impl FnMut(u32) -> u32) -> Vec<Srv> {
    if records.len() == 1 && records[0].target.trim_end_matches('.').is_empty() {
        return Vec::new();
    }
    let mut priorities: Vec<u16> = records.iter().map(|r| r.priority).collect();
    priorities.sort_unstable();
    priorities.dedup();
    let mut out = Vec::with_capacity(records.len());
    for p in priorities {
        // Zero-weight records first, so they have a small chance (RFC 2782).
        let mut left: Vec<&Srv> = records.iter().filter(|r| r.priority == p).collect();
        left.sort_by_key(|r| r.weight != 0);
        while !left.is_empty() {
            let total: u32 = left.iter().map(|r| u32::from(r.weight)).sum();
            let pick = random(total).min(total);
            let mut running = 0u32;
            let mut chosen = left.len() - 1;
            for (i, r) in left.iter().enumerate() {
                running += u32::from(r.weight);
                if running >= pick {
                    chosen = i;
                    break;
                }
            }
            out.push(left.remove(chosen).clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naptr(order: u16, pref: u16, flags: &str, service: &str, repl: &str) -> Naptr {
        Naptr {
            order,
            preference: pref,
            flags: flags.into(),
            service: service.into(),
            replacement: repl.into(),
        }
    }

    fn srv(priority: u16, weight: u16, port: u16, target: &str) -> Srv {
        Srv {
            priority,
            weight,
            port,
            target: target.into(),
        }
    }

    #[test]
    fn naptr_records_are_filtered_and_ordered() {
        // RFC 3263 §4.1's example, shuffled, with records Parley skips.
        let records = [
            naptr(90, 50, "s", "SIP+D2T", "_sip._tcp.example.com."),
            naptr(50, 50, "s", "SIPS+D2T", "_sips._tcp.example.com."),
            naptr(100, 50, "s", "SIP+D2U", "_sip._udp.example.com."),
            naptr(10, 10, "u", "E2U+sip", "!^.*$!sip:x@example.com!"),
            naptr(20, 10, "s", "SIP+D2S", "_sip._sctp.example.com."),
        ];
        assert_eq!(
            naptr_choices(&records, false),
            vec![
                (Transport::Tls, "_sips._tcp.example.com".to_string()),
                (Transport::Tcp, "_sip._tcp.example.com".to_string()),
                (Transport::Udp, "_sip._udp.example.com".to_string()),
            ]
        );
        assert_eq!(
            naptr_choices(&records, true),
            vec![(Transport::Tls, "_sips._tcp.example.com".to_string())]
        );
        // Preference breaks ties within an order.
        let tie = [
            naptr(10, 20, "S", "sip+d2u", "b"),
            naptr(10, 10, "s", "SIP+D2T", "a"),
        ];
        assert_eq!(naptr_choices(&tie, false)[0].1, "a");
    }

    #[test]
    fn srv_names_without_naptr() {
        assert_eq!(srv_names("example.com.", true).len(), 1);
        let names = srv_names("example.com", false);
        assert_eq!(names[0], (Transport::Udp, "_sip._udp.example.com".into()));
        assert_eq!(names[2], (Transport::Tls, "_sips._tcp.example.com".into()));
    }

    #[test]
    fn srv_priority_first_then_weight() {
        let records = [
            srv(20, 0, 5060, "backup.example.com"),
            srv(10, 60, 5060, "big.example.com"),
            srv(10, 20, 5060, "small.example.com"),
            srv(10, 0, 5060, "zero.example.com"),
        ];
        // random always picks the lowest running sum: zero-weight first,
        // then by listed order.
        let low = order_srv(&records, |_| 0);
        let names: Vec<&str> = low.iter().map(|r| r.target.as_str()).collect();
        assert_eq!(
            names,
            [
                "zero.example.com",
                "big.example.com",
                "small.example.com",
                "backup.example.com"
            ]
        );
        // random always picks the top: the last of the running sum.
        let high = order_srv(&records, |n| n);
        assert_eq!(high[0].target, "small.example.com");
        assert_eq!(high[3].target, "backup.example.com");
        // Over many draws the shares follow the weights (60:20).
        let mut seed = 12345u32;
        let mut big_first = 0;
        for _ in 0..4000 {
            let recs = [srv(1, 60, 1, "big"), srv(1, 20, 1, "small")];
            let o = order_srv(&recs, |n| {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                (seed >> 8) % (n + 1)
            });
            if o[0].target == "big" {
                big_first += 1;
            }
        }
        assert!((2800..3200).contains(&big_first), "{big_first}");
        // "." alone: the service is not offered.
        assert!(order_srv(&[srv(0, 0, 0, ".")], |_| 0).is_empty());
    }
}
