//! Delivery: one worker per hook drains the hook's queue in order, one request in flight per hook,
//! retrying on failure; a slow or dead receiver only ever holds up its own hook.
//!
//! * [`request`] builds the callback (body, checksum or bearer, signature headers);
//! * [`client`] is the shared HTTP client and what counts as success;
//! * [`retry`] is the schedule (`retryIntervals`, then `permanentIntervalReset`);
//! * [`worker`] is the per-hook loop.
//!
//! The pool follows the registry: a new hook gets a worker, a removed one loses its worker and its
//! queue. A global semaphore caps requests in flight across hooks. Acknowledgements (trimming
//! what was delivered) are coalesced by one task, so a busy hook costs one Redis command per
//! batch of successes rather than per event.

pub mod client;
pub mod request;
pub mod retry;
mod worker;

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore, mpsc};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::Settings;
use crate::hooks::HookRegistry;
use crate::metrics::Metrics;
use crate::queue::DeliveryQueue;
use client::CallbackClient;
use request::Signer;
use retry::RetryPolicy;

/// Per-hook wake-up and queue depth, shared by the processor (which adds) and the workers and
/// acknowledger (which take away).
#[derive(Debug, Default)]
pub struct HookSignal {
    pub wake: Notify,
    pub depth: AtomicI64,
}

/// Hook id → its signal.
#[derive(Clone, Default)]
pub struct Notifier(Arc<RwLock<HashMap<String, Arc<HookSignal>>>>);

impl Notifier {
    pub fn signal(&self, hook_id: &str) -> Arc<HookSignal> {
        if let Some(s) = self
            .0
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(hook_id)
        {
            return s.clone();
        }
        self.0
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .entry(hook_id.to_string())
            .or_default()
            .clone()
    }

    fn remove(&self, hook_id: &str) {
        self.0
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(hook_id);
    }
}

/// How long acknowledgements gather before the queues are trimmed.
const ACK_PERIOD: Duration = Duration::from_millis(5);

/// An acknowledgement: everything up to `entry` in `hook`'s queue is done.
struct Ack {
    hook: String,
    entry: String,
}

/// What every worker shares.
struct Shared {
    registry: Arc<HookRegistry>,
    queue: DeliveryQueue,
    client: CallbackClient,
    signer: Signer,
    policy: RetryPolicy,
    multi_event: usize,
    in_flight: Semaphore,
    metrics: Arc<Metrics>,
    notifier: Notifier,
    acks: mpsc::UnboundedSender<Ack>,
    /// Cancelled at shutdown: no new attempt starts, sleeps end.
    draining: CancellationToken,
}

struct WorkerHandle {
    /// Cancelled to abort the worker at once (hook removed, or the shutdown grace is over).
    abort: CancellationToken,
    task: JoinHandle<()>,
}

pub struct DeliveryPool {
    shared: Arc<Shared>,
    workers: Arc<Mutex<HashMap<String, WorkerHandle>>>,
    supervisor: JoinHandle<()>,
    acknowledger: JoinHandle<()>,
}

impl DeliveryPool {
    /// Resumes every hook's queue (depths read from Redis before anything is added), removes
    /// queues whose hook is gone, and follows the registry from then on.
    pub async fn start(
        settings: Arc<Settings>,
        registry: Arc<HookRegistry>,
        queue: DeliveryQueue,
        metrics: Arc<Metrics>,
    ) -> Result<DeliveryPool, reqwest::Error> {
        let (acks_tx, acks_rx) = mpsc::unbounded_channel();
        let notifier = Notifier::default();
        let shared = Arc::new(Shared {
            registry: registry.clone(),
            queue: queue.clone(),
            client: CallbackClient::new(&settings)?,
            signer: Signer::new(&settings),
            policy: RetryPolicy::new(&settings.hooks),
            multi_event: settings.hooks.multi_event.get(),
            in_flight: Semaphore::new(settings.hooks.max_concurrent_requests.get()),
            metrics: metrics.clone(),
            notifier: notifier.clone(),
            acks: acks_tx,
            draining: CancellationToken::new(),
        });
        remove_orphan_queues(&queue, &registry).await;
        for hook in registry.snapshot().iter() {
            let depth = queue.len(&hook.id).await.unwrap_or(0) as i64;
            notifier
                .signal(&hook.id)
                .depth
                .store(depth, Ordering::Relaxed);
            metrics
                .queue_depth
                .with_label_values(&[&hook.id])
                .set(depth);
        }
        let workers = Arc::new(Mutex::new(HashMap::new()));
        let supervisor = tokio::spawn(supervise(shared.clone(), workers.clone()));
        let acknowledger = tokio::spawn(acknowledge(queue, notifier, metrics, acks_rx));
        Ok(DeliveryPool {
            shared,
            workers,
            supervisor,
            acknowledger,
        })
    }

    pub fn notifier(&self) -> Notifier {
        self.shared.notifier.clone()
    }

    /// Stops starting attempts, lets those in flight finish for up to `grace`, then aborts the
    /// rest (they stay queued) and writes the last acknowledgements.
    pub async fn stop(self, grace: Duration) {
        self.shared.draining.cancel();
        self.supervisor.abort();
        // Its share of the pool goes with it, so the acknowledger can finish below.
        let _ = self.supervisor.await;
        let handles: Vec<WorkerHandle> = self
            .workers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
            .map(|(_, h)| h)
            .collect();
        let deadline = tokio::time::Instant::now() + grace;
        for h in handles {
            let mut task = h.task;
            if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
                h.abort.cancel();
                let _ = task.await;
            }
        }
        drop(self.shared);
        let mut acknowledger = self.acknowledger;
        if tokio::time::timeout(Duration::from_secs(2), &mut acknowledger)
            .await
            .is_err()
        {
            acknowledger.abort();
        }
    }
}

/// Keeps one worker per hook in the registry.
async fn supervise(shared: Arc<Shared>, workers: Arc<Mutex<HashMap<String, WorkerHandle>>>) {
    let mut changes = shared.registry.watch();
    loop {
        let hooks = shared.registry.snapshot();
        let mut gone = Vec::new();
        {
            let mut w = workers.lock().unwrap_or_else(|p| p.into_inner());
            for hook in hooks.iter() {
                if !w.contains_key(&hook.id) {
                    let abort = CancellationToken::new();
                    let task = tokio::spawn(worker::run(
                        hook.clone(),
                        shared.clone(),
                        shared.notifier.signal(&hook.id),
                        abort.clone(),
                    ));
                    w.insert(hook.id.clone(), WorkerHandle { abort, task });
                }
            }
            let removed: Vec<String> = w
                .keys()
                .filter(|id| hooks.get(id).is_none())
                .cloned()
                .collect();
            for id in removed {
                if let Some(h) = w.remove(&id) {
                    gone.push((id, h));
                }
            }
        }
        for (id, handle) in gone {
            handle.abort.cancel();
            let _ = handle.task.await;
            // The hook is out of the registry: after the gate, nothing can append to its queue.
            let mut delay = Duration::from_millis(100);
            while let Err(e) = shared.queue.delete(&id).await {
                tracing::warn!(hook = %id, error = %e, "cannot delete the queue of a removed hook yet");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            shared.notifier.remove(&id);
            let _ = shared.metrics.queue_depth.remove_label_values(&[&id]);
            tracing::info!(hook = %id, "hook removed; its queue is deleted");
        }
        if changes.changed().await.is_err() {
            return;
        }
    }
}

/// Coalesces acknowledgements per hook and trims the queues.
async fn acknowledge(
    queue: DeliveryQueue,
    notifier: Notifier,
    metrics: Arc<Metrics>,
    mut rx: mpsc::UnboundedReceiver<Ack>,
) {
    let mut pending: HashMap<String, String> = HashMap::new();
    let mut batch = Vec::with_capacity(256);
    loop {
        if pending.is_empty() {
            if rx.recv_many(&mut batch, 256).await == 0 {
                return;
            }
            // Let acknowledgements gather for a moment: one trim per hook per period instead of
            // one per delivery. A crash in that window re-sends at most that much.
            tokio::time::sleep(ACK_PERIOD).await;
        }
        // Take whatever else is there without waiting.
        while let Ok(a) = rx.try_recv() {
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
        let mut failed = false;
        for (hook, entry) in pending.drain().collect::<Vec<_>>() {
            match queue.ack(&hook, &entry).await {
                Ok(removed) => {
                    let signal = notifier.signal(&hook);
                    let depth =
                        signal.depth.fetch_sub(removed as i64, Ordering::Relaxed) - removed as i64;
                    metrics
                        .queue_depth
                        .with_label_values(&[&hook])
                        .set(depth.max(0));
                }
                Err(e) => {
                    tracing::warn!(hook = %hook, error = %e, "cannot acknowledge deliveries yet; retrying");
                    pending.insert(hook, entry);
                    failed = true;
                }
            }
        }
        if failed {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

/// `<ms>-<seq>` as a comparable pair.
fn stream_id_key(id: &str) -> (u64, u64) {
    let (ms, seq) = id.split_once('-').unwrap_or((id, "0"));
    (ms.parse().unwrap_or(0), seq.parse().unwrap_or(0))
}

/// Queues whose hook no longer exists (removed while the service was down, or by another
/// instance) are deleted at start.
async fn remove_orphan_queues(queue: &DeliveryQueue, registry: &HookRegistry) {
    let hooks = registry.snapshot();
    match queue.queued_hooks().await {
        Ok(ids) => {
            for id in ids.iter().filter(|id| hooks.get(id).is_none()) {
                tracing::warn!(hook = %id, "deleting the queue of a hook that no longer exists");
                if let Err(e) = queue.delete(id).await {
                    tracing::warn!(hook = %id, error = %e, "cannot delete an orphan queue");
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot look for orphan queues"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_ids_compare_numerically() {
        assert!(stream_id_key("10-0") > stream_id_key("9-5"));
        assert!(stream_id_key("10-10") > stream_id_key("10-9"));
    }
}
