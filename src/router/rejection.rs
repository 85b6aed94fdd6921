//! The one way a service below the application says "no": a SIP status,
//! its reason phrase, and the policy's reason when the domain policy
//! decided. The registrar, proxy, pager, presence agent and the bridges all
//! report refusals as a [`Rejection`]; the transport turns it into a final
//! response (with a `Warning` naming the policy reason), an adapter into
//! the RFC 7247 §7 condition.

use std::borrow::Cow;

use parley_adapter::{Condition, Failure};

use super::policy::Refusal;

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The SIP status (4xx, 5xx or 6xx).
    pub status: u16,
    /// The reason phrase.
    pub reason: Cow<'static, str>,
    /// The policy's reason, when the domain policy refused.
    pub refusal: Option<Refusal>,
}

impl Rejection {
    /// A refusal with a fixed reason phrase.
    pub const fn new(status: u16, reason: &'static str) -> Rejection {
        Rejection {
            status,
            reason: Cow::Borrowed(reason),
            refusal: None,
        }
    }

    /// A refusal whose reason phrase is made at run time.
    pub fn text(status: u16, reason: impl Into<String>) -> Rejection {
        Rejection {
            status,
            reason: Cow::Owned(reason.into()),
            refusal: None,
        }
    }

    /// The header fields that go with the response: the policy's reason in
    /// a `Warning` (RFC 3261 §20.43, code 399), and `Retry-After` for a
    /// rate limit.
    pub fn extra(&self) -> Vec<(&'static str, String)> {
        let mut extra = Vec::new();
        if let Some(r) = self.refusal {
            extra.push(("Warning", format!("399 parley \"{}\"", r.text())));
            if r == Refusal::RateLimited {
                extra.push(("Retry-After", "1".to_string()));
            }
        }
        // A service that will be back (the store unreachable): try again
        // in a few seconds (RFC 3261 §21.5.4).
        if self.status == 503 && self.refusal.is_none() {
            extra.push(("Retry-After", "5".to_string()));
        }
        extra
    }

    /// The same refusal for another network (RFC 7247 §7, SIP to XMPP).
    pub fn failure(&self) -> Failure {
        match self.refusal {
            Some(r) => r.failure(),
            None => Failure::new(
                Condition::from_sip(self.status),
                format!("SIP {} {}", self.status, self.reason),
            ),
        }
    }
}

impl From<Refusal> for Rejection {
    fn from(r: Refusal) -> Rejection {
        let (status, phrase) = r.sip();
        Rejection {
            status,
            reason: Cow::Borrowed(phrase),
            refusal: Some(r),
        }
    }
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status, self.reason)?;
        if let Some(r) = self.refusal {
            write!(f, " ({})", r.name())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_policy_refusal_carries_its_status_warning_and_condition() {
        let r = Rejection::from(Refusal::RateLimited);
        assert_eq!((r.status, &*r.reason), (503, "Service Unavailable"));
        let extra = r.extra();
        assert!(extra[0].1.contains("Too many messages"));
        assert_eq!(extra[1], ("Retry-After", "1".to_string()));
        assert_eq!(r.failure().condition, Condition::ResourceConstraint);
        assert_eq!(r.to_string(), "503 Service Unavailable (rate-limited)");
    }

    #[test]
    fn a_plain_rejection_maps_by_status() {
        let r = Rejection::new(404, "Not Found");
        assert!(r.extra().is_empty());
        assert_eq!(r.failure().condition, Condition::ItemNotFound);
    }
}
