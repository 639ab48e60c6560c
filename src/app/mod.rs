//! Wiring: starts every part in order, supervises them, and stops them in the reverse order.
//!
//! Start: bind the API and metrics addresses (a taken port is an error at once) → wait for Redis
//! (a booting server is not an error; `/ready` stays false meanwhile) → claim the epoch and
//! start watching Redis ([`crate::redis_watch`]) → load the hooks → resume every queue → start
//! delivery and the acknowledger (and xAPI's LRS workers) → load the meeting and user state →
//! start the enqueuer → subscribe to the channels. A cluster's relay (`input.mode: cluster`)
//! starts its leases, bus and per-server sessions instead of the last three ([`cluster`]).
//!
//! Supervision: every long-running task runs on one [`TaskTracker`] under one cancellation token.
//! The critical ones (API and metrics servers, Redis watch, subscriber, enqueuer, delivery
//! supervisor, acknowledger) are guarded: if one ends before shutdown, or panics, the failure is logged,
//! `/ready` turns false for good and the whole service stops, so that its service manager starts
//! it again; nothing is lost, the queues are in Redis. Per-hook workers are restarted by the
//! delivery pool instead (a failing hook is not a reason to stop the others).
//!
//! Stop (SIGTERM/SIGINT, [`RunningApp::shutdown`] or a critical failure): stop intake
//! (unsubscribe) → let the enqueuer finish writing what it has to the queues → give in-flight
//! callbacks the grace period → write the last acknowledgements → leave everything else queued
//! in Redis for the next start.

mod cluster;

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::api::{self, ApiContext};
use crate::config::{InputMode, LoadedConfig, Settings};
use crate::delivery::DeliveryPool;
use crate::delivery::xapi::XapiPool;
use crate::enqueuer::{self, Enqueuer};
use crate::health::Readiness;
use crate::hooks::{HookRegistry, HookStore};
use crate::keys::Keys;
use crate::lease::Leaser;
use crate::metrics::Metrics;
use crate::queue::DeliveryQueue;
use crate::redis_watch::{self, RedisWatch};
use crate::state::StateStore;
use crate::supervisor::Supervisor;
use crate::xapi::Xapi;
use crate::{input, redis_conn};

/// How long in-flight callbacks may run on at shutdown, by default.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("cannot listen on the {what} address {addr} ({keys}, from {origin}): {source}")]
    Bind {
        what: &'static str,
        addr: String,
        /// The settings that name the address, and where their values came from.
        keys: String,
        origin: String,
        source: std::io::Error,
    },
    #[error("invalid Redis URL: {0}")]
    RedisUrl(#[from] redis::RedisError),
    /// A critical task ended or panicked; the service stopped so that it is started again.
    #[error("the {0} task failed; stopped so that the service manager starts it again")]
    TaskFailed(&'static str),
}

/// A started service. Dropping it does not stop it; call [`RunningApp::shutdown`].
pub struct RunningApp {
    pub api_addr: SocketAddr,
    pub metrics_addr: Option<SocketAddr>,
    pub metrics: Arc<Metrics>,
    pub readiness: Readiness,
    shutdown: CancellationToken,
    tracker: TaskTracker,
}

impl RunningApp {
    /// Waits until Redis is connected, the hooks are loaded and the channels subscribed.
    pub async fn ready(&self, timeout: Duration) -> bool {
        self.readiness
            .wait_for(timeout, |h| h.is_ready() || h.failed.is_some())
            .await
            && self.readiness.is_ready()
    }

    /// A token that stops the app when cancelled (what the signal handler uses).
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Stops intake, drains what can be drained within the grace period, and returns.
    pub async fn shutdown(self) -> Result<(), AppError> {
        self.shutdown.cancel();
        self.wait().await
    }

    /// Returns once the app has stopped: after the shutdown token was cancelled, or after a
    /// critical task failed (then with [`AppError::TaskFailed`]).
    pub async fn wait(self) -> Result<(), AppError> {
        self.tracker.close();
        self.tracker.wait().await;
        match self.readiness.get().failed {
            Some(task) => Err(AppError::TaskFailed(task)),
            None => Ok(()),
        }
    }
}

/// Binds the listeners and starts the rest in the background.
pub async fn start(config: LoadedConfig) -> Result<RunningApp, AppError> {
    start_with_grace(config, SHUTDOWN_GRACE).await
}

/// [`start`] with another grace period for in-flight callbacks at shutdown.
pub async fn start_with_grace(
    config: LoadedConfig,
    grace: Duration,
) -> Result<RunningApp, AppError> {
    // Before any HTTP client of this process is built, the service's or an embedder's.
    crate::tls::install_crypto_provider();
    for warning in config.warnings() {
        tracing::warn!("{warning}");
    }
    let (api, prom) = (&config.settings.api, &config.settings.prometheus);
    let api_listen = Listen::new(
        "API",
        ("api.bind", &api.bind),
        ("api.port", api.port),
        &config,
    );
    let metrics_listen = Listen::new(
        "metrics",
        ("prometheus.host", &prom.host),
        ("prometheus.port", prom.port),
        &config,
    );
    let settings = Arc::new(config.settings);
    let metrics = Metrics::new(settings.prometheus.collect_default_metrics);
    let readiness = Readiness::default();
    let failed = readiness.clone();
    let supervisor = Supervisor::new("service", "queued events are kept in Redis", move |task| {
        failed.set_failed(task)
    });
    let (shutdown, tracker) = (supervisor.shutdown.clone(), supervisor.tracker.clone());
    let client = redis_conn::client(&settings.redis.connection_url())?;

    let ctx = Arc::new(ApiContext {
        settings: settings.clone(),
        registry: Default::default(),
        readiness: readiness.clone(),
        metrics: metrics.clone(),
    });
    let addr = api_listen.resolve()?;
    let (api_addr, api_server) = api::serve(ctx.clone(), addr, shutdown.clone())
        .await
        .map_err(|e| api_listen.failed(addr, e))?;
    tracing::info!(address = %api_addr, "hooks API listening");

    let metrics_addr = if settings.prometheus.enabled {
        let addr = metrics_listen.resolve()?;
        let ctx_for_scrape = ctx.clone();
        let (local, server) = crate::metrics::serve(
            metrics.clone(),
            addr,
            settings.prometheus.path.clone(),
            Arc::new(move || refresh_gauges(&ctx_for_scrape)),
            shutdown.clone(),
        )
        .await
        .map_err(|e| metrics_listen.failed(addr, e))?;
        tracing::info!(address = %local, "metrics listening");
        supervisor.critical_server("metrics server", server);
        Some(local)
    } else {
        None
    };
    supervisor.critical_server("API server", api_server);
    supervisor.critical("core", run_core(ctx, client, supervisor.clone(), grace));
    Ok(RunningApp {
        api_addr,
        metrics_addr,
        metrics,
        readiness,
        shutdown,
        tracker,
    })
}

/// Everything that needs Redis, from first connection to orderly stop.
async fn run_core(
    ctx: Arc<ApiContext>,
    client: redis::Client,
    supervisor: Supervisor,
    grace: Duration,
) {
    let shutdown = supervisor.shutdown.clone();
    let settings = ctx.settings.clone();
    let metrics = ctx.metrics.clone();
    let keys = Keys::new(&settings.redis.keys);
    // With Sentinels: the primary they name now. The connections stay with it, so a failover
    // stops the service (the "Sentinel watch" ends) and the next start asks them again.
    let client = if settings.redis.sentinels.is_empty() {
        client
    } else {
        let target = settings.redis.target();
        let Some(primary) = redis_conn::resolve_when_ready(&target, &shutdown).await else {
            return;
        };
        let watch = redis_conn::primary_changed(
            target,
            primary.clone(),
            shutdown.clone(),
            redis_conn::PRIMARY_CHECK_EVERY,
        );
        supervisor.critical("Sentinel watch", watch);
        primary
    };
    let Some(conn) = redis_conn::connect_when_ready(&client, &shutdown).await else {
        return;
    };
    ctx.readiness.set_redis(true);
    set_module_status(&metrics, "../db/redis/index.js", "db", true);
    let Some(epoch) = retry_until_ok(&shutdown, "write the epoch", || {
        redis_watch::claim_epoch(&conn, &keys)
    })
    .await
    else {
        return;
    };
    let (data_lost, data_lost_rx) = tokio::sync::watch::channel(0u64);
    supervisor.critical(
        "Redis watch",
        RedisWatch {
            conn: conn.clone(),
            keys: keys.clone(),
            readiness: ctx.readiness.clone(),
            metrics: metrics.clone(),
            lost: data_lost,
        }
        .run(epoch, shutdown.clone(), redis_watch::CHECK_EVERY),
    );

    let in_cluster = settings.input.mode == InputMode::Cluster;
    let cluster_keys = crate::cluster::ClusterKeys::new(cluster_prefix(&settings));
    let registry = retry_until_ok(&shutdown, "load the hooks", || {
        let store = HookStore::new(conn.clone(), keys.clone());
        let store = match in_cluster {
            true => store.announcing(cluster_keys.hooks_channel()),
            false => store,
        };
        HookRegistry::load(
            store,
            settings.hooks.permanent_urls.clone(),
            settings.hooks.max_hooks,
        )
    })
    .await;
    let Some(registry) = registry.map(Arc::new) else {
        return;
    };
    warn_about_bearer(&settings, &registry);
    let _ = ctx.registry.set(registry.clone());
    ctx.readiness.set_hooks_loaded();

    let (queue, acknowledger) = DeliveryQueue::new(
        conn.clone(),
        keys.clone(),
        settings.hooks.queue_size.get(),
        metrics.clone(),
        ctx.readiness.clone(),
    );
    let queue = match in_cluster {
        true => queue.announce_appends(cluster_keys.appended_channel(), cluster::IDLE_POLL),
        false => queue,
    };
    let owner = crate::lease::instance_id();
    // 1 to 64, checked at load.
    let delivery_parts = u32::try_from(settings.cluster.delivery_parts.get()).unwrap_or(64);
    let (hook_leaser, hook_leases) = Leaser::new(
        conn.clone(),
        cluster_keys.clone(),
        "hook",
        &owner,
        metrics.clone(),
    );
    let pool = match DeliveryPool::new(
        &settings,
        registry.clone(),
        queue.clone(),
        metrics.clone(),
        supervisor.tracker.clone(),
    ) {
        Ok(pool) => pool,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the HTTP client; nothing will be delivered");
            set_module_status(&metrics, "../out/webhooks/index.js", "out", false);
            ctx.readiness.set_failed("delivery");
            shutdown.cancel();
            return;
        }
    };
    let pool = match in_cluster {
        true => pool.leased(hook_leases, delivery_parts),
        false => pool,
    };
    pool.resume().await;
    let acks_stop = CancellationToken::new();
    let acknowledging = supervisor.critical(
        "acknowledger",
        acknowledger.run(acks_stop.clone(), Duration::from_secs(2)),
    );
    supervisor.critical("delivery supervisor", pool.supervise());
    set_module_status(&metrics, "../out/webhooks/index.js", "out", true);
    let xapi = match in_cluster {
        // A relay maps many servers' streams in sessions of their own: xAPI is not wired there.
        true => {
            if settings.xapi.enabled {
                tracing::error!(
                    "xAPI output is not available on a cluster's relays yet: it stays off (the webhooks run as usual)"
                );
                set_module_status(&metrics, "../out/xapi/index.js", "out", false);
            }
            Some((None, None))
        }
        false => start_xapi(&settings, &keys, &conn, &queue, &supervisor, &metrics).await,
    };
    let Some((xapi, xapi_pool)) = xapi else {
        return;
    };

    if in_cluster {
        let relay = cluster::Relay {
            settings: settings.clone(),
            client: client.clone(),
            conn: conn.clone(),
            keys: keys.clone(),
            cluster: cluster_keys,
            owner,
            registry: registry.clone(),
            queue,
            metrics: metrics.clone(),
            readiness: ctx.readiness.clone(),
            data_lost: data_lost_rx,
            grace,
            hook_leaser,
            delivery_parts,
        };
        relay.run(&supervisor, pool).await;
    } else {
        drop(hook_leaser);
        // A relay keeps each server's mappings apart, loaded by that server's session.
        let state_store = StateStore::new(conn.clone(), keys.clone());
        let Some(state) = retry_until_ok(&shutdown, "load the meeting and user mappings", || {
            state_store.load()
        })
        .await
        else {
            return;
        };
        let (raw_tx, raw_rx) = input::intake(settings.redis.intake_buffer_bytes.get());
        let subscriber = supervisor.critical(
            "subscriber",
            input::run(
                client.clone(),
                settings.redis.inbound_channels.clone(),
                raw_tx,
                ctx.readiness.clone(),
                metrics.clone(),
                shutdown.child_token(),
                input::PING_EVERY,
            ),
        );
        set_module_status(&metrics, "../in/redis/index.js", "in", true);

        let enqueuer = Enqueuer::new(
            settings.clone(),
            enqueuer::Parts {
                state,
                store: state_store,
                registry: registry.clone(),
                queue,
                metrics: metrics.clone(),
                readiness: ctx.readiness.clone(),
                data_lost: data_lost_rx,
                source: None,
                xapi,
            },
            shutdown.clone(),
            grace,
        );
        let enqueuing = supervisor.critical("enqueuer", enqueuer.run(raw_rx));

        shutdown.cancelled().await;
        tracing::info!("stopping: intake first");
        let _ = subscriber.await;
        // The subscriber dropped its sender: the enqueuer writes what it has, then returns.
        let _ = enqueuing.await;
        pool.stop(grace).await;
        if let Some(xapi_pool) = xapi_pool {
            xapi_pool.stop(grace).await;
        }
    }
    // Every worker has stopped: the acknowledger writes the last acknowledgements and returns.
    acks_stop.cancel();
    let _ = acknowledging.await;
    tracing::info!("stopped; undelivered events stay queued in Redis");
}

/// The xAPI output, when enabled and usable: its processing side for the enqueuer (the running
/// meetings' contexts read from Redis) and its LRS workers, started. A configuration that
/// cannot work turns xAPI off with an error; the webhooks run as usual. `None` when stopping.
#[allow(clippy::type_complexity)]
async fn start_xapi(
    settings: &Settings,
    keys: &Keys,
    conn: &redis::aio::ConnectionManager,
    queue: &DeliveryQueue,
    supervisor: &Supervisor,
    metrics: &Arc<Metrics>,
) -> Option<(Option<Xapi>, Option<Arc<XapiPool>>)> {
    const MODULE: &str = "../out/xapi/index.js";
    let lrs_added = Arc::new(tokio::sync::Notify::new());
    let mut xapi = match Xapi::new(settings, keys.clone(), metrics.clone(), lrs_added.clone()) {
        Ok(None) => return Some((None, None)),
        Ok(Some(x)) => x,
        Err(problem) => {
            tracing::error!(problem = %problem, "xAPI output is enabled but cannot run: it stays off");
            set_module_status(metrics, MODULE, "out", false);
            return Some((None, None));
        }
    };
    let loaded = retry_until_ok(&supervisor.shutdown, "load the xAPI meeting states", || {
        Xapi::load(conn.clone(), keys.clone())
    })
    .await?;
    let meetings = xapi.resume(loaded);
    let pool = match XapiPool::new(
        settings,
        queue.clone(),
        keys.clone(),
        metrics.clone(),
        supervisor.tracker.clone(),
        lrs_added,
    ) {
        Ok(pool) => Arc::new(pool),
        Err(e) => {
            tracing::error!(error = %e, "cannot build the LRS client: xAPI output stays off");
            set_module_status(metrics, MODULE, "out", false);
            return Some((None, None));
        }
    };
    supervisor.critical("xAPI delivery supervisor", pool.clone().supervise());
    set_module_status(metrics, MODULE, "out", true);
    let default = xapi.default_lrs().map(|l| l.host());
    tracing::info!(
        default_lrs = default.as_deref().unwrap_or("none"),
        running_meetings = meetings,
        "xAPI statements are on"
    );
    Some((Some(xapi), Some(pool)))
}

/// The prefix of the cluster's keys (`cluster.prefix`).
fn cluster_prefix(settings: &Settings) -> &str {
    &settings.cluster.prefix
}

/// Runs `attempt` every second until it succeeds; `None` when `shutdown` fires first.
async fn retry_until_ok<T, E: std::fmt::Display, F: std::future::Future<Output = Result<T, E>>>(
    shutdown: &CancellationToken,
    what: &str,
    mut attempt: impl FnMut() -> F,
) -> Option<T> {
    loop {
        match attempt().await {
            Ok(value) => return Some(value),
            Err(e) => tracing::warn!(error = %e, "cannot {what} yet; retrying"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return None,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

fn set_module_status(metrics: &Metrics, module: &str, kind: &str, up: bool) {
    metrics
        .module_status
        .with_label_values(&[module, kind])
        .set(up as i64);
}

/// Gauges the reference computes at scrape time.
fn refresh_gauges(ctx: &ApiContext) {
    let m = &ctx.metrics;
    m.registered_hooks.reset();
    if let Some(registry) = ctx.registry.get() {
        for hook in registry.snapshot().iter() {
            m.registered_hooks
                .with_label_values(&[
                    hook.callback_url.as_str(),
                    if hook.permanent { "true" } else { "false" },
                    if hook.get_raw { "true" } else { "false" },
                    "true",
                ])
                .set(1);
        }
    }
}

/// Bearer auth sends the shared secret itself; over plain http anyone on the path can read it.
fn warn_about_bearer(settings: &Settings, registry: &HookRegistry) {
    if !settings.bbb.auth2_0 {
        return;
    }
    let plain = registry
        .snapshot()
        .iter()
        .filter(|h| h.callback_url.starts_with("http://"))
        .count();
    if plain > 0 {
        tracing::warn!(
            hooks = plain,
            "bbb.auth2_0 is on: the shared secret is sent in clear to plain http:// hooks"
        );
    }
}

/// An address to listen on, and the settings that name it (for a clear error).
struct Listen {
    what: &'static str,
    keys: String,
    origin: String,
    host: String,
    port: u16,
}

impl Listen {
    fn new(
        what: &'static str,
        (host_key, host): (&str, &str),
        (port_key, port): (&str, u16),
        config: &LoadedConfig,
    ) -> Self {
        let mut origins: Vec<String> = [host_key, port_key]
            .iter()
            .map(|k| config.source_of(k).to_string())
            .collect();
        origins.dedup();
        Listen {
            what,
            keys: format!("{host_key}, {port_key}"),
            origin: origins.join(", "),
            host: host.to_string(),
            port,
        }
    }

    fn failed(&self, addr: impl ToString, source: std::io::Error) -> AppError {
        AppError::Bind {
            what: self.what,
            addr: addr.to_string(),
            keys: self.keys.clone(),
            origin: self.origin.clone(),
            source,
        }
    }

    fn resolve(&self) -> Result<SocketAddr, AppError> {
        if let Ok(ip) = self.host.parse::<IpAddr>() {
            return Ok(SocketAddr::new(ip, self.port));
        }
        (self.host.as_str(), self.port)
            .to_socket_addrs()
            .ok()
            .and_then(|mut addrs| addrs.next())
            .ok_or_else(|| {
                self.failed(
                    format!("{}:{}", self.host, self.port),
                    std::io::Error::new(std::io::ErrorKind::NotFound, "cannot resolve the host"),
                )
            })
    }
}
