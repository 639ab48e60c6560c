//! What operators watch: the metrics endpoint, the logs, the shutdown.

use std::time::Duration;

use redis::AsyncCommands;
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn metrics_have_the_reference_names_and_move_with_traffic() {
    let env = Env::new("ops-metrics")
        .with("prometheus.enabled", json!(true))
        .with("prometheus.port", json!(0));
    let rx = Receiver::with(|path, n| {
        if path == "/fail" && n == 0 {
            Reply::status(500)
        } else {
            Reply::ok()
        }
    })
    .await;
    let app = env.start().await;
    let addr = app.app.metrics_addr.expect("metrics listening");
    let scrape = || async move {
        let r = reqwest::get(format!("http://{addr}/metrics"))
            .await
            .unwrap();
        assert_eq!(
            r.headers()["content-type"],
            "text/plain; version=0.0.4; charset=utf-8"
        );
        r.text().await.unwrap()
    };
    let ok_url = rx.url("/ok");
    app.create_hook(&ok_url, "").await;
    app.create_hook(&rx.url("/fail"), "").await;
    env.publish(&[
        meeting_created("int-m", "ext-m"),
        user_joined("int-m", "w_1", "u1"),
        "garbage".to_string(),
    ])
    .await;
    rx.wait_for("/ok", 2, WAIT).await;
    rx.wait_for("/fail", 3, WAIT).await;
    // Gauges that are computed at scrape time, counters that moved.
    let m = scrape().await;
    for line in [
        format!("bbb_webhooks_out_hooks_processed_events{{callbackURL=\"{ok_url}\",eventId=\"meeting-created\"}} 1"),
        format!("bbb_webhooks_out_hooks_processed_events{{callbackURL=\"{ok_url}\",eventId=\"user-joined\"}} 1"),
        format!("bbb_webhooks_out_hooks_registered_hooks{{callbackURL=\"{ok_url}\",enabled=\"true\",getRaw=\"false\",permanent=\"false\"}} 1"),
        "bbb_webhooks_out_hooks_api_requests{messageKey=\"undefined\",method=\"GET\",path=\"/bigbluebutton/api/hooks/create\",returncode=\"SUCCESS\",statusCode=\"200\"} 2".to_string(),
        "bbb_webhooks_module_status{module=\"../in/redis/index.js\",moduleType=\"in\"} 1".to_string(),
        "bbb_webhooks_meeting_mappings 1".to_string(),
        "bbb_webhooks_user_mappings 1".to_string(),
        "bbb_webhooks_messages_received_total 3".to_string(),
        "bbb_webhooks_events_mapped_total{event=\"user-joined\"} 1".to_string(),
        "bbb_webhooks_messages_malformed_total{reason=\"invalid\"} 1".to_string(),
        "bbb_webhooks_event_process_failures 1".to_string(),
        "bbb_webhooks_delivery_retries_total 1".to_string(),
    ] {
        assert!(m.contains(&line), "missing {line}\n{m}");
    }
    assert!(
        m.contains("bbb_webhooks_out_hooks_hook_failures{callbackURL=\"")
            && m.contains("reason=\"500\""),
        "{m}"
    );
    assert!(
        m.contains("bbb_webhooks_delivery_latency_seconds_count 4"),
        "{m}"
    );
    assert!(m.contains("# TYPE bbb_webhooks_queue_depth gauge"), "{m}");
    // Only the configured path answers, as the reference's metrics server.
    let r = reqwest::get(format!("http://{addr}/metrics?x=1"))
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = reqwest::get(format!("http://{addr}/other")).await.unwrap();
    assert_eq!(r.status(), 404);
    app.stop().await;
}

/// Runs the binary with debug logs through a create, deliveries and a failing hook; returns
/// everything it printed and the checksums that travelled.
async fn logs_of_a_session(env: &Env, rx: &Receiver) -> (String, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = env.config_file(dir.path(), port);
    let service = Service::spawn(
        &config,
        port,
        &[("LOG_LEVEL", "trace"), ("LOG_FORMAT", "json")],
        true,
    );
    service.wait_ready().await;
    let base = service.base.clone();
    let mut checksums = Vec::new();
    for path in ["/logs-ok", "/logs-fail"] {
        let query = format!("callbackURL={}", encode(&rx.url(path)));
        let c = bbb_webhooks::api::checksum::sign(
            "hooks/create",
            &query,
            SECRET,
            bbb_webhooks::config::ChecksumAlgorithm::Sha1,
        );
        checksums.push(c.clone());
        reqwest::get(format!(
            "{base}/bigbluebutton/api/hooks/create?{query}&checksum={c}"
        ))
        .await
        .unwrap();
    }
    // A wrong checksum too.
    reqwest::get(format!(
        "{base}/bigbluebutton/api/hooks/list?checksum={}",
        "ab".repeat(20)
    ))
    .await
    .unwrap();
    env.publish(&[
        meeting_created("int-log", "ext-log"),
        chat("int-log", "w_1", "hello"),
    ])
    .await;
    rx.wait_for("/logs-ok", 2, WAIT).await;
    rx.wait_for("/logs-fail", 2, WAIT).await;
    for r in rx.received() {
        if let Some((_, c)) = r.uri.split_once("checksum=") {
            checksums.push(c.to_string());
        }
    }
    let (_, out) = service.stop();
    (out, checksums)
}

#[tokio::test]
async fn no_log_line_carries_the_secret_or_a_checksum() {
    let rx = Receiver::with(|path, _| {
        if path == "/logs-fail" {
            Reply::status(503)
        } else {
            Reply::ok()
        }
    })
    .await;
    for bearer in [false, true] {
        let env = Env::new(if bearer {
            "ops-logs-bearer"
        } else {
            "ops-logs"
        })
        .with("bbb.auth2_0", json!(bearer))
        .with("hooks.retryIntervals", json!([50]))
        .with("hooks.removeFailedHooks", json!(false));
        let (logs, checksums) = logs_of_a_session(&env, &rx).await;
        assert!(logs.lines().count() > 10, "there are logs: {logs}");
        assert!(
            logs.lines().all(|l| l.starts_with('{')),
            "JSON lines: {logs}"
        );
        assert!(
            logs.contains("callback failed"),
            "failures are logged: {logs}"
        );
        assert!(
            !logs.contains(SECRET),
            "the secret leaked (bearer: {bearer})"
        );
        for c in &checksums {
            assert!(!logs.contains(c.as_str()), "a checksum leaked: {c}");
        }
    }
}

#[tokio::test]
async fn sigterm_stops_intake_and_leaves_the_rest_queued() {
    let env = Env::new("ops-sigterm");
    let rx = Receiver::with(|_, _| Reply::ok().delayed(Duration::from_millis(20))).await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = env.config_file(dir.path(), port);
    let service = Service::start(&config, port).await;
    let hook = service.create_hook(&rx.url("/t")).await;
    let messages: Vec<String> = (0..300)
        .map(|i| chat("int-t", "w_1", &format!("m{i:03}")))
        .collect();
    env.publish(&messages).await;
    rx.wait_for("/t", 10, WAIT).await;

    let stopping = std::time::Instant::now();
    let (status, _) = service.stop();
    assert!(status.success(), "a clean exit");
    assert!(
        stopping.elapsed() < Duration::from_secs(8),
        "within the grace period"
    );
    let mut conn = env.redis().await;
    let left: usize = conn
        .xlen(env.key(&format!("rs:queue:{hook}")))
        .await
        .unwrap();
    let delivered = rx.received_on("/t").len();
    assert!(
        left > 0 && delivered < 300,
        "the rest stays queued ({delivered} delivered, {left} queued)"
    );

    let service = Service::start(&config, port).await;
    let all = eventually(Duration::from_secs(30), || async {
        let mut seen: Vec<String> = rx
            .events_on("/t")
            .iter()
            .map(|e| e["data"]["attributes"]["chat-message"]["message"].to_string())
            .collect();
        seen.sort();
        seen.dedup();
        seen.len() == 300
    })
    .await;
    assert!(all, "the next start delivers the rest");
    service.stop();
}

#[tokio::test]
async fn a_destroyed_hook_leaves_no_series_behind() {
    let env = Env::new("ops-forget")
        .with("prometheus.enabled", json!(true))
        .with("prometheus.port", json!(0));
    let rx = Receiver::with(|path, n| {
        if path == "/gone" && n == 0 {
            Reply::status(500)
        } else {
            Reply::ok()
        }
    })
    .await;
    let app = env.start().await;
    let addr = app.app.metrics_addr.expect("metrics listening");
    let (gone_url, kept_url) = (rx.url("/gone"), rx.url("/kept"));
    let gone = app.create_hook(&gone_url, "").await;
    app.create_hook(&kept_url, "").await;
    env.publish(&[meeting_created("int-f", "ext-f")]).await;
    rx.wait_for("/gone", 2, WAIT).await;
    rx.wait_for("/kept", 1, WAIT).await;
    // The destroyed hook had a series in each per-URL family: a failure, a delivery, the gauge.
    let series = |m: &str, url: &str| {
        m.lines()
            .filter(|l| l.contains(&format!("callbackURL=\"{url}\"")))
            .map(|l| l.split('{').next().unwrap_or("").to_string())
            .collect::<std::collections::BTreeSet<String>>()
    };
    let families = [
        "bbb_webhooks_out_hooks_hook_failures",
        "bbb_webhooks_out_hooks_processed_events",
        "bbb_webhooks_out_hooks_registered_hooks",
    ]
    .map(String::from);
    let has_all = eventually(WAIT, || async {
        series(&scrape(addr).await, &gone_url) == families.clone().into()
    })
    .await;
    assert!(has_all, "{}", scrape(addr).await);

    let (_, body) = app.api("destroy", &format!("hookID={gone}")).await;
    assert!(body.contains("<removed>true</removed>"), "{body}");
    // The pool deletes the queue and forgets the series once the worker has stopped.
    let forgotten = eventually(WAIT, || async {
        series(&scrape(addr).await, &gone_url).is_empty()
    })
    .await;
    let m = scrape(addr).await;
    assert!(forgotten, "{m}");
    assert!(
        !m.contains(&gone),
        "nothing names the hook's id either: {m}"
    );
    assert_eq!(
        series(&m, &kept_url).len(),
        2,
        "the other hook keeps its: {m}"
    );
    app.stop().await;
}
