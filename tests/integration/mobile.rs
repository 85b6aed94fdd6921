//! Mobile users (RFC 5626 outbound, RFC 5627 GRUU, RFC 8599 push): STUN
//! keep-alives on the SIP port, answered to a real STUN client.

use std::process::Command;

use parley_test_support::server::TestServer;

#[test]
fn a_stun_client_learns_its_address_from_the_sip_port() {
    // The embedded default: nothing to turn on.
    let server = TestServer::start("");
    let out = Command::new("turnutils_stunclient")
        .args(["-p", &server.udp.port().to_string(), "127.0.0.1"])
        .output()
        .expect("turnutils_stunclient (tests/peers/install.sh installs coturn)");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    // "UDP reflexive addr: 127.0.0.1:PORT"
    let line = text
        .lines()
        .find(|l| l.contains("UDP reflexive addr"))
        .unwrap_or_else(|| panic!("no mapped address: {text}"));
    let mapped: std::net::SocketAddr = line
        .rsplit(' ')
        .next()
        .and_then(|a| a.trim().parse().ok())
        .unwrap_or_else(|| panic!("unreadable: {line}"));
    assert_eq!(mapped.ip(), std::net::Ipv4Addr::LOCALHOST);
    assert_ne!(mapped.port(), 0);
    // The SIP side is untouched: OPTIONS still answered on the same port.
    let ua = crate::presence::Ua::new(server.udp);
    ua.send(
        "OPTIONS sip:localhost SIP/2.0\nFrom: <sip:a@localhost>;tag=o\nTo: <sip:localhost>\nCall-ID: stun-o\nCSeq: 1 OPTIONS",
        "",
    );
    assert_eq!(crate::presence::status(&ua.final_response()), 200);
}
