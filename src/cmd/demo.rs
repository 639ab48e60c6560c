//! `bbb-webhooks demo`: the whole flow in one terminal, in seconds, without a BigBlueButton
//! server. Starts the service in-process (generated secret, its own Redis keys and channel), a
//! receiver that verifies each callback's checksum and prints each event, registers a hook for
//! it, and publishes a simulated meeting. Needs only a Redis.
//!
//! With `--xapi`, xAPI output is on too, towards a local LRS stand-in that prints each
//! statement (verb, actor, object) and counts them: what an integrator would see in an LRS.
//!
//! It owns the subcommand's arguments, the receiver, the LRS stand-in and the printout. The service is the
//! library's ([`bbb_webhooks::app`]), the meeting is `simulate`'s and the hook is registered
//! through `hooks`' client, as any integrator would.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::ToolRedis;
use super::simulate::{self, Generation};
use bbb_webhooks::app;
use bbb_webhooks::config::{ChecksumAlgorithm, LoadedConfig};

#[derive(clap::Args)]
pub struct Args {
    /// Use this Redis (redis://[:password@]host:port[/db]) instead of the configured one (the
    /// Redis `serve` reads; 127.0.0.1:6379 when nothing is configured). The demo keeps its keys
    /// and channel apart and deletes its keys at the end.
    #[arg(long)]
    redis_url: Option<String>,
    /// Print each event's JSON instead of a readable line.
    #[arg(long)]
    json: bool,
    /// Message shapes of this BigBlueButton generation.
    #[arg(long, value_enum, default_value = "3.0")]
    shape: Generation,
    /// Also send xAPI statements, to a local LRS stand-in that prints each one.
    #[arg(long)]
    xapi: bool,
}

/// The namespace of the demo's xAPI ids (any fixed UUID would do).
const DEMO_NAMESPACE: &str = "3f8a1c52-7d4e-4b6a-9c1d-5e2f7a8b9c0d";

/// The LRS stand-in: prints each statement it receives, counts them and notes the last one.
struct Lrs {
    seen: mpsc::UnboundedSender<String>,
    json: bool,
}

async fn lrs_statement(State(l): State<Arc<Lrs>>, body: Bytes) -> &'static str {
    let s: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let verb = s["verb"]["id"]
        .as_str()
        .and_then(|v| v.rsplit('/').next())
        .unwrap_or("?")
        .to_string();
    if l.json {
        say(&s.to_string());
    } else {
        let definition = &s["object"]["definition"];
        let object = definition["name"]["en"]
            .as_str()
            .or(definition["description"]["en"].as_str())
            .or(definition["type"]
                .as_str()
                .and_then(|t| t.rsplit('/').next()))
            .unwrap_or("?");
        say(&format!(
            "  ⧉ xAPI {verb:<12} {:<16} {object}",
            s["actor"]["account"]["name"].as_str().unwrap_or("?")
        ));
    }
    let _ = l.seen.send(verb);
    "[]"
}

/// The simulated meeting: a moderator, a viewer and a guest, at a pace one can follow.
const USERS: usize = 3;
const PACE_MS: u64 = 120;

/// What came back.
#[derive(Default)]
struct Summary {
    events: usize,
    verified: usize,
    failed_checks: usize,
}

/// One line on standard output, at once (the receiver prints while the meeting is published).
fn say(line: &str) {
    let mut o = std::io::stdout().lock();
    let _ = writeln!(o, "{line}");
    let _ = o.flush();
}

struct Receiver {
    /// Names of the users seen joining, for readable lines.
    names: Mutex<std::collections::HashMap<String, String>>,
    secret: String,
    url: String,
    json: bool,
    seen: mpsc::UnboundedSender<(String, bool)>,
}

async fn receive(
    State(r): State<Arc<Receiver>>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> &'static str {
    let body = String::from_utf8_lossy(&body).into_owned();
    let given = query
        .as_deref()
        .and_then(|q| form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == "checksum"))
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    // What a receiver does: sha1(callback URL as registered + raw body + shared secret).
    let expected = ChecksumAlgorithm::Sha1.hex_digest(&[
        r.url.as_bytes(),
        body.as_bytes(),
        r.secret.as_bytes(),
    ]);
    let ok = given == expected;
    let events: Vec<Value> = form_urlencoded::parse(body.as_bytes())
        .find(|(k, _)| k == "event")
        .and_then(|(_, v)| serde_json::from_str(&v).ok())
        .unwrap_or_default();
    for e in events {
        let id = e["data"]["id"].as_str().unwrap_or("?").to_string();
        let user = &e["data"]["attributes"]["user"];
        let mut names = r.names.lock().unwrap_or_else(|p| p.into_inner());
        if let (Some(uid), Some(name)) = (user["internal-user-id"].as_str(), user["name"].as_str())
        {
            names.insert(uid.to_string(), name.to_string());
        }
        if r.json {
            say(&e.to_string());
        } else {
            let mark = if ok { "✓" } else { "✗ checksum mismatch" };
            say(&format!("  {mark} {id:<32} {}", describe(&e, &names)));
        }
        let _ = r.seen.send((id, ok));
    }
    ""
}

/// One readable clause about an event; `names` maps user ids to the names seen so far.
fn describe(e: &Value, names: &std::collections::HashMap<String, String>) -> String {
    let a = &e["data"]["attributes"];
    let user = |u: &Value| {
        let id = u["internal-user-id"].as_str().unwrap_or("");
        u["name"]
            .as_str()
            .or(names.get(id).map(String::as_str))
            .unwrap_or(id)
            .to_string()
    };
    let meeting = a["meeting"]["name"]
        .as_str()
        .or(a["meeting"]["external-meeting-id"].as_str())
        .unwrap_or("");
    if let Some(chat) = a.get("chat-message") {
        return format!(
            "{}: “{}”",
            user(&chat["sender"]),
            chat["message"].as_str().unwrap_or("")
        );
    }
    if a.get("poll").is_some() {
        return a.get("user").map(user).unwrap_or_default();
    }
    if let Some(record) = a.get("record-id") {
        return format!("recording {}", record.as_str().unwrap_or(""));
    }
    if let Some(u) = a.get("user") {
        return format!("{} in {meeting}", user(u));
    }
    format!("meeting {meeting}")
}

/// Success when events came back and every checksum was right.
pub async fn run(args: Args, config_file: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let redis = ToolRedis::resolve(args.redis_url.clone(), config_file)?;
    let summary = show(&args, &redis).await?;
    Ok(if summary.failed_checks == 0 && summary.events > 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn show(args: &Args, redis: &ToolRedis) -> anyhow::Result<Summary> {
    let mut conn = redis.connect("demo").await?;
    let id = uuid::Uuid::new_v4().simple().to_string();
    let prefix = format!("demo:{}", &id[..10]);
    let channel = format!("{prefix}:events");
    let secret = format!("demo-{}", &id[10..]);

    let k = |s: &str| json!(format!("{prefix}:{s}"));
    // The LRS stand-in listens before the service starts: the service is told where it is.
    let (lrs_tx, mut lrs_rx) = mpsc::unbounded_channel();
    let mut xapi_overrides = Vec::new();
    let mut lrs_task = None;
    if args.xapi {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let endpoint = format!("http://{}/xapi", listener.local_addr()?);
        let router = axum::Router::new()
            .route("/xAPI/statements", axum::routing::post(lrs_statement))
            .with_state(Arc::new(Lrs {
                seen: lrs_tx,
                json: args.json,
            }));
        lrs_task = Some(tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        }));
        xapi_overrides = vec![
            ("xapi.enabled", json!(true)),
            ("xapi.uuidNamespace", json!(DEMO_NAMESPACE)),
            ("xapi.lrs.endpoint", json!(endpoint)),
            ("xapi.lrs.username", json!("demo")),
            ("xapi.lrs.password", json!(secret)),
        ];
    }
    let mut overrides = vec![
        ("bbb.sharedSecret", json!(secret)),
        ("bbb.serverDomain", json!("demo.local")),
        ("api.port", json!(0)),
        ("redis.url", json!(redis.url)),
        ("redis.inboundChannels", json!([channel])),
        ("redis.keys.hooks", k("out:hooks")),
        ("redis.keys.hookPrefix", k("out:hook")),
        ("redis.keys.mappings", k("proc:mappings")),
        ("redis.keys.mappingPrefix", k("proc:mapping")),
        ("redis.keys.userMaps", k("proc:userMaps")),
        ("redis.keys.userMapPrefix", k("proc:userMap")),
        ("redis.keys.ownPrefix", k("rs")),
    ];
    overrides.extend(xapi_overrides.iter().cloned());
    let config = LoadedConfig::with_overrides(&overrides)?;
    let service = app::start(config).await?;
    if !service.ready(Duration::from_secs(10)).await {
        service.shutdown().await?;
        bail!("the service did not become ready");
    }

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/events", listener.local_addr()?);
    let (seen_tx, mut seen_rx) = mpsc::unbounded_channel();
    let receiver = Arc::new(Receiver {
        names: Default::default(),
        secret: secret.clone(),
        url: url.clone(),
        json: args.json,
        seen: seen_tx,
    });
    let router = axum::Router::new()
        .route("/events", axum::routing::post(receive))
        .with_state(receiver);
    let receiver_task = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });

    let admin = super::hooks::AdminClient::at(&format!("http://{}", service.api_addr), &secret);
    let (hook, _) = admin
        .create(&super::hooks::NewHook {
            url: &url,
            ..Default::default()
        })
        .await
        .context("cannot register the demo hook")?;
    if !args.json {
        say(&format!("bbb-webhooks {} demo", bbb_webhooks::VERSION));
        say(&format!(
            "  service: hooks API on http://{}, Redis {}",
            service.api_addr, redis.shown
        ));
        say(&format!(
            "  receiver: {url} (verifies each callback's checksum)"
        ));
        say(&format!(
            "  hook registered: {hook} (hooks/create, signed with a generated secret)"
        ));
        if args.xapi {
            say("  xAPI: on, to a local LRS stand-in (statements marked ⧉)");
        }
        say("  publishing a simulated BigBlueButton meeting on Redis…\n");
    }

    let plan = simulate::Plan {
        meetings: 1,
        users: USERS,
        pace_ms: PACE_MS,
        shape: args.shape,
        channel: Some(channel.clone()),
        no_recording: false,
    };
    simulate::publish(&mut conn, &plan, |_| {}).await?;

    // Everything is in once the recording is published (the last event), or after a while.
    let mut summary = Summary::default();
    let last = if args.shape == Generation::V1 {
        "rap-publish-ended"
    } else {
        "rap-published"
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while let Ok(Some((id, ok))) = tokio::time::timeout_at(deadline, seen_rx.recv()).await {
        summary.events += 1;
        if ok {
            summary.verified += 1;
        } else {
            summary.failed_checks += 1;
        }
        if id == last {
            break;
        }
    }
    // The statements travel on their own queue: wait for the meeting's last one (`terminated`),
    // or for a quiet second.
    let mut statements = 0usize;
    if args.xapi {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let quiet = (tokio::time::Instant::now() + Duration::from_secs(1)).min(deadline);
            match tokio::time::timeout_at(quiet, lrs_rx.recv()).await {
                Ok(Some(verb)) => {
                    statements += 1;
                    if verb == "terminated" {
                        break;
                    }
                }
                _ => break,
            }
        }
    }
    service.shutdown().await?;
    receiver_task.abort();
    if let Some(task) = lrs_task {
        task.abort();
    }
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query_async(&mut conn)
        .await
        .unwrap_or_default();
    if !keys.is_empty() {
        let _: Result<(), _> = redis::cmd("DEL").arg(keys).query_async(&mut conn).await;
    }
    if args.xapi && !args.json {
        say(&format!(
            "\n{statements} xAPI statements received by the LRS stand-in."
        ));
    }
    if !args.json {
        say(&format!(
            "\n{} events received, {} checksums verified, {} failed. Next: `bbb-webhooks simulate` against a running service, or see README.md.",
            summary.events, summary.verified, summary.failed_checks
        ));
    }
    Ok(summary)
}
