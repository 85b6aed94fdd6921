//! Bounded XML for the small documents SIMPLE carries (PIDF, watcher
//! info, IMDN, isComposing) and for XMPP stanzas: a namespace-aware reader
//! on quick-xml's `NsReader` that builds a tree, a writer that prints a tree
//! back in one canonical form, and a fragment writer for stanzas inside a
//! stream whose default namespace is already declared.
//!
//! The reader refuses what these documents never need and attackers use:
//! any DTD (and with it every entity declaration, internal or external),
//! processing instructions, references to entities other than the five
//! predefined ones, and encodings other than UTF-8. Size, depth, element
//! count, attribute count and text length are bounded, and the input is
//! read once, front to back, so time and memory stay proportional to the
//! limits whatever the input.

use quick_xml::events::{BytesStart, Event};
use quick_xml::name::ResolveResult;
use quick_xml::NsReader;

/// The `xml:` namespace (always bound, never declared).
pub const NS_XML: &str = "http://www.w3.org/XML/1998/namespace";

/// Bounds on one document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest document, in bytes.
    pub max_bytes: usize,
    /// Deepest element nesting (the root is depth 1).
    pub max_depth: usize,
    /// Most elements in the document.
    pub max_elements: usize,
    /// Most attributes on one element (namespace declarations included).
    pub max_attributes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: 64 * 1024,
            max_depth: 24,
            max_elements: 4096,
            max_attributes: 32,
        }
    }
}

/// Why a document was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum XmlError {
    /// Larger than [`Limits::max_bytes`].
    #[error("document larger than {0} bytes")]
    TooLarge(usize),
    /// Nested deeper than [`Limits::max_depth`].
    #[error("elements nested deeper than {0}")]
    TooDeep(usize),
    /// More elements than [`Limits::max_elements`].
    #[error("more than {0} elements")]
    TooManyElements(usize),
    /// More attributes on one element than [`Limits::max_attributes`].
    #[error("more than {0} attributes on <{1}>")]
    TooManyAttributes(usize, String),
    /// A document type declaration (and with it any entity declaration).
    #[error("DTD refused")]
    Dtd,
    /// A processing instruction other than the XML declaration.
    #[error("processing instruction refused")]
    ProcessingInstruction,
    /// A reference to an entity that is not one of the predefined five.
    #[error("entity reference refused: {0}")]
    Entity(String),
    /// An encoding other than UTF-8, or bytes that are not UTF-8.
    #[error("not UTF-8: {0}")]
    Encoding(String),
    /// A prefix with no namespace declaration in scope.
    #[error("unbound namespace prefix in <{0}>")]
    UnboundPrefix(String),
    /// No root element.
    #[error("no root element")]
    Empty,
    /// Content after the root element.
    #[error("content after the root element")]
    TrailingContent,
    /// Any other fault, with the parser's words and the byte offset.
    #[error("malformed XML at byte {at}: {reason}")]
    Malformed {
        /// Where the fault was found.
        at: u64,
        /// What the parser said.
        reason: String,
    },
}

/// An element with its expanded name.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Element {
    /// Namespace name (empty for none).
    pub ns: String,
    /// Local name.
    pub name: String,
    /// Attributes in document order (namespace declarations are not kept:
    /// the writer declares what it needs).
    pub attrs: Vec<Attr>,
    /// Child elements and text, in document order. Text made only of
    /// white space between elements is dropped.
    pub children: Vec<Node>,
}

/// One attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attr {
    /// Namespace name (empty for an unprefixed attribute).
    pub ns: String,
    /// Local name.
    pub name: String,
    /// The value, unescaped.
    pub value: String,
}

/// A child of an element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// An element.
    Element(Element),
    /// Character data (CDATA sections included), unescaped.
    Text(String),
}

impl Element {
    /// A new element with no attributes or children.
    pub fn new(ns: &str, name: &str) -> Element {
        Element {
            ns: ns.to_string(),
            name: name.to_string(),
            ..Element::default()
        }
    }

    /// True when this is `{ns}name`.
    pub fn is(&self, ns: &str, name: &str) -> bool {
        self.ns == ns && self.name == name
    }

    /// The value of an unprefixed attribute.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attr_ns("", name)
    }

    /// The value of an attribute in a namespace.
    pub fn attr_ns(&self, ns: &str, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|a| a.ns == ns && a.name == name)
            .map(|a| a.value.as_str())
    }

    /// Sets an attribute (builder style).
    pub fn with_attr(mut self, ns: &str, name: &str, value: &str) -> Element {
        self.attrs.push(Attr {
            ns: ns.to_string(),
            name: name.to_string(),
            value: value.to_string(),
        });
        self
    }

    /// Adds a child element (builder style).
    pub fn with_child(mut self, child: Element) -> Element {
        self.children.push(Node::Element(child));
        self
    }

    /// Adds text (builder style).
    pub fn with_text(mut self, text: &str) -> Element {
        self.children.push(Node::Text(text.to_string()));
        self
    }

    /// The child elements.
    pub fn elements(&self) -> impl Iterator<Item = &Element> {
        self.children.iter().filter_map(|n| match n {
            Node::Element(e) => Some(e),
            Node::Text(_) => None,
        })
    }

    /// The first child element `{ns}name`.
    pub fn child(&self, ns: &str, name: &str) -> Option<&Element> {
        self.elements().find(|e| e.is(ns, name))
    }

    /// The text directly inside this element, concatenated.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for n in &self.children {
            if let Node::Text(t) = n {
                out.push_str(t);
            }
        }
        out
    }
}

/// Reads one document into a tree.
pub fn parse(input: &[u8], limits: &Limits) -> Result<Element, XmlError> {
    if input.len() > limits.max_bytes {
        return Err(XmlError::TooLarge(limits.max_bytes));
    }
    let text = std::str::from_utf8(input).map_err(|e| XmlError::Encoding(e.to_string()))?;
    // XML 1.0 §2.2: no NUL, no other C0 control but tab, CR and LF, no
    // U+FFFE or U+FFFF, anywhere in a document.
    if let Some(at) = text.find(|c: char| !is_xml_char(c)) {
        return Err(XmlError::Malformed {
            at: at as u64,
            reason: "a character XML does not allow".into(),
        });
    }
    let mut reader = NsReader::from_str(text);
    let config = reader.config_mut();
    config.check_end_names = true;
    config.expand_empty_elements = false;
    config.trim_text(false);

    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    let mut elements = 0usize;
    loop {
        let at = reader.buffer_position();
        let event = reader
            .read_resolved_event()
            .map_err(|e| XmlError::Malformed {
                at,
                reason: e.to_string(),
            })?;
        match event {
            (ns, Event::Start(start)) => {
                check_open(root.is_some(), &mut elements, stack.len(), limits)?;
                let ns = namespace(ns, &start)?;
                stack.push(element(&reader, ns, &start, limits)?);
            }
            (ns, Event::Empty(start)) => {
                check_open(root.is_some(), &mut elements, stack.len(), limits)?;
                let ns = namespace(ns, &start)?;
                let el = element(&reader, ns, &start, limits)?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(Node::Element(el)),
                    None => root = Some(el),
                }
            }
            (_, Event::End(_)) => {
                let Some(mut el) = stack.pop() else {
                    return Err(XmlError::Malformed {
                        at: reader.buffer_position(),
                        reason: "end tag without a start tag".into(),
                    });
                };
                drop_layout_space(&mut el);
                match stack.last_mut() {
                    Some(parent) => parent.children.push(Node::Element(el)),
                    None => root = Some(el),
                }
            }
            (_, Event::Text(t)) => {
                let raw = t.into_inner();
                let Some(parent) = stack.last_mut() else {
                    if raw.iter().all(|c| c.is_ascii_whitespace()) {
                        continue;
                    }
                    return Err(if root.is_some() {
                        XmlError::TrailingContent
                    } else {
                        XmlError::Malformed {
                            at: reader.buffer_position(),
                            reason: "text outside the root element".into(),
                        }
                    });
                };
                let raw =
                    std::str::from_utf8(&raw).map_err(|e| XmlError::Encoding(e.to_string()))?;
                push_text(parent, &unescape(raw)?);
            }
            (_, Event::CData(c)) => {
                let Some(parent) = stack.last_mut() else {
                    return Err(XmlError::TrailingContent);
                };
                let raw = c.into_inner();
                let raw =
                    std::str::from_utf8(&raw).map_err(|e| XmlError::Encoding(e.to_string()))?;
                push_text(parent, raw);
            }
            (_, Event::GeneralRef(r)) => {
                let Some(parent) = stack.last_mut() else {
                    return Err(XmlError::TrailingContent);
                };
                let name =
                    std::str::from_utf8(&r).map_err(|e| XmlError::Encoding(e.to_string()))?;
                let text = unescape(&format!("&{name};"))?;
                push_text(parent, &text);
            }
            (_, Event::Decl(decl)) => {
                if let Some(Ok(enc)) = decl.encoding() {
                    if !enc.eq_ignore_ascii_case(b"utf-8") {
                        return Err(XmlError::Encoding(format!(
                            "declared encoding {}",
                            String::from_utf8_lossy(&enc)
                        )));
                    }
                }
            }
            (_, Event::DocType(_)) => return Err(XmlError::Dtd),
            (_, Event::PI(_)) => return Err(XmlError::ProcessingInstruction),
            (_, Event::Comment(_)) => {}
            (_, Event::Eof) => break,
        }
    }
    if !stack.is_empty() {
        return Err(XmlError::Malformed {
            at: reader.buffer_position(),
            reason: "document ends inside an element".into(),
        });
    }
    root.ok_or(XmlError::Empty)
}

/// Bounds checked before an element is opened.
fn check_open(
    after_root: bool,
    elements: &mut usize,
    depth: usize,
    limits: &Limits,
) -> Result<(), XmlError> {
    if after_root {
        return Err(XmlError::TrailingContent);
    }
    *elements += 1;
    if *elements > limits.max_elements {
        return Err(XmlError::TooManyElements(limits.max_elements));
    }
    if depth + 1 > limits.max_depth {
        return Err(XmlError::TooDeep(limits.max_depth));
    }
    Ok(())
}

fn utf8(bytes: &[u8]) -> Result<&str, XmlError> {
    std::str::from_utf8(bytes).map_err(|e| XmlError::Encoding(e.to_string()))
}

/// The namespace of an element, owned.
fn namespace(ns: ResolveResult<'_>, start: &BytesStart<'_>) -> Result<String, XmlError> {
    match ns {
        // The name is the attribute value as written: references in it
        // stand for their characters, as in any attribute value.
        ResolveResult::Bound(n) => unescape(utf8(n.as_ref())?),
        ResolveResult::Unbound => Ok(String::new()),
        ResolveResult::Unknown(_) => Err(XmlError::UnboundPrefix(
            String::from_utf8_lossy(start.name().as_ref()).into_owned(),
        )),
    }
}

/// A name as XML 1.0 §2.3 allows it (with namespaces: at most one colon,
/// not at either end): a name character first that is not a digit, `-`
/// or `.`, then name characters. quick-xml takes any bytes up to the
/// next space or `>`; a name with `<` or `&` in it would not print back.
fn check_name(name: &str, reader: &NsReader<&[u8]>) -> Result<(), XmlError> {
    let name_char = |c: char| {
        c.is_alphanumeric()
            || matches!(c, '_' | '-' | '.' | '\u{B7}')
            || (!c.is_ascii() && !c.is_whitespace() && !c.is_control())
    };
    let ok = name.split(':').count() <= 2
        && name.split(':').all(|part| {
            part.chars()
                .next()
                .is_some_and(|c| name_char(c) && !c.is_ascii_digit() && c != '-' && c != '.')
                && part.chars().all(name_char)
        });
    if ok {
        Ok(())
    } else {
        Err(XmlError::Malformed {
            at: reader.buffer_position(),
            reason: format!("{name:?} is not an XML name"),
        })
    }
}

/// An element from its start tag: expanded name and attributes, resolved
/// in the reader's namespace scope.
fn element(
    reader: &NsReader<&[u8]>,
    ns: String,
    start: &BytesStart<'_>,
    limits: &Limits,
) -> Result<Element, XmlError> {
    let qname = utf8(start.name().as_ref())?.to_string();
    check_name(&qname, reader)?;
    let mut el = Element {
        ns,
        name: utf8(start.local_name().as_ref())?.to_string(),
        attrs: Vec::new(),
        children: Vec::new(),
    };
    for (count, attr) in start.attributes().with_checks(true).enumerate() {
        if count >= limits.max_attributes {
            return Err(XmlError::TooManyAttributes(limits.max_attributes, qname));
        }
        let attr = attr.map_err(|e| XmlError::Malformed {
            at: reader.buffer_position(),
            reason: e.to_string(),
        })?;
        let key = attr.key.as_ref();
        check_name(utf8(key)?, reader)?;
        if key == b"xmlns" || key.starts_with(b"xmlns:") {
            continue;
        }
        let (ns, local) = reader.resolve_attribute(attr.key);
        let ns = match ns {
            ResolveResult::Bound(n) => unescape(utf8(n.as_ref())?)?,
            ResolveResult::Unbound => String::new(),
            ResolveResult::Unknown(_) => return Err(XmlError::UnboundPrefix(qname)),
        };
        el.attrs.push(Attr {
            ns,
            name: utf8(local.as_ref())?.to_string(),
            value: unescape(utf8(&attr.value)?)?,
        });
    }
    Ok(el)
}

/// In an element with child elements, text made only of white space is
/// layout, not content: it goes.
fn drop_layout_space(el: &mut Element) {
    if el.children.iter().any(|n| matches!(n, Node::Element(_))) {
        el.children.retain(|n| match n {
            Node::Text(t) => !t.chars().all(|c| c.is_ascii_whitespace()),
            Node::Element(_) => true,
        });
    }
}

fn push_text(parent: &mut Element, text: &str) {
    if let Some(Node::Text(last)) = parent.children.last_mut() {
        last.push_str(text);
    } else {
        parent.children.push(Node::Text(text.to_string()));
    }
}

/// Replaces the predefined entities and character references; any other
/// reference is refused.
fn unescape(raw: &str) -> Result<String, XmlError> {
    if !raw.contains('&') {
        return Ok(raw.to_string());
    }
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let end = after
            .find(';')
            .filter(|&e| e <= 12)
            .ok_or_else(|| XmlError::Entity(after.chars().take(12).collect()))?;
        let name = &after[..end];
        let c = match name {
            "lt" => '<',
            "gt" => '>',
            "amp" => '&',
            "apos" => '\'',
            "quot" => '"',
            _ => {
                let code = if let Some(hex) = name.strip_prefix("#x") {
                    u32::from_str_radix(hex, 16).ok()
                } else if let Some(dec) = name.strip_prefix('#') {
                    dec.parse::<u32>().ok()
                } else {
                    None
                };
                code.and_then(char::from_u32)
                    .filter(|&c| is_xml_char(c))
                    .ok_or_else(|| XmlError::Entity(name.to_string()))?
            }
        };
        out.push(c);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The characters XML 1.0 allows (§2.2).
fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// Prints a tree as a document: an XML declaration, the root's namespace
/// as the default one, every other namespace declared once on the root
/// with the prefix `prefixes` gives it (or `nsN`), text and attribute
/// values escaped, no insignificant white space.
pub fn write(root: &Element, prefixes: &[(&str, &str)]) -> String {
    let mut names: Vec<(String, String)> = Vec::new();
    collect_namespaces(root, &root.ns, prefixes, &mut names);
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    write_element(root, &root.ns, &names, true, &mut out);
    out.push('\n');
    out
}

fn collect_namespaces(
    el: &Element,
    default: &str,
    prefixes: &[(&str, &str)],
    names: &mut Vec<(String, String)>,
) {
    let mut add = |ns: &str| {
        if ns.is_empty() || ns == default || ns == NS_XML || names.iter().any(|(n, _)| n == ns) {
            return;
        }
        let prefix = prefixes
            .iter()
            .find(|(n, _)| *n == ns)
            .map(|(_, p)| p.to_string())
            .unwrap_or_else(|| format!("ns{}", names.len() + 1));
        names.push((ns.to_string(), prefix));
    };
    add(&el.ns);
    for a in &el.attrs {
        add(&a.ns);
    }
    for child in el.elements() {
        collect_namespaces(child, default, prefixes, names);
    }
}

fn qualified(
    ns: &str,
    name: &str,
    default: &str,
    names: &[(String, String)],
    attribute: bool,
) -> String {
    if ns.is_empty() || (!attribute && ns == default) {
        return name.to_string();
    }
    if ns == NS_XML {
        return format!("xml:{name}");
    }
    match names.iter().find(|(n, _)| n == ns) {
        Some((_, p)) => format!("{p}:{name}"),
        None => name.to_string(),
    }
}

fn write_element(
    el: &Element,
    default: &str,
    names: &[(String, String)],
    root: bool,
    out: &mut String,
) {
    let tag = qualified(&el.ns, &el.name, default, names, false);
    out.push('<');
    out.push_str(&tag);
    if root {
        if !default.is_empty() {
            out.push_str(" xmlns=\"");
            escape_into(default, true, out);
            out.push('"');
        }
        for (ns, prefix) in names {
            out.push_str(" xmlns:");
            out.push_str(prefix);
            out.push_str("=\"");
            escape_into(ns, true, out);
            out.push('"');
        }
    }
    for a in &el.attrs {
        out.push(' ');
        out.push_str(&qualified(&a.ns, &a.name, default, names, true));
        out.push_str("=\"");
        escape_into(&a.value, true, out);
        out.push('"');
    }
    if el.children.is_empty() {
        out.push_str("/>");
        return;
    }
    out.push('>');
    for child in &el.children {
        match child {
            Node::Element(e) => write_element(e, default, names, false, out),
            Node::Text(t) => escape_into(t, false, out),
        }
    }
    out.push_str("</");
    out.push_str(&tag);
    out.push('>');
}

/// Prints one element as a fragment inside a parent whose default
/// namespace is `in_scope` (an XMPP stanza inside its stream): no XML
/// declaration, and `xmlns` written only where an element's namespace
/// differs from its parent's, the way XMPP software writes extensions.
pub fn write_fragment(el: &Element, in_scope: &str, out: &mut String) {
    write_fragment_with(el, in_scope, &[], out)
}

/// As [`write_fragment`], with namespaces the enclosing stream already
/// bound to prefixes (`("jabber:server:dialback", "db")`): elements of
/// those namespaces are written with the prefix and no declaration, as
/// software that matches prefixed names (`db:result`) expects.
pub fn write_fragment_with(
    el: &Element,
    in_scope: &str,
    prefixes: &[(&str, &str)],
    out: &mut String,
) {
    let prefix = prefixes
        .iter()
        .find(|(ns, _)| *ns == el.ns)
        .map(|(_, p)| *p);
    out.push('<');
    if let Some(p) = prefix {
        out.push_str(p);
        out.push(':');
    }
    out.push_str(&el.name);
    if prefix.is_none() && el.ns != in_scope {
        out.push_str(" xmlns=\"");
        escape_into(&el.ns, true, out);
        out.push('"');
    }
    let mut declared = 0;
    for a in &el.attrs {
        out.push(' ');
        if a.ns == NS_XML {
            out.push_str("xml:");
        } else if !a.ns.is_empty() {
            declared += 1;
            out.push_str(&format!("xmlns:a{declared}=\""));
            escape_into(&a.ns, true, out);
            out.push_str(&format!("\" a{declared}:"));
        }
        out.push_str(&a.name);
        out.push_str("=\"");
        escape_into(&a.value, true, out);
        out.push('"');
    }
    if el.children.is_empty() {
        out.push_str("/>");
        return;
    }
    out.push('>');
    // Unprefixed children inherit the default namespace in scope here.
    let scope = if prefix.is_some() {
        in_scope
    } else {
        el.ns.as_str()
    };
    for child in &el.children {
        match child {
            Node::Element(e) => write_fragment_with(e, scope, prefixes, out),
            Node::Text(t) => escape_into(t, false, out),
        }
    }
    out.push_str("</");
    if let Some(p) = prefix {
        out.push_str(p);
        out.push(':');
    }
    out.push_str(&el.name);
    out.push('>');
}

fn escape_into(text: &str, attribute: bool, out: &mut String) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' if attribute => out.push_str("&quot;"),
            '\n' if attribute => out.push_str("&#10;"),
            '\t' if attribute => out.push_str("&#9;"),
            '\r' => out.push_str("&#13;"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn characters_xml_forbids_are_refused_anywhere() {
        let limits = Limits::default();
        for doc in [
            "<a>\u{0}</a>",
            "<a x='\u{1}'/>",
            "<a xmlns='urn:x\u{0}y'/>",
            "<a>\u{FFFF}</a>",
        ] {
            assert!(parse(doc.as_bytes(), &limits).is_err(), "{doc:?}");
        }
        assert!(parse(b"<a>\t\r\n</a>", &limits).is_ok());
    }

    #[test]
    fn names_are_xml_names() {
        // Found by fuzzing: a `<` inside a name was taken as part of it.
        let limits = Limits::default();
        for doc in ["<a<b/>", "<a:b:c/>", "<1a/>", "<a b<c='1'/>", "<a -x='1'/>"] {
            assert!(parse(doc.as_bytes(), &limits).is_err(), "{doc}");
        }
        assert!(parse(
            "<p:a xmlns:p='urn:x' p:b='1' c.d-e_f='2'>é</p:a>".as_bytes(),
            &limits
        )
        .is_ok());
        assert!(parse("<ÆØÅ/>".as_bytes(), &limits).is_ok());
    }

    #[test]
    fn a_namespace_name_is_read_like_any_attribute_value() {
        // Found by fuzzing: a reference in a namespace name was kept as
        // written, and printed back escaped once more.
        let limits = Limits::default();
        let el = parse(b"<a xmlns='urn:x:&amp;y'/>", &limits).unwrap();
        assert_eq!(el.ns, "urn:x:&y");
        let again = parse(write(&el, &[]).as_bytes(), &limits).unwrap();
        assert_eq!(again, el);
    }
}
