//! Building events: the envelope every event shares, and the id objects families reuse.

use serde_json::{Map, Value};

use super::Cx;
use super::message::Message;
use crate::event::{Event, Raw};

/// An event under construction. `attributes.meeting` is first, `attributes.event` last.
pub struct EventBuilder {
    id: &'static str,
    ts: u64,
    internal: Option<String>,
    external: Option<String>,
    meeting: Map<String, Value>,
    attributes: Map<String, Value>,
}

impl EventBuilder {
    /// An event of the meeting `internal`, whose external id comes from the state unless given.
    pub fn new(id: &'static str, ts: u64, internal: Option<&str>, external: Option<&str>) -> Self {
        let mut meeting = Map::new();
        if let Some(i) = internal {
            meeting.insert("internal-meeting-id".into(), i.into());
        }
        if let Some(e) = external {
            meeting.insert("external-meeting-id".into(), e.into());
        }
        EventBuilder {
            id,
            ts,
            internal: internal.map(String::from),
            external: external.map(String::from),
            meeting,
            attributes: Map::new(),
        }
    }

    /// The usual start: the message's meeting, its external id from the state, the message's time.
    pub fn for_message(id: &'static str, msg: &Message, cx: &Cx, ts: u64) -> Self {
        let internal = msg.meeting_id();
        let external = internal.and_then(|i| cx.state.external_meeting_id(i));
        EventBuilder::new(id, ts, internal, external)
    }

    pub fn meeting_attr(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.meeting.insert(key.into(), value.into());
        self
    }

    /// Replaces the whole meeting object (meeting-created carries the meeting's details).
    pub fn meeting_object(mut self, meeting: Map<String, Value>) -> Self {
        self.meeting = meeting;
        self
    }

    pub fn attr(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.attributes.insert(key.into(), value.into());
        self
    }

    /// Sets the attribute only when there is a value.
    pub fn attr_opt(self, key: &str, value: Option<impl Into<Value>>) -> Self {
        match value {
            Some(v) => self.attr(key, v),
            None => self,
        }
    }

    pub fn build(self, raw: Raw) -> Event {
        let mut attributes = Map::with_capacity(self.attributes.len() + 2);
        attributes.insert("meeting".into(), Value::Object(self.meeting));
        attributes.extend(self.attributes);
        attributes.insert("event".into(), serde_json::json!({ "ts": self.ts }));
        let attributes = Value::Object(attributes).to_string();
        let json = format!(
            r#"{{"data":{{"type":"event","id":"{}","attributes":{attributes},"event":{{"ts":{}}}}}}}"#,
            self.id, self.ts
        );
        Event {
            id: self.id,
            ts: self.ts,
            internal_meeting_id: self.internal,
            external_meeting_id: self.external,
            json,
            raw,
        }
    }

    /// Built from the input message: raw hooks receive the message as published.
    pub fn with_input(self, cx: &Cx) -> Event {
        self.build(Raw::Input(cx.raw.clone()))
    }
}

/// `{"internal-user-id", "external-user-id"}`; the external id from the state, else `fallback`.
/// `None` for the external id means "omit when unknown" (chat senders, screen sharers).
pub fn user_ids(
    cx: &Cx,
    meeting: Option<&str>,
    user_id: &str,
    fallback: Option<&str>,
) -> Map<String, Value> {
    let mut user = Map::new();
    user.insert("internal-user-id".into(), user_id.into());
    let known = meeting.and_then(|m| cx.state.external_user_id(m, user_id));
    if let Some(ext) = known.or(fallback) {
        user.insert("external-user-id".into(), ext.into());
    }
    user
}

/// Copies `source[from]` to `target[to]` when present and not null.
pub fn copy(target: &mut Map<String, Value>, to: &str, source: &Value, from: &str) {
    if let Some(v) = source.get(from).filter(|v| !v.is_null()) {
        target.insert(to.into(), v.clone());
    }
}

/// Copies each `(to, from)` field that is present.
pub fn copy_all(target: &mut Map<String, Value>, source: &Value, fields: &[(&str, &str)]) {
    for (to, from) in fields {
        copy(target, to, source, from);
    }
}
