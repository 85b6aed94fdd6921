//! Sans-IO framing of an XMPP stream (RFC 6120 §4): bytes in, the stream
//! header, whole stanzas as trees, and the stream's end out.
//!
//! The framer scans each byte once, keeping its place between reads, and
//! cuts the stream at the end of every top-level element. It enforces the
//! restricted XML of RFC 6120 §11.1 (no DTD, comment or processing
//! instruction anywhere, `<restricted-xml/>`) and a size limit per stanza
//! (`<policy-violation/>`); each stanza is then read by the bounded tree
//! reader with the namespaces the stream header declared in scope.

use parley_adapter::xml::{self, Element, Limits};

/// The streams namespace.
pub const NS_STREAMS: &str = "http://etherx.jabber.org/streams";

/// The opening `<stream:stream>` tag.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Header {
    /// The default namespace (`jabber:server`, `jabber:component:accept`).
    pub ns: String,
    /// `from`.
    pub from: Option<String>,
    /// `to`.
    pub to: Option<String>,
    /// `id`.
    pub id: Option<String>,
    /// `version`.
    pub version: Option<String>,
    /// Every namespace declaration, as `xmlns[:p]="…"` text, to put the
    /// stanzas in scope.
    declarations: String,
    /// Whether the dialback namespace is declared (XEP-0220 §2.1).
    pub dialback: bool,
}

/// What the framer found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// The stream header.
    Header(Header),
    /// One stanza or other top-level element.
    Stanza(Element),
    /// `</stream:stream>`.
    Close,
}

/// A fault that ends the stream, named by its RFC 6120 §4.9.3 condition.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StreamError {
    /// A DTD, comment or processing instruction.
    #[error("restricted-xml: {0}")]
    RestrictedXml(&'static str),
    /// Not well-formed XML.
    #[error("not-well-formed: {0}")]
    NotWellFormed(String),
    /// A stanza larger than the limit.
    #[error("policy-violation: stanza larger than {0} bytes")]
    TooLarge(usize),
    /// The header's namespace is not the one this stream speaks.
    #[error("invalid-namespace: {0}")]
    InvalidNamespace(String),
}

impl StreamError {
    /// The stream error condition element name.
    pub fn condition(&self) -> &'static str {
        match self {
            StreamError::RestrictedXml(_) => "restricted-xml",
            StreamError::NotWellFormed(_) => "not-well-formed",
            StreamError::TooLarge(_) => "policy-violation",
            StreamError::InvalidNamespace(_) => "invalid-namespace",
        }
    }
}

/// Cuts a byte stream into frames.
#[derive(Debug)]
pub struct Framer {
    buf: Vec<u8>,
    /// Bytes of `buf` already scanned.
    scanned: usize,
    /// Where the top-level element being scanned starts.
    start: usize,
    /// 0 before the header, 1 between stanzas, more inside one.
    depth: usize,
    header: Option<Header>,
    max_stanza: usize,
    limits: Limits,
}

impl Framer {
    /// A framer for stanzas of at most `max_stanza` bytes.
    pub fn new(max_stanza: usize) -> Framer {
        Framer {
            buf: Vec::with_capacity(4096),
            scanned: 0,
            start: 0,
            depth: 0,
            header: None,
            max_stanza,
            limits: Limits {
                max_bytes: max_stanza + 4096,
                max_depth: 32,
                max_elements: 4096,
                max_attributes: 32,
            },
        }
    }

    /// Appends bytes read from the network.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Whether bytes are buffered that have not made a frame yet (must be
    /// none when TLS starts: RFC 6120 §5.4.3.3).
    pub fn has_pending(&self) -> bool {
        self.buf[self.start..]
            .iter()
            .any(|b| !b.is_ascii_whitespace())
    }

    /// The next whole frame, `None` when more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, StreamError> {
        loop {
            if self.depth >= 2 && self.scanned - self.start > self.max_stanza {
                return Err(StreamError::TooLarge(self.max_stanza));
            }
            let Some(lt) = memchr(b'<', &self.buf[self.scanned..]) else {
                self.check_text(self.buf.len())?;
                self.scanned = self.buf.len();
                self.compact();
                return Ok(None);
            };
            let at = self.scanned + lt;
            self.check_text(at)?;
            let rest = &self.buf[at..];
            if rest.len() < 2 {
                self.scanned = at;
                return Ok(None);
            }
            match rest[1] {
                b'?' => {
                    if rest.len() < 5 {
                        return self.wait(at);
                    }
                    if self.depth > 0 || !starts(rest, b"<?xml") {
                        return Err(StreamError::RestrictedXml("processing instruction"));
                    }
                    let Some(end) = find(rest, b"?>") else {
                        return self.wait(at);
                    };
                    self.scanned = at + end + 2;
                    self.start = self.scanned;
                }
                b'!' => {
                    if rest.len() < 9 {
                        return self.wait(at);
                    }
                    if starts(rest, b"<!--") {
                        return Err(StreamError::RestrictedXml("comment"));
                    }
                    if !starts(rest, b"<![CDATA[") {
                        return Err(StreamError::RestrictedXml("DTD"));
                    }
                    if self.depth < 2 {
                        return Err(StreamError::NotWellFormed("CDATA outside a stanza".into()));
                    }
                    let Some(end) = find(rest, b"]]>") else {
                        return self.wait(at);
                    };
                    self.scanned = at + end + 3;
                }
                b'/' => {
                    let Some(end) = tag_end(rest) else {
                        return self.wait(at);
                    };
                    let end = at + end + 1;
                    self.scanned = end;
                    match self.depth {
                        0 => {
                            return Err(StreamError::NotWellFormed(
                                "end tag before the header".into(),
                            ))
                        }
                        1 => {
                            self.depth = 0;
                            self.consume(end);
                            return Ok(Some(Frame::Close));
                        }
                        2 => {
                            self.depth = 1;
                            let frame = self.stanza(self.start, end)?;
                            self.consume(end);
                            return Ok(Some(frame));
                        }
                        _ => self.depth -= 1,
                    }
                }
                _ => {
                    let Some(end) = tag_end(rest) else {
                        return self.wait(at);
                    };
                    let empty = rest[end - 1] == b'/';
                    let tag_end = at + end + 1;
                    self.scanned = tag_end;
                    match (self.depth, empty) {
                        (0, _) => {
                            let header = self.header(at, tag_end)?;
                            self.depth = 1;
                            self.consume(tag_end);
                            return Ok(Some(Frame::Header(header)));
                        }
                        (1, true) => {
                            let frame = self.stanza(at, tag_end)?;
                            self.consume(tag_end);
                            return Ok(Some(frame));
                        }
                        (1, false) => {
                            self.start = at;
                            self.depth = 2;
                        }
                        (_, true) => {}
                        (_, false) => self.depth += 1,
                    }
                }
            }
        }
    }

    /// The header last read.
    pub fn stream_header(&self) -> Option<&Header> {
        self.header.as_ref()
    }

    /// Starts over for a restarted stream (after STARTTLS or SASL).
    pub fn restart(&mut self) {
        self.buf.clear();
        self.scanned = 0;
        self.start = 0;
        self.depth = 0;
        self.header = None;
    }

    fn wait(&mut self, at: usize) -> Result<Option<Frame>, StreamError> {
        // Only the element's start is kept in view; scanning resumes at
        // the unfinished markup.
        self.scanned = at;
        if self.depth < 2 {
            self.start = at;
        }
        if self.buf.len() - self.start > self.max_stanza + 1024 {
            return Err(StreamError::TooLarge(self.max_stanza));
        }
        Ok(None)
    }

    /// Text between stanzas may only be white space (keep-alives).
    fn check_text(&self, upto: usize) -> Result<(), StreamError> {
        if self.depth < 2
            && self.buf[self.scanned..upto]
                .iter()
                .any(|b| !b.is_ascii_whitespace())
        {
            return Err(StreamError::NotWellFormed("text outside a stanza".into()));
        }
        Ok(())
    }

    fn consume(&mut self, upto: usize) {
        self.buf.drain(..upto);
        self.scanned = 0;
        self.start = 0;
    }

    fn compact(&mut self) {
        if self.depth < 2 && self.start == 0 && self.scanned == self.buf.len() {
            self.buf.clear();
            self.scanned = 0;
        }
    }

    fn header(&mut self, from: usize, to: usize) -> Result<Header, StreamError> {
        let tag = std::str::from_utf8(&self.buf[from..to])
            .map_err(|_| StreamError::NotWellFormed("header is not UTF-8".into()))?;
        let name_end = tag[1..]
            .find(|c: char| c.is_ascii_whitespace() || c == '>' || c == '/')
            .map_or(tag.len(), |i| i + 1);
        let qname = &tag[1..name_end];
        let closed = format!("{tag}</{qname}>");
        let el = xml::parse(closed.as_bytes(), &self.limits)
            .map_err(|e| StreamError::NotWellFormed(e.to_string()))?;
        if !el.is(NS_STREAMS, "stream") {
            return Err(StreamError::InvalidNamespace(format!(
                "{{{}}}{}",
                el.ns, el.name
            )));
        }
        let mut header = Header {
            from: el.attr("from").map(str::to_string),
            to: el.attr("to").map(str::to_string),
            id: el.attr("id").map(str::to_string),
            version: el.attr("version").map(str::to_string),
            ..Header::default()
        };
        // Namespace declarations are not attributes of the tree: read them
        // from the tag itself.
        for (name, value) in declarations(&closed) {
            if name == "xmlns" {
                header.ns = value.clone();
            }
            if value == "jabber:server:dialback" {
                header.dialback = true;
            }
            header.declarations.push_str(&format!(
                " {name}=\"{}\"",
                value
                    .replace('&', "&amp;")
                    .replace('"', "&quot;")
                    .replace('<', "&lt;")
            ));
        }
        self.header = Some(header.clone());
        Ok(header)
    }

    fn stanza(&self, from: usize, to: usize) -> Result<Frame, StreamError> {
        let decls = self.header.as_ref().map_or("", |h| h.declarations.as_str());
        let mut wrapped = Vec::with_capacity(to - from + decls.len() + 16);
        wrapped.extend_from_slice(b"<w");
        wrapped.extend_from_slice(decls.as_bytes());
        wrapped.push(b'>');
        wrapped.extend_from_slice(&self.buf[from..to]);
        wrapped.extend_from_slice(b"</w>");
        let mut root = xml::parse(&wrapped, &self.limits).map_err(|e| match e {
            xml::XmlError::Dtd => StreamError::RestrictedXml("DTD"),
            xml::XmlError::ProcessingInstruction => {
                StreamError::RestrictedXml("processing instruction")
            }
            other => StreamError::NotWellFormed(other.to_string()),
        })?;
        let el = match root.children.pop() {
            Some(xml::Node::Element(el)) => el,
            _ => return Err(StreamError::NotWellFormed("empty stanza".into())),
        };
        Ok(Frame::Stanza(el))
    }
}

/// The namespace declarations of a start tag, as (`xmlns[:p]`, value).
fn declarations(tag: &str) -> Vec<(String, String)> {
    let mut reader = quick_xml::Reader::from_str(tag);
    let Ok(quick_xml::events::Event::Start(start)) = reader.read_event() else {
        return Vec::new();
    };
    start
        .attributes()
        .filter_map(Result::ok)
        .filter_map(|a| {
            let key = std::str::from_utf8(a.key.as_ref()).ok()?.to_string();
            let is_decl = key == "xmlns" || key.starts_with("xmlns:");
            let value = a.unescape_value().ok()?.into_owned();
            is_decl.then_some((key, value))
        })
        .collect()
}

/// The index of the `>` closing the tag that starts `rest`, honouring quotes.
fn tag_end(rest: &[u8]) -> Option<usize> {
    let mut quote = None;
    for (i, &b) in rest.iter().enumerate().skip(1) {
        match (quote, b) {
            (None, b'"' | b'\'') => quote = Some(b),
            (Some(q), c) if c == q => quote = None,
            (None, b'>') => return Some(i),
            _ => {}
        }
    }
    None
}

fn memchr(needle: u8, hay: &[u8]) -> Option<usize> {
    hay.iter().position(|&b| b == needle)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn starts(hay: &[u8], prefix: &[u8]) -> bool {
    hay.len() >= prefix.len() && hay[..prefix.len()].eq_ignore_ascii_case(prefix)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:server' \
        xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' \
        from='xmpp.example.test' to='parley.example.test' version='1.0' id='abc'>";

    fn frames(input: &[u8], chunk: usize) -> Result<Vec<Frame>, StreamError> {
        let mut f = Framer::new(1024);
        let mut out = Vec::new();
        for piece in input.chunks(chunk) {
            f.feed(piece);
            while let Some(frame) = f.next_frame()? {
                out.push(frame);
            }
        }
        Ok(out)
    }

    #[test]
    fn cuts_a_stream_into_frames_whatever_the_reads() {
        let input = format!(
            "{HEADER} <db:result from='xmpp.example.test' to='parley.example.test'>k3y</db:result>\n\
             <message from='a@xmpp.example.test' to='b@parley.example.test' type='chat'>\
             <body>1 &lt; 2 &amp; &quot;q&quot; <![CDATA[<raw>]]></body>\
             <active xmlns='http://jabber.org/protocol/chatstates'/></message> \
             <presence/></stream:stream>"
        );
        for chunk in [1, 2, 3, 7, 64, 4096] {
            let got = frames(input.as_bytes(), chunk).unwrap();
            assert_eq!(got.len(), 5, "chunk {chunk}");
            let Frame::Header(h) = &got[0] else { panic!() };
            assert_eq!(h.ns, "jabber:server");
            assert!(h.dialback);
            assert_eq!(h.id.as_deref(), Some("abc"));
            assert_eq!(h.from.as_deref(), Some("xmpp.example.test"));
            let Frame::Stanza(db) = &got[1] else { panic!() };
            assert!(db.is("jabber:server:dialback", "result"));
            assert_eq!(db.text(), "k3y");
            let Frame::Stanza(m) = &got[2] else { panic!() };
            assert!(m.is("jabber:server", "message"));
            assert_eq!(
                m.child("jabber:server", "body").unwrap().text(),
                "1 < 2 & \"q\" <raw>"
            );
            assert!(m
                .child("http://jabber.org/protocol/chatstates", "active")
                .is_some());
            let Frame::Stanza(p) = &got[3] else { panic!() };
            assert!(p.is("jabber:server", "presence"));
            assert_eq!(got[4], Frame::Close);
        }
    }

    #[test]
    fn refuses_restricted_xml() {
        for (bad, condition) in [
            ("<!-- hi --><presence/>", "restricted-xml"),
            ("<presence><!-- hi --></presence>", "restricted-xml"),
            ("<?evil x?><presence/>", "restricted-xml"),
            (
                "<!DOCTYPE x [<!ENTITY a 'b'>]><presence/>",
                "restricted-xml",
            ),
            ("<message><body>&xxe;</body></message>", "not-well-formed"),
            ("hello<presence/>", "not-well-formed"),
            ("<message><body></message></x>", "not-well-formed"),
        ] {
            let input = format!("{HEADER}{bad}");
            let err = frames(input.as_bytes(), 5).expect_err(bad);
            assert_eq!(err.condition(), condition, "{bad}");
        }
        let before_header = frames(b"<!DOCTYPE stream><stream:stream/>", 100).unwrap_err();
        assert_eq!(before_header.condition(), "restricted-xml");
        let wrong = frames(b"<stream xmlns='jabber:server'>", 100).unwrap_err();
        assert_eq!(wrong.condition(), "invalid-namespace");
    }

    #[test]
    fn bounds_stanza_size_and_depth_without_buffering_everything() {
        let big = format!(
            "{HEADER}<message><body>{}</body></message>",
            "x".repeat(5000)
        );
        assert_eq!(
            frames(big.as_bytes(), 100).unwrap_err().condition(),
            "policy-violation"
        );
        let open_tag = format!("{HEADER}<message a='{}", "x".repeat(5000));
        assert_eq!(
            frames(open_tag.as_bytes(), 100).unwrap_err().condition(),
            "policy-violation"
        );
        let deep = format!("{HEADER}{}", "<a>".repeat(100));
        assert!(
            frames(deep.as_bytes(), 100).is_ok(),
            "waits: not a stanza yet"
        );
        let deep = format!("{HEADER}{}{}", "<a>".repeat(100), "</a>".repeat(100));
        assert_eq!(
            frames(deep.as_bytes(), 100).unwrap_err().condition(),
            "not-well-formed"
        );
    }

    #[test]
    fn restarts_after_starttls() {
        let mut f = Framer::new(1024);
        f.feed(format!("{HEADER}<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>").as_bytes());
        assert!(matches!(f.next_frame(), Ok(Some(Frame::Header(_)))));
        assert!(matches!(f.next_frame(), Ok(Some(Frame::Stanza(_)))));
        assert!(!f.has_pending());
        f.restart();
        f.feed(HEADER.as_bytes());
        assert!(matches!(f.next_frame(), Ok(Some(Frame::Header(_)))));
    }
}
