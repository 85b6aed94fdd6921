//! The registrar (RFC 3261 §10.3): add, refresh and remove bindings,
//! `Contact: *` with `Expires: 0`, min/max expires (423 with Min-Expires),
//! q-values, Call-ID/CSeq ordering, Path (RFC 3327). The 200 lists every
//! current binding with its remaining time.
//!
//! SIP Outbound (RFC 5626 §6): a contact with `+sip.instance` and
//! `reg-id` is a flow of that instance; a new registration on the same
//! (instance, reg-id) replaces the flow, several reg-ids live side by side
//! (up to `max_flows_per_instance`), the 200 carries `Require: outbound`
//! and `Flow-Timer`, and a REGISTER that came through a proxy without an
//! `ob` Path is refused with 439.

use crate::net::Incoming;
use crate::proto::sip::typed::{parse_delta, parse_q, Contact};
use crate::proto::sip::uri::Uri;
use crate::proto::sip::{HeaderName, Message};

use super::auth::Verdict;
use super::location::Binding;
use super::Core;
use crate::proto::time::http_date;
use crate::sys::now_secs;

/// What the registrar refuses once it looks at the bindings.
enum Refusal {
    OutOfOrder,
    TooMany,
    TooManyFlows,
}

/// One contact of the request.
struct Wanted {
    uri: String,
    /// The Contact value without its expires parameter.
    contact: String,
    expires: u32,
    q: u16,
    /// `+sip.instance` and `reg-id`, for an outbound flow.
    flow: Option<(String, u32)>,
    /// `+sip.instance`, flow or not (GRUUs are given for it).
    instance: Option<String>,
}

/// Rebuilds a Contact value without `expires`, every other part as sent.
fn without_expires(na: &crate::proto::sip::typed::NameAddr<'_>) -> String {
    let mut out = String::new();
    if let Some(d) = na.display {
        out.push_str(&String::from_utf8_lossy(d));
        out.push(' ');
    }
    out.push('<');
    out.push_str(&String::from_utf8_lossy(na.uri_raw));
    out.push('>');
    for (name, value) in na.params.iter() {
        if name.eq_ignore_ascii_case("expires") {
            continue;
        }
        out.push(';');
        out.push_str(name);
        if let Some(v) = value {
            out.push('=');
            out.push_str(&String::from_utf8_lossy(v));
        }
    }
    out
}

/// Equal contact URIs per RFC 3261 §19.1.4 (sip/sips), else byte-equal.
fn same_uri(a: &str, b: &str) -> bool {
    match (Uri::parse(a.as_bytes()), Uri::parse(b.as_bytes())) {
        (Ok(x), Ok(y)) => match (x.as_sip(), y.as_sip()) {
            (Some(x), Some(y)) => x.equivalent(y),
            _ => a == b,
        },
        _ => a == b,
    }
}

/// Serves one REGISTER.
pub async fn register(core: &Core, inc: &mut Incoming) {
    let now = now_secs();
    let msg = &inc.message;
    let r = &mut inc.responder;
    let cfg = &core.registrar.get();

    // Step 1: the Request-URI names a domain served here.
    let local = match msg.request_uri() {
        Some(Ok(uri)) => uri.as_sip().is_some_and(|s| core.is_local(&s.host, s.port)),
        _ => false,
    };
    if !local {
        return r.reply(403, "Not a domain served here", &[]).await;
    }
    // Step 5: the To URI is the address of record.
    let Some((user, domain)) = aor_of(core, msg) else {
        return r.reply(404, "Not Found (no user in To)", &[]).await;
    };
    if !core.is_local_domain(&domain) {
        return r.reply(404, "Not Found (not a local domain)", &[]).await;
    }
    let aor = format!("{user}@{domain}");

    // Steps 3 and 4: who is asking, and may they change this AOR.
    if core.auth_registrar.get() {
        match core
            .auth
            .check(
                msg,
                HeaderName::Authorization,
                (
                    &domain,
                    crate::auth::Origin {
                        transport: inc.transport.name(),
                        source: inc.source,
                    },
                ),
                now,
                |u| core.names_us(u),
            )
            .await
        {
            Verdict::User(u, d) if u == user && d.eq_ignore_ascii_case(&domain) => {}
            Verdict::User(..) => {
                return r
                    .reply(403, "Not allowed to register this address", &[])
                    .await
            }
            Verdict::Challenge { stale } => {
                let extra = core
                    .auth
                    .challenge_fields("WWW-Authenticate", &domain, stale, now);
                return r.reply(401, "Unauthorized", &extra).await;
            }
            Verdict::Forbidden(reason) => return r.reply(403, reason, &[]).await,
        }
    } else if core.auth.user(&user, &domain).await.is_none() {
        return r.reply(404, "Not Found", &[]).await;
    }

    // Step 6: the contacts and their lifetimes.
    let default_expires = match msg.headers().get(HeaderName::Expires) {
        Some(v) => match parse_delta(v, "Expires") {
            Ok(e) => e,
            Err(e) => return r.reply(400, &e.to_string(), &[]).await,
        },
        None => cfg.default_expires,
    };
    let mut star = false;
    let mut wanted: Vec<Wanted> = Vec::new();
    for value in msg.headers().values(HeaderName::Contact) {
        match Contact::parse(value) {
            Ok(Contact::Star) => star = true,
            Ok(Contact::Addr(na)) => {
                let expires = na
                    .params
                    .value("expires")
                    .and_then(|v| v.parse::<u32>().ok())
                    .unwrap_or(default_expires);
                let q = na
                    .params
                    .value("q")
                    .and_then(|v| parse_q(v.as_bytes()))
                    .unwrap_or(1000);
                // RFC 5626 §4.2: reg-id is 1 to 2^31-1, and counts only
                // with an instance.
                let instance = na.params.value("+sip.instance").map(|v| v.to_string());
                let reg_id = match na.params.value("reg-id") {
                    None => None,
                    Some(v) => match v.parse::<u32>() {
                        Ok(n) if (1..=0x7FFF_FFFF).contains(&n) => Some(n),
                        _ => return r.reply(400, "Bad reg-id in Contact", &[]).await,
                    },
                };
                wanted.push(Wanted {
                    uri: String::from_utf8_lossy(na.uri_raw).into_owned(),
                    contact: without_expires(&na),
                    expires,
                    q,
                    flow: instance.clone().zip(reg_id),
                    instance,
                });
            }
            Err(e) => return r.reply(400, &e.to_string(), &[]).await,
        }
    }
    if star && (!wanted.is_empty() || default_expires != 0) {
        return r
            .reply(400, "Contact * needs Expires 0 and no other contact", &[])
            .await;
    }
    if wanted
        .iter()
        .any(|w| w.expires > 0 && w.expires < cfg.min_expires)
    {
        return r
            .reply(
                423,
                "Interval Too Brief",
                &[("Min-Expires", cfg.min_expires.to_string())],
            )
            .await;
    }
    let call_id = msg
        .headers()
        .get(HeaderName::CallId)
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .unwrap_or_default();
    let cseq = msg.cseq().and_then(Result::ok).map_or(0, |c| c.seq);
    let user_agent: Box<str> = msg
        .headers()
        .get(HeaderName::UserAgent)
        .map(|v| String::from_utf8_lossy(&v[..v.len().min(256)]).into_owned())
        .unwrap_or_default()
        .into();
    let path: Vec<String> = msg
        .headers()
        .values(HeaderName::Path)
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect();
    let (transport, source) = (inc.transport, inc.source);
    // RFC 8599 §5.3: with push on, a device asks for a service Parley has,
    // or is told 555; the 200 names the service (Feature-Caps).
    let mut push_caps: Option<String> = None;
    if core.push.enabled() {
        for (w, value) in wanted.iter().zip(msg.headers().values(HeaderName::Contact)) {
            let Some(provider) = super::push::Device::provider_of(&w.uri) else {
                continue;
            };
            if !core.push.serves(&provider) {
                return r
                    .reply(555, "Push Notification Service Not Supported", &[])
                    .await;
            }
            let wakes_itself = String::from_utf8_lossy(value).contains("+sip.pnsreg");
            let mut caps = format!("*;+sip.pns=\"{provider}\"");
            if wakes_itself {
                // Refresh this long before the binding expires, unwoken.
                caps.push_str(";+sip.pnsreg=\"130\"");
            }
            // The device's PURR, for the URIs of its dialogs (§4.1.3).
            if let Some(device) = super::push::Device::of(&w.uri) {
                let purr = core.purrs.issue(&aor, &device.prid);
                caps.push_str(&format!(";+sip.pnspurr=\"{purr}\""));
            }
            push_caps = Some(caps);
        }
    }
    // RFC 5626 §6: outbound needs Parley to be the first hop, or the first
    // hop to have put `ob` in its Path.
    let outbound = wanted.iter().any(|w| w.flow.is_some());
    if outbound {
        let vias = msg.headers().values(HeaderName::Via).count();
        let edge_ob = path.first().is_some_and(|p| first_path_has_ob(p));
        if vias > 1 && !edge_ob {
            return r.reply(439, "First Hop Lacks Outbound Support", &[]).await;
        }
    }

    // Steps 7 and 8: apply, all or nothing.
    let changed = core.location.update(&aor, |bindings| {
        let stale = |b: &Binding| b.call_id.as_ref() == call_id && cseq <= b.cseq;
        if star {
            if bindings.iter().any(stale) {
                return Err(Refusal::OutOfOrder);
            }
            bindings.clear();
            return Ok(());
        }
        for w in &wanted {
            // The binding this contact replaces: for an outbound flow the
            // one of the same instance and reg-id (whatever its URI), else
            // the same URI outside any flow.
            let pos = bindings.iter().position(|b| match &w.flow {
                Some((instance, reg_id)) => {
                    b.reg_id == *reg_id && b.instance.as_ref() == instance.as_str()
                }
                None => b.reg_id == 0 && same_uri(&b.uri, &w.uri),
            });
            if let Some(i) = pos {
                if stale(&bindings[i]) {
                    return Err(Refusal::OutOfOrder);
                }
                bindings.remove(i);
            }
            if w.expires == 0 {
                continue;
            }
            bindings.retain(|b| b.expires_at > now);
            if bindings.len() >= cfg.max_contacts {
                return Err(Refusal::TooMany);
            }
            if let Some((instance, _)) = &w.flow {
                let flows = bindings
                    .iter()
                    .filter(|b| b.reg_id != 0 && b.instance.as_ref() == instance.as_str())
                    .count();
                if flows >= cfg.max_flows_per_instance {
                    return Err(Refusal::TooManyFlows);
                }
            }
            bindings.push(Binding {
                uri: w.uri.as_str().into(),
                contact: w.contact.as_str().into(),
                expires_at: now + u64::from(w.expires.min(cfg.max_expires)),
                q: w.q,
                call_id: call_id.as_str().into(),
                cseq,
                path: path.join(", ").into(),
                transport,
                source,
                instance: w.instance.as_deref().unwrap_or("").into(),
                reg_id: w.flow.as_ref().map_or(0, |f| f.1),
                user_agent: user_agent.clone(),
                node: "".into(),
            });
        }
        Ok(())
    });
    match changed {
        Ok(()) => {}
        Err(Refusal::OutOfOrder) => {
            return r
                .reply(500, "Out-of-order REGISTER (CSeq not higher)", &[])
                .await
        }
        Err(Refusal::TooMany) => {
            return r
                .reply(403, "Too many contacts for this address", &[])
                .await
        }
        Err(Refusal::TooManyFlows) => {
            return r.reply(403, "Too many flows for this instance", &[]).await
        }
    }

    // RFC 5627 §5.3: a client that supports GRUU learns the public GRUU of
    // each instance and a new temporary one for those it registered now.
    let supports = |tag: &[u8]| {
        msg.headers().values(HeaderName::Supported).any(|v| {
            crate::proto::sip::grammar::split_commas(v)
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(tag))
        })
    };
    let gruu = supports(b"gruu");
    let fresh: Vec<&str> = wanted
        .iter()
        .filter_map(|w| w.instance.as_deref())
        .collect();
    let mut extra: Vec<(&str, String)> = core
        .location
        .lookup(&aor, now)
        .into_iter()
        .map(|b| {
            let mut value = format!("{};expires={}", b.contact, b.expires_at.saturating_sub(now));
            if gruu && !b.instance.is_empty() {
                let temp = if fresh.contains(&b.instance.as_ref()) {
                    None
                } else {
                    core.gruus.latest(&aor, &b.instance, &domain)
                };
                let temp = temp.unwrap_or_else(|| core.gruus.issue(&aor, &b.instance, &domain));
                value.push_str(&format!(
                    ";pub-gruu=\"{}\";temp-gruu=\"{temp}\"",
                    super::gruu::Gruus::public(&aor, &b.instance)
                ));
            }
            ("Contact", value)
        })
        .collect();
    // RFC 3327 §5.3: the Path is echoed when the UA supports it.
    if supports(b"path") {
        extra.extend(path.into_iter().map(|p| ("Path", p)));
    }
    if let Some(caps) = push_caps {
        extra.push(("Feature-Caps", caps));
    }
    if outbound {
        extra.push(("Require", "outbound".to_string()));
        extra.push(("Flow-Timer", cfg.flow_timer_secs.to_string()));
    }
    extra.push(("Date", http_date(now)));
    r.reply(200, "OK", &extra).await
}

/// Whether the first Path value's URI has the `ob` parameter (RFC 5626
/// §5.3: the edge proxy supports outbound).
fn first_path_has_ob(path: &str) -> bool {
    let first = crate::proto::sip::grammar::split_commas(path.as_bytes())
        .next()
        .unwrap_or_default();
    let text = String::from_utf8_lossy(first);
    let uri = text
        .trim()
        .trim_start_matches('<')
        .split('>')
        .next()
        .unwrap_or_default();
    uri.split(';')
        .skip(1)
        .any(|p| p.trim().eq_ignore_ascii_case("ob"))
}

/// The address of record of a REGISTER: its To user and domain
/// ([`Core::domain_of`]).
fn aor_of(core: &Core, msg: &Message) -> Option<(String, String)> {
    let to = msg.to()?.ok()?;
    let uri = to.uri().ok()?;
    let sip = uri.as_sip()?;
    let user = sip.user?;
    Some((user.to_string(), core.domain_of(&sip.host, sip.port)))
}
