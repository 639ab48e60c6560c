//! Connecting to Redis: one multiplexed, self-reconnecting connection for all commands.
//!
//! The subscriber has its own connection (see [`crate::input`]): a connection in subscribe mode
//! cannot run other commands.

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
