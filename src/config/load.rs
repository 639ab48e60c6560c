//! Assembling [`Settings`] from its layers, remembering where each value came from, and what is
//! worth a warning about the result.
//!
//! This module owns the layering, the record of sources and the warnings. It does not know what a
//! value means: reading a value into its type is [`super::settings`]' business, and the remaining
//! checks are [`super::validate`]'s.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde_json::{Map, Value};

use super::settings::Settings;
use super::{ConfigError, env, legacy, properties};
use crate::mapping::catalog;

/// Where a configuration value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Default,
    File(PathBuf),
    Env(&'static str),
    Properties(PathBuf),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::File(p) => write!(f, "file {}", p.display()),
            Source::Env(v) => write!(f, "env {v}"),
            Source::Properties(p) => write!(f, "properties {}", p.display()),
        }
    }
}

/// The one directory the systemd unit we ship lets the service write (its `LogsDirectory`).
pub const PACKAGED_LOG_DIR: &str = "/var/log/bbb-webhooks";

/// Files searched when no `--config` is given, lowest precedence first: the bbb-webhooks 3.x
/// files in node-config's order (so an existing installation keeps its settings), then ours.
pub const DEFAULT_FILES: [&str; 4] = [
    "/etc/bigbluebutton/bbb-webhooks/default.yml",
    "/usr/local/bigbluebutton/bbb-webhooks/config/default.yml",
    "/etc/bigbluebutton/bbb-webhooks/production.yml",
    "/etc/bigbluebutton/bbb-webhooks/config.yml",
];

/// The variable that moves the default paths under another directory (see
/// [`ConfigSources::from_process`]).
pub const ROOT_VARIABLE: &str = "BBB_WEBHOOKS_ROOT";

/// Reads one environment variable.
pub type EnvLookup = Box<dyn Fn(&str) -> Option<String>>;

/// Everything configuration is read from. Tests build one by hand; the binary uses
/// [`ConfigSources::from_process`].
pub struct ConfigSources {
    /// YAML files in precedence order (later wins), each with whether it must exist.
    pub files: Vec<(PathBuf, bool)>,
    pub env: EnvLookup,
    pub properties_files: Vec<PathBuf>,
}

impl ConfigSources {
    /// The real environment; `--config FILE` replaces the default file search. The default
    /// paths (YAML files and BigBlueButton's properties) are looked for under the directory
    /// named by `BBB_WEBHOOKS_ROOT` when it is set: for tests and for a package installed into
    /// a scratch root, never needed on a server.
    pub fn from_process(config: Option<PathBuf>) -> Self {
        let root = std::env::var_os(ROOT_VARIABLE)
            .filter(|r| !r.is_empty())
            .map(PathBuf::from);
        let under = |path: &str| match &root {
            Some(root) => root.join(path.trim_start_matches('/')),
            None => PathBuf::from(path),
        };
        let files = match config {
            Some(path) => vec![(path, true)],
            None => DEFAULT_FILES.iter().map(|p| (under(p), false)).collect(),
        };
        ConfigSources {
            files,
            env: Box::new(|name| std::env::var(name).ok()),
            properties_files: properties::DEFAULT_PROPERTIES_FILES
                .iter()
                .map(|p| under(p))
                .collect(),
        }
    }

    /// Built-in defaults only: no files, no environment, no properties.
    pub fn isolated() -> Self {
        ConfigSources {
            files: Vec::new(),
            env: Box::new(|_| None),
            properties_files: Vec::new(),
        }
    }
}

/// Validated settings plus, per dotted key, the layer that set it.
#[derive(Debug)]
pub struct LoadedConfig {
    pub settings: Settings,
    pub sources: BTreeMap<String, Source>,
    /// What loading noticed: keys set aside, variables ignored. [`LoadedConfig::warnings`] has
    /// these and the rest.
    pub notes: Vec<String>,
    /// Keys of bbb-webhooks 3.x files that hold the stock values of BigBlueButton's package and
    /// mean nothing here, per file: not worth a warning, worth one debug line.
    pub skipped: Vec<(PathBuf, Vec<String>)>,
    /// Every file looked for, and what came of it.
    pub files: Vec<FileLookup>,
}

impl LoadedConfig {
    /// The quietly skipped keys in one line: `<file>: <key>, <key>; <file>: …`.
    pub fn skipped_line(&self) -> Option<String> {
        skipped_line(&self.skipped)
    }

    pub fn source_of(&self, key: &str) -> Source {
        self.sources.get(key).cloned().unwrap_or(Source::Default)
    }

    /// Everything worth a warning about this configuration, what `serve` logs and `config check`
    /// prints: the notes taken while loading, then each event id in `hooks.includeEvents` or
    /// `hooks.excludeEvents` that this version never produces.
    pub fn warnings(&self) -> Vec<String> {
        let hooks = &self.settings.hooks;
        let filters = [
            ("hooks.includeEvents", &hooks.include_events),
            ("hooks.excludeEvents", &hooks.exclude_events),
        ];
        let unknown_events = filters.into_iter().flat_map(|(key, ids)| {
            ids.iter()
                .filter(|id| !catalog::is_known(id))
                .map(move |id| {
                    format!(
                        "{key} (from {}) names {id:?}, an event this version does not produce",
                        self.source_of(key)
                    )
                })
        });
        let log_file = &self.settings.log;
        let outside_log_dir = (log_file.file
            && !std::path::Path::new(&log_file.filename).starts_with(PACKAGED_LOG_DIR))
        .then(|| {
            format!(
                "log.filename (from {}) is {:?}, outside {PACKAGED_LOG_DIR}/: the systemd unit \
                 we ship lets the service write nowhere else, so it will not start there",
                self.source_of("log.filename"),
                log_file.filename
            )
        });
        let xapi = self.settings.xapi.problem().map(|p| {
            format!(
                "{p} [xapi.uuidNamespace from {}, xapi.enabled from {}]",
                self.source_of("xapi.uuidNamespace"),
                self.source_of("xapi.enabled")
            )
        });
        self.notes
            .iter()
            .cloned()
            .chain(unknown_events)
            .chain(outside_log_dir)
            .chain(xapi)
            .collect()
    }

    /// Every effective leaf value (secrets redacted) with its source, in key order.
    pub fn describe(&self) -> Vec<(String, String, Source)> {
        let tree = serde_json::to_value(&self.settings).unwrap_or(Value::Null);
        let mut leaves = Vec::new();
        flatten(&tree, String::new(), &mut leaves);
        leaves
            .into_iter()
            .map(|(key, value)| {
                let source = self.source_of(&key);
                let shown = shown_value(&key, &value);
                (key, shown, source)
            })
            .collect()
    }
}

/// Defaults → files → environment → BigBlueButton properties; then typed and validated. What
/// `serve`, `hooks` and `checksum` use: the shared secret is required.
pub fn load(sources: &ConfigSources) -> Result<LoadedConfig, ConfigError> {
    inspect(sources, Needs::Secret).result
}

/// [`load`] for tools that only talk to Redis (`simulate`, `demo`, `bench`): the same layers and
/// checks, but no shared secret is needed.
pub fn load_without_secret(sources: &ConfigSources) -> Result<LoadedConfig, ConfigError> {
    inspect(sources, Needs::Redis).result
}

/// What the caller of [`inspect`] will use the configuration for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    /// Everything, the shared secret included (the service, the API clients).
    Secret,
    /// Redis only (the tools that publish or run a service of their own).
    Redis,
}

/// Everything loading saw, also when the configuration is unusable: what `config check` prints.
#[derive(Debug)]
pub struct Inspection {
    /// Every file looked for, in the order read, and what came of it.
    pub files: Vec<FileLookup>,
    /// Every effective leaf value (secrets redacted) with its source, in key order. When a value
    /// could not be read into its type, the values as written.
    pub values: Vec<(String, String, Source)>,
    /// What [`LoadedConfig::warnings`] says (only the loading notes when no settings could be
    /// typed).
    pub warnings: Vec<String>,
    /// Stock keys of bbb-webhooks 3.x files skipped quietly (see [`LoadedConfig::skipped`]).
    pub skipped: Vec<(PathBuf, Vec<String>)>,
    /// The configuration, or the first thing wrong with it.
    pub result: Result<LoadedConfig, ConfigError>,
}

/// Reads every layer and checks the result, keeping going past the first problem so that
/// everything else can still be shown: a file that cannot be read is left out, a variable that
/// cannot be converted keeps its text, and the table falls back to the values as written.
pub fn inspect(sources: &ConfigSources, needs: Needs) -> Inspection {
    let defaults = serde_json::to_value(Settings::default()).expect("settings serialize");
    let mut tree = defaults.clone();
    let mut origin = BTreeMap::new();
    let mut notes = Vec::new();
    let mut skipped = Vec::new();
    let mut files = Vec::new();
    let mut first_error: Option<ConfigError> = None;

    for (path, required) in &sources.files {
        let file_tree = match read_yaml(path, *required) {
            Ok(Some(file_tree)) => file_tree,
            Ok(None) => {
                let status = if path.exists() {
                    FileStatus::Empty
                } else {
                    FileStatus::Missing
                };
                files.push(FileLookup::new(path, status));
                continue;
            }
            Err(e) => {
                files.push(FileLookup::new(path, FileStatus::Failed));
                first_error.get_or_insert(e);
                continue;
            }
        };
        let legacy = file_tree.contains_key("modules");
        files.push(FileLookup::new(path, FileStatus::Read { legacy }));
        let mut translation = legacy::translate(file_tree);
        if legacy {
            drop_unknown(&mut translation.tree, &defaults, "", &mut translation.notes);
        }
        let shown = path.display();
        notes.extend(
            translation
                .notes
                .into_iter()
                .map(|n| format!("{shown}: {n}")),
        );
        if !translation.skipped.is_empty() {
            skipped.push((path.clone(), translation.skipped));
        }
        merge(
            &mut tree,
            Value::Object(translation.tree),
            "",
            &mut origin,
            &Source::File(path.clone()),
        );
    }

    for item in env::read(&*sources.env) {
        let source = Source::Env(item.variable);
        let value = match item.value {
            Ok(value) => value,
            Err(message) => {
                first_error.get_or_insert(ConfigError::Invalid {
                    key: item.key.to_string(),
                    origin: source.clone(),
                    message,
                });
                // Shown as written; typing it fails again below, which changes nothing.
                Value::String((sources.env)(item.variable).unwrap_or_default())
            }
        };
        set_dotted(&mut tree, item.key, value);
        origin.insert(item.key.to_string(), source);
    }
    for (variable, why) in env::IGNORED {
        if (sources.env)(variable).is_some_and(|v| !v.trim().is_empty()) {
            notes.push(format!("env {variable} is ignored: {why}"));
        }
    }

    files.extend(apply_properties(
        &mut tree,
        &mut origin,
        &sources.properties_files,
    ));

    let typed: Result<Settings, ConfigError> = serde_path_to_error::deserialize(tree.clone())
        .map_err(|e| {
            let key = e.path().to_string();
            ConfigError::Invalid {
                origin: origin.get(&key).cloned().unwrap_or(Source::Default),
                message: e.into_inner().to_string(),
                key,
            }
        });
    let settings = match typed {
        Ok(settings) => settings,
        Err(e) => {
            let error = first_error.unwrap_or(e);
            return Inspection {
                files,
                values: describe_tree(&tree, &origin),
                warnings: notes,
                skipped,
                result: Err(error),
            };
        }
    };
    let loaded = LoadedConfig {
        settings,
        sources: origin,
        notes,
        skipped: skipped.clone(),
        files: files.clone(),
    };
    let values = loaded.describe();
    let warnings = loaded.warnings();
    let checked = match first_error {
        Some(e) => Err(e),
        None => super::validate::validate(&loaded, needs == Needs::Secret),
    };
    Inspection {
        files,
        values,
        warnings,
        skipped,
        result: checked.map(|()| loaded),
    }
}

/// One file looked for while loading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileLookup {
    pub path: PathBuf,
    /// A BigBlueButton properties file (else a YAML configuration file).
    pub properties: bool,
    pub status: FileStatus,
}

impl FileLookup {
    fn new(path: &std::path::Path, status: FileStatus) -> Self {
        FileLookup {
            path: path.to_path_buf(),
            properties: false,
            status,
        }
    }
}

/// What came of looking for one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileStatus {
    /// A YAML file, read; `legacy` when in the bbb-webhooks 3.x layout.
    Read { legacy: bool },
    /// A YAML file that exists but sets nothing (empty, or only comments).
    Empty,
    /// Not there.
    Missing,
    /// There, but unreadable or not YAML: the error says why.
    Failed,
    /// A BigBlueButton properties file these keys were taken from.
    Used(Vec<&'static str>),
    /// A BigBlueButton properties file, present, that nothing was needed from.
    NotNeeded,
}

impl fmt::Display for FileStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FileStatus::Read { legacy: true } => f.write_str("read (bbb-webhooks 3.x layout)"),
            FileStatus::Read { legacy: false } => f.write_str("read"),
            FileStatus::Empty => f.write_str("present, sets nothing"),
            FileStatus::Missing => f.write_str("not present"),
            FileStatus::Failed => f.write_str("cannot be used (see the error)"),
            FileStatus::Used(keys) => write!(f, "read: {}", keys.join(", ")),
            FileStatus::NotNeeded => f.write_str("present, not needed"),
        }
    }
}

/// See [`LoadedConfig::skipped_line`].
pub fn skipped_line(skipped: &[(PathBuf, Vec<String>)]) -> Option<String> {
    (!skipped.is_empty()).then(|| {
        skipped
            .iter()
            .map(|(path, keys)| format!("{}: {}", path.display(), keys.join(", ")))
            .collect::<Vec<_>>()
            .join("; ")
    })
}

/// Secrets that `describe` shows redacted, by dotted key.
pub(super) const SECRET_KEYS: [&str; 3] =
    ["bbb.sharedSecret", "redis.password", "hooks.signingSecret"];

/// The leaves of an untyped tree as written, secrets redacted: the table when typing failed.
fn describe_tree(tree: &Value, origin: &BTreeMap<String, Source>) -> Vec<(String, String, Source)> {
    let mut leaves = Vec::new();
    flatten(tree, String::new(), &mut leaves);
    leaves
        .into_iter()
        .map(|(key, value)| {
            let shown = if SECRET_KEYS.contains(&key.as_str()) && !value.is_null() {
                Value::String("<redacted>".into()).to_string()
            } else {
                shown_value(&key, &value)
            };
            let source = origin.get(&key).cloned().unwrap_or(Source::Default);
            (key, shown, source)
        })
        .collect()
}

/// A value as `describe` prints it: JSON, with a Redis URL's password replaced.
fn shown_value(key: &str, value: &Value) -> String {
    match (key, value.as_str()) {
        ("redis.url" | "hooks.proxy" | "xapi.lrs.endpoint" | "forward.to", Some(url)) => {
            Value::String(super::redact_url(url)).to_string()
        }
        _ => value.to_string(),
    }
}

fn read_yaml(path: &PathBuf, required: bool) -> Result<Option<Map<String, Value>>, ConfigError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(ConfigError::Read {
                path: path.display().to_string(),
                source,
            });
        }
    };
    let value: Value = serde_norway::from_str(&text).map_err(|e| ConfigError::Yaml {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    match value {
        Value::Null => Ok(None),
        Value::Object(map) => Ok(Some(map)),
        _ => Err(ConfigError::Yaml {
            path: path.display().to_string(),
            message: "the top level must be a mapping".into(),
        }),
    }
}

/// The shared secret and the domain from BigBlueButton's own files, each only when no layer set
/// it. Returns what came of each file.
fn apply_properties(
    tree: &mut Value,
    origin: &mut BTreeMap<String, Source>,
    files: &[PathBuf],
) -> Vec<FileLookup> {
    let has_secret = tree
        .pointer("/bbb/sharedSecret")
        .and_then(Value::as_str)
        .is_some_and(|s| !s.is_empty());
    let has_domain = origin.contains_key("bbb.serverDomain");
    let found = if has_secret && has_domain {
        properties::BbbProperties::default()
    } else {
        properties::read(files)
    };
    let mut used: BTreeMap<PathBuf, Vec<&'static str>> = BTreeMap::new();
    if !has_secret && let Some((secret, path)) = found.secret {
        set_dotted(tree, "bbb.sharedSecret", Value::String(secret));
        origin.insert("bbb.sharedSecret".into(), Source::Properties(path.clone()));
        used.entry(path).or_default().push("bbb.sharedSecret");
    }
    if !has_domain && let Some((domain, path)) = found.domain {
        set_dotted(tree, "bbb.serverDomain", Value::String(domain));
        origin.insert("bbb.serverDomain".into(), Source::Properties(path.clone()));
        used.entry(path).or_default().push("bbb.serverDomain");
    }
    files
        .iter()
        .map(|path| {
            let status = match used.remove(path) {
                Some(keys) => FileStatus::Used(keys),
                None if path.is_file() => FileStatus::NotNeeded,
                None => FileStatus::Missing,
            };
            FileLookup {
                properties: true,
                ..FileLookup::new(path, status)
            }
        })
        .collect()
}

/// Deep merge: objects merge key by key, anything else (arrays included) replaces. A `null` in
/// the layer means "not set here".
fn merge(
    dst: &mut Value,
    src: Value,
    prefix: &str,
    origin: &mut BTreeMap<String, Source>,
    source: &Source,
) {
    match (dst, src) {
        (_, Value::Null) => {}
        (Value::Object(d), Value::Object(s)) => {
            for (k, v) in s {
                let key = join(prefix, &k);
                let slot = d.entry(k).or_insert(Value::Null);
                if slot.is_object() && v.is_object() {
                    merge(slot, v, &key, origin, source);
                } else if !v.is_null() {
                    let mut leaves = Vec::new();
                    flatten(&v, key.clone(), &mut leaves);
                    for (leaf, _) in leaves {
                        origin.insert(leaf, source.clone());
                    }
                    origin.insert(key, source.clone());
                    *slot = v;
                }
            }
        }
        (d, s) => *d = s,
    }
}

/// Removes keys our layout does not have (3.x files carry many), noting each.
fn drop_unknown(
    tree: &mut Map<String, Value>,
    known: &Value,
    prefix: &str,
    notes: &mut Vec<String>,
) {
    tree.retain(|k, v| {
        let key = join(prefix, k);
        match known.get(k) {
            None => {
                notes.push(format!("{key} is not a known key: ignored"));
                false
            }
            Some(Value::Object(_)) => {
                if let Value::Object(inner) = v {
                    drop_unknown(inner, &known[k], &key, notes);
                }
                true
            }
            Some(_) => true,
        }
    });
}

fn set_dotted(tree: &mut Value, key: &str, value: Value) {
    let mut node = tree;
    let parts: Vec<&str> = key.split('.').collect();
    for p in &parts[..parts.len() - 1] {
        if !node[*p].is_object() {
            node[*p] = Value::Object(Map::new());
        }
        node = &mut node[*p];
    }
    node[parts[parts.len() - 1]] = value;
}

fn flatten(value: &Value, prefix: String, out: &mut Vec<(String, Value)>) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                flatten(v, join(&prefix, k), out);
            }
        }
        other => out.push((prefix, other.clone())),
    }
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

impl LoadedConfig {
    /// Settings from defaults plus dotted-key overrides, validated: for tests and tools.
    pub fn with_overrides(overrides: &[(&str, Value)]) -> Result<LoadedConfig, ConfigError> {
        let mut tree = serde_json::to_value(Settings::default()).expect("settings serialize");
        let mut origin = BTreeMap::new();
        for (key, value) in overrides {
            set_dotted(&mut tree, key, value.clone());
            origin.insert(key.to_string(), Source::Env("override"));
        }
        let settings: Settings =
            serde_path_to_error::deserialize(tree).map_err(|e| ConfigError::Invalid {
                key: e.path().to_string(),
                origin: Source::Env("override"),
                message: e.into_inner().to_string(),
            })?;
        let loaded = LoadedConfig {
            settings,
            sources: origin,
            notes: Vec::new(),
            skipped: Vec::new(),
            files: Vec::new(),
        };
        super::validate::validate(&loaded, true)?;
        Ok(loaded)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::time::Duration;

    fn sources(
        files: &[&std::path::Path],
        env: &[(&str, &str)],
        props: &[PathBuf],
    ) -> ConfigSources {
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        ConfigSources {
            files: files.iter().map(|p| (p.to_path_buf(), true)).collect(),
            env: Box::new(move |name| env.get(name).cloned()),
            properties_files: props.to_vec(),
        }
    }

    #[test]
    fn defaults_then_file_then_env() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.yml");
        std::fs::write(
            &file,
            "bbb:\n  sharedSecret: fromfile\n  serverDomain: file.example.com\napi:\n  port: 4000\n",
        )
        .unwrap();
        let loaded = load(&sources(&[&file], &[("SERVER_PORT", "5000")], &[])).unwrap();
        let s = &loaded.settings;
        assert_eq!(s.secret(), "fromfile");
        assert_eq!(s.bbb.server_domain, "file.example.com");
        assert_eq!(s.api.port, 5000);
        assert_eq!(s.redis.port, 6379);
        assert_eq!(loaded.source_of("api.port"), Source::Env("SERVER_PORT"));
        assert_eq!(
            loaded.source_of("bbb.serverDomain"),
            Source::File(file.clone())
        );
        assert_eq!(loaded.source_of("redis.port"), Source::Default);
        let described = loaded.describe();
        let secret_line = described
            .iter()
            .find(|(k, _, _)| k == "bbb.sharedSecret")
            .unwrap();
        assert_eq!(secret_line.1, "\"<redacted>\"");
    }

    #[test]
    fn bearer_auth_false_means_false() {
        let env = [
            ("SHARED_SECRET", "s"),
            ("BEARER_AUTH", "false"),
            ("PROM_ENABLED", "no"),
        ];
        let loaded = load(&sources(&[], &env, &[])).unwrap();
        assert!(!loaded.settings.bbb.auth2_0);
        assert!(!loaded.settings.prometheus.enabled);
        let env = [("SHARED_SECRET", "s"), ("BEARER_AUTH", "true")];
        assert!(load(&sources(&[], &env, &[])).unwrap().settings.bbb.auth2_0);
    }

    #[test]
    fn lists_from_env_in_json_and_comma_forms() {
        let env = [
            ("SHARED_SECRET", "s"),
            ("INCLUDE_EVENTS", r#"["user-joined","user-left"]"#),
            ("EXCLUDE_EVENTS", "chat-group-message-sent, pad-content"),
            ("SUPPORTED_CHECKSUM_ALGORITHMS", "sha256,sha512"),
            ("RETRY_INTERVALS", "[10, 20]"),
        ];
        let s = load(&sources(&[], &env, &[])).unwrap().settings;
        assert_eq!(s.hooks.include_events, vec!["user-joined", "user-left"]);
        assert_eq!(
            s.hooks.exclude_events,
            vec!["chat-group-message-sent", "pad-content"]
        );
        assert_eq!(
            s.api.supported_checksum_algorithms,
            vec![
                super::super::ChecksumAlgorithm::Sha256,
                super::super::ChecksumAlgorithm::Sha512
            ]
        );
        assert_eq!(
            s.hooks.retry_intervals,
            vec![Duration::from_millis(10), Duration::from_millis(20)]
        );
    }

    #[test]
    fn a_3x_production_yml_is_understood() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("production.yml");
        std::fs::write(
            &file,
            r#"
bbb:
  serverDomain: bbb.example.com
  sharedSecret: legacysecret
  auth2_0: true
log:
  level: warn
redis:
  host: 10.0.0.5
modules:
  "../in/redis/index.js":
    enabled: true
    type: in
    config:
      redis:
        inboundChannels: [from-akka-apps-redis-channel]
  "../out/webhooks/index.js":
    enabled: true
    type: out
    config:
      api:
        bind: 0.0.0.0
        port: 3010
      permanentURLs:
        - url: https://lms.example.com/hook
          getRaw: false
      hookChecksumAlgorithm: sha256
      requestTimeout: 2500
      queue:
        enabled: false
  "../out/xapi/index.js":
    enabled: false
    type: out
xapi:
  whatever: 1
"#,
        )
        .unwrap();
        let loaded = load(&sources(&[&file], &[], &[])).unwrap();
        let s = &loaded.settings;
        assert_eq!(s.secret(), "legacysecret");
        assert!(s.bbb.auth2_0);
        assert_eq!(s.redis.host, "10.0.0.5");
        assert_eq!(
            s.redis.inbound_channels,
            vec!["from-akka-apps-redis-channel"]
        );
        assert_eq!(s.api.bind, "0.0.0.0");
        assert_eq!(s.api.port, 3010);
        assert_eq!(
            s.hooks.permanent_urls[0].url.as_str(),
            "https://lms.example.com/hook"
        );
        assert_eq!(
            s.hooks.hook_checksum_algorithm,
            super::super::ChecksumAlgorithm::Sha256
        );
        assert_eq!(s.hooks.request_timeout, Duration::from_millis(2500));
        assert_eq!(s.log.level, "warn");
        assert_eq!(loaded.source_of("api.port"), Source::File(file.clone()));
        assert!(
            loaded.notes.iter().any(|n| n.contains("xapi")),
            "{:?}",
            loaded.notes
        );
    }

    #[test]
    fn xapi_from_env_with_secrets_redacted_and_a_bad_namespace_said() {
        let env = [
            ("SHARED_SECRET", "s"),
            ("XAPI_ENABLED", "true"),
            ("XAPI_LRS_ENDPOINT", "https://lrs.example.com/xapi"),
            ("XAPI_LRS_USERNAME", "user"),
            ("XAPI_LRS_PASSWORD", "topsecret"),
            ("XAPI_LRS_TOKEN", "toptoken"),
            // The namespace of 3.x's example file: no version, no variant.
            (
                "XAPI_UUID_NAMESPACE",
                "01234567-89ab-cdef-0123-456789abcdef",
            ),
        ];
        let loaded = load(&sources(&[], &env, &[])).unwrap();
        let x = &loaded.settings.xapi;
        assert!(x.enabled);
        assert_eq!(x.lrs.password.as_ref().unwrap().expose(), "topsecret");
        let shown = format!("{:?}", loaded.describe());
        assert!(
            !shown.contains("topsecret") && !shown.contains("toptoken"),
            "{shown}"
        );
        assert!(shown.contains("lrs.example.com"), "{shown}");
        let warnings = loaded.warnings();
        assert!(
            warnings.iter().any(|w| w.contains("xapi.uuidNamespace")
                && w.contains("01234567-89ab-cdef")
                && w.contains("stays off")
                && w.contains("env XAPI_UUID_NAMESPACE")),
            "{warnings:?}"
        );
        let good = [
            ("SHARED_SECRET", "s"),
            ("XAPI_ENABLED", "true"),
            (
                "XAPI_UUID_NAMESPACE",
                "6f1c7a9e-3b52-4d0e-9a8c-2f5e1b7d4c63",
            ),
        ];
        let loaded = load(&sources(&[], &good, &[])).unwrap();
        assert!(loaded.warnings().is_empty(), "{:?}", loaded.warnings());
        assert!(loaded.settings.xapi.namespace().is_ok());
        let mut bad_endpoint = good.to_vec();
        bad_endpoint.push(("XAPI_LRS_ENDPOINT", "lrs.example.com/xapi"));
        let loaded = load(&sources(&[], &bad_endpoint, &[])).unwrap();
        assert!(
            loaded
                .warnings()
                .iter()
                .any(|w| w.contains("xapi.lrs.endpoint")),
            "{:?}",
            loaded.warnings()
        );
    }

    #[test]
    fn warnings_name_unknown_event_ids_after_the_notes() {
        let env = [
            ("SHARED_SECRET", "s"),
            ("INCLUDE_EVENTS", "user-joined,user-jumped"),
            ("EXCLUDE_EVENTS", "meeting-exploded"),
            ("ENABLE_WH_QUEUE", "true"),
        ];
        let loaded = load(&sources(&[], &env, &[])).unwrap();
        assert_eq!(
            loaded.warnings(),
            vec![
                "env ENABLE_WH_QUEUE is ignored: every hook always has a durable queue in this \
                 implementation"
                    .to_string(),
                r#"hooks.includeEvents (from env INCLUDE_EVENTS) names "user-jumped", an event this version does not produce"#.to_string(),
                r#"hooks.excludeEvents (from env EXCLUDE_EVENTS) names "meeting-exploded", an event this version does not produce"#.to_string(),
            ]
        );
        let quiet = load(&sources(&[], &[("SHARED_SECRET", "s")], &[])).unwrap();
        assert!(quiet.warnings().is_empty(), "{:?}", quiet.warnings());
    }

    #[test]
    fn values_become_their_meaning_or_fail_with_key_and_source() {
        let env = [
            ("SHARED_SECRET", "s"),
            ("REQUEST_TIMEOUT", "2500"),
            ("MULTI_EVENT", "4"),
            ("PERMANENT_HOOKS", "https://LMS.example.com"),
        ];
        let s = load(&sources(&[], &env, &[])).unwrap().settings;
        assert_eq!(s.hooks.request_timeout, Duration::from_millis(2500));
        assert_eq!(s.hooks.multi_event.get(), 4);
        assert_eq!(
            s.hooks.permanent_urls[0].url.as_str(),
            "https://LMS.example.com"
        );
        for (variable, value, key, message) in [
            (
                "REQUEST_TIMEOUT",
                "0",
                "hooks.requestTimeout",
                "must be at least 1",
            ),
            ("QUEUE_SIZE", "0", "hooks.queueSize", "must be at least 1"),
            (
                "MAPPINGS_TIMEOUT",
                "0",
                "mappings.timeout",
                "must be at least 1",
            ),
            (
                "PERMANENT_HOOKS",
                "https://a/x, ftp://b",
                "hooks.permanentURLs",
                r#"entry 1: "ftp://b" is not an absolute http(s) URL"#,
            ),
        ] {
            let env = [("SHARED_SECRET", "s"), (variable, value)];
            let err = load(&sources(&[], &env, &[])).unwrap_err().to_string();
            assert_eq!(
                err,
                format!("invalid value for {key} (from env {variable}): {message}")
            );
        }
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.yml");
        std::fs::write(
            &file,
            "bbb:\n  sharedSecret: x\nhooks:\n  denyNetworks: [10.0.0.0/8, 10.0.0.0/33]\n",
        )
        .unwrap();
        let err = load(&sources(&[&file], &[], &[])).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                r#"invalid value for hooks.denyNetworks (from file {}): "10.0.0.0/33" has an invalid prefix length"#,
                file.display()
            )
        );
    }

    #[test]
    fn properties_fill_in_secret_and_domain() {
        let dir = tempfile::tempdir().unwrap();
        let props = dir.path().join("bbb-web.properties");
        std::fs::write(
            &props,
            "securitySalt=propsecret\nbigbluebutton.web.serverURL=https://bbb.school.org\n",
        )
        .unwrap();
        let loaded = load(&sources(&[], &[], std::slice::from_ref(&props))).unwrap();
        assert_eq!(loaded.settings.secret(), "propsecret");
        assert_eq!(loaded.settings.bbb.server_domain, "bbb.school.org");
        assert_eq!(
            loaded.source_of("bbb.sharedSecret"),
            Source::Properties(props.clone())
        );

        // The domain comes from the properties even when the secret is configured.
        let env = [("SHARED_SECRET", "envsecret")];
        let loaded = load(&sources(&[], &env, std::slice::from_ref(&props))).unwrap();
        assert_eq!(loaded.settings.bbb.server_domain, "bbb.school.org");

        // A configured secret and domain win over the properties.
        let env = [
            ("SHARED_SECRET", "envsecret"),
            ("SERVER_DOMAIN", "mine.org"),
        ];
        let loaded = load(&sources(&[], &env, &[props])).unwrap();
        assert_eq!(loaded.settings.secret(), "envsecret");
        assert_eq!(loaded.settings.bbb.server_domain, "mine.org");
    }

    #[test]
    fn no_secret_anywhere_is_refused() {
        let err = load(&sources(&[], &[], &[PathBuf::from("/nonexistent")])).unwrap_err();
        assert!(matches!(err, ConfigError::NoSecret), "{err}");
        // Unless the caller signs nothing; the rest is still read and checked.
        let env = [("INCLUDE_MEETING_METADATA", "true")];
        let loaded = load_without_secret(&sources(&[], &env, &[])).unwrap();
        assert!(loaded.settings.hooks.include_meeting_metadata);
        let env = [("SERVER_PORT", "http")];
        assert!(load_without_secret(&sources(&[], &env, &[])).is_err());
    }

    #[test]
    fn a_proxy_is_explicit_and_never_blinds_the_guard() {
        let env = [
            ("SHARED_SECRET", "s"),
            ("HOOKS_PROXY", "http://u:pw@10.0.0.5:3128"),
        ];
        let loaded = load(&sources(&[], &env, &[])).unwrap();
        let proxy = loaded.settings.hooks.proxy.as_ref().unwrap();
        assert_eq!(proxy.url().host_str(), Some("10.0.0.5"));
        let shown = loaded.describe();
        let line = shown.iter().find(|(k, _, _)| k == "hooks.proxy").unwrap();
        assert!(
            !line.1.contains("pw") && line.1.contains("10.0.0.5"),
            "{}",
            line.1
        );

        let err = load(&sources(
            &[],
            &[("SHARED_SECRET", "s"), ("HOOKS_PROXY", "socks5://p:1080")],
            &[],
        ))
        .unwrap_err()
        .to_string();
        assert_eq!(
            err,
            r#"invalid value for hooks.proxy (from env HOOKS_PROXY): "socks5://p:1080" is not an absolute http(s) URL"#
        );

        let guarded = [
            ("SHARED_SECRET", "s"),
            ("HOOKS_PROXY", "http://10.0.0.5:3128"),
        ];
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.yml");
        std::fs::write(&file, "hooks:\n  allowNetworks: [192.0.2.0/24]\n").unwrap();
        let err = load(&sources(&[&file], &guarded, &[]))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "invalid value for hooks.proxy (from env HOOKS_PROXY): with \
             hooks.denyNetworks/allowNetworks set, the service would only check the proxy's \
             address; set hooks.proxyEnforcesPolicy: true if the proxy enforces the same policy"
        );
        let vouched = [
            guarded[0],
            guarded[1],
            ("HOOKS_PROXY_ENFORCES_POLICY", "true"),
        ];
        assert!(load(&sources(&[&file], &vouched, &[])).is_ok());

        // The environment's own proxy variables are read only to say that they are ignored.
        let env = [
            ("SHARED_SECRET", "s"),
            ("https_proxy", "http://10.0.0.5:3128"),
        ];
        let loaded = load(&sources(&[], &env, &[])).unwrap();
        assert!(loaded.settings.hooks.proxy.is_none());
        assert_eq!(
            loaded.warnings(),
            [
                "env https_proxy is ignored: callbacks go through a proxy only when hooks.proxy \
              (env HOOKS_PROXY) names one"
            ]
        );
    }

    #[test]
    fn invalid_values_name_key_and_source() {
        let env = [("SHARED_SECRET", "s"), ("HOOK_CHECKSUM_ALGORITHM", "md5")];
        let err = load(&sources(&[], &env, &[])).unwrap_err().to_string();
        assert!(err.contains("hooks.hookChecksumAlgorithm"), "{err}");
        assert!(err.contains("env HOOK_CHECKSUM_ALGORITHM"), "{err}");

        let env = [("SHARED_SECRET", "s"), ("SERVER_PORT", "http")];
        let err = load(&sources(&[], &env, &[])).unwrap_err().to_string();
        assert!(
            err.contains("api.port") && err.contains("SERVER_PORT"),
            "{err}"
        );

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.yml");
        std::fs::write(&file, "bbb:\n  sharedSecret: x\n  serverDomian: typo\n").unwrap();
        let err = load(&sources(&[&file], &[], &[])).unwrap_err().to_string();
        assert!(err.contains("serverDomian"), "{err}");

        std::fs::write(
            &file,
            "bbb:\n  sharedSecret: x\nredis:\n  url: 'http://nope'\n",
        )
        .unwrap();
        let err = load(&sources(&[&file], &[], &[])).unwrap_err().to_string();
        assert!(
            err.contains("redis.url") && err.contains("config.yml"),
            "{err}"
        );
    }

    #[test]
    fn an_invalid_value_still_gives_the_table_and_the_files() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.yml");
        std::fs::write(&file, "bbb:\n  sharedSecret: very-secret\n").unwrap();
        let missing = dir.path().join("missing.yml");
        let sources = ConfigSources {
            files: vec![(missing.clone(), false), (file.clone(), false)],
            env: Box::new(|name| (name == "REQUEST_TIMEOUT").then(|| "soon".to_string())),
            properties_files: vec![dir.path().join("bbb-web.properties")],
        };
        let seen = inspect(&sources, Needs::Secret);
        let err = seen.result.unwrap_err().to_string();
        assert_eq!(
            err,
            r#"invalid value for hooks.requestTimeout (from env REQUEST_TIMEOUT): "soon" is not a whole number"#
        );
        let value = |key: &str| {
            seen.values
                .iter()
                .find(|(k, _, _)| k == key)
                .map(|(_, v, s)| (v.clone(), s.clone()))
                .unwrap()
        };
        assert_eq!(
            value("hooks.requestTimeout"),
            ("\"soon\"".into(), Source::Env("REQUEST_TIMEOUT"))
        );
        assert_eq!(value("bbb.sharedSecret").0, "\"<redacted>\"");
        assert_eq!(value("api.port"), ("3005".into(), Source::Default));
        assert_eq!(
            seen.files,
            vec![
                FileLookup::new(&missing, FileStatus::Missing),
                FileLookup::new(&file, FileStatus::Read { legacy: false }),
                // Looked for all the same, though nothing was needed from it.
                FileLookup {
                    properties: true,
                    ..FileLookup::new(&dir.path().join("bbb-web.properties"), FileStatus::Missing)
                },
            ]
        );
    }

    #[test]
    fn the_tools_that_only_publish_need_no_secret() {
        let env = [("REDIS_PORT", "6390"), ("REDIS_PASSWORD", "pw")];
        assert!(matches!(
            load(&sources(&[], &env, &[])).unwrap_err(),
            ConfigError::NoSecret
        ));
        let loaded = load_without_secret(&sources(&[], &env, &[])).unwrap();
        assert_eq!(
            loaded.settings.redis.connection_url(),
            "redis://:pw@127.0.0.1:6390"
        );
        assert_eq!(
            loaded.settings.redis.shown_url(),
            "redis://:redacted@127.0.0.1:6390"
        );
        let seen = inspect(&sources(&[], &env, &[]), Needs::Secret);
        assert!(seen.result.is_err());
        assert!(
            seen.values
                .iter()
                .any(|(k, v, _)| k == "redis.password" && v == "\"<redacted>\"")
        );
    }

    #[test]
    fn a_log_file_outside_the_units_directory_is_a_warning() {
        let env = [("SHARED_SECRET", "s"), ("LOG_TO_FILE", "true")];
        let loaded = load(&sources(&[], &env, &[])).unwrap();
        assert_eq!(
            loaded.settings.log.filename,
            "/var/log/bbb-webhooks/bbb-webhooks.log"
        );
        assert!(loaded.warnings().is_empty(), "{:?}", loaded.warnings());
        let env = [
            ("SHARED_SECRET", "s"),
            ("LOG_TO_FILE", "true"),
            ("LOG_FILENAME", "/var/log/elsewhere.log"),
        ];
        let loaded = load(&sources(&[], &env, &[])).unwrap();
        assert_eq!(loaded.warnings().len(), 1, "{:?}", loaded.warnings());
        assert!(loaded.warnings()[0].contains("env LOG_FILENAME"));
    }

    #[test]
    fn every_secret_is_redacted_in_the_table_of_values_as_written() {
        let mut settings = Settings::default();
        settings.bbb.shared_secret = Some(super::super::Secret::new("a"));
        settings.redis.password = Some(super::super::Secret::new("b"));
        settings.hooks.signing_secret = Some(super::super::Secret::new("c"));
        let mut leaves = Vec::new();
        flatten(
            &serde_json::to_value(&settings).unwrap(),
            String::new(),
            &mut leaves,
        );
        let redacted: Vec<&str> = leaves
            .iter()
            .filter(|(_, v)| v == "<redacted>")
            .map(|(k, _)| k.as_str())
            .collect();
        assert_eq!(redacted, SECRET_KEYS.to_vec());
    }

    #[test]
    fn redis_url_wins_over_host_and_port() {
        let env = [
            ("SHARED_SECRET", "s"),
            ("REDIS_HOST", "10.1.1.1"),
            ("REDIS_URL", "redis://127.0.0.1:6380/3"),
        ];
        let s = load(&sources(&[], &env, &[])).unwrap().settings;
        assert_eq!(s.redis.connection_url(), "redis://127.0.0.1:6380/3");
        let env = [
            ("SHARED_SECRET", "s"),
            ("REDIS_HOST", "10.1.1.1"),
            ("REDIS_PASSWORD", "p w"),
        ];
        let s = load(&sources(&[], &env, &[])).unwrap().settings;
        assert_eq!(s.redis.connection_url(), "redis://:p%20w@10.1.1.1:6379");
        let env = [
            ("SHARED_SECRET", "s"),
            ("REDIS_URL", "redis://:topsecret@10.1.1.1:6379/2"),
        ];
        let loaded = load(&sources(&[], &env, &[])).unwrap();
        let shown = loaded.describe();
        let url = shown.iter().find(|(k, _, _)| k == "redis.url").unwrap();
        assert!(
            !url.1.contains("topsecret") && url.1.contains("10.1.1.1"),
            "{}",
            url.1
        );
    }
}

#[cfg(test)]
mod example_file {
    use super::*;

    /// The commented example in the repository states exactly the built-in defaults.
    #[test]
    fn the_example_config_is_the_defaults() {
        let path = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/config/example.yml"));
        let sources = ConfigSources {
            files: vec![(path, true)],
            env: Box::new(|name| (name == "SHARED_SECRET").then(|| "s".to_string())),
            properties_files: Vec::new(),
        };
        let loaded = load(&sources).unwrap();
        let mut defaults = Settings::default();
        defaults.bbb.shared_secret = Some(super::super::Secret::new("s"));
        assert_eq!(
            serde_json::to_value(&loaded.settings).unwrap(),
            serde_json::to_value(&defaults).unwrap()
        );
        assert!(loaded.notes.is_empty(), "{:?}", loaded.notes);
    }
}
