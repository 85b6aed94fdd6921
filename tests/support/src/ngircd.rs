//! ngIRCd, started on a loopback port of its own for a test: an IRC
//! network with DNS, ident and PAM off, no limit of connections per
//! address and no flood penalty (the tests send in bursts).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running ngIRCd; stopped when dropped.
pub struct Ngircd {
    child: Child,
    dir: PathBuf,
    /// Its client port on 127.0.0.1.
    pub port: u16,
    /// Its TLS client port, when it has one.
    pub tls_port: Option<u16>,
}

impl Ngircd {
    /// Starts ngIRCd named `name`; waits until its port answers.
    pub fn start(name: &str) -> Ngircd {
        Self::start_with(name, None)
    }

    /// [`Ngircd::start`] with a TLS port too, serving the certificate
    /// `cert` with `key` (PEM files).
    pub fn start_with_tls(name: &str, cert: &std::path::Path, key: &std::path::Path) -> Ngircd {
        Self::start_with(name, Some((cert, key)))
    }

    fn start_with(name: &str, tls: Option<(&std::path::Path, &std::path::Path)>) -> Ngircd {
        let port = crate::sipp::free_port();
        let dir = std::env::temp_dir().join(format!("parley-ngircd-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("ngircd dir");
        let conf = dir.join("ngircd.conf");
        let tls_port = tls.map(|_| crate::sipp::free_port());
        let ssl = match (tls, tls_port) {
            (Some((cert, key)), Some(p)) => {
                std::fs::copy(cert, dir.join("cert.pem")).expect("certificate");
                std::fs::copy(key, dir.join("key.pem")).expect("key");
                format!(
                    "[SSL]\nCertFile = {d}/cert.pem\nKeyFile = {d}/key.pem\nPorts = {p}\n",
                    d = dir.display()
                )
            }
            _ => String::new(),
        };
        std::fs::write(
            &conf,
            format!(
                "[Global]\nName = {name}\nInfo = Parley test network\nListen = 127.0.0.1\nPorts = {port}\n\
                 PidFile = {}/ngircd.pid\nMotdPhrase = \"Parley test network\"\nServerUID = irc\nServerGID = irc\n\
                 [Limits]\nMaxConnectionsIP = 0\nMaxNickLength = 30\nMaxPenaltyTime = 0\nPingTimeout = 120\n\
                 [Options]\nDNS = no\nIdent = no\nPAM = no\n{ssl}",
                dir.display()
            ),
        )
        .expect("ngircd conf");
        let _ = Command::new("chown")
            .args(["-R", "irc:irc"])
            .arg(&dir)
            .status();
        let child = Self::spawn(&dir, port);
        if let Some(p) = tls_port {
            let deadline = Instant::now() + Duration::from_secs(20);
            while std::net::TcpStream::connect(("127.0.0.1", p)).is_err() {
                assert!(Instant::now() < deadline, "ngircd's TLS port did not open");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Ngircd {
            child,
            dir,
            port,
            tls_port,
        }
    }

    fn spawn(dir: &std::path::Path, port: u16) -> Child {
        let child = Command::new("ngircd")
            .args(["-n", "-f"])
            .arg(dir.join("ngircd.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("ngircd (tests/peers/install.sh installs it)");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "ngircd did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        child
    }

    /// Stops the server (every connection drops) and starts it again on
    /// the same port.
    pub fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(self.dir.join("ngircd.pid"));
        self.child = Self::spawn(&self.dir, self.port);
    }
}

impl Drop for Ngircd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A scripted IRC client over plain TCP: registers under a nick, then
/// reads lines (answering PING) and sends what it is told.
pub struct IrcClient {
    stream: std::net::TcpStream,
    buf: Vec<u8>,
    /// Every line seen, in order.
    pub seen: Vec<String>,
}

impl IrcClient {
    /// Connects to `port` and registers as `nick`; waits for the welcome.
    pub fn connect(port: u16, nick: &str) -> IrcClient {
        let stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect to IRC");
        stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut c = IrcClient {
            stream,
            buf: Vec::new(),
            seen: Vec::new(),
        };
        c.send(&format!("NICK {nick}"));
        // The user name takes letters and digits only.
        let ident: String = nick.chars().filter(char::is_ascii_alphanumeric).collect();
        c.send(&format!("USER {ident} 0 * :{nick}"));
        c.wait_for(
            |l| l.split(' ').nth(1) == Some("001"),
            Duration::from_secs(10),
        );
        c
    }

    /// Sends one line (CR LF added).
    pub fn send(&mut self, line: &str) {
        use std::io::Write;
        self.stream
            .write_all(format!("{line}\r\n").as_bytes())
            .expect("write to IRC");
    }

    /// Waits for a line matching `pred`; panics with what was seen.
    pub fn wait_for(&mut self, pred: impl Fn(&str) -> bool, within: Duration) -> String {
        match self.try_wait_for(pred, within) {
            Some(line) => line,
            None => panic!("no matching IRC line; seen:\n{}", self.seen.join("\n")),
        }
    }

    /// [`IrcClient::wait_for`], `None` when nothing matched in time.
    pub fn try_wait_for(
        &mut self,
        pred: impl Fn(&str) -> bool,
        within: Duration,
    ) -> Option<String> {
        use std::io::Read;
        let deadline = Instant::now() + within;
        loop {
            while let Some(end) = self.buf.iter().position(|b| *b == b'\n') {
                let raw: Vec<u8> = self.buf.drain(..=end).collect();
                let line = String::from_utf8_lossy(&raw).trim_end().to_string();
                if let Some(rest) = line.strip_prefix("PING ") {
                    self.send(&format!("PONG {rest}"));
                }
                self.seen.push(line.clone());
                if pred(&line) {
                    return Some(line);
                }
            }
            if Instant::now() >= deadline {
                return None;
            }
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) => panic!("the IRC server closed; seen:\n{}", self.seen.join("\n")),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(_) => {}
            }
        }
    }
}
