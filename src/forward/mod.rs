//! The forwarder (`bbb-webhooks forward`), run on each BigBlueButton server of a cluster: it
//! subscribes to the server's own Redis channels exactly as `serve` does ([`crate::input`]) and
//! appends every message, byte for byte, with the server's name and its receipt time, to the
//! server's ingest stream on the cluster Redis ([`crate::cluster`] names the keys and the entry
//! format). While the cluster Redis does not take writes, messages go to a buffer stream on the
//! server's own Redis and are moved over, oldest first, before anything newer, once it does
//! ([`writer`]).
//!
//! This module owns the forwarder's start-up, supervision (one tracker and one cancellation
//! token; a critical task that ends or panics turns `/ready` false for good and stops the
//! process, for its service manager to start it again) and its small HTTP server: `/health`
//! (200 while the process runs), `/ready` ([`status`]) and `/metrics` ([`metrics`]). It does
//! not parse messages, and knows nothing of hooks or delivery: the relays (`serve` with
//! `input.mode: cluster`) read the ingest streams.

pub mod metrics;
pub mod status;
pub mod store;
pub mod writer;

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::cluster::ClusterKeys;
use crate::config::Settings;
use crate::input;
use crate::redis_conn::{Reconnecting, RedisTarget};
use crate::supervisor::Supervisor;
use metrics::ForwardMetrics;
use status::Status;
use writer::{Plan, Writer};

/// How long, at a stop, the writer keeps trying to put received messages in a Redis.
pub const STOP_GRACE: Duration = Duration::from_secs(5);
/// How often "still waiting for the local Redis" is logged at start.
const WAIT_LOG_EVERY: Duration = Duration::from_secs(5);

/// Everything the forwarder needs, from the settings.
#[derive(Debug, Clone)]
pub struct ForwardConfig {
    /// This server's name in the cluster.
    pub server: String,
    pub keys: ClusterKeys,
    /// The server's own Redis: the channels and the buffer.
    pub local: RedisTarget,
    /// The cluster Redis.
    pub cluster: RedisTarget,
    pub channels: Vec<String>,
    pub stream_max_len: usize,
    pub buffer_max_len: usize,
    pub intake_buffer_bytes: usize,
    pub listen: SocketAddr,
}

#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    #[error(
        "no cluster Redis: set forward.to (env FORWARD_TO, a redis:// URL) or forward.sentinels \
         (env FORWARD_SENTINELS)"
    )]
    NoTarget,
    #[error(
        "{0:?} cannot name this server in the cluster (empty or with spaces): set forward.server \
         (env FORWARD_SERVER) or bbb.serverDomain (env SERVER_DOMAIN)"
    )]
    BadServer(String),
    #[error("cannot listen on {addr} (forward.bind, forward.port): {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    /// A critical task ended or panicked; stopped so that the service manager starts it again.
    #[error("the {0} task failed; stopped so that the service manager starts it again")]
    TaskFailed(&'static str),
}

impl ForwardConfig {
    pub fn from_settings(s: &Settings) -> Result<ForwardConfig, ForwardError> {
        let cluster = s.forward.target().ok_or(ForwardError::NoTarget)?;
        let server = s.forward_server().trim().to_string();
        if server.is_empty() || server.contains(char::is_whitespace) {
            return Err(ForwardError::BadServer(server));
        }
        let (host, port) = (s.forward.bind.as_str(), s.forward.port);
        let listen = match host.parse::<std::net::IpAddr>() {
            Ok(ip) => SocketAddr::new(ip, port),
            Err(_) => (host, port)
                .to_socket_addrs()
                .ok()
                .and_then(|mut a| a.next())
                .ok_or_else(|| ForwardError::Bind {
                    addr: format!("{host}:{port}"),
                    source: std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        "cannot resolve the host",
                    ),
                })?,
        };
        Ok(ForwardConfig {
            server,
            keys: ClusterKeys::new(&s.cluster.prefix),
            local: s.redis.target(),
            cluster,
            channels: s.redis.inbound_channels.clone(),
            stream_max_len: s.forward.stream_max_len.get(),
            buffer_max_len: s.forward.buffer_max_len.get(),
            intake_buffer_bytes: s.redis.intake_buffer_bytes.get(),
            listen,
        })
    }
}

/// A started forwarder. Dropping it does not stop it; call [`RunningForwarder::shutdown`].
pub struct RunningForwarder {
    pub addr: SocketAddr,
    pub metrics: Arc<ForwardMetrics>,
    pub status: Status,
    shutdown: CancellationToken,
    tracker: TaskTracker,
}

impl RunningForwarder {
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Stops intake, writes what was received, and returns.
    pub async fn shutdown(self) -> Result<(), ForwardError> {
        self.shutdown.cancel();
        self.wait().await
    }

    /// Returns once stopped: after the token was cancelled, or after a critical task failed.
    pub async fn wait(self) -> Result<(), ForwardError> {
        self.tracker.close();
        self.tracker.wait().await;
        match self.status.get().failed {
            Some(task) => Err(ForwardError::TaskFailed(task)),
            None => Ok(()),
        }
    }
}

/// Binds the HTTP address and starts the rest in the background.
pub async fn start(config: ForwardConfig) -> Result<RunningForwarder, ForwardError> {
    let metrics = ForwardMetrics::new();
    let status = Status::default();
    let failed = status.clone();
    let supervisor = Supervisor::new(
        "forwarder",
        "buffered messages are kept in Redis",
        move |task| failed.set_failed(task),
    );
    let (shutdown, tracker) = (supervisor.shutdown.clone(), supervisor.tracker.clone());
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| ForwardError::Bind {
            addr: config.listen.to_string(),
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| ForwardError::Bind {
        addr: config.listen.to_string(),
        source,
    })?;
    tracing::info!(address = %addr, "forwarder health and metrics listening");
    let server = http(listener, status.clone(), metrics.clone(), shutdown.clone());
    supervisor.critical_server("HTTP server", server);
    supervisor.critical(
        "core",
        run_core(config, metrics.clone(), supervisor.clone(), status.clone()),
    );
    Ok(RunningForwarder {
        addr,
        metrics,
        status,
        shutdown,
        tracker,
    })
}

/// From the first connection to an orderly stop.
async fn run_core(
    config: ForwardConfig,
    metrics: Arc<ForwardMetrics>,
    supervisor: Supervisor,
    status: Status,
) {
    let shutdown = supervisor.shutdown.clone();
    tracing::info!(
        server = %config.server,
        local = %config.local.shown(),
        cluster = %config.cluster.shown(),
        "forwarding this server's messages to the cluster Redis"
    );
    let plan = Plan {
        server: config.server.clone(),
        keys: config.keys.clone(),
        stream_cap: config.stream_max_len,
        buffer_cap: config.buffer_max_len,
        stop_grace: STOP_GRACE,
    };
    // The local Redis first: the channels and the buffer are there, and the last id used.
    let mut delay = Duration::from_millis(100);
    let mut last_log: Option<tokio::time::Instant> = None;
    let (writer, subscriber_client) = loop {
        let attempt = async {
            let client = config.local.client().await?;
            let writer = Writer::start(
                plan.clone(),
                Reconnecting::new(config.local.clone()),
                Reconnecting::new(config.cluster.clone()),
                metrics.clone(),
                status.clone(),
            )
            .await?;
            redis::RedisResult::Ok((writer, client))
        };
        match attempt.await {
            Ok(ready) => break ready,
            Err(e) => {
                if last_log.is_none_or(|t| t.elapsed() >= WAIT_LOG_EVERY) {
                    tracing::warn!(local = %config.local.shown(), error = %e, "waiting for the local Redis to answer");
                    last_log = Some(tokio::time::Instant::now());
                }
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(Duration::from_secs(2));
    };
    let (tx, rx) = input::intake(config.intake_buffer_bytes);
    let subscriber = supervisor.critical(
        "subscriber",
        input::run(
            subscriber_client,
            config.channels.clone(),
            tx,
            status.input.clone(),
            metrics.input.clone(),
            shutdown.child_token(),
            input::PING_EVERY,
        ),
    );
    let writing = supervisor.critical("writer", writer.run(rx));
    shutdown.cancelled().await;
    tracing::info!("stopping: intake first");
    let _ = subscriber.await;
    // The subscriber dropped its sender: the writer writes what it holds, then returns.
    let _ = writing.await;
    tracing::info!("stopped");
}

/// `/health`, `/ready`, `/metrics`.
fn http(
    listener: tokio::net::TcpListener,
    status: Status,
    metrics: Arc<ForwardMetrics>,
    shutdown: CancellationToken,
) -> impl Future<Output = std::io::Result<()>> + Send {
    use axum::http::{StatusCode, header};
    use axum::response::IntoResponse;
    use axum::routing::get;

    let app = axum::Router::new()
        .route(
            "/health",
            get(|| async { json(StatusCode::OK, &serde_json::json!({"status": "ok"})) }),
        )
        .route(
            "/ready",
            get(move || {
                let (ready, body) = status.ready();
                let code = if ready {
                    StatusCode::OK
                } else {
                    StatusCode::SERVICE_UNAVAILABLE
                };
                async move { json(code, &body) }
            }),
        )
        .route(
            "/metrics",
            get(move || {
                let text = metrics.render();
                async move {
                    (
                        [(
                            header::CONTENT_TYPE,
                            "text/plain; version=0.0.4; charset=utf-8",
                        )],
                        text,
                    )
                        .into_response()
                }
            }),
        );
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .into_future()
}

fn json(code: axum::http::StatusCode, body: &serde_json::Value) -> axum::response::Response {
    use axum::response::IntoResponse;
    (
        code,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}
