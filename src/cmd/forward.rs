//! `bbb-webhooks forward`: run on each BigBlueButton server of a cluster, it sends the server's
//! Redis messages to the cluster Redis (see [`bbb_webhooks::forward`] and docs/forward.md).
//!
//! It owns the subcommand's arguments, loading the configuration (no shared secret needed: the
//! forwarder signs nothing), logging and the signal handling. The forwarding itself, its
//! supervision and its HTTP server are the library's.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use bbb_webhooks::config::{self, ConfigSources};
use bbb_webhooks::forward::{self, ForwardConfig};
use bbb_webhooks::logging;

#[derive(clap::Args)]
pub struct Args {}

/// Runs the forwarder until a signal, then waits for it to write what it received.
pub async fn run(_args: Args, config_file: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let loaded = config::load_without_secret(&ConfigSources::from_process(config_file))?;
    logging::init(&loaded.settings.log).map_err(anyhow::Error::msg)?;
    for warning in loaded.warnings() {
        tracing::warn!("{warning}");
    }
    let forward_config = ForwardConfig::from_settings(&loaded.settings)?;
    let running = forward::start(forward_config)
        .await
        .context("cannot start the forwarder")?;
    tracing::info!(
        version = bbb_webhooks::VERSION,
        "bbb-webhooks forward started"
    );
    let token = running.shutdown_token();
    tokio::spawn(async move {
        super::serve::wait_for_signal().await;
        tracing::info!("signal received: shutting down");
        token.cancel();
    });
    running.wait().await?;
    Ok(ExitCode::SUCCESS)
}
