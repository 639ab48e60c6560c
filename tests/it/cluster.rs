//! Relays in a cluster (`input.mode: cluster`): several instances on one cluster Redis share the
//! servers' ingest streams and the hooks, with leases. These tests write the ingest streams
//! themselves, in the forwarders' format (`bbb_webhooks::cluster`); the end-to-end run with real
//! forwarders is `acceptance_two_servers_two_relays`.

use std::time::Duration;

use bbb_webhooks::cluster::{ClusterKeys, DEFAULT_PREFIX, IdClock, IngestEntry};
use redis::AsyncCommands;
use serde_json::json;

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
