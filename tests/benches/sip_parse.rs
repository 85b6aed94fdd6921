//! SIP parsing speed: Parley against ezk-sip-types on the same inputs, in
//! the same run.
//!
//! Each iteration parses a whole message and reads what a proxy needs first:
//! the top Via branch, Call-ID, CSeq, and the From and To tags. Criterion
//! reports each side; the summary at the end prints both medians and the
//! ratio, plus Parley's parses per second on one core.
//!
//! Run: `cargo bench --bench sip_parse`

use std::hint::black_box;
use std::time::Instant;

use bytes::Bytes;
use criterion::{criterion_group, Criterion, Throughput};
use parley::proto::sip::{Framing, Limits, Message};

/// A typical pager-mode MESSAGE of about 600 bytes.
fn typical_message() -> Bytes {
    let body =
        "Hello Bob, are we still on for the design review at three? I have the slides ready.";
    let head = format!(
        "MESSAGE sip:bob@biloxi.example.com SIP/2.0\r\n\
         Via: SIP/2.0/TLS proxy.atlanta.example.com:5061;branch=z9hG4bK776sgdkse.1\r\n\
         Via: SIP/2.0/TLS client.atlanta.example.com:5061;branch=z9hG4bK776asdhds;received=192.0.2.101\r\n\
         Max-Forwards: 69\r\n\
         From: \"Alice Liddell\" <sip:alice@atlanta.example.com>;tag=49583a7f\r\n\
         To: \"Bob\" <sip:bob@biloxi.example.com>\r\n\
         Call-ID: asd88asd77a@1.2.3.4.atlanta.example.com\r\n\
         CSeq: 1 MESSAGE\r\n\
         Contact: <sip:alice@client.atlanta.example.com:5061;transport=tls>\r\n\
         User-Agent: Parley-Bench/1.0\r\n\
         Date: Wed, 25 Nov 2026 19:31:16 GMT\r\n\
         Content-Type: text/plain;charset=UTF-8\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    Bytes::from(head)
}

/// An INVITE with an SDP offer (RFC 3665 §3.1 style).
fn invite_with_sdp() -> Bytes {
    let sdp = "v=0\r\no=alice 2890844526 2890844526 IN IP4 client.atlanta.example.com\r\ns=-\r\n\
               c=IN IP4 192.0.2.101\r\nt=0 0\r\nm=audio 49172 RTP/AVP 0 8 97\r\na=rtpmap:0 PCMU/8000\r\n\
               a=rtpmap:8 PCMA/8000\r\na=rtpmap:97 iLBC/8000\r\nm=video 51372 RTP/AVP 31 32\r\n\
               a=rtpmap:31 H261/90000\r\na=rtpmap:32 MPV/90000\r\n";
    Bytes::from(format!(
        "INVITE sip:bob@biloxi.example.com SIP/2.0\r\n\
         Via: SIP/2.0/UDP client.atlanta.example.com:5060;branch=z9hG4bK74bf9;rport\r\n\
         Max-Forwards: 70\r\n\
         From: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl\r\n\
         To: Bob <sip:bob@biloxi.example.com>\r\n\
         Call-ID: 3848276298220188511@atlanta.example.com\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:alice@client.atlanta.example.com;transport=udp>\r\n\
         Allow: INVITE, ACK, CANCEL, OPTIONS, BYE, REFER, NOTIFY, MESSAGE, SUBSCRIBE, INFO\r\n\
         Supported: replaces, timer, 100rel\r\n\
         Session-Expires: 1800;refresher=uac\r\n\
         Content-Type: application/sdp\r\n\
         Content-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    ))
}

/// What both parsers must extract from each message.
type Fields = (usize, usize, u32, usize, usize);

fn parley_parse(buf: &Bytes, limits: &Limits) -> Option<Fields> {
    let msg = Message::parse(buf.clone(), Framing::Datagram, limits).ok()?;
    let via = msg.top_via()?.ok()?;
    let branch = via.branch().map_or(0, str::len);
    let call_id = msg.call_id()?.len();
    let cseq = msg.cseq()?.ok()?.seq;
    let from = msg.from()?.ok()?.tag().map_or(0, str::len);
    let to = msg.to()?.ok()?.tag().map_or(0, str::len);
    Some((branch, call_id, cseq, from, to))
}

fn ezk_parse(buf: &Bytes) -> Option<Fields> {
    use ezk_sip_types::header::typed::{CSeq, CallID, FromTo, Via};
    use ezk_sip_types::msg::{Line, MessageLine, PullParser};
    use ezk_sip_types::parse::Parse;
    use ezk_sip_types::{Headers, Name};

    let mut parser = PullParser::new(buf, 0);
    let first = std::str::from_utf8(parser.next()?.ok()?).ok()?;
    let (_, line) = MessageLine::parse(buf)(first).ok()?;
    let mut headers = Headers::with_capacity(16);
    for l in &mut parser {
        let l = std::str::from_utf8(l.ok()?).ok()?;
        let (_, Line { name, value }) = Line::parse(buf, l).ok()?;
        headers.insert(name, value);
    }
    let body = buf.slice(parser.head_end()..);
    black_box((&line, &body));
    let via: Via = headers.get_named().ok()?;
    let branch = via.params.get_val("branch").map_or(0, |b| b.len());
    let call_id: CallID = headers.get_named().ok()?;
    let cseq: CSeq = headers.get_named().ok()?;
    let from: FromTo = headers.get(Name::FROM).ok()?;
    let to: FromTo = headers.get(Name::TO).ok()?;
    Some((
        branch,
        call_id.0.len(),
        cseq.cseq,
        from.tag.map_or(0, |t| t.len()),
        to.tag.map_or(0, |t| t.len()),
    ))
}

/// The RFC 4475 / RFC 5118 messages Parley accepts and ezk-sip-types parses too.
fn valid_set() -> Vec<Bytes> {
    let limits = Limits::default();
    ["rfc4475", "rfc5118"]
        .iter()
        .flat_map(|set| parley_test_support::sip_corpus(set))
        .filter(|c| c.verdict == "accept")
        .map(|c| Bytes::from(c.bytes))
        .filter(|b| parley_parse(b, &limits).is_some() && ezk_parse(b).is_some())
        .collect()
}

fn inputs() -> Vec<(&'static str, Vec<Bytes>)> {
    vec![
        ("typical MESSAGE", vec![typical_message()]),
        ("INVITE with SDP", vec![invite_with_sdp()]),
        ("RFC 4475/5118 valid set", valid_set()),
    ]
}

fn benches(c: &mut Criterion) {
    let limits = Limits::default();
    for (name, msgs) in inputs() {
        let mut g = c.benchmark_group(name);
        g.throughput(Throughput::Elements(msgs.len() as u64));
        g.bench_function("parley", |b| {
            b.iter(|| {
                for m in &msgs {
                    black_box(parley_parse(black_box(m), &limits));
                }
            })
        });
        g.bench_function("ezk-sip-types", |b| {
            b.iter(|| {
                for m in &msgs {
                    black_box(ezk_parse(black_box(m)));
                }
            })
        });
        g.finish();
    }
}

/// Median nanoseconds per message over several timed batches.
fn median_ns(msgs: &[Bytes], f: &dyn Fn(&Bytes) -> Option<Fields>) -> f64 {
    let per_batch = (200_000 / msgs.len()).max(1);
    let mut samples: Vec<f64> = (0..9)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..per_batch {
                for m in msgs {
                    black_box(f(black_box(m)));
                }
            }
            t.elapsed().as_nanos() as f64 / (per_batch * msgs.len()) as f64
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

fn summary() {
    let limits = Limits::default();
    println!("\nSIP parse + read (Via branch, Call-ID, CSeq, From/To tags), median per message:");
    println!(
        "{:<26} {:>5} {:>12} {:>10} {:>14} {:>7} {:>13}",
        "input", "msgs", "parley (ns)", "framing", "ezk-sip-types", "ratio", "parley msg/s"
    );
    for (name, msgs) in inputs() {
        for m in &msgs {
            let (p, e) = (parley_parse(m, &limits), ezk_parse(m));
            if p != e {
                // ezk-sip-types decodes %HH in Via parameters, where RFC 3261 has no escapes.
                println!("  note: {name}: parley read {p:?}, ezk-sip-types read {e:?}");
            }
        }
        let p = median_ns(&msgs, &|m| parley_parse(m, &limits));
        let framing_only = median_ns(&msgs, &|m| {
            Message::parse(m.clone(), Framing::Datagram, &limits)
                .ok()
                .map(|m| (m.headers().len(), 0, 0, 0, 0))
        });
        let e = median_ns(&msgs, &|m| ezk_parse(m));
        println!(
            "{name:<26} {:>5} {p:>12.0} {framing_only:>10.0} {e:>14.0} {:>6.1}x {:>13.0}",
            msgs.len(),
            e / p,
            1e9 / p
        );
    }
}

criterion_group!(sip, benches);

fn main() {
    sip();
    Criterion::default().configure_from_args().final_summary();
    // The summary runs under `cargo bench` without a filter.
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--bench") && args.iter().all(|a| a.starts_with('-')) {
        summary();
    }
}
