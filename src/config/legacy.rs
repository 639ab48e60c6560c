//! The bbb-webhooks 3.x YAML layout, translated into ours.
//!
//! 3.x nests most settings under `modules."<module path>".config`; we flatten them into the
//! `api`, `hooks` and `redis` sections. Every key of a 3.x file ends up in one of three places:
//! taken over (translated into our layout), set aside with a note (it has a value someone chose
//! and that value has no effect here), or skipped quietly (it holds exactly what BigBlueButton's
//! package writes into its own `default.yml`, which the operator never wrote, cannot remove, and
//! which changes nothing here). This module does not merge layers nor check values: that is
//! [`super::load`]'s and [`super::settings`]' work.

use serde_json::{Map, Value, json};

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

/// The Redis connection keys 3.x reads from its storage and input modules.
const REDIS_KEYS: [&str; 3] = ["host", "port", "password"];

/// bbb-webhooks 3.x's own default for `log.filename`: a file directly in `/var/log`, where the
/// unit we ship (and BigBlueButton's, under its user) cannot create it. Taken as "not set", so
/// our default in `/var/log/bbb-webhooks/` applies.
pub const LEGACY_DEFAULT_LOG_FILE: &str = "/var/log/bbb-webhooks.log";

/// A 3.x file in our layout, and what happened to the keys that did not carry over.
#[derive(Debug, Default)]
pub struct Translation {
    pub tree: Map<String, Value>,
    /// Keys set aside that someone may have meant: one sentence each, for `config check` and
    /// the start-up warnings.
    pub notes: Vec<String>,
    /// Keys skipped because they hold the stock values of BigBlueButton's package: dotted names,
    /// for one debug line.
    pub skipped: Vec<String>,
}

/// The values BigBlueButton's package writes (3.5.0's `default.example.yml`, then its
/// post-install script) for keys that have no effect here. A key holding these (or a part of
/// them) is skipped quietly; any other value gets a note.
fn stock_value(key: &str) -> Option<Value> {
    Some(match key {
        // Written by the post-install script of older packages (2.x names, read by no 3.x code).
        "server" => json!({"bind": "127.0.0.1", "port": 3005}),
        "hooks" => json!({"getRaw": false}),
        // The webhooks module's dead keys, as in the example file.
        "queue" => json!({"enabled": false, "maxSize": 10000, "concurrency": 1}),
        "retry" => json!({"attempts": 12, "initialInterval": 1, "increaseFactor": 2}),
        "queueSize" => json!(10000),
        // Written by the post-install script of newer packages; 3.x never reads it.
        "getRaw" => json!(false),
        _ => return None,
    })
}

/// Whether `value` says nothing but what `stock` says: the same scalar (a number may be written
/// as text, as yq writes it), or an object whose keys all hold their stock values.
fn is_stock(value: &Value, stock: &Value) -> bool {
    match (value, stock) {
        (Value::Object(v), Value::Object(s)) => v
            .iter()
            .all(|(k, x)| s.get(k).is_some_and(|y| is_stock(x, y))),
        (Value::String(text), Value::Number(n)) => text.trim() == n.to_string(),
        (Value::String(text), Value::Bool(b)) => text.trim() == b.to_string(),
        (v, s) => v == s,
    }
}

/// Translates a tree that has a `modules` section (the 3.x layout). A tree without one is ours
/// and is returned as it is.
pub fn translate(mut tree: Map<String, Value>) -> Translation {
    let mut out = Translation::default();
    let Some(modules) = tree.remove("modules") else {
        out.tree = tree;
        return out;
    };
    top_level(&mut tree, &mut out);
    out.tree = tree;
    let Value::Object(modules) = modules else {
        out.notes
            .push("modules is not a mapping of module entries: ignored".into());
        return out;
    };
    // The input module's Redis is where BigBlueButton publishes, so it is read last and wins
    // within one file; the storage module's applies where the input module says nothing.
    let mut ordered: Vec<(String, Value)> = modules.into_iter().collect();
    ordered.sort_by_key(|(name, _)| name == IN_REDIS);
    let mut redis_from: Option<(&'static str, Map<String, Value>)> = None;
    for (name, module) in ordered {
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
            let disabled = entry.get("enabled") == Some(&Value::Bool(false));
            match name.as_str() {
                DB_REDIS | IN_REDIS | OUT_WEBHOOKS if disabled => out.notes.push(format!(
                    "modules.\"{name}\".enabled is false: this service has no such switch, \
                     the module's work is always done: ignored"
                )),
                _ => {}
            }
            match name.as_str() {
                DB_REDIS => {
                    let redis = redis_keys(&config);
                    for k in config.keys() {
                        if !REDIS_KEYS.contains(&k.as_str()) {
                            out.notes.push(format!(
                                "modules.\"{DB_REDIS}\".config.{k} is not a known key: ignored"
                            ));
                        }
                    }
                    take_redis(&mut out, &mut redis_from, "storage", redis);
                }
                IN_REDIS => translate_input(config, &mut out, &mut redis_from),
                OUT_WEBHOOKS => translate_webhooks(config, &mut out),
                OUT_XAPI => translate_xapi(&entry, config, &mut out),
                other => out.notes.push(format!(
                    "modules.\"{other}\" is not a known module: ignored"
                )),
            }
        }
    }
    out
}

/// The xAPI module's entry: `enabled`, `config.lrs.lrs_*` and `config.uuid_namespace` move to
/// `xapi.*`. Its `config.redis` (the keys of its own stores, and the connection) is ours to
/// choose: its stock key names are skipped, anything else gets a note.
fn translate_xapi(entry: &Value, config: Map<String, Value>, out: &mut Translation) {
    let mut xapi = Map::new();
    match entry.get("enabled") {
        Some(Value::Bool(b)) => {
            xapi.insert("enabled".into(), Value::Bool(*b));
        }
        Some(Value::String(text)) => match super::parse_bool(text) {
            Some(b) => {
                xapi.insert("enabled".into(), Value::Bool(b));
            }
            None => out.notes.push(format!(
                "modules.\"{OUT_XAPI}\".enabled {text:?} is not a boolean: ignored"
            )),
        },
        _ => {}
    }
    let mut lrs = Map::new();
    for (k, v) in config {
        match (k.as_str(), v) {
            ("lrs", Value::Object(items)) => {
                for (name, value) in items {
                    let ours = match name.as_str() {
                        "lrs_endpoint" => "endpoint",
                        "lrs_username" => "username",
                        "lrs_password" => "password",
                        "lrs_token" => "token",
                        _ => {
                            out.notes.push(format!(
                                "modules.\"{OUT_XAPI}\".config.lrs.{name} is not a known key: ignored"
                            ));
                            continue;
                        }
                    };
                    let text = match value {
                        Value::String(t) => t,
                        Value::Null => continue,
                        other => other.to_string(),
                    };
                    lrs.insert(ours.into(), Value::String(text));
                }
            }
            ("uuid_namespace", Value::String(ns)) => {
                xapi.insert("uuidNamespace".into(), Value::String(ns));
            }
            ("redis", value) => {
                let stock = json!({"keys": {
                    "meetings": "bigbluebutton:webhooks:xapi:meetings",
                    "meetingPrefix": "bigbluebutton:webhooks:xapi:meeting",
                    "users": "bigbluebutton:webhooks:xapi:users",
                    "userPrefix": "bigbluebutton:webhooks:xapi:user",
                    "polls": "bigbluebutton:webhooks:xapi:polls",
                    "pollPrefix": "bigbluebutton:webhooks:xapi:poll",
                }});
                if is_stock(&value, &stock) {
                    out.skipped
                        .push(format!("modules.\"{OUT_XAPI}\".config.redis"));
                } else {
                    out.notes.push(format!(
                        "modules.\"{OUT_XAPI}\".config.redis is not used: xAPI keeps its state \
                         on the service's Redis, under redis.keys.ownPrefix: ignored"
                    ));
                }
            }
            (other, _) => out.notes.push(format!(
                "modules.\"{OUT_XAPI}\".config.{other} is not a known key: ignored"
            )),
        }
    }
    if !lrs.is_empty() {
        xapi.insert("lrs".into(), Value::Object(lrs));
    }
    if !xapi.is_empty() {
        match out.tree.get_mut("xapi") {
            Some(Value::Object(existing)) => existing.extend(xapi),
            _ => {
                out.tree.insert("xapi".into(), Value::Object(xapi));
            }
        }
    }
}

/// The top-level keys of a 3.x file that are not ours: 2.x sections the package still writes,
/// and 3.x's own default log file.
fn top_level(tree: &mut Map<String, Value>, out: &mut Translation) {
    for key in ["server", "hooks"] {
        let Some(value) = tree.remove(key) else {
            continue;
        };
        let stock = stock_value(key).unwrap_or(Value::Null);
        let Value::Object(items) = value else {
            out.notes.push(format!(
                "{key} is a bbb-webhooks 2.x section that 3.x does not read either: ignored"
            ));
            continue;
        };
        for (k, v) in items {
            let dotted = format!("{key}.{k}");
            if stock.get(&k).is_some_and(|s| is_stock(&v, s)) {
                out.skipped.push(dotted);
            } else {
                let instead = match key {
                    "server" => {
                        "the API address is modules.\"../out/webhooks/index.js\".config.api (api.bind, api.port)"
                    }
                    _ => {
                        "hook settings live under modules.\"../out/webhooks/index.js\".config (hooks.* in our layout)"
                    }
                };
                out.notes.push(format!(
                    "{dotted} is a bbb-webhooks 2.x key that 3.x does not read either ({instead}): \
                     ignored"
                ));
            }
        }
    }
    let stock_log_file = tree
        .get("log")
        .and_then(|log| log.get("filename"))
        .is_some_and(|f| f.as_str() == Some(LEGACY_DEFAULT_LOG_FILE));
    if stock_log_file && let Some(Value::Object(log)) = tree.get_mut("log") {
        log.remove("filename");
        out.skipped.push("log.filename".into());
    }
}

/// `host`, `port` and `password` of a module's Redis connection; an empty password counts as
/// none (3.x's example leaves it commented out).
fn redis_keys(config: &Map<String, Value>) -> Map<String, Value> {
    REDIS_KEYS
        .iter()
        .filter_map(|k| {
            let v = config.get(*k)?;
            let empty = v.is_null() || v.as_str().is_some_and(str::is_empty);
            (!empty).then(|| (k.to_string(), v.clone()))
        })
        .collect()
}

/// Takes one module's Redis connection into `redis.*`. This service has one Redis connection
/// setting for everything; when the two modules of one file name different servers, the input
/// module's wins (it is read last) and a note says so, without the password.
fn take_redis(
    out: &mut Translation,
    seen: &mut Option<(&'static str, Map<String, Value>)>,
    module: &'static str,
    redis: Map<String, Value>,
) {
    if redis.is_empty() {
        return;
    }
    if let Some((other, earlier)) = seen.as_ref() {
        let differs = REDIS_KEYS.iter().any(
            |k| matches!((earlier.get(*k), redis.get(*k)), (Some(a), Some(b)) if !is_stock(a, b)),
        );
        if differs {
            let shown = |m: &Map<String, Value>| {
                format!(
                    "{}:{}",
                    m.get("host").map_or("(default host)".into(), plain),
                    m.get("port").map_or("(default port)".into(), plain)
                )
            };
            out.notes.push(format!(
                "the {other} module and the {module} module name different Redis servers \
                 ({} and {}, or different passwords); this service uses one Redis for both: \
                 the {module} module's",
                shown(earlier),
                shown(&redis)
            ));
        }
    }
    let section = out
        .tree
        .entry("redis")
        .or_insert_with(|| Value::Object(Map::new()));
    if !section.is_object() {
        *section = Value::Object(Map::new());
    }
    if let Value::Object(section) = section {
        for (k, v) in &redis {
            section.insert(k.clone(), v.clone());
        }
    }
    let mut merged = seen.take().map(|(_, m)| m).unwrap_or_default();
    merged.extend(redis);
    *seen = Some((module, merged));
}

fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The input module: its channels, and its Redis connection (where the 3.x example file shows
/// `#password: foobar`).
fn translate_input(
    config: Map<String, Value>,
    out: &mut Translation,
    seen: &mut Option<(&'static str, Map<String, Value>)>,
) {
    for (key, value) in config {
        let Value::Object(redis) = value else {
            out.notes.push(format!(
                "modules.\"{IN_REDIS}\".config.{key} is not a known key: ignored"
            ));
            continue;
        };
        if key != "redis" {
            out.notes.push(format!(
                "modules.\"{IN_REDIS}\".config.{key} is not a known key: ignored"
            ));
            continue;
        }
        for k in redis.keys() {
            if k != "inboundChannels" && !REDIS_KEYS.contains(&k.as_str()) {
                out.notes.push(format!(
                    "modules.\"{IN_REDIS}\".config.redis.{k} is not a known key: ignored"
                ));
            }
        }
        if let Some(channels) = redis.get("inboundChannels") {
            set(
                &mut out.tree,
                &["redis", "inboundChannels"],
                channels.clone(),
            );
        }
        take_redis(out, seen, "input", redis_keys(&redis));
    }
}

fn translate_webhooks(config: Map<String, Value>, out: &mut Translation) {
    for (key, value) in config {
        let dotted = format!("modules.\"{OUT_WEBHOOKS}\".config.{key}");
        if key == "api" {
            if let Value::Object(api) = value {
                for (k, v) in api {
                    set(&mut out.tree, &["api", &k], v);
                }
            }
        } else if HOOK_KEYS.contains(&key.as_str()) {
            set(&mut out.tree, &["hooks", &key], value);
        } else if let Some(stock) = stock_value(&key)
            && is_stock(&value, &stock)
        {
            out.skipped.push(dotted);
        } else {
            let why = match key.as_str() {
                "queue" => {
                    "every hook always has a durable, ordered queue here (hooks.queueSize bounds it)"
                }
                "retry" => "bbb-webhooks 3.x never reads it; retries follow retryIntervals",
                "queueSize" => {
                    "bbb-webhooks 3.x never reads it; the bound of each hook's queue is \
                     hooks.queueSize in config.yml"
                }
                "getRaw" => {
                    "bbb-webhooks 3.x never reads it; raw delivery is chosen per hook \
                     (getRaw=true) or per permanent URL"
                }
                "server" | "redis" => "this service does not read it from the webhooks module",
                _ => "it is not a known key",
            };
            out.notes
                .push(format!("{dotted} has no effect here ({why}): ignored"));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn translate_json(tree: Value) -> Translation {
        translate(tree.as_object().unwrap().clone())
    }

    #[test]
    fn the_xapi_module_moves_into_xapi() {
        let t = translate_json(json!({
            "modules": {"../out/xapi/index.js": {"enabled": true, "type": "out", "config": {
                "lrs": {"lrs_endpoint": "http://127.0.0.1:9109/xapi", "lrs_username": "lrs-user",
                        "lrs_password": "lrs-pass", "lrs_token": "tok", "lrs_other": 1},
                "uuid_namespace": "6f1c7a9e-3b52-4d0e-9a8c-2f5e1b7d4c63",
                "redis": {"keys": {"meetings": "bigbluebutton:webhooks:xapi:meetings"}}
            }}}
        }));
        assert_eq!(
            t.tree["xapi"],
            json!({"enabled": true, "uuidNamespace": "6f1c7a9e-3b52-4d0e-9a8c-2f5e1b7d4c63",
                   "lrs": {"endpoint": "http://127.0.0.1:9109/xapi", "username": "lrs-user",
                           "password": "lrs-pass", "token": "tok"}})
        );
        assert_eq!(t.notes.len(), 1, "{:?}", t.notes);
        assert!(t.notes[0].contains("lrs_other"));
        assert_eq!(
            t.skipped,
            vec!["modules.\"../out/xapi/index.js\".config.redis"]
        );
        // 3.x reads XAPI_ENABLED as text: a string is taken as a boolean.
        let t = translate_json(json!({
            "modules": {"../out/xapi/index.js": {"enabled": "false", "config": {
                "redis": {"keys": {"polls": "elsewhere"}}}}}
        }));
        assert_eq!(t.tree["xapi"], json!({"enabled": false}));
        assert!(
            t.notes[0].contains("config.redis is not used"),
            "{:?}",
            t.notes
        );
    }

    #[test]
    fn modules_move_into_our_sections() {
        let t = translate_json(json!({
            "bbb": {"serverDomain": "bbb.example.com", "auth2_0": true},
            "modules": {
                "../in/redis/index.js": {"enabled": true, "type": "in",
                    "config": {"redis": {"inboundChannels": ["a", "b"]}}},
                "../out/webhooks/index.js": {"enabled": true, "type": "out", "config": {
                    "api": {"bind": "0.0.0.0", "port": 4000},
                    "permanentURLs": [{"url": "https://x/y", "getRaw": false}],
                    "retryIntervals": [1, 2],
                    "queue": {"enabled": true},
                    "getRaw": true
                }}
            }
        }));
        let out = &t.tree;
        assert_eq!(out["bbb"]["serverDomain"], "bbb.example.com");
        assert_eq!(out["redis"]["inboundChannels"], json!(["a", "b"]));
        assert_eq!(out["api"]["bind"], "0.0.0.0");
        assert_eq!(out["api"]["port"], 4000);
        assert_eq!(out["hooks"]["retryIntervals"], json!([1, 2]));
        assert_eq!(out["hooks"]["permanentURLs"][0]["url"], "https://x/y");
        assert!(out.get("modules").is_none());
        assert_eq!(t.notes.len(), 2, "{:?}", t.notes);
        assert!(t.skipped.is_empty());
    }

    #[test]
    fn stock_values_are_skipped_quietly_and_others_noted() {
        let t = translate_json(json!({
            "server": {"port": "3005"},
            "hooks": {"getRaw": false},
            "log": {"file": false, "filename": "/var/log/bbb-webhooks.log"},
            "modules": {"../out/webhooks/index.js": {"config": {
                "queue": {"enabled": false, "maxSize": 10000, "concurrency": 1},
                "retry": {"attempts": 12, "initialInterval": 1, "increaseFactor": 2},
                "queueSize": 10000,
                "getRaw": false
            }}}
        }));
        assert!(t.notes.is_empty(), "{:?}", t.notes);
        assert_eq!(t.skipped.len(), 7, "{:?}", t.skipped);
        assert_eq!(t.tree["log"], json!({"file": false}));
        assert!(t.tree.get("server").is_none() && t.tree.get("hooks").is_none());

        let t = translate_json(json!({
            "server": {"port": 4000},
            "hooks": {"permanentURLs": ["https://x"]},
            "log": {"filename": "/var/log/bbb-webhooks/mine.log"},
            "modules": {"../out/webhooks/index.js": {"config": {
                "queue": {"enabled": true}, "retry": {"attempts": 3}, "queueSize": 5
            }}}
        }));
        assert_eq!(t.notes.len(), 5, "{:?}", t.notes);
        assert!(t.skipped.is_empty(), "{:?}", t.skipped);
        assert_eq!(t.tree["log"]["filename"], "/var/log/bbb-webhooks/mine.log");
    }

    #[test]
    fn the_input_modules_redis_is_taken_and_wins_within_a_file() {
        let t = translate_json(json!({
            "modules": {
                "../in/redis/index.js": {"config": {"redis": {
                    "host": "127.0.0.1", "port": 6380, "password": "pw", "inboundChannels": ["c"]}}},
                "../db/redis/index.js": {"config": {"host": "127.0.0.1", "port": 6379}}
            }
        }));
        assert_eq!(t.tree["redis"]["port"], 6380);
        assert_eq!(t.tree["redis"]["password"], "pw");
        assert_eq!(t.tree["redis"]["inboundChannels"], json!(["c"]));
        assert_eq!(t.notes.len(), 1, "{:?}", t.notes);
        assert!(t.notes[0].contains("127.0.0.1:6379 and 127.0.0.1:6380"));
        assert!(!t.notes[0].contains("pw"));

        // The stock file: both modules on the same server, nothing to say.
        let t = translate_json(json!({
            "modules": {
                "../db/redis/index.js": {"enabled": true, "type": "db",
                    "config": {"host": "127.0.0.1", "port": 6379}},
                "../in/redis/index.js": {"enabled": true, "type": "in",
                    "config": {"redis": {"host": "127.0.0.1", "port": 6379, "password": null}}},
                "../out/xapi/index.js": {"enabled": false, "type": "out", "config": {"lrs": {}}}
            }
        }));
        assert!(t.notes.is_empty(), "{:?}", t.notes);
        assert_eq!(t.tree["redis"], json!({"host": "127.0.0.1", "port": 6379}));
    }
}
