//! A webhook event: what the mapper produces and the router and queues carry.

use std::sync::Arc;

/// One event, already serialised: it is written to Redis and sent as is.
#[derive(Debug, Clone)]
pub struct Event {
    /// The event id (`user-joined`, …), one of [`crate::mapping::catalog::EVENTS`].
    pub id: &'static str,
    /// Milliseconds since the epoch: the message's own time, else its time of receipt.
    pub ts: u64,
    pub internal_meeting_id: Option<String>,
    /// The meeting's external id when known: what meeting-scoped hooks are matched on.
    pub external_meeting_id: Option<String>,
    /// `{"data":{"type":"event","id":…,"attributes":{…},"event":{"ts":…}}}`.
    pub json: String,
    /// What raw hooks receive.
    pub raw: Raw,
}

/// The payload of raw hooks (`getRaw=true`).
#[derive(Debug, Clone)]
pub enum Raw {
    /// The input message exactly as published.
    Input(Arc<str>),
    /// The event itself: for spoofed events that no message produced directly.
    SameAsEvent,
}

impl Event {
    /// The JSON a hook receives for this event.
    pub fn payload(&self, raw_hook: bool) -> &str {
        match (&self.raw, raw_hook) {
            (Raw::Input(text), true) => text,
            _ => &self.json,
        }
    }
}
