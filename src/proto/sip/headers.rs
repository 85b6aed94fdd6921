//! Header fields kept raw and in order, typed on demand (RFC 3261 §7.3).
//!
//! A parsed header points into the message buffer: its whole line (for
//! byte-exact forwarding) and its trimmed value. Only a folded value is
//! copied, once, with each fold replaced by one space. A header added or
//! changed by Parley owns its canonical line.

use bytes::Bytes;

use super::error::SipError;
use super::grammar::split_commas;
use super::name::HeaderName;

/// Where a piece of text lives: in the received buffer, or in the message's
/// own arena (a folded value made plain, a field Parley wrote). Plain
/// offsets keep a field `Copy` with nothing to drop.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Src {
    /// `start..end` of the received buffer.
    Span(u32, u32),
    /// `start..end` of the arena.
    Own(u32, u32),
}

impl Src {
    #[inline]
    pub(crate) fn get<'a>(self, buf: &'a [u8], own: &'a [u8]) -> &'a [u8] {
        match self {
            Src::Span(s, e) => buf.get(s as usize..e as usize).unwrap_or(b""),
            Src::Own(s, e) => own.get(s as usize..e as usize).unwrap_or(b""),
        }
    }
}

/// One header field.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Entry {
    pub(crate) name: HeaderName,
    /// Length of the name as written, at the start of `line`.
    pub(crate) name_len: u16,
    /// The whole field as received (or as Parley wrote it), without the final CRLF.
    pub(crate) line: Src,
    /// The value, trimmed, folds made plain.
    pub(crate) value: Src,
}

/// The header fields of one message, in order.
#[derive(Debug, Clone, Default)]
pub struct Headers {
    /// The received message.
    pub(crate) buf: Bytes,
    /// Text Parley made: plain copies of folded values, fields and lines it
    /// wrote. Replaced text stays until the message is dropped.
    pub(crate) own: Vec<u8>,
    pub(crate) list: Vec<Entry>,
}

/// A borrowed view of one header field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderRef<'a> {
    /// The identified name.
    pub name: HeaderName,
    /// The name as written (`v`, `VIA`, `X-Foo`).
    pub raw_name: &'a [u8],
    /// The trimmed value.
    pub value: &'a [u8],
}

impl HeaderRef<'_> {
    /// The canonical name, or the written one for unknown headers.
    pub fn display_name(&self) -> &str {
        match self.name {
            HeaderName::Other => super::grammar::text(self.raw_name),
            n => n.canonical(),
        }
    }
}

/// A field Parley writes must print as one field: a token name, and a value
/// with no line break (no header injection) and no other control character.
fn check_field(name: &str, value: &str) -> Result<(), SipError> {
    let bad = |reason| {
        Err(SipError::Field {
            name: name.chars().take(40).collect(),
            reason,
        })
    };
    if !super::grammar::is_token(name.as_bytes()) {
        return bad("the name is not a token");
    }
    if value.bytes().any(|c| (c < 0x20 && c != b'\t') || c == 0x7f) {
        return bad("the value holds a line break or control character");
    }
    if name.len() > u16::MAX as usize {
        return bad("the name is longer than 65535 bytes");
    }
    Ok(())
}

/// True when the field carries `name` (full or compact form, any case).
fn same_name(h: &HeaderRef<'_>, name: &str) -> bool {
    let known = HeaderName::from_bytes(name.as_bytes());
    h.name == known
        && (known != HeaderName::Other || h.raw_name.eq_ignore_ascii_case(name.as_bytes()))
}

impl Headers {
    /// The text a [`Src`] points at.
    #[inline]
    pub(crate) fn text(&self, src: Src) -> &[u8] {
        src.get(&self.buf, &self.own)
    }

    /// The text a [`Src`] points at, shared when it is received text.
    pub(crate) fn shared(&self, src: Src) -> Bytes {
        match src {
            Src::Span(s, e) => self.buf.slice(s as usize..e as usize),
            Src::Own(..) => Bytes::copy_from_slice(self.text(src)),
        }
    }

    /// Stores text Parley made and says where it is.
    pub(crate) fn store(&mut self, text: &[u8]) -> Src {
        let start = self.own.len();
        self.own.extend_from_slice(text);
        Src::Own(start as u32, self.own.len() as u32)
    }

    /// Number of header fields (lines, not comma-joined values).
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    fn view<'a>(&'a self, e: &'a Entry) -> HeaderRef<'a> {
        let line = self.text(e.line);
        HeaderRef {
            name: e.name,
            raw_name: &line[..(e.name_len as usize).min(line.len())],
            value: self.text(e.value),
        }
    }

    /// All fields in order.
    pub fn iter(&self) -> impl Iterator<Item = HeaderRef<'_>> + '_ {
        self.list.iter().map(|e| self.view(e))
    }

    /// The first value of a known header.
    #[inline]
    pub fn get(&self, name: HeaderName) -> Option<&[u8]> {
        self.list
            .iter()
            .find(|e| e.name == name)
            .map(|e| self.text(e.value))
    }

    /// The first value of a known header as a shared slice of the message (no copy).
    pub fn get_bytes(&self, name: HeaderName) -> Option<Bytes> {
        self.list
            .iter()
            .find(|e| e.name == name)
            .map(|e| self.shared(e.value))
    }

    /// Values of every field with this name (unknown names compare without case).
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.iter()
            .filter(move |h| same_name(h, name))
            .map(|h| h.value)
    }

    /// Every field line of a known header (comma-joined values not split).
    pub fn lines(&self, name: HeaderName) -> impl Iterator<Item = &[u8]> + '_ {
        self.list
            .iter()
            .filter(move |e| e.name == name)
            .map(|e| self.text(e.value))
    }

    /// Every value of a list header, across lines and commas (RFC 3261 §7.3.1).
    pub fn values(&self, name: HeaderName) -> impl Iterator<Item = &[u8]> + '_ {
        let split = name.is_list();
        self.lines(name).flat_map(move |v| {
            let mut it = split_commas(v);
            let mut single = Some(v);
            std::iter::from_fn(move || if split { it.next() } else { single.take() })
        })
    }

    /// How many fields carry this name.
    pub fn count(&self, name: HeaderName) -> usize {
        self.list.iter().filter(|e| e.name == name).count()
    }

    /// Appends a field written canonically (`Name: value`).
    pub fn push(&mut self, name: &str, value: &str) -> Result<(), SipError> {
        check_field(name, value)?;
        let known = HeaderName::from_bytes(name.as_bytes());
        let shown = match known {
            HeaderName::Other => name,
            n => n.canonical(),
        };
        let line = self.store(format!("{shown}: {value}").as_bytes());
        if let Src::Own(start, end) = line {
            self.list.push(Entry {
                name: known,
                name_len: shown.len() as u16,
                line,
                value: Src::Own(start + shown.len() as u32 + 2, end),
            });
        }
        Ok(())
    }

    /// Inserts a field at the top (as a proxy does with Via or Record-Route).
    pub fn push_front(&mut self, name: &str, value: &str) -> Result<(), SipError> {
        self.push(name, value)?;
        if let Some(e) = self.list.pop() {
            self.list.insert(0, e);
        }
        Ok(())
    }

    /// Removes every field with this known name; returns how many.
    /// [`HeaderName::Other`] stands for no one name: use [`Headers::remove_named`].
    pub fn remove(&mut self, name: HeaderName) -> usize {
        if name == HeaderName::Other {
            return 0;
        }
        let before = self.list.len();
        self.list.retain(|e| e.name != name);
        before - self.list.len()
    }

    /// Removes every field with this name, written in any case or compact form.
    pub fn remove_named(&mut self, name: &str) -> usize {
        let known = HeaderName::from_bytes(name.as_bytes());
        let (buf, own) = (&self.buf, &self.own);
        let before = self.list.len();
        self.list.retain(|e| {
            let line = e.line.get(buf, own);
            let raw = &line[..(e.name_len as usize).min(line.len())];
            !(e.name == known
                && (known != HeaderName::Other || raw.eq_ignore_ascii_case(name.as_bytes())))
        });
        before - self.list.len()
    }

    /// Removes the first field with this known name (the top Via of a response).
    pub fn remove_first(&mut self, name: HeaderName) -> bool {
        match self.list.iter().position(|e| e.name == name) {
            Some(i) => {
                self.list.remove(i);
                true
            }
            None => false,
        }
    }

    /// Removes the first value of the first field with this name: the whole
    /// field when it holds one value, else the value before the first comma
    /// (`Via: a, b` becomes `Via: b`). For Via, Route and Record-Route.
    pub fn pop_first_value(&mut self, name: HeaderName) -> bool {
        let Some(first) = self.get(name) else {
            return false;
        };
        let rest: Vec<&[u8]> = super::grammar::split_commas(first).skip(1).collect();
        if rest.is_empty() {
            return self.remove_first(name);
        }
        let joined = rest
            .iter()
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .collect::<Vec<_>>()
            .join(", ");
        self.set_first(name, &joined).is_ok()
    }

    /// Replaces every field with this name by one canonical field, in the place of the first.
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), SipError> {
        check_field(name, value)?;
        let pos = self.iter().position(|h| same_name(&h, name));
        self.remove_named(name);
        self.push(name, value)?;
        if let Some(pos) = pos {
            if let Some(e) = self.list.pop() {
                self.list.insert(pos.min(self.list.len()), e);
            }
        }
        Ok(())
    }

    /// Replaces the value of the first field with this known name, in place.
    pub fn set_first(&mut self, name: HeaderName, value: &str) -> Result<(), SipError> {
        let canonical = name.canonical();
        check_field(canonical, value)?;
        let Some(i) = self.list.iter().position(|e| e.name == name) else {
            return self.push(canonical, value);
        };
        let line = self.store(format!("{canonical}: {value}").as_bytes());
        if let Src::Own(start, end) = line {
            self.list[i] = Entry {
                name,
                name_len: canonical.len() as u16,
                line,
                value: Src::Own(start + canonical.len() as u32 + 2, end),
            };
        }
        Ok(())
    }

    /// Octets [`Headers::write`] produces.
    pub(crate) fn wire_len(&self) -> usize {
        self.list
            .iter()
            .map(|e| match e.line {
                Src::Span(s, e) | Src::Own(s, e) => (e - s) as usize + 2,
            })
            .sum()
    }

    /// Writes every field with CRLF after each.
    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        for e in &self.list {
            out.extend_from_slice(self.text(e.line));
            out.extend_from_slice(b"\r\n");
        }
    }
}
