//! The enqueuer, the processing stage's task: takes raw messages in arrival order, maps them
//! ([`crate::mapping`] with the [`crate::state`]), routes the events to hooks
//! ([`crate::routing`]) and appends each delivery to its hook's queue, together with the state
//! changes, in one Redis round trip per batch. Only then does it tell the queue, which wakes the
//! readers. It does not deliver, and knows nothing of who reads the queues.
//!
//! Messages are taken in batches (whatever arrived while the previous batch was written), so
//! throughput grows with load while each message still waits at most one round trip. A batch that
//! Redis refuses is retried, not dropped: the subscriber keeps buffering meanwhile. Every few
//! seconds it also expires inactive meetings and stores meeting activity.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc::UnboundedReceiver;
use tokio_util::sync::CancellationToken;

use crate::config::Settings;
use crate::hooks::HookRegistry;
use crate::input::RawMessage;
use crate::logging::RateLimit;
use crate::mapping::{MapError, Mapper};
use crate::metrics::Metrics;
use crate::queue::DeliveryQueue;
use crate::routing::{Filters, route};
use crate::state::{State, StateStore};

/// Most messages taken into one batch.
const BATCH: usize = 1024;
/// Most deliveries (messages × hooks) written in one round trip: bounds the memory a burst takes.
const BATCH_DELIVERIES: usize = 2048;
/// Meeting activity is stored when it moved by at least this much.
const ACTIVITY_STEP_MS: u64 = 60_000;

static MALFORMED_LOG: RateLimit = RateLimit::new(Duration::from_secs(10));
static IGNORED_LOG: RateLimit = RateLimit::new(Duration::from_secs(60));

/// What [`Enqueuer::new`] needs besides the settings.
pub struct Parts {
    pub state: State,
    pub store: StateStore,
    pub registry: Arc<HookRegistry>,
    pub queue: DeliveryQueue,
    pub metrics: Arc<Metrics>,
}

pub struct Enqueuer {
    settings: Arc<Settings>,
    mapper: Mapper,
    store: StateStore,
    registry: Arc<HookRegistry>,
    queue: DeliveryQueue,
    metrics: Arc<Metrics>,
    filters: Filters,
    /// Cancelled at shutdown: a batch Redis keeps refusing is then given up after `grace`.
    stop: CancellationToken,
    grace: Duration,
}

impl Enqueuer {
    pub fn new(
        settings: Arc<Settings>,
        parts: Parts,
        stop: CancellationToken,
        grace: Duration,
    ) -> Self {
        let Parts {
            state,
            store,
            registry,
            queue,
            metrics,
        } = parts;
        let filters = Filters::new(
            &settings.hooks.include_events,
            &settings.hooks.exclude_events,
        );
        Enqueuer {
            mapper: Mapper::new(state)
                .with_meeting_metadata(settings.hooks.include_meeting_metadata),
            settings,
            store,
            registry,
            queue,
            metrics,
            filters,
            stop,
            grace,
        }
    }

    /// Runs until the input side closes, then writes what it still has.
    pub async fn run(mut self, mut rx: UnboundedReceiver<RawMessage>) {
        let mut housekeeping = tokio::time::interval(self.settings.mappings.cleanup_interval);
        let mut batch = Vec::with_capacity(BATCH);
        loop {
            tokio::select! {
                n = rx.recv_many(&mut batch, self.batch_limit()) => {
                    if n == 0 {
                        break;
                    }
                    self.process(std::mem::take(&mut batch)).await;
                }
                _ = housekeeping.tick() => self.housekeeping().await,
            }
        }
        self.store_activity(0).await;
    }

    /// Messages per batch: fewer when many hooks multiply each message.
    fn batch_limit(&self) -> usize {
        let hooks = self.registry.snapshot().len().max(1);
        (BATCH_DELIVERIES / hooks).clamp(16, BATCH)
    }

    async fn process(&mut self, batch: Vec<RawMessage>) {
        let m = self.metrics.clone();
        let gate = self.queue.enqueue_gate().await;
        let hooks = self.registry.snapshot();
        let mut pipe = redis::pipe();
        pipe.atomic();
        let mut queued: HashMap<&str, i64> = HashMap::new();
        for raw in &batch {
            m.messages_received.inc();
            crate::fault::enqueuer(&raw.payload);
            let events = match self.mapper.map(&raw.payload, raw.received_at) {
                Ok(events) => events,
                Err(e) => {
                    self.count_failure(&e, raw);
                    continue;
                }
            };
            if events.is_empty() {
                m.messages_ignored.with_label_values(&["no_event"]).inc();
            }
            for event in &events {
                m.events_mapped.with_label_values(&[event.id]).inc();
                // The lane: events of one meeting keep their order, meetings travel apart.
                let lane = event
                    .internal_meeting_id
                    .as_deref()
                    .or(event.external_meeting_id.as_deref())
                    .unwrap_or("");
                for (hook, payload) in route(event, &hooks, &self.filters) {
                    self.queue
                        .append(&mut pipe, &hook.id, lane, event.id, payload);
                    *queued.entry(hook.id.as_str()).or_default() += 1;
                }
            }
        }
        let changes = self.mapper.state.take_journal();
        self.store
            .append_changes(&mut pipe, &self.mapper.state, &changes);
        self.write(&pipe).await;
        // Under the gate still: a hook deleted right after this batch keeps no depth behind.
        self.queue.appended(queued);
        drop(gate);
        let (meetings, users) = self.mapper.state.counts();
        m.meeting_mappings.set(meetings as i64);
        m.user_mappings.set(users as i64);
    }

    fn count_failure(&self, e: &MapError, raw: &RawMessage) {
        let m = &self.metrics;
        if e.is_malformed() {
            m.messages_malformed.with_label_values(&[e.reason()]).inc();
            m.event_process_failures.inc();
            if let Some(held_back) = MALFORMED_LOG.check() {
                tracing::warn!(channel = %raw.channel, error = %e, similar_held_back = held_back, "skipping a message");
            }
        } else {
            m.messages_ignored
                .with_label_values(&["unknown_name"])
                .inc();
            if let Some(held_back) = IGNORED_LOG.check() {
                tracing::debug!(channel = %raw.channel, error = %e, similar_held_back = held_back, "ignoring a message");
            }
        }
    }

    /// Sends the batch's writes, retrying until Redis takes them. Only at shutdown, after the
    /// grace period, is a batch given up (with an error: its events are lost).
    async fn write(&self, pipe: &redis::Pipeline) {
        if pipe.cmd_iter().next().is_none() {
            return;
        }
        let mut conn = self.queue.connection();
        let mut delay = Duration::from_millis(50);
        let mut failing_since: Option<tokio::time::Instant> = None;
        loop {
            match pipe.query_async::<()>(&mut conn).await {
                Ok(()) => {
                    if failing_since.is_some() {
                        self.metrics
                            .redis_reconnects
                            .with_label_values(&["commands"])
                            .inc();
                        tracing::info!("Redis takes writes again");
                    }
                    return;
                }
                Err(e) => {
                    let since = *failing_since.get_or_insert_with(tokio::time::Instant::now);
                    if self.stop.is_cancelled() && since.elapsed() >= self.grace {
                        tracing::error!(error = %e, commands = pipe.cmd_iter().count(), "stopping while Redis refuses writes: this batch is lost");
                        return;
                    }
                    tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "cannot write to Redis; holding the batch and retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(2));
                }
            }
        }
    }

    async fn housekeeping(&mut self) {
        let now = crate::time::now_ms();
        let expired = self
            .mapper
            .state
            .expire(now, self.settings.mappings.timeout);
        if expired > 0 {
            tracing::info!(meetings = expired, "forgot inactive meetings");
        }
        self.store_activity(ACTIVITY_STEP_MS).await;
    }

    /// Writes expired mappings and meeting activity that moved by `min_step` ms or more.
    async fn store_activity(&mut self, min_step: u64) {
        let mut pipe = redis::pipe();
        let changes = self.mapper.state.take_journal();
        self.store
            .append_changes(&mut pipe, &self.mapper.state, &changes);
        let activity = self.mapper.state.activity_to_store(min_step);
        self.store.append_activity(&mut pipe, &activity);
        if pipe.cmd_iter().next().is_some() {
            let mut conn = self.queue.connection();
            if let Err(e) = pipe.query_async::<()>(&mut conn).await {
                tracing::warn!(error = %e, "cannot store meeting activity now; will try later");
            }
        }
    }
}
