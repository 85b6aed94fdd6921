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
use crate::store::{SqliteStore, Store};

/// Starts logging at the configured level (`RUST_LOG` wins).
pub fn init_logging(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&config.log.level));
    use std::io::IsTerminal;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(std::io::stdout().is_terminal())
        .try_init();
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
        let store: Arc<dyn Store> = Arc::new(
            SqliteStore::open(&config.sqlite_path())
                .await
                .context("opening the store")?,
        );
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
                router.clone(),
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
        if let Some(listener) = admin {
            let token = crate::admin::token(config).context("the admin token")?;
            let serve = crate::admin::serve(
                token,
                config.source.clone(),
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
        spawn_reload_on_hangup(&tasks, &stop, router, config.source.clone());
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
    for line in listeners.describe() {
        info!("listening on {line}");
    }
    Parley::start(&config, listeners).await?.run(shutdown).await;
    Ok(())
}

/// SIGHUP reloads the domain policy from the configuration file.
#[cfg(unix)]
fn spawn_reload_on_hangup(
    tasks: &TaskTracker,
    stop: &CancellationToken,
    router: Arc<Router>,
    path: Option<std::path::PathBuf>,
) {
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
                    if let Err(e) = crate::admin::reload_from(&router, path.as_deref()) {
                        warn!(error = %e, "policy not reloaded");
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
        dialback_secret: crate::sys::token_hex(16),
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
