//! One hook's worker: reads the hook's queue in order into a bounded window, sorts it into lanes
//! ([`super::lanes`]), and keeps up to `hooks.maxInFlightPerHook` requests out, one per lane.
//! It reads Redis only when told that something was appended (or after a failed read): an idle
//! hook costs no Redis command, however many hooks there are.
//!
//! Failures are the hook's, not the lane's: after a failed attempt no new request starts until
//! the retry schedule says so, and then only one (the probe, the oldest waiting request) until
//! one goes through. Requests already out when the hook started failing finish as they will; a
//! failed one goes back to the head of its lane and is sent again later, as the same request
//! (same entries, `timestamp` and `webhook-id`). A success of the probe ends the failure; the
//! schedule running out removes the hook (unless it is permanent).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use futures_util::stream::FuturesUnordered;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::Shared;
use super::client::Outcome;
use super::lanes::{Batch, Lanes, Part};
use super::retry::Next;
use crate::config::DeliveryOrder;
use crate::hooks::{Hook, RemoveOutcome};
use crate::lease::Held;
use crate::metrics::Metrics;
use crate::queue::{FailedRequest, HookQueue};

/// Most entries a worker holds in memory (waiting and in requests).
const WINDOW: usize = 1024;
/// Entries read from Redis at a time.
const PREFETCH: usize = 256;

pub(super) async fn run(
    hook: Arc<Hook>,
    shared: Arc<Shared>,
    queue: HookQueue,
    abort: CancellationToken,
    lease: Option<Held>,
    part: Option<Part>,
) {
    let stored = match queue.load_retry_state().await {
        Ok(state) => state,
        Err(e) => {
            tracing::warn!(hook = %hook.id, error = %e, "cannot read the retry state; starting afresh");
            Default::default()
        }
    };
    let failing = (stored.failures > 0).then(|| Failing {
        failures: stored.failures,
        retry_at: Instant::now(),
        probing: false,
    });
    let multi_event = hook.multi_event.unwrap_or(shared.multi_event).get();
    let mut worker = Worker {
        hook,
        shared,
        queue,
        abort,
        lease,
        part,
        lanes: Lanes::default(),
        last_read: None,
        more: true,
        failed: stored.requests,
        failing,
        in_flight: FuturesUnordered::new(),
        multi_event,
    };
    worker.run().await;
}

/// The hook is failing: at most one request (the probe) goes out, at `retry_at`.
struct Failing {
    failures: u32,
    retry_at: Instant,
    probing: bool,
}

/// A request that came back.
struct Sent {
    batch: Batch,
    first_attempt: u64,
    probe: bool,
    outcome: Outcome,
}

struct Worker {
    hook: Arc<Hook>,
    shared: Arc<Shared>,
    queue: HookQueue,
    abort: CancellationToken,
    /// In a cluster, the hook's lease: nothing is sent unless it is surely still ours.
    lease: Option<Held>,
    /// In a cluster, the part of the hook's lanes this worker delivers (the rest are other
    /// workers', maybe on other relays: read past, never acknowledged here).
    part: Option<Part>,
    lanes: Lanes,
    last_read: Option<String>,
    /// Redis may hold entries not read yet.
    more: bool,
    /// Requests that failed and will be sent again as they were, by their first entry's id.
    failed: HashMap<String, FailedRequest>,
    failing: Option<Failing>,
    /// The requests out, polled by this task itself: no task per request, no cross-thread
    /// wake-up per answer.
    in_flight: FuturesUnordered<BoxFuture<'static, Sent>>,
    multi_event: usize,
}

/// Whether the worker goes on.
enum Step {
    Next,
    Stop,
}

impl Worker {
    async fn run(&mut self) {
        // A handover of the lease waits until this worker ended.
        let _working = self.lease.as_ref().map(Held::working);
        let handover = self
            .lease
            .as_ref()
            .map_or_else(CancellationToken::new, |l| l.handover.clone());
        loop {
            if self.abort.is_cancelled() {
                return;
            }
            // Handed over: the requests out finish and their acknowledgements are written, then
            // the worker ends (and the lease goes to the relay that reads the queue next).
            if handover.is_cancelled() && self.in_flight.is_empty() {
                self.queue.flush(Duration::from_secs(5)).await;
                return;
            }
            if self.shared.draining.is_cancelled() {
                // Let the requests out finish, until the pool's grace period is over.
                loop {
                    let done = tokio::select! {
                        done = self.in_flight.next() => done,
                        _ = self.abort.cancelled() => return,
                    };
                    let Some(done) = done else { return };
                    if let Step::Stop = self.finished(done).await {
                        return;
                    }
                }
            }
            // Requests first, then reading: the next request is out while Redis answers.
            self.dispatch();
            if self.more && self.lanes.held() < WINDOW && !self.fill().await {
                continue;
            }
            self.dispatch();
            let retry_at = self
                .failing
                .as_ref()
                .filter(|f| !f.probing && self.lanes.has_ready())
                .map(|f| f.retry_at);
            let step = tokio::select! {
                Some(done) = self.in_flight.next(), if !self.in_flight.is_empty() => {
                    self.finished(done).await
                }
                _ = self.queue.appended() => {
                    self.more = true;
                    Step::Next
                }
                _ = sleep_until(retry_at), if retry_at.is_some() => Step::Next,
                _ = self.abort.cancelled() => Step::Next,
                _ = self.shared.draining.cancelled() => Step::Next,
                _ = handover.cancelled(), if !handover.is_cancelled() => Step::Next,
            };
            if let Step::Stop = step {
                return;
            }
        }
    }

    /// Reads more entries into the window. False after a Redis error (after a pause).
    async fn fill(&mut self) -> bool {
        match self.queue.read(self.last_read.as_deref(), PREFETCH).await {
            Ok(entries) => {
                self.more = entries.len() == PREFETCH;
                if let Some(last) = entries.last() {
                    self.last_read = Some(last.id.clone());
                }
                let by_hook = self.shared.ordering == DeliveryOrder::Hook;
                for e in entries {
                    let lane = if by_hook {
                        String::new()
                    } else {
                        e.lane.clone()
                    };
                    if self.part.is_some_and(|p| !p.contains(&lane)) {
                        continue;
                    }
                    self.lanes.push(lane, e);
                }
                true
            }
            Err(e) => {
                tracing::warn!(hook = %self.hook.id, error = %e, "cannot read the hook's queue; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = self.abort.cancelled() => {}
                    _ = self.shared.draining.cancelled() => {}
                }
                false
            }
        }
    }

    /// Starts every request that may start now.
    fn dispatch(&mut self) {
        // In a cluster: nothing new unless the lease is surely ours and not being handed over.
        if self
            .lease
            .as_ref()
            .is_some_and(|l| !l.is_valid() || l.handover.is_cancelled())
        {
            return;
        }
        while self.in_flight.len() < self.shared.max_in_flight_per_hook {
            let probe = match &self.failing {
                None => false,
                Some(f) if f.probing || Instant::now() < f.retry_at => return,
                Some(_) => true,
            };
            let (failed, multi_event) = (&self.failed, self.multi_event);
            let Some(batch) = self.lanes.next(|head| {
                failed
                    .get(&head.id)
                    .map_or(multi_event, |request| request.count)
            }) else {
                return;
            };
            if let Some(f) = &mut self.failing {
                f.probing = true;
            }
            self.send(batch, probe);
            if probe {
                return;
            }
        }
    }

    fn send(&mut self, batch: Batch, probe: bool) {
        let head = &batch.entries[0].id;
        let first_attempt = self
            .failed
            .get(head)
            .map_or_else(crate::time::now_ms, |r| r.first_attempt);
        let payloads: Vec<&str> = batch.entries.iter().map(|e| e.payload.as_str()).collect();
        crate::fault::worker(&payloads);
        // A lane holds one meeting's events, so one server's: the head names the domain.
        let domain = batch.entries[0]
            .domain
            .as_deref()
            .unwrap_or(&self.shared.signer.domain);
        let callback = self.shared.signer.build_for(
            domain,
            &self.hook.callback_url,
            &payloads,
            &format!("msg_{}_{head}", self.hook.id),
            first_attempt,
            crate::time::now_ms() / 1000,
        );
        let shared = self.shared.clone();
        self.in_flight.push(Box::pin(async move {
            let outcome = match shared.in_flight.acquire().await {
                Ok(_permit) => {
                    let _counted = InFlight::new(&shared.metrics);
                    shared.client.send(&callback).await
                }
                Err(_) => Outcome::Failed {
                    reason: "stopping".into(),
                },
            };
            Sent {
                batch,
                first_attempt,
                probe,
                outcome,
            }
        }));
    }

    async fn finished(&mut self, sent: Sent) -> Step {
        match sent.outcome {
            Outcome::Delivered(_) => {
                self.delivered(sent).await;
                Step::Next
            }
            Outcome::Gone if !self.hook.permanent => {
                let event = &sent.batch.entries[0].event;
                tracing::warn!(hook = %self.hook.id, event = %event, "the receiver answered 410 Gone: removing the hook");
                self.remove("gone").await;
                Step::Stop
            }
            Outcome::Gone => self.failed(sent, "410".into()).await,
            Outcome::Failed { ref reason } => {
                let reason = reason.clone();
                self.failed(sent, reason).await
            }
        }
    }

    async fn delivered(&mut self, sent: Sent) {
        let now = crate::time::now_ms();
        let m = &self.shared.metrics;
        let mut ids = Vec::with_capacity(sent.batch.entries.len());
        for entry in &sent.batch.entries {
            m.processed_events
                .with_label_values(&[&entry.event, &self.hook.callback_url])
                .inc();
            m.delivery_latency
                .observe(now.saturating_sub(entry.enqueued_at()) as f64 / 1000.0);
            ids.push(entry.id.clone());
        }
        let head = ids[0].clone();
        self.lanes.done(&sent.batch.lane, ids.len());
        self.queue.ack(ids);
        let retried = self.failed.remove(&head).is_some();
        let recovered = sent.probe && self.failing.take().is_some();
        if recovered {
            tracing::info!(hook = %self.hook.id, "the receiver takes callbacks again");
        }
        if (retried || recovered)
            && let Err(e) = self.queue.clear_failure(&head, recovered).await
        {
            tracing::warn!(hook = %self.hook.id, error = %e, "cannot clear the retry state");
        }
    }

    async fn failed(&mut self, sent: Sent, reason: String) -> Step {
        let head = sent.batch.entries[0].id.clone();
        let event = sent.batch.entries[0].event.clone();
        let request = FailedRequest {
            count: sent.batch.entries.len(),
            first_attempt: sent.first_attempt,
        };
        self.failed.insert(head.clone(), request);
        self.lanes.put_back(sent.batch);
        let shared = self.shared.clone();
        let m = &shared.metrics;
        m.hook_failures
            .with_label_values(&[&self.hook.callback_url, &reason, &event])
            .inc();
        // A new step of the schedule: the hook's first failure, or the probe's. Requests that
        // were already out when the hook began failing only go back in line.
        let failures = match &mut self.failing {
            None => 1,
            Some(f) if sent.probe => f.failures + 1,
            Some(f) => {
                tracing::debug!(hook = %self.hook.id, event = %event, reason = %reason, "callback failed while the hook is failing");
                let failures = f.failures;
                self.store_failure(failures, &head, request).await;
                return Step::Next;
            }
        };
        tracing::warn!(hook = %self.hook.id, event = %event, reason = %reason, attempt = failures, "callback failed");
        self.store_failure(failures, &head, request).await;
        match self
            .shared
            .policy
            .after_failure(failures, self.hook.permanent)
        {
            Next::RetryAfter(wait) => {
                m.delivery_retries.inc();
                self.failing = Some(Failing {
                    failures,
                    retry_at: Instant::now() + wait,
                    probing: false,
                });
                Step::Next
            }
            Next::GiveUp => {
                m.hook_failures
                    .with_label_values(&[
                        &self.hook.callback_url,
                        "too many failed attempts",
                        &event,
                    ])
                    .inc();
                tracing::warn!(hook = %self.hook.id, attempts = failures, "retries exhausted: removing the hook");
                self.remove("failed").await;
                Step::Stop
            }
        }
    }

    async fn store_failure(&mut self, failures: u32, head: &str, request: FailedRequest) {
        if let Err(e) = self.queue.save_failure(failures, head, request).await {
            tracing::warn!(hook = %self.hook.id, error = %e, "cannot store the retry state");
        }
    }

    /// Removes this hook (memory, Redis; the pool then deletes the queue), retrying while Redis
    /// refuses.
    async fn remove(&mut self, reason: &str) {
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
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = self.abort.cancelled() => {}
                        _ = self.shared.draining.cancelled() => return,
                    }
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Counts a request in `bbb_webhooks_deliveries_in_flight` for as long as it lives, also when
/// it is aborted.
struct InFlight<'a>(&'a Metrics);

impl<'a> InFlight<'a> {
    fn new(metrics: &'a Metrics) -> Self {
        metrics.deliveries_in_flight.inc();
        InFlight(metrics)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.deliveries_in_flight.dec();
    }
}
