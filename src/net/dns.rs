//! RFC 3263 server location over DNS with hickory: NAPTR, then SRV, then
//! A/AAAA, honouring `transport=` and `sips:`. Answers are cached by their
//! TTL in the resolver. The order of SRV targets and the choice of NAPTR
//! records are decided in `proto::locate`.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::rr::{RData, RecordType};
use hickory_resolver::proto::xfer::Protocol;
use hickory_resolver::TokioResolver;
use tracing::debug;

use super::Target;
use crate::config::DnsConfig;
use crate::proto::locate::{naptr_choices, order_srv, srv_names, Naptr, Srv};
use crate::proto::sip::Transport;

/// The federation service a domain publishes in DNS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// SIP (NAPTR or `_sip`/`_sips` SRV).
    Sip,
    /// XMPP (`_xmpp-server._tcp` SRV, no SIP).
    Xmpp,
    /// Neither: SIP by RFC 3263's A/AAAA fallback.
    Unknown,
}

/// Finds where to send requests for a domain.
pub struct Resolver {
    inner: TokioResolver,
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolver").finish_non_exhaustive()
    }
}

impl Resolver {
    /// A resolver asking the configured nameserver, or the system's.
    pub fn new(config: &DnsConfig) -> Resolver {
        let (rc, mut opts) = match config.nameserver {
            Some(addr) => {
                let mut rc = ResolverConfig::new();
                rc.add_name_server(NameServerConfig::new(addr, Protocol::Udp));
                (rc, ResolverOpts::default())
            }
            None => hickory_resolver::system_conf::read_system_conf()
                .unwrap_or_else(|_| (ResolverConfig::default(), ResolverOpts::default())),
        };
        opts.timeout = Duration::from_millis(config.timeout_ms);
        opts.attempts = 2;
        opts.cache_size = 4096;
        let inner = TokioResolver::builder_with_config(rc, TokioConnectionProvider::default())
            .with_options(opts)
            .build();
        Resolver { inner }
    }

    /// A locator for adapters that look up their own services
    /// (`_xmpp-server._tcp`) through the same nameserver, cache and RFC
    /// 2782 ordering.
    pub fn locator(&self) -> std::sync::Arc<dyn parley_adapter::Locator> {
        std::sync::Arc::new(Resolver {
            inner: self.inner.clone(),
        })
    }

    /// The SRV records of `name` in RFC 2782 order (`None`: no records).
    async fn srv_ordered(&self, name: &str) -> Option<Vec<Srv>> {
        let answer = self.inner.lookup(name, RecordType::SRV).await.ok()?;
        let records: Vec<Srv> = answer
            .iter()
            .filter_map(|r| match r {
                RData::SRV(s) => Some(Srv {
                    priority: s.priority(),
                    weight: s.weight(),
                    port: s.port(),
                    target: s.target().to_utf8(),
                }),
                _ => None,
            })
            .collect();
        if records.is_empty() {
            return None;
        }
        Some(order_srv(&records, random))
    }

    /// Which federation service a domain publishes (RFC 7247 §5 style):
    /// SIP when it has SIP NAPTR records or `_sip`/`_sips` SRV records,
    /// else XMPP when it has `_xmpp-server._tcp` (or XEP-0368
    /// `_xmpps-server._tcp`) SRV records.
    pub async fn service_of(&self, domain: &str) -> Service {
        let name = domain.trim_end_matches('.');
        if let Ok(answer) = self.inner.lookup(name, RecordType::NAPTR).await {
            let sip = answer.iter().any(|r| {
                matches!(r, RData::NAPTR(n)
                    if String::from_utf8_lossy(n.services()).to_ascii_uppercase().starts_with("SIP"))
            });
            if sip {
                return Service::Sip;
            }
        }
        let has_srv = |srv: String| async move {
            self.inner
                .lookup(srv.as_str(), RecordType::SRV)
                .await
                .is_ok_and(|a| a.iter().any(|r| matches!(r, RData::SRV(_))))
        };
        for (_, srv) in srv_names(name, false) {
            if has_srv(srv).await {
                return Service::Sip;
            }
        }
        if has_srv(format!("_xmpp-server._tcp.{name}")).await
            || has_srv(format!("_xmpps-server._tcp.{name}")).await
        {
            return Service::Xmpp;
        }
        Service::Unknown
    }

    /// The targets for `host` (a domain name), best first, per RFC 3263
    /// §4: `transport` and `port` as the URI gives them.
    pub async fn locate(
        &self,
        host: &str,
        port: Option<u16>,
        transport: Option<Transport>,
        secure: bool,
    ) -> Vec<Target> {
        let name = host.trim_end_matches('.').to_string();
        // §4.1/§4.2: a port (or an explicit transport with a port) skips NAPTR and SRV.
        if let Some(port) = port {
            let t = transport.unwrap_or(if secure {
                Transport::Tls
            } else {
                Transport::Udp
            });
            return self.addresses(&name, port, t, &name).await;
        }
        // The (transport, SRV name) pairs to follow.
        let mut choices: Vec<(Transport, String)> = Vec::new();
        if transport.is_none() {
            match self.inner.lookup(name.as_str(), RecordType::NAPTR).await {
                Ok(answer) => {
                    let records: Vec<Naptr> = answer
                        .iter()
                        .filter_map(|r| match r {
                            RData::NAPTR(n) => Some(Naptr {
                                order: n.order(),
                                preference: n.preference(),
                                flags: String::from_utf8_lossy(n.flags()).into_owned(),
                                service: String::from_utf8_lossy(n.services()).into_owned(),
                                replacement: n.replacement().to_utf8(),
                            }),
                            _ => None,
                        })
                        .collect();
                    choices = naptr_choices(&records, secure);
                }
                Err(e) => debug!(%name, error = %e, "no NAPTR"),
            }
        }
        if choices.is_empty() {
            choices = srv_names(&name, secure)
                .into_iter()
                .filter(|(t, _)| transport.map_or(true, |x| x == *t))
                .collect();
        }
        for (t, srv_name) in choices {
            let Some(records) = self.srv_ordered(&srv_name).await else {
                continue;
            };
            let mut out = Vec::new();
            for srv in records {
                let target = srv.target.trim_end_matches('.').to_string();
                out.extend(self.addresses(&target, srv.port, t, &name).await);
            }
            if !out.is_empty() {
                return out;
            }
        }
        // §4.2: no SRV either: the domain's own addresses.
        let t = transport.unwrap_or(if secure {
            Transport::Tls
        } else {
            Transport::Udp
        });
        self.addresses(&name, t.default_port(), t, &name).await
    }

    /// A/AAAA of `host` as targets; `domain` is the name TLS must verify
    /// (RFC 5922 §4: the domain of the URI, not the SRV target).
    async fn addresses(&self, host: &str, port: u16, t: Transport, domain: &str) -> Vec<Target> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return vec![target(t, SocketAddr::new(ip, port), domain)];
        }
        match self.inner.lookup_ip(host).await {
            Ok(ips) => ips
                .iter()
                .map(|ip| target(t, SocketAddr::new(ip, port), domain))
                .collect(),
            Err(e) => {
                debug!(%host, error = %e, "no address");
                Vec::new()
            }
        }
    }
}

/// A number in `0..=n` for RFC 2782's weighted choice.
fn random(n: u32) -> u32 {
    (crate::sys::random_u64() % (u64::from(n) + 1)) as u32
}

#[async_trait::async_trait]
impl parley_adapter::Locator for Resolver {
    async fn srv(&self, name: &str) -> Option<Vec<parley_adapter::SrvTarget>> {
        Some(
            self.srv_ordered(name)
                .await?
                .into_iter()
                .map(|s| parley_adapter::SrvTarget {
                    priority: s.priority,
                    host: s.target,
                    port: s.port,
                })
                .collect(),
        )
    }

    async fn addresses(&self, host: &str) -> Vec<IpAddr> {
        match self.inner.lookup_ip(host).await {
            Ok(ips) => ips.iter().collect(),
            Err(e) => {
                debug!(%host, error = %e, "no address");
                Vec::new()
            }
        }
    }
}

fn target(transport: Transport, addr: SocketAddr, domain: &str) -> Target {
    Target {
        transport,
        addr,
        name: Some(domain.to_string()),
    }
}
