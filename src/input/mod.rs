//! Input: the Redis subscriber. Owns the subscription and hands every message over, with its
//! time of receipt, without waiting on anything downstream (Redis drops subscribers that read
//! too slowly). It does not parse: [`crate::mapping`] does.
//!
//! After a disconnect it reconnects with backoff and subscribes again, counting each reconnect.
//! A periodic PING finds connections that died without a word.
//!
//! The hand-over ([`intake`]) is bounded in bytes (`redis.intakeBufferBytes`): while the enqueuer
//! cannot keep up (Redis refusing writes), messages wait there; beyond the bound they are dropped,
//! counted (`bbb_webhooks_intake_dropped_total`) and logged, so memory stays bounded and the
//! subscription stays alive (Redis disconnects a subscriber that stops reading).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};
use tokio_util::sync::CancellationToken;

use crate::health::Readiness;
use crate::logging::RateLimit;
use crate::metrics::Metrics;

pub mod cluster;

static DROPPED_LOG: RateLimit = RateLimit::new(Duration::from_secs(10));

/// The subscriber's end of the hand-over.
pub struct IntakeSender {
    tx: UnboundedSender<RawMessage>,
    held: Arc<AtomicUsize>,
    max_bytes: usize,
}

/// The enqueuer's end of the hand-over.
pub struct IntakeReceiver {
    rx: UnboundedReceiver<RawMessage>,
    held: Arc<AtomicUsize>,
}

/// Why a message was not handed over.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// The buffer is full: the message is dropped.
    Full,
    /// Nobody takes messages any more.
    Closed,
}

/// A hand-over holding at most `max_bytes` of message payloads.
pub fn intake(max_bytes: usize) -> (IntakeSender, IntakeReceiver) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let held = Arc::new(AtomicUsize::new(0));
    (
        IntakeSender {
            tx,
            held: held.clone(),
            max_bytes,
        },
        IntakeReceiver { rx, held },
    )
}

impl IntakeSender {
    pub fn send(&self, raw: RawMessage) -> Result<(), Refused> {
        self.try_send(raw).map_err(|(why, _)| why)
    }

    /// [`IntakeSender::send`], giving a refused message back (to wait and try again).
    pub fn try_send(&self, raw: RawMessage) -> Result<(), (Refused, RawMessage)> {
        let size = raw.payload.len();
        if self.held.load(Ordering::Relaxed) + size > self.max_bytes {
            return Err((Refused::Full, raw));
        }
        self.held.fetch_add(size, Ordering::Relaxed);
        self.tx.send(raw).map_err(|e| {
            self.held.fetch_sub(size, Ordering::Relaxed);
            (Refused::Closed, e.0)
        })
    }
}

impl IntakeReceiver {
    /// Takes up to `limit` messages into `buf` (waiting for the first); 0 once intake is over.
    pub async fn recv_many(&mut self, buf: &mut Vec<RawMessage>, limit: usize) -> usize {
        let start = buf.len();
        let n = self.rx.recv_many(buf, limit).await;
        let bytes: usize = buf[start..].iter().map(|m| m.payload.len()).sum();
        self.held.fetch_sub(bytes, Ordering::Relaxed);
        n
    }

    /// Payload bytes waiting.
    pub fn held_bytes(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }
}

/// One message as received.
#[derive(Debug, Clone)]
pub struct RawMessage {
    pub channel: String,
    pub payload: Vec<u8>,
    /// Milliseconds since the epoch.
    pub received_at: u64,
    /// In a cluster, the message's entry id in its server's ingest stream.
    pub position: Option<String>,
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
    tx: IntakeSender,
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
    tx: &IntakeSender,
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
                                    position: None,
                                };
                                match tx.send(raw) {
                                    Ok(()) => {}
                                    Err(Refused::Full) => {
                                        metrics.intake_dropped.inc();
                                        if let Some(held_back) = DROPPED_LOG.check() {
                                            tracing::error!(buffer_bytes = tx.max_bytes, similar_held_back = held_back, "intake buffer full (Redis does not take writes?): dropping a message");
                                        }
                                    }
                                    Err(Refused::Closed) => {
                                        tracing::error!("nothing takes the messages any more: leaving the channels");
                                        return;
                                    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(bytes: usize) -> RawMessage {
        RawMessage {
            channel: "c".into(),
            payload: vec![b'x'; bytes],
            received_at: 0,
            position: None,
        }
    }

    #[tokio::test]
    async fn the_intake_holds_at_most_its_bound_in_bytes() {
        let (tx, mut rx) = intake(10);
        assert_eq!(tx.send(raw(6)), Ok(()));
        assert_eq!(tx.send(raw(6)), Err(Refused::Full), "12 bytes > 10");
        assert_eq!(tx.send(raw(4)), Ok(()));
        assert_eq!(rx.held_bytes(), 10);
        let mut got = Vec::new();
        assert_eq!(rx.recv_many(&mut got, 10).await, 2);
        assert_eq!(rx.held_bytes(), 0);
        assert_eq!(tx.send(raw(10)), Ok(()), "room again once taken");
        drop(rx);
        assert_eq!(tx.send(raw(0)), Err(Refused::Closed));
    }
}
