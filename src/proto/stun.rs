//! STUN on the SIP port (RFC 5389, as RFC 5626 §8 uses it): a client
//! behind NAT sends Binding requests over the flow it registered on, and
//! learns from XOR-MAPPED-ADDRESS where it is seen and whether its NAT
//! rebound the flow. Sans-IO: a datagram in, at most one datagram out.
//!
//! Only what a keep-alive server needs: Binding requests are answered
//! (with FINGERPRINT when the request had one, RFC 5389 §7.3); other
//! requests get 400, unknown comprehension-required attributes 420 with
//! UNKNOWN-ATTRIBUTES (§7.3.1); indications and responses are dropped.
//! No authentication (RFC 5626 §8: the server MUST NOT require it).

use std::net::{IpAddr, SocketAddr};

/// The magic cookie of every RFC 5389 message.
pub const MAGIC_COOKIE: u32 = 0x2112_A442;

/// The fixed header's length.
pub const HEADER: usize = 20;

/// The longest message accepted (a UDP datagram's payload).
pub const MAX_MESSAGE: usize = 65_535;

/// Attributes read at most; a message with more is refused.
pub const MAX_ATTRIBUTES: usize = 64;

const BINDING: u16 = 0x0001;
const ATTR_MAPPED_ADDRESS: u16 = 0x0001;
const ATTR_USERNAME: u16 = 0x0006;
const ATTR_MESSAGE_INTEGRITY: u16 = 0x0008;
const ATTR_ERROR_CODE: u16 = 0x0009;
const ATTR_UNKNOWN_ATTRIBUTES: u16 = 0x000A;
const ATTR_REALM: u16 = 0x0014;
const ATTR_NONCE: u16 = 0x0015;
const ATTR_XOR_MAPPED_ADDRESS: u16 = 0x0020;
const ATTR_FINGERPRINT: u16 = 0x8028;
/// FINGERPRINT is the CRC-32 of the message XOR this (RFC 5389 §15.5).
const FINGERPRINT_XOR: u32 = 0x5354_554E;

/// The class of a message (RFC 5389 §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// A request.
    Request,
    /// An indication (no answer).
    Indication,
    /// A success response.
    Success,
    /// An error response.
    Error,
}

/// Why bytes are not a STUN message Parley reads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StunError {
    /// Not STUN at all: a SIP message, or too short for the header.
    #[error("not a STUN message")]
    NotStun,
    /// The header's length does not match the datagram, or is not a
    /// multiple of four.
    #[error("the message length is wrong")]
    Length,
    /// An attribute runs past the message, or there are too many.
    #[error("a malformed attribute")]
    Attribute,
    /// FINGERPRINT is present and wrong, or not last.
    #[error("the fingerprint does not match")]
    Fingerprint,
}

/// A decoded message: what a server needs of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stun {
    /// The method (1 is Binding).
    pub method: u16,
    /// The class.
    pub class: Class,
    /// The transaction ID.
    pub transaction: [u8; 12],
    /// FINGERPRINT was present (and right).
    pub fingerprint: bool,
    /// Comprehension-required attributes Parley does not know.
    pub unknown: Vec<u16>,
    /// XOR-MAPPED-ADDRESS (or MAPPED-ADDRESS), when present.
    pub mapped: Option<SocketAddr>,
}

/// Whether a datagram is STUN rather than SIP (RFC 7983 §7: the first
/// byte is 0–3; RFC 5389 §6: the magic cookie).
pub fn is_stun(data: &[u8]) -> bool {
    data.len() >= HEADER
        && data[0] < 4
        && u32::from_be_bytes([data[4], data[5], data[6], data[7]]) == MAGIC_COOKIE
}

/// Reads a STUN message (RFC 5389 §6, §15), checking its length, each
/// attribute's bounds and the fingerprint.
pub fn decode(data: &[u8]) -> Result<Stun, StunError> {
    if !is_stun(data) {
        return Err(StunError::NotStun);
    }
    if data.len() > MAX_MESSAGE {
        return Err(StunError::Length);
    }
    let kind = u16::from_be_bytes([data[0], data[1]]);
    let length = usize::from(u16::from_be_bytes([data[2], data[3]]));
    if length % 4 != 0 || HEADER + length != data.len() {
        return Err(StunError::Length);
    }
    // The class bits are C1 (bit 8) and C0 (bit 4); the method is the
    // other twelve.
    let class = match ((kind >> 7) & 0b10) | ((kind >> 4) & 0b1) {
        0b00 => Class::Request,
        0b01 => Class::Indication,
        0b10 => Class::Success,
        _ => Class::Error,
    };
    let method = (kind & 0x000F) | ((kind >> 1) & 0x0070) | ((kind >> 2) & 0x0F80);
    let mut transaction = [0u8; 12];
    transaction.copy_from_slice(&data[8..20]);
    let mut out = Stun {
        method,
        class,
        transaction,
        fingerprint: false,
        unknown: Vec::new(),
        mapped: None,
    };
    let mut at = HEADER;
    let mut count = 0;
    while at < data.len() {
        count += 1;
        if count > MAX_ATTRIBUTES || at + 4 > data.len() {
            return Err(StunError::Attribute);
        }
        let kind = u16::from_be_bytes([data[at], data[at + 1]]);
        let len = usize::from(u16::from_be_bytes([data[at + 2], data[at + 3]]));
        let value_at = at + 4;
        let padded = len.div_ceil(4) * 4;
        if value_at + padded > data.len() {
            return Err(StunError::Attribute);
        }
        let value = &data[value_at..value_at + len];
        if out.fingerprint {
            // Nothing may follow FINGERPRINT (§15.5).
            return Err(StunError::Fingerprint);
        }
        match kind {
            ATTR_FINGERPRINT => {
                if len != 4 {
                    return Err(StunError::Attribute);
                }
                let want = u32::from_be_bytes([value[0], value[1], value[2], value[3]]);
                if crc32(&data[..at]) ^ FINGERPRINT_XOR != want {
                    return Err(StunError::Fingerprint);
                }
                out.fingerprint = true;
            }
            ATTR_XOR_MAPPED_ADDRESS => {
                out.mapped = Some(address(value, Some(&data[4..20])).ok_or(StunError::Attribute)?);
            }
            ATTR_MAPPED_ADDRESS if out.mapped.is_none() => {
                out.mapped = Some(address(value, None).ok_or(StunError::Attribute)?);
            }
            // XOR-MAPPED-ADDRESS, when both are given, is the one read.
            ATTR_MAPPED_ADDRESS => {}
            // Known, and nothing a keep-alive server does with them.
            ATTR_USERNAME
            | ATTR_MESSAGE_INTEGRITY
            | ATTR_ERROR_CODE
            | ATTR_UNKNOWN_ATTRIBUTES
            | ATTR_REALM
            | ATTR_NONCE => {}
            k if k < 0x8000 => out.unknown.push(k),
            _ => {}
        }
        at = value_at + padded;
    }
    Ok(out)
}

/// An address attribute's value: family, port and address, XOR'd with the
/// cookie and transaction ID when `xor` gives them (bytes 4–20 of the
/// header).
fn address(value: &[u8], xor: Option<&[u8]>) -> Option<SocketAddr> {
    if value.len() < 4 {
        return None;
    }
    let mask = |i: usize| xor.map_or(0, |x| x[i]);
    let port = u16::from_be_bytes([value[2] ^ mask(0), value[3] ^ mask(1)]);
    let ip: IpAddr = match (value[1], value.len()) {
        (0x01, 8) => {
            let mut a = [0u8; 4];
            for (i, b) in a.iter_mut().enumerate() {
                *b = value[4 + i] ^ mask(i);
            }
            IpAddr::from(a)
        }
        (0x02, 20) => {
            let mut a = [0u8; 16];
            for (i, b) in a.iter_mut().enumerate() {
                *b = value[4 + i] ^ mask(i);
            }
            IpAddr::from(a)
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// The answer to a datagram that [`is_stun`]: a Binding success response
/// telling `source` where it is seen, an error response for what Parley
/// does not serve, or nothing (indications, responses, malformed input).
pub fn answer(data: &[u8], source: SocketAddr) -> Option<Vec<u8>> {
    let request = decode(data).ok()?;
    if request.class != Class::Request {
        return None;
    }
    if !request.unknown.is_empty() {
        return Some(error(&request, 420, "Unknown Attribute"));
    }
    if request.method != BINDING {
        return Some(error(&request, 400, "Bad Request"));
    }
    let mut m = Builder::new(0x0101, &request.transaction);
    m.xor_address(source);
    Some(m.finish(request.fingerprint))
}

/// An error response to `request` (RFC 5389 §15.6), with the unknown
/// attributes listed for a 420 (§15.9).
fn error(request: &Stun, code: u16, reason: &str) -> Vec<u8> {
    // The error class of the request's method.
    let m = request.method;
    let kind = (m & 0x000F) | ((m & 0x0070) << 1) | ((m & 0x0F80) << 2) | 0x0110;
    let mut b = Builder::new(kind, &request.transaction);
    let mut value = vec![0, 0, (code / 100) as u8, (code % 100) as u8];
    value.extend_from_slice(reason.as_bytes());
    b.attribute(ATTR_ERROR_CODE, &value);
    if code == 420 {
        let list: Vec<u8> = request
            .unknown
            .iter()
            .flat_map(|k| k.to_be_bytes())
            .collect();
        b.attribute(ATTR_UNKNOWN_ATTRIBUTES, &list);
    }
    b.finish(request.fingerprint)
}

/// A message being written.
struct Builder {
    out: Vec<u8>,
}

impl Builder {
    fn new(kind: u16, transaction: &[u8; 12]) -> Builder {
        let mut out = Vec::with_capacity(64);
        out.extend_from_slice(&kind.to_be_bytes());
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
        out.extend_from_slice(transaction);
        Builder { out }
    }

    fn attribute(&mut self, kind: u16, value: &[u8]) {
        self.out.extend_from_slice(&kind.to_be_bytes());
        self.out
            .extend_from_slice(&(value.len() as u16).to_be_bytes());
        self.out.extend_from_slice(value);
        while self.out.len() % 4 != 0 {
            self.out.push(0);
        }
        self.set_length(self.out.len() - HEADER);
    }

    fn xor_address(&mut self, a: SocketAddr) {
        let mask: [u8; 16] = self.out[4..20].try_into().unwrap_or([0; 16]);
        let port = a.port().to_be_bytes();
        let mut value = vec![0, 0, port[0] ^ mask[0], port[1] ^ mask[1]];
        match a.ip() {
            IpAddr::V4(ip) => {
                value[1] = 0x01;
                value.extend(ip.octets().iter().zip(mask).map(|(b, m)| b ^ m));
            }
            IpAddr::V6(ip) => {
                value[1] = 0x02;
                value.extend(ip.octets().iter().zip(mask).map(|(b, m)| b ^ m));
            }
        }
        self.attribute(ATTR_XOR_MAPPED_ADDRESS, &value);
    }

    fn set_length(&mut self, len: usize) {
        let bytes = (len as u16).to_be_bytes();
        self.out[2] = bytes[0];
        self.out[3] = bytes[1];
    }

    /// The message, with FINGERPRINT last when asked (§15.5: the length
    /// already counts it when the CRC is taken).
    fn finish(mut self, fingerprint: bool) -> Vec<u8> {
        if fingerprint {
            let len = self.out.len() - HEADER + 8;
            self.set_length(len);
            let crc = crc32(&self.out) ^ FINGERPRINT_XOR;
            self.out.extend_from_slice(&ATTR_FINGERPRINT.to_be_bytes());
            self.out.extend_from_slice(&4u16.to_be_bytes());
            self.out.extend_from_slice(&crc.to_be_bytes());
        }
        self.out
    }
}

/// CRC-32 (ISO 3309, the one FINGERPRINT uses), bit by bit: messages are
/// small and this runs once per keep-alive.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 5769 §2.1, the sample request (SOFTWARE, PRIORITY,
    /// ICE-CONTROLLED, USERNAME, MESSAGE-INTEGRITY, FINGERPRINT).
    const REQUEST: [u8; 108] = [
        0x00, 0x01, 0x00, 0x58, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6,
        0x86, 0xfa, 0x87, 0xdf, 0xae, 0x80, 0x22, 0x00, 0x10, 0x53, 0x54, 0x55, 0x4e, 0x20, 0x74,
        0x65, 0x73, 0x74, 0x20, 0x63, 0x6c, 0x69, 0x65, 0x6e, 0x74, 0x00, 0x24, 0x00, 0x04, 0x6e,
        0x00, 0x01, 0xff, 0x80, 0x29, 0x00, 0x08, 0x93, 0x2f, 0xf9, 0xb1, 0x51, 0x26, 0x3b, 0x36,
        0x00, 0x06, 0x00, 0x09, 0x65, 0x76, 0x74, 0x6a, 0x3a, 0x68, 0x36, 0x76, 0x59, 0x20, 0x20,
        0x20, 0x00, 0x08, 0x00, 0x14, 0x9a, 0xea, 0xa7, 0x0c, 0xbf, 0xd8, 0xcb, 0x56, 0x78, 0x1e,
        0xf2, 0xb5, 0xb2, 0xd3, 0xf2, 0x49, 0xc1, 0xb5, 0x71, 0xa2, 0x80, 0x28, 0x00, 0x04, 0xe5,
        0x7a, 0x3b, 0xcf,
    ];

    /// RFC 5769 §2.2, the sample IPv4 response: 192.0.2.1 port 32853.
    const RESPONSE_V4: [u8; 80] = [
        0x01, 0x01, 0x00, 0x3c, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6,
        0x86, 0xfa, 0x87, 0xdf, 0xae, 0x80, 0x22, 0x00, 0x0b, 0x74, 0x65, 0x73, 0x74, 0x20, 0x76,
        0x65, 0x63, 0x74, 0x6f, 0x72, 0x20, 0x00, 0x20, 0x00, 0x08, 0x00, 0x01, 0xa1, 0x47, 0xe1,
        0x12, 0xa6, 0x43, 0x00, 0x08, 0x00, 0x14, 0x2b, 0x91, 0xf5, 0x99, 0xfd, 0x9e, 0x90, 0xc3,
        0x8c, 0x74, 0x89, 0xf9, 0x2a, 0xf9, 0xba, 0x53, 0xf0, 0x6b, 0xe7, 0xd7, 0x80, 0x28, 0x00,
        0x04, 0xc0, 0x7d, 0x4c, 0x96,
    ];

    /// RFC 5769 §2.3, the sample IPv6 response:
    /// 2001:db8:1234:5678:11:2233:4455:6677 port 32853.
    const RESPONSE_V6: [u8; 92] = [
        0x01, 0x01, 0x00, 0x48, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6,
        0x86, 0xfa, 0x87, 0xdf, 0xae, 0x80, 0x22, 0x00, 0x0b, 0x74, 0x65, 0x73, 0x74, 0x20, 0x76,
        0x65, 0x63, 0x74, 0x6f, 0x72, 0x20, 0x00, 0x20, 0x00, 0x14, 0x00, 0x02, 0xa1, 0x47, 0x01,
        0x13, 0xa9, 0xfa, 0xa5, 0xd3, 0xf1, 0x79, 0xbc, 0x25, 0xf4, 0xb5, 0xbe, 0xd2, 0xb9, 0xd9,
        0x00, 0x08, 0x00, 0x14, 0xa3, 0x82, 0x95, 0x4e, 0x4b, 0xe6, 0x7b, 0xf1, 0x17, 0x84, 0xc9,
        0x7c, 0x82, 0x92, 0xc2, 0x75, 0xbf, 0xe3, 0xed, 0x41, 0x80, 0x28, 0x00, 0x04, 0xc8, 0xfb,
        0x0b, 0x4c,
    ];

    #[test]
    fn the_rfc_5769_samples_read_with_their_fingerprints_and_addresses() {
        let r = decode(&REQUEST).unwrap();
        assert_eq!((r.method, r.class), (BINDING, Class::Request));
        assert!(r.fingerprint);
        // PRIORITY (0x0024) is ICE's, comprehension-required, unknown here.
        assert_eq!(r.unknown, vec![0x0024]);
        let v4 = decode(&RESPONSE_V4).unwrap();
        assert_eq!(v4.class, Class::Success);
        assert_eq!(v4.mapped, Some("192.0.2.1:32853".parse().unwrap()));
        let v6 = decode(&RESPONSE_V6).unwrap();
        assert_eq!(
            v6.mapped,
            Some(
                "[2001:db8:1234:5678:11:2233:4455:6677]:32853"
                    .parse()
                    .unwrap()
            )
        );
    }

    #[test]
    fn a_binding_request_is_answered_with_where_it_came_from() {
        // A plain Binding request, as an RFC 5626 client sends.
        let mut request = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42];
        request.extend_from_slice(&REQUEST[8..20]);
        for source in [
            "192.0.2.1:32853",
            "[2001:db8:1234:5678:11:2233:4455:6677]:32853",
        ] {
            let source: SocketAddr = source.parse().unwrap();
            let answer = answer(&request, source).unwrap();
            let read = decode(&answer).unwrap();
            assert_eq!((read.method, read.class), (BINDING, Class::Success));
            assert_eq!(read.transaction, decode(&request).unwrap().transaction);
            assert_eq!(read.mapped, Some(source));
            assert!(!read.fingerprint);
        }
        // The XOR'd bytes are the RFC's.
        let answer = answer(&request, "192.0.2.1:32853".parse().unwrap()).unwrap();
        assert_eq!(&answer[20..32], &RESPONSE_V4[36..48]);
    }

    #[test]
    fn a_request_with_a_fingerprint_gets_one_back() {
        let mut request = vec![0x00, 0x01, 0x00, 0x08, 0x21, 0x12, 0xa4, 0x42];
        request.extend_from_slice(&REQUEST[8..20]);
        let crc = crc32(&request) ^ FINGERPRINT_XOR;
        request.extend_from_slice(&[0x80, 0x28, 0x00, 0x04]);
        request.extend_from_slice(&crc.to_be_bytes());
        assert!(decode(&request).unwrap().fingerprint);
        let answer = answer(&request, "127.0.0.1:5060".parse().unwrap()).unwrap();
        assert!(decode(&answer).unwrap().fingerprint);
        // A wrong one is refused, and nothing is answered.
        let mut bad = request.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert_eq!(decode(&bad), Err(StunError::Fingerprint));
        assert_eq!(super::answer(&bad, "127.0.0.1:5060".parse().unwrap()), None);
    }

    #[test]
    fn unknown_comprehension_required_attributes_get_420_with_their_list() {
        let answer = answer(&REQUEST, "127.0.0.1:5060".parse().unwrap()).unwrap();
        let read = decode(&answer).unwrap();
        assert_eq!((read.method, read.class), (BINDING, Class::Error));
        assert!(read.fingerprint);
        // ERROR-CODE 420 and UNKNOWN-ATTRIBUTES listing 0x0024.
        assert_eq!(
            &answer[20..28],
            &[0x00, 0x09, 0x00, 0x15, 0x00, 0x00, 0x04, 20]
        );
        let at = answer
            .windows(4)
            .position(|w| w == [0x00, 0x0a, 0x00, 0x02])
            .expect("UNKNOWN-ATTRIBUTES");
        assert_eq!(&answer[at + 4..at + 6], &[0x00, 0x24]);
    }

    #[test]
    fn sip_and_malformed_input_are_not_stun() {
        assert!(!is_stun(b"OPTIONS sip:localhost SIP/2.0\r\n\r\n"));
        assert!(!is_stun(b"\r\n\r\n"));
        assert_eq!(decode(&REQUEST[..19]), Err(StunError::NotStun));
        // Length not matching the datagram.
        assert_eq!(decode(&REQUEST[..104]), Err(StunError::Length));
        // An attribute running past the end.
        let mut bad = REQUEST[..24].to_vec();
        bad[3] = 4;
        bad[22] = 0x00;
        bad[23] = 0x40;
        assert_eq!(decode(&bad), Err(StunError::Attribute));
        // Responses and indications are not answered.
        assert_eq!(answer(&RESPONSE_V4, "127.0.0.1:1".parse().unwrap()), None);
        let mut indication = REQUEST[..20].to_vec();
        indication[1] = 0x11;
        indication[3] = 0;
        assert_eq!(decode(&indication).unwrap().class, Class::Indication);
        assert_eq!(answer(&indication, "127.0.0.1:1".parse().unwrap()), None);
    }

    #[test]
    fn other_methods_get_400() {
        // Allocate (0x003), a TURN method.
        let mut request = vec![0x00, 0x03, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42];
        request.extend_from_slice(&REQUEST[8..20]);
        let answer = answer(&request, "127.0.0.1:1".parse().unwrap()).unwrap();
        let read = decode(&answer).unwrap();
        assert_eq!((read.method, read.class), (0x003, Class::Error));
        assert_eq!(&answer[26..28], &[4, 0]);
    }
}
