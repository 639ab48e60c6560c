//! Crash-only supervision: a hook worker that panics is started again and resumes its queue; a
//! critical task that dies takes readiness down and the service out, with a non-zero exit.
//! The panics are injected with the `fault-injection` feature (src/fault.rs), which the README's
//! test command enables.

#![cfg(feature = "fault-injection")]

use std::collections::HashSet;
use std::time::Duration;

use bbb_webhooks::app::AppError;

use crate::helpers::*;

fn text(e: &serde_json::Value) -> String {
    e["data"]["attributes"]["chat-message"]["message"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

/// The texts in the order they first arrived.
fn first_seen(events: &[serde_json::Value]) -> Vec<String> {
    let mut seen = HashSet::new();
    events
        .iter()
        .map(text)
        .filter(|t| seen.insert(t.clone()))
        .collect()
}

#[tokio::test]
async fn a_panicking_hook_worker_is_started_again_and_keeps_its_queue() {
    let env = Env::new("sup-worker");
    let rx = Receiver::start().await;
    let app = env.start().await;
    app.create_hook(&rx.url("/w"), "").await;
    let token = uuid::Uuid::new_v4().simple().to_string();
    let texts: Vec<String> = (0..30)
        .map(|i| match i {
            10 => format!("m{i} bbb-webhooks-fault:worker-panic-once:{token}"),
            _ => format!("m{i}"),
        })
        .collect();
    let messages: Vec<String> = texts.iter().map(|t| chat("sup-w", "w_1", t)).collect();
    env.publish(&messages).await;

    let all = eventually(WAIT, || async {
        first_seen(&rx.events_on("/w")).len() >= 30
    })
    .await;
    assert!(all, "got {:?}", first_seen(&rx.events_on("/w")));
    assert_eq!(
        first_seen(&rx.events_on("/w")),
        texts,
        "every event, in order, across the worker's restart"
    );
    let metrics = app.app.metrics.render();
    assert!(
        metrics.contains("bbb_webhooks_worker_restarts_total 1\n"),
        "one restart counted"
    );
    assert!(
        app.app.readiness.is_ready(),
        "a worker's panic is not fatal"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_dead_enqueuer_takes_readiness_down_and_stops_the_app_with_an_error() {
    let env = Env::new("sup-enqueuer");
    let app = env.start().await;
    env.publish(&[chat("sup-e", "w_1", "bbb-webhooks-fault:enqueuer-panic")])
        .await;
    let readiness = app.app.readiness.clone();
    let failed = readiness
        .wait_for(WAIT, |h| h.failed == Some("enqueuer"))
        .await;
    assert!(failed, "the failure is recorded: {:?}", readiness.get());
    assert!(!readiness.is_ready());
    let stopped = tokio::time::timeout(WAIT, app.app.wait()).await;
    assert!(
        matches!(stopped, Ok(Err(AppError::TaskFailed("enqueuer")))),
        "the app stops on its own, with the task named: {stopped:?}"
    );
}

#[tokio::test]
async fn serve_exits_non_zero_when_the_enqueuer_dies() {
    let env = Env::new("sup-serve");
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = env.config_file(dir.path(), port);
    let service = Service::spawn(&config, port, &[], true);
    service.wait_ready().await;
    env.publish(&[chat("sup-s", "w_1", "bbb-webhooks-fault:enqueuer-panic")])
        .await;
    let (status, output) = service
        .exited(WAIT)
        .await
        .expect("the service exits on its own");
    assert!(!status.success(), "a failure exit status: {status}");
    assert!(
        output.contains("enqueuer"),
        "the log names the task: {output}"
    );
}

#[tokio::test]
async fn ready_answers_503_naming_the_failed_task() {
    // Between the failure and the end of the orderly stop, /ready says why it is not ready.
    let env = Env::new("sup-ready");
    let app = env.start().await;
    let readiness = app.app.readiness.clone();
    readiness.set_failed("enqueuer");
    let (status, body) = app.get("/ready").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains(r#""failed":"enqueuer""#), "{body}");
    let _ = tokio::time::timeout(Duration::from_secs(10), app.app.shutdown()).await;
}
