//! Fault injection for the test suite: with the cargo feature `fault-injection` (never in a
//! build that ships), a message or event carrying a marker makes a task panic, so tests can
//! watch the supervision at work. Without the feature every check is an empty inline function.
//!
//! Markers (anywhere in the raw message, hence in the events' payloads):
//! * `bbb-webhooks-fault:enqueuer-panic`: the enqueuer panics on that message;
//! * `bbb-webhooks-fault:worker-panic-once:<token>`: the hook worker sending it panics the first
//!   time it meets that token (per process), and sends it normally after its restart;
//! * `bbb-webhooks-fault:forwarder-panic`: the forwarder's writer panics on that message.

#[cfg(feature = "fault-injection")]
mod enabled {
    use std::collections::HashSet;
    use std::sync::Mutex;

    pub const ENQUEUER_PANIC: &str = "bbb-webhooks-fault:enqueuer-panic";
    pub const WORKER_PANIC_ONCE: &str = "bbb-webhooks-fault:worker-panic-once:";
    pub const FORWARDER_PANIC: &str = "bbb-webhooks-fault:forwarder-panic";

    pub fn forwarder(message: &[u8]) {
        if message
            .windows(FORWARDER_PANIC.len())
            .any(|w| w == FORWARDER_PANIC.as_bytes())
        {
            panic!("fault injected: {FORWARDER_PANIC}");
        }
    }

    pub fn enqueuer(message: &[u8]) {
        if message
            .windows(ENQUEUER_PANIC.len())
            .any(|w| w == ENQUEUER_PANIC.as_bytes())
        {
            panic!("fault injected: {ENQUEUER_PANIC}");
        }
    }

    pub fn worker(payloads: &[&str]) {
        static FIRED: Mutex<Option<HashSet<String>>> = Mutex::new(None);
        for p in payloads {
            let Some(at) = p.find(WORKER_PANIC_ONCE) else {
                continue;
            };
            let token: String = p[at + WORKER_PANIC_ONCE.len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect();
            let first = FIRED
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get_or_insert_with(HashSet::new)
                .insert(token.clone());
            if first {
                panic!("fault injected: {WORKER_PANIC_ONCE}{token}");
            }
        }
    }
}

#[cfg(feature = "fault-injection")]
pub use enabled::*;

#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn enqueuer(_message: &[u8]) {}

#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn worker(_payloads: &[&str]) {}

#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn forwarder(_message: &[u8]) {}
