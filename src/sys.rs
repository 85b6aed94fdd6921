//! What Parley reads from the operating system outside the transports: the
//! wall clock and the random numbers of the crypto provider it already
//! ships (ring's `SystemRandom`, the OS CSPRNG). Everything that needs a
//! date or an unpredictable token asks here, so neither is made twice.

use ring::rand::{SecureRandom, SystemRandom};

/// Seconds since the Unix epoch.
pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Random bytes handed out per thread from a buffer that the OS CSPRNG
/// refills: one system call per 512 bytes instead of one per token, which
/// keeps tokens off the hot path's cost.
fn fill(out: &mut [u8]) {
    use std::cell::RefCell;
    const BUFFER: usize = 512;
    thread_local! {
        static POOL: RefCell<(Vec<u8>, usize)> = const { RefCell::new((Vec::new(), 0)) };
    }
    POOL.with(|pool| {
        let mut pool = pool.borrow_mut();
        let (buf, used) = &mut *pool;
        for b in out.iter_mut() {
            if *used >= buf.len() {
                buf.resize(BUFFER, 0);
                // SystemRandom fails only when the OS has no entropy
                // source at all, which no supported system lacks.
                SystemRandom::new()
                    .fill(buf)
                    .expect("the operating system's random number generator");
                *used = 0;
            }
            *b = buf[*used];
            // Used bytes are wiped: what was handed out is not kept.
            buf[*used] = 0;
            *used += 1;
        }
    });
}

/// `bytes` random bytes from the CSPRNG as lower-case hex: tags,
/// branches, Call-IDs, entity tags, stream ids and the admin token.
pub fn token_hex(bytes: usize) -> String {
    use std::fmt::Write;
    let mut buf = vec![0u8; bytes];
    fill(&mut buf);
    let mut out = String::with_capacity(bytes * 2);
    for b in buf {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// A fresh 64-bit token as 16 hex digits (tags, branches, ids).
pub fn token() -> String {
    token_hex(8)
}

/// `n` random bytes (secrets: the nonce key of digest authentication).
pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    fill(&mut buf);
    buf
}

/// A random 64-bit number (keys of in-process hashes, SRV weights).
pub fn random_u64() -> u64 {
    let mut buf = [0u8; 8];
    fill(&mut buf);
    u64::from_le_bytes(buf)
}

/// Writes `data` to `file`, readable by Parley's user only (0600): keys,
/// tokens, anything that grants access.
#[cfg(unix)]
pub fn write_private(file: &std::path::Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(file)?;
    f.write_all(data)
}

/// [`write_private`] where files have no Unix modes.
#[cfg(not(unix))]
pub fn write_private(file: &std::path::Path, data: &[u8]) -> std::io::Result<()> {
    std::fs::write(file, data)
}

/// Creates `dir` (and its parents) for Parley's private state: a directory
/// Parley makes is 0700; one that exists is left as the operator set it.
pub fn private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    if dir.as_os_str().is_empty() || dir.exists() {
        return Ok(());
    }
    std::fs::create_dir_all(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Creates `file` empty and private (0600) when it does not exist yet: a
/// database a library then opens keeps that mode.
pub fn private_file(file: &std::path::Path) -> std::io::Result<()> {
    if file.exists() {
        return Ok(());
    }
    write_private(file, b"")
}

/// The process's log: tracing to standard output, with a filter that can
/// be changed while Parley runs (`[log] level` on reload, the admin API,
/// `parley log-level`).
pub mod log {
    use std::sync::{Mutex, OnceLock};

    type Apply = Box<dyn Fn(tracing_subscriber::EnvFilter) -> Result<(), String> + Send + Sync>;

    /// How to change the filter, and the filter in force.
    struct Control {
        apply: Apply,
        filter: Mutex<String>,
        from_env: bool,
    }

    static CONTROL: OnceLock<Control> = OnceLock::new();

    /// Starts logging with `filter`; `RUST_LOG` wins when set. A second
    /// call (tests start several servers) changes nothing.
    pub fn init(filter: &str) {
        use std::io::IsTerminal;
        let env = std::env::var("RUST_LOG")
            .ok()
            .filter(|v| !v.trim().is_empty());
        let (text, parsed) = match env
            .as_deref()
            .map(|e| (e, tracing_subscriber::EnvFilter::try_new(e)))
        {
            Some((e, Ok(f))) => (e.to_string(), f),
            _ => (
                filter.to_string(),
                tracing_subscriber::EnvFilter::try_new(filter)
                    .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
            ),
        };
        let builder = tracing_subscriber::fmt()
            .with_env_filter(parsed)
            .with_target(false)
            .with_ansi(std::io::stdout().is_terminal())
            .with_filter_reloading();
        let handle = builder.reload_handle();
        if builder.try_init().is_ok() {
            let _ = CONTROL.set(Control {
                apply: Box::new(move |f| handle.reload(f).map_err(|e| e.to_string())),
                filter: Mutex::new(text),
                from_env: env.is_some(),
            });
        }
    }

    /// The filter in force, when Parley set up the log.
    pub fn filter() -> Option<String> {
        let c = CONTROL.get()?;
        c.filter.lock().ok().map(|f| f.clone())
    }

    /// True when `RUST_LOG` chose the filter at start (a reload of the
    /// configuration then leaves it alone).
    pub fn from_env() -> bool {
        CONTROL.get().is_some_and(|c| c.from_env)
    }

    /// Puts `filter` in force at once.
    pub fn set_filter(filter: &str) -> Result<(), String> {
        let parsed = tracing_subscriber::EnvFilter::try_new(filter).map_err(|e| e.to_string())?;
        let c = CONTROL.get().ok_or_else(|| {
            "the log is not Parley's own (embedded in another program)".to_string()
        })?;
        (c.apply)(parsed)?;
        if let Ok(mut f) = c.filter.lock() {
            *f = filter.to_string();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn tokens_are_hex_of_the_asked_length_and_differ() {
        let a = super::token_hex(16);
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(super::token(), super::token());
    }
}
