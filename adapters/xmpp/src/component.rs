//! XEP-0114 component mode: Parley attaches to an existing XMPP server as
//! the component serving a subdomain (`sip.example.com`), for companies
//! that already run Prosody or ejabberd. The server authenticates its own
//! users and federates; Parley trusts what the server hands it on this
//! link, which is authenticated by the shared secret.

use std::sync::Arc;
use std::time::Duration;

use parley_adapter::xml::Element;
use parley_adapter::{Condition, Failure, Link, Peer, PeerAuth, Protocol};
use sha1::{Digest, Sha1};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

use crate::framer::Frame;
use crate::io::{header, LinkError, XmlStream};
use crate::s2s::hex;
use crate::{ComponentSettings, Shared};

pub(crate) const NS_COMPONENT: &str = "jabber:component:accept";

/// A stanza for the component link and who waits for it to leave.
pub(crate) type Outgoing = (Element, Option<oneshot::Sender<Result<(), Failure>>>);

/// The XEP-0114 handshake value: hex SHA-1 of the stream id and the secret.
pub fn handshake(stream_id: &str, secret: &str) -> String {
    hex(&Sha1::digest(format!("{stream_id}{secret}").as_bytes()))
}

/// Keeps the component connected (reconnecting with backoff) and carries
/// stanzas both ways until Parley stops.
pub(crate) async fn run(
    shared: Arc<Shared>,
    index: usize,
    mut rx: mpsc::Receiver<Outgoing>,
    ready: Option<oneshot::Sender<Result<(), Failure>>>,
) {
    let settings: &ComponentSettings = &shared.settings.components[index];
    let mut ready = ready;
    let mut backoff = Duration::from_millis(250);
    loop {
        let connected = tokio::select! {
            _ = shared.stop.cancelled() => return,
            r = connect(&shared, settings) => r,
        };
        match connected {
            Ok(mut stream) => {
                backoff = Duration::from_millis(250);
                info!(domain = %settings.domain, server = %settings.server, "XMPP component connected");
                shared.set_component_up(index, true);
                if let Some(r) = ready.take() {
                    let _ = r.send(Ok(()));
                }
                let end = carry(&shared, index, &mut stream, &mut rx).await;
                shared.set_component_up(index, false);
                match end {
                    Ok(()) => return,
                    Err(e) => {
                        warn!(domain = %settings.domain, error = %e, "XMPP component link lost")
                    }
                }
            }
            Err(e) => {
                warn!(domain = %settings.domain, error = %e, "XMPP component not connected");
                if let Some(r) = ready.take() {
                    let _ = r.send(Err(Failure::new(
                        Condition::RemoteServerNotFound,
                        e.to_string(),
                    )));
                }
                // Nothing can leave meanwhile: say so instead of waiting.
                while let Ok((_, done)) = rx.try_recv() {
                    if let Some(done) = done {
                        let _ = done.send(Err(Failure::new(
                            Condition::RemoteServerNotFound,
                            "component link down",
                        )));
                    }
                }
            }
        }
        tokio::select! {
            _ = shared.stop.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}

async fn connect(
    shared: &Arc<Shared>,
    settings: &ComponentSettings,
) -> Result<XmlStream<TcpStream>, LinkError> {
    let wait = shared.settings.connect_timeout;
    let tcp = tokio::time::timeout(wait, TcpStream::connect(settings.server))
        .await
        .map_err(|_| LinkError::Timeout("connect"))??;
    let _ = tcp.set_nodelay(true);
    let mut stream = XmlStream::new(tcp, shared.settings.max_stanza);
    stream
        .send(&header(NS_COMPONENT, "", &settings.domain, None, false))
        .await?;
    let Frame::Header(h) = stream.read(wait, "stream header").await? else {
        return Err(LinkError::Refused("no stream header".into()));
    };
    let id =
        h.id.ok_or_else(|| LinkError::Refused("no stream id".into()))?;
    let value = handshake(&id, &settings.secret);
    stream
        .send_element(
            &Element::new(NS_COMPONENT, "handshake").with_text(&value),
            NS_COMPONENT,
        )
        .await?;
    match stream.read(wait, "handshake").await? {
        Frame::Stanza(el) if el.is(NS_COMPONENT, "handshake") => Ok(stream),
        _ => Err(LinkError::Refused("handshake refused".into())),
    }
}

async fn carry(
    shared: &Arc<Shared>,
    index: usize,
    stream: &mut XmlStream<TcpStream>,
    rx: &mut mpsc::Receiver<Outgoing>,
) -> Result<(), LinkError> {
    let settings = &shared.settings.components[index];
    let inflight = Arc::new(tokio::sync::Semaphore::new(crate::IN_FLIGHT));
    loop {
        tokio::select! {
            _ = shared.stop.cancelled() => {
                stream.close().await;
                return Ok(());
            }
            out = rx.recv() => {
                let Some((el, done)) = out else {
                    stream.close().await;
                    return Ok(());
                };
                let r = stream.send_element(&el, NS_COMPONENT).await;
                let failed = r.as_ref().err().map(ToString::to_string);
                if let Some(done) = done {
                    let _ = done.send(r.map_err(|e| Failure::new(Condition::RemoteServerTimeout, e.to_string())));
                }
                if let Some(e) = failed {
                    return Err(LinkError::Refused(e));
                }
            }
            read = async {
                let permit = inflight.clone().acquire_owned().await;
                (permit, stream.read_frame().await)
            } => {
                let (permit, frame) = read;
                let Ok(permit) = permit else { return Err(LinkError::Closed) };
                let frame = match frame {
                    Ok(f) => f,
                    Err(e) => return Err(e),
                };
                match frame {
                    Frame::Stanza(el) => {
                        let from_domain = crate::jid_domain(el.attr("from"));
                        let peer = Peer {
                            adapter: shared.settings.name.clone(),
                            protocol: Protocol::Xmpp,
                            domain: from_domain,
                            auth: PeerAuth::SharedSecret,
                            tls: false,
                        };
                        debug!(domain = %settings.domain, name = %el.name, "stanza from the XMPP server");
                        crate::dispatch(
                            shared.clone(),
                            peer,
                            el,
                            NS_COMPONENT,
                            crate::Reply::Component(index),
                            permit,
                        );
                    }
                    Frame::Close => {
                        stream.close().await;
                        return Err(LinkError::Closed);
                    }
                    Frame::Header(_) => return Err(LinkError::Refused("second header".into())),
                }
            }
        }
    }
}

/// The component link for monitoring.
pub(crate) fn link(settings: &ComponentSettings) -> Link {
    Link {
        domain: settings.server_domain.clone(),
        direction: "component",
        auth: PeerAuth::SharedSecret,
        tls: false,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn handshake_is_xep_0114s() {
        // SHA-1 of "3BF96D32secret", computed independently.
        assert_eq!(
            super::handshake("3BF96D32", "secret"),
            "b09ea9b3b7f586be8a08d0a3dd7466f110aeb136"
        );
    }
}
