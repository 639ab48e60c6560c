//! Unit tests of the mapper; the fixtures (tests/it/fixtures.rs) cover each event in full.

use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;

fn map_all(messages: &[Value]) -> Vec<Vec<Event>> {
    let mut m = Mapper::default();
    messages
        .iter()
        .map(|v| m.map(v.to_string().as_bytes(), 1).unwrap_or_default())
        .collect()
}

fn envelope(name: &str, body: Value) -> Value {
    json!({"envelope": {"name": name, "routing": {"meetingId": "m", "userId": "u"}, "timestamp": 5},
           "core": {"header": {"name": name, "meetingId": "m", "userId": "u"}, "body": body}})
}

#[test]
fn errors_say_what_is_wrong() {
    let mut m = Mapper::default();
    assert!(matches!(m.map(b"not json", 0), Err(MapError::Malformed(_))));
    assert!(matches!(m.map(b"[1,2]", 0), Err(MapError::Malformed(_))));
    assert!(matches!(
        m.map(b"{\"x\":1}", 0),
        Err(MapError::Malformed(_))
    ));
    assert!(matches!(
        m.map(&[0xff, 0xfe], 0),
        Err(MapError::Malformed(_))
    ));
    let unknown = envelope("NobodyKnowsEvtMsg", json!({}));
    assert_eq!(
        m.map(unknown.to_string().as_bytes(), 0).unwrap_err(),
        MapError::Unknown("NobodyKnowsEvtMsg".into())
    );
    let huge = vec![b' '; MAX_MESSAGE_BYTES + 1];
    assert_eq!(m.map(&huge, 0).unwrap_err(), MapError::TooLarge);
    let no_user = envelope("UserJoinedMeetingEvtMsg", json!({}));
    let mut no_user = no_user;
    no_user["core"]["header"]["userId"] = json!("");
    no_user["envelope"]["routing"]["userId"] = json!("");
    assert!(matches!(
        m.map(no_user.to_string().as_bytes(), 0),
        Err(MapError::MissingField(_))
    ));
}

#[test]
fn an_event_right_after_a_join_carries_the_external_ids() {
    // The reference raced here (its §5.8): the mapping is written before the next message now.
    let created = json!({"envelope": {"name": "MeetingCreatedEvtMsg", "routing": {}, "timestamp": 1},
        "core": {"header": {"name": "MeetingCreatedEvtMsg"}, "body": {"props": {"meetingProp": {"intId": "m", "extId": "ext"}}}}});
    let out = map_all(&[
        created,
        envelope(
            "UserJoinedMeetingEvtMsg",
            json!({"intId": "u", "extId": "x-u", "name": "U"}),
        ),
        envelope("UserMutedVoiceEvtMsg", json!({"muted": true})),
    ]);
    let muted: Value = serde_json::from_str(&out[2][0].json).unwrap();
    assert_eq!(
        muted["data"]["attributes"]["meeting"]["external-meeting-id"],
        "ext"
    );
    assert_eq!(
        muted["data"]["attributes"]["user"]["external-user-id"],
        "x-u"
    );
    assert_eq!(out[2][0].external_meeting_id.as_deref(), Some("ext"));
}

#[test]
fn raw_is_the_input_and_spoofs_are_themselves() {
    let joined = envelope(
        "UserJoinedMeetingEvtMsg",
        json!({"intId": "u", "extId": "x", "name": "N"}),
    );
    let text = joined.to_string();
    let mut m = Mapper::default();
    let events = m.map(text.as_bytes(), 1).unwrap();
    assert_eq!(events[0].payload(true), text);
    let ended = json!({"envelope": {"name": "MeetingDestroyedEvtMsg", "routing": {}, "timestamp": 9},
        "core": {"header": {"name": "MeetingDestroyedEvtMsg"}, "body": {"meetingId": "m"}}});
    let events = m.map(ended.to_string().as_bytes(), 1).unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].id, "user-left");
    assert_eq!(
        events[0].payload(true),
        events[0].json,
        "a spoof has no input of its own"
    );
    assert_eq!(events[1].payload(true), ended.to_string());
    // The spoof has a real user-left's shape and the message's time.
    let spoof: Value = serde_json::from_str(&events[0].json).unwrap();
    assert_eq!(
        spoof["data"]["attributes"]["user"],
        json!({"internal-user-id": "u", "external-user-id": "x", "guest": false})
    );
    assert_eq!(spoof["data"]["event"]["ts"], 9);
}

#[test]
fn activity_is_noted_for_mapped_meetings() {
    let created = json!({"envelope": {"name": "MeetingCreatedEvtMsg", "routing": {}, "timestamp": 1},
        "core": {"header": {"name": "MeetingCreatedEvtMsg"}, "body": {"props": {"meetingProp": {"intId": "m", "extId": "ext"}}}}});
    let mut m = Mapper::default();
    m.map(created.to_string().as_bytes(), 1_000).unwrap();
    m.map(
        envelope("UserTalkingVoiceEvtMsg", json!({"talking": true}))
            .to_string()
            .as_bytes(),
        50_000,
    )
    .unwrap();
    assert_eq!(m.state.meeting("m").unwrap().last_activity, 50_000);
}

/// Arbitrary JSON values, nested a few levels.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        "[a-zA-Z_ -]{0,12}".prop_map(Value::String),
        prop_oneof![
            Just("not-used"),
            Just(""),
            Just("m"),
            Just("u"),
            Just("raiseHand")
        ]
        .prop_map(|s| Value::String(s.to_string())),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec(
                (
                    prop_oneof![
                        "[a-zA-Z_]{1,10}",
                        Just("userId".to_string()),
                        Just("intId".to_string()),
                        Just("meetingId".to_string()),
                        Just("meeting_id".to_string()),
                        Just("user".to_string()),
                        Just("props".to_string()),
                        Just("poll".to_string()),
                        Just("msg".to_string()),
                        Just("chatId".to_string()),
                        Just("muted".to_string()),
                    ],
                    inner
                ),
                0..6
            )
            .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// Every name the mapper knows, so the fuzzing reaches every handler.
fn known_name() -> impl Strategy<Value = String> {
    let mut names: Vec<String> = HANDLERS
        .0
        .keys()
        .chain(HANDLERS.1.keys())
        .map(|s| s.to_string())
        .collect();
    names.sort();
    prop::sample::select(names)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let mut m = Mapper::default();
        let _ = m.map(&bytes, 0);
    }

    #[test]
    fn arbitrary_json_never_panics(v in json_value()) {
        let mut m = Mapper::default();
        let _ = m.map(v.to_string().as_bytes(), 0);
    }

    #[test]
    fn known_messages_with_arbitrary_bodies_never_panic(
        name in known_name(),
        body in json_value(),
        header in json_value(),
        meeting in prop_oneof![Just(Value::from("m")), json_value()],
    ) {
        let mut m = Mapper::default();
        let envelope = json!({"envelope": {"name": name, "routing": {"meetingId": meeting, "userId": "u"}, "timestamp": 1},
                              "core": {"header": header, "body": body.clone()}});
        let legacy = json!({"header": {"name": name, "current_time": 1}, "payload": body});
        // Twice each, so state built by the first run meets the second.
        for _ in 0..2 {
            let _ = m.map(envelope.to_string().as_bytes(), 0);
            let _ = m.map(legacy.to_string().as_bytes(), 0);
        }
        let _ = m.map(json!({"data": {"id": name}}).to_string().as_bytes(), 0);
    }
}
