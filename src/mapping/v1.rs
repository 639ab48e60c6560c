//! BigBlueButton 1.x: the ten events of the founding document (`api-webhooks.md`), with its
//! attribute names. Values come from the message; external ids from the message, else from the
//! mappings.

use std::borrow::Cow;

use serde_json::{Map, Value};

use super::build::{EventBuilder, copy, copy_all, user_ids};
use super::meeting::end_meeting;
use super::message::{Message, as_bool};
use super::user::ts;
use super::{Cx, Handler, MapError};
use crate::event::Event;
use crate::state::Flavor;

pub const HANDLERS: &[(&str, Handler)] = &[
    ("meeting_created_message", meeting_created),
    ("meeting_destroyed_event", meeting_destroyed),
    ("user_joined_message", user_joined),
    ("user_left_message", user_left),
    ("user_listening_only", listening_only),
    ("user_joined_voice_message", voice),
    ("user_left_voice_message", voice),
    ("send_public_chat_message", chat),
    ("send_private_chat_message", chat),
];

/// `meeting-created`'s meeting object: (attribute, payload field), in the document's order.
const MEETING_FIELDS: &[(&str, &str)] = &[
    ("name", "name"),
    ("external-meeting-id", "external_meeting_id"),
    ("internal-meeting-id", "meeting_id"),
    ("is-breakout", "is_breakout"),
    ("duration", "duration"),
    ("create-time", "create_time"),
    ("create-date", "create_date"),
    ("moderator-pass", "moderator_pass"),
    ("viewer-pass", "viewer_pass"),
    ("recorded", "recorded"),
];

pub(super) fn meeting<'a>(msg: &Message<'a>) -> Result<&'a str, MapError> {
    msg.meeting_id()
        .ok_or(MapError::MissingField("payload.meeting_id"))
}

/// User ids for a 1.x message: the external id from the message when it has one, else the
/// mappings, else `""`.
pub(super) fn ids(
    cx: &Cx,
    meeting: &str,
    user_id: &str,
    external: Option<&str>,
) -> Map<String, Value> {
    match external.filter(|e| !e.is_empty()) {
        Some(ext) => {
            let mut user = Map::new();
            user.insert("internal-user-id".into(), user_id.into());
            user.insert("external-user-id".into(), ext.into());
            user
        }
        None => user_ids(cx, Some(meeting), user_id, Some("")),
    }
}

/// The document's user object, from a 1.x `payload.user`.
fn user_object(
    cx: &Cx,
    meeting: &str,
    u: &Value,
) -> Result<(String, Map<String, Value>), MapError> {
    let user_id = u
        .get("userid")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or(MapError::MissingField("payload.user.userid"))?;
    let mut user = Map::new();
    copy_all(
        &mut user,
        u,
        &[
            ("name", "name"),
            ("role", "role"),
            ("presenter", "presenter"),
        ],
    );
    user.extend(ids(
        cx,
        meeting,
        user_id,
        u.get("extern_userid").and_then(Value::as_str),
    ));
    if let Some(voice) = u.get("voiceUser").filter(|v| v.is_object()) {
        let joined = voice.get("joined").and_then(as_bool).unwrap_or(false);
        user.insert("sharing-mic".into(), joined.into());
    }
    copy(&mut user, "sharing-video", u, "has_stream");
    copy(&mut user, "listening-only", u, "listenOnly");
    Ok((user_id.to_string(), user))
}

/// `payload.user` as an object. Publishers differ here (old releases and hand-written
/// integrations): a `user` that is a plain string is the user's id, and a `user` that is missing
/// or not an object gives way to `payload.userid`. Only a message that names no user at all is
/// refused.
pub(super) fn payload_user<'a>(msg: &Message<'a>) -> Result<Cow<'a, Value>, MapError> {
    let named = |id: &str| Cow::Owned(serde_json::json!({ "userid": id }));
    match msg.field("user") {
        Some(u @ Value::Object(_)) => Ok(Cow::Borrowed(u)),
        Some(Value::String(id)) if !id.is_empty() => Ok(named(id)),
        _ => msg
            .str_field("userid")
            .filter(|s| !s.is_empty())
            .map(named)
            .ok_or(MapError::MissingField("payload.user")),
    }
}

fn meeting_created(msg: &Message, cx: &mut Cx) -> Result<Vec<Event>, MapError> {
    let internal = meeting(msg)?;
    let mut m = Map::new();
    copy_all(&mut m, msg.body(), MEETING_FIELDS);
    if let Some(record) = msg.field("record").or_else(|| msg.field("recorded")) {
        m.insert("record".into(), record.clone());
    }
    if let Some(conf) = msg.field("voice_conf") {
        // A conference number is a number when it is all digits.
        let number = conf
            .as_str()
            .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|s| s.parse::<u64>().ok());
        m.insert(
            "voice-conf".into(),
            number.map(Value::from).unwrap_or_else(|| conf.clone()),
        );
    }
    copy_all(
        &mut m,
        msg.body(),
        &[("dial-number", "dial_number"), ("max-users", "max_users")],
    );
    let metadata = msg
        .field("metadata")
        .cloned()
        .unwrap_or_else(|| Value::Object(Map::new()));
    let stored = metadata.as_object().cloned();
    m.insert("metadata".into(), metadata);
    let external = msg.str_field("external_meeting_id");
    cx.state
        .meeting_created(internal, external, stored, cx.received_at);
    let event = EventBuilder::new("meeting-created", ts(msg, cx), Some(internal), external)
        .meeting_object(m)
        .with_input(cx);
    Ok(vec![event])
}

fn meeting_destroyed(msg: &Message, cx: &mut Cx) -> Result<Vec<Event>, MapError> {
    let internal = meeting(msg)?;
    Ok(end_meeting(cx, internal, ts(msg, cx)))
}

fn user_joined(msg: &Message, cx: &mut Cx) -> Result<Vec<Event>, MapError> {
    let meeting = meeting(msg)?;
    let (user_id, user) = user_object(cx, meeting, &*payload_user(msg)?)?;
    let external = user
        .get("external-user-id")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let event = EventBuilder::for_message("user-joined", msg, cx, ts(msg, cx))
        .attr("user", &user)
        .with_input(cx);
    cx.state.user_joined(
        meeting,
        &user_id,
        &external,
        Flavor::V1,
        user,
        cx.received_at,
    );
    Ok(vec![event])
}

fn user_left(msg: &Message, cx: &mut Cx) -> Result<Vec<Event>, MapError> {
    let meeting = meeting(msg)?;
    let (user_id, user) = user_object(cx, meeting, &*payload_user(msg)?)?;
    let event = EventBuilder::for_message("user-left", msg, cx, ts(msg, cx))
        .attr("user", user)
        .with_input(cx);
    cx.state.user_left(meeting, &user_id);
    Ok(vec![event])
}

fn listening_only(msg: &Message, cx: &mut Cx) -> Result<Vec<Event>, MapError> {
    let meeting = meeting(msg)?;
    let user_id = msg.require_str("userid")?;
    let on = msg
        .field("listen_only")
        .and_then(as_bool)
        .ok_or(MapError::MissingField("payload.listen_only"))?;
    cx.state
        .set_user_field(meeting, user_id, "listening-only", on.into());
    let id = if on {
        "user-audio-listen-only-enabled"
    } else {
        "user-audio-listen-only-disabled"
    };
    let event = EventBuilder::for_message(id, msg, cx, ts(msg, cx))
        .attr("user", ids(cx, meeting, user_id, None))
        .with_input(cx);
    Ok(vec![event])
}

fn voice(msg: &Message, cx: &mut Cx) -> Result<Vec<Event>, MapError> {
    let joined = msg.name == "user_joined_voice_message";
    let meeting = meeting(msg)?;
    let u = payload_user(msg)?;
    let user_id = u
        .get("userid")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or(MapError::MissingField("payload.user.userid"))?;
    let user = ids(
        cx,
        meeting,
        user_id,
        u.get("extern_userid").and_then(Value::as_str),
    );
    cx.state
        .set_user_field(meeting, user_id, "sharing-mic", joined.into());
    let id = if joined {
        "user-audio-voice-enabled"
    } else {
        "user-audio-voice-disabled"
    };
    let event = EventBuilder::for_message(id, msg, cx, ts(msg, cx))
        .attr("user", user)
        .with_input(cx);
    Ok(vec![event])
}

/// Public and private chat; the sender's external id comes from the mappings (omitted when
/// unknown), a private message adds its receiver.
fn chat(msg: &Message, cx: &mut Cx) -> Result<Vec<Event>, MapError> {
    let private = msg.name == "send_private_chat_message";
    let meeting = meeting(msg)?;
    let m = msg
        .field("message")
        .ok_or(MapError::MissingField("payload.message"))?;
    let mut chat = Map::new();
    copy(&mut chat, "message", m, "message");
    chat.insert(
        "sender".into(),
        chat_party(cx, meeting, m, "fromUserID", true).into(),
    );
    if private {
        chat.insert(
            "receiver".into(),
            chat_party(cx, meeting, m, "toUserID", false).into(),
        );
    }
    let id = if private {
        "chat-private-message-sent"
    } else {
        "chat-public-message-sent"
    };
    let event = EventBuilder::for_message(id, msg, cx, ts(msg, cx))
        .attr("chat-message", chat)
        .with_input(cx);
    Ok(vec![event])
}

fn chat_party(
    cx: &Cx,
    meeting: &str,
    m: &Value,
    id_field: &str,
    sender: bool,
) -> Map<String, Value> {
    let mut party = m
        .get(id_field)
        .and_then(Value::as_str)
        .map(|id| user_ids(cx, Some(meeting), id, None))
        .unwrap_or_default();
    if sender {
        copy_all(
            &mut party,
            m,
            &[
                ("timezone-offset", "fromTimezoneOffset"),
                ("time", "fromTime"),
            ],
        );
    }
    party
}
