//! The fixture's meeting (tests/fixtures/xapi-3.0-meeting) through the mapper and this module,
//! compared field by field with what bbb-webhooks 3.5.0 sent. tests/it/xapi.rs does the same
//! through the real service, Redis and an LRS on loopback.

use serde_json::{Value, json};

use super::*;
use crate::config::Secret;
use crate::mapping::Mapper;

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/xapi-3.0-meeting"
);
pub const NAMESPACE: &str = "6f1c7a9e-3b52-4d0e-9a8c-2f5e1b7d4c63";

fn lines(name: &str) -> Vec<Value> {
    std::fs::read_to_string(format!("{FIXTURE}/{name}"))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn settings() -> Settings {
    let mut s = Settings::default();
    s.bbb.server_domain = "localhost".into();
    s.bbb.shared_secret = Some(Secret::new("testsecret"));
    s.xapi.enabled = true;
    s.xapi.uuid_namespace = Some(NAMESPACE.into());
    s.xapi.lrs.endpoint = Some("http://127.0.0.1:9109/xapi".into());
    s.xapi.lrs.username = Some("lrs-user".into());
    s.xapi.lrs.password = Some(Secret::new("lrs-pass"));
    s
}

fn xapi(s: &Settings) -> Xapi {
    let keys = Keys::new(&s.redis.keys);
    Xapi::new(s, keys, Metrics::new(false), Arc::new(Notify::new()))
        .unwrap()
        .unwrap()
}

/// Every statement the fixture's input makes, with the index of its input line.
fn run(x: &mut Xapi, inputs: &[Value]) -> Vec<(usize, Value)> {
    let mut mapper = Mapper::default();
    let mut out = Vec::new();
    for (i, line) in inputs.iter().enumerate() {
        let events = mapper
            .map(line["message"].to_string().as_bytes(), 1_700_000_000_000)
            .unwrap_or_default();
        for e in &events {
            x.process(e);
        }
        for s in x.take_batch().statements {
            out.push((i, serde_json::from_str(&s.json).unwrap()));
        }
    }
    out
}

/// Removes a dotted path (`body.timestamp` minus its `body.`) from a statement.
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

/// The expected statements, volatile fields removed and our two deliberate fixes applied.
pub fn expected_with_fixes(ns: uuid::Uuid) -> Vec<(usize, Value, Vec<String>)> {
    lines("expected-statements.jsonl")
        .into_iter()
        .map(|line| {
            let mut body = line["body"].clone();
            let volatile: Vec<String> = line["volatile"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_string())
                .collect();
            let verb = body["verb"]["id"].as_str().unwrap().to_string();
            if verb.ends_with("/posted") {
                // The chat message's own id (input line 14).
                let fixed = uuid::Uuid::new_v5(&ns, b"1698771232706-9idm9pxf");
                body["object"]["id"] = json!(format!("https://localhost/xapi/activities/{fixed}"));
            }
            if verb.ends_with("/answered") {
                body["actor"]["account"]["name"] = json!("Mary Sue");
            }
            (
                line["input_index"].as_u64().unwrap() as usize,
                body,
                volatile,
            )
        })
        .collect()
}

#[test]
fn the_fixture_meeting_makes_the_reference_statements() {
    let s = settings();
    let mut x = xapi(&s);
    let got = run(&mut x, &lines("input.jsonl"));
    let want = expected_with_fixes(s.xapi.namespace().unwrap());
    assert_eq!(got.len(), want.len(), "{got:#?}");
    for ((gi, mut g), (wi, mut w, volatile)) in got.into_iter().zip(want) {
        assert_eq!(gi, wi, "input line of {g}");
        for path in &volatile {
            remove(&mut g, path);
            remove(&mut w, path);
        }
        assert_eq!(g, w, "statement of input line {wi}");
    }
    assert_eq!(x.meetings(), 0, "the ended meeting is forgotten");
}

#[test]
fn the_two_fixed_reference_bugs() {
    let s = settings();
    let mut x = xapi(&s);
    let got = run(&mut x, &lines("input.jsonl"));
    let chat = &got.iter().find(|(i, _)| *i == 14).unwrap().1;
    assert_ne!(
        chat["object"]["id"],
        json!("https://localhost/xapi/activities/7dc4c3bf-f783-5645-beb4-c91b2c2c161a"),
        "not the hash of undefined_<time>"
    );
    let answered = &got.iter().find(|(i, _)| *i == 20).unwrap().1;
    assert_eq!(answered["actor"]["account"]["name"], json!("Mary Sue"));
}

#[test]
fn meetings_can_opt_out_and_unknown_meetings_send_nothing() {
    let s = settings();
    let mut inputs = lines("input.jsonl");
    inputs[0]["message"]["core"]["body"]["props"]["metadataProp"]["metadata"] =
        json!({"xapi-enabled": "false"});
    let mut x = xapi(&s);
    assert!(run(&mut x, &inputs).is_empty());
    // Without its meeting-created, a meeting sends nothing (its context is unknown).
    let mut x = xapi(&s);
    assert!(run(&mut x, &lines("input.jsonl")[1..]).is_empty());
}

#[test]
fn the_actor_of_created_and_ended_can_be_named() {
    let s = settings();
    let mut inputs = lines("input.jsonl");
    inputs[0]["message"]["core"]["body"]["props"]["metadataProp"]["metadata"] =
        json!({"xapi-create-end-actor-name": "LMS"});
    let mut x = xapi(&s);
    let got = run(&mut x, &inputs);
    assert_eq!(got[0].1["actor"]["account"]["name"], json!("LMS"));
    assert_eq!(
        got.last().unwrap().1["actor"]["account"]["name"],
        json!("LMS")
    );
    assert_eq!(got[1].1["actor"]["account"]["name"], json!("John Doe"));
}

#[test]
fn a_bad_payload_sends_nothing_for_that_meeting() {
    let s = settings();
    let mut inputs = lines("input.jsonl");
    inputs[0]["message"]["core"]["body"]["props"]["metadataProp"]["metadata"] =
        json!({"secret-lrs-payload": "U2FsdGVkX1+garbagegarbagegarbagegarbage=="});
    let mut x = xapi(&s);
    assert!(run(&mut x, &inputs).is_empty());
}

#[test]
fn invalid_namespaces_keep_xapi_off() {
    let mut s = settings();
    // The reference's shipped example: hex, but no version nor variant.
    s.xapi.uuid_namespace = Some("01234567-89ab-cdef-0123-456789abcdef".into());
    let keys = Keys::new(&s.redis.keys);
    let e = Xapi::new(&s, keys, Metrics::new(false), Arc::new(Notify::new())).err();
    assert!(e.is_some_and(|e| e.to_string().contains("01234567-89ab-cdef")));
}

#[test]
#[ignore]
fn measure_process_cost() {
    let s = settings();
    let mut x = xapi(&s);
    let inputs = lines("input.jsonl");
    run(&mut x, &inputs[..2]);
    let mut mapper = Mapper::default();
    for l in &inputs[..2] {
        let _ = mapper.map(l["message"].to_string().as_bytes(), 1);
    }
    let chat = inputs[14]["message"].to_string();
    let events: Vec<_> = (0..10_000)
        .flat_map(|_| mapper.map(chat.as_bytes(), 1).unwrap())
        .collect();
    let start = std::time::Instant::now();
    for e in &events {
        x.process(e);
    }
    let b = x.take_batch();
    let took = start.elapsed();
    eprintln!(
        "xapi process: {} events, {} statements, {:.1} µs each",
        events.len(),
        b.statements.len(),
        took.as_secs_f64() * 1e6 / events.len() as f64
    );
}
