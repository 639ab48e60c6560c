//! The retry schedule: `retryIntervals` after the 1st, 2nd, … failure; then, for a hook that
//! stays (permanent, or `removeFailedHooks: false`), `permanentIntervalReset` forever; any other
//! hook is given up (removed).

use std::time::Duration;

use crate::config::HookSettings;

#[derive(Debug, Clone)]
pub struct RetryPolicy {
    intervals: Vec<Duration>,
    reset: Duration,
    remove_failed: bool,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    RetryAfter(Duration),
    GiveUp,
}

impl RetryPolicy {
    pub fn new(settings: &HookSettings) -> Self {
        RetryPolicy {
            intervals: settings.retry_intervals.clone(),
            reset: settings.permanent_interval_reset,
            remove_failed: settings.remove_failed_hooks,
        }
    }

    /// What to do after `failures` failed attempts (1 after the first).
    pub fn after_failure(&self, failures: u32, permanent: bool) -> Next {
        match self.intervals.get(failures.saturating_sub(1) as usize) {
            Some(wait) => Next::RetryAfter(*wait),
            None if permanent || !self.remove_failed => Next::RetryAfter(self.reset),
            None => Next::GiveUp,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(remove_failed: bool) -> RetryPolicy {
        RetryPolicy {
            intervals: vec![Duration::from_millis(100), Duration::from_millis(500)],
            reset: Duration::from_millis(60_000),
            remove_failed,
        }
    }

    #[test]
    fn intervals_then_give_up_or_reset() {
        let p = policy(true);
        assert_eq!(
            p.after_failure(1, false),
            Next::RetryAfter(Duration::from_millis(100))
        );
        assert_eq!(
            p.after_failure(2, false),
            Next::RetryAfter(Duration::from_millis(500))
        );
        assert_eq!(p.after_failure(3, false), Next::GiveUp);
        assert_eq!(
            p.after_failure(3, true),
            Next::RetryAfter(Duration::from_millis(60_000))
        );
        assert_eq!(
            p.after_failure(99, true),
            Next::RetryAfter(Duration::from_millis(60_000))
        );
        assert_eq!(
            policy(false).after_failure(3, false),
            Next::RetryAfter(Duration::from_millis(60_000))
        );
    }

    #[test]
    fn the_reference_schedule_makes_13_attempts() {
        let p = RetryPolicy::new(&HookSettings::default());
        let retries = (1..)
            .take_while(|f| p.after_failure(*f, false) != Next::GiveUp)
            .count();
        assert_eq!(retries + 1, 13);
    }

    /// Fails `failures` times in a row, sleeping each wait the policy gives on tokio's clock;
    /// returns the waits as measured and whether the hook was given up.
    async fn fail_repeatedly(
        p: &RetryPolicy,
        permanent: bool,
        failures: u32,
    ) -> (Vec<Duration>, bool) {
        let mut waits = Vec::new();
        for failure in 1..=failures {
            match p.after_failure(failure, permanent) {
                Next::RetryAfter(wait) => {
                    let before = tokio::time::Instant::now();
                    tokio::time::sleep(wait).await;
                    waits.push(before.elapsed());
                }
                Next::GiveUp => return (waits, true),
            }
        }
        (waits, false)
    }

    fn ms(waits: &[u64]) -> Vec<Duration> {
        waits.iter().map(|w| Duration::from_millis(*w)).collect()
    }

    /// On a paused clock the waits are exact: what the schedule says, to the millisecond.
    #[tokio::test(start_paused = true)]
    async fn the_schedule_measured_on_a_paused_clock() {
        let intervals = [
            100, 500, 1000, 2000, 4000, 8000, 10000, 30000, 60000, 60000, 60000, 60000,
        ];
        let start = tokio::time::Instant::now();

        // A normal hook: the twelve intervals, then the 13th failure gives it up.
        let reference = RetryPolicy::new(&HookSettings::default());
        let (waits, gave_up) = fail_repeatedly(&reference, false, 20).await;
        assert_eq!(waits, ms(&intervals));
        assert!(gave_up);
        assert_eq!(start.elapsed(), Duration::from_millis(295_600));

        // A permanent hook: the same intervals, then permanentIntervalReset for ever.
        let (waits, gave_up) = fail_repeatedly(&reference, true, 16).await;
        assert!(!gave_up);
        assert_eq!(waits[..12], ms(&intervals));
        assert_eq!(waits[12..], ms(&[60_000; 4]));

        // removeFailedHooks: false keeps a normal hook like a permanent one.
        let keep = RetryPolicy::new(&HookSettings {
            remove_failed_hooks: false,
            ..HookSettings::default()
        });
        let (kept, gave_up) = fail_repeatedly(&keep, false, 16).await;
        assert!(!gave_up);
        assert_eq!(kept, waits);

        // A reset unlike the last interval: after [100, 500] comes 60 s, every time.
        let start = tokio::time::Instant::now();
        let (waits, gave_up) = fail_repeatedly(&policy(true), true, 5).await;
        assert!(!gave_up);
        assert_eq!(waits, ms(&[100, 500, 60_000, 60_000, 60_000]));
        assert_eq!(start.elapsed(), Duration::from_millis(180_600));
        let (waits, gave_up) = fail_repeatedly(&policy(true), false, 5).await;
        assert_eq!((waits, gave_up), (ms(&[100, 500]), true));
    }
}
