//! The sans-IO rule of the design: `src/proto` never touches a runtime, a
//! socket or the clock.

use std::path::Path;

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let p = entry.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn proto_is_sans_io() {
    let root = parley_test_support::repo_root().join("src/proto");
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    assert!(files.len() >= 10, "src/proto went missing");
    let forbidden = [
        "tokio",
        "std::net::UdpSocket",
        "std::net::TcpStream",
        "std::net::TcpListener",
        "UdpSocket",
        "TcpStream",
        "Instant::now",
        "SystemTime::now",
        "std::thread::sleep",
        "std::fs",
    ];
    let mut found = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        for word in forbidden {
            if text.contains(word) {
                found.push(format!("{}: {word}", f.display()));
            }
        }
    }
    assert!(found.is_empty(), "I/O in src/proto:\n{}", found.join("\n"));
}
