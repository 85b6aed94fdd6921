//! Header names: one table of canonical names and compact forms
//! (RFC 3261 §7.3.3 and the extensions that define one-letter forms).
//! Names compare without case (RFC 3261 §7.3.1).

macro_rules! header_names {
    ($( $(#[$doc:meta])* $variant:ident => $canon:literal $(, $compact:literal)? ;)*) => {
        /// A header field name Parley knows, or [`HeaderName::Other`].
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum HeaderName {
            $( $(#[$doc])* $variant, )*
            /// Any other header: its name is kept as written.
            Other,
        }

        impl HeaderName {
            /// The canonical spelling (`Call-ID`, `CSeq`, `WWW-Authenticate`).
            pub fn canonical(self) -> &'static str {
                match self {
                    $( HeaderName::$variant => $canon, )*
                    HeaderName::Other => "",
                }
            }

            /// The compact form, when the header has one.
            pub fn compact(self) -> Option<char> {
                match self {
                    $( $( HeaderName::$variant => Some($compact), )? )*
                    _ => None,
                }
            }

            /// Identifies a name as written (full or compact, any case).
            #[inline]
            pub fn from_bytes(name: &[u8]) -> HeaderName {
                match name {
                    [] => HeaderName::Other,
                    [c] => match c.to_ascii_lowercase() {
                        $( $( c if u32::from(c) == $compact as u32 => HeaderName::$variant, )? )*
                        _ => HeaderName::Other,
                    },
                    [first, ..] => {
                        // Most senders write the canonical spelling, which the
                        // compiler matches by length and word compares.
                        match name {
                            $( n if n == $canon.as_bytes() => return HeaderName::$variant, )*
                            _ => {}
                        }
                        let slots = &BUCKETS[bucket(name.len(), *first)];
                        for &i in slots.iter().take_while(|&&i| i != EMPTY) {
                            let (canon, h) = NAMES[i as usize];
                            if name.eq_ignore_ascii_case(canon.as_bytes()) {
                                return h;
                            }
                        }
                        HeaderName::Other
                    }
                }
            }
        }

        /// Every known name with its canonical spelling.
        const NAMES: &[(&str, HeaderName)] = &[ $( ($canon, HeaderName::$variant), )* ];
    };
}

header_names! {
    /// RFC 3261 §20.42.
    Via => "Via", 'v';
    /// RFC 3261 §20.20.
    From => "From", 'f';
    /// RFC 3261 §20.39.
    To => "To", 't';
    /// RFC 3261 §20.8.
    CallId => "Call-ID", 'i';
    /// RFC 3261 §20.16.
    CSeq => "CSeq";
    /// RFC 3261 §20.22.
    MaxForwards => "Max-Forwards";
    /// RFC 3261 §20.10.
    Contact => "Contact", 'm';
    /// RFC 3261 §20.34.
    Route => "Route";
    /// RFC 3261 §20.30.
    RecordRoute => "Record-Route";
    /// RFC 3327.
    Path => "Path";
    /// RFC 3261 §20.14.
    ContentLength => "Content-Length", 'l';
    /// RFC 3261 §20.15.
    ContentType => "Content-Type", 'c';
    /// RFC 3261 §20.12.
    ContentEncoding => "Content-Encoding", 'e';
    /// RFC 3261 §20.11.
    ContentDisposition => "Content-Disposition";
    /// RFC 3261 §20.13.
    ContentLanguage => "Content-Language";
    /// RFC 3261 §20.19.
    Expires => "Expires";
    /// RFC 3261 §20.23.
    MinExpires => "Min-Expires";
    /// RFC 6665.
    Event => "Event", 'o';
    /// RFC 6665.
    AllowEvents => "Allow-Events", 'u';
    /// RFC 6665.
    SubscriptionState => "Subscription-State";
    /// RFC 3903.
    SipETag => "SIP-ETag";
    /// RFC 3903.
    SipIfMatch => "SIP-If-Match";
    /// RFC 3261 §20.7.
    Authorization => "Authorization";
    /// RFC 3261 §20.44.
    WwwAuthenticate => "WWW-Authenticate";
    /// RFC 3261 §20.27.
    ProxyAuthenticate => "Proxy-Authenticate";
    /// RFC 3261 §20.28.
    ProxyAuthorization => "Proxy-Authorization";
    /// RFC 3261 §20.6.
    AuthenticationInfo => "Authentication-Info";
    /// RFC 3261 §20.32.
    Require => "Require";
    /// RFC 3261 §20.37.
    Supported => "Supported", 'k';
    /// RFC 3261 §20.40.
    Unsupported => "Unsupported";
    /// RFC 3261 §20.29.
    ProxyRequire => "Proxy-Require";
    /// RFC 3261 §20.5.
    Allow => "Allow";
    /// RFC 3261 §20.1.
    Accept => "Accept";
    /// RFC 3261 §20.2.
    AcceptEncoding => "Accept-Encoding";
    /// RFC 3261 §20.3.
    AcceptLanguage => "Accept-Language";
    /// RFC 3261 §20.17.
    Date => "Date";
    /// RFC 3261 §20.33.
    RetryAfter => "Retry-After";
    /// RFC 3261 §20.43.
    Warning => "Warning";
    /// RFC 3325.
    PAssertedIdentity => "P-Asserted-Identity";
    /// RFC 3325.
    PPreferredIdentity => "P-Preferred-Identity";
    /// RFC 3261 §20.36.
    Subject => "Subject", 's';
    /// RFC 3515.
    ReferTo => "Refer-To", 'r';
    /// RFC 3892.
    ReferredBy => "Referred-By", 'b';
    /// RFC 4028.
    SessionExpires => "Session-Expires", 'x';
    /// RFC 3841.
    AcceptContact => "Accept-Contact", 'a';
    /// RFC 3841.
    RejectContact => "Reject-Contact", 'j';
    /// RFC 3841.
    RequestDisposition => "Request-Disposition", 'd';
    /// RFC 8224.
    Identity => "Identity", 'y';
    /// RFC 3261 §20.41.
    UserAgent => "User-Agent";
    /// RFC 3261 §20.35.
    Server => "Server";
    /// RFC 3261 §20.38.
    Timestamp => "Timestamp";
    /// RFC 3261 §20.24.
    MimeVersion => "MIME-Version";
    /// RFC 3261 §20.25.
    Organization => "Organization";
    /// RFC 3261 §20.26.
    Priority => "Priority";
    /// RFC 3261 §20.31.
    ReplyTo => "Reply-To";
    /// RFC 3261 §20.21.
    InReplyTo => "In-Reply-To";
    /// RFC 3261 §20.18.
    ErrorInfo => "Error-Info";
    /// RFC 3261 §20.9.
    CallInfo => "Call-Info";
    /// RFC 3261 §20.4.
    AlertInfo => "Alert-Info";
}

const EMPTY: u8 = u8::MAX;
const BUCKET_SLOTS: usize = 4;

/// Buckets by (length, first letter): a name is compared with at most four
/// candidates instead of every known name.
#[inline]
const fn bucket(len: usize, first: u8) -> usize {
    (len & 31) * 32 + ((first | 0x20) & 31) as usize
}

static BUCKETS: [[u8; BUCKET_SLOTS]; 1024] = {
    let mut t = [[EMPTY; BUCKET_SLOTS]; 1024];
    let mut i = 0;
    while i < NAMES.len() {
        let name = NAMES[i].0.as_bytes();
        let b = bucket(name.len(), name[0]);
        let mut slot = 0;
        while t[b][slot] != EMPTY {
            slot += 1;
            assert!(slot < BUCKET_SLOTS, "too many header names share a bucket");
        }
        t[b][slot] = i as u8;
        i += 1;
    }
    t
};

impl HeaderName {
    /// True for headers whose values may be joined with commas on one line
    /// (RFC 3261 §7.3.1). The authentication headers, Date and the
    /// single-valued headers are excluded.
    pub fn is_list(self) -> bool {
        use HeaderName::*;
        matches!(
            self,
            Via | Contact
                | Route
                | RecordRoute
                | Path
                | Require
                | Supported
                | Unsupported
                | ProxyRequire
                | Allow
                | Accept
                | AcceptEncoding
                | AcceptLanguage
                | AllowEvents
                | Warning
                | PAssertedIdentity
                | PPreferredIdentity
                | ContentEncoding
                | ContentLanguage
                | ReplyTo
                | InReplyTo
                | ErrorInfo
                | CallInfo
                | AlertInfo
                | AcceptContact
                | RejectContact
                | RequestDisposition
        )
    }

    /// True for headers a request or response may carry only once.
    pub fn is_single(self) -> bool {
        use HeaderName::*;
        matches!(
            self,
            From | To
                | CallId
                | CSeq
                | MaxForwards
                | ContentLength
                | ContentType
                | ContentDisposition
                | Expires
                | MinExpires
                | Event
                | SubscriptionState
                | SipETag
                | SipIfMatch
                | Date
                | RetryAfter
                | MimeVersion
                | Timestamp
                | ReferTo
                | ReferredBy
                | SessionExpires
        )
    }
}

#[cfg(test)]
mod tests {
    use super::HeaderName;

    #[test]
    fn names_and_compact_forms() {
        assert_eq!(HeaderName::from_bytes(b"call-id"), HeaderName::CallId);
        assert_eq!(HeaderName::from_bytes(b"I"), HeaderName::CallId);
        assert_eq!(HeaderName::from_bytes(b"cSeQ"), HeaderName::CSeq);
        assert_eq!(HeaderName::from_bytes(b"o"), HeaderName::Event);
        assert_eq!(HeaderName::from_bytes(b"u"), HeaderName::AllowEvents);
        assert_eq!(HeaderName::from_bytes(b"X-Custom"), HeaderName::Other);
        assert_eq!(HeaderName::from_bytes(b"q"), HeaderName::Other);
        for (c, name) in [
            ('i', "Call-ID"),
            ('m', "Contact"),
            ('e', "Content-Encoding"),
            ('l', "Content-Length"),
            ('c', "Content-Type"),
            ('f', "From"),
            ('s', "Subject"),
            ('k', "Supported"),
            ('t', "To"),
            ('v', "Via"),
            ('r', "Refer-To"),
            ('b', "Referred-By"),
            ('x', "Session-Expires"),
        ] {
            let h = HeaderName::from_bytes(c.to_string().as_bytes());
            assert_eq!(h.canonical(), name);
            assert_eq!(h.compact(), Some(c));
            assert_eq!(HeaderName::from_bytes(name.as_bytes()), h);
        }
    }
}
