//! The real binary, killed with SIGKILL in the middle of a backlog, loses nothing.

use std::time::Duration;

use redis::AsyncCommands;

use crate::helpers::*;

fn text(e: &serde_json::Value) -> String {
    e["data"]["attributes"]["chat-message"]["message"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

#[tokio::test]
async fn kill_9_with_a_backlog_loses_nothing_and_keeps_order() {
    const N: usize = 1500;
    let env = Env::new("crash");
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = env.config_file(dir.path(), port);
    let rx = Receiver::with(|_, _| Reply::ok().delayed(Duration::from_millis(2))).await;

    let service = Service::start(&config, port).await;
    let hook = service.create_hook(&rx.url("/crash")).await;
    let queue = env.key(&format!("rs:queue:{hook}"));

    let messages: Vec<String> = (0..N)
        .map(|i| chat("int-crash", "w_1", &format!("m{i:04}")))
        .collect();
    env.publish(&messages).await;
    // Wait until everything is queued and delivery is under way, with a backlog of 1,000+.
    let mut conn = env.redis().await;
    let backlog = eventually(Duration::from_secs(20), || {
        let queue = queue.clone();
        let env = env.clone();
        let delivered = rx.received_on("/crash").len();
        async move {
            let mut c = env.redis().await;
            let len: usize = c.xlen(&queue).await.unwrap_or(0);
            delivered > 20 && len >= 1000 && len + delivered >= N
        }
    })
    .await;
    assert!(backlog, "a backlog of 1,000+ queued events");
    let at_kill: usize = conn.xlen(&queue).await.unwrap();
    service.kill9();
    let before_restart = rx.received_on("/crash").len();

    let service = Service::start(&config, port).await;
    let all = eventually(Duration::from_secs(60), || async {
        let mut seen: Vec<String> = rx.events_on("/crash").iter().map(text).collect();
        seen.sort();
        seen.dedup();
        seen.len() >= N
    })
    .await;
    let events: Vec<String> = rx.events_on("/crash").iter().map(text).collect();
    assert!(all, "only {} distinct of {N} arrived", {
        let mut s = events.clone();
        s.sort();
        s.dedup();
        s.len()
    });

    let mut first_seen: Vec<String> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for t in &events {
        if seen.insert(t.clone()) {
            first_seen.push(t.clone());
        }
    }
    let want: Vec<String> = (0..N).map(|i| format!("m{i:04}")).collect();
    assert_eq!(first_seen, want, "every event, in order");
    // Delivery resumed where the acknowledgements left it: each event's repeats follow the
    // restart, and the sequence after the first delivery of each is never going backwards by
    // more than the unacknowledged window.
    let duplicates = events.len() - N;
    // A re-sent event carries the same webhook-id as before the crash, so receivers can dedupe.
    let mut ids: std::collections::HashMap<String, String> = std::collections::HashMap::new();
    for r in rx.received_on("/crash") {
        let id = r.header("webhook-id").unwrap();
        for e in r.events() {
            let previous = ids.entry(text(&e)).or_insert_with(|| id.clone());
            assert_eq!(
                *previous,
                id,
                "webhook-id of {} changed across the restart",
                text(&e)
            );
        }
    }
    eprintln!(
        "crash test: {N} events, backlog {at_kill} at kill, {before_restart} received before the restart, {duplicates} duplicate(s) after it"
    );
    assert!(
        duplicates <= 256,
        "duplicates are bounded by what was in flight: {duplicates}"
    );
    service.stop();
}
