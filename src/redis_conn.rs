//! Connecting to Redis: one multiplexed, self-reconnecting connection for all commands.
//!
//! The subscriber has its own connection (see [`crate::input`]): a connection in subscribe mode
//! cannot run other commands.
//!
//! Where Redis is ([`RedisTarget`]) is one URL, or a primary that Redis Sentinels name. For the
//! latter, every connection starts by asking the Sentinels, so a connection made again after a
//! failover reaches the new primary: [`Reconnecting`] drops its connection at the first failure
//! and makes a new one (asking again) at the next use. A failover is then survived like a
//! restart of Redis: what the old primary acknowledged and replicated is on the new one.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio_util::sync::CancellationToken;

/// How long one command may take before it is reported as failed.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How often "still waiting for Redis" is logged while Redis does not answer.
const WAIT_LOG_EVERY: Duration = Duration::from_secs(5);

pub fn client(url: &str) -> redis::RedisResult<redis::Client> {
    redis::Client::open(url)
}

/// Where a Redis is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisTarget {
    /// One server: `redis://…`.
    Url(String),
    /// The primary that these Sentinels (host, port) know as `master`; `url`, when given,
    /// supplies the primary's password, user name and database (its host and port are not used).
    Sentinel {
        sentinels: Vec<(String, u16)>,
        master: String,
        url: Option<String>,
    },
}

impl RedisTarget {
    /// For logs: the URL without its password, or the Sentinels and the primary's name.
    pub fn shown(&self) -> String {
        match self {
            RedisTarget::Url(url) => without_password(url),
            RedisTarget::Sentinel {
                sentinels, master, ..
            } => {
                let list: Vec<String> = sentinels.iter().map(|(h, p)| format!("{h}:{p}")).collect();
                format!("primary {master:?} of Sentinels {}", list.join(","))
            }
        }
    }

    /// A client for the server: for Sentinels, the primary they name now.
    pub async fn client(&self) -> redis::RedisResult<redis::Client> {
        match self {
            RedisTarget::Url(url) => redis::Client::open(url.as_str()),
            RedisTarget::Sentinel {
                sentinels,
                master,
                url,
            } => {
                use redis::IntoConnectionInfo;
                use redis::sentinel::{Sentinel, SentinelNodeConnectionInfo};
                let mut node = SentinelNodeConnectionInfo::default();
                if let Some(url) = url {
                    let info = url.as_str().into_connection_info()?;
                    node = node.set_redis_connection_info(info.redis_settings().clone());
                }
                let addrs: Vec<String> = sentinels
                    .iter()
                    .map(|(h, p)| {
                        if h.contains(':') {
                            format!("redis://[{h}]:{p}")
                        } else {
                            format!("redis://{h}:{p}")
                        }
                    })
                    .collect();
                let mut sentinel = Sentinel::build(addrs)?;
                // The library asks each Sentinel in turn; a Sentinel that does not answer must
                // not hold the caller for ever.
                tokio::time::timeout(
                    CONNECT_TIMEOUT * 2,
                    sentinel.async_master_for(master, Some(&node)),
                )
                .await
                .map_err(|_| timed_out("no Sentinel named the primary in time"))?
            }
        }
    }

    /// One multiplexed connection with bounded waits.
    pub async fn connect(&self) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
        let client = self.client().await?;
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT));
        client
            .get_multiplexed_async_connection_with_config(&config)
            .await
    }
}

/// How often a Sentinel target's primary is asked for by [`primary_changed`].
pub const PRIMARY_CHECK_EVERY: Duration = Duration::from_secs(1);

/// For services that keep long-lived connections ([`ConnectionManager`] reconnects to the
/// address it started with): the client of the primary the Sentinels name, once they name one
/// (logging while they do not). `None` only when `shutdown` fires first.
pub async fn resolve_when_ready(
    target: &RedisTarget,
    shutdown: &CancellationToken,
) -> Option<redis::Client> {
    let mut delay = Duration::from_millis(100);
    let mut last_log: Option<tokio::time::Instant> = None;
    loop {
        match target.client().await {
            Ok(client) => return Some(client),
            Err(e) => {
                if last_log.is_none_or(|t| t.elapsed() >= WAIT_LOG_EVERY) {
                    tracing::warn!(redis = %target.shown(), error = %e, "waiting for the Sentinels to name the Redis primary");
                    last_log = Some(tokio::time::Instant::now());
                }
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return None,
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(Duration::from_secs(2));
    }
}

/// Returns once the Sentinels name a primary other than `current`'s (a failover), or when
/// `shutdown` fires. A caller that cannot follow a failover itself stops then, for its service
/// manager to start it again: the new start asks the Sentinels again, like after a restart of
/// Redis. Sentinels that do not answer change nothing.
pub async fn primary_changed(
    target: RedisTarget,
    current: redis::Client,
    shutdown: CancellationToken,
    every: Duration,
) {
    let current = current.get_connection_info().addr().to_string();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        if let Ok(now) = target.client().await {
            let now = now.get_connection_info().addr().to_string();
            if now != current {
                tracing::warn!(from = %current, to = %now, "the Sentinels name another Redis primary (a failover)");
                return;
            }
        }
    }
}

fn timed_out(what: &'static str) -> redis::RedisError {
    redis::RedisError::from(std::io::Error::new(std::io::ErrorKind::TimedOut, what))
}

/// `url` with its password replaced (this module cannot use the configuration's helper: the
/// configuration builds on this one).
fn without_password(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("redacted"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

/// A connection that is dropped at its first failure and made again, from the start (the
/// Sentinels asked again), at the next use.
pub struct Reconnecting {
    target: RedisTarget,
    conn: Option<redis::aio::MultiplexedConnection>,
    connected_before: bool,
}

impl Reconnecting {
    pub fn new(target: RedisTarget) -> Self {
        Reconnecting {
            target,
            conn: None,
            connected_before: false,
        }
    }

    pub fn target(&self) -> &RedisTarget {
        &self.target
    }

    /// The connection, made now if there is none; `fresh` tells whether it was (so the caller
    /// can count a reconnect and redo what a new connection needs).
    pub async fn get(&mut self) -> redis::RedisResult<Connected<'_>> {
        let fresh = self.conn.is_none();
        if fresh {
            self.conn = Some(self.target.connect().await?);
        }
        let reconnect = fresh && std::mem::replace(&mut self.connected_before, true);
        match self.conn.as_mut() {
            Some(conn) => Ok(Connected {
                conn,
                fresh,
                reconnect,
            }),
            None => Err(timed_out("no connection")),
        }
    }

    /// Forgets the connection after a failure: the next [`Reconnecting::get`] makes a new one.
    pub fn failed(&mut self) {
        self.conn = None;
    }

    pub fn is_connected(&self) -> bool {
        self.conn.is_some()
    }
}

/// A connection from [`Reconnecting::get`].
pub struct Connected<'a> {
    pub conn: &'a mut redis::aio::MultiplexedConnection,
    /// Made by this call.
    pub fresh: bool,
    /// Made by this call, after an earlier connection was lost.
    pub reconnect: bool,
}

/// Connection settings for commands: bounded waits, endless reconnect attempts with backoff.
pub fn manager_config() -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_response_timeout(Some(RESPONSE_TIMEOUT))
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_min_delay(Duration::from_millis(50))
        .set_max_delay(Duration::from_secs(2))
        .set_number_of_retries(6)
}

/// Waits until Redis answers (a server may still be booting), logging every few seconds.
/// Returns `None` only when `shutdown` fires first.
pub async fn connect_when_ready(
    client: &redis::Client,
    shutdown: &CancellationToken,
) -> Option<ConnectionManager> {
    let mut delay = Duration::from_millis(100);
    let mut last_log: Option<tokio::time::Instant> = None;
    loop {
        // A quick probe first: the connection manager retries on its own before it reports.
        let probe = tokio::time::timeout(CONNECT_TIMEOUT, async {
            let mut conn = client.get_multiplexed_async_connection().await?;
            redis::cmd("PING").query_async::<()>(&mut conn).await
        })
        .await;
        let outcome = match probe {
            Ok(Ok(())) => ConnectionManager::new_with_config(client.clone(), manager_config())
                .await
                .map_err(|e| e.to_string()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("no answer".to_string()),
        };
        match outcome {
            Ok(conn) => {
                if last_log.is_some() {
                    tracing::info!("Redis answers now");
                }
                return Some(conn);
            }
            Err(e) => {
                if last_log.is_none_or(|t| t.elapsed() >= WAIT_LOG_EVERY) {
                    tracing::warn!(error = %e, "waiting for Redis to answer");
                    last_log = Some(tokio::time::Instant::now());
                }
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return None,
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(Duration::from_secs(2));
    }
}
