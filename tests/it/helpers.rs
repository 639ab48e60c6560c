//! Shared test helpers: an isolated environment (own Redis keys and channels), the app started on
//! ephemeral ports, a signed API client, and a recording HTTP receiver.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::IntoResponse;
use bbb_webhooks::app::{self, RunningApp};
use bbb_webhooks::config::{ChecksumAlgorithm, LoadedConfig};
use redis::AsyncCommands;
use serde_json::{Value, json};
use tokio::sync::Notify;

pub const SECRET: &str = "testsecret";
pub const REDIS_URL: &str = "redis://127.0.0.1:6379";
/// How long a test waits for something that should happen (generous: the machine may be loaded).
pub const WAIT: Duration = Duration::from_secs(15);

/// One test's private corner of Redis: every key and channel carries `prefix`. Its keys are
/// deleted when the last clone is dropped, also when the test fails.
#[derive(Clone, Debug)]
pub struct Env {
    pub prefix: String,
    pub channel: String,
    redis_url: String,
    /// Extra config overrides (dotted key → value).
    pub overrides: Vec<(String, Value)>,
    /// Shared by the clones: the keys go when the last of them does.
    _keys: Arc<KeysGuard>,
}

impl Env {
    pub fn new(name: &str) -> Env {
        Env::on(name, REDIS_URL)
    }

    /// An environment on another Redis server (a test's [`crate::private_redis::PrivateRedis`]).
    pub fn on(name: &str, redis_url: &str) -> Env {
        // The test's own HTTP clients (reqwest::get, receivers' callers) need the process's TLS
        // provider, whether or not an app was started in this process yet.
        bbb_webhooks::tls::install_crypto_provider();
        let id = uuid::Uuid::new_v4().simple().to_string();
        let prefix = format!("test:{name}:{}", &id[..12]);
        Env {
            channel: format!("{prefix}:channel"),
            _keys: Arc::new(KeysGuard {
                prefix: prefix.clone(),
                redis_url: redis_url.to_string(),
            }),
            prefix,
            redis_url: redis_url.to_string(),
            overrides: Vec::new(),
        }
    }

    pub fn with(mut self, key: &str, value: Value) -> Env {
        self.overrides.push((key.to_string(), value));
        self
    }

    pub fn key(&self, suffix: &str) -> String {
        format!("{}:{suffix}", self.prefix)
    }

    /// The reference's key names under this test's prefix.
    pub fn hooks_set(&self) -> String {
        self.key("out:hooks")
    }
    pub fn hook_key(&self, id: &str) -> String {
        format!("{}:{id}", self.key("out:hook"))
    }

    /// This environment's settings as a config file (JSON is YAML), for the real binary.
    pub fn config_file(&self, dir: &std::path::Path, api_port: u16) -> std::path::PathBuf {
        let mut tree = json!({});
        for (key, value) in self.override_list() {
            let mut node = &mut tree;
            let parts: Vec<&str> = key.split('.').collect();
            for p in &parts[..parts.len() - 1] {
                if node.get(*p).is_none() {
                    node[*p] = json!({});
                }
                node = node.get_mut(*p).unwrap();
            }
            node[parts[parts.len() - 1]] = value;
        }
        tree["api"]["port"] = json!(api_port);
        let path = dir.join("config.yml");
        std::fs::write(&path, serde_json::to_string_pretty(&tree).unwrap()).unwrap();
        path
    }

    pub fn config(&self) -> LoadedConfig {
        let overrides = self.override_list();
        let refs: Vec<(&str, Value)> = overrides
            .iter()
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect();
        LoadedConfig::with_overrides(&refs).expect("test config is valid")
    }

    fn override_list(&self) -> Vec<(String, Value)> {
        let mut overrides: Vec<(String, Value)> = vec![
            ("bbb.sharedSecret".into(), json!(SECRET)),
            ("bbb.serverDomain".into(), json!("bbb.test.local")),
            ("api.port".into(), json!(0)),
            ("redis.url".into(), json!(self.redis_url)),
            ("redis.inboundChannels".into(), json!([self.channel])),
            ("redis.keys.hooks".into(), json!(self.hooks_set())),
            ("redis.keys.hookPrefix".into(), json!(self.key("out:hook"))),
            (
                "redis.keys.mappings".into(),
                json!(self.key("proc:mappings")),
            ),
            (
                "redis.keys.mappingPrefix".into(),
                json!(self.key("proc:mapping")),
            ),
            (
                "redis.keys.userMaps".into(),
                json!(self.key("proc:userMaps")),
            ),
            (
                "redis.keys.userMapPrefix".into(),
                json!(self.key("proc:userMap")),
            ),
            ("redis.keys.ownPrefix".into(), json!(self.key("rs"))),
            ("hooks.retryIntervals".into(), json!([50, 100, 200])),
            ("hooks.permanentIntervalReset".into(), json!(300)),
            ("hooks.requestTimeout".into(), json!(1000)),
            ("mappings.cleanupInterval".into(), json!(200)),
        ];
        overrides.extend(self.overrides.iter().cloned());
        overrides
    }

    /// Starts the app and waits until it is ready.
    pub async fn start(&self) -> TestApp {
        init_logs();
        let app = app::start(self.config()).await.expect("app starts");
        assert!(app.ready(Duration::from_secs(10)).await, "app became ready");
        TestApp {
            base: format!("http://{}", app.api_addr),
            app,
        }
    }

    pub async fn redis(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.redis_url.as_str())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }

    /// Publishes each message on this test's channel, in order.
    pub async fn publish<S: AsRef<str>>(&self, messages: &[S]) {
        let mut conn = self.redis().await;
        for m in messages {
            let _: i64 = conn.publish(&self.channel, m.as_ref()).await.unwrap();
        }
    }
}

/// Deletes every key under a test's prefix when dropped (`SCAN MATCH <prefix>*`, then `DEL`), with
/// a blocking connection so that it works in `Drop`, also while a failed test unwinds. Best
/// effort: a Redis that is gone (a stopped private one) leaves nothing to clean.
#[derive(Debug)]
struct KeysGuard {
    prefix: String,
    redis_url: String,
}

impl Drop for KeysGuard {
    fn drop(&mut self) {
        let Ok(mut conn) = redis::Client::open(self.redis_url.as_str())
            .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(2)))
        else {
            return;
        };
        let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
        let _ = conn.set_write_timeout(Some(Duration::from_secs(5)));
        let pattern = format!("{}*", self.prefix);
        let keys: Vec<String> = match redis::Commands::scan_match::<_, String>(&mut conn, &pattern)
        {
            Ok(iter) => iter.filter_map(Result::ok).collect(),
            Err(_) => return,
        };
        for chunk in keys.chunks(500) {
            let _: redis::RedisResult<()> = redis::Commands::del(&mut conn, chunk);
        }
    }
}

pub struct TestApp {
    pub app: RunningApp,
    pub base: String,
}

impl TestApp {
    /// A signed hooks API call (sha1); returns (HTTP status, body).
    pub async fn api(&self, call: &str, query: &str) -> (u16, String) {
        self.api_with(call, query, ChecksumAlgorithm::Sha1).await
    }

    pub async fn api_with(&self, call: &str, query: &str, alg: ChecksumAlgorithm) -> (u16, String) {
        let checksum =
            bbb_webhooks::api::checksum::sign(&format!("hooks/{call}"), query, SECRET, alg);
        let sep = if query.is_empty() { "" } else { "&" };
        self.get(&format!(
            "/bigbluebutton/api/hooks/{call}?{query}{sep}checksum={checksum}"
        ))
        .await
    }

    pub async fn get(&self, path_and_query: &str) -> (u16, String) {
        let r = reqwest::get(format!("{}{path_and_query}", self.base))
            .await
            .expect("API answers");
        let status = r.status().as_u16();
        (status, r.text().await.unwrap())
    }

    /// Registers a hook for `url` with extra query parameters; returns its id.
    pub async fn create_hook(&self, url: &str, extra: &str) -> String {
        let query = format!("callbackURL={}{extra}", encode(url));
        let (_, body) = self.api("create", &query).await;
        extract(&body, "hookID").unwrap_or_else(|| panic!("no hookID in {body}"))
    }

    /// Stops the app; it must stop cleanly (no critical task failed).
    pub async fn stop(self) {
        self.app.shutdown().await.expect("a clean stop");
    }
}

pub fn encode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The text of the first `<tag>…</tag>`.
pub fn extract(xml: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{tag}>"))? + start;
    Some(xml[start..end].to_string())
}

/// Every hook id in a list answer, in order.
pub fn hook_ids(xml: &str) -> Vec<String> {
    xml.split("<hookID>")
        .skip(1)
        .filter_map(|s| s.split("</hookID>").next().map(String::from))
        .collect()
}

/// Logs to the test's output when `RUST_LOG` is set.
pub fn init_logs() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
}

// --- The recording receiver ------------------------------------------------------------------

/// One request as the receiver saw it.
#[derive(Clone, Debug)]
pub struct Received {
    pub method: String,
    /// Path and query, as sent.
    pub uri: String,
    pub headers: HeaderMap,
    pub body: String,
    pub at: Instant,
}

impl Received {
    pub fn form(&self) -> Vec<(String, String)> {
        form_urlencoded::parse(self.body.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    }

    pub fn field(&self, name: &str) -> Option<String> {
        self.form()
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }

    /// The `event` field's JSON array.
    pub fn events(&self) -> Vec<Value> {
        self.field("event")
            .and_then(|e| serde_json::from_str::<Vec<Value>>(&e).ok())
            .unwrap_or_default()
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(String::from)
    }
}

/// What the receiver answers to the n-th request (0-based) on a path.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub delay: Duration,
    pub location: Option<String>,
    /// When set, the answer waits until the test opens this gate (`gate.notify_one()`).
    pub gate: Option<Arc<Notify>>,
}

impl Reply {
    pub fn ok() -> Reply {
        Reply::status(200)
    }
    pub fn status(status: u16) -> Reply {
        Reply {
            status,
            delay: Duration::ZERO,
            location: None,
            gate: None,
        }
    }
    pub fn delayed(mut self, d: Duration) -> Reply {
        self.delay = d;
        self
    }
    /// Holds the answer (the request is in flight) until the test calls `gate.notify_one()`.
    pub fn held(mut self, gate: &Arc<Notify>) -> Reply {
        self.gate = Some(gate.clone());
        self
    }
    pub fn redirect(status: u16, location: &str) -> Reply {
        Reply {
            status,
            delay: Duration::ZERO,
            location: Some(location.to_string()),
            gate: None,
        }
    }
}

type Behavior = Arc<dyn Fn(&Received, usize) -> Reply + Send + Sync>;

struct ReceiverState {
    received: Mutex<Vec<Received>>,
    notify: Notify,
    behavior: Behavior,
}

/// An HTTP server on loopback that records every request and answers as told.
pub struct Receiver {
    pub addr: SocketAddr,
    state: Arc<ReceiverState>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    /// Answers 200 to everything.
    pub async fn start() -> Receiver {
        Receiver::with(|_, _| Reply::ok()).await
    }

    /// `behavior(path, n)` decides the answer to the n-th request on `path`.
    pub async fn with(behavior: impl Fn(&str, usize) -> Reply + Send + Sync + 'static) -> Receiver {
        Receiver::with_request(move |r, n| behavior(r.uri.split('?').next().unwrap_or(""), n)).await
    }

    /// `behavior(request, n)` decides the answer to the n-th request on the request's path.
    pub async fn with_request(
        behavior: impl Fn(&Received, usize) -> Reply + Send + Sync + 'static,
    ) -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Receiver::on(listener, Arc::new(behavior)).await
    }

    async fn on(listener: tokio::net::TcpListener, behavior: Behavior) -> Receiver {
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(ReceiverState {
            received: Mutex::new(Vec::new()),
            notify: Notify::new(),
            behavior,
        });
        let app = axum::Router::new()
            .fallback(record)
            .with_state(state.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver { addr, state, task }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.received.lock().unwrap().clone()
    }

    /// Requests whose path starts with `path`.
    pub fn received_on(&self, path: &str) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| r.uri.starts_with(path))
            .collect()
    }

    /// Waits until `count` requests on `path` arrived (or panics after `timeout`).
    pub async fn wait_for(&self, path: &str, count: usize, timeout: Duration) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.state.notify.notified();
            let got = self.received_on(path);
            if got.len() >= count {
                return got;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                let got = self.received_on(path);
                assert!(
                    got.len() >= count,
                    "expected {count} requests on {path}, got {}",
                    got.len()
                );
                return got;
            }
        }
    }

    /// Every event delivered on `path`, in order of arrival.
    pub fn events_on(&self, path: &str) -> Vec<Value> {
        self.received_on(path)
            .iter()
            .flat_map(|r| r.events())
            .collect()
    }

    pub fn stop(&self) {
        self.task.abort();
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn record(
    State(state): State<Arc<ReceiverState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    let path = uri.path().to_string();
    let request = Received {
        method: method.to_string(),
        uri: uri.to_string(),
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
        at: Instant::now(),
    };
    let n = {
        let mut r = state.received.lock().unwrap();
        let n = r
            .iter()
            .filter(|x| x.uri.split('?').next() == Some(&path))
            .count();
        r.push(request.clone());
        n
    };
    state.notify.notify_waiters();
    let reply = (state.behavior)(&request, n);
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    if let Some(gate) = &reply.gate {
        gate.notified().await;
    }
    let status = StatusCode::from_u16(reply.status).unwrap();
    match reply.location {
        Some(l) => (status, [("location", l)], "").into_response(),
        None => (status, "{\"status\":\"OK\"}").into_response(),
    }
}

/// The payload (`p`) of the newest entry of the queue stream `queue`; `None` when it is empty,
/// missing or unreadable.
pub async fn newest_queued_payload(env: &Env, queue: &str) -> Option<String> {
    let mut c = env.redis().await;
    let newest: Vec<(String, std::collections::HashMap<String, String>)> = redis::cmd("XREVRANGE")
        .arg(queue)
        .arg("+")
        .arg("-")
        .arg("COUNT")
        .arg(1)
        .query_async(&mut c)
        .await
        .unwrap_or_default();
    newest.into_iter().next()?.1.remove("p")
}

/// A receiver that holds its first request on each path until the test calls
/// `gate.notify_one()`, and answers every other request at once.
pub async fn receiver_holding_first(gate: &Arc<Notify>) -> Receiver {
    let gate = gate.clone();
    Receiver::with(move |_, n| {
        if n == 0 {
            Reply::ok().held(&gate)
        } else {
            Reply::ok()
        }
    })
    .await
}

/// Polls `check` every 20 ms until it is true or `timeout` passes.
pub async fn eventually<F, Fut>(timeout: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Lines of a fixture file (`tests/fixtures/…`).
pub fn fixture_lines(path: &str) -> Vec<String> {
    let full = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&full)
        .unwrap_or_else(|e| panic!("{}: {e}", full.display()))
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(String::from)
        .collect()
}

/// A 2.x message with this test's ids: `name`, meeting `meeting`, user `user`, `body`.
pub fn msg(name: &str, meeting: &str, user: &str, body: Value) -> String {
    json!({
        "envelope": {"name": name, "routing": {"msgType": "BROADCAST_TO_MEETING", "meetingId": meeting, "userId": user}, "timestamp": bbb_webhooks::time::now_ms()},
        "core": {"header": {"name": name, "meetingId": meeting, "userId": user}, "body": body}
    })
    .to_string()
}

pub fn meeting_created(internal: &str, external: &str) -> String {
    json!({
        "envelope": {"name": "MeetingCreatedEvtMsg", "routing": {"sender": "bbb-apps-akka"}, "timestamp": bbb_webhooks::time::now_ms()},
        "core": {"header": {"name": "MeetingCreatedEvtMsg"}, "body": {"props": {
            "meetingProp": {"name": external, "extId": external, "intId": internal, "isBreakout": false},
            "durationProps": {"duration": 0, "createdTime": 1, "createdDate": "x"},
            "password": {"moderatorPass": "mp", "viewerPass": "ap"},
            "recordProp": {"record": false},
            "voiceProp": {"voiceConf": "70000", "dialNumber": "000"},
            "usersProp": {"maxUsers": 0},
            "metadataProp": {"metadata": {}}
        }}}
    })
    .to_string()
}

pub fn user_joined(meeting: &str, user: &str, ext: &str) -> String {
    msg(
        "UserJoinedMeetingEvtMsg",
        meeting,
        user,
        json!({"intId": user, "extId": ext, "name": format!("User {user}"), "role": "VIEWER", "guest": false, "presenter": false}),
    )
}

pub fn chat(meeting: &str, user: &str, text: &str) -> String {
    msg(
        "GroupChatMessageBroadcastEvtMsg",
        meeting,
        user,
        json!({"chatId": "MAIN-PUBLIC-GROUP-CHAT", "msg": {"id": format!("m-{text}"), "timestamp": 1, "sender": {"id": user, "name": "U"}, "message": text}}),
    )
}

pub fn meeting_destroyed(meeting: &str) -> String {
    json!({
        "envelope": {"name": "MeetingDestroyedEvtMsg", "routing": {"sender": "bbb-apps-akka"}, "timestamp": bbb_webhooks::time::now_ms()},
        "core": {"header": {"name": "MeetingDestroyedEvtMsg"}, "body": {"meetingId": meeting}}
    })
    .to_string()
}

/// The event ids of a list of events.
pub fn ids(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["data"]["id"].as_str().unwrap_or("?").to_string())
        .collect()
}

// --- The real binary -------------------------------------------------------------------------

/// A port nobody listens on right now (for the real binary and private Redis servers).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The Prometheus text a `/metrics` endpoint on `addr` serves.
pub async fn scrape(addr: impl std::fmt::Display) -> String {
    reqwest::get(format!("http://{addr}/metrics"))
        .await
        .expect("metrics answer")
        .text()
        .await
        .expect("a body")
}

/// The `bbb-webhooks serve` binary, started on a config file.
pub struct Service {
    pub child: std::process::Child,
    pub base: String,
}

impl Service {
    /// Starts the binary; `capture` keeps its output for [`Service::stop`].
    pub fn spawn(
        config: &std::path::Path,
        port: u16,
        envs: &[(&str, &str)],
        capture: bool,
    ) -> Service {
        Service::spawn_command("serve", config, port, envs, capture)
    }

    /// Another long-running subcommand (`forward`), answering `/ready` on `port`.
    pub fn spawn_command(
        command: &str,
        config: &std::path::Path,
        port: u16,
        envs: &[(&str, &str)],
        capture: bool,
    ) -> Service {
        use std::process::Stdio;
        let output = || {
            if capture {
                Stdio::piped()
            } else {
                Stdio::null()
            }
        };
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_bbb-webhooks"))
            .args([command, "--config"])
            .arg(config)
            .env("LOG_LEVEL", "warn")
            .env_remove("SHARED_SECRET")
            .env_remove("RUST_LOG")
            .envs(envs.iter().copied())
            .stdout(output())
            .stderr(if capture {
                Stdio::piped()
            } else {
                Stdio::inherit()
            })
            .spawn()
            .expect("the binary starts");
        Service {
            child,
            base: format!("http://127.0.0.1:{port}"),
        }
    }

    /// Starts the binary and waits until `/ready` says so.
    pub async fn start(config: &std::path::Path, port: u16) -> Service {
        let s = Service::spawn(config, port, &[], false);
        s.wait_ready().await;
        s
    }

    pub async fn wait_ready(&self) {
        // The first HTTP client of a test that starts only the binary: see `Env::on`.
        bbb_webhooks::tls::install_crypto_provider();
        let url = format!("{}/ready", self.base);
        let ready = eventually(Duration::from_secs(20), || {
            let url = url.clone();
            async move { reqwest::get(url).await.is_ok_and(|r| r.status() == 200) }
        })
        .await;
        assert!(ready, "the service became ready");
    }

    /// Registers a hook through the signed API; returns its id.
    pub async fn create_hook(&self, url: &str) -> String {
        self.create_hook_with(url, "").await
    }

    /// A signed hooks API call (sha1); returns the body.
    pub async fn api(&self, call: &str, query: &str) -> String {
        let c = bbb_webhooks::api::checksum::sign(
            &format!("hooks/{call}"),
            query,
            SECRET,
            ChecksumAlgorithm::Sha1,
        );
        let sep = if query.is_empty() { "" } else { "&" };
        reqwest::get(format!(
            "{}/bigbluebutton/api/hooks/{call}?{query}{sep}checksum={c}",
            self.base
        ))
        .await
        .expect("API answers")
        .text()
        .await
        .expect("a body")
    }

    /// [`Service::create_hook`] with more query parameters (`&meetingID=…`).
    pub async fn create_hook_with(&self, url: &str, extra: &str) -> String {
        let query = format!("callbackURL={}{extra}", encode(url));
        let c = bbb_webhooks::api::checksum::sign(
            "hooks/create",
            &query,
            SECRET,
            ChecksumAlgorithm::Sha1,
        );
        let body = reqwest::get(format!(
            "{}/bigbluebutton/api/hooks/create?{query}&checksum={c}",
            self.base
        ))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
        extract(&body, "hookID").unwrap_or_else(|| panic!("no hookID in {body}"))
    }

    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Waits for the process to end on its own (without a signal); returns its exit status and
    /// whatever was captured, or `None` if it still runs after `timeout`.
    pub async fn exited(mut self, timeout: Duration) -> Option<(std::process::ExitStatus, String)> {
        use std::io::Read;
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let mut out = String::new();
        if let Some(mut o) = self.child.stdout.take() {
            let _ = o.read_to_string(&mut out);
        }
        if let Some(mut e) = self.child.stderr.take() {
            let _ = e.read_to_string(&mut out);
        }
        Some((status, out))
    }

    /// SIGTERM, then waits; returns the exit status and whatever was captured.
    pub fn stop(mut self) -> (std::process::ExitStatus, String) {
        use std::io::Read;
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let status = self.child.wait().unwrap();
        let mut out = String::new();
        if let Some(mut o) = self.child.stdout.take() {
            let _ = o.read_to_string(&mut out);
        }
        if let Some(mut e) = self.child.stderr.take() {
            let _ = e.read_to_string(&mut out);
        }
        (status, out)
    }
}

/// A test that fails leaves no service behind (it would go on reading the test's keys).
impl Drop for Service {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[test]
fn an_env_deletes_its_keys_when_its_last_clone_goes_even_on_a_panic() {
    let mut conn = redis::Client::open(REDIS_URL)
        .unwrap()
        .get_connection()
        .unwrap();
    let count = |conn: &mut redis::Connection, prefix: &str| -> usize {
        redis::Commands::scan_match::<_, String>(conn, format!("{prefix}*"))
            .unwrap()
            .count()
    };
    let env = Env::new("helpers-drop");
    let prefix = env.prefix.clone();
    for i in 0..1200 {
        let _: () = redis::Commands::set(&mut conn, env.key(&format!("k{i}")), i).unwrap();
    }
    let clone = env.clone();
    drop(env);
    assert_eq!(count(&mut conn, &prefix), 1200, "a clone still holds them");
    drop(clone);
    assert_eq!(count(&mut conn, &prefix), 0, "the last clone deleted them");

    let (tx, rx) = std::sync::mpsc::channel();
    let failed = std::thread::spawn(move || {
        let env = Env::new("helpers-panic");
        tx.send(env.prefix.clone()).unwrap();
        let mut conn = redis::Client::open(REDIS_URL)
            .unwrap()
            .get_connection()
            .unwrap();
        let _: () = redis::Commands::set(&mut conn, env.key("k"), 1).unwrap();
        panic!("a failing test");
    })
    .join();
    assert!(failed.is_err());
    assert_eq!(
        count(&mut conn, &rx.recv().unwrap()),
        0,
        "deleted while unwinding"
    );
}

// --- A raw HTTP/1.1 server, for what the recording receiver cannot do ---------------------------

/// How a [`RawServer`] answers every request.
#[derive(Clone, Copy, Debug)]
pub enum RawAnswer {
    /// `200 OK` with a short body; the connection stays open for the next request.
    Ok,
    /// `200 OK` with a chunked body that never ends: the server writes until the client goes
    /// away (or `cap` bytes, so that a broken client cannot fill the test machine's memory).
    Endless { cap: u64 },
}

struct RawState {
    heads: Mutex<Vec<String>>,
    written: std::sync::atomic::AtomicU64,
    notify: Notify,
}

/// A loopback HTTP/1.1 server written on bare TCP: it records each request's head (request
/// line and headers, as sent) and counts the body bytes it managed to write.
pub struct RawServer {
    pub addr: SocketAddr,
    state: Arc<RawState>,
    task: tokio::task::JoinHandle<()>,
}

impl RawServer {
    pub async fn start(answer: RawAnswer) -> RawServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(RawState {
            heads: Mutex::new(Vec::new()),
            written: Default::default(),
            notify: Notify::new(),
        });
        let shared = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(raw_connection(stream, shared.clone(), answer));
            }
        });
        RawServer { addr, state, task }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Every request head received so far.
    pub fn heads(&self) -> Vec<String> {
        self.state.heads.lock().unwrap().clone()
    }

    /// Body bytes written to clients so far (all connections).
    pub fn written(&self) -> u64 {
        self.state
            .written
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Waits until `count` requests arrived (or panics after `timeout`).
    pub async fn wait_for(&self, count: usize, timeout: Duration) -> Vec<String> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.state.notify.notified();
            let got = self.heads();
            if got.len() >= count {
                return got;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                let got = self.heads();
                assert!(got.len() >= count, "expected {count} requests, got {got:?}");
                return got;
            }
        }
    }
}

impl Drop for RawServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn raw_connection(
    mut stream: tokio::net::TcpStream,
    state: Arc<RawState>,
    answer: RawAnswer,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf: Vec<u8> = Vec::new();
    loop {
        // The head, then as many body bytes as Content-Length says.
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let length: usize = head
            .lines()
            .find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse().ok())?
            })
            .unwrap_or(0);
        while buf.len() < head_end + length {
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        buf.drain(..head_end + length);
        state.heads.lock().unwrap().push(head);
        state.notify.notify_waiters();
        match answer {
            RawAnswer::Ok => {
                let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                if stream.write_all(ok).await.is_err() {
                    return;
                }
            }
            RawAnswer::Endless { cap } => {
                let start = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n";
                if stream.write_all(start).await.is_err() {
                    return;
                }
                let payload = vec![b'x'; 64 * 1024];
                let mut chunk = format!("{:x}\r\n", payload.len()).into_bytes();
                chunk.extend_from_slice(&payload);
                chunk.extend_from_slice(b"\r\n");
                let mut sent = 0u64;
                while sent < cap {
                    if stream.write_all(&chunk).await.is_err() {
                        return;
                    }
                    sent += payload.len() as u64;
                    state
                        .written
                        .fetch_add(payload.len() as u64, std::sync::atomic::Ordering::Relaxed);
                }
                return;
            }
        }
    }
}
