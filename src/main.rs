//! `bbb-webhooks`: the command line. Thin: parse, load the configuration, hand over.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use bbb_webhooks::config::{self, ConfigSources};
use bbb_webhooks::{app, cli, logging};

#[derive(Parser)]
#[command(
    name = "bbb-webhooks",
    version,
    about = "Webhooks for BigBlueButton: Redis events in, signed HTTP callbacks out"
)]
struct Cli {
    /// Configuration file (YAML; ours or a bbb-webhooks 3.x one). Without it:
    /// /etc/bigbluebutton/bbb-webhooks/{default,production,config}.yml when present.
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
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Print the events that raw BigBlueButton messages (one JSON per line) become.
    Map {
        /// File of messages; standard input when absent.
        file: Option<PathBuf>,
        /// Print one JSON array per input line (`[]` for none) instead of one event per line.
        #[arg(long)]
        per_message: bool,
    },
    /// Measure the service: start it against the local Redis, publish a load, receive the
    /// callbacks, report deliveries/s, latency, losses, duplicates, CPU and memory.
    Bench(BenchArgs),
}

#[derive(clap::Args)]
struct BenchArgs {
    /// Messages to publish after the meeting creation (a join and a chat message, alternately).
    #[arg(long, default_value_t = 20_000)]
    events: usize,
    /// Messages per second; 0 publishes as fast as Redis takes them.
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Global hooks, each with its own receiver path.
    #[arg(long, default_value_t = 1)]
    hooks: usize,
    /// `hooks.multiEvent` of the service under test.
    #[arg(long, default_value_t = 1)]
    multi_event: usize,
    /// `hooks.queueSize` of the service under test; by default the whole burst fits.
    #[arg(long)]
    queue_size: Option<usize>,
    #[arg(long, default_value = "redis://127.0.0.1:6379")]
    redis_url: String,
    /// Give up when no delivery arrives for this many seconds.
    #[arg(long, default_value_t = 20)]
    idle_timeout: u64,
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Print the effective configuration (secrets redacted) and where each value came from;
    /// exit non-zero when it is invalid.
    Check,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("bbb-webhooks: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(cli.config),
        Command::Config {
            command: ConfigCommand::Check,
        } => {
            let loaded = config::load(&ConfigSources::from_process(cli.config))?;
            cli::config_check::print(&loaded, &mut std::io::stdout().lock())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench(args) => {
            let options = cli::bench::BenchOptions {
                events: args.events,
                rate: args.rate,
                hooks: args.hooks,
                redis_url: args.redis_url,
                multi_event: args.multi_event,
                queue_size: args.queue_size,
                binary: None,
                idle_timeout: std::time::Duration::from_secs(args.idle_timeout),
            };
            let runtime =
                tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
            let report = runtime.block_on(cli::bench::run(options))?;
            println!("{report}");
            Ok(if report.lost == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(3)
            })
        }
        Command::Map { file, per_message } => {
            let layout = if per_message {
                cli::map::Layout::PerMessage
            } else {
                cli::map::Layout::Events
            };
            let (stdout, stderr) = (std::io::stdout(), std::io::stderr());
            let (mut out, mut err) = (stdout.lock(), stderr.lock());
            let failures = match file {
                Some(path) => {
                    let f = std::fs::File::open(&path)
                        .with_context(|| format!("cannot open {}", path.display()))?;
                    cli::map::run(&mut std::io::BufReader::new(f), &mut out, &mut err, layout)?
                }
                None => cli::map::run(&mut std::io::stdin().lock(), &mut out, &mut err, layout)?,
            };
            Ok(if failures == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            })
        }
    }
}

fn serve(config_file: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let loaded = config::load(&ConfigSources::from_process(config_file))?;
    logging::init(&loaded.settings.log).map_err(anyhow::Error::msg)?;
    let threads = std::env::var("BBB_WEBHOOKS_THREADS")
        .ok()
        .and_then(|t| t.parse::<usize>().ok());
    let runtime = match threads {
        Some(0) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        Some(n) => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n)
            .enable_all()
            .build(),
        None => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build(),
    }
    .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let app = app::start(loaded).await?;
        tracing::info!(version = bbb_webhooks::VERSION, "bbb-webhooks started");
        let token = app.shutdown_token();
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("signal received: shutting down");
            token.cancel();
        });
        app.wait().await;
        anyhow::Ok(ExitCode::SUCCESS)
    })
}

async fn wait_for_signal() {
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
