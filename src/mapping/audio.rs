//! Audio events of BigBlueButton 2.x–3.x: joining and leaving the voice conference, muting,
//! talking, and muting the whole meeting.

use serde_json::Value;

use super::build::{EventBuilder, user_ids};
use super::message::{Message, as_bool, is_user_id};
use super::user::{common_user, meeting_and_user, ts};
use super::{Cx, Handler, MapError};
use crate::event::Event;

pub const HANDLERS: &[(&str, Handler)] = &[
    ("UserJoinedVoiceConfToClientEvtMsg", voice_joined),
    ("UserLeftVoiceConfToClientEvtMsg", voice_left),
    ("UserMutedVoiceEvtMsg", muted),
    ("UserTalkingVoiceEvtMsg", talking),
    ("MeetingMutedEvtMsg", meeting_muted),
];

fn voice_joined(msg: &Message, cx: &mut Cx) -> Result<Vec<Event>, MapError> {
    let (meeting, user_id) = meeting_and_user(msg)?;
    let mut user = common_user(msg, cx, meeting, user_id);
    if let Some(listen_only) = msg.field("listenOnly").and_then(as_bool) {
        user.insert("listening-only".into(), listen_only.into());
        user.insert("sharing-mic".into(), (!listen_only).into());
    }
    if let Some(m) = msg.field("muted") {
        user.insert("muted".into(), m.clone());
    }
    let event = EventBuilder::for_message("user-audio-voice-enabled", msg, cx, ts(msg, cx))
        .attr("user", user)
        .with_input(cx);
    Ok(vec![event])
}

/// Leaving the voice conference: not listening, no microphone, muted (what the reference says).
fn voice_left(msg: &Message, cx: &mut Cx) -> Result<Vec<Event>, MapError> {
    let (meeting, user_id) = meeting_and_user(msg)?;
    let mut user = common_user(msg, cx, meeting, user_id);
    user.insert("listening-only".into(), false.into());
    user.insert("sharing-mic".into(), false.into());
    user.insert("muted".into(), true.into());
    let event = EventBuilder::for_message("user-audio-voice-disabled", msg, cx, ts(msg, cx))
        .attr("user", user)
        .with_input(cx);
    Ok(vec![event])
}

fn muted(msg: &Message, cx: &mut Cx) -> Result<Vec<Event>, MapError> {
    let (meeting, user_id) = meeting_and_user(msg)?;
    let mut user = common_user(msg, cx, meeting, user_id);
    let id = match msg.field("muted") {
        Some(Value::Bool(true)) => "user-audio-muted",
        Some(Value::Bool(false)) => "user-audio-unmuted",
        _ => "user-audio-unhandled",
    };
    if id != "user-audio-unhandled"
        && let Some(m) = msg.field("muted")
    {
        user.insert("muted".into(), m.clone());
    }
    let event = EventBuilder::for_message(id, msg, cx, ts(msg, cx))
        .attr("user", user)
        .with_input(cx);
    Ok(vec![event])
}

fn talking(msg: &Message, cx: &mut Cx) -> Result<Vec<Event>, MapError> {
    let (meeting, user_id) = meeting_and_user(msg)?;
    let mut user = common_user(msg, cx, meeting, user_id);
    if let Some(t) = msg.field("talking") {
        user.insert("talking".into(), t.clone());
    }
    let event = EventBuilder::for_message("user-audio-talking", msg, cx, ts(msg, cx))
        .attr("user", user)
        .with_input(cx);
    Ok(vec![event])
}

/// Everyone muted (or unmuted) at once; `user` is who did it.
fn meeting_muted(msg: &Message, cx: &mut Cx) -> Result<Vec<Event>, MapError> {
    let meeting = msg.meeting_id();
    let by = msg
        .str_field("mutedBy")
        .filter(|s| is_user_id(s))
        .map(|u| user_ids(cx, meeting, u, Some("")));
    let event = EventBuilder::for_message("audio-all-muted", msg, cx, ts(msg, cx))
        .attr_opt("muted", msg.field("muted").cloned())
        .attr_opt("user", by)
        .with_input(cx);
    Ok(vec![event])
}
