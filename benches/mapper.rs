//! Mapper throughput on a realistic mix: the BigBlueButton 3.0 meeting of the test fixtures
//! (create, joins, presenter, audio, camera, screen share, chat, reactions, raised hands, poll,
//! leaves, end), mapped from a fresh state each time, plus the baseline's load mix (a new user
//! joining and a public chat message, alternately, in a running meeting).
//!
//! `cargo bench --bench mapper`; the number to read is the throughput in messages/s.

use std::hint::black_box;

use bbb_webhooks::mapping::Mapper;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::json;

fn meeting_fixture() -> Vec<Vec<u8>> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/bbb-3.0-meeting/input.jsonl"
    );
    std::fs::read_to_string(path)
        .expect("the fixture is in the repository")
        .lines()
        .map(|l| l.as_bytes().to_vec())
        .collect()
}

fn load_mix(n: usize) -> (Vec<u8>, Vec<Vec<u8>>) {
    let meeting = "183f0bf3a0982a127bdb8161e0c44eb696b3e75c-1700000000000";
    let created = json!({"envelope":{"name":"MeetingCreatedEvtMsg","routing":{"sender":"bbb-apps-akka"},"timestamp":1},
        "core":{"header":{"name":"MeetingCreatedEvtMsg"},"body":{"props":{"meetingProp":{"name":"m","extId":"ext","intId":meeting,"isBreakout":false}}}}});
    let messages = (0..n)
        .map(|i| {
            let user = format!("w_{i}");
            let (name, body) = if i % 2 == 0 {
                ("UserJoinedMeetingEvtMsg", json!({"intId":user,"extId":format!("ext-{i}"),"name":"Student","role":"VIEWER","guest":false,"authed":true,"guestStatus":"ALLOW","emoji":"none","reactionEmoji":"none","raiseHand":false,"away":false,"pin":false,"presenter":false,"locked":true,"avatar":"","color":"#7b1fa2","clientType":"HTML5"}))
            } else {
                ("GroupChatMessageBroadcastEvtMsg", json!({"chatId":"MAIN-PUBLIC-GROUP-CHAT","msg":{"id":format!("c-{i}"),"timestamp":1700000000000u64 + i as u64,"correlationId":"x","sender":{"id":format!("w_{}", i - 1),"name":"Student","role":"VIEWER"},"chatEmphasizedText":true,"message":"Hello, everyone!"}}))
            };
            json!({"envelope":{"name":name,"routing":{"msgType":"BROADCAST_TO_MEETING","meetingId":meeting,"userId":user},"timestamp":1700000000000u64 + i as u64},
                   "core":{"header":{"name":name,"meetingId":meeting,"userId":user},"body":body}})
                .to_string()
                .into_bytes()
        })
        .collect();
    (created.to_string().into_bytes(), messages)
}

fn bench(c: &mut Criterion) {
    let fixture = meeting_fixture();
    let mut group = c.benchmark_group("mapper");
    group.throughput(Throughput::Elements(fixture.len() as u64));
    group.bench_function("bbb-3.0 meeting (24 messages, fresh state)", |b| {
        b.iter(|| {
            let mut m = Mapper::default();
            for msg in &fixture {
                black_box(m.map(black_box(msg), 1).ok());
            }
        })
    });

    let (created, mix) = load_mix(1000);
    group.throughput(Throughput::Elements(mix.len() as u64));
    group.bench_function("join + chat load mix (1000 messages)", |b| {
        b.iter(|| {
            let mut m = Mapper::default();
            let _ = m.map(&created, 1);
            for msg in &mix {
                black_box(m.map(black_box(msg), 1).ok());
            }
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
