//! Redis misbehaving: refusing writes (out of memory), losing its data. The service keeps
//! running, says so in `/ready`, frees what can be freed, bounds what it holds, and recovers by
//! itself.

use std::collections::HashMap;
use std::sync::Arc;

use redis::AsyncCommands;
use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::helpers::*;
use crate::private_redis::PrivateRedis;

fn text(e: &Value) -> String {
    e["data"]["attributes"]["chat-message"]["message"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

/// A chat message with a ~2 KB text, numbered.
fn big_chat(meeting: &str, i: usize) -> String {
    chat(meeting, "w_1", &format!("n{i:04} {}", "x".repeat(2000)))
}

async fn used_memory(env: &Env) -> u64 {
    let mut c = env.redis().await;
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .query_async(&mut c)
        .await
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap()
}

async fn set_maxmemory(env: &Env, bytes: u64) {
    let mut c = env.redis().await;
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg(bytes)
        .query_async(&mut c)
        .await
        .unwrap();
}

#[tokio::test]
async fn redis_refusing_writes_is_a_state_destroying_a_hook_frees_it() {
    let redis = PrivateRedis::start();
    let env = Env::on("hd-oom", &redis.url()).with("hooks.requestTimeout", json!(60_000));
    // Hook A's receiver holds its first request: A's queue piles up. B answers at once.
    let gate = Arc::new(Notify::new());
    let rx = Receiver::with({
        let gate = gate.clone();
        move |path, n| {
            if path == "/a" && n == 0 {
                Reply::ok().held(&gate)
            } else {
                Reply::ok()
            }
        }
    })
    .await;
    let app = env.start().await;
    let a = app.create_hook(&rx.url("/a"), "").await;
    app.create_hook(&rx.url("/b"), "").await;
    let before: Vec<String> = (0..600).map(|i| big_chat("int-oom", i)).collect();
    env.publish(&before).await;
    let queue_a = env.key(&format!("rs:queue:{a}"));
    let piled = eventually(WAIT, || async {
        let mut c = env.redis().await;
        c.xlen::<_, usize>(&queue_a).await.unwrap_or(0) >= 599 && rx.events_on("/b").len() >= 600
    })
    .await;
    assert!(piled, "A's backlog is queued, B got everything so far");

    // Redis refuses writes from now on.
    set_maxmemory(&env, used_memory(&env).await + 64 * 1024).await;
    let after: Vec<String> = (600..800).map(|i| big_chat("int-oom", i)).collect();
    env.publish(&after).await;
    let refused = eventually(WAIT, || async {
        let (status, body) = app.get("/ready").await;
        status == 503 && body.contains(r#""writable":false"#) && body.contains("OOM")
    })
    .await;
    assert!(refused, "/ready says that Redis refuses writes, and why");

    // Destroying A is not held up by the blocked write, and frees A's queue.
    let (_, body) = tokio::time::timeout(WAIT, app.api("destroy", &format!("hookID={a}")))
        .await
        .expect("destroy answers while writes are refused");
    assert!(body.contains("<removed>true</removed>"), "{body}");
    let gone = eventually(WAIT, || async {
        let mut c = env.redis().await;
        !c.exists::<_, bool>(&queue_a).await.unwrap_or(true)
    })
    .await;
    assert!(gone, "A's queue is deleted");

    // The held batch goes through by itself; B gets every message, in order, once.
    let all = eventually(WAIT, || async { rx.events_on("/b").len() >= 800 }).await;
    assert!(all, "B got {} of 800", rx.events_on("/b").len());
    let texts: Vec<String> = rx
        .events_on("/b")
        .iter()
        .map(|e| text(e)[..5].to_string())
        .collect();
    let want: Vec<String> = (0..800).map(|i| format!("n{i:04}")).collect();
    assert_eq!(texts, want);
    let ready = eventually(WAIT, || async { app.get("/ready").await.0 == 200 }).await;
    assert!(ready, "ready again");
    gate.notify_one();
    app.stop().await;
}

#[tokio::test]
async fn the_intake_is_bounded_while_redis_refuses_writes() {
    let redis = PrivateRedis::start();
    let env = Env::on("hd-intake", &redis.url()).with("redis.intakeBufferBytes", json!(100_000));
    let rx = Receiver::start().await;
    let app = env.start().await;
    app.create_hook(&rx.url("/i"), "").await;
    env.publish(&[big_chat("int-in", 0)]).await;
    rx.wait_for("/i", 1, WAIT).await;
    set_maxmemory(&env, used_memory(&env).await + 16 * 1024).await;
    let burst: Vec<String> = (1..=400).map(|i| big_chat("int-in", i)).collect();
    env.publish(&burst).await;
    // 400 × 2 KB is 800 KB: the 100 KB intake keeps about 50 of them.
    let dropped = eventually(WAIT, || async {
        let m = app.app.metrics.render();
        m.lines()
            .find_map(|l| l.strip_prefix("bbb_webhooks_intake_dropped_total "))
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|n| n >= 300)
    })
    .await;
    assert!(dropped, "messages beyond the bound are dropped and counted");
    set_maxmemory(&env, 0).await;
    let ready = eventually(WAIT, || async { app.get("/ready").await.0 == 200 }).await;
    assert!(ready, "recovers by itself once Redis takes writes");
    // What the intake held went through, in order.
    let got = eventually(WAIT, || async { rx.events_on("/i").len() >= 20 }).await;
    assert!(got);
    let texts: Vec<String> = rx
        .events_on("/i")
        .iter()
        .map(|e| text(e)[..5].to_string())
        .collect();
    let mut sorted = texts.clone();
    sorted.sort();
    assert_eq!(texts, sorted, "in order");
    assert!(texts.len() < 401, "not everything: {}", texts.len());
    app.stop().await;
}

#[tokio::test]
async fn a_redis_that_lost_its_data_is_noticed_and_rewritten() {
    let redis = PrivateRedis::start();
    let env = Env::on("hd-wipe", &redis.url());
    let rx = Receiver::start().await;
    let app = env.start().await;
    let hook = app.create_hook(&rx.url("/w"), "").await;
    env.publish(&[
        meeting_created("int-w", "ext-w"),
        user_joined("int-w", "w_1", "ext-user"),
    ])
    .await;
    rx.wait_for("/w", 2, WAIT).await;
    let mut c = env.redis().await;
    let _: () = redis::cmd("FLUSHALL").query_async(&mut c).await.unwrap();

    let noticed = eventually(WAIT, || async {
        app.app
            .metrics
            .render()
            .contains("bbb_webhooks_redis_data_lost_total 1\n")
    })
    .await;
    assert!(noticed, "the loss is noticed and counted");
    let rewritten = eventually(WAIT, || async {
        let mut c = env.redis().await;
        let hooks: Vec<String> = c.smembers(env.hooks_set()).await.unwrap_or_default();
        let meetings: usize = c.scard(env.key("proc:mappings")).await.unwrap_or(0);
        let users: usize = c.scard(env.key("proc:userMaps")).await.unwrap_or(0);
        hooks == [hook.clone()] && meetings == 1 && users == 1
    })
    .await;
    assert!(
        rewritten,
        "hooks and mappings are written again from memory"
    );
    let stored: HashMap<String, String> = c.hgetall(env.hook_key(&hook)).await.unwrap();
    assert_eq!(stored.get("callbackURL"), Some(&rx.url("/w")));
    // Delivery goes on, with the mappings it had.
    env.publish(&[chat("int-w", "w_1", "after the wipe")]).await;
    let got = rx.wait_for("/w", 3, WAIT).await;
    let last = &got[2].events()[0];
    assert_eq!(text(last), "after the wipe");
    assert_eq!(
        last["data"]["attributes"]["meeting"]["external-meeting-id"],
        "ext-w"
    );
    assert_eq!(app.get("/ready").await.0, 200);
    app.stop().await;
}

#[tokio::test]
async fn a_queue_is_deleted_as_an_orphan_only_with_proof() {
    let env = Env::new("hd-orphan");
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = env.config_file(dir.path(), port);
    let mut c = env.redis().await;
    // Two queues whose hooks are unknown: one recorded as destroyed, one not.
    for id in ["proven", "unknown"] {
        let _: String = c
            .xadd(
                env.key(&format!("rs:queue:{id}")),
                "*",
                &[("e", "x"), ("p", "{}")],
            )
            .await
            .unwrap();
    }
    let _: () = c.sadd(env.key("rs:destroyed"), "proven").await.unwrap();
    let service = Service::start(&config, port).await;
    let proven: bool = c.exists(env.key("rs:queue:proven")).await.unwrap();
    let unknown: bool = c.exists(env.key("rs:queue:unknown")).await.unwrap();
    assert!(!proven, "the destroyed hook's queue is deleted");
    assert!(unknown, "a queue without proof is kept");
    let record: bool = c
        .sismember(env.key("rs:destroyed"), "proven")
        .await
        .unwrap();
    assert!(!record, "the record goes with the queue");
    service.stop();
}
