//! Learning Record Stores: where xAPI statements go and how to authenticate there.
//!
//! This module owns the LRS descriptor ([`Lrs`]: the statements URL and the credentials), its
//! stable id (`lrsId`, the name of its queue), the endpoint resolution of bbb-webhooks 3.x, the
//! per-meeting payload (`meta_secret-lrs-payload`: OpenSSL `enc` output, decrypted with the
//! shared secret) and the Redis hash that keeps every descriptor statements were queued for. It
//! sits at the side of the pipeline: the xAPI processing ([`crate::xapi`]) decides which LRS a
//! meeting's statements go to and writes the descriptor with them; delivery reads it back, also
//! after a restart, to send them. It builds no statement and sends nothing.
//!
//! Why descriptors are stored, credentials included: a statement waiting in Redis for a
//! per-meeting LRS must still reach it after a restart, when the meeting's `meeting-created`
//! (which carried the encrypted payload) is long gone. The operator's documentation says so.

use std::collections::HashMap;
use std::fmt;

use aes::cipher::{BlockDecryptMut, KeyIvInit, block_padding::Pkcs7};
use base64::Engine;
use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::LrsSettings;
use crate::keys::Keys;

/// PBKDF2 iterations of the payload (OpenSSL `enc -pbkdf2 -iter 10000`, as 3.x reads it).
const PBKDF2_ROUNDS: u32 = 10_000;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LrsError {
    #[error("the LRS endpoint {0:?} is not an absolute http(s) URL")]
    BadEndpoint(String),
    #[error("no LRS endpoint: neither the meeting's payload nor xapi.lrs.endpoint names one")]
    NoEndpoint,
}

/// Why a `secret-lrs-payload` cannot be used. The payload itself never appears in messages.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PayloadError {
    #[error("not base64")]
    NotBase64,
    #[error("not OpenSSL salted data (no Salted__ header)")]
    NotSalted,
    #[error(
        "does not decrypt with the shared secret (wrong secret, or not AES-256-CBC/PBKDF2-SHA256/10000)"
    )]
    Decrypt,
    #[error("decrypts, but not to a JSON object: {0}")]
    NotJson(String),
    #[error("names neither lrs_token nor both lrs_username and lrs_password")]
    NoCredentials,
}

/// How requests to an LRS authenticate.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum LrsAuth {
    None,
    Basic { username: String, password: String },
    Bearer { token: String },
}

impl fmt::Debug for LrsAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LrsAuth::None => f.write_str("None"),
            LrsAuth::Basic { username, .. } => write!(f, "Basic({username}:<redacted>)"),
            LrsAuth::Bearer { .. } => f.write_str("Bearer(<redacted>)"),
        }
    }
}

impl LrsAuth {
    /// The `Authorization` header's value, if any.
    pub fn header(&self) -> Option<String> {
        match self {
            LrsAuth::None => None,
            LrsAuth::Basic { username, password } => Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"))
            )),
            LrsAuth::Bearer { token } => Some(format!("Bearer {token}")),
        }
    }
}

/// One LRS: the URL statements are POSTed to, and the credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lrs {
    pub statements_url: String,
    pub auth: LrsAuth,
}

impl Lrs {
    /// Its id: a hash of URL and credentials, so that one LRS with one set of credentials is one
    /// queue whoever names it, and a change of credentials is a queue of its own (statements
    /// already queued keep the credentials they were queued with).
    pub fn id(&self) -> String {
        let mut h = Sha256::new();
        h.update(self.statements_url.as_bytes());
        h.update([0]);
        h.update(serde_json::to_vec(&self.auth).unwrap_or_default());
        let digest = h.finalize();
        digest[..8].iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The host (and port) of the statements URL: what logs and metrics may show.
    pub fn host(&self) -> String {
        url::Url::parse(&self.statements_url)
            .ok()
            .and_then(|u| {
                u.host_str()
                    .map(|h| u.port().map_or(h.to_string(), |p| format!("{h}:{p}")))
            })
            .unwrap_or_default()
    }

    /// The default LRS of the settings (`None` without an endpoint).
    pub fn from_settings(s: &LrsSettings) -> Result<Option<Lrs>, LrsError> {
        let Some(endpoint) = s.endpoint.as_deref().filter(|e| !e.trim().is_empty()) else {
            return Ok(None);
        };
        let auth = match (&s.token, &s.username, &s.password) {
            (Some(token), _, _) if !token.expose().is_empty() => LrsAuth::Bearer {
                token: token.expose().to_string(),
            },
            (_, None, None) => LrsAuth::None,
            (_, user, password) => LrsAuth::Basic {
                username: user.clone().unwrap_or_default(),
                password: password
                    .as_ref()
                    .map(|p| p.expose().to_string())
                    .unwrap_or_default(),
            },
        };
        Ok(Some(Lrs {
            statements_url: statements_url(endpoint)?,
            auth,
        }))
    }

    /// A meeting's LRS from its decrypted payload: each of endpoint, username and password
    /// falls back to the default LRS's setting, as in 3.x; a token makes it Bearer.
    pub fn from_payload(p: &LrsPayload, default: &LrsSettings) -> Result<Lrs, LrsError> {
        let endpoint = p
            .lrs_endpoint
            .as_deref()
            .or(default.endpoint.as_deref())
            .filter(|e| !e.trim().is_empty())
            .ok_or(LrsError::NoEndpoint)?;
        let auth = match &p.lrs_token {
            Some(token) => LrsAuth::Bearer {
                token: token.clone(),
            },
            None => LrsAuth::Basic {
                username: p
                    .lrs_username
                    .clone()
                    .or_else(|| default.username.clone())
                    .unwrap_or_default(),
                password: p
                    .lrs_password
                    .clone()
                    .or_else(|| default.password.as_ref().map(|s| s.expose().to_string()))
                    .unwrap_or_default(),
            },
        };
        Ok(Lrs {
            statements_url: statements_url(endpoint)?,
            auth,
        })
    }
}

/// Where statements are POSTed, from an endpoint as 3.x resolves it: a trailing `/xapi`,
/// `/xapi/`, `/xapi/statements` or `/xapi/statements/` (any case) is cut off, then
/// `xAPI/statements` is resolved against what is left as a relative URL (so without a trailing
/// slash the last path segment is replaced: `https://h/lrs` → `https://h/xAPI/statements`).
pub fn statements_url(endpoint: &str) -> Result<String, LrsError> {
    let bad = || LrsError::BadEndpoint(endpoint.to_string());
    let base = strip_xapi_suffix(endpoint.trim());
    let base = url::Url::parse(base).map_err(|_| bad())?;
    if !matches!(base.scheme(), "http" | "https") || base.host_str().is_none() {
        return Err(bad());
    }
    base.join("xAPI/statements")
        .map(|u| u.to_string())
        .map_err(|_| bad())
}

/// `endpoint` without a final `/xapi[/][statements][/]` (ASCII case-insensitive).
fn strip_xapi_suffix(endpoint: &str) -> &str {
    let lower = endpoint.to_ascii_lowercase();
    let mut end = lower.len();
    if lower[..end].ends_with('/') {
        end -= 1;
    }
    if lower[..end].ends_with("statements") {
        end -= "statements".len();
    }
    if lower[..end].ends_with('/') {
        end -= 1;
    }
    if lower[..end].ends_with("/xapi") {
        &endpoint[..end - "/xapi".len()]
    } else {
        endpoint
    }
}

/// The decrypted `secret-lrs-payload`, as 3.x reads it.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
pub struct LrsPayload {
    pub lrs_endpoint: Option<String>,
    pub lrs_username: Option<String>,
    pub lrs_password: Option<String>,
    pub lrs_token: Option<String>,
}

impl fmt::Debug for LrsPayload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LrsPayload")
            .field("lrs_endpoint", &self.lrs_endpoint)
            .field("lrs_username", &self.lrs_username)
            .finish_non_exhaustive()
    }
}

impl LrsPayload {
    /// Decrypts and reads a payload; it must carry a token, or a username and a password.
    pub fn open(payload: &str, secret: &str) -> Result<LrsPayload, PayloadError> {
        let text = decrypt(payload, secret)?;
        let p: LrsPayload =
            serde_json::from_str(&text).map_err(|e| PayloadError::NotJson(e.to_string()))?;
        let has = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.is_empty());
        let basic = has(&p.lrs_username) && has(&p.lrs_password);
        if !(has(&p.lrs_token) || basic) {
            return Err(PayloadError::NoCredentials);
        }
        Ok(p)
    }
}

/// Decrypts the output of `openssl enc -aes-256-cbc -pbkdf2 -iter 10000 -md sha256 -salt
/// -base64 -A -pass pass:<secret>`: base64 of `Salted__`, 8 bytes of salt, then AES-256-CBC
/// data (PKCS#7 padding) whose key (32 bytes) and IV (16) are PBKDF2-HMAC-SHA256 of the
/// passphrase and the salt.
pub fn decrypt(payload: &str, secret: &str) -> Result<String, PayloadError> {
    // Tolerate line breaks (openssl without -A wraps at 64 columns).
    let compact: String = payload.chars().filter(|c| !c.is_whitespace()).collect();
    let raw = base64::engine::general_purpose::STANDARD
        .decode(compact.as_bytes())
        .map_err(|_| PayloadError::NotBase64)?;
    if raw.len() < 32 || &raw[..8] != b"Salted__" || (raw.len() - 16) % 16 != 0 {
        return Err(PayloadError::NotSalted);
    }
    let (salt, data) = (&raw[8..16], &raw[16..]);
    let mut key_iv = [0u8; 48];
    pbkdf2::pbkdf2_hmac::<Sha256>(secret.as_bytes(), salt, PBKDF2_ROUNDS, &mut key_iv);
    let mut buf = data.to_vec();
    let plain = cbc::Decryptor::<aes::Aes256>::new((&key_iv[..32]).into(), (&key_iv[32..]).into())
        .decrypt_padded_mut::<Pkcs7>(&mut buf)
        .map_err(|_| PayloadError::Decrypt)?;
    String::from_utf8(plain.to_vec()).map_err(|_| PayloadError::Decrypt)
}

/// Adds "this LRS exists" to a write (the enqueuer's MULTI, so that the descriptor is in Redis
/// no later than the first statement queued for it).
pub fn store(pipe: &mut redis::Pipeline, keys: &Keys, lrs: &Lrs) {
    pipe.hset(
        keys.xapi_lrs(),
        lrs.id(),
        serde_json::to_string(lrs).unwrap_or_default(),
    )
    .ignore();
}

/// Every stored LRS, by id; entries that do not read are skipped with a warning.
pub async fn load_all(
    conn: &ConnectionManager,
    keys: &Keys,
) -> redis::RedisResult<HashMap<String, Lrs>> {
    let mut conn = conn.clone();
    let stored: HashMap<String, String> =
        redis::AsyncCommands::hgetall(&mut conn, keys.xapi_lrs()).await?;
    Ok(stored
        .into_iter()
        .filter_map(|(id, json)| match serde_json::from_str::<Lrs>(&json) {
            Ok(lrs) => Some((id, lrs)),
            Err(e) => {
                tracing::warn!(lrs = %id, error = %e, "an unreadable LRS descriptor in Redis: its statements wait");
                None
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    #[test]
    fn endpoints_resolve_as_in_3x() {
        for (endpoint, want) in [
            (
                "http://127.0.0.1:9109/xapi",
                "http://127.0.0.1:9109/xAPI/statements",
            ),
            ("http://h/xAPI/", "http://h/xAPI/statements"),
            ("http://h/xapi/statements", "http://h/xAPI/statements"),
            ("http://h/XAPI/Statements/", "http://h/xAPI/statements"),
            ("https://h/lrs/xapi", "https://h/xAPI/statements"),
            ("https://h/lrs/", "https://h/lrs/xAPI/statements"),
            ("https://h/lrs/data/xapi/", "https://h/lrs/xAPI/statements"),
            ("https://h", "https://h/xAPI/statements"),
        ] {
            assert_eq!(statements_url(endpoint).unwrap(), want, "{endpoint}");
        }
        assert!(statements_url("not a url").is_err());
        assert!(statements_url("ftp://h/xapi").is_err());
    }

    #[test]
    fn ids_follow_url_and_credentials() {
        let a = Lrs {
            statements_url: "http://h/xAPI/statements".into(),
            auth: LrsAuth::Basic {
                username: "u".into(),
                password: "p".into(),
            },
        };
        let mut b = a.clone();
        assert_eq!(a.id(), b.id());
        assert_eq!(a.id().len(), 16);
        b.auth = LrsAuth::Bearer { token: "t".into() };
        assert_ne!(a.id(), b.id());
        assert_eq!(a.host(), "h");
        assert_eq!(a.auth.header().unwrap(), "Basic dTpw", "base64 of u:p");
        assert_eq!(format!("{:?}", a.auth), "Basic(u:<redacted>)");
        assert_eq!(format!("{:?}", b.auth), "Bearer(<redacted>)");
    }

    #[test]
    fn default_lrs_from_settings() {
        let mut s = LrsSettings::default();
        assert_eq!(Lrs::from_settings(&s).unwrap(), None);
        s.endpoint = Some("http://127.0.0.1:9109/xapi".into());
        s.username = Some("lrs-user".into());
        s.password = Some(Secret::new("lrs-pass"));
        let lrs = Lrs::from_settings(&s).unwrap().unwrap();
        assert_eq!(lrs.auth.header().unwrap(), "Basic bHJzLXVzZXI6bHJzLXBhc3M=");
        s.token = Some(Secret::new("tok"));
        let lrs = Lrs::from_settings(&s).unwrap().unwrap();
        assert_eq!(lrs.auth.header().unwrap(), "Bearer tok");
    }

    #[test]
    fn payload_fields_fall_back_to_the_default() {
        let d = LrsSettings {
            endpoint: Some("http://default/xapi".into()),
            password: Some(Secret::new("dp")),
            ..Default::default()
        };
        let p = LrsPayload {
            lrs_username: Some("mu".into()),
            ..Default::default()
        };
        let lrs = Lrs::from_payload(&p, &d).unwrap();
        assert_eq!(lrs.statements_url, "http://default/xAPI/statements");
        assert_eq!(
            lrs.auth,
            LrsAuth::Basic {
                username: "mu".into(),
                password: "dp".into()
            }
        );
        let p = LrsPayload {
            lrs_token: Some("tk".into()),
            ..Default::default()
        };
        assert_eq!(
            Lrs::from_payload(&p, &LrsSettings::default()),
            Err(LrsError::NoEndpoint)
        );
    }

    /// The worked example of docs/xapi.md, made with its `openssl enc` command.
    #[test]
    fn the_documented_payload_opens() {
        let payload = "U2FsdGVkX1/YWxzWhugBKZen4GB4a/6zZW6d0Q9khflMQuhw5hBBOn4Cg2R+wA/ad+QKwTDbNRsWcL7WNBujldSOBdX/ulujX9H2eJJy8cvfHpMVbW/mvH7WkUrgbtTT4C5S63LbN4ybrakhABKcPzG1f9d+/2MUKAgmgny6dSo=";
        let doc =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/xapi.md")).unwrap();
        assert!(doc.contains(payload), "docs/xapi.md shows this payload");
        let p = LrsPayload::open(payload, "mysharedsecret").unwrap();
        assert_eq!(
            p.lrs_endpoint.as_deref(),
            Some("https://lrs.example.com/xapi")
        );
        assert_eq!(p.lrs_username.as_deref(), Some("course-42"));
        assert_eq!(p.lrs_password.as_deref(), Some("s3cret"));
    }

    #[test]
    fn bad_payloads_say_why() {
        assert_eq!(decrypt("%%%", "s"), Err(PayloadError::NotBase64));
        assert_eq!(
            decrypt("aGVsbG8gd29ybGQgaGVsbG8gd29ybGQgaGVsbG8=", "s"),
            Err(PayloadError::NotSalted)
        );
    }
}
