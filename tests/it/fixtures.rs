//! The fixtures: raw messages replayed through the mapper give exactly the expected events.
//!
//! Sets: every folder of `tests/fixtures`, each with a `sources.md` naming where every input's
//! shape comes from (`seed-1.x`, `bbb-3.0-meeting` and the inputs of `seed-1.x-candidates` are
//! copies of the project's shared fixtures: the suite reads nothing outside the repository). A new
//! folder is replayed without being listed here: `bbb-3.0-new-events` and `bbb-2.6-new-events`
//! hold the 3.x events, `lenient-shapes` the messages that vary.
//! Line i of `expected.jsonl` is the array of events line i of the input must produce; an expected
//! `ts` of `"now"` matches any time within the replay.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use bbb_webhooks::mapping::{Mapper, catalog};
use bbb_webhooks::time::now_ms;
use serde_json::Value;

struct Set {
    name: String,
    input: PathBuf,
    expected: PathBuf,
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn sets() -> Vec<Set> {
    let mut dirs: Vec<_> = std::fs::read_dir(root().join("tests/fixtures"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("input.jsonl").exists())
        // xAPI sets (expected statements, not events) are tests/it/xapi.rs's.
        .filter(|p| !p.join("expected-statements.jsonl").exists())
        .collect();
    dirs.sort();
    dirs.into_iter()
        .map(|dir| {
            assert!(
                dir.join("sources.md").exists(),
                "{}: every fixture names its sources",
                dir.display()
            );
            Set {
                name: dir.file_name().unwrap().to_string_lossy().into_owned(),
                input: dir.join("input.jsonl"),
                expected: dir.join("expected.jsonl"),
            }
        })
        .collect()
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(String::from)
        .collect()
}

/// Replaces an expected `"now"` with the actual time after checking it lies in the window.
fn settle_now(expected: &mut Value, actual: &Value, window: (u64, u64), at: &str) {
    for place in ["/data/event/ts", "/data/attributes/event/ts"] {
        if expected.pointer(place) == Some(&Value::String("now".into())) {
            let ts = actual.pointer(place).and_then(Value::as_u64).unwrap_or(0);
            assert!(
                ts >= window.0 && ts <= window.1,
                "{at}: ts {ts} is not the time of receipt"
            );
            *expected.pointer_mut(place).unwrap() = Value::from(ts);
        }
    }
}

/// Replays a set; returns the event ids it produced.
fn replay(set: &Set) -> BTreeSet<String> {
    let input = lines(&set.input);
    let expected = lines(&set.expected);
    assert_eq!(
        input.len(),
        expected.len(),
        "{}: one expected line per input line",
        set.name
    );
    let mut mapper = Mapper::default();
    let mut seen = BTreeSet::new();
    for (i, (line, want)) in input.iter().zip(&expected).enumerate() {
        let at = format!("{} line {}", set.name, i + 1);
        let start = now_ms();
        let events = mapper.map(line.as_bytes(), now_ms()).unwrap_or_default();
        let window = (start, now_ms());
        let want: Vec<Value> = serde_json::from_str(want).unwrap();
        let passthrough =
            serde_json::from_str::<Value>(line).is_ok_and(|v| v.get("data").is_some());
        assert_eq!(events.len(), want.len(), "{at}: number of events");
        for (event, mut want) in events.iter().zip(want) {
            let got: Value = serde_json::from_str(&event.json).unwrap();
            settle_now(&mut want, &got, window, &at);
            assert_eq!(got, want, "{at}");
            if !passthrough {
                assert_eq!(
                    got["data"]["event"], got["data"]["attributes"]["event"],
                    "{at}: ts in both places"
                );
            }
            seen.insert(event.id.to_string());
        }
    }
    seen
}

#[test]
fn every_fixture_maps_to_exactly_its_expected_events() {
    let mut seen = BTreeSet::new();
    for set in sets() {
        seen.extend(replay(&set));
    }
    let missing: Vec<&str> = catalog::EVENTS
        .iter()
        .map(|e| e.id)
        .filter(|id| !seen.contains(*id))
        .collect();
    assert!(
        missing.is_empty(),
        "event ids no fixture produces: {missing:?}"
    );
}

/// Runs the binary with `args` (a `map` command) and `envs`, and parses each line it prints.
/// No shared secret anywhere (map signs nothing and needs none), no metadata setting but `envs`'.
fn run_map(args: &[&OsStr], envs: &[(&str, &str)]) -> Vec<Value> {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_bbb-webhooks"))
        .args(args)
        .env_remove("SHARED_SECRET")
        .env_remove("INCLUDE_MEETING_METADATA")
        .envs(envs.iter().copied())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn the_map_command_prints_the_fixture_events() {
    let input = root().join("tests/fixtures/bbb-3.0-meeting/input.jsonl");
    let got = run_map(
        &["map".as_ref(), "--per-message".as_ref(), input.as_os_str()],
        &[],
    );
    let want: Vec<Value> = lines(&root().join("tests/fixtures/bbb-3.0-meeting/expected.jsonl"))
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(got, want);

    // From standard input, one event per line; a bad line is reported and skipped.
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_bbb-webhooks"))
        .arg("map")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    let msgs = lines(&input);
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "{}\nnot json\n{}", msgs[0], msgs[1]).unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let events: Vec<&str> = std::str::from_utf8(&out.stdout).unwrap().lines().collect();
    assert_eq!(events.len(), 2);
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 2: malformed message"));
}

/// Every event of every fixture, in order, with the payloads normal and raw hooks receive.
fn all_events() -> Vec<(String, bbb_webhooks::event::Event)> {
    let mut out = Vec::new();
    for set in sets() {
        let mut mapper = Mapper::default();
        for (i, line) in lines(&set.input).iter().enumerate() {
            for event in mapper.map(line.as_bytes(), now_ms()).unwrap_or_default() {
                out.push((format!("{} line {}", set.name, i + 1), event));
            }
        }
    }
    out
}

#[test]
fn no_event_carries_a_join_url_not_even_to_raw_hooks() {
    // The breakout messages carry join URLs signed with the shared secret: whoever holds one
    // joins the room. The fixtures have them (tests/fixtures/*-new-events, lenient-shapes).
    let inputs: String = sets()
        .iter()
        .flat_map(|s| lines(&s.input))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        inputs.contains("/bigbluebutton/api/join?"),
        "the fixtures have join URLs"
    );
    for (at, event) in all_events() {
        for raw in [false, true] {
            let payload = event.payload(raw);
            assert!(
                !payload.contains("/api/join") && !payload.contains("checksum="),
                "{at}: {} (raw: {raw}) carries a join URL",
                event.id
            );
        }
    }
}

#[test]
fn one_guest_decision_is_one_event_however_many_moderators_hear_of_it() {
    let decisions: Vec<(String, String)> = all_events()
        .into_iter()
        .filter(|(at, e)| at.starts_with("bbb-3.0-new-events") && e.id.starts_with("guest-"))
        .map(|(_, e)| {
            let v: Value = serde_json::from_str(&e.json).unwrap();
            let guest = v["data"]["attributes"]["user"]["internal-user-id"].as_str();
            (e.id.to_string(), guest.unwrap_or("?").to_string())
        })
        .collect();
    // Two decisions in one list sent to two moderators plus each guest's own copy, then one
    // decision whose guest copy came first: seven messages, three decisions.
    let want = [
        ("guest-approved", "w_guest4"),
        ("guest-denied", "w_guest5"),
        ("guest-approved", "w_guest6"),
    ];
    assert_eq!(
        decisions,
        want.map(|(e, g)| (e.to_string(), g.to_string())).to_vec()
    );
}

#[test]
fn meeting_metadata_is_one_more_key_when_asked_and_nothing_when_not() {
    // Off (the default, what every other test replays) the bytes are the reference's; on, each
    // event of a meeting with metadata differs by exactly `,"metadata":{…}` after its ids.
    for set in ["bbb-3.0-new-events", "bbb-2.6-new-events", "bbb-1.x-extras"] {
        let input = lines(&root().join(format!("tests/fixtures/{set}/input.jsonl")));
        let mut off = Mapper::default();
        let mut on = Mapper::default().with_meeting_metadata(true);
        let mut metadata_of = std::collections::HashMap::new();
        let mut with_metadata = 0;
        for (i, line) in input.iter().enumerate() {
            let at = format!("{set} line {}", i + 1);
            let plain = off.map(line.as_bytes(), 1).unwrap_or_default();
            let rich = on.map(line.as_bytes(), 1).unwrap_or_default();
            assert_eq!(plain.len(), rich.len(), "{at}");
            for (p, r) in plain.iter().zip(&rich) {
                let meeting: Value = serde_json::from_str(&p.json).unwrap();
                let meeting = &meeting["data"]["attributes"]["meeting"];
                let internal = meeting["internal-meeting-id"].as_str().unwrap_or("");
                if p.id == "meeting-created" {
                    metadata_of.insert(internal.to_string(), meeting["metadata"].clone());
                    assert_eq!(p.json, r.json, "{at}: meeting-created has its own");
                    continue;
                }
                let Some(metadata) = metadata_of.get(internal) else {
                    assert_eq!(p.json, r.json, "{at}: no metadata known");
                    continue;
                };
                let key = format!(",\"metadata\":{metadata}");
                assert_eq!(r.json.matches(&key).count(), 1, "{at}: {}", r.json);
                assert_eq!(r.json.replacen(&key, "", 1), p.json, "{at}");
                let got: Value = serde_json::from_str(&r.json).unwrap();
                assert_eq!(&got["data"]["attributes"]["meeting"]["metadata"], metadata);
                // Raw hooks get the message as published (the breakout events' own JSON aside).
                if matches!(p.raw, bbb_webhooks::event::Raw::Input(_)) {
                    assert_eq!(r.payload(true), p.payload(true), "{at}: the raw message");
                }
                with_metadata += 1;
            }
        }
        assert!(
            with_metadata >= 10,
            "{set}: {with_metadata} events carried metadata"
        );
    }
}

#[test]
fn the_map_command_reads_the_configuration_serve_reads() {
    let input = root().join("tests/fixtures/bbb-2.6-new-events/input.jsonl");
    let run = |args: &[&str], envs: &[(&str, &str)]| -> Vec<Value> {
        let mut all: Vec<&OsStr> = args.iter().map(|a| a.as_ref()).collect();
        all.extend(["map".as_ref(), input.as_os_str()]);
        run_map(&all, envs)
    };
    let metadata = |events: &[Value]| -> usize {
        events
            .iter()
            .filter(|e| e["data"]["id"] != "meeting-created")
            .filter(|e| e["data"]["attributes"]["meeting"]["metadata"].is_object())
            .count()
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.yml");
    std::fs::write(&file, "hooks:\n  includeMeetingMetadata: true\n").unwrap();
    let file = file.to_string_lossy().into_owned();

    let plain = run(
        &["--config", &file],
        &[("INCLUDE_MEETING_METADATA", "false")],
    );
    assert_eq!(metadata(&plain), 0, "the environment wins over the file");
    let from_file = run(&["--config", &file], &[]);
    let from_env = run(&[], &[("INCLUDE_MEETING_METADATA", "true")]);
    assert_eq!(from_file, from_env);
    assert!(metadata(&from_file) >= 10, "{from_file:?}");
}
