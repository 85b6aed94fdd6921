//! One XML stream over any byte stream: frames in, text out, with a
//! bounded wait for each read. Shared by s2s links and component links.

use std::time::Duration;

use parley_adapter::xml::{self, Element};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::framer::{Frame, Framer, StreamError, NS_STREAMS};

/// A byte stream the XML stream runs on (TCP, or TLS over TCP).
pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Io for T {}

/// Why a stream ended.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LinkError {
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Stream(#[from] StreamError),
    #[error("the peer closed the stream")]
    Closed,
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
    #[error("stream error from the peer: {0}")]
    Remote(String),
    #[error("{0}")]
    Refused(String),
}

/// An XML stream on `S`.
pub(crate) struct XmlStream<S> {
    pub(crate) io: S,
    pub(crate) framer: Framer,
    buf: Box<[u8]>,
}

impl<S: Io> XmlStream<S> {
    pub(crate) fn new(io: S, max_stanza: usize) -> XmlStream<S> {
        XmlStream {
            io,
            framer: Framer::new(max_stanza),
            buf: vec![0u8; 16 * 1024].into_boxed_slice(),
        }
    }

    /// The next frame, waiting at most `wait`.
    pub(crate) async fn read(
        &mut self,
        wait: Duration,
        what: &'static str,
    ) -> Result<Frame, LinkError> {
        tokio::time::timeout(wait, self.read_frame())
            .await
            .map_err(|_| LinkError::Timeout(what))?
    }

    /// The next frame, however long it takes. A `<stream:error>` becomes an
    /// error; so does the end of the stream.
    pub(crate) async fn read_frame(&mut self) -> Result<Frame, LinkError> {
        loop {
            let next = match self.framer.next_frame() {
                Ok(next) => next,
                Err(e) => {
                    // RFC 6120 §4.9: the stream error names the fault.
                    self.fail(e.condition(), &e.to_string()).await;
                    return Err(e.into());
                }
            };
            if let Some(frame) = next {
                if let Frame::Stanza(el) = &frame {
                    if el.is(NS_STREAMS, "error") {
                        let condition = el
                            .elements()
                            .next()
                            .map_or_else(|| "undefined-condition".to_string(), |c| c.name.clone());
                        return Err(LinkError::Remote(condition));
                    }
                }
                return Ok(frame);
            }
            let n = self.io.read(&mut self.buf).await?;
            if n == 0 {
                return Err(LinkError::Closed);
            }
            self.framer.feed(&self.buf[..n]);
        }
    }

    pub(crate) async fn send(&mut self, text: &str) -> Result<(), LinkError> {
        self.io.write_all(text.as_bytes()).await?;
        self.io.flush().await?;
        Ok(())
    }

    pub(crate) async fn send_element(&mut self, el: &Element, ns: &str) -> Result<(), LinkError> {
        let mut text = String::with_capacity(256);
        // Dialback elements carry the `db:` prefix the stream header binds:
        // some servers match the prefixed name.
        xml::write_fragment_with(el, ns, &[("jabber:server:dialback", "db")], &mut text);
        self.send(&text).await
    }

    /// Sends a stream error and closes the stream (RFC 6120 §4.9).
    pub(crate) async fn fail(&mut self, condition: &str, text: &str) {
        let mut out = String::from("<stream:error>");
        let mut cond = String::new();
        xml::write_fragment(
            &Element::new("urn:ietf:params:xml:ns:xmpp-streams", condition),
            "",
            &mut cond,
        );
        out.push_str(&cond);
        if !text.is_empty() {
            let mut t = String::new();
            xml::write_fragment(
                &Element::new("urn:ietf:params:xml:ns:xmpp-streams", "text").with_text(text),
                "",
                &mut t,
            );
            out.push_str(&t);
        }
        out.push_str("</stream:error></stream:stream>");
        let _ = tokio::time::timeout(Duration::from_secs(2), self.send(&out)).await;
        let _ = tokio::time::timeout(Duration::from_secs(2), self.io.shutdown()).await;
    }

    /// Closes the stream gracefully.
    pub(crate) async fn close(&mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(2), self.send("</stream:stream>")).await;
        let _ = tokio::time::timeout(Duration::from_secs(2), self.io.shutdown()).await;
    }
}

/// The opening tag of a stream.
pub(crate) fn header(ns: &str, from: &str, to: &str, id: Option<&str>, dialback: bool) -> String {
    let esc = |s: &str| {
        s.replace('&', "&amp;")
            .replace('\'', "&apos;")
            .replace('<', "&lt;")
    };
    let mut h =
        format!("<?xml version='1.0'?><stream:stream xmlns='{ns}' xmlns:stream='{NS_STREAMS}'");
    if dialback {
        h.push_str(" xmlns:db='jabber:server:dialback'");
    }
    if !from.is_empty() {
        h.push_str(&format!(" from='{}'", esc(from)));
    }
    h.push_str(&format!(" to='{}'", esc(to)));
    if let Some(id) = id {
        h.push_str(&format!(" id='{}'", esc(id)));
    }
    h.push_str(" version='1.0'>");
    h
}

/// A random token (stream ids, stanza ids), from the crypto provider's
/// CSPRNG.
pub(crate) fn token() -> String {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 16];
    // SystemRandom fails only when the OS has no entropy source at all.
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .expect("the operating system's random number generator");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
