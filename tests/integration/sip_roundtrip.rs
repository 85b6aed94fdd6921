//! Property tests: generated messages, header values and URIs parse to what
//! was generated, print back, and parse again to the same thing; arbitrary
//! bytes never make a parser panic.

use bytes::Bytes;
use parley::proto::sip::typed::{CSeq, NameAddr, Via};
use parley::proto::sip::{Framing, HeaderName, Host, Limits, Message, Uri};
use proptest::prelude::*;

fn token() -> impl Strategy<Value = String> {
    "[A-Za-z0-9][A-Za-z0-9.!%*_+`'~-]{0,11}"
}

fn hostname() -> impl Strategy<Value = String> {
    (
        "[a-z][a-z0-9-]{0,8}[a-z0-9]",
        prop::collection::vec("[a-z0-9]{1,6}", 0..3),
        "[a-z]{2,5}",
    )
        .prop_map(|(a, mid, tld)| {
            let mut parts = vec![a];
            parts.extend(mid);
            parts.push(tld);
            parts.join(".")
        })
}

#[derive(Debug, Clone)]
struct GenUri {
    secure: bool,
    user: Option<String>,
    host: String,
    port: Option<u16>,
    params: Vec<(String, Option<String>)>,
}

impl GenUri {
    fn text(&self) -> String {
        let mut s = String::from(if self.secure { "sips:" } else { "sip:" });
        if let Some(u) = &self.user {
            s += u;
            s.push('@');
        }
        s += &self.host;
        if let Some(p) = self.port {
            s += &format!(":{p}");
        }
        for (n, v) in &self.params {
            s.push(';');
            s += n;
            if let Some(v) = v {
                s.push('=');
                s += v;
            }
        }
        s
    }
}

fn sip_uri() -> impl Strategy<Value = GenUri> {
    let host = prop_oneof![
        hostname(),
        any::<[u8; 4]>().prop_map(|a| std::net::Ipv4Addr::from(a).to_string()),
        any::<[u16; 8]>().prop_map(|a| format!("[{}]", std::net::Ipv6Addr::from(a))),
    ];
    (
        any::<bool>(),
        prop::option::of("[a-zA-Z0-9_.!~*'()&=+$,;?/-]{1,12}|[a-z]{1,4}%[0-9A-F]{2}[a-z]{0,4}"),
        host,
        prop::option::of(1u16..),
        prop::collection::vec(
            (
                "[a-z][a-z0-9-]{0,6}",
                prop::option::of("[a-zA-Z0-9.-]{1,8}"),
            ),
            0..4,
        ),
    )
        .prop_map(|(secure, user, host, port, params)| GenUri {
            secure,
            user,
            host,
            port,
            params,
        })
}

/// A way to write the same header: its name spelled in one of several cases
/// or its compact form, optional white space around the colon, an optional fold.
fn spelled(name: HeaderName) -> impl Strategy<Value = String> {
    let canon = name.canonical().to_string();
    let compact = name.compact();
    (0..4u8, any::<bool>()).prop_map(move |(how, space)| {
        let n = match (how, compact) {
            (0, _) => canon.clone(),
            (1, _) => canon.to_ascii_lowercase(),
            (2, _) => canon.to_ascii_uppercase(),
            (_, Some(c)) => c.to_string(),
            (_, None) => canon.clone(),
        };
        if space {
            format!("{n} :  ")
        } else {
            format!("{n}:")
        }
    })
}

#[derive(Debug, Clone)]
struct GenMessage {
    method: String,
    ruri: GenUri,
    from: GenUri,
    from_tag: String,
    to: GenUri,
    display: Option<String>,
    call_id: String,
    cseq: u32,
    branches: Vec<String>,
    extra: Vec<(String, String)>,
    body: Vec<u8>,
    names: Vec<String>,
    fold_via: bool,
}

fn message() -> impl Strategy<Value = GenMessage> {
    (
        (
            prop_oneof![
                Just("MESSAGE".to_string()),
                Just("INVITE".to_string()),
                Just("OPTIONS".to_string()),
                Just("SUBSCRIBE".to_string()),
                "[A-Z][A-Z-]{2,10}"
            ],
            sip_uri(),
            sip_uri(),
            token(),
            sip_uri(),
            prop::option::of("[ -!#-\\[\\]-~]{0,12}|[a-zA-Zé ü]{0,10}"),
        ),
        (
            "[a-zA-Z0-9.!%*_+`'~()<>:\\\\\"/\\[\\]?{}-]{1,20}(@[a-z0-9.]{1,10})?",
            any::<u32>(),
            prop::collection::vec("z9hG4bK[a-zA-Z0-9.-]{1,16}", 1..4),
            prop::collection::vec(("X-[A-Za-z]{1,8}", "[ -~]{0,30}"), 0..5),
            prop::collection::vec(any::<u8>(), 0..200),
            (
                spelled(HeaderName::From),
                spelled(HeaderName::To),
                spelled(HeaderName::CallId),
                spelled(HeaderName::Via),
            ),
            any::<bool>(),
        ),
    )
        .prop_map(
            |(
                (method, ruri, from, from_tag, to, display),
                (call_id, cseq, branches, extra, body, names, fold_via),
            )| {
                GenMessage {
                    method,
                    ruri,
                    from,
                    from_tag,
                    to,
                    display,
                    call_id,
                    cseq,
                    branches,
                    extra: extra
                        .into_iter()
                        .map(|(n, v)| (n, v.trim().to_string()))
                        .collect(),
                    body,
                    names: vec![names.0, names.1, names.2, names.3],
                    fold_via,
                }
            },
        )
}

impl GenMessage {
    fn render(&self) -> Vec<u8> {
        let mut s = format!("{} {} SIP/2.0\r\n", self.method, self.ruri.text());
        for (i, b) in self.branches.iter().enumerate() {
            let sep = if self.fold_via { "\r\n " } else { " " };
            s += &format!(
                "{}{sep}SIP/2.0/UDP h{i}.example.com;branch={b}\r\n",
                self.names[3]
            );
        }
        let display = match &self.display {
            Some(d) => format!("\"{}\" ", d.replace('\\', "\\\\").replace('"', "\\\"")),
            None => String::new(),
        };
        s += &format!(
            "{}{display}<{}>;tag={}\r\n",
            self.names[0],
            self.from.text(),
            self.from_tag
        );
        s += &format!("{}<{}>\r\n", self.names[1], self.to.text());
        s += &format!("{}{}\r\n", self.names[2], self.call_id);
        s += &format!("CSeq: {} {}\r\n", self.cseq, self.method);
        s += "Max-Forwards: 70\r\n";
        for (n, v) in &self.extra {
            s += &format!("{n}: {v}\r\n");
        }
        s += &format!("Content-Length: {}\r\n\r\n", self.body.len());
        let mut out = s.into_bytes();
        out.extend_from_slice(&self.body);
        out
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn generated_messages_parse_to_what_was_generated(g in message()) {
        let limits = Limits::default();
        let bytes = g.render();
        let msg = Message::parse(Bytes::from(bytes.clone()), Framing::Stream, &limits)
            .map_err(|e| TestCaseError::fail(format!("{e}\n{}", String::from_utf8_lossy(&bytes))))?;
        msg.validate(&limits).map_err(|e| TestCaseError::fail(format!("{e}\n{}", String::from_utf8_lossy(&bytes))))?;
        prop_assert_eq!(msg.method().map(|m| m.as_str().to_string()), Some(g.method.clone()));
        let ruri = g.ruri.text();
        prop_assert_eq!(msg.request_uri_raw(), Some(ruri.as_bytes()));
        let via = msg.top_via().unwrap().unwrap();
        prop_assert_eq!(via.branch(), Some(g.branches[0].as_str()));
        prop_assert_eq!(msg.headers().values(HeaderName::Via).count(), g.branches.len());
        prop_assert_eq!(msg.call_id(), Some(g.call_id.as_bytes()));
        prop_assert_eq!(msg.cseq().unwrap().unwrap(), CSeq { seq: g.cseq, method: &g.method });
        let from = msg.from().unwrap().unwrap();
        prop_assert_eq!(from.tag(), Some(g.from_tag.as_str()));
        prop_assert_eq!(from.display_name(), g.display.clone());
        let from_uri = g.from.text();
        prop_assert_eq!(from.uri_raw, from_uri.as_bytes());
        prop_assert_eq!(msg.to().unwrap().unwrap().tag(), None);
        for (n, _) in &g.extra {
            // Names compare without case: the first field spelled either way wins.
            let first = g.extra.iter().find(|(m, _)| m.eq_ignore_ascii_case(n)).map(|(_, v)| v.as_bytes());
            prop_assert_eq!(msg.headers().get_all(n).next(), first);
        }
        prop_assert_eq!(msg.body(), &g.body[..]);
        // Untouched, it prints byte for byte; printed, it parses to the same message.
        prop_assert_eq!(msg.to_bytes(), bytes);
        let again = Message::parse(Bytes::from(msg.to_bytes()), Framing::Stream, &limits).unwrap();
        prop_assert_eq!(&again, &msg);
    }

    #[test]
    fn modified_messages_print_canonically(g in message(), reason in "[a-zA-Z ]{0,20}") {
        let limits = Limits::default();
        let mut msg = Message::parse(Bytes::from(g.render()), Framing::Stream, &limits).unwrap();
        msg.headers_mut().push_front("v", "SIP/2.0/TCP proxy.example.com;branch=z9hG4bKproxy").unwrap();
        msg.headers_mut().set("max-forwards", "69").unwrap();
        msg.headers_mut().push("Warning", &format!("399 proxy.example.com \"{reason}\"")).unwrap();
        msg.set_request_uri("sip:next@hop.example.com;lr").unwrap();
        let printed = msg.to_bytes();
        prop_assert_eq!(msg.wire_len(), printed.len());
        let text = String::from_utf8_lossy(&printed);
        prop_assert!(text.starts_with(&format!("{} sip:next@hop.example.com;lr SIP/2.0\r\nVia: SIP/2.0/TCP proxy.example.com;branch=z9hG4bKproxy\r\n", g.method)), "{}", text);
        prop_assert!(text.contains("\r\nMax-Forwards: 69\r\n"));
        let again = Message::parse(Bytes::from(printed), Framing::Stream, &limits).unwrap();
        again.validate(&limits).unwrap();
        prop_assert_eq!(&again, &msg);
        prop_assert_eq!(again.top_via().unwrap().unwrap().branch(), Some("z9hG4bKproxy"));
    }

    #[test]
    fn generated_uris_parse_to_their_parts(g in sip_uri()) {
        let text = g.text();
        let uri = Uri::parse(text.as_bytes()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let Uri::Sip(sip) = uri else { return Err(TestCaseError::fail("not a SIP URI")) };
        prop_assert_eq!(sip.secure, g.secure);
        prop_assert_eq!(sip.user, g.user.as_deref());
        prop_assert_eq!(sip.port, g.port);
        match sip.host {
            Host::Name(n) => prop_assert_eq!(n, g.host.as_str()),
            Host::V4(a) => prop_assert_eq!(a.to_string(), g.host.clone()),
            Host::V6(a) => prop_assert_eq!(format!("[{a}]"), g.host.clone()),
        }
        let params: Vec<(String, Option<String>)> =
            sip.params.iter().map(|(n, v)| (n.to_string(), v.map(str::to_string))).collect();
        prop_assert_eq!(params, g.params.clone());
        let field = format!("<{text}>;tag=1");
        let na = NameAddr::parse_full(field.as_bytes(), "To").unwrap();
        prop_assert_eq!(na.uri_raw, text.as_bytes());
    }

    #[test]
    fn via_values_round_trip(host in hostname(), port in prop::option::of(1u16..), branch in "z9hG4bK[a-zA-Z0-9.!%*_+`'~-]{1,20}", rport in any::<bool>()) {
        let text = format!(
            "SIP/2.0/TCP {host}{};branch={branch}{}",
            port.map(|p| format!(":{p}")).unwrap_or_default(),
            if rport { ";rport" } else { "" }
        );
        let via = Via::parse(text.as_bytes()).unwrap();
        prop_assert_eq!(via.branch(), Some(branch.as_str()));
        prop_assert_eq!(via.port, port);
        prop_assert_eq!(via.rport(), rport.then_some(None));
        prop_assert_eq!(via.host, Host::Name(&host));
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..600)) {
        parley_test_support::fuzz::sip_message(&data);
        parley_test_support::fuzz::sip_uri(&data);
    }

    #[test]
    fn mutated_corpus_messages_never_panic(idx in 0usize..77, flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)) {
        let corpus = parley_test_support::fuzz_corpus("sip_message");
        let (_, mut data) = corpus[idx % corpus.len()].clone();
        for (at, byte) in flips {
            if !data.is_empty() {
                let i = at.index(data.len());
                data[i] = byte;
            }
        }
        parley_test_support::fuzz::sip_message(&data);
    }
}
