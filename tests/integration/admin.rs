//! The admin API against a running Parley carrying real SIP traffic: the
//! bearer token, reads (status, registrations, subscriptions, refusals,
//! policy, adapters), writes (users, presence rules), JSON errors,
//! Prometheus metrics, the OpenAPI document checked against the routes,
//! and `parley status`.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use parley_test_support::server::TestServer;
use serde_json::Value;

use crate::presence::{status, Ua};
use crate::registrar_proxy::run_cli;

const TOKEN: &str = "s3cret-admin-token";

/// One HTTP/1.1 request; (status, body).
pub(crate) fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let body = body.unwrap_or("");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let code = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, body.to_string())
}

fn json(addr: SocketAddr, path: &str) -> Value {
    let (code, body) = http(addr, "GET", path, Some(TOKEN), None);
    assert_eq!(code, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
}

#[test]
fn the_admin_api_shows_and_changes_a_running_parley() {
    let server = TestServer::start_with_admin(&format!(
        "[auth]\nregistrar = false\nproxy = false\n[admin]\ntoken = \"{TOKEN}\"\n\
         [gateway]\ndeny_domains = [\"evil.test\"]\n"
    ));
    let admin = server.admin.unwrap();

    // Health and metrics need no token; the API does, and says why.
    assert_eq!(http(admin, "GET", "/health", None, None).0, 200);
    let (code, body) = http(admin, "GET", "/api/v1/status", None, None);
    assert_eq!(code, 401);
    assert!(body.contains("\"error\""), "{body}");
    assert_eq!(
        http(admin, "GET", "/api/v1/status", Some("wrong"), None).0,
        401
    );

    // Users: add through the API, then register and send real SIP.
    let (code, body) = http(
        admin,
        "POST",
        "/api/v1/users",
        Some(TOKEN),
        Some(r#"{"address": "alice@localhost", "password": "pw"}"#),
    );
    assert_eq!(code, 201, "{body}");
    let (code, body) = http(
        admin,
        "POST",
        "/api/v1/users",
        Some(TOKEN),
        Some(r#"{"address": "x@elsewhere.test", "password": "pw"}"#),
    );
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("not a local domain"), "{body}");
    assert_eq!(
        http(
            admin,
            "POST",
            "/api/v1/users",
            Some(TOKEN),
            Some("not json")
        )
        .0,
        400
    );
    assert!(json(admin, "/api/v1/users")
        .as_array()
        .unwrap()
        .iter()
        .any(|u| u == "alice@localhost"));

    let ua = Ua::new(server.udp);
    ua.send(
        &format!(
            "REGISTER sip:localhost SIP/2.0\nFrom: <sip:alice@localhost>;tag=r\nTo: <sip:alice@localhost>\nCall-ID: reg-admin\nCSeq: 1 REGISTER\nContact: <sip:alice@{}>\nExpires: 600",
            ua.local
        ),
        "",
    );
    assert_eq!(status(&ua.final_response()), 200);
    ua.send(
        "MESSAGE sip:alice@localhost SIP/2.0\nFrom: <sip:mallory@evil.test>;tag=m\nTo: <sip:alice@localhost>\nCall-ID: evil-1\nCSeq: 1 MESSAGE\nContent-Type: text/plain",
        "hi",
    );
    assert_eq!(status(&ua.final_response()), 403);
    ua.send(
        "SUBSCRIBE sip:alice@localhost SIP/2.0\nFrom: <sip:alice@localhost>;tag=s\nTo: <sip:alice@localhost>\nCall-ID: sub-admin\nCSeq: 1 SUBSCRIBE\nEvent: presence\nContact: <sip:alice@127.0.0.1:9>\nExpires: 600",
        "",
    );
    assert_eq!(status(&ua.final_response()), 200);

    let st = json(admin, "/api/v1/status");
    assert_eq!(st["registrations"], 1, "{st}");
    assert_eq!(st["subscriptions"], 1, "{st}");
    assert_eq!(st["refusals"]["domain-denied"], 1, "{st}");
    assert_eq!(st["adapters"][0]["name"], "xmpp", "{st}");
    let regs = json(admin, "/api/v1/registrations");
    assert_eq!(regs[0]["aor"], "alice@localhost", "{regs}");
    assert!(
        regs[0]["contact"]
            .as_str()
            .unwrap()
            .contains(&ua.local.to_string()),
        "{regs}"
    );
    let subs = json(admin, "/api/v1/subscriptions");
    assert_eq!(subs[0]["presentity"], "alice@localhost", "{subs}");
    assert_eq!(subs[0]["state"], "allow", "{subs}");
    assert_eq!(
        json(admin, "/api/v1/policy")["deny_domains"][0],
        "evil.test"
    );
    assert_eq!(json(admin, "/api/v1/refusals")["domain-denied"], 1);
    assert!(json(admin, "/api/v1/peers").as_array().unwrap().is_empty());

    // The refused message is in the compliance archive, as CPIM, with
    // the reason; searchable by domain and by address, and by time.
    let mut rows = Value::Null;
    for _ in 0..50 {
        rows = json(admin, "/api/v1/archive?domain=evil.test");
        if rows.as_array().is_some_and(|r| !r.is_empty()) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(rows[0]["sender"], "mallory@evil.test", "{rows}");
    assert_eq!(rows[0]["decision"], "refused: domain-denied", "{rows}");
    assert!(
        rows[0]["cpim"]
            .as_str()
            .unwrap()
            .contains("From: <im:mallory@evil.test>"),
        "{rows}"
    );
    assert_eq!(
        json(admin, "/api/v1/archive?address=alice@localhost")[0]["sender"],
        "mallory@evil.test"
    );
    assert!(
        json(admin, "/api/v1/archive?domain=evil.test&until=1970-01-02")
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        http(
            admin,
            "GET",
            "/api/v1/archive?since=yesterday",
            Some(TOKEN),
            None
        )
        .0,
        400
    );

    // Presence rules: set, read back, refuse nonsense.
    let (code, body) = http(
        admin,
        "POST",
        "/api/v1/presence/rules",
        Some(TOKEN),
        Some(
            r#"{"presentity": "alice@localhost", "watcher": "bob@partner.test", "decision": "allow"}"#,
        ),
    );
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        json(admin, "/api/v1/presence/rules")[0]["watcher"],
        "bob@partner.test"
    );
    let (code, body) = http(
        admin,
        "POST",
        "/api/v1/presence/rules",
        Some(TOKEN),
        Some(r#"{"presentity": "a@localhost", "watcher": "b@c.test", "decision": "maybe"}"#),
    );
    assert_eq!(code, 400, "{body}");

    // Reloading needs a configuration file; this server was given text.
    let (code, body) = http(admin, "POST", "/api/v1/policy/reload", Some(TOKEN), None);
    assert_eq!(code, 422, "{body}");
    assert!(body.contains("without a configuration file"), "{body}");

    // Prometheus text with what happened. (The recorder is per process and
    // other test servers share it: counters are checked for presence, the
    // gauges by name; their values are the status figures above.)
    let (code, metrics) = http(admin, "GET", "/metrics", None, None);
    assert_eq!(code, 200);
    for line in [
        "parley_sip_requests_total{method=\"REGISTER\"}",
        "parley_sip_responses_total{code=\"403\"}",
        "parley_policy_refusals_total{reason=\"domain-denied\"}",
        "# TYPE parley_registrations gauge",
        "# TYPE parley_presence_subscriptions gauge",
        "# TYPE parley_offline_queue_depth gauge",
        "# TYPE parley_federation_links gauge",
        "parley_transaction_seconds",
    ] {
        assert!(metrics.contains(line), "{line} missing:\n{metrics}");
    }

    // Remove the user: 200 with what ended, then 404.
    let (code, body) = http(
        admin,
        "DELETE",
        "/api/v1/users/alice@localhost",
        Some(TOKEN),
        None,
    );
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"removed\":\"alice@localhost\""), "{body}");
    assert_eq!(
        http(
            admin,
            "DELETE",
            "/api/v1/users/alice@localhost",
            Some(TOKEN),
            None
        )
        .0,
        404
    );
    let (code, body) = http(admin, "GET", "/api/v1/nothing", Some(TOKEN), None);
    assert_eq!(code, 404);
    assert!(body.contains("\"error\""), "{body}");

    // `parley status` through the same API.
    let config = server.state_dir.join("status.toml");
    std::fs::write(
        &config,
        format!("[admin]\nlisten = \"{admin}\"\ntoken = \"{TOKEN}\"\n"),
    )
    .unwrap();
    let text = run_cli(&["status"], &config);
    assert!(
        text.contains("registrations") && text.contains("domain-denied"),
        "{text}"
    );
    assert!(text.contains("xmpp"), "{text}");
}

#[test]
fn the_openapi_document_matches_the_routes() {
    let server = TestServer::start_with_admin(&format!("[admin]\ntoken = \"{TOKEN}\"\n"));
    let admin = server.admin.unwrap();
    let doc: Value = serde_json::from_str(parley::admin::OPENAPI).unwrap();
    let served: Value = json(admin, "/api/v1/openapi.json");
    assert_eq!(served, doc);
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 13);
    for (path, ops) in paths {
        for (method, op) in ops.as_object().unwrap() {
            let concrete = path.replace("{address}", "nobody@localhost");
            let (code, body) = http(
                admin,
                &method.to_uppercase(),
                &concrete,
                Some(TOKEN),
                Some("{}"),
            );
            // Implemented: neither 404 from the router nor 405.
            assert_ne!(code, 405, "{method} {path}");
            if code == 404 {
                assert!(
                    !body.contains("no such resource"),
                    "{method} {path} is not routed"
                );
            }
            // Every status it answers is documented.
            let documented = op["responses"].as_object().unwrap();
            assert!(
                documented.contains_key(&code.to_string()),
                "{method} {path} answered {code}, not in the document: {body}"
            );
        }
    }
}

#[test]
fn a_running_parley_reloads_its_policy_on_sighup_and_keeps_its_token() {
    let parley = crate::operator::Running::start(
        "admin-proc",
        "[auth]\nregistrar = false\nproxy = false\n[xmpp]\nenabled = false\n[log]\nlevel = \"warn\"\n",
    );
    let (config, admin, child) = (&parley.config, parley.admin, &parley.child);
    let write_config = |extra: &str| parley.write(extra);
    // The token was made on first start and kept for `parley status`.
    let token = parley.token();
    assert_eq!(
        http(admin, "GET", "/api/v1/refusals", Some(token.trim()), None).0,
        200
    );
    run_cli(&["status"], config);

    let ua = Ua::new(parley.sip);
    let from_evil = |n: u32| {
        ua.send(
            &format!("MESSAGE sip:alice@localhost SIP/2.0\nFrom: <sip:mallory@evil.test>;tag=e{n}\nTo: <sip:alice@localhost>\nCall-ID: hup-{n}\nCSeq: 1 MESSAGE\nContent-Type: text/plain"),
            "hi",
        );
        status(&ua.final_response())
    };
    // No such user yet, but not refused by policy.
    assert_eq!(from_evil(0), 404);
    // The operator denies evil.test and sends SIGHUP.
    write_config("[gateway]\ndeny_domains = [\"evil.test\"]");
    let hup = Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    let mut refused = false;
    for n in 1..50 {
        if from_evil(n) == 403 {
            refused = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(refused, "the reloaded policy was not applied");
    // The API reloads from the same file.
    let (code, body) = http(
        admin,
        "POST",
        "/api/v1/policy/reload",
        Some(token.trim()),
        None,
    );
    assert_eq!(code, 200, "{body}");
}
