//! Meetings the service missed (created while it did not run): bbb-web is asked, once, and
//! the events carry what it lists. The bbb-web here is real HTTP on loopback that checks the
//! checksum as bbb-web does and counts the calls.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::extract::{Query, State};
use serde_json::{Value, json};
use sha1::Digest;

use crate::helpers::*;

/// A bbb-web answering `getMeetings` with `meetings` ((internal, external, metadata)).
struct FakeBbbWeb {
    base: String,
    calls: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeBbbWeb {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type Listed = Arc<Vec<(String, String, Value)>>;

async fn get_meetings(
    State((meetings, calls)): State<(Listed, Arc<AtomicUsize>)>,
    Query(query): Query<std::collections::HashMap<String, String>>,
) -> String {
    calls.fetch_add(1, Ordering::SeqCst);
    // bbb-web: sha1(call name + query without checksum + secret); the query is empty here.
    let want = sha1::Sha1::digest(format!("getMeetings{SECRET}").as_bytes());
    let want: String = want.iter().map(|b| format!("{b:02x}")).collect();
    if query.get("checksum") != Some(&want) {
        return "<response><returncode>FAILED</returncode><messageKey>checksumError</messageKey><message>Checksums do not match</message></response>".into();
    }
    let mut xml = String::from("<response><returncode>SUCCESS</returncode><meetings>");
    for (internal, external, metadata) in meetings.iter() {
        let meta: String = metadata
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| format!("<{k}>{}</{k}>", v.as_str().unwrap_or("")))
            .collect();
        xml.push_str(&format!(
            "<meeting><meetingName>Name of {external}</meetingName><meetingID>{external}</meetingID>\
             <internalMeetingID>{internal}</internalMeetingID><createTime>1</createTime>\
             <attendees></attendees><metadata>{meta}</metadata></meeting>"
        ));
    }
    xml.push_str("</meetings></response>");
    xml
}

impl FakeBbbWeb {
    async fn start(meetings: Vec<(String, String, Value)>) -> FakeBbbWeb {
        let calls = Arc::new(AtomicUsize::new(0));
        let app = axum::Router::new()
            .route(
                "/bigbluebutton/api/getMeetings",
                axum::routing::get(get_meetings),
            )
            .with_state((Arc::new(meetings), calls.clone()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeBbbWeb {
            base: format!("http://{addr}/bigbluebutton/api"),
            calls,
            task,
        }
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

fn external_of(event: &Value) -> Option<&str> {
    event["data"]["attributes"]["meeting"]["external-meeting-id"].as_str()
}

#[tokio::test]
async fn a_missed_meeting_is_found_at_bbb_web_and_its_scoped_hook_receives() {
    let bbb = FakeBbbWeb::start(vec![(
        "int-missed".into(),
        "ext-missed".into(),
        json!({"bbb-origin": "Moodle"}),
    )])
    .await;
    let env = Env::new("mm-found")
        .with("bbb.apiUrl", json!(bbb.base))
        .with("hooks.includeMeetingMetadata", json!(true));
    let rx = Receiver::start().await;
    let app = env.start().await;
    app.create_hook(&rx.url("/scoped"), "&meetingID=ext-missed")
        .await;
    // No meeting-created: the service was not running then.
    env.publish(&[
        user_joined("int-missed", "w_1", "user-1"),
        chat("int-missed", "w_1", "hello"),
    ])
    .await;
    let got = rx.wait_for("/scoped", 2, WAIT).await;
    let events: Vec<Value> = got.iter().flat_map(|r| r.events()).collect();
    assert_eq!(ids(&events), ["user-joined", "chat-group-message-sent"]);
    for e in &events {
        assert_eq!(external_of(e), Some("ext-missed"), "{e}");
        assert_eq!(
            e["data"]["attributes"]["meeting"]["metadata"],
            json!({"bbb-origin": "Moodle"})
        );
    }
    assert_eq!(bbb.calls(), 1, "asked once");
    let metrics = app.app.metrics.render();
    assert!(
        metrics.contains("bbb_webhooks_meeting_lookups_total{result=\"found\"} 1"),
        "{metrics}"
    );
    // The mapping is the one meeting-created would have made: it is in Redis.
    let mut conn = env.redis().await;
    let stored: usize = redis::AsyncCommands::scard(&mut conn, env.key("proc:mappings"))
        .await
        .unwrap();
    assert_eq!(stored, 1);
    app.stop().await;
}

#[tokio::test]
async fn with_bbb_web_down_the_event_still_goes_out_and_is_counted() {
    let nobody = format!("http://127.0.0.1:{}/bigbluebutton/api", free_port());
    let env = Env::new("mm-down").with("bbb.apiUrl", json!(nobody));
    let rx = Receiver::start().await;
    let app = env.start().await;
    app.create_hook(&rx.url("/all"), "").await;
    env.publish(&[chat("int-down", "w_1", "still delivered")])
        .await;
    let got = rx.wait_for("/all", 1, WAIT).await;
    let event = &got[0].events()[0];
    assert_eq!(event["data"]["id"], "chat-group-message-sent");
    assert_eq!(
        event["data"]["attributes"]["meeting"],
        json!({"internal-meeting-id": "int-down"}),
        "as before: no external id"
    );
    let metrics = app.app.metrics.render();
    assert!(
        metrics.contains("bbb_webhooks_meeting_lookups_total{result=\"failed\"} 1"),
        "{metrics}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_flood_of_unknown_meetings_asks_bbb_web_at_most_once_each() {
    // Half the meetings bbb-web lists, half it does not (ended, or made up).
    let listed: Vec<(String, String, Value)> = (0..20)
        .map(|i| (format!("int-f{i}"), format!("ext-f{i}"), json!({})))
        .collect();
    let bbb = FakeBbbWeb::start(listed).await;
    let env = Env::new("mm-flood").with("bbb.apiUrl", json!(bbb.base));
    let rx = Receiver::start().await;
    let app = env.start().await;
    app.create_hook(&rx.url("/all"), "").await;
    let meetings = 40;
    let rounds = 5;
    let messages: Vec<String> = (0..rounds)
        .flat_map(|r| {
            (0..meetings).map(move |i| chat(&format!("int-f{i}"), "w_1", &format!("{r}")))
        })
        .collect();
    env.publish(&messages).await;
    let got = rx.wait_for("/all", meetings * rounds, WAIT).await;
    let calls = bbb.calls();
    assert!(
        (1..=meetings).contains(&calls),
        "{calls} calls for {meetings} unknown meetings"
    );
    for r in &got {
        for e in r.events() {
            let internal = e["data"]["attributes"]["meeting"]["internal-meeting-id"]
                .as_str()
                .unwrap()
                .to_string();
            let n: usize = internal.trim_start_matches("int-f").parse().unwrap();
            let want = (n < 20).then(|| format!("ext-f{n}"));
            assert_eq!(external_of(&e).map(String::from), want, "{e}");
        }
    }
    let metrics = app.app.metrics.render();
    assert!(
        metrics.contains("bbb_webhooks_meeting_lookups_total{result=\"found\"} 20"),
        "{metrics}"
    );
    assert!(
        metrics.contains("bbb_webhooks_meeting_lookups_total{result=\"not_found\"} 20"),
        "{metrics}"
    );
    app.stop().await;
}
