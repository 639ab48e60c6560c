//! The durable per-hook queues: one Redis stream per hook (`<ownPrefix>:queue:<hookId>`).
//!
//! The queue owns everything about its contents: the streams, each hook's depth (the metric and
//! the count the drops are computed from), the drops of a full queue, the acknowledgements and
//! the wake-ups of whoever reads a hook's queue. It does not know what an event means (the
//! enqueuer decides what goes in) nor how it is sent (delivery takes entries out).
//!
//! Algorithm, and why it is at-least-once:
//! 1. The enqueuer adds every delivery to its hook's stream ([`DeliveryQueue::append`]:
//!    `XADD … MAXLEN = queueSize`) in one MULTI with the state changes of the same messages, and
//!    only after Redis took them tells the queue ([`DeliveryQueue::appended`]), which counts
//!    depth and drops and wakes the hook's reader. Nothing is sent before it is in Redis.
//! 2. A reader ([`HookQueue`]) reads its stream in order (`XRANGE`), sends the oldest entries,
//!    and after a success (or a deliberate drop) acknowledges up to the last one it sent. The
//!    [`Acknowledger`] gathers acknowledgements for a few milliseconds and removes everything up
//!    to the newest one per hook (`XTRIM MINID`). A crash between the receiver's answer and that
//!    trim re-sends those entries after a restart: a duplicate, never a gap.
//! 3. A full stream drops its oldest entry as the new one goes in; [`DeliveryQueue::appended`]
//!    counts it and warns.
//! 4. A hook's retry state (attempts so far, first attempt time) for the head of its queue is a
//!    small hash (`<ownPrefix>:attempt:<hookId>`), written only when an attempt fails, so retries
//!    keep their schedule and `timestamp` across restarts.
//!
//! Removing a hook deletes its stream under the enqueue gate, so an append that routed to the
//! hook just before it was removed cannot re-create the stream afterwards.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock as StdRwLock};
use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::{AsyncCommands, Pipeline};
use tokio::sync::{Notify, RwLock, RwLockReadGuard, mpsc};
use tokio_util::sync::CancellationToken;

use crate::keys::Keys;
use crate::logging::RateLimit;
use crate::metrics::Metrics;

/// How long acknowledgements gather before the queues are trimmed.
const ACK_PERIOD: Duration = Duration::from_millis(5);

static DROPPED_LOG: RateLimit = RateLimit::new(Duration::from_secs(10));

/// One queued delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The stream id (`<ms>-<seq>`): unique in the queue, increasing.
    pub id: String,
    /// The event id (`user-joined`, …).
    pub event: String,
    /// The JSON to send.
    pub payload: String,
}

impl Entry {
    /// When the entry was queued (ms), from its stream id.
    pub fn enqueued_at(&self) -> u64 {
        self.id
            .split('-')
            .next()
            .and_then(|ms| ms.parse().ok())
            .unwrap_or(0)
    }
}

/// Retry state of the entry at the head of a queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempts {
    /// The stream id of the first entry of the failing request.
    pub entry: String,
    pub failures: u32,
    /// The `timestamp` form field: time of the first attempt (ms).
    pub first_attempt: u64,
    /// How many entries the request carried (`multiEvent`): a retry sends the same ones.
    pub count: usize,
}

/// What the queue knows of one hook between Redis round trips.
#[derive(Debug, Default)]
struct HookState {
    /// Entries in the stream, as far as this process knows (appends minus trims).
    depth: AtomicI64,
    /// Woken when entries were appended.
    wake: Notify,
}

/// An acknowledgement: everything up to `entry` in `hook`'s queue is done.
struct Ack {
    hook: String,
    entry: String,
}

#[derive(Clone)]
pub struct DeliveryQueue {
    conn: ConnectionManager,
    keys: Keys,
    max_len: usize,
    gate: Arc<RwLock<()>>,
    hooks: Arc<StdRwLock<HashMap<String, Arc<HookState>>>>,
    metrics: Arc<Metrics>,
    acks: mpsc::UnboundedSender<Ack>,
}

impl DeliveryQueue {
    /// The queue, and its acknowledger: a task to run for as long as anything is delivered.
    pub fn new(
        conn: ConnectionManager,
        keys: Keys,
        max_len: usize,
        metrics: Arc<Metrics>,
    ) -> (DeliveryQueue, Acknowledger) {
        let (acks, rx) = mpsc::unbounded_channel();
        let queue = DeliveryQueue {
            conn,
            keys,
            max_len,
            gate: Arc::new(RwLock::new(())),
            hooks: Default::default(),
            metrics,
            acks,
        };
        let acknowledger = Acknowledger {
            queue: queue.clone(),
            rx,
        };
        (queue, acknowledger)
    }

    pub fn connection(&self) -> ConnectionManager {
        self.conn.clone()
    }

    fn state(&self, hook_id: &str) -> Arc<HookState> {
        if let Some(s) = self
            .hooks
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(hook_id)
        {
            return s.clone();
        }
        self.hooks
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .entry(hook_id.to_string())
            .or_default()
            .clone()
    }

    /// Sets a hook's depth (entry count) to what Redis holds; called once per hook at start,
    /// before anything is appended.
    pub async fn resume(&self, hook_id: &str) -> redis::RedisResult<u64> {
        let mut conn = self.conn.clone();
        let depth: u64 = conn.xlen(self.keys.queue(hook_id)).await?;
        self.set_depth(hook_id, &self.state(hook_id), depth as i64);
        Ok(depth)
    }

    fn set_depth(&self, hook_id: &str, state: &HookState, depth: i64) {
        state.depth.store(depth, Ordering::Relaxed);
        self.metrics
            .queue_depth
            .with_label_values(&[hook_id])
            .set(depth);
    }

    /// Held while routing and appending a batch: queue deletion waits for it.
    pub async fn enqueue_gate(&self) -> RwLockReadGuard<'_, ()> {
        self.gate.read().await
    }

    /// Adds the append of one delivery to `pipe`. Once Redis has taken `pipe`, report the
    /// appends with [`DeliveryQueue::appended`].
    pub fn append(&self, pipe: &mut Pipeline, hook_id: &str, event_id: &str, payload: &str) {
        pipe.cmd("XADD")
            .arg(self.keys.queue(hook_id))
            .arg("MAXLEN")
            .arg("=")
            .arg(self.max_len)
            .arg("*")
            .arg("e")
            .arg(event_id)
            .arg("p")
            .arg(payload)
            .ignore();
    }

    /// Accounts for appends Redis has taken (hook id → entries added): depth, what a full
    /// queue dropped, and a wake-up for each hook's reader.
    pub fn appended<'a>(&self, added: impl IntoIterator<Item = (&'a str, i64)>) {
        let max = self.max_len as i64;
        for (hook, added) in added {
            let state = self.state(hook);
            let depth = state.depth.fetch_add(added, Ordering::Relaxed) + added;
            if depth > max {
                let dropped = depth - max;
                state.depth.fetch_sub(dropped, Ordering::Relaxed);
                self.metrics
                    .queue_dropped
                    .with_label_values(&[hook])
                    .inc_by(dropped as u64);
                if let Some(held_back) = DROPPED_LOG.check() {
                    tracing::warn!(hook = %hook, dropped, queue_size = max, similar_held_back = held_back, "queue full: dropped the oldest events");
                }
            }
            self.metrics
                .queue_depth
                .with_label_values(&[hook])
                .set(depth.min(max));
            state.wake.notify_one();
        }
    }

    /// The reading side of one hook's queue.
    pub fn hook(&self, hook_id: &str) -> HookQueue {
        HookQueue {
            queue: self.clone(),
            state: self.state(hook_id),
            hook: hook_id.to_string(),
        }
    }

    /// Deletes a hook's queue and retry state, after any append in progress, and forgets its
    /// depth.
    pub async fn delete(&self, hook_id: &str) -> redis::RedisResult<()> {
        let _exclusive = self.gate.write().await;
        let mut conn = self.conn.clone();
        conn.del::<_, ()>(&[self.keys.queue(hook_id), self.keys.attempt(hook_id)])
            .await?;
        self.hooks
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(hook_id);
        let _ = self.metrics.queue_depth.remove_label_values(&[hook_id]);
        Ok(())
    }

    /// Hook ids that have a queue in Redis.
    pub async fn queued_hooks(&self) -> redis::RedisResult<Vec<String>> {
        let mut conn = self.conn.clone();
        let mut keys: Vec<String> = Vec::new();
        let mut iter: redis::AsyncIter<String> = conn.scan_match(self.keys.queue_pattern()).await?;
        while let Some(item) = futures_util::StreamExt::next(&mut iter).await {
            keys.push(item?);
        }
        Ok(keys
            .iter()
            .filter_map(|k| self.keys.hook_of_queue(k).map(String::from))
            .collect())
    }

    /// Trims `hook`'s stream up to and including `upto` and lowers its depth accordingly.
    async fn trim(&self, hook_id: &str, upto: &str) -> redis::RedisResult<()> {
        let mut conn = self.conn.clone();
        let removed: i64 = redis::cmd("XTRIM")
            .arg(self.keys.queue(hook_id))
            .arg("MINID")
            .arg("=")
            .arg(next_id(upto))
            .query_async(&mut conn)
            .await?;
        // A hook deleted meanwhile has no state left to lower.
        let state = self
            .hooks
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(hook_id)
            .cloned();
        if let Some(state) = state {
            let depth = state.depth.fetch_sub(removed, Ordering::Relaxed) - removed;
            self.metrics
                .queue_depth
                .with_label_values(&[hook_id])
                .set(depth.max(0));
        }
        Ok(())
    }
}

/// One hook's queue as its reader sees it: entries in order, wake-ups, acknowledgements and
/// the retry state of the head.
pub struct HookQueue {
    queue: DeliveryQueue,
    state: Arc<HookState>,
    hook: String,
}

impl HookQueue {
    /// Up to `count` entries after `after` (from the start when `None`), oldest first.
    pub async fn read(&self, after: Option<&str>, count: usize) -> redis::RedisResult<Vec<Entry>> {
        let start = match after {
            Some(id) => format!("({id}"),
            None => "-".to_string(),
        };
        let mut conn = self.queue.conn.clone();
        let reply: Vec<(String, HashMap<String, Vec<u8>>)> = redis::cmd("XRANGE")
            .arg(self.queue.keys.queue(&self.hook))
            .arg(start)
            .arg("+")
            .arg("COUNT")
            .arg(count)
            .query_async(&mut conn)
            .await?;
        Ok(reply
            .into_iter()
            .map(|(id, mut fields)| Entry {
                id,
                event: text(fields.remove("e")),
                payload: text(fields.remove("p")),
            })
            .collect())
    }

    /// Returns once something was appended since the last wake-up (at once if it already was).
    pub async fn appended(&self) {
        self.state.wake.notified().await
    }

    /// Everything up to and including `entry` is done; removed from Redis shortly.
    pub fn ack(&self, entry: String) {
        // The acknowledger only stops after the last reader: a send cannot fail before then,
        // and an acknowledgement lost after it is a duplicate at the next start, never a gap.
        let _ = self.queue.acks.send(Ack {
            hook: self.hook.clone(),
            entry,
        });
    }

    pub async fn load_attempts(&self) -> redis::RedisResult<Option<Attempts>> {
        let mut conn = self.queue.conn.clone();
        let h: HashMap<String, String> = conn.hgetall(self.queue.keys.attempt(&self.hook)).await?;
        Ok((|| {
            Some(Attempts {
                entry: h.get("entry")?.clone(),
                failures: h.get("failures")?.parse().ok()?,
                first_attempt: h.get("firstAttempt")?.parse().ok()?,
                count: h.get("count").and_then(|c| c.parse().ok()).unwrap_or(1),
            })
        })())
    }

    pub async fn save_attempts(&self, a: &Attempts) -> redis::RedisResult<()> {
        let mut conn = self.queue.conn.clone();
        conn.hset_multiple::<_, _, _, ()>(
            self.queue.keys.attempt(&self.hook),
            &[
                ("entry", a.entry.clone()),
                ("failures", a.failures.to_string()),
                ("firstAttempt", a.first_attempt.to_string()),
                ("count", a.count.to_string()),
            ],
        )
        .await
    }

    pub async fn clear_attempts(&self) -> redis::RedisResult<()> {
        let mut conn = self.queue.conn.clone();
        conn.del::<_, ()>(self.queue.keys.attempt(&self.hook)).await
    }
}

/// Coalesces acknowledgements per hook and trims the streams: a busy hook costs one Redis
/// command per batch of successes rather than per event.
pub struct Acknowledger {
    queue: DeliveryQueue,
    rx: mpsc::UnboundedReceiver<Ack>,
}

impl Acknowledger {
    /// Runs until `stop` is cancelled, then writes what it still has (trying for up to
    /// `final_grace`) and returns. Cancel `stop` only after the last reader has stopped.
    pub async fn run(mut self, stop: CancellationToken, final_grace: Duration) {
        let mut pending: HashMap<String, String> = HashMap::new();
        let mut batch = Vec::with_capacity(256);
        loop {
            if pending.is_empty() {
                tokio::select! {
                    n = self.rx.recv_many(&mut batch, 256) => if n == 0 { return },
                    _ = stop.cancelled() => break,
                }
                // Let acknowledgements gather for a moment: one trim per hook per period instead
                // of one per delivery. A crash in that window re-sends at most that much.
                tokio::time::sleep(ACK_PERIOD).await;
            }
            self.take(&mut pending, &mut batch);
            if !self.trim(&mut pending).await {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                    _ = stop.cancelled() => break,
                }
            }
        }
        // The last acknowledgements: whatever arrived, written while Redis lets us.
        let deadline = tokio::time::Instant::now() + final_grace;
        self.take(&mut pending, &mut batch);
        while !self.trim(&mut pending).await && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if !pending.is_empty() {
            tracing::warn!(
                hooks = pending.len(),
                "stopping with unwritten acknowledgements: those deliveries are sent again at the next start"
            );
        }
    }

    /// Moves whatever is waiting in the channel into `pending`, newest entry per hook.
    fn take(&mut self, pending: &mut HashMap<String, String>, batch: &mut Vec<Ack>) {
        while let Ok(a) = self.rx.try_recv() {
            batch.push(a);
        }
        for ack in batch.drain(..) {
            let newer = pending
                .get(&ack.hook)
                .is_none_or(|old| stream_id_key(&ack.entry) > stream_id_key(old));
            if newer {
                pending.insert(ack.hook, ack.entry);
            }
        }
    }

    /// Trims every pending hook; false when some could not be trimmed (they stay pending).
    async fn trim(&self, pending: &mut HashMap<String, String>) -> bool {
        let mut ok = true;
        for (hook, entry) in pending.drain().collect::<Vec<_>>() {
            if let Err(e) = self.queue.trim(&hook, &entry).await {
                tracing::warn!(hook = %hook, error = %e, "cannot acknowledge deliveries yet; retrying");
                pending.insert(hook, entry);
                ok = false;
            }
        }
        ok
    }
}

fn text(v: Option<Vec<u8>>) -> String {
    v.map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// The smallest stream id after `id` (`5-3` → `5-4`).
pub fn next_id(id: &str) -> String {
    match id.split_once('-') {
        Some((ms, seq)) => match seq.parse::<u64>() {
            Ok(s) => format!("{ms}-{}", s + 1),
            Err(_) => id.to_string(),
        },
        None => format!("{id}-1"),
    }
}

/// `<ms>-<seq>` as a comparable pair.
fn stream_id_key(id: &str) -> (u64, u64) {
    let (ms, seq) = id.split_once('-').unwrap_or((id, "0"));
    (ms.parse().unwrap_or(0), seq.parse().unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_increase() {
        assert_eq!(next_id("1700000000000-0"), "1700000000000-1");
        assert_eq!(next_id("5-41"), "5-42");
        let e = Entry {
            id: "1700000000123-4".into(),
            event: "x".into(),
            payload: "{}".into(),
        };
        assert_eq!(e.enqueued_at(), 1700000000123);
    }

    #[test]
    fn stream_ids_compare_numerically() {
        assert!(stream_id_key("10-0") > stream_id_key("9-5"));
        assert!(stream_id_key("10-10") > stream_id_key("10-9"));
    }
}
