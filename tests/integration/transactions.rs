//! RFC 3261 §17 transactions on virtual time: every timer and retransmission
//! schedule, for UDP and reliable transports, then whole exchanges over a
//! simulated network with loss, duplication and reordering.

use std::time::{Duration, Instant};

use bytes::Bytes;
use parley::proto::sip::{Framing, Limits, Message};
use parley::proto::transaction::{
    ClientEvent, ClientState, ClientTransaction, Key, MethodKey, Reliability, ServerEvent,
    ServerState, ServerTransaction, TimerConfig,
};
use parley_test_support::simnet::{Conditions, Side, SimNet};

const UDP: Reliability = Reliability::Unreliable;
const TCP: Reliability = Reliability::Reliable;

fn msg(text: &str) -> Message {
    Message::parse(
        Bytes::from(text.replace('\n', "\r\n")),
        Framing::Datagram,
        &Limits::default(),
    )
    .unwrap()
}

fn request(method: &str, branch: &str) -> Message {
    msg(&format!(
        "{method} sip:bob@biloxi.example.com SIP/2.0\n\
         Via: SIP/2.0/UDP pc33.atlanta.example.com;branch={branch}\n\
         Route: <sip:proxy.example.com;lr>\n\
         Max-Forwards: 70\n\
         From: <sip:alice@atlanta.example.com>;tag=1928301774\n\
         To: <sip:bob@biloxi.example.com>\n\
         Call-ID: a84b4c76e66710\n\
         CSeq: 314159 {method}\n\
         Content-Length: 0\n\n"
    ))
}

fn response(code: u16, method: &str, branch: &str) -> Message {
    msg(&format!(
        "SIP/2.0 {code} Reason\n\
         Via: SIP/2.0/UDP pc33.atlanta.example.com;branch={branch}\n\
         From: <sip:alice@atlanta.example.com>;tag=1928301774\n\
         To: <sip:bob@biloxi.example.com>;tag=a6c85cf\n\
         Call-ID: a84b4c76e66710\n\
         CSeq: 314159 {method}\n\
         Content-Length: 0\n\n"
    ))
}

/// Runs a client transaction alone until it ends (or `limit`), recording
/// when it transmitted and what it told the TU.
fn run_client(
    t: &mut ClientTransaction,
    start: Instant,
    limit: Duration,
) -> (Vec<Duration>, Vec<(Duration, ClientEvent)>) {
    let (mut sent, mut events) = (Vec::new(), Vec::new());
    let mut now = start;
    loop {
        while t.poll_transmit().is_some() {
            sent.push(now - start);
        }
        while let Some(e) = t.poll_event() {
            events.push((now - start, e));
        }
        match t.poll_timeout() {
            Some(at) if at - start <= limit => {
                now = at;
                t.handle_timeout(now);
            }
            _ => return (sent, events),
        }
    }
}

fn ms(v: &[u64]) -> Vec<Duration> {
    v.iter().map(|&m| Duration::from_millis(m)).collect()
}

#[test]
fn non_invite_udp_timer_e_doubles_to_t2_and_timer_f_ends_it() {
    let start = Instant::now();
    let mut t = ClientTransaction::new(
        start,
        request("MESSAGE", "z9hG4bK1"),
        UDP,
        TimerConfig::default(),
    )
    .unwrap();
    let (sent, events) = run_client(&mut t, start, Duration::from_secs(60));
    assert_eq!(
        sent,
        ms(&[0, 500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500])
    );
    assert_eq!(
        events,
        vec![(Duration::from_secs(32), ClientEvent::Timeout)]
    );
    assert!(t.is_terminated());
}

#[test]
fn non_invite_tcp_sends_once_and_times_out_at_64_t1() {
    let start = Instant::now();
    let mut t = ClientTransaction::new(
        start,
        request("OPTIONS", "z9hG4bK2"),
        TCP,
        TimerConfig::default(),
    )
    .unwrap();
    let (sent, events) = run_client(&mut t, start, Duration::from_secs(60));
    assert_eq!(sent, ms(&[0]));
    assert_eq!(
        events,
        vec![(Duration::from_secs(32), ClientEvent::Timeout)]
    );
}

#[test]
fn non_invite_proceeding_retransmits_every_t2() {
    let start = Instant::now();
    let mut t = ClientTransaction::new(
        start,
        request("MESSAGE", "z9hG4bK3"),
        UDP,
        TimerConfig::default(),
    )
    .unwrap();
    assert!(t.poll_transmit().is_some());
    t.handle_response(
        start + Duration::from_millis(100),
        response(100, "MESSAGE", "z9hG4bK3"),
    );
    assert!(matches!(t.poll_event(), Some(ClientEvent::Response(_))));
    assert!(matches!(t.state(), ClientState::Proceeding { .. }));
    let (sent, events) = run_client(&mut t, start, Duration::from_secs(60));
    // Timer E was due at 500 ms; from then on every T2 until Timer F.
    assert_eq!(
        sent,
        ms(&[500, 4500, 8500, 12500, 16500, 20500, 24500, 28500])
    );
    assert_eq!(
        events,
        vec![(Duration::from_secs(32), ClientEvent::Timeout)]
    );
}

#[test]
fn non_invite_final_response_completes_and_timer_k_waits_t4_on_udp_only() {
    for (rel, k) in [(UDP, 5000), (TCP, 0)] {
        let start = Instant::now();
        let mut t = ClientTransaction::new(
            start,
            request("MESSAGE", "z9hG4bK4"),
            rel,
            TimerConfig::default(),
        )
        .unwrap();
        t.poll_transmit();
        let at = start + Duration::from_millis(700);
        t.handle_response(at, response(202, "MESSAGE", "z9hG4bK4"));
        assert!(
            matches!(t.poll_event(), Some(ClientEvent::Response(r)) if r.status() == Some(202))
        );
        // A retransmitted final response is absorbed.
        t.handle_response(at, response(202, "MESSAGE", "z9hG4bK4"));
        assert_eq!(t.poll_event(), None);
        assert_eq!(t.poll_timeout(), Some(at + Duration::from_millis(k)));
        t.handle_timeout(at + Duration::from_millis(k));
        assert!(t.is_terminated());
        assert_eq!(
            t.poll_transmit(),
            None,
            "no retransmission after the final response"
        );
    }
}

#[test]
fn invite_udp_timer_a_doubles_without_cap_and_timer_b_ends_it() {
    let start = Instant::now();
    let mut t = ClientTransaction::new(
        start,
        request("INVITE", "z9hG4bK5"),
        UDP,
        TimerConfig::default(),
    )
    .unwrap();
    let (sent, events) = run_client(&mut t, start, Duration::from_secs(60));
    assert_eq!(sent, ms(&[0, 500, 1500, 3500, 7500, 15500, 31500]));
    assert_eq!(
        events,
        vec![(Duration::from_secs(32), ClientEvent::Timeout)]
    );
}

#[test]
fn invite_provisional_stops_retransmission() {
    let start = Instant::now();
    let mut t = ClientTransaction::new(
        start,
        request("INVITE", "z9hG4bK6"),
        UDP,
        TimerConfig::default(),
    )
    .unwrap();
    t.poll_transmit();
    t.handle_response(
        start + Duration::from_millis(200),
        response(180, "INVITE", "z9hG4bK6"),
    );
    let (sent, events) = run_client(&mut t, start, Duration::from_secs(120));
    assert!(sent.is_empty());
    assert_eq!(events.len(), 1);
    assert_eq!(
        t.state(),
        &ClientState::Proceeding {
            retransmit: None,
            timeout: None
        }
    );
}

#[test]
fn invite_failure_is_acked_by_the_transaction() {
    for (rel, d) in [(UDP, 32_000), (TCP, 0)] {
        let start = Instant::now();
        let mut t = ClientTransaction::new(
            start,
            request("INVITE", "z9hG4bK7"),
            rel,
            TimerConfig::default(),
        )
        .unwrap();
        t.poll_transmit();
        let at = start + Duration::from_millis(300);
        t.handle_response(at, response(486, "INVITE", "z9hG4bK7"));
        let ack = t.poll_transmit().expect("an ACK");
        let ack = Message::parse(ack, Framing::Stream, &Limits::default()).unwrap();
        ack.validate(&Limits::default()).unwrap();
        assert_eq!(ack.method().unwrap().as_str(), "ACK");
        assert_eq!(
            ack.request_uri_raw(),
            Some(&b"sip:bob@biloxi.example.com"[..])
        );
        assert_eq!(ack.top_via().unwrap().unwrap().branch(), Some("z9hG4bK7"));
        assert_eq!(ack.to().unwrap().unwrap().tag(), Some("a6c85cf"));
        assert_eq!(ack.cseq().unwrap().unwrap().seq, 314159);
        assert_eq!(
            ack.headers().get(parley::proto::sip::HeaderName::Route),
            Some(&b"<sip:proxy.example.com;lr>"[..])
        );
        assert!(
            matches!(t.poll_event(), Some(ClientEvent::Response(r)) if r.status() == Some(486))
        );
        if rel == UDP {
            // The 486 again: the ACK again, the TU not told twice.
            t.handle_response(
                at + Duration::from_millis(500),
                response(486, "INVITE", "z9hG4bK7"),
            );
            assert!(t.poll_transmit().is_some());
            assert_eq!(t.poll_event(), None);
        }
        assert_eq!(t.poll_timeout(), Some(at + Duration::from_millis(d)));
        t.handle_timeout(at + Duration::from_millis(d));
        assert!(t.is_terminated());
    }
}

#[test]
fn invite_2xx_goes_to_accepted_and_every_2xx_reaches_the_tu() {
    let start = Instant::now();
    let mut t = ClientTransaction::new(
        start,
        request("INVITE", "z9hG4bK8"),
        UDP,
        TimerConfig::default(),
    )
    .unwrap();
    t.poll_transmit();
    let at = start + Duration::from_millis(100);
    t.handle_response(at, response(200, "INVITE", "z9hG4bK8"));
    assert_eq!(
        t.state(),
        &ClientState::Accepted {
            until: at + Duration::from_secs(32)
        }
    );
    t.handle_response(
        at + Duration::from_millis(500),
        response(200, "INVITE", "z9hG4bK8"),
    );
    assert_eq!(std::iter::from_fn(|| t.poll_event()).count(), 2);
    assert_eq!(
        t.poll_transmit(),
        None,
        "the TU, not the transaction, ACKs a 2xx"
    );
    t.handle_timeout(at + Duration::from_secs(32));
    assert!(t.is_terminated());
}

#[test]
fn transport_error_ends_a_client_transaction() {
    let start = Instant::now();
    let mut t = ClientTransaction::new(
        start,
        request("MESSAGE", "z9hG4bK9"),
        TCP,
        TimerConfig::default(),
    )
    .unwrap();
    t.handle_transport_error();
    assert_eq!(t.poll_event(), Some(ClientEvent::TransportError));
    assert!(t.is_terminated());
}

#[test]
fn configured_timers_scale_the_schedules() {
    let timers = TimerConfig {
        t1: Duration::from_millis(100),
        t2: Duration::from_millis(400),
        t4: Duration::from_secs(1),
    };
    let start = Instant::now();
    let mut t =
        ClientTransaction::new(start, request("MESSAGE", "z9hG4bK10"), UDP, timers).unwrap();
    let (sent, events) = run_client(&mut t, start, Duration::from_secs(60));
    assert_eq!(sent[..6], ms(&[0, 100, 300, 700, 1100, 1500])[..]);
    assert_eq!(
        events,
        vec![(Duration::from_millis(6400), ClientEvent::Timeout)]
    );
}

fn server_transmits(t: &mut ServerTransaction) -> Vec<u16> {
    std::iter::from_fn(|| t.poll_transmit())
        .map(|b| {
            Message::parse(b, Framing::Stream, &Limits::default())
                .unwrap()
                .status()
                .unwrap()
        })
        .collect()
}

#[test]
fn invite_server_sends_100_trying_only_when_the_tu_is_slow() {
    let start = Instant::now();
    let invite = request("INVITE", "z9hG4bK20");
    let mut t = ServerTransaction::new(start, &invite, UDP, TimerConfig::default()).unwrap();
    assert_eq!(t.poll_timeout(), Some(start + Duration::from_millis(200)));
    t.handle_timeout(start + Duration::from_millis(200));
    let trying = t.poll_transmit().unwrap();
    let trying = Message::parse(trying, Framing::Stream, &Limits::default()).unwrap();
    assert_eq!(trying.status(), Some(100));
    assert_eq!(trying.to().unwrap().unwrap().tag(), None);
    assert_eq!(trying.call_id(), invite.call_id());
    // A retransmitted INVITE gets the 100 again.
    t.handle_request(start + Duration::from_millis(500), invite.clone());
    assert_eq!(server_transmits(&mut t), vec![100]);

    let mut quick = ServerTransaction::new(start, &invite, UDP, TimerConfig::default()).unwrap();
    assert!(quick.send_response(
        start + Duration::from_millis(50),
        &response(180, "INVITE", "z9hG4bK20")
    ));
    quick.handle_timeout(start + Duration::from_millis(200));
    assert_eq!(server_transmits(&mut quick), vec![180]);
}

#[test]
fn invite_server_failure_timer_g_until_ack_or_timer_h() {
    let start = Instant::now();
    let invite = request("INVITE", "z9hG4bK21");
    let mut t = ServerTransaction::new(start, &invite, UDP, TimerConfig::default()).unwrap();
    assert!(t.send_response(start, &response(486, "INVITE", "z9hG4bK21")));
    let mut sent: Vec<Duration> = std::iter::from_fn(|| t.poll_transmit())
        .map(|_| Duration::ZERO)
        .collect();
    let mut events = Vec::new();
    while let Some(at) = t.poll_timeout() {
        t.handle_timeout(at);
        while t.poll_transmit().is_some() {
            sent.push(at - start);
        }
        events.extend(std::iter::from_fn(|| t.poll_event()).map(|e| (at - start, e)));
    }
    assert_eq!(
        sent,
        ms(&[0, 500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500])
    );
    assert_eq!(
        events,
        vec![(Duration::from_secs(32), ServerEvent::Timeout)]
    );

    // With the ACK: Confirmed, ACK retransmissions absorbed, Timer I = T4.
    let mut t = ServerTransaction::new(start, &invite, UDP, TimerConfig::default()).unwrap();
    t.send_response(start, &response(486, "INVITE", "z9hG4bK21"));
    t.poll_transmit();
    let ack = request("ACK", "z9hG4bK21");
    assert_eq!(
        Key::for_request(&ack).unwrap(),
        *t.key(),
        "the ACK matches the INVITE transaction"
    );
    let at = start + Duration::from_millis(700);
    t.handle_request(at, ack.clone());
    assert_eq!(
        t.state(),
        &ServerState::Confirmed {
            until: at + Duration::from_secs(5)
        }
    );
    t.handle_request(at, ack);
    assert_eq!(t.poll_transmit(), None);
    t.handle_timeout(at + Duration::from_secs(5));
    assert!(t.is_terminated());
}

#[test]
fn invite_server_failure_on_tcp_has_no_timer_g_and_no_wait_for_ack_retransmissions() {
    let start = Instant::now();
    let mut t = ServerTransaction::new(
        start,
        &request("INVITE", "z9hG4bK22"),
        TCP,
        TimerConfig::default(),
    )
    .unwrap();
    t.send_response(start, &response(603, "INVITE", "z9hG4bK22"));
    assert_eq!(server_transmits(&mut t), vec![603]);
    assert_eq!(
        t.poll_timeout(),
        Some(start + Duration::from_secs(32)),
        "only Timer H runs"
    );
    t.handle_request(start, request("ACK", "z9hG4bK22"));
    assert_eq!(t.state(), &ServerState::Confirmed { until: start });
}

#[test]
fn invite_server_2xx_is_accepted_acks_go_to_the_tu() {
    let start = Instant::now();
    let invite = request("INVITE", "z9hG4bK23");
    let mut t = ServerTransaction::new(start, &invite, UDP, TimerConfig::default()).unwrap();
    assert!(t.send_response(start, &response(200, "INVITE", "z9hG4bK23")));
    assert_eq!(
        t.state(),
        &ServerState::Accepted {
            until: start + Duration::from_secs(32)
        }
    );
    t.poll_transmit();
    // A retransmitted INVITE is absorbed: the TU retransmits its 2xx itself.
    t.handle_request(start, invite);
    assert_eq!(t.poll_transmit(), None);
    assert!(t.send_response(
        start + Duration::from_millis(500),
        &response(200, "INVITE", "z9hG4bK23")
    ));
    assert_eq!(server_transmits(&mut t), vec![200]);
    t.handle_request(start, request("ACK", "z9hG4bK23"));
    assert!(matches!(t.poll_event(), Some(ServerEvent::Ack(_))));
    t.handle_timeout(start + Duration::from_secs(32));
    assert!(t.is_terminated());
}

#[test]
fn non_invite_server_answers_retransmissions_until_timer_j() {
    for (rel, j) in [(UDP, 32_000), (TCP, 0)] {
        let start = Instant::now();
        let req = request("MESSAGE", "z9hG4bK24");
        let mut t = ServerTransaction::new(start, &req, rel, TimerConfig::default()).unwrap();
        assert_eq!(t.state(), &ServerState::Trying);
        t.handle_request(start, req.clone());
        assert_eq!(t.poll_transmit(), None, "Trying absorbs retransmissions");
        assert_eq!(t.poll_timeout(), None, "no 100 Trying for non-INVITE");
        t.send_response(start, &response(100, "MESSAGE", "z9hG4bK24"));
        t.handle_request(start, req.clone());
        assert_eq!(server_transmits(&mut t), vec![100, 100]);
        assert!(t.send_response(start, &response(200, "MESSAGE", "z9hG4bK24")));
        assert!(
            !t.send_response(start, &response(500, "MESSAGE", "z9hG4bK24")),
            "one final response only"
        );
        t.handle_request(start + Duration::from_secs(1), req);
        assert_eq!(server_transmits(&mut t), vec![200, 200]);
        assert_eq!(t.poll_timeout(), Some(start + Duration::from_millis(j)));
        t.handle_timeout(start + Duration::from_millis(j));
        assert!(t.is_terminated());
    }
}

#[test]
fn keys_follow_rfc3261_matching() {
    let invite = Key::for_request(&request("INVITE", "z9hG4bKab")).unwrap();
    let ack = Key::for_request(&request("ACK", "z9hG4bKab")).unwrap();
    let cancel = Key::for_request(&request("CANCEL", "z9hG4bKab")).unwrap();
    assert_eq!(invite, ack);
    assert_ne!(invite, cancel);
    assert_eq!(cancel.cancelled_invite(), Some(invite.clone()));
    assert_eq!(invite.cancelled_invite(), None);
    assert_eq!(
        Key::for_response(&response(180, "INVITE", "z9hG4bKab")).unwrap(),
        invite
    );
    assert_ne!(
        Key::for_request(&request("INVITE", "z9hG4bKAB")).unwrap(),
        invite,
        "branches are case-sensitive"
    );
    // The sent-by host compares without case.
    let upper = msg(
        &String::from_utf8(request("INVITE", "z9hG4bKab").to_bytes())
            .unwrap()
            .replace("pc33.atlanta", "PC33.Atlanta")
            .replace("\r\n", "\n"),
    );
    assert_eq!(Key::for_request(&upper).unwrap(), invite);
    // RFC 2543 fallback: no cookie.
    let old = Key::for_request(&request("INVITE", "1234")).unwrap();
    let old_ack = Key::for_request(&request("ACK", "1234")).unwrap();
    assert!(old.is_rfc2543());
    assert_eq!(old.method(), MethodKey::Invite);
    assert_eq!(old, old_ack);
    let other_cseq = msg(&String::from_utf8(request("INVITE", "1234").to_bytes())
        .unwrap()
        .replace("314159 INVITE", "314160 INVITE")
        .replace("\r\n", "\n"));
    assert_ne!(
        Key::for_request(&other_cseq).unwrap(),
        old,
        "the CSeq number is part of it"
    );
    let just_cookie = Key::for_request(&request("OPTIONS", "z9hG4bK")).unwrap();
    assert!(
        just_cookie.is_rfc2543(),
        "RFC 4475 badbranch: the cookie alone is not a branch"
    );
}

/// A whole exchange over a lossy, duplicating, reordering network: the
/// client transaction, the server transaction and a TU that answers after
/// `answer_after`.
fn exchange(
    seed: u64,
    method: &str,
    final_code: u16,
    conditions: Conditions,
) -> (Vec<ClientEvent>, ServerState, SimNet) {
    let start = Instant::now();
    let mut net = SimNet::new(start, conditions, seed);
    let branch = format!("z9hG4bKsim{seed}");
    let mut client =
        ClientTransaction::new(start, request(method, &branch), UDP, TimerConfig::default())
            .unwrap();
    let mut server: Option<ServerTransaction> = None;
    let mut client_events = Vec::new();
    let mut answered = false;
    for _ in 0..10_000 {
        while let Some(b) = client.poll_transmit() {
            net.send(Side::Server, b);
        }
        if let Some(s) = server.as_mut() {
            while let Some(b) = s.poll_transmit() {
                net.send(Side::Client, b);
            }
        }
        client_events.extend(std::iter::from_fn(|| client.poll_event()));
        let next = [
            client.poll_timeout(),
            server.as_ref().and_then(|s| s.poll_timeout()),
            net.next_arrival(),
        ]
        .into_iter()
        .flatten()
        .min();
        let Some(next) = next else { break };
        net.advance(next);
        let now = net.now();
        client.handle_timeout(now);
        if let Some(s) = server.as_mut() {
            s.handle_timeout(now);
        }
        while let Some((side, data)) = net.receive() {
            let m = Message::parse(data, Framing::Datagram, &Limits::default()).unwrap();
            match side {
                Side::Server => match server.as_mut() {
                    Some(s) if Key::for_request(&m).unwrap() == *s.key() => {
                        s.handle_request(now, m)
                    }
                    Some(_) => panic!("a request for another transaction"),
                    None => {
                        let mut s =
                            ServerTransaction::new(now, &m, UDP, TimerConfig::default()).unwrap();
                        // The TU answers at once.
                        assert!(s.send_response(now, &response(final_code, method, &branch)));
                        answered = true;
                        server = Some(s);
                    }
                },
                Side::Client => client.handle_response(now, m),
            }
        }
    }
    assert!(
        answered || client_events == vec![ClientEvent::Timeout],
        "seed {seed}: no request got through"
    );
    (
        client_events,
        server.map_or(ServerState::Terminated, |s| s.state().clone()),
        net,
    )
}

#[test]
fn lossy_network_non_invite_gets_exactly_one_final_response() {
    let lossy = Conditions {
        loss: 0.3,
        duplicate: 0.2,
        latency: Duration::from_millis(20),
        jitter: Duration::from_millis(300),
    };
    let mut completed = 0;
    for seed in 1..=200 {
        let (events, server, _) = exchange(seed, "MESSAGE", 200, lossy);
        assert_eq!(server, ServerState::Terminated, "seed {seed}");
        match events.as_slice() {
            [ClientEvent::Response(r)] => {
                assert_eq!(r.status(), Some(200), "seed {seed}");
                completed += 1;
            }
            [ClientEvent::Timeout] => {}
            other => panic!("seed {seed}: {other:?}"),
        }
    }
    // With 30 % loss each way and 11 tries, a timeout is rare; most complete.
    assert!(completed >= 190, "only {completed} of 200 completed");
}

#[test]
fn lossy_network_invite_failure_is_acked_and_confirmed() {
    let lossy = Conditions {
        loss: 0.25,
        duplicate: 0.1,
        latency: Duration::from_millis(30),
        jitter: Duration::from_millis(200),
    };
    let mut confirmed = 0;
    for seed in 1..=200 {
        let (events, server, net) = exchange(seed, "INVITE", 486, lossy);
        let finals: Vec<_> = events
            .iter()
            .filter(|e| matches!(e, ClientEvent::Response(r) if r.status() == Some(486)))
            .collect();
        assert!(
            finals.len() <= 1,
            "seed {seed}: the TU saw the 486 {} times",
            finals.len()
        );
        if finals.len() == 1 {
            confirmed += 1;
            // Every ACK the client sent carries the INVITE's branch.
            let acks = net
                .log
                .iter()
                .filter(|(_, side, b)| *side == Side::Server && b.starts_with(b"ACK "))
                .count();
            assert!(acks >= 1, "seed {seed}");
        }
        assert_eq!(server, ServerState::Terminated, "seed {seed}");
    }
    assert!(confirmed >= 190, "only {confirmed} of 200 confirmed");
}

#[test]
fn clean_network_timings_are_exact() {
    let (events, _, net) = exchange(
        7,
        "MESSAGE",
        202,
        Conditions::clean(Duration::from_millis(40)),
    );
    assert!(matches!(events.as_slice(), [ClientEvent::Response(r)] if r.status() == Some(202)));
    let times: Vec<_> = net.log.iter().map(|(t, side, _)| (*t, *side)).collect();
    assert_eq!(
        times,
        vec![
            (Duration::ZERO, Side::Server),
            (Duration::from_millis(40), Side::Client)
        ]
    );
}
