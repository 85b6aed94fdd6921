//! Load for an MSRP relay (RFC 4976): a receiver authenticates to the
//! relay with AUTH; a sender then sends COUNT messages of SIZE bytes (each
//! in chunks of at most CHUNK bytes) through the relay to it, keeping
//! WINDOW transactions open. Prints messages per second, chunks per second
//! and, with --pid, the relay's CPU time per chunk.
//!
//! Usage: msrp_load RELAY_ADDR USER PASSWORD SIZE COUNT [--chunk N]
//!        [--window N] [--pid PID]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use parley::proto::msrp::{Decoder, Event, Flag, Head, MsrpLimits, MsrpUri};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 6 {
        eprintln!("usage: msrp_load RELAY_ADDR USER PASSWORD SIZE COUNT [--chunk N] [--window N] [--pid PID]");
        std::process::exit(2);
    }
    let relay_addr: std::net::SocketAddr = args[1].parse().expect("relay address");
    let (user, password) = (&args[2], &args[3]);
    let size: usize = args[4].parse().expect("size");
    let count: usize = args[5].parse().expect("count");
    let flag = |name: &str, default: usize| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .map_or(default, |v| v.parse().expect("a number"))
    };
    let chunk = flag("--chunk", 65536).max(1);
    let window = flag("--window", 32).max(1);
    let pid = flag("--pid", 0);

    let relay = MsrpUri::parse(&format!("msrp://{relay_addr};tcp")).unwrap();
    // The receiver is the relay's authenticated user: it AUTHs and is
    // reached through the relay over its own connection, as RFC 4976 has
    // it (the sender's To-Path is the receiver's Use-Path, then the
    // receiver).
    let recv = TcpStream::connect(relay_addr).expect("connect to the relay");
    recv.set_nodelay(true).ok();
    let local = recv.local_addr().unwrap();
    let receiver = MsrpUri::new(false, &local.ip().to_string(), local.port(), "loadrecv1");
    let mut recv_conn = Conn::new(recv);
    let use_path = auth(&mut recv_conn, &relay, &receiver, user, password);
    let sender = TcpStream::connect(relay_addr).expect("connect to the relay");
    sender.set_nodelay(true).ok();
    let local = sender.local_addr().unwrap();
    let me = MsrpUri::new(false, &local.ip().to_string(), local.port(), "loadsend1");
    let mut conn = Conn::new(sender);
    let chunks_per_message = size.div_ceil(chunk).max(1);
    let expected = count * chunks_per_message;
    let recv_thread = std::thread::spawn(move || {
        let mut c = recv_conn;
        let mut chunks = 0usize;
        let mut bytes = 0usize;
        let mut current: Option<Head> = None;
        while chunks < expected {
            match c.event() {
                Event::Head(h) => current = Some(h),
                Event::Refused(_, e) => panic!("malformed MSRP: {e}"),
                Event::Data(d) => bytes += d.len(),
                Event::End(_) => {
                    let h = current.take().expect("a head");
                    if h.method() == Some("SEND") {
                        chunks += 1;
                        let own = h.to_path.last().cloned().unwrap();
                        c.write(&h.response(200, "OK", &own).to_bytes(None, Flag::End));
                    }
                }
            }
        }
        bytes
    });

    let body: Vec<u8> = (0..size).map(|i| b'a' + (i % 26) as u8).collect();
    let cpu_before = cpu_ticks(pid);
    let started = Instant::now();
    let mut open = 0usize;
    let mut answered = 0usize;
    let mut tid = 0u64;
    let mut current: Option<Head> = None;
    let mut seen = std::collections::HashSet::new();
    for n in 0..count {
        let mut offset = 0;
        loop {
            let end = (offset + chunk).min(size);
            while open >= window {
                match conn.event() {
                    Event::Head(h) => current = Some(h),
                    Event::End(_) => {
                        let h = current.take().expect("a head");
                        match h.code() {
                            // A relay answers hop by hop; the receiver's own
                            // 200 may come back through some relays too.
                            Some(200) if seen.insert(h.tid.clone()) => {
                                open -= 1;
                                answered += 1;
                            }
                            Some(200) => {}
                            Some(code) => panic!("a SEND was refused by the relay: {code}"),
                            None => {}
                        }
                    }
                    Event::Refused(_, e) => panic!("malformed MSRP: {e}"),
                    Event::Data(_) => {}
                }
            }
            tid += 1;
            let head = Head::request(
                "SEND",
                &format!("load{tid:08}"),
                vec![use_path.clone(), receiver.clone()],
                vec![me.clone()],
            )
            .with("Message-ID", format!("msg{n:08}"))
            .with("Byte-Range", format!("{}-{end}/{size}", offset + 1))
            .with("Content-Type", "text/plain");
            let last = end == size;
            conn.write(&head.to_bytes(
                Some(&body[offset..end]),
                if last { Flag::End } else { Flag::More },
            ));
            open += 1;
            if last {
                break;
            }
            offset = end;
        }
    }
    let received = recv_thread.join().expect("the receiver");
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = cpu_ticks(pid).saturating_sub(cpu_before);
    let hz = 100.0;
    let cpu_us_per_chunk = if pid > 0 {
        cpu as f64 / hz * 1e6 / expected as f64
    } else {
        f64::NAN
    };
    let _ = answered;
    println!(
        "messages {count} of {size} bytes ({expected} chunks, {received} body bytes) in {elapsed:.2} s: {:.0} messages/s, {:.0} chunks/s, {:.1} MiB/s, relay CPU {:.1} us/chunk",
        count as f64 / elapsed,
        expected as f64 / elapsed,
        received as f64 / elapsed / 1048576.0,
        cpu_us_per_chunk
    );
}

/// utime + stime of `pid` in clock ticks (0 when not given).
fn cpu_ticks(pid: usize) -> u64 {
    if pid == 0 {
        return 0;
    }
    let mut total = 0;
    // Every process of the relay: the pid and its children (Kamailio's
    // workers).
    let pids: Vec<usize> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .filter(|p: &usize| {
            std::fs::read_to_string(format!("/proc/{p}/stat"))
                .ok()
                .and_then(|s| {
                    s.rsplit_once(") ")
                        .map(|(_, r)| r.split(' ').nth(1).and_then(|x| x.parse::<usize>().ok()))
                })
                .flatten()
                .is_some_and(|ppid| ppid == pid)
                || *p == pid
        })
        .collect();
    for p in pids {
        if let Ok(s) = std::fs::read_to_string(format!("/proc/{p}/stat")) {
            if let Some((_, rest)) = s.rsplit_once(") ") {
                let f: Vec<&str> = rest.split(' ').collect();
                total += f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
                total += f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
            }
        }
    }
    total
}

struct Conn {
    s: TcpStream,
    buf: BytesMut,
    decoder: Decoder,
}

impl Conn {
    fn new(s: TcpStream) -> Conn {
        s.set_read_timeout(Some(Duration::from_secs(30))).ok();
        Conn {
            s,
            buf: BytesMut::with_capacity(1 << 20),
            decoder: Decoder::new(MsrpLimits::default()),
        }
    }

    fn write(&mut self, bytes: &[u8]) {
        self.s.write_all(bytes).expect("the relay takes bytes");
    }

    fn event(&mut self) -> Event {
        loop {
            if let Some(e) = self
                .decoder
                .decode(&mut self.buf)
                .expect("well-formed MSRP")
            {
                return e;
            }
            let mut chunk = [0u8; 65536];
            let n = self.s.read(&mut chunk).expect("the relay answers in time");
            assert!(n > 0, "the relay closed the connection");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    fn message(&mut self) -> Head {
        let mut head = None;
        loop {
            match self.event() {
                Event::Head(h) => head = Some(h),
                Event::Refused(_, e) => panic!("malformed MSRP: {e}"),
                Event::Data(_) => {}
                Event::End(_) => return head.expect("a head"),
            }
        }
    }
}

fn auth(conn: &mut Conn, relay: &MsrpUri, me: &MsrpUri, user: &str, password: &str) -> MsrpUri {
    let head = Head::request("AUTH", "auth0001", vec![relay.clone()], vec![me.clone()]);
    conn.write(&head.to_bytes(None, Flag::End));
    let challenge = conn.message();
    assert_eq!(challenge.code(), Some(401), "AUTH challenged");
    let value = parley::proto::digest::answer(
        challenge.values("WWW-Authenticate"),
        "AUTH",
        &relay.to_string(),
        user,
        password,
        "load0001",
    )
    .expect("a digest challenge");
    let head = Head::request("AUTH", "auth0002", vec![relay.clone()], vec![me.clone()])
        .with("Authorization", value);
    conn.write(&head.to_bytes(None, Flag::End));
    let ok = conn.message();
    assert_eq!(ok.code(), Some(200), "AUTH accepted");
    MsrpUri::parse(ok.header("Use-Path").expect("Use-Path")).unwrap()
}
