//! Transaction matching (RFC 3261 §17.1.3 and §17.2.3).
//!
//! A branch with the magic cookie `z9hG4bK` identifies a transaction with
//! the sent-by of the top Via and the method (ACK counts as INVITE; CANCEL
//! is a transaction of its own). An older branch falls back to the RFC 2543
//! rule: Request-URI, From tag, Call-ID, CSeq number and the top Via.

use bytes::Bytes;

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
}

/// What identifies one transaction.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Key {
    /// RFC 3261: branch (case-sensitive), sent-by (host without case), method.
    Rfc3261 {
        /// The top Via branch.
        branch: Bytes,
        /// The top Via sent-by, host lower-cased, port as written (empty when absent).
        sent_by: Bytes,
        /// The method.
        method: MethodKey,
    },
    /// RFC 2543 fallback for branches without the magic cookie (server side).
    Rfc2543 {
        /// The Request-URI as written.
        request_uri: Bytes,
        /// The From tag.
        from_tag: Bytes,
        /// The Call-ID.
        call_id: Bytes,
        /// The CSeq number.
        cseq: u32,
        /// The top Via value as written.
        via: Bytes,
        /// The method.
        method: MethodKey,
    },
}

/// The sent-by of a Via as a key part: host without case, port as written.
fn sent_by(via: &crate::proto::sip::typed::Via<'_>) -> Bytes {
    let mut s = via.host.to_string().to_ascii_lowercase();
    if let Some(p) = via.port {
        s.push(':');
        s.push_str(&p.to_string());
    }
    Bytes::from(s)
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
            Some(b) if b.starts_with("z9hG4bK") && b.len() > 7 => Ok(Key::Rfc3261 {
                branch: Bytes::copy_from_slice(b.as_bytes()),
                sent_by: sent_by(&via),
                method,
            }),
            _ => {
                let from = req.from().ok_or_else(|| missing("From"))??;
                let cseq = req.cseq().ok_or_else(|| missing("CSeq"))??;
                let via_raw = req
                    .headers()
                    .get(crate::proto::sip::HeaderName::Via)
                    .unwrap_or(b"");
                let top = crate::proto::sip::grammar::split_first(via_raw);
                Ok(Key::Rfc2543 {
                    request_uri: Bytes::copy_from_slice(req.request_uri_raw().unwrap_or(b"")),
                    from_tag: Bytes::copy_from_slice(from.tag().unwrap_or("").as_bytes()),
                    call_id: Bytes::copy_from_slice(
                        req.call_id().ok_or_else(|| missing("Call-ID"))?,
                    ),
                    cseq: cseq.seq,
                    via: Bytes::copy_from_slice(top),
                    method,
                })
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
        Ok(Key::Rfc3261 {
            branch: Bytes::copy_from_slice(branch.as_bytes()),
            sent_by: sent_by(&via),
            method: MethodKey::of_cseq(cseq.method),
        })
    }

    /// The key of the INVITE a CANCEL with this key cancels (RFC 3261 §9.2).
    pub fn cancelled_invite(&self) -> Option<Key> {
        let mut k = self.clone();
        match &mut k {
            Key::Rfc3261 { method, .. } | Key::Rfc2543 { method, .. }
                if *method == MethodKey::Cancel =>
            {
                *method = MethodKey::Invite;
                Some(k)
            }
            _ => None,
        }
    }
}
