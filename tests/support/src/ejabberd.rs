//! A real ejabberd serving one XMPP domain on loopback, in the foreground,
//! with its configuration, certificate, database and logs in a directory of
//! its own. Erlang's resolver is pointed at the test DNS server through an
//! inetrc file, so its s2s lookups stay on loopback.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::sipp::free_port;

/// A running ejabberd; stopped when dropped.
pub struct Ejabberd {
    child: Child,
    /// Its directory.
    pub dir: PathBuf,
    /// The domain it serves.
    pub domain: String,
    /// Client port.
    pub c2s: u16,
    /// Server-to-server port.
    pub s2s: u16,
    node: String,
}

static INSTANCE: AtomicU32 = AtomicU32::new(0);

impl Ejabberd {
    /// Picks the two ports before start (DNS records name the s2s one).
    pub fn ports() -> (u16, u16) {
        (free_port(), free_port())
    }

    /// Starts ejabberd for `domain` on (c2s, s2s), resolving through `dns`;
    /// waits until it accepts clients.
    ///
    /// ejabberd looks up SRV records with Erlang's resolver (pointed at
    /// `dns` here) but the addresses of SRV targets with the system's
    /// `getaddrinfo`, which must not be asked about test names: SRV records
    /// for ejabberd's peers should name `127.0.0.1` as their target.
    pub fn start(domain: &str, (c2s, s2s): (u16, u16), dns: SocketAddr) -> Ejabberd {
        let n = INSTANCE.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("parley-ejabberd-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("db")).expect("ejabberd dir");
        std::fs::create_dir_all(dir.join("logs")).expect("ejabberd logs");
        // OpenSSL makes the certificate: Erlang refuses the far-future
        // validity rcgen gives by default.
        let ok = Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            ])
            .arg("-subj")
            .arg(format!("/CN={domain}"))
            .arg("-addext")
            .arg(format!("subjectAltName=DNS:{domain}"))
            .arg("-keyout")
            .arg(dir.join("key.pem"))
            .arg("-out")
            .arg(dir.join("cert.pem"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "openssl req failed");
        let pem = std::fs::read_to_string(dir.join("cert.pem")).unwrap()
            + &std::fs::read_to_string(dir.join("key.pem")).unwrap();
        std::fs::write(dir.join("server.pem"), pem).unwrap();
        let config = format!(
            r#"hosts:
  - {domain}
loglevel: info
certfiles:
  - {d}/server.pem
listen:
  - port: {c2s}
    ip: "127.0.0.1"
    module: ejabberd_c2s
    starttls: false
  - port: {s2s}
    ip: "127.0.0.1"
    module: ejabberd_s2s_in
s2s_use_starttls: required
auth_method: internal
auth_password_format: plain
acl:
  local:
    user_regexp: ""
access_rules:
  local:
    allow: local
  c2s:
    allow: all
  s2s:
    allow: all
s2s_access: s2s
modules:
  mod_roster: {{}}
  mod_disco: {{}}
  mod_ping: {{}}
  mod_s2s_dialback: {{}}
"#,
            d = dir.display()
        );
        std::fs::write(dir.join("ejabberd.yml"), config).unwrap();
        // Erlang's resolver: the test DNS server only, localhost from here.
        std::fs::write(
            dir.join("inetrc"),
            format!(
                "{{resolv_conf, \"\"}}.\n{{hosts_file, \"\"}}.\n\
                 {{host, {{127,0,0,1}}, [\"localhost\"]}}.\n{{nameserver, {{127,0,0,1}}, {}}}.\n\
                 {{lookup, [file, dns]}}.\n",
                dns.port()
            ),
        )
        .unwrap();
        let node = format!("parley{}x{n}@localhost", std::process::id());
        std::fs::write(dir.join("ejabberdctl.cfg"), format!("ERLANG_NODE={node}\n")).unwrap();
        let _ = Command::new("chown")
            .args(["-R", "ejabberd:ejabberd"])
            .arg(&dir)
            .status();
        let child = Command::new("ejabberdctl")
            .args(Self::args_for(&dir, &node))
            .arg("foreground")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("ejabberd (tests/peers/install.sh installs it)");
        let e = Ejabberd {
            child,
            dir,
            domain: domain.to_string(),
            c2s,
            s2s,
            node,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", c2s)).is_err() {
            assert!(
                Instant::now() < deadline,
                "ejabberd did not start:\n{}",
                e.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        e
    }

    fn args_for(dir: &std::path::Path, node: &str) -> Vec<String> {
        let d = dir.display();
        vec![
            "--config-dir".into(),
            d.to_string(),
            "--config".into(),
            format!("{d}/ejabberd.yml"),
            "--ctl-config".into(),
            format!("{d}/ejabberdctl.cfg"),
            "--spool".into(),
            format!("{d}/db"),
            "--logs".into(),
            format!("{d}/logs"),
            "--node".into(),
            node.to_string(),
        ]
    }

    /// Adds an account.
    pub fn register(&self, user: &str, password: &str) {
        let out = Command::new("ejabberdctl")
            .args(Self::args_for(&self.dir, &self.node))
            .args(["register", user, &self.domain, password])
            .output()
            .expect("ejabberdctl");
        assert!(
            out.status.success(),
            "ejabberdctl register {user}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("logs/ejabberd.log")).unwrap_or_default()
    }
}

impl Drop for Ejabberd {
    fn drop(&mut self) {
        let _ = Command::new("ejabberdctl")
            .args(Self::args_for(&self.dir, &self.node))
            .arg("stop")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::env::var_os("PARLEY_KEEP_PEERS").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
