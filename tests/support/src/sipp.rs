//! SIPp, run as a client against Parley or as a user agent server that
//! Parley sends requests to. Every run is bounded by a call count and a
//! timeout, and its message trace is returned for assertions.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use crate::data_dir;

/// A scenario under tests/data/sipp.
pub fn scenario(name: &str) -> PathBuf {
    data_dir().join("sipp").join(name)
}

/// A port no one holds right now on 127.0.0.1, for UDP and TCP (bound,
/// then released).
pub fn free_port() -> u16 {
    loop {
        let u = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let port = u.local_addr().expect("local address").port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// A SIPp process in flight.
pub struct Sipp {
    child: Option<Child>,
    name: String,
    errors: PathBuf,
    messages: PathBuf,
    /// The port SIPp listens on.
    pub port: u16,
}

impl Sipp {
    /// Starts SIPp on 127.0.0.1 with `scenario_file` (empty for a built-in
    /// scenario named in `extra`), `transport` (`u1`,
    /// `t1`) and `calls` calls; towards `remote` when it is a client.
    pub fn start(
        scenario_file: &str,
        transport: &str,
        calls: u32,
        remote: Option<SocketAddr>,
        extra: &[&str],
    ) -> Sipp {
        Self::start_on(scenario_file, transport, calls, remote, free_port(), extra)
    }

    /// [`Sipp::start`] on a chosen local port.
    pub fn start_on(
        scenario_file: &str,
        transport: &str,
        calls: u32,
        remote: Option<SocketAddr>,
        port: u16,
        extra: &[&str],
    ) -> Sipp {
        let stem = std::env::temp_dir().join(format!(
            "sipp-{}-{port}-{scenario_file}-{transport}",
            std::process::id()
        ));
        let errors = stem.with_extension("err");
        let messages = stem.with_extension("msg");
        let mut cmd = Command::new("sipp");
        // An empty name runs a built-in scenario given in `extra` (`-sn uas`).
        if !scenario_file.is_empty() {
            cmd.arg("-sf").arg(scenario(scenario_file));
        }
        cmd.args(["-t", transport, "-i", "127.0.0.1", "-p"])
            .arg(port.to_string())
            .args(["-m", &calls.to_string(), "-r", "50", "-nostdin"])
            .args(["-timeout", "20s", "-timeout_error"])
            .arg("-trace_err")
            .arg("-error_file")
            .arg(&errors)
            .arg("-trace_msg")
            .arg("-message_file")
            .arg(&messages)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(r) = remote {
            cmd.arg(r.to_string());
        }
        let child = cmd
            .spawn()
            .expect("sipp runs (tests/peers/install.sh installs it)");
        if remote.is_none() {
            // A server must be listening before requests are sent to it.
            wait_listening(port, transport);
        }
        Sipp {
            child: Some(child),
            name: format!("sipp {scenario_file} over {transport}"),
            errors,
            messages,
            port,
        }
    }

    /// Waits for SIPp to finish, checks it succeeded, and returns its
    /// message trace.
    pub fn wait(mut self) -> String {
        let out = self
            .child
            .take()
            .expect("running")
            .wait_with_output()
            .expect("sipp output");
        let err_text = std::fs::read_to_string(&self.errors).unwrap_or_default();
        let trace = std::fs::read_to_string(&self.messages).unwrap_or_default();
        assert!(
            out.status.success(),
            "{}: {:?}\n{}\n{}\n{err_text}\n{trace}",
            self.name,
            out.status,
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .rev()
                .take(30)
                .collect::<Vec<_>>()
                .join("\n"),
            String::from_utf8_lossy(&out.stderr)
        );
        trace
    }
}

impl Drop for Sipp {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_file(&self.errors);
        let _ = std::fs::remove_file(&self.messages);
    }
}

/// Polls until something listens on the port (TCP) or the port is taken
/// (UDP), for at most fifteen seconds (the suite starts heavier peers —
/// ejabberd, Chromium — beside SIPp, and on two cores SIPp can be slow to
/// come up then).
fn wait_listening(port: u16, transport: &str) {
    for _ in 0..750 {
        let busy = if transport.starts_with('t') {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        } else {
            std::net::UdpSocket::bind(("127.0.0.1", port)).is_err()
        };
        if busy {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    panic!("sipp did not start listening on {port}");
}
