//! A Parley server running inside the test process on ports the system
//! chose, with a handle that stops it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use parley::config::Config;
use parley::net::Listeners;

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
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<anyhow::Result<()>>>,
}

impl TestServer {
    /// Starts Parley with `config_text` (TOML, without `[[sip.listen]]`) on
    /// 127.0.0.1 with ports chosen by the system.
    pub fn start(config_text: &str) -> TestServer {
        let state_dir = std::env::temp_dir().join(format!(
            "parley-test-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ));
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
            rt.block_on(async move {
                let listeners = Listeners {
                    udp: vec![tokio::net::UdpSocket::bind("127.0.0.1:0").await?],
                    tcp: vec![tokio::net::TcpListener::bind("127.0.0.1:0").await?],
                    tls: vec![tokio::net::TcpListener::bind("127.0.0.1:0").await?],
                };
                addr_tx.send((
                    listeners.udp[0].local_addr()?,
                    listeners.tcp[0].local_addr()?,
                    listeners.tls[0].local_addr()?,
                ))?;
                parley::app::run(config, listeners, async {
                    let _ = stopped.await;
                })
                .await
            })
        });
        let (udp, tcp, tls) = addr_rx
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
            state_dir,
            stop: Some(stop),
            thread: Some(thread),
        }
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
        let _ = std::fs::remove_dir_all(&self.state_dir);
    }
}
