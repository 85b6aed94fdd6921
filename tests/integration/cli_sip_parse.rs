//! `parley sip parse`, the operator's tool, driven as a process.

use std::io::Write;
use std::process::{Command, Stdio};

use parley_test_support::data_dir;

pub(crate) fn parley(args: &[&str], stdin: Option<&[u8]>) -> (i32, Vec<u8>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_parley"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("parley starts");
    let mut input = child.stdin.take().expect("stdin");
    // Parley stops reading past its size limit: a broken pipe is expected then.
    match input.write_all(stdin.unwrap_or_default()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => panic!("stdin write: {e}"),
        _ => {}
    }
    drop(input);
    let out = child.wait_with_output().expect("parley ends");
    (
        out.status.code().unwrap_or(-1),
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn corpus_file(set: &str, name: &str) -> String {
    data_dir()
        .join("sip")
        .join(set)
        .join(format!("{name}.sip"))
        .display()
        .to_string()
}

#[test]
fn valid_message_prints_as_forwarded() {
    let path = corpus_file("rfc4475", "wsinv");
    let (code, out, _) = parley(&["sip", "parse", &path], None);
    assert_eq!(code, 0);
    assert_eq!(
        out,
        std::fs::read(&path).unwrap(),
        "an untouched message prints byte for byte"
    );
}

#[test]
fn extra_datagram_octets_are_not_forwarded() {
    let path = corpus_file("rfc4475", "dblreq");
    let (code, out, _) = parley(&["sip", "parse", &path], None);
    assert_eq!(code, 0);
    let text = String::from_utf8(out).unwrap();
    assert!(text.starts_with("REGISTER sip:example.com SIP/2.0\r\n"));
    assert!(text.ends_with("Content-Length: 0\r\n\r\n"), "{text}");
    assert!(!text.contains("INVITE"));
}

#[test]
fn invalid_message_gets_one_line_naming_the_fault() {
    for (name, expected) in [
        ("clerr", "error: Content-Length 9999 exceeds the 154 body bytes received\n"),
        ("badvers", "error: unsupported SIP version SIP/7.0\n"),
        ("mismatch01", "error: CSeq method INVITE does not match the request method OPTIONS\n"),
        ("escruri", "error: invalid URI \"sip:user@example.com?Route=%3Csip:example.com%3E\": headers are not allowed in a Request-URI (RFC 3261 §19.1.1)\n"),
    ] {
        let (code, out, _) = parley(&["sip", "parse", &corpus_file("rfc4475", name)], None);
        assert_eq!(code, 1, "{name}");
        assert_eq!(String::from_utf8(out).unwrap(), expected, "{name}");
    }
}

#[test]
fn reads_standard_input_and_accepts_editor_line_ends() {
    let typed = b"OPTIONS sip:bob@example.com SIP/2.0\nVia: SIP/2.0/UDP pc33.example.com;branch=z9hG4bK776asdhds\nTo: <sip:bob@example.com>\nFrom: <sip:alice@example.com>;tag=1928301774\nCall-ID: a84b4c76e66710\nCSeq: 63104 OPTIONS\nMax-Forwards: 70\n\n";
    let (code, out, _) = parley(&["sip", "parse"], Some(typed));
    assert_eq!(code, 0);
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.starts_with("OPTIONS sip:bob@example.com SIP/2.0\r\nVia: "),
        "{text}"
    );
    // A missing Content-Length is added so the message can go out on any transport.
    assert!(
        text.ends_with("Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"),
        "{text}"
    );
}

#[test]
fn stream_framing_requires_content_length() {
    let msg = b"OPTIONS sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nTo: <sip:bob@example.com>\r\nFrom: <sip:a@example.com>;tag=1\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\n\r\n";
    let (code, out, _) = parley(&["sip", "parse", "--stream"], Some(msg));
    assert_eq!(code, 1);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "error: Content-Length is required on a stream transport\n"
    );
}

#[test]
fn limits_come_from_the_config() {
    let dir = std::env::temp_dir().join(format!("parley-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("small.toml");
    std::fs::write(&cfg, "[sip.limits]\nmax_headers = 4\n").unwrap();
    let path = corpus_file("rfc4475", "lwsdisp");
    let (code, out, _) = parley(
        &["sip", "parse", "--config", cfg.to_str().unwrap(), &path],
        None,
    );
    assert_eq!(code, 1);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "error: header count 5 exceeds the limit of 4\n"
    );

    std::fs::write(&cfg, "[sip.limit]\nmax_headers = 4\n").unwrap();
    let (code, _, err) = parley(
        &["sip", "parse", "--config", cfg.to_str().unwrap(), &path],
        None,
    );
    assert_eq!(code, 2);
    assert!(err.contains("unknown field `limit`"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn oversized_input_is_refused_without_reading_it_all() {
    let big = vec![b'x'; 200_000];
    let (code, out, _) = parley(&["sip", "parse"], Some(&big));
    assert_eq!(code, 1);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "error: message size 65537 exceeds the limit of 65536\n"
    );
}
