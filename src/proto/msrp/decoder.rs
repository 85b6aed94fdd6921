//! A streaming MSRP decoder: bytes in, events out. A chunk's body is given
//! out as it arrives, in pieces, so a relay can pass on a body larger than
//! its buffer without holding it, and an endpoint decides how much to keep.

use bytes::{Bytes, BytesMut};
use memchr::memmem;

use super::message::{parse_head, Flag, Head};
use super::{MsrpError, MsrpLimits};

/// What the decoder found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A start line and header fields; `has_body` says whether data follows.
    Head(Head),
    /// A piece of the body (more may follow).
    Data(Bytes),
    /// The end-line: the message is complete.
    End(Flag),
    /// A head whose framing and paths are sound but whose fields break
    /// the RFC (a bad Byte-Range, Message-ID, Status, a body without
    /// Content-Type): the message is read to its end-line as usual, and
    /// the receiver answers 400 and keeps the connection.
    Refused(Head, MsrpError),
}

#[derive(Debug)]
enum State {
    /// Reading a head; lines before `scanned` were looked at already.
    Head { scanned: usize },
    /// Reading a body, whose end-line starts with `marker`.
    Body { marker: Vec<u8>, started: bool },
    /// A head without a body was given out; its end-line's flag is next.
    Ending(Flag),
}

/// Decodes one connection's bytes. Feed it by appending to the buffer and
/// calling [`Decoder::decode`] until it returns `Ok(None)`.
#[derive(Debug)]
pub struct Decoder {
    limits: MsrpLimits,
    state: State,
}

impl Decoder {
    /// A decoder with these limits.
    pub fn new(limits: MsrpLimits) -> Decoder {
        Decoder {
            limits,
            state: State::Head { scanned: 0 },
        }
    }

    /// Whether the decoder is between messages (nothing half read).
    pub fn idle(&self) -> bool {
        matches!(self.state, State::Head { scanned: 0 })
    }

    /// The next event from `buf`, consuming what it used; `Ok(None)` when
    /// more bytes are needed. After an error the connection's framing is
    /// lost: the caller answers if it can and closes.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Event>, MsrpError> {
        match &mut self.state {
            State::Ending(flag) => {
                let flag = *flag;
                self.state = State::Head { scanned: 0 };
                Ok(Some(Event::End(flag)))
            }
            State::Head { scanned } => {
                let mut pos = *scanned;
                loop {
                    let Some(n) = memchr::memchr(b'\n', &buf[pos..]) else {
                        *scanned = pos;
                        if buf.len() > self.limits.max_head {
                            return Err(MsrpError::TooLarge {
                                what: "head size",
                                seen: buf.len(),
                                max: self.limits.max_head,
                            });
                        }
                        return Ok(None);
                    };
                    let eol = pos + n;
                    if eol == 0 || buf[eol - 1] != b'\r' {
                        return Err(MsrpError::LineEnd);
                    }
                    let line = &buf[pos..eol - 1];
                    if pos == 0 {
                        if !line.starts_with(b"MSRP ") {
                            return Err(MsrpError::StartLine);
                        }
                    } else if line.is_empty() {
                        // The blank line: a body follows.
                        let mut head = parse_head(&buf[..pos], &self.limits)?;
                        head.has_body = true;
                        let checked = head.check();
                        let mut marker = b"\r\n-------".to_vec();
                        marker.extend_from_slice(head.tid.as_bytes());
                        let _ = buf.split_to(eol + 1);
                        self.state = State::Body {
                            marker,
                            started: false,
                        };
                        return Ok(Some(match checked {
                            Ok(()) => Event::Head(head),
                            Err(e) => Event::Refused(head, e),
                        }));
                    } else if line.starts_with(b"-------") {
                        // The end-line right after the header fields.
                        let head = parse_head(&buf[..pos], &self.limits)?;
                        let checked = head.check();
                        let flag = end_line_flag(line, &head.tid)?;
                        let _ = buf.split_to(eol + 1);
                        self.state = State::Ending(flag);
                        return Ok(Some(match checked {
                            Ok(()) => Event::Head(head),
                            Err(e) => Event::Refused(head, e),
                        }));
                    }
                    if eol + 1 > self.limits.max_head {
                        return Err(MsrpError::TooLarge {
                            what: "head size",
                            seen: eol + 1,
                            max: self.limits.max_head,
                        });
                    }
                    pos = eol + 1;
                }
            }
            State::Body { marker, started } => {
                // A sender that left out the CRLF before the end-line of an
                // empty body.
                if !*started {
                    let bare = &marker[2..];
                    if buf.len() < bare.len() + 3
                        && bare.starts_with(&buf[..buf.len().min(bare.len())])
                    {
                        return Ok(None);
                    }
                    if buf.starts_with(bare) {
                        let flag = Flag::from_byte(buf[bare.len()]).ok_or(MsrpError::EndLine)?;
                        if &buf[bare.len() + 1..bare.len() + 3] != b"\r\n" {
                            return Err(MsrpError::EndLine);
                        }
                        let _ = buf.split_to(bare.len() + 3);
                        self.state = State::Head { scanned: 0 };
                        return Ok(Some(Event::End(flag)));
                    }
                }
                let finder = memmem::Finder::new(marker.as_slice());
                let mut from = 0;
                while let Some(p) = finder.find(&buf[from..]).map(|p| p + from) {
                    let after = p + marker.len();
                    if buf.len() < after + 3 {
                        // Perhaps the end-line; give out what comes before.
                        return Ok(self.data(buf, p));
                    }
                    if let Some(flag) = Flag::from_byte(buf[after]) {
                        if &buf[after + 1..after + 3] == b"\r\n" {
                            if p > 0 {
                                return Ok(self.data(buf, p));
                            }
                            let _ = buf.split_to(after + 3);
                            self.state = State::Head { scanned: 0 };
                            return Ok(Some(Event::End(flag)));
                        }
                    }
                    // The marker's bytes inside the body, not an end-line.
                    from = p + 1;
                }
                // No end-line yet: everything but a tail that may begin one.
                let keep = marker.len() + 2;
                let safe = buf.len().saturating_sub(keep);
                Ok(self.data(buf, safe))
            }
        }
    }

    fn data(&mut self, buf: &mut BytesMut, upto: usize) -> Option<Event> {
        if upto == 0 {
            return None;
        }
        if let State::Body { started, .. } = &mut self.state {
            *started = true;
        }
        Some(Event::Data(buf.split_to(upto).freeze()))
    }
}

fn end_line_flag(line: &[u8], tid: &str) -> Result<Flag, MsrpError> {
    let rest = &line[7..];
    if rest.len() != tid.len() + 1 || !rest.starts_with(tid.as_bytes()) {
        return Err(MsrpError::EndLine);
    }
    Flag::from_byte(rest[tid.len()]).ok_or(MsrpError::EndLine)
}

/// One whole message: its head, its body (when it has one) and the flag
/// of its end-line.
pub type Whole = (Head, Option<Vec<u8>>, Flag);

/// One whole message decoded from `bytes` (head, the body joined, the
/// flag), for tests, the command line and the fuzz target; `Ok(None)` when
/// the bytes hold less than one message.
pub fn decode_one(bytes: &[u8], limits: &MsrpLimits) -> Result<Option<Whole>, MsrpError> {
    let mut d = Decoder::new(*limits);
    let mut buf = BytesMut::from(bytes);
    let mut head = None;
    let mut body: Option<Vec<u8>> = None;
    loop {
        match d.decode(&mut buf)? {
            None => return Ok(None),
            Some(Event::Refused(_, e)) => return Err(e),
            Some(Event::Head(h)) => {
                if h.has_body {
                    body = Some(Vec::new());
                }
                head = Some(h);
            }
            Some(Event::Data(b)) => {
                let into = body.get_or_insert_with(Vec::new);
                if into.len() + b.len() > limits.max_message {
                    return Err(MsrpError::TooLarge {
                        what: "body size",
                        seen: into.len() + b.len(),
                        max: limits.max_message,
                    });
                }
                into.extend_from_slice(&b);
            }
            Some(Event::End(flag)) => {
                let Some(h) = head else {
                    return Err(MsrpError::StartLine);
                };
                return Ok(Some((h, body, flag)));
            }
        }
    }
}
