//! `bbb-webhooks forward`: a server's channels into its ingest stream on the cluster Redis, byte
//! for byte; the local buffer while the cluster Redis is away (in order, drained before anything
//! newer, capped and counted); a `kill -9` in the middle of a drain (nothing lost, nothing
//! twice); a Sentinel failover of the cluster Redis. The local ("BigBlueButton") Redis is the
//! shared one on 6379 (own channel and key prefix); the cluster Redis is a private one.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bbb_webhooks::cluster::{ClusterKeys, IngestEntry};
use bbb_webhooks::forward::{self, ForwardConfig, RunningForwarder};
use bbb_webhooks::redis_conn::RedisTarget;
use redis::Value;
use serde_json::Value as Json;

use crate::helpers::*;
use crate::private_redis::PrivateRedis;

const SERVER: &str = "bbb1.example.com";

fn config(env: &Env, cluster: RedisTarget) -> ForwardConfig {
    ForwardConfig {
        server: SERVER.into(),
        keys: ClusterKeys::new(&env.prefix),
        local: RedisTarget::Url(REDIS_URL.into()),
        cluster,
        channels: vec![env.channel.clone(), format!("{}:other", env.channel)],
        stream_max_len: 1_000_000,
        buffer_max_len: 1_000_000,
        intake_buffer_bytes: 64 << 20,
        listen: "127.0.0.1:0".parse().unwrap(),
    }
}

async fn conn(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

async fn publish(url: &str, channel: &str, messages: &[Vec<u8>]) {
    let mut c = conn(url).await;
    let mut pipe = redis::pipe();
    for m in messages {
        pipe.cmd("PUBLISH").arg(channel).arg(m.as_slice()).ignore();
    }
    let () = pipe.query_async(&mut c).await.unwrap();
}

/// Every entry of a stream, oldest first.
async fn entries(url: &str, key: &str) -> Vec<IngestEntry> {
    let mut c = conn(url).await;
    let reply: Vec<(String, Vec<(String, Value)>)> = redis::cmd("XRANGE")
        .arg(key)
        .arg("-")
        .arg("+")
        .query_async(&mut c)
        .await
        .unwrap();
    reply
        .into_iter()
        .map(|(id, fields)| IngestEntry::from_stream(id, &fields).unwrap())
        .collect()
}

async fn xlen(url: &str, key: &str) -> usize {
    let mut c = match redis::Client::open(url) {
        Ok(client) => match client.get_multiplexed_async_connection().await {
            Ok(c) => c,
            Err(_) => return 0,
        },
        Err(_) => return 0,
    };
    redis::cmd("XLEN")
        .arg(key)
        .query_async(&mut c)
        .await
        .unwrap_or(0)
}

async fn ready(f: &RunningForwarder) -> (u16, Json) {
    let r = reqwest::get(format!("http://{}/ready", f.addr))
        .await
        .unwrap();
    let code = r.status().as_u16();
    (
        code,
        serde_json::from_str(&r.text().await.unwrap()).unwrap(),
    )
}

/// The samples of `/metrics`, by name with labels.
async fn metrics(addr: impl std::fmt::Display) -> BTreeMap<String, f64> {
    scrape(addr)
        .await
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            Some((name.to_string(), value.parse().ok()?))
        })
        .collect()
}

fn metric(m: &BTreeMap<String, f64>, name: &str) -> f64 {
    *m.get(name).unwrap_or_else(|| panic!("no {name} in {m:#?}"))
}

async fn started(config: ForwardConfig) -> RunningForwarder {
    bbb_webhooks::tls::install_crypto_provider();
    let f = forward::start(config).await.unwrap();
    let up = eventually(WAIT, || async { ready(&f).await.0 == 200 }).await;
    assert!(up, "the forwarder became ready: {:?}", ready(&f).await);
    f
}

fn messages(tag: &str, n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| format!(r#"{{"tag":"{tag}","n":{i}}}"#).into_bytes())
        .collect()
}

#[tokio::test]
async fn messages_arrive_byte_for_byte_with_server_channel_and_time() {
    let env = Env::new("forward-bytes");
    let cluster = PrivateRedis::start();
    let f = started(config(&env, RedisTarget::Url(cluster.url()))).await;
    let keys = ClusterKeys::new(&env.prefix);
    let other = format!("{}:other", env.channel);
    // Not even UTF-8: the bytes are passed on untouched.
    let odd: Vec<u8> = vec![b'{', 0xff, 0x00, b'"', 0xc3, 0xa9, b'}', b'\n'];
    let before = bbb_webhooks::time::now_ms();
    publish(
        REDIS_URL,
        &env.channel,
        &[
            br#"{"envelope":{"name":"MeetingCreatedEvtMsg"},"core":{}}"#.to_vec(),
            odd.clone(),
        ],
    )
    .await;
    publish(REDIS_URL, &other, &["ünïcode ✓".as_bytes().to_vec()]).await;
    let ingest = keys.ingest(SERVER);
    assert!(
        eventually(WAIT, || async { xlen(&cluster.url(), &ingest).await == 3 }).await,
        "three entries"
    );
    let after = bbb_webhooks::time::now_ms();
    let got = entries(&cluster.url(), &ingest).await;
    assert_eq!(
        got[0].message,
        br#"{"envelope":{"name":"MeetingCreatedEvtMsg"},"core":{}}"#
    );
    assert_eq!(got[1].message, odd);
    assert_eq!(got[2].message, "ünïcode ✓".as_bytes());
    assert_eq!(got[2].channel, other);
    for e in &got {
        assert_eq!(e.server, SERVER);
        assert!((before..=after).contains(&e.received_at), "{e:?}");
    }
    assert_eq!(got[0].channel, env.channel);
    let ids: Vec<_> = got
        .iter()
        .map(|e| bbb_webhooks::cluster::parse_id(&e.id).unwrap())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    let mut c = conn(&cluster.url()).await;
    let servers: Vec<String> = redis::cmd("SMEMBERS")
        .arg(keys.servers())
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(servers, vec![SERVER.to_string()]);
    let (code, body) = ready(&f).await;
    assert_eq!(
        (code, &body["buffering"]),
        (200, &Json::Bool(false)),
        "{body}"
    );
    let m = metrics(f.addr).await;
    assert_eq!(metric(&m, "bbb_webhooks_forward_forwarded_total"), 3.0);
    assert_eq!(metric(&m, "bbb_webhooks_forward_buffered_total"), 0.0);
    let health = reqwest::get(format!("http://{}/health", f.addr))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    f.shutdown().await.unwrap();
}

#[tokio::test]
async fn while_the_cluster_redis_is_down_messages_wait_in_the_buffer_and_arrive_first_in_order() {
    let env = Env::new("forward-outage");
    let cluster = PrivateRedis::start();
    let f = started(config(&env, RedisTarget::Url(cluster.url()))).await;
    let keys = ClusterKeys::new(&env.prefix);
    let (ingest, buffer) = (keys.ingest(SERVER), keys.buffer(SERVER));
    publish(REDIS_URL, &env.channel, &messages("before", 5)).await;
    assert!(eventually(WAIT, || async { xlen(&cluster.url(), &ingest).await == 5 }).await);

    cluster.stop();
    const N: usize = 300;
    publish(REDIS_URL, &env.channel, &messages("during", N)).await;
    assert!(
        eventually(WAIT, || async { xlen(REDIS_URL, &buffer).await == N }).await,
        "all {N} in the local buffer: {}",
        xlen(REDIS_URL, &buffer).await
    );
    let (code, body) = ready(&f).await;
    assert_eq!(
        code, 200,
        "buffering to a writable local Redis is ready: {body}"
    );
    assert_eq!(body["buffering"], true, "{body}");
    assert_eq!(body["bufferDepth"], N, "{body}");
    assert!(body["clusterError"].is_string(), "{body}");
    let m = metrics(f.addr).await;
    assert_eq!(metric(&m, "bbb_webhooks_forward_buffered_total"), N as f64);
    assert_eq!(metric(&m, "bbb_webhooks_forward_buffer_depth"), N as f64);

    // Back, empty (no persistence): the buffered ones first, then what is published meanwhile.
    cluster.restart();
    publish(REDIS_URL, &env.channel, &messages("after", 50)).await;
    assert!(
        eventually(WAIT, || async {
            xlen(&cluster.url(), &ingest).await == N + 50
        })
        .await,
        "all arrived: {}",
        xlen(&cluster.url(), &ingest).await
    );
    let got: Vec<String> = entries(&cluster.url(), &ingest)
        .await
        .into_iter()
        .map(|e| String::from_utf8(e.message).unwrap())
        .collect();
    let want: Vec<String> = messages("during", N)
        .into_iter()
        .chain(messages("after", 50))
        .map(|m| String::from_utf8(m).unwrap())
        .collect();
    assert_eq!(
        got, want,
        "in order, the buffered ones before the newer ones"
    );
    assert_eq!(xlen(REDIS_URL, &buffer).await, 0, "the buffer is empty");
    let (code, body) = ready(&f).await;
    assert_eq!(
        (code, &body["buffering"]),
        (200, &Json::Bool(false)),
        "{body}"
    );
    let m = metrics(f.addr).await;
    assert_eq!(
        metric(&m, "bbb_webhooks_forward_forwarded_total"),
        (5 + N + 50) as f64
    );
    assert_eq!(metric(&m, "bbb_webhooks_forward_buffer_depth"), 0.0);
    assert_eq!(metric(&m, "bbb_webhooks_forward_duplicates_total"), 0.0);
    assert!(
        metric(
            &m,
            "bbb_webhooks_forward_redis_reconnects_total{connection=\"cluster\"}"
        ) >= 1.0
    );
    f.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_buffer_cap_drops_the_oldest_and_counts_them() {
    let env = Env::new("forward-cap");
    let cluster = PrivateRedis::start();
    let mut cfg = config(&env, RedisTarget::Url(cluster.url()));
    cfg.buffer_max_len = 10;
    let f = started(cfg).await;
    let keys = ClusterKeys::new(&env.prefix);
    cluster.stop();
    publish(REDIS_URL, &env.channel, &messages("m", 25)).await;
    let counted = eventually(WAIT, || async {
        metrics(f.addr)
            .await
            .get("bbb_webhooks_forward_buffered_total")
            == Some(&25.0)
    })
    .await;
    assert!(counted, "{:?}", metrics(f.addr).await);
    let m = metrics(f.addr).await;
    assert_eq!(
        metric(
            &m,
            "bbb_webhooks_forward_dropped_total{reason=\"buffer_cap\"}"
        ),
        15.0
    );
    assert_eq!(metric(&m, "bbb_webhooks_forward_buffer_depth"), 10.0);
    cluster.restart();
    let ingest = keys.ingest(SERVER);
    assert!(eventually(WAIT, || async { xlen(&cluster.url(), &ingest).await == 10 }).await);
    let got: Vec<Vec<u8>> = entries(&cluster.url(), &ingest)
        .await
        .into_iter()
        .map(|e| e.message)
        .collect();
    assert_eq!(got, messages("m", 25)[15..].to_vec(), "the newest ten");
    f.shutdown().await.unwrap();
}

/// Buffer entries as a forwarder writes them: ids `1000-0`, `1000-1`, …
async fn fill_buffer(url: &str, key: &str, n: usize) {
    let mut c = conn(url).await;
    for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
        let mut pipe = redis::pipe();
        for &i in chunk {
            pipe.cmd("XADD")
                .arg(key)
                .arg(format!("1000-{i}"))
                .arg("s")
                .arg(SERVER)
                .arg("c")
                .arg("ch")
                .arg("t")
                .arg(1000)
                .arg("m")
                .arg(format!("m{i}"))
                .ignore();
        }
        let () = pipe.query_async(&mut c).await.unwrap();
    }
}

fn assert_exactly_once_in_order(got: &[IngestEntry], n: usize) {
    let bodies: Vec<String> = got
        .iter()
        .map(|e| String::from_utf8(e.message.clone()).unwrap())
        .collect();
    let want: Vec<String> = (0..n).map(|i| format!("m{i}")).collect();
    if bodies != want {
        let first_wrong = bodies.iter().zip(&want).position(|(a, b)| a != b);
        panic!(
            "{} entries, {n} wanted; first difference at {first_wrong:?}",
            bodies.len()
        );
    }
}

#[tokio::test]
async fn entries_sent_before_a_crash_but_not_trimmed_are_refused_as_duplicates() {
    // The state a crash between the cluster's answer and the buffer's trim leaves: the first 40
    // of the buffer are in the cluster stream already.
    let env = Env::new("forward-dups");
    let cluster = PrivateRedis::start();
    let keys = ClusterKeys::new(&env.prefix);
    let (ingest, buffer) = (keys.ingest(SERVER), keys.buffer(SERVER));
    fill_buffer(REDIS_URL, &buffer, 100).await;
    fill_buffer(&cluster.url(), &ingest, 40).await;
    let f = started(config(&env, RedisTarget::Url(cluster.url()))).await;
    assert!(eventually(WAIT, || async { xlen(REDIS_URL, &buffer).await == 0 }).await);
    assert_exactly_once_in_order(&entries(&cluster.url(), &ingest).await, 100);
    let m = metrics(f.addr).await;
    assert_eq!(metric(&m, "bbb_webhooks_forward_duplicates_total"), 40.0);
    assert_eq!(metric(&m, "bbb_webhooks_forward_forwarded_total"), 60.0);
    // New messages get ids above the old ones.
    publish(REDIS_URL, &env.channel, &[b"m100".to_vec()]).await;
    assert!(
        eventually(WAIT, || async {
            xlen(&cluster.url(), &ingest).await == 101
        })
        .await
    );
    assert_exactly_once_in_order(&entries(&cluster.url(), &ingest).await, 101);
    f.shutdown().await.unwrap();
}

/// The real binary, on a config file naming the test's channel, prefix and Redis servers.
fn spawn_forwarder(
    dir: &std::path::Path,
    env: &Env,
    cluster_url: &str,
    port: u16,
) -> std::process::Child {
    let file = dir.join("forward.yml");
    std::fs::write(
        &file,
        format!(
            "redis:\n  url: {REDIS_URL}\n  inboundChannels: [{:?}]\ncluster:\n  prefix: {:?}\n\
             forward:\n  to: {cluster_url}\n  server: {SERVER}\n  port: {port}\n",
            env.channel, env.prefix
        ),
    )
    .unwrap();
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_bbb-webhooks"));
    for variable in bbb_webhooks::config::variable_names() {
        c.env_remove(variable);
    }
    c.args(["forward", "--config"])
        .arg(&file)
        .env_remove("BBB_WEBHOOKS_CONFIG")
        .env_remove("RUST_LOG")
        .env("LOG_LEVEL", "warn")
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("the binary starts")
}

#[tokio::test]
async fn kill_9_in_the_middle_of_a_drain_loses_nothing_and_sends_nothing_twice() {
    let env = Env::new("forward-kill");
    let cluster = PrivateRedis::start();
    let keys = ClusterKeys::new(&env.prefix);
    let (ingest, buffer) = (keys.ingest(SERVER), keys.buffer(SERVER));
    const N: usize = 60_000;
    fill_buffer(REDIS_URL, &buffer, N).await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = spawn_forwarder(dir.path(), &env, &cluster.url(), port);
    // Kill it as soon as part of the buffer is across.
    let deadline = Instant::now() + WAIT;
    let mut across = 0;
    while Instant::now() < deadline {
        across = xlen(&cluster.url(), &ingest).await;
        if across > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let left = xlen(REDIS_URL, &buffer).await;
    assert!(
        across > 0 && left > 0,
        "killed in the middle of the drain: {across} across, {left} left"
    );
    let mut child = spawn_forwarder(dir.path(), &env, &cluster.url(), port);
    let drained = eventually(Duration::from_secs(60), || async {
        xlen(REDIS_URL, &buffer).await == 0
    })
    .await;
    let m = metrics(format!("127.0.0.1:{port}")).await;
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(drained, "the buffer is drained after the restart");
    assert_exactly_once_in_order(&entries(&cluster.url(), &ingest).await, N);
    let second = metric(&m, "bbb_webhooks_forward_forwarded_total")
        + metric(&m, "bbb_webhooks_forward_duplicates_total");
    assert!(
        second as usize <= N && second as usize >= N - across,
        "the second run moved what the first had not trimmed: {second}, {across} across before"
    );
}

/// `redis-server --sentinel` on a free port, watching `127.0.0.1:<primary>` as `mymaster`.
struct Sentinel {
    port: u16,
    child: std::process::Child,
    _dir: tempfile::TempDir,
}

impl Sentinel {
    fn start(primary: u16) -> Option<Sentinel> {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let file = dir.path().join("sentinel.conf");
        std::fs::write(
            &file,
            format!(
                "port {port}\nbind 127.0.0.1\ndir {}\n\
                 sentinel monitor mymaster 127.0.0.1 {primary} 1\n\
                 sentinel down-after-milliseconds mymaster 1000\n\
                 sentinel failover-timeout mymaster 10000\n",
                dir.path().display()
            ),
        )
        .unwrap();
        let child = std::process::Command::new("redis-server")
            .arg(&file)
            .arg("--sentinel")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .ok()?;
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(Sentinel {
            port,
            child,
            _dir: dir,
        })
    }

    async fn primary_port(&self) -> Option<u16> {
        let mut c = conn(&format!("redis://127.0.0.1:{}", self.port)).await;
        let addr: Option<(String, String)> = redis::cmd("SENTINEL")
            .arg("get-master-addr-by-name")
            .arg("mymaster")
            .query_async(&mut c)
            .await
            .ok()?;
        addr.and_then(|(_, p)| p.parse().ok())
    }
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn after_a_sentinel_failover_the_forwarder_writes_to_the_new_primary() {
    let env = Env::new("forward-sentinel");
    let primary = PrivateRedis::start();
    // A replica writes what it receives to disk: not in the working directory.
    let replica_dir = tempfile::tempdir().unwrap();
    let replica = PrivateRedis::with_args(&[
        "--replicaof",
        "127.0.0.1",
        &primary.port.to_string(),
        "--dir",
        replica_dir.path().to_str().unwrap(),
    ]);
    let Some(sentinel) = Sentinel::start(primary.port) else {
        eprintln!(
            "SKIPPED after_a_sentinel_failover_the_forwarder_writes_to_the_new_primary: \
             `redis-server --sentinel` cannot be started here"
        );
        return;
    };
    let target = RedisTarget::Sentinel {
        sentinels: vec![("127.0.0.1".into(), sentinel.port)],
        master: "mymaster".into(),
        url: None,
    };
    let f = started(config(&env, target.clone())).await;
    let ingest = ClusterKeys::new(&env.prefix).ingest(SERVER);
    // What `serve` does with `redis.sentinels`: it notices the failover (and stops, to be
    // started again).
    let first = target.client().await.unwrap();
    assert_eq!(
        first.get_connection_info().addr().to_string(),
        format!("127.0.0.1:{}", primary.port)
    );
    let watch = tokio::spawn(bbb_webhooks::redis_conn::primary_changed(
        target.clone(),
        first,
        tokio_util::sync::CancellationToken::new(),
        Duration::from_millis(100),
    ));
    publish(REDIS_URL, &env.channel, &messages("m", 10)).await;
    assert!(eventually(WAIT, || async { xlen(&primary.url(), &ingest).await == 10 }).await);
    assert!(
        eventually(WAIT, || async { xlen(&replica.url(), &ingest).await == 10 }).await,
        "replicated"
    );

    // The Sentinel must know the replica before it can promote it.
    let s = conn(&format!("redis://127.0.0.1:{}", sentinel.port)).await;
    let failed_over = eventually(Duration::from_secs(40), || {
        let mut s = s.clone();
        async move {
            redis::cmd("SENTINEL")
                .arg("FAILOVER")
                .arg("mymaster")
                .query_async::<()>(&mut s)
                .await
                .is_ok()
        }
    })
    .await;
    assert!(failed_over, "SENTINEL FAILOVER accepted");
    let promoted = eventually(Duration::from_secs(30), || async {
        sentinel.primary_port().await == Some(replica.port)
    })
    .await;
    assert!(promoted, "the replica is the primary now");
    tokio::time::timeout(Duration::from_secs(10), watch)
        .await
        .expect("the watch noticed the failover")
        .unwrap();
    // Redis replicates asynchronously: what the old primary takes between the promotion and
    // its own demotion is lost with any client. Publish once it is a replica.
    let demoted = eventually(Duration::from_secs(30), || async {
        // The demotion closes the clients' connections: a failed ask is a "not yet".
        let Ok(mut c) = redis::Client::open(primary.url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
        else {
            return false;
        };
        let role: Vec<Value> = redis::cmd("ROLE")
            .query_async(&mut c)
            .await
            .unwrap_or_default();
        matches!(role.first(), Some(Value::BulkString(r)) if r == b"slave")
    })
    .await;
    assert!(demoted, "the old primary is a replica now");

    publish(REDIS_URL, &env.channel, &messages("n", 10)).await;
    let arrived = eventually(Duration::from_secs(30), || async {
        xlen(&replica.url(), &ingest).await == 20
    })
    .await;
    assert!(
        arrived,
        "the new primary has them all: {}",
        xlen(&replica.url(), &ingest).await
    );
    let got: Vec<Vec<u8>> = entries(&replica.url(), &ingest)
        .await
        .into_iter()
        .map(|e| e.message)
        .collect();
    let want: Vec<Vec<u8>> = messages("m", 10)
        .into_iter()
        .chain(messages("n", 10))
        .collect();
    assert_eq!(got, want);
    f.shutdown().await.unwrap();
}

#[tokio::test]
async fn when_neither_redis_takes_writes_messages_wait_in_memory_and_ready_says_so() {
    let env = Env::new("forward-neither");
    let local = PrivateRedis::start();
    let cluster = PrivateRedis::start();
    let mut cfg = config(&env, RedisTarget::Url(cluster.url()));
    cfg.local = RedisTarget::Url(local.url());
    let f = started(cfg).await;
    let keys = ClusterKeys::new(&env.prefix);
    let (ingest, buffer) = (keys.ingest(SERVER), keys.buffer(SERVER));
    cluster.stop();
    publish(&local.url(), &env.channel, &messages("a", 5)).await;
    assert!(eventually(WAIT, || async { xlen(&local.url(), &buffer).await == 5 }).await);

    // The local Redis refuses writes too (out of memory); PUBLISH still works.
    let mut l = conn(&local.url()).await;
    let () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg(1)
        .query_async(&mut l)
        .await
        .unwrap();
    publish(&local.url(), &env.channel, &messages("b", 5)).await;
    let held = eventually(WAIT, || async {
        let (code, body) = ready(&f).await;
        code == 503 && body["backlog"] == 5
    })
    .await;
    let (_, body) = ready(&f).await;
    assert!(held, "{body}");
    assert!(
        body["reason"].as_str().unwrap().contains("neither"),
        "{body}"
    );
    assert!(
        body["localError"].as_str().unwrap().contains("OOM"),
        "{body}"
    );

    let () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg(0)
        .query_async(&mut l)
        .await
        .unwrap();
    let buffering = eventually(WAIT, || async {
        let (code, body) = ready(&f).await;
        code == 200 && body["bufferDepth"] == 10
    })
    .await;
    assert!(buffering, "{}", ready(&f).await.1);
    cluster.restart();
    assert!(eventually(WAIT, || async { xlen(&cluster.url(), &ingest).await == 10 }).await);
    let got: Vec<Vec<u8>> = entries(&cluster.url(), &ingest)
        .await
        .into_iter()
        .map(|e| e.message)
        .collect();
    let want: Vec<Vec<u8>> = messages("a", 5)
        .into_iter()
        .chain(messages("b", 5))
        .collect();
    assert_eq!(got, want);
    f.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_critical_task_that_dies_stops_the_forwarder_unready_and_failed() {
    let env = Env::new("forward-panic");
    let cluster = PrivateRedis::start();
    let f = started(config(&env, RedisTarget::Url(cluster.url()))).await;
    let status = f.status.clone();
    publish(
        REDIS_URL,
        &env.channel,
        &[b"bbb-webhooks-fault:forwarder-panic".to_vec()],
    )
    .await;
    let outcome = tokio::time::timeout(WAIT, f.wait())
        .await
        .expect("the forwarder stops");
    assert!(
        matches!(outcome, Err(forward::ForwardError::TaskFailed("writer"))),
        "{outcome:?}"
    );
    let (ready, body) = status.ready();
    assert!(!ready);
    assert_eq!(body["failed"], "writer", "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_delivers_what_the_forwarder_sends_naming_the_server() {
    // The contract end to end: this server's channel → forward → cluster Redis → a relay
    // (`input.mode: cluster`) → a hook.
    let cluster = PrivateRedis::start();
    let relay_env = Env::on("forward-relay", &cluster.url())
        .with("input.mode", serde_json::json!("cluster"))
        .with(
            "cluster.prefix",
            serde_json::json!(format!("{}:c", "relay")),
        );
    let relay = relay_env.start().await;
    let receiver = Receiver::start().await;
    relay.create_hook(&receiver.url("/all"), "").await;

    let env = Env::new("forward-relay-local");
    let mut cfg = config(&env, RedisTarget::Url(cluster.url()));
    cfg.keys = ClusterKeys::new("relay:c");
    let f = started(cfg).await;
    let messages = [
        meeting_created("int-fr", "ext-fr"),
        user_joined("int-fr", "int-fr-u1", "ext-u1"),
    ];
    publish(REDIS_URL, &env.channel, &messages.map(|m| m.into_bytes())).await;
    let got = receiver.wait_for("/all", 2, WAIT).await;
    assert_eq!(got.len(), 2);
    for r in &got {
        assert_eq!(r.field("domain").as_deref(), Some(SERVER), "{:?}", r.form());
    }
    assert_eq!(got[0].events()[0]["data"]["id"], "meeting-created");
    assert_eq!(got[1].events()[0]["data"]["id"], "user-joined");
    f.shutdown().await.unwrap();
    relay.stop().await;
}

#[tokio::test]
async fn the_last_id_survives_the_deletion_of_every_entry() {
    let env = Env::new("forward-lastid");
    let key = env.key("stream");
    let mut c = conn(REDIS_URL).await;
    let last = forward::store::last_id(&mut c, &key).await.unwrap();
    assert_eq!(last, (0, 0), "no stream");
    let _: String = redis::cmd("XADD")
        .arg(&key)
        .arg("5-1")
        .arg("m")
        .arg("x")
        .query_async(&mut c)
        .await
        .unwrap();
    let _: u64 = redis::cmd("XDEL")
        .arg(&key)
        .arg("5-1")
        .query_async(&mut c)
        .await
        .unwrap();
    let last = forward::store::last_id(&mut c, &key).await.unwrap();
    assert_eq!(last, (5, 1), "a drained stream still knows its last id");
}
