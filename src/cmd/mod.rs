//! The subcommands, one file each: its clap arguments and its `run`. Part of the binary, not of
//! the library's API.
//!
//! This module owns what several tools share: which Redis they talk to (the one `serve` is
//! configured with, unless `--redis-url` says otherwise) and the help printed when it does not
//! answer. It does not own the top-level parser, the runtime or the exit status of errors:
//! `main` does.

use std::path::PathBuf;

use bbb_webhooks::config::{self, ConfigSources};

pub mod bench;
pub mod checksum;
pub mod config_check;
pub mod demo;
pub mod forward;
pub mod hooks;
pub mod map;
pub mod serve;
pub mod simulate;

/// The Redis a tool talks to, and how to speak of it without its password.
pub struct ToolRedis {
    pub url: String,
    /// The URL with its password replaced.
    pub shown: String,
    /// Where it came from: `--redis-url`, or the configuration's keys and their sources.
    pub origin: String,
    password: Option<String>,
}

impl ToolRedis {
    /// `--redis-url` when given; else the Redis `serve` would use: the same files (`--config`)
    /// and variables, so a Redis with a password or on another port is found the same way. The
    /// shared secret is not needed for this.
    pub fn resolve(flag: Option<String>, config_file: Option<PathBuf>) -> anyhow::Result<Self> {
        if let Some(url) = flag {
            let password = url::Url::parse(&url)
                .ok()
                .and_then(|u| u.password().map(String::from));
            return Ok(ToolRedis {
                shown: config::redact_url(&url),
                url,
                origin: "--redis-url".into(),
                password,
            });
        }
        let loaded = config::load_without_secret(&ConfigSources::from_process(config_file))?;
        let redis = &loaded.settings.redis;
        let keys: &[&str] = if redis.url.is_some() {
            &["redis.url"]
        } else {
            &["redis.host", "redis.port", "redis.password"]
        };
        let origin = keys
            .iter()
            .filter(|k| **k != "redis.password" || redis.password.is_some())
            .map(|k| format!("{k} from {}", loaded.source_of(k)))
            .collect::<Vec<_>>()
            .join(", ");
        let password = match &redis.url {
            Some(url) => url::Url::parse(url)
                .ok()
                .and_then(|u| u.password().map(String::from)),
            None => redis.password.as_ref().map(|p| p.expose().to_string()),
        };
        Ok(ToolRedis {
            url: redis.connection_url(),
            shown: redis.shown_url(),
            origin,
            password,
        })
    }

    /// A connection, or an error that says which Redis, where that came from, and what to do;
    /// never the password.
    pub async fn connect(&self, tool: &str) -> anyhow::Result<redis::aio::MultiplexedConnection> {
        let client = redis::Client::open(self.url.as_str()).map_err(|e| {
            anyhow::anyhow!(
                "{} is not a Redis URL ({}): {}",
                self.shown,
                self.origin,
                self.scrub(&e.to_string())
            )
        })?;
        let attempt = tokio::time::timeout(
            std::time::Duration::from_secs(3),
            client.get_multiplexed_async_connection(),
        )
        .await;
        match attempt {
            Ok(Ok(conn)) => Ok(conn),
            Ok(Err(e)) => Err(anyhow::anyhow!(self.unreachable(
                tool,
                &self.scrub(&e.to_string()),
                e.kind()
            ))),
            Err(_) => Err(anyhow::anyhow!(self.unreachable(
                tool,
                "no answer within 3 s",
                redis::ErrorKind::Io
            ))),
        }
    }

    /// `text` with the password, should a library quote it, replaced.
    fn scrub(&self, text: &str) -> String {
        match &self.password {
            Some(p) if !p.is_empty() => text.replace(p.as_str(), "<redacted>"),
            _ => text.to_string(),
        }
    }

    fn unreachable(&self, tool: &str, error: &str, kind: redis::ErrorKind) -> String {
        let mut text = format!(
            "Redis at {} ({}) cannot be used: {error}.\n",
            self.shown, self.origin
        );
        if matches!(kind, redis::ErrorKind::AuthenticationFailed)
            || error.contains("NOAUTH")
            || error.contains("WRONGPASS")
        {
            text.push_str(
                "It wants a password, or another one: the tools read the same configuration as \
                 `serve` (--config, the bbb-webhooks 3.x files, REDIS_PASSWORD or REDIS_URL); \
                 `bbb-webhooks config check` shows what is in effect.",
            );
        } else {
            text.push_str(&format!(
                "Is it running there? `bbb-webhooks config check` shows the Redis settings in \
                 effect, --redis-url names another. For a local one:\n\
                 \n    redis-server --daemonize yes --save '' --appendonly no\n\
                 \n(on Debian or Ubuntu: sudo apt install redis-server), or with Docker:\n\
                 \n    docker run -d --name redis -p 6379:6379 redis:7-alpine\n\
                 \nthen run `bbb-webhooks {tool}` again."
            ));
        }
        text
    }
}
