//! TLS for SIP over TLS: the certificate from the config, or one Parley
//! makes with rcgen on first start and keeps under the state directory, so
//! the embedded default runs as it is. ring is the one crypto provider.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};

use rustls::sign::CertifiedKey;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::{CertFiles, Config};

/// Why the TLS material could not be loaded or made: what was being done,
/// and the cause.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {cause}")]
pub struct TlsError {
    what: String,
    cause: String,
}

/// Names what was being done when an error happened.
trait Context<T> {
    fn context(self, what: &str) -> Result<T, TlsError>;
    fn with_context(self, what: impl FnOnce() -> String) -> Result<T, TlsError>;
}

impl<T, E: std::fmt::Display> Context<T> for Result<T, E> {
    fn context(self, what: &str) -> Result<T, TlsError> {
        self.with_context(|| what.to_string())
    }

    fn with_context(self, what: impl FnOnce() -> String) -> Result<T, TlsError> {
        self.map_err(|e| TlsError {
            what: what(),
            cause: e.to_string(),
        })
    }
}

/// Makes a self-signed certificate for `localhost` and the loopback
/// addresses when none exists yet.
fn make_self_signed(files: &CertFiles, config: &Config) -> Result<(), TlsError> {
    if files.cert.exists() && files.key.exists() {
        return Ok(());
    }
    let dir = files.cert.parent().unwrap_or(Path::new("."));
    crate::sys::private_dir(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    // The certificate names the server: its domains (the first as the
    // subject) and the addresses it listens on.
    let mut names: Vec<String> = config.domains.clone();
    for l in &config.sip.listen {
        let ip = l.address.ip();
        if !ip.is_unspecified() {
            names.push(ip.to_string());
        }
    }
    for n in ["localhost", "127.0.0.1", "::1"] {
        names.push(n.to_string());
    }
    let mut seen = std::collections::HashSet::new();
    names.retain(|n| seen.insert(n.to_ascii_lowercase()));
    let first = names.first().cloned().unwrap_or_else(|| "localhost".into());
    let mut params =
        rcgen::CertificateParams::new(names).context("names the certificate cannot carry")?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, first);
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "Parley");
    let key = rcgen::KeyPair::generate().context("cannot make a key")?;
    let cert = params
        .self_signed(&key)
        .context("cannot make a certificate")?;
    std::fs::write(&files.cert, cert.pem())
        .with_context(|| format!("cannot write {}", files.cert.display()))?;
    crate::sys::write_private(&files.key, key.serialize_pem().as_bytes())
        .with_context(|| format!("cannot write {}", files.key.display()))?;
    tracing::info!(cert = %files.cert.display(), "made a self-signed TLS certificate");
    Ok(())
}

/// The rustls server configuration for the SIP TLS listeners.
pub fn server_config(config: &Config) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?;
    // With trust anchors, a peer server may authenticate with its own
    // certificate (mutual TLS, RFC 5922 §7.4); clients without one are
    // still served.
    let tls = match trust_anchors(config)? {
        Some(roots) => {
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .allow_unauthenticated()
            .build()
            .context("client certificate verifier")?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    }
    .with_cert_resolver(certificates(config)?);
    Ok(Arc::new(tls))
}

/// The certificate Parley presents, which a reload replaces in place:
/// connections made after it get the new one, those open keep theirs.
#[derive(Debug)]
struct Certificates(RwLock<Arc<CertifiedKey>>);

impl rustls::server::ResolvesServerCert for Certificates {
    fn resolve(&self, _: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.0.read().ok().map(|k| k.clone())
    }
}

/// One [`Certificates`] per certificate and key file pair, shared by the
/// SIP, XMPP and MSRP listeners that present them.
fn presented() -> &'static Presented {
    static PRESENTED: OnceLock<Presented> = OnceLock::new();
    PRESENTED.get_or_init(Mutex::default)
}

/// The certificates presented, by their files.
type Presented = Mutex<HashMap<(PathBuf, PathBuf), Arc<Certificates>>>;

/// The certificate and key of `config`, read now, checked to match.
fn certified_key(config: &Config) -> Result<Arc<CertifiedKey>, TlsError> {
    let (certs, key) = own_certificate(config)?;
    let files = config.cert_files();
    let signing = rustls::crypto::ring::default_provider()
        .key_provider
        .load_private_key(key)
        .with_context(|| format!("unusable key in {}", files.key.display()))?;
    let certified = CertifiedKey::new(certs, signing);
    certified.keys_match().with_context(|| {
        format!(
            "{} and {} do not match",
            files.cert.display(),
            files.key.display()
        )
    })?;
    Ok(Arc::new(certified))
}

/// The resolver for the files of `config`, holding what they hold now.
fn certificates(config: &Config) -> Result<Arc<Certificates>, TlsError> {
    let key = certified_key(config)?;
    let files = config.cert_files();
    let mut map = presented().lock().unwrap_or_else(PoisonError::into_inner);
    let entry = map
        .entry((files.cert, files.key))
        .or_insert_with(|| Arc::new(Certificates(RwLock::new(key.clone()))));
    *entry.0.write().unwrap_or_else(PoisonError::into_inner) = key;
    Ok(entry.clone())
}

/// Reads the certificate and key files of `config` again and presents
/// them from now on; true when they changed. A file that does not read
/// or a key that does not match leaves the one in use in place.
pub fn reload_certificates(config: &Config) -> Result<bool, TlsError> {
    let files = config.cert_files();
    let map = presented().lock().unwrap_or_else(PoisonError::into_inner);
    let Some(current) = map.get(&(files.cert.clone(), files.key.clone())) else {
        return Ok(false);
    };
    let key = certified_key(config)?;
    let mut held = current.0.write().unwrap_or_else(PoisonError::into_inner);
    let changed = held.cert != key.cert;
    *held = key;
    Ok(changed)
}

/// The certificate chain and key Parley presents (made when missing).
fn own_certificate(
    config: &Config,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    let files = config.cert_files();
    if files.self_made {
        make_self_signed(&files, config)?;
    }
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .with_context(|| format!("cannot read {}", files.cert.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("bad certificate in {}", files.cert.display()))?;
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .with_context(|| format!("bad key in {}", files.key.display()))?;
    Ok((certs, key))
}

/// The trust anchors in `sip.tls.ca_file`, when configured.
fn trust_anchors(config: &Config) -> Result<Option<rustls::RootCertStore>, TlsError> {
    let Some(file) = &config.sip.tls.ca_file else {
        return Ok(None);
    };
    roots_from(file).map(Some)
}

/// The trust anchors in a PEM file.
fn roots_from(file: &std::path::Path) -> Result<rustls::RootCertStore, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(file)
        .with_context(|| format!("cannot read {}", file.display()))?
    {
        let cert = cert.with_context(|| format!("bad certificate in {}", file.display()))?;
        roots
            .add(cert)
            .with_context(|| format!("unusable trust anchor in {}", file.display()))?;
    }
    Ok(roots)
}

/// A rustls client configuration trusting the anchors in `ca_file` (the
/// server's certificate must name the host it is asked for): for links
/// such as an IRC network's. With `own` (the config), Parley presents its
/// own certificate too (SASL EXTERNAL); without, none.
pub fn verifying_client_config(
    ca_file: &std::path::Path,
    own: Option<&Config>,
) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_root_certificates(roots_from(ca_file)?);
    let cfg = match own {
        Some(config) => {
            let (certs, key) = own_certificate(config)?;
            builder
                .with_client_auth_cert(certs, key)
                .context("certificate and key do not match")?
        }
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(cfg))
}

/// True when `cert` is valid for `domain` (a dNSName, RFC 5922 §7.1):
/// the check the adapter API carries for SIP and XMPP alike.
pub use parley_adapter::certificate_names;

/// The rustls client configuration for connections Parley opens, trusting
/// the anchors in `sip.tls.ca_file` and presenting Parley's own
/// certificate (mutual TLS between domains); `None` without anchors.
pub fn client_config(config: &Config) -> Result<Option<Arc<rustls::ClientConfig>>, TlsError> {
    let Some(roots) = trust_anchors(config)? else {
        return Ok(None);
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_root_certificates(roots);
    let cfg = match own_certificate(config) {
        Ok((certs, key)) => builder
            .with_client_auth_cert(certs, key)
            .context("certificate and key do not match")?,
        Err(_) => builder.with_no_client_auth(),
    };
    Ok(Some(Arc::new(cfg)))
}

/// The rustls client configuration for XMPP s2s links authenticated by
/// Server Dialback (XEP-0220): the stream is encrypted, but the peer's
/// name is proved through DNS and the dialback key, not its certificate,
/// so any certificate is accepted here. Parley presents its own.
pub fn dialback_client_config(config: &Config) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)));
    let cfg = match own_certificate(config) {
        Ok((certs, key)) => builder
            .with_client_auth_cert(certs, key)
            .context("certificate and key do not match")?,
        Err(_) => builder.with_no_client_auth(),
    };
    Ok(Arc::new(cfg))
}

/// Accepts any server certificate, still checking the handshake
/// signatures (the link is encrypted; the name is proved by dialback).
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
