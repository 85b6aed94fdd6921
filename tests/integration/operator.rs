//! Parley as an operator runs it: a real `parley run` process on a
//! configuration file, driven through the command line (check-config,
//! the config search path, registrations, log level, reload, backup, user
//! removal, completions and the manual page) and SIP.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::admin::http;
use crate::presence::{header, status, Ua};

use crate::registrar_proxy::run_cli;

/// A `parley run` child process on a config file in its own directory,
/// killed when dropped.
pub(crate) struct Running {
    pub(crate) child: std::process::Child,
    pub(crate) dir: PathBuf,
    pub(crate) config: PathBuf,
    pub(crate) sip: SocketAddr,
    pub(crate) admin: SocketAddr,
    /// Ports to write the config with again (`write`).
    ports: (u16, u16),
    base: String,
}

impl Running {
    /// Starts Parley on `base` (its sections) with a UDP SIP listener and
    /// the console on free ports. Ports are picked free, but another test
    /// may take one before Parley binds it: then Parley exits saying so,
    /// and gets two other ports.
    pub(crate) fn start(name: &str, base: &str) -> Running {
        use parley_test_support::sipp::free_port;
        let dir = std::env::temp_dir().join(format!("parley-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("parley.toml");
        for attempt in 1.. {
            // (A failed attempt's drop removed the directory.)
            std::fs::create_dir_all(&dir).unwrap();
            let ports = (free_port(), free_port());
            let mut running = Running {
                child: Command::new("true").spawn().unwrap(),
                dir: dir.clone(),
                config: config.clone(),
                sip: SocketAddr::from(([127, 0, 0, 1], ports.0)),
                admin: SocketAddr::from(([127, 0, 0, 1], ports.1)),
                ports,
                base: base.to_string(),
            };
            running.write("");
            let _ = running.child.wait();
            running.child = Command::new(env!("CARGO_BIN_EXE_parley"))
                .args(["run", "--config"])
                .arg(&config)
                .stdout(std::fs::File::create(dir.join("stdout.log")).unwrap())
                .stderr(std::fs::File::create(dir.join("stderr.log")).unwrap())
                .spawn()
                .unwrap();
            let deadline = Instant::now() + Duration::from_secs(20);
            let mut exited = None;
            // Bound is not started: the console answers once every layer runs.
            while !healthy(running.admin) {
                if let Ok(Some(status)) = running.child.try_wait() {
                    exited = Some(status);
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "the console did not start:\n{}",
                    running.output()
                );
                std::thread::sleep(Duration::from_millis(50));
            }
            let Some(status) = exited else {
                return running;
            };
            assert!(
                attempt < 3 && running.output().contains("in use"),
                "parley exited ({status}):\n{}",
                running.output()
            );
        }
        unreachable!()
    }

    /// Writes the config file again: the base sections, then `extra`.
    pub(crate) fn write(&self, extra: &str) {
        self.rewrite(&format!("{}\n{extra}", self.base));
    }

    /// Writes the config file again with `sections` instead of the base
    /// ones (the listeners stay).
    pub(crate) fn rewrite(&self, sections: &str) {
        std::fs::write(
            &self.config,
            format!(
                "state_dir = {:?}\n{sections}\n[[sip.listen]]\ntransport = \"udp\"\naddress = \"127.0.0.1:{}\"\n\
                 [admin]\nlisten = \"127.0.0.1:{}\"\n[msrp]\nlisten = \"127.0.0.1:0\"\nlisten_tls = \"127.0.0.1:0\"\n",
                self.dir.display().to_string(),
                self.ports.0,
                self.ports.1
            ),
        )
        .unwrap()
    }

    /// What it wrote so far, standard output then standard error.
    pub(crate) fn output(&self) -> String {
        let read = |f: &str| std::fs::read_to_string(self.dir.join(f)).unwrap_or_default();
        format!("{}{}", read("stdout.log"), read("stderr.log"))
    }

    /// The admin token it made on first start.
    pub(crate) fn token(&self) -> String {
        std::fs::read_to_string(self.dir.join("admin-token"))
            .unwrap()
            .trim()
            .to_string()
    }

    /// Waits until its output holds `text`.
    pub(crate) fn wait_for_output(&self, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let out = self.output();
            if out.contains(text) {
                return out;
            }
            assert!(Instant::now() < deadline, "{text:?} never logged:\n{out}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// True when the console at `addr` answers `/health` (a socket bound
/// before start-up accepts before the console serves).
fn healthy(addr: SocketAddr) -> bool {
    use std::io::{Read as _, Write as _};
    let Ok(mut s) = std::net::TcpStream::connect(addr) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    if write!(
        s,
        "GET /health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .is_err()
    {
        return false;
    }
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    raw.starts_with(b"HTTP/1.1 200")
}

/// Runs `parley ARGS` in `cwd` with the environment changes given; returns
/// (exit code, stdout, stderr).
fn parley_in(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_parley"));
    c.args(args).current_dir(cwd).env_remove("PARLEY_CONFIG");
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("parley-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn the_config_is_found_where_a_service_looks() {
    let dir = scratch("search");
    // No file anywhere: the default compiled in, from any directory.
    let (code, out, err) = parley_in(&dir, &["check-config"], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("(embedded default config/parley.toml): ok"),
        "{out}"
    );
    assert!(out.contains("listen tls 127.0.0.1:5061"), "{out}");
    // ./config/parley.toml comes before the default.
    std::fs::create_dir_all(dir.join("config")).unwrap();
    std::fs::write(
        dir.join("config/parley.toml"),
        "domains = [\"cwd.example\"]\n",
    )
    .unwrap();
    let (_, out, _) = parley_in(&dir, &["check-config"], &[]);
    assert!(out.starts_with("config/parley.toml: ok"), "{out}");
    // $PARLEY_CONFIG before that; --config before everything.
    let env_file = dir.join("env.toml");
    std::fs::write(&env_file, "domains = [\"env.example\"]\n").unwrap();
    let env_path = env_file.display().to_string();
    let (_, out, _) = parley_in(&dir, &["check-config"], &[("PARLEY_CONFIG", &env_path)]);
    assert!(out.starts_with(&format!("{env_path}: ok")), "{out}");
    let (_, out, _) = parley_in(
        &dir,
        &["--config", "config/parley.toml", "check-config"],
        &[("PARLEY_CONFIG", &env_path)],
    );
    assert!(out.starts_with("config/parley.toml: ok"), "{out}");
    // A file that was named must exist: one error, said once.
    let (code, out, err) = parley_in(&dir, &["check-config", "--config", "nope.toml"], &[]);
    assert_eq!(code, 2, "{out}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert_eq!(err.matches("No such file").count(), 1, "{err}");
    assert!(err.starts_with("error: cannot read nope.toml: "), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn check_config_refuses_what_run_would_with_file_line_and_key() {
    let dir = scratch("check");
    let check = |text: &str| {
        std::fs::write(dir.join("p.toml"), text).unwrap();
        let (code, out, err) = parley_in(&dir, &["check-config", "p.toml"], &[]);
        assert_eq!(code, 2, "accepted:\n{text}\n{out}");
        err
    };
    let err = check("domains = [\"example.com\", \"not a domain\"]\n");
    assert!(
        err.starts_with("error: p.toml:1:27: domains[1] \"not a domain\" is not a domain name"),
        "{err}"
    );
    // The TOML caret stays on its own lines under the value.
    assert!(
        err.contains("\n  |\n1 | domains = [\"example.com\", \"not a domain\"]\n  |                           ^^^^^^^^^^^^^^"),
        "{err}"
    );
    let err = check("[log]\nlevel = \"loud\"\n");
    assert!(
        err.starts_with("error: p.toml:2:9: log.level \"loud\""),
        "{err}"
    );
    let err = check(
        "[[sip.listen]]\ntransport = \"tcp\"\naddress = \"127.0.0.1:5070\"\n[admin]\nlisten = \"127.0.0.1:5070\"\n",
    );
    assert!(
        err.starts_with(
            "error: p.toml:5:10: admin.listen 127.0.0.1:5070 is also sip.listen[0].address"
        ),
        "{err}"
    );
    std::fs::write(dir.join("cert.pem"), "not a certificate\n").unwrap();
    let err = check("[sip.tls]\ncert = \"cert.pem\"\nkey = \"no-key.pem\"\n");
    assert!(
        err.starts_with("error: p.toml:2:8: sip.tls.cert cert.pem: holds no certificate"),
        "{err}"
    );
    // A key the process may not read: named with its file. (Root reads
    // every file, so the file is a directory here.)
    let good = parley_test_support::pki::TestCert::self_signed("check");
    std::fs::create_dir_all(dir.join("key-dir")).unwrap();
    let err = check(&format!(
        "[sip.tls]\ncert = {}\nkey = \"key-dir\"\n",
        good.cert_toml()
    ));
    assert!(
        err.starts_with("error: p.toml:3:7: sip.tls.key key-dir: "),
        "{err}"
    );
    // `parley run` refuses the same, before binding anything.
    let (code, out, err) = parley_in(&dir, &["run", "--config", "p.toml"], &[]);
    assert_eq!(code, 2, "{out}");
    assert!(err.contains("sip.tls.key key-dir"), "{err}");
    assert!(!out.contains("listening"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn completions_and_the_manual_come_from_the_command_line_definitions() {
    let dir = scratch("docs");
    for shell in ["bash", "zsh", "fish"] {
        let (code, out, err) = parley_in(&dir, &["completions", shell], &[]);
        assert_eq!(code, 0, "{err}");
        for word in ["check-config", "registrations", "log-level", "backup"] {
            assert!(out.contains(word), "{shell}: {word} missing");
        }
    }
    let (code, man, _) = parley_in(&dir, &["man"], &[]);
    assert_eq!(code, 0);
    assert!(
        man.starts_with(".ie \\n(.g .ds Aq"),
        "{}",
        &man[..200.min(man.len())]
    );
    assert!(man.contains(".TH parley 1"), "{man}");
    assert!(man.contains("check\\-config"), "{man}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A REGISTER from `ua` for `user` with a User-Agent; the final status.
fn register(ua: &Ua, user: &str, call: &str, expires: u32) -> u16 {
    ua.send(
        &format!(
            "REGISTER sip:localhost SIP/2.0\nFrom: <sip:{user}@localhost>;tag=r{call}\nTo: <sip:{user}@localhost>\nCall-ID: {call}\nCSeq: 1 REGISTER\nContact: <sip:{user}@{}>\nExpires: {expires}\nUser-Agent: Operator-Test/1.0",
            ua.local
        ),
        "",
    );
    status(&ua.final_response())
}

#[test]
fn an_operator_lists_ends_reloads_and_backs_up_a_running_parley() {
    let parley = Running::start(
        "operator",
        "[auth]\nregistrar = false\nproxy = false\n[xmpp]\nenabled = false\n[log]\nlevel = \"info\"\n",
    );
    let config = parley.config.clone();
    let out = parley.wait_for_output("console at");
    // Start-up: what was read and the version first, then the listeners;
    // the console's address with its token once, on first start.
    let started = out.find("Parley started").expect("start-up line");
    let listening = out.find("listening on").expect("listening lines");
    assert!(started < listening, "{out}");
    assert!(
        out.contains(&format!("config={}", config.display())),
        "{out}"
    );
    assert!(out.contains(env!("CARGO_PKG_VERSION")), "{out}");
    let token = parley.token();
    assert!(
        out.contains(&format!("console: http://{}/#token={token}", parley.admin)),
        "{out}"
    );

    // A user made from a pipe, registered twice over SIP.
    let mut add = Command::new(env!("CARGO_BIN_EXE_parley"))
        .args(["user", "add", "alice@localhost", "--config"])
        .arg(&config)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    add.stdin
        .take()
        .unwrap()
        .write_all(b"from-a-pipe\n")
        .unwrap();
    assert!(add.wait().unwrap().success());
    run_cli(
        &["user", "add", "bob@localhost", "--password", "pw"],
        &config,
    );
    let (phone, laptop) = (Ua::new(parley.sip), Ua::new(parley.sip));
    assert_eq!(register(&phone, "alice", "op-1", 600), 200);
    assert_eq!(register(&laptop, "alice", "op-2", 600), 200);
    let listed = run_cli(&["registrations", "alice@localhost"], &config);
    assert_eq!(listed.lines().count(), 3, "{listed}");
    assert!(
        listed.contains(&format!("sip:alice@{}", phone.local)),
        "{listed}"
    );
    assert!(listed.contains("Operator-Test/1.0"), "{listed}");
    assert!(listed.contains(&phone.local.to_string()), "{listed}");
    // One binding ended by its contact, then the rest.
    let ended = run_cli(
        &[
            "registrations",
            "remove",
            "alice@localhost",
            &format!("sip:alice@{}", phone.local),
        ],
        &config,
    );
    assert!(
        ended.contains(&format!("ended sip:alice@{}", phone.local)),
        "{ended}"
    );
    let listed = run_cli(&["registrations"], &config);
    assert!(!listed.contains(&phone.local.to_string()), "{listed}");
    assert!(listed.contains(&laptop.local.to_string()), "{listed}");

    // Alice watches Bob: removing Alice ends her binding and her
    // subscription (deactivated), as a kick does.
    laptop.send(
        &format!("SUBSCRIBE sip:bob@localhost SIP/2.0\nFrom: <sip:alice@localhost>;tag=w\nTo: <sip:bob@localhost>\nCall-ID: op-sub\nCSeq: 1 SUBSCRIBE\nEvent: presence\nExpires: 600\nContact: <sip:alice@{}>", laptop.local),
        "",
    );
    let mut got_200 = false;
    let mut got_active = false;
    let deadline = Instant::now() + Duration::from_secs(5);
    while !(got_200 && got_active) && Instant::now() < deadline {
        let m = laptop.next();
        got_200 |= m.starts_with("SIP/2.0 20");
        got_active |= m.starts_with("NOTIFY ");
    }
    assert!(got_200 && got_active, "no subscription");
    let removed = run_cli(&["user", "remove", "alice@localhost"], &config);
    assert!(
        removed.contains("removed (1 binding(s) and 1 subscription(s) ended)"),
        "{removed}"
    );
    let ended = laptop.next();
    assert!(ended.starts_with("NOTIFY "), "{ended}");
    assert_eq!(
        header(&ended, "Subscription-State"),
        Some("terminated;reason=deactivated")
    );
    assert!(!run_cli(&["registrations"], &config).contains("alice@"));

    // The log level, changed at run time.
    assert_eq!(run_cli(&["log-level"], &config).trim(), "info");
    assert_eq!(run_cli(&["log-level", "debug"], &config).trim(), "debug");
    let (code, body) = http(parley.admin, "GET", "/api/v1/log-level", Some(&token), None);
    assert_eq!((code, body.as_str()), (200, "{\"level\":\"debug\"}"));
    let (code, body) = http(
        parley.admin,
        "PUT",
        "/api/v1/log-level",
        Some(&token),
        Some("{\"level\": \"loud\"}"),
    );
    assert_eq!(code, 400, "{body}");

    // A reload puts auth, presence and the log level in force and names
    // what needs a restart; the next REGISTER is challenged with the
    // reloaded algorithms.
    parley.rewrite(
        "[xmpp]\nenabled = false\n[auth]\nregistrar = true\nproxy = false\nalgorithms = [\"SHA-256\", \"MD5\"]\n\
         [presence]\nmax_expires = 300\n[sip]\nmax_connections = 77\n[log]\nlevel = \"warn\"\n",
    );
    let said = run_cli(&["reload"], &config);
    assert!(said.contains("reloaded: log, auth, presence"), "{said}");
    assert!(said.contains("changed, needing a restart: sip"), "{said}");
    parley.wait_for_output("takes effect on restart section=sip");
    assert_eq!(run_cli(&["log-level"], &config).trim(), "warn");
    let ua = Ua::new(parley.sip);
    ua.send(
        &format!(
            "REGISTER sip:localhost SIP/2.0\nFrom: <sip:bob@localhost>;tag=c\nTo: <sip:bob@localhost>\nCall-ID: op-chal\nCSeq: 1 REGISTER\nContact: <sip:bob@{}>",
            ua.local
        ),
        "",
    );
    let challenge = ua.final_response();
    assert_eq!(status(&challenge), 401, "{challenge}");
    let offered: Vec<&str> = challenge
        .lines()
        .filter(|l| l.starts_with("WWW-Authenticate:"))
        .collect();
    assert_eq!(offered.len(), 2, "{challenge}");
    assert!(offered[0].contains("algorithm=SHA-256"), "{challenge}");
    // SIGHUP does the same: still `sip`, said again.
    let before = parley.output().matches("section=sip").count();
    let hup = Command::new("kill")
        .args(["-HUP", &parley.child.id().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    while parley.output().matches("section=sip").count() == before {
        assert!(Instant::now() < deadline, "{}", parley.output());
        std::thread::sleep(Duration::from_millis(50));
    }

    // A consistent copy of the database while Parley runs, private, and
    // readable as a database: Bob is in it.
    let copy = parley.dir.join("backup.db");
    let said = run_cli(&["backup", copy.to_str().unwrap()], &config);
    assert!(said.contains("copied to"), "{said}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&copy).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let other = parley.dir.join("copy.toml");
    std::fs::write(
        &other,
        format!("[store]\nsqlite = {:?}\n", copy.display().to_string()),
    )
    .unwrap();
    assert_eq!(run_cli(&["user", "list"], &other).trim(), "bob@localhost");
    // It will not overwrite.
    let out = Command::new(env!("CARGO_BIN_EXE_parley"))
        .args(["backup", copy.to_str().unwrap(), "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("exists already"));
}

/// Every sample line's series has `# HELP` and `# TYPE` (a histogram's
/// and summary's samples under their family's name).
fn undescribed(metrics: &str) -> Vec<String> {
    let mut missing = Vec::new();
    for line in metrics.lines().filter(|l| l.starts_with("parley_")) {
        let name = line.split(['{', ' ']).next().unwrap_or("");
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .filter(|f| metrics.contains(&format!("# TYPE {f} histogram")))
            .unwrap_or(name);
        for kind in ["HELP", "TYPE"] {
            if !metrics.contains(&format!("# {kind} {family} ")) {
                missing.push(format!("{kind} {family}"));
            }
        }
    }
    missing.sort();
    missing.dedup();
    missing
}

#[test]
fn metrics_are_described_zero_from_start_and_count_stateless_answers() {
    let parley = Running::start(
        "metrics",
        "[auth]\nregistrar = false\nproxy = false\n[xmpp]\nenabled = false\n",
    );
    let token = parley.token();
    let scrape = || {
        let (code, body) = http(parley.admin, "GET", "/metrics", None, None);
        assert_eq!(code, 200);
        body
    };
    let fresh = scrape();
    assert!(
        undescribed(&fresh).is_empty(),
        "{:?}\n{fresh}",
        undescribed(&fresh)
    );
    for line in [
        "parley_policy_refusals_total{reason=\"domain-denied\"} 0",
        "parley_auth_failures_total{reason=\"wrong-password\"} 0",
        "parley_sip_requests_total{method=\"MESSAGE\"} 0",
        "parley_sip_responses_total{code=\"400\"} 0",
        "parley_flows_closed_total 0",
        "# TYPE parley_uptime_seconds gauge",
    ] {
        assert!(fresh.contains(line), "{line} missing:\n{fresh}");
    }
    assert!(
        fresh.contains(&format!(
            "parley_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        )),
        "{fresh}"
    );

    // An OPTIONS answered statelessly and a 400 for a malformed request
    // are counted as every other request and response.
    let ua = Ua::new(parley.sip);
    ua.send(
        &format!("OPTIONS sip:{} SIP/2.0\nFrom: <sip:probe@localhost>;tag=o\nTo: <sip:{}>\nCall-ID: op-options\nCSeq: 1 OPTIONS", parley.sip, parley.sip),
        "",
    );
    assert_eq!(status(&ua.final_response()), 200);
    ua.send(
        "MESSAGE sip:alice@localhost SIP/2.0\nFrom: <sip:probe@localhost>;tag=m\nTo: <sip:alice@localhost>\nCall-ID: op-bad\nCSeq: 1 MESSAGE\nMax-Forwards: many",
        "",
    );
    assert_eq!(status(&ua.final_response()), 400);
    assert_eq!(register(&ua, "carol", "op-metrics", 60), 404);

    // A MESSAGE from another domain kept for an offline user (202) is
    // archived when accepted, as a relayed one is.
    run_cli(
        &["user", "add", "alice@localhost", "--password", "pw"],
        &parley.config,
    );
    ua.send(
        "MESSAGE sip:alice@localhost SIP/2.0\nFrom: <sip:bob@partner.test>;tag=k\nTo: <sip:alice@localhost>\nCall-ID: op-kept\nCSeq: 1 MESSAGE\nContent-Type: text/plain",
        "kept for later",
    );
    assert_eq!(status(&ua.final_response()), 202);
    // The archive writes in the background: read until it is there.
    let deadline = Instant::now() + Duration::from_secs(5);
    let archived = loop {
        let (code, archived) = http(
            parley.admin,
            "GET",
            "/api/v1/archive?address=alice@localhost",
            Some(&token),
            None,
        );
        assert_eq!(code, 200, "{archived}");
        if archived != "[]" || Instant::now() > deadline {
            break archived;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        archived.contains("\"decision\":\"kept offline\""),
        "{archived}"
    );
    assert!(
        archived.contains("\"sender\":\"bob@partner.test\""),
        "{archived}"
    );
    assert!(archived.contains("kept for later"), "{archived}");

    let after = scrape();
    assert!(undescribed(&after).is_empty(), "{:?}", undescribed(&after));
    for line in [
        "parley_sip_requests_total{method=\"OPTIONS\"} 1",
        "parley_sip_requests_total{method=\"MESSAGE\"} 2",
        "parley_sip_responses_total{code=\"400\"} 1",
        "parley_sip_responses_total{code=\"202\"} 1",
        "parley_transaction_seconds_bucket{method=\"REGISTER\",le=\"0.0001\"}",
        "parley_transaction_seconds_bucket{method=\"REGISTER\",le=\"30\"} 1",
    ] {
        assert!(after.contains(line), "{line} missing:\n{after}");
    }
}

/// The arguments of each `Exec…=/usr/bin/parley …` line of the unit.
fn unit_commands(unit: &str) -> Vec<(String, Vec<String>)> {
    unit.lines()
        .filter_map(|l| l.split_once('='))
        .filter(|(k, v)| k.starts_with("Exec") && v.starts_with("/usr/bin/parley "))
        .map(|(k, v)| {
            (
                k.to_string(),
                v.split_whitespace().skip(1).map(str::to_string).collect(),
            )
        })
        .collect()
}

#[test]
fn the_systemd_unit_runs_real_subcommands_and_flags() {
    let root = parley_test_support::repo_root();
    let unit = std::fs::read_to_string(root.join("config/systemd/parley.service")).unwrap();
    let commands = unit_commands(&unit);
    assert!(
        commands
            .iter()
            .any(|(k, a)| k == "ExecStart" && a[0] == "run"),
        "{unit}"
    );
    let dir = scratch("unit");
    let installed = root.join("config/parley.toml").display().to_string();
    for (key, args) in &commands {
        // The command line as written, with the conffile where the repo
        // keeps it: clap refuses an unknown subcommand or flag before
        // `--help` is read.
        let args: Vec<String> = args
            .iter()
            .map(|a| a.replace("/etc/parley/parley.toml", &installed))
            .collect();
        let mut with_help: Vec<&str> = args.iter().map(String::as_str).collect();
        with_help.push("--help");
        let (code, _, err) = parley_in(&dir, &with_help, &[]);
        assert_eq!(code, 0, "{key}: parley {}: {err}", args.join(" "));
        // What does not serve runs for real (check-config on the file the
        // package installs).
        if args[0] != "run" {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let (code, out, err) = parley_in(&dir, &args, &[]);
            assert_eq!(code, 0, "{key}: {out}{err}");
        }
    }
    for needed in [
        "DynamicUser=yes",
        "StateDirectory=parley",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "AmbientCapabilities=CAP_NET_BIND_SERVICE",
        "ExecReload=/bin/kill -HUP $MAINPID",
    ] {
        assert!(unit.lines().any(|l| l == needed), "{needed} missing");
    }
    // systemd's own reading of the unit, with the binary built here.
    let copy = dir.join("parley.service");
    std::fs::write(
        &copy,
        unit.replace("/usr/bin/parley", env!("CARGO_BIN_EXE_parley")),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&copy)
        .output()
        .expect("systemd-analyze (tests/peers/install.sh installs systemd)");
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The completions and manual pages the package installs are what the
/// command line generates (PARLEY_BLESS=1 writes them again).
#[test]
fn packaged_completions_and_manual_pages_are_current() {
    let root = parley_test_support::repo_root();
    let dir = scratch("pages");
    let bless = std::env::var_os("PARLEY_BLESS").is_some();
    let mut expected: Vec<(PathBuf, Vec<u8>)> = Vec::new();
    for (shell, file) in [
        ("bash", "parley.bash"),
        ("zsh", "_parley"),
        ("fish", "parley.fish"),
    ] {
        let (code, out, err) = parley_in(&dir, &["completions", shell], &[]);
        assert_eq!(code, 0, "{err}");
        expected.push((root.join("config/completions").join(file), out.into_bytes()));
    }
    let pages = parley::cli::man_pages().unwrap();
    let names: Vec<String> = pages.iter().map(|(n, _)| n.clone()).collect();
    assert!(
        names.iter().any(|n| n == "parley.1") && names.iter().any(|n| n == "parley-user-add.1")
    );
    for (name, page) in pages {
        expected.push((root.join("config/man").join(name), page));
    }
    if bless {
        let _ = std::fs::remove_dir_all(root.join("config/man"));
        std::fs::create_dir_all(root.join("config/man")).unwrap();
    }
    for (path, content) in &expected {
        if bless {
            std::fs::write(path, content).unwrap();
        }
        let have = std::fs::read(path).unwrap_or_default();
        assert!(
            &have == content,
            "{} is stale: PARLEY_BLESS=1 cargo test --test integration packaged",
            path.display()
        );
    }
    // No page left over from a command that is gone.
    let on_disk = std::fs::read_dir(root.join("config/man")).unwrap().count();
    assert_eq!(on_disk, names.len());
    let _ = std::fs::remove_dir_all(&dir);
}

/// Reads `out` until `text` appears (or the command ends); what was read.
fn read_until(out: &mut impl std::io::Read, seen: &mut String, text: &str) {
    let mut buf = [0u8; 256];
    while !seen.contains(text) {
        match out.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => seen.push_str(&String::from_utf8_lossy(&buf[..n])),
        }
    }
}

/// `parley user add` without `--password` on a terminal (a pty from
/// util-linux `script`): asked twice with echo off; two different answers
/// change nothing.
#[test]
fn a_password_is_asked_twice_on_a_terminal_without_echo() {
    use std::io::Write as _;
    let dir = scratch("password");
    let config = dir.join("p.toml");
    std::fs::write(
        &config,
        format!("state_dir = {:?}\n", dir.display().to_string()),
    )
    .unwrap();
    let add = |first: &str, second: &str| {
        let command = format!(
            "{} user add zed@localhost --config {}",
            env!("CARGO_BIN_EXE_parley"),
            config.display()
        );
        let mut child = Command::new("script")
            .args(["-qec", &command, "/dev/null"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("script (util-linux)");
        let (mut stdin, mut stdout) = (child.stdin.take().unwrap(), child.stdout.take().unwrap());
        let mut seen = String::new();
        // Typed only once asked: the terminal is not echoing by then.
        read_until(&mut stdout, &mut seen, "Password for zed@localhost: ");
        std::thread::sleep(Duration::from_millis(100));
        stdin.write_all(format!("{first}\n").as_bytes()).unwrap();
        read_until(&mut stdout, &mut seen, "Again: ");
        std::thread::sleep(Duration::from_millis(100));
        stdin.write_all(format!("{second}\n").as_bytes()).unwrap();
        read_until(&mut stdout, &mut seen, "\u{0}");
        let status = child.wait().unwrap();
        (status.success(), seen)
    };
    let (ok, seen) = add("s3cret-typed", "s3cret-typed");
    assert!(ok, "{seen}");
    assert!(seen.contains("zed@localhost: added"), "{seen}");
    assert!(
        !seen.contains("s3cret-typed"),
        "the password was echoed:\n{seen}"
    );
    let (ok, seen) = add("one", "another");
    assert!(!ok, "{seen}");
    assert!(
        seen.contains("the passwords differ; nothing changed"),
        "{seen}"
    );
    // The second run added nothing: the user is there once.
    let (_, out, _) = parley_in(
        &dir,
        &["user", "list", "--config", config.to_str().unwrap()],
        &[],
    );
    assert_eq!(out.trim(), "zed@localhost");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The SHA-256 fingerprint of the certificate presented at `addr`, or of
/// a PEM file, as OpenSSL prints it.
fn fingerprint(source: Result<SocketAddr, &Path>) -> String {
    let script = match source {
        Ok(addr) => format!(
            "openssl s_client -connect {addr} </dev/null 2>/dev/null | openssl x509 -noout -fingerprint -sha256"
        ),
        Err(file) => format!("openssl x509 -noout -fingerprint -sha256 -in {}", file.display()),
    };
    let out = Command::new("sh").args(["-c", &script]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(text.contains("Fingerprint="), "{script}: {text}");
    text
}

#[test]
fn a_reload_presents_a_renewed_certificate() {
    let parley = Running::start(
        "certs",
        "[xmpp]\nenabled = false\n[[sip.listen]]\ntransport = \"tls\"\naddress = \"127.0.0.1:0\"\n",
    );
    let out = parley.wait_for_output("listening on tls ");
    let tls: SocketAddr = out
        .split("listening on tls ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|a| a.parse().ok())
        .expect("the TLS address");
    let (cert, key) = (
        parley.dir.join("tls/cert.pem"),
        parley.dir.join("tls/key.pem"),
    );
    let first = fingerprint(Err(&cert));
    assert_eq!(fingerprint(Ok(tls)), first);
    // The operator puts a renewed certificate in place and reloads.
    let renewed = parley_test_support::pki::TestCert::self_signed("renewed");
    std::fs::copy(&renewed.cert, &cert).unwrap();
    std::fs::copy(&renewed.key, &key).unwrap();
    let said = run_cli(&["reload"], &parley.config);
    assert!(said.contains("TLS certificate: replaced"), "{said}");
    let second = fingerprint(Err(&cert));
    assert_ne!(first, second);
    assert_eq!(fingerprint(Ok(tls)), second);
    parley.wait_for_output("TLS certificate reloaded");
    // A key that does not match is refused, naming the files; the
    // certificate in use stays.
    let other = parley_test_support::pki::TestCert::self_signed("mismatch");
    std::fs::copy(&other.key, &key).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_parley"))
        .args(["reload", "--config"])
        .arg(&parley.config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("do not match") && err.contains("key.pem"),
        "{err}"
    );
    assert_eq!(fingerprint(Ok(tls)), second);
}
