//! Input: the Redis subscriber. Owns the subscription and hands every message over, with its
//! time of receipt, without waiting on anything downstream (Redis drops subscribers that read
//! too slowly). It does not parse: [`crate::mapping`] does.
//!
//! After a disconnect it reconnects with backoff and subscribes again, counting each reconnect.
//! A periodic PING finds connections that died without a word.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::mpsc::UnboundedSender;
use tokio_util::sync::CancellationToken;

use crate::health::Readiness;
use crate::metrics::Metrics;

/// One message as received.
#[derive(Debug, Clone)]
pub struct RawMessage {
    pub channel: String,
    pub payload: Vec<u8>,
    /// Milliseconds since the epoch.
    pub received_at: u64,
}

/// How often the subscription is checked with a PING.
pub const PING_EVERY: Duration = Duration::from_secs(15);
const PING_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Runs until `stop` is cancelled, or until nobody takes messages any more. Dropping `tx` on
/// return tells the enqueuer intake is over. Whatever the reason, `subscribed` is false after.
pub async fn run(
    client: redis::Client,
    channels: Vec<String>,
    tx: UnboundedSender<RawMessage>,
    readiness: Readiness,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
    ping_every: Duration,
) {
    subscribe_and_forward(
        &client, &channels, &tx, &readiness, &metrics, &stop, ping_every,
    )
    .await;
    readiness.set_subscribed(false);
}

async fn subscribe_and_forward(
    client: &redis::Client,
    channels: &[String],
    tx: &UnboundedSender<RawMessage>,
    readiness: &Readiness,
    metrics: &Metrics,
    stop: &CancellationToken,
    ping_every: Duration,
) {
    let mut delay = Duration::from_millis(100);
    let mut connected_before = false;
    loop {
        match subscribe(client, channels).await {
            Ok((mut sink, mut stream)) => {
                if connected_before {
                    metrics
                        .redis_reconnects
                        .with_label_values(&["subscriber"])
                        .inc();
                    tracing::info!("subscribed again after a Redis disconnect");
                } else {
                    tracing::info!(channels = channels.len(), "subscribed");
                }
                connected_before = true;
                delay = Duration::from_millis(100);
                readiness.set_subscribed(true);
                let mut ping = tokio::time::interval(ping_every);
                ping.tick().await;
                loop {
                    tokio::select! {
                        _ = stop.cancelled() => {
                            readiness.set_subscribed(false);
                            let _ = sink.unsubscribe(channels).await;
                            return;
                        }
                        msg = stream.next() => match msg {
                            Some(msg) => {
                                let raw = RawMessage {
                                    channel: msg.get_channel_name().to_string(),
                                    payload: msg.get_payload_bytes().to_vec(),
                                    received_at: crate::time::now_ms(),
                                };
                                if tx.send(raw).is_err() {
                                    tracing::error!("nothing takes the messages any more: leaving the channels");
                                    return;
                                }
                            }
                            None => break,
                        },
                        _ = ping.tick() => {
                            // In subscribed mode the answer is ["pong", ""], not "PONG": any
                            // answer will do.
                            let alive = tokio::time::timeout(PING_TIMEOUT, sink.ping::<redis::Value>()).await;
                            if !matches!(alive, Ok(Ok(_))) {
                                break;
                            }
                        }
                    }
                }
                readiness.set_subscribed(false);
                tracing::warn!("lost the Redis subscription; reconnecting");
            }
            Err(e) => {
                tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "cannot subscribe to Redis");
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(MAX_BACKOFF);
    }
}

async fn subscribe(
    client: &redis::Client,
    channels: &[String],
) -> redis::RedisResult<(redis::aio::PubSubSink, redis::aio::PubSubStream)> {
    let pubsub = tokio::time::timeout(Duration::from_secs(3), client.get_async_pubsub())
        .await
        .map_err(|_| {
            redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut))
        })??;
    let (mut sink, stream) = pubsub.split();
    sink.subscribe(channels).await?;
    Ok((sink, stream))
}
