//! Redis addresses in the configuration: a Redis URL (`forward.to`) and a Sentinel's
//! `host:port` (`redis.sentinels`, `forward.sentinels`).
//!
//! This module owns the check that such a value is usable (a URL the Redis client accepts, a
//! host with a port) and keeps the text as written. It does not connect, nor decide between a
//! URL and Sentinels: [`crate::redis_conn::RedisTarget`] is what the settings become.

use std::fmt;
use std::str::FromStr;

use redis::IntoConnectionInfo;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The port a Sentinel listens on unless told otherwise.
pub const SENTINEL_PORT: u16 = 26379;

/// A URL the Redis client accepts (`redis://[:password@]host:port[/db]`, `unix://`; not
/// `rediss://`: this build has no TLS to Redis, and says so at load).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisUrl(String);

impl RedisUrl {
    /// The URL exactly as configured (password included: never log it, see
    /// [`super::redact_url`]).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for RedisUrl {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        text.into_connection_info()
            .map_err(|e| format!("{:?} is not a Redis URL: {e}", super::redact_url(text)))?;
        Ok(RedisUrl(text.to_string()))
    }
}

impl fmt::Display for RedisUrl {
    /// Without its password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&super::redact_url(&self.0))
    }
}

impl Serialize for RedisUrl {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // As written: `config check` redacts it by key (as it does `redis.url`).
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for RedisUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// A Sentinel's address: `host:port`, `[v6]:port`, or a host alone (port 26379).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentinelAddr {
    pub host: String,
    pub port: u16,
}

impl FromStr for SentinelAddr {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let bad = |why: &str| format!("{text:?} is not a Sentinel address (host:port): {why}");
        let (host, port) = if let Some(rest) = text.strip_prefix('[') {
            let (host, after) = rest.split_once(']').ok_or_else(|| bad("no closing ]"))?;
            match after.strip_prefix(':') {
                Some(port) => (host, Some(port)),
                None if after.is_empty() => (host, None),
                None => return Err(bad("text after ]")),
            }
        } else {
            match text.rsplit_once(':') {
                Some((h, _)) if h.contains(':') => (text, None),
                Some((h, p)) => (h, Some(p)),
                None => (text, None),
            }
        };
        if host.is_empty() || host.contains(char::is_whitespace) || host.contains('/') {
            return Err(bad("no host"));
        }
        let port = match port {
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| bad("the port is not a number from 1 to 65535"))?,
            None => SENTINEL_PORT,
        };
        Ok(SentinelAddr {
            host: host.to_string(),
            port,
        })
    }
}

impl fmt::Display for SentinelAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl Serialize for SentinelAddr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for SentinelAddr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentinel_addresses_in_their_forms() {
        let a: SentinelAddr = "10.0.0.5:26380".parse().unwrap();
        assert_eq!((a.host.as_str(), a.port), ("10.0.0.5", 26380));
        let b: SentinelAddr = "sentinel1.example.com".parse().unwrap();
        assert_eq!(b.port, SENTINEL_PORT);
        let c: SentinelAddr = "[::1]:26381".parse().unwrap();
        assert_eq!((c.host.as_str(), c.port), ("::1", 26381));
        assert_eq!(c.to_string(), "[::1]:26381");
        let d: SentinelAddr = "::1".parse().unwrap();
        assert_eq!((d.host.as_str(), d.port), ("::1", SENTINEL_PORT));
        for bad in ["", ":26379", "host:0", "host:http", "[::1", "redis://h:1"] {
            assert!(bad.parse::<SentinelAddr>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn redis_urls_are_checked_and_shown_without_password() {
        let u: RedisUrl = "redis://:pw@10.0.0.9:6379/2".parse().unwrap();
        assert_eq!(u.as_str(), "redis://:pw@10.0.0.9:6379/2");
        assert!(!u.to_string().contains("pw"), "{u}");
        let err = "http://:pw@x/".parse::<RedisUrl>().unwrap_err();
        assert!(!err.contains("pw"), "{err}");
        assert!("not a url".parse::<RedisUrl>().is_err());
    }
}
