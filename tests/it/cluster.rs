//! Relays in a cluster (`input.mode: cluster`): several instances on one cluster Redis share the
//! servers' ingest streams and the hooks, with leases. These tests write the ingest streams
//! themselves, in the forwarders' format (`bbb_webhooks::cluster`); the end-to-end run with real
//! forwarders is `acceptance_two_servers_two_relays`.

use std::time::Duration;

use bbb_webhooks::cluster::{ClusterKeys, DEFAULT_PREFIX, IdClock, IngestEntry};
use redis::AsyncCommands;
use serde_json::{Value, json};

use crate::helpers::*;
use crate::private_redis::PrivateRedis;

/// Appends `messages` to `server`'s ingest stream, as its forwarder would.
pub async fn forward(
    conn: &mut redis::aio::MultiplexedConnection,
    server: &str,
    messages: &[String],
) {
    let keys = ClusterKeys::new(DEFAULT_PREFIX);
    let _: () = conn.sadd(keys.servers(), server).await.unwrap();
    let last: Vec<(String, Vec<(String, String)>)> = redis::cmd("XREVRANGE")
        .arg(keys.ingest(server))
        .arg("+")
        .arg("-")
        .arg("COUNT")
        .arg(1)
        .query_async(conn)
        .await
        .unwrap();
    let floor = last
        .first()
        .and_then(|(id, _)| bbb_webhooks::cluster::parse_id(id))
        .unwrap_or((0, 0));
    let mut ids = IdClock::above(floor);
    for m in messages {
        let entry = IngestEntry {
            id: ids.next(bbb_webhooks::time::now_ms()),
            server: server.to_owned(),
            channel: "from-akka-apps-redis-channel".to_owned(),
            received_at: bbb_webhooks::time::now_ms(),
            message: m.as_bytes().to_vec(),
        };
        let mut cmd = redis::cmd("XADD");
        cmd.arg(keys.ingest(server)).arg(&entry.id);
        for (k, v) in entry.fields() {
            cmd.arg(k).arg(v);
        }
        let _: String = cmd.query_async(conn).await.unwrap();
    }
}

fn relay_env(redis: &PrivateRedis) -> Env {
    Env::on("cluster", &redis.url()).with("input.mode", json!("cluster"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_relays_share_servers_and_hooks_and_name_the_server() {
    let redis = PrivateRedis::start();
    let env = relay_env(&redis);
    let a = env.start().await;
    let b = env.start().await;
    let receiver = Receiver::start().await;

    // Registered on A, listed on B at once; a meeting-scoped hook too.
    let global = a.create_hook(&receiver.url("/all"), "").await;
    let scoped = a
        .create_hook(&receiver.url("/m1"), "&meetingID=ext-1")
        .await;
    let (_, listed) = b.api("list", "").await;
    let ids = hook_ids(&listed);
    assert!(ids.contains(&global) && ids.contains(&scoped), "{listed}");

    let mut conn = env.redis().await;
    let one = |meeting: &str, ext: &str, users: usize| {
        let mut m = vec![meeting_created(meeting, ext)];
        for u in 0..users {
            m.push(user_joined(
                meeting,
                &format!("{meeting}-u{u}"),
                &format!("e{u}"),
            ));
        }
        m
    };
    forward(&mut conn, "bbb1.example.com", &one("int-1", "ext-1", 20)).await;
    forward(&mut conn, "bbb2.example.com", &one("int-2", "ext-2", 20)).await;

    let all = receiver.wait_for("/all", 42, WAIT).await;
    assert_eq!(all.len(), 42, "every event reaches the global hook once");
    let mine = receiver.wait_for("/m1", 21, WAIT).await;
    assert_eq!(
        mine.len(),
        21,
        "the scoped hook gets its meeting's events only"
    );
    for r in &mine {
        assert_eq!(r.field("domain").as_deref(), Some("bbb1.example.com"));
    }
    // Per meeting, in order; each callback names the server its meeting is on.
    for (meeting, domain) in [("ext-1", "bbb1.example.com"), ("ext-2", "bbb2.example.com")] {
        let users: Vec<String> = all
            .iter()
            .filter(|r| {
                r.events()[0]["data"]["attributes"]["meeting"]["external-meeting-id"] == meeting
            })
            .inspect(|r| assert_eq!(r.field("domain").as_deref(), Some(domain)))
            .filter_map(|r| {
                r.events()[0]["data"]["attributes"]["user"]["external-user-id"]
                    .as_str()
                    .map(String::from)
            })
            .collect();
        let expected: Vec<String> = (0..20).map(|u| format!("e{u}")).collect();
        assert_eq!(users, expected, "{meeting}: joins in order");
    }

    // Both servers' positions are recorded with the events they produced.
    let positions: std::collections::HashMap<String, String> = conn
        .hgetall(ClusterKeys::new(DEFAULT_PREFIX).position())
        .await
        .unwrap();
    assert_eq!(positions.len(), 2, "{positions:?}");

    // Destroyed on B: gone from A's list too.
    let (_, destroyed) = b.api("destroy", &format!("hookID={scoped}")).await;
    assert!(destroyed.contains("<removed>true</removed>"), "{destroyed}");
    let (_, listed) = a.api("list", "").await;
    assert!(!hook_ids(&listed).contains(&scoped), "{listed}");

    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_stops_hands_its_servers_over() {
    let redis = PrivateRedis::start();
    let env = relay_env(&redis);
    let a = env.start().await;
    let receiver = Receiver::start().await;
    a.create_hook(&receiver.url("/all"), "").await;
    let mut conn = env.redis().await;
    forward(&mut conn, "bbb1", &[meeting_created("int-1", "ext-1")]).await;
    receiver.wait_for("/all", 1, WAIT).await;

    // B starts; A stops and gives its leases back: B maps what comes next, from A's position.
    let b = env.start().await;
    a.stop().await;
    forward(
        &mut conn,
        "bbb1",
        &[
            user_joined("int-1", "u1", "e1"),
            chat("int-1", "u1", "hello"),
        ],
    )
    .await;
    let all = receiver.wait_for("/all", 3, WAIT).await;
    assert_eq!(
        ids(&all.iter().flat_map(|r| r.events()).collect::<Vec<_>>()),
        ["meeting-created", "user-joined", "chat-group-message-sent"]
    );
    // The state moved with the server: B knows the meeting's external id.
    assert_eq!(
        all[1].events()[0]["data"]["attributes"]["meeting"]["external-meeting-id"],
        "ext-1"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.received_on("/all").len(), 3, "nothing twice");
    b.stop().await;
}

/// The fencing a relay's writes go through: a former owner's transaction is refused once the
/// fence moved, also when it moves between the check and `EXEC`.
#[tokio::test]
async fn a_former_owner_cannot_write_after_a_takeover() {
    use bbb_webhooks::lease::{FenceError, watch_fence};
    let env = Env::new("fence");
    let client = redis::Client::open(REDIS_URL).unwrap();
    let mut conn = redis::aio::ConnectionManager::new(client).await.unwrap();
    let mut other = env.redis().await;
    let (fence, data) = (env.key("fence"), env.key("data"));
    let token: u64 = other.incr(&fence, 1).await.unwrap();

    // The owner's write goes through while the token is current.
    watch_fence(&mut conn, &fence, token).await.unwrap();
    let done: Option<()> = redis::pipe()
        .atomic()
        .set(&data, "owner")
        .ignore()
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(done.is_some());

    // A takeover between the check and EXEC: Redis aborts the transaction.
    watch_fence(&mut conn, &fence, token).await.unwrap();
    let _: u64 = other.incr(&fence, 1).await.unwrap();
    let done: Option<()> = redis::pipe()
        .atomic()
        .set(&data, "former owner")
        .ignore()
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(done.is_none(), "the transaction was aborted");

    // After it, the check itself refuses.
    assert!(matches!(
        watch_fence(&mut conn, &fence, token).await,
        Err(FenceError::TakenOver { ours, theirs }) if ours == token && theirs == token + 1
    ));
    let value: String = other.get(&data).await.unwrap();
    assert_eq!(value, "owner");
}

/// What a receiver got, per meeting (external id): the first arrival of each request in order,
/// with its `domain`; and how many requests came again with a `webhook-id` seen before.
pub struct Arrivals {
    pub by_meeting: std::collections::BTreeMap<String, Vec<(String, String)>>,
    pub repeated: usize,
}

/// What identifies an event in the small tests: the user's external id, or the event's id.
fn short_key(e: &Value) -> String {
    e["data"]["attributes"]["user"]["external-user-id"]
        .as_str()
        .map_or_else(
            || e["data"]["id"].as_str().unwrap_or("").to_owned(),
            String::from,
        )
}

/// What identifies an event in a long run: its id, time and user.
fn full_key(e: &Value) -> String {
    format!(
        "{} {} {}",
        e["data"]["id"].as_str().unwrap_or(""),
        e["data"]["event"]["ts"],
        e["data"]["attributes"]["user"]["external-user-id"]
            .as_str()
            .unwrap_or("")
    )
}

fn meeting_of(e: &Value) -> String {
    e["data"]["attributes"]["meeting"]["external-meeting-id"]
        .as_str()
        .unwrap_or("")
        .to_owned()
}

/// The lane an event travels in (its server and meeting): order holds within it.
fn lane_of(e: &Value, server: &str) -> String {
    let m = &e["data"]["attributes"]["meeting"];
    let id = m["internal-meeting-id"]
        .as_str()
        .or(m["external-meeting-id"].as_str())
        .unwrap_or("");
    format!("{server} {id}")
}

impl Arrivals {
    /// Events arrived (first arrivals only).
    pub fn count(&self) -> usize {
        self.by_meeting.values().map(Vec::len).sum()
    }
}

/// Waits until `path` got at least `total` events (first arrivals), for up to `within`; whether
/// it did, and what arrived, grouped by `group`.
async fn wait_arrivals(
    receiver: &Receiver,
    path: &str,
    key: fn(&Value) -> String,
    group: fn(&Value, &str) -> String,
    total: usize,
    within: Duration,
) -> (bool, Arrivals) {
    let complete = eventually(within, || async {
        arrivals_by(&receiver.received_on(path), key, group).count() >= total
    })
    .await;
    (
        complete,
        arrivals_by(&receiver.received_on(path), key, group),
    )
}

pub fn arrivals(received: &[Received], key: fn(&Value) -> String) -> Arrivals {
    arrivals_by(received, key, |e, _| meeting_of(e))
}

/// [`arrivals`] grouped by `group` (of the event and the callback's `domain`).
pub fn arrivals_by(
    received: &[Received],
    key: fn(&Value) -> String,
    group: fn(&Value, &str) -> String,
) -> Arrivals {
    let mut seen = std::collections::HashSet::new();
    let mut by_meeting: std::collections::BTreeMap<String, Vec<(String, String)>> =
        Default::default();
    let mut repeated = 0;
    for r in received {
        let id = r
            .header("webhook-id")
            .expect("every callback has a webhook-id");
        if !seen.insert(id) {
            repeated += 1;
            continue;
        }
        let domain = r.field("domain").unwrap_or_default();
        for e in r.events() {
            by_meeting
                .entry(group(&e, &domain))
                .or_default()
                .push((key(&e), domain.clone()));
        }
    }
    Arrivals {
        by_meeting,
        repeated,
    }
}

/// A meeting's messages: created, then `users` joins (`<meeting>-e<n>`).
fn meeting_messages(internal: &str, external: &str, users: usize) -> Vec<String> {
    let mut m = vec![meeting_created(internal, external)];
    for u in 0..users {
        m.push(user_joined(
            internal,
            &format!("{internal}-u{u}"),
            &format!("{external}-e{u}"),
        ));
    }
    m
}

fn expected(external: &str, users: usize, domain: &str) -> Vec<(String, String)> {
    let mut e = vec![("meeting-created".to_owned(), domain.to_owned())];
    e.extend((0..users).map(|u| (format!("{external}-e{u}"), domain.to_owned())));
    e
}

/// Two relay processes; one is killed (`kill -9`) or paused (`SIGSTOP` past its leases' life,
/// then `SIGCONT`) while both servers' meetings stream in. The other carries on: every event
/// arrives, in order per meeting, with its server's domain; repeats only of requests in flight,
/// with their `webhook-id`; a paused relay that wakes up writes nothing twice.
async fn relay_lost_midway(pause: bool) {
    let redis = PrivateRedis::start();
    let env = relay_env(&redis).with("hooks.maxInFlightPerHook", json!(4));
    let dir = tempfile::tempdir().unwrap();
    let (port_a, port_b) = (free_port(), free_port());
    let a = Service::spawn(
        &env.config_file(dir.path(), port_a),
        port_a,
        &[("LOG_LEVEL", "info")],
        pause,
    );
    a.wait_ready().await;
    let receiver = Receiver::start().await;
    let hook = a.create_hook(&receiver.url("/all")).await;
    // A holds both servers and the hook before B starts: what follows is a takeover.
    let keys = ClusterKeys::new(DEFAULT_PREFIX);
    let mut conn = env.redis().await;
    for server in ["bbb1", "bbb2"] {
        let _: () = conn.sadd(keys.servers(), server).await.unwrap();
    }
    let a_pid = format!(":{}:", a.child.id());
    let mut leases = vec![keys.lease("ingest", "bbb1"), keys.lease("ingest", "bbb2")];
    leases
        .extend(bbb_webhooks::delivery::hook_units(&hook, 4).map(|unit| keys.lease("hook", &unit)));
    let held_by_a = eventually(WAIT, || {
        let (mut conn, leases, a_pid) = (conn.clone(), leases.clone(), a_pid.clone());
        async move {
            let owners: Vec<Option<String>> = conn.mget(&leases).await.unwrap();
            owners
                .iter()
                .all(|o| o.as_deref().is_some_and(|o| o.contains(&a_pid)))
        }
    })
    .await;
    assert!(held_by_a, "A took every lease");
    let b_dir = tempfile::tempdir().unwrap();
    let b = Service::spawn(&env.config_file(b_dir.path(), port_b), port_b, &[], false);
    b.wait_ready().await;

    let users = 60;
    let servers = [("bbb1", "int-1", "ext-1"), ("bbb2", "int-2", "ext-2")];
    let feed = async {
        let messages: Vec<Vec<String>> = servers
            .iter()
            .map(|(_, i, e)| meeting_messages(i, e, users))
            .collect();
        for n in 0..=users {
            for (s, (server, ..)) in servers.iter().enumerate() {
                forward(&mut conn, server, &messages[s][n..n + 1]).await;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let pid = a.child.id().to_string();
    let trouble = async {
        tokio::time::sleep(Duration::from_millis(400)).await;
        if pause {
            let _ = std::process::Command::new("kill")
                .args(["-STOP", &pid])
                .status();
            tokio::time::sleep(Duration::from_secs(5)).await;
            let _ = std::process::Command::new("kill")
                .args(["-CONT", &pid])
                .status();
            (Some(a), None)
        } else {
            a.kill9();
            (None, Some(std::time::Instant::now()))
        }
    };
    let ((), (survivor, killed_at)) = tokio::join!(feed, trouble);

    let total = 2 * (users + 1);
    let by_meeting = |e: &Value, _: &str| meeting_of(e);
    let (complete, got) = wait_arrivals(
        &receiver,
        "/all",
        short_key,
        by_meeting,
        total,
        Duration::from_secs(20),
    )
    .await;
    assert!(
        complete,
        "every event arrives: {:?}",
        got.by_meeting.values().map(Vec::len).collect::<Vec<_>>()
    );
    assert_eq!(got.by_meeting["ext-1"], expected("ext-1", users, "bbb1"));
    assert_eq!(got.by_meeting["ext-2"], expected("ext-2", users, "bbb2"));
    assert!(
        got.repeated <= 8,
        "repeats only of requests in flight: {}",
        got.repeated
    );
    if let Some(killed_at) = killed_at {
        // A held every lease: nothing moved until B took them over, within 5 s of the kill.
        let resumed = receiver
            .received_on("/all")
            .iter()
            .map(|r| r.at)
            .filter(|at| *at > killed_at)
            .min()
            .expect("deliveries after the kill");
        let gap = resumed.duration_since(killed_at);
        eprintln!("taken over after {gap:?}");
        assert!(gap < Duration::from_secs(5), "taken over after {gap:?}");
    }
    if let Some(a) = survivor {
        // The paused relay woke up with leases it no longer holds: nothing more comes.
        let before = receiver.received_on("/all").len();
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(receiver.received_on("/all").len(), before);
        let (status, out) = a.stop();
        assert!(out.contains("lease lost to another instance"), "{out}");
        assert!(status.success());
    }
    drop(b);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_killed_midway_is_taken_over() {
    relay_lost_midway(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_relay_writes_nothing_after_its_leases_were_taken() {
    relay_lost_midway(true).await;
}

/// The cluster Redis stops and comes back with what it acknowledged (a restart, or a Sentinel
/// failover to a replica that has it): the relays reconnect, keep their leases or take them
/// again, and deliver everything, once per `webhook-id`, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relays_survive_a_cluster_redis_restart() {
    let redis = PrivateRedis::durable();
    let env = relay_env(&redis);
    let a = env.start().await;
    let b = env.start().await;
    let receiver = Receiver::start().await;
    a.create_hook(&receiver.url("/all"), "").await;
    let messages = meeting_messages("int-1", "ext-1", 30);
    let mut conn = env.redis().await;
    forward(&mut conn, "bbb1", &messages[..11]).await;
    receiver.wait_for("/all", 11, WAIT).await;

    redis.stop();
    tokio::time::sleep(Duration::from_secs(2)).await;
    redis.restart();
    let mut conn = env.redis().await;
    forward(&mut conn, "bbb1", &messages[11..]).await;

    let by_meeting = |e: &Value, _: &str| meeting_of(e);
    let (complete, got) = wait_arrivals(
        &receiver,
        "/all",
        short_key,
        by_meeting,
        31,
        Duration::from_secs(20),
    )
    .await;
    assert!(complete, "{:?}", got.by_meeting);
    assert_eq!(got.by_meeting["ext-1"], expected("ext-1", 30, "bbb1"));
    a.stop().await;
    b.stop().await;
}

/// One hook's lanes are spread over the relays: the relay that took every part at first gives
/// parts back until each holds its share.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hooks_lanes_are_shared_by_the_relays() {
    let redis = PrivateRedis::start();
    let env = relay_env(&redis);
    let a = env.start().await;
    let receiver = Receiver::start().await;
    let hook = a.create_hook(&receiver.url("/all"), "").await;
    let b = env.start().await;
    let keys = ClusterKeys::new(DEFAULT_PREFIX);
    let units: Vec<String> = bbb_webhooks::delivery::hook_units(&hook, 4)
        .map(|u| keys.lease("hook", &u))
        .collect();
    let conn = env.redis().await;
    let shared = eventually(Duration::from_secs(30), || {
        let (mut conn, units) = (conn.clone(), units.clone());
        async move {
            let owners: Vec<Option<String>> = conn.mget(&units).await.unwrap();
            let distinct: std::collections::HashSet<_> = owners.iter().flatten().collect();
            owners.iter().all(Option::is_some) && distinct.len() == 2
        }
    })
    .await;
    assert!(shared, "both relays deliver parts of the hook");

    // Deliveries go on, in order per meeting, whichever relay holds which part.
    let mut conn = env.redis().await;
    for m in 0..8 {
        let (int, ext) = (format!("int-{m}"), format!("ext-{m}"));
        forward(&mut conn, "bbb1", &meeting_messages(&int, &ext, 5)).await;
    }
    receiver.wait_for("/all", 48, WAIT).await;
    let got = arrivals(&receiver.received_on("/all"), short_key);
    for m in 0..8 {
        let ext = format!("ext-{m}");
        assert_eq!(got.by_meeting[&ext], expected(&ext, 5, "bbb1"));
    }
    // A part handed over finishes its requests first: a rebalance sends nothing twice.
    assert_eq!(got.repeated, 0);
    a.stop().await;
    b.stop().await;
}

/// Every event the relays should deliver, per meeting, in order, with its server: the servers'
/// ingest streams as the cluster Redis holds them, mapped from the start with a fresh state per
/// server (what one relay that never stopped would have delivered).
async fn expected_from_ingest(
    conn: &mut redis::aio::MultiplexedConnection,
    servers: &[&str],
) -> std::collections::BTreeMap<String, Vec<(String, String)>> {
    let keys = ClusterKeys::new(DEFAULT_PREFIX);
    let mut out: std::collections::BTreeMap<String, Vec<(String, String)>> = Default::default();
    for server in servers {
        let mut mapper = bbb_webhooks::mapping::Mapper::default();
        let reply: redis::streams::StreamRangeReply =
            conn.xrange_all(keys.ingest(server)).await.unwrap();
        for entry in reply.ids {
            let fields: Vec<(String, redis::Value)> = entry.map.into_iter().collect();
            let e = IngestEntry::from_stream(entry.id, &fields).unwrap();
            for event in mapper.map(&e.message, e.received_at).unwrap_or_default() {
                let v: Value = serde_json::from_str(event.payload(false)).unwrap();
                out.entry(lane_of(&v, server))
                    .or_default()
                    .push((full_key(&v), server.to_string()));
            }
        }
    }
    out
}

/// The acceptance run, with real processes on loopback: two BigBlueButton servers (two
/// redis-servers, `bbb-webhooks simulate` publishing on each at about 100 messages/s for 20 s,
/// a forwarder on each), one cluster Redis (durable), two relays. A global and a meeting-scoped
/// hook are registered on relay A and listed on relay B. During the traffic relay A is killed
/// (`kill -9`) and the cluster Redis is stopped for 5 s (the forwarders buffer). Every event
/// arrives, none out of order within its meeting, repeats only of requests in flight (same
/// `webhook-id`), `domain` names the right server; relay B alone carries on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acceptance_two_servers_two_relays() {
    let servers = [
        ("bbb1.example.com", PrivateRedis::start()),
        ("bbb2.example.com", PrivateRedis::start()),
    ];
    let cluster = PrivateRedis::durable();
    let dir = tempfile::tempdir().unwrap();
    let mut forwarders = Vec::new();
    for (n, (name, redis)) in servers.iter().enumerate() {
        let port = free_port();
        let file = dir.path().join(format!("forward-{n}.yml"));
        std::fs::write(
            &file,
            format!(
                "redis:\n  url: {}\nforward:\n  to: {}\n  server: {name}\n  port: {port}\n",
                redis.url(),
                cluster.url()
            ),
        )
        .unwrap();
        let f = Service::spawn_command("forward", &file, port, &[], false);
        f.wait_ready().await;
        forwarders.push(f);
    }
    let env = relay_env(&cluster);
    let mut relays = Vec::new();
    for n in 0..2 {
        let port = free_port();
        let sub = dir.path().join(format!("relay-{n}"));
        std::fs::create_dir(&sub).unwrap();
        let relay = Service::spawn(&env.config_file(&sub, port), port, &[], false);
        relay.wait_ready().await;
        relays.push(relay);
    }
    let receiver = Receiver::start().await;
    let global = relays[0].create_hook(&receiver.url("/all")).await;
    let scoped = relays[0]
        .create_hook_with(&receiver.url("/scoped"), "&meetingID=ext-scoped")
        .await;
    let listed = hook_ids(&relays[1].api("list", "").await);
    assert!(
        listed.contains(&global) && listed.contains(&scoped),
        "{listed:?}"
    );

    // Traffic: a simulated class after another on each server, 10 ms apart (about 2,000
    // messages each), and a meeting of known id on the second server for the scoped hook.
    let simulators: Vec<std::process::Child> = servers
        .iter()
        .map(|(_, redis)| {
            std::process::Command::new(env!("CARGO_BIN_EXE_bbb-webhooks"))
                .args(["simulate", "--redis-url", &redis.url()])
                .args(["--meetings", "25", "--users", "10", "--pace-ms", "10"])
                .env_remove("RUST_LOG")
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("simulate starts")
        })
        .collect();
    let scoped_meeting = async {
        let mut conn = redis::Client::open(servers[1].1.url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        for m in meeting_messages("int-scoped", "ext-scoped", 80) {
            let _: i64 = conn
                .publish("from-akka-apps-redis-channel", m)
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    let a = relays.remove(0);
    let trouble = async {
        tokio::time::sleep(Duration::from_secs(6)).await;
        a.kill9();
        tokio::time::sleep(Duration::from_secs(4)).await;
        cluster.stop();
        tokio::time::sleep(Duration::from_secs(5)).await;
        cluster.restart();
    };
    tokio::join!(scoped_meeting, trouble);
    for mut s in simulators {
        let status = tokio::task::spawn_blocking(move || s.wait().unwrap())
            .await
            .unwrap();
        assert!(status.success(), "simulate ran to its end");
    }

    // Everything the servers published is in the cluster (the forwarders' buffers drained).
    let mut conn = env.redis().await;
    let names: Vec<&str> = servers.iter().map(|(n, _)| *n).collect();
    let drained = eventually(Duration::from_secs(30), || async {
        let mut c = env.redis().await;
        let mut total = 0;
        for name in &names {
            let n: usize = c
                .xlen(ClusterKeys::new(DEFAULT_PREFIX).ingest(name))
                .await
                .unwrap_or(0);
            total += n;
        }
        total >= 2 * 25 * 80 + 81
    })
    .await;
    assert!(drained, "every published message reached the cluster Redis");
    let expected = expected_from_ingest(&mut conn, &names).await;
    let total: usize = expected.values().map(Vec::len).sum();
    let (complete, got) = wait_arrivals(
        &receiver,
        "/all",
        full_key,
        lane_of,
        total,
        Duration::from_secs(60),
    )
    .await;
    assert!(complete, "every event arrives: {} of {total}", got.count());
    assert_eq!(got.by_meeting.len(), expected.len(), "every meeting");
    for (meeting, events) in &expected {
        assert_eq!(
            &got.by_meeting[meeting], events,
            "{meeting}: all, in order, right domain"
        );
    }
    eprintln!(
        "acceptance: {total} events in {} lanes delivered to the global hook, {} repeated requests",
        expected.len(),
        got.repeated
    );
    assert!(
        got.repeated <= 64,
        "repeats only of requests in flight: {}",
        got.repeated
    );
    let scoped_got = arrivals_by(&receiver.received_on("/scoped"), full_key, lane_of);
    let lane = "bbb2.example.com int-scoped";
    assert_eq!(
        scoped_got.by_meeting.keys().collect::<Vec<_>>(),
        [lane],
        "the scoped hook gets its meeting only"
    );
    assert_eq!(scoped_got.by_meeting[lane], expected[lane]);

    // Relay B alone carried on, and still answers.
    let listed = hook_ids(&relays[0].api("list", "").await);
    assert!(listed.contains(&global), "{listed:?}");
    drop(forwarders);
}

/// Two instances lease 600 units (more than one script call's worth): every unit is held by
/// exactly one of them, with its own fencing token, and they end up sharing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_on_many_units_are_held_once_and_shared() {
    use bbb_webhooks::lease::Leaser;
    use futures_util::FutureExt;
    let redis = PrivateRedis::start();
    let client = redis::Client::open(redis.url()).unwrap();
    let conn = redis::aio::ConnectionManager::new(client).await.unwrap();
    let keys = ClusterKeys::new("many");
    let units: Vec<String> = (0..600).map(|n| format!("unit-{n}")).collect();
    let metrics = bbb_webhooks::metrics::Metrics::new(false);
    let stop = tokio_util::sync::CancellationToken::new();
    let mut sets = Vec::new();
    for owner in ["one", "two"] {
        let (leaser, held) =
            Leaser::new(conn.clone(), keys.clone(), "test", owner, metrics.clone());
        let list = units.clone();
        let source: bbb_webhooks::lease::Units =
            Box::new(move || futures_util::future::ready(Ok(list.clone())).boxed());
        tokio::spawn(leaser.run(source, Vec::new(), stop.clone()));
        sets.push(held);
    }
    let shared = eventually(Duration::from_secs(30), || {
        let (a, b) = (sets[0].borrow().clone(), sets[1].borrow().clone());
        async move { a.len() + b.len() == 600 && a.len() >= 250 && b.len() >= 250 }
    })
    .await;
    let (a, b) = (sets[0].borrow().clone(), sets[1].borrow().clone());
    assert!(shared, "held {} and {}", a.len(), b.len());
    assert!(a.keys().all(|u| !b.contains_key(u)), "no unit held twice");
    let mut c = conn.clone();
    let owners: Vec<Option<String>> = c
        .mget(
            units
                .iter()
                .map(|u| keys.lease("test", u))
                .collect::<Vec<_>>(),
        )
        .await
        .unwrap();
    for (unit, owner) in units.iter().zip(owners) {
        let expected = if a.contains_key(unit) { "one" } else { "two" };
        assert_eq!(owner.as_deref(), Some(expected), "{unit}");
    }
    stop.cancel();
}
