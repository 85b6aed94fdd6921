//! The operator's command line: argument types and the commands that need no
//! running server.

use std::io::{Read, Write};
use std::path::PathBuf;

use bytes::Bytes;
use clap::{Parser, Subcommand};

use crate::proto::sip::{Framing, Limits, Message, SipError};

/// Parley: an IM federation gateway (SIP/SIMPLE core).
#[derive(Debug, Parser)]
#[command(name = "parley", version, about)]
pub struct Cli {
    /// The configuration file. Without it: $PARLEY_CONFIG, then
    /// /etc/parley/parley.toml, then ./config/parley.toml, then the default
    /// built into Parley.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server.
    Run,
    /// Print the live state of a running Parley through its admin API.
    Status,
    /// Check a configuration as `parley run` would (the TOML, every value,
    /// the files it names, the listeners) and print what it would listen on.
    CheckConfig {
        /// The file (else `--config` and the search path).
        file: Option<PathBuf>,
    },
    /// Provision users of the local domains (stored as digest HA1 values).
    User {
        /// The user tool to run.
        #[command(subcommand)]
        command: UserCommand,
    },
    /// SIP message tools.
    Sip {
        /// The SIP tool to run.
        #[command(subcommand)]
        command: SipCommand,
    },
    /// Who may watch whom: presence authorization rules. A running
    /// server applies a change within a second.
    Presence {
        /// The rule tool to run.
        #[command(subcommand)]
        command: PresenceCommand,
    },
    /// The compliance archive.
    Archive {
        /// The archive tool to run.
        #[command(subcommand)]
        command: ArchiveCommand,
    },
    /// The chat rooms of the conference domain, through the admin API of
    /// a running Parley.
    Room {
        /// The room tool to run.
        #[command(subcommand)]
        command: RoomCommand,
    },
    /// The bindings of a running Parley (all, or one user's), through its
    /// admin API; `registrations remove USER [CONTACT]` ends them.
    #[command(args_conflicts_with_subcommands = true)]
    Registrations {
        /// Only this user, `user@domain`.
        user: Option<String>,
        /// End bindings instead of listing them.
        #[command(subcommand)]
        command: Option<RegistrationsCommand>,
    },
    /// Show the log filter of a running Parley, or change it at once
    /// (`debug`, `info,parley=debug` …) until the next reload or restart.
    LogLevel {
        /// The new filter.
        level: Option<String>,
    },
    /// Make a running Parley read its configuration file again (as SIGHUP
    /// does) and say what changed and what needs a restart.
    Reload,
    /// Copy the database to FILE, consistently, while Parley runs
    /// (SQLite `VACUUM INTO`).
    Backup {
        /// Where the copy goes; it must not exist yet.
        file: PathBuf,
    },
    /// The store: move a node's data into a cluster's database.
    Store {
        /// The store tool to run.
        #[command(subcommand)]
        command: StoreCommand,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff; `parley man | man -l -`), or write
    /// it and one page per subcommand (parley-run.1 …) into a directory.
    Man {
        /// Write every page into this directory.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Presence document (PIDF) tools.
    Pidf {
        /// The PIDF tool to run.
        #[command(subcommand)]
        command: PidfCommand,
    },
}

/// `parley store …`
#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Copy everything (users, bindings, kept messages, presence rules,
    /// the archive, rooms) from one store into an empty one, then count
    /// both to show nothing was lost. Stop Parley first.
    Migrate {
        /// The source: `sqlite:PATH` (default: the configuration's database).
        #[arg(long)]
        from: Option<String>,
        /// The destination: `postgres://user@host/database` (default: the
        /// configuration's `[store] url`).
        #[arg(long)]
        to: Option<String>,
    },
}

/// `parley registrations remove …`
#[derive(Debug, Subcommand)]
pub enum RegistrationsCommand {
    /// End a user's bindings: all, or the one with this contact URI.
    Remove {
        /// The user, `user@domain`.
        user: String,
        /// The contact URI of one binding.
        contact: Option<String>,
    },
}

/// `parley room …`
#[derive(Debug, Subcommand)]
pub enum RoomCommand {
    /// The rooms, with who is in them.
    List,
    /// Make a room (its name, or its full address).
    Create {
        /// The room.
        room: String,
        /// Its settings.
        #[command(flatten)]
        settings: RoomSettings,
    },
    /// Change a room's settings or subject.
    Set {
        /// The room.
        room: String,
        /// Its settings.
        #[command(flatten)]
        settings: RoomSettings,
    },
    /// Close a room: everyone in it is told and removed.
    Close {
        /// The room.
        room: String,
    },
    /// Remove a member from a room.
    Kick {
        /// The room.
        room: String,
        /// The member's nickname.
        nick: String,
    },
}

/// A room's settings on the command line; each is optional.
#[derive(Debug, Default, clap::Args)]
pub struct RoomSettings {
    /// The subject.
    #[arg(long)]
    pub subject: Option<String>,
    /// Listed in the directory.
    #[arg(long)]
    pub public: Option<bool>,
    /// Only members may enter.
    #[arg(long)]
    pub members_only: Option<bool>,
    /// Kept when empty and across restarts.
    #[arg(long)]
    pub persistent: Option<bool>,
    /// Only participants may speak.
    #[arg(long)]
    pub moderated: Option<bool>,
    /// Needed to enter (empty removes it).
    #[arg(long)]
    pub password: Option<String>,
    /// Past messages kept and replayed.
    #[arg(long)]
    pub history: Option<usize>,
    /// Members present at most.
    #[arg(long)]
    pub max_members: Option<usize>,
    /// Who owns the room (user@domain), on creation.
    #[arg(long)]
    pub owner: Option<String>,
}

impl RoomSettings {
    fn json(&self, address: Option<&str>) -> serde_json::Value {
        let mut m = serde_json::Map::new();
        let mut put = |k: &str, v: serde_json::Value| {
            m.insert(k.to_string(), v);
        };
        if let Some(a) = address {
            put("address", a.into());
        }
        if let Some(v) = &self.subject {
            put("subject", v.as_str().into());
        }
        for (k, v) in [
            ("public", self.public),
            ("members_only", self.members_only),
            ("persistent", self.persistent),
            ("moderated", self.moderated),
        ] {
            if let Some(v) = v {
                put(k, v.into());
            }
        }
        if let Some(v) = &self.password {
            put("password", v.as_str().into());
        }
        if let Some(v) = self.history {
            put("history", v.into());
        }
        if let Some(v) = self.max_members {
            put("max_members", v.into());
        }
        if let Some(v) = &self.owner {
            put("owner", v.as_str().into());
        }
        serde_json::Value::Object(m)
    }
}

/// `parley archive …`
#[derive(Debug, Subcommand)]
pub enum ArchiveCommand {
    /// Archived messages, newest first, matching every condition given.
    Search {
        /// Sender or recipient, user@domain.
        #[arg(long)]
        address: Option<String>,
        /// Peer, sender or recipient domain.
        #[arg(long)]
        domain: Option<String>,
        /// From this time on (Unix seconds or RFC 3339, UTC).
        #[arg(long)]
        since: Option<String>,
        /// Before this time (Unix seconds or RFC 3339, UTC).
        #[arg(long)]
        until: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: i64,
        /// Print each message's CPIM too.
        #[arg(long)]
        full: bool,
    },
}

/// `parley presence …`
#[derive(Debug, Subcommand)]
pub enum PresenceCommand {
    /// Let WATCHER see PRESENTITY (approves a pending watcher).
    Allow(RuleArgs),
    /// Refuse WATCHER: its subscriptions end and new ones get 403.
    Deny(RuleArgs),
    /// Accept WATCHER but show it only "closed" (polite blocking).
    Block(RuleArgs),
    /// Remove the rule: the default policy applies again.
    Forget(RuleArgs),
    /// List the rules.
    Rules,
}

/// The arguments of one rule.
#[derive(Debug, clap::Args)]
pub struct RuleArgs {
    /// The local user watched, `user@domain`.
    pub presentity: String,
    /// The watcher, `user@domain`, or `*` for everyone without a rule.
    pub watcher: String,
}

/// `parley pidf …`
#[derive(Debug, Subcommand)]
pub enum PidfCommand {
    /// Check a PIDF document (RFC 3863, with RPID and CIPID); print it in
    /// canonical form, or say in one line why it is refused (exit 1).
    Parse {
        /// File holding the document (standard input when absent).
        file: Option<PathBuf>,
    },
}

/// `parley sip …`
#[derive(Debug, Subcommand)]
pub enum SipCommand {
    /// Parse a SIP message; print it as Parley would forward it, or say why it is refused.
    Parse {
        /// File holding one message (standard input when absent).
        file: Option<PathBuf>,
        /// Treat the input as received on TCP/TLS, where Content-Length is mandatory.
        #[arg(long)]
        stream: bool,
    },
}

/// `parley user …`
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a user, or set a new password for one.
    Add {
        /// The address, `user@domain`; the domain must be a local one.
        address: String,
        /// The password. Without it: asked twice on a terminal with echo
        /// off, or one line read from a pipe. Only its HA1 values are kept.
        #[arg(long)]
        password: Option<String>,
    },
    /// List the users.
    List,
    /// Remove a user.
    Remove {
        /// The address, `user@domain`.
        address: String,
    },
}

/// A new password: asked twice on the terminal with echo off, or one line
/// of standard input when it is a pipe (for scripts).
fn read_password(address: &str) -> anyhow::Result<String> {
    use std::io::IsTerminal;
    if !std::io::stdin().is_terminal() {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
        return Ok(line.trim_end_matches(['\r', '\n']).to_string());
    }
    let first = rpassword::prompt_password(format!("Password for {address}: "))?;
    let again = rpassword::prompt_password("Again: ")?;
    if first != again {
        anyhow::bail!("the passwords differ; nothing changed");
    }
    Ok(first)
}

/// Percent-encodes everything but RFC 3986's unreserved characters, for
/// a path segment or a query value.
fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Splits `user@domain`, checking the user part and that the domain is local.
fn user_address<'a>(
    address: &'a str,
    config: &crate::config::Config,
) -> anyhow::Result<(&'a str, &'a str)> {
    let (user, domain) = address
        .split_once('@')
        .filter(|(u, d)| !u.is_empty() && !d.is_empty())
        .ok_or_else(|| anyhow::anyhow!("{address:?} is not user@domain"))?;
    let unreserved = |c: char| c.is_ascii_alphanumeric() || "-_.!~*'()&=+$,;?/".contains(c);
    if !user.chars().all(unreserved) {
        anyhow::bail!("{user:?} holds characters a SIP user part cannot");
    }
    if !config.is_local_domain(domain) {
        anyhow::bail!(
            "{domain} is not a local domain (domains = {:?})",
            config.domains
        );
    }
    Ok((user, domain))
}

fn user_command(config: &crate::config::Config, command: UserCommand) -> anyhow::Result<i32> {
    use crate::store::User;
    let (runtime, store) = open_store(config)?;
    runtime.block_on(async {
        match command {
            UserCommand::Add {
                address, password, ..
            } => {
                let (user, domain) = user_address(&address, config)?;
                let password = match password {
                    Some(p) => p,
                    None => read_password(&address)?,
                };
                if password.is_empty() {
                    anyhow::bail!("the password is empty");
                }
                store
                    .put_user(&User::with_password(user, domain, &password))
                    .await?;
                println!("{user}@{domain}: added");
                Ok(0)
            }
            UserCommand::List => {
                for u in store.users().await? {
                    println!("{}@{}", u.username, u.domain);
                }
                Ok(0)
            }
            UserCommand::Remove { address, .. } => {
                let (user, domain) = user_address(&address, config)?;
                // A running Parley ends the user's bindings and
                // subscriptions too; without one, the database is enough.
                let path = format!("/api/v1/users/{}", url_encode(&format!("{user}@{domain}")));
                match api(config, "DELETE", &path, None) {
                    Ok((200, v)) => {
                        println!(
                            "{user}@{domain}: removed ({} binding(s) and {} subscription(s) ended)",
                            v["bindings"], v["subscriptions"]
                        );
                        return Ok(0);
                    }
                    Ok((404, _)) => {
                        println!("{user}@{domain}: no such user");
                        return Ok(1);
                    }
                    Ok((code, v)) => {
                        anyhow::bail!("HTTP {code}: {}", v["error"].as_str().unwrap_or("error"))
                    }
                    Err(_) => {}
                }
                let aor = format!("{user}@{}", domain.to_ascii_lowercase());
                for b in store.bindings().await? {
                    if b.aor == aor {
                        store.remove_binding(&b.aor, &b.uri, b.reg_id).await?;
                    }
                }
                if store.remove_user(user, domain).await? {
                    println!("{user}@{domain}: removed");
                    Ok(0)
                } else {
                    println!("{user}@{domain}: no such user");
                    Ok(1)
                }
            }
        }
    })
}

/// A runtime for the store's calls, and the store itself: what every
/// command that edits stored state starts with.
fn open_store(
    config: &crate::config::Config,
) -> anyhow::Result<(
    tokio::runtime::Runtime,
    std::sync::Arc<dyn crate::store::Store>,
)> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let store = runtime.block_on(crate::store::open(&config.store, &config.sqlite_path()))?;
    Ok((runtime, store))
}

fn presence_command(
    config: &crate::config::Config,
    command: PresenceCommand,
) -> anyhow::Result<i32> {
    let (runtime, store) = open_store(config)?;
    runtime.block_on(async {
        let checked = |a: &RuleArgs| -> anyhow::Result<(String, String)> {
            let (user, domain) = user_address(&a.presentity, config)?;
            let watcher = a.watcher.trim().to_ascii_lowercase();
            if watcher != "*"
                && !watcher
                    .split_once('@')
                    .is_some_and(|(u, d)| !u.is_empty() && !d.is_empty())
            {
                anyhow::bail!("the watcher must be user@domain or *");
            }
            Ok((format!("{user}@{domain}"), watcher))
        };
        let (args, decision) = match &command {
            PresenceCommand::Allow(a) => (a, "allow"),
            PresenceCommand::Deny(a) => (a, "deny"),
            PresenceCommand::Block(a) => (a, "polite-block"),
            PresenceCommand::Forget(a) => {
                let (p, w) = checked(a)?;
                let removed = store.remove_presence_rule(&p, &w).await?;
                println!(
                    "{p} watched by {w}: {}",
                    if removed { "rule removed" } else { "no rule" }
                );
                return Ok(if removed { 0 } else { 1 });
            }
            PresenceCommand::Rules => {
                for (p, w, d) in store.presence_rules().await? {
                    println!("{p}\t{w}\t{d}");
                }
                return Ok(0);
            }
        };
        let (p, w) = checked(args)?;
        store.put_presence_rule(&p, &w, decision).await?;
        println!("{p} watched by {w}: {decision}");
        Ok(0)
    })
}

/// Outcome of `parley sip parse`: the printed message or the one-line fault.
pub fn sip_parse(input: &[u8], stream: bool, limits: &Limits) -> Result<Vec<u8>, SipError> {
    let limits = *limits;
    let framing = if stream {
        Framing::Stream
    } else {
        Framing::Datagram
    };
    let mut msg = Message::parse(crlf_header_section(input), framing, &limits)?;
    msg.validate(&limits)?;
    msg.ensure_content_length();
    Ok(msg.to_bytes())
}

/// A message typed in an editor has LF line ends; SIP needs CRLF. When the
/// input holds no CR at all, the header section (up to the first empty line)
/// is converted and the body left as it is.
fn crlf_header_section(input: &[u8]) -> Bytes {
    if input.contains(&b'\r') {
        return Bytes::copy_from_slice(input);
    }
    let head_end = memchr::memmem::find(input, b"\n\n").map_or(input.len(), |i| i + 2);
    let mut out = Vec::with_capacity(input.len() + 64);
    for &c in &input[..head_end] {
        if c == b'\n' {
            out.push(b'\r');
        }
        out.push(c);
    }
    out.extend_from_slice(&input[head_end..]);
    Bytes::from(out)
}

/// Runs a parsed command line; returns the process exit code.
pub fn run(cli: Cli) -> anyhow::Result<i32> {
    let config = || crate::config::Config::locate(cli.config.as_deref());
    match cli.command {
        Command::Run => {
            let config = config()?;
            config.check_files()?;
            crate::app::init_logging(&config);
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(config.workers())
                .enable_all()
                .build()?;
            runtime.block_on(async {
                let listeners = crate::app::Listeners::bind(&config).await?;
                crate::app::run(config, listeners, crate::app::signals()).await
            })?;
            Ok(0)
        }
        Command::Status => status_command(&config()?),
        Command::Room { command } => room_command(&config()?, command),
        Command::CheckConfig { file } => {
            let config = crate::config::Config::locate(file.as_deref().or(cli.config.as_deref()))?;
            config.check_files()?;
            println!("{}: ok", config.origin());
            for l in &config.sip.listen {
                let note = match l.transport {
                    crate::proto::sip::Transport::Tls => {
                        let files = config.cert_files();
                        if files.self_made {
                            format!(" (self-signed certificate in {})", files.cert.display())
                        } else {
                            format!(" (certificate {})", files.cert.display())
                        }
                    }
                    _ => String::new(),
                };
                println!("listen {} {}{note}", l.transport, l.address);
            }
            let x = &config.xmpp;
            if x.enabled {
                let auth = if config.sip.tls.ca_file.is_some() {
                    "SASL EXTERNAL or dialback"
                } else {
                    "dialback"
                };
                let tls = if x.require_tls {
                    "STARTTLS required"
                } else {
                    "STARTTLS optional"
                };
                if let Some(a) = x.listen {
                    println!("listen xmpp-s2s {a} ({tls}, {auth})");
                }
                if let Some(a) = x.listen_tls {
                    println!("listen xmpp-s2s-tls {a} (direct TLS, {auth})");
                }
                for c in &x.component {
                    println!(
                        "component {} at {} ({})",
                        c.domain, c.server, c.server_domain
                    );
                }
            }
            if let Some(a) = config.admin.listen.filter(|_| config.admin.enabled) {
                println!("listen admin http://{a}/");
            }
            for r in &config.route {
                println!("route {} via {}", r.domain, r.via);
            }
            Ok(0)
        }
        Command::User { command } => user_command(&config()?, command),
        Command::Registrations { user, command } => {
            registrations_command(&config()?, user, command)
        }
        Command::LogLevel { level } => {
            let config = config()?;
            let (code, v) = match &level {
                Some(l) => {
                    crate::config::check_log_filter(l).map_err(|e| anyhow::anyhow!("level {e}"))?;
                    api(
                        &config,
                        "PUT",
                        "/api/v1/log-level",
                        Some(&serde_json::json!({"level": l})),
                    )?
                }
                None => api(&config, "GET", "/api/v1/log-level", None)?,
            };
            if code != 200 {
                anyhow::bail!("HTTP {code}: {}", v["error"].as_str().unwrap_or("error"));
            }
            println!("{}", v["level"].as_str().unwrap_or(""));
            Ok(0)
        }
        Command::Reload => {
            let (code, v) = api(&config()?, "POST", "/api/v1/reload", None)?;
            if code != 200 {
                anyhow::bail!("HTTP {code}: {}", v["error"].as_str().unwrap_or("error"));
            }
            let list = |k: &str| {
                v[k].as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|s| s.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    })
                    .unwrap_or_default()
            };
            println!(
                "reloaded: {}",
                non_empty(list("applied"), "nothing changed")
            );
            if v["certificate"].as_bool() == Some(true) {
                println!("TLS certificate: replaced");
            }
            let restart = list("restart");
            if !restart.is_empty() {
                println!("changed, needing a restart: {restart}");
            }
            Ok(0)
        }
        Command::Store {
            command: StoreCommand::Migrate { from, to },
        } => {
            let config = config()?;
            let from = from.unwrap_or_else(|| format!("sqlite:{}", config.sqlite_path().display()));
            let Some(to) = to.or_else(|| config.store.url.clone()) else {
                anyhow::bail!("--to postgres://… is needed (or [store] url in the configuration)");
            };
            if from == to {
                anyhow::bail!("--from and --to name the same store");
            }
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                let source = crate::store::open_url(&from).await?;
                let target = crate::store::open_url(&to).await?;
                let copied = crate::store::copy(&*source, &*target).await?;
                // Counted again on both sides: what was copied is there.
                let (a, b) = (
                    crate::store::census(&*source).await?,
                    crate::store::census(&*target).await?,
                );
                for (what, n) in &copied.counts {
                    println!("{what:<20} {n:>8}");
                }
                if a != b {
                    anyhow::bail!("the counts differ after copying: {a:?} in the source, {b:?} in the destination");
                }
                println!(
                    "{} -> {}: everything copied and counted",
                    from,
                    crate::store::postgres::redacted(&to)
                );
                Ok(0)
            })
        }
        Command::Backup { file } => {
            let config = config()?;
            let (runtime, store) = open_store(&config)?;
            let bytes = runtime.block_on(store.backup(&file))?;
            println!(
                "{} copied to {} ({bytes} bytes)",
                config.sqlite_path().display(),
                file.display()
            );
            Ok(0)
        }
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(shell, &mut Cli::command(), "parley", &mut std::io::stdout());
            Ok(0)
        }
        Command::Man { dir } => {
            let pages = man_pages()?;
            match dir {
                None => std::io::stdout().write_all(&pages[0].1)?,
                Some(dir) => {
                    std::fs::create_dir_all(&dir)?;
                    for (name, page) in &pages {
                        std::fs::write(dir.join(name), page)?;
                    }
                    println!("{} pages written to {}", pages.len(), dir.display());
                }
            }
            Ok(0)
        }
        Command::Archive { command } => archive_command(&config()?, command),
        Command::Presence { command } => presence_command(&config()?, command),
        Command::Pidf {
            command: PidfCommand::Parse { file },
        } => {
            let limits = crate::proto::pidf::Limits::default();
            let input = read_input(file.as_deref(), limits.xml.max_bytes)?;
            match crate::proto::pidf::Presence::parse(&input, &limits) {
                Ok(doc) => {
                    print!("{}", doc.to_xml());
                    Ok(0)
                }
                Err(e) => {
                    println!("error: {e}");
                    Ok(1)
                }
            }
        }
        Command::Sip {
            command: SipCommand::Parse { file, stream },
        } => {
            let limits = match &cli.config {
                Some(path) => crate::config::Config::load(path)?.sip.limits,
                None => Limits::default(),
            };
            let input = read_input(file.as_deref(), limits.max_message_size)?;
            match sip_parse(&input, stream, &limits) {
                Ok(out) => {
                    std::io::stdout().write_all(&out)?;
                    Ok(0)
                }
                Err(e) => {
                    println!("error: {e}");
                    Ok(1)
                }
            }
        }
    }
}

/// Reads a file, or standard input without one, up to one byte more than
/// `limit`, so an oversized input is reported as such without being
/// read whole.
fn read_input(file: Option<&std::path::Path>, limit: usize) -> anyhow::Result<Vec<u8>> {
    let cap = limit as u64 + 1;
    let mut input = Vec::new();
    match file {
        Some(path) => {
            std::fs::File::open(path)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?
                .take(cap)
                .read_to_end(&mut input)?;
        }
        None => {
            std::io::stdin().lock().take(cap).read_to_end(&mut input)?;
        }
    }
    Ok(input)
}

/// One request to the admin API of the Parley that `config` describes:
/// the HTTP status and the JSON answer. A plain HTTP/1.1 request over
/// loopback: no client library.
fn api(
    config: &crate::config::Config,
    method: &str,
    path: &str,
    body: Option<&serde_json::Value>,
) -> anyhow::Result<(u16, serde_json::Value)> {
    use std::io::{Read, Write};
    let Some(addr) = config.admin.listen.filter(|_| config.admin.enabled) else {
        anyhow::bail!("the admin API is off in this configuration");
    };
    let token = match &config.admin.token {
        Some(t) => t.clone(),
        None => std::fs::read_to_string(crate::admin::token_file(config))
            .map_err(|e| {
                anyhow::anyhow!(
                    "no admin token ({}): {e}",
                    crate::admin::token_file(config).display()
                )
            })?
            .trim()
            .to_string(),
    };
    let mut s = std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(5))
        .map_err(|e| anyhow::anyhow!("Parley does not answer at {addr}: {e}"))?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))?;
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let code: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let v = if body.trim().is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_str(body)
            .map_err(|e| anyhow::anyhow!("not a JSON answer (HTTP {code}): {e}"))?
    };
    Ok((code, v))
}

/// The manual: `parley.1`, then a page per subcommand at every depth
/// (`parley-user-add.1`), as the pages name each other.
pub fn man_pages() -> std::io::Result<Vec<(String, Vec<u8>)>> {
    use clap::CommandFactory;
    fn walk(
        cmd: clap::Command,
        name: String,
        out: &mut Vec<(String, Vec<u8>)>,
    ) -> std::io::Result<()> {
        let cmd = cmd.name(name.clone()).bin_name(name.replace('-', " "));
        let mut page = Vec::new();
        clap_mangen::Man::new(cmd.clone()).render(&mut page)?;
        out.push((format!("{name}.1"), page));
        for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
            walk(sub.clone(), format!("{name}-{}", sub.get_name()), out)?;
        }
        Ok(())
    }
    let mut out = Vec::new();
    // Built, so the global --config shows on every page.
    let mut root = Cli::command();
    root.build();
    walk(root, "parley".into(), &mut out)?;
    Ok(out)
}

fn non_empty(s: String, otherwise: &str) -> String {
    if s.is_empty() {
        otherwise.to_string()
    } else {
        s
    }
}

/// `parley registrations [USER]` and `parley registrations remove USER
/// [CONTACT]`, through the admin API of the running Parley.
fn registrations_command(
    config: &crate::config::Config,
    user: Option<String>,
    command: Option<RegistrationsCommand>,
) -> anyhow::Result<i32> {
    if let Some(RegistrationsCommand::Remove { user, contact }) = command {
        let mut path = format!("/api/v1/registrations/{}", url_encode(&user));
        if let Some(c) = &contact {
            path.push_str(&format!("?contact={}", url_encode(c)));
        }
        let (code, v) = api(config, "DELETE", &path, None)?;
        if code == 404 {
            println!("{user}: no such binding");
            return Ok(1);
        }
        if code != 200 {
            anyhow::bail!("HTTP {code}: {}", v["error"].as_str().unwrap_or("error"));
        }
        for c in v["ended"].as_array().into_iter().flatten() {
            println!(
                "{}: ended {}",
                v["aor"].as_str().unwrap_or(""),
                c.as_str().unwrap_or("")
            );
        }
        return Ok(0);
    }
    let path = match &user {
        Some(u) => format!("/api/v1/registrations?user={}", url_encode(u)),
        None => "/api/v1/registrations".to_string(),
    };
    let (code, v) = api(config, "GET", &path, None)?;
    if code != 200 {
        anyhow::bail!("HTTP {code}: {}", v["error"].as_str().unwrap_or("error"));
    }
    let list = v.as_array().cloned().unwrap_or_default();
    println!(
        "{:<28} {:<44} {:<5} {:<22} {:>7}  USER AGENT",
        "USER", "CONTACT", "VIA", "SOURCE", "EXPIRES"
    );
    for b in &list {
        println!(
            "{:<28} {:<44} {:<5} {:<22} {:>6}s  {}",
            b["aor"].as_str().unwrap_or(""),
            b["contact"].as_str().unwrap_or(""),
            b["transport"].as_str().unwrap_or(""),
            b["source"].as_str().unwrap_or(""),
            b["expires_in"],
            b["user_agent"].as_str().unwrap_or("")
        );
    }
    eprintln!("{} binding(s)", list.len());
    Ok(0)
}

/// `parley room …` through the admin API.
fn room_command(config: &crate::config::Config, command: RoomCommand) -> anyhow::Result<i32> {
    let (code, v) = match &command {
        RoomCommand::List => api(config, "GET", "/api/v1/rooms", None)?,
        RoomCommand::Create { room, settings } => api(
            config,
            "POST",
            "/api/v1/rooms",
            Some(&settings.json(Some(room))),
        )?,
        RoomCommand::Set { room, settings } => api(
            config,
            "PATCH",
            &format!("/api/v1/rooms/{}", url_encode(room)),
            Some(&settings.json(None)),
        )?,
        RoomCommand::Close { room } => api(
            config,
            "DELETE",
            &format!("/api/v1/rooms/{}", url_encode(room)),
            None,
        )?,
        RoomCommand::Kick { room, nick } => api(
            config,
            "DELETE",
            &format!(
                "/api/v1/rooms/{}/members/{}",
                url_encode(room),
                url_encode(nick)
            ),
            None,
        )?,
    };
    if !(200..300).contains(&code) {
        anyhow::bail!("HTTP {code}: {}", v["error"].as_str().unwrap_or("error"));
    }
    let print = |r: &serde_json::Value| {
        let flag = |k: &str, yes: &'static str, no: &'static str| {
            if r[k].as_bool().unwrap_or(false) {
                yes
            } else {
                no
            }
        };
        println!(
            "{}  [{} {} {} {}{}]  {}",
            r["address"].as_str().unwrap_or(""),
            flag("public", "public", "hidden"),
            flag("members_only", "members-only", "open"),
            flag("persistent", "persistent", "temporary"),
            flag("moderated", "moderated", "unmoderated"),
            flag("password", " password", ""),
            r["subject"].as_str().unwrap_or(""),
        );
        for m in r["members"].as_array().into_iter().flatten() {
            println!(
                "    {:<20} {:<32} {:<12} {:<8} {}",
                m["nick"].as_str().unwrap_or(""),
                m["address"].as_str().unwrap_or(""),
                m["role"].as_str().unwrap_or(""),
                m["affiliation"].as_str().unwrap_or(""),
                m["network"].as_str().unwrap_or(""),
            );
        }
    };
    match command {
        RoomCommand::List => {
            let rooms = v["rooms"].as_array().cloned().unwrap_or_default();
            if rooms.is_empty() {
                println!("no rooms in {}", v["domain"].as_str().unwrap_or(""));
            }
            for r in &rooms {
                print(r);
            }
        }
        RoomCommand::Create { .. } | RoomCommand::Set { .. } => print(&v),
        RoomCommand::Close { room } => println!("{room}: closed"),
        RoomCommand::Kick { room, nick } => println!("{nick} removed from {room}"),
    }
    Ok(0)
}

/// `parley status`: GET /api/v1/status from the admin API and print it as
/// tables. A plain HTTP/1.1 request over loopback: no client library.
fn status_command(config: &crate::config::Config) -> anyhow::Result<i32> {
    let (code, v) = api(config, "GET", "/api/v1/status", None)?;
    if code != 200 {
        anyhow::bail!("HTTP {code}: {}", v["error"].as_str().unwrap_or("error"));
    }
    let domains: Vec<&str> = v["domains"]
        .as_array()
        .map(|a| a.iter().filter_map(|d| d.as_str()).collect())
        .unwrap_or_default();
    println!("{:<24} {}", "domains", domains.join(", "));
    for key in [
        "registrations",
        "addresses_of_record",
        "subscriptions",
        "offline_messages",
    ] {
        println!("{:<24} {}", key.replace('_', " "), v[key]);
    }
    println!();
    println!("{:<10} {:<10} {:>6}", "ADAPTER", "PROTOCOL", "UP");
    for a in v["adapters"].as_array().into_iter().flatten() {
        println!(
            "{:<10} {:<10} {:>6}",
            a["name"].as_str().unwrap_or(""),
            a["protocol"].as_str().unwrap_or(""),
            if a["up"].as_bool().unwrap_or(false) {
                "yes"
            } else {
                "no"
            }
        );
    }
    let networks: Vec<&serde_json::Value> = v["adapters"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|a| a["networks"].as_array().into_iter().flatten())
        .collect();
    if !networks.is_empty() {
        println!();
        println!(
            "{:<16} {:<28} {:>11} {:>8} {:>9} {:>9}",
            "NETWORK", "DOMAIN", "CONNECTIONS", "CHANNELS", "MSGS IN", "MSGS OUT"
        );
        for n in networks {
            println!(
                "{:<16} {:<28} {:>11} {:>8} {:>9} {:>9}",
                n["name"].as_str().unwrap_or(""),
                n["domain"].as_str().unwrap_or(""),
                n["connections"],
                n["channels"],
                n["messages_in"],
                n["messages_out"]
            );
        }
    }
    println!();
    println!(
        "{:<32} {:<10} {:<14} {:<5}",
        "FEDERATION LINK", "DIRECTION", "AUTH", "TLS"
    );
    for l in v["links"].as_array().into_iter().flatten() {
        println!(
            "{:<32} {:<10} {:<14} {:<5}",
            l["domain"].as_str().unwrap_or(""),
            l["direction"].as_str().unwrap_or(""),
            l["auth"].as_str().unwrap_or(""),
            if l["tls"].as_bool().unwrap_or(false) {
                "yes"
            } else {
                "no"
            }
        );
    }
    println!();
    println!("{:<24} {:>10}", "REFUSED (reason)", "COUNT");
    if let Some(map) = v["refusals"].as_object() {
        for (reason, n) in map {
            println!("{reason:<24} {n:>10}");
        }
    }
    println!();
    println!("{:<10} {:<12} {:>10}", "FROM", "TO", "MESSAGES");
    for r in v["routed"].as_array().into_iter().flatten() {
        println!(
            "{:<10} {:<12} {:>10}",
            r["source"].as_str().unwrap_or(""),
            r["destination"].as_str().unwrap_or(""),
            r["messages"]
        );
    }
    Ok(0)
}

fn archive_command(config: &crate::config::Config, command: ArchiveCommand) -> anyhow::Result<i32> {
    let ArchiveCommand::Search {
        address,
        domain,
        since,
        until,
        limit,
        full,
    } = command;
    let time = |v: Option<String>, what: &str| -> anyhow::Result<Option<i64>> {
        v.map(|t| {
            crate::proto::time::parse_time(&t).ok_or_else(|| {
                anyhow::anyhow!("--{what} {t:?}: Unix seconds or an RFC 3339 date expected")
            })
        })
        .transpose()
    };
    let query = crate::store::ArchiveQuery {
        address,
        domain,
        since: time(since, "since")?,
        until: time(until, "until")?,
        limit: limit.clamp(1, 10_000),
    };
    let (runtime, store) = open_store(config)?;
    eprintln!("searching the archive …");
    let rows = runtime.block_on(store.search_archive(&query))?;
    println!(
        "{:<20} {:<5} {:<5} {:<28} {:<28} {:<20} {:<12} DECISION",
        "TIME", "FROM", "TO", "SENDER", "RECIPIENT", "PEER", "AUTH"
    );
    for r in &rows {
        println!(
            "{:<20} {:<5} {:<5} {:<28} {:<28} {:<20} {:<12} {}",
            crate::proto::time::rfc3339(u64::try_from(r.at).unwrap_or(0)),
            r.source_protocol,
            r.destination_protocol,
            r.sender,
            r.recipient,
            r.peer_domain,
            r.auth,
            r.decision
        );
        if full {
            println!("{}\n", r.cpim.replace("\r\n", "\n    ").trim_end());
        }
    }
    eprintln!("{} message(s)", rows.len());
    Ok(0)
}
