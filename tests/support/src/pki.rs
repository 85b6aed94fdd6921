//! Test certificates made with rcgen, written as PEM files in a directory
//! of their own that goes away with the value.

use std::path::PathBuf;

/// A self-signed certificate and its key on disk.
pub struct TestCert {
    dir: PathBuf,
    /// The certificate (PEM); also usable as its own trust anchor.
    pub cert: PathBuf,
    /// The private key (PEM).
    pub key: PathBuf,
}

impl TestCert {
    /// A self-signed certificate for `name` (a DNS name).
    pub fn self_signed(name: &str) -> TestCert {
        let dir = std::env::temp_dir().join(format!(
            "parley-cert-{}-{name}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ));
        std::fs::create_dir_all(&dir).expect("certificate directory");
        let made = rcgen::generate_simple_self_signed(vec![name.to_string()]).expect("certificate");
        let cert = dir.join("cert.pem");
        let key = dir.join("key.pem");
        std::fs::write(&cert, made.cert.pem()).expect("certificate file");
        std::fs::write(&key, made.signing_key.serialize_pem()).expect("key file");
        TestCert { dir, cert, key }
    }

    /// The certificate's path as a TOML string.
    pub fn cert_toml(&self) -> String {
        format!("{:?}", self.cert.display().to_string())
    }

    /// The key's path as a TOML string.
    pub fn key_toml(&self) -> String {
        format!("{:?}", self.key.display().to_string())
    }
}

impl Drop for TestCert {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
