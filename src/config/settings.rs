//! The typed settings and their built-in defaults (those of bbb-webhooks 3.x where it has one).
//!
//! Every setting that has a meaning beyond its text is held as that meaning (durations as
//! [`Duration`], address blocks as [`CidrList`], counts that must be at least one as
//! [`NonZeroUsize`], URLs as [`HttpUrl`], algorithms as [`ChecksumAlgorithm`]), so a value is
//! parsed once, at load, and a bad one fails there. Each still reads and writes the form
//! bbb-webhooks 3.x uses ([`super::forms`]). This module does not assemble the layers
//! ([`mod@super::load`]) nor hold the checks no field type expresses ([`super::validate`]).

use std::num::NonZeroUsize;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};

use super::forms::{at_least_one, millis_list, positive_millis};
use super::{CidrList, HttpUrl, RedisUrl, Secret, SentinelAddr};
use crate::checksum::ChecksumAlgorithm;
use crate::redis_conn::RedisTarget;

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub bbb: BbbSettings,
    pub redis: RedisSettings,
    pub api: ApiSettings,
    pub hooks: HookSettings,
    pub mappings: MappingSettings,
    pub input: InputSettings,
    pub prometheus: PrometheusSettings,
    pub log: LogSettings,
    pub xapi: XapiSettings,
    pub cluster: ClusterSettings,
    pub forward: ForwardSettings,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct BbbSettings {
    /// The `domain` field of every callback.
    pub server_domain: String,
    /// API checksums and callback checksums; `None` until a layer or the properties set it.
    pub shared_secret: Option<Secret>,
    /// Send `Authorization: Bearer <secret>` instead of the `checksum` parameter.
    #[serde(rename = "auth2_0")]
    pub auth2_0: bool,
    /// Only used to cut the checksum "method" out of the request path, as the reference does.
    pub api_path: String,
    /// bbb-web's API, asked (`getMeetings`) about meetings the service has no mapping for.
    pub api_url: HttpUrl,
    /// Ask bbb-web about meetings the service missed (created while it was not running).
    pub lookup_missed_meetings: bool,
}

impl Default for BbbSettings {
    fn default() -> Self {
        BbbSettings {
            server_domain: "myserver.com".into(),
            shared_secret: None,
            auth2_0: false,
            api_path: "/bigbluebutton/api".into(),
            // Where bbb-web listens on a BigBlueButton server (nginx proxies the public
            // /bigbluebutton/api to it).
            api_url: "http://127.0.0.1:8090/bigbluebutton/api"
                .parse()
                .expect("a valid URL"),
            lookup_missed_meetings: true,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct RedisSettings {
    pub host: String,
    pub port: u16,
    pub password: Option<Secret>,
    /// `redis://[:password@]host:port/db`; wins over host, port and password.
    pub url: Option<String>,
    pub inbound_channels: Vec<String>,
    /// Most bytes of received messages waiting to be written.
    #[serde(with = "at_least_one")]
    pub intake_buffer_bytes: NonZeroUsize,
    pub keys: RedisKeySettings,
    /// Sentinels that name the primary (`host:port`); when set, the host and port above are not
    /// used (the password and database still are).
    pub sentinels: Vec<SentinelAddr>,
    /// The name the Sentinels know the primary by.
    pub sentinel_master: String,
}

impl Default for RedisSettings {
    fn default() -> Self {
        RedisSettings {
            host: "127.0.0.1".into(),
            port: 6379,
            password: None,
            url: None,
            inbound_channels: [
                "from-akka-apps-redis-channel",
                "from-bbb-web-redis-channel",
                "from-akka-apps-chat-redis-channel",
                "from-akka-apps-pres-redis-channel",
                "bigbluebutton:from-bbb-apps:meeting",
                "bigbluebutton:from-bbb-apps:users",
                "bigbluebutton:from-rap",
            ]
            .map(String::from)
            .to_vec(),
            intake_buffer_bytes: NonZeroUsize::new(64 << 20).expect("not zero"),
            keys: RedisKeySettings::default(),
            sentinels: Vec::new(),
            sentinel_master: DEFAULT_SENTINEL_MASTER.into(),
        }
    }
}

impl RedisSettings {
    /// The connection URL: `url` when given, else built from host, port and password.
    pub fn connection_url(&self) -> String {
        if let Some(url) = &self.url {
            return url.clone();
        }
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        match &self.password {
            Some(p) if !p.expose().is_empty() => {
                let encoded: String = url::form_urlencoded::byte_serialize(p.expose().as_bytes())
                    .collect::<String>()
                    .replace('+', "%20");
                format!("redis://:{encoded}@{host}:{}", self.port)
            }
            _ => format!("redis://{host}:{}", self.port),
        }
    }
}

/// What Sentinel's own examples call the primary, and so most installations.
pub const DEFAULT_SENTINEL_MASTER: &str = "mymaster";

/// Where Redis is: the Sentinels' primary when Sentinels are given, else the one URL.
fn target(url: String, sentinels: &[SentinelAddr], master: &str) -> RedisTarget {
    if sentinels.is_empty() {
        return RedisTarget::Url(url);
    }
    RedisTarget::Sentinel {
        sentinels: sentinels.iter().map(|s| (s.host.clone(), s.port)).collect(),
        master: master.to_string(),
        url: Some(url),
    }
}

impl RedisSettings {
    /// The service's own Redis: [`RedisSettings::connection_url`], or the primary its
    /// Sentinels name (with the URL's password and database).
    pub fn target(&self) -> RedisTarget {
        target(
            self.connection_url(),
            &self.sentinels,
            &self.sentinel_master,
        )
    }
}

/// The cluster's shared Redis layout ([`crate::cluster`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct ClusterSettings {
    /// Prefix of every key on the cluster Redis (and of the forwarder's local buffer).
    pub prefix: String,
    /// A relay's: how many parts each hook's lanes are spread over (each a lease, so the most
    /// relays one hook's deliveries go through). The same on every relay.
    #[serde(with = "at_least_one")]
    pub delivery_parts: NonZeroUsize,
}

impl Default for ClusterSettings {
    fn default() -> Self {
        ClusterSettings {
            prefix: crate::cluster::DEFAULT_PREFIX.into(),
            delivery_parts: NonZeroUsize::new(4).expect("not zero"),
        }
    }
}

/// `bbb-webhooks forward`: where it sends this server's messages, under which name, how much
/// it keeps, and where it answers health checks.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct ForwardSettings {
    /// The cluster Redis. With `sentinels`, only its password and database are used.
    pub to: Option<RedisUrl>,
    /// Sentinels that name the cluster Redis's primary.
    pub sentinels: Vec<SentinelAddr>,
    pub sentinel_master: String,
    /// This server's name in the cluster; unset: `bbb.serverDomain`.
    pub server: Option<String>,
    /// Cap of this server's ingest stream on the cluster Redis (`XADD … MAXLEN ~`).
    #[serde(with = "at_least_one")]
    pub stream_max_len: NonZeroUsize,
    /// Cap of the local buffer while the cluster Redis is unreachable; beyond it the oldest
    /// entries are dropped and counted.
    #[serde(with = "at_least_one")]
    pub buffer_max_len: NonZeroUsize,
    /// Where `/health`, `/ready` and `/metrics` answer.
    pub bind: String,
    pub port: u16,
}

impl Default for ForwardSettings {
    fn default() -> Self {
        ForwardSettings {
            to: None,
            sentinels: Vec::new(),
            sentinel_master: DEFAULT_SENTINEL_MASTER.into(),
            server: None,
            stream_max_len: NonZeroUsize::new(1_000_000).expect("not zero"),
            buffer_max_len: NonZeroUsize::new(1_000_000).expect("not zero"),
            bind: "127.0.0.1".into(),
            // Beside the hooks API (3005) and the metrics port (3004).
            port: 3006,
        }
    }
}

impl ForwardSettings {
    /// The cluster Redis; `None` when neither `forward.to` nor `forward.sentinels` is set.
    pub fn target(&self) -> Option<RedisTarget> {
        if self.sentinels.is_empty() {
            return self
                .to
                .as_ref()
                .map(|u| RedisTarget::Url(u.as_str().into()));
        }
        Some(RedisTarget::Sentinel {
            sentinels: self
                .sentinels
                .iter()
                .map(|s| (s.host.clone(), s.port))
                .collect(),
            master: self.sentinel_master.clone(),
            url: self.to.as_ref().map(|u| u.as_str().to_string()),
        })
    }
}

/// Redis key names. The first six are the reference's (`redis.keys.*`, same defaults) so that
/// hooks and mappings are shared with bbb-webhooks 3.x; `ownPrefix` holds what only we store.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct RedisKeySettings {
    pub hooks: String,
    pub hook_prefix: String,
    pub mappings: String,
    pub mapping_prefix: String,
    pub user_maps: String,
    pub user_map_prefix: String,
    pub own_prefix: String,
}

impl Default for RedisKeySettings {
    fn default() -> Self {
        RedisKeySettings {
            hooks: "bigbluebutton:webhooks:out:hooks".into(),
            hook_prefix: "bigbluebutton:webhooks:out:hook".into(),
            mappings: "bigbluebutton:webhooks:proc:mappings".into(),
            mapping_prefix: "bigbluebutton:webhooks:proc:mapping".into(),
            user_maps: "bigbluebutton:webhooks:proc:userMaps".into(),
            user_map_prefix: "bigbluebutton:webhooks:proc:userMap".into(),
            own_prefix: "bigbluebutton:webhooks:rs".into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct ApiSettings {
    pub bind: String,
    pub port: u16,
    pub supported_checksum_algorithms: Vec<ChecksumAlgorithm>,
    /// Longest query string accepted; longer ones get an XML error.
    pub max_query_bytes: usize,
    /// Longest time (written in ms) from a request's first byte to the end of its head.
    #[serde(with = "positive_millis")]
    pub header_read_timeout: Duration,
    /// Longest silence (written in ms) on a connection that waits for a request.
    #[serde(with = "positive_millis")]
    pub idle_timeout: Duration,
    /// Most connections open at once; further ones wait to be accepted.
    #[serde(with = "at_least_one")]
    pub max_connections: NonZeroUsize,
}

impl Default for ApiSettings {
    fn default() -> Self {
        ApiSettings {
            bind: "127.0.0.1".into(),
            port: 3005,
            supported_checksum_algorithms: ChecksumAlgorithm::ALL.to_vec(),
            max_query_bytes: 8192,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: NonZeroUsize::new(1024).expect("not zero"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PermanentUrl {
    pub url: HttpUrl,
    pub get_raw: bool,
}

/// How a `permanentURLs` entry is written.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct WrittenPermanentUrl {
    url: String,
    #[serde(default)]
    get_raw: bool,
}

/// `permanentURLs`: a bad URL fails the whole key, saying which entry.
fn permanent_urls<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<PermanentUrl>, D::Error> {
    Vec::<WrittenPermanentUrl>::deserialize(d)?
        .into_iter()
        .enumerate()
        .map(|(i, entry)| {
            Ok(PermanentUrl {
                url: entry
                    .url
                    .parse()
                    .map_err(|e| serde::de::Error::custom(format!("entry {i}: {e}")))?,
                get_raw: entry.get_raw,
            })
        })
        .collect()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct HookSettings {
    #[serde(rename = "permanentURLs", deserialize_with = "permanent_urls")]
    pub permanent_urls: Vec<PermanentUrl>,
    /// When non-empty, only these event ids are delivered (to every hook).
    pub include_events: Vec<String>,
    /// These event ids are never delivered.
    pub exclude_events: Vec<String>,
    /// Hash of the callback `checksum` parameter.
    pub hook_checksum_algorithm: ChecksumAlgorithm,
    /// Waits (written in ms) after the 1st, 2nd, … failed attempt.
    #[serde(with = "millis_list")]
    pub retry_intervals: Vec<Duration>,
    /// Wait (written in ms) between attempts once `retryIntervals` is exhausted, for hooks that
    /// stay.
    #[serde(with = "positive_millis")]
    pub permanent_interval_reset: Duration,
    /// Bound (written in ms) of one attempt, connect included.
    #[serde(with = "positive_millis")]
    pub request_timeout: Duration,
    /// Most events in one callback when a backlog exists.
    #[serde(with = "at_least_one")]
    pub multi_event: NonZeroUsize,
    /// Most events waiting per hook; beyond it the oldest is dropped.
    #[serde(with = "at_least_one")]
    pub queue_size: NonZeroUsize,
    /// Which events of one hook keep their relative order: those of one meeting (lanes in
    /// parallel), or all of them (one lane).
    pub ordering: DeliveryOrder,
    /// Most requests in flight to one hook at once (one per meeting lane).
    #[serde(with = "at_least_one")]
    pub max_in_flight_per_hook: NonZeroUsize,
    /// Remove a non-permanent hook whose retries are exhausted (the reference does).
    pub remove_failed_hooks: bool,
    /// Put the meeting's metadata (as `meeting-created` has it) on every event of the meeting.
    /// Off by default, so that events stay byte for byte the reference's.
    pub include_meeting_metadata: bool,
    /// When set, every callback carries a Standard Webhooks `webhook-signature`.
    pub signing_secret: Option<Secret>,
    /// Most hooks the API will register.
    pub max_hooks: usize,
    /// Longest `callbackURL` accepted.
    pub max_callback_url_bytes: usize,
    /// Most callback requests in flight at once, all hooks together.
    #[serde(with = "at_least_one")]
    pub max_concurrent_requests: NonZeroUsize,
    /// Callback targets whose resolved address is in one of these CIDR blocks are refused.
    pub deny_networks: CidrList,
    /// When non-empty, only targets in these CIDR blocks are allowed (checked after `denyNetworks`).
    pub allow_networks: CidrList,
    /// Send every callback through this proxy. Unset: callbacks go straight to their receiver,
    /// whatever `HTTP_PROXY` and its kin say.
    pub proxy: Option<HttpUrl>,
    /// The proxy enforces the policy of `denyNetworks`/`allowNetworks` itself; required to use
    /// a proxy together with them, since the service then cannot see where names resolve.
    pub proxy_enforces_policy: bool,
}

impl Default for HookSettings {
    fn default() -> Self {
        HookSettings {
            permanent_urls: Vec::new(),
            include_events: Vec::new(),
            exclude_events: Vec::new(),
            hook_checksum_algorithm: ChecksumAlgorithm::Sha1,
            retry_intervals: [
                100, 500, 1000, 2000, 4000, 8000, 10000, 30000, 60000, 60000, 60000, 60000,
            ]
            .map(Duration::from_millis)
            .to_vec(),
            permanent_interval_reset: Duration::from_millis(60000),
            request_timeout: Duration::from_millis(5000),
            multi_event: NonZeroUsize::MIN,
            queue_size: NonZeroUsize::new(100_000).expect("not zero"),
            ordering: DeliveryOrder::Meeting,
            max_in_flight_per_hook: NonZeroUsize::new(16).expect("not zero"),
            remove_failed_hooks: true,
            include_meeting_metadata: false,
            signing_secret: None,
            max_hooks: 10000,
            max_callback_url_bytes: 2048,
            max_concurrent_requests: NonZeroUsize::new(256).expect("not zero"),
            deny_networks: CidrList::default(),
            allow_networks: CidrList::default(),
            proxy: None,
            proxy_enforces_policy: false,
        }
    }
}

/// `hooks.ordering`: what a hook's events are ordered by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryOrder {
    /// The events of one meeting arrive in order; meetings travel in parallel (the default).
    Meeting,
    /// Every event of the hook arrives in order, one request at a time (bbb-webhooks-rs 0.1).
    Hook,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct MappingSettings {
    /// How often (written in ms) expired meeting mappings are looked for.
    #[serde(with = "positive_millis")]
    pub cleanup_interval: Duration,
    /// Inactivity (written in ms) after which a meeting's mappings are forgotten.
    #[serde(with = "positive_millis")]
    pub timeout: Duration,
}

impl Default for MappingSettings {
    fn default() -> Self {
        MappingSettings {
            cleanup_interval: Duration::from_millis(10_000),
            timeout: Duration::from_millis(604_800_000),
        }
    }
}

/// `input.mode`: where BigBlueButton's messages come from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InputMode {
    /// Subscribe to the channels of `redis` (one BigBlueButton server; the default).
    #[default]
    Pubsub,
    /// Read the ingest streams that `bbb-webhooks forward` fills on the cluster Redis (`redis`),
    /// sharing servers and hooks with the other relays (docs/cluster.md).
    Cluster,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct InputSettings {
    pub mode: InputMode,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct PrometheusSettings {
    pub enabled: bool,
    pub host: String,
    pub port: u16,
    pub path: String,
    pub collect_default_metrics: bool,
}

impl Default for PrometheusSettings {
    fn default() -> Self {
        PrometheusSettings {
            enabled: false,
            host: "127.0.0.1".into(),
            port: 3004,
            path: "/metrics".into(),
            collect_default_metrics: false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// JSON lines unless standard output is a terminal.
    Auto,
    Json,
    Text,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct LogSettings {
    /// trace, debug, info, warn, error (pino's fatal and silent are accepted too).
    pub level: String,
    pub stdout: bool,
    pub file: bool,
    pub filename: String,
    pub format: LogFormat,
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings {
            level: "info".into(),
            stdout: true,
            file: false,
            // The directory the systemd unit lets the service write (see `PACKAGED_LOG_DIR`).
            filename: "/var/log/bbb-webhooks/bbb-webhooks.log".into(),
            format: LogFormat::Auto,
        }
    }
}

/// The xAPI output: learning records for a Learning Record Store (bbb-webhooks 3.x's
/// `modules."../out/xapi/index.js"`). The namespace and endpoint stay text here: a bad one turns
/// xAPI off with an error ([`XapiSettings::problem`]) while the webhooks keep running, instead
/// of refusing the whole configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct XapiSettings {
    /// env XAPI_ENABLED.
    pub enabled: bool,
    /// The default LRS: where meetings without their own (`meta_secret-lrs-payload`) go.
    pub lrs: LrsSettings,
    /// Every registration, session and activity id is a UUID v5 in this namespace.
    pub uuid_namespace: Option<String>,
    /// An LRS whose queue stayed empty this long (written in ms) has its worker stopped and its
    /// stored descriptor (credentials) deleted; its next statement brings both back. Bounds
    /// what per-meeting LRSes leave behind.
    #[serde(with = "positive_millis")]
    pub lrs_idle_timeout: Duration,
    /// Most statements of a backlog in one request (a JSON array, as xAPI allows); 1 (one
    /// statement per request, as 3.x) unless raised. Up to 64.
    #[serde(with = "at_least_one")]
    pub statements_per_request: NonZeroUsize,
}

impl Default for XapiSettings {
    fn default() -> Self {
        XapiSettings {
            enabled: false,
            lrs: LrsSettings::default(),
            uuid_namespace: None,
            lrs_idle_timeout: Duration::from_secs(600),
            statements_per_request: NonZeroUsize::MIN,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct LrsSettings {
    /// The LRS's xAPI base (`…/xapi`, `…/xAPI/statements` or the base itself).
    pub endpoint: Option<String>,
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// Sent as `Authorization: Bearer <token>` instead of Basic.
    pub token: Option<Secret>,
}

impl XapiSettings {
    /// The namespace as a UUID, or why there is none.
    pub fn namespace(&self) -> Result<uuid::Uuid, String> {
        match self.uuid_namespace.as_deref().map(str::trim) {
            None | Some("") => Err("xapi.uuidNamespace is not set".into()),
            Some(text) => {
                let parsed = uuid::Uuid::parse_str(text)
                    .map_err(|e| format!("xapi.uuidNamespace {text:?} is not a UUID ({e})"))?;
                // bbb-webhooks 3.x's UUID library takes only the hyphenated form with a version
                // (1-8) and the RFC variant (or the nil and max UUIDs), and sends nothing
                // otherwise; a namespace it refuses is refused here too, out loud.
                let valid = text.len() == 36
                    && (parsed.is_nil()
                        || parsed.is_max()
                        || ((1..=8).contains(&parsed.get_version_num())
                            && parsed.get_variant() == uuid::Variant::RFC4122));
                if valid {
                    Ok(parsed)
                } else {
                    Err(format!(
                        "xapi.uuidNamespace {text:?} is not a UUID with a version and the \
                         RFC 4122 variant (8-4-4-4-12 hex digits, e.g. the output of uuidgen)"
                    ))
                }
            }
        }
    }

    /// Why xAPI, although enabled, cannot run (`None` when it can, or is off).
    pub fn problem(&self) -> Option<String> {
        if !self.enabled {
            return None;
        }
        if let Err(e) = self.namespace() {
            return Some(format!(
                "{e}: xAPI output stays off (the webhooks run as usual)"
            ));
        }
        if let Some(endpoint) = self
            .lrs
            .endpoint
            .as_deref()
            .filter(|e| !e.trim().is_empty())
        {
            let usable = url::Url::parse(endpoint.trim())
                .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some());
            if !usable {
                let shown = super::redact_url(endpoint);
                return Some(format!(
                    "xapi.lrs.endpoint {shown:?} is not an absolute http(s) URL: xAPI output \
                     stays off (the webhooks run as usual)"
                ));
            }
        }
        None
    }
}

impl RedisSettings {
    /// [`RedisSettings::connection_url`] with the password replaced: for messages.
    pub fn shown_url(&self) -> String {
        super::redact_url(&self.connection_url())
    }
}

impl Settings {
    /// The name this server forwards under: `forward.server`, else `bbb.serverDomain`.
    pub fn forward_server(&self) -> &str {
        self.forward
            .server
            .as_deref()
            .unwrap_or(&self.bbb.server_domain)
    }

    /// The shared secret; `load` guarantees it is set (empty after `load_without_secret`).
    pub fn secret(&self) -> &str {
        self.bbb
            .shared_secret
            .as_ref()
            .map(Secret::expose)
            .unwrap_or_default()
    }
}
