//! A parsed input message: its shape, its name, and typed access to its fields.

use serde_json::Value;

use super::MapError;

/// The three shapes BigBlueButton (and friends) publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// BigBlueButton 2.x–3.x: `{"envelope":{"name",…},"core":{"header",…,"body"}}`.
    Envelope,
    /// BigBlueButton 1.x and record-and-playback: `{"header":{"name",…},"payload":{…}}`.
    HeaderPayload,
    /// An event someone already mapped: `{"data":{"id",…}}`, passed through.
    Mapped,
}

pub struct Message<'a> {
    pub shape: Shape,
    pub name: &'a str,
    pub root: &'a Value,
    /// The exact text as published.
    pub text: &'a str,
    /// `core.body` or `payload`, looked up once (handlers read it many times).
    body: &'a Value,
    /// The internal meeting id, looked up once.
    meeting: Option<&'a str>,
}

impl<'a> Message<'a> {
    pub fn classify(root: &'a Value, text: &'a str) -> Result<Message<'a>, MapError> {
        if !root.is_object() {
            return Err(MapError::Malformed("not a JSON object".into()));
        }
        let (shape, name) = if let Some(name) = path(root, "/envelope/name") {
            (Shape::Envelope, name)
        } else if let Some(name) = path(root, "/header/name") {
            (Shape::HeaderPayload, name)
        } else if let Some(id) = path(root, "/data/id") {
            (Shape::Mapped, id)
        } else {
            return Err(MapError::Malformed(
                "no envelope.name, header.name or data.id".into(),
            ));
        };
        let name = name
            .as_str()
            .ok_or_else(|| MapError::Malformed("the message name is not a string".into()))?;
        let body = match shape {
            Shape::Envelope => path(root, "/core/body"),
            Shape::HeaderPayload => root.get("payload"),
            Shape::Mapped => root.get("data"),
        }
        .unwrap_or(&Value::Null);
        Ok(Message {
            shape,
            name,
            root,
            text,
            body,
            meeting: find_meeting_id(root),
        })
    }

    /// `core.body` (2.x) or `payload` (1.x); `Null` when absent.
    pub fn body(&self) -> &'a Value {
        self.body
    }

    pub fn at(&self, pointer: &str) -> Option<&'a Value> {
        path(self.root, pointer).filter(|v| !v.is_null())
    }

    /// A field of the body; absent and `null` are the same.
    pub fn field(&self, name: &str) -> Option<&'a Value> {
        self.body().get(name).filter(|v| !v.is_null())
    }

    pub fn str_field(&self, name: &str) -> Option<&'a str> {
        self.field(name).and_then(Value::as_str)
    }

    /// A required string field of the body.
    pub fn require_str(&self, name: &'static str) -> Result<&'a str, MapError> {
        self.str_field(name)
            .filter(|s| !s.is_empty())
            .ok_or(MapError::MissingField(name))
    }

    /// The internal meeting id: the first non-empty of the places BigBlueButton puts it (the
    /// reference's order).
    pub fn meeting_id(&self) -> Option<&'a str> {
        self.meeting
    }

    /// The user a 2.x message is about: header, then body; `not-used` is no user.
    pub fn user_id(&self) -> Option<&'a str> {
        ["/core/header/userId", "/core/body/userId"]
            .iter()
            .filter_map(|p| path(self.root, p).and_then(Value::as_str))
            .find(|s| is_user_id(s))
    }

    /// The internal meeting id, required: a message that cannot name its meeting is the one kind
    /// of message too broken to deliver.
    pub fn require_meeting(&self) -> Result<&'a str, MapError> {
        self.meeting_id()
            .ok_or(MapError::MissingField("core.header.meetingId"))
    }

    /// A body field naming a user, when it does (not empty, not `not-used`).
    pub fn user_field(&self, name: &str) -> Option<&'a str> {
        self.str_field(name).filter(|s| is_user_id(s))
    }

    /// The user a message is about: the body's `field` first (the header may name whoever acted
    /// instead), then the header's user.
    pub fn subject(&self, field: &str) -> Option<&'a str> {
        self.user_field(field).or_else(|| self.user_id())
    }

    /// The message's own time in ms: `envelope.timestamp`, or `header.current_time` (seconds for
    /// record-and-playback, `seconds` = true). `None` when it has none.
    pub fn own_time(&self, seconds: bool) -> Option<u64> {
        let value = match self.shape {
            Shape::Envelope => path(self.root, "/envelope/timestamp"),
            Shape::HeaderPayload => path(self.root, "/header/current_time"),
            Shape::Mapped => path(self.root, "/data/event/ts"),
        }?;
        let n = as_u64(value)?;
        Some(if seconds { n.saturating_mul(1000) } else { n })
    }
}

fn find_meeting_id(root: &Value) -> Option<&str> {
    const PLACES: [&str; 8] = [
        "/envelope/routing/meetingId",
        "/core/body/props/meetingProp/intId",
        "/core/body/meetingId",
        "/core/header/meetingId",
        "/core/body/internalMeetingId",
        "/core/body/recordId",
        "/core/body/meeting_id",
        "/payload/meeting_id",
    ];
    PLACES
        .iter()
        .filter_map(|p| path(root, p).and_then(Value::as_str))
        .find(|s| !s.is_empty())
}

/// `value` at a JSON-pointer-like path of plain keys (`/core/body/x`). Unlike
/// `Value::pointer` it allocates nothing, which matters on the hot path; our paths have no
/// `~` escapes.
pub fn path<'a>(value: &'a Value, pointer: &str) -> Option<&'a Value> {
    pointer
        .split('/')
        .skip(1)
        .try_fold(value, |node, key| node.get(key))
}

pub fn is_user_id(s: &str) -> bool {
    !s.is_empty() && s != "not-used"
}

/// A non-negative integer written as a number or a numeric string.
pub fn as_u64(value: &Value) -> Option<u64> {
    match value {
        Value::Number(n) => n
            .as_u64()
            .or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64)),
        Value::String(s) => s.trim().parse::<u64>().ok(),
        _ => None,
    }
}

/// A boolean written as `true`/`false` or as the strings `"true"`/`"false"`.
pub fn as_bool(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::String(s) => match s.as_str() {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        },
        _ => None,
    }
}
