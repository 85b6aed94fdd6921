//! The console page, driven in headless Chromium (Debian's package)
//! against a running Parley after real SIP traffic: it shows the live
//! status, the refusals and the archive, with nothing fetched from
//! anywhere but Parley.

use std::process::Command;
use std::time::Duration;

use parley_test_support::server::TestServer;

use crate::presence::{status, Ua};
use crate::registrar_proxy::user_add;

const TOKEN: &str = "console-test-token";

/// The page's DOM after its scripts ran, as Chromium renders it.
fn rendered(url: &str) -> String {
    let profile = std::env::temp_dir().join(format!(
        "parley-chromium-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    ));
    let out = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--virtual-time-budget=5000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(["--dump-dom", url])
        .output()
        .expect("chromium (tests/peers/install.sh installs it)");
    let _ = std::fs::remove_dir_all(&profile);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The text of the table row whose first cell is `first`.
fn row<'a>(dom: &'a str, first: &str) -> Option<&'a str> {
    let at = dom.find(&format!("<td>{first}</td>"))?;
    let end = dom[at..].find("</tr>")? + at;
    Some(&dom[at..end])
}

#[test]
fn the_console_page_shows_status_refusals_and_the_archive() {
    let server = TestServer::start_with_admin(&format!(
        "[auth]\nregistrar = false\nproxy = false\n[admin]\ntoken = \"{TOKEN}\"\n\
         [gateway]\ndeny_domains = [\"evil.test\"]\n"
    ));
    let admin = server.admin.unwrap();
    user_add(&server, "alice@localhost", "pw");
    let ua = Ua::new(server.udp);
    ua.send(
        &format!(
            "REGISTER sip:localhost SIP/2.0\nFrom: <sip:alice@localhost>;tag=r\nTo: <sip:alice@localhost>\nCall-ID: reg-console\nCSeq: 1 REGISTER\nContact: <sip:alice@{}>\nExpires: 600\nUser-Agent: console-test/1.0",
            ua.local
        ),
        "",
    );
    assert_eq!(status(&ua.final_response()), 200);
    // Alice watches herself; a rule lets bob@partner.test watch her.
    ua.send(
        &format!(
            "SUBSCRIBE sip:alice@localhost SIP/2.0\nFrom: <sip:alice@localhost>;tag=s\nTo: <sip:alice@localhost>\nCall-ID: console-sub\nCSeq: 1 SUBSCRIBE\nEvent: presence\nExpires: 600\nContact: <sip:alice@{}>",
            ua.local
        ),
        "",
    );
    assert!(status(&ua.final_response()) < 300);
    let (code, body) = crate::admin::http(
        admin,
        "POST",
        "/api/v1/presence/rules",
        Some(TOKEN),
        Some(
            r#"{"presentity": "alice@localhost", "watcher": "bob@partner.test", "decision": "allow"}"#,
        ),
    );
    assert_eq!(code, 200, "{body}");
    ua.send(
        "MESSAGE sip:alice@localhost SIP/2.0\nFrom: <sip:mallory@evil.test>;tag=m\nTo: <sip:alice@localhost>\nCall-ID: console-evil\nCSeq: 1 MESSAGE\nContent-Type: text/plain",
        "let me in",
    );
    assert_eq!(status(&ua.final_response()), 403);
    // Alice enters a room (pager mode): the page lists it with her in it.
    ua.send(
        "MESSAGE sip:ops@conference.localhost SIP/2.0\nFrom: <sip:alice@localhost>;tag=j\nTo: <sip:ops@conference.localhost>\nCall-ID: console-join\nCSeq: 1 MESSAGE\nContent-Type: text/plain",
        "/join",
    );
    assert_eq!(status(&ua.final_response()), 200);
    std::thread::sleep(Duration::from_millis(300));

    let dom = rendered(&format!("http://{admin}/#token={TOKEN}"));
    assert!(dom.contains("Domains: localhost"), "{dom}");
    let regs = row(&dom, "Registrations").unwrap_or_else(|| panic!("no status table:\n{dom}"));
    assert!(regs.contains("<td>1</td>"), "{regs}");
    let refused = row(&dom, "domain-denied").unwrap_or_else(|| panic!("no refusal row:\n{dom}"));
    assert!(refused.contains("<td>1</td>"), "{refused}");
    assert!(
        row(&dom, "xmpp").is_some_and(|r| r.contains("<td>yes</td>")),
        "{dom}"
    );
    assert!(
        dom.contains("<td>mallory@evil.test</td>"),
        "archive row missing:\n{dom}"
    );
    assert!(dom.contains("<td>refused: domain-denied</td>"), "{dom}");
    let room =
        row(&dom, "ops@conference.localhost").unwrap_or_else(|| panic!("no room row:\n{dom}"));
    assert!(room.contains("alice (sip, moderator)"), "{room}");
    assert!(room.contains("public, open, persistent"), "{room}");
    // Version, uptime and the config in use.
    assert!(
        dom.contains(&format!(
            "Parley {} · up 0m · config ",
            env!("CARGO_PKG_VERSION")
        )),
        "{dom}"
    );
    // The lists: registrations, subscriptions, users with their rules.
    let reg = row(&dom, "alice@localhost").unwrap_or_else(|| panic!("no registration row:\n{dom}"));
    assert!(
        reg.contains(&format!("<td>sip:alice@{}</td>", ua.local)),
        "{reg}"
    );
    assert!(
        reg.contains("<td>udp</td>") && reg.contains("console-test/1.0"),
        "{reg}"
    );
    assert!(
        dom.contains(
            "<td>alice@localhost</td><td>alice@localhost</td><td>presence</td><td>allow</td>"
        ),
        "no subscription row:\n{dom}"
    );
    assert!(
        dom.contains("<td>alice@localhost</td><td>bob@partner.test: allow</td>"),
        "no user row with its rule:\n{dom}"
    );
    // Each row acts as the command line does: end a binding, remove a user.
    assert!(
        reg.contains(&format!(
            "<button data-action=\"end sip:alice@{}\">End</button>",
            ua.local
        )),
        "{reg}"
    );
    assert!(
        dom.contains("<button data-action=\"remove alice@localhost\">Remove</button>"),
        "{dom}"
    );
    // The chart: messages per second and a line per refusal reason, with
    // their legend, drawn by the page.
    let chart = &dom[dom.find("<svg id=\"chart\"").expect("chart")..];
    let chart = &chart[..chart.find("</svg>").expect("end of chart")];
    assert!(chart.contains("class=\"messages\""), "{chart}");
    assert!(chart.contains("data-reason=\"domain-denied\""), "{chart}");
    assert!(dom.contains("refused: domain-denied"), "{dom}");
    assert!(
        dom.contains("<div id=\"error\"></div>"),
        "an error shows:\n{dom}"
    );

    // Without the token the page asks for it and shows nothing.
    let dom = rendered(&format!("http://{admin}/"));
    assert!(dom.contains("<form id=\"login\">"), "{dom}");
    assert!(!dom.contains("<td>mallory@evil.test</td>"), "{dom}");
}
