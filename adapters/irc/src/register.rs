//! Registering a connection, sans-IO: IRCv3 capability negotiation (CAP
//! LS 302, multi-line lists, REQ/ACK/NAK), SASL PLAIN or EXTERNAL
//! (IRCv3 sasl-3.1/3.2, numerics 900–908), the nick with its fallbacks
//! on 432/433, and what the server says it supports (005 ISUPPORT), up to
//! the welcome (001). It takes parsed lines and answers with lines to send
//! and where registration stands; the connection does the I/O.

use std::collections::BTreeSet;

use base64::Engine;
use irc_proto::{CapSubCommand, Command, Message, Response};

/// The IRCv3 capabilities Parley asks for when the server offers them.
/// `sasl` is asked for only when the network has credentials for the user.
pub const WANTED_CAPS: [&str; 11] = [
    "multi-prefix",
    "server-time",
    "message-tags",
    "echo-message",
    "labeled-response",
    "away-notify",
    "account-tag",
    "extended-join",
    "chghost",
    "batch",
    "extended-monitor",
];

/// Nicks tried after the template's before giving up.
const MAX_NICK_TRIES: u32 = 9;

/// How the connection proves its user's account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sasl {
    /// PLAIN: the account and its password (over TLS only, in practice).
    Plain {
        /// The account name (authcid and authzid).
        account: String,
        /// Its password.
        password: String,
    },
    /// EXTERNAL: the TLS client certificate speaks for the account.
    External,
}

/// Where registration stands after a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Still registering.
    Pending,
    /// Registered under this nick.
    Welcome(String),
    /// The server refused: the reason, for the user.
    Failed(String),
}

/// One connection's registration.
#[derive(Debug)]
pub struct Registration {
    nick: String,
    /// The nick the template gave, and how many were taken.
    base: String,
    taken: u32,
    max_nick: usize,
    sasl: Option<Sasl>,
    /// The capability names of a `CAP LS` in progress (302 lists may span
    /// lines).
    offered: Vec<String>,
    /// Capabilities the server acknowledged.
    pub caps: BTreeSet<String>,
    /// 005 `MONITOR=n`: how many nicks the server follows for a client.
    pub monitor: Option<usize>,
    /// A SASL exchange is under way; CAP END waits for its outcome.
    authenticating: bool,
    /// The account SASL logged in to (900).
    pub account: Option<String>,
    done: bool,
}

impl Registration {
    /// A registration for `nick` (already fitted to `max_nick`), with the
    /// first lines to send.
    pub fn new(
        nick: &str,
        ident: &str,
        realname: &str,
        max_nick: usize,
        sasl: Option<Sasl>,
    ) -> (Registration, Vec<String>) {
        let realname = realname.replace(['\r', '\n'], " ");
        let lines = vec![
            "CAP LS 302".to_string(),
            format!("NICK {nick}"),
            format!("USER {ident} 0 * :{realname}"),
        ];
        (
            Registration {
                nick: nick.to_string(),
                base: nick.to_string(),
                taken: 0,
                max_nick,
                sasl,
                offered: Vec::new(),
                caps: BTreeSet::new(),
                monitor: None,
                authenticating: false,
                account: None,
                done: false,
            },
            lines,
        )
    }

    /// Whether a capability was acknowledged.
    pub fn has(&self, cap: &str) -> bool {
        self.caps.contains(cap)
    }

    /// One line from the server: lines to send go to `out`.
    pub fn on(&mut self, msg: &Message, out: &mut Vec<String>) -> Step {
        match &msg.command {
            Command::CAP(_, sub, a, b) => return self.cap(sub, a.as_deref(), b.as_deref(), out),
            Command::AUTHENTICATE(challenge) if self.authenticating && challenge == "+" => {
                match &self.sasl {
                    Some(Sasl::Plain { account, password }) => {
                        let raw = format!("{account}\0{account}\0{password}");
                        let encoded = base64::engine::general_purpose::STANDARD.encode(raw);
                        // IRCv3 sasl-3.1: 400-byte chunks, a last short one
                        // (or `+` after an exact multiple).
                        for chunk in encoded.as_bytes().chunks(400) {
                            out.push(format!("AUTHENTICATE {}", String::from_utf8_lossy(chunk)));
                        }
                        if encoded.len() % 400 == 0 {
                            out.push("AUTHENTICATE +".into());
                        }
                    }
                    Some(Sasl::External) => out.push("AUTHENTICATE +".into()),
                    None => {}
                }
            }
            Command::Response(r, args) => return self.numeric(*r, args, out),
            _ => {}
        }
        Step::Pending
    }

    fn cap(
        &mut self,
        sub: &CapSubCommand,
        a: Option<&str>,
        b: Option<&str>,
        out: &mut Vec<String>,
    ) -> Step {
        // `CAP * LS [*] :caps`: the list is the last argument; a `*`
        // before it means more lines follow.
        let list = b.or(a).unwrap_or_default();
        let more = b.is_some() && a == Some("*");
        match sub {
            CapSubCommand::LS if !self.done => {
                self.offered.extend(
                    list.split_whitespace()
                        .map(|c| c.split('=').next().unwrap_or(c).to_string()),
                );
                if more {
                    return Step::Pending;
                }
                let offered = std::mem::take(&mut self.offered);
                let mut want: Vec<&str> = WANTED_CAPS
                    .iter()
                    .copied()
                    .filter(|w| offered.iter().any(|o| o == w))
                    .collect();
                if self.sasl.is_some() {
                    if offered.iter().any(|o| o == "sasl") {
                        want.push("sasl");
                    } else {
                        return Step::Failed(
                            "the network does not offer SASL, which is configured".into(),
                        );
                    }
                }
                if want.is_empty() {
                    out.push("CAP END".into());
                } else {
                    out.push(format!("CAP REQ :{}", want.join(" ")));
                }
            }
            CapSubCommand::ACK => {
                self.caps.extend(
                    list.split_whitespace()
                        .map(|c| c.trim_start_matches('-').to_string()),
                );
                if !self.done {
                    match &self.sasl {
                        Some(s) if self.has("sasl") => {
                            self.authenticating = true;
                            out.push(match s {
                                Sasl::Plain { .. } => "AUTHENTICATE PLAIN".into(),
                                Sasl::External => "AUTHENTICATE EXTERNAL".into(),
                            });
                        }
                        _ => out.push("CAP END".into()),
                    }
                }
            }
            CapSubCommand::NAK if !self.done => {
                if self.sasl.is_some() && list.split_whitespace().any(|c| c == "sasl") {
                    return Step::Failed("the network refused SASL".into());
                }
                out.push("CAP END".into());
            }
            CapSubCommand::DEL => {
                for c in list.split_whitespace() {
                    self.caps.remove(c);
                }
            }
            _ => {}
        }
        Step::Pending
    }

    fn numeric(&mut self, r: Response, args: &[String], out: &mut Vec<String>) -> Step {
        let last = || args.last().cloned().unwrap_or_default();
        match r {
            Response::RPL_WELCOME => {
                if let Some(n) = args.first() {
                    self.nick = n.clone();
                }
                self.done = true;
                return Step::Welcome(self.nick.clone());
            }
            Response::RPL_ISUPPORT => {
                for token in &args[1.min(args.len())..] {
                    if let Some(n) = token.strip_prefix("MONITOR") {
                        self.monitor = Some(
                            n.strip_prefix('=')
                                .and_then(|v| v.parse().ok())
                                .unwrap_or(usize::MAX),
                        );
                    }
                }
            }
            Response::ERR_NICKNAMEINUSE | Response::ERR_ERRONEOUSNICKNAME if !self.done => {
                // The template's nick is taken: `_`, then `_2`, `_3`…,
                // the base cut to leave room within the network's length.
                self.taken += 1;
                if self.taken > MAX_NICK_TRIES {
                    return Step::Failed(format!("no free nick like {}", self.base));
                }
                let suffix = match self.taken {
                    1 => "_".to_string(),
                    n => format!("_{n}"),
                };
                let mut base = self.base.clone();
                let room = self.max_nick.saturating_sub(suffix.len()).max(1);
                while base.len() > room {
                    base.pop();
                }
                self.nick = format!("{base}{suffix}");
                out.push(format!("NICK {}", self.nick));
            }
            Response::RPL_LOGGEDIN => {
                // `<nick> <nick>!<ident>@<host> <account> :You are now logged in`
                self.account = args.get(2).cloned();
            }
            Response::RPL_SASLSUCCESS if self.authenticating => {
                self.authenticating = false;
                out.push("CAP END".into());
            }
            Response::ERR_SASLFAIL
            | Response::ERR_SASLTOOLONG
            | Response::ERR_SASLABORT
            | Response::ERR_NICKLOCKED
                if self.authenticating =>
            {
                // Configured to log in: not logged in is not going on as
                // someone else.
                return Step::Failed(format!("SASL authentication failed: {}", last()));
            }
            _ => {}
        }
        Step::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(r: &mut Registration, lines: &[&str]) -> (Vec<String>, Step) {
        let mut out = Vec::new();
        let mut step = Step::Pending;
        for l in lines {
            let msg: Message = l.parse().expect(l);
            step = r.on(&msg, &mut out);
        }
        (out, step)
    }

    #[test]
    fn a_server_without_cap_registers_as_rfc_2812_says() {
        let (mut r, first) = Registration::new("alice", "alice", "Parley user", 30, None);
        assert_eq!(
            first,
            ["CAP LS 302", "NICK alice", "USER alice 0 * :Parley user"]
        );
        let (out, step) = feed(
            &mut r,
            &[":irc.example.com 001 alice :Welcome to the network"],
        );
        assert!(out.is_empty());
        assert_eq!(step, Step::Welcome("alice".into()));
    }

    #[test]
    fn a_multi_line_cap_ls_is_read_whole_before_asking() {
        // IRCv3 capability negotiation 3.2, "CAP LS" example.
        let (mut r, _) = Registration::new("jilles", "jilles", "x", 30, None);
        let (out, _) = feed(
            &mut r,
            &[
                ":irc.example.org CAP * LS * :multi-prefix extended-join account-notify batch invite-notify tls",
                ":irc.example.org CAP * LS * :cap-notify server-time example.org/dummy-cap=dummyvalue example.org/second-dummy-cap",
                ":irc.example.org CAP * LS :userhost-in-names sasl=EXTERNAL,DH-AES,DH-BLOWFISH,ECDSA-NIST256P-CHALLENGE,PLAIN",
            ],
        );
        assert_eq!(
            out,
            ["CAP REQ :multi-prefix server-time extended-join batch"]
        );
        let (out, _) = feed(
            &mut r,
            &[":irc.example.org CAP * ACK :multi-prefix server-time extended-join batch"],
        );
        assert_eq!(out, ["CAP END"]);
        assert!(r.has("server-time") && !r.has("sasl"));
    }

    #[test]
    fn sasl_plain_logs_in_before_cap_end() {
        // IRCv3 sasl-3.1, the PLAIN example (jilles / sesame).
        let sasl = Sasl::Plain {
            account: "jilles".into(),
            password: "sesame".into(),
        };
        let (mut r, _) = Registration::new("jilles", "jilles", "x", 30, Some(sasl));
        let (out, _) = feed(
            &mut r,
            &[":leguin.freenode.net CAP * LS :sasl=PLAIN,EXTERNAL"],
        );
        assert_eq!(out, ["CAP REQ :sasl"]);
        let (out, _) = feed(&mut r, &[":leguin.freenode.net CAP jilles ACK :sasl"]);
        assert_eq!(out, ["AUTHENTICATE PLAIN"]);
        let (out, _) = feed(&mut r, &["AUTHENTICATE +"]);
        assert_eq!(out, ["AUTHENTICATE amlsbGVzAGppbGxlcwBzZXNhbWU="]);
        let (out, _) = feed(
            &mut r,
            &[
                ":leguin.freenode.net 900 jilles jilles!jilles@localhost.stack.nl jilles :You are now logged in as jilles.",
                ":leguin.freenode.net 903 jilles :SASL authentication successful",
            ],
        );
        assert_eq!(out, ["CAP END"]);
        assert_eq!(r.account.as_deref(), Some("jilles"));
    }

    #[test]
    fn a_refused_login_fails_the_connection_with_the_servers_words() {
        let sasl = Sasl::Plain {
            account: "alice".into(),
            password: "wrong".into(),
        };
        let (mut r, _) = Registration::new("alice", "alice", "x", 30, Some(sasl));
        feed(
            &mut r,
            &[":s CAP * LS :sasl", ":s CAP * ACK :sasl", "AUTHENTICATE +"],
        );
        let (_, step) = feed(&mut r, &[":s 904 alice :SASL authentication failed"]);
        assert_eq!(
            step,
            Step::Failed("SASL authentication failed: SASL authentication failed".into())
        );
        // A network without SASL cannot log the user in either.
        let sasl = Sasl::External;
        let (mut r, _) = Registration::new("alice", "alice", "x", 30, Some(sasl));
        let (_, step) = feed(&mut r, &[":s CAP * LS :multi-prefix"]);
        assert!(matches!(step, Step::Failed(_)), "{step:?}");
    }

    #[test]
    fn external_sends_an_empty_response() {
        let (mut r, _) = Registration::new("a", "a", "x", 30, Some(Sasl::External));
        let (out, _) = feed(
            &mut r,
            &[":s CAP * LS :sasl", ":s CAP * ACK :sasl", "AUTHENTICATE +"],
        );
        assert_eq!(
            out,
            ["CAP REQ :sasl", "AUTHENTICATE EXTERNAL", "AUTHENTICATE +"]
        );
    }

    #[test]
    fn a_long_plain_response_goes_in_400_byte_chunks() {
        let sasl = Sasl::Plain {
            account: "a".repeat(150),
            password: "p".repeat(148),
        };
        // 150 + 1 + 150 + 1 + 148 = 450 bytes: 600 in base64.
        let (mut r, _) = Registration::new("a", "a", "x", 30, Some(sasl));
        let (out, _) = feed(
            &mut r,
            &[":s CAP * LS :sasl", ":s CAP * ACK :sasl", "AUTHENTICATE +"],
        );
        let chunks: Vec<&String> = out
            .iter()
            .filter(|l| l.starts_with("AUTHENTICATE ") && l.len() > 20)
            .collect();
        assert_eq!(chunks.len(), 2);
        assert_eq!(chunks[0].len(), "AUTHENTICATE ".len() + 400);
        assert_eq!(chunks[1].len(), "AUTHENTICATE ".len() + 200);
        // Exactly 400 bytes: an empty `+` closes it.
        let sasl = Sasl::Plain {
            account: "a".repeat(100),
            password: "p".repeat(98),
        };
        let (mut r, _) = Registration::new("a", "a", "x", 30, Some(sasl));
        let (out, _) = feed(
            &mut r,
            &[":s CAP * LS :sasl", ":s CAP * ACK :sasl", "AUTHENTICATE +"],
        );
        assert_eq!(out.last().map(String::as_str), Some("AUTHENTICATE +"));
    }

    #[test]
    fn a_taken_nick_gets_an_underscore_within_the_length() {
        let (mut r, _) = Registration::new("alice", "alice", "x", 6, None);
        let (out, _) = feed(&mut r, &[":s 433 * alice :Nickname is already in use"]);
        assert_eq!(out, ["NICK alice_"]);
        let (out, _) = feed(&mut r, &[":s 433 * alice_ :Nickname is already in use"]);
        assert_eq!(out, ["NICK alic_2"]);
        let (_, step) = feed(&mut r, &[":s 001 alic_2 :Welcome"]);
        assert_eq!(step, Step::Welcome("alic_2".into()));
        // Not forever.
        let (mut r, _) = Registration::new("bob", "bob", "x", 30, None);
        let taken = ":s 433 * bob :Nickname is already in use";
        let (_, step) = feed(&mut r, &[taken; 10]);
        assert_eq!(step, Step::Failed("no free nick like bob".into()));
    }

    #[test]
    fn isupport_tells_whether_the_server_has_monitor() {
        let (mut r, _) = Registration::new("a", "a", "x", 30, None);
        feed(
            &mut r,
            &[":s 005 a AWAYLEN=200 CASEMAPPING=rfc1459 :are supported by this server"],
        );
        assert_eq!(r.monitor, None);
        feed(
            &mut r,
            &[":s 005 a MAXTARGETS=20 MONITOR=30 NICKLEN=30 :are supported by this server"],
        );
        assert_eq!(r.monitor, Some(30));
    }
}
