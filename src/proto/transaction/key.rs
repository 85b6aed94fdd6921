//! Transaction matching (RFC 3261 §17.1.3 and §17.2.3).
//!
//! A branch with the magic cookie `z9hG4bK` identifies a transaction with
//! the sent-by of the top Via and the method (ACK counts as INVITE; CANCEL
//! is a transaction of its own). An older branch falls back to the RFC 2543
//! rule: Request-URI, From tag, Call-ID, CSeq number and the top Via.

use bytes::{BufMut, Bytes, BytesMut};

use crate::proto::sip::{Message, Method, SipError};

/// The method part of a key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MethodKey {
    /// INVITE, and the ACK for a non-2xx final response to it.
    Invite,
    /// CANCEL.
    Cancel,
    /// Any other method, by name.
    Other(Bytes),
}

impl MethodKey {
    fn of(method: &Method) -> MethodKey {
        match method {
            Method::Invite | Method::Ack => MethodKey::Invite,
            Method::Cancel => MethodKey::Cancel,
            m => MethodKey::Other(Bytes::copy_from_slice(m.as_str().as_bytes())),
        }
    }

    fn of_cseq(method: &str) -> MethodKey {
        match method {
            "INVITE" | "ACK" => MethodKey::Invite,
            "CANCEL" => MethodKey::Cancel,
            m => MethodKey::Other(Bytes::copy_from_slice(m.as_bytes())),
        }
    }

    fn tag(&self) -> u8 {
        match self {
            MethodKey::Invite => b'I',
            MethodKey::Cancel => b'C',
            MethodKey::Other(_) => b'O',
        }
    }
}

/// What identifies one transaction, as one buffer: the rule it was made
/// by, the method kind, then each part with a length in front. A key is
/// hashed, compared and cloned as a single slice; the tables and the
/// timer queue hold many of them.
///
/// The parts: under RFC 3261, the method name (other methods only), the
/// sent-by (host without case, port as written) and the branch
/// (case-sensitive); under the RFC 2543 fallback, the method name, the
/// Request-URI, From tag, Call-ID, CSeq number and top Via as written.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Key(Bytes);

const RFC3261: u8 = b'3';
const RFC2543: u8 = b'2';
/// Where the method kind is.
const METHOD_AT: usize = 1;

struct KeyWriter(BytesMut);

impl KeyWriter {
    fn new(rule: u8, method: &MethodKey, room: usize) -> KeyWriter {
        let mut b = BytesMut::with_capacity(room + 16);
        b.put_u8(rule);
        b.put_u8(method.tag());
        let mut w = KeyWriter(b);
        if let MethodKey::Other(name) = method {
            w.part(name);
        }
        w
    }

    /// One part, its length first (parts are bounded by the message size
    /// limit, far below 4 GiB).
    fn part(&mut self, bytes: &[u8]) {
        self.0.put_u32(bytes.len() as u32);
        self.0.put_slice(bytes);
    }

    fn finish(self) -> Key {
        Key(self.0.freeze())
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let rule = if self.is_rfc2543() {
            "Rfc2543"
        } else {
            "Rfc3261"
        };
        write!(
            f,
            "Key::{rule}({:?})",
            String::from_utf8_lossy(&self.0[2..])
        )
    }
}

/// The sent-by of a Via as a key part: host without case, port as written.
fn sent_by(via: &crate::proto::sip::typed::Via<'_>) -> Vec<u8> {
    let mut s = via.host.to_string().into_bytes();
    s.make_ascii_lowercase();
    if let Some(p) = via.port {
        s.push(b':');
        s.extend_from_slice(p.to_string().as_bytes());
    }
    s
}

fn missing(name: &'static str) -> SipError {
    SipError::Missing(name)
}

impl Key {
    /// The key of the server transaction a request belongs to.
    pub fn for_request(req: &Message) -> Result<Key, SipError> {
        let method = MethodKey::of(req.method().ok_or_else(|| missing("Request-Line"))?);
        let via = req.top_via().ok_or_else(|| missing("Via"))??;
        match via.branch() {
            Some(b) if b.starts_with("z9hG4bK") && b.len() > 7 => {
                Ok(Key::rfc3261(&method, &sent_by(&via), b.as_bytes()))
            }
            _ => {
                let from = req.from().ok_or_else(|| missing("From"))??;
                let cseq = req.cseq().ok_or_else(|| missing("CSeq"))??;
                let call_id = req.call_id().ok_or_else(|| missing("Call-ID"))?;
                let via_raw = req
                    .headers()
                    .get(crate::proto::sip::HeaderName::Via)
                    .unwrap_or(b"");
                let top = crate::proto::sip::grammar::split_first(via_raw);
                let uri = req.request_uri_raw().unwrap_or(b"");
                let tag = from.tag().unwrap_or("").as_bytes();
                let mut w = KeyWriter::new(
                    RFC2543,
                    &method,
                    uri.len() + tag.len() + call_id.len() + top.len(),
                );
                w.part(uri);
                w.part(tag);
                w.part(call_id);
                w.part(&cseq.seq.to_be_bytes());
                w.part(top);
                Ok(w.finish())
            }
        }
    }

    /// The key of the client transaction a response belongs to: the branch of
    /// its top Via and the CSeq method (RFC 3261 §17.1.3).
    pub fn for_response(resp: &Message) -> Result<Key, SipError> {
        let via = resp.top_via().ok_or_else(|| missing("Via"))??;
        let cseq = resp.cseq().ok_or_else(|| missing("CSeq"))??;
        let branch = via
            .branch()
            .ok_or_else(|| SipError::header("Via", "no branch"))?;
        Ok(Key::rfc3261(
            &MethodKey::of_cseq(cseq.method),
            &sent_by(&via),
            branch.as_bytes(),
        ))
    }

    fn rfc3261(method: &MethodKey, sent_by: &[u8], branch: &[u8]) -> Key {
        let mut w = KeyWriter::new(RFC3261, method, sent_by.len() + branch.len());
        w.part(sent_by);
        w.part(branch);
        w.finish()
    }

    /// True for a key made by the RFC 2543 rule (a branch without the
    /// magic cookie).
    pub fn is_rfc2543(&self) -> bool {
        self.0.first() == Some(&RFC2543)
    }

    /// The method part.
    pub fn method(&self) -> MethodKey {
        match self.0.get(METHOD_AT) {
            Some(b'I') => MethodKey::Invite,
            Some(b'C') => MethodKey::Cancel,
            _ => {
                let len = self
                    .0
                    .get(2..6)
                    .map_or(0, |l| u32::from_be_bytes([l[0], l[1], l[2], l[3]]) as usize);
                MethodKey::Other(self.0.slice(6..(6 + len).min(self.0.len())))
            }
        }
    }

    /// The key of the INVITE a CANCEL with this key cancels (RFC 3261 §9.2).
    pub fn cancelled_invite(&self) -> Option<Key> {
        if self.0.get(METHOD_AT) != Some(&b'C') {
            return None;
        }
        let mut k = BytesMut::from(&self.0[..]);
        k[METHOD_AT] = b'I';
        Some(Key(k.freeze()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::sip::{Framing, Limits};

    fn request(method: &str, branch: &str, host: &str) -> Message {
        let text = format!(
            "{method} sip:bob@b.example SIP/2.0\r\n\
             Via: SIP/2.0/UDP {host}:5060;branch={branch}\r\n\
             From: <sip:alice@a.example>;tag=1\r\nTo: <sip:bob@b.example>\r\n\
             Call-ID: c1\r\nCSeq: 7 {method}\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        );
        Message::parse(Bytes::from(text), Framing::Stream, &Limits::default()).unwrap()
    }

    #[test]
    fn parts_are_kept_apart_and_methods_read_back() {
        let message = Key::for_request(&request("MESSAGE", "z9hG4bKx", "a.example")).unwrap();
        assert_eq!(
            message.method(),
            MethodKey::Other(Bytes::from_static(b"MESSAGE"))
        );
        assert!(!message.is_rfc2543());
        let invite = Key::for_request(&request("INVITE", "z9hG4bKx", "A.Example")).unwrap();
        assert_eq!(invite.method(), MethodKey::Invite);
        let ack = Key::for_request(&request("ACK", "z9hG4bKx", "a.example")).unwrap();
        assert_eq!(invite, ack, "host case does not matter; ACK matches INVITE");
        let upper = Key::for_request(&request("INVITE", "z9hG4bKX", "a.example")).unwrap();
        assert_ne!(invite, upper, "the branch is case-sensitive");
        let cancel = Key::for_request(&request("CANCEL", "z9hG4bKx", "a.example")).unwrap();
        assert_eq!(cancel.method(), MethodKey::Cancel);
        assert_ne!(cancel, invite);
        assert_eq!(cancel.cancelled_invite(), Some(invite.clone()));
        assert_eq!(invite.cancelled_invite(), None);
        // A length in front of each part: moving a character from the
        // sent-by into the branch gives another key.
        let a = Key::rfc3261(&MethodKey::Invite, b"ab", b"z9hG4bKc");
        let b = Key::rfc3261(&MethodKey::Invite, b"a", b"bz9hG4bKc");
        assert_ne!(a, b);
    }
}
