//! Input in a cluster: reads one server's ingest stream (filled by `bbb-webhooks forward`, see
//! [`crate::cluster`]) from a position on, and hands each message over like the subscriber
//! does, with its entry id as its position. Which server's stream to read, and when to stop,
//! is decided by the lease this relay holds on it (wired in `crate::app`).
//!
//! Unlike the subscriber, it never drops: the stream keeps what is not read yet, so when the
//! intake is full it waits and reads on later.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::streams::{StreamReadOptions, StreamReadReply};
use redis::{AsyncCommands, Value};
use tokio_util::sync::CancellationToken;

use super::{IntakeSender, RawMessage, Refused};
use crate::cluster::IngestEntry;
use crate::logging::RateLimit;
use crate::metrics::Metrics;

/// Entries read at a time.
const READ_COUNT: usize = 256;
/// How long one read waits for new entries.
const BLOCK: Duration = Duration::from_secs(1);

static BAD_LOG: RateLimit = RateLimit::new(Duration::from_secs(10));

/// Reads `key` after `after` (from its start when `None`) until `stop`, or until nobody takes
/// messages. `conn` is this reader's own: a blocking read holds its connection.
pub async fn read_stream(
    mut conn: ConnectionManager,
    key: String,
    server: String,
    mut after: Option<String>,
    tx: IntakeSender,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) {
    let options = StreamReadOptions::default()
        .count(READ_COUNT)
        .block(BLOCK.as_millis() as usize);
    let mut delay = Duration::from_millis(100);
    while !stop.is_cancelled() {
        let start = after.clone().unwrap_or_else(|| "0".to_owned());
        let (keys, starts) = ([key.as_str()], [start.as_str()]);
        let reply: redis::RedisResult<Option<StreamReadReply>> = tokio::select! {
            r = conn.xread_options(&keys, &starts, &options) => r,
            _ = stop.cancelled() => return,
        };
        let entries = match reply {
            Ok(reply) => {
                delay = Duration::from_millis(100);
                reply
                    .map(|r| r.keys.into_iter().flat_map(|k| k.ids).collect::<Vec<_>>())
                    .unwrap_or_default()
            }
            Err(e) => {
                tracing::warn!(server = %server, error = %e, retry_in_ms = delay.as_millis() as u64, "cannot read the server's ingest stream");
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = stop.cancelled() => return,
                }
                delay = (delay * 2).min(Duration::from_secs(2));
                continue;
            }
        };
        for entry in entries {
            let id = entry.id.clone();
            let fields: Vec<(String, Value)> = entry.map.into_iter().collect();
            match IngestEntry::from_stream(entry.id, &fields) {
                Ok(e) => {
                    let raw = RawMessage {
                        channel: e.channel,
                        payload: e.message,
                        received_at: e.received_at,
                        position: Some(e.id),
                    };
                    if !hand_over(&tx, raw, &stop).await {
                        return;
                    }
                    metrics
                        .cluster_entries_read
                        .with_label_values(&[&server])
                        .inc();
                }
                Err(e) => {
                    metrics.cluster_bad_entries.inc();
                    if let Some(held_back) = BAD_LOG.check() {
                        tracing::warn!(server = %server, error = %e, similar_held_back = held_back, "skipping an ingest entry");
                    }
                }
            }
            after = Some(id);
        }
    }
}

/// Hands one message over, waiting while the intake is full. False when nobody takes messages
/// any more or `stop` fired.
async fn hand_over(tx: &IntakeSender, mut raw: RawMessage, stop: &CancellationToken) -> bool {
    loop {
        match tx.try_send(raw) {
            Ok(()) => return true,
            Err((Refused::Closed, _)) => return false,
            Err((Refused::Full, back)) => {
                raw = back;
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(20)) => {}
                    _ = stop.cancelled() => return false,
                }
            }
        }
    }
}
