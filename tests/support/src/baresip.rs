//! baresip, a real SIMPLE client, driven over its ctrl_tcp socket
//! (netstring JSON commands) with its console socket read for incoming
//! MESSAGEs. Each instance has a configuration directory of its own and
//! listens on 127.0.0.1 only.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::sipp::free_port;

/// One baresip user agent.
pub struct Baresip {
    child: Child,
    dir: PathBuf,
    ctrl: u16,
    console: TcpStream,
    heard: String,
}

/// A free port whose successor is free too (baresip takes both).
fn free_pair() -> u16 {
    loop {
        let p = free_port();
        if p < u16::MAX && std::net::UdpSocket::bind(("127.0.0.1", p + 1)).is_ok() {
            return p;
        }
    }
}

impl Baresip {
    /// Starts `user` with the account `sip:user@server` (digest password
    /// `password`, publishing its presence) and `contacts` watched
    /// (`;presence=p2p`): `bob` is `sip:bob@server`, `bob@example.com`
    /// itself (reached with `server` as the outbound proxy).
    pub fn start(user: &str, password: &str, server: SocketAddr, contacts: &[&str]) -> Baresip {
        Self::start_with(user, password, server, contacts, "")
    }

    /// [`Baresip::start`] with more account parameters (`;sipnat=outbound`).
    pub fn start_with(
        user: &str,
        password: &str,
        server: SocketAddr,
        contacts: &[&str],
        account: &str,
    ) -> Baresip {
        let dir = std::env::temp_dir().join(format!(
            "baresip-{}-{user}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let (sip, ctrl, cons) = (free_pair(), free_port(), free_port());
        // SIP Outbound needs the device's instance id (the uuid module makes
        // one, before the accounts load).
        let uuid = if account.contains("outbound") {
            "module uuid.so\n"
        } else {
            ""
        };
        std::fs::write(
            dir.join("config"),
            format!(
                "poll_method epoll\nsip_listen 127.0.0.1:{sip}\nnet_interface 127.0.0.1\n\
                 module_path /usr/lib/baresip/modules\nmodule cons.so\n{uuid}module account.so\n\
                 module contact.so\nmodule menu.so\nmodule presence.so\nmodule ctrl_tcp.so\n\
                 cons_listen 127.0.0.1:{cons}\nctrl_tcp_listen 127.0.0.1:{ctrl}\n\
                 audio_player aufile,/dev/null\naudio_source aufile,/dev/null\n"
            ),
        )
        .unwrap();
        // A contact with a domain of its own (`bob@irc.example.com`) is
        // reached through Parley as the outbound proxy.
        let outbound = if contacts.iter().any(|c| c.contains('@')) {
            format!(";outbound=\"sip:{server}\"")
        } else {
            String::new()
        };
        std::fs::write(
            dir.join("accounts"),
            format!(
                "<sip:{user}@{server}>;auth_user={user};auth_pass={password};regint=600;pubint=60;answermode=manual{outbound}{account}\n"
            ),
        )
        .unwrap();
        let list: String = contacts
            .iter()
            .map(|c| match c.split_once('@') {
                Some((name, _)) => format!("\"{name}\" <sip:{c}>;presence=p2p\n"),
                None => format!("\"{c}\" <sip:{c}@{server}>;presence=p2p\n"),
            })
            .collect();
        std::fs::write(dir.join("contacts"), list).unwrap();
        let child = Command::new("baresip")
            .arg("-f")
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("baresip runs (tests/peers/install.sh installs it)");
        let deadline = Instant::now() + Duration::from_secs(10);
        let console = loop {
            if let Ok(c) = TcpStream::connect(("127.0.0.1", cons)) {
                break c;
            }
            assert!(Instant::now() < deadline, "baresip's console did not open");
            std::thread::sleep(Duration::from_millis(100));
        };
        console
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        Baresip {
            child,
            dir,
            ctrl,
            console,
            heard: String::new(),
        }
    }

    /// Runs one command and returns its `data` text.
    pub fn command(&self, command: &str, params: Option<&str>) -> String {
        let mut s = TcpStream::connect(("127.0.0.1", self.ctrl)).expect("ctrl_tcp");
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let body = match params {
            Some(p) => format!(
                "{{\"command\":\"{command}\",\"params\":{},\"token\":\"t\"}}",
                json_string(p)
            ),
            None => format!("{{\"command\":\"{command}\",\"token\":\"t\"}}"),
        };
        s.write_all(format!("{}:{body},", body.len()).as_bytes())
            .unwrap();
        let mut buf = Vec::new();
        let mut chunk = [0u8; 8192];
        while !buf.ends_with(b"},") {
            match s.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        String::from_utf8_lossy(&buf).into_owned()
    }

    /// Waits (at most `wait`) until `command` answers with text containing
    /// `want`; false when it never does.
    pub fn wait_for(&self, command: &str, want: &str, wait: Duration) -> bool {
        let deadline = Instant::now() + wait;
        while Instant::now() < deadline {
            if self.command(command, None).contains(want) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        false
    }

    /// Waits (at most `wait`) until the console has shown `want`.
    pub fn heard(&mut self, want: &str, wait: Duration) -> bool {
        let deadline = Instant::now() + wait;
        let mut chunk = [0u8; 4096];
        while Instant::now() < deadline {
            if self.heard.contains(want) {
                return true;
            }
            if let Ok(n) = self.console.read(&mut chunk) {
                self.heard.push_str(&String::from_utf8_lossy(&chunk[..n]));
            }
        }
        self.heard.contains(want)
    }

    /// What the console showed so far.
    pub fn console_text(&self) -> &str {
        &self.heard
    }
}

fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

impl Drop for Baresip {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
