//! The documents that must not drift from the code: the event reference and the dashboard.

use std::collections::BTreeSet;
use std::path::Path;

use bbb_webhooks::mapping::catalog;
use serde_json::Value;

fn read(path: &str) -> String {
    let full = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

/// Every event any fixture expects (`tests/fixtures/*/expected.jsonl`), `"now"` times replaced
/// by the example's.
fn fixture_events() -> Vec<Value> {
    let mut files: Vec<_> =
        std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures"))
            .unwrap()
            .map(|entry| entry.unwrap().path().join("expected.jsonl"))
            .filter(|p| p.exists())
            .collect();
    files.sort();
    files
        .iter()
        .flat_map(|f| {
            std::fs::read_to_string(f)
                .unwrap_or_else(|e| panic!("{}: {e}", f.display()))
                .lines()
                .filter(|l| !l.trim().is_empty())
                .flat_map(|l| serde_json::from_str::<Vec<Value>>(l).unwrap())
                .collect::<Vec<_>>()
        })
        .collect()
}

fn same_event(example: &Value, fixture: &Value) -> bool {
    let mut f = fixture.clone();
    for place in ["/data/event/ts", "/data/attributes/event/ts"] {
        if f.pointer(place) == Some(&Value::String("now".into())) {
            *f.pointer_mut(place).unwrap() = example.pointer(place).cloned().unwrap_or(Value::Null);
        }
    }
    &f == example
}

#[test]
fn the_event_reference_documents_every_event_with_a_real_example() {
    let doc = read("docs/events.md");
    let fixtures = fixture_events();
    let sections: Vec<&str> = doc.split("\n### `").skip(1).collect();
    let documented: Vec<&str> = sections
        .iter()
        .map(|s| s.split('`').next().unwrap())
        .collect();
    let catalogued: Vec<&str> = catalog::EVENTS.iter().map(|e| e.id).collect();
    assert_eq!(
        documented, catalogued,
        "one section per event id, in the catalogue's order"
    );

    for (section, info) in sections.iter().zip(catalog::EVENTS) {
        let section = section.split("\n## ").next().unwrap();
        let produced = section
            .lines()
            .find(|l| l.starts_with("Produced by:"))
            .unwrap_or_else(|| panic!("{}: no `Produced by:` line", info.id));
        for source in info.sources {
            assert!(
                produced.contains(&format!("`{source}`")),
                "{}: {source} is not named",
                info.id
            );
        }
        assert!(
            section.contains("| attribute | source | type | notes |"),
            "{}: no attribute table",
            info.id
        );
        let blocks: Vec<&str> = section
            .split("```json\n")
            .skip(1)
            .map(|b| b.split("\n```").next().unwrap())
            .collect();
        assert_eq!(blocks.len(), 1, "{}: exactly one example", info.id);
        let example: Value =
            serde_json::from_str(blocks[0]).unwrap_or_else(|e| panic!("{}: {e}", info.id));
        assert_eq!(example["data"]["id"], info.id);
        assert!(
            fixtures.iter().any(|f| same_event(&example, f)),
            "{}: the example is not an output of the mapper (see the fixtures)",
            info.id
        );
    }
}

#[test]
fn the_dashboard_queries_only_metrics_the_service_exports() {
    let dashboard: Value =
        serde_json::from_str(&read("dashboards/bbb-webhooks.json")).expect("valid JSON");
    let exported: BTreeSet<String> = bbb_webhooks::metrics::Metrics::new(true)
        .names()
        .iter()
        .cloned()
        .collect();
    let mut queried = BTreeSet::new();
    fn walk(v: &Value, out: &mut BTreeSet<String>) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    if k == "expr" || k == "query" {
                        if let Some(e) = v.as_str() {
                            let mut rest = e;
                            while let Some(at) = rest.find("bbb_webhooks_") {
                                let name: String = rest[at..]
                                    .chars()
                                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                                    .collect();
                                rest = &rest[at + name.len()..];
                                out.insert(name);
                            }
                        }
                    } else {
                        walk(v, out);
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    walk(&dashboard, &mut queried);
    assert!(
        queried.len() >= 10,
        "the dashboard queries the service: {queried:?}"
    );
    let unknown: Vec<&String> = queried.difference(&exported).collect();
    assert!(
        unknown.is_empty(),
        "metrics the service does not export: {unknown:?}"
    );
}
