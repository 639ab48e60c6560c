//! Readiness: what `/ready` reports, as a `watch` channel the parts write and the API reads.
//!
//! Owns the health flags (Redis answering, hooks loaded, channels subscribed, writes accepted),
//! the name of the first critical task that failed, and the count of events full queues
//! dropped. It does not decide what to do about a failure (the
//! supervisor in [`crate::app`] does) nor how the answer looks (the API does).

use std::time::Duration;

use tokio::sync::watch;

/// One reading of the service's health.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Health {
    pub redis: bool,
    pub subscribed: bool,
    pub hooks_loaded: bool,
    /// The first critical task that ended or panicked; once set, the service is never ready
    /// again (it is on its way out, for the service manager to restart it).
    pub failed: Option<&'static str>,
    /// Why the last write to Redis failed, while writes fail (Redis out of memory, read-only).
    pub write_error: Option<String>,
    /// Events a full queue dropped since the start: not a reason to be unready, but a hint
    /// that a receiver is far behind (`hooks.queueSize`).
    pub dropped_events: u64,
}

impl Health {
    pub fn is_ready(&self) -> bool {
        self.redis
            && self.subscribed
            && self.hooks_loaded
            && self.failed.is_none()
            && self.write_error.is_none()
    }
}

/// The writer's side; cheap to clone, every clone writes the same channel.
#[derive(Debug, Clone)]
pub struct Readiness(watch::Sender<Health>);

impl Default for Readiness {
    fn default() -> Self {
        Readiness(watch::Sender::new(Health::default()))
    }
}

impl Readiness {
    pub fn set_redis(&self, up: bool) {
        self.0
            .send_if_modified(|h| std::mem::replace(&mut h.redis, up) != up);
    }

    pub fn set_subscribed(&self, up: bool) {
        self.0
            .send_if_modified(|h| std::mem::replace(&mut h.subscribed, up) != up);
    }

    pub fn set_hooks_loaded(&self) {
        self.0
            .send_if_modified(|h| !std::mem::replace(&mut h.hooks_loaded, true));
    }

    /// Records a critical task's failure; the first one is kept.
    pub fn set_failed(&self, task: &'static str) {
        self.0.send_if_modified(|h| {
            if h.failed.is_some() {
                return false;
            }
            h.failed = Some(task);
            true
        });
    }

    /// Writes fail (with why), or work again (`None`).
    pub fn set_write_error(&self, error: Option<String>) {
        self.0.send_if_modified(|h| {
            if h.write_error == error {
                return false;
            }
            h.write_error = error;
            true
        });
    }

    /// Counts events dropped by a full queue.
    pub fn add_dropped(&self, n: u64) {
        self.0.send_modify(|h| h.dropped_events += n);
    }

    pub fn get(&self) -> Health {
        self.0.borrow().clone()
    }

    pub fn is_ready(&self) -> bool {
        self.0.borrow().is_ready()
    }

    pub fn subscribe(&self) -> watch::Receiver<Health> {
        self.0.subscribe()
    }

    /// Waits until `accept` holds for the health; false after `timeout`.
    pub async fn wait_for(&self, timeout: Duration, accept: impl FnMut(&Health) -> bool) -> bool {
        let mut rx = self.subscribe();
        matches!(
            tokio::time::timeout(timeout, rx.wait_for(accept)).await,
            Ok(Ok(_))
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ready_only_with_everything_up_and_nothing_failed() {
        let r = Readiness::default();
        assert!(!r.is_ready());
        r.set_redis(true);
        r.set_hooks_loaded();
        assert!(!r.is_ready());
        r.set_subscribed(true);
        assert!(r.is_ready());
        assert!(
            r.wait_for(Duration::from_millis(10), Health::is_ready)
                .await
        );
        r.set_failed("enqueuer");
        r.set_failed("subscriber");
        assert!(!r.is_ready());
        assert_eq!(
            r.get().failed,
            Some("enqueuer"),
            "the first failure is kept"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn waiting_ends_at_the_change_or_the_timeout() {
        let r = Readiness::default();
        let waiter = {
            let r = r.clone();
            tokio::spawn(async move { r.wait_for(Duration::from_secs(5), |h| h.redis).await })
        };
        tokio::task::yield_now().await;
        r.set_redis(true);
        assert!(waiter.await.unwrap());
        assert!(!r.wait_for(Duration::from_secs(5), |h| h.subscribed).await);
    }
}
