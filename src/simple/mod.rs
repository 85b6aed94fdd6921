//! The SIMPLE services behind the transaction layer: the user-agent core
//! that answers OPTIONS (RFC 3261 §11), the registrar (§10) and the proxy
//! (§16) with digest authentication (§22). The presence agent and the
//! pager join them here.

pub mod auth;
pub mod location;
pub mod pager;
pub mod presence;
pub mod proxy;
pub mod registrar;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{Config, RegistrarConfig, Transport};
use crate::net::{Incoming, Sip};
use crate::proto::digest::Algorithm;
use crate::proto::sip::stateless::{respond, stateless_tag};
use crate::proto::sip::uri::Host;
use crate::proto::sip::{Message, Method};
use crate::store::Store;

/// The methods Parley serves itself, for Allow.
pub const ALLOW: &str = "OPTIONS, REGISTER, PUBLISH, SUBSCRIBE";

/// Seconds since the Unix epoch.
pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The civil date and time of Unix seconds: (year, month, day, hour,
/// minute, second, days since the epoch).
fn civil(secs: u64) -> (i64, i64, i64, u64, u64, u64, u64) {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Howard Hinnant's algorithm.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        year,
        month,
        day,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        days,
    )
}

/// An RFC 1123 date (`Date` header, RFC 3261 §20.17).
pub fn http_date(secs: u64) -> String {
    let (year, month, day, h, m, s, days) = civil(secs);
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][(days % 7) as usize];
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{weekday}, {day:02} {} {year} {h:02}:{m:02}:{s:02} GMT",
        months[(month - 1) as usize],
    )
}

/// An RFC 3339 timestamp in UTC (CPIM DateTime, PIDF timestamp).
pub fn rfc3339(secs: u64) -> String {
    let (year, month, day, h, m, s, _) = civil(secs);
    format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}Z")
}

/// The request handler behind the server transactions.
#[derive(Debug)]
pub struct Core {
    /// The local domains.
    pub config_domains: Vec<String>,
    /// The addresses Parley listens on, by transport.
    pub listen: Vec<(Transport, SocketAddr)>,
    /// Binding lifetimes.
    pub registrar: RegistrarConfig,
    /// REGISTER must authenticate.
    pub auth_registrar: bool,
    /// Local users must authenticate to send through the proxy.
    pub auth_proxy: bool,
    /// Digest authentication.
    pub auth: auth::Authenticator,
    /// Registrar bindings.
    pub location: location::Location,
    /// RFC 3263 server location for other domains.
    pub dns: crate::net::dns::Resolver,
    /// INVITEs being proxied, for CANCEL.
    pub invites: proxy::Invites,
    /// Redirect rules.
    pub redirects: Vec<crate::config::RedirectConfig>,
    /// Timer C: how long an INVITE branch may go without a response.
    pub timer_c: Duration,
    /// The presence agent.
    pub presence: Arc<presence::PresenceAgent>,
    /// MESSAGEs kept for users with no contact.
    pub offline: pager::Offline,
    /// The router, policy and adapters (set once the network is up).
    pub gateway: std::sync::OnceLock<Arc<crate::gateway::Gateway>>,
}

impl Core {
    /// Loads users and bindings from the store and starts the expiry sweep.
    pub async fn start(
        config: &Config,
        store: Arc<dyn Store>,
        listen: Vec<(Transport, SocketAddr)>,
    ) -> anyhow::Result<Arc<Core>> {
        let algorithms = config
            .auth
            .algorithms
            .iter()
            .filter_map(|a| Algorithm::parse(a).map(|(a, _)| a))
            .collect();
        let core = Arc::new(Core {
            config_domains: config
                .domains
                .iter()
                .map(|d| d.to_ascii_lowercase())
                .collect(),
            listen,
            registrar: config.registrar,
            auth_registrar: config.auth.registrar,
            auth_proxy: config.auth.proxy,
            auth: auth::Authenticator::new(
                algorithms,
                config.auth.nonce_lifetime_secs,
                store.clone(),
            )
            .await?,
            location: location::Location::load(store.clone(), now_secs()).await?,
            offline: pager::Offline::load(store.clone(), config.offline).await?,
            dns: crate::net::dns::Resolver::new(&config.dns),
            invites: proxy::Invites::default(),
            redirects: config.redirect.clone(),
            timer_c: Duration::from_secs(config.proxy.timer_c_secs),
            presence: Arc::new(presence::PresenceAgent::new(
                config.presence,
                Some(store.clone()),
            )),
            gateway: std::sync::OnceLock::new(),
        });
        let weak = Arc::downgrade(&core);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            loop {
                tick.tick().await;
                let Some(core) = weak.upgrade() else { return };
                core.location.sweep(now_secs());
            }
        });
        Ok(core)
    }

    /// True for a local domain (without case).
    pub fn is_local_domain(&self, domain: &str) -> bool {
        self.config_domains
            .iter()
            .any(|d| d.eq_ignore_ascii_case(domain))
    }

    /// True when `host:port` is an address Parley listens on (a missing
    /// port matches 5060 and 5061).
    pub fn is_own_address(&self, host: &Host<'_>, port: Option<u16>) -> bool {
        let Some(ip) = host.ip() else {
            return false;
        };
        self.listen
            .iter()
            .any(|(t, a)| a.ip() == ip && a.port() == port.unwrap_or(t.default_port()))
    }

    /// True when a URI host names Parley: a local domain or its address.
    pub fn is_local(&self, host: &Host<'_>, port: Option<u16>) -> bool {
        match host {
            Host::Name(n) => self.is_local_domain(n),
            _ => self.is_own_address(host, port),
        }
    }

    /// The domain a URI host stands for: one of Parley's own addresses
    /// counts as the first local domain; any other host is itself,
    /// lower-cased.
    pub fn domain_of(&self, host: &Host<'_>, port: Option<u16>) -> String {
        match self.config_domains.first() {
            Some(first) if self.is_own_address(host, port) => first.clone(),
            _ => host.to_string().to_ascii_lowercase(),
        }
    }

    /// True when `uri` is a SIP URI naming Parley (a local domain or one
    /// of its addresses).
    pub fn names_us(&self, uri: &str) -> bool {
        crate::proto::sip::uri::Uri::parse(uri.as_bytes())
            .ok()
            .and_then(|u| u.as_sip().map(|s| self.is_local(&s.host, s.port)))
            .unwrap_or(false)
    }

    /// Record-Route values for a request that came over `inbound` and
    /// leaves over `outbound`: one, or two when the transport changes
    /// (RFC 3261 §16.6 item 4, RFC 5658). Returned top first.
    pub fn record_route(&self, inbound: Transport, outbound: Transport) -> Vec<String> {
        let entry = |t: Transport| {
            self.listen.iter().find(|(lt, _)| *lt == t).map(|(_, a)| {
                let scheme = if t == Transport::Tls { "sips" } else { "sip" };
                let param = if t == Transport::Udp {
                    String::new()
                } else {
                    format!(";transport={t}")
                };
                format!("<{scheme}:{a}{param};lr>")
            })
        };
        let mut out = Vec::new();
        if let Some(e) = entry(outbound) {
            out.push(e);
        }
        if inbound != outbound {
            if let Some(e) = entry(inbound) {
                out.push(e);
            }
        }
        out
    }

    /// The response to a request Parley answers without a transaction
    /// (RFC 3261 §8.2.7): OPTIONS to Parley itself (no user part), whose
    /// answer depends on the request alone. The To tag is derived from the
    /// request with `tag_secret`, so a retransmission gets the same response.
    pub fn answer_stateless(&self, request: &Message, tag_secret: u64) -> Option<Vec<u8>> {
        match request.method()? {
            Method::Options => {
                let uri = request.request_uri()?.ok()?;
                let to_us = uri.as_sip().is_some_and(|s| s.user.is_none());
                to_us.then(|| options(request, &stateless_tag(request, tag_secret)))
            }
            _ => None,
        }
    }

    /// Serves one request that opened a server transaction.
    pub async fn handle(self: Arc<Self>, sip: Sip, mut incoming: Incoming) {
        use tracing::Instrument;
        let span = tracing::debug_span!(
            "request",
            method = %incoming.message.method().map_or("", |m| m.as_str()),
            source = %incoming.source
        );
        let method = incoming.message.method().map_or("other", |m| match m {
            Method::Register => "REGISTER",
            Method::Invite => "INVITE",
            Method::Ack => "ACK",
            Method::Cancel => "CANCEL",
            Method::Bye => "BYE",
            Method::Options => "OPTIONS",
            Method::Message => "MESSAGE",
            Method::Subscribe => "SUBSCRIBE",
            Method::Notify => "NOTIFY",
            Method::Publish => "PUBLISH",
            _ => "other",
        });
        metrics::counter!("parley_sip_requests_total", "method" => method).increment(1);
        async move {
            match incoming.message.method() {
                Some(Method::Register) => {
                    registrar::register(&self, &mut incoming).await;
                    // A contact came: deliver what was kept (off this task).
                    if let Some(aor) = registered_aor(&self, &incoming.message) {
                        if self.offline.waiting(&aor) > 0 {
                            tokio::spawn(pager::deliver(self.clone(), sip.clone(), aor));
                        }
                    }
                }
                Some(Method::Cancel) => proxy::cancel(&self, &sip, incoming).await,
                Some(Method::Publish) if presence::serves(&self, &incoming.message) => {
                    presence::publish(&self, &sip, incoming).await
                }
                Some(Method::Subscribe) if presence::serves(&self, &incoming.message) => {
                    presence::subscribe(&self, &sip, incoming).await
                }
                _ => proxy::route(self.clone(), sip, incoming).await,
            }
        }
        .instrument(span)
        .await
    }

    /// Work that runs once a second: presence and offline expiry.
    pub async fn tick(&self, sip: &Sip) {
        presence::sweep(self, sip).await;
        if let Some(gateway) = self.gateway.get() {
            gateway.tick().await;
        }
        pager::expire(self, sip).await;
    }

    /// An ACK with no transaction (the ACK for a 2xx): forwarded
    /// statelessly along its route (RFC 3261 §16.11).
    pub async fn ack(&self, sip: Sip, ack: Message) {
        proxy::ack(self, &sip, ack).await;
    }
}

/// The address of record a REGISTER is for (its To), when it is local.
fn registered_aor(core: &Core, msg: &Message) -> Option<String> {
    let to = msg.to()?.ok()?;
    let uri = to.uri().ok()?;
    let sip = uri.as_sip()?;
    let user = sip.user?;
    core.is_local(&sip.host, sip.port)
        .then(|| proxy::local_aor(core, user, &sip.host).0)
}

/// The 200 to OPTIONS (RFC 3261 §11.2).
fn options(request: &Message, to_tag: &str) -> Vec<u8> {
    let extra = [
        ("Allow", ALLOW.to_string()),
        // No extensions are understood yet.
        ("Accept", crate::proto::pidf::CONTENT_TYPE.to_string()),
        ("Allow-Events", presence::EVENTS.to_string()),
        ("Supported", String::new()),
        (
            "Server",
            concat!("Parley/", env!("CARGO_PKG_VERSION")).to_string(),
        ),
    ];
    respond(request, 200, "OK", to_tag, &extra)
}

#[cfg(test)]
mod tests {
    use super::{http_date, rfc3339};

    #[test]
    fn dates_print_as_rfc1123_and_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400 + 3_723), "2000-02-29T01:02:03Z");
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(http_date(1_289_690_940), "Sat, 13 Nov 2010 23:29:00 GMT");
        assert_eq!(http_date(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
    }
}
