//! Delivery: one worker per hook drains the hook's queue, retrying on failure; a slow or dead
//! receiver only ever holds up its own hook.
//!
//! The guarantee: the events of one meeting reach a hook in the order they were queued, one
//! request of that meeting at a time; events of different meetings travel to the same hook in
//! parallel, up to `hooks.maxInFlightPerHook` requests (and `hooks.maxConcurrentRequests` for all
//! hooks together). Events that name no meeting form a lane of their own. With
//! `hooks.ordering: hook`, every event of a hook is one lane: strictly in order, one request at
//! a time. A lane with a backlog sends up to `multiEvent` events (the hook's own, else the
//! global one) in one request. Failures are per hook: see [`worker`].
//!
//! * [`request`] builds the callback (body, checksum or bearer, signature headers);
//! * [`client`] is the shared HTTP client and what counts as success;
//! * [`retry`] is the schedule (`retryIntervals`, then `permanentIntervalReset`);
//! * [`lanes`] sorts a hook's entries into lanes and picks the next request;
//! * [`worker`] is the per-hook loop;
//! * [`xapi`] drains the LRS queues of xAPI statements (its own small workers).
//!
//! The pool follows the registry: a new hook gets a worker, a removed one loses its worker and its
//! queue. A worker that ends while its hook still exists (a panic, a bug) is started again with a
//! growing delay and counted (`bbb_webhooks_worker_restarts_total`); its queue is in Redis, so it
//! resumes where the last acknowledgement left it. A global semaphore caps requests in flight
//! across hooks.
//!
//! In a cluster, the relays share the hooks' lanes: each hook's lanes are spread over a fixed
//! number of parts (`hash(lane) % parts`, [`lanes::Part`]), each part is a lease
//! ([`crate::lease`], unit `<hookId>/<part>`), and this pool runs one worker per part whose
//! lease this relay holds ([`DeliveryPool::leased`]). A worker reads its hook's whole queue and
//! delivers only its part's lanes, so a meeting's events still go out in order, one request at a
//! time, while the meetings of one hook travel through several relays. Failures and their retry
//! schedule are per part. A lost lease aborts the worker at once (its requests in flight may
//! then be sent again by the new owner: a duplicate with the same `webhook-id`), and a worker
//! sends nothing while its lease is not surely valid. Whichever relay sees a hook leave the
//! registry deletes its queue. What is queued, its depth, acknowledgements and wake-ups belong to
//! [`crate::queue`]; this module only takes entries out and sends them.

pub mod client;
mod lanes;
pub mod request;
pub mod retry;
mod worker;
pub mod xapi;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{DeliveryOrder, Settings};
use crate::hooks::{Hook, HookRegistry};
use crate::lease::{Held, HeldSet};
use crate::metrics::Metrics;
use crate::queue::DeliveryQueue;
use client::CallbackClient;
use lanes::Part;
use request::Signer;
use retry::RetryPolicy;

/// First wait before a worker that ended unexpectedly is started again; doubles up to
/// [`RESTART_MAX`], and starts over once a worker has run for [`RESTART_RESET`].
const RESTART_MIN: Duration = Duration::from_millis(100);
const RESTART_MAX: Duration = Duration::from_secs(10);
const RESTART_RESET: Duration = Duration::from_secs(60);

/// What every worker shares.
struct Shared {
    registry: Arc<HookRegistry>,
    queue: DeliveryQueue,
    client: CallbackClient,
    signer: Signer,
    policy: RetryPolicy,
    /// The global `hooks.multiEvent`, for hooks created without their own.
    multi_event: std::num::NonZeroUsize,
    ordering: DeliveryOrder,
    max_in_flight_per_hook: usize,
    in_flight: Semaphore,
    metrics: Arc<Metrics>,
    tracker: TaskTracker,
    /// Cancelled at shutdown: no new attempt starts, sleeps end.
    draining: CancellationToken,
}

struct WorkerHandle {
    /// Cancelled to abort the worker at once (hook removed, or the shutdown grace is over).
    abort: CancellationToken,
    task: JoinHandle<()>,
    /// The fencing token of the lease it works under, in a cluster.
    lease: Option<u64>,
}

/// A worker to run: a hook, or in a cluster one leased part of it.
struct Wanted<'a> {
    hook: &'a Arc<Hook>,
    lease: Option<(&'a Held, Part)>,
}

pub struct DeliveryPool {
    shared: Arc<Shared>,
    workers: Arc<Mutex<HashMap<String, WorkerHandle>>>,
    leases: Option<(watch::Receiver<HeldSet>, u32)>,
}

impl DeliveryPool {
    /// A pool whose tasks run on `tracker`. Nothing runs until [`DeliveryPool::supervise`].
    pub fn new(
        settings: &Settings,
        registry: Arc<HookRegistry>,
        queue: DeliveryQueue,
        metrics: Arc<Metrics>,
        tracker: TaskTracker,
    ) -> Result<DeliveryPool, reqwest::Error> {
        let shared = Arc::new(Shared {
            registry,
            queue,
            client: CallbackClient::new(settings)?,
            signer: Signer::new(settings),
            policy: RetryPolicy::new(&settings.hooks),
            multi_event: settings.hooks.multi_event,
            ordering: settings.hooks.ordering,
            max_in_flight_per_hook: settings.hooks.max_in_flight_per_hook.get(),
            in_flight: Semaphore::new(settings.hooks.max_concurrent_requests.get()),
            metrics,
            tracker,
            draining: CancellationToken::new(),
        });
        Ok(DeliveryPool {
            shared,
            workers: Default::default(),
            leases: None,
        })
    }

    /// In a cluster: deliver only the parts of hooks whose lease this relay holds, each hook's
    /// lanes spread over `parts` parts (lease units `<hookId>/<part>`, see [`hook_units`]).
    pub fn leased(mut self, leases: watch::Receiver<HeldSet>, parts: u32) -> Self {
        self.leases = Some((leases, parts.max(1)));
        self
    }

    /// Removes queues whose hook is gone and reads every hook's queue depth; call before
    /// anything is appended.
    pub async fn resume(&self) {
        let queue = &self.shared.queue;
        remove_orphan_queues(queue, &self.shared.registry).await;
        for hook in self.shared.registry.snapshot().iter() {
            if let Err(e) = queue.resume(&hook.id).await {
                tracing::warn!(hook = %hook.id, error = %e, "cannot read the queue's length");
            }
        }
    }

    /// Keeps one worker per hook in the registry until [`DeliveryPool::stop`].
    pub fn supervise(&self) -> impl Future<Output = ()> + Send + 'static {
        supervise(
            self.shared.clone(),
            self.workers.clone(),
            self.leases.clone(),
        )
    }

    /// Stops starting attempts, lets those in flight finish for up to `grace`, then aborts the
    /// rest (they stay queued).
    pub async fn stop(self, grace: Duration) {
        self.shared.draining.cancel();
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
    }
}

/// The lease units of a hook spread over `parts` parts.
pub fn hook_units(hook_id: &str, parts: u32) -> impl Iterator<Item = String> + '_ {
    let of = parts.max(1);
    (0..of).map(move |index| Part { index, of }.unit(hook_id))
}

/// Keeps one worker per hook in the registry (in a cluster: per leased part of a hook); deletes
/// the queue of every hook that leaves the registry. Returns once the pool is draining.
async fn supervise(
    shared: Arc<Shared>,
    workers: Arc<Mutex<HashMap<String, WorkerHandle>>>,
    mut leases: Option<(watch::Receiver<HeldSet>, u32)>,
) {
    let mut changes = shared.registry.watch();
    let mut known = shared.registry.snapshot();
    loop {
        let hooks = shared.registry.snapshot();
        let held: Option<(HeldSet, u32)> = leases
            .as_mut()
            .map(|(rx, parts)| (rx.borrow_and_update().clone(), *parts));
        // The workers to run, by unit: a hook id, or `<hookId>/<part>` in a cluster.
        let wanted: HashMap<String, Wanted> = match &held {
            Some((held, parts)) => held
                .iter()
                .filter_map(|(unit, lease)| {
                    let (hook, part) = Part::of_unit(unit, *parts)?;
                    let hook = hooks.get(hook)?;
                    let lease = Some((lease, part));
                    Some((unit.clone(), Wanted { hook, lease }))
                })
                .collect(),
            None => hooks
                .iter()
                .map(|hook| (hook.id.clone(), Wanted { hook, lease: None }))
                .collect(),
        };
        let mut stopped = Vec::new();
        {
            let mut w = workers.lock().unwrap_or_else(|p| p.into_inner());
            let stale: Vec<String> = w
                .iter()
                .filter(|(unit, handle)| {
                    wanted
                        .get(*unit)
                        .is_none_or(|want| want.lease.map(|(l, _)| l.token) != handle.lease)
                })
                .map(|(unit, _)| unit.clone())
                .collect();
            for unit in stale {
                if let Some(h) = w.remove(&unit) {
                    stopped.push(h);
                }
            }
            for (unit, want) in &wanted {
                if w.contains_key(unit) {
                    continue;
                }
                let (lease, part) = match want.lease {
                    Some((lease, part)) => (Some(lease.clone()), Some(part)),
                    None => (None, None),
                };
                // A lost lease stops the worker at once.
                let abort = lease
                    .as_ref()
                    .map_or_else(CancellationToken::new, |l| l.lost.child_token());
                let token = lease.as_ref().map(|l| l.token);
                let task = shared.tracker.spawn(keep(
                    want.hook.clone(),
                    shared.clone(),
                    abort.clone(),
                    lease,
                    part,
                ));
                let handle = WorkerHandle {
                    abort,
                    task,
                    lease: token,
                };
                w.insert(unit.clone(), handle);
            }
        }
        for handle in stopped {
            handle.abort.cancel();
            let _ = handle.task.await;
        }
        for gone in known.iter().filter(|h| hooks.get(&h.id).is_none()) {
            shared.metrics.forget_hook(&gone.id, &gone.callback_url);
            // The hook is out of the registry: after the gate, nothing can append to its queue.
            let mut delay = Duration::from_millis(100);
            while let Err(e) = shared.queue.delete(&gone.id).await {
                tracing::warn!(hook = %gone.id, error = %e, "cannot delete the queue of a removed hook yet");
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = shared.draining.cancelled() => return,
                }
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            tracing::info!(hook = %gone.id, "hook removed; its queue is deleted");
        }
        known = hooks;
        let leases_changed = async {
            match leases.as_mut() {
                Some((rx, _)) => rx.changed().await.is_ok(),
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            changed = changes.changed() => if changed.is_err() { return },
            alive = leases_changed => if !alive { return },
            _ = shared.draining.cancelled() => return,
        }
    }
}

/// Runs a hook's worker, and runs it again if it ends (or panics) while its hook still exists
/// and the pool is not stopping.
async fn keep(
    hook: Arc<Hook>,
    shared: Arc<Shared>,
    abort: CancellationToken,
    lease: Option<Held>,
    part: Option<Part>,
) {
    let mut delay = RESTART_MIN;
    loop {
        let started = tokio::time::Instant::now();
        let outcome = shared
            .tracker
            .spawn(worker::run(
                hook.clone(),
                shared.clone(),
                shared.queue.hook_part(&hook.id, part.map(|p| p.index)),
                abort.clone(),
                lease.clone(),
                part,
            ))
            .await;
        let handed_over = lease.as_ref().is_some_and(|l| l.handover.is_cancelled());
        let stopping = abort.is_cancelled() || shared.draining.is_cancelled() || handed_over;
        if stopping || shared.registry.snapshot().get(&hook.id).is_none() {
            return;
        }
        if started.elapsed() >= RESTART_RESET {
            delay = RESTART_MIN;
        }
        shared.metrics.worker_restarts.inc();
        match outcome {
            Err(e) if e.is_panic() => {
                let panic = crate::logging::panic_text(&e.into_panic());
                tracing::error!(hook = %hook.id, panic = %panic, restart_in_ms = delay.as_millis() as u64, "a hook's worker panicked; starting it again")
            }
            _ => {
                tracing::error!(hook = %hook.id, restart_in_ms = delay.as_millis() as u64, "a hook's worker ended unexpectedly; starting it again")
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = abort.cancelled() => return,
            _ = shared.draining.cancelled() => return,
        }
        delay = (delay * 2).min(RESTART_MAX);
    }
}

/// Queues whose hook no longer exists are deleted at start, but only with proof that the hook
/// was destroyed (removed while the queue was being deleted, the service stopping between the
/// two). A queue without its hook and without that proof (its hook lost with a Redis that lost
/// its data, or destroyed by bbb-webhooks 3.x) is kept, with a warning: the events in it may
/// still matter to someone.
async fn remove_orphan_queues(queue: &DeliveryQueue, registry: &HookRegistry) {
    let hooks = registry.snapshot();
    let ids = match queue.queued_hooks().await {
        Ok(ids) => ids,
        Err(e) => return tracing::warn!(error = %e, "cannot look for orphan queues"),
    };
    for id in ids.iter().filter(|id| hooks.get(id).is_none()) {
        match queue.was_destroyed(id).await {
            Ok(true) => {
                tracing::info!(hook = %id, "deleting the queue of a destroyed hook");
                if let Err(e) = queue.delete(id).await {
                    tracing::warn!(hook = %id, error = %e, "cannot delete an orphan queue");
                }
            }
            Ok(false) => {
                tracing::warn!(hook = %id, "a queue whose hook is unknown and not recorded as destroyed: kept (delete the key by hand if it is not needed)")
            }
            Err(e) => tracing::warn!(hook = %id, error = %e, "cannot check an orphan queue"),
        }
    }
}
