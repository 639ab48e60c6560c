//! Recordings: the record-and-playback scripts' step messages (`bigbluebutton:from-rap`,
//! header/payload shape, time in seconds) and bbb-web's publish/unpublish/delete messages.

use serde_json::Map;

use super::build::{EventBuilder, copy, copy_all};
use super::message::{Message, path};
use super::user::ts;
use super::{Cx, Handler, MapError};
use crate::event::Event;

pub const SYSTEM_HANDLERS: &[(&str, Handler)] = &[
    ("PublishedRecordingSysMsg", system),
    ("UnpublishedRecordingSysMsg", system),
    ("DeletedRecordingSysMsg", system),
];

/// bbb-web's messages: (message, event).
const SYSTEM: &[(&str, &str)] = &[
    ("PublishedRecordingSysMsg", "rap-published"),
    ("UnpublishedRecordingSysMsg", "rap-unpublished"),
    ("DeletedRecordingSysMsg", "rap-deleted"),
];

pub const STEP_HANDLERS: &[(&str, Handler)] = &[
    ("archive_started", step),
    ("archive_ended", step),
    ("sanity_started", step),
    ("sanity_ended", step),
    ("post_archive_started", step),
    ("post_archive_ended", step),
    ("process_started", step),
    ("process_ended", step),
    ("post_process_started", step),
    ("post_process_ended", step),
    ("publish_started", step),
    ("publish_ended", step),
    ("post_publish_started", step),
    ("post_publish_ended", step),
    ("post_events_started", step),
    ("post_events_ended", step),
    ("published", script_action),
    ("unpublished", script_action),
    ("deleted", script_action),
];

/// Script messages: (message, event). The event is `rap-` + the name with `-` for `_`.
const STEPS: &[(&str, &str)] = &[
    ("archive_started", "rap-archive-started"),
    ("archive_ended", "rap-archive-ended"),
    ("sanity_started", "rap-sanity-started"),
    ("sanity_ended", "rap-sanity-ended"),
    ("post_archive_started", "rap-post-archive-started"),
    ("post_archive_ended", "rap-post-archive-ended"),
    ("process_started", "rap-process-started"),
    ("process_ended", "rap-process-ended"),
    ("post_process_started", "rap-post-process-started"),
    ("post_process_ended", "rap-post-process-ended"),
    ("publish_started", "rap-publish-started"),
    ("publish_ended", "rap-publish-ended"),
    ("post_publish_started", "rap-post-publish-started"),
    ("post_publish_ended", "rap-post-publish-ended"),
    ("post_events_started", "rap-post-events-started"),
    ("post_events_ended", "rap-post-events-ended"),
    ("published", "rap-published"),
    ("unpublished", "rap-unpublished"),
    ("deleted", "rap-deleted"),
];

/// `publish_ended`'s recording object: (attribute, pointer under `payload`), in order.
const RECORDING_FIELDS: &[(&str, &str)] = &[
    ("name", "/metadata/meetingName"),
    ("is-breakout", "/metadata/isBreakout"),
    ("start-time", "/start_time"),
    ("end-time", "/end_time"),
    ("size", "/playback/size"),
    ("raw-size", "/raw_size"),
    ("metadata", "/metadata"),
    ("playback", "/playback"),
    ("download", "/download"),
];

fn event_id(table: &[(&str, &'static str)], name: &str) -> Result<&'static str, MapError> {
    table
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, id)| *id)
        .ok_or_else(|| MapError::Unknown(name.to_string()))
}

fn system(msg: &Message, cx: &mut Cx) -> Result<Vec<Event>, MapError> {
    let id = event_id(SYSTEM, msg.name)?;
    let record = msg.require_str("recordId")?;
    let event = EventBuilder::for_message(id, msg, cx, ts(msg, cx))
        .attr("record-id", record)
        .with_input(cx);
    Ok(vec![event])
}

/// The start of every script event: meeting ids (external from the payload, else the state), the
/// record id, and the time (seconds in the message, ms in the event).
fn script_builder(id: &'static str, msg: &Message, cx: &Cx) -> Result<EventBuilder, MapError> {
    let d = msg.body();
    let internal = msg.require_str("meeting_id")?;
    let external = msg
        .str_field("external_meeting_id")
        .or_else(|| cx.state.external_meeting_id(internal));
    let ts = msg.own_time(true).unwrap_or(cx.received_at);
    let record = d
        .get("record_id")
        .filter(|v| !v.is_null())
        .cloned()
        .unwrap_or_else(|| internal.into());
    Ok(EventBuilder::new(id, ts, Some(internal), external).attr("record-id", record))
}

fn step(msg: &Message, cx: &mut Cx) -> Result<Vec<Event>, MapError> {
    let id = event_id(STEPS, msg.name)?;
    let d = msg.body();
    let mut builder = script_builder(id, msg, cx)?;
    let mut extra = Map::new();
    copy_all(
        &mut extra,
        d,
        &[("success", "success"), ("step-time", "step_time")],
    );
    if msg.name == "archive_ended" {
        copy_all(
            &mut extra,
            d,
            &[("recorded", "recorded"), ("duration", "duration")],
        );
    }
    if let Some(w) = msg.str_field("workflow").filter(|w| !w.is_empty()) {
        extra.insert("workflow".into(), w.into());
    }
    if msg.name == "publish_ended" {
        let mut recording = Map::new();
        for (attr, pointer) in RECORDING_FIELDS {
            if let Some(v) = path(d, pointer).filter(|v| !v.is_null()) {
                recording.insert((*attr).into(), v.clone());
            }
        }
        if !recording.is_empty() {
            extra.insert("recording".into(), recording.into());
        }
    }
    for (k, v) in extra {
        builder = builder.attr(&k, v);
    }
    Ok(vec![builder.with_input(cx)])
}

/// `published`, `unpublished`, `deleted` from the scripts: the record id, and the format and
/// workflow when given (the reference's branch for them never ran).
fn script_action(msg: &Message, cx: &mut Cx) -> Result<Vec<Event>, MapError> {
    let id = event_id(STEPS, msg.name)?;
    let mut extra = Map::new();
    copy(&mut extra, "format", msg.body(), "format");
    copy(&mut extra, "workflow", msg.body(), "workflow");
    let mut builder = script_builder(id, msg, cx)?;
    for (k, v) in extra {
        builder = builder.attr(&k, v);
    }
    Ok(vec![builder.with_input(cx)])
}
