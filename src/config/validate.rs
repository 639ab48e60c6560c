//! Checks that need more than a type: each failure names the key and where its value came from.
//!
//! Values that have a meaning of their own (durations, counts, address blocks, URLs, algorithms)
//! are checked by becoming that type while the settings are read ([`super::settings`]); what is
//! left here is what no field type says: a secret from somewhere, non-empty lists, names among a
//! few, settings that exclude each other (a proxy that would blind the network guard).

use super::{ConfigError, LoadedConfig};

const LOG_LEVELS: [&str; 7] = ["trace", "debug", "info", "warn", "error", "fatal", "silent"];

/// `need_secret`: whether a missing shared secret is an error (it is for anything that signs).
pub(super) fn validate(config: &LoadedConfig, need_secret: bool) -> Result<(), ConfigError> {
    let s = &config.settings;
    let fail = |key: &str, message: String| ConfigError::Invalid {
        key: key.to_string(),
        origin: config.source_of(key),
        message,
    };

    if need_secret
        && s.bbb
            .shared_secret
            .as_ref()
            .is_none_or(|x| x.expose().is_empty())
    {
        return Err(ConfigError::NoSecret);
    }
    if let Some(url) = &s.redis.url {
        redis::Client::open(url.as_str())
            .map_err(|e| fail("redis.url", format!("{url:?} is not a Redis URL: {e}")))?;
    }
    if s.redis.inbound_channels.is_empty() {
        return Err(fail(
            "redis.inboundChannels",
            "must name at least one channel".into(),
        ));
    }
    if s.cluster.delivery_parts.get() > 64 {
        return Err(fail(
            "cluster.deliveryParts",
            "must be 1 to 64 (each part is a lease and a reader of the hook's whole queue)".into(),
        ));
    }
    if s.api.bind.trim().is_empty() {
        return Err(fail("api.bind", "must be an address to listen on".into()));
    }
    if s.api.supported_checksum_algorithms.is_empty() {
        return Err(fail(
            "api.supportedChecksumAlgorithms",
            "must list at least one of sha1, sha256, sha384, sha512".into(),
        ));
    }
    if !LOG_LEVELS.contains(&s.log.level.to_ascii_lowercase().as_str()) {
        return Err(fail(
            "log.level",
            format!("{:?} is not one of {}", s.log.level, LOG_LEVELS.join(", ")),
        ));
    }
    let guarded = !s.hooks.deny_networks.is_empty() || !s.hooks.allow_networks.is_empty();
    if s.hooks.proxy.is_some() && guarded && !s.hooks.proxy_enforces_policy {
        return Err(fail(
            "hooks.proxy",
            "with hooks.denyNetworks/allowNetworks set, the service would only check the \
             proxy's address; set hooks.proxyEnforcesPolicy: true if the proxy enforces the \
             same policy"
                .into(),
        ));
    }
    for (key, sentinels, master) in [
        (
            "redis.sentinelMaster",
            &s.redis.sentinels,
            &s.redis.sentinel_master,
        ),
        (
            "forward.sentinelMaster",
            &s.forward.sentinels,
            &s.forward.sentinel_master,
        ),
    ] {
        if !sentinels.is_empty() && master.trim().is_empty() {
            return Err(fail(
                key,
                "must name the primary the Sentinels watch".into(),
            ));
        }
    }
    if !s.prometheus.path.starts_with('/') {
        return Err(fail("prometheus.path", "must start with /".into()));
    }
    Ok(())
}
