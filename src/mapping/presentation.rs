//! Presentations of BigBlueButton 2.x–3.x beyond the current one (that is
//! `meeting-presentation-changed`, in [`super::meeting`]): an upload whose conversion completed,
//! and a presentation file made available for download (original, converted or annotated). It
//! does not report conversion progress or pages.

use serde_json::{Map, Value};

use super::build::{EventBuilder, copy, person};
use super::message::{Message, path};
use super::user::ts;
use super::{Cx, Handler, MapError};
use crate::event::Event;

pub const HANDLERS: &[(&str, Handler)] = &[
    ("PresentationConversionCompletedEvtMsg", uploaded),
    ("NewPresFileAvailableEvtMsg", file_available),
];

/// The file URIs of `NewPresFileAvailableEvtMsg`: (attribute, body field). 2.6 has `fileURI`
/// alone, 2.7+ the three kinds.
const FILE_URIS: &[(&str, &str)] = &[
    ("file-uri", "fileURI"),
    ("original-file-uri", "originalFileURI"),
    ("converted-file-uri", "convertedFileURI"),
    ("annotated-file-uri", "annotatedFileURI"),
];

/// `meeting-presentation-uploaded`: who uploaded it (the header's user), and the presentation's
/// id, name and number of pages (`numPages`, else the length of `pages`: the page objects
/// themselves, with their URLs, stay out).
fn uploaded(msg: &Message, cx: &mut Cx) -> Result<Vec<Event>, MapError> {
    let meeting = msg.require_meeting()?;
    let user = person(cx, Some(meeting), msg.user_id());
    let mut presentation = Map::new();
    if let Some(p) = msg.field("presentation") {
        copy(&mut presentation, "id", p, "id");
        copy(&mut presentation, "name", p, "name");
        let pages = p
            .get("numPages")
            .filter(|v| v.is_number())
            .cloned()
            .or_else(|| {
                path(p, "/pages")
                    .and_then(Value::as_array)
                    .map(|a| a.len().into())
            });
        if let Some(n) = pages {
            presentation.insert("num-pages".into(), n);
        }
    }
    let event = EventBuilder::for_message("meeting-presentation-uploaded", msg, cx, ts(msg, cx))
        .attr_opt("user", user)
        .attr("presentation", presentation)
        .with_input(cx);
    Ok(vec![event])
}

/// `meeting-presentation-file-available`: the presentation id, the kind of file
/// (`fileStateType`, 2.6: `typeOfExport`) and its URIs (empty ones left out).
fn file_available(msg: &Message, cx: &mut Cx) -> Result<Vec<Event>, MapError> {
    let meeting = msg.require_meeting()?;
    let user = person(cx, Some(meeting), msg.user_id());
    let mut presentation = Map::new();
    copy(&mut presentation, "id", msg.body(), "presId");
    let kind = msg
        .str_field("fileStateType")
        .or_else(|| msg.str_field("typeOfExport"))
        .filter(|s| !s.is_empty());
    if let Some(kind) = kind {
        presentation.insert("file-type".into(), kind.into());
    }
    for (attr, field) in FILE_URIS {
        if let Some(uri) = msg.str_field(field).filter(|s| !s.is_empty()) {
            presentation.insert((*attr).into(), uri.into());
        }
    }
    let event =
        EventBuilder::for_message("meeting-presentation-file-available", msg, cx, ts(msg, cx))
            .attr_opt("user", user)
            .attr("presentation", presentation)
            .with_input(cx);
    Ok(vec![event])
}
