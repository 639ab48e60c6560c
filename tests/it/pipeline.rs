//! The input side and state: real channels, Redis disconnects, restarts.

use std::time::Duration;

use redis::AsyncCommands;
use serde_json::{Value, json};

use crate::helpers::*;
use crate::private_redis::PrivateRedis;

fn texts(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| {
            e["data"]["attributes"]["chat-message"]["message"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect()
}

#[tokio::test]
async fn messages_on_every_channel_are_mapped_in_order() {
    let env = Env::new("pl-channels");
    let second = format!("{}:second", env.prefix);
    let channels = json!([env.channel.clone(), second.clone()]);
    let env = env.with("redis.inboundChannels", channels);
    let rx = Receiver::start().await;
    let app = env.start().await;
    app.create_hook(&rx.url("/all"), "").await;
    let mut conn = env.redis().await;
    for i in 0..40 {
        let channel = if i % 2 == 0 { &env.channel } else { &second };
        let _: i64 = conn
            .publish(channel, chat("int-c", "w_1", &format!("m{i}")))
            .await
            .unwrap();
    }
    rx.wait_for("/all", 40, WAIT).await;
    let want: Vec<String> = (0..40).map(|i| format!("m{i}")).collect();
    assert_eq!(texts(&rx.events_on("/all")), want);
    app.stop().await;
}

#[tokio::test]
async fn bad_messages_are_counted_and_skipped() {
    let env = Env::new("pl-bad");
    let rx = Receiver::start().await;
    let app = env.start().await;
    app.create_hook(&rx.url("/b"), "").await;
    env.publish(&[
        "not json at all".to_string(),
        "{\"envelope\":{\"name\":\"UserJoinedMeetingEvtMsg\"},\"core\":{}}".to_string(),
        msg("SomethingNewEvtMsg", "int-b", "w_1", json!({})),
        "[]".to_string(),
        chat("int-b", "w_1", "still here"),
    ])
    .await;
    rx.wait_for("/b", 1, WAIT).await;
    assert_eq!(texts(&rx.events_on("/b")), ["still here"]);
    let m = app.app.metrics.render();
    assert!(
        m.contains("bbb_webhooks_messages_malformed_total{reason=\"invalid\"} 2"),
        "{m}"
    );
    assert!(
        m.contains("bbb_webhooks_messages_malformed_total{reason=\"missing_field\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("bbb_webhooks_messages_ignored_total{reason=\"unknown_name\"} 1"),
        "{m}"
    );
    assert!(m.contains("bbb_webhooks_messages_received_total 5"), "{m}");
    assert!(m.contains("bbb_webhooks_event_process_failures 3"), "{m}");
    app.stop().await;
}

#[tokio::test]
async fn the_subscriber_comes_back_after_its_connection_is_killed() {
    let redis = PrivateRedis::start();
    let env = Env::on("pl-kill", &redis.url());
    let rx = Receiver::start().await;
    let app = env.start().await;
    app.create_hook(&rx.url("/k"), "").await;
    env.publish(&[chat("int-k", "w_1", "before")]).await;
    rx.wait_for("/k", 1, WAIT).await;

    let mut conn = env.redis().await;
    let killed: i64 = redis::cmd("CLIENT")
        .arg(&["KILL", "TYPE", "pubsub"])
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(killed, 1);
    // Once it is subscribed again, the next message is mapped.
    let back = eventually(WAIT, || async {
        let mut c = env.redis().await;
        let n: Vec<(String, i64)> = redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg(&env.channel)
            .query_async(&mut c)
            .await
            .unwrap();
        n[0].1 == 1
    })
    .await;
    assert!(back, "re-subscribed");
    env.publish(&[chat("int-k", "w_1", "after")]).await;
    rx.wait_for("/k", 2, WAIT).await;
    assert_eq!(texts(&rx.events_on("/k")), ["before", "after"]);
    let m = app.app.metrics.render();
    assert!(
        m.contains("bbb_webhooks_redis_reconnects_total{connection=\"subscriber\"} 1"),
        "{m}"
    );
    app.stop().await;
}

#[tokio::test]
async fn meeting_and_user_mappings_survive_a_restart() {
    let env = Env::new("pl-state");
    let rx = Receiver::start().await;
    let app = env.start().await;
    app.create_hook(&rx.url("/s"), "&meetingID=ext-state").await;
    env.publish(&[
        meeting_created("int-state", "ext-state"),
        user_joined("int-state", "w_s", "user-s"),
    ])
    .await;
    rx.wait_for("/s", 2, WAIT).await;
    app.stop().await;

    let app = env.start().await;
    env.publish(&[
        msg(
            "UserJoinedVoiceConfToClientEvtMsg",
            "int-state",
            "w_s",
            json!({"intId": "w_s", "listenOnly": false, "muted": false}),
        ),
        meeting_destroyed("int-state"),
    ])
    .await;
    rx.wait_for("/s", 5, WAIT).await;
    let events = rx.events_on("/s");
    assert_eq!(
        ids(&events),
        [
            "meeting-created",
            "user-joined",
            "user-audio-voice-enabled",
            "user-left",
            "meeting-ended"
        ]
    );
    for e in &events[2..] {
        assert_eq!(
            e["data"]["attributes"]["meeting"]["external-meeting-id"], "ext-state",
            "{e}"
        );
    }
    assert_eq!(
        events[2]["data"]["attributes"]["user"]["external-user-id"],
        "user-s"
    );
    assert_eq!(
        events[3]["data"]["attributes"]["user"],
        json!({"internal-user-id": "w_s", "external-user-id": "user-s", "guest": false})
    );
    // The mappings are gone from Redis with the meeting.
    let mut conn = env.redis().await;
    let left: usize = conn.scard(env.key("proc:userMaps")).await.unwrap();
    let meetings: usize = conn.scard(env.key("proc:mappings")).await.unwrap();
    assert_eq!((left, meetings), (0, 0));
    app.stop().await;
}

#[tokio::test]
async fn mappings_are_stored_in_the_reference_layout() {
    let env = Env::new("pl-layout");
    let app = env.start().await;
    env.publish(&[
        meeting_created("int-l", "ext-l"),
        user_joined("int-l", "w_l", "user-l"),
    ])
    .await;
    let mut conn = env.redis().await;
    let stored = eventually(WAIT, || async {
        let mut c = env.redis().await;
        c.scard::<_, usize>(env.key("proc:userMaps")).await.unwrap() == 1
    })
    .await;
    assert!(stored);
    let ids: Vec<String> = conn.smembers(env.key("proc:mappings")).await.unwrap();
    let meeting: std::collections::HashMap<String, String> = conn
        .hgetall(format!("{}:{}", env.key("proc:mapping"), ids[0]))
        .await
        .unwrap();
    assert_eq!(meeting["internalMeetingID"], "int-l");
    assert_eq!(meeting["externalMeetingID"], "ext-l");
    assert!(meeting["lastActivity"].parse::<u64>().is_ok());
    let ids: Vec<String> = conn.smembers(env.key("proc:userMaps")).await.unwrap();
    let user: std::collections::HashMap<String, String> = conn
        .hgetall(format!("{}:{}", env.key("proc:userMap"), ids[0]))
        .await
        .unwrap();
    assert_eq!(user["internalUserID"], "w_l");
    assert_eq!(user["externalUserID"], "user-l");
    assert_eq!(user["meetingId"], "int-l");
    let record: Value = serde_json::from_str(&user["user"]).unwrap();
    assert_eq!(record["external-user-id"], "user-l");
    app.stop().await;
}

#[tokio::test]
async fn redis_connections_killed_mid_stream_lose_nothing_queued() {
    let redis = PrivateRedis::start();
    let env = Env::on("pl-redis-kill", &redis.url());
    let rx = Receiver::with(|_, _| Reply::ok().delayed(Duration::from_millis(3))).await;
    let app = env.start().await;
    app.create_hook(&rx.url("/q"), "").await;
    let messages: Vec<String> = (0..300)
        .map(|i| chat("int-q", "w_1", &format!("m{i}")))
        .collect();
    env.publish(&messages).await;
    // Everything is queued once the stream holds what was not delivered yet.
    let queued = eventually(WAIT, || async {
        let mut c = env.redis().await;
        let len: usize = c
            .xlen(env.key(&format!("rs:queue:{}", hook_of(&app).await)))
            .await
            .unwrap_or(0);
        len + rx.received_on("/q").len() >= 300
    })
    .await;
    assert!(queued);
    // Kill the service's command connection again and again while it delivers.
    for _ in 0..5 {
        let mut c = env.redis().await;
        let _: Result<i64, _> = redis::cmd("CLIENT")
            .arg(&["KILL", "TYPE", "normal", "SKIPME", "yes"])
            .query_async(&mut c)
            .await;
        // Deliberate: spreads the kills over the delivery (no condition to wait for).
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let all = eventually(Duration::from_secs(30), || async {
        let mut seen: Vec<String> = texts(&rx.events_on("/q"));
        seen.dedup();
        seen.len() >= 300
    })
    .await;
    assert!(all, "got {} of 300", rx.events_on("/q").len());
    // In order, none missing (a killed acknowledgement may repeat an event, never skip one).
    let mut seen: Vec<String> = Vec::new();
    for t in texts(&rx.events_on("/q")) {
        if !seen.contains(&t) {
            seen.push(t);
        }
    }
    assert_eq!(seen, (0..300).map(|i| format!("m{i}")).collect::<Vec<_>>());
    app.stop().await;
}

async fn hook_of(app: &TestApp) -> String {
    let (_, list) = app.api("list", "").await;
    hook_ids(&list).remove(0)
}

#[tokio::test]
async fn the_subscription_check_loses_nothing() {
    // The subscriber PINGs its connection now and then; nothing may be lost around a PING.
    let env = Env::new("pl-ping");
    let (tx, mut rx) = bbb_webhooks::input::intake(1 << 20);
    let readiness = bbb_webhooks::health::Readiness::default();
    let metrics = bbb_webhooks::metrics::Metrics::new(false);
    let stop = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(bbb_webhooks::input::run(
        redis::Client::open(REDIS_URL).unwrap(),
        vec![env.channel.clone()],
        tx,
        readiness.clone(),
        metrics.clone(),
        stop.clone(),
        Duration::from_millis(20),
    ));
    assert!(readiness.wait_for(WAIT, |h| h.subscribed).await);
    let mut conn = env.redis().await;
    for i in 0..300 {
        let _: i64 = conn.publish(&env.channel, format!("m{i}")).await.unwrap();
        // Deliberate: spreads the messages over many PINGs (one every 20 ms).
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let mut got = Vec::new();
    while got.len() < 300 {
        let mut batch = Vec::new();
        let n = tokio::time::timeout(WAIT, rx.recv_many(&mut batch, 300))
            .await
            .expect("all messages arrive");
        assert!(n > 0, "intake open");
        got.extend(
            batch
                .into_iter()
                .map(|m| String::from_utf8(m.payload).unwrap()),
        );
    }
    assert_eq!(
        rx.held_bytes(),
        0,
        "taken messages no longer count against the bound"
    );
    assert_eq!(got, (0..300).map(|i| format!("m{i}")).collect::<Vec<_>>());
    assert!(
        !metrics
            .render()
            .contains("bbb_webhooks_redis_reconnects_total{connection=\"subscriber\"}")
    );
    stop.cancel();
    task.await.unwrap();
}

/// `meeting_created` with metadata, as an LMS creates its meetings.
fn meeting_created_with_metadata(internal: &str, external: &str, metadata: &Value) -> String {
    let mut m: Value = serde_json::from_str(&meeting_created(internal, external)).unwrap();
    m["core"]["body"]["props"]["metadataProp"]["metadata"] = metadata.clone();
    m.to_string()
}

#[tokio::test]
async fn meeting_metadata_rides_on_every_event_when_asked_even_after_a_restart() {
    let metadata = json!({"bbb-origin": "Moodle", "course": "bio-101"});
    let env = Env::new("pl-meta").with("hooks.includeMeetingMetadata", json!(true));
    let rx = Receiver::start().await;
    let app = env.start().await;
    app.create_hook(&rx.url("/m"), "&meetingID=ext-meta").await;
    env.publish(&[
        meeting_created_with_metadata("int-meta", "ext-meta", &metadata),
        user_joined("int-meta", "w_m", "user-m"),
    ])
    .await;
    rx.wait_for("/m", 2, WAIT).await;
    app.stop().await;

    // A new process knows the metadata from Redis alone.
    let app = env.start().await;
    env.publish(&[
        chat("int-meta", "w_m", "hello"),
        meeting_destroyed("int-meta"),
    ])
    .await;
    rx.wait_for("/m", 5, WAIT).await;
    let events = rx.events_on("/m");
    assert_eq!(
        ids(&events),
        [
            "meeting-created",
            "user-joined",
            "chat-group-message-sent",
            "user-left",
            "meeting-ended"
        ]
    );
    for e in &events {
        assert_eq!(
            e["data"]["attributes"]["meeting"]["metadata"], metadata,
            "{e}"
        );
    }
    // Right after the ids, as in meeting-created.
    let body = rx.received_on("/m")[2].field("event").unwrap();
    let want = format!(
        r#""meeting":{{"internal-meeting-id":"int-meta","external-meeting-id":"ext-meta","metadata":{metadata}}}"#
    );
    assert!(body.contains(&want), "{body}");
    app.stop().await;
}

#[tokio::test]
async fn without_the_setting_events_carry_no_meeting_metadata() {
    let env = Env::new("pl-nometa");
    let rx = Receiver::start().await;
    let app = env.start().await;
    app.create_hook(&rx.url("/n"), "").await;
    env.publish(&[
        meeting_created_with_metadata("int-nm", "ext-nm", &json!({"course": "x"})),
        chat("int-nm", "w_n", "hi"),
    ])
    .await;
    let got = rx.wait_for("/n", 2, WAIT).await;
    let body = got[1].field("event").unwrap();
    let event = &serde_json::from_str::<Vec<Value>>(&body).unwrap()[0];
    let want = json!({"internal-meeting-id": "int-nm", "external-meeting-id": "ext-nm"});
    assert_eq!(event["data"]["attributes"]["meeting"], want, "{body}");
    // And the metadata is stored all the same, for when the operator turns it on.
    let mut conn = env.redis().await;
    let ids: Vec<String> = conn.smembers(env.key("proc:mappings")).await.unwrap();
    let stored: Option<String> = conn
        .hget(
            format!("{}:{}", env.key("proc:mapping"), ids[0]),
            "meetingMetadata",
        )
        .await
        .unwrap();
    assert_eq!(stored.as_deref(), Some(r#"{"course":"x"}"#));
    app.stop().await;
}
