//! Digest authentication for SIP (RFC 3261 §22, with the algorithms of
//! RFC 7616 that RFC 8760 brings to SIP: MD5, SHA-256, SHA-512-256, and
//! their `-sess` forms).
//!
//! - Parley never keeps a password: a user is stored as one HA1 value per
//!   algorithm, `H(username:realm:password)`.
//! - Nonces are stateless: they carry their issue time and an HMAC over it,
//!   so any nonce Parley made is recognised without a table, and an old one
//!   is answered with `stale=true`.
//! - Replays are refused with a bounded table of the highest nonce-count
//!   seen per nonce ([`NonceCounts`]).
//! - Responses are compared in constant time.
//!
//! Nothing here reads a clock: the time is an argument.

use std::collections::{HashMap, VecDeque};

use ring::hmac;

use super::sip::typed::Auth;

/// A digest algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// MD5 (RFC 3261; kept for the clients that know nothing else).
    Md5,
    /// SHA-256 (RFC 7616, RFC 8760).
    Sha256,
    /// SHA-512/256 (RFC 7616, RFC 8760).
    Sha512_256,
}

impl Algorithm {
    /// Every algorithm, strongest first: the order challenges are offered in.
    pub const ALL: [Algorithm; 3] = [Algorithm::Sha512_256, Algorithm::Sha256, Algorithm::Md5];

    /// The name in the `algorithm` parameter.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha256 => "SHA-256",
            Algorithm::Sha512_256 => "SHA-512-256",
        }
    }

    /// Reads an `algorithm` value (without case); the flag is true for the
    /// `-sess` forms.
    pub fn parse(name: &str) -> Option<(Algorithm, bool)> {
        let (base, sess) = match name.len().checked_sub(5) {
            Some(i) if name.is_char_boundary(i) && name[i..].eq_ignore_ascii_case("-sess") => {
                (&name[..i], true)
            }
            _ => (name, false),
        };
        Algorithm::ALL
            .into_iter()
            .find(|a| a.name().eq_ignore_ascii_case(base))
            .map(|a| (a, sess))
    }

    /// `H(data)` in lower-case hex.
    pub fn hash(self, data: &[u8]) -> String {
        match self {
            Algorithm::Md5 => {
                use md5::Digest;
                hex(&md5::Md5::digest(data))
            }
            Algorithm::Sha256 => hex(ring::digest::digest(&ring::digest::SHA256, data).as_ref()),
            Algorithm::Sha512_256 => {
                hex(ring::digest::digest(&ring::digest::SHA512_256, data).as_ref())
            }
        }
    }

    /// `H(username:realm:password)`, what a user is stored as.
    pub fn ha1(self, username: &str, realm: &str, password: &str) -> String {
        self.hash(format!("{username}:{realm}:{password}").as_bytes())
    }
}

/// Lower-case hexadecimal of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

/// Equality that takes the same time wherever the inputs differ (only
/// their lengths show), by `subtle`.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.ct_eq(b).into()
}

/// The credentials in an Authorization or Proxy-Authorization value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// `username`.
    pub username: String,
    /// `realm`.
    pub realm: String,
    /// `nonce`.
    pub nonce: String,
    /// `uri` (the digest-uri).
    pub uri: String,
    /// `response`.
    pub response: String,
    /// `algorithm` (MD5 when absent) and whether it is a `-sess` form.
    pub algorithm: (Algorithm, bool),
    /// `cnonce`.
    pub cnonce: Option<String>,
    /// `nc`, read as hex.
    pub nc: Option<u32>,
    /// `qop`.
    pub qop: Option<String>,
    /// `opaque`.
    pub opaque: Option<String>,
}

/// Why credentials cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialsError {
    /// Not the Digest scheme.
    #[error("not Digest credentials")]
    NotDigest,
    /// A required parameter is absent.
    #[error("credentials without {0}")]
    Missing(&'static str),
    /// An algorithm Parley does not know.
    #[error("unknown digest algorithm {0}")]
    Algorithm(String),
    /// A parameter with a bad value.
    #[error("bad {0} in the credentials")]
    Bad(&'static str),
}

impl Credentials {
    /// Reads Digest credentials from a parsed header value.
    pub fn from_auth(auth: &Auth<'_>) -> Result<Credentials, CredentialsError> {
        if !auth.scheme.eq_ignore_ascii_case("Digest") {
            return Err(CredentialsError::NotDigest);
        }
        let need = |name: &'static str| {
            auth.param(name)
                .map(|v| v.into_owned())
                .ok_or(CredentialsError::Missing(name))
        };
        let algorithm = match auth.param("algorithm") {
            None => (Algorithm::Md5, false),
            Some(a) => Algorithm::parse(&a).ok_or_else(|| CredentialsError::Algorithm(a.into()))?,
        };
        let nc = match auth.param("nc") {
            None => None,
            Some(v) if v.len() == 8 => {
                Some(u32::from_str_radix(&v, 16).map_err(|_| CredentialsError::Bad("nc"))?)
            }
            Some(_) => return Err(CredentialsError::Bad("nc")),
        };
        Ok(Credentials {
            username: need("username")?,
            realm: need("realm")?,
            nonce: need("nonce")?,
            uri: need("uri")?,
            response: need("response")?,
            algorithm,
            cnonce: auth.param("cnonce").map(|v| v.into_owned()),
            nc,
            qop: auth.param("qop").map(|v| v.into_owned()),
            opaque: auth.param("opaque").map(|v| v.into_owned()),
        })
    }

    /// The response a client knowing `ha1` (for this algorithm) computes
    /// for `method`, per RFC 7616 §3.4.1 (qop=auth) or RFC 2069 (no qop).
    pub fn expected(&self, method: &str, ha1: &str) -> Option<String> {
        let (alg, sess) = self.algorithm;
        let ha1 = if sess {
            alg.hash(format!("{ha1}:{}:{}", self.nonce, self.cnonce.as_deref()?).as_bytes())
        } else {
            ha1.to_string()
        };
        let ha2 = alg.hash(format!("{method}:{}", self.uri).as_bytes());
        let data = match self.qop.as_deref() {
            Some(q) if q.eq_ignore_ascii_case("auth") => format!(
                "{ha1}:{}:{:08x}:{}:auth:{ha2}",
                self.nonce,
                self.nc?,
                self.cnonce.as_deref()?
            ),
            Some(_) => return None, // auth-int is not offered
            None => format!("{ha1}:{}:{ha2}", self.nonce),
        };
        Some(alg.hash(data.as_bytes()))
    }

    /// True when the response is right for `method` and the stored `ha1`.
    pub fn verify(&self, method: &str, ha1: &str) -> bool {
        self.expected(method, ha1).is_some_and(|e| {
            constant_time_eq(e.as_bytes(), self.response.to_ascii_lowercase().as_bytes())
        })
    }
}

/// The client's side (RFC 7616 §3.4): the `Authorization` value that
/// answers the first of `challenges` whose algorithm Parley knows, for
/// `method` on `uri`, with qop=auth, `cnonce` and nonce-count 1.
/// `None` when no challenge is a usable Digest one.
pub fn answer<'a>(
    challenges: impl IntoIterator<Item = &'a str>,
    method: &str,
    uri: &str,
    user: &str,
    password: &str,
    cnonce: &str,
) -> Option<String> {
    let (auth, algorithm) = challenges.into_iter().find_map(|v| {
        let a = Auth::parse(v.as_bytes(), "WWW-Authenticate").ok()?;
        if !a.scheme.eq_ignore_ascii_case("Digest") {
            return None;
        }
        let alg = match a.param("algorithm") {
            None => Algorithm::Md5,
            Some(x) => match Algorithm::parse(&x)? {
                (alg, false) => alg,
                (_, true) => return None,
            },
        };
        Some((a, alg))
    })?;
    let realm = auth.param("realm")?.into_owned();
    let nonce = auth.param("nonce")?.into_owned();
    let creds = Credentials {
        username: user.to_string(),
        realm: realm.clone(),
        nonce: nonce.clone(),
        uri: uri.to_string(),
        response: String::new(),
        algorithm: (algorithm, false),
        cnonce: Some(cnonce.to_string()),
        nc: Some(1),
        qop: Some("auth".into()),
        opaque: None,
    };
    let response = creds.expected(method, &algorithm.ha1(user, &realm, password))?;
    Some(format!(
        "Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{response}\", algorithm={}, qop=auth, nc=00000001, cnonce=\"{cnonce}\"",
        algorithm.name()
    ))
}

/// What a nonce is worth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceState {
    /// Made by this server and still fresh.
    Fresh,
    /// Made by this server but too old: challenge again with `stale=true`.
    Stale,
    /// Not made by this server (or altered).
    Forged,
}

/// Makes and checks stateless nonces: `hex(time) . hex(salt) . hex(mac)`,
/// where mac is an HMAC-SHA-256 over the time, the salt and the realm.
#[derive(Debug)]
pub struct Nonces {
    key: hmac::Key,
    lifetime_secs: u64,
}

impl Nonces {
    /// Nonces keyed by `secret`, fresh for `lifetime_secs`.
    pub fn new(secret: &[u8], lifetime_secs: u64) -> Nonces {
        Nonces {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
            lifetime_secs,
        }
    }

    fn mac(&self, time: u64, salt: u64, realm: &str) -> String {
        let mut data = Vec::with_capacity(16 + realm.len());
        data.extend_from_slice(&time.to_be_bytes());
        data.extend_from_slice(&salt.to_be_bytes());
        data.extend_from_slice(realm.as_bytes());
        hex(&hmac::sign(&self.key, &data).as_ref()[..16])
    }

    /// A nonce for `realm` issued at `now` (seconds); `salt` makes each one
    /// unique (the caller draws it at random).
    pub fn issue(&self, now: u64, salt: u64, realm: &str) -> String {
        format!("{now:016x}{salt:016x}{}", self.mac(now, salt, realm))
    }

    /// Checks a nonce received for `realm` at `now`.
    pub fn check(&self, nonce: &str, now: u64, realm: &str) -> NonceState {
        if nonce.len() != 64 || !nonce.is_ascii() {
            return NonceState::Forged;
        }
        let (Ok(time), Ok(salt)) = (
            u64::from_str_radix(&nonce[..16], 16),
            u64::from_str_radix(&nonce[16..32], 16),
        ) else {
            return NonceState::Forged;
        };
        if !constant_time_eq(
            self.mac(time, salt, realm).as_bytes(),
            &nonce.as_bytes()[32..],
        ) {
            return NonceState::Forged;
        }
        if time > now.saturating_add(5) || now - time.min(now) > self.lifetime_secs {
            NonceState::Stale
        } else {
            NonceState::Fresh
        }
    }
}

/// A challenge header value (WWW-Authenticate or Proxy-Authenticate).
pub fn challenge(realm: &str, nonce: &str, algorithm: Algorithm, stale: bool) -> String {
    let mut s = format!(
        "Digest realm=\"{realm}\", nonce=\"{nonce}\", algorithm={}, qop=\"auth\"",
        algorithm.name()
    );
    if stale {
        s.push_str(", stale=true");
    }
    s
}

/// The highest nonce-count seen for each nonce, for at most `capacity`
/// nonces (the oldest are forgotten first, and a forgotten nonce is
/// refused, so forgetting never lets a replay through).
#[derive(Debug)]
pub struct NonceCounts {
    seen: HashMap<String, u32>,
    order: VecDeque<String>,
    capacity: usize,
}

impl NonceCounts {
    /// An empty table for `capacity` nonces.
    pub fn new(capacity: usize) -> NonceCounts {
        NonceCounts {
            seen: HashMap::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    /// Starts tracking a nonce just issued.
    pub fn issued(&mut self, nonce: &str) {
        if self.seen.len() >= self.capacity {
            while let Some(old) = self.order.pop_front() {
                if self.seen.remove(&old).is_some() {
                    break;
                }
            }
        }
        if self.seen.insert(nonce.to_string(), 0).is_none() {
            self.order.push_back(nonce.to_string());
        }
    }

    /// Records the use of `nonce` with count `nc`; false when the count is
    /// not higher than one seen before or the nonce is not tracked.
    pub fn accept(&mut self, nonce: &str, nc: u32) -> bool {
        match self.seen.get_mut(nonce) {
            Some(last) if nc > *last => {
                *last = nc;
                true
            }
            _ => false,
        }
    }

    /// Nonces tracked.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// True when none is tracked.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(value: &str) -> Credentials {
        let auth = Auth::parse(value.as_bytes(), "Authorization").unwrap();
        Credentials::from_auth(&auth).unwrap()
    }

    #[test]
    fn the_client_answer_verifies_for_each_algorithm_parley_offers() {
        for alg in [Algorithm::Sha512_256, Algorithm::Sha256, Algorithm::Md5] {
            let challenge = challenge(
                "intra.example.com",
                "dcd98b7102dd2f0e8b11d0f600bfb0c093",
                alg,
                false,
            );
            let value = answer(
                [r#"Basic realm="x""#, challenge.as_str()],
                "AUTH",
                "msrps://alice@intra.example.com;tcp",
                "alice",
                "secret",
                "0a4f113b",
            )
            .expect("a Digest challenge");
            let c = creds(&value);
            assert_eq!(c.algorithm.0, alg);
            assert!(c.verify("AUTH", &alg.ha1("alice", "intra.example.com", "secret")));
            assert!(!c.verify("AUTH", &alg.ha1("alice", "intra.example.com", "wrong")));
        }
        assert_eq!(
            answer([r#"Basic realm="x""#], "AUTH", "u", "a", "p", "c"),
            None
        );
    }

    #[test]
    fn rfc2617_md5_example() {
        let c = creds(
            r#"Digest username="Mufasa", realm="testrealm@host.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", uri="/dir/index.html", qop=auth, nc=00000001, cnonce="0a4f113b", response="6629fae49393a05397450978507c4ef1", opaque="5ccc069c403ebaf9f0171e9517f40e41""#,
        );
        let ha1 = Algorithm::Md5.ha1("Mufasa", "testrealm@host.com", "Circle Of Life");
        assert!(c.verify("GET", &ha1));
        assert!(!c.verify("POST", &ha1));
        let wrong = Algorithm::Md5.ha1("Mufasa", "testrealm@host.com", "circle of life");
        assert!(!c.verify("GET", &wrong));
    }

    #[test]
    fn rfc7616_md5_and_sha256_examples() {
        let base = r#"Digest username="Mufasa", realm="http-auth@example.org", uri="/dir/index.html", qop=auth, nc=00000001, cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ", nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS""#;
        for (alg, response) in [
            (Algorithm::Md5, "8ca523f5e9506fed4657c9700eebdbec"),
            (
                Algorithm::Sha256,
                "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
            ),
        ] {
            let c = creds(&format!(
                "{base}, algorithm={}, response=\"{response}\"",
                alg.name()
            ));
            assert_eq!(c.algorithm, (alg, false));
            let ha1 = alg.ha1("Mufasa", "http-auth@example.org", "Circle of Life");
            assert!(c.verify("GET", &ha1), "{}", alg.name());
        }
    }

    #[test]
    fn sha512_256_and_sess_forms_round_trip() {
        for alg in Algorithm::ALL {
            for sess in [false, true] {
                let name = if sess {
                    format!("{}-sess", alg.name())
                } else {
                    alg.name().to_string()
                };
                let ha1 = alg.ha1("alice", "localhost", "secret");
                let mut c = Credentials {
                    username: "alice".into(),
                    realm: "localhost".into(),
                    nonce: "n".into(),
                    uri: "sip:localhost".into(),
                    response: String::new(),
                    algorithm: Algorithm::parse(&name).unwrap(),
                    cnonce: Some("c".into()),
                    nc: Some(1),
                    qop: Some("auth".into()),
                    opaque: None,
                };
                c.response = c.expected("REGISTER", &ha1).unwrap();
                let len = if alg == Algorithm::Md5 { 32 } else { 64 };
                assert_eq!(c.response.len(), len);
                assert!(c.verify("REGISTER", &ha1));
                c.response = c.response.to_uppercase();
                assert!(c.verify("REGISTER", &ha1), "hex case does not matter");
                assert!(!c.verify("MESSAGE", &ha1));
            }
        }
        // Known value: SHA-512/256 of the empty string (FIPS 180-4).
        assert_eq!(
            Algorithm::Sha512_256.hash(b""),
            "c672b8d1ef56ed28ab87c3622c5114069bdd3ad7b8f9737498d0c01ecef0967a"
        );
    }

    #[test]
    fn bad_credentials_are_named() {
        let auth = Auth::parse(b"Basic realm=\"x\"", "Authorization").unwrap();
        assert_eq!(
            Credentials::from_auth(&auth),
            Err(CredentialsError::NotDigest)
        );
        let auth = Auth::parse(
            br#"Digest username="a", realm="r", nonce="n", uri="u""#,
            "Authorization",
        )
        .unwrap();
        assert_eq!(
            Credentials::from_auth(&auth),
            Err(CredentialsError::Missing("response"))
        );
        let auth = Auth::parse(
            br#"Digest username="a", realm="r", nonce="n", uri="u", response="x", algorithm=SHA-1"#,
            "Authorization",
        )
        .unwrap();
        assert!(matches!(
            Credentials::from_auth(&auth),
            Err(CredentialsError::Algorithm(_))
        ));
        let auth = Auth::parse(
            br#"Digest username="a", realm="r", nonce="n", uri="u", response="x", nc=zz"#,
            "Authorization",
        )
        .unwrap();
        assert_eq!(
            Credentials::from_auth(&auth),
            Err(CredentialsError::Bad("nc"))
        );
    }

    #[test]
    fn nonces_are_recognised_and_age() {
        let n = Nonces::new(b"secret", 300);
        let nonce = n.issue(1_000, 42, "localhost");
        assert_eq!(n.check(&nonce, 1_000, "localhost"), NonceState::Fresh);
        assert_eq!(n.check(&nonce, 1_300, "localhost"), NonceState::Fresh);
        assert_eq!(n.check(&nonce, 1_301, "localhost"), NonceState::Stale);
        assert_eq!(n.check(&nonce, 1_000, "example.com"), NonceState::Forged);
        let other = Nonces::new(b"other", 300);
        assert_eq!(other.check(&nonce, 1_000, "localhost"), NonceState::Forged);
        let mut altered = nonce.clone().into_bytes();
        altered[3] = if altered[3] == b'0' { b'1' } else { b'0' };
        let altered = String::from_utf8(altered).unwrap();
        assert_eq!(n.check(&altered, 1_000, "localhost"), NonceState::Forged);
        assert_eq!(n.check("short", 1_000, "localhost"), NonceState::Forged);
        assert_eq!(
            n.check(&"é".repeat(32), 1_000, "localhost"),
            NonceState::Forged
        );
        assert_ne!(nonce, n.issue(1_000, 43, "localhost"));
    }

    #[test]
    fn nonce_counts_refuse_replays_within_a_bound() {
        let mut c = NonceCounts::new(2);
        c.issued("a");
        assert!(c.accept("a", 1));
        assert!(!c.accept("a", 1), "replay");
        assert!(c.accept("a", 3));
        assert!(!c.accept("a", 2));
        assert!(!c.accept("unknown", 1));
        c.issued("b");
        c.issued("c");
        assert_eq!(c.len(), 2);
        assert!(!c.accept("a", 4), "forgotten nonces are refused");
        assert!(c.accept("c", 1));
    }

    #[test]
    fn challenge_lists_the_parameters() {
        assert_eq!(
            challenge("localhost", "abc", Algorithm::Sha256, true),
            "Digest realm=\"localhost\", nonce=\"abc\", algorithm=SHA-256, qop=\"auth\", stale=true"
        );
        assert_eq!(
            Algorithm::parse("sha-512-256-SESS"),
            Some((Algorithm::Sha512_256, true))
        );
        assert_eq!(Algorithm::parse("-sess"), None);
    }
}
