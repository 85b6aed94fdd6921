//! Parley's configuration file (`config/parley.toml` is the embedded
//! default). Unknown keys are errors; values are checked once, on load.

use std::path::Path;

use serde::Deserialize;

use crate::proto::sip::Limits;

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The TOML is malformed or holds an unknown key.
    #[error("{path}: {message}")]
    Syntax {
        /// The file.
        path: String,
        /// What the TOML reader said, with the line and key.
        message: String,
    },
    /// A value is out of range.
    #[error("{path}: {key} {reason}")]
    Value {
        /// The file.
        path: String,
        /// The dotted key.
        key: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

/// The whole configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `[sip]`: the SIP core.
    #[serde(default)]
    pub sip: SipConfig,
}

/// `[sip]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SipConfig {
    /// `[sip.limits]`: parser limits for every received message.
    #[serde(default)]
    pub limits: Limits,
}

impl Config {
    /// Reads and checks a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: shown.clone(),
            source,
        })?;
        Self::parse(&text, &shown)
    }

    /// Parses and checks configuration text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            path: origin.to_string(),
            message: e.to_string().trim_end().replace('\n', " "),
        })?;
        let l = &config.sip.limits;
        let value = |key, reason: String| ConfigError::Value {
            path: origin.to_string(),
            key,
            reason,
        };
        for (key, v) in [
            ("sip.limits.max_message_size", l.max_message_size),
            ("sip.limits.max_headers", l.max_headers),
            ("sip.limits.max_header_line", l.max_header_line),
            ("sip.limits.max_uri_len", l.max_uri_len),
            ("sip.limits.max_vias", l.max_vias),
            ("sip.limits.max_parts", l.max_parts),
        ] {
            if v == 0 {
                return Err(value(key, "must be greater than 0".into()));
            }
        }
        if l.max_message_size > u32::MAX as usize {
            return Err(value(
                "sip.limits.max_message_size",
                "must fit in 32 bits".into(),
            ));
        }
        if l.max_body_size > l.max_message_size {
            return Err(value(
                "sip.limits.max_body_size",
                format!(
                    "{} exceeds max_message_size {}",
                    l.max_body_size, l.max_message_size
                ),
            ));
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/parley.toml");
        let config = Config::load(&path).unwrap();
        assert_eq!(config.sip.limits, Limits::default());
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        let e = Config::parse("[sip.limits]\nmax_mesage_size = 10\n", "t.toml").unwrap_err();
        assert!(e.to_string().contains("max_mesage_size"), "{e}");
        let e = Config::parse("[sip.limits]\nmax_headers = 0\n", "t.toml").unwrap_err();
        assert_eq!(
            e.to_string(),
            "t.toml: sip.limits.max_headers must be greater than 0"
        );
        let e = Config::parse("[sip.limits]\nmax_message_size = 100\n", "t.toml").unwrap_err();
        assert!(e.to_string().contains("sip.limits.max_body_size"), "{e}");
    }
}
