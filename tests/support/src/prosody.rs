//! A real Prosody serving one XMPP domain on loopback, in the foreground,
//! as the `prosody` user, with its configuration, certificate, data and log
//! in a directory of its own; and scripted slixmpp clients connected to it.
//!
//! Prosody resolves other domains through libunbound, pointed at the test
//! DNS server, so s2s lookups never leave the machine.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::sipp::free_port;

/// A running Prosody; stopped when dropped.
pub struct Prosody {
    child: Child,
    /// Its directory (config, certificate, data, log).
    pub dir: PathBuf,
    /// The domain it serves.
    pub domain: String,
    /// Client port.
    pub c2s: u16,
    /// Server-to-server port.
    pub s2s: u16,
    /// Component port.
    pub component: u16,
}

/// A component Prosody accepts: (subdomain, secret).
pub type ComponentSpec<'a> = (&'a str, &'a str);

/// Prosody's ports, chosen before it starts (DNS records name them).
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    /// Client port.
    pub c2s: u16,
    /// Server-to-server port.
    pub s2s: u16,
    /// Component port.
    pub component: u16,
    /// Server-to-server port with TLS from the first byte (XEP-0368).
    pub s2s_tls: u16,
}

impl Ports {
    /// Four free loopback ports.
    pub fn free() -> Ports {
        Ports {
            c2s: free_port(),
            s2s: free_port(),
            component: free_port(),
            s2s_tls: free_port(),
        }
    }
}

impl Prosody {
    /// Starts Prosody for `domain` on `ports`, resolving through `dns`,
    /// accepting the given components; waits until its client port answers.
    pub fn start(
        domain: &str,
        ports: Ports,
        dns: SocketAddr,
        components: &[ComponentSpec<'_>],
    ) -> Prosody {
        Self::start_with(domain, ports, dns, components, None)
    }

    /// As [`Prosody::start`], with a certificate issued by a CA (`ca`,
    /// `cert`, `key`): Prosody trusts that CA and requires servers to
    /// authenticate with certificates (`s2s_secure_auth`), so federation
    /// uses SASL EXTERNAL (XEP-0178) both ways, not dialback.
    pub fn start_with(
        domain: &str,
        ports: Ports,
        dns: SocketAddr,
        components: &[ComponentSpec<'_>],
        pki: Option<(&std::path::Path, &std::path::Path, &std::path::Path)>,
    ) -> Prosody {
        Self::start_full(domain, ports, dns, components, pki, None)
    }

    /// As [`Prosody::start`], with a multi-user chat service (Prosody's
    /// `muc` component) at `muc`; new rooms open at once (no locking).
    pub fn start_with_muc(domain: &str, ports: Ports, dns: SocketAddr, muc: &str) -> Prosody {
        Self::start_full(domain, ports, dns, &[], None, Some(muc))
    }

    fn start_full(
        domain: &str,
        ports: Ports,
        dns: SocketAddr,
        components: &[ComponentSpec<'_>],
        pki: Option<(&std::path::Path, &std::path::Path, &std::path::Path)>,
        muc: Option<&str>,
    ) -> Prosody {
        let dir = std::env::temp_dir().join(format!(
            "parley-prosody-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ));
        std::fs::create_dir_all(dir.join("data")).expect("prosody dir");
        std::fs::create_dir_all(dir.join("certs")).expect("prosody certs");
        match pki {
            Some((ca, cert, key)) => {
                std::fs::copy(ca, dir.join("ca.pem")).unwrap();
                std::fs::copy(cert, dir.join(format!("certs/{domain}.crt"))).unwrap();
                std::fs::copy(key, dir.join(format!("certs/{domain}.key"))).unwrap();
            }
            None => {
                let names: Vec<String> = std::iter::once(domain)
                    .chain(muc)
                    .map(str::to_string)
                    .collect();
                let made = rcgen::generate_simple_self_signed(names).expect("cert");
                std::fs::write(dir.join(format!("certs/{domain}.crt")), made.cert.pem()).unwrap();
                std::fs::write(
                    dir.join(format!("certs/{domain}.key")),
                    made.signing_key.serialize_pem(),
                )
                .unwrap();
            }
        }
        let Ports {
            c2s,
            s2s,
            component,
            s2s_tls,
        } = ports;
        let mut config = format!(
            r#"pidfile = "{d}/prosody.pid"
data_path = "{d}/data"
certificates = "{d}/certs"
interfaces = {{ "127.0.0.1" }}
local_interfaces = {{ "127.0.0.1" }}
c2s_ports = {{ {c2s} }}
s2s_ports = {{ {s2s} }}
component_ports = {{ {component} }}
component_interfaces = {{ "127.0.0.1" }}
c2s_direct_tls_ports = {{ }}
s2s_direct_tls_ports = {{ {s2s_tls} }}
http_ports = {{ }}
https_ports = {{ }}
modules_enabled = {{ "roster"; "saslauth"; "tls"; "dialback"; "disco"; "ping"; }}
modules_disabled = {{ "s2s_bidi"; "offline"; "posix"; }}
authentication = "internal_plain"
c2s_require_encryption = false
allow_unencrypted_plain_auth = true
s2s_require_encryption = true
{secure}
s2s_timeout = 30
log = {{ debug = "{d}/prosody.log" }}
unbound = {{ resolvconf = false; hoststxt = false; forward = "{ns}@{port}"; options = {{ ["do-not-query-localhost:"] = "no"; ["local-zone:"] = "test. transparent" }} }}
VirtualHost "{domain}"
"#,
            d = dir.display(),
            secure = if pki.is_some() {
                format!(
                    "s2s_secure_auth = true\nssl = {{ cafile = \"{}/ca.pem\" }}",
                    dir.display()
                )
            } else {
                "s2s_secure_auth = false".to_string()
            },
            ns = dns.ip(),
            port = dns.port(),
        );
        if let Some(muc) = muc {
            config.push_str(&format!(
                "Component \"{muc}\" \"muc\"\n    muc_room_locking = false\n    restrict_room_creation = false\n"
            ));
            // The service's certificate is the host's (it names both).
            for ext in ["crt", "key"] {
                let _ = std::fs::copy(
                    dir.join(format!("certs/{domain}.{ext}")),
                    dir.join(format!("certs/{muc}.{ext}")),
                );
            }
        }
        for (sub, secret) in components {
            config.push_str(&format!(
                "Component \"{sub}\"\n    component_secret = \"{secret}\"\n"
            ));
        }
        std::fs::write(dir.join("prosody.cfg.lua"), config).unwrap();
        let _ = Command::new("chown")
            .args(["-R", "prosody:prosody"])
            .arg(&dir)
            .status();
        let child = Command::new("setpriv")
            .args([
                "--reuid=prosody",
                "--regid=prosody",
                "--init-groups",
                "prosody",
                "-F",
                "--config",
            ])
            .arg(dir.join("prosody.cfg.lua"))
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prosody (tests/peers/install.sh installs it)");
        let p = Prosody {
            child,
            dir,
            domain: domain.to_string(),
            c2s,
            s2s,
            component,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", c2s)).is_err() {
            assert!(
                Instant::now() < deadline,
                "prosody did not start:\n{}",
                p.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        p
    }

    /// Adds an account.
    pub fn register(&self, user: &str, password: &str) {
        let status = Command::new("setpriv")
            .args([
                "--reuid=prosody",
                "--regid=prosody",
                "--init-groups",
                "prosodyctl",
                "--config",
            ])
            .arg(self.dir.join("prosody.cfg.lua"))
            .args(["register", user, &self.domain, password])
            .current_dir(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("prosodyctl");
        assert!(status.success(), "prosodyctl register {user} failed");
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("prosody.log")).unwrap_or_default()
    }
}

impl Drop for Prosody {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::env::var_os("PARLEY_KEEP_PEERS").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// The Python interpreter of the test venv (`tests/peers/install.sh`
/// makes it under `var/peers/venv`).
pub fn python() -> PathBuf {
    crate::repo_root().join("var/peers/venv/bin/python")
}

/// A scripted slixmpp client: commands in as JSON lines, events out as
/// JSON lines (`tests/peers/xmpp_client.py`).
pub struct XmppClient {
    child: Child,
    stdin: ChildStdin,
    events: mpsc::Receiver<String>,
    /// Every event seen, in order.
    pub seen: Vec<String>,
}

impl XmppClient {
    /// Connects `jid` to the server's client port; waits until online.
    pub fn connect(jid: &str, password: &str, port: u16) -> XmppClient {
        let script = crate::repo_root().join("tests/peers/xmpp_client.py");
        let mut child = Command::new(python())
            .arg(&script)
            .args([jid, password, "127.0.0.1", &port.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("slixmpp client (tests/peers/install.sh makes the venv)");
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, events) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut c = XmppClient {
            child,
            stdin,
            events,
            seen: Vec::new(),
        };
        c.wait_for(
            |e| e.contains("\"event\": \"online\""),
            Duration::from_secs(20),
        );
        c
    }

    /// Sends one command (a JSON object).
    pub fn command(&mut self, json: &str) {
        writeln!(self.stdin, "{json}").expect("client stdin");
        self.stdin.flush().unwrap();
    }

    /// Waits for an event matching `pred`; panics with what was seen.
    pub fn wait_for(&mut self, pred: impl Fn(&str) -> bool, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(e) => {
                    self.seen.push(e.clone());
                    if pred(&e) {
                        return e;
                    }
                }
                Err(_) => panic!("no matching XMPP event; seen:\n{}", self.seen.join("\n")),
            }
        }
    }
}

impl Drop for XmppClient {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "{{\"cmd\": \"quit\"}}");
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
