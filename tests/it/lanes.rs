//! Per-meeting lanes: the events of one meeting arrive in order, meetings travel in parallel,
//! failures are the hook's, batches are per hook, and a crash loses nothing.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::AsyncCommands;
use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::helpers::*;

fn text(e: &Value) -> String {
    e["data"]["attributes"]["chat-message"]["message"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

/// `prefix-<n>` texts of `events`, in arrival order, first arrival only.
fn first_seen(events: &[Value], prefix: &str) -> Vec<String> {
    let mut seen = HashSet::new();
    events
        .iter()
        .map(text)
        .filter(|t| t.starts_with(prefix) && seen.insert(t.clone()))
        .collect()
}

fn numbered(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i:03}")).collect()
}

#[tokio::test]
async fn a_slow_meeting_does_not_hold_up_a_fast_one() {
    // The receiver takes 300 ms for the slow meeting's events and answers the other at once.
    let rx = Receiver::with_request(|r, _| {
        if r.body.contains("slow-") {
            Reply::ok().delayed(Duration::from_millis(300))
        } else {
            Reply::ok()
        }
    })
    .await;
    let env = Env::new("ln-slow");
    let app = env.start().await;
    app.create_hook(&rx.url("/l"), "").await;
    let mut messages = Vec::new();
    for i in 0..10 {
        messages.push(chat("int-slow", "w_1", &format!("slow-{i:03}")));
        messages.push(chat("int-fast", "w_2", &format!("fast-{i:03}")));
    }
    env.publish(&messages).await;

    let fast_done = eventually(WAIT, || async {
        first_seen(&rx.events_on("/l"), "fast-").len() == 10
    })
    .await;
    assert!(fast_done, "the fast meeting's events all arrived");
    let slow_so_far = first_seen(&rx.events_on("/l"), "slow-").len();
    assert!(
        slow_so_far <= 3,
        "the fast meeting did not wait for the slow one ({slow_so_far} slow events before it finished)"
    );
    let slow_done = eventually(WAIT, || async {
        first_seen(&rx.events_on("/l"), "slow-").len() == 10
    })
    .await;
    assert!(slow_done);
    let events = rx.events_on("/l");
    assert_eq!(first_seen(&events, "fast-"), numbered("fast-", 10));
    assert_eq!(first_seen(&events, "slow-"), numbered("slow-", 10));
    assert_eq!(events.len(), 20, "nothing twice");
    app.stop().await;
}

#[tokio::test]
async fn ordering_hook_keeps_every_event_in_order() {
    let rx = Receiver::with_request(|r, _| {
        if r.body.contains("slow-") {
            Reply::ok().delayed(Duration::from_millis(50))
        } else {
            Reply::ok()
        }
    })
    .await;
    let env = Env::new("ln-hook").with("hooks.ordering", json!("hook"));
    let app = env.start().await;
    app.create_hook(&rx.url("/h"), "").await;
    let mut texts = Vec::new();
    for i in 0..8 {
        texts.push(format!("slow-{i:03}"));
        texts.push(format!("fast-{i:03}"));
    }
    let messages: Vec<String> = texts
        .iter()
        .map(|t| {
            let meeting = if t.starts_with("slow") {
                "int-s"
            } else {
                "int-f"
            };
            chat(meeting, "w_1", t)
        })
        .collect();
    env.publish(&messages).await;
    rx.wait_for("/h", 16, WAIT).await;
    let got: Vec<String> = rx.events_on("/h").iter().map(text).collect();
    assert_eq!(got, texts, "one lane: the order of publication");
    app.stop().await;
}

#[tokio::test]
async fn a_receiver_that_is_down_gets_one_request_per_retry_step() {
    // Requests that arrive before `back` get 503, the others 200: sorted exactly by arrival.
    let back: Arc<Mutex<Option<Instant>>> = Arc::default();
    let rx = Receiver::with_request({
        let back = back.clone();
        move |r, _| match *back.lock().unwrap() {
            Some(t) if r.at >= t => Reply::ok(),
            _ => Reply::status(503),
        }
    })
    .await;
    let env = Env::new("ln-down").with("hooks.retryIntervals", json!(vec![200; 20]));
    let app = env.start().await;
    app.create_hook(&rx.url("/d"), "").await;
    let mut messages = Vec::new();
    for i in 0..4 {
        for m in 0..5 {
            messages.push(chat(&format!("int-d{m}"), "w_1", &format!("d{m}-{i:03}")));
        }
    }
    env.publish(&messages).await;
    // Down for a while: a first wave (what was out before the first failure came back), then
    // one request per retry step.
    let probes = eventually(WAIT, || async { rx.received_on("/d").len() >= 6 }).await;
    assert!(probes);
    let flip = Instant::now();
    *back.lock().unwrap() = Some(flip);
    let failed: Vec<Received> = rx
        .received_on("/d")
        .into_iter()
        .filter(|r| r.at < flip)
        .collect();
    let gaps: Vec<Duration> = failed.windows(2).map(|w| w[1].at - w[0].at).collect();
    let first_step = gaps
        .iter()
        .position(|g| *g >= Duration::from_millis(150))
        .expect("a retry step");
    assert!(
        gaps[first_step..]
            .iter()
            .all(|g| *g >= Duration::from_millis(150)),
        "after the first wave, one request per 200 ms step: {gaps:?}"
    );
    assert!(
        first_step < 5,
        "the first wave is at most one request per lane: {gaps:?}"
    );

    let all = eventually(WAIT, || async {
        (0..5).all(|m| first_seen(&rx.events_on("/d"), &format!("d{m}-")).len() == 4)
    })
    .await;
    assert!(all, "everything arrives once the receiver is back");
    let delivered: Vec<Value> = rx
        .received_on("/d")
        .iter()
        .filter(|r| r.at >= flip)
        .flat_map(|r| r.events())
        .collect();
    assert_eq!(
        delivered.len(),
        20,
        "each event once after the receiver is back"
    );
    for m in 0..5 {
        let prefix = format!("d{m}-");
        assert_eq!(
            first_seen(&delivered, &prefix),
            numbered(&prefix, 4),
            "meeting {m} in order"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn a_hook_with_its_own_multi_event_sends_batches_and_retries_them_whole() {
    // The first request is held until the backlog is queued; the first batch fails twice.
    let gate = Arc::new(Notify::new());
    let rx = Receiver::with({
        let gate = gate.clone();
        move |_, n| match n {
            0 => Reply::ok().held(&gate),
            1 | 2 => Reply::status(500),
            _ => Reply::ok(),
        }
    })
    .await;
    let env = Env::new("ln-batch").with("hooks.requestTimeout", json!(WAIT.as_millis() as u64));
    let app = env.start().await;
    let id = app.create_hook(&rx.url("/b"), "&multiEvent=4").await;
    let messages: Vec<String> = (0..9)
        .map(|i| chat("int-b", "w_1", &format!("b{i:03}")))
        .collect();
    env.publish(&messages[..1]).await;
    rx.wait_for("/b", 1, WAIT).await;
    env.publish(&messages[1..]).await;
    let queue = env.key(&format!("rs:queue:{id}"));
    let queued = eventually(WAIT, || async {
        let mut c = env.redis().await;
        c.xlen::<_, usize>(&queue).await.unwrap_or(0) >= 9
    })
    .await;
    assert!(queued, "the backlog is queued");
    gate.notify_one();
    let got = rx.wait_for("/b", 5, WAIT).await;
    let sizes: Vec<usize> = got.iter().map(|r| r.events().len()).collect();
    assert_eq!(
        sizes,
        [1, 4, 4, 4, 4],
        "the hook's own multiEvent, retried whole"
    );
    assert_eq!(got[1].body, got[2].body, "a retry is the same request");
    assert_eq!(got[1].body, got[3].body);
    assert_eq!(got[1].header("webhook-id"), got[3].header("webhook-id"));
    let delivered: Vec<String> = [&got[0], &got[3], &got[4]]
        .iter()
        .flat_map(|r| r.events())
        .map(|e| text(&e))
        .collect();
    assert_eq!(delivered, numbered("b", 9));
    app.stop().await;
}

#[tokio::test]
async fn multi_event_is_checked_stored_and_listed() {
    let env = Env::new("ln-param");
    let app = env.start().await;
    for bad in ["0", "101", "x", "-1", "2.5"] {
        let (_, body) = app
            .api(
                "create",
                &format!("callbackURL=http%3A%2F%2Fh%2F{bad}&multiEvent={bad}"),
            )
            .await;
        assert!(
            body.contains("<messageKey>invalidParamMultiEvent</messageKey>"),
            "{bad}: {body}"
        );
    }
    let id = app.create_hook("http://h/ok", "&multiEvent=20").await;
    let plain = app.create_hook("http://h/plain", "").await;
    let mut c = env.redis().await;
    let stored: HashMap<String, String> = c.hgetall(env.hook_key(&id)).await.unwrap();
    assert_eq!(stored.get("multiEvent").map(String::as_str), Some("20"));
    let stored: HashMap<String, String> = c.hgetall(env.hook_key(&plain)).await.unwrap();
    assert!(!stored.contains_key("multiEvent"));
    let (_, list) = app.api("list", "").await;
    assert!(
        list.contains("<rawData>false</rawData><multiEvent>20</multiEvent></hook>"),
        "{list}"
    );
    assert_eq!(list.matches("<multiEvent>").count(), 1, "{list}");
    app.stop().await;
}

#[tokio::test]
async fn kill_9_during_parallel_delivery_loses_nothing_per_meeting() {
    const MEETINGS: usize = 8;
    const EACH: usize = 150;
    let env = Env::new("ln-crash");
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = env.config_file(dir.path(), port);
    let rx = Receiver::with(|_, _| Reply::ok().delayed(Duration::from_millis(5))).await;
    let service = Service::start(&config, port).await;
    let hook = service.create_hook(&rx.url("/k")).await;
    let queue = env.key(&format!("rs:queue:{hook}"));
    let mut messages = Vec::new();
    for i in 0..EACH {
        for m in 0..MEETINGS {
            messages.push(chat(&format!("int-k{m}"), "w_1", &format!("k{m}-{i:03}")));
        }
    }
    env.publish(&messages).await;
    // Everything is queued (the last message is in the stream or delivered: the subscriber can
    // not replay what a crash loses before the write), with a backlog, and delivery under way.
    let last = format!("k{}-{:03}", MEETINGS - 1, EACH - 1);
    let backlog = eventually(Duration::from_secs(20), || {
        let queue = queue.clone();
        let env = env.clone();
        let events = rx.events_on("/k");
        let delivered_last = events.iter().any(|e| text(e) == last);
        let delivered = events.len();
        let last = last.clone();
        async move {
            let mut c = env.redis().await;
            let len: usize = c.xlen(&queue).await.unwrap_or(0);
            let queued_last = newest_queued_payload(&env, &queue)
                .await
                .is_some_and(|p| p.contains(&last));
            delivered > 50 && len > 300 && (queued_last || delivered_last)
        }
    })
    .await;
    assert!(backlog, "parallel delivery under way with a backlog");
    service.kill9();
    let service = Service::start(&config, port).await;
    let all = eventually(Duration::from_secs(60), || async {
        let events = rx.events_on("/k");
        (0..MEETINGS).all(|m| first_seen(&events, &format!("k{m}-")).len() == EACH)
    })
    .await;
    assert!(all, "every event arrived after the restart");
    let events = rx.events_on("/k");
    for m in 0..MEETINGS {
        let prefix = format!("k{m}-");
        assert_eq!(
            first_seen(&events, &prefix),
            numbered(&prefix, EACH),
            "meeting {m}: in order, no gap"
        );
    }
    // A repeat carries the webhook-id of its first delivery.
    let mut ids: HashMap<String, String> = HashMap::new();
    for r in rx.received_on("/k") {
        let id = r.header("webhook-id").unwrap();
        for e in r.events() {
            let first = ids.entry(text(&e)).or_insert_with(|| id.clone());
            assert_eq!(*first, id, "webhook-id of {} changed", text(&e));
        }
    }
    let duplicates = events.len() - MEETINGS * EACH;
    assert!(
        duplicates <= 16 * 2,
        "duplicates only of what was in flight or unacknowledged: {duplicates}"
    );
    service.stop();
}
