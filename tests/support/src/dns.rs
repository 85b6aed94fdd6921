//! An authoritative DNS server for test zones, in-process (hickory-server),
//! on 127.0.0.1 with a port the system chose: the nameserver Parley's
//! RFC 3263 resolver is pointed at.

use std::net::{Ipv4Addr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use hickory_server::authority::{Catalog, ZoneType};
use hickory_server::proto::rr::rdata::{A, NAPTR, SOA, SRV};
use hickory_server::proto::rr::{LowerName, Name, RData, Record};
use hickory_server::store::in_memory::InMemoryAuthority;
use hickory_server::ServerFuture;

/// One record of a test zone (names are absolute, without the final dot).
#[derive(Debug, Clone)]
pub enum Rec {
    /// NAPTR at `name`.
    Naptr {
        /// Owner.
        name: String,
        /// Order.
        order: u16,
        /// Preference.
        preference: u16,
        /// `SIP+D2U` and the like.
        service: String,
        /// The SRV name.
        replacement: String,
    },
    /// SRV at `name`.
    Srv {
        /// Owner (`_sip._udp.example.test`).
        name: String,
        /// Priority.
        priority: u16,
        /// Weight.
        weight: u16,
        /// Port.
        port: u16,
        /// Target host.
        target: String,
    },
    /// A at `name`.
    A {
        /// Owner.
        name: String,
        /// Address.
        ip: Ipv4Addr,
    },
}

fn name(s: &str) -> Name {
    Name::from_str(&format!("{}.", s.trim_end_matches('.'))).expect("a DNS name")
}

/// A running DNS server; stops when dropped.
pub struct TestDns {
    /// Where it answers (UDP).
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestDns {
    /// Serves `zone` with `records` (plus its SOA).
    pub fn start(zone: &str, records: Vec<Rec>) -> TestDns {
        let origin = name(zone);
        let mut authority = InMemoryAuthority::empty(origin.clone(), ZoneType::Primary, false);
        let ttl = 60;
        let soa = SOA::new(
            name(&format!("ns.{zone}")),
            name(&format!("admin.{zone}")),
            1,
            3600,
            600,
            86_400,
            60,
        );
        authority.upsert_mut(Record::from_rdata(origin.clone(), ttl, RData::SOA(soa)), 1);
        for r in records {
            let record = match r {
                Rec::Naptr {
                    name: n,
                    order,
                    preference,
                    service,
                    replacement,
                } => Record::from_rdata(
                    name(&n),
                    ttl,
                    RData::NAPTR(NAPTR::new(
                        order,
                        preference,
                        b"s".to_vec().into_boxed_slice(),
                        service.into_bytes().into_boxed_slice(),
                        Vec::new().into_boxed_slice(),
                        name(&replacement),
                    )),
                ),
                Rec::Srv {
                    name: n,
                    priority,
                    weight,
                    port,
                    target,
                } => Record::from_rdata(
                    name(&n),
                    ttl,
                    RData::SRV(SRV::new(priority, weight, port, name(&target))),
                ),
                Rec::A { name: n, ip } => Record::from_rdata(name(&n), ttl, RData::A(A(ip))),
            };
            authority.upsert_mut(record, 1);
        }
        let mut catalog = Catalog::new();
        catalog.upsert(LowerName::new(&origin), vec![Arc::new(authority)]);
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let socket = tokio::net::UdpSocket::bind("127.0.0.1:0")
                    .await
                    .expect("bind");
                addr_tx
                    .send(socket.local_addr().expect("address"))
                    .expect("send");
                let mut server = ServerFuture::new(catalog);
                server.register_socket(socket);
                let _ = stopped.await;
                let _ = server.shutdown_gracefully().await;
            });
        });
        let addr = addr_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("DNS server started");
        TestDns {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for TestDns {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
