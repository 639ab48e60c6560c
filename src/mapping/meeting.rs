//! Meeting events of BigBlueButton 2.x–3.x: creation and end, recording, presentation, screen
//! sharing, layout and lock settings. Also the end of a meeting for every generation: the
//! spoofed `user-left` of each user still present, then `meeting-ended`.

use serde_json::{Map, Value};

use super::build::{EventBuilder, copy_all, user_ids};
use super::message::{Message, as_bool, is_user_id, path};
use super::user::ts;
use super::{Cx, Handler, MapError};
use crate::event::{Event, Raw};
use crate::state::{Flavor, User};

pub const HANDLERS: &[(&str, Handler)] = &[
    ("MeetingCreatedEvtMsg", created),
    ("MeetingDestroyedEvtMsg", destroyed),
    ("RecordingStatusChangedEvtMsg", recording),
    ("SetCurrentPresentationEvtMsg", presentation),
    ("ScreenshareRtmpBroadcastStartedEvtMsg", screenshare),
    ("ScreenshareRtmpBroadcastStoppedEvtMsg", screenshare),
    ("BroadcastLayoutEvtMsg", layout),
    ("LockSettingsInMeetingChangedEvtMsg", lock_settings),
];

/// `meeting-created`'s meeting object: (attribute, pointer under `core.body.props`), in order.
const CREATED_FIELDS: &[(&str, &str)] = &[
    ("internal-meeting-id", "/meetingProp/intId"),
    ("external-meeting-id", "/meetingProp/extId"),
    ("name", "/meetingProp/name"),
    ("is-breakout", "/meetingProp/isBreakout"),
    ("parent-id", "/breakoutProps/parentId"),
    ("duration", "/durationProps/duration"),
    ("create-time", "/durationProps/createdTime"),
    ("create-date", "/durationProps/createdDate"),
    ("moderator-pass", "/password/moderatorPass"),
    ("viewer-pass", "/password/viewerPass"),
    ("record", "/recordProp/record"),
    ("voice-conf", "/voiceProp/voiceConf"),
    ("dial-number", "/voiceProp/dialNumber"),
    ("max-users", "/usersProp/maxUsers"),
    ("metadata", "/metadataProp/metadata"),
    ("audioBridge", "/meetingProp/audioBridge"),
    ("cameraBridge", "/meetingProp/cameraBridge"),
    ("screenShareBridge", "/meetingProp/screenShareBridge"),
];

/// `layout-changed`'s layout object: (attribute, body field). 2.2 has `locked`/`applyTo`,
/// 2.4+ the rest.
const LAYOUT_FIELDS: &[(&str, &str)] = &[
    ("name", "layout"),
    ("locked", "locked"),
    ("push-layout", "pushLayout"),
    ("presentation-is-open", "presentationIsOpen"),
    ("is-resizing", "isResizing"),
    ("camera-position", "cameraPosition"),
    ("focused-camera", "focusedCamera"),
    ("presentation-video-rate", "presentationVideoRate"),
    ("apply-to", "applyTo"),
];

/// `lock-settings-changed`'s settings: (attribute, body field), every name any version used.
const LOCK_FIELDS: &[(&str, &str)] = &[
    ("disable-cam", "disableCam"),
    ("disable-mic", "disableMic"),
    ("disable-private-chat", "disablePrivChat"),
    ("disable-public-chat", "disablePubChat"),
    ("disable-notes", "disableNote"),
    ("disable-notes", "disableNotes"),
    ("hide-user-list", "hideUserList"),
    ("locked-layout", "lockedLayout"),
    ("lock-on-join", "lockOnJoin"),
    ("lock-on-join-configurable", "lockOnJoinConfigurable"),
    ("hide-viewers-cursor", "hideViewersCursor"),
    ("hide-viewers-annotation", "hideViewersAnnotation"),
];

fn created(msg: &Message, cx: &mut Cx) -> Result<Vec<Event>, MapError> {
    let props = msg
        .field("props")
        .ok_or(MapError::MissingField("core.body.props"))?;
    let mut meeting = Map::new();
    for (attr, pointer) in CREATED_FIELDS {
        if let Some(v) = path(props, pointer).filter(|v| !v.is_null()) {
            meeting.insert((*attr).into(), v.clone());
        }
    }
    let internal = meeting
        .get("internal-meeting-id")
        .and_then(Value::as_str)
        .ok_or(MapError::MissingField("core.body.props.meetingProp.intId"))?
        .to_string();
    let external = meeting
        .get("external-meeting-id")
        .and_then(Value::as_str)
        .map(String::from);
    let metadata = meeting.get("metadata").and_then(Value::as_object).cloned();
    cx.state
        .meeting_created(&internal, external.as_deref(), metadata, cx.received_at);
    let event = EventBuilder::new(
        "meeting-created",
        ts(msg, cx),
        Some(&internal),
        external.as_deref(),
    )
    .meeting_object(meeting)
    .with_input(cx);
    Ok(vec![event])
}

fn destroyed(msg: &Message, cx: &mut Cx) -> Result<Vec<Event>, MapError> {
    let meeting = msg
        .meeting_id()
        .ok_or(MapError::MissingField("core.body.meetingId"))?;
    Ok(end_meeting(cx, meeting, ts(msg, cx)))
}

/// Ends a meeting: a spoofed `user-left` for every user still present (join order, the same
/// shape as a real one of their generation), then `meeting-ended`; the mappings are forgotten.
pub(super) fn end_meeting(cx: &mut Cx, internal: &str, ts: u64) -> Vec<Event> {
    let external = cx.state.external_meeting_id(internal).map(String::from);
    let ended = cx.state.meeting_ended(internal);
    let mut events: Vec<Event> = ended
        .iter()
        .flat_map(|m| m.users.iter())
        .map(|(user_id, user)| {
            EventBuilder::new("user-left", ts, Some(internal), external.as_deref())
                .attr("user", spoofed_user(user_id, user))
                .build(Raw::SameAsEvent)
        })
        .collect();
    events.push(
        EventBuilder::new("meeting-ended", ts, Some(internal), external.as_deref()).with_input(cx),
    );
    events
}

/// The user object of a spoofed `user-left`.
fn spoofed_user(user_id: &str, user: &User) -> Map<String, Value> {
    let mut out = Map::new();
    let ids = |out: &mut Map<String, Value>| {
        out.insert("internal-user-id".into(), user_id.into());
        out.insert("external-user-id".into(), user.external_id.clone().into());
    };
    match user.flavor {
        Flavor::V2 => {
            ids(&mut out);
            out.insert("guest".into(), user.flag("guest").into());
        }
        Flavor::V1 => {
            for key in ["name", "role", "presenter"] {
                if let Some(v) = user.record.get(key) {
                    out.insert(key.into(), v.clone());
                }
            }
            ids(&mut out);
            for key in ["sharing-mic", "sharing-video", "listening-only"] {
                if let Some(v) = user.record.get(key) {
                    out.insert(key.into(), v.clone());
                }
            }
        }
    }
    out
}

/// The acting user of a meeting-wide change (`setBy`, …), when the message names one.
fn actor(msg: &Message, cx: &Cx, field: &str) -> Option<Map<String, Value>> {
    let id = msg.str_field(field).filter(|s| is_user_id(s))?;
    Some(user_ids(cx, msg.meeting_id(), id, Some("")))
}

fn recording(msg: &Message, cx: &mut Cx) -> Result<Vec<Event>, MapError> {
    let id = match msg.field("recording").and_then(as_bool) {
        Some(true) => "meeting-recording-started",
        Some(false) => "meeting-recording-stopped",
        None => "meeting-recording-unhandled",
    };
    let event = EventBuilder::for_message(id, msg, cx, ts(msg, cx))
        .attr_opt("user", actor(msg, cx, "setBy"))
        .with_input(cx);
    Ok(vec![event])
}

fn presentation(msg: &Message, cx: &mut Cx) -> Result<Vec<Event>, MapError> {
    let mut builder =
        EventBuilder::for_message("meeting-presentation-changed", msg, cx, ts(msg, cx));
    if let Some(p) = msg.field("presentationId") {
        builder = builder.meeting_attr("presentation-id", p.clone());
    }
    Ok(vec![builder.with_input(cx)])
}

/// Screen sharing. Before BigBlueButton 3.0.11 the message names no user (`not-used`): the sharer
/// is then the presenter when it starts, and whoever was sharing when it stops.
fn screenshare(msg: &Message, cx: &mut Cx) -> Result<Vec<Event>, MapError> {
    let started = msg.name == "ScreenshareRtmpBroadcastStartedEvtMsg";
    let meeting = msg
        .meeting_id()
        .ok_or(MapError::MissingField("core.header.meetingId"))?;
    let fallback_flag = if started { "presenter" } else { "screenshare" };
    let user_id = msg
        .str_field("userId")
        .filter(|s| is_user_id(s))
        .or_else(|| msg.user_id())
        .map(String::from)
        .or_else(|| {
            cx.state
                .user_with_flag(meeting, fallback_flag)
                .map(|(id, _)| id.to_string())
        });
    let user = user_id
        .as_deref()
        .map(|u| user_ids(cx, Some(meeting), u, None));
    if let Some(u) = &user_id {
        if started {
            cx.state.set_exclusive_flag(meeting, u, "screenshare");
        } else {
            cx.state
                .set_user_field(meeting, u, "screenshare", Value::Bool(false));
        }
    }
    let id = if started {
        "meeting-screenshare-started"
    } else {
        "meeting-screenshare-stopped"
    };
    let event = EventBuilder::for_message(id, msg, cx, ts(msg, cx))
        .attr_opt("user", user)
        .with_input(cx);
    Ok(vec![event])
}

fn layout(msg: &Message, cx: &mut Cx) -> Result<Vec<Event>, MapError> {
    let mut layout = Map::new();
    copy_all(&mut layout, msg.body(), LAYOUT_FIELDS);
    let event = EventBuilder::for_message("layout-changed", msg, cx, ts(msg, cx))
        .attr_opt("user", actor(msg, cx, "setByUserId"))
        .attr("layout", layout)
        .with_input(cx);
    Ok(vec![event])
}

fn lock_settings(msg: &Message, cx: &mut Cx) -> Result<Vec<Event>, MapError> {
    let mut settings = Map::new();
    copy_all(&mut settings, msg.body(), LOCK_FIELDS);
    let event = EventBuilder::for_message("lock-settings-changed", msg, cx, ts(msg, cx))
        .attr_opt("user", actor(msg, cx, "setBy"))
        .attr("lock-settings", settings)
        .with_input(cx);
    Ok(vec![event])
}
