//! Every series `/metrics` serves, described once: its type and help text
//! (Prometheus `# HELP` and `# TYPE`), the buckets of the latency
//! histograms, and the counters that exist at zero from start, so a rate
//! or an alert on them works before the first event.

use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};

/// Latency buckets for SIP, in seconds: from 100 µs (a request answered
/// from memory) to 30 s (a transaction's 32 s timeout, a held request
/// waiting for a device woken by push).
pub(super) const BUCKETS: [f64; 18] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 20.0, 30.0,
];

/// The kinds of series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// Every series: name, kind, help.
pub(super) const SERIES: &[(&str, Kind, &str)] = &[
    ("parley_build_info", Kind::Gauge, "Always 1; the version in its label"),
    ("parley_uptime_seconds", Kind::Gauge, "Seconds since this Parley started"),
    ("parley_start_time_seconds", Kind::Gauge, "When this Parley started, Unix seconds"),
    ("parley_sip_requests_total", Kind::Counter, "SIP requests received that opened a transaction or were answered statelessly, by method (retransmissions not counted)"),
    ("parley_sip_responses_total", Kind::Counter, "SIP responses Parley sent, by status code, stateless ones included"),
    ("parley_transaction_seconds", Kind::Histogram, "Time from a request's arrival to its final response, by method"),
    ("parley_message_delivery_seconds", Kind::Histogram, "Time to hand a message to its destination network, by destination"),
    ("parley_store_seconds", Kind::Histogram, "Time of the durable store writes a response waits for, by operation"),
    ("parley_auth_failures_total", Kind::Counter, "Failed digest authentications, by reason"),
    ("parley_policy_refusals_total", Kind::Counter, "Requests refused by the domain policy, by reason"),
    ("parley_caps_reached_total", Kind::Counter, "Requests refused because a per-user or per-domain cap was reached, by cap"),
    ("parley_requests_shed_total", Kind::Counter, "Requests turned away under overload, by reason"),
    ("parley_connections_refused_total", Kind::Counter, "TCP/TLS connections refused, by the limit reached"),
    ("parley_connections_closed_total", Kind::Counter, "Connections Parley closed, by reason"),
    ("parley_connections_evicted_total", Kind::Counter, "Idle connections closed to make room for new ones"),
    ("parley_open_connections", Kind::Gauge, "SIP TCP/TLS connections open"),
    ("parley_flows_closed_total", Kind::Counter, "Outbound (RFC 5626) bindings ended because their connection closed"),
    ("parley_registrations", Kind::Gauge, "Live registrar bindings"),
    ("parley_presence_subscriptions", Kind::Gauge, "Presence subscriptions"),
    ("parley_offline_queue_depth", Kind::Gauge, "MESSAGEs kept for users with no contact"),
    ("parley_federation_links", Kind::Gauge, "Federation links of the adapters"),
    ("parley_messages_routed_total", Kind::Counter, "Messages routed between networks, by source and destination protocol"),
    ("parley_domain_classifications_total", Kind::Counter, "Which network a remote domain is on, looked up (miss) or remembered (hit)"),
    ("parley_archive_dropped_total", Kind::Counter, "Archive records that could not be written"),
    ("parley_failure_reports_total", Kind::Counter, "Delivery failure reports to senders, by outcome"),
    ("parley_push_requests_total", Kind::Counter, "Push notifications asked of a push service, by provider and outcome"),
    ("parley_stun_requests_total", Kind::Counter, "STUN requests on the SIP UDP port, by outcome"),
    ("parley_chat_sessions", Kind::Gauge, "MSRP chat sessions Parley terminates"),
    ("parley_msrp_sessions", Kind::Gauge, "Sessions through the MSRP relay"),
    ("parley_msrp_relayed_chunks_total", Kind::Counter, "MSRP chunks relayed"),
    ("parley_msrp_relayed_bytes_total", Kind::Counter, "MSRP content bytes relayed"),
    ("parley_msrp_auth_failures_total", Kind::Counter, "Failed MSRP relay authentications"),
    ("parley_rooms", Kind::Gauge, "Chat rooms"),
    ("parley_room_members", Kind::Gauge, "Members present, by room"),
    ("parley_room_messages_total", Kind::Counter, "Messages sent to rooms"),
    ("parley_room_deliveries_total", Kind::Counter, "Room messages delivered to members, by network"),
    ("parley_room_members_dropped_total", Kind::Counter, "Room members removed because they could not keep up"),
    ("parley_irc_connections", Kind::Gauge, "Connections to an IRC network, by network"),
    ("parley_irc_messages_total", Kind::Counter, "Messages to and from IRC networks, by network and direction"),
];

/// The counters without labels.
const UNLABELLED: [&str; 8] = [
    "parley_archive_dropped_total",
    "parley_connections_evicted_total",
    "parley_flows_closed_total",
    "parley_msrp_relayed_chunks_total",
    "parley_msrp_relayed_bytes_total",
    "parley_msrp_auth_failures_total",
    "parley_room_messages_total",
    "parley_room_members_dropped_total",
];

/// The other counters' label values, each family with every value it
/// takes.
const LABELLED: [(&str, &str, &[&str]); 6] = [
    (
        "parley_caps_reached_total",
        "cap",
        &[
            "kept messages per user",
            "kept messages per sender domain",
            "subscriptions to this user",
            "subscriptions from this watcher domain",
            "subscriptions from this address",
            "pending subscriptions from other domains",
            "rooms",
            "room joins per minute",
        ],
    ),
    (
        "parley_requests_shed_total",
        "reason",
        &["pending", "downstream-oc"],
    ),
    (
        "parley_connections_refused_total",
        "limit",
        &[
            "new connections per second from this address",
            "connections from this address",
            "connections, all in use",
            "connections",
        ],
    ),
    (
        "parley_connections_closed_total",
        "reason",
        &["message-timeout"],
    ),
    (
        "parley_stun_requests_total",
        "outcome",
        &["answered", "dropped"],
    ),
    (
        "parley_failure_reports_total",
        "outcome",
        &["unmatched", "answered", "reported", "rate-limited"],
    ),
];

/// Methods counted by name (the rest are `other`).
const METHODS: [&str; 14] = [
    "INVITE",
    "ACK",
    "BYE",
    "CANCEL",
    "OPTIONS",
    "REGISTER",
    "MESSAGE",
    "SUBSCRIBE",
    "NOTIFY",
    "PUBLISH",
    "INFO",
    "PRACK",
    "UPDATE",
    "REFER",
];

/// The responses an operator watches, present from start.
const CODES: [&str; 14] = [
    "100", "200", "202", "400", "401", "403", "404", "407", "408", "420", "480", "486", "500",
    "503",
];

/// Why a digest authentication fails (`crate::auth`).
const AUTH_FAILURES: [&str; 7] = [
    "unknown-user",
    "wrong-password",
    "stale-nonce",
    "unknown-nonce",
    "replayed-nc",
    "unsupported-algorithm",
    "uri-mismatch",
];

/// Describes every series and sets the counters of known labels to zero;
/// run once, when the recorder is installed.
pub(super) fn describe() {
    for (name, kind, help) in SERIES {
        match kind {
            Kind::Counter => describe_counter!(*name, *help),
            Kind::Gauge => describe_gauge!(*name, *help),
            Kind::Histogram => describe_histogram!(*name, Unit::Seconds, *help),
        }
    }
    metrics::gauge!("parley_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    metrics::gauge!("parley_start_time_seconds").set(crate::sys::now_secs() as f64);
    for name in UNLABELLED {
        metrics::counter!(name).absolute(0);
    }
    for m in METHODS {
        metrics::counter!("parley_sip_requests_total", "method" => m).absolute(0);
    }
    for c in CODES {
        metrics::counter!("parley_sip_responses_total", "code" => c).absolute(0);
    }
    for r in AUTH_FAILURES {
        metrics::counter!("parley_auth_failures_total", "reason" => r).absolute(0);
    }
    for (name, label, values) in LABELLED {
        for v in values {
            metrics::counter!(name, label => *v).absolute(0);
        }
    }
    for r in crate::router::policy::Refusal::ALL {
        metrics::counter!("parley_policy_refusals_total", "reason" => r.name()).absolute(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every label value listed is one the code counts (a value renamed
    /// there would leave a series at zero forever here).
    #[test]
    fn listed_label_values_are_the_ones_counted() {
        let sources = [
            include_str!("../simple/pager.rs"),
            include_str!("../simple/presence/mod.rs"),
            include_str!("../simple/rooms/mod.rs"),
            include_str!("../net/overload.rs"),
            include_str!("../net/fair.rs"),
            include_str!("../net/stream.rs"),
            include_str!("../net/udp.rs"),
            include_str!("../router/reports.rs"),
            include_str!("../auth.rs"),
        ]
        .concat();
        for (name, _, values) in LABELLED {
            assert!(SERIES.iter().any(|(n, _, _)| *n == name), "{name}");
            for v in values {
                assert!(sources.contains(&format!("\"{v}\"")), "{name}: {v:?}");
            }
        }
        for r in AUTH_FAILURES {
            assert!(sources.contains(&format!("fail(\"{r}\")")), "{r}");
        }
        for name in UNLABELLED {
            assert!(
                SERIES
                    .iter()
                    .any(|(n, k, _)| *n == name && *k == Kind::Counter),
                "{name}"
            );
        }
    }
}
