//! Kamailio run in the foreground from a config template under
//! tests/data/kamailio, on 127.0.0.1; stopped when dropped.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::data_dir;

/// A running Kamailio.
pub struct Kamailio {
    child: Child,
    dir: PathBuf,
    /// Its UDP port.
    pub port: u16,
}

impl Kamailio {
    /// Starts `template` with `PORT` and `MPATH` filled in, and each
    /// `(key, value)` of `vars` replaced; waits until it listens.
    pub fn start(template: &str, vars: &[(&str, String)]) -> Kamailio {
        Self::start_on(template, crate::sipp::free_port(), vars)
    }

    /// [`Kamailio::start`] on a chosen UDP port.
    pub fn start_on(template: &str, port: u16, vars: &[(&str, String)]) -> Kamailio {
        let modules = std::fs::read_dir("/usr/lib")
            .ok()
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path().join("kamailio/modules"))
            .find(|p| p.join("tm.so").exists())
            .or_else(|| {
                let p = PathBuf::from("/usr/lib/x86_64-linux-gnu/kamailio/modules");
                p.exists().then_some(p)
            })
            .expect("kamailio modules (tests/peers/install.sh installs them)");
        let mut cfg = std::fs::read_to_string(data_dir().join("kamailio").join(template))
            .expect("kamailio template");
        cfg = cfg
            .replace("PORT", &port.to_string())
            .replace("MPATH", &format!("{}/", modules.display()));
        for (k, v) in vars {
            cfg = cfg.replace(k, v);
        }
        let dir =
            std::env::temp_dir().join(format!("parley-kamailio-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("kamailio dir");
        let file = dir.join("kamailio.cfg");
        std::fs::write(&file, cfg).expect("kamailio cfg");
        let mut child = Command::new("kamailio")
            .args(["-DD", "-E", "-n", "1", "-m", "64", "-f"])
            .arg(&file)
            .arg("-Y")
            .arg(&dir)
            .arg("-P")
            .arg(dir.join("pid"))
            .arg("-w")
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("kamailio runs (tests/peers/install.sh installs it)");
        for _ in 0..300 {
            if std::net::UdpSocket::bind(("127.0.0.1", port)).is_err() {
                // Bound; give the workers a moment to start reading.
                std::thread::sleep(Duration::from_millis(200));
                return Kamailio { child, dir, port };
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("kamailio did not start listening on {port}");
    }
}

impl Drop for Kamailio {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        for _ in 0..50 {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
