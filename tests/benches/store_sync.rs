//! What durability costs: one kept message written with a full sync (the
//! write that backs a 202, `put_offline`) against one archive row written
//! the ordinary way (`synchronous=NORMAL`), each a one-row transaction on
//! the same SQLite file. Prints both and the ratio.
//!
//! Run: cargo bench --bench store_sync

use std::time::{Duration, Instant};

use parley::store::{ArchiveRow, OfflineRow, SqliteStore, Store};

fn main() {
    let n: u32 = std::env::var("WRITES")
        .ok()
        .and_then(|v| v.parse().ok())
        // `cargo test` runs this as a smoke test: a small count.
        .unwrap_or(if cfg!(debug_assertions) { 20 } else { 2000 });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = std::env::temp_dir().join(format!("parley-store-sync-bench-{}", std::process::id()));
    let store = rt
        .block_on(SqliteStore::open(&dir.join("bench.db")))
        .expect("store");
    let full = rt.block_on(async {
        let started = Instant::now();
        for i in 0..n {
            let row = OfflineRow {
                id: 0,
                aor: format!("user{}@localhost", i % 100),
                sender: "<sip:alice@localhost>".into(),
                content_type: "text/plain".into(),
                body: vec![b'x'; 200],
                received_at: 1,
                expires_at: i64::MAX,
            };
            store.put_offline(&row).await.expect("put_offline");
        }
        started.elapsed()
    });
    let normal = rt.block_on(async {
        let started = Instant::now();
        for i in 0..n {
            let row = ArchiveRow {
                id: 0,
                at: i64::from(i),
                source_protocol: "sip".into(),
                destination_protocol: "sip".into(),
                sender: "alice@localhost".into(),
                recipient: format!("user{}@localhost", i % 100),
                peer_domain: String::new(),
                auth: "digest".into(),
                decision: "relayed".into(),
                cpim: "x".repeat(200),
            };
            store.put_archive_batch(&[row]).await.expect("archive");
        }
        started.elapsed()
    });
    let per = |d: Duration| d.as_secs_f64() * 1e6 / f64::from(n);
    println!(
        "one-row write, {n} each: synchronous=FULL (kept message) {:.1} us, NORMAL (archive row) {:.1} us; durability costs {:.1}x",
        per(full),
        per(normal),
        per(full) / per(normal).max(f64::MIN_POSITIVE)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
