//! Sans-IO text rules between IRC and the neutral model: lines of at most
//! 512 bytes (RFC 2812 §2.3) cut on UTF-8 boundaries, multi-line text sent
//! line by line, CTCP ACTION (`/me`), formatting codes removed, and nick
//! names to and from the local part of an address.

/// The longest IRC line, CR LF included (RFC 2812 §2.3).
pub const MAX_LINE: usize = 512;

/// CTCP's delimiter.
const CTCP: char = '\u{1}';

/// The text lines of a message for `PRIVMSG target :…`, each short enough
/// that the whole line (with the prefix the server adds when it relays it,
/// `prefix_room` bytes) stays within [`MAX_LINE`]; cut on UTF-8 character
/// boundaries, one IRC line per line of the text, empty lines dropped. A
/// text starting with `/me ` becomes a CTCP ACTION.
pub fn lines(target: &str, text: &str, prefix_room: usize) -> Vec<String> {
    let (action, text) = match text.strip_prefix("/me ") {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    // "PRIVMSG <target> :" + CR LF, and the ACTION wrapping.
    let overhead = "PRIVMSG ".len() + target.len() + 2 + 2 + if action { 9 } else { 0 };
    let room = MAX_LINE.saturating_sub(overhead + prefix_room).max(32);
    let mut out = Vec::new();
    for line in text.split('\n') {
        let line = line.trim_end_matches('\r');
        let mut rest = line;
        while !rest.is_empty() {
            let mut cut = rest.len().min(room);
            while !rest.is_char_boundary(cut) {
                cut -= 1;
            }
            let (piece, tail) = rest.split_at(cut);
            out.push(if action {
                format!("{CTCP}ACTION {piece}{CTCP}")
            } else {
                piece.to_string()
            });
            rest = tail;
        }
    }
    out
}

/// The text of an IRC message as a person reads it: CTCP ACTION as `/me`,
/// mIRC formatting codes (bold, colours, italics, underline, reverse,
/// monospace, reset) removed. `None` for other CTCP requests (VERSION,
/// PING…), which are not messages.
pub fn readable(text: &str) -> Option<String> {
    let text = if let Some(inner) = text.strip_prefix(CTCP) {
        let inner = inner.strip_suffix(CTCP).unwrap_or(inner);
        match inner.strip_prefix("ACTION ") {
            Some(action) => format!("/me {action}"),
            None => return None,
        }
    } else {
        text.to_string()
    };
    Some(strip_formatting(&text))
}

/// Removes mIRC formatting codes.
pub fn strip_formatting(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{2}' | '\u{f}' | '\u{11}' | '\u{16}' | '\u{1d}' | '\u{1e}' | '\u{1f}' => {}
            // Colour: ^C, then up to two digits, then optionally a comma
            // and up to two digits.
            '\u{3}' => {
                let mut fg = 0;
                for _ in 0..2 {
                    if chars.peek().is_some_and(char::is_ascii_digit) {
                        chars.next();
                        fg += 1;
                    }
                }
                // A background colour only after a foreground one.
                let mut look = chars.clone();
                if fg > 0
                    && look.next() == Some(',')
                    && look.peek().is_some_and(char::is_ascii_digit)
                {
                    chars.next();
                    for _ in 0..2 {
                        if chars.peek().is_some_and(char::is_ascii_digit) {
                            chars.next();
                        }
                    }
                }
            }
            // Hex colour: ^D and six hex digits (,six more).
            '\u{4}' => {
                for _ in 0..6 {
                    if chars.peek().is_some_and(char::is_ascii_hexdigit) {
                        chars.next();
                    }
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// A nick as the local part of an address: the characters IRC allows and
/// addresses do not are `\xx` escaped, as XEP-0106 does for JIDs (RFC 7247
/// §5 style); `\` itself is `\5c`.
pub fn nick_to_local(nick: &str) -> String {
    let mut out = String::with_capacity(nick.len());
    for c in nick.chars() {
        match c {
            '[' | ']' | '\\' | '`' | '^' | '{' | '}' | '|' => {
                out.push_str(&format!("\\{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out
}

/// The nick a local part stands for ([`nick_to_local`] undone); `None`
/// when it is not a nick IRC allows (RFC 2812 §2.3.1, with the common
/// extension of a leading digit refused).
pub fn local_to_nick(local: &str) -> Option<String> {
    let out = unescape(local)?;
    let first_ok = out
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || "[]\\`_^{|}".contains(c));
    let rest_ok = out
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "[]\\`_^{|}-".contains(c));
    (first_ok && rest_ok && out.len() <= 30).then_some(out)
}

/// The channel a room's local part names: `dev` is `#dev` (a `#` of its
/// own is taken as given, `\23dev` escaped); `None` for a name IRC does
/// not allow (RFC 2812 §1.3: no space, comma, BEL or colon).
pub fn channel_of(local: &str) -> Option<String> {
    let name = unescape(local)?;
    let name = if name.starts_with(['#', '&']) {
        name
    } else {
        format!("#{name}")
    };
    let ok = name.len() > 1
        && name.len() <= 50
        && !name
            .chars()
            .any(|c| matches!(c, ' ' | ',' | '\u{7}' | ':') || c.is_control());
    ok.then_some(name)
}

/// The local part of a room for a channel: `#dev` is `dev`; other
/// prefixes are kept, escaped.
pub fn local_of_channel(channel: &str) -> Option<String> {
    let name = channel.strip_prefix('#').unwrap_or(channel);
    if name.is_empty() {
        return None;
    }
    let mut out = String::new();
    for c in name.chars() {
        match c {
            '#' | '&' | '[' | ']' | '\\' | '`' | '^' | '{' | '}' | '|' | '@' | '/' | '"' | '\''
            | '<' | '>' => {
                out.push_str(&format!("\\{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    Some(out)
}

/// `\xx` escapes undone; `None` for a malformed one.
fn unescape(local: &str) -> Option<String> {
    let mut out = String::with_capacity(local.len());
    let mut chars = local.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            let hex: String = chars.by_ref().take(2).collect();
            let code = u32::from_str_radix(&hex, 16).ok()?;
            out.push(char::from_u32(code)?);
        } else {
            out.push(c);
        }
    }
    Some(out)
}

/// How a line that is not UTF-8 is read: IRC has no declared encoding,
/// and older clients send their system's 8-bit one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fallback {
    /// Windows-1252 (what mIRC and most Western clients send; Latin-1
    /// with the C1 range as printable characters).
    #[default]
    Windows1252,
    /// ISO 8859-1.
    Latin1,
}

/// Windows-1252's characters for 0x80–0x9F (the five it leaves undefined
/// read as Latin-1's C1 controls, as WHATWG does).
const CP1252_HIGH: [char; 32] = [
    '€', '\u{81}', '‚', 'ƒ', '„', '…', '†', '‡', 'ˆ', '‰', 'Š', '‹', 'Œ', '\u{8d}', 'Ž', '\u{8f}',
    '\u{90}', '‘', '’', '“', '”', '•', '–', '—', '˜', '™', 'š', '›', 'œ', '\u{9d}', 'ž', 'Ÿ',
];

/// A line from the server as text: UTF-8, else the fallback encoding;
/// never fails.
pub fn decode(bytes: &[u8], fallback: Fallback) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_string(),
        Err(_) => bytes
            .iter()
            .map(|&b| match (fallback, b) {
                (Fallback::Windows1252, 0x80..=0x9f) => CP1252_HIGH[usize::from(b - 0x80)],
                _ => char::from(b),
            })
            .collect(),
    }
}

/// A value as an IRCv3 message tag carries it (message-tags: `;` is
/// `\:`, space `\s`, `\` itself `\\`, CR `\r`, LF `\n`).
pub fn tag_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            ';' => out.push_str("\\:"),
            ' ' => out.push_str("\\s"),
            '\\' => out.push_str("\\\\"),
            '\r' => out.push_str("\\r"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// A line older than this (by its IRCv3 server-time) is a replay.
pub const REPLAY_AGE: std::time::Duration = std::time::Duration::from_secs(60);

/// Whether an IRCv3 server-time (`2011-10-19T16:40:51.620Z`) is more than
/// [`REPLAY_AGE`] before `now`; `false` for a time that does not read.
pub fn is_past(time: &str, now: std::time::SystemTime) -> bool {
    let Some(at) = parley_adapter::time::parse_time(time) else {
        return false;
    };
    let now = now
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    now - at > REPLAY_AGE.as_secs() as i64
}

/// The nick a user of Parley gets from the template (`{user}` is its
/// local part), made a valid nick: other characters become `_`, a leading
/// digit or dash gets a `_` before it, and it is cut to `max` bytes.
pub fn nick_for(template: &str, user: &str, max: usize) -> String {
    let raw = template.replace("{user}", user);
    let mut nick: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "[]\\`_^{|}-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    if nick.is_empty() || nick.starts_with(|c: char| c.is_ascii_digit() || c == '-') {
        nick.insert(0, '_');
    }
    nick.truncate(max.max(1));
    nick
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_text_is_cut_on_character_boundaries_within_the_line_limit() {
        let text = "é".repeat(600); // 1200 bytes
        let out = lines("bob", &text, 100);
        assert!(out.len() >= 3, "{}", out.len());
        let mut back = String::new();
        for l in &out {
            let wire = format!(":alice!~alice@host PRIVMSG bob :{l}\r\n");
            assert!(wire.len() <= MAX_LINE + 100, "{}", wire.len());
            back.push_str(l);
        }
        assert_eq!(back, text);
    }

    #[test]
    fn multi_line_text_goes_line_by_line_and_me_is_an_action() {
        assert_eq!(
            lines("bob", "one\r\ntwo\n\nthree", 0),
            vec!["one", "two", "three"]
        );
        assert_eq!(
            lines("#dev", "/me waves", 0),
            vec!["\u{1}ACTION waves\u{1}"]
        );
        assert_eq!(
            readable("\u{1}ACTION waves\u{1}").as_deref(),
            Some("/me waves")
        );
        assert_eq!(readable("\u{1}VERSION\u{1}"), None);
    }

    #[test]
    fn text_that_is_not_utf8_is_read_with_the_fallback() {
        assert_eq!(decode("café".as_bytes(), Fallback::Latin1), "café");
        assert_eq!(decode(b"caf\xe9 cr\xe8me", Fallback::Latin1), "café crème");
        assert_eq!(
            decode(b"caf\xe9 \x80 \x93ok\x94", Fallback::Windows1252),
            "café € “ok”"
        );
        assert_eq!(decode(b"\x80", Fallback::Latin1), "\u{80}");
        // Every byte sequence reads as something.
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(decode(&all, Fallback::Windows1252).chars().count(), 256);
    }

    #[test]
    fn tag_values_are_escaped_as_message_tags_says() {
        assert_eq!(tag_value("a;b c\\d\r\n"), "a\\:b\\sc\\\\d\\r\\n");
        assert_eq!(tag_value("3f2a-19"), "3f2a-19");
    }

    #[test]
    fn a_server_time_from_the_past_is_a_replay() {
        use std::time::{Duration, UNIX_EPOCH};
        // The IRCv3 server-time example: 2011-10-19T16:40:51.620Z.
        let at = UNIX_EPOCH + Duration::from_secs(1_319_042_451);
        assert!(!is_past("2011-10-19T16:40:51.620Z", at));
        assert!(!is_past(
            "2011-10-19T16:40:51.620Z",
            at + Duration::from_secs(60)
        ));
        assert!(is_past(
            "2011-10-19T16:40:51.620Z",
            at + Duration::from_secs(61)
        ));
        assert!(is_past("2000-02-29T00:00:00Z", at));
        for bad in [
            "",
            "yesterday",
            "2011-13-19T16:40:51Z",
            "2011-10-19 16:40:51Z",
            "2011-10-19T16:40:51",
        ] {
            assert!(!is_past(bad, at), "{bad}");
        }
    }

    #[test]
    fn formatting_codes_are_removed() {
        assert_eq!(
            strip_formatting("\u{2}bold\u{2} \u{3}04,12red\u{3} \u{1d}it\u{f} \u{3}3green"),
            "bold red it green"
        );
        assert_eq!(strip_formatting("10\u{3},5 apples"), "10,5 apples");
    }

    #[test]
    fn channels_map_to_room_names_and_back() {
        assert_eq!(channel_of("dev").as_deref(), Some("#dev"));
        assert_eq!(local_of_channel("#dev").as_deref(), Some("dev"));
        for chan in ["#dev", "#c++", "&local", "#a[b]"] {
            let local = local_of_channel(chan).unwrap();
            assert_eq!(channel_of(&local).as_deref(), Some(chan), "{local}");
        }
        assert_eq!(channel_of("a b"), None);
        assert_eq!(channel_of("a,b"), None);
    }

    #[test]
    fn nicks_map_to_local_parts_and_back() {
        for nick in ["bob", "[away]bob", "x|y", "a\\b", "b^`{}"] {
            let local = nick_to_local(nick);
            assert!(
                !local.contains(['[', ']', '|', '^', '`', '{', '}']),
                "{local}"
            );
            assert_eq!(local_to_nick(&local).as_deref(), Some(nick));
        }
        assert_eq!(local_to_nick("9lives"), None);
        assert_eq!(local_to_nick("has space"), None);
        assert_eq!(local_to_nick("bad\\zz"), None);
        assert_eq!(nick_for("{user}[p]", "alice.smith", 30), "alice_smith[p]");
        assert_eq!(nick_for("{user}", "7of9", 30), "_7of9");
        assert_eq!(nick_for("{user}", &"x".repeat(40), 9), "xxxxxxxxx");
    }
}
