//! Breakout rooms of BigBlueButton 2.x–3.x, as events of the parent meeting: a room started, a
//! room ended. The rooms' own meetings have their own `meeting-created` and `meeting-ended`;
//! this module does not touch their mappings.
//!
//! Only named fields are copied out of a room's description: never `html5JoinUrls` or any join
//! URL, which carry a checksum that lets anyone holding it join the room. For the same reason raw
//! hooks receive the event itself here, not the message.

use serde_json::{Map, Value};

use super::build::{EventBuilder, copy_all};
use super::message::Message;
use super::user::ts;
use super::{Cx, Handler, MapError};
use crate::event::{Event, Raw};

pub const HANDLERS: &[(&str, Handler)] = &[
    ("BreakoutRoomStartedEvtMsg", started),
    ("BreakoutRoomEndedEvtMsg", ended),
];

/// `breakout`: (attribute, field of `core.body.breakout`), in output order.
const ROOM_FIELDS: &[(&str, &str)] = &[
    ("internal-meeting-id", "breakoutId"),
    ("external-meeting-id", "externalId"),
    ("name", "name"),
    ("short-name", "shortName"),
    ("sequence", "sequence"),
    ("free-join", "freeJoin"),
];

/// The parent meeting: where the message is routed, else the body's own field.
fn parent<'a>(msg: &Message<'a>, body_field: &str) -> Result<&'a str, MapError> {
    msg.meeting_id()
        .or_else(|| msg.str_field(body_field).filter(|s| !s.is_empty()))
        .ok_or(MapError::MissingField("core.header.meetingId"))
}

fn event(
    id: &'static str,
    msg: &Message,
    cx: &Cx,
    parent: &str,
    room: Map<String, Value>,
) -> Event {
    let external = cx.state.external_meeting_id(parent);
    EventBuilder::new(id, ts(msg, cx), Some(parent), external)
        .attr("breakout", room)
        .build(Raw::SameAsEvent)
}

/// `meeting-breakout-started`: the room's ids, name and sequence number; remembered so that its
/// end can say them too.
fn started(msg: &Message, cx: &mut Cx) -> Result<Vec<Event>, MapError> {
    let parent = parent(msg, "parentMeetingId")?;
    let mut room = Map::new();
    if let Some(b) = msg.field("breakout") {
        copy_all(&mut room, b, ROOM_FIELDS);
    }
    if let Some(id) = room.get("internal-meeting-id").and_then(Value::as_str) {
        let id = id.to_string();
        cx.state
            .breakout_started(parent, &id, room.clone(), cx.received_at);
    }
    Ok(vec![event(
        "meeting-breakout-started",
        msg,
        cx,
        parent,
        room,
    )])
}

/// `meeting-breakout-ended`: the message names the room only by `breakoutId`; the rest is what
/// its start said (in memory), else the room meeting's external id from its mapping.
fn ended(msg: &Message, cx: &mut Cx) -> Result<Vec<Event>, MapError> {
    let parent = parent(msg, "parentId")?;
    let room = match msg.str_field("breakoutId").filter(|s| !s.is_empty()) {
        Some(id) => cx.state.breakout_ended(parent, id).unwrap_or_else(|| {
            let mut room = Map::new();
            room.insert("internal-meeting-id".into(), id.into());
            if let Some(ext) = cx.state.external_meeting_id(id) {
                room.insert("external-meeting-id".into(), ext.into());
            }
            room
        }),
        None => Map::new(),
    };
    Ok(vec![event("meeting-breakout-ended", msg, cx, parent, room)])
}
