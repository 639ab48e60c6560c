//! The hooks API: routes, checksums, XML bytes, and what it stores.

use std::time::Duration;

use bbb_webhooks::config::ChecksumAlgorithm;
use redis::AsyncCommands;
use serde_json::json;

use crate::helpers::*;
use crate::private_redis::PrivateRedis;

const CHECKSUM_ERROR: &str = "<response><returncode>FAILED</returncode><messageKey>checksumError</messageKey><message>You did not pass the checksum security check.</message></response>";

fn created(id: &str, permanent: bool, raw: bool) -> String {
    format!(
        "<response><returncode>SUCCESS</returncode><hookID>{id}</hookID><permanentHook>{permanent}</permanentHook><rawData>{raw}</rawData></response>"
    )
}

#[tokio::test]
async fn every_answer_of_the_reference_byte_for_byte() {
    let env = Env::new("api-bytes");
    let app = env.start().await;

    let (status, body) = app
        .api("create", "callbackURL=http%3A%2F%2F127.0.0.1%3A9%2Fa")
        .await;
    assert_eq!(status, 200);
    let id = extract(&body, "hookID").unwrap();
    assert_eq!(body, created(&id, false, false));

    let (_, body) = app
        .api(
            "create",
            "callbackURL=http%3A%2F%2F127.0.0.1%3A9%2Fa&getRaw=true",
        )
        .await;
    assert_eq!(
        body,
        format!(
            "<response><returncode>SUCCESS</returncode><hookID>{id}</hookID><messageKey>duplicateWarning</messageKey><message>There is already a hook for this callback URL.</message></response>"
        )
    );

    let (_, body) = app.api("create", "meetingID=x").await;
    assert_eq!(
        body,
        "<response><returncode>FAILED</returncode><messageKey>missingParamCallbackURL</messageKey><message>You must specify a callbackURL in the parameters.</message></response>"
    );

    let (_, body) = app.api("destroy", "").await;
    assert_eq!(
        body,
        "<response><returncode>FAILED</returncode><messageKey>missingParamHookID</messageKey><message>You must specify a hookID in the parameters.</message></response>"
    );

    let (_, body) = app.api("destroy", "hookID=nope").await;
    assert_eq!(
        body,
        "<response><returncode>FAILED</returncode><messageKey>destroyMissingHook</messageKey><message>The hook informed was not found.</message></response>"
    );

    let (_, body) = app.api("list", "").await;
    assert_eq!(
        body,
        format!(
            "<response><returncode>SUCCESS</returncode><hooks><hook><hookID>{id}</hookID><callbackURL><![CDATA[http://127.0.0.1:9/a]]></callbackURL><permanentHook>false</permanentHook><rawData>false</rawData></hook></hooks></response>"
        )
    );

    let (_, body) = app.api("destroy", &format!("hookID={id}")).await;
    assert_eq!(
        body,
        "<response><returncode>SUCCESS</returncode><removed>true</removed></response>"
    );

    let (_, body) = app.api("list", "").await;
    assert_eq!(
        body,
        "<response><returncode>SUCCESS</returncode><hooks></hooks></response>"
    );

    let (status, body) = app
        .get("/bigbluebutton/api/hooks/list?checksum=0000000000000000000000000000000000000000")
        .await;
    assert_eq!((status, body.as_str()), (200, CHECKSUM_ERROR));

    let r = reqwest::get(format!("{}/bigbluebutton/api/hooks/ping", app.base))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("content-type").is_none());
    assert_eq!(r.text().await.unwrap(), "bbb-webhooks API up!");

    let r = reqwest::get(format!(
        "{}/bigbluebutton/api/hooks/list?checksum=x",
        app.base
    ))
    .await
    .unwrap();
    assert_eq!(r.headers()["content-type"], "text/xml; charset=utf-8");
    app.stop().await;
}

#[tokio::test]
async fn all_four_checksum_algorithms_and_their_refusals() {
    let env = Env::new("api-checksums");
    let app = env.start().await;
    for alg in ChecksumAlgorithm::ALL {
        let (_, body) = app.api_with("list", "", alg).await;
        assert!(body.contains("<returncode>SUCCESS"), "{alg:?}: {body}");
    }
    // A wrong one, one of no known length, an upper-case one, a repeated one, none.
    let good =
        bbb_webhooks::api::checksum::sign("hooks/list", "", SECRET, ChecksumAlgorithm::Sha256);
    for (query, ok) in [
        (format!("checksum={}", "f".repeat(64)), false),
        ("checksum=abc123".to_string(), false),
        (format!("checksum={}", "a".repeat(50)), false),
        (format!("checksum={}", good.to_uppercase()), true),
        (format!("checksum={good}&checksum={good}"), false),
        (String::new(), false),
    ] {
        let (status, body) = app
            .get(&format!("/bigbluebutton/api/hooks/list?{query}"))
            .await;
        assert_eq!(status, 200, "{query}");
        assert_eq!(body == CHECKSUM_ERROR, !ok, "{query}: {body}");
    }
    app.stop().await;
}

#[tokio::test]
async fn supported_algorithms_are_enforced() {
    let env = Env::new("api-supported").with("api.supportedChecksumAlgorithms", json!(["sha256"]));
    let app = env.start().await;
    let (_, body) = app.api_with("list", "", ChecksumAlgorithm::Sha1).await;
    assert_eq!(body, CHECKSUM_ERROR);
    let (_, body) = app.api_with("list", "", ChecksumAlgorithm::Sha256).await;
    assert!(body.contains("SUCCESS"));
    app.stop().await;
}

#[tokio::test]
async fn checksum_covers_the_raw_query_with_percent_encoding_and_plus() {
    let env = Env::new("api-raw-query");
    let app = env.start().await;
    // `+` is a space and %2B a plus once decoded; the checksum is over the bytes as sent.
    let query = "callbackURL=http%3A%2F%2F127.0.0.1%3A9%2Fx%3Fa%3D1%2B2&meetingID=my+meeting%21";
    let (_, body) = app.api("create", query).await;
    assert!(body.contains("SUCCESS"), "{body}");
    let (_, list) = app.api("list", "").await;
    assert!(
        list.contains("<![CDATA[http://127.0.0.1:9/x?a=1+2]]>"),
        "{list}"
    );
    assert!(
        list.contains("<meetingID><![CDATA[my meeting!]]></meetingID>"),
        "{list}"
    );
    // Checksum first, as some clients send it.
    let c = bbb_webhooks::api::checksum::sign(
        "hooks/list",
        "meetingID=my+meeting%21",
        SECRET,
        ChecksumAlgorithm::Sha1,
    );
    let (_, list) = app
        .get(&format!(
            "/bigbluebutton/api/hooks/list?checksum={c}&meetingID=my+meeting%21"
        ))
        .await;
    assert!(list.contains("SUCCESS"), "{list}");
    // Routes are case-insensitive with an optional trailing slash; the checksum method is the
    // path as sent.
    let c = bbb_webhooks::api::checksum::sign("hooks/LIST/", "", SECRET, ChecksumAlgorithm::Sha1);
    let (_, list) = app
        .get(&format!("/bigbluebutton/api/hooks/LIST/?checksum={c}"))
        .await;
    assert!(list.contains("SUCCESS"), "{list}");
    app.stop().await;
}

#[tokio::test]
async fn callback_urls_are_validated_and_escaped() {
    let env = Env::new("api-escape");
    let app = env.start().await;
    let nasty = "http://127.0.0.1:9/x]]><injected/>?a=1&b=ü";
    let (_, body) = app
        .api(
            "create",
            &format!("callbackURL={}&eventID=user-joined,%3Cx%3E", encode(nasty)),
        )
        .await;
    assert!(body.contains("SUCCESS"), "{body}");
    let (_, list) = app.api("list", "").await;
    assert!(
        list.contains("<callbackURL><![CDATA[http://127.0.0.1:9/x]]]]><![CDATA[><injected/>?a=1&b=ü]]></callbackURL>"),
        "{list}"
    );
    assert!(
        list.contains("<eventID>user-joined,&lt;x&gt;</eventID>"),
        "{list}"
    );

    for bad in ["ftp://x/y", "not a url", "/relative", "http://"] {
        let (_, body) = app
            .api("create", &format!("callbackURL={}", encode(bad)))
            .await;
        assert!(
            body.contains("<messageKey>invalidCallbackURL</messageKey>"),
            "{bad}: {body}"
        );
    }
    let long = format!("http://127.0.0.1/{}", "a".repeat(2100));
    let (_, body) = app
        .api("create", &format!("callbackURL={}", encode(&long)))
        .await;
    assert!(body.contains("invalidCallbackURL"), "{body}");
    app.stop().await;
}

#[tokio::test]
async fn get_raw_is_lenient_and_checked() {
    let env = Env::new("api-getraw");
    let app = env.start().await;
    for (i, (v, raw)) in [
        ("TRUE", true),
        ("1", true),
        ("yes", true),
        ("No", false),
        ("0", false),
    ]
    .iter()
    .enumerate()
    {
        let (_, body) = app
            .api(
                "create",
                &format!("callbackURL=http%3A%2F%2Fh%2F{i}&getRaw={v}"),
            )
            .await;
        assert!(
            body.ends_with(&format!("<rawData>{raw}</rawData></response>")),
            "{v}: {body}"
        );
    }
    let (_, body) = app
        .api("create", "callbackURL=http%3A%2F%2Fh%2Fz&getRaw=maybe")
        .await;
    assert!(
        body.contains("<messageKey>invalidParamGetRaw</messageKey>"),
        "{body}"
    );
    app.stop().await;
}

#[tokio::test]
async fn list_by_meeting_shows_globals_and_every_scoped_hook() {
    let env = Env::new("api-list-meeting");
    let app = env.start().await;
    let g = app.create_hook("http://h/global", "").await;
    // Zero scoped hooks for the meeting: the reference answered listHookError.
    let (_, body) = app.api("list", "meetingID=m1").await;
    assert_eq!(hook_ids(&body), vec![g.clone()]);
    let s1 = app.create_hook("http://h/s1", "&meetingID=m1").await;
    let (_, body) = app.api("list", "meetingID=m1").await;
    assert_eq!(hook_ids(&body), vec![g.clone(), s1.clone()]);
    let s2 = app.create_hook("http://h/s2", "&meetingID=m1").await;
    let other = app.create_hook("http://h/other", "&meetingID=m2").await;
    let (_, body) = app.api("list", "meetingID=m1").await;
    assert_eq!(hook_ids(&body), vec![g.clone(), s1.clone(), s2.clone()]);
    let (_, body) = app.api("list", "").await;
    assert_eq!(hook_ids(&body), vec![g, s1, s2, other]);
    assert!(body.contains("<meetingID><![CDATA[m2]]></meetingID>"));
    app.stop().await;
}

#[tokio::test]
async fn permanent_hooks_cannot_be_destroyed() {
    let env = Env::new("api-permanent").with(
        "hooks.permanentURLs",
        json!([{"url": "https://app.example.com/hook", "getRaw": true}]),
    );
    let app = env.start().await;
    let (_, body) = app.api("list", "").await;
    // The reference's id for this URL (UUID v5 in the URL namespace).
    let id = "6a2c6225-0855-5c64-b7bc-9fed0fb2100b";
    assert_eq!(
        body,
        format!(
            "<response><returncode>SUCCESS</returncode><hooks><hook><hookID>{id}</hookID><callbackURL><![CDATA[https://app.example.com/hook]]></callbackURL><permanentHook>true</permanentHook><rawData>true</rawData></hook></hooks></response>"
        )
    );
    let (_, body) = app.api("destroy", &format!("hookID={id}")).await;
    assert!(body.contains("destroyMissingHook"), "{body}");
    let (_, body) = app.api("list", "").await;
    assert_eq!(hook_ids(&body), vec![id]);
    app.stop().await;
}

#[tokio::test]
async fn a_restart_keeps_every_hook_as_it_was() {
    let env = Env::new("api-restart");
    let app = env.start().await;
    app.create_hook("http://h/global", "").await;
    app.create_hook(
        "http://h/scoped",
        "&meetingID=room+1&eventID=User-Joined,user-left&getRaw=true",
    )
    .await;
    let (_, before) = app.api("list", "").await;
    app.stop().await;

    let app = env.start().await;
    let (_, after) = app.api("list", "").await;
    assert_eq!(before, after);
    assert!(after.contains("<meetingID><![CDATA[room 1]]></meetingID><eventID>user-joined,user-left</eventID><permanentHook>false</permanentHook><rawData>true</rawData>"), "{after}");
    app.stop().await;
}

#[tokio::test]
async fn hooks_written_by_the_reference_are_loaded_faithfully() {
    let env = Env::new("api-legacy");
    let mut conn = env.redis().await;
    // 3.x: JSON-array eventID, scope, getRaw.
    let _: () = conn
        .hset_multiple(
            env.hook_key("0b3f1c22-0000-4000-8000-000000000001"),
            &[
                ("id", "0b3f1c22-0000-4000-8000-000000000001"),
                ("callbackURL", "http://h/v3"),
                ("externalMeetingID", "random-9019868"),
                ("eventID", r#"["meeting-created","user-joined"]"#),
                ("permanent", "false"),
                ("getRaw", "true"),
            ],
        )
        .await
        .unwrap();
    // 2.x fields: hookID, comma eventID, getRaw "1".
    let _: () = conn
        .hset_multiple(
            env.hook_key("7"),
            &[
                ("hookID", "7"),
                ("callbackURL", "http://h/v2"),
                ("eventID", "user-joined,user-left"),
                ("permanent", "false"),
                ("getRaw", "1"),
            ],
        )
        .await
        .unwrap();
    // Something unreadable stays where it is.
    let _: () = conn
        .hset(env.hook_key("broken"), "id", "broken")
        .await
        .unwrap();
    let _: () = conn
        .sadd(
            env.hooks_set(),
            &["0b3f1c22-0000-4000-8000-000000000001", "7", "broken"],
        )
        .await
        .unwrap();

    let app = env.start().await;
    let (_, list) = app.api("list", "").await;
    assert!(list.contains("<hook><hookID>0b3f1c22-0000-4000-8000-000000000001</hookID><callbackURL><![CDATA[http://h/v3]]></callbackURL><meetingID><![CDATA[random-9019868]]></meetingID><eventID>meeting-created,user-joined</eventID><permanentHook>false</permanentHook><rawData>true</rawData></hook>"), "{list}");
    assert!(list.contains("<hook><hookID>7</hookID><callbackURL><![CDATA[http://h/v2]]></callbackURL><eventID>user-joined,user-left</eventID><permanentHook>false</permanentHook><rawData>true</rawData></hook>"), "{list}");
    assert_eq!(hook_ids(&list).len(), 2);
    let still: bool = conn.sismember(env.hooks_set(), "broken").await.unwrap();
    assert!(still, "an unreadable hook is left alone");
    // Destroy by the 2.x id works, and removes it from Redis too.
    let (_, body) = app.api("destroy", "hookID=7").await;
    assert!(body.contains("<removed>true</removed>"));
    let exists: bool = conn.exists(env.hook_key("7")).await.unwrap();
    assert!(!exists);
    app.stop().await;
}

#[tokio::test]
async fn what_create_writes_is_what_the_reference_writes() {
    let env = Env::new("api-layout");
    let app = env.start().await;
    let id = app
        .create_hook("http://h/x", "&meetingID=m&eventID=user-joined")
        .await;
    let mut conn = env.redis().await;
    let h: std::collections::HashMap<String, String> =
        conn.hgetall(env.hook_key(&id)).await.unwrap();
    assert_eq!(h["id"], id);
    assert_eq!(h["callbackURL"], "http://h/x");
    assert_eq!(h["externalMeetingID"], "m");
    assert_eq!(h["eventID"], r#"["user-joined"]"#);
    assert_eq!(h["permanent"], "false");
    assert_eq!(h["getRaw"], "false");
    let member: bool = conn.sismember(env.hooks_set(), &id).await.unwrap();
    assert!(member);
    app.stop().await;
}

#[tokio::test]
async fn bad_requests_get_xml_and_change_nothing() {
    let env = Env::new("api-bad");
    let app = env.start().await;
    // Repeated parameters.
    let (_, body) = app
        .api(
            "create",
            "callbackURL=http%3A%2F%2Fh%2Fa&callbackURL=http%3A%2F%2Fh%2Fb",
        )
        .await;
    assert!(
        body.contains("<messageKey>repeatedParam</messageKey>"),
        "{body}"
    );
    // Malformed encodings with a wrong checksum: refused.
    let (_, body) = app
        .get(
            "/bigbluebutton/api/hooks/create?callbackURL=http%3A%2F%2Fh%2F%zz&junk&=x&&checksum=zz",
        )
        .await;
    assert!(body.contains("checksumError"), "{body}");
    // A huge query.
    let huge = format!("callbackURL=http%3A%2F%2Fh%2F{}", "a".repeat(20_000));
    let (status, body) = app.api("create", &huge).await;
    assert_eq!(status, 200);
    assert!(
        body.contains("<messageKey>queryTooLong</messageKey>"),
        "{body}"
    );
    // Unknown paths and methods answer XML too.
    let (status, body) = app.get("/bigbluebutton/api/hooks/nope").await;
    assert_eq!(status, 404);
    assert!(body.starts_with("<response><returncode>FAILED"), "{body}");
    let r = reqwest::Client::new()
        .post(format!("{}/bigbluebutton/api/hooks/create", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("<messageKey>unsupportedRequest</messageKey>")
    );

    let (_, list) = app.api("list", "").await;
    assert_eq!(hook_ids(&list).len(), 0, "{list}");

    // With a right checksum a stray `%` is kept as is (as a browser would), like the reference.
    let (_, body) = app
        .api("create", "callbackURL=http%3A%2F%2Fh%2F%zz&junk&=x&&")
        .await;
    assert!(body.contains("SUCCESS"), "{body}");
    let (_, list) = app.api("list", "").await;
    assert!(list.contains("<![CDATA[http://h/%zz]]>"), "{list}");
    app.stop().await;
}

#[tokio::test]
async fn health_and_readiness() {
    let env = Env::new("api-health");
    let app = env.start().await;
    let (status, body) = app.get("/health").await;
    assert_eq!(status, 200);
    assert!(body.contains(r#""status":"ok""#));
    let (status, body) = app.get("/ready").await;
    assert_eq!(
        (status, body.contains(r#""ready":true"#)),
        (200, true),
        "{body}"
    );
    app.stop().await;
}

#[tokio::test]
async fn redis_down_gives_error_answers_and_no_half_hooks() {
    let redis = PrivateRedis::start();
    let env = Env::on("api-redis-down", &redis.url());
    let app = env.start().await;
    let kept = app.create_hook("http://h/kept", "").await;

    redis.stop();
    let (status, body) = app.api("create", "callbackURL=http%3A%2F%2Fh%2Fnew").await;
    assert_eq!(status, 200);
    assert!(
        body.contains("<messageKey>createHookError</messageKey>"),
        "{body}"
    );
    let (_, body) = app.api("destroy", &format!("hookID={kept}")).await;
    assert!(
        body.contains("<messageKey>destroyHookError</messageKey>"),
        "{body}"
    );
    // Memory did not change: the list (served from memory) is as before.
    let (_, list) = app.api("list", "").await;
    assert_eq!(hook_ids(&list), vec![kept.clone()]);
    let (status, _) = app.get("/health").await;
    assert_eq!(status, 200, "the service keeps running");

    // Redis back, empty (no persistence): the service notices, writes the hooks it holds in
    // memory again, and creates work again.
    redis.restart();
    let ok = eventually(WAIT, || async {
        let (_, body) = app.api("create", "callbackURL=http%3A%2F%2Fh%2Fnew").await;
        body.contains("SUCCESS")
    })
    .await;
    assert!(ok, "create works once Redis is back");
    let restored = eventually(WAIT, || async {
        let mut conn = env.redis().await;
        let ids: Vec<String> = conn.smembers(env.hooks_set()).await.unwrap_or_default();
        ids.contains(&kept) && ids.len() == 2
    })
    .await;
    assert!(
        restored,
        "the kept hook is rewritten from memory beside the new one"
    );
    let m = app.app.metrics.render();
    assert!(m.contains("bbb_webhooks_redis_data_lost_total 1\n"), "{m}");
    app.stop().await;
}

#[tokio::test]
async fn hooks_calls_before_redis_answers_get_their_error_xml() {
    let redis = PrivateRedis::start();
    let env = Env::on("api-not-ready", &redis.url());
    redis.stop();
    let app = bbb_webhooks::app::start(env.config()).await.unwrap();
    let base = format!("http://{}", app.api_addr);
    let c = bbb_webhooks::api::checksum::sign("hooks/list", "", SECRET, ChecksumAlgorithm::Sha1);
    let body = reqwest::get(format!("{base}/bigbluebutton/api/hooks/list?checksum={c}"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        body.contains("<messageKey>listHookError</messageKey>"),
        "{body}"
    );
    let r = reqwest::get(format!("{base}/ready")).await.unwrap();
    assert_eq!(r.status(), 503);
    redis.restart();
    assert!(
        app.ready(Duration::from_secs(10)).await,
        "ready once Redis answers"
    );
    app.shutdown().await.expect("a clean stop");
}

#[tokio::test]
async fn the_number_of_hooks_is_bounded() {
    let env = Env::new("api-max").with("hooks.maxHooks", json!(2));
    let app = env.start().await;
    app.create_hook("http://h/1", "").await;
    app.create_hook("http://h/2", "").await;
    let (_, body) = app.api("create", "callbackURL=http%3A%2F%2Fh%2F3").await;
    assert!(
        body.contains("<messageKey>tooManyHooks</messageKey>"),
        "{body}"
    );
    let (_, body) = app.api("create", "callbackURL=http%3A%2F%2Fh%2F1").await;
    assert!(
        body.contains("duplicateWarning"),
        "a duplicate is still a duplicate: {body}"
    );
    app.stop().await;
}
