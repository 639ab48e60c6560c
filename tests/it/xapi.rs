//! xAPI statements through the real service, Redis and LRS stand-ins on loopback: the fixture's
//! meeting against what bbb-webhooks 3.5.0 sent, an LRS that is down for a while, `kill -9` in
//! the middle of a meeting, Basic and Bearer, per-meeting LRSes (payloads made with the `openssl`
//! command line), a payload that cannot be used, `meta_xapi-enabled=false`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::*;

const NAMESPACE: &str = "6f1c7a9e-3b52-4d0e-9a8c-2f5e1b7d4c63";
const FIXTURE: &str = "tests/fixtures/xapi-3.0-meeting";
const STATEMENTS: &str = "/xAPI/statements";
const MEETING: &str = "8043c8452ae9830aac14c517adff3839dbd9228f-1698771157700";

fn inputs() -> Vec<Value> {
    fixture_lines(&format!("{FIXTURE}/input.jsonl"))
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn messages(inputs: &[Value]) -> Vec<String> {
    inputs.iter().map(|l| l["message"].to_string()).collect()
}

/// An environment whose default LRS is `lrs` (Basic auth, as the fixture's configuration).
fn xapi_env(name: &str, lrs: &Receiver) -> Env {
    with_xapi(Env::new(name), lrs)
}

fn with_xapi(env: Env, lrs: &Receiver) -> Env {
    env.with("bbb.serverDomain", json!("localhost"))
        .with("xapi.enabled", json!(true))
        .with("xapi.uuidNamespace", json!(NAMESPACE))
        .with("xapi.lrs.endpoint", json!(lrs.url("/xapi")))
        .with("xapi.lrs.username", json!("lrs-user"))
        .with("xapi.lrs.password", json!("lrs-pass"))
}

fn remove(v: &mut Value, path: &str) {
    let parts: Vec<&str> = path.trim_start_matches("body.").split('.').collect();
    let mut node = v;
    for p in &parts[..parts.len() - 1] {
        node = &mut node[*p];
    }
    if let Value::Object(m) = node {
        m.remove(parts[parts.len() - 1]);
    }
}

/// The reference's statements (`expected-statements.jsonl`) with our two deliberate fixes
/// applied: the chat object id and the poll responder.
fn expected() -> Vec<Value> {
    let ns: uuid::Uuid = NAMESPACE.parse().unwrap();
    fixture_lines(&format!("{FIXTURE}/expected-statements.jsonl"))
        .iter()
        .map(|l| {
            let mut line: Value = serde_json::from_str(l).unwrap();
            let verb = line["body"]["verb"]["id"].as_str().unwrap().to_string();
            if verb.ends_with("/posted") {
                // The chat message's own id (input line 14).
                let fixed = uuid::Uuid::new_v5(&ns, b"1698771232706-9idm9pxf");
                line["body"]["object"]["id"] =
                    json!(format!("https://localhost/xapi/activities/{fixed}"));
            }
            if verb.ends_with("/answered") {
                line["body"]["actor"]["account"]["name"] = json!("Mary Sue");
            }
            line
        })
        .collect()
}

/// A received statement compared with an expected line, field by field, the line's volatile
/// fields aside.
fn assert_same(got: &Received, want: &Value, i: usize) {
    assert_eq!(got.method, want["method"].as_str().unwrap(), "#{i} method");
    assert_eq!(got.uri, want["path"].as_str().unwrap(), "#{i} path");
    for (name, value) in want["headers"].as_object().unwrap() {
        assert_eq!(
            got.header(name).as_deref(),
            value.as_str(),
            "#{i} header {name}"
        );
    }
    let mut g: Value = serde_json::from_str(&got.body).unwrap();
    let mut w = want["body"].clone();
    for path in want["volatile"].as_array().unwrap() {
        let path = path.as_str().unwrap();
        remove(&mut g, path);
        remove(&mut w, path);
    }
    assert_eq!(g, w, "statement #{i} (input line {})", want["input_index"]);
}

fn body(r: &Received) -> Value {
    serde_json::from_str(&r.body).unwrap_or(Value::Null)
}

/// The statements of the requests the LRS accepted (answered 2xx), in order.
fn accepted(all: &[Received], answered_ok: impl Fn(usize) -> bool) -> Vec<Received> {
    all.iter()
        .enumerate()
        .filter(|(n, _)| answered_ok(*n))
        .map(|(_, r)| r.clone())
        .collect()
}

#[tokio::test]
async fn the_fixture_meeting_matches_the_reference_statements() {
    let lrs = Receiver::start().await;
    let env = xapi_env("xapi-fixture", &lrs);
    let app = env.start().await;
    env.publish(&messages(&inputs())).await;
    let want = expected();
    let got = lrs.wait_for(STATEMENTS, want.len(), WAIT).await;
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_same(g, w, i);
    }
    // Nothing more arrives (a statement too many would be a defect too).
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(lrs.received().len(), want.len());
    let m = &app.app.metrics;
    let sent = m
        .xapi_statements_sent
        .with_label_values(&[&lrs_id(&app)])
        .get();
    assert_eq!(sent, want.len() as u64);
    app.stop().await;
}

/// The id of the only LRS the app knows (its metrics label).
fn lrs_id(app: &TestApp) -> String {
    let text = app.app.metrics.render();
    let line = text
        .lines()
        .find(|l| l.starts_with("bbb_webhooks_xapi_statements_queued_total{"))
        .expect("statements were queued");
    line.split('"').nth(1).unwrap().to_string()
}

#[tokio::test]
async fn an_lrs_down_for_a_while_gets_every_statement_once_in_order() {
    // The first 6 attempts fail (503, then the connection is cut), then the LRS is back.
    let lrs = Receiver::with(|_, n| {
        if n < 6 {
            Reply::status(503)
        } else {
            Reply::ok()
        }
    })
    .await;
    let env = xapi_env("xapi-down", &lrs);
    let app = env.start().await;
    env.publish(&messages(&inputs())).await;
    let want = expected();
    let all = lrs.wait_for(STATEMENTS, want.len() + 6, WAIT).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let all_now = lrs.received();
    assert_eq!(all_now.len(), all.len(), "nothing after the last statement");
    let ok = accepted(&all_now, |n| n >= 6);
    assert_eq!(ok.len(), want.len(), "each statement accepted once");
    for (i, (g, w)) in ok.iter().zip(&want).enumerate() {
        assert_same(g, w, i);
    }
    // While the LRS failed, the same first statement was sent again and again.
    assert!(all_now[..6].iter().all(|r| r.body == all_now[0].body));
    let id = lrs_id(&app);
    let failed = app
        .app
        .metrics
        .xapi_statements_failed
        .with_label_values(&[&id, "503"])
        .get();
    assert_eq!(failed, 6);
    app.stop().await;
}

#[tokio::test]
async fn kill_9_in_the_middle_of_a_meeting_loses_nothing_and_keeps_its_ids() {
    // The LRS is down during the first half: those statements wait in Redis through the kill.
    let up = Arc::new(AtomicBool::new(false));
    let flag = up.clone();
    let lrs = Receiver::with(move |_, _| {
        if flag.load(Ordering::SeqCst) {
            Reply::ok()
        } else {
            Reply::status(503)
        }
    })
    .await;
    let env = xapi_env("xapi-kill", &lrs);
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = env.config_file(dir.path(), port);
    let inputs = inputs();
    let (first, second) = inputs.split_at(12);

    let service = Service::start(&config, port).await;
    env.publish(&messages(first)).await;
    // Everything of the first half is queued (the LRS refused at least one attempt).
    let queued = eventually(WAIT, || async {
        let mut c = env.redis().await;
        let keys: Vec<String> = redis::AsyncCommands::keys(&mut c, env.key("rs:queue:xapi:*"))
            .await
            .unwrap_or_default();
        let mut len = 0usize;
        for k in keys {
            len += redis::AsyncCommands::xlen::<_, usize>(&mut c, k)
                .await
                .unwrap_or(0);
        }
        // Input lines 0-11 make 9 statements.
        len >= 9 && !lrs.received().is_empty()
    })
    .await;
    assert!(queued, "the first half's statements wait in Redis");
    service.kill9();
    // A request the killed process had sent may still be on its way into the stand-in: let it
    // land (and be refused) before the LRS comes back, or it would count as accepted though the
    // dead process never learnt it (a legitimate duplicate, but not what this test counts).
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Every request so far was refused; from here on the LRS takes them.
    let ok_from = lrs.received().len();
    up.store(true, Ordering::SeqCst);
    let service = Service::start(&config, port).await;
    env.publish(&messages(second)).await;
    let want = expected();
    let arrived = eventually(Duration::from_secs(30), || async {
        lrs.received().len() >= ok_from + want.len()
    })
    .await;
    let all = lrs.received();
    assert!(
        arrived,
        "only {} of {} after the restart",
        all.len() - ok_from,
        want.len()
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ok = accepted(&lrs.received(), |n| n >= ok_from);
    assert_eq!(
        ok.len(),
        want.len(),
        "every statement once, none lost, none twice"
    );
    for (i, (g, w)) in ok.iter().zip(&want).enumerate() {
        assert_same(g, w, i);
    }
    // The statements of the second half (made after the restart) carry the meeting's ids.
    let last = body(ok.last().unwrap());
    assert_eq!(
        last["context"]["registration"],
        json!("0481f1d5-d8e6-5cdf-a388-f67b98f2d9b7")
    );
    assert_eq!(
        last["context"]["extensions"]["https://w3id.org/xapi/cmi5/context/extensions/sessionid"],
        json!("ad51d65c-8f0a-5047-9581-09f4b473dcca")
    );
    // The ended meeting's state is gone from Redis.
    let mut c = env.redis().await;
    let left: bool =
        redis::AsyncCommands::exists(&mut c, env.key(&format!("rs:xapi:meeting:{MEETING}")))
            .await
            .unwrap();
    assert!(!left, "the ended meeting's xAPI state is deleted");
    service.stop();
}

/// A `MeetingCreatedEvtMsg` with `metadata`.
fn created_with(internal: &str, external: &str, metadata: Value) -> String {
    let mut m: Value = serde_json::from_str(&meeting_created(internal, external)).unwrap();
    m["core"]["body"]["props"]["metadataProp"]["metadata"] = metadata;
    m.to_string()
}

fn joined(meeting: &str, user: &str) -> String {
    user_joined(meeting, user, user)
}

#[tokio::test]
async fn bearer_tokens_and_per_meeting_lrs_payloads() {
    let default = Receiver::start().await;
    let own = Receiver::start().await;
    let env = xapi_env("xapi-auth", &default).with("xapi.lrs.token", json!("server-token"));
    let plain = json!({"lrs_endpoint": own.url("/lrs/xapi/statements"), "lrs_username": "meet", "lrs_password": "pw"})
        .to_string();
    let Some(payload) = openssl_encrypt(&plain, SECRET) else {
        return;
    };
    let app = env.start().await;
    env.publish(&[
        created_with("m-own", "ext-own", json!({"secret-lrs-payload": payload})),
        created_with("m-default", "ext-default", json!({})),
        joined("m-own", "u1"),
        joined("m-default", "u2"),
    ])
    .await;
    let d = default.wait_for(STATEMENTS, 2, WAIT).await;
    // As in 3.x: `/xapi/statements` is cut off, and `xAPI/statements` relative to `…/lrs`
    // replaces `lrs`.
    let o = own.wait_for(STATEMENTS, 2, WAIT).await;
    for r in &d {
        assert_eq!(
            r.header("authorization").as_deref(),
            Some("Bearer server-token")
        );
    }
    let basic = format!(
        "Basic {}",
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, "meet:pw")
    );
    for r in &o {
        assert_eq!(r.header("authorization"), Some(basic.clone()));
    }
    let names = |rs: &[Received]| -> Vec<String> {
        rs.iter()
            .map(|r| {
                body(r)["object"]["definition"]["name"]["en"]
                    .as_str()
                    .unwrap_or("")
                    .to_string()
            })
            .collect()
    };
    assert_eq!(names(&d), ["ext-default", "ext-default"]);
    assert_eq!(names(&o), ["ext-own", "ext-own"]);
    // The meeting's LRS (credentials included) is in Redis for after a restart.
    let mut c = env.redis().await;
    let stored: std::collections::HashMap<String, String> =
        redis::AsyncCommands::hgetall(&mut c, env.key("rs:xapi:lrs"))
            .await
            .unwrap();
    assert_eq!(stored.len(), 2);
    app.stop().await;
}

#[tokio::test]
async fn a_wrong_payload_or_xapi_enabled_false_sends_nothing_for_that_meeting() {
    let lrs = Receiver::start().await;
    let env = xapi_env("xapi-off", &lrs);
    let app = env.start().await;
    let wrong = openssl_encrypt(r#"{"lrs_token":"t"}"#, "not-the-secret")
        .unwrap_or_else(|| "U2FsdGVkX19nYXJiYWdlZ2FyYmFnZWdhcmJhZ2VnYXJiYWdl".into());
    env.publish(&[
        created_with("m-wrong", "ext-wrong", json!({"secret-lrs-payload": wrong})),
        created_with("m-off", "ext-off", json!({"xapi-enabled": "false"})),
        joined("m-wrong", "u1"),
        joined("m-off", "u2"),
        meeting_destroyed("m-wrong"),
        meeting_destroyed("m-off"),
        // A meeting that sends, after them: once it arrived, the others had their chance.
        created_with("m-on", "ext-on", json!({})),
    ])
    .await;
    lrs.wait_for(STATEMENTS, 1, WAIT).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got = lrs.received();
    assert_eq!(
        got.len(),
        1,
        "only the meeting that may send: {:?}",
        got.iter().map(|r| &r.body).collect::<Vec<_>>()
    );
    assert_eq!(
        body(&got[0])["object"]["definition"]["name"]["en"],
        json!("ext-on")
    );
    let m = &app.app.metrics;
    assert_eq!(
        m.xapi_statements_skipped
            .with_label_values(&["bad_payload"])
            .get(),
        1
    );
    assert!(
        m.xapi_statements_skipped
            .with_label_values(&["disabled"])
            .get()
            >= 2
    );
    assert!(
        m.xapi_statements_skipped
            .with_label_values(&["no_lrs"])
            .get()
            >= 2
    );
    app.stop().await;
}

/// The statements of the requests the LRS accepted, single or in arrays, in order.
fn statements_of(rs: &[Received]) -> Vec<Value> {
    rs.iter()
        .flat_map(|r| match body(r) {
            Value::Array(items) => items,
            one => vec![one],
        })
        .collect()
}

#[tokio::test]
async fn a_backlog_goes_in_arrays_and_a_refused_array_is_sent_again_one_by_one() {
    // Down for the first two requests (a backlog forms), then up; any request holding the chat
    // statement is refused for good (400).
    let lrs = Receiver::with_request(|r, n| {
        if r.body.contains("acrossx/verbs/posted") {
            Reply::status(400)
        } else if n < 2 {
            Reply::status(503)
        } else {
            Reply::ok()
        }
    })
    .await;
    let env = xapi_env("xapi-arrays", &lrs).with("xapi.statementsPerRequest", json!(8));
    let app = env.start().await;
    env.publish(&messages(&inputs())).await;
    let want: Vec<Value> = expected()
        .into_iter()
        .map(|l| l["body"].clone())
        .filter(|b| !b["verb"]["id"].as_str().unwrap().ends_with("/posted"))
        .collect();
    let delivered = eventually(WAIT, || async {
        let ok: Vec<Received> = lrs
            .received()
            .into_iter()
            .filter(|r| !r.body.contains("acrossx/verbs/posted"))
            .skip(2)
            .collect();
        statements_of(&ok).len() >= want.len()
    })
    .await;
    let all = lrs.received();
    let ok: Vec<Received> = all
        .iter()
        .filter(|r| !r.body.contains("acrossx/verbs/posted"))
        .skip(2)
        .cloned()
        .collect();
    let got = statements_of(&ok);
    assert!(delivered, "{} of {} statements", got.len(), want.len());
    assert!(
        ok.len() < got.len(),
        "some requests carried several statements"
    );
    assert!(ok.iter().all(|r| match body(r) {
        Value::Array(items) => items.len() <= 8,
        _ => true,
    }));
    let verbs = |v: &[Value]| -> Vec<String> {
        v.iter()
            .map(|s| s["verb"]["id"].as_str().unwrap_or("").to_string())
            .collect()
    };
    assert_eq!(
        verbs(&got),
        verbs(&want),
        "every statement but the refused one, once, in order"
    );
    let id = lrs_id(&app);
    let m = &app.app.metrics;
    assert_eq!(
        m.xapi_statements_failed
            .with_label_values(&[&id, "rejected_400"])
            .get(),
        1
    );
    assert_eq!(
        m.xapi_statements_sent.with_label_values(&[&id]).get(),
        want.len() as u64
    );
    app.stop().await;
}

#[tokio::test]
async fn an_idle_lrs_retires_and_comes_back_with_its_next_statement() {
    let lrs = Receiver::start().await;
    let env = xapi_env("xapi-idle", &lrs).with("xapi.lrsIdleTimeout", json!(300));
    let app = env.start().await;
    env.publish(&[
        created_with("m-idle", "ext-idle", json!({})),
        joined("m-idle", "u1"),
    ])
    .await;
    lrs.wait_for(STATEMENTS, 2, WAIT).await;
    // Idle: the worker stops, the stored endpoint and credentials go.
    let hash = env.key("rs:xapi:lrs");
    let retired = eventually(WAIT, || async {
        let mut c = env.redis().await;
        let n: usize = redis::AsyncCommands::hlen(&mut c, &hash).await.unwrap_or(1);
        n == 0
    })
    .await;
    assert!(retired, "the idle LRS's descriptor is deleted");
    // The meeting goes on: its next statement brings the LRS back.
    env.publish(&[chat("m-idle", "u1", "after a pause")]).await;
    let got = lrs.wait_for(STATEMENTS, 3, WAIT).await;
    let verbs: Vec<String> = got
        .iter()
        .map(|r| {
            body(r)["verb"]["id"]
                .as_str()
                .unwrap_or("")
                .rsplit('/')
                .next()
                .unwrap_or("")
                .to_string()
        })
        .collect();
    assert_eq!(verbs, ["initialized", "join", "posted"]);
    assert_eq!(
        app.app.metrics.worker_restarts.get(),
        0,
        "retiring is no crash"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_redis_that_lost_its_data_gets_the_running_meetings_xapi_state_back() {
    let redis = crate::private_redis::PrivateRedis::start();
    let lrs = Receiver::start().await;
    let env = with_xapi(Env::on("xapi-wipe", &redis.url()), &lrs);
    let app = env.start().await;
    env.publish(&[
        created_with("m-wipe", "ext-wipe", json!({})),
        joined("m-wipe", "u1"),
    ])
    .await;
    let before = lrs.wait_for(STATEMENTS, 2, WAIT).await;
    let mut c = env.redis().await;
    let _: () = redis::cmd("FLUSHALL").query_async(&mut c).await.unwrap();
    let rewritten = eventually(WAIT, || async {
        let mut c = env.redis().await;
        let meetings: Vec<String> =
            redis::AsyncCommands::smembers(&mut c, env.key("rs:xapi:meetings"))
                .await
                .unwrap_or_default();
        meetings == ["m-wipe"]
    })
    .await;
    assert!(
        rewritten,
        "the running meeting's xAPI state is written again from memory"
    );
    env.publish(&[chat("m-wipe", "u1", "after the wipe")]).await;
    let got = lrs.wait_for(STATEMENTS, 3, WAIT).await;
    let last = body(&got[2]);
    assert_eq!(
        last["verb"]["id"],
        json!("https://w3id.org/xapi/acrossx/verbs/posted")
    );
    assert_eq!(
        last["context"]["registration"],
        body(&before[0])["context"]["registration"]
    );
    app.stop().await;
}

#[tokio::test]
async fn a_namespace_3x_refuses_keeps_xapi_off_and_the_webhooks_running() {
    let lrs = Receiver::start().await;
    let env = xapi_env("xapi-badns", &lrs).with(
        "xapi.uuidNamespace",
        json!("01234567-89ab-cdef-0123-456789abcdef"),
    );
    let app = env.start().await;
    app.create_hook(&lrs.url("/hook"), "").await;
    env.publish(&[
        created_with("m-ns", "ext-ns", json!({})),
        joined("m-ns", "u1"),
    ])
    .await;
    lrs.wait_for("/hook", 2, WAIT).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(lrs.received_on(STATEMENTS).is_empty(), "no statement");
    let metrics = app.app.metrics.render();
    assert!(
        metrics.contains(
            r#"bbb_webhooks_module_status{module="../out/xapi/index.js",moduleType="out"} 0"#
        ),
        "{metrics}"
    );
    assert_eq!(app.get("/ready").await.0, 200);
    app.stop().await;
}

/// The payload format, against the `openssl` command line itself (docs/xapi.md's options).
#[test]
fn payloads_made_with_the_openssl_command_line_open() {
    use bbb_webhooks::lrs::{LrsPayload, PayloadError, decrypt};
    let plain = r#"{"lrs_endpoint":"https://lrs.example.com/xapi","lrs_token":"abc"}"#;
    let Some(payload) = openssl_encrypt(plain, "testsecret") else {
        return;
    };
    assert!(
        payload.starts_with("U2FsdGVkX1"),
        "Salted__ in base64: {payload}"
    );
    assert_eq!(decrypt(&payload, "testsecret").unwrap(), plain);
    let p = LrsPayload::open(&payload, "testsecret").unwrap();
    assert_eq!(p.lrs_token.as_deref(), Some("abc"));
    assert_eq!(decrypt(&payload, "wrong"), Err(PayloadError::Decrypt));
    let no_creds = openssl_encrypt(r#"{"lrs_endpoint":"https://x/xapi"}"#, "s").unwrap();
    assert_eq!(
        LrsPayload::open(&no_creds, "s"),
        Err(PayloadError::NoCredentials)
    );
    let not_json = openssl_encrypt("hello", "s").unwrap();
    assert!(matches!(
        LrsPayload::open(&not_json, "s"),
        Err(PayloadError::NotJson(_))
    ));
}

/// `openssl enc` with the options docs/xapi.md gives; `None` (and a message) without openssl.
fn openssl_encrypt(plain: &str, secret: &str) -> Option<String> {
    use std::io::Write;
    let mut child = match std::process::Command::new("openssl")
        .args([
            "enc",
            "-aes-256-cbc",
            "-pbkdf2",
            "-iter",
            "10000",
            "-md",
            "sha256",
        ])
        .args(["-salt", "-base64", "-A", "-pass"])
        .arg(format!("pass:{secret}"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("SKIPPED: no openssl command to make a payload with ({e})");
            return None;
        }
    };
    child.stdin.take()?.write_all(plain.as_bytes()).ok()?;
    let out = child.wait_with_output().ok()?;
    assert!(out.status.success(), "openssl enc failed");
    Some(String::from_utf8(out.stdout).ok()?.trim().to_string())
}

/// Figures, not a check of behaviour (run with `--ignored --nocapture`): statements per second to
/// an LRS on loopback answering at once or after 20 ms, one statement per request or arrays of
/// 20; and the enqueuer's time per batch with xAPI on and off. Each run still checks that every
/// statement arrived, in order.
#[tokio::test]
#[ignore]
async fn measure_xapi_throughput() {
    for (delay_ms, per_request, n) in [(0, 1, 2000), (0, 20, 2000), (20, 1, 200), (20, 20, 2000)] {
        let lrs =
            Receiver::with(move |_, _| Reply::ok().delayed(Duration::from_millis(delay_ms))).await;
        let env =
            xapi_env("xapi-measure", &lrs).with("xapi.statementsPerRequest", json!(per_request));
        let app = env.start().await;
        env.publish(&[created_with("m-x", "ext-x", json!({})), joined("m-x", "u1")])
            .await;
        let ready = eventually(WAIT, || async { statements_of(&lrs.received()).len() >= 2 }).await;
        assert!(ready);
        let chats: Vec<String> = (0..n)
            .map(|i| chat("m-x", "u1", &format!("c{i:05}")))
            .collect();
        let start = std::time::Instant::now();
        env.publish(&chats).await;
        let done = eventually(Duration::from_secs(120), || async {
            statements_of(&lrs.received()).len() >= n + 2
        })
        .await;
        let took = start.elapsed();
        assert!(done);
        let got = statements_of(&lrs.received());
        assert_eq!(got.len(), n + 2, "once each");
        let m = &app.app.metrics;
        let (sum, count) = (
            m.enqueue_latency.get_sample_sum(),
            m.enqueue_latency.get_sample_count(),
        );
        eprintln!(
            "xAPI: LRS delay {delay_ms} ms, {per_request} per request: {n} statements in {:.2} s = {:.0}/s, {} requests; enqueue latency mean {:.2} ms over {count} batches",
            took.as_secs_f64(),
            n as f64 / took.as_secs_f64(),
            lrs.received().len(),
            sum * 1000.0 / count.max(1) as f64
        );
        app.stop().await;
    }
    // The enqueuer's cost of xAPI: the same burst to a hook, with xAPI off and on.
    let lrs = Receiver::start().await;
    for on in [false, true, false, true] {
        let env = xapi_env("xapi-measure-off", &lrs).with("xapi.enabled", json!(on));
        let app = env.start().await;
        app.create_hook(&lrs.url("/hook"), "").await;
        env.publish(&[created_with("m-y", "ext-y", json!({})), joined("m-y", "u1")])
            .await;
        let chats: Vec<String> = (0..5000)
            .map(|i| chat("m-y", "u1", &format!("c{i:05}")))
            .collect();
        env.publish(&chats).await;
        let m = app.app.metrics.clone();
        let all = eventually(Duration::from_secs(60), || async {
            m.messages_received.get() >= 5002
        })
        .await;
        assert!(all);
        tokio::time::sleep(Duration::from_millis(200)).await;
        let (sum, count) = (
            m.enqueue_latency.get_sample_sum(),
            m.enqueue_latency.get_sample_count(),
        );
        eprintln!(
            "xAPI {}: 5000 chat messages to a hook, enqueue latency mean {:.2} ms over {count} batches",
            if on { "on" } else { "off" },
            sum * 1000.0 / count.max(1) as f64
        );
        app.stop().await;
    }
}
