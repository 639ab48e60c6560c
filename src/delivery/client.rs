//! The one HTTP client every hook shares: keep-alive pools per host, a bound per attempt
//! (connect included), redirects 307/308 followed with the same method and body (at most 5),
//! anything else a failure, and the optional SSRF guard on resolved addresses. Callbacks go
//! through a proxy only when `hooks.proxy` names one: the proxy variables of the environment
//! (`HTTP_PROXY`, …) are ignored, since through a proxy the guard would only ever see the
//! proxy's address. With a proxy (allowed with the guard only when `hooks.proxyEnforcesPolicy`
//! says the proxy applies the same policy), URLs whose host is a denied address are still
//! refused here; names are the proxy's to resolve and check. An answer's body is read until
//! [`MAX_ANSWER_BYTES`] are passed and no further: whatever a receiver streams, the service holds
//! no more than that (and the one chunk that passed it) per request.
//!
//! This module owns sending one attempt and classifying its outcome. It does not build the request
//! ([`super::request`]), schedule retries ([`super::retry`]), nor parse the address blocks: the
//! guard takes the lists the configuration parsed at load.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::redirect::Policy;

use super::request::Callback;
use crate::config::{CidrList, Settings};

const MAX_REDIRECTS: usize = 5;

/// How much of an answer's body is read. Its content never matters (only the status does); a
/// small body is read whole so that the connection can be reused, a larger one is abandoned
/// with its connection.
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// How one attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx, or 401 (the receiver refused it; retrying cannot help — as the reference).
    Delivered(u16),
    /// 410: the receiver wants no more; a non-permanent hook is removed.
    Gone,
    /// Anything else; `reason` is the status code or an error kind, as the reference's metric.
    Failed { reason: String },
}

/// Which addresses callbacks may reach.
#[derive(Debug, Clone, Default)]
pub struct NetworkGuard {
    deny: CidrList,
    allow: CidrList,
}

impl NetworkGuard {
    pub fn new(deny: CidrList, allow: CidrList) -> Self {
        NetworkGuard { deny, allow }
    }

    pub fn is_active(&self) -> bool {
        !self.deny.is_empty() || !self.allow.is_empty()
    }

    /// A URL whose host is an address (no name to resolve) must be permitted itself.
    pub fn permits_url(&self, url: &reqwest::Url) -> bool {
        match url.host() {
            Some(url::Host::Ipv4(ip)) => self.permits(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => self.permits(IpAddr::V6(ip)),
            _ => true,
        }
    }

    pub fn permits(&self, ip: IpAddr) -> bool {
        if self.deny.contains(ip) {
            return false;
        }
        self.allow.is_empty() || self.allow.contains(ip)
    }
}

/// A name whose every address the guard refuses.
#[derive(Debug, thiserror::Error)]
#[error("{0}: {DENIED}")]
struct Denied(String);

const DENIED: &str = "no address allowed by hooks.denyNetworks/allowNetworks";

/// Resolves names and keeps only the addresses the guard permits.
struct GuardedResolver(Arc<NetworkGuard>);

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let guard = self.0.clone();
        Box::pin(async move {
            let host = name.as_str().to_string();
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| guard.permits(a.ip()))
                .collect();
            if addrs.is_empty() {
                return Err(format!(
                    "{host}: no address allowed by hooks.denyNetworks/allowNetworks"
                )
                .into());
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

#[derive(Clone)]
pub struct CallbackClient {
    http: reqwest::Client,
    timeout: Duration,
    guard: Arc<NetworkGuard>,
}

impl CallbackClient {
    pub fn new(settings: &Settings) -> Result<Self, reqwest::Error> {
        crate::tls::install_crypto_provider();
        let timeout = settings.hooks.request_timeout;
        let guard = Arc::new(NetworkGuard::new(
            settings.hooks.deny_networks.clone(),
            settings.hooks.allow_networks.clone(),
        ));
        let policy_guard = guard.clone();
        let policy = Policy::custom(move |attempt| {
            let status = attempt.status().as_u16();
            if !matches!(status, 307 | 308) || attempt.previous().len() > MAX_REDIRECTS {
                return attempt.stop();
            }
            if !policy_guard.permits_url(attempt.url()) {
                return attempt.stop();
            }
            attempt.follow()
        });
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("bbb-webhooks/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(64)
            .tcp_nodelay(true)
            .redirect(policy);
        builder = match &settings.hooks.proxy {
            // An explicit proxy also turns off the environment's.
            Some(proxy) => builder.proxy(reqwest::Proxy::all(proxy.url().clone())?),
            None => builder.no_proxy(),
        };
        // Through a proxy the resolver would only ever be asked for the proxy's own name (and
        // a proxy inside a denied block is common): the proxy enforces the policy on names.
        if guard.is_active() && settings.hooks.proxy.is_none() {
            builder = builder.dns_resolver(Arc::new(GuardedResolver(guard.clone())));
        }
        Ok(CallbackClient {
            http: builder.build()?,
            timeout,
            guard,
        })
    }

    /// One attempt. Never panics, whatever the receiver does.
    pub async fn send(&self, callback: &Callback) -> Outcome {
        let url = match reqwest::Url::parse(&callback.url) {
            Ok(u) => u,
            Err(_) => {
                return Outcome::Failed {
                    reason: "invalid URL".into(),
                };
            }
        };
        if !self.guard.permits_url(&url) {
            return Outcome::Failed {
                reason: "address not allowed".into(),
            };
        }
        let mut request = self
            .http
            .post(url)
            .timeout(self.timeout)
            .body(callback.body.clone());
        for (name, value) in &callback.headers {
            request = request.header(*name, value);
        }
        match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                discard_body(response).await;
                classify(status)
            }
            Err(e) => Outcome::Failed {
                reason: error_reason(&e),
            },
        }
    }
}

/// Reads (and drops) the body chunk by chunk until it ends or [`MAX_ANSWER_BYTES`] are passed, so
/// that a short answer leaves its connection reusable. A longer body is abandoned: dropping the
/// response closes the connection, which is cheaper than reading a receiver's stream to its end.
/// The body's fate never changes the outcome.
async fn discard_body(mut response: reqwest::Response) {
    let mut read = 0usize;
    while read <= MAX_ANSWER_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => read += chunk.len(),
            Ok(None) | Err(_) => return,
        }
    }
}

pub fn classify(status: u16) -> Outcome {
    match status {
        200..=299 | 401 => Outcome::Delivered(status),
        410 => Outcome::Gone,
        other => Outcome::Failed {
            reason: other.to_string(),
        },
    }
}

/// A short, stable reason for a transport error, like the errno codes the reference reports.
fn error_reason(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return "timeout".into();
    }
    let mut source: Option<&dyn std::error::Error> = Some(e);
    while let Some(err) = source {
        // The resolver's error reaches us wrapped (and boxed) by the connector: know it by its
        // type where the chain keeps it, else by its words.
        if err.downcast_ref::<Denied>().is_some() || err.to_string().contains(DENIED) {
            return "address not allowed".into();
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return match io.kind() {
                std::io::ErrorKind::ConnectionRefused => "ECONNREFUSED".into(),
                std::io::ErrorKind::ConnectionReset => "ECONNRESET".into(),
                std::io::ErrorKind::TimedOut => "ETIMEDOUT".into(),
                std::io::ErrorKind::ConnectionAborted => "ECONNABORTED".into(),
                _ => "io error".into(),
            };
        }
        source = err.source();
    }
    if e.is_connect() {
        "connect error".into()
    } else if e.is_redirect() {
        "too many redirects".into()
    } else {
        "unknown".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_by_status() {
        assert_eq!(classify(200), Outcome::Delivered(200));
        assert_eq!(classify(204), Outcome::Delivered(204));
        assert_eq!(classify(401), Outcome::Delivered(401));
        assert_eq!(classify(410), Outcome::Gone);
        assert_eq!(
            classify(302),
            Outcome::Failed {
                reason: "302".into()
            }
        );
        assert_eq!(
            classify(500),
            Outcome::Failed {
                reason: "500".into()
            }
        );
    }

    fn blocks(items: &[&str]) -> CidrList {
        CidrList::try_from(items.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn guard_denies_then_allows() {
        let g = NetworkGuard::new(blocks(&["10.0.0.0/8"]), CidrList::default());
        assert!(!g.permits("10.1.1.1".parse().unwrap()));
        assert!(g.permits("8.8.8.8".parse().unwrap()));
        let only = NetworkGuard::new(CidrList::default(), blocks(&["192.168.0.0/16"]));
        assert!(only.permits("192.168.3.4".parse().unwrap()));
        assert!(!only.permits("127.0.0.1".parse().unwrap()));
        assert!(!NetworkGuard::default().is_active());
    }
}
