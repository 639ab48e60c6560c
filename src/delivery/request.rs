//! The callback request, byte-compatible with bbb-webhooks 3.4+.
//!
//! Body: `domain`, `event`, `timestamp`, WHATWG form encoding; `event` is a JSON array of the
//! events (one unless `multiEvent` batches a backlog). Authenticity: the `checksum` query
//! parameter, `H(callbackURL + body + sharedSecret)`, or `Authorization: Bearer <secret>` when
//! `bbb.auth2_0` is on. Added: `webhook-id`, `webhook-timestamp` and, with
//! `hooks.signingSecret`, a Standard Webhooks `webhook-signature`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};

use crate::checksum::{ChecksumAlgorithm, callback_checksum};
use crate::config::Settings;

/// What signing a callback needs; built once from the settings.
#[derive(Clone)]
pub struct Signer {
    pub domain: String,
    secret: String,
    bearer: bool,
    algorithm: ChecksumAlgorithm,
    /// The Standard Webhooks key (raw bytes).
    signing_key: Option<Vec<u8>>,
}

/// One request, ready to send.
#[derive(Debug, Clone, PartialEq)]
pub struct Callback {
    pub url: String,
    pub body: String,
    pub headers: Vec<(&'static str, String)>,
}

pub const CONTENT_TYPE: &str = "application/x-www-form-urlencoded;charset=UTF-8";

impl Signer {
    pub fn new(settings: &Settings) -> Self {
        Signer {
            domain: settings.bbb.server_domain.clone(),
            secret: settings.secret().to_string(),
            bearer: settings.bbb.auth2_0,
            algorithm: settings.hooks.hook_checksum_algorithm,
            signing_key: settings
                .hooks
                .signing_secret
                .as_ref()
                .map(|s| signing_key(s.expose())),
        }
    }

    /// Builds the request for `payloads` (JSON texts) to `callback_url`.
    ///
    /// `timestamp` is the time of the first attempt (ms, the same on every retry);
    /// `attempt_at` the time of this attempt (seconds, for `webhook-timestamp`).
    pub fn build(
        &self,
        callback_url: &str,
        payloads: &[&str],
        webhook_id: &str,
        timestamp: u64,
        attempt_at: u64,
    ) -> Callback {
        self.build_for(
            &self.domain,
            callback_url,
            payloads,
            webhook_id,
            timestamp,
            attempt_at,
        )
    }

    /// [`Signer::build`] for events of another server (`domain`), in a cluster.
    pub fn build_for(
        &self,
        domain: &str,
        callback_url: &str,
        payloads: &[&str],
        webhook_id: &str,
        timestamp: u64,
        attempt_at: u64,
    ) -> Callback {
        let mut events =
            String::with_capacity(payloads.iter().map(|p| p.len() + 1).sum::<usize>() + 2);
        events.push('[');
        for (i, p) in payloads.iter().enumerate() {
            if i > 0 {
                events.push(',');
            }
            events.push_str(p);
        }
        events.push(']');
        let body = form_urlencoded::Serializer::new(String::new())
            .append_pair("domain", domain)
            .append_pair("event", &events)
            .append_pair("timestamp", &timestamp.to_string())
            .finish();

        let mut headers = vec![
            ("content-type", CONTENT_TYPE.to_string()),
            ("webhook-id", webhook_id.to_string()),
            ("webhook-timestamp", attempt_at.to_string()),
        ];
        if let Some(key) = &self.signing_key {
            let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).expect("HMAC takes any key");
            mac.update(format!("{webhook_id}.{attempt_at}.").as_bytes());
            mac.update(body.as_bytes());
            let sig = BASE64.encode(mac.finalize().into_bytes());
            headers.push(("webhook-signature", format!("v1,{sig}")));
        }
        let url = if self.bearer {
            headers.push(("authorization", format!("Bearer {}", self.secret)));
            callback_url.to_string()
        } else {
            let checksum = callback_checksum(self.algorithm, callback_url, &body, &self.secret);
            with_checksum(callback_url, &checksum)
        };
        Callback { url, body, headers }
    }
}

/// `url` + `?checksum=` (or `&checksum=` when it has a query), before any fragment (which is
/// never sent; the reference appended after it and lost the checksum).
pub fn with_checksum(url: &str, checksum: &str) -> String {
    let (base, _fragment) = url.split_once('#').unwrap_or((url, ""));
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}checksum={checksum}")
}

/// A Standard Webhooks secret is `whsec_` + base64 of the key; anything else is the key itself.
fn signing_key(secret: &str) -> Vec<u8> {
    secret
        .strip_prefix("whsec_")
        .and_then(|b64| BASE64.decode(b64).ok())
        .unwrap_or_else(|| secret.as_bytes().to_vec())
}

/// Verifies a Standard Webhooks signature (what a receiver does): for tests and the demo receiver.
pub fn verify_signature(secret: &str, id: &str, timestamp: &str, body: &str, header: &str) -> bool {
    let key = signing_key(secret);
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).expect("HMAC takes any key");
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body.as_bytes());
    let expected = format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()));
    header.split(' ').any(|s| s == expected)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LoadedConfig;
    use serde_json::json;

    fn signer(bearer: bool) -> Signer {
        let cfg = LoadedConfig::with_overrides(&[
            ("bbb.sharedSecret", json!("mysharedsecret")),
            ("bbb.serverDomain", json!("bbb.example.com")),
            ("bbb.auth2_0", json!(bearer)),
        ])
        .unwrap();
        Signer::new(&cfg.settings)
    }

    /// The reference's own example request (§3.2–3.3 of its description).
    #[test]
    fn byte_for_byte_with_the_reference() {
        let event = r#"{"data":{"type":"event","id":"meeting-ended","attributes":{"meeting":{"internal-meeting-id":"183f0bf3a0982a127bdb8161e0c44eb696b3e75c-1700000000000","external-meeting-id":"my meeting"}},"event":{"ts":1700000000500}}}"#;
        let cb = signer(false).build(
            "https://app.example.com/hook",
            &[event],
            "msg_1",
            1700000000600,
            1700000000,
        );
        assert_eq!(
            cb.body,
            "domain=bbb.example.com&event=%5B%7B%22data%22%3A%7B%22type%22%3A%22event%22%2C%22id%22%3A%22meeting-ended%22%2C%22attributes%22%3A%7B%22meeting%22%3A%7B%22internal-meeting-id%22%3A%22183f0bf3a0982a127bdb8161e0c44eb696b3e75c-1700000000000%22%2C%22external-meeting-id%22%3A%22my+meeting%22%7D%7D%2C%22event%22%3A%7B%22ts%22%3A1700000000500%7D%7D%7D%5D&timestamp=1700000000600"
        );
        assert_eq!(cb.body.len(), 373);
        assert_eq!(
            cb.url,
            "https://app.example.com/hook?checksum=5a7f9c499a073d11ec56a3d104543595877f9402"
        );
        assert!(!cb.headers.iter().any(|(k, _)| *k == "authorization"));
    }

    #[test]
    fn bearer_mode_sends_the_secret_instead() {
        let cb = signer(true).build("https://a/x?y=1", &["{}"], "id", 1, 1);
        assert_eq!(cb.url, "https://a/x?y=1");
        assert!(
            cb.headers
                .contains(&("authorization", "Bearer mysharedsecret".into()))
        );
    }

    #[test]
    fn checksum_placement() {
        assert_eq!(with_checksum("http://x/a", "c"), "http://x/a?checksum=c");
        assert_eq!(
            with_checksum("http://x/a?b=1", "c"),
            "http://x/a?b=1&checksum=c"
        );
        assert_eq!(with_checksum("http://x/?", "c"), "http://x/?&checksum=c");
        assert_eq!(
            with_checksum("http://x/a#frag", "c"),
            "http://x/a?checksum=c"
        );
    }

    #[test]
    fn form_encoding_is_whatwg() {
        let cb = signer(false).build("http://x", &[r#"{"t":"~!*()' -._é/?&="}"#], "id", 1, 1);
        assert!(
            cb.body.contains("%7E%21*%28%29%27+-._%C3%A9%2F%3F%26%3D"),
            "{}",
            cb.body
        );
    }

    #[test]
    fn standard_webhooks_signature_verifies() {
        let cfg = LoadedConfig::with_overrides(&[
            ("bbb.sharedSecret", json!("s")),
            (
                "hooks.signingSecret",
                json!("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
            ),
        ])
        .unwrap();
        let cb = Signer::new(&cfg.settings).build(
            "http://x",
            &["{}"],
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            1614265330,
        );
        let sig = &cb
            .headers
            .iter()
            .find(|(k, _)| *k == "webhook-signature")
            .unwrap()
            .1;
        assert!(verify_signature(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            "1614265330",
            &cb.body,
            sig
        ));
        assert!(!verify_signature(
            "whsec_other",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            "1614265330",
            &cb.body,
            sig
        ));
    }
}
