//! One hook's worker: read the queue in order, send, and on success move on; on failure wait as
//! the schedule says and send the same request again (same events, same `timestamp`, same
//! `webhook-id`).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::Shared;
use super::client::Outcome;
use super::retry::Next;
use crate::hooks::{Hook, RemoveOutcome};
use crate::queue::{Attempts, Entry, HookQueue};

/// Entries read from Redis at a time.
const PREFETCH: usize = 128;
/// Even without a wake-up, look at the queue this often.
const IDLE_RECHECK: Duration = Duration::from_secs(5);

pub(super) async fn run(
    hook: Arc<Hook>,
    shared: Arc<Shared>,
    queue: HookQueue,
    abort: CancellationToken,
) {
    let mut worker = Worker {
        hook,
        shared,
        queue,
        abort,
        buffer: VecDeque::new(),
        last_read: None,
        attempts: None,
    };
    worker.attempts = worker.queue.load_attempts().await.ok().flatten();
    worker.run().await;
}

struct Worker {
    hook: Arc<Hook>,
    shared: Arc<Shared>,
    queue: HookQueue,
    abort: CancellationToken,
    buffer: VecDeque<Entry>,
    last_read: Option<String>,
    /// Retry state of the request at the head of the queue, if it failed before.
    attempts: Option<Attempts>,
}

/// What happened to a request, for the loop.
enum Step {
    Next,
    Stop,
}

impl Worker {
    fn stopping(&self) -> bool {
        self.abort.is_cancelled() || self.shared.draining.is_cancelled()
    }

    async fn run(&mut self) {
        while !self.stopping() {
            if self.buffer.is_empty() && !self.fill().await {
                continue;
            }
            if let Step::Stop = self.deliver_head().await {
                return;
            }
        }
    }

    /// Reads more entries, or waits for some. False when nothing was read.
    async fn fill(&mut self) -> bool {
        match self.queue.read(self.last_read.as_deref(), PREFETCH).await {
            Ok(entries) if !entries.is_empty() => {
                self.last_read = entries.last().map(|e| e.id.clone());
                self.buffer.extend(entries);
                true
            }
            Ok(_) => {
                tokio::select! {
                    _ = self.queue.appended() => {}
                    _ = tokio::time::sleep(IDLE_RECHECK) => {}
                    _ = self.abort.cancelled() => {}
                    _ = self.shared.draining.cancelled() => {}
                }
                false
            }
            Err(e) => {
                tracing::warn!(hook = %self.hook.id, error = %e, "cannot read the hook's queue; retrying");
                self.pause(Duration::from_secs(1)).await;
                false
            }
        }
    }

    async fn pause(&self, d: Duration) {
        tokio::select! {
            _ = tokio::time::sleep(d) => {}
            _ = self.abort.cancelled() => {}
            _ = self.shared.draining.cancelled() => {}
        }
    }

    async fn deliver_head(&mut self) -> Step {
        let head = self.buffer[0].id.clone();
        let (failures, first_attempt, count) = match &self.attempts {
            Some(a) if a.entry == head => (a.failures, a.first_attempt, a.count),
            _ => (0, crate::time::now_ms(), self.shared.multi_event),
        };
        let count = count.clamp(1, self.buffer.len());
        let batch: Vec<&Entry> = self.buffer.iter().take(count).collect();
        let payloads: Vec<&str> = batch.iter().map(|e| e.payload.as_str()).collect();
        let webhook_id = format!("msg_{}_{}", self.hook.id, head);
        let callback = self.shared.signer.build(
            &self.hook.callback_url,
            &payloads,
            &webhook_id,
            first_attempt,
            crate::time::now_ms() / 1000,
        );
        let event_id = batch[0].event.clone();
        crate::fault::worker(&payloads);

        let outcome = {
            let Ok(_permit) = self.shared.in_flight.acquire().await else {
                return Step::Stop;
            };
            let m = &self.shared.metrics;
            m.deliveries_in_flight.inc();
            let outcome = tokio::select! {
                o = self.shared.client.send(&callback) => Some(o),
                _ = self.abort.cancelled() => None,
            };
            m.deliveries_in_flight.dec();
            match outcome {
                Some(o) => o,
                None => return Step::Stop,
            }
        };

        match outcome {
            Outcome::Delivered(_) => {
                self.delivered(count).await;
                Step::Next
            }
            Outcome::Gone if !self.hook.permanent => {
                tracing::warn!(hook = %self.hook.id, event = %event_id, "the receiver answered 410 Gone: removing the hook");
                self.remove("gone").await;
                Step::Stop
            }
            Outcome::Gone => {
                self.failed(
                    "410".into(),
                    failures,
                    first_attempt,
                    count,
                    &head,
                    &event_id,
                )
                .await
            }
            Outcome::Failed { reason } => {
                self.failed(reason, failures, first_attempt, count, &head, &event_id)
                    .await
            }
        }
    }

    async fn delivered(&mut self, count: usize) {
        let now = crate::time::now_ms();
        let m = &self.shared.metrics;
        let mut last = String::new();
        for entry in self.buffer.drain(..count) {
            m.processed_events
                .with_label_values(&[&entry.event, &self.hook.callback_url])
                .inc();
            m.delivery_latency
                .observe(now.saturating_sub(entry.enqueued_at()) as f64 / 1000.0);
            last = entry.id;
        }
        self.queue.ack(last);
        if self.attempts.take().is_some()
            && let Err(e) = self.queue.clear_attempts().await
        {
            tracing::warn!(hook = %self.hook.id, error = %e, "cannot clear the retry state");
        }
    }

    async fn failed(
        &mut self,
        reason: String,
        failures: u32,
        first_attempt: u64,
        count: usize,
        head: &str,
        event_id: &str,
    ) -> Step {
        let failures = failures + 1;
        let m = &self.shared.metrics;
        m.hook_failures
            .with_label_values(&[&self.hook.callback_url, &reason, event_id])
            .inc();
        tracing::warn!(hook = %self.hook.id, event = %event_id, reason = %reason, attempt = failures, "callback failed");
        let attempts = Attempts {
            entry: head.to_string(),
            failures,
            first_attempt,
            count,
        };
        if let Err(e) = self.queue.save_attempts(&attempts).await {
            tracing::warn!(hook = %self.hook.id, error = %e, "cannot store the retry state");
        }
        self.attempts = Some(attempts);
        match self
            .shared
            .policy
            .after_failure(failures, self.hook.permanent)
        {
            Next::RetryAfter(wait) => {
                m.delivery_retries.inc();
                self.pause(wait).await;
                Step::Next
            }
            Next::GiveUp => {
                m.hook_failures
                    .with_label_values(&[
                        &self.hook.callback_url,
                        "too many failed attempts",
                        event_id,
                    ])
                    .inc();
                tracing::warn!(hook = %self.hook.id, attempts = failures, "retries exhausted: removing the hook");
                self.remove("failed").await;
                Step::Stop
            }
        }
    }

    /// Removes this hook (memory, Redis; the pool then deletes the queue), retrying while Redis
    /// refuses.
    async fn remove(&self, reason: &str) {
        let mut delay = Duration::from_millis(200);
        while !self.abort.is_cancelled() {
            match self.shared.registry.remove(&self.hook.id).await {
                Ok(RemoveOutcome::Removed(_)) => {
                    self.shared
                        .metrics
                        .hooks_removed
                        .with_label_values(&[reason])
                        .inc();
                    return;
                }
                Ok(_) => return,
                Err(e) => {
                    tracing::warn!(hook = %self.hook.id, error = %e, "cannot remove the hook yet");
                    self.pause(delay).await;
                    if self.shared.draining.is_cancelled() {
                        return;
                    }
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
    }
}
