//! The enqueuer, the processing stage's task: takes raw messages in arrival order, maps them
//! ([`crate::mapping`] with the [`crate::state`]), routes the events to hooks
//! ([`crate::routing`]) and appends each delivery to its hook's queue, together with the state
//! changes, in one Redis round trip per batch. Only then does it tell the queue, which wakes the
//! readers. It does not deliver, and knows nothing of who reads the queues. With xAPI on, every
//! event also goes to [`crate::xapi`]; its statements (one queue per LRS) and meeting state join
//! the same MULTI, so they are as durable as the deliveries of the same messages.
//!
//! Messages are taken in batches (whatever arrived while the previous batch was written), so
//! throughput grows with load while each message still waits at most one round trip. A batch that
//! Redis refuses is retried, not dropped: the intake buffers meanwhile (bounded), `/ready` says
//! why, and between two attempts nothing is held that would keep a hook's queue from being
//! deleted (the enqueue gate is taken per attempt; appends to hooks removed meanwhile are left
//! out of the next one). Every few seconds it also expires inactive meetings and stores meeting
//! activity. When Redis is found to have lost its data ([`crate::redis_watch`]), it writes the
//! hooks and mappings it holds in memory again and re-reads the queues' depths.
//!
//! In a cluster (`input.mode: cluster`) one enqueuer runs per server whose ingest stream this
//! relay leases ([`Source`]): its state is that server's, each batch's transaction also records
//! how far the stream is mapped (`<clusterPrefix>:position`), and it is fenced: the transaction
//! `WATCH`es the lease's fencing token ([`crate::lease::watch_fence`]), so an enqueuer whose lease
//! was taken over (paused past the lease's life) writes nothing, neither events nor position,
//! and stops. The new owner maps from the recorded position: no message is lost or mapped twice.
//! Deliveries carry the server's name (the callbacks' `domain`) and their lane starts with it.
//!
//! Before mapping a batch it asks bbb-web ([`crate::bbb_web`]) about the meetings the batch names
//! that the state does not know (created while no bbb-webhooks ran), so that their events carry
//! the external id and reach the hooks scoped to them. That is the one wait on something other
//! than Redis: at most one call per batch, bounded in time, never twice for one meeting within
//! minutes, none at all for a while after bbb-web failed to answer.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::ConnectionManager;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::bbb_web::MeetingLookup;
use crate::config::Settings;
use crate::event::Event;
use crate::health::Readiness;
use crate::hooks::{Hook, HookRegistry};
use crate::input::{IntakeReceiver, RawMessage};
use crate::lease::{FenceError, Held};
use crate::logging::RateLimit;
use crate::mapping::{MapError, Mapper, MeetingRole, Parsed};
use crate::metrics::Metrics;
use crate::queue::{Append, Appends, DeliveryQueue};
use crate::routing::{Filters, route};
use crate::state::{Change, State, StateStore};
use crate::xapi::{Batch as XapiBatch, Xapi};

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
    pub readiness: Readiness,
    /// Changes each time Redis is found to have lost its data.
    pub data_lost: watch::Receiver<u64>,
    /// xAPI statements, when enabled: made beside routing, written in the same MULTI.
    pub xapi: Option<Xapi>,
    /// In a cluster: the server whose stream this enqueuer maps, under a lease.
    pub source: Option<Source>,
}

/// One server's ingest stream, as a relay's enqueuer maps it (see the module's docs).
pub struct Source {
    /// The server's name: the callbacks' `domain`.
    pub server: String,
    /// The hash that records each server's mapped position.
    pub position_key: String,
    /// The lease on the server's stream; its fencing token guards every write.
    pub lease: Held,
    /// A connection only this enqueuer uses (a `WATCH` belongs to its connection).
    pub conn: ConnectionManager,
}

pub struct Enqueuer {
    settings: Arc<Settings>,
    mapper: Mapper,
    store: StateStore,
    registry: Arc<HookRegistry>,
    queue: DeliveryQueue,
    metrics: Arc<Metrics>,
    readiness: Readiness,
    data_lost: watch::Receiver<u64>,
    /// Redis lost its data and what memory holds is not written back yet.
    rewrite_pending: bool,
    filters: Filters,
    /// Cancelled at shutdown: a batch Redis keeps refusing is then given up after `grace`.
    stop: CancellationToken,
    grace: Duration,
    /// Asks bbb-web about meetings the state does not know; `None` when turned off.
    lookup: Option<MeetingLookup>,
    xapi: Option<Xapi>,
    source: Option<Source>,
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
            readiness,
            data_lost,
            xapi,
            source,
        } = parts;
        let filters = Filters::new(
            &settings.hooks.include_events,
            &settings.hooks.exclude_events,
        );
        // In a cluster, each server has a bbb-web of its own that this relay does not know.
        let lookup = (settings.bbb.lookup_missed_meetings && source.is_none())
            .then(|| {
                let url = settings.bbb.api_url.as_str();
                MeetingLookup::new(url, settings.secret(), metrics.clone())
                    .inspect_err(
                        |e| tracing::error!(error = %e, "cannot ask bbb-web about missed meetings"),
                    )
                    .ok()
            })
            .flatten();
        Enqueuer {
            mapper: Mapper::new(state)
                .with_meeting_metadata(settings.hooks.include_meeting_metadata),
            settings,
            store,
            registry,
            queue,
            metrics,
            readiness,
            data_lost,
            rewrite_pending: false,
            filters,
            stop,
            grace,
            lookup,
            xapi,
            source,
        }
    }

    /// Runs until the input side closes, then writes what it still has.
    pub async fn run(mut self, mut rx: IntakeReceiver) {
        let mut housekeeping = tokio::time::interval(self.settings.mappings.cleanup_interval);
        let mut batch = Vec::with_capacity(BATCH);
        loop {
            tokio::select! {
                n = rx.recv_many(&mut batch, self.batch_limit()) => {
                    if n == 0 {
                        break;
                    }
                    if let Err(e) = self.process(std::mem::take(&mut batch)).await {
                        let server = self.source.as_ref().map_or("", |s| s.server.as_str());
                        tracing::warn!(server, error = %e, "lost the lease on the server's stream: stopped mapping it (the new owner goes on from the last written position)");
                        return;
                    }
                }
                _ = housekeeping.tick() => self.housekeeping().await,
                Ok(()) = self.data_lost.changed() => {
                    self.rewrite_pending = true;
                    self.rewrite().await;
                }
            }
        }
        self.store_activity(0).await;
    }

    /// Messages per batch: fewer when many hooks multiply each message.
    fn batch_limit(&self) -> usize {
        let hooks = self.registry.snapshot().len().max(1);
        (BATCH_DELIVERIES / hooks).clamp(16, BATCH)
    }

    async fn process(&mut self, batch: Vec<RawMessage>) -> Result<(), FenceError> {
        let m = self.metrics.clone();
        let hooks = self.registry.snapshot();
        // What goes where is decided once; only the write is retried.
        let mut events: Vec<Event> = Vec::new();
        let mut deliveries: Vec<(usize, Arc<Hook>)> = Vec::new();
        // Read once, here: the meetings the batch names are looked up before any is mapped.
        let parsed: Vec<Result<Parsed, MapError>> =
            batch.iter().map(|raw| Parsed::new(&raw.payload)).collect();
        self.look_up_missed_meetings(&parsed).await;
        for (raw, parsed) in batch.iter().zip(&parsed) {
            m.messages_received.inc();
            crate::fault::enqueuer(&raw.payload);
            let mapped = match parsed {
                Ok(parsed) => {
                    self.learn_missed_meeting(parsed, raw.received_at);
                    self.mapper.map_parsed(parsed, raw.received_at)
                }
                Err(e) => {
                    self.count_failure(e, raw);
                    continue;
                }
            };
            let mapped = match mapped {
                Ok(events) => events,
                Err(e) => {
                    self.count_failure(&e, raw);
                    continue;
                }
            };
            if mapped.is_empty() {
                m.messages_ignored.with_label_values(&["no_event"]).inc();
            }
            for event in mapped {
                m.events_mapped.with_label_values(&[event.id]).inc();
                let index = events.len();
                for (hook, _) in route(&event, &hooks, &self.filters) {
                    deliveries.push((index, hook.clone()));
                }
                if let Some(xapi) = self.xapi.as_mut() {
                    xapi.process(&event);
                }
                events.push(event);
            }
        }
        let changes = self.mapper.state.take_journal();
        let xapi = self.xapi.as_mut().map(Xapi::take_batch).unwrap_or_default();
        let position = batch.iter().rev().find_map(|m| m.position.as_deref());
        self.write(&events, &deliveries, &changes, position, &xapi)
            .await?;
        if let Some(oldest) = batch.iter().map(|m| m.received_at).min() {
            let waited = crate::time::now_ms().saturating_sub(oldest);
            m.enqueue_latency.observe(waited as f64 / 1000.0);
        }
        let (meetings, users) = self.mapper.state.counts();
        m.meeting_mappings.set(meetings as i64);
        m.user_mappings.set(users as i64);
        Ok(())
    }

    /// Asks bbb-web, in one call, about the meetings this batch names that the state does not
    /// know and that no earlier message of the batch creates.
    async fn look_up_missed_meetings(&mut self, parsed: &[Result<Parsed<'_>, MapError>]) {
        let Some(lookup) = self.lookup.as_mut() else {
            return;
        };
        let state = &self.mapper.state;
        let mut created: Vec<&str> = Vec::new();
        let mut unknown: Vec<&str> = Vec::new();
        for p in parsed.iter().flatten() {
            match p.meeting() {
                MeetingRole::Creates(m) => created.push(m),
                MeetingRole::Names(m)
                    if state.external_meeting_id(m).is_none()
                        && !created.contains(&m)
                        && !unknown.contains(&m) =>
                {
                    unknown.push(m)
                }
                _ => {}
            }
        }
        if !unknown.is_empty() {
            lookup.resolve(&unknown).await;
        }
    }

    /// Records what bbb-web listed of the meeting this message names, if the state still does
    /// not know it: the same mapping `meeting-created` would have made, persisted the same way.
    fn learn_missed_meeting(&mut self, parsed: &Parsed, now: u64) {
        // Nothing found to hand out (the usual case): no need to read the message again.
        let Some(lookup) = self.lookup.as_mut().filter(|l| l.has_found()) else {
            return;
        };
        let MeetingRole::Names(m) = parsed.meeting() else {
            return;
        };
        if self.mapper.state.external_meeting_id(m).is_some() {
            return;
        }
        if let Some(info) = lookup.take(m) {
            tracing::info!(meeting = m, external = %info.external_id, name = info.name.as_deref().unwrap_or(""), "mapped a meeting the service missed, from bbb-web");
            self.mapper
                .state
                .meeting_created(m, Some(&info.external_id), Some(info.metadata), now);
        }
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

    /// Writes a batch's deliveries and state changes in one MULTI, retrying until Redis takes
    /// them. Each attempt holds the enqueue gate only while it runs, and leaves out hooks removed
    /// since the batch was routed (their queues are deleted, or being deleted). Only at shutdown,
    /// after the grace period, is a batch given up (with an error: its events are lost).
    ///
    /// In a cluster the write also records `position` and is fenced; a lost lease ends it with
    /// [`FenceError::TakenOver`] and nothing written.
    async fn write(
        &mut self,
        events: &[Event],
        deliveries: &[(usize, Arc<Hook>)],
        changes: &[Change],
        position: Option<&str>,
        xapi: &XapiBatch,
    ) -> Result<(), FenceError> {
        if deliveries.is_empty() && changes.is_empty() && position.is_none() && xapi.is_empty() {
            return Ok(());
        }
        let domain = self.source.as_ref().map(|s| s.server.as_str());
        let mut conn = match &self.source {
            Some(source) => source.conn.clone(),
            None => self.queue.connection(),
        };
        let lanes: Vec<Cow<str>> = events.iter().map(|e| lane(e, domain)).collect();
        let mut delay = Duration::from_millis(50);
        let mut failing_since: Option<tokio::time::Instant> = None;
        loop {
            let gate = self.queue.enqueue_gate().await;
            let live = self.registry.snapshot();
            let mut appends = Appends::default();
            for (index, hook) in deliveries {
                if live.get(&hook.id).is_none() {
                    continue;
                }
                let event = &events[*index];
                appends.push(
                    &hook.id,
                    Append {
                        lane: &lanes[*index],
                        event: event.id,
                        payload: event.payload(hook.get_raw),
                        domain,
                    },
                );
            }
            // An LRS's statements are queued like a hook's deliveries (see crate::xapi).
            for s in &xapi.statements {
                appends.push(
                    &s.queue,
                    Append {
                        lane: &s.lane,
                        event: s.event,
                        payload: &s.json,
                        domain: None,
                    },
                );
            }
            let mut pipe = redis::pipe();
            pipe.atomic();
            self.queue.append(&mut pipe, &appends);
            self.store
                .append_changes(&mut pipe, &self.mapper.state, changes);
            if let Some(x) = &self.xapi {
                x.append(xapi, &mut pipe);
            }
            if let (Some(source), Some(position)) = (&self.source, position) {
                pipe.hset(&source.position_key, &source.server, position)
                    .ignore();
            }
            let written = match &self.source {
                None => pipe.query_async::<Vec<u64>>(&mut conn).await.map(Some),
                Some(source) => {
                    match crate::lease::watch_fence(
                        &mut conn,
                        &source.lease.fence_key,
                        source.lease.token,
                    )
                    .await
                    {
                        Ok(()) => pipe.query_async::<Option<Vec<u64>>>(&mut conn).await,
                        Err(FenceError::Redis(e)) => Err(e),
                        Err(lost) => return Err(lost),
                    }
                }
            };
            match written {
                // The fence moved between the check and EXEC: Redis wrote nothing.
                Ok(None) => {
                    drop(gate);
                    continue;
                }
                Ok(Some(lengths)) => {
                    // Under the gate still: a hook deleted right after keeps no depth behind.
                    self.queue.appended(&appends, &lengths);
                    drop(gate);
                    if let Some(x) = &self.xapi {
                        x.written(xapi);
                    }
                    if failing_since.is_some() {
                        self.metrics
                            .redis_reconnects
                            .with_label_values(&["commands"])
                            .inc();
                        self.readiness.set_write_error(None);
                        tracing::info!("Redis takes writes again");
                    }
                    return Ok(());
                }
                Err(e) => {
                    drop(gate);
                    let since = *failing_since.get_or_insert_with(tokio::time::Instant::now);
                    self.readiness.set_write_error(Some(e.to_string()));
                    if self.stop.is_cancelled() && since.elapsed() >= self.grace {
                        tracing::error!(error = %e, deliveries = deliveries.len(), "stopping while Redis refuses writes: this batch is lost");
                        return Ok(());
                    }
                    tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "cannot write to Redis; holding the batch and retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        // At shutdown, retry at once until the grace period is over.
                        _ = self.stop.cancelled(), if !self.stop.is_cancelled() => {}
                    }
                    delay = (delay * 2).min(Duration::from_secs(2));
                }
            }
        }
    }

    /// After Redis lost its data: writes the hooks and every mapping held in memory again and
    /// re-reads the queues' depths. Tried again at each housekeeping tick until it works.
    async fn rewrite(&mut self) {
        let hooks = match self.registry.rewrite().await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, "cannot rewrite the hooks yet; trying again shortly");
                return;
            }
        };
        let everything = self.mapper.state.everything();
        let mut pipe = redis::pipe();
        self.store
            .append_changes(&mut pipe, &self.mapper.state, &everything);
        if let Some(xapi) = &self.xapi {
            xapi.rewrite(&mut pipe);
        }
        let mut conn = self.queue.connection();
        if let Err(e) = pipe.query_async::<()>(&mut conn).await {
            tracing::warn!(error = %e, "cannot rewrite the mappings yet; trying again shortly");
            return;
        }
        for hook in self.registry.snapshot().iter() {
            if let Err(e) = self.queue.resume(&hook.id).await {
                tracing::warn!(hook = %hook.id, error = %e, "cannot read the queue's length");
            }
        }
        self.rewrite_pending = false;
        tracing::info!(
            hooks,
            mappings = everything.len(),
            "rewrote hooks and mappings from memory"
        );
    }

    async fn housekeeping(&mut self) {
        if self.rewrite_pending {
            self.rewrite().await;
        }
        let now = crate::time::now_ms();
        let expired = self
            .mapper
            .state
            .expire(now, self.settings.mappings.timeout);
        if expired > 0 {
            tracing::info!(meetings = expired, "forgot inactive meetings");
        }
        if let Some(xapi) = self.xapi.as_mut() {
            let timeout = self.settings.mappings.timeout.as_millis() as u64;
            xapi.expire(now, timeout);
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

/// The lane of an event's deliveries: events of one meeting keep their order, meetings travel
/// apart. In a cluster the server's name comes first, so that servers travel apart too (and the
/// events that name no meeting form one lane per server).
fn lane<'a>(event: &'a Event, server: Option<&str>) -> Cow<'a, str> {
    let meeting = event
        .internal_meeting_id
        .as_deref()
        .or(event.external_meeting_id.as_deref())
        .unwrap_or("");
    match server {
        Some(server) => Cow::Owned(format!("{server}/{meeting}")),
        None => Cow::Borrowed(meeting),
    }
}
