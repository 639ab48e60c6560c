//! The command line, through the real binary: demo, simulate, the hooks admin, checksum, config
//! check, start-up errors. (The tools are not in the library; their pure parts have unit tests
//! in src/cmd.)

use std::process::{Command, Output};
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::Value;

use crate::helpers::*;

fn bin(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_bbb-webhooks"));
    c.args(args)
        .env_remove("SHARED_SECRET")
        .env_remove("REDIS_URL")
        .env_remove("BBB_WEBHOOKS_CONFIG");
    c
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Runs `demo` with `args` to its end (within a minute), which must succeed; what it printed.
async fn demo(args: &[&str]) -> String {
    let run = tokio::process::Command::from(bin(args))
        .kill_on_drop(true)
        .output();
    let o = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("the demo finishes")
        .expect("the demo runs");
    let (printed, err) = text(&o);
    assert!(o.status.success(), "{err}\n{printed}");
    printed
}

#[tokio::test]
async fn the_demo_shows_every_family_verified_and_stops() {
    let printed = demo(&["demo"]).await;
    // `N events received, V checksums verified, F failed.`
    let counts: Vec<usize> = printed
        .lines()
        .find(|l| l.contains(" events received, "))
        .unwrap_or_else(|| panic!("no summary: {printed}"))
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect();
    let [events, verified, failed] = counts[..] else {
        panic!("summary: {counts:?}\n{printed}")
    };
    assert_eq!(failed, 0, "{printed}");
    assert_eq!(verified, events, "{printed}");
    assert!(events > 0, "{printed}");
    // One `  ✓ <event id>  <what>` line per verified event.
    let verified_ids: std::collections::BTreeSet<&str> = printed
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("✓ "))
        .filter_map(|rest| rest.split_whitespace().next())
        .collect();
    for family in [
        "meeting-created",
        "user-joined",
        "user-audio-voice-enabled",
        "chat-group-message-sent",
        "poll-responded",
        "meeting-screenshare-started",
        "user-left",
        "meeting-ended",
        "rap-publish-ended",
        "rap-published",
    ] {
        assert!(
            verified_ids.contains(family),
            "no {family}: {verified_ids:?}"
        );
    }
    assert!(printed.contains("✓ chat-group-message-sent"), "{printed}");
    assert!(
        printed.contains("checksums verified, 0 failed"),
        "{printed}"
    );
}

#[tokio::test]
async fn the_demo_with_xapi_shows_the_statements_an_lrs_receives() {
    let printed = demo(&["demo", "--xapi"]).await;
    // One `  ⧉ xAPI <verb> <actor> <object>` line per statement, and their count at the end.
    let verbs: Vec<&str> = printed
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("⧉ xAPI "))
        .filter_map(|rest| rest.split_whitespace().next())
        .collect();
    for verb in [
        "initialized",
        "join",
        "posted",
        "asked",
        "answered",
        "leave",
        "terminated",
    ] {
        assert!(verbs.contains(&verb), "no {verb}: {verbs:?}\n{printed}");
    }
    assert!(
        printed.contains(&format!(
            "{} xAPI statements received by the LRS stand-in.",
            verbs.len()
        )),
        "{printed}"
    );
    assert!(
        printed.contains("checksums verified, 0 failed"),
        "{printed}"
    );
}

#[test]
fn the_demo_says_how_to_get_a_redis() {
    let o = bin(&["demo", "--redis-url", "redis://127.0.0.1:1"])
        .output()
        .unwrap();
    let (_, err) = text(&o);
    assert!(!o.status.success());
    assert!(
        err.contains("Redis at redis://127.0.0.1:1 (--redis-url) cannot be used"),
        "{err}"
    );
    assert!(err.contains("redis-server"), "{err}");
}

#[tokio::test]
async fn simulate_publishes_on_bigbluebutton_channels() {
    let env = Env::new("cli-simulate");
    let client = redis::Client::open(REDIS_URL).unwrap();
    let mut pubsub = client.get_async_pubsub().await.unwrap();
    pubsub.subscribe(&env.channel).await.unwrap();
    let o = bin(&[
        "simulate",
        "--pace-ms",
        "0",
        "--users",
        "4",
        "--shape",
        "2.x",
        "--channel",
        &env.channel,
    ])
    .output()
    .unwrap();
    let (_, err) = text(&o);
    assert!(o.status.success(), "{err}");
    let sent: usize = err
        .lines()
        .find_map(|l| {
            l.strip_prefix("published ")
                .and_then(|r| r.split(' ').next())
                .and_then(|n| n.parse().ok())
        })
        .unwrap();
    let mut stream = pubsub.on_message();
    let mut names = Vec::new();
    for _ in 0..sent {
        let m = tokio::time::timeout(Duration::from_secs(5), stream.next())
            .await
            .unwrap()
            .unwrap();
        let v: Value = serde_json::from_str(&m.get_payload::<String>().unwrap()).unwrap();
        names.push(
            v.pointer("/envelope/name")
                .or(v.pointer("/header/name"))
                .and_then(Value::as_str)
                .unwrap()
                .to_string(),
        );
    }
    assert_eq!(names.first().unwrap(), "MeetingCreatedEvtMsg");
    assert!(
        names.contains(&"UserEmojiChangedEvtMsg".to_string()),
        "2.x raises hands with an emoji"
    );
    assert!(names.contains(&"publish_ended".to_string()));
    assert_eq!(names.last().unwrap(), "PublishedRecordingSysMsg");
}

#[tokio::test]
async fn the_hooks_admin_talks_to_a_running_service() {
    let env = Env::new("cli-admin");
    let app = env.start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = env.config_file(dir.path(), 1);
    let api = app.base.clone();
    let run = move |args: &[&str]| {
        let mut all = vec![
            "--config",
            config.to_str().unwrap(),
            "hooks",
            "--api-url",
            &api,
        ];
        all.extend_from_slice(args);
        bin(&all).output().unwrap()
    };
    let o = tokio::task::spawn_blocking({
        let run = run.clone();
        move || {
            run(&[
                "create",
                "https://lms.example.com/hook",
                "--meeting-id",
                "room 1",
                "--events",
                "user-joined,user-left",
            ])
        }
    })
    .await
    .unwrap();
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    let id = out.trim().strip_prefix("created: ").unwrap().to_string();
    let o = tokio::task::spawn_blocking({
        let run = run.clone();
        move || run(&["create", "https://lms.example.com/hook"])
    })
    .await
    .unwrap();
    assert_eq!(text(&o).0.trim(), format!("already registered: {id}"));

    let o = tokio::task::spawn_blocking({
        let run = run.clone();
        move || run(&["list"])
    })
    .await
    .unwrap();
    let (table, _) = text(&o);
    assert!(table.starts_with("ID"), "{table}");
    assert!(
        table.contains(&id) && table.contains("room 1") && table.contains("user-joined,user-left"),
        "{table}"
    );

    let o = tokio::task::spawn_blocking({
        let run = run.clone();
        move || run(&["list", "--json"])
    })
    .await
    .unwrap();
    let listed: Value = serde_json::from_str(&text(&o).0).unwrap();
    assert_eq!(listed[0]["hookID"], id.as_str());
    assert_eq!(listed[0]["meetingID"], "room 1");

    let o = tokio::task::spawn_blocking({
        let run = run.clone();
        let id = id.clone();
        move || run(&["destroy", &id])
    })
    .await
    .unwrap();
    assert!(o.status.success());
    let o = tokio::task::spawn_blocking({
        let run = run.clone();
        move || run(&["destroy", "no-such-hook"])
    })
    .await
    .unwrap();
    assert!(!o.status.success());
    assert!(text(&o).1.contains("destroyMissingHook"), "{}", text(&o).1);
    app.stop().await;
}

#[test]
fn checksum_signs_api_urls() {
    let url = "https://bbb.example.com/bigbluebutton/api/hooks/create?callbackURL=https%3A%2F%2Fapp.example.com%2Fhook&meetingID=my-meeting&eventID=meeting-created,user-joined";
    let o = bin(&["checksum", url, "--secret", "mysharedsecret"])
        .output()
        .unwrap();
    assert_eq!(
        text(&o).0.trim(),
        format!("{url}&checksum=819da0e0ea95358293f470c17ffe4b83968cf179")
    );
    let o = bin(&[
        "checksum",
        "https://h/bigbluebutton/api/hooks/list",
        "--secret",
        "mysharedsecret",
        "--algorithm",
        "sha256",
    ])
    .output()
    .unwrap();
    let signed = text(&o).0;
    assert!(signed.starts_with("https://h/bigbluebutton/api/hooks/list?checksum="));
    assert_eq!(
        signed.trim().len(),
        "https://h/bigbluebutton/api/hooks/list?checksum=".len() + 64
    );
}

#[test]
fn config_check_shows_values_and_sources_without_the_secret() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.yml");
    std::fs::write(
        &file,
        "bbb:\n  sharedSecret: very-secret-value\napi:\n  port: 3999\n",
    )
    .unwrap();
    let o = bin(&["--config", file.to_str().unwrap(), "config", "check"])
        .env("SERVER_DOMAIN", "bbb.school.org")
        .output()
        .unwrap();
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(!out.contains("very-secret-value"));
    assert!(out.contains("bbb.sharedSecret"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("api.port") && l.contains("3999") && l.contains("(file ")),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("bbb.serverDomain") && l.contains("(env SERVER_DOMAIN)")),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("redis.port") && l.contains("(default)")),
        "{out}"
    );

    let o = bin(&["--config", file.to_str().unwrap(), "config", "check"])
        .env("HOOK_CHECKSUM_ALGORITHM", "md5")
        .output()
        .unwrap();
    assert!(!o.status.success());
    let (_, err) = text(&o);
    assert!(
        err.contains("hooks.hookChecksumAlgorithm") && err.contains("env HOOK_CHECKSUM_ALGORITHM"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "one clear line: {err}");

    let o = bin(&["config", "check"])
        .env("BBB_WEBHOOKS_CONFIG", "/nonexistent.yml")
        .output()
        .unwrap();
    assert!(!o.status.success());
}

#[test]
fn a_taken_port_is_one_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let o = bin(&["serve"])
        .env("SHARED_SECRET", "s")
        .env("SERVER_PORT", &port)
        .env("LOG_LEVEL", "error")
        .output()
        .unwrap();
    assert!(!o.status.success());
    let (_, err) = text(&o);
    assert!(
        err.contains(&format!("127.0.0.1:{port}"))
            && err.contains("api.port")
            && err.contains("env SERVER_PORT"),
        "{err}"
    );
}

#[test]
fn forward_is_listed_and_without_a_cluster_redis_is_one_clear_error() {
    let o = bin(&["--help"]).output().unwrap();
    let (out, _) = text(&o);
    assert!(
        out.lines().any(|l| l.trim_start().starts_with("forward ")),
        "{out}"
    );

    let o = bin(&["forward"])
        .env_remove("FORWARD_TO")
        .env_remove("FORWARD_SENTINELS")
        .env("LOG_LEVEL", "error")
        .output()
        .unwrap();
    assert!(!o.status.success());
    let (_, err) = text(&o);
    assert!(
        err.contains("forward.to") && err.contains("FORWARD_TO"),
        "{err}"
    );
}

#[test]
fn config_check_shows_the_forward_settings_without_the_cluster_password() {
    let o = bin(&["config", "check"])
        .env("SHARED_SECRET", "s")
        .env("FORWARD_TO", "redis://:cluster-pass-word@10.9.8.7:6380/1")
        .env("FORWARD_SENTINELS", "10.0.0.1:26379,s2.example.com")
        .output()
        .unwrap();
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(!out.contains("cluster-pass-word"), "{out}");
    assert!(
        out.lines().any(|l| l.starts_with("forward.to")
            && l.contains("10.9.8.7:6380")
            && l.contains("(env FORWARD_TO)")),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("forward.sentinels") && l.contains("s2.example.com:26379")),
        "{out}"
    );
    assert!(
        out.lines().any(|l| l.starts_with("forward.port")
            && l.contains("3006")
            && l.contains("(default)")),
        "{out}"
    );

    let o = bin(&["config", "check"])
        .env("SHARED_SECRET", "s")
        .env("FORWARD_TO", "http://:cluster-pass-word@x/")
        .output()
        .unwrap();
    assert!(!o.status.success());
    let (out, err) = text(&o);
    assert!(
        err.contains("forward.to") && err.contains("env FORWARD_TO"),
        "{err}"
    );
    assert!(
        !out.contains("cluster-pass-word") && !err.contains("cluster-pass-word"),
        "{out}{err}"
    );
}
