//! Helpers shared by Parley's integration tests and benchmarks: where the
//! test data lives and how its manifests read.

#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

pub mod baresip;
pub mod dns;
pub mod ejabberd;
pub mod fuzz;
pub mod inspircd;
pub mod kamailio;
pub mod ngircd;
pub mod pki;
pub mod postgres;
pub mod prosody;
pub mod server;
pub mod simnet;
pub mod sipp;

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The repository's `tests/data` folder.
pub fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../data")
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// One message of a SIP corpus and what must happen to it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SipCase {
    /// File name without `.sip`.
    pub name: String,
    /// RFC section the case comes from, when it comes from one.
    pub section: Option<String>,
    /// What the case is about.
    pub title: String,
    /// `accept` or `reject`.
    pub verdict: String,
    /// Text the error must contain (reject).
    pub fault: Option<String>,
    /// Status code a server answers with (reject).
    pub status: Option<u16>,
    /// What a server does with it beyond parsing (accept).
    pub answer: Option<String>,
    /// The status the stateless screen answers with, when it differs from
    /// `status` (0: refused without an answer, as for an ACK).
    pub stateless: Option<u16>,
    /// Bytes after the message that a datagram parser discards.
    pub trailing: Option<usize>,
    /// Number of multipart body parts.
    pub parts: Option<usize>,
    /// Expected Request-URI host (IPv6 cases).
    pub host: Option<String>,
    /// Expected Request-URI port.
    pub port: Option<u16>,
    /// Expected body length.
    pub body_len: Option<usize>,
    /// The message bytes, filled in by [`sip_corpus`].
    #[serde(skip)]
    pub bytes: Vec<u8>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    case: Vec<SipCase>,
}

/// Every file of a fuzz corpus (`tests/fuzz/corpus/<target>`).
pub fn fuzz_corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = repo_root().join("tests/fuzz/corpus").join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(Result::ok)
        .filter(|e| e.path().is_file())
        .map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            (name, std::fs::read(e.path()).unwrap_or_default())
        })
        .collect();
    files.sort();
    files
}

/// Loads `tests/data/sip/<set>/manifest.toml` and every message it names.
pub fn sip_corpus(set: &str) -> Vec<SipCase> {
    let dir = data_dir().join("sip").join(set);
    let text = std::fs::read_to_string(dir.join("manifest.toml"))
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let manifest: Manifest =
        toml::from_str(&text).unwrap_or_else(|e| panic!("{set} manifest: {e}"));
    manifest
        .case
        .into_iter()
        .map(|mut c| {
            let path = dir.join(format!("{}.sip", c.name));
            c.bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            c
        })
        .collect()
}

/// Reads one Content-Length-framed SIP message from a blocking stream
/// (panics when the stream ends or fails first).
pub fn read_message(stream: &mut std::net::TcpStream) -> parley::proto::sip::Message {
    use std::io::Read;
    let limits = parley::proto::sip::Limits::default();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Ok(Some((skip, len))) = parley::proto::sip::frame(&buf, &limits) {
            let data = bytes::Bytes::copy_from_slice(&buf[skip..skip + len]);
            return parley::proto::sip::Message::parse(
                data,
                parley::proto::sip::Framing::Stream,
                &limits,
            )
            .expect("a message");
        }
        let n = stream.read(&mut chunk).expect("read");
        assert!(n > 0, "connection closed");
        buf.extend_from_slice(&chunk[..n]);
    }
}
