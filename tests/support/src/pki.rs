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

/// A test certificate authority (made with OpenSSL) and the certificates
/// it issues, in a directory that goes away with the value.
pub struct TestCa {
    dir: PathBuf,
    /// The CA certificate (PEM): the trust anchor to configure.
    pub cert: PathBuf,
    key: PathBuf,
}

impl TestCa {
    /// A new CA.
    pub fn new() -> TestCa {
        let dir = std::env::temp_dir().join(format!(
            "parley-ca-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ));
        std::fs::create_dir_all(&dir).expect("CA directory");
        let (cert, key) = (dir.join("ca.pem"), dir.join("ca.key"));
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=Parley Test CA",
            "-keyout",
            &key.display().to_string(),
            "-out",
            &cert.display().to_string(),
        ]);
        TestCa { dir, cert, key }
    }

    /// A certificate for `name` (a DNS name in subjectAltName), signed by
    /// this CA: (certificate, key) paths.
    pub fn issue(&self, name: &str) -> (PathBuf, PathBuf) {
        let (cert, key, csr) = (
            self.dir.join(format!("{name}.crt")),
            self.dir.join(format!("{name}.key")),
            self.dir.join(format!("{name}.csr")),
        );
        openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            &format!("/CN={name}"),
            "-addext",
            &format!("subjectAltName=DNS:{name}"),
            "-keyout",
            &key.display().to_string(),
            "-out",
            &csr.display().to_string(),
        ]);
        openssl(&[
            "x509",
            "-req",
            "-in",
            &csr.display().to_string(),
            "-CA",
            &self.cert.display().to_string(),
            "-CAkey",
            &self.key.display().to_string(),
            "-CAcreateserial",
            "-days",
            "2",
            "-copy_extensions",
            "copy",
            "-out",
            &cert.display().to_string(),
        ]);
        (cert, key)
    }
}

impl Default for TestCa {
    fn default() -> Self {
        TestCa::new()
    }
}

impl Drop for TestCa {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn openssl(args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl (tests/peers/install.sh installs it)");
    assert!(
        out.status.success(),
        "openssl {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}
