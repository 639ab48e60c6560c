//! Configuration: built-in defaults → YAML files → environment → BigBlueButton's properties.
//!
//! This module owns the typed [`Settings`] and how they are assembled and validated: every value
//! is parsed into its meaning here, once, and every warning about the configuration is worked
//! out here ([`LoadedConfig::warnings`]), so `serve` and `config check` say the same. It does not
//! act on the settings: every other module receives the part it needs. It uses only modules at
//! the side ([`crate::checksum`]) and the event catalogue ([`crate::mapping::catalog`], a table),
//! nothing of the pipeline.
//!
//! Every layer is a JSON tree in our own layout (sections `bbb`, `redis`, `api`, `hooks`,
//! `mappings`, `prometheus`, `log`, `cluster`, `forward`); a bbb-webhooks 3.x file is first translated into that layout
//! ([`legacy`]). Trees merge key by key (arrays replace), and each leaf remembers which layer set
//! it, so `bbb-webhooks config check` can say where every value came from.

mod cidr;
mod env;
mod forms;
mod http_url;
mod legacy;
mod load;
mod parse;
mod properties;
mod redis_addr;
mod settings;
mod validate;

pub use cidr::{Cidr, CidrList};
pub use http_url::HttpUrl;
pub use redis_addr::{RedisUrl, SENTINEL_PORT, SentinelAddr};

/// The algorithm settings' type, at home in [`crate::checksum`].
pub use crate::checksum::ChecksumAlgorithm;

pub use env::variable_names;
pub use load::{
    ConfigSources, DEFAULT_FILES, EnvLookup, FileLookup, FileStatus, Inspection, LoadedConfig,
    Needs, PACKAGED_LOG_DIR, ROOT_VARIABLE, Source, inspect, load, load_without_secret,
    skipped_line,
};
pub use parse::{parse_bool, parse_list};
pub use settings::*;

use std::fmt;

/// A configuration that cannot be used: names the key, the value's origin and what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid YAML: {message}")]
    Yaml { path: String, message: String },
    #[error("invalid value for {key} (from {origin}): {message}")]
    Invalid {
        key: String,
        origin: Source,
        message: String,
    },
    #[error(
        "no shared secret: set bbb.sharedSecret in the config file or SHARED_SECRET, \
         or install BigBlueButton (its bbb-web.properties securitySalt is used)"
    )]
    NoSecret,
}

/// `url` with its password (if any) replaced, for messages and `config check`.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("redacted"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

/// A string that never shows up in logs or debug output.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl<'de> serde::Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

impl serde::Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("<redacted>")
    }
}
