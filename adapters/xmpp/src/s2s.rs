//! Server-to-server federation (RFC 6120, XEP-0220, XEP-0185).
//!
//! Outbound, one link per (local domain, remote domain): the remote domain
//! is found through `_xmpp-server._tcp` SRV (then its A/AAAA on 5269), the
//! stream is secured with STARTTLS (required unless the config says
//! otherwise), and Parley authenticates with Server Dialback. The link
//! also carries `<db:verify/>` questions for inbound streams of that
//! domain. Inbound, each connection offers STARTTLS, then dialback; a
//! `<db:result/>` is checked with the remote domain's authoritative server
//! over the outbound link, and from then on only stanzas from the domains
//! the stream authenticated for are accepted (`<invalid-from/>` for others).

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hmac::{Hmac, Mac};
use parley_adapter::xml::Element;
use parley_adapter::{
    certificate_names, Condition, Failure, Link, Locator, Peer, PeerAuth, Protocol,
};
use sha2::{Digest, Sha256};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::framer::Frame;
use crate::io::{header, token, Io, LinkError, XmlStream};
use crate::Shared;

const NS_SERVER: &str = "jabber:server";
const NS_DIALBACK: &str = "jabber:server:dialback";
const NS_TLS: &str = "urn:ietf:params:xml:ns:xmpp-tls";
const NS_SASL: &str = "urn:ietf:params:xml:ns:xmpp-sasl";

/// What an outbound stream came out of negotiation with.
struct Negotiated {
    stream: XmlStream<Box<dyn Io>>,
    stream_id: String,
    tls: bool,
    /// `Certificate` after SASL EXTERNAL; `Dialback` still to be done.
    auth: PeerAuth,
}

/// The dialback key of XEP-0185 §3: HMAC-SHA256 keyed with the hex SHA-256
/// of the secret, over "receiving originating stream-id".
pub fn dialback_key(secret: &str, receiving: &str, originating: &str, stream_id: &str) -> String {
    let key = hex(&Sha256::digest(secret.as_bytes()));
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("any key length");
    mac.update(format!("{receiving} {originating} {stream_id}").as_bytes());
    hex(&mac.finalize().into_bytes())
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Work for an outbound link.
enum Cmd {
    /// A stanza to send once authenticated; the answer says whether it left.
    Stanza(Element, oneshot::Sender<Result<(), Failure>>),
    /// A dialback question for an inbound stream.
    Verify {
        stream_id: String,
        key: String,
        answer: oneshot::Sender<bool>,
    },
}

/// The outbound links and inbound streams.
pub(crate) struct S2s {
    links: Mutex<HashMap<(String, String), mpsc::Sender<Cmd>>>,
    /// For monitoring: what is up now.
    state: Mutex<HashMap<u64, Link>>,
    pub(crate) resolver: Arc<dyn Locator>,
    /// The inbound streams, by address and by age.
    inbound: Arc<Mutex<Inbound>>,
}

/// The inbound streams held now: how many per address, and each one's
/// age, whether it has authenticated, and how to close it.
#[derive(Default)]
pub(crate) struct Inbound {
    per_source: HashMap<std::net::IpAddr, usize>,
    /// By admission order: the first unproven entry is the oldest.
    streams: std::collections::BTreeMap<u64, Held>,
    next: u64,
}

struct Held {
    ip: std::net::IpAddr,
    proven: Arc<std::sync::atomic::AtomicBool>,
    close: CancellationToken,
}

impl Inbound {
    fn release(&mut self, seq: u64) {
        let Some(held) = self.streams.remove(&seq) else {
            return;
        };
        if let Some(n) = self.per_source.get_mut(&held.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_source.remove(&held.ip);
            }
        }
    }
}

impl S2s {
    pub(crate) fn new(resolver: Arc<dyn Locator>) -> S2s {
        S2s {
            links: Mutex::new(HashMap::new()),
            state: Mutex::new(HashMap::new()),
            resolver,
            inbound: Arc::new(Mutex::new(Inbound::default())),
        }
    }

    /// A place for an inbound stream from `ip`, or `None` when that
    /// address holds `max_per_source` already. When all of `max_inbound`
    /// are taken, the oldest stream that has not authenticated a domain is
    /// closed to make room (a peer that proved itself is never pushed out
    /// by one that has not); `None` when every stream is proven.
    pub(crate) fn admit(
        &self,
        max_inbound: usize,
        max_per_source: usize,
        ip: std::net::IpAddr,
    ) -> Option<Place> {
        let mut map = lock(&self.inbound);
        if map.per_source.get(&ip).copied().unwrap_or(0) >= max_per_source {
            return None;
        }
        if map.streams.len() >= max_inbound {
            let oldest = map
                .streams
                .iter()
                .find(|(_, h)| !h.proven.load(std::sync::atomic::Ordering::Relaxed))
                .map(|(seq, h)| (*seq, h.ip));
            let (seq, from) = oldest?;
            if let Some(held) = map.streams.get(&seq) {
                held.close.cancel();
            }
            map.release(seq);
            debug!(%from, "oldest unauthenticated inbound XMPP stream closed to make room");
        }
        let seq = map.next;
        map.next += 1;
        *map.per_source.entry(ip).or_default() += 1;
        let held = Held {
            ip,
            proven: Arc::new(std::sync::atomic::AtomicBool::new(false)),
            close: CancellationToken::new(),
        };
        let place = Place {
            seq,
            proven: held.proven.clone(),
            close: held.close.clone(),
            registry: self.inbound.clone(),
        };
        map.streams.insert(seq, held);
        Some(place)
    }

    pub(crate) fn links(&self) -> Vec<Link> {
        lock(&self.state).values().cloned().collect()
    }

    fn link(&self, shared: &Arc<Shared>, local: &str, remote: &str) -> mpsc::Sender<Cmd> {
        let mut links = lock(&self.links);
        let key = (local.to_string(), remote.to_string());
        if let Some(tx) = links.get(&key).filter(|tx| !tx.is_closed()) {
            return tx.clone();
        }
        let (tx, rx) = mpsc::channel(1024);
        links.insert(key, tx.clone());
        let shared = shared.clone();
        let (local, remote) = (local.to_string(), remote.to_string());
        shared.tracker.clone().spawn(async move {
            outbound(shared.clone(), local.clone(), remote.clone(), rx).await;
            let mut links = lock(&shared.s2s.links);
            if links
                .get(&(local.clone(), remote.clone()))
                .is_some_and(|tx| tx.is_closed())
            {
                links.remove(&(local, remote));
            }
        });
        tx
    }

    /// Sends one stanza from `local` to `remote`, waiting until it left or
    /// failed (link could not be set up, authentication refused).
    pub(crate) async fn send(
        &self,
        shared: &Arc<Shared>,
        local: &str,
        remote: &str,
        el: Element,
    ) -> Result<(), Failure> {
        let (tx, rx) = oneshot::channel();
        let link = self.link(shared, local, remote);
        link.send(Cmd::Stanza(el, tx))
            .await
            .map_err(|_| Failure::new(Condition::RemoteServerNotFound, "link closed"))?;
        let wait = shared.settings.connect_timeout * 3;
        match tokio::time::timeout(wait, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(Failure::new(Condition::RemoteServerNotFound, "link closed")),
            Err(_) => Err(Failure::new(
                Condition::RemoteServerTimeout,
                "link not ready",
            )),
        }
    }

    async fn verify(
        &self,
        shared: &Arc<Shared>,
        local: &str,
        remote: &str,
        stream_id: &str,
        key: &str,
    ) -> bool {
        let (answer, rx) = oneshot::channel();
        let link = self.link(shared, local, remote);
        let cmd = Cmd::Verify {
            stream_id: stream_id.to_string(),
            key: key.to_string(),
            answer,
        };
        if link.send(cmd).await.is_err() {
            return false;
        }
        let wait = shared.settings.connect_timeout * 2;
        matches!(tokio::time::timeout(wait, rx).await, Ok(Ok(true)))
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Where the remote domain's server listens, best first: the
/// `_xmpps-server._tcp` (direct TLS, XEP-0368) and `_xmpp-server._tcp`
/// (STARTTLS) SRV targets merged by priority, direct TLS first on a tie;
/// without any, the domain itself on 5269. `true` marks direct TLS.
async fn locate(resolver: &dyn Locator, domain: &str) -> Vec<(SocketAddr, bool)> {
    // (priority, STARTTLS, host, port), each service in its RFC 2782 order.
    let mut hosts: Vec<(u16, bool, String, u16)> = Vec::new();
    let mut refused = 0;
    for (service, direct) in [("_xmpps-server", true), ("_xmpp-server", false)] {
        match resolver.srv(&format!("{service}._tcp.{domain}.")).await {
            None => {}
            // RFC 2782: "." means the service is decidedly not offered.
            Some(list) if list.is_empty() => refused += 1,
            Some(list) => hosts.extend(
                list.into_iter()
                    .map(|t| (t.priority, !direct, t.host, t.port)),
            ),
        }
    }
    // Merged by priority, direct TLS first on a tie; the sort is stable,
    // so the weighted order within a priority stays.
    hosts.sort_by_key(|h| (h.0, h.1));
    if hosts.is_empty() {
        if refused > 0 {
            return Vec::new();
        }
        hosts.push((0, true, domain.to_string(), 5269));
    }
    let mut out = Vec::new();
    for (_, starttls, host, port) in hosts {
        if let Ok(ip) = host.trim_end_matches('.').parse::<std::net::IpAddr>() {
            out.push((SocketAddr::new(ip, port), !starttls));
            continue;
        }
        out.extend(
            resolver
                .addresses(&host)
                .await
                .into_iter()
                .map(|ip| (SocketAddr::new(ip, port), !starttls)),
        );
    }
    out
}

/// The outbound side: connect, secure, authenticate, then carry stanzas
/// and dialback questions until the link fails or Parley stops.
async fn outbound(shared: Arc<Shared>, local: String, remote: String, mut rx: mpsc::Receiver<Cmd>) {
    let setup = tokio::select! {
        _ = shared.stop.cancelled() => return,
        r = connect(&shared, &local, &remote) => r,
    };
    let Negotiated {
        mut stream,
        stream_id,
        tls,
        auth,
    } = match setup {
        Ok(s) => s,
        Err(e) => {
            warn!(%local, %remote, error = %e, "XMPP link not set up");
            fail_all(&mut rx, &e, true);
            return;
        }
    };
    let link_id = shared.next_id();
    let mut authenticated = auth == PeerAuth::Certificate;
    if authenticated {
        info!(%local, %remote, "XMPP link up (SASL EXTERNAL)");
        lock(&shared.s2s.state).insert(
            link_id,
            Link {
                domain: remote.clone(),
                direction: "outbound",
                auth,
                tls,
            },
        );
    }
    // Dialback: claim `local` to `remote`.
    let key = dialback_key(
        &shared.settings.dialback_secret,
        &remote,
        &local,
        &stream_id,
    );
    let claim = Element::new(NS_DIALBACK, "result")
        .with_attr("", "from", &local)
        .with_attr("", "to", &remote)
        .with_text(&key);
    if !authenticated {
        if let Err(e) = stream.send_element(&claim, NS_SERVER).await {
            fail_all(&mut rx, &e, true);
            return;
        }
    }
    let mut queue: VecDeque<(Element, oneshot::Sender<Result<(), Failure>>)> = VecDeque::new();
    let mut questions: HashMap<String, oneshot::Sender<bool>> = HashMap::new();
    let idle = shared.settings.idle_timeout;
    loop {
        tokio::select! {
            _ = shared.stop.cancelled() => {
                stream.close().await;
                break;
            }
            cmd = rx.recv() => match cmd {
                None => { stream.close().await; break; }
                Some(Cmd::Stanza(el, done)) => {
                    if authenticated {
                        let r = stream.send_element(&el, NS_SERVER).await;
                        let failed = r.is_err();
                        let _ = done.send(r.map_err(|e| Failure::new(Condition::RemoteServerTimeout, e.to_string())));
                        if failed { break; }
                    } else {
                        queue.push_back((el, done));
                    }
                }
                Some(Cmd::Verify { stream_id, key, answer }) => {
                    let q = Element::new(NS_DIALBACK, "verify")
                        .with_attr("", "from", &local)
                        .with_attr("", "to", &remote)
                        .with_attr("", "id", &stream_id)
                        .with_text(&key);
                    if stream.send_element(&q, NS_SERVER).await.is_err() { break; }
                    questions.insert(stream_id, answer);
                }
            },
            frame = tokio::time::timeout(idle, stream.read_frame()) => {
                let frame = match frame {
                    Err(_) => { stream.close().await; break; }
                    Ok(Err(e)) => {
                        debug!(%local, %remote, error = %e, "XMPP link ended");
                        fail_queue(&mut queue, &e);
                        break;
                    }
                    Ok(Ok(f)) => f,
                };
                let Frame::Stanza(el) = frame else { break };
                if el.is(NS_DIALBACK, "result") {
                    if el.attr("type") == Some("valid") {
                        authenticated = true;
                        info!(%local, %remote, tls, "XMPP link up (dialback)");
                        lock(&shared.s2s.state).insert(link_id, Link {
                            domain: remote.clone(),
                            direction: "outbound",
                            auth: PeerAuth::Dialback,
                            tls,
                        });
                        while let Some((el, done)) = queue.pop_front() {
                            let r = stream.send_element(&el, NS_SERVER).await;
                            let _ = done.send(r.map_err(|e| Failure::new(Condition::RemoteServerTimeout, e.to_string())));
                        }
                    } else {
                        warn!(%local, %remote, "dialback refused by the remote domain");
                        let e = LinkError::Refused("dialback refused".into());
                        fail_queue(&mut queue, &e);
                        fail_all(&mut rx, &e, false);
                        stream.close().await;
                        break;
                    }
                } else if el.is(NS_DIALBACK, "verify") {
                    if let Some(answer) = el.attr("id").and_then(|id| questions.remove(id)) {
                        let _ = answer.send(el.attr("type") == Some("valid"));
                    }
                }
            }
        }
    }
    lock(&shared.s2s.state).remove(&link_id);
    rx.close();
    fail_all(&mut rx, &LinkError::Closed, false);
}

fn failure_of(e: &LinkError) -> Failure {
    match e {
        LinkError::Timeout(_) => Failure::new(Condition::RemoteServerTimeout, e.to_string()),
        LinkError::Refused(_) => Failure::new(Condition::PolicyViolation, e.to_string()),
        _ => Failure::new(Condition::RemoteServerNotFound, e.to_string()),
    }
}

fn fail_queue(
    queue: &mut VecDeque<(Element, oneshot::Sender<Result<(), Failure>>)>,
    e: &LinkError,
) {
    for (_, done) in queue.drain(..) {
        let _ = done.send(Err(failure_of(e)));
    }
}

/// Answers every waiting command with the failure.
fn fail_all(rx: &mut mpsc::Receiver<Cmd>, e: &LinkError, close: bool) {
    if close {
        rx.close();
    }
    while let Ok(cmd) = rx.try_recv() {
        match cmd {
            Cmd::Stanza(_, done) => {
                let _ = done.send(Err(failure_of(e)));
            }
            Cmd::Verify { answer, .. } => {
                let _ = answer.send(false);
            }
        }
    }
}

/// Connects to `remote`, opens the stream and secures it. Returns the
/// stream, the id the remote server gave it and whether it is encrypted.
async fn connect(shared: &Arc<Shared>, local: &str, remote: &str) -> Result<Negotiated, LinkError> {
    let settings = &shared.settings;
    let targets = locate(shared.s2s.resolver.as_ref(), remote).await;
    if targets.is_empty() {
        return Err(LinkError::Refused(format!(
            "{remote} offers no XMPP service"
        )));
    }
    let mut last = LinkError::Closed;
    for (addr, direct) in targets {
        let tcp =
            match tokio::time::timeout(settings.connect_timeout, TcpStream::connect(addr)).await {
                Ok(Ok(tcp)) => tcp,
                Ok(Err(e)) => {
                    last = e.into();
                    continue;
                }
                Err(_) => {
                    last = LinkError::Timeout("connect");
                    continue;
                }
            };
        let _ = tcp.set_nodelay(true);
        let negotiated = if direct {
            direct_tls(shared, tcp, local, remote).await
        } else {
            negotiate(shared, tcp, local, remote).await
        };
        match negotiated {
            Ok(r) => return Ok(r),
            Err(e) => last = e,
        }
    }
    Err(last)
}

async fn negotiate(
    shared: &Arc<Shared>,
    tcp: TcpStream,
    local: &str,
    remote: &str,
) -> Result<Negotiated, LinkError> {
    let settings = &shared.settings;
    let wait = settings.connect_timeout;
    let mut plain = XmlStream::new(tcp, settings.max_stanza);
    plain
        .send(&header(NS_SERVER, local, remote, None, true))
        .await?;
    let (_, features) = open(&mut plain, wait).await?;
    let starttls = features.child(NS_TLS, "starttls").is_some();
    if !starttls {
        if settings.require_tls {
            plain.fail("policy-violation", "TLS is required").await;
            return Err(LinkError::Refused(format!(
                "{remote} does not offer STARTTLS"
            )));
        }
        let id = plain
            .framer
            .stream_header()
            .and_then(|h| h.id.clone())
            .unwrap_or_default();
        let mut stream = XmlStream::new(Box::new(plain.io) as Box<dyn Io>, settings.max_stanza);
        stream.framer = plain.framer;
        return Ok(Negotiated {
            stream,
            stream_id: id,
            tls: false,
            auth: PeerAuth::Dialback,
        });
    }
    plain
        .send_element(&Element::new(NS_TLS, "starttls"), NS_SERVER)
        .await?;
    match plain.read(wait, "proceed").await? {
        Frame::Stanza(el) if el.is(NS_TLS, "proceed") => {}
        _ => return Err(LinkError::Refused("STARTTLS refused".into())),
    }
    secured(shared, plain.io, local, remote, false).await
}

/// XEP-0368: TLS from the first byte (ALPN `xmpp-server`), then the same
/// stream as after STARTTLS.
async fn direct_tls(
    shared: &Arc<Shared>,
    tcp: TcpStream,
    local: &str,
    remote: &str,
) -> Result<Negotiated, LinkError> {
    secured(shared, tcp, local, remote, true).await
}

/// TLS on `tcp`, then the stream: SASL EXTERNAL where it can be used,
/// else dialback to follow.
async fn secured(
    shared: &Arc<Shared>,
    tcp: TcpStream,
    local: &str,
    remote: &str,
    direct: bool,
) -> Result<Negotiated, LinkError> {
    let settings = &shared.settings;
    let wait = settings.connect_timeout;
    let name = rustls::pki_types::ServerName::try_from(remote.to_string())
        .map_err(|_| LinkError::Refused(format!("{remote} is not a DNS name")))?;
    // With trust anchors, the remote server's certificate must name it
    // (and Parley's may then authenticate it with SASL EXTERNAL).
    let verified = settings.tls_client_verified.is_some();
    let mut config = settings
        .tls_client_verified
        .clone()
        .unwrap_or_else(|| settings.tls_client.clone());
    if direct {
        let mut c = (*config).clone();
        c.alpn_protocols = vec![b"xmpp-server".to_vec()];
        config = Arc::new(c);
    }
    let connector = tokio_rustls::TlsConnector::from(config);
    let tls = tokio::time::timeout(wait, connector.connect(name, tcp))
        .await
        .map_err(|_| LinkError::Timeout("TLS handshake"))??;
    let mut stream = XmlStream::new(Box::new(tls) as Box<dyn Io>, settings.max_stanza);
    stream
        .send(&header(NS_SERVER, local, remote, None, true))
        .await?;
    let (id, features) = open(&mut stream, wait).await?;
    let external = features.child(NS_SASL, "mechanisms").is_some_and(|m| {
        m.elements()
            .any(|c| c.name == "mechanism" && c.text().trim() == "EXTERNAL")
    });
    if verified && external {
        // XEP-0178: the authorization identity is Parley's domain.
        use base64::Engine;
        let authzid = base64::engine::general_purpose::STANDARD.encode(local);
        stream
            .send_element(
                &Element::new(NS_SASL, "auth")
                    .with_attr("", "mechanism", "EXTERNAL")
                    .with_text(&authzid),
                NS_SERVER,
            )
            .await?;
        match stream.read(wait, "SASL outcome").await? {
            Frame::Stanza(el) if el.is(NS_SASL, "success") => {
                stream.framer.restart();
                stream
                    .send(&header(NS_SERVER, local, remote, None, true))
                    .await?;
                let (id, _) = open(&mut stream, wait).await?;
                return Ok(Negotiated {
                    stream,
                    stream_id: id,
                    tls: true,
                    auth: PeerAuth::Certificate,
                });
            }
            Frame::Stanza(el) if el.is(NS_SASL, "failure") => {
                debug!(%remote, "SASL EXTERNAL refused; trying dialback");
            }
            _ => return Err(LinkError::Refused("no SASL outcome".into())),
        }
    }
    if features
        .child("urn:xmpp:features:dialback", "dialback")
        .is_none()
        && !stream.framer.stream_header().is_some_and(|h| h.dialback)
    {
        return Err(LinkError::Refused(format!("{remote} offers no dialback")));
    }
    Ok(Negotiated {
        stream,
        stream_id: id,
        tls: true,
        auth: PeerAuth::Dialback,
    })
}

/// Reads the peer's header and features; returns the stream id and features.
async fn open<S: Io>(
    stream: &mut XmlStream<S>,
    wait: Duration,
) -> Result<(String, Element), LinkError> {
    let Frame::Header(h) = stream.read(wait, "stream header").await? else {
        return Err(LinkError::Refused("no stream header".into()));
    };
    if h.ns != NS_SERVER {
        return Err(LinkError::Refused(format!("stream namespace {}", h.ns)));
    }
    let id = h.id.unwrap_or_default();
    if h.version.as_deref() != Some("1.0") {
        // A pre-1.0 server sends no features.
        return Ok((id, Element::new(crate::framer::NS_STREAMS, "features")));
    }
    match stream.read(wait, "stream features").await? {
        Frame::Stanza(f) if f.is(crate::framer::NS_STREAMS, "features") => Ok((id, f)),
        _ => Err(LinkError::Refused("no stream features".into())),
    }
}

/// Accepts inbound s2s connections until Parley stops.
pub(crate) async fn listen(shared: Arc<Shared>, listener: TcpListener) {
    accept_loop(shared, listener, false).await
}

/// Accepts direct-TLS s2s connections (XEP-0368) until Parley stops.
pub(crate) async fn listen_direct(shared: Arc<Shared>, listener: TcpListener) {
    accept_loop(shared, listener, true).await
}

async fn accept_loop(shared: Arc<Shared>, listener: TcpListener, direct: bool) {
    loop {
        let accepted = tokio::select! {
            _ = shared.stop.cancelled() => return,
            a = listener.accept() => a,
        };
        let Ok((tcp, peer)) = accepted else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        // One server, or one address, cannot take every inbound stream.
        let settings = &shared.settings;
        let Some(place) =
            shared
                .s2s
                .admit(settings.max_inbound, settings.max_per_source, peer.ip())
        else {
            debug!(%peer, "inbound XMPP stream refused: limit reached");
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let shared2 = shared.clone();
        shared.tracker.spawn(async move {
            let place = Arc::new(place);
            let deadline = tokio::time::Instant::now() + shared2.settings.negotiation_timeout;
            let stream = async {
                if direct {
                    let inflight = Arc::new(tokio::sync::Semaphore::new(crate::IN_FLIGHT));
                    inbound_tls(shared2.clone(), tcp, inflight, &place).await
                } else {
                    inbound(shared2.clone(), tcp, &place).await
                }
            };
            // A stream must authenticate a domain within the negotiation
            // deadline, however it trickles its bytes; a proven one runs on.
            let unproven_at_deadline = async {
                tokio::time::sleep_until(deadline).await;
                if place.is_proven() {
                    std::future::pending::<()>().await;
                }
            };
            let ended = tokio::select! {
                r = stream => r,
                _ = place.close.cancelled() => Err(LinkError::Refused("closed to make room for a newer stream".into())),
                _ = unproven_at_deadline => Err(LinkError::Timeout("authentication")),
            };
            if let Err(e) = ended {
                debug!(%peer, direct, error = %e, "inbound XMPP stream ended");
            }
        });
    }
}

/// An admitted inbound stream's place: given back when the stream ends.
pub(crate) struct Place {
    seq: u64,
    proven: Arc<std::sync::atomic::AtomicBool>,
    close: CancellationToken,
    registry: Arc<Mutex<Inbound>>,
}

impl Place {
    /// The stream has authenticated a domain: it is no longer the first to
    /// go when room is needed, and its negotiation deadline no longer applies.
    fn prove(&self) {
        self.proven
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    fn is_proven(&self) -> bool {
        self.proven.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        lock(&self.registry).release(self.seq);
    }
}

/// One inbound stream: STARTTLS, dialback, then stanzas for the hub.
async fn inbound(shared: Arc<Shared>, tcp: TcpStream, place: &Place) -> Result<(), LinkError> {
    let settings = &shared.settings;
    let wait = settings.connect_timeout;
    let mut plain = XmlStream::new(tcp, settings.max_stanza);
    let offer_tls = settings.tls_server.is_some();
    let stream_id = token();
    let inflight = Arc::new(tokio::sync::Semaphore::new(crate::IN_FLIGHT));
    let h = accept_header(
        &mut plain, &shared, &stream_id, wait, offer_tls, false, false,
    )
    .await?;
    // Before TLS only STARTTLS (and, when TLS is optional, dialback).
    match plain.read(wait, "STARTTLS").await? {
        Frame::Stanza(el) if el.is(NS_TLS, "starttls") && offer_tls => {
            plain
                .send_element(&Element::new(NS_TLS, "proceed"), NS_SERVER)
                .await?;
            inbound_tls(shared.clone(), plain.io, inflight, place).await
        }
        other => {
            if settings.require_tls {
                plain.fail("policy-violation", "STARTTLS is required").await;
                return Err(LinkError::Refused("peer did not start TLS".into()));
            }
            let mut stream = XmlStream::new(Box::new(plain.io) as Box<dyn Io>, settings.max_stanza);
            stream.framer = plain.framer;
            // The first stanza was already read: handle it here.
            let mut authed = HashMap::new();
            if let Frame::Stanza(el) = other {
                handle(
                    &shared,
                    &inflight,
                    &mut stream,
                    &stream_id,
                    &mut authed,
                    false,
                    el,
                    &h,
                    None,
                )
                .await?;
            }
            serve(
                shared.clone(),
                inflight,
                stream,
                stream_id,
                authed,
                false,
                h,
                None,
                place,
            )
            .await
        }
    }
}

/// TLS accepted on `tcp` (after STARTTLS, or from the first byte for
/// XEP-0368), then the secured stream.
async fn inbound_tls(
    shared: Arc<Shared>,
    tcp: TcpStream,
    inflight: Arc<tokio::sync::Semaphore>,
    place: &Place,
) -> Result<(), LinkError> {
    let settings = &shared.settings;
    let wait = settings.connect_timeout;
    let Some(config) = settings.tls_server.clone() else {
        return Err(LinkError::Refused("no TLS configured".into()));
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let tls = tokio::time::timeout(wait, acceptor.accept(tcp))
        .await
        .map_err(|_| LinkError::Timeout("TLS handshake"))??;
    // A client certificate is only there when it verified against the
    // trust anchors: it may then authenticate with SASL EXTERNAL.
    let peer_cert = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.clone().into_owned());
    let mut stream = XmlStream::new(Box::new(tls) as Box<dyn Io>, settings.max_stanza);
    let id = token();
    let h = accept_header(
        &mut stream,
        &shared,
        &id,
        wait,
        false,
        true,
        peer_cert.is_some(),
    )
    .await?;
    serve(
        shared.clone(),
        inflight,
        stream,
        id,
        HashMap::new(),
        true,
        h,
        peer_cert,
        place,
    )
    .await
}

/// Reads the peer's header, answers with ours and the features.
async fn accept_header<S: Io>(
    stream: &mut XmlStream<S>,
    shared: &Arc<Shared>,
    id: &str,
    wait: Duration,
    offer_tls: bool,
    secured: bool,
    external: bool,
) -> Result<crate::framer::Header, LinkError> {
    let settings = &shared.settings;
    let h = match stream.read(wait, "stream header").await? {
        Frame::Header(h) => h,
        _ => return Err(LinkError::Refused("no header".into())),
    };
    let to = domain_of(h.to.as_deref().unwrap_or_default());
    stream
        .send(&header(
            NS_SERVER,
            &to,
            h.from.as_deref().unwrap_or(""),
            Some(id),
            true,
        ))
        .await?;
    if h.ns != NS_SERVER {
        stream.fail("invalid-namespace", "").await;
        return Err(LinkError::Refused(format!("namespace {}", h.ns)));
    }
    if !settings.domains.iter().any(|d| d.eq_ignore_ascii_case(&to)) {
        stream.fail("host-unknown", "").await;
        return Err(LinkError::Refused(format!("not our domain: {to}")));
    }
    let mut features = Element::new(crate::framer::NS_STREAMS, "features");
    if offer_tls {
        let mut st = Element::new(NS_TLS, "starttls");
        if settings.require_tls {
            st = st.with_child(Element::new(NS_TLS, "required"));
        }
        features = features.with_child(st);
    }
    if external {
        features = features.with_child(
            Element::new(NS_SASL, "mechanisms")
                .with_child(Element::new(NS_SASL, "mechanism").with_text("EXTERNAL")),
        );
    }
    if secured || !settings.require_tls {
        features = features.with_child(
            Element::new("urn:xmpp:features:dialback", "dialback")
                .with_child(Element::new("urn:xmpp:features:dialback", "errors")),
        );
    }
    let mut text = String::new();
    parley_adapter::xml::write_fragment(&features, "", &mut text);
    // `features` lives in the streams namespace: print it with the prefix.
    let text = text
        .replacen(
            "<features xmlns=\"http://etherx.jabber.org/streams\"",
            "<stream:features",
            1,
        )
        .replace("</features>", "</stream:features>");
    stream.send(&text).await?;
    Ok(h)
}

#[allow(clippy::too_many_arguments)]
async fn serve(
    shared: Arc<Shared>,
    inflight: Arc<tokio::sync::Semaphore>,
    mut stream: XmlStream<Box<dyn Io>>,
    stream_id: String,
    mut authed: HashMap<(String, String), PeerAuth>,
    tls: bool,
    h: crate::framer::Header,
    peer_cert: Option<rustls::pki_types::CertificateDer<'static>>,
    place: &Place,
) -> Result<(), LinkError> {
    let link_id = shared.next_id();
    if !authed.is_empty() {
        place.prove();
    }
    let idle = shared.settings.idle_timeout;
    let result = loop {
        let frame = tokio::select! {
            _ = shared.stop.cancelled() => { stream.close().await; break Ok(()); }
            f = tokio::time::timeout(idle, stream.read_frame()) => f,
        };
        let frame = match frame {
            Err(_) => {
                stream.close().await;
                break Ok(());
            }
            Ok(Err(e)) => break Err(e),
            Ok(Ok(f)) => f,
        };
        match frame {
            Frame::Close => {
                stream.close().await;
                break Ok(());
            }
            Frame::Header(_) => {
                stream.fail("not-well-formed", "second header").await;
                break Err(LinkError::Refused("second header".into()));
            }
            Frame::Stanza(el) => {
                let before = authed.len();
                if let Err(e) = handle(
                    &shared,
                    &inflight,
                    &mut stream,
                    &stream_id,
                    &mut authed,
                    tls,
                    el,
                    &h,
                    peer_cert.as_ref(),
                )
                .await
                {
                    break Err(e);
                }
                if authed.len() != before {
                    place.prove();
                    if let Some(((_, remote), auth)) = authed.iter().next() {
                        lock(&shared.s2s.state).insert(
                            link_id,
                            Link {
                                domain: remote.clone(),
                                direction: "inbound",
                                auth: *auth,
                                tls,
                            },
                        );
                    }
                }
            }
        }
    };
    lock(&shared.s2s.state).remove(&link_id);
    result
}

/// One top-level element of an inbound stream.
#[allow(clippy::too_many_arguments)]
async fn handle(
    shared: &Arc<Shared>,
    inflight: &Arc<tokio::sync::Semaphore>,
    stream: &mut XmlStream<Box<dyn Io>>,
    stream_id: &str,
    authed: &mut HashMap<(String, String), PeerAuth>,
    tls: bool,
    el: Element,
    h: &crate::framer::Header,
    peer_cert: Option<&rustls::pki_types::CertificateDer<'static>>,
) -> Result<(), LinkError> {
    let settings = &shared.settings;
    if el.is(NS_SASL, "auth") {
        // XEP-0178: SASL EXTERNAL with the certificate TLS verified. The
        // authorization identity is the peer's domain ("=" or nothing:
        // the stream header's `from`).
        let claimed = {
            use base64::Engine;
            let text = el.text();
            let text = text.trim();
            if text.is_empty() || text == "=" {
                h.from.clone().unwrap_or_default()
            } else {
                base64::engine::general_purpose::STANDARD
                    .decode(text)
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .unwrap_or_default()
            }
        };
        let claimed = domain_of(&claimed);
        let to = domain_of(h.to.as_deref().unwrap_or_default());
        let ok = el.attr("mechanism") == Some("EXTERNAL")
            && peer_cert.is_some_and(|c| certificate_names(c, &claimed));
        if !ok {
            warn!(remote = %claimed, "SASL EXTERNAL refused");
            let failure = Element::new(NS_SASL, "failure")
                .with_child(Element::new(NS_SASL, "not-authorized"));
            return stream.send_element(&failure, NS_SERVER).await;
        }
        stream
            .send_element(&Element::new(NS_SASL, "success"), NS_SERVER)
            .await?;
        // The stream restarts (RFC 6120 §6.4.6); it speaks for `claimed`.
        stream.framer.restart();
        accept_header(
            stream,
            shared,
            &token(),
            settings.connect_timeout,
            false,
            false,
            false,
        )
        .await?;
        info!(remote = %claimed, "inbound XMPP stream authenticated (SASL EXTERNAL)");
        authed.insert((to, claimed), PeerAuth::Certificate);
        return Ok(());
    }
    if el.is(NS_DIALBACK, "result") {
        let (Some(from), Some(to)) = (el.attr("from"), el.attr("to")) else {
            stream.fail("improper-addressing", "").await;
            return Err(LinkError::Refused("dialback without addresses".into()));
        };
        let (from, to) = (domain_of(from), domain_of(to));
        if !settings.domains.contains(&to) {
            let reply = Element::new(NS_DIALBACK, "result")
                .with_attr("", "from", &to)
                .with_attr("", "to", &from)
                .with_attr("", "type", "error")
                .with_child(
                    Element::new(NS_SERVER, "error")
                        .with_attr("", "type", "cancel")
                        .with_child(Element::new(crate::stanza::NS_STANZAS, "item-not-found")),
                );
            return stream.send_element(&reply, NS_SERVER).await;
        }
        if settings.require_tls && !tls {
            stream.fail("policy-violation", "TLS is required").await;
            return Err(LinkError::Refused("dialback before TLS".into()));
        }
        let valid = shared
            .s2s
            .verify(shared, &to, &from, stream_id, &el.text())
            .await;
        let reply = Element::new(NS_DIALBACK, "result")
            .with_attr("", "from", &to)
            .with_attr("", "to", &from)
            .with_attr("", "type", if valid { "valid" } else { "invalid" });
        stream.send_element(&reply, NS_SERVER).await?;
        if valid {
            info!(remote = %from, tls, "inbound XMPP stream authenticated (dialback)");
            authed.insert((to, from), PeerAuth::Dialback);
        } else {
            warn!(remote = %from, "inbound dialback failed");
        }
        return Ok(());
    }
    if el.is(NS_DIALBACK, "verify") {
        // We are the authoritative server: was this key ours?
        let (from, to, id) = (
            domain_of(el.attr("from").unwrap_or_default()),
            domain_of(el.attr("to").unwrap_or_default()),
            el.attr("id").unwrap_or_default(),
        );
        let ours = settings.domains.contains(&to);
        let valid =
            ours && dialback_key(&settings.dialback_secret, &from, &to, id) == el.text().trim();
        let reply = Element::new(NS_DIALBACK, "verify")
            .with_attr("", "from", &to)
            .with_attr("", "to", &from)
            .with_attr("", "id", id)
            .with_attr("", "type", if valid { "valid" } else { "invalid" });
        return stream.send_element(&reply, NS_SERVER).await;
    }
    if el.ns != NS_SERVER {
        stream.fail("unsupported-stanza-type", "").await;
        return Err(LinkError::Refused(format!(
            "unsupported element {}",
            el.name
        )));
    }
    // RFC 6120 §4.9.3.9: only from a domain this stream authenticated for.
    let from = crate::jid_domain(el.attr("from"));
    let to = crate::jid_domain(el.attr("to"));
    let Some(auth) = authed.get(&(to.clone(), from.clone())).copied() else {
        let condition = if authed.keys().any(|(_, r)| *r == from) {
            "host-unknown"
        } else {
            "invalid-from"
        };
        warn!(%from, %to, condition, "stanza from a domain the stream did not authenticate for");
        stream.fail(condition, "").await;
        return Err(LinkError::Refused(format!("{condition}: {from}")));
    };
    let peer = Peer {
        adapter: settings.name.clone(),
        protocol: Protocol::Xmpp,
        domain: from.clone(),
        auth,
        tls,
    };
    let permit = inflight
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| LinkError::Closed)?;
    crate::dispatch(
        shared.clone(),
        peer,
        el,
        NS_SERVER,
        crate::Reply::S2s { local: to },
        permit,
    );
    Ok(())
}

/// A domain from a stream header or a dialback element, as RFC 7622
/// §3.2 compares domainparts (IDNA mapping to the ASCII form); what is
/// no domain is kept lower-cased, to be refused as unknown.
fn domain_of(d: &str) -> String {
    parley_adapter::normalize_domain(d).unwrap_or_else(|| d.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    struct NoDns;

    #[async_trait::async_trait]
    impl Locator for NoDns {
        async fn srv(&self, _: &str) -> Option<Vec<parley_adapter::SrvTarget>> {
            None
        }
        async fn addresses(&self, _: &str) -> Vec<std::net::IpAddr> {
            Vec::new()
        }
    }

    #[test]
    fn inbound_streams_are_bounded_in_all_and_per_address() {
        let s2s = S2s::new(Arc::new(NoDns));
        let a: std::net::IpAddr = "127.0.0.2".parse().unwrap();
        let b: std::net::IpAddr = "127.0.0.3".parse().unwrap();
        let first = s2s.admit(3, 2, a).expect("a's first");
        let _second = s2s.admit(3, 2, a).expect("a's second");
        assert!(s2s.admit(3, 2, a).is_none(), "a's share is two");
        let third = s2s.admit(3, 2, b).expect("b's first");
        third.prove();
        drop(first);
        assert!(s2s.admit(3, 2, a).is_some(), "a place came free");
    }

    #[test]
    fn when_all_are_taken_the_oldest_unproven_stream_makes_room() {
        let s2s = S2s::new(Arc::new(NoDns));
        let ip = |n: u8| std::net::IpAddr::from([127, 0, 0, n]);
        let oldest = s2s.admit(3, 3, ip(2)).unwrap();
        oldest.prove();
        let unproven = s2s.admit(3, 3, ip(3)).unwrap();
        let newer = s2s.admit(3, 3, ip(4)).unwrap();
        // Full: the oldest stream that has not authenticated goes.
        let newcomer = s2s.admit(3, 3, ip(5)).expect("room was made");
        assert!(unproven.close.is_cancelled());
        assert!(!oldest.close.is_cancelled() && !newer.close.is_cancelled());
        // Its place is already given back; dropping it later changes nothing.
        drop(unproven);
        assert_eq!(lock(&s2s.inbound).streams.len(), 3);
        // When every stream has authenticated, a newcomer is refused.
        newer.prove();
        newcomer.prove();
        assert!(s2s.admit(3, 3, ip(6)).is_none());
    }
}
