//! `bbb-webhooks`: the command line. This file owns the top-level parser (the global `--config`
//! and the list of subcommands), the process's one async runtime and the exit status of errors.
//! It does no subcommand's work and knows none of their options: each subcommand owns its
//! arguments and its `run` in [`cmd`].

use std::future::Future;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

mod cmd;

use cmd::{bench, checksum, config_check, demo, forward, hooks, map, serve, simulate};

#[derive(Parser)]
#[command(
    name = "bbb-webhooks",
    version,
    about = "Webhooks for BigBlueButton: Redis events in, signed HTTP callbacks out"
)]
struct Cli {
    /// Configuration file (YAML; ours or a bbb-webhooks 3.x one). Without it, those present of:
    /// /etc/bigbluebutton/bbb-webhooks/default.yml,
    /// /usr/local/bigbluebutton/bbb-webhooks/config/default.yml,
    /// /etc/bigbluebutton/bbb-webhooks/production.yml, /etc/bigbluebutton/bbb-webhooks/config.yml
    /// (later ones win).
    #[arg(long, short, global = true, env = "BBB_WEBHOOKS_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service (the default): subscribe, map, deliver, serve the hooks API.
    Serve,
    /// Configuration tools.
    Config(config_check::Args),
    /// Print the events that raw BigBlueButton messages (one JSON per line) become.
    Map(map::Args),
    /// Measure the service: start it against the configured Redis (keys and a channel of its
    /// own), publish a load, receive the callbacks, report deliveries/s, latency, losses,
    /// duplicates, CPU and memory.
    Bench(bench::Args),
    /// See it work: the service, a receiver that verifies checksums, and a simulated meeting,
    /// in one terminal (needs only a Redis: the configured one, else 127.0.0.1:6379).
    Demo(demo::Args),
    /// Publish a realistic BigBlueButton meeting on Redis, as a server would.
    ///
    /// The Redis is the one `serve` is configured with (the same files and variables, the
    /// password and port of a bbb-webhooks 3.x production.yml included), unless --redis-url
    /// names another.
    Simulate(simulate::Args),
    /// Manage the hooks of a running service through its API (signed with the configured secret).
    ///
    /// The calls are signed with the shared secret of the configuration `serve` reads (--config,
    /// the bbb-webhooks 3.x files, SHARED_SECRET, BigBlueButton's properties) and sent to its
    /// api.bind:api.port. Run it as the service's user with its environment (sudo -u
    /// bbb-webhooks), so that both match the running service.
    Hooks(hooks::Args),
    /// Print a BigBlueButton API URL with its checksum appended (secret from the configuration).
    Checksum(checksum::Args),
    /// Run on each BigBlueButton server of a cluster: send this server's Redis messages, byte for
    /// byte, to the cluster Redis (forward.to, env FORWARD_TO), through a local buffer while it
    /// is unreachable. Health, readiness and metrics on forward.bind:forward.port (3006).
    Forward(forward::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Before any HTTP client exists (delivery, the admin CLI, bench, demo).
    bbb_webhooks::tls::install_crypto_provider();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("bbb-webhooks: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Hands over to the subcommand; those that need a runtime get the process's one.
fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let config = cli.config;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => block_on(serve::worker_threads(), serve::run(config)),
        Command::Config(args) => config_check::run(args, config),
        Command::Map(args) => map::run(args, config),
        Command::Bench(args) => block_on(None, bench::run(args, config)),
        Command::Demo(args) => block_on(None, demo::run(args, config)),
        Command::Simulate(args) => block_on(None, simulate::run(args, config)),
        Command::Hooks(args) => block_on(None, hooks::run(args, config)),
        Command::Checksum(args) => checksum::run(args, config),
        Command::Forward(args) => block_on(None, forward::run(args, config)),
    }
}

/// Builds the async runtime and runs `work` on it: with `threads` workers (`Some(0)`: all on the
/// current thread), or one per CPU.
fn block_on(
    threads: Option<usize>,
    work: impl Future<Output = anyhow::Result<ExitCode>>,
) -> anyhow::Result<ExitCode> {
    let mut builder = match threads {
        Some(0) => tokio::runtime::Builder::new_current_thread(),
        Some(n) => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(n);
            b
        }
        None => tokio::runtime::Builder::new_multi_thread(),
    };
    let runtime = builder
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(work)
}
