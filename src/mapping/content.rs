//! Shared content of BigBlueButton 2.5+: shared-notes pads and live transcripts.

use serde_json::Map;

use super::build::{EventBuilder, copy_all, user_ids};
use super::message::Message;
use super::user::ts;
use super::{Cx, Handler, MapError};
use crate::event::Event;

pub const HANDLERS: &[(&str, Handler)] = &[
    ("PadContentEvtMsg", pad),
    ("TranscriptUpdatedEvtMsg", transcript),
];

const PAD_FIELDS: &[(&str, &str)] = &[
    ("id", "padId"),
    ("external-pad-id", "externalId"),
    ("rev", "rev"),
    ("start", "start"),
    ("end", "end"),
    ("text", "text"),
];

const TRANSCRIPT_FIELDS: &[(&str, &str)] = &[
    ("id", "transcriptId"),
    ("transcript", "transcript"),
    ("locale", "locale"),
    ("final", "result"),
];

fn pad(msg: &Message, cx: &mut Cx) -> Result<Vec<Event>, MapError> {
    let mut pad = Map::new();
    copy_all(&mut pad, msg.body(), PAD_FIELDS);
    let event = EventBuilder::for_message("pad-content", msg, cx, ts(msg, cx))
        .attr("pad", pad)
        .with_input(cx);
    Ok(vec![event])
}

fn transcript(msg: &Message, cx: &mut Cx) -> Result<Vec<Event>, MapError> {
    let user = msg
        .user_id()
        .map(|u| user_ids(cx, msg.meeting_id(), u, Some("")));
    let mut transcript = Map::new();
    copy_all(&mut transcript, msg.body(), TRANSCRIPT_FIELDS);
    let event = EventBuilder::for_message("transcript-updated", msg, cx, ts(msg, cx))
        .attr_opt("user", user)
        .attr("transcript", transcript)
        .with_input(cx);
    Ok(vec![event])
}
