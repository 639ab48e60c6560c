//! The durable per-hook queues: one Redis stream per hook (`<ownPrefix>:queue:<hookId>`).
//!
//! The queue owns everything about its contents: the streams, each hook's depth (the metric and
//! the count the drops are computed from), the drops of a full queue, the acknowledgements and
//! the wake-ups of whoever reads a hook's queue. It does not know what an event means (the
//! enqueuer decides what goes in) nor how it is sent (delivery takes entries out).
//!
//! Every entry carries its **lane**: the internal id of the event's meeting, or `""` for events
//! that name none. The guarantee readers build on it (see [`crate::delivery`]): the entries of
//! one lane are delivered in the order they were appended; entries of different lanes may be
//! delivered in parallel and complete in any order. With `hooks.ordering: hook` the reader puts
//! every entry in one lane, and the hook's entries are delivered strictly in order.
//!
//! Algorithm, and why it is at-least-once:
//! 1. The enqueuer adds every delivery to its hook's stream ([`DeliveryQueue::append`]:
//!    `XADD … MAXLEN = queueSize * l <lane> e <event id> p <payload>`, between two `XLEN`s) in
//!    one MULTI with the state changes of the same messages, and only after Redis took them
//!    tells the queue ([`DeliveryQueue::appended`]), which sets the depth, counts exactly what a
//!    full stream dropped (length before + added − length after) and wakes the hook's reader.
//!    Nothing is sent before it is in Redis.
//! 2. A reader ([`HookQueue`]) reads its stream in order (`XRANGE` after the last id it read),
//!    keeps a bounded window of entries in memory, and sends them lane by lane. After a success
//!    (or a deliberate drop) it acknowledges exactly the entries it sent. Acknowledgements
//!    complete out of order across lanes, so they delete entries one by one: the
//!    [`Acknowledger`] gathers them for a few milliseconds and sends one `XDEL key id…` per hook.
//!    What is left in a stream is exactly what is not yet delivered, in order; a restart reads it
//!    from the start. A crash between the receiver's answer and that `XDEL` re-sends those
//!    entries after a restart: a duplicate (with the same `webhook-id`), never a gap.
//! 3. A full stream drops its oldest entry as the new one goes in; [`DeliveryQueue::appended`]
//!    counts it and warns. (An entry a reader already holds in its window is still delivered.)
//! 4. A hook's retry state is a small hash (`<ownPrefix>:attempt:<hookId>`), written only when an
//!    attempt fails: `failures` (consecutive failed attempts of the hook) and, per failed
//!    request, `head:<first entry id>` = `<entries>,<first attempt ms>`, so a retry after a
//!    restart sends the same entries with the same `timestamp`. (Version 0.1 wrote `entry`,
//!    `count`, `firstAttempt`; they are still read.)
//!
//! Removing a hook deletes its stream under the enqueue gate, so an append that routed to the
//! hook just before it was removed cannot re-create the stream afterwards.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock as StdRwLock};
use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::{AsyncCommands, Pipeline};
use tokio::sync::{RwLock, RwLockReadGuard, mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::health::Readiness;
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
    /// The meeting it belongs to (internal id), `""` for none; absent in entries of 0.1.
    pub lane: String,
    /// The event id (`user-joined`, …).
    pub event: String,
    /// The JSON to send.
    pub payload: String,
    /// The server the event came from, in a cluster (`None`: this server, `bbb.serverDomain`).
    pub domain: Option<String>,
}

impl Entry {
    /// When the entry was queued (ms), from its stream id.
    pub fn enqueued_at(&self) -> u64 {
        stream_id_key(&self.id).0
    }

    /// The stream id as a comparable pair.
    pub fn key(&self) -> (u64, u64) {
        stream_id_key(&self.id)
    }
}

/// What a failed request was, so that its retry is the same request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailedRequest {
    /// How many entries it carried: a retry sends the same ones.
    pub count: usize,
    /// The `timestamp` form field: time of the first attempt (ms).
    pub first_attempt: u64,
}

/// A hook's retry state, as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetryState {
    /// Consecutive failed attempts of the hook.
    pub failures: u32,
    /// Failed requests by the stream id of their first entry.
    pub requests: HashMap<String, FailedRequest>,
}

/// What the queue knows of one hook between Redis round trips.
#[derive(Debug, Default)]
struct HookState {
    /// Entries in the stream, as far as this process knows (appends minus trims).
    depth: AtomicI64,
    /// Counts appends: each reader of the hook (one, or one per partition in a cluster) waits
    /// for it to move past the value it last saw, so no wake-up is lost or taken by another.
    wake: watch::Sender<u64>,
}

/// One delivery to append.
#[derive(Debug, Clone, Copy)]
pub struct Append<'a> {
    pub lane: &'a str,
    pub event: &'a str,
    pub payload: &'a str,
    /// The server the event came from, in a cluster.
    pub domain: Option<&'a str>,
}

/// A batch's appends, grouped by hook (each hook's in order).
#[derive(Debug, Default)]
pub struct Appends<'a> {
    by_hook: indexmap::IndexMap<&'a str, Vec<Append<'a>>>,
}

impl<'a> Appends<'a> {
    pub fn push(&mut self, hook: &'a str, append: Append<'a>) {
        self.by_hook.entry(hook).or_default().push(append);
    }
}

#[derive(Debug, Clone)]
struct ClusterWakeups {
    channel: String,
    idle_poll: Duration,
}

/// An acknowledgement: these entries of `hook`'s queue are done.
struct Ack {
    hook: String,
    entries: Vec<String>,
    /// Told once every acknowledgement sent before this one is written ([`HookQueue::flush`]).
    written: Option<tokio::sync::oneshot::Sender<()>>,
}

#[derive(Clone)]
pub struct DeliveryQueue {
    conn: ConnectionManager,
    keys: Keys,
    max_len: usize,
    gate: Arc<RwLock<()>>,
    hooks: Arc<StdRwLock<HashMap<String, Arc<HookState>>>>,
    metrics: Arc<Metrics>,
    readiness: Readiness,
    /// In a cluster: the channel that tells the other relays which queues grew, and how long an
    /// idle reader waits before looking anyway (a wake-up missed while reconnecting).
    cluster: Option<ClusterWakeups>,
    /// Unbounded as a channel, bounded in fact: an entry is acknowledged once, and only after
    /// a reader took it into its window (at most 1,024 per hook, and none are read while Redis
    /// does not answer).
    acks: mpsc::UnboundedSender<Ack>,
}

impl DeliveryQueue {
    /// The queue, and its acknowledger: a task to run for as long as anything is delivered.
    pub fn new(
        conn: ConnectionManager,
        keys: Keys,
        max_len: usize,
        metrics: Arc<Metrics>,
        readiness: Readiness,
    ) -> (DeliveryQueue, Acknowledger) {
        let (acks, rx) = mpsc::unbounded_channel();
        let queue = DeliveryQueue {
            conn,
            keys,
            max_len,
            gate: Arc::new(RwLock::new(())),
            hooks: Default::default(),
            metrics,
            readiness,
            cluster: None,
            acks,
        };
        let acknowledger = Acknowledger {
            queue: queue.clone(),
            rx,
        };
        (queue, acknowledger)
    }

    /// In a cluster, appends are announced on `channel` (see [`DeliveryQueue::wake`]) and idle
    /// readers look at their queue every `idle_poll` anyway.
    pub fn announce_appends(mut self, channel: String, idle_poll: Duration) -> Self {
        self.cluster = Some(ClusterWakeups { channel, idle_poll });
        self
    }

    /// Another relay appended to this hook's queue: wakes its reader here, if any.
    pub fn wake(&self, hook_id: &str) {
        if let Some(state) = self.known_state(hook_id) {
            state.wake.send_modify(|n| *n += 1);
        }
    }

    pub fn connection(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// A hook's state if this process has one (none for a hook deleted meanwhile).
    fn known_state(&self, hook_id: &str) -> Option<Arc<HookState>> {
        self.hooks
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(hook_id)
            .cloned()
    }

    fn state(&self, hook_id: &str) -> Arc<HookState> {
        if let Some(s) = self.known_state(hook_id) {
            return s;
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

    /// Adds a batch's appends to `pipe`, hook by hook: `XLEN`, the `XADD`s, `XLEN` again, so
    /// that the replies tell exactly how many entries a full stream dropped. Every other command
    /// of `pipe` must be ignored; once Redis took it, pass its replies to
    /// [`DeliveryQueue::appended`].
    pub fn append(&self, pipe: &mut Pipeline, appends: &Appends<'_>) {
        for (hook, items) in &appends.by_hook {
            let key = self.keys.queue(hook);
            pipe.cmd("XLEN").arg(&key);
            for item in items {
                let xadd = pipe
                    .cmd("XADD")
                    .arg(&key)
                    .arg("MAXLEN")
                    .arg("=")
                    .arg(self.max_len)
                    .arg("*")
                    .arg("l")
                    .arg(item.lane)
                    .arg("e")
                    .arg(item.event)
                    .arg("p")
                    .arg(item.payload);
                if let Some(domain) = item.domain {
                    xadd.arg("d").arg(domain);
                }
                xadd.ignore();
            }
            pipe.cmd("XLEN").arg(&key);
        }
        if let Some(cluster) = &self.cluster
            && !appends.by_hook.is_empty()
        {
            let ids: Vec<&str> = appends.by_hook.keys().copied().collect();
            pipe.cmd("PUBLISH")
                .arg(&cluster.channel)
                .arg(ids.join(" "))
                .ignore();
        }
    }

    /// Accounts for appends Redis has taken, from the stream lengths before and after each
    /// hook's appends (the replies of [`DeliveryQueue::append`]'s pipe, in order): depth, what a
    /// full queue dropped, and a wake-up for each hook's reader.
    pub fn appended(&self, appends: &Appends<'_>, lengths: &[u64]) {
        let max = self.max_len as i64;
        for ((hook, items), pair) in appends.by_hook.iter().zip(lengths.chunks(2)) {
            let [before, after] = pair else { continue };
            let (before, after) = (*before as i64, *after as i64);
            let dropped = before + items.len() as i64 - after;
            let state = self.state(hook);
            if dropped > 0 {
                self.metrics
                    .queue_dropped
                    .with_label_values(&[hook])
                    .inc_by(dropped as u64);
                self.readiness.add_dropped(dropped as u64);
                if let Some(held_back) = DROPPED_LOG.check() {
                    tracing::warn!(hook = %hook, dropped, queue_size = max, similar_held_back = held_back, "queue full: dropped the oldest events");
                }
            }
            // Acknowledgements may run between the two lengths: the stream's own count wins.
            self.set_depth(hook, &state, after);
            state.wake.send_modify(|n| *n += 1);
        }
    }

    /// The reading side of one hook's queue.
    pub fn hook(&self, hook_id: &str) -> HookQueue {
        self.hook_part(hook_id, None)
    }

    /// The reading side of one partition of a hook's queue (in a cluster, where the lanes of a
    /// hook are spread over relays): its own wake-ups and failure count.
    pub fn hook_part(&self, hook_id: &str, part: Option<u32>) -> HookQueue {
        let state = self.state(hook_id);
        HookQueue {
            queue: self.clone(),
            woken: state.wake.subscribe(),
            _state: state,
            hook: hook_id.to_string(),
            failures_field: match part {
                None => "failures".to_owned(),
                Some(p) => format!("failures:{p}"),
            },
        }
    }

    /// Deletes a hook's queue and retry state, after any append in progress, and forgets its
    /// depth.
    pub async fn delete(&self, hook_id: &str) -> redis::RedisResult<()> {
        let _exclusive = self.gate.write().await;
        let mut conn = self.conn.clone();
        redis::pipe()
            .del(&[self.keys.queue(hook_id), self.keys.attempt(hook_id)])
            .ignore()
            .srem(self.keys.destroyed(), hook_id)
            .ignore()
            .query_async::<()>(&mut conn)
            .await?;
        self.hooks
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(hook_id);
        let _ = self.metrics.queue_depth.remove_label_values(&[hook_id]);
        Ok(())
    }

    /// Whether the hook is recorded as destroyed: the proof that its queue may go.
    pub async fn was_destroyed(&self, hook_id: &str) -> redis::RedisResult<bool> {
        let mut conn = self.conn.clone();
        conn.sismember(self.keys.destroyed(), hook_id).await
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

    /// Deletes delivered entries from `hook`'s stream and lowers its depth accordingly.
    async fn remove_entries(&self, hook_id: &str, ids: &[String]) -> redis::RedisResult<()> {
        let mut conn = self.conn.clone();
        let removed: i64 = redis::cmd("XDEL")
            .arg(self.keys.queue(hook_id))
            .arg(ids)
            .query_async(&mut conn)
            .await?;
        // A hook deleted meanwhile has no state left to lower.
        if let Some(state) = self.known_state(hook_id) {
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
    /// Holds the wake-up sender while this reader lives, even if the hook's state is dropped
    /// from the queue meanwhile (a closed channel would make every wait return at once).
    _state: Arc<HookState>,
    woken: watch::Receiver<u64>,
    hook: String,
    /// The retry hash's field counting this reader's consecutive failures.
    failures_field: String,
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
                lane: text(fields.remove("l")),
                event: text(fields.remove("e")),
                payload: text(fields.remove("p")),
                domain: fields.remove("d").map(|d| text(Some(d))),
            })
            .collect())
    }

    /// Returns once something was appended since the last wake-up (at once if it already was).
    pub async fn appended(&mut self) {
        // The sender lives in the queue's state as long as this reader: `changed` cannot fail.
        match &self.queue.cluster {
            None => {
                let _ = self.woken.changed().await;
            }
            // Other relays append too; their wake-ups come over pub/sub, which can miss one.
            Some(c) => {
                let _ = tokio::time::timeout(c.idle_poll, self.woken.changed()).await;
            }
        }
    }

    /// These entries are done; removed from Redis shortly.
    pub fn ack(&self, entries: Vec<String>) {
        // The acknowledger only stops after the last reader: a send cannot fail before then,
        // and an acknowledgement lost after it is a duplicate at the next start, never a gap.
        let _ = self.queue.acks.send(Ack {
            hook: self.hook.clone(),
            entries,
            written: None,
        });
    }

    /// Returns once every acknowledgement made so far is written to Redis (or after `limit`):
    /// before a reader hands its queue to another relay, which must not read them again.
    pub async fn flush(&self, limit: Duration) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let sent = self.queue.acks.send(Ack {
            hook: self.hook.clone(),
            entries: Vec::new(),
            written: Some(tx),
        });
        if sent.is_ok() {
            let _ = tokio::time::timeout(limit, rx).await;
        }
    }

    pub async fn load_retry_state(&self) -> redis::RedisResult<RetryState> {
        let mut conn = self.queue.conn.clone();
        let h: HashMap<String, String> = conn.hgetall(self.queue.keys.attempt(&self.hook)).await?;
        Ok(retry_state_from(&h, &self.failures_field))
    }

    /// Records a failed request (and the hook's failure count).
    pub async fn save_failure(
        &self,
        failures: u32,
        head: &str,
        request: FailedRequest,
    ) -> redis::RedisResult<()> {
        let mut conn = self.queue.conn.clone();
        conn.hset_multiple::<_, _, _, ()>(
            self.queue.keys.attempt(&self.hook),
            &[
                (self.failures_field.clone(), failures.to_string()),
                (
                    format!("head:{head}"),
                    format!("{},{}", request.count, request.first_attempt),
                ),
            ],
        )
        .await
    }

    /// Forgets a failed request that went through at last; with `recovered`, the hook's
    /// failure count too.
    pub async fn clear_failure(&self, head: &str, recovered: bool) -> redis::RedisResult<()> {
        let mut conn = self.queue.conn.clone();
        let key = self.queue.keys.attempt(&self.hook);
        let mut fields = vec![format!("head:{head}")];
        if recovered {
            fields.push(self.failures_field.clone());
            fields.extend(["entry", "count", "firstAttempt"].map(String::from));
        }
        conn.hdel::<_, _, ()>(key, fields).await
    }
}

/// Reads the retry hash, in this version's layout or 0.1's.
fn retry_state_from(h: &HashMap<String, String>, failures_field: &str) -> RetryState {
    let mut state = RetryState {
        failures: h
            .get(failures_field)
            .and_then(|f| f.parse().ok())
            .unwrap_or(0),
        requests: HashMap::new(),
    };
    for (field, value) in h {
        let Some(head) = field.strip_prefix("head:") else {
            continue;
        };
        let Some((count, first)) = value.split_once(',') else {
            continue;
        };
        if let (Ok(count), Ok(first_attempt)) = (count.parse(), first.parse()) {
            state.requests.insert(
                head.to_string(),
                FailedRequest {
                    count,
                    first_attempt,
                },
            );
        }
    }
    if let (Some(entry), Some(first_attempt)) = (
        h.get("entry"),
        h.get("firstAttempt").and_then(|f| f.parse().ok()),
    ) {
        let count = h.get("count").and_then(|c| c.parse().ok()).unwrap_or(1);
        state
            .requests
            .entry(entry.clone())
            .or_insert(FailedRequest {
                count,
                first_attempt,
            });
    }
    state
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
        let mut pending: HashMap<String, Vec<String>> = HashMap::new();
        let mut waiting: Vec<tokio::sync::oneshot::Sender<()>> = Vec::new();
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
            self.take(&mut pending, &mut batch, &mut waiting);
            if self.remove(&mut pending).await {
                for w in waiting.drain(..) {
                    let _ = w.send(());
                }
            } else {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                    _ = stop.cancelled() => break,
                }
            }
        }
        // The last acknowledgements: whatever arrived, written while Redis lets us.
        let deadline = tokio::time::Instant::now() + final_grace;
        self.take(&mut pending, &mut batch, &mut waiting);
        while !self.remove(&mut pending).await && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if !pending.is_empty() {
            tracing::warn!(
                hooks = pending.len(),
                "stopping with unwritten acknowledgements: those deliveries are sent again at the next start"
            );
        }
    }

    /// Moves whatever is waiting in the channel into `pending`, by hook.
    fn take(
        &mut self,
        pending: &mut HashMap<String, Vec<String>>,
        batch: &mut Vec<Ack>,
        waiting: &mut Vec<tokio::sync::oneshot::Sender<()>>,
    ) {
        while let Ok(a) = self.rx.try_recv() {
            batch.push(a);
        }
        for ack in batch.drain(..) {
            if !ack.entries.is_empty() {
                pending.entry(ack.hook).or_default().extend(ack.entries);
            }
            waiting.extend(ack.written);
        }
    }

    /// Deletes every pending entry; false when some could not be deleted (they stay pending).
    async fn remove(&self, pending: &mut HashMap<String, Vec<String>>) -> bool {
        let mut ok = true;
        for (hook, ids) in pending.drain().collect::<Vec<_>>() {
            if let Err(e) = self.queue.remove_entries(&hook, &ids).await {
                tracing::warn!(hook = %hook, error = %e, "cannot acknowledge deliveries yet; retrying");
                pending.insert(hook, ids);
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

/// `<ms>-<seq>` as a comparable pair.
fn stream_id_key(id: &str) -> (u64, u64) {
    let (ms, seq) = id.split_once('-').unwrap_or((id, "0"));
    (ms.parse().unwrap_or(0), seq.parse().unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_times_come_from_their_ids() {
        let e = Entry {
            id: "1700000000123-4".into(),
            lane: String::new(),
            event: "x".into(),
            payload: "{}".into(),
            domain: None,
        };
        assert_eq!(e.enqueued_at(), 1700000000123);
        assert_eq!(e.key(), (1700000000123, 4));
    }

    #[test]
    fn retry_state_in_both_layouts() {
        let h: HashMap<String, String> = [
            ("failures", "3"),
            ("head:5-1", "20,1700"),
            ("head:bad", "x"),
            ("entry", "4-0"),
            ("count", "2"),
            ("firstAttempt", "1600"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let s = retry_state_from(&h, "failures");
        assert_eq!(s.failures, 3);
        assert_eq!(
            s.requests["5-1"],
            FailedRequest {
                count: 20,
                first_attempt: 1700
            }
        );
        assert_eq!(
            s.requests["4-0"],
            FailedRequest {
                count: 2,
                first_attempt: 1600
            }
        );
        assert_eq!(s.requests.len(), 2);
        assert_eq!(
            retry_state_from(&HashMap::new(), "failures"),
            RetryState::default()
        );
    }

    #[test]
    fn stream_ids_compare_numerically() {
        assert!(stream_id_key("10-0") > stream_id_key("9-5"));
        assert!(stream_id_key("10-10") > stream_id_key("10-9"));
    }
}
