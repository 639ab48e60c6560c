//! `bbb-webhooks serve`, also what runs without a subcommand: loads the configuration, starts
//! logging and the service, and stops the service on SIGTERM or Ctrl-C.
//!
//! It owns the signal handling and how many runtime workers `BBB_WEBHOOKS_THREADS` asks for.
//! It does not build the runtime (`main` does) and owns none of the service: start-up order,
//! supervision and shutdown are [`bbb_webhooks::app`]'s.

use std::path::PathBuf;
use std::process::ExitCode;

use bbb_webhooks::config::{self, ConfigSources, FileStatus};
use bbb_webhooks::{app, logging};

/// The runtime's worker threads from `BBB_WEBHOOKS_THREADS` (`0`: the current thread only);
/// `None` (one per CPU) when unset or not a number.
pub fn worker_threads() -> Option<usize> {
    std::env::var("BBB_WEBHOOKS_THREADS")
        .ok()
        .and_then(|t| t.parse::<usize>().ok())
}

/// Runs the service until a signal, then waits for its orderly shutdown.
pub async fn run(config_file: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let loaded = config::load(&ConfigSources::from_process(config_file))?;
    logging::init(&loaded.settings.log).map_err(anyhow::Error::msg)?;
    let read: Vec<String> = loaded
        .files
        .iter()
        .filter(|f| matches!(f.status, FileStatus::Read { .. } | FileStatus::Used(_)))
        .map(|f| f.path.display().to_string())
        .collect();
    tracing::info!(files = ?read, "configuration read");
    if let Some(skipped) = loaded.skipped_line() {
        // The package's own default.yml: the operator did not write these and cannot remove
        // them, so they are no warning (config check lists them too).
        tracing::debug!(keys = %skipped, "stock keys of bbb-webhooks 3.x skipped");
    }
    let app = app::start(loaded).await?;
    tracing::info!(version = bbb_webhooks::VERSION, "bbb-webhooks started");
    let token = app.shutdown_token();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("signal received: shutting down");
        token.cancel();
    });
    app.wait().await?;
    Ok(ExitCode::SUCCESS)
}

/// SIGTERM (systemd, Docker) or Ctrl-C; Ctrl-C only when SIGTERM cannot be watched.
pub async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
