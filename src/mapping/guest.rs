//! Guests waiting for approval (BigBlueButton 2.x–3.x): a moderator's decision becomes one
//! `guest-approved` or `guest-denied` per guest. It does not cover the waiting itself, nor the
//! guest's join (a `user-joined` like any other).
//!
//! BigBlueButton reports one decision several times: `GuestApprovedEvtMsg` to the guest, and
//! `GuestsWaitingApprovedEvtMsg` (the whole list decided at once) to every moderator of the
//! meeting, each copy with that moderator in the header. The copies differ only in the header, so
//! they are told apart by what they decide: the state remembers each (meeting, guest, decision)
//! reported for a short window ([`crate::state::GUEST_DECISION_WINDOW_MS`], on the messages'
//! own times so a replay decides the same) and the copies produce nothing. Keying on the decision
//! rather than on the message's bytes also merges the guest's copy with the moderators', and a
//! changed decision (denied after all) is still reported.

use serde_json::Value;

use super::build::{EventBuilder, person, user_ids};
use super::message::{Message, is_user_id};
use super::user::ts;
use super::{Cx, Handler, MapError};
use crate::event::Event;

pub const HANDLERS: &[(&str, Handler)] = &[
    ("GuestApprovedEvtMsg", approved_one),
    ("GuestsWaitingApprovedEvtMsg", approved_list),
];

/// `GuestApprovedEvtMsg`: addressed to the guest (the header's user), `status` and `approvedBy`.
fn approved_one(msg: &Message, cx: &mut Cx) -> Result<Vec<Event>, MapError> {
    let meeting = msg.require_meeting()?;
    let Some(guest) = msg.subject("guest") else {
        return Ok(Vec::new());
    };
    Ok(decision(msg, cx, meeting, guest, msg.str_field("status"))
        .into_iter()
        .collect())
}

/// `GuestsWaitingApprovedEvtMsg`: `guests` (`[{guest, status}]`) and `approvedBy`. Entries that
/// cannot be read are skipped, the others still count.
fn approved_list(msg: &Message, cx: &mut Cx) -> Result<Vec<Event>, MapError> {
    let meeting = msg.require_meeting()?;
    let guests = msg
        .field("guests")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut events = Vec::new();
    for entry in guests {
        let Some(guest) = entry
            .get("guest")
            .and_then(Value::as_str)
            .filter(|s| is_user_id(s))
        else {
            continue;
        };
        let status = entry.get("status").and_then(Value::as_str);
        events.extend(decision(msg, cx, meeting, guest, status));
    }
    Ok(events)
}

/// The event for one decision, unless it is unreadable (`status` neither `ALLOW` nor `DENY`) or
/// a copy of one already reported.
fn decision(
    msg: &Message,
    cx: &mut Cx,
    meeting: &str,
    guest: &str,
    status: Option<&str>,
) -> Option<Event> {
    let allowed = match status?.to_ascii_uppercase().as_str() {
        "ALLOW" => true,
        "DENY" => false,
        _ => return None,
    };
    let ts = ts(msg, cx);
    if !cx.state.guest_decided(meeting, guest, allowed, ts) {
        return None;
    }
    let id = if allowed {
        "guest-approved"
    } else {
        "guest-denied"
    };
    let user = user_ids(cx, Some(meeting), guest, Some(""));
    let by = person(cx, Some(meeting), msg.str_field("approvedBy"));
    Some(
        EventBuilder::for_message(id, msg, cx, ts)
            .attr("user", user)
            .attr_opt("decided-by", by)
            .with_input(cx),
    )
}
