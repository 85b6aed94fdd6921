//! Parley's configuration file (`config/parley.toml` is the embedded
//! default). Unknown keys are errors that name the key's path; values are
//! checked once, on load.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use std::sync::Arc;

use serde::Deserialize;

use crate::proto::sip::Limits;
use crate::proto::transaction::TimerConfig;

/// The default configuration, compiled in: `parley run` works from any
/// directory without a file.
pub const EMBEDDED: &str = include_str!("../config/parley.toml");

/// How the embedded default is named in messages.
pub const EMBEDDED_NAME: &str = "(embedded default config/parley.toml)";

/// Where a configuration file is looked for when none is named, in order.
pub const SEARCH_PATH: [&str; 2] = ["/etc/parley/parley.toml", "config/parley.toml"];

/// What a reload did: the settings put in force, those that changed but
/// need a restart, and whether the TLS certificate was replaced.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Reloaded {
    /// Sections whose changes are in force.
    pub applied: Vec<String>,
    /// Sections (or keys) that changed and take effect on restart.
    pub restart: Vec<String>,
    /// The certificate files held a new certificate, now presented.
    pub certificate: bool,
}

/// A setting a reload may change while Parley runs, read by copy.
#[derive(Debug, Default)]
pub struct Live<T: Copy>(std::sync::RwLock<T>);

impl<T: Copy> Live<T> {
    /// Holding `value`.
    pub fn new(value: T) -> Live<T> {
        Live(std::sync::RwLock::new(value))
    }

    /// The value now.
    pub fn get(&self) -> T {
        *self
            .0
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Puts a new value in force.
    pub fn set(&self, value: T) {
        *self
            .0
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = value;
    }
}

/// Why a configuration was refused. Each names the file and, when the
/// text is at hand, the line and column with the line itself and a caret
/// under the offending value.
#[derive(Debug)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    Read {
        /// The file.
        path: String,
        /// What the system said.
        reason: String,
    },
    /// The TOML is malformed or holds an unknown key or a value of the
    /// wrong type.
    Syntax {
        /// The file.
        path: String,
        /// The key's path (empty for a TOML syntax error) and what the
        /// TOML reader said.
        message: String,
        /// Where.
        at: Option<Location>,
    },
    /// A value is out of range, or names something that is not there.
    Value {
        /// The file.
        path: String,
        /// The dotted key.
        key: String,
        /// What is wrong with it.
        reason: String,
        /// Where.
        at: Option<Location>,
    },
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (path, at) = match self {
            ConfigError::Read { path, reason } => return write!(f, "cannot read {path}: {reason}"),
            ConfigError::Syntax { path, at, .. } | ConfigError::Value { path, at, .. } => {
                (path, at)
            }
        };
        write!(f, "{path}")?;
        if let Some(at) = at {
            write!(f, ":{}:{}", at.line, at.column)?;
        }
        match self {
            ConfigError::Syntax { message, .. } => write!(f, ": {message}")?,
            ConfigError::Value { key, reason, .. } => write!(f, ": {key} {reason}")?,
            ConfigError::Read { .. } => {}
        }
        if let Some(at) = at {
            write!(f, "\n{}", at.excerpt)?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// A place in a configuration file: 1-based line and column, and the line
/// with a caret under the span, as compilers show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The line, from 1.
    pub line: usize,
    /// The column in characters, from 1.
    pub column: usize,
    /// The line and the caret under it.
    pub excerpt: String,
}

impl Location {
    /// The location of the byte range `span` in `text`.
    pub fn of(text: &str, span: std::ops::Range<usize>) -> Location {
        let start = floor_char_boundary(text, span.start.min(text.len()));
        let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
        let line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
        let line = text[..start].matches('\n').count() + 1;
        let shown = text[line_start..line_end].trim_end_matches('\r');
        let column = text[line_start..start].chars().count() + 1;
        let end = floor_char_boundary(text, span.end.clamp(start, line_start + shown.len()));
        let width = text[start..end].chars().count().max(1);
        let gutter = " ".repeat(line.to_string().len());
        let excerpt = format!(
            "{gutter} |\n{line} | {shown}\n{gutter} | {}{}",
            " ".repeat(column - 1),
            "^".repeat(width)
        );
        Location {
            line,
            column,
            excerpt,
        }
    }

    /// Where the dotted `key` (`sip.limits.max_headers`, `sip.listen[1].address`,
    /// `irc.network[0].domain`) is set in `text`: its value, or the table
    /// that holds it, or the nearest table on its path; `None` when the
    /// text sets none of it (a default is at fault).
    pub fn of_key(text: &str, key: &str) -> Option<Location> {
        use toml::de::{DeTable, DeValue};
        let root = DeTable::parse(text).ok()?;
        let mut span = None;
        let mut table: &DeTable<'_> = root.get_ref();
        let mut segments = key.split('.').peekable();
        while let Some(segment) = segments.next() {
            let (name, index) = match segment.split_once('[') {
                Some((n, i)) => (n, i.trim_end_matches(']').parse::<usize>().ok()),
                None => (segment, None),
            };
            let Some(value) = table.get(name) else { break };
            let mut value = value;
            if let DeValue::Array(items) = value.get_ref() {
                let next = segments.peek().copied();
                let pick = match index {
                    Some(i) => items.get(i),
                    None => items
                        .iter()
                        .find(|v| {
                            next.is_some_and(|n| {
                                v.get_ref().as_table().is_some_and(|t| t.get(n).is_some())
                            })
                        })
                        .or_else(|| items.first()),
                };
                match pick {
                    Some(v) => value = v,
                    None => {
                        span = Some(value.span());
                        break;
                    }
                }
            }
            span = Some(value.span());
            match value.get_ref() {
                DeValue::Table(t) => table = t,
                _ => break,
            }
        }
        span.map(|s| Location::of(text, s))
    }
}

fn floor_char_boundary(text: &str, mut i: usize) -> usize {
    while i > 0 && !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `[sip]`: the SIP core.
    #[serde(default)]
    pub sip: SipConfig,
    /// `[log]`: logging.
    #[serde(default)]
    pub log: LogConfig,
    /// Where Parley keeps generated state (the self-made certificate, the
    /// SQLite database).
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
    /// The domains Parley is the registrar and proxy for. Requests to the
    /// addresses Parley listens on are local too.
    #[serde(default = "default_domains")]
    pub domains: Vec<String>,
    /// `[registrar]`: binding lifetimes.
    #[serde(default)]
    pub registrar: RegistrarConfig,
    /// `[auth]`: digest authentication.
    #[serde(default)]
    pub auth: AuthConfig,
    /// `[store]`: where durable state lives.
    #[serde(default)]
    pub store: StoreConfig,
    /// `[dns]`: how other domains are found (RFC 3263).
    #[serde(default)]
    pub dns: DnsConfig,
    /// `[[redirect]]`: answer with 301/302 and contacts instead of proxying.
    #[serde(default)]
    pub redirect: Vec<RedirectConfig>,
    /// `[proxy]`
    #[serde(default)]
    pub proxy: ProxyConfig,
    /// `[offline]`: store-and-forward of MESSAGE for users with no contact.
    #[serde(default)]
    pub offline: OfflineConfig,
    /// `[push]`: push notifications for suspended devices (RFC 8599).
    #[serde(default)]
    pub push: PushConfig,
    /// `[presence]`: the presence agent.
    #[serde(default)]
    pub presence: PresenceConfig,
    /// `[gateway]`: the domain policy applied to everything that crosses
    /// the company boundary.
    #[serde(default)]
    pub gateway: GatewayConfig,
    /// `[[route]]`: domains reached through an adapter whatever DNS says.
    #[serde(default)]
    pub route: Vec<RouteConfig>,
    /// `[xmpp]`: the XMPP adapter.
    #[serde(default)]
    pub xmpp: XmppConfig,
    /// `[admin]`: the operator's console (JSON API, metrics).
    #[serde(default)]
    pub admin: AdminConfig,
    /// `[archive]`: the compliance archive.
    #[serde(default)]
    pub archive: ArchiveConfig,
    /// `[msrp]`: the MSRP relay (RFC 4976) for session-mode chat.
    #[serde(default)]
    pub msrp: MsrpConfig,
    /// `[rooms]`: the multiparty chat rooms Parley hosts.
    #[serde(default)]
    pub rooms: RoomsConfig,
    /// `[irc]`: IRC networks bridged in (`[[irc.network]]`).
    #[serde(default)]
    pub irc: IrcConfig,
    /// `[cluster]`: several nodes on one PostgreSQL store.
    #[serde(default)]
    pub cluster: ClusterConfig,
    /// The file this configuration was read from (for reloads).
    #[serde(skip)]
    pub source: Option<PathBuf>,
    /// The text it was read from (to point at keys in later checks).
    #[serde(skip)]
    pub text: Option<Arc<str>>,
}

/// `[push]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PushConfig {
    /// Seconds a request for a suspended device waits for it to register
    /// again after the push; then 480 (and a MESSAGE is kept offline).
    pub wait_secs: u64,
    /// Put the message's text in the push payload (off: privacy first,
    /// the payload says only that something came and from whom).
    pub include_text: bool,
    /// `[[push.provider]]`: the push services, by the `pn-provider` value
    /// they serve. None: push is off.
    pub provider: Vec<PushProviderConfig>,
}

impl Default for PushConfig {
    fn default() -> Self {
        PushConfig {
            wait_secs: 30,
            include_text: false,
            provider: Vec::new(),
        }
    }
}

/// `[[push.provider]]`: an HTTP webhook (a push relay towards APNs or FCM,
/// or a UnifiedPush distributor).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushProviderConfig {
    /// The `pn-provider` value it serves (`apns`, `fcm`, `webpush`).
    pub name: String,
    /// Where the push request is POSTed (`https://host:port/path`, or
    /// `http://` to a relay on the same host or network).
    pub url: String,
    /// Trust anchors for an `https://` service's certificate (PEM); the
    /// system's (`/etc/ssl/certs/ca-certificates.crt`) when unset.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// A bearer token sent with each request.
    #[serde(default)]
    pub token: Option<String>,
    /// Milliseconds the service may take to answer.
    #[serde(default = "default_push_timeout")]
    pub timeout_ms: u64,
    /// Push requests per second at most (a burst of as many).
    #[serde(default = "default_push_rate")]
    pub per_second: u32,
}

impl PushProviderConfig {
    /// The webhook's host, port, path and whether it speaks TLS; `Err` for
    /// a URL Parley cannot use (`http://` and `https://` are spoken).
    pub fn endpoint(&self) -> Result<(String, u16, String, bool), String> {
        let (rest, tls) = match (
            self.url.strip_prefix("https://"),
            self.url.strip_prefix("http://"),
        ) {
            (Some(r), _) => (r, true),
            (None, Some(r)) => (r, false),
            _ => return Err(format!("{}: an http:// or https:// URL", self.url)),
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(':') || h.starts_with('[') => (
                h.trim_start_matches('[').trim_end_matches(']').to_string(),
                p.parse::<u16>()
                    .map_err(|_| format!("{}: bad port", self.url))?,
            ),
            _ => (authority.to_string(), if tls { 443 } else { 80 }),
        };
        if host.is_empty() {
            return Err(format!("{}: no host", self.url));
        }
        Ok((host, port, path.to_string(), tls))
    }
}

fn default_push_timeout() -> u64 {
    3000
}
fn default_push_rate() -> u32 {
    50
}

/// `[irc]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IrcConfig {
    /// The networks.
    pub network: Vec<IrcNetworkConfig>,
}

/// `[[irc.network]]`: one IRC network, whose nicks appear under `domain`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IrcNetworkConfig {
    /// Its name.
    pub name: String,
    /// The domain its nicks appear under (`irc.example.com`).
    pub domain: String,
    /// The server (`127.0.0.1:6667`).
    pub server: SocketAddr,
    /// More servers of the network, tried in turn when `server` does not
    /// take the connection.
    #[serde(default)]
    pub servers: Vec<SocketAddr>,
    /// The nick each user gets; `{user}` is the user's local part.
    #[serde(default = "default_nick_template")]
    pub nick_template: String,
    /// The realname of every connection.
    #[serde(default = "default_realname")]
    pub realname: String,
    /// The longest nick the network takes.
    #[serde(default = "default_max_nick")]
    pub max_nick: usize,
    /// A user's connection with nothing to carry this long is closed.
    #[serde(default = "default_irc_idle")]
    pub idle_timeout_secs: u64,
    /// How long connecting and registering may take.
    #[serde(default = "default_irc_connect")]
    pub connect_timeout_secs: u64,
    /// A server silent this long is sent a PING; silent as long again, the
    /// connection is given up (and reconnected when in channels).
    #[serde(default = "default_irc_keepalive")]
    pub keepalive_secs: u64,
    /// Connections to the network at most (one per user).
    #[serde(default = "default_irc_connections")]
    pub max_connections: usize,
    /// Flood control per connection: milliseconds one line costs (RFC
    /// 1459 §8.10: 2000) and lines in a burst (5); set them to the
    /// network's own limits.
    #[serde(default = "default_flood_interval")]
    pub flood_interval_ms: u64,
    /// Lines in a burst.
    #[serde(default = "default_flood_burst")]
    pub flood_burst: u32,
    /// How often a user's connection asks which nicks the user follows
    /// are on line (ISON), in seconds.
    #[serde(default = "default_presence_poll")]
    pub presence_poll_secs: u64,
    /// Connect with TLS; the server's certificate must name `server_name`
    /// and chain to `ca_file` (or to `[sip.tls] ca_file`).
    #[serde(default)]
    pub tls: bool,
    /// The name the server's certificate must carry (default: `domain`).
    #[serde(default)]
    pub server_name: Option<String>,
    /// Trust anchors for the server's certificate (PEM).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// How users with an `account` below log in to the network's
    /// services: `none`, `sasl` (SASL PLAIN while registering; use TLS) or
    /// `nickserv` (IDENTIFY once registered); or `external`, every user's
    /// connection logging in with Parley's certificate (SASL EXTERNAL).
    #[serde(default)]
    pub login: IrcLogin,
    /// `[[irc.network.account]]`: a Parley user's services account.
    #[serde(default)]
    pub account: Vec<IrcAccountConfig>,
    /// How text that is not UTF-8 is read: `windows-1252` (what most
    /// 8-bit Western clients send) or `latin1`.
    #[serde(default)]
    pub fallback_encoding: IrcEncoding,
}

/// `fallback_encoding` of `[[irc.network]]`.
#[derive(Debug, Clone, Copy, Deserialize, Default, PartialEq, Eq)]
pub enum IrcEncoding {
    /// Windows-1252.
    #[default]
    #[serde(rename = "windows-1252")]
    Windows1252,
    /// ISO 8859-1.
    #[serde(rename = "latin1")]
    Latin1,
}

/// `login` of `[[irc.network]]`.
#[derive(Debug, Clone, Copy, Deserialize, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum IrcLogin {
    /// No login.
    #[default]
    None,
    /// SASL PLAIN.
    Sasl,
    /// NickServ IDENTIFY.
    NickServ,
    /// SASL EXTERNAL: every connection presents Parley's own TLS
    /// certificate, and the services log it in to the account that
    /// certificate is registered to (the gateway's).
    External,
}

/// `[[irc.network.account]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IrcAccountConfig {
    /// The Parley user (`alice@example.com`).
    pub user: String,
    /// The account name on the network's services.
    pub name: String,
    /// Its password.
    pub password: String,
}

fn default_presence_poll() -> u64 {
    60
}

fn default_flood_interval() -> u64 {
    2000
}
fn default_flood_burst() -> u32 {
    5
}

fn default_nick_template() -> String {
    "{user}".into()
}
fn default_realname() -> String {
    "Parley user".into()
}
fn default_max_nick() -> usize {
    30
}
fn default_irc_keepalive() -> u64 {
    120
}
fn default_irc_idle() -> u64 {
    600
}
fn default_irc_connect() -> u64 {
    10
}
fn default_irc_connections() -> usize {
    100
}

/// Who may create a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RoomCreators {
    /// Users of Parley's own domains (by entering a room that does not
    /// exist yet).
    Local,
    /// Anyone the domain policy lets in.
    Anyone,
    /// Operators only (`parley room create`, the admin API).
    Operators,
}

/// `[rooms]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RoomsConfig {
    /// Host rooms at all.
    pub enabled: bool,
    /// The conference domain rooms live in (`dev@conference.example.com`);
    /// `conference.` and the first local domain when unset.
    pub domain: Option<String>,
    /// Who may create a room.
    pub create: RoomCreators,
    /// Rooms at most.
    pub max_rooms: usize,
    /// Members present in one room at most (a room's own maximum may be
    /// lower).
    pub max_members: usize,
    /// Past messages a room keeps and replays on entry, unless its own
    /// setting says fewer.
    pub history: usize,
    /// The largest room message, in bytes of text.
    pub max_message_bytes: usize,
    /// Entries into one room a minute at most; past it an entry is refused
    /// until the minute is over.
    pub joins_per_minute: u32,
    /// What waits for one member at most: a member whose link takes
    /// nothing while this many notices pile up is removed from the room.
    pub member_queue: usize,
    /// Deliveries in a row that a pager-mode member may miss before it is
    /// removed from the room.
    pub max_missed: u32,
    /// New rooms are kept when empty (and across restarts).
    pub persistent: bool,
}

impl Default for RoomsConfig {
    fn default() -> Self {
        RoomsConfig {
            enabled: true,
            domain: None,
            create: RoomCreators::Local,
            max_rooms: 1000,
            max_members: 1000,
            history: 20,
            max_message_bytes: 16384,
            joins_per_minute: 120,
            member_queue: 256,
            max_missed: 3,
            persistent: true,
        }
    }
}

impl RoomsConfig {
    /// The conference domain, lower case.
    pub fn domain(&self, domains: &[String]) -> String {
        self.domain.clone().map_or_else(
            || {
                format!(
                    "conference.{}",
                    domains.first().map_or("localhost", |d| d.as_str())
                )
            },
            |d| d.to_ascii_lowercase(),
        )
    }
}

/// `[msrp]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MsrpConfig {
    /// Run the relay.
    pub enabled: bool,
    /// MSRP over TLS (`msrps:`), with the certificate of `[sip.tls]`.
    pub listen_tls: Option<SocketAddr>,
    /// MSRP over TCP (`msrp:`).
    pub listen: Option<SocketAddr>,
    /// The host name in the relay's URIs; the listener's address when
    /// unset.
    pub host: Option<String>,
    /// Seconds an AUTH grants when the client asks for none.
    pub expires_secs: u64,
    /// The shortest Expires granted (423 below it).
    pub min_expires_secs: u64,
    /// The longest Expires granted.
    pub max_expires_secs: u64,
    /// Connections at most, in and out together.
    pub max_connections: usize,
    /// Connections from one address at most.
    pub max_per_source: usize,
    /// A connection with no session and no traffic this long is closed.
    pub idle_timeout_secs: u64,
    /// A connection that has neither authenticated nor carried a request
    /// the relay passed on this long after it opened is closed.
    pub auth_timeout_secs: u64,
    /// A peer that takes no bytes for this long is cut off.
    pub write_timeout_secs: u64,
    /// An outside MSRP relay (RFC 4976) the MSRP end of Parley's own chat
    /// sessions goes through: `msrp://host:port;tcp`. Parley authenticates
    /// to it with `outbound_relay_user` and `outbound_relay_password` and
    /// puts the Use-Path it grants first in each session's `a=path`.
    pub outbound_relay: Option<String>,
    /// The user Parley authenticates as to `outbound_relay`.
    pub outbound_relay_user: Option<String>,
    /// Its password.
    pub outbound_relay_password: Option<String>,
    /// Local users (`alice@example.com`) or domains (`example.com`) who
    /// prefer sessions: a chat from another network to them opens an
    /// INVITE + MSRP session instead of pager-mode MESSAGEs.
    pub prefer_sessions: Vec<String>,
    /// Limits on each message (`max_head`, `max_headers`, `max_path`,
    /// `max_chunk`, `max_message`).
    pub limits: crate::proto::msrp::MsrpLimits,
}

impl Default for MsrpConfig {
    fn default() -> Self {
        MsrpConfig {
            enabled: true,
            listen_tls: Some(SocketAddr::from(([127, 0, 0, 1], 2855))),
            listen: Some(SocketAddr::from(([127, 0, 0, 1], 2856))),
            host: None,
            expires_secs: 600,
            min_expires_secs: 60,
            max_expires_secs: 3600,
            max_connections: 1024,
            max_per_source: 64,
            idle_timeout_secs: 300,
            auth_timeout_secs: 30,
            write_timeout_secs: 30,
            outbound_relay: None,
            outbound_relay_user: None,
            outbound_relay_password: None,
            prefer_sessions: Vec::new(),
            limits: crate::proto::msrp::MsrpLimits::default(),
        }
    }
}

/// `[archive]`
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ArchiveConfig {
    /// What is archived.
    pub mode: ArchiveMode,
    /// Days an archived message is kept.
    pub retention_days: u32,
}

impl Default for ArchiveConfig {
    fn default() -> Self {
        ArchiveConfig {
            mode: ArchiveMode::CrossDomain,
            retention_days: 365,
        }
    }
}

/// `[archive] mode`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ArchiveMode {
    /// Every MESSAGE Parley routes.
    All,
    /// Messages that cross the company boundary (to or from another
    /// domain or network), and refusals of such messages.
    CrossDomain,
    /// Nothing.
    None,
}

/// `[admin]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// The console runs.
    pub enabled: bool,
    /// Where it listens (keep it on loopback or behind a proxy).
    pub listen: Option<SocketAddr>,
    /// The bearer token; without one, Parley makes one on first start and
    /// keeps it in `state_dir/admin-token`.
    pub token: Option<String>,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            enabled: true,
            listen: Some(SocketAddr::from(([127, 0, 0, 1], 8080))),
            token: None,
        }
    }
}

/// `[gateway]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewayConfig {
    /// Remote domains that may federate; empty means every domain not
    /// denied. `*.example.com` covers the subdomains of example.com.
    pub allow_domains: Vec<String>,
    /// Remote domains that may not federate (checked before the allow list).
    pub deny_domains: Vec<String>,
    /// The largest message content that crosses, in bytes.
    pub max_message_bytes: usize,
    /// MIME types of content allowed to cross (parameters ignored).
    pub content_types: Vec<String>,
    /// Messages per second one remote domain may send in (a burst of
    /// `rate_burst` allowed); 0 turns the limit off.
    pub rate_per_domain: u32,
    /// The burst of the rate limit.
    pub rate_burst: u32,
    /// Seconds a domain's classification (SIP, XMPP, unknown) is cached
    /// when DNS gave no TTL.
    pub classify_ttl_secs: u64,
    /// Seconds after a message was handed to a remote network during which
    /// a failure reported for it is believed; later ones are dropped.
    pub report_window_secs: u64,
    /// Failure reports sent to senders at once, per remote domain.
    pub report_burst: u32,
    /// Failure reports per minute, per remote domain, after the burst.
    pub reports_per_minute: u32,
    /// `[[gateway.domain]]`: per-domain security requirements.
    pub domain: Vec<DomainPolicyConfig>,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            allow_domains: Vec::new(),
            deny_domains: Vec::new(),
            max_message_bytes: 16384,
            content_types: [
                "text/plain",
                "message/cpim",
                "message/imdn+xml",
                "application/im-iscomposing+xml",
            ]
            .map(String::from)
            .to_vec(),
            rate_per_domain: 200,
            rate_burst: 400,
            classify_ttl_secs: 300,
            report_window_secs: 600,
            report_burst: 5,
            reports_per_minute: 6,
            domain: Vec::new(),
        }
    }
}

/// `[[gateway.domain]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DomainPolicyConfig {
    /// The remote domain (`*.example.com` for its subdomains).
    pub name: String,
    /// Links to and from it must be encrypted.
    #[serde(default)]
    pub require_tls: bool,
    /// Its servers must prove their name with a certificate (no dialback).
    #[serde(default)]
    pub require_certificate: bool,
    /// Other remote domains whose users may reach this one through Parley
    /// (`*` for all): for a bridged network such as IRC, the XMPP domains
    /// whose users may use it. Empty: only Parley's own users.
    #[serde(default)]
    pub bridge: Vec<String>,
}

/// `[[route]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// The domain.
    pub domain: String,
    /// `xmpp` (the XMPP adapter) or `sip` (RFC 3263 SIP federation).
    pub via: String,
}

/// `[xmpp]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct XmppConfig {
    /// The adapter runs (outbound federation, components, and the
    /// listener when one is set).
    pub enabled: bool,
    /// Where XMPP servers connect (RFC 6120 s2s); none: outbound only.
    pub listen: Option<SocketAddr>,
    /// Where XMPP servers connect with TLS from the first byte (XEP-0368,
    /// published as `_xmpps-server._tcp`); none by default.
    pub listen_tls: Option<SocketAddr>,
    /// STARTTLS is required on every s2s stream.
    pub require_tls: bool,
    /// The largest stanza accepted, in bytes.
    pub max_stanza_bytes: usize,
    /// Connecting, TLS and authentication, in milliseconds.
    pub connect_timeout_ms: u64,
    /// A stream silent this long is closed, in seconds.
    pub idle_timeout_secs: u64,
    /// An inbound stream that has not authenticated a domain this many
    /// seconds after connecting is closed.
    pub negotiation_timeout_secs: u64,
    /// Inbound s2s streams at most, from all servers together.
    pub max_inbound_streams: usize,
    /// Inbound s2s streams from one address at most.
    pub max_streams_per_source: usize,
    /// `[[xmpp.component]]`: XEP-0114 links to existing XMPP servers.
    pub component: Vec<ComponentConfig>,
}

impl Default for XmppConfig {
    fn default() -> Self {
        XmppConfig {
            enabled: true,
            listen: Some(SocketAddr::from(([127, 0, 0, 1], 5269))),
            listen_tls: None,
            require_tls: true,
            max_stanza_bytes: 65536,
            connect_timeout_ms: 10_000,
            idle_timeout_secs: 600,
            negotiation_timeout_secs: 30,
            max_inbound_streams: 1024,
            max_streams_per_source: 16,
            component: Vec::new(),
        }
    }
}

/// `[[xmpp.component]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComponentConfig {
    /// The XMPP server's component port.
    pub server: SocketAddr,
    /// The subdomain Parley serves as a component (`sip.example.com`).
    pub domain: String,
    /// The XMPP server's own domain; its users (and the domains in
    /// `remote_domains`) are reached through it.
    pub server_domain: String,
    /// The Parley domain the subdomain stands for (default: the first of
    /// `domains`).
    #[serde(default)]
    pub local_domain: Option<String>,
    /// The shared secret of the component.
    pub secret: String,
    /// More domains reached through this server.
    #[serde(default)]
    pub remote_domains: Vec<String>,
}

/// `[offline]`
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OfflineConfig {
    /// Keep MESSAGEs for known local users with no registered contact
    /// (202 Accepted) and deliver them when a contact registers.
    pub enabled: bool,
    /// Messages kept per user; beyond it a MESSAGE gets 480.
    pub max_per_user: u32,
    /// Messages kept from the senders of one domain, for all users; beyond
    /// it a MESSAGE gets 480.
    pub max_per_sender_domain: u32,
    /// Seconds a message is kept; then the sender is told it was not
    /// delivered.
    pub expiry_secs: u64,
}

impl Default for OfflineConfig {
    fn default() -> Self {
        OfflineConfig {
            enabled: true,
            max_per_user: 100,
            max_per_sender_domain: 10_000,
            expiry_secs: 7 * 86_400,
        }
    }
}

/// `[presence]`
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PresenceConfig {
    /// Seconds, for a SUBSCRIBE or PUBLISH without Expires.
    pub default_expires: u32,
    /// Shorter requests get 423 with Min-Expires.
    pub min_expires: u32,
    /// Longer requests are shortened to this.
    pub max_expires: u32,
    /// Who may watch a presentity that has no rule for the watcher:
    /// `allow` everyone, `local` watchers of the local domains (others
    /// wait, pending, until a rule allows them), or `pending` everyone.
    pub default_policy: DefaultPolicy,
    /// Subscriptions to one presentity at most (both packages).
    pub max_per_presentity: u32,
    /// Subscriptions from the watchers of one domain at most.
    pub max_per_watcher_domain: u32,
    /// Subscriptions from one source address at most.
    pub max_per_source: u32,
    /// Pending subscriptions of watchers of other domains (waiting for a
    /// rule) at most, in all.
    pub max_pending_outside: u32,
    /// Seconds a pending subscription of another domain's watcher lasts at
    /// most before it must be refreshed.
    pub pending_expires: u32,
}

/// `[presence] default_policy`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DefaultPolicy {
    /// Every watcher is allowed.
    Allow,
    /// Watchers of a local domain are allowed; others are pending.
    Local,
    /// Every watcher is pending until a rule allows it.
    Pending,
}

impl Default for PresenceConfig {
    fn default() -> Self {
        PresenceConfig {
            default_expires: 3600,
            min_expires: 60,
            max_expires: 7200,
            default_policy: DefaultPolicy::Local,
            max_per_presentity: 1000,
            max_per_watcher_domain: 5000,
            max_per_source: 2000,
            max_pending_outside: 1000,
            pending_expires: 300,
        }
    }
}

/// `[proxy]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProxyConfig {
    /// Timer C (RFC 3261 §16.8), seconds: an INVITE branch silent this long
    /// after its last provisional response is cancelled. More than 180.
    pub timer_c_secs: u64,
    /// Registrars (`host` or `host:port`, as in the Request-URI) Parley
    /// fronts as an RFC 5626 edge proxy: REGISTERs for them are relayed
    /// with a flow-token Path, and what comes back along it goes over the
    /// client's flow. Empty: Parley relays no REGISTER.
    pub edge_for: Vec<String>,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            timer_c_secs: 181,
            edge_for: Vec::new(),
        }
    }
}

/// `[[redirect]]`: one redirect rule. With `domain`, requests for users of
/// that domain are answered with their registered contacts (or with `to`
/// for another domain); with `user` (`name@domain`), requests for that
/// address are answered with `to`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedirectConfig {
    /// The domain the rule applies to.
    pub domain: Option<String>,
    /// The address the rule applies to.
    pub user: Option<String>,
    /// The contacts to answer with (SIP URIs); for a local domain, empty
    /// means the registered contacts.
    #[serde(default)]
    pub to: Vec<String>,
    /// 302 Moved Temporarily (default) or 301 Moved Permanently.
    #[serde(default = "default_redirect_status")]
    pub status: u16,
}

fn default_redirect_status() -> u16 {
    302
}

/// `[dns]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DnsConfig {
    /// The nameserver to ask (`127.0.0.1:5353`); the system's when absent.
    pub nameserver: Option<SocketAddr>,
    /// Milliseconds to wait for one answer.
    pub timeout_ms: u64,
}

impl Default for DnsConfig {
    fn default() -> Self {
        DnsConfig {
            nameserver: None,
            timeout_ms: 2000,
        }
    }
}

fn default_domains() -> Vec<String> {
    vec!["localhost".to_string()]
}

/// `[registrar]`, in seconds (RFC 3261 §10.2.1.1, §10.3 item 7).
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegistrarConfig {
    /// Shorter registrations are refused with 423 and Min-Expires.
    pub min_expires: u32,
    /// Longer registrations are shortened to this.
    pub max_expires: u32,
    /// Used when the REGISTER names no expiry.
    pub default_expires: u32,
    /// Bindings one address of record may hold at most (every flow of
    /// every instance counted).
    pub max_contacts: usize,
    /// Outbound flows (RFC 5626 reg-ids) one instance may hold at most.
    pub max_flows_per_instance: usize,
    /// Seconds between the keep-alives an outbound client should send on
    /// its flows (Flow-Timer, RFC 5626 §4.4.1); below `[sip]
    /// idle_timeout_secs`, or idle flows would be closed.
    pub flow_timer_secs: u32,
}

impl Default for RegistrarConfig {
    fn default() -> Self {
        RegistrarConfig {
            min_expires: 60,
            max_expires: 86_400,
            default_expires: 3_600,
            max_contacts: 16,
            max_flows_per_instance: 4,
            flow_timer_secs: 120,
        }
    }
}

/// `[auth]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Digest algorithms offered, in preference order (`SHA-512-256`,
    /// `SHA-256`, `MD5`); one challenge is sent for each.
    pub algorithms: Vec<String>,
    /// Seconds a nonce stays fresh; an older one gets `stale=true`.
    pub nonce_lifetime_secs: u64,
    /// REGISTER must be authenticated.
    pub registrar: bool,
    /// Requests from a local domain must be authenticated (407) before
    /// they are relayed.
    pub proxy: bool,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            // MD5 alone: the clients people have know only it, and some
            // give up on a challenge they do not know (config/parley.toml
            // says more); SHA-256 and SHA-512-256 are a config line away.
            algorithms: vec!["MD5".to_string()],
            nonce_lifetime_secs: 300,
            registrar: true,
            proxy: true,
        }
    }
}

/// `[cluster]`: this node's part in a cluster of nodes serving the same
/// domains on one PostgreSQL database (`[store] url`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// This node's name, different on every node; empty for a node on
    /// its own.
    pub node: String,
    /// Shared by the nodes: requests one node forwards to another (to a
    /// user whose connection the other holds) are signed with it.
    pub secret: String,
}

impl Config {
    /// True when this node is one of a cluster.
    pub fn clustered(&self) -> bool {
        !self.cluster.node.is_empty()
    }
}

/// `[store]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// The SQLite database file; `state_dir/parley.db` when absent.
    pub sqlite: Option<PathBuf>,
    /// A PostgreSQL database shared by several nodes
    /// (`postgres://user:password@host/db?sslmode=verify-full`), instead
    /// of SQLite.
    pub url: Option<String>,
}

impl Config {
    /// Worker threads to run: `sip.workers`, or one per core.
    pub fn workers(&self) -> usize {
        match self.sip.workers {
            0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
            n => n,
        }
    }

    /// Where the TLS certificate and key come from for this config
    /// (nothing is created here).
    pub fn cert_files(&self) -> CertFiles {
        match (&self.sip.tls.cert, &self.sip.tls.key) {
            (Some(cert), Some(key)) => CertFiles {
                cert: cert.clone(),
                key: key.clone(),
                self_made: false,
            },
            _ => {
                let dir = self.state_dir.join("tls");
                CertFiles {
                    cert: dir.join("cert.pem"),
                    key: dir.join("key.pem"),
                    self_made: true,
                }
            }
        }
    }

    /// The SQLite database file in use.
    pub fn sqlite_path(&self) -> PathBuf {
        self.store
            .sqlite
            .clone()
            .unwrap_or_else(|| self.state_dir.join("parley.db"))
    }

    /// True when `domain` is one Parley serves (without case).
    pub fn is_local_domain(&self, domain: &str) -> bool {
        self.domains.iter().any(|d| d.eq_ignore_ascii_case(domain))
    }
}

pub use crate::proto::sip::Transport;

/// Paths of the certificate and key in use, and whether Parley made them.
#[derive(Debug, Clone)]
pub struct CertFiles {
    /// Certificate chain (PEM).
    pub cert: PathBuf,
    /// Private key (PEM).
    pub key: PathBuf,
    /// True when made by Parley (self-signed).
    pub self_made: bool,
}

fn default_state_dir() -> PathBuf {
    PathBuf::from("var")
}

/// `[[sip.listen]]`: one address to listen on.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listen {
    /// `udp`, `tcp` or `tls`.
    pub transport: Transport,
    /// Address and port (`127.0.0.1:5060`, `[::1]:5061`).
    pub address: SocketAddr,
}

/// `[sip]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SipConfig {
    /// `[sip.limits]`: parser limits for every received message.
    #[serde(default)]
    pub limits: Limits,
    /// `[[sip.listen]]`: where to listen.
    #[serde(default = "default_listen")]
    pub listen: Vec<Listen>,
    /// `[sip.timers]`: RFC 3261 timer bases.
    #[serde(default)]
    pub timers: Timers,
    /// `[sip.tls]`: certificate and key.
    #[serde(default)]
    pub tls: TlsConfig,
    /// Open TCP/TLS connections at most.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Seconds a connection may stay silent before it is closed.
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout_secs: u64,
    /// Seconds graceful shutdown waits for transactions in flight.
    #[serde(default = "default_shutdown_grace")]
    pub shutdown_grace_secs: u64,
    /// Receive and send buffer of each UDP socket, in bytes (the kernel caps
    /// it at net.core.rmem_max / wmem_max). A burst larger than the buffer
    /// is lost and has to be retransmitted.
    #[serde(default = "default_udp_buffer")]
    pub udp_buffer_bytes: usize,
    /// Worker threads (and UDP readers per socket); 0 means one per core.
    #[serde(default)]
    pub workers: usize,
    /// Send a response to a multicast or broadcast Via maddr (RFC 3261
    /// §18.2.2); off, such responses go to the source address instead.
    #[serde(default)]
    pub multicast_responses: bool,
    /// `[sip.overload]`: how much work may wait before new requests are
    /// turned away with 503.
    #[serde(default)]
    pub overload: OverloadConfig,
    /// `[sip.connections]`: fairness between the clients of the stream
    /// transports.
    #[serde(default)]
    pub connections: ConnectionsConfig,
}

/// `[sip.connections]`: no one client can take the TCP and TLS transports
/// from the others.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConnectionsConfig {
    /// Connections Parley opens at most (a budget of their own, apart from
    /// `max_connections` for accepted ones).
    pub max_outbound: usize,
    /// Accepted connections from one address at most.
    pub max_per_source: usize,
    /// New connections one address may open per second (twice that at
    /// once).
    pub new_per_second: u32,
    /// Seconds a client has to send its first whole message's headers, and
    /// to finish any message once started.
    pub message_timeout_secs: u64,
    /// Seconds a TLS handshake may take.
    pub tls_handshake_timeout_secs: u64,
}

impl Default for ConnectionsConfig {
    fn default() -> Self {
        ConnectionsConfig {
            max_outbound: 1024,
            max_per_source: 64,
            new_per_second: 20,
            message_timeout_secs: 10,
            tls_handshake_timeout_secs: 10,
        }
    }
}

/// `[sip.overload]`: admission of new requests (RFC 3261 §21.5.4, RFC
/// 7339). Retransmissions of admitted transactions are never turned away.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OverloadConfig {
    /// Non-INVITE requests admitted and not yet answered at most; past it
    /// a new request gets 503 with Retry-After at once, statelessly.
    pub max_pending: usize,
    /// The longest a newly admitted request should wait, milliseconds: the
    /// bound on pending requests tightens to what the recent answer rate
    /// clears in this time.
    pub max_wait_ms: u32,
    /// Seconds in the Retry-After of that 503.
    pub retry_after_secs: u32,
    /// Above this share of `max_pending` (percent), upstream servers that
    /// announce RFC 7339 support (`oc` in their Via) are asked to send less.
    pub oc_threshold_percent: u32,
    /// How long such a request to send less holds, milliseconds.
    pub oc_validity_ms: u32,
}

impl Default for OverloadConfig {
    fn default() -> Self {
        OverloadConfig {
            max_pending: 2000,
            max_wait_ms: 250,
            retry_after_secs: 5,
            oc_threshold_percent: 50,
            oc_validity_ms: 2000,
        }
    }
}

impl Default for SipConfig {
    fn default() -> Self {
        SipConfig {
            limits: Limits::default(),
            listen: default_listen(),
            timers: Timers::default(),
            tls: TlsConfig::default(),
            max_connections: default_max_connections(),
            idle_timeout_secs: default_idle_timeout(),
            shutdown_grace_secs: default_shutdown_grace(),
            udp_buffer_bytes: default_udp_buffer(),
            workers: 0,
            multicast_responses: false,
            overload: OverloadConfig::default(),
            connections: ConnectionsConfig::default(),
        }
    }
}

fn default_listen() -> Vec<Listen> {
    let at = |transport, address: &str| Listen {
        transport,
        address: address
            .parse()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 5060))),
    };
    vec![
        at(Transport::Udp, "127.0.0.1:5060"),
        at(Transport::Tcp, "127.0.0.1:5060"),
        at(Transport::Tls, "127.0.0.1:5061"),
    ]
}

fn default_max_connections() -> usize {
    4096
}

fn default_idle_timeout() -> u64 {
    600
}

fn default_shutdown_grace() -> u64 {
    5
}

fn default_udp_buffer() -> usize {
    4 * 1024 * 1024
}

/// `[sip.timers]`, in milliseconds.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Timers {
    /// T1, the round-trip estimate.
    pub t1_ms: u64,
    /// T2, the longest retransmit interval.
    pub t2_ms: u64,
    /// T4, the longest a message stays in the network.
    pub t4_ms: u64,
}

impl Default for Timers {
    fn default() -> Self {
        Timers {
            t1_ms: 500,
            t2_ms: 4000,
            t4_ms: 5000,
        }
    }
}

impl Timers {
    /// The transaction layer's timer bases.
    pub fn config(&self) -> TimerConfig {
        TimerConfig {
            t1: Duration::from_millis(self.t1_ms),
            t2: Duration::from_millis(self.t2_ms),
            t4: Duration::from_millis(self.t4_ms),
        }
    }
}

/// `[sip.tls]`: PEM files; when both are absent a self-signed certificate
/// is made on first start and kept under the state directory.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Certificate chain (PEM).
    pub cert: Option<PathBuf>,
    /// Private key (PEM).
    pub key: Option<PathBuf>,
    /// Trust anchors (PEM) for connections Parley opens; without them
    /// Parley opens no TLS connection.
    pub ca_file: Option<PathBuf>,
}

/// `[log]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// A tracing filter (`info`, `parley=debug`); `RUST_LOG` wins when set.
    #[serde(default = "default_level")]
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: default_level(),
        }
    }
}

fn default_level() -> String {
    "info".into()
}

impl Config {
    /// Reads and checks a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: shown.clone(),
            reason: e.to_string(),
        })?;
        let mut config = Self::parse(&text, &shown)?;
        config.source = Some(path.to_path_buf());
        Ok(config)
    }

    /// The configuration a command uses: the `--config` file when given,
    /// else `$PARLEY_CONFIG`, else `/etc/parley/parley.toml`, else
    /// `./config/parley.toml`, else the default compiled into Parley
    /// ([`EMBEDDED`]). A file named by `--config` or `$PARLEY_CONFIG`
    /// must exist; the others are looked for.
    pub fn locate(explicit: Option<&Path>) -> Result<Config, ConfigError> {
        if let Some(path) = explicit {
            return Self::load(path);
        }
        if let Some(path) = std::env::var_os("PARLEY_CONFIG").filter(|p| !p.is_empty()) {
            return Self::load(Path::new(&path));
        }
        for candidate in SEARCH_PATH {
            let path = Path::new(candidate);
            if path.is_file() {
                return Self::load(path);
            }
        }
        Self::parse(EMBEDDED, EMBEDDED_NAME)
    }

    /// What the configuration came from, for the start-up line and the
    /// console: the file, or the embedded default.
    pub fn origin(&self) -> String {
        self.source
            .as_ref()
            .map_or_else(|| EMBEDDED_NAME.to_string(), |p| p.display().to_string())
    }

    /// Parses and checks configuration text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let syntax = |message: String, span: Option<std::ops::Range<usize>>| ConfigError::Syntax {
            path: origin.to_string(),
            message,
            at: span.map(|s| Location::of(text, s)),
        };
        let de = toml::Deserializer::parse(text)
            .map_err(|e| syntax(e.message().trim_end().to_string(), e.span()))?;
        let mut config: Config = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            syntax(
                format!("{path}: {}", inner.message().trim_end()),
                inner.span(),
            )
        })?;
        config.text = Some(Arc::from(text));
        let l = &config.sip.limits;
        let value = |key: &str, reason: String| ConfigError::Value {
            path: origin.to_string(),
            key: key.to_string(),
            at: Location::of_key(text, key),
            reason,
        };
        for (key, v) in [
            ("sip.limits.max_message_size", l.max_message_size),
            ("sip.limits.max_headers", l.max_headers),
            ("sip.limits.max_header_line", l.max_header_line),
            ("sip.limits.max_uri_len", l.max_uri_len),
            ("sip.limits.max_vias", l.max_vias),
            ("sip.limits.max_parts", l.max_parts),
            ("sip.max_connections", config.sip.max_connections),
        ] {
            if v == 0 {
                return Err(value(key, "must be greater than 0".into()));
            }
        }
        if l.max_message_size > u32::MAX as usize {
            return Err(value(
                "sip.limits.max_message_size",
                "must fit in 32 bits".into(),
            ));
        }
        if l.max_body_size > l.max_message_size {
            return Err(value(
                "sip.limits.max_body_size",
                format!(
                    "{} exceeds max_message_size {}",
                    l.max_body_size, l.max_message_size
                ),
            ));
        }
        let t = &config.sip.timers;
        if t.t1_ms == 0 || t.t2_ms < t.t1_ms || t.t4_ms == 0 {
            return Err(value(
                "sip.timers",
                "needs 0 < t1_ms <= t2_ms and t4_ms > 0".into(),
            ));
        }
        if config.sip.tls.cert.is_some() != config.sip.tls.key.is_some() {
            return Err(value("sip.tls", "cert and key go together".into()));
        }
        if config.xmpp.max_stanza_bytes < 10_000 {
            return Err(value(
                "xmpp.max_stanza_bytes",
                "RFC 6120 §13.12 requires at least 10000".into(),
            ));
        }
        for r in &config.route {
            if r.via != "sip" && r.via != "xmpp" && r.via != "irc" {
                return Err(value(
                    "route.via",
                    format!("{:?}: use sip, xmpp or irc", r.via),
                ));
            }
        }
        for n in &config.irc.network {
            if config.is_local_domain(&n.domain)
                || n.domain
                    .eq_ignore_ascii_case(&config.rooms.domain(&config.domains))
            {
                return Err(value(
                    "irc.network.domain",
                    format!("{} is one of Parley's own domains", n.domain),
                ));
            }
            if n.tls && n.ca_file.is_none() && config.sip.tls.ca_file.is_none() {
                return Err(value(
                    "irc.network.ca_file",
                    format!(
                        "{}: TLS needs trust anchors (ca_file here or in [sip.tls])",
                        n.name
                    ),
                ));
            }
            if n.login == IrcLogin::External && !n.tls {
                return Err(value(
                    "irc.network.login",
                    format!(
                        "{}: external needs tls = true (the certificate is the login)",
                        n.name
                    ),
                ));
            }
            if !n.nick_template.contains("{user}") {
                return Err(value(
                    "irc.network.nick_template",
                    "needs {user}, or every user would have the same nick".into(),
                ));
            }
            for a in &n.account {
                if !a.user.contains('@') {
                    return Err(value(
                        "irc.network.account.user",
                        format!("{:?}: a user address (alice@example.com)", a.user),
                    ));
                }
                let bad = |v: &str| {
                    v.is_empty() || v.chars().any(|c| c.is_whitespace() || c.is_control())
                };
                if bad(&a.name)
                    || a.password.is_empty()
                    || a.password.chars().any(|c| c.is_control())
                {
                    return Err(value(
                        "irc.network.account",
                        format!("{}: an account name without spaces and a password without control characters", a.user),
                    ));
                }
            }
        }
        if config.sip.listen.is_empty() {
            return Err(value("sip.listen", "needs at least one address".into()));
        }
        let r = &config.registrar;
        if r.min_expires > r.max_expires
            || r.default_expires < r.min_expires
            || r.default_expires > r.max_expires
        {
            return Err(value(
                "registrar",
                "needs min_expires <= default_expires <= max_expires".into(),
            ));
        }
        for p in &config.push.provider {
            p.endpoint().map_err(|e| value("push.provider.url", e))?;
        }
        if u64::from(r.flow_timer_secs) >= config.sip.idle_timeout_secs || r.flow_timer_secs == 0 {
            return Err(value(
                "registrar.flow_timer_secs",
                format!(
                    "{} must be above 0 and below [sip] idle_timeout_secs ({}), or idle flows close",
                    r.flow_timer_secs, config.sip.idle_timeout_secs
                ),
            ));
        }
        if r.max_contacts == 0 {
            return Err(value(
                "registrar.max_contacts",
                "must be greater than 0".into(),
            ));
        }
        if config.auth.algorithms.is_empty() {
            return Err(value("auth.algorithms", "needs at least one".into()));
        }
        for a in &config.auth.algorithms {
            if crate::proto::digest::Algorithm::parse(a).map_or(true, |(_, sess)| sess) {
                return Err(value(
                    "auth.algorithms",
                    format!("unknown algorithm {a:?} (SHA-512-256, SHA-256, MD5)"),
                ));
            }
        }
        if config.domains.is_empty() {
            return Err(value("domains", "needs at least one domain".into()));
        }
        let conference = config.rooms.domain(&config.domains);
        if config.is_local_domain(&conference) {
            return Err(value(
                "rooms.domain",
                format!("{conference} is a user domain; rooms need a domain of their own"),
            ));
        }
        if config.rooms.member_queue == 0 || config.rooms.max_members == 0 {
            return Err(value(
                "rooms",
                "member_queue and max_members must be greater than 0".into(),
            ));
        }
        if config.proxy.timer_c_secs == 0 {
            return Err(value("proxy.timer_c_secs", "must be greater than 0".into()));
        }
        for r in &config.redirect {
            if r.domain.is_some() == r.user.is_some() {
                return Err(value(
                    "redirect",
                    "needs exactly one of domain and user".into(),
                ));
            }
            if r.status != 301 && r.status != 302 {
                return Err(value(
                    "redirect.status",
                    format!("{} is not 301 or 302", r.status),
                ));
            }
            let local = r
                .domain
                .as_deref()
                .is_some_and(|d| config.is_local_domain(d));
            if r.to.is_empty() && !local {
                return Err(value(
                    "redirect.to",
                    "needs contacts unless the domain is local".into(),
                ));
            }
            for uri in &r.to {
                let ok = crate::proto::sip::uri::Uri::parse(uri.as_bytes())
                    .is_ok_and(|u| u.as_sip().is_some());
                if !ok {
                    return Err(value("redirect.to", format!("{uri:?} is not a SIP URI")));
                }
            }
        }
        let mut names: Vec<(String, &str)> = Vec::new();
        for (i, d) in config.domains.iter().enumerate() {
            names.push((format!("domains[{i}]"), d));
        }
        if let Some(d) = &config.rooms.domain {
            names.push(("rooms.domain".into(), d));
        }
        for (i, r) in config.route.iter().enumerate() {
            names.push((format!("route[{i}].domain"), &r.domain));
        }
        for (i, n) in config.irc.network.iter().enumerate() {
            names.push((format!("irc.network[{i}].domain"), &n.domain));
        }
        for (i, d) in config.gateway.domain.iter().enumerate() {
            names.push((format!("gateway.domain[{i}].name"), &d.name));
        }
        for (i, c) in config.xmpp.component.iter().enumerate() {
            names.push((format!("xmpp.component[{i}].domain"), &c.domain));
        }
        for (key, name) in &names {
            if let Err(why) = check_domain(name) {
                return Err(value(key, format!("{name:?} is not a domain name: {why}")));
            }
        }
        for (key, list) in [
            ("gateway.allow_domains", &config.gateway.allow_domains),
            ("gateway.deny_domains", &config.gateway.deny_domains),
        ] {
            for (i, pattern) in list.iter().enumerate() {
                let name = pattern.strip_prefix("*.").unwrap_or(pattern);
                if let Err(why) = check_domain(name) {
                    return Err(value(
                        &format!("{key}[{i}]"),
                        format!("{pattern:?} is neither a domain name nor *.domain: {why}"),
                    ));
                }
            }
        }
        check_log_filter(&config.log.level).map_err(|why| value("log.level", why))?;
        if let Some(url) = &config.store.url {
            if !is_postgres_url(url) {
                return Err(value(
                    "store.url",
                    format!(
                        "{:?} is not a postgres:// URL (SQLite is `sqlite = PATH`)",
                        url
                    ),
                ));
            }
        }
        if config.clustered() {
            if config.store.url.is_none() {
                return Err(value(
                    "cluster.node",
                    "needs a shared store: [store] url = \"postgres://…\"".into(),
                ));
            }
            if config.cluster.secret.len() < 16 {
                return Err(value(
                    "cluster.secret",
                    "needs at least 16 characters, the same on every node".into(),
                ));
            }
            if !config
                .cluster
                .node
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            {
                return Err(value("cluster.node", "letters, digits and '-' only".into()));
            }
        }
        if let Some((key, other, addr)) = config.colliding_listeners() {
            return Err(value(
                &key,
                format!("{addr} is also {other}: one socket cannot serve both"),
            ));
        }
        Ok(config)
    }

    /// Every socket the config would bind, with the key that names it and
    /// whether it is UDP: `parley run` binds them all.
    fn sockets(&self) -> Vec<(String, bool, SocketAddr)> {
        let mut out = Vec::new();
        for (i, l) in self.sip.listen.iter().enumerate() {
            out.push((
                format!("sip.listen[{i}].address"),
                l.transport == Transport::Udp,
                l.address,
            ));
        }
        if self.xmpp.enabled {
            if let Some(a) = self.xmpp.listen {
                out.push(("xmpp.listen".into(), false, a));
            }
            if let Some(a) = self.xmpp.listen_tls {
                out.push(("xmpp.listen_tls".into(), false, a));
            }
        }
        if self.admin.enabled {
            if let Some(a) = self.admin.listen {
                out.push(("admin.listen".into(), false, a));
            }
        }
        if self.msrp.enabled {
            if let Some(a) = self.msrp.listen {
                out.push(("msrp.listen".into(), false, a));
            }
            if let Some(a) = self.msrp.listen_tls {
                out.push(("msrp.listen_tls".into(), false, a));
            }
        }
        out
    }

    /// The sections (top-level keys) that differ between two configs, as
    /// `changed` would list them: `auth`, `sip`, `irc` …
    pub fn changed_sections(&self, new: &Config) -> Vec<&'static str> {
        let d = |v: &dyn std::fmt::Debug| format!("{v:?}");
        let sections: [(&'static str, String, String); 21] = [
            ("sip", d(&self.sip), d(&new.sip)),
            ("log", d(&self.log), d(&new.log)),
            ("state_dir", d(&self.state_dir), d(&new.state_dir)),
            ("domains", d(&self.domains), d(&new.domains)),
            ("registrar", d(&self.registrar), d(&new.registrar)),
            ("auth", d(&self.auth), d(&new.auth)),
            ("store", d(&self.store), d(&new.store)),
            ("dns", d(&self.dns), d(&new.dns)),
            ("redirect", d(&self.redirect), d(&new.redirect)),
            ("proxy", d(&self.proxy), d(&new.proxy)),
            ("offline", d(&self.offline), d(&new.offline)),
            ("push", d(&self.push), d(&new.push)),
            ("presence", d(&self.presence), d(&new.presence)),
            ("gateway", d(&self.gateway), d(&new.gateway)),
            ("route", d(&self.route), d(&new.route)),
            ("xmpp", d(&self.xmpp), d(&new.xmpp)),
            ("admin", d(&self.admin), d(&new.admin)),
            ("archive", d(&self.archive), d(&new.archive)),
            ("msrp", d(&self.msrp), d(&new.msrp)),
            ("rooms", d(&self.rooms), d(&new.rooms)),
            ("irc", d(&self.irc), d(&new.irc)),
        ];
        sections
            .into_iter()
            .filter(|(_, a, b)| a != b)
            .map(|(name, _, _)| name)
            .collect()
    }

    /// Two listeners on one socket: the same port and protocol on the
    /// same address, or on a wildcard address and any address of its
    /// family. Port 0 (any free port) never collides.
    fn colliding_listeners(&self) -> Option<(String, String, SocketAddr)> {
        let sockets = self.sockets();
        for (i, (key, udp, addr)) in sockets.iter().enumerate() {
            for (other, other_udp, other_addr) in &sockets[..i] {
                let overlap = addr.ip() == other_addr.ip()
                    || (addr.is_ipv4() == other_addr.is_ipv4()
                        && (addr.ip().is_unspecified() || other_addr.ip().is_unspecified()));
                if addr.port() != 0
                    && addr.port() == other_addr.port()
                    && udp == other_udp
                    && overlap
                {
                    return Some((key.clone(), other.clone(), *addr));
                }
            }
        }
        None
    }

    /// Checks the files the config names, as `parley run` reads them:
    /// the TLS certificate and key (when set), and the trust anchors.
    /// Each error names the key and the file.
    pub fn check_files(&self) -> Result<(), ConfigError> {
        let text = self.text.as_deref().unwrap_or("");
        let origin = self.origin();
        let fail = |key: &str, file: &Path, reason: String| ConfigError::Value {
            path: origin.clone(),
            key: key.to_string(),
            at: Location::of_key(text, key),
            reason: format!("{}: {reason}", file.display()),
        };
        let mut files: Vec<(String, &Path, FileKind)> = Vec::new();
        if let Some(f) = &self.sip.tls.cert {
            files.push(("sip.tls.cert".into(), f, FileKind::Certificates));
        }
        if let Some(f) = &self.sip.tls.key {
            files.push(("sip.tls.key".into(), f, FileKind::Key));
        }
        if let Some(f) = &self.sip.tls.ca_file {
            files.push(("sip.tls.ca_file".into(), f, FileKind::Certificates));
        }
        for (i, n) in self.irc.network.iter().enumerate() {
            if let Some(f) = &n.ca_file {
                files.push((
                    format!("irc.network[{i}].ca_file"),
                    f,
                    FileKind::Certificates,
                ));
            }
        }
        for (i, p) in self.push.provider.iter().enumerate() {
            if let Some(f) = &p.ca_file {
                files.push((
                    format!("push.provider[{i}].ca_file"),
                    f,
                    FileKind::Certificates,
                ));
            }
        }
        for (key, file, kind) in files {
            let bytes = std::fs::read(file).map_err(|e| fail(&key, file, e.to_string()))?;
            kind.check(&bytes).map_err(|why| fail(&key, file, why))?;
        }
        Ok(())
    }
}

/// What a PEM file the config names must hold.
#[derive(Debug, Clone, Copy)]
enum FileKind {
    Certificates,
    Key,
}

impl FileKind {
    fn check(self, pem: &[u8]) -> Result<(), String> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        match self {
            FileKind::Certificates => {
                let certs = CertificateDer::pem_slice_iter(pem)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| format!("not a PEM certificate: {e}"))?;
                if certs.is_empty() {
                    return Err("holds no certificate (BEGIN CERTIFICATE)".into());
                }
            }
            FileKind::Key => {
                PrivateKeyDer::from_pem_slice(pem)
                    .map_err(|e| format!("holds no usable private key: {e}"))?;
            }
        }
        Ok(())
    }
}

/// True for a `postgres://` or `postgresql://` URL.
pub fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// A host name as DNS has it (RFC 1035 labels with RFC 1123's leading
/// digits), or an IP address.
pub fn check_domain(name: &str) -> Result<(), &'static str> {
    if name.parse::<std::net::IpAddr>().is_ok() {
        return Ok(());
    }
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() {
        return Err("empty");
    }
    if name.len() > 253 {
        return Err("longer than 253 characters");
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Err("an empty label");
        }
        if label.len() > 63 {
            return Err("a label longer than 63 characters");
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err("only letters, digits, '-' and '.' (IDNs in their xn-- form)");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err("a label starts or ends with '-'");
        }
    }
    Ok(())
}

/// A log filter as `[log] level` takes it: comma-separated directives,
/// each a level (`off`, `error`, `warn`, `info`, `debug`, `trace`) or
/// `target=level`. A bare word that is no level would be read as a
/// target name and silently log nothing else, so it is refused.
pub fn check_log_filter(filter: &str) -> Result<(), String> {
    const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];
    let is_level = |l: &str| LEVELS.iter().any(|x| x.eq_ignore_ascii_case(l.trim()));
    if filter.trim().is_empty() {
        return Err("is empty (info, debug, parley=debug,warn …)".into());
    }
    for directive in filter.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        let ok = match directive.rsplit_once('=') {
            Some((target, level)) => !target.is_empty() && is_level(level),
            None => is_level(directive),
        };
        if !ok {
            return Err(format!(
                "{directive:?} is neither a level ({}) nor target=level",
                LEVELS.join(", ")
            ));
        }
    }
    tracing_subscriber::EnvFilter::try_new(filter)
        .map(|_| ())
        .map_err(|e| format!("{filter:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_rules_are_checked() {
        let bad = [
            (
                "[[redirect]]\nto = [\"sip:a@b\"]\n",
                "exactly one of domain and user",
            ),
            (
                "[[redirect]]\nuser = \"a@localhost\"\ndomain = \"x\"\nto = [\"sip:a@b\"]\n",
                "exactly one of domain and user",
            ),
            ("[[redirect]]\nuser = \"a@localhost\"\n", "needs contacts"),
            (
                "[[redirect]]\nuser = \"a@localhost\"\nto = [\"mailto:a@b\"]\n",
                "not a SIP URI",
            ),
            (
                "[[redirect]]\ndomain = \"localhost\"\nstatus = 305\n",
                "not 301 or 302",
            ),
        ];
        for (text, want) in bad {
            let e = Config::parse(text, "t").unwrap_err().to_string();
            assert!(e.contains(want), "{text}: {e}");
        }
        let ok = Config::parse("[[redirect]]\ndomain = \"localhost\"\n", "t").unwrap();
        assert_eq!(ok.redirect[0].status, 302);
    }

    #[test]
    fn embedded_default_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/parley.toml");
        let config = Config::load(&path).unwrap();
        assert_eq!(config.sip.limits, Limits::default());
        assert_eq!(config.sip.listen.len(), 3);
        assert_eq!(config.sip.timers.config(), TimerConfig::default());
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        let e = Config::parse("[sip.limits]\nmax_mesage_size = 10\n", "t.toml").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("t.toml:2:1: sip.limits.max_mesage_size: unknown field"),
            "{e}"
        );
        let e = Config::parse(
            "[[sip.listen]]\ntransport = \"sctp\"\naddress = \"127.0.0.1:1\"\n",
            "t.toml",
        )
        .unwrap_err();
        assert!(e.to_string().contains("sip.listen[0].transport"), "{e}");
        let e = Config::parse("[sip.limits]\nmax_headers = 0\n", "t.toml").unwrap_err();
        assert_eq!(
            e.to_string(),
            "t.toml:2:15: sip.limits.max_headers must be greater than 0\n  |\n2 | max_headers = 0\n  |               ^"
        );
        let e = Config::parse("[sip.limits]\nmax_message_size = 100\n", "t.toml").unwrap_err();
        assert!(e.to_string().contains("sip.limits.max_body_size"), "{e}");
        let e = Config::parse("[sip.tls]\ncert = \"c.pem\"\n", "t.toml").unwrap_err();
        assert!(e.to_string().contains("cert and key go together"), "{e}");
    }

    /// The caret sits under the value, on the line it is on; a syntax
    /// error keeps its own line and caret (not squashed into one line).
    #[test]
    fn errors_point_at_the_line_and_column() {
        let text = "domains = [\"localhost\"]\n\n[log]\nlevel = \"loud\"\n";
        let e = Config::parse(text, "p.toml").unwrap_err().to_string();
        assert!(
            e.starts_with("p.toml:4:9: log.level \"loud\" is neither a level"),
            "{e}"
        );
        assert!(
            e.ends_with("4 | level = \"loud\"\n  |         ^^^^^^"),
            "{e}"
        );
        let e = Config::parse("[sip\nmax_connections = 1\n", "p.toml")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("p.toml:1:5: "), "{e}");
        assert_eq!(e.lines().count(), 4, "{e}");
        let e = Config::parse("[sip]\nmax_connections = \"x\"\n", "p.toml")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("p.toml:2:19: sip.max_connections: invalid type"),
            "{e}"
        );
        // A key in the second table of an array is found there.
        let text = "[[sip.listen]]\ntransport = \"udp\"\naddress = \"127.0.0.1:5070\"\n\n[[sip.listen]]\ntransport = \"tcp\"\naddress = \"127.0.0.1:5071\"\n\n[admin]\nlisten = \"127.0.0.1:5071\"\n";
        let e = Config::parse(text, "p.toml").unwrap_err().to_string();
        assert!(
            e.starts_with(
                "p.toml:10:10: admin.listen 127.0.0.1:5071 is also sip.listen[1].address"
            ),
            "{e}"
        );
        assert_eq!(
            Location::of_key(text, "sip.listen[1].address").map(|l| l.line),
            Some(7)
        );
        // Multi-byte text before the span counts as characters.
        let at = Location::of("a = \"é\" # x\nb = 1\n", 13..14);
        assert_eq!((at.line, at.column), (2, 1));
    }

    #[test]
    fn domains_log_filters_and_listeners_are_checked() {
        for bad in ["bad_domain", "-x.example", "a..b", "", &"a".repeat(64)] {
            let text = format!("domains = [{bad:?}]\n");
            let e = Config::parse(&text, "t").unwrap_err().to_string();
            assert!(
                e.contains("domains[0]") && e.contains("not a domain name"),
                "{e}"
            );
        }
        for good in [
            "example.com",
            "xn--bcher-kva.example",
            "127.0.0.1",
            "::1",
            "localhost.",
        ] {
            assert!(check_domain(good).is_ok(), "{good}");
        }
        let e = Config::parse(
            "[gateway]\ndeny_domains = [\"*.ok.example\", \"bad domain\"]\n",
            "t",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("gateway.deny_domains[1]"), "{e}");
        for bad in ["loud", "parley=noisy", "info,,=debug", "  "] {
            assert!(check_log_filter(bad).is_err(), "{bad:?}");
        }
        for good in ["info", "WARN", "parley=debug,warn", "off"] {
            assert!(check_log_filter(good).is_ok(), "{good:?}");
        }
        // TCP and TLS on one address collide; UDP and TCP do not; a
        // wildcard collides with its family; port 0 never does.
        let listen = |a: &str, b: &str| {
            format!("[[sip.listen]]\ntransport = \"udp\"\naddress = \"{a}\"\n[[sip.listen]]\ntransport = \"tcp\"\naddress = \"{a}\"\n[[sip.listen]]\ntransport = \"tls\"\naddress = \"{b}\"\n")
        };
        assert!(Config::parse(&listen("127.0.0.1:5070", "127.0.0.1:5071"), "t").is_ok());
        assert!(Config::parse(&listen("127.0.0.1:0", "127.0.0.1:0"), "t").is_ok());
        let e = Config::parse(&listen("127.0.0.1:5070", "127.0.0.1:5070"), "t")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("sip.listen[2].address 127.0.0.1:5070 is also sip.listen[1].address"),
            "{e}"
        );
        assert!(Config::parse(&listen("0.0.0.0:5070", "127.0.0.2:5070"), "t").is_err());
        assert!(Config::parse(&listen("0.0.0.0:5070", "[::1]:5070"), "t").is_ok());
    }

    #[test]
    fn files_named_by_the_config_are_read_as_run_reads_them() {
        let dir = std::env::temp_dir().join(format!("parley-files-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let not_pem = dir.join("not.pem");
        std::fs::write(&not_pem, "hello\n").unwrap();
        let text = |cert: &Path, key: &Path| {
            format!(
                "[sip.tls]\ncert = {:?}\nkey = {:?}\n",
                cert.display().to_string(),
                key.display().to_string()
            )
        };
        let missing = dir.join("missing.pem");
        let c = Config::parse(&text(&missing, &not_pem), "t").unwrap();
        let e = c.check_files().unwrap_err().to_string();
        assert!(
            e.contains(":2:8: sip.tls.cert ") && e.contains("missing.pem"),
            "{e}"
        );
        let c = Config::parse(&text(&not_pem, &not_pem), "t").unwrap();
        let e = c.check_files().unwrap_err().to_string();
        assert!(
            e.contains("sip.tls.cert ") && e.contains("holds no certificate"),
            "{e}"
        );
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let (cert_file, key_file) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&cert_file, cert.pem()).unwrap();
        std::fs::write(&key_file, key.serialize_pem()).unwrap();
        let c = Config::parse(&text(&cert_file, &not_pem), "t").unwrap();
        let e = c.check_files().unwrap_err().to_string();
        assert!(
            e.contains(":3:7: sip.tls.key ") && e.contains("no usable private key"),
            "{e}"
        );
        let c = Config::parse(&text(&cert_file, &key_file), "t").unwrap();
        c.check_files().unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn reload_names_the_changed_sections() {
        let a = Config::parse("", "t").unwrap();
        let b = Config::parse(
            "[auth]\nalgorithms = [\"SHA-256\", \"MD5\"]\n[sip]\nmax_connections = 7\n",
            "t",
        )
        .unwrap();
        assert_eq!(a.changed_sections(&b), ["sip", "auth"]);
        assert!(a.changed_sections(&a.clone()).is_empty());
    }
}
