//! A PostgreSQL server of its own (Debian's PostgreSQL 15), made with
//! initdb in a temporary directory and run by the `postgres` user on
//! 127.0.0.1 and a free port, as the tests start Kamailio; stopped (fast
//! shutdown) and removed when dropped.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running PostgreSQL cluster.
pub struct Postgres {
    child: Option<Child>,
    dir: PathBuf,
    /// Its TCP port on 127.0.0.1.
    pub port: u16,
}

/// Where Debian keeps the server's programs.
fn bin(program: &str) -> PathBuf {
    let base = PathBuf::from("/usr/lib/postgresql");
    let mut versions: Vec<PathBuf> = std::fs::read_dir(&base)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join(program).exists())
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|p| p.join(program))
        .expect("PostgreSQL (tests/peers/install.sh installs postgresql-15)")
}

/// Runs as the `postgres` user (the server refuses to run as root).
fn as_postgres(program: &str) -> Command {
    let mut c = Command::new("setpriv");
    c.args([
        "--reuid=postgres",
        "--regid=postgres",
        "--init-groups",
        "--reset-env",
    ])
    .arg(bin(program));
    c
}

impl Postgres {
    /// Makes a cluster (trust authentication on loopback: the tests are
    /// its only clients) and starts it; waits until it accepts.
    pub fn start() -> Postgres {
        Self::start_with(None)
    }

    /// [`Postgres::start`] serving TLS with this certificate and key.
    pub fn start_tls(cert: &std::path::Path, key: &std::path::Path) -> Postgres {
        Self::start_with(Some((cert, key)))
    }

    fn start_with(tls: Option<(&std::path::Path, &std::path::Path)>) -> Postgres {
        let port = crate::sipp::free_port();
        let dir = std::env::temp_dir().join(format!("parley-pg-{}-{port}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("postgres dir");
        let _ = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(&dir)
            .status();
        let data = dir.join("data");
        let out = as_postgres("initdb")
            .args([
                "--auth=trust",
                "--username=postgres",
                "--encoding=UTF8",
                "-D",
            ])
            .arg(&data)
            .output()
            .expect("initdb");
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut settings: Vec<String> = Vec::new();
        if let Some((cert, key)) = tls {
            // The server reads them as its user, the key private to it.
            for (from, to) in [(cert, "server.crt"), (key, "server.key")] {
                std::fs::copy(from, data.join(to)).expect("TLS file");
            }
            let _ = Command::new("chown")
                .args(["postgres:postgres"])
                .arg(data.join("server.crt"))
                .arg(data.join("server.key"))
                .status();
            let _ = Command::new("chmod")
                .arg("600")
                .arg(data.join("server.key"))
                .status();
            settings.extend(["-c".into(), "ssl=on".into()]);
        }
        let child = as_postgres("postgres")
            .arg("-D")
            .arg(&data)
            .args(&settings)
            .args(["-c", "listen_addresses=127.0.0.1", "-c"])
            .arg(format!("port={port}"))
            .args(["-c"])
            .arg(format!("unix_socket_directories={}", dir.display()))
            // A test cluster: speed over durability across power loss.
            .args(["-c", "fsync=off", "-c", "full_page_writes=off"])
            .args(["-c", "max_connections=200"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("postgres.log")).expect("log"))
            .spawn()
            .expect("postgres");
        let pg = Postgres {
            child: Some(child),
            dir,
            port,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = Command::new(bin("pg_isready"))
                .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q"])
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                return pg;
            }
            assert!(
                Instant::now() < deadline,
                "postgres did not start: {}",
                pg.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A new, empty database on this server; its URL.
    pub fn database(&self, name: &str) -> String {
        let out = Command::new(bin("createdb"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
            ])
            .arg(name)
            .output()
            .expect("createdb");
        assert!(
            out.status.success(),
            "createdb {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.url(name)
    }

    /// The URL of a database on this server.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// What the server logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("postgres.log")).unwrap_or_default()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGINT: fast shutdown.
            let _ = Command::new("kill")
                .args(["-INT", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
