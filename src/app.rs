//! Wiring: starts every part in order, supervises them, and stops them in the reverse order.
//!
//! Start: bind the API and metrics addresses (a taken port is an error at once) → wait for Redis
//! (a booting server is not an error; `/ready` stays false meanwhile) → load the hooks → load the
//! meeting and user state → start delivery (resuming every queue) → start the processor →
//! subscribe to the channels.
//!
//! Stop (SIGTERM/SIGINT or [`RunningApp::shutdown`]): stop intake (unsubscribe) → let the
//! processor finish writing what it has to the queues → give in-flight callbacks a few seconds →
//! leave everything else queued in Redis for the next start.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::api::{self, ApiContext, Readiness};
use crate::config::{LoadedConfig, Settings};
use crate::delivery::DeliveryPool;
use crate::hooks::{HookRegistry, HookStore};
use crate::keys::Keys;
use crate::metrics::Metrics;
use crate::processor::{Outbox, Processor};
use crate::queue::DeliveryQueue;
use crate::state::StateStore;
use crate::{input, redis_conn};

/// How long in-flight callbacks may run on at shutdown.
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
}

/// A started service. Dropping it does not stop it; call [`RunningApp::shutdown`].
pub struct RunningApp {
    pub api_addr: SocketAddr,
    pub metrics_addr: Option<SocketAddr>,
    pub metrics: Arc<Metrics>,
    pub readiness: Arc<Readiness>,
    shutdown: CancellationToken,
    core: JoinHandle<()>,
    api_task: JoinHandle<()>,
}

impl RunningApp {
    /// Waits until Redis is connected, the hooks are loaded and the channels subscribed.
    pub async fn ready(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        while !self.readiness.is_ready() {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        true
    }

    /// A token that stops the app when cancelled (what the signal handler uses).
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Stops intake, drains what can be drained within the grace period, and returns.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        self.wait().await;
    }

    /// Returns once the app has stopped (after the shutdown token was cancelled).
    pub async fn wait(self) {
        let _ = self.core.await;
        let _ = self.api_task.await;
    }
}

/// Binds the listeners and starts the rest in the background.
pub async fn start(config: LoadedConfig) -> Result<RunningApp, AppError> {
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
    let readiness = Arc::new(Readiness::default());
    let shutdown = CancellationToken::new();
    let client = redis_conn::client(&settings.redis.connection_url())?;

    let ctx = Arc::new(ApiContext {
        settings: settings.clone(),
        registry: Default::default(),
        readiness: readiness.clone(),
        metrics: metrics.clone(),
    });
    let addr = api_listen.resolve()?;
    let (api_addr, api_task) = api::serve(ctx.clone(), addr, shutdown.clone())
        .await
        .map_err(|e| api_listen.failed(addr, e))?;
    tracing::info!(address = %api_addr, "hooks API listening");

    let metrics_addr = if settings.prometheus.enabled {
        let addr = metrics_listen.resolve()?;
        let ctx_for_scrape = ctx.clone();
        let local = crate::metrics::serve(
            metrics.clone(),
            addr,
            settings.prometheus.path.clone(),
            Arc::new(move || refresh_gauges(&ctx_for_scrape)),
            shutdown.clone(),
        )
        .await
        .map_err(|e| metrics_listen.failed(addr, e))?;
        tracing::info!(address = %local, "metrics listening");
        Some(local)
    } else {
        None
    };

    let core = tokio::spawn(run_core(ctx, client, shutdown.clone()));
    Ok(RunningApp {
        api_addr,
        metrics_addr,
        metrics,
        readiness,
        shutdown,
        core,
        api_task,
    })
}

/// Everything that needs Redis, from first connection to orderly stop.
async fn run_core(ctx: Arc<ApiContext>, client: redis::Client, shutdown: CancellationToken) {
    let settings = ctx.settings.clone();
    let metrics = ctx.metrics.clone();
    let keys = Keys::new(&settings.redis.keys);
    let Some(conn) = redis_conn::connect_when_ready(&client, &shutdown).await else {
        return;
    };
    ctx.readiness.redis.store(true, Ordering::Relaxed);
    set_module_status(&metrics, "../db/redis/index.js", "db", true);

    let registry = retry_until_ok(&shutdown, "load the hooks", || {
        HookRegistry::load(
            HookStore::new(conn.clone(), keys.clone()),
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
    ctx.readiness.hooks_loaded.store(true, Ordering::Relaxed);

    let state_store = StateStore::new(conn.clone(), keys.clone());
    let Some(state) = retry_until_ok(&shutdown, "load the meeting and user mappings", || {
        state_store.load()
    })
    .await
    else {
        return;
    };

    let queue = DeliveryQueue::new(conn.clone(), keys.clone(), settings.hooks.queue_size.get());
    let pool = match DeliveryPool::start(
        settings.clone(),
        registry.clone(),
        queue.clone(),
        metrics.clone(),
    )
    .await
    {
        Ok(pool) => pool,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the HTTP client; nothing will be delivered");
            set_module_status(&metrics, "../out/webhooks/index.js", "out", false);
            shutdown.cancelled().await;
            return;
        }
    };
    set_module_status(&metrics, "../out/webhooks/index.js", "out", true);

    let (raw_tx, raw_rx) = tokio::sync::mpsc::unbounded_channel();
    let intake_stop = shutdown.child_token();
    let subscriber = tokio::spawn(input::run(
        client.clone(),
        settings.redis.inbound_channels.clone(),
        raw_tx,
        ctx.readiness.clone(),
        metrics.clone(),
        intake_stop,
        input::PING_EVERY,
    ));
    set_module_status(&metrics, "../in/redis/index.js", "in", true);

    let processor = Processor::new(
        settings.clone(),
        state,
        state_store,
        registry.clone(),
        Outbox {
            queue,
            notifier: pool.notifier(),
        },
        metrics.clone(),
        shutdown.clone(),
    );
    let processing = tokio::spawn(processor.run(raw_rx));

    shutdown.cancelled().await;
    tracing::info!("stopping: intake first");
    let _ = subscriber.await;
    ctx.readiness.subscribed.store(false, Ordering::Relaxed);
    // The subscriber dropped its sender: the processor writes what it has, then returns.
    let _ = processing.await;
    pool.stop(SHUTDOWN_GRACE).await;
    tracing::info!("stopped; undelivered events stay queued in Redis");
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
