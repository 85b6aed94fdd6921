//! Character classes and small scanners shared by every SIP grammar rule
//! (RFC 3261 §25.1). Tables are built at compile time; every scanner is a
//! bounded loop over a byte slice and never panics.

const fn table(extra: &[u8], alnum: bool) -> [bool; 256] {
    let mut t = [false; 256];
    if alnum {
        let mut c = b'0';
        while c <= b'9' {
            t[c as usize] = true;
            c += 1;
        }
        c = b'a';
        while c <= b'z' {
            t[c as usize] = true;
            t[(c - 32) as usize] = true;
            c += 1;
        }
    }
    let mut i = 0;
    while i < extra.len() {
        t[extra[i] as usize] = true;
        i += 1;
    }
    t
}

/// `token` (RFC 3261 §25.1).
pub(crate) static TOKEN: [bool; 256] = table(b"-.!%*_+`'~", true);
/// `word`: token plus separators allowed in Call-ID.
pub(crate) static WORD: [bool; 256] = table(b"-.!%*_+`'~()<>:\\\"/[]?{}", true);
/// `user` characters of a SIP URI (unreserved / user-unreserved), `%` checked apart.
pub(crate) static USER: [bool; 256] = table(b"-_.!~*'()&=+$,;?/", true);
/// `password` characters (unreserved / & = + $ ,), `%` checked apart.
pub(crate) static PASSWORD: [bool; 256] = table(b"-_.!~*'()&=+$,", true);
/// `paramchar` (param-unreserved / unreserved), `%` checked apart.
pub(crate) static PARAMCHAR: [bool; 256] = table(b"-_.!~*'()[]/:&+$", true);
/// `hname`/`hvalue` characters (hnv-unreserved / unreserved), `%` checked apart.
pub(crate) static HNV: [bool; 256] = table(b"-_.!~*'()[]/?:+$", true);
/// `uric` of RFC 2396 (reserved / unreserved), `%` checked apart.
pub(crate) static URIC: [bool; 256] = table(b"-_.!~*'();/?:@&=+$,[]#", true);

/// True when every byte is a `token` character and there is at least one.
#[inline]
pub(crate) fn is_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&c| TOKEN[c as usize])
}

/// Checks `s` against `class`, allowing `%HH` escapes; names the first fault.
pub(crate) fn check_escaped(s: &[u8], class: &[bool; 256]) -> Result<(), String> {
    let mut i = 0;
    while i < s.len() {
        let c = s[i];
        if c == b'%' {
            match (s.get(i + 1), s.get(i + 2)) {
                (Some(a), Some(b)) if a.is_ascii_hexdigit() && b.is_ascii_hexdigit() => i += 3,
                _ => return Err(format!("bad escape at offset {i}")),
            }
        } else if class[c as usize] {
            i += 1;
        } else {
            return Err(format!("character {:?} not allowed", c as char));
        }
    }
    Ok(())
}

/// Decodes `%HH` escapes (already validated or not: an invalid escape is kept as is).
pub fn unescape(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%' && i + 2 < s.len() {
            let h = hex(s[i + 1]).zip(hex(s[i + 2]));
            if let Some((a, b)) = h {
                out.push(a << 4 | b);
                i += 3;
                continue;
            }
        }
        out.push(s[i]);
        i += 1;
    }
    out
}

fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

/// SP or HTAB.
#[inline]
pub(crate) fn is_wsp(c: u8) -> bool {
    c == b' ' || c == b'\t'
}

/// Trims SP/HTAB (and CR/LF of a fold) on both sides.
#[inline]
pub(crate) fn trim(mut s: &[u8]) -> &[u8] {
    while let [c, rest @ ..] = s {
        if is_wsp(*c) || *c == b'\r' || *c == b'\n' {
            s = rest;
        } else {
            break;
        }
    }
    while let [rest @ .., c] = s {
        if is_wsp(*c) || *c == b'\r' || *c == b'\n' {
            s = rest;
        } else {
            break;
        }
    }
    s
}

/// Byte text as `&str` for grammar elements already checked to be ASCII or
/// UTF-8. Called on unchecked bytes it would hide them as "": debug builds
/// (tests, fuzzing) assert that never happens.
#[inline]
pub(crate) fn text(s: &[u8]) -> &str {
    let t = std::str::from_utf8(s);
    debug_assert!(t.is_ok(), "text() on unchecked bytes {s:?}");
    t.unwrap_or("")
}

/// Parses an unsigned decimal that must fit in `u32` (RFC 3261 uses 2^32-1
/// for CSeq and delta-seconds). `None` on an empty, non-digit or overlarge value.
pub(crate) fn parse_u32(s: &[u8]) -> Option<u32> {
    if s.is_empty() || s.len() > 10 || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let v = s.iter().fold(0u64, |a, &c| a * 10 + u64::from(c - b'0'));
    u32::try_from(v).ok()
}

/// Parses an unsigned decimal into `usize` with an upper bound on digits.
pub(crate) fn parse_usize(s: &[u8]) -> Option<usize> {
    if s.is_empty() || s.len() > 18 || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(
        s.iter()
            .fold(0usize, |a, &c| a * 10 + usize::from(c - b'0')),
    )
}

/// A forward-only reader over one header value.
#[derive(Debug, Clone)]
pub(crate) struct Cursor<'a> {
    pub(crate) s: &'a [u8],
    pub(crate) pos: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(s: &'a [u8]) -> Self {
        Cursor { s, pos: 0 }
    }

    #[inline]
    pub(crate) fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    #[inline]
    pub(crate) fn at_end(&self) -> bool {
        self.pos >= self.s.len()
    }

    #[inline]
    pub(crate) fn rest(&self) -> &'a [u8] {
        &self.s[self.pos.min(self.s.len())..]
    }

    /// Skips linear white space (SP, HTAB, and CRLF of a fold).
    #[inline]
    pub(crate) fn ws(&mut self) -> bool {
        let start = self.pos;
        while let Some(c) = self.peek() {
            if is_wsp(c) || c == b'\r' || c == b'\n' {
                self.pos += 1;
            } else {
                break;
            }
        }
        self.pos > start
    }

    /// Consumes `c` if it is next.
    #[inline]
    pub(crate) fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// Consumes SWS `c` SWS (the SEMI, COMMA, EQUAL, SLASH rules).
    pub(crate) fn sep(&mut self, c: u8) -> bool {
        let save = self.pos;
        self.ws();
        if self.eat(c) {
            self.ws();
            true
        } else {
            self.pos = save;
            false
        }
    }

    /// Takes the longest run of bytes in `class`.
    #[inline]
    pub(crate) fn take(&mut self, class: &[bool; 256]) -> &'a [u8] {
        let start = self.pos;
        while let Some(c) = self.peek() {
            if class[c as usize] {
                self.pos += 1;
            } else {
                break;
            }
        }
        &self.s[start..self.pos]
    }

    /// Takes a non-empty token.
    pub(crate) fn token(&mut self) -> Option<&'a [u8]> {
        let t = self.take(&TOKEN);
        (!t.is_empty()).then_some(t)
    }

    /// Takes a quoted-string, returning it with its quotes.
    pub(crate) fn quoted(&mut self) -> Result<&'a [u8], String> {
        let start = self.pos;
        if !self.eat(b'"') {
            return Err("expected a quoted string".into());
        }
        let mut non_ascii = false;
        loop {
            match self.peek() {
                None => return Err("unterminated quoted string".into()),
                Some(b'"') => {
                    self.pos += 1;
                    let q = &self.s[start..self.pos];
                    if non_ascii && std::str::from_utf8(q).is_err() {
                        return Err("quoted string is not valid UTF-8".into());
                    }
                    return Ok(q);
                }
                Some(b'\\') => match self.s.get(self.pos + 1) {
                    Some(&c) if c <= 0x7f && c != b'\r' && c != b'\n' => self.pos += 2,
                    _ => return Err("invalid quoted-pair in quoted string".into()),
                },
                Some(c) if c < 0x20 && !is_wsp(c) && c != b'\r' && c != b'\n' || c == 0x7f => {
                    return Err(format!("control character 0x{c:02x} in quoted string"));
                }
                Some(c) => {
                    non_ascii |= c >= 0x80;
                    self.pos += 1;
                }
            }
        }
    }
}

/// Removes the quotes and quoted-pair backslashes of a quoted-string.
pub fn unquote(q: &[u8]) -> Vec<u8> {
    let inner = q
        .strip_prefix(b"\"")
        .and_then(|q| q.strip_suffix(b"\""))
        .unwrap_or(q);
    let mut out = Vec::with_capacity(inner.len());
    let mut i = 0;
    while i < inner.len() {
        if inner[i] == b'\\' && i + 1 < inner.len() {
            i += 1;
        }
        out.push(inner[i]);
        i += 1;
    }
    out
}

/// Splits a comma-joined header value into its elements, respecting quoted
/// strings and `<...>` (RFC 3261 §7.3.1). Empty elements are yielded so the
/// caller can refuse them.
pub(crate) fn split_commas(s: &[u8]) -> CommaSplit<'_> {
    CommaSplit {
        s,
        pos: 0,
        done: false,
    }
}

/// The first element of a comma-joined value.
pub(crate) fn split_first(s: &[u8]) -> &[u8] {
    split_commas(s).next().unwrap_or(s)
}

/// Iterator behind [`split_commas`].
#[derive(Debug, Clone)]
pub(crate) struct CommaSplit<'a> {
    s: &'a [u8],
    pos: usize,
    done: bool,
}

impl<'a> Iterator for CommaSplit<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.done {
            return None;
        }
        let start = self.pos;
        let (mut quoted, mut angle) = (false, false);
        let mut i = start;
        while i < self.s.len() {
            match self.s[i] {
                b'\\' if quoted => i += 1,
                b'"' if !angle => quoted = !quoted,
                b'<' if !quoted => angle = true,
                b'>' if !quoted => angle = false,
                b',' if !quoted && !angle => {
                    self.pos = i + 1;
                    return Some(trim(&self.s[start..i]));
                }
                _ => {}
            }
            i += 1;
        }
        self.done = true;
        Some(trim(&self.s[start..]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commas_respect_quotes_and_brackets() {
        let v: Vec<_> = split_commas(br#""a, b" <sip:x;p=1,2>;q=1 , <sip:y>"#).collect();
        assert_eq!(v, vec![&br#""a, b" <sip:x;p=1,2>;q=1"#[..], b"<sip:y>"]);
        let v: Vec<_> = split_commas(b"a,,b").collect();
        assert_eq!(v, vec![&b"a"[..], b"", b"b"]);
    }

    #[test]
    fn escapes_are_checked_and_decoded() {
        assert!(check_escaped(b"a%20b", &USER).is_ok());
        assert!(check_escaped(b"a%2", &USER).is_err());
        assert!(check_escaped(b"a%zz", &USER).is_err());
        assert_eq!(unescape(b"a%40b%00"), b"a@b\0");
        assert_eq!(unescape(b"%4"), b"%4");
    }

    #[test]
    fn quoted_strings() {
        let mut c = Cursor::new(br#""a \"b\" c" rest"#);
        assert_eq!(c.quoted().unwrap(), br#""a \"b\" c""#);
        assert_eq!(unquote(br#""a \"b\" c""#), br#"a "b" c"#);
        assert!(Cursor::new(b"\"open").quoted().is_err());
    }

    #[test]
    fn u32_bounds() {
        assert_eq!(parse_u32(b"4294967295"), Some(u32::MAX));
        assert_eq!(parse_u32(b"4294967296"), None);
        assert_eq!(parse_u32(b"36893488147419103232"), None);
        assert_eq!(parse_u32(b"-1"), None);
    }
}
