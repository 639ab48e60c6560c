//! Building events: the envelope every event shares, and the id objects families reuse.

use serde::Serialize;
use serde_json::{Map, Value};

use super::Cx;
use super::message::Message;
use crate::event::{Event, Raw};

/// An event under construction. `attributes.meeting` comes first, then each attribute in the
/// order it is added, then `attributes.event`. Attributes are serialised as they are added (no
/// intermediate map: this is the mapper's hot path), so the meeting object must be complete
/// before the first attribute.
pub struct EventBuilder {
    id: &'static str,
    ts: u64,
    internal: Option<String>,
    external: Option<String>,
    /// The meeting object until it is written.
    meeting: Option<Map<String, Value>>,
    /// `{"data":{…,"attributes":{"meeting":{…},"key":value…` so far.
    json: Vec<u8>,
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
        let mut json = Vec::with_capacity(512);
        json.extend_from_slice(br#"{"data":{"type":"event","id":""#);
        json.extend_from_slice(id.as_bytes());
        json.extend_from_slice(br#"","attributes":{"meeting":"#);
        EventBuilder {
            id,
            ts,
            internal: internal.map(String::from),
            external: external.map(String::from),
            meeting: Some(meeting),
            json,
        }
    }

    /// The usual start: the message's meeting, its external id from the state, the message's time.
    pub fn for_message(id: &'static str, msg: &Message, cx: &Cx, ts: u64) -> Self {
        let internal = msg.meeting_id();
        let external = internal.and_then(|i| cx.state.external_meeting_id(i));
        EventBuilder::new(id, ts, internal, external)
    }

    fn meeting_mut(&mut self) -> &mut Map<String, Value> {
        self.meeting
            .as_mut()
            .expect("the meeting object is complete before the first attribute")
    }

    pub fn meeting_attr(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.meeting_mut().insert(key.into(), value.into());
        self
    }

    /// Replaces the whole meeting object (meeting-created carries the meeting's details).
    pub fn meeting_object(mut self, meeting: Map<String, Value>) -> Self {
        *self.meeting_mut() = meeting;
        self
    }

    fn flush_meeting(&mut self) {
        if let Some(meeting) = self.meeting.take() {
            write_json(&mut self.json, &meeting);
        }
    }

    pub fn attr(mut self, key: &str, value: impl Serialize) -> Self {
        self.flush_meeting();
        self.json.push(b',');
        write_json(&mut self.json, key);
        self.json.push(b':');
        write_json(&mut self.json, &value);
        self
    }

    /// Sets the attribute only when there is a value.
    pub fn attr_opt(self, key: &str, value: Option<impl Serialize>) -> Self {
        match value {
            Some(v) => self.attr(key, v),
            None => self,
        }
    }

    pub fn build(mut self, raw: Raw) -> Event {
        self.flush_meeting();
        let ts = self.ts;
        self.json.extend_from_slice(
            format!(r#","event":{{"ts":{ts}}}}},"event":{{"ts":{ts}}}}}}}"#).as_bytes(),
        );
        Event {
            id: self.id,
            ts,
            internal_meeting_id: self.internal,
            external_meeting_id: self.external,
            // Only serde_json and ASCII went in.
            json: String::from_utf8(self.json).unwrap_or_default(),
            raw,
        }
    }

    /// Built from the input message: raw hooks receive the message as published.
    pub fn with_input(self, cx: &Cx) -> Event {
        self.build(Raw::Input(cx.raw.clone()))
    }
}

fn write_json(out: &mut Vec<u8>, value: &(impl Serialize + ?Sized)) {
    // Serialising JSON values and strings into memory cannot fail.
    let _ = serde_json::to_writer(out, value);
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

/// The ids of a person a message names in `id` (`""`, `not-used` and absent name nobody): the
/// external id from the state, else `""`. For the acting user of a change (`changed-by`, …).
pub fn person(cx: &Cx, meeting: Option<&str>, id: Option<&str>) -> Option<Map<String, Value>> {
    let id = id.filter(|s| super::message::is_user_id(s))?;
    Some(user_ids(cx, meeting, id, Some("")))
}

/// The start of every built event, up to its meeting object.
const MEETING_AT: &str = r#","attributes":{"meeting":"#;

/// Adds `metadata` to the meeting object of a built event (after the ids), unless that object
/// has one already (`meeting-created`). Done on the finished JSON so that every event, however
/// its family built it, gets it the same way; only the meeting object is read, the rest of the
/// bytes stay as they are. Returns whether it was added.
pub fn add_meeting_metadata(json: &mut String, metadata: &Map<String, Value>) -> bool {
    let Some(start) = json.find(MEETING_AT).map(|at| at + MEETING_AT.len()) else {
        return false;
    };
    let mut objects =
        serde_json::Deserializer::from_str(&json[start..]).into_iter::<Map<String, Value>>();
    let Some(Ok(meeting)) = objects.next() else {
        return false;
    };
    if meeting.contains_key("metadata") {
        return false;
    }
    // The byte after the meeting object is its closing brace.
    let close = start + objects.byte_offset() - 1;
    let mut insert = Vec::with_capacity(64);
    if !meeting.is_empty() {
        insert.push(b',');
    }
    insert.extend_from_slice(br#""metadata":"#);
    write_json(&mut insert, metadata);
    // Only serde_json output went in.
    json.insert_str(close, std::str::from_utf8(&insert).unwrap_or_default());
    true
}
