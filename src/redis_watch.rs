//! Watches Redis for the rest of the service: whether it answers (what `/ready` says of it), and
//! whether it still holds the service's data.
//!
//! At start the service writes an **epoch** (`<ownPrefix>:epoch`, a random id) unless one is
//! there. Every second the watcher reads the epoch back (the read is also the liveness check). A
//! Redis that answers without it (restarted without persistence, flushed, replaced) has lost
//! everything the service stored: hooks, mappings, queued events. The watcher logs an error, counts it
//! (`bbb_webhooks_redis_data_lost_total`), writes the epoch again and raises the data-loss
//! counter it shares; the enqueuer then rewrites what memory still holds. The watcher repairs
//! nothing itself and does not know what is stored.

use std::sync::Arc;
use std::time::Duration;

use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::health::Readiness;
use crate::keys::Keys;
use crate::metrics::Metrics;

/// How often Redis is checked.
pub const CHECK_EVERY: Duration = Duration::from_secs(1);
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// Reads the epoch, writing a new one when there is none; returns it.
pub async fn claim_epoch(conn: &ConnectionManager, keys: &Keys) -> redis::RedisResult<String> {
    let mut conn = conn.clone();
    let fresh = uuid::Uuid::new_v4().to_string();
    let _: bool = conn.set_nx(keys.epoch(), &fresh).await?;
    conn.get(keys.epoch()).await
}

/// What the watcher reads and writes.
pub struct RedisWatch {
    pub conn: ConnectionManager,
    pub keys: Keys,
    pub readiness: Readiness,
    pub metrics: Arc<Metrics>,
    /// Counts the data losses found; the enqueuer repairs on each change.
    pub lost: watch::Sender<u64>,
}

impl RedisWatch {
    /// Checks Redis every `every` until `stop`, starting from the epoch claimed at start.
    pub async fn run(self, epoch: String, stop: CancellationToken, every: Duration) {
        let RedisWatch {
            conn,
            keys,
            readiness,
            metrics,
            lost,
        } = self;
        let mut epoch = epoch;
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            let mut c = conn.clone();
            let read =
                tokio::time::timeout(CHECK_TIMEOUT, c.get::<_, Option<String>>(keys.epoch())).await;
            let stored = match read {
                Ok(Ok(stored)) => stored,
                Ok(Err(e)) => {
                    if readiness.get().redis {
                        tracing::warn!(error = %e, "Redis does not answer");
                    }
                    readiness.set_redis(false);
                    continue;
                }
                Err(_) => {
                    if readiness.get().redis {
                        tracing::warn!("Redis does not answer within {CHECK_TIMEOUT:?}");
                    }
                    readiness.set_redis(false);
                    continue;
                }
            };
            readiness.set_redis(true);
            if stored.as_deref() == Some(epoch.as_str()) {
                continue;
            }
            tracing::error!(
                found = stored.as_deref().unwrap_or("(none)"),
                "Redis lost the service's data (restarted without persistence, flushed or replaced): queued events not yet read are gone; rewriting hooks and mappings from memory"
            );
            metrics.redis_data_lost.inc();
            match claim_epoch(&conn, &keys).await {
                Ok(now) => epoch = now,
                Err(e) => tracing::warn!(error = %e, "cannot write the epoch again yet"),
            }
            lost.send_modify(|n| *n += 1);
        }
    }
}
