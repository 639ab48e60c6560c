//! Leases with fencing tokens on the cluster Redis: how relays share work so that each unit (a
//! server's ingest stream, a hook's queue) is worked on by exactly one instance at a time, and a
//! dead instance's units are taken over within seconds. It owns the lease keys and the
//! relays' presence; what a unit is and what is done with it belongs to the caller.
//!
//! A lease is a key `<clusterPrefix>:lease:<kind>:<name>` holding the owner's instance id, with a
//! time to live ([`TTL`]) that the owner renews every [`TICK`]. Taking a free lease also
//! increments `<clusterPrefix>:fence:<kind>:<name>` and the new value is the owner's **fencing
//! token**. Writes that must not come from a former owner (one paused for longer than the TTL)
//! check the token in the same transaction ([`watch_fence`]: `WATCH` the fence key, compare,
//! then `MULTI`…`EXEC`, which Redis aborts if a takeover changed the key meanwhile). Work that
//! cannot be fenced in Redis (an HTTP request) checks [`Held::is_valid`] first: the lease is
//! treated as lost locally a margin before Redis could give it to someone else.
//!
//! Sharing: every instance takes any free lease at once (so takeover never waits for a
//! rebalance), and one that holds more than its share (units ÷ live instances, rounded up)
//! gives the excess back, at most every [`REBALANCE_EVERY`], not taking it again for a while. Giving back is a
//! handover, not a loss: the lease is kept (and renewed) while the work on it winds down
//! ([`Held::handover`], [`Held::working`]: a worker finishes its requests in flight), for at
//! most [`HANDOVER_MAX`], and only then released, so a rebalance sends nothing twice. Instances are live
//! while they renew their entry in `<clusterPrefix>:relays` (a sorted set scored by time).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use redis::aio::ConnectionManager;
use redis::{AsyncCommands, Script};
use tokio::sync::{Notify, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::cluster::ClusterKeys;
use crate::metrics::Metrics;

/// How long a lease lives without renewal.
pub const TTL: Duration = Duration::from_secs(3);
/// How often leases are renewed and free ones looked for.
pub const TICK: Duration = Duration::from_secs(1);
/// A lease counts as lost locally this long before Redis lets it go.
const MARGIN: Duration = Duration::from_millis(500);
/// How often an instance holding more than its share gives the excess back.
const REBALANCE_EVERY: Duration = Duration::from_secs(5);
/// The longest a lease given back waits for its work to wind down.
const HANDOVER_MAX: Duration = Duration::from_secs(10);
/// A lease given back is not taken again by the same instance for this long.
const COOLDOWN: Duration = Duration::from_secs(15);
/// An instance that has not renewed its presence for this long no longer counts.
const PRESENCE: Duration = Duration::from_secs(5);

/// Units taken or renewed per script call: one round trip each, none long enough to hold Redis
/// up noticeably.
const CHUNK: usize = 256;

/// Takes each free lease of KEYS (lease, fence, lease, fence, …) for ARGV[1] with a life of
/// ARGV[2] ms; per pair, the new fencing token, or 0 when another instance holds it. A lease
/// already ours (an answer lost on the way) keeps its token.
const ACQUIRE: &str = r"
local out = {}
for i = 1, #KEYS, 2 do
  local token = 0
  if redis.call('SET', KEYS[i], ARGV[1], 'NX', 'PX', ARGV[2]) then
    token = redis.call('INCR', KEYS[i + 1])
  elseif redis.call('GET', KEYS[i]) == ARGV[1] then
    redis.call('PEXPIRE', KEYS[i], ARGV[2])
    token = tonumber(redis.call('GET', KEYS[i + 1]) or '0')
  end
  out[#out + 1] = token
end
return out";

static ACQUIRE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(ACQUIRE));
static RENEW_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(RENEW));

/// Renews each lease of KEYS still held by ARGV[1]; per key, 1 (renewed) or 0 (lost).
const RENEW: &str = r"
local out = {}
for i, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then
    out[i] = redis.call('PEXPIRE', key, ARGV[2])
  else
    out[i] = 0
  end
end
return out";

const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0";

/// A lease this instance holds. Cloned to whoever works on the unit.
#[derive(Debug, Clone)]
pub struct Held {
    /// The fencing token taken with the lease.
    pub token: u64,
    /// The fence key writes check the token against.
    pub fence_key: String,
    /// Cancelled when the lease is lost or given back: stop working on the unit.
    pub lost: CancellationToken,
    /// Cancelled when this instance gives the lease to another: finish what is under way, start
    /// nothing new, and end; the lease is released once nobody is [`Held::working`] any more.
    pub handover: CancellationToken,
    /// How many are working on the unit under this lease (see [`Held::working`]).
    busy: Arc<AtomicU64>,
    /// Tells the leaser that the last worker of a handover stopped.
    wound_down: Arc<Notify>,
    /// Until when (ms on [`Instant`] from `base`) the lease is surely still ours.
    valid_until: Arc<AtomicU64>,
    base: Instant,
}

impl Held {
    /// Whether the lease is surely still ours: renewed recently enough and not lost.
    pub fn is_valid(&self) -> bool {
        !self.lost.is_cancelled()
            && (self.base.elapsed().as_millis() as u64) < self.valid_until.load(Ordering::Relaxed)
    }

    /// Marks the caller as working on the unit until the guard is dropped: a handover waits
    /// for it.
    pub fn working(&self) -> WorkGuard {
        self.busy.fetch_add(1, Ordering::AcqRel);
        WorkGuard {
            busy: self.busy.clone(),
            handover: self.handover.clone(),
            wound_down: self.wound_down.clone(),
        }
    }

    fn extend(&self, renewed_at: Instant) {
        let until = renewed_at.duration_since(self.base) + TTL - MARGIN;
        self.valid_until
            .store(until.as_millis() as u64, Ordering::Relaxed);
    }
}

/// Held while working on a leased unit ([`Held::working`]).
#[derive(Debug)]
pub struct WorkGuard {
    busy: Arc<AtomicU64>,
    handover: CancellationToken,
    wound_down: Arc<Notify>,
}

impl Drop for WorkGuard {
    fn drop(&mut self) {
        let left = self.busy.fetch_sub(1, Ordering::AcqRel) - 1;
        if left == 0 && self.handover.is_cancelled() {
            self.wound_down.notify_one();
        }
    }
}

/// The leases of one kind held by this instance, by unit name.
pub type HeldSet = Arc<BTreeMap<String, Held>>;

/// Why a fenced write may not go ahead.
#[derive(Debug, thiserror::Error)]
pub enum FenceError {
    #[error("the lease was taken over (fencing token {theirs}, ours {ours})")]
    TakenOver { ours: u64, theirs: u64 },
    #[error(transparent)]
    Redis(#[from] redis::RedisError),
}

/// Starts a fenced transaction on `conn` (a connection only this writer uses): `WATCH`es the
/// fence key and checks that it still holds `token`. Follow with an atomic pipeline on the same
/// connection; Redis aborts its `EXEC` (a `nil` reply) if the fence moved in between.
pub async fn watch_fence(
    conn: &mut ConnectionManager,
    fence_key: &str,
    token: u64,
) -> Result<(), FenceError> {
    redis::cmd("WATCH")
        .arg(fence_key)
        .query_async::<()>(conn)
        .await?;
    let current: Option<u64> = conn.get(fence_key).await?;
    match current {
        Some(t) if t == token => Ok(()),
        other => {
            redis::cmd("UNWATCH").query_async::<()>(conn).await?;
            Err(FenceError::TakenOver {
                ours: token,
                theirs: other.unwrap_or(0),
            })
        }
    }
}

/// Where the units to lease come from (the servers that forward, the hooks).
pub type Units = Box<dyn FnMut() -> BoxFuture<'static, redis::RedisResult<Vec<String>>> + Send>;

/// Keeps the leases of one kind: renews those held, takes free ones, gives extras back.
pub struct Leaser {
    conn: ConnectionManager,
    keys: ClusterKeys,
    kind: &'static str,
    owner: String,
    held: HashMap<String, Held>,
    published: watch::Sender<HeldSet>,
    cooldown: HashMap<String, Instant>,
    /// Leases being handed over, since when.
    handing_over: HashMap<String, Instant>,
    wound_down: Arc<Notify>,
    last_rebalance: Instant,
    base: Instant,
    metrics: Arc<Metrics>,
}

impl Leaser {
    /// `owner` names this instance (unique per process); `kind` the units (`ingest`, `hook`).
    pub fn new(
        conn: ConnectionManager,
        keys: ClusterKeys,
        kind: &'static str,
        owner: &str,
        metrics: Arc<Metrics>,
    ) -> (Leaser, watch::Receiver<HeldSet>) {
        let (published, rx) = watch::channel(HeldSet::default());
        let now = Instant::now();
        (
            Leaser {
                conn,
                keys,
                kind,
                owner: owner.to_owned(),
                held: HashMap::new(),
                published,
                cooldown: HashMap::new(),
                handing_over: HashMap::new(),
                wound_down: Arc::new(Notify::new()),
                last_rebalance: now,
                base: now,
                metrics,
            },
            rx,
        )
    }

    /// Runs until `stop`; then gives every lease back so another instance takes over at once.
    /// A change of any of `nudges` (the units changed: a hook was created; a relay gave a lease
    /// back) starts a round at once, so the unit is worked on within milliseconds rather than at
    /// the next tick.
    pub async fn run(
        mut self,
        mut units: Units,
        mut nudges: Vec<watch::Receiver<u64>>,
        stop: CancellationToken,
    ) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            // A closed nudge stays silent.
            let waits = nudges.iter_mut().map(|rx| -> BoxFuture<'_, ()> {
                async move {
                    if rx.changed().await.is_err() {
                        std::future::pending::<()>().await
                    }
                }
                .boxed()
            });
            // `select_all` wants at least one future.
            let never: BoxFuture<'_, ()> = std::future::pending().boxed();
            let nudged = futures_util::future::select_all(waits.chain(std::iter::once(never)));
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tick.tick() => {}
                _ = nudged => {}
                _ = self.wound_down.notified() => {}
            }
            match units().await {
                Ok(names) => {
                    if let Err(e) = self.round(names).await {
                        tracing::warn!(kind = self.kind, error = %e, "cannot renew or take leases now");
                    }
                }
                Err(e) => {
                    tracing::warn!(kind = self.kind, error = %e, "cannot list what to lease");
                    // Renew what is held even when the list cannot be read.
                    let names: Vec<String> = self.held.keys().cloned().collect();
                    if let Err(e) = self.renew(&names).await {
                        tracing::warn!(kind = self.kind, error = %e, "cannot renew leases now");
                    }
                }
            }
            // Leases not renewed in time are lost locally, whatever Redis says later.
            let expired: Vec<String> = self
                .held
                .iter()
                .filter(|(_, h)| !h.is_valid())
                .map(|(n, _)| n.clone())
                .collect();
            for name in expired {
                tracing::warn!(kind = self.kind, unit = %name, "lease not renewed in time: giving up the work on it");
                self.drop_held(&name);
            }
            self.publish();
        }
        let names: Vec<String> = self.held.keys().cloned().collect();
        for name in names {
            self.release(&name).await;
        }
        self.publish();
    }

    /// One round: presence, renewals, takeovers, rebalancing.
    async fn round(&mut self, units: Vec<String>) -> redis::RedisResult<()> {
        let now_ms = crate::time::now_ms();
        let relays = self.keys.relays();
        let live: u64 = redis::pipe()
            .zadd(&relays, &self.owner, now_ms)
            .ignore()
            .zrembyscore(
                &relays,
                0,
                now_ms.saturating_sub(PRESENCE.as_millis() as u64 * 4),
            )
            .ignore()
            .zcount(
                &relays,
                now_ms.saturating_sub(PRESENCE.as_millis() as u64),
                "+inf",
            )
            .query_async::<(u64,)>(&mut self.conn)
            .await?
            .0;
        let held_names: Vec<String> = self.held.keys().cloned().collect();
        self.renew(&held_names).await?;
        // Units gone (a hook destroyed, a server removed) are let go.
        let wanted: std::collections::HashSet<&String> = units.iter().collect();
        for name in held_names.iter().filter(|n| !wanted.contains(n)) {
            self.release(name).await;
        }
        let now = Instant::now();
        self.cooldown.retain(|_, until| *until > now);
        let free: Vec<&String> = units
            .iter()
            .filter(|n| !self.held.contains_key(*n) && !self.cooldown.contains_key(*n))
            .collect();
        for chunk in free.chunks(CHUNK) {
            self.acquire(chunk).await?;
        }
        // Handovers whose work has wound down (or that waited long enough) are released.
        let done: Vec<String> = self
            .handing_over
            .iter()
            .filter(|(name, since)| {
                self.held
                    .get(*name)
                    .is_none_or(|h| h.busy.load(Ordering::Acquire) == 0)
                    || now.duration_since(**since) >= HANDOVER_MAX
            })
            .map(|(name, _)| name.clone())
            .collect();
        for name in done {
            self.handing_over.remove(&name);
            if self.held.contains_key(&name) {
                self.release(&name).await;
                self.cooldown.insert(name, now + COOLDOWN);
            }
        }
        let share = (units.len() as u64).div_ceil(live.max(1)) as usize;
        let keeping = self.held.len() - self.handing_over.len();
        if keeping > share && now.duration_since(self.last_rebalance) >= REBALANCE_EVERY {
            self.last_rebalance = now;
            let mut names: Vec<String> = self
                .held
                .keys()
                .filter(|n| !self.handing_over.contains_key(*n))
                .cloned()
                .collect();
            names.sort_unstable();
            let excess = names.split_off(share);
            tracing::info!(
                kind = self.kind,
                units = excess.len(),
                held = self.held.len(),
                share,
                "handing leases over to share the work"
            );
            for name in excess {
                if let Some(h) = self.held.get(&name) {
                    h.handover.cancel();
                }
                self.handing_over.insert(name, now);
            }
        }
        Ok(())
    }

    async fn acquire(&mut self, names: &[&String]) -> redis::RedisResult<()> {
        let sent = Instant::now();
        let mut script = ACQUIRE_SCRIPT.prepare_invoke();
        for name in names {
            script
                .key(self.keys.lease(self.kind, name))
                .key(self.keys.fence(self.kind, name));
        }
        let tokens: Vec<u64> = script
            .arg(&self.owner)
            .arg(TTL.as_millis() as u64)
            .invoke_async(&mut self.conn)
            .await?;
        for (name, token) in names.iter().zip(tokens) {
            if token == 0 {
                continue;
            }
            let held = Held {
                token,
                fence_key: self.keys.fence(self.kind, name),
                lost: CancellationToken::new(),
                handover: CancellationToken::new(),
                busy: Arc::new(AtomicU64::new(0)),
                wound_down: self.wound_down.clone(),
                valid_until: Arc::new(AtomicU64::new(0)),
                base: self.base,
            };
            held.extend(sent);
            tracing::info!(kind = self.kind, unit = %name, token, "took a lease");
            self.metrics
                .cluster_takeovers
                .with_label_values(&[self.kind])
                .inc();
            self.held.insert((*name).clone(), held);
        }
        Ok(())
    }

    async fn renew(&mut self, names: &[String]) -> redis::RedisResult<()> {
        for chunk in names.chunks(CHUNK) {
            let sent = Instant::now();
            let mut script = RENEW_SCRIPT.prepare_invoke();
            for name in chunk {
                script.key(self.keys.lease(self.kind, name));
            }
            let renewed: Vec<u64> = script
                .arg(&self.owner)
                .arg(TTL.as_millis() as u64)
                .invoke_async(&mut self.conn)
                .await?;
            for (name, renewed) in chunk.iter().zip(renewed) {
                if renewed == 1 {
                    if let Some(h) = self.held.get(name) {
                        h.extend(sent);
                    }
                } else {
                    tracing::warn!(kind = self.kind, unit = %name, "lease lost to another instance");
                    self.drop_held(name);
                }
            }
        }
        Ok(())
    }

    async fn release(&mut self, name: &str) {
        // Stop the work first, so nothing is written under a lease already given back.
        self.drop_held(name);
        self.publish();
        let released = Script::new(RELEASE)
            .key(self.keys.lease(self.kind, name))
            .arg(&self.owner)
            .invoke_async::<u64>(&mut self.conn)
            .await;
        match released {
            // Tell the other relays, so that one takes it at once.
            Ok(1) => {
                let told: redis::RedisResult<()> = self
                    .conn
                    .publish(self.keys.leases_channel(), self.kind)
                    .await;
                if let Err(e) = told {
                    tracing::debug!(error = %e, "cannot announce a lease given back");
                }
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(kind = self.kind, unit = %name, error = %e, "cannot give a lease back; it expires on its own")
            }
        }
    }

    fn drop_held(&mut self, name: &str) {
        self.handing_over.remove(name);
        if let Some(h) = self.held.remove(name) {
            h.lost.cancel();
        }
    }

    fn publish(&self) {
        let now: BTreeMap<String, Held> = self
            .held
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let changed = {
            let before = self.published.borrow();
            before.len() != now.len()
                || before
                    .iter()
                    .zip(&now)
                    .any(|((a, x), (b, y))| a != b || x.token != y.token)
        };
        if changed {
            self.metrics
                .cluster_leases
                .with_label_values(&[self.kind])
                .set(now.len() as i64);
            self.published.send_replace(Arc::new(now));
        }
    }
}

/// An instance id: host, process and a random part, so a restarted process is a new owner.
pub fn instance_id() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".to_owned());
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("{host}:{}:{}", std::process::id(), &random[..8])
}
