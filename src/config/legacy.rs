//! The bbb-webhooks 3.x YAML layout, translated into ours.
//!
//! 3.x nests most settings under `modules."<module path>".config`; we flatten them into the
//! `api`, `hooks` and `redis` sections. Keys that have no meaning here are reported so the
//! operator knows they were read and set aside.

use serde_json::{Map, Value};

const IN_REDIS: &str = "../in/redis/index.js";
const OUT_WEBHOOKS: &str = "../out/webhooks/index.js";
const DB_REDIS: &str = "../db/redis/index.js";
const OUT_XAPI: &str = "../out/xapi/index.js";

/// Keys of the webhooks module's config that move to `hooks.<same name>`.
const HOOK_KEYS: &[&str] = &[
    "permanentURLs",
    "includeEvents",
    "excludeEvents",
    "hookChecksumAlgorithm",
    "retryIntervals",
    "permanentIntervalReset",
    "requestTimeout",
    "multiEvent",
];

/// Keys of the webhooks module's config that 3.x never read and its stock `default.yml` writes:
/// nobody relies on their value, so they are skipped without a note. `queueSize` (10000 there)
/// would otherwise cap our queues far below the default that holds a 30-minute outage.
const DEAD_STOCK_KEYS: &[&str] = &["queueSize"];

/// Keys of the webhooks module's config that 3.x itself never reads (dead config) or that name
/// features we do differently.
const SET_ASIDE_KEYS: &[&str] = &["queue", "retry", "getRaw", "server", "redis"];

/// Translates a tree that may hold a `modules` section. Returns the tree in our layout and notes
/// on what was set aside.
pub fn translate(mut tree: Map<String, Value>) -> (Map<String, Value>, Vec<String>) {
    let mut notes = Vec::new();
    let Some(Value::Object(modules)) = tree.remove("modules") else {
        return (tree, notes);
    };
    for (name, module) in modules {
        // A module entry may be one object or an array of them.
        let entries = match module {
            Value::Array(items) => items,
            other => vec![other],
        };
        for entry in entries {
            let config = entry
                .get("config")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            match name.as_str() {
                IN_REDIS => {
                    if let Some(channels) = config.pointer_obj("redis", "inboundChannels") {
                        set(&mut tree, &["redis", "inboundChannels"], channels);
                    }
                }
                DB_REDIS => {
                    for key in ["host", "port", "password"] {
                        if let Some(v) = config.get(key) {
                            set(&mut tree, &["redis", key], v.clone());
                        }
                    }
                }
                OUT_WEBHOOKS => translate_webhooks(config, &mut tree, &mut notes),
                OUT_XAPI => {
                    if entry.get("enabled") == Some(&Value::Bool(true)) {
                        notes.push(format!(
                            "modules.\"{OUT_XAPI}\" is enabled there: xAPI output is not \
                             implemented and is ignored"
                        ));
                    }
                }
                other => notes.push(format!(
                    "modules.\"{other}\" is not a known module: ignored"
                )),
            }
        }
    }
    (tree, notes)
}

fn translate_webhooks(
    config: Map<String, Value>,
    tree: &mut Map<String, Value>,
    notes: &mut Vec<String>,
) {
    for (key, value) in config {
        if key == "api" {
            if let Value::Object(api) = value {
                for (k, v) in api {
                    set(tree, &["api", &k], v);
                }
            }
        } else if HOOK_KEYS.contains(&key.as_str()) {
            set(tree, &["hooks", &key], value);
        } else if DEAD_STOCK_KEYS.contains(&key.as_str()) {
            tracing::debug!(key = %key, "a key bbb-webhooks 3.x never read: skipped");
        } else if SET_ASIDE_KEYS.contains(&key.as_str()) {
            notes.push(format!(
                "modules.\"{OUT_WEBHOOKS}\".config.{key} has no effect here: ignored"
            ));
        } else {
            notes.push(format!(
                "modules.\"{OUT_WEBHOOKS}\".config.{key} is not a known key: ignored"
            ));
        }
    }
}

fn set(tree: &mut Map<String, Value>, path: &[&str], value: Value) {
    let (last, parents) = path.split_last().expect("non-empty path");
    let mut node = tree;
    for p in parents {
        let entry = node
            .entry(p.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if !entry.is_object() {
            *entry = Value::Object(Map::new());
        }
        node = entry.as_object_mut().expect("just made an object");
    }
    node.insert(last.to_string(), value);
}

trait PointerObj {
    fn pointer_obj(&self, a: &str, b: &str) -> Option<Value>;
}

impl PointerObj for Map<String, Value> {
    fn pointer_obj(&self, a: &str, b: &str) -> Option<Value> {
        self.get(a)?.get(b).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn modules_move_into_our_sections() {
        let tree = json!({
            "bbb": {"serverDomain": "bbb.example.com", "auth2_0": true},
            "modules": {
                "../in/redis/index.js": {"enabled": true, "type": "in",
                    "config": {"redis": {"inboundChannels": ["a", "b"]}}},
                "../out/webhooks/index.js": {"enabled": true, "type": "out", "config": {
                    "api": {"bind": "0.0.0.0", "port": 4000},
                    "permanentURLs": [{"url": "https://x/y", "getRaw": false}],
                    "retryIntervals": [1, 2],
                    "queue": {"enabled": false},
                    "getRaw": false
                }}
            }
        });
        let (out, notes) = translate(tree.as_object().unwrap().clone());
        assert_eq!(out["bbb"]["serverDomain"], "bbb.example.com");
        assert_eq!(out["redis"]["inboundChannels"], json!(["a", "b"]));
        assert_eq!(out["api"]["bind"], "0.0.0.0");
        assert_eq!(out["api"]["port"], 4000);
        assert_eq!(out["hooks"]["retryIntervals"], json!([1, 2]));
        assert_eq!(out["hooks"]["permanentURLs"][0]["url"], "https://x/y");
        assert!(out.get("modules").is_none());
        assert_eq!(notes.len(), 2, "{notes:?}");
    }
}
