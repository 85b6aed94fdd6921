//! Resident memory of registrar bindings: 100,000 addresses of record with
//! one binding each, held by the location service as Parley holds them
//! (with write-through to SQLite). Prints bytes per binding; the goal is
//! at most 1 KiB.
//!
//! Run: cargo bench --bench bindings_memory

use std::net::SocketAddr;
use std::sync::Arc;

use parley::proto::sip::Transport;
use parley::simple::location::{Binding, Location};
use parley::store::SqliteStore;

/// Resident set size of this process, in bytes (Linux).
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn main() {
    let n: usize = std::env::var("BINDINGS")
        .ok()
        .and_then(|v| v.parse().ok())
        // `cargo test` runs this as a smoke test: a small count.
        .unwrap_or(if std::env::args().any(|a| a == "--bench") {
            100_000
        } else {
            2_000
        });
    let dir = std::env::temp_dir().join(format!("parley-bindings-{}", std::process::id()));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let store = SqliteStore::open(&dir.join("parley.db"))
            .await
            .expect("store");
        let location = Location::load(Arc::new(store), 0, None)
            .await
            .expect("location");
        let source: SocketAddr = "127.0.0.1:5070".parse().expect("address");
        // Warm up the allocator and the writer before measuring.
        let add = |i: usize| {
            let aor = format!("user{i}@example.com");
            let _ = location.update(&aor, |b: &mut Vec<Binding>| {
                b.push(Binding {
                    uri: format!("sip:user{i}@192.0.2.{}:{}", i % 250 + 1, 5060 + i % 1000).into(),
                    contact: format!(
                        "<sip:user{i}@192.0.2.{}:{};transport=udp>;+sip.instance=\"<urn:uuid:{i:08}-0000-0000-0000-000000000000>\"",
                        i % 250 + 1,
                        5060 + i % 1000
                    )
                    .into(),
                    expires_at: 4_000_000_000,
                    q: 1000,
                    call_id: format!("{i:016x}@192.0.2.1").into(),
                    cseq: 1,
                    path: "".into(),
                    transport: Transport::Udp,
                    source,
                    instance: format!("<urn:uuid:{i:08}-0000-0000-0000-000000000000>").into(),
                    reg_id: 1,
                    user_agent: "".into(),
                    node: "".into(),
                });
                Ok::<(), ()>(())
            });
        };
        for i in 0..1000 {
            add(n + i);
        }
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        let before = rss();
        for i in 0..n {
            add(i);
            // Registrations arrive over time: let the writer keep up, so
            // its queue does not inflate the figure.
            if i % 1000 == 999 {
                while location.pending_writes() > 0 {
                    tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                }
            }
        }
        // Let the writer drain its queue, so only the held bindings remain.
        for _ in 0..600 {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            if location.pending_writes() == 0 {
                break;
            }
        }
        let after = rss();
        let per = (after.saturating_sub(before)) as f64 / n as f64;
        println!(
            "{n} bindings: resident memory grew {:.1} MiB, {per:.0} bytes per binding (goal <= 1024)",
            (after.saturating_sub(before)) as f64 / 1_048_576.0
        );
    });
    let _ = std::fs::remove_dir_all(&dir);
}
