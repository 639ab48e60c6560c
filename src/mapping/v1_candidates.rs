//! BigBlueButton 1.x: the founding document's fifteen "future candidates", with attribute
//! names in the document's style (hyphenated, `user` for the user concerned or acting). Where a
//! candidate is a client's request, the broadcast that BigBlueButton sent for it maps to the same
//! event (`poll_show_result_message`, `new_permission_settings`).

use serde_json::{Map, Value};

use super::build::{EventBuilder, copy, copy_all};
use super::message::{Message, as_bool};
use super::user::ts;
use super::v1::{ids, meeting, payload_user};
use super::{Cx, Handler, MapError};
use crate::event::Event;

pub const HANDLERS: &[(&str, Handler)] = &[
    ("presenter_assigned_message", presenter_assigned),
    ("user_status_changed_message", status_changed),
    ("get_chat_history_reply", chat_history),
    ("poll_started_message", poll),
    ("show_poll_result_request_message", poll),
    ("poll_show_result_message", poll),
    ("poll_stopped_message", poll),
    ("broadcast_layout_message", layout),
    ("lock_layout_message", layout),
    ("meeting_muted_message", meeting_muted),
    ("user_voice_muted_message", voice_state),
    ("user_voice_talking_message", voice_state),
    ("send_lock_settings", lock_settings),
    ("new_permission_settings", lock_settings),
    ("user_eject_from_meeting", ejected),
    ("user_shared_webcam_message", webcam),
    ("user_unshared_webcam_message", webcam),
];

/// Lock settings, in either naming: (attribute, `send_lock_settings` key, `new_permission_settings` key).
const LOCK_FIELDS: &[(&str, &str, &str)] = &[
    ("disable-cam", "disable_camera", "disableCam"),
    ("disable-mic", "disable_microphone", "disableMic"),
    (
        "disable-private-chat",
        "disable_private_chat",
        "disablePrivateChat",
    ),
    (
        "disable-public-chat",
        "disable_public_chat",
        "disablePublicChat",
    ),
    ("locked-layout", "locked_layout", "lockedLayout"),
    ("lock-on-join", "lock_on_join", "lockOnJoin"),
    (
        "lock-on-join-configurable",
        "lock_on_join_configurable",
        "lockOnJoinConfigurable",
    ),
];

/// A history entry in 1.0 (snake case) or 1.1 (camel case) naming: (attribute, 1.0, 1.1).
const HISTORY_SENDER: &[(&str, &str, &str)] = &[
    ("name", "from_username", "fromUsername"),
    ("timezone-offset", "from_tz_offset", "fromTimezoneOffset"),
    ("time", "from_time", "fromTime"),
];

/// The user a payload names under `field`, as ids.
fn named_user(msg: &Message, cx: &Cx, meeting: &str, field: &str) -> Option<Map<String, Value>> {
    let id = msg.str_field(field).filter(|s| !s.is_empty())?;
    Some(ids(cx, meeting, id, None))
}

fn presenter_assigned(msg: &Message, cx: &mut Cx) -> Result<Vec<Event>, MapError> {
    let meeting = meeting(msg)?;
    let presenter = msg.require_str("new_presenter_id")?;
    let mut user = ids(cx, meeting, presenter, None);
    copy(&mut user, "name", msg.body(), "new_presenter_name");
    let by = named_user(msg, cx, meeting, "assigned_by");
    cx.state.set_exclusive_flag(meeting, presenter, "presenter");
    let event = EventBuilder::for_message("presenter-changed", msg, cx, ts(msg, cx))
        .attr("user", user)
        .attr_opt("assigned-by", by)
        .with_input(cx);
    Ok(vec![event])
}

fn status_changed(msg: &Message, cx: &mut Cx) -> Result<Vec<Event>, MapError> {
    let meeting = meeting(msg)?;
    let user_id = msg.require_str("userid")?;
    let status = msg.require_str("status")?;
    let value = msg.field("value").cloned();
    if status == "presenter" && value.as_ref().and_then(as_bool) == Some(true) {
        cx.state.set_exclusive_flag(meeting, user_id, "presenter");
    }
    let event = EventBuilder::for_message("user-status-changed", msg, cx, ts(msg, cx))
        .attr("user", ids(cx, meeting, user_id, None))
        .attr("status", status)
        .attr_opt("value", value)
        .with_input(cx);
    Ok(vec![event])
}

/// The reply to a client asking for the chat history: every entry as a `chat-message`.
fn chat_history(msg: &Message, cx: &mut Cx) -> Result<Vec<Event>, MapError> {
    let meeting = meeting(msg)?;
    let history = msg
        .field("chat_history")
        .and_then(Value::as_array)
        .ok_or(MapError::MissingField("payload.chat_history"))?;
    let messages: Vec<Value> = history
        .iter()
        .map(|entry| history_entry(cx, meeting, entry).into())
        .collect();
    let event = EventBuilder::for_message("chat-messages", msg, cx, ts(msg, cx))
        .attr_opt("user", named_user(msg, cx, meeting, "requester_id"))
        .attr("chat-messages", messages)
        .with_input(cx);
    Ok(vec![event])
}

fn history_entry(cx: &Cx, meeting: &str, entry: &Value) -> Map<String, Value> {
    let either = |a: &str, b: &str| {
        entry
            .get(a)
            .or_else(|| entry.get(b))
            .filter(|v| !v.is_null())
    };
    let mut out = Map::new();
    if let Some(kind) = either("chat_type", "chatType") {
        out.insert("chat-type".into(), kind.clone());
    }
    copy(&mut out, "message", entry, "message");
    let mut sender = either("from_userid", "fromUserID")
        .and_then(Value::as_str)
        .map(|id| super::build::user_ids(cx, Some(meeting), id, None))
        .unwrap_or_default();
    for (attr, old, new) in HISTORY_SENDER {
        if let Some(v) = either(old, new) {
            sender.insert((*attr).into(), v.clone());
        }
    }
    out.insert("sender".into(), sender.into());
    let private = either("chat_type", "chatType").and_then(Value::as_str) == Some("PRIVATE_CHAT");
    if private && let Some(to) = either("to_userid", "toUserID").and_then(Value::as_str) {
        out.insert(
            "receiver".into(),
            super::build::user_ids(cx, Some(meeting), to, None).into(),
        );
    }
    out
}

fn poll(msg: &Message, cx: &mut Cx) -> Result<Vec<Event>, MapError> {
    let meeting = meeting(msg)?;
    let id = match msg.name {
        "poll_started_message" => "poll-started",
        "poll_stopped_message" => "poll-stopped",
        _ => "poll-ended",
    };
    let mut poll = Map::new();
    let body = msg.body();
    if let Some(p) = body.get("poll").filter(|p| p.is_object()) {
        copy_all(
            &mut poll,
            p,
            &[
                ("id", "id"),
                ("answers", "answers"),
                ("num-respondents", "num_respondents"),
                ("num-responders", "num_responders"),
            ],
        );
    }
    if !poll.contains_key("id") {
        copy(&mut poll, "id", body, "poll_id");
    }
    let event = EventBuilder::for_message(id, msg, cx, ts(msg, cx))
        .attr_opt("user", named_user(msg, cx, meeting, "requester_id"))
        .attr("poll", poll)
        .with_input(cx);
    Ok(vec![event])
}

fn layout(msg: &Message, cx: &mut Cx) -> Result<Vec<Event>, MapError> {
    let meeting = meeting(msg)?;
    let id = if msg.name == "lock_layout_message" {
        "layout-locked"
    } else {
        "layout-changed"
    };
    let mut layout = Map::new();
    copy_all(
        &mut layout,
        msg.body(),
        &[
            ("name", "layout"),
            ("locked", "locked"),
            ("apply-to", "users"),
        ],
    );
    let event = EventBuilder::for_message(id, msg, cx, ts(msg, cx))
        .attr_opt("user", named_user(msg, cx, meeting, "set_by_userid"))
        .attr("layout", layout)
        .with_input(cx);
    Ok(vec![event])
}

fn meeting_muted(msg: &Message, cx: &mut Cx) -> Result<Vec<Event>, MapError> {
    meeting(msg)?;
    let event = EventBuilder::for_message("audio-all-muted", msg, cx, ts(msg, cx))
        .attr_opt("muted", msg.field("meetingMuted").cloned())
        .with_input(cx);
    Ok(vec![event])
}

/// `user-audio-muted` and `user-audio-talking`: the user's voice state from `user.voiceUser`.
fn voice_state(msg: &Message, cx: &mut Cx) -> Result<Vec<Event>, MapError> {
    let meeting = meeting(msg)?;
    let (id, key) = if msg.name == "user_voice_muted_message" {
        ("user-audio-muted", "muted")
    } else {
        ("user-audio-talking", "talking")
    };
    let u = payload_user(msg)?;
    let user_id = u
        .get("userid")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or(MapError::MissingField("payload.user.userid"))?;
    let mut user = ids(
        cx,
        meeting,
        user_id,
        u.get("extern_userid").and_then(Value::as_str),
    );
    if let Some(v) = u
        .get("voiceUser")
        .and_then(|v| v.get(key))
        .filter(|v| !v.is_null())
    {
        user.insert(key.into(), v.clone());
    }
    let event = EventBuilder::for_message(id, msg, cx, ts(msg, cx))
        .attr("user", user)
        .with_input(cx);
    Ok(vec![event])
}

fn lock_settings(msg: &Message, cx: &mut Cx) -> Result<Vec<Event>, MapError> {
    let meeting = meeting(msg)?;
    let request = msg.name == "send_lock_settings";
    let container = if request { "settings" } else { "permissions" };
    let mut settings = Map::new();
    if let Some(source) = msg.field(container) {
        for (attr, request_key, broadcast_key) in LOCK_FIELDS {
            let key = if request { request_key } else { broadcast_key };
            copy(&mut settings, attr, source, key);
        }
    }
    let event = EventBuilder::for_message("lock-settings-changed", msg, cx, ts(msg, cx))
        .attr_opt("user", named_user(msg, cx, meeting, "userid"))
        .attr("lock-settings", settings)
        .with_input(cx);
    Ok(vec![event])
}

fn ejected(msg: &Message, cx: &mut Cx) -> Result<Vec<Event>, MapError> {
    let meeting = meeting(msg)?;
    let user_id = msg.require_str("userid")?;
    let event = EventBuilder::for_message("user-kicked", msg, cx, ts(msg, cx))
        .attr("user", ids(cx, meeting, user_id, None))
        .attr_opt("ejected-by", named_user(msg, cx, meeting, "ejected_by"))
        .with_input(cx);
    Ok(vec![event])
}

fn webcam(msg: &Message, cx: &mut Cx) -> Result<Vec<Event>, MapError> {
    let meeting = meeting(msg)?;
    let shared = msg.name == "user_shared_webcam_message";
    let user_id = msg.require_str("userid")?;
    let mut user = ids(cx, meeting, user_id, None);
    copy(&mut user, "stream", msg.body(), "stream");
    cx.state
        .set_user_field(meeting, user_id, "sharing-video", shared.into());
    let id = if shared {
        "user-cam-enabled"
    } else {
        "user-cam-disabled"
    };
    let event = EventBuilder::for_message(id, msg, cx, ts(msg, cx))
        .attr("user", user)
        .with_input(cx);
    Ok(vec![event])
}
