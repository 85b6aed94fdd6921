//! Start-up and shutdown: the one place that builds and wires the layers.
//!
//! In order: the store; the resolver and the adapters (built, not yet
//! started); the router with the domain policy; the SIMPLE core, made from
//! the router; the transports with the core as their handler; the hub,
//! which starts the adapters; the console; SIGHUP for policy reloads. On
//! shutdown the transports first let transactions in flight finish, then
//! the adapters stop, then the console, then the transports.
//!
//! `parley run` and the tests start Parley the same way: bound listeners
//! and a shutdown future ([`run`], [`Parley::start`]).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use parley_adapter::Adapter;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::config::Config;
use crate::hub::Hub;
use crate::net::dns::Resolver;
use crate::net::{Running, Server, Sip};
use crate::router::Router;
use crate::simple::Core;
use crate::store::Store;

/// Starts logging at the configured level (`RUST_LOG` wins).
pub fn init_logging(config: &Config) {
    crate::sys::log::init(&config.log.level);
}

/// Every socket Parley serves on, bound before it starts (tests bind
/// port 0).
#[derive(Debug, Default)]
pub struct Listeners {
    /// SIP over UDP, TCP and TLS.
    pub sip: crate::net::Listeners,
    /// The XMPP s2s listener (`[xmpp] listen`).
    pub xmpp: Option<TcpListener>,
    /// The XMPP direct-TLS s2s listener (`[xmpp] listen_tls`).
    pub xmpp_tls: Option<TcpListener>,
    /// The admin console (`[admin] listen`).
    pub admin: Option<TcpListener>,
    /// The MSRP relay (`[msrp]`).
    pub msrp: crate::msrp::RelayListeners,
}

impl Listeners {
    /// Binds every address the config names.
    pub async fn bind(config: &Config) -> std::io::Result<Listeners> {
        let bind = crate::net::bind_tcp;
        let xmpp = config.xmpp.enabled;
        let admin = config.admin.enabled;
        Ok(Listeners {
            sip: crate::net::Listeners::bind(config).await?,
            xmpp: bind("xmpp", config.xmpp.listen.filter(|_| xmpp)).await?,
            xmpp_tls: bind("xmpp direct TLS", config.xmpp.listen_tls.filter(|_| xmpp)).await?,
            admin: bind("admin", config.admin.listen.filter(|_| admin)).await?,
            msrp: crate::msrp::RelayListeners::bind(&config.msrp).await?,
        })
    }

    /// What is bound, as `transport address` lines.
    pub fn describe(&self) -> Vec<String> {
        let addr = |l: &TcpListener| {
            l.local_addr()
                .map_or_else(|e| e.to_string(), |a| a.to_string())
        };
        let mut out = self.sip.describe();
        out.extend(self.xmpp.iter().map(|l| format!("xmpp-s2s {}", addr(l))));
        out.extend(
            self.xmpp_tls
                .iter()
                .map(|l| format!("xmpp-s2s-tls {}", addr(l))),
        );
        out.extend(
            self.admin
                .iter()
                .map(|l| format!("admin http://{}", addr(l))),
        );
        out.extend(self.msrp.describe());
        out
    }
}

/// A running Parley.
pub struct Parley {
    transports: Running,
    hub: Arc<Hub>,
    core: Arc<Core>,
    relay: Option<crate::msrp::Relay>,
    /// The console and the SIGHUP task.
    tasks: TaskTracker,
    stop: CancellationToken,
}

impl std::fmt::Debug for Parley {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Parley").finish_non_exhaustive()
    }
}

impl Parley {
    /// Builds every layer on bound listeners and starts serving.
    pub async fn start(config: &Config, listeners: Listeners) -> anyhow::Result<Parley> {
        let Listeners {
            sip,
            xmpp,
            xmpp_tls,
            admin,
            msrp,
        } = listeners;
        if config.admin.enabled {
            // Counted from the first request on.
            let _ = crate::admin::metrics_handle();
        }
        let store: Arc<dyn Store> = crate::store::open(&config.store, &config.sqlite_path())
            .await
            .context("opening the store")?;
        let dns = Resolver::new(&config.dns);
        let mut adapters: Vec<Arc<dyn Adapter>> = Vec::new();
        if config.xmpp.enabled {
            adapters.push(Arc::new(xmpp_adapter(config, &dns, xmpp, xmpp_tls)?));
        }
        if !config.irc.network.is_empty() {
            adapters.push(Arc::new(irc_adapter(config)?));
        }
        let router = Arc::new(Router::new(config, dns, adapters, store.clone()));
        let auth = Arc::new(
            crate::auth::Authenticator::from_config(config, store.clone())
                .await
                .context("loading users")?,
        );
        let relay = if msrp.tls.is_some() || msrp.tcp.is_some() {
            Some(crate::msrp::Relay::start(config, auth.clone(), msrp).context("the MSRP relay")?)
        } else {
            None
        };
        let core = Arc::new(
            Core::new(
                config,
                store.clone(),
                router,
                sip.addresses(),
                auth,
                relay.clone(),
            )
            .await
            .context("loading users, bindings and kept messages")?,
        );
        let transports = Server::new(config, sip, core.clone())?.start();
        let hub = Hub::new(core.clone(), transports.sip());
        hub.start_adapters()
            .await
            .map_err(|(name, e)| anyhow::anyhow!("adapter {name}: {e}"))?;
        let (tasks, stop) = (TaskTracker::new(), CancellationToken::new());
        // In a cluster: what the other nodes change, as the store tells it.
        if config.clustered() {
            match store.changes() {
                Some(changes) => {
                    info!(node = %config.cluster.node, "following the cluster's changes");
                    let me = crate::store::NodeRow {
                        name: config.cluster.node.clone(),
                        sip: core
                            .listen
                            .iter()
                            .map(|(t, a)| format!("{t} {a}"))
                            .collect::<Vec<_>>()
                            .join(", "),
                        admin: admin
                            .as_ref()
                            .and_then(|l| l.local_addr().ok())
                            .map(|a| format!("http://{a}/"))
                            .unwrap_or_default(),
                        version: env!("CARGO_PKG_VERSION").to_string(),
                        started_at: crate::sys::now_secs() as i64,
                        seen_at: 0,
                        registrations: 0,
                    };
                    tasks.spawn(crate::simple::cluster::follow(
                        core.clone(),
                        transports.sip(),
                        store.clone(),
                        changes,
                        me,
                        stop.clone(),
                    ));
                }
                None => warn!("[cluster] node is set but the store is not shared"),
            }
        }
        let reloader = Arc::new(Reloader {
            current: std::sync::Mutex::new(config.clone()),
            core: core.clone(),
        });
        if let Some(listener) = admin {
            let token = crate::admin::token(config, listener.local_addr().ok())
                .context("the admin token")?;
            let reload: crate::admin::Reload = {
                let reloader = reloader.clone();
                Arc::new(move || reloader.reload())
            };
            let serve = crate::admin::serve(
                token,
                crate::admin::Setup {
                    origin: config.origin(),
                    reload,
                },
                core.clone(),
                store,
                listener,
                stop.clone(),
            );
            tasks.spawn(async move {
                if let Err(e) = serve.await {
                    warn!(error = %e, "admin console stopped");
                }
            });
        }
        #[cfg(unix)]
        spawn_reload_on_hangup(&tasks, &stop, reloader);
        Ok(Parley {
            transports,
            hub,
            core,
            relay,
            tasks,
            stop,
        })
    }

    /// The handle for sending SIP requests.
    pub fn sip(&self) -> Sip {
        self.transports.sip()
    }

    /// The MSRP relay, when it runs.
    pub fn relay(&self) -> Option<&crate::msrp::Relay> {
        self.relay.as_ref()
    }

    /// The SIMPLE core (its state, for tests and the console).
    pub fn core(&self) -> &Arc<Core> {
        &self.core
    }

    /// Serves until `shutdown` completes, then lets transactions in flight
    /// finish for up to the configured grace period and stops every layer,
    /// the top first.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        shutdown.await;
        info!("shutting down");
        self.transports.drain().await;
        self.hub.stop_adapters().await;
        self.core.rooms.stop().await;
        if let Some(relay) = &self.relay {
            relay.stop().await;
        }
        self.stop.cancel();
        self.tasks.close();
        if tokio::time::timeout(Duration::from_secs(5), self.tasks.wait())
            .await
            .is_err()
        {
            warn!("the console did not stop in time");
        }
        self.transports.stop().await;
        info!("stopped");
    }
}

/// Runs Parley on bound listeners until `shutdown` completes.
pub async fn run(
    config: Config,
    listeners: Listeners,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    // Nothing is reported as listening before every layer has started:
    // start-up can still fail until then.
    let bound = listeners.describe();
    let console = listeners.admin.as_ref().and_then(|l| l.local_addr().ok());
    let parley = Parley::start(&config, listeners).await?;
    info!(
        version = env!("CARGO_PKG_VERSION"),
        config = %config.origin(),
        "Parley started"
    );
    for line in bound {
        info!("listening on {line}");
    }
    if let Some(addr) = console {
        info!(
            "console at http://{addr}/ (token in {})",
            crate::admin::token_file(&config).display()
        );
    }
    parley.run(shutdown).await;
    Ok(())
}

/// Reads the configuration file again and puts in force what can change
/// while Parley runs; what SIGHUP and the API's reload do.
struct Reloader {
    /// The configuration in force (sections needing a restart keep their
    /// running values, so they are reported again until then).
    current: std::sync::Mutex<Config>,
    core: Arc<Core>,
}

impl Reloader {
    fn reload(&self) -> Result<crate::config::Reloaded, String> {
        let mut current = self
            .current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(path) = current.source.clone() else {
            return Err("Parley runs without a configuration file (the embedded default): nothing to reload".into());
        };
        let new = Config::load(&path).map_err(|e| e.to_string())?;
        new.check_files().map_err(|e| e.to_string())?;
        let core = &self.core;
        let mut out = crate::config::Reloaded::default();
        for section in current.changed_sections(&new) {
            match section {
                "gateway" => {
                    core.router.reload_policy(&new.gateway);
                    current.gateway = new.gateway.clone();
                }
                "log" => {
                    if crate::sys::log::from_env() {
                        warn!("RUST_LOG is set: [log] level is not applied");
                    } else {
                        crate::sys::log::set_filter(&new.log.level)?;
                    }
                    current.log = new.log.clone();
                }
                "registrar" => {
                    core.registrar.set(new.registrar);
                    current.registrar = new.registrar;
                }
                "auth" => {
                    core.auth.reload(&new.auth);
                    core.auth_registrar.set(new.auth.registrar);
                    core.auth_proxy.set(new.auth.proxy);
                    if new.auth.nonce_lifetime_secs != current.auth.nonce_lifetime_secs {
                        out.restart.push("auth.nonce_lifetime_secs".into());
                    }
                    let lifetime = current.auth.nonce_lifetime_secs;
                    current.auth = new.auth.clone();
                    current.auth.nonce_lifetime_secs = lifetime;
                }
                "presence" => {
                    core.presence.config.set(new.presence);
                    current.presence = new.presence;
                }
                "offline" => {
                    core.offline.config.set(new.offline);
                    current.offline = new.offline;
                }
                other => {
                    out.restart.push(other.into());
                    continue;
                }
            }
            out.applied.push(section.into());
        }
        out.certificate =
            crate::net::tls::reload_certificates(&current).map_err(|e| e.to_string())?;
        for s in &out.applied {
            info!(section = %s, "configuration reloaded");
        }
        if out.certificate {
            info!(cert = %current.cert_files().cert.display(), "TLS certificate reloaded");
        }
        for s in &out.restart {
            warn!(section = %s, "changed in the configuration file; takes effect on restart");
        }
        if out.applied.is_empty() && out.restart.is_empty() && !out.certificate {
            info!(config = %path.display(), "configuration reloaded: nothing changed");
        }
        Ok(out)
    }
}

/// SIGHUP reloads the configuration file ([`Reloader`]).
#[cfg(unix)]
fn spawn_reload_on_hangup(tasks: &TaskTracker, stop: &CancellationToken, reloader: Arc<Reloader>) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        return;
    };
    let stop = stop.clone();
    tasks.spawn(async move {
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                got = hup.recv() => {
                    if got.is_none() {
                        return;
                    }
                    if let Err(e) = reloader.reload() {
                        warn!(error = %e, "configuration not reloaded");
                    }
                }
            }
        }
    });
}

/// The IRC adapter of the config (`[[irc.network]]`).
fn irc_adapter(config: &Config) -> anyhow::Result<parley_irc::IrcAdapter> {
    let mut networks = Vec::new();
    for n in &config.irc.network {
        let tls = if n.tls {
            let ca = n
                .ca_file
                .as_ref()
                .or(config.sip.tls.ca_file.as_ref())
                .context("an IRC network over TLS needs trust anchors")?;
            let own = (n.login == crate::config::IrcLogin::External).then_some(config);
            let cfg = crate::net::tls::verifying_client_config(ca, own)
                .with_context(|| format!("TLS for IRC network {}", n.name))?;
            let name = n.server_name.clone().unwrap_or_else(|| n.domain.clone());
            Some((cfg, name))
        } else {
            None
        };
        networks.push(parley_irc::NetworkSettings {
            name: n.name.clone(),
            domain: n.domain.to_ascii_lowercase(),
            servers: std::iter::once(n.server)
                .chain(n.servers.iter().copied())
                .collect(),
            nick_template: n.nick_template.clone(),
            realname: n.realname.clone(),
            max_nick: n.max_nick.max(1),
            idle_timeout: Duration::from_secs(n.idle_timeout_secs.max(1)),
            connect_timeout: Duration::from_secs(n.connect_timeout_secs.max(1)),
            keepalive: Duration::from_secs(n.keepalive_secs.max(1)),
            fallback: match n.fallback_encoding {
                crate::config::IrcEncoding::Windows1252 => parley_irc::text::Fallback::Windows1252,
                crate::config::IrcEncoding::Latin1 => parley_irc::text::Fallback::Latin1,
            },
            max_connections: n.max_connections.max(1),
            flood_interval: Duration::from_millis(n.flood_interval_ms),
            flood_burst: n.flood_burst.max(1),
            presence_poll: Duration::from_secs(n.presence_poll_secs.max(1)),
            tls,
            login: match n.login {
                crate::config::IrcLogin::None => parley_irc::Login::None,
                crate::config::IrcLogin::Sasl => parley_irc::Login::Sasl,
                crate::config::IrcLogin::NickServ => parley_irc::Login::NickServ,
                crate::config::IrcLogin::External => parley_irc::Login::External,
            },
            accounts: n
                .account
                .iter()
                .map(|a| {
                    (
                        a.user.to_ascii_lowercase(),
                        (a.name.clone(), a.password.clone()),
                    )
                })
                .collect(),
        });
    }
    Ok(parley_irc::IrcAdapter::new(parley_irc::Settings {
        name: "irc".into(),
        networks,
    }))
}

/// The XMPP adapter of the config (`[xmpp]`), on its listeners.
fn xmpp_adapter(
    config: &Config,
    dns: &Resolver,
    listener: Option<TcpListener>,
    listener_tls: Option<TcpListener>,
) -> anyhow::Result<parley_xmpp::XmppAdapter> {
    let x = &config.xmpp;
    let first = config
        .domains
        .first()
        .cloned()
        .unwrap_or_else(|| "localhost".into());
    let components = x
        .component
        .iter()
        .map(|c| {
            let mut remote = vec![c.server_domain.to_ascii_lowercase()];
            remote.extend(c.remote_domains.iter().map(|d| d.to_ascii_lowercase()));
            parley_xmpp::ComponentSettings {
                server: c.server,
                domain: c.domain.to_ascii_lowercase(),
                server_domain: c.server_domain.to_ascii_lowercase(),
                local_domain: c
                    .local_domain
                    .clone()
                    .unwrap_or_else(|| first.clone())
                    .to_ascii_lowercase(),
                secret: c.secret.clone(),
                remote_domains: remote,
            }
        })
        .collect();
    let rooms: Vec<String> = if config.rooms.enabled {
        vec![config.rooms.domain(&config.domains)]
    } else {
        Vec::new()
    };
    // IRC networks are served to XMPP servers too: whether their users may
    // use them is the domain policy's `bridge`.
    let gateways: Vec<String> = config
        .irc
        .network
        .iter()
        .map(|n| n.domain.to_ascii_lowercase())
        .collect();
    Ok(parley_xmpp::XmppAdapter::new(parley_xmpp::Settings {
        name: "xmpp".into(),
        domains: config
            .domains
            .iter()
            .map(|d| d.to_ascii_lowercase())
            .chain(rooms.clone())
            .chain(gateways.clone())
            .collect(),
        room_domains: rooms,
        gateway_domains: gateways,
        listener,
        listener_tls,
        require_tls: x.require_tls,
        tls_server: Some(crate::net::tls::server_config(config)?),
        tls_client: crate::net::tls::dialback_client_config(config)?,
        tls_client_verified: crate::net::tls::client_config(config)?,
        // Nodes of a cluster verify each other's dialback keys: the
        // secret comes from the cluster's (XEP-0185 keys are an HMAC).
        dialback_secret: if config.clustered() {
            let key =
                ring::hmac::Key::new(ring::hmac::HMAC_SHA256, config.cluster.secret.as_bytes());
            crate::proto::digest::hex(ring::hmac::sign(&key, b"xmpp dialback").as_ref())
        } else {
            crate::sys::token_hex(16)
        },
        components,
        max_stanza: x.max_stanza_bytes,
        connect_timeout: Duration::from_millis(x.connect_timeout_ms),
        idle_timeout: Duration::from_secs(x.idle_timeout_secs),
        negotiation_timeout: Duration::from_secs(x.negotiation_timeout_secs.max(1)),
        max_inbound: x.max_inbound_streams,
        max_per_source: x.max_streams_per_source,
        resolver: dns.locator(),
    }))
}

/// Completes on SIGINT or SIGTERM.
pub async fn signals() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut term) = signal(SignalKind::terminate()) else {
            let _ = tokio::signal::ctrl_c().await;
            return;
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
