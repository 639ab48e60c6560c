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
        )
    }
}

/// One request as received: hook index, body, when.
type Receipt = (usize, Bytes, Instant);

/// Everything received, and a running count of events (cheap: the waiting loop reads it often).
#[derive(Default)]
struct Receipts {
    all: Mutex<Vec<Receipt>>,
    events: AtomicUsize,
    /// How long the receiver takes to answer.
    delay: Duration,
}

/// How each event starts in a form-encoded `event` field: `{"data"`.
const EVENT_START: &[u8] = b"%7B%22data%22";

async fn receive(
    State(r): State<Arc<Receipts>>,
    Path(hook): Path<usize>,
    body: Bytes,
) -> &'static str {
    let now = Instant::now();
    let events = body
        .windows(EVENT_START.len())
        .filter(|w| *w == EVENT_START)
        .count();
    r.events.fetch_add(events, Ordering::Relaxed);
    r.all
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push((hook, body, now));
    if !r.delay.is_zero() {
        tokio::time::sleep(r.delay).await;
    }
    ""
}

async fn measure(options: Args, redis: ToolRedis) -> anyhow::Result<BenchReport> {
    // Fails early, with the help, when the Redis does not answer.
    let mut conn = redis.connect("bench").await?;
    let id = uuid::Uuid::new_v4().simple().to_string();
    let prefix = format!("bench:{}", &id[..10]);
    let channel = format!("{prefix}:channel");
    let secret = format!("bench-{id}");

    // The receiver.
    let meetings = options.meetings.max(1);
    let receipts = Arc::new(Receipts {
        delay: Duration::from_millis(options.receiver_delay_ms),
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
    let dir = std::env::temp_dir().join(format!("bbb-webhooks-{prefix}").replace(':', "-"));
    std::fs::create_dir_all(&dir)?;
    let config = dir.join("config.yml");
    let k = |s: &str| format!("{prefix}:{s}");
    let tree = json!({
        "bbb": {"sharedSecret": secret, "serverDomain": "bench.local"},
        "redis": {"inboundChannels": [channel],
                  "keys": {"hooks": k("out:hooks"), "hookPrefix": k("out:hook"), "mappings": k("proc:mappings"),
                           "mappingPrefix": k("proc:mapping"), "userMaps": k("proc:userMaps"),
                           "userMapPrefix": k("proc:userMap"), "ownPrefix": k("rs")}},
        "api": {"bind": "127.0.0.1", "port": api_port},
        "hooks": {"multiEvent": options.multi_event, "ordering": options.ordering,
                  "queueSize": options.queue_size.unwrap_or(options.events + meetings).max(1)},
        "log": {"level": "warn"}
    });
    std::fs::write(&config, serde_json::to_string_pretty(&tree)?)?;
    let binary = std::env::current_exe()?;
    let mut command = tokio::process::Command::new(&binary);
    // The service under test reads its file and nothing else: none of the caller's settings
    // (a SHARED_SECRET would break the bench's own signing), except the Redis, passed in the
    // environment so that its password is written nowhere.
    for variable in bbb_webhooks::config::variable_names() {
        command.env_remove(variable);
    }
    let mut child = command
        .args(["serve", "--config"])
        .arg(&config)
        .env_remove("BBB_WEBHOOKS_CONFIG")
        .env("REDIS_URL", &redis.url)
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot start {}", binary.display()))?;
    let pid = child.id().context("the service has no pid")?;
    let base = format!("http://127.0.0.1:{api_port}");
    let http = reqwest::Client::new();
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
    let messages = workload(options.events, meetings);
    let cpu_before = cpu_seconds(pid);
    let started = Instant::now();
    let published = publish(&mut conn, &channel, &messages, options.rate).await?;

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
    let cpu = cpu_seconds(pid) - cpu_before;
    let peak = peak_rss_mib(pid);
    let _ = tokio::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .await;
    let _ = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
    receiver.abort();
    cleanup(&mut conn, &prefix).await;
    let _ = std::fs::remove_dir_all(&dir);

    let receipts = std::mem::take(&mut *receipts.all.lock().unwrap_or_else(|p| p.into_inner()));
    Ok(analyse(options, receipts, &published, started, cpu, peak))
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

/// Sequence numbers 0..M are the meetings' creations; then joins (odd) and chats (even), each
/// in meeting `seq % M`.
fn workload(n: usize, meetings: usize) -> Vec<String> {
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
        let (name, user, body) = if seq % 2 == 1 {
            let user = format!("w_{seq}");
            (
                "UserJoinedMeetingEvtMsg",
                user.clone(),
                json!({"intId":user,"extId":format!("ext-{seq}"),"name":"Student","role":"VIEWER","guest":false,"authed":true,"guestStatus":"ALLOW","emoji":"none","reactionEmoji":"none","raiseHand":false,"away":false,"pin":false,"presenter":false,"locked":true,"avatar":"","color":"#7b1fa2","clientType":"HTML5"}),
            )
        } else {
            let user = format!("w_{}", seq - 1);
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

/// Publishes every message; returns when each was published.
async fn publish(
    conn: &mut redis::aio::MultiplexedConnection,
    channel: &str,
    messages: &[String],
    rate: u64,
) -> anyhow::Result<Vec<Instant>> {
    let mut at = Vec::with_capacity(messages.len());
    if rate == 0 {
        for chunk in messages.chunks(200) {
            let mut pipe = redis::pipe();
            for m in chunk {
                pipe.publish(channel, m).ignore();
            }
            let t = Instant::now();
            pipe.query_async::<()>(conn).await?;
            at.extend(std::iter::repeat_n(t, chunk.len()));
        }
        return Ok(at);
    }
    let start = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut sent = 0;
    while sent < messages.len() {
        tick.tick().await;
        let due = ((start.elapsed().as_secs_f64() * rate as f64) as usize + 1).min(messages.len());
        if due > sent {
            let mut pipe = redis::pipe();
            for m in &messages[sent..due] {
                pipe.publish(channel, m).ignore();
            }
            let t = Instant::now();
            pipe.query_async::<()>(conn).await?;
            at.extend(std::iter::repeat_n(t, due - sent));
            sent = due;
        }
    }
    Ok(at)
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
                "user-joined" => a["user"]["internal-user-id"]
                    .as_str()?
                    .strip_prefix("w_")?
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
    for (hook, body, at) in &receipts {
        last_receipt = last_receipt.max(*at);
        for seq in events_in(body, meetings) {
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
        options,
    }
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

fn peak_rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
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
