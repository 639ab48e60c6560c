//! xAPI delivery: one small worker per LRS drains that LRS's queue (`xapi:<lrsId>` in
//! [`crate::queue`]), one statement at a time, strictly in the order they were queued.
//!
//! Why its own worker and not a hook worker: an LRS is no hook (no registry entry, no checksum,
//! no batching, no lanes: the statements of all meetings go to one LRS in one order), and the
//! hook pool is built around hooks. What it shares with hooks is what matters for not losing
//! anything: the durable queue (read in order, acknowledged after success, a crash re-sends at
//! most the statement in flight), the retry schedule of [`super::retry`] (`retryIntervals`, then
//! `permanentIntervalReset` forever: an LRS is never given up, its statements wait, bounded by
//! `hooks.queueSize` with drops counted), and the retry state in Redis across restarts.
//!
//! With a backlog, up to `xapi.statementsPerRequest` statements go in one request (a JSON array:
//! every LRS takes one; 1 by default, as 3.x). Outcomes: 2xx is sent; 400, 409, 413 and 422 mean
//! the LRS refuses the request for good (retrying cannot help): a single statement is dropped
//! with a warning and counted as failed `rejected_<status>`, the statements of a refused array
//! are sent again one by one so that only the bad one is dropped; anything else (no answer,
//! 5xx, 401/403/404: a configuration that may be fixed, 429) is retried.
//! Redirects are not followed (a POST redirected elsewhere would not be a stored statement).
//!
//! Which LRSes exist is in Redis ([`crate::lrs`]): read at start and again (at most every
//! [`COALESCE`]) when the processing side queued statements, so an LRS gets a worker as soon as
//! it has statements. An LRS whose queue stayed empty for `xapi.lrsIdleTimeout` retires: its
//! worker ends and its descriptor (credentials) is deleted from Redis, in one script that checks
//! the queue is still empty; the processing side writes the descriptor again with its next
//! statement, and the next look starts a worker. So per-meeting LRSes leave neither tasks nor
//! credentials behind. A worker that ends otherwise (a panic) is counted and started again at
//! the next look.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::ConnectionManager;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::retry::{Next, RetryPolicy};
use crate::config::Settings;
use crate::keys::{Keys, XAPI_QUEUE_PREFIX};
use crate::logging::RateLimit;
use crate::lrs::{self, Lrs};
use crate::metrics::Metrics;
use crate::queue::{DeliveryQueue, Entry, FailedRequest, HookQueue};

/// Statements read from Redis at a time.
const PREFETCH: usize = 64;
/// How often the list of LRSes is read again without being told.
const LOOK_EVERY: Duration = Duration::from_secs(10);
/// How much of an LRS's answer is read (its content is never used).
const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// After being told of new statements, the next look at the LRS list waits this long, so that a
/// busy enqueuer (told at each batch) costs one look per period.
const COALESCE: Duration = Duration::from_millis(100);

/// Retires an idle LRS if its queue is still empty: deletes its descriptor and retry state.
/// KEYS: queue, LRS hash, retry state; ARGV: lrsId. 1 when retired.
const RETIRE: &str = r"
if redis.call('XLEN', KEYS[1]) == 0 then
  redis.call('HDEL', KEYS[2], ARGV[1])
  redis.call('DEL', KEYS[3], KEYS[1])
  return 1
end
return 0
";

/// Why a worker ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Exit {
    /// Shutdown, or aborted.
    Stopped,
    /// Idle: its descriptor was deleted.
    Retired,
}

static FAILURE_LOG: RateLimit = RateLimit::new(Duration::from_secs(10));
static REJECTED_LOG: RateLimit = RateLimit::new(Duration::from_secs(10));

struct Shared {
    queue: DeliveryQueue,
    conn: ConnectionManager,
    keys: Keys,
    http: reqwest::Client,
    policy: RetryPolicy,
    per_request: usize,
    idle: Duration,
    retire: redis::Script,
    metrics: Arc<Metrics>,
    tracker: TaskTracker,
    draining: CancellationToken,
}

struct Worker {
    abort: CancellationToken,
    task: JoinHandle<Exit>,
}

/// The LRS workers.
pub struct XapiPool {
    shared: Arc<Shared>,
    workers: Mutex<HashMap<String, Worker>>,
    lrs_added: Arc<Notify>,
}

impl XapiPool {
    pub fn new(
        settings: &Settings,
        queue: DeliveryQueue,
        keys: Keys,
        metrics: Arc<Metrics>,
        tracker: TaskTracker,
        lrs_added: Arc<Notify>,
    ) -> Result<XapiPool, reqwest::Error> {
        let timeout = settings.hooks.request_timeout;
        let http = reqwest::Client::builder()
            .user_agent(concat!("bbb-webhooks/", env!("CARGO_PKG_VERSION")))
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()?;
        Ok(XapiPool {
            shared: Arc::new(Shared {
                conn: queue.connection(),
                queue,
                keys,
                http,
                // Every LRS counts as permanent: its statements are never given up.
                policy: RetryPolicy::new(&settings.hooks),
                idle: settings.xapi.lrs_idle_timeout,
                per_request: settings.xapi.statements_per_request.get().min(PREFETCH),
                retire: redis::Script::new(RETIRE),
                metrics,
                tracker,
                draining: CancellationToken::new(),
            }),
            workers: Mutex::default(),
            lrs_added,
        })
    }

    /// Runs until shutdown: starts a worker for every LRS in Redis, now and whenever told.
    pub async fn supervise(self: Arc<Self>) {
        loop {
            match lrs::load_all(&self.shared.conn, &self.shared.keys).await {
                Ok(all) => self.start_missing(all),
                Err(e) => tracing::warn!(error = %e, "cannot read the xAPI LRS list yet"),
            }
            tokio::select! {
                _ = self.lrs_added.notified() => {
                    tokio::select! {
                        _ = tokio::time::sleep(COALESCE) => {}
                        _ = self.shared.draining.cancelled() => return,
                    }
                }
                _ = tokio::time::sleep(LOOK_EVERY) => {}
                _ = self.shared.draining.cancelled() => return,
            }
        }
    }

    fn start_missing(&self, all: HashMap<String, Lrs>) {
        use futures_util::FutureExt;
        let mut workers = self.workers.lock().unwrap_or_else(|p| p.into_inner());
        let ended: Vec<String> = workers
            .iter()
            .filter(|(_, w)| w.task.is_finished())
            .map(|(id, _)| id.clone())
            .collect();
        for id in ended {
            let Some(w) = workers.remove(&id) else {
                continue;
            };
            match w.task.now_or_never() {
                Some(Ok(_)) | None => {}
                Some(Err(e)) => {
                    self.shared.metrics.worker_restarts.inc();
                    tracing::error!(lrs = %id, error = %e, "an xAPI worker ended unexpectedly; it is started again while its LRS has statements");
                }
            }
        }
        for (id, lrs) in all {
            if workers.contains_key(&id) {
                continue;
            }
            tracing::info!(lrs = %id, host = %lrs.host(), "xAPI statements for this LRS are sent from its queue");
            let abort = CancellationToken::new();
            let task =
                self.shared
                    .tracker
                    .spawn(run(self.shared.clone(), id.clone(), lrs, abort.clone()));
            workers.insert(id, Worker { abort, task });
        }
    }

    /// Stops the workers: no new attempt starts; requests in flight get `grace`.
    pub async fn stop(&self, grace: Duration) {
        self.shared.draining.cancel();
        let workers: Vec<Worker> = self
            .workers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
            .map(|(_, w)| w)
            .collect();
        let deadline = tokio::time::Instant::now() + grace;
        for mut w in workers {
            if tokio::time::timeout_at(deadline, &mut w.task)
                .await
                .is_err()
            {
                w.abort.cancel();
                w.task.abort();
            }
        }
    }
}

/// How one attempt ended.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Sent,
    /// The LRS refuses this statement for good.
    Rejected(u16),
    Failed(String),
}

/// One request: a single statement as it is, several as a JSON array.
async fn send(http: &reqwest::Client, lrs: &Lrs, statements: &[Entry]) -> Outcome {
    let body = match statements {
        [one] => one.payload.clone(),
        many => {
            let items: Vec<&str> = many.iter().map(|e| e.payload.as_str()).collect();
            format!("[{}]", items.join(","))
        }
    };
    let mut request = http
        .post(&lrs.statements_url)
        .header("Content-Type", "application/json")
        .header("X-Experience-API-Version", "1.0.0")
        .body(body);
    if let Some(auth) = lrs.auth.header() {
        request = request.header("Authorization", auth);
    }
    let mut response = match request.send().await {
        Ok(r) => r,
        Err(e) if e.is_timeout() => return Outcome::Failed("timeout".into()),
        Err(e) if e.is_connect() => return Outcome::Failed("connect".into()),
        Err(_) => return Outcome::Failed("request".into()),
    };
    // Read a little of the answer so the connection can be reused; never more.
    let mut read = 0;
    while let Ok(Some(chunk)) = response.chunk().await {
        read += chunk.len();
        if read > MAX_ANSWER_BYTES {
            break;
        }
    }
    let status = response.status().as_u16();
    match status {
        200..=299 => Outcome::Sent,
        400 | 409 | 413 | 422 => Outcome::Rejected(status),
        other => Outcome::Failed(other.to_string()),
    }
}

/// One LRS's worker: its queue, in order, one statement at a time.
async fn run(shared: Arc<Shared>, id: String, lrs: Lrs, abort: CancellationToken) -> Exit {
    let name = format!("{XAPI_QUEUE_PREFIX}{id}");
    let mut queue = shared.queue.hook(&name);
    let host = lrs.host();
    let m = &shared.metrics;
    // Until Redis answers: the depth and the retry state of a previous run.
    let stored = loop {
        let depth = shared.queue.resume(&name).await;
        match (depth, queue.load_retry_state().await) {
            (Ok(_), Ok(state)) => break state,
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!(lrs = %id, error = %e, "cannot read the xAPI queue yet");
                if pause(&shared, &abort, Duration::from_secs(1)).await {
                    return Exit::Stopped;
                }
            }
        }
    };
    let mut failures = stored.failures;
    let mut first_attempts: HashMap<String, FailedRequest> = stored.requests;
    let mut window: VecDeque<Entry> = VecDeque::new();
    let mut last_read: Option<String> = None;
    // After an array was refused: its statements go one by one, up to this one.
    let mut singly_until: Option<(u64, u64)> = None;
    loop {
        if shared.draining.is_cancelled() || abort.is_cancelled() {
            return Exit::Stopped;
        }
        let Some(head) = window.front().map(Entry::key) else {
            if let Some(exit) = fill(
                &shared,
                &mut queue,
                &mut window,
                &mut last_read,
                &abort,
                &id,
            )
            .await
            {
                if exit == Exit::Retired {
                    tracing::info!(lrs = %id, host = %host, "the LRS had no statements for a while: its worker stops and its stored credentials are deleted until its next statement");
                }
                return exit;
            }
            continue;
        };
        let n = if singly_until.is_some_and(|last| head <= last) {
            1
        } else {
            singly_until = None;
            shared.per_request.min(window.len())
        };
        let batch: Vec<Entry> = window.iter().take(n).cloned().collect();
        let entry = batch[0].clone();
        let outcome = send(&shared.http, &lrs, &batch).await;
        match outcome {
            Outcome::Rejected(_) if n > 1 => {
                singly_until = batch.last().map(Entry::key);
                continue;
            }
            Outcome::Sent | Outcome::Rejected(_) => {
                if let Outcome::Rejected(status) = outcome {
                    m.xapi_statements_failed
                        .with_label_values(&[&id, &format!("rejected_{status}")])
                        .inc();
                    if let Some(held_back) = REJECTED_LOG.check() {
                        tracing::warn!(lrs = %id, host = %host, status, event = %entry.event, similar_held_back = held_back, "the LRS rejected an xAPI statement: dropped");
                    }
                } else {
                    m.xapi_statements_sent
                        .with_label_values(&[&id])
                        .inc_by(n as u64);
                }
                queue.ack(batch.iter().map(|e| e.id.clone()).collect());
                window.drain(..n);
                let recovered = failures > 0;
                if recovered {
                    tracing::info!(lrs = %id, host = %host, failures, "the LRS takes xAPI statements again");
                    failures = 0;
                }
                if (recovered || first_attempts.remove(&entry.id).is_some())
                    && let Err(e) = queue.clear_failure(&entry.id, recovered).await
                {
                    tracing::warn!(lrs = %id, error = %e, "cannot clear the LRS's retry state");
                }
            }
            Outcome::Failed(reason) => {
                failures = failures.saturating_add(1);
                m.xapi_statements_failed
                    .with_label_values(&[&id, &reason])
                    .inc();
                // An LRS counts as permanent: the schedule never gives it up.
                let wait = match shared.policy.after_failure(failures, true) {
                    Next::RetryAfter(wait) => wait,
                    Next::GiveUp => Duration::from_secs(60),
                };
                if let Some(held_back) = FAILURE_LOG.check() {
                    tracing::warn!(lrs = %id, host = %host, reason = %reason, failures, retry_in_ms = wait.as_millis() as u64, similar_held_back = held_back, "cannot send an xAPI statement; it waits in the queue");
                }
                let request = *first_attempts
                    .entry(entry.id.clone())
                    .or_insert(FailedRequest {
                        count: n,
                        first_attempt: crate::time::now_ms(),
                    });
                if let Err(e) = queue.save_failure(failures, &entry.id, request).await {
                    tracing::warn!(lrs = %id, error = %e, "cannot store the LRS's retry state");
                }
                if pause(&shared, &abort, wait).await {
                    return Exit::Stopped;
                }
            }
        }
    }
}

/// Reads the next statements into `window`, waiting for appends when there are none; `Some`
/// when the worker must end (stopping, or retired after `xapi.lrsIdleTimeout` without any).
async fn fill(
    shared: &Shared,
    queue: &mut HookQueue,
    window: &mut VecDeque<Entry>,
    last_read: &mut Option<String>,
    abort: &CancellationToken,
    id: &str,
) -> Option<Exit> {
    let stop = || Some(Exit::Stopped);
    match queue.read(last_read.as_deref(), PREFETCH).await {
        Ok(entries) if entries.is_empty() => {
            tokio::select! {
                _ = queue.appended() => None,
                _ = tokio::time::sleep(shared.idle) => retire(shared, id).await,
                _ = shared.draining.cancelled() => stop(),
                _ = abort.cancelled() => stop(),
            }
        }
        Ok(entries) => {
            *last_read = entries.last().map(|e| e.id.clone());
            window.extend(entries);
            None
        }
        Err(e) => {
            tracing::warn!(lrs = %id, error = %e, "cannot read the xAPI queue; trying again");
            pause(shared, abort, Duration::from_secs(1))
                .await
                .then_some(Exit::Stopped)
        }
    }
}

/// Deletes an idle LRS's descriptor if its queue is still empty; `Some(Retired)` when it did.
async fn retire(shared: &Shared, id: &str) -> Option<Exit> {
    let name = format!("{XAPI_QUEUE_PREFIX}{id}");
    let mut conn = shared.conn.clone();
    let retired: redis::RedisResult<i64> = shared
        .retire
        .key(shared.keys.queue(&name))
        .key(shared.keys.xapi_lrs())
        .key(shared.keys.attempt(&name))
        .arg(id)
        .invoke_async(&mut conn)
        .await;
    match retired {
        Ok(1) => Some(Exit::Retired),
        Ok(_) => None,
        Err(e) => {
            tracing::debug!(lrs = %id, error = %e, "cannot retire an idle LRS now");
            None
        }
    }
}

/// Sleeps `d`; true when the worker must stop instead.
async fn pause(shared: &Shared, abort: &CancellationToken, d: Duration) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => false,
        _ = shared.draining.cancelled() => true,
        _ = abort.cancelled() => true,
    }
}
