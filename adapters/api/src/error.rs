//! The neutral error set: the XMPP stanza error conditions (RFC 6120 §8.3.3),
//! which every network's failures are mapped onto, with both tables of
//! RFC 7247 §7: XMPP condition → SIP status and SIP status → XMPP condition.

use std::fmt;

/// Why a message, presence or subscription could not go through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Condition {
    /// The request was malformed.
    BadRequest,
    /// A resource or session with that name already exists.
    Conflict,
    /// The feature is not implemented by the recipient or a server on the way.
    FeatureNotImplemented,
    /// The sender may not do this.
    Forbidden,
    /// The recipient is no longer at this address.
    Gone,
    /// The server failed.
    InternalServerError,
    /// No such user or item.
    ItemNotFound,
    /// The address is malformed.
    JidMalformed,
    /// The recipient does not accept this content.
    NotAcceptable,
    /// Not allowed to anyone.
    NotAllowed,
    /// The sender must authenticate first.
    NotAuthorized,
    /// A policy of the server or domain refuses it.
    PolicyViolation,
    /// The recipient is temporarily unavailable.
    RecipientUnavailable,
    /// The recipient is elsewhere.
    Redirect,
    /// The sender must register first.
    RegistrationRequired,
    /// The recipient's domain cannot be found.
    RemoteServerNotFound,
    /// The recipient's domain did not answer in time.
    RemoteServerTimeout,
    /// The server lacks the resources to serve it.
    ResourceConstraint,
    /// The service is not offered.
    ServiceUnavailable,
    /// A subscription is required first.
    SubscriptionRequired,
    /// Anything else.
    UndefinedCondition,
    /// The request was not expected now.
    UnexpectedRequest,
}

/// The XMPP error type that goes with a condition (RFC 6120 §8.3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorType {
    /// Do not retry.
    Cancel,
    /// Retry after waiting.
    Wait,
    /// Change the data and retry.
    Modify,
    /// Provide credentials and retry.
    Auth,
    /// Proceed; only a warning.
    Continue,
}

const NAMES: [(Condition, &str); 22] = [
    (Condition::BadRequest, "bad-request"),
    (Condition::Conflict, "conflict"),
    (Condition::FeatureNotImplemented, "feature-not-implemented"),
    (Condition::Forbidden, "forbidden"),
    (Condition::Gone, "gone"),
    (Condition::InternalServerError, "internal-server-error"),
    (Condition::ItemNotFound, "item-not-found"),
    (Condition::JidMalformed, "jid-malformed"),
    (Condition::NotAcceptable, "not-acceptable"),
    (Condition::NotAllowed, "not-allowed"),
    (Condition::NotAuthorized, "not-authorized"),
    (Condition::PolicyViolation, "policy-violation"),
    (Condition::RecipientUnavailable, "recipient-unavailable"),
    (Condition::Redirect, "redirect"),
    (Condition::RegistrationRequired, "registration-required"),
    (Condition::RemoteServerNotFound, "remote-server-not-found"),
    (Condition::RemoteServerTimeout, "remote-server-timeout"),
    (Condition::ResourceConstraint, "resource-constraint"),
    (Condition::ServiceUnavailable, "service-unavailable"),
    (Condition::SubscriptionRequired, "subscription-required"),
    (Condition::UndefinedCondition, "undefined-condition"),
    (Condition::UnexpectedRequest, "unexpected-request"),
];

impl Condition {
    /// Every condition, in RFC 6120 order.
    pub fn all() -> impl Iterator<Item = Condition> {
        NAMES.iter().map(|(c, _)| *c)
    }

    /// The element name XMPP uses (`item-not-found`).
    pub fn name(self) -> &'static str {
        NAMES
            .iter()
            .find(|(c, _)| *c == self)
            .map(|(_, n)| *n)
            .unwrap_or("undefined-condition")
    }

    /// The condition an XMPP element name stands for.
    pub fn from_name(name: &str) -> Option<Condition> {
        NAMES.iter().find(|(_, n)| *n == name).map(|(c, _)| *c)
    }

    /// The error type RFC 6120 §8.3.3 gives the condition.
    pub fn error_type(self) -> ErrorType {
        use Condition::*;
        match self {
            BadRequest | JidMalformed | NotAcceptable | PolicyViolation | Redirect | Gone => {
                ErrorType::Modify
            }
            NotAuthorized | Forbidden | RegistrationRequired | SubscriptionRequired => {
                ErrorType::Auth
            }
            RecipientUnavailable | RemoteServerTimeout | ResourceConstraint | UnexpectedRequest => {
                ErrorType::Wait
            }
            _ => ErrorType::Cancel,
        }
    }

    /// RFC 7247 §7.1: the SIP status a gateway returns for this condition.
    pub fn to_sip(self) -> u16 {
        use Condition::*;
        match self {
            BadRequest => 400,
            Conflict => 400,
            FeatureNotImplemented => 405,
            Forbidden => 403,
            Gone => 410,
            InternalServerError => 500,
            ItemNotFound => 404,
            JidMalformed => 400,
            NotAcceptable => 406,
            NotAllowed => 403,
            NotAuthorized => 401,
            PolicyViolation => 403,
            RecipientUnavailable => 480,
            Redirect => 302,
            RegistrationRequired => 400,
            RemoteServerNotFound => 404,
            RemoteServerTimeout => 408,
            ResourceConstraint => 500,
            ServiceUnavailable => 503,
            SubscriptionRequired => 400,
            UndefinedCondition => 400,
            UnexpectedRequest => 491,
        }
    }

    /// RFC 7247 §7.2: the XMPP condition for a SIP final status (3xx–6xx).
    /// A 2xx or 1xx is not an error; it maps to `undefined-condition`.
    pub fn from_sip(status: u16) -> Condition {
        use Condition::*;
        let exact = match status {
            400 | 402 | 415 | 416 | 420 | 421 | 423 | 493 | 513 => Some(BadRequest),
            401 | 407 => Some(NotAuthorized),
            403 => Some(Forbidden),
            404 | 481 | 484 | 485 | 604 => Some(ItemNotFound),
            405 | 501 => Some(FeatureNotImplemented),
            406 | 482 | 483 | 488 | 505 | 606 => Some(NotAcceptable),
            408 | 504 => Some(RemoteServerTimeout),
            410 => Some(Gone),
            413 => Some(PolicyViolation),
            414 => Some(JidMalformed),
            480 | 486 => Some(RecipientUnavailable),
            487 | 503 | 600 | 603 => Some(ServiceUnavailable),
            491 => Some(UnexpectedRequest),
            500 => Some(InternalServerError),
            502 => Some(RemoteServerNotFound),
            _ => None,
        };
        exact.unwrap_or(match status / 100 {
            3 => Redirect,
            4 => BadRequest,
            5 => InternalServerError,
            6 => ServiceUnavailable,
            _ => UndefinedCondition,
        })
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A delivery failure: the condition and, when known, words for a person.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{condition}{}", text.as_deref().map(|t| format!(": {t}")).unwrap_or_default())]
pub struct Failure {
    /// What went wrong.
    pub condition: Condition,
    /// Why, in words (logged and passed to the sender).
    pub text: Option<String>,
}

impl Failure {
    /// A failure with a reason.
    pub fn new(condition: Condition, text: impl Into<String>) -> Failure {
        Failure {
            condition,
            text: Some(text.into()),
        }
    }

    /// A failure with no words.
    pub fn bare(condition: Condition) -> Failure {
        Failure {
            condition,
            text: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        assert_eq!(Condition::all().count(), 22);
        for c in Condition::all() {
            assert_eq!(Condition::from_name(c.name()), Some(c));
        }
        assert_eq!(Condition::from_name("no-such-thing"), None);
    }

    #[test]
    fn rfc7247_tables() {
        // §7.1, every row.
        let xmpp_to_sip = [
            ("bad-request", 400),
            ("conflict", 400),
            ("feature-not-implemented", 405),
            ("forbidden", 403),
            ("gone", 410),
            ("internal-server-error", 500),
            ("item-not-found", 404),
            ("jid-malformed", 400),
            ("not-acceptable", 406),
            ("not-allowed", 403),
            ("not-authorized", 401),
            ("policy-violation", 403),
            ("recipient-unavailable", 480),
            ("redirect", 302),
            ("registration-required", 400),
            ("remote-server-not-found", 404),
            ("remote-server-timeout", 408),
            ("resource-constraint", 500),
            ("service-unavailable", 503),
            ("subscription-required", 400),
            ("undefined-condition", 400),
            ("unexpected-request", 491),
        ];
        for (name, code) in xmpp_to_sip {
            assert_eq!(Condition::from_name(name).unwrap().to_sip(), code, "{name}");
        }
        // §7.2, a row of every class and the special ones.
        let sip_to_xmpp = [
            (302, "redirect"),
            (400, "bad-request"),
            (401, "not-authorized"),
            (403, "forbidden"),
            (404, "item-not-found"),
            (405, "feature-not-implemented"),
            (406, "not-acceptable"),
            (407, "not-authorized"),
            (408, "remote-server-timeout"),
            (410, "gone"),
            (413, "policy-violation"),
            (414, "jid-malformed"),
            (480, "recipient-unavailable"),
            (481, "item-not-found"),
            (486, "recipient-unavailable"),
            (488, "not-acceptable"),
            (491, "unexpected-request"),
            (499, "bad-request"),
            (500, "internal-server-error"),
            (501, "feature-not-implemented"),
            (502, "remote-server-not-found"),
            (503, "service-unavailable"),
            (504, "remote-server-timeout"),
            (599, "internal-server-error"),
            (600, "service-unavailable"),
            (603, "service-unavailable"),
            (604, "item-not-found"),
            (606, "not-acceptable"),
        ];
        for (code, name) in sip_to_xmpp {
            assert_eq!(Condition::from_sip(code).name(), name, "{code}");
        }
    }

    #[test]
    fn failures_print_their_reason() {
        let f = Failure::new(Condition::PolicyViolation, "domain denied");
        assert_eq!(f.to_string(), "policy-violation: domain denied");
        assert_eq!(Failure::bare(Condition::Gone).to_string(), "gone");
        assert_eq!(Condition::PolicyViolation.error_type(), ErrorType::Modify);
    }
}
