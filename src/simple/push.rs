//! Push notifications for suspended devices (RFC 8599).
//!
//! A client that may be suspended registers a Contact whose URI carries
//! `pn-provider`, `pn-prid` and `pn-param`. When a request comes for such a
//! device and its flow is gone, Parley asks the device's push service to
//! wake it, holds the request until the device registers again (then sends
//! it over the new flow) or `wait_secs` pass (then 480, and a MESSAGE is
//! kept offline as for anyone unreachable).
//!
//! Push services sit behind [`PushService`]; the one that ships is an HTTP
//! webhook ([`Webhook`]): a JSON POST to the operator's own relay towards
//! APNs or FCM, or to a UnifiedPush distributor. Payloads carry no message
//! text unless `include_text` is on.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracing::{debug, info, warn};

use crate::config::{PushConfig, PushProviderConfig};
use crate::proto::sip::uri::Uri;

/// A device's push registration: the Contact URI's `pn-*` parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// `pn-provider` (`apns`, `fcm`, `webpush`).
    pub provider: String,
    /// `pn-prid`: the device's token at that service.
    pub prid: String,
    /// `pn-param`: what else the service needs (the app's id).
    pub param: Option<String>,
}

impl Device {
    /// The push registration of a Contact URI, when it has one (a
    /// provider and a token; RFC 8599 §4.1.1).
    pub fn of(contact_uri: &str) -> Option<Device> {
        let uri = Uri::parse(contact_uri.as_bytes()).ok()?;
        let sip = uri.as_sip()?;
        let get = |name: &str| sip.params.get(name).flatten().map(unescape);
        Some(Device {
            provider: get("pn-provider")?,
            prid: get("pn-prid")?,
            param: get("pn-param"),
        })
    }

    /// The provider a Contact URI names, token or not (a REGISTER asking
    /// what the proxy supports has no token yet).
    pub fn provider_of(contact_uri: &str) -> Option<String> {
        let uri = Uri::parse(contact_uri.as_bytes()).ok()?;
        let sip = uri.as_sip()?;
        sip.params.get("pn-provider").flatten().map(unescape)
    }
}

/// `%xx` escapes undone (RFC 3261 §19.1.2).
fn unescape(s: &str) -> String {
    String::from_utf8_lossy(&crate::proto::sip::grammar::unescape(s.as_bytes())).into_owned()
}

/// What a push request is about.
#[derive(Debug, Clone)]
pub struct Wake {
    /// The user's address of record.
    pub aor: String,
    /// The SIP method waiting (`MESSAGE`, `INVITE`, …).
    pub method: String,
    /// Who it is from (a SIP URI).
    pub from: String,
    /// The message's text, when the operator lets payloads carry it.
    pub text: Option<String>,
}

/// How a push request went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The service took it.
    Sent,
    /// The service says the token is no longer valid: the binding goes.
    Gone,
    /// It failed: the reason.
    Failed(String),
}

/// A push notification service.
#[async_trait]
pub trait PushService: Send + Sync {
    /// The `pn-provider` value it serves.
    fn provider(&self) -> &str;
    /// Asks it to wake `device` about `wake`.
    async fn push(&self, device: &Device, wake: &Wake) -> Outcome;
}

/// An HTTP webhook: `POST` of a JSON object to the configured URL, with a
/// bearer token when one is set; 2xx is sent, 404 and 410 mean the token
/// is gone, anything else (or no answer in time) failed.
pub struct Webhook {
    name: String,
    host: String,
    port: u16,
    path: String,
    /// For `https://`: the client configuration (its trust anchors).
    tls: Option<Arc<rustls::ClientConfig>>,
    token: Option<String>,
    timeout: Duration,
    limiter: DefaultDirectRateLimiter,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("name", &self.name)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Webhook {
    /// The webhook of a `[[push.provider]]`; `Err` for a URL it cannot use
    /// (the config check uses the same reading).
    pub fn new(c: &PushProviderConfig) -> Result<Webhook, String> {
        let (host, port, path, tls) = c.endpoint()?;
        let tls = if tls {
            let system = std::path::PathBuf::from("/etc/ssl/certs/ca-certificates.crt");
            let ca = c.ca_file.clone().unwrap_or(system);
            Some(
                crate::net::tls::verifying_client_config(&ca, None)
                    .map_err(|e| format!("{}: {e}", c.url))?,
            )
        } else {
            None
        };
        let rate = NonZeroU32::new(c.per_second.max(1)).unwrap_or(NonZeroU32::MIN);
        Ok(Webhook {
            name: c.name.clone(),
            host,
            port,
            path,
            tls,
            token: c.token.clone(),
            timeout: Duration::from_millis(c.timeout_ms.max(1)),
            limiter: RateLimiter::direct(Quota::per_second(rate)),
        })
    }

    async fn post(&self, body: &str) -> Result<u16, String> {
        let tcp = tokio::net::TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| format!("cannot connect: {e}"))?;
        match &self.tls {
            None => self.exchange(tcp, body).await,
            Some(config) => {
                let name = rustls::pki_types::ServerName::try_from(self.host.clone())
                    .map_err(|e| format!("{}: {e}", self.host))?;
                let tls = tokio_rustls::TlsConnector::from(config.clone())
                    .connect(name, tcp)
                    .await
                    .map_err(|e| format!("TLS: {e}"))?;
                self.exchange(tls, body).await
            }
        }
    }

    async fn exchange(
        &self,
        mut stream: impl tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
        body: &str,
    ) -> Result<u16, String> {
        let auth = self
            .token
            .as_ref()
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        let request = format!(
            "POST {} HTTP/1.1\r\nHost: {}:{}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{auth}Connection: close\r\n\r\n{body}",
            self.path,
            self.host,
            self.port,
            body.len()
        );
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        // The status line is all Parley needs; a bounded read.
        let mut head = Vec::with_capacity(256);
        let mut chunk = [0u8; 512];
        while !head.windows(2).any(|w| w == b"\r\n") && head.len() < 4096 {
            let n = stream.read(&mut chunk).await.map_err(|e| e.to_string())?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&chunk[..n]);
        }
        let line = String::from_utf8_lossy(&head);
        line.split_whitespace()
            .nth(1)
            .and_then(|c| c.parse::<u16>().ok())
            .ok_or_else(|| "no HTTP status from the push service".to_string())
    }
}

#[async_trait]
impl PushService for Webhook {
    fn provider(&self) -> &str {
        &self.name
    }

    async fn push(&self, device: &Device, wake: &Wake) -> Outcome {
        if self.limiter.check().is_err() {
            return Outcome::Failed("rate-limited".into());
        }
        let mut body = serde_json::json!({
            "provider": device.provider,
            "prid": device.prid,
            "param": device.param,
            "aor": wake.aor,
            "method": wake.method,
            "from": wake.from,
        });
        if let Some(text) = &wake.text {
            body["text"] = serde_json::Value::String(text.clone());
        }
        match tokio::time::timeout(self.timeout, self.post(&body.to_string())).await {
            Ok(Ok(code)) if (200..300).contains(&code) => Outcome::Sent,
            Ok(Ok(404 | 410)) => Outcome::Gone,
            Ok(Ok(code)) => Outcome::Failed(format!("the push service answered {code}")),
            Ok(Err(e)) => Outcome::Failed(e),
            Err(_) => Outcome::Failed("the push service did not answer in time".into()),
        }
    }
}

/// The push services of the config, and how requests wait for devices.
pub struct Push {
    services: Vec<Arc<dyn PushService>>,
    /// How long a request waits for the device to register again.
    pub wait: Duration,
    /// Whether payloads carry the message's text.
    pub include_text: bool,
}

impl std::fmt::Debug for Push {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Push")
            .field(
                "providers",
                &self
                    .services
                    .iter()
                    .map(|s| s.provider())
                    .collect::<Vec<_>>(),
            )
            .field("wait", &self.wait)
            .finish()
    }
}

impl Push {
    /// The services of `[push]`.
    pub fn new(config: &PushConfig) -> Result<Push, String> {
        let mut services: Vec<Arc<dyn PushService>> = Vec::new();
        for p in &config.provider {
            services.push(Arc::new(Webhook::new(p)?));
        }
        Ok(Push {
            services,
            wait: Duration::from_secs(config.wait_secs.max(1)),
            include_text: config.include_text,
        })
    }

    /// Whether any service is configured (RFC 8599 support is on).
    pub fn enabled(&self) -> bool {
        !self.services.is_empty()
    }

    /// Whether `provider` is served.
    pub fn serves(&self, provider: &str) -> bool {
        self.service(provider).is_some()
    }

    fn service(&self, provider: &str) -> Option<&Arc<dyn PushService>> {
        self.services
            .iter()
            .find(|s| s.provider().eq_ignore_ascii_case(provider))
    }

    /// Wakes `device` about `wake`, counted in `/metrics`.
    pub async fn wake(&self, device: &Device, wake: &Wake) -> Outcome {
        let outcome = match self.service(&device.provider) {
            Some(s) => s.push(device, wake).await,
            None => Outcome::Failed(format!("no push service for {}", device.provider)),
        };
        let label = match &outcome {
            Outcome::Sent => "sent",
            Outcome::Gone => "gone",
            Outcome::Failed(_) => "failed",
        };
        metrics::counter!("parley_push_requests_total", "provider" => device.provider.clone(), "outcome" => label)
            .increment(1);
        match &outcome {
            Outcome::Sent => debug!(aor = %wake.aor, provider = %device.provider, "push sent"),
            Outcome::Gone => {
                info!(aor = %wake.aor, provider = %device.provider, "push token no longer valid: binding removed")
            }
            Outcome::Failed(why) => {
                warn!(aor = %wake.aor, provider = %device.provider, %why, "push failed")
            }
        }
        outcome
    }
}

/// RFC 8599 §5.4: devices of `aor` whose flow is gone are woken by push.
/// Returns the bindings to send `msg` to now: the reachable ones at once
/// (the woken ones get what comes later), or, when none is reachable, the
/// first to register again within the wait; `None` when no one came.
pub async fn wake_and_wait(
    core: &super::Core,
    sip: &crate::net::Sip,
    msg: &crate::proto::sip::Message,
    aor: &str,
    bindings: Vec<super::location::Binding>,
) -> Option<Vec<super::location::Binding>> {
    use super::targets::binding_target;
    let (awake, asleep): (Vec<_>, Vec<_>) = bindings
        .into_iter()
        .partition(|b| binding_target(b, sip).is_some());
    let asleep: Vec<_> = asleep
        .into_iter()
        .filter_map(|b| Device::of(&b.uri).map(|d| (b, d)))
        .collect();
    if asleep.is_empty() {
        return (!awake.is_empty()).then_some(awake);
    }
    // Listen before pushing: the device may be quick.
    let mut registered = core.location.watch();
    let from = msg
        .from()
        .and_then(Result::ok)
        .map(|f| String::from_utf8_lossy(f.uri_raw).into_owned())
        .unwrap_or_default();
    let text = (core.push.include_text
        && matches!(msg.method(), Some(crate::proto::sip::Method::Message)))
    .then(|| String::from_utf8_lossy(msg.body()).into_owned());
    let wake = Wake {
        aor: aor.to_string(),
        method: msg.method().map_or_else(String::new, |m| m.to_string()),
        from,
        text,
    };
    let mut sent = false;
    for (b, device) in &asleep {
        match core.push.wake(device, &wake).await {
            Outcome::Sent => sent = true,
            // An expired or refused token: the binding cannot be woken.
            Outcome::Gone => {
                let _ = core.location.update(aor, |list| {
                    list.retain(|x| !(x.uri == b.uri && x.reg_id == b.reg_id));
                    Ok::<(), ()>(())
                });
                core.push_presence(sip, aor).await;
            }
            Outcome::Failed(_) => {}
        }
    }
    if !awake.is_empty() {
        return Some(awake);
    }
    if !sent {
        return None;
    }
    let deadline = tokio::time::Instant::now() + core.push.wait;
    loop {
        let now = crate::sys::now_secs();
        let usable: Vec<_> = core
            .location
            .lookup(aor, now)
            .into_iter()
            .filter(|b| binding_target(b, sip).is_some())
            .collect();
        if !usable.is_empty() {
            return Some(usable);
        }
        // Any registration (or a lagging receiver) is a reason to look again.
        if tokio::time::timeout_at(deadline, registered.recv())
            .await
            .is_err()
        {
            return None;
        }
    }
}

/// The PURRs issued (RFC 8599 §4.1.3, `+sip.pnspurr`): a reference a device
/// puts in the URIs of its dialogs (`pn-purr`), by which Parley finds the
/// device's registration (and wakes it) when a request is sent there.
#[derive(Debug, Default)]
pub struct Purrs {
    map: std::sync::Mutex<std::collections::HashMap<String, (String, String)>>,
}

impl Purrs {
    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, (String, String)>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The PURR of the device with push token `prid` of `aor` (the same
    /// one on each registration of that device).
    pub fn issue(&self, aor: &str, prid: &str) -> String {
        let mut map = self.lock();
        if let Some((purr, _)) = map.iter().find(|(_, (a, p))| a == aor && p == prid) {
            return purr.clone();
        }
        let purr = format!("purr.{}", crate::sys::token_hex(12));
        map.insert(purr.clone(), (aor.to_string(), prid.to_string()));
        purr
    }

    /// The (address of record, push token) a PURR names.
    pub fn resolve(&self, purr: &str) -> Option<(String, String)> {
        self.lock().get(purr).cloned()
    }

    /// Forgets the PURRs of devices `registered` says are gone.
    pub fn retain(&self, registered: impl Fn(&str, &str) -> bool) {
        self.lock().retain(|_, (aor, prid)| registered(aor, prid));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_contact_uri_names_its_push_service_token_and_app() {
        // RFC 8599 §4.1.1's parameters (the token percent-escaped).
        let d = Device::of(
            "sip:alice@192.0.2.1:5060;transport=tcp;pn-provider=apns;pn-prid=00fc13adff78512%3D;pn-param=ZZY8EVRLM6.com.example.voip",
        )
        .unwrap();
        assert_eq!(d.provider, "apns");
        assert_eq!(d.prid, "00fc13adff78512=");
        assert_eq!(d.param.as_deref(), Some("ZZY8EVRLM6.com.example.voip"));
        // A query for support has no token yet.
        assert_eq!(Device::of("sip:alice@192.0.2.1;pn-provider=fcm"), None);
        assert_eq!(
            Device::provider_of("sip:alice@192.0.2.1;pn-provider=fcm").as_deref(),
            Some("fcm")
        );
        assert_eq!(Device::of("sip:alice@192.0.2.1"), None);
    }

    #[test]
    fn webhook_urls_are_read_or_refused() {
        let c = |url: &str| PushProviderConfig {
            name: "apns".into(),
            url: url.into(),
            token: None,
            ca_file: None,
            timeout_ms: 1000,
            per_second: 5,
        };
        let w = Webhook::new(&c("http://127.0.0.1:8099/push/apns")).unwrap();
        assert_eq!(
            (w.host.as_str(), w.port, w.path.as_str()),
            ("127.0.0.1", 8099, "/push/apns")
        );
        let w = Webhook::new(&c("http://[::1]:80")).unwrap();
        assert_eq!((w.host.as_str(), w.path.as_str()), ("::1", "/"));
        assert_eq!(
            c("https://relay.example.com/push").endpoint(),
            Ok(("relay.example.com".into(), 443, "/push".into(), true))
        );
        assert!(Webhook::new(&c("ftp://relay.example.com/")).is_err());
        assert!(Webhook::new(&c("http://:80/")).is_err());
    }
}
