//! Fan-out of a chat room: MEMBERS receivers in one room, then MESSAGES
//! messages said to it one after the other; for each message, the time
//! from sending it until every receiver has its copy. Prints the median
//! and the 95th percentile of that time, the copies delivered per second
//! over the whole run and, with --pid, the server's CPU time per copy.
//!
//! Two set-ups, the same counting:
//!   prosody: MEMBERS XMPP occupants (anonymous c2s logins at --c2s) of a
//!            room on Prosody's MUC; an XMPP occupant speaks.
//!   parley:  a room Parley hosts; --sip-members of the MEMBERS are SIP
//!            pager-mode users (registered to one UDP socket here, which
//!            answers every MESSAGE), the rest XMPP occupants that come in
//!            through Prosody (c2s here, s2s to Parley); a SIP member speaks.
//!
//! Usage: room_fanout prosody --c2s ADDR --domain D --room ROOM --members N
//!            --messages M [--pid PID]
//!        room_fanout parley --c2s ADDR --domain D --room ROOM --members N
//!            --messages M --sip ADDR --sip-domain D --sip-members K [--pid PID]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

const MARK: &str = "BENCH-";
const MAX_MESSAGES: usize = 1000;

/// Copies of each message seen, and when the last one came.
struct Counts {
    start: Instant,
    copies: Vec<AtomicU32>,
    last: Vec<AtomicU64>,
}

impl Counts {
    fn new() -> Counts {
        Counts {
            start: Instant::now(),
            copies: (0..MAX_MESSAGES).map(|_| AtomicU32::new(0)).collect(),
            last: (0..MAX_MESSAGES).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Counts every marker in `text`.
    fn scan(&self, text: &str) {
        let mut rest = text;
        while let Some(i) = rest.find(MARK) {
            rest = &rest[i + MARK.len()..];
            let n: String = rest.chars().take_while(char::is_ascii_digit).collect();
            if let Ok(k) = n.parse::<usize>() {
                if k < MAX_MESSAGES && rest[n.len()..].starts_with('-') {
                    self.copies[k].fetch_add(1, Ordering::Relaxed);
                    let at = self.start.elapsed().as_nanos() as u64;
                    self.last[k].fetch_max(at, Ordering::Relaxed);
                }
            }
        }
    }
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

fn ticks(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let after = s.rsplit_once(')')?.1;
            let f: Vec<&str> = after.split_whitespace().collect();
            Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
        })
        .unwrap_or(0)
}

/// Reads from `s` into `buf` until `pattern` is in it; returns what came
/// up to and including it.
async fn read_until(
    s: &mut TcpStream,
    buf: &mut Vec<u8>,
    pattern: &str,
) -> std::io::Result<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(i) = find(buf, pattern.as_bytes()) {
            let end = i + pattern.len();
            let text = String::from_utf8_lossy(&buf[..end]).into_owned();
            buf.drain(..end);
            return Ok(text);
        }
        let mut chunk = [0u8; 16384];
        let left = deadline.saturating_duration_since(Instant::now());
        let n = tokio::time::timeout(left, s.read(&mut chunk))
            .await
            .map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::TimedOut, pattern.to_string())
            })??;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!(
                    "closed while waiting for {pattern}: {}",
                    String::from_utf8_lossy(buf)
                ),
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// An anonymous XMPP login (SASL ANONYMOUS, no TLS on loopback) that
/// enters `room` as `nick` and waits for its own presence (status 110).
async fn occupant(
    c2s: SocketAddr,
    domain: &str,
    room: &str,
    nick: &str,
) -> std::io::Result<(TcpStream, Vec<u8>)> {
    let mut s = TcpStream::connect(c2s).await?;
    s.set_nodelay(true)?;
    let header = format!(
        "<?xml version='1.0'?><stream:stream to='{domain}' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>"
    );
    let mut buf = Vec::new();
    s.write_all(header.as_bytes()).await?;
    read_until(&mut s, &mut buf, "</stream:features>").await?;
    s.write_all(b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='ANONYMOUS'/>")
        .await?;
    read_until(&mut s, &mut buf, "success").await?;
    buf.clear();
    s.write_all(header.as_bytes()).await?;
    read_until(&mut s, &mut buf, "</stream:features>").await?;
    s.write_all(b"<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>")
        .await?;
    read_until(&mut s, &mut buf, "</iq>").await?;
    s.write_all(
        format!(
            "<presence to='{room}/{nick}'><x xmlns='http://jabber.org/protocol/muc'><history maxstanzas='0'/></x></presence>"
        )
        .as_bytes(),
    )
    .await?;
    // Our own presence carries status 110 (XEP-0045 §7.2.3).
    let own = format!("{room}/{nick}");
    loop {
        let text = read_until(&mut s, &mut buf, "</presence>").await?;
        if text.contains(&own) && text.contains("110") {
            break;
        }
        if text.contains("type='error'") || text.contains("type=\"error\"") {
            return Err(std::io::Error::other(format!("entry refused: {text}")));
        }
    }
    Ok((s, buf))
}

/// Counts the whole markers in `carry` and drops what it counted; what
/// may be the start of a marker cut in two stays for the next read.
fn scan_stream(carry: &mut Vec<u8>, counts: &Counts) {
    let mut consumed = 0;
    let mut pos = 0;
    while let Some(i) = find(&carry[pos..], MARK.as_bytes()) {
        let start = pos + i + MARK.len();
        let digits = carry[start..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        if start + digits >= carry.len() {
            break;
        }
        if digits > 0 && carry[start + digits] == b'-' {
            counts.scan(&String::from_utf8_lossy(&carry[pos + i..=start + digits]));
        }
        pos = start + digits;
        consumed = pos;
    }
    let keep_from = consumed.max(carry.len().saturating_sub(MARK.len() + 8));
    carry.drain(..keep_from);
}

/// Reads an occupant's stream from here on, counting markers.
fn count_xmpp(mut s: TcpStream, mut carry: Vec<u8>, counts: Arc<Counts>) {
    tokio::spawn(async move {
        let mut chunk = vec![0u8; 65536];
        loop {
            scan_stream(&mut carry, &counts);
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => carry.extend_from_slice(&chunk[..n]),
            }
        }
    });
}

/// The SIP side: one UDP socket for every pager-mode member, answering
/// each request with 200 and counting markers; responses go to the
/// request that waits for them (by Call-ID).
struct Sip {
    sock: Arc<UdpSocket>,
    server: SocketAddr,
    waiting: Arc<Mutex<HashMap<String, tokio::sync::oneshot::Sender<String>>>>,
    n: AtomicU64,
}

impl Sip {
    async fn start(server: SocketAddr, counts: Arc<Counts>) -> Sip {
        // A large receive buffer: a room's copies come as one burst, and a
        // datagram dropped here would cost a 500 ms retransmission.
        let raw = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
        raw.set_recv_buffer_size(4 << 20).unwrap();
        raw.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
            .unwrap();
        raw.set_nonblocking(true).unwrap();
        let sock = Arc::new(UdpSocket::from_std(raw.into()).unwrap());
        let waiting: Arc<Mutex<HashMap<String, tokio::sync::oneshot::Sender<String>>>> =
            Arc::default();
        let (s, w) = (sock.clone(), waiting.clone());
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65536];
            loop {
                let Ok((n, from)) = s.recv_from(&mut buf).await else {
                    return;
                };
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                let header = |name: &str| {
                    text.split("\r\n")
                        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(':')))
                        .map(str::trim)
                        .unwrap_or_default()
                        .to_string()
                };
                if text.starts_with("SIP/2.0 ") {
                    if text.starts_with("SIP/2.0 1") {
                        continue;
                    }
                    if let Some(tx) = w.lock().unwrap().remove(&header("Call-ID")) {
                        let _ = tx.send(text);
                    }
                    continue;
                }
                if text.starts_with("ACK ") {
                    continue;
                }
                let ok = format!(
                    "SIP/2.0 200 OK\r\nVia: {}\r\nFrom: {}\r\nTo: {};tag=bench\r\nCall-ID: {}\r\nCSeq: {}\r\nContent-Length: 0\r\n\r\n",
                    header("Via"),
                    header("From"),
                    header("To"),
                    header("Call-ID"),
                    header("CSeq")
                );
                let _ = s.send_to(ok.as_bytes(), from).await;
                if let Some((_, body)) = text.split_once("\r\n\r\n") {
                    counts.scan(body);
                }
            }
        });
        Sip {
            sock,
            server,
            waiting,
            n: AtomicU64::new(0),
        }
    }

    /// Sends a request and waits for its final response.
    async fn request(
        &self,
        method: &str,
        uri: &str,
        from: &str,
        extra: &str,
        body: &str,
    ) -> String {
        let n = self.n.fetch_add(1, Ordering::Relaxed);
        let local = self.sock.local_addr().unwrap();
        let call = format!("bench-{n}");
        let to = if method == "REGISTER" {
            format!("sip:{from}")
        } else {
            uri.to_string()
        };
        let text = format!(
            "{method} {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKbench{n};rport\r\nMax-Forwards: 70\r\nFrom: <sip:{from}>;tag=t{n}\r\nTo: <{to}>\r\nCall-ID: {call}\r\nCSeq: 1 {method}\r\n{extra}Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        for _ in 0..5 {
            let (tx, rx) = tokio::sync::oneshot::channel();
            self.waiting.lock().unwrap().insert(call.clone(), tx);
            self.sock
                .send_to(text.as_bytes(), self.server)
                .await
                .unwrap();
            if let Ok(Ok(r)) = tokio::time::timeout(Duration::from_secs(2), rx).await {
                return r;
            }
        }
        panic!("no answer to {method} {uri}");
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mode = args.get(1).cloned().unwrap_or_default();
    let need = |name: &str| arg(&args, name).unwrap_or_else(|| panic!("{name} is needed"));
    let c2s: SocketAddr = need("--c2s").parse().expect("--c2s address");
    let domain = need("--domain");
    let room = need("--room");
    let members: usize = need("--members").parse().expect("--members");
    let messages: usize = need("--messages")
        .parse::<usize>()
        .expect("--messages")
        .min(MAX_MESSAGES);
    let pid: u32 = arg(&args, "--pid").map_or(0, |p| p.parse().expect("--pid"));
    let sip_members: usize =
        arg(&args, "--sip-members").map_or(0, |p| p.parse().expect("--sip-members"));
    let counts = Arc::new(Counts::new());

    // The SIP members (parley mode): registered, then in the room.
    let sip = if mode == "parley" {
        let server: SocketAddr = need("--sip").parse().expect("--sip address");
        let sip_domain = need("--sip-domain");
        let sip = Sip::start(server, counts.clone()).await;
        let local = sip.sock.local_addr().unwrap();
        for i in 0..=sip_members {
            let user = if i == sip_members {
                "sender".to_string()
            } else {
                format!("s{i}")
            };
            let aor = format!("{user}@{sip_domain}");
            let r = sip
                .request(
                    "REGISTER",
                    &format!("sip:{sip_domain}"),
                    &aor,
                    &format!("Contact: <sip:{user}@{local}>\r\nExpires: 3600\r\n"),
                    "",
                )
                .await;
            assert!(r.starts_with("SIP/2.0 200"), "REGISTER {aor}: {r}");
            let r = sip
                .request(
                    "MESSAGE",
                    &format!("sip:{room}"),
                    &aor,
                    "Content-Type: text/plain\r\n",
                    "/join",
                )
                .await;
            assert!(r.starts_with("SIP/2.0 200"), "/join {aor}: {r}");
        }
        Some((sip, format!("sender@{sip_domain}")))
    } else {
        None
    };
    // The XMPP members, one after the other (each waits for its own
    // presence).
    let xmpp_members = members - sip_members;
    let joined = Instant::now();
    for i in 0..xmpp_members {
        let (s, carry) = occupant(c2s, &domain, &room, &format!("x{i}"))
            .await
            .unwrap_or_else(|e| panic!("occupant {i}: {e}"));
        count_xmpp(s, carry, counts.clone());
    }
    // The XMPP speaker (prosody mode).
    let mut speaker = if sip.is_none() {
        let (s, _) = occupant(c2s, &domain, &room, "speaker")
            .await
            .expect("the speaker enters");
        Some(s)
    } else {
        None
    };
    eprintln!(
        "{members} members in {room} ({sip_members} SIP, {xmpp_members} XMPP) after {:.1} s",
        joined.elapsed().as_secs_f64()
    );
    // Let the entry traffic settle before measuring.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for c in &counts.copies {
        c.store(0, Ordering::Relaxed);
    }

    let cpu0 = ticks(pid);
    let run = Instant::now();
    let mut times = Vec::with_capacity(messages);
    let mut incomplete = 0;
    for k in 0..messages {
        let text = format!("{MARK}{k}- a message to everyone in the room");
        let t0 = counts.start.elapsed().as_nanos() as u64;
        match (&sip, &mut speaker) {
            (Some((sip, from)), _) => {
                let r = sip
                    .request(
                        "MESSAGE",
                        &format!("sip:{room}"),
                        from,
                        "Content-Type: text/plain\r\n",
                        &text,
                    )
                    .await;
                assert!(r.starts_with("SIP/2.0 200"), "MESSAGE: {r}");
            }
            (None, Some(s)) => {
                s.write_all(
                    format!("<message to='{room}' type='groupchat' id='b{k}'><body>{text}</body></message>")
                        .as_bytes(),
                )
                .await
                .expect("the speaker writes");
            }
            _ => unreachable!(),
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while (counts.copies[k].load(Ordering::Relaxed) as usize) < members
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        if (counts.copies[k].load(Ordering::Relaxed) as usize) < members {
            incomplete += 1;
        }
        let t1 = counts.last[k].load(Ordering::Relaxed);
        times.push(t1.saturating_sub(t0) as f64 / 1e6);
    }
    let elapsed = run.elapsed().as_secs_f64();
    let cpu = ticks(pid) - cpu0;
    let copies: u64 = counts
        .copies
        .iter()
        .map(|c| u64::from(c.load(Ordering::Relaxed)))
        .sum();
    times.sort_by(f64::total_cmp);
    let pct = |p: f64| times[((times.len() as f64 - 1.0) * p).round() as usize];
    let hz = 100.0;
    println!(
        "{mode}: {members} members, {messages} messages: to all in median {:.1} ms, p95 {:.1} ms; {:.0} copies/s; {:.1} us CPU per copy; {copies} copies{}",
        pct(0.5),
        pct(0.95),
        copies as f64 / elapsed,
        if copies > 0 { cpu as f64 * 1e6 / hz / copies as f64 } else { 0.0 },
        if incomplete > 0 { format!(", {incomplete} messages not delivered to all") } else { String::new() }
    );
}
