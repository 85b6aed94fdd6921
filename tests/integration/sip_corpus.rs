//! Every message of the RFC 4475, RFC 5118 and Parley corpora gets the
//! verdict its manifest states, with an error that names the fault.

use bytes::Bytes;
use parley::proto::sip::{Framing, Limits, Message, SipError};
use parley_test_support::{sip_corpus, SipCase};

fn check(case: &SipCase) -> Result<Message, SipError> {
    let limits = Limits::default();
    let msg = Message::parse(Bytes::from(case.bytes.clone()), Framing::Datagram, &limits)?;
    msg.validate(&limits)?;
    Ok(msg)
}

fn run_set(set: &str, expected_cases: usize) {
    let cases = sip_corpus(set);
    assert_eq!(cases.len(), expected_cases, "{set}: corpus size changed");
    let mut failures = Vec::new();
    for case in &cases {
        let outcome = check(case);
        match (case.verdict.as_str(), outcome) {
            ("accept", Ok(msg)) => {
                if let Err(why) = accepted_details(case, &msg) {
                    failures.push(format!("{}: {why}", case.name));
                }
            }
            ("accept", Err(e)) => failures.push(format!("{}: refused: {e}", case.name)),
            ("reject", Ok(_)) => {
                failures.push(format!("{}: accepted, should be refused", case.name))
            }
            ("reject", Err(e)) => {
                let fault = case.fault.as_deref().unwrap_or("");
                if !e.to_string().contains(fault) {
                    failures.push(format!(
                        "{}: error {:?} does not name {:?}",
                        case.name,
                        e.to_string(),
                        fault
                    ));
                }
                if let Some(status) = case.status {
                    if e.status() != status {
                        failures.push(format!(
                            "{}: status {} instead of {status}",
                            case.name,
                            e.status()
                        ));
                    }
                }
            }
            (v, _) => failures.push(format!("{}: unknown verdict {v}", case.name)),
        }
    }
    assert!(failures.is_empty(), "{set}:\n{}", failures.join("\n"));
}

/// What an accepted message must also show: exact re-printing, and the
/// per-case facts of the manifest.
fn accepted_details(case: &SipCase, msg: &Message) -> Result<(), String> {
    let printed = msg.to_bytes();
    let skip = case
        .bytes
        .iter()
        .take_while(|&&c| c == b'\r' || c == b'\n')
        .count();
    let expected_len = case.bytes.len() - skip - case.trailing.unwrap_or(0);
    if printed != case.bytes[skip..skip + expected_len] {
        return Err("not re-printed byte for byte".into());
    }
    let again = Message::parse(Bytes::from(printed), Framing::Datagram, &Limits::default())
        .map_err(|e| format!("re-parse failed: {e}"))?;
    if &again != msg {
        return Err("re-parse differs".into());
    }
    if let Some(n) = case.parts {
        let parts = msg
            .multipart(&Limits::default())
            .map_err(|e| e.to_string())?
            .ok_or("not multipart")?;
        if parts.len() != n {
            return Err(format!("{} parts instead of {n}", parts.len()));
        }
    }
    if let Some(n) = case.body_len {
        if msg.body().len() != n {
            return Err(format!("body of {} bytes instead of {n}", msg.body().len()));
        }
    }
    if case.host.is_some() || case.port.is_some() {
        let uri = msg
            .request_uri()
            .ok_or("no Request-URI")?
            .map_err(|e| e.to_string())?;
        let sip = uri.as_sip().ok_or("not a SIP URI")?;
        if let Some(h) = &case.host {
            if sip.host
                != parley::proto::sip::Host::V6(h.parse().map_err(|_| "bad host in manifest")?)
            {
                return Err(format!("host {} instead of [{h}]", sip.host));
            }
        }
        if case.port.is_some() && sip.port != case.port {
            return Err(format!("port {:?} instead of {:?}", sip.port, case.port));
        }
    }
    Ok(())
}

#[test]
fn rfc4475_torture_messages() {
    run_set("rfc4475", 49);
}

#[test]
fn rfc5118_ipv6_messages() {
    run_set("rfc5118", 11);
}

#[test]
fn parley_edge_messages() {
    run_set("parley", 17);
}
