//! Supervision of a process's long-running tasks, shared by `serve` ([`crate::app`]) and
//! `forward` ([`crate::forward`]): every task runs on one [`TaskTracker`] under one cancellation
//! token. A critical task that ends before shutdown, or panics, is logged, reported to the
//! owner (whose readiness then stays false for good) and stops the process in order, so that its
//! service manager starts it again; what is queued is in Redis. It owns no readiness of its own
//! and decides nothing about what is critical.

use std::sync::Arc;

use futures_util::FutureExt;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

#[derive(Clone)]
pub struct Supervisor {
    pub tracker: TaskTracker,
    pub shutdown: CancellationToken,
    /// Records a critical task's failure (the owner's readiness).
    failed: Arc<dyn Fn(&'static str) + Send + Sync>,
    /// What the log line says is restarted, and what is kept meanwhile.
    process: &'static str,
    kept: &'static str,
}

impl Supervisor {
    /// `process` ("service", "forwarder") and `kept` ("queued events are kept in Redis") make
    /// the log line of a failure; `failed` records it.
    pub fn new(
        process: &'static str,
        kept: &'static str,
        failed: impl Fn(&'static str) + Send + Sync + 'static,
    ) -> Self {
        Supervisor {
            tracker: TaskTracker::new(),
            shutdown: CancellationToken::new(),
            failed: Arc::new(failed),
            process,
            kept,
        }
    }

    /// Runs `task`; if it panics, or ends while the process is not stopping, records the
    /// failure and stops the process.
    pub fn critical<F>(&self, name: &'static str, task: F) -> JoinHandle<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let (shutdown, failed) = (self.shutdown.clone(), self.failed.clone());
        let (process, kept) = (self.process, self.kept);
        self.tracker.spawn(async move {
            let outcome = std::panic::AssertUnwindSafe(task).catch_unwind().await;
            let why = match outcome {
                Ok(()) if shutdown.is_cancelled() => return,
                Ok(()) => "ended unexpectedly".to_string(),
                Err(panic) => format!("panicked: {}", crate::logging::panic_text(&*panic)),
            };
            tracing::error!(task = name, "critical task {why}; stopping so that the service manager starts the {process} again ({kept})");
            failed(name);
            shutdown.cancel();
        })
    }

    /// A server future that returns an I/O error as its failure.
    pub fn critical_server<F>(&self, name: &'static str, server: F) -> JoinHandle<()>
    where
        F: Future<Output = std::io::Result<()>> + Send + 'static,
    {
        self.critical(name, async move {
            if let Err(e) = server.await {
                tracing::error!(task = name, error = %e, "server error");
            }
        })
    }
}
