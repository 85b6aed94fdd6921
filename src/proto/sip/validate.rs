//! Whole-message checks beyond framing: mandatory headers, single-valued
//! headers that appear twice, the grammar of every header Parley types, and
//! the CSeq/method rule (RFC 3261 §8.1.1, §8.2.2, §16.3). A server runs this
//! on every request it is about to act on; the first fault found is returned.

use super::error::{Limit, SipError};
use super::limits::Limits;
use super::message::Message;
use super::name::HeaderName;
use super::typed::{
    check_call_id, check_date, check_retry_after, check_token_list, check_warning, parse_delta,
    parse_max_forwards, Auth, CSeq, Contact, MediaType, NameAddr, TokenParams, Via,
};

/// The header fields every message carries (RFC 3261 §8.1.1).
const MANDATORY: [HeaderName; 5] = [
    HeaderName::To,
    HeaderName::From,
    HeaderName::CallId,
    HeaderName::CSeq,
    HeaderName::Via,
];

impl Message {
    /// Checks the whole message; see the module documentation.
    pub fn validate(&self, limits: &Limits) -> Result<(), SipError> {
        self.require(&MANDATORY)?;
        self.validate_fields(limits)
    }

    /// Checks a request Parley made before the transport puts its Via on
    /// top: everything [`Message::validate`] checks but that one field.
    pub fn validate_unsent(&self, limits: &Limits) -> Result<(), SipError> {
        self.require(&MANDATORY[..4])?;
        self.validate_fields(limits)
    }

    fn require(&self, names: &[HeaderName]) -> Result<(), SipError> {
        match names.iter().find(|n| self.headers.get(**n).is_none()) {
            Some(n) => Err(SipError::Missing(n.canonical())),
            None => Ok(()),
        }
    }

    fn validate_fields(&self, limits: &Limits) -> Result<(), SipError> {
        let h = &self.headers;
        // Single-valued headers: two fields, or one field with a comma list.
        for e in &h.list {
            if e.name.is_single() {
                let count = h.count(e.name);
                if count > 1 {
                    return Err(SipError::Duplicate {
                        name: e.name.canonical(),
                        count,
                    });
                }
            }
        }
        let mut vias = 0;
        // The headers that identify the transaction are checked first, so the
        // fault named is the one that matters most (RFC 4475 §3.1.2.4).
        let core = |n: HeaderName| {
            use HeaderName as N;
            matches!(n, N::CSeq | N::CallId | N::From | N::To | N::Via)
        };
        let ordered = h
            .iter()
            .filter(|x| core(x.name))
            .chain(h.iter().filter(|x| !core(x.name)));
        for hdr in ordered {
            let v = hdr.value;
            use HeaderName as N;
            match hdr.name {
                N::Via => {
                    for item in super::grammar::split_commas(v) {
                        vias += 1;
                        if vias > limits.max_vias {
                            return Err(SipError::TooLarge {
                                limit: Limit::ViaCount,
                                seen: h.values(N::Via).count(),
                                max: limits.max_vias,
                            });
                        }
                        Via::parse(item)?;
                    }
                }
                N::From | N::To => {
                    NameAddr::parse_full(v, hdr.name.canonical())?;
                }
                N::Route | N::RecordRoute | N::Path => {
                    for item in super::grammar::split_commas(v) {
                        let na = NameAddr::parse_full(item, hdr.name.canonical())?;
                        if !na.angle {
                            return Err(SipError::header(
                                hdr.name.canonical(),
                                "the URI must be enclosed in <>",
                            ));
                        }
                    }
                }
                N::PAssertedIdentity | N::PPreferredIdentity | N::ReplyTo => {
                    for item in super::grammar::split_commas(v) {
                        NameAddr::parse_full(item, hdr.name.canonical())?;
                    }
                }
                N::Contact => {
                    let items: Vec<_> = super::grammar::split_commas(v).collect();
                    for item in &items {
                        if Contact::parse(item)? == Contact::Star
                            && (items.len() > 1 || h.count(N::Contact) > 1)
                        {
                            return Err(SipError::header(
                                "Contact",
                                "'*' must be the only contact",
                            ));
                        }
                    }
                }
                N::CallId => check_call_id(v)?,
                N::CSeq => {
                    let cseq = CSeq::parse(v)?;
                    if let Some(m) = self.method() {
                        if cseq.method != m.as_str() {
                            return Err(SipError::CSeqMismatch {
                                method: m.to_string(),
                                cseq: cseq.method.to_string(),
                            });
                        }
                    }
                }
                N::MaxForwards => {
                    parse_max_forwards(v)?;
                }
                N::Expires | N::MinExpires => {
                    parse_delta(v, hdr.name.canonical())?;
                }
                N::ContentType => {
                    MediaType::parse(v, "Content-Type")?;
                }
                N::Accept => {
                    for item in
                        super::grammar::split_commas(v).filter(|i| !i.is_empty() || v.is_empty())
                    {
                        if !item.is_empty() {
                            MediaType::parse(item, "Accept")?;
                        }
                    }
                }
                N::ContentDisposition | N::Event | N::SubscriptionState => {
                    let tp = TokenParams::parse(v, hdr.name.canonical())?;
                    if hdr.name == N::SubscriptionState {
                        for p in ["expires", "retry-after"] {
                            if let Some(Some(x)) = tp.params.get(p) {
                                parse_delta(x, "Subscription-State")?;
                            }
                        }
                    }
                }
                N::AllowEvents
                | N::Require
                | N::ProxyRequire
                | N::Unsupported
                | N::ContentEncoding => {
                    check_token_list(v, hdr.name.canonical(), false)?;
                }
                N::Supported | N::Allow => check_token_list(v, hdr.name.canonical(), true)?,
                N::SipETag | N::SipIfMatch if !super::grammar::is_token(v) => {
                    return Err(SipError::header(
                        hdr.name.canonical(),
                        "the entity tag must be a token",
                    ));
                }
                N::Authorization
                | N::ProxyAuthorization
                | N::WwwAuthenticate
                | N::ProxyAuthenticate => {
                    Auth::parse(v, hdr.name.canonical())?;
                }
                N::Date => check_date(v)?,
                N::RetryAfter => {
                    check_retry_after(v)?;
                }
                N::Warning => {
                    for item in super::grammar::split_commas(v) {
                        check_warning(item)?;
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The top Via, parsed (the one a response is routed by).
    pub fn top_via(&self) -> Option<Result<Via<'_>, SipError>> {
        let first = self.headers.get(HeaderName::Via)?;
        let item = match memchr::memchr(b',', first) {
            None => first,
            Some(_) => super::grammar::split_commas(first).next()?,
        };
        Some(Via::parse(item))
    }

    /// The CSeq, parsed.
    pub fn cseq(&self) -> Option<Result<CSeq<'_>, SipError>> {
        self.headers.get(HeaderName::CSeq).map(CSeq::parse)
    }

    /// The From header, parsed.
    pub fn from(&self) -> Option<Result<NameAddr<'_>, SipError>> {
        self.headers
            .get(HeaderName::From)
            .map(|v| NameAddr::parse(v, "From"))
    }

    /// The To header, parsed.
    pub fn to(&self) -> Option<Result<NameAddr<'_>, SipError>> {
        self.headers
            .get(HeaderName::To)
            .map(|v| NameAddr::parse(v, "To"))
    }

    /// The Call-ID value.
    pub fn call_id(&self) -> Option<&[u8]> {
        self.headers.get(HeaderName::CallId)
    }

    /// The Content-Type, parsed.
    pub fn content_type(&self) -> Option<Result<MediaType<'_>, SipError>> {
        self.headers
            .get(HeaderName::ContentType)
            .map(|v| MediaType::parse(v, "Content-Type"))
    }
}
