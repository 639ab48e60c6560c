//! Meeting tools of BigBlueButton 2.7–3.x: the shared external video (started, stopped) and the
//! timer (started, stopped, ran out). Not the video's playback (seek, pause, rate), which
//! happens many times a second.

use serde_json::Map;

use super::build::{EventBuilder, copy_all, person};
use super::message::Message;
use super::user::ts;
use super::{Cx, Handler, MapError};
use crate::event::Event;

pub const HANDLERS: &[(&str, Handler)] = &[
    ("StartExternalVideoEvtMsg", external_video),
    ("StopExternalVideoEvtMsg", external_video),
    ("StartTimerRespMsg", timer),
    ("StopTimerRespMsg", timer),
    ("TimerEndedEvtMsg", timer),
];

/// The timer's fields: (attribute, body field), whichever the version sends.
const TIMER_FIELDS: &[(&str, &str)] = &[
    ("stopwatch", "stopwatch"),
    ("time", "time"),
    ("accumulated", "accumulated"),
];

/// Started: who shared it and its URL (`externalVideoUrl`). Stopped: who stopped it and the URL
/// that was playing, which only the start named (remembered in memory; after a restart the stop
/// has no URL).
fn external_video(msg: &Message, cx: &mut Cx) -> Result<Vec<Event>, MapError> {
    let started = msg.name == "StartExternalVideoEvtMsg";
    let meeting = msg.require_meeting()?;
    let user = person(cx, Some(meeting), msg.user_id());
    let named = msg
        .str_field("externalVideoUrl")
        .filter(|s| !s.is_empty())
        .map(String::from);
    let url = if started {
        cx.state
            .set_external_video(meeting, named.clone(), cx.received_at);
        named
    } else {
        let playing = cx.state.set_external_video(meeting, None, cx.received_at);
        named.or(playing)
    };
    let mut video = Map::new();
    if let Some(url) = url {
        video.insert("url".into(), url.into());
    }
    let id = if started {
        "meeting-external-video-started"
    } else {
        "meeting-external-video-stopped"
    };
    let event = EventBuilder::for_message(id, msg, cx, ts(msg, cx))
        .attr_opt("user", user)
        .attr("external-video", video)
        .with_input(cx);
    Ok(vec![event])
}

/// The timer: who started or stopped it (`core.body.userId`, else the header's user; nobody
/// when it runs out) and what the message says of it (`accumulated` ms at a stop, …).
fn timer(msg: &Message, cx: &mut Cx) -> Result<Vec<Event>, MapError> {
    let meeting = msg.require_meeting()?;
    let id = match msg.name {
        "StartTimerRespMsg" => "meeting-timer-started",
        "StopTimerRespMsg" => "meeting-timer-stopped",
        _ => "meeting-timer-ended",
    };
    let user = person(cx, Some(meeting), msg.subject("userId"));
    let mut timer = Map::new();
    copy_all(&mut timer, msg.body(), TIMER_FIELDS);
    let event = EventBuilder::for_message(id, msg, cx, ts(msg, cx))
        .attr_opt("user", user)
        .attr("timer", timer)
        .with_input(cx);
    Ok(vec![event])
}
