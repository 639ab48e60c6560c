//! The durable per-hook queues: one Redis stream per hook (`<ownPrefix>:queue:<hookId>`).
//!
//! Algorithm, and why it is at-least-once:
//! 1. The processor appends every delivery to its hook's stream (`XADD … MAXLEN = queueSize`)
//!    in one MULTI with the state changes of the same messages, and only then wakes the hook's
//!    worker. Nothing is sent before it is in Redis.
//! 2. The worker reads its stream in order (`XRANGE`), sends the oldest entries, and after a
//!    success (or a deliberate drop) removes everything up to the last one it sent
//!    (`XTRIM MINID`). A crash between the receiver's answer and that trim re-sends those entries
//!    after a restart: a duplicate, never a gap.
//! 3. A full stream drops its oldest entry as the new one goes in; the processor counts it and
//!    warns.
//! 4. A hook's retry state (attempts so far, first attempt time) for the head of its queue is a
//!    small hash (`<ownPrefix>:attempt:<hookId>`), written only when an attempt fails, so retries
//!    keep their schedule and `timestamp` across restarts.
//!
//! Removing a hook deletes its stream under the enqueue gate, so an append that routed to the
//! hook just before it was removed cannot re-create the stream afterwards.

use std::collections::HashMap;
use std::sync::Arc;

use redis::aio::ConnectionManager;
use redis::{AsyncCommands, Pipeline};
use tokio::sync::{RwLock, RwLockReadGuard};

use crate::keys::Keys;

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

#[derive(Clone)]
pub struct DeliveryQueue {
    conn: ConnectionManager,
    keys: Keys,
    max_len: usize,
    gate: Arc<RwLock<()>>,
}

impl DeliveryQueue {
    pub fn new(conn: ConnectionManager, keys: Keys, max_len: usize) -> Self {
        DeliveryQueue {
            conn,
            keys,
            max_len,
            gate: Arc::new(RwLock::new(())),
        }
    }

    pub fn max_len(&self) -> usize {
        self.max_len
    }

    pub fn connection(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// Held while routing and appending a batch: queue deletion waits for it.
    pub async fn enqueue_gate(&self) -> RwLockReadGuard<'_, ()> {
        self.gate.read().await
    }

    /// Adds the append of one delivery to `pipe`.
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

    /// Up to `count` entries after `after` (from the start when `None`), oldest first.
    pub async fn read(
        &self,
        hook_id: &str,
        after: Option<&str>,
        count: usize,
    ) -> redis::RedisResult<Vec<Entry>> {
        let start = match after {
            Some(id) => format!("({id}"),
            None => "-".to_string(),
        };
        let mut conn = self.conn.clone();
        let reply: Vec<(String, HashMap<String, Vec<u8>>)> = redis::cmd("XRANGE")
            .arg(self.keys.queue(hook_id))
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

    /// Removes every entry up to and including `upto`; returns how many were removed.
    pub async fn ack(&self, hook_id: &str, upto: &str) -> redis::RedisResult<u64> {
        let mut conn = self.conn.clone();
        redis::cmd("XTRIM")
            .arg(self.keys.queue(hook_id))
            .arg("MINID")
            .arg("=")
            .arg(next_id(upto))
            .query_async(&mut conn)
            .await
    }

    pub async fn len(&self, hook_id: &str) -> redis::RedisResult<u64> {
        let mut conn = self.conn.clone();
        conn.xlen(self.keys.queue(hook_id)).await
    }

    /// Deletes a hook's queue and retry state, after any append in progress.
    pub async fn delete(&self, hook_id: &str) -> redis::RedisResult<()> {
        let _exclusive = self.gate.write().await;
        let mut conn = self.conn.clone();
        conn.del::<_, ()>(&[self.keys.queue(hook_id), self.keys.attempt(hook_id)])
            .await
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

    pub async fn load_attempts(&self, hook_id: &str) -> redis::RedisResult<Option<Attempts>> {
        let mut conn = self.conn.clone();
        let h: HashMap<String, String> = conn.hgetall(self.keys.attempt(hook_id)).await?;
        Ok((|| {
            Some(Attempts {
                entry: h.get("entry")?.clone(),
                failures: h.get("failures")?.parse().ok()?,
                first_attempt: h.get("firstAttempt")?.parse().ok()?,
                count: h.get("count").and_then(|c| c.parse().ok()).unwrap_or(1),
            })
        })())
    }

    pub async fn save_attempts(&self, hook_id: &str, a: &Attempts) -> redis::RedisResult<()> {
        let mut conn = self.conn.clone();
        conn.hset_multiple::<_, _, _, ()>(
            self.keys.attempt(hook_id),
            &[
                ("entry", a.entry.clone()),
                ("failures", a.failures.to_string()),
                ("firstAttempt", a.first_attempt.to_string()),
                ("count", a.count.to_string()),
            ],
        )
        .await
    }

    pub async fn clear_attempts(&self, hook_id: &str) -> redis::RedisResult<()> {
        let mut conn = self.conn.clone();
        conn.del::<_, ()>(self.keys.attempt(hook_id)).await
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
}
