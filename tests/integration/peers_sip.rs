//! Parley against software nobody here wrote: SIPp scenarios over UDP and
//! TCP, sipsak's OPTIONS ping, and OpenSSL's TLS client for SIP over TLS
//! (Debian's SIPp is built without TLS, and sipsak's TLS mode does not read
//! the response). `tests/peers/install.sh` installs them; `tests/run.sh`
//! calls it first.

use std::process::Command;

use parley_test_support::server::TestServer;
use parley_test_support::sipp::{free_port, Sipp};

/// Runs a SIPp scenario against the server to completion; returns SIPp's
/// message trace.
fn sipp(server: &TestServer, scenario_file: &str, transport: &str, calls: u32) -> String {
    let target = match transport {
        "u1" => server.udp,
        "t1" => server.tcp,
        other => panic!("transport {other}"),
    };
    Sipp::start(scenario_file, transport, calls, Some(target), &[]).wait()
}

#[test]
fn sipp_options_over_udp_and_tcp() {
    let server = TestServer::start("");
    for transport in ["u1", "t1"] {
        let trace = sipp(&server, "options.xml", transport, 20);
        assert_eq!(trace.matches("\nSIP/2.0 200 OK").count(), 20, "{transport}");
    }
}

#[test]
fn sipp_lost_responses_are_recovered_by_retransmission() {
    let server = TestServer::start("");
    let trace = sipp(&server, "options_retransmit.xml", "u1", 30);
    let sent = trace.matches("\nOPTIONS sip:").count();
    let answered = trace.matches("\nSIP/2.0 200 OK").count();
    // SIPp dropped some 200s and retransmitted: every retransmission was answered.
    assert!(sent > 30, "no retransmission happened ({sent} requests)");
    assert_eq!(
        answered, sent,
        "every request, first or retransmitted, gets its 200"
    );
}

#[test]
fn sipp_malformed_requests_get_the_rfc4475_answers() {
    let server = TestServer::start("");
    for transport in ["u1", "t1"] {
        sipp(&server, "malformed.xml", transport, 3);
    }
}

#[test]
fn sipsak_options_ping_over_udp_and_tcp() {
    let server = TestServer::start("");
    for (args, addr) in [(vec![], server.udp), (vec!["--transport=tcp"], server.tcp)] {
        let out = Command::new("sipsak")
            .args(&args)
            .args(["-H", "127.0.0.1", "-l"])
            .arg(free_port().to_string())
            .arg("-s")
            .arg(format!("sip:{addr}"))
            .output()
            .expect("sipsak runs (tests/peers/install.sh installs it)");
        assert!(
            out.status.success(),
            "sipsak {args:?}: {:?}\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn openssl_client_gets_options_answered_over_tls() {
    let server = TestServer::start("");
    let ca = server.state_dir.join("tls/cert.pem");
    let request = "OPTIONS sip:localhost SIP/2.0\r\n\
                   Via: SIP/2.0/TLS 127.0.0.1:5999;branch=z9hG4bKossl1\r\n\
                   Max-Forwards: 70\r\n\
                   From: <sip:probe@localhost>;tag=9\r\n\
                   To: <sip:localhost>\r\n\
                   Call-ID: ossl1@test\r\n\
                   CSeq: 1 OPTIONS\r\n\
                   Content-Length: 0\r\n\r\n";
    let (text, err) = openssl_exchange(server.tls, &ca, None, request);
    assert!(text.starts_with("SIP/2.0 200 OK\r\n"), "{text}\n{err}");
    assert!(!err.contains("verify error"), "{err}");
}

/// Sends `request` over TLS with OpenSSL's client (verifying the server
/// against `ca`, presenting `client` = (certificate, key) when given) and
/// returns the first response and OpenSSL's diagnostics.
pub(crate) fn openssl_exchange(
    addr: std::net::SocketAddr,
    ca: &std::path::Path,
    client: Option<(&std::path::Path, &std::path::Path)>,
    request: &str,
) -> (String, String) {
    use std::io::{Read, Write};
    let mut cmd = Command::new("openssl");
    cmd.args([
        "s_client",
        "-quiet",
        "-verify_return_error",
        "-servername",
        "localhost",
        "-connect",
    ])
    .arg(addr.to_string())
    .arg("-CAfile")
    .arg(ca);
    if let Some((cert, key)) = client {
        cmd.arg("-cert").arg(cert).arg("-key").arg(key);
    }
    let mut child = cmd
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("openssl runs");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(request.as_bytes()).unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 {
                break;
            }
            seen.extend_from_slice(&buf[..n]);
            if String::from_utf8_lossy(&seen).contains("\r\n\r\n") {
                break;
            }
        }
        seen
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !reader.is_finished() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    drop(stdin);
    let _ = child.kill();
    let _ = child.wait();
    let seen = reader.join().unwrap();
    let mut err = String::new();
    let _ = child.stderr.take().unwrap().read_to_string(&mut err);
    (String::from_utf8_lossy(&seen).into_owned(), err)
}
