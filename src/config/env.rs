//! Environment variables: every name bbb-webhooks 3.x reads, plus ours, with real typing, and
//! those we read only to say that they are ignored.

use serde_json::Value;

use super::parse::{parse_bool, parse_list};

#[derive(Clone, Copy)]
enum Kind {
    Text,
    Number,
    Bool,
    List,
    /// `[{"url":…,"getRaw":…}]`, or a plain list of URLs.
    PermanentUrls,
}

/// (variable, dotted key, kind). The first block is the reference's (§7.1 of its description).
const VARIABLES: &[(&str, &str, Kind)] = &[
    ("LOG_LEVEL", "log.level", Kind::Text),
    ("LOG_TO_STDOUT", "log.stdout", Kind::Bool),
    ("LOG_TO_FILE", "log.file", Kind::Bool),
    ("LOG_FILENAME", "log.filename", Kind::Text),
    ("PROM_ENABLED", "prometheus.enabled", Kind::Bool),
    ("PROM_HOST", "prometheus.host", Kind::Text),
    ("PROM_PORT", "prometheus.port", Kind::Number),
    ("PROM_PATH", "prometheus.path", Kind::Text),
    (
        "PROM_COLLECT_DEFAULT_METRICS",
        "prometheus.collectDefaultMetrics",
        Kind::Bool,
    ),
    ("SERVER_DOMAIN", "bbb.serverDomain", Kind::Text),
    ("SHARED_SECRET", "bbb.sharedSecret", Kind::Text),
    ("BEARER_AUTH", "bbb.auth2_0", Kind::Bool),
    ("MAPPINGS_TIMEOUT", "mappings.timeout", Kind::Number),
    ("REDIS_HOST", "redis.host", Kind::Text),
    ("REDIS_PORT", "redis.port", Kind::Number),
    ("REDIS_PASSWORD", "redis.password", Kind::Text),
    ("SERVER_BIND_IP", "api.bind", Kind::Text),
    ("SERVER_PORT", "api.port", Kind::Number),
    (
        "SUPPORTED_CHECKSUM_ALGORITHMS",
        "api.supportedChecksumAlgorithms",
        Kind::List,
    ),
    (
        "HOOK_CHECKSUM_ALGORITHM",
        "hooks.hookChecksumAlgorithm",
        Kind::Text,
    ),
    ("INCLUDE_EVENTS", "hooks.includeEvents", Kind::List),
    ("EXCLUDE_EVENTS", "hooks.excludeEvents", Kind::List),
    (
        "PERMANENT_HOOKS",
        "hooks.permanentURLs",
        Kind::PermanentUrls,
    ),
    ("REQUEST_TIMEOUT", "hooks.requestTimeout", Kind::Number),
    ("XAPI_ENABLED", "xapi.enabled", Kind::Bool),
    // Ours.
    ("REDIS_URL", "redis.url", Kind::Text),
    ("LOG_FORMAT", "log.format", Kind::Text),
    ("RETRY_INTERVALS", "hooks.retryIntervals", Kind::List),
    (
        "PERMANENT_INTERVAL_RESET",
        "hooks.permanentIntervalReset",
        Kind::Number,
    ),
    ("MULTI_EVENT", "hooks.multiEvent", Kind::Number),
    ("QUEUE_SIZE", "hooks.queueSize", Kind::Number),
    (
        "INTAKE_BUFFER_BYTES",
        "redis.intakeBufferBytes",
        Kind::Number,
    ),
    ("HOOKS_ORDERING", "hooks.ordering", Kind::Text),
    (
        "MAX_IN_FLIGHT_PER_HOOK",
        "hooks.maxInFlightPerHook",
        Kind::Number,
    ),
    ("REMOVE_FAILED_HOOKS", "hooks.removeFailedHooks", Kind::Bool),
    (
        "INCLUDE_MEETING_METADATA",
        "hooks.includeMeetingMetadata",
        Kind::Bool,
    ),
    ("HOOK_SIGNING_SECRET", "hooks.signingSecret", Kind::Text),
    ("MAX_HOOKS", "hooks.maxHooks", Kind::Number),
    ("BBB_API_URL", "bbb.apiUrl", Kind::Text),
    (
        "LOOKUP_MISSED_MEETINGS",
        "bbb.lookupMissedMeetings",
        Kind::Bool,
    ),
    ("HOOKS_PROXY", "hooks.proxy", Kind::Text),
    ("INPUT_MODE", "input.mode", Kind::Text),
    (
        "HOOKS_PROXY_ENFORCES_POLICY",
        "hooks.proxyEnforcesPolicy",
        Kind::Bool,
    ),
    ("XAPI_LRS_ENDPOINT", "xapi.lrs.endpoint", Kind::Text),
    ("XAPI_LRS_USERNAME", "xapi.lrs.username", Kind::Text),
    ("XAPI_LRS_PASSWORD", "xapi.lrs.password", Kind::Text),
    ("XAPI_LRS_TOKEN", "xapi.lrs.token", Kind::Text),
    ("XAPI_UUID_NAMESPACE", "xapi.uuidNamespace", Kind::Text),
    ("REDIS_SENTINELS", "redis.sentinels", Kind::List),
    ("REDIS_SENTINEL_MASTER", "redis.sentinelMaster", Kind::Text),
    ("CLUSTER_PREFIX", "cluster.prefix", Kind::Text),
    ("FORWARD_TO", "forward.to", Kind::Text),
    ("FORWARD_SENTINELS", "forward.sentinels", Kind::List),
    (
        "FORWARD_SENTINEL_MASTER",
        "forward.sentinelMaster",
        Kind::Text,
    ),
    ("FORWARD_SERVER", "forward.server", Kind::Text),
    ("FORWARD_BIND", "forward.bind", Kind::Text),
    ("FORWARD_PORT", "forward.port", Kind::Number),
];

/// Variables of the reference that we read but do not act on: they are reported, not failed.
pub const IGNORED: &[(&str, &str)] = &[
    (
        "ENABLE_WH_QUEUE",
        "every hook always has a durable queue in this implementation",
    ),
    // The usual proxy variables: a callback client that followed them would let the proxy, not
    // hooks.denyNetworks/allowNetworks, decide where callbacks go.
    ("HTTP_PROXY", PROXY_VARIABLE),
    ("http_proxy", PROXY_VARIABLE),
    ("HTTPS_PROXY", PROXY_VARIABLE),
    ("https_proxy", PROXY_VARIABLE),
    ("ALL_PROXY", PROXY_VARIABLE),
    ("all_proxy", PROXY_VARIABLE),
];

const PROXY_VARIABLE: &str =
    "callbacks go through a proxy only when hooks.proxy (env HOOKS_PROXY) names one";

/// Every variable read (ours and the reference's, the ignored ones included): what a tool that
/// starts the service with a configuration of its own must keep out of its environment.
pub fn variable_names() -> impl Iterator<Item = &'static str> {
    VARIABLES
        .iter()
        .map(|(name, _, _)| *name)
        .chain(IGNORED.iter().map(|(name, _)| *name))
}

/// One variable turned into a config value.
pub struct EnvValue {
    pub variable: &'static str,
    pub key: &'static str,
    pub value: Result<Value, String>,
}

/// The set, non-empty variables among ours, in table order. An empty variable counts as unset,
/// as in bbb-webhooks 3.x.
pub fn read(lookup: &dyn Fn(&str) -> Option<String>) -> Vec<EnvValue> {
    VARIABLES
        .iter()
        .filter_map(|&(variable, key, kind)| {
            let text = lookup(variable).filter(|t| !t.trim().is_empty())?;
            Some(EnvValue {
                variable,
                key,
                value: convert(&text, kind),
            })
        })
        .collect()
}

fn convert(text: &str, kind: Kind) -> Result<Value, String> {
    let text = text.trim();
    match kind {
        Kind::Text => Ok(Value::String(text.to_string())),
        Kind::Number => text
            .parse::<u64>()
            .map(Value::from)
            .map_err(|_| format!("{text:?} is not a whole number")),
        Kind::Bool => parse_bool(text)
            .map(Value::Bool)
            .ok_or_else(|| format!("{text:?} is not a boolean (true/false, 1/0, yes/no)")),
        Kind::List => Ok(Value::from(
            parse_list(text)?
                .into_iter()
                .map(|item| match item.parse::<u64>() {
                    Ok(n) => Value::from(n),
                    Err(_) => Value::String(item),
                })
                .collect::<Vec<_>>(),
        )),
        Kind::PermanentUrls => {
            if text.starts_with('[') {
                let value: Value =
                    serde_json::from_str(text).map_err(|e| format!("not a JSON array: {e}"))?;
                let items = value.as_array().cloned().unwrap_or_default();
                Ok(Value::Array(
                    items
                        .into_iter()
                        .map(|item| match item {
                            Value::String(url) => serde_json::json!({ "url": url }),
                            other => other,
                        })
                        .collect(),
                ))
            } else {
                Ok(Value::Array(
                    parse_list(text)?
                        .into_iter()
                        .map(|url| serde_json::json!({ "url": url }))
                        .collect(),
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<EnvValue> {
        let owned: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        read(&move |name| {
            owned
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        })
    }

    #[test]
    fn bearer_auth_false_is_false() {
        let values = env(&[("BEARER_AUTH", "false")]);
        assert_eq!(values.len(), 1);
        assert_eq!(values[0].key, "bbb.auth2_0");
        assert_eq!(values[0].value.as_ref().unwrap(), &Value::Bool(false));
    }

    #[test]
    fn include_meeting_metadata_is_a_boolean() {
        let values = env(&[("INCLUDE_MEETING_METADATA", "yes")]);
        assert_eq!(values[0].key, "hooks.includeMeetingMetadata");
        assert_eq!(values[0].value.as_ref().unwrap(), &Value::Bool(true));
    }

    #[test]
    fn empty_is_unset_and_garbage_is_an_error() {
        assert!(env(&[("PROM_ENABLED", "")]).is_empty());
        let values = env(&[("PROM_ENABLED", "sometimes")]);
        assert!(values[0].value.is_err());
    }

    #[test]
    fn permanent_hooks_in_both_forms() {
        let json = env(&[(
            "PERMANENT_HOOKS",
            r#"[{"url":"https://a/x","getRaw":true}]"#,
        )]);
        assert_eq!(
            json[0].value.as_ref().unwrap(),
            &serde_json::json!([{"url":"https://a/x","getRaw":true}])
        );
        let comma = env(&[("PERMANENT_HOOKS", "https://a/x, https://b/y")]);
        assert_eq!(
            comma[0].value.as_ref().unwrap(),
            &serde_json::json!([{"url":"https://a/x"},{"url":"https://b/y"}])
        );
    }

    #[test]
    fn sentinels_are_a_comma_list_of_addresses() {
        let v = env(&[("FORWARD_SENTINELS", "10.0.0.1:26379, s2.example.com")]);
        assert_eq!(v[0].key, "forward.sentinels");
        assert_eq!(
            v[0].value.as_ref().unwrap(),
            &serde_json::json!(["10.0.0.1:26379", "s2.example.com"])
        );
    }

    #[test]
    fn event_lists_in_both_forms() {
        let a = env(&[("INCLUDE_EVENTS", r#"["user-joined","user-left"]"#)]);
        let b = env(&[("INCLUDE_EVENTS", "user-joined,user-left")]);
        assert_eq!(a[0].value.as_ref().unwrap(), b[0].value.as_ref().unwrap());
    }
}
