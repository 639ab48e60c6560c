//! The writer: gives every received message its id and puts it in a Redis, never out of order.
//!
//! One task does both the writing and the draining, so that the switch between the two routes
//! needs no lock and cannot race:
//!
//! * **Route::Cluster** (the buffer is empty): each batch of what arrived meanwhile goes to the
//!   cluster's ingest stream in one script call. If the cluster Redis fails, the entries it did
//!   not take, and everything after them, go to the buffer (one line is logged, with the error).
//! * **Route::Buffer**: arrivals are appended to the local buffer; between them, the oldest
//!   buffered entries are copied to the cluster stream (with their ids) and then deleted from
//!   the buffer. Once a read finds the buffer empty, the route is the cluster again (one line,
//!   with how many were drained). A crash between the copy and the delete sends those entries
//!   again at the next start: the cluster stream refuses their ids (counted as duplicates).
//!
//! When neither Redis takes writes, the current batch waits in memory and new messages wait in
//! the subscriber's bounded intake (beyond its bound they are dropped and counted).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use tokio::time::Instant;

use super::metrics::ForwardMetrics;
use super::status::{Route, Status};
use super::store::{self, Cap};
use crate::cluster::{ClusterKeys, IdClock, IngestEntry};
use crate::input::{IntakeReceiver, RawMessage};
use crate::logging::RateLimit;
use crate::redis_conn::Reconnecting;

/// Most entries per write.
pub const BATCH: usize = 1000;
/// Most entries moved from the buffer per round.
pub const DRAIN_BATCH: usize = 500;
const MIN_RETRY: Duration = Duration::from_millis(100);
const MAX_RETRY: Duration = Duration::from_secs(2);

static LOCAL_FAILED_LOG: RateLimit = RateLimit::new(Duration::from_secs(10));
static CLUSTER_RETRY_LOG: RateLimit = RateLimit::new(Duration::from_secs(30));
static MALFORMED_LOG: RateLimit = RateLimit::new(Duration::from_secs(10));
static CAP_LOG: RateLimit = RateLimit::new(Duration::from_secs(10));

/// What the writer needs to know.
#[derive(Debug, Clone)]
pub struct Plan {
    pub server: String,
    pub keys: ClusterKeys,
    pub stream_cap: usize,
    pub buffer_cap: usize,
    /// How long, once intake is over, the writer keeps trying to put what it holds in a Redis.
    pub stop_grace: Duration,
}

pub struct Writer {
    plan: Plan,
    ingest_key: String,
    buffer_key: String,
    local: Reconnecting,
    cluster: Reconnecting,
    clock: IdClock,
    metrics: Arc<ForwardMetrics>,
    status: Status,
    route: Route,
    /// Received, with ids, in no Redis yet; oldest first.
    pending: VecDeque<IngestEntry>,
    /// When the cluster Redis may be tried again, and the wait after that.
    cluster_retry_at: Instant,
    cluster_delay: Duration,
    local_retry_at: Instant,
    local_delay: Duration,
    /// Entries moved from the buffer since the route last became the buffer.
    drained: u64,
}

impl Writer {
    /// `local` must answer already; `cluster` may not. Reads the last ids used (in the cluster
    /// stream and in the buffer) so that new ids are above both, and picks the route: the
    /// buffer when it holds anything or the cluster Redis does not answer.
    pub async fn start(
        plan: Plan,
        mut local: Reconnecting,
        cluster: Reconnecting,
        metrics: Arc<ForwardMetrics>,
        status: Status,
    ) -> redis::RedisResult<Writer> {
        let ingest_key = plan.keys.ingest(&plan.server);
        let buffer_key = plan.keys.buffer(&plan.server);
        let (buffer_last, depth) = {
            let c = local.get().await?;
            (
                store::last_id(c.conn, &buffer_key).await?,
                store::length(c.conn, &buffer_key).await?,
            )
        };
        let mut w = Writer {
            plan,
            ingest_key,
            buffer_key,
            local,
            cluster,
            clock: IdClock::above(buffer_last),
            metrics,
            status,
            route: Route::Buffer,
            pending: VecDeque::new(),
            cluster_retry_at: Instant::now(),
            cluster_delay: MIN_RETRY,
            local_retry_at: Instant::now(),
            local_delay: MIN_RETRY,
            drained: 0,
        };
        w.metrics.buffer_depth.set(depth as i64);
        let cluster_ok = match w.cluster_connection().await {
            Ok(()) => {
                w.cluster_ok();
                true
            }
            Err(e) => {
                tracing::warn!(cluster = %w.cluster.target().shown(), error = %e, "the cluster Redis does not answer: buffering on the local Redis until it does");
                w.cluster_failed(e.to_string());
                false
            }
        };
        w.route = if cluster_ok && depth == 0 {
            Route::Cluster
        } else {
            Route::Buffer
        };
        if depth > 0 {
            tracing::info!(
                depth,
                "the local buffer holds messages from before: sending them first"
            );
        }
        w.status.update(|s| {
            s.route = w.route;
            s.local_writable = true;
            s.buffer_depth = depth;
        });
        Ok(w)
    }

    /// Runs until intake is over (the subscriber stopped), then puts what it holds in a Redis
    /// (for at most the plan's grace period).
    pub async fn run(mut self, mut rx: IntakeReceiver) {
        let mut arrived: Vec<RawMessage> = Vec::with_capacity(BATCH);
        let mut open = true;
        while open {
            if self.pending.len() < BATCH {
                let room = BATCH - self.pending.len();
                let idle = self.pending.is_empty() && !self.drain_due();
                if idle {
                    let wake = self.next_wake();
                    tokio::select! {
                        n = rx.recv_many(&mut arrived, room) => open = n > 0,
                        _ = tokio::time::sleep_until(wake) => {}
                    }
                } else if let Some(n) = rx.recv_many(&mut arrived, room).now_or_never() {
                    open = n > 0;
                }
                self.take(&mut arrived);
            }
            self.step().await;
            if !self.pending.is_empty() && !self.progress_possible() {
                // Nothing takes writes: wait for the next retry (arrivals wait in the bounded
                // intake meanwhile).
                tokio::time::sleep_until(self.next_wake()).await;
            }
        }
        self.finish().await;
    }

    /// Ids for what arrived, in arrival order.
    fn take(&mut self, arrived: &mut Vec<RawMessage>) {
        for raw in arrived.drain(..) {
            crate::fault::forwarder(&raw.payload);
            let id = self.clock.next(raw.received_at);
            self.pending.push_back(IngestEntry {
                id,
                server: self.plan.server.clone(),
                channel: raw.channel,
                received_at: raw.received_at,
                message: raw.payload,
            });
        }
        self.metrics.backlog.set(self.pending.len() as i64);
    }

    /// One round: the pending batch to where the route says; while buffering, one drain batch.
    async fn step(&mut self) {
        let now = Instant::now();
        if self.route == Route::Cluster && !self.pending.is_empty() {
            self.pending_to_cluster().await;
        }
        if self.route == Route::Buffer {
            if !self.pending.is_empty() && now >= self.local_retry_at {
                self.pending_to_buffer().await;
            }
            if self.drain_due() {
                self.drain_once().await;
            }
        }
        let backlog = self.pending.len();
        self.metrics.backlog.set(backlog as i64);
        self.status.update(|s| s.backlog = backlog);
    }

    fn drain_due(&self) -> bool {
        self.route == Route::Buffer
            && Instant::now() >= self.cluster_retry_at
            && Instant::now() >= self.local_retry_at
    }

    /// Whether a write could be tried now.
    fn progress_possible(&self) -> bool {
        let now = Instant::now();
        match self.route {
            Route::Cluster => true,
            _ => now >= self.local_retry_at || self.drain_due(),
        }
    }

    /// When to look again if nothing arrives: the next drain while buffering with nothing to
    /// write, the next local retry with something to write.
    fn next_wake(&self) -> Instant {
        match self.route {
            Route::Cluster => Instant::now() + Duration::from_secs(3600),
            _ if self.pending.is_empty() => self.cluster_retry_at.max(self.local_retry_at),
            _ => self.local_retry_at,
        }
    }

    async fn pending_to_cluster(&mut self) {
        let batch: Vec<IngestEntry> = self.pending.iter().take(BATCH).cloned().collect();
        let outcome = match self.cluster_connection().await {
            Ok(()) => match self.cluster.get().await {
                Ok(c) => store::append(
                    c.conn,
                    &self.ingest_key,
                    Cap::About(self.plan.stream_cap),
                    &batch,
                )
                .await
                .map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            },
            Err(e) => Err(e.to_string()),
        };
        let error = match outcome {
            Ok(done) => {
                self.pending.drain(..done.handled().min(batch.len()));
                self.metrics.forwarded.inc_by(done.added);
                self.metrics.duplicates.inc_by(done.duplicates);
                done.error
            }
            Err(e) => {
                self.cluster.failed();
                Some(e)
            }
        };
        match error {
            None => self.cluster_ok(),
            Some(e) => {
                tracing::warn!(cluster = %self.cluster.target().shown(), error = %e, waiting = self.pending.len(), "the cluster Redis does not take writes: buffering on the local Redis until it does");
                self.cluster_failed(e);
                self.drained = 0;
                self.route = Route::Buffer;
                self.status.update(|s| s.route = Route::Buffer);
            }
        }
    }

    async fn pending_to_buffer(&mut self) {
        let batch: Vec<IngestEntry> = self.pending.iter().take(BATCH).cloned().collect();
        let (key, cap) = (self.buffer_key.clone(), Cap::Exactly(self.plan.buffer_cap));
        let outcome = match self.local_connection().await {
            Ok(c) => store::append(c, &key, cap, &batch)
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e),
        };
        let error = match outcome {
            Ok(done) => {
                self.pending.drain(..done.handled().min(batch.len()));
                self.metrics.buffered.inc_by(done.added);
                self.set_depth(done.length);
                if done.trimmed > 0 {
                    self.metrics
                        .dropped
                        .with_label_values(&["buffer_cap"])
                        .inc_by(done.trimmed);
                    if let Some(held_back) = CAP_LOG.check() {
                        tracing::error!(
                            dropped = done.trimmed,
                            cap = self.plan.buffer_cap,
                            similar_held_back = held_back,
                            "the local buffer is full (forward.bufferMaxLen): its oldest messages were dropped"
                        );
                    }
                }
                done.error
            }
            Err(e) => {
                self.local.failed();
                Some(e)
            }
        };
        match error {
            None => self.local_ok(),
            Some(e) => self.local_failed(e),
        }
    }

    /// Moves the oldest buffered entries to the cluster stream, then deletes them from the
    /// buffer. An empty buffer ends buffering.
    async fn drain_once(&mut self) {
        let key = self.buffer_key.clone();
        let read = match self.local_connection().await {
            Ok(c) => store::oldest(c, &key, DRAIN_BATCH)
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e),
        };
        let read = match read {
            Ok(read) => read,
            Err(e) => {
                self.local.failed();
                self.local_failed(e);
                return;
            }
        };
        if read.is_empty() {
            // Only now may new entries go straight: nothing older is left behind.
            if let Err(e) = self.cluster_connection().await {
                self.cluster_failed(e.to_string());
                return;
            }
            tracing::info!(
                drained = self.drained,
                "the local buffer is drained: forwarding straight to the cluster Redis again"
            );
            self.drained = 0;
            self.route = Route::Cluster;
            self.set_depth(0);
            self.cluster_ok();
            self.status.update(|s| s.route = Route::Cluster);
            return;
        }
        let mut usable = Vec::with_capacity(read.len());
        let mut unusable = Vec::new();
        for entry in read {
            match entry {
                Ok(e) => usable.push(e),
                Err(bad) => unusable.push(bad),
            }
        }
        let mut done_ids: Vec<String> = Vec::new();
        for bad in &unusable {
            self.metrics.dropped.with_label_values(&["malformed"]).inc();
            if let Some(held_back) = MALFORMED_LOG.check() {
                tracing::error!(error = %bad, similar_held_back = held_back, "an unreadable entry in the local buffer: deleted");
            }
            done_ids.push(bad.id.clone());
        }
        let sent = match self.cluster_connection().await {
            Ok(()) => match self.cluster.get().await {
                Ok(c) => store::append(
                    c.conn,
                    &self.ingest_key,
                    Cap::About(self.plan.stream_cap),
                    &usable,
                )
                .await
                .map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            },
            Err(e) => Err(e.to_string()),
        };
        let error = match sent {
            Ok(done) => {
                self.metrics.forwarded.inc_by(done.added);
                self.metrics.duplicates.inc_by(done.duplicates);
                let handled = done.handled().min(usable.len());
                self.drained += handled as u64;
                done_ids.extend(usable[..handled].iter().map(|e| e.id.clone()));
                done.error
            }
            Err(e) => {
                self.cluster.failed();
                Some(e)
            }
        };
        if !done_ids.is_empty() {
            let ids: Vec<&str> = done_ids.iter().map(String::as_str).collect();
            let removed = match self.local_connection().await {
                Ok(c) => store::remove(c, &key, &ids)
                    .await
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e),
            };
            match removed {
                Ok(depth) => self.set_depth(depth),
                Err(e) => {
                    // They are in the cluster stream: sent again later, they are refused there.
                    self.local.failed();
                    self.local_failed(e);
                }
            }
        }
        match error {
            None => self.cluster_ok(),
            Some(e) => {
                if let Some(held_back) = CLUSTER_RETRY_LOG.check() {
                    tracing::warn!(cluster = %self.cluster.target().shown(), error = %e, similar_held_back = held_back, "the cluster Redis still does not take writes; the buffer waits");
                }
                self.cluster_failed(e);
            }
        }
    }

    /// Makes sure a cluster connection exists; on a new one, registers the server and keeps the
    /// id clock above the stream's last id.
    async fn cluster_connection(&mut self) -> redis::RedisResult<()> {
        let servers = self.plan.keys.servers();
        let c = match self.cluster.get().await {
            Ok(c) => c,
            Err(e) => {
                self.cluster.failed();
                return Err(e);
            }
        };
        if !c.fresh {
            return Ok(());
        }
        if c.reconnect {
            self.metrics
                .reconnects
                .with_label_values(&["cluster"])
                .inc();
        }
        let setup: redis::RedisResult<u64> = redis::cmd("SADD")
            .arg(&servers)
            .arg(&self.plan.server)
            .query_async(&mut *c.conn)
            .await;
        let top = match setup {
            Ok(_) => store::last_id(c.conn, &self.ingest_key).await,
            Err(e) => Err(e),
        };
        match top {
            Ok(top) => {
                self.clock.raise_to(top);
                Ok(())
            }
            Err(e) => {
                self.cluster.failed();
                Err(e)
            }
        }
    }

    async fn local_connection(&mut self) -> Result<&mut redis::aio::MultiplexedConnection, String> {
        let reconnect = match self.local.get().await {
            Ok(c) => c.reconnect,
            Err(e) => {
                self.local.failed();
                return Err(e.to_string());
            }
        };
        if reconnect {
            self.metrics.reconnects.with_label_values(&["local"]).inc();
        }
        // Made just above: this only hands it over.
        self.local
            .get()
            .await
            .map(|c| c.conn)
            .map_err(|e| e.to_string())
    }

    fn set_depth(&self, depth: u64) {
        self.metrics.buffer_depth.set(depth as i64);
        self.status.update(|s| s.buffer_depth = depth);
    }

    fn cluster_ok(&mut self) {
        self.cluster_delay = MIN_RETRY;
        self.status.update(|s| {
            s.cluster_writable = true;
            s.cluster_error = None;
        });
    }

    fn cluster_failed(&mut self, error: String) {
        self.cluster_retry_at = Instant::now() + self.cluster_delay;
        self.cluster_delay = (self.cluster_delay * 2).min(MAX_RETRY);
        self.status.update(|s| {
            s.cluster_writable = false;
            s.cluster_error = Some(error);
        });
    }

    fn local_ok(&mut self) {
        self.local_delay = MIN_RETRY;
        self.status.update(|s| {
            s.local_writable = true;
            s.local_error = None;
        });
    }

    fn local_failed(&mut self, error: String) {
        if let Some(held_back) = LOCAL_FAILED_LOG.check() {
            tracing::error!(error = %error, waiting = self.pending.len(), similar_held_back = held_back, "the local Redis does not take the buffer's writes either: messages wait in memory");
        }
        self.local_retry_at = Instant::now() + self.local_delay;
        self.local_delay = (self.local_delay * 2).min(MAX_RETRY);
        self.status.update(|s| {
            s.local_writable = false;
            s.local_error = Some(error);
        });
    }

    /// Intake is over: put what is held in a Redis, within the grace period.
    async fn finish(mut self) {
        let deadline = Instant::now() + self.plan.stop_grace;
        while !self.pending.is_empty() && Instant::now() < deadline {
            match self.route {
                Route::Cluster => self.pending_to_cluster().await,
                _ => {
                    if Instant::now() >= self.local_retry_at {
                        self.pending_to_buffer().await;
                    } else {
                        tokio::time::sleep_until(self.local_retry_at.min(deadline)).await;
                    }
                }
            }
        }
        if !self.pending.is_empty() {
            tracing::error!(
                lost = self.pending.len(),
                "stopping with messages that neither Redis took"
            );
        }
    }
}
