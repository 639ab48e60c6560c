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
}
