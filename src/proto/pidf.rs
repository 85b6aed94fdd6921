//! Presence documents: PIDF (RFC 3863) with the data model of RFC 4479
//! (person, device), RPID (RFC 4480) activities and CIPID (RFC 4482)
//! contact information; composition of several publications into one
//! document (RFC 4479 §3, RFC 3903 §4).
//!
//! The model types what Parley reads and maps (basic status, contact,
//! notes, timestamps, activities, display name, device ID) and keeps every
//! other element as an [`Element`], so extensions pass through unchanged.
//! Parsing goes through [`crate::proto::xml`], which refuses DTDs, entity
//! declarations and processing instructions and bounds size and depth;
//! this module adds the PIDF rules and a bound on tuples.

use crate::proto::xml::{self, Element, Node, NS_XML};

/// PIDF (RFC 3863).
pub const NS_PIDF: &str = "urn:ietf:params:xml:ns:pidf";
/// The presence data model (RFC 4479).
pub const NS_DM: &str = "urn:ietf:params:xml:ns:pidf:data-model";
/// Rich presence (RFC 4480).
pub const NS_RPID: &str = "urn:ietf:params:xml:ns:pidf:rpid";
/// Contact information (RFC 4482).
pub const NS_CIPID: &str = "urn:ietf:params:xml:ns:pidf:cipid";

/// The prefixes the printer gives the known namespaces.
const PREFIXES: &[(&str, &str)] = &[(NS_DM, "dm"), (NS_RPID, "rpid"), (NS_CIPID, "c")];

/// The media type of a PIDF body.
pub const CONTENT_TYPE: &str = "application/pidf+xml";

/// Bounds on one document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The XML bounds.
    pub xml: xml::Limits,
    /// Most tuples, persons and devices together.
    pub max_components: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            xml: xml::Limits::default(),
            max_components: 128,
        }
    }
}

/// Why a document is not valid PIDF.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PidfError {
    /// Not acceptable XML.
    #[error(transparent)]
    Xml(#[from] xml::XmlError),
    /// The root is not `<presence>` in the PIDF namespace.
    #[error("the root element is {0}, not {{{NS_PIDF}}}presence")]
    NotPidf(String),
    /// A required attribute or element is missing.
    #[error("{0} has no {1}")]
    Missing(&'static str, &'static str),
    /// A value outside its type.
    #[error("invalid {0}: {1:?}")]
    Invalid(&'static str, String),
    /// Two components with one id (the ids are of type xs:ID).
    #[error("id {0:?} is used twice")]
    DuplicateId(String),
    /// More tuples, persons and devices than allowed.
    #[error("more than {0} tuples, persons and devices")]
    TooManyComponents(usize),
}

/// The basic status of a tuple.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Basic {
    /// Able to receive.
    Open,
    /// Not able to receive.
    Closed,
}

impl Basic {
    /// The element text.
    pub fn as_str(self) -> &'static str {
        match self {
            Basic::Open => "open",
            Basic::Closed => "closed",
        }
    }
}

/// A note, with its language.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// `xml:lang`.
    pub lang: Option<String>,
    /// The text.
    pub text: String,
}

/// A contact address with its priority (a decimal from 0 to 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    /// The URI.
    pub uri: String,
    /// The priority as written.
    pub priority: Option<String>,
}

/// A service (RFC 3863 tuple).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tuple {
    /// The id.
    pub id: String,
    /// `<basic>` inside `<status>`.
    pub basic: Option<Basic>,
    /// Other elements inside `<status>`.
    pub status_extensions: Vec<Element>,
    /// `<contact>`.
    pub contact: Option<Contact>,
    /// `<note>`s.
    pub notes: Vec<Note>,
    /// `<timestamp>`.
    pub timestamp: Option<String>,
    /// Every other child (RFC 4479 deviceID, RPID, unknown extensions).
    pub extensions: Vec<Element>,
}

/// An RPID activity (RFC 4480 §3.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Activity {
    /// A token of the RPID schema, e.g. `away`, `busy`, `on-the-phone`.
    Known(String),
    /// `<other>` with its text.
    Other(String),
}

/// The person (RFC 4479 §3.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    /// The id.
    pub id: String,
    /// RPID activities, when an `<activities>` element is present.
    pub activities: Option<Vec<Activity>>,
    /// `<note>`s (in the data-model namespace).
    pub notes: Vec<Note>,
    /// `<timestamp>`.
    pub timestamp: Option<String>,
    /// Every other child (mood, place-type, CIPID, unknown extensions).
    pub extensions: Vec<Element>,
}

/// A device (RFC 4479 §3.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// The id.
    pub id: String,
    /// `<deviceID>`.
    pub device_id: Option<String>,
    /// `<note>`s.
    pub notes: Vec<Note>,
    /// `<timestamp>`.
    pub timestamp: Option<String>,
    /// Every other child.
    pub extensions: Vec<Element>,
}

/// A presence document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presence {
    /// The presentity URI (`entity`).
    pub entity: String,
    /// The tuples (services).
    pub tuples: Vec<Tuple>,
    /// The persons (at most one is meaningful; all are kept).
    pub persons: Vec<Person>,
    /// The devices.
    pub devices: Vec<Device>,
    /// Document-level notes.
    pub notes: Vec<Note>,
    /// Other top-level elements.
    pub extensions: Vec<Element>,
}

impl Presence {
    /// An empty document for `entity`.
    pub fn new(entity: &str) -> Presence {
        Presence {
            entity: entity.to_string(),
            tuples: Vec::new(),
            persons: Vec::new(),
            devices: Vec::new(),
            notes: Vec::new(),
            extensions: Vec::new(),
        }
    }

    /// Parses and checks one document.
    pub fn parse(input: &[u8], limits: &Limits) -> Result<Presence, PidfError> {
        let root = xml::parse(input, &limits.xml)?;
        Presence::from_element(&root, limits)
    }

    /// Reads the model from a tree.
    pub fn from_element(root: &Element, limits: &Limits) -> Result<Presence, PidfError> {
        if !root.is(NS_PIDF, "presence") {
            return Err(PidfError::NotPidf(format!("{{{}}}{}", root.ns, root.name)));
        }
        let entity = root
            .attr("entity")
            .ok_or(PidfError::Missing("presence", "entity"))?;
        check_uri("entity", entity)?;
        let mut p = Presence::new(entity);
        let mut ids: Vec<String> = Vec::new();
        let mut claim = |id: &str, what: &'static str| -> Result<String, PidfError> {
            if id.is_empty() || !id.chars().all(is_id_char) {
                return Err(PidfError::Invalid(what, id.to_string()));
            }
            if ids.iter().any(|i| i == id) {
                return Err(PidfError::DuplicateId(id.to_string()));
            }
            if ids.len() >= limits.max_components {
                return Err(PidfError::TooManyComponents(limits.max_components));
            }
            ids.push(id.to_string());
            Ok(id.to_string())
        };
        for child in root.elements() {
            if child.is(NS_PIDF, "tuple") {
                let id = child.attr("id").ok_or(PidfError::Missing("tuple", "id"))?;
                let id = claim(id, "tuple id")?;
                p.tuples.push(tuple(id, child)?);
            } else if child.is(NS_PIDF, "note") {
                p.notes.push(note(child));
            } else if child.is(NS_DM, "person") {
                let id = child.attr("id").ok_or(PidfError::Missing("person", "id"))?;
                let id = claim(id, "person id")?;
                p.persons.push(person(id, child)?);
            } else if child.is(NS_DM, "device") {
                let id = child.attr("id").ok_or(PidfError::Missing("device", "id"))?;
                let id = claim(id, "device id")?;
                p.devices.push(device(id, child)?);
            } else {
                p.extensions.push(extension(child)?);
            }
        }
        Ok(p)
    }

    /// The overall basic status: open when any tuple is open, closed when
    /// tuples exist and none is open, none without tuples.
    pub fn basic(&self) -> Option<Basic> {
        let mut any = None;
        for t in &self.tuples {
            match t.basic {
                Some(Basic::Open) => return Some(Basic::Open),
                Some(Basic::Closed) => any = Some(Basic::Closed),
                None => {}
            }
        }
        any
    }

    /// The first note: the person's, else a tuple's, else the document's.
    pub fn note(&self) -> Option<&str> {
        self.persons
            .iter()
            .flat_map(|p| p.notes.iter())
            .chain(self.tuples.iter().flat_map(|t| t.notes.iter()))
            .chain(self.notes.iter())
            .map(|n| n.text.as_str())
            .next()
    }

    /// The person's activities, when any are given.
    pub fn activities(&self) -> Option<&[Activity]> {
        self.persons.iter().find_map(|p| p.activities.as_deref())
    }

    /// The tree of this document.
    pub fn to_element(&self) -> Element {
        let mut root = Element::new(NS_PIDF, "presence").with_attr("", "entity", &self.entity);
        for t in &self.tuples {
            root = root.with_child(tuple_element(t));
        }
        for n in &self.notes {
            root = root.with_child(note_element(NS_PIDF, n));
        }
        for p in &self.persons {
            let mut el = Element::new(NS_DM, "person").with_attr("", "id", &p.id);
            if let Some(acts) = &p.activities {
                let mut a = Element::new(NS_RPID, "activities");
                for act in acts {
                    a = a.with_child(match act {
                        Activity::Known(name) => Element::new(NS_RPID, name),
                        Activity::Other(text) => Element::new(NS_RPID, "other").with_text(text),
                    });
                }
                el = el.with_child(a);
            }
            for x in &p.extensions {
                el = el.with_child(x.clone());
            }
            for n in &p.notes {
                el = el.with_child(note_element(NS_DM, n));
            }
            if let Some(ts) = &p.timestamp {
                el = el.with_child(Element::new(NS_DM, "timestamp").with_text(ts));
            }
            root = root.with_child(el);
        }
        for d in &self.devices {
            let mut el = Element::new(NS_DM, "device").with_attr("", "id", &d.id);
            for x in &d.extensions {
                el = el.with_child(x.clone());
            }
            if let Some(id) = &d.device_id {
                el = el.with_child(Element::new(NS_DM, "deviceID").with_text(id));
            }
            for n in &d.notes {
                el = el.with_child(note_element(NS_DM, n));
            }
            if let Some(ts) = &d.timestamp {
                el = el.with_child(Element::new(NS_DM, "timestamp").with_text(ts));
            }
            root = root.with_child(el);
        }
        for x in &self.extensions {
            root = root.with_child(x.clone());
        }
        root
    }

    /// The document in canonical form: PIDF as the default namespace,
    /// `dm:`, `rpid:` and `c:` for the data model, RPID and CIPID, `nsN:`
    /// for any other; tuples, notes, persons, devices, then extensions.
    pub fn to_xml(&self) -> String {
        xml::write(&self.to_element(), PREFIXES)
    }

    /// Composes publications, oldest first, into one document for
    /// `entity` (RFC 4479 §3 rules, as a presence agent applies them):
    /// tuples and devices are merged by id, a later one replacing an
    /// earlier one with the same id; the person comes from the newest
    /// publication that has one (so the newest note and activities win);
    /// document notes and extensions come from the newest publication
    /// that has any.
    pub fn compose<'a>(
        entity: &str,
        publications: impl IntoIterator<Item = &'a Presence>,
    ) -> Presence {
        let mut out = Presence::new(entity);
        for p in publications {
            for t in &p.tuples {
                match out.tuples.iter_mut().find(|x| x.id == t.id) {
                    Some(x) => *x = t.clone(),
                    None => out.tuples.push(t.clone()),
                }
            }
            for d in &p.devices {
                match out.devices.iter_mut().find(|x| x.id == d.id) {
                    Some(x) => *x = d.clone(),
                    None => out.devices.push(d.clone()),
                }
            }
            if !p.persons.is_empty() {
                out.persons = p.persons.clone();
            }
            if !p.notes.is_empty() {
                out.notes = p.notes.clone();
            }
            if !p.extensions.is_empty() {
                out.extensions = p.extensions.clone();
            }
        }
        out
    }

    /// A document that says "open" with a note: a user who publishes
    /// nothing but has a device that can be woken (RFC 8599) is reachable,
    /// not offline.
    pub fn open_with_note(entity: &str, note: &str) -> Presence {
        let mut p = Presence::closed(entity);
        if let Some(t) = p.tuples.first_mut() {
            t.basic = Some(Basic::Open);
            t.notes.push(Note {
                lang: None,
                text: note.to_string(),
            });
        }
        p
    }

    /// A document that says only "closed": what watchers get when every
    /// publication is gone, and what a pending or politely blocked
    /// watcher sees (RFC 3856 §6.6).
    pub fn closed(entity: &str) -> Presence {
        let mut p = Presence::new(entity);
        p.tuples.push(Tuple {
            id: "parley".into(),
            basic: Some(Basic::Closed),
            status_extensions: Vec::new(),
            contact: None,
            notes: Vec::new(),
            timestamp: None,
            extensions: Vec::new(),
        });
        p
    }
}

fn tuple(id: String, el: &Element) -> Result<Tuple, PidfError> {
    let status = el
        .child(NS_PIDF, "status")
        .ok_or(PidfError::Missing("tuple", "status"))?;
    let mut t = Tuple {
        id,
        basic: None,
        status_extensions: Vec::new(),
        contact: None,
        notes: Vec::new(),
        timestamp: None,
        extensions: Vec::new(),
    };
    for s in status.elements() {
        if s.is(NS_PIDF, "basic") {
            t.basic = Some(match s.text().trim() {
                "open" => Basic::Open,
                "closed" => Basic::Closed,
                other => return Err(PidfError::Invalid("basic", other.to_string())),
            });
        } else {
            t.status_extensions.push(extension(s)?);
        }
    }
    for child in el.elements() {
        if child.is(NS_PIDF, "status") {
            continue;
        } else if child.is(NS_PIDF, "contact") {
            let priority = child.attr("priority").map(str::to_string);
            if let Some(p) = &priority {
                check_priority(p)?;
            }
            let uri = child.text().trim().to_string();
            check_uri("contact", &uri)?;
            t.contact = Some(Contact { uri, priority });
        } else if child.is(NS_PIDF, "note") {
            t.notes.push(note(child));
        } else if child.is(NS_PIDF, "timestamp") {
            t.timestamp = Some(timestamp(child)?);
        } else {
            t.extensions.push(extension(child)?);
        }
    }
    Ok(t)
}

/// An extension element of `<presence>`, `<tuple>` or `<status>`: RFC 3863
/// §4.1's schema takes elements of *other* namespaces there
/// (`##other`), never one of PIDF's own or an unqualified one.
fn extension(el: &Element) -> Result<Element, PidfError> {
    if el.ns.is_empty() || el.ns == NS_PIDF {
        return Err(PidfError::Invalid(
            "extension element (not of another namespace)",
            el.name.clone(),
        ));
    }
    Ok(el.clone())
}

fn person(id: String, el: &Element) -> Result<Person, PidfError> {
    let mut p = Person {
        id,
        activities: None,
        notes: Vec::new(),
        timestamp: None,
        extensions: Vec::new(),
    };
    for child in el.elements() {
        if child.is(NS_RPID, "activities") && p.activities.is_none() {
            let mut acts = Vec::new();
            for a in child.elements() {
                if a.is(NS_RPID, "other") {
                    acts.push(Activity::Other(a.text()));
                } else if a.ns == NS_RPID && a.children.is_empty() && a.attrs.is_empty() {
                    acts.push(Activity::Known(a.name.clone()));
                } else {
                    // Anything richer keeps the whole element unchanged.
                    acts.clear();
                    break;
                }
            }
            if acts.is_empty() && child.elements().next().is_some() {
                p.extensions.push(child.clone());
            } else {
                p.activities = Some(acts);
            }
        } else if child.is(NS_DM, "note") {
            p.notes.push(note(child));
        } else if child.is(NS_DM, "timestamp") {
            p.timestamp = Some(timestamp(child)?);
        } else {
            p.extensions.push(child.clone());
        }
    }
    Ok(p)
}

fn device(id: String, el: &Element) -> Result<Device, PidfError> {
    let mut d = Device {
        id,
        device_id: None,
        notes: Vec::new(),
        timestamp: None,
        extensions: Vec::new(),
    };
    for child in el.elements() {
        if child.is(NS_DM, "deviceID") {
            d.device_id = Some(child.text().trim().to_string());
        } else if child.is(NS_DM, "note") {
            d.notes.push(note(child));
        } else if child.is(NS_DM, "timestamp") {
            d.timestamp = Some(timestamp(child)?);
        } else {
            d.extensions.push(child.clone());
        }
    }
    Ok(d)
}

fn note(el: &Element) -> Note {
    Note {
        lang: el.attr_ns(NS_XML, "lang").map(str::to_string),
        text: el.text(),
    }
}

fn note_element(ns: &str, n: &Note) -> Element {
    let mut el = Element::new(ns, "note");
    if let Some(lang) = &n.lang {
        el = el.with_attr(NS_XML, "lang", lang);
    }
    if !n.text.is_empty() {
        el.children.push(Node::Text(n.text.clone()));
    }
    el
}

fn tuple_element(t: &Tuple) -> Element {
    let mut status = Element::new(NS_PIDF, "status");
    if let Some(b) = t.basic {
        status = status.with_child(Element::new(NS_PIDF, "basic").with_text(b.as_str()));
    }
    for x in &t.status_extensions {
        status = status.with_child(x.clone());
    }
    let mut el = Element::new(NS_PIDF, "tuple")
        .with_attr("", "id", &t.id)
        .with_child(status);
    for x in &t.extensions {
        el = el.with_child(x.clone());
    }
    if let Some(c) = &t.contact {
        let mut ce = Element::new(NS_PIDF, "contact");
        if let Some(p) = &c.priority {
            ce = ce.with_attr("", "priority", p);
        }
        el = el.with_child(ce.with_text(&c.uri));
    }
    for n in &t.notes {
        el = el.with_child(note_element(NS_PIDF, n));
    }
    if let Some(ts) = &t.timestamp {
        el = el.with_child(Element::new(NS_PIDF, "timestamp").with_text(ts));
    }
    el
}

/// xs:ID is an NCName; this accepts its ASCII subset and any non-ASCII
/// letter, which is what real documents use.
fn is_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') || !c.is_ascii()
}

/// A URI: a scheme, a colon, and something after it, no white space.
fn check_uri(what: &'static str, uri: &str) -> Result<(), PidfError> {
    let ok = uri.split_once(':').is_some_and(|(scheme, rest)| {
        !scheme.is_empty()
            && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
            && !rest.is_empty()
    }) && !uri.chars().any(char::is_whitespace);
    if ok {
        Ok(())
    } else {
        Err(PidfError::Invalid(what, uri.to_string()))
    }
}

/// A contact priority: a decimal from 0 to 1 with at most three places.
fn check_priority(p: &str) -> Result<(), PidfError> {
    let ok = match p.split_once('.') {
        None => p == "0" || p == "1",
        Some((int, frac)) => {
            (int == "0" || int == "1" || int.is_empty())
                && frac.len() <= 3
                && frac.chars().all(|c| c.is_ascii_digit())
                && (int != "1" || frac.chars().all(|c| c == '0'))
        }
    };
    if ok {
        Ok(())
    } else {
        Err(PidfError::Invalid("priority", p.to_string()))
    }
}

/// An xs:dateTime: date, `T`, time, optional fraction and zone.
fn timestamp(el: &Element) -> Result<String, PidfError> {
    let t = el.text().trim().to_string();
    let b = t.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|s| s.iter().all(u8::is_ascii_digit));
    let ok = b.len() >= 19
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19)
        && b[19..]
            .iter()
            .all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'Z' | b'+' | b'-' | b':'));
    if ok {
        Ok(t)
    } else {
        Err(PidfError::Invalid("timestamp", t))
    }
}
