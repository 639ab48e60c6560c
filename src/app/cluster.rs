//! A relay's wiring in a cluster (`input.mode: cluster`, docs/cluster.md): instead of one
//! subscriber and one enqueuer, the relay takes leases ([`crate::lease`]) on servers' ingest
//! streams and runs, per leased server, a stream reader ([`crate::input::cluster`]) feeding an
//! enqueuer with that server's state and a fenced write ([`crate::enqueuer::Source`]). Hooks are
//! leased too: the delivery pool runs workers only for this relay's share.
//!
//! The relays learn from each other through two pub/sub channels on the cluster Redis (the
//! [`bus`]): a hook created or destroyed anywhere makes every relay reload its hooks; entries
//! appended by one relay wake the worker of another. Both are hints: hooks are also reloaded
//! every few seconds and before each `hooks/list`, and idle workers look at their queue every
//! second anyway.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{FutureExt, StreamExt};
use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::cluster::ClusterKeys;
use crate::config::Settings;
use crate::delivery::DeliveryPool;
use crate::enqueuer::{self, Enqueuer, Source};
use crate::health::Readiness;
use crate::hooks::HookRegistry;
use crate::keys::Keys;
use crate::lease::{Held, HeldSet, Leaser, Units};
use crate::metrics::Metrics;
use crate::queue::DeliveryQueue;
use crate::state::StateStore;
use crate::supervisor::Supervisor;
use crate::{input, redis_conn};

/// How often hooks are reloaded even without an announcement.
const RELOAD_EVERY: Duration = Duration::from_secs(5);
/// How long an idle hook worker waits for a wake-up before it looks at its queue anyway.
pub const IDLE_POLL: Duration = Duration::from_secs(1);
/// Wait before a server's session that ended while its lease is held is started again.
const SESSION_RESTART: Duration = Duration::from_secs(1);

/// What every server session needs.
#[derive(Clone)]
pub struct Sessions {
    pub settings: Arc<Settings>,
    pub client: redis::Client,
    pub keys: Keys,
    pub cluster: ClusterKeys,
    pub registry: Arc<HookRegistry>,
    pub queue: DeliveryQueue,
    pub metrics: Arc<Metrics>,
    pub readiness: Readiness,
    pub data_lost: watch::Receiver<u64>,
    pub tracker: TaskTracker,
    pub shutdown: CancellationToken,
    pub grace: Duration,
}

/// A relay's own part of the service, started once the hooks, the queue and delivery run: the
/// leases (servers, hook parts), the bus, and one session per leased server.
pub struct Relay {
    pub settings: Arc<Settings>,
    pub client: redis::Client,
    pub conn: ConnectionManager,
    pub keys: Keys,
    pub cluster: ClusterKeys,
    /// This instance's name in the leases.
    pub owner: String,
    pub registry: Arc<HookRegistry>,
    pub queue: DeliveryQueue,
    pub metrics: Arc<Metrics>,
    pub readiness: Readiness,
    pub data_lost: watch::Receiver<u64>,
    pub grace: Duration,
    /// The hook parts' leases, whose holdings `pool` already follows.
    pub hook_leaser: Leaser,
    pub delivery_parts: u32,
}

impl Relay {
    /// Runs until the service stops, then stops in order: the servers' streams are given back
    /// (each session writes what it read), delivery stops, the hook parts are given back.
    pub(super) async fn run(self, supervisor: &Supervisor, pool: DeliveryPool) {
        let shutdown = supervisor.shutdown.clone();
        tracing::info!(instance = %self.owner, prefix = %self.settings.cluster.prefix, "relay in a cluster: reading the servers' ingest streams");
        let leases_stop = CancellationToken::new();
        // Moves when another relay gives a lease back, so that one takes it at once.
        let (released, released_rx) = watch::channel(0u64);
        let hooks_leasing = supervisor.critical(
            "hook leases",
            self.hook_leaser.run(
                hooks(self.registry.clone(), self.delivery_parts),
                vec![self.registry.watch(), released_rx.clone()],
                leases_stop.clone(),
            ),
        );
        let (ingest_leaser, ingest_leases) = Leaser::new(
            self.conn.clone(),
            self.cluster.clone(),
            "ingest",
            &self.owner,
            self.metrics.clone(),
        );
        let ingest_leasing = supervisor.critical(
            "ingest leases",
            ingest_leaser.run(
                servers(self.conn.clone(), self.cluster.clone()),
                vec![released_rx],
                shutdown.clone(),
            ),
        );
        supervisor.critical(
            "cluster bus",
            bus::run(
                bus::Bus {
                    client: self.client.clone(),
                    cluster: self.cluster.clone(),
                    registry: self.registry.clone(),
                    queue: self.queue.clone(),
                    readiness: self.readiness.clone(),
                    metrics: self.metrics.clone(),
                    released,
                },
                shutdown.clone(),
            ),
        );
        super::set_module_status(&self.metrics, "../in/redis/index.js", "in", true);
        let sessions = Sessions {
            settings: self.settings,
            client: self.client,
            keys: self.keys,
            cluster: self.cluster,
            registry: self.registry,
            queue: self.queue,
            metrics: self.metrics,
            readiness: self.readiness,
            data_lost: self.data_lost,
            tracker: supervisor.tracker.clone(),
            shutdown: shutdown.clone(),
            grace: self.grace,
        };
        let mapping = supervisor.critical(
            "server sessions",
            sessions.run(ingest_leases, shutdown.clone()),
        );
        shutdown.cancelled().await;
        tracing::info!("stopping: giving the servers' streams back first");
        let _ = ingest_leasing.await;
        let _ = mapping.await;
        pool.stop(self.grace).await;
        leases_stop.cancel();
        let _ = hooks_leasing.await;
    }
}

/// The units of the ingest leases: the servers that forward.
pub fn servers(conn: ConnectionManager, cluster: ClusterKeys) -> Units {
    Box::new(move || {
        let (mut conn, key) = (conn.clone(), cluster.servers());
        async move { conn.smembers::<_, Vec<String>>(key).await }.boxed()
    })
}

/// The units of the hook leases: each hook in the registry, in `parts` parts.
pub fn hooks(registry: Arc<HookRegistry>, parts: u32) -> Units {
    Box::new(move || {
        let units: Vec<String> = registry
            .snapshot()
            .iter()
            .flat_map(|h| crate::delivery::hook_units(&h.id, parts).collect::<Vec<_>>())
            .collect();
        async move { Ok(units) }.boxed()
    })
}

impl Sessions {
    /// Runs one session per leased server until the leases are all gone and `stop` fired.
    pub async fn run(self, mut held: watch::Receiver<HeldSet>, stop: CancellationToken) {
        let mut running: HashMap<String, (u64, JoinHandle<()>)> = HashMap::new();
        let mut tick = tokio::time::interval(SESSION_RESTART);
        loop {
            let leased = held.borrow_and_update().clone();
            running.retain(|server, (token, task)| {
                let lease = leased.get(server);
                let current = lease.map(|h| h.token);
                let handed_over = lease.is_some_and(|h| h.handover.is_cancelled());
                if task.is_finished()
                    && current == Some(*token)
                    && !stop.is_cancelled()
                    && !handed_over
                {
                    self.metrics.worker_restarts.inc();
                    tracing::error!(server = %server, "a server's session ended while its lease is held; starting it again");
                }
                !task.is_finished() && current == Some(*token)
            });
            for (server, lease) in leased.iter() {
                // A session handed over ended on purpose: its lease goes once it is released.
                if !running.contains_key(server) && !lease.handover.is_cancelled() {
                    let task = self
                        .tracker
                        .spawn(self.clone().session(server.clone(), lease.clone()));
                    running.insert(server.clone(), (lease.token, task));
                }
            }
            tokio::select! {
                changed = held.changed() => if changed.is_err() { break },
                _ = tick.tick() => {}
                _ = stop.cancelled() => break,
            }
        }
        for (_, (_, task)) in running {
            let _ = task.await;
        }
    }

    /// One server: load its state and position, read its stream, map and write under the lease.
    async fn session(self, server: String, lease: Held) {
        let stop = self.shutdown.child_token();
        let lost = lease.lost.clone();
        let watch_stop = stop.clone();
        // Ends with the session (`stop` is cancelled on every way out) or with the lease; a
        // handover stops the reading too, and the lease is released once the enqueuer wrote
        // what it had (while its writes still pass the fence).
        let _stop_on_return = stop.clone().drop_guard();
        let _working = lease.working();
        let handover = lease.handover.clone();
        self.tracker.spawn(async move {
            tokio::select! {
                _ = lost.cancelled() => watch_stop.cancel(),
                _ = handover.cancelled() => watch_stop.cancel(),
                _ = watch_stop.cancelled() => {}
            }
        });
        let Some(conn) = redis_conn::connect_when_ready(&self.client, &stop).await else {
            return;
        };
        let Some(reader_conn) = redis_conn::connect_when_ready(&self.client, &stop).await else {
            return;
        };
        let store = StateStore::new(
            conn.clone(),
            self.keys
                .with_state_scope(&self.cluster.state_scope(&server)),
        );
        let position_key = self.cluster.position();
        let loaded = async {
            let state = store.load().await?;
            let mut c = conn.clone();
            let position: Option<String> = c.hget(&position_key, &server).await?;
            redis::RedisResult::Ok((state, position))
        };
        let (state, position) = tokio::select! {
            loaded = loaded => match loaded {
                Ok(loaded) => loaded,
                Err(e) => {
                    tracing::warn!(server = %server, error = %e, "cannot load the server's state and position; trying again shortly");
                    return;
                }
            },
            _ = stop.cancelled() => return,
        };
        tracing::info!(server = %server, position = position.as_deref().unwrap_or("start"), "mapping the server's stream");
        let (tx, rx) = input::intake(self.settings.redis.intake_buffer_bytes.get());
        let reader = self.tracker.spawn(input::cluster::read_stream(
            reader_conn,
            self.cluster.ingest(&server),
            server.clone(),
            position,
            tx,
            self.metrics.clone(),
            stop.clone(),
        ));
        let enqueuer = Enqueuer::new(
            self.settings.clone(),
            enqueuer::Parts {
                state,
                store,
                registry: self.registry.clone(),
                queue: self.queue.clone(),
                metrics: self.metrics.clone(),
                readiness: self.readiness.clone(),
                data_lost: self.data_lost.clone(),
                source: Some(Source {
                    server: server.clone(),
                    position_key,
                    lease,
                    conn,
                }),
                // xAPI is not wired on relays yet (app::run_core says so at start).
                xapi: None,
            },
            self.shutdown.clone(),
            self.grace,
        );
        // The reader ends when the lease is lost or the service stops; the enqueuer then writes
        // what it has (fenced) and ends. If the enqueuer ends first (its lease was taken over),
        // the reader is stopped.
        enqueuer.run(rx).await;
        stop.cancel();
        let _ = reader.await;
    }
}

/// The relays' pub/sub: hook changes, leases given back and appends announced by the other
/// relays.
pub mod bus {
    use super::*;

    pub struct Bus {
        pub client: redis::Client,
        pub cluster: ClusterKeys,
        pub registry: Arc<HookRegistry>,
        pub queue: DeliveryQueue,
        pub readiness: Readiness,
        pub metrics: Arc<Metrics>,
        /// Moves when a relay gave a lease back: this relay's leasers look at once.
        pub released: watch::Sender<u64>,
    }

    /// Listens until `stop`; reconnects with backoff. Every (re)subscription reloads the hooks
    /// (announcements may have been missed meanwhile) and says the input is live.
    pub async fn run(bus: Bus, stop: CancellationToken) {
        let Bus {
            client,
            cluster,
            registry,
            queue,
            readiness,
            metrics,
            released,
        } = bus;
        let (hooks_channel, appended_channel, leases_channel) = (
            cluster.hooks_channel(),
            cluster.appended_channel(),
            cluster.leases_channel(),
        );
        let mut delay = Duration::from_millis(100);
        let mut first = true;
        while !stop.is_cancelled() {
            let subscribed = async {
                let mut pubsub = client.get_async_pubsub().await?;
                pubsub
                    .subscribe(&[&hooks_channel, &appended_channel, &leases_channel])
                    .await?;
                redis::RedisResult::Ok(pubsub)
            };
            let pubsub = tokio::select! {
                p = subscribed => p,
                _ = stop.cancelled() => return,
            };
            let mut pubsub = match pubsub {
                Ok(p) => p,
                Err(e) => {
                    readiness.set_subscribed(false);
                    tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "cannot subscribe to the cluster's channels");
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = stop.cancelled() => return,
                    }
                    delay = (delay * 2).min(Duration::from_secs(5));
                    continue;
                }
            };
            if !first {
                metrics
                    .redis_reconnects
                    .with_label_values(&["cluster bus"])
                    .inc();
            }
            first = false;
            delay = Duration::from_millis(100);
            reload(&registry).await;
            readiness.set_subscribed(true);
            let mut messages = pubsub.on_message();
            let mut reload_tick = tokio::time::interval(RELOAD_EVERY);
            loop {
                tokio::select! {
                    msg = messages.next() => {
                        let Some(msg) = msg else { break };
                        let payload = String::from_utf8_lossy(msg.get_payload_bytes()).into_owned();
                        let channel = msg.get_channel_name();
                        if channel == hooks_channel {
                            reload(&registry).await;
                        } else if channel == leases_channel {
                            released.send_modify(|n| *n += 1);
                        } else {
                            for id in payload.split(' ') {
                                queue.wake(id);
                            }
                        }
                    }
                    _ = reload_tick.tick() => reload(&registry).await,
                    _ = stop.cancelled() => return,
                }
            }
            readiness.set_subscribed(false);
            tracing::warn!("lost the cluster's channels; subscribing again");
        }
    }

    async fn reload(registry: &HookRegistry) {
        match registry.reload().await {
            Ok(true) => tracing::info!(
                hooks = registry.snapshot().len(),
                "hooks changed on another relay: reloaded"
            ),
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "cannot reload the hooks now"),
        }
    }
}
