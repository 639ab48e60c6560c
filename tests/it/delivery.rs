//! End to end: messages published on Redis → the service → real HTTP receivers on loopback.

use std::sync::Arc;
use std::time::Duration;

use bbb_webhooks::config::ChecksumAlgorithm;
use redis::AsyncCommands;
use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::helpers::*;

/// Waits until the newest entry of the hook's queue is the chat message `text` (messages go in
/// in order: everything before it went in too).
async fn queued_up_to(env: &Env, hook: &str, text: &str) -> bool {
    let queue = env.key(&format!("rs:queue:{hook}"));
    eventually(WAIT, || async {
        newest_queued_payload(env, &queue)
            .await
            .is_some_and(|p| serde_json::from_str::<Value>(&p).is_ok_and(|e| chat_text(&e) == text))
    })
    .await
}

fn chat_text(event: &Value) -> String {
    event["data"]["attributes"]["chat-message"]["message"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

#[tokio::test]
async fn the_form_body_and_checksum_a_receiver_verifies() {
    let env = Env::new("dl-body");
    let rx = Receiver::start().await;
    let app = env.start().await;
    let url = rx.url("/hook?tenant=1");
    app.create_hook(&url, "").await;
    env.publish(&[
        meeting_created("int-1", "ext 1"),
        user_joined("int-1", "w_1", "u1"),
    ])
    .await;

    let got = rx.wait_for("/hook", 2, WAIT).await;
    for r in &got {
        assert_eq!(r.method, "POST");
        let names: Vec<String> = r.form().into_iter().map(|(k, _)| k).collect();
        assert_eq!(names, ["domain", "event", "timestamp"]);
        assert_eq!(r.field("domain").unwrap(), "bbb.test.local");
        assert_eq!(
            r.header("content-type").unwrap(),
            "application/x-www-form-urlencoded;charset=UTF-8"
        );
        assert_eq!(
            r.header("user-agent").unwrap(),
            format!("bbb-webhooks/{}", bbb_webhooks::VERSION)
        );
        assert!(r.header("webhook-id").is_some() && r.header("webhook-timestamp").is_some());
        // The receiver's check: sha1(callbackURL + raw body + secret) == checksum.
        let (base, checksum) = r
            .uri
            .rsplit_once("&checksum=")
            .expect("checksum appended with &");
        assert_eq!(base, "/hook?tenant=1");
        let expected = ChecksumAlgorithm::Sha1.hex_digest(&[
            url.as_bytes(),
            r.body.as_bytes(),
            SECRET.as_bytes(),
        ]);
        assert_eq!(checksum, expected);
        let ts: u64 = r.field("timestamp").unwrap().parse().unwrap();
        assert!(ts > 1_700_000_000_000);
        assert_eq!(r.events().len(), 1, "one event per request by default");
    }
    assert_eq!(
        ids(&rx.events_on("/hook")),
        ["meeting-created", "user-joined"]
    );
    let joined = &rx.events_on("/hook")[1];
    assert_eq!(
        joined["data"]["attributes"]["meeting"]["external-meeting-id"],
        "ext 1"
    );
    assert_eq!(
        joined["data"]["attributes"]["user"]["external-user-id"],
        "u1"
    );
    assert_eq!(
        joined["data"]["event"]["ts"],
        joined["data"]["attributes"]["event"]["ts"]
    );
    app.stop().await;
}

#[tokio::test]
async fn bearer_mode_and_sha256_callbacks() {
    let env = Env::new("dl-bearer").with("bbb.auth2_0", json!(true));
    let rx = Receiver::start().await;
    let app = env.start().await;
    app.create_hook(&rx.url("/b"), "").await;
    env.publish(&[meeting_created("int-b", "ext-b")]).await;
    let got = rx.wait_for("/b", 1, WAIT).await;
    assert_eq!(got[0].uri, "/b");
    assert_eq!(
        got[0].header("authorization").unwrap(),
        format!("Bearer {SECRET}")
    );
    app.stop().await;

    let env2 = Env::new("dl-sha256").with("hooks.hookChecksumAlgorithm", json!("sha256"));
    let app = env2.start().await;
    let url = rx.url("/s");
    app.create_hook(&url, "").await;
    env2.publish(&[meeting_created("int-s", "ext-s")]).await;
    let got = rx.wait_for("/s", 1, WAIT).await;
    let checksum = got[0].uri.split("checksum=").nth(1).unwrap();
    assert_eq!(
        checksum,
        ChecksumAlgorithm::Sha256.hex_digest(&[
            url.as_bytes(),
            got[0].body.as_bytes(),
            SECRET.as_bytes()
        ])
    );
    assert!(got[0].header("authorization").is_none());
    app.stop().await;
}

#[tokio::test]
async fn order_is_kept_while_the_receiver_fails_and_retries_are_identical() {
    let env = Env::new("dl-order");
    // The first 3 attempts fail.
    let rx = Receiver::with(|_, n| {
        if n < 3 {
            Reply::status(503)
        } else {
            Reply::ok()
        }
    })
    .await;
    let app = env.start().await;
    app.create_hook(&rx.url("/o"), "").await;
    let messages: Vec<String> = (0..10)
        .map(|i| chat("int-o", "w_1", &format!("m{i}")))
        .collect();
    env.publish(&messages).await;

    let got = rx.wait_for("/o", 13, WAIT).await;
    // Attempts 1-4 carry the same event, body and webhook-id: one request, retried.
    let first = &got[0];
    for retry in &got[1..4] {
        assert_eq!(retry.body, first.body);
        assert_eq!(retry.header("webhook-id"), first.header("webhook-id"));
    }
    let delivered: Vec<String> = got[3..]
        .iter()
        .flat_map(|r| r.events())
        .map(|e| chat_text(&e))
        .collect();
    let want: Vec<String> = (0..10).map(|i| format!("m{i}")).collect();
    assert_eq!(delivered, want, "in order, once each after the retries");
    // Distinct events have distinct webhook-ids.
    let mut ids: Vec<String> = got[3..]
        .iter()
        .filter_map(|r| r.header("webhook-id"))
        .collect();
    ids.dedup();
    assert_eq!(ids.len(), 10);
    let m = app.app.metrics.render();
    assert!(
        m.contains("bbb_webhooks_out_hooks_hook_failures{callbackURL=\""),
        "{m}"
    );
    assert!(m.contains("reason=\"503\""), "{m}");
    app.stop().await;
}

#[tokio::test]
async fn a_hanging_receiver_does_not_delay_another_hook() {
    let env = Env::new("dl-hang").with("hooks.requestTimeout", json!(3000));
    let rx = Receiver::with(|path, _| {
        if path == "/slow" {
            Reply::ok().delayed(Duration::from_secs(30))
        } else {
            Reply::ok()
        }
    })
    .await;
    let app = env.start().await;
    app.create_hook(&rx.url("/slow"), "").await;
    app.create_hook(&rx.url("/fast"), "").await;
    let messages: Vec<String> = (0..50)
        .map(|i| chat("int-h", "w_1", &format!("m{i}")))
        .collect();
    let started = std::time::Instant::now();
    env.publish(&messages).await;
    rx.wait_for("/fast", 50, Duration::from_secs(2)).await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the fast hook got everything at once"
    );
    assert_eq!(
        rx.received_on("/slow").len(),
        1,
        "the slow hook has one request in flight"
    );
    app.stop().await;
}

#[tokio::test]
async fn failing_receivers_remove_normal_hooks_but_not_permanent_ones() {
    let rx = Receiver::with(|_, _| Reply::status(500)).await;
    let env = Env::new("dl-remove").with("hooks.permanentURLs", json!([{"url": rx.url("/perm")}]));
    let app = env.start().await;
    let normal = app.create_hook(&rx.url("/normal"), "").await;
    env.publish(&[chat("int-r", "w_1", "x")]).await;

    // 1 attempt + 3 retries (50, 100, 200 ms), then removal.
    rx.wait_for("/normal", 4, WAIT).await;
    let gone = eventually(WAIT, || async {
        let (_, list) = app.api("list", "").await;
        !hook_ids(&list).contains(&normal)
    })
    .await;
    assert!(gone, "the normal hook is removed");
    let mut conn = env.redis().await;
    let in_redis: bool = conn.exists(env.hook_key(&normal)).await.unwrap();
    assert!(!in_redis, "and removed from Redis");
    let queue_gone = eventually(WAIT, || async {
        let mut c = env.redis().await;
        !c.exists::<_, bool>(env.key(&format!("rs:queue:{normal}")))
            .await
            .unwrap()
    })
    .await;
    assert!(queue_gone, "and its queue deleted");
    // Deliberate: nothing may arrive during a window longer than the last retry interval.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        rx.received_on("/normal").len(),
        4,
        "no attempt after removal"
    );

    // The permanent hook keeps trying every permanentIntervalReset (300 ms here).
    let before = rx.received_on("/perm").len();
    assert!(before >= 4);
    rx.wait_for("/perm", before + 2, WAIT).await;
    let (_, list) = app.api("list", "").await;
    assert_eq!(hook_ids(&list).len(), 1);
    // The removal is counted; the removed hook's own series (its failures, the give-up among
    // them) went with it.
    let m = app.app.metrics.render();
    assert!(
        m.contains("bbb_webhooks_hooks_removed_total{reason=\"failed\"} 1"),
        "{m}"
    );
    assert!(!m.contains(&rx.url("/normal")), "{m}");
    assert!(m.contains(&rx.url("/perm")), "{m}");
    app.stop().await;
}

#[tokio::test]
async fn remove_failed_hooks_false_keeps_retrying() {
    let rx = Receiver::with(|_, _| Reply::status(500)).await;
    let env = Env::new("dl-keep").with("hooks.removeFailedHooks", json!(false));
    let app = env.start().await;
    let id = app.create_hook(&rx.url("/k"), "").await;
    env.publish(&[chat("int-k", "w_1", "x")]).await;
    rx.wait_for("/k", 6, WAIT).await;
    let (_, list) = app.api("list", "").await;
    assert_eq!(hook_ids(&list), vec![id]);
    app.stop().await;
}

#[tokio::test]
async fn redirects_307_are_followed_and_302_fail() {
    let rx = Receiver::with(|path, _| match path {
        "/r307" => Reply::redirect(307, "/final307"),
        "/r302" => Reply::redirect(302, "/final302"),
        _ => Reply::ok(),
    })
    .await;
    let env = Env::new("dl-redirect");
    let app = env.start().await;
    app.create_hook(&rx.url("/r307"), "").await;
    app.create_hook(&rx.url("/r302"), "").await;
    env.publish(&[chat("int-x", "w_1", "hello")]).await;

    let followed = rx.wait_for("/final307", 1, WAIT).await;
    let original = &rx.received_on("/r307")[0];
    assert_eq!(followed[0].method, "POST");
    assert_eq!(followed[0].body, original.body, "same method and body");
    // 302 is a failure: retried, never turned into a GET.
    rx.wait_for("/r302", 3, WAIT).await;
    assert!(rx.received_on("/final302").is_empty());
    app.stop().await;
}

#[tokio::test]
async fn gone_removes_the_hook_at_once() {
    let rx = Receiver::with(|_, _| Reply::status(410)).await;
    let env = Env::new("dl-gone");
    let app = env.start().await;
    let id = app.create_hook(&rx.url("/g"), "").await;
    env.publish(&[chat("int-g", "w_1", "a"), chat("int-g", "w_1", "b")])
        .await;
    rx.wait_for("/g", 1, WAIT).await;
    let gone = eventually(WAIT, || async {
        let (_, list) = app.api("list", "").await;
        !hook_ids(&list).contains(&id)
    })
    .await;
    assert!(gone);
    // Deliberate: the second event must not be sent during a window longer than a retry interval.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(rx.received_on("/g").len(), 1, "one request, then nothing");
    app.stop().await;
}

#[tokio::test]
async fn routing_by_scope_filter_and_raw() {
    let rx = Receiver::start().await;
    let env = Env::new("dl-routing").with("hooks.excludeEvents", json!(["user-left"]));
    let app = env.start().await;
    app.create_hook(&rx.url("/global"), "").await;
    app.create_hook(&rx.url("/m1a"), "&meetingID=ext-1").await;
    app.create_hook(&rx.url("/m1b"), "&meetingID=ext-1").await;
    app.create_hook(&rx.url("/m2"), "&meetingID=ext-2").await;
    app.create_hook(&rx.url("/joins"), "&eventID=user-joined")
        .await;
    app.create_hook(&rx.url("/raw"), "&getRaw=true&eventID=user-joined")
        .await;

    let joined = user_joined("int-1", "w_1", "u1");
    env.publish(&[
        meeting_created("int-1", "ext-1"),
        joined.clone(),
        msg(
            "UserLeftMeetingEvtMsg",
            "int-1",
            "w_1",
            json!({"intId": "w_1"}),
        ),
        meeting_created("int-2", "ext-2"),
    ])
    .await;
    // Each hook has its own worker: wait for every one of them.
    rx.wait_for("/global", 3, WAIT).await;
    rx.wait_for("/m1a", 2, WAIT).await;
    rx.wait_for("/m1b", 2, WAIT).await;
    rx.wait_for("/m2", 1, WAIT).await;
    rx.wait_for("/joins", 1, WAIT).await;
    // In order within each meeting (the two meetings travel in parallel lanes).
    let of_meeting = |internal: &str| {
        let events: Vec<Value> = rx
            .events_on("/global")
            .into_iter()
            .filter(|e| e["data"]["attributes"]["meeting"]["internal-meeting-id"] == internal)
            .collect();
        ids(&events)
    };
    assert_eq!(of_meeting("int-1"), ["meeting-created", "user-joined"]);
    assert_eq!(of_meeting("int-2"), ["meeting-created"]);
    assert_eq!(rx.events_on("/global").len(), 3);
    // Every hook scoped to the meeting gets its events (the reference served only one).
    assert_eq!(
        ids(&rx.events_on("/m1a")),
        ["meeting-created", "user-joined"]
    );
    assert_eq!(
        ids(&rx.events_on("/m1b")),
        ["meeting-created", "user-joined"]
    );
    assert_eq!(ids(&rx.events_on("/m2")), ["meeting-created"]);
    assert_eq!(ids(&rx.events_on("/joins")), ["user-joined"]);
    // Raw hooks get the message exactly as published, filtered by the mapped id.
    let raw = rx.wait_for("/raw", 1, WAIT).await;
    assert_eq!(raw[0].field("event").unwrap(), format!("[{joined}]"));
    // Deliberate: no other message may reach the raw hook during a short window.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(rx.received_on("/raw").len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn a_backlog_travels_in_batches_with_multi_event() {
    // The receiver holds the first request until the test opens the gate.
    let gate = Arc::new(Notify::new());
    let rx = receiver_holding_first(&gate).await;
    // The held request must not time out (and be retried) while the test fills the queue.
    let env = Env::new("dl-multi")
        .with("hooks.multiEvent", json!(4))
        .with("hooks.requestTimeout", json!(WAIT.as_millis() as u64));
    let app = env.start().await;
    let id = app.create_hook(&rx.url("/m"), "").await;
    let messages: Vec<String> = (0..9)
        .map(|i| chat("int-m", "w_1", &format!("m{i}")))
        .collect();
    env.publish(&messages[..1]).await;
    // The first event travels alone; the rest piles up behind it.
    rx.wait_for("/m", 1, WAIT).await;
    env.publish(&messages[1..]).await;
    assert!(queued_up_to(&env, &id, "m8").await, "the backlog is queued");
    gate.notify_one();
    let delivered = eventually(WAIT, || async { rx.events_on("/m").len() >= 9 }).await;
    assert!(delivered);
    let sizes: Vec<usize> = rx
        .received_on("/m")
        .iter()
        .map(|r| r.events().len())
        .collect();
    assert_eq!(
        sizes,
        [1, 4, 4],
        "the backlog came in batches of multiEvent"
    );
    let texts: Vec<String> = rx.events_on("/m").iter().map(chat_text).collect();
    assert_eq!(texts, (0..9).map(|i| format!("m{i}")).collect::<Vec<_>>());
    app.stop().await;
}

#[tokio::test]
async fn standard_webhooks_signature_when_configured() {
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let rx = Receiver::start().await;
    let env = Env::new("dl-sign").with("hooks.signingSecret", json!(secret));
    let app = env.start().await;
    app.create_hook(&rx.url("/sig"), "").await;
    env.publish(&[chat("int-s", "w_1", "signed")]).await;
    let r = &rx.wait_for("/sig", 1, WAIT).await[0];
    let ok = bbb_webhooks::delivery::request::verify_signature(
        secret,
        &r.header("webhook-id").unwrap(),
        &r.header("webhook-timestamp").unwrap(),
        &r.body,
        &r.header("webhook-signature").unwrap(),
    );
    assert!(ok);
    app.stop().await;
}

#[tokio::test]
async fn a_full_queue_drops_the_oldest_with_a_warning_metric() {
    // The receiver holds the first request: everything else piles up. The worker keeps a window
    // of up to 1,024 entries in memory (those are delivered); beyond it the stream is capped.
    const N: usize = 1500;
    let gate = Arc::new(Notify::new());
    let rx = receiver_holding_first(&gate).await;
    let env = Env::new("dl-full")
        .with("hooks.queueSize", json!(50))
        .with("hooks.multiEvent", json!(100))
        .with("hooks.requestTimeout", json!(WAIT.as_millis() as u64));
    let app = env.start().await;
    let id = app.create_hook(&rx.url("/full"), "").await;
    env.publish(&[chat("int-f", "w_1", "m0000")]).await;
    rx.wait_for("/full", 1, WAIT).await;
    let messages: Vec<String> = (1..=N)
        .map(|i| chat("int-f", "w_1", &format!("m{i:04}")))
        .collect();
    env.publish(&messages).await;
    let newest = format!("m{N:04}");
    assert!(
        queued_up_to(&env, &id, &newest).await,
        "all of them went in"
    );
    gate.notify_one();
    let delivered = eventually(WAIT, || async {
        rx.events_on("/full").iter().any(|e| chat_text(e) == newest)
    })
    .await;
    assert!(delivered);
    let texts: Vec<String> = rx.events_on("/full").iter().map(chat_text).collect();
    assert_eq!(texts.first().map(String::as_str), Some("m0000"));
    let want_tail: Vec<String> = (N - 49..=N).map(|i| format!("m{i:04}")).collect();
    assert_eq!(
        &texts[texts.len() - 50..],
        want_tail,
        "the newest 50 survive"
    );
    assert!(texts.len() < N + 1, "some were dropped: {}", texts.len());
    assert!(
        texts.windows(2).all(|w| w[0] < w[1]),
        "in order, no repeats"
    );
    let m = app.app.metrics.render();
    let series = format!("bbb_webhooks_queue_dropped_total{{hook=\"{id}\"}} ");
    let dropped: usize = m
        .lines()
        .find_map(|l| l.strip_prefix(&series))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {series} in {m}"));
    // Entries the stream trimmed: every lost event among them, and at most all but the 50 kept
    // (those the worker already held are delivered all the same).
    assert!(
        dropped >= N + 1 - texts.len(),
        "{dropped} counts every loss"
    );
    assert!(dropped <= N + 1 - 50, "{dropped} counts nothing twice");
    let (_, ready) = app.get("/ready").await;
    assert!(
        ready.contains(r#""droppedEvents":"#),
        "a hint in /ready: {ready}"
    );
    app.stop().await;
}

#[tokio::test]
async fn the_network_guard_refuses_denied_targets() {
    let rx = Receiver::start().await;
    let env = Env::new("dl-guard")
        .with("hooks.denyNetworks", json!(["127.0.0.0/8", "::1/128"]))
        .with("hooks.removeFailedHooks", json!(false));
    let app = env.start().await;
    app.create_hook(&rx.url("/ip"), "").await;
    app.create_hook(&format!("http://localhost:{}/name", rx.addr.port()), "")
        .await;
    env.publish(&[chat("int-g", "w_1", "x")]).await;
    // Refused both for an address in the URL and for a name that resolves into the block.
    let refused = eventually(WAIT, || async {
        let m = app.app.metrics.render();
        m.matches("reason=\"address not allowed\"").count() >= 2
    })
    .await;
    let m = app.app.metrics.render();
    assert!(refused, "{m}");
    assert!(
        rx.received().is_empty(),
        "nothing reached the denied address"
    );
    app.stop().await;
}

#[tokio::test]
async fn an_endless_answer_is_read_no_further_than_the_cap() {
    // The receiver answers 200 and then streams a body that never ends; the attempt bound is far
    // away, so only the cap on what is read can end the attempt early.
    let rx = RawServer::start(RawAnswer::Endless {
        cap: 512 * 1024 * 1024,
    })
    .await;
    let env = Env::new("dl-endless").with("hooks.requestTimeout", json!(60_000));
    let app = env.start().await;
    app.create_hook(&rx.url("/endless"), "").await;
    env.publish(&[
        chat("int-e", "w_1", "first"),
        chat("int-e", "w_1", "second"),
    ])
    .await;
    let started = std::time::Instant::now();
    // One lane, in order: the second request only leaves once the first counts as delivered.
    let heads = rx.wait_for(2, WAIT).await;
    assert!(
        heads.iter().all(|h| h.starts_with("POST /endless")),
        "{heads:?}"
    );
    let done = format!(
        "bbb_webhooks_out_hooks_processed_events{{callbackURL=\"{}\",eventId=\"chat-group-message-sent\"}} 2",
        rx.url("/endless")
    );
    let delivered = eventually(WAIT, || async { app.app.metrics.render().contains(&done) }).await;
    assert!(delivered, "{}", app.app.metrics.render());
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "both delivered well before the attempt bound: {:?}",
        started.elapsed()
    );
    // What the receiver got through before each connection was dropped: the cap, plus what
    // the socket buffers on the way hold (on loopback, a few MB that the kernel holds, not the
    // service); nowhere near the 512 MB it would have streamed to a client that reads it all.
    let per_request = rx.written() / heads.len() as u64;
    assert!(
        per_request < 8 * 1024 * 1024,
        "the receiver wrote {per_request} bytes per request"
    );
    app.stop().await;
}

#[tokio::test]
async fn the_environment_proxy_is_ignored_so_the_guard_sees_every_target() {
    // A stand-in proxy that answers 200 to everything: a client that followed HTTP_PROXY would
    // hand it the callbacks (and the guard would only have checked the proxy's address).
    let proxy = RawServer::start(RawAnswer::Ok).await;
    let rx = Receiver::start().await;
    let metrics_port = free_port();
    let env = Env::new("dl-env-proxy")
        .with("hooks.denyNetworks", json!(["127.0.0.0/8", "::1/128"]))
        .with("hooks.removeFailedHooks", json!(false))
        .with("prometheus.enabled", json!(true))
        .with("prometheus.port", json!(metrics_port));
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = env.config_file(dir.path(), port);
    let proxy_url = proxy.url("");
    let service = Service::spawn(
        &config,
        port,
        &[
            ("HTTP_PROXY", &proxy_url),
            ("http_proxy", &proxy_url),
            ("ALL_PROXY", &proxy_url),
            ("all_proxy", &proxy_url),
            ("NO_PROXY", ""),
            ("no_proxy", ""),
        ],
        false,
    );
    service.wait_ready().await;
    // Denied by name (the resolver's check) and by address (the URL's own).
    service
        .create_hook(&format!("http://localhost:{}/name", rx.addr.port()))
        .await;
    service.create_hook(&rx.url("/ip")).await;
    env.publish(&[chat("int-p", "w_1", "x")]).await;
    let scrape = || async move {
        match reqwest::get(format!("http://127.0.0.1:{metrics_port}/metrics")).await {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    };
    let refused = eventually(WAIT, || async {
        scrape()
            .await
            .matches("reason=\"address not allowed\"")
            .count()
            >= 2
    })
    .await;
    assert!(refused, "{}", scrape().await);
    assert!(
        proxy.heads().is_empty(),
        "the proxy got {:?}",
        proxy.heads()
    );
    assert!(
        rx.received().is_empty(),
        "nothing reached the denied address"
    );
    let (status, _) = service.stop();
    assert!(status.success());
}

#[tokio::test]
async fn a_configured_proxy_carries_every_callback() {
    let proxy = RawServer::start(RawAnswer::Ok).await;
    let rx = Receiver::start().await;
    // A guard with a proxy needs the operator's word that the proxy enforces it; the service
    // still refuses a URL whose host is a denied address.
    let env = Env::new("dl-proxy")
        .with("hooks.proxy", json!(proxy.url("")))
        .with("hooks.denyNetworks", json!(["127.0.0.2/32"]))
        .with("hooks.proxyEnforcesPolicy", json!(true))
        .with("hooks.removeFailedHooks", json!(false));
    let app = env.start().await;
    let url = rx.url("/via?x=1");
    app.create_hook(&url, "").await;
    let denied = format!("http://127.0.0.2:{}/denied", rx.addr.port());
    app.create_hook(&denied, "").await;
    env.publish(&[chat("int-v", "w_1", "x")]).await;
    let heads = proxy.wait_for(1, WAIT).await;
    // Plain http through a proxy: the request line carries the absolute URL.
    let line = heads[0].lines().next().unwrap_or("");
    assert!(
        line.starts_with(&format!("POST {url}&checksum=")) && line.ends_with(" HTTP/1.1"),
        "{line}"
    );
    let done = format!(
        "bbb_webhooks_out_hooks_processed_events{{callbackURL=\"{url}\",eventId=\"chat-group-message-sent\"}} 1"
    );
    let delivered = eventually(WAIT, || async { app.app.metrics.render().contains(&done) }).await;
    assert!(delivered, "{}", app.app.metrics.render());
    let refused = format!(
        "callbackURL=\"{denied}\",eventId=\"chat-group-message-sent\",reason=\"address not allowed\""
    );
    let refused = eventually(WAIT, || async {
        app.app.metrics.render().contains(&refused)
    })
    .await;
    assert!(refused, "{}", app.app.metrics.render());
    assert_eq!(
        proxy.heads().len(),
        1,
        "only the permitted callback went out"
    );
    assert!(rx.received().is_empty(), "nothing went around the proxy");
    app.stop().await;
}
