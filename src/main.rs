//! `bbb-webhooks`: the command line. Thin: parse, load the configuration, hand over.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use bbb_webhooks::config::{self, ConfigSources};
use bbb_webhooks::{app, logging};

mod cmd;

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
    /// See it work: the service, a receiver that verifies checksums, and a simulated meeting,
    /// in one terminal (needs only a Redis).
    Demo {
        #[arg(long, env = "REDIS_URL", default_value = "redis://127.0.0.1:6379")]
        redis_url: String,
        /// Print each event's JSON instead of a readable line.
        #[arg(long)]
        json: bool,
        /// Message shapes of this BigBlueButton generation.
        #[arg(long, value_enum, default_value = "3.0")]
        shape: cmd::simulate::Generation,
    },
    /// Publish a realistic BigBlueButton meeting on Redis, as a server would.
    Simulate {
        #[arg(long, env = "REDIS_URL", default_value = "redis://127.0.0.1:6379")]
        redis_url: String,
        #[arg(long, default_value_t = 1)]
        meetings: usize,
        /// Users per meeting (at least 2: a moderator and a guest).
        #[arg(long, default_value_t = 3)]
        users: usize,
        /// Pause between messages, in ms.
        #[arg(long, default_value_t = 200)]
        pace_ms: u64,
        /// Message shapes of this BigBlueButton generation.
        #[arg(long, value_enum, default_value = "3.0")]
        shape: cmd::simulate::Generation,
        /// Publish everything on this channel instead of BigBlueButton's own channels.
        #[arg(long)]
        channel: Option<String>,
        /// Leave out the recording pipeline.
        #[arg(long)]
        no_recording: bool,
    },
    /// Manage the hooks of a running service through its API (signed with the configured secret).
    Hooks {
        /// The service's address; default http://<api.bind>:<api.port> from the configuration.
        #[arg(long, global = true)]
        api_url: Option<String>,
        #[command(subcommand)]
        command: HooksCommand,
    },
    /// Print a BigBlueButton API URL with its checksum appended (secret from the configuration).
    Checksum {
        /// e.g. https://bbb.example.com/bigbluebutton/api/hooks/list?meetingID=m1
        url: String,
        #[arg(long, default_value = "sha1")]
        algorithm: String,
        /// Use this secret instead of the configured one.
        #[arg(long, env = "SHARED_SECRET", hide_env_values = true)]
        secret: Option<String>,
    },
}

#[derive(Subcommand)]
enum HooksCommand {
    /// List the registered hooks.
    List {
        /// Only global hooks and those of this meeting (external id).
        #[arg(long)]
        meeting_id: Option<String>,
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Register a hook.
    Create {
        url: String,
        /// Only events of this meeting (external id).
        #[arg(long)]
        meeting_id: Option<String>,
        /// Only these event ids (comma list).
        #[arg(long)]
        events: Option<String>,
        /// Receive the raw BigBlueButton messages.
        #[arg(long)]
        raw: bool,
        #[arg(long)]
        json: bool,
    },
    /// Remove a hook.
    Destroy { id: String },
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
            cmd::config_check::print(&loaded, &mut std::io::stdout().lock())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo {
            redis_url,
            json,
            shape,
        } => {
            let options = cmd::demo::DemoOptions {
                redis_url,
                json,
                generation: shape,
                ..Default::default()
            };
            let out: cmd::demo::Output =
                std::sync::Arc::new(std::sync::Mutex::new(std::io::stdout()));
            let runtime =
                tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
            let summary = runtime.block_on(cmd::demo::run(options, out))?;
            Ok(if summary.failed_checks == 0 && summary.events > 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Simulate {
            redis_url,
            meetings,
            users,
            pace_ms,
            shape,
            channel,
            no_recording,
        } => {
            let options = cmd::simulate::SimulateOptions {
                meetings,
                users,
                pace: std::time::Duration::from_millis(pace_ms),
                generation: shape,
                channel,
                recording: !no_recording,
            };
            let runtime =
                tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
            runtime.block_on(async {
                let client =
                    redis::Client::open(redis_url.as_str()).context("invalid --redis-url")?;
                let mut conn = client
                    .get_multiplexed_async_connection()
                    .await
                    .with_context(|| cmd::demo::no_redis_help(&redis_url))?;
                let sent =
                    cmd::simulate::run(&mut conn, &options, |line| eprintln!("{line}")).await?;
                eprintln!("published {sent} messages");
                anyhow::Ok(ExitCode::SUCCESS)
            })
        }
        Command::Hooks { api_url, command } => {
            let loaded = config::load(&ConfigSources::from_process(cli.config))?;
            let client = cmd::hooks::AdminClient::new(&loaded.settings, api_url);
            let runtime =
                tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
            runtime.block_on(hooks_command(&client, command))
        }
        Command::Checksum {
            url,
            algorithm,
            secret,
        } => {
            let algorithm = bbb_webhooks::config::ChecksumAlgorithm::from_name(&algorithm)
                .with_context(|| {
                    format!("unknown algorithm {algorithm:?} (sha1, sha256, sha384, sha512)")
                })?;
            let (secret, api_path) = match secret {
                Some(s) => (s, "/bigbluebutton/api".to_string()),
                None => {
                    let loaded = config::load(&ConfigSources::from_process(cli.config))?;
                    (
                        loaded.settings.secret().to_string(),
                        loaded.settings.bbb.api_path.clone(),
                    )
                }
            };
            println!(
                "{}",
                cmd::checksum::sign_url(&url, &api_path, &secret, algorithm)?
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench(args) => {
            let options = cmd::bench::BenchOptions {
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
            let report = runtime.block_on(cmd::bench::run(options))?;
            println!("{report}");
            Ok(if report.lost == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(3)
            })
        }
        Command::Map { file, per_message } => {
            let layout = if per_message {
                cmd::map::Layout::PerMessage
            } else {
                cmd::map::Layout::Events
            };
            let (stdout, stderr) = (std::io::stdout(), std::io::stderr());
            let (mut out, mut err) = (stdout.lock(), stderr.lock());
            let failures = match file {
                Some(path) => {
                    let f = std::fs::File::open(&path)
                        .with_context(|| format!("cannot open {}", path.display()))?;
                    cmd::map::run(&mut std::io::BufReader::new(f), &mut out, &mut err, layout)?
                }
                None => cmd::map::run(&mut std::io::stdin().lock(), &mut out, &mut err, layout)?,
            };
            Ok(if failures == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            })
        }
    }
}

async fn hooks_command(
    client: &cmd::hooks::AdminClient,
    command: HooksCommand,
) -> anyhow::Result<ExitCode> {
    match command {
        HooksCommand::List { meeting_id, json } => {
            let hooks = client.list(meeting_id.as_deref()).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&hooks)?);
            } else {
                print!("{}", cmd::hooks::table(&hooks));
            }
        }
        HooksCommand::Create {
            url,
            meeting_id,
            events,
            raw,
            json,
        } => {
            let (id, existed) = client
                .create(&url, meeting_id.as_deref(), events.as_deref(), raw)
                .await?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({"hookID": id, "duplicate": existed})
                );
            } else if existed {
                println!("already registered: {id}");
            } else {
                println!("created: {id}");
            }
        }
        HooksCommand::Destroy { id } => {
            client.destroy(&id).await?;
            println!("removed: {id}");
        }
    }
    Ok(ExitCode::SUCCESS)
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
