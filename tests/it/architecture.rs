//! The import rules of `src/lib.rs`, checked on the source: data flows one way, input →
//! processing (enqueuer, mapping, routing, state, event, xapi) → queue → delivery, with the side
//! modules beside it and `app` on top. No stage reaches past the queue or back up the pipeline,
//! nothing imports `app` or `api`, and the modules form no cycle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// A module's place: a stage of the pipeline (its position), at the side, or the wiring on top.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Stage(u8),
    Side,
    Top,
}

fn place(module: &str) -> Place {
    match module {
        "input" => Place::Stage(0),
        "enqueuer" | "mapping" | "routing" | "state" | "event" | "forward" | "xapi" => {
            Place::Stage(1)
        }
        "queue" => Place::Stage(2),
        "delivery" => Place::Stage(3),
        "app" => Place::Top,
        _ => Place::Side,
    }
}

/// The library's top-level modules, from `src/lib.rs`.
fn modules(src: &Path) -> Vec<String> {
    std::fs::read_to_string(src.join("lib.rs"))
        .unwrap()
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pub mod "))
        .map(|m| m.trim_end_matches(';').to_string())
        .collect()
}

fn files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Module → the other top-level modules its code (not its comments) names as `crate::…`, with
/// the full path named.
fn imports(src: &Path, modules: &[String]) -> BTreeMap<String, BTreeSet<(String, String)>> {
    let mut graph = BTreeMap::new();
    for m in modules {
        let mut paths = Vec::new();
        let dir = src.join(m);
        if dir.is_dir() {
            files(&dir, &mut paths);
        }
        let file = src.join(format!("{m}.rs"));
        if file.is_file() {
            paths.push(file);
        }
        let mut used = BTreeSet::new();
        for p in paths {
            let text = std::fs::read_to_string(&p).unwrap();
            for line in text.lines().filter(|l| !l.trim_start().starts_with("//")) {
                for (at, _) in line.match_indices("crate::") {
                    let path: String = line[at + 7..]
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                        .collect();
                    let target = path.split("::").next().unwrap_or("").to_string();
                    if &target != m && modules.contains(&target) {
                        used.insert((target, path));
                    }
                }
            }
        }
        graph.insert(m.clone(), used);
    }
    graph
}

const CATALOG: &str = "mapping::catalog";

fn allowed(from: &str, to: &str, path: &str) -> bool {
    // The list of event ids is a pure table that the API and the configuration check against.
    if path.starts_with("mapping::catalog") {
        return true;
    }
    match (place(from), place(to)) {
        (Place::Top, _) => true,
        (_, Place::Top) => false,
        (_, _) if to == "api" => false,
        (Place::Side, Place::Side) => true,
        (Place::Side, Place::Stage(_)) => false,
        (Place::Stage(_), Place::Side) => true,
        // Within processing; the enqueuer writes the queue; each stage takes the previous
        // stage's hand-off (the enqueuer `input::RawMessage`, delivery the queue).
        (Place::Stage(a), Place::Stage(b)) => a == b || (a == 1 && b == 2) || a == b + 1,
    }
}

#[test]
fn imports_follow_the_pipeline_without_cycles() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let modules = modules(&src);
    assert!(modules.contains(&"enqueuer".to_string()), "{modules:?}");
    let graph = imports(&src, &modules);

    let wrong: Vec<String> = graph
        .iter()
        .flat_map(|(from, used)| {
            used.iter()
                .filter(|(to, path)| !allowed(from, to, path))
                .map(move |(_, path)| format!("{from} → crate::{path}"))
        })
        .collect();
    assert!(wrong.is_empty(), "imports against the pipeline: {wrong:#?}");

    // No cycle among the top-level modules: repeatedly remove modules that import nothing left.
    // The event catalogue (`mapping::catalog`) is a node of its own: a table that imports
    // nothing, which the configuration and the API check event ids against.
    fn node(path: &str) -> &str {
        if path.starts_with(CATALOG) {
            CATALOG
        } else {
            path.split("::").next().unwrap_or("")
        }
    }
    let catalog_file = src.join("mapping/catalog.rs");
    let catalog_text = std::fs::read_to_string(&catalog_file).unwrap();
    assert!(
        !catalog_text.contains("crate::") && !catalog_text.contains("super::"),
        "the catalogue imports nothing"
    );
    let mut left: BTreeMap<&str, BTreeSet<&str>> = graph
        .iter()
        .map(|(m, used)| (m.as_str(), used.iter().map(|(_, p)| node(p)).collect()))
        .collect();
    left.insert(CATALOG, BTreeSet::new());
    loop {
        let leaves: Vec<&str> = left
            .iter()
            .filter(|(_, used)| used.iter().all(|t| !left.contains_key(t)))
            .map(|(m, _)| *m)
            .collect();
        if leaves.is_empty() {
            break;
        }
        for m in leaves {
            left.remove(m);
        }
    }
    assert!(left.is_empty(), "an import cycle among: {left:?}");
}

#[test]
fn the_rules_would_catch_the_old_wiring() {
    // The checker itself: the imports this layout replaced are refused.
    assert!(!allowed("enqueuer", "delivery", "delivery::Notifier"));
    assert!(!allowed("enqueuer", "app", "app::SHUTDOWN_GRACE"));
    assert!(!allowed("input", "api", "api::Readiness"));
    assert!(!allowed("queue", "delivery", "delivery::Ack"));
    assert!(!allowed("hooks", "delivery", "delivery::DeliveryPool"));
    assert!(allowed("delivery", "queue", "queue::HookQueue"));
    assert!(allowed("enqueuer", "input", "input::RawMessage"));
}
