//! User events of BigBlueButton 2.x–3.x: joins, leaves, presenter, emoji and raised hands,
//! cameras, ejections, role and away changes. Guests waiting for approval are in
//! [`super::guest`].

use serde_json::{Map, Value};

use super::build::{EventBuilder, copy, copy_all, person, user_ids};
use super::message::{Message, as_bool, is_user_id};
use super::{Cx, Handler, MapError};
use crate::event::{Event, Raw};
use crate::state::Flavor;

pub const HANDLERS: &[(&str, Handler)] = &[
    ("UserJoinedMeetingEvtMsg", joined),
    ("UserLeftMeetingEvtMsg", left),
    ("PresenterAssignedEvtMsg", presenter),
    ("PresenterUnassignedEvtMsg", presenter),
    ("UserEmojiChangedEvtMsg", emoji),
    ("UserReactionEmojiChangedEvtMsg", emoji),
    ("UserRaiseHandChangedEvtMsg", plain),
    ("UserBroadcastCamStartedEvtMsg", plain),
    ("UserBroadcastCamStoppedEvtMsg", plain),
    ("UserEjectedFromMeetingEvtMsg", ejected),
    ("UserRoleChangedEvtMsg", role_changed),
    ("UserAwayChangedEvtMsg", away_changed),
];

/// (message, event, (attribute, body field) pairs).
type PlainEvent = (
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
);

/// Messages whose event is the common user object plus body fields.
const PLAIN: &[PlainEvent] = &[
    (
        "UserRaiseHandChangedEvtMsg",
        "user-raise-hand-changed",
        &[("raise-hand", "raiseHand")],
    ),
    (
        "UserBroadcastCamStartedEvtMsg",
        "user-cam-broadcast-start",
        &[],
    ),
    (
        "UserBroadcastCamStoppedEvtMsg",
        "user-cam-broadcast-end",
        &[],
    ),
];

/// Body fields of the common user object: (attribute, body field), in output order.
const USER_FIELDS: &[(&str, &str)] = &[
    ("name", "name"),
    ("role", "role"),
    ("presenter", "presenter"),
    ("ip-address", "ipAddress"),
    ("user-agent", "userAgent"),
    ("referer", "referer"),
    ("session-token", "sessionToken"),
];

/// The meeting and user a 2.x user message is about; both are required.
pub(super) fn meeting_and_user<'a>(msg: &Message<'a>) -> Result<(&'a str, &'a str), MapError> {
    let meeting = msg
        .meeting_id()
        .ok_or(MapError::MissingField("core.header.meetingId"))?;
    let user = msg
        .user_id()
        .or_else(|| msg.str_field("intId").filter(|s| is_user_id(s)))
        .ok_or(MapError::MissingField("core.header.userId"))?;
    Ok((meeting, user))
}

/// The user object shared by every user event: ids (external from the state, else the body's
/// `extId`, else `""`), then whatever of name, role, presenter, … the body carries.
pub(super) fn common_user(
    msg: &Message,
    cx: &Cx,
    meeting: &str,
    user_id: &str,
) -> Map<String, Value> {
    let body = msg.body();
    let ext = msg.str_field("extId").unwrap_or("");
    let mut user = user_ids(cx, Some(meeting), user_id, Some(ext));
    copy_all(&mut user, body, USER_FIELDS);
    let userdata = ["userdata", "userMetadata", "userCustomData"]
        .iter()
        .find_map(|k| msg.field(k));
    if let Some(data) = userdata {
        user.insert("userdata".into(), data.clone());
    }
    copy(&mut user, "stream", body, "stream");
    user
}

pub(super) fn ts(msg: &Message, cx: &Cx) -> u64 {
    msg.own_time(false).unwrap_or(cx.received_at)
}

fn joined(msg: &Message, cx: &mut Cx) -> Result<Vec<Event>, MapError> {
    let (meeting, user_id) = meeting_and_user(msg)?;
    let mut user = common_user(msg, cx, meeting, user_id);
    // A join names the user's external id itself: it wins over an older mapping (a re-join).
    if let Some(ext) = msg.str_field("extId").filter(|e| !e.is_empty()) {
        user.insert("external-user-id".into(), ext.into());
    }
    let guest = msg.field("guest").and_then(as_bool).unwrap_or(false);
    user.insert("guest".into(), guest.into());
    let ext = msg.str_field("extId").unwrap_or("").to_string();
    cx.state.user_joined(
        meeting,
        user_id,
        &ext,
        Flavor::V2,
        user.clone(),
        cx.received_at,
    );
    let event = EventBuilder::for_message("user-joined", msg, cx, ts(msg, cx))
        .attr("user", user)
        .with_input(cx);
    Ok(vec![event])
}

fn left(msg: &Message, cx: &mut Cx) -> Result<Vec<Event>, MapError> {
    let (meeting, user_id) = meeting_and_user(msg)?;
    let mut user = common_user(msg, cx, meeting, user_id);
    let stored_guest = cx.state.user(meeting, user_id).map(|u| u.flag("guest"));
    let guest = msg
        .field("guest")
        .and_then(as_bool)
        .or(stored_guest)
        .unwrap_or(false);
    user.insert("guest".into(), guest.into());
    let mut events = Vec::new();
    // BigBlueButton 2.7+ reports an ejection only here.
    if msg.field("eject").and_then(as_bool) == Some(true) {
        events.push(kicked_event(msg, cx, meeting, user_id));
    }
    events.push(
        EventBuilder::for_message("user-left", msg, cx, ts(msg, cx))
            .attr("user", user)
            .with_input(cx),
    );
    cx.state.user_left(meeting, user_id);
    Ok(events)
}

fn presenter(msg: &Message, cx: &mut Cx) -> Result<Vec<Event>, MapError> {
    let assigned = msg.name == "PresenterAssignedEvtMsg";
    let meeting = msg
        .meeting_id()
        .ok_or(MapError::MissingField("core.header.meetingId"))?;
    let subject = if assigned { "presenterId" } else { "intId" };
    let user_id = msg
        .str_field(subject)
        .filter(|s| is_user_id(s))
        .or_else(|| msg.user_id())
        .ok_or(MapError::MissingField("core.body.presenterId"))?;
    let user = common_user(msg, cx, meeting, user_id);
    if assigned {
        cx.state.set_exclusive_flag(meeting, user_id, "presenter");
    } else {
        cx.state
            .set_user_field(meeting, user_id, "presenter", Value::Bool(false));
    }
    let id = if assigned {
        "user-presenter-assigned"
    } else {
        "user-presenter-unassigned"
    };
    let event = EventBuilder::for_message(id, msg, cx, ts(msg, cx))
        .attr("user", user)
        .with_input(cx);
    Ok(vec![event])
}

/// `user-emoji-changed`; on BigBlueButton < 2.7 the raised hand is the emoji `raiseHand`, so a
/// `user-raise-hand-changed` is spoofed for it (and for lowering it), with the native event's
/// `raise-hand` key.
fn emoji(msg: &Message, cx: &mut Cx) -> Result<Vec<Event>, MapError> {
    let (meeting, user_id) = meeting_and_user(msg)?;
    let emoji = msg
        .str_field("emoji")
        .filter(|s| !s.is_empty())
        .or_else(|| msg.str_field("reactionEmoji").filter(|s| !s.is_empty()))
        .unwrap_or("none");
    let user = common_user(msg, cx, meeting, user_id);
    let ts = ts(msg, cx);
    let mut with_emoji = user.clone();
    with_emoji.insert("emoji".into(), emoji.into());
    let mut events = vec![
        EventBuilder::for_message("user-emoji-changed", msg, cx, ts)
            .attr("user", with_emoji)
            .with_input(cx),
    ];
    let was_raised = cx
        .state
        .user(meeting, user_id)
        .is_some_and(|u| u.flag("raiseHand"));
    // Only the emoji of BigBlueButton < 2.7 carried raised hands; reactions never do.
    let legacy = msg.name == "UserEmojiChangedEvtMsg";
    let raised = match (legacy && emoji == "raiseHand", legacy && was_raised) {
        (true, _) => Some(true),
        (false, true) => Some(false),
        (false, false) => None,
    };
    if let Some(raised) = raised {
        cx.state
            .set_user_field(meeting, user_id, "raiseHand", Value::Bool(raised));
        let mut hand = user;
        hand.insert("raise-hand".into(), raised.into());
        events.push(
            EventBuilder::for_message("user-raise-hand-changed", msg, cx, ts)
                .attr("user", hand)
                .with_input(cx),
        );
    }
    Ok(events)
}

fn plain(msg: &Message, cx: &mut Cx) -> Result<Vec<Event>, MapError> {
    let &(_, id, fields) = PLAIN
        .iter()
        .find(|(name, _, _)| *name == msg.name)
        .ok_or_else(|| MapError::Unknown(msg.name.to_string()))?;
    let (meeting, user_id) = meeting_and_user(msg)?;
    let mut user = common_user(msg, cx, meeting, user_id);
    copy_all(&mut user, msg.body(), fields);
    let event = EventBuilder::for_message(id, msg, cx, ts(msg, cx))
        .attr("user", user)
        .with_input(cx);
    Ok(vec![event])
}

fn ejected(msg: &Message, cx: &mut Cx) -> Result<Vec<Event>, MapError> {
    let (meeting, header_user) = meeting_and_user(msg)?;
    let user_id = msg
        .str_field("userId")
        .filter(|s| is_user_id(s))
        .unwrap_or(header_user);
    Ok(vec![kicked_event(msg, cx, meeting, user_id)])
}

/// `user-kicked`: the ejected user, who ejected them, and why when BigBlueButton says.
fn kicked_event(msg: &Message, cx: &Cx, meeting: &str, user_id: &str) -> Event {
    let user = user_ids(cx, Some(meeting), user_id, Some(""));
    let by = msg
        .str_field("ejectedBy")
        .filter(|s| is_user_id(s))
        .map(|by| user_ids(cx, Some(meeting), by, Some("")));
    let mut builder = EventBuilder::for_message("user-kicked", msg, cx, ts(msg, cx))
        .attr("user", user)
        .attr_opt("ejected-by", by);
    for (attr, field) in [("reason", "reason"), ("reason-code", "reasonCode")] {
        builder = builder.attr_opt(attr, msg.str_field(field).filter(|s| !s.is_empty()));
    }
    builder.build(Raw::Input(cx.raw.clone()))
}

/// `user-role-changed` (BigBlueButton 2.x–3.x): the user (`core.body.userId`; the header names
/// whoever changed it in some versions, so it comes second), the new role, who changed it. The
/// stored user record takes the new role, so later events and a spoofed `user-left` agree.
fn role_changed(msg: &Message, cx: &mut Cx) -> Result<Vec<Event>, MapError> {
    let meeting = msg.require_meeting()?;
    let user_id = msg.subject("userId");
    let role = msg.field("role");
    if let (Some(u), Some(r)) = (user_id, role) {
        cx.state.set_user_field(meeting, u, "role", r.clone());
    }
    let user = user_id.map(|u| {
        let mut user = user_ids(cx, Some(meeting), u, Some(""));
        if let Some(r) = role {
            user.insert("role".into(), r.clone());
        }
        user
    });
    let by = person(cx, Some(meeting), msg.user_field("changedBy"));
    let event = EventBuilder::for_message("user-role-changed", msg, cx, ts(msg, cx))
        .attr_opt("user", user)
        .attr_opt("changed-by", by)
        .with_input(cx);
    Ok(vec![event])
}

/// `user-away-changed` (BigBlueButton 2.7+): the user and whether they are away now.
fn away_changed(msg: &Message, cx: &mut Cx) -> Result<Vec<Event>, MapError> {
    let meeting = msg.require_meeting()?;
    let user = msg.subject("userId").map(|u| {
        let mut user = user_ids(cx, Some(meeting), u, Some(""));
        if let Some(away) = msg.field("away").and_then(as_bool) {
            user.insert("away".into(), away.into());
        }
        user
    });
    let event = EventBuilder::for_message("user-away-changed", msg, cx, ts(msg, cx))
        .attr_opt("user", user)
        .with_input(cx);
    Ok(vec![event])
}
