//! The registrar and the proxy with real user agents: SIPp registers with
//! digest authentication and exchanges MESSAGE through Parley; users are
//! provisioned with `parley user add`.

use std::process::Command;

use parley_test_support::server::TestServer;
use parley_test_support::sipp::Sipp;

/// Digest as SIPp speaks it: MD5 only.
const SIPP_AUTH: &str = "[auth]\nalgorithms = [\"MD5\"]\n";

/// Provisions a user with the real command line, on the server's database.
fn user_add(server: &TestServer, address: &str, password: &str) {
    let config = server.state_dir.join("cli.toml");
    std::fs::write(
        &config,
        format!("state_dir = {:?}\n", server.state_dir.display().to_string()),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_parley"))
        .args(["user", "add", address, "--password", password, "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn register(server: &TestServer, user: &str, password: &str, transport: &str, port: u16) {
    let target = if transport == "u1" {
        server.udp
    } else {
        server.tcp
    };
    Sipp::start_on(
        "uac_register_auth.xml",
        transport,
        1,
        Some(target),
        port,
        &["-s", user, "-au", user, "-ap", password],
    )
    .wait();
}

#[test]
fn sipp_registers_with_digest_and_a_message_reaches_the_registered_agent() {
    // SIPp answers only MD5 challenges, and only the first one it sees.
    let server = TestServer::start(SIPP_AUTH);
    user_add(&server, "alice@localhost", "alice-secret");
    user_add(&server, "bob@localhost", "bob-secret");
    let bob_port = parley_test_support::sipp::free_port();
    register(&server, "bob", "bob-secret", "u1", bob_port);
    let bob = Sipp::start_on("uas_message.xml", "u1", 1, None, bob_port, &[]);
    Sipp::start(
        "uac_message_auth.xml",
        "u1",
        1,
        Some(server.udp),
        &["-s", "alice", "-au", "alice", "-ap", "alice-secret"],
    )
    .wait();
    let trace = bob.wait();
    assert!(trace.contains("Hello from SIPp"), "{trace}");
}
