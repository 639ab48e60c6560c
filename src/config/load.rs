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

/// Files searched when no `--config` is given, lowest precedence first: the bbb-webhooks 3.x
/// files in node-config's order (so an existing installation keeps its settings), then ours.
pub const DEFAULT_FILES: [&str; 4] = [
    "/etc/bigbluebutton/bbb-webhooks/default.yml",
    "/usr/local/bigbluebutton/bbb-webhooks/config/default.yml",
    "/etc/bigbluebutton/bbb-webhooks/production.yml",
    "/etc/bigbluebutton/bbb-webhooks/config.yml",
];

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
    /// The real environment; `--config FILE` replaces the default file search.
    pub fn from_process(config: Option<PathBuf>) -> Self {
        let files = match config {
            Some(path) => vec![(path, true)],
            None => DEFAULT_FILES
                .iter()
                .map(|p| (PathBuf::from(p), false))
                .collect(),
        };
        ConfigSources {
            files,
            env: Box::new(|name| std::env::var(name).ok()),
            properties_files: properties::default_files(),
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
}

impl LoadedConfig {
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
        self.notes.iter().cloned().chain(unknown_events).collect()
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
                let shown = match (key.as_str(), value.as_str()) {
                    ("redis.url" | "hooks.proxy", Some(url)) => {
                        Value::String(redact_url(url)).to_string()
                    }
                    _ => value.to_string(),
                };
                (key, shown, source)
            })
            .collect()
    }
}

/// A URL with its password (if any) replaced.
fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("redacted"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

/// Defaults → files → environment → BigBlueButton properties; then typed and validated.
pub fn load(sources: &ConfigSources) -> Result<LoadedConfig, ConfigError> {
    load_checked(sources, true)
}

/// As [`load`], but without a shared secret being an error: for the tools that only map
/// messages (`map`), which sign nothing yet should read the configuration `serve` reads.
pub fn load_without_secret(sources: &ConfigSources) -> Result<LoadedConfig, ConfigError> {
    load_checked(sources, false)
}

fn load_checked(sources: &ConfigSources, need_secret: bool) -> Result<LoadedConfig, ConfigError> {
    let defaults = serde_json::to_value(Settings::default()).expect("settings serialize");
    let mut tree = defaults.clone();
    let mut origin = BTreeMap::new();
    let mut notes = Vec::new();

    for (path, required) in &sources.files {
        let Some(file_tree) = read_yaml(path, *required)? else {
            continue;
        };
        let is_legacy = file_tree.contains_key("modules");
        let (mut translated, mut file_notes) = legacy::translate(file_tree);
        if is_legacy {
            drop_unknown(&mut translated, &defaults, "", &mut file_notes);
        }
        notes.extend(
            file_notes
                .into_iter()
                .map(|n| format!("{}: {n}", path.display())),
        );
        merge(
            &mut tree,
            Value::Object(translated),
            "",
            &mut origin,
            &Source::File(path.clone()),
        );
    }

    for item in env::read(&*sources.env) {
        let source = Source::Env(item.variable);
        let value = item.value.map_err(|message| ConfigError::Invalid {
            key: item.key.to_string(),
            origin: source.clone(),
            message,
        })?;
        set_dotted(&mut tree, item.key, value);
        origin.insert(item.key.to_string(), source);
    }
    for (variable, why) in env::IGNORED {
        if (sources.env)(variable).is_some_and(|v| !v.trim().is_empty()) {
            notes.push(format!("env {variable} is ignored: {why}"));
        }
    }

    apply_properties(&mut tree, &mut origin, &sources.properties_files);

    let settings: Settings = serde_path_to_error::deserialize(tree).map_err(|e| {
        let key = e.path().to_string();
        ConfigError::Invalid {
            origin: origin.get(&key).cloned().unwrap_or(Source::Default),
            message: e.into_inner().to_string(),
            key,
        }
    })?;
    let loaded = LoadedConfig {
        settings,
        sources: origin,
        notes,
    };
    super::validate::validate(&loaded, need_secret)?;
    Ok(loaded)
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
/// it.
fn apply_properties(tree: &mut Value, origin: &mut BTreeMap<String, Source>, files: &[PathBuf]) {
    let has_secret = tree
        .pointer("/bbb/sharedSecret")
        .and_then(Value::as_str)
        .is_some_and(|s| !s.is_empty());
    let has_domain = origin.contains_key("bbb.serverDomain");
    if has_secret && has_domain {
        return;
    }
    let found = properties::read(files);
    if !has_secret && let Some((secret, path)) = found.secret {
        set_dotted(tree, "bbb.sharedSecret", Value::String(secret));
        origin.insert("bbb.sharedSecret".into(), Source::Properties(path));
    }
    if !has_domain && let Some((domain, path)) = found.domain {
        set_dotted(tree, "bbb.serverDomain", Value::String(domain));
        origin.insert("bbb.serverDomain".into(), Source::Properties(path));
    }
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
