//! `bbb-webhooks bench`: the service under load, measured from outside.
//!
//! Starts the service (this binary, `serve`) against the local Redis with its own key prefix and
//! channel, starts a receiver with one path per hook (answering at once, or after a delay, like a
//! distant receiver), registers the hooks, publishes one `MeetingCreatedEvtMsg` per meeting and
//! then N messages spread over the meetings in turn (a new user joining and a public chat
//! message, alternately: with one meeting, the workload of bbb-webhooks 3.5.0's measured
//! baseline) at full speed or at a given rate, and waits for every delivery. Reports
//! deliveries/s, publish→receipt latency (p50/p99/max, first receipt of each event on each hook),
//! lost and duplicated deliveries, events out of order within their meeting, and the service's
//! CPU time and peak RSS.
//!
//! In cluster mode (`--relays N`) the messages take the cluster's path instead: a forwarder
//! (`forward`) sends them to ingest streams on the same Redis, and N relays (`serve` with
//! `input.mode: cluster`) map and deliver them; CPU and peak RSS are then the sum over the
//! forwarder and the relays.
//!
//! As a soak test it can also make the receiver fail every N-th request, run a Redis of its own
//! (with an append-only file) and restart it every few seconds, and sample the service's RSS
//! over time.
//!
//! It owns the subcommand's arguments, the workload, the receiver and the analysis. It does not
//! look inside the service: it runs it as a separate process, configured by a file, and talks to
//! it only through Redis, its hooks API (`hooks`' client) and the callbacks.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use axum::body::Bytes;
use axum::extract::{Path, State};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::ToolRedis;

#[derive(clap::Args)]
pub struct Args {
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
    /// Create the hooks with their own `multiEvent=N` (1-100).
    #[arg(long)]
    hook_multi_event: Option<usize>,
    /// Meetings the messages are spread over.
    #[arg(long, default_value_t = 1)]
    meetings: usize,
    /// The receiver answers each request this many ms after it arrived (a distant receiver).
    #[arg(long, default_value_t = 0)]
    receiver_delay_ms: u64,
    /// `hooks.ordering` of the service under test: meeting or hook.
    #[arg(long, default_value = "meeting")]
    ordering: String,
    /// `hooks.queueSize` of the service under test; by default the whole burst fits.
    #[arg(long)]
    queue_size: Option<usize>,
    /// Use this Redis (redis://[:password@]host:port[/db]) instead of the configured one (the
    /// Redis `serve` reads; 127.0.0.1:6379 when nothing is configured).
    #[arg(long)]
    redis_url: Option<String>,
    /// Give up when no delivery arrives for this many seconds.
    #[arg(long, default_value_t = 20)]
    idle_timeout: u64,
    /// The receiver answers 503 to every N-th request of a hook (0: never): a flaky receiver.
    #[arg(long, default_value_t = 0)]
    receiver_fail_every: usize,
    /// Run a Redis of the bench's own (append-only file, on a free port; needs `redis-server`)
    /// and restart it every this many seconds (0: use the configured Redis, or --redis-url, and
    /// never restart).
    #[arg(long, default_value_t = 0)]
    redis_restart_every: u64,
    /// Print the service's RSS and the events received so far every this many seconds.
    #[arg(long, default_value_t = 0)]
    sample_every: u64,
    /// Users per meeting, joining again in turn (0: a new user with every join, as the 3.x
    /// baseline). A soak uses a pool so that the meeting state stays the same size and any
    /// growth of memory is the service's own.
    #[arg(long, default_value_t = 0)]
    user_pool: usize,
    /// Measure a cluster: a forwarder and this many relays (0: one service, not a cluster).
    #[arg(long, default_value_t = 0)]
    relays: usize,
}

/// Prints the report; exit status 3 when deliveries were lost.
pub async fn run(args: Args, config_file: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let redis = ToolRedis::resolve(args.redis_url.clone(), config_file)?;
    let report = measure(args, redis).await?;
    println!("{report}");
    Ok(if report.lost == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    })
}

struct BenchReport {
    options: Args,
    delivered: usize,
    lost: usize,
    duplicates: usize,
    reordered: usize,
    elapsed: Duration,
    latency_ms: (f64, f64, f64),
    cpu_seconds: f64,
    peak_rss_mib: f64,
    /// Receipt → in Redis, from the service's own histogram: (p99, max) upper bounds in ms.
    crash_window_ms: Option<(f64, f64)>,
}

impl BenchReport {
    fn deliveries_per_second(&self) -> f64 {
        self.delivered as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

impl fmt::Display for BenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = &self.options;
        let rate = if o.rate == 0 {
            "max".to_string()
        } else {
            format!("{}/s", o.rate)
        };
        let multi = match o.hook_multi_event {
            Some(n) => format!("{n} (hook)"),
            None => o.multi_event.to_string(),
        };
        if o.relays > 0 {
            writeln!(
                f,
                "cluster: a forwarder and {} relays (CPU and peak RSS summed over them)",
                o.relays
            )?;
        }
        writeln!(
            f,
            "| hooks | meetings | delay ms | multiEvent | rate | events | deliveries/s | p50 ms | p99 ms | max ms | lost | dup | reordered | CPU s | peak MiB |"
        )?;
        writeln!(
            f,
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
        )?;
        write!(
            f,
            "| {} | {} | {} | {multi} | {rate} | {} | {:.0} | {:.1} | {:.1} | {:.1} | {} | {} | {} | {:.2} | {:.1} |",
            o.hooks,
            o.meetings,
            o.receiver_delay_ms,
            o.events,
            self.deliveries_per_second(),
            self.latency_ms.0,
            self.latency_ms.1,
            self.latency_ms.2,
            self.lost,
            self.duplicates,
            self.reordered,
            self.cpu_seconds,
            self.peak_rss_mib
        )?;
        if let Some((p99, max)) = self.crash_window_ms {
            write!(
                f,
                "\nreceipt → in Redis (what a kill -9 could lose): p99 ≤ {p99} ms, max ≤ {max} ms"
            )?;
        }
        Ok(())
    }
}

/// One request as received: hook index, the sequence numbers of its events, when.
type Receipt = (usize, Vec<usize>, Instant);

/// Everything received, and a running count of events (cheap: the waiting loop reads it often).
#[derive(Default)]
struct Receipts {
    all: Mutex<Vec<Receipt>>,
    events: AtomicUsize,
    /// How long the receiver takes to answer.
    delay: Duration,
    /// Answer 503 to every N-th request of a hook (0: never); those are not recorded.
    fail_every: usize,
    requests: Mutex<HashMap<usize, usize>>,
    meetings: usize,
}

/// How each event starts in a form-encoded `event` field: `{"data"`.
const EVENT_START: &[u8] = b"%7B%22data%22";

async fn receive(
    State(r): State<Arc<Receipts>>,
    Path(hook): Path<usize>,
    body: Bytes,
) -> axum::http::StatusCode {
    let now = Instant::now();
    if !r.delay.is_zero() {
        tokio::time::sleep(r.delay).await;
    }
    if r.fail_every > 0 {
        let mut requests = r.requests.lock().unwrap_or_else(|p| p.into_inner());
        let n = requests.entry(hook).or_insert(0);
        *n += 1;
        if *n % r.fail_every == 0 {
            return axum::http::StatusCode::SERVICE_UNAVAILABLE;
        }
    }
    let events = body
        .windows(EVENT_START.len())
        .filter(|w| *w == EVENT_START)
        .count();
    r.events.fetch_add(events, Ordering::Relaxed);
    let seqs = events_in(&body, r.meetings);
    r.all
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push((hook, seqs, now));
    axum::http::StatusCode::OK
}

async fn measure(options: Args, redis: ToolRedis) -> anyhow::Result<BenchReport> {
    // Fails early, with the help, when the configured Redis does not answer (a Redis of the
    // bench's own is started below instead).
    if options.redis_restart_every == 0 {
        drop(redis.connect("bench").await?);
    }
    let id = uuid::Uuid::new_v4().simple().to_string();
    let prefix = format!("bench:{}", &id[..10]);
    let channel = format!("{prefix}:channel");
    let secret = format!("bench-{id}");

    // The receiver.
    let meetings = options.meetings.max(1);
    let receipts = Arc::new(Receipts {
        delay: Duration::from_millis(options.receiver_delay_ms),
        fail_every: options.receiver_fail_every,
        meetings,
        ..Default::default()
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let receiver_addr = listener.local_addr()?;
    let app = axum::Router::new()
        .route("/h/{hook}", axum::routing::post(receive))
        .with_state(receipts.clone());
    let receiver = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });

    // The service.
    let api_port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let metrics_port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let dir = std::env::temp_dir().join(format!("bbb-webhooks-{prefix}").replace(':', "-"));
    std::fs::create_dir_all(&dir)?;
    let own_redis = if options.redis_restart_every > 0 {
        Some(OwnRedis::start(&dir).await?)
    } else {
        None
    };
    let redis_url = own_redis
        .as_ref()
        .map_or_else(|| redis.url.clone(), OwnRedis::url);
    let k = |s: &str| format!("{prefix}:{s}");
    let mut tree = json!({
        "bbb": {"sharedSecret": secret, "serverDomain": "bench.local"},
        "redis": {"inboundChannels": [channel],
                  "keys": {"hooks": k("out:hooks"), "hookPrefix": k("out:hook"), "mappings": k("proc:mappings"),
                           "mappingPrefix": k("proc:mapping"), "userMaps": k("proc:userMaps"),
                           "userMapPrefix": k("proc:userMap"), "ownPrefix": k("rs")}},
        "api": {"bind": "127.0.0.1", "port": api_port},
        "prometheus": {"enabled": true, "host": "127.0.0.1", "port": metrics_port},
        "hooks": {"multiEvent": options.multi_event, "ordering": options.ordering,
                  "queueSize": options.queue_size.unwrap_or(options.events + meetings).max(1)},
        "cluster": {"prefix": k("cluster")},
        "log": {"level": "warn"}
    });
    let binary = std::env::current_exe()?;
    // The processes under test read their file and nothing else: none of the caller's settings
    // (a SHARED_SECRET would break the bench's own signing), except the Redis, passed in the
    // environment so that its password is written nowhere.
    let start =
        |name: &str, command: &str, tree: &Value| -> anyhow::Result<tokio::process::Child> {
            let config = dir.join(format!("{name}.yml"));
            std::fs::write(&config, serde_json::to_string_pretty(tree)?)?;
            let mut c = tokio::process::Command::new(&binary);
            for variable in bbb_webhooks::config::variable_names() {
                c.env_remove(variable);
            }
            c.args([command, "--config"])
                .arg(&config)
                .env_remove("BBB_WEBHOOKS_CONFIG")
                .env("REDIS_URL", &redis_url)
                .env("FORWARD_TO", &redis_url)
                .stdout(std::process::Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .with_context(|| format!("cannot start {}", binary.display()))
        };
    let http = reqwest::Client::new();
    let mut children = Vec::new();
    if options.relays == 0 {
        children.push(start("config", "serve", &tree)?);
    } else {
        let forward_port = free_port()?;
        let mut forwarder = tree.clone();
        forwarder["forward"] = json!({"server": "bench.local", "port": forward_port});
        children.push(start("forward", "forward", &forwarder)?);
        wait_ready(&http, &format!("http://127.0.0.1:{forward_port}")).await?;
        tree["input"] = json!({"mode": "cluster"});
        for n in 0..options.relays {
            if n > 0 {
                tree["api"]["port"] = json!(free_port()?);
                tree["prometheus"]["port"] = json!(free_port()?);
            }
            children.push(start(&format!("relay-{n}"), "serve", &tree)?);
        }
    }
    let pids: Vec<u32> = children.iter().filter_map(|c| c.id()).collect();
    anyhow::ensure!(
        pids.len() == children.len(),
        "a process under test has no pid"
    );
    let base = format!("http://127.0.0.1:{api_port}");
    wait_ready(&http, &base).await?;
    let admin = super::hooks::AdminClient::at(&base, &secret);
    for i in 0..options.hooks {
        let url = format!("http://{receiver_addr}/h/{i}");
        admin
            .create(&super::hooks::NewHook {
                url: &url,
                multi_event: options.hook_multi_event,
                ..Default::default()
            })
            .await
            .with_context(|| format!("cannot register hook {i}"))?;
    }

    // Publish.
    let messages = workload(options.events, meetings, options.user_pool);
    let client = redis::Client::open(redis_url.as_str())?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let cpu_before: f64 = pids.iter().map(|&p| cpu_seconds(p)).sum();
    let started = Instant::now();
    let sampler = (options.sample_every > 0).then(|| {
        tokio::spawn(sample(
            pids[pids.len() - 1],
            receipts.clone(),
            Duration::from_secs(options.sample_every),
        ))
    });
    let restarts_stop = CancellationToken::new();
    let restarter = own_redis.map(|redis| {
        tokio::spawn(redis.restart_every(
            Duration::from_secs(options.redis_restart_every),
            restarts_stop.clone(),
        ))
    });
    let target = Target {
        client: &client,
        channel: &channel,
        http: &http,
        base: &base,
    };
    let published = publish(&mut conn, &target, &messages, options.rate).await?;
    // No restart after the last message: delivery is measured against a Redis that stays up.
    restarts_stop.cancel();
    let own_redis = match restarter {
        Some(task) => Some(task.await?),
        None => None,
    };

    // Wait for everything, or for silence.
    let expected = options.hooks * messages.len();
    let idle_timeout = Duration::from_secs(options.idle_timeout);
    let mut last_count = 0;
    let mut last_change = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let n = receipts.events.load(Ordering::Relaxed);
        if n >= expected {
            break;
        }
        if n != last_count {
            last_count = n;
            last_change = Instant::now();
        } else if last_change.elapsed() > idle_timeout {
            break;
        }
    }
    // Late duplicates (retries of requests that timed out) would come within a few seconds.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let cpu = pids.iter().map(|&p| cpu_seconds(p)).sum::<f64>() - cpu_before;
    let peak = pids.iter().map(|&p| peak_rss_mib(p)).sum();
    let crash_window = match http
        .get(format!("http://127.0.0.1:{metrics_port}/metrics"))
        .send()
        .await
    {
        Ok(r) => crash_window(&r.text().await.unwrap_or_default()),
        Err(_) => None,
    };
    for (pid, mut child) in pids.iter().zip(children) {
        let _ = tokio::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await;
        let _ = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
    }
    receiver.abort();
    if let Some(s) = sampler {
        s.abort();
    }
    cleanup(&mut conn, &prefix).await;
    drop(own_redis);
    let _ = std::fs::remove_dir_all(&dir);

    let receipts = std::mem::take(&mut *receipts.all.lock().unwrap_or_else(|p| p.into_inner()));
    let mut report = analyse(options, receipts, &published, started, cpu, peak);
    report.crash_window_ms = crash_window;
    Ok(report)
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

async fn wait_ready(http: &reqwest::Client, base: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(r) = http.get(format!("{base}/ready")).send().await
            && r.status().is_success()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("the service did not become ready (is Redis running on the given URL?)")
}

/// The internal id of meeting `i`.
fn meeting_id(i: usize) -> String {
    format!(
        "183f0bf3a0982a127bdb8161e0c44eb696b3e75c-{}",
        1_700_000_000_000u64 + i as u64
    )
}

/// The meeting message `seq` belongs to (sequence numbers below `meetings` are the creations).
fn meeting_of(seq: usize, meetings: usize) -> usize {
    seq % meetings
}

/// Sequence numbers 0..M are the meetings' creations; after them, message `seq` belongs to
/// meeting `seq % M`, and each meeting alternates a join (odd rounds `seq / M`) and a chat
/// message of the user who joined just before in it (even rounds). With one meeting: the
/// workload of bbb-webhooks 3.5.0's measured baseline. A join's external user id is
/// `ext-<seq>`; its internal id is new (`w_<seq>`), or with a pool of `pool` users per meeting,
/// one of those in turn.
fn workload(n: usize, meetings: usize, pool: usize) -> Vec<String> {
    let user_of = |seq: usize| match pool {
        0 => format!("w_{seq}"),
        _ => format!(
            "w_{}_{}",
            meeting_of(seq, meetings),
            (seq / meetings / 2) % pool
        ),
    };
    let now = bbb_webhooks::time::now_ms();
    let mut out = Vec::with_capacity(n + meetings);
    for i in 0..meetings {
        out.push(json!({"envelope":{"name":"MeetingCreatedEvtMsg","routing":{"sender":"bbb-apps-akka"},"timestamp":now},
            "core":{"header":{"name":"MeetingCreatedEvtMsg"},"body":{"props":{"meetingProp":{"name":"Bench","extId":format!("bench-{i}"),"intId":meeting_id(i),"isBreakout":false},
            "durationProps":{"duration":0,"createdTime":now,"createdDate":"now"},"password":{"moderatorPass":"mp","viewerPass":"ap"},
            "recordProp":{"record":false},"voiceProp":{"voiceConf":"70000","dialNumber":"613-555-1234"},"usersProp":{"maxUsers":0},"metadataProp":{"metadata":{}}}}}})
            .to_string());
    }
    for seq in meetings..meetings + n {
        let meeting = meeting_id(meeting_of(seq, meetings));
        let (name, user, body) = if (seq / meetings) % 2 == 1 {
            let user = user_of(seq);
            (
                "UserJoinedMeetingEvtMsg",
                user.clone(),
                json!({"intId":user,"extId":format!("ext-{seq}"),"name":"Student","role":"VIEWER","guest":false,"authed":true,"guestStatus":"ALLOW","emoji":"none","reactionEmoji":"none","raiseHand":false,"away":false,"pin":false,"presenter":false,"locked":true,"avatar":"","color":"#7b1fa2","clientType":"HTML5"}),
            )
        } else {
            let user = user_of(seq - meetings);
            (
                "GroupChatMessageBroadcastEvtMsg",
                user.clone(),
                json!({"chatId":"MAIN-PUBLIC-GROUP-CHAT","msg":{"id":format!("c-{seq}"),"timestamp":now,"correlationId":format!("{user}-{seq}"),"sender":{"id":user,"name":"Student","role":"VIEWER"},"chatEmphasizedText":true,"message":"Hello everyone, a message of an ordinary length."}}),
            )
        };
        out.push(
            json!({"envelope":{"name":name,"routing":{"msgType":"BROADCAST_TO_MEETING","meetingId":meeting,"userId":user},"timestamp":now},
                   "core":{"header":{"name":name,"meetingId":meeting,"userId":user},"body":body}})
            .to_string(),
        );
    }
    out
}

/// Where and how to publish, and how to wait for the service after a Redis restart.
struct Target<'a> {
    client: &'a redis::Client,
    channel: &'a str,
    http: &'a reqwest::Client,
    base: &'a str,
}

/// Publishes every message; returns when each was published. When Redis goes away (restarted by
/// the soak), waits until it and the service (subscribed again) are back and goes on where it
/// stopped: nothing is published into a gap no subscriber hears.
async fn publish(
    conn: &mut redis::aio::MultiplexedConnection,
    target: &Target<'_>,
    messages: &[String],
    rate: u64,
) -> anyhow::Result<Vec<Instant>> {
    let mut at = Vec::with_capacity(messages.len());
    let start = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut sent = 0;
    while sent < messages.len() {
        let due = if rate == 0 {
            (sent + 200).min(messages.len())
        } else {
            tick.tick().await;
            ((start.elapsed().as_secs_f64() * rate as f64) as usize + 1).min(messages.len())
        };
        if due > sent {
            let mut pipe = redis::pipe();
            for m in &messages[sent..due] {
                pipe.publish(target.channel, m).ignore();
            }
            let t = Instant::now();
            if let Err(e) = pipe.query_async::<()>(conn).await {
                eprintln!("publishing paused: {e}");
                *conn = reconnect(target).await?;
                continue;
            }
            at.extend(std::iter::repeat_n(t, due - sent));
            sent = due;
        }
    }
    Ok(at)
}

/// Waits until Redis answers and the service is ready (subscribed) again.
async fn reconnect(target: &Target<'_>) -> anyhow::Result<redis::aio::MultiplexedConnection> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if Instant::now() > deadline {
            bail!("Redis or the service did not come back within a minute");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        let Ok(conn) = target.client.get_multiplexed_async_connection().await else {
            continue;
        };
        if wait_ready(target.http, target.base).await.is_ok() {
            return Ok(conn);
        }
    }
}

/// Prints the service's RSS and the events received so far, every `every`.
async fn sample(pid: u32, receipts: Arc<Receipts>, every: Duration) {
    let start = Instant::now();
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        eprintln!(
            "t={:>5.0}s rss={:.1} MiB received={}",
            start.elapsed().as_secs_f64(),
            rss_mib(pid),
            receipts.events.load(Ordering::Relaxed)
        );
    }
}

/// A Redis of the bench's own, with an append-only file so that a restart keeps what it
/// acknowledged; killed when dropped.
struct OwnRedis {
    port: u16,
    dir: std::path::PathBuf,
    child: tokio::process::Child,
}

impl OwnRedis {
    async fn start(dir: &std::path::Path) -> anyhow::Result<OwnRedis> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let child = Self::spawn(port, dir)?;
        let redis = OwnRedis {
            port,
            dir: dir.to_path_buf(),
            child,
        };
        redis.wait_up().await?;
        Ok(redis)
    }

    fn spawn(port: u16, dir: &std::path::Path) -> anyhow::Result<tokio::process::Child> {
        tokio::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ])
            .arg("--dir")
            .arg(dir)
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("cannot start redis-server (is it installed?)")
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    async fn wait_up(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .is_err()
        {
            if Instant::now() > deadline {
                bail!("the bench's own Redis did not start");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    /// Stops Redis (SHUTDOWN: the append-only file is complete) and starts it again, every
    /// `every`, until `stop`; a restart under way is finished first. Returns the running Redis.
    async fn restart_every(mut self, every: Duration, stop: CancellationToken) -> OwnRedis {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.cancelled() => return self,
            }
            if let Ok(client) = redis::Client::open(self.url())
                && let Ok(mut c) = client.get_multiplexed_async_connection().await
            {
                let _: Result<(), _> = redis::cmd("SHUTDOWN").query_async(&mut c).await;
            }
            let _ = self.child.wait().await;
            eprintln!("Redis restarted");
            match Self::spawn(self.port, &self.dir) {
                Ok(child) => self.child = child,
                Err(e) => {
                    eprintln!("{e:#}");
                    return self;
                }
            }
            if let Err(e) = self.wait_up().await {
                eprintln!("{e:#}");
                return self;
            }
        }
    }
}

/// The sequence numbers of the events in one request body.
fn events_in(body: &[u8], meetings: usize) -> Vec<usize> {
    let Some(event) = form_urlencoded::parse(body)
        .find(|(k, _)| k == "event")
        .map(|(_, v)| v.into_owned())
    else {
        return Vec::new();
    };
    let events: Vec<Value> = serde_json::from_str(&event).unwrap_or_default();
    events
        .iter()
        .filter_map(|e| {
            let a = &e["data"]["attributes"];
            match e["data"]["id"].as_str()? {
                "meeting-created" => (0..meetings).find(|i| {
                    a["meeting"]["internal-meeting-id"].as_str() == Some(meeting_id(*i).as_str())
                }),
                "user-joined" => a["user"]["external-user-id"]
                    .as_str()?
                    .strip_prefix("ext-")?
                    .parse()
                    .ok(),
                "chat-group-message-sent" => a["chat-message"]["id"]
                    .as_str()?
                    .strip_prefix("c-")?
                    .parse()
                    .ok(),
                _ => None,
            }
        })
        .collect()
}

fn analyse(
    options: Args,
    receipts: Vec<Receipt>,
    published: &[Instant],
    started: Instant,
    cpu_seconds: f64,
    peak_rss_mib: f64,
) -> BenchReport {
    let n = published.len();
    let meetings = options.meetings.max(1);
    let mut first: HashMap<(usize, usize), Instant> = HashMap::new();
    let mut duplicates = 0;
    let mut reordered = 0;
    // The newest sequence number seen per (hook, meeting): an older one after it is out of order.
    let mut max_seen: HashMap<(usize, usize), usize> = HashMap::new();
    let mut last_receipt = started;
    for (hook, seqs, at) in &receipts {
        last_receipt = last_receipt.max(*at);
        for &seq in seqs {
            if first.contains_key(&(*hook, seq)) {
                duplicates += 1;
                continue;
            }
            first.insert((*hook, seq), *at);
            let max = max_seen
                .entry((*hook, meeting_of(seq, meetings)))
                .or_insert(0);
            if seq < *max {
                reordered += 1;
            }
            *max = (*max).max(seq);
        }
    }
    let mut latencies: Vec<f64> = first
        .iter()
        .filter_map(|((_, seq), at)| {
            published
                .get(*seq)
                .map(|p| at.duration_since(*p).as_secs_f64() * 1000.0)
        })
        .collect();
    latencies.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| {
        if latencies.is_empty() {
            return 0.0;
        }
        let i = ((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len()) - 1;
        latencies[i]
    };
    let expected = options.hooks * n;
    if first.len() < expected {
        let missing: Vec<usize> = (0..n)
            .filter(|seq| !first.contains_key(&(0, *seq)))
            .collect();
        eprintln!(
            "missing on hook 0: {} events, first {:?}",
            missing.len(),
            &missing[..missing.len().min(20)]
        );
    }
    BenchReport {
        delivered: first.len(),
        lost: expected.saturating_sub(first.len()),
        duplicates,
        reordered,
        elapsed: last_receipt.duration_since(started),
        latency_ms: (
            pct(0.50),
            pct(0.99),
            latencies.last().copied().unwrap_or(0.0),
        ),
        cpu_seconds,
        peak_rss_mib,
        crash_window_ms: None,
        options,
    }
}

/// The p99 and max of `bbb_webhooks_enqueue_latency_seconds`, as the upper bounds (ms) of the
/// histogram's buckets that hold them.
fn crash_window(metrics: &str) -> Option<(f64, f64)> {
    let mut buckets: Vec<(f64, f64)> = metrics
        .lines()
        .filter_map(|l| l.strip_prefix("bbb_webhooks_enqueue_latency_seconds_bucket{le=\""))
        .filter_map(|l| {
            let (le, count) = l.split_once("\"} ")?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, count.trim().parse().ok()?))
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total = buckets.last()?.1;
    if total == 0.0 {
        return None;
    }
    let at = |share: f64| {
        buckets
            .iter()
            .find(|(_, count)| *count >= total * share)
            .map(|(le, _)| le * 1000.0)
    };
    Some((at(0.99)?, at(1.0)?))
}

/// CPU seconds (user + system) the process used so far, from /proc.
fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after the name.
    (ticks(11) + ticks(12)) / 100.0
}

/// The service's peak RSS (VmHWM), in MiB.
fn peak_rss_mib(pid: u32) -> f64 {
    status_mib(pid, "VmHWM:")
}

/// The service's RSS now (VmRSS), in MiB.
fn rss_mib(pid: u32) -> f64 {
    status_mib(pid, "VmRSS:")
}

fn status_mib(pid: u32, field: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

async fn cleanup(conn: &mut redis::aio::MultiplexedConnection, prefix: &str) {
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query_async(conn)
        .await
        .unwrap_or_default();
    for chunk in keys.chunks(500) {
        let _: Result<(), _> = redis::cmd("DEL").arg(chunk).query_async(conn).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_crash_window_is_read_from_the_histogram() {
        let text = "\
bbb_webhooks_enqueue_latency_seconds_bucket{le=\"0.001\"} 90
bbb_webhooks_enqueue_latency_seconds_bucket{le=\"0.002\"} 99
bbb_webhooks_enqueue_latency_seconds_bucket{le=\"0.005\"} 100
bbb_webhooks_enqueue_latency_seconds_bucket{le=\"+Inf\"} 100
";
        assert_eq!(crash_window(text), Some((2.0, 5.0)));
        assert_eq!(crash_window(""), None);
    }

    #[test]
    fn events_are_spread_over_meetings_in_turn() {
        let w = workload(6, 3, 0);
        assert_eq!(w.len(), 9);
        for (seq, m) in w.iter().enumerate() {
            let want = meeting_id(meeting_of(seq, 3));
            assert!(m.contains(&want), "message {seq} is in meeting {want}");
        }
    }

    #[test]
    fn a_user_pool_keeps_the_users_few_and_the_joins_countable() {
        let w = workload(200, 2, 3);
        let joins = w
            .iter()
            .filter(|m| m.contains("UserJoinedMeetingEvtMsg"))
            .count();
        assert_eq!(joins, 100, "half the messages are joins");
        let users: std::collections::BTreeSet<String> = w
            .iter()
            .filter(|m| m.contains("UserJoinedMeetingEvtMsg"))
            .map(|m| {
                let v: Value = serde_json::from_str(m).unwrap();
                v["core"]["body"]["intId"].as_str().unwrap().to_string()
            })
            .collect();
        assert_eq!(users.len(), 2 * 3, "three users per meeting");
        assert!(w[2].contains("\"extId\":\"ext-2\""), "{}", w[2]);
        assert!(w[3].contains("\"extId\":\"ext-3\""), "{}", w[3]);
        assert!(w[4].contains("GroupChatMessageBroadcastEvtMsg"), "{}", w[4]);
    }
}
