//! A Parley server running inside the test process on ports the system
//! chose, with a handle that stops it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use parley::app::{Listeners, Parley};
use parley::config::Config;
use parley::net::{SendError, Sip, Target};
use parley::proto::sip::Message;

/// A running server and the addresses it listens on.
pub struct TestServer {
    /// UDP address.
    pub udp: SocketAddr,
    /// TCP address.
    pub tcp: SocketAddr,
    /// TLS address.
    pub tls: SocketAddr,
    /// The state directory (holds the self-made certificate).
    pub state_dir: PathBuf,
    /// The admin console, when started with one.
    pub admin: Option<SocketAddr>,
    /// The MSRP relay over TCP (`msrp:`), when `[msrp]` is enabled.
    pub msrp: Option<SocketAddr>,
    /// The MSRP relay over TLS (`msrps:`).
    pub msrps: Option<SocketAddr>,
    /// The handle for sending requests.
    pub sip: Sip,
    runtime: tokio::runtime::Handle,
    owns_dir: bool,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<anyhow::Result<()>>>,
}

impl TestServer {
    /// Starts Parley with `config_text` (TOML, without `[[sip.listen]]`) on
    /// 127.0.0.1 with ports chosen by the system.
    pub fn start(config_text: &str) -> TestServer {
        let state_dir = fresh_state_dir();
        let mut server = Self::start_in(&state_dir, config_text);
        server.owns_dir = true;
        server
    }

    /// Starts Parley with its state in `state_dir`, which is kept when the
    /// server stops (to start another on the same state).
    pub fn start_in(state_dir: &std::path::Path, config_text: &str) -> TestServer {
        Self::start_full(state_dir, config_text, None, None, false)
    }

    /// Starts Parley with its admin console on a port the system chose.
    pub fn start_with_admin(config_text: &str) -> TestServer {
        let state_dir = fresh_state_dir();
        let mut server = Self::start_full(&state_dir, config_text, None, None, true);
        server.owns_dir = true;
        server
    }

    /// Starts Parley with its XMPP s2s listener on `xmpp` (bound by the
    /// caller, so DNS records can name its port before Parley starts) and
    /// its admin console on a port the system chose.
    pub fn start_with_xmpp(config_text: &str, xmpp: std::net::TcpListener) -> TestServer {
        Self::start_with_xmpp_listeners(config_text, xmpp, None)
    }

    /// As [`TestServer::start_with_xmpp`], with a direct-TLS s2s listener
    /// (XEP-0368) too.
    pub fn start_with_xmpp_listeners(
        config_text: &str,
        xmpp: std::net::TcpListener,
        xmpp_tls: Option<std::net::TcpListener>,
    ) -> TestServer {
        let state_dir = fresh_state_dir();
        let mut server = Self::start_full(&state_dir, config_text, Some(xmpp), xmpp_tls, true);
        server.owns_dir = true;
        server
    }

    fn start_full(
        state_dir: &std::path::Path,
        config_text: &str,
        xmpp: Option<std::net::TcpListener>,
        xmpp_tls: Option<std::net::TcpListener>,
        with_admin: bool,
    ) -> TestServer {
        let state_dir = state_dir.to_path_buf();
        let text = format!(
            "state_dir = {:?}\n{config_text}",
            state_dir.display().to_string()
        );
        let config = Config::parse(&text, "test config").expect("test config");
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?;
            let runtime = rt.handle().clone();
            rt.block_on(async move {
                let listeners = Listeners {
                    sip: parley::net::Listeners {
                        udp: vec![tokio::net::UdpSocket::bind("127.0.0.1:0").await?],
                        tcp: vec![tokio::net::TcpListener::bind("127.0.0.1:0").await?],
                        tls: vec![tokio::net::TcpListener::bind("127.0.0.1:0").await?],
                    },
                    xmpp: match xmpp {
                        Some(l) => {
                            l.set_nonblocking(true)?;
                            Some(tokio::net::TcpListener::from_std(l)?)
                        }
                        None => None,
                    },
                    admin: if with_admin {
                        Some(tokio::net::TcpListener::bind("127.0.0.1:0").await?)
                    } else {
                        None
                    },
                    xmpp_tls: match xmpp_tls {
                        Some(l) => {
                            l.set_nonblocking(true)?;
                            Some(tokio::net::TcpListener::from_std(l)?)
                        }
                        None => None,
                    },
                    msrp: Default::default(),
                };
                let mut listeners = listeners;
                if config.msrp.enabled {
                    listeners.msrp = parley::msrp::RelayListeners {
                        tls: Some(tokio::net::TcpListener::bind("127.0.0.1:0").await?),
                        tcp: Some(tokio::net::TcpListener::bind("127.0.0.1:0").await?),
                    };
                }
                let relay = (
                    listeners
                        .msrp
                        .tcp
                        .as_ref()
                        .and_then(|l| l.local_addr().ok()),
                    listeners
                        .msrp
                        .tls
                        .as_ref()
                        .and_then(|l| l.local_addr().ok()),
                );
                let addrs = (
                    listeners.sip.udp[0].local_addr()?,
                    listeners.sip.tcp[0].local_addr()?,
                    listeners.sip.tls[0].local_addr()?,
                    listeners.admin.as_ref().and_then(|l| l.local_addr().ok()),
                    relay,
                );
                // Started as `parley run` starts it.
                let parley = Parley::start(&config, listeners).await?;
                addr_tx.send((addrs, parley.sip(), runtime))?;
                parley
                    .run(async {
                        let _ = stopped.await;
                    })
                    .await;
                anyhow::Ok(())
            })
        });
        let ((udp, tcp, tls, admin, (msrp, msrps)), sip, runtime) = addr_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("server started");
        // The TLS certificate is made before the listeners accept.
        for _ in 0..100 {
            if state_dir.join("tls/cert.pem").exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        TestServer {
            udp,
            tcp,
            tls,
            admin,
            msrp,
            msrps,
            state_dir,
            sip,
            runtime,
            owns_dir: false,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// The admin token the server made on first start.
    pub fn admin_token(&self) -> String {
        std::fs::read_to_string(self.state_dir.join("admin-token"))
            .map(|t| t.trim().to_string())
            .unwrap_or_default()
    }

    /// Sends `request` to `target` through Parley and returns every
    /// response up to the final one (at most `wait` for all of them).
    pub fn request(
        &self,
        request: Message,
        target: &Target,
        wait: Duration,
    ) -> Result<Vec<Message>, SendError> {
        let sip = self.sip.clone();
        let target = target.clone();
        self.runtime.block_on(async move {
            let mut rx = sip.request(request, &target).await?;
            let mut out = Vec::new();
            let _ = tokio::time::timeout(wait, async {
                while let Some(m) = rx.recv().await {
                    let last = m.status().is_some_and(|s| s >= 200);
                    out.push(m);
                    if last {
                        break;
                    }
                }
            })
            .await;
            Ok(out)
        })
    }

    /// Runs `f` on the server's runtime.
    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.runtime.block_on(f)
    }

    /// Stops the server and returns how long it took.
    pub fn stop(mut self) -> Duration {
        let started = std::time::Instant::now();
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            t.join().expect("server thread").expect("server result");
        }
        started.elapsed()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if self.owns_dir {
            let _ = std::fs::remove_dir_all(&self.state_dir);
        }
    }
}

/// A state directory of its own for one test server.
fn fresh_state_dir() -> PathBuf {
    std::env::temp_dir().join(format!(
        "parley-test-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    ))
}
